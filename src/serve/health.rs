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
//! appended since the previous one (the first reads the whole trail, once), so they count
//! everything the store holds, whichever process wrote it, and survive restarts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use ca::Authority;
use policies::Hierarchy;
use serde::Serialize;

/// Audit records read per round trip while catching up.
const AUDIT_PAGE: usize = 5_000;

/// Counters tallied from the audit trail.
#[derive(Default)]
struct Tally {
    /// The next audit sequence number to read.
    next: u64,
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

impl Tally {
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

    /// Reads the whole audit trail into the counters once (at start, off the request path),
    /// so that the first scrape of a large store does not wait for it.
    pub fn warm_up(&self) {
        if let Err(e) = self.catch_up() {
            tracing::warn!(error = %e, "metrics: audit trail unreadable");
        }
    }

    /// Reads the audit records appended since the last call into the counters.
    fn catch_up(&self) -> ca::Result<()> {
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let store = self.authority.storage();
        loop {
            let page = store.audit_records(t.next, AUDIT_PAGE)?;
            for r in &page {
                t.add(r);
                t.next = r.seq + 1;
            }
            if page.len() < AUDIT_PAGE {
                return Ok(());
            }
        }
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
                "Size of the store's write-ahead journal (compaction shortens it).",
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

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
