//! Reloading config and mappings while serving (SIGHUP): a new state is built beside the old
//! one and swapped in whole; a config that fails `check` is refused, logged, and the old one
//! keeps serving. Requests in flight finish on the state they started with.

use std::sync::Arc;

use super::{Shared, State};
use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::mapping::MappingSet;

/// Loads config and mappings again (what `userbridge check` loads).
pub type Loader = dyn Fn() -> Result<(Config, MappingSet), Vec<Diagnostic>> + Send + Sync;

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The new config and mappings serve; the backend was kept (its settings did not change).
    KeptBackend,
    /// The new config and mappings serve, with a backend opened from the new settings.
    NewBackend,
}

/// Loads and swaps in a new state. On error the old state stays and the messages say why.
pub fn reload(shared: &Shared, load: &Loader) -> Result<Reloaded, Vec<String>> {
    let old = shared.load_full();
    let result = swap(shared, &old, load);
    old.metrics.reload(result.is_ok());
    result
}

fn swap(shared: &Shared, old: &State, load: &Loader) -> Result<Reloaded, Vec<String>> {
    let (config, mappings) =
        load().map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    if config.server.listen != old.config.server.listen {
        tracing::warn!(
            old = %old.config.server.listen,
            new = %config.server.listen,
            "a new listen address takes a restart; still listening on the old one"
        );
    }
    let same_backend = json(&config.backend) == json(&old.config.backend)
        && json(&config.backends) == json(&old.config.backends)
        && json(&config.groups) == json(&old.config.groups);
    let (state, how) = if same_backend {
        (
            State {
                in_flight: Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight)),
                config,
                mappings,
                backend: Arc::clone(&old.backend),
                metrics: Arc::clone(&old.metrics),
                idempotency: Arc::clone(&old.idempotency),
                audit: old.audit.clone(),
            },
            Reloaded::KeptBackend,
        )
    } else {
        let mut state =
            State::with_audit(config, mappings, old.audit.clone()).map_err(|e| vec![e])?;
        state.metrics = Arc::clone(&old.metrics);
        // Keys the new backend keeps itself are its own; memory ones are kept.
        if state.backend.idempotency_keys().is_none() {
            state.idempotency = Arc::clone(&old.idempotency);
        }
        (state, Reloaded::NewBackend)
    };
    shared.store(Arc::new(state));
    Ok(how)
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Reloads on every SIGHUP until the process ends.
#[cfg(unix)]
pub async fn on_sighup(shared: Shared, load: Arc<Loader>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        let (shared, load) = (Arc::clone(&shared), Arc::clone(&load));
        // Reading and compiling files is blocking work: off the async workers.
        let outcome = tokio::task::spawn_blocking(move || reload(&shared, &*load)).await;
        match outcome {
            Ok(Ok(how)) => tracing::info!(?how, "config and mappings reloaded"),
            Ok(Err(errors)) => {
                for e in &errors {
                    tracing::error!(error = %e, "reload refused");
                }
                tracing::error!(
                    problems = errors.len(),
                    "reload refused: the previous config and mappings keep serving"
                );
            }
            Err(e) => tracing::error!(error = %e, "reload failed"),
        }
    }
}
