//! What the storage authority holds, as types (how an engine lays them out is its own business:
//! the sled engine's layouts are in [`crate::storage::sled::layout`]).

pub mod platform;

use base64::Engine;
use policies::{Attributes, Hierarchy, Reason};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

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
    /// The CRL partition the certificate names (fixed at issuance: a municipal partition,
    /// or a serial partition for certificates issued under `crl.partition_by = "serial"` or
    /// before municipal partitions); `None` for CA-level certificates (root, OCSP signer).
    pub partition: Option<policies::profile::Scope>,
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

    /// The certificate's SubjectPublicKeyInfo (DER).
    pub fn spki(&self) -> crate::Result<Vec<u8>> {
        spki_of(&self.der)
    }
}

/// The SubjectPublicKeyInfo DER of a certificate.
pub fn spki_of(cert_der: &[u8]) -> crate::Result<Vec<u8>> {
    let (_, c) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| crate::Error::Store(format!("stored certificate does not parse: {e}")))?;
    Ok(c.tbs_certificate.subject_pki.raw.to_vec())
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

/// One CRL entry: times in unix seconds, so that a partition of 10^6 entries is cheap to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedEntry {
    pub reason: Reason,
    pub revoked_at: i64,
    pub invalidity: Option<i64>,
    pub not_after: i64,
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
