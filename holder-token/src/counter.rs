//! The municipal counter's reset key: how a clerk resets a holder's PIN at the counter,
//! after checking the holder's identity, without the other PIN (both may be locked).
//!
//! The real card's PIN is reset by the municipality's terminal, which the card trusts; this
//! file token has no chip, so the trust is made with a key:
//!
//! * Each municipality's counter has an RSA-2048 **counter key** ([`CounterKey::create`]):
//!   the private key is sealed (AES-256-GCM) under a key derived from the counter's passphrase
//!   with argon2id, in a file of its own (0600) that stays at the counter; the public half is
//!   written beside it (`FILE.pub`) for the card issuing desk.
//! * When a token is made for a holder of that municipality (`jpki token new --counter
//!   FILE.pub`), both of its data keys are encrypted to the counter's public key with
//!   RSA-OAEP (SHA-256, RFC 8017 §7.1), the label naming the format and the municipality; the
//!   token keeps that blob, the municipality and the counter key's SHA-256 (its [`key_id`]).
//! * At the counter ([`crate::Token::counter_reset`]) the clerk's counter key decrypts the data
//!   keys and the chosen key gets a new PIN and a full counter; the other PIN is not needed and
//!   not changed. Another municipality's counter key (another key id, another label) cannot.
//!
//! What the counter key does not do: decide who may use it. That is the CA's register: `jpki
//! resident pin-reset` first checks the resident, the municipality and the token's
//! certificate against the register, as the acting officer (a municipal clerk of that
//! municipality), and records the reset in the audit trail; only then is the token changed.
//!
//! The threat model of the crate applies: whoever holds a counter key *and* its passphrase can
//! reset the PINs of every token enrolled with it, which is what the counter is for.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA256_MGF1SHA256,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, Kdf, Sealed, SecretKey, KEY_LEN};
use crate::file::{FORMAT, VERSION};
use crate::Error;

/// The `format` of a counter key file and of its public half.
pub const KEY_FORMAT: &str = "jpki-counter-key";
pub const PUBLIC_FORMAT: &str = "jpki-counter-key-public";

/// A counter key file (private half sealed under the passphrase).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    version: u32,
    municipality: String,
    #[serde(with = "crate::b64::plain")]
    public_key: Vec<u8>,
    kdf: Kdf,
    /// PKCS#8 DER of the RSA key, sealed under argon2id(passphrase).
    private_key: Sealed,
}

/// The public half: what a token is enrolled with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterPublic {
    pub format: String,
    pub municipality: String,
    #[serde(with = "crate::b64::plain")]
    pub public_key: Vec<u8>,
}

/// A counter key, unsealed (the private key is zeroized on drop).
pub struct CounterKey {
    pub municipality: String,
    public_key: Vec<u8>,
    pkcs8: Zeroizing<Vec<u8>>,
}

/// Hex SHA-256 of a counter key's SubjectPublicKeyInfo.
pub fn key_id(spki: &[u8]) -> String {
    crypto::sha256(spki)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The OAEP label binding a token's counter blob to the format and the municipality.
fn label(municipality: &str) -> Vec<u8> {
    format!("{FORMAT}/{VERSION}/counter-reset/{municipality}").into_bytes()
}

/// The associated data of the sealed counter private key.
fn key_aad(municipality: &str) -> Vec<u8> {
    format!("{KEY_FORMAT}/{VERSION}/private-key/{municipality}").into_bytes()
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::CounterKey {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io)
}

/// Where the public half of the key file `path` is written: `path` + `.pub`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

impl CounterKey {
    /// Makes a new counter key for `municipality`, sealed under `passphrase` (at least 8
    /// bytes), in `path` (must not exist), and its public half in `path.pub`.
    pub fn create(
        path: &Path,
        municipality: &str,
        passphrase: &[u8],
    ) -> Result<CounterPublic, Error> {
        if municipality.trim().is_empty() || municipality.chars().any(char::is_control) {
            return Err(bad(path, "give the municipality's name, e.g. Chiyoda-ku"));
        }
        if passphrase.len() < 8 {
            return Err(bad(
                path,
                "the counter key's passphrase must have at least 8 characters",
            ));
        }
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| Error::Crypto("RSA key generation failed"))?;
        let pkcs8 = Zeroizing::new(
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key)
                .map_err(|_| Error::Crypto("PKCS#8 encoding failed"))?
                .as_ref()
                .to_vec(),
        );
        let public_key = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(&key.public_key())
            .map_err(|_| Error::Crypto("public key encoding failed"))?
            .as_ref()
            .to_vec();
        let kdf = crypto::new_kdf()?;
        let kek = derive(passphrase, &kdf)?;
        let file = KeyFile {
            format: KEY_FORMAT.to_owned(),
            version: VERSION,
            municipality: municipality.to_owned(),
            public_key: public_key.clone(),
            kdf,
            private_key: crypto::seal(&kek, &key_aad(municipality), &pkcs8)?,
        };
        let public = CounterPublic {
            format: PUBLIC_FORMAT.to_owned(),
            municipality: municipality.to_owned(),
            public_key,
        };
        write_new(path, &to_json(&file)?)?;
        if let Err(e) = write_new(&public_path(path), &to_json(&public)?) {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(public)
    }

    /// Opens a counter key file with its passphrase.
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<CounterKey, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let f: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|_| bad(path, "not a counter key file (jpki token counter-key)"))?;
        if f.format != KEY_FORMAT || f.version != VERSION {
            return Err(bad(path, "not a counter key file (jpki token counter-key)"));
        }
        f.kdf.check().map_err(|e| bad(path, e))?;
        f.private_key
            .check("counter private key", 100)
            .map_err(|e| bad(path, e))?;
        let kek = derive(passphrase, &f.kdf)?;
        let pkcs8 = crypto::open(&kek, &key_aad(&f.municipality), &f.private_key)?
            .ok_or_else(|| bad(path, "wrong passphrase (or the file was altered)"))?;
        Ok(CounterKey {
            municipality: f.municipality,
            public_key: f.public_key,
            pkcs8,
        })
    }

    /// The key id (hex SHA-256 of the public key).
    pub fn key_id(&self) -> String {
        key_id(&self.public_key)
    }

    /// Decrypts a token's counter blob: the signing and the authentication data keys.
    pub(crate) fn open_data_keys(
        &self,
        blob: &[u8],
    ) -> Result<Option<(SecretKey, SecretKey)>, Error> {
        let key = PrivateDecryptingKey::from_pkcs8(&self.pkcs8)
            .map_err(|_| Error::Crypto("the counter key does not load"))?;
        let key = OaepPrivateDecryptingKey::new(key)
            .map_err(|_| Error::Crypto("the counter key is not an RSA-OAEP key"))?;
        let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
        let Ok(plain) = key.decrypt(
            &OAEP_SHA256_MGF1SHA256,
            blob,
            &mut out,
            Some(&label(&self.municipality)),
        ) else {
            return Ok(None);
        };
        if plain.len() != 2 * KEY_LEN {
            return Ok(None);
        }
        let mut signing = Zeroizing::new([0u8; KEY_LEN]);
        let mut auth = Zeroizing::new([0u8; KEY_LEN]);
        signing.copy_from_slice(&plain[..KEY_LEN]);
        auth.copy_from_slice(&plain[KEY_LEN..]);
        Ok(Some((signing, auth)))
    }
}

impl CounterPublic {
    /// Reads the public half (`FILE.pub`, or the key file itself: its public fields).
    pub fn read(path: &Path) -> Result<CounterPublic, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| bad(path, "not a counter key or its public half"))?;
        let format = v["format"].as_str().unwrap_or_default();
        if format != KEY_FORMAT && format != PUBLIC_FORMAT {
            return Err(bad(path, "not a counter key or its public half"));
        }
        let public = CounterPublic {
            format: PUBLIC_FORMAT.to_owned(),
            municipality: v["municipality"].as_str().unwrap_or_default().to_owned(),
            public_key: match v["public_key"]
                .as_str()
                .map(|s| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s))
            {
                Some(Ok(k)) => k,
                _ => return Err(bad(path, "no public key")),
            },
        };
        PublicEncryptingKey::from_der(&public.public_key)
            .map_err(|_| bad(path, "the public key is not an RSA key"))?;
        Ok(public)
    }

    /// Encrypts a token's two data keys to this counter (the token's counter blob).
    pub(crate) fn seal_data_keys(
        &self,
        signing: &SecretKey,
        auth: &SecretKey,
    ) -> Result<Vec<u8>, Error> {
        let key = PublicEncryptingKey::from_der(&self.public_key)
            .map_err(|_| Error::Crypto("the counter's public key does not load"))?;
        let key = OaepPublicEncryptingKey::new(key)
            .map_err(|_| Error::Crypto("the counter's key is not an RSA-OAEP key"))?;
        let mut plain = Zeroizing::new(Vec::with_capacity(2 * KEY_LEN));
        plain.extend_from_slice(signing.as_ref());
        plain.extend_from_slice(auth.as_ref());
        let mut out = vec![0u8; key.ciphertext_size()];
        let n = key
            .encrypt(
                &OAEP_SHA256_MGF1SHA256,
                &plain,
                &mut out,
                Some(&label(&self.municipality)),
            )
            .map_err(|_| Error::Crypto("RSA-OAEP encryption failed"))?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

/// The passphrase's key-encryption key (argon2id, the token's parameters).
fn derive(passphrase: &[u8], kdf: &Kdf) -> Result<SecretKey, Error> {
    let text = String::from_utf8_lossy(passphrase);
    crypto::derive(&text, kdf)
}

/// Pretty JSON of a file, with a final newline.
fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    let mut out =
        serde_json::to_vec_pretty(v).map_err(|_| Error::Crypto("serialising the key failed"))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Token, TokenKind};
    use policies::Hierarchy;

    const PASS: &[u8] = b"counter passphrase";

    #[test]
    fn the_counter_resets_a_locked_pin_without_the_other_and_another_counter_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("chiyoda.key");
        let public = CounterKey::create(&key, "Chiyoda-ku", PASS).unwrap();
        assert_eq!(CounterPublic::read(&public_path(&key)).unwrap(), public);
        let other_key = dir.path().join("minato.key");
        CounterKey::create(&other_key, "Minato-ku", PASS).unwrap();
        let path = dir.path().join("card.json");
        let mut t =
            Token::create_with(&path, "SIGNPASS1", "1234", TokenKind::Card, Some(&public)).unwrap();
        assert_eq!(t.counter_municipality(), Some("Chiyoda-ku"));
        // Both PINs locked.
        for _ in 0..3 {
            assert!(t.login("9999", b"challenge").is_err());
        }
        for _ in 0..5 {
            assert!(t.csr(Hierarchy::Signing, "WRONGPASS").is_err());
        }
        assert!(matches!(
            t.login("1234", b"challenge"),
            Err(Error::Locked { .. })
        ));
        let before = std::fs::read(&path).unwrap();
        // Another municipality's counter key: refused, nothing changed.
        let minato = CounterKey::open(&other_key, PASS).unwrap();
        assert!(matches!(
            t.counter_reset(Hierarchy::Auth, &minato, "4321"),
            Err(Error::CounterMismatch { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // The wrong passphrase does not open the counter key.
        assert!(matches!(
            CounterKey::open(&key, b"wrong passphrase"),
            Err(Error::CounterKey { .. })
        ));
        // The right counter resets the authentication PIN; the signing key stays locked.
        let chiyoda = CounterKey::open(&key, PASS).unwrap();
        t.counter_reset(Hierarchy::Auth, &chiyoda, "4321").unwrap();
        t.login("4321", b"challenge").unwrap();
        assert_eq!(t.status().auth.tries_left, 3);
        assert!(t.status().signing.locked);
        t.counter_reset(Hierarchy::Signing, &chiyoda, "NEWPASS2")
            .unwrap();
        t.csr(Hierarchy::Signing, "NEWPASS2").unwrap();
        // The reopened file still validates and keeps the enrolment.
        let again = Token::open(&path).unwrap();
        assert_eq!(again.counter_municipality(), Some("Chiyoda-ku"));
    }

    #[test]
    fn a_token_made_without_a_counter_is_reset_at_one_only_once_enrolled() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("c.key");
        CounterKey::create(&key, "Chiyoda-ku", PASS).unwrap();
        let mut t = Token::create(&dir.path().join("t.json"), "SIGNPASS1", "1234").unwrap();
        let c = CounterKey::open(&key, PASS).unwrap();
        assert!(matches!(
            t.counter_reset(Hierarchy::Auth, &c, "4321"),
            Err(Error::NoCounter)
        ));
        // Enrolled later with one PIN, it can.
        let public = CounterPublic::read(&public_path(&key)).unwrap();
        assert!(t.enrol_counter(Hierarchy::Auth, "0000", &public).is_err());
        t.enrol_counter(Hierarchy::Auth, "1234", &public).unwrap();
        t.counter_reset(Hierarchy::Signing, &c, "NEWPASS3").unwrap();
        t.csr(Hierarchy::Signing, "NEWPASS3").unwrap();
        t.login("1234", b"c").unwrap();
        assert!(
            CounterKey::create(&key, "Chiyoda-ku", PASS).is_err(),
            "overwrote a key"
        );
        assert!(CounterKey::create(&dir.path().join("d.key"), "X", b"short").is_err());
    }
}
