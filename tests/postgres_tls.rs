//! TLS to PostgreSQL as libpq's URLs write it: `sslmode=verify-full&sslrootcert=CA.pem`
//! connects over TLS to a cluster whose certificate that CA signed; without the CA (the
//! system's roots) the certificate is refused — the gateway answers 503 and writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::postgres::Postgres;

/// An in-process gateway on `pg` through `url`.
async fn gateway_at(pg: &Postgres, url: String) -> (String, tokio::sync::oneshot::Sender<()>) {
    common::gateway::serve_config(pg.config_via(url)).await
}

#[tokio::test]
async fn verify_full_with_the_clusters_ca_connects_over_tls_and_without_it_is_refused() {
    let pg = Postgres::start();
    let ca = pg.enable_tls();

    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url,
        ca.display()
    );
    let (base, _stop) = gateway_at(&pg, verified).await;
    let r = common::vc_create(&base, "demo-vc-token", "tina").await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let encrypted = pg.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = 'userbridge' AND s.ssl",
    );
    assert_ne!(encrypted, "0", "the gateway's connections are not TLS");
    let plain = pg.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = 'userbridge' AND NOT s.ssl",
    );
    assert_eq!(plain, "0");

    // The system's roots do not hold the cluster's CA: refused, unavailable, nothing written.
    let system = format!("{}?sslmode=verify-full", pg.url);
    let (base, _stop) = gateway_at(&pg, system).await;
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let r = common::vc_create(&base, "demo-vc-token", "mallory").await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        pg.psql("SELECT count(*) FROM users WHERE user_name = 'mallory'"),
        "0"
    );
}
