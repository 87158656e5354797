//! Who may have which certificate, and when (reference §2 "Validity rules" and the city pages
//! it cites; §7): the eligibility rules of the real service, as pure functions of the policy's
//! `[eligibility]` section, the holder's date of birth and the day.
//!
//! * **Signing certificates need 15 years of age.** The real service does not issue a signing
//!   certificate by default to a holder under 15 (Fujioka/Ebetsu city pages); a legal
//!   representative may ask for one, which jpki models as an explicit, audited override.
//! * **A card runs to the holder's 10th birthday after issuance, or the 5th for a minor**
//!   (under 18 on the day of issuance): a card expiry later than that is refused.
//! * **Renewal opens `validity.renewal_window_months` before expiry**: a new certificate of a
//!   kind while the holder's current one still has longer to run is refused unless the
//!   operator overrides it, with a reason that goes into the audit trail.
//!
//! A holder born on 29 February has the birthday on 28 February in common years, as in
//! [`crate::validity`].

use time::{Date, OffsetDateTime};

pub use crate::policy::EligibilitySection;
use crate::validity::{add_months, birthday_in, nth_birthday_after};
use crate::Error;

/// Why someone is not eligible: each names the rule and the dates it compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// Under the signing age on the day of issuance.
    TooYoungToSign { age: u32, min_age: u32 },
    /// The card expiry is later than the card's longest life.
    CardTooLong { expiry: Date, latest: Date },
    /// The current certificate has longer than the renewal window to run.
    OutsideRenewalWindow { not_after: Date, opens: Date },
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ineligible::TooYoungToSign { age, min_age } => write!(
                f,
                "the holder is {age} years old; a signing certificate needs {min_age} \
                 (a legal representative's application is an explicit override)"
            ),
            Ineligible::CardTooLong { expiry, latest } => write!(
                f,
                "card expiry {expiry} is later than the card can run for this holder \
                 (at the latest {latest}: the 10th birthday after issuance, the 5th for a minor)"
            ),
            Ineligible::OutsideRenewalWindow { not_after, opens } => write!(
                f,
                "the current certificate runs until {not_after}; renewal opens on {opens} \
                 (an earlier renewal is an explicit override with a reason)"
            ),
        }
    }
}

/// Whole years of age on `on` of someone born on `birth` (0 before the first birthday).
pub fn age_on(birth: Date, on: Date) -> Result<u32, Error> {
    if on < birth {
        return Ok(0);
    }
    let years = on.year() - birth.year();
    let had_birthday = birthday_in(birth, on.year())? <= on;
    let age = if had_birthday { years } else { years - 1 };
    Ok(u32::try_from(age.max(0)).unwrap_or(0))
}

impl EligibilitySection {
    /// Checks the section's values (called when the policy is loaded).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &str, problem: String| Error::PolicyField {
            field: format!("eligibility.{field}"),
            problem,
        };
        if self.signing_min_age > 120 {
            return Err(bad(
                "signing_min_age",
                format!("must be 0 to 120, got {}", self.signing_min_age),
            ));
        }
        if !(1..=120).contains(&self.adult_age) {
            return Err(bad(
                "adult_age",
                format!("must be 1 to 120, got {}", self.adult_age),
            ));
        }
        for (name, n) in [
            ("card_birthdays_adult", self.card_birthdays_adult),
            ("card_birthdays_minor", self.card_birthdays_minor),
        ] {
            if !(1..=20).contains(&n) {
                return Err(bad(name, format!("must be 1 to 20, got {n}")));
            }
        }
        Ok(())
    }

    /// A signing certificate for someone born on `birth`, issued on `today`.
    pub fn may_sign(&self, birth: Date, today: Date) -> Result<(), Ineligible> {
        let age = age_on(birth, today).unwrap_or(0);
        if age < self.signing_min_age {
            return Err(Ineligible::TooYoungToSign {
                age,
                min_age: self.signing_min_age,
            });
        }
        Ok(())
    }

    /// The latest expiry a card issued on `issued` can have for someone born on `birth`.
    pub fn latest_card_expiry(&self, birth: Date, issued: Date) -> Result<Date, Error> {
        let n = if age_on(birth, issued)? >= self.adult_age {
            self.card_birthdays_adult
        } else {
            self.card_birthdays_minor
        };
        nth_birthday_after(birth, issued, n)
    }

    /// A card expiring on `expiry`, issued (or renewed) on `issued`.
    pub fn card_expiry(&self, birth: Date, issued: Date, expiry: Date) -> Result<(), Ineligible> {
        match self.latest_card_expiry(birth, issued) {
            Ok(latest) if expiry > latest => Err(Ineligible::CardTooLong { expiry, latest }),
            _ => Ok(()),
        }
    }

    /// A new certificate of a kind while the current one of that kind ends at `not_after`:
    /// allowed from `window_months` before it.
    pub fn renewal(
        &self,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
        window_months: u32,
    ) -> Result<(), Ineligible> {
        if !self.renewal_window {
            return Ok(());
        }
        let end = crate::validity::jst_date(not_after);
        let today = crate::validity::jst_date(now);
        // The window opens `window_months` before the last day: today + window ≥ end.
        match add_months(today, window_months) {
            Ok(reach) if reach < end => {
                let opens = opening(end, window_months).unwrap_or(end);
                Err(Ineligible::OutsideRenewalWindow {
                    not_after: end,
                    opens,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The first day `d` from which `d + months ≥ end`: a walk forward from a day surely before
/// it (months are at most 31 days long), at most a few hundred steps for the policy's ≤ 12.
fn opening(end: Date, months: u32) -> Option<Date> {
    let mut d = end.checked_sub(time::Duration::days(i64::from(months) * 31 + 1))?;
    while add_months(d, months).ok()? < end {
        d = d.next_day()?;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn age_counts_whole_years_and_leap_birthdays() {
        assert_eq!(
            age_on(date!(2000 - 05 - 17), date!(2026 - 05 - 16)).unwrap(),
            25
        );
        assert_eq!(
            age_on(date!(2000 - 05 - 17), date!(2026 - 05 - 17)).unwrap(),
            26
        );
        assert_eq!(
            age_on(date!(2004 - 02 - 29), date!(2027 - 02 - 27)).unwrap(),
            22
        );
        assert_eq!(
            age_on(date!(2004 - 02 - 29), date!(2027 - 02 - 28)).unwrap(),
            23
        );
        assert_eq!(
            age_on(date!(2030 - 01 - 01), date!(2026 - 01 - 01)).unwrap(),
            0
        );
    }

    #[test]
    fn signing_needs_fifteen_years() {
        let e = EligibilitySection::default();
        let birth = date!(2011 - 12 - 06);
        assert_eq!(
            e.may_sign(birth, date!(2026 - 12 - 05)),
            Err(Ineligible::TooYoungToSign {
                age: 14,
                min_age: 15
            })
        );
        assert_eq!(e.may_sign(birth, date!(2026 - 12 - 06)), Ok(()));
    }

    #[test]
    fn cards_run_ten_birthdays_for_adults_five_for_minors() {
        let e = EligibilitySection::default();
        let adult = date!(1980 - 02 - 17);
        let today = date!(2026 - 12 - 05);
        assert_eq!(
            e.latest_card_expiry(adult, today).unwrap(),
            date!(2036 - 02 - 17)
        );
        assert!(e.card_expiry(adult, today, date!(2036 - 02 - 17)).is_ok());
        assert_eq!(
            e.card_expiry(adult, today, date!(2099 - 01 - 01)),
            Err(Ineligible::CardTooLong {
                expiry: date!(2099 - 01 - 01),
                latest: date!(2036 - 02 - 17)
            })
        );
        let minor = date!(2010 - 06 - 01);
        assert_eq!(
            e.latest_card_expiry(minor, today).unwrap(),
            date!(2031 - 06 - 01)
        );
        assert!(e.card_expiry(minor, today, date!(2031 - 06 - 02)).is_err());
    }

    #[test]
    fn renewal_opens_three_months_before_expiry() {
        let e = EligibilitySection::default();
        let not_after = datetime!(2030-02-17 14:59:59 UTC);
        let early = e.renewal(not_after, datetime!(2029-11-16 00:00 UTC), 3);
        assert_eq!(
            early,
            Err(Ineligible::OutsideRenewalWindow {
                not_after: date!(2030 - 02 - 17),
                opens: date!(2029 - 11 - 17)
            })
        );
        assert!(e
            .renewal(not_after, datetime!(2029-11-17 00:00 UTC), 3)
            .is_ok());
        assert!(e
            .renewal(not_after, datetime!(2030-02-17 00:00 UTC), 3)
            .is_ok());
        let off = EligibilitySection {
            renewal_window: false,
            ..EligibilitySection::default()
        };
        assert!(off
            .renewal(not_after, datetime!(2026-12-05 00:00 UTC), 3)
            .is_ok());
    }

    #[test]
    fn bad_sections_are_refused_by_field() {
        let e = EligibilitySection {
            card_birthdays_minor: 0,
            ..EligibilitySection::default()
        };
        let err = e.validate().unwrap_err().to_string();
        assert!(err.contains("eligibility.card_birthdays_minor"), "{err}");
    }
}
