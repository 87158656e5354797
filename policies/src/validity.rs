//! Validity periods (reference §2, "Validity rules"; Higashimurayama and Nakadomari FAQs).
//!
//! A leaf's notAfter is 23:59:59 JST on the earliest of
//! 1. the holder's `birthdays`-th birthday after the issuance date — the `renewal_birthdays`-th
//!    when it renews a certificate with less than `renewal_window_months` left;
//! 2. the card's expiry date;
//! 3. for a signing certificate, the holder's live authentication certificate's notAfter.
//!
//! notBefore is the issuance instant. A holder born on 29 February has the birthday on
//! 28 February in common years (an assumption: the sources do not say).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::policy::ValiditySection;
use crate::Error;

/// Japan Standard Time, UTC+9, without daylight saving.
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => panic!("UTC+9 is a valid offset"),
};

/// A root's notAfter: 23:59:59 JST on the day **before** the `years`-th anniversary of its
/// issuance date in JST (reference §1 and "What a faithful implementation should do" 1: the
/// real roots of 2023-07-16 end on 2033-07-15). A root made on 29 February has its
/// anniversary on 1 March in a common year, so it ends on 28 February (an assumption).
pub fn root_not_after(issued_at: OffsetDateTime, years: u32) -> Result<OffsetDateTime, Error> {
    let d = jst_date(issued_at);
    let year = i32::try_from(years)
        .ok()
        .and_then(|y| d.year().checked_add(y))
        .ok_or_else(|| Error::Date(format!("{years} years after {d}")))?;
    let anniversary = match d.replace_year(year) {
        Ok(a) => a,
        // 29 February in a common year: the anniversary is 1 March.
        Err(_) => Date::from_calendar_date(year, Month::March, 1)
            .map_err(|e| Error::Date(format!("{years} years after {d}: {e}")))?,
    };
    let last = anniversary
        .previous_day()
        .ok_or_else(|| Error::Date(format!("the day before {anniversary}")))?;
    Ok(end_of_day_jst(last))
}

/// The issuance date in JST.
pub fn jst_date(t: OffsetDateTime) -> Date {
    t.to_offset(JST).date()
}

/// 23:59:59 JST on `d`, i.e. 14:59:59Z (reference §1: the convention used everywhere in JPKI).
pub fn end_of_day_jst(d: Date) -> OffsetDateTime {
    PrimitiveDateTime::new(d, Time::from_hms(23, 59, 59).expect("valid time"))
        .assume_offset(JST)
        .to_offset(UtcOffset::UTC)
}

/// The birthday of someone born on `birth` in `year`.
pub fn birthday_in(birth: Date, year: i32) -> Result<Date, Error> {
    let (m, d) = (birth.month(), birth.day());
    Date::from_calendar_date(year, m, d)
        .or_else(|_| {
            // 29 February in a common year.
            Date::from_calendar_date(year, Month::February, 28)
        })
        .map_err(|e| Error::Date(e.to_string()))
}

/// The `n`-th birthday strictly after `issued` (n ≥ 1).
pub fn nth_birthday_after(birth: Date, issued: Date, n: u32) -> Result<Date, Error> {
    let this_year = birthday_in(birth, issued.year())?;
    let first = if this_year > issued {
        issued.year()
    } else {
        issued.year() + 1
    };
    birthday_in(birth, first + n as i32 - 1)
}

/// Adds calendar months, clamping the day to the month's length.
pub fn add_months(d: Date, months: u32) -> Result<Date, Error> {
    let total = d.year() * 12 + (u8::from(d.month()) as i32 - 1) + months as i32;
    let (y, m) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u8);
    let month = Month::try_from(m).map_err(|e| Error::Date(e.to_string()))?;
    let day = d.day().min(month.length(y));
    Date::from_calendar_date(y, month, day).map_err(|e| Error::Date(e.to_string()))
}

/// What the validity rule needs to know about one issuance.
#[derive(Debug, Clone, Copy)]
pub struct ValidityInput {
    pub issued_at: OffsetDateTime,
    pub birth: Date,
    pub card_expiry: Date,
    /// notAfter of the holder's live certificate of the same kind, if this issuance renews it.
    pub renewing: Option<OffsetDateTime>,
    /// notAfter of the holder's live authentication certificate (caps signing certificates).
    pub auth_not_after: Option<OffsetDateTime>,
}

/// Why the notAfter is what it is (reported in `jpki issue --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    Birthday,
    CardExpiry,
    AuthCertificate,
    /// A smartphone certificate: capped by the card certificates it was issued on.
    CardCertificate,
}

/// notAfter and the rule that set it. Errors when the result would not be after notBefore
/// (an expired card, an expired authentication certificate).
pub fn not_after(
    rules: &ValiditySection,
    input: &ValidityInput,
) -> Result<(OffsetDateTime, Bound), Error> {
    let issued = jst_date(input.issued_at);
    let early_renewal = match input.renewing {
        Some(old) => {
            let window_start = add_months(issued, rules.renewal_window_months)?;
            jst_date(old) <= window_start
        }
        None => false,
    };
    let n = if early_renewal {
        rules.renewal_birthdays
    } else {
        rules.birthdays
    };
    let mut best = (
        end_of_day_jst(nth_birthday_after(input.birth, issued, n)?),
        Bound::Birthday,
    );
    let card = end_of_day_jst(input.card_expiry);
    if card < best.0 {
        best = (card, Bound::CardExpiry);
    }
    if let Some(auth) = input.auth_not_after {
        if auth < best.0 {
            best = (auth, Bound::AuthCertificate);
        }
    }
    if best.0 <= input.issued_at {
        return Err(Error::Date(format!(
            "the certificate would end ({}) before it starts: {} has passed",
            best.0,
            match best.1 {
                Bound::CardExpiry => "the card's expiry",
                Bound::AuthCertificate => "the authentication certificate's notAfter",
                Bound::Birthday => "the birthday bound",
                Bound::CardCertificate => "the card certificate's notAfter",
            }
        )));
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn rules() -> ValiditySection {
        crate::Policy::default_policy().validity
    }

    #[test]
    fn test_card_runs_to_the_fifth_birthday() {
        // MCARD test card: born 1980-02-17, auth certificate 2025-10-27 -> 2030-02-17.
        let input = ValidityInput {
            issued_at: datetime!(2025-10-27 03:00 UTC),
            birth: date!(1980 - 02 - 17),
            card_expiry: date!(2035 - 02 - 17),
            renewing: None,
            auth_not_after: None,
        };
        let (t, bound) = not_after(&rules(), &input).unwrap();
        assert_eq!(t, datetime!(2030-02-17 14:59:59 UTC));
        assert_eq!(bound, Bound::Birthday);
    }

    #[test]
    fn issuance_on_the_birthday_counts_from_the_next() {
        let d = nth_birthday_after(date!(1990 - 05 - 01), date!(2026 - 05 - 01), 5).unwrap();
        assert_eq!(d, date!(2031 - 05 - 01));
        let d = nth_birthday_after(date!(1990 - 05 - 01), date!(2026 - 04 - 30), 5).unwrap();
        assert_eq!(d, date!(2030 - 05 - 01));
    }

    #[test]
    fn leap_day_birthdays_fall_on_28_february() {
        assert_eq!(
            nth_birthday_after(date!(2000 - 02 - 29), date!(2026 - 01 - 01), 1).unwrap(),
            date!(2026 - 02 - 28)
        );
        assert_eq!(
            nth_birthday_after(date!(2000 - 02 - 29), date!(2026 - 01 - 01), 3).unwrap(),
            date!(2028 - 02 - 29)
        );
    }

    #[test]
    fn early_renewal_gets_the_sixth_birthday() {
        let base = ValidityInput {
            issued_at: datetime!(2026-11-27 01:00 UTC),
            birth: date!(1980 - 02 - 17),
            card_expiry: date!(2040 - 01 - 01),
            renewing: Some(datetime!(2027-02-17 14:59:59 UTC)),
            auth_not_after: None,
        };
        assert_eq!(
            not_after(&rules(), &base).unwrap().0,
            datetime!(2032-02-17 14:59:59 UTC)
        );
        let not_yet = ValidityInput {
            renewing: Some(datetime!(2028-02-17 14:59:59 UTC)),
            ..base
        };
        assert_eq!(
            not_after(&rules(), &not_yet).unwrap().0,
            datetime!(2031-02-17 14:59:59 UTC)
        );
    }

    #[test]
    fn capped_by_card_and_auth_certificate() {
        let base = ValidityInput {
            issued_at: datetime!(2026-11-27 01:00 UTC),
            birth: date!(1980 - 02 - 17),
            card_expiry: date!(2029 - 06 - 30),
            renewing: None,
            auth_not_after: None,
        };
        assert_eq!(
            not_after(&rules(), &base).unwrap(),
            (datetime!(2029-06-30 14:59:59 UTC), Bound::CardExpiry)
        );
        let capped = ValidityInput {
            auth_not_after: Some(datetime!(2028-01-01 14:59:59 UTC)),
            ..base
        };
        assert_eq!(
            not_after(&rules(), &capped).unwrap().1,
            Bound::AuthCertificate
        );
        let expired = ValidityInput {
            card_expiry: date!(2026 - 11 - 26),
            ..base
        };
        assert!(not_after(&rules(), &expired).is_err());
    }

    #[test]
    fn roots_end_the_day_before_the_anniversary() {
        use time::macros::datetime;
        // The real generation-3 roots: issued 2023-07-16 (JST), notAfter 2033-07-15 14:59:59Z.
        let end = root_not_after(datetime!(2023-07-16 00:50:27 UTC), 10).unwrap();
        assert_eq!(end, datetime!(2033-07-15 14:59:59 UTC));
        let end = root_not_after(datetime!(2015-10-20 02:40:28 UTC), 10).unwrap();
        assert_eq!(end, datetime!(2025-10-19 14:59:59 UTC));
        // 15:00Z is already the next day in JST.
        let end = root_not_after(datetime!(2023-07-15 15:00:00 UTC), 10).unwrap();
        assert_eq!(end, datetime!(2033-07-15 14:59:59 UTC));
        // 29 February: the anniversary in a common year is 1 March.
        let end = root_not_after(datetime!(2024-02-29 03:00:00 UTC), 10).unwrap();
        assert_eq!(end, datetime!(2034-02-28 14:59:59 UTC));
        let end = root_not_after(datetime!(2024-02-29 03:00:00 UTC), 4).unwrap();
        assert_eq!(end, datetime!(2028-02-28 14:59:59 UTC));
    }
}
