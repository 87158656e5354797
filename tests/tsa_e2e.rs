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

/// Issue #18: the TSA unit renews itself. Years later (the clock moved into the policy's
/// `tsa.renew_days_before` of the unit certificate's end), `jpki serve --tsa` makes a new
/// unit (new key, certificate "TSA 2" from the same TSA root) before it answers, signs with
/// it, deletes the retired key, and records `tsa-renew`; a token of the old unit still
/// verifies with `openssl ts -verify`. `jpki tsa renew --if-due` then has nothing to do and
/// `jpki tsa renew` makes generation 3 by hand.
#[test]
fn the_tsa_unit_renews_itself_and_old_tokens_still_verify() {
    let mut env = Env::init();
    let doc = env.write("return.xml", "<申告書/>".as_bytes());
    let q = env.path("q.tsq");
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
    let root = env.data().join("certs/tsa-root.pem");

    // Today: generation 1 answers.
    let server = Server::start_with(&env, &["--tsa", "127.0.0.1:0"]);
    let old = env.path("old.tsr");
    post(server.tsa.as_deref().unwrap(), &q, &old);
    server.stop();
    let shown = env.json(&["tsa", "show"]);
    assert_eq!(shown["renewal_due"], false, "{shown}");
    assert!(
        shown["subject"].as_str().unwrap().ends_with("TSA 1"),
        "{shown}"
    );
    let first_serial = shown["serial"].as_str().unwrap().to_owned();

    // 4 years and 8 months on: within 180 days of the 5-year certificate's end.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(1700);
    let later_s = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    env.now = Some(later_s);
    let shown = env.json(&["tsa", "show"]);
    assert_eq!(shown["renewal_due"], true, "{shown}");
    let server = Server::start_with(&env, &["--tsa", "127.0.0.1:0"]);
    let new = env.path("new.tsr");
    post(server.tsa.as_deref().unwrap(), &q, &new);
    server.stop();
    let text = openssl(&["ts", "-reply", "-in", &p(&new), "-token_out", "-text"]);
    assert!(text.contains("TSA 2") || !text.contains("TSA 1"), "{text}");
    let attime = later.unix_timestamp().to_string();
    let out = openssl(&[
        "ts",
        "-verify",
        "-in",
        &p(&new),
        "-data",
        &p(&doc),
        "-CAfile",
        &p(&root),
        "-attime",
        &attime,
    ]);
    assert!(out.contains("Verification: OK"), "{out}");
    let cert2 = env.data().join("certs/tsa-2.pem");
    let subject = openssl(&["x509", "-in", &p(&cert2), "-noout", "-subject"]);
    assert!(subject.contains("TSA 2"), "{subject}");
    assert!(
        !env.data().join("keys/tsa.key").exists(),
        "the retired key is deleted"
    );
    assert!(env.data().join("keys/tsa-2.key").exists());
    let audit = env.ok(&["audit", "log", "--json"]);
    assert!(
        audit.contains("tsa-renew") && audit.contains(&first_serial),
        "{audit}"
    );
    // The old unit's token: still verifiable today, against the same root.
    let out = openssl(&[
        "ts",
        "-verify",
        "-in",
        &p(&old),
        "-data",
        &p(&doc),
        "-CAfile",
        &p(&root),
    ]);
    assert!(out.contains("Verification: OK"), "{out}");

    // By hand: nothing due right after a renewal; forced, generation 3.
    let v = env.json(&["tsa", "renew", "--if-due"]);
    assert_eq!(v["renewed"], false, "{v}");
    let v = env.json(&["tsa", "renew"]);
    assert_eq!(
        (v["renewed"].as_bool(), v["generation"].as_u64()),
        (Some(true), Some(3)),
        "{v}"
    );
    assert!(!env.data().join("keys/tsa-2.key").exists());
    let shown = env.json(&["tsa", "show"]);
    assert!(
        shown["subject"].as_str().unwrap().ends_with("TSA 3"),
        "{shown}"
    );
    // A renewed unit's certificate is judged like the first, where the judges are installed
    // (made at today's clock, since the judges check validity now).
    env.now = None;
    env.ok(&["tsa", "renew"]);
    let cert4 = env.data().join("certs/tsa-4.pem");
    let judge = std::path::Path::new("/work/shared/judges/judge-cert");
    if judge.exists() {
        let out = Command::new(judge)
            .arg(&cert4)
            .arg("--issuer")
            .arg(&root)
            .arg("-q")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "judge-cert on a renewed unit: {text}");
    }
}
