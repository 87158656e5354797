//! The `jpki` command line. Each subcommand parses its arguments into the authority's own
//! types, calls one [`Authority`] operation and prints the result, as one JSON object with
//! `--json`. Errors print one line naming the problem and exit non-zero; a refused operation
//! changes nothing.
//!
//! `--data DIR` defaults to `$JPKI_DATA`, else `./jpki-data`. The key passphrase comes from
//! `$JPKI_PASSPHRASE` or `--passphrase-file FILE`. The clock ([`crate::clock`]) is the
//! system's, except for tests: `$JPKI_TEST_NOW` (RFC 3339) stops it at that instant;
//! `$JPKI_TEST_START` (RFC 3339) starts it at that instant and lets it run with real time
//! (`JPKI_TEST_NOW` wins if both are set). Never set either in production.
//!
//! The subcommands of the other components are in submodules: [`token`] (`jpki token …`),
//! [`verify`] (`jpki verify`, `jpki verify-login`) and [`operator`] (`jpki operator …`,
//! `jpki sp …`, `jpki resident access-log`). The library crates have no command-line parser;
//! all of clap is here.

pub mod import;
pub mod officer;
pub mod operator;
pub mod phone;
pub mod token;
pub mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use policies::{Hierarchy, Reason, Sex};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use ca::api::Request;
use ca::authority::{
    parse_serial, Authority, CertView, Event, EventOutcome, Issued, NewResident, ResidentView,
    Revocation,
};
use ca::error::Error;
use ca::officers::{acting_as, Actor};

use crate::clock::clock;
use crate::Result;

#[derive(Parser, Debug)]
#[command(
    name = "jpki",
    version,
    about = "A JPKI-style certification authority: two hierarchies, a resident register, rule-driven revocation."
)]
pub struct Cli {
    /// Data directory (default: $JPKI_DATA, else ./jpki-data).
    #[arg(long, global = true, env = "JPKI_DATA", default_value = "jpki-data")]
    pub data: PathBuf,
    /// File holding the key passphrase (default: $JPKI_PASSPHRASE).
    #[arg(long, global = true)]
    pub passphrase_file: Option<PathBuf>,
    /// Log lines on stderr: `text` (colour only on a terminal) or `json` (one object per line,
    /// for log collectors). Verbosity: $JPKI_LOG (default `warn`).
    #[arg(long, global = true, env = "JPKI_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create both hierarchies, their OCSP signers and the store in a new data directory.
    Init {
        /// Policy file (TOML); default: the embedded policy.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Keep the store in this PostgreSQL database (postgres://…, empty) instead of sled in
        /// the data directory; remembered in DIR/store.toml (docs/store.md).
        #[arg(long)]
        store: Option<String>,
        /// The first ca-officer's name (`ca::officers`): its client certificate and key are
        /// written to DIR/officers/NAME.pem and NAME.key (0600) unless --first-officer-csr.
        #[arg(long, default_value = "ca-officer")]
        first_officer: String,
        /// A PKCS#10 request with the first ca-officer's own key (its certificate goes to
        /// DIR/officers/NAME.pem; no key is generated).
        #[arg(long)]
        first_officer_csr: Option<PathBuf>,
    },
    /// Print a root certificate (PEM).
    Root {
        /// signing, auth, or operator (the platform-operator CA).
        #[arg(long, value_parser = parse_root)]
        hierarchy: RootOf,
        /// One JSON object: {"pem": "..."}.
        #[arg(long)]
        json: bool,
    },
    /// The resident register and its events.
    #[command(subcommand)]
    Resident(ResidentCommand),
    /// Issue a certificate to a resident from a CSR (PEM or DER).
    Issue {
        #[arg(long)]
        resident: String,
        #[arg(long, value_parser = parse_hierarchy)]
        kind: Hierarchy,
        #[arg(long)]
        csr: PathBuf,
        /// Also write the certificate (PEM) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Issue a signing certificate to a holder under the signing age (policy
        /// `eligibility.signing_min_age`, 15 by default), with the reason, e.g. "application by
        /// legal representative"; audited.
        #[arg(long, value_name = "REASON")]
        minor_signing: Option<String>,
        /// Issue while the holder's current certificate of the kind has more than the renewal
        /// window (policy `validity.renewal_window_months`) to run, with the reason; audited.
        #[arg(long, value_name = "REASON")]
        early_renewal: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate, or every serial listed in a file (one per line, optionally
    /// `auth:SERIAL` or `signing:SERIAL`; printing each acknowledgement as it becomes durable).
    Revoke {
        #[arg(long, required_unless_present = "batch")]
        serial: Option<String>,
        #[arg(long, conflicts_with = "serial")]
        batch: Option<PathBuf>,
        #[arg(long, value_parser = parse_reason)]
        reason: Reason,
        #[arg(long, value_parser = parse_time)]
        invalidity_date: Option<OffsetDateTime>,
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        /// With --batch: check every line and say what would be done, changing nothing.
        #[arg(long, requires = "batch")]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Put a certificate on hold (certificateHold; never released for card certificates).
    Hold {
        #[arg(long)]
        serial: String,
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        #[arg(long)]
        json: bool,
    },
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The store's maintenance (docs/store.md).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Scheduled register events (docs/lifecycle.md).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Serve CRLs and OCSP (and the platform-operator API) from one process; the CLI's
    /// commands reach it through its admin socket while it runs. See docs/serve.md.
    Serve {
        /// Configuration file (TOML, docs/serve.md); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve CRLs and OCSP over HTTP here (e.g. 127.0.0.1:8080).
        #[arg(long)]
        http: Option<String>,
        /// Serve the platform-operator API over mutual TLS here.
        #[arg(long)]
        pf_https: Option<String>,
        /// Serve the holder portal over HTTPS here (docs/portal.md).
        #[arg(long)]
        portal: Option<String>,
        /// Serve the RFC 3161 time-stamping authority over HTTP here (docs/tsa.md).
        #[arg(long, value_name = "ADDR")]
        tsa: Option<String>,
    },
    /// Verify a CMS-signed document as a relying party: chain, kind, validity, revocation.
    Verify(verify::VerifyArgs),
    /// Verify a login: a challenge signed with an authentication key.
    VerifyLogin(verify::VerifyLoginArgs),
    /// CRLs: publish the whole set once, or show each partition's state.
    #[command(subcommand)]
    Crl(CrlCommand),
    /// Platform operators (PF): registration, client certificates, suspension.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Service providers (SP) delegated to a platform operator.
    #[command(subcommand)]
    Sp(operator::SpCommand),
    /// The CA's officers and their roles (ca-officer, municipal-clerk, auditor).
    #[command(subcommand)]
    Officer(officer::OfficerCommand),
    /// Reports: platform API usage per month.
    #[command(subcommand)]
    Report(operator::ReportCommand),
    /// The holder's token (the My Number card's stand-in): keys under PINs.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Smartphone certificates, issued on the card's authority.
    #[command(subcommand)]
    Phone(phone::PhoneCommand),
    /// Run the whole story in a temporary directory.
    Demo {
        /// Keep the data here instead of a temporary directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a shell completion script, e.g. `jpki completions bash > /etc/bash_completion.d/jpki`
    /// or `jpki completions zsh > "${fpath[1]}/_jpki"`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The delegated OCSP signers: renew by hand or from cron (`jpki serve` renews them by
    /// itself), show how long each certificate the service depends on has left.
    #[command(subcommand)]
    OcspSigner(OcspSignerCommand),
}

#[derive(Subcommand, Debug)]
pub enum OcspSignerCommand {
    /// Make a new OCSP signer key and certificate (signed by the root) and put them in force;
    /// through a running `jpki serve`, its responder signs with the new one at once.
    Renew {
        /// One hierarchy (default: both).
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        /// Only signers within the policy's `validity.ocsp_signer_renew_days` of expiry (cron).
        #[arg(long)]
        if_due: bool,
        #[arg(long)]
        json: bool,
    },
    /// The roots' and OCSP signers' notAfter and renewal margins.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The OCSP signer key of a hierarchy is compromised: revoke its certificate
    /// (keyCompromise, on the CA-level CRL), block the key for ever and put a new signer in
    /// force at once; a running server drops every answer the old key signed. See
    /// docs/operations.md.
    Compromise {
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Hierarchy,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ResidentCommand {
    /// Register a resident.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_date)]
        birth: Date,
        #[arg(long, value_parser = parse_sex)]
        sex: Sex,
        #[arg(long)]
        address: String,
        #[arg(long)]
        prefecture: String,
        #[arg(long)]
        municipality: String,
        /// The card's expiry, YYYY-MM-DD: at most the holder's 10th birthday after today (the
        /// 5th for a minor), as the policy's `[eligibility]` says.
        #[arg(long, value_parser = parse_date)]
        card_expiry: Date,
        /// Register even though someone with the same name, date of birth and address is
        /// registered (e.g. "different person: namesake at the same care home"); the reason is
        /// kept in the history and the audit trail.
        #[arg(long, value_name = "REASON")]
        allow_duplicate: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Register many residents from a CSV file, all or none: every row is checked first and
    /// a report of accepted and refused rows printed. Header row:
    /// name,birth,sex,address,prefecture,municipality,card_expiry (dates YYYY-MM-DD, sex 1/2/9).
    Import {
        /// The CSV file (UTF-8).
        file: PathBuf,
        /// Check every row against the register and print the report, registering nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Who read this holder's data through a platform operator, and when (as Mynaportal discloses it).
    AccessLog(operator::AccessLogArgs),
    /// Show a resident, their certificates and history.
    Show {
        #[arg(long)]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Find residents (e.g. for the loss hotline: by name and birth date), a page at a time.
    Search {
        /// Part of the name; spaces are ignored (山田花子 finds 山田　花子).
        #[arg(long)]
        name: Option<String>,
        /// Date of birth, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        birth: Option<Date>,
        #[arg(long)]
        municipality: Option<String>,
        /// active, emigrating, emigrated or deceased.
        #[arg(long, value_parser = parse_resident_state)]
        state: Option<ca::records::ResidentState>,
        /// The `next` of the previous page.
        #[arg(long)]
        after: Option<String>,
        /// Residents per page, 1 to 1000.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// A move (転居/転出): the signing certificate is revoked (affiliationChanged).
    Move {
        #[command(flatten)]
        who: Who,
        #[arg(long)]
        address: String,
        #[arg(long)]
        prefecture: Option<String>,
        #[arg(long)]
        municipality: Option<String>,
    },
    /// A change of name: the signing certificate is revoked.
    Rename {
        #[command(flatten)]
        who: Who,
        #[arg(long)]
        name: String,
    },
    /// A correction of any of the four attributes: the signing certificate is revoked.
    Correct {
        #[command(flatten)]
        who: Who,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_date)]
        birth: Option<Date>,
        #[arg(long, value_parser = parse_sex)]
        sex: Option<Sex>,
        #[arg(long)]
        address: Option<String>,
    },
    /// Death: both certificates are revoked.
    Death {
        #[command(flatten)]
        who: Who,
    },
    /// Emigration: the signing certificate is revoked at the departure date.
    Emigrate {
        #[command(flatten)]
        who: Who,
        /// Departure date (default: today); a future date schedules the revocation.
        #[arg(long, value_parser = parse_date)]
        date: Option<Date>,
        /// The continued-use procedure was done before departure: the card stays usable
        /// abroad and, from the departure date, `jpki issue --kind signing` issues a signing
        /// certificate for emigrants (no address: the emigrant marker and departure date).
        #[arg(long)]
        continued_use: bool,
    },
    /// Card lost: both certificates are put on hold.
    CardLost {
        #[command(flatten)]
        who: Who,
    },
    /// Lost card found: held certificates are revoked (never released); issue anew.
    CardFound {
        #[command(flatten)]
        who: Who,
    },
    /// New card: both certificates are superseded.
    CardRenew {
        #[command(flatten)]
        who: Who,
        #[arg(long, value_parser = parse_date)]
        card_expiry: Date,
    },
    /// The holder asks for revocation (cessationOfOperation).
    Withdraw {
        #[command(flatten)]
        who: Who,
        /// Only this kind (default: both).
        #[arg(long, value_parser = parse_hierarchy)]
        kind: Option<Hierarchy>,
    },
}

#[derive(Args, Debug)]
pub struct Who {
    #[arg(long)]
    id: String,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    Show {
        #[arg(long)]
        serial: String,
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        #[arg(long)]
        json: bool,
    },
    List {
        /// Only this resident's certificates.
        #[arg(long)]
        resident: Option<String>,
        /// signing or auth.
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        /// root, ocsp-signer, signing or auth.
        #[arg(long, value_parser = parse_cert_kind)]
        kind: Option<ca::records::CertKind>,
        /// good, held or revoked.
        #[arg(long, value_parser = parse_state)]
        status: Option<ca::records::State>,
        /// Only certificates whose notAfter is before this RFC 3339 time, e.g.
        /// 2027-03-31T15:00:00Z (certificates expiring soon).
        #[arg(long, value_parser = parse_time)]
        expiring_before: Option<OffsetDateTime>,
        /// The `next` printed by the previous page (hierarchy:SERIAL).
        #[arg(long)]
        after: Option<String>,
        /// Certificates per page, 1 to 10000.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

fn parse_cert_kind(s: &str) -> std::result::Result<ca::records::CertKind, String> {
    use ca::records::CertKind;
    CertKind::ALL
        .into_iter()
    .find(|k| k.as_str() == s)
    .ok_or_else(|| format!("unknown kind `{s}` (expected root, ocsp-signer, signing, auth, phone-signing or phone-auth)"))
}

fn parse_state(s: &str) -> std::result::Result<ca::records::State, String> {
    use ca::records::State;
    [State::Good, State::Held, State::Revoked]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown status `{s}` (expected good, held or revoked)"))
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Write a snapshot of the store and drop the journal records it holds, so the journal
    /// stays bounded. Safe while `jpki serve` runs (it goes through the admin socket); commits
    /// pause only while the journal's tail is copied.
    Compact {
        #[arg(long)]
        json: bool,
    },
    /// Copy the data directory's sled store into an empty PostgreSQL database through the
    /// storage boundary (audit records verbatim), check it, and switch the directory to it.
    /// Stop `jpki serve` first.
    Migrate {
        /// The target database, postgres://…
        #[arg(long)]
        to: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Carry out the scheduled events that have fallen due (an emigration at its departure
    /// date). `jpki serve` does this by itself; run this from cron on an install without a
    /// server, e.g. every minute.
    ApplyDue {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain: detects a changed, inserted or removed record.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print the records.
    Log {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CrlCommand {
    /// Write every CRL of both hierarchies into DIR (for a static web server or a CDN), plus
    /// index.json. Needs the store: stop `jpki serve` first (it publishes by itself).
    Publish {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Each partition's CRL number, age, entries and size.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Builds (or resumes) a benchmark store of N certificates through the real write path,
    /// with holder keys from a small shared pool (bench stores only; see BENCHMARKS.md).
    Populate {
        /// The benchmark store's data directory (created, or resumed if made by this command).
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        certificates: u64,
        /// Share of residents reported dead (both certificates revoked by the event's rule).
        #[arg(long, default_value_t = 0.1)]
        revoked_fraction: f64,
        #[arg(long, default_value_t = 1741)]
        municipalities: u32,
        /// `postgres://…` to create the store in PostgreSQL (sled by default).
        #[arg(long)]
        store: Option<String>,
        /// Concurrent issuing clients.
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// Pre-generated holder keys shared by all holders.
        #[arg(long, default_value_t = 16)]
        key_pool: usize,
        /// Stop after about this many certificates, as if interrupted (tests of resuming).
        #[arg(long, hide = true)]
        stop_after: Option<u64>,
    },
    /// Issuance throughput (CSR in, durable certificate out) beside the raw RSA signing rate.
    Issue {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Concurrent issuing clients (the signing ceiling is measured with one thread per core).
        #[arg(long, default_value_t = 16)]
        threads: usize,
        /// Residents to spread the issuances over (each has a signing and an auth key). Keep
        /// it above the number of clients: issuances for one resident run one at a time.
        #[arg(long, default_value_t = 100)]
        residents: usize,
        /// Rounds the issuances are split into, the signing ceiling measured before each and
        /// after the last: the host's speed drifts, so the median round's ratio is the figure.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The store to run on, repeatable (one after the other, same run): sled (default),
        /// postgres (a throwaway local cluster, fsync on), or postgres://… (an empty database).
        #[arg(long)]
        store: Vec<String>,
    },
    /// Evidence re-checks per second (`jpki verify --evidence`, in process and one process
    /// each) beside `openssl cms -verify` + `openssl ts -verify` on the same signature.
    Evidence {
        /// The evidence file (written by `jpki verify --evidence-out`).
        #[arg(long)]
        evidence: PathBuf,
        /// The time-stamped signature the evidence is about, its content, and the roots.
        #[arg(long)]
        sig: PathBuf,
        #[arg(long)]
        content: PathBuf,
        #[arg(long)]
        trust: PathBuf,
        #[arg(long)]
        tsa_root: PathBuf,
        /// Verifications per measurement.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Measurements (each side once per round, alternating); the median is reported.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
}

fn parse_hierarchy(s: &str) -> std::result::Result<Hierarchy, String> {
    s.parse()
}

/// Whose root certificate `jpki root` prints.
#[derive(Debug, Clone, Copy)]
pub enum RootOf {
    /// One of the two JPKI hierarchies.
    Ca(Hierarchy),
    /// The platform-operator CA.
    Operator,
}

fn parse_root(s: &str) -> std::result::Result<RootOf, String> {
    match s {
        "operator" => Ok(RootOf::Operator),
        _ => parse_hierarchy(s)
            .map(RootOf::Ca)
            .map_err(|_| format!("unknown hierarchy `{s}` (expected signing, auth or operator)")),
    }
}
fn parse_reason(s: &str) -> std::result::Result<Reason, String> {
    s.parse()
}
fn parse_sex(s: &str) -> std::result::Result<Sex, String> {
    s.parse()
}
pub fn parse_date(s: &str) -> std::result::Result<Date, String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt).map_err(|_| format!("`{s}` is not a valid date (YYYY-MM-DD)"))
}
fn parse_time(s: &str) -> std::result::Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| format!("`{s}` is not an RFC 3339 time"))
}

/// The key passphrase from `--passphrase-file` or `$JPKI_PASSPHRASE`.
pub fn passphrase(file: Option<&Path>) -> Result<Option<Vec<u8>>> {
    if let Some(f) = file {
        let mut bytes =
            std::fs::read(f).map_err(Error::io(format!("read passphrase file {}", f.display())))?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        return Ok(Some(bytes));
    }
    Ok(std::env::var("JPKI_PASSPHRASE")
        .ok()
        .map(String::into_bytes))
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
    let text = if json {
        serde_json::to_string(value).map_err(|e| Error::Invalid(e.to_string()))?
    } else {
        human(value)
    };
    let mut out = std::io::stdout().lock();
    Ok(writeln!(out, "{text}").map_err(Error::io("write to stdout"))?)
}

/// Everything jpki creates is readable by its owner only, whatever umask it was started with:
/// directories 0700, files 0600 (the resident register lives in the store's files).
fn private_by_default() {
    // SAFETY: umask(2) only sets this process's file-mode creation mask and cannot fail; it is
    // called first thing in main, before any thread that creates files is started.
    unsafe {
        libc::umask(0o077);
    }
}

/// Entry point of the `jpki` binary.
pub fn main() -> ExitCode {
    private_by_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("jpki: error: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("JPKI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        // Colour codes only where a person reads them, never into files and pipes.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    // Whatever this process records in-process is done by the person at this host's shell.
    match acting_as(&Actor::root_on_host(), || run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jpki: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A clap error as one line, like every other error: clap's first line names the problem,
/// and its suggestions ("did you mean", the possible values) follow on the same line instead
/// of being cut off.
fn one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.to_string();
    let mut line = text
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    let values = |v: &ContextValue| match v {
        ContextValue::String(s) => vec![s.clone()],
        ContextValue::Strings(v) => v.clone(),
        other => vec![other.to_string()],
    };
    for (kind, label) in [
        (ContextKind::SuggestedSubcommand, "did you mean"),
        (ContextKind::SuggestedArg, "did you mean"),
        (ContextKind::SuggestedValue, "did you mean"),
        (ContextKind::ValidValue, "possible values"),
        (ContextKind::ValidSubcommand, "possible subcommands"),
    ] {
        if let Some(v) = e.get(kind) {
            let list = values(v)
                .iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if !list.is_empty() {
                line.push_str(&format!(" ({label} {list})"));
            }
        }
    }
    line
}

/// The store opened in this process, or `None` when a running `jpki serve` holds it (then
/// the request goes over its admin socket and runs the same code there).
fn open_local(cli: &Cli) -> Result<Option<Authority>> {
    match crate::store::open(
        &cli.data,
        passphrase(cli.passphrase_file.as_deref())?,
        clock()?,
    ) {
        Ok(a) => Ok(Some(a)),
        Err(Error::Locked(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Runs a request in-process (as `root-on-host`: the person at this host's shell), or
/// through the admin socket of a running `jpki serve` (which records the same).
fn call(cli: &Cli, req: Request) -> Result<serde_json::Value> {
    match open_local(cli)? {
        Some(a) => Ok(a.handle_as(&Actor::root_on_host(), req)?),
        None => Ok(ca::api::call_remote(&cli.data, &req)?),
    }
}

/// The same for a platform-operator request.
fn call_pf(cli: &Cli, req: platform::Request) -> Result<serde_json::Value> {
    match open_local(cli)? {
        Some(a) => Ok(acting_as(&Actor::root_on_host(), || {
            platform::handle(&a, req)
        })?),
        None => Ok(platform::api::call_remote(&cli.data, &req)?),
    }
}

/// Checks `--first-officer NAME` before anything is made: a valid officer name that is also
/// a plain file name (it names DIR/officers/NAME.pem and NAME.key).
fn check_first_officer(name: &str) -> Result<()> {
    ca::officers::check(&ca::officers::NewOfficer {
        name: name.to_owned(),
        role: ca::officers::Role::CaOfficer,
        municipality: None,
        spki: Vec::new(),
        certificate: None,
        not_before: None,
        not_after: None,
    })?;
    if name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(Error::Invalid(format!(
            "--first-officer `{name}`: give a plain name (it names DIR/officers/NAME.pem)"
        ))
        .into());
    }
    Ok(())
}

/// `jpki revoke --batch FILE`: every line is checked first (a serial, once, of a certificate
/// that exists, unambiguously, and is not already revoked); if any line is wrong, all the
/// problems are listed with their line numbers and nothing is revoked. Then each revocation is
/// printed as it becomes durable, and a summary at the end (should one fail meanwhile — a
/// concurrent revocation — the summary says how far the batch got).
fn revoke_batch(
    cli: &Cli,
    file: &Path,
    hierarchy: Option<Hierarchy>,
    dry_run: bool,
    json: bool,
    revoke: impl Fn(String, Option<Hierarchy>) -> Request,
) -> Result<()> {
    let text =
        std::fs::read_to_string(file).map_err(Error::io(format!("read {}", file.display())))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    // One authority for the whole batch (or the server's): each answer is durable.
    let local = open_local(cli)?;
    let run = |req: Request| -> Result<serde_json::Value> {
        Ok(match &local {
            Some(a) => a.handle_as(&Actor::root_on_host(), req)?,
            None => ca::api::call_remote(&cli.data, &req)?,
        })
    };
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    // (line number, serial text, the line's hierarchy or --hierarchy)
    let mut candidates: Vec<(usize, String, Option<Hierarchy>)> = Vec::new();
    for (n, line) in &lines {
        // `auth:012D57CA` / `signing:…` names the hierarchy on the line: sequential serials
        // repeat across the two hierarchies.
        let (h, serial_text) = match line.split_once(':') {
            Some((h, s)) => match parse_hierarchy(h.trim()) {
                Ok(h) => (Some(h), s.trim()),
                Err(e) => {
                    problems.push(format!("line {n}: {e}"));
                    continue;
                }
            },
            None => (hierarchy, *line),
        };
        match parse_serial(serial_text) {
            Err(e) => problems.push(format!("line {n}: {e}")),
            Ok(serial) => match seen.insert((h, serial), *n) {
                Some(first) => problems.push(format!(
                    "line {n}: serial {line} is already on line {first}"
                )),
                None => candidates.push((*n, serial_text.to_owned(), h)),
            },
        }
    }
    // One request per hierarchy named checks every candidate (one round trip through a
    // server per group, not one per line); answers come back in the lines' order.
    let mut checked: Vec<Option<serde_json::Value>> = vec![None; candidates.len()];
    let mut groups: Vec<Option<Hierarchy>> = candidates.iter().map(|c| c.2).collect();
    groups.sort();
    groups.dedup();
    for group in groups {
        let idx: Vec<usize> = (0..candidates.len())
            .filter(|i| candidates[*i].2 == group)
            .collect();
        let answer = run(Request::RevocationCheck {
            serials: idx.iter().map(|i| candidates[*i].1.clone()).collect(),
            hierarchy: group,
        })?;
        let answer = answer["checked"].as_array().cloned().unwrap_or_default();
        if answer.len() != idx.len() {
            return Err(Error::Invalid(
                "the revocation check answered another number of serials".into(),
            )
            .into());
        }
        for (i, a) in idx.into_iter().zip(answer) {
            checked[i] = Some(a);
        }
    }
    let checked: Vec<serde_json::Value> = checked.into_iter().flatten().collect();
    let mut todo = Vec::new();
    for ((n, _, _), c) in candidates.iter().zip(checked) {
        match c["error"].as_str() {
            Some(e) => problems.push(format!("line {n}: {e}")),
            None => todo.push((
                *n,
                c["hierarchy"].as_str().unwrap_or_default().to_owned(),
                c["serial"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(format!(
            "{} of {} lines of {} are wrong; nothing was revoked: {}",
            problems.len(),
            lines.len(),
            file.display(),
            problems.join("; ")
        ))
        .into());
    }
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(Error::io("write to stdout"))
    };
    if dry_run {
        for (n, h, serial, status) in &todo {
            say(format!("line {n}: would revoke {h}:{serial} ({status})"))?;
        }
        say(format!(
            "dry run: {} certificate(s) checked, nothing changed",
            todo.len()
        ))?;
        return Ok(());
    }
    let mut done: Vec<Revocation> = Vec::new();
    for (n, h, serial, _) in &todo {
        let h = parse_hierarchy(h).map_err(Error::Invalid)?;
        let r: Revocation = match run(revoke(serial.clone(), Some(h))).and_then(typed) {
            Ok(r) => r,
            Err(e) => {
                say(format!(
                    "stopped at line {n}: {e}; {} of {} revoked before it",
                    done.len(),
                    todo.len()
                ))?;
                return Err(e);
            }
        };
        if !json {
            say(format!(
                "{} {}:{}",
                r.status.as_str(),
                r.hierarchy,
                r.serial
            ))?;
        }
        done.push(r);
    }
    if json {
        say(serde_json::json!({ "revocations": done, "count": done.len() }).to_string())?;
    } else {
        say(format!("{} certificate(s) revoked or held", done.len()))?;
    }
    Ok(())
}

/// A CRL publisher over the store opened in this process.
fn local_publisher(cli: &Cli) -> Result<Arc<crl_publisher::Publisher>> {
    let Some(a) = open_local(cli)? else {
        return Err(crate::Error::Serve("the store is held by a running `jpki serve`, which publishes the CRLs itself (fetch them from its /crl/ URLs), or stop it first".into()));
    };
    let a = Arc::new(a);
    let cfg = crate::serve::Config::default();
    let settings = crate::serve::Settings {
        http: None,
        pf_https: None,
        tsa: None,
        pf_names: Vec::new(),
        portal: None,
        portal_names: Vec::new(),
        crl_dir: cli.data.join(&cfg.crl.dir),
        crl: crl_publisher::Settings::default(),
        compact_journal_bytes: None,
        limits: conn_guard::Limits::default(),
        presign_rate: 200,
    };
    Ok(crate::serve::assemble(a, &settings)?.publisher)
}

fn parse_resident_state(s: &str) -> std::result::Result<ca::records::ResidentState, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}`: expected active, emigrating, emigrated or deceased"))
}

fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    Ok(serde_json::from_value(v).map_err(|e| Error::Invalid(format!("unexpected answer: {e}")))?)
}

fn when(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

pub fn run(cli: Cli) -> Result<()> {
    let cli = match cli.command {
        // The token works on its own file; it needs no data directory.
        Command::Token(cmd) => return Ok(token::run(cmd, OffsetDateTime::now_utc())?),
        // The card's authorisation of a phone application needs only the card token.
        Command::Phone(cmd @ phone::PhoneCommand::Authorise { .. }) => {
            return phone::authorise(&cmd)
        }
        // Completions describe the command line; they need no data directory either.
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "jpki", &mut std::io::stdout());
            return Ok(());
        }
        command => Cli {
            command,
            data: cli.data,
            passphrase_file: cli.passphrase_file,
            log_format: cli.log_format,
        },
    };
    match &cli.command {
        Command::Init {
            policy,
            store,
            first_officer,
            first_officer_csr,
        } => {
            let text = match policy {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(Error::io(format!("read policy {}", p.display())))?,
                None => policies::policy::DEFAULT_POLICY.to_owned(),
            };
            let pass = passphrase(cli.passphrase_file.as_deref())?.ok_or(Error::NoPassphrase)?;
            // The first officer's name and CSR are checked before anything is made.
            check_first_officer(first_officer)?;
            let csr_base64 = match first_officer_csr {
                Some(p) => {
                    let bytes =
                        std::fs::read(p).map_err(Error::io(format!("read {}", p.display())))?;
                    ca::csr::verify(&bytes, 2048)?;
                    Some(base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        bytes,
                    ))
                }
                None => None,
            };
            let a = crate::store::init(&cli.data, store.as_deref(), &text, &pass, clock()?)?;
            platform::operator_ca::create(&a)?;
            let officers_dir = a.dir().join("officers");
            std::fs::create_dir_all(&officers_dir)
                .map_err(Error::io(format!("create {}", officers_dir.display())))?;
            let cert_out = officers_dir.join(format!("{first_officer}.pem"));
            let key_out = officers_dir.join(format!("{first_officer}.key"));
            let v = platform::api::officer_add(
                &a,
                first_officer,
                ca::officers::Role::CaOfficer,
                None,
                csr_base64,
            )?;
            officer::write_credentials(&v, &cert_out, Some(&key_out))?;
            println!("initialised {}", a.dir().display());
            println!(
                "  first ca-officer {}: {} (move its key off this host)",
                first_officer,
                cert_out.display()
            );
            for h in Hierarchy::ALL {
                let (_, c) = x509_parser::parse_x509_certificate(&a.root(h).der)
                    .map_err(|e| Error::Store(e.to_string()))?;
                println!("  {h} root: {}", c.subject());
            }
            Ok(())
        }
        Command::Root { hierarchy, json } => {
            let v = match *hierarchy {
                RootOf::Operator => call_pf(&cli, platform::Request::OperatorRoot)?,
                RootOf::Ca(hierarchy) => call(&cli, Request::Root { hierarchy })?,
            };
            if *json {
                println!("{}", serde_json::json!({ "pem": v["pem"] }));
            } else {
                print!("{}", v["pem"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::Resident(rc) => resident(&cli, rc),
        Command::Phone(cmd) => phone::run(&cli, cmd),
        Command::Issue {
            resident,
            kind,
            csr,
            out,
            minor_signing,
            early_renewal,
            json,
        } => {
            let bytes =
                std::fs::read(csr).map_err(Error::io(format!("read CSR {}", csr.display())))?;
            ca::csr::check_size(&bytes)?;
            let csr_base64 =
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
            let issued: Issued = typed(call(
                &cli,
                Request::Issue {
                    resident: resident.clone(),
                    kind: *kind,
                    csr_base64,
                    overrides: ca::authority::IssueOverrides {
                        minor_signing: minor_signing.clone(),
                        early_renewal: early_renewal.clone(),
                    },
                },
            )?)?;
            if let Some(path) = out {
                std::fs::write(path, &issued.pem)
                    .map_err(Error::io(format!("write {}", path.display())))?;
            }
            print(*json, &issued, |i| {
                let mut s = format!(
                    "issued {} certificate {} to {} (notAfter {}, set by the {:?} rule)",
                    i.hierarchy,
                    i.serial,
                    i.resident,
                    when(i.not_after),
                    i.bound
                );
                if let Some(old) = &i.superseded {
                    s.push_str(&format!("; {old} superseded"));
                }
                if out.is_none() {
                    s.push('\n');
                    s.push_str(i.pem.trim_end());
                }
                s
            })
        }
        Command::Revoke {
            serial,
            batch,
            reason,
            invalidity_date,
            hierarchy,
            dry_run,
            json,
        } => {
            let revoke = |serial: String| Request::Revoke {
                serial,
                hierarchy: *hierarchy,
                reason: *reason,
                invalidity: *invalidity_date,
            };
            if let Some(file) = batch {
                let revoke_in = |serial: String, h: Option<Hierarchy>| Request::Revoke {
                    serial,
                    hierarchy: h,
                    reason: *reason,
                    invalidity: *invalidity_date,
                };
                return revoke_batch(&cli, file, *hierarchy, *dry_run, *json, revoke_in);
            }
            let serial = serial.clone().unwrap_or_default();
            let r: Revocation = typed(call(&cli, revoke(serial))?)?;
            print(*json, &r, |r| {
                format!(
                    "{} {}:{} ({}) at {}",
                    r.status.as_str(),
                    r.hierarchy,
                    r.serial,
                    r.reason,
                    when(r.revoked_at)
                )
            })
        }
        Command::Hold {
            serial,
            hierarchy,
            json,
        } => {
            let r: Revocation = typed(call(
                &cli,
                Request::Revoke {
                    serial: serial.clone(),
                    hierarchy: *hierarchy,
                    reason: Reason::CertificateHold,
                    invalidity: None,
                },
            )?)?;
            print(*json, &r, |r| {
                format!(
                    "held {}:{} at {}",
                    r.hierarchy,
                    r.serial,
                    when(r.revoked_at)
                )
            })
        }
        Command::Cert(CertCommand::Show {
            serial,
            hierarchy,
            json,
        }) => {
            let v: CertView = typed(call(
                &cli,
                Request::CertShow {
                    serial: serial.clone(),
                    hierarchy: *hierarchy,
                },
            )?)?;
            print(*json, &v, |v| {
                format!(
                    "{} {} {}\n  status: {}{}\n  holder: {}\n  partition: {}\n  valid: {} .. {}\n{}",
                    v.hierarchy,
                    v.kind.as_str(),
                    v.serial,
                    v.status.as_str(),
                    v.reason.map(|r| format!(" ({r}) since {}", v.revoked_at.map(when).unwrap_or_default())).unwrap_or_default(),
                    v.holder.as_deref().unwrap_or("-"),
                    v.partition.as_ref().map_or_else(|| "CA".into(), |p| p.path()),
                    when(v.not_before),
                    when(v.not_after),
                    v.pem.trim_end()
                )
            })
        }
        Command::Cert(CertCommand::List {
            resident,
            hierarchy,
            kind,
            status,
            expiring_before,
            after,
            limit,
            json,
        }) => {
            let v = call(
                &cli,
                Request::CertPage(ca::authority::CertQuery {
                    resident: resident.clone(),
                    hierarchy: *hierarchy,
                    kind: *kind,
                    status: *status,
                    expiring_before: *expiring_before,
                    after: after.clone(),
                    limit: *limit,
                }),
            )?;
            let list: Vec<CertView> = typed(v["certificates"].clone())?;
            let next = v["next"].as_str().map(str::to_owned);
            print(*json, &v, |_| {
                list.iter()
                    .map(|c| {
                        format!(
                            "{:<8} {:<12} {:<34} {:<8} {}",
                            c.hierarchy,
                            c.kind.as_str(),
                            c.serial,
                            c.status.as_str(),
                            c.holder.as_deref().unwrap_or("-")
                        )
                    })
                    .chain(next.iter().map(|n| format!("more: --after {n}")))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Store(StoreCommand::Compact { json }) => {
            let v = call(&cli, Request::StoreCompact)?;
            print(*json, &v, |v| {
                format!(
                    "snapshot at journal record {} ({} bytes); journal {} -> {} bytes",
                    v["position"],
                    v["snapshot_bytes"],
                    v["journal_bytes_before"],
                    v["journal_bytes_after"]
                )
            })
        }
        Command::Store(StoreCommand::Migrate { to, json }) => {
            let n = crate::store::migrate(&cli.data, to)?;
            print(*json, &n, |n| {
                format!(
                    "copied {} certificates ({} revoked or held), {} residents, {} scheduled events, \
                     {} audit records, {} operators, {} service providers, {} consents, \
                     {} access-log entries, {} CRL states, {} blocked keys; {} now uses PostgreSQL \
                     (store.toml); \
                     the sled store in db/ is left as it was, unused",
                    n.certificates,
                    n.revoked_or_held,
                    n.residents,
                    n.scheduled,
                    n.audit_records,
                    n.operators,
                    n.service_providers,
                    n.consents,
                    n.access_entries,
                    n.crl_states,
                    n.blocked_keys,
                    cli.data.display()
                )
            })
        }
        Command::OcspSigner(OcspSignerCommand::Renew {
            hierarchy,
            if_due,
            json,
        }) => {
            let v = call(
                &cli,
                Request::OcspSignerRenew {
                    hierarchy: *hierarchy,
                    if_due: *if_due,
                },
            )?;
            let renewed: Vec<ca::authority::Renewed> = typed(v["renewed"].clone())?;
            print(*json, &v, |_| {
                if renewed.is_empty() {
                    return "no OCSP signer is due for renewal".to_owned();
                }
                renewed
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: OCSP signer {} replaces {}, valid until {}",
                            r.hierarchy,
                            r.serial,
                            r.replaced,
                            when(r.not_after)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::OcspSigner(OcspSignerCommand::Compromise { hierarchy, json }) => {
            let v = call(
                &cli,
                Request::OcspSignerCompromise {
                    hierarchy: *hierarchy,
                },
            )?;
            let r: ca::authority::Renewed = typed(v["replaced"].clone())?;
            print(*json, &v, |_| {
                format!(
                    "{}: OCSP signer {} revoked (keyCompromise) and its key blocked; \
                     OCSP signer {} in force, valid until {}",
                    r.hierarchy,
                    r.replaced,
                    r.serial,
                    when(r.not_after)
                )
            })
        }
        Command::OcspSigner(OcspSignerCommand::Status { json }) => {
            let v = call(&cli, Request::Expiries)?;
            let all: Vec<ca::authority::Expiry> = typed(v["expiries"].clone())?;
            let now = clock()?.now();
            print(*json, &v, |_| {
                all.iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\tnotAfter {}\t{}",
                            e.label(),
                            e.serial,
                            when(e.not_after),
                            if e.due(now) {
                                format!("WITHIN the {}-day margin", e.margin_days)
                            } else {
                                format!("{}-day margin", e.margin_days)
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Events(EventsCommand::ApplyDue { json }) => {
            let v = call(&cli, Request::ApplyDue)?;
            let applied: Vec<EventOutcome> = typed(v["applied"].clone())?;
            print(*json, &v, |_| {
                if applied.is_empty() {
                    return "no scheduled event is due".to_owned();
                }
                applied
                    .iter()
                    .map(|o| {
                        format!(
                            "{} {}: {} certificate(s) revoked",
                            o.resident,
                            o.event,
                            o.revocations.len()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Audit(AuditCommand::Verify { json }) => {
            let v = call(&cli, Request::AuditVerify)?;
            print(*json, &v, |v| {
                format!(
                    "audit chain intact: {} records; indexes consistent for {} certificates",
                    v["records"], v["certificates_checked"]
                )
            })
        }
        Command::Audit(AuditCommand::Log { json }) => {
            let v = call(&cli, Request::AuditLog)?;
            let records: Vec<ca::audit::Record> = typed(v["records"].clone())?;
            print(*json, &v, |_| {
                records
                    .iter()
                    .map(|r| {
                        format!(
                            "{:>6} {} {:<18} {} {} [{}]",
                            r.seq,
                            when(r.at),
                            r.action,
                            r.subject,
                            r.detail,
                            r.actor.as_deref().unwrap_or("-")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Serve {
            config,
            http,
            pf_https,
            portal,
            tsa,
        } => {
            let mut cfg = match config {
                Some(p) => crate::serve::Config::load(p)?,
                None => crate::serve::Config::default(),
            };
            if http.is_some() {
                cfg.listen.http = http.clone();
            }
            if pf_https.is_some() {
                cfg.listen.pf_https = pf_https.clone();
            }
            if portal.is_some() {
                cfg.listen.portal = portal.clone();
            }
            if tsa.is_some() {
                cfg.listen.tsa = tsa.clone();
            }
            let policy_path = cli.data.join("policy.toml");
            let policy_text = std::fs::read_to_string(&policy_path)
                .map_err(|_| Error::NoDataDir(cli.data.display().to_string()))?;
            let policy = policies::Policy::from_toml(&policy_text).map_err(Error::from)?;
            let settings = cfg.validate(&cli.data, &policy)?;
            let pass = passphrase(cli.passphrase_file.as_deref())?.ok_or(Error::NoPassphrase)?;
            crate::serve::run(&cli.data, Some(pass), settings)
        }
        Command::Verify(args) => verify::verify(args, clock()?.now()),
        Command::VerifyLogin(args) => verify::verify_login(args, clock()?.now()),
        Command::Crl(CrlCommand::Publish { out, json }) => {
            let publisher = local_publisher(&cli)?;
            let now = clock()?.now();
            let index = publisher
                .publish_all(out, now)
                .map_err(|e| crate::Error::Serve(format!("CRL publication: {e}")))?;
            print(*json, &serde_json::json!({ "crls": index }), |_| {
                let entries: u64 = index.iter().map(|i| i.entries).sum();
                format!(
                    "published {} CRLs ({entries} entries) and index.json to {}",
                    index.len(),
                    out.display()
                )
            })
        }
        Command::Crl(CrlCommand::Status { json }) => {
            let publisher = local_publisher(&cli)?;
            let now = clock()?.now();
            let status = publisher
                .status(now)
                .map_err(|e| crate::Error::Serve(format!("CRL status: {e}")))?;
            let rows: Vec<serde_json::Value> = status
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "hierarchy": s.hierarchy,
                        "partition": crl_publisher::scope_name(&s.scope),
                        "number": s.published.as_ref().map(|p| p.number),
                        "age_seconds": s.age.map(|a| a.whole_seconds()),
                        "entries": s.published.as_ref().map(|p| p.entries),
                        "size": s.published.as_ref().map(|p| p.size),
                        "next_update": s.published.as_ref().map(|p| when(p.next_update)),
                    })
                })
                .collect();
            print(*json, &serde_json::json!({ "crls": rows }), |_| {
                let mut out = format!(
                    "{:<8} {:>9} {:>7} {:>9} {:>8} {:>9}",
                    "kind", "partition", "number", "age (s)", "entries", "bytes"
                );
                for r in &rows {
                    let cell = |k: &str| {
                        r[k].as_u64()
                            .map(|n| n.to_string())
                            .or_else(|| r[k].as_i64().map(|n| n.to_string()))
                            .unwrap_or_else(|| "-".into())
                    };
                    out.push_str(&format!(
                        "\n{:<8} {:>9} {:>7} {:>9} {:>8} {:>9}",
                        r["hierarchy"].as_str().unwrap_or_default(),
                        r["partition"].as_str().unwrap_or_default(),
                        cell("number"),
                        cell("age_seconds"),
                        cell("entries"),
                        cell("size")
                    ));
                }
                out
            })
        }
        Command::Officer(cmd) => {
            let v = match officer::request(cmd)? {
                officer::OfficerRequest::Add(req) => call_pf(&cli, req)?,
                officer::OfficerRequest::Ca(req) => call(&cli, req)?,
            };
            println!("{}", officer::output(cmd, &v)?);
            Ok(())
        }
        Command::Operator(cmd) => {
            let v = call_pf(&cli, operator::operator_request(cmd)?)?;
            println!("{}", operator::operator_output(cmd, &v)?);
            Ok(())
        }
        Command::Report(cmd) => {
            let v = call_pf(&cli, operator::report_request(cmd)?)?;
            print!("{}", operator::report_output(cmd, &v)?);
            Ok(())
        }
        Command::Sp(cmd) => {
            let v = call_pf(&cli, operator::sp_request(cmd)?)?;
            println!("{}", operator::sp_output(cmd, &v)?);
            Ok(())
        }
        // Token and completions commands were dispatched above, before any store is opened.
        Command::Token(_) | Command::Completions { .. } => Ok(()),
        Command::Demo { keep } => crate::demo::run(keep.as_deref()),
        Command::Bench(BenchCommand::Issue {
            count,
            threads,
            residents,
            rounds,
            store,
        }) => Ok(crate::bench::issue_on(
            store, *count, *threads, *residents, *rounds,
        )?),
        Command::Bench(BenchCommand::Populate {
            data,
            certificates,
            revoked_fraction,
            municipalities,
            store,
            threads,
            key_pool,
            stop_after,
        }) => Ok(crate::bench_populate::run(
            &crate::bench_populate::Plan {
                certificates: *certificates,
                revoked_fraction: *revoked_fraction,
                municipalities: *municipalities,
            },
            crate::bench_populate::Options {
                data,
                store: store.as_deref(),
                passphrase: passphrase(cli.passphrase_file.as_deref())?,
                threads: *threads,
                key_pool: *key_pool,
                stop_after: *stop_after,
            },
        )?),
        Command::Bench(BenchCommand::Evidence {
            evidence,
            sig,
            content,
            trust,
            tsa_root,
            count,
            rounds,
        }) => crate::bench_evidence::run(evidence, sig, content, trust, tsa_root, *count, *rounds),
    }
}

fn resident(cli: &Cli, rc: &ResidentCommand) -> Result<()> {
    let (who, event) = match rc {
        ResidentCommand::AccessLog(args) => {
            let v = call_pf(cli, operator::access_log_request(args))?;
            println!("{}", operator::access_log_output(args, &v)?);
            return Ok(());
        }
        ResidentCommand::Add {
            name,
            birth,
            sex,
            address,
            prefecture,
            municipality,
            card_expiry,
            allow_duplicate,
            json,
        } => {
            let v = call(
                cli,
                Request::ResidentAddWith {
                    resident: NewResident {
                        name: name.clone(),
                        birth: *birth,
                        sex: *sex,
                        address: address.clone(),
                        prefecture: prefecture.clone(),
                        municipality: municipality.clone(),
                        card_expiry: *card_expiry,
                    },
                    allow_duplicate: allow_duplicate.clone(),
                },
            )?;
            return print(*json, &v, |v| {
                format!(
                    "registered resident {}",
                    v["id"].as_str().unwrap_or_default()
                )
            });
        }
        ResidentCommand::Import {
            file,
            dry_run,
            json,
        } => {
            let report = match import::read(file)? {
                Err(refused) => {
                    serde_json::json!({ "accepted": [], "refused": refused, "dry_run": dry_run })
                }
                Ok(rows) => call(
                    cli,
                    Request::ResidentImport {
                        rows,
                        dry_run: *dry_run,
                    },
                )?,
            };
            let refused = report["refused"].as_array().map_or(0, Vec::len);
            print(*json, &report, |r| {
                let mut s = String::new();
                for x in r["refused"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "row {}: {}\n",
                        x["row"],
                        x["error"].as_str().unwrap_or_default()
                    ));
                }
                let accepted = r["accepted"].as_array().map_or(0, Vec::len);
                s.push_str(&if refused > 0 {
                    format!("{refused} row(s) refused; nothing was registered")
                } else if *dry_run {
                    format!(
                        "{accepted} row(s) would be registered (dry run: nothing was registered)"
                    )
                } else {
                    let ids: Vec<&str> = r["accepted"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .collect();
                    format!("registered {accepted} resident(s): {}", ids.join(" "))
                });
                s
            })?;
            if refused > 0 {
                return Err(Error::Invalid(format!(
                    "{}: {refused} row(s) refused; nothing was registered",
                    file.display()
                ))
                .into());
            }
            return Ok(());
        }
        ResidentCommand::Search {
            name,
            birth,
            municipality,
            state,
            after,
            limit,
            json,
        } => {
            let q = ca::authority::ResidentQuery {
                name: name.clone(),
                birth: *birth,
                municipality: municipality.clone(),
                state: *state,
                after: after.clone(),
                limit: *limit,
            };
            let page: ca::authority::ResidentPage = typed(call(cli, Request::ResidentSearch(q))?)?;
            return print(*json, &page, |p| {
                let mut lines: Vec<String> = p
                    .residents
                    .iter()
                    .map(|r| {
                        format!(
                            "{}  {}  {}  {} / {}  {:?}{}",
                            r.id,
                            r.name,
                            r.birth,
                            r.prefecture,
                            r.municipality,
                            r.state,
                            if r.card_lost { " (card lost)" } else { "" }
                        )
                    })
                    .collect();
                lines.push(match &p.next {
                    Some(n) => format!("{} shown; more with --after {n}", p.residents.len()),
                    None => format!("{} found", p.residents.len()),
                });
                lines.join("\n")
            });
        }
        ResidentCommand::Show { id, json } => {
            let v: ResidentView = typed(call(cli, Request::ResidentShow { id: id.clone() })?)?;
            return print(*json, &v, |v| {
                let mut s = format!(
                    "{}  {:?}\n  name: {}\n  birth: {} ({})\n  sex: {}\n  address: {}\n  {} / {}\n  card expiry: {}{}",
                    v.id,
                    v.state,
                    v.name,
                    v.birth,
                    v.birth_era,
                    v.sex.digit(),
                    v.address,
                    v.prefecture,
                    v.municipality,
                    v.card_expiry,
                    if v.card_lost { " (reported lost)" } else { "" }
                );
                for c in &v.certificates {
                    s.push_str(&format!(
                        "\n  {:<8} {} {}{}",
                        c.hierarchy,
                        c.serial,
                        c.status.as_str(),
                        c.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    ));
                }
                s
            });
        }
        ResidentCommand::Move {
            who,
            address,
            prefecture,
            municipality,
        } => (
            who,
            Event::Move {
                address: address.clone(),
                prefecture: prefecture.clone(),
                municipality: municipality.clone(),
            },
        ),
        ResidentCommand::Rename { who, name } => (who, Event::Rename { name: name.clone() }),
        ResidentCommand::Correct {
            who,
            name,
            birth,
            sex,
            address,
        } => (
            who,
            Event::Correct {
                name: name.clone(),
                birth: *birth,
                sex: *sex,
                address: address.clone(),
            },
        ),
        ResidentCommand::Death { who } => (who, Event::Death),
        ResidentCommand::Emigrate {
            who,
            date,
            continued_use,
        } => (
            who,
            Event::Emigrate {
                departure: *date,
                continued_use: *continued_use,
            },
        ),
        ResidentCommand::CardLost { who } => (who, Event::CardLost),
        ResidentCommand::CardFound { who } => (who, Event::CardFound),
        ResidentCommand::CardRenew { who, card_expiry } => (
            who,
            Event::CardRenew {
                card_expiry: *card_expiry,
            },
        ),
        ResidentCommand::Withdraw { who, kind } => (who, Event::Withdraw { kind: *kind }),
    };
    let outcome: EventOutcome = typed(call(
        cli,
        Request::Event {
            id: who.id.clone(),
            event,
        },
    )?)?;
    print(who.json, &outcome, |o| {
        let mut s = format!("{}: {} recorded", o.resident, o.event);
        if let Some(d) = o.scheduled {
            s.push_str(&format!(
                "; signing certificate will be revoked on the departure date {d}"
            ));
        }
        for r in &o.revocations {
            s.push_str(&format!(
                "\n  {} {}:{} ({})",
                r.status.as_str(),
                r.hierarchy,
                r.serial,
                r.reason
            ));
        }
        s
    })
}
