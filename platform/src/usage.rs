//! Usage counts and the tariff: what a month's counters ([`Usage`], kept by the storage
//! authority and added to by every answered API call, see [`crate::access`]) come to.
//!
//! The real service meters validity checks per certificate type — 20 yen for a signing
//! certificate, 2 yen for an authentication certificate — and charges nothing for now
//! (zero-rated). The prices are configuration ([`Tariff`], a TOML file given to
//! `jpki report usage --tariff FILE`), not code: the counts are recorded whatever they are.

use serde::{Deserialize, Serialize};

use crate::registry::Usage;

/// Prices per check, in yen, by certificate type; `zero_rated` charges nothing while still
/// showing the list price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    pub signing_yen: u64,
    pub auth_yen: u64,
    pub zero_rated: bool,
}

impl Default for Tariff {
    /// The real service's published prices, zero-rated as it is today.
    fn default() -> Tariff {
        Tariff {
            signing_yen: 20,
            auth_yen: 2,
            zero_rated: true,
        }
    }
}

impl Tariff {
    /// The price of one check of a certificate type (`none`: a call about no certificate of
    /// this CA, free).
    pub fn unit_yen(&self, cert_type: &str) -> u64 {
        match cert_type {
            "signing" => self.signing_yen,
            "auth" => self.auth_yen,
            _ => 0,
        }
    }
}

/// One line of the usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub month: String,
    pub pf: String,
    pub sp: String,
    pub endpoint: String,
    pub cert_type: String,
    pub count: u64,
    pub unit_yen: u64,
    /// count × unit price.
    pub list_yen: u64,
    /// What is due: the list price, or 0 while zero-rated.
    pub charged_yen: u64,
}

/// The report of a month's counters under a tariff (saturating: a count that would overflow
/// a price shows `u64::MAX`).
pub fn report(usage: &[Usage], tariff: &Tariff) -> Vec<Line> {
    usage
        .iter()
        .map(|u| {
            let unit = tariff.unit_yen(&u.cert_type);
            let list = u.count.saturating_mul(unit);
            Line {
                month: u.month.clone(),
                pf: u.pf.clone(),
                sp: u.sp.clone(),
                endpoint: u.endpoint.clone(),
                cert_type: u.cert_type.clone(),
                count: u.count,
                unit_yen: unit,
                list_yen: list,
                charged_yen: if tariff.zero_rated { 0 } else { list },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(cert_type: &str, count: u64) -> Usage {
        Usage {
            month: "2026-11".into(),
            pf: "PF1".into(),
            sp: "SP1".into(),
            endpoint: "validity".into(),
            cert_type: cert_type.into(),
            count,
        }
    }

    #[test]
    fn prices_follow_the_tariff() {
        let usage = [u("signing", 3), u("auth", 10), u("none", 4)];
        let free = report(&usage, &Tariff::default());
        assert_eq!(
            free.iter()
                .map(|l| (l.unit_yen, l.list_yen, l.charged_yen))
                .collect::<Vec<_>>(),
            vec![(20, 60, 0), (2, 20, 0), (0, 0, 0)]
        );
        let charged = report(
            &usage,
            &Tariff {
                zero_rated: false,
                ..Tariff::default()
            },
        );
        assert_eq!(charged[0].charged_yen, 60);
        assert_eq!(charged[1].charged_yen, 20);
        assert_eq!(
            report(&[u("signing", u64::MAX)], &Tariff::default())[0].list_yen,
            u64::MAX
        );
    }
}
