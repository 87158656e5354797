//! Object identifiers used by the JPKI profiles (reference §1–§3).

use const_oid::ObjectIdentifier as Oid;

/// J-LIS personal-data arc `1.2.392.200149.8.5.5` (reference §2, "Holder attributes").
pub const NAME: Oid = Oid::new_unwrap("1.2.392.200149.8.5.5.1");
/// Substitute-character position flags of the name.
pub const NAME_FLAGS: Oid = Oid::new_unwrap("1.2.392.200149.8.5.5.2");
/// Sex, one digit.
pub const SEX: Oid = Oid::new_unwrap("1.2.392.200149.8.5.5.3");
/// Date of birth, `EYYYYMMDD`.
pub const BIRTH: Oid = Oid::new_unwrap("1.2.392.200149.8.5.5.4");
/// Address.
pub const ADDRESS: Oid = Oid::new_unwrap("1.2.392.200149.8.5.5.5");
/// Substitute-character position flags of the address.
pub const ADDRESS_FLAGS: Oid = Oid::new_unwrap("1.2.392.200149.8.5.5.6");
/// The order real cards write the six otherNames in (reference §2).
pub const SAN_ORDER: [Oid; 6] = [NAME, BIRTH, SEX, ADDRESS, NAME_FLAGS, ADDRESS_FLAGS];

/// sha256WithRSAEncryption (RFC 4055 §5).
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
/// rsaEncryption (RFC 8017 appendix C).
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
/// id-qt-cps (RFC 5280 §4.2.1.4).
pub const QT_CPS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.2.1");
/// id-ad-ocsp (RFC 5280 §4.2.2.1).
pub const AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-kp-clientAuth (RFC 5280 §4.2.1.12), on authentication certificates (reference §3).
pub const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-kp-OCSPSigning (RFC 5280 §4.2.1.12).
pub const KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
pub const OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// Certificate extensions (RFC 5280 §4.2).
pub const EXT_SKI: Oid = Oid::new_unwrap("2.5.29.14");
pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
pub const EXT_SAN: Oid = Oid::new_unwrap("2.5.29.17");
pub const EXT_IAN: Oid = Oid::new_unwrap("2.5.29.18");
pub const EXT_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
pub const EXT_CRL_DP: Oid = Oid::new_unwrap("2.5.29.31");
pub const EXT_CERT_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
pub const EXT_AKI: Oid = Oid::new_unwrap("2.5.29.35");
pub const EXT_EKU: Oid = Oid::new_unwrap("2.5.29.37");
pub const EXT_AIA: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.1");

/// Name attributes (RFC 5280 appendix A.1).
pub const AT_C: Oid = Oid::new_unwrap("2.5.4.6");
pub const AT_O: Oid = Oid::new_unwrap("2.5.4.10");
pub const AT_OU: Oid = Oid::new_unwrap("2.5.4.11");
pub const AT_L: Oid = Oid::new_unwrap("2.5.4.7");
pub const AT_CN: Oid = Oid::new_unwrap("2.5.4.3");
