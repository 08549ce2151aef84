//! The shipped mappings' own `[[tests]]` (written in `mappings/*.toml`, run as `userbridge
//! test` runs them): every one passes, and the corpus is all there. Each test is a request as
//! a client sends it (or a stored user to render) and the canonical operation, refusal or
//! answer it must give; `userbridge test --show` prints what a test produced.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the line that failed

mod common;

use std::path::Path;

use userbridge::mapping::MappingSet;

#[test]
fn the_shipped_mappings_pass_their_own_tests() {
    let set = MappingSet::load_dir(Path::new("mappings"), None, &Default::default())
        .expect("shipped mappings load");
    let (cfg, _) = userbridge::config::Config::load(
        Some(Path::new("config/userbridge.toml")),
        &Default::default(),
    )
    .expect("the shipped config loads");
    let reports = userbridge::authoring::test::run(&set, &cfg.limits, &[]);
    for m in &set.mappings {
        let n = reports.iter().filter(|r| r.dialect == *m.dialect).count();
        assert!(n >= 20, "{}: only {n} tests", m.dialect);
    }
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(userbridge::authoring::test::Report::failure)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} mapping tests fail:\n{}",
        failures.len(),
        reports.len(),
        failures.join("\n\n")
    );
    assert!(reports.len() >= 124, "{} tests", reports.len());
}

/// "Tests for every rule": each `[[fields]]` rule of the shipped mappings is exercised by some
/// test's request; and a rule no test reaches is named at its place.
#[test]
fn every_shipped_rule_is_exercised_by_a_test() {
    let set = MappingSet::load_dir(Path::new("mappings"), None, &Default::default()).unwrap();
    let limits = userbridge::config::Limits::default();
    let all: Vec<&userbridge::mapping::Mapping> = set.mappings.iter().map(|m| &**m).collect();
    for c in userbridge::authoring::coverage::coverage(&set, &limits, &all) {
        assert!(c.rules.len() >= 10, "{}", c.report());
        assert!(c.missed().is_empty(), "{}", c.report());
    }
    // Without its tests, Ops Center's rules are all missed, each at its line.
    let src = std::fs::read_to_string("mappings/opscenter.toml").unwrap();
    let cut = src.find("\n[[tests]]").unwrap();
    let file = Path::new("mappings/opscenter.toml");
    let m = userbridge::mapping::load::load_str(file, &src[..cut], &Default::default()).unwrap();
    let bare = MappingSet {
        mappings: vec![std::sync::Arc::new(m)],
    };
    let c = userbridge::authoring::coverage::coverage(&bare, &limits, &[&bare.mappings[0]]);
    let report = c[0].report();
    assert_eq!(c[0].missed().len(), c[0].rules.len(), "{report}");
    let line = src
        .lines()
        .position(|l| l == "source = \"$.firstName\"")
        .unwrap(); // 0-based: the [[fields]] line is above
    assert!(
        report.contains(&format!("mappings/opscenter.toml:{line}  $.firstName")),
        "{report}"
    );
}

/// A wrong expectation fails, naming the test's place and what differs (the runner cannot
/// pass everything).
#[test]
fn a_wrong_expectation_fails_at_its_place() {
    let src = std::fs::read_to_string("mappings/opscenter.toml").unwrap();
    let at = src.find("name = \"register user\"").unwrap();
    let edited = common::replace_after(
        &src,
        "name = \"register user\"",
        "userName = \"user_1\"",
        "userName = \"someone-else\"",
    );
    let file = Path::new("mappings/opscenter.toml");
    let m = userbridge::mapping::load::load_str(file, &edited, &Default::default()).unwrap();
    let set = MappingSet {
        mappings: vec![std::sync::Arc::new(m)],
    };
    let reports =
        userbridge::authoring::test::run(&set, &userbridge::config::Limits::default(), &[]);
    let failed: Vec<_> = reports.iter().filter(|r| !r.passed()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let line = edited[..at].matches('\n').count() + 1;
    assert_eq!(failed[0].place.line, line);
    assert!(
        failed[0].failures[0].contains("-     \"userName\": \"someone-else\"")
            && failed[0].failures[0].contains("+     \"userName\": \"user_1\""),
        "{}",
        failed[0].failures[0]
    );
}
