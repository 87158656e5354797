//! Root generations (`jpki root rollover`, docs/roots.md): a wrong passphrase changes
//! nothing; the new generation keeps the DN with a new key and serial; new leaves name it in
//! their authorityKeyIdentifier; `jpki root` lists the generations; `openssl verify` with
//! every generation accepts leaves of both; and with the clock moved across a rollover
//! (`JPKI_TEST_NOW`, `JPKI_TEST_START`) a running server answers OCSP for each generation's
//! leaves with that generation (picked by the request's issuerKeyHash) and `jpki verify`
//! picks the issuing generation by key.

mod common;
use common::*;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// The authorityKeyIdentifier's keyIdentifier and authorityCertSerialNumber (hex; empty when
/// absent).
fn aki(pem: &str) -> (String, String) {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => Some((
                hex::encode_upper(a.key_identifier.as_ref().unwrap().0),
                a.authority_cert_serial
                    .map(hex::encode_upper)
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .unwrap()
}

fn subject(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
    c.subject().as_raw().to_vec()
}

fn generations(env: &Env, h: &str) -> Vec<serde_json::Value> {
    env.json(&["root"])["generations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["hierarchy"] == h)
        .cloned()
        .collect()
}

fn files(env: &Env) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for d in ["keys", "certs"] {
        let mut names: Vec<_> = std::fs::read_dir(env.data().join(d))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for n in names {
            out.push((n.display().to_string(), std::fs::read(&n).unwrap()));
        }
    }
    out
}

#[test]
fn a_rollover_makes_a_new_generation_and_a_wrong_passphrase_changes_nothing() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_k1, csr1) = env.csr("auth1", 2048);
    let old = env.issue(&id, "auth", &csr1);
    assert_eq!(generations(&env, "auth").len(), 1);

    // A wrong passphrase: refused, one line, nothing written (store, audit, key and cert files).
    let two = env.two_officers();
    // Dual control: without approvals, or with one officer twice, refused (and audited).
    env.fails(
        &["root", "rollover", "--hierarchy", "auth"],
        "two distinct ca-officers",
    );
    let once = [two[..4].to_vec(), two[..4].to_vec()].concat();
    env.fails(
        &Env::with_args(&["root", "rollover", "--hierarchy", "auth"], &once),
        "twice",
    );
    assert_eq!(generations(&env, "auth").len(), 1);
    let before = (env.snapshot(&[&id]), files(&env));
    let out = env
        .cmd(&Env::with_args(
            &["root", "rollover", "--hierarchy", "auth"],
            &two,
        ))
        .env("JPKI_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong key passphrase"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!((env.snapshot(&[&id]), files(&env)), before);
    // Bad input: no such hierarchy.
    env.fails(
        &["root", "rollover", "--hierarchy", "operator"],
        "unknown kind `operator`",
    );

    let r = env.json(&Env::with_args(
        &["root", "rollover", "--hierarchy", "auth"],
        &two,
    ));
    assert_eq!(r["rolled_over"]["generation"], 2, "{r}");
    assert!(env.data().join("keys/auth-root-g2.key").exists());
    assert!(env.data().join("certs/auth-root-g2.pem").exists());
    let gens = generations(&env, "auth");
    assert_eq!(gens.len(), 2);
    assert_eq!(gens[0]["issuing"], false);
    assert_eq!(gens[1]["issuing"], true);
    assert_ne!(gens[0]["serial"], gens[1]["serial"]);
    assert_ne!(gens[0]["key_id"], gens[1]["key_id"]);
    let (g1, g2) = (
        gens[0]["pem"].as_str().unwrap().to_owned(),
        gens[1]["pem"].as_str().unwrap().to_owned(),
    );
    assert_eq!(subject(&g1), subject(&g2), "one DN for every generation");
    // The signing hierarchy is untouched; `jpki root --hierarchy` prints the newest.
    assert_eq!(generations(&env, "signing").len(), 1);
    assert_eq!(env.ok(&["root", "--hierarchy", "auth"]), g2);
    assert_eq!(
        env.ok(&["root", "--hierarchy", "auth", "--all"]),
        format!("{g1}{g2}")
    );
    let listing = env.ok(&["root"]);
    assert!(
        listing.contains("issuing") && listing.contains("signs revocation data"),
        "{listing}"
    );
    let audit = env.json(&["audit", "log"]);
    assert!(audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "root-rollover"));
    assert_eq!(env.json(&["audit", "verify"])["intact"], true);
    // The delegated OCSP signer moved to the new generation.
    let signer = std::fs::read_to_string(env.data().join("certs/auth-ocsp.pem")).unwrap();
    assert_eq!(aki(&signer).0, gens[1]["key_id"].as_str().unwrap());

    // New leaves under generation 2, named by key id and serial; old ones keep generation 1.
    let other = env.add_resident("佐藤　一郎", "1979-11-02");
    let (_k2, csr2) = env.csr("auth2", 2048);
    let new = env.issue(&other, "auth", &csr2);
    let (old_pem, new_pem) = (old["pem"].as_str().unwrap(), new["pem"].as_str().unwrap());
    let hex_serial = |g: &serde_json::Value| g["serial"].as_str().unwrap().to_owned();
    assert_eq!(
        aki(old_pem),
        (
            gens[0]["key_id"].as_str().unwrap().into(),
            hex_serial(&gens[0])
        )
    );
    assert_eq!(
        aki(new_pem),
        (
            gens[1]["key_id"].as_str().unwrap().into(),
            hex_serial(&gens[1])
        )
    );
    let bundle = env.write("auth-roots.pem", format!("{g1}{g2}").as_bytes());
    let only_g1 = env.write("g1.pem", g1.as_bytes());
    let only_g2 = env.write("g2.pem", g2.as_bytes());
    let old_f = env.write("old.pem", old_pem.as_bytes());
    let new_f = env.write("new.pem", new_pem.as_bytes());
    for leaf in [&old_f, &new_f] {
        let out = openssl(&["verify", "-x509_strict", "-CAfile", &p(&bundle), &p(leaf)]);
        assert!(out.contains(": OK"), "{out}");
    }
    assert!(!openssl_result(&["verify", "-CAfile", &p(&only_g1), &p(&new_f)]).0);
    assert!(!openssl_result(&["verify", "-CAfile", &p(&only_g2), &p(&old_f)]).0);
    // The data directory's bundle holds both.
    assert_eq!(
        std::fs::read_to_string(env.data().join("certs/auth-roots.pem")).unwrap(),
        format!("{g1}{g2}")
    );
}

/// Starts `jpki serve` (with the platform API) whose clock starts at `t`.
fn serve_at(env: &mut Env, t: OffsetDateTime) -> Server {
    env.now = None;
    env.start = Some(at(t));
    let s = Server::start_with(env, &["--pf-https", "127.0.0.1:0"]);
    env.now = Some(at(t));
    env.start = None;
    s
}

/// `openssl ocsp` at `t`; stdout and stderr (where it says `Response verify OK`).
fn ocsp(server: &Server, issuer: &str, cert: &str, ca: &str, t: OffsetDateTime) -> String {
    openssl_result(&[
        "ocsp",
        "-issuer",
        issuer,
        "-cert",
        cert,
        "-url",
        &format!("{}/ocsp", server.base),
        "-CAfile",
        ca,
        "-attime",
        &t.unix_timestamp().to_string(),
        "-validity_period",
        "400000000",
        "-timeout",
        "10",
        "-resp_text",
    ])
    .1
}

/// One POST to the platform API over mutual TLS with `openssl s_client`, every certificate
/// checked at `t` (the server's clock is years from the real one); the JSON answer.
#[allow(clippy::too_many_arguments)]
fn pf_post(
    server: &Server,
    path: &str,
    body: &serde_json::Value,
    cert: &str,
    key: &str,
    ca: &str,
    t: OffsetDateTime,
) -> serde_json::Value {
    use std::io::Write;
    let host = server.pf.as_ref().unwrap().trim_start_matches("https://");
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            host,
            "-cert",
            cert,
            "-key",
            key,
            "-CAfile",
            ca,
            "-verify_return_error",
            "-attime",
            &t.unix_timestamp().to_string(),
            "-quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: pf\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(req.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    // A chunked body: the JSON object is between the first `{` and the last `}`.
    let (start, end) = (json.find('{'), json.rfind('}'));
    match (start, end) {
        (Some(a), Some(b)) => serde_json::from_str(&json[a..=b])
            .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr))),
        _ => panic!("no JSON: {text}{}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn across_a_rollover_ocsp_and_verify_serve_both_generations() {
    let mut env = Env::empty();
    let t0 = time::macros::datetime!(2027-01-05 01:00 UTC);
    env.now = Some(at(t0));
    env.ok(&["init"]);
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (key1, csr1) = env.csr("sign1", 2048);
    let _ = &id;
    let old = env.issue(&id, "signing", &csr1);
    let g1 = env.ok(&["root", "--hierarchy", "signing"]);

    // A year later the signing root rolls over; a new leaf is issued under generation 2.
    let t1 = t0 + time::Duration::days(365);
    env.now = Some(at(t1));
    let two = env.two_officers();
    env.ok(&Env::with_args(
        &["root", "rollover", "--hierarchy", "signing"],
        &two,
    ));
    let other = env.add_resident("佐藤　一郎", "1979-11-02");
    let (key2, csr2) = env.csr("sign2", 2048);
    let new = env.issue(&other, "signing", &csr2);
    let g2 = env.ok(&["root", "--hierarchy", "signing"]);
    assert_ne!(g1, g2);
    let g1f = env.write("g1.pem", g1.as_bytes());
    let g2f = env.write("g2.pem", g2.as_bytes());
    let bundle = env.write("roots.pem", format!("{g1}{g2}").as_bytes());
    let old_f = env.write("old.pem", old["pem"].as_str().unwrap().as_bytes());
    let new_f = env.write("new.pem", new["pem"].as_str().unwrap().as_bytes());

    // Two months on, a server: each leaf's OCSP answer comes from its own generation.
    let t2 = t1 + time::Duration::days(60);
    let server = serve_at(&mut env, t2);
    let o = ocsp(&server, &p(&g2f), &p(&new_f), &p(&bundle), t2);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    let o = ocsp(&server, &p(&g1f), &p(&old_f), &p(&bundle), t2);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    // The old generation's leaf is revoked: its own generation says so at once.
    let serial = old["serial"].as_str().unwrap();
    env.ok(&[
        "revoke",
        "--serial",
        serial,
        "--hierarchy",
        "signing",
        "--reason",
        "keyCompromise",
    ]);
    let o = ocsp(&server, &p(&g1f), &p(&old_f), &p(&bundle), t2);
    assert!(
        o.contains("Response verify OK") && o.contains(": revoked"),
        "{o}"
    );
    let o = ocsp(&server, &p(&g2f), &p(&new_f), &p(&bundle), t2);
    assert!(o.contains(": good"), "{o}");
    // Asked with the wrong generation as issuer, the answer is not `good`.
    let (_, wrong) = openssl_result(&[
        "ocsp",
        "-issuer",
        &p(&g1f),
        "-cert",
        &p(&new_f),
        "-url",
        &format!("{}/ocsp", server.base),
        "-CAfile",
        &p(&bundle),
        "-attime",
        &t2.unix_timestamp().to_string(),
        "-validity_period",
        "400000000",
        "-timeout",
        "10",
    ]);
    assert!(!wrong.contains(": good"), "{wrong}");

    // `jpki verify` with every generation as trust anchors picks the issuer by key, judged
    // at the revocation (so the old leaf's answer says revoked as of then).
    let shown = env.json(&["cert", "show", "--serial", serial, "--hierarchy", "signing"]);
    let revoked_at = shown["revoked_at"].as_str().unwrap().to_owned();
    let doc = env.write("doc.txt", b"a document");
    for (name, key, cert, verdict) in [
        ("new", &key2, &new_f, "valid"),
        ("old", &key1, &old_f, "invalid"),
    ] {
        let sig = env.path(&format!("{name}.p7s"));
        openssl(&[
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-in",
            &p(&doc),
            "-signer",
            &p(cert),
            "-inkey",
            &p(key),
            "-outform",
            "DER",
            "-out",
            &p(&sig),
        ]);
        let out = env.run(&[
            "verify",
            "--trust",
            &p(&bundle),
            "--sig",
            &p(&sig),
            "--content",
            &p(&doc),
            "--ocsp",
            &format!("{}/ocsp", server.base),
            "--at",
            &revoked_at,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("no JSON: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(v["verdict"], verdict, "{name}: {v}");
        let chain = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "chain")
            .unwrap()
            .clone();
        assert_eq!(chain["outcome"], "pass", "{name}: {v}");
        if name == "old" {
            let status = v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "status")
                .unwrap()
                .clone();
            assert!(
                status["reason"].as_str().unwrap().contains("keyCompromise"),
                "the old generation's answer, signed by its own root: {status}"
            );
        }
    }
    // CRLs: each generation signs the CRL of the leaves it issued (tests/crl_generations.rs
    // has the revoked entries): each leaf's partition CRL of its own generation verifies
    // against the generation picked by key. Judged as of the server's start (its first CRLs
    // are issued then — before the revocation above — later ones after it).
    for (name, dir, c, verdict) in [
        ("new", "signing-g2", &new, "valid"),
        ("old", "signing", &old, "valid"),
    ] {
        let crl_url = format!(
            "{}/crl/{dir}/{}.crl",
            server.base,
            common::partition_path(&c["partition"])
        );
        let sig = env.path(&format!("{name}.p7s"));
        let out = env.run(&[
            "verify",
            "--trust",
            &p(&bundle),
            "--sig",
            &p(&sig),
            "--content",
            &p(&doc),
            "--crl",
            &crl_url,
            "--at",
            &at(t2),
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verdict"], verdict, "{name} CRL: {v}");
        let status = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "status")
            .unwrap()
            .clone();
        assert!(
            status["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("/crl/{dir}/")),
            "{name}: {status}"
        );
    }
    // The platform API: a PF checks both generations' leaves (found by DER whatever the
    // generation; the old one revoked, the new one good).
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
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let op_root = env.write(
        "operator-root.pem",
        env.ok(&["root", "--hierarchy", "operator"]).as_bytes(),
    );
    let v = pf_post(
        &server,
        "/v1/validity",
        &serde_json::json!({"sp": sp, "certificates": [old["pem"], new["pem"]]}),
        &p(&pf_cert),
        &p(&pf_key),
        &p(&op_root),
        t2,
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "revoked", "{v}");
    assert_eq!(results[1]["status"], "good", "{v}");
    assert_eq!(results[1]["valid"], true, "{v}");
    // Four attributes with the holder's consent, signed with the generation-2 signing key: the
    // consent's signature is checked against the generation picked by key.
    let ask = serde_json::json!({"sp": sp, "certificate": new["pem"]});
    let v = pf_post(
        &server,
        "/v1/four-attributes",
        &ask,
        &p(&pf_cert),
        &p(&pf_key),
        &p(&op_root),
        t2,
    );
    assert!(
        v.to_string().contains("consent"),
        "without a consent, nothing: {v}"
    );
    let statement = serde_json::json!({"sp": sp, "scope": "four-attributes", "expires": "2029-01-01T00:00:00Z", "nonce": "g2-001"});
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
        &p(&new_f),
        "-inkey",
        &p(&key2),
        "-in",
        &p(&st),
        "-out",
        &p(&cms),
    ]);
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(&cms).unwrap(),
    );
    let v = pf_post(
        &server,
        "/v1/consents",
        &serde_json::json!({"sp": sp, "cms": b64}),
        &p(&pf_cert),
        &p(&pf_key),
        &p(&op_root),
        t2,
    );
    assert!(v.get("error").is_none(), "the gen-2 consent is taken: {v}");
    let v = pf_post(
        &server,
        "/v1/four-attributes",
        &ask,
        &p(&pf_cert),
        &p(&pf_key),
        &p(&op_root),
        t2,
    );
    assert_eq!(v["name"], "佐藤　一郎", "{v}");
    // The gen-1 holder's certificate is revoked: a consent signed with it is refused.
    let cms1 = env.path("consent1.p7s");
    let statement1 = serde_json::json!({"sp": sp, "scope": "four-attributes", "expires": "2029-01-01T00:00:00Z", "nonce": "g1-001"});
    let st1 = env.write("statement1.json", statement1.to_string().as_bytes());
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
        &p(&old_f),
        "-inkey",
        &p(&key1),
        "-in",
        &p(&st1),
        "-out",
        &p(&cms1),
    ]);
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(&cms1).unwrap(),
    );
    let v = pf_post(
        &server,
        "/v1/consents",
        &serde_json::json!({"sp": sp, "cms": b64}),
        &p(&pf_cert),
        &p(&pf_key),
        &p(&op_root),
        t2,
    );
    assert!(
        v.get("error").is_some(),
        "a revoked gen-1 certificate's consent: {v}"
    );
    server.stop();

    // Generation 1 keeps a delegated OCSP signer of its own (`certs/signing-ocsp-g1.pem`, made
    // at the rollover, issued by generation 1's root) for the old leaf, which lives for years
    // more. Within its renewal margin (30 days) it is renewed under generation 1's root.
    let g1_signer = env.data().join("certs/signing-ocsp-g1.pem");
    let first = std::fs::read_to_string(&g1_signer).unwrap();
    let g1_key = generations(&env, "signing")[0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(aki(&first).0, g1_key);
    let t3 = t1 + time::Duration::days(340);
    env.now = Some(at(t3));
    let done = env.json(&["ocsp-signer", "renew", "--if-due"]);
    let g1_renewed = done["renewed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["hierarchy"] == "signing" && r["generation"] == 1)
        .unwrap_or_else(|| panic!("generation 1's signer renewed: {done}"))
        .clone();
    let second = std::fs::read_to_string(&g1_signer).unwrap();
    assert_ne!(first, second);
    assert_eq!(aki(&second).0, g1_key, "issued by generation 1's root");
    assert!(g1_renewed["serial"]
        .as_str()
        .unwrap()
        .eq_ignore_ascii_case(&aki_serial_of(&second)));
    let second_f = env.write("g1-signer-2.pem", second.as_bytes());
    let t3s = t3.unix_timestamp().to_string();
    let (ok, out) = openssl_result(&[
        "verify",
        "-attime",
        &t3s,
        "-purpose",
        "ocsphelper",
        "-CAfile",
        &p(&g1f),
        &p(&second_f),
    ]);
    assert!(ok && out.contains(": OK"), "{out}");
    assert!(
        !openssl_result(&[
            "verify",
            "-attime",
            &t3s,
            "-CAfile",
            &p(&g2f),
            &p(&second_f)
        ])
        .0
    );
    // Not again while it is in force; and once the old leaf has expired nothing of generation
    // 1 needs answers: its signer is left to expire.
    let done = env.json(&["ocsp-signer", "renew", "--if-due"]);
    assert!(
        !done["renewed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["generation"] == 1),
        "{done}"
    );
    let old_end = {
        let pem = old["pem"].as_str().unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
        OffsetDateTime::from_unix_timestamp(c.validity().not_after.timestamp()).unwrap()
    };
    env.now = Some(at(old_end + time::Duration::days(1)));
    let done = env.json(&["ocsp-signer", "renew", "--if-due"]);
    assert!(
        !done["renewed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["hierarchy"] == "signing" && r["generation"] == 1),
        "{done}"
    );
    assert_eq!(std::fs::read_to_string(&g1_signer).unwrap(), second);
}

/// The serial (hex) of a PEM certificate.
fn aki_serial_of(pem: &str) -> String {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
    hex::encode_upper(c.raw_serial())
}

/// The schedule: a server started after the rollover is due (4 years after the newest
/// generation) only warns — the rollover is a key ceremony under dual control — and the expiry
/// list names the date; a policy asking for `ca.root_rollover = "auto"` is refused, naming the
/// field and why. A policy whose rollover interval is not below the roots' validity is refused.
#[test]
fn a_due_rollover_is_warned_about_and_never_made_by_the_server() {
    let default = policies::policy::DEFAULT_POLICY;
    assert!(default.contains("root_rollover = \"warn\""));
    let t0 = time::macros::datetime!(2027-01-05 01:00 UTC);
    let t4 = t0 + time::Duration::days(4 * 365 + 2);
    let mut env = Env::empty();
    env.now = Some(at(t0));
    env.ok(&["init"]);
    let due = env.json(&["ocsp-signer", "status"])["expiries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"] == "root-rollover" && e["hierarchy"] == "auth")
        .unwrap()["not_after"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(due.starts_with("2031-01-0"), "{due}");
    let server = serve_at(&mut env, t4);
    for h in ["signing", "auth"] {
        assert_eq!(generations(&env, h).len(), 1, "{h}");
    }
    server.stop();
    let auto = Env::empty();
    let policy = auto.write(
        "policy.toml",
        default
            .replace("root_rollover = \"warn\"", "root_rollover = \"auto\"")
            .as_bytes(),
    );
    auto.fails(&["init", "--policy", &p(&policy)], "dual control");
    assert!(!auto.data().exists());
    // Bad policy: generations must overlap.
    let env = Env::empty();
    let bad = env.write(
        "bad.toml",
        default
            .replace("root_rollover_years = 4", "root_rollover_years = 10")
            .as_bytes(),
    );
    env.fails(&["init", "--policy", &p(&bad)], "ca.root_rollover_years");
    assert!(!env.data().exists());
}

/// A rollover through the admin socket reaches the running server at once, without a restart.
#[test]
fn a_rollover_through_the_admin_socket_reaches_the_running_server() {
    let mut env = Env::empty();
    let t0 = time::macros::datetime!(2027-01-05 01:00 UTC);
    env.now = Some(at(t0));
    env.ok(&["init"]);
    let id = env.add_resident("山田　花子", "1985-04-12");
    let other = env.add_resident("佐藤　一郎", "1979-11-02");
    let (_, acsr1) = env.csr("auth1", 2048);
    let a_old = env.issue(&id, "auth", &acsr1);
    let two = env.two_officers();
    let t2 = t0 + time::Duration::days(30);
    let server = serve_at(&mut env, t2);
    // Checks happen as of a few minutes after the server's start (what it signs during the
    // test is dated then).
    let later = t2 + time::Duration::minutes(10);
    // A rollover through the admin socket reaches the running server without a restart:
    // without approvals refused as ever, with them the auth root rolls over; the server
    // answers OCSP for the new generation's leaves (its delegated signer) and for the old
    // one's (now its root key), and publishes and serves the new generation's CRLs.
    env.fails(&["root", "rollover", "--hierarchy", "auth"], "approv");
    assert_eq!(generations(&env, "auth").len(), 1);
    let ag1 = env.ok(&["root", "--hierarchy", "auth"]);
    env.ok(&Env::with_args(
        &["root", "rollover", "--hierarchy", "auth"],
        &two,
    ));
    assert_eq!(generations(&env, "auth").len(), 2);
    let ag2 = env.ok(&["root", "--hierarchy", "auth"]);
    assert_ne!(ag1, ag2);
    let (_, acsr2) = env.csr("auth2", 2048);
    let a_new = env.issue(&other, "auth", &acsr2);
    assert_eq!(
        aki(a_new["pem"].as_str().unwrap()).0,
        generations(&env, "auth")[1]["key_id"].as_str().unwrap(),
        "issued under the new generation at once"
    );
    let ag1f = env.write("ag1.pem", ag1.as_bytes());
    let ag2f = env.write("ag2.pem", ag2.as_bytes());
    let abundle = env.write("aroots.pem", format!("{ag1}{ag2}").as_bytes());
    let a_old_f = env.write("a-old.pem", a_old["pem"].as_str().unwrap().as_bytes());
    let a_new_f = env.write("a-new.pem", a_new["pem"].as_str().unwrap().as_bytes());
    for (issuer, leaf) in [(&ag2f, &a_new_f), (&ag1f, &a_old_f)] {
        let o = ocsp(&server, &p(issuer), &p(leaf), &p(&abundle), later);
        assert!(
            o.contains("Response verify OK") && o.contains(": good"),
            "{o}"
        );
    }
    // The old generation's leaf revoked: its new answer is signed by generation 1's own
    // delegated signer (`certs/auth-ocsp-g1.pem`, made at the rollover), which chains to
    // generation 1's root alone; the signer in force (`auth-ocsp.pem`) is generation 2's.
    env.ok(&[
        "revoke",
        "--hierarchy",
        "auth",
        "--serial",
        a_old["serial"].as_str().unwrap(),
        "--reason",
        "keyCompromise",
    ]);
    let body = |name: &str| -> String {
        std::fs::read_to_string(env.data().join(format!("certs/{name}.pem")))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    };
    let o = ocsp(&server, &p(&ag1f), &p(&a_old_f), &p(&ag1f), later);
    assert!(
        o.contains("Response verify OK") && o.contains(": revoked"),
        "{o}"
    );
    let flat: String = o.lines().map(str::trim).collect();
    assert!(flat.contains(&body("auth-ocsp-g1")), "{o}");
    assert!(!flat.contains(&body("auth-ocsp")), "{o}");
    // The new generation's leaf revoked: its CRL (a new URL) lists it, signed by the new root.
    env.ok(&[
        "revoke",
        "--hierarchy",
        "auth",
        "--serial",
        a_new["serial"].as_str().unwrap(),
        "--reason",
        "keyCompromise",
    ]);
    let url = format!(
        "{}/crl/auth-g2/{}.crl",
        server.base,
        common::partition_path(&a_new["partition"])
    );
    let der = env.path("a-g2.crl");
    let started = std::time::Instant::now();
    loop {
        let fetched = std::process::Command::new("curl")
            .args(["-sf", "-o"])
            .arg(&der)
            .arg(&url)
            .status()
            .unwrap()
            .success();
        // The revocation wakes the publisher; its first CRL of the partition follows.
        if fetched {
            let (_, text) =
                openssl_result(&["crl", "-inform", "DER", "-in", &p(&der), "-noout", "-text"]);
            if text.contains("Serial Number") {
                break;
            }
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{url} was not published"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (ok, text) = openssl_result(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &p(&der),
        "-CAfile",
        &p(&ag2f),
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    let o = ocsp(&server, &p(&ag2f), &p(&a_new_f), &p(&abundle), later);
    assert!(o.contains(": revoked"), "{o}");
    // /metrics has one series per CRL: the new generation's are labelled with it.
    let metrics = std::process::Command::new("curl")
        .args(["-sf", &format!("{}/metrics", server.base)])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("jpki_crl_number{hierarchy=\"auth\",partition=\"ca\",generation=\"2\"}"),
        "{metrics}"
    );
    server.stop();
}

/// Two CA nodes on one PostgreSQL store (docs/deployment.md): a rollover made on the first is
/// taken up by the second, which was running, from the store — its certificate watch reads
/// the audit trail since its last look (`Authority::adopt_rolled_roots`, what `jpki serve`
/// runs every few seconds): the new generation joins its CRL publisher (whose generation-2
/// CRL verifies with the new root only) and its OCSP responder (a generation-2 leaf's answer
/// verifies with the new root), and it issues under the new generation. The new root's key
/// reaches the second node as a shared token would (copied here). Skipped, loudly, where
/// PostgreSQL is missing.
#[test]
fn a_rollover_on_another_ca_node_reaches_a_running_one_through_the_store() {
    use ca::clock::Clock;
    let Some(cluster) =
        storage_postgres::testing::Cluster::start(storage_postgres::testing::Fsync::Off)
            .expect("start PostgreSQL")
    else {
        return;
    };
    let url = cluster.database().expect("a database");
    let mut env = Env::empty();
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    env.now = Some(at(t0));
    env.ok(&["init", "--store", &url]);
    let two = env.two_officers();
    let second = env.path("second");
    copy_dir(&env.data(), &second);
    let clock = std::sync::Arc::new(ca::clock::FixedClock::new(t0));
    let a = jpki::store::open(&second, Some(PASS.as_bytes().to_vec()), clock.clone())
        .expect("open the second CA node");
    let mut cfg = jpki::serve::Config::default();
    cfg.listen.http = Some("127.0.0.1:0".into());
    let settings = cfg.validate(&second, a.policy()).expect("settings");
    // (Without a node name: it takes no CRL leases, so the server below publishes.)
    let node =
        jpki::serve::assemble_node(std::sync::Arc::new(a), &settings, None).expect("assemble");
    let mut cursor = node.authority.audit_cursor().unwrap();
    // A third node runs as `jpki serve --role ca` on its own copy of the data directory: its
    // certificate watch looks at the store every few seconds.
    let third = env.path("third");
    copy_dir(&env.data(), &third);
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_jpki"));
    serve
        .args([
            "serve",
            "--public-http",
            "127.0.0.1:0",
            "--role",
            "ca",
            "--node",
            "ca-3",
        ])
        .arg("--data")
        .arg(&third)
        .env("JPKI_PASSPHRASE", PASS)
        .env_remove("JPKI_DATA")
        .env_remove("JPKI_TEST_NOW")
        .env_remove("JPKI_TEST_START");
    let server = Server::spawn(serve);

    // The first node's data directory rolls the signing root over and issues under it.
    env.now = None;
    env.ok(&Env::with_args(
        &["root", "rollover", "--hierarchy", "signing"],
        &two,
    ));
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (_, csr) = env.csr("sign2", 2048);
    let leaf = env.issue(&id, "signing", &csr);
    let g2 = env.ok(&["root", "--hierarchy", "signing"]);
    let g1 = std::fs::read_to_string(env.data().join("certs/signing-root.pem")).unwrap();
    let g2f = env.write("g2.pem", g2.as_bytes());
    let g1f = env.write("g1.pem", g1.as_bytes());
    let leaf_f = env.write("leaf.pem", leaf["pem"].as_str().unwrap().as_bytes());
    let h = policies::Hierarchy::Signing;
    assert_eq!(node.authority.roots(h).len(), 1, "not seen before it looks");
    clock.set(OffsetDateTime::now_utc() + time::Duration::minutes(1));
    // Without the new root's key here the generation is not taken up (issuing under it would
    // fail): an error naming it, and the next look tries again.
    let e = node.authority.adopt_rolled_roots(&mut cursor).unwrap_err();
    assert!(
        e.to_string().contains("its key is not reachable here"),
        "{e}"
    );
    assert_eq!(node.authority.roots(h).len(), 1);
    for dir in [&second, &third] {
        std::fs::copy(
            env.data().join("keys/signing-root-g2.key"),
            dir.join("keys/signing-root-g2.key"),
        )
        .unwrap();
    }
    let adopted = node.authority.adopt_rolled_roots(&mut cursor).unwrap();
    assert_eq!(adopted, vec![(h, 2)]);
    assert!(node
        .authority
        .adopt_rolled_roots(&mut cursor)
        .unwrap()
        .is_empty());
    assert_eq!(
        aki(leaf["pem"].as_str().unwrap()).0,
        hex::encode_upper(&node.authority.root(h).key_id)
    );
    // The CRL publisher: generation 2's CA-level CRL, signed by the new root only.
    assert!(node.publisher.generations().contains(&(h, 2)));
    // (Built, not published: publishing would lease the CRL to this node, and the server
    // below publishes it.)
    let crl = node
        .publisher
        .build(h, 2, policies::profile::Scope::Ca, clock.now())
        .expect("generation 2's CRL");
    let crl_f = env.write("g2-ca.crl", &crl.der);
    for (root, ok) in [(&g2f, true), (&g1f, false)] {
        let (_, text) = openssl_result(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &p(&crl_f),
            "-CAfile",
            &p(root),
            "-noout",
        ]);
        assert_eq!(text.contains("verify OK"), ok, "{text}");
    }
    // The OCSP responder: the generation-2 leaf is answered, verifiable with the new root.
    let req = env.path("req.der");
    openssl(&[
        "ocsp",
        "-issuer",
        &p(&g2f),
        "-cert",
        &p(&leaf_f),
        "-no_nonce",
        "-reqout",
        &p(&req),
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = rt.block_on(node.responder.answer(&std::fs::read(&req).unwrap()));
    let resp = env.write("resp.der", &answer.der);
    let (_, o) = openssl_result(&[
        "ocsp",
        "-respin",
        &p(&resp),
        "-issuer",
        &p(&g2f),
        "-cert",
        &p(&leaf_f),
        "-CAfile",
        &p(&g2f),
        "-attime",
        &clock.now().unix_timestamp().to_string(),
        "-validity_period",
        "400000000",
    ]);
    assert!(
        o.contains("Response verify OK") && o.contains(": good"),
        "{o}"
    );
    // The running server took the generation up by itself and serves its CA-level CRL,
    // signed by the new root (polled, with a generous bound: never timed).
    let url = format!("{}/crl/signing-g2/ca.crl", server.base);
    let fetched = env.path("served-g2-ca.crl");
    let started = std::time::Instant::now();
    while !std::process::Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&fetched)
        .arg(&url)
        .status()
        .unwrap()
        .success()
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{url} was not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let (_, text) = openssl_result(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &p(&fetched),
        "-CAfile",
        &p(&g2f),
        "-noout",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    // The new generation's root record is intact in the store.
    let roots: Vec<serde_json::Value> = generations(&env, "signing");
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[1]["pem"].as_str().unwrap(), g2);
    assert!(server.stop().success());
    drop(node);
    drop(cluster);
}
