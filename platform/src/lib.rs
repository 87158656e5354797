//! # platform — platform operators (PF) and their service providers (SP)
//!
//! In JPKI a private business never connects to the CA; a certified platform operator does
//! it for the service providers delegated to it (reference §5). This crate is the CA's side
//! of that arrangement:
//!
//! * [`operator_ca`] — a separate root that issues PFs their TLS client certificates and
//!   the API listener its server certificate;
//! * [`registry`] — PFs (state, scopes, client keys), SPs (one PF each, scopes), the holders'
//!   signed consents and the per-holder access log, in the store tables `ca` reserves;
//! * [`http`] — the mutual-TLS JSON API (`API.md`): validity checks, consent registration and
//!   withdrawal, the latest four attributes, successor lookup; CRL and OCSP through the same
//!   listener; every call recorded ([`access`]) before it is answered;
//! * [`api`] / [`cli`] — administrative requests and the `jpki operator`, `jpki sp`,
//!   `jpki resident access-log` subcommands the `jpki` binary embeds.
//!
//! It builds only on `ca`'s public API (`Authority`, the store and its audit chain) and on
//! `relying-party` for CMS and RFC 5280 path checks of the holder's consent signature.
//!
//! ## Dependencies
//! * `rustls` 0.23 + `tokio-rustls`, aws-lc-rs provider — the TLS stack hyper serves on;
//!   `WebPkiClientVerifier` enforces the client certificate chain (`crate-notes.md` §12).
//!   The provider is passed explicitly, so no process-wide default needs installing.
//! * `hyper` 1 + `hyper-util` (`auto` HTTP/1.1 + HTTP/2, graceful shutdown) + `http-body-util`
//!   (`Limited` caps request bodies).
//! * `x509-cert`/`der`/`spki`/`const-oid` + `flagset` — certificates are assembled from
//!   RustCrypto types like `policies::profile` does (rcgen cannot be told the exact
//!   extensions); `x509-parser` reads client and holder certificates.
//! * `aws-lc-rs` — PF and server key generation; `relying-party` — CMS SignedData
//!   verification and one-tier path validation of the consent signer.

pub mod access;
pub mod api;
pub mod cli;
pub mod client;
pub mod error;
pub mod http;
pub mod operator_ca;
pub mod registry;
mod service;

pub use api::{handle, Request};
pub use error::{Error, Result};
pub use http::{server_identity, Api, Fallback};
