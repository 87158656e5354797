//! The two structures the token signs: a PKCS#10 request and a CMS SignedData.
//!
//! Both are assembled from the RustCrypto types (der 0.8 stack) and signed by a closure that
//! applies sha256WithRSAEncryption with the unlocked key, so this module never sees a key.

use std::str::FromStr;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{BitString, OctetString, SetOfVec, UtcTime};
use der::{Any, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::time::Time;
use x509_cert::Certificate;

use crate::{Encapsulation, Error};

/// id-data (RFC 5652 §4).
pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
/// id-signedData (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// id-contentType (RFC 5652 §11.1).
pub const ID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest (RFC 5652 §11.2).
pub const ID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
/// id-signingTime (RFC 5652 §11.3).
pub const ID_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
/// id-sha256 (RFC 5754 §2.2).
pub const ID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The subject every request carries; the CA replaces it with the register's data.
pub const CSR_SUBJECT: &str = "CN=JPKI holder token,C=JP";

fn sha256_with_rsa() -> AlgorithmIdentifierOwned {
    // RFC 4055 §5: the parameters of sha256WithRSAEncryption are NULL.
    AlgorithmIdentifierOwned {
        oid: policies::oid::SHA256_WITH_RSA,
        parameters: Some(Any::null()),
    }
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    // RFC 5754 §2: absent parameters are preferred for SHA-2 digest identifiers.
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

/// PKCS#10 (RFC 2986 §4):
/// ```text
/// CertificationRequest ::= SEQUENCE {
///      certificationRequestInfo CertificationRequestInfo,
///      signatureAlgorithm       AlgorithmIdentifier{{ SignatureAlgorithms }},
///      signature                BIT STRING }
/// CertificationRequestInfo ::= SEQUENCE {
///      version       INTEGER { v1(0) } (v1,...),
///      subject       Name,
///      subjectPKInfo SubjectPublicKeyInfo{{ PKInfoAlgorithms }},
///      attributes    [0] Attributes{{ CRIAttributes }} }
/// ```
pub fn csr(
    spki: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<Vec<u8>, Error> {
    let info = CertReqInfo {
        version: Version::V1,
        subject: Name::from_str(CSR_SUBJECT)?,
        public_key: <SubjectPublicKeyInfoOwned as der::Decode>::from_der(spki)?,
        attributes: SetOfVec::new(),
    };
    let signature = sign(&info.to_der()?)?;
    let req = CertReq {
        info,
        algorithm: sha256_with_rsa(),
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(req.to_der()?)
}

fn attribute(oid: Oid, value: Any) -> Result<Attribute, Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

/// The PEM text (RFC 7468, label `CERTIFICATE REQUEST`, LF line ends) of a PKCS#10 request
/// made by [`crate::Token::csr`]: what `jpki token csr` writes and `jpki issue --csr` reads.
pub fn csr_pem(der: &[u8]) -> Result<String, Error> {
    der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, der)
        .map_err(|e| Error::Der(der::Error::from(e)))
}

/// CMS SignedData (RFC 5652 §5.1, §5.3) in a ContentInfo (§3):
/// ```text
/// SignedData ::= SEQUENCE {
///   version CMSVersion,                        -- 1: issuerAndSerialNumber, id-data
///   digestAlgorithms DigestAlgorithmIdentifiers,  -- { sha256 }
///   encapContentInfo EncapsulatedContentInfo,     -- id-data, eContent only if attached
///   certificates [0] IMPLICIT CertificateSet OPTIONAL,  -- the signer certificate
///   signerInfos SignerInfos }
/// SignerInfo ::= SEQUENCE {
///   version CMSVersion, sid SignerIdentifier,     -- 1, issuerAndSerialNumber
///   digestAlgorithm, signedAttrs [0] IMPLICIT SignedAttributes,
///   signatureAlgorithm, signature SignatureValue }
/// ```
/// The signed attributes are contentType, messageDigest and signingTime; the signature is
/// over their DER encoding as a SET OF (§5.4), which `SetOfVec` keeps in DER order.
pub fn signed_data(
    cert: &Certificate,
    content: &[u8],
    encapsulation: Encapsulation,
    signing_time: OffsetDateTime,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<Vec<u8>, Error> {
    let digest = crate::crypto::sha256(content);
    let unix = u64::try_from(signing_time.unix_timestamp())
        .map_err(|_| Error::Time("signing time before 1970"))?;
    // RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
    let time = match UtcTime::from_unix_duration(std::time::Duration::from_secs(unix)) {
        Ok(t) => Time::UtcTime(t),
        Err(_) => Time::GeneralTime(der::asn1::GeneralizedTime::from_unix_duration(
            std::time::Duration::from_secs(unix),
        )?),
    };
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec())?)?,
        )?,
        attribute(ID_SIGNING_TIME, Any::encode_from(&time)?)?,
    ])?;
    let signature = sign(&signed_attrs.to_der()?)?;

    let tbs = cert.tbs_certificate();
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: sha256_with_rsa(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let econtent = match encapsulation {
        Encapsulation::Attached => Some(Any::encode_from(&OctetString::new(content.to_vec())?)?),
        Encapsulation::Detached => None,
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![
            CertificateChoices::Certificate(cert.clone()),
        ])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer])?),
    };
    let ci = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    };
    Ok(ci.to_der()?)
}
