//! Object identifiers of RFC 3161, RFC 5652 and RFC 5035 used here.

use const_oid::ObjectIdentifier as Oid;

/// id-kp-timeStamping (RFC 3161 §2.3, RFC 5280 §4.2.1.12).
pub const KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");
/// id-sha256 (RFC 5754).
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// id-signedData (RFC 5652 §5.1).
pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// id-contentType (RFC 5652 §11.1).
pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest (RFC 5652 §11.2).
pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
/// id-ct-TSTInfo (RFC 3161 §2.4.2).
pub const CT_TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// id-aa-signingCertificate (RFC 2634 §5.4: ESSCertID with a SHA-1 hash).
pub const SIGNING_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.12");
/// id-sha1, id-sha384, id-sha512 (RFC 3370, RFC 5754): the hashes an ESSCertID(v2) may use.
pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
/// id-aa-signingCertificateV2 (RFC 5035 §3).
pub const SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-aa-signatureTimeStampToken (RFC 3161 Appendix A): the unsigned attribute of a
/// SignerInfo that carries a time-stamp over its signature value (CAdES-T, ETSI EN 319 122-1).
pub const SIGNATURE_TIME_STAMP_TOKEN: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.14");
