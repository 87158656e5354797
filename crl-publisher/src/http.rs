//! Serving the CRLs over HTTP (hyper 1): `GET`/`HEAD /crl/<hierarchy>/<partition>.crl`,
//! `/crl/<hierarchy>/<prefecture>/<municipality>.crl` and `/crl/<hierarchy>/ca.crl`, with the caching headers of RFC 9111 / RFC 5019 §6 so that a
//! CDN or relying party can hold a CRL until its nextUpdate.

use std::future::Future;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use policies::profile::Scope;
use policies::Hierarchy;
use sha2::{Digest, Sha256};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio::net::TcpListener;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::publisher::{Publisher, Served};
use crate::{CrlId, Error, Generation, State};

/// IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
const HTTP_DATE: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

fn http_date(t: OffsetDateTime) -> Option<HeaderValue> {
    let text = t.to_offset(time::UtcOffset::UTC).format(HTTP_DATE).ok()?;
    HeaderValue::from_str(&text).ok()
}

fn parse_http_date(v: &HeaderValue) -> Option<OffsetDateTime> {
    let text = v.to_str().ok()?;
    Some(PrimitiveDateTime::parse(text, HTTP_DATE).ok()?.assume_utc())
}

fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(text.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl Publisher {
    /// Which CRL a request path names: `/crl/<signing|auth>/<n>.crl` with `n` a serial
    /// partition in canonical decimal, `/crl/<…>/<prefecture>/<municipality>.crl` in the
    /// canonical percent-encoding of [`policies::Municipality::path`] (uppercase hex, only
    /// what must be encoded), or `/crl/<…>/ca.crl`. Anything else, and a municipal partition
    /// with no published CRL, answers 404.
    ///
    /// The first segment names the root generation that signs the CRL
    /// ([`policies::profile::crl_dir`]): `signing`/`auth` for generation 1, `auth-g2` (a
    /// canonical decimal above 1) for later ones.
    pub fn route(&self, path: &str) -> Option<CrlId> {
        let rest = path.strip_prefix("/crl/")?;
        let (dir, file) = rest.split_once('/')?;
        let (h, g) = match dir.split_once("-g") {
            None => (dir, 1),
            Some((h, g)) => {
                let canonical = g.bytes().all(|b| b.is_ascii_digit()) && !g.starts_with('0');
                let g: Generation = g.parse().ok().filter(|g| canonical && *g > 1)?;
                (h, g)
            }
        };
        let h = match h {
            "signing" => Hierarchy::Signing,
            "auth" => Hierarchy::Auth,
            _ => return None,
        };
        let stem = file.strip_suffix(".crl")?;
        if stem == "ca" {
            return Some((h, g, Scope::Ca));
        }
        if stem.contains('/') {
            return match Scope::from_path(stem) {
                Ok(scope @ Scope::Municipal(_)) => Some((h, g, scope)),
                _ => None,
            };
        }
        let canonical = !stem.is_empty()
            && stem.bytes().all(|b| b.is_ascii_digit())
            && (stem == "0" || !stem.starts_with('0'));
        let p: u16 = stem.parse().ok().filter(|_| canonical)?;
        (p < self.policy.crl.partitions).then_some((h, g, Scope::Partition(p)))
    }

    /// The file currently published for a scope, from the cache or from disk.
    async fn served(
        &self,
        h: Hierarchy,
        g: Generation,
        scope: Scope,
    ) -> Result<Option<Arc<Served>>, Error> {
        if let Some(s) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(h, g, scope.clone()))
        {
            return Ok(Some(Arc::clone(s)));
        }
        let path = self.dir.join(Publisher::file_name(h, g, &scope));
        let der = match tokio::fs::read(&path).await {
            Ok(der) => Bytes::from(der),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let sha256: [u8; 32] = Sha256::digest(&der).into();
        let state = self
            .state
            .load(h, g, scope.clone())
            .map_err(Error::state(h, &scope))?;
        let served = match state {
            Some(State {
                published: Some(p), ..
            }) if p.sha256 == hex::encode(sha256) => {
                Served::new(der, &sha256, p.this_update, p.next_update)
            }
            _ => {
                // written by another run or tool: read its times from the file itself
                let der2 = der.clone();
                let times = tokio::task::spawn_blocking(move || {
                    let (_, crl) =
                        CertificateRevocationList::from_der(&der2).map_err(|e| e.to_string())?;
                    let this = crl.last_update().to_datetime();
                    let next = crl.next_update().ok_or("no nextUpdate")?.to_datetime();
                    Ok::<_, String>((this, next))
                })
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
                let (this, next) = times.map_err(|problem| Error::BadFile { path, problem })?;
                Served::new(der, &sha256, this, next)
            }
        };
        let served = Arc::new(served);
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((h, g, scope.clone()), Arc::clone(&served));
        Ok(Some(served))
    }

    /// `/crl/index.json`: every published CRL with its distribution point names and file
    /// ([`Publisher::index`]), not cached (it changes with every publication).
    fn index_response(&self, head: bool) -> Response<Full<Bytes>> {
        let json = match self.index().map(|i| serde_json::to_vec_pretty(&i)) {
            Ok(Ok(json)) => json,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot encode the CRL index");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "index unavailable\n");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list the CRLs");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "index unavailable\n");
            }
        };
        let len = json.len();
        let mut resp = Response::new(Full::new(if head {
            Bytes::new()
        } else {
            Bytes::from(json)
        }));
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }

    /// Answers one HTTP request for a CRL: `200` with the DER (`application/pkix-crl`),
    /// `Last-Modified` (thisUpdate), a strong `ETag`, `Cache-Control: max-age` up to nextUpdate;
    /// `304` for a matching `If-None-Match` or a not-older `If-Modified-Since`; `HEAD`;
    /// `404` for any other path, `405` for other methods; `410 Gone`, with a body saying why,
    /// for a CRL of a retired root generation ([`Publisher::retire_generation`]), whose last
    /// files may still be on disk. Usable as a hyper `service_fn`.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        if req.uri().path() == "/crl/index.json"
            && matches!(*req.method(), Method::GET | Method::HEAD)
        {
            return self.index_response(req.method() == Method::HEAD);
        }
        let Some((h, g, scope)) = self.route(req.uri().path()) else {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        };
        let head = req.method() == Method::HEAD;
        if !head && req.method() != Method::GET {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        // A retired generation's last files may still be on disk: never served stale.
        if let Some((last, until)) = self.retired_since(h, g, self.clock.now()) {
            return plain(
                StatusCode::GONE,
                format!(
                    "generation {g} of the {h} root is retired: every certificate it issued had \
                     expired by {last}, and its CRLs were published until {until}; they are no \
                     longer published (RFC 5280 §3.3)\n"
                ),
            );
        }
        let served = match self.served(h, g, scope.clone()).await {
            Ok(Some(s)) => s,
            Ok(None) => return plain(StatusCode::NOT_FOUND, "CRL not published yet\n"),
            Err(e) => {
                tracing::error!(error = %e, "cannot serve CRL");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "CRL unavailable\n");
            }
        };
        let now = self.clock.now();
        let max_age = (served.next_update - now).whole_seconds().max(0);

        // RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
        let not_modified = if let Some(inm) = req.headers().get(header::IF_NONE_MATCH) {
            inm.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .any(|t| t == "*" || t.trim_start_matches("W/") == served.etag)
            })
        } else if let Some(ims) = req
            .headers()
            .get(header::IF_MODIFIED_SINCE)
            .and_then(parse_http_date)
        {
            served.last_modified.unix_timestamp() <= ims.unix_timestamp()
        } else {
            false
        };

        let mut resp = if not_modified {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let body = if head {
                Bytes::new()
            } else {
                served.der.clone()
            };
            let mut r = Response::new(Full::new(body));
            let headers = r.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pkix-crl"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(served.der.len()));
            r
        };
        let headers = resp.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&served.etag) {
            headers.insert(header::ETAG, etag);
        }
        if let Some(v) = http_date(served.last_modified) {
            headers.insert(header::LAST_MODIFIED, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!(
            "max-age={max_age}, public, no-transform, must-revalidate"
        )) {
            headers.insert(header::CACHE_CONTROL, v);
        }
        if let Some(v) = http_date(served.next_update) {
            headers.insert(header::EXPIRES, v);
        }
        resp
    }

    /// Serves [`handle`](Publisher::handle) over HTTP/1.1 on `listener` until `shutdown`
    /// completes. The lead's `jpki serve` may instead call `handle` from its own router.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let this = Arc::clone(&this);
                    async move { Ok::<_, std::convert::Infallible>(this.handle(req).await) }
                });
                // the timer turns on hyper's header read timeout (30 s): a client that
                // trickles its request cannot hold a connection forever
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended");
                }
            });
        }
    }
}
