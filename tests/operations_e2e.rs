//! Operating a CA: `/readyz` and `/metrics` of a running server, `jpki store backup` under a
//! running server and `jpki store restore`, and `--read-only` on a write-protected copy.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{copy_dir, p, Env, Server};

/// `jpki ARGS --data DIR` (another data directory than the environment's).
fn at(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(args)
        .arg("--data")
        .arg(dir)
        .env("JPKI_PASSPHRASE", common::PASS)
        .env_remove("JPKI_DATA")
        .env_remove("JPKI_TEST_NOW")
        .env_remove("JPKI_TEST_START")
        .output()
        .unwrap()
}

/// GET `url`: (HTTP status, body).
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// A resident with an auth certificate (revoked) and a signing certificate (good).
fn populate(env: &Env) -> String {
    let id = env.add_resident("山田　花子", "1990-04-01");
    let (_, auth) = env.csr("auth", 2048);
    let (_, signing) = env.csr("signing", 2048);
    let a = env.issue(&id, "auth", &auth);
    env.issue(&id, "signing", &signing);
    env.ok(&[
        "revoke",
        "--serial",
        a["serial"].as_str().unwrap(),
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);
    id
}

fn chmod_r(path: &std::path::Path, writable: bool) {
    let st = Command::new("chmod")
        .arg("-R")
        .arg(if writable { "u+w" } else { "a-w" })
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn readyz_says_why_and_metrics_cover_crls_store_and_counts() {
    let env = Env::init();
    populate(&env);
    let server = Server::start(&env);

    let (code, body) = get(&format!("{}/healthz", server.base));
    assert_eq!(code, 200, "{body}");
    // The server listens before its first CRL pass; until that is over `/readyz` says so.
    let t0 = std::time::Instant::now();
    let (code, body) = loop {
        let (code, body) = get(&format!("{}/readyz", server.base));
        if code == 200 || t0.elapsed() > std::time::Duration::from_secs(60) {
            break (code, body);
        }
        assert!(
            body.contains("the first publication of every CRL since start is in progress"),
            "{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true, "{body}");
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["store", "signers", "crls"]);

    // A store directory that cannot be written: not ready, and the body says which check.
    let db = env.data().join("db");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o500)).unwrap();
    let (code, body) = get(&format!("{}/readyz", server.base));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(mode)).unwrap();
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    let store = &v["checks"][0];
    assert_eq!(store["check"], "store");
    assert_eq!(store["ok"], false);
    assert!(
        store["reason"].as_str().unwrap().contains("not writable"),
        "{body}"
    );
    assert_eq!(v["checks"][1]["ok"], true, "{body}");
    let (code, _) = get(&format!("{}/readyz", server.base));
    assert_eq!(code, 200);

    let (code, m) = get(&format!("{}/metrics", server.base));
    assert_eq!(code, 200);
    for needle in [
        "jpki_crl_age_seconds{hierarchy=\"auth\",partition=",
        "jpki_crl_number{hierarchy=\"signing\",partition=",
        "jpki_crl_entries{",
        "jpki_crl_seconds_to_next_update{",
        "jpki_store_commit_batches_total ",
        "jpki_store_commit_sync_seconds_total ",
        "jpki_store_journal_bytes ",
        "jpki_certificates_issued_total{hierarchy=\"auth\"} 1",
        "jpki_certificates_issued_total{hierarchy=\"signing\"} 1",
        "jpki_certificates_revoked_total{hierarchy=\"auth\",reason=\"keyCompromise\"} 1",
        "jpki_certificate_expiry_seconds{certificate=\"root\"",
        "# TYPE jpki_platform_calls_total counter",
    ] {
        assert!(m.contains(needle), "/metrics lacks {needle}:\n{m}");
    }
    // A revocation through the server shows in the next scrape.
    let id = env.add_resident("佐藤　一郎", "1985-01-01");
    let (_, csr) = env.csr("more", 2048);
    env.issue(&id, "auth", &csr);
    let (_, m) = get(&format!("{}/metrics", server.base));
    assert!(
        m.contains("jpki_certificates_issued_total{hierarchy=\"auth\"} 2"),
        "{m}"
    );
    server.stop();
}

#[test]
fn a_backup_taken_under_a_running_server_restores_and_verifies() {
    let env = Env::init();
    let id = populate(&env);
    let server = Server::start(&env);
    // More work through the server, then the backup through its admin socket.
    env.ok(&["resident", "card-lost", "--id", &id]);
    let backup = env.path("jpki.tar");
    let v = env.json(&["store", "backup", "--out", &p(&backup)]);
    assert!(v["files"].as_u64().unwrap() >= 5, "{v}");
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let certs = env.ok(&["cert", "list", "--json"]);
    let audit = env.ok(&["audit", "log", "--json"]);
    // Never over a file that exists.
    env.fails(&["store", "backup", "--out", &p(&backup)], "exists");
    // Never over a store, live or not.
    env.fails(&["store", "restore", &p(&backup)], "holds a store");
    server.stop();

    let restored = env.path("restored");
    let run = |args: &[&str]| at(&restored, args);
    let out = run(&["store", "restore", &p(&backup), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["certificates_checked"].as_u64(), Some(6), "{r}");
    let out = run(&["audit", "verify", "--json"]);
    assert!(out.status.success());
    let verified: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verified["intact"], true);
    let out = run(&["cert", "list", "--json"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), certs);
    let out = run(&["audit", "log", "--json"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), audit);

    // A damaged archive is refused and leaves nothing behind: one byte of a file's content
    // changed (the policy file's; a byte of tar padding would damage nothing).
    let mut bytes = std::fs::read(&backup).unwrap();
    let needle = b"organization";
    let at_byte = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the policy file is in the archive");
    bytes[at_byte] ^= 0x20;
    let damaged = env.write("damaged.tar", &bytes);
    let target = env.path("from-damaged");
    let out = at(&target, &["store", "restore", &p(&damaged)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!target.exists(), "a failed restore left {target:?}");
}

#[test]
fn read_only_inspects_a_write_protected_copy_and_refuses_writes() {
    let env = Env::init();
    let id = populate(&env);
    let certs = env.ok(&["cert", "list", "--json"]);
    let copy = env.path("copy");
    copy_dir(&env.data(), &copy);
    for lock in ["db/lock", "store.lock"] {
        let _ = std::fs::remove_file(copy.join(lock));
    }
    chmod_r(&copy, false);
    let ro = |args: &[&str]| {
        let mut a = args.to_vec();
        a.push("--read-only");
        at(&copy, &a)
    };
    let out = ro(&["cert", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), certs);
    assert!(ro(&["audit", "verify"]).status.success());
    assert!(ro(&["resident", "show", "--id", &id]).status.success());
    for write in [
        vec!["resident", "card-found", "--id", id.as_str()],
        vec!["store", "compact"],
        vec!["crl", "publish", "--out", "/tmp/never"],
        vec!["serve", "--http", "127.0.0.1:0"],
    ] {
        let out = ro(&write);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{write:?} succeeded read-only");
        assert!(err.contains("read-only"), "{write:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    assert!(!copy.join("db/lock").exists(), "a lock file was created");
    assert!(!copy.join("store.lock").exists());
    chmod_r(&copy, true);
    // Nothing changed: the copy opens normally and shows the same.
    let out = at(&copy, &["cert", "list", "--json"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), certs);
}

#[test]
fn reports_count_per_municipality_and_period() {
    let env = Env::init();
    populate(&env); // Chiyoda-ku: auth + signing issued, auth revoked (keyCompromise)
    let other = env.json(&[
        "resident",
        "add",
        "--name",
        "鈴木　次郎",
        "--birth",
        "1970-05-05",
        "--sex",
        "1",
        "--address",
        "大阪府大阪市北区１",
        "--prefecture",
        "Osaka",
        "--municipality",
        "Kita-ku",
        "--card-expiry",
        "2030-01-01",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, csr) = env.csr("other", 2048);
    env.issue(&other, "auth", &csr);
    env.ok(&["resident", "card-lost", "--id", &other]);
    let all = [
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
    ];
    let report = |kind: &str, extra: &[&str]| {
        let mut a = vec!["report", kind];
        a.extend_from_slice(&all);
        a.extend_from_slice(extra);
        env.json(&a)
    };
    let issued = report("issuance", &[]);
    assert_eq!(issued["total"], 3, "{issued}");
    assert_eq!(issued["from"], "2000-01-01T00:00:00Z");
    let rows = issued["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{issued}");
    let chiyoda = report("issuance", &["--municipality", "Chiyoda-ku"]);
    assert_eq!(chiyoda["total"], 2, "{chiyoda}");
    let revoked = report("revocations", &[]);
    let reasons: Vec<(String, String)> = revoked["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["municipality"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("Kita-ku".to_owned(), "certificateHold".to_owned()),
            ("Chiyoda-ku".to_owned(), "keyCompromise".to_owned())
        ],
        "{revoked}"
    );
    // Before anything happened: nothing.
    let none = env.json(&[
        "report",
        "issuance",
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2001-01-01T00:00:00Z",
    ]);
    assert_eq!(none["total"], 0);
    // The good signing certificate of Chiyoda-ku expires within the next 10 years; the
    // revoked and held ones are not listed.
    let expiring = report("expiring", &[]);
    assert_eq!(expiring["total"], 1, "{expiring}");
    assert_eq!(expiring["rows"][0]["hierarchy"], "signing");
    // CSV with a header.
    let mut a = vec!["report", "issuance"];
    a.extend_from_slice(&all);
    a.push("--csv");
    let csv = env.ok(&a);
    assert!(
        csv.starts_with("prefecture,municipality,hierarchy,count\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4, "{csv}");
    env.fails(
        &[
            "report",
            "issuance",
            "--from",
            "2030-01-01T00:00:00Z",
            "--to",
            "2020-01-01T00:00:00Z",
        ],
        "the period is empty",
    );
}

#[test]
fn crl_status_shows_dirty_partitions_exports_and_works_through_a_server() {
    let env = Env::init();
    populate(&env); // an auth certificate revoked with no server running
    let v = env.json(&["crl", "status"]);
    assert_eq!(v["server"], false);
    let dirty: Vec<&serde_json::Value> = v["crls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dirty"] == true)
        .collect();
    // The revoked certificate's partition (and the new partitions' first CRLs) wait.
    assert!(
        dirty.iter().any(|r| r["hierarchy"] == "auth"
            && r["partition"] == "Tokyo/Chiyoda-ku"
            && r["url"]
                .as_str()
                .unwrap()
                .ends_with("/crl/auth/Tokyo/Chiyoda-ku.crl")),
        "{v}"
    );
    assert_eq!(v["dirty"].as_u64().unwrap() as usize, dirty.len());
    assert!(v["last_export"].is_null());
    let human = env.ok(&["crl", "status"]);
    assert!(
        human.contains(&format!("{} waiting to be published", dirty.len())),
        "{human}"
    );
    assert!(human.contains("never exported"), "{human}");

    let out = env.path("exported");
    env.ok(&["crl", "publish", "--out", &p(&out)]);
    let after = env.json(&["crl", "status"]);
    assert_eq!(
        after["last_export"]["dir"].as_str().unwrap(),
        p(&out.canonicalize().unwrap())
    );
    assert_eq!(
        after["last_export"]["crls"],
        v["crls"].as_array().unwrap().len()
    );
    // An export is a copy: the served CRLs still wait for the server.
    assert_eq!(after["dirty"], v["dirty"], "{after}");

    // While a server holds the store, its publisher answers through the admin socket.
    let server = Server::start(&env);
    let v = env.json(&["crl", "status"]);
    assert_eq!(v["server"], true, "{v}");
    // The server published what was waiting before it started listening.
    assert_eq!(v["dirty"], 0, "{v}");
    for r in v["crls"].as_array().unwrap() {
        assert!(r["number"].as_u64().is_some(), "{v}");
        assert!(
            std::path::Path::new(r["file"].as_str().unwrap()).exists(),
            "{v}"
        );
    }
    assert_eq!(
        v["last_export"]["dir"].as_str().unwrap(),
        p(&out.canonicalize().unwrap())
    );
    let human = env.ok(&["crl", "status"]);
    assert!(
        human.contains("served by the running jpki serve"),
        "{human}"
    );
    server.stop();
}

#[test]
fn certificates_come_out_as_der_too() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1990-04-01");
    let (_, csr) = env.csr("auth", 2048);
    let der = env.path("auth.der");
    let v = env.json(&[
        "issue",
        "--resident",
        &id,
        "--kind",
        "auth",
        "--csr",
        &p(&csr),
        "--out",
        &p(&der),
        "--der",
    ]);
    let serial = common::openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        &p(&der),
        "-noout",
        "-serial",
    ]);
    assert!(
        serial.trim().ends_with(v["serial"].as_str().unwrap()),
        "{serial} vs {v}"
    );
    let root = env.path("root.der");
    env.ok(&["root", "--hierarchy", "auth", "--out", &p(&root), "--der"]);
    common::openssl(&["x509", "-inform", "DER", "-in", &p(&root), "-noout"]);
    let shown = env.path("shown.der");
    env.ok(&[
        "cert",
        "show",
        "--serial",
        v["serial"].as_str().unwrap(),
        "--hierarchy",
        "auth",
        "--out",
        &p(&shown),
        "--der",
    ]);
    assert_eq!(std::fs::read(&shown).unwrap(), std::fs::read(&der).unwrap());
    // --der without --out is refused by the parser, on one line.
    env.fails(&["root", "--hierarchy", "auth", "--der"], "--out");
}
