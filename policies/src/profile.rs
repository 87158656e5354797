//! The to-be-signed certificates of both hierarchies, as DER (reference §1–§3).
//!
//! rcgen cannot write JPKI's names (two OU, two L) or its extensions faithfully
//! (`crate-notes.md` §1, pitfalls 1–3), so the TBSCertificate is assembled here from
//! RustCrypto types, in the extension order real cards use, and signed by the caller.

use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Any, BitString, GeneralizedTime, Ia5String, Null, OctetString, Uint, UtcTime};
use der::{Decode, Encode, Sequence, Tag};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::time::{Time, Validity};

use crate::model::CardText;
use crate::{oid, Error, Hierarchy, Policy};

/// Which CRL a certificate's distribution point names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// An end-entity partition (`crl.partitions` per hierarchy).
    Partition(u16),
    /// The CRL that covers the hierarchy's CA-level certificates (root, OCSP signers).
    Ca,
}

/// Builds a Name from attributes in DER order (most general first). `C` is written as a
/// PrintableString, everything else as UTF8String (reference §1, "Attribute encodings").
pub fn name(attrs: &[(Oid, &str)]) -> Result<Name, Error> {
    let mut seq = RdnSequence::default();
    for (oid, value) in attrs {
        let any = if *oid == oid::AT_C {
            Any::new(Tag::PrintableString, value.as_bytes()).map_err(Error::der("PrintableString"))?
        } else {
            Any::new(Tag::Utf8String, value.as_bytes()).map_err(Error::der("UTF8String"))?
        };
        let rdn = RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue { oid: *oid, value: any }])
            .map_err(Error::der("RDN"))?;
        seq.push(rdn);
    }
    Ok(Name::hazmat_from_rdn_sequence(seq))
}

/// `C=JP, O=<org>, OU=<JPKI for …>, OU=<operator>` — the root's subject and every leaf's issuer.
pub fn root_name(policy: &Policy, h: Hierarchy) -> Result<Name, Error> {
    name(&[
        (oid::AT_C, "JP"),
        (oid::AT_O, &policy.ca.organization),
        (oid::AT_OU, h.root_ou()),
        (oid::AT_OU, &policy.ca.operator),
    ])
}

/// The root's subjectAltName / the leaves' issuerAltName directoryName, in Japanese.
pub fn root_name_ja(h: Hierarchy) -> Result<Name, Error> {
    name(&[
        (oid::AT_C, "JP"),
        (oid::AT_O, "公的個人認証サービス"),
        (oid::AT_OU, h.root_ou_ja()),
        (oid::AT_OU, "地方公共団体情報システム機構"),
    ])
}

/// The names of one CRL distribution point: the HTTP URL, plus the JPKI-style directoryName
/// `C=JP, O=<org>, OU=<JPKI for …>, OU=CRL Distribution Points, CN=P<nnnn> CRLDP` when
/// `crl.directory_name` is set (the CA-level CRL uses the root's own DN, as J-LIS's roots do).
/// The same list is the fullName of the certificate's cRLDistributionPoints and of the
/// CRL's issuingDistributionPoint, so that they match (RFC 5280 §5.2.5, §6.3.3 (b)(2)).
pub fn crl_dp_names(policy: &Policy, h: Hierarchy, scope: Scope) -> Result<Vec<GeneralName>, Error> {
    let url = match scope {
        Scope::Partition(p) => policy.crl_url(h, p),
        Scope::Ca => policy.ca_crl_url(h),
    };
    let mut names = vec![GeneralName::UniformResourceIdentifier(
        Ia5String::new(&url).map_err(Error::der("CRL URL"))?,
    )];
    if policy.crl.directory_name {
        let dn = match scope {
            Scope::Partition(p) => {
                let cn = format!("P{p:04} CRLDP");
                name(&[
                    (oid::AT_C, "JP"),
                    (oid::AT_O, &policy.ca.organization),
                    (oid::AT_OU, h.root_ou()),
                    (oid::AT_OU, "CRL Distribution Points"),
                    (oid::AT_CN, &cn),
                ])?
            }
            Scope::Ca => root_name(policy, h)?,
        };
        names.push(GeneralName::DirectoryName(dn));
    }
    Ok(names)
}

/// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value.
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, Error> {
    use sha1::Digest;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|e| Error::Parse {
        what: "subjectPublicKeyInfo",
        detail: e.to_string(),
    })?;
    Ok(sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
}

/// `Time` as RFC 5280 §4.1.2.5 asks: UTCTime through 2049, GeneralizedTime from 2050.
pub fn x509_time(t: time::OffsetDateTime) -> Result<Time, Error> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| Error::Date(format!("{t} is before 1970")))?;
    let d = core::time::Duration::from_secs(secs);
    if t.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(d).map_err(Error::der("UTCTime"))?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(d).map_err(Error::der("GeneralizedTime"))?))
    }
}
