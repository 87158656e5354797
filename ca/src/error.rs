//! The crate's one error type: every variant says what went wrong, in a line an operator can act on.

use policies::{Hierarchy, Reason};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("data directory {0} already exists and is not empty; refusing to touch it")]
    DataDirExists(String),
    #[error("data directory {0} does not exist or was not made by `jpki init`")]
    NoDataDir(String),
    #[error("the data directory is in use by another process (a running `jpki serve`?): {0}")]
    Locked(String),
    #[error("the store {0} is open read-only (--read-only): this command would change it; run it on a writable copy without --read-only")]
    ReadOnly(String),
    #[error("no key passphrase: set JPKI_PASSPHRASE or pass --passphrase-file FILE")]
    NoPassphrase,
    #[error("wrong key passphrase (cannot decrypt {0})")]
    WrongPassphrase(String),
    #[error("key file {path}: {detail}")]
    KeyFile { path: String, detail: String },
    #[error("{0}")]
    Policy(#[from] policies::Error),
    #[error("CSR: {0}")]
    Csr(String),
    #[error("certificate refused: {0}")]
    Refused(String),
    #[error("unknown resident `{0}`")]
    UnknownResident(String),
    #[error("unknown serial {0}")]
    UnknownSerial(String),
    #[error("serial {0} exists in both hierarchies; add --hierarchy signing|auth")]
    AmbiguousSerial(String),
    #[error("serial {serial} ({hierarchy}) is already revoked ({reason})")]
    AlreadyRevoked {
        serial: String,
        hierarchy: Hierarchy,
        reason: Reason,
    },
    #[error("serial {0} is on hold; a held card certificate is never released (revoke it and issue anew)")]
    Held(String),
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Store(String),
    /// What a transaction read changed underneath it (a resident's version, a status): the
    /// operation re-reads and tries again (never reaches a caller of `Authority`).
    #[error("the data changed during the operation; try again")]
    Retry,
    /// sled saw a concurrent transaction; the store re-runs the body (never leaves the store).
    #[error("transaction conflict")]
    Conflict,
    /// The store already holds a certificate of this hierarchy and serial: a unit of work
    /// never replaces one (issue #13: another CA node on the same store, with its own serial
    /// counter, issued the serial first). The unit of work changes nothing; the authority
    /// re-reads the store's counter and signs again with a fresh serial.
    #[error("serial {serial} ({hierarchy}) is already taken by another certificate in the store; nothing was recorded")]
    SerialTaken {
        hierarchy: Hierarchy,
        serial: String,
    },
    #[error("audit chain broken at record {seq}: {problem}")]
    AuditBroken { seq: u64, problem: String },
    #[error("signing failed: {0}")]
    Sign(#[from] policies::SignError),
    /// An error reported by the running server over the admin socket that has no typed
    /// variant here (another component's, or one carrying a source that does not cross the
    /// socket): its stable code and its message.
    #[error("{message}")]
    Remote { code: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The public key (hex SPKI SHA-256) is on the blocklist: a certificate of it was revoked
    /// for keyCompromise, so it is never certified again, to anyone.
    #[error("certificate refused: public key {0} (SPKI SHA-256) was revoked for keyCompromise and can never be certified again; make a new key")]
    KeyBlocked(String),
    /// A root or OCSP-signer serial given to `revoke`/`hold`, which act on holders'
    /// certificates only.
    #[error("serial {0} is an infrastructure certificate (a root or an OCSP signer), not a holder's certificate: `jpki revoke` and `jpki hold` cannot touch it")]
    NotHolderCertificate(String),
    /// An eligibility rule of the policy's `[eligibility]` section refuses the request.
    #[error("refused: {0}")]
    Ineligible(policies::eligibility::Ineligible),
    /// Someone with the same name, date of birth and address is already registered.
    #[error("resident {0} is already registered with the same name, date of birth and address; pass --allow-duplicate REASON if this is a different person")]
    DuplicateResident(String),
    /// The actor may not do this (its role, or another municipality's resident).
    #[error("forbidden: {actor} may not {action}")]
    Forbidden { actor: String, action: String },
    /// No officer is registered by this name or key.
    #[error("unknown officer {0}")]
    UnknownOfficer(String),
    /// The officer is suspended or revoked.
    #[error("officer {name} is {state}")]
    OfficerNotActive { name: String, state: &'static str },
    /// The officer's client certificate is outside its validity.
    #[error("{0}")]
    OfficerCertificate(String),
    #[error("an officer named `{0}` already exists")]
    OfficerExists(String),
    /// The PKCS#11 module does not load or initialise.
    #[error("HSM: {0}")]
    HsmModule(String),
    /// The token refused the PIN.
    #[error("HSM: {0}")]
    HsmPin(String),
    /// The token holds no key of that label.
    #[error("HSM: {0}")]
    HsmNoKey(String),
    /// Any other PKCS#11 failure (no such token, a refused operation).
    #[error("HSM: {0}")]
    Hsm(String),
    /// A key ceremony lacks the approval of two distinct ca-officers ([`crate::ceremony`]).
    #[error("dual control: {0}")]
    DualControl(String),
}

impl Error {
    /// The stable, machine-readable code of the error: what the admin socket carries beside
    /// the message, so that a client can tell "unknown serial" from "store unavailable".
    pub fn code(&self) -> &str {
        match self {
            Error::DataDirExists(_) => "data_dir_exists",
            Error::NoDataDir(_) => "no_data_dir",
            Error::Locked(_) => "locked",
            Error::ReadOnly(_) => "read_only",
            Error::NoPassphrase => "no_passphrase",
            Error::WrongPassphrase(_) => "wrong_passphrase",
            Error::KeyFile { .. } => "key_file",
            Error::Policy(_) => "policy",
            Error::Csr(_) => "csr",
            Error::Refused(_) => "refused",
            Error::UnknownResident(_) => "unknown_resident",
            Error::UnknownSerial(_) => "unknown_serial",
            Error::AmbiguousSerial(_) => "ambiguous_serial",
            Error::AlreadyRevoked { .. } => "already_revoked",
            Error::Held(_) => "held",
            Error::Invalid(_) => "invalid",
            Error::Store(_) => "store",
            Error::Retry => "retry",
            Error::Conflict => "conflict",
            Error::SerialTaken { .. } => "serial_taken",
            Error::AuditBroken { .. } => "audit_broken",
            Error::Sign(_) => "sign",
            Error::Remote { code, .. } => code,
            Error::Io { .. } => "io",
            Error::KeyBlocked(_) => "key_blocked",
            Error::NotHolderCertificate(_) => "not_holder_certificate",
            Error::Ineligible(i) => match i {
                policies::eligibility::Ineligible::TooYoungToSign { .. } => "too_young_to_sign",
                policies::eligibility::Ineligible::CardTooLong { .. } => "card_too_long",
                policies::eligibility::Ineligible::OutsideRenewalWindow { .. } => {
                    "outside_renewal_window"
                }
            },
            Error::DuplicateResident(_) => "duplicate_resident",
            Error::Forbidden { .. } => "forbidden",
            Error::UnknownOfficer(_) => "unknown_officer",
            Error::OfficerNotActive { .. } => "officer_not_active",
            Error::OfficerCertificate(_) => "officer_certificate",
            Error::OfficerExists(_) => "officer_exists",
            Error::HsmModule(_) => "hsm_module",
            Error::HsmPin(_) => "hsm_pin",
            Error::HsmNoKey(_) => "hsm_no_key",
            Error::Hsm(_) => "hsm",
            Error::DualControl(_) => "dual_control",
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Store(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
