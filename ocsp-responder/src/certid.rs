//! The small vocabulary the responder and the durable answer store share: CertID hash
//! algorithms (RFC 6960 §4.1.1), the three times of a signed answer, and the canonical form of
//! a serial. In a module of their own so that neither of the two imports the other.

use aws_lc_rs::digest;
use spki07::ObjectIdentifier;
use time::OffsetDateTime;

/// A CertID hash algorithm we can compute (RFC 6960 §4.1.1 leaves it open; clients use SHA-1
/// or SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub(crate) const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    pub fn oid(self) -> ObjectIdentifier {
        // Parsed at compile time: this runs for every request.
        const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
        const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
        const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
        const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
        match self {
            HashAlg::Sha1 => SHA1,
            HashAlg::Sha256 => SHA256,
            HashAlg::Sha384 => SHA384,
            HashAlg::Sha512 => SHA512,
        }
    }

    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|a| a.oid() == *oid)
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// The three times of a signed answer (whole seconds, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub produced_at: OffsetDateTime,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

/// A serial's magnitude without leading zero octets: the same for the DER INTEGER content
/// of a CertID (`00 80` for 128) and the CA's record (`80`), so that both name one entry.
pub(crate) fn canonical(serial: &[u8]) -> &[u8] {
    let start = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    &serial[start..]
}
