//! A real PostgreSQL for the tests: a throwaway cluster `scripts/pg` makes (initdb into a temp
//! directory, a free loopback port, password authentication), stopped and removed on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use userbridge::config::BackendConfig;
use userbridge::redact::Secret;

use super::binary::{Running, start_with};
use super::gateway::PG_SECRETS_KEY;
use super::peers::free_port;

/// A cluster (running unless stopped).
pub struct Postgres {
    /// `postgres://userbridge@127.0.0.1:PORT/userbridge` (no password).
    pub url: String,
    /// The `userbridge` role's password.
    pub password: String,
    port: u16,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg")
}

impl Postgres {
    /// Starts a cluster (installing the server first when the machine has none).
    pub fn start() -> Postgres {
        let pg = Postgres::unstarted();
        pg.start_server();
        pg
    }

    /// A cluster's place, port and password, not made yet: [`Postgres::start_server`] makes
    /// and starts it (a gateway can be pointed at it before it exists).
    pub fn unstarted() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(dir.path().join("password"), &password).unwrap();
        let port = free_port();
        Postgres {
            url: format!("postgres://userbridge@127.0.0.1:{port}/userbridge"),
            password,
            port,
            dir,
        }
    }

    /// Runs `scripts/pg WHAT DIR [PORT]` on this cluster; what it printed.
    fn script(&self, what: &str, with_port: bool) -> String {
        let mut cmd = Command::new(script());
        cmd.arg(what).arg(self.dir.path());
        if with_port {
            cmd.arg(self.port.to_string());
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "scripts/pg {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Makes (the first time) and starts the server; returns once it accepts connections.
    pub fn start_server(&self) {
        assert_eq!(self.script("start", true), self.url);
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`): every connection is cut.
    pub fn stop_server(&self) {
        self.script("stop", false);
    }

    /// Turns TLS on (`scripts/pg tls`): the file of the CA that signed the server's certificate.
    pub fn enable_tls(&self) -> PathBuf {
        PathBuf::from(self.script("tls", true))
    }

    /// The cluster's files (tables, WAL): what a thief of the disk would hold.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The backend config of a gateway on this database.
    pub fn backend(&self) -> BackendConfig {
        self.config().backend
    }

    /// A gateway process on this database: the shipped config with the postgres backend, its
    /// password and the secrets key from the environment, and `more` at the end of the config.
    pub fn serve(&self, more: &str) -> Running {
        self.serve_with(self.backend_keys(), more, &[])
    }

    /// [`Postgres::serve`] with `envs` in the gateway's environment.
    pub fn serve_env(&self, envs: &[(&str, &str)]) -> Running {
        self.serve_with(self.backend_keys(), "", envs)
    }

    /// The `[backend]` keys of a gateway on this database.
    fn backend_keys(&self) -> String {
        format!("kind = \"postgres\"\nurl = \"{}\"\n", self.url)
    }

    /// [`Postgres::serve`] with `backend` as the `[backend]` table's keys (a mirror whose
    /// `[backends.pg]` is this database: its password goes to that one), and `envs` in its
    /// environment.
    pub fn serve_with(&self, backend: String, more: &str, envs: &[(&str, &str)]) -> Running {
        let password_var = if more.contains("[backends.pg]") {
            "USERBRIDGE_BACKENDS__PG__PASSWORD"
        } else {
            "USERBRIDGE_BACKEND__PASSWORD"
        };
        let more = more.to_owned();
        start_with(
            "info",
            move |cfg| {
                let mut out = String::new();
                let mut skip_path = false;
                for line in cfg.lines() {
                    if line == "kind = \"sqlite\"" {
                        out.push_str(&backend);
                        skip_path = true;
                        continue;
                    }
                    if skip_path && line.starts_with("path = ") {
                        skip_path = false;
                        continue;
                    }
                    out.push_str(line);
                    out.push('\n');
                }
                out.push_str(&more);
                out
            },
            &[
                &[
                    (password_var, self.password.as_str()),
                    ("USERBRIDGE_SECRETS__KEY", PG_SECRETS_KEY),
                ],
                envs,
            ]
            .concat(),
        )
    }

    /// The shipped config on this database: its backend, and the secrets key every gateway on
    /// it shares.
    pub fn config(&self) -> userbridge::config::Config {
        self.config_via(self.url.clone())
    }

    /// [`Postgres::config`], the database reached through `url` (a proxy, TLS settings).
    pub fn config_via(&self, url: String) -> userbridge::config::Config {
        let mut config = super::gateway::base_config();
        config.secrets.key = Some(Secret::new(PG_SECRETS_KEY));
        config.backend = BackendConfig::Postgres {
            url,
            password: Some(Secret::new(self.password.clone())),
            password_file: None,
            pool_size: 8,
            timeout_ms: 5000,
        };
        config
    }

    /// An in-process gateway on this database with `pool_size` connections and `timeout_ms`:
    /// its base URL and stopper.
    pub async fn gateway(
        &self,
        pool_size: usize,
        timeout_ms: u64,
    ) -> (String, tokio::sync::oneshot::Sender<()>) {
        let mut config = self.config();
        if let BackendConfig::Postgres {
            pool_size: p,
            timeout_ms: t,
            ..
        } = &mut config.backend
        {
            *p = pool_size;
            *t = timeout_ms;
        }
        super::gateway::serve_config(config).await
    }

    /// Holds `name`'s row from another session for `secs` seconds.
    pub fn hold(&self, name: &str, secs: f64) -> std::process::Child {
        let sql = format!(
            "BEGIN; SELECT 1 FROM users WHERE user_name = '{name}' FOR UPDATE; \
             SELECT pg_sleep({secs}); COMMIT;"
        );
        let mut child = std::process::Command::new("psql")
            .arg(&self.url)
            .args(["-X", "-q", "-c", &sql])
            .env("PGPASSWORD", &self.password)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Until the row is held.
        for _ in 0..100 {
            let held = self.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                  WHERE a.application_name = 'psql' AND l.mode = 'RowShareLock'",
            );
            if held != "0" {
                return child;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the row was not held");
    }

    /// Runs `sql` with psql; its output, unaligned, without headers.
    pub fn psql(&self, sql: &str) -> String {
        self.run_psql(&[], sql).trim().to_owned()
    }

    /// Runs `sql` with psql: its rows, each its fields (separated by tabs, which a JSON text
    /// never holds raw).
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        self.run_psql(&["-F", "\t"], sql)
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    fn run_psql(&self, extra: &[&str], sql: &str) -> String {
        let out = Command::new("psql")
            .arg(&self.url)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(extra)
            .args(["-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
