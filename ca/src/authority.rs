//! The authority: one object that owns the store, the policy, the clock and (lazily) the
//! signing keys, and carries out every operation — init, the resident register and its
//! events, issuance, revocation, holds, queries, the audit check.
//!
//! Every mutation is one store transaction (certificate, indexes, status, revoked entry,
//! resident record and audit record together) and returns only after it is on disk.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use policies::lifecycle::{Action, EventKind};
use policies::lint::{self, Expect, Shape};
use policies::profile::{self, Holder, Window};
use policies::validity::{self, Bound, ValidityInput};
use policies::{Attributes, Hierarchy, Policy, Reason, Sex};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};
use zeroize::Zeroizing;

use crate::audit;
use crate::clock::Clock;
use crate::csr;
use crate::error::{Error, Result};
use crate::keys::{self, CaSigner};
use crate::records::*;
use crate::store::{SledStore, Store, Table, TxResult, Txn};

/// Paths inside a data directory.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn policy(&self) -> PathBuf {
        self.dir.join("policy.toml")
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join("db")
    }
    pub fn key(&self, h: Hierarchy, what: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{h}-{what}.key"))
    }
    pub fn cert(&self, h: Hierarchy, what: &str) -> PathBuf {
        self.dir.join("certs").join(format!("{h}-{what}.pem"))
    }
}

/// What the authority knows of a root without its private key.
#[derive(Clone)]
pub struct Root {
    pub der: Vec<u8>,
    pub spki: Vec<u8>,
    pub key_id: Vec<u8>,
}

pub struct Authority {
    layout: Layout,
    policy: Policy,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    roots: BTreeMap<Hierarchy, Root>,
    passphrase: Option<Zeroizing<Vec<u8>>>,
    signers: [OnceLock<Arc<CaSigner>>; 2],
    ocsp_signers: [OnceLock<Arc<CaSigner>>; 2],
    /// Last sequential serial handed out, per hierarchy.
    counters: [AtomicU64; 2],
    rng: SystemRandom,
    listener: OnceLock<Arc<dyn Listener>>,
    /// Operations on one resident run one at a time in this process (striped by id), so that
    /// concurrent requests for the same holder queue instead of invalidating each other.
    resident_locks: Vec<std::sync::Mutex<()>>,
}

/// Told of every revocation and hold once it is durable and before the operation returns:
/// `jpki serve` replaces the OCSP answer and marks the CRL partition dirty here, so the next
/// query already sees it.
pub trait Listener: Send + Sync {
    fn revoked(&self, hierarchy: Hierarchy, serial: &[u8], partition: Option<u16>);
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

fn key_fingerprint(spki: &[u8]) -> Vec<u8> {
    Sha256::digest(spki).to_vec()
}

/// Serial bytes from a counter value: big-endian, no leading zeros.
fn counter_serial(n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let start = b.iter().position(|x| *x != 0).unwrap_or(7);
    b[start..].to_vec()
}

fn counter_key(h: Hierarchy) -> Vec<u8> {
    format!("serial/{h}").into_bytes()
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// A certificate as the read commands show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CertView {
    pub serial: String,
    pub hierarchy: Hierarchy,
    pub kind: CertKind,
    pub status: State,
    pub reason: Option<Reason>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub invalidity_date: Option<OffsetDateTime>,
    pub holder: Option<String>,
    pub partition: Option<u16>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub pem: String,
}

/// The answer to an issuance.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Issued {
    pub serial: String,
    pub hierarchy: Hierarchy,
    pub kind: CertKind,
    pub resident: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Which rule set notAfter.
    pub bound: Bound,
    pub partition: u16,
    /// The serial this certificate superseded, if any.
    pub superseded: Option<String>,
    pub pem: String,
    #[serde(skip, default)]
    pub der: Vec<u8>,
}

/// Refuses a public key already certified to someone else: `owner` is the key's entry in the
/// `keys` table, if any, and `key_owner` the holder and kind asking.
fn key_is_theirs(owner: Option<Vec<u8>>, key_owner: &[u8]) -> Result<()> {
    match owner {
        Some(owner) if owner != key_owner => Err(Error::Refused(
            "this public key is already certified to another holder or for the other kind".into(),
        )),
        _ => Ok(()),
    }
}

/// An issuance signed and ready to commit: what its transaction writes and its answer needs.
struct Prepared {
    resident_id: String,
    h: Hierarchy,
    /// The resident's record version the issuance was built from.
    resident_version: u64,
    now: OffsetDateTime,
    /// SHA-256 of the SubjectPublicKeyInfo, and who may hold it.
    fp: Vec<u8>,
    key_owner: Vec<u8>,
    key: Vec<u8>,
    serial: Vec<u8>,
    not_after: OffsetDateTime,
    bound: Bound,
    partition: u16,
    record_bytes: Vec<u8>,
    good: Vec<u8>,
    counter: u64,
    /// The holder's live certificate of the kind, which this one supersedes.
    previous: Option<CertRecord>,
    der: Vec<u8>,
}

/// A revocation or hold that happened.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Revocation {
    pub serial: String,
    pub hierarchy: Hierarchy,
    pub status: State,
    pub reason: Reason,
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
}

/// A new resident.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NewResident {
    pub name: String,
    #[serde(with = "policies::model::iso_date")]
    pub birth: Date,
    pub sex: Sex,
    pub address: String,
    pub prefecture: String,
    pub municipality: String,
    #[serde(with = "policies::model::iso_date")]
    pub card_expiry: Date,
}

/// A resident-register event with its data.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Move {
        address: String,
        prefecture: Option<String>,
        municipality: Option<String>,
    },
    Rename {
        name: String,
    },
    Correct {
        name: Option<String>,
        #[serde(with = "policies::model::iso_date::option", default)]
        birth: Option<Date>,
        sex: Option<Sex>,
        address: Option<String>,
    },
    Death,
    Emigrate {
        #[serde(with = "policies::model::iso_date::option", default)]
        departure: Option<Date>,
    },
    CardRenew {
        #[serde(with = "policies::model::iso_date")]
        card_expiry: Date,
    },
    CardLost,
    CardFound,
    Withdraw {
        kind: Option<Hierarchy>,
    },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Move { .. } => EventKind::Move,
            Event::Rename { .. } => EventKind::Rename,
            Event::Correct { .. } => EventKind::Correct,
            Event::Death => EventKind::Death,
            Event::Emigrate { .. } => EventKind::Emigrate,
            Event::CardRenew { .. } => EventKind::CardRenew,
            Event::CardLost => EventKind::CardLost,
            Event::CardFound => EventKind::CardFound,
            Event::Withdraw { .. } => EventKind::Withdraw,
        }
    }
}

/// What an event did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EventOutcome {
    pub resident: String,
    pub event: String,
    pub state: ResidentState,
    pub revocations: Vec<Revocation>,
    /// For an emigration reported ahead of the departure date: when the revocation will happen.
    #[serde(with = "policies::model::iso_date::option")]
    pub scheduled: Option<Date>,
}

/// A resident as `jpki resident show` prints it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ResidentView {
    pub id: String,
    pub name: String,
    #[serde(with = "policies::model::iso_date")]
    pub birth: Date,
    pub birth_era: String,
    pub sex: Sex,
    pub address: String,
    pub prefecture: String,
    pub municipality: String,
    #[serde(with = "policies::model::iso_date")]
    pub card_expiry: Date,
    pub card_lost: bool,
    pub state: ResidentState,
    #[serde(with = "policies::model::iso_date::option")]
    pub departure: Option<Date>,
    pub certificates: Vec<CertSummary>,
    pub history: Vec<HistoryLine>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CertSummary {
    pub serial: String,
    pub hierarchy: Hierarchy,
    pub status: State,
    pub reason: Option<Reason>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

fn check_place(field: &str, v: &str) -> Result<()> {
    let n = v.chars().count();
    if v.trim().is_empty() || n > 64 || v.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{field}: must be 1 to 64 printable characters"
        )));
    }
    Ok(())
}

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
        let policy = Policy::from_toml(policy_text)?;
        if passphrase.len() < 8 {
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
        let result = Self::init_inner(dir, &policy, policy_text, passphrase, clock);
        if result.is_err() {
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
        }
        result
    }

    fn init_inner(
        dir: &Path,
        policy: &Policy,
        policy_text: &str,
        passphrase: &[u8],
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let layout = Layout {
            dir: dir.to_path_buf(),
        };
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        for d in [dir.to_path_buf(), dir.join("keys"), dir.join("certs")] {
            b.create(&d)
                .map_err(Error::io(format!("create {}", d.display())))?;
        }
        keys::write_private(&layout.policy(), policy_text.as_bytes())?;
        let store = SledStore::open(&layout.db())?;
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
            // Root.
            let root_key = keys::generate()?;
            let serial = next_serial()?;
            let end = validity::end_of_day_jst(
                validity::jst_date(now)
                    .replace_year(
                        validity::jst_date(now).year() + policy.ca.root_validity_years as i32,
                    )
                    .map_err(|e| Error::Invalid(e.to_string()))?,
            );
            let w = Window {
                serial: &serial,
                not_before: now,
                not_after: end,
            };
            let tbs = profile::root_tbs(policy, h, w, &root_key.spki)?;
            lint::check(
                policy,
                &tbs,
                &Expect {
                    hierarchy: h,
                    shape: Shape::Root,
                    issuer_key_id: None,
                },
            )?;
            let sig = keys::sign_with(&root_key.pair, &rng, &tbs)?;
            let root_der = profile::assemble(&tbs, &sig)?;
            check_signature(&root_key.spki, &root_der)?;
            let root_id = profile::key_identifier(&root_key.spki)?;
            keys::write_encrypted(&layout.key(h, "root"), &root_key, passphrase)?;
            fs::write(layout.cert(h, "root"), pem(&root_der))
                .map_err(Error::io("write root certificate"))?;
            records.push(CertRecord {
                hierarchy: h,
                serial,
                kind: CertKind::Root,
                holder: None,
                partition: None,
                not_before: now,
                not_after: end,
                der: root_der,
            });

            // Delegated OCSP signer.
            let ocsp_key = keys::generate()?;
            let serial = next_serial()?;
            let end = validity::end_of_day_jst(
                validity::jst_date(now)
                    + time::Duration::days(policy.validity.ocsp_signer_days as i64),
            );
            let w = Window {
                serial: &serial,
                not_before: now,
                not_after: end,
            };
            let tbs = profile::ocsp_signer_tbs(policy, h, w, &ocsp_key.spki, &root_id)?;
            lint::check(
                policy,
                &tbs,
                &Expect {
                    hierarchy: h,
                    shape: Shape::OcspSigner,
                    issuer_key_id: Some(&root_id),
                },
            )?;
            let sig = keys::sign_with(&root_key.pair, &rng, &tbs)?;
            let der = profile::assemble(&tbs, &sig)?;
            check_signature(&root_key.spki, &der)?;
            keys::write_encrypted(&layout.key(h, "ocsp"), &ocsp_key, passphrase)?;
            fs::write(layout.cert(h, "ocsp"), pem(&der))
                .map_err(Error::io("write OCSP signer certificate"))?;
            records.push(CertRecord {
                hierarchy: h,
                serial,
                kind: CertKind::OcspSigner,
                holder: None,
                partition: None,
                not_before: now,
                not_after: end,
                der,
            });
        }
        store.transact(&|t| {
            for r in &records {
                let key = cert_key(r.hierarchy, &r.serial);
                t.insert(Table::Certs, &key, &r.to_store()?)?;
                t.insert(Table::Status, &key, &json(&StatusRecord::GOOD)?)?;
            }
            for h in Hierarchy::ALL {
                t.insert(
                    Table::Meta,
                    &counter_key(h),
                    &counters[h.tag() as usize].to_be_bytes(),
                )?;
            }
            let serials: Vec<String> = records
                .iter()
                .map(|r| format!("{}:{}", r.hierarchy, serial_hex(&r.serial)))
                .collect();
            audit::append(
                t,
                now,
                "init",
                &serials.join(","),
                "roots and OCSP signers created",
            )
        })?;
        // Keep the open store: closing and reopening it would race a child process forked
        // meanwhile by another thread, which briefly shares the lock file's descriptor.
        let store: Arc<dyn Store> = Arc::new(store);
        Self::with_store(
            layout,
            policy.clone(),
            store,
            Some(passphrase.to_vec()),
            clock,
        )
    }

    /// Opens an existing data directory. The passphrase is needed only for operations that sign.
    pub fn open(
        dir: &Path,
        passphrase: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let layout = Layout {
            dir: dir.to_path_buf(),
        };
        let policy_text = fs::read_to_string(layout.policy())
            .map_err(|_| Error::NoDataDir(dir.display().to_string()))?;
        let policy = Policy::from_toml(&policy_text)?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&layout.db())?);
        Self::with_store(layout, policy, store, passphrase, clock)
    }

    fn with_store(
        layout: Layout,
        policy: Policy,
        store: Arc<dyn Store>,
        passphrase: Option<Vec<u8>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let mut roots = BTreeMap::new();
        for item in store.scan(Table::Certs, b"") {
            let (_, v) = item?;
            let r = CertRecord::from_store(&v)?;
            if r.kind == CertKind::Root {
                let spki = spki_of(&r.der)?;
                let key_id = profile::key_identifier(&spki)?;
                roots.insert(
                    r.hierarchy,
                    Root {
                        der: r.der,
                        spki,
                        key_id,
                    },
                );
            }
        }
        if roots.len() != 2 {
            return Err(Error::NoDataDir(layout.dir.display().to_string()));
        }
        let counter = |h: Hierarchy| -> Result<u64> {
            Ok(match store.get(Table::Meta, &counter_key(h))? {
                Some(b) => u64::from_be_bytes(
                    b.as_slice()
                        .try_into()
                        .map_err(|_| Error::Store("corrupt serial counter".into()))?,
                ),
                None => 0,
            })
        };
        let counters = [
            AtomicU64::new(counter(Hierarchy::Signing)?),
            AtomicU64::new(counter(Hierarchy::Auth)?),
        ];
        let a = Authority {
            layout,
            policy,
            store,
            clock,
            roots,
            passphrase: passphrase.map(Zeroizing::new),
            signers: [OnceLock::new(), OnceLock::new()],
            ocsp_signers: [OnceLock::new(), OnceLock::new()],
            counters,
            rng: SystemRandom::new(),
            listener: OnceLock::new(),
            resident_locks: (0..1024).map(|_| std::sync::Mutex::new(())).collect(),
        };
        a.apply_due()?;
        Ok(a)
    }

    fn lock_resident(&self, id: &str) -> std::sync::MutexGuard<'_, ()> {
        let h = id.bytes().fold(0usize, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        self.resident_locks[h % self.resident_locks.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the revocation listener (once).
    pub fn set_listener(&self, l: Arc<dyn Listener>) -> Result<()> {
        self.listener
            .set(l)
            .map_err(|_| Error::Invalid("a revocation listener is already installed".into()))
    }

    fn notify(&self, c: &CertRecord) {
        if let Some(l) = self.listener.get() {
            l.revoked(c.hierarchy, &c.serial, c.partition);
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    pub fn root(&self, h: Hierarchy) -> &Root {
        // Both roots are checked present in `with_store`.
        &self.roots[&h]
    }
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    fn passphrase(&self) -> Result<&[u8]> {
        self.passphrase
            .as_deref()
            .map(|v| v.as_slice())
            .ok_or(Error::NoPassphrase)
    }

    /// The root signer of a hierarchy (decrypted on first use).
    pub fn signer(&self, h: Hierarchy) -> Result<Arc<CaSigner>> {
        let slot = &self.signers[h.tag() as usize];
        if let Some(s) = slot.get() {
            return Ok(s.clone());
        }
        let pair = keys::read_encrypted(&self.layout.key(h, "root"), self.passphrase()?)?;
        let signer = Arc::new(CaSigner::new(pair, self.root(h).der.clone()));
        if signer.spki()? != self.root(h).spki {
            return Err(Error::KeyFile {
                path: self.layout.key(h, "root").display().to_string(),
                detail: "the key does not match the root certificate".into(),
            });
        }
        Ok(slot.get_or_init(|| signer).clone())
    }

    /// The delegated OCSP signer of a hierarchy (decrypted on first use).
    pub fn ocsp_signer(&self, h: Hierarchy) -> Result<Arc<CaSigner>> {
        let slot = &self.ocsp_signers[h.tag() as usize];
        if let Some(s) = slot.get() {
            return Ok(s.clone());
        }
        let pair = keys::read_encrypted(&self.layout.key(h, "ocsp"), self.passphrase()?)?;
        let cert_pem = fs::read(self.layout.cert(h, "ocsp"))
            .map_err(Error::io("read OCSP signer certificate"))?;
        let (_, p) = x509_parser::pem::parse_x509_pem(&cert_pem)
            .map_err(|e| Error::Store(format!("OCSP signer certificate: {e}")))?;
        Ok(slot
            .get_or_init(|| Arc::new(CaSigner::new(pair, p.contents)))
            .clone())
    }

    /// Generates an RSA-2048 key and stores it encrypted under the authority's passphrase as
    /// `keys/<name>.key` (refusing to overwrite). For CA keys outside the two hierarchies,
    /// such as the platform-operator CA.
    pub fn create_key(&self, name: &str) -> Result<keys::NewKey> {
        check_key_name(name)?;
        let key = keys::generate()?;
        keys::write_encrypted(
            &self.layout.dir.join("keys").join(format!("{name}.key")),
            &key,
            self.passphrase()?,
        )?;
        Ok(key)
    }

    /// Loads `keys/<name>.key` as a signer for the certificate `cert_der`.
    pub fn key_signer(&self, name: &str, cert_der: Vec<u8>) -> Result<CaSigner> {
        check_key_name(name)?;
        let pair = keys::read_encrypted(
            &self.layout.dir.join("keys").join(format!("{name}.key")),
            self.passphrase()?,
        )?;
        Ok(CaSigner::new(pair, cert_der))
    }

    /// A random serial of 16 octets (positive), from the OS RNG.
    pub fn random_serial(&self) -> Result<Vec<u8>> {
        random_serial(&self.rng)
    }

    fn new_serial(&self, h: Hierarchy) -> Result<Vec<u8>> {
        match self.policy.ca.serials {
            policies::policy::SerialScheme::Random => random_serial(&self.rng),
            policies::policy::SerialScheme::Sequential => Ok(counter_serial(
                self.counters[h.tag() as usize].fetch_add(1, Ordering::SeqCst) + 1,
            )),
        }
    }

    // ----- resident register -------------------------------------------------------------

    pub fn resident_add(&self, r: &NewResident) -> Result<String> {
        let now = self.clock.now();
        let today = validity::jst_date(now);
        let attributes = Attributes::new(
            &r.name,
            r.birth,
            r.sex,
            &r.address,
            &self.policy.limits,
            today,
        )?;
        check_place("prefecture", &r.prefecture)?;
        check_place("municipality", &r.municipality)?;
        if r.card_expiry < today {
            return Err(Error::Invalid(format!(
                "card expiry {} has already passed",
                r.card_expiry
            )));
        }
        let mut idb = [0u8; 8];
        self.rng
            .fill(&mut idb)
            .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
        let id = format!("R{}", hex::encode_upper(idb));
        let resident = Resident {
            id: id.clone(),
            attributes,
            prefecture: r.prefecture.clone(),
            municipality: r.municipality.clone(),
            card_expiry: r.card_expiry,
            state: ResidentState::Active,
            card_lost: false,
            departure: None,
            version: 0,
            history: vec![HistoryLine {
                at: now,
                event: "registered".into(),
                certificates: vec![],
            }],
            current: Default::default(),
        };
        self.store.transact(&|t| {
            t.insert(Table::Residents, id.as_bytes(), &json(&resident)?)?;
            audit::append(t, now, "resident-add", &id, "")
        })?;
        Ok(id)
    }

    pub fn resident(&self, id: &str) -> Result<Resident> {
        match self.store.get(Table::Residents, id.as_bytes())? {
            Some(b) => from_json(&b),
            None => Err(Error::UnknownResident(id.to_owned())),
        }
    }

    pub fn resident_view(&self, id: &str) -> Result<ResidentView> {
        let r = self.resident(id)?;
        let certificates = self
            .holder_certs(id)?
            .into_iter()
            .map(|(c, s)| CertSummary {
                serial: serial_hex(&c.serial),
                hierarchy: c.hierarchy,
                status: s.state,
                reason: s.reason,
                not_after: c.not_after,
            })
            .collect();
        let birth = r.attributes.birth();
        Ok(ResidentView {
            id: r.id,
            name: r.attributes.name().to_owned(),
            birth,
            birth_era: format!(
                "{} ({})",
                policies::era::encode_birth(birth),
                policies::era::era_name(policies::era::era_digit(birth))
            ),
            sex: r.attributes.sex(),
            address: r.attributes.address().to_owned(),
            prefecture: r.prefecture,
            municipality: r.municipality,
            card_expiry: r.card_expiry,
            card_lost: r.card_lost,
            state: r.state,
            departure: r.departure,
            certificates,
            history: r.history,
        })
    }

    /// Every certificate of a holder with its status.
    pub fn holder_certs(&self, id: &str) -> Result<Vec<(CertRecord, StatusRecord)>> {
        let prefix = holder_prefix(id);
        let mut out = Vec::new();
        for item in self.store.scan(Table::ByHolder, &prefix) {
            let (k, _) = item?;
            let rest = &k[prefix.len()..];
            let h = rest
                .first()
                .and_then(|t| Hierarchy::from_tag(*t))
                .ok_or_else(|| Error::Store("corrupt holder index".into()))?;
            let key = cert_key(h, &rest[1..]);
            let cert =
                CertRecord::from_store(&self.store.get(Table::Certs, &key)?.ok_or_else(|| {
                    Error::Store("holder index names a missing certificate".into())
                })?)?;
            let status = self.status_of(&key)?;
            out.push((cert, status));
        }
        Ok(out)
    }

    fn status_of(&self, key: &[u8]) -> Result<StatusRecord> {
        match self.store.get(Table::Status, key)? {
            Some(b) => from_json(&b),
            None => Err(Error::Store("certificate without status".into())),
        }
    }

    /// Applies a resident-register event and the revocations its rule demands, in one
    /// transaction (reference §4).
    pub fn event(&self, id: &str, event: &Event) -> Result<EventOutcome> {
        // The holder's certificates are listed outside the transaction (sled cannot scan in
        // one); the resident's version, bumped by issuance and by every event, detects a
        // concurrent change, and the transaction is then retried.
        let _one_at_a_time = self.lock_resident(id);
        for _ in 0..5 {
            match self.event_once(id, event) {
                Err(Error::Retry) => continue,
                other => return other,
            }
        }
        Err(Error::Invalid(
            "the resident kept changing concurrently; try again".into(),
        ))
    }

    fn event_once(&self, id: &str, event: &Event) -> Result<EventOutcome> {
        let now = self.clock.now();
        let today = validity::jst_date(now);
        let before = self.resident(id)?;
        if before.state == ResidentState::Deceased {
            return Err(Error::Invalid(format!(
                "resident {id} is deceased; no further events"
            )));
        }
        let kind = event.kind();
        let mut after = before.clone();
        let a = &before.attributes;
        let limits = &self.policy.limits;
        let mut revoke_at = now;
        let mut scheduled = None;
        match event {
            Event::Move {
                address,
                prefecture,
                municipality,
            } => {
                after.attributes =
                    Attributes::new(a.name(), a.birth(), a.sex(), address, limits, today)?;
                if let Some(p) = prefecture {
                    check_place("prefecture", p)?;
                    after.prefecture = p.clone();
                }
                if let Some(m) = municipality {
                    check_place("municipality", m)?;
                    after.municipality = m.clone();
                }
            }
            Event::Rename { name } => {
                after.attributes =
                    Attributes::new(name, a.birth(), a.sex(), a.address(), limits, today)?
            }
            Event::Correct {
                name,
                birth,
                sex,
                address,
            } => {
                if name.is_none() && birth.is_none() && sex.is_none() && address.is_none() {
                    return Err(Error::Invalid(
                        "correct: give at least one of --name, --birth, --sex, --address".into(),
                    ));
                }
                after.attributes = Attributes::new(
                    name.as_deref().unwrap_or(a.name()),
                    birth.unwrap_or(a.birth()),
                    sex.unwrap_or(a.sex()),
                    address.as_deref().unwrap_or(a.address()),
                    limits,
                    today,
                )?;
            }
            Event::Death => after.state = ResidentState::Deceased,
            Event::Emigrate { departure } => {
                if before.state == ResidentState::Emigrated {
                    return Err(Error::Invalid(format!(
                        "resident {id} has already emigrated"
                    )));
                }
                let d = departure.unwrap_or(today);
                after.departure = Some(d);
                let start = time::PrimitiveDateTime::new(d, time::Time::MIDNIGHT)
                    .assume_offset(validity::JST)
                    .to_offset(time::UtcOffset::UTC);
                if start > now {
                    after.state = ResidentState::Emigrating;
                    scheduled = Some(d);
                } else {
                    after.state = ResidentState::Emigrated;
                    revoke_at = start;
                }
            }
            Event::CardRenew { card_expiry } => {
                if *card_expiry < today {
                    return Err(Error::Invalid(format!(
                        "card expiry {card_expiry} has already passed"
                    )));
                }
                after.card_expiry = *card_expiry;
                after.card_lost = false;
            }
            Event::CardLost => after.card_lost = true,
            Event::CardFound => after.card_lost = false,
            Event::Withdraw { .. } => {}
        }
        after.version += 1;

        let certs = self.holder_certs(id)?;
        let mut plan = Vec::new();
        if scheduled.is_none() {
            for (c, s) in &certs {
                if s.state == State::Revoked || c.not_after <= now {
                    continue;
                }
                if let Event::Withdraw { kind: Some(k) } = event {
                    if *k != c.hierarchy {
                        continue;
                    }
                }
                let action = match kind.action(c.hierarchy) {
                    Some(Action::Revoke(r)) => Some((State::Revoked, r)),
                    Some(Action::Hold) if s.state == State::Good => {
                        Some((State::Held, Reason::CertificateHold))
                    }
                    Some(Action::RevokeHeld(r)) if s.state == State::Held => {
                        Some((State::Revoked, r))
                    }
                    _ => None,
                };
                if let Some((state, reason)) = action {
                    let at = if revoke_at < c.not_before {
                        c.not_before
                    } else {
                        revoke_at
                    };
                    plan.push((
                        c.clone(),
                        s.state,
                        Revocation {
                            serial: serial_hex(&c.serial),
                            hierarchy: c.hierarchy,
                            status: state,
                            reason,
                            revoked_at: at,
                        },
                    ));
                }
            }
        }
        after.history.push(HistoryLine {
            at: now,
            event: kind.as_str().into(),
            certificates: plan
                .iter()
                .map(|(_, _, r)| format!("{}:{}", r.hierarchy, r.serial))
                .collect(),
        });
        let departure_key = scheduled.map(|d| {
            let at =
                time::PrimitiveDateTime::new(d, time::Time::MIDNIGHT).assume_offset(validity::JST);
            let mut k = at.unix_timestamp().to_be_bytes().to_vec();
            k.extend_from_slice(id.as_bytes());
            k
        });
        self.store.transact(&|t| {
            let current: Resident = from_json(
                &t.get(Table::Residents, id.as_bytes())?
                    .ok_or_else(|| Error::UnknownResident(id.to_owned()))?,
            )?;
            if current.version != before.version {
                return Err(Error::Retry);
            }
            t.insert(Table::Residents, id.as_bytes(), &json(&after)?)?;
            audit::append(
                t,
                now,
                &format!("event:{}", kind.as_str()),
                id,
                &format!("{} certificate(s) affected", plan.len()),
            )?;
            for (c, seen, rev) in &plan {
                let key = cert_key(c.hierarchy, &c.serial);
                let status: StatusRecord = from_json(
                    &t.get(Table::Status, &key)?
                        .ok_or_else(|| Error::Store("certificate without status".into()))?,
                )?;
                if status.state != *seen {
                    return Err(Error::Retry);
                }
                self.write_status(t, c, rev.status, rev.reason, rev.revoked_at, None)?;
                audit::append(
                    t,
                    now,
                    if rev.status == State::Held {
                        "hold"
                    } else {
                        "revoke"
                    },
                    &format!("{}:{}", c.hierarchy, rev.serial),
                    rev.reason.as_str(),
                )?;
            }
            if let Some(k) = &departure_key {
                t.insert(Table::Scheduled, k, b"emigrate")?;
            }
            Ok(())
        })?;
        for (c, _, _) in &plan {
            self.notify(c);
        }
        Ok(EventOutcome {
            resident: id.to_owned(),
            event: kind.as_str().to_owned(),
            state: after.state,
            revocations: plan.into_iter().map(|(_, _, r)| r).collect(),
            scheduled,
        })
    }

    /// Carries out scheduled emigrations whose departure has come.
    pub fn apply_due(&self) -> Result<Vec<EventOutcome>> {
        let now = self.clock.now();
        let end = (now.unix_timestamp() + 1).to_be_bytes();
        let due: Vec<Pair> = self
            .store
            .range(Table::Scheduled, &[0u8; 0], &end)
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        for (k, _) in due {
            let id = String::from_utf8_lossy(&k[8..]).into_owned();
            let r = self.resident(&id)?;
            let mut outcome = None;
            if r.state == ResidentState::Emigrating {
                // Re-run as an emigration on its departure date; its start has now passed.
                let mut pending = r.clone();
                pending.state = ResidentState::Active;
                self.store.transact(&|t| {
                    t.insert(Table::Residents, id.as_bytes(), &json(&pending)?)?;
                    Ok(())
                })?;
                outcome = Some(self.event(
                    &id,
                    &Event::Emigrate {
                        departure: r.departure,
                    },
                )?);
            }
            self.store.transact(&|t| t.remove(Table::Scheduled, &k))?;
            out.extend(outcome);
        }
        Ok(out)
    }

    fn write_status(
        &self,
        t: &dyn Txn,
        c: &CertRecord,
        state: State,
        reason: Reason,
        at: OffsetDateTime,
        invalidity: Option<OffsetDateTime>,
    ) -> TxResult<()> {
        let key = cert_key(c.hierarchy, &c.serial);
        let status = StatusRecord {
            state,
            reason: Some(reason),
            since: Some(at),
            invalidity,
        };
        t.insert(Table::Status, &key, &json(&status)?)?;
        let scope = c.partition.unwrap_or(CA_SCOPE);
        let entry = RevokedEntry {
            reason,
            revoked_at: ts(at),
            invalidity: invalidity.map(ts),
            not_after: ts(c.not_after),
        };
        t.insert(
            Table::Revoked,
            &revoked_key(c.hierarchy, scope, &c.serial),
            &entry.encode(),
        )?;
        Ok(())
    }

    // ----- issuance ------------------------------------------------------------------------

    /// Issues a certificate of `h` to a resident from a CSR (PEM or DER).
    pub fn issue(&self, resident_id: &str, h: Hierarchy, csr_bytes: &[u8]) -> Result<Issued> {
        let csr = csr::verify(csr_bytes, self.policy.limits.min_rsa_bits)?;
        let _one_at_a_time = self.lock_resident(resident_id);
        for _ in 0..10 {
            let p = self.prepare(resident_id, h, &csr)?;
            match self.store.transact(&|t| self.commit_issue(&p, t)) {
                Err(Error::Retry) => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(self.issued(p)),
            }
        }
        Err(Error::Invalid(
            "the resident kept changing concurrently; try again".into(),
        ))
    }

    /// Everything an issuance does before its transaction: the resident's state and rules,
    /// the validity, the TBS, the lint and the signature.
    fn prepare(&self, resident_id: &str, h: Hierarchy, csr: &csr::VerifiedCsr) -> Result<Prepared> {
        let now = self.clock.now();
        let resident = self.resident(resident_id)?;
        match resident.state {
            ResidentState::Deceased => return Err(Error::Refused(format!("resident {resident_id} is deceased"))),
            ResidentState::Emigrated | ResidentState::Emigrating if h == Hierarchy::Signing => {
                return Err(Error::Refused(format!("resident {resident_id} has emigrated; signing certificates for emigrants are not supported")))
            }
            _ => {}
        }
        if resident.card_lost {
            return Err(Error::Refused(format!("the card of resident {resident_id} is reported lost; renew the card (card-renew) or report it found first")));
        }
        let fp = key_fingerprint(&csr.spki);
        let mut key_owner = holder_prefix(resident_id);
        key_owner.push(h.tag());
        // Checked before signing, and again in the transaction.
        key_is_theirs(self.store.get(Table::Keys, &fp)?, &key_owner)?;
        // The holder's newest certificate of each kind, if still good: O(1), not a scan of the
        // holder's whole history.
        let live = |k: Hierarchy| -> Result<Option<CertRecord>> {
            let Some(serial) = resident.current.get(&k) else {
                return Ok(None);
            };
            let key = cert_key(k, &parse_serial(serial)?);
            let Some(b) = self.store.get(Table::Certs, &key)? else {
                return Ok(None);
            };
            let c = CertRecord::from_store(&b)?;
            let good = self.status_of(&key)?.state == State::Good && c.not_after > now;
            Ok(good.then_some(c))
        };
        let previous = live(h)?;
        let auth_not_after = if h == Hierarchy::Signing {
            live(Hierarchy::Auth)?.map(|c| c.not_after)
        } else {
            None
        };
        let (not_after, bound) = validity::not_after(
            &self.policy.validity,
            &ValidityInput {
                issued_at: now,
                birth: resident.attributes.birth(),
                card_expiry: resident.card_expiry,
                renewing: previous.as_ref().map(|c| c.not_after),
                auth_not_after,
            },
        )?;
        let serial = self.new_serial(h)?;
        let cn = self.opaque_id(now)?;
        let holder = match h {
            Hierarchy::Signing => Holder::Signing {
                prefecture: &resident.prefecture,
                municipality: &resident.municipality,
                attributes: &resident.attributes,
            },
            Hierarchy::Auth => Holder::Auth,
        };
        let root = self.root(h);
        let w = Window {
            serial: &serial,
            not_before: now,
            not_after,
        };
        let tbs = profile::leaf_tbs(&self.policy, &holder, &cn, w, &csr.spki, &root.key_id)?;
        let shape = match holder {
            Holder::Signing { attributes, .. } => Shape::Signing { attributes },
            Holder::Auth => Shape::Auth,
        };
        lint::check(
            &self.policy,
            &tbs,
            &Expect {
                hierarchy: h,
                shape,
                issuer_key_id: Some(&root.key_id),
            },
        )?;
        let signer = self.signer(h)?;
        let sig = policies::Signer::sign(signer.as_ref(), &tbs)?;
        // A faulty RSA signature can leak the key. AWS-LC checks every RSA private-key result
        // with the public exponent before returning it (Boneh–DeMillo–Lipton; aws-lc
        // `crypto/fipsmodule/rsa/rsa_impl.c`, `rsa_default_private_transform`), so a second
        // verification here would only repeat that check; the tests verify issued
        // certificates with OpenSSL and x509-parser.
        let der = profile::assemble(&tbs, &sig)?;
        let partition = self.policy.partition_of(&serial);
        let record = CertRecord {
            hierarchy: h,
            serial: serial.clone(),
            kind: CertKind::of(h),
            holder: Some(resident_id.to_owned()),
            partition: Some(partition),
            not_before: now,
            not_after,
            der: der.clone(),
        };
        let key = cert_key(h, &serial);
        let record_bytes = record.to_store()?;
        let good = json(&StatusRecord::GOOD)?;
        let counter = self.counters[h.tag() as usize].load(Ordering::SeqCst);
        Ok(Prepared {
            resident_id: resident_id.to_owned(),
            h,
            resident_version: resident.version,
            now,
            fp,
            key_owner,
            key,
            serial,
            not_after,
            bound,
            partition,
            record_bytes,
            good,
            counter,
            previous,
            der,
        })
    }

    /// The issuance's transaction: checks that nothing it relied on changed, then records the
    /// certificate, its indexes and status, the resident's new current certificate, the
    /// superseded predecessor's revocation and the audit records.
    fn commit_issue(&self, p: &Prepared, t: &dyn Txn) -> TxResult<()> {
        let current: Resident = from_json(
            &t.get(Table::Residents, p.resident_id.as_bytes())?
                .ok_or_else(|| Error::UnknownResident(p.resident_id.clone()))?,
        )?;
        if current.version != p.resident_version {
            return Err(Error::Retry);
        }
        key_is_theirs(t.get(Table::Keys, &p.fp)?, &p.key_owner)?;
        if t.get(Table::Certs, &p.key)?.is_some() {
            return Err(Error::Retry);
        }
        // Bump the resident's version so that a concurrent event or issuance retries.
        let mut bumped = current;
        bumped.version += 1;
        bumped.current.insert(p.h, serial_hex(&p.serial));
        t.insert(Table::Residents, p.resident_id.as_bytes(), &json(&bumped)?)?;
        t.insert(Table::Certs, &p.key, &p.record_bytes)?;
        t.insert(Table::Status, &p.key, &p.good)?;
        t.insert(
            Table::ByHolder,
            &holder_key(&p.resident_id, p.h, &p.serial),
            b"",
        )?;
        t.insert(Table::Keys, &p.fp, &p.key_owner)?;
        if self.policy.ca.serials == policies::policy::SerialScheme::Sequential {
            let ck = counter_key(p.h);
            let stored = t
                .get(Table::Meta, &ck)?
                .and_then(|b| b.as_slice().try_into().ok().map(u64::from_be_bytes))
                .unwrap_or(0);
            t.insert(Table::Meta, &ck, &stored.max(p.counter).to_be_bytes())?;
        }
        audit::append(
            t,
            p.now,
            "issue",
            &format!("{}:{}", p.h, serial_hex(&p.serial)),
            &format!(
                "{} for {}, notAfter {}",
                CertKind::of(p.h).as_str(),
                p.resident_id,
                p.not_after
            ),
        )?;
        if let Some(old) = &p.previous {
            let okey = cert_key(p.h, &old.serial);
            let st: StatusRecord = from_json(
                &t.get(Table::Status, &okey)?
                    .ok_or_else(|| Error::Store("certificate without status".into()))?,
            )?;
            if st.state == State::Good {
                self.write_status(t, old, State::Revoked, Reason::Superseded, p.now, None)?;
                audit::append(
                    t,
                    p.now,
                    "revoke",
                    &format!("{}:{}", p.h, serial_hex(&old.serial)),
                    "superseded",
                )?;
            }
        }
        Ok(())
    }

    /// The answer to a committed issuance (and the revocation listener told of the
    /// superseded certificate).
    fn issued(&self, p: Prepared) -> Issued {
        if let Some(old) = &p.previous {
            self.notify(old);
        }
        Issued {
            serial: serial_hex(&p.serial),
            hierarchy: p.h,
            kind: CertKind::of(p.h),
            resident: p.resident_id,
            not_before: p.now,
            not_after: p.not_after,
            bound: p.bound,
            partition: p.partition,
            superseded: p.previous.map(|c| serial_hex(&c.serial)),
            pem: pem(&p.der),
            der: p.der,
        }
    }

    /// An opaque subject CN: the issuance time (JST) and 10 random base-32 characters — never
    /// the holder's name (reference §2).
    fn opaque_id(&self, now: OffsetDateTime) -> Result<String> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut r = [0u8; 10];
        self.rng
            .fill(&mut r)
            .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
        let t = now.to_offset(validity::JST);
        let mut s = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        s.extend(r.iter().map(|b| ALPHABET[(*b % 32) as usize] as char));
        Ok(s)
    }

    // ----- revocation ----------------------------------------------------------------------

    /// Finds a certificate by serial, in `h` or in whichever hierarchy has it.
    pub fn find(&self, serial: &[u8], h: Option<Hierarchy>) -> Result<CertRecord> {
        let hs: Vec<Hierarchy> = h
            .map(|h| vec![h])
            .unwrap_or_else(|| Hierarchy::ALL.to_vec());
        let mut found = Vec::new();
        for h in hs {
            if let Some(b) = self.store.get(Table::Certs, &cert_key(h, serial))? {
                found.push(CertRecord::from_store(&b)?);
            }
        }
        match found.len() {
            0 => Err(Error::UnknownSerial(serial_hex(serial))),
            1 => Ok(found.remove(0)),
            _ => Err(Error::AmbiguousSerial(serial_hex(serial))),
        }
    }

    /// Revokes a certificate (`certificateHold` puts it on hold instead).
    pub fn revoke(
        &self,
        serial: &[u8],
        h: Option<Hierarchy>,
        reason: Reason,
        invalidity: Option<OffsetDateTime>,
    ) -> Result<Revocation> {
        if reason == Reason::RemoveFromCrl {
            return Err(Error::Invalid(
                "removeFromCRL is a delta-CRL reason; held card certificates are never released"
                    .into(),
            ));
        }
        let c = self.find(serial, h)?;
        let now = self.clock.now();
        if let Some(inv) = invalidity {
            if inv > now {
                return Err(Error::Invalid(
                    "the invalidity date is in the future".into(),
                ));
            }
        }
        let target = if reason == Reason::CertificateHold {
            State::Held
        } else {
            State::Revoked
        };
        let key = cert_key(c.hierarchy, &c.serial);
        let hexs = serial_hex(&c.serial);
        self.store.transact(&|t| {
            let st: StatusRecord = from_json(
                &t.get(Table::Status, &key)?
                    .ok_or_else(|| Error::Store("certificate without status".into()))?,
            )?;
            match (st.state, target) {
                (State::Revoked, _) => {
                    return Err(Error::AlreadyRevoked {
                        serial: hexs.clone(),
                        hierarchy: c.hierarchy,
                        reason: st.reason.unwrap_or(Reason::Unspecified),
                    })
                }
                (State::Held, State::Held) => {
                    return Err(Error::Invalid(format!("serial {hexs} is already on hold")))
                }
                _ => {}
            }
            self.write_status(t, &c, target, reason, now, invalidity)?;
            audit::append(
                t,
                now,
                if target == State::Held {
                    "hold"
                } else {
                    "revoke"
                },
                &format!("{}:{hexs}", c.hierarchy),
                reason.as_str(),
            )
        })?;
        self.notify(&c);
        Ok(Revocation {
            serial: hexs,
            hierarchy: c.hierarchy,
            status: target,
            reason,
            revoked_at: now,
        })
    }

    /// Puts a certificate on hold (certificateHold). Card certificates are never released.
    pub fn hold(&self, serial: &[u8], h: Option<Hierarchy>) -> Result<Revocation> {
        self.revoke(serial, h, Reason::CertificateHold, None)
    }

    // ----- queries -------------------------------------------------------------------------

    pub fn cert_view(&self, c: CertRecord) -> Result<CertView> {
        let s = self.status_of(&cert_key(c.hierarchy, &c.serial))?;
        Ok(CertView {
            serial: serial_hex(&c.serial),
            hierarchy: c.hierarchy,
            kind: c.kind,
            status: s.state,
            reason: s.reason,
            revoked_at: s.since,
            invalidity_date: s.invalidity,
            holder: c.holder.clone(),
            partition: c.partition,
            not_before: c.not_before,
            not_after: c.not_after,
            pem: c.pem(),
        })
    }

    pub fn cert_show(&self, serial: &[u8], h: Option<Hierarchy>) -> Result<CertView> {
        let c = self.find(serial, h)?;
        self.cert_view(c)
    }

    pub fn cert_list(&self, resident: Option<&str>) -> Result<Vec<CertView>> {
        match resident {
            Some(id) => {
                self.resident(id)?;
                self.holder_certs(id)?
                    .into_iter()
                    .map(|(c, _)| self.cert_view(c))
                    .collect()
            }
            None => self
                .store
                .scan(Table::Certs, b"")
                .map(|r| {
                    r.and_then(|(_, v)| CertRecord::from_store(&v))
                        .and_then(|c| self.cert_view(c))
                })
                .collect(),
        }
    }

    pub fn audit_verify(&self) -> Result<u64> {
        audit::verify(self.store.as_ref())
    }

    /// Checks that every certificate has its index entries: a status, a holder index entry
    /// (end-entity certificates), a revoked entry matching a revoked or held status, a key
    /// index entry; and that no index entry points at a missing certificate. Returns the
    /// number of certificates checked.
    pub fn check_indexes(&self) -> Result<usize> {
        let broken = |what: String| Error::Store(format!("index check: {what}"));
        let mut n = 0;
        for item in self.store.scan(Table::Certs, b"") {
            let (k, v) = item?;
            let c = CertRecord::from_store(&v)?;
            let hexs = serial_hex(&c.serial);
            let st = match self.store.get(Table::Status, &k)? {
                Some(b) => from_json::<StatusRecord>(&b)?,
                None => return Err(broken(format!("{hexs} has no status"))),
            };
            let rk = revoked_key(c.hierarchy, c.partition.unwrap_or(CA_SCOPE), &c.serial);
            match (st.state, self.store.get(Table::Revoked, &rk)?) {
                (State::Good, None) => {}
                (State::Good, Some(_)) => {
                    return Err(broken(format!("{hexs} is good but listed as revoked")))
                }
                (_, None) => {
                    return Err(broken(format!(
                        "{hexs} is {} but has no revoked entry",
                        st.state.as_str()
                    )))
                }
                (_, Some(e)) => {
                    if Some(RevokedEntry::decode(&e)?.reason) != st.reason {
                        return Err(broken(format!(
                            "{hexs}: revoked entry and status disagree on the reason"
                        )));
                    }
                }
            }
            if let Some(holder) = &c.holder {
                if self
                    .store
                    .get(Table::ByHolder, &holder_key(holder, c.hierarchy, &c.serial))?
                    .is_none()
                {
                    return Err(broken(format!("{hexs} is missing from its holder's index")));
                }
                let spki = spki_of(&c.der)?;
                if self
                    .store
                    .get(Table::Keys, &key_fingerprint(&spki))?
                    .is_none()
                {
                    return Err(broken(format!(
                        "{hexs}: its key is missing from the key index"
                    )));
                }
            }
            n += 1;
        }
        for item in self.store.scan(Table::ByHolder, b"") {
            let (k, _) = item?;
            let zero = k
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| broken("malformed holder index key".into()))?;
            let rest = &k[zero + 1..];
            let h = rest
                .first()
                .and_then(|t| Hierarchy::from_tag(*t))
                .ok_or_else(|| broken("malformed holder index key".into()))?;
            if self
                .store
                .get(Table::Certs, &cert_key(h, &rest[1..]))?
                .is_none()
            {
                return Err(broken(format!(
                    "holder index names a missing certificate {}",
                    serial_hex(&rest[1..])
                )));
            }
        }
        Ok(n)
    }
}

type Pair = crate::store::Pair;

fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::Invalid(format!(
            "key name `{name}` must be letters, digits and -"
        )));
    }
    Ok(())
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

/// The SubjectPublicKeyInfo DER of a certificate.
pub fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>> {
    let (_, c) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::Store(format!("stored certificate does not parse: {e}")))?;
    Ok(c.tbs_certificate.subject_pki.raw.to_vec())
}

/// Verifies a freshly signed certificate with the issuer's key before anyone sees it (a
/// faulty RSA signature can leak the key).
fn check_signature(issuer_spki: &[u8], cert_der: &[u8]) -> Result<()> {
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
