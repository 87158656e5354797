//! # ca — the jpki certification authority
//!
//! The authority behind both JPKI hierarchies: it keeps the resident register, issues
//! signing and user-authentication certificates from holders' CSRs with the profiles of
//! [`policies`], revokes by the register's rules, and records everything in a durable store
//! and a hash-chained audit trail. The `jpki` command (the root package) drives it through
//! [`api::Request`], in-process or over a running server's admin socket.
//!
//! * [`authority`] — the operations, one module per flow (init, issue, revoke, events,
//!   query); every mutation is one unit of work, acknowledged once durable;
//! * [`storage`] — the storage authority: the domain-level boundary between the CA and its
//!   database, with the sled engine (the embedded default), an in-memory engine, and one
//!   conformance suite both pass;
//! * [`records`] — what the storage holds, as types; [`audit`] — the hash chain (pure);
//! * [`keys`] — CA keys (aws-lc-rs), encrypted PKCS#8 files; [`signers`] — the key files as
//!   signers; [`datadir`] — paths in a data directory; [`csr`] — PKCS#10 intake;
//! * [`api`] — one request type for every operation, and the admin-socket client;
//! * [`hsm`] — CA keys in a PKCS#11 token (`cryptoki`): generated inside, non-extractable;
//! * [`officers`] — officers, roles, who is acting, and the one place that authorises;
//! * [`ceremony`] — dual control: two distinct ca-officers approve a key ceremony;
//! * [`clock`] — the injectable clock.
//!
//! ## Dependencies
//! * `sled` 0.34 — the requested embedded store; used only inside [`storage::sled`], behind
//!   its own write-ahead journal (`crate-notes.md` §11).
//! * `aws-lc-rs` — every private-key operation: constant time and ~4× faster than `rsa`.
//! * `pkcs8` (with `encryption`) — encrypted key files that OpenSSL also reads.
//! * `x509-parser` (`verify-aws`) — CSR and certificate decoding and signature checks.
//! * `zeroize` — passphrases and key material are wiped from memory when dropped.
//! * `cryptoki` — PKCS#11 for keys in an HSM ([`hsm`]): the Parsec project's maintained
//!   binding, pre-generated bindings (no C toolchain); checked against SoftHSM2.

pub mod actor;
pub mod api;
pub mod audit;
pub mod authority;
pub mod ceremony;
pub mod checkpoint;
pub mod clock;
pub mod csr;
pub mod datadir;
pub mod edge_signer;
pub mod error;
pub mod hsm;
pub mod keys;
pub mod officers;
pub mod records;
pub mod signers;
pub mod storage;

pub use authority::Authority;
pub use error::{Error, Result};
