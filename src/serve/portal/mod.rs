//! The holder portal (`jpki serve --portal ADDR`): an HTTPS site where a holder logs in with
//! the card's authentication certificate and sees their certificates, who obtained their
//! information (the platform access log) and the consents they gave — and can withdraw a
//! consent, report the card lost, and download their own data.
//!
//! ## Flow of one request (this module, top-down)
//!
//! 1. The TLS handshake ([`tls`]): the server certificate comes from the operator CA (the
//!    platform API's CA; renewed in place by `serve::renew::Watch`), a client certificate is
//!    requested but optional and, when sent, validated against the holder roots.
//! 2. [`Portal::handle`]: the head is read, a `POST` body (urlencoded form, 64 KiB at most),
//!    then [`Portal::route`] runs on a blocking thread (store reads and durable writes).
//! 3. Pages that show or change a holder's data need a **session**: a random 256-bit id in a
//!    `__Host-` cookie (`Secure; HttpOnly; SameSite=Strict; Path=/`), held in memory, that
//!    names the holder and the one authentication certificate it was opened with. It lasts
//!    [`SESSION_MINUTES`] at most and ends at once when that certificate is no longer good
//!    (revoked, held, expired — checked in the store on every request) or when the
//!    connection presents a different client certificate.
//! 4. Every form carries a CSRF token: the session's, or before login the pending login's
//!    (bound to a `__Host-` cookie). A `POST` whose token does not match, or whose `Origin`
//!    names another site, changes nothing (403).
//! 5. Every answer has a strict Content-Security-Policy (`default-src 'none'`; style and the
//!    one script from this origin only; `form-action 'self'`; `frame-ancestors 'none'`),
//!    `Cache-Control: no-store`, HSTS, `nosniff` and `Referrer-Policy: same-origin`.
//!
//! ## Login
//! * **Mutual TLS**: the browser presents the card's authentication certificate; the holder
//!   presses "log in with the certificate" (a CSRF-protected form, so a third-party page cannot
//!   log the browser in).
//! * **Challenge–response**: the login page shows a challenge (`jpki-portal-login:` and 32
//!   random octets), valid [`CHALLENGE_MINUTES`] and usable once; the holder signs it with
//!   `jpki token login --challenge FILE --pem` (PKCS#1 v1.5 SHA-256 with the authentication key)
//!   and pastes or uploads the result (the certificate and the signature).
//!
//! Either way the certificate must be one this authority issued (the same DER in the store),
//! of kind authentication — a signing certificate is refused with words — and good now. Login
//! attempts are limited to [`LOGIN_ATTEMPTS`] per client address per [`LOGIN_WINDOW`].
//!
//! ## Changes and audit
//! A consent is withdrawn with the statement `{"withdraw":"ID"}` signed by the holder's
//! signing key (CMS, checked like the platform API checks it) through
//! [`platform::registry::consent_withdraw`] — the platform API refuses the consent from the
//! next request on. A lost card is the register event `card-lost`
//! ([`ca::Authority::event`]): both certificates on hold in one unit of work, the OCSP
//! answers and CRLs follow through the authority's listener. Each of these, each login and
//! each data export also writes a `portal:<action>` audit record naming the holder as the
//! actor (`actor=holder:ID`). Logs and URLs carry serials and consent ids only, never a
//! name, address, birth date or sex.

mod pages;
mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ca::records::{CertKind, CertRecord, State};
use ca::Authority;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use policies::Hierarchy;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::{Error, Result};
use pages::{AccessRow, CertRow, ConsentRow, Lang, Paging};

/// A session lasts this long at most.
pub const SESSION_MINUTES: i64 = 15;
/// A login challenge is valid this long.
pub const CHALLENGE_MINUTES: i64 = 5;
/// Login attempts allowed per client address per [`LOGIN_WINDOW`].
pub const LOGIN_ATTEMPTS: usize = 10;
/// The window of the login rate limit.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Rows per page of the lists.
pub const PAGE_SIZE: usize = 20;
/// Largest form accepted.
const BODY_LIMIT: usize = 64 * 1024;
/// Time allowed for a TLS handshake, and to send a request's head or body.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending logins and sessions kept at most (oldest dropped first beyond this).
const MAX_ENTRIES: usize = 10_000;

/// The pages behind the login.
const PAGES: [&str; 7] = [
    "/certificates",
    "/access",
    "/consents",
    "/consents/withdraw",
    "/lost",
    "/export.json",
    "/logout",
];

const SESSION_COOKIE: &str = "__Host-jpki-session";
const LOGIN_COOKIE: &str = "__Host-jpki-login";
const LANG_COOKIE: &str = "__Host-jpki-lang";

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A logged-in holder.
#[derive(Clone)]
struct Session {
    holder: String,
    /// The authentication certificate the session is bound to.
    cert: CertRecord,
    csrf: String,
    expires: OffsetDateTime,
}

/// A login page handed out: its challenge and CSRF token.
struct Pending {
    challenge: String,
    csrf: String,
    expires: OffsetDateTime,
}

#[derive(Default)]
struct Memory {
    sessions: HashMap<String, Session>,
    pending: HashMap<String, Pending>,
    attempts: HashMap<IpAddr, Vec<Instant>>,
}

/// The running portal.
pub struct Portal {
    authority: Arc<Authority>,
    identity: Arc<platform::Identity>,
    tls: Arc<rustls::ServerConfig>,
    verifier: Arc<tls::HolderCerts>,
    memory: Mutex<Memory>,
}

/// One request, decoded.
struct Req {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    cookies: HashMap<String, String>,
    form: HashMap<String, String>,
    ip: IpAddr,
    /// The client certificate of the connection, if one was presented (validated).
    client_cert: Option<Vec<u8>>,
    /// `Origin` is absent or names this site.
    same_origin: bool,
    lang: Lang,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    fn f(&self, k: &str) -> Option<&str> {
        self.form.get(k).map(String::as_str)
    }
}

/// One answer.
struct Resp {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    cookies: Vec<String>,
    location: Option<String>,
    attachment: Option<&'static str>,
}

impl Resp {
    fn html(status: StatusCode, body: String) -> Resp {
        Resp {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            cookies: Vec::new(),
            location: None,
            attachment: None,
        }
    }
    fn redirect(to: &str) -> Resp {
        Resp {
            location: Some(to.to_owned()),
            ..Resp::html(StatusCode::SEE_OTHER, String::new())
        }
    }
    fn cookie(mut self, c: String) -> Resp {
        self.cookies.push(c);
        self
    }
}

fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

fn random_hex(authority: &Authority) -> Result<String> {
    // 16 random octets (the first has 7 bits) from the authority's generator, twice: 255 bits.
    let a = authority.random_serial()?;
    let b = authority.random_serial()?;
    Ok(format!("{}{}", hex::encode(a), hex::encode(b)))
}

/// Decodes `application/x-www-form-urlencoded` (and query strings).
fn urldecode_pairs(s: &str) -> HashMap<String, String> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn cookies_of(headers: &http::HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The PEM blocks of `label` in `text`, decoded.
fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&begin) {
        let after = &rest[i + begin.len()..];
        let Some(j) = after.find(&end) else { break };
        let b64: String = after[..j].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
            out.push(der);
        }
        rest = &after[j + end.len()..];
    }
    out
}

/// A CMS signature as pasted or uploaded: PEM (`CMS` or `PKCS7`) or base64 of the DER.
fn cms_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return pem_blocks(t, "CMS")
            .into_iter()
            .chain(pem_blocks(t, "PKCS7"))
            .next();
    }
    let b64: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Rows `page` (1-based) of `all`, and where that is.
fn paged<T>(all: Vec<T>, page: Option<&str>) -> (Vec<T>, Paging) {
    let total = all.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = page
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let rows = all
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    (rows, Paging { page, pages, total })
}

/// Why a login was refused, in the holder's language.
fn refusal(lang: Lang, why: Refused) -> &'static str {
    let (ja, en) = match why {
        Refused::NoCertificate => (
            "ブラウザーから証明書が送られていません。カードを接続するか、チャレンジへの署名でログインしてください。",
            "Your browser sent no certificate. Connect your card, or log in by signing the challenge.",
        ),
        Refused::Signing => (
            "署名用電子証明書ではログインできません。利用者証明用電子証明書を使ってください。",
            "A signing certificate cannot be used to log in. Use your authentication certificate.",
        ),
        Refused::Unknown => (
            "この証明書は、この認証局が発行したものではありません。",
            "This certificate was not issued by this authority.",
        ),
        Refused::Revoked => (
            "この証明書は失効しているため、ログインできません。",
            "This certificate is revoked; it cannot be used to log in.",
        ),
        Refused::Held => (
            "この証明書は一時停止されているため、ログインできません。",
            "This certificate is on hold; it cannot be used to log in.",
        ),
        Refused::Expired => (
            "この証明書は有効期間外です。",
            "This certificate is outside its validity period.",
        ),
        Refused::BadSignature => (
            "署名を確認できませんでした。表示中のチャレンジに署名したか確かめてください。",
            "The signature does not verify. Check that you signed the challenge shown.",
        ),
        Refused::Malformed => (
            "貼り付けた内容に証明書と署名がありません。",
            "What you pasted has no certificate and signature.",
        ),
        Refused::Stale => (
            "このログイン画面は期限切れです。もう一度お試しください。",
            "This login page has expired. Please try again.",
        ),
        Refused::TooMany => (
            "ログインの試行が多すぎます。しばらくしてからお試しください。",
            "Too many login attempts. Please wait a minute and try again.",
        ),
    };
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    NoCertificate,
    Signing,
    Unknown,
    Revoked,
    Held,
    Expired,
    BadSignature,
    Malformed,
    Stale,
    TooMany,
}

impl Portal {
    /// A portal over `authority` whose server certificate (from the operator CA, like the
    /// platform API's) names `names`. Needs the authority's passphrase.
    pub fn new(authority: Arc<Authority>, names: &[String]) -> Result<Arc<Portal>> {
        platform::operator_ca::ensure(&authority)?;
        let (chain, key) = platform::server_identity(&authority, names)?;
        let identity = Arc::new(platform::Identity::new(chain, key)?);
        let roots = [
            authority.root(Hierarchy::Auth).der.clone(),
            authority.root(Hierarchy::Signing).der.clone(),
        ];
        let verifier = Arc::new(tls::HolderCerts::new(
            &roots,
            Arc::clone(authority.clock()),
        )?);
        let tls = Arc::new(tls::config(Arc::clone(&identity), Arc::clone(&verifier))?);
        Ok(Arc::new(Portal {
            authority,
            identity,
            tls,
            verifier,
            memory: Mutex::new(Memory::default()),
        }))
    }

    /// Replaces the server certificate and key for every later handshake (renewal).
    pub fn replace_identity(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<()> {
        Ok(self.identity.replace(chain, key)?)
    }

    /// The server certificate in force (DER).
    pub fn server_certificate(&self) -> Vec<u8> {
        self.identity.certificate()
    }

    /// Accepts connections until `shutdown` resolves (connections admitted through `gate`).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        gate: Arc<conn_guard::Gate>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let acceptor = TlsAcceptor::from(Arc::clone(&self.tls));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "portal accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Some(ticket) = gate.admit(Some(peer.ip())) else { continue };
                    let tcp = ticket.io(tcp);
                    let (portal, acceptor, watcher) =
                        (Arc::clone(&self), acceptor.clone(), graceful.watcher());
                    tokio::spawn(async move {
                        let served = async move {
                            let tls = match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(t)) => t,
                                Ok(Err(e)) => {
                                    tracing::info!(%peer, error = %e, "portal TLS handshake refused");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let cert: Option<Arc<Vec<u8>>> = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| Arc::new(c.to_vec()));
                            let svc = service_fn(move |req| {
                                let (portal, cert) = (Arc::clone(&portal), cert.clone());
                                async move {
                                    Ok::<_, Infallible>(portal.handle(req, peer.ip(), cert).await)
                                }
                            });
                            let conn = hyper::server::conn::http1::Builder::new()
                                .timer(TokioTimer::new())
                                .header_read_timeout(IO_TIMEOUT)
                                .serve_connection(TokioIo::new(tls), svc);
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(%peer, error = %e, "portal connection ended");
                            }
                        };
                        tokio::select! {
                            () = served => {}
                            () = ticket.closing() => {}
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        ip: IpAddr,
        cert: Option<Arc<Vec<u8>>>,
    ) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let form = if parts.method == Method::POST {
            let limited = http_body_util::Limited::new(body, BODY_LIMIT);
            match tokio::time::timeout(IO_TIMEOUT, limited.collect()).await {
                Ok(Ok(b)) => urldecode_pairs(&String::from_utf8_lossy(&b.to_bytes())),
                _ => {
                    return finish(Resp::html(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large or too slow".into(),
                    ))
                }
            }
        } else {
            HashMap::new()
        };
        let cookies = cookies_of(&parts.headers);
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let same_origin = match parts.headers.get(header::ORIGIN) {
            None => true,
            Some(o) => o.to_str().ok() == Some(format!("https://{host}").as_str()),
        };
        let r = Req {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: urldecode_pairs(parts.uri.query().unwrap_or("")),
            lang: Lang::of(cookies.get(LANG_COOKIE).map(String::as_str)),
            cookies,
            form,
            ip,
            client_cert: cert.map(|c| c.to_vec()),
            same_origin,
        };
        let portal = Arc::clone(&self);
        let lang = r.lang;
        match tokio::task::spawn_blocking(move || portal.route(&r)).await {
            Ok(Ok(resp)) => finish(resp),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "portal request failed");
                finish(Resp::html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pages::message(
                        lang,
                        if lang == Lang::Ja {
                            "エラー"
                        } else {
                            "Error"
                        },
                        if lang == Lang::Ja {
                            "処理できませんでした。しばらくしてからお試しください。"
                        } else {
                            "Something went wrong. Please try again later."
                        },
                        None,
                        "/",
                    ),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "portal handler failed");
                finish(Resp::html(StatusCode::INTERNAL_SERVER_ERROR, String::new()))
            }
        }
    }

    /// Routes a request (blocking: reads and writes the store).
    fn route(&self, r: &Req) -> Result<Resp> {
        let lang = r.lang;
        if r.method == Method::POST && !r.same_origin {
            return Ok(forbidden(lang, None));
        }
        match (&r.method, r.path.as_str()) {
            (&Method::GET, "/static/portal.css") => return Ok(asset("text/css", pages::CSS)),
            (&Method::GET, "/static/portal.js") => return Ok(asset("text/javascript", pages::JS)),
            (&Method::GET, "/lang") => {
                let to = Lang::of(r.q("to"));
                let back = r
                    .q("back")
                    .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
                    .unwrap_or("/");
                return Ok(Resp::redirect(back).cookie(set_cookie(
                    LANG_COOKIE,
                    to.code(),
                    400 * 24 * 3600,
                )));
            }
            (&Method::GET, "/") => {
                return Ok(match self.session(r)? {
                    Ok(_) => Resp::redirect("/certificates"),
                    Err(resp) => resp,
                })
            }
            (&Method::GET, "/login") => return self.login_page(lang, None, StatusCode::OK),
            (&Method::GET, "/login/challenge.txt") => {
                let m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                let pending = r.cookies.get(LOGIN_COOKIE).and_then(|id| m.pending.get(id));
                return Ok(match pending {
                    Some(p) => Resp {
                        content_type: "text/plain; charset=utf-8",
                        attachment: Some("challenge.txt"),
                        ..Resp::html(StatusCode::OK, p.challenge.clone())
                    },
                    None => Resp::redirect("/login"),
                });
            }
            (&Method::POST, "/login/tls") | (&Method::POST, "/login/challenge") => {
                return self.login(r)
            }
            _ => {}
        }
        if !PAGES.contains(&r.path.as_str()) {
            // Not a page (a favicon, a typo): 404 without a detour to the login page, whose
            // visit would replace the pending login of a page already open.
            return Ok(Resp::html(
                StatusCode::NOT_FOUND,
                pages::message(
                    lang,
                    if lang == Lang::Ja {
                        "見つかりません"
                    } else {
                        "Not found"
                    },
                    if lang == Lang::Ja {
                        "このページはありません。"
                    } else {
                        "There is no such page."
                    },
                    None,
                    "/",
                ),
            ));
        }
        let session = match self.session(r)? {
            Ok(s) => s,
            Err(resp) => return Ok(resp),
        };
        if r.method == Method::POST && r.f("csrf") != Some(session.csrf.as_str()) {
            return Ok(forbidden(lang, Some(&session.csrf)));
        }
        match (&r.method, r.path.as_str()) {
            (&Method::GET, "/certificates") => self.certificates(r, &session),
            (&Method::GET, "/access") => self.access(r, &session),
            (&Method::GET, "/consents") => self.consents(r, &session),
            (&Method::GET, "/consents/withdraw") => self.withdraw_page(r, &session, None),
            (&Method::POST, "/consents/withdraw") => self.withdraw(r, &session),
            (&Method::GET, "/lost") => {
                Ok(Resp::html(StatusCode::OK, pages::lost(lang, &session.csrf)))
            }
            (&Method::POST, "/lost") => self.report_lost(r, &session),
            (&Method::GET, "/export.json") => self.export(&session),
            (&Method::POST, "/logout") => {
                self.end_sessions_of(&session.holder);
                Ok(Resp::redirect("/login").cookie(set_cookie(SESSION_COOKIE, "", 0)))
            }
            _ => Ok(Resp::html(
                StatusCode::NOT_FOUND,
                pages::message(
                    lang,
                    if lang == Lang::Ja {
                        "見つかりません"
                    } else {
                        "Not found"
                    },
                    if lang == Lang::Ja {
                        "このページはありません。"
                    } else {
                        "There is no such page."
                    },
                    Some(&session.csrf),
                    "/certificates",
                ),
            )),
        }
    }

    /// The session of this request, or the answer for a request without one (to the login
    /// page; the cookie is cleared when the session has ended).
    fn session(&self, r: &Req) -> Result<std::result::Result<Session, Resp>> {
        let now = self.authority.clock().now();
        let id = r.cookies.get(SESSION_COOKIE);
        let found = {
            let m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            id.and_then(|id| m.sessions.get(id).cloned())
        };
        let Some(s) = found else {
            return Ok(Err(Resp::redirect("/login")));
        };
        let still_good = s.expires > now
            && s.cert.not_after > now
            && r.client_cert.as_ref().is_none_or(|c| *c == s.cert.der)
            && self
                .authority
                .storage()
                .status(s.cert.hierarchy, &s.cert.serial)?
                .is_some_and(|st| st.state == State::Good);
        if still_good {
            return Ok(Ok(s));
        }
        if let Some(id) = id {
            self.memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sessions
                .remove(id);
        }
        Ok(Err(Resp::redirect("/login").cookie(set_cookie(
            SESSION_COOKIE,
            "",
            0,
        ))))
    }

    fn end_sessions_of(&self, holder: &str) {
        let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        m.sessions.retain(|_, s| s.holder != holder);
    }

    /// A fresh login page (a new challenge and CSRF token, bound to the login cookie).
    fn login_page(&self, lang: Lang, error: Option<Refused>, status: StatusCode) -> Result<Resp> {
        let now = self.authority.clock().now();
        let id = random_hex(&self.authority)?;
        let csrf = random_hex(&self.authority)?;
        let challenge = format!("jpki-portal-login:{}", random_hex(&self.authority)?);
        {
            let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            m.pending.retain(|_, p| p.expires > now);
            if m.pending.len() >= MAX_ENTRIES {
                let oldest = m
                    .pending
                    .iter()
                    .min_by_key(|(_, p)| p.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    m.pending.remove(&k);
                }
            }
            m.pending.insert(
                id.clone(),
                Pending {
                    challenge: challenge.clone(),
                    csrf: csrf.clone(),
                    expires: now + time::Duration::minutes(CHALLENGE_MINUTES),
                },
            );
        }
        let body = pages::login(lang, &csrf, &challenge, error.map(|e| refusal(lang, e)));
        Ok(Resp::html(status, body).cookie(set_cookie(LOGIN_COOKIE, &id, CHALLENGE_MINUTES * 60)))
    }

    /// Counts a login attempt from `ip`; false when over the limit.
    fn admit_attempt(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if m.attempts.len() >= MAX_ENTRIES {
            m.attempts
                .retain(|_, v| v.iter().any(|t| now.duration_since(*t) < LOGIN_WINDOW));
        }
        let seen = m.attempts.entry(ip).or_default();
        seen.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
        if seen.len() >= LOGIN_ATTEMPTS {
            return false;
        }
        seen.push(now);
        true
    }

    /// `POST /login/tls` and `POST /login/challenge`.
    fn login(&self, r: &Req) -> Result<Resp> {
        let lang = r.lang;
        if !self.admit_attempt(r.ip) {
            tracing::warn!(ip = %r.ip, "portal login rate limit reached");
            return self.login_page(lang, Some(Refused::TooMany), StatusCode::TOO_MANY_REQUESTS);
        }
        let now = self.authority.clock().now();
        // The pending login is used once, whatever the outcome.
        let pending = {
            let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            r.cookies
                .get(LOGIN_COOKIE)
                .and_then(|id| m.pending.remove(id))
        };
        let Some(pending) = pending.filter(|p| p.expires > now) else {
            return self.login_page(lang, Some(Refused::Stale), StatusCode::FORBIDDEN);
        };
        if r.f("csrf") != Some(pending.csrf.as_str()) {
            return self.login_page(lang, Some(Refused::Stale), StatusCode::FORBIDDEN);
        }
        let (cert, via) = if r.path == "/login/tls" {
            match &r.client_cert {
                Some(c) => (c.clone(), "tls"),
                None => {
                    return self.login_page(
                        lang,
                        Some(Refused::NoCertificate),
                        StatusCode::FORBIDDEN,
                    )
                }
            }
        } else {
            match self.check_response(r.f("response").unwrap_or(""), &pending.challenge) {
                Ok(c) => (c, "challenge"),
                Err(why) => return self.login_page(lang, Some(why), StatusCode::FORBIDDEN),
            }
        };
        let rec = match self.login_certificate(&cert, now)? {
            Ok(rec) => rec,
            Err(why) => {
                tracing::info!(via, ?why, "portal login refused");
                return self.login_page(lang, Some(why), StatusCode::FORBIDDEN);
            }
        };
        let holder = rec.holder.clone().unwrap_or_default();
        let serial = ca::authority::serial_hex(&rec.serial);
        self.audit(
            &holder,
            "login",
            &format!("cert=auth:{serial} via={via}"),
            now,
        )?;
        let id = random_hex(&self.authority)?;
        let session = Session {
            holder,
            cert: rec,
            csrf: random_hex(&self.authority)?,
            expires: now + time::Duration::minutes(SESSION_MINUTES),
        };
        {
            let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            m.sessions.retain(|_, s| s.expires > now);
            if m.sessions.len() >= MAX_ENTRIES {
                let oldest = m
                    .sessions
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    m.sessions.remove(&k);
                }
            }
            m.sessions.insert(id.clone(), session);
        }
        tracing::info!(serial = %serial, via, "portal login");
        Ok(Resp::redirect("/certificates")
            .cookie(set_cookie(SESSION_COOKIE, &id, SESSION_MINUTES * 60))
            .cookie(set_cookie(LOGIN_COOKIE, "", 0)))
    }

    /// The certificate of a challenge response whose signature over `challenge` verifies.
    fn check_response(&self, text: &str, challenge: &str) -> std::result::Result<Vec<u8>, Refused> {
        let cert = pem_blocks(text, "CERTIFICATE").into_iter().next();
        let sig = pem_blocks(text, "JPKI LOGIN SIGNATURE").into_iter().next();
        let (Some(cert), Some(sig)) = (cert, sig) else {
            return Err(Refused::Malformed);
        };
        self.verifier
            .validate(&cert)
            .map_err(|_| Refused::Unknown)?;
        let (_, c) = X509Certificate::from_der(&cert).map_err(|_| Refused::Malformed)?;
        let key = &c.public_key().subject_public_key.data;
        signed_data::cms::rsa_verify(key, challenge.as_bytes(), &sig)
            .map_err(|_| Refused::BadSignature)?;
        Ok(cert)
    }

    /// Whether `der` may open a session: an authentication certificate this authority issued
    /// (the same DER in the store), good and within its validity now.
    fn login_certificate(
        &self,
        der: &[u8],
        now: OffsetDateTime,
    ) -> Result<std::result::Result<CertRecord, Refused>> {
        if self.verifier.validate(der).is_err() {
            return Ok(Err(Refused::Unknown));
        }
        let Ok((_, c)) = X509Certificate::from_der(der) else {
            return Ok(Err(Refused::Unknown));
        };
        let issuer = c.issuer().as_raw();
        let of = |h: Hierarchy| -> Result<bool> {
            let root = &self.authority.root(h).der;
            let (_, r) = X509Certificate::from_der(root)
                .map_err(|e| Error::Serve(format!("root does not parse: {e}")))?;
            Ok(r.subject().as_raw() == issuer)
        };
        if of(Hierarchy::Signing)? {
            return Ok(Err(Refused::Signing));
        }
        if !of(Hierarchy::Auth)? {
            return Ok(Err(Refused::Unknown));
        }
        let rec = match self.authority.find(c.raw_serial(), Some(Hierarchy::Auth)) {
            // A card's or a smartphone's authentication certificate (docs/phone.md).
            Ok(rec)
                if rec.der == der
                    && matches!(rec.kind, CertKind::Auth | CertKind::PhoneAuth)
                    && rec.holder.is_some() =>
            {
                rec
            }
            Ok(_) | Err(ca::Error::UnknownSerial(_)) => return Ok(Err(Refused::Unknown)),
            Err(e) => return Err(e.into()),
        };
        let st = self
            .authority
            .storage()
            .status(rec.hierarchy, &rec.serial)?;
        Ok(match st.map(|s| s.state) {
            Some(State::Good) if rec.not_before <= now && now <= rec.not_after => Ok(rec),
            Some(State::Good) => Err(Refused::Expired),
            Some(State::Held) => Err(Refused::Held),
            _ => Err(Refused::Revoked),
        })
    }

    /// A `portal:<action>` audit record with the holder as actor.
    fn audit(&self, holder: &str, action: &str, detail: &str, now: OffsetDateTime) -> Result<()> {
        let action = format!("portal:{action}");
        let detail = format!("actor=holder:{holder} {detail}");
        self.authority
            .storage()
            .transact(&|t| ca::storage::audit(t, now, &action, holder, &detail))?;
        Ok(())
    }

    fn cert_rows(&self, holder: &str) -> Result<Vec<CertRow>> {
        let now = self.authority.clock().now();
        let resident = self.authority.resident(holder)?;
        let mut certs = self.authority.holder_certs(holder)?;
        certs.sort_by(|(a, _), (b, _)| {
            (
                a.hierarchy != Hierarchy::Signing,
                std::cmp::Reverse(a.not_before),
            )
                .cmp(&(
                    b.hierarchy != Hierarchy::Signing,
                    std::cmp::Reverse(b.not_before),
                ))
        });
        Ok(certs
            .into_iter()
            .filter(|(c, _)| {
                matches!(
                    c.kind,
                    CertKind::Signing
                        | CertKind::Auth
                        | CertKind::PhoneSigning
                        | CertKind::PhoneAuth
                )
            })
            .map(|(c, s)| {
                let serial = ca::authority::serial_hex(&c.serial);
                let tag = format!("{}:{serial}", c.hierarchy);
                let event = resident
                    .history
                    .iter()
                    .rev()
                    .find(|h| h.certificates.contains(&tag))
                    .map(|h| h.event.clone());
                let status = match s.state {
                    State::Good if c.not_after < now => "expired",
                    other => other.as_str(),
                };
                CertRow {
                    kind: c.hierarchy,
                    phone: matches!(c.kind, CertKind::PhoneSigning | CertKind::PhoneAuth),
                    serial,
                    not_before: c.not_before,
                    not_after: c.not_after,
                    status,
                    reason: s.reason,
                    since: s.since,
                    event: (s.state != State::Good).then_some(event).flatten(),
                }
            })
            .collect())
    }

    fn certificates(&self, r: &Req, s: &Session) -> Result<Resp> {
        let (rows, paging) = paged(self.cert_rows(&s.holder)?, r.q("page"));
        Ok(Resp::html(
            StatusCode::OK,
            pages::certificates(r.lang, &s.csrf, &rows, &paging),
        ))
    }

    fn access_rows(&self, holder: &str) -> Result<Vec<AccessRow>> {
        let mut log = platform::registry::access_log(&self.authority, holder)?;
        log.reverse();
        Ok(log
            .into_iter()
            .map(|a| AccessRow {
                at: a.at,
                pf: a.pf_name,
                sp: if a.sp_name.is_empty() {
                    a.sp
                } else {
                    a.sp_name
                },
                operation: a.operation,
                outcome: a.outcome,
            })
            .collect())
    }

    fn access(&self, r: &Req, s: &Session) -> Result<Resp> {
        let (rows, paging) = paged(self.access_rows(&s.holder)?, r.q("page"));
        Ok(Resp::html(
            StatusCode::OK,
            pages::access(r.lang, &s.csrf, &rows, &paging),
        ))
    }

    /// The holder's consents, newest first (over every SP: the store keeps them per holder
    /// and SP).
    fn consent_rows(&self, holder: &str) -> Result<Vec<(platform::registry::Consent, ConsentRow)>> {
        let now = self.authority.clock().now();
        let store = self.authority.storage();
        let mut out = Vec::new();
        for sp in store.service_providers()? {
            for c in store.consents_of(holder, &sp.id)? {
                if c.holder != holder {
                    continue;
                }
                let row = ConsentRow {
                    id: c.id.clone(),
                    sp: sp.name.clone(),
                    scope: c.scope.as_str().to_owned(),
                    granted: c.granted_at,
                    expires: c.expires,
                    withdrawn: c.withdrawn_at,
                    live: c.withdrawn_at.is_none() && c.expires > now,
                };
                out.push((c, row));
            }
        }
        out.sort_by_key(|(_, row)| std::cmp::Reverse(row.granted));
        Ok(out)
    }

    fn consents(&self, r: &Req, s: &Session) -> Result<Resp> {
        let rows = self
            .consent_rows(&s.holder)?
            .into_iter()
            .map(|(_, row)| row)
            .collect();
        let (rows, paging) = paged(rows, r.q("page"));
        Ok(Resp::html(
            StatusCode::OK,
            pages::consents(r.lang, &s.csrf, &rows, &paging),
        ))
    }

    /// The holder's own live consent `id`, or a 404 page: another holder's consent is
    /// answered exactly like one that does not exist.
    fn own_consent(
        &self,
        r: &Req,
        s: &Session,
        id: &str,
    ) -> Result<std::result::Result<ConsentRow, Resp>> {
        let found = self
            .consent_rows(&s.holder)?
            .into_iter()
            .find(|(c, row)| c.id == id && row.live);
        Ok(match found {
            Some((_, row)) => Ok(row),
            None => Err(Resp::html(
                StatusCode::NOT_FOUND,
                pages::message(
                    r.lang,
                    if r.lang == Lang::Ja {
                        "見つかりません"
                    } else {
                        "Not found"
                    },
                    if r.lang == Lang::Ja {
                        "撤回できる同意が見つかりません。"
                    } else {
                        "There is no consent of yours to withdraw with that id."
                    },
                    Some(&s.csrf),
                    "/consents",
                ),
            )),
        })
    }

    fn withdraw_page(&self, r: &Req, s: &Session, error: Option<&str>) -> Result<Resp> {
        let id = r.q("id").or(r.f("id")).unwrap_or("");
        let row = match self.own_consent(r, s, id)? {
            Ok(row) => row,
            Err(resp) => return Ok(resp),
        };
        let status = if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        };
        Ok(Resp::html(
            status,
            pages::withdraw(r.lang, &s.csrf, &row, &withdrawal_statement(&row.id), error),
        ))
    }

    /// `POST /consents/withdraw`: the signed statement is checked, then the consent withdrawn.
    fn withdraw(&self, r: &Req, s: &Session) -> Result<Resp> {
        let lang = r.lang;
        let id = r.f("id").unwrap_or("").to_owned();
        if let Err(resp) = self.own_consent(r, s, &id)? {
            return Ok(resp);
        }
        let now = self.authority.clock().now();
        let statement = withdrawal_statement(&id);
        let signer =
            match self.check_withdrawal(r.f("cms").unwrap_or(""), &statement, &id, s, now)? {
                Ok(serial) => serial,
                Err(why) => {
                    let text = match lang {
                        Lang::Ja => format!("署名を受け付けられません：{why}"),
                        Lang::En => format!("The signature is not accepted: {why}"),
                    };
                    return self.withdraw_page(r, s, Some(&text));
                }
            };
        let c = platform::registry::consent_withdraw(&self.authority, &id, "holder", now)?;
        self.audit(
            &s.holder,
            "consent-withdraw",
            &format!("consent={} sp={} signer=signing:{signer}", c.id, c.sp),
            now,
        )?;
        tracing::info!(consent = %c.id, "portal consent withdrawn");
        Ok(Resp::html(
            StatusCode::OK,
            pages::message(
                lang,
                if lang == Lang::Ja {
                    "同意を撤回しました"
                } else {
                    "Consent withdrawn"
                },
                if lang == Lang::Ja {
                    "同意を撤回しました。サービス提供者は、これ以降あなたの情報を取得できません。"
                } else {
                    "The consent is withdrawn. The service provider can no longer obtain your information."
                },
                Some(&s.csrf),
                "/consents",
            ),
        ))
    }

    /// Checks a withdrawal signature: CMS by the session holder's own signing certificate
    /// (valid path to the signing root, issued here, good now) over `{"withdraw": id}`.
    /// `Ok(Err(why))` is a refusal in plain English (the store was not changed).
    fn check_withdrawal(
        &self,
        text: &str,
        statement: &str,
        id: &str,
        s: &Session,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<String, String>> {
        let Some(bytes) = cms_bytes(text) else {
            return Ok(Err("not a CMS signature (PEM or base64)".into()));
        };
        let env = match signed_data::cms::parse(&bytes) {
            Ok(e) => e,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let Ok((_, leaf)) = X509Certificate::from_der(&env.signer_der) else {
            return Ok(Err("the signer certificate does not parse".into()));
        };
        let root_der = &self.authority.root(Hierarchy::Signing).der;
        let (_, root) = X509Certificate::from_der(root_der)
            .map_err(|e| Error::Serve(format!("signing root: {e}")))?;
        if let Err(e) = signed_data::path::validate(&leaf, &root, now) {
            return Ok(Err(format!("not a valid signing certificate: {e}")));
        }
        let rec = match self
            .authority
            .find(leaf.raw_serial(), Some(Hierarchy::Signing))
        {
            Ok(rec) if rec.der == env.signer_der && rec.kind == CertKind::Signing => rec,
            _ => return Ok(Err("the signing certificate was not issued here".into())),
        };
        if rec.holder.as_deref() != Some(s.holder.as_str()) {
            return Ok(Err("signed by someone else's certificate".into()));
        }
        let st = self
            .authority
            .storage()
            .status(rec.hierarchy, &rec.serial)?;
        if st.map(|s| s.state) != Some(State::Good) {
            return Ok(Err("the signing certificate is revoked or on hold".into()));
        }
        let detached = env.attached.is_none().then_some(statement.as_bytes());
        if let Err(e) = env.verify(detached, &leaf.public_key().subject_public_key.data) {
            return Ok(Err(e.to_string()));
        }
        let content = match env.content(detached) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let named = serde_json::from_slice::<serde_json::Value>(content)
            .ok()
            .and_then(|v| {
                v.get("withdraw")
                    .and_then(|w| w.as_str())
                    .map(str::to_owned)
            });
        if named.as_deref() != Some(id) {
            return Ok(Err(format!("the signed statement must be {statement}")));
        }
        Ok(Ok(ca::authority::serial_hex(&rec.serial)))
    }

    /// `POST /lost`: both certificates on hold (the register's card-lost event), the session
    /// ends.
    fn report_lost(&self, r: &Req, s: &Session) -> Result<Resp> {
        let lang = r.lang;
        if r.f("confirm") != Some("yes") {
            return Ok(Resp::html(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::message(
                    lang,
                    if lang == Lang::Ja {
                        "確認が必要です"
                    } else {
                        "Confirmation needed"
                    },
                    if lang == Lang::Ja {
                        "確認欄にチェックを入れてください。"
                    } else {
                        "Tick the confirmation box."
                    },
                    Some(&s.csrf),
                    "/lost",
                ),
            ));
        }
        let now = self.authority.clock().now();
        let outcome = self
            .authority
            .event(&s.holder, &ca::authority::events::Event::CardLost)?;
        let held: Vec<String> = outcome
            .revocations
            .iter()
            .map(|r| format!("{}:{}", r.hierarchy, r.serial))
            .collect();
        self.audit(
            &s.holder,
            "card-lost",
            &format!("held={}", held.join(",")),
            now,
        )?;
        self.end_sessions_of(&s.holder);
        tracing::info!(certificates = held.len(), "portal card loss reported");
        Ok(Resp::html(
            StatusCode::OK,
            pages::message(
                lang,
                if lang == Lang::Ja { "紛失を届け出ました" } else { "Loss reported" },
                if lang == Lang::Ja {
                    "署名用と利用者証明用の電子証明書を一時停止しました。新しいカードは市区町村の窓口で申請してください。"
                } else {
                    "Your signing and authentication certificates are on hold. Apply for a new card at your municipality's office."
                },
                None,
                "/login",
            ),
        )
        .cookie(set_cookie(SESSION_COOKIE, "", 0)))
    }

    /// `GET /export.json`: everything the portal shows the holder, as one JSON document.
    fn export(&self, s: &Session) -> Result<Resp> {
        let now = self.authority.clock().now();
        let resident = self.authority.resident(&s.holder)?;
        let rfc = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let certs: Vec<serde_json::Value> = self
            .authority
            .holder_certs(&s.holder)?
            .into_iter()
            .map(|(c, st)| {
                serde_json::json!({
                    "kind": c.hierarchy.as_str(),
                    "serial": ca::authority::serial_hex(&c.serial),
                    "not_before": rfc(c.not_before),
                    "not_after": rfc(c.not_after),
                    "status": st.state.as_str(),
                    "reason": st.reason.map(|r| r.as_str()),
                    "since": st.since.map(rfc),
                    "der_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &c.der),
                })
            })
            .collect();
        let access: Vec<serde_json::Value> = platform::registry::access_log(
            &self.authority,
            &s.holder,
        )?
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "at": rfc(a.at), "platform_operator": a.pf_name, "service_provider": a.sp_name,
                "service_provider_id": a.sp, "operation": a.operation, "outcome": a.outcome,
            })
        })
        .collect();
        let consents: Vec<serde_json::Value> = self
            .consent_rows(&s.holder)?
            .into_iter()
            .map(|(c, row)| serde_json::json!({
                "id": c.id, "service_provider": row.sp, "service_provider_id": c.sp,
                "scope": c.scope.as_str(), "granted": rfc(c.granted_at), "expires": rfc(c.expires),
                "withdrawn": c.withdrawn_at.map(rfc), "withdrawn_by": c.withdrawn_by,
            }))
            .collect();
        let a = &resident.attributes;
        let doc = serde_json::json!({
            "exported_at": rfc(now),
            "holder": s.holder,
            "attributes": {
                "name": a.name(), "birth": a.birth().to_string(), "sex": a.sex(), "address": a.address(),
            },
            "card_lost": resident.card_lost,
            "certificates": certs,
            "access_log": access,
            "consents": consents,
        });
        self.audit(&s.holder, "export", "", now)?;
        let body =
            serde_json::to_vec_pretty(&doc).map_err(|e| Error::Serve(format!("export: {e}")))?;
        Ok(Resp {
            content_type: "application/json",
            body,
            attachment: Some("jpki-my-data.json"),
            ..Resp::html(StatusCode::OK, String::new())
        })
    }
}

/// The statement a holder signs to withdraw consent `id` (what the platform API's holder
/// withdrawal takes too).
pub fn withdrawal_statement(id: &str) -> String {
    serde_json::json!({ "withdraw": id }).to_string()
}

fn asset(content_type: &'static str, text: &'static str) -> Resp {
    Resp {
        content_type,
        ..Resp::html(StatusCode::OK, text.to_owned())
    }
}

fn forbidden(lang: Lang, csrf: Option<&str>) -> Resp {
    Resp::html(
        StatusCode::FORBIDDEN,
        pages::message(
            lang,
            if lang == Lang::Ja {
                "受け付けられません"
            } else {
                "Refused"
            },
            if lang == Lang::Ja {
                "このフォームは期限切れか、別のサイトから送られました。ページを開き直してください。"
            } else {
                "This form has expired or was sent from another site. Open the page again."
            },
            csrf,
            "/",
        ),
    )
}

/// The HTTP response with the security headers every answer carries.
fn finish(r: Resp) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    let mut put = |k: header::HeaderName, v: &str| {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            h.append(k, v);
        }
    };
    put(header::CONTENT_TYPE, r.content_type);
    put(header::CONTENT_SECURITY_POLICY, CSP);
    put(header::CACHE_CONTROL, "no-store");
    put(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // `same-origin`, not `no-referrer`: with no-referrer Chromium sends `Origin: null` on
    // form posts, and the same-origin check needs the real one. URLs carry no personal data.
    put(header::REFERRER_POLICY, "same-origin");
    put(header::X_FRAME_OPTIONS, "DENY");
    if let Some(l) = &r.location {
        put(header::LOCATION, l);
    }
    if let Some(name) = r.attachment {
        put(
            header::CONTENT_DISPOSITION,
            &format!("attachment; filename=\"{name}\""),
        );
    }
    for c in &r.cookies {
        put(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_decode() {
        let m = urldecode_pairs("a=1&b=x+y%2Fz&c=%E5%B1%B1&d&e=%zz");
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x y/z");
        assert_eq!(m["c"], "山");
        assert_eq!(m["d"], "");
        assert_eq!(m["e"], "%zz");
    }

    #[test]
    fn pem_blocks_are_found_by_label() {
        let text = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n\
                    -----BEGIN JPKI LOGIN SIGNATURE-----\nAwQ=\n-----END JPKI LOGIN SIGNATURE-----\n";
        assert_eq!(pem_blocks(text, "CERTIFICATE"), vec![vec![0, 1, 2]]);
        assert_eq!(pem_blocks(text, "JPKI LOGIN SIGNATURE"), vec![vec![3, 4]]);
        assert!(pem_blocks(text, "CMS").is_empty());
        assert_eq!(cms_bytes(" AAEC\n"), Some(vec![0, 1, 2]));
        assert_eq!(cms_bytes("not base64!"), None);
    }

    #[test]
    fn lists_are_paged_within_bounds() {
        let (rows, p) = paged((0..45).collect::<Vec<_>>(), Some("3"));
        assert_eq!((rows.len(), p.page, p.pages, p.total), (5, 3, 3, 45));
        let (rows, p) = paged((0..45).collect::<Vec<_>>(), Some("99"));
        assert_eq!((rows[0], p.page), (40, 3));
        let (rows, p) = paged(Vec::<u8>::new(), Some("x"));
        assert_eq!((rows.len(), p.page, p.pages), (0, 1, 1));
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        let r = finish(Resp::redirect("/login").cookie(set_cookie(SESSION_COOKIE, "x", 60)));
        let h = r.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(CSP.contains("default-src 'none'") && !CSP.contains("unsafe"));
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let c = h[header::SET_COOKIE].to_str().unwrap();
        for want in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/", "__Host-"] {
            assert!(c.contains(want), "{c}");
        }
    }

    #[test]
    fn plain_words_say_why_and_when() {
        let row = CertRow {
            kind: Hierarchy::Signing,
            phone: false,
            serial: "01".into(),
            not_before: time::macros::datetime!(2026-01-01 00:00 UTC),
            not_after: time::macros::datetime!(2031-01-01 00:00 UTC),
            status: "revoked",
            reason: Some(policies::Reason::AffiliationChanged),
            since: Some(time::macros::datetime!(2026-12-05 03:00 UTC)),
            event: Some("move".into()),
        };
        assert_eq!(
            pages::why(Lang::En, &row).unwrap(),
            "Revoked because your address changed on 2026-12-05."
        );
        assert!(pages::why(Lang::Ja, &row)
            .unwrap()
            .contains("住所が変わった"));
        let good = CertRow {
            status: "good",
            reason: None,
            since: None,
            event: None,
            ..row
        };
        assert_eq!(pages::why(Lang::En, &good), None);
    }

    #[test]
    fn a_smartphone_certificate_is_shown_as_one() {
        let row = |phone| CertRow {
            kind: Hierarchy::Auth,
            phone,
            serial: "0A".into(),
            not_before: time::macros::datetime!(2026-01-01 00:00 UTC),
            not_after: time::macros::datetime!(2031-01-01 00:00 UTC),
            status: "good",
            reason: None,
            since: None,
            event: None,
        };
        let paging = pages::Paging {
            page: 1,
            pages: 1,
            total: 2,
        };
        let html = pages::certificates(Lang::En, "t", &[row(false), row(true)], &paging);
        assert_eq!(html.matches("data-device=\"card\"").count(), 1, "{html}");
        assert_eq!(
            html.matches("data-device=\"smartphone\"").count(),
            1,
            "{html}"
        );
        assert!(html.contains("(smartphone)"), "{html}");
    }
}
