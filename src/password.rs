//! Passwords are kept as Argon2id hashes (PHC strings, OWASP's parameters by default), never as
//! a value that could be read back: a store verifies a password, it does not return it.
//!
//! Hashing and verifying cost tens of milliseconds of CPU and ~19 MiB each by design, so on
//! the request path they run off the async runtime ([`hash`], [`verify`]), at most
//! `[secrets.passwords] threads` at once, so that they never stall other requests: a burst of
//! password writes waits for a slot instead of taking every core.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::OsRng;
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;

/// The member of a stored password object that holds its hash: `{"phc": "$argon2id$…"}`. A
/// password a client sends is a string; a stored one is this object, so the two are never
/// confused.
pub const PHC: &str = "phc";

/// How passwords are hashed: Argon2id with these parameters.
#[derive(Debug, Clone)]
pub struct Hashing {
    params: Params,
}

impl Hashing {
    /// The hashing `cfg` configures; an error names the parameter that is out of range.
    pub fn new(cfg: &PasswordConfig) -> Result<Self, String> {
        let params =
            Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None).map_err(|e| {
                format!(
                    "secrets.passwords: {e} (memory_kib = {}, iterations = {}, parallelism = {})",
                    cfg.memory_kib, cfg.iterations, cfg.parallelism
                )
            })?;
        if cfg.threads > 0 {
            THREADS.store(cfg.threads, Ordering::Relaxed);
        }
        Ok(Self { params })
    }

    /// The PHC string of `clear`, computed here (call off the runtime, or use [`hash`]).
    pub fn hash_now(&self, clear: &str) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
            .hash_password(clear.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| format!("cannot hash a password: {e}"))
    }
}

/// Whether `clear` is the password `phc` was made from (constant time, computed here).
pub fn verify_now(phc: &str, clear: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(clear.as_bytes(), &h)
            .is_ok()
    })
}

/// Whether `phc` is a PHC string of an Argon2 hash (a config's `password_argon2`).
pub fn check_phc(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if Algorithm::try_from(h.algorithm).is_err() {
        return Err(format!("{} is not an Argon2 hash", h.algorithm));
    }
    Params::try_from(&h).map_err(|e| format!("its parameters: {e}"))?;
    Ok(())
}

/// How many hashes run at once unless the config says (one per CPU).
static THREADS: AtomicUsize = AtomicUsize::new(0);

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let n = match THREADS.load(Ordering::Relaxed) {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        };
        Semaphore::new(n)
    })
}

/// Runs `f` on a blocking thread once a hashing slot is free.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let permit = slots().acquire().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(permit);
        out
    })
    .await
    .ok()
}

/// The PHC string of `clear`, off the runtime.
pub async fn hash(hashing: &Hashing, clear: String) -> Result<String, String> {
    let h = hashing.clone();
    off_runtime(move || h.hash_now(&clear))
        .await
        .unwrap_or_else(|| Err("the password hashing pool stopped".into()))
}

/// Whether `clear` is the password `phc` was made from, off the runtime.
pub async fn verify(phc: String, clear: String) -> bool {
    off_runtime(move || verify_now(&phc, &clear))
        .await
        .unwrap_or(false)
}

/// Whether a stored secret value is a password hash (not a value to give back).
pub fn is_hash(v: &serde_json::Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key(PHC))
}

/// Replaces the clear password `doc` carries by its hash, off the runtime; `null` (clear it)
/// stays. A password that is not a string is refused, naming it.
pub async fn hash_in(
    hashing: &Hashing,
    doc: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), crate::backend::BackendError> {
    let loc = crate::canonical::location("password");
    let clear = match crate::canonical::get(doc, &loc) {
        None | Some(serde_json::Value::Null) => return Ok(()),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(crate::backend::BackendError::Rejected(
                crate::rejection::Rejection::invalid(
                    "password",
                    "invalid",
                    "password must be a string".into(),
                ),
            ));
        }
    };
    let phc = hash(hashing, clear)
        .await
        .map_err(crate::backend::BackendError::Failed)?;
    crate::canonical::set(doc, &loc, serde_json::json!({ PHC: phc }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn light() -> Hashing {
        Hashing::new(&PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            threads: 0,
        })
        .unwrap()
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = light();
        let phc = h.hash_now("Tr0ub4dor&3").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("Tr0ub4dor"));
        assert!(verify_now(&phc, "Tr0ub4dor&3"));
        assert!(!verify_now(&phc, "Tr0ub4dor&4"));
        assert!(!verify_now("not a hash", "Tr0ub4dor&3"));
        // Two hashes of one password differ (a fresh salt each).
        assert_ne!(h.hash_now("Tr0ub4dor&3").unwrap(), phc);
        assert!(check_phc(&phc).is_ok());
        assert!(check_phc("$5$rounds=1$salt$hash").is_err());
        assert!(check_phc("plain").is_err());
    }

    #[test]
    fn owasp_defaults_and_bad_parameters() {
        let d = PasswordConfig::default();
        assert_eq!((d.memory_kib, d.iterations, d.parallelism), (19_456, 2, 1));
        let bad = Hashing::new(&PasswordConfig {
            memory_kib: 1,
            ..PasswordConfig::default()
        })
        .unwrap_err();
        assert!(bad.contains("memory_kib = 1"), "{bad}");
    }

    #[tokio::test]
    async fn hashing_runs_off_the_runtime() {
        let h = light();
        let phc = hash(&h, "pw".into()).await.unwrap();
        assert!(verify(phc.clone(), "pw".into()).await);
        assert!(!verify(phc, "px".into()).await);
    }
}
