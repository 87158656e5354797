//! The authority: the CA's operations over a [`Storage`], its [`Signers`], the [`Policy`] and
//! a [`Clock`], split by job — each flow reads top-down in its own module:
//!
//! * [`init`] — a new data directory (roots, OCSP signers), and opening an existing one;
//! * [`issue`] — a certificate from a holder's CSR;
//! * [`revoke`] — revocations and holds;
//! * [`events`] — the resident register and its events, and events that fall due;
//! * [`query`] — what the read commands show;
//! * [`phone`] — smartphone certificates, issued on the card's authority;
//! * [`renew`] — the infrastructure certificates' renewal (delegated OCSP signers) and the
//!   expiry of everything a server depends on;
//! * [`rollover`] — root generations: a new root key and self-signed root under the same DN.
//!
//! [`Authority::new`] does no I/O of its own and opening applies nothing: due register events
//! are applied by [`Authority::apply_due`], which `jpki serve` runs on a timer and
//! `jpki events apply-due` runs for an install without a server. Every mutation is one unit of
//! work on the storage and returns only after it is durable.

pub mod counter;
pub mod edge_signers;
pub mod events;
pub mod init;
pub mod issue;
pub mod phone;
pub mod query;
pub mod renew;
pub mod report;
pub mod revoke;
pub mod rollover;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use policies::profile::Scope;
use policies::{profile, Hierarchy, Policy};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::keys::CaSigner;
use crate::records::CertRecord;
use crate::signers::Signers;
use crate::storage::Storage;

pub use events::{Event, EventOutcome, NewResident};
pub use issue::{IssueOverrides, IssueRequest, Issued, BENCH_STORE_MARKER};
pub use query::{
    CertPage, CertQuery, CertSummary, CertView, ResidentPage, ResidentQuery, ResidentSummary,
    ResidentView,
};
pub use renew::{Expiry, Renewed};
pub use revoke::Revocation;

/// What the authority knows of a root without its private key: one generation of a
/// hierarchy's root (all generations share the DN; the key, serial and validity differ).
#[derive(Clone, Debug)]
pub struct Root {
    pub der: Vec<u8>,
    pub spki: Vec<u8>,
    pub key_id: Vec<u8>,
    /// The root certificate's serial (leaves name it in their authorityKeyIdentifier).
    pub serial: Vec<u8>,
    /// 1 for the root `jpki init` made, then one more per `jpki root rollover`: the order of
    /// the hierarchy's root records by (notBefore, serial), which never changes.
    pub generation: u32,
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
}

/// Sorts a hierarchy's root records into generations (by notBefore, then serial).
fn generations(mut records: Vec<CertRecord>) -> Result<Vec<Arc<Root>>> {
    records.sort_by(|a, b| {
        (a.not_before, a.serial.len(), &a.serial).cmp(&(b.not_before, b.serial.len(), &b.serial))
    });
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let spki = spki_of(&r.der)?;
        let key_id = profile::key_identifier(&spki)?;
        out.push(Arc::new(Root {
            der: r.der,
            spki,
            key_id,
            serial: r.serial,
            generation: u32::try_from(i + 1)
                .map_err(|_| Error::Invalid("too many root generations".into()))?,
            not_before: r.not_before,
            not_after: r.not_after,
        }));
    }
    Ok(out)
}

pub struct Authority {
    policy: Policy,
    storage: Arc<dyn Storage>,
    signers: Signers,
    clock: Arc<dyn Clock>,
    /// Every generation of each hierarchy's root, oldest first; the last issues new leaves.
    /// Grows by one at [`Authority::rollover_root`].
    roots: RwLock<BTreeMap<Hierarchy, Vec<Arc<Root>>>>,
    /// Last sequential serial handed out, per hierarchy (the storage keeps the highest one
    /// committed: [`crate::storage::Tx::note_serial`]).
    counters: [AtomicU64; 2],
    rng: SystemRandom,
    listener: OnceLock<Arc<dyn Listener>>,
    /// Operations on one resident run one at a time in this process (striped by id), so that
    /// concurrent requests for the same holder queue instead of invalidating each other.
    resident_locks: Vec<std::sync::Mutex<()>>,
    /// Renewals of infrastructure certificates run one at a time in this process.
    renew_lock: std::sync::Mutex<()>,
    /// When the last leaf of each older root generation expires (computed on first need).
    older_last_expiries: std::sync::Mutex<Option<BTreeMap<(Hierarchy, u32), time::OffsetDateTime>>>,
    /// Registrations run one at a time in this process (the duplicate check reads the
    /// register before writing).
    registration: std::sync::Mutex<()>,
}

/// Told of every revocation and hold once it is durable and before the operation returns:
/// `jpki serve` replaces the OCSP answer and wakes the CRL publisher here (the CRL partition
/// itself was marked dirty by the revocation's own transaction).
pub trait Listener: Send + Sync {
    /// `(hierarchy, generation, scope)` is the CRL the certificate is listed on: the root
    /// generation that issued it, and its partition or the CA-level CRL.
    fn revoked(&self, hierarchy: Hierarchy, generation: u32, serial: &[u8], scope: &Scope);
    /// A hierarchy's delegated OCSP signer was renewed (durable, files in place): the
    /// responder signs with `signer` from now on. Does nothing unless a server listens.
    fn ocsp_signer_renewed(&self, _hierarchy: Hierarchy, _signer: Arc<CaSigner>) {}
    /// A hierarchy's delegated OCSP signer was compromised, revoked and replaced by `signer`
    /// (durable, files in place): the responder signs with `signer` from now on and must never
    /// serve an answer of the old key again (cached ones included).
    fn ocsp_signer_compromised(&self, _hierarchy: Hierarchy, _signer: Arc<CaSigner>) {}
    /// A new generation of a hierarchy's root was made while a server listens (durable,
    /// files in place; `jpki root rollover` through the admin socket): from now on the server
    /// signs the CRLs and OCSP answers of what `root` issues with `signer`, and the
    /// generation before it issues nothing more — its last certificate expires at
    /// `previous_last_expiry`, after which its CRLs are no longer published. Called before the
    /// new generation's delegated OCSP signer is made.
    fn root_generation_added(&self, _new: &RootAdded) {}
}

/// What [`Listener::root_generation_added`] is told.
pub struct RootAdded {
    pub hierarchy: Hierarchy,
    pub root: Arc<Root>,
    /// The new generation's root key.
    pub signer: Arc<CaSigner>,
    /// The generation before it, its root key (it signs its own OCSP answers from now on,
    /// as every older generation does), and when the last certificate it issued expires.
    pub previous: Arc<Root>,
    pub previous_signer: Arc<CaSigner>,
    pub previous_last_expiry: time::OffsetDateTime,
}

/// Upper-case hex of a serial.
pub fn serial_hex(serial: &[u8]) -> String {
    hex::encode_upper(serial)
}

/// Parses a serial given in hex (`0x` prefix, colons and case allowed) into its canonical
/// bytes (no leading zeros).
pub fn parse_serial(text: &str) -> Result<Vec<u8>> {
    let t = text
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .replace(':', "");
    let t = if t.len() % 2 == 1 { format!("0{t}") } else { t };
    let bytes = hex::decode(&t)
        .map_err(|_| Error::Invalid(format!("serial `{text}` is not hexadecimal")))?;
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    if start == bytes.len() || bytes.len() - start > 20 {
        return Err(Error::Invalid(format!(
            "serial `{text}` is not a positive number of at most 20 octets"
        )));
    }
    Ok(bytes[start..].to_vec())
}

pub use crate::records::spki_of;

/// Serial bytes from a counter value: big-endian, no leading zeros.
fn counter_serial(n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let start = b.iter().position(|x| *x != 0).unwrap_or(7);
    b[start..].to_vec()
}

fn random_serial(rng: &SystemRandom) -> Result<Vec<u8>> {
    let mut b = vec![0u8; 16];
    rng.fill(&mut b)
        .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
    // Positive and exactly 16 octets: 0x01..=0x7F in the first byte (≥ 120 random bits).
    b[0] &= 0x7F;
    if b[0] == 0 {
        b[0] = 0x01;
    }
    Ok(b)
}

impl Authority {
    /// The authority over `storage`, which must hold both hierarchies' roots (`jpki init`).
    /// Reads the roots and serial counters; does nothing else.
    pub fn new(
        storage: Arc<dyn Storage>,
        signers: Signers,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let mut records: BTreeMap<Hierarchy, Vec<CertRecord>> = BTreeMap::new();
        for r in storage.roots()? {
            records.entry(r.hierarchy).or_default().push(r);
        }
        let mut roots = BTreeMap::new();
        for (h, list) in records {
            roots.insert(h, generations(list)?);
        }
        if roots.len() != Hierarchy::ALL.len() {
            return Err(Error::Invalid(
                "the store holds no roots: it was not made by `jpki init`".into(),
            ));
        }
        let counters = [
            AtomicU64::new(storage.serial_counter(Hierarchy::Signing)?),
            AtomicU64::new(storage.serial_counter(Hierarchy::Auth)?),
        ];
        Ok(Authority {
            policy,
            storage,
            signers,
            clock,
            roots: RwLock::new(roots),
            counters,
            rng: SystemRandom::new(),
            listener: OnceLock::new(),
            resident_locks: (0..1024).map(|_| std::sync::Mutex::new(())).collect(),
            renew_lock: std::sync::Mutex::new(()),
            older_last_expiries: std::sync::Mutex::new(None),
            registration: std::sync::Mutex::new(()),
        })
    }

    fn lock_resident(&self, id: &str) -> std::sync::MutexGuard<'_, ()> {
        self.resident_locks[self.stripe(id)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The locks of several residents, taken in stripe order (so that two callers locking
    /// overlapping sets cannot deadlock), each stripe once.
    fn lock_residents<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Vec<std::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids.map(|id| self.stripe(id)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|i| {
                self.resident_locks[i]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            })
            .collect()
    }

    fn stripe(&self, id: &str) -> usize {
        let h = id.bytes().fold(0usize, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        h % self.resident_locks.len()
    }

    /// Installs the revocation listener (once).
    pub fn set_listener(&self, l: Arc<dyn Listener>) -> Result<()> {
        self.listener
            .set(l)
            .map_err(|_| Error::Invalid("a revocation listener is already installed".into()))
    }

    fn notify(&self, c: &CertRecord) {
        if let Some(l) = self.listener.get() {
            l.revoked(
                c.hierarchy,
                c.generation,
                &c.serial,
                &crate::storage::scope_of(c),
            );
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    pub fn signers(&self) -> &Signers {
        &self.signers
    }
    /// The data directory of the authority's keys and certificates.
    pub fn data_dir(&self) -> &crate::datadir::DataDir {
        self.signers.data_dir()
    }
    pub fn dir(&self) -> &std::path::Path {
        &self.signers.data_dir().dir
    }
    /// The newest generation of a hierarchy's root: the one that issues new leaves.
    pub fn root(&self, h: Hierarchy) -> Arc<Root> {
        let roots = self.roots.read().unwrap_or_else(|p| p.into_inner());
        // Both hierarchies are checked present, each with at least one root, in `new`, and
        // generations are only ever added.
        roots[&h]
            .last()
            .cloned()
            .expect("every hierarchy has a root (checked in Authority::new)")
    }

    /// Every generation of a hierarchy's root, oldest first.
    pub fn roots(&self, h: Hierarchy) -> Vec<Arc<Root>> {
        let roots = self.roots.read().unwrap_or_else(|p| p.into_inner());
        roots.get(&h).cloned().unwrap_or_default()
    }

    /// The generation of a hierarchy's root whose key identifier (the SKI a leaf's
    /// authorityKeyIdentifier names) is `key_id`.
    pub fn root_by_key_id(&self, h: Hierarchy, key_id: &[u8]) -> Option<Arc<Root>> {
        self.roots(h).into_iter().find(|r| r.key_id == key_id)
    }

    /// The root signer of the newest generation of a hierarchy (decrypted on first use).
    pub fn signer(&self, h: Hierarchy) -> Result<Arc<CaSigner>> {
        let root = self.root(h);
        self.generation_signer(h, &root)
    }

    /// The root signer of one generation (it keeps signing CRLs for the certificates it
    /// issued until the last of them expires).
    pub fn generation_signer(&self, h: Hierarchy, root: &Root) -> Result<Arc<CaSigner>> {
        self.signers.root(h, root.generation, &root.der, &root.spki)
    }

    /// The delegated OCSP signer of a hierarchy (decrypted on first use; the newest after a
    /// renewal, see [`renew`]). A signer whose certificate the store holds as revoked — key
    /// files restored from a backup older than `jpki ocsp-signer compromise` — is refused:
    /// its key is never used again.
    pub fn ocsp_signer(&self, h: Hierarchy) -> Result<Arc<CaSigner>> {
        // Under the renewal lock: a first load never sees a renewal half-way through.
        let _one = self.renew_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.finish_locked(h)?;
        let signer = self.signers.ocsp(h)?;
        if let Some(serial) =
            self.revoked_signer(h, policies::Signer::certificate(signer.as_ref()))?
        {
            return Err(Error::KeyFile {
                path: self.data_dir().key(h, "ocsp").display().to_string(),
                detail: format!(
                    "the OCSP signer certificate {serial} it belongs to is revoked; its key is \
                     never used again: `jpki ocsp-signer renew --hierarchy {h}` (or `jpki serve`) \
                     puts a new signer in force"
                ),
            });
        }
        Ok(signer)
    }

    /// A random serial of 16 octets (positive), from the OS RNG.
    pub fn random_serial(&self) -> Result<Vec<u8>> {
        random_serial(&self.rng)
    }

    /// After the store refused a serial as taken ([`Error::SerialTaken`]: another CA node on
    /// the same store, with its own counter, issued it first — issue #13): raises this node's
    /// counter of that hierarchy to at least the store's, so that the next [`new_serial`]
    /// is past every committed one. Returns whether `e` was that refusal (the caller then
    /// signs again with a fresh serial).
    ///
    /// [`new_serial`]: Authority::new_serial
    fn serial_taken(&self, e: &Error) -> Result<bool> {
        let Error::SerialTaken { hierarchy, .. } = e else {
            return Ok(false);
        };
        let stored = self.storage.serial_counter(*hierarchy)?;
        self.counters[hierarchy.tag() as usize].fetch_max(stored, Ordering::SeqCst);
        Ok(true)
    }

    /// The next serial of a hierarchy, and the counter value it came from (0 for random).
    fn new_serial(&self, h: Hierarchy) -> Result<(Vec<u8>, u64)> {
        match self.policy.ca.serials {
            policies::policy::SerialScheme::Random => Ok((random_serial(&self.rng)?, 0)),
            policies::policy::SerialScheme::Sequential => {
                let n = self.counters[h.tag() as usize].fetch_add(1, Ordering::SeqCst) + 1;
                Ok((counter_serial(n), n))
            }
        }
    }
}
