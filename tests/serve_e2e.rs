//! `jpki serve` end to end: OCSP with `openssl ocsp` (good, revoked on the very next query
//! after `jpki revoke` run through the admin socket, held, unknown, foreign issuer), partition
//! CRLs checked with `openssl verify -crl_check`, clean stop on SIGTERM, a port in use.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

fn ocsp(root: &str, cert: &str, url: &str) -> String {
    let (_, out) = openssl_result(&[
        "ocsp", "-issuer", root, "-cert", cert, "-url", url, "-CAfile", root, "-timeout", "10",
    ]);
    out
}

#[test]
fn ocsp_and_crls_follow_revocations_at_once() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k1, c1) = env.csr("a", 2048);
    let (_k2, c2) = env.csr("b", 2048);
    let server = Server::start(&env);
    let url = format!("{}/ocsp", server.base);

    // Issued through the admin socket while the server holds the store.
    let a = env.issue(&id, "auth", &c1);
    let s = env.issue(&id, "signing", &c2);
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

    let out = ocsp(&p(&aroot), &p(&apem), &url);
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    // Cached now; the revocation must replace it before `jpki revoke` returns.
    let out = ocsp(&p(&aroot), &p(&apem), &url);
    assert!(out.contains(": good"), "{out}");
    // Serials are sequential per hierarchy, so both certificates may carry the same one.
    env.ok(&[
        "revoke",
        "--serial",
        a["serial"].as_str().unwrap(),
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);
    let out = ocsp(&p(&aroot), &p(&apem), &url);
    assert!(
        out.contains("Response verify OK")
            && out.contains(": revoked")
            && out.contains("keyCompromise"),
        "{out}"
    );

    // A hold answers revoked with certificateHold.
    env.ok(&[
        "hold",
        "--serial",
        s["serial"].as_str().unwrap(),
        "--hierarchy",
        "signing",
    ]);
    let out = ocsp(&p(&sroot), &p(&spem), &url);
    assert!(
        out.contains(": revoked") && out.contains("certificateHold"),
        "{out}"
    );

    // A serial never issued is unknown; a foreign issuer is unauthorized.
    let (ok, out) = openssl_result(&[
        "ocsp",
        "-issuer",
        &p(&aroot),
        "-serial",
        "0x0123456789",
        "-url",
        &url,
        "-CAfile",
        &p(&aroot),
    ]);
    assert!(ok && out.contains("unknown"), "{out}");
    let foreign_key = env.path("f.key");
    let foreign = env.path("f.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&foreign_key),
        "-subj",
        "/CN=Foreign CA",
        "-out",
        &p(&foreign),
        "-days",
        "2",
    ]);
    let (_, out) = openssl_result(&[
        "ocsp",
        "-issuer",
        &p(&foreign),
        "-serial",
        "0x01",
        "-url",
        &url,
    ]);
    assert!(out.to_lowercase().contains("unauthorized"), "{out}");

    // The partition CRLs list both within the rebuild bound.
    let crl_url = |pem: &serde_json::Value, h: &str| {
        format!(
            "{}/crl/{h}/{}.crl",
            server.base,
            common::partition_path(&pem["partition"])
        )
    };
    let fetch = |u: &str, name: &str| -> std::path::PathBuf {
        let der = env.path(&format!("{name}.der"));
        let pem = env.path(&format!("{name}.pem"));
        let t0 = Instant::now();
        loop {
            let st = Command::new("curl")
                .args(["-sf", "-o"])
                .arg(&der)
                .arg(u)
                .status()
                .unwrap();
            // A municipal partition's first CRL appears with the publisher's next pass (the
            // revocation wakes it): until then the GET may answer 404.
            if st.success() {
                let text = openssl(&[
                    "crl",
                    "-inform",
                    "DER",
                    "-in",
                    der.to_str().unwrap(),
                    "-noout",
                    "-text",
                ]);
                if text.contains("Serial Number") {
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the CRL at {u} was not rebuilt in time"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            der.to_str().unwrap(),
            "-out",
            pem.to_str().unwrap(),
        ]);
        pem
    };
    let acrl = fetch(&crl_url(&a, "auth"), "acrl");
    let (ok, out) = openssl_result(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &p(&acrl),
        "-CAfile",
        &p(&aroot),
        &p(&apem),
    ]);
    assert!(!ok && out.contains("revoked"), "{out}");
    let scrl = fetch(&crl_url(&s, "signing"), "scrl");
    let (ok, out) = openssl_result(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &p(&scrl),
        "-CAfile",
        &p(&sroot),
        &p(&spem),
    ]);
    assert!(
        !ok && out.contains("revoked"),
        "held certificates are listed: {out}"
    );

    // A good certificate passes against its partition's CRL.
    let (_k3, c3) = env.csr("c", 2048);
    let other = env.add_resident("佐藤　二郎", "1970-01-01");
    let g = env.issue(&other, "auth", &c3);
    let gpem = env.write("g.pem", g["pem"].as_str().unwrap().as_bytes());
    let gder = env.path("g.der");
    let st = Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&gder)
        .arg(crl_url(&g, "auth"))
        .status()
        .unwrap();
    assert!(st.success());
    let gcrl = env.path("g.crl.pem");
    openssl(&["crl", "-inform", "DER", "-in", &p(&gder), "-out", &p(&gcrl)]);
    openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &p(&gcrl),
        "-CAfile",
        &p(&aroot),
        &p(&gpem),
    ]);

    // SIGTERM stops it cleanly; the store is intact and usable directly again.
    let st = server.stop();
    assert!(st.success(), "serve exited with {st}");
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["intact"], true);
    let c = env.json(&[
        "cert",
        "show",
        "--serial",
        a["serial"].as_str().unwrap(),
        "--hierarchy",
        "auth",
    ]);
    assert_eq!(c["status"], "revoked");
    assert!(!env.data().join("admin.sock").exists());
}

#[test]
fn a_port_in_use_and_a_bad_config_are_clear_errors() {
    let env = Env::init();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = env.cmd(&["serve", "--http", &addr]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen") && err.contains(&addr),
        "{err}"
    );
    let cfg = env.write("serve.toml", b"[crl]\ndir = \"crl\"\ndirty_bound_seconds = 0\nbatch_delay_seconds = 0\nresign_margin_hours = 6\n[listen]\nhttp = \"127.0.0.1:0\"\n");
    env.fails(
        &["serve", "--config", cfg.to_str().unwrap()],
        "crl.dirty_bound_seconds",
    );
    let cfg = env.write("serve2.toml", b"[listen]\nhttp = \"nowhere\"\n");
    env.fails(&["serve", "--config", cfg.to_str().unwrap()], "listen.http");
    let cfg = env.write("serve3.toml", b"[listen]\nbogus = 1\n");
    env.fails(&["serve", "--config", cfg.to_str().unwrap()], "bogus");
    let cfg = env.write(
        "serve4.toml",
        b"[listen]\nhttp = \"127.0.0.1:0\"\n[store]\ncompact_journal_kib = 10\n",
    );
    env.fails(
        &["serve", "--config", cfg.to_str().unwrap()],
        "store.compact_journal_kib",
    );
}

/// A CA store page cache out of range (`[store] cache_mib`; 0 would make sled panic) is
/// refused by name before anything is opened or made: the data directory holds the same
/// files, the journal the same bytes.
#[test]
fn a_bad_store_cache_is_refused_by_name_before_anything_is_made() {
    let env = Env::init();
    let listing = |env: &Env| {
        let mut names: Vec<String> = std::fs::read_dir(env.data())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let journal = std::fs::read(env.data().join("db").join("journal")).unwrap();
        (names, journal)
    };
    let before = listing(&env);
    for (text, needle) in [
        ("[store]\ncache_mib = 0\n", "store.cache_mib"),
        ("[store]\ncache_mib = 4\n", "store.cache_mib"),
        ("[store]\ncache_mib = 1048577\n", "store.cache_mib"),
        ("[store]\ncache_mib = \"big\"\n", "cache_mib"),
        ("[store]\ncache = 64\n", "cache"),
    ] {
        let cfg = env.write("bad-store.toml", text.as_bytes());
        let err = env.fails(
            &["serve", "--http", "127.0.0.1:0", "--config", &p(&cfg)],
            needle,
        );
        assert!(!err.contains("panicked"), "{err}");
        std::fs::remove_file(&cfg).unwrap();
    }
    assert_eq!(listing(&env), before);
    assert!(!env.data().join("ocsp-answers").exists());
    assert!(!env.data().join("admin.sock").exists());
}

/// Where the journal's records end: the file goes on with preallocated zeros (issue #14), so
/// its length is not the journal's size. The last record ends in the journal position, which
/// may end in a zero byte: close enough for a size threshold.
fn records_end(journal: &std::path::Path) -> u64 {
    let bytes = std::fs::read(journal).unwrap();
    bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// With `store.compact_journal_kib` set, the server compacts the store by itself once the
/// journal passes it, and the store stays whole.
#[test]
fn the_server_compacts_the_store_when_the_journal_grows() {
    let env = Env::init();
    let cfg = env.write(
        "serve.toml",
        b"[listen]\nhttp = \"127.0.0.1:0\"\n[store]\ncompact_journal_kib = 64\n",
    );
    let before = env.json(&["audit", "verify"])["records"].as_u64().unwrap();
    let server = Server::start_with(&env, &["--config", cfg.to_str().unwrap()]);
    let journal = env.data().join("db").join("journal");
    // Register residents through the admin socket, at least until the journal passes 64 KiB.
    let mut added = 0;
    while added < 20 || records_end(&journal) < 64 * 1024 {
        env.add_resident(&format!("試験　{added}"), "1980-01-01");
        added += 1;
        assert!(added < 2000, "the journal does not grow");
    }
    let snapshot = env.data().join("db").join("snapshot");
    let t0 = Instant::now();
    while !snapshot.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no compaction within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = Instant::now();
    while records_end(&journal) >= 64 * 1024 {
        assert!(after.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.stop().success());
    // Everything is still there, and a lost sled is rebuilt from the snapshot and journal.
    std::fs::remove_dir_all(env.data().join("db").join("sled")).unwrap();
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["records"], before + added);
}

/// Errors cross the admin socket typed, with their codes: the CLI prints the same message
/// whether it ran the command in-process or through a running server, and changes nothing.
#[test]
fn errors_read_the_same_in_process_and_through_the_server() {
    let env = Env::init();
    let id = env.add_resident("誤り　一郎", "1970-01-01");
    let (_k, csr) = env.csr("e", 2048);
    let cert = env.issue(&id, "auth", &csr);
    let serial = cert["serial"].as_str().unwrap().to_owned();
    env.ok(&["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    // A PEM request followed by junk, and one too large: refused alike on both paths.
    let (_k2, csr2) = env.csr("f", 2048);
    let mut junk = std::fs::read(&csr2).unwrap();
    junk.extend_from_slice(b"trailing junk\n");
    let junk = p(&env.write("junk.csr", &junk));
    let huge = p(&env.write("huge.csr", &vec![b'A'; 2 << 20]));
    let bad: Vec<Vec<&str>> = vec![
        vec![
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            &junk,
        ],
        vec![
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            &huge,
        ],
        vec![
            "revoke",
            "--serial",
            "7FFFFFFF01",
            "--reason",
            "keyCompromise",
        ],
        vec!["revoke", "--serial", &serial, "--reason", "superseded"],
        vec!["cert", "show", "--serial", "7FFFFFFF01"],
        vec!["resident", "show", "--id", "RNOSUCHRESIDENT"],
        vec!["resident", "death", "--id", "RNOSUCHRESIDENT"],
        vec!["revoke", "--serial", &serial, "--reason", "removeFromCRL"],
    ];
    let stderr = |args: &[&str]| {
        let out = env.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let direct: Vec<String> = bad.iter().map(|a| stderr(a)).collect();
    let before = env.snapshot(&[&id]);
    let server = Server::start(&env);
    for (args, want) in bad.iter().zip(&direct) {
        assert_eq!(&stderr(args), want, "{args:?}");
    }
    for (i, want) in [
        "bytes after the PEM request",
        "a CSR is at most",
        "unknown serial 7FFFFFFF01",
        "already revoked",
    ]
    .iter()
    .enumerate()
    {
        assert!(direct[i].contains(want), "{}", direct[i]);
    }
    assert!(server.stop().success());
    assert_eq!(
        env.snapshot(&[&id]),
        before,
        "refused commands changed nothing"
    );
}
