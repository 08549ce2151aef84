//! The store's one connection, owned by one thread that commits in groups: the operations
//! waiting when it is free run in one transaction, each inside its own savepoint (one that
//! fails is rolled back alone and the others go on), and each is answered only after the
//! group's commit. One commit per group instead of one per operation, no lock contended, no
//! blocking-pool thread per call; an acknowledged write is a committed one, as before.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::backend::BackendError;

/// At most this many operations share one transaction (a bound on the time a group holds the
/// write lock and on the latency of its first member).
const MAX_GROUP: usize = 64;

/// One operation: runs on the connection (inside its savepoint) and returns its outcome,
/// held until the group commits.
type Job = Box<dyn FnOnce(&Connection) -> Done + Send>;

/// Answers an operation's caller: with its own outcome (`None`), or with the message of its
/// group's commit failure.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// An operation run, not yet answered.
struct Done {
    /// Whether it succeeded (its savepoint is released, else rolled back).
    ok: bool,
    /// Answers the caller once the group is over.
    answer: Answer,
}

const STOPPED: &str = "the store's writer stopped";

/// The handle operations are sent through; the thread ends when it is dropped.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

/// What the writer did since start (for `/metrics`: operations ÷ commits is the group size).
#[derive(Debug, Default)]
pub struct Counts {
    /// Groups committed.
    pub commits: AtomicU64,
    /// Operations run in them.
    pub operations: AtomicU64,
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub fn start(conn: Connection) -> Result<Self, String> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let counts = Arc::new(Counts::default());
        let c = Arc::clone(&counts);
        std::thread::Builder::new()
            .name("userbridge-sqlite".into())
            .spawn(move || serve(conn, &rx, &c))
            .map_err(|e| format!("cannot start the store's writer: {e}"))?;
        Ok(Self { jobs, counts })
    }

    /// What the writer did since start.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Runs `f` on the connection in the next group, and answers once that group committed.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = f(conn);
            Done {
                ok: outcome.is_ok(),
                answer: Box::new(move |failed| {
                    let _ = tx.send(match failed {
                        None => outcome,
                        Some(m) => Err(BackendError::Failed(format!("store: {m}"))),
                    });
                }),
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| BackendError::Failed(STOPPED.into()))?;
        // A job dropped unrun (its group could not begin) or that panicked answers nothing.
        rx.await
            .map_err(|_| BackendError::Failed("the store failed the operation".into()))?
    }
}

/// The thread: waits for an operation, takes every other one waiting (up to [`MAX_GROUP`]),
/// runs them as one group.
fn serve(conn: Connection, rx: &mpsc::Receiver<Job>, counts: &Counts) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut done = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let n = group.len() as u64;
        let committed = run_group(&conn, &mut group, &mut done);
        if committed.is_ok() {
            counts.commits.fetch_add(1, Ordering::Relaxed);
            counts.operations.fetch_add(n, Ordering::Relaxed);
        }
        let failed = committed.as_ref().err().map(ToString::to_string);
        if let Some(m) = &failed {
            tracing::warn!(error = %m, operations = done.len(), "store: a group did not commit");
        }
        for d in done.drain(..) {
            (d.answer)(failed.as_deref());
        }
        // Jobs the group could not run (it failed to begin) are dropped: they answer an error.
        group.clear();
    }
}

/// One transaction: each job in a savepoint of its own; the results kept in `done`. The
/// transaction's own statements are prepared once (rusqlite's `Transaction` and `Savepoint`
/// parse theirs on every use: a tenth of the store's time in small groups).
fn run_group(
    conn: &Connection,
    group: &mut Vec<Job>,
    done: &mut Vec<Done>,
) -> rusqlite::Result<()> {
    let exec = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
    };
    exec("BEGIN IMMEDIATE")?;
    let ran = (|| {
        for job in group.drain(..) {
            exec("SAVEPOINT op")?;
            // A job that panics is rolled back; its caller's answer channel is dropped with it.
            let d = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn)));
            match d {
                Ok(d) if d.ok => {
                    exec("RELEASE op")?;
                    done.push(d);
                }
                d => {
                    exec("ROLLBACK TO op")?;
                    exec("RELEASE op")?;
                    if let Ok(d) = d {
                        done.push(d);
                    }
                }
            }
        }
        exec("COMMIT")
    })();
    if ran.is_err() && !conn.is_autocommit() {
        let _ = exec("ROLLBACK");
    }
    ran
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT UNIQUE)")
            .unwrap();
        Writer::start(conn).unwrap()
    }

    fn insert(v: &'static str) -> impl FnOnce(&Connection) -> Result<(), BackendError> {
        move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map(drop)
                .map_err(|e| BackendError::Conflict(e.to_string()))
        }
    }

    #[tokio::test]
    async fn a_failed_operation_is_rolled_back_alone_in_its_group() {
        let w = writer();
        // Sent together, so that they share groups; the duplicate fails, the others land.
        let (a, b, c) = tokio::join!(w.run(insert("a")), w.run(insert("a")), w.run(insert("b")));
        assert!(a.is_ok());
        assert!(matches!(b, Err(BackendError::Conflict(_))));
        assert!(c.is_ok());
        let n: i64 = w
            .run(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(|e| BackendError::Failed(e.to_string()))
            })
            .await
            .unwrap();
        assert_eq!(n, 2);
    }

    #[tokio::test]
    async fn a_partial_write_of_a_failing_operation_is_undone() {
        let w = writer();
        let r = w
            .run(|c| {
                c.execute("INSERT INTO t (v) VALUES ('x')", []).unwrap();
                Err::<(), _>(BackendError::NotFound)
            })
            .await;
        assert!(matches!(r, Err(BackendError::NotFound)));
        let n: i64 = w
            .run(|c| {
                Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .unwrap())
            })
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn a_panicking_operation_fails_and_the_writer_goes_on() {
        let w = writer();
        let r = w
            .run(|c| -> Result<(), BackendError> {
                c.execute("INSERT INTO t (v) VALUES ('p')", []).unwrap();
                panic!("boom")
            })
            .await;
        assert!(matches!(r, Err(BackendError::Failed(_))));
        w.run(insert("q")).await.unwrap();
        let vals: Vec<String> = w
            .run(|c| {
                let mut s = c.prepare("SELECT v FROM t").unwrap();
                Ok(s.query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap())
            })
            .await
            .unwrap();
        assert_eq!(vals, ["q"]);
    }
}
