//! Officers and roles through the one entry point, `Authority::handle_as`: what each role may
//! do, refusals changing nothing but the audit trail (which records them), every audit record
//! naming its actor, and authentication of an officer's key (unknown, suspended, expired).

use std::sync::Arc;

use base64::Engine;
use ca::api::Request;
use ca::authority::{Event, NewResident, Revocation};
use ca::clock::FixedClock;
use ca::officers::{self, Actor, NewOfficer, OfficerState, Role};
use ca::{Authority, Error};
use policies::{Hierarchy, Reason};
use serde_json::Value;
use time::macros::{date, datetime};
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-12-01 03:00 UTC);

/// A new CA, made by the person at the host (as `jpki init` is).
fn authority(dir: &std::path::Path) -> Authority {
    officers::acting_as(&Actor::root_on_host(), || {
        Authority::init(
            &dir.join("data"),
            policies::policy::DEFAULT_POLICY,
            b"officers test passphrase",
            Arc::new(FixedClock::new(NOW)),
        )
    })
    .unwrap()
}

fn resident(municipality: &str) -> Request {
    Request::ResidentAdd(NewResident {
        name: "山田 花子".into(),
        birth: date!(1990 - 04 - 01),
        sex: "2".parse().unwrap(),
        // One person per municipality (the register refuses the same person twice).
        address: format!("東京都{municipality}霞が関２－１－２"),
        prefecture: "Tokyo".into(),
        municipality: municipality.into(),
        card_expiry: date!(2036 - 01 - 01),
    })
}

fn officer(a: &Authority, name: &str, role: Role, municipality: Option<&str>) -> (Actor, Vec<u8>) {
    let spki = format!("spki of {name}").into_bytes();
    officers::acting_as(&Actor::root_on_host(), || {
        officers::add(
            a,
            &NewOfficer {
                name: name.into(),
                role,
                municipality: municipality.map(str::to_owned),
                spki: spki.clone(),
                certificate: Some("01".into()),
                not_before: Some(NOW - time::Duration::days(1)),
                not_after: Some(NOW + time::Duration::days(365)),
            },
        )
    })
    .unwrap();
    let o = officers::authenticate(a.storage().as_ref(), &spki, NOW).unwrap();
    (Actor::Officer(o), spki)
}

fn csr() -> String {
    use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA256};
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let der = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec();
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn last_record(a: &Authority) -> ca::audit::Record {
    let head = a.storage().audit_head().unwrap().unwrap();
    a.storage().audit_records(head.seq, 1).unwrap().remove(0)
}

fn version(a: &Authority, id: &str) -> u64 {
    a.resident(id).unwrap().version
}

fn move_to(id: &str, municipality: &str) -> Request {
    Request::Event {
        id: id.into(),
        event: Event::Move {
            address: "東京都港区芝公園４－２－８".into(),
            prefecture: Some("Tokyo".into()),
            municipality: Some(municipality.into()),
        },
    }
}

#[test]
fn each_role_acts_within_its_powers_and_refusals_change_nothing_but_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let a = authority(tmp.path());
    let root = Actor::root_on_host();
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    let chiyoda = id(a.handle_as(&root, resident("Chiyoda-ku")).unwrap());
    let minato = id(a.handle_as(&root, resident("Minato-ku")).unwrap());
    let (clerk, _) = officer(
        &a,
        "Clerk Chiyoda",
        Role::MunicipalClerk,
        Some("Chiyoda-ku"),
    );
    let (auditor, _) = officer(&a, "Auditor", Role::Auditor, None);
    let (ca_officer, _) = officer(&a, "CA Officer", Role::CaOfficer, None);

    // A clerk of Chiyoda-ku moving a resident of Minato-ku: refused, resident unchanged, the
    // refusal recorded with the clerk as actor.
    let before = version(&a, &minato);
    let head = a.storage().audit_head().unwrap().unwrap().seq;
    let e = a
        .handle_as(&clerk, move_to(&minato, "Minato-ku"))
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    assert_eq!(e.code(), "forbidden");
    assert!(e.to_string().contains("Minato-ku"), "{e}");
    assert_eq!(version(&a, &minato), before);
    let refused = last_record(&a);
    assert_eq!(refused.seq, head + 1, "one record: the refusal");
    assert_eq!(
        (
            refused.action.as_str(),
            refused.subject.as_str(),
            refused.detail.as_str()
        ),
        ("refused", "event", "forbidden")
    );
    assert_eq!(refused.actor, Some(clerk.label()));
    // Registering a resident of another municipality: refused, nobody added.
    let e = a.handle_as(&clerk, resident("Minato-ku")).unwrap_err();
    assert_eq!(e.code(), "forbidden");
    // Its own resident: done, recorded with the clerk as actor.
    a.handle_as(&clerk, move_to(&chiyoda, "Chiyoda-ku"))
        .unwrap();
    let done = last_record(&a);
    assert_eq!(done.action, "event:move");
    assert_eq!(done.actor, Some(clerk.label()));
    assert!(done
        .actor
        .as_deref()
        .unwrap()
        .contains("municipal-clerk@Chiyoda-ku"));

    // Issuance is the ca-officer's, not the clerk's or the auditor's.
    let issue = |resident: &str| Request::Issue {
        resident: resident.into(),
        kind: Hierarchy::Auth,
        csr_base64: csr(),
        overrides: Default::default(),
    };
    for who in [&clerk, &auditor] {
        assert_eq!(
            a.handle_as(who, issue(&chiyoda)).unwrap_err().code(),
            "forbidden"
        );
    }
    let serial = |v: Value| v["serial"].as_str().unwrap().to_owned();
    let mine = serial(a.handle_as(&ca_officer, issue(&chiyoda)).unwrap());
    let theirs = serial(a.handle_as(&ca_officer, issue(&minato)).unwrap());
    assert_eq!(last_record(&a).actor, Some(ca_officer.label()));
    // A ca-officer does not edit the register.
    assert_eq!(
        a.handle_as(&ca_officer, resident("Chiyoda-ku"))
            .unwrap_err()
            .code(),
        "forbidden"
    );

    // The clerk puts its own resident's certificate on hold, not another municipality's, and
    // revokes nothing.
    let hold = |serial: &str| Request::Revoke {
        serial: serial.into(),
        hierarchy: Some(Hierarchy::Auth),
        reason: Reason::CertificateHold,
        invalidity: None,
    };
    let held: Revocation =
        serde_json::from_value(a.handle_as(&clerk, hold(&mine)).unwrap()).unwrap();
    assert_eq!(held.serial, mine);
    assert_eq!(
        a.handle_as(&clerk, hold(&theirs)).unwrap_err().code(),
        "forbidden"
    );
    let status = |s: &str| {
        let v = a
            .handle_as(
                &auditor,
                Request::CertShow {
                    serial: s.into(),
                    hierarchy: Some(Hierarchy::Auth),
                },
            )
            .unwrap();
        v["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status(&theirs), "good");
    assert_eq!(status(&mine), "held");
    let revoke = Request::Revoke {
        serial: theirs.clone(),
        hierarchy: Some(Hierarchy::Auth),
        reason: Reason::KeyCompromise,
        invalidity: None,
    };
    assert_eq!(
        a.handle_as(&clerk, revoke.clone()).unwrap_err().code(),
        "forbidden"
    );
    assert_eq!(
        a.handle_as(&auditor, revoke.clone()).unwrap_err().code(),
        "forbidden"
    );
    assert_eq!(status(&theirs), "good");
    a.handle_as(&ca_officer, revoke).unwrap();
    assert_eq!(status(&theirs), "revoked");

    // The auditor reads the trail, and nothing of the register.
    let log = a.handle_as(&auditor, Request::AuditLog).unwrap();
    assert_eq!(
        a.handle_as(
            &auditor,
            Request::ResidentShow {
                id: chiyoda.clone()
            }
        )
        .unwrap_err()
        .code(),
        "forbidden"
    );
    // Every record names its actor; none is unattributed; the chain verifies.
    let records: Vec<ca::audit::Record> = serde_json::from_value(log["records"].clone()).unwrap();
    assert!(records.iter().all(|r| r.v == 2), "every record is format 2");
    let actors: std::collections::BTreeSet<_> =
        records.iter().map(|r| r.actor.clone().unwrap()).collect();
    assert!(!actors.contains(officers::UNATTRIBUTED), "{actors:?}");
    assert!(actors.contains(&root.label()));
    let refusals = records.iter().filter(|r| r.action == "refused").count();
    assert_eq!(refusals, 8, "every refusal is on record");
    a.handle_as(&auditor, Request::AuditVerify).unwrap();
}

#[test]
fn unknown_suspended_revoked_and_expired_officers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = authority(tmp.path());
    let storage = a.storage().as_ref();
    let e = officers::authenticate(storage, b"no such key", NOW).unwrap_err();
    assert_eq!(e.code(), "unknown_officer");
    let (clerk, spki) = officer(&a, "Clerk", Role::MunicipalClerk, Some("Chiyoda-ku"));
    // Outside its certificate's validity.
    let later = NOW + time::Duration::days(400);
    let e = officers::authenticate(storage, &spki, later).unwrap_err();
    assert_eq!(e.code(), "officer_certificate");
    assert!(e.to_string().contains("expired"), "{e}");
    // Suspended: refused at authentication, and an actor made before the suspension is
    // refused too (its standing is checked on every request), with the refusal audited.
    let root = Actor::root_on_host();
    a.handle_as(
        &root,
        Request::OfficerSuspend {
            name: "Clerk".into(),
        },
    )
    .unwrap();
    let e = officers::authenticate(storage, &spki, NOW).unwrap_err();
    assert_eq!(e.code(), "officer_not_active");
    let Actor::Officer(mut stale) = clerk else {
        unreachable!()
    };
    stale.state = OfficerState::Suspended;
    let stale = Actor::Officer(stale);
    let e = a.handle_as(&stale, resident("Chiyoda-ku")).unwrap_err();
    assert_eq!(e.code(), "officer_not_active");
    assert_eq!(last_record(&a).action, "refused");
    a.handle_as(
        &root,
        Request::OfficerReactivate {
            name: "Clerk".into(),
        },
    )
    .unwrap();
    officers::authenticate(storage, &spki, NOW).unwrap();
    // Revoked is final.
    a.handle_as(
        &root,
        Request::OfficerRevoke {
            name: "Clerk".into(),
        },
    )
    .unwrap();
    let e = a
        .handle_as(
            &root,
            Request::OfficerReactivate {
                name: "Clerk".into(),
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "officer_not_active");
    assert_eq!(
        officers::authenticate(storage, &spki, NOW)
            .unwrap_err()
            .code(),
        "officer_not_active"
    );
    // Unknown names and duplicate registrations.
    let e = a
        .handle_as(
            &root,
            Request::OfficerSuspend {
                name: "Nobody".into(),
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "unknown_officer");
    let dup = officers::acting_as(&root, || {
        officers::add(
            &a,
            &NewOfficer {
                name: "Clerk".into(),
                role: Role::Auditor,
                municipality: None,
                spki: b"another key".to_vec(),
                certificate: None,
                not_before: None,
                not_after: None,
            },
        )
    })
    .unwrap_err();
    assert_eq!(dup.code(), "officer_exists");
    let list = a.handle_as(&root, Request::OfficerList).unwrap();
    assert_eq!(list["officers"].as_array().unwrap().len(), 1);
    assert_eq!(list["officers"][0]["state"], "revoked");
}
