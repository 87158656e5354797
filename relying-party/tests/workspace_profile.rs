//! The verifier against certificates shaped exactly as jpki issues them — built with
//! `policies::profile` (URI + directoryName CRL distribution points, issuerAltName, AIA,
//! critical certificatePolicies), CRLs from `crl-publisher` and OCSP answers from
//! `ocsp-responder` — with the document signed by `openssl cms -sign` or by the
//! `holder-token` (the card's stand-in). Nothing here is rcgen- or openssl-ca-shaped.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use policies::profile::{self, Holder, Scope, Window};
use policies::{Attributes, Hierarchy, Municipality, Policy, Reason, Sex};
use relying_party::{Fetch, Outcome, StatusSource, Verifier};
use time::{Duration, OffsetDateTime};

struct Key {
    pair: aws_lc_rs::signature::RsaKeyPair,
    spki: Vec<u8>,
    cert: Vec<u8>,
}

impl policies::Signer for Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, policies::SignError> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                msg,
                &mut sig,
            )
            .map_err(|_| policies::SignError("rsa".into()))?;
        Ok(sig)
    }
    fn certificate(&self) -> &[u8] {
        &self.cert
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An RSA-2048 key made by openssl (`NAME.key`, PEM) and loaded into aws-lc-rs.
fn key(dir: &Path, name: &str) -> Key {
    let pem = format!("{name}.key");
    openssl(dir, &["genrsa", "-out", &pem, "2048"]);
    let pkcs8 = openssl(
        dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER",
        ],
    );
    let spki = openssl(dir, &["pkey", "-in", &pem, "-pubout", "-outform", "DER"]);
    Key {
        pair: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap(),
        spki,
        cert: Vec::new(),
    }
}

fn signed(tbs: Vec<u8>, by: &Key) -> Vec<u8> {
    profile::assemble(&tbs, &policies::Signer::sign(by, &tbs).unwrap()).unwrap()
}

fn write_pem(dir: &Path, name: &str, der: &[u8]) {
    std::fs::write(dir.join(format!("{name}.der")), der).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            &format!("{name}.der"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A crl-publisher over `store` for the signing and auth roots, on the system clock.
fn publisher(
    policy: &Policy,
    [signing, auth]: [&Arc<Key>; 2],
    store: Arc<crl_publisher::MemoryStore>,
    dir: &Path,
) -> crl_publisher::Publisher {
    crl_publisher::Publisher::new(
        policy.clone(),
        crl_publisher::Settings {
            progress: false,
            ..Default::default()
        },
        crl_publisher::Roots {
            signing: signing.clone(),
            auth: auth.clone(),
        },
        store.clone(),
        store,
        dir.join("crl"),
        Arc::new(crl_publisher::SystemClock),
    )
    .unwrap()
}

/// A verifier for `policy` anchored at `root`, with status from the CRL `crl` (DER).
fn crl_verifier(root: &[u8], policy: &Policy, crl: &[u8]) -> Verifier {
    Verifier::new(
        root,
        Some(policy),
        StatusSource::CrlBytes(Arc::new(crl.to_vec())),
    )
    .unwrap()
}

#[test]
fn jpki_shaped_certificates_crls_and_ocsp_answers_verify() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let policy = Policy::default_policy();
    let now = OffsetDateTime::now_utc();
    let w = |serial: &'static [u8], years: i64| Window {
        serial,
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(365 * years),
    };

    let mut roots = Vec::new();
    for (h, name) in [(Hierarchy::Signing, "sroot"), (Hierarchy::Auth, "aroot")] {
        let mut k = key(dir, name);
        let tbs = profile::root_tbs(&policy, h, w(&[1], 10), &k.spki).unwrap();
        k.cert = signed(tbs, &k);
        write_pem(dir, name, &k.cert);
        roots.push(Arc::new(k));
    }
    let (sroot, aroot) = (roots[0].clone(), roots[1].clone());
    let root_kid = profile::key_identifier(&sroot.spki).unwrap();

    let attrs = Attributes::new(
        "山田　太郎",
        time::macros::date!(1980 - 02 - 17),
        Sex::Male,
        "東京都清瀬市中里一丁目1番地",
        &policy.limits,
        now.date(),
    )
    .unwrap();
    let holder = Holder::Signing {
        prefecture: "Tokyo-to",
        municipality: "Kiyose-shi",
        attributes: &attrs,
    };
    // Both holders live in Kiyose: one municipal CRL partition covers them.
    let kiyose = Scope::Municipal(Municipality::new("Tokyo-to", "Kiyose-shi").unwrap());
    for (name, serial) in [("good", &[0x10, 0x01][..]), ("revoked", &[0x10, 0x41][..])] {
        let k = key(dir, name);
        let serial: &'static [u8] = Box::leak(serial.to_vec().into_boxed_slice());
        let tbs = profile::leaf_tbs(
            &policy,
            &holder,
            &format!("2601ABCDEFGH{name:>2.2}05100203A").to_uppercase(),
            w(serial, 5),
            &kiyose,
            &k.spki,
            profile::Issuer {
                key_id: &root_kid,
                serial: &[1],
                generation: 1,
            },
        )
        .unwrap();
        write_pem(dir, name, &signed(tbs, &sroot));
    }
    std::fs::write(dir.join("doc.txt"), "確定申告書\n").unwrap();
    let sign = |name: &str| {
        openssl(
            dir,
            &[
                "cms",
                "-sign",
                "-binary",
                "-md",
                "sha256",
                "-in",
                "doc.txt",
                "-signer",
                &format!("{name}.pem"),
                "-inkey",
                &format!("{name}.key"),
                "-outform",
                "DER",
            ],
        )
    };
    let doc = std::fs::read(dir.join("doc.txt")).unwrap();
    let root_pem = std::fs::read(dir.join("sroot.pem")).unwrap();

    let store = Arc::new(crl_publisher::MemoryStore::new());
    store.revoke(
        Hierarchy::Signing,
        kiyose.clone(),
        crl_publisher::Entry {
            serial: vec![0x10, 0x41],
            revoked_at: now - Duration::minutes(5),
            reason: Reason::KeyCompromise,
            invalidity: None,
            not_after: now + Duration::days(365 * 5),
        },
    );
    let publisher = publisher(&policy, [&sroot, &aroot], store, dir);
    let crl = publisher
        .build(Hierarchy::Signing, 1, kiyose.clone(), now)
        .unwrap();
    let by_crl = crl_verifier(&root_pem, &policy, &crl.der);
    let r = by_crl.verify_document(&sign("good"), Some(&doc), None, now);
    assert!(r.is_valid(), "{}", r.render(false));
    let a = r.attributes.as_ref().unwrap();
    assert_eq!(
        (a.name.as_str(), a.birth.date.as_str(), a.birth.era),
        ("山田　太郎", "1980-02-17", "昭和")
    );
    assert_eq!(a.address, "東京都清瀬市中里一丁目1番地");
    assert_eq!(a.name_flags.as_deref(), Some("00000"));
    let r = by_crl.verify_document(&sign("revoked"), Some(&doc), None, now);
    assert_eq!(
        r.check("status").unwrap().outcome,
        Outcome::Fail,
        "{}",
        r.render(false)
    );
    assert!(r.check("status").unwrap().reason.contains("keyCompromise"));
    // Another municipality's CRL, and a serial partition's, do not speak for these
    // certificates.
    for other in [
        Scope::Municipal(Municipality::new("Tokyo-to", "Higashimurayama-shi").unwrap()),
        Scope::Partition(policy.partition_of(&[0x10, 0x01])),
    ] {
        let other = publisher.build(Hierarchy::Signing, 1, other, now).unwrap();
        let v = crl_verifier(&root_pem, &policy, &other.der);
        let r = v.verify_document(&sign("good"), Some(&doc), None, now);
        assert!(
            r.check("status").unwrap().reason.contains("does not cover"),
            "{}",
            r.render(false)
        );
    }

    // OCSP from the ocsp-responder crate with its delegated signer.
    let mut ocsp_key = key(dir, "ocsp");
    let tbs = profile::ocsp_signer_tbs(
        &policy,
        Hierarchy::Signing,
        w(&[2], 1),
        &ocsp_key.spki,
        &root_kid,
    )
    .unwrap();
    ocsp_key.cert = signed(tbs, &sroot);
    let source = Arc::new(ocsp_responder::MemorySource::new());
    source.issue(Hierarchy::Signing, &[0x10, 0x01]);
    source.revoke(
        Hierarchy::Signing,
        &[0x10, 0x41],
        now - Duration::minutes(5),
        Reason::CertificateHold,
    );
    let responder = ocsp_responder::Responder::new(
        ocsp_responder::Settings::from_policy(&policy),
        vec![ocsp_responder::Issuer {
            hierarchy: Hierarchy::Signing,
            root: sroot.cert.clone(),
            signer: Arc::new(ocsp_key),
        }],
        source,
        Arc::new(ocsp_responder::SystemClock),
    )
    .unwrap();
    let fetch: Fetch = Arc::new(move |_url: &str, post: Option<(&str, &[u8])>| {
        Ok(responder.answer_blocking(post.unwrap().1).der.to_vec())
    });
    let by_ocsp = Verifier::new(
        &root_pem,
        Some(&policy),
        StatusSource::Ocsp(policy.ocsp_url()),
    )
    .unwrap()
    .with_fetch(fetch);
    let r = by_ocsp.verify_document(&sign("good"), Some(&doc), None, now);
    assert!(r.is_valid(), "{}", r.render(false));
    let r = by_ocsp.verify_document(&sign("revoked"), Some(&doc), None, now);
    assert!(
        r.check("status").unwrap().reason.contains("on hold"),
        "{}",
        r.render(false)
    );
}

#[test]
fn the_holder_tokens_document_signature_and_login_verify() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let policy = Policy::default_policy();
    let now = OffsetDateTime::now_utc();
    let w = |serial: &'static [u8]| Window {
        serial,
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(365),
    };
    let mut roots = Vec::new();
    for (h, name) in [(Hierarchy::Signing, "sroot"), (Hierarchy::Auth, "aroot")] {
        let mut k = key(dir, name);
        k.cert = signed(profile::root_tbs(&policy, h, w(&[1]), &k.spki).unwrap(), &k);
        roots.push(Arc::new(k));
    }
    let mut token =
        holder_token::Token::create(&dir.join("card.json"), "PASSWORD1", "1234").unwrap();
    let attrs = Attributes::new(
        "鈴木　花子",
        time::macros::date!(1990 - 05 - 01),
        Sex::Female,
        "大阪府大阪市北区1-1",
        &policy.limits,
        now.date(),
    )
    .unwrap();
    let holders = [
        Holder::Signing {
            prefecture: "Osaka-fu",
            municipality: "Osaka-shi",
            attributes: &attrs,
        },
        Holder::Auth,
    ];
    let osaka = Scope::Municipal(Municipality::new("Osaka-fu", "Osaka-shi").unwrap());
    for (i, holder) in holders.iter().enumerate() {
        let root = &roots[i];
        let kid = profile::key_identifier(&root.spki).unwrap();
        let spki = token.public_key(holder.hierarchy()).to_vec();
        let serial: &'static [u8] = if i == 0 { &[0x20, 0x01] } else { &[0x20, 0x02] };
        let cert = signed(
            profile::leaf_tbs(
                &policy,
                holder,
                "2601CARD00000105100203A",
                w(serial),
                &osaka,
                &spki,
                profile::Issuer {
                    key_id: &kid,
                    serial: &[1],
                    generation: 1,
                },
            )
            .unwrap(),
            root,
        );
        assert_eq!(token.import_cert(&cert).unwrap(), holder.hierarchy());
    }
    let good = |root: &Key, h: Hierarchy| {
        // Status from an (empty) CRL of the right partition, made by crl-publisher.
        let store = Arc::new(crl_publisher::MemoryStore::new());
        let publisher = publisher(&policy, [&roots[0], &roots[1]], store, dir);
        let crl = publisher.build(h, 1, osaka.clone(), now).unwrap();
        crl_verifier(&root.cert, &policy, &crl.der)
    };
    let content = "令和8年分 確定申告書".as_bytes();
    for enc in [
        holder_token::Encapsulation::Detached,
        holder_token::Encapsulation::Attached,
    ] {
        let sig = token.sign_cms("PASSWORD1", content, enc, now).unwrap();
        let r = good(&roots[0], Hierarchy::Signing).verify_document(&sig, Some(content), None, now);
        assert!(r.is_valid(), "{enc:?}: {}", r.render(false));
        let a = r.attributes.unwrap();
        assert_eq!(
            (a.name.as_str(), a.birth.era, a.sex.code.as_str()),
            ("鈴木　花子", "平成", "2")
        );
    }
    let challenge = b"login challenge 0001";
    let sig = token.login("1234", challenge).unwrap();
    let cert = token.certificate(Hierarchy::Auth).unwrap().to_vec();
    let r = good(&roots[1], Hierarchy::Auth).verify_login(&cert, challenge, &sig, None, now);
    assert!(r.is_valid(), "{}", r.render(false));
    assert_eq!(r.account_key.as_deref(), Some("2002"));
}
