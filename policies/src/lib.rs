//! # policies — the JPKI rules as data and pure functions
//!
//! This crate is the part of jpki that says *what* a certificate, a validity period or a
//! revocation must look like; it does no I/O. Everything else builds on it:
//!
//! * [`policy`] — the operator's policy file (TOML, an embedded default), validated at load;
//! * [`model`] — hierarchies, certificate kinds, revocation reasons, the four attributes;
//! * [`era`] — the era digit of the `EYYYYMMDD` date of birth;
//! * [`eligibility`] — who may have which certificate and when: the signing age, the card's
//!   life by age, the renewal window;
//! * [`validity`] — notAfter: the 5th (6th) birthday rule, capped by the card and the
//!   authentication certificate;
//! * [`lifecycle`] — which resident-register event revokes which certificate, with which reason;
//! * [`profile`] — the to-be-signed certificates of both hierarchies (roots, signing,
//!   authentication and OCSP-signer certificates) as DER;
//! * [`lint`] — the pre-issuance check of a to-be-signed certificate against its profile and
//!   the RFC 5280 basics, run before the real signature;
//! * [`partition`] — the identity of a municipal CRL partition ([`Municipality`]);
//! * [`signer`] — the narrow signing trait the CA, the CRL publisher and the OCSP responder share;
//! * [`clock`] — the one injectable [`Clock`](clock::Clock) of every crate, with the system's,
//!   a fixed and a started clock.
//!
//! Facts and their sources are in `../shared/jpki-reference.md`; the section numbers below
//! (`reference §2`) point there.
//!
//! ## The real profile is the default
//!
//! A real authentication certificate (reference §3, REAL-AUTH; a copy in
//! `tests/fixtures/real-jpki/`) settles the leaf profile, and `tests/real_certificate.rs`
//! holds jpki to it extension by extension: keyUsage, extendedKeyUsage clientAuth,
//! critical certificatePolicies with the CPS qualifier, issuerAltName, a directoryName-only CRL
//! distribution point, authorityInfoAccess (OCSP), the full authorityKeyIdentifier (key id,
//! root name, root serial) and the subjectKeyIdentifier **last**, a 23-character CN
//! ([`profile::leaf_cn`]), sequential serials per hierarchy. The signing leaf, never seen,
//! gets the same tail and nothing invented (no extendedKeyUsage, no OCSP URL). What jpki adds
//! for open deployments is a policy option, off by default: the CRL's URL in distribution
//! points (`crl.uri`), an OCSP URL in signing certificates (`signing.ocsp_url`).
//!
//! ## Dependencies
//! * `x509-cert`/`der`/`spki`/`const-oid` (RustCrypto formats): typed DER for every structure
//!   rcgen cannot express (repeated OU/L, otherName SANs, critical certificatePolicies,
//!   directoryName CRL distribution points) — see `crate-notes.md` §3.2.
//! * `x509-parser`: the lint parses the to-be-signed bytes with a second, independent decoder.
//!   Leaf certificates are streamed through `der`'s encoders (`profile::der_out`) rather than
//!   built as typed structures first: several times faster, and checked byte for byte against
//!   the typed builder in the tests.
//! * `encoding_rs`: the card repertoire behind the substitute-character flags — JIS X 0208
//!   through its Shift_JIS encoder (with `fast-kanji-encode`, a lookup table instead of a
//!   linear search), JIS X 0212 through its EUC-JP decoder, which reads the three-byte
//!   `8F xx xx` sequences: the set is decoded once on first use rather than copied into the
//!   source (`model::CardText`).
//! * `percent-encoding`: a municipal partition's path segments in URLs and file names
//!   (already in the build through hyper's URL handling).
//! * `sha1`: RFC 5280 §4.2.1.2 method (1) key identifiers.

pub mod clock;
pub mod eligibility;
pub mod era;
pub mod error;
pub mod lifecycle;
pub mod lint;
pub mod model;
pub mod oid;
pub mod partition;
pub mod policy;
pub mod profile;
pub mod signer;
pub mod validity;

pub use error::Error;
pub use model::{Attributes, Hierarchy, Reason, Sex};
pub use partition::Municipality;
pub use policy::Policy;
pub use signer::{SignError, Signer};
