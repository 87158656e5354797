//! Pre-issuance lint: every to-be-signed certificate is decoded again — by x509-parser, a
//! second decoder independent of the RustCrypto encoder in [`crate::profile`] — and checked
//! against its profile and the RFC 5280 basics before the real signature. A violation refuses
//! issuance and names the rule (Boulder lints every certificate before signing it; so do we).

use x509_parser::certificate::TbsCertificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::profile::{self, Scope};
use crate::{era, oid, validity, Attributes, Error, Hierarchy, Policy};

/// The certificate shapes jpki issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape<'a> {
    Root,
    Signing { attributes: &'a Attributes },
    Auth,
    OcspSigner,
}

/// What the linted certificate must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub hierarchy: Hierarchy,
    pub shape: Shape<'a>,
    /// The issuer's key identifier (SKI of the root); `None` for a self-signed root.
    pub issuer_key_id: Option<&'a [u8]>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub detail: String,
}

/// Lints and returns the first violation as an error.
pub fn check(policy: &Policy, tbs_der: &[u8], expect: &Expect<'_>) -> Result<(), Error> {
    match lint(policy, tbs_der, expect).into_iter().next() {
        None => Ok(()),
        Some(v) => Err(Error::Lint {
            rule: v.rule,
            detail: v.detail,
        }),
    }
}

/// All violations of `tbs_der` against its profile.
pub fn lint(policy: &Policy, tbs_der: &[u8], expect: &Expect<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut fail = |rule: &'static str, detail: String| out.push(Violation { rule, detail });
    let tbs = match TbsCertificate::from_der(tbs_der) {
        Ok(([], tbs)) => tbs,
        Ok(_) => {
            fail(
                "der.trailing-bytes",
                "bytes after the TBSCertificate".into(),
            );
            return out;
        }
        Err(e) => {
            fail("der.decode", e.to_string());
            return out;
        }
    };
    let h = expect.hierarchy;

    // RFC 5280 §4.1.2.1 – §4.1.2.6.
    if tbs.version().0 != 2 {
        fail(
            "rfc5280.version",
            format!("version {} is not v3", tbs.version().0 + 1),
        );
    }
    let serial = tbs.raw_serial();
    if serial.is_empty()
        || serial.len() > 20
        || serial[0] & 0x80 != 0
        || serial.iter().all(|b| *b == 0)
    {
        fail(
            "rfc5280.serial",
            "serial must be a positive integer of at most 20 octets".into(),
        );
    }
    if tbs.signature.algorithm.to_id_string() != oid::SHA256_WITH_RSA.to_string() {
        fail(
            "profile.signature-algorithm",
            format!("{} is not sha256WithRSAEncryption", tbs.signature.algorithm),
        );
    }
    let root_dn = profile::root_name(policy, h).and_then(|n| {
        der::Encode::to_der(&n).map_err(|e| Error::Der {
            what: "Name",
            source: e,
        })
    });
    match &root_dn {
        Ok(dn) if tbs.issuer().as_raw() == dn.as_slice() => {}
        Ok(_) => fail(
            "profile.issuer",
            format!("issuer `{}` is not the {h} root", tbs.issuer()),
        ),
        Err(e) => fail("profile.issuer", e.to_string()),
    }
    let (nb, na) = (
        tbs.validity().not_before.to_datetime(),
        tbs.validity().not_after.to_datetime(),
    );
    if nb >= na {
        fail(
            "rfc5280.validity",
            "notBefore is not before notAfter".into(),
        );
    }
    let na_jst = na.to_offset(validity::JST);
    if (na_jst.hour(), na_jst.minute(), na_jst.second()) != (23, 59, 59) {
        fail(
            "jpki.not-after-end-of-day",
            format!("notAfter {na} is not 23:59:59 JST"),
        );
    }

    // Subject (reference §1–§3).
    let expected_subject: &[&str] = match expect.shape {
        Shape::Root => &["C", "O", "OU", "OU"],
        Shape::Signing { .. } => &["C", "L", "L", "CN"],
        Shape::Auth => &["C", "CN"],
        Shape::OcspSigner => &["C", "O", "OU", "OU", "CN"],
    };
    let mut seen = Vec::new();
    for rdn in tbs.subject().iter_rdn() {
        let attrs: Vec<_> = rdn.iter().collect();
        if attrs.len() != 1 {
            fail("profile.subject", "multi-valued RDN".into());
        }
        for a in attrs {
            let short = match a.attr_type().to_id_string().as_str() {
                "2.5.4.6" => "C",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.7" => "L",
                "2.5.4.3" => "CN",
                _ => "?",
            };
            let tag = a.attr_value().tag();
            let want = if short == "C" {
                der_parser::ber::Tag::PrintableString
            } else {
                der_parser::ber::Tag::Utf8String
            };
            if tag != want {
                fail(
                    "profile.subject-encoding",
                    format!("{short} is {tag:?}, expected {want:?}"),
                );
            }
            seen.push(short);
        }
    }
    if seen != expected_subject {
        fail(
            "profile.subject",
            format!("subject attributes {seen:?}, expected {expected_subject:?}"),
        );
    }
    if matches!(expect.shape, Shape::Root) && tbs.subject().as_raw() != tbs.issuer().as_raw() {
        fail(
            "profile.root-self-issued",
            "root subject differs from issuer".into(),
        );
    }

    // Key (reference §1, "Crypto").
    match tbs.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            if rsa.key_size() < policy.limits.min_rsa_bits {
                fail(
                    "profile.key-size",
                    format!(
                        "RSA-{} is below {}",
                        rsa.key_size(),
                        policy.limits.min_rsa_bits
                    ),
                );
            }
            if rsa.try_exponent().ok() != Some(65537) {
                fail(
                    "profile.key-exponent",
                    "public exponent is not 65537".into(),
                );
            }
        }
        _ => fail("profile.key-type", "subject key is not RSA".into()),
    }

    // Extensions (RFC 5280 §4.2: each at most once; the profile fixes the set and order).
    let exts = tbs.extensions();
    let ids: Vec<String> = exts.iter().map(|e| e.oid.to_id_string()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != ids.len() {
        fail(
            "rfc5280.duplicate-extension",
            "an extension appears twice".into(),
        );
    }
    let ocsp = policy.ca.ocsp_url_in_certificates;
    let mut want: Vec<(const_oid::ObjectIdentifier, bool)> = match expect.shape {
        Shape::Root => vec![
            (oid::EXT_KEY_USAGE, true),
            (oid::EXT_SAN, false),
            (oid::EXT_BASIC_CONSTRAINTS, true),
            (oid::EXT_CRL_DP, false),
            (oid::EXT_SKI, false),
        ],
        Shape::Signing { .. } => vec![
            (oid::EXT_KEY_USAGE, true),
            (oid::EXT_SAN, false),
            (oid::EXT_CERT_POLICIES, true),
            (oid::EXT_IAN, false),
            (oid::EXT_CRL_DP, false),
            (oid::EXT_AKI, false),
            (oid::EXT_SKI, false),
        ],
        Shape::Auth => vec![
            (oid::EXT_KEY_USAGE, true),
            (oid::EXT_CERT_POLICIES, policy.auth.critical_policies),
            (oid::EXT_IAN, false),
            (oid::EXT_CRL_DP, false),
            (oid::EXT_AKI, false),
            (oid::EXT_SKI, false),
        ],
        Shape::OcspSigner => vec![
            (oid::EXT_KEY_USAGE, true),
            (oid::EXT_EKU, false),
            (oid::OCSP_NOCHECK, false),
            (oid::EXT_AKI, false),
            (oid::EXT_SKI, false),
        ],
    };
    if ocsp && matches!(expect.shape, Shape::Signing { .. } | Shape::Auth) {
        want.push((oid::EXT_AIA, false));
    }
    let got: Vec<(String, bool)> = exts
        .iter()
        .map(|e| (e.oid.to_id_string(), e.critical))
        .collect();
    let want_s: Vec<(String, bool)> = want.iter().map(|(o, c)| (o.to_string(), *c)).collect();
    if got != want_s {
        fail(
            "profile.extensions",
            format!("extensions (oid, critical) {got:?}, expected {want_s:?}"),
        );
    }

    for e in exts {
        match e.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                let want = match expect.shape {
                    Shape::Root => 0b110_0000,
                    Shape::Signing { .. } => 0b11,
                    Shape::Auth | Shape::OcspSigner => 0b1,
                };
                if ku.flags != want {
                    fail(
                        "profile.key-usage",
                        format!("keyUsage bits {:#b}, expected {want:#b}", ku.flags),
                    );
                }
            }
            ParsedExtension::BasicConstraints(bc)
                if (!bc.ca || bc.path_len_constraint.is_some()) =>
            {
                fail(
                    "profile.basic-constraints",
                    "root must be cA=TRUE without pathLen".into(),
                );
            }
            ParsedExtension::CertificatePolicies(cp) => {
                let want = policy.policy_oid(h).to_string();
                if cp.len() != 1 || cp[0].policy_id.to_id_string() != want {
                    fail(
                        "profile.policy",
                        format!("certificatePolicies must be exactly {want}"),
                    );
                } else {
                    let cps_ok = cp[0].policy_qualifiers.as_ref().is_some_and(|q| {
                        q.len() == 1
                            && q[0].policy_qualifier_id.to_id_string() == oid::QT_CPS.to_string()
                            && ia5_value(q[0].qualifier).as_deref()
                                == Some(policy.ca.cps_uri.as_bytes())
                    });
                    if !cps_ok {
                        fail(
                            "profile.policy-cps",
                            "the CPS qualifier is missing or wrong".into(),
                        );
                    }
                }
            }
            ParsedExtension::SubjectAlternativeName(san) => match expect.shape {
                Shape::Signing { attributes } => {
                    lint_attributes(policy, &san.general_names, attributes, &mut fail)
                }
                Shape::Root => {
                    if !matches!(
                        san.general_names.as_slice(),
                        [GeneralName::DirectoryName(_)]
                    ) {
                        fail(
                            "profile.root-san",
                            "root subjectAltName must be one directoryName".into(),
                        );
                    }
                }
                _ => fail(
                    "profile.no-personal-data",
                    "only signing certificates carry a subjectAltName".into(),
                ),
            },
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                let got = aki.key_identifier.as_ref().map(|k| k.0);
                if got.is_none() || got != expect.issuer_key_id {
                    fail(
                        "rfc5280.aki",
                        "authorityKeyIdentifier does not match the issuer's key identifier".into(),
                    );
                }
            }
            ParsedExtension::SubjectKeyIdentifier(ski) => {
                match profile::key_identifier(tbs.public_key().raw) {
                    Ok(id) if id == ski.0 => {}
                    _ => fail(
                        "rfc5280.ski",
                        "subjectKeyIdentifier is not the SHA-1 of the subject key".into(),
                    ),
                }
            }
            ParsedExtension::CRLDistributionPoints(dps) => {
                let scope = match expect.shape {
                    Shape::Root => Scope::Ca,
                    _ => Scope::Partition(policy.partition_of(serial)),
                };
                // Compared as bytes: URIs as text, directory names as their DER.
                let want = profile::crl_dp_names(policy, h, scope).ok().map(|names| {
                    names
                        .iter()
                        .map(|n| match n {
                            x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(
                                u,
                            ) => u.as_bytes().to_vec(),
                            x509_cert::ext::pkix::name::GeneralName::DirectoryName(d) => {
                                der::Encode::to_der(d).unwrap_or_default()
                            }
                            _ => Vec::new(),
                        })
                        .collect::<Vec<_>>()
                });
                let got = match dps.points.as_slice() {
                    [dp] => match &dp.distribution_point {
                        Some(DistributionPointName::FullName(names)) => names
                            .iter()
                            .map(|n| match n {
                                GeneralName::URI(u) => u.as_bytes().to_vec(),
                                GeneralName::DirectoryName(d) => d.as_raw().to_vec(),
                                _ => b"?".to_vec(),
                            })
                            .collect::<Vec<_>>(),
                        _ => vec![],
                    },
                    _ => vec![],
                };
                if Some(&got) != want.as_ref() {
                    fail(
                        "profile.crl-distribution-point",
                        "the distribution point names are not the partition's URL and directoryName".into(),
                    );
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku)
                if !(eku.ocsp_signing
                    && eku.other.is_empty()
                    && !eku.any
                    && !eku.server_auth
                    && !eku.client_auth) =>
            {
                fail(
                    "profile.ocsp-signer-eku",
                    "extendedKeyUsage must be id-kp-OCSPSigning only".into(),
                );
            }
            ParsedExtension::ParseError { error } => {
                fail("der.extension", format!("{}: {error}", e.oid))
            }
            _ => {}
        }
    }
    out
}

use der::Decode as _;

/// The six otherNames (reference §2): order, UTF8String, values, flags.
fn lint_attributes(
    policy: &Policy,
    names: &[GeneralName<'_>],
    attrs: &Attributes,
    fail: &mut impl FnMut(&'static str, String),
) {
    let mut values = Vec::new();
    for n in names {
        match n {
            GeneralName::OtherName(id, raw) => match utf8_in_explicit0(raw) {
                Some(v) => values.push((id.to_id_string(), v)),
                None => fail(
                    "profile.san-encoding",
                    format!("otherName {id} is not [0] EXPLICIT UTF8String"),
                ),
            },
            _ => fail(
                "profile.san",
                "subjectAltName of a signing certificate holds only the six otherNames".into(),
            ),
        }
    }
    let order: Vec<String> = oid::SAN_ORDER.iter().map(|o| o.to_string()).collect();
    let got: Vec<&String> = values.iter().map(|(o, _)| o).collect();
    if got != order.iter().collect::<Vec<_>>() {
        fail(
            "profile.san-order",
            format!("otherNames {got:?}, expected {order:?}"),
        );
        return;
    }
    let v: Vec<&str> = values.iter().map(|(_, v)| v.as_str()).collect();
    let (name, birth, sex, address, name_flags, address_flags) =
        (v[0], v[1], v[2], v[3], v[4], v[5]);
    if era::decode_birth(birth) != Some(attrs.birth()) {
        fail(
            "profile.birth",
            format!("`{birth}` is not EYYYYMMDD of the holder's birth date"),
        );
    }
    if sex.len() != 1 || !matches!(sex, "1" | "2" | "9") || !sex.starts_with(attrs.sex().digit()) {
        fail(
            "profile.sex",
            format!("`{sex}` is not the holder's one-digit sex"),
        );
    }
    if address.chars().count() > policy.limits.address_max_chars {
        fail(
            "profile.address-length",
            "address longer than the limit".into(),
        );
    }
    for (label, text, flags) in [
        ("name", name, name_flags),
        ("address", address, address_flags),
    ] {
        if flags.chars().count() != text.chars().count()
            || !flags.chars().all(|c| c == '0' || c == '1')
        {
            fail(
                "profile.substitute-flags",
                format!("{label} flags must be one 0/1 digit per character"),
            );
        }
        for (c, f) in text.chars().zip(flags.chars()) {
            if (c == '〓') != (f == '1') {
                fail(
                    "profile.substitute-flags",
                    format!("{label} flag does not match its character"),
                );
                break;
            }
        }
    }
    let card_name = crate::model::CardText::from_register(attrs.name());
    let card_address = crate::model::CardText::from_register(attrs.address());
    if name != card_name.text || address != card_address.text {
        fail(
            "profile.attributes",
            "name or address differs from the register".into(),
        );
    }
}

/// The value of a DER IA5String (x509-parser hands policy qualifiers over with their tag).
fn ia5_value(raw: &[u8]) -> Option<Vec<u8>> {
    der::asn1::Ia5StringRef::from_der(raw)
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

/// Reads `[0] EXPLICIT UTF8String` (x509-parser leaves the explicit tag on otherName values,
/// crate-notes §7).
fn utf8_in_explicit0(raw: &[u8]) -> Option<String> {
    // 0xA0: context-specific, constructed, tag number 0.
    if raw.first() != Some(&0xA0) {
        return None;
    }
    let any = der::asn1::AnyRef::from_der(raw).ok()?;
    let s = der::asn1::Utf8StringRef::from_der(any.value()).ok()?;
    Some(s.as_str().to_owned())
}
