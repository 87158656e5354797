//! `jpki verifier …`: registered verifiers — relying parties that may fetch CRLs and OCSP
//! answers from `jpki serve --verifiers-https` with a TLS client certificate from the operator
//! CA (docs/serve.md). They are kept in the officers' register with the role `verifier`, which
//! has no admin power at all (`ca::officers::authorize`).

use std::path::PathBuf;

use ca::api::Request;
use ca::error::Error;
use ca::officers::Role;
use clap::Subcommand;
use serde_json::Value;

use super::officer::{self, OfficerCommand};
use crate::Result;

#[derive(Subcommand, Debug)]
pub enum VerifierCommand {
    /// Register a verifier and issue its TLS client certificate (operator CA).
    Add {
        /// The verifier's name (e.g. `example-bank`), unique among officers and verifiers.
        #[arg(long)]
        name: String,
        /// A PKCS#10 request with the verifier's own key; without it a key is generated and
        /// written to --key-out (unencrypted PKCS#8, mode 0600).
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Where to write its client certificate (PEM, with the operator CA's after it).
        #[arg(long)]
        cert_out: PathBuf,
        /// Where to write the generated key (PKCS#8 PEM, 0600); not with --csr.
        #[arg(long)]
        key_out: Option<PathBuf>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the registered verifiers.
    List {
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a verifier for good (its certificate is refused from the next request on).
    Remove {
        /// The verifier's name, as registered.
        #[arg(long)]
        name: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a verifier command through `call` (CA requests) and `call_pf` (the operator CA's).
pub fn run(
    cmd: &VerifierCommand,
    call: &dyn Fn(Request) -> Result<Value>,
    call_pf: &dyn Fn(platform::Request) -> Result<Value>,
) -> Result<String> {
    let verifiers = |v: Value| -> Vec<Value> {
        v["officers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|o| o["role"] == "verifier")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    match cmd {
        VerifierCommand::Add {
            name,
            csr,
            cert_out,
            key_out,
            json,
        } => {
            let as_officer = OfficerCommand::Add {
                name: name.clone(),
                role: Role::Verifier,
                municipality: None,
                csr: csr.clone(),
                cert_out: cert_out.clone(),
                key_out: key_out.clone(),
                json: *json,
            };
            let officer::OfficerRequest::Add(req) = officer::request(&as_officer)? else {
                return Err(Error::Invalid("not an add request".into()).into());
            };
            let v = call_pf(req)?;
            officer::output(&as_officer, &v)
        }
        VerifierCommand::List { json } => {
            let list = verifiers(call(Request::OfficerList)?);
            Ok(if *json {
                serde_json::json!({ "verifiers": list }).to_string()
            } else {
                list.iter()
                    .map(|o| {
                        format!(
                            "{} {} {}",
                            o["id"].as_str().unwrap_or_default(),
                            o["name"].as_str().unwrap_or_default(),
                            o["state"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        VerifierCommand::Remove { name, json } => {
            if !verifiers(call(Request::OfficerList)?)
                .iter()
                .any(|o| o["name"] == name.as_str())
            {
                return Err(
                    Error::Invalid(format!("no registered verifier named `{name}`")).into(),
                );
            }
            let v = call_pf(platform::Request::OfficerRevoke { name: name.clone() })?;
            Ok(if *json {
                v.to_string()
            } else {
                format!("verifier {name} removed")
            })
        }
    }
}
