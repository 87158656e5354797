//! The register's side of a PIN reset at the municipal counter (`jpki resident pin-reset`):
//! before a clerk's counter key changes a holder's token (`holder_token::counter`), the CA
//! checks the request against the register and records it in the audit trail.
//!
//! Checked: the resident exists and is not deceased; the counter belongs to the resident's
//! municipality (a clerk cannot reset the token of another municipality's resident with their
//! own counter); and the token's certificate of that key, when it has one, is a certificate
//! the CA issued to this resident — the holder in front of the clerk is the one the token
//! belongs to. The acting officer is authorised as for a register event of the resident's
//! municipality (`ca::officers::authorize`: a municipal clerk of that municipality, a CA
//! officer, or the person at the CA host). The audit record (`pin-reset`) names the actor,
//! the resident, which PIN and the counter's municipality — never a PIN.

use policies::Hierarchy;
use serde::{Deserialize, Serialize};

use super::{parse_serial, serial_hex, Authority};
use crate::error::{Error, Result};
use crate::records::ResidentState;
use crate::storage;

/// A PIN reset at the counter, as the CA records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CounterReset {
    pub resident: String,
    /// Which PIN: `signing` (the signing password) or `auth` (the 4-digit PIN).
    pub kind: Hierarchy,
    /// The municipality of the counter key the token was enrolled with.
    pub municipality: String,
    /// The serial (hex) of the token's certificate of that key, if one was imported.
    #[serde(default)]
    pub certificate_serial: Option<String>,
}

impl Authority {
    /// Checks a counter PIN reset against the register and records it (see the module docs).
    pub fn counter_pin_reset(&self, r: &CounterReset) -> Result<CounterReset> {
        let resident = self.resident(&r.resident)?;
        if resident.state == ResidentState::Deceased {
            return Err(Error::Refused(format!(
                "resident {} is deceased: no PIN reset",
                r.resident
            )));
        }
        if resident.municipality != r.municipality {
            return Err(Error::Refused(format!(
                "the token was enrolled at the counter of {}, but resident {} is registered in {}: reset it at that municipality's counter",
                r.municipality, r.resident, resident.municipality
            )));
        }
        let mut serial_text = None;
        if let Some(serial) = &r.certificate_serial {
            let serial = parse_serial(serial)?;
            let issued = self.storage().certificate(r.kind, &serial)?;
            match issued {
                Some(c) if c.holder.as_deref() == Some(r.resident.as_str()) => {
                    serial_text = Some(serial_hex(&serial));
                }
                _ => {
                    return Err(Error::Refused(format!(
                        "the token's {} certificate {} was not issued to resident {}: is this the holder's card?",
                        r.kind,
                        serial_hex(&serial),
                        r.resident
                    )))
                }
            }
        }
        let now = self.clock().now();
        let detail = format!(
            "{} PIN reset at the counter of {}{}",
            r.kind,
            r.municipality,
            serial_text
                .as_ref()
                .map(|s| format!(" (token certificate {}:{s})", r.kind))
                .unwrap_or_default()
        );
        self.storage()
            .transact(&|t| storage::audit(t, now, "pin-reset", &r.resident, &detail))?;
        Ok(r.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::macros::{date, datetime};

    use super::*;
    use crate::api::Request;
    use crate::authority::NewResident;
    use crate::clock::FixedClock;
    use crate::officers::{Actor, Officer, OfficerState, Role};

    fn clerk(municipality: &str) -> Actor {
        Actor::Officer(Officer {
            id: "OF0011223344556677".into(),
            name: "Sato".into(),
            role: Role::MunicipalClerk,
            municipality: Some(municipality.into()),
            state: OfficerState::Active,
            key: "ab".into(),
            certificate: None,
            not_before: None,
            not_after: None,
            created: datetime!(2026-12-01 00:00 UTC),
        })
    }

    #[test]
    fn only_a_clerk_of_the_residents_municipality_resets_and_it_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let a = Authority::init(
            &dir.path().join("data"),
            policies::policy::DEFAULT_POLICY,
            b"unit-test-passphrase",
            Arc::new(FixedClock::new(datetime!(2026-12-05 09:00 UTC))),
        )
        .unwrap();
        let id = a
            .resident_add(&NewResident {
                name: "山田　花子".into(),
                birth: date!(1990 - 04 - 01),
                sex: policies::Sex::Female,
                address: "東京都千代田区霞が関２－１－２".into(),
                prefecture: "Tokyo".into(),
                municipality: "Chiyoda-ku".into(),
                card_expiry: date!(2030 - 01 - 01),
            })
            .unwrap();
        let reset = |municipality: &str| {
            Request::CounterPinReset(CounterReset {
                resident: id.clone(),
                kind: Hierarchy::Auth,
                municipality: municipality.into(),
                certificate_serial: None,
            })
        };
        // Another municipality's clerk: forbidden (and the refusal is audited).
        let e = a
            .handle_as(&clerk("Minato-ku"), reset("Chiyoda-ku"))
            .unwrap_err();
        assert!(matches!(e, Error::Forbidden { .. }), "{e}");
        // The right clerk with another municipality's counter: refused.
        let e = a
            .handle_as(&clerk("Chiyoda-ku"), reset("Minato-ku"))
            .unwrap_err();
        assert!(e.to_string().contains("registered in Chiyoda-ku"), "{e}");
        // A certificate that is not the resident's: refused.
        let mut wrong = CounterReset {
            resident: id.clone(),
            kind: Hierarchy::Auth,
            municipality: "Chiyoda-ku".into(),
            certificate_serial: Some("7FFFFFFF".into()),
        };
        let e = a
            .handle_as(
                &clerk("Chiyoda-ku"),
                Request::CounterPinReset(wrong.clone()),
            )
            .unwrap_err();
        assert!(e.to_string().contains("not issued to resident"), "{e}");
        wrong.certificate_serial = None;
        a.handle_as(&clerk("Chiyoda-ku"), Request::CounterPinReset(wrong))
            .unwrap();
        let records = a.audit_records().unwrap();
        let last = records.last().unwrap();
        assert_eq!(last.action, "pin-reset");
        assert_eq!(last.subject, id);
        assert_eq!(last.detail, "auth PIN reset at the counter of Chiyoda-ku");
        assert!(
            last.actor
                .as_deref()
                .unwrap()
                .contains("municipal-clerk@Chiyoda-ku"),
            "{last:?}"
        );
        assert!(records.iter().any(|r| r.action == "refused"));
    }
}
