//! Certificate status by OCSP (RFC 6960): the request with a fresh 16-byte nonce (RFC 8954)
//! and a SHA-1 CertID, and the strict check of the answer.
//!
//! ```text
//! CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//!                       issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
//! BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData,
//!   signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
//!   certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
//! ```
//!
//! The answer is accepted only if: the response status is successful and of type
//! id-pkix-ocsp-basic; it is signed (sha256WithRSAEncryption) by the trust anchor itself or by
//! a responder certificate included in it that the anchor issued with id-kp-OCSPSigning and
//! that is within validity (RFC 6960 §4.2.2.2); it echoes our nonce; a SingleResponse carries
//! our CertID; thisUpdate is not in the future and nextUpdate (or, without one, thisUpdate
//! plus [`MAX_AGE_WITHOUT_NEXT_UPDATE`]) has not passed. The x509-ocsp types sit on der 0.7
//! (crate-notes pitfall 10): only bytes cross to the rest of the crate.

use ::time::OffsetDateTime;
use der07::asn1::{Null, ObjectIdentifier, OctetString};
use der07::{Decode, Encode};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};
use x509_parser::prelude::*;

use crate::cert::fmt_time;
use crate::crl::{Status, SKEW};
use crate::Error;

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// How old an answer without nextUpdate may be.
pub const MAX_AGE_WITHOUT_NEXT_UPDATE: ::time::Duration = ::time::Duration::hours(1);

/// One OCSP question: the DER to POST, and what the answer must match.
#[derive(Debug, Clone)]
pub struct Query {
    pub der: Vec<u8>,
    cert_id: CertId,
    /// extnValue of our nonce extension: `OCTET STRING (16 bytes)`.
    nonce_value: Vec<u8>,
    /// The nonce itself (kept in evidence files, to check the stored answer again).
    pub nonce: Vec<u8>,
}

fn req_err(e: impl std::fmt::Display) -> Error {
    Error::OcspRequest(e.to_string())
}

fn syn_err(e: impl std::fmt::Display) -> Error {
    Error::OcspSyntax(e.to_string())
}

impl Query {
    /// Builds the request for `leaf` issued by `root`, with a random nonce.
    pub fn new(leaf: &X509Certificate<'_>, root: &X509Certificate<'_>) -> Result<Query, Error> {
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::OcspRequest("no randomness for the nonce".into()))?;
        Query::with_nonce(leaf, root, &nonce)
    }

    /// Builds the request with a given nonce (tests).
    pub fn with_nonce(
        leaf: &X509Certificate<'_>,
        root: &X509Certificate<'_>,
        nonce: &[u8],
    ) -> Result<Query, Error> {
        let sha1 = |b: &[u8]| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, b)
                .as_ref()
                .to_vec()
        };
        let cert_id = CertId {
            hash_algorithm: spki07::AlgorithmIdentifierOwned {
                oid: ID_SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(sha1(root.subject().as_raw())).map_err(req_err)?,
            issuer_key_hash: OctetString::new(sha1(&root.public_key().subject_public_key.data))
                .map_err(req_err)?,
            serial_number: x509_cert_02::serial_number::SerialNumber::new(leaf.raw_serial())
                .map_err(req_err)?,
        };
        let nonce_value = OctetString::new(nonce.to_vec())
            .map_err(req_err)?
            .to_der()
            .map_err(req_err)?;
        let ext = x509_cert_02::ext::Extension {
            extn_id: ID_NONCE,
            critical: false,
            extn_value: OctetString::new(nonce_value.clone()).map_err(req_err)?,
        };
        let req = OcspRequest {
            tbs_request: TbsRequest {
                version: x509_ocsp::Version::V1,
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: cert_id.clone(),
                    single_request_extensions: None,
                }],
                request_extensions: Some(vec![ext]),
            },
            optional_signature: None,
        };
        Ok(Query {
            der: req.to_der().map_err(req_err)?,
            cert_id,
            nonce_value,
            nonce: nonce.to_vec(),
        })
    }

    /// Checks a DER OCSPResponse against this query, the anchor, and `now`.
    pub fn check(
        &self,
        response: &[u8],
        root: &X509Certificate<'_>,
        now: OffsetDateTime,
    ) -> Result<Status, Error> {
        self.check_dated(response, root, now).map(|(s, _)| s)
    }

    /// [`Query::check`], with the answer's thisUpdate (when the status was known true).
    pub fn check_dated(
        &self,
        response: &[u8],
        root: &X509Certificate<'_>,
        now: OffsetDateTime,
    ) -> Result<(Status, OffsetDateTime), Error> {
        let resp = OcspResponse::from_der(response).map_err(syn_err)?;
        if resp.response_status != OcspResponseStatus::Successful {
            return Err(Error::OcspStatus(format!("{:?}", resp.response_status)));
        }
        let bytes = resp
            .response_bytes
            .ok_or_else(|| syn_err("successful response without responseBytes"))?;
        if bytes.response_type != ID_BASIC {
            return Err(syn_err(format!(
                "response type {} is not id-pkix-ocsp-basic",
                bytes.response_type
            )));
        }
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(syn_err)?;
        if basic.signature_algorithm.oid != SHA256_WITH_RSA {
            return Err(syn_err(format!(
                "signature algorithm {} (only sha256WithRSAEncryption)",
                basic.signature_algorithm.oid
            )));
        }
        let tbs = basic.tbs_response_data.to_der().map_err(syn_err)?;
        let sig = basic.signature.raw_bytes();
        authorised_signature(
            &tbs,
            sig,
            basic.certs.as_deref().unwrap_or_default(),
            root,
            now,
        )?;

        let data = &basic.tbs_response_data;
        let nonce = data
            .response_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_NONCE);
        match nonce {
            None => return Err(Error::NonceMissing),
            Some(e) if e.extn_value.as_bytes() != self.nonce_value.as_slice() => {
                return Err(Error::NonceMismatch)
            }
            Some(_) => {}
        }
        let single = data
            .responses
            .iter()
            .find(|s| {
                let (a, b) = (&s.cert_id, &self.cert_id);
                a.hash_algorithm.oid == b.hash_algorithm.oid
                    && a.issuer_name_hash == b.issuer_name_hash
                    && a.issuer_key_hash == b.issuer_key_hash
                    && a.serial_number == b.serial_number
            })
            .ok_or(Error::OcspWrongCertificate)?;
        let time = |t: &x509_ocsp::OcspGeneralizedTime| {
            i64::try_from(t.0.to_unix_duration().as_secs())
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or_else(|| syn_err("time out of range"))
        };
        let this_update = time(&single.this_update)?;
        if this_update > now + SKEW {
            return Err(Error::OcspStale(format!(
                "thisUpdate {} is in the future (now {})",
                fmt_time(this_update),
                fmt_time(now)
            )));
        }
        let expires = match &single.next_update {
            Some(n) => time(n)?,
            None => this_update + MAX_AGE_WITHOUT_NEXT_UPDATE,
        };
        if now > expires {
            return Err(Error::OcspStale(format!(
                "valid until {} (now {})",
                fmt_time(expires),
                fmt_time(now)
            )));
        }
        let status = match &single.cert_status {
            CertStatus::Good(_) => Status::Good,
            CertStatus::Revoked(info) => Status::Revoked {
                date: time(&info.revocation_time)?,
                reason: info.revocation_reason.map(|r| r as u8),
            },
            CertStatus::Unknown(_) => return Err(Error::OcspUnknown),
        };
        Ok((status, this_update))
    }
}

/// The response is signed by the anchor, or by an included responder certificate the anchor
/// issued for OCSP signing (RFC 6960 §4.2.2.2).
fn authorised_signature(
    tbs: &[u8],
    sig: &[u8],
    certs: &[x509_cert_02::Certificate],
    root: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<(), Error> {
    if crate::cms::rsa_verify(&root.public_key().subject_public_key.data, tbs, sig).is_ok() {
        return Ok(());
    }
    for c in certs {
        let Ok(der) = c.to_der() else { continue };
        let Ok(responder) = crate::cert::parse(&der, "OCSP responder certificate") else {
            continue;
        };
        let authorised = crate::path::issuer_is_anchor(&responder, root).is_ok()
            && crate::path::signed_by_anchor(&responder, root).is_ok()
            && crate::path::within_validity(&responder, "OCSP responder", now).is_ok()
            && responder
                .extended_key_usage()
                .ok()
                .flatten()
                .is_some_and(|e| e.value.ocsp_signing);
        if authorised
            && crate::cms::rsa_verify(&responder.public_key().subject_public_key.data, tbs, sig)
                .is_ok()
        {
            return Ok(());
        }
    }
    Err(Error::OcspSignature)
}
