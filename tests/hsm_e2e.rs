//! CA keys in a PKCS#11 token, end to end with the real binary and SoftHSM2: `jpki init
//! --pkcs11-module … --token … --pin-file …` generates the roots', OCSP signers' and operator
//! CA's keys inside the token (non-extractable, checked by GnuTLS `p11tool` where installed),
//! records the token in DIR/hsm.toml; then issue, revoke, CRL, OCSP and an OCSP-signer renewal
//! all sign through the token, checked by `openssl verify|crl|ocsp` (and the outside judges
//! when they are set up). Bad input — a wrong PIN, a missing or wrong module, a token label
//! that is not there, a token without the key — is refused with a clear error, changes
//! nothing, and the refusal is audited where there is a store.
//!
//! One SoftHSM2 directory per test process (`ca::hsm::softhsm::shared`, `SOFTHSM2_CONF` set
//! for the children), a token per test. Skipped, loudly, where SoftHSM2 is not installed.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use ca::hsm::softhsm;

const JUDGES: &str = "/work/shared/judges";

/// The tokens of this file, all made at the first test's start. The tests run in parallel
/// and share one SoftHSM2 directory: a token initialised by one test while another's `jpki`
/// enumerated the tokens made SoftHSM2 fail `C_GetTokenInfo` (CKR_GENERAL_ERROR) under load,
/// so no token is made while any test runs.
fn tokens() -> &'static [softhsm::SharedToken] {
    static TOKENS: std::sync::OnceLock<Vec<softhsm::SharedToken>> = std::sync::OnceLock::new();
    TOKENS.get_or_init(|| {
        ["jpki-story", "jpki-bad", "jpki-empty"]
            .iter()
            .filter_map(|label| softhsm::shared(label, "2468"))
            .collect()
    })
}

/// A token and the `init` arguments that put a data directory's keys in it.
struct Hsm {
    token: &'static softhsm::SharedToken,
    pin_file: PathBuf,
}

impl Hsm {
    fn new(env: &Env, label: &str) -> Option<Hsm> {
        let token = tokens().iter().find(|t| t.label == label)?;
        let pin_file = env.write(&format!("{label}.pin"), b"2468\n");
        Some(Hsm { token, pin_file })
    }

    fn init_args(&self) -> Vec<String> {
        vec![
            "init".into(),
            "--pkcs11-module".into(),
            p(&self.token.module),
            "--token".into(),
            self.token.label.clone(),
            "--pin-file".into(),
            p(&self.pin_file),
        ]
    }

    /// `p11tool --list-privkeys` of the token (GnuTLS, an outside view); `None` without it.
    fn p11tool(&self) -> Option<String> {
        let out = Command::new("p11tool")
            .args([
                "--provider",
                &p(&self.token.module),
                "--login",
                "--list-privkeys",
            ])
            .arg(format!("pkcs11:token={}", self.token.label))
            .env("GNUTLS_PIN", &self.token.pin)
            .env("SOFTHSM2_CONF", &self.token.conf)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "p11tool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// How many private keys labelled `label` the token holds (through the library).
    fn keys_labelled(&self, label: &str) -> usize {
        let t = ca::hsm::Token::open(&self.token.module, &self.token.label, &self.token.pin)
            .expect("open the token");
        match t.key(label) {
            Ok(_) => 1,
            Err(e) if e.code() == "hsm_no_key" => 0,
            Err(e) => panic!("{e}"),
        }
    }
}

fn judge(name: &str, args: &[String]) {
    let path = Path::new(JUDGES).join(name);
    if !path.exists() || !Path::new(JUDGES).join(".venv").exists() {
        eprintln!("{name}: judges not set up here, skipped (openssl checked above)");
        return;
    }
    let out = Command::new(&path).args(args).arg("-q").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name}: {text}");
    eprintln!("{name}: {}", text.lines().last().unwrap_or_default());
}

#[test]
fn the_whole_story_signs_through_the_token() {
    let env = Env::empty();
    let Some(hsm) = Hsm::new(&env, "jpki-story") else {
        return;
    };
    let args = hsm.init_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // With a token the CA passphrase is not needed.
    let out = env
        .cmd(&args)
        .env_remove("JPKI_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The token is recorded (0600), the PIN is not; no key file anywhere.
    let conf = env.data().join("hsm.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.contains("jpki-story") && !text.contains("2468"),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_dir(env.data().join("keys")).unwrap().count(),
        0,
        "no CA key file"
    );
    // Every CA key is in the token, sensitive and never extractable.
    for label in [
        "signing-root-g1",
        "auth-root-g1",
        "signing-ocsp",
        "auth-ocsp",
        "operator-root",
        "audit-checkpoint",
    ] {
        assert_eq!(hsm.keys_labelled(label), 1, "{label}");
    }
    if let Some(listed) = hsm.p11tool() {
        let keys: Vec<&str> = listed.split("Object ").skip(1).collect();
        assert_eq!(keys.len(), 6, "{listed}");
        for k in keys {
            assert!(
                k.contains("CKA_NEVER_EXTRACTABLE") && k.contains("CKA_SENSITIVE"),
                "{k}"
            );
            assert!(!k.contains("CKA_EXTRACTABLE;"), "{k}");
        }
    }

    // Certificates from the token's roots (no passphrase in the environment).
    let id = env.add_resident("郵便　花子", "1984-05-06");
    let (_ka, ca_csr) = env.csr("a", 2048);
    let (_ks, cs_csr) = env.csr("s", 2048);
    let a = env.issue(&id, "auth", &ca_csr);
    let out = env
        .cmd(&[
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            &p(&cs_csr),
            "--json",
        ])
        .env_remove("JPKI_PASSPHRASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    for (root, leaf) in [(&aroot, &apem), (&sroot, &spem)] {
        let out = openssl(&["verify", "-CAfile", &p(root), &p(leaf)]);
        assert!(out.contains(": OK"), "{out}");
    }
    judge("judge-cert", &[p(&apem), "--issuer".into(), p(&aroot)]);
    // The operator CA (its key in the token too) issued the first officer's certificate.
    let oproot = env.write(
        "oproot.pem",
        env.ok(&["root", "--hierarchy", "operator"]).as_bytes(),
    );
    let officer = env.data().join("officers").join("ca-officer.pem");
    let out = openssl(&["verify", "-CAfile", &p(&oproot), &p(&officer)]);
    assert!(out.contains(": OK"), "{out}");

    // Revoke, then the CRL, signed by the token's root.
    let a_serial = a["serial"].as_str().unwrap().to_owned();
    env.ok(&[
        "revoke",
        "--serial",
        &a_serial,
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);
    let crls = env.path("crls");
    env.ok(&["crl", "publish", "--out", &p(&crls)]);
    let crl = crls.join("auth").join("ca.crl");
    let mut partition = None;
    for e in walk(&crls.join("auth")) {
        if e.extension().is_some_and(|x| x == "crl") && e != crl {
            partition = Some(e);
        }
    }
    let partition = partition.expect("the holder's CRL partition");
    for c in [&crl, &partition] {
        let (ok, out) = openssl_result(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &p(c),
            "-CAfile",
            &p(&aroot),
            "-noout",
            "-text",
        ]);
        assert!(ok && out.contains("verify OK"), "{out}");
    }
    let (_, listed) = openssl_result(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &p(&partition),
        "-noout",
        "-text",
    ]);
    assert!(
        listed.contains(&format!("Serial Number: {a_serial}")) && listed.contains("Key Compromise"),
        "{listed}"
    );
    judge("judge-crl", &[p(&partition), p(&aroot)]);

    // OCSP answers signed by the delegated signer whose key is in the token.
    let server = Server::start(&env);
    let url = format!("{}/ocsp", server.base);
    let ocsp = |root: &Path, leaf: &Path| {
        openssl_result(&[
            "ocsp",
            "-issuer",
            &p(root),
            "-cert",
            &p(leaf),
            "-url",
            &url,
            "-CAfile",
            &p(root),
            "-timeout",
            "10",
        ])
        .1
    };
    let out = ocsp(&aroot, &apem);
    assert!(
        out.contains("Response verify OK") && out.contains(": revoked"),
        "{out}"
    );
    let out = ocsp(&sroot, &spem);
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    judge(
        "judge-ocsp",
        &[
            url.clone(),
            p(&sroot),
            p(&spem),
            "--expect".into(),
            "good".into(),
            "--nonce".into(),
            "optional".into(),
        ],
    );
    // The OCSP signer renewed through the running server: a new key in the token, the old
    // one destroyed, answers signed by the new one.
    let before = env.ok(&["ocsp-signer", "status", "--json"]);
    env.ok(&["ocsp-signer", "renew", "--hierarchy", "signing"]);
    let after = env.ok(&["ocsp-signer", "status", "--json"]);
    assert_ne!(before, after);
    let out = ocsp(&sroot, &spem);
    assert!(
        out.contains("Response verify OK") && out.contains(": good"),
        "{out}"
    );
    // The compromise ceremony (dual control) through the token: the old signer revoked, its
    // key destroyed in the token, answers from the new one.
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
    let officers = env.data().join("officers");
    let v = env.json(&[
        "ocsp-signer",
        "compromise",
        "--hierarchy",
        "auth",
        "--officer-cert",
        &p(&officers.join("ca-officer.pem")),
        "--officer-key",
        &p(&officers.join("ca-officer.key")),
        "--officer-cert",
        &p(&cert2),
        "--officer-key",
        &p(&key2),
    ]);
    assert!(v["replaced"]["serial"].is_string(), "{v}");
    let out = ocsp(&aroot, &apem);
    assert!(
        out.contains("Response verify OK") && out.contains(": revoked"),
        "{out}"
    );
    assert!(server.stop().success());
    assert_eq!(
        hsm.keys_labelled("auth-ocsp"),
        1,
        "the compromised key is gone"
    );
    assert_eq!(
        hsm.keys_labelled("signing-ocsp"),
        1,
        "the replaced key is gone"
    );
    assert_eq!(
        std::fs::read_dir(env.data().join("keys")).unwrap().count(),
        0,
        "still no CA key file"
    );
    // A root rollover under dual control: the new generation's key is made in the token too,
    // and the next certificate comes from it.
    let two = env.two_officers();
    let r = env.json(&Env::with_args(
        &["root", "rollover", "--hierarchy", "signing"],
        &two,
    ));
    assert_eq!(r["rolled_over"]["generation"], 2, "{r}");
    assert_eq!(hsm.keys_labelled("signing-root-g2"), 1);
    assert_eq!(
        hsm.keys_labelled("signing-root-g1"),
        1,
        "the old generation keeps its key"
    );
    let (_k2, cs2) = env.csr("s2", 2048);
    let id2 = env.add_resident("二代　目子", "1990-01-02");
    let s2 = env.issue(&id2, "signing", &cs2);
    let s2pem = env.write("s2.pem", s2["pem"].as_str().unwrap().as_bytes());
    let sroot2 = env.write(
        "sroot2.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );
    let out = openssl(&["verify", "-CAfile", &p(&sroot2), &p(&s2pem)]);
    assert!(out.contains(": OK"), "{out}");
    assert_eq!(
        std::fs::read_dir(env.data().join("keys")).unwrap().count(),
        0,
        "still no CA key file after the rollover"
    );
    let verified = env.json(&["audit", "verify"]);
    assert!(verified["records"].as_u64().unwrap() > 5, "{verified}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn bad_token_input_is_refused_and_changes_nothing() {
    let env = Env::empty();
    let Some(hsm) = Hsm::new(&env, "jpki-bad") else {
        return;
    };
    let args = hsm.init_args();
    let with = |i: usize, v: &str| -> Vec<String> {
        let mut a = args.clone();
        a[i] = v.to_owned();
        a
    };
    // At init: nothing is made for a wrong PIN, a module that is missing or is no module, a
    // token label that is not there.
    let wrong_pin = env.write("wrong.pin", b"1111\n");
    for (bad, needle) in [
        (with(6, &p(&wrong_pin)), "wrong PIN for token `jpki-bad`"),
        (
            with(2, "/nonexistent/libpkcs11.so"),
            "/nonexistent/libpkcs11.so does not load as a PKCS#11 module",
        ),
        (
            with(2, &p(&hsm.pin_file)),
            "does not load as a PKCS#11 module",
        ),
        (
            with(4, "no-such-token"),
            "no token labelled `no-such-token`",
        ),
    ] {
        let owned: Vec<String> = bad;
        let a: Vec<&str> = owned.iter().map(String::as_str).collect();
        env.fails(&a, needle);
        assert!(!env.data().exists(), "{a:?} left a data directory");
    }
    assert_eq!(hsm.keys_labelled("signing-root-g1"), 0);

    // A good init, then the same failures when the recorded token is opened.
    let good: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&good);
    let id = env.add_resident("郵便　太郎", "1980-01-02");
    let (_k, csr) = env.csr("h", 2048);
    env.issue(&id, "auth", &csr);
    let issue = [
        "issue",
        "--resident",
        &id,
        "--kind",
        "auth",
        "--csr",
        &p(&csr),
        "--early-renewal",
        "test",
    ];
    let state = || {
        (
            env.ok(&["cert", "list", "--json"]),
            env.ok(&["resident", "show", "--id", &id, "--json"]),
        )
    };
    let refusals = |log: &str| log.matches(" refused ").count();
    let conf = env.data().join("hsm.toml");
    let recorded = std::fs::read_to_string(&conf).unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            recorded.replace(&p(&hsm.pin_file), &p(&wrong_pin)),
            "wrong PIN for token `jpki-bad`",
            "hsm_pin",
        ),
        (
            recorded
                .lines()
                .filter(|l| !l.starts_with("pin_file"))
                .collect::<Vec<_>>()
                .join("\n"),
            "no PIN for token `jpki-bad`",
            "hsm_pin",
        ),
        (
            recorded.replace(&p(&hsm.token.module), "/nonexistent/libpkcs11.so"),
            "does not load as a PKCS#11 module",
            "hsm_module",
        ),
        (
            recorded.replace("\"jpki-bad\"", "\"no-such-token\""),
            "no token labelled `no-such-token`",
            "hsm",
        ),
    ];
    for (text, needle, code) in cases {
        let before = state();
        let log_before = env.ok(&["audit", "log"]);
        std::fs::write(&conf, &text).unwrap();
        env.fails(&issue, needle);
        std::fs::write(&conf, &recorded).unwrap();
        let log_after = env.ok(&["audit", "log"]);
        // The refusal is audited (with its stable code); nothing else changed.
        assert_eq!(
            refusals(&log_after),
            refusals(&log_before) + 1,
            "{log_after}"
        );
        let last = log_after.lines().last().unwrap();
        assert!(last.contains("refused") && last.contains(code), "{last}");
        assert_eq!(state(), before, "{code}: nothing changes");
    }
    // A token without the key: a fresh token under the recorded label's place.
    let Some(empty) = Hsm::new(&env, "jpki-empty") else {
        return;
    };
    let before = state();
    std::fs::write(&conf, recorded.replace("\"jpki-bad\"", "\"jpki-empty\"")).unwrap();
    env.fails(
        &issue,
        "token `jpki-empty` holds no private key for auth-root",
    );
    std::fs::write(&conf, &recorded).unwrap();
    assert_eq!(state(), before);
    let log = env.ok(&["audit", "log"]);
    assert!(log.lines().last().unwrap().contains("hsm_no_key"), "{log}");
    drop(empty);

    // `jpki serve` with a wrong PIN stops at start, naming it.
    let out = env
        .cmd(&["serve", "--http", "127.0.0.1:0"])
        .env("JPKI_HSM_PIN", "1111")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong PIN"), "{err}");

    // A token that already holds a data directory's keys is refused for another.
    let other = Env::empty();
    other.fails(&good, "already holds a key labelled `signing-root-g1`");
    assert!(!other.data().exists());
    // And the directory still works with the right PIN.
    let (_k2, csr2) = env.csr("h2", 2048);
    env.issue(&id, "signing", &csr2);
}
