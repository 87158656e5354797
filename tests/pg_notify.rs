//! Edges woken by NOTIFY on the primary, polling on a standby (issue #13; src/serve/follow.rs,
//! storage_postgres::wakeups). The followers are the code `serve --role edge` runs
//! (`Follower::run`), in this process, on a throwaway primary and its streaming standby.
//!
//! Functional, not timed: the follower on the primary is configured to poll once an hour, so
//! the only way it can see a revocation within the test's bound is the notification; the
//! follower on the standby polls at the default interval (a standby cannot LISTEN) and must
//! see the same revocations by polling. The primary is then stopped and started again: the
//! listener reconnects by itself and NOTIFY delivers again. Skipped, loudly, where PostgreSQL
//! is missing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca::storage::conformance::revoke_holder as revoke;
use jpki::serve::follow::{Apply, Follower};
use policies::Hierarchy;
use storage_postgres::testing::{Cluster, Fsync};
use storage_postgres::PgStorage;

/// Generous bound for what should take well under a second; far below the hour-long poll.
const BOUND: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Seen(Mutex<HashSet<Vec<u8>>>);

impl Apply for Seen {
    fn status_changed(&self, _: Hierarchy, serial: &[u8]) -> Result<(), String> {
        self.0.lock().unwrap().insert(serial.to_vec());
        Ok(())
    }
}

impl Seen {
    fn has(&self, serial: u8) -> bool {
        self.0.lock().unwrap().contains(&vec![serial])
    }
}

fn eventually(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < BOUND, "not within {BOUND:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A follower on `url` (`poll` between reads when not woken), running on `rt`.
fn follower(
    rt: &tokio::runtime::Runtime,
    url: &str,
    poll: Duration,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> (Arc<Seen>, Arc<Follower>) {
    let pg = Arc::new(PgStorage::open_follower(url).expect("open follower"));
    let seen = Arc::new(Seen::default());
    let f = Arc::new(
        Follower::new(pg.clone(), Some(pg), seen.clone())
            .expect("follower")
            .with_poll(poll),
    );
    let mut stop = stop.clone();
    rt.spawn(Arc::clone(&f).run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    (seen, f)
}

#[test]
fn an_edge_on_the_primary_is_woken_by_notify_and_one_on_the_standby_polls() {
    let Some(mut primary) = Cluster::start(Fsync::Off).expect("cluster") else {
        return;
    };
    let url = primary.database().expect("database");
    let writer = PgStorage::open(&url).expect("open (migrates)");
    let standby = primary.standby().expect("standby");
    let standby_url = standby.url(url.rsplit('/').next().expect("name"));
    let t0 = Instant::now();
    while PgStorage::open_follower(&standby_url).is_err() {
        assert!(
            t0.elapsed() < BOUND,
            "the standby did not replay the schema"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (on_primary, f_primary) = follower(&rt, &url, HOUR, &stop_rx);
    let (on_standby, f_standby) = follower(&rt, &standby_url, jpki::serve::follow::POLL, &stop_rx);
    eventually("the edge on the primary listens", || {
        f_primary.state().listening
    });
    assert!(f_primary
        .state()
        .metrics()
        .contains("jpki_edge_db_listening 1"));

    for serial in 1..=3u8 {
        revoke(&writer, serial);
        eventually(
            "the edge on the primary is woken (its poll is an hour away)",
            || on_primary.has(serial),
        );
        eventually("the edge on the standby sees it by polling", || {
            on_standby.has(serial)
        });
    }
    assert!(f_primary.state().notifications >= 3);
    let standby_state = f_standby.state();
    assert!(standby_state.standby && !standby_state.listening);
    assert!(standby_state.metrics().contains("jpki_edge_db_listening 0"));

    // The primary stops and comes back: the listener reconnects by itself, and a revocation
    // after that is still delivered without a poll.
    primary.stop().expect("stop the primary");
    primary.restart().expect("restart the primary");
    let writer = PgStorage::open(&url).expect("reopen the writer");
    revoke(&writer, 4);
    eventually(
        "after the restart, the edge on the primary is woken again",
        || on_primary.has(4),
    );
    eventually("and the edge on the standby polls it", || on_standby.has(4));
    let _ = stop_tx.send(true);
}
