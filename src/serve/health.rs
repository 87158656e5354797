//! Whether a running `jpki serve` is ready, and what it has done, for operators' monitoring.
//!
//! * **`/healthz`** (the OCSP responder's): the process is alive and answering HTTP.
//! * **`/readyz`** ([`Health::readiness`]): `200` when every check passes, `503` otherwise,
//!   with one JSON object naming each check and, for a failed one, why:
//!   `store` (the engine is reachable and takes writes: not refusing them after a failed
//!   journal write; for PostgreSQL a round trip), `signers` (both roots and both delegated
//!   OCSP signers load and are inside their validity), `crls` (the first publication pass
//!   since start is over — the server listens before it — and every partition has a
//!   published CRL whose nextUpdate is still ahead). A load balancer takes a node out of
//!   rotation on `503`; a person reads the reasons.
//! * **`/metrics`** ([`Health::render`], appended to the responder's OCSP counters and the
//!   certificate expiry gauges of [`super::renew::Watch`]): per CRL partition its number,
//!   age, entries and size; the store's commits (batches, transactions, time waiting for the
//!   durable write) and journal size; and counters read from the audit trail — certificates
//!   issued, revoked (by reason) and held per hierarchy, platform API calls per operation and
//!   outcome (`ok` or the refusal's code), and refused officer requests per code.
//!
//! The audit-trail counters are read incrementally: each scrape reads only the records
//! appended since the previous one, so they count everything the store holds, whichever
//! process wrote it, and survive restarts.
//!
//! **The tally is kept across restarts** (#14: at 10^6 certificates the trail holds over
//! 2·10^6 records, and reading it whole at every start competed with the first requests):
//! after each catch-up the counters are written to a 0600 file in the data directory
//! (`serve-metrics-tally.json`, atomically: temporary file, fsync, rename, fsync of the
//! directory) with the sequence number they cover and the hash of the last record counted.
//! At start ([`Health::warm_up`]) they are resumed from it only if the store's trail still
//! holds that record with that hash — the trail extends what was counted — and then caught up
//! from there; otherwise (a restored backup, another store, an unreadable file) they are
//! counted again from the first record.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ca::Authority;
use policies::Hierarchy;
use serde::Serialize;

/// Audit records read per round trip while catching up.
const AUDIT_PAGE: usize = 5_000;

/// Counters tallied from the audit trail.
#[derive(Default, Debug, PartialEq, Eq)]
struct Tally {
    /// The next audit sequence number to read.
    next: u64,
    /// The hash of the last record counted (record `next − 1`; empty before the first).
    last_hash: String,
    /// `hierarchy` → issuances.
    issued: BTreeMap<String, u64>,
    /// `(hierarchy, reason)` → revocations.
    revoked: BTreeMap<(String, String), u64>,
    /// `hierarchy` → holds.
    held: BTreeMap<String, u64>,
    /// `(operation, outcome)` → platform API calls.
    pf_calls: BTreeMap<(String, String), u64>,
    /// `(operation, code)` → refused requests.
    refused: BTreeMap<(String, String), u64>,
}

/// The tally as kept on disk (maps with compound keys as lists: JSON keys are strings).
#[derive(Serialize, serde::Deserialize)]
struct SavedTally {
    /// The file's format.
    format: u32,
    next: u64,
    last_hash: String,
    issued: Vec<(String, u64)>,
    revoked: Vec<((String, String), u64)>,
    held: Vec<(String, u64)>,
    pf_calls: Vec<((String, String), u64)>,
    refused: Vec<((String, String), u64)>,
}

const TALLY_FORMAT: u32 = 1;

impl Tally {
    /// Reads the audit records appended since `self.next` into the counters.
    fn catch_up(&mut self, store: &dyn ca::storage::Storage) -> ca::Result<()> {
        loop {
            let page = store.audit_records(self.next, AUDIT_PAGE)?;
            for r in &page {
                self.add(r);
                self.next = r.seq + 1;
                self.last_hash.clone_from(&r.hash);
            }
            if page.len() < AUDIT_PAGE {
                return Ok(());
            }
        }
    }

    /// The tally kept in `path`, if the store's audit trail extends it: the record it
    /// counted last is still there, with the same hash. `None` (count from the first
    /// record): no file, an unreadable one, or a trail that does not extend it.
    fn resume(path: &Path, store: &dyn ca::storage::Storage) -> Option<Tally> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "metrics: the kept tally is unreadable; counting the audit trail again");
                return None;
            }
        };
        let saved: SavedTally = match serde_json::from_slice(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "metrics: the kept tally is not a tally; counting the audit trail again");
                return None;
            }
        };
        if saved.format != TALLY_FORMAT {
            return None;
        }
        if saved.next > 0 {
            let last = store.audit_records(saved.next - 1, 1).ok()?;
            let extends = last
                .first()
                .is_some_and(|r| r.seq == saved.next - 1 && r.hash == saved.last_hash);
            if !extends {
                tracing::warn!(
                    counted = saved.next,
                    "metrics: the audit trail does not extend the kept tally (a restored store?); counting it again"
                );
                return None;
            }
        }
        Some(Tally {
            next: saved.next,
            last_hash: saved.last_hash,
            issued: saved.issued.into_iter().collect(),
            revoked: saved.revoked.into_iter().collect(),
            held: saved.held.into_iter().collect(),
            pf_calls: saved.pf_calls.into_iter().collect(),
            refused: saved.refused.into_iter().collect(),
        })
    }

    /// Writes the tally to `path`: 0600, atomically (temporary file, fsync, rename, fsync of
    /// the directory).
    fn keep(&self, path: &Path) -> ca::Result<()> {
        let saved = SavedTally {
            format: TALLY_FORMAT,
            next: self.next,
            last_hash: self.last_hash.clone(),
            issued: self.issued.clone().into_iter().collect(),
            revoked: self.revoked.clone().into_iter().collect(),
            held: self.held.clone().into_iter().collect(),
            pf_calls: self.pf_calls.clone().into_iter().collect(),
            refused: self.refused.clone().into_iter().collect(),
        };
        let bytes = serde_json::to_vec(&saved)
            .map_err(|e| ca::Error::Invalid(format!("encode the metrics tally: {e}")))?;
        ca::datadir::replace_private(path, &bytes)
    }

    fn add(&mut self, r: &ca::audit::Record) {
        let hierarchy = || r.subject.split(':').next().unwrap_or("").to_owned();
        match r.action.as_str() {
            "issue" => *self.issued.entry(hierarchy()).or_default() += 1,
            "revoke" => {
                *self
                    .revoked
                    .entry((hierarchy(), r.detail.clone()))
                    .or_default() += 1
            }
            "hold" => *self.held.entry(hierarchy()).or_default() += 1,
            "pf-access" => {
                // detail: `pf=… sp=… op=… outcome=…`
                let field = |k: &str| {
                    r.detail
                        .split(' ')
                        .find_map(|w| w.strip_prefix(k))
                        .unwrap_or("")
                        .to_owned()
                };
                *self
                    .pf_calls
                    .entry((field("op="), field("outcome=")))
                    .or_default() += 1;
            }
            "refused" => {
                *self
                    .refused
                    .entry((r.subject.clone(), r.detail.clone()))
                    .or_default() += 1
            }
            _ => {}
        }
    }
}

/// One readiness check and, when it failed, why.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `/readyz` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

/// Readiness and metrics of a running server (see the module docs).
pub struct Health {
    authority: Arc<Authority>,
    publisher: Arc<crl_publisher::Publisher>,
    watch: Arc<super::renew::Watch>,
    tally: Mutex<Tally>,
    /// Where the tally is kept across restarts ([`Health::keep_tally_in`]).
    tally_file: OnceLock<PathBuf>,
    /// Whether the first publication pass since start is over (`jpki serve` listens before
    /// it: on a large new store it publishes thousands of partitions).
    first_crls: tokio::sync::watch::Sender<bool>,
}

impl Health {
    pub fn new(
        authority: Arc<Authority>,
        publisher: Arc<crl_publisher::Publisher>,
        watch: Arc<super::renew::Watch>,
    ) -> Arc<Health> {
        Arc::new(Health {
            authority,
            publisher,
            watch,
            tally: Mutex::new(Tally::default()),
            tally_file: OnceLock::new(),
            first_crls: tokio::sync::watch::channel(false).0,
        })
    }

    /// Says the first CRL publication pass since start is over.
    pub fn first_crls_published(&self) {
        self.first_crls.send_replace(true);
    }

    /// Waits until the first CRL publication pass since start is over (CRL requests wait
    /// for it rather than finding a partition not yet published).
    pub async fn first_crls(&self) {
        let mut rx = self.first_crls.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Runs every readiness check (blocking: reads the store and the key files).
    pub fn readiness(&self) -> Readiness {
        let a = &self.authority;
        let now = a.clock().now();
        let outcome = |check: &'static str, r: std::result::Result<(), String>| Check {
            check,
            ok: r.is_ok(),
            reason: r.err(),
        };
        let store = a.storage().writable().map_err(|e| e.to_string());
        let signers = (|| -> std::result::Result<(), String> {
            for h in Hierarchy::ALL {
                a.signer(h).map_err(|e| format!("{h} root: {e}"))?;
                a.ocsp_signer(h)
                    .map_err(|e| format!("{h} OCSP signer: {e}"))?;
            }
            let expiries = a.expiries().map_err(|e| e.to_string())?;
            let expired: Vec<String> = expiries
                .iter()
                .filter(|e| e.not_after <= now)
                .map(|e| {
                    format!(
                        "{} (serial {}) expired {}",
                        e.label(),
                        e.serial,
                        e.not_after
                    )
                })
                .collect();
            if expired.is_empty() {
                Ok(())
            } else {
                Err(expired.join("; "))
            }
        })();
        let crls = (|| -> std::result::Result<(), String> {
            if !*self.first_crls.borrow() {
                return Err("the first publication of every CRL since start is in progress".into());
            }
            let status = self.publisher.status(now).map_err(|e| e.to_string())?;
            let stale: Vec<String> = status
                .iter()
                .filter_map(|s| {
                    let name = format!("{}/{}", s.hierarchy, crl_publisher::scope_name(&s.scope));
                    match &s.published {
                        None => Some(format!("{name}: never published")),
                        Some(p) if p.next_update <= now => {
                            Some(format!("{name}: nextUpdate {} has passed", p.next_update))
                        }
                        Some(_) => None,
                    }
                })
                .collect();
            match stale.len() {
                0 => Ok(()),
                n => Err(format!(
                    "{n} CRL(s) not fresh: {}",
                    stale.into_iter().take(5).collect::<Vec<_>>().join("; ")
                )),
            }
        })();
        let checks = vec![
            outcome("store", store),
            outcome("signers", signers),
            outcome("crls", crls),
        ];
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// Keeps the tally in `path` across restarts (see the module docs). Once; before
    /// [`Health::warm_up`].
    pub fn keep_tally_in(&self, path: PathBuf) {
        let _ = self.tally_file.set(path);
    }

    /// Brings the counters up to date once at start (off the request path), so that the
    /// first scrape of a large store does not wait: from the kept tally when the store's
    /// audit trail extends it, else by reading the whole trail.
    pub fn warm_up(&self) {
        let t0 = std::time::Instant::now();
        let mut resumed = None;
        if let Some(path) = self.tally_file.get() {
            if let Some(kept) = Tally::resume(path, self.authority.storage().as_ref()) {
                resumed = Some(kept.next);
                *self.tally.lock().unwrap_or_else(|p| p.into_inner()) = kept;
            }
        }
        if let Err(e) = self.catch_up() {
            tracing::warn!(error = %e, "metrics: audit trail unreadable");
        }
        let next = self.tally.lock().unwrap_or_else(|p| p.into_inner()).next;
        tracing::info!(
            resumed_at = resumed,
            records_read = next.saturating_sub(resumed.unwrap_or(0)),
            seconds = t0.elapsed().as_secs_f64(),
            "metrics: the audit-trail counters are up to date"
        );
    }

    /// Reads the audit records appended since the last call into the counters, and keeps
    /// the tally if it moved.
    fn catch_up(&self) -> ca::Result<()> {
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let before = t.next;
        t.catch_up(self.authority.storage().as_ref())?;
        if let Some(path) = self.tally_file.get().filter(|_| t.next != before) {
            if let Err(e) = t.keep(path) {
                tracing::warn!(error = %e, path = %path.display(), "metrics: the tally could not be kept; the next start counts the audit trail again");
            }
        }
        Ok(())
    }

    /// The server's own Prometheus text (blocking: reads the store).
    pub fn render(&self) -> String {
        let mut out = self.watch.render();
        let now = self.authority.clock().now();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in rows {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        };
        // CRLs, per partition.
        match self.publisher.status(now) {
            Ok(status) => {
                // Root generations after the first are labelled (generation 1 keeps the
                // series it always had): one series per CRL.
                let label = |s: &crl_publisher::Status| {
                    let generation = if s.generation > 1 {
                        format!(",generation=\"{}\"", s.generation)
                    } else {
                        String::new()
                    };
                    format!(
                        "hierarchy=\"{}\",partition=\"{}\"{generation}",
                        s.hierarchy,
                        escape(&crl_publisher::scope_name(&s.scope))
                    )
                };
                let rows = |f: &dyn Fn(&crl_publisher::Status) -> Option<String>| {
                    status
                        .iter()
                        .filter_map(|s| f(s).map(|v| (label(s), v)))
                        .collect::<Vec<_>>()
                };
                metric(
                    "jpki_crl_age_seconds",
                    "gauge",
                    "Seconds since thisUpdate of each partition's last CRL.",
                    rows(&|s| s.age.map(|a| a.whole_seconds().to_string())),
                );
                metric(
                    "jpki_crl_seconds_to_next_update",
                    "gauge",
                    "Seconds until nextUpdate of each partition's last CRL (negative: stale).",
                    rows(&|s| {
                        s.published
                            .as_ref()
                            .map(|p| (p.next_update - now).whole_seconds().to_string())
                    }),
                );
                metric(
                    "jpki_crl_number",
                    "gauge",
                    "cRLNumber of each partition's last CRL.",
                    rows(&|s| s.published.as_ref().map(|p| p.number.to_string())),
                );
                metric(
                    "jpki_crl_entries",
                    "gauge",
                    "Entries on each partition's last CRL.",
                    rows(&|s| s.published.as_ref().map(|p| p.entries.to_string())),
                );
                metric(
                    "jpki_crl_bytes",
                    "gauge",
                    "Size in bytes of each partition's last CRL.",
                    rows(&|s| s.published.as_ref().map(|p| p.size.to_string())),
                );
            }
            Err(e) => tracing::warn!(error = %e, "metrics: CRL status unreadable"),
        }
        // The store.
        let store = self.authority.storage();
        let c = store.commit_stats();
        metric(
            "jpki_store_commit_batches_total",
            "counter",
            "Durable writes (one journal record and fsync each) since the server started.",
            vec![(String::new(), c.batches.to_string())],
        );
        metric(
            "jpki_store_commit_transactions_total",
            "counter",
            "Transactions committed in them.",
            vec![(String::new(), c.transactions.to_string())],
        );
        metric(
            "jpki_store_commit_sync_seconds_total",
            "counter",
            "Time spent waiting for durable writes (divide by batches: mean commit latency).",
            vec![(String::new(), seconds(c.sync_us))],
        );
        metric(
            "jpki_store_commit_seconds_total",
            "counter",
            "Time spent committing: staging, durable write and applying.",
            vec![(String::new(), seconds(c.stage_us + c.sync_us + c.apply_us))],
        );
        if let Ok(bytes) = store.journal_bytes() {
            metric(
                "jpki_store_journal_bytes",
                "gauge",
                "Size of the store's write-ahead journal: its records, not the zeros preallocated after them (compaction shortens it).",
                vec![(String::new(), bytes.to_string())],
            );
        }
        // The audit trail's counters.
        if let Err(e) = self.catch_up() {
            tracing::warn!(error = %e, "metrics: audit trail unreadable");
        }
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let by_h = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(h, n)| (format!("hierarchy=\"{}\"", escape(h)), n.to_string()))
                .collect::<Vec<_>>()
        };
        metric(
            "jpki_certificates_issued_total",
            "counter",
            "Certificates issued, per hierarchy (from the audit trail).",
            by_h(&t.issued),
        );
        metric(
            "jpki_certificates_revoked_total",
            "counter",
            "Certificates revoked, per hierarchy and reason (from the audit trail).",
            t.revoked
                .iter()
                .map(|((h, r), n)| {
                    (
                        format!("hierarchy=\"{}\",reason=\"{}\"", escape(h), escape(r)),
                        n.to_string(),
                    )
                })
                .collect(),
        );
        metric(
            "jpki_certificates_held_total",
            "counter",
            "Certificates put on hold, per hierarchy (from the audit trail).",
            by_h(&t.held),
        );
        metric(
            "jpki_platform_calls_total",
            "counter",
            "Platform-operator API calls, per operation and outcome (ok, or the refusal's code).",
            t.pf_calls
                .iter()
                .map(|((op, outcome), n)| {
                    (
                        format!(
                            "operation=\"{}\",outcome=\"{}\"",
                            escape(op),
                            escape(outcome)
                        ),
                        n.to_string(),
                    )
                })
                .collect(),
        );
        metric(
            "jpki_requests_refused_total",
            "counter",
            "Officers' and administrators' requests refused, per operation and code.",
            t.refused
                .iter()
                .map(|((op, code), n)| {
                    (
                        format!("operation=\"{}\",code=\"{}\"", escape(op), escape(code)),
                        n.to_string(),
                    )
                })
                .collect(),
        );
        metric(
            "jpki_audit_records",
            "gauge",
            "Records in the audit trail.",
            vec![(String::new(), t.next.to_string())],
        );
        out
    }
}

/// Microseconds as seconds, for Prometheus.
fn seconds(us: u64) -> String {
    format!("{:.6}", us as f64 / 1e6)
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: &str, subject: &str, detail: &str) -> ca::audit::Record {
        ca::audit::Record {
            v: 2,
            seq: 0,
            at: time::OffsetDateTime::UNIX_EPOCH,
            actor: None,
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_tally_counts_what_the_audit_trail_says() {
        let mut t = Tally::default();
        t.add(&record("issue", "signing:0A", "signing for R1"));
        t.add(&record("issue", "auth:0B", "auth for R1"));
        t.add(&record("issue", "auth:0C", "auth for R2"));
        t.add(&record("revoke", "auth:0B", "keyCompromise"));
        t.add(&record("hold", "signing:0A", "certificateHold"));
        t.add(&record(
            "pf-access",
            "-",
            "pf=PF1 sp=SP1 op=validity outcome=sp_suspended",
        ));
        t.add(&record("refused", "resident-add", "forbidden"));
        t.add(&record("resident-add", "R3", ""));
        assert_eq!(t.issued["auth"], 2);
        assert_eq!(t.issued["signing"], 1);
        assert_eq!(t.revoked[&("auth".into(), "keyCompromise".into())], 1);
        assert_eq!(t.held["signing"], 1);
        assert_eq!(t.pf_calls[&("validity".into(), "sp_suspended".into())], 1);
        assert_eq!(t.refused[&("resident-add".into(), "forbidden".into())], 1);
    }

    fn append(store: &dyn ca::storage::Storage, action: &str, subject: &str, detail: &str) {
        store
            .transact(&|t| {
                ca::storage::audit(t, time::OffsetDateTime::UNIX_EPOCH, action, subject, detail)
            })
            .unwrap();
    }

    /// The tally kept in a file resumes when the trail extends it (only the new records are
    /// read) and is counted again when it does not (a restored, shorter or other trail) or
    /// the file is not a tally; the file is private.
    #[test]
    fn a_kept_tally_resumes_only_on_a_trail_that_extends_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve-metrics-tally.json");
        let store = ca::storage::memory::MemoryStorage::new();
        append(&store, "issue", "signing:0A", "signing for R1");
        append(&store, "revoke", "signing:0A", "keyCompromise");
        let mut t = Tally::default();
        t.catch_up(&store).unwrap();
        t.keep(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // Resumed: the same counters, and the catch-up reads only what was appended since.
        append(&store, "issue", "auth:0B", "auth for R1");
        let mut resumed = Tally::resume(&path, &store).expect("resumed");
        assert_eq!(resumed, t);
        resumed.catch_up(&store).unwrap();
        let mut whole = Tally::default();
        whole.catch_up(&store).unwrap();
        assert_eq!(resumed, whole);
        assert_eq!(resumed.issued["auth"], 1);

        // Another trail (a restored or different store) does not extend it: not resumed.
        let other = ca::storage::memory::MemoryStorage::new();
        append(&other, "hold", "signing:0C", "certificateHold");
        append(&other, "issue", "signing:0D", "signing for R2");
        assert_eq!(
            Tally::resume(&path, &other),
            None,
            "the last record's hash differs"
        );
        let shorter = ca::storage::memory::MemoryStorage::new();
        append(&shorter, "issue", "signing:0A", "signing for R1");
        assert_eq!(Tally::resume(&path, &shorter), None, "the trail is shorter");

        // Not a tally, or no file: counted from the first record.
        std::fs::write(&path, b"{").unwrap();
        assert_eq!(Tally::resume(&path, &store), None);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(Tally::resume(&path, &store), None);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
