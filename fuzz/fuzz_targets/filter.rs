//! SCIM filters: arbitrary text as a `/scim/v2` filter and as a `sortBy`. Nothing may panic; a
//! filter that parses prints to text that parses to the same filter, and evaluates on a user.

#![no_main]

use libfuzzer_sys::fuzz_target;
use userbridge::canonical::schemas::USER;
use userbridge::filter::{Sort, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Sort::parse(text, Some("descending"), &USER);
    match parse(text, &USER) {
        Ok(f) => {
            let printed = f.to_string();
            let again = parse(&printed, &USER)
                .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
            assert_eq!(again.to_string(), printed, "{text:?}");
            let user = serde_json::json!({
                "userName": "bjensen", "active": true, "title": "Guide",
                "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
                "meta": {"created": "2011-08-01T18:29:49Z"},
                "urn:userbridge:params:scim:schemas:extension:2.0:User": {"numericId": 3}
            });
            if let Some(doc) = user.as_object() {
                let _ = f.matches(doc);
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty());
        }
    }
});
