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

/// Every subcommand, with its path (`jpki resident add`).
fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands() {
        walk(sub, format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_flag_of_every_subcommand_has_help() {
    let root = <jpki::cli::Cli as clap::CommandFactory>::command();
    let mut all = Vec::new();
    walk(&root, "jpki".into(), &mut all);
    let mut missing = Vec::new();
    for (path, cmd) in &all {
        if cmd.get_about().is_none() && path != "jpki" {
            missing.push(format!("{path}: no description"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") || arg.is_global_set() && path != "jpki" {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if help.trim().is_empty() {
                missing.push(format!("{path} --{id}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} flags without help:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn read_commands_answer_in_json() {
    let root = <jpki::cli::Cli as clap::CommandFactory>::command();
    let mut all = Vec::new();
    walk(&root, "jpki".into(), &mut all);
    let reads = [
        "jpki root",
        "jpki cert show",
        "jpki cert list",
        "jpki resident show",
        "jpki resident search",
        "jpki audit verify",
        "jpki audit log",
        "jpki crl status",
        "jpki token show",
        "jpki ocsp-signer status",
        "jpki report issuance",
        "jpki report revocations",
        "jpki report expiring",
        "jpki report usage",
        "jpki revoke",
        "jpki store backup",
    ];
    for read in reads {
        let (_, cmd) = all
            .iter()
            .find(|(p, _)| p == read)
            .unwrap_or_else(|| panic!("no {read}"));
        assert!(
            cmd.get_arguments().any(|a| a.get_id() == "json"),
            "{read} has no --json"
        );
    }
}

#[test]
fn der_is_offered_where_a_certificate_is_written() {
    let root = <jpki::cli::Cli as clap::CommandFactory>::command();
    let mut all = Vec::new();
    walk(&root, "jpki".into(), &mut all);
    for path in ["jpki issue", "jpki root", "jpki cert show"] {
        let (_, cmd) = all.iter().find(|(p, _)| p == path).unwrap();
        assert!(
            cmd.get_arguments().any(|a| a.get_id() == "der"),
            "{path} has no --der"
        );
    }
}
