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

    /// Makes (the first time) and starts the server; returns once it accepts connections.
    pub fn start_server(&self) {
        let out = Command::new(script())
            .arg("start")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/pg start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), self.url);
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`): every connection is cut.
    pub fn stop_server(&self) {
        let out = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/pg stop");
    }

    /// Turns TLS on (`scripts/pg tls`): the file of the CA that signed the server's certificate.
    pub fn enable_tls(&self) -> PathBuf {
        let out = Command::new(script())
            .arg("tls")
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/pg tls: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }

    /// The cluster's files (tables, WAL): what a thief of the disk would hold.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The backend config of a gateway on this database.
    pub fn backend(&self) -> BackendConfig {
        BackendConfig::Postgres {
            url: self.url.clone(),
            password: Some(Secret::new(self.password.clone())),
            password_file: None,
            pool_size: 8,
            timeout_ms: 5000,
        }
    }

    /// A gateway process on this database: the shipped config with the postgres backend, its
    /// password and the secrets key from the environment, and `more` at the end of the config.
    pub fn serve(&self, more: &str) -> Running {
        let backend = format!("kind = \"postgres\"\nurl = \"{}\"\n", self.url);
        self.serve_with(backend, more, &[])
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

    /// An in-process gateway on this database with `pool_size` connections and `timeout_ms`: its base URL and stopper.
    pub async fn gateway(
        &self,
        pool_size: usize,
        timeout_ms: u64,
    ) -> (String, tokio::sync::oneshot::Sender<()>) {
        let mut config = super::gateway::base_config();
        config.secrets.key = Some(Secret::new(PG_SECRETS_KEY));
        let mut backend = self.backend();
        if let userbridge::config::BackendConfig::Postgres {
            pool_size: p,
            timeout_ms: t,
            ..
        } = &mut backend
        {
            *p = pool_size;
            *t = timeout_ms;
        }
        config.backend = backend;
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
        let out = Command::new("psql")
            .arg(&self.url)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
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
