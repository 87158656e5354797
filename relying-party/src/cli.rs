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
    /// The trust anchor: the signing hierarchy's root certificate (PEM or DER).
    #[arg(long, value_name = "ROOT.pem")]
    pub trust: PathBuf,
    /// The signature (CMS SignedData, .p7s).
    #[arg(long, value_name = "FILE.p7s")]
    pub sig: PathBuf,
    /// The signed content, for a detached signature.
    #[arg(long, value_name = "FILE")]
    pub content: Option<PathBuf>,
    /// Judge validity at this RFC 3339 time. Default: the signingTime attribute (asserted by
    /// the signer, not a trusted timestamp), else now. Revocation is always judged now.
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

/// Runs `jpki verify` on the system clock. `Err` only for unusable arguments (unreadable
/// files, bad trust anchor, bad time, bad policy file); a bad signature is an `Ok` report
/// with an invalid verdict.
pub fn run_verify(args: &VerifyArgs) -> Result<Report, Error> {
    run_verify_at(args, SystemClock::now())
}

/// [`run_verify`] with the wall clock given (e.g. the CLI's `$JPKI_TEST_NOW` clock).
pub fn run_verify_at(args: &VerifyArgs, now: OffsetDateTime) -> Result<Report, Error> {
    let v = verifier(&args.trust, &args.status)?;
    let sig = read(&args.sig)?;
    let content = args.content.as_deref().map(read).transpose()?;
    let at = at(&args.at)?;
    Ok(v.verify_document(&sig, content.as_deref(), at, now))
}

/// Runs `jpki verify-login` on the system clock; same error contract as [`run_verify`].
pub fn run_verify_login(args: &VerifyLoginArgs) -> Result<Report, Error> {
    run_verify_login_at(args, SystemClock::now())
}

/// [`run_verify_login`] with the wall clock given.
pub fn run_verify_login_at(args: &VerifyLoginArgs, now: OffsetDateTime) -> Result<Report, Error> {
    let v = verifier(&args.trust, &args.status)?;
    let cert = read(&args.cert)?;
    let challenge = read(&args.challenge)?;
    let sig = read(&args.sig)?;
    let at = at(&args.at)?;
    Ok(v.verify_login(&cert, &challenge, &sig, at, now))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::testutil::Pki;

    #[derive(Parser)]
    enum Cmd {
        Verify(VerifyArgs),
        VerifyLogin(VerifyLoginArgs),
    }

    fn parse(args: &[&str]) -> Cmd {
        Cmd::try_parse_from(std::iter::once("jpki").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn verify_runs_from_files_and_reports_json() {
        let pki = Pki::get();
        let t = tempfile::tempdir().unwrap();
        let sig = t.path().join("doc.p7s");
        std::fs::write(&sig, pki.sign("sign", "good", &[])).unwrap();
        let (root, crl, doc, sig) = (
            pki.path("sign/root.pem").display().to_string(),
            pki.path("sign/crl.pem").display().to_string(),
            pki.path("doc.txt").display().to_string(),
            sig.display().to_string(),
        );
        let Cmd::Verify(a) = parse(&[
            "verify",
            "--trust",
            &root,
            "--sig",
            &sig,
            "--content",
            &doc,
            "--crl",
            &crl,
            "--json",
        ]) else {
            panic!("verify expected")
        };
        assert!(a.json);
        let r = run_verify(&a).unwrap();
        assert!(r.is_valid(), "{}", r.render(false));
        let json: serde_json::Value = serde_json::from_str(&r.render(true)).unwrap();
        assert_eq!(json["verdict"], "valid");
        assert_eq!(json["checks"].as_array().unwrap().len(), 6);
        assert!(json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "pass"));
        // A wrong document: Ok(report) with an invalid verdict and exit code 1.
        let Cmd::Verify(a) = parse(&[
            "verify",
            "--trust",
            &root,
            "--sig",
            &sig,
            "--content",
            &root,
            "--crl",
            &crl,
        ]) else {
            panic!("verify expected")
        };
        let r = run_verify(&a).unwrap();
        assert_eq!(r.exit_code(), 1);
        assert!(
            r.render(false).contains("[FAIL] content-signature"),
            "{}",
            r.render(false)
        );
        // --ocsp and --crl together are refused by clap.
        assert!(Cmd::try_parse_from([
            "jpki", "verify", "--trust", "r", "--sig", "s", "--ocsp", "http://x", "--crl", "c"
        ])
        .is_err());
    }

    #[test]
    fn unusable_arguments_are_errors() {
        let pki = Pki::get();
        let root = pki.path("sign/root.pem").display().to_string();
        let Cmd::Verify(a) = parse(&["verify", "--trust", &root, "--sig", "/nonexistent.p7s"])
        else {
            panic!()
        };
        assert!(matches!(run_verify(&a), Err(Error::Read { .. })));
        let doc = pki.path("doc.txt").display().to_string();
        let Cmd::Verify(a) = parse(&["verify", "--trust", &doc, "--sig", &doc]) else {
            panic!()
        };
        assert!(matches!(run_verify(&a), Err(Error::NotACertificate { .. })));
        let Cmd::Verify(a) = parse(&[
            "verify",
            "--trust",
            &root,
            "--sig",
            &doc,
            "--at",
            "yesterday",
        ]) else {
            panic!()
        };
        assert!(matches!(run_verify(&a), Err(Error::BadTime(_))));
        let Cmd::VerifyLogin(a) = parse(&[
            "verify-login",
            "--trust",
            &root,
            "--cert",
            &root,
            "--challenge",
            &doc,
            "--sig",
            &doc,
            "--policy",
            &doc,
        ]) else {
            panic!()
        };
        assert!(matches!(run_verify_login(&a), Err(Error::Policy(_))));
    }

    #[test]
    fn verify_login_prints_the_account_key() {
        let pki = Pki::get();
        let t = tempfile::tempdir().unwrap();
        let challenge = t.path().join("challenge");
        std::fs::write(&challenge, b"login 42").unwrap();
        let key = pki.path("auth/auth.key").display().to_string();
        let sig = t.path().join("sig");
        std::fs::write(
            &sig,
            crate::testutil::openssl(
                &pki.dir,
                &[
                    "dgst",
                    "-sha256",
                    "-sign",
                    &key,
                    &challenge.display().to_string(),
                ],
            ),
        )
        .unwrap();
        let (root, cert) = (
            pki.path("auth/root.pem").display().to_string(),
            pki.path("auth/auth.pem").display().to_string(),
        );
        let (challenge, sig) = (challenge.display().to_string(), sig.display().to_string());
        let Cmd::VerifyLogin(a) = parse(&[
            "verify-login",
            "--trust",
            &root,
            "--cert",
            &cert,
            "--challenge",
            &challenge,
            "--sig",
            &sig,
            "--ocsp",
            "http://127.0.0.1:9/ocsp",
            "--soft-fail",
            "--at",
            "2027-01-01T00:00:00+09:00",
        ]) else {
            panic!()
        };
        let r = run_verify_login(&a).unwrap();
        assert!(r.is_valid(), "{}", r.render(false));
        assert_eq!(r.time_source, "--at");
        let key = r.account_key.clone().unwrap();
        assert!(!key.is_empty() && key.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(r
            .render(false)
            .contains(&format!("account key (certificate serial): {key}")));
    }
}
