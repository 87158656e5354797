//! The token file: its JSON shape, its validation, and durable writes.
//!
//! See the crate documentation for the format. Reading validates everything that can be
//! checked without a PIN (format name, version, checksum, lengths, counters, KDF bounds,
//! public keys, certificates); what needs a PIN is authenticated by AES-GCM when it is used.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use der::Decode;
use policies::Hierarchy;
use serde::{Deserialize, Serialize};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

use crate::b64;
use crate::crypto::{self, Kdf, Sealed, KEY_LEN};
use crate::pin::max_tries;
use crate::Error;

/// The `format` field of every token file.
pub const FORMAT: &str = "jpki-holder-token";
/// The file-format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Token files are a few kilobytes; anything larger is not a token.
const MAX_FILE_LEN: u64 = 1 << 20;

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub format: String,
    pub version: u32,
    pub body: Body,
    /// Lower-case hex SHA-256 of the compact JSON serialisation of `body`.
    pub checksum: String,
}

/// The two key slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub signing: Slot,
    pub auth: Slot,
    /// What the token stands for: the card (absent, so card files written before this field
    /// existed keep their checksum) or a smartphone's secure element.
    #[serde(default, skip_serializing_if = "TokenKind::is_card")]
    pub kind: TokenKind,
    /// The municipal counter's reset capability ([`crate::counter`]); absent on tokens made
    /// without one (their files keep their checksum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<CounterSlot>,
}

/// Both data keys encrypted to a municipality's counter key (RSA-OAEP, [`crate::counter`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSlot {
    pub municipality: String,
    /// Hex SHA-256 of the counter key's SubjectPublicKeyInfo.
    pub key_id: String,
    #[serde(with = "b64::plain")]
    pub data_keys: Vec<u8>,
}

impl CounterSlot {
    fn check(&self) -> Result<(), String> {
        if self.key_id.len() != 64 || !self.key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("counter key id is not a SHA-256".into());
        }
        if !(128..=1024).contains(&self.data_keys.len()) {
            return Err("counter data keys have the wrong length".into());
        }
        Ok(())
    }
}

/// What a holder token stands for (reference §6: EF `0006` names the token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// The My Number card (`JPKIAPICCTOKEN2`).
    #[default]
    Card,
    /// A smartphone's secure element holding the phone certificates' keys
    /// (`JPKIAPGPSETOKEN`, Android).
    Phone,
}

impl TokenKind {
    pub fn is_card(&self) -> bool {
        *self == TokenKind::Card
    }

    /// The token name the real token answers in EF `0006`.
    pub fn token_name(self) -> &'static str {
        match self {
            TokenKind::Card => "JPKIAPICCTOKEN2",
            TokenKind::Phone => "JPKIAPGPSETOKEN",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Card => "card",
            TokenKind::Phone => "phone",
        }
    }
}

impl Body {
    pub fn slot(&self, kind: Hierarchy) -> &Slot {
        match kind {
            Hierarchy::Signing => &self.signing,
            Hierarchy::Auth => &self.auth,
        }
    }

    pub fn slot_mut(&mut self, kind: Hierarchy) -> &mut Slot {
        match kind {
            Hierarchy::Signing => &mut self.signing,
            Hierarchy::Auth => &mut self.auth,
        }
    }
}

/// One key pair with its PIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7), in the clear.
    #[serde(with = "b64::plain")]
    pub public_key: Vec<u8>,
    /// PKCS#8 DER sealed under this slot's data key.
    pub private_key: Sealed,
    /// The certificate issued for this key, DER, once imported.
    #[serde(with = "b64::opt")]
    pub certificate: Option<Vec<u8>>,
    pub pin: PinSlot,
}

/// A PIN: its KDF, its counter, and the data keys it unlocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinSlot {
    pub kdf: Kdf,
    /// Wrong tries left before the key locks; 0 = locked.
    pub tries_left: u8,
    /// This slot's data key, sealed under the PIN's KEK.
    pub own_key: Sealed,
    /// The other slot's data key, sealed under this PIN's KEK: it lets this PIN reset the
    /// other one (the kiosk flow of reference §7).
    pub other_key: Sealed,
}

/// Associated data of a slot's sealed private key: binds it to the format version, its kind
/// and its public key, so blobs cannot be swapped between slots or tokens unnoticed.
pub fn aad_private_key(kind: Hierarchy, spki: &[u8]) -> Vec<u8> {
    let mut aad = format!("{FORMAT}/{VERSION}/private-key/{}/", kind.as_str()).into_bytes();
    aad.extend_from_slice(spki);
    aad
}

/// Associated data of the data key of `target`, sealed under the PIN of `by`.
pub fn aad_data_key(target: Hierarchy, by: Hierarchy) -> Vec<u8> {
    format!(
        "{FORMAT}/{VERSION}/data-key/{}/by-{}",
        target.as_str(),
        by.as_str()
    )
    .into_bytes()
}

impl Slot {
    fn check(&self, kind: Hierarchy) -> Result<(), String> {
        let name = kind.as_str();
        SubjectPublicKeyInfoRef::from_der(&self.public_key)
            .map_err(|e| format!("{name} public key: {e}"))?;
        self.private_key
            .check(&format!("{name} private key"), 100)?;
        if self.pin.tries_left > max_tries(kind) {
            return Err(format!(
                "{name} try counter {} exceeds the maximum {}",
                self.pin.tries_left,
                max_tries(kind)
            ));
        }
        self.pin
            .kdf
            .check()
            .map_err(|e| format!("{name} PIN: {e}"))?;
        self.pin
            .own_key
            .check(&format!("{name} PIN own key"), KEY_LEN)?;
        self.pin
            .other_key
            .check(&format!("{name} PIN other key"), KEY_LEN)?;
        if let Some(der) = &self.certificate {
            let cert =
                Certificate::from_der(der).map_err(|e| format!("{name} certificate: {e}"))?;
            let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())
                .map_err(|e| format!("{name} certificate: {e}"))?;
            if spki != self.public_key {
                return Err(format!("{name} certificate is not for the {name} key"));
            }
        }
        Ok(())
    }
}

impl Envelope {
    pub fn new(body: Body) -> Result<Self, Error> {
        let checksum = checksum(&body)?;
        Ok(Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            body,
            checksum,
        })
    }
}

fn checksum(body: &Body) -> Result<String, Error> {
    let json = serde_json::to_vec(body).map_err(|e| Error::Crypto(leak_free(e)))?;
    Ok(hex(&crypto::sha256(&json)))
}

// serde_json serialisation of plain structs only fails on I/O or maps with non-string keys,
// neither of which occurs here; keep a fixed message rather than formatting the error.
fn leak_free(_: serde_json::Error) -> &'static str {
    "serialising the token failed"
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses and validates the bytes of a token file.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Body, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("not valid JSON ({e}); the file may be truncated")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(corrupt(format!("no \"format\": \"{FORMAT}\" field")));
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(found) => {
            return Err(Error::Version {
                path: path.to_owned(),
                found,
            })
        }
        None => return Err(corrupt("no numeric \"version\" field".into())),
    }
    let envelope: Envelope =
        serde_json::from_value(value).map_err(|e| corrupt(format!("bad structure: {e}")))?;
    if checksum(&envelope.body)? != envelope.checksum {
        return Err(corrupt(
            "checksum mismatch: the file was altered or damaged".into(),
        ));
    }
    for kind in Hierarchy::ALL {
        envelope.body.slot(kind).check(kind).map_err(corrupt)?;
    }
    if let Some(c) = &envelope.body.counter {
        c.check().map_err(corrupt)?;
    }
    Ok(envelope.body)
}

/// Reads and validates a token file.
pub fn read(path: &Path) -> Result<Body, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.len() > MAX_FILE_LEN {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            reason: format!("{} bytes is too large for a token", meta.len()),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "token file is readable by other users; chmod 600 it");
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    parse(path, &bytes)
}

/// An exclusive lock on the token's directory, held for one read-modify-write, so that two
/// processes cannot both spend the same try. It also serves to fsync the directory.
pub struct DirLock {
    dir: File,
    dir_path: PathBuf,
}

impl DirLock {
    pub fn acquire(token: &Path) -> Result<Self, Error> {
        let dir_path = parent(token);
        let io = |source| Error::Io {
            path: dir_path.clone(),
            source,
        };
        let dir = File::open(&dir_path).map_err(io)?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(e.into()))?;
        Ok(Self { dir, dir_path })
    }

    /// Writes `body` to `path` durably: a temporary file in the same directory (mode 0600),
    /// fsync, rename over `path`, fsync of the directory. With `no_clobber` an existing
    /// `path` is an error (`hard_link` instead of `rename`).
    pub fn write(&self, path: &Path, body: &Body, no_clobber: bool) -> Result<(), Error> {
        let io_at = |p: &Path| {
            let p = p.to_owned();
            move |source| Error::Io { path: p, source }
        };
        let mut json = serde_json::to_vec_pretty(&Envelope::new(body.clone())?)
            .map_err(|e| Error::Crypto(leak_free(e)))?;
        json.push(b'\n');
        let name = path
            .file_name()
            .ok_or_else(|| Error::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
            })?
            .to_string_lossy();
        let tmp = self.dir_path.join(format!(".{name}.tmp"));
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_at(&tmp)(e)),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        file.write_all(&json).map_err(io_at(&tmp))?;
        file.sync_all().map_err(io_at(&tmp))?;
        drop(file);
        if no_clobber {
            let linked = match std::fs::hard_link(&tmp, path) {
                // a file system without hard links: the directory lock still keeps other
                // jpki processes out between the check and the rename
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => {
                    tracing::debug!(error = %e, "hard link refused; renaming instead");
                    std::fs::rename(&tmp, path)
                }
                other => other,
            };
            // the temporary name goes either way; an error removing it is secondary
            let _ = std::fs::remove_file(&tmp);
            linked.map_err(io_at(path))?;
        } else {
            std::fs::rename(&tmp, path).map_err(io_at(path))?;
        }
        self.dir.sync_all().map_err(io_at(&self.dir_path))
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}
