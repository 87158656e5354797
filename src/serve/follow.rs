//! An edge node's follower of the revocation log: it polls the log's sequence on the
//! database the edge reads (the primary or a streaming-replication standby) and replaces the
//! OCSP responder's cached answer for every certificate whose status changed — revoked, held
//! or released — so that an edge answers `revoked` shortly after a CA node acknowledged the
//! revocation (docs/deployment.md, "Freshness").
//!
//! Polling and LISTEN/NOTIFY: a hot standby cannot LISTEN (notifications are not replicated),
//! so every edge polls; a poll is one indexed range read (`seq > last`), cheap enough every
//! [`POLL`]. An edge on the **primary** is also woken by the database as soon as a revocation
//! commits (`storage_postgres::wakeups`: LISTEN on a dedicated connection, NOTIFY in the unit
//! of work that appends to the log) and reads the log at once, so it does not wait for its
//! next poll. A notification only says "read now": a lost one, or a broken listening
//! connection, costs at most one poll interval, never a revocation (the poll stays, the
//! listener reconnects by itself and a read follows every reconnect).
//!
//! Why the log's sequence can be followed with `seq > last` and no gap handling: every unit of
//! work that writes the log takes the engine's writer lock before its first query and holds it
//! to COMMIT (storage-postgres, "Isolation"), so sequence numbers are taken and made visible in
//! commit order, and a standby replays commits in that same order. A number taken by a unit of
//! work that then rolled back is a gap that never fills, which `seq > last` skips as it must.
//!
//! The follower also says whether the edge is ready: its database answered within
//! [`STALE_AFTER`]. When it does not (the primary stopped, the network is cut), the edge keeps
//! answering from its cache until the answers' nextUpdate, `/healthz` says not ready and why,
//! `/metrics` says so too, and the follower keeps trying; it catches up from the last sequence
//! it applied when the database answers again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca::storage::Storage;

/// How often the revocation log is read.
pub const POLL: Duration = Duration::from_millis(100);
/// Entries read per poll at most (a backlog is read in pages, without sleeping between).
const PAGE: usize = 1000;
/// Without a successful read for this long the edge says it is not ready.
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// What the follower knows, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct FollowState {
    /// The last sequence number applied.
    pub seq: u64,
    /// Status changes applied since start.
    pub applied: u64,
    /// Polls that failed since start.
    pub failures: u64,
    /// When the database last answered.
    pub last_ok: Option<Instant>,
    /// The last failure, while the database does not answer.
    pub error: Option<String>,
    /// Whether the database is a standby, and its replay age in seconds (storage-postgres).
    pub standby: bool,
    pub replay_age: Option<f64>,
    /// On a standby: whether it streams from its primary (`None` on a primary).
    pub streaming: Option<bool>,
    /// Whether the database's LISTEN connection is up (on a primary), and the notifications
    /// it delivered.
    pub listening: bool,
    pub notifications: u64,
}

impl FollowState {
    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<String> {
        match (self.last_ok, &self.error) {
            (Some(t), _) if t.elapsed() <= STALE_AFTER && self.streaming == Some(false) => Some(
                "the standby has lost its primary (its WAL receiver is not streaming): no \
                 revocation can reach it; answering from the OCSP cache until its nextUpdate"
                    .into(),
            ),
            (Some(t), _) if t.elapsed() <= STALE_AFTER => None,
            (_, Some(e)) => Some(format!(
                "database unreachable ({e}); answering from the OCSP cache until its nextUpdate"
            )),
            (_, None) => Some("the revocation log has not been read yet".into()),
        }
    }

    /// The follower's lines for `/metrics` (Prometheus text format).
    pub fn metrics(&self) -> String {
        let age = self.last_ok.map_or(-1.0, |t| t.elapsed().as_secs_f64());
        format!(
            "# HELP jpki_edge_ready Whether the edge's database answered within {stale} s.\n\
             # TYPE jpki_edge_ready gauge\n\
             jpki_edge_ready {ready}\n\
             # HELP jpki_edge_revocation_log_seq Last revocation log entry applied to the cache.\n\
             # TYPE jpki_edge_revocation_log_seq gauge\n\
             jpki_edge_revocation_log_seq {seq}\n\
             # HELP jpki_edge_status_changes_applied_total Cached answers replaced after a status change.\n\
             # TYPE jpki_edge_status_changes_applied_total counter\n\
             jpki_edge_status_changes_applied_total {applied}\n\
             # HELP jpki_edge_poll_failures_total Reads of the revocation log that failed.\n\
             # TYPE jpki_edge_poll_failures_total counter\n\
             jpki_edge_poll_failures_total {failures}\n\
             # HELP jpki_edge_db_last_ok_seconds Seconds since the database last answered (-1: never).\n\
             # TYPE jpki_edge_db_last_ok_seconds gauge\n\
             jpki_edge_db_last_ok_seconds {age:.3}\n\
             # HELP jpki_edge_db_standby Whether the edge reads a standby.\n\
             # TYPE jpki_edge_db_standby gauge\n\
             jpki_edge_db_standby {standby}\n\
             # HELP jpki_edge_db_replay_age_seconds On a standby: seconds since it replayed its primary's last transaction.\n\
             # TYPE jpki_edge_db_replay_age_seconds gauge\n\
             jpki_edge_db_replay_age_seconds {replay:.3}\n\
             # HELP jpki_edge_db_streaming On a standby: whether it streams from its primary (1 on a primary).\n\
             # TYPE jpki_edge_db_streaming gauge\n\
             jpki_edge_db_streaming {streaming}\n\
             # HELP jpki_edge_db_listening Whether the edge LISTENs for revocations on its database (a primary; 0 on a standby, which is polled).\n\
             # TYPE jpki_edge_db_listening gauge\n\
             jpki_edge_db_listening {listening}\n\
             # HELP jpki_edge_notifications_total Revocation-log notifications that woke the follower.\n\
             # TYPE jpki_edge_notifications_total counter\n\
             jpki_edge_notifications_total {notifications}\n",
            stale = STALE_AFTER.as_secs(),
            ready = u8::from(self.not_ready().is_none()),
            seq = self.seq,
            applied = self.applied,
            failures = self.failures,
            standby = u8::from(self.standby),
            replay = self.replay_age.unwrap_or(0.0),
            streaming = u8::from(self.streaming != Some(false)),
            listening = u8::from(self.listening),
            notifications = self.notifications,
        )
    }
}

/// Where a status change goes: the edge's OCSP responder (or a benchmark's probe).
pub trait Apply: Send + Sync {
    fn status_changed(&self, h: policies::Hierarchy, serial: &[u8]) -> Result<(), String>;
}

impl Apply for ocsp_responder::Responder {
    fn status_changed(&self, h: policies::Hierarchy, serial: &[u8]) -> Result<(), String> {
        self.refresh(h, serial, self.now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Follows the revocation log of `store` from its current head.
pub struct Follower {
    store: Arc<dyn Storage>,
    /// Replication state, when the store is PostgreSQL.
    replication: Option<Arc<storage_postgres::PgStorage>>,
    apply: Arc<dyn Apply>,
    state: Mutex<FollowState>,
    /// How often the log is read without a wake-up ([`POLL`] unless set).
    poll: Duration,
}

impl Follower {
    /// Starts at the log's current head: the cache is empty at start, so the earlier changes
    /// are read with the statuses when queried.
    pub fn new(
        store: Arc<dyn Storage>,
        replication: Option<Arc<storage_postgres::PgStorage>>,
        apply: Arc<dyn Apply>,
    ) -> ca::Result<Follower> {
        let seq = store.revocation_log_head()?;
        Ok(Follower {
            store,
            replication,
            apply,
            state: Mutex::new(FollowState {
                seq,
                last_ok: Some(Instant::now()),
                ..FollowState::default()
            }),
            poll: POLL,
        })
    }

    /// Reads the log every `poll` when nothing wakes it (tests set it long, to show that
    /// NOTIFY alone delivers a revocation; the default is [`POLL`]).
    pub fn with_poll(mut self, poll: Duration) -> Follower {
        self.poll = poll;
        self
    }

    pub fn state(&self) -> FollowState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One poll: reads and applies every entry past the last one applied (in pages), then
    /// the replication state. Blocking. Returns how many entries were applied.
    pub fn poll_once(&self) -> usize {
        let mut done = 0;
        loop {
            let after = self.state().seq;
            let page = match self.store.revocations_since(after, PAGE) {
                Ok(p) => p,
                Err(e) => {
                    self.failed(e.to_string());
                    return done;
                }
            };
            let full = page.len() == PAGE;
            for change in page {
                // A failed refresh leaves the entry out of the cache (queries then go to the
                // database), so it is never left stale: count it applied either way.
                if let Err(e) = self.apply.status_changed(change.hierarchy, &change.serial) {
                    tracing::warn!(error = %e, hierarchy = %change.hierarchy,
                        "refreshing a cached OCSP answer failed; the next query reads the database");
                }
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                s.seq = change.seq;
                s.applied += 1;
                done += 1;
            }
            if !full {
                break;
            }
        }
        let replication = self.replication.as_ref().map(|pg| pg.replication());
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match replication {
            Some(Err(e)) => {
                drop(s);
                self.failed(e.to_string());
                return done;
            }
            Some(Ok(r)) => {
                s.standby = r.standby;
                s.replay_age = r.replay_age;
                s.streaming = r.streaming;
            }
            None => {}
        }
        if s.error.take().is_some() {
            tracing::info!(
                seq = s.seq,
                "the database answers again; following the revocation log"
            );
        }
        s.last_ok = Some(Instant::now());
        done
    }

    fn failed(&self, e: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.failures += 1;
        if s.error.is_none() {
            tracing::error!(error = %e, "cannot read the revocation log; answering from the cache");
        }
        s.error = Some(e);
    }

    /// Reads the log every poll interval, and at once when the database wakes it (an edge
    /// on a PostgreSQL primary), until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let wakeups = self.replication.as_ref().map(|pg| pg.revocation_wakeups());
        loop {
            let me = Arc::clone(&self);
            if let Err(e) = tokio::task::spawn_blocking(move || me.poll_once()).await {
                tracing::error!(error = %e, "the revocation-log follower task failed");
            }
            if let Some(w) = &wakeups {
                let ws = w.state();
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                s.listening = ws.listening;
                s.notifications = ws.notifications;
            }
            let woken = async {
                match &wakeups {
                    Some(w) => w.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(self.poll) => {}
                _ = woken => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca::storage::conformance::revoke_holder as revoke;
    use ca::storage::memory::MemoryStorage;
    use policies::Hierarchy;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(Hierarchy, Vec<u8>)>>);
    impl Apply for Seen {
        fn status_changed(&self, h: Hierarchy, serial: &[u8]) -> Result<(), String> {
            self.0.lock().unwrap().push((h, serial.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn applies_what_came_after_its_start_in_order_and_pages() {
        let store = Arc::new(MemoryStorage::new());
        revoke(&*store, 1);
        let seen = Arc::new(Seen::default());
        let f = Follower::new(store.clone(), None, seen.clone()).unwrap();
        assert_eq!(
            f.poll_once(),
            0,
            "what came before the start is not replayed"
        );
        for n in 2..=255u8 {
            revoke(&*store, n);
        }
        for _ in 0..5 {
            for n in 2..=255u8 {
                revoke(&*store, n);
            }
        }
        assert_eq!(f.poll_once(), 254 * 6, "a backlog larger than a page");
        let got = seen.0.lock().unwrap();
        assert_eq!(got.first(), Some(&(Hierarchy::Signing, vec![2])));
        assert_eq!(got.last(), Some(&(Hierarchy::Signing, vec![255])));
        assert!(f.state().not_ready().is_none());
        assert_eq!(f.state().seq, store.revocation_log_head().unwrap());
        assert!(f.state().metrics().contains("jpki_edge_ready 1"));
    }
}
