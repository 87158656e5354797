//! # relying-party — verifying what a JPKI holder signed
//!
//! The relying party's side of jpki (issue #6): an e-filing service receiving a signed
//! document, a portal logging a holder in. Given the hierarchy's root as the trust anchor it
//! answers "was this signed by a valid JPKI signing (or authentication) certificate, and
//! whose?", with every check named in a [`Report`]:
//!
//! * [`cms`] — CMS SignedData (RFC 5652): attached/detached, DER/PEM/BER, signed attributes;
//! * [`path`] — a strict RFC 5280 §6 validation for the one-tier hierarchy;
//!   both (with [`cert`]) are the `signed-data` crate's, re-exported here: the platform checks
//!   a holder's signed consent with them without depending on the relying party;
//! * [`kind`] — signing vs authentication certificate (policy OID, keyUsage), and the four
//!   holder attributes from the subjectAltName otherNames;
//! * [`crl`] / [`ocsp`] — status from a partition CRL or an OCSP responder, hard-fail unless
//!   soft-fail is asked for;
//! * [`verify`] — the [`Verifier`] that runs the checks; [`files`] — the same from files and
//!   a status source named by path or URL ([`verify_document`], [`verify_login`]), which the
//!   `jpki verify` and `jpki verify-login` commands of the root `jpki` binary call (the clap
//!   arguments and printing are the binary's; this crate has no command-line parser).
//!
//! ## Decisions
//! * **Time.** Validity is judged at `--at`, else the signingTime attribute, else now.
//!   signingTime is the signer's claim, not a trusted timestamp, so revocation is judged at
//!   *now*: a revoked or held certificate fails whatever its revocation date, and CRL/OCSP
//!   freshness is measured against the wall clock. The clock is passed in (`now`); this
//!   crate never reads it.
//! * **Hard fail.** Status that cannot be learned (no answer, stale, bad signature, wrong
//!   nonce or CertID, unknown) fails the `status` check unless soft-fail is asked for; a
//!   known revocation or hold fails always.
//! * **Strictness.** One signer, SHA-256, RSA PKCS#1 v1.5 (rsaEncryption or
//!   sha256WithRSAEncryption), signed attributes required; only sha256WithRSAEncryption on
//!   certificates, CRLs and OCSP responses; no delta or indirect CRLs.
//!
//! ## Dependencies, and why
//! * `signed-data`: CMS SignedData, the one-tier path validation and certificate loading.
//! * `x509-parser` (`verify-aws`): certificate and CRL parsing and signature checks; not
//!   rustls-webpki, which refuses JPKI's critical certificatePolicies (crate-notes pitfall 6).
//! * `aws-lc-rs`: the RSA PKCS#1 v1.5 SHA-256 checks, SHA-256/SHA-1 digests, the nonce RNG.
//! * `x509-ocsp` 0.2 with its own `der` 0.7 / `x509-cert` 0.2 / `spki` 0.7 (renamed
//!   `der07`, `x509-cert-02`, `spki07`): RFC 6960 types; the `ocsp` crate panics on
//!   some inputs (crate-notes §5). Only bytes cross between the two RustCrypto stacks.
//! * `hyper` + `hyper-util` (legacy client) + `tokio`: the OCSP POST and CRL GET.
//! * `policies`: the era of the date of birth, reason names, the operator's policy OIDs.

pub mod crl;
pub mod error;
pub mod evidence;
pub mod files;
pub mod http;
pub mod kind;
pub mod ocsp;
pub mod report;
pub mod verify;

pub use error::Error;
pub use files::{verify_document, verify_login, DocumentFiles, LoginFiles, StatusOptions};
pub use report::{Check, Outcome, Report, Verdict};
pub use signed_data::{cert, cms, path};
pub use verify::{
    Content, Judgement, RevocationInfo, RevocationKind, StatusSource, Verifier, When,
};

/// The transport used for OCSP and CRL downloads: `(url, Some((content_type, body)))` POSTs,
/// `(url, None)` GETs; returns the body of a 200 answer.
pub type Fetch =
    std::sync::Arc<dyn Fn(&str, Option<(&str, &[u8])>) -> Result<Vec<u8>, Error> + Send + Sync>;

#[cfg(test)]
pub(crate) use signed_data::testutil;
