//! National scale, small: `jpki bench populate` builds a benchmark store (300 certificates,
//! 10 % of residents reported dead) through the real write path and resumes after an
//! interruption; it refuses a store it did not make. `jpki serve` on it pre-signs every
//! certificate's OCSP answer into the durable answer store; after a restart the answers are
//! served from disk without one signature (counted by `/metrics`), revoked certificates
//! answered revoked, and a revocation replaces its stored answer before it is acknowledged.

mod common;
use common::*;

use std::time::{Duration, Instant};

/// `openssl ocsp` without a nonce (RFC 5019: what may be answered ahead of time).
fn ocsp(root: &str, serial: &str, url: &str) -> String {
    let (_, out) = openssl_result(&[
        "ocsp",
        "-no_nonce",
        "-issuer",
        root,
        "-serial",
        &format!("0x{serial}"),
        "-url",
        url,
        "-CAfile",
        root,
        "-timeout",
        "10",
    ]);
    out
}

/// Every certificate of a kind: (serial, status).
fn certs(env: &Env, kind: &str) -> Vec<(String, String)> {
    let v = env.json(&["cert", "list", "--kind", kind, "--limit", "10000"]);
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["serial"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const POPULATE: &[&str] = &[
    "bench",
    "populate",
    "--certificates",
    "300",
    "--revoked-fraction",
    "0.1",
    "--municipalities",
    "5",
    "--threads",
    "2",
    "--batch",
    "16",
    "--key-pool",
    "3",
];

#[test]
fn a_bench_store_resumes_and_serves_presigned_answers_after_a_restart() {
    let env = Env::empty();

    // Interrupted after about 100 certificates, then resumed to the full 300.
    let mut first = POPULATE.to_vec();
    first.extend(["--stop-after", "100"]);
    let out = env.ok(&first);
    assert!(out.contains("pool of 3 pre-generated"), "{out}");
    assert!(out.contains("stopped after"), "{out}");
    let part = certs(&env, "auth").len() + certs(&env, "signing").len();
    assert!((100..300).contains(&part), "{part} after the interruption");
    // Resuming with other parameters is refused.
    let mut other = POPULATE.to_vec();
    other[3] = "400";
    env.fails(&other, "resume it with the same");
    let out = env.ok(POPULATE);
    assert!(out.contains("store now holds 300 certificates"), "{out}");
    let (auth, signing) = (certs(&env, "auth"), certs(&env, "signing"));
    assert_eq!((auth.len(), signing.len()), (150, 150));
    // Run again: nothing left to do.
    let out = env.ok(POPULATE);
    assert!(out.contains("populated: 0 certificates issued"), "{out}");
    let revoked = auth.iter().filter(|(_, s)| s == "revoked").count();
    assert!(
        (5..=30).contains(&revoked),
        "{revoked} of 150 residents dead"
    );
    assert_eq!(
        signing.iter().filter(|(_, s)| s == "revoked").count(),
        revoked
    );
    // The audit chain is whole (streamed page by page).
    env.ok(&["audit", "verify"]);

    // `bench export` (read-only, one pass) writes the same serials and, for the peer
    // `openssl ocsp -index`, an index whose revoked lines are the revoked certificates.
    let out_dir = env.path("export");
    std::fs::create_dir(&out_dir).unwrap();
    let out = env.ok(&["bench", "export", "--out", &p(&out_dir)]);
    assert!(out.contains("exported 150 authentication"), "{out}");
    let lines = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(out_dir.join(name))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    let sorted = |v: &[(String, String)]| {
        let mut s: Vec<String> = v.iter().map(|(serial, _)| serial.clone()).collect();
        s.sort();
        s
    };
    assert_eq!(lines("auth.serials"), sorted(&auth));
    assert_eq!(lines("signing.serials"), sorted(&signing));
    let mut index_revoked: Vec<String> = lines("index.txt")
        .iter()
        .filter(|l| l.starts_with("R\t"))
        .map(|l| l.split('\t').nth(3).unwrap().to_owned())
        .collect();
    index_revoked.sort();
    let mut revoked_auth: Vec<String> = auth
        .iter()
        .filter(|(_, s)| s == "revoked")
        .map(|(serial, _)| serial.clone())
        .collect();
    revoked_auth.sort();
    assert_eq!(index_revoked, revoked_auth);
    env.fails(
        &["bench", "export", "--out", &p(&out_dir.join("none"))],
        "not a directory",
    );

    let root = env.write(
        "aroot.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    let good = &auth.iter().find(|(_, s)| s == "good").unwrap().0;
    let dead = &auth.iter().find(|(_, s)| s == "revoked").unwrap().0;

    // First start: the pre-signer signs the 300 SHA-1 answers ahead of any question.
    let server = Server::start(&env);
    let t0 = Instant::now();
    while metric(&server, "ocsp_presigned_total") < 300 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "pre-signing stalled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop();

    // After a restart: answered from disk, no signature made.
    let server = Server::start(&env);
    let url = format!("{}/ocsp", server.base);
    let out = ocsp(&p(&root), good, &url);
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    let out = ocsp(&p(&root), dead, &url);
    assert!(
        out.contains("Response verify OK") && out.contains(": revoked"),
        "{out}"
    );
    // A serial whose top bit is set (CertID `00 80`, stored as `80`) is found too.
    let high = &auth.iter().find(|(s, _)| s == "80").unwrap().1;
    let out = ocsp(&p(&root), "80", &url);
    assert!(
        out.contains("Response verify OK") && out.contains(&format!(": {high}")),
        "{out}"
    );
    assert!(metric(&server, "ocsp_stored_hits_total") >= 3);
    assert_eq!(metric(&server, "ocsp_signatures_total"), 0);

    // A revocation replaces the stored answer before `jpki revoke` returns.
    env.ok(&[
        "revoke",
        "--serial",
        good,
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);
    let out = ocsp(&p(&root), good, &url);
    assert!(
        out.contains(": revoked") && out.contains("keyCompromise"),
        "{out}"
    );
    server.stop();
    // And after another restart, still revoked, still without signing.
    let server = Server::start(&env);
    let out = ocsp(&p(&root), good, &format!("{}/ocsp", server.base));
    assert!(out.contains(": revoked"), "{out}");
    assert_eq!(metric(&server, "ocsp_signatures_total"), 0);
    // An unknown serial is still answered live, and so is a request with a nonce.
    let out = ocsp(&p(&root), "7FFFFFFF01", &format!("{}/ocsp", server.base));
    assert!(out.contains(": unknown"), "{out}");
    assert_eq!(metric(&server, "ocsp_signatures_total"), 1);
    let (_, out) = openssl_result(&[
        "ocsp",
        "-issuer",
        &p(&root),
        "-serial",
        &format!("0x{dead}"),
        "-url",
        &format!("{}/ocsp", server.base),
        "-CAfile",
        &p(&root),
    ]);
    assert!(
        out.contains(": revoked") && out.contains("Response verify OK"),
        "{out}"
    );
    assert_eq!(metric(&server, "ocsp_signatures_total"), 2);
}

#[test]
fn populate_refuses_a_store_it_did_not_make() {
    let env = Env::init();
    let before = env.ok(&["cert", "list", "--json"]);
    env.fails(POPULATE, "not a benchmark store");
    assert_eq!(env.ok(&["cert", "list", "--json"]), before);
    // And bad parameters are refused before anything is made.
    let empty = Env::empty();
    let mut bad = POPULATE.to_vec();
    bad[5] = "1.5";
    empty.fails(&bad, "--revoked-fraction must be 0 to 1");
    assert!(!empty.data().exists());
}
