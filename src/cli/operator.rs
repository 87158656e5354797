//! The platform's commands (`jpki operator …`, `jpki sp …`, `jpki resident access-log`): how
//! each becomes a [`platform::Request`], and how an answer is shown. Files (`--csr`,
//! `--cert`, `--cert-out`, `--key-out`) are read and written here, on the client side; the
//! server only sees and returns their contents. Errors are the platform's own ([`platform::Error`]), so
//! the messages are those of the API.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::Value;

use platform::registry::parse_scopes;
use platform::usage::Tariff;
use platform::{Error, Request, Result};

/// `jpki operator …`
#[derive(Debug, Clone, Subcommand)]
pub enum OperatorCommand {
    /// Register a platform operator and issue its TLS client certificate from the operator CA.
    Add {
        /// The platform operator's name as registered, e.g. pf-tokyo.
        #[arg(long)]
        name: String,
        /// Comma-separated: validity, four-attributes, successor.
        #[arg(long, default_value = "validity")]
        scopes: String,
        /// A PKCS#10 request with the operator's own key; without it a key is generated and
        /// written to --key-out (unencrypted PKCS#8, mode 0600, for curl and TLS clients).
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Write the client certificate (PEM) here, e.g. pf.pem.
        #[arg(long)]
        cert_out: PathBuf,
        /// Write the generated private key (PEM, 0600) here, e.g. pf.key.
        #[arg(long)]
        key_out: Option<PathBuf>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Register a certificate the operator brings, by its key.
    RegisterCert {
        /// The platform operator's name as registered, e.g. pf-tokyo.
        #[arg(long)]
        name: String,
        /// A certificate (PEM) of the operator's own key, issued elsewhere.
        #[arg(long)]
        cert: PathBuf,
        /// Comma-separated scopes, e.g. validity,four-attributes.
        #[arg(long, default_value = "validity")]
        scopes: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List platform operators.
    List {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Suspend a platform operator (its API calls get 403 until reactivated).
    Suspend {
        /// The platform operator's name as registered, e.g. pf-tokyo.
        #[arg(long)]
        name: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reactivate a suspended platform operator.
    Reactivate {
        /// The platform operator's name as registered, e.g. pf-tokyo.
        #[arg(long)]
        name: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a platform operator's accreditation (final).
    Revoke {
        /// The platform operator's name as registered, e.g. pf-tokyo.
        #[arg(long)]
        name: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Issue a registered operator a new client certificate before the old one expires (the
    /// old one keeps working until its own notAfter).
    Renew {
        /// The platform operator's name as registered, e.g. pf-tokyo.
        #[arg(long)]
        name: String,
        /// A PKCS#10 request with the operator's (new or same) key; without it a key is
        /// generated and written to --key-out (unencrypted PKCS#8, mode 0600).
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Write the client certificate (PEM) here, e.g. pf.pem.
        #[arg(long)]
        cert_out: PathBuf,
        /// Write the generated private key (PEM, 0600) here, e.g. pf.key.
        #[arg(long)]
        key_out: Option<PathBuf>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `jpki sp …`
#[derive(Debug, Clone, Subcommand)]
pub enum SpCommand {
    /// Register a service provider under one platform operator.
    Add {
        /// The platform operator's name.
        #[arg(long)]
        pf: String,
        /// The service provider's name, e.g. bank-a (unique within its platform operator).
        #[arg(long)]
        name: String,
        /// Comma-separated: validity, four-attributes, successor.
        #[arg(long)]
        scopes: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List service providers.
    List {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Suspend a service provider: its API calls are refused (403 sp_suspended) until resumed.
    Suspend {
        #[command(flatten)]
        target: SpTarget,
    },
    /// Resume a suspended service provider.
    Resume {
        #[command(flatten)]
        target: SpTarget,
    },
    /// Remove a service provider for good (403 sp_removed); its consents and access log are kept.
    Remove {
        #[command(flatten)]
        target: SpTarget,
    },
    /// Replace a service provider's scopes (each must be among its platform operator's).
    Rescope {
        #[command(flatten)]
        target: SpTarget,
        /// Comma-separated, the new full set: validity, four-attributes, successor.
        #[arg(long)]
        scopes: String,
    },
}

/// Which SP a state change is for, and who makes it.
#[derive(Debug, Clone, Args)]
pub struct SpTarget {
    /// The service provider's id (SP…, as `jpki sp list` shows it).
    #[arg(long)]
    pub id: String,
    /// Who makes the change, named in the audit record (default: $JPKI_ACTOR, else $USER).
    #[arg(long, env = "JPKI_ACTOR")]
    pub actor: Option<String>,
    /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `jpki report …`
#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Platform API usage of a month: checks per platform operator, service provider,
    /// endpoint and certificate type, priced under the tariff.
    Usage {
        /// The month, YYYY-MM (UTC), e.g. 2026-11.
        #[arg(long)]
        month: String,
        /// A TOML tariff (`signing_yen = 20`, `auth_yen = 2`, `zero_rated = true`: the
        /// default, the real service's prices, charged at 0 today).
        #[arg(long)]
        tariff: Option<PathBuf>,
        /// One JSON object: the month, the tariff and the lines.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV with a header line.
        #[arg(long)]
        csv: bool,
    },
}

/// `jpki resident access-log --id ID`
#[derive(Debug, Clone, Args)]
pub struct AccessLogArgs {
    /// The resident's id as registered, e.g. R0C60BA7AFACCE4BC (`jpki resident search` finds it).
    #[arg(long)]
    pub id: String,
    /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `Error::Io` with `context`.
fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(io(format!("read {}", path.display())))
}

/// Builds the request for an operator command (reads `--csr` / `--cert`).
pub fn operator_request(cmd: &OperatorCommand) -> Result<Request> {
    Ok(match cmd {
        OperatorCommand::Add {
            name,
            scopes,
            csr,
            key_out,
            ..
        } => {
            if csr.is_none() && key_out.is_none() {
                return Err(Error::BadRequest(
                    "without --csr a key is generated: give --key-out FILE".into(),
                ));
            }
            if let Some(k) = key_out {
                if k.exists() {
                    return Err(Error::BadRequest(format!("{} already exists", k.display())));
                }
            }
            Request::OperatorAdd {
                name: name.clone(),
                scopes: parse_scopes(scopes)?,
                csr_base64: csr
                    .as_deref()
                    .map(read)
                    .transpose()?
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            }
        }
        OperatorCommand::RegisterCert {
            name, cert, scopes, ..
        } => Request::OperatorRegisterCert {
            name: name.clone(),
            cert_pem: String::from_utf8(read(cert)?)
                .map_err(|_| Error::BadCertificate("--cert: not a PEM text file".into()))?,
            scopes: parse_scopes(scopes)?,
        },
        OperatorCommand::List { .. } => Request::OperatorList,
        OperatorCommand::Suspend { name, .. } => Request::OperatorSuspend { name: name.clone() },
        OperatorCommand::Reactivate { name, .. } => {
            Request::OperatorReactivate { name: name.clone() }
        }
        OperatorCommand::Revoke { name, .. } => Request::OperatorRevoke { name: name.clone() },
        OperatorCommand::Renew {
            name,
            csr,
            cert_out,
            key_out,
            ..
        } => {
            check_outputs(csr.as_deref(), cert_out, key_out.as_deref())?;
            Request::OperatorRenew {
                name: name.clone(),
                csr_base64: csr
                    .as_deref()
                    .map(read)
                    .transpose()?
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            }
        }
    })
}

/// Refuses, before anything is issued, outputs that could not be written: a missing
/// `--key-out` without `--csr`, or a file that already exists.
fn check_outputs(csr: Option<&Path>, cert_out: &Path, key_out: Option<&Path>) -> Result<()> {
    if csr.is_none() && key_out.is_none() {
        return Err(Error::BadRequest(
            "without --csr a key is generated: give --key-out FILE".into(),
        ));
    }
    for p in std::iter::once(cert_out).chain(key_out) {
        if p.exists() {
            return Err(Error::BadRequest(format!("{} already exists", p.display())));
        }
    }
    Ok(())
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(format!("create {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(io(format!("write {}", path.display())))
}

/// `--json` output: compact, one object per line, like every jpki command.
fn pretty(v: &Value) -> String {
    v.to_string()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Writes `--cert-out` / `--key-out` from the answer and returns what to print.
pub fn operator_output(cmd: &OperatorCommand, v: &Value) -> Result<String> {
    match cmd {
        OperatorCommand::Add {
            cert_out,
            key_out,
            json,
            ..
        }
        | OperatorCommand::Renew {
            cert_out,
            key_out,
            json,
            ..
        } => {
            if let (Some(path), Some(key)) = (key_out, v.get("key_pem").and_then(Value::as_str)) {
                write_file(path, key, 0o600)?;
            }
            write_file(cert_out, s(v, "cert_pem"), 0o644)?;
            if *json {
                let mut shown = v.clone();
                if let Some(o) = shown.as_object_mut() {
                    o.remove("key_pem");
                }
                return Ok(pretty(&shown));
            }
            Ok(format!(
                "platform operator {} ({}) {}; client certificate {} valid until {} written to {}\n",
                s(v, "name"),
                s(v, "id"),
                if matches!(cmd, OperatorCommand::Renew { .. }) {
                    "renewed"
                } else {
                    "registered"
                },
                s(v, "serial"),
                s(v, "not_after"),
                cert_out.display()
            ))
        }
        OperatorCommand::List { json: false } => {
            let mut out = String::new();
            for o in v["operators"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\n",
                    s(o, "id"),
                    s(o, "state"),
                    list(&o["scopes"]),
                    s(o, "name")
                ));
            }
            Ok(out)
        }
        OperatorCommand::RegisterCert { json: false, .. } => Ok(format!(
            "key {} registered to platform operator {} ({}){}\n",
            s(v, "key_fingerprint"),
            s(v, "name"),
            s(v, "id"),
            v.get("note")
                .and_then(Value::as_str)
                .map(|n| format!("\nnote: {n}"))
                .unwrap_or_default()
        )),
        OperatorCommand::Suspend { json: false, .. }
        | OperatorCommand::Reactivate { json: false, .. }
        | OperatorCommand::Revoke { json: false, .. } => Ok(format!(
            "platform operator {} ({}) is now {}\n",
            s(v, "name"),
            s(v, "id"),
            s(v, "state")
        )),
        _ => Ok(pretty(v)),
    }
}

/// Builds the request for an SP command.
pub fn sp_request(cmd: &SpCommand) -> Result<Request> {
    Ok(match cmd {
        SpCommand::Add {
            pf, name, scopes, ..
        } => Request::SpAdd {
            pf: pf.clone(),
            name: name.clone(),
            scopes: parse_scopes(scopes)?,
        },
        SpCommand::List { .. } => Request::SpList,
        SpCommand::Suspend { target } => Request::SpSuspend {
            sp: target.id.clone(),
            actor: actor(target)?,
        },
        SpCommand::Resume { target } => Request::SpResume {
            sp: target.id.clone(),
            actor: actor(target)?,
        },
        SpCommand::Remove { target } => Request::SpRemove {
            sp: target.id.clone(),
            actor: actor(target)?,
        },
        SpCommand::Rescope { target, scopes } => Request::SpRescope {
            sp: target.id.clone(),
            scopes: parse_scopes(scopes)?,
            actor: actor(target)?,
        },
    })
}

/// The actor of an SP change: `--actor` / `$JPKI_ACTOR`, else the login name in `$USER`.
fn actor(target: &SpTarget) -> Result<String> {
    target
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| Error::BadRequest("say who makes the change: --actor NAME".into()))
}

/// What to print for an SP command's answer.
pub fn sp_output(cmd: &SpCommand, v: &Value) -> Result<String> {
    Ok(match cmd {
        SpCommand::Add { json: true, .. } | SpCommand::List { json: true } => pretty(v),
        SpCommand::Suspend { target }
        | SpCommand::Resume { target }
        | SpCommand::Remove { target }
        | SpCommand::Rescope { target, .. } => {
            if target.json {
                pretty(v)
            } else {
                format!(
                    "service provider {} ({}) is {} with {}\n",
                    s(v, "name"),
                    s(v, "id"),
                    s(v, "state"),
                    list(&v["scopes"])
                )
            }
        }
        SpCommand::Add { .. } => format!(
            "service provider {} ({}) registered under {} with {}\n",
            s(v, "name"),
            s(v, "id"),
            s(v, "pf"),
            list(&v["scopes"])
        ),
        SpCommand::List { .. } => {
            let mut out = String::new();
            for o in v["service_providers"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    s(o, "id"),
                    s(o, "pf"),
                    o.get("state").and_then(Value::as_str).unwrap_or("active"),
                    list(&o["scopes"]),
                    s(o, "name")
                ));
            }
            out
        }
    })
}

/// The request for `jpki report usage` (the month checked here, before anything is asked).
pub fn report_request(cmd: &ReportCommand) -> Result<Request> {
    let ReportCommand::Usage { month, .. } = cmd;
    platform::api::check_month(month)?;
    Ok(Request::Usage {
        month: month.clone(),
    })
}

/// The tariff of `jpki report usage`: the file's, or the default.
fn tariff(path: Option<&Path>) -> Result<Tariff> {
    let Some(path) = path else {
        return Ok(Tariff::default());
    };
    let text = String::from_utf8(read(path)?)
        .map_err(|_| Error::BadRequest(format!("{}: not UTF-8 text", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        Error::BadRequest(format!(
            "{}: not a tariff (signing_yen, auth_yen, zero_rated): {}",
            path.display(),
            e.message()
        ))
    })
}

/// What to print for `jpki report usage`: a table, CSV, or JSON with the tariff.
pub fn report_output(cmd: &ReportCommand, v: &Value) -> Result<String> {
    let ReportCommand::Usage {
        month,
        tariff: tariff_file,
        json,
        csv,
    } = cmd;
    let tariff = tariff(tariff_file.as_deref())?;
    let usage: Vec<platform::registry::Usage> = serde_json::from_value(v["usage"].clone())
        .map_err(|e| Error::Internal(format!("usage answer: {e}")))?;
    let lines = platform::usage::report(&usage, &tariff);
    let total =
        |f: fn(&platform::usage::Line) -> u64| lines.iter().map(f).fold(0u64, u64::saturating_add);
    if *json {
        return Ok(serde_json::json!({
            "month": month, "tariff": tariff, "lines": lines,
            "total": {"count": total(|l| l.count), "list_yen": total(|l| l.list_yen),
                      "charged_yen": total(|l| l.charged_yen)},
        })
        .to_string());
    }
    let mut out = String::new();
    if *csv {
        out.push_str("month,pf,sp,endpoint,cert_type,count,unit_yen,list_yen,charged_yen\n");
    } else {
        out.push_str(&format!(
            "usage {month} (tariff: signing {} yen, auth {} yen{})\n",
            tariff.signing_yen,
            tariff.auth_yen,
            if tariff.zero_rated {
                ", zero-rated"
            } else {
                ""
            }
        ));
    }
    let sep = if *csv { "," } else { "\t" };
    for l in &lines {
        let cols = [
            l.month.clone(),
            l.pf.clone(),
            l.sp.clone(),
            l.endpoint.clone(),
            l.cert_type.clone(),
            l.count.to_string(),
            l.unit_yen.to_string(),
            l.list_yen.to_string(),
            l.charged_yen.to_string(),
        ];
        out.push_str(&cols.join(sep));
        out.push('\n');
    }
    if !*csv {
        out.push_str(&format!(
            "total\t{} checks\tlist {} yen\tcharged {} yen\n",
            total(|l| l.count),
            total(|l| l.list_yen),
            total(|l| l.charged_yen)
        ));
    }
    Ok(out)
}

/// The request for `jpki resident access-log`.
pub fn access_log_request(args: &AccessLogArgs) -> Request {
    Request::AccessLog {
        resident: args.id.clone(),
    }
}

/// What to print for `jpki resident access-log`.
pub fn access_log_output(args: &AccessLogArgs, v: &Value) -> Result<String> {
    if args.json {
        return Ok(pretty(v));
    }
    let mut out = String::new();
    for a in v["accesses"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}\t{} ({})\t{} ({})\t{}\t{}\n",
            s(a, "at"),
            s(a, "pf_name"),
            s(a, "pf"),
            s(a, "sp_name"),
            s(a, "sp"),
            s(a, "operation"),
            s(a, "outcome")
        ));
    }
    if out.is_empty() {
        out.push_str("no access recorded\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use platform::registry::Scope;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: Sub,
    }
    #[derive(Subcommand)]
    enum Sub {
        #[command(subcommand)]
        Operator(OperatorCommand),
        #[command(subcommand)]
        Sp(SpCommand),
        AccessLog(AccessLogArgs),
    }

    fn parse(args: &[&str]) -> Sub {
        Top::try_parse_from(std::iter::once("jpki").chain(args.iter().copied()))
            .unwrap()
            .cmd
    }

    #[test]
    fn operator_add_writes_the_files_client_side() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("pf.pem");
        let key = dir.path().join("pf.key");
        let Sub::Operator(cmd) = parse(&[
            "operator",
            "add",
            "--name",
            "Example PF",
            "--scopes",
            "validity,four-attributes",
            "--cert-out",
            cert.to_str().unwrap(),
            "--key-out",
            key.to_str().unwrap(),
        ]) else {
            panic!()
        };
        let req = operator_request(&cmd).unwrap();
        assert!(
            matches!(&req, Request::OperatorAdd { scopes, csr_base64: None, .. }
            if scopes == &[Scope::Validity, Scope::FourAttributes])
        );
        let answer = serde_json::json!({
            "id": "PF1", "name": "Example PF", "serial": "0A", "not_after": "2027",
            "cert_pem": "CERT", "key_pem": "KEY",
        });
        let text = operator_output(&cmd, &answer).unwrap();
        assert!(text.contains("PF1") && text.contains("0A"), "{text}");
        assert_eq!(fs::read_to_string(&cert).unwrap(), "CERT");
        assert_eq!(fs::read_to_string(&key).unwrap(), "KEY");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Files are never overwritten.
        assert!(operator_request(&cmd).is_err());
        assert!(operator_output(&cmd, &answer).is_err());
    }

    #[test]
    fn operator_add_needs_a_key_destination_or_a_csr() {
        let Sub::Operator(cmd) = parse(&["operator", "add", "--name", "X", "--cert-out", "/tmp/x"])
        else {
            panic!()
        };
        assert!(operator_request(&cmd).is_err());
        let Sub::Operator(cmd) = parse(&[
            "operator",
            "add",
            "--name",
            "X",
            "--cert-out",
            "/tmp/x",
            "--csr",
            "/nonexistent.csr",
        ]) else {
            panic!()
        };
        let e = operator_request(&cmd).unwrap_err().to_string();
        assert!(e.contains("/nonexistent.csr"), "{e}");
    }

    #[test]
    fn sp_add_json_prints_the_id() {
        let Sub::Sp(cmd) = parse(&[
            "sp",
            "add",
            "--pf",
            "PF",
            "--name",
            "Bank",
            "--scopes",
            "validity,four-attributes,successor",
            "--json",
        ]) else {
            panic!()
        };
        assert!(
            matches!(sp_request(&cmd).unwrap(), Request::SpAdd { scopes, .. } if scopes.len() == 3)
        );
        let v =
            serde_json::json!({"id": "SP1", "name": "Bank", "pf": "PF1", "scopes": ["validity"]});
        let out: Value = serde_json::from_str(&sp_output(&cmd, &v).unwrap()).unwrap();
        assert_eq!(out["id"], "SP1");
        let Sub::Sp(bad) = parse(&[
            "sp",
            "add",
            "--pf",
            "P",
            "--name",
            "B",
            "--scopes",
            "everything",
        ]) else {
            panic!()
        };
        assert!(matches!(sp_request(&bad), Err(Error::UnknownScope(s)) if s == "everything"));
    }

    #[test]
    fn access_log_lists_who_read_what() {
        let Sub::AccessLog(args) = parse(&["access-log", "--id", "R1"]) else {
            panic!()
        };
        assert!(
            matches!(access_log_request(&args), Request::AccessLog { resident } if resident == "R1")
        );
        let v = serde_json::json!({"resident": "R1", "accesses": [
            {"at": "2026-11-27T00:00:00Z", "pf": "PF1", "pf_name": "Example PF", "sp": "SP1",
             "sp_name": "Bank", "operation": "four-attributes", "outcome": "ok"}]});
        let text = access_log_output(&args, &v).unwrap();
        assert!(
            text.contains("Example PF (PF1)") && text.contains("four-attributes"),
            "{text}"
        );
        let none = access_log_output(&args, &serde_json::json!({"accesses": []})).unwrap();
        assert_eq!(none, "no access recorded\n");
    }

    #[test]
    fn sp_state_changes_name_the_sp_and_the_actor() {
        let Sub::Sp(cmd) = parse(&["sp", "suspend", "--id", "SP01", "--actor", "alice"]) else {
            panic!()
        };
        assert!(matches!(sp_request(&cmd).unwrap(),
            Request::SpSuspend { sp, actor } if sp == "SP01" && actor == "alice"));
        let v = serde_json::json!({"id": "SP01", "name": "Bank", "state": "suspended",
                                   "scopes": ["validity"]});
        assert_eq!(
            sp_output(&cmd, &v).unwrap(),
            "service provider Bank (SP01) is suspended with validity\n"
        );
        for (verb, want) in [("resume", "pf-sp-resume"), ("remove", "pf-sp-remove")] {
            let Sub::Sp(cmd) = parse(&["sp", verb, "--id", "SP01", "--actor", "bob"]) else {
                panic!()
            };
            let req = serde_json::to_value(sp_request(&cmd).unwrap()).unwrap();
            assert_eq!(req["op"], want);
            assert_eq!(req["actor"], "bob");
        }
        let Sub::Sp(cmd) = parse(&[
            "sp",
            "rescope",
            "--id",
            "SP01",
            "--scopes",
            "successor,validity",
            "--actor",
            "c",
        ]) else {
            panic!()
        };
        assert!(matches!(sp_request(&cmd).unwrap(),
            Request::SpRescope { scopes, .. } if scopes == [Scope::Validity, Scope::Successor]));
        let Sub::Sp(bad) = parse(&[
            "sp", "rescope", "--id", "S", "--scopes", "all", "--actor", "c",
        ]) else {
            panic!()
        };
        assert!(matches!(sp_request(&bad), Err(Error::UnknownScope(s)) if s == "all"));
        let Sub::Sp(blank) = parse(&["sp", "remove", "--id", "S", "--actor", " "]) else {
            panic!()
        };
        assert!(sp_request(&blank)
            .unwrap_err()
            .to_string()
            .contains("--actor"));
    }

    #[test]
    fn usage_report_prices_the_counts_under_the_tariff() {
        #[derive(Parser)]
        struct R {
            #[command(subcommand)]
            cmd: ReportCommand,
        }
        let report = |args: &[&str]| {
            R::try_parse_from(std::iter::once("report").chain(args.iter().copied()))
                .unwrap()
                .cmd
        };
        let v = serde_json::json!({"month": "2026-11", "usage": [
            {"month": "2026-11", "pf": "PF1", "sp": "SP1", "endpoint": "validity",
             "cert_type": "auth", "count": 10},
            {"month": "2026-11", "pf": "PF1", "sp": "SP1", "endpoint": "validity",
             "cert_type": "signing", "count": 3}]});
        let csv = report_output(&report(&["usage", "--month", "2026-11", "--csv"]), &v).unwrap();
        assert_eq!(
            csv,
            "month,pf,sp,endpoint,cert_type,count,unit_yen,list_yen,charged_yen\n\
             2026-11,PF1,SP1,validity,auth,10,2,20,0\n\
             2026-11,PF1,SP1,validity,signing,3,20,60,0\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let tariff = dir.path().join("tariff.toml");
        fs::write(
            &tariff,
            "signing_yen = 25\nauth_yen = 3\nzero_rated = false\n",
        )
        .unwrap();
        let cmd = report(&[
            "usage",
            "--month",
            "2026-11",
            "--json",
            "--tariff",
            tariff.to_str().unwrap(),
        ]);
        let out: Value = serde_json::from_str(&report_output(&cmd, &v).unwrap()).unwrap();
        assert_eq!(
            out["total"],
            serde_json::json!({"count": 13, "list_yen": 105, "charged_yen": 105})
        );
        assert_eq!(out["tariff"]["signing_yen"], 25);
        let text = report_output(&report(&["usage", "--month", "2026-11"]), &v).unwrap();
        assert!(
            text.contains("zero-rated")
                && text.contains("total\t13 checks\tlist 80 yen\tcharged 0 yen"),
            "{text}"
        );
        // Bad input: a month that is not YYYY-MM, a tariff file with a typo.
        for bad in ["2026-13", "26-11", "2026-1", "2026/11", "１９９９-01"] {
            let e = report_request(&report(&["usage", "--month", bad])).unwrap_err();
            assert!(e.to_string().contains("YYYY-MM"), "{bad}: {e}");
        }
        fs::write(
            &tariff,
            "signing_yen = 20\nauth_yen = 2\nzero_rate = true\n",
        )
        .unwrap();
        let e = report_output(&cmd, &v).unwrap_err().to_string();
        assert!(e.contains("not a tariff"), "{e}");
    }
}
