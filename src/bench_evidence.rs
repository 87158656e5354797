//! `jpki bench evidence`: how many signatures per second are judged as of their time-stamp
//! from an evidence file, beside the OpenSSL CLI checking the same signature and its
//! time-stamp token (`openssl cms -verify` + `openssl ts -verify`), in the same run.
//!
//! Three figures, each the median of `rounds` measurements of `count` verifications, the
//! sides alternating within a round so that a drifting host load hits all alike:
//! * in process: `relying_party::evidence::recheck` (digest line, CMS signature, time-stamp
//!   token and TSA chain, signer chain as of genTime, the kept OCSP answer or CRL);
//! * one `jpki verify --evidence` process per verification;
//! * one `openssl cms -verify` plus one `openssl ts -verify` process per verification. This
//!   peer does less: OpenSSL cannot judge revocation as of a past time (`-attime` with a CRL
//!   issued after it is "not yet valid"), so it checks no revocation at all.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Error, Result};

fn err(what: &str) -> impl FnOnce(String) -> Error + '_ {
    move |e| Error::Serve(format!("bench evidence: {what}: {e}"))
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| err("read")(format!("{}: {e}", p.display())))
}

fn run_ok(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| err("spawn")(e.to_string()))?;
    if st.success() {
        Ok(())
    } else {
        Err(err("verification")(format!("{cmd:?} failed")))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    evidence: &Path,
    sig: &Path,
    content: &Path,
    trust: &Path,
    tsa_root: &Path,
    count: usize,
    rounds: usize,
) -> Result<()> {
    let file = read(evidence)?;
    let env =
        relying_party::cms::parse(&read(sig)?).map_err(|e| err("signature")(e.to_string()))?;
    let token = env
        .timestamp_tokens
        .first()
        .ok_or_else(|| err("signature")("no signature time-stamp".into()))?;
    let dir = tempfile::tempdir().map_err(|e| err("temporary directory")(e.to_string()))?;
    let token_path = dir.path().join("token.der");
    std::fs::write(&token_path, token).map_err(|e| err("write")(e.to_string()))?;
    let imprint = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        env.signature_value(),
    ));
    let exe = std::env::current_exe().map_err(|e| err("own path")(e.to_string()))?;
    let openssl_once = || -> Result<()> {
        run_ok(
            Command::new("openssl")
                .args([
                    "cms",
                    "-verify",
                    "-binary",
                    "-inform",
                    "DER",
                    "-purpose",
                    "any",
                    "-out",
                    "/dev/null",
                    "-in",
                ])
                .arg(sig)
                .arg("-content")
                .arg(content)
                .arg("-CAfile")
                .arg(trust),
        )?;
        run_ok(
            Command::new("openssl")
                .args(["ts", "-verify", "-token_in", "-in"])
                .arg(&token_path)
                .args(["-digest", &imprint, "-CAfile"])
                .arg(tsa_root),
        )
    };
    let jpki_once = || -> Result<()> {
        run_ok(
            Command::new(&exe)
                .args(["verify", "--evidence"])
                .arg(evidence)
                .env_remove("JPKI_TEST_NOW"),
        )
    };
    // Everything must pass once before it is timed.
    relying_party::evidence::recheck(&file, None)?;
    jpki_once()?;
    openssl_once()?;
    let (mut inproc, mut procs, mut peer) = (Vec::new(), Vec::new(), Vec::new());
    let rate = |f: &mut dyn FnMut() -> Result<()>, n: usize| -> Result<f64> {
        let t0 = Instant::now();
        for _ in 0..n {
            f()?;
        }
        Ok(n as f64 / t0.elapsed().as_secs_f64())
    };
    for round in 0..rounds {
        inproc.push(rate(
            &mut || {
                relying_party::evidence::recheck(&file, None)
                    .map(|_| ())
                    .map_err(Into::into)
            },
            count,
        )?);
        let n = count.div_ceil(4).max(1);
        procs.push(rate(&mut || jpki_once(), n)?);
        peer.push(rate(&mut || openssl_once(), n)?);
        eprintln!(
            "round {}: in process {:.0}/s, jpki verify --evidence {:.1}/s, openssl cms+ts {:.1}/s",
            round + 1,
            inproc[round],
            procs[round],
            peer[round]
        );
    }
    println!(
        "evidence re-checks per second (median of {rounds}):\n  in process (relying_party::evidence::recheck): {:.0}\n  jpki verify --evidence, one process each:       {:.1}\n  openssl cms -verify + openssl ts -verify:       {:.1} (no revocation check)",
        median(inproc),
        median(procs),
        median(peer)
    );
    Ok(())
}
