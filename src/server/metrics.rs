//! Prometheus metrics at `GET /metrics` (OpenMetrics text, via `prometheus-client`): requests
//! by dialect, route, operation and status; latency end to end and of the backend; rejections
//! by rule; unknown members ignored; backend errors by kind; requests in flight; reloads.
//!
//! One registry per server (no global state), kept across reloads.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::backend::BackendError;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    dialect: Arc<str>,
    route: Arc<str>,
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    dialect: Arc<str>,
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    dialect: Arc<str>,
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DialectLabels {
    dialect: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendErrorLabels {
    backend: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

fn latency() -> Histogram {
    // 100 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    backend_duration: Family<BackendLabels, Histogram, fn() -> Histogram>,
    rejections: Family<RuleLabels, Counter>,
    unknown: Family<DialectLabels, Counter>,
    backend_errors: Family<BackendErrorLabels, Counter>,
    in_flight: Gauge,
    connections: Family<WorkerLabels, Gauge>,
    reloads: Family<OutcomeLabels, Counter>,
    panics: Counter,
    /// `scim`, the dialect and route label of `/scim/v2` requests.
    scim: Arc<str>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric declared.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("userbridge");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::new_with_constructor(latency as fn() -> Histogram);
        let backend_duration = Family::new_with_constructor(latency as fn() -> Histogram);
        let rejections = Family::<RuleLabels, Counter>::default();
        let unknown = Family::<DialectLabels, Counter>::default();
        let backend_errors = Family::<BackendErrorLabels, Counter>::default();
        let in_flight = Gauge::default();
        let connections = Family::<WorkerLabels, Gauge>::default();
        let reloads = Family::<OutcomeLabels, Counter>::default();
        let panics = Counter::default();
        registry.register(
            "panics",
            "Requests whose handler panicked (each answered 500 in the caller's dialect)",
            panics.clone(),
        );
        registry.register(
            "requests",
            "Dialect and SCIM requests answered, by dialect, route, operation and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's arrival to its answer",
            duration.clone(),
        );
        registry.register(
            "backend_duration_seconds",
            "Time the backend took for one operation",
            backend_duration.clone(),
        );
        registry.register(
            "rejections",
            "Requests refused, by the rule that refused them",
            rejections.clone(),
        );
        registry.register(
            "unknown_members_ignored",
            "Request members no mapping rule knows, ignored",
            unknown.clone(),
        );
        registry.register(
            "backend_errors",
            "Backend operations that failed, by kind",
            backend_errors.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        registry.register(
            "connections",
            "Client connections open, by the serving worker that accepted them",
            connections.clone(),
        );
        registry.register(
            "config_reloads",
            "Config and mapping reloads, by outcome",
            reloads.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            backend_duration,
            rejections,
            unknown,
            backend_errors,
            in_flight,
            connections,
            reloads,
            panics,
            scim: Arc::from("scim"),
        }
    }

    /// The dialect label of `/scim/v2` requests.
    pub fn scim_label(&self) -> &Arc<str> {
        &self.scim
    }

    /// Counts an answered `/scim/v2` request.
    pub fn scim_request(&self, operation: &'static str, status: u16, took: Duration) {
        self.request(&self.scim, &self.scim, operation, status, took);
    }

    /// Counts an answered request.
    pub fn request(
        &self,
        dialect: &Arc<str>,
        route: &Arc<str>,
        operation: &'static str,
        status: u16,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                dialect: Arc::clone(dialect),
                route: Arc::clone(route),
                operation,
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                dialect: Arc::clone(dialect),
                route: Arc::clone(route),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a refusal by `rule`.
    pub fn rejection(&self, dialect: &Arc<str>, rule: &'static str) {
        self.rejections
            .get_or_create(&RuleLabels {
                dialect: Arc::clone(dialect),
                rule,
            })
            .inc();
    }

    /// Counts `n` unknown members ignored.
    pub fn unknown_members(&self, dialect: &Arc<str>, n: u64) {
        if n > 0 {
            self.unknown
                .get_or_create(&DialectLabels {
                    dialect: Arc::clone(dialect),
                })
                .inc_by(n);
        }
    }

    /// Records one backend operation.
    pub fn backend(&self, backend: &'static str, took: Duration, error: Option<&BackendError>) {
        self.backend_duration
            .get_or_create(&BackendLabels { backend })
            .observe(took.as_secs_f64());
        if let Some(e) = error {
            let kind = match e {
                BackendError::NotFound => "not_found",
                BackendError::Conflict(_) => "conflict",
                BackendError::UnknownGroup(_) => "unknown_group",
                BackendError::Rejected(_) => "rejected",
                BackendError::Unavailable(_) => "unavailable",
                BackendError::Timeout => "timeout",
                BackendError::Failed(_) => "failed",
                BackendError::Unsupported(..) => "unsupported",
                BackendError::TooMany(_) => "too_many",
                BackendError::Changed(_) => "changed",
            };
            self.backend_errors
                .get_or_create(&BackendErrorLabels { backend, kind })
                .inc();
        }
    }

    /// Counts a handler's panic.
    pub fn panic(&self) {
        self.panics.inc();
    }

    /// Counts a reload.
    pub fn reload(&self, ok: bool) {
        let outcome = if ok { "applied" } else { "refused" };
        self.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A request in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// The open-connections gauge of serving worker `worker`.
    pub fn connections(&self, worker: u32) -> Gauge {
        self.connections
            .get_or_create(&WorkerLabels { worker })
            .clone()
    }

    /// The OpenMetrics text of every metric, and of the backend's own figures.
    pub fn render(&self, backend: &[crate::backend::Gauge]) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut extra = Registry::with_prefix("userbridge");
        for g in backend {
            if g.counter {
                let c = Counter::<u64>::default();
                c.inc_by(g.value.unsigned_abs());
                extra.register(g.name, g.help, c);
            } else {
                let m = Gauge::<i64>::default();
                m.set(g.value);
                extra.register(g.name, g.help, m);
            }
        }
        let mut out = String::with_capacity(4096);
        let ok = encode_registry(&mut out, &self.registry).is_ok()
            && encode_registry(&mut out, &extra).is_ok()
            && encode_eof(&mut out).is_ok();
        if !ok {
            out.clear();
        }
        out
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
