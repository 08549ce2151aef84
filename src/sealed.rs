//! Secrets at rest: what a store must keep recoverable (MFA seeds, shared secrets, and for now
//! passwords) is sealed with XChaCha20-Poly1305 under a key that is not beside the data —
//! `[secrets] key_file`, or `USERBRIDGE_SECRETS__KEY` — and bound to its row (the user's id is
//! the associated data, so a sealed value moved to another user does not open). Each sealed
//! value names the key it was sealed under (`kid`, the first 8 bytes of the key's SHA-256 in
//! hex), so that keys can be told apart when they rotate.
//!
//! Without a configured key, the embedded store generates one beside itself (`secrets.key`,
//! mode 0600) and says so at start; `check` warns.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{Map, Value, json};

use crate::config::SecretsConfig;

/// The tag that marks a sealed value.
const SEALED: &str = "sealed";

/// A key, ready to seal and open.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    kid: String,
    /// Earlier keys, by key id: they open, never seal.
    previous: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({})", self.kid)
    }
}

/// Where a store's key came from (for the start message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `[secrets] key` / `USERBRIDGE_SECRETS__KEY`.
    Config,
    /// `[secrets] key_file`.
    File(PathBuf),
    /// Generated beside the store at this path (now, or at an earlier start).
    Beside(PathBuf),
}

/// A key written as 64 hex digits or as Base64 of 32 bytes (a trailing line break ignored).
fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
            .collect::<Result<Vec<u8>, _>>()?
    } else {
        B64.decode(t)
            .map_err(|_| "not 64 hex digits or Base64".to_owned())?
    };
    bytes
        .try_into()
        .map_err(|_| "a key is 32 bytes (64 hex digits)".to_owned())
}

impl Sealer {
    /// A sealer over `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        let digest = crate::config::sha256(key);
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            kid: crate::config::hex(&digest[..8]),
            previous: Vec::new(),
        }
    }

    /// The key id values sealed by this sealer carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The configured key, or the key beside the store at `store` (generated, 0600, when
    /// there is none yet).
    pub fn load(cfg: &SecretsConfig, store: &Path) -> Result<(Self, KeySource), String> {
        let (mut sealer, source) = Self::load_current(cfg, store)?;
        for f in &cfg.previous_key_files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("secrets.previous_key_files {}: {e}", f.display()))?;
            let key = parse_key(&text)
                .map_err(|e| format!("secrets.previous_key_files {}: {e}", f.display()))?;
            let old = Self::new(&key);
            if old.kid != sealer.kid {
                sealer.previous.push((old.kid, old.cipher));
            }
        }
        Ok((sealer, source))
    }

    fn load_current(cfg: &SecretsConfig, store: &Path) -> Result<(Self, KeySource), String> {
        if let Some(k) = &cfg.key {
            let key = parse_key(k.expose()).map_err(|e| format!("secrets.key: {e}"))?;
            return Ok((Self::new(&key), KeySource::Config));
        }
        if let Some(f) = &cfg.key_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("secrets.key_file {}: {e}", f.display()))?;
            let key =
                parse_key(&text).map_err(|e| format!("secrets.key_file {}: {e}", f.display()))?;
            return Ok((Self::new(&key), KeySource::File(f.clone())));
        }
        let beside = beside(store);
        match std::fs::read_to_string(&beside) {
            Ok(text) => {
                let key = parse_key(&text).map_err(|e| format!("{}: {e}", beside.display()))?;
                Ok((Self::new(&key), KeySource::Beside(beside)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
                let mut f = crate::private_fs::create(&beside)
                    .map_err(|e| format!("cannot create {}: {e}", beside.display()))?;
                std::io::Write::write_all(
                    &mut f,
                    format!("{}\n", crate::config::hex(&key)).as_bytes(),
                )
                .map_err(|e| format!("cannot write {}: {e}", beside.display()))?;
                Ok((Self::new(&key), KeySource::Beside(beside)))
            }
            Err(e) => Err(format!("{}: {e}", beside.display())),
        }
    }

    /// Whether `stored` is sealed under this sealer's current key (an earlier key's value, or a
    /// clear one, is to be resealed).
    pub fn is_current(&self, stored: &str) -> bool {
        envelope(stored).is_some_and(|e| e.get("kid").and_then(Value::as_str) == Some(&self.kid))
    }

    /// `secrets` (a JSON object) sealed for the row `aad`; an empty object stays `{}`.
    pub fn seal(&self, aad: &str, secrets: &str) -> Result<String, String> {
        if secrets.trim() == "{}" || secrets.is_empty() {
            return Ok("{}".to_owned());
        }
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let data = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secrets.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| "cannot seal".to_owned())?;
        Ok(json!({SEALED: 1, "kid": self.kid, "nonce": B64.encode(nonce), "data": B64.encode(data)})
            .to_string())
    }

    /// The clear JSON of a value [`Sealer::seal`] made for `aad`; a value that is not sealed
    /// (a store written before sealing) is returned as it is.
    pub fn open(&self, aad: &str, stored: &str) -> Result<String, String> {
        let Some(env) = envelope(stored) else {
            return Ok(stored.to_owned());
        };
        let kid = env.get("kid").and_then(Value::as_str).unwrap_or("");
        let cipher = if kid == self.kid {
            &self.cipher
        } else if let Some((_, c)) = self.previous.iter().find(|(k, _)| k == kid) {
            c
        } else {
            return Err(format!(
                "a secret is sealed under key {kid}, not under the configured key {} \
                 (an earlier key goes in [secrets] previous_key_files)",
                self.kid
            ));
        };
        let field = |k: &str| {
            env.get(k)
                .and_then(Value::as_str)
                .and_then(|s| B64.decode(s).ok())
                .ok_or_else(|| format!("a sealed secret without its {k}"))
        };
        let nonce = field("nonce")?;
        let data = field("data")?;
        if nonce.len() != 24 {
            return Err("a sealed secret with a bad nonce".into());
        }
        let clear = cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &data,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                "a sealed secret does not open: altered, or moved from another user".to_owned()
            })?;
        String::from_utf8(clear).map_err(|_| "a sealed secret is not text".into())
    }
}

/// Whether `stored` is a sealed value.
pub fn is_sealed(stored: &str) -> bool {
    envelope(stored).is_some()
}

fn envelope(stored: &str) -> Option<Map<String, Value>> {
    if !stored.contains(SEALED) {
        return None;
    }
    match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(m)) if m.get(SEALED).is_some() => Some(m),
        _ => None,
    }
}

/// The key file generated beside a store (`data/userbridge.db` → `data/secrets.key`).
pub fn beside(store: &Path) -> PathBuf {
    store
        .parent()
        .map_or_else(|| PathBuf::from("secrets.key"), |d| d.join("secrets.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_row_and_key() {
        let s = Sealer::new(&[7; 32]);
        let clear = r#"{"password":"Tr0ub4dor&3"}"#;
        let sealed = s.seal("user-1", clear).unwrap();
        assert!(!sealed.contains("Tr0ub4dor"), "{sealed}");
        assert!(is_sealed(&sealed));
        assert_eq!(s.open("user-1", &sealed).unwrap(), clear);
        assert!(s.open("user-2", &sealed).is_err(), "moved to another user");
        let other = Sealer::new(&[8; 32]);
        assert!(
            other
                .open("user-1", &sealed)
                .unwrap_err()
                .contains("sealed under key")
        );
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(s.seal("user-1", clear).unwrap(), sealed);
        assert_eq!(s.seal("u", "{}").unwrap(), "{}");
        // A value written before sealing reads as it is.
        assert_eq!(s.open("user-1", clear).unwrap(), clear);
    }

    #[test]
    fn keys_are_hex_or_base64_of_32_bytes() {
        assert!(parse_key(&"ab".repeat(32)).is_ok());
        assert!(parse_key(&format!("{}\n", B64.encode([1u8; 32]))).is_ok());
        assert!(parse_key("short").is_err());
        assert!(parse_key(&B64.encode([1u8; 16])).is_err());
    }
}
