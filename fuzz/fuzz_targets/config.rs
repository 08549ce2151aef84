//! Config and mapping loading: arbitrary text as a config file and as a mapping file. Every
//! outcome is a value or diagnostics with a place; nothing may panic.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use userbridge::config::Config;
use userbridge::mapping::load::load_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for d in Config::check_source(Path::new("fuzz.toml"), text) {
        let _ = d.to_string();
    }
    let vars = BTreeMap::from([("base".to_owned(), "/portal".to_owned())]);
    match load_str(Path::new("fuzz-mapping.toml"), text, &vars) {
        Ok(m) => {
            let _ = m.routes.len();
        }
        Err(diags) => {
            for d in diags {
                let _ = d.to_string();
            }
        }
    }
});
