//! The crate's one error type.

use std::path::PathBuf;

use policies::profile::Scope;
use policies::Hierarchy;

/// The error a [`Source`](crate::Source) or [`StateStore`](crate::StateStore) implementation
/// returns; the publisher wraps it with what it was doing.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong while building, checking, writing or serving a CRL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A root certificate handed to the publisher cannot be used to issue CRLs.
    #[error("{hierarchy} root certificate: {problem}")]
    Root {
        hierarchy: Hierarchy,
        problem: String,
    },
    /// A [`Settings`](crate::Settings) value is out of range.
    #[error("crl-publisher setting `{field}`: {problem}")]
    Settings {
        field: &'static str,
        problem: String,
    },
    /// The policy could not produce a CRL's distribution point names or times.
    #[error("policy: {0}")]
    Policy(#[from] policies::Error),
    /// A revoked entry cannot be written into a CRL (e.g. an over-long serial number).
    #[error("revoked entry {serial}: {problem}")]
    Entry { serial: String, problem: String },
    /// A DER structure could not be encoded.
    #[error("DER encoding of {what}: {source}")]
    Der {
        what: &'static str,
        source: der::Error,
    },
    /// The root's signer refused or failed.
    #[error("signing the {hierarchy} CRL: {source}")]
    Sign {
        hierarchy: Hierarchy,
        source: policies::SignError,
    },
    /// The source of revoked entries failed.
    #[error("reading revoked entries of {hierarchy}/{scope}: {source}")]
    Source {
        hierarchy: Hierarchy,
        scope: String,
        source: BoxError,
    },
    /// The state store failed to load or durably save a partition's state.
    #[error("CRL state of {hierarchy}/{scope}: {source}")]
    State {
        hierarchy: Hierarchy,
        scope: String,
        source: BoxError,
    },
    /// The freshly built CRL failed its own check and was not published.
    #[error("self-check of {hierarchy}/{scope} CRL #{number} failed: {problem}")]
    SelfCheck {
        hierarchy: Hierarchy,
        scope: String,
        number: u64,
        problem: String,
    },
    /// Writing a file (CRL, index) failed; the previous file, if any, is still in place.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A published file could not be read back (e.g. for serving).
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A published file on disk is not a CRL this publisher can serve.
    #[error("{path} is not a readable CRL: {problem}")]
    BadFile { path: PathBuf, problem: String },
    /// A background task (blocking build) panicked or was cancelled.
    #[error("background build task: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn der(what: &'static str) -> impl FnOnce(der::Error) -> Error {
        move |source| Error::Der { what, source }
    }

    pub(crate) fn state(h: Hierarchy, scope: &Scope) -> impl FnOnce(BoxError) -> Error {
        let scope = crate::scope_name(scope);
        move |source| Error::State {
            hierarchy: h,
            scope,
            source,
        }
    }
}
