//! Initialisation: a new data directory with both hierarchies (root key and certificate), a
//! delegated OCSP signer per hierarchy, the policy in force and the store; and opening an
//! existing one on the sled engine.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use policies::lint::{self, Expect, Shape};
use policies::profile::{self, Scope, Window};
use policies::{validity, Hierarchy, Policy};

use super::{counter_serial, random_serial, serial_hex, Authority};
use crate::clock::Clock;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::keys;
use crate::records::{pem, CertKind, CertRecord};
use crate::signers::Signers;
use crate::storage::{
    self,
    sled::{SledOptions, SledStorage},
    Storage,
};

impl Authority {
    /// Creates a data directory: both hierarchies (root key and certificate), a delegated OCSP
    /// signer per hierarchy, the policy in force and the store. Refuses a non-empty directory;
    /// on failure removes what it made.
    pub fn init(
        dir: &Path,
        policy_text: &str,
        passphrase: &[u8],
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        Self::init_keys(dir, None, policy_text, passphrase, clock, None)
    }

    /// [`Authority::init`] (`storage`: `None`) or [`Authority::init_with`], with the CA keys
    /// generated inside the PKCS#11 token `hsm` names when given (`jpki init --pkcs11-module
    /// … --token … --pin-file …`): the token is opened and checked before anything is made,
    /// recorded in `DIR/hsm.toml`, and every later open signs through it. With a token the
    /// passphrase is not used for CA keys (it may be empty).
    pub fn init_keys(
        dir: &Path,
        storage: Option<Arc<dyn Storage>>,
        policy_text: &str,
        passphrase: &[u8],
        clock: Arc<dyn Clock>,
        hsm: Option<&crate::hsm::HsmConfig>,
    ) -> Result<Authority> {
        let Some(storage) = storage else {
            return Self::init_on(dir, policy_text, passphrase, clock, hsm, &|layout| {
                Ok(Arc::new(SledStorage::open(&layout.db())?))
            });
        };
        Self::init_with_keys(dir, storage, policy_text, passphrase, clock, hsm)
    }

    /// [`Authority::init`] with the store on `storage` (another engine, e.g. PostgreSQL)
    /// instead of sled in the data directory, which then holds the keys, certificates and
    /// policy only. `storage` must be empty: a store another `init` filled is refused.
    pub fn init_with(
        dir: &Path,
        storage: Arc<dyn Storage>,
        policy_text: &str,
        passphrase: &[u8],
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        Self::init_with_keys(dir, storage, policy_text, passphrase, clock, None)
    }

    fn init_with_keys(
        dir: &Path,
        storage: Arc<dyn Storage>,
        policy_text: &str,
        passphrase: &[u8],
        clock: Arc<dyn Clock>,
        hsm: Option<&crate::hsm::HsmConfig>,
    ) -> Result<Authority> {
        let mut any = false;
        storage.for_each_certificate(&mut |_| {
            any = true;
            Ok(())
        })?;
        if any || storage.audit_head()?.is_some() {
            return Err(Error::Invalid(
                "the store already holds an authority (made by another `jpki init`); \
                 refusing to initialise over it"
                    .into(),
            ));
        }
        Self::init_on(dir, policy_text, passphrase, clock, hsm, &|_| {
            Ok(storage.clone())
        })
    }

    fn init_on(
        dir: &Path,
        policy_text: &str,
        passphrase: &[u8],
        clock: Arc<dyn Clock>,
        hsm: Option<&crate::hsm::HsmConfig>,
        open_store: &dyn Fn(&DataDir) -> Result<Arc<dyn Storage>>,
    ) -> Result<Authority> {
        let policy = Policy::from_toml(policy_text)?;
        // The key backend is checked before anything is made: a token that does not open, or
        // already holds keys of these names, leaves no data directory behind.
        let signers = match hsm {
            Some(config) => Signers::in_token(DataDir::new(dir), config.clone(), {
                let token = config.open()?;
                check_token_fresh(&token)?;
                token
            }),
            None => Signers::new(DataDir::new(dir), Some(passphrase.to_vec())),
        };
        if hsm.is_none() && passphrase.len() < 8 {
            return Err(Error::Invalid(
                "the key passphrase must have at least 8 characters".into(),
            ));
        }
        let created = match fs::read_dir(dir) {
            Ok(mut it) => {
                if it.next().is_some() {
                    return Err(Error::DataDirExists(dir.display().to_string()));
                }
                false
            }
            Err(_) => true,
        };
        let remove = || {
            if created {
                let _ = fs::remove_dir_all(dir);
            } else if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.flatten() {
                    let _ = if e.path().is_dir() {
                        fs::remove_dir_all(e.path())
                    } else {
                        fs::remove_file(e.path())
                    };
                }
            }
        };
        let made = Self::make_dir(
            dir,
            &policy,
            policy_text,
            &signers,
            clock.clone(),
            open_store,
        );
        let result = match made {
            Ok(store) => Authority::new(store, signers, policy, clock),
            Err(e) => {
                // Keys a token generated for this directory go with it.
                signers.discard_generated();
                Err(e)
            }
        };
        if result.is_err() {
            remove();
        }
        result
    }

    /// Makes the data directory's contents with `signers`' key backend; returns the store.
    fn make_dir(
        dir: &Path,
        policy: &Policy,
        policy_text: &str,
        signers: &Signers,
        clock: Arc<dyn Clock>,
        open_store: &dyn Fn(&DataDir) -> Result<Arc<dyn Storage>>,
    ) -> Result<Arc<dyn Storage>> {
        let layout = DataDir::new(dir);
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        for d in [dir.to_path_buf(), dir.join("keys"), dir.join("certs")] {
            b.create(&d)
                .map_err(Error::io(format!("create {}", d.display())))?;
        }
        keys::write_private(&layout.policy(), policy_text.as_bytes())?;
        if let Some(config) = signers.hsm() {
            config.write(dir)?;
        }
        let store = open_store(&layout)?;
        let now = clock.now();
        let rng = SystemRandom::new();
        let mut records = Vec::new();
        let mut counters = [0u64; 2];
        for h in Hierarchy::ALL {
            let mut next_serial = || -> Result<Vec<u8>> {
                counters[h.tag() as usize] += 1;
                match policy.ca.serials {
                    policies::policy::SerialScheme::Sequential => {
                        Ok(counter_serial(counters[h.tag() as usize]))
                    }
                    policies::policy::SerialScheme::Random => random_serial(&rng),
                }
            };
            // Root generation 1 (a key file, or a key inside the token:
            // `Signers::create_root_key`).
            let root_key = signers.create_root_key(h, 1)?;
            let root_spki = root_key.spki()?;
            let serial = next_serial()?;
            let end = validity::root_not_after(now, policy.ca.root_validity_years)?;
            let w = Window {
                serial: &serial,
                not_before: now,
                not_after: end,
            };
            let tbs = profile::root_tbs(policy, h, w, &root_spki)?;
            lint::check(
                policy,
                &tbs,
                &Expect {
                    hierarchy: h,
                    shape: Shape::Root,
                    issuer: None,
                    crl: Some(&Scope::Ca),
                },
            )?;
            let sig = policies::Signer::sign(&root_key, &tbs)?;
            let root_der = profile::assemble(&tbs, &sig)?;
            check_signature(&root_spki, &root_der)?;
            let root_serial = serial.clone();
            keys::write_private(&layout.root_cert(h, 1), pem(&root_der).as_bytes())?;
            keys::write_private(&layout.roots_bundle(h), pem(&root_der).as_bytes())?;
            records.push(CertRecord {
                hierarchy: h,
                serial,
                kind: CertKind::Root,
                holder: None,
                partition: None,
                generation: 1,
                not_before: now,
                not_after: end,
                der: root_der,
            });

            // Delegated OCSP signer (renewed later by `renew`, through the same function).
            let ocsp_key = signers.generate_key(&format!("{h}-ocsp"), &layout.key(h, "ocsp"))?;
            let serial = next_serial()?;
            let (der, end) = ocsp_signer_certificate(
                policy,
                h,
                now,
                &serial,
                &ocsp_key.spki()?,
                (&root_spki, &root_serial),
                &|tbs| policies::Signer::sign(&root_key, tbs),
            )?;
            keys::write_private(&layout.cert(h, "ocsp"), pem(&der).as_bytes())?;
            records.push(CertRecord {
                hierarchy: h,
                serial,
                kind: CertKind::OcspSigner,
                holder: None,
                partition: None,
                generation: 1,
                not_before: now,
                not_after: end,
                der,
            });
        }
        store.transact(&|t| {
            for r in &records {
                t.add_certificate(r, None)?;
            }
            for h in Hierarchy::ALL {
                t.note_serial(h, counters[h.tag() as usize])?;
            }
            let serials: Vec<String> = records
                .iter()
                .map(|r| format!("{}:{}", r.hierarchy, serial_hex(&r.serial)))
                .collect();
            storage::audit(
                t,
                now,
                "init",
                &serials.join(","),
                "roots and OCSP signers created",
            )
        })?;
        // An existing (empty) directory keeps the mode it was made with: make it private.
        say_tightened(&layout, layout.make_private()?);
        // Keep the open store: closing and reopening it would race a child process forked
        // meanwhile by another thread, which briefly shares the lock file's descriptor.
        Ok(store)
    }

    /// Opens an existing data directory on the sled engine. The passphrase is needed only for
    /// operations that sign. Applies nothing: due events wait for [`Authority::apply_due`].
    pub fn open(
        dir: &Path,
        passphrase: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        Self::open_sled_with(dir, passphrase, clock, &SledOptions::default())
    }

    /// [`Authority::open`] with the sled engine opened as `options` say (`jpki serve` bounds
    /// its page cache).
    pub fn open_sled_with(
        dir: &Path,
        passphrase: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
        options: &SledOptions,
    ) -> Result<Authority> {
        let layout = DataDir::new(dir);
        let policy_text = fs::read_to_string(layout.policy())
            .map_err(|_| Error::NoDataDir(dir.display().to_string()))?;
        // The policy is read (and checked) before the store is opened, so that a directory
        // `jpki init` did not make gets no store created in it.
        Policy::from_toml(&policy_text)?;
        say_tightened(&layout, layout.make_private()?);
        let store = SledStorage::open_with(&layout.db(), options)?;
        Self::open_on(dir, Arc::new(store), passphrase, clock)
    }

    /// Opens an existing data directory (its keys, certificates and policy) with its store on
    /// `storage` (another engine, as given to [`Authority::init_with`]).
    pub fn open_with(
        dir: &Path,
        storage: Arc<dyn Storage>,
        passphrase: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let layout = DataDir::new(dir);
        if !layout.policy().exists() {
            return Err(Error::NoDataDir(dir.display().to_string()));
        }
        say_tightened(&layout, layout.make_private()?);
        Self::open_on(dir, storage, passphrase, clock)
    }

    fn open_on(
        dir: &Path,
        store: Arc<dyn Storage>,
        passphrase: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let layout = DataDir::new(dir);
        let policy_text = fs::read_to_string(layout.policy())
            .map_err(|_| Error::NoDataDir(dir.display().to_string()))?;
        let policy = Policy::from_toml(&policy_text)?;
        let signers = Signers::open(layout, passphrase)?;
        Authority::new(store, signers, policy, clock)
            .map_err(|_| Error::NoDataDir(dir.display().to_string()))
    }
}

/// A token for a new data directory must hold none of the hierarchies' keys (another
/// `jpki init` made them): refused before anything is made.
fn check_token_fresh(token: &crate::hsm::Token) -> Result<()> {
    for h in Hierarchy::ALL {
        for label in [Signers::root_label(h, 1), format!("{h}-ocsp")] {
            if token.has(&label)? {
                return Err(Error::Hsm(format!(
                    "token `{}` already holds a key labelled `{label}` (from another `jpki \
                     init`?): use a fresh token, or remove those keys first",
                    token.label()
                )));
            }
        }
    }
    Ok(())
}

/// Says (as a warning) that a data directory was readable by others and has been made private.
fn say_tightened(dir: &DataDir, t: crate::datadir::Tightened) {
    if let Some((path, mode)) = t.first {
        tracing::warn!(
            data = %dir.dir.display(),
            entries = t.entries,
            first = %path.display(),
            mode = format!("{mode:o}"),
            "the data directory was readable by other users; made it private (0700 directories, 0600 files)"
        );
    }
}

/// Signs a TBSCertificate with the root's key.
pub(crate) type SignWith<'a> =
    dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, policies::SignError> + 'a;

/// A delegated OCSP signer certificate for `spki`, valid from `now` to the end (23:59:59
/// JST) of the day `validity.ocsp_signer_days` later, built by the profile, checked by the
/// lint, signed by the root (`sign`) and verified with the root's key before it is returned:
/// the one path for `jpki init` and for every renewal. Returns the DER and its notAfter.
pub(crate) fn ocsp_signer_certificate(
    policy: &Policy,
    h: Hierarchy,
    now: time::OffsetDateTime,
    serial: &[u8],
    spki: &[u8],
    (root_spki, root_serial): (&[u8], &[u8]),
    sign: &SignWith<'_>,
) -> Result<(Vec<u8>, time::OffsetDateTime)> {
    let root_id = profile::key_identifier(root_spki)?;
    let end = validity::end_of_day_jst(
        validity::jst_date(now) + time::Duration::days(i64::from(policy.validity.ocsp_signer_days)),
    );
    let w = Window {
        serial,
        not_before: now,
        not_after: end,
    };
    let tbs = profile::ocsp_signer_tbs(policy, h, w, spki, &root_id)?;
    lint::check(
        policy,
        &tbs,
        &Expect {
            hierarchy: h,
            shape: Shape::OcspSigner,
            issuer: Some(profile::Issuer {
                key_id: &root_id,
                serial: root_serial,
                generation: 1,
            }),
            crl: None,
        },
    )?;
    let sig = sign(&tbs)?;
    let der = profile::assemble(&tbs, &sig)?;
    check_signature(root_spki, &der)?;
    Ok((der, end))
}

/// Verifies a freshly signed certificate with the issuer's key before anyone sees it (a
/// faulty RSA signature can leak the key).
pub(crate) fn check_signature(issuer_spki: &[u8], cert_der: &[u8]) -> Result<()> {
    let (_, c) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::Invalid(format!("issued certificate does not parse: {e}")))?;
    let (_, spki) =
        <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<_>>::from_der(
            issuer_spki,
        )
        .map_err(|e| Error::Invalid(format!("issuer key: {e}")))?;
    UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.data.as_ref(),
    )
    .verify(c.tbs_certificate.as_ref(), c.signature_value.data.as_ref())
    .map_err(|_| Error::Invalid("the new signature does not verify; nothing was issued".into()))
}
