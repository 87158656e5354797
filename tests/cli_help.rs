//! The CLI explains itself (issue #20 item 5): completion scripts for the usual shells, and an
//! unknown shell refused with clap's list of the possible values.

use std::process::Command;

fn jpki(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(args)
        .env_remove("JPKI_DATA")
        .output()
        .unwrap()
}

#[test]
fn completions_cover_the_subcommands_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef jpki"),
        ("fish", "complete -c jpki"),
    ] {
        let out = jpki(&["completions", shell]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell} script lacks `{marker}`");
        for sub in ["resident", "issue", "revoke", "serve", "import"] {
            assert!(script.contains(sub), "{shell} script lacks `{sub}`");
        }
    }
    let out = jpki(&["completions", "tcsh"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tcsh") && err.contains("possible values `bash`"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn clap_suggestions_are_kept_on_the_one_error_line() {
    let out = jpki(&["resident", "serach"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did you mean") && err.contains("`search`"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let out = jpki(&["issue", "--resident", "R1", "--kind", "auht", "--csr", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auht"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
