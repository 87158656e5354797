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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::asn1::{BitString, UintRef};
use der::Encode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

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

// ----- the token recorded in a data directory ----------------------------------------------

/// The file of a data directory that says its CA keys live in a token (`jpki init
/// --pkcs11-module … --token … --pin-file …`); without it the keys are files.
pub const CONFIG_FILE: &str = "hsm.toml";

/// The environment variable whose value, when set, is the token's user PIN (it overrides the
/// recorded `pin_file`).
pub const PIN_ENV: &str = "JPKI_HSM_PIN";

/// Where a data directory's CA keys live: `DIR/hsm.toml` (mode 0600). The PIN itself is never
/// written there nor logged: it is read, when the token is opened, from `$JPKI_HSM_PIN` or else
/// from `pin_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// The PKCS#11 module (shared library) of the token's vendor.
    pub module: PathBuf,
    /// The token's label (`softhsm2-util --show-slots`, `pkcs11-tool -L`).
    pub token: String,
    /// A file holding the user PIN (one line).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
}

impl HsmConfig {
    /// The token recorded in data directory `dir`, if any.
    pub fn read(dir: &Path) -> Result<Option<HsmConfig>> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("read {}", path.display()))(e)),
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Hsm(format!("{}: {}", path.display(), e.message())))
    }

    /// Records the token in data directory `dir` (`hsm.toml`, created new, 0600, fsynced).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text =
            toml::to_string(self).map_err(|e| Error::Invalid(format!("{CONFIG_FILE}: {e}")))?;
        let text = format!(
            "# CA keys in a PKCS#11 token (docs/hsm.md). The PIN is read at open from \
             ${PIN_ENV} or pin_file.\n{text}"
        );
        crate::datadir::write_private(&dir.join(CONFIG_FILE), text.as_bytes())
    }

    /// The user PIN: `$JPKI_HSM_PIN`, else the first line of `pin_file`.
    pub fn pin(&self) -> Result<Zeroizing<String>> {
        if let Ok(pin) = std::env::var(PIN_ENV) {
            return Ok(Zeroizing::new(pin));
        }
        let Some(file) = &self.pin_file else {
            return Err(Error::HsmPin(format!(
                "no PIN for token `{}`: set {PIN_ENV} or record a pin_file in {CONFIG_FILE}",
                self.token
            )));
        };
        let text =
            Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                Error::HsmPin(format!("read the PIN file {}: {e}", file.display()))
            })?);
        let pin = text.lines().next().unwrap_or_default();
        if pin.is_empty() {
            return Err(Error::HsmPin(format!(
                "the PIN file {} is empty",
                file.display()
            )));
        }
        Ok(Zeroizing::new(pin.to_owned()))
    }

    /// Opens the token and logs in (see [`Token::open`]).
    pub fn open(&self) -> Result<Arc<Token>> {
        Token::open(&self.module, &self.token, &self.pin()?)
    }
}

/// An error of this module again (errors are not `Clone`; a refused PIN is remembered so that
/// it is never retried: the token counts failed logins and locks).
pub(crate) fn same_error(e: &Error) -> Error {
    match e {
        Error::HsmModule(m) => Error::HsmModule(m.clone()),
        Error::HsmPin(m) => Error::HsmPin(m.clone()),
        Error::HsmNoKey(m) => Error::HsmNoKey(m.clone()),
        other => Error::Hsm(other.to_string()),
    }
}

// ----- one context per module, one login per token, in a process ---------------------------

/// PKCS#11 allows one `C_Initialize` per module and process; contexts are kept for the
/// process's life (cryptoki does not finalize on drop, so nothing is lost by keeping them).
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

/// Tokens open in this process, with a digest of the PIN they were opened with: a login is
/// the token's, shared by every session of the process, so a second open with another PIN
/// would otherwise succeed without the token seeing the PIN.
#[allow(clippy::type_complexity)]
static OPEN: Mutex<Vec<(PathBuf, String, [u8; 32], Weak<Token>)>> = Mutex::new(Vec::new());

fn module(path: &Path) -> Result<Pkcs11> {
    let mut modules = MODULES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, ctx)) = modules.iter().find(|(p, _)| p == path) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        Error::HsmModule(format!(
            "{} does not load as a PKCS#11 module: {e}",
            path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::HsmModule(format!(
                "{}: C_Initialize: {e}",
                path.display()
            )))
        }
    }
    modules.push((path.to_owned(), ctx.clone()));
    Ok(ctx)
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
    /// ([`Error::HsmModule`], [`Error::Hsm`], [`Error::HsmPin`]). A token already open in this
    /// process is shared (when the PIN is the same one).
    pub fn open(module_path: &Path, label: &str, pin: &str) -> Result<Arc<Token>> {
        let digest: [u8; 32] = Sha256::digest(pin.as_bytes()).into();
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(_, _, _, t)| t.strong_count() > 0);
        if let Some((_, _, d, t)) = open
            .iter()
            .find(|(m, l, _, _)| m == module_path && l == label)
        {
            if let Some(t) = t.upgrade() {
                if *d != digest {
                    return Err(Error::HsmPin(format!(
                        "wrong PIN for token `{label}` (it is open in this process with another)"
                    )));
                }
                return Ok(t);
            }
        }
        let ctx = module(module_path)?;
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
                module_path.display()
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
        let token = Arc::new(Token {
            ctx,
            slot,
            label: label.to_owned(),
            idle: Mutex::new(vec![session]),
        });
        open.push((
            module_path.to_owned(),
            label.to_owned(),
            digest,
            Arc::downgrade(&token),
        ));
        Ok(token)
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
    /// object, private, sensitive and **not extractable**; it can only sign. Its `CKA_ID` (and
    /// the public key's) is the key identifier of its public key (SHA-1 of the
    /// subjectPublicKey, RFC 5280 §4.2.1.2), by which [`Token::key_for`] finds the key of a
    /// certificate. A label may be given to several keys (an OCSP signer and its replacement
    /// for a moment); [`Token::key`] refuses an ambiguous one.
    pub fn generate(self: &Arc<Self>, label: &str) -> Result<TokenKey> {
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
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let (public, key) = self.with_session(|s| {
            s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
                .map_err(p11("generate an RSA key pair in the token"))
        })?;
        let made = self.key_of(label, key)?;
        let id = key_id(made.spki())?;
        self.with_session(|s| {
            for object in [public, key] {
                s.update_attributes(object, &[Attribute::Id(id.clone())])
                    .map_err(p11("set the key's CKA_ID"))?;
            }
            Ok(())
        })?;
        Ok(made)
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

    /// Whether the token holds a private key labelled `label`.
    pub fn has(&self, label: &str) -> Result<bool> {
        Ok(!self.find_all(label)?.is_empty())
    }

    /// The private key of the public key `spki` (found by its `CKA_ID`, see
    /// [`Token::generate`], and checked to be that key); `what` names it in the error
    /// ([`Error::HsmNoKey`]) when the token does not hold it.
    pub fn key_for(self: &Arc<Self>, spki: &[u8], what: &str) -> Result<TokenKey> {
        let id = key_id(spki)?;
        let found = self.with_session(|s| {
            s.find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(id.clone()),
            ])
            .map_err(p11("find a key"))
        })?;
        let no_key = || {
            Error::HsmNoKey(format!(
                "token `{}` holds no private key for {what} (CKA_ID {})",
                self.label,
                hex::encode(&id)
            ))
        };
        let key = *found.first().ok_or_else(no_key)?;
        let label = self.with_session(|s| {
            s.get_attributes(key, &[AttributeType::Label])
                .map_err(p11("read the key's label"))
        })?;
        let label = label
            .into_iter()
            .find_map(|a| match a {
                Attribute::Label(l) => Some(String::from_utf8_lossy(&l).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        let k = self.key_of(&label, key)?;
        if k.spki() != spki {
            return Err(no_key());
        }
        Ok(k)
    }

    /// Destroys every key pair labelled `label` but the one of public key `keep` (`None`:
    /// every one): what remains of a replaced OCSP signer, or of an `init` that failed.
    /// Returns how many private keys were destroyed.
    pub fn destroy_others(&self, label: &str, keep: Option<&[u8]>) -> Result<usize> {
        let keep_id = keep.map(key_id).transpose()?;
        let mut gone = 0;
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            let objects = self.with_session(|s| {
                s.find_objects(&[
                    Attribute::Class(class),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .map_err(p11("find keys"))
            })?;
            for o in objects {
                let id = self.with_session(|s| {
                    s.get_attributes(o, &[AttributeType::Id])
                        .map_err(p11("read a key's CKA_ID"))
                })?;
                let id = id.into_iter().find_map(|a| match a {
                    Attribute::Id(v) => Some(v),
                    _ => None,
                });
                if keep_id.is_some() && id == keep_id {
                    continue;
                }
                self.with_session(|s| s.destroy_object(o).map_err(p11("destroy a key")))?;
                if class == ObjectClass::PRIVATE_KEY {
                    gone += 1;
                }
            }
        }
        Ok(gone)
    }

    fn find_all(&self, label: &str) -> Result<Vec<ObjectHandle>> {
        self.with_session(|s| {
            s.find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(p11("find a key"))
        })
    }

    fn find(&self, label: &str) -> Result<Option<ObjectHandle>> {
        let found = self.find_all(label)?;
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
                    AttributeType::Sensitive,
                ],
            )
            .map_err(p11("read the key's public half"))
        })?;
        let (mut n, mut e, mut extractable, mut sensitive) = (None, None, None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                Attribute::Extractable(b) => extractable = Some(b),
                Attribute::Sensitive(b) => sensitive = Some(b),
                _ => {}
            }
        }
        let (Some(n), Some(e)) = (n, e) else {
            return Err(Error::Hsm(format!(
                "the token does not show the public half of key `{label}`"
            )));
        };
        if extractable != Some(false) || sensitive != Some(true) {
            return Err(Error::Hsm(format!(
                "key `{label}` is extractable or not sensitive: a CA key must not leave the token"
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

/// The `CKA_ID` of a key: its key identifier (RFC 5280 §4.2.1.2 method 1).
fn key_id(spki: &[u8]) -> Result<Vec<u8>> {
    Ok(policies::profile::key_identifier(spki)?)
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

    /// The token the key is in.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
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
    use std::sync::OnceLock;

    /// Where Debian's `softhsm2` puts the module.
    pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

    pub struct SoftHsm {
        pub dir: tempfile::TempDir,
        pub module: PathBuf,
        pub label: String,
        pub pin: String,
    }

    /// A token in [`shared`]'s directory.
    pub struct SharedToken {
        /// The `SOFTHSM2_CONF` file.
        pub conf: PathBuf,
        pub module: PathBuf,
        pub label: String,
        pub pin: String,
    }

    fn missing() -> bool {
        if Path::new(MODULE).exists() {
            return false;
        }
        eprintln!(
            "\n*** SoftHSM2 is not installed ({MODULE} missing): PKCS#11 checks SKIPPED \
             (apt-get install softhsm2) ***\n"
        );
        true
    }

    fn configure(dir: &Path) -> Option<PathBuf> {
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).ok()?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .ok()?;
        Some(conf)
    }

    /// Makes token `label` (user PIN `pin`) in the SoftHSM2 configured by `conf`.
    pub fn init_token(conf: &Path, label: &str, pin: &str) -> Option<()> {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label, "--pin", pin])
            .args(["--so-pin", "so-pin-5678"])
            .env("SOFTHSM2_CONF", conf)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "\n*** softhsm2-util could not make a token ({}): PKCS#11 checks SKIPPED ***\n",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(())
    }

    /// A fresh token `label` with user PIN `pin` under a new temporary directory, and
    /// `SOFTHSM2_CONF` set for this process (call before any `Token::open`).
    pub fn token(label: &str, pin: &str) -> Option<SoftHsm> {
        if missing() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let conf = configure(dir.path())?;
        // Read by the module at C_Initialize; tests that use SoftHSM run in one process
        // each, or set the same value.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        init_token(&conf, label, pin)?;
        Some(SoftHsm {
            dir,
            module: PathBuf::from(MODULE),
            label: label.to_owned(),
            pin: pin.to_owned(),
        })
    }

    /// A fresh token `label` in one SoftHSM2 directory per process (made on first call, with
    /// `SOFTHSM2_CONF` set for the process and its children): for test binaries whose tests
    /// run in parallel threads, each with a token of its own.
    pub fn shared(label: &str, pin: &str) -> Option<SharedToken> {
        static DIR: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
        if missing() {
            return None;
        }
        let (_, conf) = DIR
            .get_or_init(|| {
                let dir = tempfile::tempdir().ok()?;
                let conf = configure(dir.path())?;
                std::env::set_var("SOFTHSM2_CONF", &conf);
                Some((dir, conf))
            })
            .as_ref()?;
        init_token(conf, label, pin)?;
        Some(SharedToken {
            conf: conf.clone(),
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
        assert!(token.has("signing-root").unwrap());
        // Found by its public key (CKA_ID), as a certificate's key is.
        assert_eq!(token.key_for(key.spki(), "x").unwrap().spki(), key.spki());
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
        // A second key under the same label (a replacement), then the first one retired.
        let second = token.generate("signing-root").unwrap();
        assert_eq!(token.key("signing-root").err().unwrap().code(), "hsm");
        assert_eq!(
            token
                .destroy_others("signing-root", Some(second.spki()))
                .unwrap(),
            1
        );
        assert_eq!(token.key("signing-root").unwrap().spki(), second.spki());
        let e = token.key_for(again.spki(), "the old root").err().unwrap();
        assert_eq!(e.code(), "hsm_no_key", "{e}");
        // Opened again in this process: shared with the same PIN, refused with another.
        assert!(Arc::ptr_eq(
            &Token::open(&hsm.module, &hsm.label, &hsm.pin).unwrap(),
            &token
        ));
        let e = Token::open(&hsm.module, &hsm.label, "0000").err().unwrap();
        assert_eq!(e.code(), "hsm_pin", "{e}");
    }
}
