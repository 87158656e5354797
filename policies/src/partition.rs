//! The identity of an end-entity CRL partition.
//!
//! The real certificate names its CRL by the holder's municipality (reference §3, REAL-AUTH):
//!
//! ```text
//! C=JP, O=JPKI, OU=JPKI for user authentication, OU=CRL Distribution Points,
//!   OU=Ibaraki-ken, CN=Tsukuba-shi CRLDP
//! ```
//!
//! so jpki keeps one partition per (hierarchy, prefecture, municipality of the holder at
//! issuance): a [`Municipality`], fixed into the certificate's cRLDistributionPoints when it
//! is issued and never recomputed (a holder who moves keeps the old partition for the old
//! certificate). Certificates issued before municipal partitions existed carry
//! `CN=P00NN CRLDP` (serial modulo `crl.partitions`); they stay on those partitions until they
//! expire ([`Scope::Partition`]). The hierarchy is not part of this type: a
//! CRL is identified by `(Hierarchy, Scope)` (and, once roots have generations, by the
//! generation that signs it as well).
//!
//! The register's prefecture and municipality are the names the certificate shows, as the
//! signing certificate's subject shows them (`L=Kiyose-shi`, reference §2): jpki's resident
//! register keeps names, not local-government codes, so the names are the partition's key.

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The longest prefecture or municipality name: the register's limit (64 characters).
/// `CN=<municipality> CRLDP` must also stay within X.520's ub-common-name (64), checked by
/// [`Municipality::new`].
pub const MAX_NAME_CHARS: usize = 64;

/// What follows the municipality in the partition's CN.
pub const CN_SUFFIX: &str = " CRLDP";

/// Characters kept as they are in a partition's path segment: RFC 3986 unreserved but `.`,
/// so that no segment is `.` or `..` (the path is also a file name below the CRL directory).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// The place a municipal CRL partition is named after: the holder's prefecture and
/// municipality at issuance, as the distribution point's `OU=<prefecture>` and
/// `CN=<municipality> CRLDP` write them. Ordered by prefecture, then municipality (byte order),
/// as every storage engine orders partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Municipality {
    prefecture: String,
    municipality: String,
}

impl Municipality {
    /// Checks and wraps a place: each name 1 to 64 characters, no control characters, no
    /// leading or trailing space, and `<municipality> CRLDP` no longer than 64 characters
    /// (X.520 ub-common-name).
    pub fn new(prefecture: &str, municipality: &str) -> Result<Municipality, Error> {
        check_name("prefecture", prefecture, MAX_NAME_CHARS)?;
        check_name(
            "municipality",
            municipality,
            MAX_NAME_CHARS - CN_SUFFIX.len(),
        )?;
        Ok(Municipality {
            prefecture: prefecture.to_owned(),
            municipality: municipality.to_owned(),
        })
    }

    pub fn prefecture(&self) -> &str {
        &self.prefecture
    }

    pub fn municipality(&self) -> &str {
        &self.municipality
    }

    /// The distribution point's CN: `<municipality> CRLDP`.
    pub fn cn(&self) -> String {
        format!("{}{CN_SUFFIX}", self.municipality)
    }

    /// The partition's path below its hierarchy, in URLs and file names:
    /// `<prefecture>/<municipality>`, each segment percent-encoded outside RFC 3986's
    /// unreserved characters other than `.` (`Ibaraki-ken/Tsukuba-shi`; `千代田区` becomes
    /// `%E5%8D%83…`, `..` becomes `%2E%2E`): safe as a file name, never climbing out.
    pub fn path(&self) -> String {
        format!(
            "{}/{}",
            utf8_percent_encode(&self.prefecture, SEGMENT),
            utf8_percent_encode(&self.municipality, SEGMENT)
        )
    }

    /// Reads a [`Municipality::path`] back. Anything else — another number of segments,
    /// bad percent-encoding, a name [`Municipality::new`] refuses, or a segment not written
    /// the canonical way — is refused, so that one partition has exactly one path.
    pub fn from_path(path: &str) -> Result<Municipality, Error> {
        let bad = |problem: String| Error::Partition {
            name: path.to_owned(),
            problem,
        };
        let (p, m) = path
            .split_once('/')
            .filter(|(_, m)| !m.contains('/'))
            .ok_or_else(|| bad("expected <prefecture>/<municipality>".into()))?;
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("a segment is not percent-encoded UTF-8".into()))
        };
        let place = Municipality::new(&decode(p)?, &decode(m)?).map_err(|e| bad(e.to_string()))?;
        if place.path() != path {
            return Err(bad(format!(
                "not in canonical form (expected {})",
                place.path()
            )));
        }
        Ok(place)
    }

    /// A bound for ranges over places: ordered right after `self` and before every other
    /// place [`Municipality::new`] accepts (its municipality ends in NUL, which no accepted
    /// name contains). Not a place itself: use it only as an excluded range end.
    pub fn range_end(&self) -> Municipality {
        Municipality {
            prefecture: self.prefecture.clone(),
            municipality: format!("{}\0", self.municipality),
        }
    }

    /// Reads the municipality off a distribution point's CN (`Tsukuba-shi CRLDP`).
    pub fn from_cn(prefecture: &str, cn: &str) -> Result<Municipality, Error> {
        let municipality = cn.strip_suffix(CN_SUFFIX).ok_or_else(|| Error::Partition {
            name: cn.to_owned(),
            problem: format!("the CN does not end in \"{CN_SUFFIX}\""),
        })?;
        Municipality::new(prefecture, municipality)
    }
}

impl fmt::Display for Municipality {
    /// `OU=<prefecture>, CN=<municipality> CRLDP`: the partition's part of the directoryName.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OU={}, CN={}", self.prefecture, self.cn())
    }
}

/// Deserialised through [`Municipality::new`], so that a store or a file never hands out a
/// place the checks would refuse.
impl<'de> Deserialize<'de> for Municipality {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            prefecture: String,
            municipality: String,
        }
        let raw = Raw::deserialize(d)?;
        Municipality::new(&raw.prefecture, &raw.municipality).map_err(serde::de::Error::custom)
    }
}

fn check_name(field: &'static str, v: &str, max: usize) -> Result<(), Error> {
    let n = v.chars().count();
    let problem = if n == 0 || n > max {
        format!("must be 1 to {max} characters, got {n}")
    } else if v.chars().any(char::is_control) {
        "must not contain control characters".to_owned()
    } else if v.trim() != v {
        "must not begin or end with a space".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::Attribute { field, problem })
}

/// Which CRL of a hierarchy a certificate's distribution point names. With the hierarchy it
/// identifies one CRL everywhere: in the store, the publisher, file names, URLs and
/// `index.json`. Ordered serial partitions first (by number), then municipal partitions (by
/// prefecture and municipality), then the CA-level CRL, as every storage engine orders them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A serial partition, `CN=P00NN CRLDP`: the serial modulo `crl.partitions`, jpki's
    /// scheme before municipal partitions (`crl.partition_by = "serial"`). Certificates
    /// issued under it stay on it until they expire.
    Partition(u16),
    /// A municipal partition, `OU=<prefecture>, CN=<municipality> CRLDP`: the holder's
    /// municipality at issuance, as the real certificate names its CRL (reference §3).
    Municipal(Municipality),
    /// The CRL that covers the hierarchy's CA-level certificates (root, OCSP signers).
    Ca,
}

impl Scope {
    /// The scope's name below its hierarchy in file names, URLs and `index.json`:
    /// `7` for a serial partition, `<prefecture>/<municipality>` (percent-encoded,
    /// [`Municipality::path`]) for a municipal one, `ca` for the CA-level CRL.
    pub fn path(&self) -> String {
        match self {
            Scope::Partition(p) => p.to_string(),
            Scope::Municipal(m) => m.path(),
            Scope::Ca => "ca".to_owned(),
        }
    }

    /// Reads a [`Scope::path`] back, refusing anything it would not write (a number with a
    /// leading zero or above 65535, a malformed municipal path).
    pub fn from_path(path: &str) -> Result<Scope, Error> {
        if path == "ca" {
            return Ok(Scope::Ca);
        }
        if path.contains('/') {
            return Municipality::from_path(path).map(Scope::Municipal);
        }
        match path.parse::<u16>() {
            Ok(p) if p.to_string() == path => Ok(Scope::Partition(p)),
            _ => Err(Error::Partition {
                name: path.to_owned(),
                problem: "expected a partition number, <prefecture>/<municipality> or ca".into(),
            }),
        }
    }

    /// Whether the scope lists end-entity certificates (its IDP says onlyContainsUserCerts).
    pub fn is_end_entity(&self) -> bool {
        !matches!(self, Scope::Ca)
    }
}

/// How records and answers write a scope: a serial partition as its number (the form
/// certificate records had before municipal partitions, so that they still read), a
/// municipal one as `{"prefecture": …, "municipality": …}`, the CA-level CRL as `"ca"`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum ScopeRepr {
    Serial(u16),
    Municipal(Municipality),
    Named(String),
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::Partition(p) => ScopeRepr::Serial(*p),
            Scope::Municipal(m) => ScopeRepr::Municipal(m.clone()),
            Scope::Ca => ScopeRepr::Named("ca".into()),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match ScopeRepr::deserialize(d)? {
            ScopeRepr::Serial(p) => Ok(Scope::Partition(p)),
            ScopeRepr::Municipal(m) => Ok(Scope::Municipal(m)),
            ScopeRepr::Named(n) if n == "ca" => Ok(Scope::Ca),
            ScopeRepr::Named(n) => Err(serde::de::Error::custom(format!(
                "CRL scope {n:?}: expected a partition number, a municipality or \"ca\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_are_canonical() {
        let m = Municipality::new("Ibaraki-ken", "Tsukuba-shi").unwrap();
        assert_eq!(m.path(), "Ibaraki-ken/Tsukuba-shi");
        assert_eq!(m.cn(), "Tsukuba-shi CRLDP");
        assert_eq!(m.to_string(), "OU=Ibaraki-ken, CN=Tsukuba-shi CRLDP");
        assert_eq!(Municipality::from_path(&m.path()).unwrap(), m);
        let j = Municipality::new("東京都", "千代田区").unwrap();
        assert!(j.path().is_ascii());
        assert_eq!(Municipality::from_path(&j.path()).unwrap(), j);
        let spaced = Municipality::new("Tokyo-to", "Some town/x").unwrap();
        assert_eq!(spaced.path(), "Tokyo-to/Some%20town%2Fx");
        assert_eq!(Municipality::from_path(&spaced.path()).unwrap(), spaced);
        let dots = Municipality::new("..", ".").unwrap();
        assert_eq!(dots.path(), "%2E%2E/%2E");
        assert_eq!(Municipality::from_path("%2E%2E/%2E").unwrap(), dots);
        assert!(Municipality::from_path("../x").is_err(), "not canonical");
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        for (p, m) in [
            ("", "Tsukuba-shi"),
            ("Ibaraki-ken", ""),
            ("Ibaraki-ken", " Tsukuba-shi"),
            ("Ibaraki\n", "Tsukuba-shi"),
            ("Ibaraki-ken", &"x".repeat(59)),
        ] {
            assert!(Municipality::new(p, m).is_err(), "{p:?} {m:?}");
        }
        assert!(Municipality::new("Ibaraki-ken", &"x".repeat(58)).is_ok());
        for bad in [
            "Tsukuba-shi",
            "a/b/c",
            "Ibaraki-ken/",
            "%FF/x",
            "Ibaraki%2Dken/Tsukuba-shi",
            "a/%0A",
        ] {
            let e = Municipality::from_path(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        assert!(Municipality::from_cn("Ibaraki-ken", "Tsukuba-shi").is_err());
        assert_eq!(
            Municipality::from_cn("Ibaraki-ken", "Tsukuba-shi CRLDP").unwrap(),
            Municipality::new("Ibaraki-ken", "Tsukuba-shi").unwrap()
        );
        // Deserialising checks too (TOML: the crate has no JSON dependency).
        let empty: Result<Municipality, _> = toml::from_str("prefecture = ''\nmunicipality = 'x'");
        assert!(empty.is_err());
        let ok: Municipality = toml::from_str("prefecture = 'A'\nmunicipality = 'B'").unwrap();
        assert_eq!(ok, Municipality::new("A", "B").unwrap());
    }
}
