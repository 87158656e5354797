//! `jpki verify` and `jpki verify-login`: the relying party's checks
//! ([`relying_party::verify_document`], [`relying_party::verify_login`]) from the command
//! line. The report is printed (as JSON with `--json`); an invalid verdict is an error, so the
//! command exits non-zero.

use std::path::PathBuf;

use relying_party::{DocumentFiles, LoginFiles, Outcome, Report, StatusOptions};
use time::OffsetDateTime;

use crate::Result;

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
    /// Accept a certificate whose status cannot be learned — responder or CRL unreachable,
    /// stale, badly signed, wrong nonce, unknown — as a warning. A known revocation or hold
    /// still fails.
    #[arg(long)]
    pub soft_fail: bool,
    /// Policy file: accept exactly its certificatePolicies OIDs (default: JPKI production and test).
    #[arg(long = "policy", value_name = "FILE")]
    pub policy_file: Option<PathBuf>,
}

/// `jpki verify`: a CMS SignedData (attached or detached; DER, PEM or BER).
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The trust anchor: the signing hierarchy's root certificate (PEM or DER). With
    /// --evidence: optional, and then it must be the evidence's.
    #[arg(long, value_name = "ROOT.pem", required_unless_present = "evidence")]
    pub trust: Option<PathBuf>,
    /// The signature (CMS SignedData, .p7s).
    #[arg(long, value_name = "FILE.p7s", required_unless_present = "evidence")]
    pub sig: Option<PathBuf>,
    /// The signed content, for a detached signature.
    #[arg(long, value_name = "FILE")]
    pub content: Option<PathBuf>,
    /// Judge chain, validity and revocation as of this moment: an RFC 3339 TIME, the
    /// `signing-time` attribute (the signer's claim), or the signature `timestamp` (trusted,
    /// needs --tsa-root). Revocation information must then be issued after it. Without a
    /// trusted time the report says so and judges as of now. Without --at: validity at the
    /// signingTime (else now), revocation now.
    #[arg(long, value_name = "TIME|signing-time|timestamp")]
    pub at: Option<String>,
    /// A TSA root certificate trusted for signature time-stamps (PEM or DER); repeatable.
    #[arg(long, value_name = "TSA-ROOT.pem")]
    pub tsa_root: Vec<PathBuf>,
    /// Write everything the verdict rested on to FILE (docs/evidence.md); implies --at
    /// timestamp unless --at is given.
    #[arg(long, value_name = "FILE", conflicts_with = "evidence")]
    pub evidence_out: Option<PathBuf>,
    /// Check an evidence file again, offline (no server needed, also after the certificates
    /// expired); the verdict must be the recorded one.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["sig", "content", "at", "tsa_root"])]
    pub evidence: Option<PathBuf>,
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

impl From<&StatusArgs> for StatusOptions {
    fn from(a: &StatusArgs) -> StatusOptions {
        StatusOptions {
            ocsp: a.ocsp.clone(),
            crl: a.crl.clone(),
            soft_fail: a.soft_fail,
            policy_file: a.policy_file.clone(),
        }
    }
}

impl From<&VerifyArgs> for DocumentFiles {
    fn from(a: &VerifyArgs) -> DocumentFiles {
        DocumentFiles {
            trust: a.trust.clone().unwrap_or_default(),
            sig: a.sig.clone().unwrap_or_default(),
            content: a.content.clone(),
            at: a.at.clone(),
            status: (&a.status).into(),
        }
    }
}

impl From<&VerifyLoginArgs> for LoginFiles {
    fn from(a: &VerifyLoginArgs) -> LoginFiles {
        LoginFiles {
            trust: a.trust.clone(),
            cert: a.cert.clone(),
            challenge: a.challenge.clone(),
            sig: a.sig.clone(),
            at: a.at.clone(),
            status: (&a.status).into(),
        }
    }
}

/// Runs `jpki verify` at `now` and prints the report.
pub fn verify(args: &VerifyArgs, now: OffsetDateTime) -> Result<()> {
    if let Some(file) = &args.evidence {
        let trust = args.trust.as_deref().map(read).transpose()?;
        let report = relying_party::evidence::recheck(&read(file)?, trust.as_deref())?;
        return verdict(report, args.json);
    }
    if args.at.is_none() && args.evidence_out.is_none() {
        return verdict(
            relying_party::verify_document(&args.into(), now)?,
            args.json,
        );
    }
    verify_as_of(args, now)
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| relying_party::Error::Read {
            path: path.to_owned(),
            source: e,
        })
        .map_err(Into::into)
}

/// `jpki verify --at …` / `--evidence-out`: judged as of a time, with what it rested on.
fn verify_as_of(args: &VerifyArgs, now: OffsetDateTime) -> Result<()> {
    use relying_party::{Content, When};
    let files = DocumentFiles::from(args);
    let when = match &args.at {
        Some(s) => When::parse(s)?,
        None => When::Timestamp,
    };
    let v = relying_party::files::verifier(&files.trust, &files.status)?;
    let sig = read(&files.sig)?;
    let content = files.content.as_deref().map(read).transpose()?;
    let tsa_roots = args
        .tsa_root
        .iter()
        .map(|p| {
            read(p).and_then(|b| {
                relying_party::cert::certificate_der(&b, "TSA root")
                    .map_err(|e| relying_party::Error::from(e).into())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let j = v.verify_document_as_of(
        &sig,
        Content::Bytes(content.as_deref()),
        when,
        &tsa_roots,
        now,
    );
    if let Some(out) = &args.evidence_out {
        let policy = files
            .status
            .policy_file
            .as_deref()
            .map(|p| {
                std::fs::read_to_string(p).map_err(|e| {
                    crate::Error::Verify(relying_party::Error::Evidence(format!(
                        "cannot read {}: {e}",
                        p.display()
                    )))
                })
            })
            .transpose()?;
        let bytes =
            relying_party::evidence::write(&j, &sig, when, &tsa_roots, now, policy.as_deref())?;
        std::fs::write(out, bytes).map_err(|e| {
            crate::Error::Verify(relying_party::Error::Evidence(format!(
                "cannot write {}: {e}",
                out.display()
            )))
        })?;
        eprintln!("evidence written to {}", out.display());
    }
    verdict(j.report, args.json)
}

/// Runs `jpki verify-login` at `now` and prints the report.
pub fn verify_login(args: &VerifyLoginArgs, now: OffsetDateTime) -> Result<()> {
    verdict(relying_party::verify_login(&args.into(), now)?, args.json)
}

/// Prints a relying-party report; an invalid verdict is an error (non-zero exit).
fn verdict(report: Report, json: bool) -> Result<()> {
    report.print(json);
    if report.is_valid() {
        return Ok(());
    }
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.name)
        .collect();
    Err(crate::Error::Verdict(format!(
        "not valid (failed: {})",
        failed.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    enum Cmd {
        Verify(VerifyArgs),
        VerifyLogin(VerifyLoginArgs),
    }

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cmd::try_parse_from(std::iter::once("jpki").chain(args.iter().copied()))
    }

    #[test]
    fn arguments_become_the_files_to_verify() {
        let Cmd::Verify(a) = parse(&[
            "verify",
            "--trust",
            "root.pem",
            "--sig",
            "doc.p7s",
            "--content",
            "doc.xml",
            "--crl",
            "crl.pem",
            "--soft-fail",
            "--at",
            "2027-01-01T00:00:00Z",
            "--json",
        ])
        .unwrap() else {
            panic!("verify expected")
        };
        assert!(a.json);
        let f = DocumentFiles::from(&a);
        assert_eq!(f.trust, PathBuf::from("root.pem"));
        assert_eq!(f.content, Some(PathBuf::from("doc.xml")));
        assert_eq!(f.at.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(f.status.crl.as_deref(), Some("crl.pem"));
        assert!(f.status.soft_fail && f.status.ocsp.is_none());
        let Cmd::VerifyLogin(a) = parse(&[
            "verify-login",
            "--trust",
            "r",
            "--cert",
            "c",
            "--challenge",
            "ch",
            "--sig",
            "s",
            "--ocsp",
            "http://x/ocsp",
            "--policy",
            "p.toml",
        ])
        .unwrap() else {
            panic!("verify-login expected")
        };
        let f = LoginFiles::from(&a);
        assert_eq!(f.challenge, PathBuf::from("ch"));
        assert_eq!(f.status.ocsp.as_deref(), Some("http://x/ocsp"));
        assert_eq!(f.status.policy_file, Some(PathBuf::from("p.toml")));
    }

    #[test]
    fn ocsp_and_crl_together_are_refused() {
        assert!(parse(&[
            "verify", "--trust", "r", "--sig", "s", "--ocsp", "http://x", "--crl", "c"
        ])
        .is_err());
    }
}
