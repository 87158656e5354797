//! The two verifications, as a library: a signed document and a signed login challenge.
//! Each runs its named checks in order and records every outcome in a [`Report`]; once a
//! check fails, the checks that depend on it are reported as skipped.

use std::sync::Arc;

use ::time::OffsetDateTime;
use policies::{Hierarchy, Policy};
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
    /// Revocation information kept earlier (an evidence file), checked again offline.
    Stored(RevocationInfo),
    /// Find the certificate's CRL through a publisher's `index.json` (URL or path), by its
    /// distribution point's directoryName or URL (`crate::crl::from_index`).
    CrlIndex(String),
}

/// When a document is judged (`jpki verify --at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A moment the caller names.
    Time(OffsetDateTime),
    /// The signingTime signed attribute: the signer's own claim, not a trusted time.
    SigningTime,
    /// genTime of the signature time-stamp (RFC 3161, CAdES-T): a trusted time.
    Timestamp,
}

impl When {
    /// `signing-time`, `timestamp` or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<When, Error> {
        Ok(match s {
            "signing-time" => When::SigningTime,
            "timestamp" => When::Timestamp,
            t => When::Time(crate::cert::parse_time(t)?),
        })
    }

    /// The spelling [`When::parse`] reads.
    pub fn spec(&self) -> String {
        match self {
            When::Time(t) => fmt_time(*t),
            When::SigningTime => "signing-time".into(),
            When::Timestamp => "timestamp".into(),
        }
    }
}

/// Which kind of revocation information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationKind {
    Ocsp,
    Crl,
}

/// Revocation information a verdict rested on, as it was obtained.
#[derive(Debug, Clone)]
pub struct RevocationInfo {
    pub kind: RevocationKind,
    /// The DER OCSPResponse or CRL (empty for a CRL cached parsed, [`StatusSource::Crl`]).
    pub der: Vec<u8>,
    /// The OCSP request's nonce, to check the stored answer again.
    pub nonce: Option<Vec<u8>>,
    /// thisUpdate of the CRL or of the OCSP SingleResponse.
    pub produced: OffsetDateTime,
}

/// What the signed document was checked against.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// The detached content if any (else the attached one is used).
    Bytes(Option<&'a [u8]>),
    /// Only the content's SHA-256 is known (an evidence file).
    Sha256(&'a [u8]),
}

/// A verdict as of a time, and everything it rested on (for an evidence file).
#[derive(Debug, Clone)]
pub struct Judgement {
    pub report: Report,
    /// The time judged.
    pub at: OffsetDateTime,
    /// SHA-256 of the signed content, when it was known.
    pub content_sha256: Option<Vec<u8>>,
    /// The signer's certificate (DER), when the CMS parsed.
    pub signer: Option<Vec<u8>>,
    /// The trust anchor (DER).
    pub root: Vec<u8>,
    /// The revocation information the status check used.
    pub revocation: Option<RevocationInfo>,
}

/// A configured relying party: its trust anchors (every generation of one hierarchy's root),
/// accepted policies, a status source.
#[derive(Clone)]
pub struct Verifier {
    /// The first trust anchor: what a check that precedes the signer names.
    root_der: Vec<u8>,
    /// Every trust anchor, in the order given; a certificate is checked against the one that
    /// issued it, picked by key ([`crate::path::pick_anchor`]).
    anchors: Vec<Vec<u8>>,
    expected: Expected,
    status: StatusSource,
    soft_fail: bool,
    fetch: Fetch,
}

impl Verifier {
    /// `root` is the trust anchor (DER, or PEM with one certificate per root generation:
    /// the issuer of each certificate checked is picked among them by key); `policy` narrows
    /// the accepted policy OIDs to the operator's (without it: production and test signing
    /// policies, the auth policy).
    pub fn new(
        root: &[u8],
        policy: Option<&Policy>,
        status: StatusSource,
    ) -> Result<Verifier, Error> {
        let root_der = crate::cert::certificate_der(root, "trust anchor")?;
        let mut anchors = Vec::new();
        if root.trim_ascii_start().starts_with(b"-----BEGIN") {
            for pem in x509_parser::pem::Pem::iter_from_buffer(root) {
                let pem = pem.map_err(|e| Error::TrustAnchor(format!("PEM: {e}")))?;
                anchors.push(crate::cert::certificate_der(&pem.contents, "trust anchor")?);
            }
        }
        if anchors.is_empty() {
            anchors.push(root_der.clone());
        }
        let expected = policy.map_or_else(Expected::jpki, Expected::from_policy);
        Ok(Verifier {
            root_der,
            anchors,
            expected,
            status,
            soft_fail: false,
            fetch: Arc::new(crate::http::fetch),
        })
    }

    /// Status that cannot be learned becomes a warning instead of a failure.
    pub fn soft_fail(mut self, on: bool) -> Verifier {
        self.soft_fail = on;
        self
    }

    /// Accepts smartphone certificates too (their policy OID is the card's plus `.1`); the
    /// report's kind check says "smartphone …" for them.
    pub fn accept_phone(mut self, on: bool) -> Verifier {
        if on {
            self.expected = self.expected.clone().with_phone();
        }
        self
    }

    /// Replaces the HTTP client (tests, or a caller with its own transport).
    pub fn with_fetch(mut self, fetch: Fetch) -> Verifier {
        self.fetch = fetch;
        self
    }

    /// The parsed trust anchor; `None` once its failure is recorded as the "trust-anchor"
    /// check (the report then ends there).
    fn root_or_record(&self, report: &mut Report) -> Option<X509Certificate<'_>> {
        match crate::cert::parse(&self.root_der, "trust anchor") {
            Ok(r) => Some(r),
            Err(e) => {
                report.record("trust-anchor", Err(e.into()));
                None
            }
        }
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
        report.checked_at = fmt_time(now);
        let Some(root) = self.root_or_record(&mut report) else {
            return report.finish();
        };
        let env = match crate::cms::parse(sig) {
            Ok(env) => env,
            Err(e) => {
                report.record("cms", Err(e.into()));
                skip(
                    &mut report,
                    &["content-signature", "chain", "kind", "attributes", "status"],
                );
                return report.finish();
            }
        };
        report.record(
            "cms",
            Ok(format!(
                "SignedData, {}",
                if env.attached.is_some() {
                    "attached"
                } else {
                    "detached"
                }
            )),
        );
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
                report.record("content-signature", Err(e.into()));
                skip(&mut report, &["chain", "kind", "attributes", "status"]);
                return report.finish();
            }
        };
        report.signer = Some(signer_info(&leaf));
        tracing::debug!(
            attached = env.attached.is_some(),
            "verifying a CMS SignedData"
        );
        report.record(
            "content-signature",
            env.verify(content, &leaf.public_key().subject_public_key.data)
                .map_err(Error::from)
                .map(|()| {
                    "messageDigest matches the content; RSA PKCS#1 v1.5 SHA-256 signature verifies"
                        .into()
                }),
        );
        self.certificate_checks(&mut report, &leaf, &root, Hierarchy::Signing, at, now, None);
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
        let Some(root) = self.root_or_record(&mut report) else {
            return report.finish();
        };
        let (at, source) = at.map_or((now, "now"), |t| (t, "--at"));
        report.checked_at = fmt_time(at);
        report.time_source = source;
        let der = crate::cert::der_from_pem_or_der(cert);
        let leaf = match crate::cert::parse(&der, "authentication certificate") {
            Ok(l) => l,
            Err(e) => {
                report.record("certificate", Err(e.into()));
                skip(
                    &mut report,
                    &["challenge-signature", "chain", "kind", "status"],
                );
                return report.finish();
            }
        };
        report.signer = Some(signer_info(&leaf));
        report.record(
            "challenge-signature",
            crate::cms::rsa_verify(&leaf.public_key().subject_public_key.data, challenge, sig)
                .map_err(Error::from)
                .map(|()| "RSA PKCS#1 v1.5 SHA-256 signature over the challenge verifies".into()),
        );
        self.certificate_checks(&mut report, &leaf, &root, Hierarchy::Auth, at, now, None);
        if report.checks.iter().all(|c| c.outcome != Outcome::Fail) {
            report.account_key = Some(serial_hex(&leaf));
        }
        report.finish()
    }

    // The checks' inputs are all different things (leaf, anchor, kind, two times, where the
    // as-of status goes); a struct for them would only be built here.
    #[allow(clippy::too_many_arguments)]
    fn certificate_checks(
        &self,
        report: &mut Report,
        leaf: &X509Certificate<'_>,
        root: &X509Certificate<'_>,
        want: Hierarchy,
        at: OffsetDateTime,
        now: OffsetDateTime,
        as_of: Option<&mut Option<RevocationInfo>>,
    ) {
        // The generation that issued the leaf, by key; the first anchor when none did (the
        // chain check then names what does not match).
        let picked = crate::path::pick_anchor(leaf, &self.anchors)
            .and_then(|i| crate::cert::parse(&self.anchors[i], "trust anchor").ok());
        let root = picked.as_ref().unwrap_or(root);
        let chain_ok = report.record(
            "chain",
            crate::path::validate(leaf, root, at)
                .map_err(Error::from)
                .map(|()| {
                    format!(
                        "issued by the trust anchor{}, within validity at {}",
                        if self.anchors.len() > 1 {
                            crate::cert::ski(root)
                                .map(|k| format!(" with key id {}", hex::encode_upper(k)))
                                .unwrap_or_default()
                        } else {
                            String::new()
                        },
                        fmt_time(at)
                    )
                }),
        );
        let kind = crate::kind::check(leaf, want, &self.expected);
        if let (Ok(p), Some(s)) = (&kind, report.signer.as_mut()) {
            s.policy = Some(p.clone());
        }
        let label = match want {
            Hierarchy::Signing => "signing",
            Hierarchy::Auth => "authentication",
        };
        report.record(
            "kind",
            kind.map(|p| {
                if self.expected.is_phone(&p) {
                    format!("smartphone {label} certificate (policy {p})")
                } else {
                    format!("{label} certificate (policy {p})")
                }
            }),
        );
        if want == Hierarchy::Signing {
            match crate::kind::attributes(leaf) {
                Ok(a) => {
                    report.record(
                        "attributes",
                        Ok("name, date of birth, sex and address decoded".into()),
                    );
                    report.attributes = Some(a);
                }
                Err(e) => {
                    report.record("attributes", Err(e));
                }
            }
        }
        // Status is only worth asking about a certificate that chains to our anchor.
        if !chain_ok {
            report.push(
                "status",
                Outcome::Skipped,
                "not checked: the certificate does not chain to the trust anchor",
            );
            return;
        }
        if let Some(judged) = as_of {
            self.status_as_of(report, leaf, root, at, now, judged);
            return;
        }
        match self.status(leaf, root, now) {
            Ok((Status::Good, how)) => {
                report.push("status", Outcome::Pass, format!("good ({how})"))
            }
            Ok((bad, how)) => {
                let reason = bad
                    .into_result()
                    .err()
                    .map_or_else(String::new, |e| e.to_string());
                report.push("status", Outcome::Fail, format!("{reason} ({how})"));
            }
            Err(e) if self.soft_fail => report.push(
                "status",
                Outcome::Warn,
                format!("status unknown, accepted by --soft-fail: {e}"),
            ),
            Err(e) => report.push(
                "status",
                Outcome::Fail,
                format!("status unknown (hard fail): {e}"),
            ),
        }
    }

    /// The status and a note of where it came from; `Err` = it could not be learned.
    fn status(
        &self,
        leaf: &X509Certificate<'_>,
        root: &X509Certificate<'_>,
        now: OffsetDateTime,
    ) -> Result<(Status, String), Error> {
        match &self.status {
            StatusSource::Ocsp(url) => {
                let q = Query::new(leaf, root)?;
                let resp = (self.fetch)(url, Some(("application/ocsp-request", &q.der)))?;
                Ok((q.check(&resp, root, now)?, format!("OCSP {url}")))
            }
            StatusSource::Crl(list) => Ok((list.status(leaf, now)?, "cached CRL".into())),
            StatusSource::CrlBytes(b) => Ok((
                RevocationList::load(b, root)?.status(leaf, now)?,
                "CRL file".into(),
            )),
            StatusSource::CrlUrl(url) => self.fetched_crl_status(url, leaf, root, now),
            StatusSource::DistributionPoint => {
                self.fetched_crl_status(&crate::crl::crl_url(leaf)?, leaf, root, now)
            }
            StatusSource::Stored(_) => self
                .status_info(leaf, root, now)
                .map(|(s, how, _)| (s, how)),
            StatusSource::CrlIndex(at) => {
                let (crl, from) = crate::crl::from_index(at, leaf, &self.fetch)?;
                Ok((RevocationList::load(&crl, root)?.status(leaf, now)?, from))
            }
        }
    }

    /// The status from the CRL downloaded from `url`, verified against `root`.
    fn fetched_crl_status(
        &self,
        url: &str,
        leaf: &X509Certificate<'_>,
        root: &X509Certificate<'_>,
        now: OffsetDateTime,
    ) -> Result<(Status, String), Error> {
        let b = (self.fetch)(url, None)?;
        Ok((
            RevocationList::load(&b, root)?.status(leaf, now)?,
            format!("CRL {url}"),
        ))
    }
}

// ---- Verification as of a time (`jpki verify --at`, evidence files) ----
//
// The chain and validity periods are judged at the time `at`; the status too: a certificate
// revoked after `at` was valid then, one revoked (or put on hold) at or before it was not.
// Only revocation information issued at or after `at` can say that (RFC 5280 §6.3.3,
// ETSI EN 319 102-1 §5.2.5): older information is a failure named as such. Where `at` comes
// from is a check of its own ("time"): a verified signature time-stamp (trusted), the
// signingTime (the signer's claim: a warning), or, without either, now (a warning saying so).

/// CRLReason certificateHold (RFC 5280 §5.3.1): the one revocation that can be undone.
const HOLD: u8 = 6;

impl Verifier {
    /// Verifies a CMS SignedData as of `when`; `tsa_roots` (DER) are the TSA roots trusted
    /// for signature time-stamps; `now` is the wall clock (freshness of what is fetched).
    pub fn verify_document_as_of(
        &self,
        sig: &[u8],
        content: Content<'_>,
        when: When,
        tsa_roots: &[Vec<u8>],
        now: OffsetDateTime,
    ) -> Judgement {
        let mut report = Report::new("verify");
        let mut judgement = Judgement {
            report: Report::new("verify"),
            at: now,
            content_sha256: None,
            signer: None,
            root: self.root_der.clone(),
            revocation: None,
        };
        report.checked_at = fmt_time(now);
        let Some(root) = self.root_or_record(&mut report) else {
            judgement.report = report.finish();
            return judgement;
        };
        let env = match crate::cms::parse(sig) {
            Ok(env) => env,
            Err(e) => {
                report.record("cms", Err(e.into()));
                skip(
                    &mut report,
                    &[
                        "content-signature",
                        "time",
                        "chain",
                        "kind",
                        "attributes",
                        "status",
                    ],
                );
                judgement.report = report.finish();
                return judgement;
            }
        };
        report.record("cms", Ok("SignedData".into()));
        judgement.signer = Some(env.signer_der.clone());
        let leaf = match crate::cert::parse(&env.signer_der, "signer certificate") {
            Ok(l) => l,
            Err(e) => {
                report.record("content-signature", Err(e.into()));
                skip(
                    &mut report,
                    &["time", "chain", "kind", "attributes", "status"],
                );
                judgement.report = report.finish();
                return judgement;
            }
        };
        report.signer = Some(signer_info(&leaf));
        if let Some(i) = crate::path::pick_anchor(&leaf, &self.anchors) {
            judgement.root = self.anchors[i].clone();
        }
        let key = &leaf.public_key().subject_public_key.data;
        let signed = match content {
            Content::Bytes(detached) => env.content(detached).map(|c| {
                let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, c);
                judgement.content_sha256 = Some(d.as_ref().to_vec());
                env.verify(detached, key)
            }),
            Content::Sha256(d) => {
                judgement.content_sha256 = Some(d.to_vec());
                Ok(env.verify_digest(d, key))
            }
        };
        report.record(
            "content-signature",
            signed.and_then(|r| r).map_err(Error::from).map(|()| {
                "messageDigest matches the content; RSA PKCS#1 v1.5 SHA-256 signature verifies"
                    .into()
            }),
        );
        let at = self.judged_time(&mut report, &env, when, tsa_roots, now);
        judgement.at = at;
        report.checked_at = fmt_time(at);
        let mut revocation = None;
        self.certificate_checks(
            &mut report,
            &leaf,
            &root,
            Hierarchy::Signing,
            at,
            now,
            Some(&mut revocation),
        );
        judgement.revocation = revocation;
        judgement.report = report.finish();
        judgement
    }

    /// The time to judge at, recorded as the "time" check (and `time_source`).
    fn judged_time(
        &self,
        report: &mut Report,
        env: &crate::cms::Envelope,
        when: When,
        tsa_roots: &[Vec<u8>],
        now: OffsetDateTime,
    ) -> OffsetDateTime {
        match when {
            When::Time(t) => {
                report.time_source = "--at";
                report.push(
                    "time",
                    Outcome::Pass,
                    format!("as of {} (given)", fmt_time(t)),
                );
                t
            }
            When::SigningTime => match env.signing_time {
                Some(t) => {
                    report.time_source = "signingTime attribute";
                    report.push(
                        "time",
                        Outcome::Warn,
                        format!(
                            "as of the signingTime {}: the signer's own claim, not a trusted time",
                            fmt_time(t)
                        ),
                    );
                    t
                }
                None => {
                    report.time_source = "now";
                    report.push(
                        "time",
                        Outcome::Warn,
                        "no signingTime attribute: no trusted time, judged as of now",
                    );
                    now
                }
            },
            When::Timestamp => {
                let Some(token) = env.timestamp_tokens.first() else {
                    report.time_source = "now";
                    report.push(
                        "time",
                        Outcome::Warn,
                        "no signature time-stamp: no trusted time, judged as of now",
                    );
                    return now;
                };
                match tsa::token::verify(token, env.signature_value(), tsa_roots) {
                    Ok(stamp) => {
                        report.time_source = "signature time-stamp";
                        report.push(
                            "time",
                            Outcome::Pass,
                            format!(
                                "signature time-stamp {} (±{} s) by {}, serial {}, policy {}",
                                fmt_time(stamp.gen_time),
                                stamp.accuracy_seconds,
                                stamp.tsa,
                                stamp.serial,
                                stamp.policy
                            ),
                        );
                        stamp.gen_time
                    }
                    Err(e) => {
                        report.time_source = "now";
                        report.record("time", Err(Error::from(e)));
                        now
                    }
                }
            }
        }
    }

    /// The "status" check as of `at`; what it rested on goes to `kept`.
    fn status_as_of(
        &self,
        report: &mut Report,
        leaf: &X509Certificate<'_>,
        root: &X509Certificate<'_>,
        at: OffsetDateTime,
        now: OffsetDateTime,
        kept: &mut Option<RevocationInfo>,
    ) {
        let (status, how, info) = match self.status_info(leaf, root, now) {
            Ok(r) => r,
            Err(e) => {
                report.push("status", Outcome::Fail, format!("status unknown: {e}"));
                return;
            }
        };
        let produced = info.produced;
        *kept = Some(info);
        // A revocation (not a hold) at or before `at` is final: even information older than
        // `at` proves it. Anything else needs information issued at or after `at`.
        let permanent = matches!(status, Status::Revoked { date, reason } if date <= at && reason != Some(HOLD));
        if produced < at && !permanent {
            report.record(
                "status",
                Err(Error::RevocationTooOld {
                    produced: fmt_time(produced),
                    at: fmt_time(at),
                }),
            );
            return;
        }
        match status {
            Status::Good => report.push(
                "status",
                Outcome::Pass,
                format!(
                    "good as of {} ({how}, issued {})",
                    fmt_time(at),
                    fmt_time(produced)
                ),
            ),
            Status::Revoked { date, .. } if date > at => report.push(
                "status",
                Outcome::Pass,
                format!(
                    "good as of {}: revoked only later, at {} ({how})",
                    fmt_time(at),
                    fmt_time(date)
                ),
            ),
            bad => {
                let reason = bad
                    .into_result()
                    .err()
                    .map_or_else(String::new, |e| e.to_string());
                report.push(
                    "status",
                    Outcome::Fail,
                    format!(
                        "{reason}, at or before the time judged {} ({how})",
                        fmt_time(at)
                    ),
                );
            }
        }
    }

    /// The status, where it came from, and the information itself.
    fn status_info(
        &self,
        leaf: &X509Certificate<'_>,
        root: &X509Certificate<'_>,
        now: OffsetDateTime,
    ) -> Result<(Status, String, RevocationInfo), Error> {
        let crl = |der: Vec<u8>, how: String| -> Result<(Status, String, RevocationInfo), Error> {
            let list = RevocationList::load(&der, root)?;
            Ok((
                list.status(leaf, now)?,
                how,
                RevocationInfo {
                    kind: RevocationKind::Crl,
                    produced: list.this_update(),
                    der,
                    nonce: None,
                },
            ))
        };
        let ocsp = |q: Query,
                    der: Vec<u8>,
                    how: String|
         -> Result<(Status, String, RevocationInfo), Error> {
            let (status, produced) = q.check_dated(&der, root, now)?;
            Ok((
                status,
                how,
                RevocationInfo {
                    kind: RevocationKind::Ocsp,
                    der,
                    nonce: Some(q.nonce),
                    produced,
                },
            ))
        };
        match &self.status {
            StatusSource::Ocsp(url) => {
                let q = Query::new(leaf, root)?;
                let resp = (self.fetch)(url, Some(("application/ocsp-request", &q.der)))?;
                ocsp(q, resp, format!("OCSP {url}"))
            }
            StatusSource::Crl(list) => Ok((
                list.status(leaf, now)?,
                "cached CRL".into(),
                RevocationInfo {
                    kind: RevocationKind::Crl,
                    der: Vec::new(),
                    nonce: None,
                    produced: list.this_update(),
                },
            )),
            StatusSource::CrlBytes(b) => crl(b.to_vec(), "CRL file".into()),
            StatusSource::CrlUrl(url) => crl((self.fetch)(url, None)?, format!("CRL {url}")),
            StatusSource::DistributionPoint => {
                let url = crate::crl::crl_url(leaf)?;
                crl((self.fetch)(&url, None)?, format!("CRL {url}"))
            }
            StatusSource::CrlIndex(at) => {
                let (der, from) = crate::crl::from_index(at, leaf, &self.fetch)?;
                crl(der, from)
            }
            StatusSource::Stored(info) => match info.kind {
                RevocationKind::Crl => crl(info.der.clone(), "kept CRL".into()),
                RevocationKind::Ocsp => {
                    let nonce = info.nonce.as_deref().ok_or_else(|| {
                        Error::Evidence("a kept OCSP answer without its request's nonce".into())
                    })?;
                    let q = Query::with_nonce(leaf, root, nonce)?;
                    ocsp(q, info.der.clone(), "kept OCSP answer".into())
                }
            },
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

    /// A verifier anchored at `root`, with status from the CRL file `crl` (both fixture names).
    fn crl_bytes_verifier(pki: &Pki, root: &str, crl: &str) -> Verifier {
        Verifier::new(
            &pki.read(root),
            None,
            StatusSource::CrlBytes(Arc::new(pki.read(crl))),
        )
        .unwrap()
    }

    fn crl_verifier(pki: &Pki) -> Verifier {
        crl_bytes_verifier(pki, "sign/root.pem", "sign/crl.pem")
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn reason<'a>(r: &'a Report, name: &str) -> &'a str {
        &r.check(name)
            .unwrap_or_else(|| panic!("check {name} missing: {r:?}"))
            .reason
    }

    fn failed(r: &Report, name: &str, needle: &str) {
        assert!(!r.is_valid(), "{}", r.render(false));
        assert_eq!(r.exit_code(), 1);
        let c = r
            .check(name)
            .unwrap_or_else(|| panic!("no check {name}: {}", r.render(false)));
        assert_eq!(c.outcome, Outcome::Fail, "{}", r.render(false));
        assert!(
            c.reason.contains(needle),
            "{name}: `{}` lacks `{needle}`",
            c.reason
        );
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
        assert_eq!(
            r.signer.as_ref().unwrap().policy.as_deref(),
            Some("1.2.392.200149.8.5.1.1.20")
        );
        assert!(reason(&r, "status").contains("good"));
        let json: serde_json::Value = serde_json::from_str(&r.render(true)).unwrap();
        assert_eq!(json["verdict"], "valid");
        assert_eq!(json["attributes"]["birth"]["era"], "昭和");
    }

    fn doc() -> Vec<u8> {
        Pki::get().read("doc.txt")
    }

    fn ocsp_verifier(fetch: Fetch) -> Verifier {
        let pki = Pki::get();
        Verifier::new(
            &pki.read("sign/root.pem"),
            None,
            StatusSource::Ocsp("http://responder.test/ocsp".into()),
        )
        .unwrap()
        .with_fetch(fetch)
    }

    /// A responder answering with `openssl ocsp -index`, signed by `signer` (None = root).
    fn openssl_responder(signer: Option<&'static str>) -> Fetch {
        Arc::new(move |_url: &str, post: Option<(&str, &[u8])>| {
            let (ct, body) = post.expect("OCSP is a POST");
            assert_eq!(ct, "application/ocsp-request");
            Ok(Pki::get().ocsp_answer(body, signer, &["-nmin", "60"]))
        })
    }

    fn leaf_der(name: &str) -> Vec<u8> {
        crate::cert::certificate_der(&Pki::get().read(name), "test").unwrap()
    }

    #[test]
    fn attached_pem_and_streamed_ber_signatures_verify() {
        let pki = Pki::get();
        let v = crl_verifier(pki);
        let cases: [(&[&str], bool); 5] = [
            (&["-nodetach"], false),
            (&["-outform", "PEM"], true),
            (&["-stream"], false), // DER + -stream: attached, constructed indefinite-length eContent
            (&["-stream", "-outform", "PEM"], true),
            (&["-stream", "-nodetach"], false),
        ];
        for (extra, needs_content) in cases {
            let sig = pki.sign("sign", "good", extra);
            let content = needs_content.then(doc);
            let r = v.verify_document(&sig, content.as_deref(), None, now());
            assert!(r.is_valid(), "{extra:?}: {}", r.render(false));
        }
        // An attached signature with a different --content is refused.
        let sig = pki.sign("sign", "good", &["-nodetach"]);
        failed(
            &v.verify_document(&sig, Some(b"other"), None, now()),
            "content-signature",
            "differs",
        );
        // A detached one without content cannot be checked.
        let sig = pki.sign("sign", "good", &[]);
        failed(
            &v.verify_document(&sig, None, None, now()),
            "content-signature",
            "--content",
        );
    }

    #[test]
    fn garbage_and_truncated_cms_fail_in_the_cms_check() {
        let pki = Pki::get();
        let v = crl_verifier(pki);
        failed(
            &v.verify_document(b"not a signature at all", Some(&doc()), None, now()),
            "cms",
            "not a CMS SignedData",
        );
        let sig = pki.sign("sign", "good", &[]);
        for cut in [1, 10, sig.len() / 2, sig.len() - 1] {
            let r = v.verify_document(&sig[..cut], Some(&doc()), None, now());
            failed(&r, "cms", "not a CMS SignedData");
            assert_eq!(r.check("chain").unwrap().outcome, Outcome::Skipped);
        }
    }

    #[test]
    fn tampered_content_fails_the_content_signature() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "good", &[]);
        let mut content = doc();
        content[0] ^= 1;
        let r = crl_verifier(pki).verify_document(&sig, Some(&content), None, now());
        failed(&r, "content-signature", "messageDigest does not match");
        assert_eq!(r.check("chain").unwrap().outcome, Outcome::Pass);
    }

    #[test]
    fn a_flipped_signature_byte_fails_the_content_signature() {
        let pki = Pki::get();
        let mut sig = pki.sign("sign", "good", &[]);
        let n = sig.len();
        sig[n - 5] ^= 0x40; // inside the RSA signature, the last field of the SignerInfo
        failed(
            &crl_verifier(pki).verify_document(&sig, Some(&doc()), None, now()),
            "content-signature",
            "RSA signature",
        );
    }

    #[test]
    fn a_wrong_trust_anchor_fails_the_chain() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "good", &[]);
        let v = crl_bytes_verifier(pki, "auth/root.pem", "sign/crl.pem");
        let r = v.verify_document(&sig, Some(&doc()), None, now());
        failed(&r, "chain", "issuer name is not the trust anchor's subject");
        assert_eq!(r.check("status").unwrap().outcome, Outcome::Skipped);
    }

    #[test]
    fn an_authentication_certificate_cannot_sign_a_document() {
        let pki = Pki::get();
        let sig = pki.sign("auth", "auth", &[]);
        // Against its own root the chain holds, but the kind is wrong.
        let v = crl_bytes_verifier(pki, "auth/root.pem", "sign/crl.pem");
        let r = v.verify_document(&sig, Some(&doc()), None, now());
        failed(&r, "kind", "certificate kind is authentication (policy 1.2.392.200149.8.5.1.3.30); signing required");
        failed(&r, "attributes", "no subjectAltName");
        // Against the signing root it does not even chain.
        let r = crl_verifier(pki).verify_document(&sig, Some(&doc()), None, now());
        failed(&r, "chain", "issuer name");
        failed(&r, "kind", "kind is authentication");
    }

    #[test]
    fn an_expired_certificate_fails_the_chain() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "expired", &[]);
        failed(
            &crl_verifier(pki).verify_document(&sig, Some(&doc()), None, now()),
            "chain",
            "end-entity certificate expired at 2021-01-01",
        );
    }

    #[test]
    fn at_overrides_the_signing_time() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "good", &[]);
        let later = now() + ::time::Duration::days(400);
        let r = crl_verifier(pki).verify_document(&sig, Some(&doc()), Some(later), now());
        assert_eq!(r.time_source, "--at");
        failed(&r, "chain", "expired");
    }

    #[test]
    fn revoked_and_held_certificates_fail_the_status_by_crl() {
        let pki = Pki::get();
        let v = crl_verifier(pki);
        let r = v.verify_document(&pki.sign("sign", "revoked", &[]), Some(&doc()), None, now());
        failed(&r, "status", "revoked at");
        failed(&r, "status", "keyCompromise");
        let r = v.verify_document(&pki.sign("sign", "held", &[]), Some(&doc()), None, now());
        failed(&r, "status", "on hold");
        // Soft-fail does not soften a known revocation.
        let r = v.clone().soft_fail(true).verify_document(
            &pki.sign("sign", "revoked", &[]),
            Some(&doc()),
            None,
            now(),
        );
        failed(&r, "status", "revoked");
    }

    #[test]
    fn a_stale_crl_hard_fails_unless_soft_fail() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "good", &[]);
        let later = now() + ::time::Duration::days(2);
        let at = Some(now());
        failed(
            &crl_verifier(pki).verify_document(&sig, Some(&doc()), at, later),
            "status",
            "stale CRL",
        );
        let r = crl_verifier(pki)
            .soft_fail(true)
            .verify_document(&sig, Some(&doc()), at, later);
        assert!(r.is_valid(), "{}", r.render(false));
        assert_eq!(r.check("status").unwrap().outcome, Outcome::Warn);
    }

    #[test]
    fn another_partitions_crl_does_not_answer() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "good", &[]);
        let v = crl_bytes_verifier(pki, "sign/root.pem", "sign/crl-other.pem");
        failed(
            &v.verify_document(&sig, Some(&doc()), None, now()),
            "status",
            "does not cover this certificate",
        );
        // ... while the certificate of that partition is answered by it.
        let sig = pki.sign("sign", "other", &[]);
        let r = v.verify_document(&sig, Some(&doc()), None, now());
        assert!(r.is_valid(), "{}", r.render(false));
    }

    #[test]
    fn the_distribution_point_is_fetched_when_no_source_is_given() {
        let pki = Pki::get();
        let fetch: Fetch = Arc::new(|url: &str, post: Option<(&str, &[u8])>| {
            assert!(post.is_none());
            assert_eq!(url, crate::testutil::CRL_URL);
            Ok(Pki::get().read("sign/crl.pem"))
        });
        let v = Verifier::new(
            &pki.read("sign/root.pem"),
            None,
            StatusSource::DistributionPoint,
        )
        .unwrap()
        .with_fetch(fetch);
        let r = v.verify_document(&pki.sign("sign", "good", &[]), Some(&doc()), None, now());
        assert!(r.is_valid(), "{}", r.render(false));
        assert!(reason(&r, "status").contains(crate::testutil::CRL_URL));
    }

    #[test]
    fn an_unreachable_status_source_hard_fails_unless_soft_fail() {
        let pki = Pki::get();
        let sig = pki.sign("sign", "good", &[]);
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let src = || StatusSource::Ocsp("http://127.0.0.1:9/ocsp".into());
        let v = Verifier::new(&pki.read("sign/root.pem"), None, src()).unwrap();
        failed(
            &v.verify_document(&sig, Some(&doc()), None, now()),
            "status",
            "status unknown (hard fail)",
        );
        let v = Verifier::new(&pki.read("sign/root.pem"), None, src())
            .unwrap()
            .soft_fail(true);
        let r = v.verify_document(&sig, Some(&doc()), None, now());
        assert!(r.is_valid(), "{}", r.render(false));
        assert!(reason(&r, "status").contains("--soft-fail"));
    }

    #[test]
    fn ocsp_good_revoked_and_held_from_the_root_and_a_delegated_responder() {
        let pki = Pki::get();
        for signer in [None, Some("sign/ocsp")] {
            let v = ocsp_verifier(openssl_responder(signer));
            let r = v.verify_document(&pki.sign("sign", "good", &[]), Some(&doc()), None, now());
            assert!(r.is_valid(), "{signer:?}: {}", r.render(false));
            assert!(reason(&r, "status").contains("OCSP"));
            let r = v.verify_document(&pki.sign("sign", "revoked", &[]), Some(&doc()), None, now());
            failed(&r, "status", "keyCompromise");
            let r = v.verify_document(&pki.sign("sign", "held", &[]), Some(&doc()), None, now());
            failed(&r, "status", "on hold");
        }
    }

    #[test]
    fn an_ocsp_answer_signed_by_an_unauthorised_key_is_refused() {
        let pki = Pki::get();
        // The holder's own certificate has no id-kp-OCSPSigning.
        let v = ocsp_verifier(openssl_responder(Some("sign/good")));
        failed(
            &v.verify_document(&pki.sign("sign", "good", &[]), Some(&doc()), None, now()),
            "status",
            "OCSP response signature",
        );
    }

    /// The root's `openssl ocsp` answer to a query of ours for the fixture `cert`, made with
    /// `nonce` (None: a fresh one, as `Query::new` draws).
    fn answer_to_a_query_for(cert: &str, nonce: Option<&[u8]>) -> Vec<u8> {
        let (leaf, root) = (leaf_der(cert), leaf_der("sign/root.pem"));
        let (leaf, root) = (
            crate::cert::parse(&leaf, "t").unwrap(),
            crate::cert::parse(&root, "t").unwrap(),
        );
        let q = match nonce {
            Some(n) => Query::with_nonce(&leaf, &root, n),
            None => Query::new(&leaf, &root),
        }
        .unwrap();
        Pki::get().ocsp_answer(&q.der, None, &["-nmin", "60"])
    }

    #[test]
    fn an_ocsp_answer_for_another_serial_is_refused() {
        let pki = Pki::get();
        let fetch: Fetch = Arc::new(|_url: &str, post: Option<(&str, &[u8])>| {
            let (_, body) = post.unwrap();
            let req = <x509_ocsp::OcspRequest as der07::Decode>::from_der(body).unwrap();
            let nonce = req.nonce().unwrap().0.as_bytes().to_vec();
            Ok(answer_to_a_query_for("sign/other.pem", Some(&nonce)))
        });
        failed(
            &ocsp_verifier(fetch).verify_document(
                &pki.sign("sign", "good", &[]),
                Some(&doc()),
                None,
                now(),
            ),
            "status",
            "not for this certificate",
        );
    }

    #[test]
    fn an_ocsp_answer_with_another_nonce_is_refused() {
        let pki = Pki::get();
        let fetch: Fetch = Arc::new(|_url: &str, _post: Option<(&str, &[u8])>| {
            Ok(answer_to_a_query_for("sign/good.pem", None))
        });
        failed(
            &ocsp_verifier(fetch).verify_document(
                &pki.sign("sign", "good", &[]),
                Some(&doc()),
                None,
                now(),
            ),
            "status",
            "nonce mismatch",
        );
    }

    #[test]
    fn a_stale_ocsp_answer_is_refused() {
        let pki = Pki::get();
        let v = ocsp_verifier(openssl_responder(None));
        let later = now() + ::time::Duration::hours(2);
        failed(
            &v.verify_document(
                &pki.sign("sign", "good", &[]),
                Some(&doc()),
                Some(now()),
                later,
            ),
            "status",
            "stale OCSP",
        );
    }

    fn login(pki: &Pki, sub: &str, name: &str, challenge: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let t = tempfile::tempdir().unwrap();
        let c = t.path().join("challenge");
        std::fs::write(&c, challenge).unwrap();
        let key = pki.path(&format!("{sub}/{name}.key")).display().to_string();
        let sig = crate::testutil::openssl(
            &pki.dir,
            &["dgst", "-sha256", "-sign", &key, &c.display().to_string()],
        );
        (pki.read(&format!("{sub}/{name}.pem")), sig)
    }

    #[test]
    fn a_login_gives_the_serial_as_account_key() {
        let pki = Pki::get();
        let (cert, sig) = login(pki, "auth", "auth", b"nonce-1234");
        let v = crl_bytes_verifier(pki, "auth/root.pem", "sign/crl.pem");
        // The auth hierarchy's CRL is not in the fixtures: with soft-fail the login passes with a warning.
        let r = v
            .clone()
            .soft_fail(true)
            .verify_login(&cert, b"nonce-1234", &sig, None, now());
        assert!(r.is_valid(), "{}", r.render(false));
        let serial =
            crate::cert::serial_hex(&crate::cert::parse(&leaf_der("auth/auth.pem"), "t").unwrap());
        assert_eq!(r.account_key.as_deref(), Some(serial.as_str()));
        assert!(r.render(false).contains(&serial));
        // Another challenge does not verify.
        let r = v
            .clone()
            .soft_fail(true)
            .verify_login(&cert, b"nonce-5678", &sig, None, now());
        failed(&r, "challenge-signature", "does not verify");
        assert!(r.account_key.is_none());
        // Hard fail: the signing hierarchy's CRL cannot speak for the auth certificate.
        failed(
            &v.verify_login(&cert, b"nonce-1234", &sig, None, now()),
            "status",
            "status unknown",
        );
    }

    #[test]
    fn a_signing_certificate_cannot_log_in() {
        let pki = Pki::get();
        let (cert, sig) = login(pki, "sign", "good", b"nonce");
        let r = crl_verifier(pki).verify_login(&cert, b"nonce", &sig, None, now());
        failed(
            &r,
            "kind",
            "kind is signing (policy 1.2.392.200149.8.5.1.1.20); authentication required",
        );
        assert!(r.account_key.is_none());
    }

    #[test]
    fn ocsp_unknown_unsuccessful_and_nonceless_answers_are_refused() {
        let pki = Pki::get();
        // A certificate the responder's index does not list: status unknown.
        let stranger = pki.issue("sign/root", "keyUsage = critical, digitalSignature, nonRepudiation\ncertificatePolicies = critical, 1.2.392.200149.8.5.1.1.20", &[]);
        let root = leaf_der("sign/root.pem");
        let q = Query::new(
            &crate::cert::parse(&stranger, "t").unwrap(),
            &crate::cert::parse(&root, "t").unwrap(),
        )
        .unwrap();
        let answer = pki.ocsp_answer(&q.der, None, &["-nmin", "60"]);
        assert!(matches!(
            q.check(&answer, &crate::cert::parse(&root, "t").unwrap(), now()),
            Err(Error::OcspUnknown)
        ));

        let try_later: Fetch = Arc::new(|_: &str, _: Option<(&str, &[u8])>| {
            Ok(der07::Encode::to_der(&x509_ocsp::OcspResponse::try_later()).unwrap())
        });
        let sig = pki.sign("sign", "good", &[]);
        failed(
            &ocsp_verifier(try_later).verify_document(&sig, Some(&doc()), None, now()),
            "status",
            "answered TryLater",
        );

        // An answer to a request without nonce (openssl -no_nonce) cannot be tied to ours.
        let nonceless: Fetch = Arc::new(|_: &str, _: Option<(&str, &[u8])>| {
            let pki = Pki::get();
            let req = crate::testutil::openssl(
                &pki.dir,
                &[
                    "ocsp",
                    "-issuer",
                    "sign/root.pem",
                    "-cert",
                    "sign/good.pem",
                    "-no_nonce",
                    "-reqout",
                    "/dev/stdout",
                ],
            );
            Ok(pki.ocsp_answer(&req, None, &["-nmin", "60"]))
        });
        failed(
            &ocsp_verifier(nonceless).verify_document(&sig, Some(&doc()), None, now()),
            "status",
            "carries no nonce",
        );

        let garbage: Fetch =
            Arc::new(|_: &str, _: Option<(&str, &[u8])>| Ok(b"<html>oops</html>".to_vec()));
        failed(
            &ocsp_verifier(garbage).verify_document(&sig, Some(&doc()), None, now()),
            "status",
            "OCSP response malformed",
        );
    }

    /// `openssl cms -verify -crl_check` as an outside oracle on the same inputs.
    fn openssl_accepts(pki: &Pki, sig: &[u8], content: &[u8], root: &str, crl: bool) -> bool {
        let t = tempfile::tempdir().unwrap();
        let (s, c, ca) = (
            t.path().join("s.der"),
            t.path().join("c"),
            t.path().join("ca.pem"),
        );
        std::fs::write(&s, sig).unwrap();
        std::fs::write(&c, content).unwrap();
        let crl_pem = if crl {
            pki.read("sign/crl.pem")
        } else {
            Vec::new()
        };
        std::fs::write(&ca, [pki.read(root), crl_pem].concat()).unwrap();
        let path = |p: &std::path::Path| p.display().to_string();
        std::process::Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                &path(&s),
                "-content",
                &path(&c),
                "-CAfile",
                &path(&ca),
            ])
            .args(if crl {
                &["-crl_check", "-out", "/dev/null"][..]
            } else {
                &["-out", "/dev/null"][..]
            })
            .output()
            .unwrap()
            .status
            .success()
    }

    #[test]
    fn openssl_cms_verify_agrees_on_the_same_inputs() {
        let pki = Pki::get();
        let mut tampered = doc();
        tampered[3] ^= 1;
        let cases: [(&str, &str, Vec<u8>, &str, bool); 6] = [
            ("good", "good", doc(), "sign/root.pem", true),
            ("tampered", "good", tampered, "sign/root.pem", false),
            ("wrong anchor", "good", doc(), "auth/root.pem", false),
            ("expired", "expired", doc(), "sign/root.pem", false),
            ("revoked", "revoked", doc(), "sign/root.pem", false),
            ("held", "held", doc(), "sign/root.pem", false),
        ];
        for (what, leaf, content, root, valid) in cases {
            let sig = pki.sign("sign", leaf, &[]);
            let v = crl_bytes_verifier(pki, root, "sign/crl.pem");
            let ours = v
                .verify_document(&sig, Some(&content), None, now())
                .is_valid();
            let theirs = openssl_accepts(pki, &sig, &content, root, true);
            assert_eq!(
                (ours, theirs),
                (valid, valid),
                "{what}: ours {ours}, openssl {theirs}"
            );
        }
        // Where we are stricter by design: OpenSSL knows no JPKI kinds and accepts a document
        // signed with an authentication certificate; we refuse it.
        let sig = pki.sign("auth", "auth", &[]);
        let v = crl_bytes_verifier(pki, "auth/root.pem", "sign/crl.pem").soft_fail(true);
        assert!(!v
            .verify_document(&sig, Some(&doc()), None, now())
            .is_valid());
        assert!(openssl_accepts(pki, &sig, &doc(), "auth/root.pem", false));
    }
}
