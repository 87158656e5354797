//! The CA's private keys as signers: each hierarchy's root generations and delegated OCSP
//! signer, and
//! named keys outside the hierarchies (the platform-operator CA), read from the data
//! directory's encrypted key files ([`crate::keys`]) and decrypted on first use — or, when the
//! data directory records a PKCS#11 token (`hsm.toml`, [`crate::hsm::HsmConfig`]), found in
//! that token, which makes every signature. The authority signs through this and never reads
//! a key file itself; [`Signers::generate_key`] and [`Signers::key_for`] are the one place
//! that chooses between the two backends (init, renewals and root rollover call them).

use std::collections::BTreeMap;
use std::fs;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use policies::Hierarchy;
use zeroize::Zeroizing;

use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::hsm::{HsmConfig, Token};
use crate::keys::{self, CaSigner};

/// Where a data directory's CA keys are.
enum Backend {
    /// Encrypted key files under `keys/` (the default).
    Files,
    /// Keys inside a PKCS#11 token, opened on first use. A refused PIN is remembered and never
    /// tried again by this process (the token locks after a few failed logins).
    Token {
        config: HsmConfig,
        token: std::sync::Mutex<Option<Arc<Token>>>,
        refused: OnceLock<Error>,
        /// Labels of the keys this process generated (an `init` that fails destroys them).
        made: std::sync::Mutex<Vec<String>>,
    },
}

/// The CA keys of a data directory: key files under one passphrase, or a PKCS#11 token.
pub struct Signers {
    dir: DataDir,
    backend: Backend,
    passphrase: Option<Zeroizing<Vec<u8>>>,
    /// The root signers decrypted so far, per hierarchy tag and generation.
    roots: [Mutex<BTreeMap<u32, Arc<CaSigner>>>; 2],
    /// The delegated OCSP signers in use; replaced when one is renewed ([`Signers::set_ocsp`]).
    ocsp: [RwLock<Option<Arc<CaSigner>>>; 2],
    /// The delegated OCSP signers of older root generations in use, by file name
    /// (`<h>-ocsp-g<N>`); replaced when one is renewed ([`Signers::set_ocsp_named`]).
    older_ocsp: Mutex<BTreeMap<String, Arc<CaSigner>>>,
}

impl Signers {
    /// The keys of `dir`; without a passphrase every signing call fails with
    /// [`Error::NoPassphrase`] (read-only use).
    pub fn new(dir: DataDir, passphrase: Option<Vec<u8>>) -> Signers {
        Signers {
            dir,
            backend: Backend::Files,
            passphrase: passphrase.map(Zeroizing::new),
            roots: [Mutex::new(BTreeMap::new()), Mutex::new(BTreeMap::new())],
            ocsp: [RwLock::new(None), RwLock::new(None)],
            older_ocsp: Mutex::new(BTreeMap::new()),
        }
    }

    /// The keys of `dir` where it keeps them: in the token its `hsm.toml` records (opened on
    /// first use), else in key files under `passphrase`.
    pub fn open(dir: DataDir, passphrase: Option<Vec<u8>>) -> Result<Signers> {
        let config = HsmConfig::read(&dir.dir)?;
        let mut s = Signers::new(dir, passphrase);
        if let Some(config) = config {
            s.backend = Backend::Token {
                config,
                token: std::sync::Mutex::new(None),
                refused: OnceLock::new(),
                made: std::sync::Mutex::new(Vec::new()),
            };
        }
        Ok(s)
    }

    /// The keys of a new data directory in the token `config` names, already opened.
    pub fn in_token(dir: DataDir, config: HsmConfig, token: Arc<Token>) -> Signers {
        let mut s = Signers::new(dir, None);
        s.backend = Backend::Token {
            config,
            token: std::sync::Mutex::new(Some(token)),
            refused: OnceLock::new(),
            made: std::sync::Mutex::new(Vec::new()),
        };
        s
    }

    /// The token the keys are in (opened and logged in on first use); `None` for key files.
    pub fn token(&self) -> Result<Option<Arc<Token>>> {
        let Backend::Token {
            config,
            token,
            refused,
            ..
        } = &self.backend
        else {
            return Ok(None);
        };
        if let Some(e) = refused.get() {
            return Err(crate::hsm::same_error(e));
        }
        let mut slot = token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = slot.as_ref() {
            return Ok(Some(t.clone()));
        }
        match config.open() {
            Ok(t) => {
                *slot = Some(t.clone());
                Ok(Some(t))
            }
            Err(e @ Error::HsmPin(_)) => {
                let again = crate::hsm::same_error(&e);
                let _ = refused.set(e);
                Err(again)
            }
            Err(e) => Err(e),
        }
    }

    /// The token configuration, when the keys are in one.
    pub fn hsm(&self) -> Option<&HsmConfig> {
        match &self.backend {
            Backend::Token { config, .. } => Some(config),
            Backend::Files => None,
        }
    }

    /// **The key-backend function for a new CA key**: an RSA-2048 key made where this data
    /// directory keeps its keys — encrypted under the CA passphrase to `file` (created new,
    /// 0600), or generated inside the token as a non-extractable key labelled `name` (no file
    /// is written). Returns it as a signer without a certificate
    /// ([`CaSigner::with_certificate`] adds it once made).
    pub fn generate_key(&self, name: &str, file: &std::path::Path) -> Result<CaSigner> {
        match self.token()? {
            None => {
                let key = keys::generate()?;
                keys::write_encrypted(file, &key, self.passphrase()?)?;
                Ok(CaSigner::new(key.pair, Vec::new()))
            }
            Some(token) => {
                let key = token.generate(name)?;
                if let Backend::Token { made, .. } = &self.backend {
                    made.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(name.to_owned());
                }
                tracing::info!(token = %token.label(), label = name, "CA key generated in the token");
                Ok(CaSigner::in_token(key, Vec::new()))
            }
        }
    }

    /// **The key-backend function for an existing CA key**: the key of certificate `cert`
    /// (whose public key is `spki`), from `file` (decrypted) or from the token (found by its
    /// public key); either way checked to be the certificate's key.
    pub fn key_for(&self, file: &std::path::Path, cert: Vec<u8>, spki: &[u8]) -> Result<CaSigner> {
        let signer = match self.token()? {
            None => CaSigner::new(keys::read_encrypted(file, self.passphrase()?)?, cert),
            Some(token) => {
                let what = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                CaSigner::in_token(token.key_for(spki, &what)?, cert)
            }
        };
        if signer.spki()? != spki {
            return Err(Error::KeyFile {
                path: file.display().to_string(),
                detail: "the key does not match its certificate".into(),
            });
        }
        Ok(signer)
    }

    /// In a token, destroys every key labelled `name` but the one of `keep` (the replaced
    /// OCSP signer's key, a staged key a crash left uncommitted). Nothing to do for files,
    /// which are replaced by renaming.
    pub fn retire_others(&self, name: &str, keep: &[u8]) -> Result<usize> {
        match self.token()? {
            Some(token) => token.destroy_others(name, Some(keep)),
            None => Ok(0),
        }
    }

    /// In a token, destroys every key labelled `name` (a retired key, or what a failed
    /// ceremony left). Nothing to do for files, which the caller removes.
    pub fn destroy_labelled(&self, name: &str) -> Result<usize> {
        match self.token()? {
            Some(token) => token.destroy_others(name, None),
            None => Ok(0),
        }
    }

    /// In a token, destroys the keys this process generated (an `init` that failed).
    pub fn discard_generated(&self) {
        if let Backend::Token { made, .. } = &self.backend {
            let labels = std::mem::take(&mut *made.lock().unwrap_or_else(|p| p.into_inner()));
            if let Ok(Some(token)) = self.token() {
                for l in labels {
                    if let Err(e) = token.destroy_others(&l, None) {
                        tracing::error!(error = %e, label = %l, "could not destroy a key of a failed init");
                    }
                }
            }
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
        let signer = Arc::new(self.key_for(&path, root_der.to_vec(), root_spki)?);
        Ok(slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(generation)
            .or_insert(signer)
            .clone())
    }

    /// The label of a root generation's key in a token (`signing-root-g2`).
    pub fn root_label(h: Hierarchy, generation: u32) -> String {
        format!("{h}-root-g{generation}")
    }

    /// Makes a new root key for a generation of a hierarchy where this data directory keeps
    /// its keys ([`Signers::generate_key`]: encrypted at [`DataDir::root_key`], refusing to
    /// overwrite, or in the token). The one place `jpki init` and `jpki root rollover` create
    /// a root key. Returned without a certificate.
    pub fn create_root_key(&self, h: Hierarchy, generation: u32) -> Result<CaSigner> {
        self.generate_key(
            &Self::root_label(h, generation),
            &self.dir.root_key(h, generation),
        )
    }

    /// Removes what a failed rollover left of a root key: the file, or the token's keys so
    /// labelled.
    pub fn discard_root_key(&self, h: Hierarchy, generation: u32) -> Result<()> {
        match fs::remove_file(self.dir.root_key(h, generation)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove a root key file")(e)),
        }
        self.destroy_labelled(&Self::root_label(h, generation))?;
        Ok(())
    }

    /// The delegated OCSP signer of a hierarchy, with its certificate: the one installed by
    /// [`Signers::set_ocsp`], else `keys/<h>-ocsp.key` with `certs/<h>-ocsp.pem` (the key
    /// must hold the certificate's key).
    pub fn ocsp(&self, h: Hierarchy) -> Result<Arc<CaSigner>> {
        let slot = &self.ocsp[h.tag() as usize];
        if let Some(s) = slot.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(s.clone());
        }
        let signer = self.load_ocsp(h, "ocsp")?;
        let mut w = slot.write().unwrap_or_else(|p| p.into_inner());
        Ok(w.get_or_insert(signer).clone())
    }

    /// The delegated OCSP signer of an older root generation, `name` being `ocsp-g<N>`
    /// (`keys/<h>-ocsp-g<N>.key` with `certs/<h>-ocsp-g<N>.pem`), as [`Signers::ocsp`].
    pub fn ocsp_named(&self, h: Hierarchy, name: &str) -> Result<Arc<CaSigner>> {
        let label = format!("{h}-{name}");
        if let Some(s) = self
            .older_ocsp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&label)
        {
            return Ok(s.clone());
        }
        let signer = self.load_ocsp(h, name)?;
        let mut m = self.older_ocsp.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.entry(label).or_insert(signer).clone())
    }

    /// Installs a renewed OCSP signer of an older root generation (see [`Signers::ocsp_named`]).
    pub fn set_ocsp_named(&self, h: Hierarchy, name: &str, signer: Arc<CaSigner>) {
        self.older_ocsp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{h}-{name}"), signer);
    }

    fn load_ocsp(&self, h: Hierarchy, name: &str) -> Result<Arc<CaSigner>> {
        let path = self.dir.key(h, name);
        let cert_pem =
            fs::read(self.dir.cert(h, name)).map_err(Error::io("read OCSP signer certificate"))?;
        let (_, p) = x509_parser::pem::parse_x509_pem(&cert_pem)
            .map_err(|e| Error::Store(format!("OCSP signer certificate: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&p.contents)
            .map_err(|e| Error::Store(format!("OCSP signer certificate: {e}")))?;
        let spki = cert.tbs_certificate.subject_pki.raw.to_vec();
        let signer = Arc::new(self.key_for(&path, p.contents.clone(), &spki)?);
        // In a token, what a replacement interrupted by a crash left (the replaced key, or a
        // new key never certified) is destroyed on first load: only the certified key stays.
        let retired = self.retire_others(&format!("{h}-{name}"), &spki)?;
        if retired > 0 {
            tracing::warn!(hierarchy = %h, retired, "destroyed OCSP signer keys in the token that no certificate in force holds");
        }
        Ok(signer)
    }

    /// Forgets the loaded OCSP signers of a hierarchy: the next use reads the files again
    /// (another process sharing this data directory replaced them).
    pub fn forget_ocsp(&self, h: Hierarchy) {
        *self.ocsp[h.tag() as usize]
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let prefix = format!("{h}-");
        self.older_ocsp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(&prefix));
    }

    /// Installs a renewed OCSP signer: every later [`Signers::ocsp`] returns it.
    pub fn set_ocsp(&self, h: Hierarchy, signer: Arc<CaSigner>) {
        *self.ocsp[h.tag() as usize]
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(signer);
    }

    /// Generates an RSA-2048 key `name` (refusing one that exists): for CA keys outside the
    /// two hierarchies, such as the platform-operator CA. Stored encrypted as
    /// `keys/<name>.key`, or in the token labelled `name`. Returns its SubjectPublicKeyInfo.
    pub fn create(&self, name: &str) -> Result<Vec<u8>> {
        check_key_name(name)?;
        if self.token()?.is_some() && self.has(name)? {
            return Err(Error::Hsm(format!(
                "the token already holds a key labelled `{name}`"
            )));
        }
        self.generate_key(name, &self.dir.named_key(name))?.spki()
    }

    /// Whether key `name` exists (`keys/<name>.key`, or a key so labelled in the token).
    pub fn has(&self, name: &str) -> Result<bool> {
        check_key_name(name)?;
        match self.token()? {
            None => Ok(self.dir.named_key(name).exists()),
            Some(token) => token.has(name),
        }
    }

    /// Loads key `name` (see [`Signers::create`]) as a signer for the certificate `cert_der`.
    pub fn named(&self, name: &str, cert_der: Vec<u8>) -> Result<CaSigner> {
        check_key_name(name)?;
        match self.token()? {
            None => {
                let pair = keys::read_encrypted(&self.dir.named_key(name), self.passphrase()?)?;
                Ok(CaSigner::new(pair, cert_der))
            }
            Some(token) => Ok(CaSigner::in_token(token.key(name)?, cert_der)),
        }
    }
}

fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::Invalid(format!(
            "key name `{name}` must be letters, digits and -"
        )));
    }
    Ok(())
}
