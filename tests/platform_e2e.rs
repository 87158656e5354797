//! The platform-operator API end to end through `jpki serve --pf-https`: a PF registered with
//! `jpki operator add` (through the admin socket), an SP with `jpki sp add`, the holder's
//! consent signed with `openssl cms -sign`, then the story — consent → move → signing
//! certificate revoked → the PF still gets the new address — with `curl` as the client.

mod common;
use common::*;

fn curl(
    env: &Env,
    pf: &str,
    path: &str,
    body: &serde_json::Value,
    cert: &str,
    key: &str,
    ca: &str,
) -> (u16, serde_json::Value) {
    let body_file = env.write("body.json", body.to_string().as_bytes());
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--cert",
            cert,
            "--key",
            key,
            "--cacert",
            ca,
            "-H",
            "content-type: application/json",
            "--data-binary",
        ])
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

#[test]
fn a_bank_learns_of_a_move_with_the_holders_consent() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (key, csr) = env.csr("holder", 2048);
    let server = Server::start_with(&env, &["--pf-https", "127.0.0.1:0"]);
    let pf = server.pf.clone().expect("the PF API is listening");
    let sign = env.issue(&id, "signing", &csr);
    let cert = env.write("sign.pem", sign["pem"].as_str().unwrap().as_bytes());

    // Registration through the admin socket.
    let (pf_cert, pf_key) = (env.path("pf.pem"), env.path("pf.key"));
    env.ok(&[
        "operator",
        "add",
        "--name",
        "Example PF",
        "--scopes",
        "validity,four-attributes",
        "--cert-out",
        &p(&pf_cert),
        "--key-out",
        &p(&pf_key),
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
    let ca = env.write(
        "operator-root.pem",
        env.ok(&["root", "--hierarchy", "operator"]).as_bytes(),
    );
    let (c, k, r) = (p(&pf_cert), p(&pf_key), p(&ca));
    let post = |path: &str, body: &serde_json::Value| curl(&env, &pf, path, body, &c, &k, &r);

    // Without a consent the bank gets nothing.
    let ask = serde_json::json!({"sp": sp, "certificate": sign["pem"]});
    let (code, v) = post("/v1/four-attributes", &ask);
    assert_eq!(code, 403, "{v}");

    // The holder consents, signing the statement with the signing key.
    let statement = serde_json::json!({"sp": sp, "scope": "four-attributes", "expires": "2030-01-01T00:00:00Z", "nonce": "n-001"});
    let st = env.write("statement.json", statement.to_string().as_bytes());
    let cms = env.path("consent.p7s");
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
        &p(&cert),
        "-inkey",
        &p(&key),
        "-in",
        &p(&st),
        "-out",
        &p(&cms),
    ]);
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(&cms).unwrap(),
    );
    let (code, v) = post("/v1/consents", &serde_json::json!({"sp": sp, "cms": b64}));
    assert!(code == 200 || code == 201, "{code} {v}");

    // A moment before the move (whole-second times: the move falls in a later second).
    let before = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // She moves: her signing certificate is revoked by rule...
    env.ok(&[
        "resident",
        "move",
        "--id",
        &id,
        "--address",
        "神奈川県横浜市中区日本大通１",
        "--prefecture",
        "Kanagawa",
        "--municipality",
        "Yokohama-shi",
    ]);
    let (code, v) = post(
        "/v1/validity",
        &serde_json::json!({"sp": sp, "certificates": [sign["pem"]]}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["results"][0]["status"], "revoked", "{v}");
    assert_eq!(v["results"][0]["attributes_changed"], true, "{v}");
    // As of a moment before the move (issue #18) it was good; a future `at` is refused.
    let (code, v) = post(
        "/v1/validity",
        &serde_json::json!({"sp": sp, "certificates": [sign["pem"]], "at": before}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["results"][0]["status"], "good", "{v}");
    assert_eq!(v["results"][0]["valid"], true, "{v}");
    assert_eq!(v["results"][0]["status_now"], "revoked", "{v}");
    let (code, v) = post(
        "/v1/validity",
        &serde_json::json!({"sp": sp, "certificates": [sign["pem"]], "at": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v.to_string().contains("in the future"), "{v}");
    // ...and the bank, holding her consent, learns the new address.
    let (code, v) = post("/v1/four-attributes", &ask);
    assert_eq!(code, 200, "{v}");
    assert!(v["address"].as_str().unwrap().contains("横浜市"), "{v}");
    assert_eq!(v["name"], "山田　花子");

    // The holder can see who read her data.
    let log = env.ok(&["resident", "access-log", "--id", &id]);
    assert!(
        log.contains("Example PF") || log.contains("four-attributes"),
        "{log}"
    );

    // The platform operator's daily work through the admin socket of the running server:
    // the month's usage, then the SP suspended (its calls refused), resumed, removed.
    let log = env.json(&["resident", "access-log", "--id", &id]);
    let month = log["accesses"][0]["at"].as_str().unwrap()[..7].to_owned();
    let usage = env.ok(&["report", "usage", "--month", &month, "--csv"]);
    assert!(
        // Two validity checks answered: now and as of a past time (one in the future was refused).
        usage.contains(&format!(",{sp},validity,signing,2,20,40,0")),
        "{usage}"
    );
    env.fails(&["report", "usage", "--month", "2026-13"], "YYYY-MM");
    let v = env.json(&["sp", "suspend", "--id", &sp, "--actor", "ops"]);
    assert_eq!(v["state"], "suspended", "{v}");
    env.fails(
        &["sp", "suspend", "--id", &sp, "--actor", "ops"],
        "already suspended",
    );
    let check = serde_json::json!({"sp": sp, "certificates": [sign["pem"]]});
    let (code, v) = post("/v1/validity", &check);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("sp_suspended")),
        "{v}"
    );
    env.ok(&["sp", "resume", "--id", &sp, "--actor", "ops"]);
    assert_eq!(post("/v1/validity", &check).0, 200);
    env.ok(&["sp", "remove", "--id", &sp, "--actor", "ops"]);
    env.fails(
        &["sp", "remove", "--id", &sp, "--actor", "ops"],
        "is removed",
    );
    env.fails(
        &["sp", "suspend", "--id", "SP00", "--actor", "ops"],
        "unknown service provider",
    );
    let (code, v) = post("/v1/validity", &check);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("sp_removed")),
        "{v}"
    );

    // No client certificate: the handshake fails.
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert", &r, &format!("{pf}/v1/validity")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    server.stop();
    env.ok(&["audit", "verify"]);
}

/// A moment as RFC 3339 (whole seconds), then a pause, so that what follows falls in a later
/// second.
fn moment_then_pause() -> String {
    let t = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    t
}

/// Issue #18: the validity check as of a past moment is answered from the certificate's
/// status history, not from its current status alone. A card reported lost (hold) and then
/// found (revoked): as of a moment inside the hold the authentication certificate was held
/// (invalid) although its revocation came later; before the loss it was good. The clerk sees
/// the same history in `jpki cert show`.
#[test]
fn a_hold_then_a_revocation_are_judged_each_as_of_its_time() {
    let env = Env::init();
    let id = env.add_resident("履歴　保留", "1979-09-30");
    let (_key, csr) = env.csr("holder", 2048);
    let server = Server::start_with(&env, &["--pf-https", "127.0.0.1:0"]);
    let pf = server.pf.clone().expect("the PF API is listening");
    let auth = env.issue(&id, "auth", &csr);
    let (pf_cert, pf_key) = (env.path("pf.pem"), env.path("pf.key"));
    env.ok(&[
        "operator",
        "add",
        "--name",
        "History PF",
        "--scopes",
        "validity",
        "--cert-out",
        &p(&pf_cert),
        "--key-out",
        &p(&pf_key),
    ]);
    let sp = env.json(&[
        "sp",
        "add",
        "--pf",
        "History PF",
        "--name",
        "Clinic",
        "--scopes",
        "validity",
    ]);
    let sp = sp["id"].as_str().unwrap().to_owned();
    let ca = env.write(
        "operator-root.pem",
        env.ok(&["root", "--hierarchy", "operator"]).as_bytes(),
    );
    let (c, k, r) = (p(&pf_cert), p(&pf_key), p(&ca));
    let check = |at: &str| {
        let (code, v) = curl(
            &env,
            &pf,
            "/v1/validity",
            &serde_json::json!({"sp": sp, "certificates": [auth["pem"]], "at": at}),
            &c,
            &k,
            &r,
        );
        assert_eq!(code, 200, "{v}");
        v["results"][0].clone()
    };

    let before_loss = moment_then_pause();
    env.ok(&["resident", "card-lost", "--id", &id]);
    let during_hold = moment_then_pause();
    env.ok(&["resident", "card-found", "--id", &id]);
    let after = moment_then_pause();

    let v = check(&before_loss);
    assert_eq!(
        (v["status"].as_str(), v["valid"].as_bool()),
        (Some("good"), Some(true)),
        "{v}"
    );
    let v = check(&during_hold);
    assert_eq!(
        (v["status"].as_str(), v["valid"].as_bool()),
        (Some("held"), Some(false)),
        "{v}"
    );
    assert_eq!(v["reason"], "certificateHold", "{v}");
    assert_eq!(v["status_now"], "revoked", "{v}");
    let v = check(&after);
    assert_eq!(
        (v["status"].as_str(), v["valid"].as_bool()),
        (Some("revoked"), Some(false)),
        "{v}"
    );

    let serial = auth["serial"].as_str().unwrap();
    let shown = env.json(&["cert", "show", "--serial", serial, "--hierarchy", "auth"]);
    let states: Vec<&str> = shown["history"]
        .as_array()
        .expect("a history")
        .iter()
        .map(|c| c["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["held", "revoked"], "{shown}");
    let text = env.ok(&["cert", "show", "--serial", serial, "--hierarchy", "auth"]);
    assert!(
        text.contains("history:") && text.contains("held (certificateHold)"),
        "{text}"
    );
    drop(server);
}
