//! CA and edge nodes on one PostgreSQL database (issue #13, docs/deployment.md), with the real
//! binary: one CA node (`serve --role ca`) and two edge nodes (`serve --role edge`, from
//! `jpki edge export`), one edge on the primary and one on a streaming-replication standby
//! (`pg_basebackup -R`). Checks the freshness contract (a revocation acknowledged by the CA
//! node is answered `revoked` by both edges — polled, with a generous bound, never timed), the
//! primary-down behaviour (the CA node refuses and acknowledges nothing; the edges answer from
//! their cache, the edge on the primary says not ready in `/healthz` and `/metrics`) and the
//! recovery. And two CA nodes publishing the same CRLs under leases: never one number twice.
//! Each test starts its own throwaway cluster; skipped, loudly, where PostgreSQL is missing.

mod common;
use common::*;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ca::clock::Clock;
use storage_postgres::testing::{Cluster, Fsync};

/// Generous bound for anything that should happen within about a second.
const BOUND: Duration = Duration::from_secs(20);

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().expect("a database name")
}

/// `openssl ocsp` without a nonce: the form answered from the edge's cache (a request with a
/// nonce is always signed live).
fn ocsp(root: &str, cert: &str, url: &str) -> String {
    let (_, out) = openssl_result(&[
        "ocsp",
        "-issuer",
        root,
        "-cert",
        cert,
        "-url",
        url,
        "-CAfile",
        root,
        "-timeout",
        "5",
        "-no_nonce",
    ]);
    out
}

/// Polls `f` until it returns true or [`BOUND`] passes; says what it waited for.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < BOUND, "not within {BOUND:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{what}: after {:?}", t0.elapsed());
}

/// A plain HTTP GET with curl: (status, body).
fn get(url: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn one_ca_node_two_edges_one_on_a_standby() {
    let Some(mut primary) = Cluster::start(Fsync::Off).expect("start PostgreSQL") else {
        return;
    };
    let url = primary.database().expect("a database");
    let env = Env::empty();
    env.ok(&["init", "--store", &url]);
    let ids: Vec<String> = ["郵便　花子", "郵便　一郎", "郵便　次郎"]
        .iter()
        .map(|n| env.add_resident(n, "1984-05-06"))
        .collect();
    let id = ids[0].clone();
    let certs: Vec<(String, std::path::PathBuf)> = (0..3)
        .map(|i| {
            let (_, csr) = env.csr(&format!("k{i}"), 2048);
            let c = env.issue(&ids[i], if i == 0 { "auth" } else { "signing" }, &csr);
            let pem = env.write(&format!("c{i}.pem"), c["pem"].as_str().unwrap().as_bytes());
            (c["serial"].as_str().unwrap().to_owned(), pem)
        })
        .collect();
    let aroot = env.write(
        "aroot.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    let sroot = env.write(
        "sroot.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );

    // The edge directories: one on the primary, one on a standby of it.
    let standby = primary.standby().expect("a standby");
    let standby_url = standby.url(db_name(&url));
    let edge_pass = env.write("edge-pass", b"edge-passphrase\n");
    let same_pass = env.write("same-pass", format!("{PASS}\n").as_bytes());
    let (e1, e2) = (Env::empty(), Env::empty());
    env.fails(
        &[
            "edge",
            "export",
            "--out",
            &p(&e1.data()),
            "--edge-passphrase-file",
            &p(&same_pass),
        ],
        "differ from the CA passphrase",
    );
    assert!(!e1.data().exists(), "a refused export leaves nothing");
    env.ok(&[
        "edge",
        "export",
        "--out",
        &p(&e1.data()),
        "--edge-passphrase-file",
        &p(&edge_pass),
    ]);
    env.ok(&[
        "edge",
        "export",
        "--out",
        &p(&e2.data()),
        "--store",
        &standby_url,
        "--edge-passphrase-file",
        &p(&edge_pass),
    ]);
    for e in [&e1, &e2] {
        let keys: Vec<String> = std::fs::read_dir(e.data().join("keys"))
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(keys.iter().all(|k| k.ends_with("-ocsp.key")), "{keys:?}");
        assert_eq!(keys.len(), 2, "{keys:?}");
    }

    // The CA node publishes CRLs into its crl/; the edges serve that directory.
    let crl_dir = env.data().join("crl");
    let edge_cfg = env.write(
        "edge.toml",
        format!("[crl]\ndir = \"{}\"\n", crl_dir.display()).as_bytes(),
    );
    let ca = Server::start_with(&env, &["--role", "ca", "--node", "ca-1"]);
    let edge_args = [
        "--role",
        "edge",
        "--config",
        &p(&edge_cfg),
        "--passphrase-file",
        &p(&edge_pass),
    ];
    let edges = [
        Server::start_with(&e1, &edge_args),
        Server::start_with(&e2, &edge_args),
    ];
    // The CA node answers no OCSP; an edge started on the CA's own data directory is refused
    // (it holds root keys).
    assert_eq!(get(&format!("{}/ocsp/MAo=", ca.base)).0, 404);
    let refused = env.run(&["serve", "--role", "edge", "--http", "127.0.0.1:0"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("holds a root key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let revoke = |serial: &str, h: &str| {
        env.ok(&[
            "revoke",
            "--serial",
            serial,
            "--hierarchy",
            h,
            "--reason",
            "keyCompromise",
        ]);
    };
    let answers = |root: &std::path::Path, cert: &std::path::Path, want: &str| {
        for (n, e) in edges.iter().enumerate() {
            eventually(&format!("edge {n} answers {want}"), || {
                let out = ocsp(&p(root), &p(cert), &format!("{}/ocsp", e.base));
                out.contains("Response verify OK") && out.contains(&format!(": {want}"))
            });
        }
    };
    // Good at first on both edges (and now cached there), then revoked through the CA node:
    // both edges replace their cached answers.
    answers(&aroot, &certs[0].1, "good");
    answers(&sroot, &certs[1].1, "good");
    revoke(&certs[0].0, "auth");
    answers(&aroot, &certs[0].1, "revoked");
    // CRLs: served by the edges from the CA node's publication.
    eventually("an edge serves the CA-level CRL", || {
        get(&format!("{}/crl/signing/ca.crl", edges[0].base)).0 == 200
    });
    let (_, metrics) = get(&format!("{}/metrics", edges[1].base));
    assert!(
        metrics.contains("jpki_edge_db_standby 1") && metrics.contains("jpki_edge_ready 1"),
        "{metrics}"
    );
    assert_eq!(get(&format!("{}/healthz", edges[0].base)).0, 200);
    // The edge on the primary was woken by NOTIFY; the one on the standby polls.
    assert!(metrics.contains("jpki_edge_db_listening 0"), "{metrics}");
    let (_, metrics) = get(&format!("{}/metrics", edges[0].base));
    assert!(
        metrics.contains("jpki_edge_db_listening 1")
            && !metrics.contains("jpki_edge_notifications_total 0\n"),
        "{metrics}"
    );

    // The primary stops: the CA node refuses and acknowledges nothing.
    primary.stop().expect("stop the primary");
    let out = env.run(&[
        "revoke",
        "--serial",
        &certs[1].0,
        "--hierarchy",
        "signing",
        "--reason",
        "keyCompromise",
    ]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a revocation was acknowledged without a database"
    );
    assert!(said.contains("PostgreSQL"), "{said}");
    let (_, csr) = env.csr("down", 2048);
    let out = env.run(&[
        "issue",
        "--resident",
        &id,
        "--kind",
        "signing",
        "--csr",
        &p(&csr),
    ]);
    assert!(
        !out.status.success(),
        "an issuance was acknowledged without a database"
    );
    // The edge on the primary: not ready, with the reason, in /healthz and /metrics; it still
    // answers from its cache. The edge on the standby still reads it (read-only).
    eventually("the edge on the primary says not ready", || {
        let (code, body) = get(&format!("{}/healthz", edges[0].base));
        code == 503 && body.contains("database unreachable")
    });
    let (_, metrics) = get(&format!("{}/metrics", edges[0].base));
    assert!(metrics.contains("jpki_edge_ready 0"), "{metrics}");
    // The edge on the standby: its database answers, but the standby lost its primary, so no
    // revocation can reach it: not ready either, saying why.
    eventually("the edge on the standby says not ready", || {
        let (code, body) = get(&format!("{}/healthz", edges[1].base));
        code == 503 && body.contains("lost its primary")
    });
    let (_, metrics) = get(&format!("{}/metrics", edges[1].base));
    assert!(metrics.contains("jpki_edge_db_streaming 0"), "{metrics}");
    for (root, cert, want) in [
        (&aroot, &certs[0].1, "revoked"),
        (&sroot, &certs[1].1, "good"),
    ] {
        for e in &edges {
            let out = ocsp(&p(root), &p(cert), &format!("{}/ocsp", e.base));
            assert!(out.contains(&format!(": {want}")), "from the cache: {out}");
        }
    }

    // The primary returns: the edge recovers by itself, nothing was acknowledged while it was
    // down, and a new revocation reaches both edges (the standby reconnects to the primary).
    primary.restart().expect("restart the primary");
    eventually("the edge on the primary is ready again", || {
        get(&format!("{}/healthz", edges[0].base)).0 == 200
    });
    eventually("the edge on the standby is ready again", || {
        get(&format!("{}/healthz", edges[1].base)).0 == 200
    });
    let shown = env.json(&[
        "cert",
        "show",
        "--serial",
        &certs[1].0,
        "--hierarchy",
        "signing",
    ]);
    assert_eq!(shown["status"], "good", "{shown}");
    eventually("the CA node takes revocations again", || {
        env.run(&[
            "revoke",
            "--serial",
            &certs[1].0,
            "--hierarchy",
            "signing",
            "--reason",
            "keyCompromise",
        ])
        .status
        .success()
    });
    answers(&sroot, &certs[1].1, "revoked");
    answers(&sroot, &certs[2].1, "good");

    for e in edges {
        assert!(e.stop().success());
    }
    assert!(ca.stop().success());
    drop(standby);
}

#[test]
fn two_ca_nodes_lease_crls_and_never_publish_one_number_twice() {
    let Some(cluster) = Cluster::start(Fsync::Off).expect("start PostgreSQL") else {
        return;
    };
    let url = cluster.database().expect("a database");
    let env = Env::empty();
    env.ok(&["init", "--store", &url]);
    let second = env.path("second");
    copy_dir(&env.data(), &second);
    let t0 = time::OffsetDateTime::now_utc();
    let clock = Arc::new(ca::clock::FixedClock::new(t0));
    let node = |dir: &std::path::Path, name: &str| {
        let a = jpki::store::open(dir, Some(PASS.as_bytes().to_vec()), clock.clone())
            .expect("open a CA node");
        let mut cfg = jpki::serve::Config::default();
        cfg.listen.http = Some("127.0.0.1:0".into());
        let settings = cfg.validate(dir, a.policy()).expect("settings");
        jpki::serve::assemble_node(Arc::new(a), &settings, Some(name)).expect("assemble")
    };
    let (n1, n2) = (node(&env.data(), "ca-1"), node(&second, "ca-2"));
    let (h, scope) = (policies::Hierarchy::Signing, policies::profile::Scope::Ca);
    let mut numbers = Vec::new();
    // Both nodes try, in turn, while ca-1 holds the lease: only ca-1 publishes.
    for _ in 0..5 {
        let now = clock.now();
        numbers.push(
            n1.publisher
                .publish(h, 1, scope.clone(), now)
                .expect("ca-1 publishes")
                .number,
        );
        let e = n2
            .publisher
            .publish(h, 1, scope.clone(), now)
            .expect_err("leased to ca-1");
        assert!(jpki::serve::role::published_elsewhere(&e), "{e}");
        assert!(e.to_string().contains("ca-1"), "{e}");
        clock.advance(time::Duration::seconds(10));
    }
    // ca-1 stops publishing; once its lease has run out, ca-2 takes over.
    clock.advance(jpki::serve::role::CRL_LEASE);
    for _ in 0..3 {
        let now = clock.now();
        numbers.push(
            n2.publisher
                .publish(h, 1, scope.clone(), now)
                .expect("ca-2 publishes")
                .number,
        );
    }
    // Racing from two threads, the clock past any lease: numbers stay unique.
    clock.advance(jpki::serve::role::CRL_LEASE * 2);
    let run = |p: &crl_publisher::Publisher| {
        let mut got = Vec::new();
        for _ in 0..10 {
            if let Ok(c) = p.publish(h, 1, scope.clone(), clock.now()) {
                got.push(c.number);
            }
        }
        got
    };
    let raced: Vec<u64> = std::thread::scope(|s| {
        let a = s.spawn(|| run(&n1.publisher));
        let b = s.spawn(|| run(&n2.publisher));
        let mut all = a.join().unwrap();
        all.extend(b.join().unwrap());
        all
    });
    assert!(!raced.is_empty());
    numbers.extend(raced);
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        numbers.len(),
        "a CRL number published twice: {numbers:?}"
    );
    drop(cluster);
}

/// Issue #13, serials: two CA nodes on one PostgreSQL database, each with its own sequential
/// counter, issuing in turn and then at once from two threads. A node whose counter is behind
/// is refused the taken serial (`SerialTaken`), re-reads the stored counter and signs again:
/// every certificate keeps its own record, none is replaced, serials are distinct.
#[test]
fn two_ca_nodes_issue_sequential_serials_and_never_replace_a_record() {
    let Some(cluster) = Cluster::start(Fsync::Off).expect("start PostgreSQL") else {
        return;
    };
    let url = cluster.database().expect("a database");
    let env = Env::empty();
    env.ok(&["init", "--store", &url]);
    let second = env.path("second");
    copy_dir(&env.data(), &second);
    let clock = Arc::new(ca::clock::FixedClock::new(time::OffsetDateTime::now_utc()));
    let open = |dir: &std::path::Path| {
        jpki::store::open(dir, Some(PASS.as_bytes().to_vec()), clock.clone())
            .expect("open a CA node")
    };
    let (n1, n2) = (open(&env.data()), open(&second));
    let h = policies::Hierarchy::Auth;
    let register = |n: &ca::Authority, name: &str| {
        n.resident_add(&ca::authority::NewResident {
            name: name.into(),
            birth: time::macros::date!(1980 - 01 - 01),
            sex: policies::Sex::Female,
            address: "千代田区一丁目1番".into(),
            prefecture: "東京都".into(),
            municipality: "千代田区".into(),
            card_expiry: time::macros::date!(2031 - 01 - 01),
        })
        .expect("register")
    };
    let issue = |n: &ca::Authority, id: &str| {
        n.issue_with(id, h, &rsa_csr(), &ca::authority::IssueOverrides::default())
            .expect("issue")
    };
    let mut out = Vec::new();
    for k in 0..2 {
        let (a, b) = (
            register(&n1, &format!("一局 {k}")),
            register(&n2, &format!("二局 {k}")),
        );
        out.push((a.clone(), issue(&n1, &a)));
        out.push((b.clone(), issue(&n2, &b)));
    }
    let ids: Vec<(String, String)> = (0..3)
        .map(|k| {
            (
                register(&n1, &format!("一並 {k}")),
                register(&n2, &format!("二並 {k}")),
            )
        })
        .collect();
    std::thread::scope(|s| {
        let one = s.spawn(|| {
            ids.iter()
                .map(|(a, _)| (a.clone(), issue(&n1, a)))
                .collect::<Vec<_>>()
        });
        let two = s.spawn(|| {
            ids.iter()
                .map(|(_, b)| (b.clone(), issue(&n2, b)))
                .collect::<Vec<_>>()
        });
        out.extend(one.join().unwrap());
        out.extend(two.join().unwrap());
    });
    let mut serials: Vec<&String> = out.iter().map(|(_, c)| &c.serial).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), out.len(), "a serial issued twice");
    for (id, c) in &out {
        let serial = ca::authority::parse_serial(&c.serial).unwrap();
        let record = n1
            .storage()
            .certificate(h, &serial)
            .unwrap()
            .expect("a record");
        assert_eq!(record.der, c.der, "the record of {} was replaced", c.serial);
        assert_eq!(record.holder.as_deref(), Some(id.as_str()));
    }
    drop(cluster);
}
