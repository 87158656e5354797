//! Benchmark servers (see BENCHMARKS.md; not a test).
//!
//! usage:
//!   bench_server ocsp DIR ADDR [N]  — test PKI in DIR, N (default 1,000,000) issued serials
//!                                     0x000001..=N in the signing hierarchy; writes the request
//!                                     files and an `openssl ocsp -index` database over the same
//!                                     serials, then serves OCSP at http://ADDR/ocsp
//!   bench_server micro DIR          — in-process cost of a cached answer, no HTTP
//!   bench_server ceiling ADDR       — bare hyper (same server settings) answering every request
//!                                     with a fixed 1.5 KB body: the HTTP ceiling
//!
//! Files written by `ocsp`: signing-root.pem, signing-signer.pem, signing-signer.key,
//! index.txt, req-cached.der (SHA-1 CertID of serial 0x1001, no nonce), req-nonce.der (same
//! CertID, 16-byte nonce).

#[path = "../tests/support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use der07::asn1::{Null, OctetString};
use der07::{Decode, Encode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ocsp_responder::{HashAlg, Responder, Settings, SystemClock};
use policies::{Hierarchy, Policy};
use spki07::AlgorithmIdentifierOwned;
use x509_cert_02::ext::Extension;
use x509_cert_02::serial_number::SerialNumber;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn request(root_der: &[u8], serial: &[u8], nonce: Option<&[u8]>) -> Res<Vec<u8>> {
    let root = x509_cert_02::Certificate::from_der(root_der)?;
    let sha1 = |d: &[u8]| {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, d)
            .as_ref()
            .to_vec()
    };
    let id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: HashAlg::Sha1.oid(),
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&root.tbs_certificate.subject.to_der()?))?,
        issuer_key_hash: OctetString::new(sha1(
            root.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        ))?,
        serial_number: SerialNumber::new(serial)?,
    };
    let exts = match nonce {
        Some(n) => Some(vec![Extension {
            extn_id: ocsp_responder::request::NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n)?.to_der()?)?,
        }]),
        None => None,
    };
    Ok(OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id,
                single_request_extensions: None,
            }],
            request_extensions: exts,
        },
        optional_signature: None,
    }
    .to_der()?)
}

/// Minimal big-endian INTEGER content octets of a positive number.
fn serial_bytes(n: u32) -> Vec<u8> {
    let b = n.to_be_bytes();
    let i = b.iter().position(|x| *x != 0).unwrap_or(3);
    let mut v = b[i..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    v
}

async fn ocsp(dir: std::path::PathBuf, addr: String, n: u32) -> Res<()> {
    std::fs::create_dir_all(&dir)?;
    let pki = support::pki(&dir);
    std::fs::write(dir.join("signing-signer.key"), &pki.signer_keys["signing"])?;
    let t = std::time::Instant::now();
    let mut index = std::io::BufWriter::new(std::fs::File::create(dir.join("index.txt"))?);
    for i in 1..=n {
        let s = serial_bytes(i);
        pki.source.issue(Hierarchy::Signing, &s);
        let hex: String = s.iter().map(|b| format!("{b:02X}")).collect();
        writeln!(index, "V\t351231235959Z\t\t{hex}\tunknown\t/CN=leaf {i}")?;
    }
    index.flush()?;
    std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")?;
    eprintln!("{n} serials issued and indexed in {:?}", t.elapsed());
    let serial = &pki.leaf("good").serial;
    std::fs::write(
        dir.join("req-cached.der"),
        request(&pki.roots["signing"], serial, None)?,
    )?;
    std::fs::write(
        dir.join("req-nonce.der"),
        request(&pki.roots["signing"], serial, Some(&[7; 16]))?,
    )?;
    let responder = Responder::new(
        Settings::from_policy(&Policy::default_policy()),
        pki.issuers.clone(),
        pki.source.clone(),
        Arc::new(SystemClock),
    )?;
    // Revocation visibility: cache an answer, revoke in the store, refresh, ask again.
    let late = pki.leaf("late").serial.clone();
    let late_req = request(&pki.roots["signing"], &late, None)?;
    let before = responder.answer(&late_req).await;
    let t = std::time::Instant::now();
    let now = time::OffsetDateTime::now_utc();
    pki.source.revoke(
        Hierarchy::Signing,
        &late,
        now,
        policies::Reason::KeyCompromise,
    );
    let resigned = responder.refresh(Hierarchy::Signing, &late, now)?;
    let refresh_time = t.elapsed();
    let after = responder.answer(&late_req).await;
    let revoked = ocsp_responder_status(&after.der)?;
    eprintln!(
        "revocation: first answer {:?} ({:?}); refresh re-signed {resigned} answer(s) in {refresh_time:?}; next answer {:?} is {revoked}",
        before.cause, ocsp_responder_status(&before.der)?, after.cause
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("serving http://{}/ocsp", listener.local_addr()?);
    responder
        .serve(listener, None, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    eprintln!("{}", responder.metrics().render(responder.cached()));
    Ok(())
}

/// The certStatus of the single response in a DER OCSPResponse, as text.
fn ocsp_responder_status(der: &[u8]) -> Res<&'static str> {
    let r = x509_ocsp::OcspResponse::from_der(der)?;
    let bytes = r.response_bytes.ok_or("no responseBytes")?;
    let b = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes())?;
    Ok(
        match b.tbs_response_data.responses.first().map(|s| s.cert_status) {
            Some(x509_ocsp::CertStatus::Good(_)) => "good",
            Some(x509_ocsp::CertStatus::Revoked(_)) => "revoked",
            Some(x509_ocsp::CertStatus::Unknown(_)) => "unknown",
            None => "missing",
        },
    )
}

/// In-process cost of one cached answer (parse, issuer match, cache lookup), no HTTP.
async fn micro(dir: std::path::PathBuf) -> Res<()> {
    std::fs::create_dir_all(&dir)?;
    let pki = support::pki(&dir);
    let responder = Responder::new(
        Settings::from_policy(&Policy::default_policy()),
        pki.issuers.clone(),
        pki.source.clone(),
        Arc::new(SystemClock),
    )?;
    let req = request(&pki.roots["signing"], &pki.leaf("good").serial, None)?;
    responder.answer(&req).await;
    let n = 1_000_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(responder.answer(std::hint::black_box(&req)).await);
    }
    eprintln!("cached answer() in-process: {:?} per call", t.elapsed() / n);
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(ocsp_responder::request::parse(
            std::hint::black_box(&req),
            64,
        )?);
    }
    eprintln!("request::parse alone: {:?} per call", t.elapsed() / n);
    Ok(())
}

async fn ceiling(addr: String) -> Res<()> {
    let body = Bytes::from(vec![b'x'; 1536]);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("ceiling on http://{}/", listener.local_addr()?);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10));
    let builder = Arc::new(builder);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(body))) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ocsp", dir, addr, rest @ ..] => {
            let n = rest
                .first()
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(1_000_000);
            ocsp(dir.into(), addr.to_string(), n).await
        }
        ["ceiling", addr] => ceiling(addr.to_string()).await,
        ["micro", dir] => micro(dir.into()).await,
        _ => Err("usage: bench_server ocsp DIR ADDR [N] | bench_server ceiling ADDR".into()),
    }
}
