//! Load generator for the PF API (a benchmark, not a test; figures in `BENCHMARKS.md`).
//!
//! usage: cargo run --release -p platform --example load -- [SECONDS] [CONCURRENCY] [HOLDERS]
//! (defaults 10, 32, 64)
//!
//! Builds a data directory in a temp dir (operator CA, one PF, one SP with every scope,
//! HOLDERS residents with signing and authentication certificates and a consent each, signed
//! with `openssl cms`), starts the real server on 127.0.0.1:0 with an OCSP responder
//! (ocsp-responder, over the authority's store) as its `/ocsp` fallback, and drives it with
//! CONCURRENCY keep-alive mutual-TLS connections (HTTP/1.1), one phase after another:
//! single-certificate validity checks (PEM, then issuer+serial), four-attribute queries, a
//! 100-certificate validity batch, and a cached OCSP POST through the same listener. Client
//! and server share this machine's cores.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use ca::authority::NewResident;
use ca::records::State;
use ca::Authority;
use http::Method;
use http_body_util::BodyExt;
use platform::client::{self, Client};
use platform::registry::Scope;
use platform::{Api, Request};
use policies::{Hierarchy, Sex};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// OCSP status straight from the authority's store.
struct StoreSource(Arc<Authority>);

impl ocsp_responder::StatusSource for StoreSource {
    fn status(
        &self,
        h: Hierarchy,
        serial: &[u8],
    ) -> Result<ocsp_responder::Status, ocsp_responder::SourceError> {
        let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
        let err = |e: ca::Error| ocsp_responder::SourceError(e.to_string());
        match self.0.storage().status(h, &serial[start..]).map_err(err)? {
            None => Ok(ocsp_responder::Status::Unknown),
            Some(s) => Ok(match (s.state, s.since, s.reason) {
                (State::Good, _, _) => ocsp_responder::Status::Good,
                (_, Some(at), Some(reason)) => ocsp_responder::Status::Revoked { at, reason },
                _ => return Err(ocsp_responder::SourceError("revoked without time".into())),
            }),
        }
    }
}

/// User + system CPU seconds from a `/proc/.../stat` text, and the thread or process name.
fn stat_cpu(stat: &str) -> (String, f64) {
    let name = stat
        .split_once('(')
        .and_then(|(_, r)| r.rsplit_once(')'))
        .map(|(n, _)| n.to_owned())
        .unwrap_or_default();
    // Fields after the parenthesised name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (name, (tick(11) + tick(12)) / 100.0)
}

/// CPU seconds of the whole process (client and server).
fn cpu_seconds() -> f64 {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()).1
}

/// CPU seconds of the server's threads: its runtime (`pf-server`, workers and blocking pool)
/// and the access-log writer. Threads that already ended are not counted.
fn server_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|s| stat_cpu(&s))
        .filter(|(n, _)| n.starts_with("pf-server") || n.starts_with("pf-access-log"))
        .map(|(_, c)| c)
        .sum()
}

fn openssl(args: &[&str]) -> Res<()> {
    let out = std::process::Command::new("openssl").args(args).output()?;
    if !out.status.success() {
        return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

struct Holder {
    sign_pem: String,
    sign_serial: String,
}

#[derive(Clone)]
struct Phase {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    bodies: Arc<Vec<Vec<u8>>>,
    items_per_request: u64,
}

async fn run_phase(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    phase: Phase,
    secs: u64,
    conc: usize,
) -> Res<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..conc {
        let mut c = Client::connect(addr, "127.0.0.1", cfg.clone()).await?;
        let (stop, done, failed, phase) =
            (stop.clone(), done.clone(), failed.clone(), phase.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut k = i;
            while !stop.load(Ordering::Relaxed) {
                let body = phase.bodies[k % phase.bodies.len()].clone();
                k += conc;
                let t = Instant::now();
                match c
                    .send_typed(Method::POST, phase.path, phase.content_type, body)
                    .await
                {
                    Ok((s, _)) if s.is_success() => {
                        done.fetch_add(1, Ordering::Relaxed);
                        lat.push(t.elapsed());
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let srv0 = server_cpu_seconds();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let srv = server_cpu_seconds() - srv0;
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let n = done.load(Ordering::Relaxed);
    println!(
        "{:<28} {:>7.0} req/s {:>7.0} certs/s  p50 {:>6.2} ms  p99 {:>6.2} ms  CPU {:>5.0} us/req (server {:>4.0})  ok {}  failed {}",
        phase.name,
        n as f64 / elapsed,
        (n * phase.items_per_request) as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        cpu * 1e6 / n.max(1) as f64,
        srv * 1e6 / n.max(1) as f64,
        n,
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// The access-log writer without HTTP: how many durable records per second it sustains.
async fn recorder_alone(a: Arc<Authority>, secs: u64, conc: usize) -> Res<()> {
    let rec = platform::access::Recorder::start(a.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let now = a.clock().now();
    let mut tasks = Vec::new();
    for i in 0..conc {
        let (rec, stop, done) = (rec.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let e = platform::registry::Access {
                    at: now,
                    holder: format!("RBENCH{i}"),
                    pf: "PF".into(),
                    pf_name: "Bench PF".into(),
                    sp: "SP".into(),
                    sp_name: "Bench Bank".into(),
                    operation: "validity".into(),
                    outcome: "ok".into(),
                };
                if rec.record(vec![e], Vec::new()).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "{:<28} {:>7.0} rec/s                  CPU {:>5.0} us/rec (writer and callers)",
        "access recorder alone",
        n as f64 / start.elapsed().as_secs_f64(),
        (cpu_seconds() - cpu0) * 1e6 / n.max(1) as f64
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let conc: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(32);
    let n_holders: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(64);

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
            scopes: vec![Scope::Validity, Scope::FourAttributes, Scope::Successor],
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

    eprintln!("making {n_holders} holders with certificates and consents ...");
    let t = Instant::now();
    let mut holders = Vec::new();
    let expires = (a.clock().now() + time::Duration::days(365)).format(&Rfc3339)?;
    let mut consents = Vec::new();
    for i in 0..n_holders {
        let id = a.resident_add(&NewResident {
            name: format!("試験　太郎{i}"),
            birth: time::macros::date!(1980 - 01 - 01),
            sex: Sex::Male,
            address: format!("東京都千代田区{i}"),
            prefecture: "Tokyo".into(),
            municipality: "Chiyoda-ku".into(),
            card_expiry: time::macros::date!(2035 - 01 - 01),
        })?;
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
        let issued = a.issue(&id, Hierarchy::Signing, csr.der())?;
        let (cert_path, key_path, stmt_path, cms_path) = (
            tmp.path().join("s.pem"),
            tmp.path().join("s.key"),
            tmp.path().join("stmt.json"),
            tmp.path().join("stmt.cms"),
        );
        std::fs::write(&cert_path, &issued.pem)?;
        std::fs::write(&key_path, key.serialize_pem())?;
        std::fs::write(
            &stmt_path,
            json!({"sp": sp, "scope": "four-attributes", "expires": expires, "nonce": format!("bench-{i}")}).to_string(),
        )?;
        let p = |x: &std::path::Path| x.to_str().unwrap_or_default().to_owned();
        openssl(&[
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-nodetach",
            "-outform",
            "DER",
            "-signer",
            &p(&cert_path),
            "-inkey",
            &p(&key_path),
            "-in",
            &p(&stmt_path),
            "-out",
            &p(&cms_path),
        ])?;
        consents.push(base64::engine::general_purpose::STANDARD.encode(std::fs::read(&cms_path)?));
        if i == 0 {
            let root = tmp.path().join("root.pem");
            std::fs::write(&root, ca::records::pem(&a.root(Hierarchy::Signing).der))?;
            openssl(&[
                "ocsp",
                "-issuer",
                &p(&root),
                "-cert",
                &p(&cert_path),
                "-no_nonce",
                "-reqout",
                &p(&tmp.path().join("ocsp.req")),
            ])?;
        }
        holders.push(Holder {
            sign_pem: issued.pem,
            sign_serial: issued.serial,
        });
    }
    eprintln!("  done in {:.1} s", t.elapsed().as_secs_f64());

    // The server, with the OCSP responder as fallback.
    let responder = Arc::new(ocsp_responder::Responder::new(
        ocsp_responder::Settings::from_policy(a.policy()),
        vec![ocsp_responder::Issuer {
            hierarchy: Hierarchy::Signing,
            root: a.root(Hierarchy::Signing).der.clone(),
            signer: a.ocsp_signer(Hierarchy::Signing)?,
        }],
        Arc::new(StoreSource(a.clone())),
        Arc::new(ocsp_responder::SystemClock),
    )?);
    let fallback: platform::Fallback = Arc::new(move |req| {
        let r = responder.clone();
        Box::pin(async move {
            let resp = r.handle(req.map(http_body_util::Full::new)).await;
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            http::Response::from_parts(parts, http_body_util::Full::new(bytes))
        })
    });
    let (chain, key) = platform::server_identity(&a, &["127.0.0.1".into()])?;
    let api = Arc::new(Api::new(a.clone(), chain, key, Some(fallback))?);
    // The server runs on a runtime of its own (threads `pf-server`), so that its CPU time
    // can be told apart from the client's.
    let srv = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pf-server")
        .enable_all()
        .build()?;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = srv.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        api.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
    });
    let cfg = client::tls_config(
        pf["root_pem"].as_str().ok_or("root")?,
        pf["cert_pem"].as_str().ok_or("cert")?,
        pf["key_pem"].as_str().ok_or("key")?,
    )?;

    // Consents through the API.
    let mut c = Client::connect(addr, "127.0.0.1", cfg.clone()).await?;
    for cms in &consents {
        let (s, v) = c
            .post("/v1/consents", &json!({"sp": sp, "cms": cms}))
            .await?;
        if s.as_u16() != 201 {
            return Err(format!("consent refused: {v}").into());
        }
    }

    let body = |v: Value| v.to_string().into_bytes();
    let single: Vec<Vec<u8>> = holders
        .iter()
        .map(|h| body(json!({"sp": sp, "certificates": [h.sign_pem]})))
        .collect();
    let by_serial: Vec<Vec<u8>> = holders
        .iter()
        .map(|h| {
            body(
                json!({"sp": sp, "certificates": [{"issuer": "signing", "serial": h.sign_serial}]}),
            )
        })
        .collect();
    let four: Vec<Vec<u8>> = holders
        .iter()
        .map(|h| body(json!({"sp": sp, "certificate": h.sign_pem})))
        .collect();
    let batch: Vec<Vec<u8>> = vec![body(json!({"sp": sp, "certificates":
        (0..100).map(|i| holders[i % holders.len()].sign_pem.clone()).collect::<Vec<_>>()}))];
    let ocsp_req = std::fs::read(tmp.path().join("ocsp.req"))?;
    println!(
        "PF API load: {secs} s per phase, {conc} keep-alive mTLS connections (HTTP/1.1), {} holders, {} CPUs",
        holders.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let phases = [
        Phase {
            name: "validity (1 PEM)",
            content_type: "application/json",
            path: "/v1/validity",
            bodies: Arc::new(single),
            items_per_request: 1,
        },
        Phase {
            name: "validity (issuer+serial)",
            content_type: "application/json",
            path: "/v1/validity",
            bodies: Arc::new(by_serial),
            items_per_request: 1,
        },
        Phase {
            name: "four-attributes",
            content_type: "application/json",
            path: "/v1/four-attributes",
            bodies: Arc::new(four),
            items_per_request: 1,
        },
        Phase {
            name: "validity (batch of 100 PEM)",
            content_type: "application/json",
            path: "/v1/validity",
            bodies: Arc::new(batch),
            items_per_request: 100,
        },
        Phase {
            name: "OCSP cached, same listener",
            content_type: "application/ocsp-request",
            path: "/ocsp",
            bodies: Arc::new(vec![ocsp_req]),
            items_per_request: 1,
        },
    ];
    for p in phases {
        run_phase(addr, cfg.clone(), p, secs, conc).await?;
    }
    recorder_alone(a.clone(), secs, conc).await?;
    let audit = a.audit_records()?;
    println!(
        "audit records: {} (pf-access {}), access-log entries: {}",
        audit.len(),
        audit.iter().filter(|r| r.action == "pf-access").count(),
        a.storage().access_count()?
    );
    let _ = stop.send(());
    server.await??;
    srv.shutdown_background();
    Ok(())
}
