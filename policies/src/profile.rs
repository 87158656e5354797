//! The to-be-signed certificates of both hierarchies, as DER (reference §1–§3).
//!
//! rcgen cannot write JPKI's names (two OU, two L) or its extensions faithfully
//! (`crate-notes.md` §1, pitfalls 1–3), so the TBSCertificate is assembled here from
//! RustCrypto types, in the extension order of the real certificate (see [`leaf_tbs`]:
//! subjectKeyIdentifier last), and signed by the caller.

use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Any, BitString, GeneralizedTime, Ia5String, Null, OctetString, Uint, UtcTime};
use der::{Decode, Encode, Sequence, Tag};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage,
    KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::time::{Time, Validity};

use crate::model::CardText;
/// Which CRL a distribution point names: defined beside [`crate::Municipality`] so that the
/// policy can choose one without importing the profile.
pub use crate::partition::Scope;
use crate::{era, oid, Attributes, Error, Hierarchy, Policy};

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
    name(&root_attrs(policy, h))
}

/// The attributes of [`root_name`] (also written by `write_root_name`).
fn root_attrs(policy: &Policy, h: Hierarchy) -> [(Oid, &str); 4] {
    [
        (oid::AT_C, "JP"),
        (oid::AT_O, &policy.ca.organization),
        (oid::AT_OU, h.root_ou()),
        (oid::AT_OU, &policy.ca.operator),
    ]
}

/// The root's subjectAltName / the leaves' issuerAltName directoryName, in Japanese.
pub fn root_name_ja(h: Hierarchy) -> Result<Name, Error> {
    name(&root_ja_attrs(h))
}

/// The attributes of [`root_name_ja`] (also written by `write_root_name_ja`).
fn root_ja_attrs(h: Hierarchy) -> [(Oid, &'static str); 4] {
    [
        (oid::AT_C, "JP"),
        (oid::AT_O, "公的個人認証サービス"),
        (oid::AT_OU, h.root_ou_ja()),
        (oid::AT_OU, "地方公共団体情報システム機構"),
    ]
}

/// The names of one CRL distribution point: the JPKI-style directoryName
/// `C=JP, O=<org>, OU=<JPKI for …>, OU=CRL Distribution Points, CN=P<nnnn> CRLDP` when
/// `crl.directory_name` is set (the CA-level CRL uses the root's own DN, as J-LIS's roots do),
/// preceded by the HTTP URL when `crl.uri` is set. The real profile names a directory only
/// (reference §3); the URL is jpki's addition for open deployments.
/// The same list is the fullName of the certificate's cRLDistributionPoints and of the
/// CRL's issuingDistributionPoint, so that they match (RFC 5280 §5.2.5, §6.3.3 (b)(2)).
pub fn crl_dp_names(
    policy: &Policy,
    h: Hierarchy,
    scope: Scope,
) -> Result<Vec<GeneralName>, Error> {
    crl_dp_names_of(policy, h, 1, scope)
}

/// [`crl_dp_names`] of the CRL that root generation `generation` signs: the URL names the
/// generation ([`crl_dir`]); the directoryName is the same for every generation (as the
/// roots' DN is: a relying party tells the generations' CRLs apart by the issuer's key, the
/// CRL's authorityKeyIdentifier).
pub fn crl_dp_names_of(
    policy: &Policy,
    h: Hierarchy,
    generation: u32,
    scope: Scope,
) -> Result<Vec<GeneralName>, Error> {
    let mut names = Vec::with_capacity(2);
    if policy.crl.uri {
        let mut url = Vec::new();
        write_crl_url(&mut url, policy, h, generation, &scope);
        names.push(GeneralName::UniformResourceIdentifier(
            Ia5String::new(&url).map_err(Error::der("CRL URL"))?,
        ));
    }
    if policy.crl.directory_name {
        let dn = with_crl_dn_attrs(policy, h, &scope, name)?;
        names.push(GeneralName::DirectoryName(dn));
    }
    Ok(names)
}

/// The OU every end-entity partition's directoryName carries before its own name.
pub const CRL_DP_OU: &str = "CRL Distribution Points";

/// Hands `f` the attributes of the directoryName of [`crl_dp_names`] (also written by
/// `write_crl_dn`).
fn with_crl_dn_attrs<R>(
    policy: &Policy,
    h: Hierarchy,
    scope: &Scope,
    f: impl FnOnce(&[(Oid, &str)]) -> R,
) -> R {
    match scope {
        Scope::Partition(p) => {
            let cn = format!("P{p:04} CRLDP");
            f(&[
                (oid::AT_C, "JP"),
                (oid::AT_O, &policy.ca.organization),
                (oid::AT_OU, h.root_ou()),
                (oid::AT_OU, CRL_DP_OU),
                (oid::AT_CN, &cn),
            ])
        }
        // REAL-AUTH: `…, OU=CRL Distribution Points, OU=Ibaraki-ken, CN=Tsukuba-shi CRLDP`.
        Scope::Municipal(m) => f(&[
            (oid::AT_C, "JP"),
            (oid::AT_O, &policy.ca.organization),
            (oid::AT_OU, h.root_ou()),
            (oid::AT_OU, CRL_DP_OU),
            (oid::AT_OU, m.prefecture()),
            (oid::AT_CN, &m.cn()),
        ]),
        Scope::Ca => f(&root_attrs(policy, h)),
    }
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

/// A critical keyUsage extension (RFC 5280 §4.2.1.3).
pub fn key_usage(flags: impl Into<flagset::FlagSet<KeyUsages>>) -> Result<Extension, Error> {
    ext(
        oid::EXT_KEY_USAGE,
        true,
        &KeyUsage(flags.into()),
        "keyUsage",
    )
}

/// The subjectKeyIdentifier of a key (RFC 5280 §4.2.1.2, method 1: SHA-1 of the key bits).
pub fn ski(spki_der: &[u8]) -> Result<Extension, Error> {
    let id =
        OctetString::new(key_identifier(spki_der)?).map_err(Error::der("subjectKeyIdentifier"))?;
    ext(
        oid::EXT_SKI,
        false,
        &SubjectKeyIdentifier(id),
        "subjectKeyIdentifier",
    )
}

/// The issuing root as an end-entity certificate's authorityKeyIdentifier names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issuer<'a> {
    /// The root's key identifier (its subjectKeyIdentifier).
    pub key_id: &'a [u8],
    /// The root certificate's serial number, big-endian as in the certificate.
    pub serial: &'a [u8],
    /// Which generation of the hierarchy's root it is (1: the root `jpki init` made). From
    /// generation 2 on, the certificate's CRL URL names it ([`crl_dir`]): each generation signs
    /// the CRLs of the certificates it issued (docs/roots.md).
    pub generation: u32,
}

/// The directory below `/crl/` of the CRLs a root generation signs: `signing` or `auth` for
/// generation 1 (the URLs every certificate had before root generations), `signing-g2`,
/// `auth-g3`, … after a rollover. The hierarchy's segment is never a prefecture, so the
/// name cannot be mistaken for a municipal partition's path.
pub fn crl_dir(h: Hierarchy, generation: u32) -> String {
    if generation <= 1 {
        h.as_str().to_owned()
    } else {
        format!("{}-g{generation}", h.as_str())
    }
}

/// The full authorityKeyIdentifier of end-entity certificates (RFC 5280 §4.2.1.1):
/// ```text
/// AuthorityKeyIdentifier ::= SEQUENCE {
///     keyIdentifier             [0] KeyIdentifier           OPTIONAL,
///     authorityCertIssuer       [1] GeneralNames            OPTIONAL,
///     authorityCertSerialNumber [2] CertificateSerialNumber OPTIONAL  }
/// ```
/// with all three: the root's key identifier, its name as one directoryName and its serial,
/// as the real authentication certificate has it (reference §3). All generations of a root
/// share one DN, so the serial (or the key id) is what picks the generation.
pub fn aki_full(policy: &Policy, h: Hierarchy, issuer: Issuer<'_>) -> Result<Extension, Error> {
    let what = "authorityKeyIdentifier";
    let value = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_id).map_err(Error::der(what))?),
        authority_cert_issuer: Some(vec![GeneralName::DirectoryName(root_name(policy, h)?)]),
        authority_cert_serial_number: Some(issuer_serial(issuer.serial)?),
    };
    ext(oid::EXT_AKI, false, &value, what)
}

/// The issuer's serial as a `SerialNumber`: a positive integer of at most 20 octets once
/// encoded, and not empty (der would write an empty INTEGER).
fn issuer_serial(serial: &[u8]) -> Result<x509_cert::serial_number::SerialNumber, Error> {
    let what = "authorityKeyIdentifier";
    if serial.is_empty() {
        let kind = der::ErrorKind::Length { tag: Tag::Integer };
        return Err(Error::der(what)(kind.into()));
    }
    x509_cert::serial_number::SerialNumber::new(serial).map_err(Error::der(what))
}

/// An authorityKeyIdentifier naming the issuer's key identifier only (RFC 5280 §4.2.1.1),
/// for the certificates outside the real profile (OCSP signers, the operator CA's).
pub fn aki(issuer_key_id: &[u8]) -> Result<Extension, Error> {
    let value = AuthorityKeyIdentifier {
        key_identifier: Some(
            OctetString::new(issuer_key_id).map_err(Error::der("authorityKeyIdentifier"))?,
        ),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    ext(oid::EXT_AKI, false, &value, "authorityKeyIdentifier")
}

fn crl_dp(
    policy: &Policy,
    h: Hierarchy,
    generation: u32,
    scope: Scope,
) -> Result<Extension, Error> {
    let dp = DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(crl_dp_names_of(
            policy, h, generation, scope,
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
        crl_dp(policy, h, 1, Scope::Ca)?,
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

/// The base-32 alphabet of the random part of [`leaf_cn`] (RFC 4648 §6), a subset of the
/// `[0-9A-Z]` the real CNs use, so that each random byte gives one unbiased character.
const CN_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The subject CN of an end-entity certificate: 23 characters in the shape of the real ones,
/// `\d{4}[0-9A-Z]{10}\d{8}A` (reference §3: `840444E37PAFHN08220003A`, test card
/// `997794E9AGCIEG13221003A`).
///
/// What the real parts mean is not published: the reference confirms the shape only, and
/// the digits of the real example do not read as its issuance date (2019-07-25). jpki fills
/// the shape with what its CN carried before, never anything of the holder: the issuance
/// instant in JST as `YYMM` + ten random base-32 characters (50 bits) + `DDhhmmss`, and the
/// constant `A` both known examples end with.
pub fn leaf_cn(issued_at: OffsetDateTime, random: &[u8; 10]) -> String {
    let t = issued_at.to_offset(crate::validity::JST);
    let mut s = String::with_capacity(23);
    s.push_str(&format!(
        "{:02}{:02}",
        t.year().rem_euclid(100),
        u8::from(t.month())
    ));
    s.extend(
        random
            .iter()
            .map(|b| char::from(CN_ALPHABET[usize::from(b % 32)])),
    );
    s.push_str(&format!(
        "{:02}{:02}{:02}{:02}A",
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ));
    s
}

/// Whether `cn` has the shape of a real end-entity CN, `\d{4}[0-9A-Z]{10}\d{8}A` (the lint's
/// rule `profile.subject-cn`).
pub fn is_leaf_cn(cn: &str) -> bool {
    let b = cn.as_bytes();
    b.len() == 23
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4..14]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        && b[14..22].iter().all(u8::is_ascii_digit)
        && b[22] == b'A'
}

/// The subject of an end-entity certificate.
pub fn leaf_subject(holder: &Holder<'_>, cn: &str) -> Result<Name, Error> {
    with_leaf_subject_attrs(holder, cn, name)
}

/// Hands `f` the attributes of [`leaf_subject`] (also written by [`leaf_tbs`]).
fn with_leaf_subject_attrs<R>(
    holder: &Holder<'_>,
    cn: &str,
    f: impl FnOnce(&[(Oid, &str)]) -> R,
) -> R {
    match holder {
        Holder::Signing {
            prefecture,
            municipality,
            ..
        } => f(&[
            (oid::AT_C, "JP"),
            (oid::AT_L, prefecture),
            (oid::AT_L, municipality),
            (oid::AT_CN, cn),
        ]),
        Holder::Auth => f(&[(oid::AT_C, "JP"), (oid::AT_CN, cn)]),
    }
}

/// An end-entity certificate issued directly by its hierarchy's root (reference §2, §3),
/// with the extensions in the real certificate's order — subjectKeyIdentifier last, because
/// relying-party code written for real certificates hashes the TBS up to the SKI on one side
/// and appends the SKI on the other:
///
/// | signing | authentication |
/// |---|---|
/// | keyUsage (critical) | keyUsage (critical) |
/// | subjectAltName (the four attributes) | extendedKeyUsage id-kp-clientAuth |
/// | certificatePolicies (critical) | certificatePolicies (critical by default) |
/// | issuerAltName | issuerAltName |
/// | cRLDistributionPoints | cRLDistributionPoints |
/// | authorityInfoAccess (only with `signing.ocsp_url`) | authorityInfoAccess (`auth.ocsp_url`, on by default) |
/// | authorityKeyIdentifier (key id, issuer name, issuer serial) | the same |
/// | subjectKeyIdentifier | subjectKeyIdentifier |
///
/// The authentication column is the real certificate's (reference §3, REAL-AUTH). The signing
/// certificate's tail has not been seen; it gets the same tail and nothing invented: no
/// extendedKeyUsage (none is reported for it, and a signing key has no TLS purpose) and no
/// OCSP URL unless the policy asks (reference §2 reports none).
///
/// This is the issuance hot path, so the TBSCertificate is streamed into one buffer by
/// `der_out`, a streaming writer over the `der` crate's encoders (every tag, length and
/// value is encoded by `der`), chosen over assembling the typed `x509-cert` structures the
/// other profiles use because it is several times faster: no intermediate `Name`/`Extension`
/// values, no encode-then-decode of names. The parts only the policy and hierarchy decide
/// (issuer, keyUsage, certificatePolicies, issuerAltName, authorityInfoAccess) are encoded
/// once per thread and policy (`LeafParts`) and copied. The bytes are exactly those of the
/// typed builder (the tests compare the two byte for byte on many inputs), and the fallible
/// steps run in the same order, so the same input fails with the same error.
pub fn leaf_tbs(
    policy: &Policy,
    holder: &Holder<'_>,
    cn: &str,
    w: Window<'_>,
    crl: &Scope,
    spki_der: &[u8],
    issuer: Issuer<'_>,
) -> Result<Vec<u8>, Error> {
    use der::asn1::{AnyRef, OctetStringRef};
    use der::EncodeValue as _;
    use der_out::{ctx, put, tlv};

    let h = holder.hierarchy();

    // The fallible steps, in the order the typed builder runs them: the CRL URL (an
    // IA5String), the OCSP URL, the issuer's serial, the subject key (SKI), the serial
    // number, the two times.
    if policy.crl.uri {
        check_ia5(
            &policy.ca.base_url,
            || {
                let mut url = Vec::new();
                write_crl_url(&mut url, policy, h, issuer.generation, crl);
                String::from_utf8_lossy(&url).into_owned()
            },
            "CRL URL",
        )?;
    }
    if policy.ocsp_url_in(h) {
        check_ia5(&policy.ca.base_url, || policy.ocsp_url(), "OCSP URL")?;
    }
    let issuer_serial = aki_serial(issuer.serial)?;
    let ski = key_identifier(spki_der)?;
    let serial = der::asn1::UintRef::new(w.serial).map_err(Error::der("serialNumber"))?;
    let not_before = x509_time(w.not_before)?;
    let not_after = x509_time(w.not_after)?;
    let spki = AnyRef::from_der(spki_der).map_err(|e| Error::Parse {
        what: "subjectPublicKeyInfo",
        detail: e.to_string(),
    })?;

    LEAF_PARTS.with(|parts| {
        let parts = &mut parts.borrow_mut()[h.tag() as usize];
        let parts = match parts {
            Some(p) if p.fits(policy, h) => p,
            _ => parts.insert(LeafParts::new(policy, h)?),
        };
        let mut out = Vec::with_capacity(1024 + spki_der.len());
        tlv(&mut out, Tag::Sequence, "TBSCertificate", |o| {
            o.extend_from_slice(&parts.version);
            put(o, &serial, "serialNumber")?;
            o.extend_from_slice(&parts.signature_and_issuer);
            tlv(o, Tag::Sequence, "validity", |o| {
                put(o, &not_before, "notBefore")?;
                put(o, &not_after, "notAfter")
            })?;
            with_leaf_subject_attrs(holder, cn, |a| der_out::name(o, a))?;
            put(o, &spki, "subjectPublicKeyInfo")?;
            // extensions [3] EXPLICIT SEQUENCE OF Extension
            tlv(o, ctx(3, true), "extensions", |o| {
                tlv(o, Tag::Sequence, "extensions", |o| {
                    // keyUsage, and extendedKeyUsage on authentication certificates.
                    o.extend_from_slice(&parts.key_usage);
                    if let Holder::Signing { attributes, .. } = holder {
                        der_out::ext(o, &oid::EXT_SAN, false, "subjectAltName", |o| {
                            write_attribute_names(o, attributes)
                        })?;
                    }
                    o.extend_from_slice(&parts.policies_and_ian);
                    let crl_dp = "cRLDistributionPoints";
                    der_out::ext(o, &oid::EXT_CRL_DP, false, crl_dp, |o| {
                        tlv(o, Tag::Sequence, crl_dp, |o| {
                            tlv(o, Tag::Sequence, "DistributionPoint", |o| {
                                // distributionPoint [0] EXPLICIT, fullName [0] IMPLICIT
                                tlv(o, ctx(0, true), "distributionPoint", |o| {
                                    tlv(o, ctx(0, true), "fullName", |o| {
                                        write_crl_dp_names(o, policy, h, issuer.generation, crl)
                                    })
                                })
                            })
                        })
                    })?;
                    o.extend_from_slice(&parts.aia);
                    let aki = "authorityKeyIdentifier";
                    der_out::ext(o, &oid::EXT_AKI, false, aki, |o| {
                        tlv(o, Tag::Sequence, aki, |o| {
                            // keyIdentifier [0] IMPLICIT OCTET STRING
                            let kid = AnyRef::new(ctx(0, false), issuer.key_id)
                                .map_err(Error::der(aki))?;
                            put(o, &kid, "keyIdentifier")?;
                            // authorityCertIssuer [1] IMPLICIT GeneralNames: one directoryName
                            o.extend_from_slice(&parts.aki_issuer);
                            // authorityCertSerialNumber [2] IMPLICIT CertificateSerialNumber
                            tlv(o, ctx(2, false), aki, |o| {
                                issuer_serial.encode_value(o).map_err(Error::der(aki))
                            })
                        })
                    })?;
                    let what = "subjectKeyIdentifier";
                    der_out::ext(o, &oid::EXT_SKI, false, what, |o| {
                        put(
                            o,
                            &OctetStringRef::new(&ski).map_err(Error::der(what))?,
                            what,
                        )
                    })?;
                    Ok(())
                })
            })
        })?;
        Ok(out)
    })
}

/// The issuer's serial as `x509_cert`'s `SerialNumber::new` takes it (the typed builder's
/// check): a positive integer of at most 20 octets once encoded.
fn aki_serial(serial: &[u8]) -> Result<der::asn1::UintRef<'_>, Error> {
    let what = "authorityKeyIdentifier";
    // The typed builder's own checks, so that the same serial fails with the same error.
    issuer_serial(serial)?;
    der::asn1::UintRef::new(serial).map_err(Error::der(what))
}

thread_local! {
    /// The [`LeafParts`] of each hierarchy for the last policy seen on this thread.
    static LEAF_PARTS: std::cell::RefCell<[Option<LeafParts>; 2]> =
        const { std::cell::RefCell::new([None, None]) };
}

/// The DER of the parts of a leaf TBSCertificate that only the policy and the hierarchy
/// decide, encoded once per thread and policy (through [`der_out`], like the rest) and
/// copied into each certificate: encoding them costs more than the rest of the certificate.
/// `fits` compares every policy value they were built from.
struct LeafParts {
    // What they were built from.
    organization: String,
    operator: String,
    cps_uri: String,
    base_url: String,
    policy_oid: Oid,
    critical_policies: bool,
    ocsp_url: bool,
    // The DER.
    /// `version [0] EXPLICIT v3`.
    version: Vec<u8>,
    /// `signature` (sha256WithRSAEncryption, NULL) and `issuer` ([`root_name`]).
    signature_and_issuer: Vec<u8>,
    /// The keyUsage extension, and on authentication certificates the extendedKeyUsage
    /// extension (id-kp-clientAuth, non-critical, reference §3) that follows it.
    key_usage: Vec<u8>,
    /// The certificatePolicies and issuerAltName extensions.
    policies_and_ian: Vec<u8>,
    /// The authorityInfoAccess extension, or nothing when the hierarchy's `ocsp_url` is off.
    aia: Vec<u8>,
    /// `authorityCertIssuer [1] IMPLICIT GeneralNames` of the authorityKeyIdentifier: the
    /// root's name as one directoryName.
    aki_issuer: Vec<u8>,
}

impl LeafParts {
    fn critical_policies(policy: &Policy, h: Hierarchy) -> bool {
        match h {
            Hierarchy::Signing => true,
            Hierarchy::Auth => policy.auth.critical_policies,
        }
    }

    fn fits(&self, policy: &Policy, h: Hierarchy) -> bool {
        self.organization == policy.ca.organization
            && self.operator == policy.ca.operator
            && self.cps_uri == policy.ca.cps_uri
            && self.base_url == policy.ca.base_url
            && self.policy_oid == policy_oid(policy, h)
            && self.critical_policies == Self::critical_policies(policy, h)
            && self.ocsp_url == policy.ocsp_url_in(h)
    }

    fn new(policy: &Policy, h: Hierarchy) -> Result<Self, Error> {
        use der::asn1::{AnyRef, ContextSpecific};
        use der_out::{ctx, put, tlv};

        let policy_oid = policy_oid(policy, h);
        let critical_policies = Self::critical_policies(policy, h);

        let mut version = Vec::new();
        // version [0] EXPLICIT INTEGER 2 (v3)
        let v3 = ContextSpecific {
            tag_number: der::TagNumber(0),
            tag_mode: der::TagMode::Explicit,
            value: 2u8,
        };
        put(&mut version, &v3, "version")?;

        let mut signature_and_issuer = Vec::new();
        put(
            &mut signature_and_issuer,
            &sha256_with_rsa_ref(),
            "signature",
        )?;
        write_root_name(&mut signature_and_issuer, policy, h)?;

        let usages = match h {
            Hierarchy::Signing => KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            Hierarchy::Auth => KeyUsages::DigitalSignature.into(),
        };
        let mut key_usage = Vec::new();
        der_out::ext(&mut key_usage, &oid::EXT_KEY_USAGE, true, "keyUsage", |o| {
            put(o, &KeyUsage(usages), "keyUsage")
        })?;
        if h == Hierarchy::Auth {
            let what = "extendedKeyUsage";
            der_out::ext(&mut key_usage, &oid::EXT_EKU, false, what, |o| {
                put(o, &ExtendedKeyUsage(vec![oid::KP_CLIENT_AUTH]), what)
            })?;
        }

        let mut policies_and_ian = Vec::new();
        let o = &mut policies_and_ian;
        let cps = "certificatePolicies";
        der_out::ext(o, &oid::EXT_CERT_POLICIES, critical_policies, cps, |o| {
            tlv(o, Tag::Sequence, cps, |o| {
                tlv(o, Tag::Sequence, "PolicyInformation", |o| {
                    put(o, &policy_oid, "policyIdentifier")?;
                    tlv(o, Tag::Sequence, "policyQualifiers", |o| {
                        tlv(o, Tag::Sequence, "PolicyQualifierInfo", |o| {
                            put(o, &oid::QT_CPS, "policyQualifierId")?;
                            // As the typed builder: an `Any` tagged IA5String.
                            let uri = AnyRef::new(Tag::Ia5String, policy.ca.cps_uri.as_bytes())
                                .map_err(Error::der("CPS URI"))?;
                            put(o, &uri, "CPS URI")
                        })
                    })
                })
            })
        })?;
        der_out::ext(o, &oid::EXT_IAN, false, "issuerAltName", |o| {
            tlv(o, Tag::Sequence, "issuerAltName", |o| {
                // directoryName [4] EXPLICIT Name
                tlv(o, ctx(4, true), "issuerAltName", |o| {
                    write_root_name_ja(o, h)
                })
            })
        })?;

        let mut aia = Vec::new();
        let ocsp_url = policy.ocsp_url_in(h);
        if ocsp_url {
            let what = "authorityInfoAccess";
            der_out::ext(&mut aia, &oid::EXT_AIA, false, what, |o| {
                tlv(o, Tag::Sequence, what, |o| {
                    tlv(o, Tag::Sequence, "AccessDescription", |o| {
                        put(o, &oid::AD_OCSP, "accessMethod")?;
                        // uniformResourceIdentifier [6] IMPLICIT IA5String: the text of
                        // `Policy::ocsp_url` (its ASCII is checked on every issuance).
                        tlv(o, ctx(6, false), "OCSP URL", |o| {
                            o.extend_from_slice(policy.ca.base_url.as_bytes());
                            o.extend_from_slice(b"/ocsp");
                            Ok(())
                        })
                    })
                })
            })?;
        }

        let mut aki_issuer = Vec::new();
        // authorityCertIssuer [1] IMPLICIT GeneralNames, directoryName [4] EXPLICIT Name
        tlv(&mut aki_issuer, ctx(1, true), "authorityCertIssuer", |o| {
            tlv(o, ctx(4, true), "authorityCertIssuer", |o| {
                write_root_name(o, policy, h)
            })
        })?;

        Ok(LeafParts {
            organization: policy.ca.organization.clone(),
            operator: policy.ca.operator.clone(),
            cps_uri: policy.ca.cps_uri.clone(),
            base_url: policy.ca.base_url.clone(),
            policy_oid,
            critical_policies,
            ocsp_url,
            version,
            signature_and_issuer,
            key_usage,
            policies_and_ian,
            aia,
            aki_issuer,
        })
    }
}

/// [`Policy::policy_oid`], parsed once per thread and policy text rather than on every call:
/// the last text seen for each hierarchy is kept with its OID and compared on each call.
pub(crate) fn policy_oid(policy: &Policy, h: Hierarchy) -> Oid {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<[Option<(String, Oid)>; 2]> = const { RefCell::new([None, None]) };
    }
    let text = match h {
        Hierarchy::Signing => &policy.signing.policy_oid,
        Hierarchy::Auth => &policy.auth.policy_oid,
    };
    LAST.with(|last| {
        let slot = &mut last.borrow_mut()[h.tag() as usize];
        match slot {
            Some((t, oid)) if t == text => *oid,
            _ => {
                let oid = policy.policy_oid(h);
                *slot = Some((text.clone(), oid));
                oid
            }
        }
    })
}

/// [`sha256_with_rsa`] without its allocation: `{ sha256WithRSAEncryption, NULL }`.
fn sha256_with_rsa_ref() -> spki::AlgorithmIdentifierRef<'static> {
    spki::AlgorithmIdentifierRef {
        oid: oid::SHA256_WITH_RSA,
        parameters: Some(der::asn1::AnyRef::NULL),
    }
}

/// Fails as `Ia5String::new(&make_url())` would, without building the URL when it cannot fail:
/// every URL of the policy is `base` followed by ASCII, so it is an IA5String exactly when
/// `base` is ASCII.
fn check_ia5(
    base: &str,
    make_url: impl FnOnce() -> String,
    what: &'static str,
) -> Result<(), Error> {
    if base.is_ascii() {
        return Ok(());
    }
    Ia5String::new(&make_url()).map_err(Error::der(what))?;
    Ok(())
}

/// The DER of [`root_name`] (the leaves' issuer), appended to `out`.
pub(crate) fn write_root_name(
    out: &mut Vec<u8>,
    policy: &Policy,
    h: Hierarchy,
) -> Result<(), Error> {
    der_out::name(out, &root_attrs(policy, h))
}

/// The DER of [`root_name_ja`], appended to `out`.
fn write_root_name_ja(out: &mut Vec<u8>, h: Hierarchy) -> Result<(), Error> {
    der_out::name(out, &root_ja_attrs(h))
}

/// The text of the first name of [`crl_dp_names`] (the CRL's URL), appended to `out`: the
/// bytes of [`Policy::crl_url`] or [`Policy::ca_crl_url`], without building the String.
pub(crate) fn write_crl_url(
    out: &mut Vec<u8>,
    policy: &Policy,
    h: Hierarchy,
    generation: u32,
    scope: &Scope,
) {
    use std::io::Write as _;
    let (base, h) = (&policy.ca.base_url, crl_dir(h, generation));
    // Writing to a Vec cannot fail.
    let _ = match scope {
        Scope::Partition(p) => write!(out, "{base}/crl/{h}/{p}.crl"),
        Scope::Municipal(m) => write!(out, "{base}/crl/{h}/{}.crl", m.path()),
        Scope::Ca => write!(out, "{base}/crl/{h}/ca.crl"),
    };
}

/// The DER of the directoryName of [`crl_dp_names`] (present when `crl.directory_name` is
/// set), appended to `out`.
pub(crate) fn write_crl_dn(
    out: &mut Vec<u8>,
    policy: &Policy,
    h: Hierarchy,
    scope: &Scope,
) -> Result<(), Error> {
    with_crl_dn_attrs(policy, h, scope, |a| der_out::name(out, a))
}

/// The GeneralNames of [`crl_dp_names`] (URI `[6]` with `crl.uri`, directoryName `[4]` with
/// `crl.directory_name`), appended to `out` without the enclosing SEQUENCE header. The URL
/// must have been checked to be ASCII.
fn write_crl_dp_names(
    out: &mut Vec<u8>,
    policy: &Policy,
    h: Hierarchy,
    generation: u32,
    scope: &Scope,
) -> Result<(), Error> {
    if policy.crl.uri {
        // uniformResourceIdentifier [6] IMPLICIT IA5String: the URL's ASCII text.
        der_out::tlv(out, der_out::ctx(6, false), "CRL URL", |o| {
            write_crl_url(o, policy, h, generation, scope);
            Ok(())
        })?;
    }
    if policy.crl.directory_name {
        // directoryName [4] EXPLICIT Name
        der_out::tlv(out, der_out::ctx(4, true), "CRL directoryName", |o| {
            write_crl_dn(o, policy, h, scope)
        })?;
    }
    Ok(())
}

/// The DER of `SubjectAltName(attribute_names(attrs))`, appended to `out`.
fn write_attribute_names(out: &mut Vec<u8>, attrs: &Attributes) -> Result<(), Error> {
    let name = CardText::from_register(attrs.name());
    let address = CardText::from_register(attrs.address());
    let birth = era::encode_birth(attrs.birth());
    let mut sex = [0u8; 4];
    let sex = attrs.sex().digit().encode_utf8(&mut sex);
    der_out::tlv(out, Tag::Sequence, "subjectAltName", |o| {
        for (type_id, value) in [
            (oid::NAME, name.text.as_str()),
            (oid::BIRTH, birth.as_str()),
            (oid::SEX, &*sex),
            (oid::ADDRESS, address.text.as_str()),
            (oid::NAME_FLAGS, name.flags.as_str()),
            (oid::ADDRESS_FLAGS, address.flags.as_str()),
        ] {
            der_out::other_name(o, &type_id, value)?;
        }
        Ok(())
    })
}

/// A streaming DER writer over the `der` crate's encoders, for the issuance hot path
/// ([`leaf_tbs`]) and the byte comparisons of `lint`: values are appended to one growing
/// buffer instead of being built as typed `x509-cert` structures first, which is several
/// times faster; the tests check its output byte for byte against the typed builder.
///
/// No encoding rule is written here. Whole values are encoded by `der`'s [`Encode`]: its
/// types ([`AnyRef`] for a tag over given contents, `ObjectIdentifier`, `bool`, ...) and
/// small borrowed structures whose encoders `der` derives or composes ([`name`],
/// [`other_name`]). A constructed value whose contents are streamed is opened with room
/// for its header and closed once its length is known; [`close`] writes the
/// [`der::Header`] that `der` encodes for that tag and length, moving the contents right
/// when the header is longer than the room left. Errors are `der`'s, as [`Error::Der`]
/// naming the value that failed.
pub(crate) mod der_out {
    use const_oid::ObjectIdentifier as Oid;
    use der::asn1::{AnyRef, ContextSpecific};
    use der::{Encode, EncodeValue, FixedTag, Header, Length, Tag, TagMode, TagNumber, Writer};

    use crate::Error;

    /// Bytes [`open`] leaves for the header: a one-octet tag and a short-form length, the
    /// header of every value here shorter than 128 bytes.
    const ROOM: usize = 2;

    /// An open constructed value: where its header goes, its tag, and its name for errors.
    #[must_use]
    pub struct Open {
        at: usize,
        tag: Tag,
        what: &'static str,
    }

    /// `[number]` in the context-specific class.
    pub const fn ctx(number: u32, constructed: bool) -> Tag {
        Tag::ContextSpecific {
            constructed,
            number: TagNumber(number),
        }
    }

    /// Starts a value with `tag` whose contents follow; [`close`] writes its header.
    /// `what` names it in the error if that fails.
    pub fn open(out: &mut Vec<u8>, tag: Tag, what: &'static str) -> Open {
        let at = out.len();
        out.extend_from_slice(&[0; ROOM]);
        Open { at, tag, what }
    }

    /// Ends the value `open` started: the header `der` encodes for its tag and length goes
    /// before its contents.
    pub fn close(out: &mut Vec<u8>, open: Open) -> Result<(), Error> {
        let Open { at, tag, what } = open;
        let length = Length::try_from(out.len() - at - ROOM).map_err(Error::der(what))?;
        let header = Header::new(tag, length);
        let size = header.encoded_len().map_err(Error::der(what))?;
        let size = usize::try_from(size).map_err(Error::der(what))?;
        // Make the room exactly `size` bytes (a header is never shorter than ROOM: it has
        // a tag octet and a length octet, but `drain` keeps this total).
        if size > ROOM {
            out.splice(at + ROOM..at + ROOM, core::iter::repeat_n(0, size - ROOM));
        } else if size < ROOM {
            out.drain(at + size..at + ROOM);
        }
        // `encode_to_slice` fails rather than truncate if `der` writes more than `size`;
        // writing less would leave a hole, so that fails too.
        let written = header
            .encode_to_slice(&mut out[at..at + size])
            .map_err(Error::der(what))?
            .len();
        if written != size {
            let kind = der::ErrorKind::Incomplete {
                expected_len: length_of(size, what)?,
                actual_len: length_of(written, what)?,
            };
            return Err(Error::der(what)(kind.into()));
        }
        Ok(())
    }

    fn length_of(n: usize, what: &'static str) -> Result<Length, Error> {
        Length::try_from(n).map_err(Error::der(what))
    }

    /// A value with `tag` whose contents `body` writes.
    pub fn tlv<R>(
        out: &mut Vec<u8>,
        tag: Tag,
        what: &'static str,
        body: impl FnOnce(&mut Vec<u8>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let open = open(out, tag, what);
        let r = body(out)?;
        close(out, open)?;
        Ok(r)
    }

    /// A value `der` encodes whole (tag, length, contents), appended to `out`.
    pub fn put(
        out: &mut Vec<u8>,
        value: &(impl Encode + ?Sized),
        what: &'static str,
    ) -> Result<(), Error> {
        value.encode(out).map_err(Error::der(what))
    }

    /// `Extension { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }`, the OCTET
    /// STRING's contents written by `value`.
    pub fn ext(
        out: &mut Vec<u8>,
        id: &Oid,
        critical: bool,
        what: &'static str,
        value: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        tlv(out, Tag::Sequence, what, |o| {
            put(o, id, what)?;
            if critical {
                put(o, &true, what)?;
            }
            tlv(o, Tag::OctetString, what, value)
        })
    }

    /// `AttributeTypeAndValue` (RFC 5280 §4.1.2.4) over a borrowed value.
    #[derive(der::Sequence)]
    struct AttributeTypeAndValue<'a> {
        oid: Oid,
        value: AnyRef<'a>,
    }

    /// A `RelativeDistinguishedName` of one attribute: `SET SIZE (1..MAX) OF
    /// AttributeTypeAndValue` holding just that attribute.
    struct SingleRdn<'a>(AttributeTypeAndValue<'a>);

    impl FixedTag for SingleRdn<'_> {
        const TAG: Tag = Tag::Set;
    }

    impl EncodeValue for SingleRdn<'_> {
        fn value_len(&self) -> der::Result<Length> {
            self.0.encoded_len()
        }

        fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
            self.0.encode(writer)
        }
    }

    /// A Name of single-attribute RDNs, as [`super::name`] writes it: `C` a PrintableString,
    /// the rest UTF8Strings (tagged `Any` values, as there).
    pub fn name(out: &mut Vec<u8>, attrs: &[(Oid, &str)]) -> Result<(), Error> {
        tlv(out, Tag::Sequence, "Name", |o| {
            for (oid, value) in attrs {
                let value = if *oid == crate::oid::AT_C {
                    AnyRef::new(Tag::PrintableString, value.as_bytes())
                        .map_err(Error::der("PrintableString"))?
                } else {
                    AnyRef::new(Tag::Utf8String, value.as_bytes())
                        .map_err(Error::der("UTF8String"))?
                };
                let rdn = SingleRdn(AttributeTypeAndValue { oid: *oid, value });
                put(o, &rdn, "RDN")?;
            }
            Ok(())
        })
    }

    /// `OtherName ::= SEQUENCE { type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY }`
    /// (RFC 5280 §4.2.1.6) over a borrowed value.
    #[derive(der::Sequence)]
    struct OtherName<'a> {
        type_id: Oid,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
        value: AnyRef<'a>,
    }

    /// The GeneralName `otherName [0] IMPLICIT OtherName` with a UTF8String value.
    pub fn other_name(out: &mut Vec<u8>, type_id: &Oid, value: &str) -> Result<(), Error> {
        let value =
            AnyRef::new(Tag::Utf8String, value.as_bytes()).map_err(Error::der("otherName"))?;
        let name = ContextSpecific {
            tag_number: TagNumber(0),
            tag_mode: TagMode::Implicit,
            value: OtherName {
                type_id: *type_id,
                value,
            },
        };
        put(out, &name, "otherName")
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
    use x509_cert::ext::pkix::{
        AccessDescription, AuthorityInfoAccessSyntax, CertificatePolicies, IssuerAltName,
    };

    // The typed builder `leaf_tbs` replaced (the code of commit bc196a9), kept as the
    // reference the direct DER writer must match byte for byte; since moved to the real
    // certificate's profile (extendedKeyUsage, the full AKI, the SKI last) with it.
    fn policies_ext(policy: &Policy, h: Hierarchy, critical: bool) -> Result<Extension, Error> {
        let cps = Any::new(Tag::Ia5String, policy.ca.cps_uri.as_bytes())
            .map_err(Error::der("CPS URI"))?;
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

    /// An end-entity certificate issued directly by its hierarchy's root (reference §2, §3).
    pub(super) fn leaf_tbs_typed(
        policy: &Policy,
        holder: &Holder<'_>,
        cn: &str,
        w: Window<'_>,
        crl: &Scope,
        spki_der: &[u8],
        issuer: Issuer<'_>,
    ) -> Result<Vec<u8>, Error> {
        let h = holder.hierarchy();
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
                extensions.push(ext(
                    oid::EXT_EKU,
                    false,
                    &ExtendedKeyUsage(vec![oid::KP_CLIENT_AUTH]),
                    "extendedKeyUsage",
                )?);
                extensions.push(policies_ext(policy, h, policy.auth.critical_policies)?);
            }
        }
        extensions.push(ext(
            oid::EXT_IAN,
            false,
            &IssuerAltName(vec![GeneralName::DirectoryName(root_name_ja(h)?)]),
            "issuerAltName",
        )?);
        extensions.push(crl_dp(policy, h, issuer.generation, crl.clone())?);
        if policy.ocsp_url_in(h) {
            extensions.push(aia(policy)?);
        }
        extensions.push(aki_full(policy, h, issuer)?);
        extensions.push(ski(spki_der)?);
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

    /// A fixed RSA-2048 SubjectPublicKeyInfo, also used by the lint's tests.
    pub(crate) const SPKI: &[u8] = &[
        0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
        0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0f, 0x00, 0x30, 0x82, 0x01, 0x0a, 0x02, 0x82,
        0x01, 0x01, 0x00, 0xaf, 0xb6, 0x1b, 0x50, 0xb2, 0x58, 0x4c, 0x68, 0x92, 0xae, 0x87, 0x1c,
        0xf3, 0xec, 0x8b, 0x1b, 0xea, 0x04, 0x83, 0xcd, 0x3a, 0x62, 0x16, 0xf8, 0xf5, 0x3b, 0x3a,
        0x0c, 0x39, 0x12, 0x46, 0x43, 0x39, 0xd3, 0x99, 0xf1, 0xa4, 0xb3, 0x1e, 0x50, 0xc2, 0x16,
        0x2a, 0xf4, 0x7d, 0x77, 0x62, 0x2d, 0x27, 0x86, 0xbb, 0xb7, 0xe2, 0x5a, 0xad, 0x16, 0x41,
        0x92, 0x46, 0xcf, 0x87, 0x65, 0xbe, 0xa3, 0x11, 0x5f, 0x8f, 0xa4, 0xe4, 0xac, 0xda, 0x59,
        0xc4, 0xc9, 0xb6, 0x30, 0x23, 0x4b, 0xe4, 0x39, 0xf0, 0x3c, 0x56, 0x44, 0xfe, 0xbb, 0x23,
        0x2b, 0xb7, 0xee, 0x1a, 0x2c, 0x88, 0x05, 0x57, 0xfa, 0x57, 0xda, 0xc4, 0x01, 0x8e, 0xa6,
        0xbe, 0xd0, 0x19, 0x04, 0xcd, 0x9d, 0x9b, 0x83, 0xa2, 0x88, 0x7c, 0x35, 0x4f, 0x94, 0x9f,
        0x9e, 0x6d, 0xec, 0xa1, 0xf7, 0xb8, 0xc1, 0xe3, 0x9d, 0xb6, 0xa6, 0x12, 0x3b, 0xa6, 0x35,
        0xf5, 0x9f, 0x0a, 0xe8, 0xc1, 0x81, 0xa9, 0xfb, 0x6b, 0x09, 0xcb, 0xb1, 0x01, 0x27, 0xd5,
        0xd7, 0x08, 0xb6, 0xf8, 0xbf, 0x92, 0x7c, 0xc2, 0x5e, 0x8e, 0x5e, 0xe9, 0x6c, 0xc8, 0xe2,
        0x47, 0x8b, 0xcd, 0xc3, 0xe2, 0xdf, 0x9e, 0x60, 0x1c, 0x41, 0x5c, 0x2b, 0xf2, 0x0a, 0x8d,
        0x73, 0xb0, 0x02, 0x99, 0x0a, 0x7b, 0xec, 0x8e, 0xf1, 0x96, 0x2b, 0x32, 0xa7, 0x1d, 0x90,
        0x41, 0xe8, 0x44, 0xb6, 0x06, 0x5a, 0x16, 0x01, 0x16, 0x7f, 0x49, 0x69, 0xdf, 0xe7, 0x84,
        0xb2, 0x33, 0x94, 0x46, 0x84, 0xcb, 0xbc, 0x30, 0xf5, 0x53, 0x55, 0xcb, 0x59, 0x1a, 0xaf,
        0x4c, 0xfd, 0x4a, 0x26, 0x61, 0xb1, 0xce, 0x71, 0xed, 0xa1, 0x36, 0x70, 0x34, 0x5e, 0x04,
        0x2f, 0x5e, 0xcf, 0x54, 0xaa, 0xf3, 0xc6, 0x0e, 0x91, 0x6c, 0xc3, 0xb3, 0xf3, 0x5c, 0xa0,
        0xc2, 0x92, 0xdf, 0x29, 0x02, 0x03, 0x01, 0x00, 0x01,
    ];

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A man born 1980-02-17, as the register would hold him on 2026-01-01; also used by
    /// the lint's tests.
    pub(crate) fn attributes(policy: &Policy, name: &str, address: &str) -> Attributes {
        Attributes::new(
            name,
            time::macros::date!(1980 - 02 - 17),
            crate::Sex::Male,
            address,
            &policy.limits,
            time::macros::date!(2026 - 01 - 01),
        )
        .unwrap()
    }

    /// The window of the fixed test certificates, also used by the lint's tests.
    pub(crate) fn window(serial: &[u8]) -> Window<'_> {
        Window {
            serial,
            not_before: time::macros::datetime!(2026-01-05 01:02:03 UTC),
            not_after: time::macros::datetime!(2030-02-16 14:59:59 UTC),
        }
    }

    /// The TBS bytes for fixed inputs, as SHA-256: first captured from the typed builder
    /// before `leaf_tbs` wrote DER directly, captured again when both moved to the real
    /// certificate's profile (EKU, full AKI, SKI last, sequential serial, 23-character CN).
    #[test]
    fn leaf_tbs_bytes_are_unchanged() {
        let policy = Policy::default_policy();
        let attrs = attributes(&policy, "山田　太郎", "東京都清瀬市中里一丁目1番地");
        let kid = key_identifier(SPKI).unwrap();
        let issuer = Issuer {
            key_id: &kid,
            serial: &[0x01],
            generation: 1,
        };
        let serial = [0x01, 0x2d, 0x57, 0xca];
        let w = window(&serial);
        let signing = Holder::Signing {
            prefecture: "東京都",
            municipality: "清瀬市",
            attributes: &attrs,
        };
        let cn = "2601ABCDEFGHIJ05100203A";
        // The golden bytes predate municipal partitions: a serial partition keeps them.
        let crl = Scope::Partition(policy.partition_of(&serial));
        let got = [
            sha256_hex(&leaf_tbs(&policy, &signing, cn, w, &crl, SPKI, issuer).unwrap()),
            sha256_hex(&leaf_tbs(&policy, &Holder::Auth, cn, w, &crl, SPKI, issuer).unwrap()),
        ];
        assert_eq!(got, GOLDEN);
        let typed = [
            sha256_hex(&leaf_tbs_typed(&policy, &signing, cn, w, &crl, SPKI, issuer).unwrap()),
            sha256_hex(&leaf_tbs_typed(&policy, &Holder::Auth, cn, w, &crl, SPKI, issuer).unwrap()),
        ];
        assert_eq!(typed, GOLDEN);
    }

    const GOLDEN: [&str; 2] = [
        "49a256e6d864b1a62c293ea64290198e9f51757dff4b1480918325c45c72f0e3",
        "422f28b2805b161c544450e5e2359511f50110e91668162f759023997459c88d",
    ];

    /// The direct writer against the typed builder over the inputs that change the shape of
    /// the DER: policy switches, long (multi-byte length) names and URLs, serials with leading
    /// zeros or the high bit set, UTCTime and GeneralizedTime, every partition width.
    #[test]
    fn leaf_tbs_matches_the_typed_builder() {
        let base = Policy::default_policy();
        let mut policies = vec![base.clone()];
        let mut p = base.clone();
        p.auth.ocsp_url = false;
        p.signing.ocsp_url = true;
        p.crl.uri = true;
        p.crl.directory_name = false;
        p.auth.critical_policies = false;
        policies.push(p);
        let mut p = base.clone();
        p.crl.uri = true;
        p.signing.ocsp_url = true;
        p.ca.organization = "組織".repeat(32);
        p.ca.operator = "o".repeat(64);
        p.ca.base_url = format!("https://{}.example", "x".repeat(300));
        p.ca.cps_uri = format!("https://{}.example/cps", "c".repeat(200));
        p.crl.partitions = 4096;
        p.signing.policy_oid = "1.2.3.4.5.6.7.8.9.4294967295.128.16384".into();
        policies.push(p);
        let mut p = base.clone();
        p.crl.partitions = 1;
        policies.push(p);

        let short = attributes(&base, "A", "B");
        let typical = attributes(&base, "髙橋　太郎", "東京都千代田区霞が関２－１－２");
        let long = attributes(&base, &"名".repeat(100), &"住所①".repeat(66));
        let serials: [&[u8]; 7] = [
            &[0x01],
            &[0x7f],
            &[0x80],
            &[0x00, 0x00, 0x05],
            &[0x00, 0x80, 0x01],
            &[0xff; 20],
            &[
                0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44, 0x55,
            ],
        ];
        let times = [
            (
                time::macros::datetime!(2026-01-05 01:02:03.999 UTC),
                time::macros::datetime!(2030-02-16 14:59:59 UTC),
            ),
            (
                time::macros::datetime!(2049-12-31 23:59:59 UTC),
                time::macros::datetime!(2050-01-01 00:00:00 UTC),
            ),
            (
                time::macros::datetime!(1970-01-01 00:00:00 UTC),
                time::macros::datetime!(9999-12-31 14:59:59 UTC),
            ),
        ];
        let kids: [&[u8]; 3] = [&[0xAB; 20], &[], &[0x01; 200]];
        let issuer_serials: [&[u8]; 4] = [&[0x01], &[0x06, 0xd1, 0x80, 0x06], &[0x80], &[0x7f; 20]];
        let places = [
            Scope::Municipal(crate::Municipality::new("Ibaraki-ken", "Tsukuba-shi").unwrap()),
            Scope::Municipal(crate::Municipality::new(&"県".repeat(64), &"村".repeat(58)).unwrap()),
        ];
        let mut n = 0;
        for policy in &policies {
            for attrs in [&short, &typical, &long] {
                for (pref, muni, cn) in [
                    ("東京都", "清瀬市", "2601ABCDEFGHIJ05100203A"),
                    ("", "", ""),
                    ("Tokyo-to", &*"m".repeat(130), &*"c".repeat(300)),
                ] {
                    let holders = [
                        Holder::Signing {
                            prefecture: pref,
                            municipality: muni,
                            attributes: attrs,
                        },
                        Holder::Auth,
                    ];
                    for holder in &holders {
                        for (i, serial) in serials.iter().enumerate() {
                            let (nb, na) = times[i % times.len()];
                            let issuer = Issuer {
                                key_id: kids[i % kids.len()],
                                serial: issuer_serials[i % issuer_serials.len()],
                                generation: 1,
                            };
                            let w = Window {
                                serial,
                                not_before: nb,
                                not_after: na,
                            };
                            let crl = match i % 3 {
                                0 => Scope::Partition(policy.partition_of(serial)),
                                k => places[k - 1].clone(),
                            };
                            let want =
                                leaf_tbs_typed(policy, holder, cn, w, &crl, SPKI, issuer).unwrap();
                            let got = leaf_tbs(policy, holder, cn, w, &crl, SPKI, issuer).unwrap();
                            assert_eq!(got, want, "{holder:?} {cn} {serial:02x?} {crl:?}");
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 4 * 3 * 3 * 2 * 7);
    }

    /// Bad inputs fail with the same error as the typed builder.
    #[test]
    fn leaf_tbs_fails_like_the_typed_builder() {
        let policy = Policy::default_policy();
        let kid = [1u8; 20];
        let issuer = Issuer {
            key_id: &kid,
            serial: &[0x01],
            generation: 1,
        };
        let w = window(&[0x01]);
        let same_as = |policy: &Policy, w: Window<'_>, spki: &[u8], issuer: Issuer<'_>| {
            let crl = Scope::Municipal(crate::Municipality::new("A-ken", "B-shi").unwrap());
            let want =
                leaf_tbs_typed(policy, &Holder::Auth, "x", w, &crl, spki, issuer).unwrap_err();
            let got = leaf_tbs(policy, &Holder::Auth, "x", w, &crl, spki, issuer).unwrap_err();
            assert_eq!(format!("{got:?}"), format!("{want:?}"));
        };
        let same = |policy: &Policy, w: Window<'_>, spki: &[u8]| same_as(policy, w, spki, issuer);
        let mut non_ascii = policy.clone();
        non_ascii.ca.base_url = "http://例え.jp".into();
        non_ascii.crl.uri = true;
        same(&non_ascii, w, SPKI);
        let mut no_crl_url = non_ascii.clone();
        no_crl_url.crl.uri = false;
        same(&no_crl_url, w, SPKI);
        let mut no_ocsp = non_ascii.clone();
        no_ocsp.auth.ocsp_url = false;
        same(&no_ocsp, w, SPKI);
        let too_long = Issuer {
            key_id: &kid,
            serial: &[0x80; 20],
            generation: 1,
        };
        same_as(&policy, w, SPKI, too_long);
        let empty = Issuer {
            key_id: &kid,
            serial: &[],
            generation: 1,
        };
        same_as(&policy, w, SPKI, empty);
        same(&policy, w, &SPKI[..100]);
        same(&policy, w, b"");
        let mut trailing = SPKI.to_vec();
        trailing.push(0);
        same(&policy, w, &trailing);
        let early = Window {
            not_before: time::macros::datetime!(1969-12-31 23:59:59 UTC),
            ..w
        };
        same(&policy, early, SPKI);
        let late = Window {
            not_after: time::macros::datetime!(1960-01-01 00:00:00 UTC),
            ..w
        };
        same(&policy, late, SPKI);
    }
}
