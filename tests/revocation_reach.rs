//! Revocations reach the CRLs and OCSP through the store, whoever makes them and whenever:
//! a revocation made with no server running is published when `jpki serve` starts (its CRL
//! partition was marked dirty by the revocation's own transaction), and a scheduled
//! emigration that falls due while `jpki serve` runs is revoked as of its due time, on the
//! server's timer, with no restart.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

/// Fetches a CRL (DER) and returns `openssl crl -text` of it.
fn crl_text(env: &Env, url: &str) -> String {
    let der = env.path("fetched.crl");
    let st = Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&der)
        .arg(url)
        .status()
        .unwrap();
    assert!(st.success(), "GET {url}");
    openssl(&["crl", "-inform", "DER", "-in", &p(&der), "-noout", "-text"])
}

#[test]
fn a_revocation_made_with_no_server_is_published_when_serve_starts() {
    let env = Env::init();
    let id = env.add_resident("無停止　太郎", "1980-02-03");
    let (_k, csr) = env.csr("a", 2048);
    let cert = env.issue(&id, "auth", &csr);
    let serial = cert["serial"].as_str().unwrap().to_owned();
    let url = |server: &Server| {
        format!(
            "{}/crl/auth/{}.crl",
            server.base,
            common::partition_path(&cert["partition"])
        )
    };

    // The partition's CRL is published once, empty, and the server stops.
    let server = Server::start(&env);
    let text = crl_text(&env, &url(&server));
    assert!(
        !text.contains(&format!("Serial Number: {serial}")),
        "{text}"
    );
    assert!(server.stop().success());

    // Revoked straight on the store: no server, no listener.
    env.ok(&["revoke", "--serial", &serial, "--reason", "keyCompromise"]);

    // Started again with a short dirty bound, the partition lists the revocation within it.
    let cfg = env.write(
        "serve.toml",
        b"[crl]\ndir = \"crl\"\ndirty_bound_seconds = 5\nbatch_delay_seconds = 1\nresign_margin_hours = 6\n",
    );
    let server = Server::start_with(&env, &["--config", &p(&cfg)]);
    let t0 = Instant::now();
    loop {
        let text = crl_text(&env, &url(&server));
        if text.contains(&format!("Serial Number: {serial}")) {
            assert!(text.contains("Key Compromise"), "{text}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5 + 2),
            "the CRL did not list the revocation within crl.dirty_bound_seconds:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.stop().success());
}

#[test]
fn a_scheduled_emigration_falls_due_while_serve_runs() {
    // A departure in the recent past (so that OpenSSL, on the real clock, finds the
    // certificates already valid): every command's clock starts 20 s before midnight JST on
    // the departure date and runs on.
    let eve = time::OffsetDateTime::now_utc().date() - time::Duration::days(2);
    let departure = eve.next_day().unwrap();
    let mut env = Env::empty();
    env.start = Some(format!("{eve}T14:59:40Z"));
    env.ok(&["init"]);
    let id = env.add_resident("出国　五郎", "1975-06-07");
    let (_k, csr) = env.csr("s", 2048);
    let cert = env.issue(&id, "signing", &csr);
    let out = env.json(&[
        "resident",
        "emigrate",
        "--id",
        &id,
        "--date",
        &departure.to_string(),
    ]);
    assert_eq!(out["scheduled"], departure.to_string());
    let pem = env.write("s.pem", cert["pem"].as_str().unwrap().as_bytes());
    let root = env.write(
        "root.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );

    let server = Server::start(&env);
    let started = Instant::now();
    let ocsp = || {
        openssl(&[
            "ocsp",
            "-issuer",
            &p(&root),
            "-cert",
            &p(&pem),
            "-url",
            &format!("{}/ocsp", server.base),
            "-CAfile",
            &p(&root),
            "-timeout",
            "10",
            // The answers are dated by the server's clock, two days back: accept that skew.
            "-validity_period",
            "604800",
        ])
    };
    let out = ocsp();
    assert!(out.contains(": good"), "good before the departure: {out}");
    loop {
        let out = ocsp();
        if out.contains(": revoked") {
            // (`openssl` fails the test unless the response verifies against the root.)
            assert!(out.contains("affiliationChanged"), "{out}");
            // Midnight JST on the departure date, as OpenSSL prints it.
            let due = format!(
                "Revocation Time: {} {:>2} 15:00:00 {} GMT",
                &format!("{:?}", eve.month())[..3],
                eve.day(),
                eve.year()
            );
            assert!(
                out.contains(&due),
                "revoked as of the due time ({due}): {out}"
            );
            break;
        }
        // Due 20 s after the server's clock started; OCSP must follow within a minute.
        assert!(
            started.elapsed() < Duration::from_secs(20 + 60),
            "OCSP still says good a minute after the departure: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(server.stop().success());
    let shown = env.json(&["resident", "show", "--id", &id]);
    assert_eq!(shown["state"], "emigrated", "{shown}");
    env.ok(&["audit", "verify"]);
}
