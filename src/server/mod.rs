//! The gateway server: hyper 1 on tokio, every request through one tower stack.
//!
//! [`serve`] accepts connections; [`stack::stack`] is the stack each request goes through —
//! request id, sensitive headers, routing ([`ingress`]), observation, panic guard, shedding,
//! credentials, body, idempotency — whatever its ingress; [`handle`] hands it to the
//! ingress's handler ([`gateway`] for a dialect route, [`scim`] for `/scim/v2`, [`health`],
//! metrics). Every refusal becomes an answer in [`respond`].

pub mod gateway;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod ingress;
pub mod layer;
pub mod metrics;
pub mod reload;
pub mod respond;
pub mod scim;
pub mod stack;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::config::Config;
use crate::mapping::MappingSet;
use http::Body;
use ingress::Ingress;

/// Everything a request needs, swapped as a whole on reload.
pub struct State {
    /// The configuration.
    pub config: Config,
    /// The compiled mappings.
    pub mappings: MappingSet,
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The metrics (kept across reloads).
    pub metrics: Arc<metrics::Metrics>,
    /// Permits for requests in flight (`limits.max_in_flight`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// `Idempotency-Key`s seen recently (kept across reloads).
    pub idempotency: Arc<dyn idempotency::KeyStore>,
    /// The audit trail (kept across reloads; its settings take a restart).
    pub audit: crate::audit::Audit,
}

impl State {
    /// Builds the state: mappings from config, backend opened.
    pub fn new(config: Config, mappings: MappingSet) -> Result<Self, String> {
        let audit = crate::audit::Audit::open(&config)?;
        Self::with_audit(config, mappings, audit)
    }

    /// Builds the state around an open audit trail (a reload keeps the one it has).
    pub fn with_audit(
        config: Config,
        mappings: MappingSet,
        audit: crate::audit::Audit,
    ) -> Result<Self, String> {
        let backend = crate::backend::open_in(&config.backend, &config, &audit)?;
        let idempotency = keys_for(&backend, &config);
        Ok(Self {
            mappings,
            backend,
            audit,
            metrics: Arc::new(metrics::Metrics::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight)),
            idempotency,
            config,
        })
    }
}

/// Where `Idempotency-Key`s are kept: in the backend when it is shared by several gateways,
/// else in this one's memory.
pub fn keys_for(backend: &Arc<dyn Backend>, config: &Config) -> Arc<dyn idempotency::KeyStore> {
    backend
        .idempotency_keys()
        .unwrap_or_else(|| Arc::new(idempotency::Keys::new(config.limits.idempotency_max_keys)))
}

/// The shared, swappable state.
pub type Shared = Arc<ArcSwap<State>>;

/// Serves `listener` until `shutdown` resolves, then drains connections for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    serve_with(listener, state, shutdown, drain, Handle).await;
}

/// [`serve`] with another innermost service than [`handle`] (tests put one that fails there,
/// to see what the stack makes of it).
pub async fn serve_with<H: layer::Handler<Bytes>>(
    listener: TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
    handler: H,
) {
    let connections = Arc::new(tokio::sync::Semaphore::new(
        state.load().config.limits.max_connections,
    ));
    accept(listener, state, shutdown, drain, handler, connections, 0).await;
}

/// The accept loop of one listener: a connection per permit of `connections` (at
/// `max_connections`, accepting stops and new connections wait in the kernel's backlog), each
/// served through the stack on this thread's runtime; after `shutdown`, the drain. `worker`
/// labels the connections gauge.
async fn accept<H: layer::Handler<Bytes>>(
    listener: TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
    handler: H,
    connections: Arc<tokio::sync::Semaphore>,
    worker: u32,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // The metrics are kept across reloads: the gauge handle is resolved once.
    let open = state.load().metrics.connections(worker);
    let mut shutdown = std::pin::pin!(shutdown);
    let limits = state.load().config.limits.clone();
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&connections).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = stack::stack(Arc::clone(&state), peer, handler.clone());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_headers(limits.max_headers)
            .max_buf_size(limits.max_head_bytes.max(8192));
        let conn = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        let open = open.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain deadline passed; closing"),
    }
}

/// [`handle`], as the handler at the bottom of the stack.
#[derive(Debug, Clone, Copy)]
pub struct Handle;

impl layer::Handler<Bytes> for Handle {
    fn handle(
        &self,
        req: layer::Req<Bytes>,
    ) -> impl std::future::Future<Output = Response<Body>> + Send {
        handle(*req)
    }
}

/// The innermost service: the handler of the request's ingress. Everything before it —
/// routing, shedding, credentials, body, idempotency — the stack has done.
pub async fn handle(req: Request<Bytes>) -> Response<Body> {
    let Some(routed) = req.extensions().get::<Arc<ingress::Routed>>().cloned() else {
        return http::text(hyper::StatusCode::INTERNAL_SERVER_ERROR, "not routed\n");
    };
    let caller = routed.caller();
    match (&routed.ingress, caller) {
        (Ingress::Health, _) => health::handle(&routed.state, req.method(), req.uri().path()).await,
        (Ingress::Metrics, _) => http::text_with(
            hyper::StatusCode::OK,
            metrics::CONTENT_TYPE,
            routed.state.metrics.render(&routed.state.backend.gauges()),
        ),
        (Ingress::Scim(_), caller) => scim::handle(&routed, caller, req).await,
        (Ingress::Dialect(exchange), Some(caller)) => {
            gateway::handle(&routed, exchange, caller, req).await
        }
        (Ingress::Dialect(_), None) => respond::refuse(
            &routed,
            &crate::rejection::Rejection::bad_credentials(),
            respond::About::default(),
        ),
        (Ingress::Unrouted(_), _) => respond::unrouted(&routed, req.method()),
    }
}

/// `userbridge serve`: loads config and mappings, opens the backend (serving even when it does
/// not answer yet: readiness waits for it, not the start), serves on
/// `server.workers` threads ([`workers`]) until SIGINT or SIGTERM, then drains. SIGHUP reloads
/// config and mappings through `load`. This runtime keeps what is not a request: signals,
/// reloads, the mirror's copying.
pub async fn run(
    config: Config,
    mappings: MappingSet,
    load: Arc<reload::Loader>,
) -> Result<(), String> {
    let listen = config.server.listen.clone();
    raise_open_files(config.limits.max_connections);
    let state = Arc::new(State::new(config, mappings)?);
    // A backend that is down delays readiness, not the start (a config error still stops it):
    // `/readyz` answers 503 and writes get the dialect's 503 until the backend answers.
    if let Err(e) = state.backend.ready().await {
        tracing::warn!(backend = state.backend.kind(), error = %e,
            "the backend is not ready; serving, /readyz answers 503 until it is");
    }
    let n = state.config.server.worker_count();
    let listeners = workers::bind(&listen, n).await?;
    let addr = listeners.addr;
    let drain = Duration::from_millis(state.config.limits.request_timeout_ms);
    let shared: Shared = Arc::new(ArcSwap::new(state));
    let running = workers::Workers::start(listeners, &shared, drain)?;
    let state = shared.load();
    tracing::info!(%addr, workers = n, backend = state.backend.kind(), dialects = state.mappings.mappings.len(), "listening");
    drop(state);
    #[cfg(unix)]
    let reloader = tokio::spawn(reload::on_sighup(Arc::clone(&shared), load));
    #[cfg(not(unix))]
    drop(load);
    shutdown_signal().await;
    running.stop().await;
    // Requests have drained: their audit records are in the queue; write them out.
    shared.load().audit.flush().await;
    #[cfg(unix)]
    reloader.abort();
    Ok(())
}

/// Raises the soft open-files limit to the hard one (as nginx's `worker_rlimit_nofile`): each
/// client connection and each backend connection is a descriptor, and a soft limit of 1024
/// would refuse connections long before `max_connections`. Warns when even the hard limit is
/// too low.
fn raise_open_files(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < 2 * max_connections as u64 + 64 => tracing::warn!(
            open_files = n,
            max_connections,
            "the open-files limit is below what max_connections needs (two per connection)"
        ),
        Ok(n) => tracing::debug!(open_files = n, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-files limit"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new connections, draining");
}
