//! The PostgreSQL engine end to end, with the real binary: `jpki init --store postgres://…`,
//! issue, revoke (with no server, then through `jpki serve`'s admin socket), OCSP answers
//! `revoked` (checked by `openssl ocsp`), `jpki audit verify`; and `jpki store migrate`
//! copying a sled store into PostgreSQL, after which the same data answers the same. One
//! throwaway cluster for this test binary (`storage_postgres::testing`); skipped, loudly,
//! where the PostgreSQL binaries are missing.

mod common;
use common::*;

use storage_postgres::testing;

fn ocsp(root: &str, cert: &str, url: &str) -> String {
    let (_, out) = openssl_result(&[
        "ocsp", "-issuer", root, "-cert", cert, "-url", url, "-CAfile", root, "-timeout", "10",
    ]);
    out
}

fn database() -> Option<String> {
    let cluster = testing::shared()?;
    Some(cluster.database().expect("create a test database"))
}

#[test]
fn init_issue_revoke_serve_and_verify_on_postgres() {
    let Some(url) = database() else {
        return;
    };
    let env = Env::empty();
    env.ok(&["init", "--store", &url]);
    let store_toml = env.data().join("store.toml");
    let text = std::fs::read_to_string(&store_toml).unwrap();
    assert!(text.contains("[store]") && text.contains(&url), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&store_toml).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !env.data().join("db").exists(),
        "no sled store is made beside PostgreSQL"
    );

    let id = env.add_resident("郵便　花子", "1984-05-06");
    let (_k1, c1) = env.csr("a", 2048);
    let (_k2, c2) = env.csr("b", 2048);
    let a = env.issue(&id, "auth", &c1);
    let s = env.issue(&id, "signing", &c2);
    let a_serial = a["serial"].as_str().unwrap().to_owned();
    let s_serial = s["serial"].as_str().unwrap().to_owned();
    // Revoked with no server running: straight on the database.
    env.ok(&[
        "revoke",
        "--serial",
        &a_serial,
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);
    let shown = env.json(&["cert", "show", "--serial", &a_serial, "--hierarchy", "auth"]);
    assert_eq!(shown["status"], "revoked", "{shown}");
    assert_eq!(shown["history"][0]["status"]["state"], "revoked", "{shown}");
    // The checkpoint still proves the copied chain.
    env.ok(&["audit", "verify", "--checkpoints"]);

    let apem = env.write("a.pem", a["pem"].as_str().unwrap().as_bytes());
    let spem = env.write("s.pem", s["pem"].as_str().unwrap().as_bytes());
    let aroot = env.write(
        "aroot.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    let sroot = env.write(
        "sroot.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );

    let server = Server::start(&env);
    let ocsp_url = format!("{}/ocsp", server.base);
    let out = ocsp(&p(&aroot), &p(&apem), &ocsp_url);
    assert!(
        out.contains("Response verify OK")
            && out.contains(": revoked")
            && out.contains("keyCompromise"),
        "{out}"
    );
    let out = ocsp(&p(&sroot), &p(&spem), &ocsp_url);
    assert!(out.contains(": good"), "{out}");
    // While the server runs, the CLI goes through its admin socket (the data directory's
    // lock is held by the server), and the answer changes at once.
    env.ok(&[
        "revoke",
        "--serial",
        &s_serial,
        "--hierarchy",
        "signing",
        "--reason",
        "affiliationChanged",
    ]);
    let out = ocsp(&p(&sroot), &p(&spem), &ocsp_url);
    assert!(
        out.contains(": revoked") && out.contains("affiliationChanged"),
        "{out}"
    );
    let through_server = env.json(&["audit", "verify"]);
    assert!(
        through_server["records"].as_u64().unwrap_or(0) >= 7,
        "{through_server}"
    );
    assert!(server.stop().success());

    // Without the server: the chain verifies on the database itself.
    assert_eq!(env.json(&["audit", "verify"]), through_server);

    // A second init on the same database is refused and leaves it alone.
    let other = Env::empty();
    other.fails(&["init", "--store", &url], "already holds an authority");
    assert!(!other.data().exists());
}

#[test]
fn a_sled_store_migrates_to_postgres_and_verifies() {
    let Some(url) = database() else {
        return;
    };
    let env = Env::init();
    let id = env.add_resident("移行　次郎", "1970-01-02");
    let (_k1, c1) = env.csr("a", 2048);
    let (_k2, c2) = env.csr("b", 2048);
    let a = env.issue(&id, "auth", &c1);
    let a_serial = a["serial"].as_str().unwrap().to_owned();
    env.issue(&id, "signing", &c2);
    // Held, then revoked: two entries of the revocation log for one revoked certificate.
    env.ok(&["hold", "--serial", &a_serial, "--hierarchy", "auth"]);
    env.ok(&[
        "revoke",
        "--serial",
        &a_serial,
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);
    env.ok(&[
        "resident",
        "move",
        "--id",
        &id,
        "--address",
        "大阪府大阪市北区",
    ]);
    // A signed checkpoint of the audit chain, copied with it.
    env.ok(&["audit", "checkpoint"]);
    let before_verify = env.json(&["audit", "verify"]);
    let before_certs = env.json(&["cert", "list"]);
    let before_resident = env.json(&["resident", "show", "--id", &id]);
    let before_officers = env.json(&["officer", "list"]);
    // The revocation log edges follow, and a CA node's CRL lease (written straight into the
    // sled store: a one-process server takes none).
    let (h, scope) = (policies::Hierarchy::Signing, policies::profile::Scope::Ca);
    let lease = ca::storage::CrlLease {
        holder: "ca-1".into(),
        until: time::macros::datetime!(2030-01-02 03:04:05.123456789 UTC),
    };
    let before_log = {
        use ca::storage::Storage;
        let sled = ca::storage::sled::SledStorage::open(&env.data().join("db")).unwrap();
        sled.transact(&|t| t.put_crl_lease(h, 1, scope.clone(), &lease))
            .unwrap();
        let log = sled.revocations_since(0, 1000).unwrap();
        assert_eq!(sled.revocation_log_head().unwrap(), log.last().unwrap().seq);
        log
    };
    assert!(
        before_log.len() >= 3,
        "hold, revoke, the move's: {before_log:?}"
    );

    let out = env.json(&["store", "migrate", "--to", &url]);
    assert_eq!(out["revocation_log"], before_log.len(), "{out}");
    assert_eq!(out["crl_leases"], 1, "{out}");
    {
        use ca::storage::Storage;
        let pg = storage_postgres::PgStorage::open_follower(&url).unwrap();
        assert_eq!(
            pg.revocations_since(0, 1000).unwrap(),
            before_log,
            "the revocation log, sequence numbers and entries"
        );
        assert_eq!(
            pg.revocation_log_head().unwrap(),
            before_log.last().unwrap().seq
        );
        assert_eq!(
            pg.crl_lease(h, 1, scope.clone()).unwrap(),
            Some(lease.clone())
        );
    }
    assert_eq!(out["officers"], 1, "the first ca-officer: {out}");
    // Both roots and OCSP signers, and the two issued.
    assert!(out["certificates"].as_u64().unwrap() >= 6, "{out}");
    assert!(out["audit_records"].as_u64().unwrap() >= 5, "{out}");
    assert_eq!(out["checkpoints"], 1, "{out}");
    assert!(
        out["status_changes"].as_u64().unwrap() >= 1,
        "the move's revocation: {out}"
    );
    assert!(env.data().join("store.toml").exists());

    // The directory now reads PostgreSQL, and it says what sled said.
    assert_eq!(env.json(&["audit", "verify"]), before_verify);
    assert_eq!(env.json(&["cert", "list"]), before_certs);
    assert_eq!(env.json(&["officer", "list"]), before_officers);
    assert_eq!(
        env.json(&["resident", "show", "--id", &id]),
        before_resident
    );
    let shown = env.json(&["cert", "show", "--serial", &a_serial, "--hierarchy", "auth"]);
    assert_eq!(shown["status"], "revoked", "{shown}");
    // And it goes on: a new issuance follows the copied chain and serial counters.
    let (_k3, c3) = env.csr("c", 2048);
    env.issue(&id, "auth", &c3);
    let after = env.json(&["audit", "verify"]);
    assert!(
        after["records"].as_u64() > before_verify["records"].as_u64(),
        "{after}"
    );
    // Migrating again is refused.
    env.fails(
        &["store", "migrate", "--to", &url],
        "already uses PostgreSQL",
    );
}
