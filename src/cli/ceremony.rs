//! Dual control on the command line ([`ca::ceremony`]): the officers' approvals a key
//! ceremony needs, given as signed approval files (`jpki ceremony approve`, each officer on
//! its own machine) or as officer certificate and key files the CLI signs with here.
//! [`Approvers`] is flattened into every command that makes or replaces a CA key.

use std::path::{Path, PathBuf};

use ca::ceremony::{self, Approval};
use ca::error::Error;
use clap::{Args, Subcommand};

use crate::Result;

/// The two (or more) ca-officers who approve a key ceremony.
#[derive(Args, Debug, Clone, Default)]
pub struct Approvers {
    /// An approval signed by a ca-officer (`jpki ceremony approve --out FILE`); twice, for two
    /// distinct officers.
    #[arg(long, value_name = "FILE")]
    pub approval: Vec<PathBuf>,
    /// A ca-officer's certificate (DIR/officers/NAME.pem); with --officer-key, in the same
    /// order, to sign the approval here.
    #[arg(long, value_name = "FILE")]
    pub officer_cert: Vec<PathBuf>,
    /// The key of the --officer-cert given at the same place.
    #[arg(long, value_name = "FILE")]
    pub officer_key: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CeremonyCommand {
    /// Sign this officer's approval of a key ceremony (valid for 5 minutes), to hand to the
    /// officer who runs it (`--approval FILE`).
    Approve {
        /// The ceremony: `ocsp-signer-compromise` or `root-rollover`.
        #[arg(long)]
        operation: String,
        /// What it acts on (the hierarchy: signing or auth).
        #[arg(long)]
        subject: String,
        /// The officer's certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// The officer's key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the approval (JSON; created new).
        #[arg(long)]
        out: PathBuf,
    },
}

fn read(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?)
}

impl Approvers {
    /// The approvals of `operation` on `subject`: the files given, then one signed here for
    /// each certificate and key pair (at `now`).
    pub fn collect(
        &self,
        operation: &str,
        subject: &str,
        now: time::OffsetDateTime,
    ) -> Result<Vec<Approval>> {
        if self.officer_cert.len() != self.officer_key.len() {
            return Err(Error::Invalid(format!(
                "{} --officer-cert but {} --officer-key: give them in pairs",
                self.officer_cert.len(),
                self.officer_key.len()
            ))
            .into());
        }
        let mut out = Vec::new();
        for f in &self.approval {
            let a: Approval = serde_json::from_str(&read(f)?)
                .map_err(|e| Error::Invalid(format!("{} is not an approval: {e}", f.display())))?;
            out.push(a);
        }
        for (cert, key) in self.officer_cert.iter().zip(&self.officer_key) {
            out.push(ceremony::approve(
                operation,
                subject,
                &read(cert)?,
                &read(key)?,
                now,
            )?);
        }
        Ok(out)
    }
}

/// `jpki ceremony approve`: needs no data directory (the officer may be elsewhere).
pub fn run(cmd: &CeremonyCommand, now: time::OffsetDateTime) -> Result<()> {
    match cmd {
        CeremonyCommand::Approve {
            operation,
            subject,
            cert,
            key,
            out,
        } => {
            let a = ceremony::approve(operation, subject, &read(cert)?, &read(key)?, now)?;
            let text =
                serde_json::to_string_pretty(&a).map_err(|e| Error::Invalid(e.to_string()))?;
            ca::keys::write_private(out, text.as_bytes())?;
            println!(
                "approval of {operation} on {subject} written to {} (valid {} s)",
                out.display(),
                ceremony::FRESH_SECS
            );
            Ok(())
        }
    }
}
