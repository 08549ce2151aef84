//! Translation cost: the 958-byte Commvault V4 update (every field of the vendor page, three
//! groups, two Base64 passwords) through the mapping engine, and through a hand-written serde
//! conversion of the same fields with the same checks, in one run.
//!
//! `cargo bench --bench translate`; the ratio engine / hand-written is the figure that counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[path = "common/baseline.rs"]
mod baseline;

use baseline::{Locs, hand_written};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use std::hint::black_box;
use userbridge::exchange::Exchange;
use userbridge::mapping::MappingSet;

const BODY: &[u8] = include_bytes!("data/commvault-update-958.json");
const PATH: &str = "/webconsole/api/V4/user/42";

fn bench(c: &mut Criterion) {
    let set = MappingSet::load_dir(Path::new("mappings"), None, &Default::default()).unwrap();
    let method = http::Method::PUT;
    // The gateway's own exchange for the route (what `dry_run` and the server run).
    let exchange = Exchange::route(&set, &method, PATH).expect("route");
    let limits = userbridge::config::Limits::default();
    let mapping = &exchange.mapping;
    let headers = http::HeaderMap::new();
    let locs = Locs::default();
    // Both must produce the same operation, or the comparison means nothing.
    let engine = exchange.translate(&headers, BODY, &limits).unwrap().op;
    let by_hand = hand_written(BODY, "42", &locs, &mapping.dialect).unwrap();
    assert_eq!(
        engine.to_exposed_json(),
        by_hand.to_exposed_json(),
        "engine and hand-written disagree"
    );

    let mut g = c.benchmark_group("commvault-update-958B");
    g.bench_function("mapping-engine", |b| {
        b.iter(|| {
            exchange
                .translate(&headers, black_box(BODY), &limits)
                .unwrap()
        })
    });
    g.bench_function("hand-written-serde", |b| {
        b.iter(|| hand_written(black_box(BODY), black_box("42"), &locs, &mapping.dialect).unwrap())
    });
    g.bench_function("parse-only-strict", |b| {
        b.iter(|| userbridge::json::parse_strict(black_box(BODY), 32).unwrap())
    });
    g.bench_function("parse-only-serde-value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(BODY)).unwrap())
    });
    g.finish();

    // Under `cargo test` (no `--bench`), criterion runs each function once; skip the long part.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Wall clock on a shared machine drifts between criterion's groups; this alternates short
    // batches of both so that drift hits both alike, and prints the median per-batch ratio.
    const BATCH: u32 = 2_000;
    let mut ratios = Vec::new();
    let (mut engine_ns, mut hand_ns) = (Vec::new(), Vec::new());
    for _ in 0..41 {
        let t = std::time::Instant::now();
        for _ in 0..BATCH {
            black_box(
                exchange
                    .translate(&headers, black_box(BODY), &limits)
                    .unwrap(),
            );
        }
        let e = t.elapsed().as_nanos() as f64 / f64::from(BATCH);
        let t = std::time::Instant::now();
        for _ in 0..BATCH {
            black_box(
                hand_written(black_box(BODY), black_box("42"), &locs, &mapping.dialect).unwrap(),
            );
        }
        let h = t.elapsed().as_nanos() as f64 / f64::from(BATCH);
        engine_ns.push(e);
        hand_ns.push(h);
        ratios.push(e / h);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "interleaved (41 rounds of {BATCH}): engine {:.2} µs, hand-written {:.2} µs, median ratio {:.2}x",
        median(&mut engine_ns) / 1000.0,
        median(&mut hand_ns) / 1000.0,
        median(&mut ratios)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
