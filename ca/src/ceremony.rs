//! Dual control for key ceremonies: an operation that makes or replaces a CA key the whole
//! PKI trusts (a root re-key or rollover, the replacement of a compromised OCSP signer) needs
//! **two distinct, active ca-officers**, each proving it holds its registered key, and both
//! are named in the operation's audit record.
//!
//! ## How an officer approves
//! The officer signs a short statement with the key of its officer certificate (the operator
//! CA's client certificate `jpki officer add` made, [`crate::officers`]):
//!
//! ```text
//! jpki key ceremony v1
//! operation=<operation>      e.g. ocsp-signer-compromise, root-rollover
//! subject=<subject>          e.g. the hierarchy
//! at=<unix seconds>
//! ```
//!
//! ([`statement`]); the [`Approval`] carries the certificate, the time and the signature
//! (RSA PKCS#1 v1.5 or ECDSA P-256, SHA-256). Each officer can sign on its own machine
//! (`jpki officer approve … --out FILE`), so the two keys never meet; the CLI can also sign
//! for both when both key files are at hand (`--officer-cert/--officer-key` twice).
//!
//! ## What [`require_two`] checks
//! For every approval: the signature verifies under the certificate's key over the
//! statement of *this* operation and subject; its time is within [`FRESH_SECS`] of the CA's
//! clock (an old approval cannot be replayed later); the key is registered to an officer who
//! is active and inside its certificate's validity ([`crate::officers::authenticate`], the
//! same check the remote admin API makes); the officer is a `ca-officer`. Then at least two
//! *distinct* officers must remain. The officer register, not the certificate chain, is what
//! authorises: a key is an officer's only once `officer add` registered it, and suspending or
//! revoking the officer stops its approvals at once.
//!
//! A refusal is recorded in the audit trail (`refused`, the operation, the code) before the
//! error returns; nothing else changes. The codes: `dual_control` (fewer than two approvals,
//! the same officer twice, a bad or stale signature), `forbidden` (not a ca-officer),
//! `unknown_officer`, `officer_not_active`, `officer_certificate`.
//!
//! Why this shape: the operation runs in one process (CLI or `jpki serve` through the admin
//! socket), so approvals are collected first and checked where the key is made, with no
//! session state; the time window replaces a server nonce, which would need a round trip.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
    RSA_PKCS1_2048_8192_SHA256,
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::officers::{self, Officer, Role};
use crate::storage::{self, Storage};

/// How far (seconds) an approval's time may be from the CA's clock.
pub const FRESH_SECS: i64 = 300;

/// rsaEncryption (RFC 8017 §A.1) and id-ecPublicKey / prime256v1 (RFC 5480 §2.1.1).
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";

/// The text an officer signs to approve `operation` on `subject` at `at`.
pub fn statement(operation: &str, subject: &str, at: i64) -> Vec<u8> {
    format!("jpki key ceremony v1\noperation={operation}\nsubject={subject}\nat={at}\n")
        .into_bytes()
}

/// One officer's approval of a ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub operation: String,
    pub subject: String,
    /// When the officer signed (unix seconds).
    pub at: i64,
    /// The officer's certificate (PEM).
    pub certificate_pem: String,
    /// The signature over [`statement`] (base64).
    pub signature_base64: String,
}

/// Signs an approval of `operation` on `subject` with an officer's key (`key_pem`: PKCS#8
/// "PRIVATE KEY", RSA or ECDSA P-256) for its certificate `certificate_pem`.
pub fn approve(
    operation: &str,
    subject: &str,
    certificate_pem: &str,
    key_pem: &str,
    at: OffsetDateTime,
) -> Result<Approval> {
    let bad_key = |d: &str| Error::Invalid(format!("officer key: {d}"));
    let (label, der) =
        der::pem::decode_vec(key_pem.as_bytes()).map_err(|_| bad_key("not a PEM file"))?;
    if label != "PRIVATE KEY" {
        return Err(bad_key("expected an unencrypted PKCS#8 PRIVATE KEY"));
    }
    let at_s = at.unix_timestamp();
    let message = statement(operation, subject, at_s);
    let rng = SystemRandom::new();
    let signature = if let Ok(pair) = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der) {
        crate::keys::sign_with(&pair, &rng, &message)?
    } else if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der) {
        pair.sign(&rng, &message)
            .map_err(|_| bad_key("ECDSA signature failed"))?
            .as_ref()
            .to_vec()
    } else {
        return Err(bad_key("neither an RSA nor an ECDSA P-256 key"));
    };
    let approval = Approval {
        operation: operation.to_owned(),
        subject: subject.to_owned(),
        at: at_s,
        certificate_pem: certificate_pem.to_owned(),
        signature_base64: base64::engine::general_purpose::STANDARD.encode(signature),
    };
    // The key must be the certificate's: checked here so the officer learns it at once.
    approval_key(&approval)?;
    Ok(approval)
}

/// The certificate's SubjectPublicKeyInfo, once the approval's signature verifies under it.
fn approval_key(a: &Approval) -> Result<Vec<u8>> {
    let refused = |d: String| Error::DualControl(d);
    let (_, pem) = x509_parser::pem::parse_x509_pem(a.certificate_pem.as_bytes())
        .map_err(|_| refused("an approval's certificate is not a PEM certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
        .map_err(|e| refused(format!("an approval's certificate does not parse: {e}")))?;
    let spki = cert.tbs_certificate.subject_pki.clone();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(a.signature_base64.trim())
        .map_err(|_| refused("an approval's signature is not base64".into()))?;
    let message = statement(&a.operation, &a.subject, a.at);
    let key = spki.subject_public_key.data.as_ref();
    let alg = spki.algorithm.algorithm.to_id_string();
    let ok = match alg.as_str() {
        RSA_ENCRYPTION => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
            .verify(&message, &signature)
            .is_ok(),
        EC_PUBLIC_KEY
            if spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|o| o.to_id_string() == P256) =>
        {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
                .verify(&message, &signature)
                .is_ok()
        }
        other => {
            return Err(refused(format!(
                "an approval's key is of an unsupported kind ({other})"
            )))
        }
    };
    if !ok {
        return Err(refused(format!(
            "an approval's signature does not verify under its certificate's key (serial {})",
            hex::encode_upper(cert.raw_serial())
        )));
    }
    Ok(spki.raw.to_vec())
}

/// The two (or more) distinct ca-officers who approved a ceremony.
#[derive(Debug, Clone)]
pub struct Quorum {
    pub officers: Vec<Officer>,
}

impl Quorum {
    /// How the audit record names them: `dual control: OF…(name), OF…(name)`.
    pub fn audit_detail(&self) -> String {
        let names: Vec<String> = self
            .officers
            .iter()
            .map(|o| format!("officer:{}({})", o.id, o.name))
            .collect();
        format!("dual control: {}", names.join(", "))
    }
}

/// Checks that two distinct, active ca-officers approved `operation` on `subject` (see the
/// module docs); a refusal is audited (`refused`) and changes nothing else. Call it before
/// the ceremony makes anything, and put [`Quorum::audit_detail`] in its audit record.
/// `store` is the authority's storage and `now` its clock's time.
pub fn require_two(
    store: &dyn Storage,
    now: OffsetDateTime,
    operation: &str,
    subject: &str,
    approvals: &[Approval],
) -> Result<Quorum> {
    match check(store, operation, subject, approvals, now) {
        Ok(q) => Ok(q),
        Err(e) => {
            let detail = format!("{} ({} approvals)", e.code(), approvals.len());
            store.transact(&|t| storage::audit(t, now, "refused", operation, &detail))?;
            Err(e)
        }
    }
}

fn check(
    store: &dyn Storage,
    operation: &str,
    subject: &str,
    approvals: &[Approval],
    now: OffsetDateTime,
) -> Result<Quorum> {
    let needs = || {
        Error::DualControl(format!(
            "{operation} on {subject} needs the approval of two distinct ca-officers; got {}",
            approvals.len()
        ))
    };
    if approvals.len() < 2 {
        return Err(needs());
    }
    let mut quorum: Vec<Officer> = Vec::new();
    for a in approvals {
        if a.operation != operation || a.subject != subject {
            return Err(Error::DualControl(format!(
                "an approval is for {} on {}, not {operation} on {subject}",
                a.operation, a.subject
            )));
        }
        if (now.unix_timestamp() - a.at).abs() > FRESH_SECS {
            return Err(Error::DualControl(format!(
                "an approval was signed more than {FRESH_SECS} s away from the CA's clock; \
                 sign it again"
            )));
        }
        let spki = approval_key(a)?;
        let officer = officers::authenticate(store, &spki, now)?;
        if officer.role != Role::CaOfficer {
            return Err(Error::Forbidden {
                actor: officers::Actor::Officer(officer.clone()).label(),
                action: format!("approve {operation} (ca-officers only)"),
            });
        }
        if quorum.iter().any(|o| o.id == officer.id) {
            return Err(Error::DualControl(format!(
                "officer {} approved {operation} twice: two distinct ca-officers are needed",
                officer.name
            )));
        }
        quorum.push(officer);
    }
    Ok(Quorum { officers: quorum })
}

/// Two ca-officers registered for tests, and their approvals.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::officers::NewOfficer;
    use crate::Authority;

    /// Registers two new ca-officers (once per authority: names `ceremony-a`/`-b`) and
    /// returns their approvals of `operation` on `subject` at the authority's time.
    pub fn two_approvals(a: &Authority, operation: &str, subject: &str) -> Vec<Approval> {
        let now = a.clock().now();
        ["ceremony-a", "ceremony-b"]
            .iter()
            .map(|name| {
                let key = rcgen::KeyPair::generate().unwrap();
                let cert = rcgen::CertificateParams::new(vec![format!("{name}.example")])
                    .unwrap()
                    .self_signed(&key)
                    .unwrap();
                let known = officers::list(a.storage().as_ref())
                    .unwrap()
                    .into_iter()
                    .any(|o| o.name == *name);
                let name = if known {
                    format!("{name}-{}", hex::encode(&a.random_serial().unwrap()[..4]))
                } else {
                    name.to_string()
                };
                officers::add(
                    a,
                    &NewOfficer {
                        name,
                        role: Role::CaOfficer,
                        municipality: None,
                        spki: rcgen::PublicKeyData::subject_public_key_info(&key),
                        certificate: None,
                        not_before: None,
                        not_after: None,
                    },
                )
                .unwrap();
                approve(operation, subject, &cert.pem(), &key.serialize_pem(), now).unwrap()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::officers::{NewOfficer, OfficerState};
    use crate::Authority;
    use std::sync::Arc;

    struct Person {
        cert: String,
        key: String,
    }

    /// A key and a (self-signed) certificate for it, registered as an officer when `role`.
    fn person(a: &Authority, name: &str, role: Option<Role>) -> Person {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.example")])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        if let Some(role) = role {
            officers::add(
                a,
                &NewOfficer {
                    name: name.into(),
                    role,
                    municipality: (role == Role::MunicipalClerk).then(|| "Chiyoda-ku".into()),
                    spki: rcgen::PublicKeyData::subject_public_key_info(&key),
                    certificate: None,
                    not_before: None,
                    not_after: None,
                },
            )
            .unwrap();
        }
        Person {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn approval(p: &Person, op: &str, subject: &str, at: OffsetDateTime) -> Approval {
        approve(op, subject, &p.cert, &p.key, at).unwrap()
    }

    fn refusals(a: &Authority) -> usize {
        a.audit_records()
            .unwrap()
            .iter()
            .filter(|r| r.action == "refused")
            .count()
    }

    #[test]
    fn two_distinct_active_ca_officers_and_nothing_less() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-03-01 01:00 UTC);
        let a = Authority::init(
            &tmp.path().join("d"),
            policies::policy::DEFAULT_POLICY,
            b"ceremony passphrase",
            Arc::new(FixedClock::new(t0)),
        )
        .unwrap();
        let (op, h) = ("root-rollover", "signing");
        let sato = person(&a, "Sato", Some(Role::CaOfficer));
        let suzuki = person(&a, "Suzuki", Some(Role::CaOfficer));
        let clerk = person(&a, "Tanaka", Some(Role::MunicipalClerk));
        let auditor = person(&a, "Ito", Some(Role::Auditor));
        let stranger = person(&a, "Nobody", None);

        let q = require_two(
            a.storage().as_ref(),
            t0,
            op,
            h,
            &[approval(&sato, op, h, t0), approval(&suzuki, op, h, t0)],
        )
        .unwrap();
        let detail = q.audit_detail();
        assert!(
            detail.contains("(Sato)") && detail.contains("(Suzuki)"),
            "{detail}"
        );

        let refused = |approvals: Vec<Approval>, code: &str, needle: &str| {
            let before = refusals(&a);
            let e = require_two(a.storage().as_ref(), t0, op, h, &approvals).unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
            assert_eq!(refusals(&a), before + 1, "the refusal is audited");
        };
        // One officer, or the same officer twice.
        refused(vec![approval(&sato, op, h, t0)], "dual_control", "got 1");
        refused(vec![], "dual_control", "got 0");
        refused(
            vec![approval(&sato, op, h, t0), approval(&sato, op, h, t0)],
            "dual_control",
            "approved root-rollover twice",
        );
        // Not ca-officers, or not officers at all.
        refused(
            vec![approval(&sato, op, h, t0), approval(&clerk, op, h, t0)],
            "forbidden",
            "ca-officers only",
        );
        refused(
            vec![approval(&auditor, op, h, t0), approval(&sato, op, h, t0)],
            "forbidden",
            "ca-officers only",
        );
        refused(
            vec![approval(&sato, op, h, t0), approval(&stranger, op, h, t0)],
            "unknown_officer",
            "unknown officer",
        );
        // Approved for something else, too old, or with a forged signature.
        refused(
            vec![
                approval(&sato, op, h, t0),
                approval(&suzuki, op, "auth", t0),
            ],
            "dual_control",
            "not root-rollover on signing",
        );
        refused(
            vec![
                approval(&sato, op, h, t0),
                approval(&suzuki, op, h, t0 - time::Duration::minutes(10)),
            ],
            "dual_control",
            "sign it again",
        );
        let mut forged = approval(&suzuki, op, h, t0);
        forged.certificate_pem = stranger.cert.clone();
        refused(
            vec![approval(&sato, op, h, t0), forged],
            "dual_control",
            "does not verify",
        );
        // A suspended officer's approval stops counting at once.
        officers::set_state(&a, "Suzuki", OfficerState::Suspended).unwrap();
        refused(
            vec![approval(&sato, op, h, t0), approval(&suzuki, op, h, t0)],
            "officer_not_active",
            "suspended",
        );
        a.audit_verify().unwrap();
    }
}
