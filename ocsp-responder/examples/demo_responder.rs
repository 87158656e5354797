//! A responder over the test PKI, for the external judges.
//!
//! usage: demo_responder DIR [ADDR]   (ADDR defaults to 127.0.0.1:8089)
//!
//! Writes the test PKI into DIR (signing-root.pem, good.pem, revoked.pem, held.pem,
//! unissued.pem, auth-root.pem, auth-good.pem, foreign-root.pem, foreign.pem), revokes
//! `revoked` (keyCompromise), and serves OCSP at http://ADDR/ocsp until Ctrl-C.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use ocsp_responder::{Responder, Settings, SystemClock};
use policies::{Hierarchy, Policy, Reason};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: demo_responder DIR [ADDR]")?);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8089".into());
    std::fs::create_dir_all(&dir)?;
    let pki = support::pki(&dir);
    let now = time::OffsetDateTime::now_utc();
    pki.source.revoke(
        Hierarchy::Signing,
        &pki.leaf("revoked").serial,
        now,
        Reason::KeyCompromise,
    );
    let responder = Responder::new(
        Settings::from_policy(&Policy::default_policy()),
        pki.issuers.clone(),
        pki.source.clone(),
        Arc::new(SystemClock),
    )?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "serving http://{}/ocsp for the PKI in {}",
        listener.local_addr()?,
        dir.display()
    );
    let r = responder.clone();
    let resigner = tokio::spawn(async move { r.run_resigner(std::future::pending()).await });
    responder
        .serve(listener, None, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    resigner.abort();
    Ok(())
}
