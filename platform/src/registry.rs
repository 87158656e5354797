//! The registry of platform operators (PF) and service providers (SP), the holders' consents
//! and the access log, in the store tables the CA reserves for them
//! (`Table::Operators`, `Table::Consents`, `Table::Access`). Every write is one transaction
//! with its audit record; audit records name ids, serials and key fingerprints only.
//!
//! | table | key | value |
//! |---|---|---|
//! | operators | `pf/` id | [`Operator`] (JSON) |
//! | operators | `pfname/` name | PF id |
//! | operators | `key/` hex SHA-256 of a client SubjectPublicKeyInfo | PF id |
//! | operators | `sp/` id | [`ServiceProvider`] (JSON) |
//! | operators | `spname/` PF id `/` name | SP id |
//! | consents | `c/` id | [`Consent`] (JSON) |
//! | consents | `h/` holder `\0` SP id `\0` consent id | empty |
//! | consents | `n/` SP id `\0` nonce | consent id |
//! | access | holder `\0` time (i128 BE ns) · sequence (u64 BE) | [`Access`] (JSON) |

use std::fmt;

use ca::records::{from_json, json};
use ca::store::{Table, Txn};
use ca::Authority;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};

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

    /// Parses `validity,four-attributes,...` (duplicates removed, order kept sorted).
    pub fn parse_list(text: &str) -> Result<Vec<Scope>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(part.parse()?);
        }
        normalize(out)
    }
}

fn normalize(mut scopes: Vec<Scope>) -> Result<Vec<Scope>> {
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(Error::UnknownScope(String::new()));
    }
    Ok(scopes)
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scope> {
        match s {
            "validity" => Ok(Scope::Validity),
            "four-attributes" => Ok(Scope::FourAttributes),
            "successor" => Ok(Scope::Successor),
            other => Err(Error::UnknownScope(other.to_owned())),
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

fn pf_key(id: &str) -> Vec<u8> {
    format!("pf/{id}").into_bytes()
}
fn pf_name_key(name: &str) -> Vec<u8> {
    format!("pfname/{name}").into_bytes()
}
fn key_key(fp: &str) -> Vec<u8> {
    format!("key/{fp}").into_bytes()
}
fn sp_key(id: &str) -> Vec<u8> {
    format!("sp/{id}").into_bytes()
}
fn sp_name_key(pf: &str, name: &str) -> Vec<u8> {
    format!("spname/{pf}/{name}").into_bytes()
}
fn consent_key(id: &str) -> Vec<u8> {
    format!("c/{id}").into_bytes()
}
fn holder_consent_prefix(holder: &str, sp: &str) -> Vec<u8> {
    let mut k = b"h/".to_vec();
    k.extend_from_slice(holder.as_bytes());
    k.push(0);
    k.extend_from_slice(sp.as_bytes());
    k.push(0);
    k
}
fn nonce_key(sp: &str, nonce: &str) -> Vec<u8> {
    let mut k = b"n/".to_vec();
    k.extend_from_slice(sp.as_bytes());
    k.push(0);
    k.extend_from_slice(nonce.as_bytes());
    k
}
fn access_prefix(holder: &str) -> Vec<u8> {
    let mut k = holder.as_bytes().to_vec();
    k.push(0);
    k
}

fn get_json<T: for<'de> Deserialize<'de>>(
    t: &dyn Txn,
    table: Table,
    key: &[u8],
) -> Result<Option<T>, ca::Error> {
    t.get(table, key)?.map(|b| from_json(&b)).transpose()
}

/// Registers a new PF with its first client key (and the serial of the certificate the
/// operator CA issued for it, if any).
pub fn operator_add(
    authority: &Authority,
    name: &str,
    scopes: Vec<Scope>,
    spki: &[u8],
    cert_serial: Option<String>,
    now: OffsetDateTime,
) -> Result<Operator> {
    check_name("operator name", name)?;
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
    };
    let outcome = std::cell::RefCell::new(None);
    authority.store().transact(&|t| {
        *outcome.borrow_mut() = None;
        if t.get(Table::Operators, &pf_name_key(name))?.is_some() {
            *outcome.borrow_mut() = Some(Error::OperatorExists(name.to_owned()));
            return Ok(());
        }
        if let Some(other) = t.get(Table::Operators, &key_key(&fp))? {
            *outcome.borrow_mut() = Some(Error::KeyTaken(String::from_utf8_lossy(&other).into()));
            return Ok(());
        }
        t.insert(Table::Operators, &pf_key(&op.id), &json(&op)?)?;
        t.insert(Table::Operators, &pf_name_key(name), op.id.as_bytes())?;
        t.insert(Table::Operators, &key_key(&fp), op.id.as_bytes())?;
        ca::audit::append(
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
    let fp = fingerprint(spki);
    update_operator(authority, name, now, "pf-add-key", &|op, t| {
        if op.state == PfState::Revoked {
            return Err(Error::OperatorNotActive {
                name: op.name.clone(),
                state: op.state.as_str(),
            });
        }
        if let Some(other) = t.get(Table::Operators, &key_key(&fp)).map_err(Error::Ca)? {
            if other != op.id.as_bytes() {
                return Err(Error::KeyTaken(String::from_utf8_lossy(&other).into()));
            }
        }
        if !op.keys.contains(&fp) {
            op.keys.push(fp.clone());
        }
        if let Some(s) = &cert_serial {
            op.certificates.push(s.clone());
        }
        t.insert(Table::Operators, &key_key(&fp), op.id.as_bytes())
            .map_err(Error::Ca)?;
        Ok(format!("key={fp}"))
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

type Change<'a> = dyn Fn(&mut Operator, &dyn Txn) -> Result<String> + 'a;

fn update_operator(
    authority: &Authority,
    name: &str,
    now: OffsetDateTime,
    action: &str,
    change: &Change<'_>,
) -> Result<Operator> {
    let result = std::cell::RefCell::new(None);
    authority.store().transact(&|t| {
        *result.borrow_mut() = None;
        let Some(id) = t.get(Table::Operators, &pf_name_key(name))? else {
            *result.borrow_mut() = Some(Err(Error::UnknownOperator(name.to_owned())));
            return Ok(());
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        let mut op: Operator = get_json(t, Table::Operators, &pf_key(&id))?
            .ok_or_else(|| ca::Error::Store(format!("operator {id} index without record")))?;
        match change(&mut op, t) {
            Ok(detail) => {
                t.insert(Table::Operators, &pf_key(&id), &json(&op)?)?;
                ca::audit::append(t, now, action, &id, &detail)?;
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
    authority
        .store()
        .scan(Table::Operators, b"pf/")
        .map(|r| Ok(from_json(&r?.1)?))
        .collect()
}

/// A PF by name.
pub fn operator_named(authority: &Authority, name: &str) -> Result<Operator> {
    let id = authority
        .store()
        .get(Table::Operators, &pf_name_key(name))?
        .ok_or_else(|| Error::UnknownOperator(name.to_owned()))?;
    operator(authority, &String::from_utf8_lossy(&id))?
        .ok_or_else(|| Error::UnknownOperator(name.to_owned()))
}

/// A PF by id.
pub fn operator(authority: &Authority, id: &str) -> Result<Option<Operator>> {
    Ok(authority
        .store()
        .get(Table::Operators, &pf_key(id))?
        .map(|b| from_json(&b))
        .transpose()?)
}

/// The PF a client key (SubjectPublicKeyInfo DER) is registered to.
pub fn operator_by_key(authority: &Authority, spki: &[u8]) -> Result<Option<Operator>> {
    operator_by_fingerprint(authority, &fingerprint(spki))
}

/// The PF a client key is registered to, by the key's [`fingerprint`].
pub fn operator_by_fingerprint(authority: &Authority, fp: &str) -> Result<Option<Operator>> {
    match authority.store().get(Table::Operators, &key_key(fp))? {
        Some(id) => operator(authority, &String::from_utf8_lossy(&id)),
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
    };
    let exists = std::cell::Cell::new(false);
    authority.store().transact(&|t| {
        exists.set(false);
        if t.get(Table::Operators, &sp_name_key(&pf.id, name))?
            .is_some()
        {
            exists.set(true);
            return Ok(());
        }
        t.insert(Table::Operators, &sp_key(&sp.id), &json(&sp)?)?;
        t.insert(
            Table::Operators,
            &sp_name_key(&pf.id, name),
            sp.id.as_bytes(),
        )?;
        let scopes: Vec<&str> = sp.scopes.iter().map(|s| s.as_str()).collect();
        ca::audit::append(
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

/// Every SP.
pub fn service_providers(authority: &Authority) -> Result<Vec<ServiceProvider>> {
    authority
        .store()
        .scan(Table::Operators, b"sp/")
        .map(|r| Ok(from_json(&r?.1)?))
        .collect()
}

/// An SP by id.
pub fn service_provider(authority: &Authority, id: &str) -> Result<Option<ServiceProvider>> {
    Ok(authority
        .store()
        .get(Table::Operators, &sp_key(id))?
        .map(|b| from_json(&b))
        .transpose()?)
}

/// A fresh consent id.
pub fn new_consent_id(authority: &Authority) -> Result<String> {
    new_id(authority, "C", 12)
}

/// Records a verified consent; a nonce may be used once per SP.
pub fn consent_add(authority: &Authority, c: &Consent) -> Result<()> {
    let reused = std::cell::Cell::new(false);
    authority.store().transact(&|t| {
        reused.set(false);
        let nk = nonce_key(&c.sp, &c.nonce);
        if t.get(Table::Consents, &nk)?.is_some() {
            reused.set(true);
            return Ok(());
        }
        t.insert(Table::Consents, &nk, c.id.as_bytes())?;
        t.insert(Table::Consents, &consent_key(&c.id), &json(c)?)?;
        let mut hk = holder_consent_prefix(&c.holder, &c.sp);
        hk.extend_from_slice(c.id.as_bytes());
        t.insert(Table::Consents, &hk, b"")?;
        ca::audit::append(
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
        .store()
        .get(Table::Consents, &consent_key(id))?
        .map(|b| from_json(&b))
        .transpose()?
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
    authority.store().transact(&|t| {
        *result.borrow_mut() = None;
        let Some(mut c) = get_json::<Consent>(t, Table::Consents, &consent_key(id))? else {
            *result.borrow_mut() = Some(Err(Error::UnknownConsent(id.to_owned())));
            return Ok(());
        };
        if c.withdrawn_at.is_some() {
            *result.borrow_mut() = Some(Err(Error::ConsentWithdrawn(id.to_owned())));
            return Ok(());
        }
        c.withdrawn_at = Some(now);
        c.withdrawn_by = Some(by.to_owned());
        t.insert(Table::Consents, &consent_key(id), &json(&c)?)?;
        ca::audit::append(
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
    let prefix = holder_consent_prefix(holder, sp);
    let mut latest: Option<Consent> = None;
    for item in authority.store().scan(Table::Consents, &prefix) {
        let (k, _) = item?;
        let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let c = consent(authority, &id)?;
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

/// The key under which an access entry is stored; `seq` orders entries of the same instant.
pub(crate) fn access_key(holder: &str, at: OffsetDateTime, seq: u64) -> Vec<u8> {
    let mut k = access_prefix(holder);
    k.extend_from_slice(&at.unix_timestamp_nanos().to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Writes the access entries of API calls inside a transaction: per call, one entry per
/// holder it touched, and one `pf-access` audit record naming those holders (`-` if none).
pub(crate) fn write_access(t: &dyn Txn, calls: &[Vec<(Vec<u8>, Access)>]) -> Result<(), ca::Error> {
    for entries in calls {
        let Some((_, first)) = entries.first() else {
            continue;
        };
        let mut holders = Vec::with_capacity(entries.len());
        for (key, a) in entries {
            if !a.holder.is_empty() {
                t.insert(Table::Access, key, &json(a)?)?;
                holders.push(a.holder.as_str());
            }
        }
        let subject = if holders.is_empty() {
            "-".to_owned()
        } else {
            holders.join(",")
        };
        ca::audit::append(
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
    authority
        .store()
        .scan(Table::Access, &access_prefix(holder))
        .map(|r| Ok(from_json(&r?.1)?))
        .collect()
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
            Scope::parse_list("successor, validity,validity").unwrap(),
            [Scope::Validity, Scope::Successor]
        );
        assert!(Scope::parse_list("").is_err());
        assert!(
            matches!(Scope::parse_list("validity,all"), Err(Error::UnknownScope(s)) if s == "all")
        );
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

        let actions: Vec<String> = ca::audit::records(a.store().as_ref())
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
