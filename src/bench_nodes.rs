//! `jpki bench nodes`: revocation-to-edge latency (issue #13). A throwaway PostgreSQL primary
//! (`fsync=on`) and a streaming-replication standby of it (`storage_postgres::testing`); one
//! writer revokes certificates one unit of work at a time, as a CA node does, and notes when
//! each revocation was acknowledged (its unit of work returned, durable); two edge followers
//! ([`crate::serve::follow::Follower::run`], the code `serve --role edge` runs: polling every
//! [`POLL`](crate::serve::follow::POLL), and on the primary also woken by LISTEN/NOTIFY) — one
//! on the primary, one on the standby — note when each revoked serial reached them and read
//! its status back, as an edge's cache refresh does before re-signing. Reported: p50/p99/max
//! of (seen at the edge − acknowledged), per edge, and whether the edge listened.
//!
//! The certificate records are synthetic (the storage authority does not parse them); the
//! OCSP re-signing an edge then does for a cached answer (one RSA signature, ~1–2 ms) is not
//! part of the figure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca::records::{CertKind, CertRecord, State, StatusRecord};
use ca::storage::Storage;
use policies::profile::Scope;
use policies::{Hierarchy, Reason};
use serde::Serialize;
use storage_postgres::testing::{Cluster, Fsync};
use storage_postgres::PgStorage;

use crate::serve::follow::{Apply, Follower};
use crate::{Error, Result};

/// Latency of one edge, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub edge: &'static str,
    /// Woken by NOTIFY (the primary) rather than by polling alone (the standby).
    pub notify: bool,
    pub notifications: u64,
    pub revocations: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct NodesReport {
    pub revocations: usize,
    /// Revocations acknowledged per second by the one writer.
    pub revocations_per_second: f64,
    pub edges: Vec<Latency>,
}

/// Notes when each serial reached an edge, after reading its status back.
struct Probe {
    store: Arc<dyn Storage>,
    seen: Mutex<HashMap<Vec<u8>, Instant>>,
}

impl Apply for Probe {
    fn status_changed(&self, h: Hierarchy, serial: &[u8]) -> std::result::Result<(), String> {
        let s = self.store.status(h, serial).map_err(|e| e.to_string())?;
        if s.map(|s| s.state) != Some(State::Revoked) {
            return Err("the follower saw the log entry before the status".into());
        }
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(serial.to_vec())
            .or_insert_with(Instant::now);
        Ok(())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn record(n: u64) -> CertRecord {
    let now = time::OffsetDateTime::now_utc();
    CertRecord {
        hierarchy: Hierarchy::Signing,
        serial: n.to_be_bytes().to_vec(),
        kind: CertKind::of(Hierarchy::Signing),
        holder: Some(format!("bench-{n}")),
        partition: Some(Scope::Partition(0)),
        generation: 1,
        not_before: now,
        not_after: now + time::Duration::days(365),
        // Synthetic: the storage authority stores, never parses, a certificate's DER.
        der: format!("bench certificate {n}").into_bytes(),
    }
}

/// Runs the benchmark: `count` revocations.
pub fn nodes(count: usize) -> Result<NodesReport> {
    let serve = |e: std::io::Error| Error::Serve(format!("benchmark cluster: {e}"));
    let primary = Cluster::start(Fsync::On)
        .map_err(serve)?
        .ok_or_else(|| Error::Serve("no PostgreSQL binaries: nothing measured".into()))?;
    let url = primary.database().map_err(serve)?;
    let writer = PgStorage::open(&url).map_err(ca::Error::from)?;
    let standby = primary.standby().map_err(serve)?;
    let db = url.rsplit('/').next().unwrap_or_default().to_owned();
    let certs: Vec<CertRecord> = (1..=count as u64).map(record).collect();
    for chunk in certs.chunks(500) {
        writer.transact(&|t| {
            for c in chunk {
                t.add_certificate(c, None)?;
            }
            Ok(())
        })?;
    }
    let edge = |url: &str| -> Result<(Arc<Probe>, Arc<Follower>)> {
        let pg = Arc::new(PgStorage::open_follower(url).map_err(ca::Error::from)?);
        let store: Arc<dyn Storage> = pg.clone();
        let probe = Arc::new(Probe {
            store: Arc::clone(&store),
            seen: Mutex::new(HashMap::new()),
        });
        let f = Arc::new(Follower::new(store, Some(pg), probe.clone())?);
        Ok((probe, f))
    };
    // Let the standby replay the set-up first.
    let standby_url = standby.url(&db);
    let edges = [
        ("primary", edge(&url)?),
        ("standby", {
            let t0 = Instant::now();
            loop {
                // Until it has replayed the schema (open_follower checks its version).
                if let Ok(e) = edge(&standby_url) {
                    break e;
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    return Err(Error::Serve("the standby did not come up".into()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(serve)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for (_, (_, f)) in &edges {
        let mut stop = stop_rx.clone();
        rt.spawn(Arc::clone(f).run(async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    // Until the edge on the primary listens (or gives up on it: then it polls, and says so).
    let t0 = Instant::now();
    while !edges[0].1 .1.state().listening && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut acked = Vec::with_capacity(count);
    let started = Instant::now();
    for c in &certs {
        let st = StatusRecord {
            state: State::Revoked,
            reason: Some(Reason::KeyCompromise),
            since: Some(time::OffsetDateTime::now_utc()),
            invalidity: None,
        };
        writer.transact(&|t| t.set_status(c, &st))?;
        acked.push(Instant::now());
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    // Wait (bounded) for both edges to see every revocation.
    let t0 = Instant::now();
    while edges
        .iter()
        .any(|(_, (p, _))| p.seen.lock().unwrap_or_else(|p| p.into_inner()).len() < count)
        && t0.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = stop_tx.send(true);
    let mut out = Vec::new();
    for (name, (probe, follower)) in &edges {
        let seen = probe.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut ms: Vec<f64> = certs
            .iter()
            .zip(&acked)
            .filter_map(|(c, a)| {
                seen.get(&c.serial)
                    .map(|s| s.saturating_duration_since(*a).as_secs_f64() * 1000.0)
            })
            .collect();
        if ms.len() < count {
            return Err(Error::Serve(format!(
                "the edge on the {name} saw {} of {count} revocations within 120 s",
                ms.len()
            )));
        }
        ms.sort_by(f64::total_cmp);
        let state = follower.state();
        out.push(Latency {
            edge: name,
            notify: state.listening,
            notifications: state.notifications,
            revocations: ms.len(),
            p50_ms: percentile(&ms, 0.50),
            p99_ms: percentile(&ms, 0.99),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
        });
    }
    rt.shutdown_background();
    drop(standby);
    drop(primary);
    Ok(NodesReport {
        revocations: count,
        revocations_per_second: rate,
        edges: out,
    })
}
