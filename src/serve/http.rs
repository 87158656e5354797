//! The server's listeners: the public HTTP endpoint (CRLs and OCSP) and the local admin socket.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ca::Authority;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};

use crate::{Error, Result};

/// Longest admin request line accepted (a CSR in base64 is a few KB).
const MAX_ADMIN_LINE: usize = 1 << 20;

/// Binds `DIR/admin.sock`, only for the owner (the data directory is 0700 as well). A stale
/// socket from a killed server is replaced; one that answers means another server runs.
pub fn admin_listener(data: &Path) -> Result<UnixListener> {
    let path = ca::api::socket_path(data);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(Error::Serve(format!(
                "another server answers on {}",
                path.display()
            )));
        }
        std::fs::remove_file(&path).map_err(|e| {
            Error::Serve(format!("remove the stale socket {}: {e}", path.display()))
        })?;
    }
    let l = UnixListener::bind(&path).map_err(|e| {
        Error::Serve(format!(
            "cannot create the admin socket {}: {e}",
            path.display()
        ))
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Serve(format!("chmod {}: {e}", path.display())))?;
    Ok(l)
}

/// Serves admin requests: one JSON request per line, one JSON answer per line, each run by
/// the same [`Authority::handle_as`] (or `platform::api::handle_line`) the CLI uses in-process,
/// as `root-on-host` with the peer's uid.
///
/// Connections are admitted through `gate` (a cap on open connections; the socket is the
/// owner's only, so there is no per-client cap), and one that sends no request for the gate's
/// idle time is closed; a request being carried out is never cut short.
///
/// `{"op":"crl-status"}` is answered from the server's CRL publisher and directory (`crl`):
/// `jpki crl status` while the server runs ([`super::crl_status`]).
pub async fn serve_admin(
    listener: UnixListener,
    authority: Arc<Authority>,
    gate: Arc<conn_guard::Gate>,
    crl: Option<(Arc<crl_publisher::Publisher>, std::path::PathBuf)>,
    shutdown: impl Future<Output = ()>,
) {
    let idle = gate.limits().idle;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(ticket) = gate.admit(None) else {
            tracing::warn!("admin connection over the cap closed");
            continue;
        };
        let authority = Arc::clone(&authority);
        let crl = crl.clone();
        // Who is at the other end: the socket is mode 0600, so the data directory's owner
        // (root-on-host, recorded with the peer's uid as the kernel reports it).
        let actor = match stream.peer_cred() {
            Ok(cred) => ca::officers::Actor::RootOnHost { uid: cred.uid() },
            Err(_) => ca::officers::Actor::root_on_host(),
        };
        tokio::spawn(async move {
            let _ticket = ticket;
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read.take(MAX_ADMIN_LINE as u64 * 64));
            let mut line = String::new();
            loop {
                line.clear();
                match tokio::time::timeout(idle, lines.read_line(&mut line)).await {
                    Err(_) => return, // silent for the idle time: closed
                    Ok(read) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) if n > MAX_ADMIN_LINE => {
                            let _ = write
                                .write_all(
                                    ca::api::reply_line(Err(ca::Error::Invalid(
                                        "admin request too long".into(),
                                    )))
                                    .as_bytes(),
                                )
                                .await;
                            return;
                        }
                        Ok(_) => {}
                    },
                }
                let a = Arc::clone(&authority);
                let actor = actor.clone();
                let crl = crl.clone();
                let request = std::mem::take(&mut line);
                // CA operations first, then the platform operator's (`pf-…`): the same code the
                // CLI runs in-process.
                let answer = tokio::task::spawn_blocking(move || {
                    // The server's own requests (its CRL publisher's state) first.
                    if let (Some((publisher, dir)), Ok(v)) =
                        (&crl, serde_json::from_str::<serde_json::Value>(&request))
                    {
                        if v["op"] == super::crl_status::OP {
                            let now = a.clock().now();
                            return ca::api::reply_line(
                                super::crl_status::status(&a, publisher, dir, true, now)
                                    .map_err(|e| ca::Error::Store(e.to_string())),
                            );
                        }
                    }
                    match serde_json::from_str::<ca::api::Request>(&request) {
                        Ok(req) => ca::api::reply_line(a.handle_as(&actor, req)),
                        Err(e) => ca::officers::acting_as(&actor, || {
                            platform::api::handle_line(&a, &request)
                        })
                        .unwrap_or_else(|| {
                            ca::api::reply_line(Err(ca::Error::Invalid(format!(
                                "not an admin request: {e}"
                            ))))
                        }),
                    }
                })
                .await;
                let reply = match answer {
                    Ok(r) => r,
                    Err(e) => {
                        ca::api::reply_line(Err(ca::Error::Invalid(format!("request failed: {e}"))))
                    }
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

use tokio::io::AsyncReadExt as _;

/// Serves CRLs (`/crl/...`) and OCSP (`/ocsp`, `/healthz`, `/metrics`) on one listener, with
/// the OCSP responder's server loop.
pub async fn serve_public(
    listener: TcpListener,
    gate: Arc<conn_guard::Gate>,
    publisher: Arc<crl_publisher::Publisher>,
    responder: ocsp_responder::Responder,
    shutdown: impl Future<Output = ()>,
) {
    serve_public_with(listener, gate, publisher, responder, None, shutdown).await
}

/// [`serve_public`], with `/readyz` answered from `health` (`jpki serve`).
pub async fn serve_public_with(
    listener: TcpListener,
    gate: Arc<conn_guard::Gate>,
    publisher: Arc<crl_publisher::Publisher>,
    responder: ocsp_responder::Responder,
    health: Option<Arc<super::health::Health>>,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |req: hyper::Request<hyper::body::Incoming>| {
        let (publisher, responder) = (Arc::clone(&publisher), responder.clone());
        let health = health.clone();
        async move {
            match health {
                Some(h) if req.uri().path() == "/readyz" && req.method() == hyper::Method::GET => {
                    readyz(h).await
                }
                // Listening starts before the first CRL publication pass: a CRL request
                // waits for it (OCSP does not).
                Some(h) if req.uri().path().starts_with("/crl/") => {
                    h.first_crls().await;
                    route(&publisher, &responder, req).await
                }
                _ => route(&publisher, &responder, req).await,
            }
        }
    };
    ocsp_responder::http::serve_guarded(
        listener,
        None,
        Duration::from_secs(10),
        gate,
        shutdown,
        handler,
    )
    .await;
}

/// `/crl/...` to the CRL publisher, the rest to the OCSP responder: the public listener's
/// routing, also the platform-operator API's fallback.
pub async fn route<B>(
    publisher: &crl_publisher::Publisher,
    responder: &ocsp_responder::Responder,
    req: hyper::Request<B>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.uri().path().starts_with("/crl/") {
        publisher.handle(req).await
    } else {
        responder.handle(req).await
    }
}

/// `/readyz`: 200 and `{"ready":true,…}` when every check passes, else 503 with the reasons
/// (see [`super::health`]).
async fn readyz(
    health: Arc<super::health::Health>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let answer = tokio::task::spawn_blocking(move || health.readiness()).await;
    let (status, body) = match answer {
        Ok(r) => (
            if r.ready {
                hyper::StatusCode::OK
            } else {
                hyper::StatusCode::SERVICE_UNAVAILABLE
            },
            serde_json::to_string(&r).unwrap_or_else(|_| "{\"ready\":false}".into()),
        ),
        Err(e) => (
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ready": false, "checks": [], "error": e.to_string() }).to_string(),
        ),
    };
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}
