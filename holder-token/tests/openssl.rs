//! The token's outputs checked by an outside implementation: OpenSSL 3 verifies the CSR, the
//! CMS signatures (detached and attached) and the login signature. The test plays the CA
//! with `openssl x509 -req` from the token's own request.

use std::path::{Path, PathBuf};
use std::process::Command;

use holder_token::{Encapsulation, Error, Token};
use policies::Hierarchy;
use time::macros::datetime;

const SIGN: &str = "TAX2026";
const AUTH: &str = "4321";

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, text) = openssl(dir, args);
    assert!(success, "openssl {args:?} failed:\n{text}");
    text
}

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

/// `openssl req -x509`: a self-signed RSA certificate `cert` with its key `key`.
fn self_signed<'a>(key: &'a str, cert: &'a str, subj: &'a str, days: &'a str) -> [&'a str; 13] {
    [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-subj",
        subj, "-days", days,
    ]
}

/// `openssl x509 -req`: `csr` signed by the test root into `out`.
fn sign_csr<'a>(csr: &'a str, serial: &'a str, days: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-set_serial",
        serial,
        "-days",
        days,
        "-out",
        out,
    ]
}

/// `openssl cms -verify` of the DER `p7s` (detached when `content` is given) against `ca_file`.
fn cms_verify<'a>(
    p7s: &'a str,
    content: Option<&'a str>,
    ca_file: &'a str,
    out: &'a str,
) -> Vec<&'a str> {
    let mut args = vec!["cms", "-verify", "-binary", "-inform", "DER", "-in", p7s];
    if let Some(content) = content {
        args.extend(["-content", content]);
    }
    args.extend(["-CAfile", ca_file, "-purpose", "any", "-out", out]);
    args
}

/// `openssl dgst -sha256 -verify` of `login.sig` over `challenge.bin` with `pubkey`.
fn login_verify(pubkey: &str) -> [&str; 7] {
    [
        "dgst",
        "-sha256",
        "-verify",
        pubkey,
        "-signature",
        "login.sig",
        "challenge.bin",
    ]
}

/// A root made by openssl, and the token's certificate for `kind` issued from its CSR.
struct Fixture {
    dir: tempfile::TempDir,
    token: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("card.json");
        Token::create(&token, SIGN, AUTH).unwrap();
        ok(
            dir.path(),
            &self_signed("root.key", "root.pem", "/C=JP/O=Test/CN=Test Root", "30"),
        );
        Fixture { dir, token }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `openssl` in the fixture's directory: (success, stdout and stderr).
    fn openssl(&self, args: &[&str]) -> (bool, String) {
        openssl(self.dir.path(), args)
    }

    /// `openssl` in the fixture's directory, which must succeed; stdout and stderr.
    fn ok(&self, args: &[&str]) -> String {
        ok(self.dir.path(), args)
    }

    fn issue(&self, kind: Hierarchy, pin: &str, serial: &str) -> PathBuf {
        let mut t = Token::open(&self.token).unwrap();
        let csr = t.csr(kind, pin).unwrap();
        let name = kind.as_str();
        std::fs::write(
            self.path(&format!("{name}.csr")),
            pem("CERTIFICATE REQUEST", &csr),
        )
        .unwrap();
        self.ok(&sign_csr(
            &format!("{name}.csr"),
            serial,
            "10",
            &format!("{name}.pem"),
        ));
        self.path(&format!("{name}.pem"))
    }
}

#[test]
fn csr_verifies_with_openssl_and_carries_the_token_key() {
    let f = Fixture::new();
    let mut t = Token::open(&f.token).unwrap();
    for kind in Hierarchy::ALL {
        let pin = if kind == Hierarchy::Signing {
            SIGN
        } else {
            AUTH
        };
        let csr = t.csr(kind, pin).unwrap();
        std::fs::write(f.path("r.csr"), pem("CERTIFICATE REQUEST", &csr)).unwrap();
        let text = f.ok(&["req", "-in", "r.csr", "-verify", "-noout", "-subject"]);
        // OpenSSL 3.0 `req -verify` exits 0 even when the signature is bad: read the verdict
        assert!(text.contains("self-signature verify OK"), "{text}");
        assert!(text.contains("C = JP"), "{text}");
        // the request's public key is the token's
        f.ok(&[
            "req",
            "-in",
            "r.csr",
            "-pubkey",
            "-noout",
            "-out",
            "csr-pub.pem",
        ]);
        f.ok(&[
            "pkey",
            "-pubin",
            "-in",
            "csr-pub.pem",
            "-outform",
            "DER",
            "-out",
            "csr-pub.der",
        ]);
        assert_eq!(
            std::fs::read(f.path("csr-pub.der")).unwrap(),
            t.public_key(kind)
        );
        // a tampered request fails
        let mut bad = csr.clone();
        let n = bad.len() - 10;
        bad[n] ^= 1;
        std::fs::write(f.path("bad.csr"), pem("CERTIFICATE REQUEST", &bad)).unwrap();
        let (_, text) = f.openssl(&["req", "-in", "bad.csr", "-verify", "-noout"]);
        assert!(
            !text.contains("verify OK") && text.contains("verify failure"),
            "{text}"
        );
    }
}

#[test]
fn cms_signatures_verify_with_openssl() {
    let f = Fixture::new();
    let cert = f.issue(Hierarchy::Signing, SIGN, "4660");
    let mut t = Token::open(&f.token).unwrap();
    // no certificate yet: refused before the PIN, no try spent
    assert!(matches!(
        t.sign_cms(
            SIGN,
            b"x",
            Encapsulation::Detached,
            datetime!(2026-11-27 12:00 UTC)
        ),
        Err(Error::NoCertificate {
            kind: Hierarchy::Signing
        })
    ));
    assert!(matches!(
        t.sign_cms(
            "WRONG1",
            b"x",
            Encapsulation::Detached,
            datetime!(2026-11-27 12:00 UTC)
        ),
        Err(Error::NoCertificate { .. })
    ));
    assert_eq!(t.status().signing.tries_left, 5);
    assert_eq!(
        t.import_cert(&std::fs::read(&cert).unwrap()).unwrap(),
        Hierarchy::Signing
    );
    assert_eq!(
        t.status().signing.certificate_serial.as_deref(),
        Some("1234")
    );

    let doc = "令和8年分 確定申告書\nincome: 5,000,000 JPY\n".as_bytes();
    std::fs::write(f.path("doc.txt"), doc).unwrap();
    let detached = t
        .sign_cms(
            "tax2026",
            doc,
            Encapsulation::Detached,
            datetime!(2026-11-27 12:00 UTC),
        )
        .unwrap();
    std::fs::write(f.path("doc.p7s"), &detached).unwrap();
    let text = f.ok(&cms_verify(
        "doc.p7s",
        Some("doc.txt"),
        "root.pem",
        "/dev/null",
    ));
    assert!(text.contains("Verification successful"), "{text}");
    // the structure carries what the profile asks for
    let dump = f.ok(&[
        "cms", "-cmsout", "-print", "-inform", "DER", "-in", "doc.p7s", "-noout",
    ]);
    for needle in [
        "contentType",
        "messageDigest",
        "signingTime",
        "sha256",
        "sha256WithRSAEncryption",
        "UTCTIME:Nov 27 12:00:00 2026 GMT",
        "serialNumber: 4660",
        "eContent: <ABSENT>",
    ] {
        assert!(dump.contains(needle), "{needle} missing:\n{dump}");
    }

    // a changed document fails
    std::fs::write(f.path("doc2.txt"), b"income: 1 JPY\n").unwrap();
    let (verified, text) = f.openssl(&cms_verify(
        "doc.p7s",
        Some("doc2.txt"),
        "root.pem",
        "/dev/null",
    ));
    assert!(!verified, "{text}");

    // attached: the content comes out of the SignedData
    let attached = t
        .sign_cms(
            SIGN,
            doc,
            Encapsulation::Attached,
            datetime!(2026-11-27 12:00 UTC),
        )
        .unwrap();
    std::fs::write(f.path("att.p7s"), &attached).unwrap();
    f.ok(&cms_verify("att.p7s", None, "root.pem", "extracted.txt"));
    assert_eq!(std::fs::read(f.path("extracted.txt")).unwrap(), doc);

    // a signature from another root's world does not verify
    f.ok(&self_signed("o.key", "other.pem", "/CN=Other", "1"));
    assert!(
        !f.openssl(&cms_verify("att.p7s", None, "other.pem", "/dev/null"))
            .0
    );
}

#[test]
fn login_signature_verifies_with_openssl() {
    let f = Fixture::new();
    let mut t = Token::open(&f.token).unwrap();
    let challenge = b"nonce=8f3a; origin=https://myna.example";
    std::fs::write(f.path("challenge.bin"), challenge).unwrap();
    let sig = t.login(AUTH, challenge).unwrap();
    assert_eq!(sig.len(), 256);
    std::fs::write(f.path("login.sig"), &sig).unwrap();
    std::fs::write(
        f.path("pub.pem"),
        pem("PUBLIC KEY", t.public_key(Hierarchy::Auth)),
    )
    .unwrap();
    let text = f.ok(&login_verify("pub.pem"));
    assert!(text.contains("Verified OK"), "{text}");
    // the signing key did not make it
    std::fs::write(
        f.path("spub.pem"),
        pem("PUBLIC KEY", t.public_key(Hierarchy::Signing)),
    )
    .unwrap();
    assert!(!f.openssl(&login_verify("spub.pem")).0);
}

#[test]
fn import_cert_tells_the_kind_and_refuses_strangers() {
    let f = Fixture::new();
    let auth_pem = f.issue(Hierarchy::Auth, AUTH, "7");
    let mut t = Token::open(&f.token).unwrap();
    // DER works as well as PEM
    f.ok(&[
        "x509", "-in", "auth.pem", "-outform", "DER", "-out", "auth.der",
    ]);
    assert_eq!(
        t.import_cert(&std::fs::read(f.path("auth.der")).unwrap())
            .unwrap(),
        Hierarchy::Auth
    );
    assert_eq!(
        t.import_cert(&std::fs::read(&auth_pem).unwrap()).unwrap(),
        Hierarchy::Auth
    );
    let reopened = Token::open(&f.token).unwrap();
    assert_eq!(
        reopened.certificate(Hierarchy::Auth).unwrap(),
        std::fs::read(f.path("auth.der")).unwrap()
    );
    assert!(reopened.certificate(Hierarchy::Signing).is_none());
    // the root certificate is for neither key
    assert!(matches!(
        t.import_cert(&std::fs::read(f.path("root.pem")).unwrap()),
        Err(Error::CertMismatch)
    ));
    assert!(matches!(
        t.import_cert(b"not a certificate"),
        Err(Error::Certificate(_))
    ));
}
