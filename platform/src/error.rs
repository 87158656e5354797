//! The crate's one error type. Each variant says what went wrong; [`Error::code`] gives the
//! stable machine-readable code the HTTPS API puts in `{"error": {"code", "message"}}`, and
//! [`Error::status`] its HTTP status.

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Ca(#[from] ca::Error),
    #[error("{0}")]
    Policy(#[from] policies::Error),
    #[error("{field}: must be 1 to 64 printable characters")]
    BadName { field: &'static str },
    #[error("unknown scope `{0}` (known: validity, four-attributes, successor)")]
    UnknownScope(String),
    #[error("a platform operator named `{0}` already exists")]
    OperatorExists(String),
    #[error("unknown platform operator `{0}`")]
    UnknownOperator(String),
    #[error("platform operator `{name}` is {state}")]
    OperatorNotActive { name: String, state: &'static str },
    #[error("the client certificate's key is not registered to any platform operator")]
    UnregisteredClient,
    #[error("this key is already registered to platform operator {0}")]
    KeyTaken(String),
    #[error("a service provider named `{0}` already exists under this platform operator")]
    SpExists(String),
    #[error("unknown service provider `{0}`")]
    UnknownSp(String),
    #[error("service provider {sp} is {state}")]
    SpNotActive { sp: String, state: &'static str },
    #[error("service provider {sp} is already {state}")]
    SpStateUnchanged { sp: String, state: &'static str },
    #[error("cursor `{0}`: not a cursor this API gave out (use the `next` of an earlier answer)")]
    BadCursor(String),
    #[error("cursor `{cursor}` is ahead of the feed (its last position is {head}): not a cursor this API gave out")]
    UnknownCursor { cursor: String, head: u64 },
    #[error("service provider {0} is not delegated to this platform operator")]
    SpNotDelegated(String),
    #[error("service provider {sp} does not have the `{scope}` scope")]
    ScopeMissing { sp: String, scope: &'static str },
    #[error("platform operator does not have the `{0}` scope")]
    OperatorScopeMissing(&'static str),
    #[error("certificate: {0}")]
    BadCertificate(String),
    #[error("certificate {0} was not issued by this authority")]
    UnknownCertificate(String),
    #[error("consent refused: {0}")]
    ConsentRefused(String),
    #[error("the consent nonce was already used")]
    NonceReused,
    #[error("unknown consent `{0}`")]
    UnknownConsent(String),
    #[error("consent {0} is already withdrawn")]
    ConsentWithdrawn(String),
    #[error("no consent of this holder for this service provider")]
    NoConsent,
    #[error("the holder's consent for this service provider has expired")]
    ConsentExpired,
    #[error("the holder withdrew the consent for this service provider")]
    ConsentWithdrawnByHolder,
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("platform operator `{name}`: its client certificate runs until {not_after}; renewal opens on {opens}")]
    RenewalTooEarly {
        name: String,
        not_after: String,
        opens: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The stable code of the error in API answers.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Ca(ca::Error::UnknownSerial(_)) => "unknown_certificate",
            Error::Ca(ca::Error::UnknownResident(_)) => "unknown_resident",
            Error::Ca(ca::Error::Invalid(_)) => "invalid",
            Error::Ca(_) | Error::Policy(_) => "ca_error",
            Error::BadName { .. } => "bad_name",
            Error::UnknownScope(_) => "unknown_scope",
            Error::OperatorExists(_) => "operator_exists",
            Error::UnknownOperator(_) => "unknown_operator",
            Error::OperatorNotActive { state, .. } => match *state {
                "suspended" => "operator_suspended",
                _ => "operator_revoked",
            },
            Error::UnregisteredClient => "operator_unknown",
            Error::KeyTaken(_) => "key_taken",
            Error::RenewalTooEarly { .. } => "renewal_too_early",
            Error::SpExists(_) => "sp_exists",
            Error::UnknownSp(_) => "sp_unknown",
            Error::SpNotDelegated(_) => "sp_not_delegated",
            Error::SpNotActive { state, .. } => match *state {
                "suspended" => "sp_suspended",
                _ => "sp_removed",
            },
            Error::SpStateUnchanged { .. } => "sp_state_unchanged",
            Error::BadCursor(_) => "cursor_invalid",
            Error::UnknownCursor { .. } => "cursor_unknown",
            Error::ScopeMissing { .. } => "scope_missing",
            Error::OperatorScopeMissing(_) => "operator_scope_missing",
            Error::BadCertificate(_) => "bad_certificate",
            Error::UnknownCertificate(_) => "unknown_certificate",
            Error::ConsentRefused(_) => "consent_invalid",
            Error::NonceReused => "nonce_reused",
            Error::UnknownConsent(_) => "consent_unknown",
            Error::ConsentWithdrawn(_) => "consent_already_withdrawn",
            Error::NoConsent => "consent_missing",
            Error::ConsentExpired => "consent_expired",
            Error::ConsentWithdrawnByHolder => "consent_withdrawn",
            Error::BadRequest(_) => "malformed_request",
            Error::TooLarge(_) => "body_too_large",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::Tls(_) | Error::Io { .. } | Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status of the error in API answers.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::OperatorNotActive { .. }
            | Error::UnregisteredClient
            | Error::SpNotDelegated(_)
            | Error::SpNotActive { .. }
            | Error::ScopeMissing { .. }
            | Error::OperatorScopeMissing(_)
            | Error::NoConsent
            | Error::ConsentExpired
            | Error::ConsentWithdrawnByHolder => StatusCode::FORBIDDEN,
            Error::ConsentRefused(_) => StatusCode::FORBIDDEN,
            Error::UnknownSp(_) => StatusCode::FORBIDDEN,
            Error::NonceReused | Error::ConsentWithdrawn(_) | Error::SpStateUnchanged { .. } => {
                StatusCode::CONFLICT
            }
            Error::UnknownConsent(_) | Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::UnknownCertificate(_) | Error::Ca(ca::Error::UnknownSerial(_)) => {
                StatusCode::NOT_FOUND
            }
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::BadRequest(_)
            | Error::BadCertificate(_)
            | Error::BadName { .. }
            | Error::UnknownScope(_)
            | Error::BadCursor(_)
            | Error::UnknownCursor { .. }
            | Error::Ca(ca::Error::Invalid(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ca::records::platform::UnknownScope> for Error {
    fn from(e: ca::records::platform::UnknownScope) -> Error {
        Error::UnknownScope(e.0)
    }
}

impl ca::api::Coded for Error {
    /// A CA error crosses the admin socket as itself (the client rebuilds the typed error);
    /// the platform's own with the code the HTTPS API uses.
    fn wire(&self) -> ca::api::WireError {
        match self {
            Error::Ca(e) => e.wire(),
            other => ca::api::WireError {
                code: other.code().to_owned(),
                message: other.to_string(),
                subject: None,
                fields: None,
            },
        }
    }
}
