//! Relying party end to end: a tax return signed with `openssl cms -sign` (holder key from
//! `openssl req`, certificate from `jpki issue`) and with the holder token, verified by
//! `jpki verify` against `jpki serve`'s OCSP and its CRL files, before and after a move.

mod common;
use common::*;

use std::time::{Duration, Instant};

/// Waits until the CRL at `url` lists `serial`, and saves it as `out`.
fn crl_listing(env: &Env, url: &str, serial: &str, out: &str) -> std::path::PathBuf {
    let der = env.path(out);
    let t0 = Instant::now();
    loop {
        let st = std::process::Command::new("curl")
            .args(["-sf", "-o"])
            .arg(&der)
            .arg(url)
            .status()
            .unwrap();
        // A municipal partition's first CRL appears with the publisher's next pass (the
        // revocation wakes it): until then the GET may answer 404.
        if st.success() {
            let text = openssl(&["crl", "-inform", "DER", "-in", &p(&der), "-noout", "-text"]);
            // The whole entry: a short sequential serial also appears inside dates.
            if text.contains(&format!("Serial Number: {serial}")) {
                return der;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{url} does not list {serial}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_signed_tax_return_verifies_until_the_holder_moves() {
    let env = Env::init();
    let id = env.add_resident("山田　花子", "1985-04-12");
    let (key, csr) = env.csr("holder", 2048);
    let server = Server::start(&env);
    let ocsp = format!("{}/ocsp", server.base);
    let sign = env.issue(&id, "signing", &csr);
    let cert = env.write("sign.pem", sign["pem"].as_str().unwrap().as_bytes());
    let root = env.write(
        "root.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );
    let doc = env.write(
        "return.xml",
        "<申告書><所得>5000000</所得></申告書>".as_bytes(),
    );
    let sig = env.path("return.p7s");
    openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-md",
        "sha256",
        "-in",
        &p(&doc),
        "-signer",
        &p(&cert),
        "-inkey",
        &p(&key),
        "-outform",
        "DER",
        "-out",
        &p(&sig),
    ]);

    let (root_s, sig_s, doc_s) = (p(&root), p(&sig), p(&doc));
    let args = |status: &[&'static str], extra: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            "verify",
            "--trust",
            &root_s,
            "--sig",
            &sig_s,
            "--content",
            &doc_s,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(status.iter().map(|s| s.to_string()));
        v.push(extra.to_owned());
        v
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        env.run(&refs)
    };
    let out = run(args(&["--json", "--ocsp"], &ocsp));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ok: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ok["verdict"], "valid", "{ok}");
    let attrs = &ok["attributes"];
    assert_eq!(attrs["name"], "山田　花子", "{ok}");
    assert!(attrs.to_string().contains("東京都千代田区"), "{ok}");
    assert!(attrs.to_string().contains("1985-04-12"), "{ok}");

    // Tampered content fails on its own check.
    let tampered = env.write(
        "tampered.xml",
        "<申告書><所得>50</所得></申告書>".as_bytes(),
    );
    let out = env.run(&[
        "verify",
        "--trust",
        &p(&root),
        "--sig",
        &p(&sig),
        "--content",
        &p(&tampered),
        "--ocsp",
        &ocsp,
        "--json",
    ]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "invalid");

    // The holder moves: the signing certificate is revoked by rule, at once in OCSP...
    env.ok(&[
        "resident",
        "move",
        "--id",
        &id,
        "--address",
        "神奈川県横浜市中区日本大通１",
    ]);
    let out = run(args(&["--json", "--ocsp"], &ocsp));
    assert!(
        !out.status.success(),
        "a revoked certificate must not verify"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "invalid");
    assert!(
        v.to_string().contains("affiliationChanged") || v.to_string().contains("revoked"),
        "{v}"
    );

    // ...and in the partition CRL once it is rebuilt.
    let url = format!(
        "{}/crl/signing/{}.crl",
        server.base,
        common::partition_path(&sign["partition"])
    );
    let crl = crl_listing(&env, &url, sign["serial"].as_str().unwrap(), "p.crl");
    let out = run(args(&["--json", "--crl"], &p(&crl)));
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "invalid", "{v}");
    // The certificate names its CRL by directoryName only (the real profile): the server's
    // index.json maps that name to the municipal partition's file, and `jpki verify` finds it.
    assert!(url.ends_with("/crl/signing/Tokyo/Chiyoda-ku.crl"), "{url}");
    let index = format!("{}/crl/index.json", server.base);
    let out = run(args(&["--json", "--crl"], &index));
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "invalid", "{v}");
    assert!(
        v.to_string().contains("Tokyo/Chiyoda-ku.crl (via "),
        "found through the index: {v}"
    );
    // Without --crl or --ocsp, a certificate without a URL is refused with the way out.
    let out = env.run(&[
        "verify",
        "--trust",
        &p(&root),
        "--sig",
        &p(&sig),
        "--content",
        &p(&doc),
        "--json",
    ]);
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("index.json"), "{all}");
    server.stop();
}

#[test]
fn the_holder_token_signs_and_logs_in() {
    let env = Env::init();
    let id = env.add_resident("髙橋　一郎", "1990-02-28");
    let token = env.path("card.token");
    let t = |args: &[&str]| {
        let mut v = vec!["token"];
        v.extend_from_slice(args);
        env.ok(&v)
    };
    t(&[
        "new",
        "--out",
        &p(&token),
        "--sign-pin",
        "SIGN1234",
        "--auth-pin",
        "1234",
    ]);
    let scsr = env.path("s.csr");
    let acsr = env.path("a.csr");
    t(&[
        "csr",
        "--token",
        &p(&token),
        "--kind",
        "signing",
        "--pin",
        "SIGN1234",
        "--out",
        &p(&scsr),
    ]);
    t(&[
        "csr",
        "--token",
        &p(&token),
        "--kind",
        "auth",
        "--pin",
        "1234",
        "--out",
        &p(&acsr),
    ]);
    let a = env.issue(&id, "auth", &acsr);
    let s = env.issue(&id, "signing", &scsr);
    let apem = env.write("a.pem", a["pem"].as_str().unwrap().as_bytes());
    let spem = env.write("s.pem", s["pem"].as_str().unwrap().as_bytes());
    t(&["import-cert", "--token", &p(&token), "--cert", &p(&apem)]);
    t(&["import-cert", "--token", &p(&token), "--cert", &p(&spem)]);

    let server = Server::start(&env);
    let ocsp = format!("{}/ocsp", server.base);
    let sroot = env.write(
        "sroot.pem",
        env.ok(&["root", "--hierarchy", "signing"]).as_bytes(),
    );
    let aroot = env.write(
        "aroot.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    let doc = env.write("doc.txt", b"e-Tax return 2026");
    let sig = env.path("doc.p7s");
    t(&[
        "sign",
        "--token",
        &p(&token),
        "--pin",
        "SIGN1234",
        "--in",
        &p(&doc),
        "--out",
        &p(&sig),
    ]);
    let v = env.json(&[
        "verify",
        "--trust",
        &p(&sroot),
        "--sig",
        &p(&sig),
        "--content",
        &p(&doc),
        "--ocsp",
        &ocsp,
    ]);
    assert_eq!(v["verdict"], "valid", "{v}");
    assert_eq!(
        v["attributes"]["name"], "〓橋　一郎",
        "the name as the card carries it: {v}"
    );

    let challenge = env.write("challenge.bin", b"login challenge 0f3a");
    let lsig = env.path("login.sig");
    t(&[
        "login",
        "--token",
        &p(&token),
        "--pin",
        "1234",
        "--challenge",
        &p(&challenge),
        "--out",
        &p(&lsig),
    ]);
    let v = env.json(&[
        "verify-login",
        "--trust",
        &p(&aroot),
        "--cert",
        &p(&apem),
        "--challenge",
        &p(&challenge),
        "--sig",
        &p(&lsig),
        "--ocsp",
        &ocsp,
    ]);
    assert_eq!(v["verdict"], "valid", "{v}");
    assert_eq!(v["account_key"], a["serial"], "{v}");

    // An authentication certificate may not sign a document.
    let out = env.run(&[
        "verify-login",
        "--trust",
        &p(&sroot),
        "--cert",
        &p(&spem),
        "--challenge",
        &p(&challenge),
        "--sig",
        &p(&lsig),
        "--ocsp",
        &ocsp,
    ]);
    assert!(!out.status.success());
    server.stop();
}
