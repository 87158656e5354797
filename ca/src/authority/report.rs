//! Reports for the CA's operators and the municipalities (`jpki report issuance|revocations|
//! expiring`): what was issued, revoked and put on hold per municipality in a period, and which
//! holder certificates expire in one.
//!
//! * **Issuance and revocations** are read from the audit trail — the record of what happened
//!   and when — not from the certificates' current state: a certificate issued and then revoked
//!   in the period counts in both reports. The trail is in time order, so the period's first
//!   record is found by bisection and only the period is read. Holds (`certificateHold`) are
//!   rows of the revocation report with that reason.
//! * A certificate's **municipality** is the one its CRL partition names (the holder's
//!   municipality at issuance, as the real certificates name their CRL); for a certificate on a
//!   serial partition, the holder's municipality in the register now.
//! * **Expiring** lists the good (not revoked, not held) holder certificates whose notAfter
//!   falls in the period, soonest first.

use std::collections::BTreeMap;

use policies::profile::Scope;
use policies::Hierarchy;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{parse_serial, Authority};
use crate::error::{Error, Result};
use crate::records::{CertRecord, State};

/// Audit records read per round trip.
const PAGE: usize = 5_000;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportKind {
    Issuance,
    Revocations,
    Expiring,
}

/// A report's period (`from` included, `to` excluded) and an optional municipality.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportQuery {
    pub kind: ReportKind,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    #[serde(default)]
    pub municipality: Option<String>,
}

/// One line of a report: counts per place and hierarchy (issuance, revocations), or one
/// certificate (expiring).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    pub prefecture: String,
    pub municipality: String,
    pub hierarchy: Hierarchy,
    /// The revocation reason (`certificateHold` for holds); revocation report only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Certificates counted (1 in the expiring report).
    pub count: u64,
    /// The certificate, its holder and notAfter; expiring report only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub not_after: Option<OffsetDateTime>,
}

/// A report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub report: ReportKind,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    pub rows: Vec<ReportRow>,
    /// The sum of the rows' counts.
    pub total: u64,
}

impl Authority {
    /// Builds a report (see the module docs).
    pub fn report(&self, q: &ReportQuery) -> Result<Report> {
        if q.to <= q.from {
            let t = |t: OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| t.to_string())
            };
            return Err(Error::Invalid(format!(
                "the period is empty: --to {} is not after --from {}",
                t(q.to),
                t(q.from)
            )));
        }
        let mut places = Places::default();
        let mut rows = match q.kind {
            ReportKind::Issuance | ReportKind::Revocations => self.counted(q, &mut places)?,
            ReportKind::Expiring => self.expiring(q, &mut places)?,
        };
        if q.kind == ReportKind::Expiring {
            rows.sort_by(|a, b| a.not_after.cmp(&b.not_after).then(a.serial.cmp(&b.serial)));
        }
        let total = rows.iter().map(|r| r.count).sum();
        Ok(Report {
            report: q.kind,
            from: q.from,
            to: q.to,
            municipality: q.municipality.clone(),
            rows,
            total,
        })
    }

    /// The issuance or revocation report: the period's `issue`, or `revoke` and `hold`,
    /// audit records counted per place, hierarchy (and reason).
    fn counted(&self, q: &ReportQuery, places: &mut Places) -> Result<Vec<ReportRow>> {
        let store = self.storage();
        let mut counts: BTreeMap<(String, String, Hierarchy, Option<String>), u64> =
            BTreeMap::new();
        let mut seq = self.first_record_at(q.from)?;
        'pages: loop {
            let page = store.audit_records(seq, PAGE)?;
            for r in &page {
                seq = r.seq + 1;
                if r.at >= q.to {
                    break 'pages;
                }
                if r.at < q.from {
                    continue;
                }
                let reason = match (q.kind, r.action.as_str()) {
                    (ReportKind::Issuance, "issue") => None,
                    (ReportKind::Revocations, "revoke") => Some(r.detail.clone()),
                    (ReportKind::Revocations, "hold") => Some("certificateHold".to_owned()),
                    _ => continue,
                };
                let Some((h, serial)) = r.subject.split_once(':') else {
                    continue;
                };
                let (Ok(h), Ok(serial)) = (h.parse::<Hierarchy>(), parse_serial(serial)) else {
                    continue;
                };
                let Some(c) = store.certificate(h, &serial)? else {
                    continue;
                };
                let Some((pref, muni)) = places.of(self, &c)? else {
                    continue; // not a holder's certificate
                };
                if q.municipality.as_ref().is_some_and(|m| *m != muni) {
                    continue;
                }
                *counts.entry((pref, muni, h, reason)).or_default() += 1;
            }
            if page.len() < PAGE {
                break;
            }
        }
        Ok(counts
            .into_iter()
            .map(
                |((prefecture, municipality, hierarchy, reason), count)| ReportRow {
                    prefecture,
                    municipality,
                    hierarchy,
                    reason,
                    count,
                    serial: None,
                    resident: None,
                    not_after: None,
                },
            )
            .collect())
    }

    /// The first audit sequence number whose record is at or after `from` (the trail is in
    /// time order): a bisection over single-record reads.
    fn first_record_at(&self, from: OffsetDateTime) -> Result<u64> {
        let store = self.storage();
        let Some(head) = store.audit_head()? else {
            return Ok(0);
        };
        let (mut lo, mut hi) = (0u64, head.seq + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match store.audit_records(mid, 1)?.first() {
                Some(r) if r.at < from => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// The expiring report: good holder certificates whose notAfter is in the period.
    fn expiring(&self, q: &ReportQuery, places: &mut Places) -> Result<Vec<ReportRow>> {
        let store = self.storage();
        let mut due = Vec::new();
        store.for_each_certificate(&mut |c| {
            if c.holder.is_some() && c.not_after >= q.from && c.not_after < q.to {
                due.push(c);
            }
            Ok(())
        })?;
        let mut rows = Vec::new();
        for c in due {
            let state = store
                .status(c.hierarchy, &c.serial)?
                .map_or(State::Good, |s| s.state);
            if state != State::Good {
                continue;
            }
            let Some((prefecture, municipality)) = places.of(self, &c)? else {
                continue;
            };
            if q.municipality.as_ref().is_some_and(|m| *m != municipality) {
                continue;
            }
            rows.push(ReportRow {
                prefecture,
                municipality,
                hierarchy: c.hierarchy,
                reason: None,
                count: 1,
                serial: Some(super::serial_hex(&c.serial)),
                resident: c.holder.clone(),
                not_after: Some(c.not_after),
            });
        }
        Ok(rows)
    }
}

/// The holders' places, read once each.
#[derive(Default)]
struct Places(BTreeMap<String, Option<(String, String)>>);

impl Places {
    /// `(prefecture, municipality)` of a holder's certificate; `None` for the CA's own.
    fn of(&mut self, a: &Authority, c: &CertRecord) -> Result<Option<(String, String)>> {
        if let Some(Scope::Municipal(m)) = &c.partition {
            return Ok(Some((
                m.prefecture().to_owned(),
                m.municipality().to_owned(),
            )));
        }
        let Some(holder) = &c.holder else {
            return Ok(None);
        };
        if let Some(known) = self.0.get(holder) {
            return Ok(known.clone());
        }
        let place = a
            .storage()
            .resident(holder)?
            .map(|r| (r.prefecture, r.municipality));
        self.0.insert(holder.clone(), place.clone());
        Ok(place)
    }
}
