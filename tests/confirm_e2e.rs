//! Destructive commands: `--dry-run` says what would happen and changes nothing; without a
//! terminal (as here: stdin and stderr are pipes) no question is asked and the command runs.

mod common;

use common::{p, Env};

#[test]
fn dry_runs_change_nothing_and_without_a_terminal_nothing_is_asked() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1990-04-01");
    let (_, auth) = env.csr("auth", 2048);
    let (_, signing) = env.csr("signing", 2048);
    let a = env.issue(&id, "auth", &auth);
    let s = env.issue(&id, "signing", &signing);
    let before = env.snapshot(&[&id]);

    // death --dry-run: both certificates would be revoked; nothing is.
    let v = env.json(&["resident", "death", "--id", &id, "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["state"], "deceased");
    let would: Vec<&str> = v["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["serial"].as_str().unwrap())
        .collect();
    assert_eq!(would.len(), 2, "{v}");
    assert!(would.contains(&a["serial"].as_str().unwrap()));
    let text = env.ok(&["resident", "death", "--id", &id, "--dry-run"]);
    assert!(text.contains("would revoke"), "{text}");
    assert!(text.contains("dry run: nothing changed"), "{text}");
    // card-renew --dry-run: both would be superseded.
    let v = env.json(&[
        "resident",
        "card-renew",
        "--id",
        &id,
        "--card-expiry",
        "2035-01-01",
        "--dry-run",
    ]);
    assert_eq!(v["revocations"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["revocations"][0]["reason"], "superseded");
    // revoke --dry-run, single and batch.
    let text = env.ok(&[
        "revoke",
        "--serial",
        s["serial"].as_str().unwrap(),
        "--hierarchy",
        "signing",
        "--reason",
        "keyCompromise",
        "--dry-run",
    ]);
    assert!(text.contains("would revoke signing:"), "{text}");
    let batch = env.write(
        "batch.txt",
        format!(
            "auth:{}\nsigning:{}\n",
            a["serial"].as_str().unwrap(),
            s["serial"].as_str().unwrap()
        )
        .as_bytes(),
    );
    let v = env.json(&[
        "revoke",
        "--batch",
        &p(&batch),
        "--reason",
        "keyCompromise",
        "--dry-run",
    ]);
    assert_eq!(v["count"], 2, "{v}");
    // A dry run of something that cannot be done fails like the real thing.
    env.fails(
        &[
            "revoke",
            "--serial",
            "7FFFFFFF",
            "--reason",
            "keyCompromise",
            "--dry-run",
        ],
        "unknown serial",
    );
    env.fails(
        &["resident", "death", "--id", "R-NOBODY", "--dry-run"],
        "unknown resident",
    );
    assert_eq!(env.snapshot(&[&id]), before, "a dry run changed the store");

    // No terminal: no question; the commands run (and --yes is accepted too).
    let v = env.json(&["revoke", "--batch", &p(&batch), "--reason", "keyCompromise"]);
    assert_eq!(v["count"], 2, "{v}");
    let v = env.json(&["resident", "death", "--id", &id, "--yes"]);
    assert_eq!(v["state"], "deceased");
    assert!(v.get("dry_run").is_none());
}
