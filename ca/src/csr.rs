//! CSR intake (PKCS#10, RFC 2986): the only thing the CA takes from a holder is the public
//! key, after the request's self-signature proves possession of the private key. Requested
//! names and extensions are never copied (the profile decides them).

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::error::{Error, Result};

/// A verified request: the subject public key, checked against the key rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub bits: usize,
}

const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_RSA: &str = "1.2.840.113549.1.1.13";
const SIGNATURE_ALGORITHMS: [const_oid::ObjectIdentifier; 3] = [
    const_oid::ObjectIdentifier::new_unwrap(SHA256_RSA),
    const_oid::ObjectIdentifier::new_unwrap(SHA384_RSA),
    const_oid::ObjectIdentifier::new_unwrap(SHA512_RSA),
];

/// The largest request accepted, in bytes, PEM or DER: an RSA-4096 request is under 2 KiB. The
/// same limit applies in-process and through a server's admin socket (whose line limit is far
/// above it), so a request is judged the same way on both paths.
pub const MAX_BYTES: usize = 16 * 1024;

/// Refuses a request larger than [`MAX_BYTES`] before anything else is done with it.
pub fn check_size(input: &[u8]) -> Result<()> {
    if input.len() > MAX_BYTES {
        return Err(Error::Csr(format!(
            "the request is {} bytes; a CSR is at most {MAX_BYTES}",
            input.len()
        )));
    }
    Ok(())
}

/// Reads a PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or DER request and checks
/// it: well-formed with no trailing bytes, signed with SHA-2 RSA by its own key (proof of
/// possession), RSA with at least `min_bits` and e = 65537.
pub fn verify(input: &[u8], min_bits: usize) -> Result<VerifiedCsr> {
    check_size(input)?;
    let der;
    let bytes: &[u8] = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (rest, pem) = x509_parser::pem::parse_x509_pem(input)
            .map_err(|e| Error::Csr(format!("not a PEM file: {e}")))?;
        if !rest.trim_ascii().is_empty() {
            return Err(Error::Csr(format!(
                "{} bytes after the PEM request (one request per file)",
                rest.trim_ascii().len()
            )));
        }
        if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
            return Err(Error::Csr(format!(
                "PEM label is `{}`, expected CERTIFICATE REQUEST",
                pem.label
            )));
        }
        der = pem.contents;
        &der
    } else {
        input
    };
    if bytes.is_empty() {
        return Err(Error::Csr("the file is empty".into()));
    }
    let (rest, csr) = X509CertificationRequest::from_der(bytes)
        .map_err(|e| Error::Csr(format!("not a PKCS#10 request (truncated or garbage): {e}")))?;
    if !rest.is_empty() {
        return Err(Error::Csr(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    // Compared by DER contents first (equal encodings have equal dotted forms), so an
    // accepted request builds no string; the dotted form decides otherwise, as it always did.
    let alg = &csr.signature_algorithm.algorithm;
    if !SIGNATURE_ALGORITHMS
        .iter()
        .any(|known| alg.as_bytes() == known.as_bytes())
    {
        let alg = alg.to_id_string();
        if ![SHA256_RSA, SHA384_RSA, SHA512_RSA].contains(&alg.as_str()) {
            return Err(Error::Csr(format!(
                "signature algorithm {alg} is not RSA with SHA-256/384/512"
            )));
        }
    }
    let info = &csr.certification_request_info;
    let (bits, exponent) = match info.subject_pki.parsed() {
        Ok(PublicKey::RSA(k)) => (k.key_size(), k.try_exponent().ok()),
        Ok(_) => return Err(Error::Csr("the key is not RSA (JPKI uses RSA-2048)".into())),
        Err(e) => return Err(Error::Csr(format!("unreadable public key: {e}"))),
    };
    if bits < min_bits {
        return Err(Error::Csr(format!(
            "RSA-{bits} key is too small (at least {min_bits} bits)"
        )));
    }
    if bits > 8192 {
        return Err(Error::Csr(format!(
            "RSA-{bits} key is too large (at most 8192 bits)"
        )));
    }
    if exponent != Some(65537) {
        return Err(Error::Csr("RSA public exponent must be 65537".into()));
    }
    csr.verify_signature().map_err(|_| {
        Error::Csr("signature does not verify (no proof of possession of the private key)".into())
    })?;
    Ok(VerifiedCsr {
        spki: info.subject_pki.raw.to_vec(),
        bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA256};

    fn csr_der(bits: rcgen::RsaKeySize) -> Vec<u8> {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, bits).unwrap();
        CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn accepts_a_good_request_and_refuses_bad_ones() {
        let der = csr_der(rcgen::RsaKeySize::_2048);
        let ok = verify(&der, 2048).unwrap();
        assert_eq!(ok.bits, 2048);

        // PEM: trailing whitespace is fine, anything else after the request is refused.
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        assert_eq!(verify(format!("{pem}\n  \n").as_bytes(), 2048).unwrap(), ok);
        let e = verify(format!("{pem}junk").as_bytes(), 2048).unwrap_err();
        assert!(
            e.to_string().contains("4 bytes after the PEM request"),
            "{e}"
        );
        let huge = format!("{pem}{}", " ".repeat(MAX_BYTES));
        let e = verify(huge.as_bytes(), 2048).unwrap_err();
        assert!(e.to_string().contains("a CSR is at most"), "{e}");

        let mut tampered = der.clone();
        let n = tampered.len();
        tampered[n - 10] ^= 1;
        assert!(verify(&tampered, 2048)
            .unwrap_err()
            .to_string()
            .contains("proof of possession"));
        assert!(verify(&der[..der.len() / 2], 2048)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert!(verify(b"garbage", 2048).is_err());
        assert!(verify(b"", 2048).unwrap_err().to_string().contains("empty"));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(verify(&trailing, 2048)
            .unwrap_err()
            .to_string()
            .contains("after the request"));
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        assert!(verify(pem.as_bytes(), 2048)
            .unwrap_err()
            .to_string()
            .contains("label"));
    }
}
