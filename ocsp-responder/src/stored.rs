//! Durable pre-signed answers: every certificate's answer signed ahead of the question and
//! kept on disk, beside the CA's store, so that a restart serves them without signing and
//! memory does not grow with the number of certificates (the in-memory cache of
//! [`crate::responder`] is only a bounded front for the hot ones).
//!
//! **The slot file** (module `slots`; three files, 0600, in their own directory, 0700):
//! a hash table of fixed 4 KiB pages, keyed `hierarchy tag · hash algorithm · serial`, whose
//! values are the status the answer states, its times, the issuing root's key hash, the entity
//! tag and the DER `OCSPResponse` **without its signer certificate** ([`StoredAnswer`], ~1.1 KB
//! for a real answer); the header holds the **watermark**, the sequence number of the store's
//! status-change log up to which every stored answer is known to state the store's status.
//!
//! * *A read is one `pread`.* A key's bucket is the first 8 bytes of its SHA-256 (the same in
//!   every build), reduced by linear hashing's geometry; bucket `b` is page `4 + b` of
//!   `answers.slots`. [`AnswerStore::get`] reads that page into a buffer on the stack,
//!   checks its crc32, finds the key among the page's records and splices the answer (one
//!   allocation). Only a bucket that overflowed its page continues in `answers.spill`: at
//!   10^6 answers of 1.1 KB, 25 % of the answers sit in a spill page (a get of one of those
//!   reads two pages or more; the longest chain had 5 spill pages). No cache of its own: the kernel's page cache holds the
//!   hot pages, shared and outside the process's resident memory, which stays the same
//!   whatever the number of answers.
//! * *In place.* The pre-signer rewrites every answer each cycle; an append-only log would
//!   need constant compaction. A put rewrites the one page that holds the key (or the first
//!   with room, or a new spill page linked last). Writers of a bucket are serialised by one
//!   of 1,024 striped locks, which readers take shared for their `pread`: a reader never
//!   sees a half-written page.
//! * *Growth without a stop.* When the records fill more than 80 % of the primary pages, one
//!   bucket is split (linear hashing): its records are divided between it and a new bucket
//!   at the end, the new one written first, then the header naming the new geometry, then
//!   the old bucket on fresh spill pages with its primary page last. Readers wait only for
//!   that one split (a few page writes). Measured at 10^6 realistic answers: ~1.9 KB of disk
//!   per answer (BENCHMARKS.md "Answer store").
//! * *Damage reads as missing.* A page whose checksum fails, or that names another bucket,
//!   reads as empty; a spill link names the page and a nonce written into it when it was
//!   allocated, so a page freed and reused, or left behind by a crash, never continues a
//!   chain it no longer belongs to. Its answers are missing and signed again — never a wrong
//!   or truncated answer.
//! * *Signer certificates kept once.* An answer carries its delegated OCSP signer's
//!   certificate in `certs`, the last field of BasicOCSPResponse, itself the last field of
//!   the OCSPResponse (RFC 6960 §4.2.1): about half of its bytes, the same in every answer
//!   that signer signed. The record keeps the DER up to that element, as signed (the outer
//!   lengths unchanged), and a reference (SHA-256 prefix) to the element, which is appended
//!   once to `answers.signers` and synced **before** the first record that refers to it is
//!   written; the file is read at open, each entry filed under the hash of its bytes (so a
//!   damaged one serves nothing; a torn last entry is cut off). [`AnswerStore::get`] splices
//!   it back: the DER byte for byte as signed. A record whose suffix is missing reads as
//!   missing.
//!
//! **Durability.** Writes are `pwrite`s, each visible at once and kept by a SIGKILL.
//! [`AnswerStore::flush`] makes them durable (fdatasync of both files) — the responder calls
//! it before a revocation is acknowledged; [`AnswerStore::set_watermark`] does the same and
//! then writes the header with the watermark and syncs it: the watermark reaches the disk
//! after every answer it vouches for. The header is written in two slots alternately (a
//! torn write leaves the older one); puts flush by themselves every `DURABLE_EVERY`. After a
//! crash, open repairs what a lost header write leaves: primary pages past the header's
//! geometry are cut off, spill pages past its high-water mark (the spill file's length) or
//! still linked from a chain are never handed out again. A power loss can lose writes made
//! since the last flush — answers only (derived data, signed again), never the acknowledged
//! ones; [`AnswerStore::len`] may then lag the records. A store whose header has neither a
//! watermark nor a record is begun empty, so "empty and no watermark" (the responder then
//! starts at the log's head) is true of the records, not only of the count.
//!
//! **Why not redb** (the previous engine, one session): correct and crash-safe, but a get
//! walks its B-tree through its own cache (locks, LRU, `begin_read`, `open_table`) and
//! allocates: ~11 % of `jpki serve`'s CPU plus ~5 % kernel `pread` under uniform OCSP load at
//! 10^6, against ~1–2 µs for a `pread` of one page and a copy; its commits rewrite B-tree
//! pages (2.9 KB of disk per 1.1 KB answer). Measured in the same run (BENCHMARKS.md
//! "Answer store"): see the figures there. sled before it was slower still. Both are only
//! dev-dependencies now (the benchmark's peers, the migration tests).
//!
//! **Migration.** A directory in an older layout — sled's (`conf`, `db`, `blobs/`) or redb's
//! (`answers.redb`) — is removed on open with one warning: its answers are derived data and
//! the pre-signer signs them again; the new store has no watermark, so the responder starts
//! it at the log's head.
//!
//! **Why a cache beside the store and not in it.** The answers are derived data: each can be
//! signed again from the store's status at any time. Keeping them out of the store's
//! write-ahead journal spares it a full rewrite of every answer per re-signing cycle.
//!
//! **Why a stored answer is served without reading the store's status.** The answer store is
//! kept authoritative by the responder ([`crate::responder`], "The answer store is
//! authoritative"): every status change is in the CA store's log, in the unit of work that
//! makes it; a revocation replaces its answers here (fsync) before it is acknowledged; and
//! whatever a crash or another process left behind is caught up from the log — at start-up
//! before the first answer, then continuously — before the watermark moves past it. A source
//! that keeps no log gets the older, slower guard instead: each stored answer is compared with
//! the store's status before it is served. If the directory is lost or damaged it is set aside
//! and refilled by the pre-signer; a directory another process (or handle) has open is
//! refused (flock) and left alone.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};

use bytes::Bytes;
use policies::{Hierarchy, Reason};
use time::OffsetDateTime;

use crate::certid::{HashAlg, Times};
use crate::source::Status;
use crate::Error;

mod slots;

use slots::{OpenFailure, Slots};

/// Tunables of the answer store: none yet. The slot file keeps no page cache of its own (the
/// kernel's page cache holds the hot pages, outside the process's resident memory), so the
/// earlier engines' `cache_bytes` is gone (serve refuses `[ocsp] answer_cache_mib` by name).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Settings {}

/// Length of an issuer key hash (SHA-1, as a CertID's issuerKeyHash).
pub const KEY_HASH: usize = 20;
/// Length of an entity tag as served (`"` + 32 hex digits + `"`).
pub const ETAG: usize = 34;
/// Length of a suffix reference (the first 20 bytes of the suffix's SHA-256).
const SUFFIX_REF: usize = 20;

/// One stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The status the answer states (never [`Status::Unknown`]: those are not stored).
    pub status: Status,
    pub times: Times,
    /// SHA-1 of the subjectPublicKey of the root (generation) whose CertID the answer carries:
    /// with several generations of one hierarchy served, only a request naming this one is
    /// answered from the store.
    pub issuer_key: [u8; KEY_HASH],
    /// The HTTP entity tag of `der` (computed once, when signed).
    pub etag: [u8; ETAG],
    /// The DER `OCSPResponse`, byte for byte as signed.
    pub der: Bytes,
}

/// Version 3 keeps the DER without its trailing `certs` element (a reference to it instead);
/// versions 1 and 2 were sled's and are never read (the sled directory is removed on open).
const VERSION: u8 = 3;
/// `version · status · revoked_at · reason · 3 times · issuer key · etag · suffix flag ·
/// suffix reference`.
const HEADER: usize = 1 + 1 + 8 + 1 + 8 * 3 + KEY_HASH + ETAG + 1 + SUFFIX_REF;
/// The slot file (header and primary pages) inside the store's directory.
const FILE: &str = "answers.slots";
/// The spill file (overflow pages).
const SPILL_FILE: &str = "answers.spill";
/// The signer suffixes: `length u32 (little-endian) · bytes`, appended.
const SIGNERS_FILE: &str = "answers.signers";
/// The previous engine's file (removed on open).
const REDB_FILE: &str = "answers.redb";
/// Puts after which the store flushes by itself: bounds what a power loss can take (about a
/// minute of pre-signing at 1,000 signatures a second; a SIGKILL takes nothing written).
const DURABLE_EVERY: u32 = 65_536;

/// Where the trailing `certs [0] EXPLICIT SEQUENCE OF Certificate` element of the
/// BasicOCSPResponse inside an OCSPResponse begins, if it has one (RFC 6960 §4.2.1):
///
/// ```text
/// OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
/// ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
/// BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData,
///     signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
///     certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ```
///
/// Each step takes the last element of its parent and requires it to end where the parent
/// ends, so the suffix from the returned offset on is exactly that element and everything
/// before it (the outer lengths included) is kept as signed.
fn certs_offset(der: &[u8]) -> Option<usize> {
    use der07::{Decode, Reader, SliceReader, Tag};

    /// The elements of `buf[from..to]`: (tag, start, content start, end).
    fn children(buf: &[u8], from: usize, to: usize) -> Option<Vec<(Tag, usize, usize, usize)>> {
        let mut out = Vec::with_capacity(4);
        let mut at = from;
        while at < to {
            let mut r = SliceReader::new(buf.get(at..to)?).ok()?;
            let h = der07::Header::decode(&mut r).ok()?;
            let content = at + usize::try_from(r.position()).ok()?;
            let end = content.checked_add(usize::try_from(h.length).ok()?)?;
            if end > to {
                return None;
            }
            out.push((h.tag, at, content, end));
            at = end;
        }
        Some(out)
    }
    let last = |from: usize, to: usize, tag: Tag| -> Option<(usize, usize)> {
        let (t, _, content, end) = *children(der, from, to)?.last()?;
        (t == tag && end == to).then_some((content, end))
    };
    let responses = Tag::ContextSpecific {
        constructed: true,
        number: der07::TagNumber::N0,
    };
    let (outer, end) = last(0, der.len(), Tag::Sequence)?;
    let (bytes, end) = last(outer, end, responses)?;
    let (response_bytes, end) = last(bytes, end, Tag::Sequence)?;
    let (octets, end) = last(response_bytes, end, Tag::OctetString)?;
    let (basic, end) = last(octets, end, Tag::Sequence)?;
    let fields = children(der, basic, end)?;
    match fields.as_slice() {
        [_, _, _, (t, start, _, e)] if *t == responses && *e == end => Some(*start),
        _ => None,
    }
}

/// A record's cut-off tail and its reference.
type Suffix<'a> = (&'a [u8], [u8; SUFFIX_REF]);

fn suffix_ref(suffix: &[u8]) -> [u8; SUFFIX_REF] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, suffix);
    let mut r = [0u8; SUFFIX_REF];
    r.copy_from_slice(&d.as_ref()[..SUFFIX_REF]);
    r
}

impl StoredAnswer {
    /// `version u8 · status u8 (0 good, 1 revoked) · revoked_at i64 · reason u8 ·
    /// producedAt i64 · thisUpdate i64 · nextUpdate i64 · issuer key hash [20] · etag [34] ·
    /// suffix flag u8 (0 none, 1 referenced) · suffix reference [20] · DER up to its suffix`
    /// (integers big-endian, times in Unix seconds). Returns the record and the suffix it
    /// refers to, if any.
    fn encode(&self) -> Result<(Vec<u8>, Option<Suffix<'_>>), Error> {
        let (tag, at, reason) = match self.status {
            Status::Good => (0u8, 0i64, 0u8),
            Status::Revoked { at, reason } => (1, at.unix_timestamp(), reason.code()),
            Status::Unknown => {
                return Err(Error::Settings("an unknown answer is never stored".into()))
            }
        };
        let split = certs_offset(&self.der)
            .map(|at| (&self.der[..at], &self.der[at..]))
            .map(|(head, suffix)| (head, Some((suffix, suffix_ref(suffix)))));
        let (head, suffix) = split.unwrap_or((&self.der[..], None));
        let mut v = Vec::with_capacity(HEADER + head.len());
        v.push(VERSION);
        v.push(tag);
        v.extend_from_slice(&at.to_be_bytes());
        v.push(reason);
        for t in [
            self.times.produced_at,
            self.times.this_update,
            self.times.next_update,
        ] {
            v.extend_from_slice(&t.unix_timestamp().to_be_bytes());
        }
        v.extend_from_slice(&self.issuer_key);
        v.extend_from_slice(&self.etag);
        match &suffix {
            Some((_, r)) => {
                v.push(1);
                v.extend_from_slice(r);
            }
            None => v.extend_from_slice(&[0; 1 + SUFFIX_REF]),
        }
        v.extend_from_slice(head);
        Ok((v, suffix))
    }

    /// The status and times of a record (no allocation), `None` if it is not one of this
    /// version.
    fn decode_meta(v: &[u8]) -> Option<(Status, Times)> {
        if v.len() <= HEADER || v[0] != VERSION {
            return None;
        }
        let int = |i: usize| -> Option<OffsetDateTime> {
            let b: [u8; 8] = v.get(i..i + 8)?.try_into().ok()?;
            OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(b)).ok()
        };
        let status = match v[1] {
            0 => Status::Good,
            1 => Status::Revoked {
                at: int(2)?,
                reason: Reason::from_code(v[10])?,
            },
            _ => return None,
        };
        let times = Times {
            produced_at: int(11)?,
            this_update: int(19)?,
            next_update: int(27)?,
        };
        Some((status, times))
    }

    /// Decodes a record, splicing its suffix back (one allocation, one copy). `None` for a
    /// record of another version, a damaged one, or one whose suffix is not in `suffixes`
    /// (read as missing: signed again — never served truncated).
    fn decode(v: &[u8], suffixes: &HashMap<[u8; SUFFIX_REF], Bytes>) -> Option<StoredAnswer> {
        let (status, times) = StoredAnswer::decode_meta(v)?;
        let issuer_key = v.get(35..35 + KEY_HASH)?.try_into().ok()?;
        let etag = v
            .get(35 + KEY_HASH..35 + KEY_HASH + ETAG)?
            .try_into()
            .ok()?;
        let flag = 35 + KEY_HASH + ETAG;
        let head = &v[HEADER..];
        let der = match v[flag] {
            0 => Bytes::copy_from_slice(head),
            1 => {
                let r: [u8; SUFFIX_REF] = v.get(flag + 1..HEADER)?.try_into().ok()?;
                let suffix = suffixes.get(&r)?;
                let mut der = Vec::with_capacity(head.len() + suffix.len());
                der.extend_from_slice(head);
                der.extend_from_slice(suffix);
                Bytes::from(der)
            }
            _ => return None,
        };
        Some(StoredAnswer {
            status,
            times,
            issuer_key,
            etag,
            der,
        })
    }
}

/// The durable answer store (see the module docs).
pub struct AnswerStore {
    table: Slots,
    /// The signer-suffix file, appended to (a few entries: one per delegated signer
    /// certificate ever used).
    signers: Mutex<File>,
    /// Every suffix of the signer-suffix file, by reference. Read at open; a suffix enters
    /// it once it is durable in the file.
    suffixes: RwLock<HashMap<[u8; SUFFIX_REF], Bytes>>,
    /// Puts since the last flush.
    pending: AtomicU32,
}

/// The longest key: `hierarchy tag · hash algorithm ·` a canonical serial (RFC 5280 allows 20
/// octets; anything up to 253 is kept).
const MAX_KEY: usize = 255;

/// The key of an answer, on the stack: `(bytes, length)`; `None` for a serial too long to
/// store (never stored, so never found).
fn key(h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Option<([u8; MAX_KEY], usize)> {
    let serial = crate::certid::canonical(serial);
    let n = 2 + serial.len();
    let mut k = [0u8; MAX_KEY];
    k.get_mut(2..n)?.copy_from_slice(serial);
    k[0] = h.tag();
    k[1] = alg as u8;
    Some((k, n))
}

fn hash_alg(code: u8) -> Option<HashAlg> {
    HashAlg::ALL.into_iter().find(|a| *a as u8 == code)
}

/// Every stored answer's key and times, as [`AnswerStore::for_each_meta`] hands them out.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AnswerMeta<'a> {
    pub hierarchy: Hierarchy,
    pub alg: HashAlg,
    /// The serial, canonical (no leading zero octet).
    pub serial: &'a [u8],
    pub status: Status,
    pub times: Times,
}

/// Whether `dir` holds the answer store of an older jpki: sled (`conf`, `db`, `blobs/`) or
/// redb (`answers.redb`).
fn old_layout(dir: &Path) -> Option<&'static str> {
    if ["conf", "db", "blobs"]
        .iter()
        .any(|f| dir.join(f).symlink_metadata().is_ok())
    {
        Some("sled")
    } else if dir.join(REDB_FILE).symlink_metadata().is_ok() {
        Some("redb")
    } else {
        None
    }
}

impl AnswerStore {
    /// Opens (or creates) the store in `dir` (mode 0700; its files 0600). A store that does
    /// not open (damaged) is moved aside to `dir.damaged-<unix time>` and a new one begun,
    /// and a directory in an older layout (sled, redb) is removed: its answers are derived
    /// data, signed again by the pre-signer (with no watermark, the responder starts the new
    /// store at the log's head). A store another process (or handle) has open is an error,
    /// and nothing is moved.
    pub fn open(dir: &Path, _settings: &Settings) -> Result<AnswerStore, Error> {
        if let Some(engine) = old_layout(dir) {
            tracing::warn!(dir = %dir.display(), engine, "the pre-signed OCSP answer store is in an older layout; removing it (its answers are signed again)");
            std::fs::remove_dir_all(dir)
                .map_err(|e| Error::Store(format!("remove {}: {e}", dir.display())))?;
        }
        create_private_dir(dir)?;
        let store = match AnswerStore::open_files(dir) {
            Ok(s) => s,
            // Another process serves from it: an error, nothing moved.
            Err(OpenFailure::InUse(e)) => return Err(e),
            Err(OpenFailure::Other(e)) => {
                let aside = dir.with_extension(format!(
                    "damaged-{}",
                    OffsetDateTime::now_utc().unix_timestamp()
                ));
                tracing::error!(error = %e, dir = %dir.display(), aside = %aside.display(), "the pre-signed OCSP answer store does not open; setting it aside and starting an empty one");
                std::fs::rename(dir, &aside)
                    .map_err(|e| Error::Store(format!("set {} aside: {e}", dir.display())))?;
                create_private_dir(dir)?;
                AnswerStore::open_files(dir).map_err(|f| match f {
                    OpenFailure::InUse(e) | OpenFailure::Other(e) => e,
                })?
            }
        };
        Ok(store)
    }

    fn open_files(dir: &Path) -> Result<AnswerStore, OpenFailure> {
        // The slot file first: it holds the lock.
        let table = Slots::open(&dir.join(FILE), &dir.join(SPILL_FILE))?;
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let signers = options
            .open(dir.join(SIGNERS_FILE))
            .map_err(|e| OpenFailure::Other(Error::Store(format!("open the signer file: {e}"))))?;
        AnswerStore::with(table, signers).map_err(OpenFailure::Other)
    }

    /// The store over an open table and signer file: reads every suffix (a torn last entry
    /// is cut off; an entry is kept under the reference its bytes hash to, so a damaged one
    /// serves no answer).
    fn with(table: Slots, signers: File) -> Result<AnswerStore, Error> {
        let mut all = Vec::new();
        (&signers)
            .read_to_end(&mut all)
            .map_err(|e| Error::Store(format!("read the signer file: {e}")))?;
        let mut suffixes = HashMap::new();
        let mut at = 0;
        while let Some(len) = all.get(at..at + 4) {
            let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let Some(bytes) = all.get(at + 4..at + 4 + n) else {
                break;
            };
            suffixes.insert(suffix_ref(bytes), Bytes::copy_from_slice(bytes));
            at += 4 + n;
        }
        if at < all.len() {
            // A torn append (a crash while a new suffix was written): cut off, so the next
            // entry starts where the reader expects it.
            signers
                .set_len(at as u64)
                .map_err(|e| Error::Store(format!("repair the signer file: {e}")))?;
        }
        Ok(AnswerStore {
            table,
            signers: Mutex::new(signers),
            suffixes: RwLock::new(suffixes),
            pending: AtomicU32::new(0),
        })
    }

    /// A store in unlinked temporary files (tests).
    pub fn temporary() -> Result<AnswerStore, Error> {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir().join(format!(
            "jpki-answers-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        let unlinked = |ext: &str| -> Result<File, Error> {
            let path = base.with_extension(ext);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|f| std::fs::remove_file(&path).map(|()| f))
                .map_err(|e| Error::Store(format!("temporary answer store: {e}")))?;
            Ok(f)
        };
        let table = Slots::with(unlinked("slots")?, unlinked("spill")?)?;
        AnswerStore::with(table, unlinked("signers")?)
    }

    /// The sequence number of the status-change log up to which every stored answer states
    /// the store's status (`None`: never recorded — a new store).
    pub fn watermark(&self) -> Result<Option<u64>, Error> {
        self.table.watermark()
    }

    /// Records the watermark after making every answer written before it durable
    /// (fdatasync), then makes the header holding it durable: the watermark never reaches
    /// the disk before the answers it vouches for.
    pub fn set_watermark(&self, seq: u64) -> Result<(), Error> {
        self.pending.store(0, Ordering::Relaxed);
        self.table.flush(Some(seq))
    }

    /// Removes an answer (durable at the next [`AnswerStore::flush`]). Returns whether there
    /// was one.
    pub fn remove(&self, h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Result<bool, Error> {
        let Some((k, n)) = key(h, alg, serial) else {
            return Ok(false);
        };
        self.table.remove(&k[..n])
    }

    /// Whether a record is there at all, decodable or not (a record that cannot be served
    /// must still be replaced or removed when its certificate's status changes).
    pub fn contains(&self, h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Result<bool, Error> {
        let Some((k, n)) = key(h, alg, serial) else {
            return Ok(false);
        };
        self.table.get_with(&k[..n], |v| v.is_some())
    }

    /// The answer stored for the serial, spliced whole (`None`: none, or one that cannot be
    /// served: another version, damaged, or its signer suffix missing).
    pub fn get(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
    ) -> Result<Option<StoredAnswer>, Error> {
        let Some((k, n)) = key(h, alg, serial) else {
            return Ok(None);
        };
        let suffixes = self
            .suffixes
            .read()
            .map_err(|_| Error::Store("the suffix table's lock is poisoned".into()))?;
        self.table.get_with(&k[..n], |v| {
            v.and_then(|v| StoredAnswer::decode(v, &suffixes))
        })
    }

    /// Stores an answer (durable at the next [`AnswerStore::flush`], or at a later durable
    /// point: a lost write only means signing it again). Its suffix, if new, is made durable
    /// in the signer file first, so no record refers to a suffix that is not there.
    pub fn put(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
        a: &StoredAnswer,
    ) -> Result<(), Error> {
        let (record, suffix) = a.encode()?;
        let Some((k, n)) = key(h, alg, serial) else {
            return Err(Error::Store(format!(
                "a serial of {} octets is not stored",
                serial.len()
            )));
        };
        if let Some((bytes, r)) = suffix {
            self.keep_suffix(bytes, r)?;
        }
        self.table.put(&k[..n], &record)?;
        if self.pending.fetch_add(1, Ordering::Relaxed) + 1 >= DURABLE_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends a suffix not yet known to the signer file and syncs it.
    fn keep_suffix(&self, bytes: &[u8], r: [u8; SUFFIX_REF]) -> Result<(), Error> {
        let known = |m: &HashMap<[u8; SUFFIX_REF], Bytes>| m.contains_key(&r);
        if self.suffixes.read().map(|m| known(&m)).unwrap_or(false) {
            return Ok(());
        }
        let file = self
            .signers
            .lock()
            .map_err(|_| Error::Store("the signer file's lock is poisoned".into()))?;
        // Another writer may have kept it meanwhile.
        if self.suffixes.read().map(|m| known(&m)).unwrap_or(false) {
            return Ok(());
        }
        let len = u32::try_from(bytes.len())
            .map_err(|_| Error::Store("a signer certificate of over 4 GiB".into()))?;
        let mut entry = Vec::with_capacity(4 + bytes.len());
        entry.extend_from_slice(&len.to_le_bytes());
        entry.extend_from_slice(bytes);
        (&*file)
            .write_all(&entry)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::Store(format!("write the signer file: {e}")))?;
        self.suffixes
            .write()
            .map_err(|_| Error::Store("the suffix table's lock is poisoned".into()))?
            .insert(r, Bytes::copy_from_slice(bytes));
        Ok(())
    }

    /// Makes every write so far durable (fdatasync).
    pub fn flush(&self) -> Result<(), Error> {
        self.pending.store(0, Ordering::Relaxed);
        self.table.flush(None)
    }

    /// Removes every answer (the CA store behind them was replaced: a restored copy older
    /// than the watermark). Returns how many. The watermark is kept.
    pub fn clear(&self) -> Result<usize, Error> {
        self.table.clear()
    }

    /// Removes every answer of a hierarchy (its signer was compromised), durably. Returns
    /// how many.
    pub fn purge(&self, h: Hierarchy) -> Result<usize, Error> {
        let tag = h.tag();
        let n = self.table.retain(&mut |k| k.first() != Some(&tag))?;
        self.flush()?;
        Ok(n)
    }

    /// Every stored answer's key and times, in file order, read sequentially in large chunks
    /// (no per-record allocation); `each` returns false to stop. A record that cannot be
    /// decoded is skipped; one that a concurrent split moves may be seen twice.
    pub fn for_each_meta(&self, each: &mut dyn FnMut(AnswerMeta) -> bool) -> Result<(), Error> {
        self.table.for_each(&mut |k, v| {
            let meta = (|| {
                let hierarchy = Hierarchy::from_tag(*k.first()?)?;
                let alg = hash_alg(*k.get(1)?)?;
                let (status, times) = StoredAnswer::decode_meta(v)?;
                Some(AnswerMeta {
                    hierarchy,
                    alg,
                    serial: &k[2..],
                    status,
                    times,
                })
            })();
            meta.is_none_or(&mut *each)
        })
    }

    /// Number of stored answers (after a crash, the count of the last durable point plus
    /// what was written since: it may lag the records until the next [`AnswerStore::clear`]).
    pub fn len(&self) -> usize {
        usize::try_from(self.table.len()).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the store takes on disk (blocks allocated: the slot file is sparse).
    pub fn size_on_disk(&self) -> u64 {
        self.table.size_on_disk()
            + self
                .signers
                .lock()
                .ok()
                .and_then(|f| f.metadata().ok())
                .map_or(0, |m| m.len())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(|e| Error::Store(format!("create {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn answer(status: Status) -> StoredAnswer {
        let t = datetime!(2026-12-05 10:00:00 UTC);
        StoredAnswer {
            status,
            times: Times {
                produced_at: t,
                this_update: t,
                next_update: t + time::Duration::hours(24),
            },
            issuer_key: [7; KEY_HASH],
            etag: [b'e'; ETAG],
            der: Bytes::from_static(b"\x30\x03\x0a\x01\x00"),
        }
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        match body.len() {
            n if n < 128 => v.push(n as u8),
            n if n < 256 => v.extend_from_slice(&[0x81, n as u8]),
            n => v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        }
        v.extend_from_slice(body);
        v
    }

    /// An OCSPResponse frame (RFC 6960 §4.2.1) around a BasicOCSPResponse with the given
    /// signature byte and signer "certificate" (`None`: no `certs` field).
    fn response(sig: u8, cert: Option<&[u8]>) -> Vec<u8> {
        response_sized(sig, cert, 200)
    }

    /// [`response`] with a "signature" of `bits` bytes.
    fn response_sized(sig: u8, cert: Option<&[u8]>, bits: usize) -> Vec<u8> {
        let mut basic = [
            tlv(0x30, &tlv(0x02, &[sig; 3])),
            tlv(0x30, &[0x06, 0x03, 0x2a, 0x03, 0x04]),
            tlv(0x03, &vec![0u8; bits]),
        ]
        .concat();
        if let Some(c) = cert {
            basic.extend(tlv(0xa0, &tlv(0x30, &tlv(0x30, c))));
        }
        let oid = [0x06, 0x09, 0x2b, 6, 1, 5, 5, 7, 0x30, 1, 1];
        let bytes = tlv(
            0xa0,
            &tlv(0x30, &[&oid[..], &tlv(0x04, &tlv(0x30, &basic))].concat()),
        );
        tlv(0x30, &[&[0x0a, 0x01, 0x00][..], &bytes].concat())
    }

    fn with_der(der: Vec<u8>) -> StoredAnswer {
        StoredAnswer {
            der: Bytes::from(der),
            ..answer(Status::Good)
        }
    }

    fn raw_record(s: &AnswerStore, h: Hierarchy, serial: &[u8]) -> Vec<u8> {
        let (k, n) = key(h, HashAlg::Sha1, serial).unwrap();
        s.table.get_with(&k[..n], |v| v.unwrap().to_vec()).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn answers_survive_a_reopen_and_keep_their_status() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        let revoked = answer(Status::Revoked {
            at: datetime!(2026-12-01 00:00:00 UTC),
            reason: Reason::KeyCompromise,
        });
        {
            let s = AnswerStore::open(&path, &Settings::default()).unwrap();
            s.put(
                Hierarchy::Auth,
                HashAlg::Sha1,
                &[1, 2],
                &answer(Status::Good),
            )
            .unwrap();
            s.put(Hierarchy::Signing, HashAlg::Sha1, &[1, 2], &revoked)
                .unwrap();
            s.flush().unwrap();
        }
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert_eq!(
            s.get(Hierarchy::Auth, HashAlg::Sha1, &[1, 2]).unwrap(),
            Some(answer(Status::Good))
        );
        assert_eq!(
            s.get(Hierarchy::Signing, HashAlg::Sha1, &[1, 2]).unwrap(),
            Some(revoked)
        );
        assert_eq!(
            s.get(Hierarchy::Auth, HashAlg::Sha256, &[1, 2]).unwrap(),
            None
        );
        assert_eq!(s.purge(Hierarchy::Signing).unwrap(), 1);
        assert_eq!(s.len(), 1);
        assert!(s.size_on_disk() > 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            for f in [FILE, SPILL_FILE, SIGNERS_FILE] {
                let mode = std::fs::metadata(path.join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
    }

    #[test]
    fn the_watermark_survives_a_reopen_and_old_records_are_seen_but_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        {
            let s = AnswerStore::open(&path, &Settings::default()).unwrap();
            assert_eq!(s.watermark().unwrap(), None);
            s.put(Hierarchy::Auth, HashAlg::Sha1, &[5], &answer(Status::Good))
                .unwrap();
            s.set_watermark(42).unwrap();
            // A record of another version.
            let mut old = answer(Status::Good).encode().unwrap().0;
            old[0] = 2;
            let (k, n) = key(Hierarchy::Auth, HashAlg::Sha1, &[6]).unwrap();
            s.table.put(&k[..n], &old).unwrap();
            s.flush().unwrap();
        }
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert_eq!(s.watermark().unwrap(), Some(42));
        assert_eq!(s.get(Hierarchy::Auth, HashAlg::Sha1, &[6]).unwrap(), None);
        assert!(s.contains(Hierarchy::Auth, HashAlg::Sha1, &[6]).unwrap());
        assert!(s.remove(Hierarchy::Auth, HashAlg::Sha1, &[6]).unwrap());
        assert!(!s.remove(Hierarchy::Auth, HashAlg::Sha1, &[6]).unwrap());
        // The same serial with or without its sign octet is one record.
        assert!(s.contains(Hierarchy::Auth, HashAlg::Sha1, &[0, 5]).unwrap());
        assert_eq!(s.clear().unwrap(), 1);
        assert!(s.is_empty());
        assert_eq!(s.watermark().unwrap(), Some(42));
    }

    #[test]
    fn an_unknown_status_is_refused_and_garbage_is_not_an_answer() {
        let s = AnswerStore::temporary().unwrap();
        assert!(s
            .put(
                Hierarchy::Auth,
                HashAlg::Sha1,
                &[9],
                &answer(Status::Unknown)
            )
            .is_err());
        let none = HashMap::new();
        assert_eq!(StoredAnswer::decode(b"\x03\x00", &none), None);
        let mut v = answer(Status::Good).encode().unwrap().0;
        assert!(StoredAnswer::decode(&v, &none).is_some());
        v[0] = 2;
        assert_eq!(StoredAnswer::decode(&v, &none), None);
    }

    #[test]
    fn the_signer_certificate_is_kept_once_and_spliced_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        let cert = [0x5a; 900];
        let renewed = [0x6b; 950];
        let a = response(1, Some(&cert));
        let b = response(2, Some(&cert));
        let c = response(3, Some(&renewed));
        let bare = response(4, None);
        // The cut is exactly the trailing `certs` element.
        let at = certs_offset(&a).unwrap();
        assert_eq!(
            &a[at..],
            tlv(0xa0, &tlv(0x30, &tlv(0x30, &cert))).as_slice()
        );
        assert_eq!(certs_offset(&bare), None);
        assert_eq!(certs_offset(&a[..a.len() - 1]), None);
        assert_eq!(certs_offset(b"\x30\x03\x0a\x01\x00"), None);
        {
            let s = AnswerStore::open(&path, &Settings::default()).unwrap();
            for (serial, der) in [(1u8, &a), (2, &b), (3, &c), (4, &bare)] {
                s.put(
                    Hierarchy::Auth,
                    HashAlg::Sha1,
                    &[serial],
                    &with_der(der.clone()),
                )
                .unwrap();
            }
            // Kept without the certificate; two suffixes for three answers.
            assert_eq!(raw_record(&s, Hierarchy::Auth, &[1]).len(), HEADER + at);
            assert_eq!(s.suffixes.read().unwrap().len(), 2);
            s.flush().unwrap();
        }
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert_eq!(s.suffixes.read().unwrap().len(), 2);
        for (serial, der) in [(1u8, &a), (2, &b), (3, &c), (4, &bare)] {
            let got = s.get(Hierarchy::Auth, HashAlg::Sha1, &[serial]).unwrap();
            assert_eq!(got.unwrap().der.as_ref(), der.as_slice(), "serial {serial}");
        }
    }

    #[test]
    fn a_record_whose_suffix_is_missing_reads_as_missing_never_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        let der = response(1, Some(&[0x5a; 700]));
        {
            let s = AnswerStore::open(&path, &Settings::default()).unwrap();
            s.put(
                Hierarchy::Signing,
                HashAlg::Sha1,
                &[7],
                &with_der(der.clone()),
            )
            .unwrap();
            assert!(s
                .get(Hierarchy::Signing, HashAlg::Sha1, &[7])
                .unwrap()
                .is_some());
            s.flush().unwrap();
        }
        // The suffix damaged on disk (its bytes no longer what the record refers to).
        {
            let f = path.join(SIGNERS_FILE);
            let mut b = std::fs::read(&f).unwrap();
            b[100] ^= 0x01;
            std::fs::write(&f, b).unwrap();
        }
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert_eq!(
            s.get(Hierarchy::Signing, HashAlg::Sha1, &[7]).unwrap(),
            None
        );
        // Still there, so a status change replaces or removes it.
        assert!(s.contains(Hierarchy::Signing, HashAlg::Sha1, &[7]).unwrap());
        // Signed again, it is whole again (its suffix written anew).
        s.put(
            Hierarchy::Signing,
            HashAlg::Sha1,
            &[7],
            &with_der(der.clone()),
        )
        .unwrap();
        let got = s.get(Hierarchy::Signing, HashAlg::Sha1, &[7]).unwrap();
        assert_eq!(got.unwrap().der.as_ref(), der.as_slice());
    }

    #[test]
    fn a_store_in_the_older_sled_layout_is_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        {
            let old = sled::Config::new().path(&path).open().unwrap();
            old.insert(b"\x01\x00\x05", &b"an old record"[..]).unwrap();
            old.open_tree("meta")
                .unwrap()
                .insert("status-log-watermark", &7u64.to_be_bytes())
                .unwrap();
            old.flush().unwrap();
        }
        assert_eq!(old_layout(&path), Some("sled"));
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert!(s.is_empty());
        // No watermark: the responder starts the new store at the log's head.
        assert_eq!(s.watermark().unwrap(), None);
        assert_eq!(old_layout(&path), None);
        assert_eq!(names(&path), [SIGNERS_FILE, FILE, SPILL_FILE]);
        drop(s);
        // The new layout is kept on the next open.
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        s.put(Hierarchy::Auth, HashAlg::Sha1, &[1], &answer(Status::Good))
            .unwrap();
        s.set_watermark(3).unwrap();
        drop(s);
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert_eq!((s.len(), s.watermark().unwrap()), (1, Some(3)));
    }

    #[test]
    fn a_store_open_in_another_handle_is_refused_and_not_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        let first = AnswerStore::open(&path, &Settings::default()).unwrap();
        first
            .put(Hierarchy::Auth, HashAlg::Sha1, &[1], &answer(Status::Good))
            .unwrap();
        let second = AnswerStore::open(&path, &Settings::default());
        assert!(second.is_err());
        assert_eq!(names(dir.path()), ["answers"]);
        assert!(first
            .get(Hierarchy::Auth, HashAlg::Sha1, &[1])
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_file_that_is_not_a_store_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join(FILE), vec![0x42; 10_000]).unwrap();
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert!(s.is_empty());
        let aside: Vec<_> = names(dir.path())
            .into_iter()
            .filter(|n| n.starts_with("answers.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1);
        // What was set aside is the garbage, whole.
        let kept = std::fs::read(dir.path().join(&aside[0]).join(FILE)).unwrap();
        assert_eq!(kept, vec![0x42; 10_000]);
    }

    #[test]
    fn a_store_in_the_redb_layout_is_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        std::fs::create_dir(&path).unwrap();
        {
            let db = redb::Database::create(path.join(REDB_FILE)).unwrap();
            let w = db.begin_write().unwrap();
            let t: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            w.open_table(t)
                .unwrap()
                .insert("status-log-watermark", 9)
                .unwrap();
            w.commit().unwrap();
        }
        assert_eq!(old_layout(&path), Some("redb"));
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.watermark().unwrap(), None);
        assert_eq!(names(&path), [SIGNERS_FILE, FILE, SPILL_FILE]);
    }

    /// A realistic answer for serial `i` (its DER differs per serial; two signers).
    fn numbered(i: u32) -> StoredAnswer {
        numbered_sized(i, 200)
    }

    /// [`numbered`] of about `bits` + 180 bytes as stored.
    /// Puts `numbered(i)` under serial `i` (SHA-1 form) for every `i` of `range`.
    fn fill(s: &AnswerStore, h: Hierarchy, range: std::ops::Range<u32>) {
        for i in range {
            s.put(h, HashAlg::Sha1, &i.to_be_bytes(), &numbered(i))
                .unwrap();
        }
    }

    fn numbered_sized(i: u32, bits: usize) -> StoredAnswer {
        let cert = [0x40 + (i % 2) as u8; 1_000];
        let mut der = response_sized((i % 251) as u8, Some(&cert), bits);
        // Serial-specific bytes inside the signed part (the fake signature).
        let at = certs_offset(&der).unwrap() - 8;
        der[at..at + 4].copy_from_slice(&i.to_be_bytes());
        StoredAnswer {
            der: Bytes::from(der),
            ..answer(Status::Good)
        }
    }

    #[test]
    fn growth_across_many_splits_keeps_every_answer_and_the_scan_sees_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        const N: u32 = 5_000;
        {
            let s = AnswerStore::open(&path, &Settings::default()).unwrap();
            s.set_watermark(1).unwrap();
            fill(&s, Hierarchy::Auth, 0..N);
            // Many splits: from 64 buckets to hundreds.
            assert!(s.table.buckets() > 256, "{}", s.table.buckets());
            // Half replaced, a tenth removed, while growing no further.
            for i in (0..N).step_by(2) {
                s.put(
                    Hierarchy::Auth,
                    HashAlg::Sha1,
                    &i.to_be_bytes(),
                    &numbered(i + 1),
                )
                .unwrap();
            }
            for i in (0..N).step_by(10) {
                assert!(s
                    .remove(Hierarchy::Auth, HashAlg::Sha1, &i.to_be_bytes())
                    .unwrap());
            }
            s.flush().unwrap();
            assert_eq!(s.len(), (N - N / 10) as usize);
        }
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert_eq!(s.len(), (N - N / 10) as usize);
        for i in 0..N {
            let got = s
                .get(Hierarchy::Auth, HashAlg::Sha1, &i.to_be_bytes())
                .unwrap();
            match (i % 10, i % 2) {
                (0, _) => assert_eq!(got, None, "{i}"),
                (_, 0) => assert_eq!(got.unwrap(), numbered(i + 1), "{i}"),
                _ => assert_eq!(got.unwrap(), numbered(i), "{i}"),
            }
        }
        // About 2 KB of disk per answer of ~1.4 KB without its certificate.
        let per = s.size_on_disk() / u64::from(N);
        assert!(per < 4_000, "{per} bytes per answer");
        let mut seen = std::collections::BTreeSet::new();
        s.for_each_meta(&mut |m| {
            assert_eq!(
                (m.hierarchy, m.alg, m.status),
                (Hierarchy::Auth, HashAlg::Sha1, Status::Good)
            );
            assert_eq!(m.times, answer(Status::Good).times);
            let mut b = [0u8; 4];
            b[4 - m.serial.len()..].copy_from_slice(m.serial);
            assert!(seen.insert(u32::from_be_bytes(b)), "seen twice");
            true
        })
        .unwrap();
        assert_eq!(seen.len(), (N - N / 10) as usize);
        assert!(seen.iter().all(|i| i % 10 != 0));
        // `each` stops the scan.
        let mut n = 0;
        s.for_each_meta(&mut |_| {
            n += 1;
            n < 7
        })
        .unwrap();
        assert_eq!(n, 7);
    }

    #[test]
    fn a_store_closed_without_a_flush_keeps_its_durable_answers_and_reuses_no_live_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        let a = |i: u32| i.to_be_bytes();
        // ~1.2 KB records: three to a page, so chains and spill pages are common.
        {
            let s = AnswerStore::open(&path, &Settings::default()).unwrap();
            for i in 0..2_000 {
                s.put(
                    Hierarchy::Auth,
                    HashAlg::Sha1,
                    &a(i),
                    &numbered_sized(i, 1_000),
                )
                .unwrap();
            }
            s.set_watermark(5).unwrap();
            // After the durable point: more splits (spill pages freed and taken again), then
            // closed as a SIGKILL would leave it (every write made, no header since).
            for i in 2_000..4_000 {
                s.put(
                    Hierarchy::Auth,
                    HashAlg::Sha1,
                    &a(i),
                    &numbered_sized(i, 1_000),
                )
                .unwrap();
            }
        }
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert_eq!(s.watermark().unwrap(), Some(5));
        // Writes after the reopen take spill pages: none may be a page a chain still uses.
        for i in 4_000..6_000 {
            s.put(
                Hierarchy::Auth,
                HashAlg::Sha1,
                &a(i),
                &numbered_sized(i, 1_000),
            )
            .unwrap();
        }
        for i in 0..6_000 {
            let got = s.get(Hierarchy::Auth, HashAlg::Sha1, &a(i)).unwrap();
            match got {
                Some(got) => assert_eq!(got, numbered_sized(i, 1_000), "{i}"),
                None => assert!((2_000..4_000).contains(&i), "durable answer {i} lost"),
            }
        }
    }

    #[test]
    fn the_scan_lets_its_callback_write_and_sees_every_answer_while_the_table_grows() {
        let s = AnswerStore::temporary().unwrap();
        s.set_watermark(1).unwrap();
        fill(&s, Hierarchy::Auth, 0..1_000);
        let before = s.table.buckets();
        let mut seen = std::collections::BTreeSet::new();
        let mut added = 1_000_000u32;
        // As the pre-signer does: re-sign what it sees (and here also add new answers, so
        // buckets split under the scan).
        s.for_each_meta(&mut |m| {
            let mut b = [0u8; 4];
            b[4 - m.serial.len()..].copy_from_slice(m.serial);
            let i = u32::from_be_bytes(b);
            if i < 1_000_000 {
                seen.insert(i);
                s.put(m.hierarchy, m.alg, m.serial, &numbered(i)).unwrap();
                for _ in 0..2 {
                    s.put(
                        Hierarchy::Auth,
                        HashAlg::Sha1,
                        &added.to_be_bytes(),
                        &numbered(added),
                    )
                    .unwrap();
                    added += 1;
                }
            }
            true
        })
        .unwrap();
        assert!(s.table.buckets() > before, "no split during the scan");
        assert_eq!(seen.len(), 1_000);
        assert_eq!(s.len(), 1_000 + (added - 1_000_000) as usize);
    }

    #[test]
    fn flushes_racing_splits_never_leave_a_header_naming_an_older_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        const N: u32 = 4_000;
        {
            let s = std::sync::Arc::new(AnswerStore::open(&path, &Settings::default()).unwrap());
            s.set_watermark(1).unwrap();
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flusher = {
                let (s, done) = (s.clone(), done.clone());
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        s.flush().unwrap();
                    }
                })
            };
            fill(&s, Hierarchy::Auth, 0..N);
            done.store(true, Ordering::Relaxed);
            flusher.join().unwrap();
            // Closed as a SIGKILL leaves it: every write made, the last header whatever it is.
        }
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        for i in 0..N {
            let got = s
                .get(Hierarchy::Auth, HashAlg::Sha1, &i.to_be_bytes())
                .unwrap();
            assert_eq!(got, Some(numbered(i)), "answer {i} lost");
        }
    }

    #[test]
    fn a_page_with_a_flipped_byte_reads_as_missing_never_as_a_wrong_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers");
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        s.set_watermark(1).unwrap();
        fill(&s, Hierarchy::Signing, 0..50);
        let (k, n) = key(Hierarchy::Signing, HashAlg::Sha1, &7u32.to_be_bytes()).unwrap();
        s.table.damage(&k[..n]);
        assert_eq!(
            s.get(Hierarchy::Signing, HashAlg::Sha1, &7u32.to_be_bytes())
                .unwrap(),
            None
        );
        assert!(!s
            .contains(Hierarchy::Signing, HashAlg::Sha1, &7u32.to_be_bytes())
            .unwrap());
        let mut whole = 0;
        for i in 0..50u32 {
            if let Some(a) = s
                .get(Hierarchy::Signing, HashAlg::Sha1, &i.to_be_bytes())
                .unwrap()
            {
                assert_eq!(a, numbered(i));
                whole += 1;
            }
        }
        assert!((40..50).contains(&whole), "{whole}");
        // Signed again, it is served again.
        s.put(
            Hierarchy::Signing,
            HashAlg::Sha1,
            &7u32.to_be_bytes(),
            &numbered(7),
        )
        .unwrap();
        assert_eq!(
            s.get(Hierarchy::Signing, HashAlg::Sha1, &7u32.to_be_bytes())
                .unwrap(),
            Some(numbered(7))
        );
    }

    #[test]
    fn readers_during_writes_and_splits_never_see_a_wrong_or_truncated_answer() {
        let s = std::sync::Arc::new(AnswerStore::temporary().unwrap());
        s.set_watermark(1).unwrap();
        const N: u32 = 3_000;
        fill(&s, Hierarchy::Auth, 0..N / 3);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let (s, done) = (s.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut hits = 0u64;
                    let mut i = t;
                    let mut reads = 0;
                    while reads < 5_000 || !done.load(Ordering::Relaxed) {
                        reads += 1;
                        i = (i + 7) % N;
                        if let Some(a) = s
                            .get(Hierarchy::Auth, HashAlg::Sha1, &i.to_be_bytes())
                            .unwrap()
                        {
                            // Either version a writer stores for `i`, whole.
                            assert!(a == numbered(i) || a == numbered(i + N), "serial {i}");
                            hits += 1;
                        } else {
                            // Only serials not yet written may be missing.
                            assert!(i >= N / 3, "serial {i} missing");
                        }
                    }
                    hits
                })
            })
            .collect();
        // Grows (splits) and rewrites in place while they read.
        fill(&s, Hierarchy::Auth, N / 3..N);
        for i in 0..N / 3 {
            s.put(
                Hierarchy::Auth,
                HashAlg::Sha1,
                &i.to_be_bytes(),
                &numbered(i + N),
            )
            .unwrap();
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        assert_eq!(s.len(), N as usize);
    }

    #[test]
    fn an_answer_too_large_for_a_page_is_refused_and_nothing_changes() {
        let s = AnswerStore::temporary().unwrap();
        let big = StoredAnswer {
            der: Bytes::from(vec![0x30; 5_000]),
            ..answer(Status::Good)
        };
        assert!(s.put(Hierarchy::Auth, HashAlg::Sha1, &[1], &big).is_err());
        assert!(s.is_empty());
        assert!(s
            .put(
                Hierarchy::Auth,
                HashAlg::Sha1,
                &[0x11; 300],
                &answer(Status::Good)
            )
            .is_err());
        assert!(s.is_empty());
    }
}
