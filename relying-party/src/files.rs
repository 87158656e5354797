//! Verifying from files, as `jpki verify` and `jpki verify-login` do: read the trust anchor,
//! the signature, the content or challenge and the status source named by path or URL, run
//! the [`Verifier`], return the [`Report`]. The command line itself (clap arguments, printing,
//! the exit code) is the `jpki` binary's (`src/cli/verify.rs`); the caller prints the report
//! and exits non-zero unless the verdict is valid.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::time::OffsetDateTime;

use crate::report::Report;
use crate::verify::{StatusSource, Verifier};
use crate::Error;

/// How the certificate status is learned (shared by both verifications).
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// OCSP responder URL (http://…); a fresh nonce is sent and must be echoed.
    pub ocsp: Option<String>,
    /// CRL file (DER or PEM) or http:// URL, or a CRL publisher's `index.json` (file or URL:
    /// the certificate's CRL is looked up there by its distribution point's directoryName,
    /// which is all a real-profile certificate names). Without --ocsp and --crl, the
    /// certificate's HTTP CRL distribution point is fetched.
    pub crl: Option<String>,
    /// Accept a certificate whose status cannot be learned — responder or CRL unreachable,
    /// stale, badly signed, wrong nonce, unknown — as a warning. A known revocation or hold
    /// still fails.
    pub soft_fail: bool,
    /// Policy file: accept exactly its certificatePolicies OIDs (default: JPKI production and test).
    pub policy_file: Option<PathBuf>,
}

/// A CMS SignedData (attached or detached; DER, PEM or BER) and what to check it against.
#[derive(Debug, Clone)]
pub struct DocumentFiles {
    /// The trust anchor: the signing hierarchy's root certificate (PEM or DER).
    pub trust: PathBuf,
    /// The signature (CMS SignedData, .p7s).
    pub sig: PathBuf,
    /// The signed content, for a detached signature.
    pub content: Option<PathBuf>,
    /// Judge validity at this RFC 3339 time. Default: the signingTime attribute (asserted by
    /// the signer, not a trusted timestamp), else now. Revocation is always judged now.
    pub at: Option<String>,
    pub status: StatusOptions,
}

/// A challenge signed with the authentication key, and what to check it against.
#[derive(Debug, Clone)]
pub struct LoginFiles {
    /// The trust anchor: the authentication hierarchy's root certificate (PEM or DER).
    pub trust: PathBuf,
    /// The authentication certificate (PEM or DER).
    pub cert: PathBuf,
    /// The challenge bytes that were signed.
    pub challenge: PathBuf,
    /// The raw RSA PKCS#1 v1.5 SHA-256 signature over the challenge.
    pub sig: PathBuf,
    /// Judge validity at this RFC 3339 time instead of now.
    pub at: Option<String>,
    pub status: StatusOptions,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::read(path, e))
}

pub fn verifier(trust: &Path, status: &StatusOptions) -> Result<Verifier, Error> {
    let policy = match &status.policy_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::read(p, e))?;
            Some(policies::Policy::from_toml(&text)?)
        }
        None => None,
    };
    let source = match (&status.ocsp, &status.crl) {
        (Some(url), _) => StatusSource::Ocsp(url.clone()),
        // A publisher's index: the certificate's CRL is found by its distribution point.
        (None, Some(c)) if c.ends_with("index.json") => StatusSource::CrlIndex(c.clone()),
        (None, Some(c)) if c.starts_with("http://") || c.starts_with("https://") => {
            StatusSource::CrlUrl(c.clone())
        }
        (None, Some(file)) => StatusSource::CrlBytes(Arc::new(read(Path::new(file))?)),
        (None, None) => StatusSource::DistributionPoint,
    };
    Ok(Verifier::new(&read(trust)?, policy.as_ref(), source)?.soft_fail(status.soft_fail))
}

fn at(s: &Option<String>) -> Result<Option<OffsetDateTime>, Error> {
    Ok(s.as_deref().map(crate::cert::parse_time).transpose()?)
}

/// Verifies a signed document at `now` (revocation is always judged now; validity at
/// `at`, else the signingTime, else now). `Err` only for unusable input (unreadable files,
/// bad trust anchor, bad time, bad policy file); a bad signature is an `Ok` report with an
/// invalid verdict.
pub fn verify_document(args: &DocumentFiles, now: OffsetDateTime) -> Result<Report, Error> {
    let v = verifier(&args.trust, &args.status)?;
    let sig = read(&args.sig)?;
    let content = args.content.as_deref().map(read).transpose()?;
    let at = at(&args.at)?;
    Ok(v.verify_document(&sig, content.as_deref(), at, now))
}

/// Verifies a login at `now` (validity at `at`, else now); same error contract as
/// [`verify_document`].
pub fn verify_login(args: &LoginFiles, now: OffsetDateTime) -> Result<Report, Error> {
    let v = verifier(&args.trust, &args.status)?;
    let cert = read(&args.cert)?;
    let challenge = read(&args.challenge)?;
    let sig = read(&args.sig)?;
    let at = at(&args.at)?;
    Ok(v.verify_login(&cert, &challenge, &sig, at, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Pki;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn document(trust: &Path, sig: &Path, content: Option<&Path>) -> DocumentFiles {
        DocumentFiles {
            trust: trust.to_owned(),
            sig: sig.to_owned(),
            content: content.map(Path::to_owned),
            at: None,
            status: StatusOptions::default(),
        }
    }

    #[test]
    fn verify_runs_from_files_and_reports_json() {
        let pki = Pki::get();
        let t = tempfile::tempdir().unwrap();
        let sig = t.path().join("doc.p7s");
        std::fs::write(&sig, pki.sign("sign", "good", &[])).unwrap();
        let (root, crl, doc) = (
            pki.path("sign/root.pem"),
            pki.path("sign/crl.pem"),
            pki.path("doc.txt"),
        );
        let mut a = document(&root, &sig, Some(&doc));
        a.status.crl = Some(crl.display().to_string());
        let r = verify_document(&a, now()).unwrap();
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
        a.content = Some(root.clone());
        let r = verify_document(&a, now()).unwrap();
        assert_eq!(r.exit_code(), 1);
        assert!(
            r.render(false).contains("[FAIL] content-signature"),
            "{}",
            r.render(false)
        );
    }

    #[test]
    fn unusable_input_is_an_error() {
        let pki = Pki::get();
        let (root, doc) = (pki.path("sign/root.pem"), pki.path("doc.txt"));
        let a = document(&root, Path::new("/nonexistent.p7s"), None);
        assert!(matches!(
            verify_document(&a, now()),
            Err(Error::Read { .. })
        ));
        let a = document(&doc, &doc, None);
        assert!(matches!(
            verify_document(&a, now()),
            Err(Error::SignedData(
                signed_data::Error::NotACertificate { .. }
            ))
        ));
        let mut a = document(&root, &doc, None);
        a.at = Some("yesterday".into());
        assert!(matches!(
            verify_document(&a, now()),
            Err(Error::SignedData(signed_data::Error::BadTime(_)))
        ));
        let a = LoginFiles {
            trust: root.clone(),
            cert: root,
            challenge: doc.clone(),
            sig: doc.clone(),
            at: None,
            status: StatusOptions {
                policy_file: Some(doc),
                ..StatusOptions::default()
            },
        };
        assert!(matches!(verify_login(&a, now()), Err(Error::Policy(_))));
    }

    #[test]
    fn verify_login_gives_the_account_key() {
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
        let a = LoginFiles {
            trust: pki.path("auth/root.pem"),
            cert: pki.path("auth/auth.pem"),
            challenge,
            sig,
            at: Some("2027-01-01T00:00:00+09:00".into()),
            status: StatusOptions {
                ocsp: Some("http://127.0.0.1:9/ocsp".into()),
                soft_fail: true,
                ..StatusOptions::default()
            },
        };
        let r = verify_login(&a, now()).unwrap();
        assert!(r.is_valid(), "{}", r.render(false));
        assert_eq!(r.time_source, "--at");
        let key = r.account_key.clone().unwrap();
        assert!(!key.is_empty() && key.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(r
            .render(false)
            .contains(&format!("account key (certificate serial): {key}")));
    }
}
