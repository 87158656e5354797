//! Durable pre-signed answers: every certificate's answer signed ahead of the question and
//! kept on disk, beside the CA's store, so that a restart serves them without signing and
//! memory does not grow with the number of certificates (the in-memory cache of
//! [`crate::responder`] is only a bounded front for the hot ones).
//!
//! One sled tree (sled 0.34, already the CA's embedded engine) in its own directory, with a
//! small page cache ([`Settings::cache_bytes`]). Keys: `hierarchy tag · hash algorithm ·
//! serial`; values: the status the answer states, its times, the issuing root's key hash, the
//! entity tag and the DER `OCSPResponse` ([`StoredAnswer`]). A second tree holds the
//! **watermark**: the sequence number of the store's status-change log up to which every
//! stored answer is known to state the store's status.
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

use std::path::Path;

use bytes::Bytes;
use policies::{Hierarchy, Reason};
use time::OffsetDateTime;

use crate::certid::{HashAlg, Times};
use crate::source::Status;
use crate::Error;

/// Tunables of the answer store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// sled's page cache, in bytes (what the store may hold in memory).
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
    /// The DER `OCSPResponse`.
    pub der: Bytes,
}

/// Version 2 added the issuer key hash and the entity tag; a version-1 record is not decoded
/// (read as missing: signed again).
const VERSION: u8 = 2;
const HEADER: usize = 1 + 1 + 8 + 1 + 8 * 3 + KEY_HASH + ETAG;
const WATERMARK: &[u8] = b"status-log-watermark";

impl StoredAnswer {
    /// `version u8 · status u8 (0 good, 1 revoked) · revoked_at i64 · reason u8 ·
    /// producedAt i64 · thisUpdate i64 · nextUpdate i64 · issuer key hash [20] · etag [34] ·
    /// DER` (integers big-endian, times in Unix seconds).
    fn encode(&self) -> Result<Vec<u8>, Error> {
        let (tag, at, reason) = match self.status {
            Status::Good => (0u8, 0i64, 0u8),
            Status::Revoked { at, reason } => (1, at.unix_timestamp(), reason.code()),
            Status::Unknown => {
                return Err(Error::Settings("an unknown answer is never stored".into()))
            }
        };
        let mut v = Vec::with_capacity(HEADER + self.der.len());
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
        v.extend_from_slice(&self.der);
        Ok(v)
    }

    /// Decodes a record; the DER shares sled's buffer (no copy).
    fn decode(v: sled::IVec) -> Option<StoredAnswer> {
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
        let etag = v.get(35 + KEY_HASH..HEADER)?.try_into().ok()?;
        Some(StoredAnswer {
            status,
            times,
            issuer_key,
            etag,
            der: Bytes::from_owner(v).slice(HEADER..),
        })
    }
}

/// The durable answer store (see the module docs).
pub struct AnswerStore {
    tree: sled::Db,
    /// The watermark ([`AnswerStore::watermark`]), apart from the answers.
    meta: sled::Tree,
}

fn key(h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Vec<u8> {
    let serial = crate::certid::canonical(serial);
    let mut k = Vec::with_capacity(2 + serial.len());
    k.push(h.tag());
    k.push(alg as u8);
    k.extend_from_slice(serial);
    k
}

fn failed(what: &str) -> impl FnOnce(sled::Error) -> Error + '_ {
    move |e| Error::Store(format!("{what}: {e}"))
}

impl AnswerStore {
    /// Opens (or creates) the store in `dir` (mode 0700). A store that does not open
    /// (damaged by a crash) is moved aside to `dir.damaged-<unix time>` and a new one begun:
    /// its answers are derived data, signed again by the pre-signer.
    pub fn open(dir: &Path, settings: &Settings) -> Result<AnswerStore, Error> {
        let config = |d: &Path| {
            sled::Config::new()
                .path(d)
                .cache_capacity(settings.cache_bytes)
                .mode(sled::Mode::LowSpace)
        };
        create_private_dir(dir)?;
        let tree = match config(dir).open() {
            Ok(t) => t,
            Err(e) => {
                let aside = dir.with_extension(format!(
                    "damaged-{}",
                    OffsetDateTime::now_utc().unix_timestamp()
                ));
                tracing::error!(error = %e, dir = %dir.display(), aside = %aside.display(), "the pre-signed OCSP answer store does not open; setting it aside and starting an empty one");
                std::fs::rename(dir, &aside)
                    .map_err(|e| Error::Store(format!("set {} aside: {e}", dir.display())))?;
                create_private_dir(dir)?;
                config(dir)
                    .open()
                    .map_err(failed("open the answer store"))?
            }
        };
        AnswerStore::with(tree)
    }

    fn with(tree: sled::Db) -> Result<AnswerStore, Error> {
        let meta = tree
            .open_tree("meta")
            .map_err(failed("open the answer store's watermark"))?;
        Ok(AnswerStore { tree, meta })
    }

    /// A store in memory only (tests).
    pub fn temporary() -> Result<AnswerStore, Error> {
        let tree = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(failed("open a temporary answer store"))?;
        AnswerStore::with(tree)
    }

    /// The sequence number of the status-change log up to which every stored answer states
    /// the store's status (`None`: never recorded — a new store, or one written before the
    /// watermark existed).
    pub fn watermark(&self) -> Result<Option<u64>, Error> {
        let v = self
            .meta
            .get(WATERMARK)
            .map_err(failed("read the answer store's watermark"))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Records the watermark and makes it and every answer written before it durable (one
    /// fsync of the store after the answers': the watermark never reaches the disk before
    /// the answers it vouches for).
    pub fn set_watermark(&self, seq: u64) -> Result<(), Error> {
        self.flush()?;
        self.meta
            .insert(WATERMARK, &seq.to_be_bytes())
            .map_err(failed("write the answer store's watermark"))?;
        self.flush()
    }

    /// Removes an answer (durable at the next [`AnswerStore::flush`]). Returns whether there
    /// was one.
    pub fn remove(&self, h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Result<bool, Error> {
        self.tree
            .remove(key(h, alg, serial))
            .map(|old| old.is_some())
            .map_err(failed("remove a stored answer"))
    }

    /// Whether a record is there at all, decodable or not (a record of an older version is
    /// not served but must still be replaced or removed when its certificate's status
    /// changes).
    pub fn contains(&self, h: Hierarchy, alg: HashAlg, serial: &[u8]) -> Result<bool, Error> {
        self.tree
            .contains_key(key(h, alg, serial))
            .map_err(failed("read a stored answer"))
    }

    pub fn get(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
    ) -> Result<Option<StoredAnswer>, Error> {
        let v = self
            .tree
            .get(key(h, alg, serial))
            .map_err(failed("read a stored answer"))?;
        Ok(v.and_then(StoredAnswer::decode))
    }

    /// Stores an answer (durable at the next [`AnswerStore::flush`], or sled's own periodic
    /// flush: a lost write only means signing it again).
    pub fn put(
        &self,
        h: Hierarchy,
        alg: HashAlg,
        serial: &[u8],
        a: &StoredAnswer,
    ) -> Result<(), Error> {
        self.tree
            .insert(key(h, alg, serial), a.encode()?)
            .map_err(failed("write a stored answer"))?;
        Ok(())
    }

    /// Makes every write so far durable (fsync).
    pub fn flush(&self) -> Result<(), Error> {
        self.tree
            .flush()
            .map_err(failed("flush the answer store"))
            .map(|_| ())
    }

    /// Removes every answer (the CA store behind them was replaced: a restored copy older
    /// than the watermark). Returns how many.
    pub fn clear(&self) -> Result<usize, Error> {
        let n = self.tree.len();
        self.tree
            .clear()
            .map_err(failed("clear the answer store"))?;
        self.flush()?;
        Ok(n)
    }

    /// Removes every answer of a hierarchy (its signer was compromised). Returns how many.
    pub fn purge(&self, h: Hierarchy) -> Result<usize, Error> {
        let mut n = 0;
        for item in self.tree.scan_prefix([h.tag()]) {
            let (k, _) = item.map_err(failed("scan the answer store"))?;
            self.tree
                .remove(k)
                .map_err(failed("remove a stored answer"))?;
            n += 1;
        }
        self.flush()?;
        Ok(n)
    }

    /// Number of stored answers (a scan: for tools and tests).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.tree.size_on_disk().unwrap_or(0)
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
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
            // A record of version 1 (before the issuer key and the entity tag).
            let mut old = answer(Status::Good).encode().unwrap();
            old[0] = 1;
            s.tree
                .insert(key(Hierarchy::Auth, HashAlg::Sha1, &[6]), old)
                .unwrap();
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
        assert_eq!(StoredAnswer::decode(sled::IVec::from(b"\x01\x00")), None);
        let mut v = answer(Status::Good).encode().unwrap();
        v[0] = 1;
        assert_eq!(StoredAnswer::decode(sled::IVec::from(v)), None);
    }
}
