//! Runs one translation many times, for instruction counts under callgrind:
//! `valgrind --tool=callgrind target/release/examples/profile_translate [engine|hand]`.
//! Instruction counts are repeatable where wall-clock timings on a shared machine are not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../benches/common/baseline.rs"]
mod baseline;

use userbridge::mapping::{MappingSet, RouteMatch};

const ITER: usize = 20_000;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "engine".into());
    let body = std::fs::read("benches/data/commvault-update-958.json").unwrap();
    let set =
        MappingSet::load_dir(std::path::Path::new("mappings"), None, &Default::default()).unwrap();
    let RouteMatch::Found {
        mapping,
        route,
        params,
    } = set.route(&http::Method::PUT, "/webconsole/api/V4/user/42")
    else {
        panic!("route")
    };
    let h = http::HeaderMap::new();
    let locs = baseline::Locs::default();
    for _ in 0..ITER {
        if which == "hand" {
            std::hint::black_box(
                baseline::hand_written(&body, "42", &locs, &mapping.dialect).unwrap(),
            );
        } else {
            std::hint::black_box(mapping.translate(route, &params, &h, &body, 32).unwrap());
        }
    }
}
