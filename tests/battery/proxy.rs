//! A fault-injecting TCP proxy between the gateway and its backend.
//!
//! - **down**: while the backend is dead the proxy does not listen either, so the gateway's
//!   connects are refused (the one fault after which a retry is safe), and every connection it
//!   carries is cut;
//! - **cut replies**: HTTP/1.1 without pipelining is turn-based, so the first bytes the
//!   backend sends after the gateway spoke start a reply; that many per thousand of those
//!   replies are dropped and both sides closed: the backend has done the work (and committed),
//!   the gateway never learns it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// What the proxy did.
#[derive(Default)]
pub struct Counters {
    /// Connections accepted from the gateway.
    pub accepted: AtomicU64,
    /// Replies passed on whole (first chunks forwarded).
    pub replies: AtomicU64,
    /// Replies cut after the backend answered.
    pub cut: AtomicU64,
    /// Connections cut because the backend went down.
    pub severed: AtomicU64,
}

/// A running proxy.
pub struct Proxy {
    /// Where the gateway connects.
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    shared: Arc<Shared>,
}

/// What the proxy's connections share: the fault setting, its generator, the counters.
struct Shared {
    counters: Counters,
    /// Replies cut in a thousand.
    permille: AtomicU64,
    /// Xorshift state.
    rng: AtomicU64,
}

impl Shared {
    /// One step of the generator: true for `permille` replies in a thousand.
    fn cut_this_one(&self) -> bool {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x % 1000 < self.permille.load(Ordering::Relaxed)
    }
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`, cutting `cut_permille`
    /// replies in a thousand (chosen by a seeded generator: the same run cuts the same turns).
    pub async fn start(upstream: SocketAddr, cut_permille: u64, seed: u64) -> Self {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let addr = probe.local_addr().expect("local addr");
        drop(probe);
        let (up, rx) = watch::channel(true);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            permille: AtomicU64::new(cut_permille),
            rng: AtomicU64::new(seed | 1),
        });
        tokio::spawn(listen(addr, upstream, rx, Arc::clone(&shared)));
        let proxy = Self { addr, up, shared };
        proxy.wait_listening().await;
        proxy
    }

    /// Cuts `permille` replies in a thousand from now on.
    pub fn set_cut(&self, permille: u64) {
        self.shared.permille.store(permille, Ordering::Relaxed);
    }

    /// What it did so far.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Stops listening and cuts every connection (the backend died).
    pub fn down(&self) {
        let _ = self.up.send(false);
    }

    /// Listens again (the backend is back).
    pub async fn up(&self) {
        let _ = self.up.send(true);
        self.wait_listening().await;
    }

    async fn wait_listening(&self) {
        for _ in 0..200 {
            if TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the proxy does not listen on {}", self.addr);
    }
}

async fn listen(
    addr: SocketAddr,
    upstream: SocketAddr,
    mut up: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    loop {
        if !*up.borrow_and_update() {
            if up.changed().await.is_err() {
                return;
            }
            continue;
        }
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(addr).expect("bind the proxy port again");
        let listener = socket.listen(1024).expect("listen");
        loop {
            tokio::select! {
                r = listener.accept() => {
                    let Ok((down, _)) = r else { continue };
                    shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(carry(down, upstream, up.clone(), Arc::clone(&shared)));
                }
                r = up.changed() => {
                    if r.is_err() { return; }
                    if !*up.borrow() { break; }
                }
            }
        }
        // Dropping the listener refuses new connections until `up`.
    }
}

/// Closes with a reset rather than a clean FIN, as a dead peer's kernel would.
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

async fn carry(
    down: TcpStream,
    upstream: SocketAddr,
    mut up: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let counters = &shared.counters;
    let Ok(upper) = TcpStream::connect(upstream).await else {
        reset(down);
        return;
    };
    let _ = down.set_nodelay(true);
    let _ = upper.set_nodelay(true);
    let (mut dr, mut dw) = down.into_split();
    let (mut ur, mut uw) = upper.into_split();
    let spoke = AtomicBool::new(false);
    let to_backend = async {
        let mut buf = vec![0_u8; 16 * 1024];
        loop {
            match dr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    spoke.store(true, Ordering::SeqCst);
                    if uw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let to_gateway = async {
        let mut buf = vec![0_u8; 16 * 1024];
        loop {
            match ur.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if spoke.swap(false, Ordering::SeqCst) {
                        if shared.cut_this_one() {
                            counters.cut.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        counters.replies.fetch_add(1, Ordering::Relaxed);
                    }
                    if dw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let severed = async {
        loop {
            if !*up.borrow_and_update() || up.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = to_backend => {}
        () = to_gateway => {}
        () = severed => { counters.severed.fetch_add(1, Ordering::Relaxed); }
    }
    // Both halves dropped here: the gateway sees its connection closed mid-exchange.
    if let (Ok(d), Ok(_u)) = (dr.reunite(dw), ur.reunite(uw)) {
        reset(d);
    }
}
