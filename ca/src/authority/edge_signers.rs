//! A CA node's half of edges' OCSP signer renewal ([`crate::edge_signer`] has the flow):
//! certifying the pending signer requests edges put into the store.
//!
//! For each pending request, in order:
//!
//! 1. judged again ([`crate::edge_signer::judge`]: proof of possession, not a root's key of
//!    either hierarchy and any generation, not blocked), plus: not a key certified to a card
//!    holder, the generation asked for is the hierarchy's newest (a delegated signer belongs
//!    to the newest generation), and the signer the edge has in force is an OCSP signer
//!    certificate of that hierarchy in the store. A node's first request for a new
//!    generation (its signer in force is of another one) comes from a **known edge node**
//!    only: its signer in force is of the generation just before, not expired, not revoked. A request that fails is answered
//!    **refused** with the reason (audit `edge-signer-refuse`) and nothing is issued;
//! 2. left pending while the edge's signer in force is outside the policy's
//!    `validity.ocsp_signer_renew_days` (edges and CA nodes may disagree on the time by a
//!    little; a request filed early is certified once the margin opens) — unless that signer
//!    is revoked or from an older root generation, which makes it due at once;
//! 3. certified: the newest generation's root key signs a certificate made by the one
//!    function `jpki init` and every renewal use (profile, lint, signature verified with the
//!    root's key), and one unit of work records the certificate, the serial counter, the
//!    answer in the request and the audit record `edge-signer-issue` — provided the request
//!    is still the one judged (an edge may have replaced it meanwhile; then it waits for the
//!    next round). Two CA nodes certifying at once: the second unit of work finds the request
//!    answered and stores nothing (its signature is discarded, never published).

use policies::Hierarchy;
use serde::Serialize;

use super::renew::Expiry;
use super::Authority;
use crate::error::{Error, Result};
use crate::records::{CertKind, CertRecord, State};
use crate::storage::{self, SignerAnswer, SignerRequest};

/// What a CA node did with one edge's signer request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerAnswered {
    pub node: String,
    pub hierarchy: Hierarchy,
    pub generation: u32,
    /// The serial (hex) of the certificate issued.
    pub issued: Option<String>,
    /// Why it was refused.
    pub refused: Option<String>,
}

/// Whether an error of judging a request is the request's fault (answered refused) rather
/// than the CA node's (a database that does not answer: the request stays pending).
fn refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::Csr(_) | Error::Refused(_) | Error::KeyBlocked(_) | Error::Invalid(_)
    )
}

impl Authority {
    /// Answers every pending edge signer request that is due (see the module docs); returns
    /// what was answered. Needs the CA passphrase (or token) once one is certified.
    pub fn certify_signer_requests(&self) -> Result<Vec<SignerAnswered>> {
        let mut out = Vec::new();
        for r in self.storage.pending_signer_requests()? {
            if let Some(a) = self.answer_signer_request(&r)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The request's key (SPKI) when it may be certified, else the refusal.
    fn judge_signer_request(&self, r: &SignerRequest) -> Result<(Vec<u8>, CertRecord)> {
        let h = r.hierarchy;
        crate::edge_signer::check_node(&r.node)?;
        let newest = self.root(h).generation;
        if r.generation != newest {
            return Err(Error::Refused(format!(
                "the request is for {h} root generation {}, but the newest is {newest}: a \
                 delegated OCSP signer belongs to the newest generation (an edge takes a new \
                 generation up by itself and asks for its signer)",
                r.generation
            )));
        }
        let roots: Vec<Vec<u8>> = Hierarchy::ALL
            .iter()
            .flat_map(|&x| self.roots(x))
            .map(|root| root.spki.clone())
            .collect();
        let spki = crate::edge_signer::judge(self.storage.as_ref(), &r.csr, &roots)?;
        if let Some(owner) = self.storage.key_owner(&storage::fingerprint(&spki))? {
            return Err(Error::Refused(format!(
                "the request's key is certified to card holder {} ({}): a holder's key never \
                 serves as an OCSP signer",
                owner.holder, owner.hierarchy
            )));
        }
        let in_force = self
            .storage
            .certificate(h, &r.in_force)?
            .filter(|c| c.kind == CertKind::OcspSigner)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "the edge's signer in force ({h} serial {}) is no OCSP signer certificate \
                     this CA issued",
                    hex::encode_upper(&r.in_force)
                ))
            })?;
        if in_force.generation != r.generation {
            self.judge_first_request(r, &in_force)?;
        }
        Ok((spki, in_force))
    }

    /// A node's first request for a new root generation (its signer in force is of another
    /// generation): certified only for a **known edge node**, one that presents an OCSP
    /// signer of the generation just before, which this CA issued (the store holds it), still
    /// valid and not revoked — the signer `jpki edge export` gave it, or one it renewed since.
    /// Anything else is refused with the reason (audited as every refusal).
    fn judge_first_request(&self, r: &SignerRequest, in_force: &CertRecord) -> Result<()> {
        let (h, g) = (r.hierarchy, r.generation);
        let unknown = |why: String| {
            Error::Refused(format!(
                "edge node {} is not known for {h} root generation {g}: {why}",
                r.node
            ))
        };
        let serial = hex::encode_upper(&r.in_force);
        if in_force.generation + 1 != g {
            return Err(unknown(format!(
                "a first request for a generation must name the node's OCSP signer of                  generation {}, but signer {serial} is of generation {}",
                g.saturating_sub(1),
                in_force.generation
            )));
        }
        if in_force.not_after <= self.clock.now() {
            return Err(unknown(format!("its OCSP signer {serial} has expired")));
        }
        if self.status_of(in_force)?.state == State::Revoked {
            return Err(unknown(format!(
                "its OCSP signer {serial} is revoked (a node whose signer was revoked gets no                  signer of a new generation)"
            )));
        }
        Ok(())
    }

    fn answer_signer_request(&self, r: &SignerRequest) -> Result<Option<SignerAnswered>> {
        let h = r.hierarchy;
        let now = self.clock.now();
        let subject = format!("{} {h}", r.node);
        let answered = |issued: Option<String>, refused: Option<String>| SignerAnswered {
            node: r.node.clone(),
            hierarchy: h,
            generation: r.generation,
            issued,
            refused,
        };
        let (spki, in_force) = match self.judge_signer_request(r) {
            Ok(v) => v,
            Err(e) if refusal(&e) => {
                let reason = e.to_string();
                let stored = self.storage.transact(&|t| {
                    if t.signer_request(&r.node, h, r.generation)?.as_ref() != Some(r) {
                        return Err(Error::Retry);
                    }
                    t.put_signer_request(&SignerRequest {
                        answer: Some(SignerAnswer::Refused {
                            reason: reason.clone(),
                            at: now,
                        }),
                        ..r.clone()
                    })?;
                    storage::audit(t, now, "edge-signer-refuse", &subject, &reason)
                });
                return match stored {
                    Ok(()) => {
                        tracing::error!(node = %r.node, hierarchy = %h, reason = %reason,
                            "refused an edge's OCSP signer request");
                        Ok(Some(answered(None, Some(reason))))
                    }
                    Err(Error::Retry) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        // Due: within the margin, revoked, or issued by an older root generation.
        let margin = i64::from(self.policy.validity.ocsp_signer_renew_days());
        let due = Expiry::of("ocsp-signer", Some(h), &in_force.der, margin)?.due(now)
            || super::rollover::authority_key_id(&in_force.der)
                .is_some_and(|(k, _)| k != self.root(h).key_id)
            || self.status_of(&in_force)?.state == State::Revoked;
        if !due {
            return Ok(None);
        }
        let root = self.root(h);
        let root_signer = self.signer(h)?;
        let (serial, counter) = self.new_serial(h)?;
        let (der, not_after) = super::init::ocsp_signer_certificate(
            &self.policy,
            h,
            now,
            &serial,
            &spki,
            (&root.spki, &root.serial),
            &|tbs| policies::Signer::sign(root_signer.as_ref(), tbs),
        )?;
        let record = CertRecord {
            hierarchy: h,
            serial: serial.clone(),
            kind: CertKind::OcspSigner,
            holder: None,
            partition: None,
            not_before: now,
            not_after,
            der: der.clone(),
            generation: root.generation,
        };
        let hexs = super::serial_hex(&serial);
        let detail = format!(
            "serial {hexs}; generation {}; key {}; replaces signer {}; notAfter {not_after}",
            r.generation,
            hex::encode(storage::fingerprint(&spki)),
            hex::encode_upper(&r.in_force)
        );
        let stored = self.storage.transact(&|t| {
            if t.signer_request(&r.node, h, r.generation)?.as_ref() != Some(r) {
                return Err(Error::Retry);
            }
            t.add_certificate(&record, None)?;
            if counter > 0 {
                t.note_serial(h, counter)?;
            }
            t.put_signer_request(&SignerRequest {
                answer: Some(SignerAnswer::Issued {
                    der: der.clone(),
                    at: now,
                }),
                ..r.clone()
            })?;
            storage::audit(t, now, "edge-signer-issue", &subject, &detail)
        });
        match stored {
            Ok(()) => {
                tracing::warn!(node = %r.node, hierarchy = %h, serial = %hexs,
                    "certified an edge's new OCSP signer");
                Ok(Some(answered(Some(hexs), None)))
            }
            Err(Error::Retry) => Ok(None),
            // Another CA node took the serial: the counter now follows the store's and the
            // request is answered on a later pass, signed with a fresh serial.
            Err(e) if self.serial_taken(&e)? => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use std::sync::Arc;

    fn csr(k: &crate::keys::NewKey) -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        crate::edge_signer::make_csr("edge-1", &k.spki, &|m| {
            crate::keys::sign_with(&k.pair, &rng, m)
        })
        .unwrap()
    }

    fn request(a: &Authority, h: Hierarchy, csr: Vec<u8>) -> SignerRequest {
        let in_force = a.ocsp_signer_certificate(h).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&in_force).unwrap();
        SignerRequest {
            node: "edge-1".into(),
            hierarchy: h,
            generation: 1,
            csr,
            in_force: c.raw_serial().to_vec(),
            requested_at: a.clock().now(),
            answer: None,
        }
    }

    #[test]
    fn due_requests_are_certified_and_bad_ones_refused_with_nothing_issued() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let pass = b"edge signer passphrase";
        let a = Authority::init(
            &tmp.path().join("data"),
            policies::policy::DEFAULT_POLICY,
            pass,
            Arc::new(FixedClock::new(t0)),
        )
        .unwrap();
        let h = Hierarchy::Signing;
        let key = crate::keys::generate().unwrap();
        let good = request(&a, h, csr(&key));
        a.storage()
            .transact(&|t| t.put_signer_request(&good))
            .unwrap();
        // Not due yet: left pending, nothing issued.
        assert!(a.certify_signer_requests().unwrap().is_empty());
        assert_eq!(
            a.storage().pending_signer_requests().unwrap(),
            vec![good.clone()]
        );
        drop(a);

        // 340 days on, the signer is within its 30-day margin.
        let t1 = t0 + time::Duration::days(340);
        let a = Authority::open(
            &tmp.path().join("data"),
            Some(pass.to_vec()),
            Arc::new(FixedClock::new(t1)),
        )
        .unwrap();
        // Bad requests of another node: a tampered CSR, a root's key, a wrong generation.
        let mut tampered = csr(&key);
        let n = tampered.len();
        tampered[n - 3] ^= 1;
        let root_key = crate::keys::read_encrypted(&a.data_dir().key(h, "root"), pass).unwrap();
        let root_csr = {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            crate::edge_signer::make_csr("edge-2", &a.root(h).spki, &|m| {
                crate::keys::sign_with(&root_key, &rng, m)
            })
            .unwrap()
        };
        let bad = [
            SignerRequest {
                node: "edge-2".into(),
                csr: tampered,
                ..good.clone()
            },
            SignerRequest {
                node: "edge-3".into(),
                csr: root_csr,
                ..good.clone()
            },
            SignerRequest {
                node: "edge-4".into(),
                generation: 2,
                ..good.clone()
            },
        ];
        for b in &bad {
            a.storage().transact(&|t| t.put_signer_request(b)).unwrap();
        }
        let counter = a.storage().serial_counter(h).unwrap();
        let done = a.certify_signer_requests().unwrap();
        assert_eq!(done.len(), 4, "{done:?}");
        let by = |node: &str| done.iter().find(|d| d.node == node).unwrap();
        assert!(by("edge-2")
            .refused
            .as_ref()
            .unwrap()
            .contains("does not verify"));
        assert!(by("edge-3")
            .refused
            .as_ref()
            .unwrap()
            .contains("a root's key"));
        assert!(by("edge-4")
            .refused
            .as_ref()
            .unwrap()
            .contains("generation 2"));
        for node in ["edge-2", "edge-3", "edge-4"] {
            assert!(by(node).issued.is_none());
        }
        // Only the good one was issued: one serial, one certificate.
        let serial = by("edge-1").issued.clone().unwrap();
        assert_eq!(a.storage().serial_counter(h).unwrap(), counter + 1);
        let stored = a.storage().signer_request("edge-1", h, 1).unwrap().unwrap();
        let Some(SignerAnswer::Issued { der, at }) = stored.answer else {
            panic!("{stored:?}")
        };
        assert_eq!(at, t1);
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(hex::encode_upper(c.raw_serial()), serial);
        assert_eq!(c.public_key().raw, key.spki.as_slice());
        crate::authority::init::check_signature(&a.root(h).spki, &der).unwrap();
        let rec = a.storage().certificate(h, c.raw_serial()).unwrap().unwrap();
        assert_eq!(rec.kind, CertKind::OcspSigner);
        assert!(a.storage().pending_signer_requests().unwrap().is_empty());
        let actions: Vec<String> = a
            .audit_records()
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions.iter().filter(|x| *x == "edge-signer-issue").count(),
            1
        );
        assert_eq!(
            actions
                .iter()
                .filter(|x| *x == "edge-signer-refuse")
                .count(),
            3
        );
        a.audit_verify().unwrap();
        a.check_indexes().unwrap();
        // Answered requests are not answered again.
        assert!(a.certify_signer_requests().unwrap().is_empty());
    }

    #[test]
    fn a_first_request_for_a_new_generation_is_certified_only_for_a_known_edge() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = time::macros::datetime!(2026-01-10 03:00 UTC);
        let clock = Arc::new(FixedClock::new(t0));
        let a = Authority::init(
            &tmp.path().join("data"),
            policies::policy::DEFAULT_POLICY,
            b"edge generation passphrase",
            clock.clone(),
        )
        .unwrap();
        let h = Hierarchy::Auth;
        // The signer `jpki edge export` hands out: generation 1's.
        let exported = request(&a, h, csr(&crate::keys::generate().unwrap())).in_force;
        let roll = |a: &Authority| {
            let approvals = crate::ceremony::testing::two_approvals(
                a,
                super::super::rollover::ROLLOVER_CEREMONY,
                "auth",
            );
            a.rollover_root(h, &approvals).unwrap();
        };
        clock.advance(time::Duration::days(1));
        roll(&a);
        let put = |node: &str, g: u32, in_force: &[u8]| {
            let r = SignerRequest {
                node: node.into(),
                generation: g,
                in_force: in_force.to_vec(),
                ..request(&a, h, csr(&crate::keys::generate().unwrap()))
            };
            a.storage().transact(&|t| t.put_signer_request(&r)).unwrap();
        };
        // A known edge (its in-force signer is generation 1's, valid): certified at once,
        // under generation 2's root.
        put("edge-1", 2, &exported);
        let done = a.certify_signer_requests().unwrap();
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(done[0].issued.is_some(), "{done:?}");
        let stored = a.storage().signer_request("edge-1", h, 2).unwrap().unwrap();
        let Some(SignerAnswer::Issued { der, .. }) = stored.answer else {
            panic!("{stored:?}")
        };
        crate::authority::init::check_signature(&a.root(h).spki, &der).unwrap();
        assert_eq!(a.root(h).generation, 2);

        // A third generation: a node naming a generation-1 signer for generation 3 is not
        // known (it skipped a generation); one whose signer expired is not either.
        clock.advance(time::Duration::days(1));
        roll(&a);
        put("edge-2", 3, &exported);
        clock.advance(time::Duration::days(400));
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        put("edge-3", 3, c.raw_serial());
        let counter = a.storage().serial_counter(h).unwrap();
        let done = a.certify_signer_requests().unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        let by = |node: &str| done.iter().find(|d| d.node == node).unwrap().clone();
        let r2 = by("edge-2").refused.unwrap();
        assert!(
            r2.contains("edge node edge-2 is not known for auth root generation 3")
                && r2.contains("of generation 1"),
            "{r2}"
        );
        let r3 = by("edge-3").refused.unwrap();
        assert!(r3.contains("has expired"), "{r3}");
        assert_eq!(
            a.storage().serial_counter(h).unwrap(),
            counter,
            "nothing issued"
        );
        a.audit_verify().unwrap();
    }
}
