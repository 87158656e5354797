//! Root generations share one DN: the verifier must pick a certificate's issuer among them by
//! key (AKI keyIdentifier and authorityCertSerialNumber), never by name. Checked on real J-LIS
//! certificates (`tests/real-jpki/README.md`): a 2019 authentication leaf issued by
//! generation 1, with generations 1 and 3 of the authentication root as anchors.

use std::sync::Arc;

use relying_party::{Outcome, StatusSource, Verifier};
use time::OffsetDateTime;

const LEAF: &[u8] = include_bytes!("real-jpki/auth-leaf-2019.cer");
const AUTHCA01: &[u8] = include_bytes!("real-jpki/authca01.cer");
const AUTHCA03: &[u8] = include_bytes!("real-jpki/authca03.cer");
const SIGNCA01: &[u8] = include_bytes!("real-jpki/signca01.cer");
const SIGNCA03: &[u8] = include_bytes!("real-jpki/signca03.cer");

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[test]
fn the_generation_that_issued_a_real_leaf_is_picked_by_key() {
    let (_, leaf) = x509_parser::parse_x509_certificate(LEAF).unwrap();
    let (_, g1) = x509_parser::parse_x509_certificate(AUTHCA01).unwrap();
    let (_, g3) = x509_parser::parse_x509_certificate(AUTHCA03).unwrap();
    // The premise: both generations carry the leaf's issuer name.
    assert_eq!(leaf.issuer().as_raw(), g1.subject().as_raw());
    assert_eq!(leaf.issuer().as_raw(), g3.subject().as_raw());

    let pick = |anchors: &[&[u8]]| {
        let v: Vec<Vec<u8>> = anchors.iter().map(|a| a.to_vec()).collect();
        relying_party::path::pick_anchor(&leaf, &v)
    };
    assert_eq!(
        pick(&[AUTHCA03, AUTHCA01]),
        Some(1),
        "generation 1 issued it"
    );
    assert_eq!(pick(&[AUTHCA01, AUTHCA03]), Some(0));
    assert_eq!(pick(&[AUTHCA03]), None, "the same name alone is not enough");
    assert_eq!(
        pick(&[SIGNCA01, SIGNCA03]),
        None,
        "another hierarchy's roots"
    );
}

fn chain_check(anchors: &str) -> (Outcome, String) {
    let v = Verifier::new(
        anchors.as_bytes(),
        None,
        StatusSource::CrlUrl("http://127.0.0.1:9/none.crl".into()),
    )
    .unwrap()
    .with_fetch(Arc::new(|_, _| {
        Err(relying_party::Error::TrustAnchor(
            "no network in this test".into(),
        ))
    }));
    // 2020-09-13: inside the leaf's and generation 1's validity.
    let at = OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
    let r = v.verify_login(LEAF, b"challenge", &[0u8; 256], Some(at), at);
    let c = r.checks.iter().find(|c| c.name == "chain").unwrap();
    (c.outcome, c.reason.clone())
}

#[test]
fn verify_accepts_the_real_leaf_with_every_generation_installed() {
    // Newest generation first: the verifier must not take the first anchor with the name.
    let (outcome, detail) = chain_check(&format!("{}{}", pem(AUTHCA03), pem(AUTHCA01)));
    assert_eq!(outcome, Outcome::Pass, "{detail}");
    assert!(
        detail.contains("9567951B5CA70D84A0FFF1D85A87F1AAB1340385"),
        "generation 1's key id is named: {detail}"
    );
    // Generation 3 alone: same DN, other key — refused, and the reason names the key ids.
    let (outcome, detail) = chain_check(&pem(AUTHCA03));
    assert_eq!(outcome, Outcome::Fail, "{detail}");
}
