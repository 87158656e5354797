//! Signed audit checkpoints end to end: `jpki audit checkpoint`, `audit verify --checkpoints`,
//! `audit checkpoints --export` checked offline with openssl exactly as docs/officers.md
//! says, and the checkpoint `jpki serve` signs when it stops. (A consistent rewrite of
//! history being caught: `ca::checkpoint` unit tests, which rewrite a store's chain with
//! recomputed hashes.)

mod common;

use common::{openssl_result, p, Env, Server};

fn head(env: &Env) -> (u64, String) {
    let log = env.json(&["audit", "log"]);
    let last = log["records"].as_array().unwrap().last().unwrap().clone();
    (
        last["seq"].as_u64().unwrap(),
        last["hash"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn checkpoints_are_signed_verified_and_checkable_with_openssl() {
    let env = Env::init();
    env.add_resident("山田 花子", "1990-04-01");
    // None yet: verify says nothing is proven beyond the chain.
    let out = env.ok(&["audit", "verify", "--checkpoints"]);
    assert!(out.contains("none yet"), "{out}");

    let v = env.json(&["audit", "checkpoint"]);
    let cp = &v["checkpoint"];
    let (seq, hash) = head(&env);
    assert_eq!(cp["seq"].as_u64(), Some(seq));
    assert_eq!(cp["hash"].as_str(), Some(hash.as_str()));
    // `jpki init` made the key and its certificate, and recorded it.
    let log = env.json(&["audit", "log"]);
    assert!(log["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "checkpoint-key-create"));
    // Nothing new: no second checkpoint of the same head.
    assert!(env.json(&["audit", "checkpoint"])["checkpoint"].is_null());
    env.add_resident("鈴木 一郎", "1985-01-02");
    env.json(&["audit", "checkpoint"]);
    let verified = env.json(&["audit", "verify", "--checkpoints"]);
    assert_eq!(verified["checkpoints"], 2);
    assert_eq!(verified["proven_to"].as_u64(), Some(head(&env).0));
    let key = env.data().join("keys").join("audit-checkpoint.key");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        text.contains("ENCRYPTED"),
        "the checkpoint key is encrypted at rest"
    );

    // Export, then check the last checkpoint as a third party would: openssl only.
    let file = env.path("checkpoints.json");
    env.ok(&["audit", "checkpoints", "--export", &p(&file)]);
    env.fails(
        &["audit", "checkpoints", "--export", &p(&file)],
        "checkpoints.json",
    );
    let x: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(x["format"], "jpki-audit-checkpoints-v1");
    let last = x["checkpoints"].as_array().unwrap().last().unwrap();
    let root = env.write(
        "x-root.pem",
        x["operator_root_pem"].as_str().unwrap().as_bytes(),
    );
    let cert = env.write("x-cp.pem", last["cert_pem"].as_str().unwrap().as_bytes());
    let statement = env.write(
        "x-statement.txt",
        last["statement"].as_str().unwrap().as_bytes(),
    );
    let sig = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        last["signature"].as_str().unwrap(),
    )
    .unwrap();
    let sig = env.write("x-statement.sig", &sig);
    let (ok, out) = openssl_result(&["verify", "-CAfile", &p(&root), &p(&cert)]);
    assert!(ok && out.contains(": OK"), "{out}");
    let pubkey = env.path("x-cp.pub");
    common::openssl(&[
        "x509",
        "-in",
        &p(&cert),
        "-pubkey",
        "-noout",
        "-out",
        &p(&pubkey),
    ]);
    let (ok, out) = openssl_result(&[
        "dgst",
        "-sha256",
        "-verify",
        &p(&pubkey),
        "-signature",
        &p(&sig),
        &p(&statement),
    ]);
    assert!(ok && out.contains("Verified OK"), "{out}");
    assert!(
        last["statement"]
            .as_str()
            .unwrap()
            .contains(&format!("hash={}", last["hash"].as_str().unwrap())),
        "the statement names the hash"
    );
    // A statement changed by one character does not verify.
    let changed = last["statement"].as_str().unwrap().replace("seq=", "seq=1");
    let changed = env.write("x-changed.txt", changed.as_bytes());
    let (ok, _) = openssl_result(&[
        "dgst",
        "-sha256",
        "-verify",
        &p(&pubkey),
        "-signature",
        &p(&sig),
        &p(&changed),
    ]);
    assert!(!ok, "a changed statement verified");
}

#[test]
fn the_server_signs_a_checkpoint_when_it_stops() {
    let env = Env::init();
    let server = Server::start(&env);
    env.add_resident("山田 花子", "1990-04-01");
    assert!(server.stop().success());
    let (seq, hash) = head(&env);
    let list = env.json(&["audit", "checkpoints"]);
    let last = list["checkpoints"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["seq"].as_u64(), Some(seq));
    assert_eq!(last["hash"].as_str(), Some(hash.as_str()));
    env.ok(&["audit", "verify", "--checkpoints"]);
}
