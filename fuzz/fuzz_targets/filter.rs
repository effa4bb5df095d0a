//! Any filter text: parsing never panics, errors point inside the text, and a parsed filter runs.
#![no_main]

use candybar_core::event::RawMessage;
use candybar_core::filter::{Filter, FilteredView};
use candybar_core::store::EventStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Filter::new(text) {
        Ok(filter) => {
            let mut store = EventStore::default();
            store.insert(&RawMessage {
                routing_key: "agent.thread.prompt".into(),
                body: br#"{"event_type":"agent.thread.prompt","payload":{"text":"hello"}}"#.to_vec(),
                ..RawMessage::default()
            });
            let mut view = FilteredView::new(filter);
            view.update(&store, 0, u64::MAX);
        }
        Err(e) => assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e} for {text:?}"),
    }
});
