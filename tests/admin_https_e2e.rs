//! The remote admin API (`jpki serve --admin-https`) end to end, through the real binary on
//! both sides: the CLI with `--server URL --cert --key --ca` against a server on
//! 127.0.0.1:0. Officers act within their roles; a clerk of another municipality gets 403
//! and nothing changes; an auditor reads but does not change; certificates of no officer, of
//! a suspended or revoked one, of another CA or out of their validity are refused (at TLS or
//! with 401); the per-officer rate limit answers 429; refusals are in the audit trail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{p, Env, Server};

/// An officer's credentials.
struct Who {
    cert: PathBuf,
    key: PathBuf,
}

fn operator_root(env: &Env) -> PathBuf {
    let pem = env.ok(&["root", "--hierarchy", "operator"]);
    env.write("operator-root.pem", pem.as_bytes())
}

fn add_officer(env: &Env, name: &str, role: &str, municipality: Option<&str>) -> Who {
    let file = name.replace(' ', "-");
    let who = Who {
        cert: env.path(&format!("{file}.pem")),
        key: env.path(&format!("{file}.key")),
    };
    let mut args = vec![
        "officer",
        "add",
        "--name",
        name,
        "--role",
        role,
        "--cert-out",
    ];
    let (c, k) = (p(&who.cert), p(&who.key));
    args.extend([c.as_str(), "--key-out", k.as_str()]);
    if let Some(m) = municipality {
        args.extend(["--municipality", m]);
    }
    env.ok(&args);
    who
}

fn first_officer(env: &Env) -> Who {
    let dir = env.data().join("officers");
    Who {
        cert: dir.join("ca-officer.pem"),
        key: dir.join("ca-officer.key"),
    }
}

/// Runs `jpki --server URL --cert --key --ca ROOT ARGS…`.
fn remote(env: &Env, server: &Server, root: &Path, who: &Who, args: &[&str]) -> Output {
    let url = server
        .admin
        .clone()
        .expect("the server printed its admin API");
    let mut all = vec![
        "--server".to_owned(),
        url,
        "--cert".into(),
        p(&who.cert),
        "--key".into(),
        p(&who.key),
        "--ca".into(),
        p(root),
    ];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    env.run(&all)
}

fn remote_ok(env: &Env, server: &Server, root: &Path, who: &Who, args: &[&str]) -> String {
    let out = remote(env, server, root, who, args);
    assert!(
        out.status.success(),
        "remote jpki {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn remote_fails(
    env: &Env,
    server: &Server,
    root: &Path,
    who: &Who,
    args: &[&str],
    needle: &str,
) -> String {
    let out = remote(env, server, root, who, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "remote jpki {args:?} should fail");
    assert!(
        err.contains(needle),
        "remote jpki {args:?}: `{err}` lacks `{needle}`"
    );
    err
}

/// The audit records, read through the admin socket of the running server.
fn audit(env: &Env) -> Vec<serde_json::Value> {
    env.json(&["audit", "log"])["records"]
        .as_array()
        .unwrap()
        .clone()
}

/// What a refused request must leave as it was: certificates, the resident, the officers.
fn state(env: &Env, resident: &str) -> String {
    env.ok(&["cert", "list", "--json"])
        + &env.ok(&["resident", "show", "--id", resident, "--json"])
        + &env.ok(&["officer", "list", "--json"])
}

fn last_refusal(env: &Env) -> serde_json::Value {
    audit(env)
        .into_iter()
        .rev()
        .find(|r| r["action"] == "refused")
        .expect("a refusal is audited")
}

#[test]
fn officers_act_through_the_admin_api_within_their_roles() {
    let env = Env::init();
    let root = operator_root(&env);
    let ca = first_officer(&env);
    let chiyoda = add_officer(&env, "Clerk Chiyoda", "municipal-clerk", Some("Chiyoda-ku"));
    let minato = add_officer(&env, "Clerk Minato", "municipal-clerk", Some("Minato-ku"));
    let auditor = add_officer(&env, "Auditor", "auditor", None);
    let gone = add_officer(&env, "Gone", "auditor", None);
    let resting = add_officer(&env, "Resting", "auditor", None);
    let resident = env.add_resident("山田 花子", "1990-04-01");
    let (_, csr) = env.csr("holder", 2048);
    let server = Server::start_with(&env, &["--admin-https", "127.0.0.1:0"]);
    let ca_id = env.json(&["officer", "list"])["officers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "ca-officer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The ca-officer issues and revokes.
    let issued: serde_json::Value = serde_json::from_str(&remote_ok(
        &env,
        &server,
        &root,
        &ca,
        &[
            "issue",
            "--resident",
            &resident,
            "--kind",
            "signing",
            "--csr",
            &p(&csr),
            "--json",
        ],
    ))
    .unwrap();
    let serial = issued["serial"].as_str().unwrap().to_owned();
    remote_ok(
        &env,
        &server,
        &root,
        &ca,
        &[
            "revoke",
            "--serial",
            &serial,
            "--hierarchy",
            "signing",
            "--reason",
            "keyCompromise",
        ],
    );
    let records = audit(&env);
    let revoked = records
        .iter()
        .rev()
        .find(|r| r["action"] == "revoke")
        .unwrap();
    assert_eq!(
        revoked["actor"],
        format!("officer:{ca_id}(ca-officer)"),
        "{revoked}"
    );
    let issue_rec = records
        .iter()
        .rev()
        .find(|r| r["action"] == "issue")
        .unwrap();
    assert_eq!(issue_rec["actor"], revoked["actor"]);
    // Its error comes back typed, as from the admin socket.
    remote_fails(
        &env,
        &server,
        &root,
        &ca,
        &[
            "revoke",
            "--serial",
            &serial,
            "--hierarchy",
            "signing",
            "--reason",
            "keyCompromise",
        ],
        "already revoked",
    );

    // A clerk of another municipality may not move the resident: 403, nothing changes.
    let before = state(&env, &resident);
    let err = remote_fails(
        &env,
        &server,
        &root,
        &minato,
        &[
            "resident",
            "move",
            "--id",
            &resident,
            "--address",
            "東京都港区芝公園４－２－８",
        ],
        "forbidden",
    );
    assert!(err.contains("Chiyoda-ku"), "{err}");
    assert_eq!(
        state(&env, &resident),
        before,
        "a refused move changed the store"
    );
    let refusal = last_refusal(&env);
    assert_eq!(refusal["subject"], "event");
    assert_eq!(refusal["detail"], "forbidden");
    assert!(
        refusal["actor"]
            .as_str()
            .unwrap()
            .ends_with("(municipal-clerk@Minato-ku)"),
        "{refusal}"
    );
    // The clerk of the resident's own municipality may.
    remote_ok(
        &env,
        &server,
        &root,
        &chiyoda,
        &[
            "resident",
            "move",
            "--id",
            &resident,
            "--address",
            "東京都千代田区丸の内１－１",
        ],
    );
    let moved = audit(&env)
        .into_iter()
        .rev()
        .find(|r| r["action"] == "event:move")
        .unwrap();
    assert!(
        moved["actor"]
            .as_str()
            .unwrap()
            .ends_with("(municipal-clerk@Chiyoda-ku)"),
        "{moved}"
    );

    // The auditor reads the audit trail but changes nothing.
    let log: serde_json::Value = serde_json::from_str(&remote_ok(
        &env,
        &server,
        &root,
        &auditor,
        &["audit", "log", "--json"],
    ))
    .unwrap();
    assert!(log["records"].as_array().unwrap().len() >= 5);
    remote_ok(&env, &server, &root, &auditor, &["audit", "verify"]);
    let before = state(&env, &resident);
    remote_fails(
        &env,
        &server,
        &root,
        &auditor,
        &["officer", "suspend", "--name", "Clerk Minato"],
        "forbidden",
    );
    remote_fails(
        &env,
        &server,
        &root,
        &auditor,
        &[
            "resident",
            "move",
            "--id",
            &resident,
            "--address",
            "東京都千代田区永田町１－７－１",
        ],
        "forbidden",
    );
    assert_eq!(state(&env, &resident), before);
    // A clerk may not add officers (a platform request, checked the same way).
    remote_fails(
        &env,
        &server,
        &root,
        &chiyoda,
        &[
            "officer",
            "add",
            "--name",
            "Intruder",
            "--role",
            "ca-officer",
            "--cert-out",
            &p(&env.path("intruder.pem")),
            "--key-out",
            &p(&env.path("intruder.key")),
        ],
        "forbidden",
    );
    assert!(!env.path("intruder.pem").exists());

    // The clerk's certificate renewed for a new key: the new key works, the old one is
    // refused (401) from the next request on.
    let renewed = Who {
        cert: env.path("chiyoda-2.pem"),
        key: env.path("chiyoda-2.key"),
    };
    remote_ok(
        &env,
        &server,
        &root,
        &ca,
        &[
            "officer",
            "renew",
            "--name",
            "Clerk Chiyoda",
            "--cert-out",
            &p(&renewed.cert),
            "--key-out",
            &p(&renewed.key),
        ],
    );
    remote_ok(
        &env,
        &server,
        &root,
        &renewed,
        &["resident", "show", "--id", &resident],
    );
    remote_fails(
        &env,
        &server,
        &root,
        &chiyoda,
        &["resident", "show", "--id", &resident],
        "unknown officer",
    );
    let r = audit(&env)
        .into_iter()
        .rev()
        .find(|r| r["action"] == "officer-renew")
        .unwrap();
    assert!(
        r["detail"].as_str().unwrap().contains("previous-cert="),
        "{r}"
    );

    // Suspended and revoked officers, and a key of no officer, are refused with 401.
    remote_ok(
        &env,
        &server,
        &root,
        &ca,
        &["officer", "suspend", "--name", "Resting"],
    );
    remote_ok(
        &env,
        &server,
        &root,
        &ca,
        &["officer", "revoke", "--name", "Gone"],
    );
    // The revocation also put Gone's certificate on the operator CA's CRL.
    let crl_der = env.data().join("certs").join("operator-ca.crl");
    let crl_pem = env.path("operator-ca-crl.pem");
    common::openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &p(&crl_der),
        "-out",
        &p(&crl_pem),
    ]);
    let (ok, out) =
        common::openssl_result(&["crl", "-in", &p(&crl_pem), "-CAfile", &p(&root), "-noout"]);
    assert!(ok && out.contains("verify OK"), "{out}");
    let (ok, out) = common::openssl_result(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &p(&crl_pem),
        "-CAfile",
        &p(&root),
        &p(&gone.cert),
    ]);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = common::openssl_result(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        &p(&crl_pem),
        "-CAfile",
        &p(&root),
        &p(&resting.cert),
    ]);
    assert!(
        ok,
        "a suspended officer's certificate is not revoked: {out}"
    );
    let before = state(&env, &resident);
    for (who, why) in [(&resting, "suspended"), (&gone, "revoked")] {
        let err = remote_fails(&env, &server, &root, who, &["audit", "log"], why);
        assert!(err.contains("is ") && err.lines().count() == 1, "{err}");
        let r = last_refusal(&env);
        assert_eq!(r["detail"], "officer_not_active");
        assert!(
            r["actor"]
                .as_str()
                .unwrap()
                .starts_with("unauthenticated:key="),
            "{r}"
        );
    }
    assert_eq!(state(&env, &resident), before);
    // A platform operator's certificate is from the same CA but names no officer.
    let pf = Who {
        cert: env.path("pf.pem"),
        key: env.path("pf.key"),
    };
    remote_ok(
        &env,
        &server,
        &root,
        &ca,
        &[
            "operator",
            "add",
            "--name",
            "PF One",
            "--cert-out",
            &p(&pf.cert),
            "--key-out",
            &p(&pf.key),
        ],
    );
    let before = state(&env, &resident);
    remote_fails(
        &env,
        &server,
        &root,
        &pf,
        &["audit", "log"],
        "unknown officer",
    );
    assert_eq!(last_refusal(&env)["detail"], "unknown_officer");
    // A certificate of another CA does not get through the handshake.
    let stranger_key = env.path("stranger.key");
    let stranger = env.path("stranger.pem");
    common::openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&stranger_key),
        "-subj",
        "/CN=Stranger",
        "-days",
        "30",
        "-out",
        &p(&stranger),
    ]);
    let refusals = audit(&env)
        .iter()
        .filter(|r| r["action"] == "refused")
        .count();
    let out = remote(
        &env,
        &server,
        &root,
        &Who {
            cert: stranger,
            key: stranger_key,
        },
        &["resident", "move", "--id", &resident, "--address", "x"],
    );
    assert!(
        !out.status.success(),
        "a stranger's certificate was accepted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the client certificate"), "{err}");
    assert_eq!(state(&env, &resident), before);
    assert_eq!(
        audit(&env)
            .iter()
            .filter(|r| r["action"] == "refused")
            .count(),
        refusals,
        "a handshake refusal reaches nothing"
    );
    // The chain is intact with every record made through the API.
    env.ok(&["audit", "verify"]);
    assert!(server.stop().success());
}

#[test]
fn the_rate_limit_answers_429_and_expired_certificates_are_refused() {
    let mut env = Env::empty();
    env.now = Some("2026-12-05T00:00:00Z".into());
    env.ok(&["init"]);
    let old = add_officer(&env, "Old", "auditor", None);
    // Thirteen months on: the first officers' certificates (one year) have expired.
    env.now = None;
    env.start = Some("2028-01-05T00:00:00Z".into());
    let root = operator_root(&env);
    let busy = add_officer(&env, "Busy", "auditor", None);
    let calm = add_officer(&env, "Calm", "auditor", None);
    let config = env.write(
        "serve.toml",
        b"[admin]\nrequests_per_minute = 1\nburst = 3\n",
    );
    let server = Server::start_with(
        &env,
        &["--admin-https", "127.0.0.1:0", "--config", &p(&config)],
    );

    // Expired: refused (at the handshake, by the server's clock).
    let out = remote(&env, &server, &root, &old, &["audit", "verify"]);
    assert!(
        !out.status.success(),
        "an expired officer certificate was accepted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CertificateExpired"), "{err}");

    // Three at once, then 429 with Retry-After (about a minute at one a minute).
    for _ in 0..3 {
        remote_ok(&env, &server, &root, &busy, &["audit", "verify"]);
    }
    let err = remote_fails(
        &env,
        &server,
        &root,
        &busy,
        &["audit", "verify"],
        "too many requests",
    );
    assert!(err.contains("try again in"), "{err}");
    let r = last_refusal(&env);
    assert_eq!(r["detail"], "rate_limited");
    assert!(r["actor"].as_str().unwrap().contains("(auditor)"), "{r}");
    // A second refusal of the same run is not audited again; another officer is not limited.
    let n = audit(&env).len();
    remote_fails(
        &env,
        &server,
        &root,
        &busy,
        &["audit", "verify"],
        "too many requests",
    );
    assert_eq!(audit(&env).len(), n);
    remote_ok(&env, &server, &root, &calm, &["audit", "verify"]);

    // The status and Retry-After header themselves, with a raw HTTPS client.
    let addr = server.admin.clone().unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            // The server's certificate is dated by the test clock, ahead of curl's: not
            // checked here (the CLI above checks it at the same clock as the server).
            "--insecure",
            "--cert",
            &p(&busy.cert),
            "--key",
            &p(&busy.key),
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"op":"audit-log"}"#,
            &format!("{addr}/v1/admin"),
        ])
        .output()
        .expect("curl runs");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/") && head.contains(" 429"), "{head}");
    assert!(head.contains("retry-after: "), "{head}");
    assert!(server.stop().success());
}

/// CRLs and OCSP over mutual TLS for registered verifiers (`--verifiers-https`): a verifier
/// and a platform operator get them, an officer (not a verifier) gets 403, a removed
/// verifier 401, a certificate of another CA does not get through the handshake.
#[test]
fn revocation_data_goes_to_registered_verifiers_only() {
    let env = Env::init();
    let root = operator_root(&env);
    let v = Who {
        cert: env.path("v.pem"),
        key: env.path("v.key"),
    };
    env.ok(&[
        "verifier",
        "add",
        "--name",
        "Bank A",
        "--cert-out",
        &p(&v.cert),
        "--key-out",
        &p(&v.key),
    ]);
    let pf = Who {
        cert: env.path("pf.pem"),
        key: env.path("pf.key"),
    };
    env.ok(&[
        "operator",
        "add",
        "--name",
        "PF One",
        "--cert-out",
        &p(&pf.cert),
        "--key-out",
        &p(&pf.key),
    ]);
    let auditor = add_officer(&env, "Auditor", "auditor", None);
    let list = env.json(&["verifier", "list"]);
    assert_eq!(list["verifiers"].as_array().unwrap().len(), 1);
    // The verifier has no admin power.
    let server = Server::start_with(
        &env,
        &[
            "--verifiers-https",
            "127.0.0.1:0",
            "--admin-https",
            "127.0.0.1:0",
        ],
    );
    remote_fails(&env, &server, &root, &v, &["audit", "log"], "forbidden");
    let base = server.verifiers.clone().expect("the verifiers' listener");
    let get = |who: &Who, path: &str| -> String {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &p(&root),
                "--cert",
                &p(&who.cert),
                "--key",
                &p(&who.key),
                &format!("{base}{path}"),
            ])
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The CA-level CRL of the authentication hierarchy (published at start).
    let crl = "/crl/auth/ca.crl";
    assert_eq!(get(&v, crl), "200", "a registered verifier is served");
    assert_eq!(get(&pf, crl), "200", "a platform operator is served");
    assert_eq!(get(&auditor, crl), "403", "an officer is no verifier");
    env.ok(&["verifier", "remove", "--name", "Bank A"]);
    assert_eq!(get(&v, crl), "401", "a removed verifier");
    env.fails(
        &["verifier", "remove", "--name", "Auditor"],
        "no registered verifier",
    );
    assert!(server.stop().success());
}
