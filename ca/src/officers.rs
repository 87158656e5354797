//! Officers, their roles, who is acting, and what each may do.
//!
//! An **officer** is a person the CA knows by the key of a TLS client certificate from the
//! operator CA: a `ca-officer` (issues, revokes, manages platform operators, officers and the
//! CA's upkeep), a `municipal-clerk` of one municipality (registers residents of that
//! municipality and their events, and puts their certificates on hold — the loss hotline), or
//! an `auditor` (reads the audit trail and the certificate reports; changes nothing). The
//! records live in the storage authority ([`crate::storage::Storage::officer`] …), one per
//! officer, indexed by name and by key fingerprint (hex SHA-256 of the SubjectPublicKeyInfo,
//! as for platform operators).
//!
//! Every request runs **as an [`Actor`]**: an officer (remote admin API), the person at the
//! host's shell (`root-on-host`: the local CLI and the admin socket, which only the data
//! directory's owner can open — the emergency path, recorded as such), the server itself
//! (`system:…`: timers), or a platform operator on the PF API (its consent writes). [`authorize`] is the one place that decides whether an actor may do
//! an [`Action`]; [`crate::Authority::handle_as`] calls it for every request, records a
//! refusal in the audit trail, and runs what is allowed inside [`acting_as`].
//!
//! ## Why the actor is ambient
//! The actor of a call is held for its duration in a thread-local scope ([`acting_as`]), and
//! [`crate::storage::audit`] stamps it on every audit record made inside — like a tracing
//! span, not a parameter. Twenty-odd operations in four crates write audit records; a
//! parameter on each would change every signature and every caller for a value none of them
//! reads. Units of work run their body on the calling thread in every engine (sled, memory,
//! PostgreSQL), so the scope covers them. A record made outside any scope is stamped
//! `unattributed`, which `jpki audit log` shows and the tests look for.

use std::cell::RefCell;

use time::OffsetDateTime;

pub use crate::actor::*;
use crate::error::{Error, Result};
use crate::storage::{self, Storage};
use crate::Authority;

// ----- what each role may do -------------------------------------------------------------

/// What a request does, as far as authorisation is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Certificates, roots, expiries, revocation checks (no personal attribute).
    ReadCertificates,
    /// The audit trail (log, verify).
    ReadAudit,
    /// A resident's record (four attributes) or a register search, in this municipality
    /// (`None`: a search across every municipality).
    ReadRegister { municipality: Option<String> },
    /// Registering a resident or an event, for a resident of this municipality.
    Register { municipality: String },
    /// Putting a certificate of a resident of this municipality on hold.
    Hold { municipality: String },
    /// Issuing a certificate.
    Issue,
    /// Revoking a certificate (any reason but certificateHold).
    Revoke,
    /// Platform operators and service providers.
    ManagePlatform,
    /// Officers.
    ManageOfficers,
    /// The CA's upkeep: store compaction, due events, OCSP-signer renewal.
    Maintain,
}

impl Action {
    fn describe(&self) -> String {
        match self {
            Action::ReadCertificates => "read certificates".into(),
            Action::ReadAudit => "read the audit trail".into(),
            Action::ReadRegister {
                municipality: Some(m),
            } => format!("read the register of {m}"),
            Action::ReadRegister { municipality: None } => {
                "search the register of every municipality".into()
            }
            Action::Register { municipality } => {
                format!("change the register for a resident of {municipality}")
            }
            Action::Hold { municipality } => {
                format!("hold a certificate of a resident of {municipality}")
            }
            Action::Issue => "issue certificates".into(),
            Action::Revoke => "revoke certificates".into(),
            Action::ManagePlatform => "manage platform operators".into(),
            Action::ManageOfficers => "manage officers".into(),
            Action::Maintain => "run the CA's upkeep".into(),
        }
    }
}

/// Whether `actor` may do `action`: the one place the roles' powers are written down.
///
/// * `root-on-host` and `system`: everything;
/// * `ca-officer`: everything but changing the register (that is the municipalities' job);
/// * `municipal-clerk`: the register of its own municipality (read, register, events) and
///   holds on its residents' certificates; certificates (no personal attribute) to read;
/// * `auditor`: the audit trail and certificates, read only.
///
/// A suspended or revoked officer may do nothing.
pub fn authorize(actor: &Actor, action: &Action) -> Result<()> {
    let officer = match actor {
        Actor::RootOnHost { .. } | Actor::System(_) => return Ok(()),
        Actor::Officer(o) => o,
        Actor::PlatformOperator(_) | Actor::Unauthenticated(_) => {
            return Err(Error::Forbidden {
                actor: actor.label(),
                action: action.describe(),
            })
        }
    };
    if officer.state != OfficerState::Active {
        return Err(Error::OfficerNotActive {
            name: officer.name.clone(),
            state: officer.state.as_str(),
        });
    }
    let own = |m: &str| officer.municipality.as_deref() == Some(m);
    let allowed = match (officer.role, action) {
        // A registered verifier fetches revocation data, which is no admin request at all.
        (Role::Verifier, _) => false,
        (_, Action::ReadCertificates) => true,
        (Role::CaOfficer, Action::Register { .. } | Action::ReadRegister { .. }) => {
            matches!(action, Action::ReadRegister { .. })
        }
        (Role::CaOfficer, _) => true,
        (Role::Auditor, Action::ReadAudit) => true,
        (Role::Auditor, _) => false,
        (
            Role::MunicipalClerk,
            Action::ReadRegister {
                municipality: Some(m),
            }
            | Action::Register { municipality: m }
            | Action::Hold { municipality: m },
        ) => own(m),
        (Role::MunicipalClerk, _) => false,
    };
    if allowed {
        return Ok(());
    }
    Err(Error::Forbidden {
        actor: actor.label(),
        action: action.describe(),
    })
}

/// Records a refused request in the audit trail (its own unit of work): who, what operation,
/// and the refusal's code. Never the request's content.
pub fn audit_refusal(authority: &Authority, actor: &Actor, op: &str, e: &Error) -> Result<()> {
    let now = authority.clock().now();
    acting_as(actor, || {
        authority
            .storage()
            .transact(&|t| storage::audit(t, now, "refused", op, e.code()))
    })
}

// ----- the officer register --------------------------------------------------------------

/// What `jpki officer add` registers (the certificate is issued by the operator CA first).
#[derive(Debug, Clone)]
pub struct NewOfficer {
    pub name: String,
    pub role: Role,
    pub municipality: Option<String>,
    /// The client key's SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
    pub certificate: Option<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

/// Checks what a new officer must have: a name (1 to 64 characters, no control characters),
/// a municipality exactly when the role is `municipal-clerk`.
pub fn check(new: &NewOfficer) -> Result<()> {
    let n = &new.name;
    if n.trim().is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "officer name: 1 to 64 characters, no control characters".into(),
        ));
    }
    match (new.role, new.municipality.as_deref()) {
        (Role::MunicipalClerk, None) => Err(Error::Invalid(
            "a municipal-clerk needs --municipality (the municipality it acts for)".into(),
        )),
        (Role::MunicipalClerk, Some(m)) if m.trim().is_empty() || m.chars().count() > 64 => {
            Err(Error::Invalid("municipality: 1 to 64 characters".into()))
        }
        (Role::CaOfficer | Role::Auditor | Role::Verifier, Some(_)) => {
            Err(Error::Invalid(format!(
                "--municipality is only for a municipal-clerk, not a {}",
                new.role
            )))
        }
        _ => Ok(()),
    }
}

/// Registers an officer (audit `officer-add`, by the acting scope's actor). Refuses a name or
/// a key already registered.
pub fn add(authority: &Authority, new: &NewOfficer) -> Result<Officer> {
    check(new)?;
    let now = authority.clock().now();
    let random = authority.random_serial()?;
    let officer = Officer {
        id: format!(
            "OF{}",
            hex::encode_upper(random.get(1..9).unwrap_or(&random))
        ),
        name: new.name.clone(),
        role: new.role,
        municipality: new.municipality.clone(),
        state: OfficerState::Active,
        key: fingerprint(&new.spki),
        certificate: new.certificate.clone(),
        not_before: new.not_before,
        not_after: new.not_after,
        created: now,
    };
    let refused = RefCell::new(None);
    authority.storage().transact(&|t| {
        *refused.borrow_mut() = None;
        if t.officer_named(&officer.name)?.is_some() {
            *refused.borrow_mut() = Some(Error::OfficerExists(officer.name.clone()));
            return Ok(());
        }
        if let Some(other) = t.officer_by_key(&officer.key)? {
            *refused.borrow_mut() = Some(Error::Invalid(format!(
                "this key is already registered to officer {other}"
            )));
            return Ok(());
        }
        t.put_officer(&officer)?;
        storage::audit(
            t,
            now,
            "officer-add",
            &officer.id,
            &format!(
                "role={}{} key={} cert={}",
                officer.role,
                officer
                    .municipality
                    .as_deref()
                    .map(|m| format!(" municipality={m}"))
                    .unwrap_or_default(),
                officer.key,
                officer.certificate.as_deref().unwrap_or("-")
            ),
        )
    })?;
    match refused.into_inner() {
        Some(e) => Err(e),
        None => Ok(officer),
    }
}

/// Suspends, reactivates or revokes (final) an officer by name (audit `officer-<state>`).
pub fn set_state(authority: &Authority, name: &str, state: OfficerState) -> Result<Officer> {
    let now = authority.clock().now();
    let out = RefCell::new(None);
    authority.storage().transact(&|t| {
        *out.borrow_mut() = None;
        let Some(id) = t.officer_named(name)? else {
            *out.borrow_mut() = Some(Err(Error::UnknownOfficer(name.to_owned())));
            return Ok(());
        };
        let mut o = t
            .officer(&id)?
            .ok_or_else(|| Error::Store(format!("officer {id}: name index without record")))?;
        if o.state == OfficerState::Revoked {
            *out.borrow_mut() = Some(Err(Error::OfficerNotActive {
                name: o.name.clone(),
                state: o.state.as_str(),
            }));
            return Ok(());
        }
        o.state = state;
        t.put_officer(&o)?;
        let action = match state {
            OfficerState::Active => "officer-reactivate",
            OfficerState::Suspended => "officer-suspend",
            OfficerState::Revoked => "officer-revoke",
        };
        // A revocation names the client certificate it ends (the officer's key is refused
        // by `authenticate` on every later request, whatever the certificate says).
        let detail = match (state, &o.certificate) {
            (OfficerState::Revoked, Some(serial)) => format!("cert={serial}"),
            _ => String::new(),
        };
        storage::audit(t, now, action, &o.id, &detail)?;
        *out.borrow_mut() = Some(Ok(o));
        Ok(())
    })?;
    out.into_inner()
        .unwrap_or_else(|| Err(Error::Store("officer update did not run".into())))
}

/// Gives an officer a new client key and certificate (`jpki officer renew`; audit
/// `officer-renew`): the previous key is refused from then on. Refuses a revoked officer and
/// a key registered to anyone.
pub fn renew(
    authority: &Authority,
    name: &str,
    spki: &[u8],
    certificate: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Officer> {
    let now = authority.clock().now();
    let key = fingerprint(spki);
    let out = RefCell::new(None);
    authority.storage().transact(&|t| {
        *out.borrow_mut() = None;
        let refuse = |e: Error| {
            *out.borrow_mut() = Some(Err(e));
            Ok(())
        };
        let Some(id) = t.officer_named(name)? else {
            return refuse(Error::UnknownOfficer(name.to_owned()));
        };
        let mut o = t
            .officer(&id)?
            .ok_or_else(|| Error::Store(format!("officer {id}: name index without record")))?;
        if o.state == OfficerState::Revoked {
            return refuse(Error::OfficerNotActive {
                name: o.name.clone(),
                state: o.state.as_str(),
            });
        }
        if let Some(other) = t.officer_by_key(&key)? {
            return refuse(Error::Invalid(format!(
                "this key is already registered to officer {other}"
            )));
        }
        let previous = o.certificate.clone().unwrap_or_else(|| "-".into());
        o.key = key.clone();
        o.certificate = Some(certificate.to_owned());
        o.not_before = Some(not_before);
        o.not_after = Some(not_after);
        t.put_officer(&o)?;
        storage::audit(
            t,
            now,
            "officer-renew",
            &o.id,
            &format!("key={key} cert={certificate} previous-cert={previous}"),
        )?;
        *out.borrow_mut() = Some(Ok(o));
        Ok(())
    })?;
    out.into_inner()
        .unwrap_or_else(|| Err(Error::Store("officer renewal did not run".into())))
}

/// Every officer, in id order.
pub fn list(storage: &dyn Storage) -> Result<Vec<Officer>> {
    storage.officers()
}

/// The officer a client certificate's key belongs to, checked for standing and for the
/// certificate's validity at `now`: how the remote admin API authenticates a request.
/// Unknown key: [`Error::UnknownOfficer`]; suspended or revoked: [`Error::OfficerNotActive`];
/// outside the certificate's validity: [`Error::OfficerCertificate`].
pub fn authenticate(storage: &dyn Storage, spki: &[u8], now: OffsetDateTime) -> Result<Officer> {
    let fp = fingerprint(spki);
    let unknown = || Error::UnknownOfficer(format!("key {fp}"));
    let id = storage.officer_by_key(&fp)?.ok_or_else(unknown)?;
    let o = storage.officer(&id)?.ok_or_else(unknown)?;
    // A key the officer has renewed away from is no longer its key.
    if o.key != fp {
        return Err(unknown());
    }
    if o.state != OfficerState::Active {
        return Err(Error::OfficerNotActive {
            name: o.name,
            state: o.state.as_str(),
        });
    }
    if o.not_after.is_some_and(|t| now > t) {
        return Err(Error::OfficerCertificate(format!(
            "the certificate of officer {} expired",
            o.name
        )));
    }
    if o.not_before.is_some_and(|t| now < t) {
        return Err(Error::OfficerCertificate(format!(
            "the certificate of officer {} is not yet valid",
            o.name
        )));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn officer(role: Role, municipality: Option<&str>) -> Actor {
        Actor::Officer(Officer {
            id: "OF0011223344556677".into(),
            name: "Sato".into(),
            role,
            municipality: municipality.map(str::to_owned),
            state: OfficerState::Active,
            key: "ab".into(),
            certificate: None,
            not_before: None,
            not_after: None,
            created: datetime!(2026-12-01 00:00 UTC),
        })
    }

    fn register(m: &str) -> Action {
        Action::Register {
            municipality: m.into(),
        }
    }

    #[test]
    fn a_clerk_acts_only_for_its_municipality() {
        let clerk = officer(Role::MunicipalClerk, Some("Chiyoda-ku"));
        authorize(&clerk, &register("Chiyoda-ku")).unwrap();
        authorize(
            &clerk,
            &Action::Hold {
                municipality: "Chiyoda-ku".into(),
            },
        )
        .unwrap();
        let e = authorize(&clerk, &register("Minato-ku")).unwrap_err();
        assert_eq!(e.code(), "forbidden");
        assert!(e.to_string().contains("Minato-ku"), "{e}");
        for refused in [
            Action::Hold {
                municipality: "Minato-ku".into(),
            },
            Action::ReadRegister { municipality: None },
            Action::Issue,
            Action::Revoke,
            Action::ReadAudit,
            Action::ManageOfficers,
            Action::ManagePlatform,
            Action::Maintain,
        ] {
            assert!(authorize(&clerk, &refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn an_auditor_reads_only_and_a_ca_officer_does_not_edit_the_register() {
        let auditor = officer(Role::Auditor, None);
        authorize(&auditor, &Action::ReadAudit).unwrap();
        authorize(&auditor, &Action::ReadCertificates).unwrap();
        for refused in [
            register("Chiyoda-ku"),
            Action::Issue,
            Action::Revoke,
            Action::ReadRegister {
                municipality: Some("Chiyoda-ku".into()),
            },
        ] {
            assert_eq!(
                authorize(&auditor, &refused).unwrap_err().code(),
                "forbidden"
            );
        }
        let ca = officer(Role::CaOfficer, None);
        for allowed in [
            Action::Issue,
            Action::Revoke,
            Action::ManagePlatform,
            Action::ManageOfficers,
            Action::ReadAudit,
            Action::ReadRegister { municipality: None },
        ] {
            authorize(&ca, &allowed).unwrap();
        }
        assert!(authorize(&ca, &register("Chiyoda-ku")).is_err());
        // The host's owner and the server's timers may do everything.
        authorize(&Actor::root_on_host(), &register("Minato-ku")).unwrap();
        authorize(&Actor::System("scheduler"), &Action::Maintain).unwrap();
        // A platform operator has no admin powers at all.
        let pf = Actor::PlatformOperator("ab".into());
        assert_eq!(
            authorize(&pf, &Action::ReadCertificates)
                .unwrap_err()
                .code(),
            "forbidden"
        );
    }

    #[test]
    fn a_verifier_has_no_admin_power() {
        let v = officer(Role::Verifier, None);
        for refused in [
            Action::ReadCertificates,
            Action::ReadAudit,
            Action::Issue,
            Action::ManageOfficers,
        ] {
            assert_eq!(authorize(&v, &refused).unwrap_err().code(), "forbidden");
        }
        assert_eq!("verifier".parse::<Role>().unwrap(), Role::Verifier);
    }

    #[test]
    fn a_suspended_officer_may_do_nothing() {
        let Actor::Officer(mut o) = officer(Role::CaOfficer, None) else {
            unreachable!()
        };
        o.state = OfficerState::Suspended;
        let e = authorize(&Actor::Officer(o), &Action::ReadCertificates).unwrap_err();
        assert_eq!(e.code(), "officer_not_active");
    }

    #[test]
    fn the_acting_scope_nests_and_ends() {
        assert_eq!(current_label(), UNATTRIBUTED);
        acting_as(&Actor::System("scheduler"), || {
            assert_eq!(current_label(), "system:scheduler");
            acting_as(&officer(Role::Auditor, None), || {
                assert_eq!(current_label(), "officer:OF0011223344556677(auditor)");
            });
            assert_eq!(current_label(), "system:scheduler");
        });
        assert_eq!(current_label(), UNATTRIBUTED);
        let caught = std::panic::catch_unwind(|| {
            acting_as(&Actor::System("x"), || panic!("inside"));
        });
        assert!(caught.is_err());
        assert_eq!(current_label(), UNATTRIBUTED);
    }

    #[test]
    fn new_officers_are_checked() {
        let new = |role, m: Option<&str>, name: &str| NewOfficer {
            name: name.into(),
            role,
            municipality: m.map(str::to_owned),
            spki: vec![1],
            certificate: None,
            not_before: None,
            not_after: None,
        };
        check(&new(Role::MunicipalClerk, Some("Chiyoda-ku"), "Sato")).unwrap();
        assert!(check(&new(Role::MunicipalClerk, None, "Sato")).is_err());
        assert!(check(&new(Role::Auditor, Some("Chiyoda-ku"), "Sato")).is_err());
        assert!(check(&new(Role::CaOfficer, None, " ")).is_err());
        assert!(check(&new(Role::CaOfficer, None, "a\nb")).is_err());
        assert!("root".parse::<Role>().is_err());
    }
}
