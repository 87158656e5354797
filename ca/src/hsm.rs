//! CA keys in a hardware security module, through PKCS#11 (`cryptoki`): a token opened with
//! its module, label and user PIN ([`Token::open`]); RSA-2048 keys generated **inside** the
//! token as non-extractable, sensitive private keys ([`Token::generate`]); an existing key
//! found by its label ([`Token::key`]); signatures made by the token with
//! `CKM_SHA256_RSA_PKCS` (PKCS#11 v2.40 §2.1.10 — the token hashes and builds the DigestInfo,
//! so the result is the sha256WithRSAEncryption signature X.509 wants).
//!
//! A [`TokenKey`] is what [`crate::keys::CaSigner`] signs with when the key lives in a token;
//! the file keys stay the default.
//!
//! Why `cryptoki`: the Parsec project's maintained PKCS#11 binding (pre-generated bindings,
//! no C toolchain), used by the survey in `crate-notes.md` §10 against SoftHSM2.
//! Pitfalls from there: a `Session` is `Send` but not `Sync`, so sessions are pooled behind a
//! mutex (one per signing thread; the login is the token's, shared by every session of this
//! process); `get_attributes` on a sensitive attribute returns nothing rather than an error,
//! so what comes back is checked.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::asn1::{BitString, UintRef};
use der::Encode;

use crate::error::{Error, Result};

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 §A.1.1).
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// rsaEncryption (RFC 8017 §A.1).
const RSA_ENCRYPTION: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

fn p11(what: &str) -> impl Fn(P11Error) -> Error + '_ {
    move |e| Error::Hsm(format!("{what}: {e}"))
}

/// An opened, logged-in token.
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    /// Sessions not in use (each logged in through the token's login).
    idle: Mutex<Vec<Session>>,
}

impl Token {
    /// Loads the PKCS#11 `module`, finds the token labelled `label` and logs in with `pin`.
    /// A module that does not load, a missing token and a wrong PIN are each their own error
    /// ([`Error::HsmModule`], [`Error::Hsm`], [`Error::HsmPin`]).
    pub fn open(module: &Path, label: &str, pin: &str) -> Result<Arc<Token>> {
        let ctx = Pkcs11::new(module).map_err(|e| {
            Error::HsmModule(format!(
                "{} does not load as a PKCS#11 module: {e}",
                module.display()
            ))
        })?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| Error::HsmModule(format!("{}: C_Initialize: {e}", module.display())))?;
        let mut found = None;
        for slot in ctx.get_slots_with_token().map_err(p11("list slots"))? {
            let info = ctx.get_token_info(slot).map_err(p11("token info"))?;
            if info.label().trim_end() == label {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| {
            Error::Hsm(format!(
                "no token labelled `{label}` in {}",
                module.display()
            ))
        })?;
        let session = ctx.open_rw_session(slot).map_err(p11("open a session"))?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(P11Error::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid, _)) => {
                return Err(Error::HsmPin(format!(
                    "wrong PIN for token `{label}` (the token counts failed logins)"
                )))
            }
            Err(P11Error::Pkcs11(RvError::PinLocked, _)) => {
                return Err(Error::HsmPin(format!(
                    "the PIN of token `{label}` is locked"
                )))
            }
            Err(e) => return Err(Error::Hsm(format!("log in to token `{label}`: {e}"))),
        }
        Ok(Arc::new(Token {
            ctx,
            slot,
            label: label.to_owned(),
            idle: Mutex::new(vec![session]),
        }))
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Runs `f` on a session of the pool (opening one if all are busy).
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let session = match taken {
            Some(s) => s,
            None => self
                .ctx
                .open_rw_session(self.slot)
                .map_err(p11("open a session"))?,
        };
        let out = f(&session);
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(session);
        out
    }

    /// Generates an RSA-2048 key pair in the token under `label`: the private key is a token
    /// object, private, sensitive and **not extractable**; it can only sign. Refuses a label
    /// already in use.
    pub fn generate(self: &Arc<Self>, label: &str) -> Result<TokenKey> {
        if self.find(label)?.is_some() {
            return Err(Error::Hsm(format!(
                "token `{}` already holds a key labelled `{label}`",
                self.label
            )));
        }
        let public = [
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let (_, key) = self.with_session(|s| {
            s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
                .map_err(p11("generate an RSA key pair in the token"))
        })?;
        self.key_of(label, key)
    }

    /// The key labelled `label` ([`Error::HsmNoKey`] if the token has none).
    pub fn key(self: &Arc<Self>, label: &str) -> Result<TokenKey> {
        let key = self.find(label)?.ok_or_else(|| {
            Error::HsmNoKey(format!(
                "token `{}` holds no private key labelled `{label}`",
                self.label
            ))
        })?;
        self.key_of(label, key)
    }

    fn find(&self, label: &str) -> Result<Option<ObjectHandle>> {
        let found = self.with_session(|s| {
            s.find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(p11("find a key"))
        })?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(Error::Hsm(format!(
                "token `{}` holds {} private keys labelled `{label}`",
                self.label,
                found.len()
            ))),
        }
    }

    fn key_of(self: &Arc<Self>, label: &str, key: ObjectHandle) -> Result<TokenKey> {
        let attrs = self.with_session(|s| {
            s.get_attributes(
                key,
                &[
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                    AttributeType::Extractable,
                ],
            )
            .map_err(p11("read the key's public half"))
        })?;
        let (mut n, mut e, mut extractable) = (None, None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                Attribute::Extractable(b) => extractable = Some(b),
                _ => {}
            }
        }
        let (Some(n), Some(e)) = (n, e) else {
            return Err(Error::Hsm(format!(
                "the token does not show the public half of key `{label}`"
            )));
        };
        if extractable != Some(false) {
            return Err(Error::Hsm(format!(
                "key `{label}` is extractable: a CA key must not leave the token"
            )));
        }
        Ok(TokenKey {
            token: Arc::clone(self),
            key,
            label: label.to_owned(),
            spki: spki_of(&n, &e)?,
        })
    }
}

/// The SubjectPublicKeyInfo (DER) of an RSA public key.
fn spki_of(n: &[u8], e: &[u8]) -> Result<Vec<u8>> {
    let bad = |what: &str| Error::Hsm(format!("the token's public key: {what}"));
    let rsa = RsaPublicKey {
        modulus: UintRef::new(n).map_err(|_| bad("modulus"))?,
        public_exponent: UintRef::new(e).map_err(|_| bad("exponent"))?,
    }
    .to_der()
    .map_err(|_| bad("encoding"))?;
    spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: BitString::from_bytes(&rsa).map_err(|_| bad("bit string"))?,
    }
    .to_der()
    .map_err(|_| bad("SubjectPublicKeyInfo"))
}

/// A private key inside a token.
pub struct TokenKey {
    token: Arc<Token>,
    key: ObjectHandle,
    label: String,
    spki: Vec<u8>,
}

impl TokenKey {
    /// The key's SubjectPublicKeyInfo (DER).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// sha256WithRSAEncryption over `message`, made by the token.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.token.with_session(|s| {
            s.sign(&Mechanism::Sha256RsaPkcs, self.key, message)
                .map_err(|e| Error::Hsm(format!("sign with `{}`: {e}", self.label)))
        })
    }
}

/// SoftHSM2 for tests and benchmarks: a token in a temporary directory, made with
/// `softhsm2-util` (`SOFTHSM2_CONF` pointing at it). `None` (and a loud line on stderr) where
/// SoftHSM2 is not installed.
#[doc(hidden)]
pub mod softhsm {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Where Debian's `softhsm2` puts the module.
    pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

    pub struct SoftHsm {
        pub dir: tempfile::TempDir,
        pub module: PathBuf,
        pub label: String,
        pub pin: String,
    }

    /// A fresh token `label` with user PIN `pin` under a new temporary directory, and
    /// `SOFTHSM2_CONF` set for this process (call before any `Token::open`).
    pub fn token(label: &str, pin: &str) -> Option<SoftHsm> {
        if !Path::new(MODULE).exists() {
            eprintln!(
                "\n*** SoftHSM2 is not installed ({MODULE} missing): PKCS#11 checks SKIPPED \
                 (apt-get install softhsm2) ***\n"
            );
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).ok()?;
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .ok()?;
        // Read by the module at C_Initialize; tests that use SoftHSM run in one process
        // each, or set the same value.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label, "--pin", pin])
            .args(["--so-pin", "so-pin-5678"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "\n*** softhsm2-util could not make a token ({}): PKCS#11 checks SKIPPED ***\n",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(SoftHsm {
            dir,
            module: PathBuf::from(MODULE),
            label: label.to_owned(),
            pin: pin.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use x509_parser::prelude::FromDer;

    /// One test for the whole token (SoftHSM2 reads its configuration once per process).
    #[test]
    fn keys_are_made_in_the_token_sign_there_and_bad_input_is_named() {
        let Some(hsm) = softhsm::token("jpki-test", "1234") else {
            return;
        };
        // A wrong PIN, a module that is no module, a token that is not there.
        let e = Token::open(&hsm.module, &hsm.label, "9999").err().unwrap();
        assert_eq!(e.code(), "hsm_pin", "{e}");
        let not_a_module = hsm.dir.path().join("softhsm2.conf");
        let e = Token::open(&not_a_module, &hsm.label, "1234")
            .err()
            .unwrap();
        assert_eq!(e.code(), "hsm_module", "{e}");
        let e = Token::open(Path::new("/nonexistent/lib.so"), "x", "1")
            .err()
            .unwrap();
        assert_eq!(e.code(), "hsm_module", "{e}");
        let e = Token::open(&hsm.module, "no-such-token", "1234")
            .err()
            .unwrap();
        assert!(e.to_string().contains("no token labelled"), "{e}");

        let token = Token::open(&hsm.module, &hsm.label, &hsm.pin).unwrap();
        let e = token.key("signing-root").err().unwrap();
        assert_eq!(e.code(), "hsm_no_key", "{e}");
        let key = token.generate("signing-root").unwrap();
        assert!(token.generate("signing-root").is_err(), "label reused");
        // The signature verifies under the SPKI the token reports (aws-lc-rs as the judge).
        let sig = key.sign(b"tbs").unwrap();
        let spki_der = key.spki().to_vec();
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki_der).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki.subject_public_key.data)
            .verify(b"tbs", &sig)
            .unwrap();
        // Found again by label, same key; concurrent signers share the pool.
        let again = token.key("signing-root").unwrap();
        assert_eq!(again.spki(), key.spki());
        let key = Arc::new(key);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let k = Arc::clone(&key);
                std::thread::spawn(move || k.sign(format!("m{i}").as_bytes()).unwrap())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().len(), 256);
        }
        // As the CA's signer: the same trait the issuer, CRL publisher and OCSP responder use.
        let signer = crate::keys::CaSigner::in_token(token.key("signing-root").unwrap(), vec![]);
        assert_eq!(signer.spki().unwrap(), again.spki());
        let sig = policies::Signer::sign(&signer, b"a CRL").unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki.subject_public_key.data)
            .verify(b"a CRL", &sig)
            .unwrap();
    }
}
