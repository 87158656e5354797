//! The requesting and relying side of RFC 3161: a request for a SHA-256 imprint, checking the
//! answer against it, and verifying a token later against trusted TSA roots.

use ::time::OffsetDateTime;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_parser::prelude::*;

use crate::asn1::{MessageImprint, TimeStampReq, TimeStampResp, TstInfo};
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

fn fmt(t: OffsetDateTime) -> String {
    t.format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
