//! What the read commands show: certificates with their status, residents with their
//! certificates and history, the audit chain's check.

use policies::{Hierarchy, Reason, Sex};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use super::{serial_hex, Authority};
use crate::audit;
use crate::error::{Error, Result};
use crate::records::{
    CertKind, CertRecord, HistoryLine, Resident, ResidentState, State, StatusRecord,
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

    /// Walks the audit chain (a page at a time) and checks it against its head.
    pub fn audit_verify(&self) -> Result<u64> {
        audit::verify(
            self.audit_records()?.into_iter().map(Ok),
            self.storage.audit_head()?,
        )
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
