//! The era digit of the date of birth `EYYYYMMDD` (reference §2): `1` Meiji, `2` Taishō,
//! `3` Shōwa, `4` Heisei, `5` Reiwa, `0` unknown. `YYYYMMDD` stays Gregorian
//! (`319800217` is 1980-02-17).

use time::macros::date;
use time::Date;

/// First day of each era (the Gregorian-calendar start of Meiji, 1873-01-01, is not used:
/// the register counts Meiji from its proclamation, 1868-10-23 (Meiji 1-9-8), and dates
/// before it have era `0`).
const ERAS: [(Date, u8); 5] = [
    (date!(2019 - 05 - 01), 5),
    (date!(1989 - 01 - 08), 4),
    (date!(1926 - 12 - 25), 3),
    (date!(1912 - 07 - 30), 2),
    (date!(1868 - 10 - 23), 1),
];

pub fn era_digit(d: Date) -> u8 {
    ERAS.iter()
        .find(|(start, _)| d >= *start)
        .map(|(_, e)| *e)
        .unwrap_or(0)
}

/// The era's name in Japanese, for display.
pub fn era_name(digit: u8) -> &'static str {
    match digit {
        1 => "明治",
        2 => "大正",
        3 => "昭和",
        4 => "平成",
        5 => "令和",
        _ => "不明",
    }
}

/// `EYYYYMMDD`.
pub fn encode_birth(d: Date) -> String {
    format!(
        "{}{:04}{:02}{:02}",
        era_digit(d),
        d.year(),
        u8::from(d.month()),
        d.day()
    )
}

/// Reads `EYYYYMMDD` back; `None` unless the era digit matches the date.
pub fn decode_birth(s: &str) -> Option<Date> {
    if s.len() != 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let era: u8 = s[0..1].parse().ok()?;
    let y: i32 = s[1..5].parse().ok()?;
    let m: u8 = s[5..7].parse().ok()?;
    let d: u8 = s[7..9].parse().ok()?;
    let date = Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    (era_digit(date) == era).then_some(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era_boundaries() {
        assert_eq!(encode_birth(date!(1980 - 02 - 17)), "319800217");
        assert_eq!(era_digit(date!(1989 - 01 - 07)), 3);
        assert_eq!(era_digit(date!(1989 - 01 - 08)), 4);
        assert_eq!(era_digit(date!(2019 - 04 - 30)), 4);
        assert_eq!(era_digit(date!(2019 - 05 - 01)), 5);
        assert_eq!(era_digit(date!(1926 - 12 - 24)), 2);
        assert_eq!(era_digit(date!(1912 - 07 - 29)), 1);
        assert_eq!(era_digit(date!(1868 - 10 - 22)), 0);
    }

    #[test]
    fn decode_checks_the_era() {
        assert_eq!(decode_birth("319800217"), Some(date!(1980 - 02 - 17)));
        assert_eq!(decode_birth("419800217"), None);
        assert_eq!(decode_birth("319800230"), None);
        assert_eq!(decode_birth("31980021"), None);
    }
}
