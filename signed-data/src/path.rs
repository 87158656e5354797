//! A small, strict RFC 5280 §6 path validation for JPKI's one-tier hierarchies:
//! trust anchor (root) → end-entity certificate, nothing in between.
//!
//! rustls-webpki cannot be used: it refuses the critical certificatePolicies every JPKI
//! signing certificate carries (`crate-notes.md` §1, pitfall 6). Each rule below is one
//! function with its own error, in the order of RFC 5280 §6.1.3:
//!
//! * (a)(1) the signature of the certificate verifies with the anchor's key, and it is
//!   sha256WithRSAEncryption (the only algorithm of the JPKI profile);
//! * (a)(2) validity of the certificate — and, as JPKI relying parties do, of the anchor — at
//!   the time of the check;
//! * (a)(4) issuer name = anchor subject, compared byte for byte on the DER (JPKI names are
//!   written one way only; a re-encoded name is a different issuer for us);
//! * §4.2.1.1 authorityKeyIdentifier = anchor subjectKeyIdentifier, when both are present;
//! * §6.1.4 (k), (n) on the anchor: basicConstraints cA and keyUsage keyCertSign (a JPKI root
//!   carries both; an anchor without them is refused);
//! * §4.2.1.9: the end-entity certificate is not a CA;
//! * §6.1.5 (f) / §4.2: every critical extension of the end-entity certificate is one this
//!   module processes, and every known extension parses.
//!
//! The policy part (§6.1.3 (d), one explicit policy expected) is the relying party's
//! (`relying_party::kind`).

use ::time::OffsetDateTime;
use x509_parser::oid_registry::{self as oids, Oid};
use x509_parser::prelude::*;

use crate::cert::fmt_time;
use crate::Error;

/// Extensions this module (with `relying_party::kind`) understands well enough to accept as critical.
const UNDERSTOOD_CRITICAL: [&Oid<'static>; 5] = [
    &oids::OID_X509_EXT_KEY_USAGE,
    &oids::OID_X509_EXT_CERTIFICATE_POLICIES,
    &oids::OID_X509_EXT_BASIC_CONSTRAINTS,
    &oids::OID_X509_EXT_EXTENDED_KEY_USAGE,
    &oids::OID_X509_EXT_SUBJECT_ALT_NAME,
];

/// Runs every rule; the first failure is returned.
pub fn validate(
    leaf: &X509Certificate<'_>,
    root: &X509Certificate<'_>,
    at: OffsetDateTime,
) -> Result<(), Error> {
    version3(leaf, "end-entity")?;
    version3(root, "trust anchor")?;
    anchor_is_ca(root)?;
    issuer_is_anchor(leaf, root)?;
    key_id_matches(leaf, root)?;
    signed_by_anchor(leaf, root)?;
    within_validity(root, "trust anchor", at)?;
    within_validity(leaf, "end-entity", at)?;
    not_a_ca(leaf)?;
    critical_extensions_understood(leaf)?;
    Ok(())
}

pub fn version3(cert: &X509Certificate<'_>, which: &'static str) -> Result<(), Error> {
    if cert.version() == X509Version::V3 {
        Ok(())
    } else {
        Err(Error::NotV3 { which })
    }
}

pub fn issuer_is_anchor(
    leaf: &X509Certificate<'_>,
    root: &X509Certificate<'_>,
) -> Result<(), Error> {
    if leaf.issuer().as_raw() == root.subject().as_raw() {
        Ok(())
    } else {
        Err(Error::IssuerMismatch)
    }
}

/// Which of several trust anchors issued `leaf`, picked by key — never by name alone, since
/// every generation of a JPKI root shares one DN (reference §1): the anchor's subject must be
/// the leaf's issuer, its subjectKeyIdentifier the leaf's authorityKeyIdentifier keyIdentifier
/// and, when the AKI names one, its serial the authorityCertSerialNumber (RFC 5280
/// §4.2.1.1). A leaf without a key identifier is matched by its signature. `None` when no
/// anchor qualifies.
pub fn pick_anchor(leaf: &X509Certificate<'_>, anchors: &[Vec<u8>]) -> Option<usize> {
    let (key_id, serial) = leaf
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => Some((
                a.key_identifier.as_ref().map(|k| k.0),
                a.authority_cert_serial,
            )),
            _ => None,
        })
        .unwrap_or((None, None));
    let strip = |s: &[u8]| -> Vec<u8> {
        let start = s.iter().position(|b| *b != 0).unwrap_or(s.len());
        s[start..].to_vec()
    };
    anchors.iter().position(|der| {
        let Ok(root) = crate::cert::parse(der, "trust anchor") else {
            return false;
        };
        if leaf.issuer().as_raw() != root.subject().as_raw() {
            return false;
        }
        if serial.is_some_and(|s| strip(s) != strip(root.raw_serial())) {
            return false;
        }
        match (key_id, crate::cert::ski(&root)) {
            (Some(a), Some(s)) => a == s,
            _ => leaf.verify_signature(Some(root.public_key())).is_ok(),
        }
    })
}

pub fn key_id_matches(leaf: &X509Certificate<'_>, root: &X509Certificate<'_>) -> Result<(), Error> {
    let aki = leaf
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        });
    match (aki, crate::cert::ski(root)) {
        (Some(a), Some(s)) if a != s => Err(Error::KeyIdMismatch {
            aki: hex::encode(a),
            ski: hex::encode(s),
        }),
        _ => Ok(()),
    }
}

pub fn signed_by_anchor(
    leaf: &X509Certificate<'_>,
    root: &X509Certificate<'_>,
) -> Result<(), Error> {
    if leaf.signature_algorithm.algorithm != oids::OID_PKCS1_SHA256WITHRSA {
        return Err(Error::SignatureAlgorithm {
            which: "end-entity",
            oid: leaf.signature_algorithm.algorithm.to_id_string(),
        });
    }
    leaf.verify_signature(Some(root.public_key()))
        .map_err(|_| Error::BadCertificateSignature)
}

pub fn within_validity(
    cert: &X509Certificate<'_>,
    which: &'static str,
    at: OffsetDateTime,
) -> Result<(), Error> {
    let v = cert.validity();
    let (nb, na) = (v.not_before.to_datetime(), v.not_after.to_datetime());
    if at < nb {
        return Err(Error::NotYetValid {
            which,
            not_before: fmt_time(nb),
            at: fmt_time(at),
        });
    }
    if at > na {
        return Err(Error::Expired {
            which,
            not_after: fmt_time(na),
            at: fmt_time(at),
        });
    }
    Ok(())
}

pub fn anchor_is_ca(root: &X509Certificate<'_>) -> Result<(), Error> {
    let bad = |e: X509Error| Error::BadExtension {
        oid: "basicConstraints/keyUsage".into(),
        detail: e.to_string(),
    };
    match root.basic_constraints().map_err(bad)? {
        Some(bc) if bc.value.ca => {}
        _ => return Err(Error::RootNotCa),
    }
    match root.key_usage().map_err(bad)? {
        Some(ku) if ku.value.key_cert_sign() => Ok(()),
        _ => Err(Error::RootKeyUsage),
    }
}

pub fn not_a_ca(leaf: &X509Certificate<'_>) -> Result<(), Error> {
    let bc = leaf.basic_constraints().map_err(|e| Error::BadExtension {
        oid: "basicConstraints".into(),
        detail: e.to_string(),
    })?;
    let ku_cert_sign = leaf
        .key_usage()
        .ok()
        .flatten()
        .is_some_and(|k| k.value.key_cert_sign());
    if bc.is_some_and(|b| b.value.ca) || ku_cert_sign {
        return Err(Error::LeafIsCa);
    }
    Ok(())
}

pub fn critical_extensions_understood(leaf: &X509Certificate<'_>) -> Result<(), Error> {
    for ext in leaf.extensions() {
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(Error::BadExtension {
                oid: ext.oid.to_id_string(),
                detail: error.to_string(),
            });
        }
        if ext.critical && !UNDERSTOOD_CRITICAL.contains(&&ext.oid) {
            return Err(Error::UnknownCriticalExtension(ext.oid.to_id_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Pki;

    const LEAF_EXT: &str = "keyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = critical, 1.2.392.200149.8.5.1.1.20\nauthorityKeyIdentifier = keyid";
    const ROOT_EXT: &str = "basicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash";

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn p(der: &[u8]) -> X509Certificate<'_> {
        crate::cert::parse(der, "test").unwrap()
    }

    fn root() -> Vec<u8> {
        Pki::get().der("sign/root.pem")
    }

    #[test]
    fn the_fixture_leaf_passes_every_rule() {
        let (leaf, root) = (Pki::get().der("sign/good.pem"), root());
        validate(&p(&leaf), &p(&root), now()).unwrap();
        // The ad-hoc issuer used below makes valid certificates too.
        let leaf = Pki::get().issue("sign/root", LEAF_EXT, &[]);
        validate(&p(&leaf), &p(&root), now()).unwrap();
    }

    #[test]
    fn version_1_is_refused() {
        let (leaf, root) = (Pki::get().issue("sign/root", "", &[]), root());
        assert!(matches!(
            version3(&p(&leaf), "end-entity"),
            Err(Error::NotV3 { .. })
        ));
        assert!(matches!(
            validate(&p(&leaf), &p(&root), now()),
            Err(Error::NotV3 { .. })
        ));
    }

    #[test]
    fn issuer_must_be_the_anchor_subject_byte_for_byte() {
        let pki = Pki::get();
        let (leaf, auth_root) = (pki.der("sign/good.pem"), pki.der("auth/root.pem"));
        assert!(matches!(
            issuer_is_anchor(&p(&leaf), &p(&auth_root)),
            Err(Error::IssuerMismatch)
        ));
        // An anchor named differently but holding the same key is still another issuer.
        let renamed = pki.fake_root(ROOT_EXT, false);
        assert!(matches!(
            validate(&p(&leaf), &p(&renamed), now()),
            Err(Error::IssuerMismatch)
        ));
    }

    #[test]
    fn aki_must_be_the_anchor_ski() {
        let pki = Pki::get();
        // Same subject name, another key: the name chains, the key identifier does not.
        let impostor = pki.fake_root(ROOT_EXT, true);
        let leaf = pki.der("sign/good.pem");
        assert!(matches!(
            key_id_matches(&p(&leaf), &p(&impostor)),
            Err(Error::KeyIdMismatch { .. })
        ));
        assert!(matches!(
            validate(&p(&leaf), &p(&impostor), now()),
            Err(Error::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn the_signature_must_verify_with_the_anchor_key() {
        let pki = Pki::get();
        // Without AKI, a same-named impostor root is caught by the signature.
        let impostor = pki.fake_root(
            "basicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign",
            true,
        );
        let leaf = pki.issue(
            "sign/root",
            "keyUsage = critical, digitalSignature, nonRepudiation\nauthorityKeyIdentifier = none\nsubjectKeyIdentifier = none",
            &[],
        );
        assert!(key_id_matches(&p(&leaf), &p(&impostor)).is_ok());
        assert!(matches!(
            signed_by_anchor(&p(&leaf), &p(&impostor)),
            Err(Error::BadCertificateSignature)
        ));
        assert!(matches!(
            validate(&p(&leaf), &p(&impostor), now()),
            Err(Error::BadCertificateSignature)
        ));
    }

    #[test]
    fn only_sha256_with_rsa_is_accepted() {
        let leaf = Pki::get().issue("sign/root", LEAF_EXT, &["-sha384"]);
        let e = signed_by_anchor(&p(&leaf), &p(&root())).unwrap_err();
        assert!(matches!(e, Error::SignatureAlgorithm { .. }), "{e}");
    }

    #[test]
    fn validity_is_checked_at_the_given_time_for_leaf_and_anchor() {
        let pki = Pki::get();
        let (leaf, root) = (pki.der("sign/good.pem"), root());
        let before = now() - ::time::Duration::days(2);
        assert!(matches!(
            within_validity(&p(&leaf), "end-entity", before),
            Err(Error::NotYetValid { .. })
        ));
        let e = validate(&p(&leaf), &p(&root), before).unwrap_err();
        assert!(e.to_string().contains("not valid before"), "{e}");
        // 20 years on, the anchor (10 years) has expired as well: it is checked first.
        let late = now() + ::time::Duration::days(365 * 20);
        let e = validate(&p(&leaf), &p(&root), late).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Expired {
                    which: "trust anchor",
                    ..
                }
            ),
            "{e}"
        );
        let expired = pki.der("sign/expired.pem");
        assert!(matches!(
            within_validity(&p(&expired), "end-entity", now()),
            Err(Error::Expired { .. })
        ));
    }

    #[test]
    fn the_anchor_must_be_a_ca_with_key_cert_sign() {
        let pki = Pki::get();
        let leaf = pki.der("sign/good.pem");
        // A leaf is no anchor.
        assert!(matches!(anchor_is_ca(&p(&leaf)), Err(Error::RootNotCa)));
        let no_bc = pki.fake_root("keyUsage = critical, keyCertSign", true);
        assert!(matches!(anchor_is_ca(&p(&no_bc)), Err(Error::RootNotCa)));
        let no_ku = pki.fake_root(
            "basicConstraints = critical, CA:true\nkeyUsage = critical, cRLSign",
            true,
        );
        assert!(matches!(anchor_is_ca(&p(&no_ku)), Err(Error::RootKeyUsage)));
        anchor_is_ca(&p(&root())).unwrap();
    }

    #[test]
    fn the_leaf_must_not_be_a_ca() {
        let pki = Pki::get();
        let ca = pki.issue("sign/root", "basicConstraints = critical, CA:true\nkeyUsage = critical, digitalSignature, nonRepudiation", &[]);
        assert!(matches!(not_a_ca(&p(&ca)), Err(Error::LeafIsCa)));
        let cert_sign = pki.issue(
            "sign/root",
            "keyUsage = critical, digitalSignature, keyCertSign",
            &[],
        );
        assert!(matches!(not_a_ca(&p(&cert_sign)), Err(Error::LeafIsCa)));
        assert!(matches!(
            validate(&p(&ca), &p(&root()), now()),
            Err(Error::LeafIsCa)
        ));
    }

    #[test]
    fn an_unknown_critical_extension_is_refused_a_known_one_accepted() {
        let pki = Pki::get();
        let odd = pki.issue(
            "sign/root",
            &format!("{LEAF_EXT}\n1.2.3.4 = critical, ASN1:NULL"),
            &[],
        );
        let e = critical_extensions_understood(&p(&odd)).unwrap_err();
        assert!(
            matches!(&e, Error::UnknownCriticalExtension(o) if o == "1.2.3.4"),
            "{e}"
        );
        // The same extension non-critical is ignored, as RFC 5280 §4.2 allows.
        let benign = pki.issue(
            "sign/root",
            &format!("{LEAF_EXT}\n1.2.3.4 = ASN1:NULL"),
            &[],
        );
        critical_extensions_understood(&p(&benign)).unwrap();
        // A critical certificatePolicies (every JPKI signing certificate) is understood.
        critical_extensions_understood(&p(&pki.der("sign/good.pem"))).unwrap();
    }
}
