//! The OCSP engine: issuer matching, status lookup, signing, the pre-signed cache.
//!
//! Answer paths, cheapest first:
//! 1. **Rejects** (`malformedRequest`, `unauthorized`) are constant byte strings encoded once.
//! 2. **Cache hit**: a nonce-less request for one CertID whose answer was signed before and is
//!    still inside its validity is served from memory: no status lookup, no signature.
//! 3. **Stored** (with an answer store attached, [`crate::stored`]): a memory miss for one
//!    nonce-less CertID in the canonical form is answered from the durable store, read on the
//!    runtime worker itself (a redb read; no status lookup, no hand-over to another thread),
//!    and promoted into the memory front.
//! 4. **Live**: a request with a nonce, several CertIDs, a miss or an `unknown` serial
//!    looks the status up and is signed now, on the blocking pool, holding one permit of a
//!    semaphore. Signing never runs on a runtime worker, so cached answers keep flowing while
//!    signatures are made; only `live_concurrency` run at once, bounding the CPU a nonce flood
//!    can take; a request that waits longer than `live_wait` for a permit gets `tryLater`.
//!
//! ## Cache consistency
//! The CA calls [`Responder::refresh`] after it has committed a revocation or hold and before it
//! acknowledges it. `refresh` first removes the cached answers of that serial (so queries from
//! then on go live and read the already updated store), then re-signs them. A live query that
//! read the store *before* the refresh must not put its stale answer back: every record carries
//! the sequence number of its last refresh, a live query notes the sequence number before it
//! reads the store, and its answer is cached only if no refresh happened in between.
//!
//! ## The answer store is authoritative
//! A stored answer is served without reading the certificate's status, so every status change
//! must reach the answer store before an answer could contradict it. Three rules make it so,
//! over the store's revocation log (every `set_status` appends `(seq, hierarchy, serial)` in
//! its own unit of work, [`StatusSource::status_changes_since`]):
//! 1. **In process**: the CA calls `refresh` after the commit and before the acknowledgement;
//!    `refresh` rewrites the serial's stored answers and fsyncs them (or, failing that, removes
//!    them), so an acknowledged revocation is never contradicted.
//! 2. **Watermark**: the answer store records `W`, the log sequence up to which every stored
//!    answer is known to state the store's status. It moves only after a catch-up has compared
//!    every logged change in `(W − LOG_LAG, head]` with the stored answers, rewritten or removed
//!    the stale ones, and fsynced them: so the watermark never runs ahead of its answers.
//! 3. **Catch-up before the first answer**: [`Responder::attach_store`] catches up (removing
//!    stale answers) before it returns, and `jpki serve` attaches before it listens;
//!    [`Responder::run_store_follower`] catches up every second while serving (changes made by
//!    another process, or a refresh that failed).
//!
//! The crash window: a revocation commits (its log entry with it, seq `s > W`), then the
//! process is SIGKILLed before `refresh` rewrote the answer. On disk the answer is stale and
//! `W < s`. The restart reopens the store, reads the log past `W`, finds `s`, sees the stored
//! status disagree, removes the answer, fsyncs, moves `W` — all before the listener exists. The
//! first query of that serial finds no stored answer and is signed live from the store:
//! revoked. A revocation that never committed is not in the log and was never acknowledged.
//! If the store's log head is *below* `W` (the store was replaced by an older copy), every
//! stored answer is dropped. A source without a log keeps the older guard: each stored answer
//! is compared with a status read before it is served.
//!
//! Writers racing a change: the pre-signer and live answers note the sequence number before
//! they read the status; a change raises its stripe's number ([`WriteGuard`]) before it reads
//! the status, and a write is refused under the stripe's lock if the stripe moved past the
//! writer's start. So an answer computed from a status read before a change is never written
//! after the change's own answer.
//!
//! `unknown` answers are never cached: the serial may be issued a moment later (and the set of
//! never-issued serials is unbounded, so caching them would let anyone fill memory).
//!
//! ## The pre-signer: no walk of every certificate on each pass
//! [`Responder::run_presigner`] keeps every certificate's answer signed ahead without an O(N)
//! pass every minute (#14; measured at 10^5 in BENCHMARKS.md): new certificates come from
//! the source's **issuance feed** ([`StatusSource::issued_since`], a log the CA store appends
//! to in the unit of work that issues), followed every second from a cursor kept in a file
//! beside the answers; answers coming due come from **one sequential scan of the stored
//! answers' headers per window** ([`AnswerStore::for_each_meta`]) into a queue bounded by
//! the presign rate × the window ([`crate::presign`]). Every certificate is walked only at
//! the first start (no cursor, or no answers for it to vouch for, or a feed behind it: a
//! restored store) and once a day as a reconciliation, paced. Why not an index built on open
//! for stores older than the feed: the one walk at the first start covers them with the code
//! that already exists, and a store is opened far more often than it is upgraded.
//!
//! The background re-signer ([`Responder::run_resigner`]) re-signs cached answers that were
//! used since they were signed and expire within `resign_margin`, and drops the unused ones, so
//! the signing load follows the set of serials actually asked about.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use aws_lc_rs::digest;
use bytes::Bytes;
use der07::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der07::{Decode, Encode};
use policies::clock::Clock;
use policies::{Hierarchy, Policy, Reason, Signer};
use spki07::{AlgorithmIdentifierOwned, ObjectIdentifier};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use x509_cert_02::ext::pkix::CrlReason;
use x509_cert_02::ext::Extension;
use x509_cert_02::serial_number::SerialNumber;
use x509_cert_02::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, ResponderId,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::certid::canonical;
pub use crate::certid::{HashAlg, Times};
use crate::metrics::{Cause, Metrics, ResponseStatus};
use crate::presign::{self, Pacer};
use crate::request::{self, Parsed};
use crate::source::{SourceError, Status, StatusSource};
use crate::stored::{AnswerStore, StoredAnswer, ETAG, KEY_HASH};
use crate::Error;

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHARDS: usize = 64;
/// When the memory front is full, one answer read from the store in this many is admitted
/// into it (evicting another): a serial asked often gets in after a few questions, while
/// questions spread over millions of serials do not churn the front on every miss.
const ADMIT_ONE_IN: u64 = 8;
/// Stripes of the answer store's write guard ([`WriteGuard`]).
const STRIPES: usize = 1024;
/// Entries of the status-change log read at once by the catch-up.
const LOG_PAGE: usize = 4096;
/// How far behind its watermark the catch-up looks again: a log numbered from a database
/// sequence (PostgreSQL) may show a number only after a higher one has been read.
const LOG_LAG: u64 = 256;
/// Certificates the pre-signer's walk ([`Responder::presign_pass`]) reads per second at
/// most, checked every `WALK_CHUNK`: the walk is a rare reconciliation, never a burst beside
/// the OCSP traffic (10^6 certificates: under a minute).
const WALK_RATE: f64 = 50_000.0;
const WALK_CHUNK: u64 = 1024;
/// How often the pre-signer walks every certificate once the issuance feed is followed
/// (what the feed could miss: an entry numbered more than `LOG_LAG` late, a store migrated
/// from another engine whose feed was renumbered).
const RECONCILE_EVERY: time::Duration = time::Duration::hours(24);
/// How often the pre-signer reads the issuance feed.
const FEED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest window between two scans of the stored answers (the queue's bound is the
/// presign rate times the window).
const MAX_WINDOW: time::Duration = time::Duration::minutes(10);
/// Serial numbers longer than this (x509-cert 0.2 accepts at most 21 octets) are never cached.
const MAX_KEY: usize = 48;

/// Tunables. Start from [`Settings::from_policy`] and adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// nextUpdate − thisUpdate (policy `ocsp.next_update_minutes`).
    pub validity: time::Duration,
    /// Cached answers expiring within this margin are re-signed by the background task.
    pub resign_margin: time::Duration,
    /// More CertIDs than this in one request is `malformedRequest`.
    pub max_cert_ids: usize,
    /// Largest accepted request (POST body, decoded GET path), in bytes.
    pub max_body: usize,
    /// Live signatures running at once (default: the number of CPUs). They run on the blocking
    /// pool, never on the runtime workers, so cached answers are served meanwhile; the limit
    /// bounds the CPU and queueing that nonce floods can cause.
    pub live_concurrency: usize,
    /// How long a live request may wait for a signing slot before `tryLater`.
    pub live_wait: std::time::Duration,
    /// Most answers cached in memory; beyond it an arbitrary one of the same shard is evicted
    /// (with a durable answer store attached, the memory cache is only a front for the hot
    /// serials: memory stays bounded whatever the number of certificates).
    pub cache_capacity: usize,
    /// Signatures per second the pre-signer may make ([`Responder::presign_pass`]): the bound
    /// on the CPU that keeping every certificate's answer signed ahead takes.
    pub presign_rate: u32,
    /// Time allowed to send the request head (and, with TLS, to finish the handshake).
    pub header_timeout: std::time::Duration,
    /// Time allowed to send the request body.
    pub body_timeout: std::time::Duration,
    /// The HTTP path of the responder (`/ocsp`, from the policy's OCSP URL).
    pub path: String,
}

impl Settings {
    pub fn from_policy(policy: &Policy) -> Settings {
        let validity = time::Duration::minutes(i64::from(policy.ocsp.next_update_minutes));
        let url = policy.ocsp_url();
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map_or("/ocsp", |i| &after_scheme[i..]);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Settings {
            validity,
            resign_margin: validity / 3,
            max_cert_ids: 64,
            max_body: 8 * 1024,
            live_concurrency: cpus,
            live_wait: std::time::Duration::from_secs(2),
            cache_capacity: 64 << 10,
            presign_rate: 200,
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(10),
            path: path.trim_end_matches('/').to_owned(),
        }
    }
}

/// One hierarchy served: its root certificate and the delegated OCSP signer it issued.
///
/// `signer.certificate()` must be the OCSP-signer certificate (extendedKeyUsage
/// id-kp-OCSPSigning, id-pkix-ocsp-nocheck), issued by `root`; it is included in every response
/// (`certs`) so that clients can verify the delegation (RFC 6960 §4.2.2.2).
#[derive(Clone)]
pub struct Issuer {
    pub hierarchy: Hierarchy,
    /// DER of the root (issuer) certificate.
    pub root: Vec<u8>,
    pub signer: Arc<dyn Signer>,
}

struct IssuerState {
    hierarchy: Hierarchy,
    /// issuerNameHash / issuerKeyHash per [`HashAlg`], in `HashAlg::ALL` order.
    name_hash: Vec<Vec<u8>>,
    key_hash: Vec<Vec<u8>>,
    /// The delegated signer in force; replaced whole by [`Responder::replace_signer`].
    signing: RwLock<Arc<Signing>>,
    root_der: Vec<u8>,
    /// The root's subject (DER): a new signer certificate must name it as its issuer.
    root_name: Vec<u8>,
}

/// A delegated OCSP signer as answers use it.
struct Signing {
    /// KeyHash of the responder (RFC 6960 §4.2.1: SHA-1 of the BIT STRING subjectPublicKey).
    responder_key: OctetString,
    signer: Arc<dyn Signer>,
    signer_cert: Certificate,
}

impl Signing {
    fn new(signer: Arc<dyn Signer>, root_name: &[u8]) -> Result<Signing, Error> {
        let signer_cert =
            Certificate::from_der(signer.certificate()).map_err(|source| Error::Certificate {
                what: "OCSP signer",
                source,
            })?;
        if signer_cert.tbs_certificate.issuer.to_der()? != root_name {
            return Err(Error::Settings(
                "the OCSP signer certificate was not issued by the root it serves".into(),
            ));
        }
        let signer_key = signer_cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        Ok(Signing {
            responder_key: OctetString::new(HashAlg::Sha1.digest(signer_key))?,
            signer,
            signer_cert,
        })
    }
}

impl IssuerState {
    fn new(issuer: Issuer) -> Result<IssuerState, Error> {
        let root = Certificate::from_der(&issuer.root).map_err(|source| Error::Certificate {
            what: "root",
            source,
        })?;
        let name = root.tbs_certificate.subject.to_der()?;
        let key = root
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        Ok(IssuerState {
            hierarchy: issuer.hierarchy,
            name_hash: HashAlg::ALL.iter().map(|a| a.digest(&name)).collect(),
            key_hash: HashAlg::ALL.iter().map(|a| a.digest(key)).collect(),
            signing: RwLock::new(Arc::new(Signing::new(issuer.signer, &name)?)),
            root_der: issuer.root,
            root_name: name,
        })
    }

    /// The signer in force (one `Arc` clone under a read lock, taken once per signature).
    fn signing(&self) -> Arc<Signing> {
        self.signing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn matches(&self, id: &CertId) -> bool {
        let Some(alg) = HashAlg::from_oid(&id.hash_algorithm.oid) else {
            return false;
        };
        let i = alg as usize;
        self.name_hash[i] == id.issuer_name_hash.as_bytes()
            && self.key_hash[i] == id.issuer_key_hash.as_bytes()
    }

    fn cert_id(&self, alg: HashAlg, serial: &[u8]) -> Result<CertId, Error> {
        let i = alg as usize;
        Ok(CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: alg.oid(),
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(self.name_hash[i].clone())?,
            issuer_key_hash: OctetString::new(self.key_hash[i].clone())?,
            serial_number: SerialNumber::new(canonical(serial))?,
        })
    }
}

/// One answer, ready to send.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The DER `OCSPResponse`.
    pub der: Bytes,
    pub status: ResponseStatus,
    pub cause: Cause,
    /// For successful answers without a nonce: the times and an entity tag, so that HTTP GET
    /// can carry RFC 5019 caching headers.
    pub cacheable: Option<(Times, Arc<str>)>,
}

struct Entry {
    cert_id: CertId,
    der: Bytes,
    times: Times,
    etag: Arc<str>,
    /// Asked for since it was signed: the re-signer keeps it, else drops it.
    used: AtomicBool,
}

#[derive(Default)]
struct Record {
    /// Sequence number of the last `refresh` of this serial.
    epoch: u64,
    entries: Vec<Arc<Entry>>,
}

type Shard = RwLock<HashMap<Vec<u8>, Record>>;

struct Cache {
    shards: Vec<Shard>,
    hasher: std::collections::hash_map::RandomState,
    seq: AtomicU64,
    len: AtomicUsize,
    /// Per hierarchy tag: answers signed before this sequence number are never cached (set
    /// when a compromised signer is replaced, [`Responder::replace_compromised_signer`]).
    floor: [AtomicU64; 2],
    /// Answers whose lookup began before this sequence number are not cached: raised to the
    /// refresh epoch of a record evicted to make room, so that a query that read the store
    /// before that refresh cannot put its stale answer back once the record is gone.
    evict_floor: AtomicU64,
}

/// Whether this answer read from the store while the memory front is full is one of the
/// [`ADMIT_ONE_IN`] admitted. Counted per thread: one shared counter was a cache line that
/// both workers wrote on every stored answer (a uniform load is all stored answers).
fn admit_one_of_many() -> bool {
    thread_local! {
        static FULL_MISSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    FULL_MISSES.with(|n| {
        let k = n.get().wrapping_add(1);
        n.set(k);
        k.is_multiple_of(ADMIT_ONE_IN)
    })
}

/// Cache key: hierarchy tag then the serial's INTEGER content octets.
fn key(h: Hierarchy, serial: &[u8], buf: &mut [u8; MAX_KEY]) -> Option<usize> {
    let serial = canonical(serial);
    let n = serial.len() + 1;
    if n > MAX_KEY {
        return None;
    }
    buf[0] = h.tag();
    buf[1..n].copy_from_slice(serial);
    Some(n)
}

impl Cache {
    fn new() -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: Default::default(),
            seq: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            floor: [AtomicU64::new(0), AtomicU64::new(0)],
            evict_floor: AtomicU64::new(0),
        }
    }

    fn floor(&self, key: &[u8]) -> u64 {
        key.first()
            .and_then(|t| self.floor.get(usize::from(*t)))
            .map_or(0, |f| f.load(Ordering::SeqCst))
    }

    /// Removes every cached answer of hierarchy tag `tag` and refuses any answer whose signing
    /// started before now (it may carry the old signer). Returns how many were removed.
    fn purge(&self, tag: u8) -> usize {
        let epoch = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(f) = self.floor.get(usize::from(tag)) {
            f.fetch_max(epoch, Ordering::SeqCst);
        }
        let mut removed = 0;
        for shard in &self.shards {
            let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
            map.retain(|k, rec| {
                if k.first() == Some(&tag) {
                    removed += rec.entries.len();
                    false
                } else {
                    true
                }
            });
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        // hash_one returns u64; the modulo keeps the index in range.
        &self.shards[(self.hasher.hash_one(key) % SHARDS as u64) as usize]
    }

    /// The cached answer's bytes, times and tag (copied under the read lock: cloning the
    /// `Arc<Entry>` would add one more contended reference count per hit).
    fn lookup(
        &self,
        key: &[u8],
        id: &CertId,
        now: OffsetDateTime,
    ) -> Option<(Bytes, Times, Arc<str>)> {
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(key)?.entries.iter().find(|e| e.cert_id == *id)?;
        if now >= entry.times.next_update
            || now < entry.times.this_update - time::Duration::minutes(5)
        {
            return None;
        }
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        Some((entry.der.clone(), entry.times, entry.etag.clone()))
    }

    /// Stores `entry` unless a refresh of the serial happened after `started`; replaces an
    /// entry `replacing` (by identity) or one with the same CertID.
    fn insert(&self, key: &[u8], started: u64, entry: Arc<Entry>, capacity: usize) -> bool {
        let mut shard = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        if started < self.floor(key) || started < self.evict_floor.load(Ordering::SeqCst) {
            return false;
        }
        let rec = shard.entry(key.to_vec()).or_default();
        if rec.epoch > started {
            return false;
        }
        if let Some(slot) = rec.entries.iter_mut().find(|e| e.cert_id == entry.cert_id) {
            *slot = entry;
            return true;
        }
        if self.len.load(Ordering::Relaxed) >= capacity {
            // Full: make room by evicting another record of this shard (an arbitrary one, in
            // the map's hash order).
            let victim = shard
                .iter()
                .find(|(k, r)| k.as_slice() != key && !r.entries.is_empty())
                .map(|(k, _)| k.clone());
            let Some(gone) = victim.and_then(|v| shard.remove(&v)) else {
                return false;
            };
            self.evict_floor.fetch_max(gone.epoch, Ordering::SeqCst);
            self.len.fetch_sub(gone.entries.len(), Ordering::Relaxed);
        }
        let Some(rec) = shard.get_mut(key) else {
            return false;
        };
        rec.entries.push(entry);
        self.len.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn remove(&self, key: &[u8], entry: &Arc<Entry>) -> bool {
        let mut shard = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        let Some(rec) = shard.get_mut(key) else {
            return false;
        };
        let before = rec.entries.len();
        rec.entries.retain(|e| !Arc::ptr_eq(e, entry));
        let removed = before - rec.entries.len();
        if rec.entries.is_empty() && rec.epoch == 0 {
            shard.remove(key);
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed > 0
    }
}

struct Errors {
    malformed: Bytes,
    unauthorized: Bytes,
    try_later: Bytes,
    internal: Bytes,
}

struct Inner {
    settings: Settings,
    /// One per root generation, append-only ([`Responder::add_issuer`]: a root rollover
    /// reaching a running server); positions never change, so a request's targets stay valid.
    issuers: RwLock<Arc<Vec<Arc<IssuerState>>>>,
    source: Arc<dyn StatusSource>,
    clock: Arc<dyn Clock>,
    cache: Cache,
    live: Arc<Semaphore>,
    metrics: Metrics,
    errors: Errors,
    /// More Prometheus text appended to `/metrics` (the server's own gauges).
    extra_metrics: std::sync::OnceLock<MetricsHook>,
    /// The durable store of pre-signed answers, once attached ([`Responder::attach_store`]).
    stored: std::sync::OnceLock<Arc<AnswerStore>>,
    /// Orders the answer store's writes against status changes ([`WriteGuard`]).
    guard: WriteGuard,
    /// The stored answers are known to state the store's status (the source keeps a
    /// status-change log and a catch-up from it succeeded): served without a status read.
    authoritative: AtomicBool,
    /// Log entries the catch-up applied within `LOG_LAG` of its watermark; the lock also keeps
    /// two catch-ups from running at once.
    followed: Mutex<std::collections::BTreeSet<u64>>,
    /// The pre-signer's cursor file ([`Responder::keep_presign_cursor`]).
    presign_cursor: std::sync::OnceLock<std::path::PathBuf>,
}

/// Orders writes to the answer store against status changes, per stripe of serials: a
/// refresh raises its stripe's number to its own sequence number before it reads the
/// status; a writer that read the status earlier (the pre-signer, a live answer) then finds
/// a higher number than its own start under the stripe's lock and does not write. A refresh
/// overtaken in its stripe by a later one removes its answer rather than writing one it can
/// no longer vouch for. So no stale answer is ever written after a status change's own.
struct WriteGuard {
    stripes: Vec<Mutex<u64>>,
}

impl WriteGuard {
    fn new() -> WriteGuard {
        WriteGuard {
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
        }
    }

    fn lock(&self, cache: &Cache, key: &[u8]) -> std::sync::MutexGuard<'_, u64> {
        // hash_one returns u64; the modulo keeps the index in range.
        let i = (cache.hasher.hash_one(key) >> 8) % STRIPES as u64;
        self.stripes[i as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// What one pass of the pre-signer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresignReport {
    /// Certificates walked.
    pub certificates: u64,
    /// Answers signed and stored.
    pub signed: u64,
    /// The earliest nextUpdate among the stored answers after the pass.
    pub earliest_next_update: Option<OffsetDateTime>,
}

/// Renders more Prometheus text for `/metrics`: see [`Responder::add_metrics`].
pub type MetricsHook = Arc<dyn Fn() -> String + Send + Sync>;

/// The OCSP responder. Cheap to clone (one `Arc`); share it between the HTTP server, the
/// re-signer task and the CA's revoke path.
#[derive(Clone)]
pub struct Responder {
    inner: Arc<Inner>,
}

enum Prepared {
    Done(Answer),
    Live(Parsed, Vec<Option<usize>>),
}

fn gtime(t: OffsetDateTime) -> Result<OcspGeneralizedTime, Error> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| Error::Time(t))?;
    let g = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|_| Error::Time(t))?;
    Ok(OcspGeneralizedTime(g))
}

fn crl_reason(r: Reason) -> CrlReason {
    match r {
        Reason::Unspecified => CrlReason::Unspecified,
        Reason::KeyCompromise => CrlReason::KeyCompromise,
        Reason::CaCompromise => CrlReason::CaCompromise,
        Reason::AffiliationChanged => CrlReason::AffiliationChanged,
        Reason::Superseded => CrlReason::Superseded,
        Reason::CessationOfOperation => CrlReason::CessationOfOperation,
        Reason::CertificateHold => CrlReason::CertificateHold,
        Reason::RemoveFromCrl => CrlReason::RemoveFromCRL,
        Reason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        Reason::AaCompromise => CrlReason::AaCompromise,
    }
}

fn cert_status(s: Status) -> Result<CertStatus, Error> {
    Ok(match s {
        Status::Good => CertStatus::good(),
        Status::Unknown => CertStatus::unknown(),
        Status::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
            revocation_time: gtime(at)?,
            // RFC 5280 §5.3.1: unspecified is better expressed by leaving the reason out.
            revocation_reason: (reason != Reason::Unspecified).then(|| crl_reason(reason)),
        }),
    })
}

/// The entity tag of an answer: `"` + the first 16 octets of its SHA-256 in hex + `"`.
fn etag_bytes(der: &[u8]) -> [u8; ETAG] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = digest::digest(&digest::SHA256, der);
    let mut tag = [b'"'; ETAG];
    for (i, b) in d.as_ref()[..16].iter().enumerate() {
        tag[1 + 2 * i] = HEX[usize::from(b >> 4)];
        tag[2 + 2 * i] = HEX[usize::from(b & 15)];
    }
    tag
}

fn etag(der: &[u8]) -> Arc<str> {
    let tag = etag_bytes(der);
    // ASCII by construction.
    Arc::from(std::str::from_utf8(&tag).unwrap_or("\"\""))
}

/// Two statuses compared to the second: what an answer (GeneralizedTime) and the stores hold.
fn same_status(a: Status, b: Status) -> bool {
    let seconds = |s: Status| match s {
        Status::Revoked { at, reason } => (1, at.unix_timestamp(), Some(reason)),
        Status::Good => (0, 0, None),
        Status::Unknown => (2, 0, None),
    };
    seconds(a) == seconds(b)
}

/// Whether a request's CertID is in the form the stored answers carry (hashAlgorithm with
/// NULL parameters, the serial as the minimal positive INTEGER): then, its issuer hashes
/// having matched, its DER is the stored answer's CertID.
fn canonical_form(id: &CertId) -> bool {
    let null = id
        .hash_algorithm
        .parameters
        .as_ref()
        .is_some_and(|p| der07::Tagged::tag(p) == der07::Tag::Null && p.value().is_empty());
    let serial = id.serial_number.as_bytes();
    let minimal = match serial {
        [first, ..] if *first >= 0x80 => false,
        [0, second, ..] => *second >= 0x80,
        [] => false,
        _ => true,
    };
    null && minimal
}

impl Responder {
    /// Builds a responder for the given issuers: one per root generation of each hierarchy
    /// (CertIDs are matched by issuerNameHash and issuerKeyHash, so a request finds the
    /// generation that issued its certificate; the same root twice is refused).
    pub fn new(
        settings: Settings,
        issuers: Vec<Issuer>,
        source: Arc<dyn StatusSource>,
        clock: Arc<dyn Clock>,
    ) -> Result<Responder, Error> {
        if issuers.is_empty() {
            return Err(Error::NoIssuer);
        }
        let mut states: Vec<Arc<IssuerState>> = Vec::new();
        for issuer in issuers {
            // Several generations of one hierarchy's root (one DN, other keys) are several
            // issuers; the same root twice is a mistake.
            let state = IssuerState::new(issuer)?;
            if states
                .iter()
                .any(|s| s.hierarchy == state.hierarchy && s.key_hash == state.key_hash)
            {
                return Err(Error::DuplicateIssuer(state.hierarchy));
            }
            states.push(Arc::new(state));
        }
        if settings.live_concurrency == 0 || settings.max_cert_ids == 0 {
            return Err(Error::Settings(
                "live_concurrency and max_cert_ids must be at least 1".into(),
            ));
        }
        if settings.validity <= time::Duration::ZERO || settings.resign_margin >= settings.validity
        {
            return Err(Error::Settings(
                "validity must be positive and larger than resign_margin".into(),
            ));
        }
        let errors = Errors {
            malformed: OcspResponse::malformed_request().to_der()?.into(),
            unauthorized: OcspResponse::unauthorized().to_der()?.into(),
            try_later: OcspResponse::try_later().to_der()?.into(),
            internal: OcspResponse::internal_error().to_der()?.into(),
        };
        Ok(Responder {
            inner: Arc::new(Inner {
                live: Arc::new(Semaphore::new(settings.live_concurrency)),
                settings,
                issuers: RwLock::new(Arc::new(states)),
                source,
                clock,
                cache: Cache::new(),
                metrics: Metrics::default(),
                errors,
                extra_metrics: std::sync::OnceLock::new(),
                stored: std::sync::OnceLock::new(),
                guard: WriteGuard::new(),
                authoritative: AtomicBool::new(false),
                followed: Mutex::new(Default::default()),
                presign_cursor: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Installs (once) a function whose Prometheus text `/metrics` appends to the responder's
    /// own: how a server exports its gauges on the same endpoint.
    pub fn add_metrics(&self, hook: MetricsHook) -> Result<(), Error> {
        self.inner
            .extra_metrics
            .set(hook)
            .map_err(|_| Error::Settings("a metrics hook is already installed".into()))
    }

    /// The `/metrics` text: the responder's counters, then the installed hook's.
    pub fn render_metrics(&self) -> String {
        let mut text = self.inner.metrics.render(self.cached());
        if let Some(hook) = self.inner.extra_metrics.get() {
            text.push_str(&hook());
        }
        text
    }

    /// The injected clock's time.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Number of cached answers.
    pub fn cached(&self) -> usize {
        self.inner.cache.len.load(Ordering::Relaxed)
    }

    /// The root certificates served, by hierarchy.
    pub fn roots(&self) -> Vec<(Hierarchy, Vec<u8>)> {
        self.issuers()
            .iter()
            .map(|i| (i.hierarchy, i.root_der.clone()))
            .collect()
    }

    /// The issuers served now (one reference count, no copy).
    fn issuers(&self) -> Arc<Vec<Arc<IssuerState>>> {
        Arc::clone(&self.inner.issuers.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Serves one more issuer from now on: a new generation of a hierarchy's root made while
    /// the server runs (`jpki root rollover` through the admin socket). Its answers are signed
    /// by `issuer.signer` (the new root itself until [`Responder::replace_signer`] installs
    /// the delegated signer it issues). The same root twice is refused.
    pub fn add_issuer(&self, issuer: Issuer) -> Result<(), Error> {
        let state = IssuerState::new(issuer)?;
        let mut issuers = self
            .inner
            .issuers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if issuers
            .iter()
            .any(|s| s.hierarchy == state.hierarchy && s.key_hash == state.key_hash)
        {
            return Err(Error::DuplicateIssuer(state.hierarchy));
        }
        let mut grown = Vec::clone(issuers.as_ref());
        grown.push(Arc::new(state));
        *issuers = Arc::new(grown);
        Ok(())
    }

    /// Answers one DER `OCSPRequest`, counting it in the metrics.
    pub async fn answer(&self, der: &[u8]) -> Answer {
        let now = self.now();
        let answer = match self.prepare(der, now) {
            Prepared::Done(a) => a,
            Prepared::Live(parsed, targets) => {
                // An authoritative answer store is read right here, on the worker: a redb
                // read of a cached page takes microseconds, and of another a `pread` of the
                // file (the OS page cache); nothing else is read. Its writes (which may wait
                // for another writer's fsync) are made on the blocking pool only.
                let fast = if self.inner.authoritative.load(Ordering::Acquire) {
                    self.answer_from_store(&parsed, &targets, now)
                } else {
                    None
                };
                // Otherwise the store's read and the status check are quick but may block (a
                // PostgreSQL status source blocks on its own runtime): off the worker.
                let (stored, parsed, targets) = if fast.is_some() {
                    (fast, parsed, targets)
                } else if self.inner.stored.get().is_some()
                    && !self.inner.authoritative.load(Ordering::Acquire)
                {
                    self.blocking(move |me| {
                        let a = me.answer_from_store(&parsed, &targets, now);
                        (a, parsed, targets)
                    })
                    .await
                } else {
                    (None, parsed, targets)
                };
                match stored {
                    Some(a) => a,
                    None => self.live(parsed, targets).await,
                }
            }
        };
        self.count(&answer);
        answer
    }

    /// Runs `f` where blocking is allowed: in place on a multi-threaded runtime (the worker
    /// hands its other tasks over), on the blocking pool otherwise.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Responder) -> T + Send + 'static,
    ) -> T {
        use tokio::runtime::{Handle, RuntimeFlavor};
        if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| f(self));
        }
        let me = self.clone();
        match tokio::task::spawn_blocking(move || f(&me)).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// A single nonce-less CertID in the canonical form (hash algorithm with NULL
    /// parameters) answered from the durable store, if its answer is there, current and of
    /// the generation asked about; when the store is not authoritative, only if it states the
    /// status the store holds now (see [`crate::stored`]). Promoted into the memory cache.
    fn answer_from_store(
        &self,
        parsed: &Parsed,
        targets: &[Option<usize>],
        now: OffsetDateTime,
    ) -> Option<Answer> {
        let inner = &self.inner;
        let store = inner.stored.get()?;
        let ([id], [Some(i)], None) = (parsed.cert_ids.as_slice(), targets, &parsed.nonce) else {
            return None;
        };
        if !canonical_form(id) {
            return None;
        }
        let issuers = self.issuers();
        let issuer = &issuers[*i];
        let alg = HashAlg::from_oid(&id.hash_algorithm.oid)?;
        let serial = id.serial_number.as_bytes();
        let mut buf = [0u8; MAX_KEY];
        let n = key(issuer.hierarchy, serial, &mut buf)?;
        let started = inner.cache.seq.load(Ordering::SeqCst);
        let stored = match store.get(issuer.hierarchy, alg, serial) {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(error = %e, "pre-signed answer store read failed; signing live");
                return None;
            }
        };
        let t = stored.times;
        if now >= t.next_update || now < t.this_update - time::Duration::minutes(5) {
            return None;
        }
        // Another generation's answer (root rollover): live.
        if stored.issuer_key[..] != issuer.key_hash[HashAlg::Sha1 as usize][..] {
            return None;
        }
        if !inner.authoritative.load(Ordering::Acquire) {
            // `unknown` to a generation that did not issue the serial (root rollover): live.
            let now_status = self.status_for(issuer, serial).ok()?;
            if now_status == Status::Unknown || !same_status(now_status, stored.status) {
                return None;
            }
        }
        let tag: Arc<str> = Arc::from(std::str::from_utf8(&stored.etag).ok()?);
        let cache = &inner.cache;
        let capacity = inner.settings.cache_capacity;
        let admit = cache.len.load(Ordering::Relaxed) < capacity || admit_one_of_many();
        if admit {
            let entry = Arc::new(Entry {
                cert_id: id.clone(),
                der: stored.der.clone(),
                times: t,
                etag: tag.clone(),
                used: AtomicBool::new(true),
            });
            cache.insert(&buf[..n], started, entry, capacity);
        }
        inner.metrics.stored_hit();
        Some(Answer {
            der: stored.der,
            status: ResponseStatus::Successful,
            cause: Cause::CacheHit,
            cacheable: Some((t, tag)),
        })
    }

    /// Attaches the durable store of pre-signed answers (once): from then on answers are
    /// served from it after a memory miss, live answers are stored in it, revocations
    /// replace their answers in it before they are acknowledged, and
    /// [`Responder::presign_pass`] keeps every certificate's answer in it signed ahead.
    ///
    /// Blocking: first catches the store up from the source's status-change log
    /// ([`Responder::catch_up`]), so that a server attaching it before it listens never
    /// serves an answer a crash or another process left stale. If that fails, stored answers
    /// are served only after a status read each, until [`Responder::run_store_follower`]
    /// catches up.
    pub fn attach_store(&self, store: Arc<AnswerStore>) -> Result<(), Error> {
        self.inner
            .stored
            .set(store)
            .map_err(|_| Error::Settings("an answer store is already attached".into()))?;
        if let Err(e) = self.catch_up_with(true) {
            tracing::error!(error = %e, "the OCSP answer store could not catch up with the status log; stored answers are checked against the store's status until it does");
        }
        Ok(())
    }

    /// Whether stored answers are served without a status read (the source keeps a
    /// status-change log and the store has caught up with it).
    pub fn store_is_authoritative(&self) -> bool {
        self.inner.authoritative.load(Ordering::Acquire)
    }

    /// Catches the answer store up with the source's status-change log: for every change
    /// past the watermark (and within `LOG_LAG` behind it, for a log whose numbers appear out
    /// of order), a stored answer that no longer states the certificate's status is signed
    /// again (and the memory front's answers of the serial dropped); then the watermark
    /// moves, after the answers are on disk. Returns how many changes were applied.
    /// Blocking. Does nothing without a store or a source without a log.
    pub fn catch_up(&self) -> Result<usize, Error> {
        self.catch_up_with(false)
    }

    /// `at_start`: before the first answer, stale answers are removed rather than re-signed
    /// (quick whatever was changed while the server was down: the pre-signer refills them).
    fn catch_up_with(&self, at_start: bool) -> Result<usize, Error> {
        let inner = &self.inner;
        let Some(store) = inner.stored.get() else {
            return Ok(0);
        };
        let mut followed = inner.followed.lock().unwrap_or_else(|p| p.into_inner());
        let Some(head) = inner.source.status_log_head()? else {
            return Ok(0);
        };
        let mark = store.watermark()?;
        match mark {
            // The CA store is older than the answers (a restored copy): none can be trusted.
            Some(w) if head < w => {
                let n = store.clear()?;
                for tag in [Hierarchy::Signing.tag(), Hierarchy::Auth.tag()] {
                    inner.cache.purge(tag);
                }
                tracing::warn!(removed = n, head, watermark = w, "the store's status log is behind the OCSP answer store's watermark (a restored store?); every stored answer removed");
                store.set_watermark(head)?;
                followed.clear();
                inner.authoritative.store(true, Ordering::Release);
                return Ok(0);
            }
            // Nothing stored yet: nothing can be stale.
            None if store.is_empty() => {
                store.set_watermark(head)?;
                inner.authoritative.store(true, Ordering::Release);
                return Ok(0);
            }
            _ => {}
        }
        let mut after = mark.map_or(0, |w| w.saturating_sub(LOG_LAG));
        let mut top = mark.unwrap_or(0);
        let mut applied = 0;
        loop {
            let page = inner.source.status_changes_since(after, LOG_PAGE)?;
            let full = page.len() == LOG_PAGE;
            for change in page {
                after = change.seq;
                if followed.contains(&change.seq) {
                    continue;
                }
                self.reconcile(change.hierarchy, &change.serial, at_start)?;
                followed.insert(change.seq);
                top = top.max(change.seq);
                applied += 1;
            }
            if !full {
                break;
            }
        }
        if mark != Some(top) {
            store.set_watermark(top)?;
        }
        let keep = followed.split_off(&top.saturating_sub(LOG_LAG));
        *followed = keep;
        inner.authoritative.store(true, Ordering::Release);
        if applied > 0 {
            tracing::debug!(
                applied,
                watermark = top,
                "OCSP answer store caught up with the status log"
            );
        }
        Ok(applied)
    }

    /// Makes one serial's stored answers state its status now: a stored answer that does
    /// not (or of an older record version) is removed (`remove`) or signed again. The memory
    /// front's answers of the serial are dropped (a change from another process may have
    /// left them stale; the next query reads the store).
    fn reconcile(&self, h: Hierarchy, serial: &[u8], remove: bool) -> Result<(), Error> {
        let Some(store) = self.inner.stored.get() else {
            return Ok(());
        };
        let Some(issuer) = self.issuer_for_serial(h, serial)? else {
            return Ok(());
        };
        let status = self.status_for(&issuer, serial)?;
        let mut stale = false;
        for alg in [HashAlg::Sha1, HashAlg::Sha256] {
            stale |= match store.get(h, alg, serial)? {
                Some(a) => {
                    !same_status(a.status, status)
                        || a.issuer_key[..] != issuer.key_hash[HashAlg::Sha1 as usize][..]
                }
                None => store.contains(h, alg, serial)?,
            };
        }
        if !stale {
            self.begin_change(h, serial);
            return Ok(());
        }
        if remove || status == Status::Unknown {
            self.invalidate(h, serial)?;
            return Ok(());
        }
        self.refresh(h, serial, self.now()).map(|_| ())
    }

    /// Starts a status change of one serial: a new sequence number, raised in the serial's
    /// write-guard stripe (so no writer that read the status before may store an answer) and
    /// in its memory record, whose answers are taken out and returned.
    fn begin_change(&self, h: Hierarchy, serial: &[u8]) -> Option<(u64, Vec<Arc<Entry>>)> {
        let cache = &self.inner.cache;
        let mut buf = [0u8; MAX_KEY];
        let n = key(h, serial, &mut buf)?;
        let k = &buf[..n];
        let epoch = {
            let mut stripe = self.inner.guard.lock(cache, k);
            let epoch = cache.seq.fetch_add(1, Ordering::SeqCst) + 1;
            *stripe = (*stripe).max(epoch);
            epoch
        };
        let mut shard = cache.shard(k).write().unwrap_or_else(|p| p.into_inner());
        let rec = shard.entry(k.to_vec()).or_default();
        rec.epoch = epoch;
        let old = std::mem::take(&mut rec.entries);
        cache.len.fetch_sub(old.len(), Ordering::Relaxed);
        Some((epoch, old))
    }

    /// Removes a serial's stored answers (every form) and its memory answers: its next query
    /// is signed live. Durable at the next flush (the catch-up's watermark write flushes
    /// first).
    fn invalidate(&self, h: Hierarchy, serial: &[u8]) -> Result<(), Error> {
        let Some(store) = self.inner.stored.get() else {
            return Ok(());
        };
        self.begin_change(h, serial);
        for alg in HashAlg::ALL {
            store.remove(h, alg, serial)?;
        }
        Ok(())
    }

    /// Writes the answer a status change (sequence number `epoch`) signed, unless a later
    /// change of the same stripe began meanwhile: then the answer is removed instead (the
    /// later change writes its own).
    fn put_changed(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
        epoch: u64,
        answer: &StoredAnswer,
    ) -> Result<(), Error> {
        let Some(store) = self.inner.stored.get() else {
            return Ok(());
        };
        let mut buf = [0u8; MAX_KEY];
        let Some(n) = key(h, serial, &mut buf) else {
            return Ok(());
        };
        let cache = &self.inner.cache;
        let stripe = self.inner.guard.lock(cache, &buf[..n]);
        if *stripe == epoch && epoch >= cache.floor(&buf[..n]) {
            store.put(h, alg, serial, answer)
        } else {
            store.remove(h, alg, serial).map(|_| ())
        }
    }

    /// The runs of [`Responder::catch_up`] while serving: every second, until `shutdown`
    /// completes (changes made by this process were applied already, by
    /// [`Responder::refresh`]; this picks up those another process made and whatever a
    /// failed refresh left). Returns at once without a store or a source without a log.
    pub async fn run_store_follower(&self, shutdown: impl Future<Output = ()>) {
        if self.inner.stored.get().is_none() {
            return;
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || {
                me.inner
                    .source
                    .status_log_head()
                    .map(|h| h.is_some())
                    .and_then(|has_log| {
                        Ok((
                            has_log,
                            me.catch_up().map_err(|e| SourceError(e.to_string()))?,
                        ))
                    })
            })
            .await
            {
                Ok(Ok((false, _))) => return,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "OCSP answer store catch-up failed; retrying")
                }
                Err(e) => tracing::error!(error = %e, "OCSP answer store catch-up task failed"),
            }
        }
    }

    /// The stored form of an answer `issuer` signed.
    fn to_store(issuer: &IssuerState, status: Status, times: Times, der: Bytes) -> StoredAnswer {
        let mut issuer_key = [0u8; KEY_HASH];
        let k = &issuer.key_hash[HashAlg::Sha1 as usize];
        if k.len() == KEY_HASH {
            issuer_key.copy_from_slice(k);
        }
        StoredAnswer {
            status,
            times,
            issuer_key,
            etag: etag_bytes(&der),
            der,
        }
    }

    /// The attached durable answer store, if any.
    pub fn answer_store(&self) -> Option<&Arc<AnswerStore>> {
        self.inner.stored.get()
    }

    /// Stores an answer unless a status change of its stripe ([`WriteGuard`]) or a
    /// compromised signer's replacement began after `started`.
    fn keep(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
        started: u64,
        answer: &StoredAnswer,
    ) -> Result<(), Error> {
        let Some(store) = self.inner.stored.get() else {
            return Ok(());
        };
        let mut buf = [0u8; MAX_KEY];
        let Some(n) = key(h, serial, &mut buf) else {
            return Ok(());
        };
        let cache = &self.inner.cache;
        let stripe = self.inner.guard.lock(cache, &buf[..n]);
        if started < cache.floor(&buf[..n]) || started < *stripe {
            return Ok(());
        }
        store.put(h, alg, serial, answer)
    }

    /// One pass of the pre-signer over every certificate: walks every certificate the
    /// source names ([`StatusSource::for_each_issued`]) and signs and stores, at most
    /// `settings.presign_rate` signatures per second, the answers missing from the durable
    /// store or expiring within `resign_margin`: the SHA-1 CertID form (what RFC 5019 clients
    /// send) always, the SHA-256 one when it was asked for before. `stop` ends the pass early.
    /// Blocking; does nothing without an attached store.
    ///
    /// With a source that keeps an issuance feed, [`Responder::run_presigner`] runs it only
    /// at its first start (no cursor) and as a rare reconciliation (`RECONCILE_EVERY`); the
    /// walk itself is paced (`WALK_RATE` certificates a second) so that it never takes more
    /// than a share of the machine beside the OCSP traffic.
    pub fn presign_pass(&self, stop: &AtomicBool) -> Result<PresignReport, Error> {
        let inner = &self.inner;
        let Some(store) = inner.stored.get() else {
            return Ok(PresignReport::default());
        };
        let mut pacer = Pacer::new(inner.settings.presign_rate);
        let t0 = std::time::Instant::now();
        let mut report = PresignReport::default();
        let mut failure: Option<Error> = None;
        let walked = inner.source.for_each_issued(self.now(), &mut |h, serial| {
            if stop.load(Ordering::Relaxed) {
                return Err(SourceError("pre-signer stopped".into()));
            }
            report.certificates += 1;
            if report.certificates.is_multiple_of(WALK_CHUNK) {
                let ahead = report.certificates as f64 / WALK_RATE - t0.elapsed().as_secs_f64();
                if ahead > 0.0 {
                    presign::sleep(std::time::Duration::from_secs_f64(ahead), stop);
                }
            }
            let now = self.now();
            let horizon = now + inner.settings.resign_margin;
            for alg in [HashAlg::Sha1, HashAlg::Sha256] {
                let have = match store.get(h, alg, serial) {
                    Ok(a) => a,
                    Err(e) => {
                        failure = Some(e);
                        return Err(SourceError("answer store failed".into()));
                    }
                };
                let due = match &have {
                    None => alg == HashAlg::Sha1,
                    Some(a) => a.times.next_update <= horizon,
                };
                if !due {
                    let next = have.map(|a| a.times.next_update);
                    report.earliest_next_update = report.earliest_next_update.min(next).or(next);
                    continue;
                }
                match self.presign_one(h, alg, serial, &mut pacer, stop) {
                    Ok(Some(times)) => {
                        report.signed += 1;
                        let next = Some(times.next_update);
                        report.earliest_next_update =
                            report.earliest_next_update.min(next).or(next);
                    }
                    // Unknown (or no issuer, or stopped): nothing to sign.
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        failure = Some(e);
                        return Err(SourceError("pre-signing failed".into()));
                    }
                }
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        match walked {
            Err(_) if stop.load(Ordering::Relaxed) => {}
            Err(e) => return Err(e.into()),
            Ok(()) => inner.metrics.presign_walked(),
        }
        store.flush()?;
        Ok(report)
    }

    /// Signs and stores one serial's answer in one CertID form, when `pacer` allows, unless
    /// a status change or a signer replacement began meanwhile ([`Responder::keep`]). Returns
    /// its times, or `None` when there is nothing to sign (no issuer, an `unknown` serial) or
    /// `stop` was set.
    fn presign_one(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
        pacer: &mut Pacer,
        stop: &AtomicBool,
    ) -> Result<Option<Times>, Error> {
        let inner = &self.inner;
        let Some(issuer) = self.issuer_for_serial(h, serial)? else {
            return Ok(None);
        };
        // The bound on the signing rate.
        if !pacer.wait(stop) {
            return Ok(None);
        }
        let started = inner.cache.seq.load(Ordering::SeqCst);
        let status = inner.source.status(h, serial)?;
        if status == Status::Unknown {
            return Ok(None);
        }
        let times = self.times(self.now());
        let der = issuer
            .cert_id(alg, serial)
            .and_then(|id| sign_counted(inner, &issuer, &[(id, status)], None, times))?;
        let answer = Self::to_store(&issuer, status, times, der);
        self.keep(h, alg, serial, started, &answer)?;
        inner.metrics.presigned(1);
        Ok(Some(times))
    }

    /// Where the pre-signer keeps the cursor of the source's issuance feed (a 0600 file,
    /// written atomically; `jpki serve`: `ocsp-answers/presign-cursor`, beside the answers
    /// it vouches for), so that a restart resumes from it instead of walking every
    /// certificate. Without it the cursor is kept in memory only. Once; before
    /// [`Responder::run_presigner`].
    pub fn keep_presign_cursor(&self, path: std::path::PathBuf) -> Result<(), Error> {
        self.inner
            .presign_cursor
            .set(path)
            .map_err(|_| Error::Settings("the pre-signer's cursor file is already set".into()))
    }

    /// The background pre-signer, until `shutdown` completes. With a source that keeps an
    /// issuance feed ([`StatusSource::issued_log_head`]), on a blocking thread:
    /// 1. **Reconciliation**: at the first start (no cursor, or the answer store is empty, or
    ///    the feed is behind the cursor: a restored store) and then every `RECONCILE_EVERY`,
    ///    one paced [`Responder::presign_pass`] over every certificate; the cursor becomes
    ///    the feed's head as read before it.
    /// 2. **New certificates**, every second: the feed's entries past the cursor (and
    ///    `LOG_LAG` behind it, for a feed numbered from a database sequence) whose SHA-1
    ///    answer is missing are signed; the cursor is written after the answers are flushed.
    /// 3. **Due answers**: once per window (`resign_margin / 2`, at most `MAX_WINDOW`), one
    ///    sequential scan of the stored answers' headers
    ///    ([`AnswerStore::for_each_meta`]) fills a bounded queue ([`presign::DueQueue`],
    ///    presign rate × window entries) with the answers coming due within the window;
    ///    each is signed again when it comes within `resign_margin` of its nextUpdate (unless
    ///    it was meanwhile; an answer whose certificate has expired is removed instead).
    ///
    /// Every signature goes through the same rate bound and the same write guard. Without a
    /// feed: a pass over every certificate, then again when the earliest stored answer
    /// comes within `resign_margin` of its nextUpdate (at least every `validity / 20`, 1 to
    /// 60 s; at most every `resign_margin / 2`).
    pub async fn run_presigner(&self, shutdown: impl Future<Output = ()>) {
        let me = self.clone();
        // A source that says it keeps no feed walks; one that could not be read now is
        // retried by the loop (a store briefly unreachable at start is not a source without
        // a feed).
        let feed = tokio::task::spawn_blocking(move || me.inner.source.issued_log_head()).await;
        if matches!(feed, Ok(Ok(None))) {
            return self.run_walking_presigner(shutdown).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (me, flag) = (self.clone(), Arc::clone(&stop));
        let mut task = tokio::task::spawn_blocking(move || me.presign_loop(&flag));
        tokio::pin!(shutdown);
        tokio::select! {
            _ = &mut shutdown => {
                stop.store(true, Ordering::Relaxed);
                let _ = task.await;
            }
            r = &mut task => match r {
                // The source turned out to keep no feed: walk, as such a source always did.
                Ok(true) => self.run_walking_presigner(shutdown).await,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "pre-signer task failed"),
            }
        }
    }

    /// The pre-signer over a source with an issuance feed (see [`Responder::run_presigner`]).
    /// Returns true if the source says it keeps no feed (then the caller walks instead).
    fn presign_loop(&self, stop: &AtomicBool) -> bool {
        let inner = &self.inner;
        let Some(store) = inner.stored.get() else {
            return false;
        };
        let s = &inner.settings;
        let window = (s.resign_margin / 2i32).clamp(time::Duration::SECOND, MAX_WINDOW);
        let bound =
            u64::from(s.presign_rate.max(1)).saturating_mul(window.whole_seconds().unsigned_abs());
        let mut queue = presign::DueQueue::new(usize::try_from(bound).unwrap_or(usize::MAX));
        let mut pacer = Pacer::new(s.presign_rate);
        let file = inner.presign_cursor.get();
        // A cursor vouches for answers: none without them.
        let mut cursor = file
            .and_then(|f| presign::read_cursor(f))
            .filter(|_| !store.is_empty());
        let mut saved = cursor;
        let mut seen = std::collections::BTreeSet::new();
        // Scans and reconciliations follow the injectable clock (the due times do).
        let mut walked_at = self.now();
        let mut next_scan = self.now();
        let mut warned = false;
        let retry = std::time::Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) {
            // 1. Reconciliation: a walk of every certificate, rarely.
            let head = match inner.source.issued_log_head() {
                Ok(Some(h)) => h,
                Ok(None) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, "pre-signer: the issuance feed is unreadable; retrying");
                    presign::sleep(retry, stop);
                    continue;
                }
            };
            let stale = cursor.is_none_or(|c| c > head);
            if stale || self.now() - walked_at >= RECONCILE_EVERY {
                let t0 = std::time::Instant::now();
                match self.presign_pass(stop) {
                    Ok(_) if stop.load(Ordering::Relaxed) => return false,
                    Ok(r) => {
                        tracing::info!(
                            certificates = r.certificates,
                            signed = r.signed,
                            seconds = t0.elapsed().as_secs_f64(),
                            "pre-signer: every certificate walked (first start or reconciliation)"
                        );
                        self.check_presign_capacity(r.certificates, &mut warned);
                        cursor = Some(cursor.map_or(head, |c| c.min(head)));
                        seen.clear();
                        walked_at = self.now();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pre-signer pass failed; retrying");
                        presign::sleep(retry, stop);
                        continue;
                    }
                }
            }
            let mut at = cursor.unwrap_or(head);
            // 2. New certificates.
            let followed = self.follow_issued(store, &mut at, &mut seen, &mut pacer, stop);
            cursor = Some(at);
            if let Err(e) = followed {
                tracing::warn!(error = %e, "pre-signer: following the issuance feed failed; retrying");
            }
            // 3. Due answers: the scan when its window comes (or the queue it overflowed is
            // drained), then signing what is due until the next look at the feed.
            if self.now() >= next_scan || (queue.len() == 0 && queue.overflowed()) {
                let t0 = std::time::Instant::now();
                match self.scan_due(store, &mut queue, window) {
                    Ok(answers) => {
                        tracing::debug!(
                            answers,
                            due = queue.len(),
                            overflowed = queue.overflowed(),
                            seconds = t0.elapsed().as_secs_f64(),
                            "pre-signer: stored answers scanned"
                        );
                        self.check_presign_capacity(answers, &mut warned);
                        next_scan = self.now() + window;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pre-signer: the scan of stored answers failed; retrying");
                        next_scan = self.now() + retry;
                    }
                }
            }
            let until = std::time::Instant::now() + FEED_EVERY;
            let mut signed = false;
            while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                let due_by = (self.now() + s.resign_margin).unix_timestamp();
                let Some(d) = queue.pop_due(due_by) else {
                    presign::sleep(until - std::time::Instant::now(), stop);
                    break;
                };
                match self.resign_queued(store, &d, &mut pacer, stop) {
                    Ok(done) => signed |= done,
                    Err(e) => {
                        tracing::warn!(error = %e, "pre-signer: re-signing a due answer failed; the next scan finds it again");
                    }
                }
            }
            // The cursor vouches for the answers of the feed's certificates (signed here, or
            // live a moment before): they are made durable first.
            let flushed = if signed || cursor != saved {
                store.flush()
            } else {
                Ok(())
            };
            if let Err(e) = flushed {
                tracing::warn!(error = %e, "pre-signer: flushing the answer store failed; retrying");
                continue;
            }
            if cursor != saved {
                if let (Some(f), Some(c)) = (file, cursor) {
                    match presign::write_cursor(f, c) {
                        Ok(()) => saved = cursor,
                        Err(e) => {
                            tracing::warn!(error = %e, path = %f.display(), "pre-signer: the cursor could not be written; retrying")
                        }
                    }
                }
            }
        }
        // Stopped: what the feed brought is kept for the restart (answers first).
        if let (Some(f), Some(c)) = (file, cursor.filter(|_| cursor != saved)) {
            if let Err(e) = store
                .flush()
                .and_then(|()| presign::write_cursor(f, c).map_err(|e| Error::Store(e.to_string())))
            {
                tracing::warn!(error = %e, "pre-signer: the cursor could not be kept at shutdown; the restart reads the feed from the last one");
            }
        }
        false
    }

    /// Signs the answers of the issuance feed's certificates past `*cursor` (and within
    /// `LOG_LAG` behind it, skipping those in `seen`) that have no stored SHA-1 answer and
    /// have not expired; moves `*cursor` to the last entry handled. Returns how many were
    /// signed.
    fn follow_issued(
        &self,
        store: &AnswerStore,
        cursor: &mut u64,
        seen: &mut std::collections::BTreeSet<u64>,
        pacer: &mut Pacer,
        stop: &AtomicBool,
    ) -> Result<u64, Error> {
        let source = &self.inner.source;
        let mut after = cursor.saturating_sub(LOG_LAG);
        let mut signed = 0;
        loop {
            let page = source.issued_since(after, LOG_PAGE)?;
            let full = page.len() == LOG_PAGE;
            for e in page {
                if stop.load(Ordering::Relaxed) {
                    return Ok(signed);
                }
                after = e.seq;
                if seen.contains(&e.seq) {
                    continue;
                }
                if e.not_after > self.now()
                    && !store.contains(e.hierarchy, HashAlg::Sha1, &e.serial)?
                    && self
                        .presign_one(e.hierarchy, HashAlg::Sha1, &e.serial, pacer, stop)?
                        .is_some()
                {
                    signed += 1;
                }
                seen.insert(e.seq);
                *cursor = (*cursor).max(e.seq);
            }
            if !full {
                break;
            }
        }
        *seen = seen.split_off(&cursor.saturating_sub(LOG_LAG));
        Ok(signed)
    }

    /// One sequential scan of the stored answers' headers: the queue is refilled with those
    /// whose nextUpdate falls within `resign_margin` + `window` from now. Returns the number
    /// of SHA-1 answers (one per certificate with an answer: the capacity metric's count).
    fn scan_due(
        &self,
        store: &AnswerStore,
        queue: &mut presign::DueQueue,
        window: time::Duration,
    ) -> Result<u64, Error> {
        let until = (self.now() + self.inner.settings.resign_margin + window).unix_timestamp();
        let mut answers = 0u64;
        queue.begin_scan();
        let scanned = store.for_each_meta(&mut |m| {
            answers += u64::from(m.alg == HashAlg::Sha1);
            let t = m.times.next_update.unix_timestamp();
            if t <= until {
                queue.offer(presign::Due {
                    next_update: t,
                    hierarchy: m.hierarchy.tag(),
                    alg: m.alg as u8,
                    serial: m.serial.into(),
                });
            }
            true
        });
        queue.end_scan();
        scanned.map(|()| answers)
    }

    /// Signs one queued answer again if it is still stored and still due (a revocation, a
    /// live answer or an earlier pass may have replaced it); removes it instead if its
    /// certificate has expired or is no longer known. Returns whether it wrote anything.
    fn resign_queued(
        &self,
        store: &AnswerStore,
        d: &presign::Due,
        pacer: &mut Pacer,
        stop: &AtomicBool,
    ) -> Result<bool, Error> {
        let (Some(h), Some(alg)) = (
            Hierarchy::from_tag(d.hierarchy),
            HashAlg::ALL.into_iter().find(|a| *a as u8 == d.alg),
        ) else {
            return Ok(false);
        };
        let serial = &d.serial[..];
        let now = self.now();
        match store.get(h, alg, serial)? {
            Some(a) if a.times.next_update <= now + self.inner.settings.resign_margin => {}
            _ => return Ok(false),
        }
        let expired = self
            .inner
            .source
            .not_after(h, serial)?
            .is_some_and(|t| t <= now);
        if !expired && self.presign_one(h, alg, serial, pacer, stop)?.is_some() {
            return Ok(true);
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        // Expired, or unknown to the source: no answer to keep signing.
        store.remove(h, alg, serial)
    }

    /// The pre-signer over a source without an issuance feed: [`Responder::presign_pass`]
    /// on a blocking thread, then again when the earliest stored answer comes within
    /// `resign_margin` of its nextUpdate (at least every `validity / 20`, 1 to 60 s, so new
    /// certificates are covered soon; at most every `resign_margin / 2`).
    async fn run_walking_presigner(&self, shutdown: impl Future<Output = ()>) {
        let period = (self.inner.settings.validity / 20i32)
            .clamp(time::Duration::seconds(1), time::Duration::seconds(60));
        let stop = Arc::new(AtomicBool::new(false));
        let mut warned = false;
        tokio::pin!(shutdown);
        loop {
            let (me, flag) = (self.clone(), Arc::clone(&stop));
            let mut pass = tokio::task::spawn_blocking(move || me.presign_pass(&flag));
            let done = tokio::select! {
                _ = &mut shutdown => {
                    stop.store(true, Ordering::Relaxed);
                    let _ = pass.await;
                    return;
                }
                r = &mut pass => r,
            };
            let wait = match done {
                Ok(Ok(r)) => {
                    tracing::debug!(
                        certificates = r.certificates,
                        signed = r.signed,
                        "pre-signer pass"
                    );
                    self.check_presign_capacity(r.certificates, &mut warned);
                    let margin = self.inner.settings.resign_margin;
                    let until = r
                        .earliest_next_update
                        .map_or(margin / 2, |t| t - margin - self.now());
                    until.clamp(period, std::cmp::max(margin / 2, period))
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "pre-signer pass failed; retrying");
                    period
                }
                Err(e) => {
                    tracing::error!(error = %e, "pre-signer task failed");
                    period
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait.unsigned_abs()) => {}
            }
        }
    }

    /// After a pre-signer pass over `certificates`: the rate needed to re-sign each one's
    /// answer once per cycle, in the metrics, and a warning (once until the rate suffices
    /// again) when the configured bound is below it — the answers would then expire before
    /// the pre-signer comes back to them and be signed live, at the RSA rate, when asked.
    fn check_presign_capacity(&self, certificates: u64, warned: &mut bool) {
        let s = &self.inner.settings;
        let needed = presign_needed(certificates, s.validity, s.resign_margin);
        let allowed = u64::from(s.presign_rate.max(1));
        self.inner.metrics.presign_capacity(needed, allowed);
        if needed > allowed && !*warned {
            tracing::warn!(
                certificates,
                needed_per_second = needed,
                presign_per_second = allowed,
                "the pre-signer cannot keep every certificate's OCSP answer signed ahead: raise [ocsp] presign_per_second or the policy's ocsp.next_update_minutes"
            );
        }
        *warned = needed > allowed;
    }

    /// Synchronous [`Responder::answer`] without the concurrency limit (for tools, tests and the
    /// fuzz target; servers use `answer`).
    pub fn answer_blocking(&self, der: &[u8]) -> Answer {
        let now = self.now();
        let answer = match self.prepare(der, now) {
            Prepared::Done(a) => a,
            Prepared::Live(parsed, targets) => match self.answer_from_store(&parsed, &targets, now)
            {
                Some(a) => a,
                None => self.sign_request(parsed, targets, now),
            },
        };
        self.count(&answer);
        answer
    }

    fn count(&self, a: &Answer) {
        let m = &self.inner.metrics;
        m.status(a.status);
        m.cause(a.cause);
    }

    fn reject(&self, status: ResponseStatus, cause: Cause) -> Answer {
        let e = &self.inner.errors;
        let der = match status {
            ResponseStatus::MalformedRequest => e.malformed.clone(),
            ResponseStatus::Unauthorized => e.unauthorized.clone(),
            ResponseStatus::TryLater => e.try_later.clone(),
            ResponseStatus::InternalError | ResponseStatus::Successful => e.internal.clone(),
        };
        let status = if status == ResponseStatus::Successful {
            ResponseStatus::InternalError
        } else {
            status
        };
        Answer {
            der,
            status,
            cause,
            cacheable: None,
        }
    }

    fn prepare(&self, der: &[u8], now: OffsetDateTime) -> Prepared {
        let parsed = match request::parse(der, self.inner.settings.max_cert_ids) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return Prepared::Done(
                    self.reject(ResponseStatus::MalformedRequest, Cause::Malformed),
                );
            }
        };
        let issuers = self.issuers();
        let targets: Vec<Option<usize>> = parsed
            .cert_ids
            .iter()
            .map(|id| issuers.iter().position(|i| i.matches(id)))
            .collect();
        if targets.iter().all(Option::is_none) {
            return Prepared::Done(self.reject(ResponseStatus::Unauthorized, Cause::Unauthorized));
        }
        if let ([id], [Some(i)], None) = (
            parsed.cert_ids.as_slice(),
            targets.as_slice(),
            &parsed.nonce,
        ) {
            let mut buf = [0u8; MAX_KEY];
            let h = issuers[*i].hierarchy;
            if let Some(n) = key(h, id.serial_number.as_bytes(), &mut buf) {
                if let Some((der, times, tag)) = self.inner.cache.lookup(&buf[..n], id, now) {
                    return Prepared::Done(Answer {
                        der,
                        status: ResponseStatus::Successful,
                        cause: Cause::CacheHit,
                        cacheable: Some((times, tag)),
                    });
                }
            }
        }
        Prepared::Live(parsed, targets)
    }

    async fn live(&self, parsed: Parsed, targets: Vec<Option<usize>>) -> Answer {
        let sem = self.inner.live.clone();
        let permit =
            match tokio::time::timeout(self.inner.settings.live_wait, sem.acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => return self.reject(ResponseStatus::TryLater, Cause::Overloaded),
            };
        let me = self.clone();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = me.now();
            me.sign_request(parsed, targets, now)
        });
        match job.await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "live signing task failed");
                self.reject(ResponseStatus::InternalError, Cause::LiveSigned)
            }
        }
    }

    fn times(&self, now: OffsetDateTime) -> Times {
        let now = now.replace_nanosecond(0).unwrap_or(now);
        Times {
            produced_at: now,
            this_update: now,
            next_update: now + self.inner.settings.validity,
        }
    }

    /// Looks up and signs every CertID of a request (the live path).
    fn sign_request(
        &self,
        parsed: Parsed,
        targets: Vec<Option<usize>>,
        now: OffsetDateTime,
    ) -> Answer {
        let inner = &self.inner;
        let started = inner.cache.seq.load(Ordering::SeqCst);
        // The first served issuer signs. CertIDs of another issuer (foreign, or the other
        // hierarchy, for which this delegated signer is not authorised) are answered `unknown`:
        // RFC 6960 §2.2, "an unrecognized issuer that is not served by this responder".
        let Some(signing) = targets.iter().flatten().next().copied() else {
            return self.reject(ResponseStatus::Unauthorized, Cause::Unauthorized);
        };
        let issuers = self.issuers();
        let issuer = &issuers[signing];
        let mut statuses = Vec::with_capacity(parsed.cert_ids.len());
        for (id, target) in parsed.cert_ids.iter().zip(&targets) {
            let status = if *target == Some(signing) {
                match self.status_for(issuer, id.serial_number.as_bytes()) {
                    Ok(s) => s,
                    Err(SourceError(e)) => {
                        tracing::warn!(error = %e, hierarchy = %issuer.hierarchy, "status source failed");
                        return self.reject(ResponseStatus::TryLater, Cause::SourceFailed);
                    }
                }
            } else {
                Status::Unknown
            };
            statuses.push(status);
        }
        let unknown = statuses.iter().filter(|s| **s == Status::Unknown).count();
        for _ in 0..unknown {
            inner.metrics.cause(Cause::Unknown);
        }
        let times = self.times(now);
        let cacheable = parsed.nonce.is_none();
        let single = parsed.cert_ids.len() == 1;
        let pairs: Vec<(CertId, Status)> = parsed.cert_ids.into_iter().zip(statuses).collect();
        let der = match sign_counted(inner, issuer, &pairs, parsed.nonce, times) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, hierarchy = %issuer.hierarchy, "signing an OCSP response failed");
                return self.reject(ResponseStatus::InternalError, Cause::LiveSigned);
            }
        };
        let tag = etag(&der);
        if cacheable && single && pairs[0].1 != Status::Unknown {
            let mut buf = [0u8; MAX_KEY];
            if let Some(n) = key(
                issuer.hierarchy,
                pairs[0].0.serial_number.as_bytes(),
                &mut buf,
            ) {
                let entry = Arc::new(Entry {
                    cert_id: pairs[0].0.clone(),
                    der: der.clone(),
                    times,
                    etag: tag.clone(),
                    used: AtomicBool::new(false),
                });
                inner
                    .cache
                    .insert(&buf[..n], started, entry, inner.settings.cache_capacity);
            }
            let (id, status) = &pairs[0];
            let serial = id.serial_number.as_bytes();
            if let Some(alg) = HashAlg::from_oid(&id.hash_algorithm.oid) {
                let same = issuer
                    .cert_id(alg, serial)
                    .and_then(|c| Ok(c.to_der()? == id.to_der()?));
                if same.unwrap_or(false) {
                    let kept = Self::to_store(issuer, *status, times, der.clone());
                    if let Err(e) = self.keep(issuer.hierarchy, alg, serial, started, &kept) {
                        tracing::warn!(error = %e, "could not store a live answer");
                    }
                }
            }
        }
        Answer {
            der,
            status: ResponseStatus::Successful,
            cause: Cause::LiveSigned,
            cacheable: cacheable.then_some((times, tag)),
        }
    }

    /// The newest issuer of a hierarchy (the last given): the generation whose delegated
    /// signer a renewal replaces when the signer's certificate does not say otherwise.
    fn issuer(&self, h: Hierarchy) -> Option<Arc<IssuerState>> {
        self.issuers()
            .iter()
            .rev()
            .find(|i| i.hierarchy == h)
            .cloned()
    }

    /// The issuer a cached CertID belongs to.
    fn issuer_of(&self, id: &CertId) -> Option<Arc<IssuerState>> {
        self.issuers().iter().find(|i| i.matches(id)).cloned()
    }

    /// The status of `serial` as `issuer` may state it: with several generations of the
    /// hierarchy served, a certificate another generation issued is `unknown` to this one.
    fn status_for(&self, issuer: &IssuerState, serial: &[u8]) -> Result<Status, SourceError> {
        let status = self.inner.source.status(issuer.hierarchy, serial)?;
        let generations = self
            .issuers()
            .iter()
            .filter(|i| i.hierarchy == issuer.hierarchy)
            .count();
        if status == Status::Unknown || generations < 2 {
            return Ok(status);
        }
        match self.inner.source.issuer_key_id(issuer.hierarchy, serial)? {
            Some(k) if k != issuer.key_hash[HashAlg::Sha1 as usize] => Ok(Status::Unknown),
            _ => Ok(status),
        }
    }

    /// The issuer (root generation) that issued `serial` of `h`, as the source names it by
    /// key id; the hierarchy's newest when the source does not say or only one generation is
    /// served. What pre-signed answers are signed by, so that the stored CertID is the one a
    /// relying party builds from the certificate's own issuer.
    fn issuer_for_serial(
        &self,
        h: Hierarchy,
        serial: &[u8],
    ) -> Result<Option<Arc<IssuerState>>, SourceError> {
        let issuers = self.issuers();
        let generations = issuers.iter().filter(|i| i.hierarchy == h).count();
        if generations < 2 {
            return Ok(self.issuer(h));
        }
        Ok(match self.inner.source.issuer_key_id(h, serial)? {
            Some(k) => issuers
                .iter()
                .find(|i| i.hierarchy == h && i.key_hash[HashAlg::Sha1 as usize] == k)
                .cloned()
                .or_else(|| self.issuer(h)),
            None => self.issuer(h),
        })
    }

    /// Replaces a hierarchy's delegated OCSP signer (a renewal) atomically: every answer
    /// signed from now on is signed by `signer` and carries its certificate, which must be
    /// issued by the hierarchy's root. Answers already cached stay until the re-signer
    /// replaces them (within `resign_margin` of their nextUpdate, by the new signer): they
    /// remain verifiable, because the CA renews a signer more than an answer's lifetime
    /// before the old one expires (policy `validity.ocsp_signer_renew_days`).
    pub fn replace_signer(&self, h: Hierarchy, signer: Arc<dyn Signer>) -> Result<(), Error> {
        // The generation whose key issued the signer certificate (its AKI key id), else the
        // newest generation.
        let by_key = signer_issuer_key_id(signer.certificate()).and_then(|k| {
            self.issuers()
                .iter()
                .find(|i| i.hierarchy == h && i.key_hash[HashAlg::Sha1 as usize] == k)
                .cloned()
        });
        let issuer = by_key.or_else(|| self.issuer(h)).ok_or(Error::NoIssuer)?;
        let fresh = Arc::new(Signing::new(signer, &issuer.root_name)?);
        *issuer.signing.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.inner.metrics.signer_replaced();
        Ok(())
    }

    /// Replaces the signer of the issuer whose root certificate is `root_der` (DER): how a
    /// root generation that a rollover made older goes on answering with its own root key
    /// (the signer `signer` is that root), as a server started after the rollover has it.
    pub fn replace_issuer_signer(
        &self,
        root_der: &[u8],
        signer: Arc<dyn Signer>,
    ) -> Result<(), Error> {
        let issuers = self.issuers();
        let issuer = issuers
            .iter()
            .find(|i| i.root_der == root_der)
            .ok_or(Error::NoIssuer)?;
        let fresh = Arc::new(Signing::new(signer, &issuer.root_name)?);
        *issuer.signing.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.inner.metrics.signer_replaced();
        Ok(())
    }

    /// Replaces a hierarchy's delegated OCSP signer whose key is compromised: as
    /// [`Responder::replace_signer`], and then every cached answer of the hierarchy is removed
    /// and no answer whose signing began before the swap is cached, so the old key's answers
    /// are never served again (the next query of each certificate is signed live by `signer`).
    /// Returns how many cached answers were removed.
    pub fn replace_compromised_signer(
        &self,
        h: Hierarchy,
        signer: Arc<dyn Signer>,
    ) -> Result<usize, Error> {
        self.replace_signer(h, signer)?;
        let mut removed = self.inner.cache.purge(h.tag());
        if let Some(store) = self.inner.stored.get() {
            removed += store.purge(h)?;
        }
        Ok(removed)
    }

    /// The certificate (DER) of the OCSP signer in force for a hierarchy.
    pub fn signer_certificate(&self, h: Hierarchy) -> Option<Vec<u8>> {
        self.issuer(h)
            .map(|i| i.signing().signer.certificate().to_vec())
    }

    /// Replaces the cached answers for one certificate, synchronously. The CA calls this after
    /// committing a revocation or hold and before acknowledging it, so the very next query sees
    /// the new status. Returns how many cached answers were re-signed (0 when none was cached:
    /// the next query then reads the store anyway). Blocking (signs): from async code, call it
    /// inside `spawn_blocking`. If the store lookup fails, the cached answers stay removed
    /// (queries then go live) and the error is returned.
    pub fn refresh(
        &self,
        h: Hierarchy,
        serial: &[u8],
        now: OffsetDateTime,
    ) -> Result<usize, Error> {
        let cache = &self.inner.cache;
        let mut buf = [0u8; MAX_KEY];
        let Some(n) = key(h, serial, &mut buf) else {
            return Ok(0);
        };
        let k = &buf[..n];
        let Some((epoch, old)) = self.begin_change(h, serial) else {
            return Ok(0);
        };
        let mut stored = 0;
        // The durable answers, replaced (and on disk) before the revocation is acknowledged:
        // the SHA-1 form always, the other forms if they were stored. Whatever goes wrong
        // leaves none of them behind (their next query is signed live).
        let replaced = (|| -> Result<Status, Error> {
            let Some(issuer) = self.issuer_for_serial(h, serial)? else {
                return Ok(Status::Unknown);
            };
            let status = self.status_for(&issuer, serial)?;
            let Some(store) = self.inner.stored.get() else {
                return Ok(status);
            };
            let times = self.times(now);
            for alg in HashAlg::ALL {
                if status == Status::Unknown {
                    store.remove(h, alg, serial)?;
                    continue;
                }
                if alg != HashAlg::Sha1 && !store.contains(h, alg, serial)? {
                    continue;
                }
                let id = issuer.cert_id(alg, serial)?;
                let der = sign_counted(&self.inner, &issuer, &[(id, status)], None, times)?;
                let answer = Self::to_store(&issuer, status, times, der);
                self.put_changed(h, alg, serial, epoch, &answer)?;
                stored += 1;
            }
            store.flush()?;
            Ok(status)
        })();
        let status = match replaced {
            Ok(s) => s,
            Err(e) => {
                if let Some(store) = self.inner.stored.get() {
                    let removed = HashAlg::ALL
                        .iter()
                        .try_for_each(|alg| store.remove(h, *alg, serial).map(|_| ()))
                        .and_then(|()| store.flush());
                    if let Err(e) = removed {
                        tracing::error!(error = %e, %h, "a stale OCSP answer could not be removed from the answer store; the store follower retries");
                    }
                }
                return Err(e);
            }
        };
        let times = self.times(now);
        if old.is_empty() || status == Status::Unknown {
            self.inner.metrics.resigned(stored as u64);
            return Ok(stored);
        }
        let mut fresh = Vec::with_capacity(old.len());
        for e in &old {
            let Some(issuer) = self.issuer_of(&e.cert_id) else {
                continue;
            };
            let status = self.status_for(&issuer, serial)?;
            if status == Status::Unknown {
                continue;
            }
            let der = sign_counted(
                &self.inner,
                &issuer,
                &[(e.cert_id.clone(), status)],
                None,
                times,
            )?;
            fresh.push(Arc::new(Entry {
                cert_id: e.cert_id.clone(),
                etag: etag(&der),
                der,
                times,
                used: AtomicBool::new(true),
            }));
        }
        let count = fresh.len() + stored;
        let mut shard = cache.shard(k).write().unwrap_or_else(|p| p.into_inner());
        if let Some(rec) = shard.get_mut(k) {
            if rec.epoch == epoch && rec.entries.is_empty() {
                cache.len.fetch_add(fresh.len(), Ordering::Relaxed);
                rec.entries = fresh;
            }
        }
        self.inner.metrics.resigned(count as u64);
        Ok(count)
    }

    /// Pre-signs the SHA-1 and SHA-256 CertID answers of one certificate (the CertID forms
    /// clients send: hashAlgorithm with NULL parameters). Returns false for a serial the
    /// source does not know (nothing is cached then).
    pub fn warm(&self, h: Hierarchy, serial: &[u8], now: OffsetDateTime) -> Result<bool, Error> {
        let cache = &self.inner.cache;
        let mut buf = [0u8; MAX_KEY];
        let Some(n) = key(h, serial, &mut buf) else {
            return Ok(false);
        };
        let started = cache.seq.load(Ordering::SeqCst);
        // The generation that issued it (the only one with a known status for it).
        let mut found = None;
        let issuers = self.issuers();
        for issuer in issuers.iter().filter(|i| i.hierarchy == h) {
            let status = self.status_for(issuer, serial)?;
            if status != Status::Unknown {
                found = Some((issuer, status));
                break;
            }
        }
        let Some((issuer, status)) = found else {
            return Ok(false);
        };
        let times = self.times(now);
        for alg in [HashAlg::Sha1, HashAlg::Sha256] {
            let id = issuer.cert_id(alg, serial)?;
            let der = sign_counted(&self.inner, issuer, &[(id.clone(), status)], None, times)?;
            let entry = Arc::new(Entry {
                cert_id: id,
                etag: etag(&der),
                der,
                times,
                used: AtomicBool::new(true),
            });
            cache.insert(
                &buf[..n],
                started,
                entry,
                self.inner.settings.cache_capacity,
            );
        }
        Ok(true)
    }

    /// One pass of the re-signer: cached answers that expire within `resign_margin` of `now`
    /// are re-signed if they were used since they were signed, dropped otherwise. Returns
    /// (re-signed, dropped). Blocking.
    pub fn resign_due(&self, now: OffsetDateTime) -> Result<(usize, usize), Error> {
        let inner = &self.inner;
        let cache = &inner.cache;
        let horizon = now + inner.settings.resign_margin;
        let (mut resigned, mut dropped) = (0, 0);
        for shard in &cache.shards {
            let due: Vec<(Vec<u8>, Arc<Entry>)> = {
                let map = shard.read().unwrap_or_else(|p| p.into_inner());
                map.iter()
                    .flat_map(|(k, rec)| rec.entries.iter().map(move |e| (k, e)))
                    .filter(|(_, e)| e.times.next_update <= horizon)
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect()
            };
            for (k, e) in due {
                let issuer = self.issuer_of(&e.cert_id);
                // With a durable store attached, the pre-signer keeps answers current there;
                // the memory front only drops what is due (the next query promotes the fresh
                // stored answer).
                let keep = e.used.load(Ordering::Relaxed)
                    && issuer.is_some()
                    && inner.stored.get().is_none();
                let (Some(issuer), true) = (issuer, keep) else {
                    dropped += usize::from(cache.remove(&k, &e));
                    continue;
                };
                let started = cache.seq.load(Ordering::SeqCst);
                let status = self.status_for(&issuer, &k[1..])?;
                if status == Status::Unknown {
                    dropped += usize::from(cache.remove(&k, &e));
                    continue;
                }
                let times = self.times(now);
                let der =
                    sign_counted(inner, &issuer, &[(e.cert_id.clone(), status)], None, times)?;
                let fresh = Arc::new(Entry {
                    cert_id: e.cert_id.clone(),
                    etag: etag(&der),
                    der,
                    times,
                    used: AtomicBool::new(false),
                });
                if cache.insert(&k, started, fresh, usize::MAX) {
                    resigned += 1;
                }
            }
        }
        inner.metrics.resigned(resigned as u64);
        inner.metrics.evicted(dropped as u64);
        Ok((resigned, dropped))
    }

    /// The background re-signer: runs [`Responder::resign_due`] on the blocking pool every
    /// `validity / 20` (between 1 s and 60 s) until `shutdown` completes.
    pub async fn run_resigner(&self, shutdown: impl Future<Output = ()>) {
        let period = (self.inner.settings.validity / 20i32)
            .clamp(time::Duration::seconds(1), time::Duration::seconds(60))
            .unsigned_abs();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(period) => {}
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.resign_due(me.now())).await {
                Ok(Ok((r, d))) if r + d > 0 => {
                    tracing::debug!(resigned = r, dropped = d, "re-signer pass")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "re-signer pass failed; retrying next period")
                }
                Err(e) => tracing::error!(error = %e, "re-signer task failed"),
            }
        }
    }
}

/// Signatures per second that re-sign `certificates` answers (one CertID form each) once
/// per cycle: an answer is re-signed `margin` before its nextUpdate, so each lives
/// `validity − margin` between re-signings. Rounded up; `u64::MAX` when there is no cycle.
fn presign_needed(certificates: u64, validity: time::Duration, margin: time::Duration) -> u64 {
    let cycle = (validity - margin).as_seconds_f64();
    if cycle <= 0.0 {
        return u64::MAX;
    }
    // Float to integer saturates in Rust; the value is non-negative here.
    (certificates as f64 / cycle).ceil() as u64
}

/// [`sign`], counted in the metrics' signatures.
fn sign_counted(
    inner: &Inner,
    issuer: &IssuerState,
    pairs: &[(CertId, Status)],
    nonce: Option<Extension>,
    t: Times,
) -> Result<Bytes, Error> {
    inner.metrics.signed();
    sign(issuer, pairs, nonce, t)
}

/// Builds and signs a BasicOCSPResponse (RFC 6960 §4.2.1) and wraps it in an OCSPResponse:
///
/// ```text
/// BasicOCSPResponse ::= SEQUENCE {
///    tbsResponseData      ResponseData,
///    signatureAlgorithm   AlgorithmIdentifier,
///    signature            BIT STRING,
///    certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ResponseData ::= SEQUENCE {
///    version              [0] EXPLICIT Version DEFAULT v1,
///    responderID              ResponderID,
///    producedAt               GeneralizedTime,
///    responses                SEQUENCE OF SingleResponse,
///    responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
/// ```
fn sign(
    issuer: &IssuerState,
    pairs: &[(CertId, Status)],
    nonce: Option<Extension>,
    t: Times,
) -> Result<Bytes, Error> {
    let mut responses = Vec::with_capacity(pairs.len());
    for (id, status) in pairs {
        responses.push(SingleResponse {
            cert_id: id.clone(),
            cert_status: cert_status(*status)?,
            this_update: gtime(t.this_update)?,
            next_update: Some(gtime(t.next_update)?),
            single_extensions: None,
        });
    }
    let signing = issuer.signing();
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(signing.responder_key.clone()),
        produced_at: gtime(t.produced_at)?,
        responses,
        response_extensions: nonce.map(|n| vec![n]),
    };
    let tbs_der = tbs.to_der()?;
    let signature = signing.signer.sign(&tbs_der)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: SHA256_WITH_RSA,
            parameters: Some(Null.into()),
        },
        signature: BitString::from_bytes(&signature)?,
        certs: Some(vec![signing.signer_cert.clone()]),
    };
    Ok(OcspResponse::successful(basic)?.to_der()?.into())
}

/// The keyIdentifier of a certificate's authorityKeyIdentifier (RFC 5280 §4.2.1.1).
fn signer_issuer_key_id(cert_der: &[u8]) -> Option<Vec<u8>> {
    use x509_cert_02::ext::pkix::AuthorityKeyIdentifier;
    const AKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
    let cert = Certificate::from_der(cert_der).ok()?;
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == AKI)?;
    let aki = AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes()).ok()?;
    aki.key_identifier.map(|k| k.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::{admit_one_of_many, presign_needed, ADMIT_ONE_IN};
    use time::Duration;

    #[test]
    fn a_full_front_admits_one_stored_answer_in_eight_on_each_thread() {
        let count = |n: u64| (0..n).filter(|_| admit_one_of_many()).count() as u64;
        assert_eq!(count(ADMIT_ONE_IN * 100), 100);
        // Another thread keeps its own count (no shared cache line), with the same share.
        let other = std::thread::spawn(move || count(ADMIT_ONE_IN * 10));
        assert_eq!(other.join().unwrap(), 10);
    }

    #[test]
    fn the_presign_need_is_certificates_over_the_cycle_rounded_up() {
        // Default policy: answers live 60 min, re-signed 20 min before: a 40-min cycle.
        let (life, margin) = (Duration::minutes(60), Duration::minutes(20));
        assert_eq!(presign_needed(1_000_000, life, margin), 417);
        assert_eq!(presign_needed(10_000_000, life, margin), 4_167);
        assert_eq!(presign_needed(2_400, life, margin), 1);
        assert_eq!(presign_needed(0, life, margin), 0);
        assert_eq!(presign_needed(5, life, life), u64::MAX);
    }
}
