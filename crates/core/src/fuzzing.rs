//! The fuzz targets' bodies: each takes any bytes and checks what must hold for them. The
//! libFuzzer targets in `fuzz/` call these (`cargo +nightly fuzz run NAME`); where no nightly
//! toolchain is, the same bodies run on random input for a bounded time in this crate's tests.

use crate::asr::audio::s16le_to_f32;
use crate::asr::protocol::parse_client_text;
use crate::config::FileConfig;
use crate::event::RawMessage;
use crate::export::{read_ndjson_line, write_ndjson};
use crate::filter::{Filter, FilteredView};
use crate::store::{EventStore, StoreConfig};

/// A target: any bytes in, assertions inside.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/` names them.
pub const TARGETS: [(&str, Target); 5] = [
    ("decode", decode),
    ("filter", filter),
    ("asr_frames", asr_frames),
    ("config", config),
    ("webm", webm),
];

/// Any body and routing key: decoding, storing, reading back and NDJSON round trips never panic,
/// and what is read back is what was stored.
pub fn decode(data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (rk, body) = data.split_at(split);
    let msg = RawMessage {
        received_us: 1,
        routing_key: String::from_utf8_lossy(rk).into_owned(),
        body: body.to_vec(),
        ..RawMessage::default()
    };
    let _ = crate::decode::decode(&msg);
    let mut store = EventStore::new(StoreConfig {
        max_events: 4096,
        budget_bytes: 8 << 20,
        body_cap_bytes: 4096,
    });
    let seq = store.insert(&msg);
    let event = store.get(seq).expect("just stored");
    assert_eq!(event.body, &body[..body.len().min(4096)]);
    let mut line = Vec::new();
    write_ndjson(&event, &mut line);
    let back = read_ndjson_line(&line, 0).expect("our own line reads back");
    let crate::export::Record::Event(back) = back else {
        panic!("our own event line read back as a gap");
    };
    if !event.truncated {
        assert_eq!(back.body, event.body);
    }
    let _ = read_ndjson_line(data, 0);
}

/// Any filter text: parsing never panics, errors point inside the text, and a parsed filter runs.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Filter::new(text) {
        Ok(filter) => {
            let mut store = EventStore::default();
            store.insert(&RawMessage {
                routing_key: "agent.thread.prompt".into(),
                body: br#"{"event_type":"agent.thread.prompt","payload":{"text":"hello"}}"#
                    .to_vec(),
                ..RawMessage::default()
            });
            let mut view = FilteredView::new(filter);
            view.update(&store, 0, u64::MAX);
        }
        Err(e) => assert!(
            e.column >= 1 && e.column <= text.chars().count() + 1,
            "{e} for {text:?}"
        ),
    }
}

/// Any sequence of client frames on `/asr`: text frames are parsed (config, eos, junk) and
/// binary frames turned into samples, never a panic; samples stay in -1..1.
pub fn asr_frames(data: &[u8]) {
    let mut rest = data;
    let mut samples = Vec::new();
    // Frames: a kind byte (even: text, odd: binary), a length byte, then that many bytes.
    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (frame, after) = tail.split_at(n);
        if kind % 2 == 0 {
            let _ = parse_client_text(&String::from_utf8_lossy(frame));
        } else {
            s16le_to_f32(frame, &mut samples);
        }
        rest = after;
    }
    assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)));
}

/// Any bytes after WebM's magic, cut into chunks anywhere: the demuxer reads frames or refuses
/// the stream, never panics, and holds no more than one element it reads plus one chunk.
pub fn webm(data: &[u8]) {
    use crate::asr::webm::{EBML_MAGIC, MAX_ELEMENT_BYTES, WebmDemuxer};
    let (cut, rest) = data.split_first().unwrap_or((&1, &[]));
    let chunk = usize::from(*cut).max(1);
    let stream = [&EBML_MAGIC[..], rest].concat();
    let mut demuxer = WebmDemuxer::new();
    let mut frames = Vec::new();
    for c in stream.chunks(chunk) {
        if demuxer.push(c, &mut frames).is_err() {
            break;
        }
        assert!(demuxer.pending_bytes() <= MAX_ELEMENT_BYTES + chunk + 16);
    }
    assert!(frames.iter().map(Vec::len).sum::<usize>() <= stream.len());
}

/// Any config file: parsed into the settings or refused with a message, and the store's limits
/// derived or refused by name — never a panic, never a wrapped number.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(mut cfg) = FileConfig::parse(&text) {
        cfg.apply_env(|_| None);
        if let Ok(store) = cfg.store.store_config() {
            assert!(store.budget_bytes >= 16 << 20);
            assert!(store.max_events >= 1024);
            assert!(store.body_cap_bytes >= 1024);
        }
    }
}

/// Seconds each target runs in the tests: `CANDYBAR_FUZZ_SECS`, default 2.
#[must_use]
pub fn secs_per_target() -> f64 {
    std::env::var("CANDYBAR_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 3600.0)
        .unwrap_or(2.0)
}

/// Runs `target` for `secs` on mutations of `seeds` (bytes inserted, changed, flipped, cut) and
/// now and then on random bytes: what CI runs where cargo-fuzz cannot (no nightly toolchain).
/// How many inputs ran.
pub fn run_mutated(seeds: &[&[u8]], target: impl Fn(&[u8]), secs: f64) -> u64 {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0x00c0_ffee);
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    let mut runs = 0u64;
    while std::time::Instant::now() < end {
        let mut input = seeds
            .get(rng.random_range(0..seeds.len().max(1)))
            .map(|s| s.to_vec())
            .unwrap_or_default();
        for _ in 0..rng.random_range(0..8) {
            let at = rng.random_range(0..=input.len());
            match rng.random_range(0..4) {
                0 => input.insert(at, rng.random()),
                1 if at < input.len() => input[at] = rng.random(),
                2 if at < input.len() => input[at] ^= 1 << rng.random_range(0..8),
                _ => input.truncate(at),
            }
        }
        if rng.random_range(0..4) == 0 {
            input = (0..rng.random_range(0..256))
                .map(|_| rng.random())
                .collect();
        }
        target(&input);
        runs += 1;
    }
    runs
}

#[cfg(test)]
mod tests {
    /// The fuzz targets on mutations of a few seeds and on random input for a bounded time.
    #[test]
    fn fuzz_targets_hold_on_random_input() {
        let seeds: [&[u8]; 5] = [
            br#"{"event_id":"e","event_type":"a.b.completed","correlation_ids":["c"],"payload":{}}"#,
            b"agent.*.completed AND domain:llm OR NOT \"timeout\" last:15m",
            b"\x00\x04{\"ty\x01\x04\x00\x80\xff\x7f",
            b"[store]\nbudget_mb = 64\n[amqp]\nurl = \"amqp://u:p@h/\"\n",
            b"\xef\xbb\xbf{\"event_type\":\"x\",\"event_type\":\"y\"}",
        ];
        for (name, target) in super::TARGETS {
            let runs = super::run_mutated(&seeds, target, super::secs_per_target());
            assert!(runs > 0, "{name} never ran");
        }
    }
}
