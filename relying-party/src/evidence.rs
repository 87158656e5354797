//! Evidence files: everything a verdict as of a time rested on, in one file, checked again
//! offline later (`jpki verify --evidence-out FILE`, `jpki verify --evidence FILE`).
//!
//! ## Format (`jpki-evidence/1`, docs/evidence.md)
//! Two lines of UTF-8 text:
//! ```text
//! {"format":"jpki-evidence/1", ...}            <- one line of JSON, the body
//! sha256:<64 hex digits>                       <- SHA-256 of the first line's bytes
//! ```
//! The body's fields (binary values in standard base64, hashes in lower-case hex):
//! `format`; `verdict` (`valid`/`invalid`); `when` (what `--at` said: `timestamp`,
//! `signing-time` or an RFC 3339 time); `judged_at` (the time judged); `verified_at` (the wall
//! clock when the evidence was made: the freshness of the revocation information is judged
//! at it when checking again); `document_sha256` (the signed content's hash — the document
//! itself is not kept); `signature` (the CMS SignedData, with its signature time-stamp);
//! `signer_certificate`; `root` (the trust anchor); `tsa_roots` (the trusted TSA roots);
//! `revocation` (`kind` `ocsp` or `crl`, `der`, the OCSP request's `nonce` in hex, `issued`);
//! `checks` (name, outcome, reason of each check, for people); `policy` (optional: the text of
//! the policy file the original check accepted certificatePolicies by, `jpki verify
//! --policy`; the re-check uses the same, else the JPKI defaults).
//!
//! Why JSON with a digest line and not a CAdES-LT SignedData: every object in it is already
//! signed by its issuer (the CMS, the certificates, the OCSP answer or CRL, the time-stamp),
//! so checking again re-verifies them all from scratch rather than trusting the file; the
//! digest line makes *any* change of a byte (also in an unsigned field such as `when` or in
//! whitespace) a named failure; JSON keeps the file readable with standard tools
//! (`head -1 F | jq`). The trust anchors in the file are those of the original check; a
//! checker that has its own gives them (`--trust`) and they must be the same.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cert::fmt_time;
use crate::report::{Report, Verdict};
use crate::verify::{Content, Judgement, RevocationInfo, RevocationKind, StatusSource, When};
use crate::{Error, Verifier};

pub const FORMAT: &str = "jpki-evidence/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Body {
    format: String,
    verdict: String,
    when: String,
    judged_at: String,
    verified_at: String,
    document_sha256: String,
    signature: String,
    signer_certificate: String,
    root: String,
    tsa_roots: Vec<String>,
    revocation: Option<Revocation>,
    checks: Vec<CheckLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Revocation {
    kind: String,
    der: String,
    nonce: Option<String>,
    issued: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CheckLine {
    name: String,
    outcome: String,
    reason: String,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Evidence(what.into())
}

fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid",
        Verdict::Invalid => "invalid",
    }
}

/// The evidence file for `judgement` (made by [`Verifier::verify_document_as_of`] on `sig`);
/// `policy`: the text of the policy file the verifier was made with, if not the defaults.
pub fn write(
    judgement: &Judgement,
    sig: &[u8],
    when: When,
    tsa_roots: &[Vec<u8>],
    verified_at: OffsetDateTime,
    policy: Option<&str>,
) -> Result<Vec<u8>, Error> {
    let content = judgement
        .content_sha256
        .as_ref()
        .ok_or_else(|| bad("nothing to keep: the signed content is unknown"))?;
    let signer = judgement
        .signer
        .as_ref()
        .ok_or_else(|| bad("nothing to keep: the signature does not parse"))?;
    let revocation = match &judgement.revocation {
        Some(r) if r.der.is_empty() => {
            return Err(bad(
                "the revocation information was a cached CRL without its bytes",
            ))
        }
        Some(r) => Some(Revocation {
            kind: match r.kind {
                RevocationKind::Ocsp => "ocsp",
                RevocationKind::Crl => "crl",
            }
            .into(),
            der: B64.encode(&r.der),
            nonce: r.nonce.as_ref().map(hex::encode),
            issued: fmt_time(r.produced),
        }),
        None => None,
    };
    let body = Body {
        format: FORMAT.into(),
        verdict: verdict_str(judgement.report.verdict).into(),
        when: when.spec(),
        judged_at: fmt_time(judgement.at),
        verified_at: fmt_time(verified_at),
        document_sha256: hex::encode(content),
        signature: B64.encode(crate::cert::der_from_pem_or_der(sig)),
        signer_certificate: B64.encode(signer),
        root: B64.encode(&judgement.root),
        tsa_roots: tsa_roots.iter().map(|r| B64.encode(r)).collect(),
        revocation,
        checks: judgement
            .report
            .checks
            .iter()
            .map(|c| CheckLine {
                name: c.name.into(),
                outcome: format!("{:?}", c.outcome).to_lowercase(),
                reason: c.reason.clone(),
            })
            .collect(),
        policy: policy.map(str::to_owned),
    };
    let line = serde_json::to_string(&body).map_err(|e| bad(e.to_string()))?;
    let seal = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        line.as_bytes(),
    ));
    Ok(format!("{line}\nsha256:{seal}\n").into_bytes())
}

/// Checks an evidence file again, offline: the digest line, then every signed object in it
/// from scratch as of the recorded time, with the kept revocation information. `trust`, if
/// given, must be the file's trust anchor. The report's verdict must be the recorded one;
/// a different verdict is an error naming both.
pub fn recheck(file: &[u8], trust: Option<&[u8]>) -> Result<Report, Error> {
    let text = std::str::from_utf8(file).map_err(|_| bad("not UTF-8 text (altered?)"))?;
    let mut lines = text.split('\n');
    let (Some(line), Some(seal), Some(""), None) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err(bad("not two lines (a JSON body and its sha256: line)"));
    };
    let seal = seal
        .strip_prefix("sha256:")
        .ok_or_else(|| bad("the second line is not `sha256:<hex>`"))?;
    let digest = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        line.as_bytes(),
    ));
    if digest != seal {
        return Err(bad(
            "its digest does not match its content: the file was altered after it was written",
        ));
    }
    let body: Body = serde_json::from_str(line).map_err(|e| bad(format!("body: {e}")))?;
    if body.format != FORMAT {
        return Err(bad(format!(
            "format `{}` (this build reads {FORMAT})",
            body.format
        )));
    }
    let b64 = |what: &str, s: &str| B64.decode(s).map_err(|e| bad(format!("{what}: {e}")));
    let root = b64("root", &body.root)?;
    if let Some(t) = trust {
        if crate::cert::certificate_der(t, "trust anchor")? != root {
            return Err(bad("its trust anchor is not the one given with --trust"));
        }
    }
    let tsa_roots = body
        .tsa_roots
        .iter()
        .map(|r| b64("tsa_roots", r))
        .collect::<Result<Vec<_>, _>>()?;
    let sig = b64("signature", &body.signature)?;
    let content =
        hex::decode(&body.document_sha256).map_err(|e| bad(format!("document_sha256: {e}")))?;
    let verified_at = crate::cert::parse_time(&body.verified_at)?;
    let when = When::parse(&body.when)?;
    let status = match &body.revocation {
        Some(r) => StatusSource::Stored(RevocationInfo {
            kind: match r.kind.as_str() {
                "ocsp" => RevocationKind::Ocsp,
                "crl" => RevocationKind::Crl,
                k => return Err(bad(format!("revocation kind `{k}`"))),
            },
            der: b64("revocation", &r.der)?,
            nonce: r
                .nonce
                .as_deref()
                .map(hex::decode)
                .transpose()
                .map_err(|e| bad(format!("nonce: {e}")))?,
            produced: crate::cert::parse_time(&r.issued)?,
        }),
        None => StatusSource::Stored(RevocationInfo {
            kind: RevocationKind::Crl,
            der: Vec::new(),
            nonce: None,
            produced: verified_at,
        }),
    };
    let policy = body
        .policy
        .as_deref()
        .map(policies::Policy::from_toml)
        .transpose()?;
    let v = Verifier::new(&root, policy.as_ref(), status)?;
    let mut j = v.verify_document_as_of(
        &sig,
        Content::Sha256(&content),
        when,
        &tsa_roots,
        verified_at,
    );
    let now = verdict_str(j.report.verdict);
    if now != body.verdict {
        return Err(bad(format!(
            "checked again it is {now}, but it was recorded as {}",
            body.verdict
        )));
    }
    j.report.command = "verify --evidence";
    Ok(j.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(line: &str) -> Vec<u8> {
        let seal = hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            line.as_bytes(),
        ));
        format!("{line}\nsha256:{seal}\n").into_bytes()
    }

    fn refused(file: &[u8], needle: &str) {
        let e = recheck(file, None).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }

    #[test]
    fn a_file_that_is_not_sealed_evidence_is_named() {
        refused(b"\xff\xfe", "not UTF-8");
        refused(b"{}", "not two lines");
        refused(b"{}\nmd5:00\n", "sha256:");
        refused(b"{}\nsha256:00\n", "altered");
        let mut f = sealed("{}");
        let n = f.len() - 3;
        f[n] ^= 1;
        refused(&f, "altered");
        refused(&sealed("{}"), "body");
        let body = serde_json::json!({
            "format": "jpki-evidence/0", "verdict": "valid", "when": "timestamp",
            "judged_at": "2026-01-01T00:00:00Z", "verified_at": "2026-01-01T00:00:00Z",
            "document_sha256": "00", "signature": "", "signer_certificate": "", "root": "",
            "tsa_roots": [], "revocation": null, "checks": []
        });
        refused(&sealed(&body.to_string()), "format `jpki-evidence/0`");
    }

    #[test]
    fn when_reads_its_three_spellings() {
        assert_eq!(When::parse("timestamp").unwrap(), When::Timestamp);
        assert_eq!(When::parse("signing-time").unwrap(), When::SigningTime);
        let t = When::parse("2026-12-05T00:00:00Z").unwrap();
        assert_eq!(When::parse(&t.spec()).unwrap(), t);
        assert!(When::parse("yesterday").is_err());
    }
}
