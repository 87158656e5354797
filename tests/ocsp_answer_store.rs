//! The pre-signed OCSP answer store is authoritative (#14): stored answers are served without
//! reading the certificate's status, so a status change must never be left behind in it. The
//! window: a revocation committed to the store, then the server SIGKILLed before it rewrote the
//! answer. Simulated here by killing `jpki serve` with SIGKILL and revoking through `jpki
//! revoke` with no server running (the store's own write path, no responder to tell): the
//! pre-signed answer on disk still says good. When `jpki serve` starts again it catches the
//! answer store up from the store's revocation log before it listens, so its very first answer
//! says revoked.

mod common;
use common::*;

use std::time::{Duration, Instant};

fn ocsp(root: &str, cert: &str, url: &str) -> String {
    let (_, out) = openssl_result(&[
        "ocsp",
        "-no_nonce",
        "-issuer",
        root,
        "-cert",
        cert,
        "-url",
        url,
        "-CAfile",
        root,
        "-timeout",
        "10",
    ]);
    out
}

#[test]
fn a_revocation_committed_while_no_responder_ran_is_answered_revoked_after_a_restart() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k, csr) = env.csr("a", 2048);
    let a = env.issue(&id, "auth", &csr);
    let serial = a["serial"].as_str().unwrap().to_owned();
    let pem = p(&env.write("a.pem", a["pem"].as_str().unwrap().as_bytes()));
    let root = p(&env.write(
        "aroot.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    ));

    // The pre-signer signs the certificate's answer ahead and keeps it on disk.
    let server = Server::start(&env);
    let t0 = Instant::now();
    while metric(&server, "ocsp_presigned_total") < 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "pre-signing stalled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("{}/ocsp", server.base);
    let hits = metric(&server, "ocsp_stored_hits_total");
    let out = ocsp(&root, &pem, &url);
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    // That answer came from the store, kept without the signer's certificate and spliced
    // back on read: openssl verified it with the certificate it carries.
    assert_eq!(metric(&server, "ocsp_stored_hits_total"), hits + 1);
    // Killed, not stopped: nothing more is written.
    let mut server = server;
    unsafe_kill(server.child.id(), "KILL");
    server.child.wait().unwrap();
    drop(server);

    // Revoked with no responder running: the store commits it (and logs it); the stored
    // answer still says good.
    env.ok(&[
        "revoke",
        "--serial",
        &serial,
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);

    let server = Server::start(&env);
    let url = format!("{}/ocsp", server.base);
    let out = ocsp(&root, &pem, &url);
    assert!(
        out.contains("Response verify OK") && out.contains(": revoked"),
        "the first answer after the restart: {out}"
    );
    assert!(out.contains("keyCompromise"), "{out}");
    // The stale answer was removed at start-up, so the revoked answer was signed after the
    // restart — live by that first query, or by the pre-signer's first pass if it got there
    // first (the two race; either signs once, both at most twice) — and stored: the next
    // query is not signed again.
    let signed = metric(&server, "ocsp_signatures_total");
    assert!(
        (1..=2).contains(&signed),
        "signatures after the restart: {signed}"
    );
    let out = ocsp(&root, &pem, &url);
    assert!(out.contains(": revoked"), "{out}");
    assert_eq!(metric(&server, "ocsp_signatures_total"), signed);
}

#[test]
fn bad_ocsp_settings_are_refused_by_name_before_anything_is_made() {
    let env = Env::init();
    for (text, field) in [
        // Gone with the redb store (the slot file reads through the OS page cache): refused
        // by name, not silently ignored.
        ("[ocsp]\nanswer_cache_mib = 64\n", "answer_cache_mib"),
        ("[ocsp]\nmemory_answers = 0\n", "ocsp.memory_answers"),
        (
            "[ocsp]\npresign_per_second = 0\n",
            "ocsp.presign_per_second",
        ),
        ("[ocsp]\nanswer_cache = 64\n", "answer_cache"),
    ] {
        let cfg = env.write("bad.toml", text.as_bytes());
        env.fails(
            &["serve", "--http", "127.0.0.1:0", "--config", &p(&cfg)],
            field,
        );
    }
    assert!(!env.data().join("ocsp-answers").exists());
}

/// `jpki_certificates_issued_total{hierarchy="H"}` on /metrics (0 when absent).
fn issued_metric(server: &Server, h: &str) -> u64 {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("{}/metrics", server.base)])
        .output()
        .unwrap();
    let line = format!("jpki_certificates_issued_total{{hierarchy=\"{h}\"}} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&line).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(120), "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pre-signer follows the store's issuance log (#14): a certificate issued while the
/// server runs, and one issued while it is down, get their answers pre-signed without being
/// asked for, and a restart does not walk every certificate again (it resumes from the
/// cursor kept beside the answers, 0600); the metrics' audit tally is kept too (0600) and the
/// counters go on from it.
#[test]
fn certificates_issued_while_serving_or_down_are_presigned_from_the_issuance_log() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let cursor = env.data().join("ocsp-answers").join("presign-cursor");
    let tally = env.data().join("serve-metrics-tally.json");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let server = Server::start(&env);
    wait_for("the first start's walk", || {
        metric(&server, "ocsp_presign_walks_total") == 1
    });
    let (_k, csr) = env.csr("a", 2048);
    env.issue(&id, "auth", &csr);
    wait_for("the answer of the certificate issued while serving", || {
        metric(&server, "ocsp_presigned_total") == 1
    });
    wait_for("the cursor kept", || {
        std::fs::read_to_string(&cursor).is_ok_and(|c| c.trim_end().ends_with(" 1"))
    });
    assert_eq!(mode(&cursor), 0o600);
    wait_for("the issuance counted", || {
        issued_metric(&server, "auth") == 1
    });
    assert_eq!(metric(&server, "ocsp_presign_walks_total"), 1);
    assert!(server.stop().success());
    assert_eq!(mode(&tally), 0o600);

    let (_k, csr) = env.csr("b", 2048);
    let b = env.issue(&id, "signing", &csr);
    let server = Server::start(&env);
    wait_for("the answer of the certificate issued while down", || {
        metric(&server, "ocsp_presigned_total") == 1
    });
    assert_eq!(
        metric(&server, "ocsp_presign_walks_total"),
        0,
        "a restart resumes from the cursor: no walk"
    );
    wait_for("the counters resumed and caught up", || {
        issued_metric(&server, "auth") == 1 && issued_metric(&server, "signing") == 1
    });
    // The pre-signed answer is served from the store, without a signature.
    let pem = p(&env.write("b.pem", b["pem"].as_str().unwrap().as_bytes()));
    let root = p(&env.write(
        "sroot.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    ));
    let signed = metric(&server, "ocsp_signatures_total");
    let out = ocsp(&root, &pem, &format!("{}/ocsp", server.base));
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    assert_eq!(metric(&server, "ocsp_signatures_total"), signed);
    assert!(server.stop().success());
}
