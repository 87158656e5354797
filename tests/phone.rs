//! Smartphone certificates end to end (ca::authority::phone): a holder token acts as the card
//! and another, of kind phone, as the smartphone's secure element. The card's authentication
//! key authorises the phone's CSRs over a CA challenge; bad applications change nothing;
//! certificates pass `openssl verify` and carry the phone policy marker.

mod common;

use std::sync::Arc;

use ca::authority::phone::{authorisation_message, PhoneApplication, PhoneIssued};
use ca::authority::{Event, NewResident};
use ca::clock::FixedClock;
use ca::records::{CertKind, State};
use ca::Authority;
use holder_token::{Token, TokenKind};
use policies::{Hierarchy, Reason, Sex};
use time::{Duration, OffsetDateTime};

const SIGN_PIN: &str = "ABC123";
const AUTH_PIN: &str = "1234";

struct World {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    clock: Arc<FixedClock>,
    a: Authority,
    id: String,
    card: Token,
}

/// A resident with a card token holding both card certificates.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let clock = Arc::new(FixedClock::new(OffsetDateTime::now_utc()));
    let a = Authority::init(
        &dir.join("data"),
        policies::policy::DEFAULT_POLICY,
        common::PASS.as_bytes(),
        clock.clone(),
    )
    .unwrap();
    let id = a
        .resident_add(&NewResident {
            name: "携帯　太郎".into(),
            birth: time::macros::date!(1985 - 04 - 01),
            sex: Sex::Male,
            address: "東京都千代田区霞が関2-1-2".into(),
            prefecture: "Tokyo".into(),
            municipality: "Chiyoda-ku".into(),
            card_expiry: (OffsetDateTime::now_utc() + Duration::days(3000)).date(),
        })
        .unwrap();
    let mut card = Token::create(&dir.join("card.json"), SIGN_PIN, AUTH_PIN).unwrap();
    for (h, pin) in [(Hierarchy::Signing, SIGN_PIN), (Hierarchy::Auth, AUTH_PIN)] {
        let csr = card.csr(h, pin).unwrap();
        let issued = a.issue(&id, h, &csr).unwrap();
        card.import_cert(&issued.der).unwrap();
    }
    World {
        _tmp: tmp,
        dir,
        clock,
        a,
        id,
        card,
    }
}

/// A phone token and its two CSRs.
fn phone(w: &World, name: &str) -> (Token, Vec<u8>, Vec<u8>) {
    let mut t =
        Token::create_kind(&w.dir.join(name), SIGN_PIN, AUTH_PIN, TokenKind::Phone).unwrap();
    assert_eq!(t.kind(), TokenKind::Phone);
    let auth = t.csr(Hierarchy::Auth, AUTH_PIN).unwrap();
    let signing = t.csr(Hierarchy::Signing, SIGN_PIN).unwrap();
    (t, auth, signing)
}

/// The card's authorisation of an application (what `jpki token authorise-phone` makes).
fn authorise(
    card: &mut Token,
    challenge: &str,
    auth: Option<&[u8]>,
    sig: Option<&[u8]>,
) -> Vec<u8> {
    let m = authorisation_message(&hex::decode(challenge).unwrap(), auth, sig).unwrap();
    card.login(AUTH_PIN, &m).unwrap()
}

fn apply(w: &mut World, auth: Option<&[u8]>, signing: Option<&[u8]>) -> ca::Result<PhoneIssued> {
    let ch = w.a.phone_challenge(&w.id).unwrap().challenge;
    let sig = authorise(&mut w.card, &ch, auth, signing);
    w.a.phone_issue(
        &w.id,
        &PhoneApplication {
            auth_csr: auth,
            signing_csr: signing,
            challenge: &ch,
            authorisation: &sig,
        },
    )
}

fn status(a: &Authority, h: Hierarchy, serial: &str) -> (State, Option<Reason>) {
    let s = a
        .storage()
        .status(h, &ca::authority::parse_serial(serial).unwrap())
        .unwrap()
        .unwrap();
    (s.state, s.reason)
}

/// Everything observable that a refused application must leave alone.
fn snapshot(a: &Authority, id: &str) -> String {
    let certs = a.holder_certs(id).unwrap();
    let r = a.resident(id).unwrap();
    format!(
        "{:?} {:?} {:?} {}",
        certs
            .iter()
            .map(|(c, s)| (c.serial.clone(), c.kind, s.state))
            .collect::<Vec<_>>(),
        r.phone,
        r.current,
        a.audit_records().unwrap().len()
    )
}

fn policy_oids(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::*;
    let (_, c) = parse_x509_certificate(der).unwrap();
    c.extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::CertificatePolicies(p) => Some(
                p.iter()
                    .map(|i| i.policy_id.to_id_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_phone_gets_both_certificates_on_the_card_s_authority() {
    let mut w = world();
    let card_before = w.a.resident(&w.id).unwrap().current.clone();
    let (_t, auth, signing) = phone(&w, "phone.json");
    let got = apply(&mut w, Some(&auth), Some(&signing)).unwrap();
    assert_eq!(got.certificates.len(), 2);
    assert!(got.superseded.is_empty());
    let card_certs = w.a.holder_certs(&w.id).unwrap();
    for c in &got.certificates {
        assert_eq!(c.kind, CertKind::phone(c.hierarchy));
        // The marker: the card policy OID plus one arc.
        let card_oid = w.a.policy().policy_oid(c.hierarchy).to_string();
        assert_eq!(policy_oids(&c.der), vec![format!("{card_oid}.1")]);
        // Capped by the card certificates.
        for (cc, _) in card_certs.iter().filter(|(cc, _)| !cc.kind.is_phone()) {
            assert!(c.not_after <= cc.not_after || cc.hierarchy != c.hierarchy);
        }
        // Accepted by OpenSSL against the hierarchy's root.
        let root = w.dir.join(format!("root-{}.pem", c.hierarchy));
        std::fs::write(&root, ca::records::pem(&w.a.root(c.hierarchy).der)).unwrap();
        let leaf = w.dir.join(format!("phone-{}.pem", c.hierarchy));
        std::fs::write(&leaf, &c.pem).unwrap();
        let out = common::openssl(&["verify", "-CAfile", &common::p(&root), &common::p(&leaf)]);
        assert!(out.contains(": OK"), "{out}");
    }
    // The card's certificates are untouched and still the card's current ones.
    let r = w.a.resident(&w.id).unwrap();
    assert_eq!(r.current, card_before);
    for serial in card_before.values() {
        let h = if Some(serial) == card_before.get(&Hierarchy::Auth) {
            Hierarchy::Auth
        } else {
            Hierarchy::Signing
        };
        assert_eq!(status(&w.a, h, serial).0, State::Good);
    }
    assert_eq!(r.phone.len(), 2);
    assert!(r.phone_challenge.is_none(), "the challenge was used up");
    w.a.check_indexes().unwrap();
    w.a.audit_verify().unwrap();
}

#[test]
fn bad_applications_are_refused_and_change_nothing() {
    let mut w = world();
    let (mut phone_token, auth, signing) = phone(&w, "phone.json");
    let ch = w.a.phone_challenge(&w.id).unwrap().challenge;
    let before = snapshot(&w.a, &w.id);

    // Signed by the phone's own key, not the card's.
    let m = authorisation_message(&hex::decode(&ch).unwrap(), Some(&auth), Some(&signing)).unwrap();
    let forged = phone_token.login(AUTH_PIN, &m).unwrap();
    fn app<'a>(
        auth: &'a [u8],
        signing: &'a [u8],
        ch: &'a str,
        sig: &'a [u8],
    ) -> PhoneApplication<'a> {
        PhoneApplication {
            auth_csr: Some(auth),
            signing_csr: Some(signing),
            challenge: ch,
            authorisation: sig,
        }
    }
    let app = |sig| app(&auth, &signing, &ch, sig);
    let e =
        w.a.phone_issue(&w.id, &app(&forged))
            .unwrap_err()
            .to_string();
    assert!(e.contains("not authorised by the card"), "{e}");
    // The card signed other CSRs: these are not authorised.
    let (_o, other_auth, _) = phone(&w, "other.json");
    let other = authorise(&mut w.card, &ch, Some(&other_auth), Some(&signing));
    let e =
        w.a.phone_issue(&w.id, &app(&other))
            .unwrap_err()
            .to_string();
    assert!(e.contains("not authorised by the card"), "{e}");
    // A challenge the CA never gave.
    let wrong = "00".repeat(32);
    let sig = authorise(&mut w.card, &wrong, Some(&auth), Some(&signing));
    let e =
        w.a.phone_issue(
            &w.id,
            &PhoneApplication {
                challenge: &wrong,
                authorisation: &sig,
                ..app(&sig)
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the open one"), "{e}");
    assert_eq!(snapshot(&w.a, &w.id), before);

    // Lapsed: answered after the challenge's lifetime.
    let good = authorise(&mut w.card, &ch, Some(&auth), Some(&signing));
    w.clock.advance(Duration::minutes(6));
    let e = w.a.phone_issue(&w.id, &app(&good)).unwrap_err().to_string();
    assert!(e.contains("lapsed"), "{e}");
    assert_eq!(snapshot(&w.a, &w.id), before);

    // Stale: a newer challenge replaced it.
    w.clock.advance(Duration::minutes(-6));
    let newer = w.a.phone_challenge(&w.id).unwrap().challenge;
    assert_ne!(newer, ch);
    let before = snapshot(&w.a, &w.id);
    let e = w.a.phone_issue(&w.id, &app(&good)).unwrap_err().to_string();
    assert!(e.contains("not the open one"), "{e}");
    assert_eq!(snapshot(&w.a, &w.id), before);

    // Answered properly, it works once; replayed, it is refused.
    let sig = authorise(&mut w.card, &newer, Some(&auth), Some(&signing));
    let ok = PhoneApplication {
        challenge: &newer,
        ..app(&sig)
    };
    w.a.phone_issue(&w.id, &ok).unwrap();
    let after = snapshot(&w.a, &w.id);
    let e = w.a.phone_issue(&w.id, &ok).unwrap_err().to_string();
    assert!(e.contains("no open phone challenge"), "{e}");
    assert_eq!(snapshot(&w.a, &w.id), after);

    // A key already certified (the card's own key) is refused.
    let card_csr = w.card.csr(Hierarchy::Auth, AUTH_PIN).unwrap();
    let e = apply(&mut w, Some(&card_csr), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already certified"), "{e}");
    w.a.check_indexes().unwrap();
}

#[test]
fn a_new_phone_supersedes_the_old_one_and_a_racing_second_phone_changes_nothing() {
    let mut w = world();
    let (_p1, a1, s1) = phone(&w, "p1.json");
    let first = apply(&mut w, Some(&a1), Some(&s1)).unwrap();
    let (_p2, a2, s2) = phone(&w, "p2.json");
    let second = apply(&mut w, Some(&a2), Some(&s2)).unwrap();
    assert_eq!(second.superseded.len(), 2);
    for c in &first.certificates {
        assert_eq!(
            status(&w.a, c.hierarchy, &c.serial),
            (State::Revoked, Some(Reason::Superseded))
        );
    }
    // The card's certificates are not superseded by phones.
    for (c, s) in w.a.holder_certs(&w.id).unwrap() {
        if !c.kind.is_phone() {
            assert_eq!(s.state, State::Good);
        }
    }

    // Two phones racing on the same challenge: exactly one wins, the other changes nothing.
    let (_p3, a3, s3) = phone(&w, "p3.json");
    let (_p4, a4, s4) = phone(&w, "p4.json");
    let ch = w.a.phone_challenge(&w.id).unwrap().challenge;
    let sig3 = authorise(&mut w.card, &ch, Some(&a3), Some(&s3));
    let sig4 = authorise(&mut w.card, &ch, Some(&a4), Some(&s4));
    let results: Vec<_> = std::thread::scope(|s| {
        let h3 = s.spawn(|| {
            w.a.phone_issue(
                &w.id,
                &PhoneApplication {
                    auth_csr: Some(&a3),
                    signing_csr: Some(&s3),
                    challenge: &ch,
                    authorisation: &sig3,
                },
            )
        });
        let h4 = s.spawn(|| {
            w.a.phone_issue(
                &w.id,
                &PhoneApplication {
                    auth_csr: Some(&a4),
                    signing_csr: Some(&s4),
                    challenge: &ch,
                    authorisation: &sig4,
                },
            )
        });
        vec![h3.join().unwrap(), h4.join().unwrap()]
    });
    let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(wins.len(), 1, "{results:?}");
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(
        loser.to_string().contains("no open phone challenge"),
        "{loser}"
    );
    let good_phone: Vec<_> =
        w.a.holder_certs(&w.id)
            .unwrap()
            .into_iter()
            .filter(|(c, s)| c.kind.is_phone() && s.state == State::Good)
            .map(|(c, _)| ca::authority::serial_hex(&c.serial))
            .collect();
    let mut won: Vec<_> = wins[0]
        .certificates
        .iter()
        .map(|c| c.serial.clone())
        .collect();
    let mut seen = good_phone.clone();
    won.sort();
    seen.sort();
    assert_eq!(seen, won, "only the winner's phone certificates are good");
    w.a.check_indexes().unwrap();
    w.a.audit_verify().unwrap();
}

#[test]
fn phone_lost_holds_found_releases_auth_and_signing_is_reissued_and_card_renewal_ends_them() {
    let mut w = world();
    let (mut p, auth, signing) = phone(&w, "phone.json");
    let got = apply(&mut w, Some(&auth), Some(&signing)).unwrap();
    let serial = |h: Hierarchy| {
        got.certificates
            .iter()
            .find(|c| c.hierarchy == h)
            .unwrap()
            .serial
            .clone()
    };
    let (pa, ps) = (serial(Hierarchy::Auth), serial(Hierarchy::Signing));
    w.a.phone_lost(&w.id).unwrap();
    for (h, s) in [(Hierarchy::Auth, &pa), (Hierarchy::Signing, &ps)] {
        assert_eq!(
            status(&w.a, h, s),
            (State::Held, Some(Reason::CertificateHold))
        );
    }
    // A held phone cannot re-issue its signing certificate before it is found.
    let resign = p.csr(Hierarchy::Signing, SIGN_PIN).unwrap();
    assert!(apply(&mut w, None, Some(&resign)).is_err());
    w.a.phone_found(&w.id).unwrap();
    assert_eq!(
        status(&w.a, Hierarchy::Auth, &pa).0,
        State::Good,
        "auth hold lifted"
    );
    assert_eq!(
        status(&w.a, Hierarchy::Signing, &ps),
        (State::Revoked, Some(Reason::CessationOfOperation))
    );
    // Found twice: nothing left to do, refused.
    assert!(w.a.phone_found(&w.id).is_err());
    // Re-issue the signing certificate for the same phone (a new key).
    let mut p2 = Token::create_kind(
        &w.dir.join("p-new.json"),
        SIGN_PIN,
        AUTH_PIN,
        TokenKind::Phone,
    )
    .unwrap();
    let new_signing = p2.csr(Hierarchy::Signing, SIGN_PIN).unwrap();
    let re = apply(&mut w, None, Some(&new_signing)).unwrap();
    assert_eq!(re.certificates.len(), 1);
    assert_eq!(re.certificates[0].kind, CertKind::PhoneSigning);
    assert_eq!(status(&w.a, Hierarchy::Auth, &pa).0, State::Good);

    // Renewing the card ends the phone certificates.
    let expiry = w.a.resident(&w.id).unwrap().card_expiry;
    w.a.event(
        &w.id,
        &Event::CardRenew {
            card_expiry: expiry,
        },
    )
    .unwrap();
    assert_eq!(
        status(&w.a, Hierarchy::Auth, &pa),
        (State::Revoked, Some(Reason::Superseded))
    );
    assert_eq!(
        status(&w.a, Hierarchy::Signing, &re.certificates[0].serial).0,
        State::Revoked
    );
    // And without a valid card no challenge is given.
    let e = w.a.phone_challenge(&w.id).unwrap_err().to_string();
    assert!(
        e.contains("no valid card authentication certificate"),
        "{e}"
    );
    w.a.check_indexes().unwrap();
    w.a.audit_verify().unwrap();
}

/// The command line: `jpki token new --phone`, `jpki phone challenge|authorise|issue|lost|
/// found`; the certificates pass `openssl verify` and, where installed, the outside judge
/// `judge-cert`.
#[test]
fn the_phone_commands_work_end_to_end() {
    let env = common::Env::init();
    let id = env.add_resident("携帯　花子", "1990-02-03");
    let card = env.path("card.json");
    let ph = env.path("phone.json");
    let s = |p: &std::path::Path| common::p(p);
    env.ok(&[
        "token",
        "new",
        "--out",
        &s(&card),
        "--sign-pin",
        SIGN_PIN,
        "--auth-pin",
        AUTH_PIN,
    ]);
    env.ok(&[
        "token",
        "new",
        "--phone",
        "--out",
        &s(&ph),
        "--sign-pin",
        SIGN_PIN,
        "--auth-pin",
        AUTH_PIN,
    ]);
    assert_eq!(Token::open(&ph).unwrap().kind(), TokenKind::Phone);
    for (kind, pin) in [("signing", SIGN_PIN), ("auth", AUTH_PIN)] {
        let csr = env.path(&format!("card-{kind}.csr"));
        env.ok(&[
            "token",
            "csr",
            "--token",
            &s(&card),
            "--kind",
            kind,
            "--pin",
            pin,
            "--out",
            &s(&csr),
        ]);
        env.issue(&id, kind, &csr);
        let pcsr = env.path(&format!("phone-{kind}.csr"));
        env.ok(&[
            "token",
            "csr",
            "--token",
            &s(&ph),
            "--kind",
            kind,
            "--pin",
            pin,
            "--out",
            &s(&pcsr),
        ]);
    }
    let (pa, ps) = (env.path("phone-auth.csr"), env.path("phone-signing.csr"));
    let ch = env.json(&["phone", "challenge", "--resident", &id])["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let sig = env.path("auth.sig");
    // The phone cannot authorise itself.
    env.ok(&[
        "phone",
        "authorise",
        "--token",
        &s(&ph),
        "--pin",
        AUTH_PIN,
        "--challenge",
        &ch,
        "--auth-csr",
        &s(&pa),
        "--signing-csr",
        &s(&ps),
        "--out",
        &s(&sig),
    ]);
    let issue = [
        "phone",
        "issue",
        "--resident",
        &id,
        "--challenge",
        &ch,
        "--authorisation",
        &s(&sig),
        "--auth-csr",
        &s(&pa),
        "--signing-csr",
        &s(&ps),
        "--out-dir",
        &s(env.dir.path()),
    ];
    env.fails(&issue, "not authorised by the card");
    env.ok(&[
        "phone",
        "authorise",
        "--token",
        &s(&card),
        "--pin",
        AUTH_PIN,
        "--challenge",
        &ch,
        "--auth-csr",
        &s(&pa),
        "--signing-csr",
        &s(&ps),
        "--out",
        &s(&sig),
    ]);
    let v = env.json(&issue);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2);
    env.fails(&issue, "no open phone challenge");
    let judge = std::path::Path::new("/work/shared/judges/judge-cert");
    for (kind, h) in [("phone-auth", "auth"), ("phone-signing", "signing")] {
        let leaf = env.path(&format!("{kind}.pem"));
        let root = env.path(&format!("root-{h}.pem"));
        std::fs::write(&root, env.ok(&["root", "--hierarchy", h])).unwrap();
        let out = common::openssl(&["verify", "-CAfile", &s(&root), &s(&leaf)]);
        assert!(out.contains(": OK"), "{out}");
        // Card certificates: `cert list --kind` tells phone certificates apart.
        let listed = env.ok(&["cert", "list", "--kind", kind, "--json"]);
        assert!(listed.contains(kind), "{listed}");
        if judge.exists() {
            let out = std::process::Command::new(judge)
                .args([s(&leaf), "--issuer".into(), s(&root)])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "judge-cert {kind}: {text}");
            eprintln!(
                "judge-cert {kind}: {}",
                text.lines().last().unwrap_or_default()
            );
        }
    }
    assert!(env
        .ok(&["phone", "lost", "--resident", &id])
        .contains("held"));
    let found = env.ok(&["phone", "found", "--resident", &id]);
    assert!(
        found.contains("good") && found.contains("revoked"),
        "{found}"
    );
    env.fails(
        &["phone", "found", "--resident", &id],
        "no phone certificate",
    );
}

#[test]
fn losing_the_card_holds_the_phone_certificates_and_they_never_come_back() {
    let mut w = world();
    let (_p, auth, signing) = phone(&w, "phone.json");
    let got = apply(&mut w, Some(&auth), Some(&signing)).unwrap();
    w.a.event(&w.id, &Event::CardLost).unwrap();
    for c in &got.certificates {
        assert_eq!(status(&w.a, c.hierarchy, &c.serial).0, State::Held);
    }
    let e = w.a.phone_challenge(&w.id).unwrap_err().to_string();
    assert!(e.contains("reported lost"), "{e}");
    // The card found: held certificates are revoked (the card rule), the phone's too.
    w.a.event(&w.id, &Event::CardFound).unwrap();
    for c in &got.certificates {
        assert_eq!(
            status(&w.a, c.hierarchy, &c.serial),
            (State::Revoked, Some(Reason::CessationOfOperation))
        );
    }
    // Nothing for `phone found` to release.
    assert!(w.a.phone_found(&w.id).is_err());
    w.a.check_indexes().unwrap();
}

/// With `jpki serve` running, the CA's phone commands go through its admin socket (they were
/// refused before): challenge, issue, lost and found, and the server's OCSP says `revoked`
/// for the phone signing certificate the moment `found` returns.
#[test]
fn phone_commands_go_through_the_admin_socket_while_serving() {
    let env = common::Env::init();
    let id = env.add_resident("携帯　一郎", "1988-06-07");
    let s = |p: &std::path::Path| common::p(p);
    let (card, ph) = (env.path("card.json"), env.path("phone.json"));
    for (path, phone) in [(&card, false), (&ph, true)] {
        let mut args = vec!["token", "new", "--out"];
        let out = s(path);
        args.push(&out);
        args.extend(["--sign-pin", SIGN_PIN, "--auth-pin", AUTH_PIN]);
        if phone {
            args.push("--phone");
        }
        env.ok(&args);
    }
    for (kind, pin) in [("signing", SIGN_PIN), ("auth", AUTH_PIN)] {
        let csr = env.path(&format!("card-{kind}.csr"));
        env.ok(&[
            "token",
            "csr",
            "--token",
            &s(&card),
            "--kind",
            kind,
            "--pin",
            pin,
            "--out",
            &s(&csr),
        ]);
        env.issue(&id, kind, &csr);
        let pcsr = env.path(&format!("phone-{kind}.csr"));
        env.ok(&[
            "token",
            "csr",
            "--token",
            &s(&ph),
            "--kind",
            kind,
            "--pin",
            pin,
            "--out",
            &s(&pcsr),
        ]);
    }
    let server = common::Server::start(&env);
    let ch = env.json(&["phone", "challenge", "--resident", &id])["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let (pa, ps, sig) = (
        env.path("phone-auth.csr"),
        env.path("phone-signing.csr"),
        env.path("auth.sig"),
    );
    env.ok(&[
        "phone",
        "authorise",
        "--token",
        &s(&card),
        "--pin",
        AUTH_PIN,
        "--challenge",
        &ch,
        "--auth-csr",
        &s(&pa),
        "--signing-csr",
        &s(&ps),
        "--out",
        &s(&sig),
    ]);
    let issue = [
        "phone",
        "issue",
        "--resident",
        &id,
        "--challenge",
        &ch,
        "--authorisation",
        &s(&sig),
        "--auth-csr",
        &s(&pa),
        "--signing-csr",
        &s(&ps),
        "--out-dir",
        &s(env.dir.path()),
    ];
    let v = env.json(&issue);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2, "{v}");
    // A replay through the socket is refused like a local one.
    env.fails(&issue, "no open phone challenge");
    assert!(env
        .ok(&["phone", "lost", "--resident", &id])
        .contains("held"));
    env.ok(&["phone", "found", "--resident", &id]);
    let root = env.path("root-signing.pem");
    std::fs::write(&root, env.ok(&["root", "--hierarchy", "signing"])).unwrap();
    let (_, out) = common::openssl_result(&[
        "ocsp",
        "-issuer",
        &s(&root),
        "-cert",
        &s(&env.path("phone-signing.pem")),
        "-url",
        &format!("{}/ocsp", server.base),
        "-CAfile",
        &s(&root),
        "-timeout",
        "10",
    ]);
    assert!(out.contains(": revoked"), "{out}");
    let audit = env.json(&["audit", "log"]);
    for action in ["phone-challenge", "issue", "hold", "release"] {
        assert!(
            audit["records"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == action),
            "{action}"
        );
    }
    server.stop();
}
