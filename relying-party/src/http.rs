//! A minimal blocking HTTP/1.1 client (hyper-util's legacy client on a current-thread tokio
//! runtime) for OCSP POSTs and CRL downloads. Only `http://`: OCSP and CRLs are signed
//! objects and JPKI publishes them over plain HTTP.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;

use crate::Error;

/// Largest body accepted (a 10^6-entry CRL is ~38 MB).
pub const MAX_BODY: usize = 64 * 1024 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// GET `url` (no body) or POST `body` with `content_type`; the body of a 200 answer.
pub fn fetch(url: &str, post: Option<(&str, &[u8])>) -> Result<Vec<u8>, Error> {
    let fail = |detail: String| Error::Http {
        url: url.to_string(),
        detail,
    };
    if !url.starts_with("http://") {
        return Err(fail("only http:// URLs are supported".into()));
    }
    let uri: hyper::Uri = url.parse().map_err(|e| fail(format!("bad URL: {e}")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("runtime: {e}")))?;
    rt.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let builder = http::Request::builder().uri(uri);
        let req = match post {
            Some((ct, body)) => builder
                .method(http::Method::POST)
                .header(http::header::CONTENT_TYPE, ct)
                .body(Full::new(Bytes::copy_from_slice(body))),
            None => builder
                .method(http::Method::GET)
                .body(Full::new(Bytes::new())),
        }
        .map_err(|e| fail(format!("request: {e}")))?;
        let resp = tokio::time::timeout(TIMEOUT, client.request(req))
            .await
            .map_err(|_| fail(format!("no answer within {TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        if resp.status() != http::StatusCode::OK {
            return Err(fail(format!("status {}", resp.status())));
        }
        let body =
            tokio::time::timeout(TIMEOUT, Limited::new(resp.into_body(), MAX_BODY).collect())
                .await
                .map_err(|_| fail(format!("body not received within {TIMEOUT:?}")))?
                .map_err(|e| fail(format!("body: {e}")))?;
        Ok(body.to_bytes().to_vec())
    })
}
