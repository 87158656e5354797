//! The narrow signing interface shared by the CA, the CRL publisher and the OCSP responder.
//!
//! Every signature in jpki is RSA PKCS#1 v1.5 with SHA-256 (sha256WithRSAEncryption,
//! RFC 4055 §5), as JPKI uses for every certificate (reference §1). The CA implements this
//! trait over aws-lc-rs keys; the publishers take a `&dyn Signer` and know nothing of key files.

/// A signing failure (the key refused, the backend failed). Carries no secret.
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(pub String);

pub trait Signer: Send + Sync {
    /// Signs `message` with sha256WithRSAEncryption and returns the raw signature.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;

    /// The DER certificate of the signing key (a root, or a delegated OCSP signer).
    fn certificate(&self) -> &[u8];
}
