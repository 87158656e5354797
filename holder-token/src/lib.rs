//! # holder-token — the My Number card's stand-in
//!
//! A JPKI card carries two RSA-2048 key pairs that never leave it: the **signing** key
//! (署名用, behind a 6–16 character password, 5 tries) and the **user-authentication** key
//! (利用者証明用, behind a 4-digit PIN, 3 tries). This crate keeps the same two keys in a file,
//! each encrypted under its PIN, and gives them the card's operations and PIN rules
//! (`../shared/jpki-reference.md` §7):
//!
//! * [`Token::create`] — new keys; [`Token::csr`] — a PKCS#10 request for the CA;
//!   [`Token::import_cert`] — store the certificate the CA issued;
//! * [`Token::sign_cms`] — a CMS SignedData over a document (the e-Tax return), checked by the
//!   relying party and by `openssl cms -verify`; [`Token::login`] — a signed login challenge;
//! * [`Token::reset`] — the kiosk flow: a new PIN for one key after the *other* key's PIN is
//!   verified; [`Token::counter_reset`] — the municipal counter's reset, without either PIN,
//!   with the counter key the token was enrolled with ([`counter`]); [`Token::status`] —
//!   counters and certificates.
//!
//! [`prompt::pin`] asks for a PIN on the terminal. The `jpki token …` commands (their clap
//! arguments and printing) live in the `jpki` binary (`src/cli/token.rs`): this crate is a
//! library of types and functions only, with no command-line parser.
//!
//! ## PIN rules
//! A PIN of the wrong shape is refused before the file is touched: no try is spent. Otherwise
//! the counter is decremented **and written durably** (temporary file, fsync, rename, fsync of
//! the directory) **before** the PIN is checked, and restored to the maximum on success, so
//! killing the process mid-check cannot give a free try. The try that reaches 0 locks the key;
//! a locked key refuses every operation, even with the right PIN, until [`Token::reset`].
//! Each operation holds an exclusive `flock` on the token's directory for its
//! read-modify-write, so two processes cannot spend one try twice.
//!
//! ## File format (version 1)
//! JSON, mode 0600, binary fields in standard base64:
//! ```text
//! { "format": "jpki-holder-token", "version": 1,
//!   "body": {
//!     "signing": SLOT, "auth": SLOT },
//!   "checksum": hex SHA-256 of the compact JSON of "body" }
//! SLOT = { "public_key":  SubjectPublicKeyInfo DER,
//!          "private_key": SEALED(PKCS#8 DER) under the slot's data key,
//!          "certificate": certificate DER | null,
//!          "pin": { "kdf": { "algorithm": "argon2id", "version": 19,
//!                            "m_kib": 19456, "t": 2, "p": 1, "salt": 16 bytes },
//!                   "tries_left": 0..=max,
//!                   "own_key":   SEALED(this slot's data key) under KEK(this PIN),
//!                   "other_key": SEALED(other slot's data key) under KEK(this PIN) } }
//! SEALED = { "nonce": 12 bytes, "ciphertext": AES-256-GCM ciphertext || 16-byte tag }
//! ```
//! KEK(PIN) = argon2id(PIN, salt) (RFC 9106), 32 bytes; the signing password is upper-cased
//! first. Each slot's private key is sealed once under a random 32-byte data key; a PIN wraps
//! its own slot's data key and the other slot's. Changing a PIN re-wraps both under a new salt;
//! the private key ciphertexts never change. AES-GCM associated data binds every blob to its
//! role: `jpki-holder-token/1/private-key/<kind>/` ‖ SPKI for a private key,
//! `jpki-holder-token/1/data-key/<target>/by-<pin kind>` for a wrapped data key — so blobs
//! cannot be moved between slots or tokens without failing authentication, and a decrypted
//! key is also checked against the stored public key.
//!
//! Reading checks the format name, the version (another version is [`Error::Version`]), the
//! checksum, every length, the counters (≤ the maximum), the KDF parameters (bounded, so a
//! hostile file cannot demand gigabytes) and that an imported certificate matches its key. A
//! truncated or damaged file is [`Error::Corrupt`]; it is never repaired or reset.
//!
//! ## Threat model — read this before relying on the counters
//! A software token cannot do what the card's chip does. Specifically:
//! * **The counters are not authenticated.** They must be readable and writable before any PIN
//!   is known, so nothing secret can MAC them; the checksum catches accidents (a flipped byte,
//!   a truncated write), not an attacker. Anyone who can write the file can restore the
//!   counters, or roll the whole file back to an older copy. The counters stop online guessing
//!   through this tool, nothing more.
//! * **Anyone who can read the file can guess offline**, limited only by argon2id
//!   (19 MiB, t=2: tens of milliseconds per guess). Because a PIN can reset the other key
//!   (the rule of §7), the file is only as strong as the **weaker** PIN: the 4-digit
//!   authentication PIN (10 000 guesses) also protects the signing key. The protection of the
//!   keys at rest is therefore the file's permissions (0600, checked with a warning on open)
//!   and the disk's encryption — not the PINs.
//! * Decrypted keys live only in memory for one operation; the PKCS#8 bytes and all derived
//!   keys are zeroized on drop (`zeroize`); the RSA key itself is freed by aws-lc, which
//!   clears it. PINs and keys are never logged; logs name the key kind and counters only.
//!
//! ## Dependencies
//! * `aws-lc-rs` — RSA-2048 generation and PKCS#1 v1.5 signing, AES-256-GCM, SHA-256,
//!   randomness: the project's one crypto library (also rustls' provider).
//! * `argon2` (RustCrypto, with `zeroize`) — the memory-hard PIN KDF; aws-lc-rs has none.
//! * `cms` `=0.3.0-rc.0`, `x509-cert`, `der`, `spki` — the SignedData, PKCS#10 and certificate
//!   types on the der 0.8 stack the rest of jpki uses (`crate-notes.md` §4, §6). Only types:
//!   the signatures are made here with aws-lc-rs.
//! * `zeroize` — wiping PINs, data keys and PKCS#8 plaintext.
//! * `rustix` — `flock` on the token directory (std's `File::lock` needs Rust 1.89; the
//!   workspace supports 1.85).
//! * `rpassword` — PIN prompts without echo, read from the terminal.
//! * `serde`/`serde_json`/`base64` — the file format.

mod b64;
pub mod counter;
mod crypto;
mod file;
pub mod pin;
mod pkcs;
pub mod prompt;
mod token;

use std::path::PathBuf;

use policies::Hierarchy;

pub use file::{TokenKind, FORMAT, VERSION};
pub use pkcs::{csr_pem, CSR_SUBJECT};
pub use token::{KeyStatus, Status, Token};

/// Whether a CMS SignedData carries the signed content (RFC 5652 §5.2 eContent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encapsulation {
    /// The content travels separately (`openssl cms -verify -content FILE`).
    #[default]
    Detached,
    /// The content is inside the SignedData.
    Attached,
}

/// Everything that can go wrong with a token. Messages never contain a PIN or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a usable holder token: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: token format version {found} is not supported (this build reads version {VERSION})", path.display())]
    Version { path: PathBuf, found: u64 },
    #[error("the {} must be {}; refused without spending a try", pin::pin_name(*kind), pin::rule(*kind))]
    PinShape { kind: Hierarchy },
    #[error("wrong {}: {}", pin::pin_name(*kind), remaining_text(*remaining, *kind))]
    WrongPin { kind: Hierarchy, remaining: u8 },
    #[error("the {} key is locked; it refuses every operation until `jpki token reset --kind {}` with the other PIN", kind.as_str(), kind.as_str())]
    Locked { kind: Hierarchy },
    #[error("the certificate is for neither key in this token")]
    CertMismatch,
    #[error("no certificate has been imported for the {} key", kind.as_str())]
    NoCertificate { kind: Hierarchy },
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("ASN.1 encoding: {0}")]
    Der(#[from] der::Error),
    #[error("time: {0}")]
    Time(&'static str),
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
    #[error("reading the PIN from the terminal: {0}")]
    Prompt(std::io::Error),
    #[error("the two entries of the new PIN differ")]
    PinMismatch,
    #[error("counter key {}: {reason}", path.display())]
    CounterKey { path: PathBuf, reason: String },
    #[error("this token was not enrolled with a municipal counter key; a PIN reset at the counter is not possible (reset with the other PIN, or issue a new token)")]
    NoCounter,
    #[error("this token was enrolled with the counter key of {token}; the key given is {key}'s (or another key): refused")]
    CounterMismatch { token: String, key: String },
}

fn remaining_text(remaining: u8, kind: Hierarchy) -> String {
    match remaining {
        0 => format!(
            "no tries left, the {} key is now locked (reset it with the other PIN)",
            kind.as_str()
        ),
        1 => "1 try left".to_owned(),
        n => format!("{n} tries left"),
    }
}
