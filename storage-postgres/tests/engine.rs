//! What the PostgreSQL engine does beyond the conformance suite: migrations and the schema
//! version check, the revocation log, re-running a body after a serialization failure.
//! Skipped, loudly, where the PostgreSQL binaries are missing.

use std::sync::atomic::{AtomicU32, Ordering};

use ca::records::StatusRecord;
use ca::storage::conformance::{at, holder_cert, key_of};
use ca::storage::{Storage, Tx};
use policies::profile::Scope;
use policies::{Hierarchy, Reason};
use storage_postgres::{schema, testing, PgError, PgStorage};

fn database() -> Option<(&'static testing::Cluster, String)> {
    let cluster = testing::shared()?;
    let url = cluster.database().expect("create a test database");
    Some((cluster, url))
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().expect("a database name")
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let Some((cluster, url)) = database() else {
        return;
    };
    let s = PgStorage::open(&url).expect("first open migrates");
    assert_eq!(s.schema_version().expect("version"), schema::latest());
    drop(s);
    // Opening again applies nothing and keeps the data.
    let s = PgStorage::open(&url).expect("second open");
    s.transact(&|t| t.put_crl_state(Hierarchy::Auth, Scope::Ca, b"kept"))
        .expect("write");
    drop(s);
    let s = PgStorage::open(&url).expect("third open");
    assert_eq!(
        s.crl_state(Hierarchy::Auth, Scope::Ca).expect("read"),
        Some(b"kept".to_vec())
    );
    drop(s);
    // A newer binary's migration: refused with a clear error.
    cluster
        .sql(
            db_name(&url),
            "INSERT INTO schema_version (version, description) VALUES (999, 'from the future')",
        )
        .expect("insert");
    match PgStorage::open(&url) {
        Err(e @ PgError::SchemaTooNew { found: 999, .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("999") && text.contains("upgrade jpki"),
                "{text}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a database at schema 999 was opened"),
    }
}

#[test]
fn set_status_appends_to_the_revocation_log() {
    let Some((cluster, url)) = database() else {
        return;
    };
    let s = PgStorage::open(&url).expect("open");
    let c = holder_cert(Hierarchy::Signing, &[7], "R1", 3);
    s.transact(&|t| t.add_certificate(&c, Some(&key_of(&c))))
        .expect("add");
    let revoked = StatusRecord {
        state: ca::records::State::Revoked,
        reason: Some(Reason::KeyCompromise),
        since: Some(at(60)),
        invalidity: None,
    };
    s.transact(&|t| t.set_status(&c, &revoked)).expect("revoke");
    // A failed body leaves no log row.
    let _ = s.transact(&|t| {
        t.set_status(&c, &StatusRecord::GOOD)?;
        Err(ca::Error::Invalid("planned".into()))
    });
    // The log's rows, checked in SQL: exactly one, with the status written.
    cluster
        .sql(
            db_name(&url),
            "DO $$ BEGIN
               IF (SELECT count(*) FROM revocation_log) <> 1 THEN
                 RAISE EXCEPTION 'expected one log row';
               END IF;
               IF NOT EXISTS (SELECT 1 FROM revocation_log WHERE seq >= 1 AND hierarchy = 0
                              AND serial = '\\x07' AND state = 'revoked' AND reason = 1) THEN
                 RAISE EXCEPTION 'the log row does not say what was written';
               END IF;
             END $$",
        )
        .expect("the revocation log holds the revocation");
}

#[test]
fn a_serialization_failure_runs_the_body_again() {
    let Some((cluster, url)) = database() else {
        return;
    };
    let s = PgStorage::open(&url).expect("open");
    s.transact(&|t| t.put_crl_state(Hierarchy::Signing, Scope::Partition(1), b"v0"))
        .expect("seed");
    let runs = AtomicU32::new(0);
    s.transact(&|t: &dyn Tx| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        // Read the row (this takes the transaction's snapshot) …
        let _ = t.crl_dirty(Hierarchy::Signing, Scope::Partition(1))?;
        if n == 0 {
            // … someone else (writing without the engine's lock) changes it and commits …
            cluster
                .sql(
                    db_name(&url),
                    "UPDATE crl_state SET state = 'v1' WHERE crl_scope = 1",
                )
                .expect("concurrent update");
        }
        // … and this write of the same row fails with 40001 on the first run.
        t.put_crl_state(Hierarchy::Signing, Scope::Partition(1), b"v2")
    })
    .expect("committed on a later run");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the body ran twice");
    assert_eq!(
        s.crl_state(Hierarchy::Signing, Scope::Partition(1))
            .expect("read"),
        Some(b"v2".to_vec())
    );
}
