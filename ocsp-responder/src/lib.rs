//! # ocsp-responder — OCSP for both jpki hierarchies
//!
//! An RFC 6960 responder with the RFC 5019 HTTP profile, serving the signing and the
//! authentication hierarchy from one endpoint (the issuer is found from each CertID). The CA
//! (`ca`, `jpki serve`) builds a [`Responder`] from each root certificate and its delegated
//! OCSP signer ([`Issuer`]), hands it a [`StatusSource`] over its store, mounts
//! [`Responder::handle`] (or runs [`Responder::serve`]) and calls [`Responder::refresh`] before a
//! revoke or hold returns, so the very next query sees it. When the CA renews a delegated
//! signer it calls [`Responder::replace_signer`]: one swap, no restart, no gap in answers. This
//! crate knows nothing of the store.
//!
//! * [`request`] — request parsing and the malformed-request rules;
//! * [`responder`] — issuer matching, signing, the pre-signed cache and its re-signer;
//! * [`http`] — POST/GET, RFC 5019 headers, limits and timeouts, `/healthz`, `/metrics`;
//! * [`tls`] — mutual TLS admitting only operator certificates the CA still accepts;
//! * [`source`] — the status trait, an in-memory source and the clock;
//! * [`stored`] — the durable store of pre-signed answers (every certificate's answer signed
//!   ahead of the question, kept across restarts; the in-memory cache is a bounded front);
//! * [`metrics`] — Prometheus counters.
//!
//! ## Dependencies
//! * `x509-ocsp` 0.2 (RustCrypto) for the RFC 6960 types, with the `der` 0.7 / `x509-cert` 0.2
//!   / `spki` 0.7 stack it is built on (renamed `der07`, `x509-cert-02`, `spki07` here; the rest
//!   of jpki uses der 0.8). Responses are signed by hand through [`policies::Signer`], so the
//!   old stack never leaks out of this crate. Not the `ocsp` 0.4 crate, which panics on valid
//!   requests carrying some extensions and cannot include the signer certificate
//!   (crate-notes §5).
//! * `aws-lc-rs` for the CertID hashes (SHA-1/256/384/512) and ETags; rustls uses it too.
//! * `hyper` 1 + `hyper-util` (server loop, HTTP/1.1 + HTTP/2, graceful shutdown) on `tokio`;
//!   `tokio-rustls`/`rustls` for TLS; `bytes` to share one pre-signed answer between responses
//!   without copying; `base64` for GET.
//! * `crc32fast` for the page checksums of the pre-signed answers' file, a purpose-built
//!   hash file of 4 KiB pages read with one `pread` per answer ([`stored`]): chosen over redb
//!   and sled (used here before) by measurement, [`stored`] and BENCHMARKS.md; `libc` for
//!   that file's `O_NOATIME` (one `pread` per answer served must not consult the access time).

pub mod certid;
pub mod error;
pub mod http;
pub mod metrics;
mod presign;
pub mod request;
pub mod responder;
pub mod source;
pub mod stored;
pub mod tls;

pub use error::Error;
pub use metrics::{Cause, ResponseStatus};
/// The clock is jpki's one clock (`policies::clock`), re-exported for the responder's callers.
pub use policies::clock::{Clock, FixedClock, SystemClock};
pub use responder::{Answer, HashAlg, Issuer, PresignReport, Responder, Settings, Times};
pub use source::{Issued, MemorySource, SourceError, Status, StatusChange, StatusSource};
