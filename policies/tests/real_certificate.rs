//! jpki's end-entity profiles against a real JPKI certificate, extension by extension.
//!
//! The fixtures are real J-LIS certificates (`fixtures/real-jpki/README.md` says where they
//! come from). jpki's authentication leaf is built with the production organisation
//! (`O=JPKI`), the real leaf's key, serial, CN and dates, and the real root's key identifier
//! and serial, so that everything the profile decides can be compared with the real bytes;
//! only the URLs (jpki's own responder) and the CRL partition's name differ.

use policies::policy::Policy;
use policies::profile::{self, Holder, Issuer, Scope, Window};
use policies::{lint, oid, Attributes, Hierarchy, Municipality, Sex};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;

const REAL_AUTH: &[u8] = include_bytes!("fixtures/real-jpki/auth-leaf-2019.cer");
const AUTH_ROOT: &[u8] = include_bytes!("fixtures/real-jpki/authca01.cer");
const SIGN_ROOT: &[u8] = include_bytes!("fixtures/real-jpki/signca01.cer");

fn cert(der: &[u8]) -> X509Certificate<'_> {
    let (rest, c) = X509Certificate::from_der(der).expect("a certificate");
    assert!(rest.is_empty());
    c
}

/// The production policy: `O=JPKI`, as on the real certificates.
fn production() -> Policy {
    let mut p = Policy::default_policy();
    p.ca.organization = "JPKI".into();
    p
}

fn ski_of(c: &X509Certificate<'_>) -> Vec<u8> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("the root has a subjectKeyIdentifier")
}

fn ids(exts: &[X509Extension<'_>]) -> Vec<(String, bool)> {
    exts.iter()
        .map(|e| (e.oid.to_id_string(), e.critical))
        .collect()
}

fn ext<'a>(
    exts: &'a [X509Extension<'a>],
    id: &const_oid::ObjectIdentifier,
) -> &'a X509Extension<'a> {
    exts.iter()
        .find(|e| e.oid.to_id_string() == id.to_string())
        .unwrap_or_else(|| panic!("extension {id} missing"))
}

/// The one directoryName of a cRLDistributionPoints extension, as (attribute type, value) pairs.
fn crl_dp_directory(e: &X509Extension<'_>) -> Vec<(String, String)> {
    let ParsedExtension::CRLDistributionPoints(dps) = e.parsed_extension() else {
        panic!("not a cRLDistributionPoints");
    };
    assert_eq!(dps.points.len(), 1, "one distribution point");
    let dp = &dps.points[0];
    assert!(dp.reasons.is_none() && dp.crl_issuer.is_none());
    let Some(DistributionPointName::FullName(names)) = &dp.distribution_point else {
        panic!("a fullName");
    };
    let [GeneralName::DirectoryName(dn)] = names.as_slice() else {
        panic!("the fullName is one directoryName only, got {names:?}");
    };
    dn.iter_attributes()
        .map(|a| {
            (
                a.attr_type().to_id_string(),
                a.as_str().expect("string").to_owned(),
            )
        })
        .collect()
}

/// The full authorityKeyIdentifier form: key id, one directoryName, serial.
fn aki_parts(e: &X509Extension<'_>) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ParsedExtension::AuthorityKeyIdentifier(aki) = e.parsed_extension() else {
        panic!("not an authorityKeyIdentifier");
    };
    let kid = aki
        .key_identifier
        .as_ref()
        .expect("keyIdentifier")
        .0
        .to_vec();
    let names = aki
        .authority_cert_issuer
        .as_ref()
        .expect("authorityCertIssuer");
    let [GeneralName::DirectoryName(dn)] = names.as_slice() else {
        panic!("authorityCertIssuer is one directoryName, got {names:?}");
    };
    let serial = aki
        .authority_cert_serial
        .expect("authorityCertSerialNumber");
    (kid, dn.as_raw().to_vec(), serial.to_vec())
}

fn jpki_auth_leaf(
    policy: &Policy,
    real: &X509Certificate<'_>,
    root: &X509Certificate<'_>,
) -> Vec<u8> {
    let root_kid = ski_of(root);
    let cn = real
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .expect("a CN");
    let w = Window {
        serial: real.raw_serial(),
        not_before: real.validity().not_before.to_datetime(),
        not_after: real.validity().not_after.to_datetime(),
    };
    let issuer = Issuer {
        key_id: &root_kid,
        serial: root.raw_serial(),
        generation: 1,
    };
    // The real holder's municipality, as its distribution point names it.
    let crl = Scope::Municipal(Municipality::new("Ibaraki-ken", "Tsukuba-shi").unwrap());
    let tbs = profile::leaf_tbs(
        policy,
        &Holder::Auth,
        cn,
        w,
        &crl,
        real.public_key().raw,
        issuer,
    )
    .expect("TBS");
    let expect = lint::Expect {
        hierarchy: Hierarchy::Auth,
        shape: lint::Shape::Auth,
        issuer: Some(issuer),
        crl: Some(&crl),
    };
    assert_eq!(lint::lint(policy, &tbs, &expect), vec![]);
    tbs
}

#[test]
fn the_authentication_leaf_has_the_real_extensions() {
    let policy = production();
    let real = cert(REAL_AUTH);
    let root = cert(AUTH_ROOT);
    let tbs_der = jpki_auth_leaf(&policy, &real, &root);
    let (_, ours) =
        x509_parser::certificate::TbsCertificate::from_der(&tbs_der).expect("jpki's TBS");

    // The same names, key, serial and validity as the real one (built from them), and the
    // same encodings: the issuer and subject DER are byte for byte the real ones.
    assert_eq!(ours.issuer().as_raw(), real.issuer().as_raw());
    assert_eq!(ours.subject().as_raw(), real.subject().as_raw());
    assert_eq!(ours.raw_serial(), real.raw_serial());
    assert_eq!(
        ours.signature.algorithm.to_id_string(),
        real.signature_algorithm.algorithm.to_id_string()
    );
    assert!(profile::is_leaf_cn(
        real.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
    ));

    // The list: the same extensions, in the same order, with the same criticality:
    // KU, EKU, CP, IAN, CRLDP, AIA, AKI, SKI.
    let (re, oe) = (real.extensions(), ours.extensions());
    assert_eq!(ids(oe), ids(re));
    let want = [
        (oid::EXT_KEY_USAGE, true),
        (oid::EXT_EKU, false),
        (oid::EXT_CERT_POLICIES, true),
        (oid::EXT_IAN, false),
        (oid::EXT_CRL_DP, false),
        (oid::EXT_AIA, false),
        (oid::EXT_AKI, false),
        (oid::EXT_SKI, false),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(o, c)| (o.to_string(), *c)).collect();
    assert_eq!(
        ids(re),
        want,
        "the real certificate, as reference §3 reports it"
    );

    // Extension by extension. Byte for byte where the profile decides everything:
    for id in [
        oid::EXT_KEY_USAGE,     // digitalSignature
        oid::EXT_EKU,           // id-kp-clientAuth
        oid::EXT_CERT_POLICIES, // 1.2.392.200149.8.5.1.3.30 + CPS http://www.jpki.go.jp/cps.html
        oid::EXT_IAN,           // the root's Japanese directoryName
        oid::EXT_AKI,           // root key id + root DN + root serial
        oid::EXT_SKI,           // SHA-1 of the key (RFC 5280 §4.2.1.2 method 1)
    ] {
        assert_eq!(
            ext(oe, &id).value,
            ext(re, &id).value,
            "extension {id} differs from the real one"
        );
    }
    // The AKI form, spelled out: the root's key id, its name, its serial.
    let (kid, dn, serial) = aki_parts(ext(oe, &oid::EXT_AKI));
    assert_eq!(kid, ski_of(&root));
    assert_eq!(dn, root.subject().as_raw());
    assert_eq!(serial, root.raw_serial());

    // authorityInfoAccess: one OCSP location by URI (the real one is J-LIS's responder).
    for e in [ext(oe, &oid::EXT_AIA), ext(re, &oid::EXT_AIA)] {
        let ParsedExtension::AuthorityInfoAccess(aia) = e.parsed_extension() else {
            panic!("not an authorityInfoAccess");
        };
        assert_eq!(aia.accessdescs.len(), 1);
        assert_eq!(
            aia.accessdescs[0].access_method.to_id_string(),
            oid::AD_OCSP.to_string()
        );
        assert!(matches!(
            aia.accessdescs[0].access_location,
            GeneralName::URI(u) if u.starts_with("http://")
        ));
    }
    assert_eq!(
        ext(oe, &oid::EXT_AIA).value,
        // The same extension with jpki's responder URL.
        {
            let url = policy.ocsp_url();
            let mut v = vec![0x30, (url.len() + 14) as u8, 0x30, (url.len() + 12) as u8];
            v.extend_from_slice(&[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]);
            v.extend_from_slice(&[0x86, url.len() as u8]);
            v.extend_from_slice(url.as_bytes());
            v
        }
    );

    // cRLDistributionPoints: one point, a directoryName only (no URI), under the hierarchy's
    // `OU=CRL Distribution Points`, then the holder's prefecture (OU) and municipality (CN
    // `<municipality> CRLDP`): the municipal partition, byte for byte the real extension
    // (C PrintableString, the rest UTF8String).
    assert_eq!(
        ext(oe, &oid::EXT_CRL_DP).value,
        ext(re, &oid::EXT_CRL_DP).value,
        "the municipal distribution point is the real one"
    );
    let real_dn = crl_dp_directory(ext(re, &oid::EXT_CRL_DP));
    let our_dn = crl_dp_directory(ext(oe, &oid::EXT_CRL_DP));
    let (c, o, ou, cn) = ("2.5.4.6", "2.5.4.10", "2.5.4.11", "2.5.4.3");
    let head = [
        (c, "JP"),
        (o, "JPKI"),
        (ou, "JPKI for user authentication"),
        (ou, "CRL Distribution Points"),
    ];
    for dn in [&real_dn, &our_dn] {
        let got: Vec<(&str, &str)> = dn.iter().map(|(t, v)| (t.as_str(), v.as_str())).collect();
        assert_eq!(got[..4], head, "{dn:?}");
        let (t, v) = got.last().unwrap();
        assert!(*t == cn && v.ends_with(" CRLDP"), "{dn:?}");
    }
    assert_eq!(real_dn[4], (ou.to_owned(), "Ibaraki-ken".to_owned()));
    assert_eq!(our_dn, real_dn);
}

#[test]
fn the_signing_leaf_has_the_same_tail_and_aki_form() {
    let policy = production();
    let root = cert(SIGN_ROOT);
    let real_auth = cert(REAL_AUTH);
    let root_kid = ski_of(&root);
    let attrs = Attributes::new(
        "森　鷗外",
        time::macros::date!(1980 - 02 - 17),
        Sex::Male,
        "茨城県つくば市研究学園一丁目1番地1",
        &policy.limits,
        time::macros::date!(2019 - 07 - 25),
    )
    .unwrap();
    let holder = Holder::Signing {
        prefecture: "Ibaraki-ken",
        municipality: "Tsukuba-shi",
        attributes: &attrs,
    };
    let issuer = Issuer {
        key_id: &root_kid,
        serial: root.raw_serial(),
        generation: 1,
    };
    let w = Window {
        serial: &[0x01, 0x2d, 0x57, 0xcb],
        not_before: real_auth.validity().not_before.to_datetime(),
        not_after: real_auth.validity().not_after.to_datetime(),
    };
    let crl = Scope::Municipal(Municipality::new("Ibaraki-ken", "Tsukuba-shi").unwrap());
    let tbs_der = profile::leaf_tbs(
        &policy,
        &holder,
        "840444E37PAFHN08220004A",
        w,
        &crl,
        real_auth.public_key().raw,
        issuer,
    )
    .unwrap();
    let expect = lint::Expect {
        hierarchy: Hierarchy::Signing,
        shape: lint::Shape::Signing { attributes: &attrs },
        issuer: Some(issuer),
        crl: Some(&crl),
    };
    assert_eq!(lint::lint(&policy, &tbs_der, &expect), vec![]);
    let (_, ours) = x509_parser::certificate::TbsCertificate::from_der(&tbs_der).unwrap();
    assert_eq!(ours.issuer().as_raw(), root.subject().as_raw());

    // KU, SAN (the four attributes), CP (critical), IAN, CRLDP, AKI, SKI: the real
    // authentication certificate's tail (…CRLDP, [AIA], AKI, SKI last), no extendedKeyUsage,
    // and no OCSP URL by default (none is reported on real signing certificates).
    let want = [
        (oid::EXT_KEY_USAGE, true),
        (oid::EXT_SAN, false),
        (oid::EXT_CERT_POLICIES, true),
        (oid::EXT_IAN, false),
        (oid::EXT_CRL_DP, false),
        (oid::EXT_AKI, false),
        (oid::EXT_SKI, false),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(o, c)| (o.to_string(), *c)).collect();
    let oe = ours.extensions();
    assert_eq!(ids(oe), want);
    // The tail after certificatePolicies is the real authentication certificate's, less
    // its authorityInfoAccess: IAN, CRLDP, AKI, SKI.
    let real_ids = ids(real_auth.extensions());
    let real_tail: Vec<_> = [&real_ids[3], &real_ids[4], &real_ids[6], &real_ids[7]]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(ids(oe)[3..], real_tail[..]);

    // The AKI has the real form: the signing root's key id, name and serial.
    let (kid, dn, serial) = aki_parts(ext(oe, &oid::EXT_AKI));
    assert_eq!(kid, root_kid);
    assert_eq!(dn, root.subject().as_raw());
    assert_eq!(serial, root.raw_serial());

    // With the policy's OCSP option, the AIA goes where the real certificate has it:
    // before the AKI.
    let mut open = policy.clone();
    open.signing.ocsp_url = true;
    let tbs_der = profile::leaf_tbs(
        &open,
        &holder,
        "840444E37PAFHN08220004A",
        w,
        &crl,
        real_auth.public_key().raw,
        issuer,
    )
    .unwrap();
    let (_, ours) = x509_parser::certificate::TbsCertificate::from_der(&tbs_der).unwrap();
    let got = ids(ours.extensions());
    assert_eq!(got[5], (oid::EXT_AIA.to_string(), false));
    assert_eq!(got[7], (oid::EXT_SKI.to_string(), false));
}
