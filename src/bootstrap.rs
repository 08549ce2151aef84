//! Bootstrap checks: known demo credentials never face a network. On a listener that is not
//! loopback, `serve` refuses to start (and a reload is refused) while a caller credential is a
//! value the project ships as a demo, or a clear value too short to be a secret — the model
//! is Elasticsearch's bootstrap checks, enforced only off loopback. `--allow-insecure-
//! credentials` (or `USERBRIDGE_ALLOW_INSECURE_CREDENTIALS=true`) lets a lab run anyway.
//!
//! Problems name the credential and what to do, never the value.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Config, sha256};

/// The secrets `config/userbridge.toml` ships (the README publishes them).
pub const DEMO_SECRETS: &[&str] = &[
    "demo-vc-token",
    "demo-commvault-token",
    "demo-admin-password",
    "demo-opscenter-admin-token",
    "demo-opscenter-user-token",
    "demo-scim-token",
];

/// The shortest clear token accepted off loopback (a 128-bit random value in hex or base64 is
/// longer: `openssl rand -hex 16` gives 32 characters).
pub const MIN_TOKEN_CHARS: usize = 24;
/// The shortest clear caller password accepted off loopback.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Whether `listen` (`host:port`) accepts connections from other machines: anything but a
/// loopback address or `localhost`.
pub fn faces_network(listen: &str) -> bool {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return !addr.ip().is_loopback();
    }
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => !host.eq_ignore_ascii_case("localhost"),
    }
}

/// What makes the credentials of `config` unsafe to serve on a network; empty when none.
pub fn insecure_credentials(config: &Config) -> Vec<String> {
    let demo_digests: Vec<[u8; 32]> = DEMO_SECRETS.iter().map(|s| sha256(s.as_bytes())).collect();
    let mut out = Vec::new();
    for (i, c) in config.credentials.iter().enumerate() {
        let what = format!("credentials[{i}] ({})", c.name);
        let token = c.token.expose();
        if c.digest.is_some_and(|d| demo_digests.contains(&d)) || DEMO_SECRETS.contains(&token) {
            out.push(format!(
                "{what}: the token is a demo value the project publishes"
            ));
        } else if c.digest.is_none() && token.chars().count() < MIN_TOKEN_CHARS {
            out.push(format!(
                "{what}: the token is shorter than {MIN_TOKEN_CHARS} characters"
            ));
        }
        if let Some(p) = &c.password {
            let p = p.expose();
            if DEMO_SECRETS.contains(&p) {
                out.push(format!(
                    "{what}: the password is a demo value the project publishes"
                ));
            } else if p.chars().count() < MIN_PASSWORD_CHARS {
                out.push(format!(
                    "{what}: the password is shorter than {MIN_PASSWORD_CHARS} characters"
                ));
            }
        }
    }
    out
}

/// The refusal to serve `config` on its listener, when its credentials are unsafe there.
pub fn refusal(config: &Config) -> Option<String> {
    let listen = &config.server.listen;
    if !faces_network(listen) {
        return None;
    }
    let problems = insecure_credentials(config);
    if problems.is_empty() {
        return None;
    }
    let mut msg =
        format!("not serving on {listen}, which other machines reach, with these credentials:\n");
    for p in &problems {
        msg.push_str("  - ");
        msg.push_str(p);
        msg.push('\n');
    }
    msg.push_str(
        "give each credential a random token of your own (`openssl rand -hex 32`), from a file \
         (`token_file`, as container secrets are mounted) or as a digest (`token_sha256`, from \
         `userbridge hash-secret`); or listen on 127.0.0.1; or, for a lab, pass \
         --allow-insecure-credentials",
    );
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_told_from_the_network() {
        for l in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost:8080",
            "127.1.2.3:1",
        ] {
            assert!(!faces_network(l), "{l}");
        }
        for l in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.0.0.5:80",
            "gateway.internal:8080",
        ] {
            assert!(faces_network(l), "{l}");
        }
    }
}
