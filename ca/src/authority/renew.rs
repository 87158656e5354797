//! Infrastructure certificates that renew themselves: each hierarchy's delegated OCSP signer,
//! and what a server needs to know of every certificate it depends on (its expiry).
//!
//! ## Renewing an OCSP signer ([`Authority::renew_ocsp_signer`])
//! A new RSA key and a new certificate from the same function `jpki init` uses (profile, lint,
//! signed by the root, verified with the root's key), then:
//!
//! 1. the key (encrypted under the CA passphrase) and the certificate are written beside the
//!    ones in force as `keys/<h>-ocsp.key.new` and `certs/<h>-ocsp.pem.new` (0600, fsynced);
//! 2. one unit of work records the certificate ([`crate::storage::Tx::add_certificate`]) and
//!    the audit record `ocsp-signer-renew`; it is durable when it returns;
//! 3. the staged files are renamed over the old ones (key first) and the directories fsynced;
//!    the old key is gone — answers it signed stay verifiable through the old certificate,
//!    which travels inside each answer;
//! 4. the new signer is installed in [`crate::signers::Signers`] and handed to the revocation
//!    [`Listener`](super::Listener), through which a running `jpki serve` swaps it into its OCSP
//!    responder at once.
//!
//! A crash anywhere leaves a state [`Authority::finish_ocsp_renewal`] completes or undoes
//! before the signer is next loaded: staged files whose certificate the store holds are put in
//! place (the renewal was committed), staged files it does not hold are removed (it was not).
//! A wrong passphrase fails before anything is written (the root key is decrypted first).
//!
//! ## Compromise ([`Authority::compromise_ocsp_signer`], `jpki ocsp-signer compromise`)
//! The same replacement, with three more writes in the same unit of work: the old signer
//! certificate's status becomes revoked/keyCompromise (so it is listed on the hierarchy's
//! CA-level CRL, and OCSP answers `revoked` for it), its key goes on the blocklist (no CSR can
//! ever have it certified), and the audit record `ocsp-signer-compromise`. After the files are
//! renamed the old key exists nowhere; the listener's
//! [`Listener::ocsp_signer_compromised`](super::Listener::ocsp_signer_compromised) swaps the
//! responder's signer and drops every answer the old key signed, cached ones included, so the
//! key is never used again. Renewing is for expiry; compromise is for a key that must stop at
//! once — the consequences for relying parties are in docs/operations.md.
//!
//! ## Older root generations
//! After a rollover each older generation keeps a signer of its own, issued by its own root,
//! for the answers about what it issued (`<h>-ocsp-g<N>` files,
//! [`Authority::ocsp_signer_name`]); the same renewal makes and renews it
//! ([`Authority::renew_older_ocsp_signers_due`]) while a leaf of the generation outlives the
//! signer in force (docs/roots.md).
//!
//! ## When
//! `policy.validity.ocsp_signer_renew_days` before the signer's notAfter. The policy checks
//! that this margin is longer than an OCSP answer's life, so an answer signed by the old signer
//! just before the swap — which the responder's cache may keep serving until its nextUpdate —
//! always expires before the old signer certificate does: no answer ever carries an expired
//! signer. Renewals run one at a time in a process; a renewal never removes an answer.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use policies::{Hierarchy, Reason};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{serial_hex, Authority};
use crate::error::{Error, Result};
use crate::keys;
use crate::records::{pem, CertKind, CertRecord, State, StatusRecord};
use crate::storage;

/// The operation name officers approve for `jpki ocsp-signer compromise`
/// ([`crate::ceremony::statement`]).
pub const COMPROMISE_CEREMONY: &str = "ocsp-signer-compromise";

/// Roots are not renewed here (a root rollover is its own operation); a server warns when a
/// root has less than this left.
pub const ROOT_WARN_DAYS: i64 = 365;

/// An OCSP signer renewal that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewed {
    pub hierarchy: Hierarchy,
    /// The root generation that issued it (the newest, or an older one keeping its own).
    #[serde(default = "first_generation")]
    pub generation: u32,
    /// The new signer certificate's serial (hex).
    pub serial: String,
    /// The serial of the certificate it replaces.
    pub replaced: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

fn first_generation() -> u32 {
    1
}

/// How long a certificate a server depends on has left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// `root`, `ocsp-signer`, `operator-ca`, `pf-server`.
    pub what: String,
    /// The hierarchy, for roots and OCSP signers.
    pub hierarchy: Option<Hierarchy>,
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Days before notAfter from which it is renewed (or warned about).
    pub margin_days: i64,
}

impl Expiry {
    /// The expiry of a certificate (DER).
    pub fn of(
        what: &str,
        hierarchy: Option<Hierarchy>,
        der: &[u8],
        margin_days: i64,
    ) -> Result<Expiry> {
        let (_, c) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::Store(format!("{what} certificate does not parse: {e}")))?;
        let not_after = OffsetDateTime::from_unix_timestamp(c.validity().not_after.timestamp())
            .map_err(|e| Error::Store(format!("{what} certificate notAfter: {e}")))?;
        Ok(Expiry {
            what: what.to_owned(),
            hierarchy,
            serial: hex::encode_upper(c.raw_serial()),
            not_after,
            margin_days,
        })
    }

    /// Seconds from `now` to notAfter (negative once expired).
    pub fn seconds_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_seconds()
    }

    /// Whether `now` is within the margin (or past notAfter).
    pub fn due(&self, now: OffsetDateTime) -> bool {
        self.not_after - now <= time::Duration::days(self.margin_days)
    }

    /// `ocsp-signer signing`, `root auth`, `pf-server`: how logs and metrics name it.
    pub fn label(&self) -> String {
        match self.hierarchy {
            Some(h) => format!("{} {h}", self.what),
            None => self.what.clone(),
        }
    }
}

fn staged(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(format!("sync {}", dir.display())))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

fn der_of_pem(text: &[u8], what: &str) -> Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(text)
        .map_err(|e| Error::Store(format!("{what}: not a PEM certificate: {e}")))?;
    Ok(p.contents)
}

impl Authority {
    /// The delegated OCSP signer certificate in force for a hierarchy (DER), read from
    /// `certs/<h>-ocsp.pem` (an interrupted renewal is finished first). Needs no passphrase.
    pub fn ocsp_signer_certificate(&self, h: Hierarchy) -> Result<Vec<u8>> {
        let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.signer_certificate_locked(h)
    }

    /// [`Authority::ocsp_signer_certificate`] with the renewal lock held.
    fn signer_certificate_locked(&self, h: Hierarchy) -> Result<Vec<u8>> {
        self.finish_locked(h)?;
        let path = self.data_dir().cert(h, "ocsp");
        let text = fs::read(&path).map_err(Error::io(format!("read {}", path.display())))?;
        der_of_pem(&text, "OCSP signer certificate")
    }

    /// The file name of a root generation's delegated OCSP signer (`keys/<h>-<name>.key`,
    /// `certs/<h>-<name>.pem`, token label `<h>-<name>`): `ocsp` for the newest generation,
    /// `ocsp-g<N>` for an older generation N, which keeps a signer of its own — issued by its
    /// own root — for the answers about what it issued until the last of it expires
    /// (docs/roots.md).
    pub fn ocsp_signer_name(&self, h: Hierarchy, generation: u32) -> String {
        if self.root(h).generation == generation {
            "ocsp".into()
        } else {
            format!("ocsp-g{generation}")
        }
    }

    /// The delegated OCSP signer certificate (DER) of the file name `name`, if there is one
    /// (an interrupted renewal finished first), with the renewal lock held.
    fn named_certificate_locked(&self, h: Hierarchy, name: &str) -> Result<Option<Vec<u8>>> {
        self.finish_named_locked(h, name)?;
        let path = self.data_dir().cert(h, name);
        match fs::read(&path) {
            Ok(text) => Ok(Some(der_of_pem(&text, "OCSP signer certificate")?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", path.display()))(e)),
        }
    }

    /// The delegated OCSP signer of one root generation: [`Authority::ocsp_signer`] for the
    /// newest; for an older one its `ocsp-g<N>` signer, or `None` when it has none in force
    /// (not made yet — [`Authority::renew_ocsp_signers_due`] makes it — or revoked): its answers
    /// are then signed by its root key.
    pub fn generation_ocsp_signer(
        &self,
        h: Hierarchy,
        root: &super::Root,
    ) -> Result<Option<Arc<keys::CaSigner>>> {
        if root.generation == self.root(h).generation {
            // Until the rollover's renewal is done the signer in force is the generation
            // before's.
            let s = self.ocsp_signer(h)?;
            let by = super::rollover::signer_key_id(&s);
            return Ok((by.as_deref() == Some(root.key_id.as_slice())).then_some(s));
        }
        let name = self.ocsp_signer_name(h, root.generation);
        let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(der) = self.named_certificate_locked(h, &name)? else {
            return Ok(None);
        };
        if let Some(serial) = self.revoked_signer(h, &der)? {
            tracing::warn!(hierarchy = %h, generation = root.generation, %serial, "the OCSP signer of an older root generation is revoked: its root key signs its answers until a new signer is made");
            return Ok(None);
        }
        self.signers.ocsp_named(h, &name).map(Some)
    }

    /// When the last leaf an older root generation issued expires (OCSP signers left out:
    /// they live for the leaves), `None` when it issued none. Computed once per process
    /// ([`Authority::last_expiries`], one pass over the certificates): an older generation's
    /// set of certificates is final once a newer one issues.
    fn older_last_expiry(&self, h: Hierarchy, generation: u32) -> Result<Option<OffsetDateTime>> {
        let mut cache = self
            .older_last_expiries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if cache.is_none() {
            *cache = Some(self.last_expiries()?);
        }
        Ok(cache
            .as_ref()
            .and_then(|m| m.get(&(h, generation)).copied()))
    }

    /// The roots and OCSP signers, with their margins: the OCSP signers' is the policy's
    /// `validity.ocsp_signer_renew_days`, the roots' [`ROOT_WARN_DAYS`].
    pub fn expiries(&self) -> Result<Vec<Expiry>> {
        let mut out = Vec::new();
        for h in Hierarchy::ALL {
            // Not an expiry but a date the policy sets: the next root generation
            // (`ca.root_rollover_years` after the newest one's notBefore), due from that day.
            out.push(Expiry {
                what: "root-rollover".into(),
                hierarchy: Some(h),
                serial: serial_hex(&self.root(h).serial),
                not_after: self.rollover_due_at(h)?,
                margin_days: 0,
            });
            out.push(Expiry::of(
                "root",
                Some(h),
                &self.root(h).der,
                ROOT_WARN_DAYS,
            )?);
            out.push(Expiry::of(
                "ocsp-signer",
                Some(h),
                &self.ocsp_signer_certificate(h)?,
                i64::from(self.policy.validity.ocsp_signer_renew_days()),
            )?);
        }
        Ok(out)
    }

    /// The hex serial of the OCSP signer certificate `der` if the store holds it as revoked.
    pub(super) fn revoked_signer(&self, h: Hierarchy, der: &[u8]) -> Result<Option<String>> {
        let serial = Expiry::of("ocsp-signer", Some(h), der, 0)?.serial;
        let Some(record) = self
            .storage
            .certificate(h, &super::parse_serial(&serial)?)?
        else {
            return Ok(None);
        };
        Ok((self.status_of(&record)?.state == State::Revoked).then_some(serial))
    }

    /// Renews every OCSP signer that is within its margin, or whose certificate is revoked
    /// (files restored from before a compromise), which is what `jpki serve`'s timer and
    /// `jpki ocsp-signer renew --if-due` run. Returns the renewals made.
    pub fn renew_ocsp_signers_due(&self) -> Result<Vec<Renewed>> {
        let now = self.clock.now();
        let mut done = Vec::new();
        let margin = i64::from(self.policy.validity.ocsp_signer_renew_days());
        for h in Hierarchy::ALL {
            let der = self.ocsp_signer_certificate(h)?;
            let e = Expiry::of("ocsp-signer", Some(h), &der, margin)?;
            // A signer issued by an older root generation is replaced too: the delegated
            // signer always belongs to the newest generation (older ones sign their own
            // answers, docs/roots.md).
            let newest = self.root(h).key_id.clone();
            let older = super::rollover::authority_key_id(&der).is_some_and(|(k, _)| k != newest);
            if e.due(now) || older || self.revoked_signer(h, &der)?.is_some() {
                done.push(self.renew_ocsp_signer(h)?);
            }
            done.extend(self.renew_older_ocsp_signers_due(h)?);
        }
        Ok(done)
    }

    /// Renews (or makes) the delegated OCSP signer of every older root generation of a
    /// hierarchy that needs one: its root unexpired, a leaf it issued outliving the signer in
    /// force, and that signer within its margin (or missing, or revoked). Each is issued by its
    /// own generation's root ([`Authority::renew_generation_ocsp_signer`]).
    pub fn renew_older_ocsp_signers_due(&self, h: Hierarchy) -> Result<Vec<Renewed>> {
        let now = self.clock.now();
        let margin = i64::from(self.policy.validity.ocsp_signer_renew_days());
        let mut done = Vec::new();
        // Every older generation whose root is unexpired and whose leaves are not all
        // expired keeps a signer of its own, renewed under its own root within the same
        // margin, as long as a leaf outlives the signer in force.
        let roots = self.roots(h);
        for root in roots.iter().take(roots.len().saturating_sub(1)) {
            if root.not_after <= now {
                continue;
            }
            let name = self.ocsp_signer_name(h, root.generation);
            let der = {
                let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
                self.named_certificate_locked(h, &name)?
            };
            let in_force = match &der {
                Some(der) if self.revoked_signer(h, der)?.is_none() => {
                    Some(Expiry::of("ocsp-signer", Some(h), der, margin)?)
                }
                _ => None,
            };
            if in_force.as_ref().is_some_and(|e| !e.due(now)) {
                continue;
            }
            let Some(last) = self.older_last_expiry(h, root.generation)? else {
                continue;
            };
            // Covered until the signer in force expires (or now, if it has).
            let needed = in_force.as_ref().map_or(now, |e| e.not_after.max(now));
            if last <= needed {
                continue;
            }
            done.push(self.replace_ocsp_signer_of(h, Arc::clone(root), None)?);
        }
        Ok(done)
    }

    /// Renews a hierarchy's delegated OCSP signer now (see the module docs). Needs the CA
    /// passphrase; a wrong one changes nothing.
    pub fn renew_ocsp_signer(&self, h: Hierarchy) -> Result<Renewed> {
        self.replace_ocsp_signer(h, None)
    }

    /// Renews (or makes) the delegated OCSP signer of one root generation, issued by that
    /// generation's root key: the newest's is [`Authority::renew_ocsp_signer`]; an older one's
    /// lives in `ocsp-g<N>` files ([`Authority::ocsp_signer_name`]).
    pub fn renew_generation_ocsp_signer(&self, h: Hierarchy, generation: u32) -> Result<Renewed> {
        let root = self
            .roots(h)
            .into_iter()
            .find(|r| r.generation == generation)
            .ok_or_else(|| {
                Error::Invalid(format!("the {h} root has no generation {generation}"))
            })?;
        self.replace_ocsp_signer_of(h, root, None)
    }

    /// A hierarchy's delegated OCSP signer key is compromised (or suspected to be): the signer
    /// certificate is revoked (keyCompromise) and its key blocked for ever, and a new signer is
    /// put in force — in one unit of work, as a renewal (see the module docs, "Compromise").
    /// A key ceremony under dual control: `approvals` must hold two distinct ca-officers'
    /// approvals of `ocsp-signer-compromise` on the hierarchy ([`crate::ceremony`]), who are
    /// named in its audit record; anything less is refused (and audited) before anything is
    /// made. Needs the CA passphrase (or the token); a wrong one changes nothing.
    pub fn compromise_ocsp_signer(
        &self,
        h: Hierarchy,
        approvals: &[crate::ceremony::Approval],
    ) -> Result<Renewed> {
        let quorum = crate::ceremony::require_two(
            self.storage.as_ref(),
            self.clock.now(),
            COMPROMISE_CEREMONY,
            &h.to_string(),
            approvals,
        )?;
        self.replace_ocsp_signer(h, Some(&quorum))
    }

    /// The newest generation's signer: `quorum`: a compromise, approved by these officers;
    /// `None`: a renewal.
    fn replace_ocsp_signer(
        &self,
        h: Hierarchy,
        quorum: Option<&crate::ceremony::Quorum>,
    ) -> Result<Renewed> {
        self.replace_ocsp_signer_of(h, self.root(h), quorum)
    }

    /// Replaces the delegated OCSP signer of the root generation `issuer` (one made for the
    /// first time when an older generation has none yet).
    fn replace_ocsp_signer_of(
        &self,
        h: Hierarchy,
        issuer: Arc<super::Root>,
        quorum: Option<&crate::ceremony::Quorum>,
    ) -> Result<Renewed> {
        let compromised = quorum.is_some();
        let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        let name = self.ocsp_signer_name(h, issuer.generation);
        let newest = name == "ocsp";
        let old = if newest {
            Some(self.signer_certificate_locked(h)?)
        } else {
            self.named_certificate_locked(h, &name)?
        };
        let old = match (old, compromised) {
            (Some(old), _) => Some(old),
            (None, false) => None,
            (None, true) => {
                return Err(Error::Invalid(format!(
                    "the {h} root generation {} has no OCSP signer to revoke",
                    issuer.generation
                )))
            }
        };
        let replaced = match &old {
            Some(old) => Expiry::of("ocsp-signer", Some(h), old, 0)?.serial,
            None => "none".into(),
        };
        let old_spki = match &old {
            Some(old) => super::spki_of(old)?,
            None => Vec::new(),
        };
        // The record of the signer being replaced (its status is set on compromise).
        let old_record = if compromised {
            let serial = super::parse_serial(&replaced)?;
            let r = self.storage.certificate(h, &serial)?.ok_or_else(|| {
                Error::Store(format!(
                    "the OCSP signer {replaced} in force is not in the store"
                ))
            })?;
            Some((r, storage::fingerprint(&old_spki)))
        } else {
            None
        };
        // The root key first: a wrong passphrase stops here, before anything is written.
        let root = self.generation_signer(h, &issuer)?;
        let now = self.clock.now();
        let layout = self.data_dir();
        let (key_path, cert_path) = (layout.key(h, &name), layout.cert(h, &name));
        let (key_new, cert_new) = (staged(&key_path), staged(&cert_path));
        remove_if_present(&key_new)?;
        remove_if_present(&cert_new)?;
        // The new key where the CA keeps its keys: the staged file, or the token.
        let key_label = format!("{h}-{name}");
        let key = self.signers.generate_key(&key_label, &key_new)?;
        let key_spki = key.spki()?;
        let (serial, counter) = self.new_serial(h)?;
        let made = super::init::ocsp_signer_certificate(
            &self.policy,
            h,
            now,
            &serial,
            &key_spki,
            (&issuer.spki, &issuer.serial),
            &|tbs| policies::Signer::sign(root.as_ref(), tbs),
        );
        let (der, not_after) = match made {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&key_new);
                let _ = self.signers.retire_others(&key_label, &old_spki);
                return Err(e);
            }
        };
        keys::write_private(&cert_new, pem(&der).as_bytes())?;
        let record = CertRecord {
            hierarchy: h,
            serial: serial.clone(),
            kind: CertKind::OcspSigner,
            holder: None,
            partition: None,
            generation: issuer.generation,
            not_before: now,
            not_after,
            der: der.clone(),
        };
        let hexs = serial_hex(&serial);
        let of_generation = if newest {
            String::new()
        } else {
            format!("; root generation {}", issuer.generation)
        };
        let committed = self.storage.transact(&|t| {
            t.add_certificate(&record, None)?;
            if counter > 0 {
                t.note_serial(h, counter)?;
            }
            if let Some((r, fp)) = &old_record {
                let st = t
                    .status(h, &r.serial)?
                    .ok_or_else(|| Error::Store("certificate without status".into()))?;
                if st.state != State::Revoked {
                    t.change_status(
                        r,
                        &StatusRecord {
                            state: State::Revoked,
                            reason: Some(Reason::KeyCompromise),
                            since: Some(now),
                            invalidity: None,
                        },
                        now,
                    )?;
                }
                t.block_key(fp)?;
                storage::audit(
                    t,
                    now,
                    "ocsp-signer-compromise",
                    &format!("{h}:{replaced}"),
                    &format!(
                        "revoked keyCompromise, key {} blocked; {}",
                        hex::encode(fp),
                        quorum.map(|q| q.audit_detail()).unwrap_or_default()
                    ),
                )?;
            }
            storage::audit(
                t,
                now,
                "ocsp-signer-renew",
                &format!("{h}:{hexs}"),
                &format!(
                    "replaces {replaced}; notAfter {}{of_generation}",
                    not_after.unix_timestamp()
                ),
            )
        });
        if let Err(e) = committed {
            let _ = fs::remove_file(&key_new);
            let _ = fs::remove_file(&cert_new);
            let _ = self.signers.retire_others(&key_label, &old_spki);
            // A serial another CA node took: the counter now follows the store's, so that
            // running the renewal again gets a fresh serial.
            self.serial_taken(&e)?;
            return Err(e);
        }
        self.promote(&key_new, &key_path, &cert_new, &cert_path)?;
        let signer = Arc::new(key.with_certificate(der));
        if newest {
            self.signers.set_ocsp(h, Arc::clone(&signer));
        } else {
            self.signers.set_ocsp_named(h, &name, Arc::clone(&signer));
        }
        if let Some(l) = self.listener.get() {
            match &old_record {
                Some((r, _)) => {
                    l.ocsp_signer_compromised(h, signer);
                    // The revoked signer goes on the hierarchy's CA-level CRL.
                    l.revoked(h, r.generation, &r.serial, &policies::profile::Scope::Ca);
                }
                None => l.ocsp_signer_renewed(h, signer),
            }
        }
        // In a token the replaced key is destroyed now (a file key was replaced by the rename).
        if let Err(e) = self.signers.retire_others(&key_label, &key_spki) {
            tracing::error!(error = %e, hierarchy = %h, "the replaced OCSP signer key could not be destroyed in the token");
        }
        if compromised {
            tracing::warn!(hierarchy = %h, serial = %hexs, %replaced, "compromised OCSP signer revoked and replaced");
        } else {
            tracing::info!(hierarchy = %h, generation = issuer.generation, serial = %hexs, %replaced, "OCSP signer renewed");
        }
        Ok(Renewed {
            hierarchy: h,
            generation: issuer.generation,
            serial: hexs,
            replaced,
            not_after,
        })
    }

    fn promote(&self, key_new: &Path, key: &Path, cert_new: &Path, cert: &Path) -> Result<()> {
        // No staged key file when the key is in a token.
        if key_new.exists() {
            fs::rename(key_new, key).map_err(Error::io(format!("rename {}", key_new.display())))?;
            sync_dir(key)?;
        }
        fs::rename(cert_new, cert).map_err(Error::io(format!("rename {}", cert_new.display())))?;
        sync_dir(cert)
    }

    /// Completes or undoes a renewal a crash interrupted (see the module docs): staged files
    /// whose certificate the store holds are put in place, others removed. Cheap when there is
    /// nothing staged (two failed `stat`s). Takes the renewal lock, so it never mistakes a
    /// renewal in progress in this process for an interrupted one.
    pub fn finish_ocsp_renewal(&self, h: Hierarchy) -> Result<()> {
        let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.finish_locked(h)
    }

    pub(super) fn finish_locked(&self, h: Hierarchy) -> Result<()> {
        self.finish_named_locked(h, "ocsp")
    }

    /// [`Authority::finish_locked`] for the signer files named `name` (`ocsp`, `ocsp-g<N>`).
    fn finish_named_locked(&self, h: Hierarchy, name: &str) -> Result<()> {
        let layout = self.data_dir();
        let (key_path, cert_path) = (layout.key(h, name), layout.cert(h, name));
        let (key_new, cert_new) = (staged(&key_path), staged(&cert_path));
        let (has_key, has_cert) = (key_new.exists(), cert_new.exists());
        if !has_key && !has_cert {
            return Ok(());
        }
        let committed = if has_cert {
            let text =
                fs::read(&cert_new).map_err(Error::io(format!("read {}", cert_new.display())))?;
            match der_of_pem(&text, "staged OCSP signer certificate") {
                Ok(der) => {
                    let (_, c) = x509_parser::parse_x509_certificate(&der)
                        .map_err(|e| Error::Store(format!("staged OCSP signer: {e}")))?;
                    let serial = super::parse_serial(&hex::encode(c.raw_serial()))?;
                    self.storage
                        .certificate(h, &serial)?
                        .is_some_and(|r| r.der == der)
                }
                Err(_) => false,
            }
        } else {
            false
        };
        if committed {
            if has_key {
                fs::rename(&key_new, &key_path)
                    .map_err(Error::io(format!("rename {}", key_new.display())))?;
                sync_dir(&key_path)?;
            }
            fs::rename(&cert_new, &cert_path)
                .map_err(Error::io(format!("rename {}", cert_new.display())))?;
            sync_dir(&cert_path)?;
            tracing::warn!(hierarchy = %h, "finished an interrupted OCSP signer renewal");
        } else {
            remove_if_present(&key_new)?;
            remove_if_present(&cert_new)?;
            tracing::warn!(hierarchy = %h, "removed an uncommitted OCSP signer renewal");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceremony::testing::two_approvals;
    use crate::clock::FixedClock;

    fn init(dir: &Path, at: OffsetDateTime, pass: &[u8]) -> Authority {
        Authority::init(
            &dir.join("data"),
            policies::policy::DEFAULT_POLICY,
            pass,
            Arc::new(FixedClock::new(at)),
        )
        .unwrap()
    }

    fn open(dir: &Path, at: OffsetDateTime, pass: &[u8]) -> Authority {
        Authority::open(
            &dir.join("data"),
            Some(pass.to_vec()),
            Arc::new(FixedClock::new(at)),
        )
        .unwrap()
    }

    fn files(a: &Authority) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for sub in ["keys", "certs"] {
            for e in fs::read_dir(a.dir().join(sub)).unwrap() {
                let p = e.unwrap().path();
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn renewal_replaces_the_signer_durably_and_is_audited() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let a = init(tmp.path(), t0, b"renew passphrase");
        let e = &a.expiries().unwrap();
        let signer = e.iter().find(|e| e.what == "ocsp-signer").unwrap();
        assert!(!signer.due(t0));
        assert_eq!(signer.margin_days, 30);
        assert!(a.renew_ocsp_signers_due().unwrap().is_empty());
        drop(a);

        // 340 days later the signing hierarchy's signer is within the 30-day margin.
        let t1 = t0 + time::Duration::days(340);
        let a = open(tmp.path(), t1, b"renew passphrase");
        let old = a.ocsp_signer(Hierarchy::Signing).unwrap();
        let done = a.renew_ocsp_signers_due().unwrap();
        assert_eq!(done.len(), 2);
        let new = a.ocsp_signer(Hierarchy::Signing).unwrap();
        assert_ne!(
            policies::Signer::certificate(old.as_ref()),
            policies::Signer::certificate(new.as_ref())
        );
        let r = &done[0];
        assert_eq!(
            r.replaced,
            Expiry::of("x", None, policies::Signer::certificate(old.as_ref()), 0)
                .unwrap()
                .serial
        );
        assert!(r.not_after > t1 + time::Duration::days(364));
        for (p, _) in files(&a) {
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                p.display()
            );
            assert!(!p.to_string_lossy().ends_with(".new"));
        }
        let audit = a.audit_records().unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|r| r.action == "ocsp-signer-renew")
                .count(),
            2
        );
        a.audit_verify().unwrap();
        a.check_indexes().unwrap();
        drop(a);

        // Reopened: the new signer is the one on disk, and its key matches.
        let a = open(tmp.path(), t1, b"renew passphrase");
        let again = a.ocsp_signer(Hierarchy::Signing).unwrap();
        assert_eq!(
            policies::Signer::certificate(again.as_ref()),
            policies::Signer::certificate(new.as_ref())
        );
        assert!(a.renew_ocsp_signers_due().unwrap().is_empty());
    }

    #[test]
    fn a_wrong_passphrase_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let a = init(tmp.path(), t0, b"right passphrase");
        let before = (files(&a), a.audit_records().unwrap().len());
        drop(a);
        let a = open(tmp.path(), t0, b"wrong passphrase");
        let e = a.renew_ocsp_signer(Hierarchy::Auth).unwrap_err();
        assert!(matches!(e, Error::WrongPassphrase(_)), "{e}");
        assert_eq!((files(&a), a.audit_records().unwrap().len()), before);
    }

    #[test]
    fn an_interrupted_renewal_is_finished_or_undone() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let a = init(tmp.path(), t0, b"crash passphrase");
        let h = Hierarchy::Auth;
        let (key, cert) = (a.data_dir().key(h, "ocsp"), a.data_dir().cert(h, "ocsp"));
        // Staged but never committed (a crash before the unit of work): removed.
        let before = files(&a);
        fs::copy(&key, staged(&key)).unwrap();
        fs::copy(&cert, staged(&cert)).unwrap();
        let other = a.ocsp_signer_certificate(Hierarchy::Signing).unwrap();
        fs::write(staged(&cert), pem(&other)).unwrap();
        a.finish_ocsp_renewal(h).unwrap();
        assert_eq!(files(&a), before);
        // Committed, crash after the key was renamed and before the certificate was: the
        // certificate is put in place and key and certificate match again.
        let r = a.renew_ocsp_signer(h).unwrap();
        let (k, c) = (fs::read(&key).unwrap(), fs::read(&cert).unwrap());
        fs::write(staged(&cert), &c).unwrap();
        let old = before.iter().find(|(p, _)| *p == cert).unwrap().1.clone();
        fs::write(&cert, old).unwrap();
        drop(a);
        let a = open(tmp.path(), t0, b"crash passphrase");
        let s = a.ocsp_signer(h).unwrap();
        assert_eq!((fs::read(&key).unwrap(), fs::read(&cert).unwrap()), (k, c));
        assert_eq!(
            Expiry::of("x", None, policies::Signer::certificate(s.as_ref()), 0)
                .unwrap()
                .serial,
            r.serial
        );
    }

    #[test]
    fn a_compromised_signer_is_revoked_blocked_and_replaced_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let a = init(tmp.path(), t0, b"compromise passphrase");
        let h = Hierarchy::Auth;
        let old = a.ocsp_signer_certificate(h).unwrap();
        let old_serial = Expiry::of("x", None, &old, 0).unwrap().serial;
        let other = a.ocsp_signer_certificate(Hierarchy::Signing).unwrap();
        drop(a);

        // A wrong passphrase changes nothing.
        let a = open(tmp.path(), t0, b"wrong passphrase");
        let approvals = two_approvals(&a, COMPROMISE_CEREMONY, "auth");
        let before = (files(&a), a.audit_records().unwrap().len());
        let e = a.compromise_ocsp_signer(h, &approvals).unwrap_err();
        assert!(matches!(e, Error::WrongPassphrase(_)), "{e}");
        assert_eq!((files(&a), a.audit_records().unwrap().len()), before);
        let serial = crate::authority::parse_serial(&old_serial).unwrap();
        let rec = a.storage().certificate(h, &serial).unwrap().unwrap();
        assert_eq!(a.status_of(&rec).unwrap().state, State::Good);
        drop(a);

        let a = open(tmp.path(), t0, b"compromise passphrase");
        // One officer is not enough: refused (and audited) before anything is made.
        let before = files(&a);
        let e = a.compromise_ocsp_signer(h, &approvals[..1]).unwrap_err();
        assert_eq!(e.code(), "dual_control", "{e}");
        assert_eq!(files(&a), before);
        let r = a.compromise_ocsp_signer(h, &approvals).unwrap();
        assert_eq!(r.replaced, old_serial);
        assert_ne!(r.serial, old_serial);
        // The old certificate is revoked for keyCompromise, its key blocked for ever.
        let st = a.status_of(&rec).unwrap();
        assert_eq!(
            (st.state, st.reason),
            (State::Revoked, Some(Reason::KeyCompromise))
        );
        let fp = storage::fingerprint(&crate::records::spki_of(&old).unwrap());
        assert!(a.storage().key_blocked(&fp).unwrap());
        // The new signer is in force, in memory and on disk; the other hierarchy's is untouched.
        let now = a.ocsp_signer(h).unwrap();
        let in_force = policies::Signer::certificate(now.as_ref()).to_vec();
        assert_ne!(in_force, old);
        assert_eq!(a.ocsp_signer_certificate(h).unwrap(), in_force);
        assert_eq!(
            a.ocsp_signer_certificate(Hierarchy::Signing).unwrap(),
            other
        );
        let actions: Vec<String> = a
            .audit_records()
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert!(actions.contains(&"ocsp-signer-compromise".to_owned()));
        // Both officers are named in the ceremony's record.
        let record = a
            .audit_records()
            .unwrap()
            .into_iter()
            .find(|r| r.action == "ocsp-signer-compromise")
            .unwrap();
        assert!(
            record.detail.contains("dual control: officer:OF")
                && record.detail.contains("(ceremony-a)")
                && record.detail.contains("(ceremony-b)"),
            "{}",
            record.detail
        );
        a.audit_verify().unwrap();
        a.check_indexes().unwrap();
        // Neither signer can be revoked or held as a leaf.
        for s in [&old_serial, &r.serial] {
            let serial = crate::authority::parse_serial(s).unwrap();
            assert!(matches!(
                a.hold(&serial, Some(h)).unwrap_err(),
                Error::NotHolderCertificate(_)
            ));
        }
        drop(a);
        // Reopened: the replacement, never the revoked key.
        let a = open(tmp.path(), t0, b"compromise passphrase");
        assert_eq!(
            policies::Signer::certificate(a.ocsp_signer(h).unwrap().as_ref()),
            in_force.as_slice()
        );
    }

    #[test]
    fn a_signer_restored_from_before_its_compromise_is_never_used() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let a = init(tmp.path(), t0, b"restore passphrase");
        let h = Hierarchy::Signing;
        let (key, cert) = (a.data_dir().key(h, "ocsp"), a.data_dir().cert(h, "ocsp"));
        let backup = (fs::read(&key).unwrap(), fs::read(&cert).unwrap());
        let approvals = two_approvals(&a, COMPROMISE_CEREMONY, "signing");
        let r = a.compromise_ocsp_signer(h, &approvals).unwrap();
        drop(a);
        // The key files come back from a backup taken before the compromise.
        fs::write(&key, &backup.0).unwrap();
        fs::write(&cert, &backup.1).unwrap();
        let a = open(tmp.path(), t0, b"restore passphrase");
        let e = a.ocsp_signer(h).err().expect("a revoked signer is refused");
        assert!(e.to_string().contains(&r.replaced), "{e}");
        assert!(e.to_string().contains("never used again"), "{e}");
        // What `jpki serve` runs at start replaces it (and only it).
        let done = a.renew_ocsp_signers_due().unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].hierarchy, &done[0].replaced), (h, &r.replaced));
        assert!(a.ocsp_signer(h).is_ok());
    }
}
