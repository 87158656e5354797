//! An edge node follows a root rollover by itself (issue #16, docs/roots.md "Edges"), with
//! the real binary on a throwaway PostgreSQL cluster: a CA node (`serve --role ca`) and an
//! edge (`serve --role edge`) exported before the rollover. The rollover (dual control) is
//! made through the CA node; the edge — no restart, no new export — finds the new root in
//! the store, makes the new generation's signer key, files a request, gets it certified by
//! the CA node, and answers `good` for a generation-2 leaf (verified by `openssl ocsp`
//! against the generation-2 root) and still for a generation-1 leaf (against generation 1's
//! root, signed by the exported signer). A first-generation request from a node the CA does
//! not know is refused with nothing issued. Skipped, loudly, without PostgreSQL.

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, Instant};

use ca::storage::{SignerAnswer, Storage};
use policies::Hierarchy;
use storage_postgres::testing::{Cluster, Fsync};

/// Generous bound for the edge to follow (a check a second on each side).
const BOUND: Duration = Duration::from_secs(120);

fn ocsp(root: &Path, cert: &Path, base: &str) -> String {
    let (_, out) = openssl_result(&[
        "ocsp",
        "-issuer",
        &p(root),
        "-cert",
        &p(cert),
        "-url",
        &format!("{base}/ocsp"),
        "-CAfile",
        &p(root),
        "-timeout",
        "10",
        "-resp_text",
    ]);
    out
}

/// The serial (upper-case hex) of a PEM certificate.
fn serial_of(pem: &[u8]) -> String {
    let der = x509_parser::pem::parse_x509_pem(pem).unwrap().1.contents;
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    hex::encode_upper(c.raw_serial())
}

#[test]
fn an_edge_follows_a_root_rollover_without_restart_or_export() {
    let Some(primary) = Cluster::start(Fsync::Off).expect("start PostgreSQL") else {
        return;
    };
    let url = primary.database().expect("a database");
    let env = Env::empty();
    env.ok(&["init", "--store", &url]);
    let id = env.add_resident("郵便　花子", "1984-05-06");
    let other = env.add_resident("佐藤　一郎", "1979-11-02");
    let (_, csr1) = env.csr("k1", 2048);
    let old = env.issue(&id, "auth", &csr1);
    let old_f = env.write("old.pem", old["pem"].as_str().unwrap().as_bytes());
    let g1 = env.ok(&["root", "--hierarchy", "auth"]);
    let g1f = env.write("g1.pem", g1.as_bytes());
    let two = env.two_officers();

    let edge_pass = env.write("edge-pass", b"edge-passphrase\n");
    let e = Env::empty();
    env.ok(&[
        "edge",
        "export",
        "--out",
        &p(&e.data()),
        "--edge-passphrase-file",
        &p(&edge_pass),
        "--node",
        "edge-g",
    ]);
    let exported = std::fs::read(e.data().join("certs/auth-ocsp.pem")).unwrap();
    let cfg = env.write(
        "edge-serve.toml",
        format!("[crl]\ndir = \"{}\"\n", env.data().join("crl").display()).as_bytes(),
    );
    let _ca = Server::start_with(&env, &["--role", "ca", "--node", "ca-1"]);
    let edge = Server::start_with(
        &e,
        &[
            "--role",
            "edge",
            "--config",
            &p(&cfg),
            "--passphrase-file",
            &p(&edge_pass),
        ],
    );
    let out = ocsp(&g1f, &old_f, &edge.base);
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );

    // The rollover, through the CA node, with two officers' approvals; a gen-2 leaf.
    env.ok(&Env::with_args(
        &["root", "rollover", "--hierarchy", "auth"],
        &two,
    ));
    let g2 = env.ok(&["root", "--hierarchy", "auth"]);
    assert_ne!(g1, g2);
    let g2f = env.write("g2.pem", g2.as_bytes());
    let (_, csr2) = env.csr("k2", 2048);
    let new = env.issue(&other, "auth", &csr2);
    let new_f = env.write("new.pem", new["pem"].as_str().unwrap().as_bytes());

    // The edge follows by itself: `good` for the gen-2 leaf, verified against gen 2's root.
    let t = Instant::now();
    let out = loop {
        let out = ocsp(&g2f, &new_f, &edge.base);
        if out.contains("Response verify OK") && out.contains(": good") {
            break out;
        }
        assert!(
            t.elapsed() < BOUND,
            "the edge did not follow the rollover within {BOUND:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("the edge answers generation 2 after {:?}", t.elapsed());
    // Signed by the edge's own gen-2 signer (its certificate in the answer), not the CA's.
    let edge_signer = serial_of(&std::fs::read(e.data().join("certs/auth-ocsp.pem")).unwrap());
    let ca_signer = serial_of(&std::fs::read(env.data().join("certs/auth-ocsp.pem")).unwrap());
    assert_ne!(edge_signer, ca_signer);
    assert!(out.contains(&shown(&edge_signer)), "{edge_signer}: {out}");
    // The gen-1 leaf: still good, against gen 1's root, by the exported signer (kept as
    // auth-ocsp-g1).
    let out = ocsp(&g1f, &old_f, &edge.base);
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    assert!(out.contains(&shown(&serial_of(&exported))), "{out}");
    assert_eq!(
        std::fs::read(e.data().join("certs/auth-ocsp-g1.pem")).unwrap(),
        exported
    );
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "keys/auth-ocsp.key",
        "keys/auth-ocsp-g1.key",
        "certs/auth-root-g2.pem",
    ] {
        let m = std::fs::metadata(e.data().join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    for f in std::fs::read_dir(e.data().join("keys")).unwrap() {
        let name = f.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".pending") && !name.contains("root"),
            "{name}"
        );
    }
    // After a restart the edge serves both generations from its directory.
    drop(edge);
    let edge = Server::start_with(
        &e,
        &[
            "--role",
            "edge",
            "--config",
            &p(&cfg),
            "--passphrase-file",
            &p(&edge_pass),
        ],
    );
    for (root, leaf, signer) in [
        (&g2f, &new_f, &edge_signer),
        (&g1f, &old_f, &serial_of(&exported)),
    ] {
        let out = ocsp(root, leaf, &edge.base);
        assert!(
            out.contains("Response verify OK") && out.contains(": good"),
            "{out}"
        );
        assert!(out.contains(&shown(signer)), "{out}");
    }
    drop(edge);
    let store = storage_postgres::PgStorage::open_follower(&url).expect("open the store");
    let r = store
        .signer_request("edge-g", Hierarchy::Auth, 2)
        .unwrap()
        .expect("the edge's request");
    assert!(
        matches!(r.answer, Some(SignerAnswer::Issued { .. })),
        "{r:?}"
    );

    // Bad input: a first request for generation 2 from a node the CA does not know (it names
    // a leaf as its signer in force) is refused, audited, and nothing is issued.
    let h = Hierarchy::Auth;
    let key = ca::keys::generate().unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let csr = ca::edge_signer::make_csr("rogue", &key.spki, &|m| {
        ca::keys::sign_with(&key.pair, &rng, m)
    })
    .unwrap();
    let leaf_der = x509_parser::pem::parse_x509_pem(old["pem"].as_str().unwrap().as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    let roots: Vec<Vec<u8>> = [&g1, &g2]
        .iter()
        .map(|pem| {
            let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .unwrap()
                .1
                .contents;
            ca::records::spki_of(&der).unwrap()
        })
        .collect();
    let counter = store.serial_counter(h).unwrap();
    ca::officers::acting_as(&ca::officers::Actor::System("edge-node"), || {
        ca::edge_signer::file_request(
            &store,
            "rogue",
            h,
            2,
            &csr,
            leaf.raw_serial(),
            &roots,
            time::OffsetDateTime::now_utc(),
        )
    })
    .unwrap();
    let t = Instant::now();
    let answer = loop {
        let r = store.signer_request("rogue", h, 2).unwrap().unwrap();
        if let Some(a) = r.answer {
            break a;
        }
        assert!(t.elapsed() < BOUND, "the CA node did not answer");
        std::thread::sleep(Duration::from_millis(300));
    };
    let SignerAnswer::Refused { reason, .. } = answer else {
        panic!("issued to an unknown node: {answer:?}")
    };
    assert!(reason.contains("no OCSP signer certificate"), "{reason}");
    assert_eq!(store.serial_counter(h).unwrap(), counter, "nothing issued");
    let log = env.json(&["audit", "log"]);
    assert!(log["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "edge-signer-refuse" && r["subject"] == "rogue auth"));
    env.ok(&["audit", "verify"]);
}
