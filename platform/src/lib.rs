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
//!   withdrawal and listing, the latest four attributes, successor lookup, the change feed;
//!   the routes are documented in `openapi.json` (OpenAPI 3.1); CRL and OCSP through the same
//!   listener; every call recorded ([`access`]) before it is answered;
//! * [`usage`] — the usage counters every answered call adds to, and the tariff a month's
//!   counts are priced under (`jpki report usage`);
//! * [`api`] — administrative requests (what `jpki operator`, `jpki sp` and
//!   `jpki resident access-log` send; those commands' arguments and printing are the `jpki`
//!   binary's, in `src/cli/platform.rs`: this crate has no command-line parser).
//!
//! It builds only on `ca`'s public API (`Authority`, the store and its audit chain) and on
//! `signed-data` for CMS and RFC 5280 path checks of the holder's consent signature (not on
//! `relying-party`, which needs OCSP and CRL clients the platform does not).
//!
//! ## Wiring (the `jpki` binary)
//!
//! * `jpki init`: after `Authority::init`, [`operator_ca::create`]`(&authority)` (data
//!   directories made without it get it lazily from [`operator_ca::ensure`]).
//! * `jpki root --hierarchy operator`: [`operator_ca::root`] (DER), or
//!   [`handle`]`(&a, Request::OperatorRoot)` → `{"pem"}`.
//! * `jpki operator …` / `jpki sp …` / `jpki resident access-log`: build a [`Request`]
//!   (reading `--csr` / `--cert` client-side), run it with [`handle`] (store opened
//!   in-process) or [`api::call_remote`] (a server holds the store), and print the answer
//!   (writing `--cert-out` / `--key-out` client-side).
//! * Admin socket of `jpki serve`: a line that is not a `ca::api::Request` goes to
//!   [`api::handle_line`].
//! * `jpki serve --pf-https ADDR`: [`server_identity`]`(&a, &[host])` → `(chain, key)`;
//!   [`Api::new`]`(authority, chain, key, Some(fallback))` with a [`Fallback`] serving `/crl/…`
//!   and `/ocsp`; then `Arc::new(api).serve(listener, shutdown)`.
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
//! * `rcgen` — the operator CA's CRL (`operator_crl`): its CRL writer takes any signing key,
//!   so the CA's own signer signs it; the certificates themselves are assembled from
//!   RustCrypto types (above).
//! * `aws-lc-rs` — PF and server key generation; `signed-data` — CMS SignedData
//!   verification and one-tier path validation of the consent signer.

pub mod access;
pub mod api;
pub mod audit_checkpoint;
pub mod client;
pub mod error;
pub mod http;
pub mod operator_ca;
pub mod operator_crl;
pub mod registry;
mod service;
#[doc(hidden)]
pub use service::fuzz_decode;
pub mod usage;

pub use api::{handle, Request};
pub use error::{Error, Result};
pub use http::{server_identity, Api, Fallback, Identity};
