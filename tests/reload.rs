//! SIGHUP reloads config and mappings in the real binary: a valid change takes effect without a
//! restart; a broken file is refused with its errors logged and the old config keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

fn hup(pid: u32) {
    common::binary::signal(pid, "-HUP");
}

async fn create(base: &str, token: &str, name: &str) -> u16 {
    common::vc_create(base, token, name).await.status().as_u16()
}

#[tokio::test]
async fn sighup_applies_a_valid_config_and_refuses_a_broken_one() {
    let gw = common::binary::start("info");
    let pid = gw.child.id();
    assert_eq!(create(&gw.base, "rotated-vc-token", "a1").await, 401);

    // A new credential: valid, applied on SIGHUP.
    let mut cfg = std::fs::read_to_string(&gw.config).unwrap();
    cfg.push_str(
        "\n[[credentials]]\nname = \"rotated\"\ndialect = \"vc-user-service\"\ntoken = \"rotated-vc-token\"\nroles = [\"user-administrator\"]\n",
    );
    std::fs::write(&gw.config, &cfg).unwrap();
    hup(pid);
    assert!(
        gw.wait_for_log("config and mappings reloaded", 10),
        "no reload logged"
    );
    assert_eq!(create(&gw.base, "rotated-vc-token", "a2").await, 200);

    // A broken file: refused, the errors logged with their line, the old config serving.
    let broken = cfg.replace("max_body_bytes = 65536", "max_body_bytes = \"big\"");
    assert_ne!(broken, cfg);
    std::fs::write(&gw.config, broken).unwrap();
    hup(pid);
    assert!(gw.wait_for_log("reload refused", 10), "no refusal logged");
    let log = gw.log.lock().unwrap().clone();
    assert!(
        log.contains("max_body_bytes"),
        "the refusal does not name the key:\n{log}"
    );
    assert_eq!(create(&gw.base, "rotated-vc-token", "a3").await, 200);
    assert!(gw.child.id() == pid);
    let m = reqwest::get(format!("{}/metrics", gw.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("userbridge_config_reloads_total{outcome=\"applied\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("userbridge_config_reloads_total{outcome=\"refused\"} 1"),
        "{m}"
    );
}
