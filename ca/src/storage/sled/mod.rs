//! The sled engine: the embedded default. [`kv`] is its key-value core (write-ahead journal,
//! group commit, snapshots, recovery: docs/store.md), [`layout`] every key and record
//! encoding, and this module the storage authority's domain calls over them.

mod kv;
#[doc(hidden)]
pub use kv::fuzz_read_records;
pub use kv::SledOptions;
pub mod layout;

use std::path::{Path, PathBuf};

use policies::profile::Scope;
use policies::Hierarchy;
use time::OffsetDateTime;

use self::kv::{Kv, Table, Txn};
use self::layout as l;
use crate::audit::{AuditIntent, Head, Record};
use crate::error::{Error, Result};
use crate::officers::Officer;
use crate::records::platform::{Access, Consent, Operator, ServiceProvider, Usage};
use crate::records::{CertKind, CertRecord, Resident, StatusChange, StatusRecord};
use crate::storage::SignerRequest;
use crate::storage::{
    CommitStats, Compaction, CrlId, CrlLease, Generation, IssuedEntry, KeyFingerprint, KeyOwner,
    RevocationLogEntry, Revoked, Scheduled, Storage, Tx,
};

/// The storage authority on sled (see the module docs).
pub struct SledStorage {
    kv: Kv,
}

impl SledStorage {
    /// Opens (or creates) the store in `dir` (`dir/journal`, `dir/sled/`), replaying or
    /// rebuilding from the journal as needed. A second process gets [`Error::Locked`].
    pub fn open(dir: &Path) -> Result<SledStorage> {
        SledStorage::open_with(dir, &SledOptions::default())
    }

    /// [`SledStorage::open`] with sled opened as `options` say (`jpki serve` bounds its page
    /// cache: `[store] cache_mib`).
    pub fn open_with(dir: &Path, options: &SledOptions) -> Result<SledStorage> {
        let s = SledStorage {
            kv: Kv::open_with(dir, options)?,
        };
        s.index_identities()?;
        s.index_roots()?;
        Ok(s)
    }

    /// Fills the root index of a store made before it existed (one walk over every
    /// certificate, once: a mark in the meta table says the index is complete). Until then —
    /// a read-only copy of such a store — [`Storage::roots`] walks.
    fn index_roots(&self) -> Result<()> {
        if self.kv.get(Table::Meta, ROOTS_INDEXED)?.is_some() {
            return Ok(());
        }
        let mut keys = Vec::new();
        for item in self.kv.scan(Table::Certs, b"") {
            let c = l::cert_from_store(&item?.1)?;
            if c.kind == CertKind::Root {
                keys.push(l::root_index_key(c.hierarchy, &c.serial));
            }
        }
        self.kv.transact(&|t| {
            for k in &keys {
                t.insert(Table::Meta, k, b"")?;
            }
            t.insert(Table::Meta, ROOTS_INDEXED, b"1")
        })
    }

    /// Bytes of page cache sled was opened with.
    pub fn cache_capacity(&self) -> u64 {
        self.kv.cache_capacity()
    }

    /// Fills the register's identity index of a store made before it existed (one unit of
    /// work, once: a mark in the meta table says the index is complete). Until then —
    /// a read-only copy of such a store — [`Storage::residents_by_identity`] scans.
    fn index_identities(&self) -> Result<()> {
        if self.kv.get(Table::Meta, IDENTITY_INDEXED)?.is_some() {
            return Ok(());
        }
        let mut keys = Vec::new();
        for item in self.kv.scan(Table::Residents, b"") {
            let r = l::resident_from_store(&item?.1)?;
            keys.push(identity_entry(&r));
        }
        self.kv.transact(&|t| {
            for k in &keys {
                t.insert(Table::ByIdentity, k, b"")?;
            }
            t.insert(Table::Meta, IDENTITY_INDEXED, b"1")
        })
    }

    /// Opens the store in `dir` for reading only (`jpki --read-only`: a copy on read-only
    /// media): nothing in `dir` is created, locked or changed, and every write is refused
    /// with [`Error::ReadOnly`].
    pub fn open_read_only(dir: &Path) -> Result<SledStorage> {
        Ok(SledStorage {
            kv: Kv::open_read_only(dir)?,
        })
    }

    /// Path of the journal of a store directory.
    pub fn journal_path(dir: &Path) -> PathBuf {
        Kv::journal_path(dir)
    }

    fn scan_values<T>(
        &self,
        t: Table,
        prefix: &[u8],
        decode: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.kv
            .scan(t, prefix)
            .map(|r| r.and_then(|(_, v)| decode(&v)))
            .collect()
    }

    /// Up to `limit` entries of the numbered log under `prefix` (the revocation or the
    /// issuance log) after sequence number `after`, in order.
    fn log_since<T>(
        &self,
        prefix: &[u8],
        after: u64,
        limit: usize,
        decode: fn(&[u8], &[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut end = prefix.to_vec();
        end.extend_from_slice(&[0xFF; 9]);
        let mut out = Vec::new();
        for item in self
            .kv
            .range(Table::Meta, &l::numbered_key(prefix, from), &end)
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// The last sequence number of the numbered log whose head is kept under `head` (0: empty).
    fn log_head(&self, head: &[u8]) -> Result<u64> {
        self.kv
            .get(Table::Meta, head)?
            .map(|b| l::counter_from_store(&b))
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

/// The domain reads that the storage and a unit of work both make, over one key-value `get`
/// (the store's, or the transaction's, which remembers what it read).
trait Reads {
    fn raw(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;

    fn get_with<T>(
        &self,
        t: Table,
        key: &[u8],
        decode: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        self.raw(t, key)?.map(|b| decode(&b)).transpose()
    }
    fn status_of(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        self.get_with(Table::Status, &l::cert_key(h, serial), l::status_from_store)
    }
    fn resident_of(&self, id: &str) -> Result<Option<Resident>> {
        self.get_with(Table::Residents, id.as_bytes(), l::resident_from_store)
    }
    fn owner_of(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        self.get_with(Table::Keys, l::key_key(fp), l::key_owner_from_store)
    }
    fn operator_of(&self, id: &str) -> Result<Option<Operator>> {
        self.get_with(Table::Operators, &l::pf_key(id), l::operator_from_store)
    }
    fn operator_id_named(&self, name: &str) -> Result<Option<String>> {
        self.get_with(Table::Operators, &l::pf_name_key(name), l::id_from_store)
    }
    fn operator_id_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.get_with(Table::Operators, &l::pf_client_key(fp), l::id_from_store)
    }
    fn sp_of(&self, id: &str) -> Result<Option<ServiceProvider>> {
        self.get_with(Table::Operators, &l::sp_key(id), l::sp_from_store)
    }
    fn consent_of(&self, id: &str) -> Result<Option<Consent>> {
        self.get_with(Table::Consents, &l::consent_key(id), l::consent_from_store)
    }
    fn officer_of(&self, id: &str) -> Result<Option<Officer>> {
        self.get_with(Table::Officers, &l::officer_key(id), l::officer_from_store)
    }
    fn officer_id_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.get_with(
            Table::Officers,
            &l::officer_client_key(fp),
            l::id_from_store,
        )
    }
}

impl Reads for Kv {
    fn raw(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(t, key)
    }
}

impl Reads for SledTx<'_> {
    fn raw(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(t, key)
    }
}

impl Storage for SledStorage {
    fn certificate(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<CertRecord>> {
        self.kv
            .get_with(Table::Certs, &l::cert_key(h, serial), l::cert_from_store)
    }

    fn for_each_certificate(&self, each: &mut dyn FnMut(CertRecord) -> Result<()>) -> Result<()> {
        for item in self.kv.scan(Table::Certs, b"") {
            each(l::cert_from_store(&item?.1)?)?;
        }
        Ok(())
    }

    fn roots(&self) -> Result<Vec<CertRecord>> {
        let mut out = Vec::new();
        if self.kv.get(Table::Meta, ROOTS_INDEXED)?.is_none() {
            // A read-only copy of a store made before the index: walk.
            self.for_each_certificate(&mut |c| {
                if c.kind == CertKind::Root {
                    out.push(c);
                }
                Ok(())
            })?;
            return Ok(out);
        }
        for item in self.kv.scan(Table::Meta, l::ROOT_INDEX_PREFIX) {
            let (k, _) = item?;
            let key = &k[l::ROOT_INDEX_PREFIX.len()..];
            // Written in the unit of work that added the certificate, never removed.
            let c = self
                .kv
                .get(Table::Certs, key)?
                .ok_or_else(|| Error::Store("root index: a root that is not stored".into()))?;
            out.push(l::cert_from_store(&c)?);
        }
        Ok(out)
    }
    fn residents_by_identity(&self, name: &str, birth: time::Date) -> Result<Vec<Resident>> {
        let key = crate::storage::identity_key(name, birth);
        if self.kv.get(Table::Meta, IDENTITY_INDEXED)?.is_none() {
            // A read-only copy of a store made before the index: scan.
            let mut out = Vec::new();
            self.for_each_resident(&mut |r| {
                if crate::storage::identity_key(r.attributes.name(), r.attributes.birth()) == key {
                    out.push(r);
                }
                Ok(())
            })?;
            return Ok(out);
        }
        let mut out = Vec::new();
        for item in self.kv.scan(Table::ByIdentity, &key) {
            let (k, _) = item?;
            let id = std::str::from_utf8(&k[key.len()..])
                .map_err(|_| Error::Store("identity index: an id that is not UTF-8".into()))?;
            // Read after the index entry: a resident is never removed, so it is there.
            if let Some(r) = self.kv.resident_of(id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn for_each_resident(&self, each: &mut dyn FnMut(Resident) -> Result<()>) -> Result<()> {
        for item in self.kv.scan(Table::Residents, b"") {
            each(l::resident_from_store(&item?.1)?)?;
        }
        Ok(())
    }

    fn status_history(&self, h: Hierarchy, serial: &[u8]) -> Result<Vec<StatusChange>> {
        let mut out = Vec::new();
        for item in self.kv.scan(Table::StatusLog, &l::cert_key(h, serial)) {
            let (k, v) = item?;
            if l::is_status_change_of(&k, h, serial) {
                out.push(l::status_change_from_store(&v)?);
            }
        }
        Ok(out)
    }

    fn holder_certificates(&self, holder: &str) -> Result<Vec<(CertRecord, StatusRecord)>> {
        let mut out = Vec::new();
        for item in self.kv.scan(Table::ByHolder, &l::holder_prefix(holder)) {
            let (k, _) = item?;
            let (h, serial) = l::split_holder_key(&k)?;
            let cert = self
                .certificate(h, serial)?
                .ok_or_else(|| Error::Store("holder index names a missing certificate".into()))?;
            let status = Storage::status(self, h, serial)?
                .ok_or_else(|| Error::Store("certificate without status".into()))?;
            out.push((cert, status));
        }
        Ok(out)
    }

    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        self.kv.status_of(h, serial)
    }

    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        self.kv.owner_of(fp)
    }

    fn serial_counter(&self, h: Hierarchy) -> Result<u64> {
        Ok(self
            .kv
            .get_with(Table::Meta, &l::counter_key(h), l::counter_from_store)?
            .unwrap_or(0))
    }

    fn for_each_revoked(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        each: &mut dyn FnMut(Revoked) -> Result<()>,
    ) -> Result<()> {
        let prefix = l::scope_key(h, g, &scope);
        for item in self.kv.scan(Table::Revoked, &prefix) {
            let (k, v) = item?;
            each(Revoked {
                serial: k[prefix.len()..].to_vec(),
                entry: l::revoked_decode(&v)?,
            })?;
        }
        Ok(())
    }

    fn dirty_partitions(&self) -> Result<Vec<CrlId>> {
        let mut out = Vec::new();
        for item in self.kv.scan(Table::Crl, b"") {
            let (k, _) = item?;
            out.extend(l::split_dirty_key(&k));
        }
        // Keys of later generations sort after generation 1's: (h, g, scope) order.
        out.sort();
        Ok(out)
    }

    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>> {
        self.kv.get(Table::Crl, &l::scope_key(h, g, &scope))
    }

    fn crl_scopes(&self) -> Result<Vec<CrlId>> {
        // `crl` holds each CRL's state under its scope key and its dirty flag under the
        // scope key + `/dirty`: both name the CRL.
        let mut out = std::collections::BTreeSet::new();
        for item in self.kv.scan(Table::Crl, b"") {
            let (k, _) = item?;
            let scope = l::split_dirty_key(&k).or_else(|| l::split_scope_key(&k));
            out.insert(
                scope
                    .ok_or_else(|| Error::Store(format!("corrupt CRL key {}", hex::encode(&k))))?,
            );
        }
        Ok(out.into_iter().collect())
    }

    fn resident(&self, id: &str) -> Result<Option<Resident>> {
        self.kv.resident_of(id)
    }

    fn due_events(&self, until: OffsetDateTime) -> Result<Vec<Scheduled>> {
        self.kv
            .range(Table::Scheduled, &[], &l::scheduled_end(until))
            .map(|r| r.and_then(|(k, v)| l::scheduled_from_store(&k, &v)))
            .collect()
    }

    fn next_event(&self) -> Result<Option<Scheduled>> {
        self.kv
            .scan(Table::Scheduled, b"")
            .next()
            .map(|r| r.and_then(|(k, v)| l::scheduled_from_store(&k, &v)))
            .transpose()
    }

    fn audit_head(&self) -> Result<Option<Head>> {
        self.kv
            .get_with(Table::Meta, l::AUDIT_HEAD, l::audit_head_from_store)
    }

    fn checkpoints(&self) -> Result<Vec<crate::audit::Checkpoint>> {
        self.scan_values(Table::Meta, l::CHECKPOINT_PREFIX, l::checkpoint_from_store)
    }

    fn audit_records(&self, from: u64, limit: usize) -> Result<Vec<Record>> {
        self.kv
            .range(Table::Audit, &l::audit_key(from), &[0xFF; 9])
            .take(limit)
            .map(|r| r.and_then(|(k, v)| l::audit_from_store(&k, &v)))
            .collect()
    }

    fn operator(&self, id: &str) -> Result<Option<Operator>> {
        self.kv.operator_of(id)
    }

    fn operator_named(&self, name: &str) -> Result<Option<String>> {
        self.kv.operator_id_named(name)
    }

    fn operator_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.kv.operator_id_by_key(fp)
    }

    fn operators(&self) -> Result<Vec<Operator>> {
        self.scan_values(Table::Operators, l::PF_PREFIX, l::operator_from_store)
    }

    fn officer(&self, id: &str) -> Result<Option<Officer>> {
        self.kv.officer_of(id)
    }

    fn officer_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.kv.officer_id_by_key(fp)
    }

    fn officers(&self) -> Result<Vec<Officer>> {
        self.scan_values(Table::Officers, l::OFFICER_PREFIX, l::officer_from_store)
    }

    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>> {
        self.kv
            .get_with(Table::Operators, &l::sp_key(id), l::sp_from_store)
    }

    fn service_providers(&self) -> Result<Vec<ServiceProvider>> {
        self.scan_values(Table::Operators, l::SP_PREFIX, l::sp_from_store)
    }

    fn consent(&self, id: &str) -> Result<Option<Consent>> {
        self.kv.consent_of(id)
    }

    fn consents_of(&self, holder: &str, sp: &str) -> Result<Vec<Consent>> {
        let prefix = l::holder_consent_prefix(holder, sp);
        let mut out = Vec::new();
        for item in self.kv.scan(Table::Consents, &prefix) {
            let (k, _) = item?;
            let id = l::id_from_store(&k[prefix.len()..])?;
            out.push(
                Storage::consent(self, &id)?
                    .ok_or_else(|| Error::Store(format!("consent index names a missing {id}")))?,
            );
        }
        Ok(out)
    }

    fn access_log(&self, holder: &str) -> Result<Vec<Access>> {
        self.scan_values(
            Table::Access,
            &l::access_prefix(holder),
            l::access_from_store,
        )
    }

    fn access_count(&self) -> Result<u64> {
        Ok(self.kv.count(Table::Access) as u64)
    }

    fn sp_consents(&self, sp: &str, after: Option<&str>, limit: usize) -> Result<Vec<Consent>> {
        let prefix = l::sp_nonce_prefix(sp);
        let start = match after {
            // The first key after `after`'s: the same key with a 0 byte appended.
            Some(n) => {
                let mut k = l::nonce_key(sp, n);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut end = prefix.clone();
        // The SP's keys end before `n/` SP `\x01`.
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        let mut out = Vec::new();
        for item in self.kv.range(Table::Consents, &start, &end).take(limit) {
            let (_, id) = item?;
            let id = l::id_from_store(&id)?;
            out.push(
                self.kv
                    .consent_of(&id)?
                    .ok_or_else(|| Error::Store(format!("nonce index names a missing {id}")))?,
            );
        }
        Ok(out)
    }

    fn for_each_usage(&self, each: &mut dyn FnMut(Usage) -> Result<()>) -> Result<()> {
        for item in self.kv.scan(Table::Operators, b"u/") {
            let (k, v) = item?;
            each(l::usage_from_store(&k, &v)?)?;
        }
        Ok(())
    }

    fn usage(&self, month: &str) -> Result<Vec<Usage>> {
        self.kv
            .scan(Table::Operators, &l::usage_prefix(month))
            .map(|r| r.and_then(|(k, v)| l::usage_from_store(&k, &v)))
            .collect()
    }

    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<()>) -> Result<()> {
        self.kv.transact(&|t| body(&SledTx(t)))
    }

    fn check_consistency(&self) -> Result<u64> {
        let broken = |what: String| Error::Store(format!("index check: {what}"));
        let mut n = 0;
        for item in self.kv.scan(Table::Certs, b"") {
            let (k, v) = item?;
            let c = l::cert_from_store(&v)?;
            let hexs = hex::encode_upper(&c.serial);
            let st = match self.kv.get(Table::Status, &k)? {
                Some(b) => l::status_from_store(&b)?,
                None => return Err(broken(format!("{hexs} has no status"))),
            };
            let rk = l::revoked_key(
                c.hierarchy,
                c.generation,
                &crate::storage::scope_of(&c),
                &c.serial,
            );
            let listed = self
                .kv
                .get(Table::Revoked, &rk)?
                .map(|e| l::revoked_decode(&e))
                .transpose()?;
            crate::storage::check_listing(&c, &st, listed.as_ref())?;
            if let Some(holder) = &c.holder {
                if self
                    .kv
                    .get(
                        Table::ByHolder,
                        &l::holder_key(holder, c.hierarchy, &c.serial),
                    )?
                    .is_none()
                {
                    return Err(broken(format!("{hexs} is missing from its holder's index")));
                }
                let fp = crate::storage::fingerprint(&c.spki()?);
                if self.kv.get(Table::Keys, l::key_key(&fp))?.is_none() {
                    return Err(broken(format!(
                        "{hexs}: its key is missing from the key index"
                    )));
                }
            }
            n += 1;
        }
        for item in self.kv.scan(Table::ByHolder, b"") {
            let (k, _) = item?;
            let (h, serial) = l::split_holder_key(&k).map_err(|e| broken(e.to_string()))?;
            if self
                .kv
                .get(Table::Certs, &l::cert_key(h, serial))?
                .is_none()
            {
                return Err(broken(format!(
                    "holder index names a missing certificate {}",
                    hex::encode_upper(serial)
                )));
            }
        }
        Ok(n)
    }

    fn compact(&self) -> Result<Compaction> {
        self.kv.compact()
    }

    fn journal_bytes(&self) -> Result<u64> {
        self.kv.journal_bytes()
    }

    fn writable(&self) -> Result<()> {
        self.kv.writable()
    }

    fn backup(&self, to: &Path) -> Result<crate::storage::Backup> {
        self.kv.backup(to)
    }

    fn commit_stats(&self) -> CommitStats {
        self.kv.commit_stats()
    }

    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool> {
        Ok(self.kv.get(Table::BlockedKeys, l::key_key(fp))?.is_some())
    }

    fn for_each_blocked_key(
        &self,
        each: &mut dyn FnMut(KeyFingerprint) -> Result<()>,
    ) -> Result<()> {
        for item in self.kv.scan(Table::BlockedKeys, b"") {
            let (k, _) = item?;
            let fp: KeyFingerprint = k
                .as_slice()
                .try_into()
                .map_err(|_| Error::Store("a blocked key that is not 32 octets".into()))?;
            each(fp)?;
        }
        Ok(())
    }

    fn revocations_since(&self, after: u64, limit: usize) -> Result<Vec<RevocationLogEntry>> {
        self.log_since(l::REVLOG_PREFIX, after, limit, l::revlog_from_store)
    }

    fn revocation_log_head(&self) -> Result<u64> {
        self.log_head(l::REVLOG_HEAD)
    }

    fn issued_since(&self, after: u64, limit: usize) -> Result<Vec<IssuedEntry>> {
        self.log_since(l::ISSLOG_PREFIX, after, limit, l::isslog_from_store)
    }

    fn issuance_log_head(&self) -> Result<u64> {
        self.log_head(l::ISSLOG_HEAD)
    }

    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>> {
        self.kv
            .get(Table::Meta, &l::lease_key(h, g, &scope))?
            .map(|v| l::lease_from_store(&v))
            .transpose()
    }

    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>> {
        self.kv
            .get(Table::Meta, &l::signer_request_key(node, h, generation))?
            .map(|v| l::signer_request_from_store(&v))
            .transpose()
    }

    fn pending_signer_requests(&self) -> Result<Vec<SignerRequest>> {
        let mut end = l::SIGNER_REQUEST_PREFIX.to_vec();
        end.push(0xFF);
        let mut out = Vec::new();
        for item in self.kv.range(Table::Meta, l::SIGNER_REQUEST_PREFIX, &end) {
            let (_, v) = item?;
            let r = l::signer_request_from_store(&v)?;
            if r.answer.is_none() {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// The meta key saying the identity index holds every resident.
const IDENTITY_INDEXED: &[u8] = b"identity-indexed";
/// The meta key saying the root index ([`l::ROOT_INDEX_PREFIX`]) holds every root.
const ROOTS_INDEXED: &[u8] = b"roots-indexed";

/// A resident's key in the identity index: its [`crate::storage::identity_key`] then its id.
fn identity_entry(r: &Resident) -> Vec<u8> {
    let mut k = crate::storage::identity_key(r.attributes.name(), r.attributes.birth()).to_vec();
    k.extend_from_slice(r.id.as_bytes());
    k
}

/// A unit of work on sled: the domain writes as key-value writes of [`layout`].
struct SledTx<'a>(&'a dyn Txn);

impl Tx for SledTx<'_> {
    fn certificate_exists(&self, h: Hierarchy, serial: &[u8]) -> Result<bool> {
        Ok(self.0.get(Table::Certs, &l::cert_key(h, serial))?.is_some())
    }

    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        self.status_of(h, serial)
    }

    fn resident(&self, id: &str) -> Result<Option<Resident>> {
        self.resident_of(id)
    }

    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        self.owner_of(fp)
    }

    fn crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool> {
        Ok(self
            .0
            .get(Table::Crl, &l::dirty_key(h, g, &scope))?
            .is_some())
    }

    fn operator(&self, id: &str) -> Result<Option<Operator>> {
        self.operator_of(id)
    }

    fn operator_named(&self, name: &str) -> Result<Option<String>> {
        self.operator_id_named(name)
    }

    fn operator_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.operator_id_by_key(fp)
    }

    fn service_provider_named(&self, pf: &str, name: &str) -> Result<Option<String>> {
        self.get_with(
            Table::Operators,
            &l::sp_name_key(pf, name),
            l::id_from_store,
        )
    }

    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>> {
        self.sp_of(id)
    }

    fn consent(&self, id: &str) -> Result<Option<Consent>> {
        self.consent_of(id)
    }

    fn consent_nonce_used(&self, sp: &str, nonce: &str) -> Result<bool> {
        Ok(self
            .0
            .get(Table::Consents, &l::nonce_key(sp, nonce))?
            .is_some())
    }

    fn officer(&self, id: &str) -> Result<Option<Officer>> {
        self.officer_of(id)
    }

    fn officer_named(&self, name: &str) -> Result<Option<String>> {
        self.get_with(
            Table::Officers,
            &l::officer_name_key(name),
            l::id_from_store,
        )
    }

    fn officer_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.officer_id_by_key(fp)
    }

    fn add_certificate(&self, c: &CertRecord, key: Option<&KeyFingerprint>) -> Result<()> {
        let k = l::cert_key(c.hierarchy, &c.serial);
        if self.0.get(Table::Certs, &k)?.is_some() {
            return Err(crate::storage::serial_taken(c));
        }
        self.0.insert(Table::Certs, &k, &l::cert_to_store(c)?)?;
        if c.kind == CertKind::Root {
            self.0
                .insert(Table::Meta, &l::root_index_key(c.hierarchy, &c.serial), b"")?;
        }
        self.0
            .insert(Table::Status, &k, &l::status_to_store(&StatusRecord::GOOD)?)?;
        if let Some(holder) = &c.holder {
            let (h, serial, not_after) = (c.hierarchy, c.serial.clone(), c.not_after);
            self.0.defer(Box::new(move |t: &dyn Txn| {
                l::append_isslog(t, h, &serial, not_after)
            }))?;
            self.0.insert(
                Table::ByHolder,
                &l::holder_key(holder, c.hierarchy, &c.serial),
                b"",
            )?;
            if let Some(fp) = key {
                let owner = KeyOwner {
                    holder: holder.clone(),
                    hierarchy: c.hierarchy,
                };
                self.0
                    .insert(Table::Keys, l::key_key(fp), &l::key_owner_to_store(&owner))?;
            }
        }
        Ok(())
    }

    fn set_status(&self, c: &CertRecord, status: &StatusRecord) -> Result<()> {
        let (h, g, scope) = crate::storage::crl_of(c);
        self.0.insert(
            Table::Status,
            &l::cert_key(c.hierarchy, &c.serial),
            &l::status_to_store(status)?,
        )?;
        let rk = l::revoked_key(h, g, &scope, &c.serial);
        match crate::storage::revoked_entry(c, status)? {
            Some(entry) => self
                .0
                .insert(Table::Revoked, &rk, &l::revoked_encode(&entry))?,
            None => self.0.remove(Table::Revoked, &rk)?,
        }
        let serial = c.serial.clone();
        self.0
            .defer(Box::new(move |t: &dyn Txn| l::append_revlog(t, h, &serial)))?;
        self.set_crl_dirty(h, g, scope)
    }

    fn note_serial(&self, h: Hierarchy, n: u64) -> Result<()> {
        self.0
            .defer(Box::new(move |t: &dyn Txn| l::raise_counter(t, h, n)))
    }

    fn put_resident(&self, r: &Resident) -> Result<()> {
        let entry = identity_entry(r);
        match self.resident_of(&r.id)? {
            Some(old) if identity_entry(&old) == entry => {}
            Some(old) => {
                self.0.remove(Table::ByIdentity, &identity_entry(&old))?;
                self.0.insert(Table::ByIdentity, &entry, b"")?;
            }
            None => self.0.insert(Table::ByIdentity, &entry, b"")?,
        }
        self.0
            .insert(Table::Residents, r.id.as_bytes(), &l::resident_to_store(r)?)
    }

    fn schedule(&self, s: &Scheduled) -> Result<()> {
        self.0.insert(
            Table::Scheduled,
            &l::scheduled_key(s),
            l::scheduled_value(s.kind),
        )
    }

    fn unschedule(&self, s: &Scheduled) -> Result<()> {
        self.0.remove(Table::Scheduled, &l::scheduled_key(s))
    }

    fn audit(&self, record: AuditIntent) -> Result<()> {
        self.0
            .defer(Box::new(move |t: &dyn Txn| l::link_audit(t, &record)))
    }

    fn import_audit(&self, record: Record) -> Result<()> {
        self.0
            .defer(Box::new(move |t: &dyn Txn| l::import_audit(t, &record)))
    }

    fn put_checkpoint(&self, c: &crate::audit::Checkpoint) -> Result<()> {
        self.0
            .insert(Table::Meta, &l::checkpoint_key(c.seq), &l::json(c)?)
    }

    fn set_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()> {
        self.0.insert(Table::Crl, &l::dirty_key(h, g, &scope), b"1")
    }

    fn clear_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()> {
        self.0.remove(Table::Crl, &l::dirty_key(h, g, &scope))
    }

    fn put_crl_state(&self, h: Hierarchy, g: Generation, scope: Scope, state: &[u8]) -> Result<()> {
        self.0
            .insert(Table::Crl, &l::scope_key(h, g, &scope), state)
    }

    fn put_operator(&self, op: &Operator) -> Result<()> {
        self.0
            .insert(Table::Operators, &l::pf_key(&op.id), &l::json(op)?)?;
        self.0.insert(
            Table::Operators,
            &l::pf_name_key(&op.name),
            op.id.as_bytes(),
        )
    }

    fn bind_operator_key(&self, fp: &str, operator: &str) -> Result<()> {
        self.0
            .insert(Table::Operators, &l::pf_client_key(fp), operator.as_bytes())
    }

    fn put_officer(&self, o: &Officer) -> Result<()> {
        if let Some(old) = self.officer_of(&o.id)?.filter(|old| old.key != o.key) {
            self.0
                .remove(Table::Officers, &l::officer_client_key(&old.key))?;
        }
        self.0
            .insert(Table::Officers, &l::officer_key(&o.id), &l::json(o)?)?;
        self.0.insert(
            Table::Officers,
            &l::officer_name_key(&o.name),
            o.id.as_bytes(),
        )?;
        self.0.insert(
            Table::Officers,
            &l::officer_client_key(&o.key),
            o.id.as_bytes(),
        )
    }

    fn put_service_provider(&self, sp: &ServiceProvider) -> Result<()> {
        self.0
            .insert(Table::Operators, &l::sp_key(&sp.id), &l::json(sp)?)?;
        self.0.insert(
            Table::Operators,
            &l::sp_name_key(&sp.pf, &sp.name),
            sp.id.as_bytes(),
        )
    }

    fn put_consent(&self, c: &Consent) -> Result<()> {
        self.0.insert(
            Table::Consents,
            &l::nonce_key(&c.sp, &c.nonce),
            c.id.as_bytes(),
        )?;
        self.0
            .insert(Table::Consents, &l::consent_key(&c.id), &l::json(c)?)?;
        self.0
            .insert(Table::Consents, &l::holder_consent_key(c), b"")
    }

    fn append_access(&self, a: &Access, seq: u64) -> Result<()> {
        self.0
            .insert(Table::Access, &l::access_key(a, seq), &l::json(a)?)
    }

    fn add_usage(&self, u: &Usage) -> Result<()> {
        let key = l::usage_key(u);
        let now = match self.0.get(Table::Operators, &key)? {
            Some(v) => l::count_from_store(&v)?,
            None => 0,
        };
        let total = now
            .checked_add(u.count)
            .ok_or_else(|| Error::Store("usage counter overflow".into()))?;
        self.0.insert(Table::Operators, &key, &total.to_be_bytes())
    }

    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool> {
        Ok(self.0.get(Table::BlockedKeys, l::key_key(fp))?.is_some())
    }

    fn block_key(&self, fp: &KeyFingerprint) -> Result<()> {
        self.0
            .insert(Table::BlockedKeys, l::key_key(fp), l::BLOCKED)
    }

    fn log_status(&self, c: &CertRecord, change: &StatusChange) -> Result<()> {
        self.0.insert(
            Table::StatusLog,
            &l::status_change_key(c.hierarchy, &c.serial, change.at),
            &l::status_change_to_store(change)?,
        )
    }

    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>> {
        self.0.get(Table::Crl, &l::scope_key(h, g, &scope))
    }

    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>> {
        self.0
            .get(Table::Meta, &l::lease_key(h, g, &scope))?
            .map(|v| l::lease_from_store(&v))
            .transpose()
    }

    fn put_crl_lease(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        lease: &CrlLease,
    ) -> Result<()> {
        self.0.insert(
            Table::Meta,
            &l::lease_key(h, g, &scope),
            &l::lease_to_store(lease),
        )
    }

    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>> {
        self.0
            .get(Table::Meta, &l::signer_request_key(node, h, generation))?
            .map(|v| l::signer_request_from_store(&v))
            .transpose()
    }

    fn import_revocation_log(&self, entries: &[RevocationLogEntry]) -> Result<()> {
        let head = self
            .0
            .get(Table::Meta, l::REVLOG_HEAD)?
            .map(|b| l::counter_from_store(&b))
            .transpose()?
            .unwrap_or(0);
        for seq in 1..=head {
            self.0.remove(Table::Meta, &l::revlog_key(seq))?;
        }
        for e in entries {
            let mut v = vec![e.hierarchy.tag()];
            v.extend_from_slice(&e.serial);
            self.0.insert(Table::Meta, &l::revlog_key(e.seq), &v)?;
        }
        match entries.last() {
            Some(e) => self
                .0
                .insert(Table::Meta, l::REVLOG_HEAD, &e.seq.to_be_bytes()),
            None => self.0.remove(Table::Meta, l::REVLOG_HEAD),
        }
    }

    fn put_signer_request(&self, r: &SignerRequest) -> Result<()> {
        self.0.insert(
            Table::Meta,
            &l::signer_request_key(&r.node, r.hierarchy, r.generation),
            &l::signer_request_to_store(r)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::SledStorage;
    use crate::storage::conformance::Fixture;

    fn fresh() -> Fixture<SledStorage> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = SledStorage::open(dir.path()).expect("open a fresh sled store");
        Fixture::keeping(storage, dir)
    }

    crate::storage_conformance!(fresh);

    /// A store written before the root index existed gets it filled in when opened (a
    /// read-only copy of it walks meanwhile), and its roots come back from it.
    #[test]
    fn an_older_store_gets_its_root_index_when_opened() {
        use super::{l, Table, ROOTS_INDEXED};
        use crate::records::CertKind;
        use crate::storage::Storage;
        let dir = tempfile::tempdir().unwrap();
        let root = crate::records::CertRecord {
            kind: CertKind::Root,
            ..crate::storage::conformance::ca_cert(policies::Hierarchy::Auth, &[0x42])
        };
        {
            let s = SledStorage::open(dir.path()).unwrap();
            s.transact(&|t| t.add_certificate(&root, None)).unwrap();
            assert_eq!(s.roots().unwrap().len(), 1);
            // As an older binary left it: no index, no mark.
            s.kv.transact(&|t| {
                t.remove(
                    Table::Meta,
                    &l::root_index_key(root.hierarchy, &root.serial),
                )?;
                t.remove(Table::Meta, ROOTS_INDEXED)
            })
            .unwrap();
        }
        let ro = SledStorage::open_read_only(dir.path()).unwrap();
        assert_eq!(ro.roots().unwrap()[0].serial, [0x42]);
        drop(ro);
        let s = SledStorage::open(dir.path()).unwrap();
        assert!(s.kv.get(Table::Meta, ROOTS_INDEXED).unwrap().is_some());
        assert!(s
            .kv
            .get(
                Table::Meta,
                &l::root_index_key(root.hierarchy, &root.serial)
            )
            .unwrap()
            .is_some());
        assert_eq!(s.roots().unwrap()[0].serial, [0x42]);
    }

    /// The page cache a caller asks for is the one sled is opened with — also when the
    /// store's tables are rebuilt from its journal at open — and one-shot commands keep
    /// sled's own default.
    #[test]
    fn sled_is_opened_with_the_page_cache_asked_for() {
        use super::SledOptions;
        let dir = tempfile::tempdir().unwrap();
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.cache_capacity(), SledOptions::SLED_DEFAULT_CACHE_BYTES);
        drop(s);
        let small = SledOptions {
            cache_bytes: 24 << 20,
        };
        let s = SledStorage::open_with(dir.path(), &small).unwrap();
        assert_eq!(s.cache_capacity(), 24 << 20);
        drop(s);
        // No tables: rebuilt from the journal, then opened with the same options.
        std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let other = SledOptions {
            cache_bytes: 40 << 20,
        };
        let s = SledStorage::open_with(dir.path(), &other).unwrap();
        assert_eq!(s.cache_capacity(), 40 << 20);
    }

    /// A store written before the identity index existed (residents, no index, no mark)
    /// gets its index filled in when opened, and a read-only copy of it scans meanwhile.
    #[test]
    fn an_older_store_is_indexed_when_opened() {
        use super::{Table, IDENTITY_INDEXED};
        use crate::storage::Storage;
        let dir = tempfile::tempdir().unwrap();
        let birth = time::macros::date!(1990 - 02 - 03);
        {
            let s = SledStorage::open(dir.path()).unwrap();
            let r = crate::storage::conformance::resident("R1", 0);
            let stored = super::l::resident_to_store(&r).unwrap();
            // As an older binary wrote it: the record only.
            s.kv.transact(&|t| {
                t.insert(Table::Residents, b"R1", &stored)?;
                t.remove(Table::Meta, IDENTITY_INDEXED)
            })
            .unwrap();
        }
        let ro = SledStorage::open_read_only(dir.path()).unwrap();
        let found = ro.residents_by_identity("試験花子", birth).unwrap();
        assert_eq!(found.len(), 1);
        drop(ro);
        let s = SledStorage::open(dir.path()).unwrap();
        assert!(s.kv.get(Table::Meta, IDENTITY_INDEXED).unwrap().is_some());
        let found = s.residents_by_identity("試験　花子", birth).unwrap();
        assert_eq!(
            found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["R1"]
        );
    }
}
