//! The durable store of pre-signed answers: every certificate signed ahead by the pre-signer,
//! served after a "restart" (a new responder over the same store) without one signature,
//! a revocation replacing the stored answer, a stored answer whose status the source no
//! longer states never served, and the memory front bounded by its capacity.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use der07::asn1::{Null, OctetString};
use der07::{Decode, Encode};
use ocsp_responder::stored::{AnswerStore, Settings as StoreSettings};
use ocsp_responder::{Cause, Clock, FixedClock, HashAlg, Responder, Settings, StatusSource};
use policies::{Hierarchy, Policy, Reason};
use spki07::AlgorithmIdentifierOwned;
use x509_cert_02::serial_number::SerialNumber;
use x509_ocsp::{CertId, CertStatus, OcspRequest, Request, TbsRequest};

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn cert_id(pki: &support::Pki, name: &str, serial: &[u8]) -> CertId {
    let root = x509_cert_02::Certificate::from_der(&pki.roots[name]).unwrap();
    let subject = root.tbs_certificate.subject.to_der().unwrap();
    let key = root
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: HashAlg::Sha1.oid(),
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&subject)).unwrap(),
        issuer_key_hash: OctetString::new(sha1(&key)).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

fn request(id: CertId) -> Vec<u8> {
    OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn status_of(der: &[u8]) -> CertStatus {
    let resp = x509_ocsp::OcspResponse::from_der(der).unwrap();
    let bytes = resp.response_bytes.unwrap();
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    basic.tbs_response_data.responses[0].cert_status
}

fn responder(
    pki: &support::Pki,
    store: &Arc<AnswerStore>,
    clock: &Arc<FixedClock>,
    tune: impl FnOnce(&mut Settings),
) -> Responder {
    let mut settings = Settings::from_policy(&Policy::default_policy());
    tune(&mut settings);
    let r = Responder::new(
        settings,
        pki.issuers.clone(),
        pki.source.clone(),
        clock.clone(),
    )
    .unwrap();
    r.attach_store(store.clone()).unwrap();
    r
}

#[test]
fn presigned_answers_survive_a_restart_and_follow_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    let path = dir.path().join("answers");
    let store = Arc::new(AnswerStore::open(&path, &StoreSettings::default()).unwrap());
    let r = responder(&pki, &store, &clock, |_| {});
    let issued = {
        let mut n = 0;
        pki.source
            .for_each_issued(clock.now(), &mut |_, _| {
                n += 1;
                Ok(())
            })
            .unwrap();
        n
    };
    let report = r.presign_pass(&AtomicBool::new(false)).unwrap();
    // Held and good and revoked alike: every issued certificate, the SHA-1 form.
    assert_eq!(report.signed, issued);
    assert_eq!(r.metrics().count_signatures(), issued);
    // A second pass has nothing to do.
    assert_eq!(r.presign_pass(&AtomicBool::new(false)).unwrap().signed, 0);
    drop(r);
    drop(store);

    // "Restart": a new responder over the reopened store.
    let store = Arc::new(AnswerStore::open(&path, &StoreSettings::default()).unwrap());
    let r = responder(&pki, &store, &clock, |_| {});
    let good = pki.leaf("good").serial.clone();
    let req = request(cert_id(&pki, "signing", &good));
    let a = r.answer_blocking(&req);
    assert_eq!(a.cause, Cause::CacheHit);
    assert!(matches!(status_of(&a.der), CertStatus::Good(_)));
    assert_eq!(r.metrics().count_stored_hits(), 1);
    assert_eq!(r.metrics().count_signatures(), 0);
    // The second query is a memory hit.
    assert_eq!(r.answer_blocking(&req).der, a.der);
    assert_eq!(r.metrics().count_stored_hits(), 1);

    // A revocation replaces the stored answer (and the memory one) before it returns.
    pki.source.revoke(
        Hierarchy::Signing,
        &good,
        clock.now(),
        Reason::KeyCompromise,
    );
    assert_eq!(
        r.refresh(Hierarchy::Signing, &good, clock.now()).unwrap(),
        2
    );
    assert!(matches!(
        status_of(&r.answer_blocking(&req).der),
        CertStatus::Revoked(_)
    ));
    let stored = store.get(Hierarchy::Signing, HashAlg::Sha1, &good).unwrap();
    assert!(matches!(
        stored.map(|s| s.status),
        Some(ocsp_responder::Status::Revoked { .. })
    ));

    // A status change the responder was not told of (another process; or a crash between
    // the change's commit and the answer's rewrite) is caught up from the source's log: by
    // the running follower...
    assert!(r.store_is_authoritative());
    let late = pki.leaf("late").serial.clone();
    let late_req = request(cert_id(&pki, "signing", &late));
    assert!(matches!(
        status_of(&r.answer_blocking(&late_req).der),
        CertStatus::Good(_)
    ));
    pki.source
        .revoke(Hierarchy::Signing, &late, clock.now(), Reason::Unspecified);
    assert!(r.catch_up().unwrap() >= 1);
    let a = r.answer_blocking(&late_req);
    assert!(matches!(status_of(&a.der), CertStatus::Revoked(_)));
    assert!(matches!(
        store
            .get(Hierarchy::Signing, HashAlg::Sha1, &late)
            .unwrap()
            .map(|s| s.status),
        Some(ocsp_responder::Status::Revoked { .. })
    ));
    // ... and, after a "crash" (the change committed, the responder gone before it rewrote
    // the answer), by the restart before its first answer.
    let other = pki.leaf("auth-good").serial.clone();
    let other_req = request(cert_id(&pki, "auth", &other));
    assert!(matches!(
        status_of(&r.answer_blocking(&other_req).der),
        CertStatus::Good(_)
    ));
    drop(r);
    pki.source
        .revoke(Hierarchy::Auth, &other, clock.now(), Reason::KeyCompromise);
    drop(store);
    let store = Arc::new(AnswerStore::open(&path, &StoreSettings::default()).unwrap());
    assert!(matches!(
        store
            .get(Hierarchy::Auth, HashAlg::Sha1, &other)
            .unwrap()
            .map(|s| s.status),
        Some(ocsp_responder::Status::Good)
    ));
    let r = responder(&pki, &store, &clock, |_| {});
    let a = r.answer_blocking(&other_req);
    assert_eq!(a.cause, Cause::LiveSigned);
    assert!(matches!(status_of(&a.der), CertStatus::Revoked(_)));

    // An unknown serial is answered live and never stored.
    let unknown = cert_id(&pki, "signing", &[0x7f, 0x01]);
    let a = r.answer_blocking(&request(unknown));
    assert!(matches!(status_of(&a.der), CertStatus::Unknown(_)));
    assert!(store
        .get(Hierarchy::Signing, HashAlg::Sha1, &[0x7f, 0x01])
        .unwrap()
        .is_none());

    // Near nextUpdate, the pre-signer re-signs what is due.
    clock.advance(time::Duration::minutes(50));
    let report = r.presign_pass(&AtomicBool::new(false)).unwrap();
    assert!(report.signed >= issued, "{report:?}");
}

#[test]
fn the_memory_front_stays_within_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    let store = Arc::new(AnswerStore::temporary().unwrap());
    let r = responder(&pki, &store, &clock, |s| s.cache_capacity = 2);
    r.presign_pass(&AtomicBool::new(false)).unwrap();
    for name in ["good", "revoked", "held", "late"] {
        let serial = pki.leaf(name).serial.clone();
        let a = r.answer_blocking(&request(cert_id(&pki, "signing", &serial)));
        assert_eq!(a.cause, Cause::CacheHit, "{name}");
        assert!(r.cached() <= 2, "{} cached", r.cached());
    }
    assert_eq!(r.metrics().count_stored_hits(), 4);
    assert_eq!(
        r.metrics().count_signatures(),
        r.metrics().count_presigned()
    );
}

/// Waits (up to a minute: the machine may be loaded; nothing here is timed) until `done`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < until, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The background pre-signer over a source with an issuance feed: every certificate walked
/// once at the first start; a certificate issued later is signed from the feed without
/// another walk; answers coming due are found by the scan of the stored answers and signed
/// again; a restart resumes from the cursor kept beside the answers (no walk); a cursor
/// without answers (the answer store emptied) is not trusted: one walk again.
#[test]
fn the_background_presigner_follows_the_feed_and_walks_only_at_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    let path = dir.path().join("answers");
    let cursor = path.join("presign-cursor");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = |store: &Arc<AnswerStore>| {
        let r = responder(&pki, store, &clock, |_| {});
        r.keep_presign_cursor(cursor.clone()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let me = r.clone();
        let task = rt.spawn(async move {
            me.run_presigner(async {
                let _ = rx.await;
            })
            .await
        });
        (r, tx, task)
    };
    let has = |store: &AnswerStore, serial: &[u8]| {
        store
            .contains(Hierarchy::Signing, HashAlg::Sha1, serial)
            .unwrap()
    };
    let good = pki.leaf("good").serial.clone();

    let store = Arc::new(AnswerStore::open(&path, &StoreSettings::default()).unwrap());
    let (r, stop, task) = run(&store);
    eventually("the first start's walk", || {
        has(&store, &good) && has(&store, &pki.leaf("late").serial)
    });
    assert_eq!(pki.source.walks(), 1);
    let first = store
        .get(Hierarchy::Signing, HashAlg::Sha1, &good)
        .unwrap()
        .unwrap();

    // A new certificate: signed from the feed, no walk.
    pki.source.issue(Hierarchy::Signing, &[0x10, 0x77]);
    eventually("the new certificate's answer", || {
        has(&store, &[0x10, 0x77])
    });
    assert_eq!(pki.source.walks(), 1);

    // Within resign_margin of nextUpdate (20 of 60 minutes): the scan finds it, it is
    // signed again.
    clock.advance(time::Duration::minutes(45));
    eventually("the due answer signed again", || {
        store
            .get(Hierarchy::Signing, HashAlg::Sha1, &good)
            .unwrap()
            .is_some_and(|a| a.times.next_update > first.times.next_update)
    });
    assert_eq!(pki.source.walks(), 1, "found by the scan, not by a walk");
    let _ = stop.send(());
    rt.block_on(task).unwrap();
    drop(r);
    drop(store);

    // A restart resumes from the cursor: a certificate issued while it was down is signed,
    // and nothing is walked.
    assert!(std::fs::read_to_string(&cursor).unwrap().contains("cursor"));
    pki.source.issue(Hierarchy::Signing, &[0x10, 0x78]);
    let store = Arc::new(AnswerStore::open(&path, &StoreSettings::default()).unwrap());
    let (r, stop, task) = run(&store);
    eventually("the certificate issued while down", || {
        has(&store, &[0x10, 0x78])
    });
    assert_eq!(pki.source.walks(), 1, "a restart does not walk");
    let _ = stop.send(());
    rt.block_on(task).unwrap();
    drop(r);

    // The answers gone but the cursor kept: every certificate is walked again.
    store.clear().unwrap();
    let (_r, stop, task) = run(&store);
    eventually("the answers refilled", || has(&store, &good));
    assert_eq!(pki.source.walks(), 2);
    let _ = stop.send(());
    rt.block_on(task).unwrap();
}
