//! Crash safety: a child `jpki revoke --batch` revokes certificates and prints each
//! acknowledgement once it is durable; it is killed with SIGKILL at a random moment. The
//! store is then reopened: every acknowledged revocation must be there, every certificate
//! must have its index entries, and the audit chain must be intact. Repeated many times.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca::clock::SystemClock;
use ca::Authority;
use policies::{Hierarchy, Sex};

#[test]
fn acknowledged_revocations_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let mut serials = Vec::new();
    {
        // Random serials: the batch names serials without their hierarchy, and sequential
        // counters (the default) repeat the same serials in both hierarchies.
        let policy = common::random_serials_policy();
        let a = Authority::init(
            &base,
            &policy,
            common::PASS.as_bytes(),
            Arc::new(SystemClock),
        )
        .unwrap();
        for i in 0..12 {
            let id = a
                .resident_add(&ca::authority::NewResident {
                    name: format!("試験　{i}"),
                    birth: time::macros::date!(1980 - 01 - 01),
                    sex: Sex::Female,
                    address: "東京都".into(),
                    prefecture: "Tokyo".into(),
                    municipality: "Chiyoda-ku".into(),
                    card_expiry: time::macros::date!(2036 - 01 - 01),
                })
                .unwrap();
            for h in Hierarchy::ALL {
                serials.push(a.issue(&id, h, &common::rsa_csr()).unwrap().serial);
            }
        }
    }
    let list = tmp.path().join("serials.txt");
    std::fs::write(&list, serials.join("\n")).unwrap();

    let mut rng = common::Rng::seeded();
    // Time one uninterrupted batch, so that kills land across its whole run.
    let full = {
        let dir = tmp.path().join("timing");
        common::copy_dir(&base, &dir);
        let t0 = Instant::now();
        let st = Command::new(env!("CARGO_BIN_EXE_jpki"))
            .args(["revoke", "--reason", "keyCompromise", "--batch"])
            .arg(&list)
            .arg("--data")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        t0.elapsed().as_millis() as u64 + 1
    };
    println!("an uninterrupted batch takes {full} ms");
    let started = Instant::now();
    let (mut rounds, mut partial) = (0, 0);
    // At least 10 rounds and one kill in the middle of the batch, however slow the machine
    // (the test counts rounds, not speed); more while the test is younger than 30 s.
    while rounds < 150
        && (rounds < 10 || partial == 0 || started.elapsed() < Duration::from_secs(30))
    {
        rounds += 1;
        let dir = tmp.path().join(format!("round{rounds}"));
        common::copy_dir(&base, &dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_jpki"))
            .args(["revoke", "--reason", "keyCompromise", "--batch"])
            .arg(&list)
            .arg("--data")
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next() % full));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let acked: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("revoked "))
            .collect();
        if !acked.is_empty() && acked.len() < serials.len() {
            partial += 1;
        }

        common::check_store(&dir, &acked, serials.len() + 4)
            .unwrap_or_else(|e| panic!("round {rounds}: {e}"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!("{rounds} rounds, {partial} killed mid-batch");
    assert!(rounds >= 10);
    assert!(
        partial >= 1,
        "no round was killed in the middle of the batch"
    );
}
