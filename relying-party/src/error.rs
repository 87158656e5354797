//! The crate's one error type. Every variant says what went wrong; the `Display` text is
//! what the report shows as the reason of a failed check.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- input ----
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not a certificate (PEM or DER): {detail}")]
    NotACertificate { what: &'static str, detail: String },
    #[error("policy file: {0}")]
    Policy(#[from] policies::Error),
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

    // ---- kind and policy ----
    #[error("certificate kind is {found} (policy {oid}); {expected} required")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
        oid: String,
    },
    #[error("no accepted {expected} policy in certificatePolicies (found: {found})")]
    PolicyMismatch {
        expected: &'static str,
        found: String,
    },
    #[error("keyUsage {found} does not fit the {kind} kind (needs {needed})")]
    KeyUsage {
        kind: &'static str,
        found: String,
        needed: &'static str,
    },
    #[error("holder attributes: {0}")]
    Attributes(String),

    // ---- revocation status ----
    #[error("revoked at {date} (reason: {reason})")]
    Revoked { date: String, reason: String },
    #[error("on hold since {date} (certificateHold)")]
    Held { date: String },
    #[error("CRL: {0}")]
    CrlSyntax(String),
    #[error("CRL is not issued by the trust anchor: {0}")]
    CrlIssuer(String),
    #[error("CRL signature does not verify with the trust anchor's key")]
    CrlSignature,
    #[error("stale CRL: nextUpdate {next_update} has passed (now {now})")]
    StaleCrl { next_update: String, now: String },
    #[error("CRL thisUpdate {this_update} is in the future (now {now})")]
    FutureCrl { this_update: String, now: String },
    #[error("the CRL does not cover this certificate: {0}")]
    CrlScope(String),
    #[error("CRL: unsupported critical extension {0}")]
    CrlCriticalExtension(String),
    #[error("no HTTP CRL distribution point in the certificate; give --crl or --ocsp")]
    NoCrlUrl,
    #[error("OCSP request: {0}")]
    OcspRequest(String),
    #[error("OCSP response malformed: {0}")]
    OcspSyntax(String),
    #[error("OCSP responder answered {0}")]
    OcspStatus(String),
    #[error("OCSP response signature does not verify with the trust anchor or a delegated responder it authorised")]
    OcspSignature,
    #[error("OCSP response is not for this certificate (CertID/serial differs)")]
    OcspWrongCertificate,
    #[error("OCSP nonce mismatch: the response does not echo the request's nonce")]
    NonceMismatch,
    #[error("OCSP response carries no nonce (a replayed answer cannot be excluded)")]
    NonceMissing,
    #[error("stale OCSP response: {0}")]
    OcspStale(String),
    #[error("OCSP responder does not know the certificate (status unknown)")]
    OcspUnknown,
    #[error("HTTP {url}: {detail}")]
    Http { url: String, detail: String },
}

impl Error {
    pub(crate) fn read(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}
