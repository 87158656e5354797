//! The slot file: a linear-hashing table of fixed 4 KiB pages, updated in place (the engine
//! under [`super::AnswerStore`]; its design and why are in the parent module's docs).
//!
//! Files, in the store's directory:
//!
//! * `answers.slots` — two header slots (pages 0–1 and 2–3, written alternately, the valid one
//!   with the higher sequence number wins), then bucket `b`'s primary page at page `4 + b`.
//! * `answers.spill` — overflow pages, linked from a bucket's primary page (page 0 unused).
//!
//! A page: `crc32 · "JPAS" · owner bucket u64 · nonce u64 · next page u64 · next nonce u64 ·
//! record count u16 · bytes used u16 · 4 reserved · records`, a record `key length u8 ·
//! record length u16 · key · record` (integers little-endian). The checksum covers the whole
//! page after itself; a page that fails it, or names another owner, reads as empty. A link
//! names the page *and* the nonce written into that page when it was allocated (random per
//! process, then counted): a spill page freed and reused, or left behind by a crash, never
//! continues a chain it no longer belongs to.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use crate::Error;

pub(super) const PAGE: usize = 4096;
const PAGE_HEAD: usize = 48;
/// Bytes of records a page holds.
pub(super) const CAPACITY: usize = PAGE - PAGE_HEAD;
/// `key length u8 · record length u16`.
const REC_HEAD: usize = 3;
const MAGIC: &[u8; 4] = b"JPAS";
/// Buckets of an empty table (level 0).
const BASE: u64 = 64;
/// Header pages: two slots of `HEAD_SLOT` pages.
const HEAD_SLOT: u64 = 2;
const HEAD_PAGES: u64 = 2 * HEAD_SLOT;
const HEAD_MAGIC: &[u8; 16] = b"jpki-ocsp-slots\x01";
/// Fixed part of a header slot; the free list of spill pages follows.
const HEAD_FIXED: usize = 16 + 4 + 8 + 1 + 8 + 4 + 8 + 8 + 8 + 8 + 4;
/// Spill pages the header remembers as free (more are leaked until [`Slots::clear`]).
const FREE_KEPT: usize = (HEAD_SLOT as usize * PAGE - HEAD_FIXED) / 8;
/// A bucket is split once the table holds more than `FILL_PERCENT` % of its primary pages'
/// capacity. Measured at 10^6 answers of 1.1 KB: 1,959 B of disk per answer and 25 % of the
/// answers in spill pages; 70 % gave 2,086 B and 21 % (linear hashing's unsplit buckets hold
/// twice the records of split ones, so some chains stay whatever the fill).
const FILL_PERCENT: u64 = 80;
/// Longest chain followed (a cycle left by a crash cannot hang a reader).
const MAX_CHAIN: usize = 64;
/// Lock stripes serialising the writers (and readers) of one bucket's pages.
const STRIPES: usize = 1024;
/// Buckets read per chunk by [`Slots::for_each`] (1 MiB).
const SCAN_CHUNK: u64 = 256;

/// Linear hashing's state: `BASE << level` buckets, of which the first `split` are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    level: u32,
    split: u64,
}

impl Geometry {
    fn buckets(self) -> u64 {
        (BASE << self.level) + self.split
    }

    fn bucket(self, h: u64) -> u64 {
        let m = BASE << self.level;
        let b = h % m;
        if b < self.split {
            h % (m << 1)
        } else {
            b
        }
    }
}

/// Spill pages: the high-water mark and the free ones.
struct Alloc {
    high: u64,
    free: Vec<u64>,
}

/// The header's in-memory half.
struct Head {
    /// Sequence number of the last header written.
    seq: u64,
    /// The durable watermark.
    watermark: Option<u64>,
}

/// The stable hash of a key: the first 8 bytes of its SHA-256 (the same in every build).
pub(super) fn hash(key: &[u8]) -> u64 {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(b)
}

fn u16_at(p: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([p[at], p[at + 1]]))
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Whether `p` is a whole page of the chain of `owner` with the nonce `nonce` (`None`: a
/// primary page, which has no nonce to match).
fn page_ok(p: &[u8], owner: u64, nonce: Option<u64>) -> bool {
    p.len() == PAGE
        && &p[4..8] == MAGIC
        && u32::from_le_bytes([p[0], p[1], p[2], p[3]]) == crc32fast::hash(&p[4..])
        && u64_at(p, 8) == owner
        && nonce.is_none_or(|n| u64_at(p, 16) == n)
        && u16_at(p, 42) <= CAPACITY
}

fn next_link(p: &[u8]) -> Option<(u64, u64)> {
    let next = u64_at(p, 24);
    (next != 0).then(|| (next, u64_at(p, 32)))
}

/// The records of a page that [`page_ok`] accepted: `(key, record)`.
fn records(p: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let used = u16_at(p, 42);
    let area = &p[PAGE_HEAD..PAGE_HEAD + used];
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + REC_HEAD > area.len() {
            return None;
        }
        let k = usize::from(area[at]);
        let r = u16_at(area, at + 1);
        let key = area.get(at + REC_HEAD..at + REC_HEAD + k)?;
        let rec = area.get(at + REC_HEAD + k..at + REC_HEAD + k + r)?;
        at += REC_HEAD + k + r;
        Some((key, rec))
    })
}

/// Room a record takes in a page.
pub(super) fn footprint(key: &[u8], rec: &[u8]) -> usize {
    REC_HEAD + key.len() + rec.len()
}

/// One page of a chain as the write path edits it.
struct Node {
    /// Spill page number (`0`: the primary page).
    page: u64,
    nonce: u64,
    recs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Node {
    fn used(&self) -> usize {
        self.recs.iter().map(|(k, r)| footprint(k, r)).sum()
    }
}

fn build(owner: u64, nonce: u64, next: Option<(u64, u64)>, recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    p[4..8].copy_from_slice(MAGIC);
    p[8..16].copy_from_slice(&owner.to_le_bytes());
    p[16..24].copy_from_slice(&nonce.to_le_bytes());
    let (np, nn) = next.unwrap_or((0, 0));
    p[24..32].copy_from_slice(&np.to_le_bytes());
    p[32..40].copy_from_slice(&nn.to_le_bytes());
    let mut at = PAGE_HEAD;
    for (k, r) in recs {
        // The callers keep keys under 256 bytes and a page's records within CAPACITY.
        p[at] = k.len() as u8;
        p[at + 1..at + 3].copy_from_slice(&(r.len() as u16).to_le_bytes());
        p[at + REC_HEAD..at + REC_HEAD + k.len()].copy_from_slice(k);
        p[at + REC_HEAD + k.len()..at + REC_HEAD + k.len() + r.len()].copy_from_slice(r);
        at += footprint(k, r);
    }
    p[40..42].copy_from_slice(&(recs.len() as u16).to_le_bytes());
    p[42..44].copy_from_slice(&((at - PAGE_HEAD) as u16).to_le_bytes());
    let crc = crc32fast::hash(&p[4..]);
    p[..4].copy_from_slice(&crc.to_le_bytes());
    p
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Store(format!("{what}: {e}"))
}

/// The table (see the module docs).
pub(super) struct Slots {
    slots: File,
    spill: File,
    geometry: RwLock<Geometry>,
    alloc: Mutex<Alloc>,
    head: Mutex<Head>,
    stripes: Box<[RwLock<()>]>,
    len: AtomicU64,
    bytes: AtomicU64,
    nonce_seed: u64,
    nonces: AtomicU64,
}

/// Why the files did not open.
pub(super) enum OpenFailure {
    /// Locked by another process (or handle): left alone.
    InUse(Error),
    /// Anything else: set aside as damaged.
    Other(Error),
}

impl Slots {
    /// Opens `slots` and `spill` (created 0600 if absent), locking `slots` (flock, exclusive)
    /// for as long as the table is open. A table whose header records no watermark and no
    /// record is emptied.
    pub(super) fn open(slots: &Path, spill: &Path) -> Result<Slots, OpenFailure> {
        let other = |what: &'static str| move |e: std::io::Error| OpenFailure::Other(io(what)(e));
        let slots_file = private_file(slots).map_err(other("open the slot file"))?;
        match slots_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenFailure::InUse(Error::Store(format!(
                    "{} is open in another process",
                    slots.display()
                ))))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(other("lock the slot file")(e));
            }
        }
        let spill_file = private_file(spill).map_err(other("open the spill file"))?;
        Slots::with(slots_file, spill_file).map_err(OpenFailure::Other)
    }

    /// A table in two files already open (and locked, or private to this process).
    pub(super) fn with(slots: File, spill: File) -> Result<Slots, Error> {
        let mut seed = [0u8; 8];
        aws_lc_rs::rand::fill(&mut seed)
            .map_err(|_| Error::Store("no randomness for the slot file's nonces".into()))?;
        let mut t = Slots {
            slots,
            spill,
            geometry: RwLock::new(Geometry { level: 0, split: 0 }),
            alloc: Mutex::new(Alloc {
                high: 1,
                free: Vec::new(),
            }),
            head: Mutex::new(Head {
                seq: 0,
                watermark: None,
            }),
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
            len: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            nonce_seed: u64::from_le_bytes(seed),
            nonces: AtomicU64::new(0),
        };
        let size = t.slots.metadata().map_err(io("read the slot file"))?.len();
        if size == 0 {
            t.reset()?;
            return Ok(t);
        }
        let best = (0..2)
            .filter_map(|slot| t.read_head(slot))
            .max_by_key(|h| h.seq)
            .ok_or_else(|| Error::Store("the slot file has no valid header".into()))?;
        if best.watermark.is_none() && best.len == 0 {
            // Never vouched for by a watermark, and counted empty at its last durable point:
            // made empty for certain (whatever a crash left written since is dropped), so
            // "empty and no watermark" is true of the records, not only of the count.
            t.reset()?;
            return Ok(t);
        }
        // Primary pages past the header's geometry are left by splits a crash rolled back:
        // cut off, so that a later split of those buckets never finds them (under a power
        // loss its header could reach the disk before its page).
        let end = (HEAD_PAGES + best.geometry.buckets()) * PAGE as u64;
        if size > end {
            t.slots.set_len(end).map_err(io("truncate the slot file"))?;
            t.slots.sync_all().map_err(io("sync the slot file"))?;
        }
        *t.geometry.get_mut().map_err(poisoned)? = best.geometry;
        // Spill pages allocated after the header was written are in the file (its length
        // covers every page written) and possibly linked: never handed out again. A page the
        // header lists as free but that a chain links to (allocated again after the header
        // was written) is not free.
        let spilled = t.spill.metadata().map_err(io("read the spill file"))?.len();
        let high = best.high.max(spilled.div_ceil(PAGE as u64)).max(1);
        let mut free = Vec::with_capacity(best.free.len());
        for page in best.free {
            if page > 0 && page < high && !t.linked(best.geometry, page)? {
                free.push(page);
            }
        }
        *t.alloc.get_mut().map_err(poisoned)? = Alloc { high, free };
        *t.head.get_mut().map_err(poisoned)? = Head {
            seq: best.seq,
            watermark: best.watermark,
        };
        t.len = AtomicU64::new(best.len);
        t.bytes = AtomicU64::new(best.bytes);
        Ok(t)
    }

    /// Empties both files and writes a header with no watermark (durably).
    fn reset(&self) -> Result<(), Error> {
        self.slots
            .set_len(0)
            .map_err(io("truncate the slot file"))?;
        self.spill
            .set_len(0)
            .map_err(io("truncate the spill file"))?;
        *self.geometry.write().map_err(poisoned)? = Geometry { level: 0, split: 0 };
        *self.alloc.lock().map_err(poisoned)? = Alloc {
            high: 1,
            free: Vec::new(),
        };
        self.len.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        {
            let mut head = self.head.lock().map_err(poisoned)?;
            head.watermark = None;
            head.seq = 0;
        }
        self.spill.sync_all().map_err(io("sync the spill file"))?;
        // Both slots: an older header must not win after a reset.
        self.write_head(None)?;
        self.write_head(None)?;
        self.slots.sync_all().map_err(io("sync the slot file"))
    }

    fn read_head(&self, slot: u64) -> Option<HeadImage> {
        let mut b = vec![0u8; HEAD_SLOT as usize * PAGE];
        self.slots
            .read_exact_at(&mut b, slot * HEAD_SLOT * PAGE as u64)
            .ok()?;
        HeadImage::decode(&b)
    }

    /// Writes the header into the slot not holding the newest one (`watermark`: `Some` to
    /// record a new durable watermark, `None` to keep the current one).
    ///
    /// The geometry stays read-locked until the header is written: a split (which writes its
    /// own header under the write lock) cannot come between, so a later header never names
    /// an older geometry than an earlier one.
    fn write_head(&self, watermark: Option<u64>) -> Result<(), Error> {
        let geometry = self.geometry.read().map_err(poisoned)?;
        self.write_head_with(*geometry, watermark)
    }

    fn write_head_with(&self, geometry: Geometry, watermark: Option<u64>) -> Result<(), Error> {
        let (high, free) = {
            let a = self.alloc.lock().map_err(poisoned)?;
            let kept = a.free.len().min(FREE_KEPT);
            (a.high, a.free[..kept].to_vec())
        };
        let mut head = self.head.lock().map_err(poisoned)?;
        let image = HeadImage {
            seq: head.seq + 1,
            watermark: watermark.or(head.watermark),
            geometry,
            high,
            len: self.len.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            free,
        };
        let slot = image.seq % 2;
        self.slots
            .write_all_at(&image.encode(), slot * HEAD_SLOT * PAGE as u64)
            .map_err(io("write the slot file's header"))?;
        head.seq = image.seq;
        head.watermark = image.watermark;
        Ok(())
    }

    /// Whether spill page `page` is part of the chain of the bucket it names (at open).
    fn linked(&self, geometry: Geometry, page: u64) -> Result<bool, Error> {
        let mut buf = [0u8; PAGE];
        let read = self.spill.read_exact_at(&mut buf, page * PAGE as u64);
        if read.is_err() || !page_ok(&buf, u64_at(&buf, 8), None) {
            return Ok(false);
        }
        let (owner, nonce) = (u64_at(&buf, 8), u64_at(&buf, 16));
        if owner >= geometry.buckets() || !self.read_slot(owner, &mut buf)? {
            return Ok(false);
        }
        for _ in 0..MAX_CHAIN {
            let Some(link) = next_link(&buf) else { break };
            if link == (page, nonce) {
                return Ok(true);
            }
            if !self.read_spill(owner, link, &mut buf)? {
                break;
            }
        }
        Ok(false)
    }

    pub(super) fn watermark(&self) -> Result<Option<u64>, Error> {
        Ok(self.head.lock().map_err(poisoned)?.watermark)
    }

    /// Makes every write so far durable (fdatasync of both files), then writes the header
    /// (with `watermark` if given) and makes it durable: the watermark reaches the disk after
    /// every answer written before this call.
    pub(super) fn flush(&self, watermark: Option<u64>) -> Result<(), Error> {
        self.spill.sync_data().map_err(io("sync the spill file"))?;
        self.slots.sync_data().map_err(io("sync the slot file"))?;
        self.write_head(watermark)?;
        self.slots.sync_data().map_err(io("sync the slot file"))
    }

    pub(super) fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Bytes allocated on disk (the files are sparse: unwritten buckets take none).
    pub(super) fn size_on_disk(&self) -> u64 {
        [&self.slots, &self.spill]
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum()
    }

    fn stripe(&self, bucket: u64) -> &RwLock<()> {
        &self.stripes[(bucket % STRIPES as u64) as usize]
    }

    fn fresh_nonce(&self) -> u64 {
        let n = self.nonces.fetch_add(1, Ordering::Relaxed);
        // Never 0 (a link of 0 means none).
        (self.nonce_seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
    }

    fn read_slot(&self, bucket: u64, buf: &mut [u8]) -> Result<bool, Error> {
        self.slots
            .read_exact_at(buf, (HEAD_PAGES + bucket) * PAGE as u64)
            .map(|()| page_ok(buf, bucket, None))
            .or_else(|e| match e.kind() {
                // Past the end: a bucket never written.
                std::io::ErrorKind::UnexpectedEof => Ok(false),
                _ => Err(io("read the slot file")(e)),
            })
    }

    fn read_spill(
        &self,
        bucket: u64,
        (page, nonce): (u64, u64),
        buf: &mut [u8],
    ) -> Result<bool, Error> {
        self.spill
            .read_exact_at(buf, page * PAGE as u64)
            .map(|()| page_ok(buf, bucket, Some(nonce)))
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Ok(false),
                _ => Err(io("read the spill file")(e)),
            })
    }

    /// Hands the record stored under `key` (or `None`) to `f`: one `pread` of the bucket's
    /// primary page into a buffer on the stack, more only for a spill chain.
    pub(super) fn get_with<T>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> T,
    ) -> Result<T, Error> {
        let h = hash(key);
        let geometry = self.geometry.read().map_err(poisoned)?;
        let bucket = geometry.bucket(h);
        let _page = self.stripe(bucket).read().map_err(poisoned)?;
        let mut buf = [0u8; PAGE];
        if !self.read_slot(bucket, &mut buf)? {
            return Ok(f(None));
        }
        for _ in 0..MAX_CHAIN {
            if let Some((_, rec)) = records(&buf).find(|(k, _)| *k == key) {
                return Ok(f(Some(rec)));
            }
            let Some(link) = next_link(&buf) else { break };
            if !self.read_spill(bucket, link, &mut buf)? {
                break;
            }
        }
        Ok(f(None))
    }

    /// The chain of `bucket` as nodes (pages that fail their checks end it).
    fn read_chain(&self, bucket: u64) -> Result<Vec<Node>, Error> {
        let mut buf = [0u8; PAGE];
        let mut nodes = vec![Node {
            page: 0,
            nonce: 0,
            recs: Vec::new(),
        }];
        if !self.read_slot(bucket, &mut buf)? {
            return Ok(nodes);
        }
        let own = |buf: &[u8]| {
            records(buf)
                .map(|(k, r)| (k.to_vec(), r.to_vec()))
                .collect::<Vec<_>>()
        };
        nodes[0].recs = own(&buf);
        while nodes.len() < MAX_CHAIN {
            let Some(link) = next_link(&buf) else { break };
            if !self.read_spill(bucket, link, &mut buf)? {
                break;
            }
            nodes.push(Node {
                page: link.0,
                nonce: link.1,
                recs: own(&buf),
            });
        }
        Ok(nodes)
    }

    /// Writes `nodes` as the chain of `bucket`, links included: the last page first, the
    /// primary page last, so a page is on disk before anything links to it.
    fn write_chain(&self, bucket: u64, nodes: &[Node], which: &[bool]) -> Result<(), Error> {
        for i in (0..nodes.len()).rev() {
            if !which[i] {
                continue;
            }
            let next = nodes.get(i + 1).map(|n| (n.page, n.nonce));
            let p = build(bucket, nodes[i].nonce, next, &nodes[i].recs);
            if nodes[i].page == 0 {
                self.slots
                    .write_all_at(&p, (HEAD_PAGES + bucket) * PAGE as u64)
                    .map_err(io("write the slot file"))?;
            } else {
                self.spill
                    .write_all_at(&p, nodes[i].page * PAGE as u64)
                    .map_err(io("write the spill file"))?;
            }
        }
        Ok(())
    }

    fn allocate(&self) -> Result<(u64, u64), Error> {
        let mut a = self.alloc.lock().map_err(poisoned)?;
        let page = match a.free.pop() {
            Some(p) => p,
            None => {
                a.high += 1;
                a.high - 1
            }
        };
        Ok((page, self.fresh_nonce()))
    }

    fn release(&self, pages: impl IntoIterator<Item = u64>) -> Result<(), Error> {
        self.alloc.lock().map_err(poisoned)?.free.extend(pages);
        Ok(())
    }

    /// Stores `rec` under `key`, in place: the page that held the key if it still fits,
    /// else the first with room, else a new spill page. Then splits a bucket if the table
    /// has grown past its fill.
    pub(super) fn put(&self, key: &[u8], rec: &[u8]) -> Result<(), Error> {
        let need = footprint(key, rec);
        if key.len() > usize::from(u8::MAX) || need > CAPACITY {
            return Err(Error::Store(format!(
                "an answer of {} bytes does not fit a {PAGE}-byte page",
                rec.len()
            )));
        }
        {
            let geometry = self.geometry.read().map_err(poisoned)?;
            let bucket = geometry.bucket(hash(key));
            let _page = self.stripe(bucket).write().map_err(poisoned)?;
            let mut nodes = self.read_chain(bucket)?;
            let mut dirty = vec![false; nodes.len()];
            let mut held = None;
            let mut freed = 0usize;
            for (i, n) in nodes.iter_mut().enumerate() {
                let before = n.recs.len();
                n.recs.retain(|(k, r)| {
                    let keep = k.as_slice() != key;
                    if !keep {
                        freed += footprint(k, r);
                    }
                    keep
                });
                if n.recs.len() != before {
                    dirty[i] = true;
                    held.get_or_insert(i);
                }
            }
            let fits = |n: &Node| n.used() + need <= CAPACITY;
            let at = match held.filter(|&i| fits(&nodes[i])) {
                Some(i) => i,
                None => match nodes.iter().position(fits) {
                    Some(i) => i,
                    None => {
                        let (page, nonce) = self.allocate()?;
                        nodes.push(Node {
                            page,
                            nonce,
                            recs: Vec::new(),
                        });
                        dirty.push(true);
                        // Its predecessor links to it.
                        let last = dirty.len() - 2;
                        dirty[last] = true;
                        nodes.len() - 1
                    }
                },
            };
            nodes[at].recs.push((key.to_vec(), rec.to_vec()));
            dirty[at] = true;
            self.write_chain(bucket, &nodes, &dirty)?;
            if held.is_none() {
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            self.bytes.fetch_add(need as u64, Ordering::Relaxed);
            sub_sat(&self.bytes, freed as u64);
        }
        self.grow()
    }

    /// Removes the record under `key`; whether there was one.
    pub(super) fn remove(&self, key: &[u8]) -> Result<bool, Error> {
        let geometry = self.geometry.read().map_err(poisoned)?;
        let bucket = geometry.bucket(hash(key));
        let _page = self.stripe(bucket).write().map_err(poisoned)?;
        let removed = self.retain_bucket(bucket, &mut |k| k != key)?;
        Ok(removed > 0)
    }

    /// Keeps in `bucket` only the records whose key `keep` accepts (the caller holds the
    /// bucket's stripe). Returns how many went.
    fn retain_bucket(
        &self,
        bucket: u64,
        keep: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<usize, Error> {
        let mut nodes = self.read_chain(bucket)?;
        let mut dirty = vec![false; nodes.len()];
        let (mut gone, mut bytes) = (0usize, 0usize);
        for (i, n) in nodes.iter_mut().enumerate() {
            let before = n.recs.len();
            n.recs.retain(|(k, r)| {
                let kept = keep(k);
                if !kept {
                    bytes += footprint(k, r);
                }
                kept
            });
            if n.recs.len() != before {
                dirty[i] = true;
                gone += before - n.recs.len();
            }
        }
        if gone > 0 {
            // Empty spill pages are unlinked (their predecessor rewritten) and freed.
            let mut freed = Vec::new();
            let mut i = 1;
            while i < nodes.len() {
                if nodes[i].recs.is_empty() {
                    freed.push(nodes.remove(i).page);
                    dirty.remove(i);
                    dirty[i - 1] = true;
                } else {
                    i += 1;
                }
            }
            self.write_chain(bucket, &nodes, &dirty)?;
            self.release(freed)?;
            sub_sat(&self.len, gone as u64);
            sub_sat(&self.bytes, bytes as u64);
        }
        Ok(gone)
    }

    /// Keeps only the records whose key `keep` accepts, bucket by bucket. Returns how many
    /// went.
    ///
    /// The geometry is held one bucket at a time (a split may run in between: it only moves
    /// records to a new bucket at the end, visited in turn).
    pub(super) fn retain(&self, keep: &mut dyn FnMut(&[u8]) -> bool) -> Result<usize, Error> {
        let mut gone = 0;
        let mut bucket = 0;
        loop {
            let geometry = self.geometry.read().map_err(poisoned)?;
            if bucket >= geometry.buckets() {
                return Ok(gone);
            }
            let _page = self.stripe(bucket).write().map_err(poisoned)?;
            gone += self.retain_bucket(bucket, keep)?;
            bucket += 1;
        }
    }

    /// Removes every record: both files emptied, the watermark kept (durably).
    pub(super) fn clear(&self) -> Result<usize, Error> {
        let mut geometry = self.geometry.write().map_err(poisoned)?;
        let n = self.len();
        let watermark = self.watermark()?;
        self.spill
            .set_len(0)
            .map_err(io("truncate the spill file"))?;
        self.slots
            .set_len(HEAD_PAGES * PAGE as u64)
            .map_err(io("truncate the slot file"))?;
        *geometry = Geometry { level: 0, split: 0 };
        *self.alloc.lock().map_err(poisoned)? = Alloc {
            high: 1,
            free: Vec::new(),
        };
        self.len.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.spill.sync_all().map_err(io("sync the spill file"))?;
        // Both slots, so the older one cannot bring the old geometry back.
        self.write_head_with(*geometry, watermark)?;
        self.write_head_with(*geometry, watermark)?;
        self.slots.sync_all().map_err(io("sync the slot file"))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Splits buckets while the table is fuller than [`FILL_PERCENT`].
    fn grow(&self) -> Result<(), Error> {
        let over = |g: Geometry| {
            self.bytes.load(Ordering::Relaxed) * 100 > g.buckets() * CAPACITY as u64 * FILL_PERCENT
        };
        if !over(*self.geometry.read().map_err(poisoned)?) {
            return Ok(());
        }
        let mut geometry = self.geometry.write().map_err(poisoned)?;
        // At most a few per put: each split makes room for about one more record.
        for _ in 0..4 {
            if !over(*geometry) {
                break;
            }
            *geometry = self.split(*geometry)?;
        }
        Ok(())
    }

    /// Splits bucket `g.split` into itself and `g.split + (BASE << g.level)` (the caller
    /// holds the geometry exclusively: no reader or writer is inside the table). The new
    /// bucket is written first, then the header naming it, then the old bucket's chain on
    /// fresh spill pages with its primary page last: a crash at any point leaves every
    /// record reachable under the geometry the header names (at worst a stale copy in the
    /// old bucket, where no lookup of its key goes).
    fn split(&self, g: Geometry) -> Result<Geometry, Error> {
        let old = g.split;
        let new = old + (BASE << g.level);
        let next = if g.split + 1 == BASE << g.level {
            Geometry {
                level: g.level + 1,
                split: 0,
            }
        } else {
            Geometry {
                level: g.level,
                split: g.split + 1,
            }
        };
        let chain = self.read_chain(old)?;
        let old_pages: Vec<u64> = chain.iter().skip(1).map(|n| n.page).collect();
        let (mut stay, mut moved) = (Vec::new(), Vec::new());
        for (k, r) in chain.into_iter().flat_map(|n| n.recs) {
            let h = hash(&k);
            if g.bucket(h) != old {
                // A stale copy that a crash between an earlier split's header and its
                // rewrite of this bucket left here (no lookup of its key comes here): dropped.
                continue;
            }
            if next.bucket(h) == new {
                moved.push((k, r));
            } else {
                stay.push((k, r));
            }
        }
        let moved = self.pack(moved)?;
        self.write_chain(new, &moved, &vec![true; moved.len()])?;
        self.write_head_with(next, None)?;
        let stay = self.pack(stay)?;
        self.write_chain(old, &stay, &vec![true; stay.len()])?;
        self.release(old_pages)?;
        Ok(next)
    }

    /// Packs records into a primary page and as many fresh spill pages as needed.
    fn pack(&self, recs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<Node>, Error> {
        let mut nodes = vec![Node {
            page: 0,
            nonce: 0,
            recs: Vec::new(),
        }];
        for (k, r) in recs {
            let need = footprint(&k, &r);
            let last = nodes.len() - 1;
            if nodes[last].used() + need > CAPACITY {
                let (page, nonce) = self.allocate()?;
                nodes.push(Node {
                    page,
                    nonce,
                    recs: Vec::new(),
                });
            }
            let last = nodes.len() - 1;
            nodes[last].recs.push((k, r));
        }
        Ok(nodes)
    }

    /// Every record, bucket by bucket in file order: primary pages read `SCAN_CHUNK` at a
    /// time (one `pread` of 1 MiB), spill chains followed; each bucket is seen in one state
    /// (its page checked, a chain read under the bucket's lock). No lock is held while `each`
    /// runs (it may write to the table); a record that a concurrent split moves to the new
    /// bucket at the end may be seen twice.
    pub(super) fn for_each(&self, each: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), Error> {
        let mut chunk = vec![0u8; SCAN_CHUNK as usize * PAGE];
        let mut spill: Vec<u8> = Vec::new();
        let mut start = 0u64;
        loop {
            // (bucket, offset in chunk or spill buffer, from spill)
            let mut pages: Vec<(u64, bool, usize)> = Vec::new();
            spill.clear();
            let seen = {
                let geometry = self.geometry.read().map_err(poisoned)?;
                let end = geometry.buckets();
                if start >= end {
                    return Ok(());
                }
                let n = (end - start).min(SCAN_CHUNK);
                let want = n as usize * PAGE;
                let got = read_up_to(
                    &self.slots,
                    &mut chunk[..want],
                    (HEAD_PAGES + start) * PAGE as u64,
                )
                .map_err(io("read the slot file"))?;
                chunk[got..want].fill(0);
                for i in 0..n as usize {
                    let bucket = start + i as u64;
                    let at = i * PAGE;
                    if !page_ok(&chunk[at..at + PAGE], bucket, None) {
                        // Torn by a concurrent write? Read again under the bucket's lock.
                        let _page = self.stripe(bucket).read().map_err(poisoned)?;
                        if !self.read_slot(bucket, &mut chunk[at..at + PAGE])? {
                            continue;
                        }
                    }
                    if next_link(&chunk[at..at + PAGE]).is_none() {
                        // One page: read whole (checked), a consistent state of the bucket.
                        pages.push((bucket, false, at));
                        continue;
                    }
                    // A chain: read again, page and chain, under the bucket's lock.
                    let _page = self.stripe(bucket).read().map_err(poisoned)?;
                    if !self.read_slot(bucket, &mut chunk[at..at + PAGE])? {
                        continue;
                    }
                    pages.push((bucket, false, at));
                    let mut link = next_link(&chunk[at..at + PAGE]);
                    for _ in 0..MAX_CHAIN {
                        let Some(l) = link else { break };
                        let off = spill.len();
                        spill.resize(off + PAGE, 0);
                        if !self.read_spill(bucket, l, &mut spill[off..])? {
                            spill.truncate(off);
                            break;
                        }
                        pages.push((bucket, true, off));
                        link = next_link(&spill[off..off + PAGE]);
                    }
                }
                start += n;
                *geometry
            };
            for (bucket, from_spill, at) in pages {
                let p = if from_spill {
                    &spill[at..at + PAGE]
                } else {
                    &chunk[at..at + PAGE]
                };
                // (A stale copy a crash left in the bucket its key moved out of is skipped.)
                for (k, r) in records(p).filter(|(k, _)| seen.bucket(hash(k)) == bucket) {
                    if !each(k, r) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Flips a byte of bucket `bucket`'s primary page on disk (tests of damage).
    #[cfg(test)]
    pub(super) fn damage(&self, key: &[u8]) {
        let bucket = self.geometry.read().unwrap().bucket(hash(key));
        let at = (HEAD_PAGES + bucket) * PAGE as u64 + PAGE as u64 / 2;
        let mut b = [0u8; 1];
        self.slots.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x20;
        self.slots.write_all_at(&b, at).unwrap();
    }

    #[cfg(test)]
    pub(super) fn buckets(&self) -> u64 {
        self.geometry.read().unwrap().buckets()
    }
}

/// Reads what there is of `buf.len()` bytes at `at` (a file shorter than that: the rest is
/// never-written buckets). Returns the bytes read.
fn read_up_to(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Counters restored from a header can lag the records after a crash: never below zero.
fn sub_sat(c: &AtomicU64, n: u64) {
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

fn poisoned<T>(_: T) -> Error {
    Error::Store("a lock of the answer store is poisoned".into())
}

/// Creates or opens a file read-write, 0600, without access-time updates where allowed.
///
/// `O_NOATIME`: every answer served is a `pread`, and each one otherwise asks the file system
/// whether the access time is due (`touch_atime`, ~0.08 µs of a ~1.3 µs read, measured under
/// a uniform load at 10^6). The flag is refused (EPERM) to a process that does not own the
/// file; the file is then opened without it.
fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags: i32| {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        options.mode(0o600).custom_flags(flags);
        options.open(path)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => open(0),
        other => other,
    }
}

/// A header slot: `magic [16] · crc32 · seq u64 · watermark flag u8 · watermark u64 · level
/// u32 · split u64 · spill high-water u64 · len u64 · bytes u64 · free count u32 · free
/// pages u64…` (little-endian; the checksum covers the slot after itself).
struct HeadImage {
    seq: u64,
    watermark: Option<u64>,
    geometry: Geometry,
    high: u64,
    len: u64,
    bytes: u64,
    free: Vec<u64>,
}

impl HeadImage {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEAD_SLOT as usize * PAGE);
        b.extend_from_slice(HEAD_MAGIC);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.push(u8::from(self.watermark.is_some()));
        b.extend_from_slice(&self.watermark.unwrap_or(0).to_le_bytes());
        b.extend_from_slice(&self.geometry.level.to_le_bytes());
        b.extend_from_slice(&self.geometry.split.to_le_bytes());
        b.extend_from_slice(&self.high.to_le_bytes());
        b.extend_from_slice(&self.len.to_le_bytes());
        b.extend_from_slice(&self.bytes.to_le_bytes());
        let kept = self.free.len().min(FREE_KEPT);
        b.extend_from_slice(&(kept as u32).to_le_bytes());
        for p in &self.free[..kept] {
            b.extend_from_slice(&p.to_le_bytes());
        }
        b.resize(HEAD_SLOT as usize * PAGE, 0);
        let crc = crc32fast::hash(&b[20..]);
        b[16..20].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<HeadImage> {
        if b.len() != HEAD_SLOT as usize * PAGE
            || &b[..16] != HEAD_MAGIC
            || u32::from_le_bytes(b[16..20].try_into().ok()?) != crc32fast::hash(&b[20..])
        {
            return None;
        }
        let level = u32::from_le_bytes(b[37..41].try_into().ok()?);
        let geometry = Geometry {
            level,
            split: u64_at(b, 41),
        };
        if level > 40 || geometry.split >= BASE << level {
            return None;
        }
        let kept = usize::try_from(u32::from_le_bytes(b[73..77].try_into().ok()?)).ok()?;
        if kept > FREE_KEPT {
            return None;
        }
        Some(HeadImage {
            seq: u64_at(b, 20),
            watermark: (b[28] == 1).then(|| u64_at(b, 29)),
            geometry,
            high: u64_at(b, 49),
            len: u64_at(b, 57),
            bytes: u64_at(b, 65),
            free: (0..kept).map(|i| u64_at(b, HEAD_FIXED + 8 * i)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_a_damaged_one_is_refused() {
        let h = HeadImage {
            seq: 9,
            watermark: Some(77),
            geometry: Geometry { level: 3, split: 5 },
            high: 12,
            len: 1000,
            bytes: 123_456,
            free: vec![3, 4, 11],
        };
        let mut b = h.encode();
        let d = HeadImage::decode(&b).unwrap();
        assert_eq!(
            (
                d.seq,
                d.watermark,
                d.geometry,
                d.high,
                d.len,
                d.bytes,
                d.free
            ),
            (
                9,
                Some(77),
                Geometry { level: 3, split: 5 },
                12,
                1000,
                123_456,
                vec![3, 4, 11]
            )
        );
        b[100] ^= 1;
        assert!(HeadImage::decode(&b).is_none());
    }

    /// `n` keys that fall into bucket `b` of a table of `BASE` buckets.
    fn keys_in(b: u64, n: usize) -> Vec<Vec<u8>> {
        (0u32..)
            .map(|i| [&b"k"[..], &i.to_be_bytes()].concat())
            .filter(|k| hash(k) % BASE == b)
            .take(n)
            .collect()
    }

    fn open(dir: &Path) -> Slots {
        Slots::open(&dir.join("s"), &dir.join("p"))
            .map_err(|_| "open")
            .unwrap()
    }

    /// Four 1.2 KB records in one bucket: its primary page and one spill page.
    fn fill(t: &Slots, keys: &[Vec<u8>]) {
        for k in keys {
            t.put(k, &[k[4]; 1_200]).unwrap();
        }
    }

    fn all_there(t: &Slots, keys: &[Vec<u8>]) -> bool {
        keys.iter()
            .all(|k| t.get_with(k, |v| v == Some(&[k[4]; 1_200][..])).unwrap())
    }

    #[test]
    fn after_a_crash_no_spill_page_a_chain_links_is_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (keys_in(0, 4), keys_in(1, 4), keys_in(2, 4));
        // Pages allocated after the last header: the file's length says they are taken.
        {
            let t = open(dir.path());
            t.flush(Some(1)).unwrap();
            fill(&t, &a);
            assert_eq!(t.alloc.lock().unwrap().high, 2);
        }
        {
            let t = open(dir.path());
            fill(&t, &b);
            assert!(all_there(&t, &a) && all_there(&t, &b));
            // A page the header lists as free, taken again since (no header after).
            assert_eq!(t.retain(&mut |k| !a.contains(&k.to_vec())).unwrap(), 4);
            t.flush(None).unwrap();
            assert_eq!(t.alloc.lock().unwrap().free, [1]);
            fill(&t, &c);
            assert!(t.alloc.lock().unwrap().free.is_empty());
        }
        let t = open(dir.path());
        assert!(t.alloc.lock().unwrap().free.is_empty());
        fill(&t, &a);
        assert!(all_there(&t, &a) && all_there(&t, &b) && all_there(&t, &c));
        assert_eq!(t.buckets(), BASE, "no split in this test");
    }

    #[test]
    fn a_split_drops_a_stale_copy_left_in_a_bucket_its_key_no_longer_hashes_to() {
        let dir = tempfile::tempdir().unwrap();
        let t = open(dir.path());
        let (mine, foreign) = (keys_in(0, 1).remove(0), keys_in(5, 1).remove(0));
        let node = Node {
            page: 0,
            nonce: 0,
            recs: vec![(mine.clone(), vec![1; 10]), (foreign.clone(), vec![2; 10])],
        };
        t.write_chain(0, &[node], &[true]).unwrap();
        let g = *t.geometry.read().unwrap();
        let next = t.split(g).unwrap();
        let keys = |b| -> Vec<Vec<u8>> {
            t.read_chain(b)
                .unwrap()
                .into_iter()
                .flat_map(|n| n.recs)
                .map(|(k, _)| k)
                .collect()
        };
        let (stay, moved) = (keys(0), keys(BASE));
        assert!(!stay.contains(&foreign) && !moved.contains(&foreign));
        assert!(stay.contains(&mine) != moved.contains(&mine));
        assert_eq!(next, Geometry { level: 0, split: 1 });
    }

    #[test]
    fn linear_hashing_sends_a_key_to_one_of_two_buckets_across_a_split() {
        let g = Geometry { level: 0, split: 3 };
        for h in [0u64, 3, 64 + 3, 5, 64 + 5, 127, 1 << 40] {
            let b = g.bucket(h);
            assert!(b < g.buckets());
            // Unsplit buckets answer mod 64; split ones mod 128.
            let want = if h % 64 < 3 { h % 128 } else { h % 64 };
            assert_eq!(b, want);
        }
    }
}
