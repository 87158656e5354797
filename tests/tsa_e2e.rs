//! The time-stamping authority end to end: `jpki serve --tsa` asked by `openssl ts -query`
//! (over HTTP with curl) and its answer verified by `openssl ts -verify`; its TSA certificate
//! judged by the outside judges; a refused request answered with a named failure.

mod common;
use common::*;

use std::process::Command;

/// POSTs `query` (a DER TimeStampReq file) to `url`; the answer is written to `out`.
fn post(url: &str, query: &std::path::Path, out: &std::path::Path) {
    let st = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Content-Type: application/timestamp-query",
            "--data-binary",
        ])
        .arg(format!("@{}", p(query)))
        .arg("-o")
        .arg(out)
        .arg(url)
        .status()
        .unwrap();
    assert!(st.success(), "POST {url}");
}

#[test]
fn openssl_asks_our_tsa_and_verifies_the_answer() {
    let env = Env::init();
    let server = Server::start_with(&env, &["--tsa", "127.0.0.1:0"]);
    let url = server.tsa.clone().expect("the TSA address is printed");
    let doc = env.write("return.xml", "<申告書/>".as_bytes());
    let (q, r) = (env.path("q.tsq"), env.path("r.tsr"));
    openssl(&[
        "ts",
        "-query",
        "-data",
        &p(&doc),
        "-sha256",
        "-cert",
        "-out",
        &p(&q),
    ]);
    post(&url, &q, &r);
    let root = env.data().join("certs/tsa-root.pem");
    let out = openssl(&[
        "ts",
        "-verify",
        "-in",
        &p(&r),
        "-queryfile",
        &p(&q),
        "-CAfile",
        &p(&root),
    ]);
    assert!(out.contains("Verification: OK"), "{out}");
    // Also against the data, not only the query's imprint.
    let out = openssl(&[
        "ts",
        "-verify",
        "-in",
        &p(&r),
        "-data",
        &p(&doc),
        "-CAfile",
        &p(&root),
    ]);
    assert!(out.contains("Verification: OK"), "{out}");
    let text = openssl(&["ts", "-reply", "-in", &p(&r), "-text"]);
    for needle in [
        "Status: Granted.",
        "Policy OID: 1.3.6.1.5.5.7.13.8",
        "Accuracy: 0x01 seconds",
        "Nonce: 0x",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    // Serial numbers differ between two tokens.
    let r2 = env.path("r2.tsr");
    post(&url, &q, &r2);
    let serial = |f: &std::path::Path| {
        openssl(&["ts", "-reply", "-in", &p(f), "-text"])
            .lines()
            .find(|l| l.starts_with("Serial number:"))
            .unwrap()
            .to_owned()
    };
    assert_ne!(serial(&r), serial(&r2));
    // A token is on the audit trail before the answer leaves.
    let audit = env.ok(&["audit", "log", "--json"]);
    assert_eq!(audit.matches("\"timestamp\"").count(), 2, "{audit}");

    // Another document does not verify with this token.
    let other = env.write("other.xml", b"<other/>");
    let (ok, out) = openssl_result(&[
        "ts",
        "-verify",
        "-in",
        &p(&r),
        "-data",
        &p(&other),
        "-CAfile",
        &p(&root),
    ]);
    assert!(!ok, "{out}");

    // A SHA-1 imprint is refused, and the answer says why.
    let q1 = env.path("q1.tsq");
    openssl(&["ts", "-query", "-data", &p(&doc), "-sha1", "-out", &p(&q1)]);
    let r1 = env.path("r1.tsr");
    post(&url, &q1, &r1);
    let text = openssl(&["ts", "-reply", "-in", &p(&r1), "-text"]);
    assert!(text.contains("Status: Rejected"), "{text}");
    assert!(text.contains("only a SHA-256 hash is accepted"), "{text}");
    assert!(
        text.contains("unrecognized or unsupported algorithm"),
        "{text}"
    );

    // The TSA certificate: extKeyUsage timeStamping, critical; outside judges accept it.
    let tsa = env.data().join("certs/tsa.pem");
    let text = openssl(&["x509", "-in", &p(&tsa), "-noout", "-text"]);
    assert!(
        text.contains("X509v3 Extended Key Usage: critical\n                Time Stamping"),
        "{text}"
    );
    let judge = std::path::Path::new("/work/shared/judges/judge-cert");
    if judge.exists() {
        let out = Command::new(judge)
            .arg(&tsa)
            .arg("--issuer")
            .arg(&root)
            .arg("-q")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "judge-cert: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.stop();
}
