//! Any body and routing key: decoding, storing, reading back and NDJSON round trips never panic,
//! and what is read back is what was stored.
#![no_main]

use candybar_core::event::RawMessage;
use candybar_core::export::{read_ndjson_line, write_ndjson};
use candybar_core::store::{EventStore, StoreConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (rk, body) = data.split_at(split);
    let msg = RawMessage {
        received_us: 1,
        routing_key: String::from_utf8_lossy(rk).into_owned(),
        body: body.to_vec(),
        ..RawMessage::default()
    };
    let _ = candybar_core::decode::decode(&msg);
    let mut store = EventStore::new(StoreConfig { max_events: 4096, budget_bytes: 8 << 20, body_cap_bytes: 4096 });
    let seq = store.insert(&msg);
    let event = store.get(seq).expect("just stored");
    assert_eq!(event.body, &body[..body.len().min(4096)]);
    let mut line = Vec::new();
    write_ndjson(&event, &mut line);
    let back = read_ndjson_line(&line, 0).expect("our own line reads back");
    if !event.truncated {
        assert_eq!(back.body, event.body);
    }
    let _ = read_ndjson_line(data, 0);
});
