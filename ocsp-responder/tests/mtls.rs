//! Mutual TLS: only clients chaining to the operator CA and admitted by the CA's check get in.

mod support;

use std::sync::Arc;

use ocsp_responder::tls::{mtls_config, Admission};
use ocsp_responder::{Responder, Settings, SystemClock};
use policies::Policy;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct RefuseSerial(Vec<u8>);

impl Admission for RefuseSerial {
    fn admit(&self, cert: &CertificateDer<'_>) -> Result<(), String> {
        let (_, c) = x509_parser::parse_x509_certificate(cert).map_err(|e| e.to_string())?;
        if c.raw_serial() == self.0.as_slice() {
            return Err("client certificate revoked".into());
        }
        Ok(())
    }
}

struct Ca {
    issuer: rcgen::Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let der = p.self_signed(&key).unwrap().der().clone();
    Ca {
        issuer: rcgen::Issuer::new(p, key),
        der,
    }
}

fn issue(
    ca: &Ca,
    cn: &str,
    serial: u8,
    san: Option<&str>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p =
        CertificateParams::new(san.map(|s| vec![s.to_owned()]).unwrap_or_default()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&[serial]));
    let der = p.signed_by(&key, &ca.issuer).unwrap().der().clone();
    (
        der,
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

async fn healthz(
    addr: std::net::SocketAddr,
    server_ca: &CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some((c, k)) => b.with_client_auth_cert(vec![c], k).unwrap(),
        None => b.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admitted_operator_clients_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let server_ca = ca("server CA");
    let operator_ca = ca("operator CA");
    let other_ca = ca("someone else");
    let (server_cert, server_key) = issue(&server_ca, "localhost", 1, Some("localhost"));
    let cfg = mtls_config(
        vec![server_cert],
        server_key,
        vec![operator_ca.der.clone()],
        Arc::new(RefuseSerial(vec![66])),
    )
    .unwrap();
    let responder = Responder::new(
        Settings::from_policy(&Policy::default_policy()),
        pki.issuers.clone(),
        pki.source.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        responder
            .serve(listener, Some(acceptor), async {
                let _ = rx.await;
            })
            .await
    });

    let ok = healthz(
        addr,
        &server_ca.der,
        Some(issue(&operator_ca, "platform operator", 65, None)),
    )
    .await;
    assert!(
        ok.as_ref().is_ok_and(|r| r.starts_with("HTTP/1.1 200")),
        "{ok:?}"
    );
    // TLS 1.3: the server's verdict on the client certificate arrives after the client's
    // handshake completes, so refusals show up as an error on write or read.
    let none = healthz(addr, &server_ca.der, None).await;
    assert!(none.is_err(), "{none:?}");
    let revoked = healthz(
        addr,
        &server_ca.der,
        Some(issue(&operator_ca, "revoked operator", 66, None)),
    )
    .await;
    assert!(revoked.is_err(), "{revoked:?}");
    let stranger = healthz(
        addr,
        &server_ca.der,
        Some(issue(&other_ca, "stranger", 67, None)),
    )
    .await;
    assert!(stranger.is_err(), "{stranger:?}");
}
