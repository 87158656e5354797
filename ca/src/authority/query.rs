//! What the read commands show: certificates with their status, residents with their
//! certificates and history, the audit chain's check.

use policies::{Hierarchy, Reason, Sex};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use super::{serial_hex, Authority};
use crate::audit;
use crate::error::{Error, Result};
use crate::records::{
    CertKind, CertRecord, HistoryLine, Resident, ResidentState, State, StatusChange, StatusRecord,
};

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
    pub partition: Option<policies::profile::Scope>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub pem: String,
    /// Every change of the status, oldest first (`cert show` only; issue #18).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<StatusChange>,
}

/// What `jpki cert list` filters by (every field optional; all given must match).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CertQuery {
    pub resident: Option<String>,
    pub hierarchy: Option<Hierarchy>,
    pub kind: Option<CertKind>,
    pub status: Option<State>,
    /// Only certificates whose notAfter is before this instant (certificates expiring soon).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expiring_before: Option<OffsetDateTime>,
    /// The previous page's `next`: `hierarchy:SERIAL`.
    pub after: Option<String>,
    /// At most this many (1 to 10,000).
    pub limit: usize,
}

/// A page of certificates: `next` is the `after` of the next page, if there is one.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CertPage {
    pub certificates: Vec<CertView>,
    pub next: Option<String>,
}

/// A `cert list` cursor, `hierarchy:SERIAL` (hex), as the ordering key: hierarchy, then the
/// serial's numeric order (a shorter minimal encoding is a smaller number).
fn parse_cursor(text: &str) -> Result<(u8, usize, Vec<u8>)> {
    let bad = || {
        Error::Invalid(format!(
            "cursor `{text}` is not a `next` value of cert list (hierarchy:SERIAL)"
        ))
    };
    let (h, serial) = text.split_once(':').ok_or_else(bad)?;
    let h: Hierarchy = h.parse().map_err(|_| bad())?;
    let serial = super::parse_serial(serial).map_err(|_| bad())?;
    Ok((h.tag(), serial.len(), serial))
}

/// What a clerk searches the register by (every field optional; all given must match).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ResidentQuery {
    /// Part of the name; spaces (ASCII or ideographic) are ignored on both sides.
    pub name: Option<String>,
    #[serde(with = "policies::model::iso_date::option", default)]
    pub birth: Option<Date>,
    pub municipality: Option<String>,
    pub state: Option<ResidentState>,
    /// Only residents whose id sorts after this one (the previous page's last id).
    pub after: Option<String>,
    /// At most this many (1 to 1000).
    pub limit: usize,
}

/// One line of a register search.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ResidentSummary {
    pub id: String,
    pub name: String,
    #[serde(with = "policies::model::iso_date")]
    pub birth: Date,
    pub prefecture: String,
    pub municipality: String,
    pub state: ResidentState,
    pub card_lost: bool,
}

/// A page of a register search: `next` is the `after` of the next page, if there is one.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ResidentPage {
    pub residents: Vec<ResidentSummary>,
    pub next: Option<String>,
}

fn without_spaces(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
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
    /// Emigrated after the continued-use procedure (the card stays usable abroad).
    #[serde(default)]
    pub continued_use: bool,
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

impl Authority {
    pub fn resident(&self, id: &str) -> Result<Resident> {
        self.storage
            .resident(id)?
            .ok_or_else(|| Error::UnknownResident(id.to_owned()))
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
            continued_use: r.continued_use,
            certificates,
            history: r.history,
        })
    }

    /// Residents matching `q`, in id order, a page at a time. Reads the whole register (a
    /// full scan: fine for a municipality's store; an index by name and birth date is the
    /// national-scale follow-up).
    pub fn resident_search(&self, q: &ResidentQuery) -> Result<ResidentPage> {
        if !(1..=1000).contains(&q.limit) {
            return Err(Error::Invalid(format!(
                "limit must be 1 to 1000, got {}",
                q.limit
            )));
        }
        let name = q.name.as_deref().map(without_spaces);
        if name.as_deref() == Some("") {
            return Err(Error::Invalid("name: give at least one character".into()));
        }
        let mut residents = Vec::new();
        let mut more = false;
        self.storage.for_each_resident(&mut |r: Resident| {
            if more || q.after.as_deref().is_some_and(|a| r.id.as_str() <= a) {
                return Ok(());
            }
            let a = &r.attributes;
            let hit = name
                .as_deref()
                .is_none_or(|n| without_spaces(a.name()).contains(n))
                && q.birth.is_none_or(|b| a.birth() == b)
                && q.municipality
                    .as_deref()
                    .is_none_or(|m| r.municipality == m)
                && q.state.is_none_or(|s| r.state == s);
            if hit {
                if residents.len() == q.limit {
                    more = true;
                } else {
                    residents.push(ResidentSummary {
                        id: r.id.clone(),
                        name: a.name().to_owned(),
                        birth: a.birth(),
                        prefecture: r.prefecture.clone(),
                        municipality: r.municipality.clone(),
                        state: r.state,
                        card_lost: r.card_lost,
                    });
                }
            }
            Ok(())
        })?;
        let next = more
            .then(|| residents.last().map(|r| r.id.clone()))
            .flatten();
        Ok(ResidentPage { residents, next })
    }

    /// Every certificate of a holder with its status.
    pub fn holder_certs(&self, id: &str) -> Result<Vec<(CertRecord, StatusRecord)>> {
        self.storage.holder_certificates(id)
    }

    /// A certificate's status as of `at` (issue #18): from its status history, the last
    /// change at or before `at` (good before the first). A store made before the history was
    /// kept has only the current status record: then a revocation or hold that began after
    /// `at` reads good, and a hold released before now cannot be seen (docs/evidence.md).
    pub fn status_at(&self, c: &CertRecord, at: OffsetDateTime) -> Result<StatusRecord> {
        let history = self.storage.status_history(c.hierarchy, &c.serial)?;
        if !history.is_empty() {
            return Ok(StatusChange::as_of(&history, at));
        }
        let now = self.status_of(c)?;
        Ok(match now.since {
            Some(since) if now.state != State::Good && since > at => StatusRecord::GOOD,
            _ => now,
        })
    }

    /// Every change of a certificate's status, oldest first ([`crate::storage::Storage::
    /// status_history`]).
    pub fn status_history(&self, c: &CertRecord) -> Result<Vec<StatusChange>> {
        self.storage.status_history(c.hierarchy, &c.serial)
    }

    pub(crate) fn status_of(&self, c: &CertRecord) -> Result<StatusRecord> {
        self.storage
            .status(c.hierarchy, &c.serial)?
            .ok_or_else(|| Error::Store("certificate without status".into()))
    }
    pub fn cert_view(&self, c: CertRecord) -> Result<CertView> {
        let s = self.status_of(&c)?;
        Ok(CertView {
            serial: serial_hex(&c.serial),
            hierarchy: c.hierarchy,
            kind: c.kind,
            status: s.state,
            reason: s.reason,
            revoked_at: s.since,
            invalidity_date: s.invalidity,
            holder: c.holder.clone(),
            partition: c.partition.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            pem: c.pem(),
            history: Vec::new(),
        })
    }

    pub fn cert_show(&self, serial: &[u8], h: Option<Hierarchy>) -> Result<CertView> {
        let c = self.find(serial, h)?;
        let history = self.status_history(&c)?;
        let mut view = self.cert_view(c)?;
        view.history = history;
        Ok(view)
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
            None => {
                let mut out = Vec::new();
                self.storage.for_each_certificate(&mut |c| {
                    out.push(self.cert_view(c)?);
                    Ok(())
                })?;
                Ok(out)
            }
        }
    }

    /// Certificates matching `q`, a page at a time in (hierarchy, serial) order. Memory is
    /// bounded by the page: the walk keeps the `limit + 1` smallest matches beyond the cursor,
    /// whatever order the engine yields them in.
    pub fn cert_page(&self, q: &CertQuery) -> Result<CertPage> {
        if !(1..=10_000).contains(&q.limit) {
            return Err(Error::Invalid(format!(
                "limit must be 1 to 10000, got {}",
                q.limit
            )));
        }
        let after = match &q.after {
            None => None,
            Some(text) => Some(parse_cursor(text)?),
        };
        let mut page: std::collections::BTreeMap<(u8, usize, Vec<u8>), CertView> =
            Default::default();
        let mut consider = |c: CertRecord| -> Result<()> {
            let key = (c.hierarchy.tag(), c.serial.len(), c.serial.clone());
            if after.as_ref().is_some_and(|a| &key <= a)
                || q.hierarchy.is_some_and(|h| h != c.hierarchy)
                || q.kind.is_some_and(|k| k != c.kind)
                || q.expiring_before.is_some_and(|t| c.not_after >= t)
            {
                return Ok(());
            }
            if page.len() > q.limit && page.keys().next_back().is_some_and(|last| &key > last) {
                return Ok(());
            }
            let view = self.cert_view(c)?;
            if q.status.is_some_and(|s| s != view.status) {
                return Ok(());
            }
            page.insert(key, view);
            if page.len() > q.limit + 1 {
                page.pop_last();
            }
            Ok(())
        };
        match &q.resident {
            Some(id) => {
                self.resident(id)?;
                for (c, _) in self.holder_certs(id)? {
                    consider(c)?;
                }
            }
            None => self.storage.for_each_certificate(&mut consider)?,
        }
        let more = page.len() > q.limit;
        let mut certificates: Vec<CertView> = page.into_values().collect();
        certificates.truncate(q.limit);
        let next = if more {
            certificates
                .last()
                .map(|c| format!("{}:{}", c.hierarchy, c.serial))
        } else {
            None
        };
        Ok(CertPage { certificates, next })
    }

    /// Walks the audit chain a page at a time and checks it against its head: memory is
    /// bounded by one page whatever the length of the chain (the head is read first; records
    /// appended during the walk lie beyond it and are not read).
    pub fn audit_verify(&self) -> Result<u64> {
        const PAGE: usize = 4096;
        let head = self.storage.audit_head()?;
        let end = head.as_ref().map_or(0, |h| h.seq + 1);
        let mut from = 0u64;
        let mut page: std::vec::IntoIter<audit::Record> = Vec::new().into_iter();
        let records = std::iter::from_fn(|| loop {
            if let Some(r) = page.next() {
                return Some(Ok(r));
            }
            if from >= end {
                return None;
            }
            match self.storage.audit_records(from, PAGE) {
                Ok(p) if p.is_empty() => return None,
                Ok(p) => {
                    let p: Vec<audit::Record> = p.into_iter().filter(|r| r.seq < end).collect();
                    from = p.last().map_or(end, |r| r.seq + 1);
                    page = p.into_iter();
                }
                Err(e) => {
                    from = end;
                    return Some(Err(e));
                }
            }
        });
        audit::verify(records, head)
    }

    /// Every audit record, in order.
    pub fn audit_records(&self) -> Result<Vec<audit::Record>> {
        const PAGE: usize = 4096;
        let mut out: Vec<audit::Record> = Vec::new();
        loop {
            let from = out.last().map_or(0, |r| r.seq + 1);
            let page = self.storage.audit_records(from, PAGE)?;
            let done = page.len() < PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Checks that the storage's indexes agree with its records (see
    /// [`crate::storage::Storage::check_consistency`]); returns the number of certificates.
    pub fn check_indexes(&self) -> Result<usize> {
        Ok(self.storage.check_consistency()? as usize)
    }
}
