//! The store: the project's own trait over an ordered key-value database, with a sled
//! implementation (sled 0.34, the requested engine; `crate-notes.md` §11 explains its limits,
//! which is why it sits behind this trait).
//!
//! Tables (the design's trees, `design.md` "Store"):
//!
//! | table | key | value |
//! |---|---|---|
//! | certs | hierarchy · serial | [`crate::records::CertRecord`] (JSON) |
//! | by_holder | holder id · 0x00 · hierarchy · serial | empty |
//! | status | hierarchy · serial | [`crate::records::StatusRecord`] (JSON) |
//! | revoked | hierarchy · scope (u16 BE, 0xFFFF = CA-level) · serial | [`crate::records::RevokedEntry`] (fixed 26 bytes) |
//! | keys | SHA-256 of the SubjectPublicKeyInfo | holder id · 0x00 · hierarchy |
//! | residents | holder id | [`crate::records::Resident`] (JSON) |
//! | scheduled | due time (i64 BE) · holder id | event (JSON) |
//! | meta | name | counters, the audit head |
//! | audit | sequence (u64 BE) | [`crate::audit::Record`] (JSON) |
//! | crl | hierarchy · scope | CRL publisher state |
//!
//! **Durability.** [`Store::transact`] returns only after the transaction is on disk. Flushes
//! are group-committed: concurrent writers that committed before a flush started share it,
//! so throughput scales with concurrency while every acknowledgement stays durable.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::error::{Error, Result};

/// The tables of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
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
}

impl Table {
    const ALL: [Table; 10] = [
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
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a transaction body stopped: a domain error (the transaction is rolled back and the
/// error returned), or a store failure.
pub type TxResult<T> = std::result::Result<T, Error>;

/// Reads and writes inside one transaction. Writes become visible, all together, when the
/// body returns `Ok`.
pub trait Txn {
    fn get(&self, t: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>>;
    fn insert(&self, t: Table, key: &[u8], value: &[u8]) -> TxResult<()>;
    fn remove(&self, t: Table, key: &[u8]) -> TxResult<()>;
}

/// A key-value pair from a scan.
pub type Pair = (Vec<u8>, Vec<u8>);

/// The project's store interface. Implementations must make `transact` atomic across tables
/// and durable before it returns.
pub trait Store: Send + Sync {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs whose key starts with `prefix`, in key order.
    fn scan(&self, t: Table, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_>;
    /// Pairs with `start <= key < end`, in key order.
    fn range(
        &self,
        t: Table,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + '_>;
    /// Runs `body` atomically over all tables and returns after the result is durable. The
    /// body may run more than once (on a conflict); it must have no other side effects.
    fn transact(&self, body: &dyn Fn(&dyn Txn) -> TxResult<()>) -> Result<()>;
    /// Number of records in a table.
    fn count(&self, t: Table) -> usize;
}

/// sled behind [`Store`].
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Transactions committed (a ticket per commit).
    committed: AtomicU64,
    /// Highest ticket known to be on disk.
    flushed: AtomicU64,
    flush_lock: Mutex<()>,
}

impl SledStore {
    /// Opens (or creates) the database in `dir`. A second process gets [`Error::Locked`].
    pub fn open(dir: &Path) -> Result<SledStore> {
        let db = sled::Config::new().path(dir).open().map_err(|e| match &e {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                Error::Locked(format!("{}: {e}", dir.display()))
            }
            _ => Error::Store(format!("open {}: {e}", dir.display())),
        })?;
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(SledStore {
            db,
            trees,
            committed: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flush_lock: Mutex::new(()),
        })
    }

    fn tree(&self, t: Table) -> &sled::Tree {
        &self.trees[t.index()]
    }

    /// Group commit: returns once everything committed before this call is on disk.
    fn sync(&self) -> Result<()> {
        let ticket = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every commit holding a ticket up to `upto` finished before taking it, so this
        // flush covers all of them.
        let upto = self.committed.load(Ordering::SeqCst);
        self.db.flush()?;
        self.flushed.store(upto, Ordering::SeqCst);
        Ok(())
    }
}

struct SledTxn<'a> {
    trees: &'a [TransactionalTree],
}

/// A read or write inside a transaction failed: a conflict (sled re-runs the body) or storage.
fn tx_err(e: sled::transaction::UnabortableTransactionError) -> Error {
    match e {
        sled::transaction::UnabortableTransactionError::Conflict => Error::Retry,
        other => Error::Store(other.to_string()),
    }
}

impl Txn for SledTxn<'_> {
    fn get(&self, t: Table, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
        Ok(self.trees[t.index()]
            .get(key)
            .map_err(tx_err)?
            .map(|v| v.to_vec()))
    }
    fn insert(&self, t: Table, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.trees[t.index()].insert(key, value).map_err(tx_err)?;
        Ok(())
    }
    fn remove(&self, t: Table, key: &[u8]) -> TxResult<()> {
        self.trees[t.index()].remove(key).map_err(tx_err)?;
        Ok(())
    }
}

impl Store for SledStore {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(t).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, t: Table, prefix: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        Box::new(self.tree(t).scan_prefix(prefix).map(|r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(Error::from)
        }))
    }

    fn range(
        &self,
        t: Table,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        Box::new(self.tree(t).range(start.to_vec()..end.to_vec()).map(|r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(Error::from)
        }))
    }

    fn transact(&self, body: &dyn Fn(&dyn Txn) -> TxResult<()>) -> Result<()> {
        let refs: Vec<&sled::Tree> = self.trees.iter().collect();
        let result = refs
            .as_slice()
            .transaction(|trees: &Vec<TransactionalTree>| {
                let txn = SledTxn { trees };
                match body(&txn) {
                    Ok(()) => Ok(()),
                    Err(Error::Retry) => Err(ConflictableTransactionError::Conflict),
                    Err(e) => Err(ConflictableTransactionError::Abort(e)),
                }
            });
        match result {
            Ok(()) => self.sync(),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn count(&self, t: Table) -> usize {
        self.tree(t).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_are_atomic_and_aborts_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
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
        let _s = SledStore::open(dir.path()).unwrap();
        // sled's lock is per process (flock), so probe from a child process: the test binary
        // re-run with a filter that only opens the store.
        if std::env::var("JPKI_LOCK_PROBE").is_ok() {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "store::tests::lock_probe", "--nocapture"])
            .env("JPKI_LOCK_DIR", dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("LOCKED"), "{text}");
    }

    #[test]
    fn lock_probe() {
        if let Ok(dir) = std::env::var("JPKI_LOCK_DIR") {
            match SledStore::open(Path::new(&dir)) {
                Err(Error::Locked(_)) => println!("LOCKED"),
                Err(e) => println!("OTHER {e}"),
                Ok(_) => println!("OPENED"),
            }
        }
    }
}
