//! The PostgreSQL engine of jpki's storage authority: [`PgStorage`] implements
//! [`ca::storage::Storage`] and its units of work [`ca::storage::Tx`] on a relational schema
//! ([`schema`]), so that an installation that outgrows one machine runs on a proven database
//! rather than on the embedded sled store. It passes the same conformance suite
//! (`ca::storage::conformance`) as the sled and in-memory engines.
//!
//! # Dependencies, and why
//!
//! * **tokio-postgres + deadpool-postgres**, with a small dedicated tokio runtime owned by the
//!   engine. The storage traits are synchronous (the CA calls them from plain threads and from
//!   `spawn_blocking`), so each call drives its future with the engine's runtime
//!   (`Runtime::block_on`, callable from many threads at once); the connections' I/O tasks run
//!   on the runtime's one worker thread. The blocking `postgres` crate was the alternative:
//!   it hides a current-thread runtime per connection, which gives no pool (deadpool-postgres
//!   is async), and its `block_on` panics when called from a thread that is inside a runtime
//!   exactly as ours would; owning one runtime keeps a single, visible place where async
//!   meets sync, and the pool bounds the connections a CA node opens. The consequence, for
//!   both: a storage call must not be made from an async task's own thread (jpki makes them
//!   from `spawn_blocking`, as it must for sled's blocking I/O anyway).
//! * **tokio-postgres-rustls** for TLS to the database (`sslmode=verify-full|verify-ca` and
//!   `sslrootcert` in the URL; [`tls`] says what each mode does and why `prefer` is refused):
//!   the maintained adapter between rustls (the workspace's TLS stack, aws-lc-rs provider) and
//!   tokio-postgres, which also gives SCRAM channel binding the certificate's hash. Without
//!   `sslmode` the connection is unencrypted, for a Unix socket or a trusted network.
//! * No ORM, no query macros: plain SQL strings, prepared once per connection
//!   (`prepare_cached`).
//!
//! # Isolation
//!
//! Every unit of work runs `BEGIN ISOLATION LEVEL SERIALIZABLE` and then, **before its first
//! query**, `LOCK TABLE writer_lock IN EXCLUSIVE MODE`. A SERIALIZABLE transaction's snapshot is
//! taken at its first query, not at `BEGIN` or `LOCK`, so the body reads the state left by the
//! last writer to commit. Why one lock rather than SERIALIZABLE alone: every audited unit of
//! work (issuance, revocation, register events — nearly all of them) updates the audit chain's
//! head, and issuance raises the serial counter; under SSI alone every pair of concurrent
//! writers would conflict on that row and all but one would fail with SQLSTATE 40001 and run
//! again, so concurrency would buy retries, not throughput. The lock makes writers queue
//! instead (CA writes are a few per second on average; a unit of work holds the lock for a
//! few round trips, never while signing: issuance signs before its transaction). Readers
//! (`Storage` reads outside a unit of work) never take it and see the last committed state.
//! This holds across CA nodes sharing the database: the lock is the database's, not the
//! process's. SERIALIZABLE stays as the safety net for anything that writes without the lock
//! (a DBA's hand, a later engine version), and a serialization failure (40001) or deadlock
//! (40P01) — including one reported at `COMMIT` — rolls back and **re-runs the body**, as the
//! trait allows, up to [`MAX_ATTEMPTS`] times.
//!
//! `Tx::audit` records and `Tx::import_audit` copies are linked at commit, in the order the
//! body asked for them, with the pure `ca::audit::link` / `ca::audit::follow`, reading the
//! head in the same transaction; `Tx::note_serial` raises the counter with `GREATEST`.
//! `set_status` writes the status, the CRL entry, the dirty mark and a row of the append-only
//! `revocation_log` in the same transaction.
//!
//! # Durability
//!
//! Committed is durable: the engine sets `synchronous_commit = on` on every connection, so
//! `COMMIT` returns after the WAL is flushed (on a primary with synchronous standbys, after
//! they confirm as configured). If the connection drops *during* `COMMIT`, the outcome is
//! unknown; the engine then reports an error and does not re-run the body (it might run
//! twice), as any client of a database must.
//!
//! # Migrations
//!
//! [`schema::MIGRATIONS`] are applied at [`PgStorage::open`], under an advisory lock; a
//! database already at a newer version than the binary knows is refused with
//! [`PgError::SchemaTooNew`].
//!
//! # Edges
//!
//! [`PgStorage::open_follower`] opens an edge's read-only view (a primary or a hot standby);
//! [`PgStorage::revocation_wakeups`] ([`wakeups`]) wakes an edge on the primary as soon as a
//! revocation commits (LISTEN/NOTIFY), polling staying its safety net.

pub mod schema;
pub mod testing;
pub mod tls;
pub mod wakeups;

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ca::audit::{AuditIntent, Head, Record};
use ca::officers::Officer;
use ca::records::platform::{Access, Consent, Operator, ServiceProvider, Usage};
use ca::records::{
    CertKind, CertRecord, Resident, RevokedEntry, State, StatusChange, StatusRecord,
};
use ca::storage::{
    fingerprint, revoked_entry, scope_of, CommitStats, Compaction, CrlId, CrlLease, Generation,
    IssuedEntry, KeyFingerprint, KeyOwner, RevocationLogEntry, Revoked, Scheduled, ScheduledKind,
    Storage, Tx,
};
use ca::storage::{SignerAnswer, SignerRequest};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use policies::profile::Scope;
use policies::{Hierarchy, Reason};
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

use tls::Mode;

/// How often a unit of work is run before a serialization failure is given up on.
pub const MAX_ATTEMPTS: u32 = 20;

/// The crate's errors; at the storage boundary each becomes `ca::Error::Store` with its
/// message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    #[error("cannot start the database runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("PostgreSQL: {}", chain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("TLS to PostgreSQL: {0}")]
    Tls(String),
    #[error(
        "the database's schema is at version {found}, newer than this binary knows ({known}): \
         upgrade jpki before using this database"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error(
        "the database's schema is at version {found}, older than this binary's ({known}): \
         start a CA node (or `jpki store migrate`) on the primary first, which migrates it"
    )]
    SchemaTooOld { found: i32, known: i32 },
    #[error("the database holds a value this engine cannot read: {0}")]
    Decode(String),
    #[error("gave up after {0} serialization failures in a row")]
    TooManyRetries(u32),
    #[error("the connection failed during COMMIT: the outcome is unknown ({})", chain(.0))]
    CommitUnknown(tokio_postgres::Error),
}

/// An error and its sources, joined with ": " (tokio-postgres' own `Display` leaves out the
/// cause, e.g. which certificate problem failed a TLS handshake).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

impl From<PgError> for ca::Error {
    fn from(e: PgError) -> ca::Error {
        ca::Error::Store(format!("postgres: {e}"))
    }
}

type Result<T> = ca::Result<T>;

fn db(e: tokio_postgres::Error) -> ca::Error {
    PgError::Db(e).into()
}

fn decode(what: impl Into<String>) -> ca::Error {
    PgError::Decode(what.into()).into()
}

// ----- encodings ---------------------------------------------------------------------------

fn h_code(h: Hierarchy) -> i16 {
    i16::from(h.tag())
}

fn h_from(v: i16) -> Result<Hierarchy> {
    Hierarchy::ALL
        .into_iter()
        .find(|h| h_code(*h) == v)
        .ok_or_else(|| decode(format!("hierarchy {v}")))
}

/// The CA-level CRL's scope number: after every partition.
const CA_SCOPE: i32 = 1 << 16;
/// A municipal partition's scope number, with its names beside it (migration 3): after the
/// serial partitions (the policy allows up to 4096), before the CA-level CRL.
const MUNICIPAL_SCOPE: i32 = (1 << 16) - 1;

/// A scope as its three columns: (crl_scope, crl_prefecture, crl_municipality).
fn scope_cols(s: &Scope) -> (i32, &str, &str) {
    match s {
        Scope::Partition(p) => (i32::from(*p), "", ""),
        Scope::Municipal(m) => (MUNICIPAL_SCOPE, m.prefecture(), m.municipality()),
        Scope::Ca => (CA_SCOPE, "", ""),
    }
}

/// A root generation as its column (migration 10).
fn g_code(g: Generation) -> Result<i32> {
    i32::try_from(g).map_err(|_| ca::Error::Invalid(format!("root generation {g} is too large")))
}

fn g_from(v: i32) -> Result<Generation> {
    u32::try_from(v)
        .ok()
        .filter(|g| *g >= 1)
        .ok_or_else(|| decode(format!("root generation {v}")))
}

fn scope_from(v: i32, prefecture: &str, municipality: &str) -> Result<Scope> {
    match v {
        CA_SCOPE => Ok(Scope::Ca),
        MUNICIPAL_SCOPE => policies::Municipality::new(prefecture, municipality)
            .map(Scope::Municipal)
            .map_err(|e| decode(format!("CRL scope: {e}"))),
        _ => u16::try_from(v)
            .ok()
            .filter(|p| i32::from(*p) < MUNICIPAL_SCOPE)
            .map(Scope::Partition)
            .ok_or_else(|| decode(format!("CRL scope {v}"))),
    }
}

/// The scope of a scope-keyed row whose columns `i`, `i + 1`, `i + 2` are crl_scope,
/// crl_prefecture, crl_municipality.
fn scope_at(row: &Row, i: usize) -> Result<Scope> {
    scope_from(
        row.get(i),
        row.get::<_, &str>(i + 1),
        row.get::<_, &str>(i + 2),
    )
}

fn ns(t: OffsetDateTime) -> Result<i64> {
    i64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| ca::Error::Invalid(format!("instant {t} is out of the storable range")))
}

fn from_ns(v: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v))
        .map_err(|e| decode(format!("instant {v}: {e}")))
}

fn opt_ns(t: Option<OffsetDateTime>) -> Result<Option<i64>> {
    t.map(ns).transpose()
}

fn opt_from_ns(v: Option<i64>) -> Result<Option<OffsetDateTime>> {
    v.map(from_ns).transpose()
}

fn kind_from(s: &str) -> Result<CertKind> {
    CertKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| decode(format!("certificate kind {s}")))
}

fn state_from(s: &str) -> Result<State> {
    [State::Good, State::Held, State::Revoked]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| decode(format!("status {s}")))
}

fn reason_from(v: i16) -> Result<Reason> {
    u8::try_from(v)
        .ok()
        .and_then(Reason::from_code)
        .ok_or_else(|| decode(format!("reason code {v}")))
}

fn sched_kind_from(s: &str) -> Result<ScheduledKind> {
    match s {
        "emigrate" => Ok(ScheduledKind::Emigrate),
        other => Err(decode(format!("scheduled event kind {other}"))),
    }
}

fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| decode(format!("negative {what}")))
}

fn i64_of(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| ca::Error::Invalid(format!("{what} {v} is too large to store")))
}

/// A serial counter (the whole u64 range) as a bigint, order kept: `n - 2^63`.
fn counter_code(n: u64) -> i64 {
    (n ^ (1 << 63)) as i64
}

fn counter_from(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

fn json<T: serde::de::DeserializeOwned>(row: &Row, col: &str) -> Result<T> {
    let Json(v) = row
        .try_get::<_, Json<T>>(col)
        .map_err(|e| decode(format!("{col}: {e}")))?;
    Ok(v)
}

const CERT_COLS: &str =
    "c.hierarchy, c.serial, c.kind, c.holder, c.crl_partition, c.not_before_ns, c.not_after_ns, c.der, \
     c.crl_prefecture, c.crl_municipality, c.generation";

/// How many columns [`CERT_COLS`] selects (where the columns after them start).
const CERT_COL_COUNT: usize = 11;

fn cert_from(row: &Row) -> Result<CertRecord> {
    Ok(CertRecord {
        hierarchy: h_from(row.get(0))?,
        serial: row.get(1),
        kind: kind_from(row.get(2))?,
        holder: row.get(3),
        partition: row
            .get::<_, Option<i32>>(4)
            .map(|p| {
                let names: (Option<&str>, Option<&str>) = (row.get(8), row.get(9));
                scope_from(p, names.0.unwrap_or(""), names.1.unwrap_or(""))
            })
            .transpose()?,
        generation: g_from(row.get(10))?,
        not_before: from_ns(row.get(5))?,
        not_after: from_ns(row.get(6))?,
        der: row.get(7),
    })
}

const STATUS_COLS: &str = "s.state, s.reason, s.since_ns, s.invalidity_ns";

/// A status from four columns starting at `at`.
fn status_from(row: &Row, at: usize) -> Result<StatusRecord> {
    Ok(StatusRecord {
        state: state_from(row.get(at))?,
        reason: row
            .get::<_, Option<i16>>(at + 1)
            .map(reason_from)
            .transpose()?,
        since: opt_from_ns(row.get(at + 2))?,
        invalidity: opt_from_ns(row.get(at + 3))?,
    })
}

fn scheduled_from(row: &Row) -> Result<Scheduled> {
    Ok(Scheduled {
        at: from_ns(row.get(0))?,
        resident: row.get(1),
        kind: sched_kind_from(row.get(2))?,
    })
}

fn audit_from(row: &Row) -> Result<Record> {
    let at: String = row.get(1);
    Ok(Record {
        seq: u64_of(row.get(0), "audit sequence")?,
        at: OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
            .map_err(|e| decode(format!("audit time {at}: {e}")))?,
        action: row.get(2),
        subject: row.get(3),
        detail: row.get(4),
        prev: row.get(5),
        hash: row.get(6),
        v: u32::try_from(row.get::<_, i32>(7)).map_err(|_| decode("audit format"))?,
        actor: row.get(8),
    })
}

fn rfc3339(t: OffsetDateTime) -> Result<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ca::Error::Invalid(format!("audit time {t}: {e}")))
}

fn head_from(row: &Row) -> Result<Head> {
    Ok(Head {
        seq: u64_of(row.get(0), "audit head")?,
        hash: row.get(1),
    })
}

// ----- the engine --------------------------------------------------------------------------

/// What the engine counts (see [`Storage::commit_stats`]).
#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    transactions: AtomicU64,
    stage_us: AtomicU64,
    sync_us: AtomicU64,
}

/// The PostgreSQL storage authority (see the crate docs).
/// A PostgreSQL server's replication state ([`PgStorage::replication`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replication {
    /// The server is a standby in recovery.
    pub standby: bool,
    /// Seconds since a standby replayed its primary's last transaction.
    pub replay_age: Option<f64>,
    /// On a standby: whether its WAL receiver is streaming from the primary.
    pub streaming: Option<bool>,
}

pub struct PgStorage {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// How the pool connects: for connections of its own ([`PgStorage::revocation_wakeups`]).
    target_config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    tls_mode: Mode,
    stats: Stats,
    /// Whatever must live as long as the engine (a data directory's lock).
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl Drop for PgStorage {
    fn drop(&mut self) {
        // Dropping a runtime blocks; from inside another runtime's task that panics.
        // `shutdown_background` never blocks; the pool's connections close with their tasks.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Connections the pool opens at most.
const POOL_SIZE: usize = 16;

impl PgStorage {
    /// Connects to `url` (`postgres://user@host/db`, or `postgresql:///db?host=/socket/dir`),
    /// applies the missing migrations and checks the schema's version.
    pub fn open(url: &str) -> std::result::Result<PgStorage, PgError> {
        let store = PgStorage::connect(url, Duration::from_secs(10))?;
        store.migrate()?;
        store.index_identities()?;
        Ok(store)
    }

    /// Fills in the identity index (migration 11) of residents written before it, a chunk at
    /// a time (each row's key is set once; a resident written meanwhile gets its key from
    /// `put_resident`).
    fn index_identities(&self) -> std::result::Result<(), PgError> {
        loop {
            let rows = self
                .query(
                    "SELECT id, record FROM residents WHERE identity IS NULL ORDER BY id LIMIT $1",
                    &[&CHUNK],
                )
                .map_err(|e| PgError::Decode(e.to_string()))?;
            for row in &rows {
                let id: String = row.get(0);
                let r: Resident =
                    json(row, "record").map_err(|e| PgError::Decode(e.to_string()))?;
                let key = ca::storage::identity_key(r.attributes.name(), r.attributes.birth());
                self.query(
                    "UPDATE residents SET identity = $1 WHERE id = $2 AND identity IS NULL",
                    &[&&key[..], &id],
                )
                .map_err(|e| PgError::Decode(e.to_string()))?;
            }
            if (rows.len() as i64) < CHUNK {
                return Ok(());
            }
        }
    }

    /// Connects to `url` for an edge node, which only reads: possibly a read-only hot standby,
    /// so nothing is migrated (a CA node does that on the primary). A schema other than the
    /// one this binary knows is refused — newer with [`PgError::SchemaTooNew`], older (not
    /// migrated yet) with [`PgError::SchemaTooOld`]. Connecting gives up after 3 s, so that
    /// an edge notices an unreachable database quickly.
    pub fn open_follower(url: &str) -> std::result::Result<PgStorage, PgError> {
        let store = PgStorage::connect(url, Duration::from_secs(3))?;
        let found = store.schema_version()?;
        let known = schema::latest();
        if found > known {
            return Err(PgError::SchemaTooNew { found, known });
        }
        if found < known {
            return Err(PgError::SchemaTooOld { found, known });
        }
        Ok(store)
    }

    /// Whether the server is a standby in recovery, how long ago (in seconds) it replayed
    /// the last transaction from its primary (`None` on a primary, or before any replay; on
    /// an idle primary this grows without any lag — read it beside the revocation log's
    /// sequence), and on a standby whether its WAL receiver is streaming from the primary
    /// (`pg_stat_wal_receiver`; `None` on a primary): a standby that lost its primary still
    /// answers, but no revocation can reach it.
    pub fn replication(&self) -> std::result::Result<Replication, PgError> {
        self.block(async {
            let c = self.client().await?;
            let row = c
                .query_one(
                    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN \
                     extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END, \
                     CASE WHEN pg_is_in_recovery() THEN EXISTS (SELECT 1 FROM \
                     pg_stat_wal_receiver WHERE status = 'streaming') END",
                    &[],
                )
                .await?;
            Ok(Replication {
                standby: row.get(0),
                replay_age: row.get(1),
                streaming: row.get(2),
            })
        })
    }

    fn connect(url: &str, timeout: Duration) -> std::result::Result<PgStorage, PgError> {
        let tls::Target {
            mut config,
            mode: tls_mode,
            tls,
        } = tls::parse(url)?;
        if tls_mode == Mode::Disable
            && config
                .get_hosts()
                .iter()
                .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)))
        {
            tracing::warn!(
                "connecting to PostgreSQL over TCP without TLS (no sslmode in the store URL): \
                 only on a network you trust; see docs/deployment.md"
            );
        }
        config.options("-c synchronous_commit=on");
        if config.get_application_name().is_none() {
            config.application_name("jpki");
        }
        config.connect_timeout(timeout);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jpki-postgres")
            .enable_all()
            .build()
            .map_err(PgError::Runtime)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            None => Manager::from_config(config.clone(), NoTls, manager_config),
            Some(t) => Manager::from_config(config.clone(), t.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| PgError::Connect(e.to_string()))?;
        Ok(PgStorage {
            rt: Some(rt),
            pool,
            target_config: config,
            tls,
            tls_mode,
            stats: Stats::default(),
            keep: Vec::new(),
        })
    }

    /// Keeps `v` alive as long as the engine (e.g. a lock on the data directory).
    pub fn keep_alive(&mut self, v: Box<dyn Any + Send + Sync>) {
        self.keep.push(v);
    }

    /// The schema version of the database (after [`PgStorage::open`]: [`schema::latest`]).
    pub fn schema_version(&self) -> std::result::Result<i32, PgError> {
        self.block(async {
            let c = self.client().await?;
            let row = c
                .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
                .await?;
            Ok(row.get(0))
        })
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        // Only `Drop` takes it.
        self.rt.as_ref().expect("the runtime lives until drop")
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt().block_on(f)
    }

    async fn client(&self) -> std::result::Result<Object, PgError> {
        self.pool.get().await.map_err(|e| {
            let mode = self.tls_mode;
            match tls::explain(&e, mode) {
                Some(why) => PgError::Tls(format!("{why} ({})", chain(&e))),
                None => PgError::Connect(chain(&e)),
            }
        })
    }

    fn migrate(&self) -> std::result::Result<(), PgError> {
        self.block(async {
            let mut c = self.client().await?;
            c.batch_execute(schema::VERSION_TABLE).await?;
            c.execute("SELECT pg_advisory_lock($1)", &[&schema::MIGRATION_LOCK])
                .await?;
            let result = async {
                let found: i32 = c
                    .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
                    .await?
                    .get(0);
                if found > schema::latest() {
                    return Err(PgError::SchemaTooNew {
                        found,
                        known: schema::latest(),
                    });
                }
                for (version, what, sql) in schema::MIGRATIONS {
                    if *version <= found {
                        continue;
                    }
                    let t = c.transaction().await?;
                    t.batch_execute(sql).await?;
                    t.execute(
                        "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
                        &[version, what],
                    )
                    .await?;
                    t.commit().await?;
                    tracing::info!(version, what, "applied a schema migration");
                }
                Ok(())
            }
            .await;
            c.execute("SELECT pg_advisory_unlock($1)", &[&schema::MIGRATION_LOCK])
                .await?;
            result
        })
    }

    /// Runs one query outside a unit of work.
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.block(async {
            let c = self.client().await?;
            let st = c.prepare_cached(sql).await.map_err(db)?;
            c.query(&st, params).await.map_err(db)
        })
    }

    fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(decode("a lookup by key found several rows"));
        }
        Ok(rows.pop())
    }

    /// Runs a unit of work once: BEGIN, the writer lock, the body, the writes resolved at
    /// commit, COMMIT.
    fn one_attempt(&self, body: &dyn Fn(&dyn Tx) -> Result<()>) -> Attempt {
        let started = Instant::now();
        let mut conn = match self.block(self.client()) {
            Ok(c) => Conn(Some(c), false),
            Err(e) => return Attempt::Failed(e.into()),
        };
        let Some(client) = conn.0.as_ref() else {
            return Attempt::Failed(decode("no connection"));
        };
        let begun = self.block(client.batch_execute(
            "BEGIN ISOLATION LEVEL SERIALIZABLE; LOCK TABLE writer_lock IN EXCLUSIVE MODE",
        ));
        if let Err(e) = begun {
            return self.abandon(conn, Err(e));
        }
        let tx = PgTx {
            store: self,
            client,
            first_error: RefCell::new(None),
            at_commit: RefCell::new(Vec::new()),
        };
        let outcome = body(&tx).and_then(|()| tx.commit_writes());
        let first_error = tx.first_error.take();
        drop(tx);
        if let Some(e) = first_error {
            return self.abandon(conn, Err(e));
        }
        if let Err(e) = outcome {
            return self.abandon(conn, Ok(e));
        }
        let staged = started.elapsed();
        let committed = self.block(client.batch_execute("COMMIT"));
        let synced = started.elapsed().saturating_sub(staged);
        self.stats
            .stage_us
            .fetch_add(staged.as_micros() as u64, Ordering::Relaxed);
        self.stats
            .sync_us
            .fetch_add(synced.as_micros() as u64, Ordering::Relaxed);
        match committed {
            Ok(()) => {
                conn.1 = true;
                Attempt::Committed
            }
            // A failed COMMIT ends the transaction; the connection is clean.
            Err(e) if retryable(&e) => {
                conn.1 = true;
                Attempt::Retry
            }
            Err(e) if e.code().is_none() => Attempt::Failed(PgError::CommitUnknown(e).into()),
            Err(e) => {
                conn.1 = true;
                Attempt::Failed(db(e))
            }
        }
    }

    /// Rolls back after a database error (`Err`) or the body's own error (`Ok`): a
    /// serialization failure means run again; anything else fails the unit of work. A
    /// connection that does not roll back cleanly is dropped, never pooled.
    fn abandon(
        &self,
        mut conn: Conn,
        why: std::result::Result<ca::Error, tokio_postgres::Error>,
    ) -> Attempt {
        if let Some(c) = conn.0.as_ref() {
            conn.1 = self.block(c.batch_execute("ROLLBACK")).is_ok();
        }
        match why {
            Ok(body_error) => Attempt::Failed(body_error),
            Err(e) if retryable(&e) => Attempt::Retry,
            Err(e) => Attempt::Failed(db(e)),
        }
    }
}

/// A pooled connection and whether it is clean (outside any transaction). An unclean one —
/// the body panicked, or ROLLBACK failed — is taken out of the pool and closed on drop.
struct Conn(Option<Object>, bool);

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.1 {
            if let Some(o) = self.0.take() {
                drop(Object::take(o));
            }
        }
    }
}

/// How one run of a unit of work ended.
enum Attempt {
    Committed,
    /// A serialization failure or deadlock: rolled back, run the body again.
    Retry,
    Failed(ca::Error),
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Rows streamed per query by the `for_each_*` reads.
const CHUNK: i64 = 512;

/// The domain reads that the storage and a unit of work both make, over one way of running a
/// query (outside a unit of work, or inside it, where a failure aborts the transaction).
trait Reads {
    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>;

    /// The one row a lookup by key finds, if any.
    fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let mut rows = self.rows(sql, params)?;
        if rows.len() > 1 {
            return Err(decode("a lookup by key found several rows"));
        }
        Ok(rows.pop())
    }
    fn status_of(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        self.row(
            &format!("SELECT {STATUS_COLS} FROM statuses s WHERE hierarchy = $1 AND serial = $2"),
            &[&h_code(h), &serial],
        )?
        .map(|row| status_from(&row, 0))
        .transpose()
    }
    fn owner_of(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        self.row(
            "SELECT holder, hierarchy FROM key_owners WHERE fingerprint = $1",
            &[&&fp[..]],
        )?
        .map(|row| {
            Ok(KeyOwner {
                holder: row.get(0),
                hierarchy: h_from(row.get(1))?,
            })
        })
        .transpose()
    }
    fn blocked(&self, fp: &KeyFingerprint) -> Result<bool> {
        Ok(self
            .row(
                "SELECT 1 FROM blocked_keys WHERE fingerprint = $1",
                &[&&fp[..]],
            )?
            .is_some())
    }
    /// Every record of `table`, in id order (byte order).
    fn records_in<T: serde::de::DeserializeOwned>(&self, table: &str) -> Result<Vec<T>> {
        self.rows(
            &format!("SELECT record FROM {table} ORDER BY id COLLATE \"C\""),
            &[],
        )?
        .iter()
        .map(|row| json(row, "record"))
        .collect()
    }
    fn record_of<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        id: &str,
    ) -> Result<Option<T>> {
        self.row(&format!("SELECT record FROM {table} WHERE id = $1"), &[&id])?
            .map(|row| json(&row, "record"))
            .transpose()
    }
    /// The id of the officer whose `column` (name, key) is `value`.
    fn officer_id(&self, column: &str, value: &str) -> Result<Option<String>> {
        Ok(self
            .row(
                &format!("SELECT id FROM officers WHERE {column} = $1"),
                &[&value],
            )?
            .map(|row| row.get(0)))
    }
    fn operator_id(&self, index: &str, column: &str, value: &str) -> Result<Option<String>> {
        Ok(self
            .row(
                &format!("SELECT operator FROM {index} WHERE {column} = $1"),
                &[&value],
            )?
            .map(|row| row.get(0)))
    }
}

impl Reads for PgStorage {
    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.query(sql, params)
    }
}

impl Reads for PgTx<'_> {
    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.query(sql, params)
    }
}

impl Storage for PgStorage {
    fn certificate(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<CertRecord>> {
        self.query_opt(
            &format!("SELECT {CERT_COLS} FROM certificates c WHERE hierarchy = $1 AND serial = $2"),
            &[&h_code(h), &serial],
        )?
        .as_ref()
        .map(cert_from)
        .transpose()
    }

    fn for_each_certificate(&self, each: &mut dyn FnMut(CertRecord) -> Result<()>) -> Result<()> {
        let mut after: (i16, Vec<u8>) = (-1, Vec::new());
        loop {
            let rows = self.query(
                &format!(
                    "SELECT {CERT_COLS} FROM certificates c WHERE (hierarchy, serial) > ($1, $2) \
                     ORDER BY hierarchy, serial LIMIT $3"
                ),
                &[&after.0, &after.1, &CHUNK],
            )?;
            let full = rows.len() as i64 == CHUNK;
            for row in &rows {
                let c = cert_from(row)?;
                after = (h_code(c.hierarchy), c.serial.clone());
                each(c)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn roots(&self) -> Result<Vec<CertRecord>> {
        self.query(
            &format!(
                "SELECT {CERT_COLS} FROM certificates c WHERE kind = $1 ORDER BY hierarchy, serial"
            ),
            &[&CertKind::Root.as_str()],
        )?
        .iter()
        .map(cert_from)
        .collect()
    }

    fn holder_certificates(&self, holder: &str) -> Result<Vec<(CertRecord, StatusRecord)>> {
        self.query(
            &format!(
                "SELECT {CERT_COLS}, {STATUS_COLS} FROM certificates c \
                 JOIN statuses s USING (hierarchy, serial) \
                 WHERE c.holder = $1 ORDER BY c.hierarchy, c.serial"
            ),
            &[&holder],
        )?
        .iter()
        .map(|row| Ok((cert_from(row)?, status_from(row, CERT_COL_COUNT)?)))
        .collect()
    }

    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        self.status_of(h, serial)
    }

    fn status_history(&self, h: Hierarchy, serial: &[u8]) -> Result<Vec<StatusChange>> {
        let rows = self.query(
            "SELECT at_ns, state, reason, since_ns, invalidity_ns FROM status_history \
             WHERE hierarchy = $1 AND serial = $2 ORDER BY at_ns",
            &[&h_code(h), &serial],
        )?;
        rows.iter()
            .map(|row| {
                Ok(StatusChange {
                    at: from_ns(row.get(0))?,
                    status: status_from(row, 1)?,
                })
            })
            .collect()
    }

    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        self.owner_of(fp)
    }

    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool> {
        self.blocked(fp)
    }

    fn for_each_blocked_key(
        &self,
        each: &mut dyn FnMut(KeyFingerprint) -> Result<()>,
    ) -> Result<()> {
        let rows = self.query(
            "SELECT fingerprint FROM blocked_keys ORDER BY fingerprint",
            &[],
        )?;
        for row in &rows {
            let b: Vec<u8> = row.get(0);
            let fp: KeyFingerprint = b
                .as_slice()
                .try_into()
                .map_err(|_| ca::Error::Store("a blocked key is not 32 bytes".into()))?;
            each(fp)?;
        }
        Ok(())
    }

    fn serial_counter(&self, h: Hierarchy) -> Result<u64> {
        match self.query_opt(
            "SELECT value FROM serial_counters WHERE hierarchy = $1",
            &[&h_code(h)],
        )? {
            Some(row) => Ok(counter_from(row.get(0))),
            None => Ok(0),
        }
    }

    fn for_each_revoked(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        each: &mut dyn FnMut(Revoked) -> Result<()>,
    ) -> Result<()> {
        let g = g_code(g)?;
        // Each chunk starts after the last serial seen (the empty serial sorts first): a
        // plain range on the primary key, so a partition of 10^6 entries streams in linear
        // time.
        let mut after: Vec<u8> = Vec::new();
        let mut op = ">=";
        let (sc, pref, muni) = scope_cols(&scope);
        loop {
            let rows = self.query(
                &format!(
                    "SELECT serial, reason, revoked_at, invalidity, not_after FROM revoked \
                     WHERE hierarchy = $1 AND crl_scope = $2 AND crl_prefecture = $3 \
                     AND crl_municipality = $4 AND serial {op} $5 AND generation = $7 \
                     ORDER BY serial LIMIT $6"
                ),
                &[&h_code(h), &sc, &pref, &muni, &after, &CHUNK, &g],
            )?;
            op = ">";
            let full = rows.len() as i64 == CHUNK;
            for row in &rows {
                let serial: Vec<u8> = row.get(0);
                after.clone_from(&serial);
                each(Revoked {
                    serial,
                    entry: RevokedEntry {
                        reason: reason_from(row.get(1))?,
                        revoked_at: row.get(2),
                        invalidity: row.get(3),
                        not_after: row.get(4),
                    },
                })?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn dirty_partitions(&self) -> Result<Vec<CrlId>> {
        self.query(
            "SELECT hierarchy, crl_scope, crl_prefecture, crl_municipality, generation \
             FROM crl_dirty \
             ORDER BY hierarchy, generation, crl_scope, crl_prefecture, crl_municipality",
            &[],
        )?
        .iter()
        .map(|row| Ok((h_from(row.get(0))?, g_from(row.get(4))?, scope_at(row, 1)?)))
        .collect()
    }

    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>> {
        let (sc, pref, muni) = scope_cols(&scope);
        let g = g_code(g)?;
        Ok(self
            .query_opt(
                "SELECT state FROM crl_state WHERE hierarchy = $1 AND crl_scope = $2 \
                 AND crl_prefecture = $3 AND crl_municipality = $4 AND generation = $5",
                &[&h_code(h), &sc, &pref, &muni, &g],
            )?
            .map(|row| row.get(0)))
    }

    fn crl_scopes(&self) -> Result<Vec<CrlId>> {
        self.query(
            "SELECT hierarchy, crl_scope, crl_prefecture, crl_municipality, generation \
             FROM crl_state \
             UNION SELECT hierarchy, crl_scope, crl_prefecture, crl_municipality, generation \
             FROM crl_dirty \
             ORDER BY 1, 5, 2, 3, 4",
            &[],
        )?
        .iter()
        .map(|row| Ok((h_from(row.get(0))?, g_from(row.get(4))?, scope_at(row, 1)?)))
        .collect()
    }

    fn resident(&self, id: &str) -> Result<Option<Resident>> {
        self.record_of("residents", id)
    }

    fn residents_by_identity(&self, name: &str, birth: time::Date) -> Result<Vec<Resident>> {
        let key = ca::storage::identity_key(name, birth);
        self.query(
            "SELECT record FROM residents WHERE identity = $1 ORDER BY id",
            &[&&key[..]],
        )?
        .iter()
        .map(|row| json(row, "record"))
        .collect()
    }

    fn for_each_resident(&self, each: &mut dyn FnMut(Resident) -> Result<()>) -> Result<()> {
        // As for_each_revoked: a range on the primary key per chunk.
        let mut after = String::new();
        let mut op = ">=";
        loop {
            let rows = self.query(
                &format!("SELECT id, record FROM residents WHERE id {op} $1 ORDER BY id LIMIT $2"),
                &[&after, &CHUNK],
            )?;
            op = ">";
            let full = rows.len() as i64 == CHUNK;
            for row in &rows {
                after = row.get(0);
                each(json(row, "record")?)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn due_events(&self, until: OffsetDateTime) -> Result<Vec<Scheduled>> {
        self.query(
            "SELECT at_ns, resident, kind FROM scheduled_events WHERE at_ns <= $1 \
             ORDER BY at_ns, resident",
            &[&ns(until)?],
        )?
        .iter()
        .map(scheduled_from)
        .collect()
    }

    fn next_event(&self) -> Result<Option<Scheduled>> {
        self.query_opt(
            "SELECT at_ns, resident, kind FROM scheduled_events ORDER BY at_ns, resident LIMIT 1",
            &[],
        )?
        .map(|row| scheduled_from(&row))
        .transpose()
    }

    fn audit_head(&self) -> Result<Option<Head>> {
        self.query_opt("SELECT seq, hash FROM audit_head", &[])?
            .map(|row| head_from(&row))
            .transpose()
    }

    fn checkpoints(&self) -> Result<Vec<ca::audit::Checkpoint>> {
        self.rows("SELECT record FROM audit_checkpoints ORDER BY seq", &[])?
            .iter()
            .map(|row| json(row, "record"))
            .collect()
    }

    fn audit_records(&self, from: u64, limit: usize) -> Result<Vec<Record>> {
        let Ok(from) = i64::try_from(from) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            "SELECT seq, at, action, subject, detail, prev, hash, v, actor FROM audit_records \
             WHERE seq >= $1 ORDER BY seq LIMIT $2",
            &[&from, &limit],
        )?
        .iter()
        .map(audit_from)
        .collect()
    }

    fn operator(&self, id: &str) -> Result<Option<Operator>> {
        self.record_of("operators", id)
    }

    fn operator_named(&self, name: &str) -> Result<Option<String>> {
        self.operator_id("operator_names", "name", name)
    }

    fn operator_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.operator_id("operator_keys", "fingerprint", fp)
    }

    fn operators(&self) -> Result<Vec<Operator>> {
        self.records_in("operators")
    }

    fn officer(&self, id: &str) -> Result<Option<Officer>> {
        self.record_of("officers", id)
    }

    fn officer_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.officer_id("key", fp)
    }

    fn officers(&self) -> Result<Vec<Officer>> {
        self.records_in("officers")
    }

    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>> {
        self.record_of("service_providers", id)
    }

    fn service_providers(&self) -> Result<Vec<ServiceProvider>> {
        self.records_in("service_providers")
    }

    fn consent(&self, id: &str) -> Result<Option<Consent>> {
        self.record_of("consents", id)
    }

    fn consents_of(&self, holder: &str, sp: &str) -> Result<Vec<Consent>> {
        self.query(
            "SELECT record FROM consents WHERE holder = $1 AND sp = $2 ORDER BY id COLLATE \"C\"",
            &[&holder, &sp],
        )?
        .iter()
        .map(|row| json(row, "record"))
        .collect()
    }

    fn access_log(&self, holder: &str) -> Result<Vec<Access>> {
        self.query(
            "SELECT record FROM access_log WHERE holder = $1 ORDER BY at_ns, seq",
            &[&holder],
        )?
        .iter()
        .map(|row| json(row, "record"))
        .collect()
    }

    fn access_count(&self) -> Result<u64> {
        let rows = self.query("SELECT count(*) FROM access_log", &[])?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        u64_of(n, "count")
    }

    fn sp_consents(&self, sp: &str, after: Option<&str>, limit: usize) -> Result<Vec<Consent>> {
        let limit = i64_of(limit as u64, "limit")?;
        // Nonces in byte order (COLLATE "C"), as the other engines order them.
        self.query(
            "SELECT c.record FROM consent_nonces n JOIN consents c ON c.id = n.consent \
             WHERE n.sp = $1 AND ($2::text IS NULL OR n.nonce COLLATE \"C\" > $2 COLLATE \"C\") \
             ORDER BY n.nonce COLLATE \"C\" LIMIT $3",
            &[&sp, &after, &limit],
        )?
        .iter()
        .map(|row| json(row, "record"))
        .collect()
    }

    fn for_each_usage(&self, each: &mut dyn FnMut(Usage) -> Result<()>) -> Result<()> {
        // One month at a time: a month's counters are few (PFs × SPs × endpoints × types).
        let months = self.query(
            "SELECT DISTINCT month FROM usage_counts ORDER BY month",
            &[],
        )?;
        for row in months {
            let month: String = row.get(0);
            for u in Storage::usage(self, &month)? {
                each(u)?;
            }
        }
        Ok(())
    }

    fn usage(&self, month: &str) -> Result<Vec<Usage>> {
        self.query(
            "SELECT month, pf, sp, endpoint, cert_type, count FROM usage_counts WHERE month = $1 \
             ORDER BY pf, sp, endpoint, cert_type",
            &[&month],
        )?
        .iter()
        .map(|row| {
            Ok(Usage {
                month: row.get(0),
                pf: row.get(1),
                sp: row.get(2),
                endpoint: row.get(3),
                cert_type: row.get(4),
                count: u64_of(row.get(5), "usage count")?,
            })
        })
        .collect()
    }

    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<()>) -> Result<()> {
        let mut backoff = Duration::from_millis(1);
        for _ in 0..MAX_ATTEMPTS {
            self.stats.transactions.fetch_add(1, Ordering::Relaxed);
            match self.one_attempt(body) {
                Attempt::Committed => {
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Attempt::Failed(e) => return Err(e),
                Attempt::Retry => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
            }
        }
        Err(PgError::TooManyRetries(MAX_ATTEMPTS).into())
    }

    fn check_consistency(&self) -> Result<u64> {
        let broken = |what: String| ca::Error::Store(format!("index check: {what}"));
        const _: () = assert!(CA_SCOPE == 65536);
        let problems: &[(&str, &str)] = &[
            (
                "SELECT c.serial FROM certificates c LEFT JOIN statuses s USING (hierarchy, serial) \
                 WHERE s.state IS NULL LIMIT 1",
                "has no status",
            ),
            (
                "SELECT s.serial FROM statuses s JOIN certificates c USING (hierarchy, serial) \
                 LEFT JOIN revoked r ON r.hierarchy = s.hierarchy AND r.serial = s.serial \
                 WHERE s.state <> 'good' AND r.serial IS NULL LIMIT 1",
                "is revoked or held but has no revoked entry",
            ),
            (
                "SELECT s.serial FROM statuses s JOIN revoked r USING (hierarchy, serial) \
                 WHERE s.state = 'good' LIMIT 1",
                "is good but listed as revoked",
            ),
            (
                "SELECT s.serial FROM statuses s JOIN revoked r USING (hierarchy, serial) \
                 WHERE s.reason IS DISTINCT FROM r.reason LIMIT 1",
                "revoked entry and status disagree on the reason",
            ),
            (
                // 65536: CA_SCOPE, the CA-level CRL.
                "SELECT r.serial FROM revoked r JOIN certificates c USING (hierarchy, serial) \
                 WHERE (r.crl_scope, r.crl_prefecture, r.crl_municipality, r.generation) \
                 IS DISTINCT FROM \
                 (coalesce(c.crl_partition, 65536), coalesce(c.crl_prefecture, ''), \
                 coalesce(c.crl_municipality, ''), c.generation) LIMIT 1",
                "is listed on another CRL than its own",
            ),
        ];
        for (sql, what) in problems {
            if let Some(row) = self.query_opt(sql, &[])? {
                let serial: Vec<u8> = row.get(0);
                return Err(broken(format!("{} {what}", hex_upper(&serial))));
            }
        }
        // Every holder's certificate has its key in the key index.
        let mut n = 0u64;
        let mut missing_key = None;
        self.for_each_certificate(&mut |c| {
            n += 1;
            if c.holder.is_some() && missing_key.is_none() {
                let fp = fingerprint(&c.spki()?);
                if self.key_owner(&fp)?.is_none() {
                    missing_key = Some(hex_upper(&c.serial));
                }
            }
            Ok(())
        })?;
        if let Some(s) = missing_key {
            return Err(broken(format!(
                "{s}: its key is missing from the key index"
            )));
        }
        Ok(n)
    }

    fn compact(&self) -> Result<Compaction> {
        // PostgreSQL bounds its own write-ahead log (checkpoints); nothing to do here.
        Ok(Compaction {
            position: self.stats.batches.load(Ordering::Relaxed),
            ..Compaction::default()
        })
    }

    fn journal_bytes(&self) -> Result<u64> {
        Ok(0)
    }

    fn commit_stats(&self) -> CommitStats {
        CommitStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            transactions: self.stats.transactions.load(Ordering::Relaxed),
            stage_us: self.stats.stage_us.load(Ordering::Relaxed),
            sync_us: self.stats.sync_us.load(Ordering::Relaxed),
            apply_us: 0,
        }
    }

    fn revocations_since(&self, after: u64, limit: usize) -> Result<Vec<RevocationLogEntry>> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            "SELECT seq, hierarchy, serial FROM revocation_log WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
            &[&after, &limit],
        )?
        .iter()
        .map(|row| {
            Ok(RevocationLogEntry {
                seq: u64_of(row.get(0), "revocation log sequence")?,
                hierarchy: h_from(row.get(1))?,
                serial: row.get(2),
            })
        })
        .collect()
    }

    fn revocation_log_head(&self) -> Result<u64> {
        let row = self.query_opt("SELECT coalesce(max(seq), 0) FROM revocation_log", &[])?;
        u64_of(row.map_or(0, |r| r.get(0)), "revocation log sequence")
    }

    fn issued_since(&self, after: u64, limit: usize) -> Result<Vec<IssuedEntry>> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            "SELECT seq, hierarchy, serial, not_after_ns FROM issuance_log WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
            &[&after, &limit],
        )?
        .iter()
        .map(|row| {
            Ok(IssuedEntry {
                seq: u64_of(row.get(0), "issuance log sequence")?,
                hierarchy: h_from(row.get(1))?,
                serial: row.get(2),
                not_after: from_ns(row.get(3))?,
            })
        })
        .collect()
    }

    fn issuance_log_head(&self) -> Result<u64> {
        let row = self.query_opt("SELECT coalesce(max(seq), 0) FROM issuance_log", &[])?;
        u64_of(row.map_or(0, |r| r.get(0)), "issuance log sequence")
    }

    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>> {
        let (sc, pref, muni) = scope_cols(&scope);
        let g = g_code(g)?;
        self.query_opt(CRL_LEASE, &[&h_code(h), &sc, &pref, &muni, &g])?
            .map(|row| lease_from(&row))
            .transpose()
    }

    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>> {
        self.query_opt(
            &format!(
                "{SIGNER_REQUEST_SELECT} WHERE node = $1 AND hierarchy = $2 AND generation = $3"
            ),
            &[&node, &h_code(h), &g_code(generation)?],
        )?
        .map(|row| signer_request_from(&row))
        .transpose()
    }

    fn pending_signer_requests(&self) -> Result<Vec<SignerRequest>> {
        self.query(
            &format!(
                "{SIGNER_REQUEST_SELECT} WHERE certificate IS NULL AND refused IS NULL \
                 ORDER BY node, hierarchy, generation"
            ),
            &[],
        )?
        .iter()
        .map(signer_request_from)
        .collect()
    }
}

/// The CRL lease query of `Storage::crl_lease` and `Tx::crl_lease` alike.
const CRL_LEASE: &str = "SELECT holder, until_ns FROM crl_leases WHERE hierarchy = $1 \
     AND crl_scope = $2 AND crl_prefecture = $3 AND crl_municipality = $4 AND generation = $5";

/// The columns [`signer_request_from`] reads, in its order.
const SIGNER_REQUEST_SELECT: &str = "SELECT node, hierarchy, generation, csr, in_force, \
     requested_ns, certificate, refused, answered_ns FROM signer_requests";

fn signer_request_from(row: &Row) -> Result<SignerRequest> {
    let generation: i32 = row.get(2);
    let answered: Option<i64> = row.get(8);
    let answer = match (
        row.get::<_, Option<Vec<u8>>>(6),
        row.get::<_, Option<String>>(7),
    ) {
        (None, None) => None,
        (Some(der), None) => Some(SignerAnswer::Issued {
            der,
            at: from_ns(answered.unwrap_or_default())?,
        }),
        (None, Some(reason)) => Some(SignerAnswer::Refused {
            reason,
            at: from_ns(answered.unwrap_or_default())?,
        }),
        (Some(_), Some(_)) => {
            return Err(ca::Error::Store(
                "a signer request both issued and refused".into(),
            ))
        }
    };
    Ok(SignerRequest {
        node: row.get(0),
        hierarchy: h_from(row.get(1))?,
        generation: u32::try_from(generation)
            .map_err(|_| ca::Error::Store(format!("signer request generation {generation}")))?,
        csr: row.get(3),
        in_force: row.get(4),
        requested_at: from_ns(row.get(5))?,
        answer,
    })
}

fn lease_from(row: &Row) -> Result<CrlLease> {
    Ok(CrlLease {
        holder: row.get(0),
        until: from_ns(row.get(1))?,
    })
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

// ----- units of work -----------------------------------------------------------------------

/// A write resolved at commit, in the order the body asked for it.
enum AtCommit {
    Serial(Hierarchy, u64),
    Audit(AuditIntent),
    Import(Record),
}

/// One run of a unit of work on one connection inside `BEGIN … COMMIT`.
struct PgTx<'a> {
    store: &'a PgStorage,
    client: &'a Object,
    /// The first database error: once a statement fails the transaction is aborted, and this
    /// (not whatever the body made of it) decides whether to run again.
    first_error: RefCell<Option<tokio_postgres::Error>>,
    at_commit: RefCell<Vec<AtCommit>>,
}

impl PgTx<'_> {
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let r = self.store.block(async {
            let st = self.client.prepare_cached(sql).await?;
            self.client.query(&st, params).await
        });
        r.map_err(|e| {
            let shown = db_ref(&e);
            self.first_error.borrow_mut().get_or_insert(e);
            shown
        })
    }

    fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
        self.query(sql, params).map(|_| ())
    }

    fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(decode("a lookup by key found several rows"));
        }
        Ok(rows.pop())
    }

    fn exists(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<bool> {
        Ok(!self.query(sql, params)?.is_empty())
    }

    fn string(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<String>> {
        Ok(self.query_opt(sql, params)?.map(|r| r.get(0)))
    }

    fn head(&self) -> Result<Option<Head>> {
        self.query_opt("SELECT seq, hash FROM audit_head", &[])?
            .map(|row| head_from(&row))
            .transpose()
    }

    fn append_audit(&self, record: &Record, head: &Head) -> Result<()> {
        self.exec(
            "INSERT INTO audit_records (seq, at, action, subject, detail, prev, hash, v, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &i64_of(record.seq, "audit sequence")?,
                &rfc3339(record.at)?,
                &record.action,
                &record.subject,
                &record.detail,
                &record.prev,
                &record.hash,
                &i32::try_from(record.v)
                    .map_err(|_| ca::Error::Invalid("audit format out of range".into()))?,
                &record.actor,
            ],
        )?;
        self.exec(
            "INSERT INTO audit_head (one, seq, hash) VALUES (true, $1, $2) \
             ON CONFLICT (one) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
            &[&i64_of(head.seq, "audit sequence")?, &head.hash],
        )
    }

    /// The writes deferred to commit, in order.
    fn commit_writes(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.at_commit.borrow_mut());
        for w in pending {
            match w {
                AtCommit::Serial(h, n) => self.exec(
                    "INSERT INTO serial_counters (hierarchy, value) VALUES ($1, $2) \
                     ON CONFLICT (hierarchy) DO UPDATE \
                     SET value = GREATEST(serial_counters.value, EXCLUDED.value)",
                    &[&h_code(h), &counter_code(n)],
                )?,
                AtCommit::Audit(a) => {
                    let (record, head) = ca::audit::link(self.head()?.as_ref(), &a)?;
                    self.append_audit(&record, &head)?;
                }
                AtCommit::Import(record) => {
                    let head = ca::audit::follow(self.head()?.as_ref(), &record)?;
                    self.append_audit(&record, &head)?;
                }
            }
        }
        Ok(())
    }
}

/// The error as the body sees it (the original is kept to decide on a retry).
fn db_ref(e: &tokio_postgres::Error) -> ca::Error {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            ca::Error::Conflict
        }
        _ => ca::Error::Store(format!("postgres: {e}")),
    }
}

impl Tx for PgTx<'_> {
    fn certificate_exists(&self, h: Hierarchy, serial: &[u8]) -> Result<bool> {
        self.exists(
            "SELECT 1 FROM certificates WHERE hierarchy = $1 AND serial = $2",
            &[&h_code(h), &serial],
        )
    }

    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Option<StatusRecord>> {
        self.status_of(h, serial)
    }

    fn resident(&self, id: &str) -> Result<Option<Resident>> {
        self.record_of("residents", id)
    }

    fn key_owner(&self, fp: &KeyFingerprint) -> Result<Option<KeyOwner>> {
        self.owner_of(fp)
    }

    fn key_blocked(&self, fp: &KeyFingerprint) -> Result<bool> {
        self.blocked(fp)
    }

    fn block_key(&self, fp: &KeyFingerprint) -> Result<()> {
        self.exec(
            "INSERT INTO blocked_keys (fingerprint) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&&fp[..]],
        )
    }

    fn log_status(&self, c: &CertRecord, change: &StatusChange) -> Result<()> {
        let st = &change.status;
        self.exec(
            "INSERT INTO status_history \
             (hierarchy, serial, at_ns, state, reason, since_ns, invalidity_ns) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (hierarchy, serial, at_ns) DO UPDATE SET state = EXCLUDED.state, \
             reason = EXCLUDED.reason, since_ns = EXCLUDED.since_ns, \
             invalidity_ns = EXCLUDED.invalidity_ns",
            &[
                &h_code(c.hierarchy),
                &c.serial,
                &ns(change.at)?,
                &st.state.as_str(),
                &st.reason.map(|r| i16::from(r.code())),
                &opt_ns(st.since)?,
                &opt_ns(st.invalidity)?,
            ],
        )
    }

    fn crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool> {
        let (sc, pref, muni) = scope_cols(&scope);
        let g = g_code(g)?;
        self.exists(
            "SELECT 1 FROM crl_dirty WHERE hierarchy = $1 AND crl_scope = $2 \
             AND crl_prefecture = $3 AND crl_municipality = $4 AND generation = $5",
            &[&h_code(h), &sc, &pref, &muni, &g],
        )
    }

    fn operator(&self, id: &str) -> Result<Option<Operator>> {
        self.record_of("operators", id)
    }

    fn operator_named(&self, name: &str) -> Result<Option<String>> {
        self.operator_id("operator_names", "name", name)
    }

    fn operator_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.operator_id("operator_keys", "fingerprint", fp)
    }

    fn officer(&self, id: &str) -> Result<Option<Officer>> {
        self.record_of("officers", id)
    }

    fn officer_named(&self, name: &str) -> Result<Option<String>> {
        self.officer_id("name", name)
    }

    fn officer_by_key(&self, fp: &str) -> Result<Option<String>> {
        self.officer_id("key", fp)
    }

    fn service_provider_named(&self, pf: &str, name: &str) -> Result<Option<String>> {
        self.string(
            "SELECT sp FROM service_provider_names WHERE pf = $1 AND name = $2",
            &[&pf, &name],
        )
    }

    fn service_provider(&self, id: &str) -> Result<Option<ServiceProvider>> {
        self.record_of("service_providers", id)
    }

    fn consent(&self, id: &str) -> Result<Option<Consent>> {
        self.record_of("consents", id)
    }

    fn consent_nonce_used(&self, sp: &str, nonce: &str) -> Result<bool> {
        self.exists(
            "SELECT 1 FROM consent_nonces WHERE sp = $1 AND nonce = $2",
            &[&sp, &nonce],
        )
    }

    fn add_certificate(&self, c: &CertRecord, key: Option<&KeyFingerprint>) -> Result<()> {
        let h = h_code(c.hierarchy);
        let cols = c.partition.as_ref().map(scope_cols);
        let partition = cols.map(|c| c.0);
        let (pref, muni) = match &c.partition {
            Some(Scope::Municipal(m)) => (Some(m.prefecture()), Some(m.municipality())),
            _ => (None, None),
        };
        // Never replaces a record (issue #13): a taken serial inserts no row and is refused
        // before anything else of the certificate is written; the unit of work rolls back.
        let inserted = self.query(
            "INSERT INTO certificates \
             (hierarchy, serial, kind, holder, crl_partition, not_before_ns, not_after_ns, der, \
             crl_prefecture, crl_municipality, generation) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (hierarchy, serial) DO NOTHING RETURNING 1",
            &[
                &h,
                &c.serial,
                &c.kind.as_str(),
                &c.holder,
                &partition,
                &ns(c.not_before)?,
                &ns(c.not_after)?,
                &c.der,
                &pref,
                &muni,
                &g_code(c.generation)?,
            ],
        )?;
        if inserted.is_empty() {
            return Err(ca::storage::serial_taken(c));
        }
        self.exec(
            "INSERT INTO statuses (hierarchy, serial, state) VALUES ($1, $2, 'good') \
             ON CONFLICT (hierarchy, serial) DO UPDATE SET state = 'good', reason = NULL, \
             since_ns = NULL, invalidity_ns = NULL",
            &[&h, &c.serial],
        )?;
        if c.holder.is_some() {
            self.exec(
                "INSERT INTO issuance_log (hierarchy, serial, not_after_ns) VALUES ($1, $2, $3)",
                &[&h, &c.serial, &ns(c.not_after)?],
            )?;
        }
        if let (Some(holder), Some(fp)) = (&c.holder, key) {
            self.exec(
                "INSERT INTO key_owners (fingerprint, holder, hierarchy) VALUES ($1, $2, $3) \
                 ON CONFLICT (fingerprint) DO UPDATE SET holder = EXCLUDED.holder, \
                 hierarchy = EXCLUDED.hierarchy",
                &[&&fp[..], holder, &h],
            )?;
        }
        Ok(())
    }

    fn set_status(&self, c: &CertRecord, status: &StatusRecord) -> Result<()> {
        let h = h_code(c.hierarchy);
        let scope = scope_of(c);
        let (sc, pref, muni) = scope_cols(&scope);
        let g = g_code(c.generation)?;
        let entry = revoked_entry(c, status)?;
        let reason = status.reason.map(|r| i16::from(r.code()));
        let since = opt_ns(status.since)?;
        let invalidity = opt_ns(status.invalidity)?;
        self.exec(
            "INSERT INTO statuses (hierarchy, serial, state, reason, since_ns, invalidity_ns) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (hierarchy, serial) DO UPDATE SET state = EXCLUDED.state, \
             reason = EXCLUDED.reason, since_ns = EXCLUDED.since_ns, \
             invalidity_ns = EXCLUDED.invalidity_ns",
            &[
                &h,
                &c.serial,
                &status.state.as_str(),
                &reason,
                &since,
                &invalidity,
            ],
        )?;
        match entry {
            Some(e) => self.exec(
                "INSERT INTO revoked \
                 (hierarchy, crl_scope, crl_prefecture, crl_municipality, serial, reason, \
                 revoked_at, invalidity, not_after, generation) \
                 VALUES ($1, $2, $8, $9, $3, $4, $5, $6, $7, $10) \
                 ON CONFLICT \
                 (hierarchy, generation, crl_scope, crl_prefecture, crl_municipality, serial) \
                 DO UPDATE SET \
                 reason = EXCLUDED.reason, revoked_at = EXCLUDED.revoked_at, \
                 invalidity = EXCLUDED.invalidity, not_after = EXCLUDED.not_after",
                &[
                    &h,
                    &sc,
                    &c.serial,
                    &i16::from(e.reason.code()),
                    &e.revoked_at,
                    &e.invalidity,
                    &e.not_after,
                    &pref,
                    &muni,
                    &g,
                ],
            )?,
            None => self.exec(
                "DELETE FROM revoked WHERE hierarchy = $1 AND crl_scope = $2 \
                 AND crl_prefecture = $4 AND crl_municipality = $5 AND serial = $3 \
                 AND generation = $6",
                &[&h, &sc, &c.serial, &pref, &muni, &g],
            )?,
        }
        // The edges listening on the primary are woken when this commits (wakeups.rs).
        self.exec(
            "WITH logged AS (INSERT INTO revocation_log \
             (hierarchy, serial, state, reason, since_ns, invalidity_ns) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq) \
             SELECT pg_notify($7, '') FROM logged",
            &[
                &h,
                &c.serial,
                &status.state.as_str(),
                &reason,
                &since,
                &invalidity,
                &wakeups::CHANNEL,
            ],
        )?;
        self.set_crl_dirty(c.hierarchy, c.generation, scope)
    }

    fn note_serial(&self, h: Hierarchy, n: u64) -> Result<()> {
        self.at_commit.borrow_mut().push(AtCommit::Serial(h, n));
        Ok(())
    }

    fn put_resident(&self, r: &Resident) -> Result<()> {
        let state = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let identity = ca::storage::identity_key(r.attributes.name(), r.attributes.birth());
        self.exec(
            "INSERT INTO residents (id, state, version, record, identity) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, \
             version = EXCLUDED.version, record = EXCLUDED.record, \
             identity = EXCLUDED.identity",
            &[
                &r.id,
                &state,
                &i64_of(r.version, "resident version")?,
                &Json(r),
                &&identity[..],
            ],
        )
    }

    fn schedule(&self, s: &Scheduled) -> Result<()> {
        self.exec(
            "INSERT INTO scheduled_events (at_ns, resident, kind) VALUES ($1, $2, $3) \
             ON CONFLICT (at_ns, resident) DO UPDATE SET kind = EXCLUDED.kind",
            &[&ns(s.at)?, &s.resident, &s.kind.as_str()],
        )
    }

    fn unschedule(&self, s: &Scheduled) -> Result<()> {
        self.exec(
            "DELETE FROM scheduled_events WHERE at_ns = $1 AND resident = $2",
            &[&ns(s.at)?, &s.resident],
        )
    }

    fn audit(&self, record: AuditIntent) -> Result<()> {
        self.at_commit.borrow_mut().push(AtCommit::Audit(record));
        Ok(())
    }

    fn import_audit(&self, record: Record) -> Result<()> {
        self.at_commit.borrow_mut().push(AtCommit::Import(record));
        Ok(())
    }

    fn put_checkpoint(&self, c: &ca::audit::Checkpoint) -> Result<()> {
        let seq = i64::try_from(c.seq)
            .map_err(|_| ca::Error::Store(format!("checkpoint seq {} out of range", c.seq)))?;
        self.exec(
            "INSERT INTO audit_checkpoints (seq, record) VALUES ($1, $2) \
             ON CONFLICT (seq) DO UPDATE SET record = EXCLUDED.record",
            &[&seq, &Json(c)],
        )
    }

    fn set_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()> {
        let (sc, pref, muni) = scope_cols(&scope);
        self.exec(
            "INSERT INTO crl_dirty \
             (hierarchy, crl_scope, crl_prefecture, crl_municipality, generation) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&h_code(h), &sc, &pref, &muni, &g_code(g)?],
        )
    }

    fn clear_crl_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<()> {
        let (sc, pref, muni) = scope_cols(&scope);
        self.exec(
            "DELETE FROM crl_dirty WHERE hierarchy = $1 AND crl_scope = $2 \
             AND crl_prefecture = $3 AND crl_municipality = $4 AND generation = $5",
            &[&h_code(h), &sc, &pref, &muni, &g_code(g)?],
        )
    }

    fn put_crl_state(&self, h: Hierarchy, g: Generation, scope: Scope, state: &[u8]) -> Result<()> {
        let (sc, pref, muni) = scope_cols(&scope);
        self.exec(
            "INSERT INTO crl_state \
             (hierarchy, crl_scope, crl_prefecture, crl_municipality, state, generation) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (hierarchy, generation, crl_scope, crl_prefecture, crl_municipality) \
             DO UPDATE SET state = EXCLUDED.state",
            &[&h_code(h), &sc, &pref, &muni, &state, &g_code(g)?],
        )
    }

    fn put_operator(&self, op: &Operator) -> Result<()> {
        self.exec(
            "INSERT INTO operators (id, name, record) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, record = EXCLUDED.record",
            &[&op.id, &op.name, &Json(op)],
        )?;
        self.exec(
            "INSERT INTO operator_names (name, operator) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET operator = EXCLUDED.operator",
            &[&op.name, &op.id],
        )
    }

    fn put_officer(&self, o: &Officer) -> Result<()> {
        self.exec(
            "INSERT INTO officers (id, name, key, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key, record = EXCLUDED.record",
            &[&o.id, &o.name, &o.key, &Json(o)],
        )
    }

    fn bind_operator_key(&self, fp: &str, operator: &str) -> Result<()> {
        self.exec(
            "INSERT INTO operator_keys (fingerprint, operator) VALUES ($1, $2) \
             ON CONFLICT (fingerprint) DO UPDATE SET operator = EXCLUDED.operator",
            &[&fp, &operator],
        )
    }

    fn put_service_provider(&self, sp: &ServiceProvider) -> Result<()> {
        self.exec(
            "INSERT INTO service_providers (id, pf, name, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET pf = EXCLUDED.pf, name = EXCLUDED.name, \
             record = EXCLUDED.record",
            &[&sp.id, &sp.pf, &sp.name, &Json(sp)],
        )?;
        self.exec(
            "INSERT INTO service_provider_names (pf, name, sp) VALUES ($1, $2, $3) \
             ON CONFLICT (pf, name) DO UPDATE SET sp = EXCLUDED.sp",
            &[&sp.pf, &sp.name, &sp.id],
        )
    }

    fn put_consent(&self, c: &Consent) -> Result<()> {
        self.exec(
            "INSERT INTO consent_nonces (sp, nonce, consent) VALUES ($1, $2, $3) \
             ON CONFLICT (sp, nonce) DO UPDATE SET consent = EXCLUDED.consent",
            &[&c.sp, &c.nonce, &c.id],
        )?;
        self.exec(
            "INSERT INTO consents (id, holder, sp, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, sp = EXCLUDED.sp, \
             record = EXCLUDED.record",
            &[&c.id, &c.holder, &c.sp, &Json(c)],
        )
    }

    fn add_usage(&self, u: &Usage) -> Result<()> {
        self.exec(
            "INSERT INTO usage_counts (month, pf, sp, endpoint, cert_type, count) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (month, pf, sp, endpoint, cert_type) \
             DO UPDATE SET count = usage_counts.count + EXCLUDED.count",
            &[
                &u.month,
                &u.pf,
                &u.sp,
                &u.endpoint,
                &u.cert_type,
                &i64_of(u.count, "usage count")?,
            ],
        )
    }

    fn append_access(&self, a: &Access, seq: u64) -> Result<()> {
        self.exec(
            "INSERT INTO access_log (holder, at_ns, seq, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (holder, at_ns, seq) DO UPDATE SET record = EXCLUDED.record",
            &[
                &a.holder,
                &ns(a.at)?,
                &i64_of(seq, "access sequence")?,
                &Json(a),
            ],
        )
    }

    fn crl_state(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<Vec<u8>>> {
        let (sc, pref, muni) = scope_cols(&scope);
        let g = g_code(g)?;
        Ok(self
            .query_opt(
                "SELECT state FROM crl_state WHERE hierarchy = $1 AND crl_scope = $2 \
                 AND crl_prefecture = $3 AND crl_municipality = $4 AND generation = $5",
                &[&h_code(h), &sc, &pref, &muni, &g],
            )?
            .map(|row| row.get(0)))
    }

    fn crl_lease(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<CrlLease>> {
        let (sc, pref, muni) = scope_cols(&scope);
        let g = g_code(g)?;
        self.query_opt(CRL_LEASE, &[&h_code(h), &sc, &pref, &muni, &g])?
            .map(|row| lease_from(&row))
            .transpose()
    }

    fn put_crl_lease(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        lease: &CrlLease,
    ) -> Result<()> {
        let (sc, pref, muni) = scope_cols(&scope);
        self.exec(
            "INSERT INTO crl_leases \
             (hierarchy, crl_scope, crl_prefecture, crl_municipality, holder, until_ns, \
             generation) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (hierarchy, generation, crl_scope, crl_prefecture, crl_municipality) \
             DO UPDATE SET holder = EXCLUDED.holder, until_ns = EXCLUDED.until_ns",
            &[
                &h_code(h),
                &sc,
                &pref,
                &muni,
                &lease.holder,
                &ns(lease.until)?,
                &g_code(g)?,
            ],
        )
    }

    fn signer_request(
        &self,
        node: &str,
        h: Hierarchy,
        generation: u32,
    ) -> Result<Option<SignerRequest>> {
        self.query_opt(
            &format!(
                "{SIGNER_REQUEST_SELECT} WHERE node = $1 AND hierarchy = $2 AND generation = $3"
            ),
            &[&node, &h_code(h), &g_code(generation)?],
        )?
        .map(|row| signer_request_from(&row))
        .transpose()
    }

    fn import_revocation_log(&self, entries: &[RevocationLogEntry]) -> Result<()> {
        self.exec("DELETE FROM revocation_log", &[])?;
        // The log's state columns are the certificate's status as the copy holds it (the
        // entries themselves name only the certificate).
        for e in entries {
            self.exec(
                "INSERT INTO revocation_log \
                 (seq, hierarchy, serial, state, reason, since_ns, invalidity_ns) \
                 SELECT $1, $2, $3, coalesce(s.state, 'good'), s.reason, s.since_ns, \
                 s.invalidity_ns FROM (VALUES (1)) AS one(x) LEFT JOIN statuses s \
                 ON s.hierarchy = $2 AND s.serial = $3",
                &[
                    &i64_of(e.seq, "revocation log sequence")?,
                    &h_code(e.hierarchy),
                    &e.serial,
                ],
            )?;
        }
        let last = match entries.last() {
            Some(e) => i64_of(e.seq, "revocation log sequence")?,
            None => 0,
        };
        self.exec(
            "SELECT setval(pg_get_serial_sequence('revocation_log', 'seq'), \
             greatest($1::bigint, 1), $1::bigint > 0)",
            &[&last],
        )
    }

    fn put_signer_request(&self, r: &SignerRequest) -> Result<()> {
        let (certificate, refused, answered) = match &r.answer {
            None => (None, None, None),
            Some(SignerAnswer::Issued { der, at }) => (Some(der.as_slice()), None, Some(ns(*at)?)),
            Some(SignerAnswer::Refused { reason, at }) => {
                (None, Some(reason.as_str()), Some(ns(*at)?))
            }
        };
        self.exec(
            "INSERT INTO signer_requests \
             (node, hierarchy, generation, csr, in_force, requested_ns, certificate, refused, \
             answered_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (node, hierarchy, generation) DO UPDATE SET csr = EXCLUDED.csr, \
             in_force = EXCLUDED.in_force, requested_ns = EXCLUDED.requested_ns, \
             certificate = EXCLUDED.certificate, refused = EXCLUDED.refused, \
             answered_ns = EXCLUDED.answered_ns",
            &[
                &r.node,
                &h_code(r.hierarchy),
                &g_code(r.generation)?,
                &r.csr,
                &r.in_force,
                &ns(r.requested_at)?,
                &certificate,
                &refused,
                &answered,
            ],
        )
    }
}
