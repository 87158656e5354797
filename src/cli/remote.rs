//! `jpki --server URL --cert FILE --key FILE [--ca FILE] …`: the CLI's commands sent to a
//! remote `jpki serve --admin-https` as the officer whose client certificate and key are
//! given (docs/officers.md). The request is the one the CLI would run in-process or send over
//! the admin socket; the answer's error comes back as the same typed error, so the command
//! prints the same message.
//!
//! The server is trusted by the operator CA's certificate: `--ca FILE`, or, without it, the
//! last certificate of `--cert` when that file holds the chain (the leaf first).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use ca::error::Error;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use serde_json::Value;

use crate::Result;

/// Where and as whom: the global `--server`, `--cert`, `--key`, `--ca`.
#[derive(Debug, Clone)]
pub struct Remote {
    pub url: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .map_err(Error::io(format!("read {what} {}", path.display())))?)
}

/// `https://HOST[:PORT][/]` split into the host (for the certificate check) and the port.
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let bad = |why: &str| Error::Invalid(format!("--server `{url}`: {why}"));
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("give an https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(path) = rest.strip_prefix(authority) {
        if !path.is_empty() && path != "/" && path != crate::serve::admin_https::PATH {
            return Err(bad("give the server's address only (https://HOST:PORT)").into());
        }
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad("not a port number"))?,
            None if after.is_empty() => 443,
            None => return Err(bad("expected `:PORT` after the address").into()),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse().map_err(|_| bad("not a port number"))?,
            ),
            None => (authority.to_owned(), 443),
        }
    };
    if host.is_empty() {
        return Err(bad("no host").into());
    }
    Ok((host, port))
}

impl Remote {
    /// Sends one admin request and returns its result, or the server's typed error.
    pub fn call<T: Serialize>(&self, req: &T) -> Result<Value> {
        let (host, port) = parse_url(&self.url)?;
        let cert_pem = read(&self.cert, "the client certificate")?;
        let key_pem = read(&self.key, "the client key")?;
        let root_pem =
            match &self.ca {
                Some(p) => read(p, "the operator CA certificate")?,
                None => {
                    let certs: Vec<&str> = cert_pem
                        .split_inclusive("-----END CERTIFICATE-----")
                        .filter(|c| c.contains("BEGIN CERTIFICATE"))
                        .collect();
                    match certs.as_slice() {
                        [_, .., root] => (*root).to_owned(),
                        _ => return Err(Error::Invalid(
                            "--server needs the operator CA to trust the server: give --ca FILE \
                             (`jpki root --hierarchy operator` prints it)"
                                .into(),
                        )
                        .into()),
                    }
                }
            };
        let tls = client_config(&root_pem, &cert_pem, &key_pem)?;
        let addr: SocketAddr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(Error::io(format!("resolve {host}")))?
            .next()
            .ok_or_else(|| Error::Invalid(format!("{host} has no address")))?;
        let body = serde_json::to_vec(req).map_err(|e| Error::Invalid(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("start the runtime"))?;
        let url = self.url.clone();
        let (status, bytes) = rt.block_on(send(addr, host, tls, body, url))?;
        decode(status, &bytes)
    }
}

/// One `POST /v1/admin` over a new mutual-TLS connection. A refusal of the client
/// certificate arrives, with TLS 1.3, after the handshake as an alert on the connection: it
/// is reported from the connection's own error, which names it (e.g. `CertificateExpired`).
async fn send(
    addr: SocketAddr,
    host: String,
    tls: Arc<ClientConfig>,
    body: Vec<u8>,
    url: String,
) -> Result<(http::StatusCode, bytes::Bytes)> {
    use http_body_util::{BodyExt, Full};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(Error::io(format!("connect to {url}")))?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| Error::Invalid(format!("--server host {host}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(Error::io(format!("TLS handshake with {url}")))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| Error::Invalid(format!("HTTP with {url}: {e}")))?;
    let conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(crate::serve::admin_https::PATH)
        .header(http::header::HOST, host.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let refused = |e: String| {
        Error::Invalid(format!(
            "the admin API at {url} closed the connection without answering ({e}): it refused \
             the client certificate, or it stopped — the request may not have been carried out"
        ))
    };
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            let why = match conn.await {
                Ok(Err(c)) => chain(&c),
                _ => chain(&e),
            };
            return Err(refused(why).into());
        }
    };
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| refused(chain(&e)))?
        .to_bytes();
    Ok((status, bytes))
}

/// An error and its sources, innermost last (where the TLS alert is).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// The client's TLS configuration: trust `root_pem` for the server, present the officer's
/// certificate and key; the server's certificate is checked at this program's clock
/// (`crate::clock`, which tests move), as the server checks the officer's at its own.
fn client_config(root_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Arc<ClientConfig>> {
    let tls = |what: &str, e: String| Error::Invalid(format!("{what}: {e}"));
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| tls("--ca", e.to_string()))?)
            .map_err(|e| tls("--ca", e.to_string()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls("--cert", e.to_string()))?;
    if chain.is_empty() {
        return Err(tls("--cert", "no certificate in the file".into()).into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| tls("--key", e.to_string()))?;
    let time = Arc::new(ClockTime(crate::clock::clock()?));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = ClientConfig::builder_with_details(provider, time)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("TLS", e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls("--cert/--key", e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// A clock as rustls' source of time.
struct ClockTime(Arc<dyn policies::clock::Clock>);

impl std::fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClockTime")
    }
}

impl TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        let secs = u64::try_from(self.0.now().unix_timestamp()).ok()?;
        Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            secs,
        )))
    }
}

/// The server's answer: the result, or its error rebuilt as the typed error it was.
fn decode(status: http::StatusCode, bytes: &[u8]) -> Result<Value> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|_| {
        Error::Invalid(format!(
            "the admin API answered {status} without a JSON body"
        ))
    })?;
    if let Some(e) = v.get_mut("error").map(Value::take) {
        let wire: ca::api::WireError = serde_json::from_value(e).map_err(|_| {
            Error::Invalid(format!(
                "the admin API answered {status} with an error without a code"
            ))
        })?;
        return Err(Error::from(wire).into());
    }
    Ok(v.get_mut("ok").map(Value::take).ok_or_else(|| {
        Error::Invalid(format!("the admin API answered {status} without a result"))
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_read_or_refused_by_name() {
        assert_eq!(
            parse_url("https://127.0.0.1:9444").unwrap(),
            ("127.0.0.1".into(), 9444)
        );
        assert_eq!(
            parse_url("https://ca.example/").unwrap(),
            ("ca.example".into(), 443)
        );
        assert_eq!(
            parse_url("https://[::1]:8443").unwrap(),
            ("::1".into(), 8443)
        );
        for bad in [
            "http://127.0.0.1:1",
            "https://:1",
            "https://h:port",
            "https://h:1/other",
        ] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains("--server"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_come_back_typed() {
        let body = ca::api::reply_line(Err(ca::Error::UnknownResident("R9".into())));
        let e = decode(http::StatusCode::NOT_FOUND, body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("R9"), "{e}");
        let ok = decode(http::StatusCode::OK, br#"{"ok":{"id":"R1"}}"#).unwrap();
        assert_eq!(ok["id"], "R1");
        assert!(decode(http::StatusCode::BAD_GATEWAY, b"<html>").is_err());
    }
}
