//! CMS SignedData (RFC 5652 §5) as written by `openssl cms -sign` and the holder token:
//! attached or detached, DER, PEM, or BER (`-stream`), one signer with signed attributes.
//!
//! cms 0.3 has types only, no verification (crate-notes §6), so the four steps are here:
//! find the signer's certificate, check the signed attributes (contentType,
//! messageDigest, optional signingTime), then the RSA PKCS#1 v1.5 SHA-256 signature over
//! the DER of the `SET OF Attribute` (RFC 5652 §5.4: the `[0] IMPLICIT` tag is replaced by
//! the universal SET tag).
//!
//! ```text
//! SignerInfo ::= SEQUENCE {
//!   version CMSVersion, sid SignerIdentifier, digestAlgorithm DigestAlgorithmIdentifier,
//!   signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL,
//!   signatureAlgorithm SignatureAlgorithmIdentifier, signature SignatureValue,
//!   unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
//! ```

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tag, Tagged};

use ::time::OffsetDateTime;

use crate::Error;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// id-aa-signatureTimeStampToken (RFC 3161 Appendix A), the CAdES-T unsigned attribute.
pub const ID_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// A parsed, structurally checked SignedData with one signer. Nothing is verified yet.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// DER of the signer's certificate, taken from `SignedData.certificates`.
    pub signer_der: Vec<u8>,
    /// The encapsulated content, if attached.
    pub attached: Option<Vec<u8>>,
    /// The signingTime attribute (RFC 5652 §11.3), if any.
    pub signing_time: Option<OffsetDateTime>,
    /// The encapsulated content's type (id-data for a document, id-ct-TSTInfo for a
    /// time-stamp token).
    pub econtent_type: ObjectIdentifier,
    /// DER of each signatureTimeStampToken unsigned attribute value (a ContentInfo), in order.
    pub timestamp_tokens: Vec<Vec<u8>>,
    message_digest: Vec<u8>,
    /// Every signed attribute: its type and the DER of its one value (checked above), for
    /// callers that read attributes this module does not (e.g. ESS signingCertificate).
    signed_attributes: Vec<(ObjectIdentifier, Vec<u8>)>,
    signed_attrs_der: Vec<u8>,
    signature: Vec<u8>,
}

/// Decodes DER, PEM (`CMS`/`PKCS7`) or BER input and checks its shape.
pub fn parse(input: &[u8]) -> Result<Envelope, Error> {
    let bytes = crate::cert::der_from_pem_or_der(input);
    let syntax = |e: der::Error| Error::CmsSyntax(e.to_string());
    let (ci, ber) = match ContentInfo::from_der(&bytes) {
        Ok(ci) => (ci, false),
        Err(_) => (ContentInfo::from_ber(&bytes).map_err(syntax)?, true),
    };
    if ci.content_type != ID_SIGNED_DATA {
        return Err(Error::CmsSyntax(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let (sd, ber) = match ci.content.decode_as::<SignedData>() {
        Ok(sd) => (sd, ber),
        Err(_) => (
            SignedData::from_ber(&ci.content.to_der().map_err(syntax)?).map_err(syntax)?,
            true,
        ),
    };
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    let si = match signers.as_slice() {
        [one] => *one,
        [] => return Err(Error::CmsSyntax("no SignerInfo".into())),
        many => {
            return Err(Error::CmsUnsupported(format!(
                "{} signers; exactly one is supported",
                many.len()
            )))
        }
    };
    if si.digest_alg.oid != ID_SHA256 {
        return Err(Error::CmsUnsupported(format!(
            "digest algorithm {}; only SHA-256 is accepted",
            si.digest_alg.oid
        )));
    }
    let alg = si.signature_algorithm.oid;
    if alg != RSA_ENCRYPTION && alg != SHA256_WITH_RSA {
        return Err(Error::CmsUnsupported(format!(
            "signature algorithm {alg}; only RSA PKCS#1 v1.5 is accepted"
        )));
    }

    let certs: Vec<&x509_cert::Certificate> = sd
        .certificates
        .iter()
        .flat_map(|s| s.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let signer = certs
        .iter()
        .find(|c| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                c.tbs_certificate().issuer() == &isn.issuer
                    && c.tbs_certificate().serial_number() == &isn.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => c.to_der().ok().is_some_and(|d| {
                crate::cert::parse(&d, "certificate")
                    .ok()
                    .and_then(|x| crate::cert::ski(&x).map(|s| s.to_vec()))
                    == Some(ski.0.as_bytes().to_vec())
            }),
        })
        .ok_or(Error::SignerNotIncluded)?;
    let signer_der = signer.to_der().map_err(syntax)?;

    let attrs = si.signed_attrs.as_ref().ok_or_else(|| {
        Error::CmsUnsupported("no signed attributes (messageDigest, contentType)".into())
    })?;
    let mut message_digest = None;
    let mut content_type = None;
    let mut signing_time = None;
    let mut signed_attributes = Vec::new();
    for attr in attrs.iter() {
        let mut values = attr.values.iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return Err(Error::CmsSyntax(format!(
                "attribute {} must have exactly one value",
                attr.oid
            )));
        };
        if signed_attributes.iter().any(|(o, _)| *o == attr.oid) {
            return Err(Error::CmsSyntax(format!(
                "attribute {} appears twice (RFC 5652 §5.3)",
                attr.oid
            )));
        }
        signed_attributes.push((attr.oid, v.to_der().map_err(syntax)?));
        if attr.oid == ID_MESSAGE_DIGEST {
            message_digest = Some(
                v.decode_as::<OctetString>()
                    .map_err(syntax)?
                    .as_bytes()
                    .to_vec(),
            );
        } else if attr.oid == ID_CONTENT_TYPE {
            content_type = Some(v.decode_as::<ObjectIdentifier>().map_err(syntax)?);
        } else if attr.oid == ID_SIGNING_TIME {
            let t: x509_cert::time::Time = v.decode_as().map_err(syntax)?;
            let secs = i64::try_from(t.to_unix_duration().as_secs())
                .map_err(|_| Error::CmsSyntax("signingTime out of range".into()))?;
            signing_time = Some(
                OffsetDateTime::from_unix_timestamp(secs)
                    .map_err(|_| Error::CmsSyntax("signingTime out of range".into()))?,
            );
        }
    }
    let message_digest =
        message_digest.ok_or_else(|| Error::CmsSyntax("messageDigest attribute missing".into()))?;
    let content_type =
        content_type.ok_or_else(|| Error::CmsSyntax("contentType attribute missing".into()))?;
    if content_type != sd.encap_content_info.econtent_type {
        return Err(Error::ContentTypeMismatch {
            attr: content_type.to_string(),
            econtent: sd.encap_content_info.econtent_type.to_string(),
        });
    }
    let attached = match &sd.encap_content_info.econtent {
        None => None,
        Some(any) if any.tag() == Tag::OctetString => Some(if ber {
            segments(any.value()).unwrap_or_else(|| any.value().to_vec())
        } else {
            any.value().to_vec()
        }),
        Some(any) => {
            return Err(Error::CmsSyntax(format!(
                "eContent is a {}, not an OCTET STRING",
                any.tag()
            )))
        }
    };
    let mut timestamp_tokens = Vec::new();
    for attr in si.unsigned_attrs.iter().flat_map(|a| a.iter()) {
        if attr.oid == ID_SIGNATURE_TIME_STAMP_TOKEN {
            for v in attr.values.iter() {
                timestamp_tokens.push(v.to_der().map_err(syntax)?);
            }
        }
    }
    Ok(Envelope {
        signer_der,
        attached,
        signing_time,
        econtent_type: sd.encap_content_info.econtent_type,
        timestamp_tokens,
        message_digest,
        signed_attributes,
        signed_attrs_der: attrs.to_der().map_err(syntax)?,
        signature: si.signature.as_bytes().to_vec(),
    })
}

/// Adds `token` (a DER ContentInfo: an RFC 3161 TimeStampToken over the signature value) as
/// the id-aa-signatureTimeStampToken unsigned attribute of the single signer of the DER
/// SignedData `cms` (CAdES-T, ETSI EN 319 122-1 §5.3). The signed part is not touched: the
/// signature still verifies. Input must be DER (as the holder token writes it).
pub fn add_signature_timestamp(cms: &[u8], token: &[u8]) -> Result<Vec<u8>, Error> {
    use der::asn1::SetOfVec;
    let syntax = |e: der::Error| Error::CmsSyntax(e.to_string());
    let bytes = crate::cert::der_from_pem_or_der(cms);
    let mut ci = ContentInfo::from_der(&bytes).map_err(syntax)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(Error::CmsSyntax("not a SignedData".into()));
    }
    let mut sd: SignedData = ci.content.decode_as().map_err(syntax)?;
    let mut infos: Vec<_> = sd.signer_infos.0.iter().cloned().collect();
    let [si] = infos.as_mut_slice() else {
        return Err(Error::CmsUnsupported(format!(
            "{} signers; exactly one is supported",
            infos.len()
        )));
    };
    let value = der::Any::from_der(token).map_err(syntax)?;
    let attr = x509_cert::attr::Attribute {
        oid: ID_SIGNATURE_TIME_STAMP_TOKEN,
        values: SetOfVec::try_from(vec![value]).map_err(syntax)?,
    };
    let mut unsigned: Vec<_> = si
        .unsigned_attrs
        .take()
        .map(|a| a.into_vec())
        .unwrap_or_default();
    unsigned.push(attr);
    si.unsigned_attrs = Some(SetOfVec::try_from(unsigned).map_err(syntax)?);
    sd.signer_infos = cms::signed_data::SignerInfos(SetOfVec::try_from(infos).map_err(syntax)?);
    ci.content = der::Any::encode_from(&sd).map_err(syntax)?;
    ci.to_der().map_err(syntax)
}

/// BER input (`openssl cms -stream -nodetach`) carries the content as a constructed
/// OCTET STRING; der 0.8 reads its tag as OCTET STRING and keeps the segments' TLVs as the
/// value. Joins them, or `None` if the value is not a run of OCTET STRING segments (then it was
/// a primitive OCTET STRING). A wrong guess cannot accept anything: the joined bytes must
/// still match the signed messageDigest.
fn segments(value: &[u8]) -> Option<Vec<u8>> {
    use der::{EncodingRules, Reader, SliceReader};
    let mut r = SliceReader::new_with_encoding_rules(value, EncodingRules::Ber).ok()?;
    let mut out = Vec::new();
    while !r.is_finished() {
        out.extend_from_slice(OctetString::decode(&mut r).ok()?.as_bytes());
    }
    Some(out)
}

impl Envelope {
    /// The DER of the value of the signed attribute `oid`, if the signer included it. Only
    /// verified once [`Envelope::verify`] has succeeded.
    pub fn signed_attribute(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.signed_attributes
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, v)| v.as_slice())
    }

    /// The signer's signature value (what a signature time-stamp is over).
    pub fn signature_value(&self) -> &[u8] {
        &self.signature
    }

    /// The content that was signed: the attached one, or `detached` (both given: they must agree).
    pub fn content<'a>(&'a self, detached: Option<&'a [u8]>) -> Result<&'a [u8], Error> {
        match (&self.attached, detached) {
            (Some(a), Some(d)) if a.as_slice() != d => Err(Error::ContentMismatch),
            (Some(a), _) => Ok(a),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(Error::ContentMissing),
        }
    }

    /// messageDigest = SHA-256(content), then the signature over the signed attributes with
    /// the signer certificate's key (`spki_key`: the subjectPublicKey bits, an RSAPublicKey).
    pub fn verify(&self, detached: Option<&[u8]>, spki_key: &[u8]) -> Result<(), Error> {
        let content = self.content(detached)?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content);
        self.verify_digest(digest.as_ref(), spki_key)
    }

    /// [`Envelope::verify`] given the content's SHA-256 instead of the content (an evidence
    /// file keeps the document's hash, not the document).
    pub fn verify_digest(&self, sha256: &[u8], spki_key: &[u8]) -> Result<(), Error> {
        if sha256 != self.message_digest.as_slice() {
            return Err(Error::DigestMismatch);
        }
        rsa_verify(spki_key, &self.signed_attrs_der, &self.signature)
    }
}

/// RSA PKCS#1 v1.5 with SHA-256, 2048–8192-bit keys.
pub fn rsa_verify(rsa_public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), Error> {
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_public_key)
        .verify(msg, sig)
        .map_err(|_| Error::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Pki;

    fn key(pki: &Pki) -> Vec<u8> {
        let der = pki.der("sign/good.pem");
        let leaf = crate::cert::parse(&der, "t").unwrap();
        leaf.public_key().subject_public_key.data.to_vec()
    }

    #[test]
    fn a_signer_named_by_subject_key_identifier_is_found() {
        let pki = Pki::get();
        let env = parse(&pki.sign("sign", "good", &["-keyid"])).unwrap();
        assert_eq!(env.signer_der, pki.der("sign/good.pem"));
        env.verify(Some(&pki.read("doc.txt")), &key(pki)).unwrap();
        assert!(env.signing_time.is_some());
    }

    #[test]
    fn unsupported_shapes_are_named() {
        let pki = Pki::get();
        let cases: [(&[&str], &str); 3] = [
            (&["-noattr"], "no signed attributes"),
            (&["-md", "sha1"], "only SHA-256"),
            (
                &["-signer", "sign/other.pem", "-inkey", "sign/other.key"],
                "2 signers",
            ),
        ];
        for (extra, needle) in cases {
            let e = parse(&pki.sign("sign", "good", extra)).unwrap_err();
            assert!(e.to_string().contains(needle), "{extra:?}: {e}");
        }
        assert!(matches!(
            parse(&pki.sign("sign", "good", &["-nocerts"])),
            Err(Error::SignerNotIncluded)
        ));
    }

    #[test]
    fn the_signature_must_be_over_the_signed_attributes_with_the_signer_key() {
        let pki = Pki::get();
        let env = parse(&pki.sign("sign", "good", &[])).unwrap();
        let other = pki.der("sign/other.pem");
        let other = crate::cert::parse(&other, "t").unwrap();
        assert!(matches!(
            env.verify(
                Some(&pki.read("doc.txt")),
                &other.public_key().subject_public_key.data
            ),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            env.verify(None, &key(pki)),
            Err(Error::ContentMissing)
        ));
    }

    #[test]
    fn other_content_types_are_refused() {
        let pki = Pki::get();
        // A certs-only PKCS#7 is SignedData without signers.
        let p7 = crate::testutil::openssl(
            &pki.dir,
            &[
                "crl2pkcs7",
                "-nocrl",
                "-certfile",
                "sign/good.pem",
                "-outform",
                "DER",
            ],
        );
        let e = parse(&p7).unwrap_err();
        assert!(e.to_string().contains("no SignerInfo"), "{e}");
        // A certificate is not a ContentInfo.
        assert!(matches!(
            parse(&pki.read("sign/good.pem")),
            Err(Error::CmsSyntax(_))
        ));
    }
}
