//! # policies — the JPKI rules as data and pure functions
//!
//! This crate is the part of jpki that says *what* a certificate, a validity period or a
//! revocation must look like; it does no I/O. Everything else builds on it:
//!
//! * [`policy`] — the operator's policy file (TOML, an embedded default), validated at load;
//! * [`model`] — hierarchies, certificate kinds, revocation reasons, the four attributes;
//! * [`era`] — the era digit of the `EYYYYMMDD` date of birth;
//! * [`validity`] — notAfter: the 5th (6th) birthday rule, capped by the card and the
//!   authentication certificate;
//! * [`lifecycle`] — which resident-register event revokes which certificate, with which reason;
//! * [`profile`] — the to-be-signed certificates of both hierarchies (roots, signing,
//!   authentication and OCSP-signer certificates) as DER;
//! * [`lint`] — the pre-issuance check of a to-be-signed certificate against its profile and
//!   the RFC 5280 basics, run before the real signature;
//! * [`signer`] — the narrow signing trait the CA, the CRL publisher and the OCSP responder share;
//! * [`clock`] — the one injectable [`Clock`](clock::Clock) of every crate, with the system's,
//!   a fixed and a started clock.
//!
//! Facts and their sources are in `../shared/jpki-reference.md`; the section numbers below
//! (`reference §2`) point there.
//!
//! ## Dependencies
//! * `x509-cert`/`der`/`spki`/`const-oid` (RustCrypto formats): typed DER for every structure
//!   rcgen cannot express (repeated OU/L, otherName SANs, critical certificatePolicies,
//!   directoryName CRL distribution points) — see `crate-notes.md` §3.2.
//! * `x509-parser`: the lint parses the to-be-signed bytes with a second, independent decoder.
//!   Leaf certificates are streamed through `der`'s encoders (`profile::der_out`) rather than
//!   built as typed structures first: several times faster, and checked byte for byte against
//!   the typed builder in the tests.
//! * `encoding_rs`: the JIS X 0208 repertoire test behind the substitute-character flags, with
//!   `fast-kanji-encode` (the same mapping through a lookup table instead of a linear search).
//! * `sha1`: RFC 5280 §4.2.1.2 method (1) key identifiers.

pub mod clock;
pub mod era;
pub mod error;
pub mod lifecycle;
pub mod lint;
pub mod model;
pub mod oid;
pub mod policy;
pub mod profile;
pub mod signer;
pub mod validity;

pub use error::Error;
pub use model::{Attributes, Hierarchy, Reason, Sex};
pub use policy::Policy;
pub use signer::{SignError, Signer};
