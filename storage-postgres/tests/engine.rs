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
    s.transact(&|t| t.put_crl_state(Hierarchy::Auth, 1, Scope::Ca, b"kept"))
        .expect("write");
    drop(s);
    let s = PgStorage::open(&url).expect("third open");
    assert_eq!(
        s.crl_state(Hierarchy::Auth, 1, Scope::Ca).expect("read"),
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
    s.transact(&|t| t.put_crl_state(Hierarchy::Signing, 1, Scope::Partition(1), b"v0"))
        .expect("seed");
    let runs = AtomicU32::new(0);
    s.transact(&|t: &dyn Tx| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        // Read the row (this takes the transaction's snapshot) …
        let _ = t.crl_dirty(Hierarchy::Signing, 1, Scope::Partition(1))?;
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
        t.put_crl_state(Hierarchy::Signing, 1, Scope::Partition(1), b"v2")
    })
    .expect("committed on a later run");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the body ran twice");
    assert_eq!(
        s.crl_state(Hierarchy::Signing, 1, Scope::Partition(1))
            .expect("read"),
        Some(b"v2".to_vec())
    );
}

/// A database made before municipal CRL partitions (schema 2, rows in serial partitions)
/// keeps working after the upgrade to schema 3: its certificate stays on its old partition
/// (record, listing, consistency), its CRL state and dirty flag are kept, and certificates
/// on municipal partitions live beside it.
#[test]
fn a_schema_2_database_keeps_its_serial_partitions() {
    let Some((cluster, url)) = database() else {
        return;
    };
    let db = db_name(&url);
    cluster
        .sql(db, schema::VERSION_TABLE)
        .expect("version table");
    for (v, what, sql) in &schema::MIGRATIONS[..2] {
        cluster.sql(db, sql).expect("an old migration");
        cluster
            .sql(
                db,
                &format!(
                    "INSERT INTO schema_version (version, description) VALUES ({v}, '{}')",
                    what.replace('\'', "''")
                ),
            )
            .expect("record it");
    }
    let old = holder_cert(Hierarchy::Signing, &[0x66, 0x01], "R1", 7);
    let hex = |b: &[u8]| format!("'\\x{}'", hex::encode(b));
    // As the schema-2 engine wrote them: revoked for keyCompromise (1) at second 10.
    cluster
        .sql(
            db,
            &format!(
                "INSERT INTO certificates (hierarchy, serial, kind, holder, crl_partition, \
                 not_before_ns, not_after_ns, der) VALUES (0, {s}, 'signing', 'R1', 7, {nb}, {na}, {der});
                 INSERT INTO statuses (hierarchy, serial, state, reason, since_ns) \
                 VALUES (0, {s}, 'revoked', 1, 10000000000);
                 INSERT INTO revoked (hierarchy, crl_scope, serial, reason, revoked_at, not_after) \
                 VALUES (0, 7, {s}, 1, 10, {na_s});
                 INSERT INTO crl_state (hierarchy, crl_scope, state) VALUES (0, 7, '\\x6f6c64');
                 INSERT INTO crl_dirty (hierarchy, crl_scope) VALUES (0, 7);
                 INSERT INTO key_owners (fingerprint, holder, hierarchy) VALUES ({fp}, 'R1', 0);",
                fp = hex(&key_of(&old)),
                s = hex(&old.serial),
                nb = old.not_before.unix_timestamp_nanos(),
                na = old.not_after.unix_timestamp_nanos(),
                na_s = old.not_after.unix_timestamp(),
                der = hex(&old.der),
            ),
        )
        .expect("old rows");

    let s = PgStorage::open(&url).expect("open migrates to the latest schema");
    assert_eq!(s.schema_version().expect("version"), schema::latest());
    let back = s
        .certificate(Hierarchy::Signing, &old.serial)
        .expect("read")
        .expect("kept");
    assert_eq!(back.partition, Some(Scope::Partition(7)));
    let mut listed = Vec::new();
    s.for_each_revoked(Hierarchy::Signing, 1, Scope::Partition(7), &mut |r| {
        listed.push(r.serial);
        Ok(())
    })
    .expect("list");
    assert_eq!(
        listed,
        vec![old.serial.clone()],
        "still on its old partition"
    );
    assert_eq!(
        s.crl_state(Hierarchy::Signing, 1, Scope::Partition(7))
            .expect("state"),
        Some(b"old".to_vec())
    );
    assert_eq!(
        s.crl_scopes().expect("scopes"),
        vec![(Hierarchy::Signing, 1, Scope::Partition(7))]
    );
    assert_eq!(s.check_consistency().expect("consistent"), 1);

    // A certificate on a municipal partition beside it.
    let tsukuba = ca::storage::conformance::place("Ibaraki-ken", "Tsukuba-shi");
    let new =
        ca::storage::conformance::municipal_cert(Hierarchy::Signing, &[0x66, 0x02], "R2", &tsukuba);
    s.transact(&|t| {
        t.add_certificate(&new, Some(&key_of(&new)))?;
        t.set_status(
            &new,
            &StatusRecord {
                state: ca::records::State::Revoked,
                reason: Some(Reason::AffiliationChanged),
                since: Some(at(20)),
                invalidity: None,
            },
        )
    })
    .expect("issue and revoke");
    let mut listed = Vec::new();
    s.for_each_revoked(Hierarchy::Signing, 1, tsukuba.clone(), &mut |r| {
        listed.push(r.serial);
        Ok(())
    })
    .expect("list");
    assert_eq!(listed, vec![new.serial.clone()]);
    assert_eq!(
        s.dirty_partitions().expect("dirty"),
        vec![
            (Hierarchy::Signing, 1, Scope::Partition(7)),
            (Hierarchy::Signing, 1, tsukuba)
        ]
    );
    assert_eq!(s.check_consistency().expect("consistent"), 2);
}

/// Residents written before migration 11 (no identity key) are given one when a CA node opens
/// the database, so the duplicate-person lookup finds them.
#[test]
fn residents_from_before_the_identity_index_are_indexed_at_open() {
    let Some((cluster, url)) = database() else {
        return;
    };
    let s = PgStorage::open(&url).expect("open");
    let r = ca::storage::conformance::sample_resident("R1");
    s.transact(&|t| t.put_resident(&r)).expect("write");
    drop(s);
    // As an older binary left it.
    cluster
        .sql(db_name(&url), "UPDATE residents SET identity = NULL")
        .expect("clear the key");
    let birth = r.attributes.birth();
    let s = PgStorage::open(&url).expect("reopen");
    let found = s
        .residents_by_identity(&r.attributes.name().replace(' ', "\u{3000}"), birth)
        .expect("lookup");
    assert_eq!(
        found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["R1"]
    );
}
