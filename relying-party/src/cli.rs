//! The `jpki verify` and `jpki verify-login` commands: clap arguments and the run functions.
//! The caller prints the report (`report.print(args.json)`) and exits with
//! `report.exit_code()` — non-zero unless the verdict is valid.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::time::OffsetDateTime;

use crate::report::Report;
use crate::verify::{StatusSource, Verifier};
use crate::Error;

/// The wall clock, read once at the command's edge and passed down.
pub struct SystemClock;

impl SystemClock {
    pub fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// How the certificate status is learned (shared by both commands).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StatusArgs {
    /// OCSP responder URL (http://…); a fresh nonce is sent and must be echoed.
    #[arg(long, value_name = "URL", conflicts_with = "crl")]
    pub ocsp: Option<String>,
    /// CRL file (DER or PEM) or http:// URL. Without --ocsp and --crl, the certificate's HTTP
    /// CRL distribution point is fetched.
    #[arg(long, value_name = "FILE|URL")]
    pub crl: Option<String>,
    /// Accept a certificate whose status cannot be learned (reported as a warning).
    #[arg(long)]
    pub soft_fail: bool,
    /// Policy file: accept exactly its certificatePolicies OIDs (default: JPKI production and test).
    #[arg(long = "policy", value_name = "FILE")]
    pub policy_file: Option<PathBuf>,
}

/// `jpki verify`: a CMS SignedData (attached or detached; DER, PEM or BER).
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The trust anchor: the signing hierarchy's root certificate (PEM or DER).
    #[arg(long, value_name = "ROOT.pem")]
    pub trust: PathBuf,
    /// The signature (CMS SignedData, .p7s).
    #[arg(long, value_name = "FILE.p7s")]
    pub sig: PathBuf,
    /// The signed content, for a detached signature.
    #[arg(long, value_name = "FILE")]
    pub content: Option<PathBuf>,
    /// Judge validity at this RFC 3339 time instead of the signingTime attribute / now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub status: StatusArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `jpki verify-login`: a challenge signed with the authentication key.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyLoginArgs {
    /// The trust anchor: the authentication hierarchy's root certificate (PEM or DER).
    #[arg(long, value_name = "ROOT.pem")]
    pub trust: PathBuf,
    /// The authentication certificate (PEM or DER).
    #[arg(long, value_name = "AUTH.pem")]
    pub cert: PathBuf,
    /// The challenge bytes that were signed.
    #[arg(long, value_name = "FILE")]
    pub challenge: PathBuf,
    /// The raw RSA PKCS#1 v1.5 SHA-256 signature over the challenge.
    #[arg(long, value_name = "FILE")]
    pub sig: PathBuf,
    /// Judge validity at this RFC 3339 time instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub status: StatusArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::read(path, e))
}

fn verifier(trust: &Path, status: &StatusArgs) -> Result<Verifier, Error> {
    let policy = match &status.policy_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::read(p, e))?;
            Some(policies::Policy::from_toml(&text)?)
        }
        None => None,
    };
    let source = match (&status.ocsp, &status.crl) {
        (Some(url), _) => StatusSource::Ocsp(url.clone()),
        (None, Some(c)) if c.starts_with("http://") || c.starts_with("https://") => {
            StatusSource::CrlUrl(c.clone())
        }
        (None, Some(file)) => StatusSource::CrlBytes(Arc::new(read(Path::new(file))?)),
        (None, None) => StatusSource::DistributionPoint,
    };
    Ok(Verifier::new(&read(trust)?, policy.as_ref(), source)?.soft_fail(status.soft_fail))
}

fn at(s: &Option<String>) -> Result<Option<OffsetDateTime>, Error> {
    s.as_deref().map(crate::cert::parse_time).transpose()
}

/// Runs `jpki verify`. `Err` only for unusable arguments (unreadable files, bad trust
/// anchor, bad time); a bad signature is an `Ok` report with an invalid verdict.
pub fn run_verify(args: &VerifyArgs) -> Result<Report, Error> {
    let v = verifier(&args.trust, &args.status)?;
    let sig = read(&args.sig)?;
    let content = args.content.as_deref().map(read).transpose()?;
    let at = at(&args.at)?;
    Ok(v.verify_document(&sig, content.as_deref(), at, SystemClock::now()))
}

/// Runs `jpki verify-login`; same error contract as [`run_verify`].
pub fn run_verify_login(args: &VerifyLoginArgs) -> Result<Report, Error> {
    let v = verifier(&args.trust, &args.status)?;
    let cert = read(&args.cert)?;
    let challenge = read(&args.challenge)?;
    let sig = read(&args.sig)?;
    let at = at(&args.at)?;
    Ok(v.verify_login(&cert, &challenge, &sig, at, SystemClock::now()))
}
