//! The resident register and its events: a new resident, an event (move, rename, correction,
//! death, emigration, card loss …) applied with the revocations its rule demands in one unit of
//! work (reference §4), and scheduled events carried out when they fall due.

use policies::lifecycle::{Action, EventKind};
use policies::{validity, Attributes, Hierarchy, Reason, Sex};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use aws_lc_rs::rand::SecureRandom;

use super::{serial_hex, Authority, Revocation};
use crate::error::{Error, Result};
use crate::records::{Change, HistoryLine, Resident, ResidentState, State, StatusRecord};
use crate::storage::{self, Scheduled, ScheduledKind};

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
        /// The continued-use procedure was done: the card stays usable abroad and a signing
        /// certificate for emigrants can be issued after the departure (reference §8).
        #[serde(default)]
        continued_use: bool,
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

/// An override's reason: what the audit trail keeps of why a rule was set aside.
pub(crate) fn check_reason(why: &str) -> Result<()> {
    let n = why.trim().chars().count();
    if !(3..=200).contains(&n) || why.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "an override needs a reason of 3 to 200 printable characters".into(),
        ));
    }
    Ok(())
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

/// Two registrations of the same person: the same name (spaces ignored), date of birth and
/// address.
fn same_person(a: &Attributes, b: &Attributes) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    a.birth() == b.birth()
        && squeeze(a.name()) == squeeze(b.name())
        && squeeze(a.address()) == squeeze(b.address())
}

impl Authority {
    /// Registers a resident (see [`Authority::resident_add_with`]); a second registration of
    /// the same person is refused.
    pub fn resident_add(&self, r: &NewResident) -> Result<String> {
        self.resident_add_with(r, None)
    }

    /// Registers a resident: the four attributes checked, the card's expiry within its life
    /// for the holder's age (policy `[eligibility]`), and no one already registered with the
    /// same name, date of birth and address — unless `allow_duplicate` gives the reason
    /// (recorded in the history and the audit trail).
    pub fn resident_add_with(
        &self,
        r: &NewResident,
        allow_duplicate: Option<&str>,
    ) -> Result<String> {
        let resident = self.new_resident(r, allow_duplicate)?;
        let id = resident.id.clone();
        // One registration at a time in this process, so two clerks registering the same
        // person at once cannot both pass the duplicate check.
        let _one_at_a_time = self.registration.lock().unwrap_or_else(|p| p.into_inner());
        if allow_duplicate.is_none() {
            self.refuse_duplicate(&resident.attributes)?;
        }
        let now = resident.history[0].at;
        let detail = allow_duplicate
            .map(|why| format!("duplicate allowed: {why}"))
            .unwrap_or_default();
        self.storage.transact(&|t| {
            t.put_resident(&resident)?;
            storage::audit(t, now, "resident-add", &id, &detail)
        })?;
        Ok(id)
    }

    /// Registers many residents at once (a company applying for its staff): every row is
    /// checked first — attributes, card expiry, duplicates in the register and within the
    /// rows — and then all are written in one unit of work, or none (`dry_run`: none, after
    /// the same checks). Returns the new ids in row order, or every refused row (0-based)
    /// with its reason.
    pub fn resident_import(
        &self,
        rows: &[NewResident],
        dry_run: bool,
    ) -> std::result::Result<Vec<String>, Vec<(usize, Error)>> {
        let mut refused = Vec::new();
        let mut ready = Vec::new();
        let _one_at_a_time = self.registration.lock().unwrap_or_else(|p| p.into_inner());
        for (i, r) in rows.iter().enumerate() {
            let checked = self.new_resident(r, None).and_then(|res| {
                self.refuse_duplicate(&res.attributes)?;
                if let Some(j) = ready.iter().position(|(_, o): &(usize, Resident)| {
                    same_person(&o.attributes, &res.attributes)
                }) {
                    return Err(Error::Invalid(format!(
                        "the same person as row {} (same name, date of birth and address)",
                        ready[j].0 + 1
                    )));
                }
                Ok(res)
            });
            match checked {
                Ok(res) => ready.push((i, res)),
                Err(e) => refused.push((i, e)),
            }
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        if ready.is_empty() {
            return Err(vec![(
                0,
                Error::Invalid("the file has no residents".into()),
            )]);
        }
        if dry_run {
            return Ok(ready.into_iter().map(|(_, r)| r.id).collect());
        }
        let now = self.clock.now();
        let written = self.storage.transact(&|t| {
            for (_, res) in &ready {
                t.put_resident(res)?;
                storage::audit(t, now, "resident-add", &res.id, "bulk import")?;
            }
            Ok(())
        });
        match written {
            Ok(()) => Ok(ready.into_iter().map(|(_, r)| r.id).collect()),
            Err(e) => Err(vec![(0, e)]),
        }
    }

    /// The register record of a new resident, checked but not yet written.
    fn new_resident(&self, r: &NewResident, override_reason: Option<&str>) -> Result<Resident> {
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
        self.policy
            .eligibility
            .card_expiry(r.birth, today, r.card_expiry)
            .map_err(Error::Ineligible)?;
        if let Some(why) = override_reason {
            check_reason(why)?;
        }
        let mut idb = [0u8; 8];
        self.rng
            .fill(&mut idb)
            .map_err(|_| Error::Invalid("OS random generator failed".into()))?;
        let id = format!("R{}", hex::encode_upper(idb));
        Ok(Resident {
            id,
            attributes,
            prefecture: r.prefecture.clone(),
            municipality: r.municipality.clone(),
            card_expiry: r.card_expiry,
            state: ResidentState::Active,
            card_lost: false,
            departure: None,
            continued_use: false,
            version: 0,
            history: vec![HistoryLine {
                at: now,
                event: "registered".into(),
                certificates: vec![],
                changes: vec![],
                office: Some(r.municipality.clone()),
                override_reason: override_reason.map(str::to_owned),
            }],
            current: Default::default(),
            phone: Default::default(),
            phone_challenge: None,
        })
    }

    /// Refuses a registration of someone already in the register (same name, date of birth
    /// and address; a deceased resident's record does not count): a lookup in the storage's
    /// identity index ([`crate::storage::Storage::residents_by_identity`]), then the address.
    fn refuse_duplicate(&self, new: &Attributes) -> Result<()> {
        let existing = self
            .storage
            .residents_by_identity(new.name(), new.birth())?
            .into_iter()
            .find(|r| r.state != ResidentState::Deceased && same_person(&r.attributes, new));
        match existing {
            Some(r) => Err(Error::DuplicateResident(r.id)),
            None => Ok(()),
        }
    }

    /// Applies a resident-register event and the revocations its rule demands, in one
    /// transaction (reference §4).
    pub fn event(&self, id: &str, event: &Event) -> Result<EventOutcome> {
        self.event_with(id, event, None)
    }

    /// What [`Authority::event`] would do now — the same checks, the resident's new state and
    /// the revocations its rule demands — changing nothing (`--dry-run`).
    pub fn event_preview(&self, id: &str, event: &Event) -> Result<EventOutcome> {
        self.event_once(id, event, None, true)
    }

    /// [`Authority::event`], carrying out the scheduled event `pending` (which the unit of work
    /// removes) when given.
    fn event_with(
        &self,
        id: &str,
        event: &Event,
        pending: Option<&Scheduled>,
    ) -> Result<EventOutcome> {
        // The holder's certificates are listed outside the transaction (sled cannot scan in
        // one); the resident's version, bumped by issuance and by every event, detects a
        // concurrent change, and the transaction is then retried.
        let _one_at_a_time = self.lock_resident(id);
        for _ in 0..5 {
            match self.event_once(id, event, pending, false) {
                Err(Error::Retry) => continue,
                other => return other,
            }
        }
        Err(Error::Invalid(
            "the resident kept changing concurrently; try again".into(),
        ))
    }

    fn event_once(
        &self,
        id: &str,
        event: &Event,
        pending: Option<&Scheduled>,
        dry_run: bool,
    ) -> Result<EventOutcome> {
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
        if pending.is_some() && before.state == ResidentState::Emigrating {
            // The departure reported earlier has come: carry the emigration out now.
            after.state = ResidentState::Active;
        }
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
                if before.state == ResidentState::Emigrated {
                    // Back in Japan (転入): a resident again; the annex certificate is revoked by
                    // the rule below like any signing certificate.
                    after.state = ResidentState::Active;
                    after.departure = None;
                    after.continued_use = false;
                }
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
            Event::Emigrate {
                departure,
                continued_use,
            } => {
                if before.state == ResidentState::Emigrated {
                    return Err(Error::Invalid(format!(
                        "resident {id} has already emigrated"
                    )));
                }
                let d = departure.unwrap_or(today);
                after.departure = Some(d);
                after.continued_use = *continued_use;
                let start = departure_instant(d);
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
                self.policy
                    .eligibility
                    .card_expiry(a.birth(), today, *card_expiry)
                    .map_err(Error::Ineligible)?;
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
            changes: Change::between(&before, &after),
            office: Some(after.municipality.clone()),
            override_reason: None,
        });
        let departure = scheduled.map(|d| Scheduled {
            at: departure_instant(d),
            resident: id.to_owned(),
            kind: ScheduledKind::Emigrate,
        });
        if dry_run {
            return Ok(EventOutcome {
                resident: id.to_owned(),
                event: kind.as_str().to_owned(),
                state: after.state,
                revocations: plan.into_iter().map(|(_, _, r)| r).collect(),
                scheduled,
            });
        }
        self.storage.transact(&|t| {
            let current = t
                .resident(id)?
                .ok_or_else(|| Error::UnknownResident(id.to_owned()))?;
            if current.version != before.version {
                return Err(Error::Retry);
            }
            t.put_resident(&after)?;
            if let Some(due) = &pending {
                // The scheduled event is carried out by this unit of work.
                t.unschedule(due)?;
            }
            storage::audit(
                t,
                now,
                &format!("event:{}", kind.as_str()),
                id,
                &format!("{} certificate(s) affected", plan.len()),
            )?;
            for (c, seen, rev) in &plan {
                let status = t
                    .status(c.hierarchy, &c.serial)?
                    .ok_or_else(|| Error::Store("certificate without status".into()))?;
                if status.state != *seen {
                    return Err(Error::Retry);
                }
                t.change_status(
                    c,
                    &StatusRecord {
                        state: rev.status,
                        reason: Some(rev.reason),
                        since: Some(rev.revoked_at),
                        invalidity: None,
                    },
                    rev.revoked_at,
                )?;
                storage::audit(
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
            if let Some(s) = &departure {
                t.schedule(s)?;
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

    /// Carries out the scheduled events that have fallen due (emigrations whose departure
    /// has come): each as the event itself, revoking as of the due time, in one unit of work
    /// that also removes it from the schedule. `jpki serve` calls this on a timer;
    /// `jpki events apply-due` for an install without a server.
    pub fn apply_due(&self) -> Result<Vec<EventOutcome>> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for due in self.storage.due_events(now)? {
            let r = self.resident(&due.resident)?;
            match due.kind {
                ScheduledKind::Emigrate if r.state == ResidentState::Emigrating => {
                    out.push(self.event_with(
                        &due.resident,
                        &Event::Emigrate {
                            departure: r.departure,
                            continued_use: r.continued_use,
                        },
                        Some(&due),
                    )?);
                }
                // Superseded (the resident died or the emigration already happened): drop it.
                ScheduledKind::Emigrate => self.storage.transact(&|t| {
                    t.unschedule(&due)?;
                    storage::audit(
                        t,
                        now,
                        "schedule-drop",
                        &due.resident,
                        &format!("{} no longer applies", due.kind.as_str()),
                    )
                })?,
            }
        }
        Ok(out)
    }
}

/// When an emigration on `departure` takes effect: the start of that day in Japan.
fn departure_instant(departure: Date) -> OffsetDateTime {
    time::PrimitiveDateTime::new(departure, time::Time::MIDNIGHT)
        .assume_offset(validity::JST)
        .to_offset(time::UtcOffset::UTC)
}
