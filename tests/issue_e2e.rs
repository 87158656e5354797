//! End to end: `jpki init`, holder CSRs from `openssl req`, both kinds issued, then outside
//! checks — `openssl verify` (chain), `openssl x509 -text` (every expected extension) and
//! x509-parser decoding the SAN back to the resident's four attributes.

mod common;
use common::*;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

fn other_name_value(raw: &[u8]) -> String {
    // [0] EXPLICIT UTF8String: A0 len 0C len bytes (short lengths here).
    assert_eq!(raw[0], 0xA0);
    assert_eq!(raw[2], 0x0C);
    String::from_utf8(raw[4..].to_vec()).unwrap()
}

#[test]
fn issue_both_kinds_and_check_them_with_openssl_and_x509_parser() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k1, sign_csr) = env.csr("sign", 2048);
    let (_k2, auth_csr) = env.csr("auth", 2048);
    let auth = env.issue(&id, "auth", &auth_csr);
    let sign = env.issue(&id, "signing", &sign_csr);
    assert_eq!(sign["kind"], "signing");
    assert_eq!(auth["kind"], "auth");
    let sign_pem = env.write("sign.pem", sign["pem"].as_str().unwrap().as_bytes());
    let auth_pem = env.write("auth.pem", auth["pem"].as_str().unwrap().as_bytes());
    let sroot = env.write(
        "sroot.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );
    let aroot = env.write(
        "aroot.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    assert_eq!(
        env.json(&["root", "--hierarchy", "auth"])["pem"].as_str(),
        Some(std::fs::read_to_string(&aroot).unwrap().as_str()),
        "root --json carries the same PEM"
    );

    // Chains: each leaf verifies under its own root and not under the other.
    let out = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        &p(&sroot),
        &p(&sign_pem),
    ]);
    assert!(out.contains(": OK"), "{out}");
    openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        &p(&aroot),
        &p(&auth_pem),
    ]);
    let (ok, _) = openssl_result(&["verify", "-CAfile", &p(&aroot), &p(&sign_pem)]);
    assert!(
        !ok,
        "a signing certificate must not verify under the auth root"
    );

    // Every expected extension, as OpenSSL prints it.
    let text = openssl(&[
        "x509",
        "-noout",
        "-text",
        "-nameopt",
        "RFC2253",
        "-in",
        &p(&sign_pem),
    ]);
    for needle in [
        "X509v3 Key Usage: critical",
        "Digital Signature, Non Repudiation",
        "X509v3 Certificate Policies: critical",
        "Policy: 1.2.392.200149.8.5.1.1.20",
        "CPS: http://www.jpki.go.jp/cps.html",
        "X509v3 Subject Alternative Name",
        "X509v3 Issuer Alternative Name",
        "X509v3 CRL Distribution Points",
        "OU = CRL Distribution Points",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
        "Signature Algorithm: sha256WithRSAEncryption",
        "Public-Key: (2048 bit)",
        "Subject: CN=",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
    assert!(
        text.contains("L=Chiyoda-ku,L=Tokyo,C=JP"),
        "subject shape:\n{text}"
    );
    assert!(
        !text.contains("Requested Name") && !text.contains("CA:TRUE"),
        "requested names or extensions were copied:\n{text}"
    );
    // The real profile: distribution points name a directory only, and the signing
    // certificate carries no OCSP URL (both are policy options, off by default).
    assert!(
        !text.contains("URI:http") && !text.contains("Authority Information Access"),
        "{text}"
    );
    let auth_text = openssl(&["x509", "-noout", "-text", "-in", &p(&auth_pem)]);
    assert!(auth_text.contains("Policy: 1.2.392.200149.8.5.1.3.30"));
    for needle in [
        "X509v3 Extended Key Usage: \n                TLS Web Client Authentication",
        "X509v3 Certificate Policies: critical",
        "OCSP - URI:http://127.0.0.1:8080/ocsp",
    ] {
        assert!(
            auth_text.contains(needle),
            "missing `{needle}` in\n{auth_text}"
        );
    }
    // The subjectKeyIdentifier is the last extension of both (reference §3), and the
    // authorityKeyIdentifier names the root's key id, DN and serial.
    for pem in [&sign_pem, &auth_pem] {
        let der = pem_der(&std::fs::read(pem).unwrap());
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let last = cert.extensions().last().unwrap();
        assert_eq!(last.oid.to_id_string(), "2.5.29.14");
        let x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) =
            cert.extensions()[cert.extensions().len() - 2].parsed_extension()
        else {
            panic!("the AKI comes before the SKI");
        };
        assert!(aki.key_identifier.is_some());
        assert_eq!(aki.authority_cert_serial, Some(&[0x01][..]));
        assert!(matches!(
            aki.authority_cert_issuer.as_deref(),
            Some([GeneralName::DirectoryName(n)]) if n.as_raw() == cert.issuer().as_raw()
        ));
    }
    assert!(auth_text.contains("Digital Signature") && !auth_text.contains("Non Repudiation"));
    assert!(
        !auth_text.contains("Subject Alternative Name"),
        "auth certificates carry no personal data"
    );

    // The SAN decodes back to the four attributes, in the real cards' order.
    let der = pem_der(&std::fs::read(&sign_pem).unwrap());
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let values: Vec<(String, String)> = san
        .value
        .general_names
        .iter()
        .map(|g| match g {
            GeneralName::OtherName(oid, raw) => (oid.to_id_string(), other_name_value(raw)),
            other => panic!("unexpected SAN entry {other:?}"),
        })
        .collect();
    let want = [
        ("1.2.392.200149.8.5.5.1", "山田　花子"),
        ("1.2.392.200149.8.5.5.4", "319850412"),
        ("1.2.392.200149.8.5.5.3", "2"),
        ("1.2.392.200149.8.5.5.5", "東京都千代田区霞が関２－１－２"),
        ("1.2.392.200149.8.5.5.2", "00000"),
        ("1.2.392.200149.8.5.5.6", "000000000000000"),
    ];
    assert_eq!(
        values,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );

    // The notAfter is 23:59:59 JST on the 5th birthday (the card expires later).
    assert!(
        sign["not_after"]
            .as_str()
            .unwrap()
            .ends_with("-04-12T14:59:59Z"),
        "{}",
        sign["not_after"]
    );
    assert_eq!(sign["not_after"], auth["not_after"]);

    // A move revokes the signing certificate only.
    let out = env.json(&[
        "resident",
        "move",
        "--id",
        &id,
        "--address",
        "神奈川県横浜市中区日本大通１",
        "--prefecture",
        "Kanagawa",
        "--municipality",
        "Yokohama-shi",
    ]);
    assert_eq!(out["revocations"].as_array().unwrap().len(), 1);
    let s = env.json(&[
        "cert",
        "show",
        "--serial",
        sign["serial"].as_str().unwrap(),
        "--hierarchy",
        "signing",
    ]);
    assert_eq!(s["status"], "revoked");
    assert_eq!(s["reason"], "affiliationChanged");
    let a = env.json(&[
        "cert",
        "show",
        "--serial",
        auth["serial"].as_str().unwrap(),
        "--hierarchy",
        "auth",
    ]);
    assert_eq!(a["status"], "good");

    // A new signing certificate carries the new address; the audit chain is intact.
    let (_k3, csr3) = env.csr("sign2", 2048);
    let sign2 = env.issue(&id, "signing", &csr3);
    let der2 = pem_der(sign2["pem"].as_str().unwrap().as_bytes());
    let (_, c2) = parse_x509_certificate(&der2).unwrap();
    assert!(c2.subject().to_string().contains("Yokohama-shi"));
    let v = env.json(&["audit", "verify"]);
    assert_eq!(v["intact"], true);
}

#[test]
fn renewal_supersedes_and_keys_stay_with_their_holder() {
    let env = Env::init();
    let a = env.add_resident("佐藤　一", "1970-01-01");
    let b = env.add_resident("鈴木　二", "1971-01-01");
    let (_k, csr) = env.csr("k", 2048);
    let first = env.issue(&a, "auth", &csr);
    // Years before the renewal window opens: an early renewal needs a reason.
    let second = env.json(&[
        "issue",
        "--resident",
        &a,
        "--kind",
        "auth",
        "--csr",
        csr.to_str().unwrap(),
        "--early-renewal",
        "card chip replaced",
    ]);
    assert_eq!(second["superseded"], first["serial"]);
    let old = env.json(&[
        "cert",
        "show",
        "--serial",
        first["serial"].as_str().unwrap(),
    ]);
    assert_eq!(old["reason"], "superseded");
    let before = env.snapshot(&[&a, &b]);
    env.fails(
        &[
            "issue",
            "--resident",
            &b,
            "--kind",
            "auth",
            "--csr",
            csr.to_str().unwrap(),
        ],
        "already certified",
    );
    env.fails(
        &[
            "issue",
            "--resident",
            &a,
            "--kind",
            "signing",
            "--csr",
            csr.to_str().unwrap(),
        ],
        "already certified",
    );
    assert_eq!(before, env.snapshot(&[&a, &b]));
}

#[test]
fn serials_are_sequential_per_hierarchy_by_default() {
    let env = Env::init();
    let id = env.add_resident("田中　三郎", "1960-06-30");
    let (_k, csr) = env.csr("k", 2048);
    let c = env.issue(&id, "auth", &csr);
    // Serial 1 is the root, 2 the OCSP signer.
    assert_eq!(c["serial"], "03");
    let (_k, csr) = env.csr("s", 2048);
    let c = env.issue(&id, "signing", &csr);
    assert_eq!(c["serial"], "03", "one counter per hierarchy");
}

#[test]
fn random_serials_when_the_policy_asks() {
    let env = Env::empty();
    let pf = env.write("policy.toml", random_serials_policy().as_bytes());
    env.ok(&["init", "--policy", pf.to_str().unwrap()]);
    let id = env.add_resident("田中　三郎", "1960-06-30");
    let (_k, csr) = env.csr("k", 2048);
    let c = env.issue(&id, "auth", &csr);
    // 16 octets, the first below 0x80.
    let serial = c["serial"].as_str().unwrap();
    assert_eq!(serial.len(), 32, "{serial}");
    assert!(serial.as_bytes()[0] <= b'7', "{serial}");
}

/// PEM or DER bytes → DER.
fn pem_der(bytes: &[u8]) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(bytes).unwrap();
    p.contents
}
