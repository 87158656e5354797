//! The in-memory engine, for unit tests: typed maps behind one [`Mutex`], no encoding and no
//! durability.
//!
//! A unit of work holds the lock from start to commit, so transactions are serialised and a
//! body runs exactly once. Its writes go straight to the maps and are recorded in an undo log;
//! when the body returns an error (or panics) the log is played backwards and the store is as
//! it was. Serial counters and audit records are resolved at commit, in the order the body
//! asked for them, as the sled engine does.
//!
//! A [`Storage`] read or a nested [`Storage::transact`] from inside a body (on the thread that
//! holds the lock) is refused with an error rather than deadlocking: a body reads through its
//! [`Tx`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;

use policies::profile::Scope;
use policies::Hierarchy;
use time::OffsetDateTime;

use crate::audit::{AuditIntent, Checkpoint, Head, Record};
use crate::error::{Error, Result};
use crate::officers::Officer;
use crate::records::platform::{Access, Consent, Operator, ServiceProvider, Usage};
use crate::records::{CertRecord, Resident, RevokedEntry, StatusChange, StatusRecord};
use crate::storage::SignerRequest;
use crate::storage::{
    crl_of, fingerprint, identity_key, revoked_entry, scope_of, CommitStats, Compaction, CrlId,
    CrlLease, Generation, IssuedEntry, KeyFingerprint, KeyOwner, RevocationLogEntry, Revoked,
    Scheduled, ScheduledKind, Storage, Tx,
};

/// A certificate: hierarchy and serial.
type CertKey = (Hierarchy, Vec<u8>);
/// A CRL: hierarchy, generation and scope (partitions in number order, then the CA-level
/// CRL).
type CrlKey = CrlId;

/// Everything the store holds. Sets are maps to `()`, so that one undo mechanism serves all.
#[derive(Default)]
struct Tables {
    certs: BTreeMap<CertKey, CertRecord>,
    status: BTreeMap<CertKey, StatusRecord>,
    /// Holder id, hierarchy, serial.
    by_holder: BTreeMap<(String, Hierarchy, Vec<u8>), ()>,
    /// Hierarchy, generation, scope, serial.
    revoked: BTreeMap<(Hierarchy, Generation, Scope, Vec<u8>), RevokedEntry>,
    keys: BTreeMap<KeyFingerprint, KeyOwner>,
    counters: BTreeMap<Hierarchy, u64>,
    dirty: BTreeMap<CrlKey, ()>,
    crl_state: BTreeMap<CrlKey, Vec<u8>>,
    residents: BTreeMap<String, Resident>,
    /// The register's identity index: [`crate::storage::identity_key`], resident id.
    by_identity: BTreeMap<([u8; 32], String), ()>,
    /// Due time, resident id.
    scheduled: BTreeMap<(OffsetDateTime, String), ScheduledKind>,
    audit: BTreeMap<u64, Record>,
    /// The audit chain's head (a map of at most one entry, key `()`).
    audit_head: BTreeMap<(), Head>,
    operators: BTreeMap<String, Operator>,
    operator_names: BTreeMap<String, String>,
    operator_keys: BTreeMap<String, String>,
    sps: BTreeMap<String, ServiceProvider>,
    /// Operator id, SP name → SP id.
    sp_names: BTreeMap<(String, String), String>,
    consents: BTreeMap<String, Consent>,
    /// Holder, SP, consent id.
    holder_consents: BTreeMap<(String, String, String), ()>,
    /// SP, nonce → consent id.
    nonces: BTreeMap<(String, String), String>,
    /// Holder, time (ns), sequence.
    access: BTreeMap<(String, i128, u64), Access>,
    /// Public keys refused forever (revoked for keyCompromise).
    blocked_keys: BTreeMap<KeyFingerprint, ()>,
    /// Status history: hierarchy, serial, time of the change (ns) → the change.
    status_log: BTreeMap<(Hierarchy, Vec<u8>, i128), StatusChange>,
    officers: BTreeMap<String, Officer>,
    /// Officer name → id; client-key fingerprint → id.
    officer_names: BTreeMap<String, String>,
    officer_keys: BTreeMap<String, String>,
    /// Month, PF, SP, endpoint, certificate type → count.
    usage: BTreeMap<UsageKey, u64>,
    /// Signed checkpoints of the audit chain, by sequence number.
    checkpoints: BTreeMap<u64, Checkpoint>,
    /// The revocation log: sequence number → certificate.
    revlog: BTreeMap<u64, CertKey>,
    /// The issuance log: sequence number → certificate and its notAfter.
    isslog: BTreeMap<u64, (CertKey, OffsetDateTime)>,
    /// CRL leases.
    leases: BTreeMap<CrlKey, CrlLease>,
    /// Edges' OCSP signer requests: node, hierarchy, root generation → request.
    signer_requests: BTreeMap<(String, Hierarchy, u32), SignerRequest>,
}

/// The key of a usage counter.
type UsageKey = (String, String, String, String, String);

fn usage_key(u: &Usage) -> UsageKey {
    (
        u.month.clone(),
        u.pf.clone(),
        u.sp.clone(),
        u.endpoint.clone(),
        u.cert_type.clone(),
    )
}

/// The in-memory storage authority (see the module docs).
#[derive(Default)]
pub struct MemoryStorage {
    tables: Mutex<Tables>,
    /// Transactions committed (the position [`Storage::compact`] reports).
    committed: AtomicU64,
    /// The thread running a transaction body, if any (to refuse re-entry instead of
    /// deadlocking).
    owner: Mutex<Option<ThreadId>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// The lock, for a read or a transaction; refused on the thread running a body.
    fn lock(&self) -> Result<MutexGuard<'_, Tables>> {
        let me = std::thread::current().id();
        if *self.owner.lock().unwrap_or_else(|p| p.into_inner()) == Some(me) {
            return Err(Error::Store(
                "the memory engine was used from inside a transaction body (read through the Tx)"
                    .into(),
            ));
        }
        Ok(self.tables.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn read<T>(&self, f: impl FnOnce(&Tables) -> T) -> Result<T> {
        Ok(f(&*self.lock()?))
    }

    /// Streams the values of `field` whose keys fall in `range`, without holding the lock
    /// while `each` runs (so that `each` may use the store): the lock is taken per chunk.
    fn stream<K, V, T>(
        &self,
        field: impl Fn(&Tables) -> &BTreeMap<K, V>,
        from: Bound<K>,
        to: Bound<K>,
        convert: impl Fn(&K, &V) -> T,
        each: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<()>
    where
        K: Ord + Clone,
    {
        const CHUNK: usize = 256;
        let mut from = from;
        loop {
            let chunk: Vec<(K, T)> = self.read(|t| {
                field(t)
                    .range((from.clone(), to.clone()))
                    .take(CHUNK)
                    .map(|(k, v)| (k.clone(), convert(k, v)))
                    .collect()
            })?;
            let full = chunk.len() == CHUNK;
            let mut last = None;
            for (k, item) in chunk {
                each(item)?;
                last = Some(k);
            }
            match last {
                Some(k) if full => from = Bound::Excluded(k),
                _ => return Ok(()),
            }
        }
    }
}

impl Storage for MemoryStorage {
    fn certificate(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<CertRecord>> {
        self.read(|t| t.certs.get(&(h, serial.to_vec())).cloned())
    }

    fn for_each_certificate(&self, each: &mut dyn FnMut(CertRecord) -> Result<()>) -> Result<()> {
        self.stream(
            |t| &t.certs,
            Bound::Unbounded,
            Bound::Unbounded,
            |_, c| c.clone(),
            each,
        )
    }

    fn roots(&self) -> Result<Vec<CertRecord>> {
        let mut out = Vec::new();
        self.for_each_certificate(&mut |c| {
            if c.kind == crate::records::CertKind::Root {
                out.push(c);
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn for_each_resident(&self, each: &mut dyn FnMut(Resident) -> Result<()>) -> Result<()> {
        self.stream(
            |t| &t.residents,
            Bound::Unbounded,
            Bound::Unbounded,
            |_, r| r.clone(),
            each,
        )
    }

    fn residents_by_identity(&self, name: &str, birth: time::Date) -> Result<Vec<Resident>> {
        let key = identity_key(name, birth);
        self.read(|t| {
            t.by_identity
                .range((key, String::new())..)
                .take_while(|((k, _), _)| *k == key)
                .filter_map(|((_, id), _)| t.residents.get(id).cloned())
                .collect()
        })
    }

    fn status_history(&self, h: Hierarchy, serial: &[u8]) -> Result<Vec<StatusChange>> {
        let from = (h, serial.to_vec(), i128::MIN);
        let to = (h, serial.to_vec(), i128::MAX);
        self.read(|t| t.status_log.range(from..=to).map(|(_, c)| *c).collect())
    }

    fn holder_certificates(&self, holder: &str) -> Result<Vec<(CertRecord, StatusRecord)>> {
        let t = self.lock()?;
        let from = (holder.to_owned(), Hierarchy::Signing, Vec::new());
        t.by_holder
            .range(from..)
            .take_while(|((who, _, _), _)| who == holder)
            .map(|((_, h, serial), _)| {
                let k = (*h, serial.clone());
                let cert = t.certs.get(&k).cloned().ok_or_else(|| {
                    Error::Store("holder index names a missing certificate".into())
                })?;
                let status = t
                    .status
                    .get(&k)
                    .copied()
                    .ok_or_else(|| Error::Store("certificate without status".into()))?;
                Ok((cert, status))
            })
            .collect()
    }

    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        self.read(|t| t.status.get(&(h, serial.to_vec())).copied())
    }

    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        self.read(|t| t.keys.get(fp).cloned())
    }

    fn serial_counter(&self, h: Hierarchy) -> Result<u64> {
        self.read(|t| t.counters.get(&h).copied().unwrap_or(0))
    }

    fn for_each_revoked(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        each: &mut dyn FnMut(Revoked) -> Result<()>,
    ) -> Result<()> {
        // Serials are unbounded byte strings: the scope ends before the next scope's start.
        let to = match &scope {
            Scope::Partition(p) if *p < u16::MAX => {
                Bound::Excluded((h, g, Scope::Partition(p + 1), Vec::new()))
            }
            Scope::Partition(_) => Bound::Excluded((h, g, Scope::Ca, Vec::new())),
            Scope::Municipal(m) => {
                Bound::Excluded((h, g, Scope::Municipal(m.range_end()), Vec::new()))
            }
            Scope::Ca => match g.checked_add(1) {
                Some(next) => Bound::Excluded((h, next, Scope::Partition(0), Vec::new())),
                None => match Hierarchy::ALL.iter().find(|n| **n > h) {
                    Some(next) => Bound::Excluded((*next, 0, Scope::Partition(0), Vec::new())),
                    None => Bound::Unbounded,
                },
            },
        };
        let from = (h, g, scope, Vec::new());
        self.stream(
            |t| &t.revoked,
            Bound::Included(from),
            to,
            |(_, _, _, serial), entry| Revoked {
                serial: serial.clone(),
                entry: *entry,
            },
            each,
        )
    }

    fn dirty_partitions(&self) -> Result<Vec<CrlId>> {
        self.read(|t| t.dirty.keys().cloned().collect())
    }

    fn crl_scopes(&self) -> Result<Vec<CrlId>> {
        self.read(|t| {
            let all: std::collections::BTreeSet<_> =
                t.dirty.keys().chain(t.crl_state.keys()).cloned().collect();
            all.into_iter().collect()
        })
    }

    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>> {
        self.read(|t| t.crl_state.get(&(h, g, scope)).cloned())
    }

    fn resident(&self, id: &str) -> Result<Option<Resident>> {
        self.read(|t| t.residents.get(id).cloned())
    }

    fn due_events(&self, until: OffsetDateTime) -> Result<Vec<Scheduled>> {
        self.read(|t| {
            t.scheduled
                .iter()
                .take_while(|((at, _), _)| *at <= until)
                .map(scheduled)
                .collect()
        })
    }

    fn next_event(&self) -> Result<Option<Scheduled>> {
        self.read(|t| t.scheduled.iter().next().map(scheduled))
    }

    fn audit_head(&self) -> Result<Option<Head>> {
        self.read(|t| t.audit_head.get(&()).cloned())
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.read(|t| t.checkpoints.values().cloned().collect())
    }

    fn audit_records(&self, from: u64, limit: usize) -> Result<Vec<Record>> {
        self.read(|t| {
            t.audit
                .range(from..)
                .take(limit)
                .map(|(_, r)| r.clone())
                .collect()
        })
    }

    fn operator(&self, id: &str) -> Result<Option<Operator>> {
        self.read(|t| t.operators.get(id).cloned())
    }

    fn operator_named(&self, name: &str) -> Result<Option<String>> {
        self.read(|t| t.operator_names.get(name).cloned())
    }

    fn operator_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.read(|t| t.operator_keys.get(fp).cloned())
    }

    fn operators(&self) -> Result<Vec<Operator>> {
        self.read(|t| t.operators.values().cloned().collect())
    }

    fn officer(&self, id: &str) -> Result<Option<Officer>> {
        self.read(|t| t.officers.get(id).cloned())
    }

    fn officer_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.read(|t| t.officer_keys.get(fp).cloned())
    }

    fn officers(&self) -> Result<Vec<Officer>> {
        self.read(|t| t.officers.values().cloned().collect())
    }

    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>> {
        self.read(|t| t.sps.get(id).cloned())
    }

    fn service_providers(&self) -> Result<Vec<ServiceProvider>> {
        self.read(|t| t.sps.values().cloned().collect())
    }

    fn consent(&self, id: &str) -> Result<Option<Consent>> {
        self.read(|t| t.consents.get(id).cloned())
    }

    fn consents_of(&self, holder: &str, sp: &str) -> Result<Vec<Consent>> {
        let t = self.lock()?;
        let from = (holder.to_owned(), sp.to_owned(), String::new());
        t.holder_consents
            .range(from..)
            .take_while(|((h, s, _), _)| h == holder && s == sp)
            .map(|((_, _, id), _)| {
                t.consents
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::Store(format!("consent index names a missing {id}")))
            })
            .collect()
    }

    fn access_log(&self, holder: &str) -> Result<Vec<Access>> {
        self.read(|t| {
            t.access
                .range((holder.to_owned(), i128::MIN, 0)..)
                .take_while(|((h, _, _), _)| h == holder)
                .map(|(_, a)| a.clone())
                .collect()
        })
    }

    fn access_count(&self) -> Result<u64> {
        self.read(|t| t.access.len() as u64)
    }

    fn sp_consents(&self, sp: &str, after: Option<&str>, limit: usize) -> Result<Vec<Consent>> {
        let t = self.lock()?;
        let from = (sp.to_owned(), after.unwrap_or_default().to_owned());
        let lower = match after {
            Some(_) => Bound::Excluded(from),
            None => Bound::Included(from),
        };
        t.nonces
            .range((lower, Bound::Unbounded))
            .take_while(|((s, _), _)| s == sp)
            .take(limit)
            .map(|(_, id)| {
                t.consents
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::Store(format!("nonce index names a missing {id}")))
            })
            .collect()
    }

    fn for_each_usage(&self, each: &mut dyn FnMut(Usage) -> Result<()>) -> Result<()> {
        // Copied out first: `each` may use the store.
        let all = self.read(|t| {
            t.usage
                .iter()
                .map(|((month, pf, sp, endpoint, cert_type), n)| Usage {
                    month: month.clone(),
                    pf: pf.clone(),
                    sp: sp.clone(),
                    endpoint: endpoint.clone(),
                    cert_type: cert_type.clone(),
                    count: *n,
                })
                .collect::<Vec<_>>()
        })?;
        all.into_iter().try_for_each(each)
    }

    fn usage(&self, month: &str) -> Result<Vec<Usage>> {
        self.read(|t| {
            t.usage
                .range(
                    (
                        month.to_owned(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    )..,
                )
                .take_while(|(k, _)| k.0 == month)
                .map(|((month, pf, sp, endpoint, cert_type), n)| Usage {
                    month: month.clone(),
                    pf: pf.clone(),
                    sp: sp.clone(),
                    endpoint: endpoint.clone(),
                    cert_type: cert_type.clone(),
                    count: *n,
                })
                .collect()
        })
    }

    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<()>) -> Result<()> {
        let mut tables = self.lock()?;
        let _owner = Owner::claim(&self.owner);
        let tx = MemoryTx {
            tables: RefCell::new(&mut *tables),
            undo: RefCell::new(Vec::new()),
            at_commit: RefCell::new(Vec::new()),
            done: Cell::new(false),
        };
        body(&tx)?;
        tx.commit()?;
        self.committed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn check_consistency(&self) -> Result<u64> {
        let broken = |what: String| Error::Store(format!("index check: {what}"));
        let t = self.lock()?;
        let mut n = 0;
        for (k, c) in &t.certs {
            let hexs = hex::encode_upper(&c.serial);
            if *k != (c.hierarchy, c.serial.clone()) {
                return Err(broken(format!("{hexs} is stored under another key")));
            }
            let Some(st) = t.status.get(k) else {
                return Err(broken(format!("{hexs} has no status")));
            };
            let (h, g, scope) = crl_of(c);
            let listed = t.revoked.get(&(h, g, scope, c.serial.clone()));
            crate::storage::check_listing(c, st, listed)?;
            if let Some(holder) = &c.holder {
                if !t
                    .by_holder
                    .contains_key(&(holder.clone(), c.hierarchy, c.serial.clone()))
                {
                    return Err(broken(format!("{hexs} is missing from its holder's index")));
                }
                if !t.keys.contains_key(&fingerprint(&c.spki()?)) {
                    return Err(broken(format!(
                        "{hexs}: its key is missing from the key index"
                    )));
                }
            }
            n += 1;
        }
        for (_, h, serial) in t.by_holder.keys() {
            if !t.certs.contains_key(&(*h, serial.clone())) {
                return Err(broken(format!(
                    "holder index names a missing certificate {}",
                    hex::encode_upper(serial)
                )));
            }
        }
        for (h, g, scope, serial) in t.revoked.keys() {
            let hexs = hex::encode_upper(serial);
            match t.certs.get(&(*h, serial.clone())) {
                None => {
                    return Err(broken(format!(
                        "a revoked entry names a missing certificate {hexs}"
                    )))
                }
                Some(c) if scope_of(c) != *scope || c.generation != *g => {
                    return Err(broken(format!(
                        "{hexs} is listed on another CRL than its own"
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(n)
    }

    fn compact(&self) -> Result<Compaction> {
        Ok(Compaction {
            position: self.committed.load(Ordering::SeqCst),
            ..Compaction::default()
        })
    }

    fn journal_bytes(&self) -> Result<u64> {
        Ok(0)
    }

    fn commit_stats(&self) -> CommitStats {
        let committed = self.committed.load(Ordering::SeqCst);
        CommitStats {
            batches: committed,
            transactions: committed,
            ..CommitStats::default()
        }
    }

    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool> {
        self.read(|t| t.blocked_keys.contains_key(fp))
    }

    fn for_each_blocked_key(
        &self,
        each: &mut dyn FnMut(KeyFingerprint) -> Result<()>,
    ) -> Result<()> {
        // Copied out first, so that `each` may use the store.
        let all: Vec<KeyFingerprint> = self.read(|t| t.blocked_keys.keys().copied().collect())?;
        for fp in all {
            each(fp)?;
        }
        Ok(())
    }

    fn revocations_since(&self, after: u64, limit: usize) -> Result<Vec<RevocationLogEntry>> {
        self.read(|t| {
            t.revlog
                .range(after.saturating_add(1)..)
                .take(limit)
                .map(|(seq, (h, serial))| RevocationLogEntry {
                    seq: *seq,
                    hierarchy: *h,
                    serial: serial.clone(),
                })
                .collect()
        })
    }

    fn revocation_log_head(&self) -> Result<u64> {
        self.read(|t| t.revlog.keys().next_back().copied().unwrap_or(0))
    }

    fn issued_since(&self, after: u64, limit: usize) -> Result<Vec<IssuedEntry>> {
        self.read(|t| {
            t.isslog
                .range(after.saturating_add(1)..)
                .take(limit)
                .map(|(seq, ((h, serial), not_after))| IssuedEntry {
                    seq: *seq,
                    hierarchy: *h,
                    serial: serial.clone(),
                    not_after: *not_after,
                })
                .collect()
        })
    }

    fn issuance_log_head(&self) -> Result<u64> {
        self.read(|t| t.isslog.keys().next_back().copied().unwrap_or(0))
    }

    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>> {
        self.read(|t| t.leases.get(&(h, g, scope)).cloned())
    }

    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>> {
        self.read(|t| {
            t.signer_requests
                .get(&(node.to_owned(), h, generation))
                .cloned()
        })
    }

    fn pending_signer_requests(&self) -> Result<Vec<SignerRequest>> {
        self.read(|t| {
            t.signer_requests
                .values()
                .filter(|r| r.answer.is_none())
                .cloned()
                .collect()
        })
    }
}

fn scheduled(((at, resident), kind): (&(OffsetDateTime, String), &ScheduledKind)) -> Scheduled {
    Scheduled {
        at: *at,
        resident: resident.clone(),
        kind: *kind,
    }
}

/// Marks the current thread as running a body until dropped.
struct Owner<'a>(&'a Mutex<Option<ThreadId>>);

impl<'a> Owner<'a> {
    fn claim(slot: &'a Mutex<Option<ThreadId>>) -> Owner<'a> {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current().id());
        Owner(slot)
    }
}

impl Drop for Owner<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Restores one value a transaction overwrote.
type Undo = Box<dyn FnOnce(&mut Tables)>;

/// A write resolved at commit, in the order the body asked for it.
enum AtCommit {
    Serial(Hierarchy, u64),
    Audit(AuditIntent),
    Import(Record),
}

/// A unit of work on the locked tables: writes applied in place and logged for undo.
struct MemoryTx<'a> {
    tables: RefCell<&'a mut Tables>,
    undo: RefCell<Vec<Undo>>,
    at_commit: RefCell<Vec<AtCommit>>,
    /// Set once committed: dropping an uncommitted unit of work undoes it.
    done: Cell<bool>,
}

impl MemoryTx<'_> {
    fn get<K, V, Q>(&self, field: fn(&Tables) -> &BTreeMap<K, V>, key: &Q) -> Option<V>
    where
        K: Ord + std::borrow::Borrow<Q>,
        V: Clone,
        Q: Ord + ?Sized,
    {
        let tables = self.tables.borrow();
        field(&tables).get(key).cloned()
    }

    fn has<K, V, Q>(&self, field: fn(&Tables) -> &BTreeMap<K, V>, key: &Q) -> bool
    where
        K: Ord + std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let tables = self.tables.borrow();
        field(&tables).contains_key(key)
    }

    /// Sets `key` to `value` (`None`: removes it), logging the old value.
    /// Appends `value` to the numbered log `field` (the revocation or the issuance log):
    /// numbered from 1, one past its last entry (units of work commit one at a time here, so
    /// numbers are in commit order), undone with the unit of work.
    fn append_numbered<V: 'static>(
        &self,
        field: fn(&mut Tables) -> &mut BTreeMap<u64, V>,
        value: V,
    ) {
        let seq = field(&mut self.tables.borrow_mut())
            .keys()
            .next_back()
            .map_or(1, |s| s + 1);
        self.set(field, seq, Some(value));
    }

    fn set<K, V>(&self, field: fn(&mut Tables) -> &mut BTreeMap<K, V>, key: K, value: Option<V>)
    where
        K: Ord + Clone + 'static,
        V: 'static,
    {
        let mut tables = self.tables.borrow_mut();
        let map = field(&mut tables);
        let old = match value {
            Some(v) => map.insert(key.clone(), v),
            None => map.remove(&key),
        };
        self.undo.borrow_mut().push(Box::new(move |t: &mut Tables| {
            let map = field(t);
            match old {
                Some(v) => map.insert(key, v),
                None => map.remove(&key),
            };
        }));
    }

    /// Resolves the serial counters and links the audit records, in order; then the unit of
    /// work stands.
    fn commit(self) -> Result<()> {
        let at_commit = std::mem::take(&mut *self.at_commit.borrow_mut());
        for w in at_commit {
            match w {
                AtCommit::Serial(h, n) => {
                    let stored = self.get(|t| &t.counters, &h).unwrap_or(0);
                    if n > stored {
                        self.set(|t| &mut t.counters, h, Some(n));
                    }
                }
                AtCommit::Audit(a) => {
                    let head = self.get(|t| &t.audit_head, &());
                    let (record, head) = crate::audit::link(head.as_ref(), &a)?;
                    self.set(|t| &mut t.audit, record.seq, Some(record));
                    self.set(|t| &mut t.audit_head, (), Some(head));
                }
                AtCommit::Import(record) => {
                    let head = self.get(|t| &t.audit_head, &());
                    let head = crate::audit::follow(head.as_ref(), &record)?;
                    self.set(|t| &mut t.audit, record.seq, Some(record));
                    self.set(|t| &mut t.audit_head, (), Some(head));
                }
            }
        }
        self.done.set(true);
        Ok(())
    }
}

impl Drop for MemoryTx<'_> {
    /// An error or a panic in the body (or at commit): play the undo log backwards.
    fn drop(&mut self) {
        if self.done.get() {
            return;
        }
        let tables: &mut Tables = self.tables.get_mut();
        for undo in self.undo.get_mut().drain(..).rev() {
            undo(tables);
        }
    }
}

impl Tx for MemoryTx<'_> {
    fn certificate_exists(&self, h: Hierarchy, serial: &[u8]) -> Result<bool> {
        Ok(self.has(|t| &t.certs, &(h, serial.to_vec())))
    }

    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        Ok(self.get(|t| &t.status, &(h, serial.to_vec())))
    }

    fn resident(&self, id: &str) -> Result<Option<Resident>> {
        Ok(self.get(|t| &t.residents, id))
    }

    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        Ok(self.get(|t| &t.keys, fp))
    }

    fn crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool> {
        Ok(self.has(|t| &t.dirty, &(h, g, scope)))
    }

    fn operator(&self, id: &str) -> Result<Option<Operator>> {
        Ok(self.get(|t| &t.operators, id))
    }

    fn operator_named(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(|t| &t.operator_names, name))
    }

    fn operator_by_key(&self, fp: &str) -> Result<Option<String>> {
        Ok(self.get(|t| &t.operator_keys, fp))
    }

    fn service_provider_named(&self, pf: &str, name: &str) -> Result<Option<String>> {
        Ok(self.get(|t| &t.sp_names, &(pf.to_owned(), name.to_owned())))
    }

    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>> {
        Ok(self.get(|t| &t.sps, id))
    }

    fn consent(&self, id: &str) -> Result<Option<Consent>> {
        Ok(self.get(|t| &t.consents, id))
    }

    fn consent_nonce_used(&self, sp: &str, nonce: &str) -> Result<bool> {
        Ok(self.has(|t| &t.nonces, &(sp.to_owned(), nonce.to_owned())))
    }

    fn officer(&self, id: &str) -> Result<Option<Officer>> {
        Ok(self.get(|t| &t.officers, id))
    }

    fn officer_named(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(|t| &t.officer_names, name))
    }

    fn officer_by_key(&self, fp: &str) -> Result<Option<String>> {
        Ok(self.get(|t| &t.officer_keys, fp))
    }

    fn add_certificate(&self, c: &CertRecord, key: Option<&KeyFingerprint>) -> Result<()> {
        let k = (c.hierarchy, c.serial.clone());
        if self.has(|t| &t.certs, &k) {
            return Err(crate::storage::serial_taken(c));
        }
        self.set(|t| &mut t.certs, k.clone(), Some(c.clone()));
        self.set(|t| &mut t.status, k, Some(StatusRecord::GOOD));
        if let Some(holder) = &c.holder {
            self.append_numbered(
                |t| &mut t.isslog,
                ((c.hierarchy, c.serial.clone()), c.not_after),
            );
            self.set(
                |t| &mut t.by_holder,
                (holder.clone(), c.hierarchy, c.serial.clone()),
                Some(()),
            );
            if let Some(fp) = key {
                let owner = KeyOwner {
                    holder: holder.clone(),
                    hierarchy: c.hierarchy,
                };
                self.set(|t| &mut t.keys, *fp, Some(owner));
            }
        }
        Ok(())
    }

    fn set_status(&self, c: &CertRecord, status: &StatusRecord) -> Result<()> {
        let (h, g, scope) = crl_of(c);
        self.set(
            |t| &mut t.status,
            (c.hierarchy, c.serial.clone()),
            Some(*status),
        );
        let entry = revoked_entry(c, status)?;
        self.set(
            |t| &mut t.revoked,
            (h, g, scope.clone(), c.serial.clone()),
            entry,
        );
        self.append_numbered(|t| &mut t.revlog, (c.hierarchy, c.serial.clone()));
        self.set_crl_dirty(h, g, scope)
    }

    fn note_serial(&self, h: Hierarchy, n: u64) -> Result<()> {
        self.at_commit.borrow_mut().push(AtCommit::Serial(h, n));
        Ok(())
    }

    fn put_resident(&self, r: &Resident) -> Result<()> {
        let key = |r: &Resident| identity_key(r.attributes.name(), r.attributes.birth());
        let new = key(r);
        match self.get(|t| &t.residents, r.id.as_str()) {
            Some(old) if key(&old) == new => {}
            Some(old) => {
                self.set(|t| &mut t.by_identity, (key(&old), r.id.clone()), None);
                self.set(|t| &mut t.by_identity, (new, r.id.clone()), Some(()));
            }
            None => self.set(|t| &mut t.by_identity, (new, r.id.clone()), Some(())),
        }
        self.set(|t| &mut t.residents, r.id.clone(), Some(r.clone()));
        Ok(())
    }

    fn schedule(&self, s: &Scheduled) -> Result<()> {
        self.set(
            |t| &mut t.scheduled,
            (s.at, s.resident.clone()),
            Some(s.kind),
        );
        Ok(())
    }

    fn unschedule(&self, s: &Scheduled) -> Result<()> {
        self.set(|t| &mut t.scheduled, (s.at, s.resident.clone()), None);
        Ok(())
    }

    fn audit(&self, record: AuditIntent) -> Result<()> {
        self.at_commit.borrow_mut().push(AtCommit::Audit(record));
        Ok(())
    }

    fn import_audit(&self, record: Record) -> Result<()> {
        self.at_commit.borrow_mut().push(AtCommit::Import(record));
        Ok(())
    }

    fn put_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        self.set(|t| &mut t.checkpoints, c.seq, Some(c.clone()));
        Ok(())
    }

    fn set_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()> {
        self.set(|t| &mut t.dirty, (h, g, scope), Some(()));
        Ok(())
    }

    fn clear_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()> {
        self.set(|t| &mut t.dirty, (h, g, scope), None);
        Ok(())
    }

    fn put_crl_state(&self, h: Hierarchy, g: Generation, scope: Scope, state: &[u8]) -> Result<()> {
        self.set(|t| &mut t.crl_state, (h, g, scope), Some(state.to_vec()));
        Ok(())
    }

    fn put_operator(&self, op: &Operator) -> Result<()> {
        self.set(|t| &mut t.operators, op.id.clone(), Some(op.clone()));
        self.set(
            |t| &mut t.operator_names,
            op.name.clone(),
            Some(op.id.clone()),
        );
        Ok(())
    }

    fn bind_operator_key(&self, fp: &str, operator: &str) -> Result<()> {
        self.set(
            |t| &mut t.operator_keys,
            fp.to_owned(),
            Some(operator.to_owned()),
        );
        Ok(())
    }

    fn put_service_provider(&self, sp: &ServiceProvider) -> Result<()> {
        self.set(|t| &mut t.sps, sp.id.clone(), Some(sp.clone()));
        self.set(
            |t| &mut t.sp_names,
            (sp.pf.clone(), sp.name.clone()),
            Some(sp.id.clone()),
        );
        Ok(())
    }

    fn put_consent(&self, c: &Consent) -> Result<()> {
        self.set(
            |t| &mut t.nonces,
            (c.sp.clone(), c.nonce.clone()),
            Some(c.id.clone()),
        );
        self.set(|t| &mut t.consents, c.id.clone(), Some(c.clone()));
        self.set(
            |t| &mut t.holder_consents,
            (c.holder.clone(), c.sp.clone(), c.id.clone()),
            Some(()),
        );
        Ok(())
    }

    fn append_access(&self, a: &Access, seq: u64) -> Result<()> {
        self.set(
            |t| &mut t.access,
            (a.holder.clone(), a.at.unix_timestamp_nanos(), seq),
            Some(a.clone()),
        );
        Ok(())
    }

    fn put_officer(&self, o: &Officer) -> Result<()> {
        if let Some(old) = self
            .get(|t| &t.officers, &o.id)
            .filter(|old| old.key != o.key)
        {
            self.set(|t| &mut t.officer_keys, old.key, None);
        }
        self.set(|t| &mut t.officers, o.id.clone(), Some(o.clone()));
        self.set(|t| &mut t.officer_names, o.name.clone(), Some(o.id.clone()));
        self.set(|t| &mut t.officer_keys, o.key.clone(), Some(o.id.clone()));
        Ok(())
    }

    fn add_usage(&self, u: &Usage) -> Result<()> {
        let key = usage_key(u);
        let now = self.get(|t| &t.usage, &key).unwrap_or(0);
        let total = now
            .checked_add(u.count)
            .ok_or_else(|| Error::Store("usage counter overflow".into()))?;
        self.set(|t| &mut t.usage, key, Some(total));
        Ok(())
    }

    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool> {
        Ok(self.has(|t| &t.blocked_keys, fp))
    }

    fn block_key(&self, fp: &KeyFingerprint) -> Result<()> {
        self.set(|t| &mut t.blocked_keys, *fp, Some(()));
        Ok(())
    }

    fn log_status(&self, c: &CertRecord, change: &StatusChange) -> Result<()> {
        let key = (
            c.hierarchy,
            c.serial.clone(),
            change.at.unix_timestamp_nanos(),
        );
        self.set(|t| &mut t.status_log, key, Some(*change));
        Ok(())
    }

    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>> {
        Ok(self.get(|t| &t.crl_state, &(h, g, scope)))
    }

    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>> {
        Ok(self.get(|t| &t.leases, &(h, g, scope)))
    }

    fn put_crl_lease(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        lease: &CrlLease,
    ) -> Result<()> {
        self.set(|t| &mut t.leases, (h, g, scope), Some(lease.clone()));
        Ok(())
    }

    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>> {
        Ok(self.get(|t| &t.signer_requests, &(node.to_owned(), h, generation)))
    }

    fn import_revocation_log(&self, entries: &[RevocationLogEntry]) -> Result<()> {
        let existing: Vec<u64> = self.tables.borrow().revlog.keys().copied().collect();
        for seq in existing {
            self.set(|t| &mut t.revlog, seq, None);
        }
        for e in entries {
            self.set(
                |t| &mut t.revlog,
                e.seq,
                Some((e.hierarchy, e.serial.clone())),
            );
        }
        Ok(())
    }

    fn put_signer_request(&self, r: &SignerRequest) -> Result<()> {
        self.set(
            |t| &mut t.signer_requests,
            (r.node.clone(), r.hierarchy, r.generation),
            Some(r.clone()),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStorage;
    use crate::storage::conformance::Fixture;
    use crate::storage::Storage;

    fn fresh() -> Fixture<MemoryStorage> {
        Fixture::new(MemoryStorage::new())
    }

    crate::storage_conformance!(fresh);

    #[test]
    fn the_whole_suite_runs_in_one_call() {
        crate::storage::conformance::run(&fresh);
    }

    #[test]
    fn a_storage_call_inside_a_body_is_refused_not_deadlocked() {
        let s = MemoryStorage::new();
        let e = s
            .transact(&|_| s.resident("R1").map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside a transaction body"), "{e}");
        let e = s
            .transact(&|_| s.transact(&|_| Ok(())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside a transaction body"), "{e}");
        // The lock and the owner mark are released: the store is usable again.
        assert!(s.resident("R1").unwrap().is_none());
        s.transact(&|_| Ok(())).unwrap();
    }

    #[test]
    fn a_panicking_body_changes_nothing() {
        let s = MemoryStorage::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = s.transact(&|t| {
                t.put_crl_state(
                    policies::Hierarchy::Auth,
                    1,
                    policies::profile::Scope::Ca,
                    b"x",
                )?;
                panic!("planned");
            });
        }));
        assert!(r.is_err());
        assert_eq!(
            s.crl_state(policies::Hierarchy::Auth, 1, policies::profile::Scope::Ca)
                .unwrap(),
            None
        );
        s.transact(&|_| Ok(())).unwrap();
    }
}
