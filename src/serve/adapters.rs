//! The storage authority seen through the publishers' narrow traits: revoked entries and CRL state
//! for the CRL publisher, certificate status for the OCSP responder, and the revocation
//! listener that keeps both current.

use std::sync::Arc;

use ca::records::State;
use ca::storage::Storage;
use policies::profile::Scope;
use policies::Hierarchy;
use time::OffsetDateTime;

fn boxed(e: ca::Error) -> crl_publisher::BoxError {
    Box::new(e)
}

fn time_of(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The storage authority as the CRL publisher's [`crl_publisher::Source`] and
/// [`crl_publisher::StateStore`].
pub struct CrlStore(pub Arc<dyn Storage>);

impl crl_publisher::Source for CrlStore {
    fn for_each(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
        each: &mut dyn FnMut(&crl_publisher::Entry),
    ) -> Result<(), crl_publisher::BoxError> {
        self.0
            .for_each_revoked(h, g, scope, &mut |r| {
                each(&crl_publisher::Entry {
                    serial: r.serial,
                    revoked_at: time_of(r.entry.revoked_at),
                    reason: r.entry.reason,
                    invalidity: r.entry.invalidity.map(time_of),
                    not_after: time_of(r.entry.not_after),
                });
                Ok(())
            })
            .map_err(boxed)
    }
}

impl crl_publisher::StateStore for CrlStore {
    fn scopes(&self) -> Result<Vec<crl_publisher::CrlId>, crl_publisher::BoxError> {
        self.0.crl_scopes().map_err(boxed)
    }

    fn load(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
    ) -> Result<Option<crl_publisher::State>, crl_publisher::BoxError> {
        match self.0.crl_state(h, g, scope.clone()).map_err(boxed)? {
            Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
            None => Ok(None),
        }
    }

    fn save(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
        state: &crl_publisher::State,
    ) -> Result<(), crl_publisher::BoxError> {
        let value = serde_json::to_vec(state)?;
        self.0
            .transact(&|t| t.put_crl_state(h, g, scope.clone(), &value))
            .map_err(boxed)
    }

    fn set_dirty(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
    ) -> Result<(), crl_publisher::BoxError> {
        self.0
            .transact(&|t| t.set_crl_dirty(h, g, scope.clone()))
            .map_err(boxed)
    }

    fn take_dirty(
        &self,
        h: Hierarchy,
        g: crl_publisher::Generation,
        scope: Scope,
    ) -> Result<bool, crl_publisher::BoxError> {
        let was = std::sync::atomic::AtomicBool::new(false);
        self.0
            .transact(&|t| {
                let set = t.crl_dirty(h, g, scope.clone())?;
                was.store(set, std::sync::atomic::Ordering::SeqCst);
                if set {
                    t.clear_crl_dirty(h, g, scope.clone())?;
                }
                Ok(())
            })
            .map_err(boxed)?;
        Ok(was.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// One indexed read of the dirty flags.
    fn dirty(&self) -> Result<Option<Vec<crl_publisher::CrlId>>, crl_publisher::BoxError> {
        self.0.dirty_partitions().map(Some).map_err(boxed)
    }

    /// Every number reserved and every dirty flag taken in one unit of work (one fsync).
    fn reserve_many(
        &self,
        batch: &[(crl_publisher::CrlId, crl_publisher::State)],
    ) -> Result<Vec<Result<bool, crl_publisher::BoxError>>, crl_publisher::BoxError> {
        let values = batch
            .iter()
            .map(|(id, state)| Ok((id, serde_json::to_vec(state)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let taken = std::sync::Mutex::new(Vec::new());
        self.0
            .transact(&|t| {
                let mut took = Vec::with_capacity(values.len());
                for ((h, g, scope), value) in &values {
                    t.put_crl_state(*h, *g, scope.clone(), value)?;
                    let set = t.crl_dirty(*h, *g, scope.clone())?;
                    if set {
                        t.clear_crl_dirty(*h, *g, scope.clone())?;
                    }
                    took.push(set);
                }
                *taken
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = took;
                Ok(())
            })
            .map_err(boxed)?;
        let taken = taken
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(taken.into_iter().map(Ok).collect())
    }

    /// Every state saved in one unit of work (one fsync).
    fn save_many(
        &self,
        batch: &[(crl_publisher::CrlId, crl_publisher::State)],
    ) -> Result<Vec<Result<(), crl_publisher::BoxError>>, crl_publisher::BoxError> {
        let values = batch
            .iter()
            .map(|(id, state)| Ok((id, serde_json::to_vec(state)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        self.0
            .transact(&|t| {
                for ((h, g, scope), value) in &values {
                    t.put_crl_state(*h, *g, scope.clone(), value)?;
                }
                Ok(())
            })
            .map_err(boxed)?;
        Ok(batch.iter().map(|_| Ok(())).collect())
    }
}

/// Certificate status for the OCSP responder: `unknown` for a serial never issued, held
/// certificates as revoked with certificateHold.
/// The store's key for a CertID's serial: the CertID carries the DER INTEGER's content (`00 80`
/// for 128), the store keys a certificate by its serial's magnitude (`80`); zero stays `00`.
fn magnitude(serial: &[u8]) -> &[u8] {
    let start = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    &serial[start..]
}

pub struct OcspStatus(pub Arc<dyn Storage>);

impl ocsp_responder::StatusSource for OcspStatus {
    /// Every certificate not yet expired, streamed from the store (what the pre-signer signs
    /// ahead).
    fn for_each_issued(
        &self,
        now: time::OffsetDateTime,
        each: &mut ocsp_responder::source::EachIssued<'_>,
    ) -> Result<(), ocsp_responder::SourceError> {
        let mut stopped = None;
        let walked = self.0.for_each_certificate(&mut |c| {
            if c.not_after <= now || c.holder.is_none() {
                return Ok(());
            }
            each(c.hierarchy, &c.serial).map_err(|e| {
                let text = e.0.clone();
                stopped = Some(e);
                ca::Error::Invalid(text)
            })
        });
        match (walked, stopped) {
            (_, Some(e)) => Err(e),
            (Err(e), None) => Err(ocsp_responder::SourceError(e.to_string())),
            (Ok(()), None) => Ok(()),
        }
    }

    fn status(
        &self,
        h: Hierarchy,
        serial: &[u8],
    ) -> Result<ocsp_responder::Status, ocsp_responder::SourceError> {
        let fail = |e: ca::Error| ocsp_responder::SourceError(e.to_string());
        let Some(st) = self.0.status(h, magnitude(serial)).map_err(fail)? else {
            return Ok(ocsp_responder::Status::Unknown);
        };
        Ok(match (st.state, st.reason, st.since) {
            (State::Good, _, _) => ocsp_responder::Status::Good,
            (_, Some(reason), Some(at)) => ocsp_responder::Status::Revoked { at, reason },
            _ => {
                return Err(ocsp_responder::SourceError(
                    "a revoked certificate without reason or time".into(),
                ))
            }
        })
    }
    fn issuer_key_id(
        &self,
        h: Hierarchy,
        serial: &[u8],
    ) -> Result<Option<Vec<u8>>, ocsp_responder::SourceError> {
        let fail = |e: ca::Error| ocsp_responder::SourceError(e.to_string());
        let Some(c) = self.0.certificate(h, magnitude(serial)).map_err(fail)? else {
            return Ok(None);
        };
        Ok(ca::authority::rollover::issuer_key_id_of(&c.der))
    }

    /// The store's issuance log (every holder certificate, in its unit of work): the
    /// pre-signer follows it instead of walking every certificate (#14).
    fn issued_log_head(&self) -> Result<Option<u64>, ocsp_responder::SourceError> {
        self.0
            .issuance_log_head()
            .map(Some)
            .map_err(|e| ocsp_responder::SourceError(e.to_string()))
    }

    fn issued_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ocsp_responder::Issued>, ocsp_responder::SourceError> {
        let page = self
            .0
            .issued_since(after, limit)
            .map_err(|e| ocsp_responder::SourceError(e.to_string()))?;
        Ok(page
            .into_iter()
            .map(|e| ocsp_responder::Issued {
                seq: e.seq,
                hierarchy: e.hierarchy,
                serial: e.serial,
                not_after: e.not_after,
            })
            .collect())
    }

    fn not_after(
        &self,
        h: Hierarchy,
        serial: &[u8],
    ) -> Result<Option<time::OffsetDateTime>, ocsp_responder::SourceError> {
        let fail = |e: ca::Error| ocsp_responder::SourceError(e.to_string());
        let c = self.0.certificate(h, magnitude(serial)).map_err(fail)?;
        Ok(c.map(|c| c.not_after))
    }

    /// The store's revocation log (every `set_status` appends to it in its unit of work):
    /// what keeps the responder's answer store authoritative (#14).
    fn status_log_head(&self) -> Result<Option<u64>, ocsp_responder::SourceError> {
        self.0
            .revocation_log_head()
            .map(Some)
            .map_err(|e| ocsp_responder::SourceError(e.to_string()))
    }

    fn status_changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ocsp_responder::StatusChange>, ocsp_responder::SourceError> {
        let page = self
            .0
            .revocations_since(after, limit)
            .map_err(|e| ocsp_responder::SourceError(e.to_string()))?;
        Ok(page
            .into_iter()
            .map(|e| ocsp_responder::StatusChange {
                seq: e.seq,
                hierarchy: e.hierarchy,
                serial: e.serial,
            })
            .collect())
    }
}

/// Keeps OCSP and CRLs current: called by the authority after every durable revocation or hold,
/// before the operation answers.
pub struct Notifier {
    pub publisher: Arc<crl_publisher::Publisher>,
    pub responder: ocsp_responder::Responder,
    pub clock: Arc<dyn ca::clock::Clock>,
}

impl ca::authority::Listener for Notifier {
    fn revoked(&self, h: Hierarchy, generation: u32, serial: &[u8], scope: &Scope) {
        tracing::debug!(%h, generation, scope = %scope.path(), "revocation: refreshing OCSP, marking the CRL dirty");
        if let Err(e) = self.responder.refresh(h, serial, self.clock.now()) {
            tracing::error!(error = %e, %h, "OCSP cache refresh failed; the entry will be re-signed on the next query");
        }
        if let Err(e) = self.publisher.mark_dirty(h, generation, scope.clone()) {
            tracing::error!(error = %e, %h, "could not mark the CRL partition dirty; the periodic re-signing will pick it up");
        }
    }

    fn ocsp_signer_compromised(&self, h: Hierarchy, signer: Arc<ca::keys::CaSigner>) {
        match self.responder.replace_compromised_signer(h, signer) {
            Ok(removed) => {
                tracing::warn!(%h, removed, "OCSP responder now signs with the replacement of the compromised signer; its cached answers are gone")
            }
            // The revocation is durable and the new signer on disk, but this responder could
            // not take it: stop answering rather than sign with a revoked key.
            Err(e) => {
                tracing::error!(error = %e, %h, "could not install the replacement of a compromised OCSP signer; restart jpki serve")
            }
        }
    }

    fn root_generation_added(&self, new: &ca::authority::RootAdded) {
        let (h, g) = (new.hierarchy, new.root.generation);
        match self.publisher.add_generation(h, g, new.signer.clone()) {
            Ok(()) => {
                self.publisher.retire_generation(
                    h,
                    new.previous.generation,
                    new.previous_last_expiry,
                );
                tracing::info!(%h, generation = g, previous_last_expiry = %new.previous_last_expiry,
                    "the CRL publisher signs the new root generation's CRLs");
            }
            Err(e) => {
                tracing::error!(error = %e, %h, generation = g, "the CRL publisher could not take the new root generation; restart jpki serve")
            }
        }
        // Answers for its certificates are signed by the new root itself until its delegated
        // OCSP signer is made (right after this call), which then replaces it.
        let issuer = ocsp_responder::Issuer {
            hierarchy: h,
            root: new.root.der.clone(),
            signer: new.signer.clone(),
        };
        match self.responder.add_issuer(issuer) {
            Ok(()) => {
                tracing::info!(%h, generation = g, "the OCSP responder answers for the new root generation")
            }
            Err(e) => {
                tracing::error!(error = %e, %h, generation = g, "the OCSP responder could not take the new root generation; restart jpki serve")
            }
        }
        // The generation before it signs its own answers with its root key from now on (its
        // delegated signer is not renewed any more), as after a restart.
        if let Err(e) = self
            .responder
            .replace_issuer_signer(&new.previous.der, new.previous_signer.clone())
        {
            tracing::error!(error = %e, %h, "the previous root generation's answers keep their delegated signer until a restart");
        }
    }

    fn ocsp_signer_renewed(&self, h: Hierarchy, signer: Arc<ca::keys::CaSigner>) {
        match self.responder.replace_signer(h, signer) {
            Ok(()) => tracing::info!(%h, "OCSP responder now signs with the renewed signer"),
            // The renewal is durable and on disk; a restart picks the new signer up. The old
            // one keeps answering meanwhile (renewal happens well before its expiry).
            Err(e) => {
                tracing::error!(error = %e, %h, "could not install the renewed OCSP signer in the responder")
            }
        }
    }
}
