//! CA keys: RSA-2048 made and used through aws-lc-rs (constant-time, ~4× faster than the
//! `rsa` crate, `crate-notes.md` §8–9), stored as encrypted PKCS#8 (RFC 5958 §3,
//! PBES2 with scrypt and AES-256-CBC, RFC 8018 §6.2 / RFC 7914), PEM, mode 0600. OpenSSL 3
//! reads these files (`openssl pkey -in KEY -passin env:JPKI_PASSPHRASE`).

use std::fs;
use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use der::Decode;
use pkcs8::pkcs5::{pbes2, scrypt};
use pkcs8::EncryptedPrivateKeyInfoRef;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Scrypt cost for key files: log2(N) = 14, r = 8, p = 1 — the parameters OpenSSL 3 accepts
/// (RustCrypto/formats#1205).
const SCRYPT_LOG_N: u8 = 14;

/// A freshly generated key: its PKCS#8 DER (secret) and its SubjectPublicKeyInfo.
pub struct NewKey {
    pub pair: KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    pub spki: Vec<u8>,
}

pub fn generate() -> Result<NewKey> {
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|e| Error::Invalid(format!("RSA key generation failed: {e}")))?;
    let pkcs8: Pkcs8V1Der<'static> = pair
        .as_der()
        .map_err(|e| Error::Invalid(format!("PKCS#8 encoding failed: {e}")))?;
    let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
    let spki = public_key_der(&pair)?;
    Ok(NewKey { pair, pkcs8, spki })
}

fn public_key_der(pair: &KeyPair) -> Result<Vec<u8>> {
    let spki: PublicKeyX509Der<'static> = pair
        .public_key()
        .as_der()
        .map_err(|e| Error::Invalid(format!("public key encoding failed: {e}")))?;
    Ok(spki.as_ref().to_vec())
}

/// Writes `key` encrypted under `passphrase` to `path` (created new, mode 0600, fsynced).
pub fn write_encrypted(path: &Path, key: &NewKey, passphrase: &[u8]) -> Result<()> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt)
        .and_then(|_| rng.fill(&mut iv))
        .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
    let params = scrypt::Params::new(SCRYPT_LOG_N, 8, 1)
        .map_err(|e| Error::Invalid(format!("scrypt parameters: {e}")))?;
    let pbes2 = pbes2::Parameters::generate_scrypt_aes256cbc(params, &salt, iv)
        .map_err(|e| Error::Invalid(format!("PBES2 parameters: {e}")))?;
    let info = pkcs8::PrivateKeyInfoRef::from_der(&key.pkcs8)
        .map_err(|e| Error::Invalid(format!("PKCS#8: {e}")))?;
    let doc = info
        .encrypt_with_params(pbes2, passphrase)
        .map_err(|e| Error::Invalid(format!("key encryption failed: {e}")))?;
    let pem = doc
        .to_pem("ENCRYPTED PRIVATE KEY", der::pem::LineEnding::LF)
        .map_err(|e| Error::Invalid(format!("PEM encoding failed: {e}")))?;
    write_private(path, pem.as_bytes())
}

/// Creates `path` with mode 0600 and fsyncs it; refuses to overwrite (kept in
/// [`crate::datadir`], which every module that writes into the data directory may use).
pub use crate::datadir::write_private;

/// Reads and decrypts a key file.
pub fn read_encrypted(path: &Path, passphrase: &[u8]) -> Result<KeyPair> {
    let text = fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
    let key_file = || Error::KeyFile {
        path: path.display().to_string(),
        detail: "not an ENCRYPTED PRIVATE KEY PEM file".into(),
    };
    let (label, der_bytes) = der::pem::decode_vec(text.as_bytes()).map_err(|_| key_file())?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(key_file());
    }
    let info = EncryptedPrivateKeyInfoRef::from_der(&der_bytes).map_err(|_| key_file())?;
    let secret = info
        .decrypt(passphrase)
        .map_err(|_| Error::WrongPassphrase(path.display().to_string()))?;
    KeyPair::from_pkcs8(secret.as_bytes()).map_err(|e| Error::KeyFile {
        path: path.display().to_string(),
        detail: format!("not an RSA key: {e}"),
    })
}

/// A CA signing key with its certificate: the [`policies::Signer`] the CA, the CRL publisher
/// and the OCSP responder use. The key is an aws-lc-rs key pair decrypted from its file (the
/// default), or a key inside a PKCS#11 token ([`crate::hsm::TokenKey`]) that never leaves it.
pub struct CaSigner {
    key: Key,
    cert: Vec<u8>,
    rng: SystemRandom,
}

enum Key {
    File(KeyPair),
    Token(crate::hsm::TokenKey),
}

impl CaSigner {
    pub fn new(pair: KeyPair, cert: Vec<u8>) -> CaSigner {
        CaSigner {
            key: Key::File(pair),
            cert,
            rng: SystemRandom::new(),
        }
    }

    /// A signer whose key is in a token: every signature is made there.
    pub fn in_token(key: crate::hsm::TokenKey, cert: Vec<u8>) -> CaSigner {
        CaSigner {
            key: Key::Token(key),
            cert,
            rng: SystemRandom::new(),
        }
    }

    /// The same key for the certificate `cert` (a key is made before its certificate).
    pub fn with_certificate(self, cert: Vec<u8>) -> CaSigner {
        CaSigner { cert, ..self }
    }

    /// Whether the key is inside a PKCS#11 token.
    pub fn in_hsm(&self) -> bool {
        matches!(self.key, Key::Token(_))
    }

    pub fn spki(&self) -> Result<Vec<u8>> {
        match &self.key {
            Key::File(pair) => public_key_der(pair),
            Key::Token(key) => Ok(key.spki().to_vec()),
        }
    }
}

/// Signs with an aws-lc-rs key pair (sha256WithRSAEncryption, PKCS#1 v1.5).
pub fn sign_with(
    pair: &KeyPair,
    rng: &SystemRandom,
    message: &[u8],
) -> Result<Vec<u8>, policies::SignError> {
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut sig)
        .map_err(|e| policies::SignError(e.to_string()))?;
    Ok(sig)
}

impl policies::Signer for CaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, policies::SignError> {
        match &self.key {
            Key::File(pair) => sign_with(pair, &self.rng, message),
            Key::Token(key) => key
                .sign(message)
                .map_err(|e| policies::SignError(e.to_string())),
        }
    }

    fn certificate(&self) -> &[u8] {
        &self.cert
    }
}

/// Re-encrypts the key file `from` (under `old`) into the new file `to` under `new`, with
/// fresh salt and IV: how `jpki edge export` hands an edge node its OCSP signer key under the
/// edge's own passphrase (docs/deployment.md). The key itself is unchanged.
pub fn reencrypt(from: &Path, old: &[u8], to: &Path, new: &[u8]) -> Result<()> {
    let pair = read_encrypted(from, old)?;
    let pkcs8: Pkcs8V1Der<'static> = pair
        .as_der()
        .map_err(|e| Error::Invalid(format!("PKCS#8 encoding failed: {e}")))?;
    let key = NewKey {
        pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
        spki: public_key_der(&pair)?,
        pair,
    };
    write_encrypted(to, &key, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_refuse_a_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = generate().unwrap();
        write_encrypted(&path, &key, b"correct horse").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = read_encrypted(&path, b"correct horse").unwrap();
        assert_eq!(public_key_der(&back).unwrap(), key.spki);
        let e = read_encrypted(&path, b"wrong").err().unwrap();
        assert!(matches!(e, Error::WrongPassphrase(_)), "{e}");
        // Refuses to overwrite.
        assert!(write_encrypted(&path, &key, b"x").is_err());
        // OpenSSL reads the file.
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-passin", "pass:correct horse", "-in"])
            .arg(&path)
            .output();
        if let Ok(out) = out {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
