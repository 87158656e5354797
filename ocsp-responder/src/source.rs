//! Where certificate status comes from: a narrow trait the CA implements over its store.
//!
//! The responder knows nothing of sled. The CA answers, for one hierarchy and one serial,
//! whether it issued the certificate and whether it is revoked or held; the responder turns that
//! into OCSP `CertStatus` (RFC 6960 §2.2).

use std::collections::HashMap;
use std::sync::RwLock;

use policies::{Hierarchy, Reason};
use time::OffsetDateTime;

/// The status of one certificate as the issuing CA knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued by this CA and neither revoked nor held.
    Good,
    /// Revoked, or held (`reason` = [`Reason::CertificateHold`]), at `at`.
    Revoked { at: OffsetDateTime, reason: Reason },
    /// Never issued by this CA (found in no issuance record).
    Unknown,
}

/// The store could not answer; the responder replies `tryLater` (RFC 6960 §2.3).
#[derive(Debug, thiserror::Error)]
#[error("status source failed: {0}")]
pub struct SourceError(pub String);

/// One entry of the store's status-change log: a certificate whose status changed (revoked,
/// held or released), numbered in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub seq: u64,
    pub hierarchy: Hierarchy,
    pub serial: Vec<u8>,
}

/// One entry of the store's issuance feed: a certificate issued to a holder, numbered in
/// commit order ([`StatusSource::issued_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub seq: u64,
    pub hierarchy: Hierarchy,
    pub serial: Vec<u8>,
    pub not_after: OffsetDateTime,
}

/// What [`StatusSource::for_each_issued`] calls for each certificate: (hierarchy, serial).
pub type EachIssued<'a> = dyn FnMut(Hierarchy, &[u8]) -> Result<(), SourceError> + 'a;

/// Certificate status for the responder.
///
/// `serial` is the content octets of the DER INTEGER `serialNumber` exactly as it appears in the
/// certificate (big-endian, with a leading zero octet when the top bit is set) — the same bytes
/// the CertID of an OCSP request carries.
pub trait StatusSource: Send + Sync {
    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Status, SourceError>;

    /// The key identifier (SHA-1 of the subjectPublicKey, as the root's SKI) of the root
    /// generation that issued the certificate, if the source knows it. A responder serving
    /// several generations of one hierarchy (root rollover: one DN, several keys) answers a
    /// CertID only for the generation its issuerKeyHash names and that issued the serial;
    /// the others say `unknown`. `None` (the default): any generation.
    fn issuer_key_id(&self, _h: Hierarchy, _serial: &[u8]) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(None)
    }

    /// Calls `each` with the hierarchy and serial of every certificate that needs an answer
    /// (issued and not expired at `now`), streamed: what the pre-signer
    /// ([`crate::Responder::presign_pass`]) signs ahead of the question. An error from `each`
    /// stops the walk and is returned. The default knows no certificates (nothing is
    /// pre-signed; answers are signed when first asked for).
    fn for_each_issued(
        &self,
        _now: OffsetDateTime,
        _each: &mut EachIssued<'_>,
    ) -> Result<(), SourceError> {
        Ok(())
    }

    /// The highest sequence number of the store's issuance feed (0: empty), or `None` (the
    /// default) if the source keeps none. A source with a feed appends to it, in the unit of
    /// work that issues it, every certificate [`StatusSource::for_each_issued`] would name
    /// (except those issued before the feed existed): the pre-signer then follows the feed
    /// for new certificates instead of walking every certificate (it walks once, at its first
    /// start, and then only as a rare reconciliation). Without a feed it walks on every pass.
    fn issued_log_head(&self) -> Result<Option<u64>, SourceError> {
        Ok(None)
    }

    /// Up to `limit` entries of the issuance feed with a sequence number above `after`, in
    /// sequence order.
    fn issued_since(&self, _after: u64, _limit: usize) -> Result<Vec<Issued>, SourceError> {
        Ok(Vec::new())
    }

    /// The certificate's notAfter, if the source knows it (`None`, the default: unknown). The
    /// pre-signer re-signs a stored answer only while its certificate has not expired.
    fn not_after(
        &self,
        _h: Hierarchy,
        _serial: &[u8],
    ) -> Result<Option<OffsetDateTime>, SourceError> {
        Ok(None)
    }

    /// The highest sequence number of the store's status-change log (0: empty), or `None`
    /// (the default) if the source keeps no such log. A source with a log must append to it,
    /// in the unit of work that makes it, every change of a certificate's status; the
    /// responder then serves stored answers without reading the status per request (see
    /// [`crate::responder`], "The answer store is authoritative").
    fn status_log_head(&self) -> Result<Option<u64>, SourceError> {
        Ok(None)
    }

    /// Up to `limit` entries of the status-change log with a sequence number above `after`,
    /// in sequence order.
    fn status_changes_since(
        &self,
        _after: u64,
        _limit: usize,
    ) -> Result<Vec<StatusChange>, SourceError> {
        Ok(Vec::new())
    }
}

/// An in-memory [`StatusSource`] for tests, examples and the benchmark.
#[derive(Debug, Default)]
pub struct MemorySource {
    map: RwLock<HashMap<(Hierarchy, Vec<u8>), Status>>,
    /// The status-change log: every [`MemorySource::set`], numbered from 1.
    log: RwLock<Vec<(Hierarchy, Vec<u8>)>>,
    /// The issuance feed: every [`MemorySource::issue`], numbered from 1.
    issued: RwLock<Vec<(Hierarchy, Vec<u8>)>>,
    /// The number of [`StatusSource::for_each_issued`] walks (what the pre-signer's tests
    /// count).
    walks: std::sync::atomic::AtomicU64,
    failing: std::sync::atomic::AtomicBool,
}

impl MemorySource {
    pub fn new() -> MemorySource {
        MemorySource::default()
    }

    /// Records a certificate as issued (and good), appending it to the issuance feed.
    pub fn issue(&self, h: Hierarchy, serial: &[u8]) {
        self.set(h, serial, Status::Good);
        let mut issued = self.issued.write().unwrap_or_else(|p| p.into_inner());
        issued.push((h, serial.to_vec()));
    }

    /// How many times every certificate was walked ([`StatusSource::for_each_issued`]).
    pub fn walks(&self) -> u64 {
        self.walks.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks a certificate revoked (or held, with [`Reason::CertificateHold`]).
    pub fn revoke(&self, h: Hierarchy, serial: &[u8], at: OffsetDateTime, reason: Reason) {
        self.set(h, serial, Status::Revoked { at, reason });
    }

    pub fn set(&self, h: Hierarchy, serial: &[u8], status: Status) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.insert((h, serial.to_vec()), status);
        let mut log = self.log.write().unwrap_or_else(|p| p.into_inner());
        log.push((h, serial.to_vec()));
    }

    /// Makes every following lookup fail (to exercise `tryLater`), or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

impl StatusSource for MemorySource {
    fn status_log_head(&self) -> Result<Option<u64>, SourceError> {
        let log = self.log.read().unwrap_or_else(|p| p.into_inner());
        Ok(Some(log.len() as u64))
    }

    fn status_changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StatusChange>, SourceError> {
        let log = self.log.read().unwrap_or_else(|p| p.into_inner());
        let from = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(log
            .iter()
            .enumerate()
            .skip(from)
            .take(limit)
            .map(|(i, (h, serial))| StatusChange {
                seq: i as u64 + 1,
                hierarchy: *h,
                serial: serial.clone(),
            })
            .collect())
    }

    fn issued_log_head(&self) -> Result<Option<u64>, SourceError> {
        let issued = self.issued.read().unwrap_or_else(|p| p.into_inner());
        Ok(Some(issued.len() as u64))
    }

    /// The feed of [`MemorySource::issue`]; its certificates never expire.
    fn issued_since(&self, after: u64, limit: usize) -> Result<Vec<Issued>, SourceError> {
        let issued = self.issued.read().unwrap_or_else(|p| p.into_inner());
        let from = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(issued
            .iter()
            .enumerate()
            .skip(from)
            .take(limit)
            .map(|(i, (h, serial))| Issued {
                seq: i as u64 + 1,
                hierarchy: *h,
                serial: serial.clone(),
                not_after: time::macros::datetime!(9999-12-31 0:00 UTC),
            })
            .collect())
    }

    fn for_each_issued(
        &self,
        _now: OffsetDateTime,
        each: &mut EachIssued<'_>,
    ) -> Result<(), SourceError> {
        self.walks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let keys: Vec<(Hierarchy, Vec<u8>)> = {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            map.keys().cloned().collect()
        };
        for (h, serial) in keys {
            each(h, &serial)?;
        }
        Ok(())
    }

    fn status(&self, h: Hierarchy, serial: &[u8]) -> Result<Status, SourceError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SourceError("memory source set to fail".into()));
        }
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .get(&(h, serial.to_vec()))
            .copied()
            .unwrap_or(Status::Unknown))
    }
}
