//! Durable pre-signed answers: every certificate's answer signed ahead of the question and
//! kept on disk, beside the CA's store, so that a restart serves them without signing and
//! memory does not grow with the number of certificates (the in-memory cache of
//! [`crate::responder`] is only a bounded front for the hot ones).
//!
//! One redb database (one file, `answers.redb`, 0600, in its own directory, 0700) with a
//! bounded page cache ([`Settings::cache_bytes`]). Table `answers`: keys `hierarchy tag · hash
//! algorithm · serial`; values the status the answer states, its times, the issuing root's
//! key hash, the entity tag and the DER `OCSPResponse` **without its signer certificate**
//! ([`StoredAnswer`]). Table `signer-suffixes`: the cut-off tails. Table `meta`: the
//! **watermark**, the sequence number of the store's status-change log up to which every
//! stored answer is known to state the store's status.
//!
//! **Answers kept without the signer certificate.** An answer carries its delegated OCSP
//! signer's certificate in `certs`, the last field of BasicOCSPResponse, itself the last
//! field of the OCSPResponse (RFC 6960 §4.2.1): about 1.2 of its 2.8 KB, the same bytes in
//! every answer that signer signed. The record keeps the DER up to that element, as signed
//! (the outer lengths unchanged), and a reference (SHA-256 prefix) to the element, which is
//! kept once in `signer-suffixes` — written in the same commit as the first record that
//! refers to it, never removed (one per signer certificate ever used: a renewed signer's older
//! answers keep theirs). [`AnswerStore::get`] splices it back: the DER byte for byte as
//! signed, at the cost of one allocation and one copy. A record whose suffix is missing or
//! does not hash to its reference reads as missing (signed again), never as a truncated
//! answer. More answers fit in each byte of cache and of disk.
//!
//! **Why redb and not sled** (measured, BENCHMARKS.md "Answer store": 10^6 answers, 2 reader
//! threads, 64 MiB cache, the same run, a loaded machine): 59,037 gets/s vs sled's 9,546
//! (6.2×), peak RSS 87–98 vs 330–400 MiB, 3,318 vs 5,325 bytes on disk per answer, 8,147 vs
//! 5,749 puts/s, open in 0.01–0.05 s vs up to 8.2 s. sled materialises a whole node on each
//! page-cache miss (malloc and decode per read, ~27 % of serve's CPU under a uniform load);
//! redb reads 4 KiB pages with `pread` into its own cache bounded by `cache_bytes`, and a value
//! is borrowed from the page. A purpose-built log + hash file was not needed: redb is a
//! well-kept library, already crash-safe (checksummed commit slots, atomic commits). Through
//! `jpki serve` at 10^5 certificates (64 MiB, same machine, alternated with the sled build):
//! uniform OCSP 41–48 k/s vs 16–26 k/s, p99 4–8 ms vs 38–198 ms, 1,426 vs 2,854 bytes per
//! answer on disk.
//!
//! **Durability.** Each write is its own non-durable commit (no fsync); a durable commit
//! (fsync, with the allocator state recorded so that an open after a crash needs no walk of
//! the file) carries every earlier commit with it. [`AnswerStore::flush`] makes one — the
//! responder calls it before a revocation is acknowledged — as do
//! [`AnswerStore::set_watermark`] (the watermark and the answers it covers reach the disk in
//! one atomic commit), [`AnswerStore::clear`], [`AnswerStore::purge`], the write of a new
//! suffix, and every `DURABLE_EVERY` writes (bounding what a crash loses: answers only, signed
//! again). A crash loses non-durable commits only; the file opens at the last durable one.
//!
//! **Migration.** A directory in the older sled layout (`conf`, `db`, `blobs/`) is removed on
//! open with one warning: its answers are derived data and the pre-signer signs them again;
//! the new store has no watermark, so the responder starts it at the log's head.
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
//! and refilled by the pre-signer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;

use bytes::Bytes;
use policies::{Hierarchy, Reason};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use redb::{TableDefinition, WriteTransaction};
use time::OffsetDateTime;

use crate::certid::{HashAlg, Times};
use crate::source::Status;
use crate::Error;

/// Tunables of the answer store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// redb's page cache, in bytes (what the store may hold in memory).
    pub cache_bytes: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cache_bytes: 64 << 20,
        }
    }
}

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
const WATERMARK: &str = "status-log-watermark";
/// The file of the store inside its directory.
const FILE: &str = "answers.redb";
/// Non-durable commits after which a write is committed durably (fsync): bounds what a
/// crash loses (about a minute of pre-signing at 1,000 signatures a second). Measured at 10^6
/// answers (BENCHMARKS.md): 3,318 B on disk per answer with 65,536, 3,625 with none between
/// the pre-signer's flushes; at 2·10^4, 4,096 left the file 1.8× larger than 64 or none.
const DURABLE_EVERY: u32 = 65_536;

/// `hierarchy tag · hash algorithm · serial` → record ([`StoredAnswer::encode`]).
const ANSWERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("answers");
/// suffix reference → the trailing `certs` element of BasicOCSPResponse (the delegated
/// signer's certificate), shared by every answer that signer signed.
const SUFFIXES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("signer-suffixes");
/// The watermark ([`AnswerStore::watermark`]).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

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

    /// Decodes a record, splicing its suffix back (one allocation, one copy). `None` for a
    /// record of another version, a damaged one, or one whose suffix is not in `suffixes`
    /// (read as missing: signed again — never served truncated).
    fn decode(v: &[u8], suffixes: &HashMap<[u8; SUFFIX_REF], Bytes>) -> Option<StoredAnswer> {
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

/// What [`AnswerStore::for_each_meta`] reads of one stored answer: its key and times, not
/// its DER.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AnswerMeta<'a> {
    pub hierarchy: Hierarchy,
    pub alg: HashAlg,
    /// The serial in its canonical form (no leading zero octets).
    pub serial: &'a [u8],
    pub status: Status,
    pub times: Times,
}

impl<'a> AnswerMeta<'a> {
    /// The key and header of a record, without its DER (`None`: another version, damaged).
    fn decode(k: &'a [u8], v: &[u8]) -> Option<AnswerMeta<'a>> {
        let (&tag, rest) = k.split_first()?;
        let (&alg, serial) = rest.split_first()?;
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
        Some(AnswerMeta {
            hierarchy: Hierarchy::from_tag(tag)?,
            alg: HashAlg::ALL.into_iter().find(|a| *a as u8 == alg)?,
            serial,
            status,
            times: Times {
                produced_at: int(11)?,
                this_update: int(19)?,
                next_update: int(27)?,
            },
        })
    }
}

/// The durable answer store (see the module docs).
pub struct AnswerStore {
    db: Database,
    /// The file, for [`AnswerStore::size_on_disk`] (`None`: in memory).
    file: Option<PathBuf>,
    /// Every suffix of the `signer-suffixes` table (a few: one per delegated signer
    /// certificate ever used), by reference. Read at open; a suffix enters it once its
    /// record is committed.
    suffixes: RwLock<HashMap<[u8; SUFFIX_REF], Bytes>>,
    /// Non-durable commits since the last durable one.
    pending: AtomicU32,
}

fn key(h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Vec<u8> {
    let serial = crate::certid::canonical(serial);
    let mut k = Vec::with_capacity(2 + serial.len());
    k.push(h.tag());
    k.push(alg as u8);
    k.extend_from_slice(serial);
    k
}

fn failed<E: Into<redb::Error>>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Store(format!("{what}: {}", e.into()))
}

/// Whether `dir` holds the answer store of an older jpki (sled: `conf`, `db`, `blobs/`).
fn sled_layout(dir: &Path) -> bool {
    ["conf", "db", "blobs"]
        .iter()
        .any(|f| dir.join(f).symlink_metadata().is_ok())
}

impl AnswerStore {
    /// Opens (or creates) the store in `dir` (mode 0700; its file 0600). A store that does
    /// not open (damaged) is moved aside to `dir.damaged-<unix time>` and a new one begun,
    /// and a directory in the older sled layout is removed: its answers are derived data,
    /// signed again by the pre-signer (with no watermark, the responder starts the new store
    /// at the log's head). A store another process has open is an error, and nothing is
    /// moved.
    pub fn open(dir: &Path, settings: &Settings) -> Result<AnswerStore, Error> {
        if sled_layout(dir) {
            tracing::warn!(dir = %dir.display(), "the pre-signed OCSP answer store is in the older sled layout; removing it (its answers are signed again)");
            std::fs::remove_dir_all(dir)
                .map_err(|e| Error::Store(format!("remove {}: {e}", dir.display())))?;
        }
        create_private_dir(dir)?;
        let file = dir.join(FILE);
        let store = match AnswerStore::open_file(&file, settings) {
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
                AnswerStore::open_file(&file, settings).map_err(OpenFailure::into_error)?
            }
        };
        Ok(store)
    }

    fn open_file(file: &Path, settings: &Settings) -> Result<AnswerStore, OpenFailure> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let f = options
            .open(file)
            .map_err(|e| Error::Store(format!("open {}: {e}", file.display())))
            .map_err(OpenFailure::Other)?;
        let db = builder(settings)
            .create_with_backend(redb::backends::FileBackend::new(f))
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => OpenFailure::InUse(Error::Store(
                    format!("{} is open in another process", file.display()),
                )),
                e => OpenFailure::Other(failed("open the answer store")(e)),
            })?;
        AnswerStore::with(db, Some(file.to_path_buf())).map_err(OpenFailure::Other)
    }

    fn with(db: Database, file: Option<PathBuf>) -> Result<AnswerStore, Error> {
        // Every table exists from the first open on (a read of a missing one fails).
        let w = durable_write(&db)?;
        w.open_table(ANSWERS).map_err(failed("open the answers"))?;
        w.open_table(SUFFIXES)
            .map_err(failed("open the suffixes"))?;
        w.open_table(META).map_err(failed("open the watermark"))?;
        w.commit().map_err(failed("create the answer store"))?;
        let mut suffixes = HashMap::new();
        let r = db.begin_read().map_err(failed("read the answer store"))?;
        let t = r
            .open_table(SUFFIXES)
            .map_err(failed("open the suffixes"))?;
        for item in t.range(..).map_err(failed("read the suffixes"))? {
            let (k, v) = item.map_err(failed("read the suffixes"))?;
            let (k, v) = (k.value(), v.value());
            // A suffix that is not what its reference names is not used (its answers read
            // as missing and are signed again).
            if let Ok(r) = <[u8; SUFFIX_REF]>::try_from(k) {
                if suffix_ref(v) == r {
                    suffixes.insert(r, Bytes::copy_from_slice(v));
                }
            }
        }
        Ok(AnswerStore {
            db,
            file,
            suffixes: RwLock::new(suffixes),
            pending: AtomicU32::new(0),
        })
    }

    /// A store in memory only (tests).
    pub fn temporary() -> Result<AnswerStore, Error> {
        let db = builder(&Settings::default())
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(failed("open a temporary answer store"))?;
        AnswerStore::with(db, None)
    }

    /// The sequence number of the status-change log up to which every stored answer states
    /// the store's status (`None`: never recorded — a new store, or one written before the
    /// watermark existed).
    pub fn watermark(&self) -> Result<Option<u64>, Error> {
        let r = self
            .db
            .begin_read()
            .map_err(failed("read the answer store's watermark"))?;
        let t = r
            .open_table(META)
            .map_err(failed("read the answer store's watermark"))?;
        let v = t
            .get(WATERMARK)
            .map_err(failed("read the answer store's watermark"))?;
        Ok(v.map(|v| v.value()))
    }

    /// Records the watermark and makes it and every answer written before it durable: one
    /// durable commit, atomic with every non-durable one before it, so the watermark never
    /// reaches the disk without the answers it vouches for.
    pub fn set_watermark(&self, seq: u64) -> Result<(), Error> {
        let w = durable_write(&self.db)?;
        let written = || -> Result<(), redb::Error> {
            w.open_table(META)?.insert(WATERMARK, seq)?;
            Ok(())
        };
        written().map_err(failed("write the answer store's watermark"))?;
        self.commit_durable(w)
    }

    /// Removes an answer (durable at the next [`AnswerStore::flush`]). Returns whether there
    /// was one.
    pub fn remove(&self, h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Result<bool, Error> {
        let w = self.write()?;
        let removed = || -> Result<bool, redb::Error> {
            let mut t = w.open_table(ANSWERS)?;
            let old = t.remove(key(h, alg, serial).as_slice())?;
            Ok(old.is_some())
        };
        let had = removed().map_err(failed("remove a stored answer"))?;
        self.commit(w, false)?;
        Ok(had)
    }

    /// Whether a record is there at all, decodable or not (a record that cannot be served
    /// must still be replaced or removed when its certificate's status changes).
    pub fn contains(&self, h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Result<bool, Error> {
        self.with_record(h, alg, serial, |v| v.is_some())
    }

    pub fn get(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
    ) -> Result<Option<StoredAnswer>, Error> {
        let suffixes = self
            .suffixes
            .read()
            .map_err(|_| Error::Store("the suffix table's lock is poisoned".into()))?;
        self.with_record(h, alg, serial, |v| {
            v.and_then(|v| StoredAnswer::decode(v, &suffixes))
        })
    }

    /// Hands the record stored under the key (or `None`) to `f`, inside one read transaction.
    fn with_record<T>(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> T,
    ) -> Result<T, Error> {
        const WHAT: &str = "read a stored answer";
        let r = self.db.begin_read().map_err(failed(WHAT))?;
        let t = r.open_table(ANSWERS).map_err(failed(WHAT))?;
        let v = t
            .get(key(h, alg, serial).as_slice())
            .map_err(failed(WHAT))?;
        Ok(f(v.as_ref().map(|v| v.value())))
    }

    /// Stores an answer (durable at the next [`AnswerStore::flush`], or at a later durable
    /// commit: a lost write only means signing it again). Its suffix, if new, is written in
    /// the same commit, so no record refers to a suffix that is not there.
    pub fn put(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
        a: &StoredAnswer,
    ) -> Result<(), Error> {
        let (record, suffix) = a.encode()?;
        let known = |r: &[u8; SUFFIX_REF]| {
            self.suffixes
                .read()
                .map(|m| m.contains_key(r))
                .unwrap_or(false)
        };
        let new_suffix = suffix.filter(|(_, r)| !known(r));
        let w = self.write()?;
        let written = || -> Result<(), redb::Error> {
            if let Some((bytes, r)) = &new_suffix {
                w.open_table(SUFFIXES)?.insert(&r[..], *bytes)?;
            }
            w.open_table(ANSWERS)?
                .insert(key(h, alg, serial).as_slice(), record.as_slice())?;
            Ok(())
        };
        written().map_err(failed("write a stored answer"))?;
        // A new suffix is durable with the first record that refers to it.
        self.commit(w, new_suffix.is_some())?;
        if let Some((bytes, r)) = new_suffix {
            self.suffixes
                .write()
                .map_err(|_| Error::Store("the suffix table's lock is poisoned".into()))?
                .insert(r, Bytes::copy_from_slice(bytes));
        }
        Ok(())
    }

    /// Every stored answer's key and times, in file order, read sequentially in large chunks
    /// (no per-record allocation); `each` returns false to stop.
    ///
    /// One read transaction over the `answers` table in key order; only each record's header
    /// is decoded (no suffix splice, no copy of the DER). Records that do not decode (another
    /// version, damaged) are skipped: [`AnswerStore::get`] reads them as missing too.
    pub fn for_each_meta(&self, each: &mut dyn FnMut(AnswerMeta) -> bool) -> Result<(), Error> {
        const WHAT: &str = "scan the stored answers";
        let r = self.db.begin_read().map_err(failed(WHAT))?;
        let t = r.open_table(ANSWERS).map_err(failed(WHAT))?;
        for item in t.iter().map_err(failed(WHAT))? {
            let (k, v) = item.map_err(failed(WHAT))?;
            let Some(meta) = AnswerMeta::decode(k.value(), v.value()) else {
                continue;
            };
            if !each(meta) {
                break;
            }
        }
        Ok(())
    }

    /// Makes every write so far durable (fsync).
    pub fn flush(&self) -> Result<(), Error> {
        self.commit_durable(durable_write(&self.db)?)
    }

    /// Removes every answer (the CA store behind them was replaced: a restored copy older
    /// than the watermark). Returns how many.
    pub fn clear(&self) -> Result<usize, Error> {
        let w = durable_write(&self.db)?;
        let n = {
            let mut t = w.open_table(ANSWERS).map_err(failed("clear the answers"))?;
            let n = t.len().map_err(failed("clear the answers"))?;
            t.retain(|_, _| false)
                .map_err(failed("clear the answers"))?;
            n
        };
        self.commit_durable(w)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Removes every answer of a hierarchy (its signer was compromised). Returns how many.
    pub fn purge(&self, h: Hierarchy) -> Result<usize, Error> {
        let w = durable_write(&self.db)?;
        let mut n = 0usize;
        {
            let mut t = w.open_table(ANSWERS).map_err(failed("purge the answers"))?;
            let (lo, hi) = ([h.tag()], [h.tag() + 1]);
            t.retain_in(&lo[..]..&hi[..], |_, _| {
                n += 1;
                false
            })
            .map_err(failed("purge the answers"))?;
        }
        self.commit_durable(w)?;
        Ok(n)
    }

    /// Number of stored answers.
    pub fn len(&self) -> usize {
        let n = self.db.begin_read().ok().and_then(|r| {
            let t = r.open_table(ANSWERS).ok()?;
            t.len().ok()
        });
        n.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.file
            .as_ref()
            .and_then(|f| std::fs::metadata(f).ok())
            .map_or(0, |m| m.len())
    }

    /// A write transaction that commits without fsync (made durable by a later durable
    /// commit, which carries every earlier one with it).
    fn write(&self) -> Result<WriteTransaction, Error> {
        let mut w = self
            .db
            .begin_write()
            .map_err(failed("write the answer store"))?;
        w.set_durability(Durability::None)
            .map_err(|e| Error::Store(format!("write the answer store: {e}")))?;
        Ok(w)
    }

    /// Commits `w`, a transaction begun durable ([`durable_write`]): one fsync, which
    /// carries every earlier non-durable commit with it.
    fn commit_durable(&self, w: WriteTransaction) -> Result<(), Error> {
        w.commit().map_err(failed("flush the answer store"))?;
        self.pending.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Commits `w`, a transaction begun non-durable ([`AnswerStore::write`]); durably
    /// (fsync) if `durable` or after [`DURABLE_EVERY`] non-durable commits, by a second,
    /// empty durable transaction.
    fn commit(&self, w: WriteTransaction, durable: bool) -> Result<(), Error> {
        w.commit().map_err(failed("commit to the answer store"))?;
        let due = self.pending.fetch_add(1, Ordering::Relaxed) + 1 >= DURABLE_EVERY;
        if durable || due {
            self.pending.store(0, Ordering::Relaxed);
            durable_write(&self.db)?
                .commit()
                .map_err(failed("flush the answer store"))?;
        }
        Ok(())
    }
}

/// Why the store's file did not open.
enum OpenFailure {
    /// Locked by another process (a second server on the same data): left alone.
    InUse(Error),
    /// Anything else: the file is set aside as damaged.
    Other(Error),
}

impl OpenFailure {
    fn into_error(self) -> Error {
        match self {
            OpenFailure::InUse(e) | OpenFailure::Other(e) => e,
        }
    }
}

fn builder(settings: &Settings) -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_cache_size(usize::try_from(settings.cache_bytes).unwrap_or(usize::MAX));
    b
}

/// A write transaction whose commit is durable (fsync) and records the allocator state, so
/// that opening after a crash is quick (no walk of the whole file).
fn durable_write(db: &Database) -> Result<WriteTransaction, Error> {
    let mut w = db.begin_write().map_err(failed("write the answer store"))?;
    w.set_quick_repair(true);
    Ok(w)
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
        let mut basic = [
            tlv(0x30, &tlv(0x02, &[sig; 3])),
            tlv(0x30, &[0x06, 0x03, 0x2a, 0x03, 0x04]),
            tlv(0x03, &[0u8; 200]),
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
        let r = s.db.begin_read().unwrap();
        let t = r.open_table(ANSWERS).unwrap();
        let v = t
            .get(key(h, HashAlg::Sha1, serial).as_slice())
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        v
    }

    #[test]
    fn the_meta_scan_reads_every_key_and_times_in_order_and_stops_when_told() {
        let s = AnswerStore::temporary().unwrap();
        let good = answer(Status::Good);
        let revoked = StoredAnswer {
            times: Times {
                next_update: datetime!(2026-12-05 11:00:00 UTC),
                ..good.times
            },
            ..answer(Status::Revoked {
                at: datetime!(2026-12-01 00:00:00 UTC),
                reason: Reason::KeyCompromise,
            })
        };
        s.put(Hierarchy::Auth, HashAlg::Sha256, &[0x00, 0x81], &revoked)
            .unwrap();
        s.put(Hierarchy::Signing, HashAlg::Sha1, &[0x02], &good)
            .unwrap();
        s.put(
            Hierarchy::Auth,
            HashAlg::Sha1,
            &[0x03],
            &with_der(response(1, Some(b"signer"))),
        )
        .unwrap();
        // A record of another version is skipped.
        {
            let w = s.write().unwrap();
            w.open_table(ANSWERS)
                .unwrap()
                .insert(
                    key(Hierarchy::Auth, HashAlg::Sha1, &[0x09]).as_slice(),
                    &[2u8; HEADER + 4][..],
                )
                .unwrap();
            s.commit(w, false).unwrap();
        }
        let mut seen = Vec::new();
        s.for_each_meta(&mut |m| {
            seen.push((m.hierarchy, m.alg, m.serial.to_vec(), m.status, m.times));
            true
        })
        .unwrap();
        let mut want = vec![
            (
                Hierarchy::Auth,
                HashAlg::Sha256,
                vec![0x81],
                revoked.status,
                revoked.times,
            ),
            (
                Hierarchy::Signing,
                HashAlg::Sha1,
                vec![0x02],
                good.status,
                good.times,
            ),
            (
                Hierarchy::Auth,
                HashAlg::Sha1,
                vec![0x03],
                Status::Good,
                good.times,
            ),
        ];
        want.sort_by_key(|w| key(w.0, w.1, &w.2));
        assert_eq!(seen, want);
        let mut n = 0;
        s.for_each_meta(&mut |_| {
            n += 1;
            false
        })
        .unwrap();
        assert_eq!(n, 1, "stops when told");
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
            let mode = std::fs::metadata(path.join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
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
            let w = s.write().unwrap();
            w.open_table(ANSWERS)
                .unwrap()
                .insert(
                    key(Hierarchy::Auth, HashAlg::Sha1, &[6]).as_slice(),
                    &old[..],
                )
                .unwrap();
            s.commit(w, true).unwrap();
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
            // The suffix lost (or damaged: a reference that does not match its bytes).
            let w = s.write().unwrap();
            {
                let mut t = w.open_table(SUFFIXES).unwrap();
                let r = suffix_ref(&der[certs_offset(&der).unwrap()..]);
                t.insert(&r[..], &b"not the certificate"[..]).unwrap();
            }
            s.commit(w, true).unwrap();
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
                .insert(WATERMARK, &7u64.to_be_bytes())
                .unwrap();
            old.flush().unwrap();
        }
        assert!(sled_layout(&path));
        let s = AnswerStore::open(&path, &Settings::default()).unwrap();
        assert!(s.is_empty());
        // No watermark: the responder starts the new store at the log's head.
        assert_eq!(s.watermark().unwrap(), None);
        assert!(!sled_layout(&path));
        let names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE]);
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
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["answers"]);
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
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("answers.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1);
    }
}
