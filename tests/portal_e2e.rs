//! The holder portal in a real browser: `jpki serve --portal 127.0.0.1:0` driven by Chromium
//! through Playwright (`tests/portal/drive.cjs`, playwright-core from tests/portal's
//! package-lock.json). This test prepares four holders, a platform operator that reads one
//! holder's four attributes under her consent, runs the browser script, then checks what the
//! browser saw and what changed on the server side: the platform API refuses the withdrawn
//! consent, OCSP says the reported card's certificates are on hold, and the audit chain names
//! the holder as the actor.
//!
//! Needs `/usr/bin/chromium` (or `$JPKI_CHROMIUM`), `node` and `npm` (`.ci/run` installs them).
//! Where they are missing the test says so loudly and passes without running — except under
//! CI (`.ci/run` sets `JPKI_REQUIRE_BROWSER`), where it fails.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the browser needs; `None` (with the reason printed) when it is not here.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("JPKI_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/portal");
    let missing = |what: &str| {
        let text = format!(
            "\n\n!!!!!!!! portal browser test SKIPPED: {what} is missing.\n\
             !!!!!!!! Install it (apt-get install -y chromium nodejs npm) to run it; CI always does.\n"
        );
        if std::env::var_os("JPKI_REQUIRE_BROWSER").is_some() {
            panic!("{text}");
        }
        eprintln!("{text}");
        None
    };
    if !chromium.exists() {
        return missing(&format!("Chromium ({})", chromium.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return missing("node");
    }
    if !dir.join("node_modules/playwright-core").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return missing("playwright-core (`npm ci` in tests/portal failed)");
        }
    }
    Some((chromium, dir))
}

/// `jpki serve` with the CRL/OCSP, platform API and portal listeners; their base URLs.
struct Served {
    child: std::process::Child,
    http: String,
    pf: String,
    portal: String,
}

impl Served {
    fn start(env: &Env) -> Served {
        let mut child = env
            .cmd(&[
                "serve",
                "--http",
                "127.0.0.1:0",
                "--pf-https",
                "127.0.0.1:0",
                "--portal",
                "127.0.0.1:0",
            ])
            .env("JPKI_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut http, mut pf, mut portal) = (None, None, None);
        let mut log = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("jpki serve: CRLs at ") {
                http = Some(rest.split("/crl/").next().unwrap().to_owned());
            }
            if let Some(rest) = line.strip_prefix("jpki serve: platform-operator API at ") {
                pf = Some(rest.split("/v1/").next().unwrap().to_owned());
            }
            if let Some(rest) = line.strip_prefix("jpki serve: holder portal at ") {
                portal = Some(rest.trim_end_matches('/').to_owned());
            }
            let running = line.contains("running;");
            log.push(line);
            if running {
                break;
            }
        }
        // The server's log lines are kept for the check that no personal attribute is in them.
        let log_file = env.path("serve.log");
        std::fs::write(&log_file, log.join("\n") + "\n").unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(log_file)
                .unwrap();
            for l in lines.map_while(|l| l.ok()) {
                let _ = writeln!(f, "{l}");
            }
        });
        Served {
            child,
            http: http.expect("CRL/OCSP listener"),
            pf: pf.expect("platform API listener"),
            portal: portal.expect("portal listener"),
        }
    }

    fn stop(mut self) {
        unsafe_kill(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

/// A platform API call with curl: (status, JSON).
fn pf_post(env: &Env, pf: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let body_file = env.write("pf-body.json", body.to_string().as_bytes());
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cert"])
        .arg(env.path("pf.pem"))
        .arg("--key")
        .arg(env.path("pf.key"))
        .arg("--cacert")
        .arg(env.path("operator-root.pem"))
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", p(&body_file)))
        .arg(format!("{pf}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

/// CMS over `content` (attached, DER) by a certificate and key, with openssl.
fn cms_sign(env: &Env, name: &str, content: &str, cert: &Path, key: &Path) -> PathBuf {
    let input = env.write(&format!("{name}.json"), content.as_bytes());
    let out = env.path(&format!("{name}.p7s"));
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
        &p(cert),
        "-inkey",
        &p(key),
        "-in",
        &p(&input),
        "-out",
        &p(&out),
    ]);
    out
}

/// Issues `kind` to `resident` for a fresh openssl key; (certificate PEM path, key path, serial).
fn holder_cert(env: &Env, resident: &str, name: &str, kind: &str) -> (PathBuf, PathBuf, String) {
    let (key, csr) = env.csr(name, 2048);
    let v = env.issue(resident, kind, &csr);
    let cert = env.write(
        &format!("{name}.pem"),
        v["pem"].as_str().unwrap().as_bytes(),
    );
    (cert, key, v["serial"].as_str().unwrap().to_owned())
}

/// The certificates a (Japanese) certificates page shows, as `kind:serial`, in page order.
fn shown_serials(page: &str) -> Vec<String> {
    let lines: Vec<&str> = page.lines().map(str::trim).collect();
    let mut kind = "";
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match *l {
            "署名用電子証明書" => kind = "signing",
            "利用者証明用電子証明書" => kind = "auth",
            "シリアル番号" => out.push(format!("{kind}:{}", lines.get(i + 1).unwrap_or(&""))),
            _ => {}
        }
    }
    out
}

#[test]
fn a_holder_sees_and_acts_on_their_data_in_a_browser() {
    let Some((chromium, script_dir)) = browser_tools() else {
        return;
    };
    let env = Env::init();
    let a = env.add_resident("山田　花子", "1985-04-12");
    let b = env.add_resident("佐藤　次郎", "1990-02-03");
    let c = env.add_resident("鈴木　三郎", "1970-07-07");
    let d = env.add_resident("高橋　四郎", "1960-06-06");
    let (a_sign, a_sign_key, a_sign_serial) = holder_cert(&env, &a, "a-sign", "signing");
    let (a_auth, a_auth_key, a_auth_serial) = holder_cert(&env, &a, "a-auth", "auth");
    let (b_auth, b_auth_key, b_auth_serial) = holder_cert(&env, &b, "b-auth", "auth");
    let (c_auth, c_auth_key, c_auth_serial) = holder_cert(&env, &c, "c-auth", "auth");
    env.ok(&[
        "revoke",
        "--serial",
        &c_auth_serial,
        "--hierarchy",
        "auth",
        "--reason",
        "keyCompromise",
    ]);
    // D holds a token (the card's stand-in) and logs in by challenge–response.
    let d_token = env.path("d.token");
    env.ok(&[
        "token",
        "new",
        "--out",
        &p(&d_token),
        "--sign-pin",
        "SIGNPIN1",
        "--auth-pin",
        "1234",
    ]);
    let d_csr = env.path("d-auth.csr");
    env.ok(&[
        "token",
        "csr",
        "--token",
        &p(&d_token),
        "--kind",
        "auth",
        "--pin",
        "1234",
        "--out",
        &p(&d_csr),
    ]);
    let d_cert = env.issue(&d, "auth", &d_csr);
    // D also has a signing certificate, revoked by the register when D moves.
    let (_, _, d_sign_serial) = holder_cert(&env, &d, "d-sign", "signing");
    env.ok(&[
        "resident",
        "move",
        "--id",
        &d,
        "--address",
        "神奈川県横浜市中区日本大通１",
        "--prefecture",
        "Kanagawa",
        "--municipality",
        "Yokohama-shi",
    ]);
    let d_pem = env.write("d-auth.pem", d_cert["pem"].as_str().unwrap().as_bytes());
    env.ok(&[
        "token",
        "import-cert",
        "--token",
        &p(&d_token),
        "--cert",
        &p(&d_pem),
    ]);

    let served = Served::start(&env);
    env.ok(&[
        "operator",
        "add",
        "--name",
        "Example PF",
        "--scopes",
        "validity,four-attributes",
        "--cert-out",
        &p(&env.path("pf.pem")),
        "--key-out",
        &p(&env.path("pf.key")),
    ]);
    let sp = env.json(&[
        "sp",
        "add",
        "--pf",
        "Example PF",
        "--name",
        "Example Bank",
        "--scopes",
        "validity,four-attributes",
    ]);
    let sp = sp["id"].as_str().unwrap().to_owned();
    let operator_root = env.write(
        "operator-root.pem",
        env.ok(&["root", "--hierarchy", "operator"]).as_bytes(),
    );

    // The portal's server certificate chains to the operator CA and names the address.
    let host = served.portal.trim_start_matches("https://");
    let (ok, out) = openssl_result(&[
        "s_client",
        "-connect",
        host,
        "-CAfile",
        &p(&operator_root),
        "-verify_return_error",
        "-verify_ip",
        "127.0.0.1",
        "-brief",
    ]);
    assert!(ok && out.contains("Verification: OK"), "{out}");

    // A consents to the bank (signing key); the PF then reads her four attributes.
    let statement = serde_json::json!({"sp": sp, "scope": "four-attributes",
        "expires": "2035-01-01T00:00:00Z", "nonce": "portal-1"});
    let consent = cms_sign(
        &env,
        "consent",
        &statement.to_string(),
        &a_sign,
        &a_sign_key,
    );
    let b64 = |f: &Path| {
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            std::fs::read(f).unwrap(),
        )
    };
    let (code, v) = pf_post(
        &env,
        &served.pf,
        "/v1/consents",
        &serde_json::json!({"sp": sp, "cms": b64(&consent)}),
    );
    assert_eq!(code, 201, "{v}");
    let consent_a = v["id"].as_str().unwrap().to_owned();
    let sign_pem = std::fs::read_to_string(&a_sign).unwrap();
    let ask = serde_json::json!({"sp": sp, "certificate": sign_pem});
    let (code, v) = pf_post(&env, &served.pf, "/v1/four-attributes", &ask);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["name"], "山田　花子");

    // A's withdrawal, signed with her signing key (the browser uploads it).
    let withdraw = cms_sign(
        &env,
        "withdraw",
        &serde_json::json!({"withdraw": consent_a}).to_string(),
        &a_sign,
        &a_sign_key,
    );

    let shots = match std::env::var_os("JPKI_PORTAL_SCREENSHOTS") {
        Some(d) => PathBuf::from(d),
        None => env.path("shots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let holder = |cert: &Path, key: &Path| serde_json::json!({"cert": p(cert), "key": p(key)});
    let seen_file = env.path("seen.json");
    let cfg = serde_json::json!({
        "portal": served.portal,
        "chromium": p(&chromium),
        "jpki": env!("CARGO_BIN_EXE_jpki"),
        "work": p(env.dir.path()),
        "shots": p(&shots),
        "out": p(&seen_file),
        "a": holder(&a_auth, &a_auth_key),
        "a_signing": holder(&a_sign, &a_sign_key),
        "b": holder(&b_auth, &b_auth_key),
        "c": holder(&c_auth, &c_auth_key),
        "d": {"token": p(&d_token), "pin": "1234"},
        "consent_a": consent_a,
        "withdraw_a": p(&withdraw),
    });
    let cfg_file = env.write("drive.json", cfg.to_string().as_bytes());
    let run = Command::new("node")
        .arg(script_dir.join("drive.cjs"))
        .arg(&cfg_file)
        .output()
        .unwrap();
    let seen: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&seen_file).unwrap_or_default(),
    )
    .unwrap_or_else(|_| {
        panic!(
            "the browser script wrote nothing: {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        )
    });
    assert!(
        seen.get("error").is_none(),
        "browser script: {}\n{seen:#}",
        seen["error"]
    );
    let text = |k: &str| seen[k].as_str().unwrap_or_default().to_owned();

    // The login page: Japanese by default, the strict headers.
    assert!(text("login_url").ends_with("/login"), "{seen}");
    assert!(text("login_text").contains("ログイン"), "{seen}");
    let headers = &seen["login_headers"];
    let csp = headers["content-security-policy"]
        .as_str()
        .unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    let cookie = headers["set-cookie"].as_str().unwrap_or_default();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // B sees only B: not A's certificates, log or consent, and cannot act on A's consent.
    assert!(text("b_url").ends_with("/certificates"), "{seen}");
    // Serials are sequential per hierarchy here (A's and B's may look alike): compare the
    // lists of serials shown, by kind.
    assert_eq!(
        shown_serials(&text("b_certs")),
        [format!("auth:{b_auth_serial}")],
        "{seen}"
    );
    let exported: Vec<String> = seen["b_export"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["kind"].as_str().unwrap(),
                c["serial"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(exported, [format!("auth:{b_auth_serial}")], "{seen}");
    assert!(!text("b_access").contains("Example PF"), "{seen}");
    assert!(!text("b_consents").contains("Example Bank"), "{seen}");
    assert_eq!(seen["b_withdraw_get"], 404, "{seen}");
    assert_eq!(seen["b_withdraw_post"], 404, "{seen}");
    assert_eq!(seen["b_forged_lost"], 403, "{seen}");
    assert_eq!(seen["b_foreign_origin_lost"], 403, "{seen}");
    assert_eq!(seen["b_export"]["holder"], b.as_str(), "{seen}");
    assert!(!seen["b_export"].to_string().contains("山田"), "{seen}");

    // A signing certificate and a revoked certificate do not log in.
    assert!(text("signing_login_url").ends_with("/login/tls"), "{seen}");
    assert!(
        text("signing_login_text").contains("署名用電子証明書ではログインできません"),
        "{seen}"
    );
    assert!(text("revoked_login_url").ends_with("/login/tls"), "{seen}");
    assert!(
        text("revoked_login_text").contains("失効しているため"),
        "{seen}"
    );

    // Challenge–response with `jpki token login --pem`.
    assert!(text("d_url").ends_with("/certificates"), "{seen}");
    let d_serial = d_cert["serial"].as_str().unwrap();
    assert_eq!(
        shown_serials(&text("d_certs")),
        [
            format!("signing:{d_sign_serial}"),
            format!("auth:{d_serial}")
        ],
        "{seen}"
    );
    // Why, in plain words, with the day (JST) of the move.
    let shown = env.json(&["resident", "show", "--id", &d]);
    let moved = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|h| h["event"] == "move")
        .map(|h| h["at"].as_str().unwrap().to_owned())
        .unwrap();
    let at = time::OffsetDateTime::parse(&moved, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .to_offset(time::macros::offset!(+9));
    let day = format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    );
    assert!(
        text("d_certs").contains(&format!("{day}に住所が変わったため、失効しました。")),
        "{seen}"
    );

    // A: both certificates, the access log after the PF's read, the consent; then withdraws.
    assert!(text("a_url").ends_with("/certificates"), "{seen}");
    assert_eq!(
        shown_serials(&text("a_certs")),
        [
            format!("signing:{a_sign_serial}"),
            format!("auth:{a_auth_serial}")
        ],
        "{seen}"
    );
    assert!(text("a_certs").contains("有効"), "{seen}");
    let access = text("a_access");
    assert!(
        access.contains("Example PF")
            && access.contains("Example Bank")
            && access.contains("基本4情報"),
        "{access}"
    );
    assert!(
        text("a_consents").contains("Example Bank") && text("a_consents").contains("2035-01-01"),
        "{seen}"
    );
    assert!(text("a_consents_en").contains("Your consents"), "{seen}");
    assert!(text("a_lang_url").ends_with("/consents"), "{seen}");
    assert!(text("a_withdraw_page").contains(&consent_a), "{seen}");
    assert!(text("a_withdrawn").contains("Consent withdrawn"), "{seen}");
    assert!(text("a_consents_after").contains("Withdrawn"), "{seen}");
    assert!(
        text("a_export_disposition").contains("attachment"),
        "{seen}"
    );
    assert_eq!(seen["a_export"]["holder"], a.as_str());
    assert_eq!(seen["a_export"]["attributes"]["name"], "山田　花子");
    assert_eq!(
        seen["a_export"]["certificates"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(text("a_lost_unconfirmed_url").ends_with("/lost"), "{seen}");
    assert!(text("a_lost").contains("on hold"), "{seen}");
    // The session ended with the hold.
    assert!(text("a_after_lost_url").ends_with("/login"), "{seen}");

    // The platform API refuses the withdrawn consent at once.
    let (code, v) = pf_post(&env, &served.pf, "/v1/four-attributes", &ask);
    assert_eq!(code, 403, "{v}");
    assert!(v.to_string().contains("withdrawn"), "{v}");

    // OCSP: both of A's certificates on hold.
    let url = format!("{}/ocsp", served.http);
    for (h, cert) in [("auth", &a_auth), ("signing", &a_sign)] {
        let root = env.write(
            &format!("{h}-root.pem"),
            env.ok(&["root", "--hierarchy", h]).as_bytes(),
        );
        let (_, out) = openssl_result(&[
            "ocsp",
            "-issuer",
            &p(&root),
            "-cert",
            &p(cert),
            "-url",
            &url,
            "-CAfile",
            &p(&root),
        ]);
        assert!(
            out.contains("Response verify OK")
                && out.contains("revoked")
                && out.contains("certificateHold"),
            "{h}: {out}"
        );
    }

    // Login attempts are rate limited per client address.
    let limited = (0..12).any(|_| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-k",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "--data",
                "csrf=x",
            ])
            .arg(format!("{}/login/challenge", served.portal))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout) == "429"
    });
    assert!(limited, "no 429 after 12 login attempts");

    served.stop();

    // Audited with the holder as actor; no personal attribute in the server's log.
    let audit = env.ok(&["audit", "log", "--json"]);
    for action in [
        "portal:login",
        "portal:consent-withdraw",
        "portal:card-lost",
        "portal:export",
    ] {
        assert!(
            audit.contains(action),
            "{action} missing from the audit log"
        );
    }
    assert!(audit.contains(&format!("actor=holder:{a}")), "{audit}");
    env.ok(&["audit", "verify"]);
    let log = std::fs::read_to_string(env.path("serve.log")).unwrap();
    assert!(
        log.contains("portal login"),
        "the log has the logins: {log}"
    );
    for personal in ["山田", "佐藤", "東京都", "1985-04-12"] {
        assert!(!log.contains(personal), "`{personal}` in the server log");
    }
}

/// `jpki demo --keep DIR` ends with the command that serves the portal on the kept data and
/// how to log in as 山田 花子; following it (on port 0) logs her in by challenge–response, with
/// curl as the browser.
#[test]
fn the_demo_says_how_to_look_at_the_portal() {
    let keep = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(["demo", "--keep", &p(keep.path())])
        .env_remove("JPKI_TEST_NOW")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hint = text
        .split("The holder portal on this data")
        .nth(1)
        .unwrap_or_else(|| panic!("no portal hint in\n{text}"));
    let serve_line = hint
        .lines()
        .find(|l| l.trim_start().starts_with("jpki --data"))
        .unwrap_or_else(|| panic!("no serve command in\n{hint}"));
    let login_line = hint
        .lines()
        .find(|l| l.trim_start().starts_with("jpki token login"))
        .unwrap_or_else(|| panic!("no login command in\n{hint}"));

    // The printed serve command, on port 0.
    let args: Vec<String> = serve_line
        .split_whitespace()
        .skip(1)
        .map(|a| a.replace("127.0.0.1:8443", "127.0.0.1:0"))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(&args)
        .env_remove("JPKI_TEST_NOW")
        .env_remove("JPKI_PASSPHRASE")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut portal = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("jpki serve: holder portal at ") {
            portal = Some(rest.trim_end_matches('/').to_owned());
        }
        if line.contains("running;") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let portal = portal.expect("the portal is listening");

    // The login page: its CSRF token and challenge.
    let jar = keep.path().join("cookies.txt");
    let page = Command::new("curl")
        .args(["-s", "-k", "-c"])
        .arg(&jar)
        .arg(format!("{portal}/login"))
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    let after = |marker: &str, len: usize| -> String {
        let i = page
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker} in {page}"));
        page[i + marker.len()..].chars().take(len).collect()
    };
    let csrf = after("name=\"csrf\" value=\"", 64);
    let challenge = format!("jpki-portal-login:{}", after("jpki-portal-login:", 64));
    let challenge_file = keep.path().join("challenge.txt");
    std::fs::write(&challenge_file, &challenge).unwrap();

    // Her card signs it, as printed (the paths are the demo's).
    let login_file = keep.path().join("login.txt");
    let login_args: Vec<String> = login_line
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "challenge.txt" => p(&challenge_file),
            "login.txt" => p(&login_file),
            other => other.to_owned(),
        })
        .collect();
    let signed = Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(&login_args)
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );

    let posted = Command::new("curl")
        .args(["-s", "-k", "-b"])
        .arg(&jar)
        .arg("-c")
        .arg(&jar)
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
        ])
        .arg(format!("Origin: {portal}"))
        .arg("--data-urlencode")
        .arg(format!("csrf={csrf}"))
        .arg("--data-urlencode")
        .arg(format!("response@{}", p(&login_file)))
        .arg(format!("{portal}/login/challenge"))
        .output()
        .unwrap();
    let posted = String::from_utf8_lossy(&posted.stdout).into_owned();
    assert!(
        posted.starts_with("303 ") && posted.ends_with("/certificates"),
        "{posted}"
    );
    let certs = Command::new("curl")
        .args(["-s", "-k", "-b"])
        .arg(&jar)
        .arg(format!("{portal}/certificates"))
        .output()
        .unwrap();
    let certs = String::from_utf8_lossy(&certs.stdout).into_owned();
    // Her signing certificate was revoked when she moved; the page says so in plain words.
    assert!(
        certs.contains("住所が変わったため、失効しました"),
        "{certs}"
    );

    // A clerk revokes her authentication certificate (through the running server): her
    // session ends at once.
    let serial = openssl(&["x509", "-noout", "-serial", "-in", &p(&login_file)]);
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    let data_dir = &args[args.iter().position(|a| a == "--data").unwrap() + 1];
    let revoked = Command::new(env!("CARGO_BIN_EXE_jpki"))
        .args(["--data", data_dir, "revoke", "--serial", &serial])
        .args(["--hierarchy", "auth", "--reason", "keyCompromise"])
        .output()
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let after = Command::new("curl")
        .args(["-s", "-k", "-b"])
        .arg(&jar)
        .args(["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"])
        .arg(format!("{portal}/certificates"))
        .output()
        .unwrap();
    let after = String::from_utf8_lossy(&after.stdout).into_owned();
    assert!(
        after.starts_with("303 ") && after.ends_with("/login"),
        "{after}"
    );
    unsafe_kill(child.id(), "TERM");
    let _ = child.wait();
}
