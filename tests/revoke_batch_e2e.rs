//! `jpki revoke --batch` with a hierarchy per line: sequential serials (the default) repeat
//! across the two hierarchies, so a line may say `auth:<serial>` or `signing:<serial>`; a bare
//! serial that both hierarchies hold is refused naming its line, and nothing is revoked.

mod common;

use common::Env;

#[test]
fn batch_lines_name_their_hierarchy_and_ambiguous_serials_are_refused() {
    let env = Env::init();
    let id = env.add_resident("一括　三郎", "1975-05-05");
    let (_k1, c1) = env.csr("a", 2048);
    let (_k2, c2) = env.csr("s", 2048);
    let a = env.issue(&id, "auth", &c1);
    let s = env.issue(&id, "signing", &c2);
    let serial = a["serial"].as_str().unwrap().to_owned();
    assert_eq!(
        serial,
        s["serial"].as_str().unwrap(),
        "sequential serials repeat across hierarchies"
    );
    let status = |h: &str| {
        env.json(&["cert", "show", "--hierarchy", h, "--serial", &serial])["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // A bare serial both hierarchies hold: refused, naming the line; nothing revoked.
    let bare = env.write("bare.txt", format!("{serial}\n").as_bytes());
    let out = env.run(&[
        "revoke",
        "--batch",
        bare.to_str().unwrap(),
        "--reason",
        "cessationOfOperation",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("line 1"), "{err}");
    assert!(err.contains("nothing was revoked"), "{err}");
    assert_eq!(
        (status("auth"), status("signing")),
        ("good".into(), "good".into())
    );

    // A line with an unknown hierarchy: refused, naming the line.
    let bad = env.write(
        "bad.txt",
        format!("auth:{serial}\nbogus:{serial}\n").as_bytes(),
    );
    let err = env.fails(
        &[
            "revoke",
            "--batch",
            bad.to_str().unwrap(),
            "--reason",
            "cessationOfOperation",
        ],
        "line 2",
    );
    assert!(err.contains("nothing was revoked"), "{err}");
    assert_eq!(status("auth"), "good");

    // Each line names its hierarchy: both revoked.
    let both = env.write(
        "both.txt",
        format!("auth:{serial}\nsigning:{serial}\n").as_bytes(),
    );
    let out = env.ok(&[
        "revoke",
        "--batch",
        both.to_str().unwrap(),
        "--reason",
        "cessationOfOperation",
    ]);
    assert!(out.contains("2 certificate(s) revoked"), "{out}");
    assert_eq!(
        (status("auth"), status("signing")),
        ("revoked".into(), "revoked".into())
    );
}
