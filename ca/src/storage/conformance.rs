//! The storage conformance suite: one set of checks, written once, generic over the engine,
//! that every [`Storage`] engine must pass.
//!
//! **Test-support code.** It is compiled for the crate's tests and, with the `conformance`
//! feature, for other crates' tests; it asserts and panics freely and must never be called
//! by production code.
//!
//! Each check is a `pub fn name<S: Storage>(s: &S)` run on a fresh, empty engine. An engine
//! runs them all in one of two ways:
//!
//! * [`storage_conformance!`](crate::storage_conformance) — one `#[test]` per check, so that
//!   a failure names its check:
//!
//!   ```ignore
//!   fn fresh() -> Fixture<MyStorage> { Fixture::new(MyStorage::new()) }
//!   crate::storage_conformance!(fresh);
//!   ```
//!
//! * [`run`] — every check in one call; names the checks that failed.
//!
//! A [`Fixture`] holds the engine and whatever keeps it alive (a temporary directory for the
//! sled engine); the engine is dropped first.
//!
//! What is checked: every read and write of [`Storage`] and [`Tx`] (certificates, statuses
//! and CRL entries, dirty CRLs, CRL state, serial counters, residents, scheduled events, the
//! audit chain with its actors and record formats, operators, service providers, consents,
//! the access log, officers), the order of every
//! listing, atomicity (a body that fails changes nothing, for every kind of write, and its
//! error comes back as it was), reads of a body's own writes, serialisability under
//! concurrency (no lost update, audit chain intact), and the engine's consistency check,
//! compaction and counters.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use policies::profile::Scope;
use policies::{Hierarchy, Reason};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditIntent, Head};
use crate::error::{Error, Result};
use crate::records::platform::{
    Access, Consent, Operator, PfState, ServiceProvider, SpState, Usage,
};
use crate::records::{
    CertKind, CertRecord, HistoryLine, Resident, State, StatusChange, StatusRecord,
};
use crate::storage::{
    fingerprint, revoked_entry, CrlId, KeyFingerprint, KeyOwner, Revoked, Scheduled, ScheduledKind,
    Storage, Tx,
};

const SIGNING: Hierarchy = Hierarchy::Signing;
const AUTH: Hierarchy = Hierarchy::Auth;

// ----- running the suite -------------------------------------------------------------------

/// An engine under test and whatever keeps it alive (dropped after the engine).
pub struct Fixture<S: Storage> {
    pub storage: S,
    _keep: Option<Box<dyn Any>>,
}

impl<S: Storage> Fixture<S> {
    /// An engine that needs nothing else (the memory engine).
    pub fn new(storage: S) -> Fixture<S> {
        Fixture {
            storage,
            _keep: None,
        }
    }

    /// An engine that lives in `keep` (a `TempDir`), which outlives it.
    pub fn keeping(storage: S, keep: impl Any) -> Fixture<S> {
        Fixture {
            storage,
            _keep: Some(Box::new(keep)),
        }
    }
}

/// Generates one `#[test]` per conformance check, each on a fresh engine from `$make` (a
/// function or closure returning a [`Fixture`](crate::storage::conformance::Fixture)).
#[macro_export]
macro_rules! storage_conformance {
    ($make:expr) => {
        $crate::storage_conformance!(@checks $make;
            certificates,
            roots,
            holder_certificates,
            key_owners,
            status_lifecycle,
            revoked_listing,
            municipal_partitions,
            many_entries_stream_in_order,
            callbacks_may_use_the_store,
            dirty_marking,
            crl_state,
            serial_counter,
            serial_never_replaced,
            residents,
            scheduling,
            audit_chain,
            aborted_audit_leaves_no_trace,
            audit_import,
            operators,
            service_providers,
            consents,
            access_log,
            sp_consents_paging,
            usage_counters,
            failed_body_changes_nothing,
            error_comes_back_unchanged,
            reads_see_own_writes,
            incomplete_status_is_refused,
            concurrent_read_modify_write,
            body_errors_come_from_one_state,
            concurrent_audit_appends,
            concurrent_serial_notes,
            consistency,
            engine_counters,
            writable,
            key_blocklist,
            officers,
            audit_actors_and_formats,
            status_history,
            audit_checkpoints,
            officer_key_renewal,
            revocation_log,
            issuance_log,
            crl_leases,
            signer_requests,
            revocation_log_import,
            crl_generations,
            residents_by_identity,
        );
    };
    (@checks $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                if let Some(fixture) = $crate::storage::conformance::MaybeFixture::fixture(($make)()) {
                    $crate::storage::conformance::$check(&fixture.storage);
                }
            }
        )*

        #[test]
        fn every_conformance_check_has_a_test() {
            $crate::storage::conformance::assert_listed(&$make, &[$(stringify!($check)),*]);
        }
    };
}

/// What a `make` function given to [`storage_conformance!`](crate::storage_conformance)
/// returns: a [`Fixture`], or `Option<Fixture>` for an engine that needs something the
/// machine may lack (a PostgreSQL server): `None` skips the check, and the maker says so
/// loudly.
pub trait MaybeFixture {
    type Storage: Storage;
    fn fixture(self) -> Option<Fixture<Self::Storage>>;
}

impl<S: Storage> MaybeFixture for Fixture<S> {
    type Storage = S;
    fn fixture(self) -> Option<Fixture<S>> {
        Some(self)
    }
}

impl<S: Storage> MaybeFixture for Option<Fixture<S>> {
    type Storage = S;
    fn fixture(self) -> Option<Fixture<S>> {
        self
    }
}

/// One check: it panics when the engine fails it.
pub type Check<S> = fn(&S);

/// Every check, by name, in the order [`run`] runs them.
pub fn checks<S: Storage>() -> Vec<(&'static str, Check<S>)> {
    vec![
        ("certificates", certificates::<S>),
        ("roots", roots::<S>),
        ("holder_certificates", holder_certificates::<S>),
        ("key_owners", key_owners::<S>),
        ("status_lifecycle", status_lifecycle::<S>),
        ("revoked_listing", revoked_listing::<S>),
        ("municipal_partitions", municipal_partitions::<S>),
        (
            "many_entries_stream_in_order",
            many_entries_stream_in_order::<S>,
        ),
        (
            "callbacks_may_use_the_store",
            callbacks_may_use_the_store::<S>,
        ),
        ("dirty_marking", dirty_marking::<S>),
        ("crl_state", crl_state::<S>),
        ("serial_counter", serial_counter::<S>),
        ("serial_never_replaced", serial_never_replaced::<S>),
        ("residents", residents::<S>),
        ("scheduling", scheduling::<S>),
        ("audit_chain", audit_chain::<S>),
        (
            "aborted_audit_leaves_no_trace",
            aborted_audit_leaves_no_trace::<S>,
        ),
        ("audit_import", audit_import::<S>),
        ("operators", operators::<S>),
        ("service_providers", service_providers::<S>),
        ("consents", consents::<S>),
        ("access_log", access_log::<S>),
        ("sp_consents_paging", sp_consents_paging::<S>),
        ("usage_counters", usage_counters::<S>),
        (
            "failed_body_changes_nothing",
            failed_body_changes_nothing::<S>,
        ),
        (
            "error_comes_back_unchanged",
            error_comes_back_unchanged::<S>,
        ),
        ("reads_see_own_writes", reads_see_own_writes::<S>),
        (
            "incomplete_status_is_refused",
            incomplete_status_is_refused::<S>,
        ),
        (
            "concurrent_read_modify_write",
            concurrent_read_modify_write::<S>,
        ),
        (
            "body_errors_come_from_one_state",
            body_errors_come_from_one_state::<S>,
        ),
        ("concurrent_audit_appends", concurrent_audit_appends::<S>),
        ("concurrent_serial_notes", concurrent_serial_notes::<S>),
        ("consistency", consistency::<S>),
        ("engine_counters", engine_counters::<S>),
        ("writable", writable::<S>),
        ("key_blocklist", key_blocklist::<S>),
        ("officers", officers::<S>),
        ("audit_actors_and_formats", audit_actors_and_formats::<S>),
        ("status_history", status_history::<S>),
        ("audit_checkpoints", audit_checkpoints::<S>),
        ("officer_key_renewal", officer_key_renewal::<S>),
        ("revocation_log", revocation_log::<S>),
        ("issuance_log", issuance_log::<S>),
        ("crl_leases", crl_leases::<S>),
        ("signer_requests", signer_requests::<S>),
        ("revocation_log_import", revocation_log_import::<S>),
        ("crl_generations", crl_generations::<S>),
        ("residents_by_identity", residents_by_identity::<S>),
    ]
}

/// Runs every check, each on a fresh engine from `make`; panics naming the checks that failed.
pub fn run<S: Storage>(make: &dyn Fn() -> Fixture<S>) {
    let mut failed = Vec::new();
    for (name, check) in checks::<S>() {
        let fixture = make();
        if catch_unwind(AssertUnwindSafe(|| check(&fixture.storage))).is_err() {
            eprintln!("storage conformance: {name} FAILED");
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "storage conformance: {} check(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
}

/// Used by [`storage_conformance!`](crate::storage_conformance): the macro's list of checks
/// is [`checks`].
pub fn assert_listed<M: MaybeFixture>(_make: &dyn Fn() -> M, names: &[&str]) {
    let all: Vec<&str> = checks::<M::Storage>().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        all.as_slice(),
        "the macro and `checks` list different checks"
    );
}

// ----- helpers -----------------------------------------------------------------------------

/// Commits a body; panics with the error if it fails.
fn commit<S: Storage>(s: &S, body: &dyn Fn(&dyn Tx) -> Result<()>) {
    if let Err(e) = s.transact(body) {
        panic!("transaction failed: {e}");
    }
}

/// Unwraps a storage result.
fn ok<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("storage call failed: {e}"))
}

/// `t0 + secs` seconds; `t0` is 2026-04-01 00:00 UTC.
pub fn at(secs: i64) -> OffsetDateTime {
    datetime!(2026-04-01 00:00 UTC) + Duration::seconds(secs)
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialise")
}

/// A minimal DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    match n {
        0..=0x7F => out.push(n as u8),
        0x80..=0xFF => out.extend([0x81, n as u8]),
        _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A parseable X.509 certificate (not validly signed) whose Ed25519 key is derived from
/// `seed`: enough for [`CertRecord::spki`], no crypto needed.
pub fn certificate_der(seed: &[u8]) -> Vec<u8> {
    let ed25519 = tlv(0x30, &tlv(0x06, &[0x2B, 0x65, 0x70]));
    let cn = [
        tlv(0x06, &[0x55, 0x04, 0x03]),
        tlv(0x0C, b"storage conformance"),
    ]
    .concat();
    let name = tlv(0x30, &tlv(0x31, &tlv(0x30, &cn)));
    let validity = tlv(
        0x30,
        &[tlv(0x17, b"260101000000Z"), tlv(0x17, b"360101000000Z")].concat(),
    );
    let key: [u8; 32] = Sha256::digest(seed).into();
    let spki = tlv(
        0x30,
        &[ed25519.clone(), tlv(0x03, &[&[0u8][..], &key].concat())].concat(),
    );
    let tbs = tlv(
        0x30,
        &[
            tlv(0xA0, &tlv(0x02, &[2])),
            tlv(0x02, &[1]),
            ed25519.clone(),
            name.clone(),
            validity,
            name,
            spki,
        ]
        .concat(),
    );
    tlv(0x30, &[tbs, ed25519, tlv(0x03, &[0u8; 65])].concat())
}

/// A holder's certificate of `h` in CRL partition `partition`, with its own key.
pub fn holder_cert(h: Hierarchy, serial: &[u8], holder: &str, partition: u16) -> CertRecord {
    let seed = [&[h.tag()][..], serial, holder.as_bytes()].concat();
    CertRecord {
        hierarchy: h,
        serial: serial.to_vec(),
        kind: CertKind::of(h),
        holder: Some(holder.to_owned()),
        partition: Some(Scope::Partition(partition)),
        generation: 1,
        not_before: at(0),
        not_after: at(86_400 * 365),
        der: certificate_der(&seed),
    }
}

/// A CA-level certificate of `h` (an OCSP signer): no holder, on the CA-level CRL.
/// Revokes (keyCompromise, since [`at`]`(100)`) the signing holder certificate with the
/// one-byte serial `serial`, adding it first if the store lacks it, in one unit of work: a
/// status change as another process makes it (the revocation-log followers' tests).
pub fn revoke_holder<S: Storage + ?Sized>(s: &S, serial: u8) {
    s.transact(&|t| revoke_holder_in(t, serial))
        .expect("revoke");
}

/// [`revoke_holder`] inside a unit of work `t` (several in one unit of work: one commit).
pub fn revoke_holder_in(t: &dyn Tx, serial: u8) -> Result<()> {
    let c = holder_cert(Hierarchy::Signing, &[serial], "R", 0);
    if !t.certificate_exists(c.hierarchy, &c.serial)? {
        t.add_certificate(&c, None)?;
    }
    t.set_status(
        &c,
        &StatusRecord {
            state: State::Revoked,
            reason: Some(Reason::KeyCompromise),
            since: Some(at(100)),
            invalidity: None,
        },
    )
}

pub fn ca_cert(h: Hierarchy, serial: &[u8]) -> CertRecord {
    CertRecord {
        hierarchy: h,
        serial: serial.to_vec(),
        kind: CertKind::OcspSigner,
        holder: None,
        partition: None,
        generation: 1,
        not_before: at(0),
        not_after: at(86_400 * 30),
        der: certificate_der(&[&[h.tag(), 0xCA][..], serial].concat()),
    }
}

/// The [`KeyFingerprint`] of a certificate's key.
pub fn key_of(c: &CertRecord) -> KeyFingerprint {
    fingerprint(&ok(c.spki()))
}

/// Adds certificates in one transaction, holder certificates with their keys.
fn add<S: Storage>(s: &S, certs: &[&CertRecord]) {
    commit(s, &|t| {
        for c in certs {
            let key = c.holder.is_some().then(|| key_of(c));
            t.add_certificate(c, key.as_ref())?;
        }
        Ok(())
    });
}

fn set_status<S: Storage>(s: &S, c: &CertRecord, st: StatusRecord) {
    commit(s, &|t| t.set_status(c, &st));
}

fn revoked(reason: Reason, secs: i64) -> StatusRecord {
    StatusRecord {
        state: State::Revoked,
        reason: Some(reason),
        since: Some(at(secs)),
        invalidity: Some(at(secs - 3600)),
    }
}

fn held(secs: i64) -> StatusRecord {
    StatusRecord {
        state: State::Held,
        reason: Some(Reason::CertificateHold),
        since: Some(at(secs)),
        invalidity: None,
    }
}

/// The CRL entry a status gives a certificate.
fn entry(c: &CertRecord, st: &StatusRecord) -> Revoked {
    Revoked {
        serial: c.serial.clone(),
        entry: ok(revoked_entry(c, st)).expect("a revoked status has an entry"),
    }
}

fn revoked_list<S: Storage>(s: &S, h: Hierarchy, scope: Scope) -> Vec<Revoked> {
    let mut out = Vec::new();
    ok(s.for_each_revoked(h, 1, scope, &mut |r| {
        out.push(r);
        Ok(())
    }));
    out
}

fn all_certificates<S: Storage>(s: &S) -> Vec<(Hierarchy, Vec<u8>)> {
    let mut out = Vec::new();
    ok(s.for_each_certificate(&mut |c| {
        out.push((c.hierarchy, c.serial));
        Ok(())
    }));
    out
}

/// A sample resident (for engines' own tests): [`resident`] at version 0.
pub fn sample_resident(id: &str) -> Resident {
    resident(id, 0)
}

pub(crate) fn resident(id: &str, version: u64) -> Resident {
    Resident {
        id: id.to_owned(),
        attributes: serde_json::from_value(serde_json::json!({
            "name": "試験 花子",
            "birth": "1990-02-03",
            "sex": "2",
            "address": "東京都千代田区霞が関2-1-2",
        }))
        .expect("attributes"),
        prefecture: "東京都".into(),
        municipality: "千代田区".into(),
        card_expiry: time::macros::date!(2031 - 02 - 03),
        state: crate::records::ResidentState::Active,
        card_lost: false,
        departure: None,
        continued_use: false,
        version,
        history: vec![HistoryLine {
            at: at(version as i64),
            event: format!("v{version}"),
            certificates: vec![format!("signing:{version:02X}")],
            changes: vec![],
            office: None,
            override_reason: None,
        }],
        current: Default::default(),
        phone: Default::default(),
        phone_challenge: None,
    }
}

fn operator(id: &str, name: &str) -> Operator {
    Operator {
        id: id.into(),
        name: name.into(),
        state: PfState::Active,
        scopes: vec![crate::records::platform::Scope::Validity],
        keys: vec![],
        certificates: vec![],
        created: at(1),
        cert_not_after: None,
    }
}

fn sp(id: &str, pf: &str, name: &str) -> ServiceProvider {
    ServiceProvider {
        id: id.into(),
        name: name.into(),
        pf: pf.into(),
        scopes: vec![crate::records::platform::Scope::FourAttributes],
        created: at(2),
        state: SpState::Active,
    }
}

fn consent(id: &str, holder: &str, sp: &str, nonce: &str) -> Consent {
    Consent {
        id: id.into(),
        holder: holder.into(),
        sp: sp.into(),
        scope: crate::records::platform::Scope::FourAttributes,
        expires: at(86_400),
        nonce: nonce.into(),
        granted_at: at(3),
        withdrawn_at: None,
        withdrawn_by: None,
        signer_serial: "0A".into(),
        statement_sha256: "00".repeat(32),
    }
}

fn access(holder: &str, secs: i64, operation: &str) -> Access {
    Access {
        at: at(secs),
        holder: holder.into(),
        pf: "pf-1".into(),
        pf_name: "PF One".into(),
        sp: "sp-1".into(),
        sp_name: "SP One".into(),
        operation: operation.into(),
        outcome: "ok".into(),
    }
}

fn intent(action: &str, subject: &str) -> AuditIntent {
    AuditIntent {
        at: at(10),
        actor: format!("officer:OF-{action}(ca-officer)"),
        action: action.into(),
        subject: subject.into(),
        detail: format!("detail of {subject}"),
    }
}

/// The whole chain, checked with [`crate::audit::verify`] against the head; its subjects.
fn verified_chain<S: Storage>(s: &S) -> Vec<String> {
    let records = ok(s.audit_records(0, usize::MAX));
    let head = ok(s.audit_head());
    let n = crate::audit::verify(records.iter().cloned().map(Ok), head.clone())
        .unwrap_or_else(|e| panic!("the audit chain does not verify: {e}"));
    assert_eq!(n, records.len() as u64);
    match (records.last(), head) {
        (None, None) => {}
        (Some(last), Some(h)) => assert_eq!(
            h,
            Head {
                seq: last.seq,
                hash: last.hash.clone()
            }
        ),
        (last, head) => panic!("records end with {last:?} but the head is {head:?}"),
    }
    records.into_iter().map(|r| r.subject).collect()
}

fn all_scopes() -> Vec<(Hierarchy, Scope)> {
    let mut out = Vec::new();
    for h in Hierarchy::ALL {
        for p in [0, 1, 2, 3, 7] {
            out.push((h, Scope::Partition(p)));
        }
        for (pref, muni) in PLACES {
            out.push((h, place(pref, muni)));
        }
        out.push((h, Scope::Ca));
    }
    out
}

/// Municipal partitions the checks use: names that are prefixes of one another, the same
/// municipality name in two prefectures, Japanese names.
const PLACES: [(&str, &str); 5] = [
    ("Ibaraki-ken", "Tsukuba-shi"),
    ("Ibaraki-ken", "Tsukuba"),
    ("Ibaraki-ken", "Tsukubamirai-shi"),
    ("Ibaraki", "Tsukuba-shi"),
    ("東京都", "千代田区"),
];

/// The municipal partition of a place.
pub fn place(prefecture: &str, municipality: &str) -> Scope {
    Scope::Municipal(policies::Municipality::new(prefecture, municipality).expect("a valid place"))
}

/// A holder's certificate of `h` on a municipal partition.
pub fn municipal_cert(h: Hierarchy, serial: &[u8], holder: &str, scope: &Scope) -> CertRecord {
    CertRecord {
        partition: Some(scope.clone()),
        ..holder_cert(h, serial, holder, 0)
    }
}

/// Names that [`observe`] looks up besides what it can list.
struct Probe {
    residents: &'static [&'static str],
    holders: &'static [&'static str],
    operator_names: &'static [&'static str],
    operator_keys: &'static [&'static str],
    sp_names: &'static [(&'static str, &'static str)],
    consents: &'static [&'static str],
    nonces: &'static [(&'static str, &'static str)],
    consents_of: &'static [(&'static str, &'static str)],
    keys: Vec<KeyFingerprint>,
}

/// Everything a caller can see of the store (for [`Probe`]'s names), through [`Storage`] and
/// a read-only [`Tx`], one line per fact.
fn observe<S: Storage>(s: &S, p: &Probe) -> Vec<String> {
    let mut out = Vec::new();
    ok(s.for_each_certificate(&mut |c| {
        let st = s.status(c.hierarchy, &c.serial)?;
        out.push(format!("cert {} status {st:?}", json(&c)));
        Ok(())
    }));
    for h in p.holders {
        out.push(format!("holder {h}: {:?}", ok(s.holder_certificates(h))));
    }
    for fp in &p.keys {
        out.push(format!(
            "key {}: {:?}",
            hex::encode(fp),
            ok(s.key_owner(fp))
        ));
    }
    for h in Hierarchy::ALL {
        out.push(format!("counter {h}: {}", ok(s.serial_counter(h))));
    }
    for (h, scope) in all_scopes() {
        out.push(format!(
            "crl {h} {scope:?}: {:?}",
            revoked_list(s, h, scope.clone())
        ));
        out.push(format!(
            "crl state {h} {scope:?}: {:?}",
            ok(s.crl_state(h, 1, scope.clone()))
        ));
    }
    out.push(format!("dirty: {:?}", ok(s.dirty_partitions())));
    out.push(format!("crl scopes: {:?}", ok(s.crl_scopes())));
    for id in p.residents {
        out.push(format!(
            "resident {id}: {:?}",
            ok(s.resident(id)).map(|r| json(&r))
        ));
    }
    out.push(format!("due: {:?}", ok(s.due_events(at(10_000_000)))));
    out.push(format!("next: {:?}", ok(s.next_event())));
    out.push(format!("audit head: {:?}", ok(s.audit_head())));
    out.push(format!("audit: {:?}", ok(s.audit_records(0, usize::MAX))));
    out.push(format!("operators: {:?}", ok(s.operators())));
    out.push(format!("officers: {:?}", ok(s.officers())));
    out.push(format!("checkpoints: {:?}", ok(s.checkpoints())));
    for name in p.operator_names {
        out.push(format!(
            "operator named {name}: {:?}",
            ok(s.operator_named(name))
        ));
    }
    for fp in p.operator_keys {
        out.push(format!(
            "operator key {fp}: {:?}",
            ok(s.operator_by_key(fp))
        ));
    }
    out.push(format!("sps: {:?}", ok(s.service_providers())));
    for id in p.consents {
        out.push(format!("consent {id}: {:?}", ok(s.consent(id))));
    }
    for (h, sp) in p.consents_of {
        out.push(format!(
            "consents of {h} {sp}: {:?}",
            ok(s.consents_of(h, sp))
        ));
    }
    for h in p.holders {
        out.push(format!("access {h}: {:?}", ok(s.access_log(h))));
    }
    out.push(format!("access count: {}", ok(s.access_count())));
    // What only a unit of work can read.
    let seen = RefCell::new(Vec::new());
    commit(s, &|t| {
        let mut v = seen.borrow_mut();
        v.clear();
        for (h, scope) in all_scopes() {
            v.push(format!(
                "tx dirty {h} {scope:?}: {}",
                t.crl_dirty(h, 1, scope.clone())?
            ));
        }
        for (pf, name) in p.sp_names {
            v.push(format!(
                "tx sp {pf}/{name}: {:?}",
                t.service_provider_named(pf, name)?
            ));
        }
        for (sp, nonce) in p.nonces {
            v.push(format!(
                "tx nonce {sp}/{nonce}: {}",
                t.consent_nonce_used(sp, nonce)?
            ));
        }
        Ok(())
    });
    out.extend(seen.into_inner());
    out
}

// ----- certificates ------------------------------------------------------------------------

/// add_certificate, certificate, status, for_each_certificate's order, certificate_exists.
/// A fresh engine takes writes (`/readyz`'s store check), before and after a commit.
pub fn writable<S: Storage>(s: &S) {
    ok(s.writable());
    commit(s, &|t| crate::storage::audit(t, at(1), "init", "a", ""));
    ok(s.writable());
}

pub fn certificates<S: Storage>(s: &S) {
    assert!(all_certificates(s).is_empty());
    let serials: [&[u8]; 4] = [&[0x02], &[0x00, 0xFF], &[0x01, 0x00], &[0x01]];
    let mut certs = Vec::new();
    for h in [AUTH, SIGNING] {
        for (i, serial) in serials.iter().enumerate() {
            certs.push(if i % 2 == 0 {
                holder_cert(h, serial, "R1", 1)
            } else {
                ca_cert(h, serial)
            });
        }
    }
    let auth_only = holder_cert(AUTH, &[0x09], "R2", 0);
    certs.push(auth_only.clone());
    // Two transactions, the second out of order.
    add(s, &certs[..3].iter().collect::<Vec<_>>());
    add(s, &certs[3..].iter().rev().collect::<Vec<_>>());
    for c in &certs {
        let got = ok(s.certificate(c.hierarchy, &c.serial))
            .unwrap_or_else(|| panic!("{} {:02X?} not found", c.hierarchy, c.serial));
        assert_eq!(json(&got), json(c), "the record comes back as written");
        assert_eq!(
            ok(s.status(c.hierarchy, &c.serial)),
            Some(StatusRecord::GOOD)
        );
    }
    for (h, serial) in [
        (SIGNING, &[0x09][..]),
        (SIGNING, &[0x03][..]),
        (SIGNING, &[0x01, 0x00, 0x00][..]),
        (SIGNING, &[0x00][..]),
        (SIGNING, &[][..]),
    ] {
        assert!(ok(s.certificate(h, serial)).is_none(), "{h} {serial:02X?}");
        assert!(ok(s.status(h, serial)).is_none(), "{h} {serial:02X?}");
    }
    let order: Vec<(Hierarchy, Vec<u8>)> = [SIGNING, AUTH]
        .into_iter()
        .flat_map(|h| {
            [
                &[0x00, 0xFF][..],
                &[0x01][..],
                &[0x01, 0x00][..],
                &[0x02][..],
            ]
            .into_iter()
            .map(move |s| (h, s.to_vec()))
        })
        .chain([(AUTH, vec![0x09])])
        .collect();
    assert_eq!(
        all_certificates(s),
        order,
        "for_each_certificate lists in (hierarchy, serial bytes) order"
    );
    commit(s, &|t| {
        assert!(t.certificate_exists(SIGNING, &[0x01])?);
        assert!(t.certificate_exists(SIGNING, &[0x01, 0x00])?);
        assert!(t.certificate_exists(AUTH, &[0x09])?);
        assert!(!t.certificate_exists(SIGNING, &[0x09])?);
        assert!(!t.certificate_exists(SIGNING, &[0x01, 0x00, 0x00])?);
        assert_eq!(t.status(AUTH, &[0x09])?, Some(StatusRecord::GOOD));
        assert_eq!(t.status(SIGNING, &[0x09])?, None);
        Ok(())
    });
    assert!(
        ok(s.dirty_partitions()).is_empty(),
        "adding a good certificate changes no CRL"
    );
}

/// roots: every root certificate and nothing else, in (hierarchy, serial) order, as written;
/// a root added in a unit of work that fails is not among them.
pub fn roots<S: Storage>(s: &S) {
    assert!(ok(s.roots()).is_empty());
    let root = |h: Hierarchy, serial: &[u8], generation: u32| CertRecord {
        kind: CertKind::Root,
        generation,
        der: certificate_der(&[&[h.tag(), 0x52, generation as u8][..], serial].concat()),
        ..ca_cert(h, serial)
    };
    let (a1, a2, s1) = (
        root(AUTH, &[0x7F, 0x01], 1),
        root(AUTH, &[0x03], 2),
        root(SIGNING, &[0x10], 1),
    );
    let others = [
        holder_cert(AUTH, &[0x05], "R1", 1),
        ca_cert(AUTH, &[0x06]),
        holder_cert(SIGNING, &[0x01], "R1", 1),
    ];
    add(s, &[&others[0], &a1, &others[1]]);
    add(s, &[&s1, &others[2]]);
    add(s, &[&a2]);
    let e = s.transact(&|t| {
        t.add_certificate(&root(SIGNING, &[0x20], 2), None)?;
        Err(Error::Retry)
    });
    assert!(matches!(e, Err(Error::Retry)));
    let got: Vec<String> = ok(s.roots()).iter().map(json).collect();
    assert_eq!(
        got,
        [&s1, &a2, &a1].map(json),
        "the roots only, in (hierarchy, serial bytes) order, as written"
    );
}

/// holder_certificates: a holder's certificates, in (hierarchy, serial) order, with statuses.
pub fn holder_certificates<S: Storage>(s: &S) {
    let a = holder_cert(SIGNING, &[0x05], "R1", 1);
    // A smartphone certificate: its own kind, read back as such (every engine keeps it).
    let mut b = holder_cert(AUTH, &[0x03], "R1", 1);
    b.kind = CertKind::PhoneAuth;
    let c = holder_cert(SIGNING, &[0x01], "R1", 2);
    let other = holder_cert(SIGNING, &[0x02], "R10", 1);
    let short = holder_cert(AUTH, &[0x04], "R", 1);
    let ca = ca_cert(SIGNING, &[0x06]);
    add(s, &[&a, &b, &c, &other, &short, &ca]);
    let st = revoked(Reason::KeyCompromise, 50);
    set_status(s, &a, st);
    let got = ok(s.holder_certificates("R1"));
    let summary: Vec<_> = got
        .iter()
        .map(|(c, st)| (c.hierarchy, c.serial.clone(), *st))
        .collect();
    assert_eq!(
        summary,
        vec![
            (SIGNING, vec![0x01], StatusRecord::GOOD),
            (SIGNING, vec![0x05], st),
            (AUTH, vec![0x03], StatusRecord::GOOD),
        ]
    );
    for ((got, _), want) in got.iter().zip([&c, &a, &b]) {
        assert_eq!(json(got), json(want));
    }
    assert_eq!(got[2].0.kind, CertKind::PhoneAuth);
    assert_eq!(
        ok(s.certificate(AUTH, &[0x03])).map(|c| c.kind),
        Some(CertKind::PhoneAuth)
    );
    let only = |h: &str| -> Vec<Vec<u8>> {
        ok(s.holder_certificates(h))
            .into_iter()
            .map(|(c, _)| c.serial)
            .collect()
    };
    assert_eq!(only("R10"), vec![vec![0x02]], "R10 is not R1");
    assert_eq!(only("R"), vec![vec![0x04]], "R is not R1");
    assert!(only("R2").is_empty());
    assert!(only("").is_empty(), "a CA-level certificate has no holder");
}

/// key_owner after add_certificate with and without a key; CA-level certificates have none.
pub fn key_owners<S: Storage>(s: &S) {
    let c1 = holder_cert(SIGNING, &[0x01], "R1", 0);
    let c2 = holder_cert(AUTH, &[0x01], "R2", 0);
    let c3 = holder_cert(AUTH, &[0x02], "R3", 0);
    let ca = ca_cert(SIGNING, &[0x09]);
    let given: KeyFingerprint = [7; 32];
    commit(s, &|t| {
        t.add_certificate(&c1, Some(&key_of(&c1)))?;
        t.add_certificate(&c2, Some(&given))?;
        t.add_certificate(&c3, None)?;
        t.add_certificate(&ca, Some(&key_of(&ca)))
    });
    let owner = |holder: &str, hierarchy| {
        Some(KeyOwner {
            holder: holder.into(),
            hierarchy,
        })
    };
    assert_eq!(ok(s.key_owner(&key_of(&c1))), owner("R1", SIGNING));
    assert_eq!(
        ok(s.key_owner(&given)),
        owner("R2", AUTH),
        "the key given is indexed"
    );
    assert_eq!(ok(s.key_owner(&key_of(&c2))), None);
    assert_eq!(ok(s.key_owner(&key_of(&c3))), None, "no key given");
    assert_eq!(
        ok(s.key_owner(&key_of(&ca))),
        None,
        "a CA-level certificate's key is certified to no holder"
    );
    assert_eq!(ok(s.key_owner(&[0; 32])), None);
    commit(s, &|t| {
        assert_eq!(t.key_owner(&key_of(&c1))?, owner("R1", SIGNING));
        assert_eq!(t.key_owner(&given)?, owner("R2", AUTH));
        assert_eq!(t.key_owner(&key_of(&c3))?, None);
        Ok(())
    });
}

// ----- statuses and CRLs -------------------------------------------------------------------

/// good → held → revoked → good: status, Tx::status, the CRL entry and the holder list.
pub fn status_lifecycle<S: Storage>(s: &S) {
    let c = holder_cert(SIGNING, &[0x10], "R1", 3);
    add(s, &[&c]);
    assert!(revoked_list(s, SIGNING, Scope::Partition(3)).is_empty());

    let hold = held(100);
    set_status(s, &c, hold);
    assert_eq!(ok(s.status(SIGNING, &c.serial)), Some(hold));
    let listed = revoked_list(s, SIGNING, Scope::Partition(3));
    assert_eq!(listed, vec![entry(&c, &hold)]);
    let e = listed[0].entry;
    assert_eq!(
        (e.reason, e.revoked_at, e.invalidity, e.not_after),
        (
            Reason::CertificateHold,
            at(100).unix_timestamp(),
            None,
            c.not_after.unix_timestamp()
        )
    );
    commit(s, &|t| {
        assert_eq!(t.status(SIGNING, &c.serial)?, Some(hold));
        Ok(())
    });

    let rev = revoked(Reason::KeyCompromise, 200);
    set_status(s, &c, rev);
    assert_eq!(ok(s.status(SIGNING, &c.serial)), Some(rev));
    let listed = revoked_list(s, SIGNING, Scope::Partition(3));
    assert_eq!(
        listed,
        vec![entry(&c, &rev)],
        "the entry follows the status"
    );
    assert_eq!(
        listed[0].entry.invalidity,
        Some(at(200 - 3600).unix_timestamp())
    );
    assert_eq!(ok(s.holder_certificates("R1"))[0].1, rev);

    set_status(s, &c, StatusRecord::GOOD);
    assert_eq!(ok(s.status(SIGNING, &c.serial)), Some(StatusRecord::GOOD));
    assert!(
        revoked_list(s, SIGNING, Scope::Partition(3)).is_empty(),
        "good again: off the CRL"
    );
    assert_eq!(ok(s.holder_certificates("R1"))[0].1, StatusRecord::GOOD);
}

/// Municipal partitions beside serial ones (a store made before municipal partitions, with
/// certificates issued since): each lists its own entries only, in serial order — names
/// that are prefixes of one another or repeat across prefectures do not bleed —, certificate
/// records keep their partition, dirty flags and CRL state work per partition, and
/// `crl_scopes` lists every CRL with a state or a flag in [`Scope`]'s order.
pub fn municipal_partitions<S: Storage>(s: &S) {
    let scopes: Vec<Scope> = PLACES.iter().map(|(p, m)| place(p, m)).collect();
    let mut certs = Vec::new();
    for (i, scope) in scopes.iter().enumerate() {
        for (j, h) in Hierarchy::ALL.into_iter().enumerate() {
            let i = u8::try_from(i).expect("few places");
            let j = u8::try_from(j).expect("two hierarchies");
            // Serials repeat across hierarchies, as sequential serials do.
            for serial in [vec![0x10 + i, 0x01], vec![0x10 + i], vec![0x05, i, j]] {
                certs.push(municipal_cert(h, &serial, &format!("R{i}"), scope));
            }
        }
    }
    let old = holder_cert(SIGNING, &[0x66, 0x01], "R9", 7);
    let good = municipal_cert(SIGNING, &[0x7F], "R1", &scopes[0]);
    let mut all: Vec<&CertRecord> = certs.iter().collect();
    all.extend([&old, &good]);
    add(s, &all);
    for c in &all {
        let back = ok(s.certificate(c.hierarchy, &c.serial)).expect("stored");
        assert_eq!(
            back.partition, c.partition,
            "the record keeps its partition"
        );
    }
    let rev = revoked(Reason::KeyCompromise, 10);
    let hold = held(20);
    commit(s, &|t| {
        for (k, c) in certs.iter().enumerate() {
            t.set_status(c, if k % 2 == 0 { &rev } else { &hold })?;
        }
        t.set_status(&old, &rev)
    });
    for (i, scope) in scopes.iter().enumerate() {
        for h in Hierarchy::ALL {
            let mut want: Vec<Revoked> = certs
                .iter()
                .enumerate()
                .filter(|(_, c)| c.hierarchy == h && c.partition.as_ref() == Some(scope))
                .map(|(k, c)| entry(c, if k % 2 == 0 { &rev } else { &hold }))
                .collect();
            want.sort_by(|a, b| a.serial.cmp(&b.serial));
            assert_eq!(want.len(), 3, "{h} {scope:?}");
            assert_eq!(
                revoked_list(s, h, scope.clone()),
                want,
                "{h} {} ({i}): its own entries, in serial order",
                scope.path()
            );
        }
    }
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Partition(7)),
        vec![entry(&old, &rev)],
        "the serial partition of a certificate issued under the old scheme"
    );
    assert!(revoked_list(s, SIGNING, place("Ibaraki-ken", "Mito-shi")).is_empty());
    assert!(revoked_list(s, SIGNING, Scope::Ca).is_empty());

    // Dirty flags: every partition that got an entry, in Scope order (serial partitions,
    // municipal partitions by prefecture then municipality, then the CA-level CRL).
    let mut want: Vec<CrlId> = Hierarchy::ALL
        .into_iter()
        .flat_map(|h| scopes.iter().map(move |sc| (h, 1, sc.clone())))
        .chain([(SIGNING, 1, Scope::Partition(7))])
        .collect();
    want.sort();
    assert_eq!(ok(s.dirty_partitions()), want);
    assert_eq!(ok(s.crl_scopes()), want, "dirty CRLs are known CRLs");
    for (h, _, sc) in &want {
        commit(s, &|t| {
            t.put_crl_state(*h, 1, sc.clone(), format!("{h} {}", sc.path()).as_bytes())?;
            t.clear_crl_dirty(*h, 1, sc.clone())
        });
    }
    assert_eq!(ok(s.dirty_partitions()), vec![]);
    assert_eq!(ok(s.crl_scopes()), want, "published CRLs stay known");
    for (h, _, sc) in &want {
        assert_eq!(
            ok(s.crl_state(*h, 1, sc.clone())),
            Some(format!("{h} {}", sc.path()).into_bytes())
        );
    }
    let new = place("Ibaraki-ken", "Mito-shi");
    commit(s, &|t| t.set_crl_dirty(AUTH, 1, new.clone()));
    assert_eq!(ok(s.dirty_partitions()), vec![(AUTH, 1, new.clone())]);
    assert!(ok(s.crl_scopes()).contains(&(AUTH, 1, new.clone())));
    assert_eq!(ok(s.crl_state(AUTH, 1, new)), None);
    // A good certificate is on no list; the indexes agree.
    assert!(!revoked_list(s, SIGNING, scopes[0].clone())
        .iter()
        .any(|r| r.serial == good.serial));
    assert_eq!(ok(s.check_consistency()), all.len() as u64);
}

/// for_each_revoked: by hierarchy and CRL (partition or CA-level), in serial order.
pub fn revoked_listing<S: Storage>(s: &S) {
    let p3: Vec<CertRecord> = [&[0x30][..], &[0x05][..], &[0x20, 0x00][..], &[0x20][..]]
        .iter()
        .map(|serial| holder_cert(SIGNING, serial, "R1", 3))
        .collect();
    let good_p3 = holder_cert(SIGNING, &[0x50], "R1", 3);
    let p4 = holder_cert(SIGNING, &[0x40], "R2", 4);
    let p2 = holder_cert(SIGNING, &[0x21], "R2", 2);
    let p0 = holder_cert(SIGNING, &[0x01], "R3", 0);
    // The highest serial partition the policy allows (crl.partitions ≤ 4096).
    let high = holder_cert(SIGNING, &[0x02], "R3", 4095);
    let auth_p3 = holder_cert(AUTH, &[0x31], "R1", 3);
    let ca_s = ca_cert(SIGNING, &[0x60]);
    let ca_a = ca_cert(AUTH, &[0x61]);
    let mut all: Vec<&CertRecord> = p3.iter().collect();
    all.extend([&good_p3, &p4, &p2, &p0, &high, &auth_p3, &ca_s, &ca_a]);
    add(s, &all);
    let rev = revoked(Reason::Superseded, 10);
    let hold = held(20);
    let ca_rev = revoked(Reason::CaCompromise, 30);
    commit(s, &|t| {
        for c in &p3 {
            t.set_status(c, &rev)?;
        }
        for c in [&p4, &p0, &high, &auth_p3] {
            t.set_status(c, &rev)?;
        }
        t.set_status(&p2, &hold)?;
        t.set_status(&ca_s, &ca_rev)?;
        t.set_status(&ca_a, &ca_rev)
    });
    let serials = |h, scope: Scope| -> Vec<Vec<u8>> {
        revoked_list(s, h, scope.clone())
            .into_iter()
            .map(|r| r.serial)
            .collect()
    };
    assert_eq!(
        serials(SIGNING, Scope::Partition(3)),
        vec![vec![0x05], vec![0x20], vec![0x20, 0x00], vec![0x30]],
        "partition 3 in serial order, without the good certificate or other hierarchies"
    );
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Partition(3)),
        [&p3[1], &p3[3], &p3[2], &p3[0]]
            .map(|c| entry(c, &rev))
            .to_vec()
    );
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Partition(2)),
        vec![entry(&p2, &hold)]
    );
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Partition(4)),
        vec![entry(&p4, &rev)]
    );
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Partition(0)),
        vec![entry(&p0, &rev)]
    );
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Partition(4095)),
        vec![entry(&high, &rev)]
    );
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Ca),
        vec![entry(&ca_s, &ca_rev)],
        "a certificate without a partition is on the CA-level CRL, and only there"
    );
    assert_eq!(
        revoked_list(s, AUTH, Scope::Partition(3)),
        vec![entry(&auth_p3, &rev)]
    );
    assert_eq!(
        revoked_list(s, AUTH, Scope::Ca),
        vec![entry(&ca_a, &ca_rev)]
    );
    for (h, p) in [
        (SIGNING, 1),
        (SIGNING, 5),
        (SIGNING, 4094),
        (AUTH, 0),
        (AUTH, 4),
    ] {
        assert!(
            serials(h, Scope::Partition(p)).is_empty(),
            "{h} partition {p}"
        );
    }
}

/// Listings longer than any engine's internal chunk come out whole and in order.
pub fn many_entries_stream_in_order<S: Storage>(s: &S) {
    const N: u16 = 700;
    let certs: Vec<CertRecord> = (0..N)
        .rev()
        .map(|i| holder_cert(AUTH, &i.to_be_bytes(), "R1", 6))
        .collect();
    let rev = revoked(Reason::Unspecified, 5);
    commit(s, &|t| {
        for c in &certs {
            t.add_certificate(c, Some(&key_of(c)))?;
            t.set_status(c, &rev)?;
        }
        Ok(())
    });
    let want: Vec<Vec<u8>> = (0..N).map(|i| i.to_be_bytes().to_vec()).collect();
    let listed: Vec<Vec<u8>> = all_certificates(s).into_iter().map(|(_, s)| s).collect();
    assert_eq!(listed, want);
    let revoked: Vec<Vec<u8>> = revoked_list(s, AUTH, Scope::Partition(6))
        .into_iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(revoked, want);
    assert_eq!(ok(s.holder_certificates("R1")).len(), usize::from(N));
}

/// A for_each callback may read and write the store; its error stops the walk and comes back.
pub fn callbacks_may_use_the_store<S: Storage>(s: &S) {
    let certs: Vec<CertRecord> = (1..=5u8)
        .map(|i| holder_cert(SIGNING, &[i], "R1", 1))
        .collect();
    add(s, &certs.iter().collect::<Vec<_>>());
    let mut seen = 0;
    ok(s.for_each_certificate(&mut |c| {
        assert!(s.certificate(c.hierarchy, &c.serial)?.is_some());
        assert_eq!(s.status(c.hierarchy, &c.serial)?, Some(StatusRecord::GOOD));
        seen += 1;
        Ok(())
    }));
    assert_eq!(seen, 5);
    let mut calls = 0;
    let e = s
        .for_each_certificate(&mut |_| {
            calls += 1;
            if calls == 2 {
                return Err(Error::Invalid("stop here".into()));
            }
            Ok(())
        })
        .expect_err("the callback's error comes back");
    assert!(matches!(&e, Error::Invalid(m) if m == "stop here"), "{e:?}");
    assert_eq!(calls, 2, "the walk stops at the error");

    let rev = revoked(Reason::KeyCompromise, 1);
    commit(s, &|t| {
        for c in &certs {
            t.set_status(c, &rev)?;
        }
        Ok(())
    });
    let mut seen = 0;
    ok(
        s.for_each_revoked(SIGNING, 1, Scope::Partition(1), &mut |r| {
            seen += 1;
            // A write from inside the walk (the CRL publisher clears what it published).
            s.transact(&|t| t.put_crl_state(SIGNING, 1, Scope::Partition(1), &r.serial))?;
            assert_eq!(s.status(SIGNING, &r.serial)?, Some(rev));
            Ok(())
        }),
    );
    assert_eq!(seen, 5);
    assert_eq!(
        ok(s.crl_state(SIGNING, 1, Scope::Partition(1))),
        Some(vec![5])
    );
    let mut calls = 0;
    let e = s
        .for_each_revoked(SIGNING, 1, Scope::Partition(1), &mut |_| {
            calls += 1;
            Err(Error::Retry)
        })
        .expect_err("the callback's error comes back");
    assert!(matches!(e, Error::Retry), "{e:?}");
    assert_eq!(calls, 1);
}

/// set_status marks exactly its CRL dirty, in the same unit of work; clear_crl_dirty clears;
/// Tx::crl_dirty reads it; dirty_partitions lists in (hierarchy, partitions, CA-level) order.
pub fn dirty_marking<S: Storage>(s: &S) {
    let c = holder_cert(SIGNING, &[0x31], "R1", 3);
    let a = holder_cert(AUTH, &[0x01], "R1", 0);
    let ca = ca_cert(AUTH, &[0x02]);
    add(s, &[&c, &a, &ca]);
    assert!(ok(s.dirty_partitions()).is_empty());
    let clear = |h, scope: Scope| commit(s, &|t| t.clear_crl_dirty(h, 1, scope.clone()));

    commit(s, &|t| {
        for (h, scope) in all_scopes() {
            assert!(
                !t.crl_dirty(h, 1, scope.clone())?,
                "{h} {scope:?} dirty before anything"
            );
        }
        t.set_status(&c, &revoked(Reason::KeyCompromise, 1))?;
        for (h, scope) in all_scopes() {
            let want = h == SIGNING && scope == Scope::Partition(3);
            assert_eq!(
                t.crl_dirty(h, 1, scope.clone())?,
                want,
                "{h} {scope:?} in the same body"
            );
        }
        Ok(())
    });
    assert_eq!(
        ok(s.dirty_partitions()),
        vec![(SIGNING, 1, Scope::Partition(3))]
    );
    commit(s, &|t| {
        assert!(t.crl_dirty(SIGNING, 1, Scope::Partition(3))?);
        assert!(!t.crl_dirty(AUTH, 1, Scope::Partition(3))?);
        assert!(!t.crl_dirty(SIGNING, 1, Scope::Ca)?);
        Ok(())
    });
    clear(SIGNING, Scope::Partition(3));
    assert!(ok(s.dirty_partitions()).is_empty());
    commit(s, &|t| {
        assert!(!t.crl_dirty(SIGNING, 1, Scope::Partition(3))?);
        Ok(())
    });

    set_status(s, &a, held(2));
    assert_eq!(
        ok(s.dirty_partitions()),
        vec![(AUTH, 1, Scope::Partition(0))],
        "a hold"
    );
    clear(AUTH, Scope::Partition(0));
    set_status(s, &c, StatusRecord::GOOD);
    assert_eq!(
        ok(s.dirty_partitions()),
        vec![(SIGNING, 1, Scope::Partition(3))],
        "taking a certificate off its CRL changes the CRL"
    );
    clear(SIGNING, Scope::Partition(3));
    set_status(s, &ca, revoked(Reason::CaCompromise, 3));
    assert_eq!(
        ok(s.dirty_partitions()),
        vec![(AUTH, 1, Scope::Ca)],
        "a CA-level revocation"
    );
    clear(AUTH, Scope::Ca);
    assert!(ok(s.dirty_partitions()).is_empty());

    let marks = [
        (AUTH, Scope::Ca),
        (SIGNING, Scope::Partition(10)),
        (AUTH, Scope::Partition(0)),
        (SIGNING, Scope::Ca),
        (SIGNING, Scope::Partition(2)),
        (SIGNING, Scope::Partition(256)),
    ];
    commit(s, &|t| {
        for (h, scope) in marks.clone() {
            t.set_crl_dirty(h, 1, scope.clone())?;
        }
        t.set_crl_dirty(SIGNING, 1, Scope::Partition(2))
    });
    assert_eq!(
        ok(s.dirty_partitions()),
        vec![
            (SIGNING, 1, Scope::Partition(2)),
            (SIGNING, 1, Scope::Partition(10)),
            (SIGNING, 1, Scope::Partition(256)),
            (SIGNING, 1, Scope::Ca),
            (AUTH, 1, Scope::Partition(0)),
            (AUTH, 1, Scope::Ca),
        ]
    );
    clear(SIGNING, Scope::Partition(10));
    clear(AUTH, Scope::Partition(5));
    assert_eq!(
        ok(s.dirty_partitions()),
        vec![
            (SIGNING, 1, Scope::Partition(2)),
            (SIGNING, 1, Scope::Partition(256)),
            (SIGNING, 1, Scope::Ca),
            (AUTH, 1, Scope::Partition(0)),
            (AUTH, 1, Scope::Ca),
        ]
    );
    // The CRL's state and its dirty mark are separate.
    commit(s, &|t| {
        t.put_crl_state(SIGNING, 1, Scope::Partition(2), b"published")
    });
    assert_eq!(
        ok(s.dirty_partitions()).len(),
        5,
        "a state write marks nothing"
    );
    clear(SIGNING, Scope::Partition(2));
    assert_eq!(
        ok(s.crl_state(SIGNING, 1, Scope::Partition(2))),
        Some(b"published".to_vec()),
        "clearing the mark keeps the state"
    );
    assert_eq!(ok(s.dirty_partitions()).len(), 4);
}

/// put_crl_state and crl_state, per (hierarchy, scope).
pub fn crl_state<S: Storage>(s: &S) {
    for (h, scope) in all_scopes() {
        assert_eq!(ok(s.crl_state(h, 1, scope.clone())), None);
    }
    commit(s, &|t| {
        t.put_crl_state(SIGNING, 1, Scope::Partition(0), b"one")
    });
    for (h, scope) in all_scopes() {
        let want = (h == SIGNING && scope == Scope::Partition(0)).then(|| b"one".to_vec());
        assert_eq!(ok(s.crl_state(h, 1, scope.clone())), want, "{h} {scope:?}");
    }
    let binary = vec![0u8, 0xFF, b'/', b'd', 0, 1];
    commit(s, &|t| {
        t.put_crl_state(SIGNING, 1, Scope::Partition(0), b"two")?;
        t.put_crl_state(SIGNING, 1, Scope::Ca, b"")?;
        t.put_crl_state(AUTH, 1, Scope::Partition(1), &binary)
    });
    assert_eq!(
        ok(s.crl_state(SIGNING, 1, Scope::Partition(0))),
        Some(b"two".to_vec())
    );
    assert_eq!(
        ok(s.crl_state(SIGNING, 1, Scope::Ca)),
        Some(Vec::new()),
        "an empty state is a state"
    );
    assert_eq!(ok(s.crl_state(AUTH, 1, Scope::Partition(1))), Some(binary));
    assert_eq!(ok(s.crl_state(AUTH, 1, Scope::Partition(0))), None);
    assert_eq!(ok(s.crl_state(AUTH, 1, Scope::Ca)), None);
    assert!(ok(s.dirty_partitions()).is_empty());
}

/// A second add_certificate of a (hierarchy, serial) the store holds is refused with
/// `Error::SerialTaken` (a different certificate or the identical one) and its unit of work
/// changes nothing: the first record, its status, its holder's list and key stay (issue #13).
pub fn serial_never_replaced<S: Storage>(s: &S) {
    let first = holder_cert(SIGNING, &[0x0D], "R1", 1);
    add(s, &[&first]);
    let other = holder_cert(SIGNING, &[0x0D], "R2", 2);
    assert_ne!(first.der, other.der);
    for again in [&other, &first] {
        let refused = s.transact(&|t| {
            t.note_serial(SIGNING, 99)?;
            t.put_resident(&resident("R2", 1))?;
            t.add_certificate(again, Some(&key_of(again)))
        });
        match refused {
            Err(Error::SerialTaken { hierarchy, serial }) => {
                assert_eq!((hierarchy, serial.as_str()), (SIGNING, "0D"));
            }
            other => panic!("a taken serial was not refused: {other:?}"),
        }
    }
    let kept = ok(s.certificate(SIGNING, &[0x0D])).expect("the first record is gone");
    assert_eq!(
        (kept.der, kept.holder),
        (first.der.clone(), first.holder.clone())
    );
    assert_eq!(ok(s.status(SIGNING, &[0x0D])), Some(StatusRecord::GOOD));
    assert_eq!(ok(s.holder_certificates("R1")).len(), 1);
    assert!(ok(s.holder_certificates("R2")).is_empty());
    assert_eq!(ok(s.key_owner(&key_of(&other))), None);
    assert_eq!(
        ok(s.serial_counter(SIGNING)),
        0,
        "the refused unit of work left its counter"
    );
    assert!(
        ok(s.resident("R2")).is_none(),
        "the refused unit of work left its resident"
    );
    // The same serial in the other hierarchy is another certificate.
    add(s, &[&holder_cert(AUTH, &[0x0D], "R1", 1)]);
    assert!(ok(s.certificate(AUTH, &[0x0D])).is_some());
}

/// note_serial raises the counter to the highest value noted, never lowers it; per hierarchy.
pub fn serial_counter<S: Storage>(s: &S) {
    assert_eq!(
        (ok(s.serial_counter(SIGNING)), ok(s.serial_counter(AUTH))),
        (0, 0)
    );
    commit(s, &|t| t.note_serial(SIGNING, 5));
    assert_eq!(ok(s.serial_counter(SIGNING)), 5);
    assert_eq!(ok(s.serial_counter(AUTH)), 0);
    commit(s, &|t| t.note_serial(SIGNING, 3));
    assert_eq!(ok(s.serial_counter(SIGNING)), 5, "never lowered");
    commit(s, &|t| {
        t.note_serial(SIGNING, 9)?;
        t.note_serial(SIGNING, 7)?;
        t.note_serial(AUTH, 2)
    });
    assert_eq!(
        ok(s.serial_counter(SIGNING)),
        9,
        "the highest of one unit of work"
    );
    assert_eq!(ok(s.serial_counter(AUTH)), 2);
    let e = s.transact(&|t| {
        t.note_serial(SIGNING, 100)?;
        Err(Error::Retry)
    });
    assert!(matches!(e, Err(Error::Retry)));
    assert_eq!(
        ok(s.serial_counter(SIGNING)),
        9,
        "an aborted note changes nothing"
    );
    commit(s, &|t| t.note_serial(AUTH, u64::MAX));
    assert_eq!(ok(s.serial_counter(AUTH)), u64::MAX);
    assert_eq!(ok(s.serial_counter(SIGNING)), 9);
}

// ----- the register ------------------------------------------------------------------------

/// put_resident, resident (Storage and Tx).
pub fn residents<S: Storage>(s: &S) {
    assert!(ok(s.resident("R1")).is_none());
    let r1 = resident("R1", 0);
    commit(s, &|t| t.put_resident(&r1));
    assert_eq!(ok(s.resident("R1")).map(|r| json(&r)), Some(json(&r1)));
    assert!(ok(s.resident("R10")).is_none());
    assert!(ok(s.resident("R")).is_none());
    let mut r1b = resident("R1", 1);
    r1b.card_lost = true;
    r1b.departure = Some(time::macros::date!(2027 - 01 - 02));
    // An emigrant after the continued-use procedure (reference §8): the annex record.
    r1b.state = crate::records::ResidentState::Emigrated;
    r1b.continued_use = true;
    r1b.current.insert(SIGNING, "0A".into());
    // A holder with a phone (its certificates apart from the card's) and an open challenge.
    r1b.phone.insert(AUTH, "0B".into());
    r1b.phone_challenge = Some(crate::records::PhoneChallenge {
        value: "ab".repeat(32),
        issued_at: at(7),
    });
    let r10 = resident("R10", 4);
    commit(s, &|t| {
        assert_eq!(t.resident("R1")?.map(|r| json(&r)), Some(json(&r1)));
        t.put_resident(&r1b)?;
        t.put_resident(&r10)
    });
    assert_eq!(ok(s.resident("R1")).map(|r| json(&r)), Some(json(&r1b)));
    assert_eq!(ok(s.resident("R10")).map(|r| json(&r)), Some(json(&r10)));
    commit(s, &|t| {
        assert_eq!(t.resident("R1")?.map(|r| r.version), Some(1));
        assert!(t.resident("R2")?.is_none());
        Ok(())
    });
    // Every resident, in id order (byte order: "R1" < "R10" < "R9").
    let r9 = resident("R9", 2);
    commit(s, &|t| t.put_resident(&r9));
    let mut all = Vec::new();
    ok(s.for_each_resident(&mut |r| {
        all.push(json(&r));
        Ok(())
    }));
    assert_eq!(all, [json(&r1b), json(&r10), json(&r9)]);
}

/// residents_by_identity: a lookup by name (whitespace ignored) and date of birth, in id
/// order, whatever the state; a changed name moves the resident, an aborted unit of work
/// leaves the index as it was.
pub fn residents_by_identity<S: Storage>(s: &S) {
    let birth = time::macros::date!(1990 - 02 - 03);
    let ids = |name: &str, birth| -> Vec<String> {
        ok(s.residents_by_identity(name, birth))
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert!(ids("試験 花子", birth).is_empty());
    let r2 = resident("R2", 0);
    let mut r1 = resident("R1", 0);
    r1.state = crate::records::ResidentState::Deceased;
    let mut other = resident("R3", 0);
    other.attributes = serde_json::from_value(serde_json::json!({
        "name": "試験 太郎", "birth": "1990-02-03", "sex": "1", "address": "東京都千代田区霞が関2-1-2",
    }))
    .expect("attributes");
    commit(s, &|t| {
        t.put_resident(&r2)?;
        t.put_resident(&r1)?;
        t.put_resident(&other)
    });
    // Whitespace of any kind (the ideographic space too) is ignored; the birth date counts.
    assert_eq!(ids("試験 花子", birth), ["R1", "R2"]);
    assert_eq!(ids("試験\u{3000}花子", birth), ["R1", "R2"]);
    assert_eq!(ids("試験花子 ", birth), ["R1", "R2"]);
    assert!(ids("試験 花子", time::macros::date!(1990 - 02 - 04)).is_empty());
    assert_eq!(ids("試験太郎", birth), ["R3"]);
    // The full record comes back.
    assert_eq!(
        ok(s.residents_by_identity("試験 花子", birth))
            .iter()
            .map(json)
            .collect::<Vec<_>>(),
        [json(&r1), json(&r2)]
    );
    // A name change moves the resident; a change of anything else keeps it where it was.
    let mut renamed = resident("R2", 1);
    renamed.attributes = other.attributes.clone();
    let mut moved = resident("R1", 1);
    moved.municipality = "港区".into();
    commit(s, &|t| {
        t.put_resident(&renamed)?;
        t.put_resident(&moved)
    });
    assert_eq!(ids("試験 花子", birth), ["R1"]);
    assert_eq!(ids("試験 太郎", birth), ["R2", "R3"]);
    // An aborted unit of work changes nothing.
    let back = resident("R2", 2);
    let r = s.transact(&|t| {
        t.put_resident(&back)?;
        Err(crate::error::Error::Invalid("abort".into()))
    });
    assert!(r.is_err());
    assert_eq!(ids("試験 花子", birth), ["R1"]);
    assert_eq!(ids("試験 太郎", birth), ["R2", "R3"]);
}

/// schedule, unschedule, due_events (inclusive, earliest first, then resident id),
/// next_event.
pub fn scheduling<S: Storage>(s: &S) {
    assert_eq!(ok(s.next_event()), None);
    assert!(ok(s.due_events(at(1_000_000))).is_empty());
    let ev = |secs, id: &str| Scheduled {
        at: at(secs),
        resident: id.into(),
        kind: ScheduledKind::Emigrate,
    };
    let (b5, a5, c10, a20) = (ev(5, "B"), ev(5, "A"), ev(10, "C"), ev(20, "A"));
    commit(s, &|t| {
        t.schedule(&c10)?;
        t.schedule(&b5)?;
        t.schedule(&a20)
    });
    commit(s, &|t| t.schedule(&a5));
    assert_eq!(ok(s.next_event()), Some(a5.clone()));
    assert!(ok(s.due_events(at(4))).is_empty());
    assert_eq!(
        ok(s.due_events(at(5))),
        vec![a5.clone(), b5.clone()],
        "due at `until` is due"
    );
    assert_eq!(
        ok(s.due_events(at(19))),
        vec![a5.clone(), b5.clone(), c10.clone()]
    );
    assert_eq!(
        ok(s.due_events(at(1_000_000))),
        vec![a5.clone(), b5.clone(), c10.clone(), a20.clone()]
    );
    commit(s, &|t| {
        t.unschedule(&a5)?;
        t.unschedule(&ev(7, "Z")) // not scheduled: nothing to do
    });
    assert_eq!(ok(s.next_event()), Some(b5.clone()));
    assert_eq!(ok(s.due_events(at(10))), vec![b5.clone(), c10.clone()]);
    commit(s, &|t| {
        t.unschedule(&b5)?;
        t.unschedule(&c10)?;
        t.unschedule(&a20)
    });
    assert_eq!(ok(s.next_event()), None);
    assert!(ok(s.due_events(at(1_000_000))).is_empty());
}

// ----- the audit trail ---------------------------------------------------------------------

/// Records appended over several units of work form one chain that verifies against the head;
/// audit_records pages by sequence.
pub fn audit_chain<S: Storage>(s: &S) {
    assert_eq!(ok(s.audit_head()), None);
    assert!(ok(s.audit_records(0, 10)).is_empty());
    assert!(verified_chain(s).is_empty());
    commit(s, &|t| {
        crate::storage::audit(t, at(1), "init", "a", "first")
    });
    commit(s, &|t| {
        t.audit(intent("issue", "b"))?;
        t.audit(intent("issue", "c"))?;
        t.audit(intent("revoke", "d"))
    });
    commit(s, &|t| t.put_crl_state(SIGNING, 1, Scope::Ca, b"no audit"));
    commit(s, &|t| {
        t.audit(intent("hold", "e"))?;
        t.note_serial(SIGNING, 1)?;
        t.audit(intent("event:emigrate", "f"))
    });
    assert_eq!(verified_chain(s), ["a", "b", "c", "d", "e", "f"]);
    let all = ok(s.audit_records(0, usize::MAX));
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        (all[0].at, all[0].action.as_str(), all[0].detail.as_str()),
        (at(1), "init", "first")
    );
    assert_eq!(
        (
            all[3].at,
            all[3].action.as_str(),
            all[3].subject.as_str(),
            all[3].detail.as_str()
        ),
        (at(10), "revoke", "d", "detail of d")
    );
    let page = |from, limit| -> Vec<u64> {
        ok(s.audit_records(from, limit))
            .into_iter()
            .map(|r| r.seq)
            .collect()
    };
    assert_eq!(page(2, 2), [2, 3]);
    assert_eq!(page(5, 10), [5]);
    assert!(page(6, 10).is_empty());
    assert!(page(0, 0).is_empty());
    assert!(page(u64::MAX, 1).is_empty());
    assert_eq!(ok(s.audit_records(4, 1)), vec![all[4].clone()]);
}

/// Audit records of a unit of work that fails never appear; the chain goes on after it.
pub fn aborted_audit_leaves_no_trace<S: Storage>(s: &S) {
    commit(s, &|t| {
        t.audit(intent("init", "a"))?;
        t.audit(intent("issue", "b"))
    });
    let head = ok(s.audit_head());
    let e = s.transact(&|t| {
        t.audit(intent("issue", "lost-1"))?;
        t.audit(intent("issue", "lost-2"))?;
        Err(Error::Invalid("planned".into()))
    });
    assert!(matches!(e, Err(Error::Invalid(_))));
    assert_eq!(ok(s.audit_head()), head, "the head did not move");
    assert_eq!(ok(s.audit_records(0, 100)).len(), 2);
    commit(s, &|t| t.audit(intent("revoke", "c")));
    assert_eq!(verified_chain(s), ["a", "b", "c"]);
    assert_eq!(ok(s.audit_head()).map(|h| h.seq), Some(2));
}

/// import_audit: records copied verbatim (hashes kept) follow the head, in order with linked
/// records of the same body; a record that does not follow the head is refused and the body
/// changes nothing.
pub fn audit_import<S: Storage>(s: &S) {
    // A source chain, linked by the pure code; the last record's detail is then changed, as
    // a tampered source would hold it.
    let mut source = Vec::new();
    let mut head: Option<Head> = None;
    for subject in ["a", "b", "c"] {
        let (record, next) = ok(crate::audit::link(head.as_ref(), &intent("issue", subject)));
        source.push(record);
        head = Some(next);
    }
    commit(s, &|t| {
        t.import_audit(source[0].clone())?;
        t.import_audit(source[1].clone())
    });
    assert_eq!(ok(s.audit_records(0, 10)), source[..2]);
    assert_eq!(
        ok(s.audit_head()),
        Some(Head {
            seq: 1,
            hash: source[1].hash.clone()
        })
    );
    // Out of order (again the first), or skipping one: refused, nothing written.
    for wrong in [&source[0], &source[2]] {
        let mut skipped = wrong.clone();
        if wrong.seq == 2 {
            skipped.prev = source[0].hash.clone();
        }
        let e = s.transact(&|t| {
            t.audit(intent("issue", "lost"))?;
            t.import_audit(skipped.clone())
        });
        assert!(e.is_err(), "record {} imported out of order", skipped.seq);
        assert_eq!(ok(s.audit_records(0, 10)).len(), 2);
    }
    // Imported then linked in one body: in that order, the linked one after the import.
    commit(s, &|t| {
        t.import_audit(source[2].clone())?;
        t.audit(intent("revoke", "d"))
    });
    let all = ok(s.audit_records(0, 10));
    assert_eq!(all[..3], source[..]);
    assert_eq!(all[3].prev, source[2].hash);
    assert_eq!(verified_chain(s), ["a", "b", "c", "d"]);
    // Verbatim: a changed record keeps its (now wrong) hash, and verify says so.
    let mut tampered = ok(crate::audit::link(
        ok(s.audit_head()).as_ref(),
        &intent("x", "e"),
    ))
    .0;
    tampered.detail = "changed".into();
    commit(s, &|t| t.import_audit(tampered.clone()));
    assert_eq!(ok(s.audit_records(4, 1)), vec![tampered.clone()]);
    let records = ok(s.audit_records(0, 10)).into_iter().map(Ok);
    assert!(matches!(
        crate::audit::verify(records, ok(s.audit_head())),
        Err(Error::AuditBroken { seq: 4, .. })
    ));
}

// ----- platform ----------------------------------------------------------------------------

/// put_operator, operator, operator_named, operators (id order), bind_operator_key,
/// operator_by_key; Storage and Tx.
pub fn operators<S: Storage>(s: &S) {
    assert!(ok(s.operators()).is_empty());
    let b = operator("pf-b", "Beta");
    let a = operator("pf-a", "Alpha");
    commit(s, &|t| {
        assert!(t.operator("pf-b")?.is_none());
        t.put_operator(&b)?;
        t.put_operator(&a)
    });
    // Something of every other platform kind, which operators() must not list.
    commit(s, &|t| {
        t.put_service_provider(&sp("sp-1", "pf-a", "Shop"))?;
        t.put_consent(&consent("c-1", "R1", "sp-1", "n-1"))?;
        t.append_access(&access("R1", 1, "validity"), 0)
    });
    assert_eq!(ok(s.operator("pf-b")), Some(b.clone()));
    assert_eq!(ok(s.operator("pf-")), None);
    assert_eq!(ok(s.operators()), vec![a.clone(), b.clone()], "id order");
    assert_eq!(ok(s.operator_named("Alpha")), Some("pf-a".into()));
    assert_eq!(ok(s.operator_named("Beta")), Some("pf-b".into()));
    assert_eq!(ok(s.operator_named("pf-a")), None);
    assert_eq!(ok(s.operator_by_key("ab12")), None);
    commit(s, &|t| {
        assert_eq!(t.operator("pf-a")?, Some(a.clone()));
        assert_eq!(t.operator_named("Beta")?, Some("pf-b".into()));
        t.bind_operator_key("ab12", "pf-a")?;
        t.bind_operator_key("cd34", "pf-b")?;
        assert_eq!(t.operator_by_key("ab12")?, Some("pf-a".into()));
        Ok(())
    });
    assert_eq!(ok(s.operator_by_key("ab12")), Some("pf-a".into()));
    assert_eq!(ok(s.operator_by_key("cd34")), Some("pf-b".into()));
    assert_eq!(ok(s.operator_by_key("ab")), None);
    let mut b2 = b.clone();
    b2.state = PfState::Suspended;
    b2.keys = vec!["cd34".into()];
    // The newest client certificate's notAfter (the renewal window) round-trips.
    b2.cert_not_after = Some(at(2));
    commit(s, &|t| t.put_operator(&b2));
    assert_eq!(ok(s.operator("pf-b")), Some(b2.clone()));
    assert_eq!(ok(s.operators()), vec![a, b2]);
    commit(s, &|t| {
        assert_eq!(t.operator_by_key("cd34")?, Some("pf-b".into()));
        assert_eq!(t.operator_named("Gamma")?, None);
        Ok(())
    });
}

/// put_service_provider, service_provider, service_providers (id order),
/// service_provider_named per operator.
pub fn service_providers<S: Storage>(s: &S) {
    assert!(ok(s.service_providers()).is_empty());
    let x = sp("sp-2", "pf-1", "Shop");
    let y = sp("sp-1", "pf-2", "Shop");
    let z = sp("sp-3", "pf-1", "Bank");
    commit(s, &|t| {
        t.put_operator(&operator("pf-1", "One"))?;
        t.put_service_provider(&x)?;
        t.put_service_provider(&y)?;
        assert_eq!(
            t.service_provider_named("pf-1", "Shop")?,
            Some("sp-2".into())
        );
        t.put_service_provider(&z)
    });
    assert_eq!(ok(s.service_provider("sp-2")), Some(x.clone()));
    assert_eq!(ok(s.service_provider("sp-9")), None);
    assert_eq!(
        ok(s.service_providers()),
        vec![y.clone(), x.clone(), z.clone()]
    );
    commit(s, &|t| {
        assert_eq!(
            t.service_provider_named("pf-1", "Shop")?,
            Some("sp-2".into())
        );
        assert_eq!(
            t.service_provider_named("pf-2", "Shop")?,
            Some("sp-1".into())
        );
        assert_eq!(
            t.service_provider_named("pf-1", "Bank")?,
            Some("sp-3".into())
        );
        assert_eq!(t.service_provider_named("pf-2", "Bank")?, None);
        assert_eq!(t.service_provider_named("pf-1", "Sho")?, None);
        assert_eq!(t.service_provider_named("pf", "1/Shop")?, None);
        Ok(())
    });
    let mut x2 = x.clone();
    x2.scopes.push(crate::records::platform::Scope::Successor);
    x2.state = SpState::Suspended;
    commit(s, &|t| {
        assert_eq!(t.service_provider("sp-2")?, Some(x.clone()));
        assert_eq!(t.service_provider("sp-9")?, None);
        t.put_service_provider(&x2)?;
        assert_eq!(t.service_provider("sp-2")?, Some(x2.clone()), "own write");
        Ok(())
    });
    assert_eq!(ok(s.service_provider("sp-2")), Some(x2.clone()));
    assert_eq!(ok(s.service_providers()), vec![y, x2, z]);
    assert_eq!(
        ok(s.operators()).len(),
        1,
        "service providers are not operators"
    );
}

/// put_consent, consent, consents_of (per holder and SP, id order), consent_nonce_used.
pub fn consents<S: Storage>(s: &S) {
    let c2 = consent("c-2", "R1", "sp-1", "n-2");
    let c1 = consent("c-1", "R1", "sp-1", "n-1");
    let other_sp = consent("c-3", "R1", "sp-10", "n-3");
    let other_holder = consent("c-4", "R10", "sp-1", "n-4");
    commit(s, &|t| {
        assert!(!t.consent_nonce_used("sp-1", "n-2")?);
        t.put_consent(&c2)?;
        assert!(t.consent_nonce_used("sp-1", "n-2")?);
        assert_eq!(t.consent("c-2")?, Some(c2.clone()));
        t.put_consent(&c1)?;
        t.put_consent(&other_sp)?;
        t.put_consent(&other_holder)
    });
    assert_eq!(ok(s.consent("c-1")), Some(c1.clone()));
    assert_eq!(ok(s.consent("c-")), None);
    assert_eq!(
        ok(s.consents_of("R1", "sp-1")),
        vec![c1.clone(), c2.clone()],
        "id order"
    );
    assert_eq!(ok(s.consents_of("R1", "sp-10")), vec![other_sp.clone()]);
    assert_eq!(ok(s.consents_of("R10", "sp-1")), vec![other_holder]);
    assert!(ok(s.consents_of("R1", "sp-2")).is_empty());
    assert!(ok(s.consents_of("R", "sp-1")).is_empty());
    commit(s, &|t| {
        assert!(t.consent_nonce_used("sp-1", "n-1")?);
        assert!(t.consent_nonce_used("sp-10", "n-3")?);
        assert!(!t.consent_nonce_used("sp-10", "n-1")?, "a nonce is per SP");
        assert!(!t.consent_nonce_used("sp-1", "n-")?);
        assert_eq!(t.consent("c-3")?, Some(other_sp.clone()));
        Ok(())
    });
    let mut c1w = c1.clone();
    c1w.withdrawn_at = Some(at(50));
    c1w.withdrawn_by = Some("holder".into());
    commit(s, &|t| t.put_consent(&c1w));
    assert_eq!(ok(s.consent("c-1")), Some(c1w.clone()));
    assert_eq!(
        ok(s.consents_of("R1", "sp-1")),
        vec![c1w, c2],
        "rewriting a consent keeps one entry"
    );
}

/// append_access, access_log (per holder, by time then sequence), access_count.
pub fn access_log<S: Storage>(s: &S) {
    assert!(ok(s.access_log("R1")).is_empty());
    assert_eq!(ok(s.access_count()), 0);
    let late = access("R1", 2, "validity");
    let early_b = access("R1", 1, "four-attributes");
    let early_a = access("R1", 1, "consent");
    let other = access("R10", 0, "successor");
    let before_epoch_offset = access("R1", -5, "consent-withdraw");
    commit(s, &|t| {
        t.append_access(&late, 0)?;
        t.append_access(&early_b, 5)?;
        t.append_access(&other, 0)
    });
    commit(s, &|t| {
        t.append_access(&early_a, 2)?;
        t.append_access(&before_epoch_offset, 9)
    });
    assert_eq!(
        ok(s.access_log("R1")),
        vec![before_epoch_offset, early_a, early_b, late],
        "oldest first; one instant by sequence"
    );
    assert_eq!(ok(s.access_log("R10")), vec![other]);
    assert!(ok(s.access_log("R")).is_empty());
    assert!(ok(s.access_log("R2")).is_empty());
    assert_eq!(ok(s.access_count()), 5);
}

/// sp_consents: one SP's consents only, in byte order of the nonce, paged after a nonce.
pub fn sp_consents_paging<S: Storage>(s: &S) {
    assert!(ok(s.sp_consents("sp-1", None, 10)).is_empty());
    // Nonces chosen so that byte order differs from insertion and id order, with a prefix
    // ("n") of another ("n-"), and a neighbouring SP id that extends this one's.
    let nonces = ["n-b", "n", "n-a", "N", "n-ab", "é"];
    let mine: Vec<Consent> = nonces
        .iter()
        .enumerate()
        .map(|(i, n)| consent(&format!("c-{i}"), &format!("R{i}"), "sp-1", n))
        .collect();
    let theirs = consent("c-9", "R1", "sp-10", "n-a");
    let shorter = consent("c-8", "R1", "sp-", "a");
    commit(s, &|t| {
        for c in &mine {
            t.put_consent(c)?;
        }
        t.put_consent(&theirs)?;
        t.put_consent(&shorter)
    });
    let mut sorted: Vec<&str> = nonces.to_vec();
    sorted.sort();
    let nonces_of = |v: Vec<Consent>| v.into_iter().map(|c| c.nonce).collect::<Vec<_>>();
    assert_eq!(nonces_of(ok(s.sp_consents("sp-1", None, 100))), sorted);
    // Pages of two, each after the last nonce of the one before.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ok(s.sp_consents("sp-1", after.as_deref(), 2));
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|c| c.nonce.clone());
        seen.extend(nonces_of(page));
    }
    assert_eq!(seen, sorted, "pages cover every consent once, in order");
    assert_eq!(
        nonces_of(ok(s.sp_consents("sp-1", Some("n-a"), 10))),
        vec!["n-ab", "n-b", "é"],
        "strictly after"
    );
    assert_eq!(
        nonces_of(ok(s.sp_consents("sp-1", Some("m"), 1))),
        vec!["n"],
        "after a nonce never used"
    );
    assert!(ok(s.sp_consents("sp-1", Some("é"), 10)).is_empty());
    assert!(ok(s.sp_consents("sp-1", None, 0)).is_empty());
    assert_eq!(ok(s.sp_consents("sp-10", None, 10)), vec![theirs]);
    assert_eq!(ok(s.sp_consents("sp-", None, 10)), vec![shorter]);
    assert!(ok(s.sp_consents("sp", None, 10)).is_empty());
    // A withdrawn consent is rewritten in place, not listed twice.
    let mut w = mine[0].clone();
    w.withdrawn_at = Some(at(60));
    w.withdrawn_by = Some("sp".into());
    commit(s, &|t| t.put_consent(&w));
    let all = ok(s.sp_consents("sp-1", None, 100));
    assert_eq!(all.len(), nonces.len());
    assert!(all.contains(&w));
}

fn usage(month: &str, pf: &str, sp: &str, endpoint: &str, cert_type: &str, n: u64) -> Usage {
    Usage {
        month: month.into(),
        pf: pf.into(),
        sp: sp.into(),
        endpoint: endpoint.into(),
        cert_type: cert_type.into(),
        count: n,
    }
}

/// add_usage adds to one counter per (month, PF, SP, endpoint, type); usage lists a month in
/// key order; a failed body adds nothing.
pub fn usage_counters<S: Storage>(s: &S) {
    assert!(ok(s.usage("2026-11")).is_empty());
    commit(s, &|t| {
        t.add_usage(&usage("2026-11", "pf-2", "sp-1", "validity", "signing", 3))?;
        t.add_usage(&usage(
            "2026-11", "pf-1", "sp-1", "validity", "signing", 1000,
        ))?;
        t.add_usage(&usage("2026-11", "pf-1", "sp-1", "validity", "auth", 2))?;
        // The unit of work sees its own additions.
        t.add_usage(&usage("2026-11", "pf-1", "sp-1", "validity", "signing", 5))
    });
    commit(s, &|t| {
        t.add_usage(&usage("2026-11", "pf-1", "sp-1", "validity", "signing", 1))?;
        t.add_usage(&usage("2026-11", "pf-1", "sp-10", "successor", "auth", 1))?;
        t.add_usage(&usage("2026-12", "pf-1", "sp-1", "validity", "signing", 7))?;
        t.add_usage(&usage("2026-1", "pf-1", "sp-1", "validity", "signing", 9))
    });
    let failed = s.transact(&|t| {
        t.add_usage(&usage(
            "2026-11", "pf-1", "sp-1", "validity", "signing", 100,
        ))?;
        t.add_usage(&usage(
            "2026-10", "pf-1", "sp-1", "validity", "signing", 100,
        ))?;
        Err(crate::Error::Invalid("no".into()))
    });
    assert!(failed.is_err());
    assert_eq!(
        ok(s.usage("2026-11")),
        vec![
            usage("2026-11", "pf-1", "sp-1", "validity", "auth", 2),
            usage("2026-11", "pf-1", "sp-1", "validity", "signing", 1006),
            usage("2026-11", "pf-1", "sp-10", "successor", "auth", 1),
            usage("2026-11", "pf-2", "sp-1", "validity", "signing", 3),
        ]
    );
    assert_eq!(
        ok(s.usage("2026-12")),
        vec![usage("2026-12", "pf-1", "sp-1", "validity", "signing", 7)]
    );
    assert_eq!(
        ok(s.usage("2026-1")).len(),
        1,
        "a month is not a prefix match"
    );
    assert!(
        ok(s.usage("2026-10")).is_empty(),
        "the failed body added nothing"
    );
    assert!(ok(s.usage("2026")).is_empty());
    let mut all = Vec::new();
    ok(s.for_each_usage(&mut |u| {
        all.push(u);
        Ok(())
    }));
    let mut want = ok(s.usage("2026-1"));
    want.extend(ok(s.usage("2026-11")));
    want.extend(ok(s.usage("2026-12")));
    assert_eq!(all, want, "every month, in key order");
}

// ----- atomicity ---------------------------------------------------------------------------

/// The names [`failed_body_changes_nothing`] observes.
fn atomicity_probe(certs: &[&CertRecord]) -> Probe {
    Probe {
        residents: &["R1", "R2"],
        holders: &["R1", "R2"],
        operator_names: &["PF One", "PF Two"],
        operator_keys: &["aa", "bb"],
        sp_names: &[("pf-1", "SP One"), ("pf-1", "SP Two")],
        consents: &["c-1", "c-2"],
        nonces: &[("sp-1", "n-1"), ("sp-2", "n-2")],
        consents_of: &[("R1", "sp-1"), ("R2", "sp-2")],
        keys: certs.iter().map(|c| key_of(c)).collect(),
    }
}

/// A body that writes (one kind of write at a time, then all of them) and then fails changes
/// nothing, and its error comes back.
pub fn failed_body_changes_nothing<S: Storage>(s: &S) {
    let good = holder_cert(SIGNING, &[0x01], "R1", 1);
    let on_hold = holder_cert(AUTH, &[0x02], "R1", 2);
    let ca = ca_cert(SIGNING, &[0x03]);
    let fresh = holder_cert(AUTH, &[0x04], "R2", 3);
    let pending = Scheduled {
        at: at(100),
        resident: "R1".into(),
        kind: ScheduledKind::Emigrate,
    };
    add(s, &[&good, &on_hold, &ca]);
    commit(s, &|t| {
        t.set_status(&on_hold, &held(5))?;
        t.note_serial(SIGNING, 5)?;
        t.put_resident(&resident("R1", 1))?;
        t.schedule(&pending)?;
        t.audit(intent("init", "x"))?;
        t.audit(intent("issue", "y"))?;
        t.put_crl_state(SIGNING, 1, Scope::Partition(1), b"state")?;
        t.put_operator(&operator("pf-1", "PF One"))?;
        t.bind_operator_key("aa", "pf-1")?;
        t.put_service_provider(&sp("sp-1", "pf-1", "SP One"))?;
        t.put_consent(&consent("c-1", "R1", "sp-1", "n-1"))?;
        t.append_access(&access("R1", 1, "validity"), 0)
    });
    let probe = atomicity_probe(&[&good, &on_hold, &ca, &fresh]);
    let before = observe(s, &probe);
    assert!(
        before
            .iter()
            .any(|l| l.contains("tx dirty auth Partition(2): true")),
        "the probe sees the setup: {before:#?}"
    );

    type Write<'a> = (&'static str, Box<dyn Fn(&dyn Tx) -> Result<()> + 'a>);
    let writes: Vec<Write> = vec![
        (
            "add_certificate",
            Box::new(|t| t.add_certificate(&fresh, Some(&key_of(&fresh)))),
        ),
        (
            "set_status revoked",
            Box::new(|t| t.set_status(&good, &revoked(Reason::KeyCompromise, 9))),
        ),
        (
            "set_status good",
            Box::new(|t| t.set_status(&on_hold, &StatusRecord::GOOD)),
        ),
        (
            "set_status CA-level",
            Box::new(|t| t.set_status(&ca, &revoked(Reason::CaCompromise, 9))),
        ),
        ("note_serial", Box::new(|t| t.note_serial(SIGNING, 99))),
        (
            "put_resident new",
            Box::new(|t| t.put_resident(&resident("R2", 0))),
        ),
        (
            "put_resident update",
            Box::new(|t| t.put_resident(&resident("R1", 2))),
        ),
        (
            "schedule",
            Box::new(|t| {
                t.schedule(&Scheduled {
                    at: at(50),
                    resident: "R2".into(),
                    kind: ScheduledKind::Emigrate,
                })
            }),
        ),
        ("unschedule", Box::new(|t| t.unschedule(&pending))),
        ("audit", Box::new(|t| t.audit(intent("revoke", "z")))),
        (
            "set_crl_dirty",
            Box::new(|t| t.set_crl_dirty(SIGNING, 1, Scope::Partition(7))),
        ),
        (
            "clear_crl_dirty",
            Box::new(|t| t.clear_crl_dirty(AUTH, 1, Scope::Partition(2))),
        ),
        (
            "put_crl_state update",
            Box::new(|t| t.put_crl_state(SIGNING, 1, Scope::Partition(1), b"changed")),
        ),
        (
            "put_crl_state new",
            Box::new(|t| t.put_crl_state(AUTH, 1, Scope::Ca, b"new")),
        ),
        (
            "put_operator new",
            Box::new(|t| t.put_operator(&operator("pf-2", "PF Two"))),
        ),
        (
            "put_operator update",
            Box::new(|t| {
                let mut op = operator("pf-1", "PF One");
                op.state = PfState::Revoked;
                t.put_operator(&op)
            }),
        ),
        (
            "bind_operator_key",
            Box::new(|t| t.bind_operator_key("bb", "pf-1")),
        ),
        (
            "put_service_provider",
            Box::new(|t| t.put_service_provider(&sp("sp-2", "pf-1", "SP Two"))),
        ),
        (
            "put_consent new",
            Box::new(|t| t.put_consent(&consent("c-2", "R2", "sp-2", "n-2"))),
        ),
        (
            "put_consent update",
            Box::new(|t| {
                let mut c = consent("c-1", "R1", "sp-1", "n-1");
                c.withdrawn_at = Some(at(7));
                t.put_consent(&c)
            }),
        ),
        (
            "append_access",
            Box::new(|t| t.append_access(&access("R2", 3, "consent"), 1)),
        ),
    ];
    let fail = |what: &str, body: &dyn Fn(&dyn Tx) -> Result<()>| {
        let message = format!("planned failure after {what}");
        match s.transact(&|t| {
            body(t)?;
            Err(Error::Invalid(message.clone()))
        }) {
            Err(Error::Invalid(m)) if m == message => {}
            other => panic!("{what}: the body's error must come back, got {other:?}"),
        }
        assert_eq!(observe(s, &probe), before, "{what} left a trace");
    };
    for (what, write) in &writes {
        fail(what, write.as_ref());
    }
    fail("every write", &|t| {
        for (_, write) in &writes {
            write(t)?;
        }
        // The writes were made (the body sees them) before it failed.
        assert!(t.certificate_exists(AUTH, &fresh.serial)?);
        assert_eq!(t.resident("R2")?.map(|r| r.version), Some(0));
        assert!(t.crl_dirty(SIGNING, 1, Scope::Partition(7))?);
        Ok(())
    });
    // The same writes, committed, do show (so the probe would have seen them).
    commit(s, &|t| {
        for (_, write) in &writes {
            write(t)?;
        }
        Ok(())
    });
    let after = observe(s, &probe);
    let changed = after.iter().filter(|l| !before.contains(l)).count();
    assert!(changed >= 20, "only {changed} lines changed: {after:#?}");
}

/// An error from a body comes back as it was, whatever its variant.
pub fn error_comes_back_unchanged<S: Storage>(s: &S) {
    commit(s, &|t| t.put_resident(&resident("R1", 0)));
    let e = s.transact(&|t| {
        t.put_resident(&resident("R1", 1))?;
        Err(Error::Retry)
    });
    assert!(matches!(e, Err(Error::Retry)), "{e:?}");
    let e = s.transact(&|_| {
        Err(Error::AlreadyRevoked {
            serial: "0A".into(),
            hierarchy: AUTH,
            reason: Reason::Superseded,
        })
    });
    assert!(
        matches!(
            &e,
            Err(Error::AlreadyRevoked { serial, hierarchy: AUTH, reason: Reason::Superseded })
                if serial == "0A"
        ),
        "{e:?}"
    );
    let e = s.transact(&|t| {
        t.audit(intent("x", "y"))?;
        Err(Error::UnknownResident("R9".into()))
    });
    assert!(
        matches!(&e, Err(Error::UnknownResident(id)) if id == "R9"),
        "{e:?}"
    );
    let e = s.transact(&|t| {
        t.note_serial(AUTH, 3)?;
        Err(Error::Refused("no".into()))
    });
    assert!(matches!(&e, Err(Error::Refused(m)) if m == "no"), "{e:?}");
    assert_eq!(ok(s.resident("R1")).map(|r| r.version), Some(0));
    assert_eq!(ok(s.audit_head()), None);
    assert_eq!(ok(s.serial_counter(AUTH)), 0);
}

/// Reads inside a body see the body's own writes, including overwrites and removals; what
/// the body left at its end is what commits.
pub fn reads_see_own_writes<S: Storage>(s: &S) {
    let c = holder_cert(SIGNING, &[0x01], "R1", 4);
    let ca = ca_cert(AUTH, &[0x02]);
    let ev = Scheduled {
        at: at(9),
        resident: "R1".into(),
        kind: ScheduledKind::Emigrate,
    };
    let rev = revoked(Reason::AffiliationChanged, 8);
    commit(s, &|t| {
        assert!(!t.certificate_exists(SIGNING, &c.serial)?);
        assert_eq!(t.status(SIGNING, &c.serial)?, None);
        t.add_certificate(&c, Some(&key_of(&c)))?;
        t.add_certificate(&ca, None)?;
        assert!(t.certificate_exists(SIGNING, &c.serial)?);
        assert!(t.certificate_exists(AUTH, &ca.serial)?);
        assert_eq!(t.status(SIGNING, &c.serial)?, Some(StatusRecord::GOOD));
        assert_eq!(
            t.key_owner(&key_of(&c))?,
            Some(KeyOwner {
                holder: "R1".into(),
                hierarchy: SIGNING
            })
        );
        t.set_status(&c, &held(7))?;
        assert_eq!(t.status(SIGNING, &c.serial)?, Some(held(7)));
        t.set_status(&c, &rev)?;
        assert_eq!(t.status(SIGNING, &c.serial)?, Some(rev));
        assert!(t.crl_dirty(SIGNING, 1, Scope::Partition(4))?);
        t.set_status(&ca, &held(7))?;
        t.set_status(&ca, &StatusRecord::GOOD)?;
        assert!(t.crl_dirty(AUTH, 1, Scope::Ca)?);
        t.clear_crl_dirty(AUTH, 1, Scope::Ca)?;
        assert!(!t.crl_dirty(AUTH, 1, Scope::Ca)?);
        t.set_crl_dirty(AUTH, 1, Scope::Partition(9))?;
        assert!(t.crl_dirty(AUTH, 1, Scope::Partition(9))?);

        t.put_resident(&resident("R1", 0))?;
        t.put_resident(&resident("R1", 1))?;
        assert_eq!(t.resident("R1")?.map(|r| r.version), Some(1));
        t.schedule(&ev)?;
        t.unschedule(&ev)?;

        let mut op = operator("pf-1", "PF One");
        t.put_operator(&op)?;
        assert_eq!(t.operator("pf-1")?, Some(op.clone()));
        assert_eq!(t.operator_named("PF One")?, Some("pf-1".into()));
        op.state = PfState::Suspended;
        t.put_operator(&op)?;
        assert_eq!(
            t.operator("pf-1")?.map(|o| o.state),
            Some(PfState::Suspended)
        );
        t.bind_operator_key("k1", "pf-1")?;
        assert_eq!(t.operator_by_key("k1")?, Some("pf-1".into()));
        t.put_service_provider(&sp("sp-1", "pf-1", "Shop"))?;
        assert_eq!(
            t.service_provider_named("pf-1", "Shop")?,
            Some("sp-1".into())
        );
        let cs = consent("c-1", "R1", "sp-1", "n-1");
        t.put_consent(&cs)?;
        assert_eq!(t.consent("c-1")?, Some(cs));
        assert!(t.consent_nonce_used("sp-1", "n-1")?);
        Ok(())
    });
    // What the body left is what committed.
    assert_eq!(ok(s.status(SIGNING, &c.serial)), Some(rev));
    assert_eq!(
        revoked_list(s, SIGNING, Scope::Partition(4)),
        vec![entry(&c, &rev)]
    );
    assert_eq!(ok(s.status(AUTH, &ca.serial)), Some(StatusRecord::GOOD));
    assert!(revoked_list(s, AUTH, Scope::Ca).is_empty());
    assert_eq!(
        ok(s.dirty_partitions()),
        vec![
            (SIGNING, 1, Scope::Partition(4)),
            (AUTH, 1, Scope::Partition(9))
        ]
    );
    assert_eq!(ok(s.resident("R1")).map(|r| r.version), Some(1));
    assert_eq!(
        ok(s.next_event()),
        None,
        "scheduled and unscheduled: nothing"
    );
    assert_eq!(
        ok(s.operator("pf-1")).map(|o| o.state),
        Some(PfState::Suspended)
    );
    assert_eq!(ok(s.consents_of("R1", "sp-1")).len(), 1);
}

/// A revoked or held status without a reason or a time is refused, and changes nothing.
pub fn incomplete_status_is_refused<S: Storage>(s: &S) {
    let c = holder_cert(SIGNING, &[0x01], "R1", 1);
    add(s, &[&c]);
    for bad in [
        StatusRecord {
            reason: None,
            ..revoked(Reason::KeyCompromise, 1)
        },
        StatusRecord {
            since: None,
            ..held(1)
        },
    ] {
        let e = s.transact(&|t| t.set_status(&c, &bad));
        assert!(matches!(e, Err(Error::Invalid(_))), "{bad:?}: {e:?}");
        assert_eq!(ok(s.status(SIGNING, &c.serial)), Some(StatusRecord::GOOD));
        assert!(revoked_list(s, SIGNING, Scope::Partition(1)).is_empty());
        assert!(ok(s.dirty_partitions()).is_empty());
    }
}

// ----- concurrency -------------------------------------------------------------------------

const THREADS: u64 = 8;
const PER_THREAD: u64 = 50;

/// 8 threads × 50 units of work, each reading a counter (a resident's version), handing out
/// the next serial, noting it, bumping the version and auditing it, as issuance does (a body
/// that finds its serial taken asks to be re-planned with [`Error::Retry`]): a lost update
/// shows as a short count, a missing serial, or an audit trail out of order.
pub fn concurrent_read_modify_write<S: Storage>(s: &S) {
    commit(s, &|t| t.put_resident(&resident("counter", 0)));
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..PER_THREAD {
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        assert!(attempts < 1000, "kept being told to retry");
                        match s.transact(&|t| {
                            let mut r = t
                                .resident("counter")?
                                .ok_or_else(|| Error::UnknownResident("counter".into()))?;
                            let n = r.version + 1;
                            let serial = n.to_be_bytes();
                            if t.certificate_exists(SIGNING, &serial)? {
                                return Err(Error::Retry);
                            }
                            t.add_certificate(&ca_cert(SIGNING, &serial), None)?;
                            t.note_serial(SIGNING, n)?;
                            r.version = n;
                            t.put_resident(&r)?;
                            t.audit(intent("issue", &n.to_string()))
                        }) {
                            Ok(()) => break,
                            Err(Error::Retry) => continue,
                            Err(e) => panic!("transaction failed: {e}"),
                        }
                    }
                }
            });
        }
    });
    let total = THREADS * PER_THREAD;
    assert_eq!(
        ok(s.resident("counter")).map(|r| r.version),
        Some(total),
        "lost updates"
    );
    assert_eq!(ok(s.serial_counter(SIGNING)), total);
    let serials: Vec<Vec<u8>> = all_certificates(s).into_iter().map(|(_, s)| s).collect();
    let want: Vec<Vec<u8>> = (1..=total).map(|n| n.to_be_bytes().to_vec()).collect();
    assert_eq!(serials, want);
    let subjects = verified_chain(s);
    let want: Vec<String> = (1..=total).map(|n| n.to_string()).collect();
    assert_eq!(subjects, want, "the audit trail is in commit order");
}

/// A body's error is returned only if what the body read held together: a body that reads
/// one resident, sees another unit of work commit, then reads a second resident that unit
/// changed, read a state that never existed; an engine must re-run it (as it would at commit)
/// rather than hand the error that view produced to the caller.
///
/// The other unit of work is started from inside the body and waited for at most 300 ms: an
/// engine that locks out writers during a body (the memory engine) makes it wait, and the
/// body then reads one state.
pub fn body_errors_come_from_one_state<S: Storage>(s: &S) {
    commit(s, &|t| {
        t.put_resident(&resident("A", 0))?;
        t.put_resident(&resident("B", 0))
    });
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if go_rx.recv().is_ok() {
                commit(s, &|t| {
                    t.put_resident(&resident("A", 1))?;
                    t.put_resident(&resident("B", 1))
                });
                let _ = done_tx.send(());
            }
        });
        let first = std::cell::Cell::new(true);
        let runs = std::cell::Cell::new(0);
        let r = s.transact(&|t| {
            runs.set(runs.get() + 1);
            let version = |id: &str| -> Result<u64> {
                t.resident(id)?
                    .map(|r| r.version)
                    .ok_or_else(|| Error::UnknownResident(id.into()))
            };
            let a = version("A")?;
            if first.replace(false) {
                let _ = go.send(());
                let _ = done.recv_timeout(std::time::Duration::from_millis(300));
            }
            let b = version("B")?;
            if a != b {
                return Err(Error::Invalid(format!(
                    "torn read: A at version {a}, B at version {b}"
                )));
            }
            t.put_crl_state(SIGNING, 1, Scope::Ca, &[a as u8])
        });
        assert!(
            r.is_ok(),
            "the body's error came from a state that never existed ({} run(s)): {r:?}",
            runs.get()
        );
    });
    assert_eq!(ok(s.resident("A")).map(|r| r.version), Some(1));
    assert_eq!(ok(s.resident("B")).map(|r| r.version), Some(1));
}

/// Many threads appending audit records at once: one intact chain with every record exactly
/// once, each thread's (and each unit of work's) records in order.
pub fn concurrent_audit_appends<S: Storage>(s: &S) {
    const UNITS: u64 = 25;
    std::thread::scope(|scope| {
        for th in 0..THREADS {
            scope.spawn(move || {
                for i in 0..UNITS {
                    commit(s, &|t| {
                        t.audit(intent("issue", &format!("{th}/{i}/0")))?;
                        t.audit(intent("issue", &format!("{th}/{i}/1")))
                    });
                }
            });
        }
    });
    let subjects = verified_chain(s);
    assert_eq!(subjects.len() as u64, THREADS * UNITS * 2);
    let unique: BTreeSet<&String> = subjects.iter().collect();
    assert_eq!(unique.len(), subjects.len(), "a record appears twice");
    for th in 0..THREADS {
        let mine: Vec<&String> = subjects
            .iter()
            .filter(|s| s.starts_with(&format!("{th}/")))
            .collect();
        let want: Vec<String> = (0..UNITS)
            .flat_map(|i| [format!("{th}/{i}/0"), format!("{th}/{i}/1")])
            .collect();
        assert_eq!(
            mine,
            want.iter().collect::<Vec<_>>(),
            "thread {th} out of order"
        );
    }
}

/// Concurrent note_serial calls (no reads): the counter ends at the highest value noted.
pub fn concurrent_serial_notes<S: Storage>(s: &S) {
    std::thread::scope(|scope| {
        for th in 0..THREADS {
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    // Each thread's values rise and fall; thread 3 holds the maximum.
                    let n = if th == 3 && i == 17 {
                        1_000_000
                    } else {
                        th * 1000 + (i * 7) % PER_THREAD
                    };
                    commit(s, &|t| {
                        t.note_serial(AUTH, n)?;
                        t.note_serial(SIGNING, i)
                    });
                }
            });
        }
    });
    assert_eq!(ok(s.serial_counter(AUTH)), 1_000_000);
    assert_eq!(ok(s.serial_counter(SIGNING)), PER_THREAD - 1);
}

// ----- the engine --------------------------------------------------------------------------

/// check_consistency passes on a store built through the API, and counts its certificates.
pub fn consistency<S: Storage>(s: &S) {
    assert_eq!(ok(s.check_consistency()), 0);
    let certs = [
        holder_cert(SIGNING, &[0x01], "R1", 0),
        holder_cert(AUTH, &[0x01], "R1", 0),
        holder_cert(SIGNING, &[0x02], "R2", 1),
        holder_cert(AUTH, &[0x03], "R2", 1),
        holder_cert(AUTH, &[0x04], "R3", 7),
        ca_cert(SIGNING, &[0x10]),
        ca_cert(AUTH, &[0x11]),
    ];
    add(s, &certs.iter().collect::<Vec<_>>());
    commit(s, &|t| {
        t.set_status(&certs[1], &held(1))?;
        t.set_status(&certs[2], &revoked(Reason::KeyCompromise, 2))?;
        t.set_status(&certs[3], &held(3))?;
        t.set_status(&certs[6], &revoked(Reason::CaCompromise, 4))
    });
    commit(s, &|t| {
        t.set_status(&certs[3], &revoked(Reason::Superseded, 5))?;
        t.set_status(&certs[1], &StatusRecord::GOOD)
    });
    assert_eq!(ok(s.check_consistency()), certs.len() as u64);
    ok(s.compact());
    assert_eq!(
        ok(s.check_consistency()),
        certs.len() as u64,
        "after compaction"
    );
}

/// compact keeps every answer the same and the store writable; commit_stats counts; the
/// write-ahead history's size is readable.
pub fn engine_counters<S: Storage>(s: &S) {
    let start = s.commit_stats();
    let certs = [
        holder_cert(SIGNING, &[0x01], "R1", 1),
        ca_cert(AUTH, &[0x02]),
    ];
    add(s, &[&certs[0]]);
    add(s, &[&certs[1]]);
    commit(s, &|t| t.set_status(&certs[0], &held(1)));
    commit(s, &|t| t.audit(intent("issue", "a")));
    commit(s, &|t| t.put_resident(&resident("R1", 3)));
    let done = s.commit_stats().since(&start);
    assert!(done.transactions >= 5, "{done:?}");
    assert!(
        done.batches >= 1 && done.batches <= done.transactions,
        "{done:?}"
    );
    ok(s.journal_bytes());

    let probe = atomicity_probe(&[&certs[0], &certs[1]]);
    let before = observe(s, &probe);
    let c = ok(s.compact());
    assert!(
        c.position >= 1,
        "the position counts what was committed: {c:?}"
    );
    assert!(c.journal_bytes_after <= c.journal_bytes_before, "{c:?}");
    assert_eq!(observe(s, &probe), before, "compaction changes no answer");
    commit(s, &|t| t.audit(intent("revoke", "b")));
    let again = ok(s.compact());
    assert!(again.position >= c.position, "{again:?} after {c:?}");
    assert_eq!(verified_chain(s), ["a", "b"]);
    assert_eq!(ok(s.check_consistency()), 2);
}

/// key_blocked / block_key: a blocked key stays blocked (committed, seen by later units of
/// work, blocking again is harmless), a unit of work sees its own block, a failed unit leaves
/// no block, and the blocklist is independent of the key index (blocking does not certify,
/// certifying does not block).
pub fn key_blocklist<S: Storage>(s: &S) {
    let c1 = holder_cert(SIGNING, &[0x01], "R1", 0);
    let k1 = key_of(&c1);
    let other: KeyFingerprint = [9; 32];
    add(s, &[&c1]);
    assert!(!ok(s.key_blocked(&k1)), "certified is not blocked");
    commit(s, &|t| {
        assert!(!t.key_blocked(&k1)?);
        t.block_key(&k1)?;
        assert!(t.key_blocked(&k1)?, "a unit of work sees its own block");
        Ok(())
    });
    assert!(ok(s.key_blocked(&k1)));
    assert!(!ok(s.key_blocked(&other)));
    assert_eq!(
        ok(s.key_owner(&k1)),
        Some(KeyOwner {
            holder: "R1".into(),
            hierarchy: SIGNING,
        }),
        "blocking keeps who the key was certified to"
    );
    assert_eq!(ok(s.key_owner(&other)), None);
    // A failed unit of work blocks nothing.
    let e = s.transact(&|t| {
        t.block_key(&other)?;
        Err(Error::Invalid("changed my mind".into()))
    });
    assert!(e.is_err());
    assert!(!ok(s.key_blocked(&other)));
    // Blocking again is harmless; later units of work see the block.
    commit(s, &|t| t.block_key(&k1));
    commit(s, &|t| {
        assert!(t.key_blocked(&k1)?);
        assert!(!t.key_blocked(&other)?);
        Ok(())
    });
    assert_eq!(ok(s.check_consistency()), 1);
    // Listed in fingerprint order, once each; the callback may use the store.
    let low: KeyFingerprint = [0; 32];
    commit(s, &|t| t.block_key(&low));
    let mut listed = Vec::new();
    ok(s.for_each_blocked_key(&mut |fp| {
        assert!(s.key_blocked(&fp)?);
        listed.push(fp);
        Ok(())
    }));
    let mut expected = vec![low, k1];
    expected.sort();
    assert_eq!(listed, expected);
}

// ----- officers and actors -----------------------------------------------------------------

fn officer(
    id: &str,
    name: &str,
    key: &str,
    role: crate::officers::Role,
) -> crate::officers::Officer {
    crate::officers::Officer {
        id: id.into(),
        name: name.into(),
        role,
        municipality: (role == crate::officers::Role::MunicipalClerk).then(|| "Chiyoda-ku".into()),
        state: crate::officers::OfficerState::Active,
        key: key.into(),
        certificate: Some("0A1B".into()),
        not_before: Some(at(0)),
        not_after: Some(at(86_400)),
        created: at(5),
    }
}

/// put_officer, officer, officer_named, officer_by_key (Storage and Tx), officers (id order);
/// an update keeps the indexes; a failed body leaves no officer behind.
pub fn officers<S: Storage>(s: &S) {
    use crate::officers::{OfficerState, Role};
    assert!(ok(s.officers()).is_empty());
    let b = officer("OF-b", "Suzuki", "kb", Role::MunicipalClerk);
    let a = officer("OF-a", "Sato", "ka", Role::CaOfficer);
    commit(s, &|t| {
        assert!(t.officer("OF-b")?.is_none());
        t.put_officer(&b)?;
        // The unit's own write is visible to it, by id, name and key.
        assert_eq!(t.officer("OF-b")?, Some(b.clone()));
        assert_eq!(t.officer_named("Suzuki")?.as_deref(), Some("OF-b"));
        assert_eq!(t.officer_by_key("kb")?.as_deref(), Some("OF-b"));
        t.put_officer(&a)
    });
    // Operators are another register: they list no officer, and officers no operator.
    commit(s, &|t| t.put_operator(&operator("pf-a", "Sato")));
    assert_eq!(ok(s.officers()), vec![a.clone(), b.clone()]);
    assert_eq!(ok(s.officer("OF-a")), Some(a.clone()));
    assert_eq!(ok(s.officer_by_key("ka")).as_deref(), Some("OF-a"));
    assert_eq!(ok(s.officer_by_key("nobody")), None);
    assert_eq!(ok(s.officer("pf-a")), None);
    let mut suspended = b.clone();
    suspended.state = OfficerState::Suspended;
    commit(s, &|t| t.put_officer(&suspended));
    assert_eq!(ok(s.officer("OF-b")), Some(suspended.clone()));
    assert_eq!(ok(s.officer_by_key("kb")).as_deref(), Some("OF-b"));
    commit(s, &|t| {
        assert_eq!(t.officer_named("Suzuki")?.as_deref(), Some("OF-b"));
        assert_eq!(t.officer_named("Tanaka")?, None);
        Ok(())
    });
    let e = s.transact(&|t| {
        t.put_officer(&officer("OF-c", "Tanaka", "kc", Role::Auditor))?;
        Err(Error::Invalid("planned".into()))
    });
    assert!(matches!(e, Err(Error::Invalid(_))));
    assert_eq!(ok(s.officers()).len(), 2);
    assert_eq!(ok(s.officer_by_key("kc")), None);
    commit(s, &|t| {
        assert_eq!(t.officer_named("Tanaka")?, None);
        Ok(())
    });
}

/// Audit records keep their actor (format 2), [`crate::storage::audit`] stamps the acting
/// scope's actor (`unattributed` outside one), and a chain copied from a store made before
/// officers (format 1, no actor) keeps verifying as new records follow it.
pub fn audit_actors_and_formats<S: Storage>(s: &S) {
    use crate::officers::{acting_as, Actor, UNATTRIBUTED};
    let old: Vec<crate::audit::Record> = [
        r#"{"seq":0,"at":"2026-11-27T00:00:00Z","action":"issue","subject":"serial-0","detail":"signing","prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"81eba728052e0d5125a932c3b5a8b758b9a2ead028c8c6858597c80ead1c19a4"}"#,
        r#"{"seq":1,"at":"2026-11-27T00:00:00Z","action":"issue","subject":"serial-1","detail":"signing","prev":"81eba728052e0d5125a932c3b5a8b758b9a2ead028c8c6858597c80ead1c19a4","hash":"d51b89dc0ff5f1ca2c0178329f70b3b162f85145bb17fbe03b171f99ad625e7a"}"#,
    ]
    .iter()
    .map(|t| serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}")))
    .collect();
    commit(s, &|t| {
        t.import_audit(old[0].clone())?;
        t.import_audit(old[1].clone())
    });
    commit(s, &|t| crate::storage::audit(t, at(1), "init", "a", ""));
    acting_as(&Actor::System("scheduler"), || {
        commit(s, &|t| {
            crate::storage::audit(t, at(2), "apply-due", "b", "")
        })
    });
    commit(s, &|t| t.audit(intent("revoke", "c")));
    let all = ok(s.audit_records(0, 10));
    assert_eq!(all[..2], old[..], "format-1 records come back as they were");
    let actors: Vec<Option<&str>> = all.iter().map(|r| r.actor.as_deref()).collect();
    assert_eq!(
        actors,
        [
            None,
            None,
            Some(UNATTRIBUTED),
            Some("system:scheduler"),
            Some("officer:OF-revoke(ca-officer)")
        ]
    );
    assert_eq!(all.iter().map(|r| r.v).collect::<Vec<_>>(), [1, 1, 2, 2, 2]);
    assert_eq!(verified_chain(s), ["serial-0", "serial-1", "a", "b", "c"]);
}

/// status_history / change_status / log_status (issue #18): every change is kept with its
/// time, oldest first, whatever order the units of work logged them in; a certificate whose
/// serial extends another's has its own history; a failed unit of work leaves none; a second
/// change at one instant replaces the first; and the status as of any moment follows
/// (a hold released again reads held only inside its period).
pub fn status_history<S: Storage>(s: &S) {
    let c = holder_cert(SIGNING, &[0x05], "R1", 0);
    let longer = holder_cert(SIGNING, &[0x05, 0x01], "R1", 0);
    let other = holder_cert(AUTH, &[0x05], "R1", 0);
    add(s, &[&c, &longer, &other]);
    assert!(ok(s.status_history(SIGNING, &c.serial)).is_empty());
    commit(s, &|t| t.change_status(&c, &held(100), at(100)));
    let released = StatusRecord::GOOD;
    commit(s, &|t| t.change_status(&c, &released, at(200)));
    commit(s, &|t| {
        t.change_status(&longer, &held(150), at(150))?;
        t.change_status(&c, &revoked(Reason::AffiliationChanged, 300), at(300))
    });
    // Logged late, for an earlier moment (as `jpki store migrate` copies): kept in time order.
    commit(s, &|t| {
        t.log_status(
            &other,
            &StatusChange {
                at: at(90),
                status: held(90),
            },
        )
    });
    commit(s, &|t| {
        t.log_status(
            &other,
            &StatusChange {
                at: at(50),
                status: held(50),
            },
        )
    });
    let h = ok(s.status_history(SIGNING, &c.serial));
    let times: Vec<OffsetDateTime> = h.iter().map(|x| x.at).collect();
    assert_eq!(times, [at(100), at(200), at(300)]);
    assert_eq!(h[0].status, held(100));
    assert_eq!(h[1].status, StatusRecord::GOOD);
    assert_eq!(h[2].status, revoked(Reason::AffiliationChanged, 300));
    assert_eq!(
        ok(s.status(SIGNING, &c.serial)),
        Some(revoked(Reason::AffiliationChanged, 300)),
        "change_status sets the current status too"
    );
    let as_of = |secs| StatusChange::as_of(&h, at(secs)).state;
    assert_eq!(as_of(99), State::Good);
    assert_eq!(as_of(100), State::Held);
    assert_eq!(as_of(199), State::Held);
    assert_eq!(as_of(250), State::Good, "released again");
    assert_eq!(as_of(300), State::Revoked);
    let longer_h = ok(s.status_history(SIGNING, &longer.serial));
    assert_eq!(longer_h.len(), 1, "{longer_h:?}");
    assert_eq!(longer_h[0].at, at(150));
    let other_h = ok(s.status_history(AUTH, &other.serial));
    assert_eq!(
        other_h.iter().map(|x| x.at).collect::<Vec<_>>(),
        [at(50), at(90)]
    );
    // A failed unit of work leaves no change behind, in the history or the status.
    let e = s.transact(&|t| {
        t.change_status(&c, &StatusRecord::GOOD, at(400))?;
        Err(Error::Invalid("changed my mind".into()))
    });
    assert!(e.is_err());
    assert_eq!(ok(s.status_history(SIGNING, &c.serial)).len(), 3);
    // Two changes at one instant in one unit of work: the last is what held.
    commit(s, &|t| {
        t.change_status(&other, &held(500), at(500))?;
        t.change_status(&other, &revoked(Reason::KeyCompromise, 500), at(500))
    });
    let other_h = ok(s.status_history(AUTH, &other.serial));
    assert_eq!(other_h.len(), 3);
    assert_eq!(other_h[2].status, revoked(Reason::KeyCompromise, 500));
}

/// Signed checkpoints of the audit chain: kept in sequence order (not insertion order), one
/// per sequence number (a second replaces the first), apart from the chain itself (the
/// head and the records do not move), and not written by a unit of work that fails.
pub fn audit_checkpoints<S: Storage>(s: &S) {
    use crate::audit::Checkpoint;
    assert!(ok(s.checkpoints()).is_empty());
    let cp = |seq: u64, sig: &str| Checkpoint {
        seq,
        hash: format!("{seq:064x}"),
        at: at(1_000 + seq as i64),
        signature: sig.into(),
        cert_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
    };
    commit(s, &|t| storage_audit(t, "a"));
    let head = ok(s.audit_head());
    commit(s, &|t| t.put_checkpoint(&cp(300, "c")));
    commit(s, &|t| {
        t.put_checkpoint(&cp(2, "a"))?;
        t.put_checkpoint(&cp(256, "b"))
    });
    assert_eq!(
        ok(s.checkpoints()),
        vec![cp(2, "a"), cp(256, "b"), cp(300, "c")]
    );
    assert_eq!(ok(s.audit_head()), head, "a checkpoint is not a record");
    assert_eq!(ok(s.audit_records(0, usize::MAX)).len(), 1);
    commit(s, &|t| t.put_checkpoint(&cp(256, "b2")));
    assert_eq!(ok(s.checkpoints())[1], cp(256, "b2"));
    let e = s.transact(&|t| {
        t.put_checkpoint(&cp(400, "d"))?;
        Err(Error::Invalid("planned".into()))
    });
    assert!(matches!(e, Err(Error::Invalid(_))));
    assert_eq!(ok(s.checkpoints()).len(), 3);
}

fn storage_audit(t: &dyn Tx, what: &str) -> Result<()> {
    crate::storage::audit(t, at(1), what, "-", "")
}

/// An officer's key replaced (renewal): the new key finds it, the previous one no longer
/// does (in the unit of work and after it); a failed renewal changes nothing.
pub fn officer_key_renewal<S: Storage>(s: &S) {
    use crate::officers::Role;
    let o = officer("OF-a", "Sato", "k-old", Role::Auditor);
    commit(s, &|t| t.put_officer(&o));
    let mut renewed = o.clone();
    renewed.key = "k-new".into();
    let e = s.transact(&|t| {
        t.put_officer(&renewed)?;
        Err(Error::Invalid("planned".into()))
    });
    assert!(matches!(e, Err(Error::Invalid(_))));
    assert_eq!(ok(s.officer_by_key("k-old")).as_deref(), Some("OF-a"));
    assert_eq!(ok(s.officer_by_key("k-new")), None);
    commit(s, &|t| {
        t.put_officer(&renewed)?;
        assert_eq!(t.officer_by_key("k-new")?.as_deref(), Some("OF-a"));
        assert_eq!(t.officer_by_key("k-old")?, None);
        Ok(())
    });
    assert_eq!(ok(s.officer_by_key("k-new")).as_deref(), Some("OF-a"));
    assert_eq!(ok(s.officer_by_key("k-old")), None);
    assert_eq!(ok(s.officer("OF-a")), Some(renewed));
    assert_eq!(ok(s.officers()).len(), 1);
}

/// The revocation log: every status change (hold, release, revocation) appends one entry in
/// its unit of work, numbered upwards in commit order; `revocations_since` pages through it;
/// a unit of work that fails appends nothing.
pub fn revocation_log<S: Storage>(s: &S) {
    assert_eq!(ok(s.revocation_log_head()), 0);
    assert!(ok(s.revocations_since(0, 10)).is_empty());
    let a = holder_cert(SIGNING, &[0x21], "R1", 0);
    let b = holder_cert(AUTH, &[0x22], "R1", 1);
    add(s, &[&a, &b]);
    assert_eq!(
        ok(s.revocation_log_head()),
        0,
        "issuance is not a status change"
    );
    set_status(s, &a, held(100));
    set_status(s, &a, StatusRecord::GOOD);
    set_status(s, &b, revoked(Reason::KeyCompromise, 200));
    let failed = s.transact(&|t| {
        t.set_status(&a, &revoked(Reason::Superseded, 300))?;
        Err(Error::Invalid("changed my mind".into()))
    });
    assert!(failed.is_err());
    let all = ok(s.revocations_since(0, 100));
    let seen: Vec<(Hierarchy, Vec<u8>)> = all
        .iter()
        .map(|c| (c.hierarchy, c.serial.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (SIGNING, a.serial.clone()),
            (SIGNING, a.serial.clone()),
            (AUTH, b.serial.clone())
        ],
        "hold, release and revocation, and not the failed unit of work"
    );
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "numbered upwards: {all:?}"
    );
    assert_eq!(ok(s.revocation_log_head()), all[2].seq);
    assert_eq!(ok(s.revocations_since(0, 2)), all[..2].to_vec(), "limit");
    assert_eq!(ok(s.revocations_since(all[0].seq, 10)), all[1..].to_vec());
    assert!(ok(s.revocations_since(all[2].seq, 10)).is_empty());
    assert!(ok(s.revocations_since(u64::MAX, 10)).is_empty());
}

/// The issuance log: every holder certificate added appends one entry (hierarchy, serial,
/// notAfter) in its unit of work, numbered upwards in commit order; CA certificates, a unit
/// of work that fails and a taken serial append nothing; status changes are not issuances;
/// `issued_since` pages through it.
pub fn issuance_log<S: Storage>(s: &S) {
    assert_eq!(ok(s.issuance_log_head()), 0);
    assert!(ok(s.issued_since(0, 10)).is_empty());
    let a = holder_cert(SIGNING, &[0x31], "R1", 0);
    let b = holder_cert(AUTH, &[0x32], "R1", 1);
    let mut c = holder_cert(SIGNING, &[0x33], "R2", 0);
    c.not_after = at(86_400 * 10);
    let signer = ca_cert(AUTH, &[0x34]);
    add(s, &[&a, &signer]);
    add(s, &[&b, &c]);
    set_status(s, &a, revoked(Reason::KeyCompromise, 200));
    let failed = s.transact(&|t| {
        t.add_certificate(&holder_cert(SIGNING, &[0x35], "R3", 0), None)?;
        Err(Error::Invalid("changed my mind".into()))
    });
    assert!(failed.is_err());
    let taken = s.transact(&|t| t.add_certificate(&b, None));
    assert!(taken.is_err(), "a taken serial is refused");
    let all = ok(s.issued_since(0, 100));
    let seen: Vec<(Hierarchy, Vec<u8>, OffsetDateTime)> = all
        .iter()
        .map(|e| (e.hierarchy, e.serial.clone(), e.not_after))
        .collect();
    assert_eq!(
        seen,
        vec![
            (SIGNING, a.serial.clone(), a.not_after),
            (AUTH, b.serial.clone(), b.not_after),
            (SIGNING, c.serial.clone(), c.not_after),
        ],
        "holder certificates in commit order; not the signer, the failed unit of work, the taken serial"
    );
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "numbered upwards: {all:?}"
    );
    assert_eq!(ok(s.issuance_log_head()), all[2].seq);
    assert_eq!(ok(s.issued_since(0, 2)), all[..2].to_vec(), "limit");
    assert_eq!(ok(s.issued_since(all[0].seq, 10)), all[1..].to_vec());
    assert!(ok(s.issued_since(all[2].seq, 10)).is_empty());
    assert!(ok(s.issued_since(u64::MAX, 10)).is_empty());
}

/// CRL leases: granted when free, to the holder again (renewed), refused to another node
/// until the lease runs out (naming the holder, changing nothing), then granted to it; per
/// CRL; readable inside and outside a unit of work; a unit of work's CRL state is readable
/// through its `Tx`.
pub fn crl_leases<S: Storage>(s: &S) {
    use crate::storage::lease_crl;
    let ttl = Duration::seconds(60);
    let p = Scope::Partition(2);
    assert_eq!(ok(s.crl_lease(SIGNING, 1, p.clone())), None);
    commit(s, &|t| {
        lease_crl(t, SIGNING, 1, p.clone(), "ca-1", at(1000), ttl)
    });
    let l = ok(s.crl_lease(SIGNING, 1, p.clone())).expect("leased");
    assert_eq!((l.holder.as_str(), l.until), ("ca-1", at(1060)));
    // Renewed by its holder.
    commit(s, &|t| {
        lease_crl(t, SIGNING, 1, p.clone(), "ca-1", at(1030), ttl)
    });
    assert_eq!(
        ok(s.crl_lease(SIGNING, 1, p.clone())).map(|l| l.until),
        Some(at(1090))
    );
    // Refused to another node while it runs, with the holder named; nothing changes.
    let e = s
        .transact(&|t| {
            t.put_crl_state(SIGNING, 1, p.clone(), b"not mine")?;
            lease_crl(t, SIGNING, 1, p.clone(), "ca-2", at(1089), ttl)
        })
        .expect_err("leased to ca-1");
    assert!(matches!(&e, Error::Refused(m) if m.contains("ca-1")), "{e}");
    assert_eq!(ok(s.crl_state(SIGNING, 1, p.clone())), None);
    assert_eq!(
        ok(s.crl_lease(SIGNING, 1, p.clone())).map(|l| l.holder),
        Some("ca-1".into())
    );
    // Another CRL is free; the lease ran out: granted to the other node.
    commit(s, &|t| {
        lease_crl(t, AUTH, 1, p.clone(), "ca-2", at(1089), ttl)
    });
    commit(s, &|t| {
        lease_crl(t, SIGNING, 1, Scope::Ca, "ca-2", at(1089), ttl)
    });
    commit(s, &|t| {
        lease_crl(t, SIGNING, 1, p.clone(), "ca-2", at(1090), ttl)
    });
    assert_eq!(
        ok(s.crl_lease(SIGNING, 1, p.clone())).map(|l| l.holder),
        Some("ca-2".into())
    );
    // The Tx's view of the CRL state and lease, own writes included.
    commit(s, &|t| {
        assert_eq!(t.crl_state(SIGNING, 1, p.clone())?, None);
        t.put_crl_state(SIGNING, 1, p.clone(), b"mine")?;
        assert_eq!(t.crl_state(SIGNING, 1, p.clone())?, Some(b"mine".to_vec()));
        assert_eq!(
            t.crl_lease(SIGNING, 1, p.clone())?.map(|l| l.holder),
            Some("ca-2".into())
        );
        Ok(())
    });
    assert_eq!(
        ok(s.crl_state(SIGNING, 1, p.clone())),
        Some(b"mine".to_vec())
    );
}

/// Root generations: a CRL is (hierarchy, generation, scope). A certificate keeps the
/// generation it was issued under; revoking it lists it, and marks dirty, only its own
/// generation's CRL; states, flags and leases of one generation are not another's; a record
/// written without a generation is generation 1 (the data every store had before).
pub fn crl_generations<S: Storage>(s: &S) {
    use crate::storage::lease_crl;
    let p = Scope::Partition(3);
    let old = holder_cert(SIGNING, &[0x31], "R1", 3);
    let new = CertRecord {
        generation: 2,
        ..holder_cert(SIGNING, &[0x32], "R2", 3)
    };
    let third = CertRecord {
        generation: 3,
        ..municipal_cert(AUTH, &[0x33], "R3", &place("Ibaraki-ken", "Tsukuba-shi"))
    };
    let signer2 = CertRecord {
        generation: 2,
        ..ca_cert(SIGNING, &[0x34])
    };
    add(s, &[&old, &new, &third, &signer2]);
    for c in [&old, &new, &third, &signer2] {
        let back = ok(s.certificate(c.hierarchy, &c.serial)).expect("stored");
        assert_eq!(
            back.generation, c.generation,
            "the record keeps its generation"
        );
    }
    // A revocation of the old generation's certificate: its CRL only.
    let rev = revoked(Reason::KeyCompromise, 10);
    set_status(s, &old, rev);
    assert_eq!(ok(s.dirty_partitions()), vec![(SIGNING, 1, p.clone())]);
    set_status(s, &new, held(11));
    set_status(s, &third, rev);
    set_status(s, &signer2, revoked(Reason::CaCompromise, 12));
    let mut want: Vec<CrlId> = vec![
        (SIGNING, 1, p.clone()),
        (SIGNING, 2, p.clone()),
        (SIGNING, 2, Scope::Ca),
        (AUTH, 3, third.partition.clone().expect("a partition")),
    ];
    want.sort();
    assert_eq!(
        ok(s.dirty_partitions()),
        want,
        "(hierarchy, generation, scope) order"
    );
    assert_eq!(ok(s.crl_scopes()), want);
    let list = |h, g, scope: Scope| {
        let mut out = Vec::new();
        ok(s.for_each_revoked(h, g, scope, &mut |r| {
            out.push(r.serial);
            Ok(())
        }));
        out
    };
    assert_eq!(list(SIGNING, 1, p.clone()), vec![vec![0x31]]);
    assert_eq!(list(SIGNING, 2, p.clone()), vec![vec![0x32]]);
    assert!(list(SIGNING, 3, p.clone()).is_empty());
    assert_eq!(list(SIGNING, 2, Scope::Ca), vec![vec![0x34]]);
    assert!(list(SIGNING, 1, Scope::Ca).is_empty());
    assert!(list(AUTH, 1, third.partition.clone().expect("a partition")).is_empty());
    assert_eq!(
        list(AUTH, 3, third.partition.clone().expect("a partition")),
        vec![vec![0x33]]
    );
    // State, flags and leases per generation.
    commit(s, &|t| {
        t.put_crl_state(SIGNING, 2, p.clone(), b"gen 2")?;
        t.clear_crl_dirty(SIGNING, 2, p.clone())?;
        assert!(
            t.crl_dirty(SIGNING, 1, p.clone())?,
            "generation 1 still dirty"
        );
        assert!(!t.crl_dirty(SIGNING, 2, p.clone())?);
        lease_crl(
            t,
            SIGNING,
            2,
            p.clone(),
            "ca-1",
            at(1000),
            Duration::seconds(60),
        )
    });
    assert_eq!(ok(s.crl_state(SIGNING, 1, p.clone())), None);
    assert_eq!(
        ok(s.crl_state(SIGNING, 2, p.clone())),
        Some(b"gen 2".to_vec())
    );
    assert!(ok(s.crl_lease(SIGNING, 1, p.clone())).is_none());
    assert_eq!(
        ok(s.crl_lease(SIGNING, 2, p.clone())).map(|l| l.holder),
        Some("ca-1".to_owned())
    );
    // Another node may take generation 1's lease while ca-1 holds generation 2's.
    commit(s, &|t| {
        lease_crl(
            t,
            SIGNING,
            1,
            p.clone(),
            "ca-2",
            at(1001),
            Duration::seconds(60),
        )
    });
    assert!(ok(s.crl_scopes()).contains(&(SIGNING, 2, p.clone())));
    // Taking the old certificate off its CRL dirties generation 1's again, not 2's.
    commit(s, &|t| {
        t.clear_crl_dirty(SIGNING, 1, p.clone())?;
        t.clear_crl_dirty(SIGNING, 2, Scope::Ca)?;
        t.clear_crl_dirty(AUTH, 3, third.partition.clone().expect("a partition"))
    });
    set_status(s, &old, StatusRecord::GOOD);
    assert_eq!(ok(s.dirty_partitions()), vec![(SIGNING, 1, p.clone())]);
    assert!(list(SIGNING, 1, p.clone()).is_empty());
    assert_eq!(list(SIGNING, 2, p), vec![vec![0x32]]);
    assert_eq!(ok(s.check_consistency()), 4);
}

/// Edges' OCSP signer requests: stored and read back whole (nanosecond times), one per
/// (node, hierarchy, generation) — a new one replaces the last; only unanswered ones are
/// pending, in (node, hierarchy, generation) order; a failed unit of work stores nothing; the
/// Tx sees its own writes.
pub fn signer_requests<S: Storage>(s: &S) {
    use crate::storage::{SignerAnswer, SignerRequest};
    let request = |node: &str, h: Hierarchy, generation: u32, seed: u8| SignerRequest {
        node: node.to_owned(),
        hierarchy: h,
        generation,
        csr: vec![0x30, seed, 1, 2, 3],
        in_force: vec![seed, 0x10],
        requested_at: at(2000) + Duration::nanoseconds(123_456_789),
        answer: None,
    };
    assert_eq!(ok(s.signer_request("edge-1", SIGNING, 1)), None);
    assert!(ok(s.pending_signer_requests()).is_empty());
    let a = request("edge-1", SIGNING, 1, 1);
    let b = request("edge-1", AUTH, 1, 2);
    let c = request("edge-0", SIGNING, 2, 3);
    commit(s, &|t| {
        t.put_signer_request(&a)?;
        t.put_signer_request(&b)?;
        t.put_signer_request(&c)?;
        assert_eq!(t.signer_request("edge-1", AUTH, 1)?, Some(b.clone()));
        Ok(())
    });
    assert_eq!(ok(s.signer_request("edge-1", SIGNING, 1)), Some(a.clone()));
    assert_eq!(ok(s.signer_request("edge-1", SIGNING, 2)), None);
    assert_eq!(ok(s.signer_request("edge-2", SIGNING, 1)), None);
    assert_eq!(
        ok(s.pending_signer_requests()),
        vec![c.clone(), a.clone(), b.clone()]
    );
    // Answered: issued and refused are kept, and no longer pending.
    let issued = SignerRequest {
        answer: Some(SignerAnswer::Issued {
            der: vec![0x30, 0x82, 9],
            at: at(2100) + Duration::nanoseconds(7),
        }),
        ..a.clone()
    };
    let refused = SignerRequest {
        answer: Some(SignerAnswer::Refused {
            reason: "the CSR's signature does not verify".into(),
            at: at(2101),
        }),
        ..c.clone()
    };
    commit(s, &|t| {
        t.put_signer_request(&issued)?;
        t.put_signer_request(&refused)
    });
    assert_eq!(
        ok(s.signer_request("edge-1", SIGNING, 1)),
        Some(issued.clone())
    );
    assert_eq!(ok(s.signer_request("edge-0", SIGNING, 2)), Some(refused));
    assert_eq!(ok(s.pending_signer_requests()), vec![b.clone()]);
    // A failed unit of work stores nothing.
    let e = s
        .transact(&|t| {
            t.put_signer_request(&request("edge-9", SIGNING, 1, 9))?;
            t.put_signer_request(&SignerRequest {
                answer: None,
                ..issued.clone()
            })?;
            Err(Error::Invalid("no".into()))
        })
        .expect_err("the body failed");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert_eq!(ok(s.signer_request("edge-9", SIGNING, 1)), None);
    assert_eq!(ok(s.signer_request("edge-1", SIGNING, 1)), Some(issued));
    // A new request replaces the last of the same node, hierarchy and generation.
    let again = request("edge-1", SIGNING, 1, 7);
    commit(s, &|t| t.put_signer_request(&again));
    assert_eq!(
        ok(s.signer_request("edge-1", SIGNING, 1)),
        Some(again.clone())
    );
    assert_eq!(ok(s.pending_signer_requests()), vec![again, b]);
}

/// `jpki store migrate`'s copy of the revocation log: the log becomes exactly the entries
/// imported (sequence numbers kept, gaps included), replacing what the copy's own status
/// writes appended; a failed unit of work imports nothing; later changes continue after
/// the last entry.
pub fn revocation_log_import<S: Storage>(s: &S) {
    use crate::storage::RevocationLogEntry;
    let a = holder_cert(SIGNING, &[0x31], "R1", 0);
    let b = holder_cert(AUTH, &[0x32], "R1", 1);
    add(s, &[&a, &b]);
    set_status(s, &a, revoked(Reason::KeyCompromise, 100));
    set_status(s, &b, held(100));
    assert_eq!(ok(s.revocations_since(0, 10)).len(), 2);
    let entry = |seq: u64, c: &CertRecord| RevocationLogEntry {
        seq,
        hierarchy: c.hierarchy,
        serial: c.serial.clone(),
    };
    let source = vec![entry(3, &b), entry(5, &a), entry(9, &b)];
    let failed = s.transact(&|t| {
        t.import_revocation_log(&source)?;
        Err(Error::Invalid("not now".into()))
    });
    assert!(failed.is_err());
    assert_eq!(ok(s.revocations_since(0, 10)).len(), 2, "nothing imported");
    commit(s, &|t| t.import_revocation_log(&source));
    assert_eq!(ok(s.revocations_since(0, 10)), source);
    assert_eq!(ok(s.revocation_log_head()), 9);
    assert_eq!(ok(s.revocations_since(5, 10)), source[2..].to_vec());
    set_status(s, &b, revoked(Reason::Superseded, 200));
    let after = ok(s.revocations_since(9, 10));
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].seq > 9 && after[0].serial == b.serial, "{after:?}");
    // An empty log imports as empty.
    commit(s, &|t| t.import_revocation_log(&[]));
    assert!(ok(s.revocations_since(0, 10)).is_empty());
    assert_eq!(ok(s.revocation_log_head()), 0);
}
