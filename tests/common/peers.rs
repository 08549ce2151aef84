//! Real peers the tests start: a `scim2-server` process (PyPI, installed into `.venv` by
//! `scripts/test`) and a webhook receiver over a real SQLite store.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use userbridge::backend::sqlite::Sqlite;
use userbridge::backend::{Backend, BackendError, Search, Store, Stored, Want};
use userbridge::canonical::{OpKind, Operation, UserDoc};
use userbridge::config::GroupConfig;

/// A program from the project's virtualenv, else from `PATH`.
pub fn venv_bin(name: &str) -> PathBuf {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running `scim2-server`, killed when dropped.
pub struct ScimServer {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    child: Child,
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ScimServer {
    /// The process id (to pause it with SIGSTOP and resume it with SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `scim2-server` with the userbridge SCIM schemas and waits until it answers.
    pub async fn start() -> ScimServer {
        Self::start_with(true).await
    }

    /// Starts `scim2-server`, with the userbridge schemas or with RFC 7643's only.
    pub async fn start_with(userbridge_schemas: bool) -> ScimServer {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let port = free_port();
        let bin = venv_bin("scim2-server");
        let mut cmd = Command::new(&bin);
        cmd.arg("--port").arg(port.to_string());
        if userbridge_schemas {
            cmd.arg("--schema")
                .arg(root.join("schemas/scim/schemas.json"))
                .arg("--resource-type")
                .arg(root.join("schemas/scim/resource-types.json"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_PEER_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. Run scripts/test, which installs the SCIM peers into .venv",
                    bin.display()
                )
            });
        let server = ScimServer {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = client
                .get(format!("{}/ServiceProviderConfig", server.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return server;
            }
            assert!(Instant::now() < deadline, "scim2-server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A webhook receiver (the protocol of `docs/webhook.md`) over a real SQLite store; stops
/// when dropped.
pub struct WebhookReceiver {
    /// Its URL.
    pub url: String,
    /// The store behind it (what the estate holds).
    pub store: Arc<Sqlite>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl WebhookReceiver {
    /// Starts the receiver; its store declares `groups`.
    pub async fn start(groups: &[GroupConfig]) -> WebhookReceiver {
        Self::start_at("127.0.0.1:0", groups).await
    }

    /// [`WebhookReceiver::start`] on `addr` (a port a gateway was told before it listened).
    pub async fn start_at(addr: &str, groups: &[GroupConfig]) -> WebhookReceiver {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Sqlite::open(&dir.path().join("estate.db"), groups, &Default::default()).unwrap(),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let held = Arc::clone(&store);
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    a = listener.accept() => a.unwrap(),
                    _ = &mut rx => return,
                };
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let store = Arc::clone(&store);
                        async move { Ok::<_, std::convert::Infallible>(receive(req, &store).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        WebhookReceiver {
            url,
            store: held,
            _stop: tx,
            _dir: dir,
        }
    }
}

async fn receive(req: Request<hyper::body::Incoming>, store: &Sqlite) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::POST {
        return answer(StatusCode::NO_CONTENT, Value::Null);
    }
    let bytes = req.into_body().collect().await.unwrap().to_bytes();
    let msg: Value = serde_json::from_slice(&bytes).unwrap();
    let obj = |k: &str| UserDoc(msg[k].as_object().cloned().unwrap_or_default());
    let result = match msg["operation"].as_str() {
        Some("get") => match store.find(&obj("target")).await {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err(BackendError::NotFound),
            Err(e) => Err(e),
        },
        Some("list") => {
            let contains = msg["contains"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|a| userbridge::canonical::attribute(a).map(|d| d.name))
                .collect();
            let search = Search {
                text: msg["search"].as_str().map(str::to_owned),
                contains,
                offset: msg["offset"].as_u64().unwrap_or(0) as usize,
                limit: msg["limit"].as_u64().unwrap_or(100) as usize,
            };
            return match store.search(search).await {
                Ok((users, total)) => {
                    let users: Vec<Value> = users
                        .into_iter()
                        .map(|u| Value::Object(u.redacted_without_secrets()))
                        .collect();
                    answer(StatusCode::OK, json!({"users": users, "total": total}))
                }
                Err(e) => answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"message": e.to_string()}),
                ),
            };
        }
        Some(kind @ ("create" | "update" | "delete")) => {
            let op = Operation {
                operation: match kind {
                    "create" => OpKind::Create,
                    "update" => OpKind::Update,
                    _ => OpKind::Delete,
                },
                dialect: msg["dialect"].as_str().unwrap_or("").into(),
                target: msg.get("target").map(|_| obj("target")),
                user: obj("user"),
                groups: serde_json::from_value(msg["groups"].clone()).ok(),
                caller_password: None,
                preconditions: Vec::new(),
                pending: Vec::new(),
            };
            store.apply(op, Want::User).await.and_then(Stored::into_doc)
        }
        _ => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"message": "unknown operation"}),
            );
        }
    };
    match result {
        Ok(user) => answer(
            StatusCode::OK,
            Value::Object(user.redacted_without_secrets()),
        ),
        Err(BackendError::NotFound) => {
            answer(StatusCode::NOT_FOUND, json!({"message": "no such user"}))
        }
        Err(BackendError::Conflict(m)) => answer(
            StatusCode::CONFLICT,
            json!({"error": "conflict", "message": m}),
        ),
        Err(BackendError::UnknownGroup(m)) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "unknownGroup", "message": m}),
        ),
        Err(e) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": e.to_string()}),
        ),
    }
}

fn answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let bytes = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
