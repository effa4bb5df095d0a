//! `candybar registry check FILE`: validates a platform's `registry.yaml` and prints what candybar
//! reads from it — services, topology layers, subscriptions — for people and for platform CI.
//! Exit status: 0 valid, 1 valid YAML with dangling references, 2 unreadable or not a registry.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use candybar_core::registry::Registry;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Validate a registry.yaml and print its services, layers and subscriptions.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The registry file
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub fn run(cmd: &RegistryCommand) -> ExitCode {
    let RegistryCommand::Check(args) = cmd;
    let path = args.file.display();
    let text = match candybar_bus::registry_watch::read_text(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("candybar: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let registry = match Registry::from_yaml(&text) {
        Ok(r) => r,
        Err(e) => {
            let at = match (e.line, e.column) {
                (Some(l), Some(c)) => format!(":{l}:{c}"),
                _ => String::new(),
            };
            eprintln!("candybar: {path}{at}: {}", e.message);
            return ExitCode::from(2);
        }
    };
    let mut out = describe(&registry);
    let problems = problems(&registry);
    let code = if problems.is_empty() {
        let _ = writeln!(out, "\n{path}: valid");
        ExitCode::SUCCESS
    } else {
        let _ = writeln!(out, "\nproblems ({}):", problems.len());
        for p in &problems {
            let _ = writeln!(out, "  - {p}");
        }
        ExitCode::from(1)
    };
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    code
}

/// What candybar reads from the registry, for people.
#[must_use]
pub fn describe(r: &Registry) -> String {
    let mut out = String::new();
    let exchange = r.exchange.as_ref();
    let _ = writeln!(
        out,
        "exchange: {} ({}{})",
        exchange
            .and_then(|e| e.name.as_deref())
            .unwrap_or("(not named: candybar uses \"events\")"),
        exchange.and_then(|e| e.kind.as_deref()).unwrap_or("topic"),
        if exchange.and_then(|e| e.durable) == Some(true) {
            ", durable"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "services ({}):", r.services.len());
    for (key, s) in &r.services {
        let _ = write!(
            out,
            "  {key}: {} [{}, {}]",
            s.name.as_deref().unwrap_or(key),
            s.kind.as_deref().unwrap_or("service"),
            s.status.as_deref().unwrap_or("active")
        );
        for (label, list) in [
            ("produces", &s.produces),
            ("consumes", &s.consumes),
            ("routing keys", &s.routing_keys),
        ] {
            if !list.is_empty() {
                let _ = write!(out, "; {label}: {}", list.join(", "));
            }
        }
        out.push('\n');
    }
    if !r.topology.is_empty() {
        let _ = writeln!(out, "layers ({}, in order):", r.topology.len());
        for (i, (layer, services)) in r.topology.iter().enumerate() {
            let _ = writeln!(out, "  {}. {layer}: {}", i + 1, services.join(", "));
        }
    }
    if !r.event_subscriptions.is_empty() {
        let _ = writeln!(out, "subscriptions ({}):", r.event_subscriptions.len());
        for (event, services) in &r.event_subscriptions {
            let _ = writeln!(out, "  {event} → {}", services.join(", "));
        }
    }
    out
}

/// References to services the registry does not define, and services listed in no layer.
#[must_use]
pub fn problems(r: &Registry) -> Vec<String> {
    let mut out = Vec::new();
    for (layer, services) in &r.topology {
        for s in services.iter().filter(|s| !r.services.contains_key(*s)) {
            out.push(format!(
                "topology layer \"{layer}\" names an unknown service \"{s}\""
            ));
        }
    }
    for (event, services) in &r.event_subscriptions {
        for s in services.iter().filter(|s| !r.services.contains_key(*s)) {
            out.push(format!(
                "event_subscriptions \"{event}\" names an unknown service \"{s}\""
            ));
        }
    }
    if !r.topology.is_empty() {
        let layered: BTreeSet<&String> = r.topology.iter().flat_map(|(_, s)| s).collect();
        for key in r.services.keys().filter(|k| !layered.contains(k)) {
            out.push(format!("service \"{key}\" is in no topology layer"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_example_is_valid_and_described() {
        let r = Registry::example();
        assert!(problems(&r).is_empty(), "{:?}", problems(&r));
        let text = describe(&r);
        assert!(
            text.contains("services (") && text.contains("layers ("),
            "{text}"
        );
    }

    #[test]
    fn dangling_references_are_named() {
        let r = Registry::from_yaml(
            "services:\n  a: {name: A}\ntopology:\n  ingest: [a, ghost]\nevent_subscriptions:\n  x.y: [phantom]\n",
        )
        .unwrap();
        let p = problems(&r);
        assert!(p.iter().any(|m| m.contains("\"ghost\"")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("\"phantom\"")), "{p:?}");
    }
}
