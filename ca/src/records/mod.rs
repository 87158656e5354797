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
    /// A smartphone's signing certificate (スマホ用署名用電子証明書), issued on the card's
    /// authority ([`crate::authority::phone`]).
    PhoneSigning,
    /// A smartphone's user-authentication certificate (スマホ用利用者証明用電子証明書).
    PhoneAuth,
}

impl CertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::Root => "root",
            CertKind::OcspSigner => "ocsp-signer",
            CertKind::Signing => "signing",
            CertKind::Auth => "auth",
            CertKind::PhoneSigning => "phone-signing",
            CertKind::PhoneAuth => "phone-auth",
        }
    }
    pub fn of(h: Hierarchy) -> CertKind {
        match h {
            Hierarchy::Signing => CertKind::Signing,
            Hierarchy::Auth => CertKind::Auth,
        }
    }
    /// The smartphone kind of a hierarchy.
    pub fn phone(h: Hierarchy) -> CertKind {
        match h {
            Hierarchy::Signing => CertKind::PhoneSigning,
            Hierarchy::Auth => CertKind::PhoneAuth,
        }
    }
    /// Whether this is a smartphone certificate.
    pub fn is_phone(self) -> bool {
        matches!(self, CertKind::PhoneSigning | CertKind::PhoneAuth)
    }
    /// Every kind, in a fixed order (parsers of `as_str`).
    pub const ALL: [CertKind; 6] = [
        CertKind::Root,
        CertKind::OcspSigner,
        CertKind::Signing,
        CertKind::Auth,
        CertKind::PhoneSigning,
        CertKind::PhoneAuth,
    ];
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
    /// The generation of the hierarchy's root that issued it (a root: its own generation),
    /// fixed at issuance: that generation signs the CRL the certificate is listed on
    /// (docs/roots.md). Records written before root generations say nothing: generation 1.
    #[serde(
        default = "first_generation",
        skip_serializing_if = "is_first_generation"
    )]
    pub generation: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "b64")]
    pub der: Vec<u8>,
}

/// The generation of records that name none: the root `jpki init` made.
pub fn first_generation() -> u32 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if takes a reference
fn is_first_generation(g: &u32) -> bool {
    *g == 1
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

/// One change of a certificate's status, as the status history keeps it (issue #18): the
/// status that held from `at` until the next change. A certificate with no change was good
/// from issuance. `at` is the authority's clock when the change was made, which is also when it
/// took effect; `status.since` stays what the CRL and OCSP say (they agree for revocations
/// and holds; a released hold is `good` with no `since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub status: StatusRecord,
}

impl StatusChange {
    /// The status as of `t` from a certificate's history (in the order [`crate::storage::
    /// Storage::status_history`] gives it): the last change at or before `t`, or good when
    /// there is none (a certificate is good from issuance until its first change).
    pub fn as_of(history: &[StatusChange], t: OffsetDateTime) -> StatusRecord {
        history
            .iter()
            .rev()
            .find(|c| c.at <= t)
            .map_or(StatusRecord::GOOD, |c| c.status)
    }
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

/// One line of a resident's history: which event, when, which certificates it touched, what
/// changed (before → after) and which municipal office acted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryLine {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub event: String,
    pub certificates: Vec<String>,
    /// The register fields the event changed (absent in records written before this existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// The municipality whose office recorded the event: the holder's municipality after it
    /// (for a move, the office of the new address, which takes the 転入届).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office: Option<String>,
    /// Why an eligibility rule was overridden or a duplicate registration allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
}

/// One register field an event changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: String,
    pub after: String,
}

impl Change {
    /// The fields that differ between two versions of a resident, in a fixed order.
    pub fn between(before: &Resident, after: &Resident) -> Vec<Change> {
        let (a, b) = (&before.attributes, &after.attributes);
        let sex = |s: policies::Sex| s.digit().to_string();
        let state = |s: ResidentState| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{s:?}"))
        };
        let pairs = [
            ("name", a.name().to_owned(), b.name().to_owned()),
            ("birth", a.birth().to_string(), b.birth().to_string()),
            ("sex", sex(a.sex()), sex(b.sex())),
            ("address", a.address().to_owned(), b.address().to_owned()),
            (
                "prefecture",
                before.prefecture.clone(),
                after.prefecture.clone(),
            ),
            (
                "municipality",
                before.municipality.clone(),
                after.municipality.clone(),
            ),
            (
                "card_expiry",
                before.card_expiry.to_string(),
                after.card_expiry.to_string(),
            ),
            ("state", state(before.state), state(after.state)),
            (
                "card_lost",
                before.card_lost.to_string(),
                after.card_lost.to_string(),
            ),
            (
                "departure",
                before.departure.map(|d| d.to_string()).unwrap_or_default(),
                after.departure.map(|d| d.to_string()).unwrap_or_default(),
            ),
        ];
        pairs
            .into_iter()
            .filter(|(_, x, y)| x != y)
            .map(|(f, x, y)| Change {
                field: f.to_owned(),
                before: x,
                after: y,
            })
            .collect()
    }
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
    /// The continued-use procedure was done before emigration: the card stays usable abroad
    /// and an emigrant signing certificate can be issued from the family-register annex
    /// (reference §8). Absent in records written before it existed (false).
    #[serde(default)]
    pub continued_use: bool,
    /// Bumped on every change: issuance checks it did not move underneath.
    pub version: u64,
    pub history: Vec<HistoryLine>,
    /// The newest certificate issued to the holder of each kind (hex serial).
    #[serde(default)]
    pub current: std::collections::BTreeMap<Hierarchy, String>,
    /// The newest smartphone certificate of each hierarchy (hex serial): one phone at a time
    /// ([`crate::authority::phone`]). Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub phone: std::collections::BTreeMap<Hierarchy, String>,
    /// The one open challenge a phone application must answer (one use; replaced by a newer
    /// one, cleared by the issuance that uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_challenge: Option<PhoneChallenge>,
}

/// A challenge the CA issued for a smartphone application: the card's authentication key
/// signs it together with the phone's CSRs ([`crate::authority::phone`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneChallenge {
    /// 32 random octets, lower-case hex.
    pub value: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl Resident {
    /// The address the register gives today: the resident record's, or for an emigrant (after
    /// the departure) the family-register annex's — the emigrant marker and departure date
    /// ([`policies::model::emigrant_address`]), never the last domestic address.
    pub fn register_address(&self) -> String {
        match (self.state, self.departure) {
            (ResidentState::Emigrated, Some(d)) => policies::model::emigrant_address(d),
            _ => self.attributes.address().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emigrant_s_register_address_is_the_annex_marker() {
        let mut r: Resident = serde_json::from_value(serde_json::json!({
            "id": "R1",
            "attributes": {"name": "在外 花子", "birth": "1990-02-03", "sex": "2",
                           "address": "東京都千代田区霞が関2-1-2"},
            "prefecture": "Tokyo", "municipality": "Chiyoda-ku",
            "card_expiry": "2031-02-03", "state": "emigrating", "card_lost": false,
            "departure": "2027-04-01", "version": 0, "history": []
        }))
        .unwrap();
        assert!(!r.continued_use, "absent in older records: false");
        assert_eq!(r.register_address(), "東京都千代田区霞が関2-1-2");
        r.state = ResidentState::Emigrated;
        assert_eq!(r.register_address(), "国外転出者（2027年4月1日転出）");
    }
}
