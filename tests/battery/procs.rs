//! The two real `userbridge` processes of the battery: the gateway under test (`scim` backend,
//! through the proxy) and the backend (a second userbridge serving `/scim/v2` from its SQLite
//! store, or from a PostgreSQL), which is killed with SIGKILL and started again. Logs go to files, appended across
//! restarts, to be searched for secrets afterwards.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The token the gateway presents to the backend's `/scim/v2`.
pub const SCIM_TOKEN: &str = "battery-scim-token";
/// The commvault-v4 caller's password (sent Base64 as `validationPassword`).
pub const COMMVAULT_PASSWORD: &str = "battery-admin-password";

/// A userbridge process and where its log goes.
pub struct Proc {
    child: Option<Child>,
    /// Its environment beyond the inherited one.
    envs: Vec<(String, String)>,
    /// Its listening address.
    pub addr: SocketAddr,
    config: PathBuf,
    log: PathBuf,
}

fn credentials() -> String {
    format!(
        r#"
[[credentials]]
name = "battery-vc"
dialect = "vc-user-service"
token = "battery-vc-token"
roles = ["user-administrator"]

[[credentials]]
name = "battery-commvault"
dialect = "commvault-v4"
token = "battery-commvault-token"
roles = ["user-administrator"]
password = "{COMMVAULT_PASSWORD}"

[[credentials]]
name = "battery-opscenter"
dialect = "opscenter"
token = "battery-opscenter-token"
roles = ["opscenter-security-administrator"]

[[credentials]]
name = "battery-scim"
dialect = "scim"
token = "{SCIM_TOKEN}"
roles = ["user-administrator"]
"#
    )
}

fn common(dir: &Path, name: &str) -> String {
    let mappings = std::fs::canonicalize("mappings").expect("mappings/");
    format!(
        "[mappings]\ndir = {:?}\n\n[dialects.opscenter]\nvars = {{ base = \"/portal\" }}\n\n[audit]\npath = {:?}\n{}",
        mappings.display().to_string(),
        dir.join(format!("{name}-audit.jsonl"))
            .display()
            .to_string(),
        credentials()
    )
}

/// A free loopback port.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl Proc {
    /// The backend: `/scim/v2` over the SQLite file `dir/backend.db`.
    pub fn backend(dir: &Path) -> Self {
        let cfg = format!(
            "[backend]\nkind = \"sqlite\"\npath = {:?}\n\n{}",
            dir.join("backend.db").display().to_string(),
            common(dir, "backend")
        );
        Self::start(dir, "backend", &cfg)
    }

    /// The backend on PostgreSQL: `/scim/v2` over the database `url` (its password and the
    /// secrets key from the environment, as a deployment gives them).
    pub fn backend_on_postgres(dir: &Path, url: &str, password: &str, key: &str) -> Self {
        let cfg = format!(
            "[backend]\nkind = \"postgres\"\nurl = \"{url}\"\n\n{}",
            common(dir, "backend")
        );
        let envs = vec![
            (
                "USERBRIDGE_BACKEND__PASSWORD".to_owned(),
                password.to_owned(),
            ),
            ("USERBRIDGE_SECRETS__KEY".to_owned(), key.to_owned()),
        ];
        Self::start_with(dir, "backend", &cfg, envs)
    }

    /// The gateway under test: the `scim` backend at `upstream` (the proxy).
    pub fn gateway(dir: &Path, upstream: SocketAddr) -> Self {
        let cfg = format!(
            "[backend]\nkind = \"scim\"\nurl = \"http://{upstream}/scim/v2\"\ntoken = \"{SCIM_TOKEN}\"\nindex = {:?}\n\n[backend.http]\nconnect_timeout_ms = 250\ntimeout_ms = 2000\nconnect_retries = 2\n\n{}",
            dir.join("gateway-index.db").display().to_string(),
            common(dir, "gateway")
        );
        Self::start(dir, "gateway", &cfg)
    }

    fn start(dir: &Path, name: &str, cfg: &str) -> Self {
        Self::start_with(dir, name, cfg, Vec::new())
    }

    fn start_with(dir: &Path, name: &str, cfg: &str, envs: Vec<(String, String)>) -> Self {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, cfg).expect("write config");
        let mut p = Self {
            child: None,
            envs,
            addr: free_addr(),
            config,
            log: dir.join(format!("{name}.log")),
        };
        p.spawn();
        p
    }

    /// The log file (every start appends to it).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The process id of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process (again) on the same address and waits until it answers `/healthz`.
    pub fn spawn(&mut self) -> Duration {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_userbridge"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(["--log-format", "json"])
            .env("USERBRIDGE_LOG", "info")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start userbridge");
        self.child = Some(child);
        while started.elapsed() < Duration::from_secs(30) {
            if healthy(self.addr) {
                return started.elapsed();
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("{} exited at start: {status}", self.config.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{} did not start", self.config.display());
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, and its exit status (None when it had to be killed after `grace`).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `GET /healthz` answers 200 (a blocking probe: the battery calls it off the runtime).
fn healthy(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0_u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}
