//! Signed checkpoints of the audit chain: evidence, checkable from outside, that the chain up
//! to a point was not rewritten.
//!
//! The audit chain ([`crate::audit`]) links each record to the one before by hash, so a record
//! changed, removed or inserted breaks it — unless whoever changes it recomputes every hash
//! after it, which anyone who can write the database can do. A **checkpoint** is the CA's
//! signed statement "record `seq` had hash `hash` at time `at`" ([`Checkpoint::statement`]),
//! made with a key of its own (the checkpoint key, encrypted at rest under the CA's
//! passphrase like every CA key, its certificate from the platform-operator CA), stored apart
//! from the chain ([`crate::storage::Storage::checkpoints`]) and exportable to a third party.
//! A rewrite — even a consistent one — changes the hash of the checkpointed record or of one
//! before it, hence of the checkpointed one: [`verify`] finds the signed hash and the chain's
//! disagree, and says where. Forging a checkpoint for the rewritten chain needs the key.
//!
//! What it does not prove: records after the last checkpoint (a rewrite of those is found by
//! the next checkpoint only if it was made before the rewrite); that is why `jpki serve`
//! checkpoints at a fixed interval and on shutdown, and `jpki audit checkpoint` does so on
//! demand. A checkpoint is not itself an audit record: recording one would move the head it
//! has just signed, and every checkpoint would call for another.
//!
//! The signature is RSA PKCS#1 v1.5 with SHA-256 over the statement's bytes — verifiable with
//! `openssl dgst -sha256 -verify` and the certificate's public key (docs/officers.md).

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;

pub use crate::audit::Checkpoint;
use crate::audit::{self, Record};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::Authority;

/// The checkpoint key's name among the CA's named keys (`keys/audit-checkpoint.key`).
pub const KEY_NAME: &str = "audit-checkpoint";

/// Signs a checkpoint of the chain's head with `signer` (whose certificate it carries) and
/// stores it. `None` when there is nothing new to sign: no record yet, or the head is the
/// last checkpoint's.
pub fn make(authority: &Authority, signer: &dyn policies::Signer) -> Result<Option<Checkpoint>> {
    make_at(
        authority.storage().as_ref(),
        authority.clock().now(),
        signer,
    )
}

/// [`make`] over a storage at a given time.
pub fn make_at(
    storage: &dyn Storage,
    at: time::OffsetDateTime,
    signer: &dyn policies::Signer,
) -> Result<Option<Checkpoint>> {
    let Some(head) = storage.audit_head()? else {
        return Ok(None);
    };
    if storage
        .checkpoints()?
        .last()
        .is_some_and(|c| c.seq == head.seq && c.hash == head.hash)
    {
        return Ok(None);
    }
    let statement = Checkpoint::statement(head.seq, &head.hash, at)?;
    let signature = signer.sign(statement.as_bytes())?;
    // A faulty RSA signature can leak the key: checked before it is kept.
    check_signature(signer.certificate(), statement.as_bytes(), &signature)?;
    let cp = Checkpoint {
        seq: head.seq,
        hash: head.hash,
        at,
        signature: base64::engine::general_purpose::STANDARD.encode(&signature),
        cert_pem: crate::records::pem(signer.certificate()),
    };
    storage.transact(&|t| t.put_checkpoint(&cp))?;
    tracing::info!(seq = cp.seq, "audit checkpoint signed");
    Ok(Some(cp))
}

/// Whether `signature` over `message` verifies with the key of the certificate `cert_der`.
pub fn check_signature(cert_der: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::Invalid(format!("checkpoint certificate does not parse: {e}")))?;
    let key = &cert.public_key().subject_public_key.data;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
        .verify(message, signature)
        .map_err(|_| Error::Invalid("the checkpoint signature does not verify".into()))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// Records in the chain (all verified as a chain).
    pub records: u64,
    /// Checkpoints checked (signature, and the chain's hash at their record).
    pub checkpoints: usize,
    /// The last checkpoint's record: the chain up to it is proven not rewritten.
    pub proven_to: Option<u64>,
}

/// Verifies the chain and every checkpoint: the signature (with the certificate it carries,
/// which `trust` must accept — the caller checks it against the operator CA) and that the
/// chain's record at the checkpoint's sequence number has the hash it signed. The first
/// disagreement is [`Error::AuditBroken`] naming the record.
pub fn verify(storage: &dyn Storage, trust: &dyn Fn(&[u8]) -> Result<()>) -> Result<Verified> {
    let checkpoints = storage.checkpoints()?;
    // The chain, in pages, remembering the hashes the checkpoints name.
    let wanted: std::collections::BTreeSet<u64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut seen = std::collections::BTreeMap::new();
    let mut records: Vec<Record> = Vec::new();
    const PAGE: usize = 4096;
    loop {
        let from = records.last().map_or(0, |r| r.seq + 1);
        let page = storage.audit_records(from, PAGE)?;
        let done = page.len() < PAGE;
        for r in &page {
            if wanted.contains(&r.seq) {
                seen.insert(r.seq, r.hash.clone());
            }
        }
        records.extend(page);
        if done {
            break;
        }
    }
    let n = audit::verify(records.into_iter().map(Ok), storage.audit_head()?)?;
    for c in &checkpoints {
        let der = pem_to_der(&c.cert_pem).map_err(|e| broken(c, &e.to_string()))?;
        trust(&der).map_err(|e| broken(c, &format!("its certificate is not trusted: {e}")))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&c.signature)
            .map_err(|_| broken(c, "its signature is not base64"))?;
        let statement = Checkpoint::statement(c.seq, &c.hash, c.at)?;
        check_signature(&der, statement.as_bytes(), &signature).map_err(|_| {
            broken(
                c,
                "its signature does not verify (the checkpoint was forged or changed)",
            )
        })?;
        match seen.get(&c.seq) {
            None => {
                return Err(broken(
                    c,
                    "the chain has no such record any more (history was cut short)",
                ))
            }
            Some(h) if *h != c.hash => {
                return Err(broken(
                    c,
                    &format!(
                        "the record's hash is {h}, the checkpoint signed at {} says {} \
                         (history up to here was rewritten)",
                        c.at, c.hash
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(Verified {
        records: n,
        checkpoints: checkpoints.len(),
        proven_to: checkpoints.last().map(|c| c.seq),
    })
}

fn broken(c: &Checkpoint, problem: &str) -> Error {
    Error::AuditBroken {
        seq: c.seq,
        problem: format!("checkpoint of record {}: {problem}", c.seq),
    }
}

/// The DER of the first certificate of a PEM text.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| Error::Invalid(format!("not a PEM certificate: {e}")))?;
    Ok(p.contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditIntent;
    use crate::storage::memory::MemoryStorage;
    use time::macros::datetime;

    /// A self-signed certificate and its key, as a signer (rcgen; tests only).
    struct TestSigner {
        key: rcgen::KeyPair,
        cert: Vec<u8>,
    }

    impl TestSigner {
        fn new() -> TestSigner {
            let key =
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                    .unwrap();
            let cert = rcgen::CertificateParams::new(vec!["checkpoint".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            TestSigner {
                cert: cert.der().to_vec(),
                key,
            }
        }
    }

    impl policies::Signer for TestSigner {
        fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, policies::SignError> {
            use rcgen::SigningKey;
            self.key
                .sign(message)
                .map_err(|e| policies::SignError(e.to_string()))
        }
        fn certificate(&self) -> &[u8] {
            &self.cert
        }
    }

    fn intent(i: u32, detail: &str) -> AuditIntent {
        AuditIntent {
            at: datetime!(2026-12-05 00:00 UTC) + time::Duration::minutes(i.into()),
            actor: "system:test".into(),
            action: "revoke".into(),
            subject: format!("S{i}"),
            detail: detail.into(),
        }
    }

    fn append(s: &MemoryStorage, from: u32, to: u32) {
        for i in from..to {
            s.transact(&|t| t.audit(intent(i, "keyCompromise")))
                .unwrap();
        }
    }

    fn trust_all(_: &[u8]) -> Result<()> {
        Ok(())
    }

    #[test]
    fn checkpoints_sign_the_head_once_and_verify() {
        let s = MemoryStorage::new();
        let signer = TestSigner::new();
        let at = datetime!(2026-12-05 12:00 UTC);
        assert_eq!(make_at(&s, at, &signer).unwrap(), None, "no record yet");
        append(&s, 0, 5);
        let cp = make_at(&s, at, &signer).unwrap().unwrap();
        assert_eq!(cp.seq, 4);
        assert_eq!(
            make_at(&s, at, &signer).unwrap(),
            None,
            "the head did not move"
        );
        append(&s, 5, 8);
        assert_eq!(make_at(&s, at, &signer).unwrap().unwrap().seq, 7);
        let v = verify(&s, &trust_all).unwrap();
        assert_eq!(
            v,
            Verified {
                records: 8,
                checkpoints: 2,
                proven_to: Some(7)
            }
        );
        // The certificate is the caller's to trust.
        let e = verify(&s, &|_| Err(Error::Invalid("not the operator CA's".into()))).unwrap_err();
        assert!(e.to_string().contains("not trusted"), "{e}");
    }

    /// Whoever can write the database rewrites record 2 and recomputes every hash after it:
    /// the chain verifies on its own, the checkpoint does not.
    #[test]
    fn a_consistent_rewrite_is_caught_by_the_checkpoint() {
        let s = MemoryStorage::new();
        let signer = TestSigner::new();
        append(&s, 0, 6);
        make_at(&s, datetime!(2026-12-05 12:00 UTC), &signer).unwrap();
        append(&s, 6, 8);

        let forged = MemoryStorage::new();
        let mut head = None;
        for (i, r) in s
            .audit_records(0, usize::MAX)
            .unwrap()
            .into_iter()
            .enumerate()
        {
            let detail = if i == 2 {
                "superseded"
            } else {
                r.detail.as_str()
            };
            let (rec, h) = audit::link(head.as_ref(), &intent(i as u32, detail)).unwrap();
            forged.transact(&|t| t.import_audit(rec.clone())).unwrap();
            head = Some(h);
        }
        for c in s.checkpoints().unwrap() {
            forged.transact(&|t| t.put_checkpoint(&c)).unwrap();
        }
        // The chain alone is consistent.
        audit::verify(
            forged
                .audit_records(0, usize::MAX)
                .unwrap()
                .into_iter()
                .map(Ok),
            forged.audit_head().unwrap(),
        )
        .unwrap();
        let e = verify(&forged, &trust_all).unwrap_err();
        assert_eq!(e.code(), "audit_broken");
        assert!(e.to_string().contains("rewritten"), "{e}");

        // Changing the checkpoint to the rewritten chain's hash, without the key to sign it,
        // does not help: its signature no longer verifies.
        let mut c = forged.checkpoints().unwrap().remove(0);
        c.hash = forged.audit_records(5, 1).unwrap()[0].hash.clone();
        forged.transact(&|t| t.put_checkpoint(&c)).unwrap();
        let e = verify(&forged, &trust_all).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");

        // Cutting history short below the checkpoint is caught as well.
        let short = MemoryStorage::new();
        append(&short, 0, 3);
        for c in s.checkpoints().unwrap() {
            short.transact(&|t| t.put_checkpoint(&c)).unwrap();
        }
        let e = verify(&short, &trust_all).unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[test]
    fn the_statement_is_three_fixed_lines() {
        assert_eq!(
            Checkpoint::statement(7, "ab", datetime!(2026-12-05 12:00 UTC)).unwrap(),
            "jpki-audit-checkpoint-v1\nseq=7\nhash=ab\ntime=2026-12-05T12:00:00Z\n"
        );
    }
}
