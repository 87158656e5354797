//! The batched publication pass (`Publisher::tick` over a store that lists its dirty CRLs):
//! a failure or a crash in the middle of a pass never reuses a CRL number and never loses a
//! dirty flag, and after a full pass a revocation republishes only its own CRL.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crl_publisher::{
    BoxError, CrlId, Entry, FixedClock, Generation, MemoryStore, Publisher, Roots, Settings, State,
    StateStore,
};
use policies::policy::PartitionScheme;
use policies::profile::Scope;
use policies::{Hierarchy, Policy, Reason};
use support::TestRoot;
use time::macros::datetime;
use time::OffsetDateTime;

/// A [`MemoryStore`] whose batch save (the record of what a pass published) can fail, and
/// whose `set_dirty` can fail too (then a failure looks like a crash: nothing is put back).
/// Counts the batch calls.
struct Flaky {
    inner: Arc<MemoryStore>,
    fail_save: AtomicBool,
    fail_set_dirty: AtomicBool,
    reserves: AtomicUsize,
    saves: AtomicUsize,
    /// Reads of the dirty list.
    listings: AtomicUsize,
}

impl StateStore for Flaky {
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
        self.inner.save(h, g, scope, state)
    }
    fn set_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<(), BoxError> {
        if self.fail_set_dirty.load(Ordering::SeqCst) {
            return Err("the process died".into());
        }
        self.inner.set_dirty(h, g, scope)
    }
    fn take_dirty(&self, h: Hierarchy, g: Generation, scope: Scope) -> Result<bool, BoxError> {
        self.inner.take_dirty(h, g, scope)
    }
    fn scopes(&self) -> Result<Vec<CrlId>, BoxError> {
        self.inner.scopes()
    }
    fn dirty(&self) -> Result<Option<Vec<CrlId>>, BoxError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        self.inner.dirty()
    }
    fn reserve_many(
        &self,
        batch: &[(CrlId, State)],
    ) -> Result<Vec<Result<bool, BoxError>>, BoxError> {
        self.reserves.fetch_add(1, Ordering::SeqCst);
        self.inner.reserve_many(batch)
    }
    fn save_many(&self, batch: &[(CrlId, State)]) -> Result<Vec<Result<(), BoxError>>, BoxError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        if self.fail_save.load(Ordering::SeqCst) {
            return Err("disk full".into());
        }
        self.inner.save_many(batch)
    }
}

struct Setup {
    store: Arc<MemoryStore>,
    flaky: Arc<Flaky>,
    dir: tempfile::TempDir,
    roots: (Arc<TestRoot>, Arc<TestRoot>),
    now: OffsetDateTime,
}

impl Setup {
    fn new() -> Setup {
        let store = Arc::new(MemoryStore::new());
        let flaky = Arc::new(Flaky {
            inner: Arc::clone(&store),
            fail_save: AtomicBool::new(false),
            fail_set_dirty: AtomicBool::new(false),
            reserves: AtomicUsize::new(0),
            saves: AtomicUsize::new(0),
            listings: AtomicUsize::new(0),
        });
        Setup {
            store,
            flaky,
            dir: tempfile::tempdir().unwrap(),
            roots: (
                TestRoot::new(Hierarchy::Signing),
                TestRoot::new(Hierarchy::Auth),
            ),
            now: datetime!(2026-03-01 00:00 UTC),
        }
    }

    /// A publisher over the store (a new one stands for a restart after a crash).
    fn publisher(&self) -> Publisher {
        self.publisher_with(Settings::default())
    }

    fn publisher_with(&self, settings: Settings) -> Publisher {
        let mut policy = Policy::default_policy();
        // serial partitions: every pass has several CRLs
        policy.crl.partition_by = PartitionScheme::Serial;
        Publisher::new(
            policy,
            settings,
            Roots {
                signing: self.roots.0.clone(),
                auth: self.roots.1.clone(),
            },
            self.store.clone(),
            self.flaky.clone(),
            self.dir.path(),
            Arc::new(FixedClock::new(self.now)),
        )
        .unwrap()
    }

    fn revoke(&self, h: Hierarchy, scope: &Scope, serial: u8) {
        self.store.revoke(
            h,
            scope.clone(),
            Entry {
                serial: vec![serial],
                revoked_at: self.now,
                reason: Reason::KeyCompromise,
                invalidity: None,
                not_after: self.now + time::Duration::days(365),
            },
        );
        self.store.set_dirty(h, 1, scope.clone()).unwrap();
    }

    fn state(&self, h: Hierarchy, scope: &Scope) -> State {
        self.store.load(h, 1, scope.clone()).unwrap().unwrap()
    }
}

#[test]
fn a_failed_batch_save_keeps_its_numbers_taken_and_its_dirty_flags_set() {
    let s = Setup::new();
    let publisher = s.publisher();
    let (h, scope) = (Hierarchy::Signing, Scope::Ca);
    let first = publisher.tick(s.now);
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    let all = first.published.len();
    assert!(all > 2, "every CRL of the policy: {all}");
    assert_eq!(
        s.flaky.reserves.load(Ordering::SeqCst),
        1,
        "one reservation per pass"
    );
    assert_eq!(
        s.flaky.saves.load(Ordering::SeqCst),
        1,
        "one record per pass"
    );
    let before = s.state(h, &scope);
    assert_eq!(before.last_number, 1);

    s.revoke(h, &scope, 0x42);
    s.flaky.fail_save.store(true, Ordering::SeqCst);
    let report = publisher.tick(s.now);
    assert!(report.published.is_empty(), "{:?}", report.published);
    assert_eq!(report.failed.len(), 1, "only the dirty CRL was due");
    assert!(report.failed[0].3.to_string().contains("disk full"));
    let after = s.state(h, &scope);
    assert_eq!(after.last_number, 2, "number 2 stays taken");
    assert_eq!(
        after.published, before.published,
        "still the last CRL published"
    );
    assert_still_pending(&s, h, &scope);

    s.flaky.fail_save.store(false, Ordering::SeqCst);
    let report = publisher.tick(s.now);
    assert_eq!(
        report.published,
        vec![(h, 1, scope.clone(), 3)],
        "2 is never reused"
    );
    assert!(s.store.dirty().unwrap().unwrap().is_empty());
    let der = std::fs::read(s.dir.path().join(Publisher::file_name(h, 1, &scope))).unwrap();
    assert_eq!(serials(&der), vec![vec![0x42]], "the revocation is listed");
    assert_eq!(s.state(h, &scope).published.unwrap().number, 3);
}

#[test]
fn a_crash_after_the_reservation_publishes_again_at_restart() {
    let s = Setup::new();
    let (h, scope) = (Hierarchy::Auth, Scope::Ca);
    s.publisher().tick(s.now);
    s.revoke(h, &scope, 0x43);
    // The pass dies after its reservation took the flag: nothing is saved or put back.
    s.flaky.fail_save.store(true, Ordering::SeqCst);
    s.flaky.fail_set_dirty.store(true, Ordering::SeqCst);
    let crashed = s.publisher();
    crashed.tick(s.now);
    drop(crashed);
    assert!(
        s.store.dirty().unwrap().unwrap().is_empty(),
        "the flag was taken"
    );
    let state = s.state(h, &scope);
    assert_eq!(state.last_number, 2);
    assert_eq!(state.published.as_ref().unwrap().number, 1);

    // Restart: the reserved but unpublished number makes the CRL due.
    s.flaky.fail_save.store(false, Ordering::SeqCst);
    s.flaky.fail_set_dirty.store(false, Ordering::SeqCst);
    let report = s.publisher().tick(s.now);
    assert!(
        report.published.contains(&(h, 1, scope.clone(), 3)),
        "{:?}",
        report.published
    );
    let der = std::fs::read(s.dir.path().join(Publisher::file_name(h, 1, &scope))).unwrap();
    assert_eq!(serials(&der), vec![vec![0x43]], "the revocation is listed");
}

#[test]
fn after_a_full_pass_a_revocation_republishes_only_its_crl() {
    let s = Setup::new();
    let publisher = s.publisher();
    let first = publisher.tick(s.now);
    assert!(first.published.len() > 2);
    assert!(publisher.tick(s.now).published.is_empty(), "nothing due");
    let (h, scope) = (Hierarchy::Signing, Scope::Partition(3));
    s.revoke(h, &scope, 0x44);
    let report = publisher.tick(s.now);
    assert_eq!(report.published, vec![(h, 1, scope.clone(), 2)]);
    assert!(report.failed.is_empty());
    // the other CRLs kept their numbers
    assert_eq!(s.state(h, &Scope::Ca).last_number, 1);
    // a temporary file is never left behind
    for entry in walk(s.dir.path()) {
        assert!(
            !entry
                .file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(".tmp"),
            "{entry:?}"
        );
    }
}

#[test]
fn a_crl_whose_file_cannot_be_written_keeps_its_old_file_and_its_flag_while_the_others_publish() {
    let s = Setup::new();
    let publisher = s.publisher();
    let first = publisher.tick(s.now);
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    let h = Hierarchy::Signing;
    let (blocked, other) = (Scope::Partition(1), Scope::Partition(2));
    let path = |scope: &Scope| s.dir.path().join(Publisher::file_name(h, 1, scope));
    let old = std::fs::read(path(&blocked)).unwrap();
    // A directory where the file goes: the rename onto it fails (after the temp file was
    // written and fsynced).
    std::fs::remove_file(path(&blocked)).unwrap();
    std::fs::create_dir(path(&blocked)).unwrap();
    std::fs::write(path(&blocked).join("keep"), b"x").unwrap();
    s.revoke(h, &blocked, 0x45);
    s.revoke(h, &other, 0x46);
    let report = publisher.tick(s.now);
    assert_eq!(report.published, vec![(h, 1, other.clone(), 2)]);
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.failed[0].2, blocked);
    assert!(
        report.failed[0].3.to_string().starts_with("writing "),
        "{}",
        report.failed[0].3
    );
    assert_eq!(
        serials(&std::fs::read(path(&other)).unwrap()),
        vec![vec![0x46]]
    );
    assert_eq!(
        s.state(h, &blocked).published.unwrap().number,
        1,
        "still the last CRL published"
    );
    assert_still_pending(&s, h, &blocked);
    for entry in walk(s.dir.path()) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "{entry:?}");
    }

    // Once the path is free the next pass publishes it with the revocation, under a new number.
    std::fs::remove_dir_all(path(&blocked)).unwrap();
    std::fs::write(path(&blocked), &old).unwrap();
    let report = publisher.tick(s.now);
    assert_eq!(report.published, vec![(h, 1, blocked.clone(), 3)]);
    assert_eq!(
        serials(&std::fs::read(path(&blocked)).unwrap()),
        vec![vec![0x45]]
    );
}

/// A revocation the publisher is told about ([`Publisher::mark_dirty`], as `jpki serve`'s
/// listener does), not only its store.
/// The CRL `(h, generation 1, scope)` is still dirty in the store: its revocation is still
/// to be published.
fn assert_still_pending(s: &Setup, h: Hierarchy, scope: &Scope) {
    assert!(
        s.store
            .dirty()
            .unwrap()
            .unwrap()
            .contains(&(h, 1, scope.clone())),
        "the revocation is still pending"
    );
}

fn revoke_marked(s: &Setup, publisher: &Publisher, h: Hierarchy, scope: &Scope, serial: u8) {
    s.store.revoke(
        h,
        scope.clone(),
        Entry {
            serial: vec![serial],
            revoked_at: s.now,
            reason: Reason::KeyCompromise,
            invalidity: None,
            not_after: s.now + time::Duration::days(365),
        },
    );
    publisher.mark_dirty(h, 1, scope.clone()).unwrap();
}

#[test]
fn a_pass_woken_by_its_own_mark_does_not_read_the_store_list_and_a_flag_set_elsewhere_waits_for_the_next_listing(
) {
    let s = Setup::new();
    let publisher = s.publisher(); // dirty_bound 60 s
    publisher.tick(s.now);
    let listed = s.flaky.listings.load(Ordering::SeqCst);
    assert!(listed >= 1);
    let h = Hierarchy::Signing;
    let (mine, elsewhere) = (Scope::Partition(1), Scope::Partition(2));
    s.revoke(h, &elsewhere, 0x47); // flag set behind the publisher's back (another node)
    revoke_marked(&s, &publisher, h, &mine, 0x48);
    let report = publisher.tick(s.now);
    assert_eq!(report.published, vec![(h, 1, mine.clone(), 2)]);
    assert_eq!(
        s.flaky.listings.load(Ordering::SeqCst),
        listed,
        "the store's dirty list is not read"
    );
    assert!(
        s.store
            .dirty()
            .unwrap()
            .unwrap()
            .contains(&(h, 1, elsewhere.clone())),
        "the other flag is left set"
    );
    // a pass that reads the list (here: a restart) publishes it
    let report = s.publisher().tick(s.now);
    assert!(report.published.contains(&(h, 1, elsewhere.clone(), 2)));
    let der = std::fs::read(s.dir.path().join(Publisher::file_name(h, 1, &elsewhere))).unwrap();
    assert_eq!(serials(&der), vec![vec![0x47]]);
}

#[test]
fn once_the_dirty_bound_has_passed_a_pass_woken_by_a_mark_reads_the_store_list_too() {
    let s = Setup::new();
    let settings = Settings {
        dirty_bound: std::time::Duration::from_millis(1),
        batch_delay: std::time::Duration::ZERO,
        ..Settings::default()
    };
    let publisher = s.publisher_with(settings);
    publisher.tick(s.now);
    std::thread::sleep(std::time::Duration::from_millis(5)); // more than the bound, always
    let h = Hierarchy::Auth;
    let (mine, elsewhere) = (Scope::Partition(3), Scope::Partition(4));
    s.revoke(h, &elsewhere, 0x49);
    revoke_marked(&s, &publisher, h, &mine, 0x4a);
    let report = publisher.tick(s.now);
    assert_eq!(
        report.published,
        vec![(h, 1, mine.clone(), 2), (h, 1, elsewhere.clone(), 2)]
    );
    assert!(s.store.dirty().unwrap().unwrap().is_empty());
}

fn serials(der: &[u8]) -> Vec<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
