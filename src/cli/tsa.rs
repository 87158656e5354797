//! `jpki tsa …`: the time-stamping authority's unit (docs/tsa.md). `jpki serve --tsa` renews
//! the unit by itself within the policy's `tsa.renew_days_before`; these commands show it and
//! renew it by hand (or from cron with `--if-due`) on the local data directory, when no
//! server holds it.

use ca::error::Error;
use ca::officers::{acting_as, Actor};
use clap::Subcommand;
use serde::Serialize;

use super::{open_local, print, Cli};
use crate::Result;

#[derive(Debug, Subcommand)]
pub enum TsaCommand {
    /// The TSA unit in use: its certificate's serial, subject and validity, the TSA policy
    /// OID, and the TSA root (made on first use, like `jpki serve --tsa` does).
    Show {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace the TSA unit with a new key and certificate from the TSA root; the retired
    /// unit's key is deleted (its tokens stay verifiable). Example: `jpki tsa renew --if-due`.
    Renew {
        /// Only when the certificate is within the policy's `tsa.renew_days_before` of its end
        /// (for cron); otherwise renew now.
        #[arg(long)]
        if_due: bool,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Shown {
    serial: String,
    subject: String,
    not_before: String,
    not_after: String,
    renewal_due: bool,
    policy_oid: String,
    pem: String,
    root_pem: String,
}

#[derive(Serialize)]
struct RenewedView {
    renewed: bool,
    generation: Option<u32>,
    serial: Option<String>,
    replaced: Option<String>,
}

pub fn run(cli: &Cli, cmd: &TsaCommand) -> Result<()> {
    let a = open_local(cli)?.ok_or_else(|| {
        Error::Invalid(
            "jpki serve holds the data directory: it renews the TSA unit by itself; run \
             `jpki tsa` with the server stopped"
                .into(),
        )
    })?;
    let tsa_err = |e: tsa::error::Error| Error::Invalid(e.to_string());
    match cmd {
        TsaCommand::Show { json } => {
            let t = tsa::server::Tsa::load(std::sync::Arc::new(a)).map_err(tsa_err)?;
            let der = t.certificate();
            let (_, c) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| Error::Store(format!("TSA certificate: {e}")))?;
            let when = |t: x509_parser::time::ASN1Time| {
                time::OffsetDateTime::from_unix_timestamp(t.timestamp())
                    .map(super::when)
                    .unwrap_or_default()
            };
            let shown = Shown {
                serial: hex::encode_upper(c.raw_serial()),
                subject: c.subject().to_string(),
                not_before: when(c.validity().not_before),
                not_after: when(c.validity().not_after),
                renewal_due: tsa_due(&t, &der)?,
                policy_oid: t.policy().to_string(),
                pem: ca::records::pem(&der),
                root_pem: ca::records::pem(t.root()),
            };
            print(*json, &shown, |s| {
                format!(
                    "TSA unit {} ({})\n  valid: {} .. {}{}\n  policy: {}",
                    s.serial,
                    s.subject,
                    s.not_before,
                    s.not_after,
                    if s.renewal_due { " (renewal due)" } else { "" },
                    s.policy_oid
                )
            })
        }
        TsaCommand::Renew { if_due, json } => {
            let done = acting_as(&Actor::root_on_host(), || tsa::server::renew(&a, !*if_due))
                .map_err(tsa_err)?;
            let v = RenewedView {
                renewed: done.is_some(),
                generation: done.as_ref().map(|r| r.generation),
                serial: done.as_ref().map(|r| r.new_serial.clone()),
                replaced: done.as_ref().map(|r| r.old_serial.clone()),
            };
            print(*json, &v, |v| match (&v.serial, &v.replaced) {
                (Some(new), Some(old)) => format!(
                    "TSA unit generation {} ({new}) replaces {old}; the retired key is deleted",
                    v.generation.unwrap_or_default()
                ),
                _ => "the TSA unit is not due for renewal".to_owned(),
            })
        }
    }
}

fn tsa_due(t: &tsa::server::Tsa, der: &[u8]) -> Result<bool> {
    Ok(t.renewal_due(der)
        .map_err(|e| Error::Invalid(e.to_string()))?)
}
