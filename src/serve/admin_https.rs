//! The remote admin API (`jpki serve --admin-https ADDR`): the admin socket's requests over
//! mutual TLS, for officers at municipal offices and the CA's own staff (docs/officers.md).
//!
//! One route, `POST /v1/admin`, whose body is one request of the admin protocol
//! (`ca::api::Request`, or `platform::Request` for `pf-…` and `officer-add`) and whose answer
//! is the admin socket's `{"ok": …}` / `{"error": {code, message, …}}` with an HTTP status
//! ([`status_of`]); the `jpki` CLI sends the same requests with `--server URL --cert --key`
//! (`src/cli/remote.rs`) and rebuilds the same typed errors.
//!
//! Every request, in this order:
//! 1. **TLS**: the client certificate must chain to the operator CA and be within its
//!    validity at the authority's clock (rustls `WebPkiClientVerifier`, the platform API's
//!    configuration); otherwise the handshake fails and nothing reaches the authority.
//! 2. **Rate limit**, per client key (each officer has one key): a token bucket
//!    ([`Limiter`]); an empty bucket answers 429 with `Retry-After`. Keyed before
//!    authentication so that a certificate of the operator CA that names no officer (a
//!    platform operator's) cannot flood the audit trail with refusals either. The first
//!    refusal of a run of them is audited (`refused`, code `rate_limited`), not every one.
//! 3. **Authentication**: `ca::officers::authenticate` — unknown key, suspended or revoked
//!    officer, certificate outside its validity: 401 with the typed code, audited as
//!    `unauthenticated:key=<fingerprint>`. Checked on every request, so a suspension takes
//!    effect on an open keep-alive connection.
//! 4. **Authorisation** and the operation: `Authority::handle_as` (`ca::officers::authorize`,
//!    refusals audited, 403) for CA requests; the same check for platform requests here.
//!
//! The server certificate is issued by the operator CA for the listener's address and
//! `listen.admin_names` (as for the platform API).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca::api::Coded;
use ca::officers::{self, Actor};
use ca::Authority;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result};

/// The one route.
pub const PATH: &str = "/v1/admin";
/// Largest request accepted (an import of many residents, a CSR): the admin socket's line.
const BODY_LIMIT: usize = 1 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-officer request rate: a bucket of `burst` requests refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        let c = super::AdminConfig::default();
        RateLimit {
            per_minute: c.requests_per_minute,
            burst: c.burst,
        }
    }
}

/// What `jpki serve` needs to run the remote admin API.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub addr: std::net::SocketAddr,
    /// Extra DNS names or IPs for the server certificate.
    pub names: Vec<String>,
    pub rate: RateLimit,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    /// Whether the current run of refusals has been audited.
    refusal_audited: bool,
}

/// Token buckets by client key. Real (monotonic) time, not the authority's clock: a rate is
/// about this process's load, and a test clock stopped at an instant must not stop refills.
pub struct Limiter {
    rate: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A refused request: how long until a token is back, and whether this is the first refusal
/// of a run (to be audited).
#[derive(Debug, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
    pub first: bool,
}

impl Limiter {
    pub fn new(rate: RateLimit) -> Limiter {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket at `now`, or says how long to wait.
    pub fn take(&self, key: &str, now: Instant) -> std::result::Result<(), RateLimited> {
        let per_second = f64::from(self.rate.per_minute) / 60.0;
        let burst = f64::from(self.rate.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            last: now,
            refusal_audited: false,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refusal_audited = false;
            return Ok(());
        }
        let wait = if per_second > 0.0 {
            ((1.0 - b.tokens) / per_second).ceil().max(1.0)
        } else {
            3600.0
        };
        let first = !b.refusal_audited;
        b.refusal_audited = true;
        Err(RateLimited {
            retry_after: Duration::from_secs_f64(wait),
            first,
        })
    }
}

/// The HTTP status of an admin error, by its stable code (the body carries the code itself).
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "forbidden" => StatusCode::FORBIDDEN,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "unknown_resident" | "unknown_serial" | "unknown_officer" | "unknown_operator"
        | "unknown_sp" | "not_found" => StatusCode::NOT_FOUND,
        "invalid" | "csr" | "bad_request" | "policy" | "unknown_scope" => StatusCode::BAD_REQUEST,
        "already_revoked"
        | "held"
        | "officer_exists"
        | "operator_exists"
        | "conflict"
        | "duplicate_resident"
        | "officer_not_active"
        | "operator_not_active" => StatusCode::CONFLICT,
        "retry" | "locked" => StatusCode::SERVICE_UNAVAILABLE,
        "store" | "io" | "sign" | "internal" | "key_file" | "hsm" | "hsm_module" | "hsm_pin"
        | "hsm_no_key" | "audit_broken" | "no_passphrase" | "wrong_passphrase" => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_answer(status: StatusCode, wire: &ca::api::WireError) -> Response<Full<Bytes>> {
    if status.is_server_error() {
        tracing::error!(code = %wire.code, "admin API internal error");
    }
    answer(status, &json!({ "error": wire }))
}

/// A plain error of this API's own (no typed variant behind it).
fn own_error(code: &str, message: String) -> ca::api::WireError {
    ca::api::WireError {
        code: code.to_owned(),
        message,
        subject: None,
        fields: None,
    }
}

/// The authority's clock as rustls' source of time (client certificates are checked at it).
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

/// The remote admin API server, or (with `revocation`) the registered verifiers' listener.
pub struct AdminApi {
    authority: Arc<Authority>,
    tls: Arc<rustls::ServerConfig>,
    /// The server certificate in force, replaced in place by [`super::renew::Watch`].
    identity: Arc<platform::Identity>,
    /// The names its server certificate carries.
    names: Vec<String>,
    limiter: Limiter,
    /// Set for the verifiers' listener: CRLs and OCSP, for registered parties only.
    revocation: Option<Revocation>,
}

/// What the verifiers' listener serves.
#[derive(Clone)]
pub struct Revocation {
    pub publisher: Arc<crl_publisher::Publisher>,
    pub responder: ocsp_responder::Responder,
}

impl AdminApi {
    /// A server for a listener at `local`: its certificate from the operator CA names the
    /// listener's address and `names` (see [`super::pf_server_names`]).
    pub fn new(
        authority: Arc<Authority>,
        local: std::net::SocketAddr,
        names: &[String],
        rate: RateLimit,
    ) -> Result<AdminApi> {
        let root = platform::operator_ca::ensure(&authority)?;
        let names = super::pf_server_names(local, names);
        let (chain, key) = platform::server_identity(&authority, &names)?;
        let identity = Arc::new(platform::Identity::new(chain, key)?);
        let tls = platform::http::tls_config_with(
            &root,
            Arc::clone(&identity),
            Arc::new(ClockTime(Arc::clone(authority.clock()))),
        )?;
        Ok(AdminApi {
            authority,
            tls: Arc::new(tls),
            identity,
            names,
            limiter: Limiter::new(rate),
            revocation: None,
        })
    }

    /// The registered verifiers' listener (`--verifiers-https`): the same mutual TLS, and
    /// every request from a registered verifier (`jpki verifier add`) or an active platform
    /// operator goes to the CRL publisher and the OCSP responder; anyone else gets 403 (a
    /// known key that is not a verifier) or 401.
    pub fn verifiers(
        authority: Arc<Authority>,
        local: std::net::SocketAddr,
        names: &[String],
        revocation: Revocation,
    ) -> Result<AdminApi> {
        let mut api = AdminApi::new(authority, local, names, RateLimit::default())?;
        api.revocation = Some(revocation);
        Ok(api)
    }

    /// The server certificate in force (DER).
    pub fn server_certificate(&self) -> Vec<u8> {
        self.identity.certificate()
    }

    /// The names its server certificate carries.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Replaces the server certificate for every later handshake (a renewal).
    pub fn replace_identity(
        &self,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<()> {
        Ok(self.identity.replace(chain, key)?)
    }

    /// Accepts connections through `gate` until `shutdown`, then lets open ones finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        gate: Arc<conn_guard::Gate>,
        shutdown: impl Future<Output = ()>,
    ) {
        let acceptor = TlsAcceptor::from(Arc::clone(&self.tls));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(ticket) = gate.admit(Some(peer.ip())) else {
                tracing::debug!(%peer, "admin API connection over the caps closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tcp = ticket.io(tcp);
            let requests = ticket.requests();
            let api = Arc::clone(&self);
            let acceptor = acceptor.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let served = async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                        .await
                    {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "admin API TLS handshake refused");
                            return;
                        }
                        Err(_) => return,
                    };
                    // The verifier requires a client certificate, so there is one.
                    let Some(spki) = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| ca::records::spki_of(c.as_ref()).ok())
                    else {
                        return;
                    };
                    let spki: Arc<[u8]> = spki.into();
                    let svc = service_fn(move |req| {
                        let api = Arc::clone(&api);
                        let spki = Arc::clone(&spki);
                        let in_flight = requests.begin();
                        async move {
                            let r = api.handle(req, spki).await;
                            drop(in_flight);
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(READ_TIMEOUT);
                    builder.http2().timer(TokioTimer::new());
                    let conn = builder
                        .serve_connection(TokioIo::new(tls), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "admin API connection ended");
                    }
                };
                tokio::select! {
                    () = served => {}
                    () = ticket.closing() => {}
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("admin API: connections still open after the drain timeout");
        }
    }

    async fn handle(&self, req: Request<Incoming>, spki: Arc<[u8]>) -> Response<Full<Bytes>> {
        if let Some(r) = &self.revocation {
            let authority = Arc::clone(&self.authority);
            let checked = tokio::task::spawn_blocking(move || registered(&authority, &spki)).await;
            return match checked {
                Ok(Ok(())) => super::http::route(&r.publisher, &r.responder, req).await,
                Ok(Err(Refusal { wire, .. })) => error_answer(status_of(&wire.code), &wire),
                Err(e) => error_answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &own_error("internal", format!("request failed: {e}")),
                ),
            };
        }
        if req.uri().path() != PATH {
            return error_answer(
                StatusCode::NOT_FOUND,
                &own_error("not_found", format!("no such route (use POST {PATH})")),
            );
        }
        if req.method() != Method::POST {
            return error_answer(
                StatusCode::METHOD_NOT_ALLOWED,
                &own_error("bad_request", format!("{PATH} takes POST")),
            );
        }
        let key = officers::fingerprint(&spki);
        let limited = self.limiter.take(&key, Instant::now());
        let body = match tokio::time::timeout(
            READ_TIMEOUT,
            Limited::new(req.into_body(), BODY_LIMIT).collect(),
        )
        .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return error_answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &own_error(
                        "bad_request",
                        format!("the request is over {BODY_LIMIT} bytes or broken off"),
                    ),
                )
            }
            Err(_) => {
                return error_answer(
                    StatusCode::REQUEST_TIMEOUT,
                    &own_error("bad_request", "the request did not arrive in time".into()),
                )
            }
        };
        let authority = Arc::clone(&self.authority);
        let joined =
            tokio::task::spawn_blocking(move || run(&authority, &spki, &body, limited)).await;
        match joined {
            Ok(Ok(ok)) => answer(StatusCode::OK, &json!({ "ok": ok })),
            Ok(Err(Refusal { wire, retry_after })) => {
                let mut r = error_answer(status_of(&wire.code), &wire);
                if let Some(after) = retry_after {
                    r.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from(after.as_secs()),
                    );
                }
                r
            }
            Err(e) => error_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                &own_error("internal", format!("request failed: {e}")),
            ),
        }
    }
}

/// A refused request: what the client is told, and when it may try again (429).
struct Refusal {
    wire: ca::api::WireError,
    retry_after: Option<Duration>,
}

impl<E: Coded> From<E> for Refusal {
    fn from(e: E) -> Refusal {
        Refusal {
            wire: e.wire(),
            retry_after: None,
        }
    }
}

/// One request, on a blocking thread: rate limit, authenticate, authorise, carry out.
fn run(
    authority: &Authority,
    spki: &[u8],
    body: &[u8],
    limited: std::result::Result<(), RateLimited>,
) -> std::result::Result<Value, Refusal> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ca::Error::Invalid("the request is not UTF-8".into()))?;
    // Either transport's request type, as the admin socket tries them.
    let parsed: std::result::Result<ca::api::Request, _> = serde_json::from_str(text);
    let pf: Option<platform::Request> = match &parsed {
        Ok(_) => None,
        Err(_) => serde_json::from_str(text).ok(),
    };
    let op = match (&parsed, &pf) {
        (Ok(r), _) => r.op(),
        (_, Some(r)) => r.op(),
        _ => "unknown".into(),
    };
    let key = officers::fingerprint(spki);
    let now = authority.clock().now();
    // Who: the officer, or the key (for the audit record of a refusal).
    let officer = officers::authenticate(authority.storage().as_ref(), spki, now);
    let actor = match &officer {
        Ok(o) => Actor::Officer(o.clone()),
        Err(_) => Actor::Unauthenticated(key.clone()),
    };
    if let Err(l) = limited {
        let message = format!(
            "too many requests from {}: try again in {} s",
            actor.label(),
            l.retry_after.as_secs()
        );
        if l.first {
            audit(authority, &actor, &op, "rate_limited");
        }
        tracing::warn!(actor = %actor.label(), "admin API rate limit");
        return Err(Refusal {
            wire: ca::api::WireError {
                code: "rate_limited".into(),
                message,
                subject: None,
                fields: Some(json!({ "retry_after_seconds": l.retry_after.as_secs() })),
            },
            retry_after: Some(l.retry_after),
        });
    }
    if let Err(e) = officer {
        audit(authority, &actor, &op, e.code());
        let mut wire = e.wire();
        // The client is told why, under one code for "who are you?" (401), with the
        // authentication's own code kept in the fields.
        wire.fields = Some(json!({ "reason": e.code() }));
        wire.code = "unauthenticated".into();
        wire.subject = None;
        return Err(Refusal {
            wire,
            retry_after: None,
        });
    }
    let value = match (parsed, pf) {
        (Ok(req), _) => authority.handle_as(&actor, req)?,
        (Err(_), Some(req)) => {
            let allowed = req
                .action(authority)
                .and_then(|action| officers::authorize(&actor, &action));
            if let Err(e) = allowed {
                if matches!(e, ca::Error::Forbidden { .. }) {
                    officers::audit_refusal(authority, &actor, &op, &e)?;
                }
                return Err(e.into());
            }
            officers::acting_as(&actor, || platform::handle(authority, req))?
        }
        (Err(e), None) => {
            return Err(ca::Error::Invalid(format!("not an admin request: {e}")).into());
        }
    };
    Ok(value)
}

/// Whether a client key may fetch revocation data: a registered verifier's, or an active
/// platform operator's. Refusals are logged, not audited: reading public-key status changes
/// nothing, and a verifier polls often.
fn registered(authority: &Authority, spki: &[u8]) -> std::result::Result<(), Refusal> {
    let now = authority.clock().now();
    match officers::authenticate(authority.storage().as_ref(), spki, now) {
        Ok(o) if o.role == officers::Role::Verifier => return Ok(()),
        Ok(o) => {
            return Err(Refusal::from(ca::Error::Forbidden {
                actor: Actor::Officer(o).label(),
                action: "fetch revocation data (register a verifier: `jpki verifier add`)".into(),
            }))
        }
        Err(ca::Error::UnknownOfficer(_)) => {}
        Err(e) => {
            let mut wire = e.wire();
            wire.code = "unauthenticated".into();
            return Err(Refusal {
                wire,
                retry_after: None,
            });
        }
    }
    match platform::registry::operator_by_key(authority, spki) {
        Ok(Some(op)) if op.state == platform::registry::PfState::Active => Ok(()),
        Ok(Some(op)) => Err(Refusal {
            wire: own_error(
                "unauthenticated",
                format!("platform operator {} is {}", op.name, op.state.as_str()),
            ),
            retry_after: None,
        }),
        Ok(None) => Err(Refusal {
            wire: own_error(
                "unauthenticated",
                "this client key is neither a registered verifier's nor a platform operator's"
                    .into(),
            ),
            retry_after: None,
        }),
        Err(e) => Err(Refusal::from(e)),
    }
}

/// Binds and announces the registered verifiers' listener; the caller spawns
/// [`AdminApi::serve`].
pub async fn start_verifiers(
    authority: &Arc<Authority>,
    addr: std::net::SocketAddr,
    names: &[String],
    revocation: Revocation,
) -> Result<(TcpListener, Arc<AdminApi>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::Serve(format!(
            "cannot listen for registered verifiers on {addr}: {e}"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Serve(e.to_string()))?;
    let api = tokio::task::block_in_place(|| {
        AdminApi::verifiers(Arc::clone(authority), local, names, revocation)
    })?;
    eprintln!(
        "jpki serve: CRLs and OCSP for registered verifiers at https://{local}/ (client certificates from the operator CA)"
    );
    tracing::info!(%local, "registered verifiers' listener");
    Ok((listener, Arc::new(api)))
}

/// Records a refusal (best effort: a store that cannot record it is logged, and the client
/// is refused all the same).
fn audit(authority: &Authority, actor: &Actor, op: &str, code: &str) {
    let now = authority.clock().now();
    let done = officers::acting_as(actor, || {
        authority
            .storage()
            .transact(&|t| ca::storage::audit(t, now, "refused", op, code))
    });
    if let Err(e) = done {
        tracing::error!(error = %e, "could not audit an admin API refusal");
    }
}

/// Binds and announces the admin API; the caller spawns [`AdminApi::serve`].
pub async fn start(
    authority: &Arc<Authority>,
    settings: &AdminSettings,
) -> Result<(TcpListener, Arc<AdminApi>)> {
    let listener = TcpListener::bind(settings.addr).await.map_err(|e| {
        Error::Serve(format!(
            "cannot listen for the admin API on {}: {e}",
            settings.addr
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Serve(e.to_string()))?;
    // Issuing its server certificate writes the store: off the runtime's worker.
    let api = tokio::task::block_in_place(|| {
        AdminApi::new(Arc::clone(authority), local, &settings.names, settings.rate)
    })?;
    eprintln!(
        "jpki serve: admin API at https://{local}{PATH} (officers' client certificates from the operator CA)"
    );
    tracing::info!(%local, "admin API listener");
    Ok((listener, Arc::new(api)))
}

impl super::renew::RenewableListener for AdminApi {
    fn server_certificate(&self) -> Vec<u8> {
        AdminApi::server_certificate(self)
    }
    fn names(&self) -> &[String] {
        AdminApi::names(self)
    }
    fn replace_identity(
        &self,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> crate::Result<()> {
        AdminApi::replace_identity(self, chain, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_refills_at_its_rate() {
        let l = Limiter::new(RateLimit {
            per_minute: 60,
            burst: 2,
        });
        let t0 = Instant::now();
        assert!(l.take("a", t0).is_ok());
        assert!(l.take("a", t0).is_ok());
        let e = l.take("a", t0).unwrap_err();
        assert_eq!(e.retry_after, Duration::from_secs(1));
        assert!(e.first);
        // The second refusal of the run is not audited again.
        assert!(!l.take("a", t0).unwrap_err().first);
        // Another key has its own bucket.
        assert!(l.take("b", t0).is_ok());
        // One second later one token is back, not more.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.take("a", t1).is_ok());
        assert!(l.take("a", t1).is_err());
        // A long pause refills up to the burst only.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(l.take("a", t2).is_ok());
        assert!(l.take("a", t2).is_ok());
        let e = l.take("a", t2).unwrap_err();
        assert!(e.first, "a new run of refusals after a success");
    }

    #[test]
    fn a_slow_rate_asks_for_a_longer_wait() {
        let l = Limiter::new(RateLimit {
            per_minute: 1,
            burst: 1,
        });
        let t0 = Instant::now();
        assert!(l.take("a", t0).is_ok());
        assert_eq!(
            l.take("a", t0).unwrap_err().retry_after,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn codes_map_to_statuses() {
        assert_eq!(status_of("forbidden"), StatusCode::FORBIDDEN);
        assert_eq!(status_of("unauthenticated"), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of("rate_limited"), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_of("unknown_resident"), StatusCode::NOT_FOUND);
        assert_eq!(status_of("store"), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status_of("too_young_to_sign"),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
