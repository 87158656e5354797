//! Mutual TLS for the responder (JPKI gives revocation data only to registered verifiers).
//!
//! [`mtls_config`] builds a rustls `ServerConfig` that requires a client certificate chaining
//! to the operator CA (rustls-webpki path validation) and then asks an [`Admission`] — the CA
//! plugs its own status lookup in here — whether that certificate is still admitted (not
//! revoked). A database check is used instead of webpki CRLs because a webpki verifier is
//! immutable (a revocation would need a new `ServerConfig`) and webpki ignores
//! directoryName-partitioned CRLs (crate-notes §12).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::Error;

/// Decides whether a client certificate that chains to the operator CA may use the responder.
pub trait Admission: Send + Sync + fmt::Debug {
    /// `Err(reason)` refuses the handshake; `reason` is logged (it must hold no secret).
    fn admit(&self, end_entity: &CertificateDer<'_>) -> Result<(), String>;
}

/// Admits every certificate that chains to the operator CA.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _: &CertificateDer<'_>) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug)]
struct OperatorVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    admission: Arc<dyn Admission>,
}

impl ClientCertVerifier for OperatorVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        match self.admission.admit(end_entity) {
            Ok(()) => Ok(ok),
            Err(reason) => {
                tracing::info!(%reason, "client certificate refused");
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Revoked,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// A TLS server configuration requiring a client certificate issued under `operator_roots` and
/// admitted by `admission`. HTTP/2 and HTTP/1.1 are offered by ALPN. Uses the aws-lc-rs
/// provider explicitly, so no process-wide default provider is needed.
pub fn mtls_config(
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    operator_roots: Vec<CertificateDer<'static>>,
    admission: Arc<dyn Admission>,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for root in operator_roots {
        roots.add(root)?;
    }
    let chain =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let verifier = Arc::new(OperatorVerifier { chain, admission });
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_chain, server_key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
