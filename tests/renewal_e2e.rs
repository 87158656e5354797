//! Years of operation with the clock moved (`JPKI_TEST_NOW` for commands, `JPKI_TEST_START`
//! for `jpki serve`): the delegated OCSP signers renew themselves (at a server's start, and from
//! cron with `jpki ocsp-signer renew --if-due`), a platform operator renews its client
//! certificate, and throughout OCSP (checked by `openssl ocsp` at the server's time), the CRLs,
//! the platform API (mutual TLS with `openssl s_client` at the server's time) and `jpki verify`
//! keep working and the audit chain verifies. Then key safety: a key revoked for keyCompromise
//! is refused for ever, and infrastructure serials cannot be held or revoked.

mod common;
use common::*;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// Runs `f` with the commands' clock fixed at `t`.
fn commands_at(env: &mut Env, t: OffsetDateTime) {
    env.now = Some(at(t));
    env.start = None;
}

/// Starts `jpki serve` whose clock starts at `t` (commands meanwhile go through its socket).
fn serve_at(env: &mut Env, t: OffsetDateTime, pf: bool) -> Server {
    env.now = None;
    env.start = Some(at(t));
    let s = if pf {
        Server::start_with(env, &["--pf-https", "127.0.0.1:0"])
    } else {
        Server::start(env)
    };
    // Commands run meanwhile read the same instant (the server's clock has moved a few
    // seconds at most; they reach the store through the server anyway).
    env.now = Some(at(t));
    env.start = None;
    s
}

struct Files {
    root: String,
    cert: String,
    sig: String,
    doc: String,
    operator_root: String,
}

/// `openssl ocsp` against the server, verified against the root at `t` (the answer's times
/// are the server's, years away from the real clock: `-validity_period` accepts that).
fn ocsp_status(server: &Server, f: &Files, t: OffsetDateTime) -> String {
    let out = openssl(&[
        "ocsp",
        "-issuer",
        &f.root,
        "-cert",
        &f.cert,
        "-url",
        &format!("{}/ocsp", server.base),
        "-CAfile",
        &f.root,
        "-attime",
        &t.unix_timestamp().to_string(),
        "-validity_period",
        "400000000",
        "-timeout",
        "10",
        "-resp_text",
    ]);
    assert!(
        out.contains("Response verify OK") || out.contains(": good"),
        "{out}"
    );
    out
}

/// `jpki verify` as of `t` (the document's signingTime is the real clock's: `--at` says when).
fn verify(env: &Env, f: &Files, how: &str, source: &str, t: OffsetDateTime) -> serde_json::Value {
    let out = env.run(&[
        "verify",
        "--trust",
        &f.root,
        "--sig",
        &f.sig,
        "--content",
        &f.doc,
        how,
        source,
        "--at",
        &at(t),
        "--json",
    ]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// One HTTPS request over mutual TLS with `openssl s_client`, every certificate checked at
/// `t`: the CA-level CRL through the platform listener (it answers after the PF check).
fn pf_get(server: &Server, f: &Files, cert: &str, key: &str, t: OffsetDateTime) -> String {
    let host = server.pf.as_ref().unwrap().trim_start_matches("https://");
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            host,
            "-cert",
            cert,
            "-key",
            key,
            "-CAfile",
            &f.operator_root,
            "-verify_return_error",
            "-attime",
            &t.unix_timestamp().to_string(),
            "-quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        let _ = stdin.write_all(
            b"GET /crl/signing/ca.crl HTTP/1.1\r\nHost: pf\r\nConnection: close\r\n\r\n",
        );
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn signer_serials(env: &Env) -> Vec<String> {
    let v = env.json(&["ocsp-signer", "status"]);
    v["expiries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "ocsp-signer")
        .map(|e| e["serial"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether every hierarchy's signer changed. `signer_serials` lists them in the same
/// hierarchy order every time; sequential serials repeat across hierarchies, so the lists are
/// compared hierarchy by hierarchy, not as sets.
fn renewed(before: &[String], after: &[String]) -> bool {
    before.len() == after.len() && before.iter().zip(after).all(|(b, a)| a != b)
}

fn audit_count(env: &Env, action: &str) -> usize {
    let v = env.json(&["audit", "log"]);
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == action)
        .count()
}

fn metrics(server: &Server) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("{}/metrics", server.base)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything a relying party and a platform operator use, at the server's time `t`.
fn all_works(env: &Env, server: &Server, f: &Files, t: OffsetDateTime) {
    let out = ocsp_status(server, f, t);
    assert!(out.contains(": good"), "{out}");
    let v = verify(env, f, "--ocsp", &format!("{}/ocsp", server.base), t);
    assert_eq!(v["verdict"], "valid", "OCSP at {t}: {v}");
    let audit = env.json(&["audit", "verify"]);
    assert_eq!(audit["intact"], true, "{audit}");
}

#[test]
fn years_of_operation_renew_what_the_service_depends_on() {
    let mut env = Env::empty();
    let t0 = time::macros::datetime!(2027-01-05 01:00 UTC);
    commands_at(&mut env, t0);
    env.ok(&["init"]);
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (key, csr) = env.csr("holder", 2048);
    let sign = env.issue(&id, "signing", &csr);
    let partition = common::partition_path(&sign["partition"]);
    let cert = env.write("sign.pem", sign["pem"].as_str().unwrap().as_bytes());
    let root = env.write(
        "root.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );
    let operator_root = env.write(
        "operator-root.pem",
        env.ok(&["root", "--hierarchy", "operator"]).as_bytes(),
    );
    let doc = env.write("return.xml", "<申告書/>".as_bytes());
    let sig = env.path("return.p7s");
    openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-md",
        "sha256",
        "-in",
        &p(&doc),
        "-signer",
        &p(&cert),
        "-inkey",
        &p(&key),
        "-outform",
        "DER",
        "-out",
        &p(&sig),
    ]);
    let f = Files {
        root: p(&root),
        cert: p(&cert),
        sig: p(&sig),
        doc: p(&doc),
        operator_root: p(&operator_root),
    };
    let crl_url = |server: &Server| format!("{}/crl/signing/{}.crl", server.base, partition);
    let check = |env: &Env, server: &Server, t: OffsetDateTime| {
        all_works(env, server, &f, t);
        let v = verify(env, &f, "--crl", &crl_url(server), t);
        assert_eq!(v["verdict"], "valid", "CRL at {t}: {v}");
    };
    let signers0 = signer_serials(&env);
    let status = env.json(&["ocsp-signer", "status"]);
    let signer_end = OffsetDateTime::parse(
        status["expiries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["what"] == "ocsp-signer")
            .unwrap()["not_after"]
            .as_str()
            .unwrap(),
        &Rfc3339,
    )
    .unwrap();
    assert_eq!(signer_end, time::macros::datetime!(2028-01-05 14:59:59 UTC));

    // Year 0: a platform operator registers; everything works; nothing is due.
    let server = serve_at(&mut env, t0 + time::Duration::hours(1), true);
    let (pf1, pf1_key) = (env.path("pf1.pem"), env.path("pf1.key"));
    env.ok(&[
        "operator",
        "add",
        "--name",
        "Example PF",
        "--cert-out",
        &p(&pf1),
        "--key-out",
        &p(&pf1_key),
    ]);
    let t = t0 + time::Duration::hours(1);
    check(&env, &server, t);
    let out = pf_get(&server, &f, &p(&pf1), &p(&pf1_key), t);
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    let m = metrics(&server);
    assert!(
        m.contains(
            "jpki_certificate_expiry_seconds{certificate=\"ocsp-signer\",hierarchy=\"signing\""
        ),
        "{m}"
    );
    assert!(m.contains("certificate=\"pf-server\""), "{m}");
    assert!(
        m.contains("jpki_certificate_within_margin{certificate=\"ocsp-signer\",hierarchy=\"signing\",serial=\""),
        "{m}"
    );
    assert!(
        !m.lines()
            .any(|l| l.starts_with("jpki_certificate_within_margin") && l.ends_with(" 1")),
        "nothing is within its margin in year 0: {m}"
    );
    assert_eq!(audit_count(&env, "ocsp-signer-renew"), 0);
    server.stop();

    // Year 1 minus the margin, plus a day: the server renews both signers at start.
    let tb = signer_end - time::Duration::days(29);
    let server = serve_at(&mut env, tb, true);
    assert_eq!(audit_count(&env, "ocsp-signer-renew"), 2);
    let signers1 = signer_serials(&env);
    assert!(renewed(&signers0, &signers1), "{signers0:?} {signers1:?}");
    check(&env, &server, tb);
    let out = ocsp_status(&server, &f, tb);
    // The answer carries the renewed signer certificate. OpenSSL prints a serial that fits
    // in 63 bits as `N (0xN)` (sequential serials, the default) and a longer one as
    // colon-separated lower-case hex.
    let shown = |s: &str| {
        if s.len() <= 16 && u64::from_str_radix(s, 16).is_ok_and(|n| n < 1 << 63) {
            let n = u64::from_str_radix(s, 16).unwrap();
            return format!("Serial Number: {n} (0x{n:x})");
        }
        s.as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_lowercase())
            .collect::<Vec<_>>()
            .join(":")
    };
    assert!(
        out.contains(&shown(&signers1[0])),
        "the answer should carry signer {}: {out}",
        signers1[0]
    );
    assert!(!out.contains(&shown(&signers0[0])), "{out}");
    let m = metrics(&server);
    assert!(m.contains(&format!("serial=\"{}\"", signers1[0])), "{m}");
    // The operator renews its client certificate; both work until the old one's notAfter.
    let (pf2, pf2_key) = (env.path("pf2.pem"), env.path("pf2.key"));
    env.ok(&[
        "operator",
        "renew",
        "--name",
        "Example PF",
        "--cert-out",
        &p(&pf2),
        "--key-out",
        &p(&pf2_key),
    ]);
    assert!(pf_get(&server, &f, &p(&pf1), &p(&pf1_key), tb).contains("HTTP/1.1 200"));
    assert!(pf_get(&server, &f, &p(&pf2), &p(&pf2_key), tb).contains("HTTP/1.1 200"));
    assert_eq!(audit_count(&env, "pf-renew"), 1);
    server.stop();

    // Year 1 plus a day: the first signers and the first client certificate have expired.
    let tc = signer_end + time::Duration::days(1);
    let server = serve_at(&mut env, tc, true);
    assert_eq!(
        audit_count(&env, "ocsp-signer-renew"),
        2,
        "nothing more was due"
    );
    check(&env, &server, tc);
    let out = pf_get(&server, &f, &p(&pf1), &p(&pf1_key), tc);
    assert!(
        !out.contains("HTTP/1.1 200"),
        "an expired client certificate: {out}"
    );
    let out = pf_get(&server, &f, &p(&pf2), &p(&pf2_key), tc);
    assert!(
        out.contains("HTTP/1.1 200"),
        "the renewed client certificate: {out}"
    );
    server.stop();

    // Without a server, from cron: not due yet, then due a year on.
    commands_at(&mut env, tc);
    let v = env.json(&["ocsp-signer", "renew", "--if-due"]);
    assert_eq!(v["renewed"].as_array().unwrap().len(), 0, "{v}");
    let td = tb + time::Duration::days(340);
    commands_at(&mut env, td);
    let v = env.json(&["ocsp-signer", "renew", "--if-due"]);
    assert_eq!(v["renewed"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(audit_count(&env, "ocsp-signer-renew"), 4);
    let signers2 = signer_serials(&env);
    assert!(renewed(&signers1, &signers2), "{signers1:?} {signers2:?}");

    // Year 3: the cron-renewed signers have expired too; the server renews at start, the
    // operator renews again, and everything still works.
    let te = t0 + time::Duration::days(3 * 365 + 1);
    let server = serve_at(&mut env, te, true);
    assert_eq!(audit_count(&env, "ocsp-signer-renew"), 6);
    check(&env, &server, te);
    let (pf3, pf3_key) = (env.path("pf3.pem"), env.path("pf3.key"));
    assert!(!pf_get(&server, &f, &p(&pf2), &p(&pf2_key), te).contains("HTTP/1.1 200"));
    env.ok(&[
        "operator",
        "renew",
        "--name",
        "Example PF",
        "--cert-out",
        &p(&pf3),
        "--key-out",
        &p(&pf3_key),
    ]);
    assert!(pf_get(&server, &f, &p(&pf3), &p(&pf3_key), te).contains("HTTP/1.1 200"));
    let m = metrics(&server);
    assert!(
        m.contains(&format!(
            "hierarchy=\"signing\",serial=\"{}\"",
            signer_serials(&env)[0]
        )),
        "{m}"
    );
    server.stop();
    commands_at(&mut env, te);
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["intact"], true, "{v}");
}

#[test]
fn a_compromised_key_is_refused_for_ever_and_infrastructure_serials_are_untouchable() {
    let env = Env::init();
    let a = env.add_resident("山田　花子", "1985-04-12");
    let b = env.add_resident("佐藤　太郎", "1990-01-01");
    let (_, csr) = env.csr("holder", 2048);
    let cert = env.issue(&a, "auth", &csr);
    let serial = cert["serial"].as_str().unwrap().to_owned();
    env.ok(&["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    assert_eq!(audit_count(&env, "key-block"), 1);
    let before = env.snapshot(&[&a, &b]);
    for (who, kind) in [(&a, "auth"), (&b, "auth"), (&a, "signing"), (&b, "signing")] {
        env.fails(
            &[
                "issue",
                "--resident",
                who,
                "--kind",
                kind,
                "--csr",
                &p(&csr),
            ],
            "revoked for keyCompromise",
        );
    }
    assert_eq!(
        env.snapshot(&[&a, &b]),
        before,
        "a refused issuance changes nothing"
    );
    // Another key is fine.
    let (_, csr2) = env.csr("holder2", 2048);
    env.issue(&a, "auth", &csr2);

    // Roots and OCSP signers cannot be held or revoked as if they were leaves.
    let status = env.json(&["ocsp-signer", "status"]);
    let before = env.snapshot(&[&a, &b]);
    for e in status["expiries"].as_array().unwrap() {
        let s = e["serial"].as_str().unwrap();
        let h = e["hierarchy"].as_str().unwrap();
        env.fails(
            &[
                "revoke",
                "--serial",
                s,
                "--hierarchy",
                h,
                "--reason",
                "keyCompromise",
            ],
            "infrastructure certificate",
        );
        env.fails(
            &["hold", "--serial", s, "--hierarchy", h],
            "infrastructure certificate",
        );
    }
    assert_eq!(env.snapshot(&[&a, &b]), before, "nothing changed");
}

#[test]
fn a_renewal_with_a_wrong_passphrase_changes_nothing() {
    let env = Env::init();
    let before = (
        env.snapshot(&[]),
        std::fs::read(env.data().join("keys/signing-ocsp.key")).unwrap(),
        std::fs::read(env.data().join("certs/signing-ocsp.pem")).unwrap(),
    );
    let out = env
        .cmd(&["ocsp-signer", "renew", "--hierarchy", "signing"])
        .env("JPKI_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong key passphrase"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let after = (
        env.snapshot(&[]),
        std::fs::read(env.data().join("keys/signing-ocsp.key")).unwrap(),
        std::fs::read(env.data().join("certs/signing-ocsp.pem")).unwrap(),
    );
    assert_eq!(after, before);
    assert!(!env.data().join("keys/signing-ocsp.key.new").exists());
    // With the right one it renews, and says so.
    let out = env.ok(&["ocsp-signer", "renew", "--hierarchy", "signing"]);
    assert!(out.contains("signing: OCSP signer"), "{out}");
}

#[test]
fn operator_renewal_refuses_bad_input_and_changes_nothing() {
    let mut env = Env::init();
    let (cert, key) = (env.path("pf.pem"), env.path("pf.key"));
    env.ok(&[
        "operator",
        "add",
        "--name",
        "PF One",
        "--cert-out",
        &p(&cert),
        "--key-out",
        &p(&key),
    ]);
    let (other, other_key) = (env.path("two.pem"), env.path("two.key"));
    env.ok(&[
        "operator",
        "add",
        "--name",
        "PF Two",
        "--cert-out",
        &p(&other),
        "--key-out",
        &p(&other_key),
    ]);
    let before = env.snapshot(&[]);
    let (new, new_key) = (p(&env.path("new.pem")), p(&env.path("new.key")));
    // Too early: renewal opens 60 days before the client certificate's notAfter.
    env.fails(
        &[
            "operator",
            "renew",
            "--name",
            "PF One",
            "--cert-out",
            &new,
            "--key-out",
            &new_key,
        ],
        "renewal opens on",
    );
    assert_eq!(env.snapshot(&[]), before, "nothing changed");
    assert!(!env.path("new.pem").exists() && !env.path("new.key").exists());
    // The rest inside the window (330 days on).
    env.now = Some(at(OffsetDateTime::now_utc() + time::Duration::days(330)));
    let before = env.snapshot(&[]);
    env.fails(
        &[
            "operator",
            "renew",
            "--name",
            "Nobody",
            "--cert-out",
            &new,
            "--key-out",
            &new_key,
        ],
        "unknown platform operator `Nobody`",
    );
    env.fails(
        &["operator", "renew", "--name", "PF One", "--cert-out", &new],
        "give --key-out",
    );
    env.fails(
        &[
            "operator",
            "renew",
            "--name",
            "PF One",
            "--cert-out",
            &p(&cert),
            "--key-out",
            &new_key,
        ],
        "already exists",
    );
    // Another operator's key, by CSR.
    let csr = env.path("two.csr");
    openssl(&[
        "req",
        "-new",
        "-key",
        &p(&other_key),
        "-subj",
        "/CN=two",
        "-out",
        &p(&csr),
    ]);
    env.fails(
        &[
            "operator",
            "renew",
            "--name",
            "PF One",
            "--csr",
            &p(&csr),
            "--cert-out",
            &new,
        ],
        "already registered to platform operator",
    );
    env.ok(&["operator", "revoke", "--name", "PF Two"]);
    let before_revoked = env.snapshot(&[]);
    assert_ne!(before, before_revoked);
    env.fails(
        &[
            "operator",
            "renew",
            "--name",
            "PF Two",
            "--cert-out",
            &new,
            "--key-out",
            &new_key,
        ],
        "is revoked",
    );
    assert_eq!(env.snapshot(&[]), before_revoked, "nothing changed");
    assert!(!env.path("new.pem").exists() && !env.path("new.key").exists());
    // Renewing with the same key (by CSR) is allowed: both certificates carry it.
    let csr = env.path("one.csr");
    openssl(&[
        "req",
        "-new",
        "-key",
        &p(&key),
        "-subj",
        "/CN=one",
        "-out",
        &p(&csr),
    ]);
    let out = env.ok(&[
        "operator",
        "renew",
        "--name",
        "PF One",
        "--csr",
        &p(&csr),
        "--cert-out",
        &new,
    ]);
    assert!(out.contains("PF One") && out.contains("renewed"), "{out}");
}

/// `jpki ocsp-signer compromise` through a running server: the old signer is revoked
/// (keyCompromise, answered as such by OCSP), the very next answer — even for a request whose
/// answer was cached — is signed by the replacement, and the audit chain verifies.
#[test]
fn a_compromised_ocsp_signer_is_replaced_at_once_and_never_signs_again() {
    let env = Env::init();
    let a = env.add_resident("山田　花子", "1985-04-12");
    let (_, csr) = env.csr("holder", 2048);
    let cert = env.issue(&a, "auth", &csr);
    let leaf = env.write("leaf.pem", cert["pem"].as_str().unwrap().as_bytes());
    let root = env.write(
        "root.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    let old_signer = env.path("old-signer.pem");
    std::fs::copy(env.data().join("certs/auth-ocsp.pem"), &old_signer).unwrap();
    let old_serial = signer_serials(&env)[1].clone();
    // Dual control: the first ca-officer (made by init) and a second one approve.
    let (cert2, key2) = (env.path("second.pem"), env.path("second.key"));
    env.ok(&[
        "officer",
        "add",
        "--name",
        "second",
        "--role",
        "ca-officer",
        "--key-out",
        &p(&key2),
        "--cert-out",
        &p(&cert2),
    ]);
    let first = env.data().join("officers");
    let (cert1, key1) = (first.join("ca-officer.pem"), first.join("ca-officer.key"));
    let server = Server::start(&env);
    // `openssl ocsp` fails (and `openssl` panics) unless the answer verifies against the root.
    let query = |cert: &std::path::Path| {
        openssl(&[
            "ocsp",
            "-issuer",
            &p(&root),
            "-cert",
            &p(cert),
            "-url",
            &format!("{}/ocsp", server.base),
            "-CAfile",
            &p(&root),
            "-no_nonce",
            "-timeout",
            "10",
            "-resp_text",
        ])
    };
    // Serial as `openssl -text` prints a short one: `N (0xN)`.
    let printed = |hex: &str| {
        let n = u64::from_str_radix(hex, 16).unwrap();
        format!("Serial Number: {n} (0x{n:x})")
    };
    let out = query(&leaf);
    assert!(out.contains(": good"), "{out}");
    assert!(out.contains(&printed(&old_serial)), "{out}");
    let again = query(&leaf);
    assert!(again.contains(&printed(&old_serial)), "{again}");

    // One officer is not enough; the second signs its approval apart.
    let one = [
        "ocsp-signer",
        "compromise",
        "--hierarchy",
        "auth",
        "--officer-cert",
        &p(&cert1),
        "--officer-key",
        &p(&key1),
    ];
    env.fails(
        &one,
        "needs the approval of two distinct ca-officers; got 1",
    );
    let approval = env.path("second-approval.json");
    env.ok(&[
        "ceremony",
        "approve",
        "--operation",
        "ocsp-signer-compromise",
        "--subject",
        "auth",
        "--cert",
        &p(&cert2),
        "--key",
        &p(&key2),
        "--out",
        &p(&approval),
    ]);
    let mut both = one.to_vec();
    both.extend(["--approval", approval.to_str().unwrap()]);
    let v = env.json(&both);
    assert_eq!(v["replaced"]["replaced"], old_serial.as_str(), "{v}");
    let new_serial = v["replaced"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(signer_serials(&env)[1], new_serial);
    assert_eq!(audit_count(&env, "ocsp-signer-compromise"), 1);
    let log = env.ok(&["audit", "log"]);
    let record = log
        .lines()
        .find(|l| l.contains("ocsp-signer-compromise") && !l.contains("refused"))
        .unwrap();
    assert!(
        record.contains("dual control: officer:OF") && record.contains("(second)"),
        "{record}"
    );

    // The cached answer of the old key is gone: the same request is answered by the new one.
    let out = query(&leaf);
    assert!(out.contains(": good"), "{out}");
    assert!(out.contains(&printed(&new_serial)), "{out}");
    assert!(!out.contains(&printed(&old_serial)), "{out}");
    // The old signer itself is revoked for keyCompromise.
    let out = query(&old_signer);
    assert!(out.contains(": revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    // It cannot be compromised "again" as a leaf either, and the audit chain holds.
    env.fails(
        &["hold", "--serial", &old_serial, "--hierarchy", "auth"],
        "infrastructure certificate",
    );
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["intact"], true, "{v}");
    server.stop();
}
