//! The real binary: `translate` over every shared sample whose outcome needs no server, and
//! `check` on a mapping with planted mistakes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the line that failed

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{contains, samples_dir};
use serde_json::Value;

const ID: &str = "8b39869a-a778-4a08-a2ff-bf967946e836";
const NUMERIC_ID: i64 = 42;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_userbridge"))
}

fn substitute(v: &Value) -> Value {
    match v {
        Value::String(s) if s == "{{numericId}}" => Value::from(NUMERIC_ID),
        Value::String(s) => Value::String(
            s.replace("{{id}}", ID)
                .replace("{{numericId}}", &NUMERIC_ID.to_string()),
        ),
        Value::Array(a) => Value::Array(a.iter().map(substitute).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), substitute(v))).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn every_offline_sample_translates_with_its_expected_outcome() {
    let dir = samples_dir();
    let mut files: Vec<PathBuf> = Vec::new();
    for d in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("samples at {}: {e}", dir.display()))
    {
        let d = d.unwrap().path();
        if d.is_dir() {
            files.extend(std::fs::read_dir(&d).unwrap().map(|f| f.unwrap().path()));
        }
    }
    files.sort();
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let case = substitute(&case);
        let status = case["expect"]["status"].as_u64().unwrap();
        if status != 200 && status != 400 {
            continue; // 401/403/404/409 need credentials or a store: the server's tests.
        }
        let req = &case["request"];
        let body = tmp.path().join("body.json");
        std::fs::write(&body, serde_json::to_vec(&req["body"]).unwrap()).unwrap();
        let mut cmd = bin();
        cmd.args([
            "translate",
            req["method"].as_str().unwrap(),
            req["path"].as_str().unwrap(),
        ])
        .arg(&body);
        for (k, v) in req["headers"].as_object().unwrap() {
            cmd.arg("-H").arg(format!("{k}: {}", v.as_str().unwrap()));
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let name = f.display();
        if status == 200 {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got: Value = serde_json::from_str(&stdout).unwrap();
            if let Some(want) = case["expect"].get("canonical") {
                assert!(
                    contains(&got, want),
                    "{name}: canonical\n{got:#}\ndoes not contain\n{want:#}"
                );
            }
        } else {
            assert_eq!(out.status.code(), Some(2), "{name}: {stdout}");
            assert!(stdout.starts_with("HTTP 400\n"), "{name}: {stdout}");
            for word in case["expect"]["error_mentions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert!(
                    stdout.contains(word.as_str().unwrap()),
                    "{name}: error does not mention {word}: {stdout}"
                );
            }
        }
        // No sample secret ever reaches the output.
        for secret in [
            "Tr0ub4dor&3-ann",
            "JBSWY3DPEHPK3PXP",
            "N3w-Secret-ann",
            "<admin-password>",
        ] {
            assert!(!stdout.contains(secret), "{name}: secret printed: {stdout}");
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} samples checked");
}

#[test]
fn translate_show_secrets_reveals_and_default_hides() {
    let body =
        r#"{"newPassword":"TjN3LVNlY3JldC1hbm4=","validationPassword":"PGFkbWluLXBhc3N3b3JkPg=="}"#;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("b.json");
    std::fs::write(&p, body).unwrap();
    let hidden = bin()
        .args(["translate", "PUT", "/webconsole/api/V4/user/7"])
        .arg(&p)
        .output()
        .unwrap();
    let shown = bin()
        .args([
            "translate",
            "--show-secrets",
            "PUT",
            "/webconsole/api/V4/user/7",
        ])
        .arg(&p)
        .output()
        .unwrap();
    let (hidden, shown) = (
        String::from_utf8_lossy(&hidden.stdout),
        String::from_utf8_lossy(&shown.stdout),
    );
    assert!(
        !hidden.contains("N3w-Secret-ann") && hidden.contains("\"***\""),
        "{hidden}"
    );
    assert!(
        shown.contains("N3w-Secret-ann") && shown.contains("<admin-password>"),
        "{shown}"
    );
}

#[test]
fn translate_unknown_route_is_a_clear_message_and_exit_2() {
    let out = bin()
        .args(["translate", "GET", "/nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no mapping has a route for GET /nowhere")
    );
}

fn write_config(dir: &Path, mappings: &Path) -> PathBuf {
    let cfg = dir.join("userbridge.toml");
    std::fs::write(
        &cfg,
        format!("[mappings]\ndir = {:?}\n", mappings.display().to_string()),
    )
    .unwrap();
    cfg
}

#[test]
fn check_reports_all_planted_mistakes_with_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let mdir = tmp.path().join("mappings");
    std::fs::create_dir(&mdir).unwrap();
    let good = std::fs::read_to_string("mappings/opscenter.toml").unwrap();
    // Three mistakes: a bad JSONPath, an unknown transform, a wrong type.
    let bad = good
        .replacen("source = \"$.firstName\"", "source = \"$.firstName[\"", 1)
        .replacen(
            "source = \"$.lastName\"\nto = \"name.familyName\"",
            "source = \"$.lastName\"\nto = \"name.familyName\"\ntransform = [\"rot13\"]",
            1,
        )
        .replacen("max_length = 128", "max_length = \"128\"", 1);
    std::fs::write(mdir.join("opscenter.toml"), &bad).unwrap();
    let cfg = write_config(tmp.path(), &mdir);
    let out = bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let col_of = |needle: &str, at: &str| {
        bad.lines()
            .nth(line_of(needle) - 1)
            .unwrap()
            .find(at)
            .unwrap()
            + 1
    };
    for (needle, at, what) in [
        ("$.firstName[", "\"$.firstName[", "invalid JSONPath"),
        ("rot13", "\"rot13\"", "unknown variant `rot13`"),
        ("max_length = \"128\"", "\"128\"", "invalid type"),
    ] {
        let place = format!(
            "opscenter.toml:{}:{}: ",
            line_of(needle),
            col_of(needle, at)
        );
        let hit = err.lines().find(|l| l.contains(&place));
        assert!(
            hit.is_some_and(|l| l.contains(what)),
            "missing `{place}{what}` in:\n{err}"
        );
    }
    assert!(err.contains("^"), "caret under the fault:\n{err}");
    assert!(
        err.trim_end().ends_with("error: 3 problems in 1 file"),
        "{err}"
    );
}

#[test]
fn check_is_clean_on_the_shipped_files() {
    let out = bin().args(["check"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: config and 3 mappings"));
}

#[test]
fn shipped_files_carry_schema_lines_and_the_schemas_are_current() {
    for f in [
        "config/userbridge.toml",
        "config/container.toml",
        "mappings/vc-user-service.toml",
        "mappings/commvault-v4.toml",
        "mappings/opscenter.toml",
    ] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with("#:schema ../schemas/"),
            "{f} has no #:schema line"
        );
    }
    for which in ["config", "mapping"] {
        let out = bin().args(["schema", which]).output().unwrap();
        let committed = std::fs::read_to_string(format!("schemas/{which}.schema.json")).unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout) == committed,
            "schemas/{which}.schema.json is stale: run `userbridge schema {which} > schemas/{which}.schema.json`"
        );
    }
}

#[test]
fn translate_reverse_renders_a_canonical_user_in_the_dialect_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user.json");
    std::fs::write(
        &user,
        r#"{"id": "abc", "userName": "ann", "password": "SECRET-PW-1",
            "name": {"givenName": "Ann", "familyName": "Smith"},
            "phoneNumbers": [{"value": "tel:+1-5550100;ext=42", "primary": true}],
            "urn:userbridge:params:scim:schemas:extension:2.0:User":
              {"numericId": 7, "authenticator": "LOCAL", "mfa": {"enabled": true, "secret": "SECRET-MFA-1"}}}"#,
    )
    .unwrap();
    let out = bin()
        .args(["translate", "--reverse", "PUT", "/user-service/v1/user"])
        .arg(&user)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (status, body) = text.split_once('\n').unwrap();
    assert_eq!(status, "HTTP 200");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["userKey"]["username"], "ann");
    assert_eq!(body["userKey"]["authenticator"], "LOCAL");
    assert_eq!(body["lastName"], "Smith");
    assert_eq!(body["primaryPhone"], "5550100");
    assert_eq!(body["primaryPhoneCountryCode"], "1");
    assert_eq!(body["primaryPhoneExtension"], "42");
    assert_eq!(body["usingMfa"], true);
    assert!(!text.contains("SECRET"), "a secret was rendered: {text}");
}

/// What an editor does with the `#:schema` line: each shipped file, read as TOML, validates
/// against the committed JSON Schema it names (and a broken copy does not, so the check bites).
#[test]
fn shipped_files_validate_against_their_schemas() {
    let validator = |schema: &str| {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
        jsonschema::validator_for(&s).unwrap()
    };
    let as_json = |text: &str| -> serde_json::Value {
        let v: toml::Value = toml::from_str(text).unwrap();
        serde_json::to_value(v).unwrap()
    };
    let config = validator("schemas/config.schema.json");
    let mapping = validator("schemas/mapping.schema.json");
    for (f, v) in [
        ("config/userbridge.toml", &config),
        ("config/container.toml", &config),
        ("mappings/vc-user-service.toml", &mapping),
        ("mappings/commvault-v4.toml", &mapping),
        ("mappings/opscenter.toml", &mapping),
    ] {
        let doc = as_json(&std::fs::read_to_string(f).unwrap());
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{f}: {errors:?}");
    }
    let broken = as_json("[server]\nlisten = 8080\nlistne = \"x\"\n");
    assert!(!config.is_valid(&broken));
}

/// `userbridge test`: the shipped mappings' tests pass (exit 0); an edited copy with one wrong
/// expectation fails at that test's line with a diff (exit 1), in the JUnit file too (0600);
/// a test that could never run is a load error at its name, for `check` and `test` alike.
#[test]
fn test_runs_the_mappings_own_tests_and_points_at_a_failure() {
    let out = bin().args(["test"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("test result: ok. "), "{stdout}");
    assert!(
        stdout.contains("test opscenter: register user ... ok"),
        "{stdout}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string("mappings/opscenter.toml").unwrap();
    let at = good.find("name = \"reject first name 65\"").unwrap();
    let bad = common::replace_after(
        &good,
        "name = \"reject first name 65\"",
        "rule = \"max_length\"",
        "rule = \"min_length\"",
    );
    let copy = tmp.path().join("opscenter.toml");
    std::fs::write(&copy, &bad).unwrap();
    let junit = tmp.path().join("report.xml");
    let out = bin()
        .arg("test")
        .arg(&copy)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = bad[..at].matches('\n').count() + 1;
    assert!(
        stdout.contains(&format!(
            "{}:{line}:8: test `reject first name 65` failed",
            copy.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule: expected \"min_length\", got \"max_length\""),
        "{stdout}"
    );
    assert!(stdout.contains("FAILED. 22 passed; 1 failed"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"1\"") && xml.contains("<failure message=\"rule: expected &quot;min_length&quot;, got &quot;max_length&quot;\">"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&junit).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let broken = bad.replacen(
        "[[tests]]\nname = \"reject first name 65\"",
        "[[tests]]\nname = \"nothing to run\"\nexpect = { status = 400 }\n\n[[tests]]\nname = \"reject first name 65\"",
        1,
    );
    std::fs::write(&copy, &broken).unwrap();
    let out = bin().arg("test").arg(&copy).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let line = broken
        .lines()
        .position(|l| l == "name = \"nothing to run\"")
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "{}:{line}:8: a test needs a `request` or a `render`",
            copy.display()
        )),
        "{stderr}"
    );
}

/// `translate --explain`: each rule at its line with what it did (secrets as `***`), each
/// request member with what became of it; `--explain=json` is one object with the result.
#[test]
fn translate_explain_says_where_each_attribute_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let body = tmp.path().join("body.json");
    std::fs::write(
        &body,
        r#"{"userKey":{"username":"ann","authenticator":"LOCAL"},"password":"Expl41n-me!",
            "firstName":"Ann","locale":"en_US","primaryPhone":"5550100",
            "primaryPhoneCountryCode":"+1","id":"u-1","bogus":true}"#,
    )
    .unwrap();
    let out = bin()
        .args(["translate", "--explain", "PUT", "/user-service/v1/user"])
        .arg(&body)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let src = std::fs::read_to_string("mappings/vc-user-service.toml").unwrap();
    let line_of = |needle: &str| {
        let at = src.find(needle).unwrap();
        let table = src[..at].rfind("[[fields]]").unwrap();
        src[..table].matches('\n').count() + 1
    };
    let first = line_of("source = \"$.firstName\"");
    assert!(
        text.contains(&format!(
            "mappings/vc-user-service.toml:{first}  $.firstName → name.givenName: set = \"Ann\""
        )),
        "{text}"
    );
    assert!(text.contains("$.locale | replace(\"_\" → \"-\") → locale: set = \"en-US\""));
    assert!(text.contains("→ password: set = \"***\""), "{text}");
    assert!(!text.contains("Expl41n-me!"), "{text}");
    assert!(text.contains("→ phoneNumbers[primary].value: set = \"tel:+1-5550100\""));
    let member = |m: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{m} ")))
            .unwrap_or_else(|| panic!("no line for {m}:\n{text}"))
            .to_owned()
    };
    assert!(member("bogus").contains("ignored"), "{text}");
    assert!(member("id").contains("read-only"), "{text}");
    assert!(member("password").contains("secret"), "{text}");
    assert!(member("primaryPhone").contains("mapped"), "{text}");

    let out = bin()
        .args([
            "translate",
            "--explain=json",
            "PUT",
            "/user-service/v1/user",
        ])
        .arg(&body)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["explanation"]["route"], "create-user");
    assert_eq!(v["result"]["canonical"]["user"]["name"]["givenName"], "Ann");
    assert_eq!(v["result"]["canonical"]["user"]["password"], "***");
    let rule = v["explanation"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "$.firstName")
        .unwrap();
    assert_eq!(rule["at"], format!("mappings/vc-user-service.toml:{first}"));

    // A refusal: the rule that refused says so, and the exit code is translate's 2.
    std::fs::write(
        &body,
        r#"{"userKey":{"username":"ann","authenticator":"LOCAL"},"email":"x"}"#,
    )
    .unwrap();
    let out = bin()
        .args(["translate", "--explain", "PUT", "/user-service/v1/user"])
        .arg(&body)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("→ emails[primary].value: refused: email must be an email address"),
        "{text}"
    );
}
