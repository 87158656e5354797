//! `jpki report …`: the platform API's usage per month ([`super::operator`]), and the CA's
//! reports per municipality and period (`ca::authority::report`): issuance, revocations and
//! holds, certificates expiring. Each prints a table, `--csv` (a header line, RFC 4180 quoting
//! by the `csv` crate) or `--json` (one compact object, RFC 3339 UTC times, snake_case keys).

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use ca::api::Request;
use ca::authority::report::{Report, ReportKind, ReportQuery};
use ca::error::Error;

use super::{call, call_pf, operator, parse_time, typed, when, Cli};
use crate::Result;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    #[command(flatten)]
    Platform(operator::ReportCommand),
    /// Certificates issued per municipality and hierarchy in a period (from the audit trail),
    /// e.g. `jpki report issuance --from 2026-11-01T00:00:00+09:00 --to 2026-12-01T00:00:00+09:00`.
    Issuance(Period),
    /// Certificates revoked (per reason) and put on hold (`certificateHold`) per municipality
    /// and hierarchy in a period (from the audit trail).
    Revocations(Period),
    /// Good holder certificates whose notAfter falls in the period, soonest first (e.g. the
    /// next 90 days, to invite holders to renew).
    Expiring(Period),
}

/// A report's period and filter.
#[derive(Args, Debug)]
pub struct Period {
    /// Start of the period (included), RFC 3339, e.g. 2026-11-01T00:00:00+09:00.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub from: OffsetDateTime,
    /// End of the period (excluded), RFC 3339, e.g. 2026-12-01T00:00:00+09:00.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub to: OffsetDateTime,
    /// Only this municipality (as registered, e.g. Chiyoda-ku).
    #[arg(long, value_name = "NAME")]
    pub municipality: Option<String>,
    /// One JSON object: {"report", "from", "to", "rows": [...], "total"}.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header line.
    #[arg(long)]
    pub csv: bool,
}

pub fn run(cli: &Cli, cmd: &ReportCommand) -> Result<()> {
    let (kind, period) = match cmd {
        ReportCommand::Platform(cmd) => {
            let v = call_pf(cli, operator::report_request(cmd)?)?;
            print!("{}", operator::report_output(cmd, &v)?);
            return Ok(());
        }
        ReportCommand::Issuance(p) => (ReportKind::Issuance, p),
        ReportCommand::Revocations(p) => (ReportKind::Revocations, p),
        ReportCommand::Expiring(p) => (ReportKind::Expiring, p),
    };
    let report: Report = typed(call(
        cli,
        Request::Report(ReportQuery {
            kind,
            from: period.from,
            to: period.to,
            municipality: period.municipality.clone(),
        }),
    )?)?;
    print!("{}", render(&report, period.json, period.csv)?);
    Ok(())
}

/// The report as JSON, CSV or a table.
pub fn render(r: &Report, json: bool, csv: bool) -> Result<String> {
    if json {
        let mut v = serde_json::to_value(r).map_err(|e| Error::Invalid(e.to_string()))?;
        // RFC 3339 in UTC, as every jpki JSON time.
        v["from"] = when(r.from.to_offset(time::UtcOffset::UTC)).into();
        v["to"] = when(r.to.to_offset(time::UtcOffset::UTC)).into();
        return Ok(format!("{v}\n"));
    }
    let expiring = r.report == ReportKind::Expiring;
    let header: Vec<&str> = if expiring {
        vec![
            "prefecture",
            "municipality",
            "hierarchy",
            "serial",
            "resident",
            "not_after",
        ]
    } else if r.report == ReportKind::Revocations {
        vec!["prefecture", "municipality", "hierarchy", "reason", "count"]
    } else {
        vec!["prefecture", "municipality", "hierarchy", "count"]
    };
    let cells = |row: &ca::authority::report::ReportRow| -> Vec<String> {
        let mut c = vec![
            row.prefecture.clone(),
            row.municipality.clone(),
            row.hierarchy.to_string(),
        ];
        if expiring {
            c.push(row.serial.clone().unwrap_or_default());
            c.push(row.resident.clone().unwrap_or_default());
            c.push(row.not_after.map(when).unwrap_or_default());
        } else {
            if r.report == ReportKind::Revocations {
                c.push(row.reason.clone().unwrap_or_default());
            }
            c.push(row.count.to_string());
        }
        c
    };
    if csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| Error::Invalid(format!("CSV: {e}"));
        w.write_record(&header).map_err(io)?;
        for row in &r.rows {
            w.write_record(cells(row)).map_err(io)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Error::Invalid(format!("CSV: {e}")))?;
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let mut out = format!(
        "{} from {} to {}{}\n{}\n",
        match r.report {
            ReportKind::Issuance => "certificates issued",
            ReportKind::Revocations => "certificates revoked or held",
            ReportKind::Expiring => "good certificates expiring",
        },
        when(r.from),
        when(r.to),
        r.municipality
            .as_ref()
            .map(|m| format!(" in {m}"))
            .unwrap_or_default(),
        header.join("\t")
    );
    for row in &r.rows {
        out.push_str(&cells(row).join("\t"));
        out.push('\n');
    }
    out.push_str(&format!("total {}\n", r.total));
    Ok(out)
}
