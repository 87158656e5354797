//! `jpki officer …`: the CA's officers (`ca::officers`). `add` registers an officer with a TLS
//! client certificate from the operator CA (for the key of `--csr`, or a fresh key written to
//! `--key-out`, mode 0600); `list`, `suspend`, `reactivate`, `revoke` manage them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use ca::api::Request;
use ca::error::Error;
use ca::officers::Role;
use clap::Subcommand;
use serde_json::Value;

use crate::Result;

#[derive(Subcommand, Debug)]
pub enum OfficerCommand {
    /// Register an officer and issue its TLS client certificate (operator CA).
    Add {
        /// The officer's name, e.g. sato.
        #[arg(long)]
        name: String,
        /// ca-officer, municipal-clerk or auditor.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The municipality a municipal-clerk acts for (as the register spells it).
        #[arg(long)]
        municipality: Option<String>,
        /// A PKCS#10 request with the officer's own key; without it a key is generated and
        /// written to --key-out (unencrypted PKCS#8, mode 0600).
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
    /// Issue an officer a new TLS client certificate for a new key (the previous key is
    /// refused from then on).
    Renew {
        /// The officer's name, as registered (e.g. `sato`).
        #[arg(long)]
        name: String,
        /// A PKCS#10 request with the officer's new key; without it a key is generated and
        /// written to --key-out (unencrypted PKCS#8, mode 0600).
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Where to write the new certificate (PEM, with the operator CA's after it).
        #[arg(long)]
        cert_out: PathBuf,
        /// Where to write the generated key (PKCS#8 PEM, 0600); not with --csr.
        #[arg(long)]
        key_out: Option<PathBuf>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the officers.
    List {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an officer (every request refused until reactivated).
    Suspend {
        /// The officer's name, e.g. sato.
        #[arg(long)]
        name: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Reactivate a suspended officer.
    Reactivate {
        /// The officer's name, e.g. sato.
        #[arg(long)]
        name: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an officer for good.
    Revoke {
        /// The officer's name, e.g. sato.
        #[arg(long)]
        name: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(s: &str) -> std::result::Result<Role, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// What an officer command sends: a platform request for `add` (the operator CA signs), a CA
/// request otherwise.
pub enum OfficerRequest {
    Add(platform::Request),
    Ca(Request),
}

/// Builds the request (reads `--csr`; refuses, before anything is issued, outputs that could
/// not be written).
pub fn request(cmd: &OfficerCommand) -> Result<OfficerRequest> {
    Ok(match cmd {
        OfficerCommand::Renew {
            name,
            csr,
            cert_out,
            key_out,
            ..
        } => OfficerRequest::Add(platform::Request::OfficerRenew {
            name: name.clone(),
            csr_base64: credentials_in(csr.as_deref(), cert_out, key_out.as_deref())?,
        }),
        OfficerCommand::Add {
            name,
            role,
            municipality,
            csr,
            cert_out,
            key_out,
            ..
        } => {
            let csr_base64 = credentials_in(csr.as_deref(), cert_out, key_out.as_deref())?;
            OfficerRequest::Add(platform::Request::OfficerAdd {
                name: name.clone(),
                role: *role,
                municipality: municipality.clone(),
                csr_base64,
            })
        }
        OfficerCommand::List { .. } => OfficerRequest::Ca(Request::OfficerList),
        OfficerCommand::Suspend { name, .. } => {
            OfficerRequest::Ca(Request::OfficerSuspend { name: name.clone() })
        }
        OfficerCommand::Reactivate { name, .. } => {
            OfficerRequest::Ca(Request::OfficerReactivate { name: name.clone() })
        }
        // Through the platform request: the operator CA's CRL then lists its certificate.
        OfficerCommand::Revoke { name, .. } => {
            OfficerRequest::Add(platform::Request::OfficerRevoke { name: name.clone() })
        }
    })
}

/// Checks the credential files of `add` and `renew` before anything is issued (a CSR or a
/// key file to write; outputs that do not exist yet) and reads the CSR (base64).
fn credentials_in(
    csr: Option<&Path>,
    cert_out: &Path,
    key_out: Option<&Path>,
) -> Result<Option<String>> {
    if csr.is_none() && key_out.is_none() {
        return Err(
            Error::Invalid("without --csr a key is generated: give --key-out FILE".into()).into(),
        );
    }
    for p in std::iter::once(cert_out).chain(key_out) {
        if p.exists() {
            return Err(Error::Invalid(format!("{} already exists", p.display())).into());
        }
    }
    Ok(match csr {
        Some(p) => Some(
            base64::engine::general_purpose::STANDARD
                .encode(fs::read(p).map_err(Error::io(format!("read {}", p.display())))?),
        ),
        None => None,
    })
}

/// Writes a new file with `mode`, refusing one that exists.
pub fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io(format!("create {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(Error::io(format!("write {}", path.display())))?;
    Ok(())
}

/// Writes the certificate (and a generated key) of an `officer add` answer.
pub fn write_credentials(v: &Value, cert_out: &Path, key_out: Option<&Path>) -> Result<()> {
    let cert = v["cert_pem"].as_str().unwrap_or_default();
    write_new(cert_out, cert, 0o644)?;
    if let (Some(path), Some(key)) = (key_out, v["key_pem"].as_str()) {
        write_new(path, key, 0o600)?;
    }
    Ok(())
}

/// Writes `--cert-out` / `--key-out` from the answer and returns what to print.
pub fn output(cmd: &OfficerCommand, v: &Value) -> Result<String> {
    let json = match cmd {
        OfficerCommand::Renew {
            cert_out,
            key_out,
            json,
            ..
        } => {
            write_credentials(v, cert_out, key_out.as_deref())?;
            if !*json {
                return Ok(format!(
                    "officer {} ({}) has a new certificate {} in {}; its previous key is refused",
                    v["name"].as_str().unwrap_or_default(),
                    v["id"].as_str().unwrap_or_default(),
                    v["serial"].as_str().unwrap_or_default(),
                    cert_out.display()
                ));
            }
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("key_pem");
            }
            return Ok(v.to_string());
        }
        OfficerCommand::Add {
            cert_out,
            key_out,
            json,
            ..
        } => {
            write_credentials(v, cert_out, key_out.as_deref())?;
            if !*json {
                return Ok(format!(
                    "officer {} ({}) registered as {}{}; certificate {} in {}",
                    v["name"].as_str().unwrap_or_default(),
                    v["id"].as_str().unwrap_or_default(),
                    v["role"].as_str().unwrap_or_default(),
                    v["municipality"]
                        .as_str()
                        .map(|m| format!(" of {m}"))
                        .unwrap_or_default(),
                    v["serial"].as_str().unwrap_or_default(),
                    cert_out.display()
                ));
            }
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                // The private key went to its file; it is never printed.
                o.remove("key_pem");
            }
            return Ok(v.to_string());
        }
        OfficerCommand::List { json }
        | OfficerCommand::Suspend { json, .. }
        | OfficerCommand::Reactivate { json, .. }
        | OfficerCommand::Revoke { json, .. } => *json,
    };
    if json {
        return Ok(v.to_string());
    }
    let line = |o: &Value| {
        format!(
            "{} {} {}{} {}",
            o["id"].as_str().unwrap_or_default(),
            o["name"].as_str().unwrap_or_default(),
            o["role"].as_str().unwrap_or_default(),
            o["municipality"]
                .as_str()
                .map(|m| format!("@{m}"))
                .unwrap_or_default(),
            o["state"].as_str().unwrap_or_default()
        )
    };
    Ok(match v.get("officers").and_then(Value::as_array) {
        Some(list) => list.iter().map(line).collect::<Vec<_>>().join("\n"),
        None => line(v),
    })
}
