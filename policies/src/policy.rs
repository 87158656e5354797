//! The operator's policy: one TOML file, embedded by default (`default-policy.toml`),
//! validated as a whole at load so that a bad value stops the program and names its field.
//! Field documentation: `docs/policy.md`.

use const_oid::ObjectIdentifier;
use serde::{Deserialize, Serialize};

use crate::partition::Scope;
use crate::{Error, Hierarchy, Municipality};

/// The embedded default policy text.
pub const DEFAULT_POLICY: &str = include_str!("../default-policy.toml");

/// How serial numbers are chosen (policy field `ca.serials`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SerialScheme {
    /// 127 bits from the operating system's RNG (RFC 5280 §4.1.2.2 allows up to 20 octets).
    Random,
    /// One counter per hierarchy, starting at 1 — what J-LIS appears to do (reference §1).
    Sequential,
}

/// What `jpki serve` does when a root rollover falls due (policy field `ca.root_rollover`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloverMode {
    /// Warn in the log and `/metrics`; the operator runs `jpki root rollover`.
    #[default]
    Warn,
    /// Refused when the policy is loaded: a root rollover is a key ceremony under dual
    /// control (two ca-officers approve `jpki root rollover`), which no server may make by
    /// itself. Kept so that such a file is refused with that reason, not as a syntax error.
    Auto,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub ca: CaSection,
    pub signing: SigningSection,
    pub auth: AuthSection,
    pub validity: ValiditySection,
    pub crl: CrlSection,
    pub ocsp: OcspSection,
    pub limits: Limits,
    /// Absent in policy files written before it existed: the real service's rules.
    #[serde(default)]
    pub eligibility: EligibilitySection,
    /// Absent in policy files written before it existed: the defaults below.
    #[serde(default)]
    pub tsa: TsaSection,
}

/// The policy's `[tsa]` section: the time-stamping authority (`jpki serve --tsa`,
/// docs/tsa.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsaSection {
    /// The TSA policy every token is issued under (RFC 3161 §2.4.2 `policy`; requests naming
    /// another are refused with unacceptedPolicy). The default is RFC 7229's
    /// id-TEST-certPolicyEight, an OID for tests: an operator going live sets one from its
    /// own arc.
    pub policy_oid: String,
    /// Validity of each TSA unit certificate, in years.
    pub unit_validity_years: u32,
    /// `jpki serve` replaces the TSA unit's key and certificate this many days before the
    /// certificate ends (and `jpki tsa renew --if-due` does from then on).
    pub renew_days_before: u32,
}

impl Default for TsaSection {
    fn default() -> Self {
        TsaSection {
            policy_oid: "1.3.6.1.5.5.7.13.8".into(),
            unit_validity_years: 5,
            renew_days_before: 180,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    pub organization: String,
    pub operator: String,
    pub root_validity_years: u32,
    /// Years between root generations (`jpki root rollover`): `jpki serve` warns when the
    /// newest generation is this old (the rollover itself is a dual-control ceremony).
    /// Absent in policy files written before generations existed: 4, as the real service
    /// (reference §1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_rollover_years: Option<u32>,
    /// What `jpki serve` does when a rollover is due: `"warn"` (the only value accepted: log
    /// and `/metrics`; two ca-officers approve `jpki root rollover`).
    #[serde(default)]
    pub root_rollover: RolloverMode,
    pub serials: SerialScheme,
    pub base_url: String,
    pub cps_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    pub policy_oid: String,
    /// Write authorityInfoAccess (OCSP) into signing certificates: a jpki addition for open
    /// deployments — no real signing certificate has been seen with one (reference §2).
    pub ocsp_url: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub policy_oid: String,
    /// Mark certificatePolicies critical, as the real certificate does (reference §3); off
    /// only for relying parties built on rustls-webpki, which refuses it.
    pub critical_policies: bool,
    /// Write authorityInfoAccess (OCSP) into authentication certificates, as the real
    /// certificate does (reference §3, REAL-AUTH: `http://ocspauthnorm.jpki.go.jp`).
    pub ocsp_url: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValiditySection {
    pub birthdays: u32,
    pub renewal_birthdays: u32,
    pub renewal_window_months: u32,
    pub ocsp_signer_days: u32,
    /// Renew an OCSP signer certificate this many days before its notAfter (absent in policy
    /// files written before renewal existed: see [`ValiditySection::ocsp_signer_renew_days`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp_signer_renew_days: Option<u32>,
}

impl ValiditySection {
    /// Days before an OCSP signer's notAfter at which it is renewed: the policy's
    /// `validity.ocsp_signer_renew_days`, else 30 days capped at a third of
    /// `ocsp_signer_days` (at least 1).
    pub fn ocsp_signer_renew_days(&self) -> u32 {
        self.ocsp_signer_renew_days
            .unwrap_or_else(|| (self.ocsp_signer_days / 3).clamp(1, 30))
    }
}

/// How new certificates are assigned to CRL partitions (policy field `crl.partition_by`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionScheme {
    /// One partition per (hierarchy, prefecture, municipality of the holder at issuance),
    /// named `OU=<prefecture>, CN=<municipality> CRLDP` as the real certificate names it
    /// (reference §3). The default, also for policy files written before the field existed.
    #[default]
    Municipality,
    /// The serial number modulo `crl.partitions`, `CN=P00NN CRLDP`: the scheme of jpki
    /// before municipal partitions. Certificates issued under it keep their partition either
    /// way; this switch only decides where new certificates go.
    Serial,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSection {
    /// Where new end-entity certificates are listed (see [`PartitionScheme`]).
    #[serde(default)]
    pub partition_by: PartitionScheme,
    /// The number of serial partitions per hierarchy (`partition_by = "serial"`, and the
    /// partitions of certificates issued before municipal partitions).
    pub partitions: u16,
    /// Write the CRL's HTTP URL into CRL distribution points: a jpki addition for open
    /// deployments (real distribution points are directoryNames only, reference §3).
    pub uri: bool,
    /// Write the JPKI-style directoryName into CRL distribution points.
    pub directory_name: bool,
    pub next_update_hours: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcspSection {
    pub next_update_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub name_max_chars: usize,
    pub address_max_chars: usize,
    pub min_rsa_bits: usize,
}

/// The policy's `[eligibility]` section (absent in policy files written before it existed:
/// the defaults are the real service's rules); the rules themselves are in
/// [`crate::eligibility`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EligibilitySection {
    /// Youngest age, in years on the day of issuance, for a signing certificate without an
    /// override.
    pub signing_min_age: u32,
    /// Age from which a card runs `card_birthdays_adult` birthdays, else `card_birthdays_minor`.
    pub adult_age: u32,
    pub card_birthdays_adult: u32,
    pub card_birthdays_minor: u32,
    /// Refuse a new certificate while the current one of the kind has more than
    /// `validity.renewal_window_months` left (unless overridden with a reason).
    pub renewal_window: bool,
}

impl Default for EligibilitySection {
    fn default() -> Self {
        EligibilitySection {
            signing_min_age: 15,
            adult_age: 18,
            card_birthdays_adult: 10,
            card_birthdays_minor: 5,
            renewal_window: true,
        }
    }
}

fn field(field: &str, problem: impl Into<String>) -> Error {
    Error::PolicyField {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

impl Policy {
    /// Parses and validates a policy file.
    pub fn from_toml(text: &str) -> Result<Policy, Error> {
        let policy: Policy =
            toml::from_str(text).map_err(|e| Error::PolicySyntax(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// The embedded default policy.
    pub fn default_policy() -> Policy {
        // The embedded file is checked by the `default_policy_is_valid` test.
        Policy::from_toml(DEFAULT_POLICY).expect("embedded default policy is valid")
    }

    fn validate(&self) -> Result<(), Error> {
        let ca = &self.ca;
        for (name, value) in [
            ("ca.organization", &ca.organization),
            ("ca.operator", &ca.operator),
        ] {
            if value.trim().is_empty() || value.chars().count() > 64 {
                return Err(field(name, "must be 1 to 64 characters"));
            }
        }
        if !(1..=30).contains(&ca.root_validity_years) {
            return Err(field(
                "ca.root_validity_years",
                format!("must be 1 to 30, got {}", ca.root_validity_years),
            ));
        }
        if ca.root_rollover == RolloverMode::Auto {
            return Err(field(
                "ca.root_rollover",
                "\"auto\" is not allowed: a root rollover is a key ceremony under dual control \
                 (two ca-officers approve `jpki root rollover`); use \"warn\"",
            ));
        }
        if let Some(y) = ca.root_rollover_years {
            if y == 0 || y >= ca.root_validity_years {
                return Err(field(
                    "ca.root_rollover_years",
                    format!(
                        "must be 1 to root_validity_years - 1 ({}), got {y}: generations must overlap",
                        ca.root_validity_years.saturating_sub(1)
                    ),
                ));
            }
        }
        check_url("ca.base_url", &ca.base_url)?;
        if ca.base_url.ends_with('/') {
            return Err(field("ca.base_url", "must not end with `/`"));
        }
        check_url("ca.cps_uri", &ca.cps_uri)?;
        if !ca.cps_uri.is_ascii() {
            return Err(field("ca.cps_uri", "must be ASCII (it is an IA5String)"));
        }
        self.eligibility.validate()?;
        parse_oid("tsa.policy_oid", &self.tsa.policy_oid)?;
        if !(1..=10).contains(&self.tsa.unit_validity_years) {
            return Err(field(
                "tsa.unit_validity_years",
                format!("must be 1 to 10, got {}", self.tsa.unit_validity_years),
            ));
        }
        if u64::from(self.tsa.renew_days_before) * 2 > u64::from(self.tsa.unit_validity_years) * 365
        {
            return Err(field(
                "tsa.renew_days_before",
                format!(
                    "must be at most half of tsa.unit_validity_years, got {} days",
                    self.tsa.renew_days_before
                ),
            ));
        }
        parse_oid("signing.policy_oid", &self.signing.policy_oid)?;
        parse_oid("auth.policy_oid", &self.auth.policy_oid)?;
        let v = &self.validity;
        if !(1..=10).contains(&v.birthdays) {
            return Err(field(
                "validity.birthdays",
                format!("must be 1 to 10, got {}", v.birthdays),
            ));
        }
        if v.renewal_birthdays < v.birthdays || v.renewal_birthdays > v.birthdays + 1 {
            return Err(field(
                "validity.renewal_birthdays",
                format!(
                    "must be validity.birthdays or one more, got {}",
                    v.renewal_birthdays
                ),
            ));
        }
        if !(0..=12).contains(&v.renewal_window_months) {
            return Err(field(
                "validity.renewal_window_months",
                format!("must be 0 to 12, got {}", v.renewal_window_months),
            ));
        }
        if !(2..=3650).contains(&v.ocsp_signer_days) {
            return Err(field(
                "validity.ocsp_signer_days",
                format!("must be 2 to 3650, got {}", v.ocsp_signer_days),
            ));
        }
        let renew = v.ocsp_signer_renew_days();
        if renew == 0 || renew >= v.ocsp_signer_days {
            return Err(field(
                "validity.ocsp_signer_renew_days",
                format!(
                    "must be 1 to validity.ocsp_signer_days - 1 ({}), got {renew}",
                    v.ocsp_signer_days.saturating_sub(1)
                ),
            ));
        }
        // Answers signed by a signer stay in caches until their nextUpdate: they must expire
        // before the signer they were signed by, so the margin must exceed their lifetime.
        if u64::from(renew) * 24 * 60 <= u64::from(self.ocsp.next_update_minutes) {
            return Err(field(
                "validity.ocsp_signer_renew_days",
                format!(
                    "must be longer than an OCSP answer's life (ocsp.next_update_minutes = {}), got {renew} days",
                    self.ocsp.next_update_minutes
                ),
            ));
        }
        if !(1..=4096).contains(&self.crl.partitions) {
            return Err(field(
                "crl.partitions",
                format!("must be 1 to 4096, got {}", self.crl.partitions),
            ));
        }
        if !self.crl.uri && !self.crl.directory_name {
            return Err(field(
                "crl.directory_name",
                "crl.uri and crl.directory_name cannot both be false: the distribution point would name nothing",
            ));
        }
        if !(1..=24 * 31).contains(&self.crl.next_update_hours) {
            return Err(field(
                "crl.next_update_hours",
                format!("must be 1 to 744, got {}", self.crl.next_update_hours),
            ));
        }
        if !(1..=7 * 24 * 60).contains(&self.ocsp.next_update_minutes) {
            return Err(field(
                "ocsp.next_update_minutes",
                format!("must be 1 to 10080, got {}", self.ocsp.next_update_minutes),
            ));
        }
        let l = &self.limits;
        if !(1..=1000).contains(&l.name_max_chars) {
            return Err(field("limits.name_max_chars", "must be 1 to 1000"));
        }
        if !(1..=1000).contains(&l.address_max_chars) {
            return Err(field("limits.address_max_chars", "must be 1 to 1000"));
        }
        if !(2048..=8192).contains(&l.min_rsa_bits) {
            return Err(field(
                "limits.min_rsa_bits",
                format!("must be 2048 to 8192, got {}", l.min_rsa_bits),
            ));
        }
        Ok(())
    }

    /// The certificatePolicies OID of a hierarchy's end-entity certificates.
    pub fn policy_oid(&self, h: Hierarchy) -> ObjectIdentifier {
        let text = match h {
            Hierarchy::Signing => &self.signing.policy_oid,
            Hierarchy::Auth => &self.auth.policy_oid,
        };
        // Validated in `validate`.
        ObjectIdentifier::new(text).expect("policy OID validated at load")
    }

    /// The TSA policy OID of every time-stamp token.
    pub fn tsa_policy_oid(&self) -> ObjectIdentifier {
        // Validated in `validate`.
        ObjectIdentifier::new(&self.tsa.policy_oid).expect("TSA policy OID validated at load")
    }

    /// The CRL of one serial partition: `<base_url>/crl/<hierarchy>/<partition>.crl`.
    pub fn crl_url(&self, h: Hierarchy, partition: u16) -> String {
        format!("{}/crl/{}/{}.crl", self.ca.base_url, h.as_str(), partition)
    }

    /// The CRL of one municipal partition:
    /// `<base_url>/crl/<hierarchy>/<prefecture>/<municipality>.crl` ([`Municipality::path`]).
    pub fn municipal_crl_url(&self, h: Hierarchy, m: &Municipality) -> String {
        format!("{}/crl/{}/{}.crl", self.ca.base_url, h.as_str(), m.path())
    }

    /// The CRL partition a new end-entity certificate is listed on, under
    /// `crl.partition_by`: its holder's municipality, or its serial modulo `crl.partitions`.
    pub fn new_partition(&self, serial: &[u8], place: &Municipality) -> Scope {
        match self.crl.partition_by {
            PartitionScheme::Municipality => Scope::Municipal(place.clone()),
            PartitionScheme::Serial => Scope::Partition(self.partition_of(serial)),
        }
    }

    /// The CRL covering the CA certificates of a hierarchy (an ARL).
    pub fn ca_crl_url(&self, h: Hierarchy) -> String {
        format!("{}/crl/{}/ca.crl", self.ca.base_url, h.as_str())
    }

    /// Whether a hierarchy's end-entity certificates carry authorityInfoAccess (OCSP).
    pub fn ocsp_url_in(&self, h: Hierarchy) -> bool {
        match h {
            Hierarchy::Signing => self.signing.ocsp_url,
            Hierarchy::Auth => self.auth.ocsp_url,
        }
    }

    /// The OCSP responder of both hierarchies.
    pub fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.ca.base_url)
    }

    /// The partition a serial number belongs to: the serial modulo `crl.partitions`.
    /// Random and sequential serials both spread evenly this way, and anyone holding the
    /// certificate can compute it.
    pub fn partition_of(&self, serial: &[u8]) -> u16 {
        let n = u32::from(self.crl.partitions);
        let rem = serial
            .iter()
            .fold(0u32, |acc, b| ((acc << 8) | u32::from(*b)) % n);
        rem as u16
    }
}

fn check_url(name: &str, url: &str) -> Result<(), Error> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            field(
                name,
                format!("must start with http:// or https://, got `{url}`"),
            )
        })?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(field(name, format!("is not a usable URL: `{url}`")));
    }
    Ok(())
}

fn parse_oid(name: &str, text: &str) -> Result<ObjectIdentifier, Error> {
    ObjectIdentifier::new(text).map_err(|e| field(name, format!("`{text}` is not an OID: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid() {
        let p = Policy::from_toml(DEFAULT_POLICY).unwrap();
        assert_eq!(p.ca.organization, "JPKI-TEST");
        assert_eq!(p.crl.partitions, 64);
        assert_eq!(
            p.crl_url(Hierarchy::Signing, 7),
            "http://127.0.0.1:8080/crl/signing/7.crl"
        );
    }

    fn with(from: &str, to: &str) -> Result<Policy, Error> {
        assert!(DEFAULT_POLICY.contains(from), "{from}");
        Policy::from_toml(&DEFAULT_POLICY.replacen(from, to, 1))
    }

    #[test]
    fn a_policy_without_a_tsa_section_gets_the_defaults() {
        let start = DEFAULT_POLICY.find("[tsa]").expect("a [tsa] section");
        let p = Policy::from_toml(&DEFAULT_POLICY[..start]).unwrap();
        assert_eq!(p.tsa, TsaSection::default());
        assert_eq!(p.tsa_policy_oid().to_string(), "1.3.6.1.5.5.7.13.8");
        let p = with(
            "policy_oid = \"1.3.6.1.5.5.7.13.8\"",
            "policy_oid = \"1.2.392.99999.1\"",
        )
        .unwrap();
        assert_eq!(p.tsa_policy_oid().to_string(), "1.2.392.99999.1");
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let cases = [
            ("partitions = 64", "partitions = 0", "crl.partitions"),
            (
                "base_url = \"http://127.0.0.1:8080\"",
                "base_url = \"ftp://x\"",
                "ca.base_url",
            ),
            ("birthdays = 5", "birthdays = 0", "validity.birthdays"),
            (
                "policy_oid = \"1.2.392.200149.8.5.1.1.20\"",
                "policy_oid = \"1.2.x\"",
                "signing.policy_oid",
            ),
            (
                "min_rsa_bits = 2048",
                "min_rsa_bits = 1024",
                "limits.min_rsa_bits",
            ),
            (
                "policy_oid = \"1.3.6.1.5.5.7.13.8\"",
                "policy_oid = \"test\"",
                "tsa.policy_oid",
            ),
            (
                "unit_validity_years = 5",
                "unit_validity_years = 0",
                "tsa.unit_validity_years",
            ),
            (
                "renew_days_before = 180",
                "renew_days_before = 1000",
                "tsa.renew_days_before",
            ),
        ];
        for (from, to, name) in cases {
            let e = with(from, to).unwrap_err().to_string();
            assert!(e.contains(name), "{e} should name {name}");
        }
        let e = with(
            "ocsp_signer_renew_days = 30",
            "ocsp_signer_renew_days = 365",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("validity.ocsp_signer_renew_days"), "{e}");
        // Cached answers must expire before their signer: the margin exceeds an answer's life.
        let e = Policy::from_toml(
            &DEFAULT_POLICY
                .replace("ocsp_signer_renew_days = 30", "ocsp_signer_renew_days = 7")
                .replace("next_update_minutes = 60", "next_update_minutes = 10080"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("validity.ocsp_signer_renew_days") && e.contains("answer's life"),
            "{e}"
        );
        // Absent (policy files older than renewal): 30 days, a third of a short life.
        let p = with("ocsp_signer_renew_days = 30\n", "").unwrap();
        assert_eq!(p.validity.ocsp_signer_renew_days(), 30);
        let p = Policy::from_toml(
            &DEFAULT_POLICY
                .replace("ocsp_signer_renew_days = 30\n", "")
                .replace("ocsp_signer_days = 365", "ocsp_signer_days = 12"),
        )
        .unwrap();
        assert_eq!(p.validity.ocsp_signer_renew_days(), 4);
        let e = with("serials = \"sequential\"", "serials = \"dice\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("serials"), "{e}");
        let e = with("directory_name = true", "directory_name = false")
            .unwrap_err()
            .to_string();
        assert!(e.contains("crl.directory_name"), "{e}");
        let e = with("[limits]", "[limits]\nbogus = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn partitions_follow_the_serial() {
        let p = Policy::default_policy();
        assert_eq!(p.partition_of(&[0x01, 0x00]), 256 % 64);
        assert_eq!(p.partition_of(&[0x41]), 1);
        let mut counts = [0u32; 64];
        for i in 0u32..6400 {
            counts[p.partition_of(&i.to_be_bytes()) as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c == 100));
    }
}
