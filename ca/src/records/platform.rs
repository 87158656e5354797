//! The records of platform operators (PF) and service providers (SP), the holders' consents
//! and the access log: the storage authority's platform part holds them for the `platform`
//! crate, which owns the rules around them.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What a PF, and an SP under it, may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    Validity,
    FourAttributes,
    Successor,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Validity => "validity",
            Scope::FourAttributes => "four-attributes",
            Scope::Successor => "successor",
        }
    }
}

/// A scope name that is none of `validity`, `four-attributes`, `successor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}` (known: validity, four-attributes, successor)")]
pub struct UnknownScope(pub String);

impl std::str::FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Scope, UnknownScope> {
        match s {
            "validity" => Ok(Scope::Validity),
            "four-attributes" => Ok(Scope::FourAttributes),
            "successor" => Ok(Scope::Successor),
            other => Err(UnknownScope(other.to_owned())),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PF's accreditation state. `Revoked` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PfState {
    Active,
    Suspended,
    Revoked,
}

impl PfState {
    pub fn as_str(self) -> &'static str {
        match self {
            PfState::Active => "active",
            PfState::Suspended => "suspended",
            PfState::Revoked => "revoked",
        }
    }
}

/// A platform operator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    pub name: String,
    pub state: PfState,
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of each registered client key's SubjectPublicKeyInfo.
    pub keys: Vec<String>,
    /// Serials (hex) of the client certificates the operator CA issued to it.
    pub certificates: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// notAfter of the newest client certificate the operator CA issued to it: a renewal is
    /// refused before its window opens. Absent in records written before the window existed
    /// (and for certificates registered from outside): renewal then is not limited.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub cert_not_after: Option<OffsetDateTime>,
}

/// A service provider, delegated to exactly one PF.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceProvider {
    pub id: String,
    pub name: String,
    /// The PF's id.
    pub pf: String,
    pub scopes: Vec<Scope>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Records written before SPs had a state are active.
    #[serde(default)]
    pub state: SpState,
}

/// A service provider's state. `Removed` is final; neither suspended nor removed SPs' calls
/// are served, and their records (consents, access log) are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpState {
    #[default]
    Active,
    Suspended,
    Removed,
}

impl SpState {
    pub fn as_str(self) -> &'static str {
        match self {
            SpState::Active => "active",
            SpState::Suspended => "suspended",
            SpState::Removed => "removed",
        }
    }
}

/// A usage counter: how many checks of one certificate type a service provider asked one
/// endpoint for, through one platform operator, in one calendar month (UTC, `YYYY-MM`).
/// [`crate::storage::Tx::add_usage`] adds `count` to the stored counter of the same key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Usage {
    pub month: String,
    pub pf: String,
    pub sp: String,
    /// The API operation (`validity`, `four-attributes`, ...).
    pub endpoint: String,
    /// `signing`, `auth`, or `none` (a call about no certificate of ours).
    pub cert_type: String,
    pub count: u64,
}

/// A holder's consent that an SP may read the holder's latest four attributes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consent {
    pub id: String,
    pub holder: String,
    pub sp: String,
    pub scope: Scope,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    pub nonce: String,
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub withdrawn_at: Option<OffsetDateTime>,
    /// `holder` (a signed withdrawal) or `sp`.
    #[serde(default)]
    pub withdrawn_by: Option<String>,
    /// Serial (hex) of the signing certificate that signed the statement.
    pub signer_serial: String,
    /// Hex SHA-256 of the signed statement.
    pub statement_sha256: String,
}

/// One access to a holder's data, as disclosed to the holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Access {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub holder: String,
    /// PF id and name.
    pub pf: String,
    pub pf_name: String,
    /// SP id and name (empty when the request named no valid SP).
    pub sp: String,
    pub sp_name: String,
    /// `validity`, `consent`, `consent-withdraw`, `four-attributes`, `successor`.
    pub operation: String,
    /// `ok` or the error code.
    pub outcome: String,
}
