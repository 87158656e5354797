//! The narrow interfaces the publisher needs from the CA: where revoked entries come from
//! ([`Source`]) and where each CRL's durable state lives ([`StateStore`]) — plus in-memory
//! implementations for tests and benchmarks. What time it is comes from
//! `policies::clock::Clock`, the clock every jpki crate shares.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError, RwLock};

use policies::profile::Scope;
use policies::{Hierarchy, Reason};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::BoxError;

/// One revoked (or held) certificate as the CRL lists it (RFC 5280 §5.1.2.6, §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The certificate's serial number: the big-endian content octets of its INTEGER
    /// (leading zero octets are tolerated and normalised away).
    pub serial: Vec<u8>,
    /// When the CA revoked (or suspended) it: the CRL's revocationDate.
    pub revoked_at: OffsetDateTime,
    /// The CRLReason; `Unspecified` is written by leaving reasonCode out (RFC 5280 §5.3.1),
    /// `CertificateHold` lists a suspended certificate.
    pub reason: Reason,
    /// When the key is known or suspected to have been compromised (RFC 5280 §5.3.2).
    pub invalidity: Option<OffsetDateTime>,
    /// The certificate's notAfter: the entry is dropped once this plus
    /// [`Settings::expired_margin`](crate::Settings::expired_margin) has passed.
    pub not_after: OffsetDateTime,
}

/// The revoked certificates of one CRL scope. The CA implements it over its store.
pub trait Source: Send + Sync {
    /// Calls `each` once for every revoked or held certificate whose CRL is `(h, g, scope)`:
    /// issued by generation `g` of the hierarchy's root, listed on `scope`.
    /// Entries are streamed so that a million of them need not be copied into a `Vec`;
    /// `each` may be called in any order.
    fn for_each(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        each: &mut dyn FnMut(&Entry),
    ) -> Result<(), BoxError>;

    /// How many entries `for_each` is about to yield, if cheaply known (lets the encoder
    /// allocate once). Only a hint: it may be wrong.
    fn count_hint(&self, _h: Hierarchy, _g: Generation, _scope: Scope) -> Option<usize> {
        None
    }
}

/// What was last published for one CRL scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
    pub entries: u64,
    /// Size of the DER file in bytes.
    pub size: u64,
    /// SHA-256 of the DER file, lowercase hex.
    pub sha256: String,
    /// The DER of the issuingDistributionPoint extension value, hex: a partition's IDP must
    /// never change (relying parties match it against their certificates).
    pub idp: String,
}

/// The durable state of one CRL scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The highest CRL number ever handed out for this scope, published or not. It is saved
    /// before the CRL carrying it is written, so a number is never reused after a restart.
    pub last_number: u64,
    /// The last CRL written for this scope.
    pub published: Option<Published>,
}

/// Durable per-`(hierarchy, generation, scope)` state. The CA keeps it in its store (serialise
/// [`State`] with serde); every method that changes something returns only once the change
/// is durable (for sled: after `flush()`).
pub trait StateStore: Send + Sync {
    fn load(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<State>, BoxError>;
    fn save(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        state: &State,
    ) -> Result<(), BoxError>;
    /// Sets the scope's dirty flag (a revocation changed its content). Independent of
    /// [`State`]: `save` must not clear it.
    fn set_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<(), BoxError>;
    /// Clears the dirty flag and says whether it was set, atomically with respect to
    /// concurrent `set_dirty` calls.
    fn take_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool, BoxError>;
    /// Every scope with a saved state or a dirty flag, in order: what the publisher keeps
    /// publishing besides the scopes the policy names (a municipal partition exists once its
    /// first certificate flagged it; a store's serial partitions keep their state).
    fn scopes(&self) -> Result<Vec<CrlId>, BoxError>;
    /// Whether this publisher may publish the CRL `(h, g, scope)` now. `false` when another
    /// CA node holds the CRL's lease (jpki's `serve --role ca`): the publisher then leaves the
    /// CRL — and its dirty flag, for the lease holder — alone. The default (one publisher) is
    /// `true`.
    fn may_publish(&self, _h: Hierarchy, _g: Generation, _scope: Scope) -> Result<bool, BoxError> {
        Ok(true)
    }

    /// The scopes whose dirty flag is set, if the store can list them cheaply (an indexed
    /// read). `None` (the default) makes the publisher's pass fall back to one
    /// [`take_dirty`](StateStore::take_dirty) per scope.
    fn dirty(&self) -> Result<Option<Vec<CrlId>>, BoxError> {
        Ok(None)
    }

    /// Reserves the numbers of a pass's CRLs: saves each state (its `last_number` raised),
    /// then takes each CRL's dirty flag. Says per CRL whether its flag was set, or why its
    /// state was refused (then its flag is left alone). A store with transactions does it
    /// all in one durable unit of work; the default loops (save before take, so a crash in
    /// between leaves the flag set).
    #[allow(clippy::type_complexity)]
    fn reserve_many(
        &self,
        batch: &[(CrlId, State)],
    ) -> Result<Vec<Result<bool, BoxError>>, BoxError> {
        Ok(batch
            .iter()
            .map(|((h, g, scope), state)| {
                self.save(*h, *g, scope.clone(), state)?;
                self.take_dirty(*h, *g, scope.clone())
            })
            .collect())
    }

    /// Saves the states of a pass's written CRLs; per CRL, why its state was refused. A store
    /// with transactions does it in one durable unit of work; the default loops.
    fn save_many(&self, batch: &[(CrlId, State)]) -> Result<Vec<Result<(), BoxError>>, BoxError> {
        Ok(batch
            .iter()
            .map(|((h, g, scope), state)| self.save(*h, *g, scope.clone(), state))
            .collect())
    }
}

/// A generation of a hierarchy's root: 1 is the first; each rollover adds one.
pub type Generation = u32;

/// One CRL: its hierarchy, the root generation that signs it (the one that issued the
/// certificates it lists), and its scope.
pub type CrlId = (Hierarchy, Generation, Scope);

/// An in-memory [`Source`] and [`StateStore`] (nothing is durable): for tests, benchmarks and
/// as the reference for what the CA's implementation must do.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RwLock<BTreeMap<CrlId, Vec<Entry>>>,
    states: Mutex<BTreeMap<CrlId, State>>,
    dirty: Mutex<BTreeSet<CrlId>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Adds a revoked entry to `(h, 1, scope)`; the caller marks the scope dirty.
    pub fn revoke(&self, h: Hierarchy, scope: Scope, entry: Entry) {
        self.revoke_in(h, 1, scope, entry);
    }

    /// Adds a revoked entry of a certificate issued by generation `g` to `(h, g, scope)`.
    pub fn revoke_in(&self, h: Hierarchy, g: Generation, scope: Scope, entry: Entry) {
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        map.entry((h, g, scope)).or_default().push(entry);
    }
}

impl Source for MemoryStore {
    fn for_each(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        each: &mut dyn FnMut(&Entry),
    ) -> Result<(), BoxError> {
        let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        for e in map.get(&(h, g, scope)).into_iter().flatten() {
            each(e);
        }
        Ok(())
    }

    fn count_hint(&self, h: Hierarchy, g: Generation, scope: Scope) -> Option<usize> {
        let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        Some(map.get(&(h, g, scope)).map_or(0, Vec::len))
    }
}

impl StateStore for MemoryStore {
    fn load(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<State>, BoxError> {
        Ok(self
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(h, g, scope))
            .cloned())
    }

    fn save(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        state: &State,
    ) -> Result<(), BoxError> {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((h, g, scope), state.clone());
        Ok(())
    }

    fn set_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<(), BoxError> {
        self.dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((h, g, scope));
        Ok(())
    }

    fn take_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool, BoxError> {
        Ok(self
            .dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(h, g, scope)))
    }

    fn dirty(&self) -> Result<Option<Vec<CrlId>>, BoxError> {
        let dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Some(dirty.iter().cloned().collect()))
    }

    /// Saved states, dirty flags, and the scopes entries were revoked into.
    fn scopes(&self) -> Result<Vec<CrlId>, BoxError> {
        let mut all: BTreeSet<CrlId> = self
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        all.extend(
            self.dirty
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        all.extend(
            self.entries
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .keys()
                .cloned(),
        );
        Ok(all.into_iter().collect())
    }
}
