//! `jpki officer …` and the actor of every audit record, end to end through the real binary:
//! `jpki init` makes the first ca-officer, `officer add` issues client certificates from the
//! operator CA (checked by `openssl verify`), bad input is refused with nothing changed, and
//! every audit record — in-process or through a running server's admin socket — names its
//! actor.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{openssl, p, Env, Server};

fn operator_root(env: &Env) -> std::path::PathBuf {
    let pem = env.ok(&["root", "--hierarchy", "operator"]);
    env.write("operator-root.pem", pem.as_bytes())
}

fn verifies_as_client(root: &std::path::Path, cert: &std::path::Path) {
    let out = openssl(&[
        "verify",
        "-CAfile",
        &p(root),
        "-purpose",
        "sslclient",
        &p(cert),
    ]);
    assert!(out.contains(": OK"), "{out}");
}

/// The officer list and the audit log: what a refused command must leave as it was.
fn state(env: &Env) -> String {
    env.ok(&["officer", "list", "--json"]) + &env.ok(&["audit", "log", "--json"])
}

fn actors(env: &Env) -> Vec<String> {
    let log = env.json(&["audit", "log"]);
    log["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["v"], 2, "format 2: {r}");
            r["actor"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn init_makes_the_first_ca_officer_and_officers_are_added_with_client_certificates() {
    let env = Env::init();
    let first = env.data().join("officers").join("ca-officer.pem");
    let key = env.data().join("officers").join("ca-officer.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let root = operator_root(&env);
    verifies_as_client(&root, &first);
    let list = env.json(&["officer", "list"]);
    let officers = list["officers"].as_array().unwrap();
    assert_eq!(officers.len(), 1);
    assert_eq!(officers[0]["role"], "ca-officer");
    assert_eq!(officers[0]["state"], "active");

    // A clerk with a generated key; an auditor with its own key (CSR).
    let clerk = env.path("clerk.pem");
    let clerk_key = env.path("clerk.key");
    let v = env.json(&[
        "officer",
        "add",
        "--name",
        "Clerk Chiyoda",
        "--role",
        "municipal-clerk",
        "--municipality",
        "Chiyoda-ku",
        "--cert-out",
        &p(&clerk),
        "--key-out",
        &p(&clerk_key),
    ]);
    assert!(v.get("key_pem").is_none(), "the key is never printed");
    assert_eq!(v["municipality"], "Chiyoda-ku");
    verifies_as_client(&root, &clerk);
    assert_eq!(
        std::fs::metadata(&clerk_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (auditor_key, auditor_csr) = env.csr("auditor", 2048);
    let auditor = env.path("auditor.pem");
    env.ok(&[
        "officer",
        "add",
        "--name",
        "Auditor",
        "--role",
        "auditor",
        "--csr",
        &p(&auditor_csr),
        "--cert-out",
        &p(&auditor),
    ]);
    verifies_as_client(&root, &auditor);
    // The certificate is for the CSR's key.
    let pubkey = |args: &[&str]| openssl(args);
    assert_eq!(
        pubkey(&["x509", "-in", &p(&auditor), "-noout", "-pubkey"]),
        pubkey(&["pkey", "-in", &p(&auditor_key), "-pubout"])
    );

    // Bad input: refused with one line, nothing changed, no file written.
    let before = state(&env);
    let out = |n: &str| p(&env.path(n));
    for (args, needle) in [
        (
            vec!["--name", "X", "--role", "municipal-clerk"],
            "needs --municipality",
        ),
        (
            vec![
                "--name",
                "Y",
                "--role",
                "auditor",
                "--municipality",
                "Minato-ku",
            ],
            "only for a municipal-clerk",
        ),
        (
            vec!["--name", "Clerk Chiyoda", "--role", "auditor"],
            "already exists",
        ),
        (vec!["--name", "Z", "--role", "root"], "unknown role `root`"),
        (vec!["--name", "", "--role", "auditor"], "officer name"),
    ] {
        let cert = out("refused.pem");
        let key = out("refused.key");
        let mut a = vec!["officer", "add"];
        a.extend(args);
        a.extend(["--cert-out", &cert, "--key-out", &key]);
        env.fails(&a, needle);
        assert!(!env.path("refused.pem").exists() && !env.path("refused.key").exists());
    }
    let garbage = env.write("garbage.csr", b"not a CSR");
    env.fails(
        &[
            "officer",
            "add",
            "--name",
            "W",
            "--role",
            "auditor",
            "--csr",
            &p(&garbage),
            "--cert-out",
            &out("w.pem"),
        ],
        "CSR",
    );
    env.fails(
        &["officer", "suspend", "--name", "Nobody"],
        "unknown officer Nobody",
    );
    assert_eq!(state(&env), before);

    // Every record so far was made at this host's shell.
    let all = actors(&env);
    assert!(!all.is_empty());
    assert!(
        all.iter().all(|a| a.starts_with("root-on-host(uid=")),
        "{all:?}"
    );
    env.ok(&["audit", "verify"]);
}

#[test]
fn a_running_server_records_the_admin_socket_peer_as_root_on_host() {
    let env = Env::init();
    let server = Server::start(&env);
    env.ok(&[
        "officer",
        "add",
        "--name",
        "Auditor",
        "--role",
        "auditor",
        "--cert-out",
        &p(&env.path("a.pem")),
        "--key-out",
        &p(&env.path("a.key")),
    ]);
    env.ok(&["officer", "suspend", "--name", "Auditor"]);
    let r = env.add_resident("山田 花子", "1990-04-01");
    env.ok(&[
        "resident",
        "move",
        "--id",
        &r,
        "--address",
        "東京都千代田区丸の内１－１",
    ]);
    let log = env.json(&["audit", "log"]);
    let records = log["records"].as_array().unwrap();
    let uid = unsafe_uid();
    let tail: Vec<(&str, &str)> = records[records.len() - 4..]
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap()))
        .collect();
    let me = format!("root-on-host(uid={uid})");
    assert_eq!(
        tail,
        [
            ("officer-add", me.as_str()),
            ("officer-suspend", me.as_str()),
            ("resident-add", me.as_str()),
            ("event:move", me.as_str()),
        ]
    );
    assert!(server.stop().success());
    env.ok(&["audit", "verify"]);
}

fn unsafe_uid() -> u32 {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_bad_first_officer_is_refused_before_anything_is_made() {
    let env = Env::empty();
    let garbage = env.write("garbage.csr", b"not a CSR");
    env.fails(&["init", "--first-officer-csr", &p(&garbage)], "CSR");
    assert!(!env.data().exists(), "no data directory was made");
    env.fails(&["init", "--first-officer", "../escape"], "plain name");
    env.fails(&["init", "--first-officer", ""], "officer name");
    assert!(!env.data().exists(), "no data directory was made");
    // With the officer's own key: its certificate, no key file.
    let (key, csr) = env.csr("sato", 2048);
    env.ok(&[
        "init",
        "--first-officer",
        "sato",
        "--first-officer-csr",
        &p(&csr),
    ]);
    let cert = env.data().join("officers").join("sato.pem");
    assert!(!env.data().join("officers").join("sato.key").exists());
    let root = operator_root(&env);
    verifies_as_client(&root, &cert);
    assert_eq!(
        openssl(&["x509", "-in", &p(&cert), "-noout", "-pubkey"]),
        openssl(&["pkey", "-in", &p(&key), "-pubout"])
    );
}
