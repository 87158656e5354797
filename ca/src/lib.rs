//! # ca — the jpki certification authority
//!
//! The authority behind both JPKI hierarchies: it keeps the resident register, issues
//! signing and user-authentication certificates from holders' CSRs with the profiles of
//! [`policies`], revokes by the register's rules, and records everything in a durable store
//! and a hash-chained audit trail. The `jpki` command ([`cli`]) drives it.
//!
//! * [`authority`] — the operations; every mutation is one transaction, acknowledged after flush;
//! * [`store`] — the project's store trait and its sled implementation (group commit);
//! * [`records`] — what the store holds; [`audit`] — the hash chain;
//! * [`keys`] — CA keys (aws-lc-rs), encrypted PKCS#8 files; [`csr`] — PKCS#10 intake;
//! * [`clock`] — the injectable clock; [`cli`] — the command line.
//!
//! ## Dependencies
//! * `sled` 0.34 — the requested embedded store; used only behind [`store::Store`], flushed
//!   before every acknowledgement (`crate-notes.md` §11).
//! * `aws-lc-rs` — every private-key operation: constant time and ~4× faster than `rsa`.
//! * `pkcs8` (with `encryption`) — encrypted key files that OpenSSL also reads.
//! * `x509-parser` (`verify-aws`) — CSR and certificate decoding and signature checks.
//! * `rcgen` — only the demo's and the benchmark's stand-in holders make CSRs with it.
//! * `zeroize` — passphrases and key material are wiped from memory when dropped.

pub mod api;
pub mod audit;
pub mod authority;
mod bench;
pub mod cli;
pub mod clock;
pub mod csr;
mod demo;
pub mod error;
pub mod keys;
pub mod records;
pub mod store;

pub use authority::Authority;
pub use error::{Error, Result};

/// A stand-in holder's CSR (RSA-2048 made by rcgen), for the demo and the benchmark until
/// the holder token is wired in.
pub(crate) fn demo_holder_csr() -> Result<Vec<u8>> {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .map_err(|e| Error::Invalid(format!("holder key: {e}")))?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .map_err(|e| Error::Invalid(format!("holder CSR: {e}")))?;
    Ok(csr.der().to_vec())
}
