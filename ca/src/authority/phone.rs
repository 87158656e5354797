//! Smartphone certificates (スマホ用電子証明書, reference §6): a signing and an
//! authentication certificate for one smartphone, issued on the authority of the holder's
//! card. Read top-down:
//!
//! 1. [`Authority::phone_challenge`] — the CA hands out a fresh one-use challenge (32 random
//!    octets) and keeps it on the resident record ([`Resident::phone_challenge`]); a newer
//!    challenge replaces an older one, and it lapses after [`CHALLENGE_LIFETIME`].
//! 2. The card's **authentication key** signs [`authorisation_message`]: a fixed context
//!    string, the challenge and the SHA-256 of each of the phone's CSRs (raw
//!    sha256WithRSAEncryption, as the card answers a login challenge). This binds the phone's
//!    keys to the card holder and to this one application.
//! 3. [`Authority::phone_issue`] checks the challenge (the open one, not lapsed), the
//!    signature against the holder's **live** card authentication certificate, and issues the
//!    phone's certificates in one unit of work that also clears the challenge (so it cannot be
//!    replayed) and supersedes the previous phone's certificates (one phone at a time).
//!
//! Rules:
//! * An application with an authentication CSR is a **new phone**: every live certificate of
//!   the previous phone (good or held) is revoked, superseded. An application with only a
//!   signing CSR re-issues the signing certificate of the **current** phone (after
//!   [`Authority::phone_found`]), which needs that phone's authentication certificate good.
//! * notAfter is the card certificates' rule ([`validity::not_after`]) capped by the live
//!   card authentication certificate's notAfter, and for a signing certificate also by the
//!   live card signing certificate's ([`Bound::CardCertificate`]).
//! * Phone certificates are their own kinds ([`CertKind::PhoneSigning`],
//!   [`CertKind::PhoneAuth`]), tracked apart from the card's ([`Resident::phone`]), so the
//!   card's renewal window neither blocks them nor is blocked by them, and they never
//!   supersede a card certificate. They are issued by the same roots and share the
//!   hierarchies' CRLs and OCSP, so the register events act on them like on the card's
//!   (card renewal revokes them, superseded; card lost holds them; a move revokes the phone
//!   signing certificate).
//! * **The marker** (the real one is not confirmed, reference §6 [U]): a phone certificate
//!   carries the card certificate's certificatePolicies OID followed by one more arc,
//!   [`PHONE_POLICY_ARC`] (`1.2.392.200149.8.5.1.3.30` → `1.2.392.200149.8.5.1.3.30.1` with
//!   the default policy). A relying party matching the card's policy OID exactly therefore
//!   refuses phone certificates — as PocketSign's API is reported to — and one that wants them
//!   can tell them apart by the OID alone. Names and extensions are otherwise the card's.
//! * Phone lost ([`Authority::phone_lost`]): both held (certificateHold). Phone found
//!   ([`Authority::phone_found`]): the authentication certificate's hold is **lifted** (the
//!   only release in the system; a card certificate's hold never is) and the signing
//!   certificate is revoked (cessationOfOperation), to be re-issued by a new application.
//! * A phone key must be new: a public key already certified (to anyone, for any kind) is
//!   refused, and so is the same key in both CSRs.

use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use policies::lint::{self, Expect, Shape};
use policies::profile::{self, Holder, Window};
use policies::validity::{self, Bound, ValidityInput};
use policies::{Hierarchy, Reason};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::issue::Issued;
use super::{parse_serial, serial_hex, Authority};
use crate::csr;
use crate::error::{Error, Result};
use crate::records::{
    pem, CertKind, CertRecord, HistoryLine, PhoneChallenge, Resident, ResidentState, State,
    StatusRecord,
};
use crate::storage::{self, KeyFingerprint, Tx};

/// How long a phone challenge may be answered.
pub const CHALLENGE_LIFETIME: Duration = Duration::minutes(5);

/// The arc appended to a hierarchy's certificatePolicies OID in phone certificates.
pub const PHONE_POLICY_ARC: u32 = 1;

/// The context string at the start of [`authorisation_message`].
const CONTEXT: &[u8] = b"jpki smartphone certificate application v1\0";

/// A challenge handed out for a phone application.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ChallengeIssued {
    pub resident: String,
    /// 32 octets, lower-case hex.
    pub challenge: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// A phone's application: its CSRs (PEM or DER), the challenge answered and the card's
/// authentication-key signature over [`authorisation_message`].
#[derive(Debug, Clone, Copy)]
pub struct PhoneApplication<'a> {
    pub auth_csr: Option<&'a [u8]>,
    pub signing_csr: Option<&'a [u8]>,
    /// The challenge, hex.
    pub challenge: &'a str,
    pub authorisation: &'a [u8],
}

/// The answer to a phone issuance.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PhoneIssued {
    pub resident: String,
    /// The new certificates (kind phone-auth and/or phone-signing).
    pub certificates: Vec<Issued>,
    /// The previous phone's certificates this issuance revoked (`hierarchy:serial`).
    pub superseded: Vec<String>,
}

/// What a phone lost / found report did (`hierarchy:serial state`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PhoneOutcome {
    pub resident: String,
    pub changed: Vec<String>,
}

/// The certificatePolicies OID of a phone certificate, from the card's ([`PHONE_POLICY_ARC`]).
pub fn phone_policy_oid(card_oid: &str) -> String {
    format!("{card_oid}.{PHONE_POLICY_ARC}")
}

/// The octets the card's authentication key signs to authorise a phone application:
/// `CONTEXT ‖ challenge ‖ SHA-256(auth CSR DER or empty) ‖ SHA-256(signing CSR DER or empty)`.
/// CSRs may be given as PEM or DER; the DER is hashed.
pub fn authorisation_message(
    challenge: &[u8],
    auth_csr: Option<&[u8]>,
    signing_csr: Option<&[u8]>,
) -> Result<Vec<u8>> {
    use sha2::Digest;
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(challenge);
    for csr in [auth_csr, signing_csr] {
        let der = match csr {
            Some(c) => csr_der(c)?,
            None => Vec::new(),
        };
        m.extend_from_slice(&sha2::Sha256::digest(&der));
    }
    Ok(m)
}

/// The DER of a CSR given as PEM or DER.
fn csr_der(input: &[u8]) -> Result<Vec<u8>> {
    if input.trim_ascii_start().starts_with(b"-----") {
        let (_, p) = x509_parser::pem::parse_x509_pem(input)
            .map_err(|e| Error::Invalid(format!("CSR PEM: {e}")))?;
        Ok(p.contents)
    } else {
        Ok(input.to_vec())
    }
}

/// One phone certificate signed and ready to commit.
struct PhoneCert {
    h: Hierarchy,
    fp: KeyFingerprint,
    serial: Vec<u8>,
    counter: u64,
    bound: Bound,
    record: CertRecord,
    /// The CRL partition had no CRL yet when the certificate was prepared.
    new_partition: bool,
}

/// A phone issuance signed and ready to commit.
struct Prepared {
    resident_id: String,
    resident_version: u64,
    now: OffsetDateTime,
    certs: Vec<PhoneCert>,
    /// The previous phone's certificates to revoke, with the status they were seen in.
    supersede: Vec<(CertRecord, State)>,
}

impl Authority {
    /// Hands out a fresh challenge for a phone application by resident `id`, who must hold a
    /// valid card (live authentication certificate, card not reported lost).
    pub fn phone_challenge(&self, id: &str) -> Result<ChallengeIssued> {
        let _one_at_a_time = self.lock_resident(id);
        let now = self.clock.now();
        let resident = self.resident(id)?;
        self.card_auth(&resident, now)?;
        let mut value = [0u8; 32];
        self.rng
            .fill(&mut value)
            .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
        let mut after = resident.clone();
        after.version += 1;
        after.phone_challenge = Some(PhoneChallenge {
            value: hex::encode(value),
            issued_at: now,
        });
        self.storage.transact(&|t| {
            let current = t
                .resident(id)?
                .ok_or_else(|| Error::UnknownResident(id.to_owned()))?;
            if current.version != resident.version {
                return Err(Error::Invalid(
                    "the resident changed concurrently; ask for a challenge again".into(),
                ));
            }
            t.put_resident(&after)?;
            storage::audit(t, now, "phone-challenge", id, "challenge issued")
        })?;
        Ok(ChallengeIssued {
            resident: id.to_owned(),
            challenge: hex::encode(value),
            expires: now + CHALLENGE_LIFETIME,
        })
    }

    /// Issues a phone's certificates to resident `id` from an application authorised by the
    /// card (module docs). Anything wrong is refused and changes nothing.
    pub fn phone_issue(&self, id: &str, app: &PhoneApplication<'_>) -> Result<PhoneIssued> {
        if app.auth_csr.is_none() && app.signing_csr.is_none() {
            return Err(Error::Invalid(
                "a phone application needs an authentication CSR (new phone) or a signing CSR \
                 (re-issue for the current phone)"
                    .into(),
            ));
        }
        let min = self.policy.limits.min_rsa_bits;
        let mut csrs = Vec::new();
        if let Some(c) = app.auth_csr {
            csrs.push((Hierarchy::Auth, csr::verify(c, min)?));
        }
        if let Some(c) = app.signing_csr {
            csrs.push((Hierarchy::Signing, csr::verify(c, min)?));
        }
        if csrs.len() == 2 && csrs[0].1.spki == csrs[1].1.spki {
            return Err(Error::Refused(
                "the phone's signing and authentication CSRs carry the same key; each needs its own"
                    .into(),
            ));
        }
        let challenge = hex::decode(app.challenge.trim())
            .map_err(|_| Error::Invalid("the phone challenge is not hexadecimal".into()))?;
        let message = authorisation_message(&challenge, app.auth_csr, app.signing_csr)?;
        let _one_at_a_time = self.lock_resident(id);
        for _ in 0..10 {
            let p = self.prepare_phone(id, app, &csrs, &message)?;
            match self.storage.transact(&|t| self.commit_phone(&p, t)) {
                Err(Error::Retry) => continue,
                Err(e) if self.serial_taken(&e)? => continue,
                Err(e) => return Err(e),
                Ok(()) => {
                    for (c, _) in &p.supersede {
                        self.notify(c);
                    }
                    return Ok(self.phone_issued(p));
                }
            }
        }
        Err(Error::Invalid(
            "the resident kept changing concurrently; try again".into(),
        ))
    }

    /// The holder's live card authentication certificate (good, not expired), which a phone
    /// application needs; the card must not be reported lost.
    fn card_auth(&self, r: &Resident, now: OffsetDateTime) -> Result<CertRecord> {
        if r.state == ResidentState::Deceased {
            return Err(Error::Refused(format!("resident {} is deceased", r.id)));
        }
        if r.card_lost {
            return Err(Error::Refused(format!(
                "the card of resident {} is reported lost; no phone certificate is issued on it",
                r.id
            )));
        }
        self.live_of(
            r.current.get(&Hierarchy::Auth),
            Hierarchy::Auth,
            now,
            &[State::Good],
        )?
        .map(|(c, _)| c)
        .ok_or_else(|| {
            Error::Refused(format!(
                "resident {} has no valid card authentication certificate; phone \
                     certificates are issued only on a valid card",
                r.id
            ))
        })
    }

    /// The certificate `serial` (hex, from a resident record) of `h` if its status is one of
    /// `states` and it has not expired.
    fn live_of(
        &self,
        serial: Option<&String>,
        h: Hierarchy,
        now: OffsetDateTime,
        states: &[State],
    ) -> Result<Option<(CertRecord, State)>> {
        let Some(serial) = serial else {
            return Ok(None);
        };
        let Some(c) = self.storage.certificate(h, &parse_serial(serial)?)? else {
            return Ok(None);
        };
        let st = self.status_of(&c)?.state;
        Ok((states.contains(&st) && c.not_after > now).then_some((c, st)))
    }

    fn prepare_phone(
        &self,
        id: &str,
        app: &PhoneApplication<'_>,
        csrs: &[(Hierarchy, csr::VerifiedCsr)],
        message: &[u8],
    ) -> Result<Prepared> {
        let now = self.clock.now();
        let resident = self.resident(id)?;
        let card_auth = self.card_auth(&resident, now)?;
        // The challenge: the open one, answered in time. It is cleared by the issuance.
        let open = resident.phone_challenge.as_ref().ok_or_else(|| {
            Error::Refused(format!(
                "resident {id} has no open phone challenge (it was used or never issued): ask \
                 for a new one"
            ))
        })?;
        if !open.value.eq_ignore_ascii_case(app.challenge.trim()) {
            return Err(Error::Refused(
                "the phone challenge is not the open one (stale or replaced): ask for a new one"
                    .into(),
            ));
        }
        if now > open.issued_at + CHALLENGE_LIFETIME {
            return Err(Error::Refused(format!(
                "the phone challenge lapsed at {}: ask for a new one",
                open.issued_at + CHALLENGE_LIFETIME
            )));
        }
        // The card's authentication key must have signed this application.
        let card_spki = card_auth.spki()?;
        let (_, spki) = <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<
            _,
        >>::from_der(&card_spki)
        .map_err(|e| Error::Store(format!("card authentication key: {e}")))?;
        UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            spki.subject_public_key.data.as_ref(),
        )
        .verify(message, app.authorisation)
        .map_err(|_| {
            Error::Refused(
                "the phone application is not authorised by the card: the signature does not \
                 verify with the holder's card authentication key over this challenge and these \
                 CSRs"
                    .into(),
            )
        })?;
        let new_phone = app.auth_csr.is_some();
        let live_phone =
            |h: Hierarchy, states: &[State]| self.live_of(resident.phone.get(&h), h, now, states);
        let mut supersede = Vec::new();
        if new_phone {
            for h in Hierarchy::ALL {
                supersede.extend(live_phone(h, &[State::Good, State::Held])?);
            }
        } else {
            if live_phone(Hierarchy::Auth, &[State::Good])?.is_none() {
                return Err(Error::Refused(format!(
                    "resident {id} has no phone with a good authentication certificate; a signing \
                     CSR alone re-issues the current phone's signing certificate — a new phone \
                     applies with both CSRs"
                )));
            }
            supersede.extend(live_phone(Hierarchy::Signing, &[State::Good, State::Held])?);
        }
        let mut certs = Vec::new();
        for (h, csr) in csrs {
            let h = *h;
            let mut cap = card_auth.not_after;
            if h == Hierarchy::Signing {
                if matches!(
                    resident.state,
                    ResidentState::Emigrating | ResidentState::Emigrated
                ) {
                    return Err(Error::Refused(format!(
                        "resident {id} is emigrating or has emigrated: no phone signing \
                         certificate is issued (the emigrant certificate is the card's)"
                    )));
                }
                self.policy
                    .eligibility
                    .may_sign(resident.attributes.birth(), validity::jst_date(now))
                    .map_err(Error::Ineligible)?;
                let (card_signing, _) = self
                    .live_of(resident.current.get(&h), h, now, &[State::Good])?
                    .ok_or_else(|| {
                        Error::Refused(format!(
                            "resident {id} has no valid card signing certificate; a phone signing \
                             certificate is issued only on one"
                        ))
                    })?;
                cap = cap.min(card_signing.not_after);
            }
            let fp = storage::fingerprint(&csr.spki);
            if self.storage.key_blocked(&fp)? {
                return Err(Error::KeyBlocked(hex::encode(fp)));
            }
            if self.storage.key_owner(&fp)?.is_some() {
                return Err(Error::Refused(format!(
                    "the phone's {h} key is already certified; a phone certificate needs a new key"
                )));
            }
            let (mut not_after, mut bound) = validity::not_after(
                &self.policy.validity,
                &ValidityInput {
                    issued_at: now,
                    birth: resident.attributes.birth(),
                    card_expiry: resident.card_expiry,
                    renewing: None,
                    auth_not_after: None,
                },
            )?;
            if cap < not_after {
                (not_after, bound) = (cap, Bound::CardCertificate);
            }
            certs.push(self.sign_phone(&resident, h, &csr.spki, fp, now, not_after, bound)?);
        }
        Ok(Prepared {
            resident_id: id.to_owned(),
            resident_version: resident.version,
            now,
            certs,
            supersede,
        })
    }

    /// Builds, lints and signs one phone certificate: the card profile under the phone's
    /// certificatePolicies OID ([`phone_policy_oid`]).
    #[allow(clippy::too_many_arguments)]
    fn sign_phone(
        &self,
        resident: &Resident,
        h: Hierarchy,
        spki: &[u8],
        fp: KeyFingerprint,
        now: OffsetDateTime,
        not_after: OffsetDateTime,
        bound: Bound,
    ) -> Result<PhoneCert> {
        let mut policy = self.policy.clone();
        match h {
            Hierarchy::Signing => {
                policy.signing.policy_oid = phone_policy_oid(&policy.signing.policy_oid)
            }
            Hierarchy::Auth => policy.auth.policy_oid = phone_policy_oid(&policy.auth.policy_oid),
        }
        let (serial, counter) = self.new_serial(h)?;
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
        let issuer = profile::Issuer {
            key_id: &root.key_id,
            serial: &root.serial,
            generation: root.generation,
        };
        let w = Window {
            serial: &serial,
            not_before: now,
            not_after,
        };
        // The CRL partition, fixed for the certificate's life, as for card certificates: the
        // holder's municipality at issuance (or the serial's under the old scheme).
        let place = policies::Municipality::new(&resident.prefecture, &resident.municipality)?;
        let partition = self.policy.new_partition(&serial, &place);
        let new_partition = self
            .storage
            .crl_state(h, root.generation, partition.clone())?
            .is_none();
        let tbs = profile::leaf_tbs(&policy, &holder, &cn, w, &partition, spki, issuer)?;
        let shape = match holder {
            Holder::Signing { attributes, .. } => Shape::Signing { attributes },
            Holder::Auth => Shape::Auth,
        };
        lint::check(
            &policy,
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
        let der = profile::assemble(&tbs, &sig)?;
        Ok(PhoneCert {
            h,
            fp,
            serial: serial.clone(),
            counter,
            bound,
            record: CertRecord {
                hierarchy: h,
                serial,
                kind: CertKind::phone(h),
                holder: Some(resident.id.clone()),
                partition: Some(partition),
                generation: root.generation,
                not_before: now,
                not_after,
                der,
            },
            new_partition,
        })
    }

    /// The issuance's unit of work: nothing it relied on changed (else re-plan), the
    /// certificates, the resident's phone slots, the challenge cleared, the previous phone's
    /// certificates revoked (superseded), the audit records.
    fn commit_phone(&self, p: &Prepared, t: &dyn Tx) -> Result<()> {
        let current = t
            .resident(&p.resident_id)?
            .ok_or_else(|| Error::UnknownResident(p.resident_id.clone()))?;
        if current.version != p.resident_version {
            return Err(Error::Retry);
        }
        let mut after = current;
        after.version += 1;
        after.phone_challenge = None;
        for c in &p.certs {
            if t.key_blocked(&c.fp)? {
                return Err(Error::KeyBlocked(hex::encode(c.fp)));
            }
            if t.key_owner(&c.fp)?.is_some() {
                return Err(Error::Refused(format!(
                    "the phone's {} key is already certified; a phone certificate needs a new key",
                    c.h
                )));
            }
            // A taken serial (another CA node): `add_certificate` refuses it.
            after.phone.insert(c.h, serial_hex(&c.serial));
            t.add_certificate(&c.record, Some(&c.fp))?;
            if c.new_partition {
                if let Some(scope) = &c.record.partition {
                    // The partition's first (empty) CRL gets published.
                    t.set_crl_dirty(c.h, c.record.generation, scope.clone())?;
                }
            }
            if c.counter > 0 {
                t.note_serial(c.h, c.counter)?;
            }
            storage::audit(
                t,
                p.now,
                "issue",
                &format!("{}:{}", c.h, serial_hex(&c.serial)),
                &format!(
                    "{} for {}, notAfter {}; authorised by the card",
                    c.record.kind.as_str(),
                    p.resident_id,
                    c.record.not_after
                ),
            )?;
        }
        for (old, seen) in &p.supersede {
            let st = t
                .status(old.hierarchy, &old.serial)?
                .ok_or_else(|| Error::Store("certificate without status".into()))?;
            if st.state != *seen {
                return Err(Error::Retry);
            }
            t.change_status(old, &revoked(Reason::Superseded, p.now), p.now)?;
            storage::audit(
                t,
                p.now,
                "revoke",
                &format!("{}:{}", old.hierarchy, serial_hex(&old.serial)),
                "superseded (new phone certificate)",
            )?;
        }
        after.history.push(HistoryLine {
            at: p.now,
            event: "phone-issue".into(),
            certificates: p
                .certs
                .iter()
                .map(|c| format!("{}:{}", c.h, serial_hex(&c.serial)))
                .chain(
                    p.supersede
                        .iter()
                        .map(|(c, _)| format!("{}:{}", c.hierarchy, serial_hex(&c.serial))),
                )
                .collect(),
            changes: vec![],
            office: Some(after.municipality.clone()),
            override_reason: None,
        });
        t.put_resident(&after)
    }

    fn phone_issued(&self, p: Prepared) -> PhoneIssued {
        let superseded = p
            .supersede
            .iter()
            .map(|(c, _)| format!("{}:{}", c.hierarchy, serial_hex(&c.serial)))
            .collect();
        let certificates = p
            .certs
            .into_iter()
            .map(|c| Issued {
                serial: serial_hex(&c.serial),
                hierarchy: c.h,
                kind: c.record.kind,
                resident: p.resident_id.clone(),
                not_before: p.now,
                not_after: c.record.not_after,
                bound: c.bound,
                partition: c
                    .record
                    .partition
                    .clone()
                    .unwrap_or(policies::profile::Scope::Ca),
                superseded: None,
                pem: pem(&c.record.der),
                der: c.record.der,
            })
            .collect();
        PhoneIssued {
            resident: p.resident_id,
            certificates,
            superseded,
        }
    }

    /// The phone is lost: its good certificates are put on hold (certificateHold).
    pub fn phone_lost(&self, id: &str) -> Result<PhoneOutcome> {
        self.phone_status_change(id, "phone-lost", |_, st| {
            (st == State::Good).then_some(StatusRecord {
                state: State::Held,
                reason: Some(Reason::CertificateHold),
                since: None,
                invalidity: None,
            })
        })
    }

    /// The lost phone is found: the held authentication certificate is released (good
    /// again), the held signing certificate is revoked (cessationOfOperation) and must be
    /// re-issued by a new application with a signing CSR.
    pub fn phone_found(&self, id: &str) -> Result<PhoneOutcome> {
        self.phone_status_change(id, "phone-found", |h, st| match (h, st) {
            (Hierarchy::Auth, State::Held) => Some(StatusRecord::GOOD),
            (Hierarchy::Signing, State::Held) => Some(StatusRecord {
                state: State::Revoked,
                reason: Some(Reason::CessationOfOperation),
                since: None,
                invalidity: None,
            }),
            _ => None,
        })
    }

    /// Applies `rule` to the current phone's live certificates in one unit of work; refuses
    /// (changing nothing) when it changes none. A `since` of `None` in the rule's answer is
    /// filled with now.
    fn phone_status_change(
        &self,
        id: &str,
        event: &str,
        rule: impl Fn(Hierarchy, State) -> Option<StatusRecord>,
    ) -> Result<PhoneOutcome> {
        let _one_at_a_time = self.lock_resident(id);
        let now = self.clock.now();
        let resident = self.resident(id)?;
        let mut plan = Vec::new();
        for h in Hierarchy::ALL {
            let live = self.live_of(resident.phone.get(&h), h, now, &[State::Good, State::Held])?;
            if let Some((c, st)) = live {
                if let Some(mut new) = rule(h, st) {
                    if new.state != State::Good {
                        new.since = Some(now);
                    }
                    plan.push((c, st, new));
                }
            }
        }
        if plan.is_empty() {
            return Err(Error::Refused(format!(
                "resident {id} has no phone certificate that {event} applies to"
            )));
        }
        let mut after = resident.clone();
        after.version += 1;
        after.history.push(HistoryLine {
            at: now,
            event: event.into(),
            certificates: plan
                .iter()
                .map(|(c, _, _)| format!("{}:{}", c.hierarchy, serial_hex(&c.serial)))
                .collect(),
            changes: vec![],
            office: Some(after.municipality.clone()),
            override_reason: None,
        });
        self.storage.transact(&|t| {
            let current = t
                .resident(id)?
                .ok_or_else(|| Error::UnknownResident(id.to_owned()))?;
            if current.version != resident.version {
                return Err(Error::Invalid(
                    "the resident changed concurrently; try again".into(),
                ));
            }
            t.put_resident(&after)?;
            for (c, seen, new) in &plan {
                let st = t
                    .status(c.hierarchy, &c.serial)?
                    .ok_or_else(|| Error::Store("certificate without status".into()))?;
                if st.state != *seen {
                    return Err(Error::Invalid(
                        "a phone certificate changed concurrently; try again".into(),
                    ));
                }
                t.change_status(c, new, now)?;
                let action = match new.state {
                    State::Good => "release",
                    State::Held => "hold",
                    State::Revoked => "revoke",
                };
                storage::audit(
                    t,
                    now,
                    action,
                    &format!("{}:{}", c.hierarchy, serial_hex(&c.serial)),
                    &format!(
                        "{event}: {}",
                        new.reason.map(Reason::as_str).unwrap_or("hold lifted")
                    ),
                )?;
            }
            Ok(())
        })?;
        for (c, _, _) in &plan {
            self.notify(c);
        }
        Ok(PhoneOutcome {
            resident: id.to_owned(),
            changed: plan
                .iter()
                .map(|(c, _, new)| {
                    format!(
                        "{}:{} {}",
                        c.hierarchy,
                        serial_hex(&c.serial),
                        new.state.as_str()
                    )
                })
                .collect(),
        })
    }
}

fn revoked(reason: Reason, at: OffsetDateTime) -> StatusRecord {
    StatusRecord {
        state: State::Revoked,
        reason: Some(reason),
        since: Some(at),
        invalidity: None,
    }
}
