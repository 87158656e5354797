//! Root generations and their rollover (`jpki root rollover --hierarchy signing|auth`).
//!
//! The real service introduces a new root key every four years and gives each root ten
//! years, under one unchanged DN (reference §1: authca01/02/03 …), so generations overlap and
//! a verifier picks the issuer by key. jpki does the same:
//!
//! 1. the passphrase is proved first by decrypting the newest generation's key: a wrong one
//!    fails before anything is written;
//! 2. a new RSA key is made ([`crate::signers::Signers::create_root_key`], the one place a
//!    root key is created after `jpki init`) and stored encrypted as `keys/<h>-root-g<N>.key`;
//!    a key file left by an earlier rollover that never committed (no root record names it) is
//!    replaced;
//! 3. the new self-signed root: the same DN and profile as every root (`profile::root_tbs`,
//!    linted as `Shape::Root`), the next serial of the hierarchy's counter, valid from now to
//!    23:59:59 JST on the day before the `ca.root_validity_years` anniversary, verified with
//!    its own key before anyone sees it;
//! 4. one unit of work records it ([`crate::storage::Tx::add_certificate`], kind `root`) with
//!    the serial counter and the audit record `root-rollover`; the store's root records *are*
//!    the generation list (ordered by notBefore, then serial), so nothing else needs to be
//!    durable for the generation to exist;
//! 5. `certs/<h>-root-g<N>.pem` and the bundle `certs/<h>-roots.pem` (every generation) are
//!    written, and the authority issues every later leaf under the new generation.
//!
//! Older generations are not retired: their keys stay (each one keeps signing what it issued
//! — see docs/roots.md for which generation signs what), their certificates stay trust
//! anchors until they expire, and the leaves they issued keep naming them in their
//! authorityKeyIdentifier (key id, issuer name, issuer serial).

use std::fs;

use policies::lint::{self, Expect, Shape};
use policies::profile::{self, Scope, Window};
use policies::{validity, Hierarchy};
use serde::Serialize;
use time::OffsetDateTime;

use super::{serial_hex, Authority, Root};
use crate::error::{Error, Result};
use crate::keys;
use crate::records::{pem, CertKind, CertRecord};
use crate::storage;

/// The dual-control operation name of a root rollover ([`crate::ceremony`]).
pub const ROLLOVER_CEREMONY: &str = "root-rollover";

/// Default years between root generations when the policy does not say (reference §1).
pub const DEFAULT_ROLLOVER_YEARS: u32 = 4;

/// One generation of a root, as `jpki root` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub hierarchy: Hierarchy,
    pub generation: u32,
    /// Upper-case hex.
    pub serial: String,
    /// The subjectKeyIdentifier (leaves name it in their authorityKeyIdentifier), hex.
    pub key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The newest generation issues new leaves.
    pub issuing: bool,
    /// Past its notAfter (no longer a trust anchor).
    pub expired: bool,
    /// The key file (relative to the data directory).
    pub key_file: String,
    /// The root certificate, PEM.
    pub pem: String,
}

/// A rollover that happened.
#[derive(Debug, Clone, Serialize)]
pub struct RolledOver {
    pub hierarchy: Hierarchy,
    pub generation: u32,
    pub serial: String,
    pub key_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The new root certificate's file.
    pub certificate: String,
}

impl Authority {
    /// Every generation of a hierarchy's root, oldest first.
    pub fn generations(&self, h: Hierarchy) -> Vec<Generation> {
        let now = self.clock.now();
        let roots = self.roots(h);
        let newest = roots.last().map(|r| r.generation);
        roots
            .iter()
            .map(|r| Generation {
                hierarchy: h,
                generation: r.generation,
                serial: serial_hex(&r.serial),
                key_id: hex::encode_upper(&r.key_id),
                not_before: r.not_before,
                not_after: r.not_after,
                issuing: Some(r.generation) == newest,
                expired: r.not_after < now,
                key_file: relative(self, &self.data_dir().root_key(h, r.generation)),
                pem: pem(&r.der),
            })
            .collect()
    }

    /// When the policy wants the next generation of a hierarchy's root: the newest
    /// generation's notBefore plus `ca.root_rollover_years` (default 4).
    pub fn rollover_due_at(&self, h: Hierarchy) -> Result<OffsetDateTime> {
        let newest = self.root(h);
        let years = self
            .policy
            .ca
            .root_rollover_years
            .unwrap_or(DEFAULT_ROLLOVER_YEARS);
        let d = validity::jst_date(newest.not_before);
        let year = d.year() + i32::try_from(years).unwrap_or(i32::MAX - d.year());
        let date = d
            .replace_year(year)
            .or_else(|_| time::Date::from_calendar_date(year, time::Month::March, 1))
            .map_err(|e| Error::Invalid(format!("rollover date: {e}")))?;
        Ok(date.midnight().assume_offset(validity::JST))
    }

    /// Makes a new generation of a hierarchy's root (module docs). A key ceremony under dual
    /// control: `approvals` must hold two distinct ca-officers' approvals of
    /// [`ROLLOVER_CEREMONY`] on the hierarchy ([`crate::ceremony`]), who are named in the
    /// `root-rollover` audit record; anything less is refused (and audited). A wrong or
    /// missing passphrase (or token PIN) fails before anything changes.
    pub fn rollover_root(
        &self,
        h: Hierarchy,
        approvals: &[crate::ceremony::Approval],
    ) -> Result<RolledOver> {
        let quorum = crate::ceremony::require_two(
            self.storage.as_ref(),
            self.clock.now(),
            ROLLOVER_CEREMONY,
            &h.to_string(),
            approvals,
        )?;
        let previous = self.root(h);
        let out = self.rollover_locked(h, &quorum)?;
        // A running server (the rollover came through its admin socket) signs the new
        // generation's CRLs and OCSP answers from now on, without a restart.
        if let Some(l) = self.listener.get() {
            self.tell_server(l.as_ref(), h, &previous);
        }
        // The generation before keeps a delegated OCSP signer of its own, issued by its own
        // root, for the answers about what it issued (`ocsp-g<N>` files); the signer in force
        // (`ocsp` files) moves to the new generation. Should either fail, the rollover stands
        // and `renew_ocsp_signers_due` (every `jpki serve` start and timer) makes what is
        // missing; meanwhile the older generation's root key signs its answers.
        if let Err(e) = self.renew_generation_ocsp_signer(h, previous.generation) {
            tracing::warn!(hierarchy = %h, generation = previous.generation, error = %e, "root rollover: the previous generation's own OCSP signer was not made yet; `jpki serve` makes it");
        }
        if let Err(e) = self.renew_ocsp_signer(h) {
            tracing::warn!(hierarchy = %h, error = %e, "root rollover: the OCSP signer of the new generation was not made yet; `jpki ocsp-signer renew` or `jpki serve` makes it");
        }
        Ok(out)
    }

    /// Hands the new generation (the newest now) to a running server's listener, with the
    /// expiry of the last certificate the generation before it issued. The rollover stands
    /// whatever happens here: a failure is logged, and the next start of `jpki serve` builds
    /// its publishers from the store's generations.
    fn tell_server(&self, l: &dyn super::Listener, h: Hierarchy, previous: &std::sync::Arc<Root>) {
        let root = self.root(h);
        let keys = self
            .generation_signer(h, &root)
            .and_then(|s| Ok((s, self.generation_signer(h, previous)?)));
        let (signer, previous_signer) = match keys {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(hierarchy = %h, error = %e, "root rollover: the running server could not load the new root key; restart jpki serve");
                return;
            }
        };
        let last = match self.last_expiries() {
            Ok(m) => m.get(&(h, previous.generation)).copied(),
            Err(e) => {
                tracing::error!(hierarchy = %h, error = %e, "root rollover: the last expiry of the previous generation could not be read; its CRLs are published until its root expires");
                None
            }
        };
        l.root_generation_added(&super::RootAdded {
            hierarchy: h,
            root,
            signer,
            previous: std::sync::Arc::clone(previous),
            previous_signer,
            previous_last_expiry: last.unwrap_or(previous.not_after),
        });
    }

    /// The audit trail's next sequence number: where [`Authority::adopt_rolled_roots`] starts
    /// looking for rollovers made by another process.
    pub fn audit_cursor(&self) -> Result<u64> {
        Ok(self.storage.audit_head()?.map_or(0, |h| h.seq + 1))
    }

    /// Takes up root generations that another process added to the same store (a second CA
    /// node on one PostgreSQL store, or `jpki root rollover` run on the store by another
    /// path while this server runs): reads the audit records from `cursor` on (only what was
    /// written since the last look — cheap), and for each `root-rollover` it does not know
    /// reads that root's record by serial, makes it this process's newest generation (leaves
    /// are issued under it from now on), writes its certificate and the roots bundle into this
    /// data directory, and tells a running server as a rollover through the admin socket does
    /// (its CRLs and OCSP answers; the generation before keeps its own OCSP signer, made by
    /// the next [`Authority::renew_ocsp_signers_due`]). The new root's key must be reachable
    /// here — the same data directory or the same token; until it is, the generation is not
    /// taken up (an error naming it; `cursor` stays, so the next look tries again). Moves
    /// `cursor` past what was read.
    /// Returns the generations taken up.
    pub fn adopt_rolled_roots(&self, cursor: &mut u64) -> Result<Vec<(Hierarchy, u32)>> {
        const PAGE: usize = 1024;
        let mut adopted = Vec::new();
        loop {
            let page = self.storage.audit_records(*cursor, PAGE)?;
            let Some(next) = page.last().map(|r| r.seq + 1) else {
                return Ok(adopted);
            };
            // The cursor moves once the page is taken up: a failure is retried from it (what
            // was taken up already is known and skipped).
            for r in page.iter().filter(|r| r.action == "root-rollover") {
                let Some((h, serial)) = r.subject.split_once(':') else {
                    continue;
                };
                let (Ok(h), Ok(serial)) = (h.parse::<Hierarchy>(), super::parse_serial(serial))
                else {
                    continue;
                };
                if self.roots(h).iter().any(|g| g.serial == serial) {
                    continue;
                }
                let record = self.storage.certificate(h, &serial)?.ok_or_else(|| {
                    Error::Store(format!(
                        "the audit trail names root {} of {h}, which the store does not hold",
                        r.subject
                    ))
                })?;
                if record.kind != CertKind::Root {
                    continue;
                }
                let previous = self.root(h);
                let generation = previous.generation + 1;
                let spki = super::spki_of(&record.der)?;
                let root = std::sync::Arc::new(Root {
                    key_id: profile::key_identifier(&spki)?,
                    spki,
                    der: record.der,
                    serial: record.serial,
                    generation,
                    not_before: record.not_before,
                    not_after: record.not_after,
                });
                // Not taken up before its key is reachable here (leaves would be issued under
                // a generation this process cannot sign for): the next look tries again.
                self.generation_signer(h, &root).map_err(|e| {
                    Error::Invalid(format!(
                        "generation {generation} of the {h} root was made by another process, \
                         but its key is not reachable here ({e}): bring the key (or use the \
                         same token); it is taken up at the next look"
                    ))
                })?;
                {
                    let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
                    let cert_path = self.data_dir().root_cert(h, generation);
                    remove_if_present(&cert_path)?;
                    keys::write_private(&cert_path, pem(&root.der).as_bytes())?;
                    self.roots
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(h)
                        .or_default()
                        .push(root);
                    *self
                        .older_last_expiries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = None;
                    self.write_roots_bundle(h)?;
                    // The other process drew serials (the root's, its OCSP signers'): this
                    // one's sequential counter moves past them before it issues again.
                    let drawn = self.storage.serial_counter(h)?;
                    self.counters[h.tag() as usize]
                        .fetch_max(drawn, std::sync::atomic::Ordering::SeqCst);
                }
                tracing::warn!(hierarchy = %h, generation, serial = %r.subject,
                    "a root rollover made by another process: new leaves are issued under the new generation");
                if let Some(l) = self.listener.get() {
                    self.tell_server(l.as_ref(), h, &previous);
                    // Sharing this data directory, the other process made each generation's
                    // own OCSP signer: read afresh and handed over. Otherwise the next
                    // `renew_ocsp_signers_due` makes them here.
                    self.signers.forget_ocsp(h);
                    for g in [previous.clone(), self.root(h)] {
                        match self.generation_ocsp_signer(h, &g) {
                            Ok(Some(s)) => l.ocsp_signer_renewed(h, s),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(hierarchy = %h, generation = g.generation, error = %e, "the OCSP signer of a root generation could not be read; the certificate watch makes one")
                            }
                        }
                    }
                }
                adopted.push((h, generation));
            }
            *cursor = next;
        }
    }

    /// Warns about every hierarchy whose rollover is due (`ca.root_rollover_years`): what
    /// `jpki serve` runs when it starts. The rollover itself is a key ceremony under dual
    /// control, so the server never makes one by itself (`ca.root_rollover = "auto"` is
    /// refused when the policy is loaded). Returns the hierarchies due.
    pub fn rollover_roots_due(&self) -> Result<Vec<Hierarchy>> {
        let now = self.clock.now();
        let mut due_now = Vec::new();
        for h in Hierarchy::ALL {
            let due = self.rollover_due_at(h)?;
            if now < due {
                continue;
            }
            tracing::warn!(
                hierarchy = %h,
                due = %due,
                "a new root generation is due (ca.root_rollover_years): two ca-officers approve `jpki root rollover --hierarchy {h}`"
            );
            due_now.push(h);
        }
        Ok(due_now)
    }

    fn rollover_locked(
        &self,
        h: Hierarchy,
        quorum: &crate::ceremony::Quorum,
    ) -> Result<RolledOver> {
        let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        // 1. The passphrase, proved on the newest generation's key.
        let current = self.root(h);
        self.generation_signer(h, &current)?;
        let now = self.clock.now();
        if now <= current.not_before {
            return Err(Error::Invalid(format!(
                "generation {} of the {h} root was made at {}: a new one must start later",
                current.generation, current.not_before
            )));
        }
        let generation = current.generation + 1;
        let layout = self.data_dir();
        // 2. The key; a file no root record names is a leftover of a rollover that failed.
        self.signers.discard_root_key(h, generation)?;
        let key = self.signers.create_root_key(h, generation)?;
        let made = self.rollover_with(h, generation, &key, now, quorum);
        let out = match made {
            Ok(v) => v,
            Err(e) => {
                let _ = self.signers.discard_root_key(h, generation);
                return Err(e);
            }
        };
        // 5. The certificate files, and the new generation in force.
        let root = out;
        let cert_path = layout.root_cert(h, generation);
        remove_if_present(&cert_path)?;
        keys::write_private(&cert_path, pem(&root.der).as_bytes())?;
        self.roots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(h)
            .or_default()
            .push(root.clone());
        // The generation before has issued its last leaf: its last expiry is read afresh.
        *self
            .older_last_expiries
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.write_roots_bundle(h)?;
        tracing::info!(
            hierarchy = %h,
            generation,
            serial = %serial_hex(&root.serial),
            "root rollover: new leaves are issued under the new generation"
        );
        Ok(RolledOver {
            hierarchy: h,
            generation,
            serial: serial_hex(&root.serial),
            key_id: hex::encode_upper(&root.key_id),
            not_before: root.not_before,
            not_after: root.not_after,
            certificate: relative(self, &cert_path),
        })
    }

    /// Steps 3 and 4: the certificate, checked, and the unit of work that records it.
    fn rollover_with(
        &self,
        h: Hierarchy,
        generation: u32,
        key: &crate::keys::CaSigner,
        now: OffsetDateTime,
        quorum: &crate::ceremony::Quorum,
    ) -> Result<std::sync::Arc<Root>> {
        let spki = key.spki()?;
        let (serial, counter) = self.new_serial(h)?;
        let not_after = validity::root_not_after(now, self.policy.ca.root_validity_years)?;
        let w = Window {
            serial: &serial,
            not_before: now,
            not_after,
        };
        let tbs = profile::root_tbs(&self.policy, h, w, &spki)?;
        lint::check(
            &self.policy,
            &tbs,
            &Expect {
                hierarchy: h,
                shape: Shape::Root,
                issuer: None,
                crl: Some(&Scope::Ca),
            },
        )?;
        let sig = policies::Signer::sign(key, &tbs)?;
        let der = profile::assemble(&tbs, &sig)?;
        super::init::check_signature(&spki, &der)?;
        let record = CertRecord {
            hierarchy: h,
            serial: serial.clone(),
            kind: CertKind::Root,
            holder: None,
            partition: None,
            generation,
            not_before: now,
            not_after,
            der: der.clone(),
        };
        let hexs = serial_hex(&serial);
        let previous = serial_hex(&self.root(h).serial);
        let committed = self.storage.transact(&|t| {
            t.add_certificate(&record, None)?;
            if counter > 0 {
                t.note_serial(h, counter)?;
            }
            storage::audit(
                t,
                now,
                "root-rollover",
                &format!("{h}:{hexs}"),
                &format!(
                    "generation {generation} after {previous}; notAfter {}; {}",
                    not_after.unix_timestamp(),
                    quorum.audit_detail()
                ),
            )
        });
        if let Err(e) = committed {
            // A serial another CA node took: the counter now follows the store's, so that
            // running the rollover again gets a fresh serial.
            self.serial_taken(&e)?;
            return Err(e);
        }
        let key_id = profile::key_identifier(&spki)?;
        Ok(std::sync::Arc::new(Root {
            der,
            spki,
            key_id,
            serial,
            generation,
            not_before: now,
            not_after,
        }))
    }

    /// Rewrites `certs/<h>-roots.pem`: every generation, oldest first (staged, then renamed).
    fn write_roots_bundle(&self, h: Hierarchy) -> Result<()> {
        let text: String = self.roots(h).iter().map(|r| pem(&r.der)).collect();
        let path = self.data_dir().roots_bundle(h);
        let mut staged = path.as_os_str().to_owned();
        staged.push(".new");
        let staged = std::path::PathBuf::from(staged);
        remove_if_present(&staged)?;
        keys::write_private(&staged, text.as_bytes())?;
        fs::rename(&staged, &path).map_err(Error::io(format!("rename {}", path.display())))
    }
}

fn relative(a: &Authority, p: &std::path::Path) -> String {
    p.strip_prefix(a.dir()).unwrap_or(p).display().to_string()
}

fn remove_if_present(path: &std::path::Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

impl Authority {
    /// When the last certificate each root generation issued expires (roots and OCSP signers
    /// left out), by (hierarchy, generation): a generation that issues no more signs CRLs until
    /// then (docs/roots.md). One pass over every certificate — what `jpki serve` does once
    /// at start when a hierarchy has more than one generation (an older generation's set of
    /// certificates is final once a newer one issues).
    pub fn last_expiries(
        &self,
    ) -> Result<std::collections::BTreeMap<(Hierarchy, u32), OffsetDateTime>> {
        let mut last = std::collections::BTreeMap::new();
        if Hierarchy::ALL.iter().all(|h| self.roots(*h).len() < 2) {
            return Ok(last);
        }
        self.storage.for_each_certificate(&mut |c| {
            // OCSP signers live for the leaves, not the other way round.
            if !matches!(c.kind, CertKind::Root | CertKind::OcspSigner) {
                let e = last
                    .entry((c.hierarchy, c.generation))
                    .or_insert(c.not_after);
                *e = (*e).max(c.not_after);
            }
            Ok(())
        })?;
        Ok(last)
    }

    /// The generation of a hierarchy's root that issued `cert_der`, picked by key: the
    /// certificate's authorityKeyIdentifier keyIdentifier must be the generation's key id and,
    /// when it names one, authorityCertSerialNumber its serial — never by the issuer name,
    /// which every generation shares. `None` when no generation matches (or the certificate
    /// has no key identifier).
    pub fn issuer_of(&self, h: Hierarchy, cert_der: &[u8]) -> Option<std::sync::Arc<Root>> {
        let (key_id, serial) = authority_key_id(cert_der)?;
        self.roots(h)
            .into_iter()
            .find(|r| r.key_id == key_id && serial.as_ref().is_none_or(|s| *s == r.serial))
    }
}

/// The keyIdentifier and authorityCertSerialNumber of a certificate's authorityKeyIdentifier
/// (RFC 5280 §4.2.1.1).
pub(super) fn authority_key_id(cert_der: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    use x509_parser::extensions::ParsedExtension;
    let (_, c) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                let id = aki.key_identifier.as_ref()?.0.to_vec();
                let serial = aki.authority_cert_serial.map(|s| {
                    let start = s.iter().position(|b| *b != 0).unwrap_or(s.len());
                    s[start..].to_vec()
                });
                Some((id, serial))
            }
            _ => None,
        })
}

/// The key identifier of the root that issued a signer's certificate (its AKI), for matching
/// the delegated OCSP signer to its generation.
pub fn signer_key_id(signer: &crate::keys::CaSigner) -> Option<Vec<u8>> {
    authority_key_id(policies::Signer::certificate(signer)).map(|(k, _)| k)
}

/// The key identifier a certificate's authorityKeyIdentifier names (the generation of the
/// root that issued it).
pub fn issuer_key_id_of(cert_der: &[u8]) -> Option<Vec<u8>> {
    authority_key_id(cert_der).map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceremony::testing::two_approvals;
    use crate::clock::FixedClock;
    use std::sync::{Arc, Mutex};

    /// What a running server would be told.
    struct Told(Mutex<Vec<(Hierarchy, u32, u32)>>, Mutex<Vec<Vec<u8>>>);

    impl crate::authority::Listener for Told {
        fn revoked(&self, _: Hierarchy, _: u32, _: &[u8], _: &Scope) {}
        fn root_generation_added(&self, new: &crate::authority::RootAdded) {
            self.0.lock().unwrap().push((
                new.hierarchy,
                new.root.generation,
                new.previous.generation,
            ));
        }
        fn ocsp_signer_renewed(&self, _: Hierarchy, signer: Arc<crate::keys::CaSigner>) {
            self.1
                .lock()
                .unwrap()
                .push(policies::Signer::certificate(signer.as_ref()).to_vec());
        }
    }

    #[test]
    fn a_rollover_made_by_another_process_on_the_same_store_is_taken_up() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let clock = Arc::new(FixedClock::new(t0));
        let a = Authority::init(
            &tmp.path().join("data"),
            policies::policy::DEFAULT_POLICY,
            b"adopt passphrase",
            clock.clone(),
        )
        .unwrap();
        let told = Arc::new(Told(Mutex::new(Vec::new()), Mutex::new(Vec::new())));
        a.set_listener(told.clone()).unwrap();
        let mut cursor = a.audit_cursor().unwrap();
        assert!(a.adopt_rolled_roots(&mut cursor).unwrap().is_empty());
        // Another process over the same store (as a second node on one PostgreSQL store) and
        // the same keys rolls the signing root over.
        let b = Authority::new(
            Arc::clone(a.storage()),
            crate::signers::Signers::open(a.data_dir().clone(), Some(b"adopt passphrase".to_vec()))
                .unwrap(),
            a.policy().clone(),
            a.clock().clone(),
        )
        .unwrap();
        clock.advance(time::Duration::days(400));
        let h = Hierarchy::Signing;
        let approvals = two_approvals(&b, ROLLOVER_CEREMONY, "signing");
        b.rollover_root(h, &approvals).unwrap();
        assert_eq!(a.roots(h).len(), 1, "not seen before it looks");
        let adopted = a.adopt_rolled_roots(&mut cursor).unwrap();
        assert_eq!(adopted, vec![(h, 2)]);
        assert_eq!(a.roots(h).len(), 2);
        assert_eq!(a.root(h).serial, b.root(h).serial);
        assert_eq!(a.root(h).key_id, b.root(h).key_id);
        assert_eq!(a.roots(Hierarchy::Auth).len(), 1);
        // The server was told as a rollover through its socket tells it, and was handed the
        // generations' own OCSP signers the other process made (sharing this data directory).
        assert_eq!(*told.0.lock().unwrap(), vec![(h, 2, 1)]);
        let handed = told.1.lock().unwrap().clone();
        let by = |der: &[u8]| issuer_key_id_of(der).unwrap();
        assert!(handed.iter().any(|d| by(d) == a.roots(h)[0].key_id));
        assert!(handed.iter().any(|d| by(d) == a.roots(h)[1].key_id));
        assert_eq!(
            policies::Signer::certificate(a.ocsp_signer(h).unwrap().as_ref()),
            policies::Signer::certificate(b.ocsp_signer(h).unwrap().as_ref()),
        );
        // The bundle here holds both; looking again takes nothing more.
        let bundle = fs::read_to_string(a.data_dir().roots_bundle(h)).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(a.adopt_rolled_roots(&mut cursor).unwrap().is_empty());
        assert_eq!(told.0.lock().unwrap().len(), 1);
    }
}
