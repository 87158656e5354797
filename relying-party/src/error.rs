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
    #[error("policy file: {0}")]
    Policy(#[from] policies::Error),
    #[error("trust anchors: {0}")]
    TrustAnchor(String),
    /// Certificates that do not parse, bad times, CMS and certification-path failures: the
    /// checks `signed-data` makes (shared with the platform's consent check). The text is
    /// that error's own.
    #[error(transparent)]
    SignedData(#[from] signed_data::Error),

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
    #[error("no HTTP CRL distribution point in the certificate (a directoryName-only point, as in real JPKI certificates, is found through the publisher's index: give --crl <.../crl/index.json>); or give --crl <CRL> or --ocsp")]
    NoCrlUrl,
    /// A CRL publisher's `index.json` is unreadable or names no CRL for the certificate.
    #[error("CRL index {at}: {problem}")]
    CrlIndex { at: String, problem: String },
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
    // ---- verification as of a time (jpki verify --at) ----
    /// The signature time-stamp does not verify (other content, untrusted TSA, bad token).
    #[error(transparent)]
    Timestamp(#[from] tsa::Error),
    /// Revocation information issued before the time judged says nothing about it
    /// (RFC 5280 §6.3.3, ETSI EN 319 102-1 §5.2.5).
    #[error("revocation information is older than the time judged: issued {produced}, judged as of {at}")]
    RevocationTooOld { produced: String, at: String },
    /// An evidence file that is unreadable, altered or inconsistent.
    #[error("evidence file: {0}")]
    Evidence(String),
}

impl Error {
    pub(crate) fn read(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}
