//! `candybar secret set|delete|status`: the tokens candybar sends, kept in the system keychain
//! (or, where there is none, a file only the user can read). Values are read from standard input
//! and never printed.

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use clap::Subcommand;

use crate::secrets::{self, KNOWN, Place};

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Keep a secret; its value is read from standard input (one line)
    Set {
        /// asr-token or webhook-token
        name: String,
    },
    /// Forget a secret
    Delete { name: String },
    /// Where each secret is kept (never the values)
    Status,
}

pub fn run(cmd: &SecretCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretCommand::Set { name } => {
            let line = if std::io::stdin().is_terminal() {
                // Typed by hand: not echoed, so it does not sit on the screen or in a recording.
                rpassword::prompt_password(format!(
                    "candybar: type the {name} and press Enter (it is not shown): "
                ))?
            } else {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line
            };
            let value = line.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(
                !value.is_empty(),
                "nothing was read; the {name} is unchanged"
            );
            match secrets::set(name, value)? {
                Place::File(path) => eprintln!(
                    "candybar: warning: no system keychain answered (Secret Service on Linux); \
                     the {name} is kept in {}, readable only by you",
                    path.display()
                ),
                place => eprintln!("candybar: the {name} is kept in {}", place.words()),
            }
        }
        SecretCommand::Delete { name } => {
            secrets::delete(name)?;
            eprintln!("candybar: the {name} is forgotten");
        }
        SecretCommand::Status => {
            for (name, _) in KNOWN {
                let (_, place) = secrets::get(name)?;
                println!("{name}: {}", place.words());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
