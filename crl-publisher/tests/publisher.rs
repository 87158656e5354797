//! The publisher end to end within the crate: openssl and rustls-webpki as outside oracles,
//! a hand-moved clock, failing directories and signers, concurrent revocations, HTTP.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crl_publisher::{
    Clock, Entry, Error, FixedClock, MemoryStore, Publisher, Roots, Settings, Source, StateStore,
    SystemClock,
};
use policies::policy::PartitionScheme;
use policies::profile::Scope;
use policies::{Hierarchy, Municipality, Policy, Reason};
use support::{pem_of, TestRoot};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

const S: Hierarchy = Hierarchy::Signing;

struct Fixture {
    policy: Policy,
    signing: Arc<TestRoot>,
    auth: Arc<TestRoot>,
    store: Arc<MemoryStore>,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        // With the CRL's URL in the distribution points (`crl.uri`, off in the real profile):
        // rustls-webpki matches distribution points by URI only, and the openssl check reads
        // the URL back. Directory-name-only points are checked end to end (tests/serve_e2e.rs).
        // These tests exercise serial partitions (`crl.partition_by = "serial"`, jpki's
        // scheme before municipal partitions, which older certificates keep); municipal
        // partitions are tested in `municipal_partitions_are_published_and_indexed`.
        let mut policy = Policy::default_policy();
        policy.crl.uri = true;
        policy.crl.partition_by = PartitionScheme::Serial;
        Fixture {
            policy,
            signing: TestRoot::new(Hierarchy::Signing),
            auth: TestRoot::new(Hierarchy::Auth),
            store: Arc::new(MemoryStore::new()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn publisher_with(
        &self,
        settings: Settings,
        clock: Arc<dyn Clock>,
        source: Arc<dyn Source>,
    ) -> Publisher {
        let roots = Roots {
            signing: self.signing.clone(),
            auth: self.auth.clone(),
        };
        let state: Arc<dyn StateStore> = self.store.clone();
        Publisher::new(
            self.policy.clone(),
            settings,
            roots,
            source,
            state,
            self.dir.path(),
            clock,
        )
        .unwrap()
    }

    fn publisher(&self, clock: Arc<dyn Clock>) -> Publisher {
        self.publisher_with(Settings::default(), clock, self.store.clone())
    }

    fn revoke(&self, h: Hierarchy, serial: &[u8], reason: Reason, at: OffsetDateTime) -> Scope {
        let scope = Scope::Partition(self.policy.partition_of(serial));
        let entry = Entry {
            serial: serial.to_vec(),
            revoked_at: at,
            reason,
            invalidity: (reason == Reason::KeyCompromise).then(|| at - Duration::days(2)),
            not_after: at + Duration::days(365),
        };
        self.store.revoke(h, scope.clone(), entry);
        scope
    }

    fn file(&self, h: Hierarchy, scope: Scope) -> std::path::PathBuf {
        self.dir.path().join(Publisher::file_name(h, 1, &scope))
    }
}

fn number_of(der: &[u8]) -> u64 {
    let (_, crl) = CertificateRevocationList::from_der(der).unwrap();
    crl.crl_number()
        .unwrap()
        .to_u64_digits()
        .first()
        .copied()
        .unwrap_or(0)
}

fn serials_of(der: &[u8]) -> Vec<Vec<u8>> {
    let (_, crl) = CertificateRevocationList::from_der(der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect()
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Serials in partition `p` of 64: big-endian `p + 64 k`, with the high bit set so the
/// DER INTEGER needs its leading zero octet.
fn serial_in(policy: &Policy, p: u16, k: u32) -> Vec<u8> {
    let n = u32::from(policy.crl.partitions);
    let mut s = vec![0x80, 0x11];
    s.extend_from_slice(&(u32::from(p) + n * k).to_be_bytes());
    // 0x8011 << 32 is a multiple of 64: the partition is still p
    assert_eq!(policy.partition_of(&s), p);
    s
}

#[test]
fn openssl_verifies_the_crl_and_rejects_revoked_and_held_leaves() {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let p = 5;
    let scope = Scope::Partition(p);
    let (revoked, held, good, plain) = (
        serial_in(&fx.policy, p, 1),
        serial_in(&fx.policy, p, 2),
        serial_in(&fx.policy, p, 3),
        serial_in(&fx.policy, p, 4),
    );
    fx.revoke(S, &revoked, Reason::KeyCompromise, now - Duration::hours(1));
    fx.revoke(S, &held, Reason::CertificateHold, now - Duration::hours(1));
    fx.revoke(S, &plain, Reason::Unspecified, now - Duration::hours(1));
    // long expired: dropped
    fx.store.revoke(
        S,
        scope.clone(),
        Entry {
            serial: serial_in(&fx.policy, p, 9),
            revoked_at: now - Duration::days(400),
            reason: Reason::Superseded,
            invalidity: None,
            not_after: now - Duration::days(3),
        },
    );
    let publisher = fx.publisher(Arc::new(SystemClock));
    let crl = publisher.publish(S, 1, scope.clone(), now).unwrap();
    assert_eq!(crl.entries, 3);
    assert_eq!(
        std::fs::read(fx.file(S, scope.clone())).unwrap(),
        crl.der.to_vec()
    );

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("root.pem"), fx.signing.pem()).unwrap();
    std::fs::write(w.join("crl.der"), &crl.der).unwrap();
    std::fs::write(w.join("crl.pem"), pem_of("X509 CRL", &crl.der)).unwrap();
    if let Ok(keep) = std::env::var("CRL_PUBLISHER_KEEP") {
        // for running ../shared/judges/judge-crl by hand
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(Path::new(&keep).join("root.pem"), fx.signing.pem()).unwrap();
        std::fs::write(Path::new(&keep).join("partition.crl"), &crl.der).unwrap();
        let ca = publisher.publish(S, 1, Scope::Ca, now).unwrap();
        std::fs::write(Path::new(&keep).join("ca.crl"), &ca.der).unwrap();
    }

    let (ok, text) = openssl(
        w,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "root.pem", "-noout",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
    let (ok, text) = openssl(
        w,
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    assert!(ok, "{text}");
    for want in [
        "Version 2",
        "sha256WithRSAEncryption",
        "X509v3 Authority Key Identifier",
        "X509v3 CRL Number",
        "X509v3 Issuing Distribution Point: critical",
        "Only User Certificates",
        "http://127.0.0.1:8080/crl/signing/5.crl",
        "CN = P0005 CRLDP",
        "Key Compromise",
        "Certificate Hold",
        "Invalidity Date",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // one reasonCode per entry that has one: 2 (KeyCompromise, Hold), not for Unspecified
    assert_eq!(text.matches("X509v3 CRL Reason Code").count(), 2, "{text}");

    for (serial, name, expect_ok) in [
        (&revoked, "revoked", false),
        (&held, "held", false),
        (&good, "good", true),
    ] {
        let leaf = fx.signing.leaf(&fx.policy, S, scope.clone(), serial);
        std::fs::write(w.join(format!("{name}.pem")), pem_of("CERTIFICATE", &leaf)).unwrap();
        let (ok, text) = openssl(
            w,
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-CRLfile",
                "crl.pem",
                &format!("{name}.pem"),
            ],
        );
        assert_eq!(ok, expect_ok, "{name}: {text}");
        if !expect_ok {
            assert!(text.contains("certificate revoked"), "{name}: {text}");
        }
    }
}

#[test]
fn webpki_agrees_on_url_partitioned_crls() {
    use rustls_pki_types::{CertificateDer, UnixTime};
    use webpki::{
        CertRevocationList, EndEntityCert, OwnedCertRevocationList, RevocationCheckDepth,
        RevocationOptionsBuilder, UnknownStatusPolicy,
    };
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let p = 9;
    let scope = Scope::Partition(p);
    let revoked = serial_in(&fx.policy, p, 1);
    let held = serial_in(&fx.policy, p, 2);
    let good = serial_in(&fx.policy, p, 3);
    fx.revoke(
        S,
        &revoked,
        Reason::KeyCompromise,
        now - Duration::minutes(5),
    );
    fx.revoke(
        S,
        &held,
        Reason::CertificateHold,
        now - Duration::minutes(5),
    );
    let publisher = fx.publisher(Arc::new(SystemClock));
    let crl = publisher.publish(S, 1, scope.clone(), now).unwrap();
    let crl = CertRevocationList::Owned(OwnedCertRevocationList::from_der(&crl.der).unwrap());
    let crls = [&crl];
    let root = CertificateDer::from(fx.signing.der.clone());
    let anchors = [webpki::anchor_from_trusted_cert(&root).unwrap().to_owned()];
    let at =
        UnixTime::since_unix_epoch(core::time::Duration::from_secs(now.unix_timestamp() as u64));
    let check = |leaf: Vec<u8>| {
        let der = CertificateDer::from(leaf);
        let ee = EndEntityCert::try_from(&der).unwrap();
        let revocation = RevocationOptionsBuilder::new(&crls)
            .unwrap()
            .with_depth(RevocationCheckDepth::EndEntity)
            .with_status_policy(UnknownStatusPolicy::Deny)
            .build();
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            at,
            webpki::KeyUsage::client_auth(),
            Some(revocation),
            None,
        )
        .map(|_| ())
    };
    assert_eq!(
        check(fx.signing.leaf(&fx.policy, S, scope.clone(), &revoked)),
        Err(webpki::Error::CertRevoked)
    );
    assert_eq!(
        check(fx.signing.leaf(&fx.policy, S, scope.clone(), &held)),
        Err(webpki::Error::CertRevoked)
    );
    assert_eq!(
        check(fx.signing.leaf(&fx.policy, S, scope.clone(), &good)),
        Ok(())
    );
    // a certificate of another partition: this CRL is not authoritative for it
    let other = serial_in(&fx.policy, p + 1, 1);
    let res = check(
        fx.signing
            .leaf(&fx.policy, S, Scope::Partition(p + 1), &other),
    );
    assert_eq!(res, Err(webpki::Error::UnknownRevocationStatus));
}

#[test]
fn moving_the_clock_resigns_before_next_update_with_increasing_numbers() {
    let fx = Fixture::new();
    let t0 = datetime!(2026-11-27 00:00 UTC);
    let clock = Arc::new(FixedClock::new(t0));
    let publisher = fx.publisher(clock.clone());
    let all = publisher.scopes().unwrap().len();
    assert_eq!(all, 2 * (64 + 1));

    let report = publisher.tick(clock.now());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        report.published.len(),
        all,
        "first pass publishes every scope"
    );
    assert!(report.published.iter().all(|(_, _, _, n)| *n == 1));

    clock.advance(Duration::hours(1));
    assert!(
        publisher.tick(clock.now()).published.is_empty(),
        "nothing dirty, nothing due"
    );

    // one revocation: only its partition is rebuilt
    let scope = fx.revoke(S, &[0x01, 0x03], Reason::KeyCompromise, clock.now());
    publisher.mark_dirty(S, 1, scope.clone()).unwrap();
    let report = publisher.tick(clock.now());
    assert_eq!(report.published, vec![(S, 1, scope.clone(), 2)]);
    assert_eq!(
        serials_of(&std::fs::read(fx.file(S, scope.clone())).unwrap()),
        vec![vec![0x01, 0x03]]
    );

    // just before nextUpdate - margin: nothing; just after: everything is re-signed
    clock.set(t0 + Duration::hours(18) - Duration::seconds(1));
    assert!(publisher.tick(clock.now()).published.is_empty());
    clock.set(t0 + Duration::hours(18));
    let report = publisher.tick(clock.now());
    assert_eq!(
        report.published.len(),
        all - 1,
        "all but the one rebuilt at t0+1h"
    );
    clock.set(t0 + Duration::hours(19));
    assert_eq!(
        publisher.tick(clock.now()).published,
        vec![(S, 1, scope.clone(), 3)]
    );

    // the served CRL never expires: thisUpdate moved, nextUpdate is a day later
    let der = std::fs::read(fx.file(Hierarchy::Auth, Scope::Ca)).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert_eq!(
        crl.last_update().timestamp(),
        (t0 + Duration::hours(18)).unix_timestamp()
    );
    assert_eq!(
        crl.next_update().unwrap().timestamp(),
        (t0 + Duration::hours(42)).unix_timestamp()
    );
    assert_eq!(number_of(&der), 2);

    // a restart (new publisher over the same state) continues the numbers; a number handed
    // out by build() but never published is not reused either
    drop(publisher);
    let publisher = fx.publisher(clock.clone());
    let unpublished = publisher.build(S, 1, scope.clone(), clock.now()).unwrap();
    assert_eq!(unpublished.number, 4);
    let crl = publisher.publish(S, 1, scope.clone(), clock.now()).unwrap();
    assert_eq!(crl.number, 5);
    assert_eq!(
        number_of(&std::fs::read(fx.file(S, scope.clone())).unwrap()),
        5
    );
}

#[test]
fn an_unwritable_directory_keeps_the_old_file_and_the_revocation_pending() {
    let fx = Fixture::new();
    let clock = Arc::new(FixedClock::new(datetime!(2026-11-27 00:00 UTC)));
    let publisher = fx.publisher(clock.clone());
    let scope = Scope::Partition(0);
    assert!(publisher.tick(clock.now()).failed.is_empty());
    let before = std::fs::read(fx.file(S, scope.clone())).unwrap();

    // the temporary file's name is taken by a directory: create() fails even for root
    let blocker = fx.file(S, scope.clone()).with_file_name(".0.crl.tmp");
    std::fs::create_dir(&blocker).unwrap();
    fx.revoke(S, &[0x40], Reason::KeyCompromise, clock.now());
    publisher.mark_dirty(S, 1, scope.clone()).unwrap();
    clock.advance(Duration::minutes(1));
    let report = publisher.tick(clock.now());
    assert!(report.published.is_empty());
    assert!(
        matches!(report.failed.as_slice(), [(S, 1, s, Error::Write { .. })] if *s == scope),
        "{:?}",
        report.failed
    );
    assert_eq!(
        std::fs::read(fx.file(S, scope.clone())).unwrap(),
        before,
        "old CRL untouched"
    );

    // still dirty: retried, and published once the directory is usable again
    std::fs::remove_dir(&blocker).unwrap();
    let report = publisher.tick(clock.now());
    assert_eq!(
        report.published,
        vec![(S, 1, scope.clone(), 3)],
        "number 2 was burnt by the failed attempt"
    );
    assert_eq!(
        serials_of(&std::fs::read(fx.file(S, scope.clone())).unwrap()),
        vec![vec![0x40]]
    );

    // an output directory that cannot be created at all (a file is in the way)
    let file_not_dir = fx.dir.path().join("not-a-dir");
    std::fs::write(&file_not_dir, b"x").unwrap();
    let roots = Roots {
        signing: fx.signing.clone(),
        auth: fx.auth.clone(),
    };
    let other = Publisher::new(
        fx.policy.clone(),
        Settings::default(),
        roots,
        fx.store.clone(),
        fx.store.clone(),
        &file_not_dir,
        clock.clone(),
    )
    .unwrap();
    assert!(matches!(
        other.publish(Hierarchy::Auth, 1, scope.clone(), clock.now()),
        Err(Error::Write { .. })
    ));
}

#[test]
fn a_signing_failure_publishes_nothing() {
    let fx = Fixture::new();
    let clock = Arc::new(FixedClock::new(datetime!(2026-11-27 00:00 UTC)));
    let publisher = fx.publisher(clock.clone());
    let scope = Scope::Partition(7);
    publisher.publish(S, 1, scope.clone(), clock.now()).unwrap();
    let before = std::fs::read(fx.file(S, scope.clone())).unwrap();
    fx.signing.fail.store(true, Ordering::SeqCst);
    let err = publisher
        .publish(S, 1, scope.clone(), clock.now())
        .unwrap_err();
    assert!(matches!(err, Error::Sign { .. }), "{err}");
    assert_eq!(std::fs::read(fx.file(S, scope.clone())).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(fx.file(S, scope.clone()).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A source that is slow to start reading, to widen the window between clearing the dirty
/// flag and reading the entries.
struct Slow(Arc<MemoryStore>);

impl Source for Slow {
    fn for_each(
        &self,
        h: Hierarchy,
        _g: u32,
        scope: Scope,
        each: &mut dyn FnMut(&Entry),
    ) -> Result<(), crl_publisher::BoxError> {
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.0.for_each(h, 1, scope.clone(), each)
    }
}

#[test]
fn concurrent_revocations_during_builds_are_not_lost() {
    let fx = Fixture::new();
    let clock = Arc::new(FixedClock::new(datetime!(2026-11-27 00:00 UTC)));
    let publisher = Arc::new(fx.publisher_with(
        Settings::default(),
        clock.clone(),
        Arc::new(Slow(fx.store.clone())),
    ));
    let scope = Scope::Partition(3);
    publisher.publish(S, 1, scope.clone(), clock.now()).unwrap();
    let total = 400u32;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let builder = {
        let (publisher, done, clock) = (publisher.clone(), done.clone(), clock.clone());
        std::thread::spawn(move || {
            let mut builds = 0;
            while !done.load(Ordering::SeqCst) {
                builds += publisher.tick(clock.now()).published.len();
            }
            builds
        })
    };
    for k in 0..total {
        let serial = serial_in(&fx.policy, 3, k);
        fx.revoke(S, &serial, Reason::KeyCompromise, clock.now());
        publisher.mark_dirty(S, 1, scope.clone()).unwrap();
        if k % 16 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    done.store(true, Ordering::SeqCst);
    let builds = builder.join().unwrap();
    assert!(
        builds > 1,
        "the builder raced the revocations ({builds} builds)"
    );
    // whatever the last concurrent build missed is still marked dirty
    publisher.tick(clock.now());
    let listed = serials_of(&std::fs::read(fx.file(S, scope.clone())).unwrap());
    assert_eq!(
        listed.len(),
        total as usize,
        "after {builds} concurrent builds"
    );
    assert!(
        publisher.tick(clock.now()).published.is_empty(),
        "nothing left dirty"
    );
}

#[test]
fn publish_all_writes_every_crl_and_an_index() {
    let fx = Fixture::new();
    let clock = Arc::new(FixedClock::new(datetime!(2026-11-27 00:00 UTC)));
    for k in 0..50u32 {
        fx.revoke(
            Hierarchy::Auth,
            &(1000 + k).to_be_bytes(),
            Reason::AffiliationChanged,
            clock.now(),
        );
    }
    let publisher = fx.publisher(clock.clone());
    let out = tempfile::tempdir().unwrap();
    let index = publisher.publish_all(out.path(), clock.now()).unwrap();
    assert_eq!(index.len(), 130);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 130);
    let mut entries = 0;
    for row in rows {
        let file = row["file"].as_str().unwrap();
        let der = std::fs::read(out.path().join(file)).unwrap();
        use sha2::Digest;
        assert_eq!(
            row["sha256"].as_str().unwrap(),
            hex::encode(sha2::Sha256::digest(&der))
        );
        assert_eq!(row["size"].as_u64().unwrap(), der.len() as u64);
        assert_eq!(row["number"].as_u64().unwrap(), number_of(&der));
        assert_eq!(row["thisUpdate"].as_str().unwrap(), "2026-11-27T00:00:00Z");
        assert_eq!(row["nextUpdate"].as_str().unwrap(), "2026-11-28T00:00:00Z");
        assert!(["signing", "auth"].contains(&row["hierarchy"].as_str().unwrap()));
        entries += row["entries"].as_u64().unwrap();
    }
    assert_eq!(entries, 50);
    assert_eq!(rows[64]["partition"], "ca");
    assert_eq!(rows[64]["file"], "signing/ca.crl");

    // a copy elsewhere does not count as the served CRL, nor consume dirty flags
    let status = publisher.status(clock.now()).unwrap();
    assert!(status.iter().all(|s| s.published.is_none()));
    publisher
        .mark_dirty(Hierarchy::Auth, 1, Scope::Partition(1))
        .unwrap();
    publisher.publish_all(out.path(), clock.now()).unwrap();
    assert!(fx
        .store
        .take_dirty(Hierarchy::Auth, 1, Scope::Partition(1))
        .unwrap());

    // into its own directory: served, and listed by status
    let own = publisher.publish_all(fx.dir.path(), clock.now()).unwrap();
    assert!(own.iter().all(|e| e.number == 3));
    clock.advance(Duration::hours(2));
    let status = publisher.status(clock.now()).unwrap();
    assert_eq!(status.len(), 130);
    assert!(status
        .iter()
        .all(|s| s.age == Some(Duration::hours(2)) && s.published.as_ref().unwrap().number == 3));
}

#[test]
fn settings_and_roots_are_checked() {
    let fx = Fixture::new();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let roots = || Roots {
        signing: fx.signing.clone(),
        auth: fx.auth.clone(),
    };
    let make = |settings: Settings, roots: Roots| {
        Publisher::new(
            fx.policy.clone(),
            settings,
            roots,
            fx.store.clone(),
            fx.store.clone(),
            fx.dir.path(),
            clock.clone(),
        )
    };
    for (settings, field) in [
        (
            Settings {
                expired_margin: Duration::hours(1),
                ..Settings::default()
            },
            "expired_margin",
        ),
        (
            Settings {
                resign_margin: Duration::hours(24),
                ..Settings::default()
            },
            "resign_margin",
        ),
        (
            Settings {
                batch_delay: std::time::Duration::from_secs(600),
                ..Settings::default()
            },
            "batch_delay",
        ),
    ] {
        let e = make(settings, roots()).err().unwrap();
        assert!(e.to_string().contains(field), "{e}");
    }
    // a root without cRLSign cannot issue CRLs
    let signer = TestRoot::new(S);
    let mut params = signer.params.clone();
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let der = params.self_signed(&signer.key).unwrap().der().to_vec();
    let bad = Arc::new(TestRoot {
        key: rcgen::KeyPair::from_pem(&signer.key.serialize_pem()).unwrap(),
        params,
        der,
        fail: false.into(),
    });
    let e = make(
        Settings::default(),
        Roots {
            signing: bad,
            auth: fx.auth.clone(),
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("cRLSign"), "{e}");
}

mod http {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper::{Request, StatusCode};
    use hyper_util::rt::TokioIo;

    async fn fetch(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    /// `GET /crl/signing/1.crl` with one (conditional) request header.
    async fn get_partition_1_with(
        addr: std::net::SocketAddr,
        header: (&str, &str),
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        fetch(addr, "GET", "/crl/signing/1.crl", &[header]).await
    }

    #[tokio::test]
    async fn serves_crls_with_cache_headers_and_conditional_requests() {
        let fx = Fixture::new();
        let t0 = datetime!(2026-11-27 03:00 UTC);
        let clock = Arc::new(FixedClock::new(t0));
        let publisher = Arc::new(fx.publisher(clock.clone()));
        let crl = publisher.publish(S, 1, Scope::Partition(1), t0).unwrap();
        publisher
            .publish(Hierarchy::Auth, 1, Scope::Ca, t0)
            .unwrap();
        clock.advance(Duration::hours(1));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(publisher.clone().serve(listener, async {
            let _ = stopped.await;
        }));

        let (status, h, body) = fetch(addr, "GET", "/crl/signing/1.crl", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, crl.der);
        assert_eq!(h["content-type"], "application/pkix-crl");
        assert_eq!(h["last-modified"], "Fri, 27 Nov 2026 03:00:00 GMT");
        assert_eq!(
            h["cache-control"],
            "max-age=82800, public, no-transform, must-revalidate"
        );
        let etag = h["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

        let (status, h, body) = get_partition_1_with(addr, ("if-none-match", &etag)).await;
        assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
        assert_eq!(h["etag"].to_str().unwrap(), etag);
        let (status, ..) = get_partition_1_with(addr, ("if-none-match", "\"other\"")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, ..) =
            get_partition_1_with(addr, ("if-modified-since", "Fri, 27 Nov 2026 03:00:00 GMT"))
                .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        let (status, ..) =
            get_partition_1_with(addr, ("if-modified-since", "Fri, 27 Nov 2026 02:59:59 GMT"))
                .await;
        assert_eq!(status, StatusCode::OK);

        let (status, h, body) = fetch(addr, "HEAD", "/crl/signing/1.crl", &[]).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0));
        assert_eq!(
            h["content-length"].to_str().unwrap(),
            crl.der.len().to_string()
        );

        let (status, _, body) = fetch(addr, "GET", "/crl/auth/ca.crl", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(number_of(&body), 1);

        for path in [
            "/crl/signing/2.crl",
            "/crl/signing/64.crl",
            "/crl/signing/01.crl",
            "/crl/other/1.crl",
            "/crl/signing/../x",
            "/",
        ] {
            let (status, ..) = fetch(addr, "GET", path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, h, _) = fetch(addr, "POST", "/crl/signing/1.crl", &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(h["allow"], "GET, HEAD");

        // a new publication is served at once, with a new ETag
        let newer = publisher
            .publish(S, 1, Scope::Partition(1), clock.now())
            .unwrap();
        let (status, h, body) = get_partition_1_with(addr, ("if-none-match", &etag)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, newer.der);
        assert_ne!(h["etag"].to_str().unwrap(), etag);

        // a restarted server reads the files from disk
        let restarted = Arc::new(fx.publisher(clock.clone()));
        let resp = restarted
            .handle(Request::get("/crl/signing/1.crl").body(()).unwrap())
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            newer.der
        );

        stop.send(()).unwrap();
        server.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_rebuilds_a_dirty_partition_within_the_bound() {
        let fx = Fixture::new();
        let clock = Arc::new(FixedClock::new(datetime!(2026-11-27 00:00 UTC)));
        let settings = Settings {
            dirty_bound: std::time::Duration::from_millis(500),
            batch_delay: std::time::Duration::from_millis(50),
            ..Settings::default()
        };
        let publisher = Arc::new(fx.publisher_with(settings, clock.clone(), fx.store.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(publisher.clone().run(async {
            let _ = stopped.await;
        }));
        let number = |h, s| {
            fx.store
                .load(h, 1, s)
                .unwrap()
                .and_then(|st| st.published)
                .map(|p| p.number)
        };
        let wait_for = |what: &'static str, cond: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            while !cond() {
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(20),
                    "timed out waiting for {what}"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            start.elapsed()
        };
        tokio::task::block_in_place(|| {
            wait_for("first pass", &|| {
                number(Hierarchy::Auth, Scope::Ca) == Some(1)
            });
            let scope = fx.revoke(S, &[0x07, 0x77], Reason::KeyCompromise, clock.now());
            publisher.mark_dirty(S, 1, scope.clone()).unwrap();
            let took = wait_for("rebuild", &|| number(S, scope.clone()) == Some(2));
            assert!(took < std::time::Duration::from_secs(5), "{took:?}");
            assert_eq!(
                number(S, Scope::Partition((scope_index(scope.clone()) + 1) % 64)),
                Some(1),
                "others untouched"
            );
        });
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    fn scope_index(s: Scope) -> u16 {
        match s {
            Scope::Partition(p) => p,
            Scope::Municipal(_) | Scope::Ca => 0,
        }
    }
}

/// Municipal partitions (the default `crl.partition_by`): a store that issued under serial
/// partitions and then under municipal ones publishes both — the old partitions from their
/// state, the municipal ones once flagged —; each CRL's issuingDistributionPoint is the
/// directoryName its certificates carry (`…, OU=CRL Distribution Points, OU=Ibaraki-ken,
/// CN=Tsukuba-shi CRLDP`, no URL); `index.json` and the HTTP server map that name to the
/// file; OpenSSL checks a certificate against it; bad partition paths answer 404.
#[tokio::test]
async fn municipal_partitions_are_published_and_indexed() {
    let mut fx = Fixture::new();
    fx.policy.crl.uri = false;
    // Now: OpenSSL judges the CRL's freshness at the real time.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let clock = Arc::new(FixedClock::new(now));

    // Before: serial partitions. One revocation in partition 5, published.
    let old_serial = serial_in(&fx.policy, 5, 1);
    let old_scope = fx.revoke(S, &old_serial, Reason::KeyCompromise, now);
    let legacy = fx.publisher(clock.clone());
    legacy.publish(S, 1, old_scope.clone(), now).unwrap();
    let old_idp = {
        let der = std::fs::read(fx.file(S, old_scope.clone())).unwrap();
        idp_of(&der)
    };

    // After the upgrade: municipal partitions by default; the old partition stays known.
    fx.policy.crl.partition_by = PartitionScheme::Municipality;
    let tsukuba = Scope::Municipal(Municipality::new("Ibaraki-ken", "Tsukuba-shi").unwrap());
    let chiyoda = Scope::Municipal(Municipality::new("東京都", "千代田区").unwrap());
    let revoked = [0x01, 0x2d, 0x57, 0xca];
    fx.store.revoke(
        S,
        tsukuba.clone(),
        Entry {
            serial: revoked.to_vec(),
            revoked_at: now,
            reason: Reason::AffiliationChanged,
            invalidity: None,
            not_after: now + Duration::days(365),
        },
    );
    let publisher = fx.publisher(clock.clone());
    publisher.mark_dirty(S, 1, tsukuba.clone()).unwrap();
    publisher.mark_dirty(S, 1, chiyoda.clone()).unwrap();
    let scopes = publisher.scopes().unwrap();
    for want in [&old_scope, &tsukuba, &chiyoda] {
        assert!(
            scopes.contains(&(S, 1, want.clone())),
            "{want:?} in {scopes:?}"
        );
    }
    assert!(
        !scopes.contains(&(S, 1, Scope::Partition(6))),
        "no serial partition is published that nothing was issued into"
    );
    let report = publisher.tick(now);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.listing.is_none());

    // The old partition is republished with the same IDP (the self-check compares it).
    let der = std::fs::read(fx.file(S, old_scope.clone())).unwrap();
    assert_eq!(idp_of(&der), old_idp);
    assert_eq!(serials_of(&der).len(), 1, "the old entry is still listed");

    // The municipal CRL: its file, IDP = the certificates' distribution point.
    let file = fx.file(S, tsukuba.clone());
    assert!(
        file.ends_with("signing/Ibaraki-ken/Tsukuba-shi.crl"),
        "{file:?}"
    );
    let der = std::fs::read(&file).unwrap();
    assert_eq!(serials_of(&der), vec![revoked.to_vec()]);
    let leaf = fx.signing.leaf(&fx.policy, S, tsukuba.clone(), &revoked);
    let good = fx
        .signing
        .leaf(&fx.policy, S, tsukuba.clone(), &[0x01, 0x2d, 0x57, 0xcb]);
    let dp = {
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(&leaf).unwrap();
        let names = c
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::CRLDistributionPoints(d) => {
                    Some(d.points[0].distribution_point.clone())
                }
                _ => None,
            })
            .unwrap();
        match names {
            Some(x509_parser::extensions::DistributionPointName::FullName(n)) => match &n[..] {
                [x509_parser::extensions::GeneralName::DirectoryName(dn)] => dn.as_raw().to_vec(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        idp_of(&der),
        dp,
        "IDP fullName = the certificate's directoryName"
    );

    // index.json, written by publish_all and served live, maps the name to the file.
    let out = tempfile::tempdir().unwrap();
    let index = publisher.publish_all(out.path(), now).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["directoryNameDer"] == hex::encode(&dp))
        .expect("the certificate's directoryName is in index.json");
    assert_eq!(entry["file"], "signing/Ibaraki-ken/Tsukuba-shi.crl");
    assert_eq!(
        entry["directoryName"],
        "C=JP, O=JPKI-TEST, OU=JPKI for digital signature, OU=CRL Distribution Points, \
         OU=Ibaraki-ken, CN=Tsukuba-shi CRLDP"
    );
    assert!(entry.get("url").is_none(), "no URL in the real profile");
    assert!(out
        .path()
        .join("signing/Ibaraki-ken/Tsukuba-shi.crl")
        .exists());
    let chiyoda_entry = index
        .iter()
        .find(|e| e.partition == chiyoda.path())
        .expect("the Japanese-named partition");
    assert_eq!(
        chiyoda_entry.file,
        "signing/%E6%9D%B1%E4%BA%AC%E9%83%BD/%E5%8D%83%E4%BB%A3%E7%94%B0%E5%8C%BA.crl"
    );
    assert_eq!(chiyoda_entry.entries, 0);

    let get = |path: &str| {
        let req = hyper::Request::get(path).body(()).unwrap();
        let publisher = &publisher;
        async move { publisher.handle(req).await }
    };
    let resp = get("/crl/signing/Ibaraki-ken/Tsukuba-shi.crl").await;
    assert_eq!(resp.status(), 200);
    let resp = get("/crl/index.json").await;
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let live: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(live
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["directoryNameDer"] == hex::encode(&dp)
            && e["file"] == "signing/Ibaraki-ken/Tsukuba-shi.crl"));
    for bad in [
        "/crl/signing/Ibaraki-ken/Mito-shi.crl", // no such partition
        "/crl/signing/Ibaraki%2Dken/Tsukuba-shi.crl", // not canonical
        "/crl/signing/../Tsukuba-shi.crl",
        "/crl/signing/a/b/c.crl",
        "/crl/signing/%FF/x.crl",
        "/crl/signing/Ibaraki-ken/%0A.crl",
    ] {
        assert_eq!(get(bad).await.status(), 404, "{bad}");
    }

    // OpenSSL: the CRL verifies; the revoked certificate is refused and the good one accepted.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("root.pem"), fx.signing.pem()).unwrap();
    std::fs::write(w.join("crl.pem"), pem_of("X509 CRL", &der)).unwrap();
    if let Ok(keep) = std::env::var("CRL_PUBLISHER_KEEP") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(Path::new(&keep).join("root.pem"), fx.signing.pem()).unwrap();
        std::fs::write(Path::new(&keep).join("municipal.crl"), &der).unwrap();
    }
    let (ok, text) = openssl(
        w,
        &[
            "crl", "-in", "crl.pem", "-CAfile", "root.pem", "-noout", "-text",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
    assert!(
        text.contains("OU = Ibaraki-ken, CN = Tsukuba-shi CRLDP"),
        "{text}"
    );
    for (name, cert, expect_ok) in [("revoked", &leaf, false), ("good", &good, true)] {
        std::fs::write(w.join(format!("{name}.pem")), pem_of("CERTIFICATE", cert)).unwrap();
        let (ok, text) = openssl(
            w,
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-CRLfile",
                "crl.pem",
                &format!("{name}.pem"),
            ],
        );
        assert_eq!(ok, expect_ok, "{name}: {text}");
    }
}

/// The DER of the fullName directoryName of a CRL's issuingDistributionPoint.
fn idp_of(crl_der: &[u8]) -> Vec<u8> {
    let (_, crl) = CertificateRevocationList::from_der(crl_der).unwrap();
    for ext in crl.extensions() {
        if let x509_parser::extensions::ParsedExtension::IssuingDistributionPoint(idp) =
            ext.parsed_extension()
        {
            if let Some(x509_parser::extensions::DistributionPointName::FullName(n)) =
                &idp.distribution_point
            {
                for g in n {
                    if let x509_parser::extensions::GeneralName::DirectoryName(dn) = g {
                        return dn.as_raw().to_vec();
                    }
                }
            }
        }
    }
    panic!("no directoryName IDP")
}

/// Root generations: a second generation of a hierarchy's root (same DN, another key)
/// publishes its own CRLs beside the first's, each listing only the certificates it issued and
/// signed with its own key (OpenSSL accepts each with its own root only); files, URLs and
/// `index.json` name the generation and the issuer key; a retired generation stops once its
/// last certificate has expired plus the entry margin.
#[test]
fn each_root_generation_publishes_its_own_crls_until_it_retires() {
    let fx = Fixture::new();
    let clock = Arc::new(FixedClock::new(datetime!(2026-11-27 00:00 UTC)));
    let publisher = fx.publisher(clock.clone());
    let s = Hierarchy::Signing;
    let p = Scope::Partition(1);
    let entry = |serial: &[u8]| Entry {
        serial: serial.to_vec(),
        revoked_at: clock.now(),
        reason: Reason::KeyCompromise,
        invalidity: None,
        not_after: clock.now() + Duration::days(30),
    };
    fx.store.revoke_in(s, 1, p.clone(), entry(&[0x11]));
    fx.store.revoke_in(s, 2, p.clone(), entry(&[0x22]));
    // Generation 2 is not known yet: its CRLs are not listed, and cannot be built.
    assert!(!publisher.scopes().unwrap().iter().any(|(_, g, _)| *g == 2));
    assert!(publisher.build(s, 2, p.clone(), clock.now()).is_err());
    let second = TestRoot::new(s);
    publisher.add_generation(s, 2, second.clone()).unwrap();
    assert!(publisher.scopes().unwrap().contains(&(s, 2, p.clone())));
    assert!(publisher.scopes().unwrap().contains(&(s, 2, Scope::Ca)));

    let one = publisher.publish(s, 1, p.clone(), clock.now()).unwrap();
    let two = publisher.publish(s, 2, p.clone(), clock.now()).unwrap();
    assert_eq!(serials_of(&one.der), vec![vec![0x11]]);
    assert_eq!(serials_of(&two.der), vec![vec![0x22]]);
    assert_eq!(one.number, 1, "numbers are per generation");
    assert_eq!(two.number, 1);
    assert_eq!(Publisher::file_name(s, 2, &p), "signing-g2/1.crl");
    let dir = tempfile::tempdir().unwrap();
    for (crl, root, other) in [(&one, &fx.signing, &second), (&two, &second, &fx.signing)] {
        let crl_pem = dir.path().join("c.pem");
        std::fs::write(&crl_pem, pem_of("X509 CRL", &crl.der)).unwrap();
        for (r, ok) in [(root, true), (other, false)] {
            let root_pem = dir.path().join("r.pem");
            std::fs::write(&root_pem, r.pem()).unwrap();
            let (_, text) = openssl(
                dir.path(),
                &["crl", "-in", "c.pem", "-CAfile", "r.pem", "-noout"],
            );
            assert_eq!(text.contains("verify OK"), ok, "{text}");
        }
    }
    // URLs of generation 2 name it; the index names the issuer key.
    let index = publisher.index().unwrap();
    let row = |g: u32| {
        index
            .iter()
            .find(|e| e.generation == g && e.partition == "1" && e.hierarchy == s)
            .unwrap()
            .clone()
    };
    assert_eq!(
        row(2).url.as_deref(),
        Some("http://127.0.0.1:8080/crl/signing-g2/1.crl")
    );
    assert_eq!(
        row(1).url.as_deref(),
        Some("http://127.0.0.1:8080/crl/signing/1.crl")
    );
    assert_ne!(row(1).issuer_key_id, row(2).issuer_key_id);
    assert_eq!(row(1).directory_name_der, row(2).directory_name_der);
    // Routes.
    assert_eq!(
        publisher.route("/crl/signing-g2/1.crl"),
        Some((s, 2, p.clone()))
    );
    assert_eq!(
        publisher.route("/crl/auth-g3/ca.crl"),
        Some((Hierarchy::Auth, 3, Scope::Ca))
    );
    assert_eq!(
        publisher.route("/crl/signing/1.crl"),
        Some((s, 1, p.clone()))
    );
    for bad in [
        "/crl/signing-g1/1.crl",
        "/crl/signing-g02/1.crl",
        "/crl/signing-g/1.crl",
        "/crl/signing-gx/1.crl",
        "/crl/g2/1.crl",
    ] {
        assert_eq!(publisher.route(bad), None, "{bad}");
    }

    // Generation 1 retires: its last certificate expires in 10 days; published until then
    // plus the entry margin (1 day), then no more.
    publisher.retire_generation(s, 1, clock.now() + Duration::days(10));
    clock.advance(Duration::days(10) + Duration::hours(23));
    assert!(publisher.scopes().unwrap().contains(&(s, 1, p.clone())));
    clock.advance(Duration::hours(2));
    let scopes = publisher.scopes().unwrap();
    assert!(
        !scopes.iter().any(|(h, g, _)| *h == s && *g == 1),
        "{scopes:?}"
    );
    assert!(scopes.contains(&(s, 2, p.clone())));
    assert!(scopes.contains(&(Hierarchy::Auth, 1, Scope::Ca)));
    let report = publisher.tick(clock.now());
    assert!(report.failed.is_empty());
    assert!(report
        .published
        .iter()
        .all(|(h, g, _, _)| !(*h == s && *g == 1)));

    // Its files are still on disk, but neither listed nor served stale: 410 Gone, saying why;
    // generation 2's are served as before.
    assert!(fx.dir.path().join("signing/1.crl").exists());
    assert!(!publisher
        .index()
        .unwrap()
        .iter()
        .any(|e| e.hierarchy == s && e.generation == 1));
    assert!(publisher.retired_since(s, 1, clock.now()).is_some());
    assert!(publisher.retired_since(s, 2, clock.now()).is_none());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let get = |path: String| {
        use http_body_util::BodyExt;
        use hyper::Request;
        rt.block_on(async {
            let resp = publisher.handle(Request::get(path).body(()).unwrap()).await;
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        })
    };
    let (status, body) = get("/crl/signing/1.crl".into());
    assert_eq!(status, hyper::StatusCode::GONE, "{body}");
    assert!(
        body.contains("generation 1 of the signing root is retired")
            && body.contains("no longer published"),
        "{body}"
    );
    let (status, _) = get("/crl/signing-g2/1.crl".into());
    assert_eq!(status, hyper::StatusCode::OK);
}
