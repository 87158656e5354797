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
    /// The issuing root (its key identifier and serial); `None` for a self-signed root.
    /// End-entity certificates must name all of it in their authorityKeyIdentifier, OCSP
    /// signers its key identifier only.
    pub issuer: Option<profile::Issuer<'a>>,
    /// The CRL an end-entity certificate's distribution point must name (its partition,
    /// chosen at issuance: [`Policy::new_partition`]); roots name their CA-level CRL
    /// whatever this says, and an end-entity certificate with `None` matches no
    /// distribution point.
    pub crl: Option<&'a Scope>,
}

/// The extensions a shape must carry under `policy`, as (OID, critical), in order
/// (RFC 5280 §4.2: each at most once; the profile fixes the set and order). Leaves follow
/// the real certificate: see [`profile::leaf_tbs`].
pub fn expected_extensions(
    policy: &Policy,
    expect: &Expect<'_>,
) -> Vec<(const_oid::ObjectIdentifier, bool)> {
    let h = expect.hierarchy;
    let mut want = Vec::with_capacity(8);
    match expect.shape {
        Shape::Root => {
            return vec![
                (oid::EXT_KEY_USAGE, true),
                (oid::EXT_SAN, false),
                (oid::EXT_BASIC_CONSTRAINTS, true),
                (oid::EXT_CRL_DP, false),
                (oid::EXT_SKI, false),
            ]
        }
        Shape::OcspSigner => {
            return vec![
                (oid::EXT_KEY_USAGE, true),
                (oid::EXT_EKU, false),
                (oid::OCSP_NOCHECK, false),
                (oid::EXT_AKI, false),
                (oid::EXT_SKI, false),
            ]
        }
        Shape::Signing { .. } => want.extend([
            (oid::EXT_KEY_USAGE, true),
            (oid::EXT_SAN, false),
            (oid::EXT_CERT_POLICIES, true),
        ]),
        Shape::Auth => want.extend([
            (oid::EXT_KEY_USAGE, true),
            (oid::EXT_EKU, false),
            (oid::EXT_CERT_POLICIES, policy.auth.critical_policies),
        ]),
    }
    want.extend([(oid::EXT_IAN, false), (oid::EXT_CRL_DP, false)]);
    if policy.ocsp_url_in(h) {
        want.push((oid::EXT_AIA, false));
    }
    want.extend([(oid::EXT_AKI, false), (oid::EXT_SKI, false)]);
    want
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
    if !oid_eq(&tbs.signature.algorithm, &oid::SHA256_WITH_RSA) {
        fail(
            "profile.signature-algorithm",
            format!("{} is not sha256WithRSAEncryption", tbs.signature.algorithm),
        );
    }
    // The DER of `profile::root_name`, written without building a typed Name.
    let mut scratch = Vec::with_capacity(256);
    // A root name too long to encode is no issuer's.
    let encoded = profile::write_root_name(&mut scratch, policy, h).is_ok();
    if !encoded || tbs.issuer().as_raw() != scratch.as_slice() {
        fail(
            "profile.issuer",
            format!("issuer `{}` is not the {h} root", tbs.issuer()),
        );
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
    let mut seen = Vec::with_capacity(8);
    for rdn in tbs.subject().iter_rdn() {
        if rdn.iter().count() != 1 {
            fail("profile.subject", "multi-valued RDN".into());
        }
        for a in rdn.iter() {
            let short = short_name(a.attr_type());
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
    if matches!(expect.shape, Shape::Signing { .. } | Shape::Auth) {
        let cn = tbs
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok());
        if !cn.is_some_and(profile::is_leaf_cn) {
            fail(
                "profile.subject-cn",
                format!("subject CN {cn:?} is not of the shape \\d{{4}}[0-9A-Z]{{10}}\\d{{8}}A"),
            );
        }
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
    let want = expected_extensions(policy, expect);
    // Fast path: the extensions are exactly `want`, byte for byte. `want` holds distinct
    // OIDs, so then no extension appears twice and the dotted forms compared below agree
    // too; only when this fails are the dotted strings built.
    let as_wanted = exts.len() == want.len()
        && exts
            .iter()
            .zip(&want)
            .all(|(e, (o, c))| e.oid.as_bytes() == o.as_bytes() && e.critical == *c);
    if !as_wanted {
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
                let want = profile::policy_oid(policy, h);
                if cp.len() != 1 || !oid_eq(&cp[0].policy_id, &want) {
                    fail(
                        "profile.policy",
                        format!("certificatePolicies must be exactly {want}"),
                    );
                } else {
                    let cps_ok = cp[0].policy_qualifiers.as_ref().is_some_and(|q| {
                        q.len() == 1
                            && oid_eq(&q[0].policy_qualifier_id, &oid::QT_CPS)
                            && ia5_is(q[0].qualifier, policy.ca.cps_uri.as_bytes())
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
                if got.is_none() || got != expect.issuer.map(|i| i.key_id) {
                    fail(
                        "rfc5280.aki",
                        "authorityKeyIdentifier does not match the issuer's key identifier".into(),
                    );
                }
                // Leaves: the root's name and serial too (reference §3); others: key id only.
                let full = matches!(expect.shape, Shape::Signing { .. } | Shape::Auth);
                let issuer_ok = match (&aki.authority_cert_issuer, full) {
                    (None, false) => true,
                    (Some(names), true) => {
                        scratch.clear();
                        let encoded = profile::write_root_name(&mut scratch, policy, h).is_ok();
                        encoded
                            && matches!(names.as_slice(),
                                [GeneralName::DirectoryName(n)] if n.as_raw() == scratch.as_slice())
                    }
                    _ => false,
                };
                let serial_ok = match (aki.authority_cert_serial, full) {
                    (None, false) => true,
                    (Some(got), true) => expect
                        .issuer
                        .is_some_and(|i| unsigned(got) == unsigned(i.serial)),
                    _ => false,
                };
                if !issuer_ok || !serial_ok {
                    fail(
                        "profile.aki-form",
                        if full {
                            "authorityKeyIdentifier must name the root's key id, name and serial"
                        } else {
                            "authorityKeyIdentifier must name the issuer's key id only"
                        }
                        .into(),
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
                    Shape::Root => Some(&Scope::Ca),
                    _ => expect.crl,
                };
                // Compared as bytes: URIs as text, directory names as their DER. The
                // expected names are those of `profile::crl_dp_names`, which has none when
                // the URL is not an IA5String (a base URL that is not ASCII).
                let none = Scope::Ca;
                let (expected, scope) = match scope {
                    Some(s) => (true, s),
                    None => (false, &none),
                };
                scratch.clear();
                if policy.crl.uri {
                    profile::write_crl_url(
                        &mut scratch,
                        policy,
                        h,
                        expect.issuer.map_or(1, |i| i.generation),
                        scope,
                    );
                }
                let url_len = scratch.len();
                // A directory name too long to encode matches none.
                let encoded = !policy.crl.directory_name
                    || profile::write_crl_dn(&mut scratch, policy, h, scope).is_ok();
                let (url, dn) = scratch.split_at(url_len);
                let want: &[&[u8]] = match (policy.crl.uri, policy.crl.directory_name) {
                    (true, true) => &[url, dn],
                    (true, false) => &[url],
                    (false, _) => &[dn],
                };
                let got: &[GeneralName<'_>] = match dps.points.as_slice() {
                    [dp] => match &dp.distribution_point {
                        Some(DistributionPointName::FullName(names)) => names,
                        _ => &[],
                    },
                    _ => &[],
                };
                let matches = expected
                    && encoded
                    && (!policy.crl.uri || policy.ca.base_url.is_ascii())
                    && got.len() == want.len()
                    && got.iter().zip(want).all(|(n, w)| {
                        let n: &[u8] = match n {
                            GeneralName::URI(u) => u.as_bytes(),
                            GeneralName::DirectoryName(d) => d.as_raw(),
                            _ => b"?",
                        };
                        n == *w
                    });
                if !matches {
                    fail(
                        "profile.crl-distribution-point",
                        "the distribution point names are not the partition's URL and directoryName".into(),
                    );
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let only = |ocsp: bool, client: bool| {
                    eku.ocsp_signing == ocsp
                        && eku.client_auth == client
                        && eku.other.is_empty()
                        && !eku.any
                        && !eku.server_auth
                        && !eku.code_signing
                        && !eku.email_protection
                        && !eku.time_stamping
                };
                match expect.shape {
                    Shape::Auth if !only(false, true) => fail(
                        "profile.auth-eku",
                        "extendedKeyUsage must be id-kp-clientAuth only".into(),
                    ),
                    Shape::Auth => {}
                    _ if !only(true, false) => fail(
                        "profile.ocsp-signer-eku",
                        "extendedKeyUsage must be id-kp-OCSPSigning only".into(),
                    ),
                    _ => {}
                }
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

/// An unsigned big-endian integer without its leading zero octets, to compare serials
/// however they were padded.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The six otherNames (reference §2): order, UTF8String, values, flags.
fn lint_attributes(
    policy: &Policy,
    names: &[GeneralName<'_>],
    attrs: &Attributes,
    fail: &mut impl FnMut(&'static str, String),
) {
    let mut values = Vec::with_capacity(names.len());
    for n in names {
        match n {
            GeneralName::OtherName(id, raw) => match utf8_in_explicit0(raw) {
                Some(v) => values.push((id, v)),
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
    let in_order = values.len() == oid::SAN_ORDER.len()
        && values
            .iter()
            .zip(&oid::SAN_ORDER)
            .all(|((id, _), o)| oid_eq(id, o));
    let (
        &[(_, name), (_, birth), (_, sex), (_, address), (_, name_flags), (_, address_flags)],
        true,
    ) = (values.as_slice(), in_order)
    else {
        let order: Vec<String> = oid::SAN_ORDER.iter().map(|o| o.to_string()).collect();
        let got: Vec<String> = values.iter().map(|(o, _)| o.to_id_string()).collect();
        fail(
            "profile.san-order",
            format!("otherNames {got:?}, expected {order:?}"),
        );
        return;
    };
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

/// Whether `raw` is a DER IA5String with the value `want` (x509-parser hands policy
/// qualifiers over with their tag).
fn ia5_is(raw: &[u8], want: &[u8]) -> bool {
    der::asn1::Ia5StringRef::from_der(raw).is_ok_and(|s| s.as_bytes() == want)
}

/// Whether x509-parser's `a` is `b`, judged as before by the dotted forms; equal DER contents
/// settle it without building them (equal encodings always have equal dotted forms).
fn oid_eq(a: &x509_parser::oid_registry::Oid<'_>, b: &const_oid::ObjectIdentifier) -> bool {
    a.as_bytes() == b.as_bytes() || a.to_id_string() == b.to_string()
}

/// The short name of a subject attribute type (`?` for one the profiles never use).
fn short_name(t: &x509_parser::oid_registry::Oid<'_>) -> &'static str {
    const SHORT: [(const_oid::ObjectIdentifier, &str); 5] = [
        (oid::AT_C, "C"),
        (oid::AT_O, "O"),
        (oid::AT_OU, "OU"),
        (oid::AT_L, "L"),
        (oid::AT_CN, "CN"),
    ];
    // By the DER contents first, then (as `oid_eq`) by the dotted form, built once.
    let found = SHORT
        .iter()
        .find(|(o, _)| t.as_bytes() == o.as_bytes())
        .or_else(|| {
            let dotted = t.to_id_string();
            SHORT.iter().find(|(o, _)| o.to_string() == dotted)
        });
    found.map_or("?", |(_, short)| short)
}

/// Reads `[0] EXPLICIT UTF8String` (x509-parser leaves the explicit tag on otherName values,
/// crate-notes §7).
fn utf8_in_explicit0(raw: &[u8]) -> Option<&str> {
    // 0xA0: context-specific, constructed, tag number 0.
    if raw.first() != Some(&0xA0) {
        return None;
    }
    let any = der::asn1::AnyRef::from_der(raw).ok()?;
    let s = der::asn1::Utf8StringRef::from_der(any.value()).ok()?;
    Some(s.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Holder;
    use crate::Sex;
    use time::macros::date;

    /// The lint as it was before it avoided building strings and names (commit bc196a9),
    /// kept as the reference the faster one must agree with, violation for violation.
    mod reference {
        use der::Decode as _;
        use x509_parser::certificate::TbsCertificate;
        use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
        use x509_parser::prelude::FromDer;
        use x509_parser::public_key::PublicKey;

        use super::super::{Expect, Shape, Violation};
        use crate::profile::{self, Scope};
        use crate::{era, oid, validity, Attributes, Error, Policy};

        /// All violations of `tbs_der` against its profile.
        pub fn lint(policy: &Policy, tbs_der: &[u8], expect: &Expect<'_>) -> Vec<Violation> {
            let mut out = Vec::new();
            let mut fail =
                |rule: &'static str, detail: String| out.push(Violation { rule, detail });
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
            if matches!(expect.shape, Shape::Signing { .. } | Shape::Auth) {
                let cn = tbs
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|a| a.as_str().ok());
                let shaped = cn.is_some_and(|cn| {
                    let c: Vec<char> = cn.chars().collect();
                    c.len() == 23
                        && c[..4].iter().all(|c| c.is_ascii_digit())
                        && c[4..14]
                            .iter()
                            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
                        && c[14..22].iter().all(|c| c.is_ascii_digit())
                        && c[22] == 'A'
                });
                if !shaped {
                    fail(
                        "profile.subject-cn",
                        format!(
                            "subject CN {cn:?} is not of the shape \\d{{4}}[0-9A-Z]{{10}}\\d{{8}}A"
                        ),
                    );
                }
            }
            if matches!(expect.shape, Shape::Root)
                && tbs.subject().as_raw() != tbs.issuer().as_raw()
            {
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
            let ocsp = policy.ocsp_url_in(h);
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
                ],
                Shape::Auth => vec![
                    (oid::EXT_KEY_USAGE, true),
                    (oid::EXT_EKU, false),
                    (oid::EXT_CERT_POLICIES, policy.auth.critical_policies),
                    (oid::EXT_IAN, false),
                    (oid::EXT_CRL_DP, false),
                ],
                Shape::OcspSigner => vec![
                    (oid::EXT_KEY_USAGE, true),
                    (oid::EXT_EKU, false),
                    (oid::OCSP_NOCHECK, false),
                    (oid::EXT_AKI, false),
                    (oid::EXT_SKI, false),
                ],
            };
            if matches!(expect.shape, Shape::Signing { .. } | Shape::Auth) {
                if ocsp {
                    want.push((oid::EXT_AIA, false));
                }
                want.push((oid::EXT_AKI, false));
                want.push((oid::EXT_SKI, false));
            }
            let got: Vec<(String, bool)> = exts
                .iter()
                .map(|e| (e.oid.to_id_string(), e.critical))
                .collect();
            let want_s: Vec<(String, bool)> =
                want.iter().map(|(o, c)| (o.to_string(), *c)).collect();
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
                                    && q[0].policy_qualifier_id.to_id_string()
                                        == oid::QT_CPS.to_string()
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
                        if got.is_none() || got != expect.issuer.map(|i| i.key_id) {
                            fail(
                                "rfc5280.aki",
                                "authorityKeyIdentifier does not match the issuer's key identifier"
                                    .into(),
                            );
                        }
                        let full = matches!(expect.shape, Shape::Signing { .. } | Shape::Auth);
                        let trim = |b: &[u8]| -> Vec<u8> {
                            b.iter().copied().skip_while(|x| *x == 0).collect()
                        };
                        let ok = if full {
                            let name_ok = match (&aki.authority_cert_issuer, &root_dn) {
                                (Some(names), Ok(dn)) => {
                                    names.len() == 1
                                        && matches!(&names[0], GeneralName::DirectoryName(n) if n.as_raw() == dn.as_slice())
                                }
                                _ => false,
                            };
                            let serial_ok = match (aki.authority_cert_serial, expect.issuer) {
                                (Some(got), Some(i)) => trim(got) == trim(i.serial),
                                _ => false,
                            };
                            name_ok && serial_ok
                        } else {
                            aki.authority_cert_issuer.is_none()
                                && aki.authority_cert_serial.is_none()
                        };
                        if !ok {
                            fail(
                                "profile.aki-form",
                                if full {
                                    "authorityKeyIdentifier must name the root's key id, name and serial"
                                } else {
                                    "authorityKeyIdentifier must name the issuer's key id only"
                                }
                                .into(),
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
                            Shape::Root => Some(&Scope::Ca),
                            _ => expect.crl,
                        };
                        // Compared as bytes: URIs as text, directory names as their DER.
                        let generation = expect.issuer.map_or(1, |i| i.generation);
                        let names = scope
                            .map(|s| profile::crl_dp_names_of(policy, h, generation, s.clone()));
                        let want = names.and_then(Result::ok).map(|names| {
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
                    ParsedExtension::ExtendedKeyUsage(eku) => {
                        let others = !eku.other.is_empty()
                            || eku.any
                            || eku.server_auth
                            || eku.code_signing
                            || eku.email_protection
                            || eku.time_stamping;
                        if matches!(expect.shape, Shape::Auth) {
                            if others || eku.ocsp_signing || !eku.client_auth {
                                fail(
                                    "profile.auth-eku",
                                    "extendedKeyUsage must be id-kp-clientAuth only".into(),
                                );
                            }
                        } else if others || eku.client_auth || !eku.ocsp_signing {
                            fail(
                                "profile.ocsp-signer-eku",
                                "extendedKeyUsage must be id-kp-OCSPSigning only".into(),
                            );
                        }
                    }
                    ParsedExtension::ParseError { error } => {
                        fail("der.extension", format!("{}: {error}", e.oid))
                    }
                    _ => {}
                }
            }
            out
        }

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
                        "subjectAltName of a signing certificate holds only the six otherNames"
                            .into(),
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
            if sex.len() != 1
                || !matches!(sex, "1" | "2" | "9")
                || !sex.starts_with(attrs.sex().digit())
            {
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
    }

    use crate::profile::tests::{attributes, window, SPKI};
    use crate::profile::Issuer;

    const CN1: &str = "2601ABCDEFGHIJ05100203A";
    const CN2: &str = "2601ZZ234567AB05100203A";
    /// The serial of the root the test leaves name in their authorityKeyIdentifier.
    const ROOT_SERIAL: &[u8] = &[0x01];

    fn issuer(kid: &[u8]) -> Issuer<'_> {
        Issuer {
            key_id: kid,
            serial: ROOT_SERIAL,
            generation: 1,
        }
    }

    struct Case {
        label: String,
        tbs: Vec<u8>,
        hierarchy: Hierarchy,
        shape: Shape<'static>,
        kid: Option<Vec<u8>>,
        crl: Option<Scope>,
    }

    fn attrs() -> &'static Attributes {
        let policy = Policy::default_policy();
        Box::leak(Box::new(attributes(
            &policy,
            "髙橋　太郎",
            "東京都清瀬市中里一丁目1番地",
        )))
    }

    /// Certificates of every shape built under `built`, to be linted under other policies.
    fn cases(built: &Policy) -> Vec<Case> {
        let a = attrs();
        let kid = profile::key_identifier(SPKI).unwrap();
        let signing = Holder::Signing {
            prefecture: "東京都",
            municipality: "清瀬市",
            attributes: a,
        };
        let mut out = Vec::new();
        for h in Hierarchy::ALL {
            out.push(Case {
                label: format!("root {h}"),
                tbs: profile::root_tbs(built, h, window(&[1]), SPKI).unwrap(),
                hierarchy: h,
                shape: Shape::Root,
                kid: None,
                crl: None,
            });
            out.push(Case {
                label: format!("ocsp {h}"),
                tbs: profile::ocsp_signer_tbs(built, h, window(&[0x02, 0x03]), SPKI, &kid).unwrap(),
                hierarchy: h,
                shape: Shape::OcspSigner,
                kid: Some(kid.clone()),
                crl: None,
            });
        }
        let tsukuba = crate::Municipality::new("Ibaraki-ken", "Tsukuba-shi").unwrap();
        for (serial, crl) in [
            (&[0x41, 0x0f, 0x3c][..], Scope::Municipal(tsukuba)),
            (
                &[0x80, 0x01][..],
                Scope::Partition(built.partition_of(&[0x80, 0x01])),
            ),
        ] {
            out.push(Case {
                label: format!("signing {serial:02x?}"),
                tbs: profile::leaf_tbs(
                    built,
                    &signing,
                    CN1,
                    window(serial),
                    &crl,
                    SPKI,
                    issuer(&kid),
                )
                .unwrap(),
                hierarchy: Hierarchy::Signing,
                shape: Shape::Signing { attributes: a },
                kid: Some(kid.clone()),
                crl: Some(crl.clone()),
            });
            out.push(Case {
                label: format!("auth {serial:02x?}"),
                tbs: profile::leaf_tbs(
                    built,
                    &Holder::Auth,
                    CN2,
                    window(serial),
                    &crl,
                    SPKI,
                    issuer(&kid),
                )
                .unwrap(),
                hierarchy: Hierarchy::Auth,
                shape: Shape::Auth,
                kid: Some(kid.clone()),
                crl: Some(crl.clone()),
            });
        }
        out
    }

    fn policies() -> Vec<Policy> {
        let base = Policy::default_policy();
        let mut all = vec![base.clone()];
        let mut p = base.clone();
        p.auth.ocsp_url = false;
        p.signing.ocsp_url = true;
        p.crl.uri = true;
        p.crl.directory_name = false;
        p.auth.critical_policies = false;
        all.push(p);
        let mut p = base.clone();
        p.ca.organization = "組織".into();
        p.ca.cps_uri = "http://example.jp/cps".into();
        p.crl.partitions = 7;
        p.signing.policy_oid = "1.2.392.200149.8.5.1.3.30".into();
        p.auth.policy_oid = "1.2.392.200149.8.5.1.1.20".into();
        p.limits.min_rsa_bits = 4096;
        p.limits.address_max_chars = 5;
        all.push(p);
        let mut p = base.clone();
        p.ca.base_url = "http://例え.jp".into();
        all.push(p);
        all
    }

    fn both(policy: &Policy, tbs: &[u8], expect: &Expect<'_>) -> (Vec<Violation>, Vec<Violation>) {
        (
            lint(policy, tbs, expect),
            reference::lint(policy, tbs, expect),
        )
    }

    #[test]
    fn good_certificates_pass() {
        let policy = Policy::default_policy();
        for c in cases(&policy) {
            let expect = Expect {
                hierarchy: c.hierarchy,
                shape: c.shape,
                issuer: c.kid.as_deref().map(issuer),
                crl: c.crl.as_ref(),
            };
            assert_eq!(lint(&policy, &c.tbs, &expect), vec![], "{}", c.label);
            assert!(check(&policy, &c.tbs, &expect).is_ok());
        }
    }

    /// Every certificate against every policy, shape, hierarchy and issuer key: the same
    /// violations, in the same order, with the same details as the reference lint.
    #[test]
    fn agrees_with_the_reference_on_mismatched_profiles() {
        let policies = policies();
        let other_kid = [0x55; 20];
        let mut compared = 0;
        let mut failing = 0;
        for built in &policies {
            if !built.ca.base_url.is_ascii() {
                continue; // leaf_tbs refuses to build under this policy
            }
            let cs = cases(built);
            let a = attrs();
            let other_attrs: &'static Attributes = Box::leak(Box::new(
                Attributes::new(
                    "山田　花子",
                    date!(1990 - 05 - 01),
                    Sex::Female,
                    "大阪府",
                    &Policy::default_policy().limits,
                    date!(2026 - 01 - 01),
                )
                .unwrap(),
            ));
            for c in &cs {
                for policy in &policies {
                    for h in Hierarchy::ALL {
                        for shape in [
                            Shape::Root,
                            Shape::Signing { attributes: a },
                            Shape::Signing {
                                attributes: other_attrs,
                            },
                            Shape::Auth,
                            Shape::OcspSigner,
                        ] {
                            let kids = [
                                c.kid.as_deref().map(issuer),
                                None,
                                Some(issuer(&other_kid[..])),
                                c.kid.as_deref().map(|k| Issuer {
                                    key_id: k,
                                    serial: &[0x00, 0x01, 0x00],
                                    generation: 1,
                                }),
                            ];
                            for kid in kids {
                                let expect = Expect {
                                    hierarchy: h,
                                    shape,
                                    issuer: kid,
                                    crl: c.crl.as_ref(),
                                };
                                let (got, want) = both(policy, &c.tbs, &expect);
                                assert_eq!(got, want, "{} {expect:?}", c.label);
                                compared += 1;
                                failing += usize::from(!got.is_empty());
                            }
                        }
                    }
                }
            }
        }
        assert!(
            compared > 1000 && failing > compared / 2,
            "{compared} {failing}"
        );
    }

    /// Each byte of each certificate flipped: the same violations as the reference lint.
    #[test]
    fn agrees_with_the_reference_on_corrupted_bytes() {
        let policy = Policy::default_policy();
        let mut failing = 0;
        for c in cases(&policy) {
            let expect = Expect {
                hierarchy: c.hierarchy,
                shape: c.shape,
                issuer: c.kid.as_deref().map(issuer),
                crl: c.crl.as_ref(),
            };
            for i in 0..c.tbs.len() {
                for x in [0x01, 0x80, 0xFF] {
                    let mut tbs = c.tbs.clone();
                    tbs[i] ^= x;
                    let (got, want) = both(&policy, &tbs, &expect);
                    assert_eq!(got, want, "{} byte {i} ^ {x:#x}", c.label);
                    failing += usize::from(!got.is_empty());
                }
            }
        }
        assert!(failing > 1000, "{failing}");
    }
}
