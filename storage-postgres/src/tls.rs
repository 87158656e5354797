//! TLS to PostgreSQL: which connection a URL asks for, and the rustls configuration that
//! makes it.
//!
//! The URL takes libpq's parameters `sslmode` and `sslrootcert` in its query string
//! (`postgres://jpki@db.example:5432/jpki?sslmode=verify-full&sslrootcert=/etc/jpki/db-ca.pem`);
//! tokio-postgres itself knows only `disable|prefer|require` and no root file, so both are
//! taken out of the URL here and the rest is parsed by tokio-postgres.
//!
//! | `sslmode` | jpki |
//! |---|---|
//! | absent, `disable` | no TLS (a Unix socket, or a network the operator trusts) |
//! | `allow`, `prefer` | **refused**: they fall back to an unencrypted connection without saying so |
//! | `require`, `verify-ca` | TLS; the server's certificate must chain to `sslrootcert` (its host name is not checked) |
//! | `verify-full` | TLS; the certificate must chain to `sslrootcert` **and** name the host (DNS name or IP address) |
//!
//! `require` without `sslrootcert` is refused rather than connecting to a server nobody
//! authenticated (libpq would; with a root file libpq's `require` is `verify-ca` too). A
//! server that does not offer TLS is never used unencrypted once TLS was asked for:
//! tokio-postgres is given `SslMode::Require`, which fails the connection. PostgreSQL has no
//! TLS on Unix sockets, so TLS with only Unix-socket hosts is refused at once.
//!
//! The crypto provider is rustls' aws-lc-rs, named explicitly (the tree has no ring), and
//! [`tokio_postgres_rustls`] adapts rustls to tokio-postgres (and gives SCRAM channel
//! binding its certificate hash).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};

use crate::PgError;

/// What a URL asks for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    /// Chain to the root file; no host-name check (`require`, `verify-ca`).
    VerifyCa,
    /// Chain to the root file and the host named (`verify-full`).
    VerifyFull,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// A URL taken apart: tokio-postgres' configuration and the TLS connector, if any.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub mode: Mode,
    pub tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// Parses `url` (`postgres://` or `postgresql://` form only), with `sslmode` and
/// `sslrootcert` as in the module docs.
pub fn parse(url: &str) -> Result<Target, PgError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(PgError::Url(
            "use the postgres://… (or postgresql://…) URL form".into(),
        ));
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut sslmode = None;
    let mut rootcert = None;
    let mut rest = Vec::new();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("sslmode", v)) => sslmode = Some(percent_decode(v)?),
            Some(("sslrootcert", v)) => rootcert = Some(PathBuf::from(percent_decode(v)?)),
            _ => rest.push(pair),
        }
    }
    let remaining = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config = remaining
        .parse::<tokio_postgres::Config>()
        .map_err(|e| PgError::Url(crate::chain(&e)))?;
    let mode = match sslmode.as_deref() {
        None | Some("disable") => Mode::Disable,
        Some("require" | "verify-ca") => Mode::VerifyCa,
        Some("verify-full") => Mode::VerifyFull,
        Some(m @ ("allow" | "prefer")) => {
            return Err(PgError::Url(format!(
                "sslmode={m} would fall back to an unencrypted connection without saying so: \
                 use sslmode=verify-full (or verify-ca) with sslrootcert=…, or sslmode=disable \
                 on a Unix socket or a trusted network"
            )))
        }
        Some(m) => {
            return Err(PgError::Url(format!(
                "unknown sslmode `{m}`: use disable, require, verify-ca or verify-full"
            )))
        }
    };
    if mode == Mode::Disable {
        config.ssl_mode(SslMode::Disable);
        return Ok(Target {
            config,
            mode,
            tls: None,
        });
    }
    let asked = sslmode.as_deref().unwrap_or_default();
    if config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, Host::Unix(_)))
    {
        return Err(PgError::Url(format!(
            "sslmode={asked} asks for TLS, which PostgreSQL does not use on a Unix socket: \
             name a TCP host, or use sslmode=disable for the socket"
        )));
    }
    let Some(rootcert) = rootcert else {
        return Err(PgError::Url(format!(
            "sslmode={asked} needs sslrootcert=/path/to/ca.pem, the CA that issued the \
             server's certificate (jpki does not connect to a server it cannot authenticate)"
        )));
    };
    config.ssl_mode(SslMode::Require);
    let tls = client_config(&rootcert, mode)?;
    Ok(Target {
        config,
        mode,
        tls: Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls)),
    })
}

fn client_config(rootcert: &std::path::Path, mode: Mode) -> Result<rustls::ClientConfig, PgError> {
    let shown = rootcert.display();
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(rootcert)
        .map_err(|e| PgError::Tls(format!("sslrootcert {shown}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PgError::Tls(format!("sslrootcert {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(PgError::Tls(format!(
            "sslrootcert {shown}: no PEM certificate in it"
        )));
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| PgError::Tls(format!("sslrootcert {shown}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?;
    let roots = Arc::new(roots);
    Ok(match mode {
        Mode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
        Mode::VerifyCa | Mode::Disable => {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| PgError::Tls(format!("sslrootcert {shown}: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
    })
}

/// `verify-ca`: the certificate chain is verified by rustls' WebPKI verifier exactly as for
/// `verify-full` (trust anchor, validity, key usage, signatures); only its last step, the
/// host-name match, is not required. WebPKI checks the name after the chain, so a
/// "not valid for name" error means the chain was accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Says what went wrong in a failed connection, in words, when TLS is why: the server's
/// certificate not from the configured CA, not naming the host, expired; the server not
/// offering TLS; or the server requiring TLS that the URL did not ask for.
pub fn explain(e: &(dyn std::error::Error + 'static), mode: Mode) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(match tls {
                    rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                        "the server's TLS certificate was not issued by the CA in sslrootcert \
                         (wrong CA file, or the wrong server)"
                            .into()
                    }
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    ) => "the server's TLS certificate does not name the host in the URL \
                          (sslmode=verify-full): connect by a name the certificate holds"
                        .into(),
                    rustls::Error::InvalidCertificate(
                        CertificateError::Expired | CertificateError::ExpiredContext { .. },
                    ) => "the server's TLS certificate has expired".into(),
                    other => format!("TLS with the server failed: {other}"),
                });
            }
        }
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>() {
            if let Some(db) = pg.as_db_error() {
                if mode == Mode::Disable
                    && db.code()
                        == &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    && db.message().contains("no encryption")
                {
                    return Some(format!(
                        "the server accepts this connection only over TLS (server: {}): set \
                         sslmode=verify-full and sslrootcert=… in the URL",
                        db.message()
                    ));
                }
            }
        }
        let text = err.to_string();
        if mode != Mode::Disable && text.contains("server does not support TLS") {
            return Some(format!(
                "the server does not offer TLS, and sslmode={} never falls back to an \
                 unencrypted connection",
                mode.as_str()
            ));
        }
        cur = err.source();
    }
    None
}

fn percent_decode(s: &str) -> Result<String, PgError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgError::Url(format!("bad percent-escape in `{s}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgError::Url(format!("`{s}` is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match parse(url) {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn modes_and_refusals() {
        let t = parse("postgres://u@h/db").unwrap();
        assert_eq!(t.mode, Mode::Disable);
        assert!(t.tls.is_none());
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        let t = parse("postgres://u@h:6000/db?sslmode=disable&application_name=x").unwrap();
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(t.config.get_ports(), &[6000]);
        for m in ["prefer", "allow"] {
            let e = err(&format!("postgres://u@h/db?sslmode={m}"));
            assert!(e.contains("without saying so"), "{e}");
        }
        assert!(err("postgres://u@h/db?sslmode=verify").contains("unknown sslmode"));
        let e = err("postgres://u@h/db?sslmode=verify-full");
        assert!(e.contains("needs sslrootcert"), "{e}");
        let e = err("postgres://u@h/db?sslmode=require");
        assert!(e.contains("needs sslrootcert"), "{e}");
        let e = err("postgresql://u@%2Ftmp%2Fs/db?sslmode=verify-ca&sslrootcert=/x.pem");
        assert!(e.contains("Unix socket"), "{e}");
        let e = err("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        assert!(err("host=h sslmode=require").contains("URL form"));
        assert!(err("postgres://u@h/db?nonsense=1").contains("invalid PostgreSQL URL"));
    }

    #[test]
    fn a_root_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let e = err(&format!(
            "postgres://u@127.0.0.1/db?sslmode=verify-full&sslrootcert={}",
            p.display()
        ));
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
