//! Which storage engine a data directory uses, and copying a sled store into PostgreSQL.
//!
//! The choice is made here, in the root package, so that `ca` stays free of PostgreSQL:
//! `ca` opens sled by itself ([`Authority::open`]) or takes any engine as an
//! `Arc<dyn Storage>` ([`Authority::init_with`], [`Authority::open_with`]).
//!
//! * **sled** (the default): nothing to choose; the store is `DIR/db/`.
//! * **PostgreSQL**: `jpki init --store postgres://…` writes the URL to `DIR/store.toml`
//!   (`[store] url = "…"`, mode 0600: a URL may carry a password); every later command and
//!   `jpki serve` read it from there. `jpki store migrate --to postgres://…` copies a sled
//!   store into an empty PostgreSQL database and then writes the same file.
//!
//! A data directory on PostgreSQL is still owned by one process at a time, as with sled: the
//! process takes an exclusive lock on `DIR/store.lock`, so that while `jpki serve` runs the
//! CLI goes through its admin socket (and the server's OCSP cache and listeners see every
//! change). Several CA nodes on one database each have their own copy of the data directory,
//! and edge nodes an edge directory (`serve --role ca|edge`, docs/deployment.md).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca::clock::Clock;
use ca::storage::sled::{SledOptions, SledStorage};
use ca::storage::{fingerprint, Storage};
use ca::{Authority, Error};
use policies::profile::Scope;
use policies::{Hierarchy, Policy};
use serde::{Deserialize, Serialize};
use storage_postgres::PgStorage;
use time::OffsetDateTime;

/// `DIR/store.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreFile {
    pub store: StoreSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreSection {
    /// `postgres://…` or `postgresql://…`.
    pub url: String,
}

fn store_file(dir: &Path) -> PathBuf {
    dir.join("store.toml")
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn check_url(url: &str) -> ca::Result<()> {
    if is_postgres(url) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "unknown store `{}`: use postgres://… (sled, the default, needs no option)",
            url.split(':').next().unwrap_or(url)
        )))
    }
}

/// The PostgreSQL URL a data directory's `store.toml` names, if it has one.
pub fn configured_url(dir: &Path) -> ca::Result<Option<String>> {
    let path = store_file(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()))(e)),
    };
    let f: StoreFile =
        toml::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    check_url(&f.store.url)?;
    Ok(Some(f.store.url))
}

fn write_store_file(dir: &Path, url: &str) -> ca::Result<()> {
    let path = store_file(dir);
    let text = toml::to_string(&StoreFile {
        store: StoreSection {
            url: url.to_owned(),
        },
    })
    .map_err(|e| Error::Invalid(format!("encode store.toml: {e}")))?;
    ca::datadir::replace_private(&path, text.as_bytes())
}

/// Connects to PostgreSQL, holding the data directory's lock (see the module docs).
fn open_postgres(dir: &Path, url: &str) -> ca::Result<Arc<dyn Storage>> {
    let lock = lock_dir(dir)?;
    let mut store = PgStorage::open(url)?;
    store.keep_alive(Box::new(lock));
    Ok(Arc::new(store))
}

/// The exclusive lock on `DIR/store.lock`; [`Error::Locked`] when another process holds it.
fn lock_dir(dir: &Path) -> ca::Result<File> {
    let path = dir.join("store.lock");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(Error::io(format!("create {}", path.display())))?;
    // A lock just released by this process can still be held for a moment by a child that
    // inherited the descriptor while it execs (as the sled engine allows for too).
    for tries in 0.. {
        match f.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if tries < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked(dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("lock {}", path.display()))(e))
            }
        }
    }
    Ok(f)
}

/// `jpki init`: on sled, or on the PostgreSQL database `url` (remembered in `store.toml`);
/// the CA keys in the PKCS#11 token `hsm` when given (remembered in `hsm.toml`).
pub fn init(
    dir: &Path,
    url: Option<&str>,
    policy_text: &str,
    passphrase: &[u8],
    clock: Arc<dyn Clock>,
    hsm: Option<&ca::hsm::HsmConfig>,
) -> ca::Result<Authority> {
    let Some(url) = url else {
        return Authority::init_keys(dir, None, policy_text, passphrase, clock, hsm);
    };
    check_url(url)?;
    let store: Arc<dyn Storage> = Arc::new(PgStorage::open(url)?);
    let a = Authority::init_keys(dir, Some(store), policy_text, passphrase, clock, hsm)?;
    if let Err(e) = write_store_file(dir, url) {
        // The directory is of no use without it; init removes it on failure as well.
        let _ = std::fs::remove_dir_all(dir);
        return Err(e);
    }
    // Take the directory's lock for as long as this authority lives: reopen through it.
    let passphrase = Some(passphrase.to_vec());
    let clock = a.clock().clone();
    drop(a);
    open(dir, passphrase, clock)
}

/// Opens a data directory on the engine it was made with.
pub fn open(
    dir: &Path,
    passphrase: Option<Vec<u8>>,
    clock: Arc<dyn Clock>,
) -> ca::Result<Authority> {
    open_with(dir, passphrase, clock, &SledOptions::default())
}

/// [`open`], a sled store opened as `sled` says (`jpki serve`'s `[store] cache_mib`; a
/// PostgreSQL store keeps no page cache in this process).
pub fn open_with(
    dir: &Path,
    passphrase: Option<Vec<u8>>,
    clock: Arc<dyn Clock>,
    sled: &SledOptions,
) -> ca::Result<Authority> {
    match configured_url(dir)? {
        None => Authority::open_sled_with(dir, passphrase, clock, sled),
        Some(url) => {
            if !dir.join("policy.toml").exists() {
                return Err(Error::NoDataDir(dir.display().to_string()));
            }
            let store = open_postgres(dir, &url)?;
            Authority::open_with(dir, store, passphrase, clock)
        }
    }
}

/// Opens a data directory for reading only (`jpki --read-only`): a store copy on read-only
/// media. Nothing is created, locked or changed in it, and every write is refused
/// ([`Error::ReadOnly`]). sled only: a PostgreSQL store is read through the database's own
/// read-only roles.
pub fn open_read_only(
    dir: &Path,
    passphrase: Option<Vec<u8>>,
    clock: Arc<dyn Clock>,
) -> ca::Result<Authority> {
    if configured_url(dir)?.is_some() {
        return Err(Error::Invalid(
            "--read-only opens sled stores; for PostgreSQL connect with a read-only database role"
                .into(),
        ));
    }
    if !dir.join("policy.toml").exists() {
        return Err(Error::NoDataDir(dir.display().to_string()));
    }
    let store = SledStorage::open_read_only(&dir.join("db"))?;
    Authority::open_with(dir, Arc::new(store), passphrase, clock)
}

/// What `jpki store migrate` copied.
#[derive(Debug, Default, Serialize)]
pub struct Migrated {
    pub certificates: u64,
    pub revoked_or_held: u64,
    /// Entries of the certificates' status histories (issue #18).
    pub status_changes: u64,
    pub residents: u64,
    pub scheduled: u64,
    pub audit_records: u64,
    pub operators: u64,
    pub service_providers: u64,
    pub consents: u64,
    pub access_entries: u64,
    pub crl_states: u64,
    /// Keys never to be certified again (revoked for keyCompromise).
    pub blocked_keys: u64,
    /// The CA's officers (`ca::officers`).
    pub officers: u64,
    /// Signed checkpoints of the audit chain (`ca::checkpoint`).
    pub checkpoints: u64,
    /// Entries of the revocation log edges follow, sequence numbers kept (issue #13).
    pub revocation_log: u64,
    /// CRL leases of CA nodes (who may publish which CRL until when).
    pub crl_leases: u64,
}

/// Units of work of at most this many records.
const BATCH: usize = 500;

/// Writes `items` in units of work of [`BATCH`].
fn in_batches<T>(
    to: &dyn Storage,
    items: &[T],
    write: &dyn Fn(&dyn ca::storage::Tx, &T) -> ca::Result<()>,
) -> ca::Result<()> {
    for chunk in items.chunks(BATCH) {
        to.transact(&|t| chunk.iter().try_for_each(|item| write(t, item)))?;
    }
    Ok(())
}

/// Copies everything `from` holds into the empty `to` through the storage boundary only
/// (reads through [`Storage`], writes through [`ca::storage::Tx`]); audit records verbatim.
pub fn copy(from: &dyn Storage, to: &dyn Storage, policy: &Policy) -> ca::Result<Migrated> {
    let mut n = Migrated::default();
    let mut any = false;
    to.for_each_certificate(&mut |_| {
        any = true;
        Ok(())
    })?;
    if any || to.audit_head()?.is_some() {
        return Err(Error::Invalid(
            "the target store is not empty; migrate into a new, empty database".into(),
        ));
    }
    // Certificates (with their key index entries), then the statuses that are not good.
    let mut certs = Vec::new();
    from.for_each_certificate(&mut |c| {
        certs.push(c);
        Ok(())
    })?;
    n.certificates = certs.len() as u64;
    in_batches(to, &certs, &|t, c| {
        let key = match c.holder {
            Some(_) => Some(fingerprint(&c.spki()?)),
            None => None,
        };
        t.add_certificate(c, key.as_ref())
    })?;
    let mut statuses = Vec::new();
    for c in &certs {
        match from.status(c.hierarchy, &c.serial)? {
            Some(s) if s.state != ca::records::State::Good => statuses.push((c.clone(), s)),
            Some(_) => {}
            None => {
                return Err(Error::Store(format!(
                    "certificate {} has no status in the source store",
                    hex::encode_upper(&c.serial)
                )))
            }
        }
    }
    n.revoked_or_held = statuses.len() as u64;
    in_batches(to, &statuses, &|t, (c, s)| t.set_status(c, s))?;
    // Each certificate's status history, change by change, so that a verification as of a
    // past moment answers the same on the new engine.
    let mut history = Vec::new();
    for c in &certs {
        for change in from.status_history(c.hierarchy, &c.serial)? {
            history.push((c.clone(), change));
        }
    }
    n.status_changes = history.len() as u64;
    in_batches(to, &history, &|t, (c, change)| t.log_status(c, change))?;
    drop(certs);
    // The revocation log, verbatim (sequence numbers kept): it replaces the entries the
    // status writes above appended, so that an edge's position in the log means the same on
    // the copy.
    let mut log = Vec::new();
    loop {
        let after = log
            .last()
            .map_or(0, |e: &ca::storage::RevocationLogEntry| e.seq);
        let page = from.revocations_since(after, 10_000)?;
        if page.is_empty() {
            break;
        }
        log.extend(page);
    }
    n.revocation_log = log.len() as u64;
    to.transact(&|t| t.import_revocation_log(&log))?;
    if to.revocation_log_head()? != from.revocation_log_head()? {
        return Err(Error::Store(
            "the copied revocation log's head differs from the source's".into(),
        ));
    }
    drop(log);
    // Serial counters.
    to.transact(&|t| {
        for h in Hierarchy::ALL {
            t.note_serial(h, from.serial_counter(h)?)?;
        }
        Ok(())
    })?;
    // Residents, their scheduled events, consents and access log.
    let mut residents = Vec::new();
    from.for_each_resident(&mut |r| {
        residents.push(r);
        Ok(())
    })?;
    n.residents = residents.len() as u64;
    in_batches(to, &residents, &|t, r| t.put_resident(r))?;
    let scheduled = from.due_events(
        OffsetDateTime::from_unix_timestamp(253_402_300_799)
            .map_err(|e| Error::Invalid(e.to_string()))?,
    )?;
    n.scheduled = scheduled.len() as u64;
    in_batches(to, &scheduled, &|t, s| t.schedule(s))?;
    // Platform operators (with their client keys), service providers.
    let operators = from.operators()?;
    n.operators = operators.len() as u64;
    in_batches(to, &operators, &|t, op| {
        t.put_operator(op)?;
        op.keys
            .iter()
            .try_for_each(|fp| match from.operator_by_key(fp)? {
                Some(owner) => t.bind_operator_key(fp, &owner),
                None => Ok(()),
            })
    })?;
    // Officers (record, name and key indexes in one write each).
    let officers = from.officers()?;
    n.officers = officers.len() as u64;
    in_batches(to, &officers, &|t, o| t.put_officer(o))?;
    let sps = from.service_providers()?;
    n.service_providers = sps.len() as u64;
    in_batches(to, &sps, &|t, sp| t.put_service_provider(sp))?;
    for r in &residents {
        let mut consents = Vec::new();
        for sp in &sps {
            consents.extend(from.consents_of(&r.id, &sp.id)?);
        }
        n.consents += consents.len() as u64;
        in_batches(to, &consents, &|t, c| t.put_consent(c))?;
        let log: Vec<(u64, ca::records::platform::Access)> =
            (0u64..).zip(from.access_log(&r.id)?).collect();
        n.access_entries += log.len() as u64;
        in_batches(to, &log, &|t, (seq, a)| t.append_access(a, *seq))?;
    }
    // The platform's usage counters.
    let mut usage = Vec::new();
    from.for_each_usage(&mut |u| {
        usage.push(u);
        Ok(())
    })?;
    in_batches(to, &usage, &|t, u| t.add_usage(u))?;
    if n.access_entries != from.access_count()? {
        return Err(Error::Store(format!(
            "the source's access log has {} entries, {} of them by registered residents: \
             not copied",
            from.access_count()?,
            n.access_entries
        )));
    }
    // CRL state and dirty marks, as the source has them: every CRL it knows (serial and
    // municipal partitions, CA-level CRLs) and the policy's serial partitions.
    // (Every root generation's CRLs: the store lists them by generation.)
    let mut scopes: std::collections::BTreeSet<ca::storage::CrlId> =
        from.crl_scopes()?.into_iter().collect();
    for h in Hierarchy::ALL {
        scopes.extend((0..policy.crl.partitions).map(|p| (h, 1, Scope::Partition(p))));
        scopes.insert((h, 1, Scope::Ca));
    }
    let dirty = from.dirty_partitions()?;
    for (h, g, scope) in &scopes {
        let (h, g) = (*h, *g);
        let state = from.crl_state(h, g, scope.clone())?;
        n.crl_states += u64::from(state.is_some());
        let is_dirty = dirty.contains(&(h, g, scope.clone()));
        let lease = from.crl_lease(h, g, scope.clone())?;
        n.crl_leases += u64::from(lease.is_some());
        to.transact(&|t| {
            if let Some(s) = &state {
                t.put_crl_state(h, g, scope.clone(), s)?;
            }
            if let Some(l) = &lease {
                t.put_crl_lease(h, g, scope.clone(), l)?;
            }
            if is_dirty {
                t.set_crl_dirty(h, g, scope.clone())
            } else {
                t.clear_crl_dirty(h, g, scope.clone())
            }
        })?;
    }
    // The blocklist of compromised keys.
    let mut blocked = Vec::new();
    from.for_each_blocked_key(&mut |fp| {
        blocked.push(fp);
        Ok(())
    })?;
    n.blocked_keys = blocked.len() as u64;
    in_batches(to, &blocked, &|t, fp| t.block_key(fp))?;
    // The audit chain, verbatim.
    let mut from_seq = 0u64;
    loop {
        let records = from.audit_records(from_seq, BATCH)?;
        let Some(last) = records.last() else {
            break;
        };
        from_seq = last.seq + 1;
        n.audit_records += records.len() as u64;
        to.transact(&|t| records.iter().try_for_each(|r| t.import_audit(r.clone())))?;
    }
    if to.audit_head()? != from.audit_head()? {
        return Err(Error::Store(
            "the copied audit chain's head differs from the source's".into(),
        ));
    }
    // The signed checkpoints, so that `audit verify --checkpoints` holds on the copy.
    let checkpoints = from.checkpoints()?;
    n.checkpoints = checkpoints.len() as u64;
    in_batches(to, &checkpoints, &|t, c| t.put_checkpoint(c))?;
    to.check_consistency()?;
    Ok(n)
}

/// `jpki store migrate --to URL`: copies the data directory's sled store into the empty
/// PostgreSQL database `url`, then switches the directory to it (`store.toml`). The sled
/// store (`DIR/db/`) is left as it was, unused; remove it once satisfied.
pub fn migrate(dir: &Path, url: &str) -> ca::Result<Migrated> {
    check_url(url)?;
    if configured_url(dir)?.is_some() {
        return Err(Error::Invalid(
            "this data directory already uses PostgreSQL (store.toml)".into(),
        ));
    }
    let policy_text = std::fs::read_to_string(dir.join("policy.toml"))
        .map_err(|_| Error::NoDataDir(dir.display().to_string()))?;
    let policy = Policy::from_toml(&policy_text)?;
    let from = SledStorage::open(&ca::datadir::DataDir::new(dir).db()).map_err(|e| match e {
        Error::Locked(d) => Error::Locked(format!(
            "{d} (stop `jpki serve` before migrating its store)"
        )),
        e => e,
    })?;
    let to = PgStorage::open(url)?;
    let n = copy(&from, &to, &policy)?;
    write_store_file(dir, url)?;
    Ok(n)
}
