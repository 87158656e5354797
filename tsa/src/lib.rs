//! # tsa — RFC 3161 time-stamping for jpki
//!
//! * [`server`] — the time-stamping authority: its dedicated hierarchy (TSA root → TSA unit,
//!   keys encrypted at rest under the authority's passphrase), and the answer to a
//!   TimeStampReq, served by `jpki serve --tsa ADDR` (`docs/tsa.md`);
//! * [`token`] — the requester's and relying party's side: a request for a SHA-256 imprint,
//!   the answer checked against it (status, imprint, nonce), and a token verified against the
//!   trusted TSA roots;
//! * [`asn1`] — the RFC 3161 structures (why not `x509-tsp`'s: see there).
//!
//! `jpki token sign --timestamp URL` puts a token over the holder's signature value into the
//! CMS as the id-aa-signatureTimeStampToken unsigned attribute (CAdES-T;
//! [`signed_data::cms::add_signature_timestamp`]); `jpki verify --at timestamp` judges the
//! signer's certificate as of its genTime.
//!
//! ## Dependencies
//! * `cms =0.3.0-rc.0`, `der`, `x509-cert`, `const-oid`: the types, on the same `der` 0.8
//!   stack as the holder's SignedData; `signed-data` parses and checks the token's CMS.
//! * `ca`: the data directory, key files, clock, random serials and the audit chain.
//! * `x509-parser`: the TSA certificate's extensions and signature check.

pub mod asn1;
pub mod error;
pub mod oid;
#[cfg(feature = "server")]
pub mod server;
pub mod token;

pub use error::{Error, Result};
