//! Issuance: a certificate of either hierarchy from a holder's CSR. Read top-down:
//! [`Authority::issue`] verifies the CSR, [`Authority::prepare`] checks the resident and the
//! rules, computes the validity, builds, lints and signs the certificate outside any
//! transaction; [`Authority::commit_issue`] records it — certificate, indexes, the resident's
//! current certificate, the superseded predecessor's revocation and the audit records — in one
//! unit of work that first checks nothing it relied on changed.

use policies::lint::{self, Expect, Shape};
use policies::profile::{self, Holder, Scope, Window};
use policies::validity::{self, Bound, ValidityInput};
use policies::{Hierarchy, Municipality, Reason};
use serde::Serialize;
use time::OffsetDateTime;

use aws_lc_rs::rand::SecureRandom;

use super::{parse_serial, serial_hex, Authority};
use crate::csr;
use crate::error::{Error, Result};
use crate::records::{pem, CertKind, CertRecord, Resident, ResidentState, State, StatusRecord};
use crate::storage::{self, KeyFingerprint, KeyOwner, Tx};

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
    /// The CRL partition the certificate names.
    pub partition: Scope,
    /// The serial this certificate superseded, if any.
    pub superseded: Option<String>,
    pub pem: String,
    #[serde(skip, default)]
    pub der: Vec<u8>,
}

/// One issuance of a batch ([`Authority::issue_batch`]): the resident, the kind and the
/// holder's CSR (PEM or DER).
#[derive(Debug, Clone, Copy)]
pub struct IssueRequest<'a> {
    pub resident: &'a str,
    pub hierarchy: Hierarchy,
    pub csr: &'a [u8],
}

/// Eligibility rules an operator sets aside for one issuance, each with the reason the audit
/// trail keeps (policy `[eligibility]`, [`policies::eligibility`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IssueOverrides {
    /// A signing certificate for a holder under the signing age: the legal representative's
    /// application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor_signing: Option<String>,
    /// A new certificate while the current one of the kind is outside the renewal window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_renewal: Option<String>,
}

/// The file in a data directory that marks its store as made by `jpki bench populate`: the
/// only stores on which holder keys may be shared ([`Authority::issue_from_bench_pool`]).
pub const BENCH_STORE_MARKER: &str = "bench-store.json";

/// Refuses a public key already certified to someone else: `owner` is whom the key is
/// certified to, if anyone, and `asking` the holder and kind asking.
fn key_is_theirs(owner: Option<KeyOwner>, asking: &KeyOwner) -> Result<()> {
    match owner {
        Some(owner) if owner != *asking => Err(Error::Refused(
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
    fp: KeyFingerprint,
    key_owner: KeyOwner,
    serial: Vec<u8>,
    not_after: OffsetDateTime,
    bound: Bound,
    partition: Scope,
    /// The partition had no CRL yet when the issuance was prepared.
    new_partition: bool,
    record: CertRecord,
    /// The sequential counter value the serial came from (0 for a random serial).
    counter: u64,
    /// The holder's live certificate of the kind, which this one supersedes.
    previous: Option<CertRecord>,
    /// The eligibility rules set aside, with their reasons, for the audit record.
    overridden: Vec<String>,
    der: Vec<u8>,
    /// A signing certificate for an emigrant (from the family-register annex).
    emigrant: bool,
    /// The key is shared from a benchmark pool ([`Authority::issue_from_bench_pool`]).
    bench_shared_key: bool,
}

impl Authority {
    /// Issues a certificate of `h` to a resident from a CSR (PEM or DER).
    pub fn issue(&self, resident_id: &str, h: Hierarchy, csr_bytes: &[u8]) -> Result<Issued> {
        self.issue_with(resident_id, h, csr_bytes, &IssueOverrides::default())
    }

    /// [`Authority::issue`], with eligibility rules set aside as `overrides` says (each
    /// reason is recorded in the issuance's audit record).
    pub fn issue_with(
        &self,
        resident_id: &str,
        h: Hierarchy,
        csr_bytes: &[u8],
        overrides: &IssueOverrides,
    ) -> Result<Issued> {
        self.issue_keyed(resident_id, h, csr_bytes, overrides, false)
    }

    /// [`Authority::issue_with`]; `shared_key`: the key comes from a benchmark pool.
    fn issue_keyed(
        &self,
        resident_id: &str,
        h: Hierarchy,
        csr_bytes: &[u8],
        overrides: &IssueOverrides,
        shared_key: bool,
    ) -> Result<Issued> {
        for why in [&overrides.minor_signing, &overrides.early_renewal]
            .into_iter()
            .flatten()
        {
            super::events::check_reason(why)?;
        }
        let csr = csr::verify(csr_bytes, self.policy.limits.min_rsa_bits)?;
        let _one_at_a_time = self.lock_resident(resident_id);
        for _ in 0..10 {
            let p = self.prepare(resident_id, h, &csr, overrides, shared_key)?;
            match self.storage.transact(&|t| self.commit_issue(&p, t)) {
                Err(Error::Retry) => continue,
                Err(e) if self.serial_taken(&e)? => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(self.issued(p)),
            }
        }
        Err(Error::Invalid(
            "the resident kept changing concurrently; try again".into(),
        ))
    }

    /// Issues many certificates in one durable unit of work (group commit): each is checked,
    /// built, linted and signed as [`Authority::issue_with`] does — the signatures in parallel
    /// over the machine's cores — then all are recorded, each with its audit record, in one
    /// transaction, or none is. A batch names each resident at most once (a holder's two
    /// kinds go in two batches: the signing certificate's validity follows the
    /// authentication certificate's). Returns the certificates in request order.
    pub fn issue_batch(
        &self,
        requests: &[IssueRequest<'_>],
        overrides: &IssueOverrides,
    ) -> Result<Vec<Issued>> {
        self.issue_batch_keyed(requests, overrides, false)
    }

    /// [`Authority::issue_batch`] for a benchmark store, as
    /// [`Authority::issue_from_bench_pool`]: refused unless the data directory holds
    /// [`BENCH_STORE_MARKER`].
    pub fn issue_batch_from_bench_pool(
        &self,
        requests: &[IssueRequest<'_>],
        overrides: &IssueOverrides,
    ) -> Result<Vec<Issued>> {
        self.bench_store()?;
        self.issue_batch_keyed(requests, overrides, true)
    }

    fn issue_batch_keyed(
        &self,
        requests: &[IssueRequest<'_>],
        overrides: &IssueOverrides,
        shared_key: bool,
    ) -> Result<Vec<Issued>> {
        for why in [&overrides.minor_signing, &overrides.early_renewal]
            .into_iter()
            .flatten()
        {
            super::events::check_reason(why)?;
        }
        let mut named = std::collections::HashSet::new();
        if let Some(twice) = requests.iter().find(|r| !named.insert(r.resident)) {
            return Err(Error::Invalid(format!(
                "resident {} is named twice in one issuance batch",
                twice.resident
            )));
        }
        let csrs = requests
            .iter()
            .map(|r| csr::verify(r.csr, self.policy.limits.min_rsa_bits))
            .collect::<Result<Vec<_>>>()?;
        // The residents' locks, taken in one order so that two batches cannot deadlock.
        let _one_at_a_time = self.lock_residents(requests.iter().map(|r| r.resident));
        for _ in 0..10 {
            let prepared = self.prepare_parallel(requests, &csrs, overrides, shared_key)?;
            let committed = self
                .storage
                .transact(&|t| prepared.iter().try_for_each(|p| self.commit_issue(p, t)));
            match committed {
                Err(Error::Retry) => continue,
                Err(e) if self.serial_taken(&e)? => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(prepared.into_iter().map(|p| self.issued(p)).collect()),
            }
        }
        Err(Error::Invalid(
            "a resident of the batch kept changing concurrently; try again".into(),
        ))
    }

    /// [`Authority::prepare`] of every request, spread over the machine's cores (signing
    /// dominates); the first refusal stops the batch.
    fn prepare_parallel(
        &self,
        requests: &[IssueRequest<'_>],
        csrs: &[csr::VerifiedCsr],
        overrides: &IssueOverrides,
        shared_key: bool,
    ) -> Result<Vec<Prepared>> {
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(requests.len())
            .max(1);
        let per = requests.len().div_ceil(workers);
        // The workers only read and sign; the audit records (and their actor) are written by
        // the calling thread's unit of work.
        let chunks: Vec<Result<Vec<Prepared>>> = std::thread::scope(|sc| {
            let handles: Vec<_> = requests
                .chunks(per)
                .zip(csrs.chunks(per))
                .map(|(rs, cs)| {
                    sc.spawn(move || {
                        rs.iter()
                            .zip(cs)
                            .map(|(r, c)| {
                                self.prepare(r.resident, r.hierarchy, c, overrides, shared_key)
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Invalid("an issuance worker thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(requests.len());
        for chunk in chunks {
            out.extend(chunk?);
        }
        Ok(out)
    }

    /// Refuses unless the data directory holds [`BENCH_STORE_MARKER`].
    fn bench_store(&self) -> Result<()> {
        if !self.dir().join(BENCH_STORE_MARKER).is_file() {
            return Err(Error::Refused(format!(
                "{} is not a benchmark store (no {BENCH_STORE_MARKER}): holder keys may not be shared",
                self.dir().display()
            )));
        }
        Ok(())
    }

    /// [`Authority::issue_with`] for a benchmark store: the CSR's key is drawn from a pool
    /// shared by many holders, so the one-key-one-holder rule is set aside (the audit record
    /// says so). Refused unless the data directory holds [`BENCH_STORE_MARKER`].
    pub fn issue_from_bench_pool(
        &self,
        resident_id: &str,
        h: Hierarchy,
        csr_bytes: &[u8],
        overrides: &IssueOverrides,
    ) -> Result<Issued> {
        self.bench_store()?;
        self.issue_keyed(resident_id, h, csr_bytes, overrides, true)
    }

    /// Everything an issuance does before its transaction: the resident's state and rules,
    /// the validity, the TBS, the lint and the signature.
    fn prepare(
        &self,
        resident_id: &str,
        h: Hierarchy,
        csr: &csr::VerifiedCsr,
        overrides: &IssueOverrides,
        shared_key: bool,
    ) -> Result<Prepared> {
        let now = self.clock.now();
        let resident: Resident = self.resident(resident_id)?;
        // A signing certificate for an emigrant comes from the family-register annex: the
        // register's name, birth and sex, and instead of an address the emigrant marker and
        // the departure date (policies::model::emigrant_address; reference §8).
        let mut emigrant = None;
        match (resident.state, h) {
            (ResidentState::Deceased, _) => return Err(Error::Refused(format!("resident {resident_id} is deceased"))),
            (ResidentState::Emigrating, Hierarchy::Signing) => {
                return Err(Error::Refused(format!("resident {resident_id} leaves Japan on {}: the signing certificate for emigrants can be issued from that date", resident.departure.map(|d| d.to_string()).unwrap_or_default())))
            }
            (ResidentState::Emigrated, Hierarchy::Signing) if !resident.continued_use => {
                return Err(Error::Refused(format!("resident {resident_id} emigrated without the continued-use procedure; a signing certificate for emigrants needs it (resident emigrate --continued-use)")))
            }
            (ResidentState::Emigrated, Hierarchy::Signing) => {
                let departure = resident.departure.ok_or_else(|| Error::Store(format!("emigrated resident {resident_id} without a departure date")))?;
                let a = &resident.attributes;
                emigrant = Some(policies::Attributes::new(
                    a.name(),
                    a.birth(),
                    a.sex(),
                    &policies::model::emigrant_address(departure),
                    &self.policy.limits,
                    validity::jst_date(now),
                )?);
            }
            _ => {}
        }
        if resident.card_lost {
            return Err(Error::Refused(format!("the card of resident {resident_id} is reported lost; renew the card (card-renew) or report it found first")));
        }
        let fp = storage::fingerprint(&csr.spki);
        let key_owner = KeyOwner {
            holder: resident_id.to_owned(),
            hierarchy: h,
        };
        // Checked before signing, and again in the transaction.
        if self.storage.key_blocked(&fp)? {
            return Err(Error::KeyBlocked(hex::encode(fp)));
        }
        if !shared_key {
            key_is_theirs(self.storage.key_owner(&fp)?, &key_owner)?;
        }
        // The holder's newest certificate of each kind, if still good: O(1), not a scan of the
        // holder's whole history.
        let live = |k: Hierarchy| -> Result<Option<CertRecord>> {
            let Some(serial) = resident.current.get(&k) else {
                return Ok(None);
            };
            let serial = parse_serial(serial)?;
            let Some(c) = self.storage.certificate(k, &serial)? else {
                return Ok(None);
            };
            let good = self.status_of(&c)?.state == State::Good && c.not_after > now;
            Ok(good.then_some(c))
        };
        let previous = live(h)?;
        let mut overridden = self.eligible(&resident, h, previous.as_ref(), now, overrides)?;
        if shared_key {
            overridden.push(
                "one key per holder set aside: benchmark store, key from a shared pool".into(),
            );
        }
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
        let (serial, counter) = self.new_serial(h)?;
        // The CRL partition, fixed now for the certificate's life: the holder's
        // municipality at issuance (or the serial's partition under the old scheme).
        let place = Municipality::new(&resident.prefecture, &resident.municipality)?;
        let partition = self.policy.new_partition(&serial, &place);
        // The newest generation issues, and signs the partition's CRL of its certificates.
        let root = self.root(h);
        let new_partition = self
            .storage
            .crl_state(h, root.generation, partition.clone())?
            .is_none();
        let cn = self.opaque_id(now)?;
        let holder = match h {
            Hierarchy::Signing => Holder::Signing {
                prefecture: &resident.prefecture,
                municipality: &resident.municipality,
                attributes: emigrant.as_ref().unwrap_or(&resident.attributes),
            },
            Hierarchy::Auth => Holder::Auth,
        };
        let w = Window {
            serial: &serial,
            not_before: now,
            not_after,
        };
        let issuer = profile::Issuer {
            key_id: &root.key_id,
            serial: &root.serial,
            generation: root.generation,
        };
        let tbs = profile::leaf_tbs(&self.policy, &holder, &cn, w, &partition, &csr.spki, issuer)?;
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
                issuer: Some(issuer),
                crl: Some(&partition),
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
        let record = CertRecord {
            hierarchy: h,
            serial: serial.clone(),
            kind: CertKind::of(h),
            holder: Some(resident_id.to_owned()),
            partition: Some(partition.clone()),
            generation: root.generation,
            not_before: now,
            not_after,
            der: der.clone(),
        };
        Ok(Prepared {
            resident_id: resident_id.to_owned(),
            h,
            resident_version: resident.version,
            now,
            fp,
            key_owner,
            serial,
            not_after,
            bound,
            partition,
            new_partition,
            record,
            counter,
            previous,
            overridden,
            der,
            emigrant: emigrant.is_some(),
            bench_shared_key: shared_key,
        })
    }

    /// The eligibility rules (policy `[eligibility]`): the signing age and the renewal window,
    /// each refused unless `overrides` gives a reason. Returns the rules set aside.
    fn eligible(
        &self,
        resident: &Resident,
        h: Hierarchy,
        previous: Option<&CertRecord>,
        now: OffsetDateTime,
        overrides: &IssueOverrides,
    ) -> Result<Vec<String>> {
        let rules = &self.policy.eligibility;
        let mut overridden = Vec::new();
        let mut check = |verdict: std::result::Result<(), policies::eligibility::Ineligible>,
                         reason: &Option<String>,
                         rule: &str| {
            match (verdict, reason) {
                (Ok(()), _) => Ok(()),
                (Err(_), Some(why)) => {
                    overridden.push(format!("{rule} overridden: {why}"));
                    Ok(())
                }
                (Err(e), None) => Err(Error::Ineligible(e)),
            }
        };
        if h == Hierarchy::Signing {
            let today = validity::jst_date(now);
            check(
                rules.may_sign(resident.attributes.birth(), today),
                &overrides.minor_signing,
                "signing age",
            )?;
        }
        if let Some(prev) = previous {
            let window = self.policy.validity.renewal_window_months;
            check(
                rules.renewal(prev.not_after, now, window),
                &overrides.early_renewal,
                "renewal window",
            )?;
        }
        Ok(overridden)
    }

    /// The issuance's transaction: checks that nothing it relied on changed, then records the
    /// certificate, its indexes and status, the resident's new current certificate, the
    /// superseded predecessor's revocation and the audit records.
    fn commit_issue(&self, p: &Prepared, t: &dyn Tx) -> Result<()> {
        let current = t
            .resident(&p.resident_id)?
            .ok_or_else(|| Error::UnknownResident(p.resident_id.clone()))?;
        if current.version != p.resident_version {
            return Err(Error::Retry);
        }
        if t.key_blocked(&p.fp)? {
            return Err(Error::KeyBlocked(hex::encode(p.fp)));
        }
        if !p.bench_shared_key {
            key_is_theirs(t.key_owner(&p.fp)?, &p.key_owner)?;
        }
        // A serial another CA node on the same store already took: `add_certificate`
        // refuses it (`Error::SerialTaken`) and the caller re-reads the store's counter.
        // Bump the resident's version so that a concurrent event or issuance retries.
        let mut bumped = current;
        bumped.version += 1;
        bumped.current.insert(p.h, serial_hex(&p.serial));
        t.put_resident(&bumped)?;
        t.add_certificate(&p.record, Some(&p.fp))?;
        // A municipal partition comes into being with its first certificate: flagged dirty,
        // the publisher publishes its (empty) CRL, so that relying parties find one. Setting
        // the flag twice (two first issuances at once) is harmless.
        if p.new_partition {
            t.set_crl_dirty(p.h, p.record.generation, p.partition.clone())?;
        }
        if p.counter > 0 {
            t.note_serial(p.h, p.counter)?;
        }
        storage::audit(
            t,
            p.now,
            "issue",
            &format!("{}:{}", p.h, serial_hex(&p.serial)),
            &format!(
                "{}{} for {}, notAfter {}{}",
                CertKind::of(p.h).as_str(),
                if p.emigrant { " (emigrant)" } else { "" },
                p.resident_id,
                p.not_after,
                p.overridden
                    .iter()
                    .map(|o| format!("; {o}"))
                    .collect::<String>()
            ),
        )?;
        if let Some(old) = &p.previous {
            let st = t
                .status(old.hierarchy, &old.serial)?
                .ok_or_else(|| Error::Store("certificate without status".into()))?;
            if st.state == State::Good {
                t.change_status(
                    old,
                    &StatusRecord {
                        state: State::Revoked,
                        reason: Some(Reason::Superseded),
                        since: Some(p.now),
                        invalidity: None,
                    },
                    p.now,
                )?;
                storage::audit(
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

    /// An opaque subject CN in the real certificates' shape ([`profile::leaf_cn`]): the
    /// issuance time (JST) around 10 random characters — never the holder's name.
    pub(super) fn opaque_id(&self, now: OffsetDateTime) -> Result<String> {
        let mut r = [0u8; 10];
        self.rng
            .fill(&mut r)
            .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
        Ok(profile::leaf_cn(now, &r))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::authority::{Event, NewResident};
    use crate::clock::FixedClock;

    fn csr() -> Vec<u8> {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    fn register(a: &Authority, name: &str) -> String {
        a.resident_add(&NewResident {
            name: name.into(),
            birth: time::macros::date!(1980 - 01 - 01),
            sex: policies::Sex::Female,
            address: "千代田区一丁目1番".into(),
            prefecture: "東京都".into(),
            municipality: "千代田区".into(),
            card_expiry: time::macros::date!(2031 - 01 - 01),
        })
        .unwrap()
    }

    fn issued(a: &Authority) -> usize {
        a.audit_records()
            .unwrap()
            .iter()
            .filter(|r| r.action == "issue")
            .count()
    }

    #[test]
    fn a_batch_is_one_unit_of_work_each_certificate_signed_and_audited() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let a = Authority::init(
            &tmp.path().join("data"),
            policies::policy::DEFAULT_POLICY,
            b"batch passphrase",
            Arc::new(FixedClock::new(t0)),
        )
        .unwrap();
        let ids: Vec<String> = ["試験 一", "試験 二", "試験 三"]
            .iter()
            .map(|n| register(&a, n))
            .collect();
        let keys: Vec<Vec<u8>> = (0..3).map(|_| csr()).collect();
        let req = |k: usize, h| IssueRequest {
            resident: &ids[k],
            hierarchy: h,
            csr: &keys[k],
        };
        let none = IssueOverrides::default();

        // A refusal anywhere in the batch writes nothing: resident 2 is deceased.
        a.event(&ids[2], &Event::Death).unwrap();
        let before = issued(&a);
        let all = [0, 1, 2].map(|k| req(k, Hierarchy::Auth));
        assert!(matches!(
            a.issue_batch(&all, &none),
            Err(Error::Refused(m)) if m.contains("deceased")
        ));
        assert_eq!(issued(&a), before);
        assert!(a.resident(&ids[0]).unwrap().current.is_empty());
        // A resident named twice is refused before anything is signed.
        assert!(matches!(
            a.issue_batch(&[req(0, Hierarchy::Auth), req(0, Hierarchy::Signing)], &none),
            Err(Error::Invalid(m)) if m.contains("named twice")
        ));
        // Shared keys need the bench marker.
        assert!(matches!(
            a.issue_batch_from_bench_pool(&[req(0, Hierarchy::Auth)], &none),
            Err(Error::Refused(_))
        ));

        // Two certificates in one durable unit of work, each with its own audit record.
        let stats = a.storage().commit_stats();
        let out = a
            .issue_batch(&[req(0, Hierarchy::Auth), req(1, Hierarchy::Auth)], &none)
            .unwrap();
        let done = a.storage().commit_stats().since(&stats);
        assert_eq!((done.batches, done.transactions), (1, 1));
        assert_eq!(issued(&a), before + 2);
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].serial, out[1].serial);
        for (k, c) in out.iter().enumerate() {
            assert_eq!(c.resident, ids[k]);
            let r = a.resident(&ids[k]).unwrap();
            assert_eq!(r.current.get(&Hierarchy::Auth), Some(&c.serial));
            // Signed by the root: the certificate verifies under the root's key.
            let (_, cert) = x509_parser::parse_x509_certificate(&c.der).unwrap();
            let root_der = a.root(Hierarchy::Auth).der.clone();
            let (_, root) = x509_parser::parse_x509_certificate(&root_der).unwrap();
            cert.verify_signature(Some(root.public_key())).unwrap();
        }
        // The signing certificates follow in a second batch (one per resident per batch).
        // (one key per holder and kind: fresh keys).
        let signing_keys: Vec<Vec<u8>> = (0..2).map(|_| csr()).collect();
        let signing: Vec<IssueRequest<'_>> = (0..2)
            .map(|k| IssueRequest {
                resident: &ids[k],
                hierarchy: Hierarchy::Signing,
                csr: &signing_keys[k],
            })
            .collect();
        let out = a.issue_batch(&signing, &none).unwrap();
        assert!(out.iter().all(|c| c.hierarchy == Hierarchy::Signing));
        assert_eq!(issued(&a), before + 4);
    }

    /// Issue #13: two CA nodes on one store, each with its own sequential counter, issuing
    /// in turn. Each node's counter is behind after the other's issuance, so the store
    /// refuses the serial (`SerialTaken`), the node re-reads the stored counter and signs
    /// again: every certificate keeps its own record, none replaced, serials distinct.
    #[test]
    fn two_nodes_on_one_store_never_replace_each_others_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let pass = b"two nodes passphrase";
        let clock = Arc::new(FixedClock::new(
            time::macros::datetime!(2026-01-10 03:00 UTC),
        ));
        let a =
            Authority::init(&dir, policies::policy::DEFAULT_POLICY, pass, clock.clone()).unwrap();
        assert_eq!(
            a.policy().ca.serials,
            policies::policy::SerialScheme::Sequential
        );
        let b = Authority::open_with(&dir, Arc::clone(a.storage()), Some(pass.to_vec()), clock)
            .unwrap();
        let ids: Vec<String> = ["二局 一", "二局 二", "二局 三", "二局 四"]
            .iter()
            .map(|n| register(&a, n))
            .collect();
        let none = IssueOverrides::default();
        let h = Hierarchy::Auth;
        let mut out = vec![
            a.issue_with(&ids[0], h, &csr(), &none).unwrap(),
            b.issue_with(&ids[1], h, &csr(), &none).unwrap(),
            a.issue_with(&ids[2], h, &csr(), &none).unwrap(),
        ];
        // A third node far ahead: 25 certificates, more than the ten tries of a retry that
        // did not re-read the stored counter.
        let ahead = a.storage().serial_counter(h).unwrap();
        a.storage()
            .transact(&|t| {
                for n in ahead + 1..=ahead + 25 {
                    let c =
                        crate::storage::conformance::ca_cert(h, &super::super::counter_serial(n));
                    t.add_certificate(&c, None)?;
                    t.note_serial(h, n)?;
                }
                Ok(())
            })
            .unwrap();
        let key = csr();
        let batch = [IssueRequest {
            resident: &ids[3],
            hierarchy: h,
            csr: &key,
        }];
        out.extend(b.issue_batch(&batch, &none).unwrap());
        let serials: std::collections::BTreeSet<&String> = out.iter().map(|c| &c.serial).collect();
        assert_eq!(serials.len(), out.len(), "serials repeat: {serials:?}");
        for (k, c) in out.iter().enumerate() {
            let record = a
                .storage()
                .certificate(h, &parse_serial(&c.serial).unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(record.der, c.der, "certificate {k}'s record was replaced");
            assert_eq!(record.holder.as_deref(), Some(ids[k].as_str()));
            let (_, cert) = x509_parser::parse_x509_certificate(&c.der).unwrap();
            assert_eq!(
                hex::encode_upper(cert.raw_serial()),
                c.serial,
                "signed anew"
            );
        }
        assert_eq!(issued(&a), out.len());
        assert_eq!(
            u64::from_str_radix(&out[3].serial, 16).unwrap(),
            ahead + 26,
            "past the third node's serials"
        );
        let highest = out
            .iter()
            .map(|c| u64::from_str_radix(&c.serial, 16).unwrap())
            .max()
            .unwrap();
        assert_eq!(a.storage().serial_counter(h).unwrap(), highest);
    }
}
