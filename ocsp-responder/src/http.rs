//! HTTP binding (RFC 6960 appendix A.1, RFC 5019 §5–6) on hyper 1.
//!
//! * `POST <path>` with `Content-Type: application/ocsp-request` (else 415); the body is read
//!   under a size limit (413) and a time limit (408).
//! * `GET <path>/<base64 DER>`, URL-encoded or not (standard or URL-safe alphabet, padding
//!   optional). Successful nonce-less answers carry the RFC 5019 caching headers
//!   (`Cache-Control: max-age=<seconds to nextUpdate>, public, no-transform, must-revalidate`,
//!   `Last-Modified` = thisUpdate, `Expires` = nextUpdate, `ETag`) and honour `If-None-Match`
//!   with 304.
//! * `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! Routing uses `uri().path()` only: HTTP/2 requests carry an absolute-form URI.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::metrics::HttpReject;
use crate::responder::{Answer, Responder};
use crate::Error;

const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(t: OffsetDateTime) -> Option<HeaderValue> {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let s = t.to_offset(time::UtcOffset::UTC).format(&f).ok()?;
    HeaderValue::from_str(&s).ok()
}

/// Decodes `%XX` escapes; `None` on a bad escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The DER request of an RFC 6960 A.1 GET path segment, or `None` if it is not base64.
pub fn decode_get(segment: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    let text = percent_decode(segment)?;
    standard
        .decode(&text)
        .or_else(|_| url_safe.decode(&text))
        .ok()
}

impl Responder {
    /// Serves one HTTP request: the OCSP endpoint, `/healthz` and `/metrics`. Mount it in any
    /// hyper service; [`Responder::serve`] runs a whole listener with it.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path().to_owned();
        let base = self.settings().path.as_str();
        let m = self.metrics();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => return plain(StatusCode::OK, "ok\n"),
            (&Method::GET, "/metrics") => {
                let mut r = Response::new(Full::new(Bytes::from(self.render_metrics())));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return r;
            }
            _ => {}
        }
        // `<base>` and `<base>/...` are ours; `<base>xyz` is another path.
        let rest = path
            .strip_prefix(base)
            .filter(|r| r.is_empty() || r.starts_with('/'));
        match (req.method().clone(), rest) {
            (Method::POST, Some("" | "/")) => self.post(req).await,
            (Method::GET, Some(seg)) if seg.len() > 1 && seg.starts_with('/') => {
                let seg = &seg[1..];
                // base64 grows 4/3, percent-encoding up to 3x: bound before decoding.
                if seg.len() > self.settings().max_body * 4 {
                    m.http(HttpReject::TooLarge);
                    return plain(StatusCode::URI_TOO_LONG, "request too large\n");
                }
                let Some(der) = decode_get(seg) else {
                    // Not base64: still an OCSP-level malformedRequest, as for a garbage POST.
                    let a = self.answer(&[]).await;
                    return ocsp_response(a, None);
                };
                if der.len() > self.settings().max_body {
                    m.http(HttpReject::TooLarge);
                    return plain(StatusCode::URI_TOO_LONG, "request too large\n");
                }
                let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
                let a = self.answer(&der).await;
                let now = self.now();
                ocsp_response(a, Some((now, if_none_match.as_ref()))).tap_not_modified(m)
            }
            (_, Some("" | "/")) | (Method::POST | Method::GET, Some(_)) => {
                m.http(HttpReject::BadMethod);
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
                r
            }
            _ => {
                m.http(HttpReject::NotFound);
                plain(StatusCode::NOT_FOUND, "not found\n")
            }
        }
    }

    async fn post<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let m = self.metrics();
        let limit = self.settings().max_body;
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let ct_ok = ct.is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(OCSP_REQUEST))
        });
        if !ct_ok {
            m.http(HttpReject::UnsupportedMediaType);
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/ocsp-request\n",
            );
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            m.http(HttpReject::TooLarge);
            return close(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
            ));
        }
        let read = read_body(Limited::new(req.into_body(), limit));
        // Small OCSP bodies usually arrive with the head: poll once before arming a timer
        // (a timer per request costs more than the rest of a cached answer).
        let mut read = std::pin::pin!(read);
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
        let read = match first {
            std::task::Poll::Ready(r) => Ok(r),
            std::task::Poll::Pending => {
                tokio::time::timeout(self.settings().body_timeout, read).await
            }
        };
        let bytes = match read {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    m.http(HttpReject::TooLarge);
                    return close(plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large\n",
                    ));
                }
                tracing::debug!(error = %e, "reading an OCSP request body failed");
                return close(plain(StatusCode::BAD_REQUEST, "unreadable body\n"));
            }
            Err(_) => {
                m.http(HttpReject::Timeout);
                return close(plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body timed out\n",
                ));
            }
        };
        ocsp_response(self.answer(&bytes).await, None)
    }

    /// Serves HTTP/1.1 and HTTP/2 on `listener` (plain, or TLS when `tls` is given, e.g. from
    /// [`crate::tls::mtls_config`]) until `shutdown` completes, then lets open connections
    /// finish for up to 5 s. Binds nothing itself: the caller chooses the address.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let me = self.clone();
        let handler = move |req: Request<Incoming>| {
            let me = me.clone();
            async move { me.handle(req).await }
        };
        serve_with(
            listener,
            tls,
            self.settings().header_timeout,
            shutdown,
            handler,
        )
        .await;
        Ok(())
    }
}

/// The server loop behind [`Responder::serve`], for any handler, with the default
/// [`conn_guard::Limits`]: see [`serve_guarded`].
pub async fn serve_with<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let gate = conn_guard::Gate::new(conn_guard::Limits::default());
    serve_guarded(listener, tls, header_timeout, gate, shutdown, handler).await
}

/// An HTTP/2 connection silent this long is sent a PING ([RFC 9113 §6.7]); one that does not
/// answer within [`H2_PING_TIMEOUT`] is closed: a peer gone without a FIN (a dead host, a cut
/// path) is found in 20 s, sooner than the gate's idle time. A peer that answers pings but asks
/// nothing does not keep its place: the gate counts requests ([`conn_guard::Ticket::requests`]).
pub const H2_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// See [`H2_PING_INTERVAL`].
pub const H2_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The server loop for any handler: HTTP/1.1 and HTTP/2 (auto), a header-read timeout (also
/// the TLS handshake timeout), connections admitted through `gate` (a cap per client
/// address; a full listener evicts its quietest connection for a newcomer) and closed when the
/// client has sent nothing, or asked nothing, for the gate's idle time, HTTP/2 keep-alive
/// pings ([`H2_PING_INTERVAL`]), back-off on accept errors, and a graceful stop that lets
/// open connections finish for up to 5 s. `jpki serve` uses it for its public listener, which
/// routes `/crl/` to the CRL publisher and the rest here.
pub async fn serve_guarded<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    header_timeout: std::time::Duration,
    gate: Arc<conn_guard::Gate>,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(ticket) = gate.admit(Some(peer.ip())) else {
            tracing::debug!(%peer, "connection over the listener's caps closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = ticket.io(stream);
        let handler = handler.clone();
        let requests = ticket.requests();
        let svc = service_fn(move |req| {
            let in_flight = requests.begin();
            let answer = handler(req);
            async move {
                let answer = answer.await;
                drop(in_flight);
                Ok::<_, Infallible>(answer)
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = async {
                match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    }
                    Some(acceptor) => {
                        let tls =
                            match tokio::time::timeout(header_timeout, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                                    return;
                                }
                                Err(_) => {
                                    tracing::info!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let conn = builder.serve_connection(TokioIo::new(tls), svc);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    }
                }
            };
            tokio::select! {
                () = served => {}
                () = ticket.closing() => {
                    tracing::debug!(%peer, "idle or evicted connection closed");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 5 s; dropping them");
    }
}

/// The whole body; a single data frame (the usual case) is returned without copying.
async fn read_body<B>(body: B) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use bytes::Buf;
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame.map_err(Into::into)?.into_data() else {
            continue;
        };
        let chunk = data.copy_to_bytes(data.remaining());
        match &first {
            None if more.is_empty() => first = Some(chunk),
            _ => {
                if let Some(f) = first.take() {
                    more.extend_from_slice(&f);
                }
                more.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(more)))
}

fn close(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

trait TapNotModified {
    fn tap_not_modified(self, m: &crate::metrics::Metrics) -> Self;
}

impl TapNotModified for Response<Full<Bytes>> {
    fn tap_not_modified(self, m: &crate::metrics::Metrics) -> Self {
        if self.status() == StatusCode::NOT_MODIFIED {
            m.not_modified();
        }
        self
    }
}

/// The HTTP response carrying an OCSP answer (always 200 for OCSP-level errors: RFC 6960 A.1
/// puts the error in the OCSPResponse).
/// `get` is `Some((now, If-None-Match))` for GET requests, which alone get caching headers.
fn ocsp_response(
    a: Answer,
    get: Option<(OffsetDateTime, Option<&HeaderValue>)>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OCSP_RESPONSE),
    );
    match (&a.cacheable, get) {
        (Some((times, tag)), Some((now, if_none_match))) => {
            let max_age = (times.next_update - now).whole_seconds().max(0);
            if let Ok(v) = HeaderValue::from_str(&format!(
                "max-age={max_age}, public, no-transform, must-revalidate"
            )) {
                h.insert(header::CACHE_CONTROL, v);
            }
            if let Some(v) = http_date(times.this_update) {
                h.insert(header::LAST_MODIFIED, v);
            }
            if let Some(v) = http_date(times.next_update) {
                h.insert(header::EXPIRES, v);
            }
            if let Ok(v) = HeaderValue::from_str(tag) {
                h.insert(header::ETAG, v);
            }
            let matches = if_none_match
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim() == "*"
                        || v.split(',')
                            .any(|t| t.trim().trim_start_matches("W/") == &**tag)
                });
            if matches {
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r.headers_mut().remove(header::CONTENT_TYPE);
                return r;
            }
        }
        (Some(_), None) => {} // POST answers are not cached by HTTP caches anyway
        _ => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    *r.body_mut() = Full::new(a.der);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_segment_decoding() {
        let der = [0x30u8, 0x03, 0xfb, 0xff, 0x3e];
        // standard alphabet: "MAP7/z4=" ; URL-safe: "MAP7_z4"
        assert_eq!(decode_get("MAP7/z4=").unwrap(), der);
        assert_eq!(decode_get("MAP7%2Fz4%3D").unwrap(), der);
        assert_eq!(decode_get("MAP7%2fz4").unwrap(), der);
        assert_eq!(decode_get("MAP7_z4").unwrap(), der);
        assert!(decode_get("MAP7%2").is_none());
        assert!(decode_get("%zz").is_none());
        assert!(decode_get("***").is_none());
    }

    #[test]
    fn imf_fixdate() {
        let t = time::macros::datetime!(2026-11-27 01:02:03 UTC);
        assert_eq!(http_date(t).unwrap(), "Fri, 27 Nov 2026 01:02:03 GMT");
    }
}
