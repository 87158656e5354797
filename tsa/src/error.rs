//! The crate's one error type.

/// What went wrong with a time-stamp request, answer or token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The authority (its key, certificate or store) failed.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Ca(#[from] ca::Error),
    /// A certificate or structure could not be built.
    #[error("time-stamping authority: {0}")]
    Internal(String),
    /// A time-stamp request is malformed or asks for what this TSA does not do.
    #[error("bad time-stamp request: {0}")]
    BadRequest(String),
    /// A time-stamp answer is malformed, refused, or does not answer the request.
    #[error("bad time-stamp answer: {0}")]
    BadResponse(String),
    /// A time-stamp token is malformed or its signature does not verify.
    #[error("time-stamp token: {0}")]
    BadToken(String),
    /// The token's messageImprint is not over the data it is presented with.
    #[error("the time-stamp is over other content (its messageImprint does not match)")]
    OtherContent,
    /// The token's signer does not chain to a trusted TSA root.
    #[error("the time-stamp is from an untrusted TSA: {0}")]
    UntrustedTsa(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<signed_data::Error> for Error {
    fn from(e: signed_data::Error) -> Error {
        Error::BadToken(e.to_string())
    }
}

#[cfg(feature = "server")]
impl From<policies::Error> for Error {
    fn from(e: policies::Error) -> Error {
        Error::Internal(e.to_string())
    }
}

pub(crate) fn der_err(what: &'static str) -> impl Fn(der::Error) -> Error {
    move |e| Error::Internal(format!("{what}: {e}"))
}
