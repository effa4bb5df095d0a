//! `candybar record --install-service`: the unit file it writes passes systemd's own checker
//! (`systemd-analyze verify`), its `ExecStart` records from a real broker and stops cleanly on
//! the SIGTERM systemd sends; a password is never written into it; `--uninstall-service` removes
//! it. (No systemd user session runs here: `systemctl --user` fails and the command says what
//! to run where one does. The .deb's unit is checked in tests/packaging.rs.)

// Helpers outside `#[test]` functions: a failed step panics with its message.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::journal::wait_for_count;
use support::{path_str, run_env, shared_broker_url, unique};

/// The words of `ExecStart=`, unquoted as systemd does (the writer quotes every word).
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => word.extend(chars.next()),
                '%' | '$' => {
                    chars.next();
                    word.push(c);
                }
                _ => word.push(c),
            }
        }
        words.push(word);
    }
    words
}

fn unquoted_exe(words: &[String]) -> &Path {
    Path::new(&words[0])
}

/// Runs the unit's command as systemd would (the broker named by the environment), has it
/// record 50 events, and stops it with SIGTERM: the last block is written, exit status 0.
fn run_like_systemd(words: &[String], url: &str, exchange: &str, journal: &Path) {
    let mut service = Command::new(unquoted_exe(words))
        .args(&words[1..])
        .env("CANDYBAR_AMQP_URL", url)
        .env("CANDYBAR_CONFIG", "/nonexistent/candybar-test-config.toml")
        .env(
            "CANDYBAR_SECRETS",
            "/nonexistent/candybar-test-secrets.toml",
        )
        .env("CANDYBAR_NO_KEYCHAIN", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the unit's ExecStart");
    let stderr = service.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::sync_channel(4096);
    std::thread::Builder::new()
        .name("service-stderr".into())
        .spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let mut said = Vec::new();
    while !said.iter().any(|l: &String| l.contains("connected:")) {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => said.push(line),
            Err(e) => panic!(
                "the service did not connect ({e}); it said:\n{}",
                said.join("\n")
            ),
        }
    }
    let events: Vec<_> = (0..50)
        .map(|i| {
            let body = format!(r#"{{"event_id":"s-{i}","event_type":"service.test"}}"#);
            ("service.test".to_owned(), body.into_bytes(), None)
        })
        .collect();
    support::lapin_publish(url, exchange, &events);
    assert_eq!(
        wait_for_count(journal, 50, Duration::from_secs(20)).len(),
        50
    );
    // systemd stops a service with SIGTERM: the last block is written, exit status 0.
    let ok = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = service.wait().unwrap();
    said.extend(lines.iter());
    let err = said.join("\n");
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("recorded 50 events"), "{err}");
}

#[test]
fn the_installed_service_is_valid_records_and_stops_cleanly_and_holds_no_password() {
    let url = shared_broker_url();
    let exchange = unique("t.service");
    support::declare_exchange(&url, &exchange);
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    let journal = home.path().join("my journal");
    let env = [("XDG_CONFIG_HOME", path_str(&config))];

    // A password on the command line is refused: it would sit in a file under ~/.config.
    let (code, out, err) = run_env(
        &[
            "record",
            "--install-service",
            "--amqp",
            &url,
            "--exchange",
            &exchange,
        ],
        &env,
    );
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("would hold the broker's password"), "{err}");
    let unit_path = config.join("systemd/user/candybar-record.service");
    assert!(!unit_path.exists());

    let (code, out, err) = run_env(
        &[
            "record",
            "--install-service",
            "--exchange",
            &exchange,
            "--journal",
            path_str(&journal),
            "--max-age",
            "7d",
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("wrote {}", unit_path.display())),
        "{out}"
    );
    // No systemd user session here: it says what to run where one is.
    assert!(
        out.contains("systemctl --user enable --now candybar-record.service"),
        "{out}"
    );
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(!unit.contains("guest:guest"), "{unit}");

    // systemd's own checker accepts it (system mode: no user manager runs here).
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .expect("this test needs systemd-analyze: sudo apt-get install systemd");
    assert!(
        verify.status.success(),
        "systemd-analyze verify failed:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // What systemd would run, run: it records from the broker the environment names.
    let words = exec_start(&unit);
    assert_eq!(words[1], "record", "{unit}");
    assert!(words.contains(&path_str(&journal).to_owned()), "{words:?}");
    run_like_systemd(&words, &url, &exchange, &journal);

    let (code, out, err) = run_env(&["record", "--uninstall-service"], &env);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("removed"), "{out}");
    assert!(!unit_path.exists());
    assert!(journal.exists(), "the journal stays");
}
