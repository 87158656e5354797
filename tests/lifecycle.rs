//! Resident-register events revoke by rule (reference §4): death, emigration at the
//! departure date (time moved with JPKI_TEST_NOW), card loss, a found card, card renewal,
//! the holder's own request.

mod common;
use common::*;

fn statuses(env: &Env, id: &str) -> Vec<(String, String, String)> {
    let v = env.json(&["cert", "list", "--resident", id]);
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["hierarchy"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn with_both(env: &Env, name: &str) -> String {
    let id = env.add_resident(name, "1980-02-17");
    let (_a, auth) = env.csr(&format!("{name}-a"), 2048);
    let (_s, sign) = env.csr(&format!("{name}-s"), 2048);
    env.issue(&id, "auth", &auth);
    env.issue(&id, "signing", &sign);
    id
}

#[test]
fn death_revokes_both_and_ends_the_record() {
    let env = Env::init();
    let id = with_both(&env, "死亡　太郎");
    env.ok(&["resident", "death", "--id", &id]);
    for (_, status, reason) in statuses(&env, &id) {
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("revoked", "cessationOfOperation")
        );
    }
    env.fails(
        &["resident", "move", "--id", &id, "--address", "x"],
        "deceased",
    );
}

#[test]
fn card_lost_holds_both_and_a_found_card_revokes_them() {
    let env = Env::init();
    let id = with_both(&env, "紛失　花子");
    env.ok(&["resident", "card-lost", "--id", &id]);
    assert!(statuses(&env, &id)
        .iter()
        .all(|(_, s, r)| s == "held" && r == "certificateHold"));
    let (_k, csr) = env.csr("new", 2048);
    env.fails(
        &[
            "issue",
            "--resident",
            &id,
            "--kind",
            "auth",
            "--csr",
            csr.to_str().unwrap(),
        ],
        "reported lost",
    );
    env.ok(&["resident", "card-found", "--id", &id]);
    assert!(statuses(&env, &id)
        .iter()
        .all(|(_, s, r)| s == "revoked" && r == "cessationOfOperation"));
    env.issue(&id, "auth", &csr);
}

#[test]
fn card_renewal_supersedes_both() {
    let env = Env::init();
    let id = with_both(&env, "更新　次郎");
    env.ok(&[
        "resident",
        "card-renew",
        "--id",
        &id,
        "--card-expiry",
        "2036-02-17",
    ]);
    assert!(statuses(&env, &id)
        .iter()
        .all(|(_, s, r)| s == "revoked" && r == "superseded"));
}

#[test]
fn withdrawal_of_one_kind() {
    let env = Env::init();
    let id = with_both(&env, "撤回　三郎");
    env.ok(&["resident", "withdraw", "--id", &id, "--kind", "signing"]);
    let s = statuses(&env, &id);
    assert!(s.contains(&(
        "signing".into(),
        "revoked".into(),
        "cessationOfOperation".into()
    )));
    assert!(s.contains(&("auth".into(), "good".into(), "-".into())));
}

#[test]
fn emigration_revokes_the_signing_certificate_on_the_departure_date() {
    let mut env = Env::empty();
    env.now = Some("2026-12-01T01:00:00Z".into());
    env.ok(&["init"]);
    let id = with_both(&env, "出国　四郎");
    let out = env.json(&["resident", "emigrate", "--id", &id, "--date", "2026-12-20"]);
    assert_eq!(out["scheduled"], "2026-12-20");
    assert!(
        statuses(&env, &id).iter().all(|(_, s, _)| s == "good"),
        "nothing is revoked before the departure"
    );
    env.now = Some("2026-12-19T14:59:00Z".into()); // 23:59 JST the day before
    let none = env.json(&["events", "apply-due"]);
    assert_eq!(none["applied"], serde_json::json!([]), "nothing is due yet");
    assert!(statuses(&env, &id).iter().all(|(_, s, _)| s == "good"));
    env.now = Some("2026-12-19T15:00:01Z".into()); // 00:00:01 JST on the departure date
                                                   // Opening the store applies nothing: the scheduled emigration waits for `jpki serve`'s
                                                   // timer or `jpki events apply-due` (cron on a server-less install).
    assert!(statuses(&env, &id).iter().all(|(_, s, _)| s == "good"));
    let applied = env.json(&["events", "apply-due"]);
    assert_eq!(applied["applied"][0]["event"], "emigrate", "{applied}");
    let again = env.json(&["events", "apply-due"]);
    assert_eq!(again["applied"], serde_json::json!([]), "applied once only");
    let s = statuses(&env, &id);
    assert!(
        s.contains(&(
            "signing".into(),
            "revoked".into(),
            "affiliationChanged".into()
        )),
        "{s:?}"
    );
    assert!(
        s.contains(&("auth".into(), "good".into(), "-".into())),
        "{s:?}"
    );
    let sign = env.json(&["cert", "list", "--resident", &id]);
    let revoked = sign["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "revoked")
        .unwrap()
        .clone();
    assert_eq!(revoked["revoked_at"], "2026-12-19T15:00:00Z");
    let (_k, csr) = env.csr("after", 2048);
    env.fails(
        &[
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            csr.to_str().unwrap(),
        ],
        "emigrated",
    );
    env.ok(&["audit", "verify"]);
}

#[test]
fn validity_is_capped_by_the_card_and_the_auth_certificate() {
    let mut env = Env::empty();
    env.now = Some("2026-11-27T01:00:00Z".into());
    env.ok(&["init"]);
    let v = env.json(&[
        "resident",
        "add",
        "--name",
        "期限　五郎",
        "--birth",
        "1980-02-17",
        "--sex",
        "1",
        "--address",
        "東京都",
        "--prefecture",
        "Tokyo",
        "--municipality",
        "Chiyoda-ku",
        "--card-expiry",
        "2029-06-30",
    ]);
    let id = v["id"].as_str().unwrap().to_owned();
    let (_a, auth) = env.csr("a", 2048);
    let a = env.issue(&id, "auth", &auth);
    assert_eq!(a["not_after"], "2029-06-30T14:59:59Z");
    assert_eq!(a["bound"], "card-expiry");
    env.ok(&[
        "resident",
        "card-renew",
        "--id",
        &id,
        "--card-expiry",
        "2036-01-01",
    ]);
    let (_a2, auth2) = env.csr("a2", 2048);
    let a2 = env.issue(&id, "auth", &auth2);
    assert_eq!(a2["not_after"], "2031-02-17T14:59:59Z");
    env.now = Some("2026-12-01T01:00:00Z".into());
    let (_s, sign) = env.csr("s", 2048);
    let s = env.issue(&id, "signing", &sign);
    assert_eq!(s["not_after"], "2031-02-17T14:59:59Z");
}

#[test]
fn the_register_is_searched_by_name_and_birth_a_page_at_a_time() {
    let env = Env::init();
    let a = env.add_resident("検索　花子", "1985-04-12");
    let b = env.add_resident("検索　花子", "1990-01-01");
    let c = env.add_resident("別人　太郎", "1985-04-12");
    env.ok(&["resident", "death", "--id", &c]);
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["residents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Spaces do not matter; the birth date narrows it to one.
    let v = env.json(&[
        "resident",
        "search",
        "--name",
        "検索花子",
        "--birth",
        "1985-04-12",
    ]);
    assert_eq!(ids(&v), vec![a.clone()], "{v}");
    assert_eq!(v["next"], serde_json::Value::Null);
    let v = env.json(&["resident", "search", "--state", "deceased"]);
    assert_eq!(ids(&v), vec![c.clone()]);
    // Pages of one, in id order, until there is no next.
    let mut all = vec![a, b, c];
    all.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["resident", "search", "--limit", "1"];
        if let Some(x) = &after {
            args.extend(["--after", x.as_str()]);
        }
        let v = env.json(&args);
        seen.extend(ids(&v));
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, all);
    // Bad input is named.
    env.fails(
        &["resident", "search", "--limit", "0"],
        "limit must be 1 to 1000",
    );
    env.fails(
        &["resident", "search", "--state", "gone"],
        "expected active",
    );
    env.fails(&["resident", "search", "--name", " 　"], "name");
}

/// The continued-use procedure (reference §8): the signing certificate is revoked as of the
/// departure date, the auth certificate and the card stay usable, and a signing certificate for
/// emigrants is issued from the family-register annex — no address, the emigrant marker and
/// the departure date in the address attribute; annex changes revoke it by rule.
#[test]
fn an_emigrant_keeps_the_card_and_gets_a_signing_certificate_from_the_annex() {
    let mut env = Env::empty();
    env.now = Some("2026-12-01T01:00:00Z".into());
    env.ok(&["init"]);
    let id = with_both(&env, "在外　五郎");
    let (_k, csr) = env.csr("abroad", 2048);
    let issue = |env: &Env| {
        env.run(&[
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            csr.to_str().unwrap(),
            "--json",
        ])
    };
    env.json(&[
        "resident",
        "emigrate",
        "--id",
        &id,
        "--date",
        "2026-12-20",
        "--continued-use",
    ]);
    // Before the departure: refused, nothing changes.
    env.fails(
        &[
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            csr.to_str().unwrap(),
        ],
        "leaves Japan on 2026-12-20",
    );
    env.now = Some("2026-12-20T03:00:00Z".into());
    env.json(&["events", "apply-due"]);
    let s = statuses(&env, &id);
    assert!(s.contains(&(
        "signing".into(),
        "revoked".into(),
        "affiliationChanged".into()
    )));
    assert!(s.contains(&("auth".into(), "good".into(), "-".into())));
    let out = issue(&env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let issued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pem = env.write("emigrant.pem", issued["pem"].as_str().unwrap().as_bytes());
    let root = env.path("signing-root.pem");
    std::fs::write(&root, env.ok(&["root", "--hierarchy", "signing"])).unwrap();
    // At 2026-12-21 (the test clock, which may be ahead of the real one).
    let verified = openssl(&[
        "verify",
        "-attime",
        "1797811200",
        "-CAfile",
        &p(&root),
        &p(&pem),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    // The address otherName holds the marker and the departure date, never an address.
    let body: String = issued["pem"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64_decode(&body);
    let marker = "国外転出者（2026年12月20日転出）".as_bytes();
    assert!(
        der.windows(marker.len()).any(|w| w == marker),
        "the emigrant address is in the certificate"
    );
    let home = "東京都".as_bytes();
    assert!(
        !der.windows(home.len()).any(|w| w == home),
        "no domestic address"
    );
    let audit = env.ok(&["audit", "log"]);
    assert!(audit.contains("signing (emigrant)"), "{audit}");
    // An annex change (a corrected name) revokes it by rule, as register changes do.
    env.ok(&["resident", "rename", "--id", &id, "--name", "在外　五朗"]);
    let serial = issued["serial"].as_str().unwrap();
    let shown = env.json(&["cert", "show", "--serial", serial, "--hierarchy", "signing"]);
    assert_eq!(shown["status"], "revoked", "{shown}");
    assert_eq!(shown["reason"], "affiliationChanged", "{shown}");
    // Coming back to Japan makes the holder a resident again with a domestic address.
    env.ok(&[
        "resident",
        "move",
        "--id",
        &id,
        "--address",
        "大阪府大阪市北区",
    ]);
    let r = env.json(&["resident", "show", "--id", &id]);
    assert_eq!(r["state"], "active", "{r}");
    env.ok(&["audit", "verify"]);
}

#[test]
fn without_the_continued_use_procedure_no_emigrant_certificate_is_issued() {
    let mut env = Env::empty();
    env.now = Some("2026-12-01T01:00:00Z".into());
    env.ok(&["init"]);
    let id = with_both(&env, "出国　六郎");
    env.ok(&["resident", "emigrate", "--id", &id]);
    let before = env.json(&["cert", "list", "--resident", &id]);
    let (_k, csr) = env.csr("no-cont", 2048);
    env.fails(
        &[
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            csr.to_str().unwrap(),
        ],
        "without the continued-use procedure",
    );
    assert_eq!(env.json(&["cert", "list", "--resident", &id]), before);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
