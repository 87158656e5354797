//! `jpki token …`: the command-line face of the holder token ([`holder_token`]). The token
//! works on its own file; these commands need no data directory and no authority.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use holder_token::pin::{max_tries, other, pin_name};
use holder_token::prompt::pin;
use holder_token::{Encapsulation, Error, KeyStatus, Token};
use policies::Hierarchy;
use time::OffsetDateTime;

/// Parses `signing` or `auth`.
fn parse_kind(s: &str) -> Result<Hierarchy, String> {
    Hierarchy::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("expected `signing` or `auth`, not `{s}`"))
}

/// The holder token (the My Number card's stand-in). A PIN option left out is asked for on
/// the terminal without echo.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token with new signing and authentication keys (RSA-2048).
    New {
        /// Token file to create (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Signing password: 6-16 letters A-Z and digits (lower case is upper-cased).
        #[arg(long)]
        sign_pin: Option<String>,
        /// Authentication PIN: 4 digits.
        #[arg(long)]
        auth_pin: Option<String>,
        /// A smartphone's secure element instead of a card (token name JPKIAPGPSETOKEN):
        /// its keys get the phone certificates (`jpki phone`).
        #[arg(long)]
        phone: bool,
        /// Enrol the token with the municipal counter whose public key this is (the `.pub`
        /// file of `jpki token counter-key`), so that its clerks can reset a locked PIN
        /// without the other one (`jpki resident pin-reset`). Example: --counter chiyoda.key.pub
        #[arg(long, value_name = "FILE")]
        counter: Option<PathBuf>,
    },
    /// Enrol an existing token with a municipal counter's key (the `.pub` file), so that the
    /// counter can reset its PINs (`jpki resident pin-reset`); the holder enters one PIN.
    EnrolCounter {
        /// The holder token file, e.g. card.json.
        #[arg(long, value_name = "FILE")]
        token: PathBuf,
        /// The counter's public key file, e.g. chiyoda.key.pub.
        #[arg(long, value_name = "FILE")]
        counter: PathBuf,
        /// Which PIN the holder enters: auth (4 digits) or signing.
        #[arg(long, value_parser = parse_kind, default_value = "auth")]
        kind: Hierarchy,
        /// That PIN (asked for without echo when left out).
        #[arg(long)]
        pin: Option<String>,
    },
    /// Make a municipal counter's PIN-reset key (RSA-2048), sealed under $JPKI_PASSPHRASE
    /// (at least 8 characters), in FILE (0600, stays at the counter) and its public half in
    /// FILE.pub (for `jpki token new --counter`). See docs/lifecycle.md.
    CounterKey {
        /// The municipality whose counter it is, as registered (e.g. Chiyoda-ku).
        #[arg(long, value_name = "NAME")]
        municipality: String,
        /// The key file to create (must not exist), e.g. chiyoda-counter.key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write a PKCS#10 certificate request (PEM) for one of the keys.
    Csr {
        /// The holder token file, e.g. card.json.
        #[arg(long)]
        token: PathBuf,
        /// Which key: signing or auth.
        #[arg(long, value_parser = parse_kind)]
        kind: Hierarchy,
        /// The PIN of that key.
        #[arg(long)]
        pin: Option<String>,
        /// The file to write, e.g. auth.csr or signed.p7s.
        #[arg(long)]
        out: PathBuf,
    },
    /// Store a certificate (PEM or DER) beside the key it certifies.
    ImportCert {
        /// The holder token file, e.g. card.json.
        #[arg(long)]
        token: PathBuf,
        /// The certificate the CA issued (PEM or DER), e.g. from `jpki issue --out`.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Sign a file: CMS SignedData (DER), detached unless --attached.
    Sign {
        /// The holder token file, e.g. card.json.
        #[arg(long)]
        token: PathBuf,
        /// The signing password.
        #[arg(long)]
        pin: Option<String>,
        /// The file to sign.
        #[arg(long = "in")]
        input: PathBuf,
        /// The file to write, e.g. auth.csr or signed.p7s.
        #[arg(long)]
        out: PathBuf,
        /// Carry the content inside the SignedData.
        #[arg(long)]
        attached: bool,
        /// Ask this RFC 3161 TSA (http://…) for a time-stamp over the signature value and add
        /// it as the signatureTimeStampToken unsigned attribute (CAdES-T; docs/tsa.md).
        #[arg(long, value_name = "URL")]
        timestamp: Option<String>,
    },
    /// Sign a login challenge with the authentication key (raw PKCS#1 v1.5 SHA-256).
    Login {
        /// The holder token file, e.g. card.json.
        #[arg(long)]
        token: PathBuf,
        /// The authentication PIN.
        #[arg(long)]
        pin: Option<String>,
        /// The challenge file the relying party sent.
        #[arg(long)]
        challenge: PathBuf,
        /// The file to write, e.g. auth.csr or signed.p7s.
        #[arg(long)]
        out: PathBuf,
        /// Write the authentication certificate and the signature as PEM text (what the
        /// holder portal's login page takes) instead of the raw signature.
        #[arg(long)]
        pem: bool,
    },
    /// Set a new PIN for a (locked or forgotten) key after verifying the OTHER key's PIN.
    Reset {
        /// The holder token file, e.g. card.json.
        #[arg(long)]
        token: PathBuf,
        /// The key whose PIN is set.
        #[arg(long, value_parser = parse_kind)]
        kind: Hierarchy,
        /// The PIN of the other key.
        #[arg(long)]
        other_pin: Option<String>,
        /// The new PIN for --kind.
        #[arg(long)]
        new_pin: Option<String>,
    },
    /// Show the try counters and certificates (no PIN needed).
    Show {
        /// The holder token file, e.g. card.json.
        #[arg(long)]
        token: PathBuf,
        /// One JSON object: the token's path and each key's counters, lock and certificate.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// A PEM block (RFC 7468: base64 in 64-character lines).
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn describe(k: &KeyStatus) -> String {
    let state = if k.locked {
        "LOCKED".to_owned()
    } else {
        format!("{}/{} tries left", k.tries_left, k.max_tries)
    };
    let cert = match (&k.certificate_subject, &k.certificate_serial) {
        (Some(subject), Some(serial)) => format!("certificate serial {serial}, {subject}"),
        _ => "no certificate".to_owned(),
    };
    let fp: String = k.key_fingerprint[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{:<8} {state}; key sha256:{fp}…; {cert}", k.kind.as_str())
}

/// Runs one `jpki token` command. Results go to the `--out` files and a one-line summary to
/// stdout; `now` is the signingTime of `sign` (the caller reads the system clock: the token
/// has always signed with the real time, whatever `JPKI_TEST_NOW` says).
pub fn run(cmd: TokenCommand, now: OffsetDateTime) -> Result<(), Error> {
    match cmd {
        TokenCommand::New {
            out,
            sign_pin,
            auth_pin,
            phone,
            counter,
        } => {
            // Read before any PIN is asked for: a wrong file fails at once.
            let counter = counter
                .as_deref()
                .map(holder_token::counter::CounterPublic::read)
                .transpose()?;
            let s = pin(sign_pin, Hierarchy::Signing, "new", true)?;
            let a = pin(auth_pin, Hierarchy::Auth, "new", true)?;
            let kind = if phone {
                holder_token::TokenKind::Phone
            } else {
                holder_token::TokenKind::Card
            };
            let token = Token::create_with(&out, &s, &a, kind, counter.as_ref())?;
            println!(
                "created {} (signing: {} tries, auth: {} tries){}",
                token.path().display(),
                max_tries(Hierarchy::Signing),
                max_tries(Hierarchy::Auth),
                counter
                    .map(|c| format!("; PINs resettable at the counter of {}", c.municipality))
                    .unwrap_or_default()
            );
        }
        TokenCommand::EnrolCounter {
            token,
            counter,
            kind,
            pin: p,
        } => {
            let counter = holder_token::counter::CounterPublic::read(&counter)?;
            let mut t = Token::open(&token)?;
            let p = pin(p, kind, "the", false)?;
            t.enrol_counter(kind, &p, &counter)?;
            println!(
                "{}: PINs resettable at the counter of {}",
                token.display(),
                counter.municipality
            );
        }
        TokenCommand::CounterKey { municipality, out } => {
            let pass = std::env::var("JPKI_PASSPHRASE").map_err(|_| Error::CounterKey {
                path: out.clone(),
                reason: "set JPKI_PASSPHRASE to the counter key's passphrase".into(),
            })?;
            let public =
                holder_token::counter::CounterKey::create(&out, &municipality, pass.as_bytes())?;
            println!(
                "counter key of {} in {} (keep it at the counter); public half in {} (key id {})",
                public.municipality,
                out.display(),
                holder_token::counter::public_path(&out).display(),
                holder_token::counter::key_id(&public.public_key)
            );
        }
        TokenCommand::Csr {
            token,
            kind,
            pin: p,
            out,
        } => {
            let mut t = Token::open(&token)?;
            let p = pin(p, kind, "the", false)?;
            let der = t.csr(kind, &p)?;
            let pem = holder_token::csr_pem(&der)?;
            write(&out, pem.as_bytes())?;
            println!("wrote {} request to {}", kind.as_str(), out.display());
        }
        TokenCommand::ImportCert { token, cert } => {
            let mut t = Token::open(&token)?;
            let kind = t.import_cert(&read(&cert)?)?;
            println!("imported the {} certificate", kind.as_str());
        }
        TokenCommand::Sign {
            token,
            pin: p,
            input,
            out,
            attached,
            timestamp,
        } => {
            let mut t = Token::open(&token)?;
            let content = read(&input)?;
            let p = pin(p, Hierarchy::Signing, "the", false)?;
            let encapsulation = if attached {
                Encapsulation::Attached
            } else {
                Encapsulation::Detached
            };
            let der = t.sign_cms(&p, &content, encapsulation, now)?;
            let der = match &timestamp {
                Some(url) => crate::timestamp::stamp(&der, url).map_err(|e| Error::Io {
                    path: PathBuf::from(url),
                    source: std::io::Error::other(e),
                })?,
                None => der,
            };
            write(&out, &der)?;
            println!("wrote signature to {}", out.display());
        }
        TokenCommand::Login {
            token,
            pin: p,
            challenge,
            out,
            pem,
        } => {
            let mut t = Token::open(&token)?;
            let challenge = read(&challenge)?;
            let p = pin(p, Hierarchy::Auth, "the", false)?;
            let sig = t.login(&p, &challenge)?;
            if pem {
                let cert = t.certificate(Hierarchy::Auth).ok_or(Error::NoCertificate {
                    kind: Hierarchy::Auth,
                })?;
                let text = format!(
                    "{}{}",
                    pem_block("CERTIFICATE", cert),
                    pem_block("JPKI LOGIN SIGNATURE", &sig)
                );
                write(&out, text.as_bytes())?;
            } else {
                write(&out, &sig)?;
            }
            println!("wrote login signature to {}", out.display());
        }
        TokenCommand::Reset {
            token,
            kind,
            other_pin,
            new_pin,
        } => {
            let mut t = Token::open(&token)?;
            let o = pin(other_pin, other(kind), "the", false)?;
            let n = pin(new_pin, kind, "new", true)?;
            t.reset(kind, &o, &n)?;
            println!("the {} is reset; {} tries", pin_name(kind), max_tries(kind));
        }
        TokenCommand::Show { token, json } => {
            let t = Token::open(&token)?;
            let status = t.status();
            if json {
                let key = |k: &KeyStatus| {
                    serde_json::json!({
                        "kind": k.kind,
                        "tries_left": k.tries_left,
                        "max_tries": k.max_tries,
                        "locked": k.locked,
                        "key_sha256": hex::encode(k.key_fingerprint),
                        "certificate_subject": k.certificate_subject,
                        "certificate_serial": k.certificate_serial,
                    })
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "token": t.path().display().to_string(),
                        "signing": key(&status.signing),
                        "auth": key(&status.auth),
                    })
                );
            } else {
                println!("{}", t.path().display());
                println!("  {}", describe(&status.signing));
                println!("  {}", describe(&status.auth));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// `openssl ARGS` in `dir`, which must succeed; its stdout and stderr.
    fn openssl(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl must be installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
        text
    }

    /// Every command in turn, checked by OpenSSL playing the CA and the relying party.
    #[test]
    fn commands_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let p = |name: &str| d.join(name);
        let run = |cmd| run(cmd, OffsetDateTime::now_utc());
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-subj",
                "/C=JP/O=Test/CN=Test Root",
                "-days",
                "30",
            ],
        );
        let token = p("cli.json");
        run(TokenCommand::New {
            out: token.clone(),
            sign_pin: Some("cli2026".into()),
            auth_pin: Some("1357".into()),
            phone: false,
            counter: None,
        })
        .unwrap();
        run(TokenCommand::Csr {
            token: token.clone(),
            kind: Hierarchy::Signing,
            pin: Some("CLI2026".into()),
            out: p("cli.csr"),
        })
        .unwrap();
        let text = openssl(d, &["req", "-in", "cli.csr", "-verify", "-noout"]);
        assert!(text.contains("self-signature verify OK"), "{text}");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "cli.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-set_serial",
                "99",
                "-days",
                "5",
                "-out",
                "cli.pem",
            ],
        );
        run(TokenCommand::ImportCert {
            token: token.clone(),
            cert: p("cli.pem"),
        })
        .unwrap();
        std::fs::write(p("return.xml"), b"<return/>").unwrap();
        run(TokenCommand::Sign {
            token: token.clone(),
            pin: Some("cli2026".into()),
            input: p("return.xml"),
            out: p("return.p7s"),
            attached: false,
            timestamp: None,
        })
        .unwrap();
        openssl(
            d,
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "return.p7s",
                "-content",
                "return.xml",
                "-CAfile",
                "root.pem",
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        );
        std::fs::write(p("ch.bin"), b"challenge").unwrap();
        let login = |pin: &str| {
            run(TokenCommand::Login {
                token: token.clone(),
                pin: Some(pin.into()),
                challenge: p("ch.bin"),
                out: p("ch.sig"),
                pem: false,
            })
        };
        for _ in 0..3 {
            assert!(matches!(login("0000"), Err(Error::WrongPin { .. })));
        }
        assert!(matches!(login("1357"), Err(Error::Locked { .. })));
        run(TokenCommand::Reset {
            token: token.clone(),
            kind: Hierarchy::Auth,
            other_pin: Some("cli2026".into()),
            new_pin: Some("2468".into()),
        })
        .unwrap();
        login("2468").unwrap();
        // --pem needs the authentication certificate on the token (tests/portal_e2e.rs logs
        // in with one).
        assert!(matches!(
            run(TokenCommand::Login {
                token: token.clone(),
                pin: Some("2468".into()),
                challenge: p("ch.bin"),
                out: p("ch.pem"),
                pem: true,
            }),
            Err(Error::NoCertificate {
                kind: Hierarchy::Auth
            })
        ));
        for json in [false, true] {
            run(TokenCommand::Show {
                token: token.clone(),
                json,
            })
            .unwrap();
        }
        assert!(matches!(
            run(TokenCommand::Show {
                token: p("missing.json"),
                json: true,
            }),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn kind_is_signing_or_auth() {
        assert_eq!(parse_kind("auth"), Ok(Hierarchy::Auth));
        assert_eq!(
            parse_kind("operator"),
            Err("expected `signing` or `auth`, not `operator`".into())
        );
    }
}
