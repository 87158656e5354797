//! The holder token's PIN rules through the `jpki token` commands: 5 tries for the signing
//! password and 3 for the authentication PIN, counted across runs; a locked key refuses even
//! the right PIN until `jpki token reset` with the other PIN; a PIN of the wrong shape costs
//! no try; a damaged token file is refused, never reset.

mod common;
use common::*;

#[test]
fn pins_count_down_lock_and_reset() {
    let env = Env::empty();
    let token = env.path("card.token");
    let t = |args: &[&str]| {
        let mut v = vec!["token"];
        v.extend_from_slice(args);
        env.run(&v)
    };
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(t(&[
        "new",
        "--out",
        &p(&token),
        "--sign-pin",
        "ABC123",
        "--auth-pin",
        "1234"
    ])
    .status
    .success());
    let challenge = env.write("c.bin", b"challenge");
    let sig = env.path("c.sig");
    let login = |pin: &str| {
        t(&[
            "login",
            "--token",
            &p(&token),
            "--pin",
            pin,
            "--challenge",
            &p(&challenge),
            "--out",
            &p(&sig),
        ])
    };

    // Wrong shape: refused without spending a try.
    let o = login("12345");
    assert!(
        !o.status.success() && err(&o).contains("without spending a try"),
        "{}",
        err(&o)
    );
    // Three wrong authentication PINs, each in its own process: 2, 1, then locked.
    let o = login("0000");
    assert!(err(&o).contains("2 tries left"), "{}", err(&o));
    let shown = t(&["show", "--token", &p(&token), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        (&v["auth"]["tries_left"], &v["auth"]["locked"]),
        (&serde_json::json!(2), &serde_json::json!(false)),
        "{v}"
    );
    assert_eq!(v["signing"]["max_tries"], 5, "{v}");
    let o = login("0000");
    assert!(
        err(&o).contains("1 try left") || err(&o).contains("1 tries left"),
        "{}",
        err(&o)
    );
    let o = login("0000");
    assert!(!o.status.success());
    let o = login("1234");
    assert!(
        !o.status.success() && err(&o).to_lowercase().contains("locked"),
        "the right PIN is refused once locked: {}",
        err(&o)
    );

    // The counter: a reset verifies the other PIN and sets a new one.
    let o = t(&[
        "reset",
        "--token",
        &p(&token),
        "--kind",
        "auth",
        "--other-pin",
        "ABC123",
        "--new-pin",
        "4321",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(login("4321").status.success());

    // Five tries for the signing password (asked here by `token csr`, which uses the key).
    let out = env.path("s.csr");
    let sign = |pin: &str| {
        t(&[
            "csr",
            "--token",
            &p(&token),
            "--kind",
            "signing",
            "--pin",
            pin,
            "--out",
            &p(&out),
        ])
    };
    assert!(sign("ABC123").status.success());
    for left in (1..=4).rev() {
        let o = sign("WRONG1");
        assert!(
            err(&o).contains(&format!("{left} tr")),
            "{left}: {}",
            err(&o)
        );
    }
    assert!(!sign("WRONG1").status.success());
    assert!(err(&sign("ABC123")).to_lowercase().contains("locked"));

    // A damaged file is refused and left as it was.
    let bytes = std::fs::read(&token).unwrap();
    let cut = env.write("cut.token", &bytes[..bytes.len() / 2]);
    let o = t(&["show", "--token", &p(&cut)]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&cut).unwrap(), &bytes[..bytes.len() / 2]);
}
