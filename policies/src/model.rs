//! The nouns of JPKI: hierarchies, revocation reasons, the holder's four attributes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::Date;

use crate::Error;

/// One of the two independent single-tier hierarchies (reference §1). A leaf's kind is the
/// hierarchy that issues it: signing certificates come only from the signing root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hierarchy {
    /// 署名用 — digital signature, carries the four attributes.
    Signing,
    /// 利用者証明用 — user authentication, no personal data.
    Auth,
}

impl Hierarchy {
    pub const ALL: [Hierarchy; 2] = [Hierarchy::Signing, Hierarchy::Auth];

    /// The name used on the command line, in URLs and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Hierarchy::Signing => "signing",
            Hierarchy::Auth => "auth",
        }
    }

    /// One byte that prefixes store keys.
    pub fn tag(self) -> u8 {
        match self {
            Hierarchy::Signing => 0,
            Hierarchy::Auth => 1,
        }
    }

    pub fn from_tag(tag: u8) -> Option<Hierarchy> {
        match tag {
            0 => Some(Hierarchy::Signing),
            1 => Some(Hierarchy::Auth),
            _ => None,
        }
    }

    /// The first OU of the root DN (reference §1).
    pub fn root_ou(self) -> &'static str {
        match self {
            Hierarchy::Signing => "JPKI for digital signature",
            Hierarchy::Auth => "JPKI for user authentication",
        }
    }

    /// The Japanese OU of the root's subjectAltName directoryName (reference §1).
    pub fn root_ou_ja(self) -> &'static str {
        match self {
            Hierarchy::Signing => "公的個人認証サービス署名用",
            Hierarchy::Auth => "公的個人認証サービス利用者証明用",
        }
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Hierarchy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "signing" | "sign" => Ok(Hierarchy::Signing),
            "auth" | "authentication" => Ok(Hierarchy::Auth),
            other => Err(format!("unknown kind `{other}` (expected signing or auth)")),
        }
    }
}

/// CRLReason (RFC 5280 §5.3.1), with J-LIS's meanings (reference §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    RemoveFromCrl,
    PrivilegeWithdrawn,
    AaCompromise,
}

impl Reason {
    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::CaCompromise => 2,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::CertificateHold => 6,
            Reason::RemoveFromCrl => 8,
            Reason::PrivilegeWithdrawn => 9,
            Reason::AaCompromise => 10,
        }
    }

    pub fn from_code(code: u8) -> Option<Reason> {
        Some(match code {
            0 => Reason::Unspecified,
            1 => Reason::KeyCompromise,
            2 => Reason::CaCompromise,
            3 => Reason::AffiliationChanged,
            4 => Reason::Superseded,
            5 => Reason::CessationOfOperation,
            6 => Reason::CertificateHold,
            8 => Reason::RemoveFromCrl,
            9 => Reason::PrivilegeWithdrawn,
            10 => Reason::AaCompromise,
            _ => return None,
        })
    }

    /// RFC 5280's camelCase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::CaCompromise => "cACompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::CertificateHold => "certificateHold",
            Reason::RemoveFromCrl => "removeFromCRL",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
            Reason::AaCompromise => "aACompromise",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ALL: [Reason; 10] = [
            Reason::Unspecified,
            Reason::KeyCompromise,
            Reason::CaCompromise,
            Reason::AffiliationChanged,
            Reason::Superseded,
            Reason::CessationOfOperation,
            Reason::CertificateHold,
            Reason::RemoveFromCrl,
            Reason::PrivilegeWithdrawn,
            Reason::AaCompromise,
        ];
        ALL.into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown revocation reason `{s}` (use an RFC 5280 name such as keyCompromise, affiliationChanged, superseded, cessationOfOperation)")
            })
    }
}

/// Sex as the register records it (reference §2: `1` male, `2` female, `9` not applicable,
/// the JIS X 0303 code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    #[serde(rename = "1")]
    Male,
    #[serde(rename = "2")]
    Female,
    #[serde(rename = "9")]
    NotApplicable,
}

impl Sex {
    pub fn digit(self) -> char {
        match self {
            Sex::Male => '1',
            Sex::Female => '2',
            Sex::NotApplicable => '9',
        }
    }
}

impl FromStr for Sex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1" => Ok(Sex::Male),
            "2" => Ok(Sex::Female),
            "9" => Ok(Sex::NotApplicable),
            other => Err(format!("sex must be 1, 2 or 9, got `{other}`")),
        }
    }
}

/// The holder's four basic attributes (基本4情報) as the resident register holds them.
/// Build with [`Attributes::new`], which enforces the limits; the fields cannot then be
/// out of range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    name: String,
    #[serde(with = "iso_date")]
    birth: Date,
    sex: Sex,
    address: String,
}

impl Attributes {
    /// Checks the limits: non-empty name and address no longer than the policy's limits,
    /// no control characters, a birth date not after `today`.
    pub fn new(
        name: &str,
        birth: Date,
        sex: Sex,
        address: &str,
        limits: &crate::policy::Limits,
        today: Date,
    ) -> Result<Attributes, Error> {
        check_text("name", name, limits.name_max_chars)?;
        check_text("address", address, limits.address_max_chars)?;
        if birth > today {
            return Err(Error::Attribute {
                field: "birth",
                problem: format!("date of birth {birth} is in the future"),
            });
        }
        if birth.year() < 1868 {
            return Err(Error::Attribute {
                field: "birth",
                problem: format!("date of birth {birth} is before 1868"),
            });
        }
        Ok(Attributes {
            name: name.to_owned(),
            birth,
            sex,
            address: address.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn birth(&self) -> Date {
        self.birth
    }
    pub fn sex(&self) -> Sex {
        self.sex
    }
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// The emigrants' marker (国外転出者, "a person who has moved abroad"): what the family-register
/// annex (戸籍の附票) records as an emigrant's address (住民基本台帳法 Art. 17 item 3,
/// "国外転出者である旨"; reference §8).
pub const EMIGRANT_MARKER: &str = "国外転出者";

/// The address attribute of a signing certificate for emigrants: no address at all, but the
/// emigrant marker and the departure date, `国外転出者（YYYY年M月D日転出）` — e.g.
/// `国外転出者（2027年4月1日転出）`. The real J-LIS string is unconfirmed (reference §8, open
/// items); this one holds the two annex items the law names (the fact of emigration, item 3,
/// and the departure date, item 4) in the card's repertoire (JIS X 0208 and ASCII digits,
/// Gregorian date as in the annex's 転出日 column written out), so it needs no substitution.
pub fn emigrant_address(departure: Date) -> String {
    format!(
        "{EMIGRANT_MARKER}（{}年{}月{}日転出）",
        departure.year(),
        u8::from(departure.month()),
        departure.day()
    )
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        return Err(Error::Attribute {
            field,
            problem: "must not be empty".into(),
        });
    }
    if chars > max {
        return Err(Error::Attribute {
            field,
            problem: format!("{chars} characters, more than the limit of {max}"),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(Error::Attribute {
            field,
            problem: "contains a control character".into(),
        });
    }
    Ok(())
}

/// A value as written into the certificate: characters outside the card's repertoire are
/// replaced by the substitute character 〓 (U+3013) and flagged `1` (reference §2,
/// substitute-character flags; Mito city FAQ).
///
/// The repertoire is the card's (reference §2, Mito city FAQ): ASCII, JIS X 0208 levels 1–2
/// and JIS X 0212 補助漢字: 鷗 (U+9DD7, JIS X 0212 `8F ECBF` in EUC-JP) is kept, while
/// characters in neither are substituted — 髙 (U+9AD9: an IBM extension of Windows-31J and
/// JIS X 0213, not JIS X 0208 or 0212), NEC row 13 such as ①, half-width katakana, and
/// characters beyond the BMP such as 𠮷 (U+20BB7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardText {
    pub text: String,
    pub flags: String,
}

impl CardText {
    pub fn from_register(value: &str) -> CardText {
        let mut text = String::with_capacity(value.len());
        let mut flags = String::with_capacity(value.chars().count());
        for c in value.chars() {
            if in_repertoire(c) {
                text.push(c);
                flags.push('0');
            } else {
                text.push('〓');
                flags.push('1');
            }
        }
        CardText { text, flags }
    }
}

/// ASCII, or a character of JIS X 0208 or JIS X 0212.
fn in_repertoire(c: char) -> bool {
    in_jis_x_0208(c) || in_jis_x_0212(c)
}

/// Whether `c` is a character of JIS X 0212 (補助漢字 and the supplementary symbols).
///
/// encoding_rs encodes nothing into JIS X 0212 (the WHATWG EUC-JP encoder writes JIS X 0208
/// only), but its EUC-JP decoder reads JIS X 0212 as the three-byte sequences `8F A1A1` …
/// `8F FEFE`, through the WHATWG `index-jis0212` table. The set is built once, on first use,
/// by decoding every one of those 94 × 94 sequences: the same table every browser uses, with
/// no copy of it in this repository to drift; it costs about 8,800 small decodes once and an
/// 8 KiB bit set (every JIS X 0212 character is in the Basic Multilingual Plane). The
/// alternative — a generated table in the source — would be faster to start but a second
/// source of truth.
fn in_jis_x_0212(c: char) -> bool {
    use std::sync::OnceLock;
    static SET: OnceLock<Box<[u64; 1024]>> = OnceLock::new();
    let set = SET.get_or_init(|| {
        let mut set = Box::new([0u64; 1024]);
        let mut out = [0u8; 16];
        for lead in 0xA1..=0xFEu8 {
            for trail in 0xA1..=0xFEu8 {
                // One decoder per sequence: a decoder is finished once given `last`.
                let mut decoder = encoding_rs::EUC_JP.new_decoder_without_bom_handling();
                let (result, _, written) = decoder.decode_to_utf8_without_replacement(
                    &[0x8F, lead, trail],
                    &mut out,
                    true,
                );
                if result != encoding_rs::DecoderResult::InputEmpty {
                    continue; // unmapped
                }
                let decoded = std::str::from_utf8(&out[..written]).ok();
                let mut chars = decoded.into_iter().flat_map(str::chars);
                if let (Some(ch), None) = (chars.next(), chars.next()) {
                    let cp = ch as usize;
                    if cp < 0x10000 {
                        set[cp / 64] |= 1 << (cp % 64);
                    }
                }
            }
        }
        set
    });
    let cp = c as usize;
    cp < 0x10000 && set[cp / 64] & (1 << (cp % 64)) != 0
}

/// ASCII, or a character of JIS X 0208. encoding_rs's Shift_JIS is the WHATWG one (Windows-31J),
/// which also maps the NEC and IBM extension rows; those, and user-defined characters, are
/// told apart by the lead byte: JIS X 0208 rows 1–8 are 0x81–0x84, rows 16–84 are 0x88–0x9F and
/// 0xE0–0xEA. Half-width katakana (JIS X 0201) are outside the card's full-width repertoire.
fn in_jis_x_0208(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    // What `SHIFT_JIS.encode` would answer, without its allocation: an encoder writing into
    // a stack buffer (one character is at most two Shift_JIS bytes, so it cannot fill up).
    let mut utf8 = [0u8; 4];
    let mut bytes = [0u8; 8];
    let (result, _, written) = encoding_rs::SHIFT_JIS
        .new_encoder()
        .encode_from_utf8_without_replacement(c.encode_utf8(&mut utf8), &mut bytes, true);
    if result != encoding_rs::EncoderResult::InputEmpty || written != 2 {
        return false;
    }
    matches!(bytes[0], 0x81..=0x84 | 0x88..=0x9F | 0xE0..=0xEA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emigrant_address_is_the_marker_and_the_departure_date_in_the_repertoire() {
        let a = emigrant_address(time::macros::date!(2027 - 04 - 01));
        assert_eq!(a, "国外転出者（2027年4月1日転出）");
        let card = CardText::from_register(&a);
        assert_eq!(card.text, a);
        assert!(card.flags.chars().all(|f| f == '0'), "{}", card.flags);
    }
    use time::macros::date;

    #[test]
    fn reasons_round_trip_by_name_and_code() {
        for code in [0u8, 1, 2, 3, 4, 5, 6, 8, 9, 10] {
            let r = Reason::from_code(code).unwrap();
            assert_eq!(r.code(), code);
            assert_eq!(r.as_str().parse::<Reason>().unwrap(), r);
        }
        assert!(Reason::from_code(7).is_none());
        assert!("lost".parse::<Reason>().is_err());
    }

    #[test]
    fn substitute_flags_mark_characters_outside_jis_x_0208_and_0212() {
        // 鷗 (U+9DD7) is JIS X 0212, not JIS X 0208: kept, flagged 0.
        assert!(!in_jis_x_0208('鷗') && in_jis_x_0212('鷗'));
        let t = CardText::from_register("森　鷗外");
        assert_eq!(t.text, "森　鷗外");
        assert_eq!(t.flags, "0000");
        // 髙 (U+9AD9, an IBM extension and JIS X 0213) and 𠮷 (U+20BB7) are in neither:
        // substituted, flagged 1.
        assert!(!in_jis_x_0208('髙') && !in_jis_x_0212('髙'));
        let t = CardText::from_register("髙橋　鷗");
        assert_eq!(t.text, "〓橋　鷗");
        assert_eq!(t.flags, "1000");
        let t = CardText::from_register("𠮷田　太郎");
        assert_eq!(t.text, "〓田　太郎");
        assert_eq!(t.flags, "10000");
        // NEC row 13 (①), half-width katakana and control characters are outside both too.
        assert_eq!(CardText::from_register("①ｱ\u{7}").flags, "111");
        let t = CardText::from_register("東京都千代田区霞が関２－１－２");
        assert!(t.flags.chars().all(|c| c == '0'));
        assert_eq!(t.flags.chars().count(), t.text.chars().count());
    }

    /// The JIS X 0212 set decoded from encoding_rs's EUC-JP holds the standard's 6,067
    /// characters (5,801 kanji, 266 non-kanji), the Basic Multilingual Plane only.
    #[test]
    fn jis_x_0212_has_its_6067_characters() {
        let n = (0..=0xFFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| in_jis_x_0212(*c))
            .count();
        assert_eq!(n, 6067);
        assert!(!in_jis_x_0212('𠮷') && !in_jis_x_0212('A') && !in_jis_x_0212('①'));
    }

    /// The allocation-free repertoire test answers as `SHIFT_JIS.encode` did, for every
    /// character of the Basic Multilingual Plane and a sample beyond it.
    #[test]
    fn repertoire_matches_encoding_rs_encode() {
        fn by_encode(c: char) -> bool {
            if c.is_ascii() {
                return !c.is_ascii_control();
            }
            let mut buf = [0u8; 4];
            let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(c.encode_utf8(&mut buf));
            if unmappable || bytes.len() != 2 {
                return false;
            }
            matches!(bytes[0], 0x81..=0x84 | 0x88..=0x9F | 0xE0..=0xEA)
        }
        for c in (0..=0xFFFFu32)
            .chain((0x10000..=0x10FFFF).step_by(97))
            .filter_map(char::from_u32)
        {
            assert_eq!(in_jis_x_0208(c), by_encode(c), "{c:?} U+{:04X}", c as u32);
        }
    }

    #[test]
    fn attributes_enforce_limits() {
        let limits = crate::Policy::default_policy().limits.clone();
        let today = date!(2026 - 11 - 27);
        let ok = Attributes::new(
            "山田　花子",
            date!(1980 - 02 - 17),
            Sex::Female,
            "東京都",
            &limits,
            today,
        );
        assert!(ok.is_ok());
        let long = "あ".repeat(201);
        let e = Attributes::new(
            "山田",
            date!(1980 - 02 - 17),
            Sex::Female,
            &long,
            &limits,
            today,
        )
        .unwrap_err();
        assert!(e.to_string().contains("address"), "{e}");
        let e = Attributes::new(
            "山田",
            date!(2027 - 01 - 01),
            Sex::Male,
            "東京都",
            &limits,
            today,
        )
        .unwrap_err();
        assert!(e.to_string().contains("future"), "{e}");
        assert!(Attributes::new(
            " ",
            date!(1980 - 01 - 01),
            Sex::Male,
            "東京都",
            &limits,
            today
        )
        .is_err());
    }
}

/// Serde for dates as `YYYY-MM-DD` (ISO 8601), used wherever a date leaves the program.
pub mod iso_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.format(FORMAT).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let s = String::deserialize(d)?;
        Date::parse(&s, FORMAT).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Date>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
            let s: Option<String> = Option::deserialize(d)?;
            s.map(|s| Date::parse(&s, FORMAT).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
