//! Who acts: officers' records and roles, and the actor of the call in progress — held in a
//! thread-local scope ([`acting_as`]) and stamped on every audit record by
//! [`crate::storage::audit`]. Why ambient, and what each role may do:
//! [`crate::officers`], which re-exports all of this. Kept apart from it so that the storage
//! authority can name officers and the actor without importing the module that reads the
//! storage.

use std::cell::RefCell;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// What an officer may do (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    CaOfficer,
    MunicipalClerk,
    Auditor,
    /// A registered verifier (relying party): not an officer at all — it may fetch CRLs and
    /// OCSP answers over mutual TLS (`jpki serve --verifiers-https`) and nothing else. Kept
    /// in the officers' register because it is the same thing to the storage: a name, a
    /// client key from the operator CA, a standing.
    Verifier,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CaOfficer => "ca-officer",
            Role::MunicipalClerk => "municipal-clerk",
            Role::Auditor => "auditor",
            Role::Verifier => "verifier",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "ca-officer" => Ok(Role::CaOfficer),
            "municipal-clerk" => Ok(Role::MunicipalClerk),
            "auditor" => Ok(Role::Auditor),
            "verifier" => Ok(Role::Verifier),
            other => Err(Error::Invalid(format!(
                "unknown role `{other}` (expected ca-officer, municipal-clerk or auditor)"
            ))),
        }
    }
}

/// An officer's standing. `Revoked` is final; a suspended officer can be reactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OfficerState {
    Active,
    Suspended,
    Revoked,
}

impl OfficerState {
    pub fn as_str(self) -> &'static str {
        match self {
            OfficerState::Active => "active",
            OfficerState::Suspended => "suspended",
            OfficerState::Revoked => "revoked",
        }
    }
}

/// One officer, as the storage holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Officer {
    /// `OF` and 16 hex digits.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The municipality of a `municipal-clerk` (as the register spells it); `None` otherwise.
    #[serde(default)]
    pub municipality: Option<String>,
    pub state: OfficerState,
    /// Hex SHA-256 of the client key's SubjectPublicKeyInfo.
    pub key: String,
    /// Serial (hex) of the client certificate the operator CA issued for the key.
    #[serde(default)]
    pub certificate: Option<String>,
    /// The certificate's validity: requests outside it are refused.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub not_before: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub not_after: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

/// Hex SHA-256 of a SubjectPublicKeyInfo: how an officer's key is indexed.
pub fn fingerprint(spki: &[u8]) -> String {
    hex::encode(Sha256::digest(spki))
}

// ----- who is acting ---------------------------------------------------------------------

/// Who carries out a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The person at the CA host: the local CLI, or the admin socket (mode 0600, so only the
    /// data directory's owner). Every power; recorded with the effective uid.
    RootOnHost { uid: u32 },
    /// An authenticated officer (the remote admin API).
    Officer(Officer),
    /// The server itself (`scheduler`, `ocsp-renewal`, …): timers, never a request.
    System(&'static str),
    /// A platform operator on the PF API (consents), by its client key's fingerprint. It
    /// has no admin powers: [`authorize`] refuses it everything.
    PlatformOperator(String),
    /// A client of the remote admin API whose certificate chains to the operator CA but
    /// names no active officer, by its key's fingerprint: only its refusals are recorded.
    Unauthenticated(String),
}

impl Actor {
    /// The person at this host (effective uid of this process).
    pub fn root_on_host() -> Actor {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        Actor::RootOnHost { uid }
    }

    /// How audit records name the actor: `root-on-host(uid=1000)`,
    /// `officer:OF…(municipal-clerk@Chiyoda-ku)`, `system:scheduler`.
    pub fn label(&self) -> String {
        match self {
            Actor::RootOnHost { uid } => format!("root-on-host(uid={uid})"),
            Actor::Officer(o) => match &o.municipality {
                Some(m) => format!("officer:{}({}@{m})", o.id, o.role),
                None => format!("officer:{}({})", o.id, o.role),
            },
            Actor::System(what) => format!("system:{what}"),
            Actor::PlatformOperator(key) => format!("platform-operator:key={key}"),
            Actor::Unauthenticated(key) => format!("unauthenticated:key={key}"),
        }
    }
}

/// What audit records made outside any [`acting_as`] scope name as their actor.
pub const UNATTRIBUTED: &str = "unattributed";

thread_local! {
    static ACTING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Restores the enclosing scope's actor when a scope ends (also on a panic).
struct Restore(Option<String>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        ACTING.with(|a| *a.borrow_mut() = previous);
    }
}

/// Runs `f` as `actor`: every audit record made inside names it.
pub fn acting_as<T>(actor: &Actor, f: impl FnOnce() -> T) -> T {
    let previous = ACTING.with(|a| a.borrow_mut().replace(actor.label()));
    let _restore = Restore(previous);
    f()
}

/// The label of the actor of the current scope ([`UNATTRIBUTED`] outside any).
pub fn current_label() -> String {
    ACTING
        .with(|a| a.borrow().clone())
        .unwrap_or_else(|| UNATTRIBUTED.to_owned())
}
