//! Signature time-stamps and verification as of a time, end to end: the holder token signs a
//! tax return with a time-stamp from `jpki serve --tsa`, the holder moves (the certificate is
//! revoked), and the return still verifies as of its time-stamp while a fresh signature with
//! the old certificate does not; the verdict's evidence is checked again offline after the
//! certificates expired; and each kind of bad input is named.

mod common;
use common::*;

use std::path::{Path, PathBuf};

struct Holder {
    token: PathBuf,
    /// The CRL partition of the signing certificate.
    partition: String,
}

impl Holder {
    fn new(env: &Env, id: &str) -> Holder {
        let token = env.path("card.token");
        let t = |args: &[&str]| {
            let mut v = vec!["token"];
            v.extend_from_slice(args);
            env.ok(&v)
        };
        t(&[
            "new",
            "--out",
            &p(&token),
            "--sign-pin",
            "SIGN1234",
            "--auth-pin",
            "1234",
        ]);
        let csr = env.path("s.csr");
        t(&[
            "csr",
            "--token",
            &p(&token),
            "--kind",
            "signing",
            "--pin",
            "SIGN1234",
            "--out",
            &p(&csr),
        ]);
        let s = env.issue(id, "signing", &csr);
        let pem = env.write("s.pem", s["pem"].as_str().unwrap().as_bytes());
        t(&["import-cert", "--token", &p(&token), "--cert", &p(&pem)]);
        Holder {
            token,
            partition: common::partition_path(&s["partition"]),
        }
    }

    fn sign(&self, env: &Env, doc: &Path, out: &str, tsa: Option<&str>) -> PathBuf {
        let sig = env.path(out);
        let mut args = vec![
            "token".to_string(),
            "sign".into(),
            "--token".into(),
            p(&self.token),
            "--pin".into(),
            "SIGN1234".into(),
            "--in".into(),
            p(doc),
            "--out".into(),
            p(&sig),
        ];
        if let Some(url) = tsa {
            args.push("--timestamp".into());
            args.push(url.into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.ok(&refs);
        sig
    }
}

/// `jpki verify … --json` and extra arguments: (success, report).
fn verify(env: &Env, args: &[&str]) -> (bool, serde_json::Value) {
    let mut a = vec!["verify", "--json"];
    a.extend_from_slice(args);
    let out = env.run(&a);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify {args:?} printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

fn reason(v: &serde_json::Value, check: &str) -> String {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .map(|c| format!("{} {}", c["outcome"], c["reason"]))
        .unwrap_or_else(|| panic!("no check {check} in {v}"))
}

#[test]
fn a_time_stamped_return_stays_valid_as_of_its_time_stamp_after_the_move() {
    let mut env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let holder = Holder::new(&env, &id);
    let server = Server::start_with(&env, &["--tsa", "127.0.0.1:0"]);
    let tsa = server.tsa.clone().unwrap();
    let ocsp = format!("{}/ocsp", server.base);
    let root = env.write(
        "root.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );
    let tsa_root = env.data().join("certs/tsa-root.pem");
    // A CRL from before the signature: too old to say anything about its time.
    let old_crl = env.path("old.crl");
    let crl_url = format!("{}/crl/signing/{}.crl", server.base, holder.partition);
    let st = std::process::Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&old_crl)
        .arg(&crl_url)
        .status()
        .unwrap();
    assert!(st.success(), "GET {crl_url}");
    // Whole-second times: the signature's time-stamp falls in a later second.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let doc = env.write(
        "return.xml",
        "<申告書><所得>5000000</所得></申告書>".as_bytes(),
    );
    let sig = holder.sign(&env, &doc, "return.p7s", Some(&tsa));
    let (root_s, sig_s, doc_s, tsa_root_s) = (p(&root), p(&sig), p(&doc), p(&tsa_root));
    let base = |sig: &str| -> Vec<String> {
        [
            "--trust",
            &root_s,
            "--sig",
            sig,
            "--content",
            &doc_s,
            "--tsa-root",
            &tsa_root_s,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>, extra: &[&str]| {
        let mut v: Vec<&str> = a.iter().map(String::as_str).collect();
        v.extend_from_slice(extra);
        verify(&env, &v)
    };

    // The move revokes the signing certificate (a second later: whole-second times).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&[
        "resident",
        "move",
        "--id",
        &id,
        "--address",
        "神奈川県横浜市中区日本大通１",
    ]);

    // As of now: invalid. As of the signature time-stamp: valid, revoked only later.
    let (ok, v) = run(base(&sig_s), &["--ocsp", &ocsp]);
    assert!(!ok && v["verdict"] == "invalid", "{v}");
    let evidence = env.path("return.evidence");
    let (ok, v) = run(
        base(&sig_s),
        &[
            "--ocsp",
            &ocsp,
            "--at",
            "timestamp",
            "--evidence-out",
            &p(&evidence),
        ],
    );
    assert!(ok, "{v}");
    assert_eq!(v["verdict"], "valid", "{v}");
    assert_eq!(v["time_source"], "signature time-stamp", "{v}");
    assert!(reason(&v, "status").contains("revoked only later"), "{v}");
    assert!(
        reason(&v, "time").contains("policy 1.3.6.1.5.5.7.13.8"),
        "{v}"
    );

    // A fresh signature with the old certificate, time-stamped after the move: invalid.
    let fresh = holder.sign(&env, &doc, "fresh.p7s", Some(&tsa));
    let (ok, v) = run(base(&p(&fresh)), &["--ocsp", &ocsp, "--at", "timestamp"]);
    assert!(!ok && v["verdict"] == "invalid", "{v}");
    assert!(
        reason(&v, "status").contains("before the time judged"),
        "{v}"
    );

    // Bad input, each named.
    // (a) no trusted TSA root: the time-stamp is from an untrusted TSA.
    let (ok, v) = verify(
        &env,
        &[
            "--trust",
            &root_s,
            "--sig",
            &sig_s,
            "--content",
            &doc_s,
            "--ocsp",
            &ocsp,
            "--at",
            "timestamp",
        ],
    );
    assert!(!ok, "{v}");
    assert!(reason(&v, "time").contains("untrusted TSA"), "{v}");
    // (b) a time-stamp over other content: the first signature's token on another signature.
    let plain = holder.sign(&env, &doc, "plain.p7s", None);
    let token = relying_party::cms::parse(&std::fs::read(&sig).unwrap())
        .unwrap()
        .timestamp_tokens
        .remove(0);
    let grafted =
        relying_party::cms::add_signature_timestamp(&std::fs::read(&plain).unwrap(), &token)
            .unwrap();
    let grafted_p = env.write("grafted.p7s", &grafted);
    let (ok, v) = run(
        base(&p(&grafted_p)),
        &["--ocsp", &ocsp, "--at", "timestamp"],
    );
    assert!(!ok, "{v}");
    assert!(reason(&v, "time").contains("over other content"), "{v}");
    // (c) a TIME before the certificate's notBefore.
    let (ok, v) = run(
        base(&sig_s),
        &["--ocsp", &ocsp, "--at", "2000-01-01T00:00:00Z"],
    );
    assert!(!ok, "{v}");
    assert!(reason(&v, "chain").contains("not valid before"), "{v}");
    // (d) revocation information older than the time judged.
    let (ok, v) = run(base(&sig_s), &["--crl", &p(&old_crl), "--at", "timestamp"]);
    assert!(!ok, "{v}");
    assert!(
        reason(&v, "status").contains("older than the time judged"),
        "{v}"
    );
    // (e) no time-stamp at all: said so, judged as of now.
    let (_, v) = run(base(&p(&plain)), &["--ocsp", &ocsp, "--at", "timestamp"]);
    assert!(reason(&v, "time").contains("no trusted time"), "{v}");
    // (f) a verifier with its own policy file (accepting another signing policy OID): the
    // verdict is invalid, and the evidence keeps the policy, so the re-check judges alike.
    let default_policy = include_str!("../policies/default-policy.toml");
    let at = default_policy.find("policy_oid = \"").unwrap();
    let end = at + default_policy[at..].find('\n').unwrap();
    let own = format!(
        "{}policy_oid = \"1.2.392.99999.1\"{}",
        &default_policy[..at],
        &default_policy[end..]
    );
    let own_policy = env.write("own-policy.toml", own.as_bytes());
    let own_evidence = env.path("own.evidence");
    let (ok, v) = run(
        base(&sig_s),
        &[
            "--ocsp",
            &ocsp,
            "--at",
            "timestamp",
            "--policy",
            &p(&own_policy),
            "--evidence-out",
            &p(&own_evidence),
        ],
    );
    assert!(!ok && v["verdict"] == "invalid", "{v}");
    server.stop();
    let (ok, v) = verify(&env, &["--evidence", &p(&own_evidence), "--trust", &root_s]);
    assert!(
        !ok && v["verdict"] == "invalid",
        "the re-check uses the kept policy: {v}"
    );

    // Years later: no server, the certificates expired; the evidence gives the same verdict.
    env.now = Some("2045-06-01T00:00:00Z".into());
    let ev = p(&evidence);
    let (ok, v) = verify(&env, &["--evidence", &ev, "--trust", &root_s]);
    assert!(ok, "{v}");
    assert_eq!(v["verdict"], "valid", "{v}");
    assert!(reason(&v, "status").contains("revoked only later"), "{v}");
    // (f) one byte altered: named.
    let mut bytes = std::fs::read(&evidence).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    let altered = env.write("altered.evidence", &bytes);
    env.fails(&["verify", "--evidence", &p(&altered)], "altered");
}
