//! The connection URL and TLS. `tokio-postgres` reads libpq's URL but not all of its TLS
//! settings: `sslmode=verify-ca` / `verify-full` and `sslrootcert` are taken here, so that a
//! URL written for libpq (`psql`, every other client) works as written. Every mode that
//! encrypts verifies the server's certificate and name (rustls), against `sslrootcert` (a PEM
//! file of CA certificates) or, without it or with `sslrootcert=system`, the system's roots —
//! stricter than libpq's `require`, which encrypts without verifying.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_postgres::config::SslMode;

/// How a connection is secured.
#[derive(Debug, PartialEq)]
pub enum Tls {
    /// Plain TCP (`sslmode=disable`, or none given).
    Off,
    /// TLS, the server verified against these roots (`None`: the system's).
    On(Option<PathBuf>),
}

/// Parses `url`: the client's config and its TLS. Errors name the URL's part at fault.
pub fn parse(url: &str) -> Result<(tokio_postgres::Config, Tls), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut rest = Vec::new();
    let mut mode = None;
    let mut root = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| format!("backend.url: {k} is not UTF-8"))?;
        match k {
            "sslmode" => mode = Some(v.into_owned()),
            "sslrootcert" => root = Some(v.into_owned()),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("backend.url: not a PostgreSQL URL: {e}"))?;
    let ssl = match mode.as_deref() {
        None | Some("disable") => SslMode::Disable,
        Some("prefer") => SslMode::Prefer,
        Some("require" | "verify-ca" | "verify-full") => SslMode::Require,
        Some(other) => {
            return Err(format!(
                "backend.url: sslmode={other} is not one of disable, prefer, require, \
                 verify-ca, verify-full"
            ));
        }
    };
    pg.ssl_mode(ssl);
    let tls = match (ssl, root.as_deref()) {
        (SslMode::Disable, Some(_)) => {
            return Err("backend.url: sslrootcert is given but sslmode is disable".into());
        }
        (SslMode::Disable, None) => Tls::Off,
        (_, None | Some("system")) => Tls::On(None),
        (_, Some(path)) => Tls::On(Some(PathBuf::from(path))),
    };
    Ok((pg, tls))
}

/// The TLS connector for `roots` (a PEM file; `None`: the system's roots).
pub fn connector(
    roots: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("backend.url: sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| format!("backend.url: sslrootcert {}: {e}", path.display()))?;
                store
                    .add(cert)
                    .map_err(|e| format!("backend.url: sslrootcert {}: {e}", path.display()))?;
            }
            if store.is_empty() {
                return Err(format!(
                    "backend.url: sslrootcert {} holds no certificate",
                    path.display()
                ));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS to PostgreSQL: {e}"))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_settings_are_taken_and_the_rest_passed_on() {
        let (pg, tls) = parse(
            "postgres://u@db:5433/app?sslmode=verify-full&sslrootcert=/etc/ca%20bundle.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(tls, Tls::On(Some(PathBuf::from("/etc/ca bundle.pem"))));
        assert_eq!(pg.get_ssl_mode(), SslMode::Require);
        assert_eq!(pg.get_application_name(), Some("x"));
        assert_eq!(pg.get_dbname(), Some("app"));
        let (_, tls) = parse("postgres://u@db/app?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(tls, Tls::On(None));
        let (pg, tls) = parse("postgres://u@db/app").unwrap();
        assert_eq!((pg.get_ssl_mode(), tls), (SslMode::Disable, Tls::Off));
        assert!(
            parse("postgres://u@db/app?sslmode=allow")
                .unwrap_err()
                .contains("sslmode=allow")
        );
        assert!(
            parse("postgres://u@db/app?sslrootcert=/x.pem")
                .unwrap_err()
                .contains("sslmode is disable")
        );
    }
}
