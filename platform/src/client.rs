//! A minimal Rust client for the PF API: one mutual-TLS connection (tokio-rustls, client
//! certificate), HTTP/1.1 keep-alive through `hyper::client::conn`. Used by the tests and the
//! load generator; a PF can use it as a starting point.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// A client TLS configuration: trust `root_pem` for the server, present `cert_pem`/`key_pem`.
pub fn tls_config(root_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Arc<ClientConfig>> {
    let tls = |e: String| Error::Tls(e);
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| tls(e.to_string()))?)
            .map_err(|e| tls(e.to_string()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| tls(e.to_string()))?;
    let cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// One keep-alive connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connects and completes the TLS handshake (the server may still refuse the client
    /// certificate: that shows as an error on the first request with TLS 1.3).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        cfg: Arc<ClientConfig>,
    ) -> Result<Client> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(Error::io(format!("connect to {addr}")))?;
        let _ = tcp.set_nodelay(true);
        let name =
            ServerName::try_from(server_name.to_owned()).map_err(|e| Error::Tls(e.to_string()))?;
        let tls = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(Error::io("TLS handshake"))?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| Error::Tls(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client { sender })
    }

    /// Sends one JSON request; returns the status and the raw body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes)> {
        self.send_typed(method, path, "application/json", body)
            .await
    }

    /// Sends one request with the given content type; returns the status and the raw body.
    pub async fn send_typed(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await.map_err(|e| Error::Io {
            context: "connection".into(),
            source: std::io::Error::other(e),
        })?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "pf-api")
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let resp = self.sender.send_request(req).await.map_err(|e| Error::Io {
            context: "request".into(),
            source: std::io::Error::other(e),
        })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Io {
                context: "response".into(),
                source: std::io::Error::other(e),
            })?
            .to_bytes();
        Ok((status, body))
    }

    /// Sends JSON, returns the status and the JSON answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value)> {
        let (status, bytes) = self
            .send(method, path, body.to_string().into_bytes())
            .await?;
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadRequest(format!("answer is not JSON: {e}")))?;
        Ok((status, v))
    }

    /// `POST path` with a JSON body.
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<(StatusCode, Value)> {
        self.call(Method::POST, path, body).await
    }
}
