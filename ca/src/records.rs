//! What the store holds, and how keys are laid out (see [`crate::store`]).

use base64::Engine;
use policies::{Attributes, Hierarchy, Reason};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::error::{Error, Result};

/// What kind of certificate a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    Root,
    OcspSigner,
    Signing,
    Auth,
}

impl CertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::Root => "root",
            CertKind::OcspSigner => "ocsp-signer",
            CertKind::Signing => "signing",
            CertKind::Auth => "auth",
        }
    }
    pub fn of(h: Hierarchy) -> CertKind {
        match h {
            Hierarchy::Signing => CertKind::Signing,
            Hierarchy::Auth => CertKind::Auth,
        }
    }
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// An issued certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertRecord {
    pub hierarchy: Hierarchy,
    #[serde(with = "hex::serde")]
    pub serial: Vec<u8>,
    pub kind: CertKind,
    pub holder: Option<String>,
    /// CRL partition; `None` for CA-level certificates (root, OCSP signer).
    pub partition: Option<u16>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "b64")]
    pub der: Vec<u8>,
}

impl CertRecord {
    pub fn pem(&self) -> String {
        pem(&self.der)
    }

    /// The record as the store keeps it: `1 · JSON length (u32 BE) · JSON of every field but
    /// the certificate · the certificate's DER`. The DER stays binary (no base64 to encode
    /// and decode on every issuance and lookup).
    pub fn to_store(&self) -> Result<Vec<u8>> {
        let head = serde_json::to_vec(&Head::from(self))
            .map_err(|e| Error::Store(format!("encode a certificate record: {e}")))?;
        let len = u32::try_from(head.len())
            .map_err(|_| Error::Store("certificate record too large".into()))?;
        let mut out = Vec::with_capacity(5 + head.len() + self.der.len());
        out.push(STORE_FORMAT);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.der);
        Ok(out)
    }

    /// Reads a record written by [`CertRecord::to_store`].
    pub fn from_store(b: &[u8]) -> Result<CertRecord> {
        let corrupt = |what: &str| Error::Store(format!("corrupt certificate record: {what}"));
        let (&format, rest) = b.split_first().ok_or_else(|| corrupt("empty"))?;
        if format != STORE_FORMAT {
            return Err(corrupt("unknown format"));
        }
        let (len, rest) = rest
            .split_at_checked(4)
            .ok_or_else(|| corrupt("truncated"))?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupt("truncated"))?) as usize;
        let (head, der) = rest
            .split_at_checked(len)
            .ok_or_else(|| corrupt("truncated"))?;
        let head: Head = serde_json::from_slice(head).map_err(|e| corrupt(&e.to_string()))?;
        Ok(CertRecord {
            hierarchy: head.hierarchy,
            serial: head.serial,
            kind: head.kind,
            holder: head.holder,
            partition: head.partition,
            not_before: head.not_before,
            not_after: head.not_after,
            der: der.to_vec(),
        })
    }
}

/// Format byte of [`CertRecord::to_store`].
const STORE_FORMAT: u8 = 1;

/// A [`CertRecord`] without its DER, as stored.
#[derive(Serialize, Deserialize)]
struct Head {
    hierarchy: Hierarchy,
    #[serde(with = "hex::serde")]
    serial: Vec<u8>,
    kind: CertKind,
    holder: Option<String>,
    partition: Option<u16>,
    #[serde(with = "time::serde::rfc3339")]
    not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    not_after: OffsetDateTime,
}

impl From<&CertRecord> for Head {
    fn from(c: &CertRecord) -> Head {
        Head {
            hierarchy: c.hierarchy,
            serial: c.serial.clone(),
            kind: c.kind,
            holder: c.holder.clone(),
            partition: c.partition,
            not_before: c.not_before,
            not_after: c.not_after,
        }
    }
}

pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A certificate's revocation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Good,
    Held,
    Revoked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Good => "good",
            State::Held => "held",
            State::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub state: State,
    pub reason: Option<Reason>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub invalidity: Option<OffsetDateTime>,
}

impl StatusRecord {
    pub const GOOD: StatusRecord = StatusRecord {
        state: State::Good,
        reason: None,
        since: None,
        invalidity: None,
    };
}

/// One CRL entry, in a fixed 26-byte layout so that a partition of 10^6 entries can be read
/// without JSON: `reason (u8) · revoked_at (i64 BE, unix seconds) · has_invalidity (u8) ·
/// invalidity (i64 BE) · not_after (i64 BE)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedEntry {
    pub reason: Reason,
    pub revoked_at: i64,
    pub invalidity: Option<i64>,
    pub not_after: i64,
}

impl RevokedEntry {
    pub const LEN: usize = 26;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.reason.code();
        b[1..9].copy_from_slice(&self.revoked_at.to_be_bytes());
        if let Some(t) = self.invalidity {
            b[9] = 1;
            b[10..18].copy_from_slice(&t.to_be_bytes());
        }
        b[18..26].copy_from_slice(&self.not_after.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<RevokedEntry> {
        let bad = || Error::Store("corrupt revoked entry".into());
        if b.len() != Self::LEN {
            return Err(bad());
        }
        let i64_at = |o: usize| -> Result<i64> {
            Ok(i64::from_be_bytes(
                b[o..o + 8].try_into().map_err(|_| bad())?,
            ))
        };
        Ok(RevokedEntry {
            reason: Reason::from_code(b[0]).ok_or_else(bad)?,
            revoked_at: i64_at(1)?,
            invalidity: if b[9] == 1 { Some(i64_at(10)?) } else { None },
            not_after: i64_at(18)?,
        })
    }
}

/// Where a certificate sits in the register's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResidentState {
    Active,
    /// Emigration reported with a future departure date.
    Emigrating,
    Emigrated,
    Deceased,
}

/// One line of a resident's history: which event, when, which certificates it touched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryLine {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub event: String,
    pub certificates: Vec<String>,
}

/// A resident-register record (住民基本台帳 / 戸籍の附票 for emigrants).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resident {
    pub id: String,
    pub attributes: Attributes,
    pub prefecture: String,
    pub municipality: String,
    #[serde(with = "policies::model::iso_date")]
    pub card_expiry: Date,
    pub state: ResidentState,
    /// Set once the card is reported lost; cleared by card renewal.
    pub card_lost: bool,
    #[serde(with = "policies::model::iso_date::option")]
    pub departure: Option<Date>,
    /// Bumped on every change: issuance checks it did not move underneath.
    pub version: u64,
    pub history: Vec<HistoryLine>,
    /// The newest certificate issued to the holder of each kind (hex serial).
    #[serde(default)]
    pub current: std::collections::BTreeMap<Hierarchy, String>,
}

/// `hierarchy · serial`.
pub fn cert_key(h: Hierarchy, serial: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + serial.len());
    k.push(h.tag());
    k.extend_from_slice(serial);
    k
}

/// Scope byte pair of the CA-level CRL.
pub const CA_SCOPE: u16 = 0xFFFF;

/// `hierarchy · scope · serial`.
pub fn revoked_key(h: Hierarchy, scope: u16, serial: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + serial.len());
    k.push(h.tag());
    k.extend_from_slice(&scope.to_be_bytes());
    k.extend_from_slice(serial);
    k
}

/// `holder · 0x00 · hierarchy · serial`.
pub fn holder_key(holder: &str, h: Hierarchy, serial: &[u8]) -> Vec<u8> {
    let mut k = holder_prefix(holder);
    k.push(h.tag());
    k.extend_from_slice(serial);
    k
}

pub fn holder_prefix(holder: &str) -> Vec<u8> {
    let mut k = holder.as_bytes().to_vec();
    k.push(0);
    k
}

pub fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Store(format!("encode: {e}")))
}

pub fn from_json<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Store(format!("corrupt record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_entries_round_trip() {
        for e in [
            RevokedEntry {
                reason: Reason::KeyCompromise,
                revoked_at: 1_700_000_000,
                invalidity: Some(1_690_000_000),
                not_after: 1_900_000_000,
            },
            RevokedEntry {
                reason: Reason::CertificateHold,
                revoked_at: -5,
                invalidity: None,
                not_after: 0,
            },
        ] {
            assert_eq!(RevokedEntry::decode(&e.encode()).unwrap(), e);
        }
        assert!(RevokedEntry::decode(&[0u8; 3]).is_err());
        let mut bad = RevokedEntry {
            reason: Reason::Superseded,
            revoked_at: 0,
            invalidity: None,
            not_after: 0,
        }
        .encode();
        bad[0] = 7;
        assert!(RevokedEntry::decode(&bad).is_err());
    }

    #[test]
    fn certificate_records_round_trip_and_damage_is_named() {
        let c = CertRecord {
            hierarchy: Hierarchy::Signing,
            serial: vec![0x4c, 0x0c, 0x27],
            kind: CertKind::Signing,
            holder: Some("R0123".into()),
            partition: Some(7),
            not_before: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            not_after: OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap(),
            der: vec![0x30, 0x82, 0x01, 0x00, 0xAA, 0xBB],
        };
        let b = c.to_store().unwrap();
        let back = CertRecord::from_store(&b).unwrap();
        assert_eq!(
            (back.serial, back.holder, back.partition, back.der),
            (
                c.serial.clone(),
                c.holder.clone(),
                c.partition,
                c.der.clone()
            )
        );
        assert_eq!(
            (back.not_before, back.not_after),
            (c.not_before, c.not_after)
        );
        for (bytes, what) in [
            (Vec::new(), "empty"),
            (vec![9, 0, 0, 0, 0], "unknown format"),
            (b[..3].to_vec(), "truncated"),
            ([&b[..5], b"{}"].concat(), "truncated"),
        ] {
            let e = CertRecord::from_store(&bytes).unwrap_err().to_string();
            assert!(
                e.contains("corrupt certificate record") && e.contains(what),
                "{e}"
            );
        }
        let mut bad_head = b.clone();
        bad_head[6] = b'!';
        assert!(CertRecord::from_store(&bad_head)
            .unwrap_err()
            .to_string()
            .contains("corrupt certificate record"));
    }
}
