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

pub mod backup;
pub mod ceremony;
pub mod confirm;
pub mod import;
pub mod officer;
pub mod operator;
pub mod phone;
pub mod remote;
pub mod report;
pub mod token;
pub mod tsa;
pub mod verifier;
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
    /// Open the data directory for reading only, e.g. a copy of a store on read-only media:
    /// no lock file is created, nothing in it is changed, and every command that would change
    /// the store is refused (`read_only`). sled stores only. Example: `jpki --read-only --data
    /// /mnt/copy cert list`.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Send the command to a remote `jpki serve --admin-https` (https://HOST:PORT) as the
    /// officer of --cert/--key instead of opening the data directory (docs/officers.md).
    /// Given before the subcommand: `jpki --server URL --cert C --key K resident move …`
    /// (not global, so that subcommands keep their own `--cert`).
    #[arg(long, value_name = "URL", requires_all = ["cert", "key"])]
    pub server: Option<String>,
    /// With --server: the officer's client certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub cert: Option<PathBuf>,
    /// With --server: the officer's client key (PEM).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub key: Option<PathBuf>,
    /// With --server: the operator CA certificate that issued the server's (PEM); default:
    /// the last certificate of --cert.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The remote admin API to send requests to (`--server`), if given.
    fn remote(&self) -> Option<remote::Remote> {
        Some(remote::Remote {
            url: self.server.clone()?,
            cert: self.cert.clone()?,
            key: self.key.clone()?,
            ca: self.ca.clone(),
        })
    }
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
        /// Keep the CA keys in a PKCS#11 token (an HSM) instead of encrypted files: the
        /// vendor's module (shared library); with --token and --pin-file (docs/hsm.md).
        #[arg(long, value_name = "PATH", requires = "token")]
        pkcs11_module: Option<PathBuf>,
        /// The label of the token the CA keys are generated in (non-extractable).
        #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
        token: Option<String>,
        /// File holding the token's user PIN, read whenever the token is opened (recorded by
        /// path in DIR/hsm.toml, never copied; $JPKI_HSM_PIN overrides it).
        #[arg(long, value_name = "FILE", requires = "pkcs11_module")]
        pin_file: Option<PathBuf>,
    },
    /// Print a root certificate (PEM) with --hierarchy; without it, list every root
    /// generation of both hierarchies (docs/roots.md).
    #[command(args_conflicts_with_subcommands = true)]
    Root {
        /// signing, auth, or operator (the platform-operator CA): print the root that issues
        /// new certificates (the newest generation).
        #[arg(long, value_parser = parse_root)]
        hierarchy: Option<RootOf>,
        /// With --hierarchy: every unexpired generation, oldest first (what relying parties
        /// trust).
        #[arg(long, requires = "hierarchy")]
        all: bool,
        /// One JSON object: {"pem": "..."}, or {"generations": [...]} without --hierarchy.
        #[arg(long)]
        json: bool,
        /// Write the certificate to this file instead of stdout (PEM; DER with --der).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write --out as DER instead of PEM.
        #[arg(long, requires = "out")]
        der: bool,
        #[command(subcommand)]
        command: Option<RootCommand>,
    },
    /// The resident register and its events.
    #[command(subcommand)]
    Resident(ResidentCommand),
    /// Issue a certificate to a resident from a CSR (PEM or DER).
    Issue {
        /// The resident's id as registered, e.g. R0C60BA7AFACCE4BC.
        #[arg(long)]
        resident: String,
        /// signing or auth: which of the holder's certificates.
        #[arg(long, value_parser = parse_hierarchy)]
        kind: Hierarchy,
        /// The PKCS#10 request (PEM or DER) made with the holder's key, e.g. from `jpki token csr`.
        #[arg(long)]
        csr: PathBuf,
        /// Also write the certificate here (PEM; DER with --der), e.g. auth.pem.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write --out as DER instead of PEM.
        #[arg(long, requires = "out")]
        der: bool,
        /// Issue a signing certificate to a holder under the signing age (policy
        /// `eligibility.signing_min_age`, 15 by default), with the reason, e.g. "application by
        /// legal representative"; audited.
        #[arg(long, value_name = "REASON")]
        minor_signing: Option<String>,
        /// Issue while the holder's current certificate of the kind has more than the renewal
        /// window (policy `validity.renewal_window_months`) to run, with the reason; audited.
        #[arg(long, value_name = "REASON")]
        early_renewal: Option<String>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate, or every serial listed in a file (one per line, optionally
    /// `auth:SERIAL` or `signing:SERIAL`; printing each acknowledgement as it becomes durable).
    Revoke {
        /// The certificate serial in hex, e.g. 012D57CA (colons and 0x allowed).
        #[arg(long, required_unless_present = "batch")]
        serial: Option<String>,
        /// A file with one serial per line (optionally auth:SERIAL or signing:SERIAL); every line is checked before anything is revoked.
        #[arg(long, conflicts_with = "serial")]
        batch: Option<PathBuf>,
        /// RFC 5280 reason: keyCompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, … (e.g. keyCompromise).
        #[arg(long, value_parser = parse_reason)]
        reason: Reason,
        /// When the key is known or suspected to have been compromised, RFC 3339, e.g. 2026-12-01T09:00:00+09:00 (invalidityDate).
        #[arg(long, value_parser = parse_time)]
        invalidity_date: Option<OffsetDateTime>,
        /// signing or auth (needed only when the serial exists in both).
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        /// Check the serial (or, with --batch, every line) and say what would be done,
        /// changing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation at a terminal (it is never asked without one).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put a certificate on hold (certificateHold; never released for card certificates).
    Hold {
        /// The certificate serial in hex, e.g. 012D57CA (colons and 0x allowed).
        #[arg(long)]
        serial: String,
        /// signing or auth (needed only when the serial exists in both).
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
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
        /// Serve CRLs and OCSP over plain HTTP to anyone here (e.g. 127.0.0.1:8080): an
        /// explicit choice, since JPKI gives revocation data to registered parties only.
        #[arg(long, value_name = "ADDR")]
        public_http: Option<String>,
        /// The older name of --public-http.
        #[arg(long, value_name = "ADDR", conflicts_with = "public_http")]
        http: Option<String>,
        /// Serve CRLs and OCSP over mutual TLS to registered verifiers (`jpki verifier add`)
        /// and platform operators only.
        #[arg(long, value_name = "ADDR")]
        verifiers_https: Option<String>,
        /// Serve the platform-operator API over mutual TLS here.
        #[arg(long)]
        pf_https: Option<String>,
        /// Serve the holder portal over HTTPS here (docs/portal.md).
        #[arg(long)]
        portal: Option<String>,
        /// Serve the RFC 3161 time-stamping authority over HTTP here (docs/tsa.md).
        #[arg(long, value_name = "ADDR")]
        tsa: Option<String>,
        /// Serve the remote admin API over mutual TLS here (officers' client certificates;
        /// docs/officers.md).
        #[arg(long, value_name = "ADDR")]
        admin_https: Option<String>,
        /// What this process does: everything (all), a CA node (ca: issuance, register
        /// events, leased CRL publishing, no OCSP) or an edge node (edge: OCSP and CRLs from
        /// an edge directory made by `jpki edge export`). See docs/deployment.md.
        #[arg(long, value_enum, default_value_t = crate::serve::role::Role::All)]
        role: crate::serve::role::Role,
        /// A CA node's name in CRL leases (default: hostname-pid); an edge's name in its OCSP
        /// signer requests when its edge.toml names none (default: the host name).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
    },
    /// Edge nodes (OCSP and CRL serving on PostgreSQL; docs/deployment.md).
    #[command(subcommand)]
    Edge(EdgeCommand),
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
    /// Registered verifiers: relying parties that fetch CRLs and OCSP over mutual TLS.
    #[command(subcommand)]
    Verifier(verifier::VerifierCommand),
    /// Reports: platform API usage per month; issuance, revocations and holds per
    /// municipality and period; certificates expiring (table, --csv or --json).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// The holder's token (the My Number card's stand-in): keys under PINs.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Dual control: an officer's signed approval of a key ceremony (docs/hsm.md).
    #[command(subcommand)]
    Ceremony(ceremony::CeremonyCommand),
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
    /// The time-stamping authority's unit: show it, renew it by hand or from cron
    /// (`jpki serve --tsa` renews it by itself). See docs/tsa.md.
    #[command(subcommand)]
    Tsa(tsa::TsaCommand),
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
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The roots' and OCSP signers' notAfter and renewal margins.
    Status {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The OCSP signer key of a hierarchy is compromised: revoke its certificate
    /// (keyCompromise, on the CA-level CRL), block the key for ever and put a new signer in
    /// force at once; a running server drops every answer the old key signed. See
    /// docs/operations.md.
    /// A key ceremony under dual control: two distinct ca-officers approve it (--approval
    /// FILE twice, or --officer-cert/--officer-key twice; docs/hsm.md).
    Compromise {
        /// signing or auth (needed only when the serial exists in both).
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Hierarchy,
        #[command(flatten)]
        approvers: ceremony::Approvers,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ResidentCommand {
    /// Register a resident.
    Add {
        /// Name as registered (family and given name, e.g. 山田　花子).
        #[arg(long)]
        name: String,
        /// Date of birth, YYYY-MM-DD, e.g. 1990-04-01.
        #[arg(long, value_parser = parse_date)]
        birth: Date,
        /// Sex code of the register: 1 (male), 2 (female) or 9 (not applicable).
        #[arg(long, value_parser = parse_sex)]
        sex: Sex,
        /// Address as registered, e.g. 東京都千代田区霞が関２－１－２.
        #[arg(long)]
        address: String,
        /// Prefecture, e.g. Tokyo (names the CRL partition of its certificates).
        #[arg(long)]
        prefecture: String,
        /// Municipality, e.g. Chiyoda-ku (names the CRL partition of its certificates).
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
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
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
        /// Do not ask for confirmation at a terminal (it is never asked without one).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Who read this holder's data through a platform operator, and when (as Mynaportal discloses it).
    AccessLog(operator::AccessLogArgs),
    /// Reset a locked (or forgotten) PIN of the holder's token at the municipal counter, after
    /// the holder's identity was checked there, without the other PIN: the register checks the
    /// resident, the municipality and the token's certificate and records the reset in the
    /// audit trail, then the counter key (`jpki token counter-key`, its passphrase from
    /// $JPKI_PASSPHRASE or --passphrase-file) sets the new PIN. Example: `jpki resident
    /// pin-reset --id R… --token card.json --kind auth --counter-key chiyoda.key`.
    PinReset {
        /// The resident, as registered (R…).
        #[arg(long, value_name = "ID")]
        id: String,
        /// The holder's token file.
        #[arg(long, value_name = "FILE")]
        token: PathBuf,
        /// Which PIN: auth (4 digits) or signing (6-16 letters and digits).
        #[arg(long, value_parser = parse_hierarchy, value_name = "KIND")]
        kind: Hierarchy,
        /// The counter's key file (`jpki token counter-key --out`).
        #[arg(long, value_name = "FILE")]
        counter_key: PathBuf,
        /// The new PIN (asked for twice without echo when left out).
        #[arg(long, value_name = "PIN")]
        new_pin: Option<String>,
        /// One JSON object: the reset as recorded.
        #[arg(long)]
        json: bool,
    },
    /// Show a resident, their certificates and history.
    Show {
        /// The resident's id as registered, e.g. R0C60BA7AFACCE4BC (`jpki resident search` finds it).
        #[arg(long)]
        id: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Find residents (e.g. for the loss hotline: by name and birth date), a page at a time;
    /// with no filter, list them all (`jpki resident list`).
    #[command(visible_alias = "list")]
    Search {
        /// Part of the name; spaces are ignored (山田花子 finds 山田　花子).
        #[arg(long)]
        name: Option<String>,
        /// Date of birth, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        birth: Option<Date>,
        /// Municipality, e.g. Chiyoda-ku (names the CRL partition of its certificates).
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
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A move (転居/転出): the signing certificate is revoked (affiliationChanged).
    Move {
        #[command(flatten)]
        who: Who,
        /// Address as registered, e.g. 東京都千代田区霞が関２－１－２.
        #[arg(long)]
        address: String,
        /// Prefecture, e.g. Tokyo (names the CRL partition of its certificates).
        #[arg(long)]
        prefecture: Option<String>,
        /// Municipality, e.g. Chiyoda-ku (names the CRL partition of its certificates).
        #[arg(long)]
        municipality: Option<String>,
    },
    /// A change of name: the signing certificate is revoked.
    Rename {
        #[command(flatten)]
        who: Who,
        /// Name as registered (family and given name, e.g. 山田　花子).
        #[arg(long)]
        name: String,
    },
    /// A correction of any of the four attributes: the signing certificate is revoked.
    Correct {
        #[command(flatten)]
        who: Who,
        /// Name as registered (family and given name, e.g. 山田　花子).
        #[arg(long)]
        name: Option<String>,
        /// Date of birth, YYYY-MM-DD, e.g. 1990-04-01.
        #[arg(long, value_parser = parse_date)]
        birth: Option<Date>,
        /// Sex code of the register: 1 (male), 2 (female) or 9 (not applicable).
        #[arg(long, value_parser = parse_sex)]
        sex: Option<Sex>,
        /// Address as registered, e.g. 東京都千代田区霞が関２－１－２.
        #[arg(long)]
        address: Option<String>,
    },
    /// Death: both certificates are revoked. Asks for confirmation at a terminal.
    Death {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        confirm: confirm::Confirm,
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
        /// The new card's expiry, YYYY-MM-DD (at most 10 years ahead, 5 for a minor), e.g.
        /// 2036-04-01.
        #[arg(long, value_parser = parse_date, value_name = "DATE")]
        card_expiry: Date,
        #[command(flatten)]
        confirm: confirm::Confirm,
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
    /// The resident's id as registered, e.g. R0C60BA7AFACCE4BC (`jpki resident search` finds it).
    #[arg(long)]
    id: String,
    /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Show one certificate: its holder, validity, status and PEM.
    Show {
        /// Also write the certificate to this file (PEM; DER with --der).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write --out as DER instead of PEM.
        #[arg(long, requires = "out")]
        der: bool,
        /// The certificate serial in hex, e.g. 012D57CA (colons and 0x allowed).
        #[arg(long)]
        serial: String,
        /// signing or auth (needed only when the serial exists in both).
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Option<Hierarchy>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List certificates, filtered and a page at a time.
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
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
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
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the data directory (the store as of one commit, keys,
    /// certificates, policy) to one archive file, also while `jpki serve` runs (through its
    /// admin socket); restore it with `jpki store restore`. sled stores only (PostgreSQL:
    /// pg_dump, docs/store.md). Example: `jpki store backup --out /backup/jpki-2026-12-05.tar`.
    Backup {
        /// The archive to write (a tar file, 0600); must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// One JSON object: {"out", "created", "files", "store": {position, last, …}}.
        #[arg(long)]
        json: bool,
    },
    /// Unpack a backup into the data directory given by --data, which must not exist or be
    /// empty (never over a store), check every file's checksum, open the store and verify the
    /// audit chain. Example: `jpki store restore /backup/jpki.tar --data /srv/jpki-restored`.
    Restore {
        /// The archive written by `jpki store backup`.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// One JSON object: {"data", "files", "audit_records", "certificates_checked", …}.
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
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EdgeCommand {
    /// Make an edge directory from this CA data directory: the policy, the roots'
    /// certificates, each OCSP signer's certificate and key (re-encrypted under the edge
    /// passphrase) and the database URL. No root key. Needs the CA passphrase.
    Export {
        /// The new edge directory.
        #[arg(long)]
        out: PathBuf,
        /// The database the edge reads (e.g. a hot standby); default: this directory's.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// File holding the edge's passphrase (must differ from the CA passphrase).
        #[arg(long, value_name = "FILE")]
        edge_passphrase_file: PathBuf,
        /// The edge node's name, the key of its OCSP signer requests (default: the edge
        /// directory's file name).
        #[arg(long)]
        node: Option<String>,
        /// For an edge reading a read-only standby: the primary's URL, where it files its
        /// OCSP signer requests (docs/deployment.md).
        #[arg(long, value_name = "URL")]
        primary: Option<String>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
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
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain: detects a changed, inserted or removed record.
    Verify {
        /// Also check every signed checkpoint: proves the chain up to the last one was not
        /// rewritten, even consistently (docs/officers.md).
        #[arg(long)]
        checkpoints: bool,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the records.
    Log {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint of the chain's head now (`jpki serve` does so at an interval and
    /// when it stops).
    Checkpoint {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the signed checkpoints, or export them for a third party (checkable offline
    /// with openssl: docs/officers.md).
    Checkpoints {
        /// Write them, with the operator CA root, to this new file (JSON).
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CrlCommand {
    /// Write every CRL of both hierarchies into DIR (for a static web server or a CDN), plus
    /// index.json. Needs the store: stop `jpki serve` first (it publishes by itself).
    Publish {
        /// The directory to write the CRLs and index.json into, e.g. /var/www/crl.
        #[arg(long)]
        out: PathBuf,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Each partition's CRL number, age, entries and size.
    Status {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Writes a benchmark store's serials and an `openssl ocsp -index` database of its
    /// authentication certificates (for bench/scale/ocsp.sh); reads the store only.
    Export {
        /// The store's data directory (opened read-only).
        #[arg(long)]
        data: PathBuf,
        /// Existing directory to write auth.serials, signing.serials, index.txt(.attr) into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Builds (or resumes) a benchmark store of N certificates through the real write path,
    /// with holder keys from a small shared pool (bench stores only; see BENCHMARKS.md).
    Populate {
        /// The benchmark store's data directory (created, or resumed if made by this command).
        #[arg(long)]
        data: PathBuf,
        /// Certificates to reach (two per resident: signing and authentication), e.g. 100000.
        #[arg(long)]
        certificates: u64,
        /// Share of residents reported dead (both certificates revoked by the event's rule).
        #[arg(long, default_value_t = 0.1)]
        revoked_fraction: f64,
        /// Municipalities the residents are spread over (Japan has 1,741).
        #[arg(long, default_value_t = 1741)]
        municipalities: u32,
        /// `postgres://…` to create the store in PostgreSQL (sled by default).
        #[arg(long)]
        store: Option<String>,
        /// Chunks of residents worked on at once (each batch's signatures already use every
        /// core).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Pre-generated holder keys shared by all holders.
        #[arg(long, default_value_t = 16)]
        key_pool: usize,
        /// Residents per chunk of units of work (registration, each kind's issuance, deaths).
        #[arg(long, default_value_t = 256)]
        batch: u64,
        /// Stop after about this many certificates, as if interrupted (tests of resuming).
        #[arg(long, hide = true)]
        stop_after: Option<u64>,
    },
    /// Issuance throughput (CSR in, durable certificate out) beside the raw RSA signing rate.
    Issue {
        /// Issuances to measure.
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
        /// The signed content the evidence is about.
        #[arg(long)]
        content: PathBuf,
        /// The roots to trust (PEM), e.g. from `jpki root`.
        #[arg(long)]
        trust: PathBuf,
        /// The TSA's root certificate (PEM).
        #[arg(long)]
        tsa_root: PathBuf,
        /// Verifications per measurement.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Measurements (each side once per round, alternating); the median is reported.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Revocation-to-edge latency (p50/p99) for an edge follower on a throwaway PostgreSQL
    /// primary and one on its streaming standby (docs/deployment.md, BENCHMARKS.md).
    Nodes {
        /// Revocations (one unit of work each).
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_hierarchy(s: &str) -> std::result::Result<Hierarchy, String> {
    s.parse()
}

/// `jpki root rollover`.
#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Make a new generation of a hierarchy's root: a new key and a new self-signed root with
    /// the same DN and a new serial; new certificates are issued under it, older generations
    /// keep their keys (docs/roots.md). Needs the passphrase.
    /// A key ceremony under dual control: two distinct ca-officers approve it (--approval
    /// FILE twice, or --officer-cert/--officer-key twice; docs/hsm.md).
    Rollover {
        /// signing or auth.
        #[arg(long, value_parser = parse_hierarchy)]
        hierarchy: Hierarchy,
        #[command(flatten)]
        approvers: ceremony::Approvers,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
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
    // "the following required arguments were not provided:" names them on the next lines.
    if line.ends_with(':') {
        if let Some(v) = e.get(ContextKind::InvalidArg) {
            line.push(' ');
            line.push_str(&values(v).join(", "));
        }
    }
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
    if cli.server.is_some() {
        return Err(Error::Invalid(
            "this command works on the data directory only, not through --server".into(),
        )
        .into());
    }
    if cli.read_only {
        return Ok(Some(crate::store::open_read_only(
            &cli.data,
            passphrase(cli.passphrase_file.as_deref())?,
            clock()?,
        )?));
    }
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
    if let Some(r) = cli.remote() {
        return r.call(&req);
    }
    match open_local(cli)? {
        Some(a) => Ok(a.handle_as(&Actor::root_on_host(), req)?),
        None => Ok(ca::api::call_remote(&cli.data, &req)?),
    }
}

/// The same for a platform-operator request.
fn call_pf(cli: &Cli, req: platform::Request) -> Result<serde_json::Value> {
    if let Some(r) = cli.remote() {
        return r.call(&req);
    }
    match open_local(cli)? {
        Some(a) => Ok(acting_as(&Actor::root_on_host(), || {
            platform::handle(&a, req)
        })?),
        None => Ok(platform::api::call_remote(&cli.data, &req)?),
    }
}

/// `path` made absolute (against the current directory): recorded paths must not depend on
/// where a later command runs.
fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(path).map_err(Error::io(format!("resolve {}", path.display())))?)
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
    yes: bool,
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
    let remote = cli.remote();
    let local = match remote {
        Some(_) => None,
        None => open_local(cli)?,
    };
    let run = |req: Request| -> Result<serde_json::Value> {
        if let Some(r) = &remote {
            return r.call(&req);
        }
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
        if json {
            let would: Vec<serde_json::Value> = todo
                .iter()
                .map(|(n, h, serial, status)| {
                    serde_json::json!({ "line": n, "hierarchy": h, "serial": serial, "status": status })
                })
                .collect();
            say(
                serde_json::json!({ "dry_run": true, "would_revoke": would, "count": todo.len() })
                    .to_string(),
            )?;
            return Ok(());
        }
        for (n, h, serial, status) in &todo {
            say(format!("line {n}: would revoke {h}:{serial} ({status})"))?;
        }
        say(format!(
            "dry run: {} certificate(s) checked, nothing changed",
            todo.len()
        ))?;
        return Ok(());
    }
    confirm::ask(
        yes,
        &format!(
            "{} certificate(s) listed in {} will be revoked.",
            todo.len(),
            file.display()
        ),
    )?;
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
    Ok(publisher_over(cli, Arc::new(a))?.publisher)
}

/// The CRL publisher (and its directory) over an authority opened in this process.
fn publisher_over(cli: &Cli, a: Arc<Authority>) -> Result<crate::serve::Parts> {
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
        admin: None,
        checkpoint_every: None,
        verifiers: None,
        presign_rate: 200,
        memory_answers: 64 << 10,
        store_cache_bytes: crate::serve::DEFAULT_STORE_CACHE_MIB << 20,
    };
    crate::serve::assemble(a, &settings)
}

/// The same JSON with every object key in snake_case (`thisUpdate` → `this_update`).
fn snake_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let mut out = String::with_capacity(k.len() + 4);
                    for c in k.chars() {
                        if c.is_ascii_uppercase() {
                            out.push('_');
                            out.push(c.to_ascii_lowercase());
                        } else {
                            out.push(c);
                        }
                    }
                    (out, snake_keys(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(snake_keys).collect()),
        other => other,
    }
}

/// Writes a certificate given as PEM to `path`: PEM, or DER with `der` (`--der`).
fn write_cert(path: &Path, pem: &str, der: bool) -> Result<()> {
    let bytes = if der {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| Error::Invalid(format!("certificate PEM: {e}")))?
            .1
            .contents
    } else {
        pem.as_bytes().to_vec()
    };
    Ok(std::fs::write(path, bytes).map_err(Error::io(format!("write {}", path.display())))?)
}

fn parse_resident_state(s: &str) -> std::result::Result<ca::records::ResidentState, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}`: expected active, emigrating, emigrated or deceased"))
}

/// `jpki audit checkpoints --export`: each checkpoint with the exact statement it signs, and
/// the operator CA root that issued the signer's certificate (docs/officers.md shows the
/// openssl commands that check them).
fn checkpoint_export(
    list: &[ca::checkpoint::Checkpoint],
    root_pem: Option<&str>,
) -> Result<String> {
    let checkpoints = list
        .iter()
        .map(|c| -> Result<serde_json::Value> {
            Ok(serde_json::json!({
                "seq": c.seq,
                "hash": c.hash,
                "at": c.at.format(&Rfc3339).map_err(|e| Error::Invalid(e.to_string()))?,
                "statement": ca::checkpoint::Checkpoint::statement(c.seq, &c.hash, c.at)?,
                "signature": c.signature,
                "cert_pem": c.cert_pem,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::json!({
        "format": "jpki-audit-checkpoints-v1",
        "signature_algorithm": "sha256WithRSAEncryption (PKCS#1 v1.5) over `statement`",
        "operator_root_pem": root_pem,
        "checkpoints": checkpoints,
    })
    .to_string())
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
        // An officer's approval is signed with its own files only.
        Command::Ceremony(cmd) => return ceremony::run(&cmd, clock()?.now()),
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
            read_only: cli.read_only,
            server: cli.server,
            cert: cli.cert,
            key: cli.key,
            ca: cli.ca,
        },
    };
    if cli.read_only
        && matches!(
            cli.command,
            Command::Init { .. }
                | Command::Serve { .. }
                | Command::Demo { .. }
                | Command::Bench(_)
                | Command::Crl(CrlCommand::Publish { .. })
                | Command::Store(
                    StoreCommand::Compact { .. }
                        | StoreCommand::Migrate { .. }
                        | StoreCommand::Restore { .. }
                )
        )
    {
        return Err(Error::ReadOnly(cli.data.display().to_string()).into());
    }
    match &cli.command {
        Command::Init {
            policy,
            store,
            first_officer,
            first_officer_csr,
            pkcs11_module,
            token,
            pin_file,
        } => {
            let text = match policy {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(Error::io(format!("read policy {}", p.display())))?,
                None => policies::policy::DEFAULT_POLICY.to_owned(),
            };
            let hsm = match (pkcs11_module, token) {
                (Some(module), Some(token)) => Some(ca::hsm::HsmConfig {
                    module: absolute(module)?,
                    token: token.clone(),
                    pin_file: pin_file.as_deref().map(absolute).transpose()?,
                }),
                _ => None,
            };
            // With a token the CA keys need no passphrase (the PIN guards them).
            let pass = match (&hsm, passphrase(cli.passphrase_file.as_deref())?) {
                (_, Some(p)) => p,
                (Some(_), None) => Vec::new(),
                (None, None) => return Err(Error::NoPassphrase.into()),
            };
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
            let a = crate::store::init(
                &cli.data,
                store.as_deref(),
                &text,
                &pass,
                clock()?,
                hsm.as_ref(),
            )?;
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
            // The audit-checkpoint key and certificate (docs/officers.md), made now so that
            // the first checkpoint is not also the first change a server makes at its stop.
            platform::audit_checkpoint::signer(&a)?;
            println!("initialised {}", a.dir().display());
            println!(
                "  first ca-officer {}: {} (move its key off this host)",
                first_officer,
                cert_out.display()
            );
            for h in Hierarchy::ALL {
                let root = a.root(h);
                let (_, c) = x509_parser::parse_x509_certificate(&root.der)
                    .map_err(|e| Error::Store(e.to_string()))?;
                println!("  {h} root: {}", c.subject());
            }
            Ok(())
        }
        Command::Root {
            command:
                Some(RootCommand::Rollover {
                    hierarchy,
                    approvers,
                    json,
                }),
            ..
        } => {
            let approvals = approvers.collect(
                ca::authority::rollover::ROLLOVER_CEREMONY,
                &hierarchy.to_string(),
                clock()?.now(),
            )?;
            let v = call(
                &cli,
                Request::RootRollover {
                    hierarchy: *hierarchy,
                    approvals,
                },
            )?;
            if *json {
                println!("{v}");
            } else {
                let r = &v["rolled_over"];
                println!(
                    "{} root generation {}: serial {}, key id {}, valid {} to {}; new certificates are issued under it",
                    hierarchy,
                    r["generation"],
                    r["serial"].as_str().unwrap_or_default(),
                    r["key_id"].as_str().unwrap_or_default(),
                    r["not_before"].as_str().unwrap_or_default(),
                    r["not_after"].as_str().unwrap_or_default(),
                );
                println!(
                    "  certificate: {}",
                    r["certificate"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Root {
            hierarchy: None,
            json,
            ..
        } => {
            let v = call(&cli, Request::RootGenerations { hierarchy: None })?;
            if *json {
                println!("{}", serde_json::json!({ "generations": v["generations"] }));
            } else {
                println!(
                    "{:<8} {:>3}  {:<10} {:<41} {:<20} {:<20} state",
                    "HIER", "GEN", "SERIAL", "KEY ID", "NOT BEFORE", "NOT AFTER"
                );
                for g in v["generations"].as_array().into_iter().flatten() {
                    let state = match (g["issuing"].as_bool(), g["expired"].as_bool()) {
                        (_, Some(true)) => "expired",
                        (Some(true), _) => "issuing",
                        _ => "signs revocation data for what it issued",
                    };
                    let day = |k: &str| {
                        g[k].as_str()
                            .unwrap_or_default()
                            .chars()
                            .take(19)
                            .collect::<String>()
                    };
                    println!(
                        "{:<8} {:>3}  {:<10} {:<41} {:<20} {:<20} {state}",
                        g["hierarchy"].as_str().unwrap_or_default(),
                        g["generation"].as_u64().unwrap_or_default(),
                        g["serial"].as_str().unwrap_or_default(),
                        g["key_id"].as_str().unwrap_or_default(),
                        day("not_before"),
                        day("not_after"),
                    );
                }
            }
            Ok(())
        }
        Command::Root {
            hierarchy: Some(RootOf::Ca(h)),
            all: true,
            json,
            ..
        } => {
            let v = call(
                &cli,
                Request::RootGenerations {
                    hierarchy: Some(*h),
                },
            )?;
            let mut pem = String::new();
            for g in v["generations"].as_array().into_iter().flatten() {
                if g["expired"].as_bool() == Some(true) {
                    continue;
                }
                pem.push_str(g["pem"].as_str().unwrap_or_default());
            }
            if *json {
                println!("{}", serde_json::json!({ "pem": pem }));
            } else {
                print!("{pem}");
            }
            Ok(())
        }
        Command::Root {
            hierarchy: Some(hierarchy),
            json,
            out,
            der,
            ..
        } => {
            let v = match *hierarchy {
                RootOf::Operator => call_pf(&cli, platform::Request::OperatorRoot)?,
                RootOf::Ca(hierarchy) => call(&cli, Request::Root { hierarchy })?,
            };
            if let Some(path) = out {
                write_cert(path, v["pem"].as_str().unwrap_or_default(), *der)?;
                if *json {
                    println!(
                        "{}",
                        serde_json::json!({ "out": path.display().to_string(), "der": der })
                    );
                }
                return Ok(());
            }
            if *json {
                println!("{}", serde_json::json!({ "pem": v["pem"] }));
            } else {
                print!("{}", v["pem"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::Resident(rc) => resident(&cli, rc),
        Command::Phone(cmd) => phone::run(&cli, cmd),
        Command::Tsa(cmd) => tsa::run(&cli, cmd),
        Command::Issue {
            resident,
            kind,
            csr,
            out,
            der,
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
                write_cert(path, &issued.pem, *der)?;
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
            yes,
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
                return revoke_batch(&cli, file, *hierarchy, *dry_run, *yes, *json, revoke_in);
            }
            let serial = serial.clone().unwrap_or_default();
            if *dry_run || confirm::will_ask(*yes) {
                let v = call(
                    &cli,
                    Request::RevocationCheck {
                        serials: vec![serial.clone()],
                        hierarchy: *hierarchy,
                    },
                )?;
                let c = &v["checked"][0];
                if let Some(e) = c["error"].as_str() {
                    return Err(Error::Invalid(e.to_owned()).into());
                }
                let what = format!(
                    "would {} {}:{} ({}, now {})",
                    if *reason == Reason::CertificateHold {
                        "hold"
                    } else {
                        "revoke"
                    },
                    c["hierarchy"].as_str().unwrap_or_default(),
                    c["serial"].as_str().unwrap_or_default(),
                    reason,
                    c["status"].as_str().unwrap_or_default()
                );
                if *dry_run {
                    let v = serde_json::json!({ "dry_run": true, "checked": v["checked"] });
                    return print(*json, &v, |_| format!("{what}; dry run: nothing changed"));
                }
                confirm::ask(*yes, &what)?;
            }
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
            out,
            der,
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
            if let Some(path) = out {
                write_cert(path, &v.pem, *der)?;
            }
            print(*json, &v, |v| {
                let history: String = v
                    .history
                    .iter()
                    .map(|c| {
                        let reason = c.status.reason.map(|r| format!(" ({r})"));
                        format!(
                            "\n    {} {}{}",
                            when(c.at),
                            c.status.state.as_str(),
                            reason.unwrap_or_default()
                        )
                    })
                    .collect();
                format!(
                    "{} {} {}\n  status: {}{}\n  holder: {}\n  partition: {}\n  valid: {} .. {}{}\n{}",
                    v.hierarchy,
                    v.kind.as_str(),
                    v.serial,
                    v.status.as_str(),
                    v.reason.map(|r| format!(" ({r}) since {}", v.revoked_at.map(when).unwrap_or_default())).unwrap_or_default(),
                    v.holder.as_deref().unwrap_or("-"),
                    v.partition.as_ref().map_or_else(|| "CA".into(), |p| p.path()),
                    when(v.not_before),
                    when(v.not_after),
                    if history.is_empty() { String::new() } else { format!("\n  history:{history}") },
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
        Command::Store(StoreCommand::Backup { out, json }) => backup::backup(&cli, out, *json),
        Command::Store(StoreCommand::Restore { file, json }) => {
            backup::restore(file, &cli.data, *json)
        }
        Command::Store(StoreCommand::Migrate { to, json }) => {
            let n = crate::store::migrate(&cli.data, to)?;
            print(*json, &n, |n| {
                format!(
                    "copied {} certificates ({} revoked or held, {} status changes), {} residents, {} scheduled events, \
                     {} audit records, {} operators, {} service providers, {} consents, \
                     {} access-log entries, {} CRL states, {} blocked keys, {} audit checkpoints; {} now uses PostgreSQL \
                     (store.toml); \
                     the sled store in db/ is left as it was, unused",
                    n.certificates,
                    n.revoked_or_held,
                    n.status_changes,
                    n.residents,
                    n.scheduled,
                    n.audit_records,
                    n.operators,
                    n.service_providers,
                    n.consents,
                    n.access_entries,
                    n.crl_states,
                    n.blocked_keys,
                    n.checkpoints,
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
        Command::OcspSigner(OcspSignerCommand::Compromise {
            hierarchy,
            approvers,
            json,
        }) => {
            let approvals = approvers.collect(
                ca::authority::renew::COMPROMISE_CEREMONY,
                &hierarchy.to_string(),
                clock()?.now(),
            )?;
            let v = call(
                &cli,
                Request::OcspSignerCompromise {
                    hierarchy: *hierarchy,
                    approvals,
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
        Command::Audit(AuditCommand::Verify {
            checkpoints: true,
            json,
        }) => {
            let v = call(&cli, Request::AuditVerify)?;
            let c = call_pf(&cli, platform::Request::AuditVerifyCheckpoints)?;
            let mut all = v.clone();
            all["checkpoints"] = c["checkpoints"].clone();
            all["proven_to"] = c["proven_to"].clone();
            print(*json, &all, |a| {
                format!(
                    "audit chain intact: {} records; indexes consistent for {} certificates; \
                     {} signed checkpoint(s) verified{}",
                    a["records"],
                    a["certificates_checked"],
                    a["checkpoints"],
                    match a["proven_to"].as_u64() {
                        Some(n) => format!(", the chain up to record {n} was not rewritten"),
                        None => " (none yet: nothing is proven beyond the chain itself)".into(),
                    }
                )
            })
        }
        Command::Audit(AuditCommand::Checkpoint { json }) => {
            let v = call_pf(&cli, platform::Request::AuditCheckpoint)?;
            print(*json, &v, |v| match v["checkpoint"].as_object() {
                Some(c) => format!(
                    "checkpoint signed: record {} hash {}",
                    c["seq"],
                    c["hash"].as_str().unwrap_or_default()
                ),
                None => "nothing new since the last checkpoint".into(),
            })
        }
        Command::Audit(AuditCommand::Checkpoints { export, json }) => {
            let v = call_pf(&cli, platform::Request::AuditCheckpoints)?;
            let list: Vec<ca::checkpoint::Checkpoint> = typed(v["checkpoints"].clone())?;
            if let Some(path) = export {
                let out = checkpoint_export(&list, v["operator_root_pem"].as_str())?;
                officer::write_new(path, &out, 0o644)?;
            }
            print(*json, &v, |_| {
                let mut lines: Vec<String> = list
                    .iter()
                    .map(|c| format!("{:>6} {} {}", c.seq, when(c.at), c.hash))
                    .collect();
                if let Some(p) = export {
                    lines.push(format!(
                        "{} checkpoint(s) written to {}",
                        list.len(),
                        p.display()
                    ));
                }
                lines.join("\n")
            })
        }
        Command::Audit(AuditCommand::Verify { json, .. }) => {
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
            public_http,
            verifiers_https,
            http,
            pf_https,
            portal,
            tsa,
            admin_https,
            role,
            node,
        } => {
            let mut cfg = match config {
                Some(p) => crate::serve::Config::load(p)?,
                None => crate::serve::Config::default(),
            };
            if http.is_some() {
                cfg.listen.http = http.clone();
                cfg.listen.public_http = None;
            }
            if public_http.is_some() {
                cfg.listen.public_http = public_http.clone();
                cfg.listen.http = None;
            }
            if verifiers_https.is_some() {
                cfg.listen.verifiers_https = verifiers_https.clone();
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
            if admin_https.is_some() {
                cfg.listen.admin_https = admin_https.clone();
            }
            let policy_path = cli.data.join("policy.toml");
            let policy_text = std::fs::read_to_string(&policy_path)
                .map_err(|_| Error::NoDataDir(cli.data.display().to_string()))?;
            let policy = policies::Policy::from_toml(&policy_text).map_err(Error::from)?;
            let settings = cfg.validate(&cli.data, &policy)?;
            // With the CA keys in a token (DIR/hsm.toml) the PIN guards them, not a passphrase.
            let in_token = cli.data.join(ca::hsm::CONFIG_FILE).exists();
            let pass = match passphrase(cli.passphrase_file.as_deref())? {
                Some(p) => p,
                None if in_token => Vec::new(),
                None => return Err(Error::NoPassphrase.into()),
            };
            use crate::serve::role::{node_name, run_edge, Role};
            match role {
                Role::All => crate::serve::run(&cli.data, Some(pass), settings),
                Role::Ca => {
                    let node = node_name(node.as_deref());
                    crate::serve::run_node(&cli.data, Some(pass), settings, Some(node))
                }
                Role::Edge => run_edge(&cli.data, pass, settings, node.as_deref()),
            }
        }
        Command::Edge(EdgeCommand::Export {
            out,
            store,
            edge_passphrase_file,
            node,
            primary,
            json,
        }) => {
            let ca_pass = passphrase(cli.passphrase_file.as_deref())?.ok_or(Error::NoPassphrase)?;
            let edge_pass = passphrase(Some(edge_passphrase_file))?.ok_or(Error::NoPassphrase)?;
            let options = crate::serve::role::ExportOptions {
                store: store.clone(),
                node: node.clone(),
                primary: primary.clone(),
            };
            let e = crate::serve::role::export(&cli.data, out, &options, &ca_pass, &edge_pass)?;
            print(*json, &e, |e| {
                format!(
                    "edge directory {} made ({} files, no root key), reading {}; start it with \
                     `jpki --data {} serve --role edge --http ADDR` and the edge passphrase",
                    e.dir.display(),
                    e.files.len(),
                    crate::serve::role::redacted(&e.store),
                    e.dir.display()
                )
            })
        }
        Command::Verify(args) => verify::verify(args, clock()?.now()),
        Command::VerifyLogin(args) => verify::verify_login(args, clock()?.now()),
        Command::Crl(CrlCommand::Publish { out, json }) => {
            let publisher = local_publisher(&cli)?;
            let now = clock()?.now();
            // the pass alone, without opening the store (benchmarks compare the two)
            let started = std::time::Instant::now();
            let index = publisher
                .publish_all(out, now)
                .map_err(|e| crate::Error::Serve(format!("CRL publication: {e}")))?;
            let pass = started.elapsed().as_secs_f64();
            let dir = out.canonicalize().unwrap_or_else(|_| out.clone());
            crate::serve::crl_status::record_export(
                &cli.data,
                &crate::serve::crl_status::Export {
                    dir: dir.display().to_string(),
                    at: now,
                    crls: index.len(),
                    entries: index.iter().map(|i| i.entries).sum(),
                },
            )?;
            // index.json keeps its published camelCase; the CLI's JSON is snake_case.
            let crls = snake_keys(
                serde_json::to_value(&index).map_err(|e| Error::Invalid(e.to_string()))?,
            );
            print(*json, &serde_json::json!({ "crls": crls }), |_| {
                let entries: u64 = index.iter().map(|i| i.entries).sum();
                format!(
                    "published {} CRLs ({entries} entries) and index.json to {} in {pass:.2} s",
                    index.len(),
                    out.display()
                )
            })
        }
        Command::Crl(CrlCommand::Status { json }) => {
            let v = match open_local(&cli)? {
                Some(a) => {
                    let a = Arc::new(a);
                    let parts = publisher_over(&cli, Arc::clone(&a))?;
                    let crl_dir = cli.data.join(&crate::serve::Config::default().crl.dir);
                    let now = clock()?.now();
                    crate::serve::crl_status::status(&a, &parts.publisher, &crl_dir, false, now)?
                }
                // A running server answers from its own publisher.
                None => ca::api::call_json(
                    &cli.data,
                    &serde_json::json!({ "op": crate::serve::crl_status::OP }),
                )?,
            };
            print(*json, &v, |v| {
                let mut out = format!(
                    "{:<8} {:>24} {:>7} {:>9} {:>8} {:>9} {:>5}",
                    "kind", "partition", "number", "age (s)", "entries", "bytes", "dirty"
                );
                let rows = v["crls"].as_array().cloned().unwrap_or_default();
                for r in &rows {
                    let cell = |k: &str| {
                        r[k].as_u64()
                            .map(|n| n.to_string())
                            .or_else(|| r[k].as_i64().map(|n| n.to_string()))
                            .unwrap_or_else(|| "-".into())
                    };
                    out.push_str(&format!(
                        "\n{:<8} {:>24} {:>7} {:>9} {:>8} {:>9} {:>5}",
                        r["hierarchy"].as_str().unwrap_or_default(),
                        r["partition"].as_str().unwrap_or_default(),
                        cell("number"),
                        cell("age_seconds"),
                        cell("entries"),
                        cell("size"),
                        if r["dirty"] == true { "yes" } else { "" }
                    ));
                }
                out.push_str(&format!(
                    "\n{} CRL(s), {} waiting to be published; {} from {}",
                    rows.len(),
                    v["dirty"],
                    if v["server"] == true {
                        "served by the running jpki serve"
                    } else {
                        "no server running; last served"
                    },
                    v["served_from"].as_str().unwrap_or_default()
                ));
                match v["last_export"].as_object() {
                    Some(e) => out.push_str(&format!(
                        "\nlast `jpki crl publish`: {} CRLs to {} at {}",
                        e["crls"],
                        e["dir"].as_str().unwrap_or_default(),
                        e["at"].as_str().unwrap_or_default()
                    )),
                    None => out.push_str("\nnever exported with `jpki crl publish`"),
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
        Command::Verifier(cmd) => {
            let out = verifier::run(cmd, &|r| call(&cli, r), &|r| call_pf(&cli, r))?;
            println!("{out}");
            Ok(())
        }
        Command::Operator(cmd) => {
            let v = call_pf(&cli, operator::operator_request(cmd)?)?;
            println!("{}", operator::operator_output(cmd, &v)?);
            Ok(())
        }
        Command::Report(cmd) => report::run(&cli, cmd),
        Command::Sp(cmd) => {
            let v = call_pf(&cli, operator::sp_request(cmd)?)?;
            println!("{}", operator::sp_output(cmd, &v)?);
            Ok(())
        }
        // Token and completions commands were dispatched above, before any store is opened.
        Command::Token(_) | Command::Ceremony(_) | Command::Completions { .. } => Ok(()),
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
        Command::Bench(BenchCommand::Export { data, out }) => {
            let n = crate::bench_export::run(data, out)?;
            println!(
                "exported {} authentication ({} revoked or held) and {} signing certificates to {}",
                n.auth,
                n.revoked_or_held,
                n.signing,
                out.display()
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Populate {
            data,
            certificates,
            revoked_fraction,
            municipalities,
            store,
            threads,
            key_pool,
            batch,
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
                batch: *batch,
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
        Command::Bench(BenchCommand::Nodes { count, json }) => {
            let r = crate::bench_nodes::nodes(*count)?;
            print(*json, &r, |r| {
                let mut lines = vec![format!(
                    "{} revocations, {:.0}/s acknowledged by one writer (fsync on)",
                    r.revocations, r.revocations_per_second
                )];
                for e in &r.edges {
                    lines.push(format!(
                        "edge on the {} ({}): revocation to edge p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                        e.edge,
                        if e.notify {
                            format!("LISTEN/NOTIFY, {} notifications", e.notifications)
                        } else {
                            "polling".to_owned()
                        },
                        e.p50_ms,
                        e.p99_ms,
                        e.max_ms
                    ));
                }
                lines.join("\n")
            })
        }
    }
}

fn resident(cli: &Cli, rc: &ResidentCommand) -> Result<()> {
    let (who, event) = match rc {
        ResidentCommand::AccessLog(args) => {
            let v = call_pf(cli, operator::access_log_request(args))?;
            println!("{}", operator::access_log_output(args, &v)?);
            return Ok(());
        }
        ResidentCommand::PinReset {
            id,
            token,
            kind,
            counter_key,
            new_pin,
            json,
        } => {
            // Everything is checked before the register records anything or the token changes.
            let mut t = holder_token::Token::open(token)?;
            let Some(municipality) = t.counter_municipality().map(str::to_owned) else {
                return Err(holder_token::Error::NoCounter.into());
            };
            let pass = passphrase(cli.passphrase_file.as_deref())?.ok_or(Error::NoPassphrase)?;
            let key = holder_token::counter::CounterKey::open(counter_key, &pass)?;
            if key.municipality != municipality {
                return Err(holder_token::Error::CounterMismatch {
                    token: municipality,
                    key: key.municipality.clone(),
                }
                .into());
            }
            let certificate_serial = t.certificate(*kind).and_then(|der| {
                x509_parser::parse_x509_certificate(der)
                    .ok()
                    .map(|(_, c)| hex::encode_upper(c.raw_serial()))
            });
            let new_pin = holder_token::prompt::pin(new_pin.clone(), *kind, "new", true)?;
            holder_token::pin::normalize(*kind, &new_pin)?;
            let v = call(
                cli,
                Request::CounterPinReset(ca::authority::counter::CounterReset {
                    resident: id.clone(),
                    kind: *kind,
                    municipality,
                    certificate_serial,
                }),
            )?;
            t.counter_reset(*kind, &key, &new_pin)?;
            return print(*json, &v, |v| {
                format!(
                    "{}: the {} PIN was reset at the counter of {} (recorded in the audit trail); {} tries",
                    id,
                    kind,
                    v["municipality"].as_str().unwrap_or_default(),
                    holder_token::pin::max_tries(*kind)
                )
            });
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
            yes,
            json,
        } => {
            let report = match import::read(file)? {
                Err(refused) => {
                    serde_json::json!({ "accepted": [], "refused": refused, "dry_run": dry_run })
                }
                Ok(rows) if !*dry_run && confirm::will_ask(*yes) => {
                    // Checked as a whole first; the question only when every row is good.
                    let checked = call(
                        cli,
                        Request::ResidentImport {
                            rows: rows.clone(),
                            dry_run: true,
                        },
                    )?;
                    if checked["refused"].as_array().is_some_and(|r| !r.is_empty()) {
                        checked
                    } else {
                        confirm::ask(
                            *yes,
                            &format!(
                                "{} resident(s) from {} will be registered.",
                                rows.len(),
                                file.display()
                            ),
                        )?;
                        call(
                            cli,
                            Request::ResidentImport {
                                rows,
                                dry_run: false,
                            },
                        )?
                    }
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
        ResidentCommand::Death { who, .. } => (who, Event::Death),
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
        ResidentCommand::CardRenew {
            who, card_expiry, ..
        } => (
            who,
            Event::CardRenew {
                card_expiry: *card_expiry,
            },
        ),
        ResidentCommand::Withdraw { who, kind } => (who, Event::Withdraw { kind: *kind }),
    };
    if let ResidentCommand::Death { confirm, .. } | ResidentCommand::CardRenew { confirm, .. } = rc
    {
        if confirm.dry_run || confirm::will_ask(confirm.yes) {
            let preview: EventOutcome = typed(call(
                cli,
                Request::EventPreview {
                    id: who.id.clone(),
                    event: event.clone(),
                },
            )?)?;
            let mut what = format!("{}: {} would be recorded", preview.resident, preview.event);
            for r in &preview.revocations {
                what.push_str(&format!(
                    "\n  would {} {}:{} ({})",
                    if r.status == ca::records::State::Held {
                        "hold"
                    } else {
                        "revoke"
                    },
                    r.hierarchy,
                    r.serial,
                    r.reason
                ));
            }
            if confirm.dry_run {
                let mut v =
                    serde_json::to_value(&preview).map_err(|e| Error::Invalid(e.to_string()))?;
                v["dry_run"] = true.into();
                return print(who.json, &v, |_| {
                    format!("{what}\ndry run: nothing changed")
                });
            }
            confirm::ask(confirm.yes, &what)?;
        }
    }
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
