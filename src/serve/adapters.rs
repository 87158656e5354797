//! The CA's store seen through the publishers' narrow traits: revoked entries and CRL state
//! for the CRL publisher, certificate status for the OCSP responder, and the revocation
//! listener that keeps both current.

use std::sync::Arc;

use ca::records::{cert_key, from_json, json, RevokedEntry, State, StatusRecord, CA_SCOPE};
use ca::store::{Store, Table};
use policies::profile::Scope;
use policies::Hierarchy;
use time::OffsetDateTime;

fn scope_code(scope: Scope) -> u16 {
    match scope {
        Scope::Partition(p) => p,
        Scope::Ca => CA_SCOPE,
    }
}

fn scope_key(h: Hierarchy, scope: Scope) -> Vec<u8> {
    let mut k = vec![h.tag()];
    k.extend_from_slice(&scope_code(scope).to_be_bytes());
    k
}

fn dirty_key(h: Hierarchy, scope: Scope) -> Vec<u8> {
    let mut k = scope_key(h, scope);
    k.extend_from_slice(b"/dirty");
    k
}

fn boxed(e: ca::Error) -> crl_publisher::BoxError {
    Box::new(e)
}

fn time_of(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The CA store as the CRL publisher's [`crl_publisher::Source`] and [`crl_publisher::StateStore`].
pub struct CrlStore(pub Arc<dyn Store>);

impl crl_publisher::Source for CrlStore {
    fn for_each(
        &self,
        h: Hierarchy,
        scope: Scope,
        each: &mut dyn FnMut(&crl_publisher::Entry),
    ) -> Result<(), crl_publisher::BoxError> {
        let prefix = scope_key(h, scope);
        for item in self.0.scan(Table::Revoked, &prefix) {
            let (k, v) = item.map_err(boxed)?;
            let e = RevokedEntry::decode(&v).map_err(boxed)?;
            each(&crl_publisher::Entry {
                serial: k[prefix.len()..].to_vec(),
                revoked_at: time_of(e.revoked_at),
                reason: e.reason,
                invalidity: e.invalidity.map(time_of),
                not_after: time_of(e.not_after),
            });
        }
        Ok(())
    }
}

impl crl_publisher::StateStore for CrlStore {
    fn load(
        &self,
        h: Hierarchy,
        scope: Scope,
    ) -> Result<Option<crl_publisher::State>, crl_publisher::BoxError> {
        match self
            .0
            .get(Table::Crl, &scope_key(h, scope))
            .map_err(boxed)?
        {
            Some(b) => Ok(Some(from_json(&b).map_err(boxed)?)),
            None => Ok(None),
        }
    }

    fn save(
        &self,
        h: Hierarchy,
        scope: Scope,
        state: &crl_publisher::State,
    ) -> Result<(), crl_publisher::BoxError> {
        let value = json(state).map_err(boxed)?;
        let key = scope_key(h, scope);
        self.0
            .transact(&|t| t.insert(Table::Crl, &key, &value))
            .map_err(boxed)
    }

    fn set_dirty(&self, h: Hierarchy, scope: Scope) -> Result<(), crl_publisher::BoxError> {
        let key = dirty_key(h, scope);
        self.0
            .transact(&|t| t.insert(Table::Crl, &key, b"1"))
            .map_err(boxed)
    }

    fn take_dirty(&self, h: Hierarchy, scope: Scope) -> Result<bool, crl_publisher::BoxError> {
        let key = dirty_key(h, scope);
        if self.0.get(Table::Crl, &key).map_err(boxed)?.is_none() {
            return Ok(false);
        }
        let was = std::sync::atomic::AtomicBool::new(false);
        self.0
            .transact(&|t| {
                let set = t.get(Table::Crl, &key)?.is_some();
                was.store(set, std::sync::atomic::Ordering::SeqCst);
                if set {
                    t.remove(Table::Crl, &key)?;
                }
                Ok(())
            })
            .map_err(boxed)?;
        Ok(was.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Certificate status for the OCSP responder: `unknown` for a serial never issued (looked up
/// in the issuance records), held certificates as revoked with certificateHold.
pub struct OcspStatus(pub Arc<dyn Store>);

impl ocsp_responder::StatusSource for OcspStatus {
    fn status(
        &self,
        h: Hierarchy,
        serial: &[u8],
    ) -> Result<ocsp_responder::Status, ocsp_responder::SourceError> {
        let fail = |e: ca::Error| ocsp_responder::SourceError(e.to_string());
        let key = cert_key(h, serial);
        let Some(b) = self.0.get(Table::Status, &key).map_err(fail)? else {
            return Ok(ocsp_responder::Status::Unknown);
        };
        let st: StatusRecord = from_json(&b).map_err(fail)?;
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
}

/// Keeps OCSP and CRLs current: called by the authority after every durable revocation or hold,
/// before the operation answers.
pub struct Notifier {
    pub publisher: Arc<crl_publisher::Publisher>,
    pub responder: ocsp_responder::Responder,
    pub clock: Arc<dyn ca::clock::Clock>,
}

impl ca::authority::Listener for Notifier {
    fn revoked(&self, h: Hierarchy, serial: &[u8], partition: Option<u16>) {
        tracing::debug!(%h, ?partition, "revocation: refreshing OCSP, marking the CRL dirty");
        if let Err(e) = self.responder.refresh(h, serial, self.clock.now()) {
            tracing::error!(error = %e, %h, "OCSP cache refresh failed; the entry will be re-signed on the next query");
        }
        let scope = partition.map(Scope::Partition).unwrap_or(Scope::Ca);
        if let Err(e) = self.publisher.mark_dirty(h, scope) {
            tracing::error!(error = %e, %h, "could not mark the CRL partition dirty; the periodic re-signing will pick it up");
        }
    }
}
