//! HTTP behaviour and bad input: statuses, limits, timeouts, GET caching headers, isolation.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use der07::asn1::{Null, OctetString};
use der07::{Decode, Encode};
use ocsp_responder::{
    Cause, Clock, FixedClock, HashAlg, Responder, ResponseStatus, Settings, SystemClock,
};
use policies::{Hierarchy, Policy};
use spki07::AlgorithmIdentifierOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x509_cert_02::ext::Extension;
use x509_cert_02::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};

struct Server {
    responder: Responder,
    addr: std::net::SocketAddr,
    pki: support::Pki,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(tune: impl FnOnce(&mut Settings)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let mut settings = Settings::from_policy(&Policy::default_policy());
    tune(&mut settings);
    let responder = Responder::new(
        settings,
        pki.issuers.clone(),
        pki.source.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let r = responder.clone();
    tokio::spawn(async move {
        r.serve(listener, None, async {
            let _ = rx.await;
        })
        .await
    });
    Server {
        responder,
        addr,
        pki,
        _dir: dir,
        _stop: tx,
    }
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// A CertID for `serial` under the root of `name` with SHA-1 (or the given OID and hashes).
fn cert_id(pki: &support::Pki, name: &str, serial: &[u8]) -> CertId {
    let root = x509_cert_02::Certificate::from_der(&pki.roots[name]).unwrap();
    let subject = root.tbs_certificate.subject.to_der().unwrap();
    let key = root
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: HashAlg::Sha1.oid(),
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&subject)).unwrap(),
        issuer_key_hash: OctetString::new(sha1(&key)).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

fn request(ids: Vec<CertId>, nonce: Option<Vec<u8>>) -> Vec<u8> {
    let exts = nonce.map(|n| {
        vec![Extension {
            extn_id: ocsp_responder::request::NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|id| Request {
                    req_cert: id,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: exts,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn ocsp(&self) -> OcspResponse {
        OcspResponse::from_der(&self.body).unwrap()
    }
    fn basic(&self) -> BasicOcspResponse {
        let r = self.ocsp();
        assert_eq!(r.response_status, OcspResponseStatus::Successful);
        BasicOcspResponse::from_der(r.response_bytes.unwrap().response.as_bytes()).unwrap()
    }
}

/// Sends raw bytes (a whole HTTP/1.1 request with `Connection: close`) and reads the reply.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    parse_reply(&buf)
}

fn parse_reply(buf: &[u8]) -> Reply {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a full HTTP head");
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

async fn post(addr: std::net::SocketAddr, content_type: &str, body: &[u8]) -> Reply {
    let mut req = format!(
        "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(addr, &req).await
}

async fn get(addr: std::net::SocketAddr, path: &str, extra: &str) -> Reply {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
}

const MALFORMED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];
const UNAUTHORIZED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x06];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_quickly() {
    let s = start(|_| {}).await;
    let good = request(
        vec![cert_id(&s.pki, "signing", &s.pki.leaf("good").serial)],
        None,
    );
    let t0 = Instant::now();

    // truncated DER, trailing bytes, garbage
    let r = post(s.addr, "application/ocsp-request", &good[..good.len() - 3]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &MALFORMED[..]));
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0]);
    assert_eq!(
        post(s.addr, "application/ocsp-request", &trailing)
            .await
            .body,
        MALFORMED
    );
    assert_eq!(
        post(s.addr, "application/ocsp-request", b"hello")
            .await
            .body,
        MALFORMED
    );
    assert_eq!(
        post(s.addr, "application/ocsp-request", b"").await.body,
        MALFORMED
    );

    // wrong or missing content type
    assert_eq!(post(s.addr, "application/json", &good).await.status, 415);
    let no_ct = format!(
        "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        good.len()
    );
    let mut req = no_ct.into_bytes();
    req.extend_from_slice(&good);
    assert_eq!(raw(s.addr, &req).await.status, 415);

    // body over the limit, declared and chunked
    assert_eq!(
        post(s.addr, "application/ocsp-request", &vec![0x30; 9000])
            .await
            .status,
        413
    );
    let mut chunked =
        b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..5 {
        chunked.extend_from_slice(b"800\r\n");
        chunked.extend_from_slice(&[0x30; 0x800]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw(s.addr, &chunked).await.status, 413);

    // 1,000 CertIDs: over the body limit on the wire, and malformedRequest by count if it got in
    let ids: Vec<CertId> = (0..1000u32)
        .map(|i| cert_id(&s.pki, "signing", &(i + 1).to_be_bytes()))
        .collect();
    let big = request(ids.clone(), None);
    assert_eq!(
        post(s.addr, "application/ocsp-request", &big).await.status,
        413
    );
    assert_eq!(
        s.responder.answer(&big).await.status,
        ResponseStatus::MalformedRequest
    );
    let some = request(ids[..65].to_vec(), None);
    assert_eq!(
        post(s.addr, "application/ocsp-request", &some).await.body,
        MALFORMED
    );

    // unknown hash algorithm (MD5): we cannot recognise the issuer -> unauthorized
    let mut md5 = cert_id(&s.pki, "signing", &s.pki.leaf("good").serial);
    md5.hash_algorithm.oid = spki07::ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
    md5.issuer_name_hash = OctetString::new(vec![1u8; 16]).unwrap();
    md5.issuer_key_hash = OctetString::new(vec![2u8; 16]).unwrap();
    assert_eq!(
        post(
            s.addr,
            "application/ocsp-request",
            &request(vec![md5], None)
        )
        .await
        .body,
        UNAUTHORIZED
    );

    // nonce over the limit, and at the limit
    let id = cert_id(&s.pki, "signing", &s.pki.leaf("good").serial);
    let r = post(
        s.addr,
        "application/ocsp-request",
        &request(vec![id.clone()], Some(vec![9; 33])),
    )
    .await;
    assert_eq!(r.body, MALFORMED);
    let r = post(
        s.addr,
        "application/ocsp-request",
        &request(vec![id.clone()], Some(vec![9; 32])),
    )
    .await;
    let b = r.basic();
    assert_eq!(
        b.nonce().unwrap().0.as_bytes(),
        &[9u8; 32][..],
        "nonce echoed"
    );

    // other paths and methods
    assert_eq!(get(s.addr, "/nope", "").await.status, 404);
    assert_eq!(get(s.addr, "/ocspx/AAAA", "").await.status, 404);
    assert_eq!(
        raw(
            s.addr,
            b"PUT /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .await
        .status,
        405
    );
    assert_eq!(get(s.addr, "/ocsp/%%%", "").await.body, MALFORMED);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );

    let metrics = get(s.addr, "/metrics", "").await;
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("ocsp_responses_total{status=\"malformedRequest\"} 8"),
        "{text}"
    );
    assert!(
        text.contains("ocsp_responses_total{status=\"unauthorized\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ocsp_http_rejects_total{reason=\"too_large\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("ocsp_http_rejects_total{reason=\"unsupported_media_type\"} 2"),
        "{text}"
    );
    assert_eq!(get(s.addr, "/healthz", "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_rfc5019_headers_and_304() {
    let s = start(|_| {}).await;
    let serial = s.pki.leaf("good").serial.clone();
    let der = request(vec![cert_id(&s.pki, "signing", &serial)], None);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for path in [format!("/ocsp/{b64}"), format!("/ocsp/{encoded}")] {
        let r = get(s.addr, &path, "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/ocsp-response"));
        let cc = r.header("cache-control").unwrap();
        let max_age: i64 = cc
            .strip_prefix("max-age=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3500..=3600).contains(&max_age), "{cc}");
        assert!(
            cc.ends_with(", public, no-transform, must-revalidate"),
            "{cc}"
        );
        assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
        assert!(r.header("expires").unwrap().ends_with(" GMT"));
        let status = r.basic().tbs_response_data.responses[0].cert_status;
        assert_eq!(status, CertStatus::good());
        let etag = r.header("etag").unwrap().to_owned();
        let again = get(s.addr, &path, &format!("If-None-Match: {etag}\r\n")).await;
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
    }
    // after a revocation + refresh the ETag changes and the old one no longer matches
    let r = get(s.addr, &format!("/ocsp/{b64}"), "").await;
    let old = r.header("etag").unwrap().to_owned();
    s.pki.source.revoke(
        Hierarchy::Signing,
        &serial,
        s.responder.now(),
        policies::Reason::KeyCompromise,
    );
    s.responder
        .refresh(Hierarchy::Signing, &serial, s.responder.now())
        .unwrap();
    let r = get(
        s.addr,
        &format!("/ocsp/{b64}"),
        &format!("If-None-Match: {old}\r\n"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(matches!(
        r.basic().tbs_response_data.responses[0].cert_status,
        CertStatus::Revoked(_)
    ));
    // a nonce answer over GET is not cacheable
    let der = request(vec![cert_id(&s.pki, "signing", &serial)], Some(vec![1; 16]));
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &der);
    let r = get(s.addr, &format!("/ocsp/{b64}"), "").await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.basic().nonce().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_without_hurting_others() {
    let s = start(|st| {
        st.body_timeout = Duration::from_secs(1);
        st.header_timeout = Duration::from_secs(1);
    })
    .await;
    let good = request(
        vec![cert_id(&s.pki, "signing", &s.pki.leaf("good").serial)],
        None,
    );

    // a client that promises 100 bytes of body and sends 10
    let mut slow_body = TcpStream::connect(s.addr).await.unwrap();
    slow_body
        .write_all(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    // a client that never finishes its headers
    let mut slow_head = TcpStream::connect(s.addr).await.unwrap();
    slow_head
        .write_all(b"POST /ocsp HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    // meanwhile others are served promptly
    for _ in 0..20 {
        let t = Instant::now();
        let r = post(s.addr, "application/ocsp-request", &good).await;
        assert_eq!(r.status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    let t = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow_body.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parse_reply(&buf).status, 408);
    assert!(t.elapsed() < Duration::from_secs(3));
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), slow_head.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "slow header client was not disconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_failure_is_try_later_and_overload_is_try_later() {
    let s = start(|_| {}).await;
    let id = cert_id(&s.pki, "signing", &s.pki.leaf("good").serial);
    s.pki.source.set_failing(true);
    let r = post(
        s.addr,
        "application/ocsp-request",
        &request(vec![id.clone()], Some(vec![1; 16])),
    )
    .await;
    assert_eq!(r.body, [0x30, 0x03, 0x0a, 0x01, 0x03]);
    s.pki.source.set_failing(false);
    assert_eq!(s.responder.metrics().count_cause(Cause::SourceFailed), 1);

    // one signing slot, no waiting: concurrent nonce requests beyond the slot get tryLater,
    // and none of them panics or hangs
    let s = start(|st| {
        st.live_concurrency = 1;
        st.live_wait = Duration::from_millis(0);
    })
    .await;
    let id = cert_id(&s.pki, "signing", &s.pki.leaf("good").serial);
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let r = s.responder.clone();
        let der = request(vec![id.clone()], Some(vec![i + 1; 16]));
        tasks.push(tokio::spawn(async move { r.answer(&der).await.status }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses.contains(&ResponseStatus::Successful));
    assert!(statuses
        .iter()
        .all(|s| matches!(s, ResponseStatus::Successful | ResponseStatus::TryLater)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_and_resign() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    let settings = Settings::from_policy(&Policy::default_policy());
    let r = Responder::new(
        settings,
        pki.issuers.clone(),
        pki.source.clone(),
        clock.clone(),
    )
    .unwrap();
    let good = pki.leaf("good").serial.clone();
    let late = pki.leaf("late").serial.clone();
    assert!(r.warm(Hierarchy::Signing, &good, clock.now()).unwrap());
    assert!(r.warm(Hierarchy::Signing, &late, clock.now()).unwrap());
    assert!(!r
        .warm(
            Hierarchy::Signing,
            &pki.leaf("unissued").serial,
            clock.now()
        )
        .unwrap());
    assert_eq!(r.cached(), 4);
    let req = request(vec![cert_id(&pki, "signing", &good)], None);
    let first = r.answer(&req).await;
    assert_eq!(first.cause, Cause::CacheHit);
    // 50 minutes later: inside the margin (20 min of 60) -> both re-signed (warm marks used)
    clock.advance(time::Duration::minutes(50));
    assert_eq!(r.resign_due(clock.now()).unwrap(), (4, 0));
    let second = r.answer(&req).await;
    assert_eq!(second.cause, Cause::CacheHit);
    assert_ne!(first.der, second.der, "re-signed with a new thisUpdate");
    // another 50 minutes: only the entry asked for since is kept
    clock.advance(time::Duration::minutes(50));
    assert_eq!(r.resign_due(clock.now()).unwrap(), (1, 3));
    assert_eq!(r.cached(), 1);
    // and an expired entry is never served
    clock.advance(time::Duration::minutes(61));
    assert_eq!(r.answer(&req).await.cause, Cause::LiveSigned);
}

/// A source that, once armed, holds the next lookup until released: lets a test put a refresh
/// between a live query's store read and its cache insert.
struct GateSource {
    inner: Arc<ocsp_responder::MemorySource>,
    armed: std::sync::atomic::AtomicBool,
    entered: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
    release: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl ocsp_responder::StatusSource for GateSource {
    fn status(
        &self,
        h: Hierarchy,
        serial: &[u8],
    ) -> Result<ocsp_responder::Status, ocsp_responder::SourceError> {
        let answer = self.inner.status(h, serial);
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                tx.send(()).unwrap();
            }
            if let Some(rx) = self.release.lock().unwrap().take() {
                rx.recv().unwrap();
            }
        }
        answer
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_racing_a_revocation_cannot_cache_the_old_status() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki(dir.path());
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let gate = Arc::new(GateSource {
        inner: pki.source.clone(),
        armed: std::sync::atomic::AtomicBool::new(true),
        entered: std::sync::Mutex::new(Some(entered_tx)),
        release: std::sync::Mutex::new(Some(release_rx)),
    });
    let settings = Settings::from_policy(&Policy::default_policy());
    let r = Responder::new(settings, pki.issuers.clone(), gate, Arc::new(SystemClock)).unwrap();
    let serial = pki.leaf("good").serial.clone();
    let req = request(vec![cert_id(&pki, "signing", &serial)], None);

    // a cache miss reads "good" from the store and stops before signing/caching
    let r2 = r.clone();
    let req2 = req.clone();
    let racing = tokio::spawn(async move { r2.answer(&req2).await });
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();
    // the CA revokes and refreshes meanwhile
    pki.source.revoke(
        Hierarchy::Signing,
        &serial,
        time::OffsetDateTime::now_utc(),
        policies::Reason::KeyCompromise,
    );
    r.refresh(Hierarchy::Signing, &serial, time::OffsetDateTime::now_utc())
        .unwrap();
    release_tx.send(()).unwrap();
    let raced = racing.await.unwrap();
    assert_eq!(raced.cause, Cause::LiveSigned);
    // the stale "good" answer was not cached: the next query is live and says revoked
    let next = r.answer(&req).await;
    let basic = {
        let o = OcspResponse::from_der(&next.der).unwrap();
        BasicOcspResponse::from_der(o.response_bytes.unwrap().response.as_bytes()).unwrap()
    };
    assert!(matches!(
        basic.tbs_response_data.responses[0].cert_status,
        CertStatus::Revoked(_)
    ));
    assert_eq!(
        r.answer(&req).await.cause,
        Cause::CacheHit,
        "the fresh answer is cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_absolute_form_uri() {
    use http_body_util::{BodyExt, Full};
    let s = start(|_| {}).await;
    let der = request(
        vec![cert_id(&s.pki, "signing", &s.pki.leaf("good").serial)],
        None,
    );
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    for req in [
        http::Request::post(format!("http://{}/ocsp", s.addr))
            .header("content-type", "application/ocsp-request")
            .body(Full::new(bytes::Bytes::from(der.clone())))
            .unwrap(),
        http::Request::get(format!(
            "http://{}/ocsp/{}",
            s.addr,
            b64.replace('/', "%2F")
        ))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap(),
    ] {
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let o = OcspResponse::from_der(&body).unwrap();
        let b = BasicOcspResponse::from_der(o.response_bytes.unwrap().response.as_bytes()).unwrap();
        assert_eq!(
            b.tbs_response_data.responses[0].cert_status,
            CertStatus::good()
        );
    }
}
