//! The portal's TLS: a server certificate from the operator CA (replaceable in place, so it is
//! renewed like the platform API's), and client certificates *requested but optional*: a
//! holder whose browser holds the card's authentication certificate logs in with it, anyone
//! else gets the login page with the challenge–response.
//!
//! The client certificate is checked by [`HolderCerts`], not by rustls-webpki's
//! `WebPkiClientVerifier`: webpki refuses the critical certificatePolicies every JPKI holder
//! certificate carries (`crate-notes.md` §1), so the path is validated by
//! [`signed_data::path::validate`] (RFC 5280 §6 for the one-tier hierarchy) against the
//! authentication root or the signing root, at the authority's clock, and the handshake
//! signature is verified with aws-lc-rs over the certificate's RSA key. Both roots are
//! accepted in the handshake so that a signing certificate reaches the application and is
//! refused there with words ("a signing certificate cannot be used to log in") instead of a
//! bare TLS alert; revocation and holds are the application's check too (the store, not a
//! CRL), made at login and on every request.

use std::sync::Arc;

use policies::clock::Clock;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use x509_parser::prelude::*;

use crate::{Error, Result};

/// Checks client certificates against the two holder roots (see the module docs).
#[derive(Debug)]
pub struct HolderCerts {
    /// (subject DER, certificate DER) of each root.
    roots: Vec<(Vec<u8>, Vec<u8>)>,
    hints: Vec<DistinguishedName>,
    clock: ClockRef,
}

/// The authority's clock, for `Debug`.
struct ClockRef(Arc<dyn Clock>);

impl std::fmt::Debug for ClockRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

fn bad(e: impl std::fmt::Display) -> rustls::Error {
    rustls::Error::General(e.to_string())
}

impl HolderCerts {
    pub fn new(roots: &[Vec<u8>], clock: Arc<dyn Clock>) -> Result<HolderCerts> {
        let mut out = Vec::new();
        let mut hints = Vec::new();
        for der in roots {
            let (_, c) = X509Certificate::from_der(der)
                .map_err(|e| Error::Serve(format!("portal: a root does not parse: {e}")))?;
            let subject = c.subject().as_raw().to_vec();
            hints.push(DistinguishedName::from(subject.clone()));
            out.push((subject, der.clone()));
        }
        Ok(HolderCerts {
            roots: out,
            hints,
            clock: ClockRef(clock),
        })
    }

    /// Validates a holder certificate's path to one of the roots at the authority's time.
    pub fn validate(&self, der: &[u8]) -> std::result::Result<(), String> {
        let (_, leaf) =
            X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
        let root = self
            .roots
            .iter()
            .find(|(subject, _)| subject.as_slice() == leaf.issuer().as_raw())
            .ok_or("not issued by this authority")?;
        let (_, root) = X509Certificate::from_der(&root.1).map_err(|e| e.to_string())?;
        signed_data::path::validate(&leaf, &root, self.clock.0.now()).map_err(|e| e.to_string())
    }
}

impl ClientCertVerifier for HolderCerts {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.validate(end_entity.as_ref()).map_err(bad)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        if matches!(
            dss.scheme,
            SignatureScheme::RSA_PKCS1_SHA256
                | SignatureScheme::RSA_PKCS1_SHA384
                | SignatureScheme::RSA_PKCS1_SHA512
        ) {
            // RFC 8446 §4.4.3: PKCS#1 v1.5 is not for CertificateVerify in TLS 1.3.
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
        ]
    }
}

/// The handshake signature by the client certificate's RSA key (the only key type of the
/// JPKI profile).
fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
    let (_, c) = X509Certificate::from_der(cert.as_ref()).map_err(bad)?;
    let key = c.public_key().subject_public_key.data.to_vec();
    let alg: &'static dyn sig::VerificationAlgorithm = match dss.scheme {
        SignatureScheme::RSA_PSS_SHA256 => &sig::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RSA_PSS_SHA384 => &sig::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RSA_PSS_SHA512 => &sig::RSA_PSS_2048_8192_SHA512,
        SignatureScheme::RSA_PKCS1_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))
        }
    };
    UnparsedPublicKey::new(alg, key)
        .verify(message, dss.signature())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))?;
    Ok(HandshakeSignatureValid::assertion())
}

/// The portal's TLS configuration: TLS 1.3 and 1.2, the replaceable server identity, holder
/// client certificates requested (optional), HTTP/1.1 (a browser site; no ALPN h2 needed).
pub fn config(
    identity: Arc<platform::Identity>,
    verifier: Arc<HolderCerts>,
) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Serve(format!("portal TLS: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
