//! The platform's service registry (`registry.yaml`): which services exist, what they produce
//! and consume, and in which layer they sit. Unknown keys are ignored, missing ones are fine.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::glob::{GlobMode, topic_matches};

/// The example registry shipped with candybar (the demo feed simulates it).
pub const EXAMPLE_YAML: &str = include_str!("../../../assets/registry.example.yaml");

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Registry {
    pub version: Option<String>,
    pub exchange: Option<Exchange>,
    /// Services by key, in key order.
    pub services: BTreeMap<String, Service>,
    /// Event type → keys of the services that subscribe to it.
    pub event_subscriptions: BTreeMap<String, Vec<String>>,
    /// Layer name → service keys, layers in file order.
    #[serde(deserialize_with = "ordered_layers")]
    pub topology: Vec<(String, Vec<String>)>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Exchange {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub durable: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Service {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `event-consumer` or `event-producer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub queue_name: Option<String>,
    pub queue_names: Vec<String>,
    /// AMQP binding patterns (`*`, `#`).
    pub routing_keys: Vec<String>,
    pub produces: Vec<String>,
    pub consumes: Vec<String>,
    /// `active`, `planned`, `deprecated`, …
    pub status: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub endpoints: BTreeMap<String, String>,
}

impl Service {
    #[must_use]
    pub fn is_producer(&self) -> bool {
        !self.produces.is_empty() || self.kind.as_deref() == Some("event-producer")
    }

    /// Whether this service's bindings receive events with routing key `key`.
    #[must_use]
    pub fn consumes_key(&self, key: &str) -> bool {
        self.routing_keys
            .iter()
            .any(|p| topic_matches(p, key, GlobMode::Amqp))
            || self.consumes.iter().any(|c| c == key)
    }

    #[must_use]
    pub fn is_active(&self) -> bool {
        self.status
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("active"))
    }
}

/// Which service an event's source belongs to: the source is the service's key or name, or
/// starts with `name://` (a service's agents publish as `hermes://agent/…`).
pub struct SourceOwners<'a> {
    owner: rustc_hash::FxHashMap<&'a str, &'a str>,
}

impl<'a> SourceOwners<'a> {
    #[must_use]
    pub fn new(registry: &'a Registry) -> Self {
        let mut owner = rustc_hash::FxHashMap::default();
        for (key, s) in &registry.services {
            owner.insert(key.as_str(), key.as_str());
            owner.insert(s.name.as_deref().unwrap_or(key), key.as_str());
        }
        Self { owner }
    }

    /// The key of the service that publishes as `source`.
    #[must_use]
    pub fn owner(&self, source: &str) -> Option<&'a str> {
        let scheme = source.split_once("://").map_or(source, |(name, _)| name);
        self.owner
            .get(source)
            .or_else(|| self.owner.get(scheme))
            .copied()
    }
}

/// A registry that could not be read, with where.
#[derive(Debug, thiserror::Error)]
#[error("{}", match (.line, .column) { (Some(l), Some(c)) => format!("line {l}, column {c}: {message}"), _ => message.clone() })]
pub struct RegistryError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl Registry {
    pub fn from_yaml(text: &str) -> Result<Self, RegistryError> {
        serde_yaml_ng::from_str::<Option<Self>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                let loc = e.location();
                let line = loc.as_ref().map(serde_yaml_ng::Location::line);
                let mut message = e.to_string();
                // YAML reports a problem where the value is written: for a value reached through
                // an alias, that is the anchor. Say where it is used too.
                if let Some(used) = line.and_then(|l| aliases_of_anchor_at(text, l)) {
                    message.push_str(&used);
                }
                RegistryError {
                    line,
                    column: loc.as_ref().map(serde_yaml_ng::Location::column),
                    message,
                }
            })
    }

    #[must_use]
    pub fn example() -> Self {
        Self::from_yaml(EXAMPLE_YAML).unwrap_or_default()
    }

    #[must_use]
    pub fn exchange_name(&self) -> Option<&str> {
        self.exchange.as_ref().and_then(|e| e.name.as_deref())
    }
}

/// When 1-based `line` lies in a node anchored `&name` that is used through aliases `*name`,
/// " (in the anchor &name, used through *name at line N, …)".
fn aliases_of_anchor_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let name_after = |l: &str, sigil: char| -> Option<String> {
        let at = l.find(sigil)?;
        let name: String = l[at + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || "-_".contains(*c))
            .collect();
        (!name.is_empty()).then_some(name)
    };
    // The nearest anchor at or above `line` whose block (deeper-indented lines) reaches it.
    for start in (0..line.min(lines.len())).rev() {
        let Some(anchor) = name_after(lines[start], '&') else {
            continue;
        };
        let depth = indent(lines[start]);
        let inside = lines[start + 1..line]
            .iter()
            .all(|l| l.trim().is_empty() || indent(l) > depth);
        if !inside {
            continue;
        }
        let uses: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| name_after(l, '*').as_deref() == Some(anchor.as_str()))
            .map(|(i, _)| format!("line {}", i + 1))
            .collect();
        if uses.is_empty() {
            return None;
        }
        return Some(format!(
            " (in the anchor &{anchor}, used through *{anchor} at {})",
            uses.join(", ")
        ));
    }
    None
}

fn ordered_layers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, Vec<String>)>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<(String, Vec<String>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of layer name to service keys")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, Option<Vec<String>>>()? {
                out.push((k, v.unwrap_or_default()));
            }
            Ok(out)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_in_an_aliased_node_says_where_the_alias_is() {
        let text = "version: 1\ndefaults: &defaults\n  type: event-consumer\n  routing_keys: \"not-a-list\"\nservices:\n  a:\n    name: a\n  b: *defaults\n";
        let e = Registry::from_yaml(text).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(
            e.message
                .contains("in the anchor &defaults, used through *defaults at line 8"),
            "{}",
            e.message
        );
        // No alias: nothing added.
        let e = Registry::from_yaml("services:\n  a:\n    routing_keys: 3\n").unwrap_err();
        assert!(!e.message.contains("anchor"), "{}", e.message);
    }

    #[test]
    fn example_parses() {
        let r = Registry::from_yaml(EXAMPLE_YAML).unwrap();
        assert_eq!(r.exchange_name(), Some("bloodbank.events.v1"));
        assert!(r.services.len() >= 10);
        assert_eq!(
            r.topology.first().map(|(k, _)| k.as_str()),
            Some("external_sources")
        );
        let collector = &r.services["agent-thread-collector"];
        assert!(collector.consumes_key("agent.thread.prompt"));
        assert!(collector.consumes_key("agent.tool.invoked"));
        assert!(!collector.consumes_key("llm.response"));
        assert!(r.services["hookd-producer"].is_producer());
        assert!(!r.services["event-store-manager"].is_active());
        assert_eq!(r.services["fireflies-transcript-rag"].queue_names.len(), 2);
    }

    #[test]
    fn unknown_and_missing_keys() {
        let r = Registry::from_yaml(
            "services:\n  a:\n    weird: [1, 2]\n    produces: [x.y]\nfuture_section: 3\n",
        )
        .unwrap();
        assert_eq!(r.services["a"].produces, vec!["x.y"]);
        assert_eq!(Registry::from_yaml("").unwrap(), Registry::default());
    }

    #[test]
    fn broken_yaml_says_where() {
        let e = Registry::from_yaml("services:\n  a:\n    produces: [x.y\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
        assert!(e.to_string().starts_with("line "), "{e}");
    }
}
