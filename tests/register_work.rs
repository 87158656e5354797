//! The clerk's register work (issue #20 item 1): duplicate registrations, history with
//! before → after values, bulk registration from CSV (all or none), and the real service's
//! eligibility rules — the signing age, the card's life by age, the renewal window — each
//! refused with a stable code and changing nothing, or overridden with an audited reason.

mod common;
use common::*;

fn add(
    env: &Env,
    name: &str,
    birth: &str,
    card_expiry: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "resident",
        "add",
        "--name",
        name,
        "--birth",
        birth,
        "--sex",
        "1",
        "--address",
        "東京都千代田区霞が関２－１－２",
        "--prefecture",
        "Tokyo",
        "--municipality",
        "Chiyoda-ku",
        "--card-expiry",
        card_expiry,
        "--json",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn register_size(env: &Env) -> usize {
    env.json(&["resident", "search", "--limit", "1000"])["residents"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn the_same_person_twice_is_refused_unless_a_reason_is_given() {
    let env = Env::init();
    let first = env.add_resident("重複　太郎", "1980-02-17");
    let before = env.snapshot(&[&first]);
    // Spaces do not make a different person.
    let out = add(&env, "重複 太郎", "1980-02-17", "2036-01-01", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&first) && err.contains("--allow-duplicate"),
        "{err}"
    );
    assert_eq!(
        env.snapshot(&[&first]),
        before,
        "a refused registration changed the store"
    );

    // A different birth date is a different person.
    assert!(add(&env, "重複　太郎", "1981-02-17", "2036-01-01", &[])
        .status
        .success());

    let out = add(
        &env,
        "重複　太郎",
        "1980-02-17",
        "2036-01-01",
        &["--allow-duplicate", "namesake at the same care home"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = id["id"].as_str().unwrap();
    let show = env.json(&["resident", "show", "--id", id]);
    assert_eq!(
        show["history"][0]["override_reason"],
        "namesake at the same care home"
    );
    let audit = env.ok(&["audit", "log", "--json"]);
    assert!(audit.contains("duplicate allowed: namesake at the same care home"));
    // The reason must say something.
    let out = add(
        &env,
        "重複　太郎",
        "1980-02-17",
        "2036-01-01",
        &["--allow-duplicate", " "],
    );
    assert!(!out.status.success());
}

#[test]
fn a_card_cannot_outlive_its_holders_tenth_birthday_or_a_minors_fifth() {
    let env = Env::init();
    let out = add(&env, "長期　一郎", "1980-02-17", "2099-01-01", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2099-01-01") && err.contains("10th birthday"),
        "{err}"
    );
    // A minor's card runs five birthdays.
    let out = add(&env, "未成年　二郎", "2015-01-01", "2033-01-01", &[]);
    assert!(!out.status.success());
    assert_eq!(register_size(&env), 0, "a refused registration was written");
    let minor = add(&env, "未成年　二郎", "2015-01-01", "2030-12-31", &[]);
    assert!(minor.status.success());
    // Card renewal is held to the same rule.
    let id = env.add_resident("更新　三郎", "1980-02-17");
    let before = env.snapshot(&[&id]);
    env.fails(
        &[
            "resident",
            "card-renew",
            "--id",
            &id,
            "--card-expiry",
            "2099-01-01",
        ],
        "2099-01-01",
    );
    assert_eq!(
        env.snapshot(&[&id]),
        before,
        "a refused card renewal changed the store"
    );
}

#[test]
fn a_signing_certificate_needs_fifteen_years_unless_a_representative_applies() {
    let env = Env::init();
    let out = add(&env, "子供　四郎", "2015-01-01", "2030-12-31", &[]);
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = id["id"].as_str().unwrap().to_owned();
    let (_k, csr) = env.csr("child-s", 2048);
    let before = env.snapshot(&[&id]);
    let err = env.fails(
        &[
            "issue",
            "--resident",
            &id,
            "--kind",
            "signing",
            "--csr",
            &p(&csr),
        ],
        "needs 15",
    );
    assert!(err.contains("11 years old"), "{err}");
    assert_eq!(env.snapshot(&[&id]), before);
    // The authentication certificate has no age limit.
    let (_a, acsr) = env.csr("child-a", 2048);
    env.issue(&id, "auth", &acsr);
    let v = env.json(&[
        "issue",
        "--resident",
        &id,
        "--kind",
        "signing",
        "--csr",
        &p(&csr),
        "--minor-signing",
        "application by legal representative",
    ]);
    assert_eq!(v["hierarchy"], "signing");
    let audit = env.ok(&["audit", "log", "--json"]);
    assert!(audit.contains("signing age overridden: application by legal representative"));
}

#[test]
fn renewal_opens_three_months_before_expiry() {
    let mut env = Env::init();
    let id = env.add_resident("更新　五郎", "1980-02-17");
    let (_a, csr) = env.csr("a", 2048);
    let first = env.issue(&id, "auth", &csr);
    let not_after = first["not_after"].as_str().unwrap().to_owned();
    let (_b, csr2) = env.csr("b", 2048);
    let before = env.snapshot(&[&id]);
    env.fails(
        &[
            "issue",
            "--resident",
            &id,
            "--kind",
            "auth",
            "--csr",
            &p(&csr2),
        ],
        "renewal opens on",
    );
    assert_eq!(
        env.snapshot(&[&id]),
        before,
        "a refused renewal changed the store"
    );
    // Inside the window (two months before notAfter) it is an ordinary renewal.
    let t = time::OffsetDateTime::parse(&not_after, &time::format_description::well_known::Rfc3339)
        .unwrap()
        - time::Duration::days(60);
    env.now = Some(
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    let second = env.issue(&id, "auth", &csr2);
    assert_eq!(second["superseded"], first["serial"]);
    // Outside it again for the new certificate: only with a reason.
    let (_c, csr3) = env.csr("c", 2048);
    let v = env.json(&[
        "issue",
        "--resident",
        &id,
        "--kind",
        "auth",
        "--csr",
        &p(&csr3),
        "--early-renewal",
        "card chip replaced at the counter",
    ]);
    assert_eq!(v["superseded"], second["serial"]);
}

#[test]
fn history_shows_what_changed_and_which_office_acted() {
    let env = Env::init();
    let id = env.add_resident("転居　六郎", "1980-02-17");
    env.ok(&[
        "resident",
        "move",
        "--id",
        &id,
        "--address",
        "大阪府大阪市北区中之島１－３－２０",
        "--prefecture",
        "Osaka",
        "--municipality",
        "Osaka-shi",
    ]);
    let show = env.json(&["resident", "show", "--id", &id]);
    let line = &show["history"][1];
    assert_eq!(line["event"], "move");
    assert_eq!(line["office"], "Osaka-shi");
    let changes = line["changes"].as_array().unwrap();
    let fields: Vec<&str> = changes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["address", "prefecture", "municipality"]);
    assert_eq!(changes[0]["before"], "東京都千代田区霞が関２－１－２");
    assert_eq!(changes[0]["after"], "大阪府大阪市北区中之島１－３－２０");
    assert_eq!(changes[2]["before"], "Chiyoda-ku");
}

const HEADER: &str = "name,birth,sex,address,prefecture,municipality,card_expiry\n";

#[test]
fn bulk_registration_is_all_or_none() {
    let env = Env::init();
    let existing = env.add_resident("既存　七郎", "1970-01-01");
    let good = format!(
        "{HEADER}社員　一号,1985-04-01,1,東京都港区1-1,Tokyo,Minato-ku,2035-01-01\n\
         社員　二号,1986-05-02,2,東京都港区1-2,Tokyo,Minato-ku,2035-01-01\n"
    );
    // A bad date, a duplicate of someone registered and a row repeated in the file: all
    // reported, nothing registered.
    let bad = format!("{good}社員　三号,1987-02-30,1,東京都港区1-3,Tokyo,Minato-ku,2035-01-01\n");
    let f = env.write("bad.csv", bad.as_bytes());
    let before = env.snapshot(&[&existing]);
    let err = env.fails(&["resident", "import", &p(&f)], "nothing was registered");
    assert!(err.contains("1 row(s) refused"), "{err}");
    let dup = format!(
        "{good}既存　七郎,1970-01-01,1,東京都千代田区霞が関２－１－２,Tokyo,Chiyoda-ku,2035-01-01\n\
         社員　一号,1985-04-01,1,東京都港区1-1,Tokyo,Minato-ku,2035-01-01\n"
    );
    let f = env.write("dup.csv", dup.as_bytes());
    let out = env.run(&["resident", "import", &p(&f), "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<u64> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [3, 4], "{report}");
    assert_eq!(report["refused"][0]["code"], "duplicate_resident");
    assert!(report["refused"][1]["error"]
        .as_str()
        .unwrap()
        .contains("same person as row 1"));
    assert_eq!(
        env.snapshot(&[&existing]),
        before,
        "a refused import changed the store"
    );

    let f = env.write("good.csv", good.as_bytes());
    let dry = env.json(&["resident", "import", &p(&f), "--dry-run"]);
    assert_eq!(dry["accepted"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.snapshot(&[&existing]),
        before,
        "a dry run changed the store"
    );
    let done = env.json(&["resident", "import", &p(&f)]);
    let ids = done["accepted"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(register_size(&env), 3);
    // Importing the same file again finds them registered.
    env.fails(&["resident", "import", &p(&f)], "2 row(s) refused");
}

#[test]
fn cert_list_filters_and_pages() {
    let env = Env::init();
    let mut serials = Vec::new();
    for i in 0..3 {
        let id = env.add_resident(&format!("一覧　{i}"), "1980-02-17");
        let (_a, a) = env.csr(&format!("a{i}"), 2048);
        let (_s, s) = env.csr(&format!("s{i}"), 2048);
        serials.push(
            env.issue(&id, "auth", &a)["serial"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        env.issue(&id, "signing", &s);
        if i == 0 {
            env.ok(&["resident", "withdraw", "--id", &id, "--kind", "auth"]);
        }
    }
    let auth = env.json(&["cert", "list", "--kind", "auth"]);
    let got: Vec<&str> = auth["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    assert_eq!(got, serials, "auth certificates in serial order");
    let revoked = env.json(&["cert", "list", "--status", "revoked"]);
    assert_eq!(revoked["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(revoked["certificates"][0]["serial"], serials[0].as_str());
    // Pages of two over the six leaves and the infrastructure certificates: disjoint, complete.
    let all = env.json(&["cert", "list"])["certificates"]
        .as_array()
        .unwrap()
        .len();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["cert", "list", "--limit", "2"];
        if let Some(a) = &after {
            args.extend_from_slice(&["--after", a]);
        }
        let page = env.json(&args);
        for c in page["certificates"].as_array().unwrap() {
            seen.push(format!("{}:{}", c["hierarchy"], c["serial"]));
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (all, all));
    let none = env.json(&["cert", "list", "--expiring-before", "2000-01-01T00:00:00Z"]);
    assert!(none["certificates"].as_array().unwrap().is_empty());
    env.fails(
        &["cert", "list", "--after", "nonsense"],
        "cursor `nonsense`",
    );
    env.fails(
        &["cert", "list", "--status", "lost"],
        "unknown status `lost`",
    );
}
