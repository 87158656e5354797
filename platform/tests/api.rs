//! End-to-end tests of the PF API: the real server on 127.0.0.1:0 over mutual TLS, with
//! `curl` and the Rust client; holder keys from `openssl req`, consents signed with
//! `openssl cms -sign`.

mod openapi_check;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use ca::authority::{Event, NewResident};
use ca::clock::{Clock, FixedClock};
use ca::Authority;
use http::StatusCode;
use hyper::body::Bytes;
use platform::client::{self, Client};
use platform::{Api, Request};
use policies::{Hierarchy, Sex};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const PASS: &str = "test passphrase";

struct Pf {
    cert_pem: String,
    key_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

struct Holder {
    id: String,
    sign_cert: PathBuf,
    sign_key: PathBuf,
    sign_pem: String,
    auth_cert: PathBuf,
    auth_key: PathBuf,
    auth_serial: String,
}

struct H {
    dir: tempfile::TempDir,
    a: Arc<Authority>,
    clock: Arc<FixedClock>,
    addr: SocketAddr,
    root_pem: String,
    root: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `openssl req -new`: a fresh RSA key at `key` and its CSR at `csr`.
fn new_key_and_csr(key: &Path, csr: &Path, subj: &str) {
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        subj,
        "-out",
        csr.to_str().unwrap(),
    ]);
}

fn now_s() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap()
}

impl H {
    async fn start() -> H {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(now_s()));
        let a = Arc::new(
            Authority::init(
                &dir.path().join("data"),
                policies::policy::DEFAULT_POLICY,
                PASS.as_bytes(),
                clock.clone(),
            )
            .unwrap(),
        );
        platform::operator_ca::create(&a).unwrap();
        let (chain, key) =
            platform::server_identity(&a, &["127.0.0.1".into(), "localhost".into()]).unwrap();
        let fallback: platform::Fallback = Arc::new(|req: http::Request<Bytes>| {
            Box::pin(async move {
                http::Response::new(http_body_util::Full::new(Bytes::from(format!(
                    "fallback {}",
                    req.uri().path()
                ))))
            })
        });
        let api = Arc::new(Api::new(a.clone(), chain, key, Some(fallback)).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            api.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let root_pem = ca::records::pem(&platform::operator_ca::root(&a).unwrap());
        let root = dir.path().join("operator-root.pem");
        std::fs::write(&root, &root_pem).unwrap();
        H {
            dir,
            a,
            clock,
            addr,
            root_pem,
            root,
            stop: Some(stop),
            server: Some(server),
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.unwrap();
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn admin(&self, req: Request) -> platform::Result<Value> {
        platform::handle(&self.a, req)
    }

    fn pf(&self, name: &str, scopes: &str) -> Pf {
        let v = self
            .admin(Request::OperatorAdd {
                name: name.into(),
                scopes: platform::registry::parse_scopes(scopes).unwrap(),
                csr_base64: None,
            })
            .unwrap();
        let cert = self.path(&format!("{name}.pem"));
        let key = self.path(&format!("{name}.key"));
        std::fs::write(&cert, v["cert_pem"].as_str().unwrap()).unwrap();
        std::fs::write(&key, v["key_pem"].as_str().unwrap()).unwrap();
        Pf {
            cert_pem: v["cert_pem"].as_str().unwrap().into(),
            key_pem: v["key_pem"].as_str().unwrap().into(),
            cert,
            key,
        }
    }

    fn sp(&self, pf: &str, name: &str, scopes: &str) -> String {
        self.admin(Request::SpAdd {
            pf: pf.into(),
            name: name.into(),
            scopes: platform::registry::parse_scopes(scopes).unwrap(),
        })
        .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A key and CSR by `openssl req`, issued as `h`; returns (cert path, key path, PEM, serial).
    fn issue(&self, resident: &str, h: Hierarchy, tag: &str) -> (PathBuf, PathBuf, String, String) {
        let key = self.path(&format!("{tag}.key"));
        let csr = self.path(&format!("{tag}.csr"));
        new_key_and_csr(&key, &csr, "/CN=holder");
        // Some stories supersede a certificate years before its end: an early renewal, which
        // the eligibility rules (tested in tests/register_work.rs) allow with a reason.
        let early = ca::authority::IssueOverrides {
            early_renewal: Some("platform test: successor certificate".into()),
            ..Default::default()
        };
        let issued = self
            .a
            .issue_with(resident, h, &std::fs::read(&csr).unwrap(), &early)
            .unwrap();
        let cert = self.path(&format!("{tag}.pem"));
        std::fs::write(&cert, &issued.pem).unwrap();
        (cert, key, issued.pem, issued.serial)
    }

    fn holder(&self, tag: &str) -> Holder {
        let id = self
            .a
            .resident_add(&NewResident {
                name: "山田　花子".into(),
                birth: time::macros::date!(1985 - 04 - 01),
                sex: Sex::Female,
                // One person per holder (the register refuses the same person twice).
                address: format!("東京都千代田区霞が関二丁目1番2号 {tag}"),
                prefecture: "Tokyo".into(),
                municipality: "Chiyoda-ku".into(),
                card_expiry: time::macros::date!(2034 - 04 - 01),
            })
            .unwrap();
        let (sign_cert, sign_key, sign_pem, _) =
            self.issue(&id, Hierarchy::Signing, &format!("{tag}-sign"));
        let (auth_cert, auth_key, _, auth_serial) =
            self.issue(&id, Hierarchy::Auth, &format!("{tag}-auth"));
        Holder {
            id,
            sign_cert,
            sign_key,
            sign_pem,
            auth_cert,
            auth_key,
            auth_serial,
        }
    }

    /// `openssl cms -sign` over `content`; base64 DER.
    fn cms(&self, content: &str, cert: &Path, key: &Path) -> String {
        let input = self.path("content.json");
        let out = self.path("content.cms");
        std::fs::write(&input, content).unwrap();
        openssl(&[
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-nodetach",
            "-outform",
            "DER",
            "-signer",
            cert.to_str().unwrap(),
            "-inkey",
            key.to_str().unwrap(),
            "-in",
            input.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ]);
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(out).unwrap())
    }

    /// `cms` signed with the holder's signing key.
    fn signed(&self, holder: &Holder, content: &str) -> String {
        self.cms(content, &holder.sign_cert, &holder.sign_key)
    }

    /// A consent statement for `sp`, signed with the holder's signing key.
    fn consent_cms(
        &self,
        holder: &Holder,
        sp: &str,
        expires: OffsetDateTime,
        nonce: &str,
    ) -> String {
        self.signed(holder, &self.statement(sp, expires, nonce))
    }

    fn statement(&self, sp: &str, expires: OffsetDateTime, nonce: &str) -> String {
        json!({"sp": sp, "scope": "four-attributes", "expires": expires.format(&Rfc3339).unwrap(), "nonce": nonce}).to_string()
    }

    async fn client(&self, pf: &Pf) -> Client {
        let cfg = client::tls_config(&self.root_pem, &pf.cert_pem, &pf.key_pem).unwrap();
        Client::connect(self.addr, "127.0.0.1", cfg).await.unwrap()
    }

    /// A `curl -sS` command presenting `cert` and `key`, trusting the operator root.
    fn curl_as(&self, cert: &Path, key: &Path) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--cacert")
            .arg(&self.root);
        cmd
    }

    /// curl with the PF's certificate; returns (HTTP status, JSON body).
    fn curl(&self, pf: &Pf, method: &str, path: &str, body: &str) -> (u16, Value) {
        let body_file = self.path("curl-body.json");
        std::fs::write(&body_file, body).unwrap();
        let out = self
            .curl_as(&pf.cert, &pf.key)
            .args([
                "-X",
                method,
                "-H",
                "content-type: application/json",
                "--data-binary",
            ])
            .arg(format!("@{}", body_file.display()))
            .args(["-w", "\n%{http_code}"])
            .arg(format!("https://127.0.0.1:{}{path}", self.addr.port()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The answer is an error: `status`, with `error.code` equal to `error`.
#[track_caller]
fn assert_error<S: PartialEq + std::fmt::Debug>(s: S, v: &Value, status: S, error: &str) {
    assert_eq!((s, code(v)), (status, error), "{v}");
}

/// `POST /v1/consents` through the Rust client.
async fn post_consent(c: &mut Client, sp: &str, cms: &str) -> (StatusCode, Value) {
    c.post("/v1/consents", &json!({"sp": sp, "cms": cms}))
        .await
        .unwrap()
}

/// `POST /v1/consents` that must be accepted (201); returns the consent's id.
async fn consent_created(c: &mut Client, sp: &str, cms: &str) -> String {
    let (s, v) = post_consent(c, sp, cms).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// `DELETE /v1/consents/{id}?sp=…`: withdrawal by the SP, query form.
async fn withdraw_by_sp(c: &mut Client, id: &str, sp: &str) -> (StatusCode, Value) {
    c.call(
        http::Method::DELETE,
        &format!("/v1/consents/{id}?sp={sp}"),
        &json!({}),
    )
    .await
    .unwrap()
}

/// `POST /v1/consents/{id}/withdraw` with the holder's signed withdrawal.
async fn withdraw_by_holder(c: &mut Client, sp: &str, id: &str, cms: &str) -> (StatusCode, Value) {
    c.post(
        &format!("/v1/consents/{id}/withdraw"),
        &json!({"sp": sp, "cms": cms}),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handshake_needs_an_operator_ca_client_certificate() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity");
    let url = format!("https://127.0.0.1:{}/v1/validity", h.addr.port());
    // No client certificate: the handshake fails (curl exit code, not an HTTP status).
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&h.root)
        .args(["-d", "{}", &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A certificate from another CA (self-signed by openssl): refused in the handshake.
    let key = h.path("other.key");
    let cert = h.path("other.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-subj",
        "/CN=Other CA PF",
        "-days",
        "30",
    ]);
    let out = h
        .curl_as(&cert, &key)
        .args(["-d", "{}", &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The same with the Rust client, over TLS 1.3 (the refusal shows on first use).
    let other = client::tls_config(
        &h.root_pem,
        &std::fs::read_to_string(&cert).unwrap(),
        &std::fs::read_to_string(&key).unwrap(),
    )
    .unwrap();
    let refused = match Client::connect(h.addr, "127.0.0.1", other).await {
        Err(_) => true,
        Ok(mut c) => c.post("/v1/validity", &json!({})).await.is_err(),
    };
    assert!(refused);
    // The registered PF gets through (and is told its SP is unknown).
    let (status, v) = h.curl(
        &pf,
        "POST",
        "/v1/validity",
        r#"{"sp":"SPX","certificates":[]}"#,
    );
    assert_error(status, &v, 403, "sp_unknown");

    // A PF that brings its own key as a CSR (openssl req); TLS 1.2 and HTTP/1.1 work too.
    let key = h.path("own.key");
    let csr = h.path("own.csr");
    new_key_and_csr(&key, &csr, "/CN=ignored");
    let v = h
        .admin(Request::OperatorAdd {
            name: "PF Own Key".into(),
            scopes: vec![platform::registry::Scope::Validity],
            csr_base64: Some(
                base64::engine::general_purpose::STANDARD.encode(std::fs::read(&csr).unwrap()),
            ),
        })
        .unwrap();
    assert!(v["key_pem"].is_null());
    let own = Pf {
        cert_pem: v["cert_pem"].as_str().unwrap().into(),
        key_pem: std::fs::read_to_string(&key).unwrap(),
        cert: h.path("own.pem"),
        key,
    };
    std::fs::write(&own.cert, &own.cert_pem).unwrap();
    let sp = h.sp("PF Own Key", "Bank", "validity");
    let holder = h.holder("h1");
    for flags in [
        ["--tls-max", "1.2"],
        ["--http1.1", "--tlsv1.3"],
        ["--http2", "--tlsv1.3"],
    ] {
        let out = h
            .curl_as(&own.cert, &own.key)
            .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
            .args(flags)
            .args([
                "-d",
                &json!({"sp": sp, "certificates": [holder.sign_pem]}).to_string(),
                &url,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.starts_with("200 "),
            "{flags:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // HTTP/2 when this curl has it (`curl -V` lists HTTP2); else it falls back to 1.1.
        let curl_h2 = Command::new("curl")
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("HTTP2"))
            .unwrap_or(false);
        if flags[0] == "--http2" && curl_h2 {
            assert_eq!(text, "200 2");
        }
    }
    // A key can belong to one PF only.
    let again = h.admin(Request::OperatorRegisterCert {
        name: "PF One".into(),
        cert_pem: own.cert_pem.clone(),
        scopes: vec![platform::registry::Scope::Validity],
    });
    assert!(
        matches!(again, Err(platform::Error::KeyTaken(_))),
        "{again:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_must_be_registered_and_active() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity");
    let sp = h.sp("PF One", "Bank", "validity");
    let holder = h.holder("h1");
    let body = json!({"sp": sp, "certificates": [holder.sign_pem]});
    let mut c = h.client(&pf).await;
    let (s, v) = c.post("/v1/validity", &body).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["status"], "good");
    assert_eq!(v["results"][0]["valid"], true);
    // Base64 DER and issuer+serial forms; a card reported lost puts both on hold.
    let der = platform::operator_ca::der_of_pem(holder.sign_pem.as_bytes()).unwrap();
    h.a.event(&holder.id, &Event::CardLost).unwrap();
    let (s, v) = c
        .post(
            "/v1/validity",
            &json!({"sp": sp, "certificates": [
                base64::engine::general_purpose::STANDARD.encode(&der),
                {"issuer": "auth", "serial": holder.auth_serial},
                // Never issued (sequential serials repeat across hierarchies, so the auth
                // serial may well exist in the signing hierarchy too).
                {"issuer": "signing", "serial": "7FFFFFFF01"}]}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["status"], "held", "{v}");
    assert_eq!(v["results"][0]["reason"], "certificateHold");
    assert_eq!(v["results"][0]["valid"], false);
    assert_eq!(v["results"][1]["status"], "held", "{v}");
    assert_eq!(v["results"][2]["status"], "unknown", "{v}");

    // Suspended: 403 on the same keep-alive connection.
    h.admin(Request::OperatorSuspend {
        name: "PF One".into(),
    })
    .unwrap();
    let (s, v) = c.post("/v1/validity", &body).await.unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "operator_suspended");
    h.admin(Request::OperatorReactivate {
        name: "PF One".into(),
    })
    .unwrap();
    let (s, _) = c.post("/v1/validity", &body).await.unwrap();
    assert_eq!(s, StatusCode::OK);
    h.admin(Request::OperatorRevoke {
        name: "PF One".into(),
    })
    .unwrap();
    let (s, v) = c.post("/v1/validity", &body).await.unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "operator_revoked");
    assert!(h
        .admin(Request::OperatorReactivate {
            name: "PF One".into()
        })
        .is_err());

    // A certificate from the operator CA whose key was never registered: unknown PF.
    let ca = platform::operator_ca::OperatorCa::load(&h.a).unwrap();
    let k = platform::operator_ca::generate_client_key().unwrap();
    let der = ca
        .issue_client(&h.a, "Stranger", &k.spki, h.clock.now())
        .unwrap();
    let stranger = Pf {
        cert_pem: ca::records::pem(&der),
        key_pem: k.pkcs8_pem.clone(),
        cert: h.path("stranger.pem"),
        key: h.path("stranger.key"),
    };
    std::fs::write(&stranger.cert, &stranger.cert_pem).unwrap();
    std::fs::write(&stranger.key, &stranger.key_pem).unwrap();
    let (s, v) = h.curl(&stranger, "POST", "/v1/validity", &body.to_string());
    assert_error(s, &v, 403, "operator_unknown");
    // Refused calls are audited too.
    let audit = h.a.audit_records().unwrap();
    assert!(audit.iter().any(|r| r.action == "pf-access"
        && r.detail.contains("pf=- ")
        && r.detail.ends_with("outcome=operator_unknown")));
    assert!(audit
        .iter()
        .any(|r| r.action == "pf-access" && r.detail.ends_with("outcome=operator_suspended")));

    // Registering that certificate by its key lets it in.
    let r = h
        .admin(Request::OperatorRegisterCert {
            name: "Stranger".into(),
            cert_pem: stranger.cert_pem.clone(),
            scopes: vec![platform::registry::Scope::Validity],
        })
        .unwrap();
    assert_eq!(r["chains_to_operator_ca"], true);
    let sp2 = h.sp("Stranger", "Broker", "validity");
    let (s, v) = h.curl(
        &stranger,
        "POST",
        "/v1/validity",
        &json!({"sp": sp2, "certificates": [holder.sign_pem]}).to_string(),
    );
    assert_eq!(s, 200, "{v}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_providers_must_be_delegated_and_scoped() {
    let h = H::start().await;
    let pf1 = h.pf("PF One", "validity,four-attributes,successor");
    h.pf("PF Two", "validity");
    let mine = h.sp("PF One", "Bank", "validity");
    let theirs = h.sp("PF Two", "Broker", "validity");
    // An SP cannot have a scope its PF lacks.
    assert!(h
        .admin(Request::SpAdd {
            pf: "PF Two".into(),
            name: "X".into(),
            scopes: vec![platform::registry::Scope::Successor]
        })
        .is_err());
    let holder = h.holder("h1");
    let mut c = h.client(&pf1).await;
    let (s, v) = c
        .post(
            "/v1/validity",
            &json!({"sp": theirs, "certificates": [holder.sign_pem]}),
        )
        .await
        .unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "sp_not_delegated");
    // The refusal's audit record names the SP that was asked for.
    let named = |sp: &str| {
        h.a.audit_records().unwrap().iter().any(|r| {
            r.action == "pf-access"
                && r.detail.contains(&format!("sp={sp} "))
                && r.detail.ends_with("outcome=sp_not_delegated")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !named(&theirs) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        named(&theirs),
        "the refused call's audit record names {theirs}"
    );
    let (s, v) = c
        .post(
            "/v1/four-attributes",
            &json!({"sp": mine, "certificate": holder.sign_pem}),
        )
        .await
        .unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "scope_missing");
    let (s, v) = c
        .post(
            "/v1/successor",
            &json!({"sp": mine, "serial": holder.auth_serial}),
        )
        .await
        .unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "scope_missing");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_oversized_requests() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity");
    let sp = h.sp("PF One", "Bank", "validity");
    let (s, v) = h.curl(&pf, "POST", "/v1/validity", "{not json");
    assert_error(s, &v, 400, "malformed_request");
    let (s, v) = h.curl(&pf, "POST", "/v1/validity", r#"{"sp": 5}"#);
    assert_error(s, &v, 400, "malformed_request");
    let big = json!({"sp": sp, "certificates": ["x".repeat(300 * 1024)]}).to_string();
    let (s, v) = h.curl(&pf, "POST", "/v1/validity", &big);
    assert_error(s, &v, 413, "body_too_large");
    // Over 1 MiB the answer comes at once, without reading the body: curl's HTTP/1.1
    // `Expect: 100-continue` then never sends it. (Over HTTP/2 the stream is reset after the
    // 413 headers, which curl reports as a framing error.)
    let huge = h.path("huge.json");
    std::fs::write(
        &huge,
        json!({"sp": sp, "certificates": ["x".repeat(3 << 20)]}).to_string(),
    )
    .unwrap();
    let out = h
        .curl_as(&pf.cert, &pf.key)
        .args(["--http1.1", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--data-binary")
        .arg(format!("@{}", huge.display()))
        .arg(format!("https://127.0.0.1:{}/v1/validity", h.addr.port()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "413",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Chunked (no Content-Length) oversized body through the Rust client is cut off too.
    let mut c = h.client(&pf).await;
    let (s, _) = c
        .send(http::Method::POST, "/v1/validity", big.into_bytes())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, v) = h.curl(&pf, "POST", "/v1/nothing", "{}");
    assert_error(s, &v, 404, "not_found");
    let (s, v) = h.curl(&pf, "GET", "/v1/validity", "");
    assert_error(s, &v, 405, "method_not_allowed");
    // Garbage certificates are answered per item.
    let (s, v) = h.curl(
        &pf,
        "POST",
        "/v1/validity",
        &json!({"sp": sp, "certificates": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "!!"]}).to_string(),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][0]["status"], "unknown");
    assert_eq!(v["results"][1]["error"]["code"], "bad_certificate");
    // The fallback (CRL, OCSP) is reached through the same listener.
    let out = h
        .curl_as(&pf.cert, &pf.key)
        .arg(format!(
            "https://127.0.0.1:{}/crl/signing/p0000.crl",
            h.addr.port()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fallback /crl/signing/p0000.crl"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consents_are_verified_and_enforced() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity,four-attributes");
    let sp = h.sp("PF One", "Bank", "validity,four-attributes");
    let other_sp = h.sp("PF One", "Insurer", "four-attributes");
    let holder = h.holder("h1");
    let mut c = h.client(&pf).await;
    let four = json!({"sp": sp, "certificate": holder.sign_pem});
    let now = h.clock.now();

    // No consent yet.
    let (s, v) = c.post("/v1/four-attributes", &four).await.unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_missing");

    // Signed with the authentication key: refused.
    let stmt = h.statement(&sp, now + Duration::days(365), "n-auth");
    let cms = h.cms(&stmt, &holder.auth_cert, &holder.auth_key);
    let (s, v) = post_consent(&mut c, &sp, &cms).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_invalid");

    // A forged signature: refused.
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(365), "n-forged");
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(&cms)
        .unwrap();
    let n = der.len();
    der[n - 20] ^= 0x01;
    let forged = base64::engine::general_purpose::STANDARD.encode(der);
    let (s, v) = post_consent(&mut c, &sp, &forged).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_invalid");

    // A statement for another SP, or already expired: refused.
    let cms = h.consent_cms(&holder, &other_sp, now + Duration::days(365), "n-other");
    let (s, v) = post_consent(&mut c, &sp, &cms).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_invalid");
    let cms = h.consent_cms(&holder, &sp, now - Duration::days(1), "n-past");
    let (s, v) = post_consent(&mut c, &sp, &cms).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_invalid");

    // A good consent, valid for one day.
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(1), "n-1");
    let consent1 = consent_created(&mut c, &sp, &cms).await;
    // The nonce cannot be used again.
    let (s, v) = post_consent(&mut c, &sp, &cms).await;
    assert_error(s, &v, StatusCode::CONFLICT, "nonce_reused");

    let (s, v) = c.post("/v1/four-attributes", &four).await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "山田　花子");
    assert_eq!(v["birth"], "1985-04-01");
    assert_eq!(v["sex"], "2");
    assert_eq!(v["status"], "active");
    // The consent is for this SP only.
    let (s, v) = c
        .post(
            "/v1/four-attributes",
            &json!({"sp": other_sp, "certificate": holder.sign_pem}),
        )
        .await
        .unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_missing");

    // Two days later it has expired.
    h.clock.advance(Duration::days(2));
    let (s, v) = c.post("/v1/four-attributes", &four).await.unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_expired");

    // A new consent, withdrawn by the SP (query form).
    let now = h.clock.now();
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(30), "n-2");
    let consent2 = consent_created(&mut c, &sp, &cms).await;
    let (s, _) = c.post("/v1/four-attributes", &four).await.unwrap();
    assert_eq!(s, StatusCode::OK);
    // Another SP cannot withdraw it.
    let (s, v) = withdraw_by_sp(&mut c, &consent2, &other_sp).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "consent_unknown");
    let (s, v) = h.curl(
        &pf,
        "DELETE",
        &format!("/v1/consents/{consent2}"),
        &json!({"sp": sp}).to_string(),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = c.post("/v1/four-attributes", &four).await.unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_withdrawn");
    let (s, v) = withdraw_by_sp(&mut c, &consent2, &sp).await;
    assert_error(s, &v, StatusCode::CONFLICT, "consent_already_withdrawn");

    // A third, withdrawn by the holder's signature.
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(30), "n-3");
    let consent3 = consent_created(&mut c, &sp, &cms).await;
    let wrong = h.signed(&holder, &json!({"withdraw": consent1}).to_string());
    let (s, v) = withdraw_by_holder(&mut c, &sp, &consent3, &wrong).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_invalid");
    let w = h.signed(&holder, &json!({"withdraw": consent3}).to_string());
    let (s, v) = withdraw_by_holder(&mut c, &sp, &consent3, &w).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["withdrawn_by"], "holder");
    let (s, v) = c.post("/v1/four-attributes", &four).await.unwrap();
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_withdrawn");

    // A revoked signing certificate cannot consent.
    h.a.revoke(
        &ca::authority::parse_serial(&serial_of(&holder.sign_pem)).unwrap(),
        Some(Hierarchy::Signing),
        policies::Reason::KeyCompromise,
        None,
    )
    .unwrap();
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(30), "n-4");
    let (s, v) = post_consent(&mut c, &sp, &cms).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "consent_invalid");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("revoked"),
        "{v}"
    );
    h.stop().await;
}

fn serial_of(pem: &str) -> String {
    let der = platform::operator_ca::der_of_pem(pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    ca::authority::serial_hex(c.raw_serial())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consent_then_move_then_the_new_address() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity,four-attributes,successor");
    let sp = h.sp("PF One", "Bank", "validity,four-attributes,successor");
    let holder = h.holder("h1");
    let mut c = h.client(&pf).await;
    let now = h.clock.now();
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(3650), "story");
    let (s, v) = h.curl(
        &pf,
        "POST",
        "/v1/consents",
        &json!({"sp": sp, "cms": cms}).to_string(),
    );
    assert_eq!(s, 201, "{v}");

    // The holder moves: the register changes and the signing certificate is revoked.
    h.clock.advance(Duration::hours(1));
    let out =
        h.a.event(
            &holder.id,
            &Event::Move {
                address: "大阪府大阪市北区中之島一丁目3番20号".into(),
                prefecture: Some("Osaka".into()),
                municipality: Some("Osaka-shi".into()),
            },
        )
        .unwrap();
    assert!(!out.revocations.is_empty());

    // Validity: revoked, affiliationChanged, attributes changed.
    let (s, v) = c
        .post(
            "/v1/validity",
            &json!({"sp": sp, "certificates": [holder.sign_pem,
                {"issuer": "auth", "serial": holder.auth_serial}]}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["status"], "revoked", "{v}");
    assert_eq!(v["results"][0]["reason"], "affiliationChanged");
    assert_eq!(v["results"][0]["attributes_changed"], true);
    assert_eq!(v["results"][1]["status"], "good", "{v}");
    assert_eq!(v["results"][1]["attributes_changed"], false);

    // The PF still gets the NEW address from the revoked certificate.
    let (s, v) = h.curl(
        &pf,
        "POST",
        "/v1/four-attributes",
        &json!({"sp": sp, "certificate": holder.sign_pem}).to_string(),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["address"], "大阪府大阪市北区中之島一丁目3番20号");
    assert_eq!(v["certificate"]["status"], "revoked");
    assert_eq!(v["certificate"]["attributes_changed"], true);

    // Successor: a new authentication certificate supersedes the old one.
    let (_, _, _, new_auth) = h.issue(&holder.id, Hierarchy::Auth, "h1-auth2");
    let (s, v) = c
        .post(
            "/v1/successor",
            &json!({"sp": sp, "serial": holder.auth_serial}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["current"]["serial"], new_auth.as_str(), "{v}");

    // Death: the answer says so.
    h.a.event(&holder.id, &Event::Death).unwrap();
    let (s, v) = c
        .post(
            "/v1/four-attributes",
            &json!({"sp": sp, "certificate": holder.sign_pem}),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "deceased");

    // The holder can see who read their data; the audit chain is intact.
    let log = h
        .admin(Request::AccessLog {
            resident: holder.id.clone(),
        })
        .unwrap();
    let entries = log["accesses"].as_array().unwrap();
    let ops: Vec<&str> = entries
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "consent",
            "validity",
            "four-attributes",
            "successor",
            "four-attributes"
        ],
        "{log}"
    );
    assert!(entries
        .iter()
        .all(|e| e["pf_name"] == "PF One" && e["sp_name"] == "Bank"));
    let audit = h.a.audit_records().unwrap();
    assert!(audit.iter().filter(|r| r.action == "pf-access").count() >= 5);
    assert!(audit
        .iter()
        .all(|r| !r.detail.contains("大阪") && !r.subject.contains("山田")));
    h.a.audit_verify().unwrap();
    h.stop().await;
}

// ----- platform operators' daily work, and the OpenAPI document ------------------------------

/// `platform/openapi.json`, parsed.
fn openapi() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("platform/openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// Calls `method path` (an instance of the document's `template`) and checks the answer
/// against the document's schema for its status.
async fn checked(
    c: &mut Client,
    method: &str,
    template: &str,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let (s, v) = c.call(method.parse().unwrap(), path, body).await.unwrap();
    let doc = openapi();
    let schema = openapi_check::answer_schema(&doc, method, template, s.as_u16());
    let errors = openapi_check::Doc(&doc).check(schema, &v, "$");
    assert!(
        errors.is_empty(),
        "{method} {path} → {s}: the answer does not match openapi.json: {errors:?}\n{v}"
    );
    (s, v)
}

async fn get(c: &mut Client, template: &str, path: &str) -> (StatusCode, Value) {
    checked(c, "GET", template, path, &json!({})).await
}

fn actions(a: &Authority) -> Vec<(String, String, String)> {
    a.audit_records()
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.subject, r.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_providers_are_suspended_resumed_removed_and_rescoped() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity,four-attributes");
    let sp = h.sp("PF One", "Bank", "validity");
    let other = h.sp("PF One", "Shop", "validity");
    let holder = h.holder("h1");
    let mut c = h.client(&pf).await;
    let validity = json!({"sp": sp, "certificates": [holder.sign_pem]});
    let (s, _) = checked(&mut c, "POST", "/v1/validity", "/v1/validity", &validity).await;
    assert_eq!(s, StatusCode::OK);
    let by = |a: &str| a.to_owned();
    let suspend = |id: &str| Request::SpSuspend {
        sp: id.into(),
        actor: by("alice"),
    };
    let resume = |id: &str| Request::SpResume {
        sp: id.into(),
        actor: by("alice"),
    };
    let remove = |id: &str| Request::SpRemove {
        sp: id.into(),
        actor: by("bob"),
    };
    let rescope = |id: &str, scopes: &str| Request::SpRescope {
        sp: id.into(),
        scopes: platform::registry::parse_scopes(scopes).unwrap(),
        actor: by("carol"),
    };
    let err = |r: platform::Result<Value>| r.unwrap_err();

    // Bad input changes nothing: unknown SP, no actor, a scope the PF lacks.
    let before = actions(&h.a).len();
    for req in [
        suspend("SP0000"),
        resume("SP0000"),
        remove("SP0000"),
        rescope("SP0000", "validity"),
    ] {
        assert_eq!(err(h.admin(req)).code(), "sp_unknown");
    }
    let e = err(h.admin(Request::SpSuspend {
        sp: sp.clone(),
        actor: " ".into(),
    }));
    assert_eq!(e.code(), "bad_name", "{e}");
    let e = err(h.admin(rescope(&sp, "validity,successor")));
    assert_eq!(e.code(), "operator_scope_missing", "{e}");
    assert_eq!(
        e.to_string(),
        "platform operator does not have the `successor` scope"
    );
    assert_eq!(err(h.admin(resume(&sp))).code(), "sp_state_unchanged");
    assert_eq!(
        actions(&h.a).len(),
        before,
        "refused changes are not recorded"
    );

    // Suspended: refused with sp_suspended; another SP of the PF is not affected.
    let v = h.admin(suspend(&sp)).unwrap();
    assert_eq!(v["state"], "suspended");
    let e = err(h.admin(suspend(&sp)));
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (
            "sp_state_unchanged",
            &*format!("service provider {sp} is already suspended")
        )
    );
    let (s, v) = checked(&mut c, "POST", "/v1/validity", "/v1/validity", &validity).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "sp_suspended");
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/validity",
        "/v1/validity",
        &json!({"sp": other, "certificates": [holder.sign_pem]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = get(&mut c, "/v1/changes", &format!("/v1/changes?sp={sp}")).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "sp_suspended");

    // Resumed: served again.
    assert_eq!(h.admin(resume(&sp)).unwrap()["state"], "active");
    let (s, _) = checked(&mut c, "POST", "/v1/validity", "/v1/validity", &validity).await;
    assert_eq!(s, StatusCode::OK);

    // Re-scoped: the old scope is gone, the new one works.
    let v = h.admin(rescope(&sp, "four-attributes")).unwrap();
    assert_eq!(v["scopes"], json!(["four-attributes"]));
    let (s, v) = checked(&mut c, "POST", "/v1/validity", "/v1/validity", &validity).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "scope_missing");
    let (s, v) = get(&mut c, "/v1/consents", &format!("/v1/consents?sp={sp}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.admin(rescope(&sp, "validity,four-attributes")).unwrap();

    // Removed: final, refused with sp_removed, and removing twice is refused.
    assert_eq!(h.admin(remove(&sp)).unwrap()["state"], "removed");
    let (s, v) = checked(&mut c, "POST", "/v1/validity", "/v1/validity", &validity).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "sp_removed");
    for req in [
        remove(&sp),
        resume(&sp),
        suspend(&sp),
        rescope(&sp, "validity"),
    ] {
        let e = err(h.admin(req));
        assert_eq!(
            (e.code(), e.status()),
            ("sp_removed", StatusCode::FORBIDDEN),
            "{e}"
        );
    }
    let listed = h.admin(Request::SpList).unwrap();
    let states: Vec<(&str, &str)> = listed["service_providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert!(
        states.contains(&(sp.as_str(), "removed")) && states.contains(&(other.as_str(), "active")),
        "{states:?}"
    );

    // Each change is one audit record naming the SP and the actor; the chain is intact.
    let changes: Vec<(String, String)> = actions(&h.a)
        .into_iter()
        .filter(|(a, s, _)| a.starts_with("sp-") && a != "sp-add" && *s == sp)
        .map(|(a, _, d)| (a, d))
        .collect();
    assert_eq!(
        changes,
        vec![
            (
                "sp-suspend".into(),
                "by=alice from=active to=suspended".into()
            ),
            (
                "sp-resume".into(),
                "by=alice from=suspended to=active".into()
            ),
            (
                "sp-rescope".into(),
                "by=carol from=validity to=four-attributes".into()
            ),
            (
                "sp-rescope".into(),
                "by=carol from=four-attributes to=validity,four-attributes".into()
            ),
            ("sp-remove".into(), "by=bob from=active to=removed".into()),
        ]
    );
    h.a.audit_verify().unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consents_are_listed_per_sp_and_changes_fed_with_a_cursor() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity,four-attributes,successor");
    let sp = h.sp("PF One", "Bank", "validity,four-attributes");
    let other = h.sp("PF One", "Shop", "validity,four-attributes");
    let mut c = h.client(&pf).await;
    let now = h.clock.now();
    let alice = h.holder("alice");
    let bob = h.holder("bob");
    let carol = h.holder("carol");
    let mut ids = Vec::new();
    for (holder, nonce) in [(&alice, "n-1"), (&bob, "n-2"), (&alice, "n-3")] {
        let cms = h.consent_cms(holder, &sp, now + Duration::days(365), nonce);
        ids.push(consent_created(&mut c, &sp, &cms).await);
    }
    let cms = h.consent_cms(&carol, &other, now + Duration::days(365), "n-1");
    let carols = consent_created(&mut c, &other, &cms).await;
    // Bob withdraws: his consent is listed as withdrawn and he leaves the feed.
    let (s, _) = withdraw_by_sp(&mut c, &ids[1], &sp).await;
    assert_eq!(s, StatusCode::OK);

    // Consents: pages of two, each SP sees its own only.
    let (s, v) = get(
        &mut c,
        "/v1/consents",
        &format!("/v1/consents?sp={sp}&limit=2"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["consents"].as_array().unwrap().len(), 2);
    let next = v["next"].as_str().unwrap().to_owned();
    let mut listed: Vec<Value> = v["consents"].as_array().unwrap().clone();
    let (_, v) = get(
        &mut c,
        "/v1/consents",
        &format!("/v1/consents?sp={sp}&limit=2&cursor={next}"),
    )
    .await;
    assert!(v["next"].is_null(), "{v}");
    listed.extend(v["consents"].as_array().unwrap().iter().cloned());
    let mut got: Vec<(&str, &str)> = listed
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    got.sort();
    let mut want = vec![
        (ids[0].as_str(), "live"),
        (ids[1].as_str(), "withdrawn"),
        (ids[2].as_str(), "live"),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(
        listed.iter().all(|c| c.get("holder").is_none()),
        "holder ids are not shown"
    );
    let (_, v) = get(&mut c, "/v1/consents", &format!("/v1/consents?sp={other}")).await;
    assert_eq!(v["consents"][0]["id"], carols.as_str());
    assert_eq!(v["consents"].as_array().unwrap().len(), 1);
    for (path, code) in [
        (format!("/v1/consents?sp={sp}&cursor=a!b"), "cursor_invalid"),
        (format!("/v1/consents?sp={sp}&limit=0"), "malformed_request"),
        (
            format!("/v1/consents?sp={sp}&limit=1001"),
            "malformed_request",
        ),
        ("/v1/consents".to_owned(), "malformed_request"),
        ("/v1/consents?sp=SP0000".to_owned(), "sp_unknown"),
    ] {
        let (s, v) = get(&mut c, "/v1/consents", &path).await;
        assert_eq!(code, v["error"]["code"], "{path}: {s} {v}");
    }

    // The feed from the beginning: nothing revoked yet.
    let (s, v) = get(&mut c, "/v1/changes", &format!("/v1/changes?sp={sp}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["changes"], json!([]), "{v}");
    assert_eq!(v["more"], false, "a short chain fits one page");
    let mut cursor = v["next"].as_str().unwrap().to_owned();

    // Alice's authentication certificate is held, then she moves (signing revoked, attributes
    // changed); Bob (withdrawn) and Carol (another SP's) move too.
    h.clock.advance(Duration::hours(1));
    let auth = ca::authority::parse_serial(&alice.auth_serial).unwrap();
    h.a.hold(&auth, Some(Hierarchy::Auth)).unwrap();
    let move_to = || Event::Move {
        address: "大阪府大阪市北区中之島一丁目3番20号".into(),
        prefecture: Some("Osaka".into()),
        municipality: Some("Osaka-shi".into()),
    };
    for who in [&bob, &alice, &carol] {
        h.a.event(&who.id, &move_to()).unwrap();
    }
    let (_, v) = get(
        &mut c,
        "/v1/changes",
        &format!("/v1/changes?sp={sp}&since={cursor}"),
    )
    .await;
    let changes = v["changes"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap(),
                c["consent"].as_str().unwrap(),
            )
        })
        .collect();
    // Alice's latest live consent names her.
    let alice_consent = kinds.first().map(|k| k.1).unwrap();
    assert!(
        alice_consent == ids[0] || alice_consent == ids[2],
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().map(|k| k.0).collect::<Vec<_>>(),
        vec!["held", "attributes_changed", "revoked"],
        "{v}"
    );
    assert_eq!(changes[0]["serial"], alice.auth_serial.as_str());
    assert_eq!(changes[2]["reason"], "affiliationChanged");
    assert_eq!(changes[2]["attributes_changed"], true);
    assert!(changes
        .windows(2)
        .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    let next = v["next"].as_str().unwrap().to_owned();
    assert!(next.parse::<u64>().unwrap() > cursor.parse::<u64>().unwrap());
    cursor = next;
    // Paged: one change at a time from the same start gives the same changes.
    let mut paged = Vec::new();
    let mut at = v["changes"][0]["seq"].as_u64().unwrap().to_string();
    loop {
        let (_, p) = get(
            &mut c,
            "/v1/changes",
            &format!("/v1/changes?sp={sp}&since={at}&limit=1"),
        )
        .await;
        paged.extend(
            p["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["seq"].clone()),
        );
        at = p["next"].as_str().unwrap().to_owned();
        if p["changes"].as_array().unwrap().is_empty() {
            break;
        }
    }
    assert_eq!(
        paged,
        changes.iter().map(|c| c["seq"].clone()).collect::<Vec<_>>()
    );
    // Nothing new since the cursor.
    // (The feed's own calls add access records to the chain: the cursor moves past them.)
    let (_, v) = get(
        &mut c,
        "/v1/changes",
        &format!("/v1/changes?sp={sp}&since={cursor}"),
    )
    .await;
    assert_eq!(v["changes"], json!([]));
    assert!(v["next"].as_str().unwrap().parse::<u64>().unwrap() >= cursor.parse::<u64>().unwrap());
    // Garbage and unknown cursors are refused.
    for (since, want) in [
        ("abc", "cursor_invalid"),
        ("-1", "cursor_invalid"),
        ("+5", "cursor_invalid"),
        ("99999999", "cursor_unknown"),
        ("", "cursor_invalid"),
    ] {
        let (s, v) = get(
            &mut c,
            "/v1/changes",
            &format!("/v1/changes?sp={sp}&since={since}"),
        )
        .await;
        assert_error(s, &v, StatusCode::BAD_REQUEST, want);
    }

    // Usage: counted per endpoint and certificate type for this month.
    let month = format!("{:04}-{:02}", now.year(), u8::from(now.month()));
    let usage = h
        .admin(Request::Usage {
            month: month.clone(),
        })
        .unwrap();
    let count = |endpoint: &str, t: &str| -> u64 {
        usage["usage"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["sp"] == sp.as_str() && u["endpoint"] == endpoint && u["cert_type"] == t)
            .map(|u| u["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(count("consent", "signing"), 3, "{usage}");
    assert!(count("changes", "none") >= 3, "{usage}");
    assert_eq!(
        count("consent-list", "none"),
        2,
        "two pages answered; refusals are not counted: {usage}"
    );
    assert_eq!(count("consent-withdraw", "none"), 1, "{usage}");
    assert_eq!(
        h.admin(Request::Usage {
            month: "2026-13".into()
        })
        .unwrap_err()
        .code(),
        "malformed_request"
    );
    h.stop().await;
}

/// The change feed's cursor is the store's: it survives a restart of the server and of the
/// store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_change_feed_cursor_survives_a_restart() {
    let h = H::start().await;
    let pf = h.pf("PF One", "validity,four-attributes");
    let sp = h.sp("PF One", "Bank", "validity,four-attributes");
    let holder = h.holder("h1");
    let mut c = h.client(&pf).await;
    let cms = h.consent_cms(&holder, &sp, h.clock.now() + Duration::days(30), "n");
    consent_created(&mut c, &sp, &cms).await;
    let (_, v) = get(&mut c, "/v1/changes", &format!("/v1/changes?sp={sp}")).await;
    let cursor = v["next"].as_str().unwrap().to_owned();
    let data = h.dir.path().join("data");
    let H {
        dir,
        a,
        stop,
        server,
        ..
    } = h;
    drop(c);
    let _ = stop.map(|s| s.send(()));
    if let Some(s) = server {
        s.await.unwrap();
    }
    drop(a);
    // Reopened: the holder's certificate is revoked; the old cursor still works and shows it.
    let a = Arc::new(
        Authority::open(
            &data,
            Some(PASS.as_bytes().to_vec()),
            Arc::new(FixedClock::new(now_s())),
        )
        .unwrap(),
    );
    let serial = ca::authority::parse_serial(&serial_of(&holder.sign_pem)).unwrap();
    a.revoke(
        &serial,
        Some(Hierarchy::Signing),
        policies::Reason::KeyCompromise,
        None,
    )
    .unwrap();
    let (chain, key) = platform::server_identity(&a, &["127.0.0.1".into()]).unwrap();
    let api = Arc::new(Api::new(a.clone(), chain, key, None).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        api.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let root_pem = ca::records::pem(&platform::operator_ca::root(&a).unwrap());
    let cfg = client::tls_config(&root_pem, &pf.cert_pem, &pf.key_pem).unwrap();
    let mut c = Client::connect(addr, "127.0.0.1", cfg).await.unwrap();
    let (s, v) = get(
        &mut c,
        "/v1/changes",
        &format!("/v1/changes?sp={sp}&since={cursor}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["changes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["changes"][0]["change"], "revoked");
    assert_eq!(v["changes"][0]["reason"], "keyCompromise");
    let _ = stop.send(());
    server.await.unwrap();
    drop(dir);
}

/// `platform/openapi.json` documents exactly the server's routes, and the server's real
/// answers — successes and refusals of every route — match its schemas (each call here and
/// in the tests above goes through [`checked`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_matches_the_server() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> = platform::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(
        documented, served,
        "every route is documented, and only those"
    );
    // API.md points to the document.
    let api_md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/API.md")).unwrap();
    assert!(api_md.contains("openapi.json"));

    let h = H::start().await;
    let pf = h.pf("PF One", "validity,four-attributes,successor");
    let sp = h.sp("PF One", "Bank", "validity,four-attributes,successor");
    let holder = h.holder("h1");
    let mut c = h.client(&pf).await;
    // Every route, as the tests above do not already cover it, success first.
    let now = h.clock.now();
    let (s, _) = checked(&mut c, "POST", "/v1/validity", "/v1/validity",
        &json!({"sp": sp, "certificates": [holder.sign_pem, {"issuer": "auth", "serial": holder.auth_serial},
                "MIIBAA==", {"issuer": "signing", "serial": "0F0F"}]})).await;
    assert_eq!(s, StatusCode::OK);
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(30), "n-1");
    let (s, v) = checked(
        &mut c,
        "POST",
        "/v1/consents",
        "/v1/consents",
        &json!({"sp": sp, "cms": cms}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let first = v["id"].as_str().unwrap().to_owned();
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/consents",
        "/v1/consents",
        &json!({"sp": sp, "cms": cms}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/four-attributes",
        "/v1/four-attributes",
        &json!({"sp": sp, "certificate": holder.sign_pem}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/successor",
        "/v1/successor",
        &json!({"sp": sp, "serial": holder.auth_serial}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/successor",
        "/v1/successor",
        &json!({"sp": sp, "serial": "0F0F0F"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = checked(
        &mut c,
        "DELETE",
        "/v1/consents/{id}",
        &format!("/v1/consents/{first}?sp={sp}"),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = checked(
        &mut c,
        "DELETE",
        "/v1/consents/{id}",
        &format!("/v1/consents/{first}"),
        &json!({"sp": sp}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = checked(
        &mut c,
        "DELETE",
        "/v1/consents/{id}",
        &format!("/v1/consents/C00?sp={sp}"),
        &json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let cms = h.consent_cms(&holder, &sp, now + Duration::days(30), "n-2");
    let second = consent_created(&mut c, &sp, &cms).await;
    let w = h.signed(&holder, &json!({"withdraw": second}).to_string());
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/consents/{id}/withdraw",
        &format!("/v1/consents/{second}/withdraw"),
        &json!({"sp": sp, "cms": w}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(&mut c, "/v1/consents", &format!("/v1/consents?sp={sp}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(&mut c, "/v1/changes", &format!("/v1/changes?sp={sp}")).await;
    assert_eq!(s, StatusCode::OK);
    // Refusals: malformed, a method the route does not have, too large.
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/validity",
        "/v1/validity",
        &json!({"sp": sp}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let error_schema = json!({"$ref": "#/components/schemas/Error"});
    let (s, v) = c
        .call(http::Method::PUT, "/v1/consents", &json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        openapi_check::Doc(&doc)
            .check(&error_schema, &v, "$")
            .is_empty(),
        "{v}"
    );
    let (s, _) = checked(
        &mut c,
        "POST",
        "/v1/four-attributes",
        "/v1/four-attributes",
        &json!({"sp": sp, "certificate": "x".repeat(300 * 1024)}),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // A path that is no route: 404 with the error body.
    let (s, v) = c
        .call(http::Method::GET, "/v1/nothing", &json!({}))
        .await
        .unwrap();
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    assert!(
        openapi_check::Doc(&doc)
            .check(&error_schema, &v, "$")
            .is_empty(),
        "{v}"
    );
    h.stop().await;
}
