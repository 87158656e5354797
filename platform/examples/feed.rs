//! The change feed's cost beside what banks do today (a benchmark, not a test; figures in
//! `BENCHMARKS.md`).
//!
//! usage: cargo run --release -p platform --example feed -- [HOLDERS] [NOISE] [ROUNDS]
//! (defaults 1000, 20000, 5)
//!
//! Builds a store with HOLDERS residents, each with a signing certificate and a consent for
//! one SP, and NOISE other residents (each registration is an audit record the feed must read
//! past), then moves a tenth of the consenting holders (their signing certificates are revoked
//! with affiliationChanged) and holds another tenth's. Against the real server over mutual TLS
//! (HTTP/1.1, one connection), ROUNDS times each:
//!
//! * **feed walk** — `GET /v1/changes` from the beginning to the end, 1,000 changes a page;
//! * **feed poll** — one `GET /v1/changes` from the end (nothing new: what a bank polls);
//! * **peer: validity re-post** — every consenting holder's certificate POSTed to
//!   `/v1/validity` in batches of 1,000, what a bank does today to learn the same. As issuer +
//!   serial: 1,000 PEM certificates (~1.6 MB) are over the API's 256 KiB body limit.
//!
//! Prints the median of each. Client and server share this machine's cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ca::authority::{Event, NewResident};
use ca::Authority;
use http::{Method, StatusCode};
use platform::client::{self, Client};
use platform::registry::{Consent, Scope};
use platform::{Api, Request};
use policies::{Hierarchy, Sex};
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn resident(i: usize) -> NewResident {
    NewResident {
        name: format!("試験　太郎{i}"),
        birth: time::macros::date!(1980 - 01 - 01),
        sex: Sex::Male,
        address: format!("東京都千代田区{i}"),
        prefecture: "Tokyo".into(),
        municipality: "Chiyoda-ku".into(),
        card_expiry: time::macros::date!(2035 - 01 - 01),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn get(c: &mut Client, path: &str) -> Res<Value> {
    let (s, v) = c.call(Method::GET, path, &json!({})).await?;
    if s != StatusCode::OK {
        return Err(format!("{path}: {s} {v}").into());
    }
    Ok(v)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| -> Res<usize> {
        Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(d))
    };
    let (n_holders, noise, rounds) = (arg(1, 1000)?, arg(2, 20_000)?, arg(3, 5)?.max(1));

    let tmp = tempfile::tempdir()?;
    let a = Arc::new(Authority::init(
        &tmp.path().join("data"),
        policies::policy::DEFAULT_POLICY,
        b"bench passphrase",
        Arc::new(ca::clock::SystemClock),
    )?);
    let pf = platform::handle(
        &a,
        Request::OperatorAdd {
            name: "Bench PF".into(),
            scopes: vec![Scope::Validity, Scope::FourAttributes],
            csr_base64: None,
        },
    )?;
    let sp = platform::handle(
        &a,
        Request::SpAdd {
            pf: "Bench PF".into(),
            name: "Bench Bank".into(),
            scopes: vec![Scope::Validity, Scope::FourAttributes],
        },
    )?["id"]
        .as_str()
        .ok_or("no sp id")?
        .to_owned();

    eprintln!("making {n_holders} holders with a signing certificate and a consent ...");
    let t = Instant::now();
    let now = a.clock().now();
    let mut holders = Vec::new();
    let mut refs = Vec::new();
    for i in 0..n_holders {
        let id = a.resident_add(&resident(i))?;
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
        let issued = a.issue(&id, Hierarchy::Signing, csr.der())?;
        // The consent as `POST /v1/consents` records it once the signature is verified (the
        // API path is measured by the `load` example; here only the feed is).
        platform::registry::consent_add(
            &a,
            &Consent {
                id: platform::registry::new_consent_id(&a)?,
                holder: id.clone(),
                sp: sp.clone(),
                scope: Scope::FourAttributes,
                expires: now + time::Duration::days(365),
                nonce: format!("bench-{i}"),
                granted_at: now,
                withdrawn_at: None,
                withdrawn_by: None,
                signer_serial: issued.serial.clone(),
                statement_sha256: "00".repeat(32),
            },
        )?;
        refs.push(json!({"issuer": "signing", "serial": issued.serial}));
        holders.push((id, issued.serial));
    }
    eprintln!("  {:.1} s", t.elapsed().as_secs_f64());

    eprintln!("registering {noise} other residents (audit records the feed reads past) ...");
    let t = Instant::now();
    let threads = 16;
    std::thread::scope(|s| -> Res<()> {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let a = &a;
                s.spawn(move || -> Result<(), ca::Error> {
                    for i in (k..noise).step_by(threads) {
                        a.resident_add(&resident(n_holders + i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "noise thread panicked")??;
        }
        Ok(())
    })?;
    eprintln!("  {:.1} s", t.elapsed().as_secs_f64());

    let tenth = (n_holders / 10).max(1);
    for (id, _) in holders.iter().take(tenth) {
        a.event(
            id,
            &Event::Move {
                address: "大阪府大阪市北区中之島一丁目3番20号".into(),
                prefecture: Some("Osaka".into()),
                municipality: Some("Osaka-shi".into()),
            },
        )?;
    }
    for (_, serial) in holders.iter().skip(tenth).take(tenth) {
        a.hold(
            &ca::authority::parse_serial(serial)?,
            Some(Hierarchy::Signing),
        )?;
    }
    let records = a.storage().audit_head()?.map_or(0, |h| h.seq + 1);
    eprintln!("store: {records} audit records; {tenth} moves and {tenth} holds to find");

    let (chain, key) = platform::server_identity(&a, &["127.0.0.1".into()])?;
    let api = Arc::new(Api::new(a.clone(), chain, key, None)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = api
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await;
    });
    let cfg = client::tls_config(
        &ca::records::pem(&platform::operator_ca::root(&a)?),
        pf["cert_pem"].as_str().ok_or("no cert")?,
        pf["key_pem"].as_str().ok_or("no key")?,
    )?;
    let mut c = Client::connect(addr, "127.0.0.1", cfg).await?;

    let (mut walks, mut polls, mut reposts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pages, mut found) = (0usize, 0usize);
    for _ in 0..rounds {
        // Feed walk from the beginning.
        let t = Instant::now();
        let (mut since, mut n_pages, mut n_changes) = (String::from("0"), 0, 0);
        loop {
            let v = get(
                &mut c,
                &format!("/v1/changes?sp={sp}&since={since}&limit=1000"),
            )
            .await?;
            n_pages += 1;
            n_changes += v["changes"].as_array().map_or(0, Vec::len);
            since = v["next"].as_str().ok_or("no next")?.to_owned();
            if v["more"] != true {
                break;
            }
        }
        walks.push(t.elapsed());
        (pages, found) = (n_pages, n_changes);
        // A poll from the end.
        let t = Instant::now();
        get(&mut c, &format!("/v1/changes?sp={sp}&since={since}")).await?;
        polls.push(t.elapsed());
        // The peer: every certificate re-posted, 1,000 a batch.
        let t = Instant::now();
        for batch in refs.chunks(1000) {
            let (s, v) = c
                .post("/v1/validity", &json!({"sp": sp, "certificates": batch}))
                .await?;
            if s != StatusCode::OK {
                return Err(format!("validity: {s} {v}").into());
            }
        }
        reposts.push(t.elapsed());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (walk, poll, repost) = (median(walks), median(polls), median(reposts));
    let batches = n_holders.div_ceil(1000);
    println!(
        "store: {records} audit records, {n_holders} consenting holders, {found} changes found"
    );
    println!(
        "feed walk from the start: {pages} pages in {:.1} ms ({:.0} pages/s; {:.0} audit records/s read)",
        ms(walk),
        pages as f64 / walk.as_secs_f64(),
        records as f64 / walk.as_secs_f64()
    );
    println!("feed poll, nothing new: {:.2} ms", ms(poll));
    println!(
        "peer, validity re-post of {n_holders} certificates in {batches} batch(es) of 1,000: {:.1} ms ({:.1} batches/s)",
        ms(repost),
        batches as f64 / repost.as_secs_f64()
    );
    println!("median of {rounds} rounds");
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
