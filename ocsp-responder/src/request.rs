//! Parsing and checking an OCSP request (RFC 6960 §4.1).
//!
//! The ASN.1 (RFC 6960 §4.1.1), decoded with the `x509-ocsp` types:
//!
//! ```text
//! OCSPRequest ::= SEQUENCE {
//!    tbsRequest              TBSRequest,
//!    optionalSignature   [0] EXPLICIT Signature OPTIONAL }
//! TBSRequest ::= SEQUENCE {
//!    version             [0] EXPLICIT Version DEFAULT v1,
//!    requestorName       [1] EXPLICIT GeneralName OPTIONAL,
//!    requestList             SEQUENCE OF Request,
//!    requestExtensions   [2] EXPLICIT Extensions OPTIONAL }
//! Request ::= SEQUENCE {
//!    reqCert                     CertID,
//!    singleRequestExtensions     [0] EXPLICIT Extensions OPTIONAL }
//! CertID ::= SEQUENCE {
//!    hashAlgorithm       AlgorithmIdentifier,
//!    issuerNameHash      OCTET STRING, -- Hash of issuer's DN
//!    issuerKeyHash       OCTET STRING, -- Hash of issuer's public key
//!    serialNumber        CertificateSerialNumber }
//! ```
//!
//! Decisions:
//! * DER only, the whole input: BER, truncation and trailing bytes are `malformedRequest`.
//! * An empty requestList, or more CertIDs than the configured cap, is `malformedRequest`.
//! * Nonce (RFC 8954 as updated by RFC 9654 §2.1): the extnValue holds `Nonce ::= OCTET STRING`
//!   of 1..=32 octets; 0 or more than 32 octets, or two nonce extensions, is `malformedRequest`.
//!   The extension is echoed byte for byte. A value that is not an OCTET STRING (some clients
//!   put raw octets in extnValue) is measured raw, with the same bounds.
//! * Other extensions: RFC 6960 §4.4 says unrecognised extensions "MUST be ignored (unless they
//!   have the critical flag set and are not understood)". We ignore unknown non-critical ones and
//!   answer `malformedRequest` to an unknown critical one, in the request or in a single request.
//! * The optional signature is not required and not checked (nobody signs OCSP requests in
//!   practice and JPKI access control is by mutual TLS instead).

use der07::asn1::OctetString;
use der07::Decode;
use spki07::ObjectIdentifier;
use x509_cert_02::ext::Extension;
use x509_ocsp::{CertId, OcspRequest};

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
pub const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// RFC 9654 §2.1 upper bound on the nonce length.
pub const MAX_NONCE: usize = 32;

/// A request that passed the checks.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub cert_ids: Vec<CertId>,
    /// The nonce extension to echo, as received.
    pub nonce: Option<Extension>,
}

/// Why a request is `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    #[error("not a DER OCSPRequest: {0}")]
    Der(String),
    #[error("empty requestList")]
    Empty,
    #[error("{0} CertIDs, more than the limit of {1}")]
    TooMany(usize, usize),
    #[error("nonce of {0} octets (RFC 9654: 1..=32)")]
    NonceLength(usize),
    #[error("more than one nonce extension")]
    DuplicateNonce,
    #[error("unsupported critical extension {0}")]
    CriticalExtension(ObjectIdentifier),
}

/// Decodes and checks a DER `OCSPRequest`.
pub fn parse(der: &[u8], max_cert_ids: usize) -> Result<Parsed, Malformed> {
    let req = OcspRequest::from_der(der).map_err(|e| Malformed::Der(e.to_string()))?;
    let tbs = req.tbs_request;
    let n = tbs.request_list.len();
    if n == 0 {
        return Err(Malformed::Empty);
    }
    if n > max_cert_ids {
        return Err(Malformed::TooMany(n, max_cert_ids));
    }
    let mut nonce = None;
    for ext in tbs.request_extensions.iter().flatten() {
        if ext.extn_id == NONCE {
            if nonce.is_some() {
                return Err(Malformed::DuplicateNonce);
            }
            let len = nonce_len(ext.extn_value.as_bytes());
            if len == 0 || len > MAX_NONCE {
                return Err(Malformed::NonceLength(len));
            }
            nonce = Some(ext.clone());
        } else if ext.critical {
            return Err(Malformed::CriticalExtension(ext.extn_id));
        }
    }
    let mut cert_ids = Vec::with_capacity(n);
    for single in tbs.request_list {
        if let Some(ext) = single
            .single_request_extensions
            .iter()
            .flatten()
            .find(|e| e.critical)
        {
            return Err(Malformed::CriticalExtension(ext.extn_id));
        }
        cert_ids.push(single.req_cert);
    }
    Ok(Parsed { cert_ids, nonce })
}

/// The nonce length: of the inner OCTET STRING when extnValue holds one, else of extnValue.
fn nonce_len(value: &[u8]) -> usize {
    match OctetString::from_der(value) {
        Ok(inner) => inner.as_bytes().len(),
        Err(_) => value.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der07::asn1::Null;
    use der07::Encode;
    use spki07::AlgorithmIdentifierOwned;
    use x509_cert_02::serial_number::SerialNumber;
    use x509_ocsp::{Request, TbsRequest};

    fn cert_id(serial: u8) -> CertId {
        CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new([1u8; 20]).unwrap(),
            issuer_key_hash: OctetString::new([2u8; 20]).unwrap(),
            serial_number: SerialNumber::new(&[serial]).unwrap(),
        }
    }

    fn ext(oid: ObjectIdentifier, critical: bool, value: Vec<u8>) -> Extension {
        Extension {
            extn_id: oid,
            critical,
            extn_value: OctetString::new(value).unwrap(),
        }
    }

    fn request(n: usize, exts: Option<Vec<Extension>>) -> Vec<u8> {
        OcspRequest {
            tbs_request: TbsRequest {
                version: Default::default(),
                requestor_name: None,
                request_list: (0..n)
                    .map(|i| Request {
                        req_cert: cert_id((i % 250) as u8 + 1),
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: exts,
            },
            optional_signature: None,
        }
        .to_der()
        .unwrap()
    }

    fn wrapped_nonce(len: usize) -> Vec<u8> {
        OctetString::new(vec![7u8; len]).unwrap().to_der().unwrap()
    }

    #[test]
    fn plain_request_parses() {
        let p = parse(&request(3, None), 64).unwrap();
        assert_eq!(p.cert_ids.len(), 3);
        assert!(p.nonce.is_none());
    }

    #[test]
    fn truncated_and_trailing_bytes_are_malformed() {
        let der = request(1, None);
        for cut in 0..der.len() {
            assert!(
                matches!(parse(&der[..cut], 64), Err(Malformed::Der(_))),
                "cut at {cut}"
            );
        }
        let mut long = der.clone();
        long.push(0);
        assert!(matches!(parse(&long, 64), Err(Malformed::Der(_))));
    }

    #[test]
    fn count_cap() {
        assert_eq!(
            parse(&request(1000, None), 64).unwrap_err(),
            Malformed::TooMany(1000, 64)
        );
        assert_eq!(parse(&request(0, None), 64).unwrap_err(), Malformed::Empty);
        assert!(parse(&request(64, None), 64).is_ok());
    }

    #[test]
    fn nonce_bounds() {
        for len in [1usize, 16, 32] {
            let e = ext(NONCE, false, wrapped_nonce(len));
            let p = parse(&request(1, Some(vec![e.clone()])), 64).unwrap();
            assert_eq!(p.nonce, Some(e));
        }
        for len in [0usize, 33, 200] {
            let e = ext(NONCE, false, wrapped_nonce(len));
            assert_eq!(
                parse(&request(1, Some(vec![e])), 64).unwrap_err(),
                Malformed::NonceLength(len)
            );
        }
        // raw (unwrapped) nonce octets are measured as they are
        let raw = ext(NONCE, false, vec![0xAB; 40]);
        assert_eq!(
            parse(&request(1, Some(vec![raw])), 64).unwrap_err(),
            Malformed::NonceLength(40)
        );
        let two = vec![
            ext(NONCE, false, wrapped_nonce(8)),
            ext(NONCE, false, wrapped_nonce(8)),
        ];
        assert_eq!(
            parse(&request(1, Some(two)), 64).unwrap_err(),
            Malformed::DuplicateNonce
        );
    }

    #[test]
    fn unknown_extensions() {
        // preferred signature algorithms (RFC 6960 §4.4.7), which crashes the `ocsp` 0.4 crate
        let pref = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.8");
        let ok = parse(
            &request(1, Some(vec![ext(pref, false, vec![0x30, 0x00])])),
            64,
        );
        assert!(ok.is_ok());
        assert_eq!(
            parse(
                &request(1, Some(vec![ext(pref, true, vec![0x30, 0x00])])),
                64
            )
            .unwrap_err(),
            Malformed::CriticalExtension(pref)
        );
    }
}
