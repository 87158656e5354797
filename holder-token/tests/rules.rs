//! The JPKI PIN rules (reference §7) through the public API: try limits, lockout, reset with
//! the other PIN, shape errors that cost nothing, persistence, and damaged files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use holder_token::{Error, Token};
use policies::Hierarchy;

const SIGN: &str = "Tax2026";
const AUTH: &str = "4321";

fn new_token(dir: &Path) -> (PathBuf, Token) {
    let path = dir.join("card.json");
    let token = Token::create(&path, SIGN, AUTH).unwrap();
    (path, token)
}

fn tries(path: &Path, kind: Hierarchy) -> u8 {
    let status = Token::open(path).unwrap().status();
    match kind {
        Hierarchy::Signing => status.signing.tries_left,
        Hierarchy::Auth => status.auth.tries_left,
    }
}

fn wrong(result: Result<impl std::fmt::Debug, Error>) -> u8 {
    match result {
        Err(Error::WrongPin { remaining, .. }) => remaining,
        other => panic!("expected a wrong-PIN error, got {other:?}"),
    }
}

#[test]
fn signing_password_has_five_tries_then_locks() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut t) = new_token(dir.path());
    assert_eq!(t.status().signing.tries_left, 5);
    // four wrong, then the right one restores the counter
    for left in (1..=4).rev() {
        assert_eq!(wrong(t.csr(Hierarchy::Signing, "WRONG1")), left);
    }
    // lower case is upper-cased, as the JPKI tools do
    t.csr(Hierarchy::Signing, "tax2026").unwrap();
    assert_eq!(tries(&path, Hierarchy::Signing), 5);
    for left in (0..=4).rev() {
        assert_eq!(wrong(t.csr(Hierarchy::Signing, "WRONG1")), left);
    }
    let status = Token::open(&path).unwrap().status();
    assert!(status.signing.locked);
    assert!(!status.auth.locked);
    // a locked key refuses the right password, and a wrong one no longer counts
    assert!(matches!(
        t.csr(Hierarchy::Signing, SIGN),
        Err(Error::Locked {
            kind: Hierarchy::Signing
        })
    ));
    assert!(matches!(
        t.csr(Hierarchy::Signing, "WRONG1"),
        Err(Error::Locked { .. })
    ));
    // the auth key is unaffected
    t.login(AUTH, b"challenge").unwrap();
}

#[test]
fn auth_pin_has_three_tries_then_locks() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut t) = new_token(dir.path());
    let msg = t.login("0000", b"c").unwrap_err().to_string();
    assert_eq!(msg, "wrong authentication PIN: 2 tries left");
    assert_eq!(wrong(t.login("0000", b"c")), 1);
    t.login(AUTH, b"c").unwrap();
    assert_eq!(tries(&path, Hierarchy::Auth), 3);
    assert_eq!(wrong(t.login("0000", b"c")), 2);
    assert_eq!(wrong(t.login("0000", b"c")), 1);
    let err = t.login("0000", b"c").unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(matches!(err, Error::WrongPin { remaining: 0, .. }));
    assert!(matches!(
        t.login(AUTH, b"c"),
        Err(Error::Locked {
            kind: Hierarchy::Auth
        })
    ));
    assert!(matches!(
        t.csr(Hierarchy::Auth, AUTH),
        Err(Error::Locked { .. })
    ));
    assert!(Token::open(&path).unwrap().status().auth.locked);
}

#[test]
fn wrong_shape_spends_no_try() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut t) = new_token(dir.path());
    for bad in ["123", "12345", "12a4", "abcd"] {
        assert!(matches!(
            t.login(bad, b"c"),
            Err(Error::PinShape {
                kind: Hierarchy::Auth
            })
        ));
    }
    for bad in ["ABC12", "ABC-1234", "ABCDEFGHIJKLMNOPQ"] {
        assert!(matches!(
            t.csr(Hierarchy::Signing, bad),
            Err(Error::PinShape {
                kind: Hierarchy::Signing
            })
        ));
    }
    assert_eq!(tries(&path, Hierarchy::Auth), 3);
    assert_eq!(tries(&path, Hierarchy::Signing), 5);
    let msg = t.login("12a4", b"c").unwrap_err().to_string();
    assert!(msg.contains("without spending a try"), "{msg}");
    // a reset with a badly shaped new PIN costs the other key nothing either
    assert!(matches!(
        t.reset(Hierarchy::Auth, SIGN, "12345"),
        Err(Error::PinShape {
            kind: Hierarchy::Auth
        })
    ));
    assert_eq!(tries(&path, Hierarchy::Signing), 5);
}

#[test]
fn counters_persist_across_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut t) = new_token(dir.path());
    wrong(t.login("0000", b"c"));
    drop(t);
    let mut t = Token::open(&path).unwrap();
    assert_eq!(t.status().auth.tries_left, 2);
    assert_eq!(wrong(t.login("0000", b"c")), 1);
    // a second handle opened earlier still sees the current counter: every operation re-reads
    let mut stale = Token::open(&path).unwrap();
    let mut other = Token::open(&path).unwrap();
    assert_eq!(wrong(other.login("0000", b"c")), 0);
    assert!(matches!(stale.login(AUTH, b"c"), Err(Error::Locked { .. })));
}

#[test]
fn reset_with_the_other_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut t) = new_token(dir.path());
    for _ in 0..3 {
        let _ = t.login("0000", b"c");
    }
    assert!(matches!(t.login(AUTH, b"c"), Err(Error::Locked { .. })));
    // a wrong other PIN spends a signing try and resets nothing
    assert_eq!(wrong(t.reset(Hierarchy::Auth, "NOTIT1", "1111")), 4);
    assert!(Token::open(&path).unwrap().status().auth.locked);
    // the right signing password sets a new auth PIN and restores both counters
    t.reset(Hierarchy::Auth, SIGN, "1111").unwrap();
    let status = Token::open(&path).unwrap().status();
    assert_eq!(status.auth.tries_left, 3);
    assert_eq!(status.signing.tries_left, 5);
    assert_eq!(wrong(t.login(AUTH, b"c")), 2);
    t.login("1111", b"c").unwrap();
    t.csr(Hierarchy::Signing, SIGN).unwrap();

    // now the other way round, with the NEW auth PIN (the re-wrapped recovery copy)
    for _ in 0..5 {
        let _ = t.csr(Hierarchy::Signing, "WRONG1");
    }
    assert!(matches!(
        t.csr(Hierarchy::Signing, SIGN),
        Err(Error::Locked { .. })
    ));
    t.reset(Hierarchy::Signing, "1111", "newpass99").unwrap();
    t.csr(Hierarchy::Signing, "NEWPASS99").unwrap();
    assert_eq!(wrong(t.csr(Hierarchy::Signing, SIGN)), 4);
    t.login("1111", b"c").unwrap();

    // both locked: nothing can reset (only the municipal counter, i.e. a new token)
    for _ in 0..3 {
        let _ = t.login("0000", b"c");
    }
    for _ in 0..5 {
        let _ = t.csr(Hierarchy::Signing, "WRONG1");
    }
    assert!(matches!(
        t.reset(Hierarchy::Auth, "NEWPASS99", "2222"),
        Err(Error::Locked {
            kind: Hierarchy::Signing
        })
    ));
}

#[test]
fn create_refuses_an_existing_file_and_writes_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_token(dir.path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        Token::create(&path, SIGN, AUTH),
        Err(Error::Io { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(matches!(
        Token::create(&dir.path().join("x.json"), "short", AUTH),
        Err(Error::PinShape { .. })
    ));
    assert!(!dir.path().join("x.json").exists());
    // no temporary file is left behind
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn damaged_files_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_token(dir.path());
    let good = std::fs::read(&path).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("one byte short", good[..good.len() - 3].to_vec()),
        (
            "counter edited",
            text.replacen("\"tries_left\": 3", "\"tries_left\": 2", 1)
                .into_bytes(),
        ),
        (
            "counter out of range",
            text.replacen("\"tries_left\": 3", "\"tries_left\": 9", 1)
                .into_bytes(),
        ),
        ("not json", b"hello".to_vec()),
        (
            "other format",
            text.replacen("jpki-holder-token", "something-else", 1)
                .into_bytes(),
        ),
        (
            "extra field",
            text.replacen("\"version\": 1,", "\"version\": 1, \"x\": 0,", 1)
                .into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        assert_ne!(bytes, good, "{what}: the edit did not apply");
        std::fs::write(&path, &bytes).unwrap();
        let err = Token::open(&path).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err:?}");
        assert!(
            err.to_string().contains("not a usable holder token"),
            "{what}: {err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{what}: file was rewritten"
        );
    }
    // a flipped base64 character inside the sealed private key
    let pos = text.find("\"ciphertext\": \"").unwrap() + 20;
    let mut flipped = good.clone();
    flipped[pos] = if flipped[pos] == b'A' { b'B' } else { b'A' };
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(Token::open(&path), Err(Error::Corrupt { .. })));

    let v2 = text.replacen("\"version\": 1", "\"version\": 2", 1);
    std::fs::write(&path, v2).unwrap();
    let err = Token::open(&path).unwrap_err();
    assert!(matches!(err, Error::Version { found: 2, .. }), "{err:?}");

    // an operation on an already-open token re-reads and refuses too
    std::fs::write(&path, &good).unwrap();
    let mut t = Token::open(&path).unwrap();
    std::fs::write(&path, &good[..100]).unwrap();
    assert!(matches!(t.login(AUTH, b"c"), Err(Error::Corrupt { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), &good[..100]);
}

#[test]
fn concurrent_wrong_pins_each_spend_a_try() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = new_token(dir.path());
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || wrong(Token::open(&path).unwrap().login("0000", b"c")))
        })
        .collect();
    let mut left: Vec<u8> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    left.sort();
    assert_eq!(left, [0, 1, 2]);
    assert!(Token::open(&path).unwrap().status().auth.locked);
}
