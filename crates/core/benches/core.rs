//! Core benchmarks: decode + store insert, and re-filtering a million stored events.
//! `cargo bench -p candybar-core --bench core`; figures are quoted in the README.

use std::hint::black_box;
use std::time::Duration;

use candybar_core::demo::{Demo, DemoConfig};
use candybar_core::event::RawMessage;
use candybar_core::filter::{Filter, FilteredView};
use candybar_core::registry::Registry;
use candybar_core::store::{EventStore, StoreConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const T0: i64 = 1_767_225_600_000_000;

fn demo_messages(n: usize, compact: bool) -> Vec<RawMessage> {
    let cfg = DemoConfig {
        compact,
        ..DemoConfig::default()
    };
    let mut demo = Demo::new(cfg, &Registry::example());
    (0..n)
        .map(|i| demo.next_message(T0 + i as i64 * 20))
        .collect()
}

/// Compact demo events (~380 B, nearest the goal's ~300 B) and the full ones (~490 B).
fn decode_insert(c: &mut Criterion) {
    for compact in [true, false] {
        decode_insert_of(c, &demo_messages(100_000, compact));
    }
}

fn decode_insert_of(c: &mut Criterion, msgs: &[RawMessage]) {
    let mean = msgs.iter().map(|m| m.body.len()).sum::<usize>() / msgs.len();
    let mut g = c.benchmark_group(format!("ingest (mean body {mean} B)"));
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("decode only", |b| {
        b.iter(|| {
            for m in msgs {
                black_box(candybar_core::decode::decode(m));
            }
        });
    });
    // One core: the store compresses full blocks on this thread, and the last block is sealed
    // inside the timed part.
    g.bench_function("decode + store insert, one core", |b| {
        b.iter_batched_ref(
            || EventStore::single_threaded(StoreConfig::default()),
            |store| {
                for m in msgs {
                    store.insert(m);
                }
                store.flush();
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn refilter(c: &mut Criterion) {
    let msgs = demo_messages(200_000, true);
    let mut store = EventStore::new(StoreConfig::default());
    for round in 0..5 {
        for m in &msgs {
            let mut m = m.clone();
            m.received_us += round * 4_000_000;
            store.insert(&m);
        }
    }
    eprintln!(
        "store: {} events, {} MB",
        store.len(),
        store.memory_bytes() >> 20
    );
    let mut g = c.benchmark_group(format!("re-filter {} stored events", store.len()));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for expr in [
        "agent.*.completed",
        "domain:llm errors",
        "timeout",
        "\"flaky consumer\"",
    ] {
        let mut view = FilteredView::new(Filter::new(expr).expect("valid"));
        g.bench_function(expr, |b| {
            b.iter(|| {
                view.set_filter(Filter::new(expr).expect("valid"));
                view.update(&store, T0, u64::MAX);
                black_box(view.len())
            });
        });
    }
    g.finish();
}

criterion_group!(benches, decode_insert, refilter);
criterion_main!(benches);
