//! `jpki demo` runs the whole story and its summary says what happened.

mod common;

/// Runs `jpki` with the real clock and returns its standard output; fails the test, showing
/// both outputs, if it does not succeed.
fn jpki_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(args)
        .env_remove("JPKI_TEST_NOW")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_demo_tells_the_whole_story() {
    let keep = tempfile::tempdir().unwrap();
    let text = jpki_ok(&["demo", "--keep", &common::p(keep.path())]);
    let summary = text.split("\nSummary").nth(1).expect("a summary");
    for (what, result) in [
        ("certificates issued from card CSRs", "4"),
        ("tax return verified (OCSP)", "Valid"),
        ("OCSP right after the move", "revoked"),
        ("next CRL lists the revoked certificate", "true"),
        ("new signature with the old certificate", "Invalid"),
        ("lost card: OCSP", "certificateHold"),
        ("PF learns the new address after the move", "横浜市"),
        (
            "signature from abroad (emigrant certificate)",
            "Valid 国外転出者（",
        ),
        ("phone login (smartphone auth certificate)", "Valid"),
        (
            "PF validity check of the phone certificate",
            "good phone-auth smartphone=true",
        ),
        ("filed return as of its time-stamp, after the move", "Valid"),
        (
            "fresh signature with the old certificate, as of its time-stamp",
            "Invalid",
        ),
    ] {
        let line = summary
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no `{what}` in\n{summary}"));
        assert!(line.contains(result), "`{line}` should say {result}");
    }
    assert!(summary.contains("affiliationChanged") && summary.contains("held"));
    let filed = summary
        .lines()
        .find(|l| l.contains("filed return as of its time-stamp"))
        .unwrap_or_default();
    assert!(!filed.contains("Invalid"), "{filed}");
    // The kept cards come with their PINs.
    for pins in [
        "signing TAXRETURN1, auth 4321",
        "signing OSAKA2026, auth 9876",
    ] {
        assert!(text.contains(pins), "the PINs `{pins}` are not printed");
    }
    let phone = summary
        .lines()
        .find(|l| l.contains("phone login"))
        .unwrap_or_default();
    assert!(!phone.contains("Invalid"), "{phone}");
    // The story says the phone's certificate is a smartphone one, issued on the card's word.
    assert!(text.contains("phone-auth certificate"), "{text}");
    assert!(
        text.contains("smartphone authentication certificate"),
        "{text}"
    );
    // The kept data directory is a working CA.
    let data = keep.path().join("data");
    jpki_ok(&["audit", "verify", "--data", &common::p(&data)]);
}

/// `jpki bench issue` runs its rounds, counts every issuance and says what bounds it (the
/// figures themselves go to BENCHMARKS.md, not into a timed test).
#[test]
fn the_issuance_benchmark_runs_its_rounds() {
    let text = jpki_ok(&[
        "bench",
        "issue",
        "--count",
        "30",
        "--threads",
        "3",
        "--residents",
        "4",
        "--rounds",
        "3",
    ]);
    for r in 1..=3 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("round {r}: 10 issued")))
            .unwrap_or_else(|| panic!("no round {r} in\n{text}"));
        // Every issuance went through the committing thread.
        assert!(line.contains("commits: "), "{line}");
    }
    assert!(text.contains("issuance: 30 certificates, 3 concurrent clients"));
    assert!(text.contains("ratio: ") && text.contains("% of the signing ceiling"));
}
