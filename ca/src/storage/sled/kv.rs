//! The sled engine's key-value core: ordered tables in sled 0.34 (the requested engine;
//! `crate-notes.md` §11 explains its limits), a write-ahead journal in front of it, group
//! commit, snapshots and recovery. It knows tables and bytes only; what the keys and values
//! mean is in [`super::layout`], and the domain calls in [`super`].
//!
//! **Durability: a journal in front of sled.** sled 0.34 can fail to reopen after a process is
//! killed at the wrong moment (our crash test met "Read corrupted data" about once in 300
//! SIGKILLs; sled issues #1533, #1527). So [`Kv`] keeps its own write-ahead journal
//! (`journal` beside the `sled/` directory): every committed batch of transactions is
//! appended as one checksummed record and fsynced **before** sled sees it; then the batch is
//! applied to sled, its last write (in `meta`) recording the sequence number of the journal
//! record, and only then does [`Kv::transact`] return. Readers are kept out while a batch
//! is applied, so they see it entirely or not at all. On open, records sled has not seen are replayed (a
//! replay is idempotent: records hold the values written, not increments); if sled does not
//! open, or is ahead of the journal, it is set aside (`sled.corrupt-<time>`) and rebuilt from
//! the snapshot and the journal. A torn last record — a crash during its append, before any acknowledgement —
//! is cut off. sled itself is flushed every few seconds: its flushes only bound the replay.
//!
//! Transactions are optimistic and group-committed. A transaction body runs against the
//! current state, its reads remembered and its writes buffered; the store's committing thread
//! takes every waiting transaction, checks that each one's reads
//! still hold (counting the batch's earlier writes), stages the valid ones in order, runs
//! their deferred writes (the audit chain's links, the serial counters: writes that depend on
//! the batch's order, so that concurrent transactions do not conflict on them), and writes one journal record with one fsync for the
//! whole batch; a transaction whose reads changed runs again. Commit order and journal order
//! are the same, so replaying the journal reproduces the store exactly. The journal is
//! append-only until [`Kv::compact`] replaces the records a snapshot holds.
//!
//! **The journal is preallocated** (issue #14). An fdatasync after an append that grows the
//! file must also commit the inode's new size through ext4's own journal; one after a write
//! into blocks that are already allocated and written only writes the data (a 4 KB write on
//! this project's test VM: ~180 µs appending, ~87 µs overwriting; PostgreSQL zero-fills its
//! WAL segments for the same reason). So the file is kept **zero-filled ahead of its logical
//! end** — real zeros, written and `sync_all`ed before any record goes there: `fallocate`
//! would leave *unwritten* extents, whose first write is again a metadata change committed by
//! the fsync — and records are written with positional writes at the tracked logical end
//! (`Journal::end`), not `O_APPEND`. A helper thread (`journal-prealloc`) does the filling
//! off the commit path: once fewer than half a chunk is left ahead, it zero-fills one more
//! chunk ([`prealloc_chunk`]: a quarter of the journal's size, 1–64 MiB, so a small store —
//! a test's, a one-shot command's — costs 1 MiB and a busy one refills rarely). The committer
//! waits for a fill only if its record would reach into the region being filled; a record
//! that reaches past everything filled is simply written there (the file grows as before).
//! Zeros read as the end of the journal (no record starts with four zero bytes), so the
//! preallocated slack needs no marker; on open, anything but zeros after the last whole
//! record (a torn record, or one half-written past a torn one) is cut off, and the slack is
//! refilled. The file's size on disk is the logical journal plus up to a chunk of zeros: what
//! the store reports ([`Kv::journal_bytes`], compaction's figures) is the logical end.
//!
//! Record: `magic "JPKJ" · seq u64 · length u32 · SHA-256[..8] of the payload · payload`;
//! payload: `count u32 · (table u8 · op u8 (1 put, 2 delete) · key len u32 · key · value len u32 · value)*`.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::storage::{CommitStats, Compaction};

/// The tables of the store (their keys and values: [`super::layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Certs,
    ByHolder,
    Status,
    Revoked,
    Keys,
    Residents,
    Scheduled,
    Meta,
    Audit,
    Crl,
    /// Platform operators and service providers.
    Operators,
    /// Holders' consents to four-attribute queries.
    Consents,
    /// Who read which holder's data (disclosed to the holder).
    Access,
    /// Public keys refused forever (revoked for keyCompromise), by SPKI SHA-256. Appended
    /// last: a table's index is written into journal records.
    BlockedKeys,
    /// The CA's officers (appended after BlockedKeys, for the same reason).
    Officers,
    /// Every change of a certificate's status (issue #18), appended for the same reason.
    StatusLog,
    /// The register's identity index ([`crate::storage::identity_key`] then the resident id
    /// → empty), appended for the same reason.
    ByIdentity,
}

impl Table {
    pub(crate) const ALL: [Table; 17] = [
        Table::Certs,
        Table::ByHolder,
        Table::Status,
        Table::Revoked,
        Table::Keys,
        Table::Residents,
        Table::Scheduled,
        Table::Meta,
        Table::Audit,
        Table::Crl,
        Table::Operators,
        Table::Consents,
        Table::Access,
        Table::BlockedKeys,
        Table::Officers,
        Table::StatusLog,
        Table::ByIdentity,
    ];

    fn name(self) -> &'static str {
        match self {
            Table::Certs => "certs",
            Table::ByHolder => "by_holder",
            Table::Status => "status",
            Table::Revoked => "revoked",
            Table::Keys => "keys",
            Table::Residents => "residents",
            Table::Scheduled => "scheduled",
            Table::Meta => "meta",
            Table::Audit => "audit",
            Table::Crl => "crl",
            Table::Operators => "operators",
            Table::Consents => "consents",
            Table::Access => "access",
            Table::BlockedKeys => "blocked_keys",
            Table::Officers => "officers",
            Table::StatusLog => "status_log",
            Table::ByIdentity => "by_identity",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(i: u8) -> Option<Table> {
        Table::ALL.get(i as usize).copied()
    }
}

/// Why a transaction body stopped: a domain error (the transaction is rolled back and the
/// error returned), or a store failure.
pub(crate) type TxResult<T> = std::result::Result<T, Error>;

/// A write resolved by the committer against the batch's state, in commit order: the audit
/// chain's links and the serial counters, which every transaction would otherwise read and
/// so conflict on.
pub(crate) type Deferred = Box<dyn Fn(&dyn Txn) -> TxResult<()> + Send + Sync>;

/// Reads and writes inside one transaction. Writes become visible, all together, when the
/// body returns `Ok`.
pub(crate) trait Txn {
    fn get(&self, t: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>>;
    fn insert(&self, t: Table, key: &[u8], value: &[u8]) -> TxResult<()>;
    fn remove(&self, t: Table, key: &[u8]) -> TxResult<()>;
    /// Runs `write` at commit, after the batch's earlier transactions (in the committer).
    fn defer(&self, write: Deferred) -> TxResult<()>;
}

/// A key-value pair from a scan.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put(Table, Vec<u8>, Vec<u8>),
    Del(Table, Vec<u8>),
}

const MAGIC: &[u8; 4] = b"JPKJ";
/// The journal file in a store directory.
const JOURNAL: &str = "journal";
/// The snapshot file of a compacted store, and its name while being written.
const SNAPSHOT: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";
/// The shortened journal while a compaction writes it.
const JOURNAL_TMP: &str = "journal.tmp";
/// Where a lost or damaged sled is rebuilt before it is put in place.
const SLED_REBUILDING: &str = "sled.rebuilding";
const HEADER: usize = 4 + 8 + 4 + 8;
/// The meta key under which sled records the last journal sequence it contains.
const APPLIED: &[u8] = b"journal_seq";
/// Largest record accepted when reading (a corrupt length must not allocate gigabytes).
const MAX_RECORD: usize = 64 << 20;
/// The smallest and largest chunk the journal is zero-filled by (see the module docs).
const PREALLOC_MIN: u64 = 1 << 20;
const PREALLOC_MAX: u64 = 64 << 20;
/// Zeros are written in pieces of this size (one buffer, and a closing store stops a fill
/// between two of them).
const ZERO_PIECE: usize = 1 << 20;

/// How much the journal is zero-filled by at a time when its logical end is `end`: a
/// quarter of the journal, at least 1 MiB and at most 64 MiB, in whole MiB. Refilled when
/// fewer than half of it is left ahead of the end. A fill costs the disk its bytes once and
/// the committer nothing (it runs beside it); a quarter of the journal keeps the number of
/// fills logarithmic in a store's life while a test's or a one-shot command's fresh store
/// writes 1 MiB of zeros, not 64.
fn prealloc_chunk(end: u64) -> u64 {
    (end / 4)
        .clamp(PREALLOC_MIN, PREALLOC_MAX)
        .next_multiple_of(1 << 20)
}

/// Writes zeros over `[from, to)` of `file`, then `sync_all` (the file's size changes):
/// only then may records be written there. Stops early, unsynced, if `stop` says so (the
/// store is closing): the zeros already written are harmless, as zeros read as the end.
fn zero_fill(file: &File, from: u64, to: u64, stop: impl Fn() -> bool) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; ZERO_PIECE];
    let mut at = from;
    while at < to {
        if stop() {
            return Err(std::io::Error::other("the store is closing"));
        }
        // `to - at` is below ZERO_PIECE here when it does not fit a usize
        let n = usize::try_from(to - at).map_or(ZERO_PIECE, |left| left.min(ZERO_PIECE));
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

/// Whether `[from, to)` of `file` holds zeros only: the slack after the journal's last
/// record, checked on open (anything else there is cut off).
fn only_zeros(file: &File, from: u64, to: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; ZERO_PIECE];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(ZERO_PIECE, |left| left.min(ZERO_PIECE));
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(payload);
    let mut c = [0u8; 8];
    c.copy_from_slice(&d[..8]);
    c
}

fn encode_record(seq: u64, ops: &[Op]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(256);
    payload.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        let (t, code, key, value): (Table, u8, &[u8], &[u8]) = match op {
            Op::Put(t, k, v) => (*t, 1, k, v),
            Op::Del(t, k) => (*t, 2, k, &[]),
        };
        payload.push(t.index() as u8);
        payload.push(code);
        payload.extend_from_slice(&(key.len() as u32).to_be_bytes());
        payload.extend_from_slice(key);
        payload.extend_from_slice(&(value.len() as u32).to_be_bytes());
        payload.extend_from_slice(value);
    }
    let mut rec = Vec::with_capacity(HEADER + payload.len());
    rec.extend_from_slice(MAGIC);
    rec.extend_from_slice(&seq.to_be_bytes());
    rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    rec.extend_from_slice(&checksum(&payload));
    rec.extend_from_slice(&payload);
    rec
}

fn decode_payload(p: &[u8]) -> Option<Vec<Op>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = p.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let u32_at =
        |b: &[u8]| -> Option<usize> { Some(u32::from_be_bytes(b.try_into().ok()?) as usize) };
    let count = u32_at(take(4)?)?;
    let mut ops = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let t = Table::from_index(take(1)?[0])?;
        let code = take(1)?[0];
        let klen = u32_at(take(4)?)?;
        let key = take(klen)?.to_vec();
        let vlen = u32_at(take(4)?)?;
        let value = take(vlen)?.to_vec();
        ops.push(match code {
            1 => Op::Put(t, key, value),
            // a removal carries no value: one that does was not written by `encode_record`
            2 if value.is_empty() => Op::Del(t, key),
            _ => return None,
        });
    }
    (at == p.len()).then_some(ops)
}

/// A journal record: its sequence number and write set.
type Record = (u64, Vec<Op>);

/// A value read by a transaction body, kept to validate at commit.
type ReadValue = (Table, Vec<u8>, Option<Vec<u8>>);

/// Writes in order, one per key (a key written again keeps only its last value, in its first
/// place), with where each key's write is, so that whoever writes can read its own writes.
/// A transaction body's buffer and the committer's batch are both one.
#[derive(Default)]
struct WriteSet {
    ops: Vec<Op>,
    at: std::collections::HashMap<(usize, Vec<u8>), usize>,
}

impl WriteSet {
    /// The set's own write of `key`, if any: `Some(None)` for a removal.
    fn get(&self, t: Table, key: &[u8]) -> Option<Option<&[u8]>> {
        let i = *self.at.get(&(t.index(), key.to_vec()))?;
        Some(match &self.ops[i] {
            Op::Put(_, _, v) => Some(v.as_slice()),
            Op::Del(..) => None,
        })
    }

    fn put(&mut self, t: Table, key: &[u8], value: &[u8]) {
        self.push(Op::Put(t, key.to_vec(), value.to_vec()));
    }

    fn del(&mut self, t: Table, key: &[u8]) {
        self.push(Op::Del(t, key.to_vec()));
    }

    fn push(&mut self, op: Op) {
        let (t, key) = match &op {
            Op::Put(t, k, _) | Op::Del(t, k) => (t.index(), k.clone()),
        };
        match self.at.entry((t, key)) {
            std::collections::hash_map::Entry::Occupied(e) => self.ops[*e.get()] = op,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.ops.len());
                self.ops.push(op);
            }
        }
    }
}

/// Reads whole records from the start of `file`, giving each to `each`; returns the offset
/// where the valid records end (a torn or damaged record, or the end of the file).
fn read_records<F: Read + Seek>(
    file: &mut F,
    mut each: impl FnMut(u64, Vec<Op>) -> Result<()>,
) -> Result<u64> {
    file.seek(SeekFrom::Start(0))
        .map_err(Error::io("read the journal"))?;
    let mut r = BufReader::with_capacity(1 << 20, &mut *file);
    let mut good_end = 0u64;
    let mut header = [0u8; HEADER];
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Error::io("read the journal")(e)),
        }
        let seq = u64::from_be_bytes(header[4..12].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(header[12..16].try_into().unwrap_or_default()) as usize;
        if &header[..4] != MAGIC || len > MAX_RECORD {
            break;
        }
        let mut payload = vec![0u8; len];
        if r.read_exact(&mut payload).is_err() || checksum(&payload) != header[16..24] {
            break;
        }
        let Some(ops) = decode_payload(&payload) else {
            break;
        };
        each(seq, ops)?;
        good_end += (HEADER + len) as u64;
    }
    Ok(good_end)
}

/// Reads every whole record of the journal; returns them with the offset where the valid
/// journal ends.
/// The store is the snapshot (position `base`, 0 without one) plus the journal's records,
/// which must follow on from it: `(base, start, last)`: the snapshot's position, the
/// journal's first record and the store's position.
fn store_bounds(dir: &Path, snapshot: &Path, records: &[Record]) -> Result<(u64, u64, u64)> {
    let base = snapshot_seq(snapshot)?.unwrap_or(0);
    // No store reaches 2^64 - 1 transactions: such a position is damage, and `+ 1` below
    // would overflow on it.
    if base == u64::MAX || records.last().is_some_and(|(s, _)| *s == u64::MAX) {
        return Err(Error::Store(format!(
            "{}: a record at position 2^64 - 1: the journal or snapshot is damaged",
            dir.display()
        )));
    }
    let start = records.first().map_or(base + 1, |(s, _)| *s);
    if start > base + 1 {
        return Err(Error::Store(format!(
            "the journal starts at record {start} but the snapshot holds the store only up to {base}: records are missing"
        )));
    }
    Ok((
        base,
        start,
        records.last().map_or(base, |(s, _)| *s).max(base),
    ))
}

fn read_journal<F: Read + Seek>(file: &mut F) -> Result<(Vec<Record>, u64)> {
    let mut records: Vec<Record> = Vec::new();
    let good_end = read_records(file, |seq, ops| {
        if let Some((last, _)) = records.last() {
            // checked: a damaged journal may hold u64::MAX (found by the `journal` fuzz target)
            if last.checked_add(1) != Some(seq) {
                return Err(Error::Store(format!(
                    "journal sequence jumps from {last} to {seq}"
                )));
            }
        }
        records.push((seq, ops));
        Ok(())
    })?;
    Ok((records, good_end))
}

/// The fuzz targets' entry point (`fuzz/`, and the seed replay in `tests/fuzz_seeds.rs`):
/// reads `bytes` as a journal or snapshot file is read on open, then as the payload of a
/// record with a valid header (so that inputs get past the checksum to the payload decoder).
/// Panics if what was read does not encode back to the bytes it was read from. Returns how
/// many records `bytes` holds read as a journal or, if more, as a snapshot.
#[doc(hidden)]
pub fn fuzz_read_records(bytes: &[u8]) -> usize {
    let reencode = |records: &[Record]| -> Vec<u8> {
        records
            .iter()
            .flat_map(|(seq, ops)| encode_record(*seq, ops))
            .collect()
    };
    // as a snapshot: every record at the first one's position (load_snapshot's rule)
    let mut snapshot = (None, 0usize);
    let snapshot_read = read_records(&mut std::io::Cursor::new(bytes), |seq, _| {
        if *snapshot.0.get_or_insert(seq) != seq {
            return Err(Error::Store("a snapshot of two positions".into()));
        }
        snapshot.1 += 1;
        Ok(())
    });
    if snapshot_read.is_err() {
        // refused as a whole, as load_snapshot refuses it
        snapshot.1 = 0;
    }
    let (records, good_end) = match read_journal(&mut std::io::Cursor::new(bytes)) {
        Ok(r) => r,
        // a sequence jump: refused as a whole
        Err(_) => return snapshot.1,
    };
    let good_end = usize::try_from(good_end).unwrap_or(usize::MAX);
    assert!(good_end <= bytes.len(), "valid records end past the input");
    assert_eq!(
        reencode(&records),
        bytes[..good_end],
        "records do not round-trip"
    );
    let mut framed = Vec::with_capacity(HEADER + bytes.len());
    framed.extend_from_slice(MAGIC);
    framed.extend_from_slice(&7u64.to_be_bytes());
    framed.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&checksum(bytes));
    framed.extend_from_slice(bytes);
    if let Ok((inner, end)) = read_journal(&mut std::io::Cursor::new(&framed)) {
        if let Some((seq, ops)) = inner.first() {
            assert_eq!(*seq, 7);
            assert_eq!(end as usize, framed.len());
            assert_eq!(encode_record(7, ops), framed, "payload does not round-trip");
        } else {
            assert!(decode_payload(bytes).is_none());
        }
    }
    records.len().max(snapshot.1)
}

/// The journal position a snapshot holds the store at (from its first record), if there is a
/// snapshot.
fn snapshot_seq(path: &Path) -> Result<Option<u64>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("open {}", path.display()))(e)),
    };
    let mut header = [0u8; HEADER];
    f.read_exact(&mut header)
        .map_err(Error::io(format!("read {}", path.display())))?;
    if &header[..4] != MAGIC {
        return Err(Error::Store(format!(
            "{} is not a store snapshot",
            path.display()
        )));
    }
    Ok(Some(u64::from_be_bytes(
        header[4..12].try_into().unwrap_or_default(),
    )))
}

/// Loads a snapshot into (empty) sled trees: every record must be whole and hold position
/// `seq`; sled's journal position is then set to `seq`.
fn load_snapshot(path: &Path, seq: u64, trees: &[sled::Tree]) -> Result<()> {
    let mut f = File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
    let end = read_records(&mut f, |s, ops| {
        if s != seq {
            return Err(Error::Store(format!(
                "{}: a record of position {s} in a snapshot of position {seq}",
                path.display()
            )));
        }
        apply_ops(trees, &ops)
    })?;
    let len = f
        .metadata()
        .map_err(Error::io(format!("stat {}", path.display())))?
        .len();
    if end != len {
        return Err(Error::Store(format!(
            "{} is damaged at offset {end}: cannot rebuild the store from it",
            path.display()
        )));
    }
    trees[Table::Meta.index()].insert(APPLIED, &seq.to_be_bytes())?;
    Ok(())
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(format!("sync {}", dir.display())))
}

/// Creates (or truncates) a file readable by its owner only.
fn private_file(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(format!("create {}", path.display())))
}

/// [`CommitStats`] as the committing thread updates them.
#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    transactions: AtomicU64,
    stage_us: AtomicU64,
    sync_us: AtomicU64,
    apply_us: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, since: Instant) {
        c.fetch_add(
            u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn snapshot(&self) -> CommitStats {
        CommitStats {
            batches: self.batches.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            stage_us: self.stage_us.load(Ordering::Relaxed),
            sync_us: self.sync_us.load(Ordering::Relaxed),
            apply_us: self.apply_us.load(Ordering::Relaxed),
        }
    }
}

struct Journal {
    /// Shared with the preallocating thread, which writes zeros beyond [`Ahead::allocated`]
    /// (positional writes on both sides: the file offset is not used).
    file: Arc<File>,
    next_seq: u64,
    /// The logical end: where the valid records end and the next one is written. The file
    /// goes on with zeros after it (see the module docs).
    end: u64,
}

/// The journal's preallocation, shared by the committer and the preallocating thread.
#[derive(Default)]
struct Ahead {
    /// The file's bytes up to here are records or zeros already synced (or a record the
    /// committer wrote past the zeros): the committer writes below it without waiting, the
    /// preallocating thread only at and after it.
    allocated: u64,
    /// A fill of the current file is queued or running: the committer must not write past
    /// `allocated` until it is done.
    filling: bool,
    /// Bumped when a compaction puts a new journal file in place: a fill of the old file
    /// finishing later changes nothing.
    generation: u64,
    /// The fill for the preallocating thread to run next.
    request: Option<Fill>,
    /// Set when the store closes (after the committer has stopped).
    closed: bool,
}

/// Zeros to write: `[from, to)` of `file`, for journal generation `generation`.
struct Fill {
    file: Arc<File>,
    from: u64,
    to: u64,
    generation: u64,
}

/// sled behind the engine, with the write-ahead journal described in the module docs.
pub(crate) struct Kv {
    shared: Arc<Shared>,
    /// The committing thread (see [`Shared::commit_loop`]); joined on drop.
    committer: Option<std::thread::JoinHandle<()>>,
    /// The thread that zero-fills the journal ahead of its end ([`Shared::prealloc_loop`]);
    /// joined on drop, after the committer.
    preallocator: Option<std::thread::JoinHandle<()>>,
}

/// Transactions waiting for the committing thread.
#[derive(Default)]
struct Queue {
    waiting: Vec<Submission>,
    /// Set when the store closes: the committer finishes what is queued and stops.
    closed: bool,
}

/// What the committing thread and the store's users share.
struct Shared {
    /// The store's directory.
    dir: PathBuf,
    /// Held for the whole of a compaction: two at once would write the same temporary files
    /// and copy the journal from stale offsets.
    compacting: Mutex<()>,
    /// What sled was opened with (its page cache: [`SledOptions`]).
    config: sled::Config,
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Serialises commit + append, so that journal order is commit order.
    journal: Mutex<Journal>,
    /// The journal's preallocation (see the module docs), and its signal: a fill was
    /// requested, finished, or the store closes.
    ahead: Mutex<Ahead>,
    ahead_changed: Condvar,
    queue: Mutex<Queue>,
    /// Signalled when a transaction is queued or the store closes.
    queued: Condvar,
    /// Taken for writing while a journaled batch is applied to sled's tables, for reading
    /// around every read: a reader sees a batch entirely or not at all.
    visible: RwLock<()>,
    /// Set when a journal write failed, or a journaled batch could not be applied to sled.
    poisoned: std::sync::atomic::AtomicBool,
    /// Opened by [`Kv::open_read_only`]: every write is refused.
    read_only: bool,
    counters: Counters,
    /// Kept open for its exclusive lock on the directory (the journal, read-only, when
    /// opened read-only: no lock is taken).
    _lock: File,
}

/// Opens a sled directory that this process may have just closed (a reopened store, a rebuilt
/// one put in place). sled's background threads can hold
/// the rebuilt database's file lock for a moment after it is dropped (seen under load:
/// `could not acquire lock`), so a lock refusal is retried for up to two seconds.
fn reopen_sled(dir: &Path, options: &SledOptions) -> std::result::Result<Opened, sled::Error> {
    let mut tries = 0;
    loop {
        match open_sled(dir, options) {
            // sled reports it as ErrorKind::Other with this text (sled 0.34 config.rs).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock") && tries < 100 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// How a process opens the sled engine: what may differ between a one-shot command and
/// `jpki serve` (`[store] cache_mib`, docs/serve.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledOptions {
    /// Bytes of sled's page cache: the decoded tree pages it keeps in memory. sled reads
    /// every page it walks into it — a scan of every certificate (the OCSP pre-signer's pass,
    /// a CRL pass) fills it up to this bound whatever the store's size — so it is what makes
    /// a long-running process's memory grow with the store until the bound.
    pub cache_bytes: u64,
}

impl SledOptions {
    /// sled 0.34's own default (1 GiB): what one-shot commands keep.
    pub const SLED_DEFAULT_CACHE_BYTES: u64 = 1 << 30;
}

impl Default for SledOptions {
    fn default() -> SledOptions {
        SledOptions {
            cache_bytes: SledOptions::SLED_DEFAULT_CACHE_BYTES,
        }
    }
}

/// An open sled database: the configuration it was opened with (kept to say what sled was
/// given), the database and its trees in [`Table::ALL`] order.
type Opened = (sled::Config, sled::Db, Vec<sled::Tree>);

fn sled_config(dir: &Path, options: &SledOptions) -> sled::Config {
    // sled's own flushes are not what makes an answer durable (the journal is), so they run
    // only every 5 s: less I/O competing with the journal's fsyncs, a bounded replay after a
    // power loss.
    sled::Config::new()
        .path(dir)
        .flush_every_ms(Some(5000))
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(options.cache_bytes)
}

fn open_sled(dir: &Path, options: &SledOptions) -> std::result::Result<Opened, sled::Error> {
    let config = sled_config(dir, options);
    let db = config.open()?;
    let trees = Table::ALL
        .iter()
        .map(|t| db.open_tree(t.name()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((config, db, trees))
}

fn applied_seq(trees: &[sled::Tree]) -> Result<u64> {
    Ok(match trees[Table::Meta.index()].get(APPLIED)? {
        Some(b) => u64::from_be_bytes(
            b.as_ref()
                .try_into()
                .map_err(|_| Error::Store("corrupt journal position".into()))?,
        ),
        None => 0,
    })
}

/// Applies a write set to sled, in order, with the journal position (in `meta`) last. Plain
/// inserts, not `Tree::apply_batch`: sled seals and writes out its log buffer at the end of
/// every batch (a write and a `sync_file_range` per table per commit), which cost more CPU
/// than all the rest of an issuance's storage. Atomicity comes from the journal instead:
/// sled recovers a prefix of its log, so if it holds the position it holds everything before,
/// and anything after the position it holds is replayed.
fn apply_ops(trees: &[sled::Tree], ops: &[Op]) -> Result<()> {
    let mut position = None;
    for op in ops {
        match op {
            Op::Put(Table::Meta, k, v) if k == APPLIED => position = Some(v),
            Op::Put(t, k, v) => {
                trees[t.index()].insert(k.as_slice(), v.as_slice())?;
            }
            Op::Del(t, k) => {
                trees[t.index()].remove(k.as_slice())?;
            }
        }
    }
    if let Some(v) = position {
        trees[Table::Meta.index()].insert(APPLIED, v.as_slice())?;
    }
    Ok(())
}

impl Kv {
    /// Opens (or creates) the store in `dir` (`dir/journal`, `dir/sled/`), replaying or
    /// rebuilding from the journal as needed. A second process gets [`Error::Locked`].
    #[cfg(test)]
    pub(crate) fn open(dir: &Path) -> Result<Kv> {
        Kv::open_with(dir, &SledOptions::default())
    }

    /// [`Kv::open`] with sled opened as `options` say.
    pub(crate) fn open_with(dir: &Path, options: &SledOptions) -> Result<Kv> {
        fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let lock = File::create(dir.join("lock")).map_err(Error::io(format!(
            "create the lock file in {}",
            dir.display()
        )))?;
        // A lock just released by this process can still be held for a moment by a child that
        // another thread forked before the release (the descriptor is shared until its exec):
        // retry briefly before concluding that another process owns the store.
        let mut tries = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Locked(dir.display().to_string()))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock the store")(e)),
            }
        }
        let journal_path = Self::journal_path(dir);
        // Not O_APPEND: records are written at the logical end, before the preallocated zeros;
        // never truncated: the journal is the store.
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&journal_path)
                .map_err(Error::io(format!("open {}", journal_path.display())))?
        };
        let (records, good_end) = read_journal(&mut file)?;
        let snapshot = dir.join(SNAPSHOT);
        let (base, start, last) = store_bounds(dir, &snapshot, &records)?;
        // Checked, so repair what a crash left: a torn last record (a crash during its
        // write, never acknowledged) and the files of a compaction that did not finish (the
        // old snapshot, or none, and the old journal still hold everything). Zeros after the
        // last record are the preallocated slack and stay; anything else there is cut off,
        // so that no later record is followed by the remains of a torn one.
        let mut allocated = file
            .metadata()
            .map_err(Error::io("stat the journal"))?
            .len();
        if good_end < allocated
            && !only_zeros(&file, good_end, allocated)
                .map_err(Error::io("read the journal's tail"))?
        {
            file.set_len(good_end)
                .map_err(Error::io("cut the journal's torn tail"))?;
            file.sync_all().map_err(Error::io("sync the journal"))?;
            allocated = good_end;
        }
        for unfinished in [dir.join(SNAPSHOT_TMP), dir.join(JOURNAL_TMP)] {
            if unfinished.exists() {
                fs::remove_file(&unfinished)
                    .map_err(Error::io(format!("remove {}", unfinished.display())))?;
            }
        }
        let sled_dir = dir.join("sled");
        let opened = if sled_dir.exists() {
            reopen_sled(&sled_dir, options).map_err(|e| format!("sled does not open: {e}"))
        } else {
            Err("there is no sled directory".to_owned())
        };
        let usable = match &opened {
            Ok((_, _, trees)) => {
                let applied = applied_seq(trees)?;
                if applied > last {
                    Err(
                        "sled holds a transaction the journal does not (never acknowledged)"
                            .to_owned(),
                    )
                } else if applied + 1 < start {
                    Err(format!(
                        "sled holds the store up to {applied}, the journal only from {start}"
                    ))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e.clone()),
        };
        let (config, db, trees) = match (opened, usable) {
            (Ok(sled), Ok(())) => sled,
            (opened, why) => {
                let why = why.err().unwrap_or_default();
                drop(opened);
                if sled_dir.exists() {
                    tracing::warn!(reason = %why, "rebuilding the store from its snapshot and journal");
                } else if base > 0 || !records.is_empty() {
                    // No tables yet (a restored backup, a copy without them): nothing is wrong.
                    tracing::info!(reason = %why, "building the store's tables from its snapshot and journal");
                }
                // Built beside the old one and put in place only once the snapshot has loaded:
                // a snapshot that cannot be loaded changes nothing.
                let rebuilding = dir.join(SLED_REBUILDING);
                if rebuilding.exists() {
                    fs::remove_dir_all(&rebuilding)
                        .map_err(Error::io(format!("remove {}", rebuilding.display())))?;
                }
                let (_, db, trees) = open_sled(&rebuilding, options)
                    .map_err(|e| Error::Store(format!("create {}: {e}", rebuilding.display())))?;
                let loaded = if base > 0 {
                    load_snapshot(&snapshot, base, &trees)
                } else {
                    Ok(())
                }
                .and_then(|()| Ok(db.flush().map(|_| ())?));
                drop((db, trees));
                if let Err(e) = loaded {
                    let _ = fs::remove_dir_all(&rebuilding);
                    return Err(e);
                }
                if sled_dir.exists() {
                    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
                    let mut aside = dir.join(format!("sled.corrupt-{stamp}"));
                    for n in 1.. {
                        if !aside.exists() {
                            break;
                        }
                        aside = dir.join(format!("sled.corrupt-{stamp}.{n}"));
                    }
                    tracing::warn!(aside = %aside.display(), "the damaged sled directory is kept aside");
                    fs::rename(&sled_dir, &aside)
                        .map_err(Error::io("set the damaged sled directory aside"))?;
                }
                fs::rename(&rebuilding, &sled_dir)
                    .map_err(Error::io("put the rebuilt sled directory in place"))?;
                sync_dir(dir)?;
                reopen_sled(&sled_dir, options)
                    .map_err(|e| Error::Store(format!("open {}: {e}", sled_dir.display())))?
            }
        };
        let applied = applied_seq(&trees)?;
        let mut replayed = 0;
        for (seq, ops) in records.iter().filter(|(seq, _)| *seq > applied) {
            apply_ops(&trees, ops)?;
            debug_assert!(ops.iter().any(|o| matches!(o, Op::Put(Table::Meta, k, v) if k == APPLIED && v == &seq.to_be_bytes())));
            replayed += 1;
        }
        if replayed > 0 {
            db.flush()?;
            tracing::info!(replayed, "replayed journal records into sled");
        }
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            compacting: Mutex::new(()),
            config,
            db,
            trees,
            journal: Mutex::new(Journal {
                file: Arc::new(file),
                next_seq: last + 1,
                end: good_end,
            }),
            ahead: Mutex::new(Ahead {
                allocated,
                ..Ahead::default()
            }),
            ahead_changed: Condvar::new(),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            visible: RwLock::new(()),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            read_only: false,
            counters: Counters::default(),
            _lock: lock,
        });
        let preallocator = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("journal-prealloc".into())
                .spawn(move || shared.prealloc_loop())
                .map_err(Error::io("start the journal's preallocating thread"))?
        };
        // The first fill starts now, beside whatever the opener does next.
        {
            let j = shared.journal.lock().unwrap_or_else(|p| p.into_inner());
            shared.fill_ahead(&j);
        }
        let committer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("store-commit".into())
                .spawn(move || shared.commit_loop())
        };
        // From here on, dropping the store stops both threads (and releases its lock).
        let mut kv = Kv {
            shared,
            committer: None,
            preallocator: Some(preallocator),
        };
        kv.committer = Some(committer.map_err(Error::io("start the store's committing thread"))?);
        Ok(kv)
    }

    /// Bytes of page cache sled was opened with ([`SledOptions::cache_bytes`]).
    pub(crate) fn cache_capacity(&self) -> u64 {
        self.shared.config.cache_capacity
    }

    /// Path of the journal of a store directory.
    pub(crate) fn journal_path(dir: &Path) -> PathBuf {
        dir.join(JOURNAL)
    }

    /// Bounds the journal: writes a snapshot of the store (`snapshot`, replacing the previous
    /// one) and drops the journal records it contains. Commits continue while the snapshot is
    /// written; they pause only while the journal's remaining tail is copied.
    ///
    /// The snapshot is a *fuzzy* copy: it is taken table by table while later transactions
    /// commit, so it holds every record up to its position `p` and perhaps some after. Journal
    /// records hold the values written, so replaying the records after `p` over it gives the
    /// store exactly. Crash safety: the snapshot is fsynced before it is renamed into place,
    /// sled is flushed before any journal record is dropped, and the shortened journal is
    /// fsynced and renamed over the old one, so at every moment either the old journal, or the
    /// new snapshot and the new journal, hold everything.
    pub(crate) fn compact(&self) -> Result<Compaction> {
        self.shared.compact()
    }
}

impl Shared {
    fn compact(&self) -> Result<Compaction> {
        if self.read_only {
            return Err(Error::ReadOnly(self.dir.display().to_string()));
        }
        // One at a time: a second caller waits, then compacts what has come since.
        let _one = self.compacting.lock().unwrap_or_else(|p| p.into_inner());
        // Everything up to `position` is in sled (a batch is applied before the journal lock is
        // released); the journal's records after it start at `offset`.
        let (position, offset) = {
            let j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            (j.next_seq - 1, j.end)
        };
        // sled durably holds `position` before any record up to it leaves the journal.
        self.db.flush()?;
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let snapshot_bytes = self.write_snapshot(&tmp, position)?;
        fs::rename(&tmp, self.dir.join(SNAPSHOT))
            .map_err(Error::io("put the new snapshot in place"))?;
        sync_dir(&self.dir)?;

        // The shortened journal is zero-filled before commits pause (see the module docs):
        // its first records go into zeros like every other.
        let new_path = self.dir.join(JOURNAL_TMP);
        let new = private_file(&new_path)?;
        let prefilled = prealloc_chunk(0);
        zero_fill(&new, 0, prefilled, || false)
            .map_err(Error::io("zero-fill the shortened journal"))?;

        // Keep only the records after `position`: pause commits and copy the tail.
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        self.usable()?;
        let before = j.end;
        let tail = {
            use std::os::unix::fs::FileExt;
            let mut tail = vec![0u8; (before - offset) as usize];
            j.file
                .read_exact_at(&mut tail, offset)
                .map_err(Error::io("read the journal's tail"))?;
            new.write_all_at(&tail, 0)
                .and_then(|_| new.sync_all())
                .map_err(Error::io("write the shortened journal"))?;
            tail
        };
        // Records go to the shortened journal from now on (the handle it was written with,
        // so it is valid whatever happens next); a fill of the old file still under way
        // changes nothing in the new one.
        fs::rename(&new_path, self.dir.join(JOURNAL))
            .map_err(Error::io("put the shortened journal in place"))?;
        j.file = Arc::new(new);
        j.end = tail.len() as u64;
        {
            let mut a = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            a.generation += 1;
            a.allocated = prefilled.max(j.end);
            a.filling = false;
            a.request = None;
        }
        self.fill_ahead(&j);
        if let Err(e) = sync_dir(&self.dir) {
            // The rename may not survive a crash, and new records go to the new file: refuse
            // further writes; the next open finds a complete journal either way.
            self.poisoned.store(true, Ordering::SeqCst);
            return Err(e);
        }
        Ok(Compaction {
            position,
            snapshot_bytes,
            journal_bytes_before: before,
            journal_bytes_after: tail.len() as u64,
        })
    }

    /// Writes a (fuzzy) snapshot of the tables at journal position `position` into `tmp`,
    /// fsynced; returns its size. See [`Kv::compact`] for why a fuzzy copy plus the journal's
    /// records after `position` give the store exactly.
    fn write_snapshot(&self, tmp: &Path, position: u64) -> Result<u64> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, private_file(tmp)?);
        let mut chunk = Vec::new();
        let mut size = 0usize;
        let mut snapshot_bytes = 0u64;
        let mut written = 0usize;
        let mut write = |chunk: &mut Vec<Op>| -> Result<()> {
            let rec = encode_record(position, chunk);
            snapshot_bytes += rec.len() as u64;
            chunk.clear();
            out.write_all(&rec)
                .map_err(Error::io(format!("write {}", tmp.display())))
        };
        for t in Table::ALL {
            for item in self.locked_iter(self.tree(t).iter()) {
                let (k, v) = item?;
                if t == Table::Meta && k == APPLIED {
                    continue; // set to the snapshot's position when it is loaded
                }
                size += k.len() + v.len() + 10;
                chunk.push(Op::Put(t, k, v));
                if size >= 1 << 20 {
                    write(&mut chunk)?;
                    written += 1;
                    size = 0;
                }
            }
        }
        // At least one record, even for an empty store: the first one names the position.
        if !chunk.is_empty() || written == 0 {
            write(&mut chunk)?;
        }
        let file = out
            .into_inner()
            .map_err(|e| Error::io(format!("write {}", tmp.display()))(e.into_error()))?;
        file.sync_all()
            .map_err(Error::io(format!("sync {}", tmp.display())))?;
        Ok(snapshot_bytes)
    }

    /// Refuses writes once a journal write failed or a journaled batch could not be applied
    /// (see [`Shared::poisoned`](Shared)).
    fn usable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly(self.dir.display().to_string()));
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Store(
                "an earlier journal write failed; restart to recover the store".into(),
            ));
        }
        Ok(())
    }

    fn tree(&self, t: Table) -> &sled::Tree {
        &self.trees[t.index()]
    }

    /// Queues a transaction for the committing thread.
    fn enqueue(&self, sub: Submission) -> Result<()> {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.closed {
                return Err(Error::Store("the store is closing".into()));
            }
            q.waiting.push(sub);
        }
        self.queued.notify_one();
        Ok(())
    }

    /// The committing thread: takes everything queued as one batch (one journal record, one
    /// fsync), commits it, and goes back for what arrived meanwhile. A dedicated thread rather
    /// than "whichever client finds no committer": a client thread that commits keeps holding
    /// its own locks (its resident's, in the authority) for as long as batches keep coming.
    fn commit_loop(&self) {
        loop {
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                while q.waiting.is_empty() && !q.closed {
                    q = self.queued.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                if q.waiting.is_empty() {
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            self.commit_batch(batch);
        }
    }

    /// Commits a batch: each submission's reads are validated against the current state plus
    /// the batch's earlier writes (a changed read sends it back to be re-run); valid writes and
    /// audit records are staged in order; the batch is journaled and fsynced; only then is it
    /// applied to sled (write-ahead) and everyone answered.
    fn commit_batch(&self, mut batch: Vec<Submission>) {
        let started = Instant::now();
        let counters = &self.counters;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .transactions
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let answer_all = |batch: &[Submission], e: &Error| {
            for sub in batch {
                let _ = sub.reply.send(Err(Error::Store(e.to_string())));
            }
        };
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.usable() {
            return answer_all(&batch, &e);
        }
        let seq = journal.next_seq;
        let staged = Staged {
            store: self,
            writes: RefCell::new(WriteSet::default()),
        };
        let mut valid = Vec::with_capacity(batch.len());
        let mut run = || -> TxResult<()> {
            for sub in batch.iter_mut() {
                let ok = sub
                    .reads
                    .iter()
                    .try_fold(true, |ok, (t, k, v)| -> TxResult<bool> {
                        Ok(ok && staged.matches(*t, k, v.as_deref())?)
                    })?;
                valid.push(ok);
                if !ok {
                    continue;
                }
                let mut writes = staged.writes.borrow_mut();
                for op in std::mem::take(&mut sub.writes) {
                    writes.push(op);
                }
                drop(writes);
                for write in &sub.deferred {
                    write(&staged)?;
                }
            }
            Ok(())
        };
        if let Err(e) = run() {
            return answer_all(&batch, &e);
        }
        let mut ops = staged.writes.into_inner().ops;
        if !ops.is_empty() {
            ops.push(Op::Put(
                Table::Meta,
                APPLIED.to_vec(),
                seq.to_be_bytes().to_vec(),
            ));
            let record = encode_record(seq, &ops);
            let new_end = journal.end + record.len() as u64;
            self.room_for(new_end);
            let written = {
                use std::os::unix::fs::FileExt;
                journal.file.write_all_at(&record, journal.end)
            };
            if let Err(e) = written {
                // The journal may now end in a torn record: writing after it would hide
                // later records from replay. Refuse every later write in this process; the
                // next open cuts the torn tail off.
                self.poisoned.store(true, Ordering::SeqCst);
                return answer_all(&batch, &Error::io("append to the journal")(e));
            }
            Counters::add(&counters.stage_us, started);
            let syncing = Instant::now();
            let synced = journal.file.sync_data();
            Counters::add(&counters.sync_us, syncing);
            if let Err(e) = synced {
                self.poisoned.store(true, Ordering::SeqCst);
                return answer_all(&batch, &Error::io("sync the journal")(e));
            }
            journal.next_seq += 1;
            journal.end = new_end;
            self.fill_ahead(&journal);
            let applying = Instant::now();
            let applied = self.apply(&ops);
            Counters::add(&counters.apply_us, applying);
            if let Err(e) = applied {
                // Durable in the journal, so the next open replays it; this process can no
                // longer trust sled to match the journal.
                self.poisoned.store(true, Ordering::SeqCst);
                return answer_all(
                    &batch,
                    &Error::Store(format!(
                        "journaled but not applied ({e}); restart to replay the journal"
                    )),
                );
            }
        }
        drop(journal);
        for (sub, ok) in batch.iter().zip(valid) {
            let _ = sub
                .reply
                .send(if ok { Ok(()) } else { Err(Error::Conflict) });
        }
    }

    /// Before a record is written up to `new_end`: if that reaches past the zero-filled
    /// region while a fill of it is queued or running, waits for the fill (the two would
    /// write the same bytes); if it still reaches past it, the record is written there
    /// anyway (the file grows, as without preallocation) and the next fill starts after it.
    fn room_for(&self, new_end: u64) {
        let mut a = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        if new_end > a.allocated && a.filling {
            let waiting = Instant::now();
            while new_end > a.allocated && a.filling {
                a = self
                    .ahead_changed
                    .wait(a)
                    .unwrap_or_else(|p| p.into_inner());
            }
            tracing::debug!(
                waited_us = waiting.elapsed().as_micros() as u64,
                "the journal record waited for its zero-fill"
            );
        }
        a.allocated = a.allocated.max(new_end);
    }

    /// After a record: asks the preallocating thread for one more chunk of zeros once fewer
    /// than half a chunk is left ahead of the journal's end (see [`prealloc_chunk`]).
    fn fill_ahead(&self, journal: &Journal) {
        let mut a = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        let chunk = prealloc_chunk(journal.end);
        if a.filling || a.closed || a.allocated.saturating_sub(journal.end) >= chunk / 2 {
            return;
        }
        a.filling = true;
        a.request = Some(Fill {
            file: Arc::clone(&journal.file),
            from: a.allocated,
            to: a.allocated + chunk,
            generation: a.generation,
        });
        drop(a);
        self.ahead_changed.notify_all();
    }

    /// The preallocating thread: runs the fills [`Shared::fill_ahead`] asks for, one at a
    /// time, until the store closes. A failed fill (a full disk) is logged and changes
    /// nothing but speed: records are then written past the zeros, and the next record asks
    /// again.
    fn prealloc_loop(&self) {
        loop {
            let fill = {
                let mut a = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if a.closed {
                        return;
                    }
                    if let Some(fill) = a.request.take() {
                        break fill;
                    }
                    a = self
                        .ahead_changed
                        .wait(a)
                        .unwrap_or_else(|p| p.into_inner());
                }
            };
            let started = Instant::now();
            let done = zero_fill(&fill.file, fill.from, fill.to, || {
                self.ahead.lock().unwrap_or_else(|p| p.into_inner()).closed
            });
            let mut a = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            if a.generation == fill.generation {
                a.filling = false;
                match &done {
                    Ok(()) => a.allocated = a.allocated.max(fill.to),
                    Err(e) if !a.closed => {
                        tracing::warn!(error = %e, "could not zero-fill the journal ahead of its end")
                    }
                    Err(_) => {}
                }
            }
            drop(a);
            self.ahead_changed.notify_all();
            tracing::debug!(
                bytes = fill.to - fill.from,
                took_us = started.elapsed().as_micros() as u64,
                "zero-filled the journal ahead of its end"
            );
        }
    }

    /// Applies a journaled write set to sled under the visibility lock, so that a reader sees
    /// either none or all of it.
    fn apply(&self, ops: &[Op]) -> Result<()> {
        let _all_or_nothing = self.visible.write().unwrap_or_else(|p| p.into_inner());
        apply_ops(&self.trees, ops)
    }

    /// A sled iterator whose every step runs under the visibility lock.
    fn locked_iter(&self, mut it: sled::Iter) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        Box::new(std::iter::from_fn(move || {
            let _seen = self.visible.read().unwrap_or_else(|p| p.into_inner());
            it.next().map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(Error::from)
            })
        }))
    }

    /// Whether every value in `reads` is still current, checked under one visibility guard
    /// (so against one committed state).
    fn reads_hold(&self, reads: &[ReadValue]) -> Result<bool> {
        let _seen = self.visible.read().unwrap_or_else(|p| p.into_inner());
        for (t, k, v) in reads {
            if self.tree(*t).get(k)?.as_deref() != v.as_deref() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads under the visibility lock (see [`Shared::apply`]).
    fn read(&self, t: Table, key: &[u8]) -> Result<Option<sled::IVec>> {
        let _seen = self.visible.read().unwrap_or_else(|p| p.into_inner());
        Ok(self.tree(t).get(key)?)
    }
}

/// A batch being validated and staged by the committer: its write set (for the journal, and
/// read back over sled's state by the batch's later transactions and audit records).
struct Staged<'a> {
    store: &'a Shared,
    writes: RefCell<WriteSet>,
}

impl Staged<'_> {
    /// Whether the current value of `key` is `expect` (no copy of sled's value).
    fn matches(&self, t: Table, key: &[u8], expect: Option<&[u8]>) -> TxResult<bool> {
        if let Some(v) = self.writes.borrow().get(t, key) {
            return Ok(v == expect);
        }
        Ok(self.store.read(t, key)?.as_deref() == expect)
    }
}

impl Txn for Staged<'_> {
    fn get(&self, t: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        if let Some(v) = self.writes.borrow().get(t, key) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        Ok(self.store.read(t, key)?.map(|v| v.to_vec()))
    }
    fn insert(&self, t: Table, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.writes.borrow_mut().put(t, key, value);
        Ok(())
    }
    fn remove(&self, t: Table, key: &[u8]) -> TxResult<()> {
        self.writes.borrow_mut().del(t, key);
        Ok(())
    }
    fn defer(&self, write: Deferred) -> TxResult<()> {
        write(self)
    }
}

/// One transaction on its way to the committer: what its body read (to validate), wrote and
/// audited, and where to send the answer.
struct Submission {
    reads: Vec<ReadValue>,
    writes: Vec<Op>,
    deferred: Vec<Deferred>,
    reply: mpsc::Sender<Result<()>>,
}

/// Runs a transaction body outside sled: reads come from the store (and are remembered for
/// validation at commit), writes and deferred writes are buffered; the body reads its own writes.
struct BufferedTxn<'a> {
    store: &'a Shared,
    reads: RefCell<Vec<ReadValue>>,
    writes: RefCell<WriteSet>,
    deferred: RefCell<Vec<Deferred>>,
}

impl Txn for BufferedTxn<'_> {
    fn get(&self, t: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        if let Some(v) = self.writes.borrow().get(t, key) {
            return Ok(v.map(<[u8]>::to_vec));
        }
        let v = self.store.read(t, key)?.map(|v| v.to_vec());
        let mut reads = self.reads.borrow_mut();
        if !reads.iter().any(|(rt, rk, _)| *rt == t && rk == key) {
            reads.push((t, key.to_vec(), v.clone()));
        }
        Ok(v)
    }
    fn insert(&self, t: Table, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.writes.borrow_mut().put(t, key, value);
        Ok(())
    }
    fn remove(&self, t: Table, key: &[u8]) -> TxResult<()> {
        self.writes.borrow_mut().del(t, key);
        Ok(())
    }
    fn defer(&self, write: Deferred) -> TxResult<()> {
        self.deferred.borrow_mut().push(write);
        Ok(())
    }
}

impl Kv {
    pub(crate) fn get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.shared.read(t, key)?.map(|v| v.to_vec()))
    }

    pub(crate) fn scan(
        &self,
        t: Table,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        let s = &self.shared;
        s.locked_iter(s.tree(t).scan_prefix(prefix))
    }

    pub(crate) fn range(
        &self,
        t: Table,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        let s = &self.shared;
        s.locked_iter(s.tree(t).range(start.to_vec()..end.to_vec()))
    }

    pub(crate) fn transact(&self, body: &dyn Fn(&dyn Txn) -> TxResult<()>) -> Result<()> {
        if self.shared.read_only {
            return Err(Error::ReadOnly(self.shared.dir.display().to_string()));
        }
        // Optimistic concurrency: run the body against the current state, then let the
        // committer validate its reads and apply it; a changed read runs the body again.
        for attempt in 0..1000u32 {
            if attempt > 2 {
                // Many transactions on the same keys: let the others through first.
                std::thread::sleep(std::time::Duration::from_micros(
                    50 * u64::from(attempt.min(40)),
                ));
            }
            let buffered = BufferedTxn {
                store: &self.shared,
                reads: RefCell::new(Vec::new()),
                writes: RefCell::new(WriteSet::default()),
                deferred: RefCell::new(Vec::new()),
            };
            if let Err(e) = body(&buffered) {
                // The body decided from what it read; if that changed underneath it, it may
                // have read a state that never existed (half of one commit): run it again.
                // Otherwise its error stands, from one consistent state.
                if self.shared.reads_hold(&buffered.reads.borrow())? {
                    return Err(e);
                }
                continue;
            }
            let (reply, answer) = mpsc::channel();
            self.shared.enqueue(Submission {
                reads: buffered.reads.into_inner(),
                writes: buffered.writes.into_inner().ops,
                deferred: buffered.deferred.into_inner(),
                reply,
            })?;
            match answer
                .recv()
                .unwrap_or_else(|_| Err(Error::Store("the committing thread went away".into())))
            {
                Err(Error::Conflict) => continue,
                other => return other,
            }
        }
        Err(Error::Store(
            "a transaction kept conflicting with concurrent ones".into(),
        ))
    }

    pub(crate) fn count(&self, t: Table) -> usize {
        let _seen = self
            .shared
            .visible
            .read()
            .unwrap_or_else(|p| p.into_inner());
        self.shared.tree(t).len()
    }

    pub(crate) fn commit_stats(&self) -> CommitStats {
        self.shared.counters.snapshot()
    }

    /// Whether writes are taken now (see [`Storage::writable`](crate::storage::Storage)).
    pub(crate) fn writable(&self) -> Result<()> {
        self.shared.usable()?;
        let j = self
            .shared
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        j.file
            .metadata()
            .map_err(Error::io("inspect the journal"))?;
        if self
            .shared
            .dir
            .metadata()
            .map_err(Error::io("inspect the store directory"))?
            .permissions()
            .readonly()
        {
            return Err(Error::Store(format!(
                "{} is not writable",
                self.shared.dir.display()
            )));
        }
        Ok(())
    }

    /// Writes a consistent copy of the store into the new directory `to` (`snapshot` and
    /// `journal`, which [`Kv::open`] opens): a fuzzy snapshot at the journal position reached
    /// when the copy starts, then — commits paused only for this — the journal's records
    /// appended since, so that the copy is the store as of the last of them. The live store's
    /// files are not touched.
    pub(crate) fn backup(&self, to: &Path) -> Result<crate::storage::Backup> {
        let shared = &self.shared;
        let _one = shared.compacting.lock().unwrap_or_else(|p| p.into_inner());
        fs::create_dir(to).map_err(Error::io(format!("create {}", to.display())))?;
        let (position, offset) = {
            let j = shared.journal.lock().unwrap_or_else(|p| p.into_inner());
            (j.next_seq - 1, j.end)
        };
        let snapshot_bytes = shared.write_snapshot(&to.join(SNAPSHOT), position)?;
        // The records up to the logical end only: the copy gets no preallocated zeros (its
        // first open fills its own).
        let (tail, last) = {
            use std::os::unix::fs::FileExt;
            let j = shared.journal.lock().unwrap_or_else(|p| p.into_inner());
            let mut tail = vec![0u8; (j.end - offset) as usize];
            j.file
                .read_exact_at(&mut tail, offset)
                .map_err(Error::io("read the journal's tail"))?;
            (tail, j.next_seq - 1)
        };
        let mut journal = private_file(&to.join(JOURNAL))?;
        journal
            .write_all(&tail)
            .and_then(|_| journal.sync_all())
            .map_err(Error::io(format!("write {}", to.join(JOURNAL).display())))?;
        sync_dir(to)?;
        Ok(crate::storage::Backup {
            position,
            last,
            snapshot_bytes,
            journal_bytes: tail.len() as u64,
        })
    }

    /// Opens a store for reading only, as on read-only media: creates, locks, repairs and
    /// writes nothing in `dir`. The tables are rebuilt from the snapshot and the journal into a
    /// temporary sled database (deleted on close; the store's own `sled/` is not opened, as
    /// sled cannot open a database without writing to it). Every write is refused with
    /// [`Error::ReadOnly`]. A torn last journal record (never acknowledged) is ignored.
    pub(crate) fn open_read_only(dir: &Path) -> Result<Kv> {
        let journal_path = Self::journal_path(dir);
        let mut file = File::open(&journal_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Store(format!("{} holds no store (no journal)", dir.display()))
            } else {
                Error::io(format!("open {}", journal_path.display()))(e)
            }
        })?;
        let (records, good_end) = read_journal(&mut file)?;
        let snapshot = dir.join(SNAPSHOT);
        let (base, _, last) = store_bounds(dir, &snapshot, &records)?;
        let config = sled::Config::new()
            .temporary(true)
            .mode(sled::Mode::HighThroughput);
        let db = config.open()?;
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if base > 0 {
            load_snapshot(&snapshot, base, &trees)?;
        }
        for (_, ops) in records.iter().filter(|(seq, _)| *seq > base) {
            apply_ops(&trees, ops)?;
        }
        let lock = File::open(&journal_path)
            .map_err(Error::io(format!("open {}", journal_path.display())))?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            compacting: Mutex::new(()),
            config,
            db,
            trees,
            journal: Mutex::new(Journal {
                file: Arc::new(file),
                next_seq: last + 1,
                end: good_end,
            }),
            // Nothing is written, so nothing is preallocated.
            ahead: Mutex::new(Ahead::default()),
            ahead_changed: Condvar::new(),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            visible: RwLock::new(()),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            read_only: true,
            counters: Counters::default(),
            _lock: lock,
        });
        Ok(Kv {
            shared,
            committer: None,
            preallocator: None,
        })
    }

    /// The journal's logical size: its records, without the preallocated zeros after them.
    pub(crate) fn journal_bytes(&self) -> Result<u64> {
        Ok(self
            .shared
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end)
    }
}

impl Drop for Kv {
    /// A clean close lets the committer finish what is queued, then flushes sled, so the next
    /// open has nothing to replay.
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.queued.notify_all();
        if let Some(c) = self.committer.take() {
            if c.join().is_err() {
                tracing::warn!("the store's committing thread panicked");
            }
        }
        // After the committer, which may be waiting for a fill: a fill under way stops
        // between two pieces (its zeros are harmless, and the next open refills).
        self.shared
            .ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.ahead_changed.notify_all();
        if let Some(p) = self.preallocator.take() {
            if p.join().is_err() {
                tracing::warn!("the journal's preallocating thread panicked");
            }
        }
        if let Err(e) = self.shared.db.flush() {
            tracing::warn!(error = %e, "sled flush on close failed; the journal will be replayed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditIntent;
    use crate::storage::sled::layout;

    #[test]
    fn a_removal_carrying_a_value_is_not_a_record() {
        // table 0, op 2 (delete), key "k", value "v": the decoder took it and dropped the value,
        // which the round-trip check of the fuzz entry point refuses
        let mut bad = 1u32.to_be_bytes().to_vec();
        bad.extend_from_slice(&[0, 2, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v']);
        assert_eq!(decode_payload(&bad), None);
        // framed by the entry point, it no longer decodes into a record that encodes otherwise
        assert_eq!(fuzz_read_records(&bad), 0);
        let mut good = bad[..bad.len() - 5].to_vec();
        good.extend_from_slice(&[0, 0, 0, 0]);
        let del = Op::Del(Table::ALL[0], b"k".to_vec());
        assert_eq!(decode_payload(&good), Some(vec![del.clone()]));
        assert_eq!(fuzz_read_records(&encode_record(3, &[del])), 1);
    }

    #[test]
    fn a_sequence_at_its_maximum_is_a_jump_not_an_overflow() {
        let op = || vec![Op::Put(Table::ALL[0], b"k".to_vec(), b"v".to_vec())];
        let mut bytes = encode_record(u64::MAX, &op());
        bytes.extend(encode_record(0, &op()));
        let e = read_journal(&mut std::io::Cursor::new(&bytes)).unwrap_err();
        assert!(e.to_string().contains("jumps"), "{e}");
        assert_eq!(fuzz_read_records(&bytes), 0);
    }

    /// Appends an audit record the way the sled engine does: linked at commit.
    fn append(t: &dyn Txn, subject: &str) -> TxResult<()> {
        let a = AuditIntent {
            at: time::OffsetDateTime::UNIX_EPOCH,
            actor: "system:test".into(),
            action: "count".into(),
            subject: subject.to_owned(),
            detail: String::new(),
        };
        t.defer(Box::new(move |t: &dyn Txn| layout::link_audit(t, &a)))
    }

    /// Walks the audit chain kept in the store.
    fn verify(s: &Kv) -> Result<u64> {
        let records = s
            .scan(Table::Audit, b"")
            .map(|r| r.and_then(|(k, v)| layout::audit_from_store(&k, &v)));
        let head = s
            .get(Table::Meta, layout::AUDIT_HEAD)?
            .map(|b| layout::audit_head_from_store(&b))
            .transpose()?;
        crate::audit::verify(records, head)
    }

    #[test]
    fn commit_stats_count_batches_and_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let s = Kv::open(dir.path()).unwrap();
        let start = s.commit_stats();
        assert_eq!(start, CommitStats::default());
        for k in [b"a", b"b", b"c"] {
            s.transact(&|t| t.insert(Table::Certs, k, b"1")).unwrap();
        }
        // An aborted transaction never reaches the committing thread.
        s.transact(&|_| Err(Error::Invalid("no".into())))
            .unwrap_err();
        let after = s.commit_stats();
        assert_eq!((after.batches, after.transactions), (3, 3));
        s.transact(&|t| t.insert(Table::Certs, b"d", b"1")).unwrap();
        let more = s.commit_stats().since(&after);
        assert_eq!((more.batches, more.transactions), (1, 1));
        assert!(more.sync_us <= s.commit_stats().sync_us);
    }

    #[test]
    fn transactions_are_atomic_and_aborts_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Kv::open(dir.path()).unwrap();
        s.transact(&|t| {
            t.insert(Table::Certs, b"a", b"1")?;
            t.insert(Table::Status, b"a", b"good")
        })
        .unwrap();
        let e = s
            .transact(&|t| {
                t.insert(Table::Certs, b"b", b"2")?;
                Err(Error::Invalid("no".into()))
            })
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)));
        assert_eq!(s.get(Table::Certs, b"b").unwrap(), None);
        assert_eq!(
            s.get(Table::Status, b"a").unwrap().as_deref(),
            Some(&b"good"[..])
        );
        assert_eq!(s.scan(Table::Certs, b"").count(), 1);
    }

    #[test]
    fn a_second_opener_is_told_the_store_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Kv::open(dir.path()).unwrap();
        // sled's lock is per process (flock), so probe from a child process: the test binary
        // re-run with a filter that only opens the store.
        if std::env::var("JPKI_LOCK_PROBE").is_ok() {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "storage::sled::kv::tests::lock_probe",
                "--nocapture",
            ])
            .env("JPKI_LOCK_DIR", dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("LOCKED"), "{text}");
    }

    #[test]
    fn lock_probe() {
        if let Ok(dir) = std::env::var("JPKI_LOCK_DIR") {
            match Kv::open(Path::new(&dir)) {
                Err(Error::Locked(_)) => println!("LOCKED"),
                Err(e) => println!("OTHER {e}"),
                Ok(_) => println!("OPENED"),
            }
        }
    }

    fn put(s: &Kv, k: &str, v: &str) {
        s.transact(&|t| t.insert(Table::Certs, k.as_bytes(), v.as_bytes()))
            .unwrap();
    }

    #[test]
    fn the_journal_rebuilds_a_lost_or_damaged_sled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Kv::open(dir.path()).unwrap();
            put(&s, "a", "1");
            put(&s, "b", "2");
            s.transact(&|t| t.remove(Table::Certs, b"a")).unwrap();
        }
        // sled gone entirely: rebuilt from the journal.
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        {
            let s = Kv::open(dir.path()).unwrap();
            assert_eq!(s.get(Table::Certs, b"a").unwrap(), None);
            assert_eq!(
                s.get(Table::Certs, b"b").unwrap().as_deref(),
                Some(&b"2"[..])
            );
            put(&s, "c", "3");
        }
        // sled's files damaged: set aside and rebuilt.
        for e in fs::read_dir(dir.path().join("sled")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                fs::write(&p, b"garbage garbage garbage").unwrap();
            }
        }
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(
            s.get(Table::Certs, b"c").unwrap().as_deref(),
            Some(&b"3"[..])
        );
        assert_eq!(
            s.get(Table::Certs, b"b").unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert!(fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("sled.corrupt-")));
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_sled_ahead_of_the_journal_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Kv::open(dir.path()).unwrap();
            put(&s, "a", "1");
            put(&s, "b", "2");
        }
        let jp = Kv::journal_path(dir.path());
        let len = logical_end(&jp);
        // Tear the last record (the file ends there, no preallocated zeros after it): sled
        // now holds a transaction (b) the journal lacks.
        OpenOptions::new()
            .write(true)
            .open(&jp)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(
            s.get(Table::Certs, b"a").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(
            s.get(Table::Certs, b"b").unwrap(),
            None,
            "the unacknowledged transaction is dropped with its torn record"
        );
        put(&s, "c", "3");
        drop(s);
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(
            s.get(Table::Certs, b"c").unwrap().as_deref(),
            Some(&b"3"[..])
        );
    }

    /// Where the journal's whole records end, read as an open reads it.
    fn logical_end(jp: &Path) -> u64 {
        read_journal(&mut File::open(jp).unwrap()).unwrap().1
    }

    /// Waits until the preallocating thread has no fill queued or running.
    fn fills_done(s: &Kv) {
        let mut a = s.shared.ahead.lock().unwrap();
        while a.filling {
            a = s.shared.ahead_changed.wait(a).unwrap();
        }
    }

    #[test]
    fn the_preallocated_zeros_read_as_the_end_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let jp = Kv::journal_path(dir.path());
        let s = Kv::open(dir.path()).unwrap();
        put(&s, "a", "1");
        put(&s, "b", "2");
        fills_done(&s);
        let end = s.journal_bytes().unwrap();
        assert_eq!(end, logical_end(&jp), "the reported size is the records'");
        let bytes = fs::read(&jp).unwrap();
        assert!(
            bytes.len() as u64 >= end + PREALLOC_MIN / 2,
            "zero-filled ahead: {} bytes for {end}",
            bytes.len()
        );
        assert!(bytes[end as usize..].iter().all(|b| *b == 0));
        let (records, _) = read_journal(&mut std::io::Cursor::new(&bytes)).unwrap();
        assert_eq!(records.len(), 2, "zeros are no record");
        drop(s);
        // Reopened: nothing cut, nothing replayed twice, the next record goes at the end.
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(s.journal_bytes().unwrap(), end);
        assert!(fs::metadata(&jp).unwrap().len() >= bytes.len() as u64);
        put(&s, "c", "3");
        drop(s);
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            assert_eq!(
                s.get(Table::Certs, k.as_bytes()).unwrap().as_deref(),
                Some(v.as_bytes())
            );
        }
        assert_eq!(
            read_journal(&mut File::open(&jp).unwrap()).unwrap().0.len(),
            3
        );
    }

    #[test]
    fn a_torn_record_followed_by_zeros_is_cut_and_later_records_replay() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let jp = Kv::journal_path(dir.path());
        let end_of_a;
        {
            let s = Kv::open(dir.path()).unwrap();
            put(&s, "a", "1");
            end_of_a = s.journal_bytes().unwrap();
            put(&s, "b", "2");
            fills_done(&s);
        }
        // A crash during b's write: its last bytes never reached the disk (zeros, like the
        // slack after them), and a stray block further on did (a record half-written past
        // the torn one must not survive to follow a later, shorter record).
        let end = logical_end(&jp);
        let f = OpenOptions::new().write(true).open(&jp).unwrap();
        f.write_all_at(&[0, 0, 0], end - 3).unwrap();
        f.write_all_at(b"JPKJ stray bytes", end + 4096).unwrap();
        drop(f);
        assert_eq!(logical_end(&jp), end_of_a);
        {
            let s = Kv::open(dir.path()).unwrap();
            assert_eq!(s.journal_bytes().unwrap(), end_of_a);
            assert_eq!(
                s.get(Table::Certs, b"b").unwrap(),
                None,
                "never acknowledged"
            );
            put(&s, "c", "3");
            put(&s, "d", "4");
            fills_done(&s);
            let bytes = fs::read(&jp).unwrap();
            let end = s.journal_bytes().unwrap() as usize;
            assert!(
                bytes[end..].iter().all(|b| *b == 0),
                "the stray bytes were cut off and the slack refilled with zeros"
            );
        }
        // Replayed from the journal alone: a, c and d, in order, and nothing of b.
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(s.get(Table::Certs, b"b").unwrap(), None);
        for (k, v) in [("a", "1"), ("c", "3"), ("d", "4")] {
            assert_eq!(
                s.get(Table::Certs, k.as_bytes()).unwrap().as_deref(),
                Some(v.as_bytes())
            );
        }
        let (records, _) = read_journal(&mut File::open(&jp).unwrap()).unwrap();
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn records_across_fill_chunks_and_past_the_zeros_reopen_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let jp = Kv::journal_path(dir.path());
        let value = |i: u32| vec![(i % 251) as u8 + 1; 100_000 + i as usize];
        let mut written = 0u64;
        {
            let s = Kv::open(dir.path()).unwrap();
            // ~4 MB in 100 KB records: several 1 MiB fills, some records straddling the
            // boundary between two of them...
            for i in 0..40u32 {
                s.transact(&|t| t.insert(Table::Certs, &i.to_be_bytes(), &value(i)))
                    .unwrap();
            }
            // ...and records larger than a chunk, written past everything zero-filled.
            for i in 40..43u32 {
                let big = vec![i as u8; 3 << 20];
                s.transact(&|t| t.insert(Table::Crl, &i.to_be_bytes(), &big))
                    .unwrap();
            }
            written += s.journal_bytes().unwrap();
            assert!(written > 12 << 20, "{written}");
            fills_done(&s);
            assert!(fs::metadata(&jp).unwrap().len() > written);
        }
        let check = |s: &Kv| {
            for i in 0..40u32 {
                assert_eq!(
                    s.get(Table::Certs, &i.to_be_bytes()).unwrap(),
                    Some(value(i))
                );
            }
            for i in 40..43u32 {
                assert_eq!(
                    s.get(Table::Crl, &i.to_be_bytes()).unwrap(),
                    Some(vec![i as u8; 3 << 20])
                );
            }
        };
        {
            let s = Kv::open(dir.path()).unwrap();
            assert_eq!(s.journal_bytes().unwrap(), written);
            check(&s);
            put(&s, "after", "reopen");
        }
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        check(&s);
        assert_eq!(
            s.get(Table::Certs, b"after").unwrap().as_deref(),
            Some(&b"reopen"[..])
        );
        assert_eq!(
            read_journal(&mut File::open(&jp).unwrap()).unwrap().0.len(),
            44
        );
    }

    #[test]
    fn the_chunk_grows_with_the_journal_within_its_bounds() {
        assert_eq!(prealloc_chunk(0), PREALLOC_MIN);
        assert_eq!(prealloc_chunk(3 << 20), PREALLOC_MIN);
        assert_eq!(prealloc_chunk(40 << 20), 10 << 20);
        assert_eq!(prealloc_chunk((40 << 20) + 4), 11 << 20);
        assert_eq!(prealloc_chunk(1 << 40), PREALLOC_MAX);
    }

    #[test]
    fn concurrent_read_modify_writes_are_serialisable() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Kv::open(dir.path()).unwrap());
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| {
                    for _ in 0..50 {
                        s.transact(&|t| {
                            let n = t
                                .get(Table::Meta, b"counter")?
                                .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
                                .unwrap_or(0);
                            t.insert(Table::Meta, b"counter", &(n + 1).to_be_bytes())?;
                            append(t, &n.to_string())
                        })
                        .unwrap();
                    }
                });
            }
        });
        let n = u64::from_be_bytes(
            s.get(Table::Meta, b"counter")
                .unwrap()
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(n, 400, "no increment lost");
        assert_eq!(
            verify(s.as_ref()).unwrap(),
            400,
            "one audit record per transaction, chained"
        );
        drop(s);
        // And the journal replays to the same state.
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(
            u64::from_be_bytes(
                s.get(Table::Meta, b"counter")
                    .unwrap()
                    .unwrap()
                    .try_into()
                    .unwrap()
            ),
            400
        );
        assert_eq!(verify(&s).unwrap(), 400);
    }

    fn counter(s: &Kv) -> u64 {
        s.get(Table::Meta, b"counter")
            .unwrap()
            .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()))
    }

    fn increment(s: &Kv) {
        s.transact(&|t| {
            let n = t
                .get(Table::Meta, b"counter")?
                .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
            t.insert(Table::Meta, b"counter", &(n + 1).to_be_bytes())?;
            t.insert(Table::Certs, &n.to_be_bytes(), &[7u8; 300])?;
            append(t, "")
        })
        .unwrap();
    }

    #[test]
    fn compaction_bounds_the_journal_and_the_store_reopens_and_rebuilds() {
        let dir = tempfile::tempdir().unwrap();
        let jp = Kv::journal_path(dir.path());
        {
            let s = Kv::open(dir.path()).unwrap();
            for _ in 0..200 {
                increment(&s);
            }
            let before = s.journal_bytes().unwrap();
            assert_eq!(before, logical_end(&jp));
            let c = s.compact().unwrap();
            assert_eq!(c.position, 200);
            assert_eq!(c.journal_bytes_before, before);
            assert_eq!(c.journal_bytes_after, 0);
            assert_eq!(s.journal_bytes().unwrap(), 0);
            // The shortened journal is zero-filled ahead too, and holds no record.
            assert!(fs::read(&jp).unwrap().iter().all(|b| *b == 0));
            assert!(fs::metadata(&jp).unwrap().len() >= PREALLOC_MIN);
            for _ in 0..50 {
                increment(&s);
            }
            assert_eq!(s.journal_bytes().unwrap(), logical_end(&jp));
        }
        // Reopens from sled with the shortened journal.
        {
            let s = Kv::open(dir.path()).unwrap();
            assert_eq!(counter(&s), 250);
            assert_eq!(verify(&s).unwrap(), 250);
            increment(&s);
        }
        // sled lost: rebuilt from the snapshot and the journal after it.
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(counter(&s), 251);
        assert_eq!(s.count(Table::Certs), 251);
        assert_eq!(verify(&s).unwrap(), 251);
        // A second compaction replaces the first snapshot.
        let c = s.compact().unwrap();
        assert_eq!(c.position, 251);
        drop(s);
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(counter(&s), 251);
        assert_eq!(verify(&s).unwrap(), 251);
    }

    #[test]
    fn compaction_while_transactions_commit_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Kv::open(dir.path()).unwrap();
            std::thread::scope(|sc| {
                for _ in 0..4 {
                    sc.spawn(|| {
                        for _ in 0..150 {
                            increment(&s);
                        }
                    });
                }
                // Two compacting threads: compactions must not overlap.
                for _ in 0..2 {
                    sc.spawn(|| {
                        for _ in 0..5 {
                            s.compact().unwrap();
                            std::thread::sleep(std::time::Duration::from_millis(3));
                        }
                    });
                }
            });
            assert_eq!(counter(&s), 600);
        }
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(counter(&s), 600);
        assert_eq!(s.count(Table::Certs), 600);
        assert_eq!(verify(&s).unwrap(), 600);
    }

    #[test]
    fn a_backup_taken_while_transactions_commit_is_the_store_at_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Kv::open(&dir.path().join("live")).unwrap();
        for _ in 0..20 {
            increment(&s);
        }
        s.compact().unwrap(); // a snapshot and a journal both in play
        let copies = tempfile::tempdir().unwrap();
        let taken = std::thread::scope(|sc| {
            for _ in 0..3 {
                sc.spawn(|| {
                    for _ in 0..100 {
                        increment(&s);
                    }
                });
            }
            (0..4)
                .map(|i| {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    let to = copies.path().join(format!("copy{i}"));
                    (to.clone(), s.backup(&to).unwrap())
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(counter(&s), 320);
        for (to, b) in taken {
            // Each copy is the store as of its last journal position: the counter and the
            // rows agree, and the audit chain (one record per transaction) is whole.
            assert!(b.last >= b.position);
            let copy = Kv::open(&to).unwrap();
            let n = counter(&copy);
            assert!((20..=320).contains(&n), "{n}");
            assert_eq!(copy.count(Table::Certs) as u64, n);
            assert_eq!(verify(&copy).unwrap(), n);
            // A copy is a store of its own: it takes writes.
            increment(&copy);
            assert_eq!(counter(&copy), n + 1);
        }
        // The target must be new.
        let again = copies.path().join("copy0");
        assert!(s.backup(&again).is_err());
    }

    #[test]
    fn a_read_only_store_reads_everything_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Kv::open(dir.path()).unwrap();
            for _ in 0..10 {
                increment(&s);
            }
            s.compact().unwrap();
            for _ in 0..5 {
                increment(&s);
            }
        }
        fs::remove_file(dir.path().join("lock")).unwrap();
        let before: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let ro = Kv::open_read_only(dir.path()).unwrap();
        assert_eq!(counter(&ro), 15);
        assert_eq!(verify(&ro).unwrap(), 15);
        assert!(matches!(
            ro.transact(&|t| t.insert(Table::Meta, b"x", b"y")),
            Err(Error::ReadOnly(_))
        ));
        assert!(matches!(ro.compact(), Err(Error::ReadOnly(_))));
        assert!(ro.writable().is_err());
        drop(ro);
        let after: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after, "a read-only open created or removed files");
    }

    #[test]
    fn a_crash_during_compaction_leaves_a_complete_store() {
        let dir = tempfile::tempdir().unwrap();
        let jp = Kv::journal_path(dir.path());
        let full_journal;
        {
            let s = Kv::open(dir.path()).unwrap();
            for _ in 0..30 {
                increment(&s);
            }
            full_journal = fs::read(&jp).unwrap();
            s.compact().unwrap();
        }
        // Crashed after the snapshot was put in place but before the journal was shortened:
        // the journal still holds records the snapshot has; they are skipped.
        fs::write(&jp, &full_journal).unwrap();
        // And an unfinished snapshot of a later compaction lies around.
        fs::write(dir.path().join(SNAPSHOT_TMP), b"half a snapshot").unwrap();
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        let s = Kv::open(dir.path()).unwrap();
        assert_eq!(counter(&s), 30);
        assert_eq!(verify(&s).unwrap(), 30);
        assert!(!dir.path().join(SNAPSHOT_TMP).exists());
        increment(&s);
        assert_eq!(counter(&s), 31);
    }

    #[test]
    fn a_damaged_snapshot_or_a_journal_gap_is_refused_not_papered_over() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Kv::open(dir.path()).unwrap();
            for _ in 0..10 {
                increment(&s);
            }
            s.compact().unwrap();
            increment(&s);
        }
        let snap = dir.path().join(SNAPSHOT);
        let good = fs::read(&snap).unwrap();
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 5] ^= 0xFF;
        fs::write(&snap, &bad).unwrap();
        fs::remove_dir_all(dir.path().join("sled")).unwrap();
        // Everything in the store's directory but its lock file, with contents.
        let state = || {
            let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_name() != "lock")
                .map(|e| {
                    let body = if e.path().is_file() {
                        fs::read(e.path()).unwrap()
                    } else {
                        Vec::new()
                    };
                    (e.file_name().to_string_lossy().into_owned(), body)
                })
                .collect();
            files.sort();
            files
        };
        let before = state();
        let e = Kv::open(dir.path())
            .err()
            .expect("a damaged snapshot must not rebuild");
        assert!(e.to_string().contains("damaged"), "{e}");
        assert_eq!(state(), before, "a refused open changes nothing");
        // A snapshot older than the journal's first record: records are missing.
        fs::write(&snap, &good).unwrap();
        let mut old = good.clone();
        old[4..12].copy_from_slice(&5u64.to_be_bytes());
        fs::write(&snap, &old).unwrap();
        let before = state();
        let e = Kv::open(dir.path()).err().expect("a gap must be refused");
        assert!(e.to_string().contains("missing"), "{e}");
        assert_eq!(state(), before, "a refused open changes nothing");
    }

    #[test]
    fn records_round_trip() {
        let ops = vec![
            Op::Put(Table::Audit, b"k".to_vec(), vec![0u8; 300]),
            Op::Del(Table::Access, b"z".to_vec()),
        ];
        let rec = encode_record(7, &ops);
        assert_eq!(&rec[..4], MAGIC);
        assert_eq!(decode_payload(&rec[HEADER..]).unwrap(), ops);
        assert!(decode_payload(&rec[HEADER..rec.len() - 1]).is_none());
    }
}
