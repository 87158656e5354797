//! The registry of platform operators (PF) and service providers (SP), the holders' consents
//! and the access log, kept by the storage authority's platform part
//! ([`ca::storage::Storage`]). Every write is one unit of work with its audit record; audit
//! records name ids, serials and key fingerprints only.

use ca::storage::{self, Tx};
use ca::Authority;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};

pub use ca::records::platform::{
    Access, Consent, Operator, PfState, Scope, ServiceProvider, SpState, UnknownScope, Usage,
};

/// Parses `validity,four-attributes,...` (duplicates removed, order kept sorted).
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        out.push(part.parse()?);
    }
    normalize(out)
}

fn normalize(mut scopes: Vec<Scope>) -> Result<Vec<Scope>> {
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(Error::UnknownScope(String::new()));
    }
    Ok(scopes)
}

/// Checks a PF or SP name: 1 to 64 characters, not blank, no control characters.
pub fn check_name(field: &'static str, v: &str) -> Result<()> {
    if v.trim().is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
        return Err(Error::BadName { field });
    }
    Ok(())
}

/// Hex SHA-256 of a SubjectPublicKeyInfo: how a client key is registered.
pub fn fingerprint(spki: &[u8]) -> String {
    hex::encode(Sha256::digest(spki))
}

fn new_id(authority: &Authority, prefix: &str, len: usize) -> Result<String> {
    let r = authority.random_serial()?;
    // `random_serial` gives 16 random octets (the first only 7 bits): callers take 8 or 12.
    let bytes = r
        .get(1..1 + len)
        .ok_or_else(|| Error::Internal("short random".into()))?;
    Ok(format!("{prefix}{}", hex::encode_upper(bytes)))
}

/// Registers a new PF with its first client key (and the serial of the certificate the
/// operator CA issued for it, if any).
pub fn operator_add(
    authority: &Authority,
    name: &str,
    scopes: Vec<Scope>,
    spki: &[u8],
    cert: Option<(String, OffsetDateTime)>,
    now: OffsetDateTime,
) -> Result<Operator> {
    check_name("operator name", name)?;
    let cert_not_after = cert.as_ref().map(|(_, t)| *t);
    let cert_serial = cert.map(|(s, _)| s);
    let scopes = normalize(scopes)?;
    let fp = fingerprint(spki);
    let op = Operator {
        id: new_id(authority, "PF", 8)?,
        name: name.to_owned(),
        state: PfState::Active,
        scopes,
        keys: vec![fp.clone()],
        certificates: cert_serial.into_iter().collect(),
        created: now,
        cert_not_after,
    };
    let outcome = std::cell::RefCell::new(None);
    authority.storage().transact(&|t| {
        *outcome.borrow_mut() = None;
        if t.operator_named(name)?.is_some() {
            *outcome.borrow_mut() = Some(Error::OperatorExists(name.to_owned()));
            return Ok(());
        }
        if let Some(other) = t.operator_by_key(&fp)? {
            *outcome.borrow_mut() = Some(Error::KeyTaken(other));
            return Ok(());
        }
        t.put_operator(&op)?;
        t.bind_operator_key(&fp, &op.id)?;
        storage::audit(
            t,
            now,
            "pf-add",
            &op.id,
            &format!("key={fp} cert={}", op.certificates.join(",")),
        )
    })?;
    match outcome.into_inner() {
        Some(e) => Err(e),
        None => Ok(op),
    }
}

/// Adds a client key (and optionally an issued certificate's serial) to an existing PF.
pub fn operator_add_key(
    authority: &Authority,
    name: &str,
    spki: &[u8],
    cert_serial: Option<String>,
    now: OffsetDateTime,
) -> Result<Operator> {
    add_key(authority, name, spki, cert_serial, now, "pf-add-key")
}

/// Days before the newest client certificate's notAfter from which `jpki operator renew`
/// issues a new one (and any time after it expired).
pub const RENEW_WINDOW_DAYS: i64 = 60;

/// Refuses a renewal of `op`'s client certificate before its window opens
/// ([`RENEW_WINDOW_DAYS`] before the newest certificate's notAfter).
pub fn check_renewal_window(op: &Operator, now: OffsetDateTime) -> Result<()> {
    let Some(end) = op.cert_not_after else {
        return Ok(());
    };
    let opens = end - time::Duration::days(RENEW_WINDOW_DAYS);
    if now < opens {
        return Err(Error::RenewalTooEarly {
            name: op.name.clone(),
            not_after: end.date().to_string(),
            opens: opens.date().to_string(),
        });
    }
    Ok(())
}

/// Records a renewed client certificate of a PF (audit `pf-renew`): its key is bound to the PF
/// (a new key, or the same one again) and its serial listed. The keys of earlier certificates
/// stay bound, so each earlier certificate keeps opening the API until its own notAfter.
/// Refused (nothing changed) before the renewal window of the newest certificate opens.
pub fn operator_renew(
    authority: &Authority,
    name: &str,
    spki: &[u8],
    cert: (String, OffsetDateTime),
    now: OffsetDateTime,
) -> Result<Operator> {
    let (serial, not_after) = cert;
    let fp = fingerprint(spki);
    update_operator(authority, name, now, "pf-renew", &|op, t| {
        check_renewal_window(op, now)?;
        op.cert_not_after = Some(not_after);
        bind_key(op, t, &fp, Some(&serial))
    })
}

fn add_key(
    authority: &Authority,
    name: &str,
    spki: &[u8],
    cert_serial: Option<String>,
    now: OffsetDateTime,
    action: &str,
) -> Result<Operator> {
    let fp = fingerprint(spki);
    update_operator(authority, name, now, action, &|op, t| {
        bind_key(op, t, &fp, cert_serial.as_deref())
    })
}

/// Binds the key `fp` (and lists the certificate `cert_serial`) to `op` inside a unit of work;
/// the audit detail.
fn bind_key(op: &mut Operator, t: &dyn Tx, fp: &str, cert_serial: Option<&str>) -> Result<String> {
    if op.state == PfState::Revoked {
        return Err(Error::OperatorNotActive {
            name: op.name.clone(),
            state: op.state.as_str(),
        });
    }
    if let Some(other) = t.operator_by_key(fp).map_err(Error::Ca)? {
        if other != op.id {
            return Err(Error::KeyTaken(other));
        }
    }
    if !op.keys.iter().any(|k| k == fp) {
        op.keys.push(fp.to_owned());
    }
    if let Some(s) = cert_serial {
        op.certificates.push(s.to_owned());
    }
    t.bind_operator_key(fp, &op.id).map_err(Error::Ca)?;
    Ok(match cert_serial {
        Some(serial) => format!("key={fp} cert={serial}"),
        None => format!("key={fp}"),
    })
}

/// Suspends (`Suspended`) or revokes (`Revoked`, final) a PF, or reactivates a suspended one.
pub fn operator_set_state(
    authority: &Authority,
    name: &str,
    state: PfState,
    now: OffsetDateTime,
) -> Result<Operator> {
    let action = match state {
        PfState::Active => "pf-reactivate",
        PfState::Suspended => "pf-suspend",
        PfState::Revoked => "pf-revoke",
    };
    update_operator(authority, name, now, action, &|op, _| {
        if op.state == PfState::Revoked {
            return Err(Error::OperatorNotActive {
                name: op.name.clone(),
                state: "revoked",
            });
        }
        op.state = state;
        Ok(String::new())
    })
}

type Change<'a> = dyn Fn(&mut Operator, &dyn Tx) -> Result<String> + 'a;

fn update_operator(
    authority: &Authority,
    name: &str,
    now: OffsetDateTime,
    action: &str,
    change: &Change<'_>,
) -> Result<Operator> {
    let result = std::cell::RefCell::new(None);
    authority.storage().transact(&|t| {
        *result.borrow_mut() = None;
        let Some(id) = t.operator_named(name)? else {
            *result.borrow_mut() = Some(Err(Error::UnknownOperator(name.to_owned())));
            return Ok(());
        };
        let mut op = t
            .operator(&id)?
            .ok_or_else(|| ca::Error::Store(format!("operator {id} index without record")))?;
        match change(&mut op, t) {
            Ok(detail) => {
                t.put_operator(&op)?;
                storage::audit(t, now, action, &id, &detail)?;
                *result.borrow_mut() = Some(Ok(op));
            }
            Err(Error::Ca(e)) => return Err(e),
            Err(e) => *result.borrow_mut() = Some(Err(e)),
        }
        Ok(())
    })?;
    result
        .into_inner()
        .unwrap_or_else(|| Err(Error::Internal("operator update did not run".into())))
}

/// Every PF.
pub fn operators(authority: &Authority) -> Result<Vec<Operator>> {
    Ok(authority.storage().operators()?)
}

/// A PF by name.
pub fn operator_named(authority: &Authority, name: &str) -> Result<Operator> {
    let id = authority
        .storage()
        .operator_named(name)?
        .ok_or_else(|| Error::UnknownOperator(name.to_owned()))?;
    operator(authority, &id)?.ok_or_else(|| Error::UnknownOperator(name.to_owned()))
}

/// A PF by id.
pub fn operator(authority: &Authority, id: &str) -> Result<Option<Operator>> {
    Ok(authority.storage().operator(id)?)
}

/// The PF a client key (SubjectPublicKeyInfo DER) is registered to.
pub fn operator_by_key(authority: &Authority, spki: &[u8]) -> Result<Option<Operator>> {
    operator_by_fingerprint(authority, &fingerprint(spki))
}

/// The PF a client key is registered to, by the key's [`fingerprint`].
pub fn operator_by_fingerprint(authority: &Authority, fp: &str) -> Result<Option<Operator>> {
    match authority.storage().operator_by_key(fp)? {
        Some(id) => operator(authority, &id),
        None => Ok(None),
    }
}

/// Registers an SP under a PF; its scopes must be among the PF's.
pub fn sp_add(
    authority: &Authority,
    pf_name: &str,
    name: &str,
    scopes: Vec<Scope>,
    now: OffsetDateTime,
) -> Result<ServiceProvider> {
    check_name("service provider name", name)?;
    let scopes = normalize(scopes)?;
    let pf = operator_named(authority, pf_name)?;
    if pf.state == PfState::Revoked {
        return Err(Error::OperatorNotActive {
            name: pf.name,
            state: "revoked",
        });
    }
    if let Some(s) = scopes.iter().find(|s| !pf.scopes.contains(s)) {
        return Err(Error::OperatorScopeMissing(s.as_str()));
    }
    let sp = ServiceProvider {
        id: new_id(authority, "SP", 8)?,
        name: name.to_owned(),
        pf: pf.id.clone(),
        scopes,
        created: now,
        state: SpState::Active,
    };
    let exists = std::cell::Cell::new(false);
    authority.storage().transact(&|t| {
        exists.set(false);
        if t.service_provider_named(&pf.id, name)?.is_some() {
            exists.set(true);
            return Ok(());
        }
        t.put_service_provider(&sp)?;
        let scopes: Vec<&str> = sp.scopes.iter().map(|s| s.as_str()).collect();
        storage::audit(
            t,
            now,
            "sp-add",
            &sp.id,
            &format!("pf={} scopes={}", pf.id, scopes.join(",")),
        )
    })?;
    if exists.get() {
        return Err(Error::SpExists(name.to_owned()));
    }
    Ok(sp)
}

/// Suspends (`Suspended`), resumes (`Active`) or removes (`Removed`, final) an SP, on behalf
/// of `actor` (named in the audit record). A suspended or removed SP's API calls are refused
/// (`sp_suspended`, `sp_removed`); its consents and access log are kept. Refused, changing
/// nothing: an unknown SP, a removed one, or one already in the target state.
pub fn sp_set_state(
    authority: &Authority,
    id: &str,
    target: SpState,
    actor: &str,
    now: OffsetDateTime,
) -> Result<ServiceProvider> {
    check_name("actor", actor)?;
    let action = match target {
        SpState::Active => "sp-resume",
        SpState::Suspended => "sp-suspend",
        SpState::Removed => "sp-remove",
    };
    update_sp(authority, id, now, action, &|sp, _| {
        match (sp.state, target) {
            (SpState::Removed, _) => {
                return Err(Error::SpNotActive {
                    sp: sp.id.clone(),
                    state: "removed",
                })
            }
            (from, to) if from == to => {
                return Err(Error::SpStateUnchanged {
                    sp: sp.id.clone(),
                    state: to.as_str(),
                })
            }
            _ => {}
        }
        let detail = format!(
            "by={actor} from={} to={}",
            sp.state.as_str(),
            target.as_str()
        );
        sp.state = target;
        Ok(detail)
    })
}

/// Replaces an SP's scopes on behalf of `actor`; each must be among its PF's scopes
/// (`operator_scope_missing` otherwise). A removed SP is refused.
pub fn sp_rescope(
    authority: &Authority,
    id: &str,
    scopes: Vec<Scope>,
    actor: &str,
    now: OffsetDateTime,
) -> Result<ServiceProvider> {
    check_name("actor", actor)?;
    let scopes = normalize(scopes)?;
    let names = |v: &[Scope]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
    update_sp(authority, id, now, "sp-rescope", &|sp, t| {
        if sp.state == SpState::Removed {
            return Err(Error::SpNotActive {
                sp: sp.id.clone(),
                state: "removed",
            });
        }
        let pf = t.operator(&sp.pf)?.ok_or_else(|| {
            ca::Error::Store(format!("SP {} names a missing PF {}", sp.id, sp.pf))
        })?;
        if let Some(s) = scopes.iter().find(|s| !pf.scopes.contains(s)) {
            return Err(Error::OperatorScopeMissing(s.as_str()));
        }
        let detail = format!(
            "by={actor} from={} to={}",
            names(&sp.scopes),
            names(&scopes)
        );
        sp.scopes = scopes.clone();
        Ok(detail)
    })
}

type SpChange<'a> = dyn Fn(&mut ServiceProvider, &dyn Tx) -> Result<String> + 'a;

/// Reads an SP, applies `change` and writes it back with its audit record, in one unit of
/// work; an error from `change` writes nothing.
fn update_sp(
    authority: &Authority,
    id: &str,
    now: OffsetDateTime,
    action: &str,
    change: &SpChange<'_>,
) -> Result<ServiceProvider> {
    let result = std::cell::RefCell::new(None);
    authority.storage().transact(&|t| {
        *result.borrow_mut() = None;
        let Some(mut sp) = t.service_provider(id)? else {
            *result.borrow_mut() = Some(Err(Error::UnknownSp(id.to_owned())));
            return Ok(());
        };
        match change(&mut sp, t) {
            Ok(detail) => {
                t.put_service_provider(&sp)?;
                storage::audit(t, now, action, &sp.id, &detail)?;
                *result.borrow_mut() = Some(Ok(sp));
            }
            Err(Error::Ca(e)) => return Err(e),
            Err(e) => *result.borrow_mut() = Some(Err(e)),
        }
        Ok(())
    })?;
    result.into_inner().unwrap_or_else(|| {
        Err(Error::Internal(
            "service provider update did not run".into(),
        ))
    })
}

/// Every SP.
pub fn service_providers(authority: &Authority) -> Result<Vec<ServiceProvider>> {
    Ok(authority.storage().service_providers()?)
}

/// An SP by id.
pub fn service_provider(authority: &Authority, id: &str) -> Result<Option<ServiceProvider>> {
    Ok(authority.storage().service_provider(id)?)
}

/// A fresh consent id.
pub fn new_consent_id(authority: &Authority) -> Result<String> {
    new_id(authority, "C", 12)
}

/// Records a verified consent; a nonce may be used once per SP.
pub fn consent_add(authority: &Authority, c: &Consent) -> Result<()> {
    let reused = std::cell::Cell::new(false);
    authority.storage().transact(&|t| {
        reused.set(false);
        if t.consent_nonce_used(&c.sp, &c.nonce)? {
            reused.set(true);
            return Ok(());
        }
        t.put_consent(c)?;
        storage::audit(
            t,
            c.granted_at,
            "consent-grant",
            &c.holder,
            &format!(
                "consent={} sp={} scope={} signer={} statement={}",
                c.id, c.sp, c.scope, c.signer_serial, c.statement_sha256
            ),
        )
    })?;
    if reused.get() {
        return Err(Error::NonceReused);
    }
    Ok(())
}

/// A consent by id.
pub fn consent(authority: &Authority, id: &str) -> Result<Consent> {
    authority
        .storage()
        .consent(id)?
        .ok_or_else(|| Error::UnknownConsent(id.to_owned()))
}

/// Withdraws a consent (`by`: `holder` or `sp`).
pub fn consent_withdraw(
    authority: &Authority,
    id: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<Consent> {
    let result = std::cell::RefCell::new(None);
    authority.storage().transact(&|t| {
        *result.borrow_mut() = None;
        let Some(mut c) = t.consent(id)? else {
            *result.borrow_mut() = Some(Err(Error::UnknownConsent(id.to_owned())));
            return Ok(());
        };
        if c.withdrawn_at.is_some() {
            *result.borrow_mut() = Some(Err(Error::ConsentWithdrawn(id.to_owned())));
            return Ok(());
        }
        c.withdrawn_at = Some(now);
        c.withdrawn_by = Some(by.to_owned());
        t.put_consent(&c)?;
        storage::audit(
            t,
            now,
            "consent-withdraw",
            &c.holder,
            &format!("consent={id} sp={} by={by}", c.sp),
        )?;
        *result.borrow_mut() = Some(Ok(c));
        Ok(())
    })?;
    result
        .into_inner()
        .unwrap_or_else(|| Err(Error::Internal("withdrawal did not run".into())))
}

/// The live consent of `holder` for `sp` at `now`, or why there is none: no consent at all,
/// only expired ones, or only withdrawn ones (the most recent decides).
pub fn live_consent(
    authority: &Authority,
    holder: &str,
    sp: &str,
    now: OffsetDateTime,
) -> Result<Consent> {
    let mut latest: Option<Consent> = None;
    for c in authority.storage().consents_of(holder, sp)? {
        if c.withdrawn_at.is_none() && c.expires > now {
            return Ok(c);
        }
        if latest.as_ref().is_none_or(|l| c.granted_at >= l.granted_at) {
            latest = Some(c);
        }
    }
    Err(match latest {
        None => Error::NoConsent,
        Some(c) if c.withdrawn_at.is_some() => Error::ConsentWithdrawnByHolder,
        Some(_) => Error::ConsentExpired,
    })
}

/// Writes the access entries of API calls inside a transaction: per call, one entry per
/// holder it touched, and one `pf-access` audit record naming those holders (`-` if none).
pub(crate) fn write_access(t: &dyn Tx, calls: &[Vec<(u64, Access)>]) -> Result<(), ca::Error> {
    for entries in calls {
        let Some((_, first)) = entries.first() else {
            continue;
        };
        let mut holders = Vec::with_capacity(entries.len());
        for (seq, a) in entries {
            if !a.holder.is_empty() {
                t.append_access(a, *seq)?;
                holders.push(a.holder.as_str());
            }
        }
        let subject = if holders.is_empty() {
            "-".to_owned()
        } else {
            holders.join(",")
        };
        storage::audit(
            t,
            first.at,
            "pf-access",
            &subject,
            &format!(
                "pf={} sp={} op={} outcome={}",
                first.pf, first.sp, first.operation, first.outcome
            ),
        )?;
    }
    Ok(())
}

/// Who read a holder's data and when, oldest first.
pub fn access_log(authority: &Authority, holder: &str) -> Result<Vec<Access>> {
    authority.resident(holder)?;
    Ok(authority.storage().access_log(holder)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca::clock::Clock;
    use std::sync::Arc;

    fn authority(dir: &std::path::Path) -> (Authority, Arc<ca::clock::FixedClock>) {
        let clock = Arc::new(ca::clock::FixedClock::new(
            time::macros::datetime!(2026-11-27 03:00 UTC),
        ));
        let a = Authority::init(
            &dir.join("data"),
            policies::policy::DEFAULT_POLICY,
            b"test passphrase",
            clock.clone(),
        )
        .unwrap();
        (a, clock)
    }

    #[test]
    fn names_and_scopes_are_checked() {
        assert!(check_name("n", "Example PF").is_ok());
        assert!(check_name("n", &"字".repeat(64)).is_ok());
        for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
            assert!(
                matches!(check_name("n", bad), Err(Error::BadName { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_scopes("successor, validity,validity").unwrap(),
            [Scope::Validity, Scope::Successor]
        );
        assert!(parse_scopes("").is_err());
        assert!(matches!(parse_scopes("validity,all"), Err(Error::UnknownScope(s)) if s == "all"));
    }

    #[test]
    fn registry_operations_are_audited_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, clock) = authority(tmp.path());
        let now = clock.now();
        let pf = operator_add(
            &a,
            "PF",
            vec![Scope::Validity, Scope::FourAttributes],
            b"key-1",
            None,
            now,
        )
        .unwrap();
        assert_eq!(operator_by_key(&a, b"key-1").unwrap().unwrap().id, pf.id);
        assert!(operator_by_key(&a, b"key-2").unwrap().is_none());
        assert!(matches!(
            operator_add(&a, "PF", vec![Scope::Validity], b"key-2", None, now),
            Err(Error::OperatorExists(_))
        ));
        assert!(matches!(
            operator_add(&a, "PF2", vec![Scope::Validity], b"key-1", None, now),
            Err(Error::KeyTaken(_))
        ));
        assert!(matches!(
            sp_add(&a, "PF", "Bank", vec![Scope::Successor], now),
            Err(Error::OperatorScopeMissing("successor"))
        ));
        let sp = sp_add(&a, "PF", "Bank", vec![Scope::FourAttributes], now).unwrap();
        assert!(matches!(
            sp_add(&a, "PF", "Bank", vec![Scope::Validity], now),
            Err(Error::SpExists(_))
        ));
        assert!(matches!(
            sp_add(&a, "Nobody", "Bank", vec![Scope::Validity], now),
            Err(Error::UnknownOperator(_))
        ));
        assert_eq!(service_providers(&a).unwrap(), std::slice::from_ref(&sp));

        // Consents: none, live, expired, withdrawn.
        let consent = |id: &str, nonce: &str, expires: OffsetDateTime| Consent {
            id: id.into(),
            holder: "R1".into(),
            sp: sp.id.clone(),
            scope: Scope::FourAttributes,
            expires,
            nonce: nonce.into(),
            granted_at: clock.now(),
            withdrawn_at: None,
            withdrawn_by: None,
            signer_serial: "01".into(),
            statement_sha256: "00".into(),
        };
        assert!(matches!(
            live_consent(&a, "R1", &sp.id, now),
            Err(Error::NoConsent)
        ));
        consent_add(&a, &consent("C1", "n1", now + time::Duration::days(1))).unwrap();
        assert!(matches!(
            consent_add(&a, &consent("C2", "n1", now + time::Duration::days(1))),
            Err(Error::NonceReused)
        ));
        assert_eq!(live_consent(&a, "R1", &sp.id, now).unwrap().id, "C1");
        assert!(matches!(
            live_consent(&a, "R1", "SP-other", now),
            Err(Error::NoConsent)
        ));
        assert!(matches!(
            live_consent(&a, "R1", &sp.id, now + time::Duration::days(2)),
            Err(Error::ConsentExpired)
        ));
        consent_withdraw(&a, "C1", "sp", now).unwrap();
        assert!(matches!(
            consent_withdraw(&a, "C1", "sp", now),
            Err(Error::ConsentWithdrawn(_))
        ));
        assert!(matches!(
            live_consent(&a, "R1", &sp.id, now),
            Err(Error::ConsentWithdrawnByHolder)
        ));
        assert!(matches!(
            consent_withdraw(&a, "C9", "sp", now),
            Err(Error::UnknownConsent(_))
        ));

        // State changes; revoked is final.
        assert_eq!(
            operator_set_state(&a, "PF", PfState::Suspended, now)
                .unwrap()
                .state,
            PfState::Suspended
        );
        operator_set_state(&a, "PF", PfState::Revoked, now).unwrap();
        assert!(operator_set_state(&a, "PF", PfState::Active, now).is_err());
        assert!(operator_add_key(&a, "PF", b"key-3", None, now).is_err());

        let actions: Vec<String> = a
            .audit_records()
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        for want in [
            "pf-add",
            "sp-add",
            "consent-grant",
            "consent-withdraw",
            "pf-suspend",
            "pf-revoke",
        ] {
            assert!(
                actions.iter().any(|a| a == want),
                "{want} missing from {actions:?}"
            );
        }
        a.audit_verify().unwrap();
    }
}
