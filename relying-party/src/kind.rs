//! Which kind of JPKI certificate this is (reference §2–§3), and the four holder attributes
//! of a signing certificate.
//!
//! * signing (署名用): keyUsage digitalSignature + nonRepudiation, certificatePolicies
//!   `1.2.392.200149.8.5.1.1.20` (test environment `…1.0.20`);
//! * authentication (利用者証明用): keyUsage digitalSignature without nonRepudiation,
//!   certificatePolicies `1.2.392.200149.8.5.1.3.30`.
//!
//! An authentication certificate signing a document is refused, and the other way round.

use policies::{Hierarchy, Policy};
use serde::Serialize;
use x509_parser::prelude::*;

use crate::Error;

const SIGNING_OIDS: [&str; 2] = ["1.2.392.200149.8.5.1.1.20", "1.2.392.200149.8.5.1.0.20"];
const AUTH_OIDS: [&str; 1] = ["1.2.392.200149.8.5.1.3.30"];

/// The certificatePolicies OIDs accepted for each kind.
#[derive(Debug, Clone)]
pub struct Expected {
    pub signing: Vec<String>,
    pub auth: Vec<String>,
}

impl Expected {
    /// Production and test-environment signing policy; the authentication policy.
    pub fn jpki() -> Expected {
        Expected {
            signing: SIGNING_OIDS.iter().map(|s| s.to_string()).collect(),
            auth: AUTH_OIDS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Also accepts smartphone certificates: each accepted OID followed by the arc `.1`
    /// (jpki's phone marker, docs/phone.md). Off by default: a relying party that has not
    /// decided to accept phone certificates refuses them, as the real card-only ones do.
    pub fn with_phone(mut self) -> Expected {
        for list in [&mut self.signing, &mut self.auth] {
            let phone: Vec<String> = list.iter().map(|o| format!("{o}.1")).collect();
            list.extend(phone);
        }
        self
    }

    /// Whether `oid` is a smartphone certificate's policy (an accepted card OID plus `.1`).
    pub fn is_phone(&self, oid: &str) -> bool {
        oid.strip_suffix(".1")
            .is_some_and(|card| self.signing.iter().chain(&self.auth).any(|o| o == card))
    }

    /// Exactly the OIDs of an operator's policy file.
    pub fn from_policy(p: &Policy) -> Expected {
        Expected {
            signing: vec![p.policy_oid(Hierarchy::Signing).to_string()],
            auth: vec![p.policy_oid(Hierarchy::Auth).to_string()],
        }
    }

    fn oids(&self, h: Hierarchy) -> &[String] {
        match h {
            Hierarchy::Signing => &self.signing,
            Hierarchy::Auth => &self.auth,
        }
    }
}

fn label(h: Hierarchy) -> &'static str {
    match h {
        Hierarchy::Signing => "signing",
        Hierarchy::Auth => "authentication",
    }
}

/// Checks the policy and keyUsage of `leaf` for kind `want`; returns the matched policy OID.
pub fn check(
    leaf: &X509Certificate<'_>,
    want: Hierarchy,
    expected: &Expected,
) -> Result<String, Error> {
    let other = match want {
        Hierarchy::Signing => Hierarchy::Auth,
        Hierarchy::Auth => Hierarchy::Signing,
    };
    let found = policy_oids(leaf);
    if let Some(o) = found
        .iter()
        .find(|o| expected.oids(other).contains(o) || all_known(other).contains(&o.as_str()))
    {
        return Err(Error::WrongKind {
            expected: label(want),
            found: label(other),
            oid: o.clone(),
        });
    }
    let matched = found
        .iter()
        .find(|o| expected.oids(want).contains(o))
        .cloned()
        .ok_or_else(|| Error::PolicyMismatch {
            expected: label(want),
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        })?;
    let ku = leaf
        .key_usage()
        .map_err(|e| signed_data::Error::BadExtension {
            oid: "keyUsage".into(),
            detail: e.to_string(),
        })?
        .map(|k| *k.value);
    let flags = ku.map(|k| ku_flags(&k)).unwrap_or_else(|| "absent".into());
    let ok = match (want, ku) {
        (Hierarchy::Signing, Some(k)) => k.digital_signature() && k.non_repudiation(),
        (Hierarchy::Auth, Some(k)) => k.digital_signature() && !k.non_repudiation(),
        (_, None) => false,
    };
    if !ok {
        let needed = match want {
            Hierarchy::Signing => "digitalSignature and nonRepudiation",
            Hierarchy::Auth => "digitalSignature without nonRepudiation",
        };
        return Err(Error::KeyUsage {
            kind: label(want),
            found: flags,
            needed,
        });
    }
    Ok(matched)
}

fn all_known(h: Hierarchy) -> &'static [&'static str] {
    match h {
        Hierarchy::Signing => &SIGNING_OIDS,
        Hierarchy::Auth => &AUTH_OIDS,
    }
}

fn policy_oids(leaf: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for ext in leaf.extensions() {
        if let ParsedExtension::CertificatePolicies(cp) = ext.parsed_extension() {
            out.extend(cp.iter().map(|p| p.policy_id.to_id_string()));
        }
    }
    out
}

fn ku_flags(k: &KeyUsage) -> String {
    let names = [
        (k.digital_signature(), "digitalSignature"),
        (k.non_repudiation(), "nonRepudiation"),
        (k.key_encipherment(), "keyEncipherment"),
        (k.data_encipherment(), "dataEncipherment"),
        (k.key_agreement(), "keyAgreement"),
        (k.key_cert_sign(), "keyCertSign"),
        (k.crl_sign(), "cRLSign"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "none".into()
    } else {
        set.join("+")
    }
}

/// The holder attributes of a signing certificate (reference §2, subjectAltName otherNames).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HolderAttributes {
    /// 氏名 (`…5.5.1`).
    pub name: String,
    /// 生年月日 (`…5.5.4`).
    pub birth: Birth,
    /// 性別 (`…5.5.3`).
    pub sex: SexCode,
    /// 住所 (`…5.5.5`).
    pub address: String,
    /// Substitute-character flags of the name (`…5.5.2`), one digit per character.
    pub name_flags: Option<String>,
    /// Substitute-character flags of the address (`…5.5.6`).
    pub address_flags: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Birth {
    /// As written: `EYYYYMMDD`.
    pub raw: String,
    /// Gregorian `YYYY-MM-DD`.
    pub date: String,
    /// Era name (明治 … 令和), from the era digit.
    pub era: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SexCode {
    pub code: String,
    pub label: &'static str,
}

const OID_NAME: &str = "1.2.392.200149.8.5.5.1";
const OID_NAME_FLAGS: &str = "1.2.392.200149.8.5.5.2";
const OID_SEX: &str = "1.2.392.200149.8.5.5.3";
const OID_BIRTH: &str = "1.2.392.200149.8.5.5.4";
const OID_ADDRESS: &str = "1.2.392.200149.8.5.5.5";
const OID_ADDRESS_FLAGS: &str = "1.2.392.200149.8.5.5.6";

/// Decodes the six otherNames. The four attributes are required; the flags are optional.
pub fn attributes(leaf: &X509Certificate<'_>) -> Result<HolderAttributes, Error> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| Error::Attributes(format!("subjectAltName: {e}")))?
        .ok_or_else(|| Error::Attributes("no subjectAltName".into()))?;
    let mut values: Vec<(String, String)> = Vec::new();
    for gn in &san.value.general_names {
        if let GeneralName::OtherName(oid, raw) = gn {
            let id = oid.to_id_string();
            if id.starts_with("1.2.392.200149.8.5.5.") {
                if values.iter().any(|(o, _)| *o == id) {
                    return Err(Error::Attributes(format!("{id} appears twice")));
                }
                values.push((id, other_name_utf8(raw)?));
            }
        }
    }
    let take = |oid: &str| {
        values
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, v)| v.clone())
    };
    let need = |oid: &str, what: &str| {
        take(oid).ok_or_else(|| Error::Attributes(format!("{what} ({oid}) missing")))
    };
    let raw_birth = need(OID_BIRTH, "date of birth")?;
    let date = policies::era::decode_birth(&raw_birth).ok_or_else(|| {
        Error::Attributes(format!(
            "date of birth `{raw_birth}` is not EYYYYMMDD with a matching era digit"
        ))
    })?;
    // decode_birth accepted exactly nine ASCII digits, so byte 0 exists and is a digit.
    let era_digit = raw_birth.as_bytes()[0] - b'0';
    let code = need(OID_SEX, "sex")?;
    let label = match code.as_str() {
        "1" => "male (男)",
        "2" => "female (女)",
        "3" | "9" => "not known (不明)",
        other => {
            return Err(Error::Attributes(format!(
                "sex code `{other}` is not 1, 2, 3 or 9"
            )))
        }
    };
    Ok(HolderAttributes {
        name: need(OID_NAME, "name")?,
        birth: Birth {
            date: format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            era: policies::era::era_name(era_digit),
            raw: raw_birth,
        },
        sex: SexCode { code, label },
        address: need(OID_ADDRESS, "address")?,
        name_flags: take(OID_NAME_FLAGS),
        address_flags: take(OID_ADDRESS_FLAGS),
    })
}

/// x509-parser hands the otherName value over WITH its `[0] EXPLICIT` wrapper
/// (crate-notes §7): `A0 len 0C len utf8…`.
fn other_name_utf8(raw: &[u8]) -> Result<String, Error> {
    use der::{Decode, Tagged};
    let outer = der::asn1::AnyRef::from_der(raw)
        .map_err(|e| Error::Attributes(format!("otherName value: {e}")))?;
    if outer.tag()
        != (der::Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(0),
        })
    {
        return Err(Error::Attributes(format!(
            "otherName value has tag {} instead of [0]",
            outer.tag()
        )));
    }
    let s = der::asn1::Utf8StringRef::from_der(outer.value())
        .map_err(|e| Error::Attributes(format!("otherName value is not a UTF8String: {e}")))?;
    Ok(s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Pki;

    fn p(der: &[u8]) -> X509Certificate<'_> {
        crate::cert::parse(der, "test").unwrap()
    }

    const SAN: &str = "subjectAltName = otherName:1.2.392.200149.8.5.5.1;UTF8:YAMADA, otherName:1.2.392.200149.8.5.5.4;UTF8:319800217, otherName:1.2.392.200149.8.5.5.3;UTF8:2, otherName:1.2.392.200149.8.5.5.5;UTF8:TOKYO";

    #[test]
    fn signing_and_auth_fixtures_are_recognised() {
        let pki = Pki::get();
        let (sign, auth) = (pki.der("sign/good.pem"), pki.der("auth/auth.pem"));
        assert_eq!(
            check(&p(&sign), Hierarchy::Signing, &Expected::jpki()).unwrap(),
            "1.2.392.200149.8.5.1.1.20"
        );
        assert_eq!(
            check(&p(&auth), Hierarchy::Auth, &Expected::jpki()).unwrap(),
            "1.2.392.200149.8.5.1.3.30"
        );
        let e = check(&p(&auth), Hierarchy::Signing, &Expected::jpki()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::WrongKind {
                    found: "authentication",
                    ..
                }
            ),
            "{e}"
        );
        let e = check(&p(&sign), Hierarchy::Auth, &Expected::jpki()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::WrongKind {
                    found: "signing",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn the_test_environment_policy_is_accepted_unless_a_policy_file_says_otherwise() {
        let pki = Pki::get();
        let test_env = pki.issue(
            "sign/root",
            "keyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = critical, 1.2.392.200149.8.5.1.0.20",
            &[],
        );
        assert_eq!(
            check(&p(&test_env), Hierarchy::Signing, &Expected::jpki()).unwrap(),
            "1.2.392.200149.8.5.1.0.20"
        );
        let production = Expected::from_policy(&Policy::default_policy());
        let e = check(&p(&test_env), Hierarchy::Signing, &production).unwrap_err();
        assert!(matches!(e, Error::PolicyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("1.2.392.200149.8.5.1.0.20"), "{e}");
    }

    #[test]
    fn a_missing_or_foreign_policy_is_refused() {
        let pki = Pki::get();
        let none = pki.issue(
            "sign/root",
            "keyUsage = critical, digitalSignature, nonRepudiation",
            &[],
        );
        let e = check(&p(&none), Hierarchy::Signing, &Expected::jpki()).unwrap_err();
        assert!(e.to_string().contains("found: none"), "{e}");
        let foreign = pki.issue("sign/root", "keyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = 2.5.29.32.0", &[]);
        assert!(matches!(
            check(&p(&foreign), Hierarchy::Signing, &Expected::jpki()),
            Err(Error::PolicyMismatch { .. })
        ));
    }

    #[test]
    fn key_usage_must_fit_the_kind() {
        let pki = Pki::get();
        let no_nr = pki.issue(
            "sign/root",
            "keyUsage = critical, digitalSignature\ncertificatePolicies = critical, 1.2.392.200149.8.5.1.1.20",
            &[],
        );
        let e = check(&p(&no_nr), Hierarchy::Signing, &Expected::jpki()).unwrap_err();
        assert!(
            matches!(&e, Error::KeyUsage { found, .. } if found == "digitalSignature"),
            "{e}"
        );
        let auth_with_nr = pki.issue(
            "sign/root",
            "keyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = 1.2.392.200149.8.5.1.3.30",
            &[],
        );
        assert!(matches!(
            check(&p(&auth_with_nr), Hierarchy::Auth, &Expected::jpki()),
            Err(Error::KeyUsage { .. })
        ));
        let no_ku = pki.issue(
            "sign/root",
            "certificatePolicies = critical, 1.2.392.200149.8.5.1.1.20",
            &[],
        );
        let e = check(&p(&no_ku), Hierarchy::Signing, &Expected::jpki()).unwrap_err();
        assert!(e.to_string().contains("absent"), "{e}");
    }

    #[test]
    fn attributes_decode_and_bad_values_are_named() {
        let pki = Pki::get();
        let a = attributes(&p(&pki.issue("sign/root", SAN, &[]))).unwrap();
        assert_eq!(
            (
                a.name.as_str(),
                a.birth.date.as_str(),
                a.birth.era,
                a.sex.code.as_str()
            ),
            ("YAMADA", "1980-02-17", "昭和", "2")
        );
        assert_eq!(a.address, "TOKYO");
        assert_eq!(a.name_flags, None);
        // Era digit 4 (Heisei) with a Showa date.
        let bad_era = pki.issue("sign/root", &SAN.replace("319800217", "419800217"), &[]);
        let e = attributes(&p(&bad_era)).unwrap_err();
        assert!(e.to_string().contains("419800217"), "{e}");
        let bad_sex = pki.issue("sign/root", &SAN.replace("UTF8:2", "UTF8:7"), &[]);
        assert!(attributes(&p(&bad_sex))
            .unwrap_err()
            .to_string()
            .contains("sex code"));
        let no_address = pki.issue(
            "sign/root",
            &SAN.replace(", otherName:1.2.392.200149.8.5.5.5;UTF8:TOKYO", ""),
            &[],
        );
        assert!(attributes(&p(&no_address))
            .unwrap_err()
            .to_string()
            .contains("address"));
        // A value that is not a UTF8String.
        let ia5 = pki.issue(
            "sign/root",
            &SAN.replace("5.5.1;UTF8:YAMADA", "5.5.1;IA5:YAMADA"),
            &[],
        );
        assert!(attributes(&p(&ia5))
            .unwrap_err()
            .to_string()
            .contains("not a UTF8String"));
    }
}
