//! Thread-per-core serving: `server.workers` threads, each a current-thread tokio runtime with
//! its own listener on the one address (`SO_REUSEPORT`: the kernel spreads the connections),
//! so that a request — its connection, its layers, its backend call — never leaves the thread
//! that accepted it: no work stealing, no waker that touches another core (nginx's and
//! Envoy's model).
//!
//! What the workers share is what a request reads or counts: the [`Shared`] state (swapped
//! whole on reload), the metrics, the audit trail's queue, the connection permits. HTTP backend
//! connections are each worker's own (`backend::outbound` keeps one pool per thread); the
//! PostgreSQL pool is the process's, its connections driven by the runtime that opened each.
//! So a worker that has drained keeps its runtime turning until every worker has: a request
//! still in flight on another worker may be using a connection this one drives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, oneshot, watch};

use super::{Handle, Shared, accept};

/// The listeners of the workers, bound before any worker starts (so that a taken port is an
/// error at start, not a worker that silently serves nothing).
pub struct Listeners {
    /// The address they listen on (the port resolved when `listen` asked for port 0).
    pub addr: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
}

/// Binds `n` listeners to `listen`. With more than one, each has `SO_REUSEPORT`; a plain bind
/// is tried first, so that a port another process (even another userbridge) listens on is
/// refused rather than shared.
pub async fn bind(listen: &str, n: usize) -> Result<Listeners, String> {
    let addr = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot listen on {listen}: no address"))?;
    let probe = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = probe.local_addr().map_err(|e| e.to_string())?;
    if n <= 1 {
        let sockets = vec![probe.into_std().map_err(|e| e.to_string())?];
        return Ok(Listeners { addr, sockets });
    }
    drop(probe);
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = shared_socket(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        sockets.push(socket.into_std().map_err(|e| e.to_string())?);
    }
    Ok(Listeners { addr, sockets })
}

fn shared_socket(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The running workers: each reports when it has drained.
pub struct Workers {
    stop: watch::Sender<bool>,
    done: Vec<oneshot::Receiver<()>>,
    /// Set once every worker has drained: their runtimes may stop.
    all_drained: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts one worker per listener. Their runtimes are built here, so that a failure is an
    /// error of the start, not a missing worker.
    pub fn start(listeners: Listeners, state: &Shared, drain: Duration) -> Result<Self, String> {
        let (stop, stopped) = watch::channel(false);
        let (all_drained, drained) = watch::channel(false);
        let mut threads = Vec::with_capacity(listeners.sockets.len());
        let max_connections = state.load().config.limits.max_connections;
        // One bound for the process, as with one listener: the workers draw from it.
        let connections = Arc::new(Semaphore::new(max_connections));
        let mut done = Vec::with_capacity(listeners.sockets.len());
        for (i, socket) in listeners.sockets.into_iter().enumerate() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start worker {i}: {e}"))?;
            let (finished, on_finished) = oneshot::channel();
            let state = Arc::clone(state);
            let connections = Arc::clone(&connections);
            let mut stopped = stopped.clone();
            let mut drained = drained.clone();
            let thread = std::thread::Builder::new()
                .name(format!("userbridge-w{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        match TcpListener::from_std(socket) {
                            Ok(listener) => {
                                let stop = async move {
                                    let _ = stopped.wait_for(|s| *s).await;
                                };
                                accept(listener, state, stop, drain, Handle, connections, i as u32)
                                    .await;
                            }
                            Err(e) => tracing::error!(worker = i, error = %e, "cannot listen"),
                        }
                        let _ = finished.send(());
                        // Keep driving what this runtime drives (database connections other
                        // workers' requests may be using) until every worker has drained.
                        let _ = drained.wait_for(|d| *d).await;
                    });
                    // The worker's backend connections close with its runtime.
                    drop(runtime);
                })
                .map_err(|e| format!("cannot start worker {i}: {e}"))?;
            done.push(on_finished);
            threads.push(thread);
        }
        Ok(Self {
            stop,
            done,
            all_drained,
            threads,
        })
    }

    /// Stops accepting on every worker, and waits until each has drained its connections (or
    /// passed the drain deadline).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for d in self.done {
            let _ = d.await;
        }
        let _ = self.all_drained.send(true);
        let threads = self.threads;
        // Joining is blocking: off the async runtime.
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
