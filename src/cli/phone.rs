//! `jpki phone …`: smartphone certificates ([`ca::authority::phone`]). The flow:
//!
//! 1. `jpki phone challenge --resident R` — the CA's one-use challenge (hex);
//! 2. `jpki phone authorise --token CARD --challenge HEX --auth-csr P.csr [--signing-csr S.csr]
//!    --out auth.sig` — the **card** token's authentication key signs the challenge and the
//!    phone's CSRs (made with `jpki token csr` on a token created by `jpki token new --phone`);
//! 3. `jpki phone issue --resident R --challenge HEX --authorisation auth.sig --auth-csr P.csr
//!    [--signing-csr S.csr] --out-dir D` — the phone's certificates.
//!
//! `jpki phone lost|found --resident R` report the phone lost (hold) or found (auth released,
//! signing revoked). The CA commands are admin requests (`ca::api::Request::Phone*`): with
//! `jpki serve` running they go through its admin socket, authorised like `issue` (challenge,
//! issue), `hold` (lost) and `revoke` (found).

use std::path::{Path, PathBuf};

use base64::Engine;
use ca::api::Request;
use ca::authority::phone::{authorisation_message, ChallengeIssued, PhoneIssued, PhoneOutcome};
use ca::error::Error;
use clap::Subcommand;
use holder_token::prompt::pin;
use holder_token::Token;
use policies::Hierarchy;

use super::{call, print, typed, Cli};
use crate::Result;

#[derive(Debug, Subcommand)]
pub enum PhoneCommand {
    /// Issue a fresh one-use challenge for a phone application (valid 5 minutes).
    Challenge {
        /// The holder's resident id (e.g. `R-13101-000042`).
        #[arg(long)]
        resident: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// With the CARD token's authentication key, authorise a phone's CSRs for a challenge.
    Authorise {
        /// The card token (not the phone's).
        #[arg(long)]
        token: PathBuf,
        /// The authentication PIN of the card.
        #[arg(long)]
        pin: Option<String>,
        /// The challenge from `jpki phone challenge` (hexadecimal).
        #[arg(long)]
        challenge: String,
        /// The phone's authentication CSR (PEM or DER, made by `jpki token csr` on the phone token).
        #[arg(long)]
        auth_csr: Option<PathBuf>,
        /// The phone's signing CSR (PEM or DER), if it applies for one.
        #[arg(long)]
        signing_csr: Option<PathBuf>,
        /// Where to write the signature (raw PKCS#1 v1.5 SHA-256).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue the phone's certificates: with --auth-csr a new phone (the old phone's
    /// certificates are revoked); with only --signing-csr a new signing certificate for the
    /// current phone (after `phone found`).
    Issue {
        /// The holder's resident id (e.g. `R-13101-000042`).
        #[arg(long)]
        resident: String,
        /// The challenge from `jpki phone challenge` (hexadecimal).
        #[arg(long)]
        challenge: String,
        /// The card's signature from `jpki phone authorise`.
        #[arg(long)]
        authorisation: PathBuf,
        /// The phone's authentication CSR (PEM or DER, made by `jpki token csr` on the phone token).
        #[arg(long)]
        auth_csr: Option<PathBuf>,
        /// The phone's signing CSR (PEM or DER), if it applies for one.
        #[arg(long)]
        signing_csr: Option<PathBuf>,
        /// Directory to write phone-auth.pem / phone-signing.pem into.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The phone is lost: its certificates are put on hold.
    Lost {
        /// The holder's resident id (e.g. `R-13101-000042`).
        #[arg(long)]
        resident: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The lost phone is found: the authentication certificate's hold is lifted, the signing
    /// certificate is revoked (apply again with --signing-csr).
    Found {
        /// The holder's resident id (e.g. `R-13101-000042`).
        #[arg(long)]
        resident: String,
        /// Print one compact JSON object (snake_case keys, RFC 3339 UTC times) instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> Result<Vec<u8>> {
    Ok(std::fs::read(path).map_err(Error::io(format!("read {}", path.display())))?)
}

fn read_opt(path: Option<&PathBuf>) -> Result<Option<Vec<u8>>> {
    path.map(|p| read(p)).transpose()
}

/// `jpki phone authorise`: needs only the card token, no data directory.
pub fn authorise(cmd: &PhoneCommand) -> Result<()> {
    let PhoneCommand::Authorise {
        token,
        pin: p,
        challenge,
        auth_csr,
        signing_csr,
        out,
    } = cmd
    else {
        return Ok(());
    };
    let auth = read_opt(auth_csr.as_ref())?;
    let signing = read_opt(signing_csr.as_ref())?;
    if auth.is_none() && signing.is_none() {
        return Err(Error::Invalid("give --auth-csr and/or --signing-csr".into()).into());
    }
    let challenge = hex::decode(challenge.trim())
        .map_err(|_| Error::Invalid("--challenge is not hexadecimal".into()))?;
    let message = authorisation_message(&challenge, auth.as_deref(), signing.as_deref())?;
    let mut t = Token::open(token)?;
    let p = pin(p.clone(), Hierarchy::Auth, "the card's", false)?;
    let sig = t.login(&p, &message)?;
    std::fs::write(out, sig).map_err(Error::io(format!("write {}", out.display())))?;
    println!("wrote the card's authorisation to {}", out.display());
    Ok(())
}

/// The CA side of `jpki phone …`: through the admin socket when `jpki serve` runs, else on
/// the local data directory (the same requests either way).
pub fn run(cli: &Cli, cmd: &PhoneCommand) -> Result<()> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match cmd {
        PhoneCommand::Authorise { .. } => authorise(cmd),
        PhoneCommand::Challenge { resident, json } => {
            let v = call(
                cli,
                Request::PhoneChallenge {
                    resident: resident.clone(),
                },
            )?;
            let c: ChallengeIssued = typed(v)?;
            print(*json, &c, |c| {
                format!("{}\n(expires {})", c.challenge, super::when(c.expires))
            })
        }
        PhoneCommand::Issue {
            resident,
            challenge,
            authorisation,
            auth_csr,
            signing_csr,
            out_dir,
            json,
        } => {
            let auth = read_opt(auth_csr.as_ref())?;
            let signing = read_opt(signing_csr.as_ref())?;
            for csr in auth.iter().chain(signing.iter()) {
                ca::csr::check_size(csr)?;
            }
            let sig = read(authorisation)?;
            let v = call(
                cli,
                Request::PhoneIssue {
                    resident: resident.clone(),
                    challenge: challenge.clone(),
                    authorisation_base64: b64(&sig),
                    auth_csr_base64: auth.as_deref().map(b64),
                    signing_csr_base64: signing.as_deref().map(b64),
                },
            )?;
            let issued: PhoneIssued = typed(v)?;
            if let Some(dir) = out_dir {
                for c in &issued.certificates {
                    let path = dir.join(format!("{}.pem", c.kind.as_str()));
                    std::fs::write(&path, &c.pem)
                        .map_err(Error::io(format!("write {}", path.display())))?;
                }
            }
            print(*json, &issued, |i| {
                let mut s = String::new();
                for c in &i.certificates {
                    s.push_str(&format!(
                        "issued {} certificate {} to {} (notAfter {}, set by the {:?} rule)\n",
                        c.kind.as_str(),
                        c.serial,
                        c.resident,
                        super::when(c.not_after),
                        c.bound
                    ));
                }
                for old in &i.superseded {
                    s.push_str(&format!("{old} superseded (previous phone)\n"));
                }
                s.trim_end().to_owned()
            })
        }
        PhoneCommand::Lost { resident, json } => {
            let v = call(
                cli,
                Request::PhoneLost {
                    resident: resident.clone(),
                },
            )?;
            let o: PhoneOutcome = typed(v)?;
            print(*json, &o, |o| o.changed.join("\n"))
        }
        PhoneCommand::Found { resident, json } => {
            let v = call(
                cli,
                Request::PhoneFound {
                    resident: resident.clone(),
                },
            )?;
            let o: PhoneOutcome = typed(v)?;
            print(*json, &o, |o| o.changed.join("\n"))
        }
    }
}
