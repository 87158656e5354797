//! The crate's one error type. Every variant says what went wrong; the `Display` text is
//! what a relying party's report shows as the reason of a failed check, and what the
//! platform puts after `consent refused: `.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- input ----
    #[error("{what} is not a certificate (PEM or DER): {detail}")]
    NotACertificate { what: &'static str, detail: String },
    #[error("`{0}` is not an RFC 3339 time (e.g. 2026-11-27T12:00:00+09:00)")]
    BadTime(String),

    // ---- CMS (RFC 5652) ----
    #[error("not a CMS SignedData: {0}")]
    CmsSyntax(String),
    #[error("CMS: {0}")]
    CmsUnsupported(String),
    #[error("the signer's certificate is not inside the SignedData")]
    SignerNotIncluded,
    #[error("detached signature: the signed content is needed (--content)")]
    ContentMissing,
    #[error("the content given differs from the content inside the signature")]
    ContentMismatch,
    #[error("messageDigest does not match the content (content altered or wrong file)")]
    DigestMismatch,
    #[error(
        "contentType attribute {attr} does not match the encapsulated content type {econtent}"
    )]
    ContentTypeMismatch { attr: String, econtent: String },
    #[error("the RSA signature does not verify with the signer's public key")]
    BadSignature,

    // ---- certification path (RFC 5280 §6, one tier) ----
    #[error("the certificate's issuer name is not the trust anchor's subject (wrong trust anchor or other hierarchy)")]
    IssuerMismatch,
    #[error("authorityKeyIdentifier {aki} is not the trust anchor's subjectKeyIdentifier {ski}")]
    KeyIdMismatch { aki: String, ski: String },
    #[error("the certificate's signature does not verify with the trust anchor's key")]
    BadCertificateSignature,
    #[error("{which} certificate is signed with {oid}; only sha256WithRSAEncryption is accepted")]
    SignatureAlgorithm { which: &'static str, oid: String },
    #[error("{which} certificate is not valid before {not_before} (checked at {at})")]
    NotYetValid {
        which: &'static str,
        not_before: String,
        at: String,
    },
    #[error("{which} certificate expired at {not_after} (checked at {at})")]
    Expired {
        which: &'static str,
        not_after: String,
        at: String,
    },
    #[error("the trust anchor is not a CA (basicConstraints cA missing or false)")]
    RootNotCa,
    #[error("the trust anchor's keyUsage lacks keyCertSign")]
    RootKeyUsage,
    #[error("the end-entity certificate is a CA certificate")]
    LeafIsCa,
    #[error("unsupported critical extension {0} in the end-entity certificate")]
    UnknownCriticalExtension(String),
    #[error("{which} certificate is not X.509 v3")]
    NotV3 { which: &'static str },
    #[error("malformed extension {oid}: {detail}")]
    BadExtension { oid: String, detail: String },
}
