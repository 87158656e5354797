//! # signed-data — a JPKI holder's signature, checked
//!
//! What both the relying party and the platform operator need to accept something a holder
//! signed with the card's signing key:
//!
//! * [`cms`] — CMS SignedData (RFC 5652): attached/detached, DER/PEM/BER, one signer with
//!   signed attributes, the RSA PKCS#1 v1.5 SHA-256 signature;
//! * [`path`] — a strict RFC 5280 §6 validation for the one-tier hierarchy (root → holder);
//! * [`cert`] — loading certificates (PEM or DER) and the small helpers the checks share.
//!
//! ## Why a crate of its own
//! `relying-party` verifies signed documents and logins and needs all of this; the platform
//! (`platform`) checks the CMS consent a holder signs, and needs only this. Before, the
//! platform depended on the whole relying party (its HTTP client for OCSP and CRLs, the
//! OCSP types on the older `der` 0.7 stack, the report) for two functions. Here those two
//! functions and what they stand on form the lowest layer both build on: `relying-party`
//! re-exports [`cert`], [`cms`] and [`path`] under its own name (its API is unchanged) and
//! wraps [`Error`] in its own, and `platform` depends on this crate alone. Policy, kind and
//! status checks stay in `relying-party`: the platform reads the status from its own store.
//!
//! ## Tests
//! The tests run against two JPKI-shaped hierarchies made with the OpenSSL CLI
//! ([`testutil`], compiled for this crate's tests and, with the `testutil` feature, for the
//! tests of `relying-party`, which share the same fixtures).
//!
//! ## Dependencies
//! * `cms =0.3.0-rc.0` (types only; a release candidate, hence the exact pin) with `der`'s
//!   `ber` feature for `openssl cms -stream` output (crate-notes §6).
//! * `x509-parser` (`verify-aws`): certificate parsing and signature checks; not
//!   rustls-webpki, which refuses JPKI's critical certificatePolicies (crate-notes pitfall 6).
//! * `aws-lc-rs`: the RSA PKCS#1 v1.5 SHA-256 check and the SHA-256 digest.
//! * `time`, `hex`, `thiserror`; `tempfile` only for [`testutil`].

pub mod cert;
pub mod cms;
pub mod error;
pub mod path;

pub use error::Error;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
