//! An in-process gateway on a real socket (port 0) over a backend of choice, with the peer
//! behind it started for the test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use userbridge::config::{BackendConfig, Config, Flags, OutboundConfig};
use userbridge::mapping::MappingSet;
use userbridge::server::layer::Handler;
use userbridge::server::{Handle, State, serve_with};

use super::peers::{ScimServer, WebhookReceiver};

/// A running gateway (and the peer behind it); stops when dropped.
pub struct Gateway {
    pub base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
    _peer: Option<Box<dyn std::any::Any + Send>>,
    pub config: Config,
}

/// The backends the gateway is tested on.
#[derive(Clone, Copy)]
pub enum Kind {
    /// The embedded store, in a temp dir.
    Sqlite,
    /// A `scim2-server` process.
    Scim,
    /// A webhook receiver over its own SQLite store.
    Webhook,
    /// A real PostgreSQL cluster started for the test (`scripts/pg`).
    Postgres,
}

/// The secrets key the tests' gateways on PostgreSQL share (every instance must seal under
/// the same key).
pub const PG_SECRETS_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

pub async fn start() -> Gateway {
    start_on(Kind::Sqlite).await
}

fn scim_backend(server: &ScimServer, dir: &Path) -> BackendConfig {
    BackendConfig::Scim {
        url: server.url.clone(),
        token: None,
        index: dir.join("scim-index.db"),
        http: OutboundConfig::default(),
    }
}

/// A gateway over a `scim2-server` the caller started (and keeps).
pub async fn start_on_scim(server: &ScimServer) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let backend = scim_backend(server, dir.path());
    launch(dir, backend, None).await
}

pub async fn start_on(kind: Kind) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let config = base_config();
    let (backend, peer): (_, Option<Box<dyn std::any::Any + Send>>) = match kind {
        Kind::Sqlite => (
            BackendConfig::Sqlite {
                path: dir.path().join("store.db"),
            },
            None,
        ),
        Kind::Scim => {
            let server = ScimServer::start().await;
            (scim_backend(&server, dir.path()), Some(Box::new(server)))
        }
        Kind::Postgres => {
            let pg = super::postgres::Postgres::start();
            (pg.backend(), Some(Box::new(pg)))
        }
        Kind::Webhook => {
            let receiver = WebhookReceiver::start(&config.groups).await;
            (
                BackendConfig::Webhook {
                    url: receiver.url.clone(),
                    token: None,
                    http: OutboundConfig::default(),
                },
                Some(Box::new(receiver)),
            )
        }
    };
    launch(dir, backend, peer).await
}

/// Serves `config` (its mappings compiled, its backend opened) on a loopback port: the base
/// URL, and the sender that stops it.
pub async fn serve_config(config: Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    serve_config_with(config, Handle).await
}

/// [`serve_config`] with `handler` as the innermost service of the stack.
pub async fn serve_config_with<H: Handler<bytes::Bytes>>(
    config: Config,
    handler: H,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    super::logs::capture();
    let set = MappingSet::load_dir(&config.mappings.dir, None, &config.mapping_vars()).unwrap();
    let state = State::new(config, set).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with(
        listener,
        Arc::new(ArcSwap::from_pointee(state)),
        async {
            let _ = rx.await;
        },
        Duration::from_secs(1),
        handler,
    ));
    (base, tx)
}

/// The shipped config over a mirror: a SQLite primary in `dir`, the SCIM provider at
/// `shadow_url` (called with `http`) as the shadow, the queue and the audit trail in `dir`.
pub fn mirror_config(dir: &Path, shadow_url: &str, http: OutboundConfig) -> Config {
    let mut config = base_config();
    config.backends.insert(
        "primary".into(),
        BackendConfig::Sqlite {
            path: dir.join("primary.db"),
        },
    );
    config.backends.insert(
        "shadow".into(),
        BackendConfig::Scim {
            url: shadow_url.to_owned(),
            token: None,
            index: dir.join("scim-index.db"),
            http,
        },
    );
    config.backend = BackendConfig::Mirror {
        primary: "primary".into(),
        shadow: "shadow".into(),
        queue: dir.join("mirror-queue.db"),
    };
    config.audit.enabled = true;
    config.audit.path = dir.join("audit.jsonl");
    config
}

/// The shipped config, as the tests start from; no audit trail (its default file is relative
/// to the working directory, the checkout).
pub fn base_config() -> Config {
    let mut c = Config::load(Some(Path::new("config/userbridge.toml")), &Flags::default())
        .unwrap()
        .0;
    c.audit.enabled = false;
    c
}

async fn launch(
    dir: tempfile::TempDir,
    backend: BackendConfig,
    peer: Option<Box<dyn std::any::Any + Send>>,
) -> Gateway {
    let mut config = base_config();
    if matches!(backend, BackendConfig::Postgres { .. }) {
        config.secrets.key = Some(userbridge::redact::Secret::new(PG_SECRETS_KEY));
    }
    config.backend = backend;
    // The audit trail on, in the gateway's own directory, as in production.
    config.audit.enabled = true;
    config.audit.path = dir.path().join("audit.jsonl");
    let (base, tx) = serve_config(config.clone()).await;
    Gateway {
        base,
        _stop: tx,
        _dir: dir,
        _peer: peer,
        config,
    }
}

/// The text of `base`'s `/metrics`.
pub async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the metric `name` (an exact series name) at `base`'s `/metrics`; -1 when absent.
pub async fn metric(base: &str, name: &str) -> i64 {
    let text = metrics_text(base).await;
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse::<f64>().ok())?
        })
        .map_or(-1, |v| v as i64)
}

/// `GET /scim/v2/Users?filter=userName eq "NAME"` at `base` with the demo SCIM token: the
/// ListResponse.
pub async fn scim_users_named(base: &str, name: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!(
            "{base}/scim/v2/Users?filter=userName%20eq%20%22{name}%22"
        ))
        .bearer_auth("demo-scim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
