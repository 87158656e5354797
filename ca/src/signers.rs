//! The CA's private keys as signers: each hierarchy's root generations and delegated OCSP
//! signer, and
//! named keys outside the hierarchies (the platform-operator CA), read from the data
//! directory's encrypted key files ([`crate::keys`]) and decrypted on first use. The
//! authority signs through this and never reads a key file itself.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use policies::Hierarchy;
use zeroize::Zeroizing;

use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::keys::{self, CaSigner};

/// The key files of a data directory, under one passphrase.
pub struct Signers {
    dir: DataDir,
    passphrase: Option<Zeroizing<Vec<u8>>>,
    /// The root signers decrypted so far, per hierarchy tag and generation.
    roots: [Mutex<BTreeMap<u32, Arc<CaSigner>>>; 2],
    /// The delegated OCSP signers in use; replaced when one is renewed ([`Signers::set_ocsp`]).
    ocsp: [RwLock<Option<Arc<CaSigner>>>; 2],
}

impl Signers {
    /// The keys of `dir`; without a passphrase every signing call fails with
    /// [`Error::NoPassphrase`] (read-only use).
    pub fn new(dir: DataDir, passphrase: Option<Vec<u8>>) -> Signers {
        Signers {
            dir,
            passphrase: passphrase.map(Zeroizing::new),
            roots: [Mutex::new(BTreeMap::new()), Mutex::new(BTreeMap::new())],
            ocsp: [RwLock::new(None), RwLock::new(None)],
        }
    }

    /// The data directory the keys are in.
    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    fn passphrase(&self) -> Result<&[u8]> {
        self.passphrase
            .as_deref()
            .map(|v| v.as_slice())
            .ok_or(Error::NoPassphrase)
    }

    /// The root signer of one generation of a hierarchy for the root certificate `root_der`
    /// (key file [`DataDir::root_key`]): the key file must hold the certificate's key.
    pub fn root(
        &self,
        h: Hierarchy,
        generation: u32,
        root_der: &[u8],
        root_spki: &[u8],
    ) -> Result<Arc<CaSigner>> {
        let slot = &self.roots[h.tag() as usize];
        if let Some(s) = slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&generation)
        {
            return Ok(s.clone());
        }
        let path = self.dir.root_key(h, generation);
        let pair = keys::read_encrypted(&path, self.passphrase()?)?;
        let signer = Arc::new(CaSigner::new(pair, root_der.to_vec()));
        if signer.spki()? != root_spki {
            return Err(Error::KeyFile {
                path: path.display().to_string(),
                detail: "the key does not match the root certificate".into(),
            });
        }
        Ok(slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(generation)
            .or_insert(signer)
            .clone())
    }

    /// Makes a new root key for a generation of a hierarchy and stores it encrypted at
    /// [`DataDir::root_key`] (refusing to overwrite). The one place `jpki root rollover`
    /// creates a root key, so that a key store other than encrypted files can take it over.
    pub fn create_root_key(&self, h: Hierarchy, generation: u32) -> Result<keys::NewKey> {
        create_key(&self.dir.root_key(h, generation), self.passphrase()?)
    }

    /// The delegated OCSP signer of a hierarchy, with its certificate: the one installed by
    /// [`Signers::set_ocsp`], else `keys/<h>-ocsp.key` with `certs/<h>-ocsp.pem` (the key
    /// must hold the certificate's key).
    pub fn ocsp(&self, h: Hierarchy) -> Result<Arc<CaSigner>> {
        let slot = &self.ocsp[h.tag() as usize];
        if let Some(s) = slot.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(s.clone());
        }
        let path = self.dir.key(h, "ocsp");
        let pair = keys::read_encrypted(&path, self.passphrase()?)?;
        let cert_pem = fs::read(self.dir.cert(h, "ocsp"))
            .map_err(Error::io("read OCSP signer certificate"))?;
        let (_, p) = x509_parser::pem::parse_x509_pem(&cert_pem)
            .map_err(|e| Error::Store(format!("OCSP signer certificate: {e}")))?;
        let signer = Arc::new(CaSigner::new(pair, p.contents));
        let (_, cert) =
            x509_parser::parse_x509_certificate(policies::Signer::certificate(signer.as_ref()))
                .map_err(|e| Error::Store(format!("OCSP signer certificate: {e}")))?;
        if signer.spki()? != cert.tbs_certificate.subject_pki.raw {
            return Err(Error::KeyFile {
                path: path.display().to_string(),
                detail: "the key does not match the OCSP signer certificate".into(),
            });
        }
        let mut w = slot.write().unwrap_or_else(|p| p.into_inner());
        Ok(w.get_or_insert(signer).clone())
    }

    /// Installs a renewed OCSP signer: every later [`Signers::ocsp`] returns it.
    pub fn set_ocsp(&self, h: Hierarchy, signer: Arc<CaSigner>) {
        *self.ocsp[h.tag() as usize]
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(signer);
    }

    /// The passphrase the key files are encrypted under (for a renewed key).
    pub(crate) fn key_passphrase(&self) -> Result<&[u8]> {
        self.passphrase()
    }

    /// Generates an RSA-2048 key and stores it encrypted as `keys/<name>.key` (refusing to
    /// overwrite): for CA keys outside the two hierarchies, such as the platform-operator CA.
    pub fn create(&self, name: &str) -> Result<keys::NewKey> {
        check_key_name(name)?;
        let key = keys::generate()?;
        keys::write_encrypted(&self.dir.named_key(name), &key, self.passphrase()?)?;
        Ok(key)
    }

    /// Loads `keys/<name>.key` as a signer for the certificate `cert_der`.
    pub fn named(&self, name: &str, cert_der: Vec<u8>) -> Result<CaSigner> {
        check_key_name(name)?;
        let pair = keys::read_encrypted(&self.dir.named_key(name), self.passphrase()?)?;
        Ok(CaSigner::new(pair, cert_der))
    }
}

/// Makes a new CA key and stores it encrypted under `passphrase` at `path` (refusing to
/// overwrite): the one function `jpki init` and `jpki root rollover` make root keys with.
pub(crate) fn create_key(path: &Path, passphrase: &[u8]) -> Result<keys::NewKey> {
    let key = keys::generate()?;
    keys::write_encrypted(path, &key, passphrase)?;
    Ok(key)
}

fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::Invalid(format!(
            "key name `{name}` must be letters, digits and -"
        )));
    }
    Ok(())
}
