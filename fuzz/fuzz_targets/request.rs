//! The request path: route matching on an arbitrary path, then the shipped mappings' strict
//! JSON parse and translation of an arbitrary body, then the answer in the dialect (success
//! rendered from the operation's user, or the error). Nothing may panic.
//!
//! Input: first byte chooses a route (or, with its high bit set, the next line is the path);
//! the rest is the body.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use userbridge::config::{Config, Flags};
use userbridge::exchange::{DryRun, Offline, dry_run};
use userbridge::mapping::MappingSet;

static SET: LazyLock<(Config, MappingSet)> = LazyLock::new(|| {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (cfg, _) = Config::load(
        Some(&root.join("config/userbridge.toml")),
        &Flags::default(),
    )
    .expect("the shipped config loads");
    let set = MappingSet::load_dir(&root.join("mappings"), None, &cfg.mapping_vars())
        .expect("the shipped mappings load");
    (cfg, set)
});

const ROUTES: &[(&str, &str)] = &[
    ("PUT", "/user-service/v1/user"),
    ("POST", "/user-service/v1/user"),
    ("PUT", "/webconsole/api/V4/user/42"),
    ("PUT", "/commandcenter/api/v4/user/7"),
    (
        "PUT",
        "/portal/security/v1/users/8b39869a-a778-4a08-a2ff-bf967946e836",
    ),
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (method, path, body): (&str, String, &[u8]) = if first & 0x80 != 0 {
        let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let path = String::from_utf8_lossy(&rest[..split]).into_owned();
        let body = rest.get(split + 1..).unwrap_or(&[]);
        (if first & 1 == 0 { "PUT" } else { "POST" }, path, body)
    } else {
        let (m, p) = ROUTES[usize::from(first) % ROUTES.len()];
        (m, p.to_owned(), rest)
    };
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let headers = http::HeaderMap::new();
    let req = Offline {
        method: &method,
        path: &path,
        headers: &headers,
        body,
        request_id: "fuzz",
    };
    // The gateway's own exchange: route, limits, strict parse, translation, the answer.
    if let DryRun::Translated {
        exchange,
        translation,
    } = dry_run(&SET.1, &SET.0.limits, req, None)
    {
        let _ = serde_json::to_string(&translation.op);
        let _ = exchange.answer(&userbridge::backend::Stored::from_doc(translation.op.user));
    }
});
