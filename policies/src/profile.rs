//! The to-be-signed certificates of both hierarchies, as DER (reference §1–§3).
//!
//! rcgen cannot write JPKI's names (two OU, two L) or its extensions faithfully
//! (`crate-notes.md` §1, pitfalls 1–3), so the TBSCertificate is assembled here from
//! RustCrypto types, in the extension order real cards use, and signed by the caller.

use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Any, BitString, GeneralizedTime, Ia5String, Null, OctetString, Uint, UtcTime};
use der::{Decode, Encode, Sequence, Tag};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, IssuerAltName, KeyUsage,
    KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::time::{Time, Validity};

use crate::model::CardText;
use crate::{era, oid, Attributes, Error, Hierarchy, Policy};

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
            Any::new(Tag::PrintableString, value.as_bytes())
                .map_err(Error::der("PrintableString"))?
        } else {
            Any::new(Tag::Utf8String, value.as_bytes()).map_err(Error::der("UTF8String"))?
        };
        let rdn = RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue {
            oid: *oid,
            value: any,
        }])
        .map_err(Error::der("RDN"))?;
        seq.push(rdn);
    }
    let der = seq.to_der().map_err(Error::der("Name"))?;
    Name::from_der(&der).map_err(Error::der("Name"))
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
pub fn crl_dp_names(
    policy: &Policy,
    h: Hierarchy,
    scope: Scope,
) -> Result<Vec<GeneralName>, Error> {
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
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| Error::Date(format!("{t} is before 1970")))?;
    let d = core::time::Duration::from_secs(secs);
    if t.year() < 2050 {
        Ok(Time::UtcTime(
            UtcTime::from_unix_duration(d).map_err(Error::der("UTCTime"))?,
        ))
    } else {
        Ok(Time::GeneralTime(
            GeneralizedTime::from_unix_duration(d).map_err(Error::der("GeneralizedTime"))?,
        ))
    }
}

/// sha256WithRSAEncryption with NULL parameters (RFC 4055 §5: the parameters MUST be NULL).
pub fn sha256_with_rsa() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: oid::SHA256_WITH_RSA,
        parameters: Some(Any::from(Null)),
    }
}

/// RFC 5280 §4.1:
/// ```text
/// TBSCertificate  ::=  SEQUENCE  {
///      version         [0]  EXPLICIT Version DEFAULT v1,
///      serialNumber         CertificateSerialNumber,
///      signature            AlgorithmIdentifier,
///      issuer               Name,
///      validity             Validity,
///      subject              Name,
///      subjectPublicKeyInfo SubjectPublicKeyInfo,
///      issuerUniqueID  [1]  IMPLICIT UniqueIdentifier OPTIONAL,
///      subjectUniqueID [2]  IMPLICIT UniqueIdentifier OPTIONAL,
///      extensions      [3]  EXPLICIT Extensions OPTIONAL }
/// ```
/// Always v3 with extensions; the unique identifiers are never written (§4.1.2.8).
#[derive(Sequence)]
struct TbsCertificate {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial_number: Uint,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: Any,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Vec<Extension>,
}

/// RFC 5280 §4.1:
/// ```text
/// Certificate  ::=  SEQUENCE  {
///      tbsCertificate       TBSCertificate,
///      signatureAlgorithm   AlgorithmIdentifier,
///      signatureValue       BIT STRING  }
/// ```
#[derive(Sequence)]
struct Certificate {
    tbs_certificate: Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature_value: BitString,
}

/// Wraps a signed TBSCertificate into a Certificate.
pub fn assemble(tbs_der: &[u8], signature: &[u8]) -> Result<Vec<u8>, Error> {
    Certificate {
        tbs_certificate: Any::from_der(tbs_der).map_err(Error::der("TBSCertificate"))?,
        signature_algorithm: sha256_with_rsa(),
        signature_value: BitString::from_bytes(signature).map_err(Error::der("signature"))?,
    }
    .to_der()
    .map_err(Error::der("Certificate"))
}

/// An extension with `value`'s DER as its extnValue (RFC 5280 §4.1, `Extension`).
pub fn ext<T: Encode>(
    id: Oid,
    critical: bool,
    value: &T,
    what: &'static str,
) -> Result<Extension, Error> {
    Ok(Extension {
        extn_id: id,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(Error::der(what))?)
            .map_err(Error::der(what))?,
    })
}

fn key_usage(flags: impl Into<flagset::FlagSet<KeyUsages>>) -> Result<Extension, Error> {
    ext(
        oid::EXT_KEY_USAGE,
        true,
        &KeyUsage(flags.into()),
        "keyUsage",
    )
}

fn ski(spki_der: &[u8]) -> Result<Extension, Error> {
    let id =
        OctetString::new(key_identifier(spki_der)?).map_err(Error::der("subjectKeyIdentifier"))?;
    ext(
        oid::EXT_SKI,
        false,
        &SubjectKeyIdentifier(id),
        "subjectKeyIdentifier",
    )
}

fn aki(issuer_key_id: &[u8]) -> Result<Extension, Error> {
    let value = AuthorityKeyIdentifier {
        key_identifier: Some(
            OctetString::new(issuer_key_id).map_err(Error::der("authorityKeyIdentifier"))?,
        ),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    ext(oid::EXT_AKI, false, &value, "authorityKeyIdentifier")
}

fn crl_dp(policy: &Policy, h: Hierarchy, scope: Scope) -> Result<Extension, Error> {
    let dp = DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(crl_dp_names(
            policy, h, scope,
        )?)),
        reasons: None,
        crl_issuer: None,
    };
    ext(
        oid::EXT_CRL_DP,
        false,
        &CrlDistributionPoints(vec![dp]),
        "cRLDistributionPoints",
    )
}

fn policies_ext(policy: &Policy, h: Hierarchy, critical: bool) -> Result<Extension, Error> {
    let cps =
        Any::new(Tag::Ia5String, policy.ca.cps_uri.as_bytes()).map_err(Error::der("CPS URI"))?;
    let info = PolicyInformation {
        policy_identifier: policy.policy_oid(h),
        policy_qualifiers: Some(vec![PolicyQualifierInfo {
            policy_qualifier_id: oid::QT_CPS,
            qualifier: Some(cps),
        }]),
    };
    ext(
        oid::EXT_CERT_POLICIES,
        critical,
        &CertificatePolicies(vec![info]),
        "certificatePolicies",
    )
}

fn aia(policy: &Policy) -> Result<Extension, Error> {
    let url = Ia5String::new(&policy.ocsp_url()).map_err(Error::der("OCSP URL"))?;
    let value = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: oid::AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(url),
    }]);
    ext(oid::EXT_AIA, false, &value, "authorityInfoAccess")
}

fn utf8_other_name(type_id: Oid, value: &str) -> Result<GeneralName, Error> {
    Ok(GeneralName::OtherName(OtherName {
        type_id,
        value: Any::new(Tag::Utf8String, value.as_bytes()).map_err(Error::der("otherName"))?,
    }))
}

/// The six otherNames of a signing certificate, in the order real cards use (reference §2).
pub fn attribute_names(attrs: &Attributes) -> Result<Vec<GeneralName>, Error> {
    let name = CardText::from_register(attrs.name());
    let address = CardText::from_register(attrs.address());
    Ok(vec![
        utf8_other_name(oid::NAME, &name.text)?,
        utf8_other_name(oid::BIRTH, &era::encode_birth(attrs.birth()))?,
        utf8_other_name(oid::SEX, &attrs.sex().digit().to_string())?,
        utf8_other_name(oid::ADDRESS, &address.text)?,
        utf8_other_name(oid::NAME_FLAGS, &name.flags)?,
        utf8_other_name(oid::ADDRESS_FLAGS, &address.flags)?,
    ])
}

fn serial_uint(serial: &[u8]) -> Result<Uint, Error> {
    Uint::new(serial).map_err(Error::der("serialNumber"))
}

fn spki_any(spki_der: &[u8]) -> Result<Any, Error> {
    Any::from_der(spki_der).map_err(|e| Error::Parse {
        what: "subjectPublicKeyInfo",
        detail: e.to_string(),
    })
}

/// A certificate about to be signed, for profiles outside the two hierarchies (the platform
/// operators' CA uses it): v3, sha256WithRSAEncryption, the extensions in the given order.
pub struct Draft<'a> {
    pub serial: &'a [u8],
    pub issuer: Name,
    pub subject: Name,
    pub spki: &'a [u8],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub extensions: Vec<Extension>,
}

impl Draft<'_> {
    /// The DER TBSCertificate.
    pub fn tbs(self) -> Result<Vec<u8>, Error> {
        encode_tbs(TbsCertificate {
            version: 2,
            serial_number: serial_uint(self.serial)?,
            signature: sha256_with_rsa(),
            issuer: self.issuer,
            validity: Validity::new(x509_time(self.not_before)?, x509_time(self.not_after)?),
            subject: self.subject,
            subject_public_key_info: spki_any(self.spki)?,
            extensions: self.extensions,
        })
    }
}

fn encode_tbs(tbs: TbsCertificate) -> Result<Vec<u8>, Error> {
    tbs.to_der().map_err(Error::der("TBSCertificate"))
}

/// The validity window and serial number shared by every certificate.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub serial: &'a [u8],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Window<'_> {
    fn validity(&self) -> Result<Validity, Error> {
        Ok(Validity::new(
            x509_time(self.not_before)?,
            x509_time(self.not_after)?,
        ))
    }
}

/// A self-signed root (reference §1, "Root certificate extensions"): critical keyUsage
/// {keyCertSign, cRLSign}; subjectAltName directoryName in Japanese; critical basicConstraints
/// cA without pathLen; cRLDistributionPoints naming the CA-level CRL; subjectKeyIdentifier.
pub fn root_tbs(
    policy: &Policy,
    h: Hierarchy,
    w: Window<'_>,
    spki_der: &[u8],
) -> Result<Vec<u8>, Error> {
    let subject = root_name(policy, h)?;
    let extensions = vec![
        key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
        ext(
            oid::EXT_SAN,
            false,
            &SubjectAltName(vec![GeneralName::DirectoryName(root_name_ja(h)?)]),
            "subjectAltName",
        )?,
        ext(
            oid::EXT_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
            "basicConstraints",
        )?,
        crl_dp(policy, h, Scope::Ca)?,
        ski(spki_der)?,
    ];
    encode_tbs(TbsCertificate {
        version: 2,
        serial_number: serial_uint(w.serial)?,
        signature: sha256_with_rsa(),
        issuer: subject.clone(),
        validity: w.validity()?,
        subject,
        subject_public_key_info: spki_any(spki_der)?,
        extensions,
    })
}

/// What sets an end-entity certificate apart by kind.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    /// Signing certificate: `C=JP, L=<prefecture>, L=<municipality>, CN=<id>` and the four attributes.
    Signing {
        prefecture: &'a str,
        municipality: &'a str,
        attributes: &'a Attributes,
    },
    /// User-authentication certificate: `C=JP, CN=<id>`, no personal data.
    Auth,
}

impl Holder<'_> {
    pub fn hierarchy(&self) -> Hierarchy {
        match self {
            Holder::Signing { .. } => Hierarchy::Signing,
            Holder::Auth => Hierarchy::Auth,
        }
    }
}

/// The subject of an end-entity certificate.
pub fn leaf_subject(holder: &Holder<'_>, cn: &str) -> Result<Name, Error> {
    match holder {
        Holder::Signing {
            prefecture,
            municipality,
            ..
        } => name(&[
            (oid::AT_C, "JP"),
            (oid::AT_L, prefecture),
            (oid::AT_L, municipality),
            (oid::AT_CN, cn),
        ]),
        Holder::Auth => name(&[(oid::AT_C, "JP"), (oid::AT_CN, cn)]),
    }
}

/// An end-entity certificate issued directly by its hierarchy's root (reference §2, §3).
pub fn leaf_tbs(
    policy: &Policy,
    holder: &Holder<'_>,
    cn: &str,
    w: Window<'_>,
    spki_der: &[u8],
    issuer_key_id: &[u8],
) -> Result<Vec<u8>, Error> {
    let h = holder.hierarchy();
    let partition = policy.partition_of(w.serial);
    let mut extensions = Vec::with_capacity(8);
    match holder {
        Holder::Signing { attributes, .. } => {
            extensions.push(key_usage(
                KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            )?);
            extensions.push(ext(
                oid::EXT_SAN,
                false,
                &SubjectAltName(attribute_names(attributes)?),
                "subjectAltName",
            )?);
            extensions.push(policies_ext(policy, h, true)?);
        }
        Holder::Auth => {
            extensions.push(key_usage(KeyUsages::DigitalSignature)?);
            extensions.push(policies_ext(policy, h, policy.auth.critical_policies)?);
        }
    }
    extensions.push(ext(
        oid::EXT_IAN,
        false,
        &IssuerAltName(vec![GeneralName::DirectoryName(root_name_ja(h)?)]),
        "issuerAltName",
    )?);
    extensions.push(crl_dp(policy, h, Scope::Partition(partition))?);
    extensions.push(aki(issuer_key_id)?);
    extensions.push(ski(spki_der)?);
    if policy.ca.ocsp_url_in_certificates {
        extensions.push(aia(policy)?);
    }
    encode_tbs(TbsCertificate {
        version: 2,
        serial_number: serial_uint(w.serial)?,
        signature: sha256_with_rsa(),
        issuer: root_name(policy, h)?,
        validity: w.validity()?,
        subject: leaf_subject(holder, cn)?,
        subject_public_key_info: spki_any(spki_der)?,
        extensions,
    })
}

/// The subject of a hierarchy's delegated OCSP responder.
pub fn ocsp_signer_name(policy: &Policy, h: Hierarchy) -> Result<Name, Error> {
    name(&[
        (oid::AT_C, "JP"),
        (oid::AT_O, &policy.ca.organization),
        (oid::AT_OU, h.root_ou()),
        (oid::AT_OU, &policy.ca.operator),
        (oid::AT_CN, "OCSP Responder"),
    ])
}

/// A delegated OCSP responder certificate (RFC 6960 §4.2.2.2): critical keyUsage
/// digitalSignature, extendedKeyUsage id-kp-OCSPSigning, id-pkix-ocsp-nocheck (§4.2.2.2.1),
/// AKI, SKI.
pub fn ocsp_signer_tbs(
    policy: &Policy,
    h: Hierarchy,
    w: Window<'_>,
    spki_der: &[u8],
    issuer_key_id: &[u8],
) -> Result<Vec<u8>, Error> {
    let nocheck = Extension {
        extn_id: oid::OCSP_NOCHECK,
        critical: false,
        extn_value: OctetString::new(Null.to_der().map_err(Error::der("NULL"))?)
            .map_err(Error::der("ocsp-nocheck"))?,
    };
    let extensions = vec![
        key_usage(KeyUsages::DigitalSignature)?,
        ext(
            oid::EXT_EKU,
            false,
            &ExtendedKeyUsage(vec![oid::KP_OCSP_SIGNING]),
            "extendedKeyUsage",
        )?,
        nocheck,
        aki(issuer_key_id)?,
        ski(spki_der)?,
    ];
    encode_tbs(TbsCertificate {
        version: 2,
        serial_number: serial_uint(w.serial)?,
        signature: sha256_with_rsa(),
        issuer: root_name(policy, h)?,
        validity: w.validity()?,
        subject: ocsp_signer_name(policy, h)?,
        subject_public_key_info: spki_any(spki_der)?,
        extensions,
    })
}
