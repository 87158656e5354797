//! A publisher whose state store says another node may publish a CRL (a CA node's lease,
//! `StateStore::may_publish`) leaves that CRL — and its dirty flag — alone: the flag is not
//! taken and set again, nothing is written; once the store says yes, the CRL is published and
//! the flag consumed.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crl_publisher::{
    BoxError, CrlId, Entry, FixedClock, Generation, MemoryStore, Publisher, Roots, Settings, State,
    StateStore,
};
use policies::profile::Scope;
use policies::{Hierarchy, Policy, Reason};
use support::TestRoot;
use time::macros::datetime;

/// A [`MemoryStore`] behind a lease that this node holds or not; counts `take_dirty` calls.
struct Leased {
    inner: Arc<MemoryStore>,
    mine: AtomicBool,
    takes: AtomicUsize,
}

impl StateStore for Leased {
    fn load(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<Option<State>, BoxError> {
        self.inner.load(h, g, scope)
    }
    fn save(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
        state: &State,
    ) -> Result<(), BoxError> {
        if !self.mine.load(Ordering::SeqCst) {
            return Err("leased by node ca-1".into());
        }
        self.inner.save(h, g, scope, state)
    }
    fn set_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<(), BoxError> {
        self.inner.set_dirty(h, g, scope)
    }
    fn take_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool, BoxError> {
        self.takes.fetch_add(1, Ordering::SeqCst);
        self.inner.take_dirty(h, g, scope)
    }
    fn scopes(&self) -> Result<Vec<CrlId>, BoxError> {
        self.inner.scopes()
    }
    fn may_publish(&self, _h: Hierarchy, _g: Generation, _scope: Scope) -> Result<bool, BoxError> {
        Ok(self.mine.load(Ordering::SeqCst))
    }
}

#[test]
fn a_crl_leased_elsewhere_keeps_its_dirty_flag_for_the_lease_holder() {
    let now = datetime!(2026-03-01 00:00 UTC);
    let store = Arc::new(MemoryStore::new());
    let leased = Arc::new(Leased {
        inner: Arc::clone(&store),
        mine: AtomicBool::new(false),
        takes: AtomicUsize::new(0),
    });
    let dir = tempfile::tempdir().unwrap();
    let publisher = Publisher::new(
        Policy::default_policy(),
        Settings::default(),
        Roots {
            signing: TestRoot::new(Hierarchy::Signing),
            auth: TestRoot::new(Hierarchy::Auth),
        },
        store.clone(),
        leased.clone(),
        dir.path(),
        Arc::new(FixedClock::new(now)),
    )
    .unwrap();
    let (h, scope) = (Hierarchy::Signing, Scope::Ca);
    store.revoke(
        h,
        scope.clone(),
        Entry {
            serial: vec![0x42],
            revoked_at: now,
            reason: Reason::KeyCompromise,
            invalidity: None,
            not_after: now + time::Duration::days(365),
        },
    );
    store.set_dirty(h, 1, scope.clone()).unwrap();
    let file = dir.path().join(Publisher::file_name(h, 1, &scope));

    // Leased elsewhere: nothing published, the flag never taken.
    let report = publisher.tick(now);
    assert!(report.published.is_empty(), "{:?}", report.published);
    assert!(report.failed.is_empty(), "not a failure of this node");
    assert_eq!(leased.takes.load(Ordering::SeqCst), 0);
    assert!(!file.exists());
    // A forced publication is still refused at save, saying who holds the CRL.
    let e = publisher.publish(h, 1, scope.clone(), now).unwrap_err();
    assert!(e.to_string().contains("ca-1"), "{e}");
    assert!(
        store.take_dirty(h, 1, scope.clone()).unwrap(),
        "the flag is still set for the lease holder"
    );
    store.set_dirty(h, 1, scope.clone()).unwrap();

    // Now this node holds the lease: published, the flag consumed.
    leased.mine.store(true, Ordering::SeqCst);
    let report = publisher.tick(now);
    assert!(
        report
            .published
            .iter()
            .any(|(ph, pg, ps, _)| *ph == h && *pg == 1 && *ps == scope),
        "{:?}",
        report.published
    );
    assert!(file.exists());
    assert!(!store.take_dirty(h, 1, scope.clone()).unwrap());
}
