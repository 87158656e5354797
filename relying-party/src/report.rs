//! The verdict and its reasons, for people (text) and programs (`--json`).

use serde::Serialize;

use crate::kind::HolderAttributes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Status could not be learned and `--soft-fail` was given: reported, not fatal.
    Warn,
    /// Not run because an earlier check failed.
    Skipped,
}

/// One named check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub reason: String,
}

/// Who signed.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SignerInfo {
    pub subject: String,
    pub issuer: String,
    /// Upper-case hex, no leading zero bytes.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub policy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub verdict: Verdict,
    /// The time validity was judged at, and where it came from (`--at`, signingTime, now).
    pub checked_at: String,
    pub time_source: &'static str,
    pub checks: Vec<Check>,
    pub signer: Option<SignerInfo>,
    /// The four attributes (and the two flag strings) of a signing certificate.
    pub attributes: Option<HolderAttributes>,
    /// verify-login: the authentication certificate's serial (hex), the stable account key.
    pub account_key: Option<String>,
}

impl Report {
    pub(crate) fn new(command: &'static str) -> Report {
        Report {
            command,
            verdict: Verdict::Invalid,
            checked_at: String::new(),
            time_source: "now",
            checks: Vec::new(),
            signer: None,
            attributes: None,
            account_key: None,
        }
    }

    pub(crate) fn record(
        &mut self,
        name: &'static str,
        result: Result<String, crate::Error>,
    ) -> bool {
        let (outcome, reason) = match result {
            Ok(r) => (Outcome::Pass, r),
            Err(e) => (Outcome::Fail, e.to_string()),
        };
        self.checks.push(Check {
            name,
            outcome,
            reason,
        });
        outcome == Outcome::Pass
    }

    pub(crate) fn push(&mut self, name: &'static str, outcome: Outcome, reason: impl Into<String>) {
        self.checks.push(Check {
            name,
            outcome,
            reason: reason.into(),
        });
    }

    pub(crate) fn finish(mut self) -> Report {
        let ok = !self.checks.is_empty()
            && self
                .checks
                .iter()
                .all(|c| matches!(c.outcome, Outcome::Pass | Outcome::Warn));
        self.verdict = if ok { Verdict::Valid } else { Verdict::Invalid };
        self
    }

    pub fn is_valid(&self) -> bool {
        self.verdict == Verdict::Valid
    }

    /// 0 for a valid verdict, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_valid() {
            0
        } else {
            1
        }
    }

    /// The check with this name, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The report as pretty JSON, or as text.
    pub fn render(&self, json: bool) -> String {
        if json {
            // Serialising plain strings and enums cannot fail.
            return serde_json::to_string_pretty(self)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        }
        let mut out = format!(
            "{}: {}\nchecked at {} ({})\n",
            self.command,
            match self.verdict {
                Verdict::Valid => "VALID",
                Verdict::Invalid => "INVALID",
            },
            self.checked_at,
            self.time_source
        );
        for c in &self.checks {
            let mark = match c.outcome {
                Outcome::Pass => "ok  ",
                Outcome::Fail => "FAIL",
                Outcome::Warn => "warn",
                Outcome::Skipped => "skip",
            };
            out.push_str(&format!("  [{mark}] {:<18} {}\n", c.name, c.reason));
        }
        if let Some(s) = &self.signer {
            out.push_str(&format!(
                "certificate\n  subject   {}\n  issuer    {}\n  serial    {}\n  validity  {} .. {}\n",
                s.subject, s.issuer, s.serial, s.not_before, s.not_after
            ));
            if let Some(p) = &s.policy {
                out.push_str(&format!("  policy    {p}\n"));
            }
        }
        if let Some(a) = &self.attributes {
            out.push_str(&format!(
                "holder\n  name      {}\n  born      {} ({}, {})\n  sex       {} ({})\n  address   {}\n",
                a.name, a.birth.date, a.birth.era, a.birth.raw, a.sex.label, a.sex.code, a.address
            ));
        }
        if let Some(k) = &self.account_key {
            out.push_str(&format!("account key (certificate serial): {k}\n"));
        }
        out
    }

    /// Writes [`Report::render`] to stdout.
    pub fn print(&self, json: bool) {
        print!("{}", self.render(json));
    }
}
