//! Private by construction on disk: everything jpki creates in a data directory is 0700/0600
//! whatever the umask, `jpki init` into an existing readable directory makes it private, and
//! every command that opens a data directory others can read makes it private and says so.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Every file and directory below `dir` (sockets and links aside) that group or others can
/// reach, with its mode.
fn loose(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o777;
        if (m.is_dir() || m.is_file()) && mode & 0o077 != 0 {
            out.push((p.display().to_string(), mode));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn everything_jpki_makes_is_private_and_a_readable_directory_is_made_private() {
    let env = Env::empty();
    // An existing, empty, world-readable directory, and a permissive umask for jpki.
    std::fs::create_dir(env.data()).unwrap();
    std::fs::set_permissions(env.data(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let umask = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("umask 022; exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_jpki"))
            .args(args)
            .arg("--data")
            .arg(env.data())
            .env("JPKI_PASSPHRASE", PASS)
            .env_remove("JPKI_TEST_NOW")
            .env_remove("JPKI_TEST_START");
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "jpki {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    umask(&["init"]);
    let id = env.add_resident("秘密　花子", "1990-09-09");
    let (_k, csr) = env.csr("p", 2048);
    env.issue(&id, "signing", &csr);
    let server = Server::start(&env);
    assert!(server.stop().success());
    umask(&["store", "compact"]);
    assert_eq!(
        loose(&env.data()),
        vec![],
        "everything under the data directory is private"
    );

    // A copy or a careless chmod opens it up: the next command makes it private and says so.
    let st = Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(env.data())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!loose(&env.data()).is_empty());
    let out = env.run(&["cert", "list", "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by other users"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "no colour codes into a pipe: {err:?}"
    );
    assert_eq!(loose(&env.data()), vec![]);

    // The same warning as one JSON object per line, for log collectors.
    Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(env.data())
        .status()
        .unwrap();
    let out = env.run(&["--log-format", "json", "cert", "list", "--json"]);
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert!(v["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("readable by other users"));
}
