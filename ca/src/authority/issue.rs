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
    der: Vec<u8>,
}

impl Authority {
    /// Issues a certificate of `h` to a resident from a CSR (PEM or DER).
    pub fn issue(&self, resident_id: &str, h: Hierarchy, csr_bytes: &[u8]) -> Result<Issued> {
        let csr = csr::verify(csr_bytes, self.policy.limits.min_rsa_bits)?;
        let _one_at_a_time = self.lock_resident(resident_id);
        for _ in 0..10 {
            let p = self.prepare(resident_id, h, &csr)?;
            match self.storage.transact(&|t| self.commit_issue(&p, t)) {
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
        let resident: Resident = self.resident(resident_id)?;
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
        let fp = storage::fingerprint(&csr.spki);
        let key_owner = KeyOwner {
            holder: resident_id.to_owned(),
            hierarchy: h,
        };
        // Checked before signing, and again in the transaction.
        if self.storage.key_blocked(&fp)? {
            return Err(Error::KeyBlocked(hex::encode(fp)));
        }
        key_is_theirs(self.storage.key_owner(&fp)?, &key_owner)?;
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
        let new_partition = self.storage.crl_state(h, partition.clone())?.is_none();
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
        let issuer = profile::Issuer {
            key_id: &root.key_id,
            serial: &root.serial,
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
            der,
        })
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
        key_is_theirs(t.key_owner(&p.fp)?, &p.key_owner)?;
        if t.certificate_exists(p.h, &p.serial)? {
            return Err(Error::Retry);
        }
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
            t.set_crl_dirty(p.h, p.partition.clone())?;
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
                "{} for {}, notAfter {}",
                CertKind::of(p.h).as_str(),
                p.resident_id,
                p.not_after
            ),
        )?;
        if let Some(old) = &p.previous {
            let st = t
                .status(old.hierarchy, &old.serial)?
                .ok_or_else(|| Error::Store("certificate without status".into()))?;
            if st.state == State::Good {
                t.set_status(
                    old,
                    &StatusRecord {
                        state: State::Revoked,
                        reason: Some(Reason::Superseded),
                        since: Some(p.now),
                        invalidity: None,
                    },
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
    fn opaque_id(&self, now: OffsetDateTime) -> Result<String> {
        let mut r = [0u8; 10];
        self.rng
            .fill(&mut r)
            .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
        Ok(profile::leaf_cn(now, &r))
    }
}
