//! The storage authority: the one boundary between the CA and its database.
//!
//! Modelled on Let's Encrypt Boulder's storage authority (`sa`: `GetCertificateStatus`,
//! `RevokeCertificate`, `GetRevokedCertsByShard`, `LeaseCRLShard` …) and smallstep's `AuthDB`:
//! callers speak the domain — certificates, statuses, residents, CRL partitions, audit records,
//! platform operators — never keys and bytes. How an engine lays its data out is its own
//! business (the sled engine's layouts are all in [`sled::layout`]).
//!
//! * [`Storage`] — reads, and [`Storage::transact`], which runs one unit of work atomically
//!   and returns only once it is durable;
//! * [`Tx`] — what a unit of work may read and write. Setting a status to revoked or held
//!   **marks the certificate's CRL partition dirty in the same transaction**, so a revocation
//!   made with no server running is still published when one starts;
//! * the **key blocklist** ([`Storage::key_blocked`], [`Tx::block_key`]): public keys revoked
//!   for keyCompromise, by SPKI SHA-256, never removed. It is kept apart from the key index
//!   (`key_owner`), which says who a key is certified to: a blocked key stays indexed to its
//!   holder, and the consistency check of the index is unchanged;
//! * audit records are handed to [`Tx::audit`] and linked into the hash chain by the engine at
//!   commit with the pure [`crate::audit::link`], so concurrent transactions do not conflict
//!   on the chain's head;
//! * engines: [`sled::SledStorage`] (the embedded default: journal, snapshot, compaction,
//!   recovery) and [`memory::MemoryStorage`] (unit tests). [`conformance`] is one test suite,
//!   generic over the engine, that every engine passes.
//!   The PostgreSQL engine lives outside `ca`, in the `storage-postgres` crate (chosen by the
//!   `jpki` package; `ca` takes it as an `Arc<dyn Storage>` in `Authority::init_with`/`open_with`).
//!
//! A transaction body may run more than once (an engine may re-run it when what it read
//! changed underneath it), so it must have no side effects other than through its [`Tx`].
//! A body that returns an error changes nothing; [`Error::Retry`](crate::Error::Retry) is how
//! a body says "what I planned from changed: re-plan" to its caller.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod memory;
pub mod sled;

use policies::profile::Scope;
use policies::Hierarchy;
use serde::Serialize;
use time::OffsetDateTime;

use crate::actor::Officer;
use crate::audit::{AuditIntent, Checkpoint, Head, Record};
use crate::error::Result;
use crate::records::platform::{Access, Consent, Operator, ServiceProvider, Usage};
use crate::records::{CertRecord, Resident, RevokedEntry, StatusChange, StatusRecord};

/// Who a certified public key belongs to: a key is certified to one holder, for one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyOwner {
    pub holder: String,
    pub hierarchy: Hierarchy,
}

/// SHA-256 of a SubjectPublicKeyInfo: how the key index names a key.
pub type KeyFingerprint = [u8; 32];

/// A register event scheduled for a future instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduledKind {
    /// An emigration reported ahead of its departure date: revoke at the departure.
    Emigrate,
}

impl ScheduledKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduledKind::Emigrate => "emigrate",
        }
    }
}

/// A register event that falls due at `at` (kept to the second: register events fall due at
/// midnight JST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub at: OffsetDateTime,
    pub resident: String,
    pub kind: ScheduledKind,
}

/// What [`Storage::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Compaction {
    /// The position (last committed unit of work) the new snapshot holds the store at.
    pub position: u64,
    /// Size of the new snapshot.
    pub snapshot_bytes: u64,
    /// Size of the write-ahead history before and after (what the snapshot does not hold).
    pub journal_bytes_before: u64,
    pub journal_bytes_after: u64,
}

/// What [`Storage::backup`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backup {
    /// The journal position of the copy's snapshot.
    pub position: u64,
    /// The last journal position the copy holds (the store as of that commit).
    pub last: u64,
    pub snapshot_bytes: u64,
    pub journal_bytes: u64,
}

/// What an engine's committer has done since it opened: batch sizes and where the time goes
/// (wall-clock). `jpki bench issue` prints it to say what bounds issuance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitStats {
    /// Batches committed: one durable write (journal record and fsync) each.
    pub batches: u64,
    /// Transactions submitted in them (including those sent back to be re-run).
    pub transactions: u64,
    /// Validating reads, staging writes and audit records, encoding and writing, in µs.
    pub stage_us: u64,
    /// Waiting for the durable write (fsync), in µs.
    pub sync_us: u64,
    /// Applying batches to the engine's tables, in µs.
    pub apply_us: u64,
}

impl CommitStats {
    /// The counters accumulated since `earlier` (zero where `earlier` is ahead).
    pub fn since(&self, earlier: &CommitStats) -> CommitStats {
        CommitStats {
            batches: self.batches.saturating_sub(earlier.batches),
            transactions: self.transactions.saturating_sub(earlier.transactions),
            stage_us: self.stage_us.saturating_sub(earlier.stage_us),
            sync_us: self.sync_us.saturating_sub(earlier.sync_us),
            apply_us: self.apply_us.saturating_sub(earlier.apply_us),
        }
    }
}

/// One revoked (or held) certificate as its CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: Vec<u8>,
    pub entry: RevokedEntry,
}

/// One entry of the revocation log: a certificate whose status changed (revoked, held or
/// released), numbered in commit order. Edge nodes follow it ([`Storage::revocations_since`])
/// to replace their cached OCSP answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationLogEntry {
    pub seq: u64,
    pub hierarchy: Hierarchy,
    pub serial: Vec<u8>,
}

/// One entry of the issuance log: a certificate issued to a holder, numbered in commit
/// order. The OCSP pre-signer follows it ([`Storage::issued_since`]) to sign the answers of
/// new certificates without walking every certificate of the store (#14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedEntry {
    pub seq: u64,
    pub hierarchy: Hierarchy,
    pub serial: Vec<u8>,
    pub not_after: OffsetDateTime,
}

/// Who may publish a CRL until when (as Boulder's `LeaseCRLShard`): a CA node takes the lease
/// of a CRL before reserving its next number, so that two CA nodes never publish one CRL at
/// once ([`lease_crl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlLease {
    pub holder: String,
    pub until: OffsetDateTime,
}

/// An edge node's request for its next delegated OCSP signer certificate (docs/deployment.md,
/// "OCSP signer renewal on edges"): the edge made the key itself and keeps it; the request
/// carries only a PKCS#10 CSR for it, and a CA node answers with a certificate or a refusal.
/// One request per edge node, hierarchy and root generation; a new request replaces the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SignerRequest {
    /// The edge node's name (`--node`).
    pub node: String,
    pub hierarchy: Hierarchy,
    /// The root generation the new signer is to be issued by (1 = the root of `jpki init`).
    pub generation: u32,
    /// The CSR (PKCS#10 DER), self-signed by the edge's new key (proof of possession).
    pub csr: Vec<u8>,
    /// The serial of the signer certificate the edge has in force: a CA node certifies only
    /// once that one is within the policy's renewal margin.
    pub in_force: Vec<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// `None` while pending.
    pub answer: Option<SignerAnswer>,
}

/// A CA node's answer to a [`SignerRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignerAnswer {
    /// The certificate (DER) issued for the request's key.
    Issued {
        der: Vec<u8>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Refused, and why (the edge logs it; nothing was issued).
    Refused {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// The storage authority. Every engine gives the same answers; [`conformance`] checks it.
pub trait Storage: Send + Sync {
    // ----- certificates ------------------------------------------------------------------

    /// A certificate by hierarchy and serial.
    fn certificate(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<CertRecord>>;
    /// Every certificate, in (hierarchy, serial) order.
    fn for_each_certificate(&self, each: &mut dyn FnMut(CertRecord) -> Result<()>) -> Result<()>;
    /// Every root certificate (each generation of each hierarchy), in (hierarchy, serial)
    /// order: what an authority reads when it opens, without walking every certificate
    /// (issue #14: opening a store of 10^6 certificates took seconds and filled the page
    /// cache with all of them).
    fn roots(&self) -> Result<Vec<CertRecord>>;
    /// A holder's certificates with their statuses, in (hierarchy, serial) order.
    fn holder_certificates(&self, holder: &str) -> Result<Vec<(CertRecord, StatusRecord)>>;
    /// Every change of a certificate's status, oldest first (by `at`; changes of one instant
    /// in the order they were made): the history that a verification as of a past moment is
    /// judged from (issue #18). Empty for a certificate that never changed, and for changes
    /// made before the history was kept (the current status record is then all there is).
    fn status_history(&self, h: Hierarchy, serial: &[u8]) -> Result<Vec<StatusChange>>;
    /// A certificate's revocation status (`None` for a serial never issued).
    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>>;
    /// Who a public key (by [`KeyFingerprint`]) is certified to.
    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>>;
    /// The highest sequential serial handed out in a hierarchy (0: none).
    fn serial_counter(&self, h: Hierarchy) -> Result<u64>;

    // ----- CRL partitions ----------------------------------------------------------------

    // A CRL is `(h, g, scope)`: the hierarchy, the root generation that signs it — the one
    // that issued the certificates it lists ([`CertRecord::generation`]; 1 for every store
    // made before root generations, whose data is generation 1 as it stands) — and its scope.

    /// Calls `each` for every revoked or held certificate listed by the CRL `(h, g, scope)`,
    /// in serial order. Streamed: a partition may hold a million entries.
    fn for_each_revoked(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        each: &mut dyn FnMut(Revoked) -> Result<()>,
    ) -> Result<()>;
    /// The CRLs whose content changed since they were last published (dirty), in order.
    fn dirty_partitions(&self) -> Result<Vec<CrlId>>;
    /// The CRL publisher's state of one CRL (its own encoding: number, last publication).
    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>>;
    /// Every CRL with a publisher's state or a dirty flag, in order: what the publisher
    /// keeps publishing besides the scopes the policy names (municipal partitions come into
    /// being with their first certificate, [`Tx::set_crl_dirty`]; serial partitions of a
    /// store made before municipal partitions keep being published from their state).
    fn crl_scopes(&self) -> Result<Vec<CrlId>>;

    // ----- the resident register ---------------------------------------------------------

    fn resident(&self, id: &str) -> Result<Option<Resident>>;
    /// Every resident, in id order (byte order of the id), streamed (`jpki store migrate`).
    fn for_each_resident(&self, each: &mut dyn FnMut(Resident) -> Result<()>) -> Result<()>;
    /// The residents registered under `name` (whitespace ignored) and date of birth `birth`,
    /// in id order, whatever their state: an index lookup ([`identity_key`]), so that
    /// registration's duplicate-person check does not scan the register.
    fn residents_by_identity(&self, name: &str, birth: time::Date) -> Result<Vec<Resident>>;
    /// Scheduled events due at or before `until`, earliest first.
    fn due_events(&self, until: OffsetDateTime) -> Result<Vec<Scheduled>>;
    /// The earliest scheduled event, if any.
    fn next_event(&self) -> Result<Option<Scheduled>>;

    // ----- the audit trail ---------------------------------------------------------------

    /// The chain's head: the last record's sequence number and hash.
    fn audit_head(&self) -> Result<Option<Head>>;
    /// Up to `limit` audit records from sequence `from` on, in order.
    fn audit_records(&self, from: u64, limit: usize) -> Result<Vec<Record>>;
    /// Every signed checkpoint of the chain's head, in sequence order ([`Tx::put_checkpoint`]).
    fn checkpoints(&self) -> Result<Vec<Checkpoint>>;

    // ----- platform operators, service providers, consents, access log -------------------

    fn operator(&self, id: &str) -> Result<Option<Operator>>;
    /// The id of the operator of this name.
    fn operator_named(&self, name: &str) -> Result<Option<String>>;
    /// The id of the operator a client key (hex SHA-256 of its SPKI) is registered to.
    fn operator_by_key(&self, fp: &str) -> Result<Option<String>>;
    fn operators(&self) -> Result<Vec<Operator>>;
    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>>;
    fn service_providers(&self) -> Result<Vec<ServiceProvider>>;
    fn consent(&self, id: &str) -> Result<Option<Consent>>;
    /// A holder's consents for one service provider, in id order.
    fn consents_of(&self, holder: &str, sp: &str) -> Result<Vec<Consent>>;
    /// Who read a holder's data, oldest first.
    fn access_log(&self, holder: &str) -> Result<Vec<Access>>;
    /// Number of access-log entries of all holders.
    fn access_count(&self) -> Result<u64>;
    /// Up to `limit` consents given to service provider `sp`, in byte order of their nonce
    /// (unique per SP), starting after the nonce `after` (a page of `GET /v1/consents`).
    fn sp_consents(&self, sp: &str, after: Option<&str>, limit: usize) -> Result<Vec<Consent>>;
    /// The usage counters of one month (`YYYY-MM`), ordered by (PF, SP, endpoint,
    /// certificate type).
    fn usage(&self, month: &str) -> Result<Vec<Usage>>;
    /// Every usage counter of every month, in (month, PF, SP, endpoint, certificate type)
    /// order (what a copy of the store to another engine must carry over).
    fn for_each_usage(&self, each: &mut dyn FnMut(Usage) -> Result<()>) -> Result<()>;

    // ----- officers ----------------------------------------------------------------------

    fn officer(&self, id: &str) -> Result<Option<Officer>>;
    /// The id of the officer a client key (hex SHA-256 of its SPKI) belongs to.
    fn officer_by_key(&self, fp: &str) -> Result<Option<String>>;
    /// Every officer, in id order.
    fn officers(&self) -> Result<Vec<Officer>>;

    // ----- units of work -----------------------------------------------------------------

    /// Runs `body` as one atomic unit of work and returns once it is durable. The body may run
    /// more than once; an error from it changes nothing and is returned.
    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<()>) -> Result<()>;

    // ----- the engine itself -------------------------------------------------------------

    /// Checks that the engine's indexes agree with its records (every certificate has its
    /// status, holder and key entries, revoked entries match statuses, no index entry names
    /// a missing certificate); returns the number of certificates checked.
    fn check_consistency(&self) -> Result<u64>;
    /// Bounds the engine's write-ahead history (snapshot + shortened journal for sled).
    fn compact(&self) -> Result<Compaction>;
    /// Size of the write-ahead history that [`Storage::compact`] would drop, in bytes (for
    /// sled: the journal's records, not the zeros preallocated after them).
    fn journal_bytes(&self) -> Result<u64>;
    /// What the committer has done since the engine opened.
    fn commit_stats(&self) -> CommitStats;
    /// Whether the engine takes writes now (`/readyz`): reachable, and not refusing writes
    /// (after a failed journal write, or opened read-only). The default makes a read round
    /// trip (the audit head), which is what reachability means for a database.
    fn writable(&self) -> Result<()> {
        self.audit_head().map(|_| ())
    }
    /// Writes a consistent copy of the store into the new directory `to`, one the engine's
    /// `open` opens as it was at one instant (`jpki store backup`), while transactions go on
    /// committing. The default refuses: the in-memory engine has nothing to copy, and a
    /// PostgreSQL store is backed up with the database's own tools (pg_dump, docs/store.md).
    fn backup(&self, to: &std::path::Path) -> Result<Backup> {
        let _ = to;
        Err(crate::Error::Invalid(
            "this store engine has no built-in backup; back up a PostgreSQL store with pg_dump (docs/store.md)".into(),
        ))
    }

    // ----- the key blocklist -------------------------------------------------------------

    /// Whether a public key (by [`KeyFingerprint`]) is refused forever: a certificate of it
    /// was revoked for keyCompromise ([`Tx::block_key`]).
    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool>;
    /// Every blocked key, in fingerprint order (what a copy of the store to another engine
    /// must carry over).
    fn for_each_blocked_key(
        &self,
        each: &mut dyn FnMut(KeyFingerprint) -> Result<()>,
    ) -> Result<()>;

    // ----- nodes: the revocation log and CRL leases ---------------------------------------

    /// Up to `limit` entries of the revocation log with a sequence number above `after`, in
    /// sequence order. Every [`Tx::set_status`] appends one, in its unit of work.
    fn revocations_since(&self, after: u64, limit: usize) -> Result<Vec<RevocationLogEntry>>;
    /// The revocation log's highest sequence number (0: empty).
    fn revocation_log_head(&self) -> Result<u64>;
    /// Up to `limit` entries of the issuance log with a sequence number above `after`, in
    /// sequence order. Every [`Tx::add_certificate`] of a certificate with a holder appends
    /// one, in its unit of work (CA certificates — roots, OCSP signers — are not logged).
    /// Certificates added before the log existed are not in it: a follower covers them with
    /// one walk of [`Storage::for_each_certificate`].
    fn issued_since(&self, after: u64, limit: usize) -> Result<Vec<IssuedEntry>>;
    /// The issuance log's highest sequence number (0: empty).
    fn issuance_log_head(&self) -> Result<u64>;
    /// The lease of the CRL `(h, g, scope)`, if one was ever taken.
    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>>;

    // ----- nodes: edges' OCSP signer requests ----------------------------------------------

    /// The signer request of an edge node for a hierarchy and root generation, if any.
    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>>;
    /// Every signer request without an answer, in (node, hierarchy, generation) order.
    fn pending_signer_requests(&self) -> Result<Vec<SignerRequest>>;
}

/// What one unit of work reads and writes. Reads see the unit's own writes.
pub trait Tx {
    // ----- reads -------------------------------------------------------------------------

    fn certificate_exists(&self, h: Hierarchy, serial: &[u8]) -> Result<bool>;
    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>>;
    fn resident(&self, id: &str) -> Result<Option<Resident>>;
    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>>;
    /// Whether the CRL `(h, g, scope)` is marked dirty.
    fn crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool>;
    fn operator(&self, id: &str) -> Result<Option<Operator>>;
    fn operator_named(&self, name: &str) -> Result<Option<String>>;
    fn operator_by_key(&self, fp: &str) -> Result<Option<String>>;
    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>>;
    /// The id of the service provider of this name under operator `pf`.
    fn service_provider_named(&self, pf: &str, name: &str) -> Result<Option<String>>;
    fn consent(&self, id: &str) -> Result<Option<Consent>>;
    /// Whether a consent with this nonce was already recorded for the service provider.
    fn consent_nonce_used(&self, sp: &str, nonce: &str) -> Result<bool>;
    fn officer(&self, id: &str) -> Result<Option<Officer>>;
    /// The id of the officer of this name.
    fn officer_named(&self, name: &str) -> Result<Option<String>>;
    /// The id of the officer a client key (hex SHA-256 of its SPKI) belongs to.
    fn officer_by_key(&self, fp: &str) -> Result<Option<String>>;

    // ----- writes ------------------------------------------------------------------------

    /// Records a new certificate with status good, in its holder's list, and (for a holder's
    /// certificate) its key as certified to that holder for that kind. Refuses a
    /// (hierarchy, serial) the store already holds with [`crate::Error::SerialTaken`] ([`serial_taken`]), even with
    /// identical DER, and records nothing: a certificate record is never replaced (issue #13,
    /// several CA nodes on one store). Nothing re-adds a record: `jpki store migrate` writes
    /// into an empty store, `init` into a new one.
    fn add_certificate(&self, c: &CertRecord, key: Option<&KeyFingerprint>) -> Result<()>;
    /// Sets a certificate's status. A revoked or held status also puts the certificate on its
    /// CRL (partition, or the CA-level CRL) and marks that CRL dirty.
    fn set_status(&self, c: &CertRecord, status: &StatusRecord) -> Result<()>;
    /// Appends a change to the certificate's status history (see
    /// [`Storage::status_history`]); a second change of the same certificate at the same
    /// instant in one unit of work replaces the first. Callers use [`Tx::change_status`].
    fn log_status(&self, c: &CertRecord, change: &StatusChange) -> Result<()>;
    /// Sets a certificate's status ([`Tx::set_status`]) and records the change in its history
    /// at `at`, the authority's clock: the one call the authority makes to change a status.
    fn change_status(
        &self,
        c: &CertRecord,
        status: &StatusRecord,
        at: OffsetDateTime,
    ) -> Result<()> {
        self.set_status(c, status)?;
        self.log_status(
            c,
            &StatusChange {
                at,
                status: *status,
            },
        )
    }
    /// Raises the hierarchy's serial counter to at least `n` (resolved at commit, so that
    /// concurrent issuances do not conflict on it).
    fn note_serial(&self, h: Hierarchy, n: u64) -> Result<()>;
    fn put_resident(&self, r: &Resident) -> Result<()>;
    fn schedule(&self, s: &Scheduled) -> Result<()>;
    fn unschedule(&self, s: &Scheduled) -> Result<()>;
    /// Appends a record to the audit chain (linked at commit).
    fn audit(&self, record: AuditIntent) -> Result<()>;
    /// Appends a record copied verbatim from another store (`jpki store migrate`), at commit
    /// and in order with [`Tx::audit`]: it must follow the chain's head
    /// ([`crate::audit::follow`]); its hash is kept, not recomputed.
    fn import_audit(&self, record: Record) -> Result<()>;
    /// Records a signed checkpoint of the chain's head (one per sequence number; a second
    /// for the same record replaces the first).
    fn put_checkpoint(&self, c: &Checkpoint) -> Result<()>;
    fn set_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()>;
    fn clear_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()>;
    fn put_crl_state(&self, h: Hierarchy, g: Generation, scope: Scope, state: &[u8]) -> Result<()>;
    /// Writes an operator (record and name index).
    fn put_operator(&self, op: &Operator) -> Result<()>;
    /// Registers a client key (hex SHA-256 of its SPKI) to an operator.
    fn bind_operator_key(&self, fp: &str, operator: &str) -> Result<()>;
    /// Writes a service provider (record and its name index under its operator).
    fn put_service_provider(&self, sp: &ServiceProvider) -> Result<()>;
    /// Writes a consent (record, holder index, nonce).
    fn put_consent(&self, c: &Consent) -> Result<()>;
    /// Appends an access-log entry; `seq` orders entries of the same instant.
    fn append_access(&self, a: &Access, seq: u64) -> Result<()>;
    /// Writes an officer: its record, its name index and its key index. The name never
    /// changes; the key does on renewal, and the previous key's index entry is dropped.
    fn put_officer(&self, o: &Officer) -> Result<()>;
    /// Adds `u.count` to the usage counter of `u`'s (month, PF, SP, endpoint, certificate
    /// type), creating it at zero first.
    fn add_usage(&self, u: &Usage) -> Result<()>;

    // ----- the key blocklist -------------------------------------------------------------

    /// Whether a public key is on the blocklist (this unit's own writes included).
    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool>;
    /// Puts a public key on the blocklist, for every holder and for ever (there is no unblock).
    fn block_key(&self, fp: &KeyFingerprint) -> Result<()>;

    // ----- CRL leases ----------------------------------------------------------------------

    /// The CRL publisher's state of one CRL, as this unit of work sees it.
    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>>;
    /// The lease of the CRL `(h, g, scope)`, as this unit of work sees it.
    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>>;
    /// Writes the lease of the CRL `(h, g, scope)` (see [`lease_crl`]).
    fn put_crl_lease(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        lease: &CrlLease,
    ) -> Result<()>;

    // ----- edges' OCSP signer requests -----------------------------------------------------

    /// The signer request of `(node, h, generation)`, as this unit of work sees it.
    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>>;
    /// Writes a signer request (replacing the one of the same node, hierarchy and generation).
    fn put_signer_request(&self, r: &SignerRequest) -> Result<()>;

    // ----- copying a store ------------------------------------------------------------------

    /// Replaces the whole revocation log with `entries` (ascending sequence numbers, kept
    /// as they are): `jpki store migrate` copies the source's log into a new store that
    /// nothing uses yet, after the statuses (whose writes appended entries of their own).
    /// Later status changes continue after the last entry. Never for a live store.
    fn import_revocation_log(&self, entries: &[RevocationLogEntry]) -> Result<()>;
}

/// Takes or renews, inside a unit of work, the lease of the CRL `(h, g, scope)` for `holder`
/// until `now + ttl`: granted when no lease exists, the lease has run out, or `holder`
/// already holds it; otherwise [`crate::Error::Refused`] naming the holder and the end of its
/// lease (the unit of work then changes nothing).
pub fn lease_crl(
    t: &dyn Tx,
    h: Hierarchy,
    g: Generation,
    scope: Scope,
    holder: &str,
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Result<()> {
    if let Some(l) = t.crl_lease(h, g, scope.clone())? {
        if l.holder != holder && l.until > now {
            return Err(crate::Error::Refused(format!(
                "CRL {} {} is leased by node `{}` until {}",
                policies::profile::crl_dir(h, g),
                scope.path(),
                l.holder,
                l.until
            )));
        }
    }
    t.put_crl_lease(
        h,
        g,
        scope,
        &CrlLease {
            holder: holder.to_owned(),
            until: now + ttl,
        },
    )
}

/// Appends an audit record inside a unit of work, by the actor of the current scope
/// ([`crate::actor::acting_as`]).
pub fn audit(
    t: &dyn Tx,
    at: OffsetDateTime,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<()> {
    t.audit(AuditIntent {
        at,
        actor: crate::actor::current_label(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail: detail.to_owned(),
    })
}

/// The CRL a certificate is listed on when revoked: its partition, or the CA-level CRL.
pub fn scope_of(c: &CertRecord) -> Scope {
    c.partition.clone().unwrap_or(Scope::Ca)
}

/// The whole identity of the CRL a certificate is listed on when revoked: its hierarchy, the
/// generation that issued it, and [`scope_of`].
pub fn crl_of(c: &CertRecord) -> CrlId {
    (c.hierarchy, c.generation, scope_of(c))
}

/// A root generation: 1 is the root `jpki init` made, each rollover adds one
/// (`ca::authority::rollover`).
pub type Generation = u32;

/// One CRL: hierarchy, the root generation that signs it, scope. Ordered hierarchy first,
/// then generation, then scope, as every engine lists them.
pub type CrlId = (Hierarchy, Generation, Scope);

/// The key of the register's identity index: SHA-256 of the name with every whitespace
/// character removed (`char::is_whitespace`, so the ideographic space too), a NUL and the date
/// of birth (ISO 8601). Name and birth date, not the address: an address change then never
/// moves a resident in the index, and the few residents sharing a name and birthday are
/// compared on their address by the caller. Every engine keys its index by this.
pub fn identity_key(name: &str, birth: time::Date) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for c in name.chars().filter(|c| !c.is_whitespace()) {
        let mut b = [0u8; 4];
        h.update(c.encode_utf8(&mut b).as_bytes());
    }
    h.update([0u8]);
    h.update(
        format!(
            "{:04}-{:02}-{:02}",
            birth.year(),
            u8::from(birth.month()),
            birth.day()
        )
        .as_bytes(),
    );
    h.finalize().into()
}

/// The [`KeyFingerprint`] of a SubjectPublicKeyInfo (DER).
pub fn fingerprint(spki: &[u8]) -> KeyFingerprint {
    use sha2::Digest;
    sha2::Sha256::digest(spki).into()
}

/// The CRL entry a status puts a certificate on: `None` for good, else the reason, time and
/// invalidity date of the status with the certificate's notAfter. A revoked or held status
/// without a reason or a time is refused (the CRL and OCSP could not say it).
pub fn revoked_entry(c: &CertRecord, s: &StatusRecord) -> Result<Option<RevokedEntry>> {
    use crate::records::State;
    if s.state == State::Good {
        return Ok(None);
    }
    let (Some(reason), Some(since)) = (s.reason, s.since) else {
        return Err(crate::Error::Invalid(format!(
            "a {} status needs a reason and a time",
            s.state.as_str()
        )));
    };
    Ok(Some(RevokedEntry {
        reason,
        revoked_at: since.unix_timestamp(),
        invalidity: s.invalidity.map(OffsetDateTime::unix_timestamp),
        not_after: c.not_after.unix_timestamp(),
    }))
}

/// The consistency rule every engine's [`Storage::check_consistency`] applies to one
/// certificate: a good certificate is on no CRL; a revoked or held one is, with the reason of
/// its status. `listed` is the certificate's entry on its CRL, if any.
pub fn check_listing(
    c: &CertRecord,
    status: &StatusRecord,
    listed: Option<&RevokedEntry>,
) -> Result<()> {
    use crate::records::State;
    let hexs = hex::encode_upper(&c.serial);
    let broken = |what: String| crate::Error::Store(format!("index check: {hexs}{what}"));
    match (status.state, listed) {
        (State::Good, None) => Ok(()),
        (State::Good, Some(_)) => Err(broken(" is good but listed as revoked".into())),
        (state, None) => Err(broken(format!(
            " is {} but has no revoked entry",
            state.as_str()
        ))),
        (_, Some(e)) if Some(e.reason) != status.reason => Err(broken(
            ": revoked entry and status disagree on the reason".into(),
        )),
        (_, Some(_)) => Ok(()),
    }
}

/// The refusal of [`Tx::add_certificate`] when the store already holds `c`'s (hierarchy,
/// serial): the one error every engine returns for it.
pub fn serial_taken(c: &CertRecord) -> crate::Error {
    crate::Error::SerialTaken {
        hierarchy: c.hierarchy,
        serial: hex::encode_upper(&c.serial),
    }
}
