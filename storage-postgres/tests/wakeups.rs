//! LISTEN/NOTIFY wake-ups for edges (storage_postgres::wakeups) against a real primary and a
//! streaming standby: a committed revocation wakes a listener on the primary; a listener whose
//! connection was killed listens again by itself (and wakes its caller when it does); on a
//! standby nothing listens and the caller is left to poll. Bounds are generous (no timing is
//! asserted): each wait is for an event that, without the mechanism, would never come.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ca::storage::conformance::{revoke_holder as revoke, revoke_holder_in};
use ca::storage::Storage;
use storage_postgres::testing::{Cluster, Fsync};
use storage_postgres::wakeups::RevocationWakeups;
use storage_postgres::PgStorage;

const BOUND: Duration = Duration::from_secs(30);

fn until(
    what: &str,
    w: &RevocationWakeups,
    ok: impl Fn(&storage_postgres::wakeups::WakeupState) -> bool,
) {
    let t0 = Instant::now();
    while !ok(&w.state()) {
        assert!(t0.elapsed() < BOUND, "{what}: {:?}", w.state());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) for the next wake-up.
fn woken(rt: &tokio::runtime::Runtime, w: &RevocationWakeups) {
    rt.block_on(async {
        tokio::time::timeout(BOUND, w.wait())
            .await
            .expect("woken within the bound")
    })
}

#[test]
fn a_revocation_wakes_a_listener_on_the_primary_which_survives_losing_its_connection() {
    let Some(primary) = Cluster::start(Fsync::Off).expect("cluster") else {
        return;
    };
    let url = primary.database().expect("database");
    let writer = PgStorage::open(&url).expect("open");
    let edge = Arc::new(PgStorage::open_follower(&url).expect("open follower"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let w = edge.revocation_wakeups();
    until("listening", &w, |s| s.listening && s.listens == 1);
    // The wake-up every LISTEN gives (for what was committed before it).
    woken(&rt, &w);

    revoke(&writer, 1);
    woken(&rt, &w);
    until("the notification counted", &w, |s| s.notifications == 1);
    assert_eq!(edge.revocations_since(0, 10).expect("read").len(), 1);

    // Several revocations in one unit of work: one notification (PostgreSQL folds them).
    let before = w.state().notifications;
    writer
        .transact(&|t| {
            for serial in [2u8, 3, 4] {
                revoke_holder_in(t, serial)?;
            }
            Ok(())
        })
        .expect("three in one");
    woken(&rt, &w);
    until("one notification for the unit of work", &w, |s| {
        s.notifications == before + 1
    });

    // The listening connection is killed: the listener listens again by itself and wakes
    // its caller, so a revocation committed meanwhile is read at once.
    primary
        .sql(
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'jpki-edge-listen'",
        )
        .expect("terminate the listener's backend");
    revoke(&writer, 5);
    until("listening again", &w, |s| s.listening && s.listens == 2);
    woken(&rt, &w);
    let before = w.state().notifications;
    revoke(&writer, 6);
    until("the new connection notified", &w, |s| {
        s.notifications > before
    });
    assert_eq!(edge.revocations_since(0, 10).expect("read").len(), 6);
}

#[test]
fn on_a_standby_nothing_listens() {
    let Some(primary) = Cluster::start(Fsync::Off).expect("cluster") else {
        return;
    };
    let url = primary.database().expect("database");
    let _writer = PgStorage::open(&url).expect("open (migrates)");
    let standby = primary.standby().expect("standby");
    let db = url.rsplit('/').next().expect("name");
    let t0 = Instant::now();
    let edge = loop {
        // Until the standby has replayed the schema.
        match PgStorage::open_follower(&standby.url(db)) {
            Ok(s) => break s,
            Err(e) => assert!(t0.elapsed() < BOUND, "the standby never came up: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let w = edge.revocation_wakeups();
    until("found to be a standby", &w, |s| s.standby);
    assert!(!w.state().listening && w.state().listens == 0);
}
