//! Edges renew their own OCSP signers through the store, without a restart (issue #13,
//! docs/deployment.md "OCSP signer renewal on edges"), with the real binary on a throwaway
//! PostgreSQL cluster: one CA node (`serve --role ca`), an edge on the primary and an edge on
//! a streaming standby that files its request through `primary` (edge.toml). The servers'
//! clocks start (`JPKI_TEST_START`) shortly before the signers' renewal margin opens, so the
//! edges first answer under the exported signer, then — while running — make their next key,
//! file a CSR, get it certified by the CA node, and answer under the new signer, which
//! `openssl ocsp` verifies against the root. The CA node never holds the edges' keys (the
//! CSR is all it sees); the edges never hold a root key. Skipped, loudly, without PostgreSQL.

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, Instant};

use storage_postgres::testing::{Cluster, Fsync};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Generous bound for the renewal to reach an edge (a check a second on each side).
const BOUND: Duration = Duration::from_secs(90);
/// How long before the margin opens the servers' clocks start.
const LEAD: i64 = 20;

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().expect("a database name")
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn cert_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents
}

/// The serial (upper-case hex) and notAfter of a PEM certificate file.
fn serial_and_end(path: &Path) -> (String, OffsetDateTime) {
    let der = cert_der(path);
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    let end = OffsetDateTime::from_unix_timestamp(c.validity().not_after.timestamp()).unwrap();
    (hex::encode_upper(c.raw_serial()), end)
}

/// `openssl ocsp` with a nonce (signed live, by the signer in force), verified against the
/// root at `t`; returns the text with the response (and the signer certificate it carries).
fn ocsp(root: &Path, cert: &Path, base: &str, t: OffsetDateTime) -> String {
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
        "-attime",
        &t.unix_timestamp().to_string(),
        "-validity_period",
        "400000000",
        "-timeout",
        "10",
        "-resp_text",
    ]);
    out
}

fn audit_actions(env: &Env) -> Vec<(String, String, String)> {
    env.json(&["audit", "log"])["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_owned(),
                r["actor"].as_str().unwrap_or("").to_owned(),
                r["subject"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn edges_renew_their_ocsp_signers_through_the_store_without_a_restart() {
    let Some(primary) = Cluster::start(Fsync::Off).expect("start PostgreSQL") else {
        return;
    };
    let url = primary.database().expect("a database");
    let mut env = Env::empty();
    env.ok(&["init", "--store", &url]);
    let id = env.add_resident("郵便　花子", "1984-05-06");
    let (_, csr) = env.csr("k", 2048);
    let c = env.issue(&id, "auth", &csr);
    let cert = env.write("c.pem", c["pem"].as_str().unwrap().as_bytes());
    let root = env.write(
        "aroot.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    let (old_serial, end) = serial_and_end(&env.data().join("certs/auth-ocsp.pem"));

    // Two edges: one on the primary, one on a standby filing through the primary; and a third
    // on the standby with no primary configured, which cannot file and must say so.
    let standby = primary.standby().expect("a standby");
    let edge_pass = env.write("edge-pass", b"edge-passphrase\n");
    let (mut e1, mut e2, mut e3) = (Env::empty(), Env::empty(), Env::empty());
    let standby_url = standby.url(db_name(&url));
    for (e, node, extra) in [
        (&e1, "edge-p", vec![]),
        (
            &e2,
            "edge-s",
            vec!["--store", standby_url.as_str(), "--primary", url.as_str()],
        ),
        (&e3, "edge-nop", vec!["--store", standby_url.as_str()]),
    ] {
        let out = p(&e.data());
        let mut args = vec![
            "edge",
            "export",
            "--out",
            &out,
            "--edge-passphrase-file",
            edge_pass.to_str().unwrap(),
            "--node",
            node,
        ];
        args.extend(extra);
        env.ok(&args);
    }
    let bad = env.run(&[
        "edge",
        "export",
        "--out",
        &p(&env.path("bad-edge")),
        "--edge-passphrase-file",
        &p(&edge_pass),
        "--node",
        "no spaces",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("edge node name"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!env.path("bad-edge").exists());

    // The servers' clocks start LEAD seconds before the signers' 30-day margin opens.
    let margin = end - time::Duration::days(30);
    let start = margin - time::Duration::seconds(LEAD);
    let old_signing = serial_and_end(&env.data().join("certs/signing-ocsp.pem")).0;
    for e in [&mut env, &mut e1, &mut e2, &mut e3] {
        e.now = None;
        e.start = Some(at(start));
    }
    let crl_dir = env.data().join("crl");
    let cfg = env.write(
        "edge-serve.toml",
        format!("[crl]\ndir = \"{}\"\n", crl_dir.display()).as_bytes(),
    );
    let ca = Server::start_with(&env, &["--role", "ca", "--node", "ca-1"]);
    let edge_args = [
        "--role",
        "edge",
        "--config",
        &p(&cfg),
        "--passphrase-file",
        &p(&edge_pass),
    ];
    let edges = [
        Server::start_with(&e1, &edge_args),
        Server::start_with(&e2, &edge_args),
    ];
    let lone = Server::start_with(&e3, &edge_args);
    let t_before = start;
    // Before the margin: answers signed by the exported signer.
    for e in &edges {
        let out = ocsp(&root, &cert, &e.base, t_before);
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(": good"), "{out}");
        assert!(
            out.contains(&shown(&old_serial)),
            "the exported signer: {out}"
        );
    }

    // Past the margin: each edge makes a key, files a request, the CA node certifies it, the
    // edge switches — while running. Every answer meanwhile verifies (old or new signer).
    let t_after = margin + time::Duration::days(1);
    let new_serial = |e: &Env| serial_and_end(&e.data().join("certs/auth-ocsp.pem")).0;
    let t = Instant::now();
    loop {
        let done = [&e1, &e2].iter().all(|e| new_serial(e) != old_serial);
        for srv in &edges {
            let out = ocsp(&root, &cert, &srv.base, t_after);
            assert!(
                out.contains("Response verify OK") && out.contains(": good"),
                "an answer during the renewal: {out}"
            );
        }
        if done {
            break;
        }
        assert!(
            t.elapsed() < BOUND,
            "the edges did not renew their signers within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("both edges renewed after {:?}", t.elapsed());
    let (n1, n2) = (new_serial(&e1), new_serial(&e2));
    assert_ne!(n1, n2, "each edge has its own signer");
    for (e, srv, serial) in [(&e1, &edges[0], &n1), (&e2, &edges[1], &n2)] {
        // Answered under the new signer, by the same process, verified by openssl (the files
        // are put in force just before the responder switches: polled).
        let t = Instant::now();
        let out = loop {
            let out = ocsp(&root, &cert, &srv.base, t_after);
            assert!(out.contains("Response verify OK"), "{out}");
            if out.contains(&shown(serial)) {
                break out;
            }
            assert!(t.elapsed() < BOUND, "the new signer {serial}: {out}");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(!out.contains(&shown(&old_serial)), "{out}");
        // The new key is the edge's own (0600, no staged files left), never the CA's.
        use std::os::unix::fs::PermissionsExt;
        let key = e.data().join("keys/auth-ocsp.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        for f in std::fs::read_dir(e.data().join("keys"))
            .unwrap()
            .chain(std::fs::read_dir(e.data().join("certs")).unwrap())
        {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".pending")
                    && !name.ends_with(".new")
                    && !name.contains("root.key"),
                "{name}"
            );
        }
        let edge_der = cert_der(&e.data().join("certs/auth-ocsp.pem"));
        let (_, c) = x509_parser::parse_x509_certificate(&edge_der).unwrap();
        let edge_spki = c.public_key().raw.to_vec();
        let ca_signer = cert_der(&env.data().join("certs/auth-ocsp.pem"));
        let (_, ca_c) = x509_parser::parse_x509_certificate(&ca_signer).unwrap();
        assert_ne!(ca_c.public_key().raw, edge_spki.as_slice());
    }
    // The signing hierarchy's signers were renewed too; /metrics says nothing is open or stuck.
    for e in [&e1, &e2] {
        eventually_renewed(e, "signing", &old_signing);
    }
    for srv in &edges {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "5", &format!("{}/metrics", srv.base)])
            .output()
            .unwrap();
        let m = String::from_utf8_lossy(&out.stdout);
        for h in ["signing", "auth"] {
            for line in [
                format!("jpki_edge_ocsp_signer_request_open{{hierarchy=\"{h}\"}} 0"),
                format!("jpki_edge_ocsp_signer_renewal_stuck{{hierarchy=\"{h}\"}} 0"),
            ] {
                assert!(m.contains(&line), "{line}: {m}");
            }
        }
        assert!(
            m.contains("jpki_edge_ocsp_signer_expiry_seconds{hierarchy=\"auth\"} "),
            "{m}"
        );
    }
    // Audited: each edge's requests, each CA node's issuance, by identified actors.
    env.start = None;
    env.now = Some(at(t_after));
    let actions = audit_actions(&env);
    assert!(
        !actions.iter().any(|(_, _, s)| s.starts_with("edge-nop")),
        "the edge without a primary filed nothing: {actions:?}"
    );
    for node in ["edge-p", "edge-s"] {
        for (action, actor) in [
            ("edge-signer-request", "system:edge-node"),
            ("edge-signer-issue", "system:edge-signer-renewal"),
        ] {
            assert!(
                actions
                    .iter()
                    .any(|(a, who, s)| a == action && who == actor && s == &format!("{node} auth")),
                "{action} by {actor} for {node}: {actions:?}"
            );
        }
    }
    let audit = env.json(&["audit", "verify"]);
    assert_eq!(audit["intact"], true, "{audit}");

    // Bad input on PostgreSQL. Filing a CSR whose signature is wrong, or for a root's key, is
    // refused with the reason and stores nothing.
    use ca::storage::Storage;
    let pg = storage_postgres::PgStorage::open_follower(&url).unwrap();
    let root_key =
        ca::keys::read_encrypted(&env.data().join("keys/auth-root.key"), PASS.as_bytes()).unwrap();
    let root_spki = ca::records::spki_of(&cert_der(&root)).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let root_csr = ca::edge_signer::make_csr("rogue", &root_spki, &|m| {
        ca::keys::sign_with(&root_key, &rng, m)
    })
    .unwrap();
    let mut tampered = root_csr.clone();
    let n = tampered.len();
    tampered[n - 4] ^= 0x10;
    let old_bytes = hex::decode(&old_serial).unwrap();
    let h = policies::Hierarchy::Auth;
    for (csr, why) in [(&tampered, "does not verify"), (&root_csr, "a root's key")] {
        let e = ca::edge_signer::file_request(
            &pg,
            "rogue",
            h,
            1,
            csr,
            &old_bytes,
            std::slice::from_ref(&root_spki),
            t_after,
        )
        .unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
    assert_eq!(pg.signer_request("rogue", h, 1).unwrap(), None);
    // A row written past those checks (anyone with write access to the database): the CA
    // node refuses it with the reason and issues nothing.
    let counter = pg.serial_counter(h).unwrap();
    let rogue = ca::storage::SignerRequest {
        node: "rogue".into(),
        hierarchy: h,
        generation: 1,
        csr: root_csr,
        in_force: old_bytes,
        requested_at: t_after,
        answer: None,
    };
    pg.transact(&|t| t.put_signer_request(&rogue)).unwrap();
    let t = Instant::now();
    let answer = loop {
        if let Some(a) = pg.signer_request("rogue", h, 1).unwrap().unwrap().answer {
            break a;
        }
        assert!(
            t.elapsed() < BOUND,
            "the CA node did not answer the rogue request"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    match answer {
        ca::storage::SignerAnswer::Refused { reason, .. } => {
            assert!(reason.contains("a root's key"), "{reason}")
        }
        other => panic!("a root's key was certified: {other:?}"),
    }
    assert_eq!(pg.serial_counter(h).unwrap(), counter, "nothing issued");
    drop(pg);

    // The standby edge without a primary: its request cannot be filed on a read-only
    // standby; it says so in /metrics (and once in its log), keeps its key pending and keeps
    // answering under the exported signer.
    let t = Instant::now();
    loop {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "5", &format!("{}/metrics", lone.base)])
            .output()
            .unwrap();
        let m = String::from_utf8_lossy(&out.stdout).into_owned();
        if m.contains("jpki_edge_ocsp_signer_renewal_stuck{hierarchy=\"auth\"} 1") {
            assert!(
                m.contains("jpki_edge_ocsp_signer_request_open{hierarchy=\"auth\"} 1"),
                "{m}"
            );
            break;
        }
        assert!(t.elapsed() < BOUND, "the edge without a primary: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = ocsp(&root, &cert, &lone.base, t_after);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&shown(&old_serial)), "{out}");
    assert_eq!(new_serial(&e3), old_serial);
    assert!(lone.stop().success());

    for e in edges {
        assert!(e.stop().success());
    }
    assert!(ca.stop().success());
    drop(standby);
}

fn eventually_renewed(e: &Env, h: &str, old: &str) {
    let t = Instant::now();
    while serial_and_end(&e.data().join(format!("certs/{h}-ocsp.pem"))).0 == old {
        assert!(t.elapsed() < BOUND, "{h} signer not renewed");
        std::thread::sleep(Duration::from_millis(200));
    }
}
