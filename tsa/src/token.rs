//! The requesting and relying side of RFC 3161: a request for a SHA-256 imprint, checking the
//! answer against it, and verifying a token later against trusted TSA roots.

use ::time::OffsetDateTime;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_parser::prelude::*;

use crate::asn1::{
    MessageImprint, SigningCertificate, SigningCertificateV2, TimeStampReq, TimeStampResp, TstInfo,
};
use crate::error::{der_err, Error, Result};
use crate::oid;

/// The MIME types of RFC 3161 §3.4.
pub const QUERY_TYPE: &str = "application/timestamp-query";
pub const REPLY_TYPE: &str = "application/timestamp-reply";

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// genTime.
    pub gen_time: OffsetDateTime,
    /// The accuracy in seconds (0 when absent: then genTime is all the token promises).
    pub accuracy_seconds: u32,
    /// serialNumber, upper-case hex.
    pub serial: String,
    /// The TSA policy OID.
    pub policy: String,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// DER of the TSA certificate.
    pub tsa_cert: Vec<u8>,
}

/// A DER TimeStampReq for the SHA-256 `digest`, with `nonce` (positive, big-endian) and
/// certReq set, so that the token carries the TSA certificate.
pub fn request(digest: &[u8; 32], nonce: &[u8]) -> Result<Vec<u8>> {
    TimeStampReq {
        version: 1,
        message_imprint: imprint(digest)?,
        req_policy: None,
        nonce: Some(Int::new(nonce).map_err(der_err("nonce"))?),
        cert_req: true,
        extensions: None,
    }
    .to_der()
    .map_err(der_err("TimeStampReq"))
}

fn imprint(digest: &[u8; 32]) -> Result<MessageImprint> {
    Ok(MessageImprint {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: oid::SHA256,
            parameters: None,
        },
        hashed_message: OctetString::new(digest.as_slice()).map_err(der_err("imprint"))?,
    })
}

/// A fresh random nonce (8 bytes, positive).
pub fn nonce() -> Result<Vec<u8>> {
    use aws_lc_rs::rand::SecureRandom;
    let mut n = vec![0u8; 8];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| Error::Internal("OS random generator failed".into()))?;
    n[0] = (n[0] & 0x7f) | 0x01;
    Ok(n)
}

/// The token (DER ContentInfo) from a TimeStampResp answering the request for `digest` with
/// `nonce`: status granted, the imprint and the nonce echoed (RFC 3161 §2.4.2). The token's
/// signature is checked later, by [`verify`], against the TSA roots the relying party trusts.
pub fn token_of_response(resp: &[u8], digest: &[u8; 32], nonce: &[u8]) -> Result<Vec<u8>> {
    let resp = TimeStampResp::from_der(resp)
        .map_err(|e| Error::BadResponse(format!("not a DER TimeStampResp: {e}")))?;
    if resp.status.status > 1 {
        return Err(Error::BadResponse(format!(
            "refused (status {}): {}",
            resp.status.status,
            resp.status.status_string.unwrap_or_default().join("; ")
        )));
    }
    let token = resp
        .time_stamp_token
        .ok_or_else(|| Error::BadResponse("granted but no timeStampToken".into()))?
        .to_der()
        .map_err(der_err("timeStampToken"))?;
    let info = tst_info(&token)?;
    if info.message_imprint != imprint(digest)? {
        return Err(Error::BadResponse(
            "the token's messageImprint is not the one asked for".into(),
        ));
    }
    match &info.nonce {
        Some(n) if n.as_bytes() == Int::new(nonce).map_err(der_err("nonce"))?.as_bytes() => {}
        _ => return Err(Error::BadResponse("the nonce was not echoed".into())),
    }
    Ok(token)
}

/// The TSTInfo of a token, unverified.
pub fn tst_info(token: &[u8]) -> Result<TstInfo> {
    let env = signed_data::cms::parse(token)?;
    if env.econtent_type != oid::CT_TST_INFO {
        return Err(Error::BadToken(format!(
            "content type {} is not id-ct-TSTInfo",
            env.econtent_type
        )));
    }
    let der = env
        .attached
        .as_deref()
        .ok_or_else(|| Error::BadToken("no TSTInfo inside".into()))?;
    TstInfo::from_der(der).map_err(|e| Error::BadToken(format!("TSTInfo: {e}")))
}

/// Verifies `token` as a time-stamp over `data` (the bytes whose SHA-256 is the imprint):
/// the CMS signature of the TSA, its certificate (extKeyUsage id-kp-timeStamping alone and
/// critical, RFC 3161 §2.3) issued by one of `trusted_roots` (DER) and valid with its issuer
/// at genTime, and the imprint. Each failure is named ([`Error::OtherContent`],
/// [`Error::UntrustedTsa`], [`Error::BadToken`]).
pub fn verify(token: &[u8], data: &[u8], trusted_roots: &[Vec<u8>]) -> Result<Stamp> {
    let env = signed_data::cms::parse(token)?;
    let info = tst_info(token)?;
    let (_, tsa) = X509Certificate::from_der(&env.signer_der)
        .map_err(|e| Error::BadToken(format!("TSA certificate: {e}")))?;
    env.verify(None, &tsa.public_key().subject_public_key.data)?;
    names_its_signer(
        env.signed_attribute(oid::SIGNING_CERTIFICATE_V2),
        env.signed_attribute(oid::SIGNING_CERTIFICATE),
        &env.signer_der,
    )?;
    match tsa.extended_key_usage() {
        Ok(Some(eku))
            if eku.critical
                && eku.value.time_stamping
                && eku.value.other.is_empty()
                && !(eku.value.any
                    || eku.value.server_auth
                    || eku.value.client_auth
                    || eku.value.code_signing
                    || eku.value.email_protection
                    || eku.value.ocsp_signing) => {}
        _ => {
            return Err(Error::BadToken(format!(
                "the signer {} is not a TSA: its extKeyUsage must be id-kp-timeStamping alone, critical",
                tsa.subject()
            )))
        }
    }
    let gen_time = OffsetDateTime::from_unix_timestamp(
        i64::try_from(info.gen_time.to_unix_duration().as_secs())
            .map_err(|_| Error::BadToken("genTime out of range".into()))?,
    )
    .map_err(|_| Error::BadToken("genTime out of range".into()))?;
    let at = ASN1Time::from(gen_time);
    let issuer = trusted_roots
        .iter()
        .filter_map(|r| X509Certificate::from_der(r).ok().map(|(_, c)| c))
        .find(|r| r.subject() == tsa.issuer() && tsa.verify_signature(Some(r.public_key())).is_ok())
        .ok_or_else(|| {
            Error::UntrustedTsa(format!(
                "{} (issuer {}) is not certified by a trusted TSA root",
                tsa.subject(),
                tsa.issuer()
            ))
        })?;
    for (what, c) in [("TSA certificate", &tsa), ("TSA root", &issuer)] {
        if !c.validity().is_valid_at(at) {
            return Err(Error::BadToken(format!(
                "the {what} {} is not valid at genTime {}",
                c.subject(),
                fmt(gen_time)
            )));
        }
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    if info.message_imprint.hash_algorithm.oid != oid::SHA256
        || info.message_imprint.hashed_message.as_bytes() != digest.as_ref()
    {
        return Err(Error::OtherContent);
    }
    let accuracy_seconds = info.accuracy.as_ref().map_or(0, |a| {
        a.seconds.unwrap_or(0) + u32::from(a.millis.is_some() || a.micros.is_some())
    });
    Ok(Stamp {
        gen_time,
        accuracy_seconds,
        serial: hex::encode_upper(info.serial_number.as_bytes()),
        policy: info.policy.to_string(),
        tsa: tsa.subject().to_string(),
        tsa_cert: env.signer_der.clone(),
    })
}

/// RFC 3161 §2.4.1 (and RFC 5816 §2.2.1 for the V2 form): a token's signed attributes must
/// name the TSA's certificate — ESS signingCertificateV2 (SHA-256 by default, or SHA-384/512)
/// or signingCertificate (SHA-1) — and the first ESSCertID(v2) is the signer's. Without it a
/// certificate for the same key but with other contents (another validity, another
/// extKeyUsage) could be put in the token's place; the signature alone would not notice.
/// `v2`, `v1`: the DER of the attributes' values; `signer`: the certificate the signature was
/// verified with.
pub fn names_its_signer(v2: Option<&[u8]>, v1: Option<&[u8]>, signer: &[u8]) -> Result<()> {
    use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256, SHA384, SHA512};
    let (alg, named) = match (v2, v1) {
        (Some(der), _) => {
            let sc = SigningCertificateV2::from_der(der)
                .map_err(|e| Error::BadToken(format!("signingCertificateV2 attribute: {e}")))?;
            let first = sc.certs.first().ok_or_else(|| {
                Error::BadToken("signingCertificateV2 attribute names no certificate".into())
            })?;
            let alg = first.hash_algorithm.as_ref().map_or(oid::SHA256, |a| a.oid);
            let alg = match alg {
                a if a == oid::SHA256 => &SHA256,
                a if a == oid::SHA384 => &SHA384,
                a if a == oid::SHA512 => &SHA512,
                a => {
                    return Err(Error::BadToken(format!(
                        "signingCertificateV2 uses hash {a}; SHA-256, SHA-384 or SHA-512 expected"
                    )))
                }
            };
            (alg, first.cert_hash.as_bytes().to_vec())
        }
        (None, Some(der)) => {
            let sc = SigningCertificate::from_der(der)
                .map_err(|e| Error::BadToken(format!("signingCertificate attribute: {e}")))?;
            let first = sc.certs.first().ok_or_else(|| {
                Error::BadToken("signingCertificate attribute names no certificate".into())
            })?;
            (
                &SHA1_FOR_LEGACY_USE_ONLY,
                first.cert_hash.as_bytes().to_vec(),
            )
        }
        (None, None) => {
            return Err(Error::BadToken(
                "no ESS signingCertificate(V2) attribute: RFC 3161 §2.4.1 requires a token to \
                 name its TSA's certificate"
                    .into(),
            ))
        }
    };
    if digest(alg, signer).as_ref() != named.as_slice() {
        return Err(Error::BadToken(
            "the ESS signingCertificate attribute names another certificate than the one the \
             token was verified with"
                .into(),
        ));
    }
    Ok(())
}

fn fmt(t: OffsetDateTime) -> String {
    t.format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1::{EssCertId, EssCertIdV2};
    use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256, SHA384};

    fn v2(hash: &[u8], alg: Option<const_oid::ObjectIdentifier>) -> Vec<u8> {
        SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: alg.map(|oid| AlgorithmIdentifierOwned {
                    oid,
                    parameters: None,
                }),
                cert_hash: OctetString::new(hash).unwrap(),
                issuer_serial: None,
            }],
            policies: None,
        }
        .to_der()
        .unwrap()
    }

    fn v1(hash: &[u8]) -> Vec<u8> {
        SigningCertificate {
            certs: vec![EssCertId {
                cert_hash: OctetString::new(hash).unwrap(),
                issuer_serial: None,
            }],
            policies: None,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn the_attribute_must_name_the_signer() {
        let (cert, other) = (b"the TSA's certificate".as_slice(), b"another".as_slice());
        let h256 = digest(&SHA256, cert);
        let h384 = digest(&SHA384, cert);
        let h1 = digest(&SHA1_FOR_LEGACY_USE_ONLY, cert);
        // Named, with the default hash, an explicit one, or the SHA-1 form.
        names_its_signer(Some(&v2(h256.as_ref(), None)), None, cert).unwrap();
        names_its_signer(Some(&v2(h384.as_ref(), Some(oid::SHA384))), None, cert).unwrap();
        names_its_signer(None, Some(&v1(h1.as_ref())), cert).unwrap();
        // Another certificate, a missing attribute, a hash that does not fit, junk.
        for (v2a, v1a, says) in [
            (
                Some(v2(h256.as_ref(), None)),
                None,
                "names another certificate",
            ),
            (None, Some(v1(h1.as_ref())), "names another certificate"),
            (None, None, "RFC 3161 §2.4.1"),
            (
                Some(v2(h256.as_ref(), Some(oid::SHA1))),
                None,
                "SHA-256, SHA-384 or SHA-512",
            ),
            (
                Some(vec![0x30, 0x03, 0x02, 0x01, 0x00]),
                None,
                "signingCertificateV2 attribute",
            ),
        ] {
            let e = names_its_signer(v2a.as_deref(), v1a.as_deref(), other)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e} should say {says}");
        }
        // The first ESSCertIDv2 is the signer's: a SHA-256 of the right certificate under a
        // SHA-384 label does not pass.
        let e =
            names_its_signer(Some(&v2(h256.as_ref(), Some(oid::SHA384))), None, cert).unwrap_err();
        assert!(e.to_string().contains("another certificate"), "{e}");
    }
}
