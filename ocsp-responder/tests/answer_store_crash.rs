//! The answer store after SIGKILL: a child process writes answers (two signers, so two
//! suffixes; thousands, so the slot file splits buckets throughout) and reports each durable
//! point (`set_watermark`, a `flush` with the watermark); it is killed at a random moment;
//! the store reopens, the watermark is at least the last one reported, every answer made
//! durable is there byte for byte, and any later one is either whole or missing — never
//! truncated, never without its signer certificate. Three rounds on one directory, each
//! adding answers after the previous crash.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[path = "support/answers.rs"]
mod answers;

use answers::tlv;
use ocsp_responder::stored::{AnswerStore, Settings, StoredAnswer};
use ocsp_responder::HashAlg;
use policies::Hierarchy;

const CHILD: &str = "JPKI_ANSWER_CRASH_CHILD";

/// An OCSPResponse frame (RFC 6960 §4.2.1) for answer `i`, signed by signer `i % 2`.
fn der(i: u32) -> Vec<u8> {
    let cert = vec![0x40 + (i % 2) as u8; 1000];
    let basic = [
        tlv(0x30, &tlv(0x02, &i.to_be_bytes())),
        tlv(0x30, &[0x06, 0x03, 0x2a, 0x03, 0x04]),
        tlv(0x03, &[(i % 251) as u8; 257]),
        tlv(0xa0, &tlv(0x30, &tlv(0x30, &cert))),
    ]
    .concat();
    let oid = [0x06, 0x09, 0x2b, 6, 1, 5, 5, 7, 0x30, 1, 1];
    let bytes = tlv(
        0xa0,
        &tlv(0x30, &[&oid[..], &tlv(0x04, &tlv(0x30, &basic))].concat()),
    );
    tlv(0x30, &[&[0x0a, 0x01, 0x00][..], &bytes].concat())
}

fn serial(i: u32) -> [u8; 4] {
    (i | 0x1000_0000).to_be_bytes()
}

fn answer(i: u32) -> StoredAnswer {
    answers::good(der(i))
}

/// The child: writes answers `from..` until killed, printing each durable point.
fn child(dir: &str, from: u32) -> ! {
    let s = AnswerStore::open(std::path::Path::new(dir), &Settings::default()).unwrap();
    for i in from.. {
        s.put(Hierarchy::Auth, HashAlg::Sha1, &serial(i), &answer(i))
            .unwrap();
        if i % 50 == 49 {
            s.set_watermark(u64::from(i)).unwrap();
            println!("durable {i}");
        }
    }
    unreachable!("killed first")
}

#[test]
fn answers_made_durable_survive_sigkill_and_none_is_read_truncated() {
    if let Ok(v) = std::env::var(CHILD) {
        let (dir, from) = v.split_once(':').unwrap();
        child(dir, from.parse().unwrap());
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("answers");
    let mut from = 0u32;
    // Kill points vary with the round (no clock: a number of durable points reported).
    for (round, after) in [3usize, 41, 17].into_iter().enumerate() {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([
                "answers_made_durable_survive_sigkill_and_none_is_read_truncated",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, format!("{}:{from}", dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(c.stdout.take().unwrap());
        let mut durable = None;
        let mut seen = 0;
        for line in out.lines() {
            // (The first report shares its line with libtest's "test … ..." header.)
            let line = line.unwrap();
            if let Some(at) = line.find("durable ") {
                durable = Some(line[at + 8..].trim().parse::<u32>().unwrap());
                seen += 1;
                if seen == after {
                    // Not a timed check: only moves the kill into the writes that follow.
                    std::thread::sleep(std::time::Duration::from_micros(700 * round as u64));
                    c.kill().unwrap(); // SIGKILL
                    break;
                }
            }
        }
        c.wait().unwrap();
        let durable = durable.expect("the child reported durable points");

        let s = AnswerStore::open(&dir, &Settings::default()).unwrap();
        let mark = s
            .watermark()
            .unwrap()
            .expect("a watermark was made durable");
        assert!(
            mark >= u64::from(durable),
            "round {round}: watermark {mark} < {durable}"
        );
        // Everything made durable, in this round and the ones before, is whole.
        for i in 0..=durable {
            let got = s
                .get(Hierarchy::Auth, HashAlg::Sha1, &serial(i))
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: durable answer {i} lost"));
            assert_eq!(got.der.as_ref(), der(i).as_slice(), "round {round}: {i}");
        }
        // Written after the last durable point: whole or missing.
        let mut later = 0;
        for i in durable + 1..durable + 5_000 {
            if let Some(got) = s.get(Hierarchy::Auth, HashAlg::Sha1, &serial(i)).unwrap() {
                assert_eq!(got.der.as_ref(), der(i).as_slice(), "round {round}: {i}");
                later += 1;
            }
        }
        println!("round {round}: killed after answer {durable} was durable; {later} later answers kept whole");
        from = durable + 1 + later;
    }
}
