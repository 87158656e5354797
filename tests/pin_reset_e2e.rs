//! A PIN reset at the municipal counter: a holder who locked a PIN gets a new one from the
//! clerk, without the other PIN; the register checks and records it; another municipality's
//! counter key, or a resident of another municipality, is refused and changes nothing.

mod common;

use common::{p, Env};

#[test]
fn a_locked_pin_is_reset_at_the_counter_and_recorded() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1990-04-01"); // Chiyoda-ku
    let chiyoda = env.path("chiyoda.key");
    let minato = env.path("minato.key");
    env.ok(&[
        "token",
        "counter-key",
        "--municipality",
        "Chiyoda-ku",
        "--out",
        &p(&chiyoda),
    ]);
    env.ok(&[
        "token",
        "counter-key",
        "--municipality",
        "Minato-ku",
        "--out",
        &p(&minato),
    ]);
    let card = env.path("card.json");
    let out = env.ok(&[
        "token",
        "new",
        "--out",
        &p(&card),
        "--sign-pin",
        "SIGNPASS1",
        "--auth-pin",
        "1234",
        "--counter",
        &format!("{}.pub", p(&chiyoda)),
    ]);
    assert!(
        out.contains("resettable at the counter of Chiyoda-ku"),
        "{out}"
    );
    let csr = env.path("auth.csr");
    env.ok(&[
        "token",
        "csr",
        "--token",
        &p(&card),
        "--kind",
        "auth",
        "--pin",
        "1234",
        "--out",
        &p(&csr),
    ]);
    let cert = env.path("auth.pem");
    env.ok(&[
        "issue",
        "--resident",
        &id,
        "--kind",
        "auth",
        "--csr",
        &p(&csr),
        "--out",
        &p(&cert),
    ]);
    env.ok(&[
        "token",
        "import-cert",
        "--token",
        &p(&card),
        "--cert",
        &p(&cert),
    ]);

    // Three wrong PINs lock the key; each says so in one error line (no log line besides).
    let challenge = env.write("challenge", b"login challenge");
    let sig = env.path("sig");
    let login = |pin: &str| {
        env.run(&[
            "token",
            "login",
            "--token",
            &p(&card),
            "--pin",
            pin,
            "--challenge",
            &p(&challenge),
            "--out",
            &p(&sig),
        ])
    };
    for _ in 0..3 {
        let out = login("9999");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("wrong"), "{err}");
    }
    assert!(!login("1234").status.success(), "a locked key signed");
    let locked = std::fs::read(&card).unwrap();

    let reset = |key: &std::path::Path, resident: &str| {
        env.run(&[
            "resident",
            "pin-reset",
            "--id",
            resident,
            "--token",
            &p(&card),
            "--kind",
            "auth",
            "--counter-key",
            &p(key),
            "--new-pin",
            "4321",
        ])
    };
    // Another municipality's counter key: refused, the token unchanged.
    let out = reset(&minato, &id);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Chiyoda-ku") && err.contains("Minato-ku"),
        "{err}"
    );
    // A resident of another municipality (with the right key for the token): refused.
    let other = env.json(&[
        "resident",
        "add",
        "--name",
        "鈴木　次郎",
        "--birth",
        "1970-05-05",
        "--sex",
        "1",
        "--address",
        "東京都港区芝公園１",
        "--prefecture",
        "Tokyo",
        "--municipality",
        "Minato-ku",
        "--card-expiry",
        "2030-01-01",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let audit_before = env.ok(&["audit", "log", "--json"]);
    let out = reset(&chiyoda, &other);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("registered in Minato-ku"), "{err}");
    assert_eq!(std::fs::read(&card).unwrap(), locked);
    assert_eq!(env.ok(&["audit", "log", "--json"]), audit_before);

    // The right counter, the right resident: reset without the signing password.
    let out = reset(&chiyoda, &id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(login("4321").status.success());
    let audit = env.json(&["audit", "log"]);
    let last = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|r| r["action"] == "pin-reset")
        .unwrap()
        .clone();
    assert_eq!(last["subject"], id.as_str());
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .starts_with("auth PIN reset at the counter of Chiyoda-ku (token certificate auth:"),
        "{last}"
    );
    assert!(last["actor"].as_str().unwrap().starts_with("root-on-host"));
    assert!(
        !last.to_string().contains("4321"),
        "a PIN in the audit trail"
    );
}
