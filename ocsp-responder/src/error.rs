//! The crate's error type.

/// What went wrong while setting up or running the responder. Per-request problems are not
/// errors: they become OCSP error statuses (`malformedRequest`, `unauthorized`, `tryLater`) or
/// HTTP statuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{what} certificate is not valid DER: {source}")]
    Certificate {
        what: &'static str,
        #[source]
        source: der07::Error,
    },
    #[error("hierarchy {0} is configured twice")]
    DuplicateIssuer(policies::Hierarchy),
    #[error("no issuer configured")]
    NoIssuer,
    #[error("encoding the OCSP response failed: {0}")]
    Encode(#[from] der07::Error),
    #[error(transparent)]
    Sign(#[from] policies::SignError),
    #[error("status source: {0}")]
    Source(#[from] crate::source::SourceError),
    #[error("time {0} cannot be expressed as GeneralizedTime")]
    Time(time::OffsetDateTime),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("settings: {0}")]
    Settings(String),
    /// The durable store of pre-signed answers failed ([`crate::stored`]).
    #[error("pre-signed answer store: {0}")]
    Store(String),
}
