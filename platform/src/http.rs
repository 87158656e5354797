//! The HTTPS API for platform operators: hyper 1 over tokio-rustls, mutual TLS.
//!
//! The TLS layer requires a client certificate that chains to the operator CA
//! (`WebPkiClientVerifier`, TLS 1.2 and 1.3); no certificate, or one from another CA, ends the
//! handshake. Every request then finds the PF by the SHA-256 of the client certificate's
//! SubjectPublicKeyInfo, and the PF must be active (else 403) — so a suspension takes effect
//! on the next request, even on an open keep-alive connection. Endpoints: see `API.md`.
//! Paths under `/crl/` and `/ocsp` go to the fallback the server is given (the CRL
//! publisher and the OCSP responder), after the same PF check.
//!
//! Every `/v1` call is recorded (access log + audit chain) before it is answered, through the
//! group-committing [`Recorder`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ca::Authority;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::time_provider::TimeProvider;
use rustls::{RootCertStore, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::access::Recorder;
use crate::error::{Error, Result};
use crate::operator_ca::{self, OperatorCa};
use crate::registry::{self, Access, Operator, PfState, Usage};
use crate::service::{self, Anchors, Call};

/// Largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 256 * 1024;
/// Up to this size an oversized body is read and discarded before the 413 answer.
const DRAIN_LIMIT: usize = 4 * BODY_LIMIT;
/// An HTTP/2 connection silent this long is sent a PING; one that does not answer within
/// [`H2_PING_TIMEOUT`] is closed (a peer gone without closing). The same as the public
/// listener's (`ocsp_responder::http::H2_PING_INTERVAL`, not a dependency of this crate).
const H2_PING_INTERVAL: Duration = Duration::from_secs(10);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send a request's head, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A boxed response future, as the fallback returns it.
pub type BoxResponse = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
/// Serves `/crl/...` and `/ocsp...` (the CRL publisher and OCSP responder).
pub type Fallback = Arc<dyn Fn(Request<Bytes>) -> BoxResponse + Send + Sync>;

/// The PF API server.
pub struct Api {
    authority: Arc<Authority>,
    tls: Arc<ServerConfig>,
    /// The server certificate every new handshake gets; replaced by
    /// [`Api::replace_identity`] (renewal) without a restart.
    identity: Arc<Identity>,
    fallback: Option<Fallback>,
    recorder: Recorder,
    anchors: Arc<Anchors>,
}

/// Issues a short-lived server certificate from the operator CA for the given DNS names or
/// IP addresses (EKU serverAuth) with a fresh key: the chain (server certificate, operator
/// root) and the key, ready for [`Api::new`]. Needs the authority's passphrase.
pub fn server_identity(
    authority: &Authority,
    hostnames: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let ca = OperatorCa::load(authority)?;
    let key = operator_ca::generate_client_key()?;
    let der = ca.issue_server(authority, hostnames, &key.spki, authority.clock().now())?;
    Ok((
        vec![
            CertificateDer::from(der),
            CertificateDer::from(ca.der().to_vec()),
        ],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der)),
    ))
}

/// The API's server certificate and key, replaceable while the server runs: each TLS
/// handshake takes the one in force (rustls [`ResolvesServerCert`]); connections already open
/// keep the one they started with.
#[derive(Debug)]
pub struct Identity(RwLock<Arc<CertifiedKey>>);

impl Identity {
    /// An identity from a chain (leaf first) and its key; refuses a key that does not match.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Identity> {
        Ok(Identity(RwLock::new(certified(chain, key)?)))
    }

    /// Replaces the certificate and key for every later handshake.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<()> {
        let fresh = certified(chain, key)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The server certificate in force (DER).
    pub fn certificate(&self) -> Vec<u8> {
        let k = self.0.read().unwrap_or_else(|p| p.into_inner());
        k.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>> {
    if chain.is_empty() {
        return Err(Error::Tls("an empty server certificate chain".into()));
    }
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| Error::Tls(e.to_string()))
}

/// The server's clock as rustls' source of time: client certificates are checked at the
/// authority's time (the same clock as every other check; tests move it).
struct ClockTime(Arc<dyn policies::clock::Clock>);

impl std::fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClockTime")
    }
}

impl TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        let secs = u64::try_from(self.0.now().unix_timestamp()).ok()?;
        Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
    }
}

/// The TLS configuration: client certificates required, chaining to `operator_root`, checked
/// at the system's time; the server certificate and key fixed.
pub fn tls_config(
    operator_root: &[u8],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig> {
    tls_config_with(
        operator_root,
        Arc::new(Identity::new(chain, key)?),
        Arc::new(rustls::time_provider::DefaultTimeProvider),
    )
}

/// The TLS configuration with a replaceable server identity and a source of time.
pub fn tls_config_with(
    operator_root: &[u8],
    identity: Arc<Identity>,
    time: Arc<dyn TimeProvider>,
) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(operator_root.to_vec()))
        .map_err(|e| Error::Tls(format!("operator root: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut cfg = ServerConfig::builder_with_details(provider, time)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Which operation a `/v1` request asks for.
enum Route {
    Validity,
    ConsentGrant,
    ConsentList,
    ConsentDelete(String),
    ConsentWithdraw(String),
    FourAttributes,
    Successor,
    Changes,
}

/// Every route the server answers: method and path template (`{id}`: one path segment).
/// `platform/openapi.json` documents exactly these (`tests/openapi.rs` checks both ways).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/validity"),
    ("POST", "/v1/consents"),
    ("GET", "/v1/consents"),
    ("DELETE", "/v1/consents/{id}"),
    ("POST", "/v1/consents/{id}/withdraw"),
    ("POST", "/v1/four-attributes"),
    ("POST", "/v1/successor"),
    ("GET", "/v1/changes"),
];

impl Route {
    fn operation(&self) -> &'static str {
        match self {
            Route::Validity => "validity",
            Route::ConsentGrant => "consent",
            Route::ConsentList => "consent-list",
            Route::ConsentDelete(_) | Route::ConsentWithdraw(_) => "consent-withdraw",
            Route::FourAttributes => "four-attributes",
            Route::Successor => "successor",
            Route::Changes => "changes",
        }
    }

    fn of(method: &Method, path: &str) -> Result<Route> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        // The methods the path allows, and the route of each.
        let routes: Vec<(Method, Route)> = match segs.as_slice() {
            ["v1", "validity"] => vec![(Method::POST, Route::Validity)],
            ["v1", "consents"] => vec![
                (Method::POST, Route::ConsentGrant),
                (Method::GET, Route::ConsentList),
            ],
            ["v1", "consents", id] => {
                vec![(Method::DELETE, Route::ConsentDelete((*id).to_owned()))]
            }
            ["v1", "consents", id, "withdraw"] => {
                vec![(Method::POST, Route::ConsentWithdraw((*id).to_owned()))]
            }
            ["v1", "four-attributes"] => vec![(Method::POST, Route::FourAttributes)],
            ["v1", "successor"] => vec![(Method::POST, Route::Successor)],
            ["v1", "changes"] => vec![(Method::GET, Route::Changes)],
            _ => return Err(Error::NotFound(path.to_owned())),
        };
        routes
            .into_iter()
            .find(|(m, _)| m == method)
            .map(|(_, r)| r)
            .ok_or(Error::MethodNotAllowed)
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &Error) -> Response<Full<Bytes>> {
    let status = e.status();
    if status.is_server_error() {
        tracing::error!(error = %e, "PF API internal error");
    }
    json_response(
        status,
        &json!({"error": {"code": e.code(), "message": e.to_string()}}),
    )
}

/// The caller of a request that named no registered PF, for the audit record.
fn unknown_operator() -> Operator {
    Operator {
        id: "-".into(),
        name: "-".into(),
        state: PfState::Revoked,
        scopes: vec![],
        keys: vec![],
        certificates: vec![],
        created: time::OffsetDateTime::UNIX_EPOCH,
        cert_not_after: None,
    }
}

async fn read_body(req: Request<Incoming>) -> Result<(http::request::Parts, Bytes)> {
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT as u64) {
        // Far too large: answer at once; the connection is closed behind the answer.
        return Err(Error::TooLarge(BODY_LIMIT));
    }
    // Reads the body; past the limit it keeps reading, discarding, up to DRAIN_LIMIT, so that
    // a client still sending gets the 413 answer instead of a reset connection.
    let read = async {
        let mut buf = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > DRAIN_LIMIT {
                    break;
                }
                if total <= BODY_LIMIT {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if total > BODY_LIMIT {
            return Err(Error::TooLarge(BODY_LIMIT));
        }
        Ok(Bytes::from(buf))
    };
    let bytes = tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| Error::BadRequest("the request body did not arrive in time".into()))??;
    Ok((parts, bytes))
}

impl Api {
    /// A server over `authority` with the TLS identity `chain`/`key` (see
    /// [`server_identity`]) and an optional fallback for `/crl/` and `/ocsp`. Creates the
    /// operator CA if the data directory has none (needs the passphrase then).
    pub fn new(
        authority: Arc<Authority>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        fallback: Option<Fallback>,
    ) -> Result<Api> {
        let root = operator_ca::ensure(&authority)?;
        let identity = Arc::new(Identity::new(chain, key)?);
        let tls = Arc::new(tls_config_with(
            &root,
            Arc::clone(&identity),
            Arc::new(ClockTime(Arc::clone(authority.clock()))),
        )?);
        Ok(Api {
            anchors: Arc::new(Anchors::new(&authority)?),
            recorder: Recorder::start(authority.clone())?,
            authority,
            tls,
            identity,
            fallback,
        })
    }

    /// Replaces the server certificate and key (a renewal, see [`server_identity`]): every
    /// handshake from now on gets the new one; open connections are not disturbed.
    pub fn replace_identity(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<()> {
        self.identity.replace(chain, key)
    }

    /// The server certificate in force (DER).
    pub fn server_certificate(&self) -> Vec<u8> {
        self.identity.certificate()
    }

    /// Accepts connections on `listener` until `shutdown` completes, then lets open
    /// connections finish (at most 5 s).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let gate = conn_guard::Gate::new(conn_guard::Limits::default());
        self.serve_guarded(listener, gate, shutdown).await
    }

    /// [`Api::serve`] with connections admitted through `gate` (caps in all and per client
    /// address, checked before the TLS handshake) and closed when the client has sent nothing
    /// for the gate's idle time — authenticated operators included.
    pub async fn serve_guarded(
        self: Arc<Self>,
        listener: TcpListener,
        gate: Arc<conn_guard::Gate>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // Out of descriptors and the like: pause instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Some(ticket) = gate.admit(Some(peer.ip())) else {
                        tracing::debug!(%peer, "PF connection over the listener's caps closed");
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let tcp = ticket.io(tcp);
                    let requests = ticket.requests();
                    let api = self.clone();
                    let acceptor = acceptor.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                                            let served = async move {
                        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(t)) => t,
                            Ok(Err(e)) => {
                                tracing::info!(%peer, error = %e, "PF TLS handshake refused");
                                return;
                            }
                            Err(_) => return,
                        };
                        let spki = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| ca::authority::spki_of(c.as_ref()).ok());
                        // The verifier requires a client certificate, so there is one.
                        let Some(spki) = spki else { return };
                        // The PF is looked up by this on every request (see the module docs).
                        let key: Arc<str> = registry::fingerprint(&spki).into();
                        let svc = service_fn(move |req| {
                            let api = api.clone();
                            let key = key.clone();
                            let in_flight = requests.begin();
                            async move {
                                let answer = api.handle(req, key).await;
                                drop(in_flight);
                                Ok::<_, Infallible>(answer)
                            }
                        });
                        let mut builder = auto::Builder::new(TokioExecutor::new());
                        builder
                            .http1()
                            .timer(TokioTimer::new())
                            .header_read_timeout(READ_TIMEOUT);
                        builder
                            .http2()
                            .timer(TokioTimer::new())
                            .keep_alive_interval(H2_PING_INTERVAL)
                            .keep_alive_timeout(H2_PING_TIMEOUT);
                        let conn = builder.serve_connection(TokioIo::new(tls), svc).into_owned();
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(%peer, error = %e, "PF connection ended");
                        }
                      };
                      tokio::select! {
                          () = served => {}
                          () = ticket.closing() => {
                              tracing::debug!(%peer, "idle or evicted PF connection closed");
                          }
                      }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("PF API: connections still open after the drain timeout");
        }
        Ok(())
    }

    async fn handle(&self, req: Request<Incoming>, key: Arc<str>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        if let Some(fallback) = self
            .fallback
            .as_ref()
            .filter(|_| path.starts_with("/crl/") || path == "/ocsp" || path.starts_with("/ocsp/"))
        {
            return self.forward(fallback.clone(), req, key).await;
        }
        let route = Route::of(req.method(), &path);
        let query = req.uri().query().map(Query::parse);
        let body = read_body(req).await;
        let writes = matches!(
            route,
            Ok(Route::ConsentGrant | Route::ConsentDelete(_) | Route::ConsentWithdraw(_))
        );
        let (result, accesses, usage) = if writes {
            // Consent changes wait for their own durable transaction: off the runtime.
            let authority = self.authority.clone();
            let anchors = self.anchors.clone();
            let joined = tokio::task::spawn_blocking(move || {
                // Audit records of consent changes name the operator's client key.
                let actor = ca::officers::Actor::PlatformOperator(key.to_string());
                ca::officers::acting_as(&actor, || {
                    run(&authority, &anchors, &key, route, query.as_ref(), body)
                })
            })
            .await;
            match joined {
                Ok(x) => x,
                Err(e) => return error_response(&Error::Internal(format!("handler failed: {e}"))),
            }
        } else {
            // Read-only lookups (a few sled reads, served from its page cache, and CPU work
            // of tens of microseconds) run in place: a hop to the blocking pool and back
            // costs more than the lookup. Their one durable write, the access record, is
            // done by the recorder's threads below.
            run(
                &self.authority,
                &self.anchors,
                &key,
                route,
                query.as_ref(),
                body,
            )
        };
        if let Err(e) = self.recorder.record(accesses, usage).await {
            return error_response(&e);
        }
        match result {
            Ok((status, v)) => json_response(status, &v),
            Err(e) => error_response(&e),
        }
    }

    async fn forward(
        &self,
        fallback: Fallback,
        req: Request<Incoming>,
        key: Arc<str>,
    ) -> Response<Full<Bytes>> {
        let authority = self.authority.clone();
        let pf = tokio::task::spawn_blocking(move || active_operator(&authority, &key)).await;
        match pf {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return error_response(&e),
            Err(e) => return error_response(&Error::Internal(e.to_string())),
        }
        match read_body(req).await {
            Ok((parts, body)) => fallback(Request::from_parts(parts, body)).await,
            Err(e) => error_response(&e),
        }
    }
}

/// The PF a client key (its [`registry::fingerprint`]) belongs to, if it is active.
fn active_operator(a: &Authority, key: &str) -> Result<Operator> {
    let op = registry::operator_by_fingerprint(a, key)?.ok_or(Error::UnregisteredClient)?;
    if op.state != PfState::Active {
        return Err(Error::OperatorNotActive {
            name: op.name,
            state: op.state.as_str(),
        });
    }
    Ok(op)
}

type Answer = (Result<(StatusCode, Value)>, Vec<Access>, Vec<Usage>);

/// The query parameters of a paged `GET` (`cursor` is also accepted as `since`).
fn page_query(q: Option<&Query>) -> service::PageQuery<'_> {
    let get = |name: &str| q.and_then(|q| q.get(name));
    service::PageQuery {
        sp: get("sp"),
        cursor: get("since").or_else(|| get("cursor")),
        limit: get("limit"),
    }
}

/// A request's query string, split into names and percent-decoded values; a name given
/// twice keeps its first value.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `%XX` decoding (and `+` as a space, as forms send it); a malformed escape is kept as it is,
/// and bytes that are not UTF-8 become U+FFFD — either way the value then fails the
/// parameter's own check with a message naming it.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `/v1` call on a blocking thread: identify the PF, run the operation, and say what to
/// record.
fn run(
    a: &Authority,
    anchors: &Anchors,
    key: &str,
    route: Result<Route>,
    query: Option<&Query>,
    body: Result<(http::request::Parts, Bytes)>,
) -> Answer {
    let operation = route.as_ref().map(Route::operation).unwrap_or("unknown");
    let pf = match active_operator(a, key) {
        Ok(pf) => pf,
        Err(e) => {
            let known = registry::operator_by_fingerprint(a, key).ok().flatten();
            let who = known.unwrap_or_else(unknown_operator);
            let accesses = Call::new(a, anchors, &who, operation).accesses(e.code());
            return (Err(e), accesses, Vec::new());
        }
    };
    let mut call = Call::new(a, anchors, &pf, operation);
    let result: Result<(StatusCode, Value)> = (|| {
        let route = route?;
        let (_, body) = body?;
        Ok(match route {
            Route::Validity => (StatusCode::OK, service::validity(&mut call, &body)?),
            Route::ConsentGrant => (
                StatusCode::CREATED,
                service::consent_grant(&mut call, &body)?,
            ),
            Route::ConsentDelete(id) => {
                let sp = match query.and_then(|q| q.get("sp")) {
                    Some(sp) => sp.to_owned(),
                    None => service::sp_of_body(&body)?,
                };
                (
                    StatusCode::OK,
                    service::consent_withdraw_by_sp(&mut call, &id, &sp)?,
                )
            }
            Route::ConsentWithdraw(id) => (
                StatusCode::OK,
                service::consent_withdraw_by_holder(&mut call, &id, &body)?,
            ),
            Route::FourAttributes => (StatusCode::OK, service::four_attributes(&mut call, &body)?),
            Route::Successor => (StatusCode::OK, service::successor(&mut call, &body)?),
            Route::ConsentList => (
                StatusCode::OK,
                service::consents_list(&mut call, &page_query(query))?,
            ),
            Route::Changes => (
                StatusCode::OK,
                service::changes(&mut call, &page_query(query))?,
            ),
        })
    })();
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    let accesses = call.accesses(outcome);
    let usage = call.usage(outcome);
    (result, accesses, usage)
}
