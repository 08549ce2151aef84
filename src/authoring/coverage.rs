//! `userbridge test --coverage`: which `[[fields]]` rules of a mapping no test exercises. A
//! rule is exercised when some test's request gives it something to work on (a value it
//! sets, defaults, clears, checks or refuses), as `translate --explain` reports it.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::Limits;
use crate::exchange::explain_offline;
use crate::mapping::{Mapping, MappingSet};

use super::test::TestRequest;

/// One mapping's rules and those its tests exercise.
#[derive(Debug)]
pub struct Coverage {
    /// The dialect.
    pub dialect: String,
    /// Every rule: `(file:line, source)`, in file order.
    pub rules: Vec<(String, String)>,
    /// The `file:line`s of the rules some test exercises.
    pub exercised: BTreeSet<String>,
}

impl Coverage {
    /// The rules no test exercises.
    pub fn missed(&self) -> Vec<&(String, String)> {
        self.rules
            .iter()
            .filter(|(at, _)| !self.exercised.contains(at))
            .collect()
    }

    /// The report `userbridge test --coverage` prints: a line, then each rule missed.
    pub fn report(&self) -> String {
        let missed = self.missed();
        let mut s = format!(
            "coverage {}: {} of {} rules exercised by a test",
            self.dialect,
            self.rules.len() - missed.len(),
            self.rules.len()
        );
        for (at, source) in missed {
            s.push_str(&format!("\n  not exercised: {at}  {source}"));
        }
        s
    }
}

/// The coverage of each of `mappings` by its own tests, run against `set`.
pub fn coverage(set: &MappingSet, limits: &Limits, mappings: &[&Mapping]) -> Vec<Coverage> {
    mappings
        .iter()
        .map(|m| {
            let base = m.file.parent().unwrap_or_else(|| Path::new("."));
            let mut exercised = BTreeSet::new();
            for t in &m.tests {
                let Some(req) = &t.spec.request else { continue };
                let Ok(req) = TestRequest::of(req, base) else {
                    continue;
                };
                let Some(e) = explain_offline(set, limits, &req.offline()) else {
                    continue;
                };
                if e.dialect != *m.dialect {
                    continue;
                }
                exercised.extend(
                    e.rules
                        .iter()
                        .filter(|r| r.exercised())
                        .map(|r| r.at.clone()),
                );
            }
            Coverage {
                dialect: m.dialect.to_string(),
                rules: m.rule_sites(),
                exercised,
            }
        })
        .collect()
}
