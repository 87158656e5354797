//! The time-stamping authority's listener: RFC 3161 §3.4 over HTTP. `POST /tsa` (any path is
//! accepted, as `openssl ts` clients post to whatever URL they were given) with
//! `Content-Type: application/timestamp-query` and a DER TimeStampReq; the answer is a DER
//! TimeStampResp, `application/timestamp-reply`, status 200 — also for a refused request,
//! whose PKIStatusInfo names the problem.
//!
//! Its own listener rather than a route on the CRL/OCSP one: the TSA signs whatever imprint
//! anyone sends and writes an audit record per token, so an operator may bind it elsewhere
//! (an internal address for e-filing services only) and cap it separately from the public
//! revocation endpoints that relying parties everywhere must reach.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tokio::net::TcpListener;

/// Largest TimeStampReq accepted (a SHA-256 request is about 60 bytes).
const MAX_REQUEST: usize = 16 * 1024;

pub async fn serve(
    listener: TcpListener,
    gate: Arc<conn_guard::Gate>,
    tsa: Arc<tsa::server::Tsa>,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |req: hyper::Request<hyper::body::Incoming>| {
        let tsa = Arc::clone(&tsa);
        async move { handle(&tsa, req).await }
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

fn plain(status: http::StatusCode, text: &str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle<B>(
    tsa: &Arc<tsa::server::Tsa>,
    req: hyper::Request<B>,
) -> hyper::Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() != http::Method::POST {
        return plain(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "POST a DER TimeStampReq (application/timestamp-query)",
        );
    }
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.eq_ignore_ascii_case(tsa::token::QUERY_TYPE) {
        return plain(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/timestamp-query",
        );
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return plain(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body refused: {e}"),
            )
        }
    };
    let tsa = Arc::clone(tsa);
    // Signing and the audit record's fsync block: off the async workers.
    let answer = match tokio::task::spawn_blocking(move || tsa.respond(&body)).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "time-stamp task failed");
            return plain(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let mut r = hyper::Response::new(Full::new(Bytes::from(answer)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(tsa::token::REPLY_TYPE),
    );
    r
}
