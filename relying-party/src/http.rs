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
    tracing::debug!(%url, post = post.is_some(), "fetching");
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};

    use super::*;
    use crate::testutil::Pki;
    use crate::{Outcome, StatusSource, Verifier};

    async fn handle(
        req: http::Request<Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, Infallible> {
        let pki = Pki::get();
        let (status, body) = match (req.method().clone(), req.uri().path().to_string()) {
            (http::Method::POST, p) if p == "/ocsp" => match req.into_body().collect().await {
                Ok(b) => (200, pki.ocsp_answer(&b.to_bytes(), None, &["-nmin", "60"])),
                Err(_) => (400, Vec::new()),
            },
            (http::Method::GET, p) if p == "/crl/signing/1.crl" => (
                200,
                crate::cert::der_from_pem_or_der(&pki.read("sign/crl.pem")),
            ),
            _ => (404, b"not here".to_vec()),
        };
        let mut resp = http::Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        Ok(resp)
    }

    /// A tiny OCSP + CRL server on 127.0.0.1, port 0, answering with openssl.
    fn serve() -> SocketAddr {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, hyper::service::service_fn(handle))
                            .await;
                    });
                }
            });
        });
        rx.recv().unwrap()
    }

    #[test]
    fn ocsp_and_crl_over_real_http() {
        let pki = Pki::get();
        let addr = serve();
        let doc = pki.read("doc.txt");
        let now = time::OffsetDateTime::now_utc();
        let root = pki.read("sign/root.pem");
        let by_ocsp = Verifier::new(
            &root,
            None,
            StatusSource::Ocsp(format!("http://{addr}/ocsp")),
        )
        .unwrap();
        let by_crl = Verifier::new(
            &root,
            None,
            StatusSource::CrlUrl(format!("http://{addr}/crl/signing/1.crl")),
        )
        .unwrap();
        for v in [&by_ocsp, &by_crl] {
            let r = v.verify_document(&pki.sign("sign", "good", &[]), Some(&doc), None, now);
            assert!(r.is_valid(), "{}", r.render(false));
            let r = v.verify_document(&pki.sign("sign", "revoked", &[]), Some(&doc), None, now);
            assert!(!r.is_valid());
            assert!(
                r.check("status").unwrap().reason.contains("keyCompromise"),
                "{}",
                r.render(false)
            );
        }
        let missing = Verifier::new(
            &root,
            None,
            StatusSource::CrlUrl(format!("http://{addr}/crl/signing/9.crl")),
        )
        .unwrap();
        let r = missing.verify_document(&pki.sign("sign", "good", &[]), Some(&doc), None, now);
        let c = r.check("status").unwrap();
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c.reason.contains("status 404"), "{}", c.reason);
    }

    #[test]
    fn only_plain_http_urls_are_fetched() {
        let e = fetch("https://127.0.0.1/ocsp", None).unwrap_err();
        assert!(e.to_string().contains("only http://"), "{e}");
        let e = fetch("http://[::1", None).unwrap_err();
        assert!(e.to_string().contains("bad URL"), "{e}");
    }
}
