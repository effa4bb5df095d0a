//! The journal's fuzz target body: any bytes as a block's payload (its frame's checksum is
//! what stops damage on disk; this is what runs when the checksum is forged, or a bug writes
//! nonsense). `fuzz/fuzz_targets/journal_block.rs` calls it under libFuzzer; the test below runs
//! it on mutations of a real block for a bounded time where no nightly toolchain is.

use candybar_core::event::Status;
use candybar_core::filter::{BlockSummary as _, Field, Filter, SummaryField};

use crate::format::{FRAME_HEADER_LEN, decode_block, read_block_header};
use crate::index::BlockIndex;

/// Any payload: decoding its entries and reading its index never panic, and an index that reads
/// answers every question without panicking.
pub fn block(data: &[u8]) {
    let _ = decode_block(data);
    let Some(h) = read_block_header(data) else {
        return;
    };
    if h.index_len == 0 {
        return;
    }
    let start = h.index_offset();
    let Some(bytes) = start
        .checked_add(h.index_len as usize)
        .and_then(|end| data.get(start..end))
    else {
        return;
    };
    let _ = BlockIndex::parse(bytes.to_vec(), (h.min_us, h.max_us));
    // With its checksum made right, so the mutation reaches the structure behind it.
    let mut forged = bytes.to_vec();
    if forged.len() >= 4 {
        let crc = crc32fast::hash(&forged[4..]);
        forged[..4].copy_from_slice(&crc.to_le_bytes());
    }
    let Some(index) = BlockIndex::parse(forged, (h.min_us, h.max_us)) else {
        return;
    };
    for field in [
        SummaryField::Type,
        SummaryField::RoutingKey,
        SummaryField::Field(Field::Domain),
        SummaryField::Field(Field::Session),
    ] {
        let _ = index.any_value(field, &mut |v| v.is_empty());
    }
    let _ = index.may_relate(0x1234_5678);
    let _ = index.may_have_status(Status::Error);
    if let Ok(f) = Filter::new("agent.*.completed OR corr:abc OR session:s-1 OR errors") {
        let _ = f.may_match_block(&index, 0);
    }
}

/// A real block's payload, to mutate.
#[must_use]
pub fn seed() -> Vec<u8> {
    let mut b = crate::format::BlockBuilder::default();
    for i in 0..20 {
        let m = candybar_core::event::RawMessage {
            received_us: i,
            routing_key: format!("rk.{}", i % 3),
            body: format!(
                r#"{{"event_id":"e{i}","event_type":"agent.step{}.completed","correlation_ids":["c{}"],"agent_context":{{"name":"a{}","session_id":"s-{}"}}}}"#,
                i % 4,
                i % 5,
                i % 2,
                i % 3
            )
            .into_bytes(),
            ..Default::default()
        };
        b.push_event(&m, &candybar_core::decode::decode(&m));
    }
    b.push_gap(1, 2, "broker restarted", true);
    b.seal(crate::format::ZSTD_LEVEL)
        .map(|frame| frame[FRAME_HEADER_LEN..].to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use candybar_core::fuzzing::{run_mutated, secs_per_target};

    /// The target on mutations of a real block (and on random bytes) for a bounded time.
    #[test]
    fn the_block_target_holds_on_mutated_blocks() {
        let seed = super::seed();
        assert!(!seed.is_empty(), "the seed block was built");
        super::block(&seed);
        let runs = run_mutated(&[&seed], super::block, secs_per_target());
        assert!(runs > 0);
    }
}
