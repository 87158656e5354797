//! The two verifications, as a library: a signed document and a signed login challenge.
//! Each runs its named checks in order and records every outcome in a [`Report`]; once a
//! check fails, the checks that depend on it are reported as skipped.

use std::sync::Arc;

use policies::{Hierarchy, Policy};
use ::time::OffsetDateTime;
use x509_parser::prelude::*;

use crate::cert::{fmt_time, serial_hex};
use crate::crl::{RevocationList, Status};
use crate::kind::Expected;
use crate::ocsp::Query;
use crate::report::{Outcome, Report, SignerInfo};
use crate::{Error, Fetch};

/// Where the certificate status comes from.
#[derive(Clone)]
pub enum StatusSource {
    /// POST an OCSP request to this URL.
    Ocsp(String),
    /// A CRL already loaded and verified (cached across verifications).
    Crl(Arc<RevocationList>),
    /// CRL bytes (DER or PEM), verified at each check.
    CrlBytes(Arc<Vec<u8>>),
    /// Download the CRL from this URL.
    CrlUrl(String),
    /// Download the CRL named by the certificate's HTTP cRLDistributionPoint.
    DistributionPoint,
}

/// A configured relying party: one trust anchor, accepted policies, a status source.
#[derive(Clone)]
pub struct Verifier {
    root_der: Vec<u8>,
    expected: Expected,
    status: StatusSource,
    soft_fail: bool,
    fetch: Fetch,
}

impl Verifier {
    /// `root` is the trust anchor (PEM or DER); `policy` narrows the accepted policy OIDs to
    /// the operator's (without it: production and test signing policies, the auth policy).
    pub fn new(root: &[u8], policy: Option<&Policy>, status: StatusSource) -> Result<Verifier, Error> {
        let root_der = crate::cert::certificate_der(root, "trust anchor")?;
        let expected = policy.map_or_else(Expected::jpki, Expected::from_policy);
        Ok(Verifier { root_der, expected, status, soft_fail: false, fetch: Arc::new(crate::http::fetch) })
    }

    /// Status that cannot be learned becomes a warning instead of a failure.
    pub fn soft_fail(mut self, on: bool) -> Verifier {
        self.soft_fail = on;
        self
    }

    /// Replaces the HTTP client (tests, or a caller with its own transport).
    pub fn with_fetch(mut self, fetch: Fetch) -> Verifier {
        self.fetch = fetch;
        self
    }

    fn root(&self) -> Result<X509Certificate<'_>, Error> {
        crate::cert::parse(&self.root_der, "trust anchor")
    }

    /// Verifies a CMS SignedData. `content` is the detached content (if any); `at` overrides
    /// the time validity is judged at (else the signingTime attribute, else `now`); `now` is
    /// the wall clock, used for the freshness of CRLs and OCSP answers.
    pub fn verify_document(
        &self,
        sig: &[u8],
        content: Option<&[u8]>,
        at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Report {
        let mut report = Report::new("verify");
        let root = match self.root() {
            Ok(r) => r,
            Err(e) => {
                report.record("trust-anchor", Err(e));
                return report.finish();
            }
        };
        let env = match crate::cms::parse(sig) {
            Ok(env) => env,
            Err(e) => {
                report.record("cms", Err(e));
                skip(&mut report, &["content-signature", "chain", "kind", "attributes", "status"]);
                return report.finish();
            }
        };
        report.record("cms", Ok(format!("SignedData, {}", if env.attached.is_some() { "attached" } else { "detached" })));
        let (at, source) = match (at, env.signing_time) {
            (Some(t), _) => (t, "--at"),
            (None, Some(t)) => (t, "signingTime attribute"),
            (None, None) => (now, "now"),
        };
        report.checked_at = fmt_time(at);
        report.time_source = source;
        let leaf = match crate::cert::parse(&env.signer_der, "signer certificate") {
            Ok(l) => l,
            Err(e) => {
                report.record("content-signature", Err(e));
                skip(&mut report, &["chain", "kind", "attributes", "status"]);
                return report.finish();
            }
        };
        report.signer = Some(signer_info(&leaf));
        report.record(
            "content-signature",
            env.verify(content, &leaf.public_key().subject_public_key.data)
                .map(|()| "messageDigest matches the content; RSA PKCS#1 v1.5 SHA-256 signature verifies".into()),
        );
        self.certificate_checks(&mut report, &leaf, &root, Hierarchy::Signing, at, now);
        report.finish()
    }

    /// Verifies a login: `sig` is an RSA PKCS#1 v1.5 SHA-256 signature over `challenge` made
    /// with the key of the authentication certificate `cert` (PEM or DER).
    pub fn verify_login(
        &self,
        cert: &[u8],
        challenge: &[u8],
        sig: &[u8],
        at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Report {
        let mut report = Report::new("verify-login");
        let root = match self.root() {
            Ok(r) => r,
            Err(e) => {
                report.record("trust-anchor", Err(e));
                return report.finish();
            }
        };
        let (at, source) = at.map_or((now, "now"), |t| (t, "--at"));
        report.checked_at = fmt_time(at);
        report.time_source = source;
        let der = crate::cert::der_from_pem_or_der(cert);
        let leaf = match crate::cert::parse(&der, "authentication certificate") {
            Ok(l) => l,
            Err(e) => {
                report.record("certificate", Err(e));
                skip(&mut report, &["challenge-signature", "chain", "kind", "status"]);
                return report.finish();
            }
        };
        report.signer = Some(signer_info(&leaf));
        report.record(
            "challenge-signature",
            crate::cms::rsa_verify(&leaf.public_key().subject_public_key.data, challenge, sig)
                .map(|()| "RSA PKCS#1 v1.5 SHA-256 signature over the challenge verifies".into()),
        );
        self.certificate_checks(&mut report, &leaf, &root, Hierarchy::Auth, at, now);
        if report.checks.iter().all(|c| c.outcome != Outcome::Fail) {
            report.account_key = Some(serial_hex(&leaf));
        }
        report.finish()
    }

    fn certificate_checks(
        &self,
        report: &mut Report,
        leaf: &X509Certificate<'_>,
        root: &X509Certificate<'_>,
        want: Hierarchy,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        let chain_ok = report.record(
            "chain",
            crate::path::validate(leaf, root, at).map(|()| format!("issued by the trust anchor, within validity at {}", fmt_time(at))),
        );
        let kind = crate::kind::check(leaf, want, &self.expected);
        if let (Ok(p), Some(s)) = (&kind, report.signer.as_mut()) {
            s.policy = Some(p.clone());
        }
        let label = match want {
            Hierarchy::Signing => "signing",
            Hierarchy::Auth => "authentication",
        };
        report.record("kind", kind.map(|p| format!("{label} certificate (policy {p})")));
        if want == Hierarchy::Signing {
            match crate::kind::attributes(leaf) {
                Ok(a) => {
                    report.record("attributes", Ok("name, date of birth, sex and address decoded".into()));
                    report.attributes = Some(a);
                }
                Err(e) => {
                    report.record("attributes", Err(e));
                }
            }
        }
        // Status is only worth asking about a certificate that chains to our anchor.
        if !chain_ok {
            report.push("status", Outcome::Skipped, "not checked: the certificate does not chain to the trust anchor");
            return;
        }
        match self.status(leaf, root, now) {
            Ok((Status::Good, how)) => report.push("status", Outcome::Pass, format!("good ({how})")),
            Ok((bad, how)) => {
                let reason = bad.into_result().err().map_or_else(String::new, |e| e.to_string());
                report.push("status", Outcome::Fail, format!("{reason} ({how})"));
            }
            Err(e) if self.soft_fail => {
                report.push("status", Outcome::Warn, format!("status unknown, accepted by --soft-fail: {e}"))
            }
            Err(e) => report.push("status", Outcome::Fail, format!("status unknown (hard fail): {e}")),
        }
    }

    /// The status and a note of where it came from; `Err` = it could not be learned.
    fn status(&self, leaf: &X509Certificate<'_>, root: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(Status, String), Error> {
        match &self.status {
            StatusSource::Ocsp(url) => {
                let q = Query::new(leaf, root)?;
                let resp = (self.fetch)(url, Some(("application/ocsp-request", &q.der)))?;
                Ok((q.check(&resp, root, now)?, format!("OCSP {url}")))
            }
            StatusSource::Crl(list) => Ok((list.status(leaf, now)?, "cached CRL".into())),
            StatusSource::CrlBytes(b) => Ok((RevocationList::load(b, root)?.status(leaf, now)?, "CRL file".into())),
            StatusSource::CrlUrl(url) => {
                let b = (self.fetch)(url, None)?;
                Ok((RevocationList::load(&b, root)?.status(leaf, now)?, format!("CRL {url}")))
            }
            StatusSource::DistributionPoint => {
                let url = crate::crl::crl_url(leaf)?;
                let b = (self.fetch)(&url, None)?;
                Ok((RevocationList::load(&b, root)?.status(leaf, now)?, format!("CRL {url}")))
            }
        }
    }
}

fn skip(report: &mut Report, names: &[&'static str]) {
    for n in names {
        report.push(n, Outcome::Skipped, "not checked: an earlier check failed");
    }
}

fn signer_info(c: &X509Certificate<'_>) -> SignerInfo {
    let v = c.validity();
    SignerInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: serial_hex(c),
        not_before: fmt_time(v.not_before.to_datetime()),
        not_after: fmt_time(v.not_after.to_datetime()),
        policy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Pki;

    fn crl_verifier(pki: &Pki) -> Verifier {
        Verifier::new(&pki.read("sign/root.pem"), None, StatusSource::CrlBytes(Arc::new(pki.read("sign/crl.pem")))).unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn reason<'a>(r: &'a Report, name: &str) -> &'a str {
        &r.check(name).unwrap_or_else(|| panic!("check {name} missing: {r:?}")).reason
    }

    fn failed(r: &Report, name: &str, needle: &str) {
        assert!(!r.is_valid(), "{}", r.render(false));
        assert_eq!(r.exit_code(), 1);
        let c = r.check(name).unwrap_or_else(|| panic!("no check {name}: {}", r.render(false)));
        assert_eq!(c.outcome, Outcome::Fail, "{}", r.render(false));
        assert!(c.reason.contains(needle), "{name}: `{}` lacks `{needle}`", c.reason);
    }

    #[test]
    fn a_good_detached_signature_is_valid_and_shows_the_holder() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "good", &[]);
        let r = crl_verifier(pki).verify_document(&sig, Some(&pki.read("doc.txt")), None, now());
        assert!(r.is_valid(), "{}", r.render(false));
        assert_eq!(r.exit_code(), 0);
        assert_eq!(r.time_source, "signingTime attribute");
        let a = r.attributes.as_ref().unwrap();
        assert_eq!(a.name, crate::testutil::NAME);
        assert_eq!(a.birth.date, "1980-02-17");
        assert_eq!(a.birth.era, "昭和");
        assert_eq!(a.sex.code, "1");
        assert_eq!(a.address, crate::testutil::ADDRESS);
        assert_eq!(r.signer.as_ref().unwrap().policy.as_deref(), Some("1.2.392.200149.8.5.1.1.20"));
        assert!(reason(&r, "status").contains("good"));
        let json: serde_json::Value = serde_json::from_str(&r.render(true)).unwrap();
        assert_eq!(json["verdict"], "valid");
        assert_eq!(json["attributes"]["birth"]["era"], "昭和");
    }
}
