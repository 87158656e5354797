//! Bad input gets a one-line error naming the problem, a non-zero exit, and changes nothing:
//! each case compares the store (certificates, audit log, residents) before and after.

mod common;
use common::*;

#[test]
fn bad_csrs_are_refused_and_change_nothing() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k, good) = env.csr("good", 2048);
    let (_k2, small) = env.csr("small", 1024);
    let good_der = {
        let out = std::process::Command::new("openssl")
            .args(["req", "-in", good.to_str().unwrap(), "-outform", "DER"])
            .output()
            .unwrap();
        out.stdout
    };
    let garbage = env.write("garbage.csr", b"this is not a certificate request");
    let truncated = env.write("truncated.csr", &good_der[..good_der.len() / 2]);
    let mut tampered = good_der.clone();
    let n = tampered.len();
    tampered[n - 20] ^= 0x55;
    let tampered = env.write("tampered.csr", &tampered);
    let empty = env.write("empty.csr", b"");
    let before = env.snapshot(&[&id]);
    let issue = |csr: &std::path::Path| {
        vec![
            "issue".to_string(),
            "--resident".into(),
            id.clone(),
            "--kind".into(),
            "signing".into(),
            "--csr".into(),
            csr.to_str().unwrap().to_owned(),
        ]
    };
    for (csr, needle) in [
        (&garbage, "CSR"),
        (&truncated, "truncated"),
        (&tampered, "proof of possession"),
        (&small, "RSA-1024"),
        (&empty, "empty"),
    ] {
        let args = issue(csr);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.fails(&args, needle);
    }
    env.fails(
        &[
            "issue",
            "--resident",
            "R0000000000000000",
            "--kind",
            "auth",
            "--csr",
            good.to_str().unwrap(),
        ],
        "unknown resident",
    );
    env.fails(
        &[
            "issue",
            "--resident",
            &id,
            "--kind",
            "auth",
            "--csr",
            "/nonexistent.csr",
        ],
        "read CSR",
    );
    assert_eq!(before, env.snapshot(&[&id]));
}

#[test]
fn bad_register_input_is_refused_and_changes_nothing() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let before = env.snapshot(&[&id]);
    let add = |birth: &str, address: &str, sex: &str| {
        vec![
            "resident".to_string(),
            "add".into(),
            "--name".into(),
            "試験　花子".into(),
            "--birth".into(),
            birth.into(),
            "--sex".into(),
            sex.into(),
            "--address".into(),
            address.into(),
            "--prefecture".into(),
            "Tokyo".into(),
            "--municipality".into(),
            "Chiyoda-ku".into(),
            "--card-expiry".into(),
            "2036-01-01".into(),
        ]
    };
    let long = "あ".repeat(201);
    for (args, needle) in [
        (add("1985-02-30", "東京都", "2"), "not a valid date"),
        (add("2999-01-01", "東京都", "2"), "future"),
        (add("1985-01-01", &long, "2"), "address"),
        (add("1985-01-01", "東京都", "7"), "sex must be"),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.fails(&a, needle);
    }
    env.fails(
        &[
            "resident",
            "move",
            "--id",
            "R0000000000000000",
            "--address",
            "x",
        ],
        "unknown resident",
    );
    env.fails(
        &["resident", "move", "--id", &id, "--address", &long],
        "address",
    );
    env.fails(&["resident", "correct", "--id", &id], "at least one");
    assert_eq!(before, env.snapshot(&[&id]));
}

#[test]
fn revocation_errors_change_nothing() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k, csr) = env.csr("a", 2048);
    let c = env.issue(&id, "auth", &csr);
    let serial = c["serial"].as_str().unwrap();
    env.ok(&["revoke", "--serial", serial, "--reason", "keyCompromise"]);
    let before = env.snapshot(&[&id]);
    env.fails(
        &["revoke", "--serial", serial, "--reason", "keyCompromise"],
        "already revoked",
    );
    env.fails(&["hold", "--serial", serial], "already revoked");
    env.fails(
        &[
            "revoke",
            "--serial",
            "0BADBAD0",
            "--reason",
            "keyCompromise",
        ],
        "unknown serial",
    );
    env.fails(
        &["revoke", "--serial", "xyz", "--reason", "keyCompromise"],
        "not hexadecimal",
    );
    let out = env.run(&["revoke", "--serial", serial, "--reason", "lost"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown revocation reason"));
    let out = env.run(&["root", "--hierarchy", "bogus"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown hierarchy `bogus` (expected signing, auth or operator)"));
    assert_eq!(before, env.snapshot(&[&id]));
}

#[test]
fn a_held_card_certificate_is_never_released() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k, csr) = env.csr("a", 2048);
    let c = env.issue(&id, "auth", &csr);
    let serial = c["serial"].as_str().unwrap();
    let held = env.json(&["hold", "--serial", serial]);
    assert_eq!(held["status"], "held");
    env.fails(&["hold", "--serial", serial], "already on hold");
    env.fails(
        &["revoke", "--serial", serial, "--reason", "removeFromCRL"],
        "never released",
    );
    let r = env.json(&["revoke", "--serial", serial, "--reason", "keyCompromise"]);
    assert_eq!(r["status"], "revoked");
}

#[test]
fn a_wrong_passphrase_and_a_bad_policy_are_refused() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k, csr) = env.csr("a", 2048);
    let before = env.snapshot(&[&id]);
    let out = env
        .cmd(&[
            "issue",
            "--resident",
            &id,
            "--kind",
            "auth",
            "--csr",
            csr.to_str().unwrap(),
        ])
        .env("JPKI_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong key passphrase"), "{err}");
    assert_eq!(before, env.snapshot(&[&id]));

    // init refuses an existing data directory, and a policy with a wrong value names the field.
    env.fails(&["init"], "already exists");
    let fresh = Env::empty();
    let bad = fresh.write(
        "bad.toml",
        policies::policy::DEFAULT_POLICY
            .replace("partitions = 64", "partitions = 0")
            .as_bytes(),
    );
    fresh.fails(
        &["init", "--policy", bad.to_str().unwrap()],
        "crl.partitions",
    );
    assert!(
        !fresh.data().exists(),
        "a refused init leaves no data directory"
    );
    let out = fresh
        .cmd(&["init"])
        .env_remove("JPKI_PASSPHRASE")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key passphrase"));
    fresh.fails(&["cert", "list"], "does not exist");
}

#[test]
fn a_revocation_batch_is_checked_whole_before_anything_is_revoked() {
    // Random serials: a batch names serials without their hierarchy, and sequential ones
    // (the default) repeat across hierarchies.
    let env = Env::empty();
    let pf = env.write("policy.toml", random_serials_policy().as_bytes());
    env.ok(&["init", "--policy", pf.to_str().unwrap()]);
    let id = env.add_resident("一括　次郎", "1966-06-06");
    let (_k1, c1) = env.csr("b1", 2048);
    let (_k2, c2) = env.csr("b2", 2048);
    let a = env.issue(&id, "auth", &c1)["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = env.issue(&id, "signing", &c2)["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = env.snapshot(&[&id]);

    // A good line, a garbage line, an unknown serial and a repeated one: every problem is
    // named with its line number, and nothing is revoked.
    let bad = env.write(
        "bad.txt",
        format!("{a}\nnot-a-serial\n\n7FFFFFFF0A\n{a}\n").as_bytes(),
    );
    let err = env.fails(
        &["revoke", "--reason", "keyCompromise", "--batch", &p(&bad)],
        "nothing was revoked",
    );
    for want in [
        "3 of 4 lines",
        "line 2: serial `not-a-serial` is not hexadecimal",
        "line 4: unknown serial 7FFFFFFF0A",
        "line 5: serial",
        "already on line 1",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert_eq!(
        env.snapshot(&[&id]),
        before,
        "a refused batch changes nothing"
    );

    // A dry run says what would be done and changes nothing.
    let good = env.write("good.txt", format!("{a}\n{s}\n").as_bytes());
    let dry = env.ok(&[
        "revoke",
        "--reason",
        "keyCompromise",
        "--batch",
        &p(&good),
        "--dry-run",
    ]);
    assert!(
        dry.contains(&format!("line 1: would revoke auth:{a}")),
        "{dry}"
    );
    assert!(dry.contains("nothing changed"), "{dry}");
    assert_eq!(env.snapshot(&[&id]), before);

    // The real run acknowledges each line as it becomes durable, then sums up.
    let out = env.ok(&["revoke", "--reason", "keyCompromise", "--batch", &p(&good)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("revoked auth:{a}").as_str(),
            format!("revoked signing:{s}").as_str(),
            "2 certificate(s) revoked or held",
        ]
    );
    // Run again: both are already revoked, and the batch is refused whole.
    env.fails(
        &["revoke", "--reason", "keyCompromise", "--batch", &p(&good)],
        "already revoked",
    );
}
