//! CRLs per root generation (docs/roots.md): after a rollover each generation signs the CRLs
//! of the certificates it issued. A revoked generation-1 leaf and a revoked generation-2 leaf
//! of the same partition each appear only on their own generation's CRL, which verifies with
//! that generation's root only (`openssl crl -CAfile`, `openssl verify -crl_check`, judge-crl
//! when the outside judges are set up); `index.json` names each CRL's issuer key and the
//! relying party's index lookup picks the CRL by the leaf's AKI; generation 2's leaves carry
//! the `-g2` URL when the policy writes URLs; once the last generation-1 certificate has
//! expired, generation 1's CRLs are no longer published.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Where the outside judges are (`JPKI_JUDGES` overrides, e.g. a copy set up elsewhere).
fn judges() -> std::path::PathBuf {
    std::env::var_os("JPKI_JUDGES")
        .map_or_else(|| "/work/shared/judges".into(), std::path::PathBuf::from)
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn judge(name: &str, args: &[String]) {
    let path = judges().join(name);
    if !path.exists() || !judges().join(".venv").exists() {
        eprintln!("{name}: JUDGES NOT SET UP HERE, SKIPPED (openssl checked the same CRLs)");
        return;
    }
    let out = Command::new(&path).args(args).arg("-q").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name}: {text}");
    eprintln!("{name}: {}", text.lines().last().unwrap_or_default());
}

fn not_after(pem: &str) -> OffsetDateTime {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
    c.validity().not_after.to_datetime()
}

fn index(out: &Path) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("index.json")).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn each_root_generation_signs_the_crls_of_what_it_issued() {
    let mut env = Env::empty();
    // The story ends now (real time), so that the outside judges, which check a CRL's
    // freshness against their own clock, judge the CRLs published at its end.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let t0 = now - time::Duration::days(330);
    env.now = Some(at(t0));
    // URLs in distribution points, to see the generation named in them.
    let policy = policies::policy::DEFAULT_POLICY.replace("uri = false", "uri = true");
    let pf = env.write("policy.toml", policy.as_bytes());
    env.ok(&["init", "--policy", &p(&pf)]);
    let a = env.add_resident("山田　花子", "1986-01-05");
    let (_, csr1) = env.csr("sign1", 2048);
    let old = env.issue(&a, "signing", &csr1);

    let t1 = t0 + time::Duration::days(300);
    env.now = Some(at(t1));
    let two = env.two_officers();
    env.ok(&Env::with_args(
        &["root", "rollover", "--hierarchy", "signing"],
        &two,
    ));
    let b = env.add_resident("佐藤　一郎", "1979-11-02");
    let (_, csr2) = env.csr("sign2", 2048);
    let new = env.issue(&b, "signing", &csr2);
    let gens = env.json(&["root"]);
    let signing: Vec<&serde_json::Value> = gens["generations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["hierarchy"] == "signing")
        .collect();
    assert_eq!(signing.len(), 2, "{gens}");
    let g1 = env.write("g1.pem", signing[0]["pem"].as_str().unwrap().as_bytes());
    let g2 = env.write("g2.pem", signing[1]["pem"].as_str().unwrap().as_bytes());
    let key_ids = [
        signing[0]["key_id"].as_str().unwrap(),
        signing[1]["key_id"].as_str().unwrap(),
    ];
    let old_pem = old["pem"].as_str().unwrap();
    let new_pem = new["pem"].as_str().unwrap();
    let old_f = env.write("old.pem", old_pem.as_bytes());
    let new_f = env.write("new.pem", new_pem.as_bytes());
    let part = common::partition_path(&old["partition"]);
    assert_eq!(
        part,
        common::partition_path(&new["partition"]),
        "same municipality: the same partition, two generations"
    );
    // The distribution point's URL names the generation from 2 on; generation 1 keeps its.
    let url_of = |pem: &str| {
        openssl_result(&[
            "x509",
            "-noout",
            "-ext",
            "crlDistributionPoints",
            "-in",
            pem,
        ])
        .1
    };
    assert!(
        url_of(&p(&old_f)).contains(&format!("/crl/signing/{part}.crl")),
        "{}",
        url_of(&p(&old_f))
    );
    assert!(
        url_of(&p(&new_f)).contains(&format!("/crl/signing-g2/{part}.crl")),
        "{}",
        url_of(&p(&new_f))
    );

    // Both revoked.
    for c in [&old, &new] {
        env.ok(&[
            "revoke",
            "--hierarchy",
            "signing",
            "--serial",
            c["serial"].as_str().unwrap(),
            "--reason",
            "keyCompromise",
        ]);
    }
    let t2 = now;
    env.now = Some(at(t2));
    let out = env.path("crl");
    env.ok(&["crl", "publish", "--out", &p(&out)]);
    let idx = index(&out);
    let entry = |file: &str| {
        idx.iter()
            .find(|e| e["file"] == file)
            .unwrap_or_else(|| panic!("{file} in {idx:?}"))
            .clone()
    };
    let e1 = entry(&format!("signing/{part}.crl"));
    let e2 = entry(&format!("signing-g2/{part}.crl"));
    assert_eq!(
        (e1["generation"].as_u64(), e2["generation"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(e1["issuerKeyId"], key_ids[0]);
    assert_eq!(e2["issuerKeyId"], key_ids[1]);
    assert_eq!(
        e1["directoryNameDer"], e2["directoryNameDer"],
        "same DN, told apart by key"
    );
    assert!(
        idx.iter().any(|e| e["file"] == "signing-g2/ca.crl"),
        "{idx:?}"
    );

    let serial = |c: &serde_json::Value| {
        format!(
            "Serial Number: {}",
            c["serial"].as_str().unwrap().to_uppercase()
        )
    };
    for (name, file, root, other_root, mine, theirs, leaf) in [
        (
            "gen 1",
            format!("signing/{part}.crl"),
            &g1,
            &g2,
            &old,
            &new,
            &old_f,
        ),
        (
            "gen 2",
            format!("signing-g2/{part}.crl"),
            &g2,
            &g1,
            &new,
            &old,
            &new_f,
        ),
    ] {
        let pem = env.path(&format!("{}.crl.pem", name.replace(' ', "")));
        openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &p(&out.join(&file)),
            "-out",
            &p(&pem),
        ]);
        let (ok, text) = openssl_result(&[
            "crl",
            "-in",
            &p(&pem),
            "-CAfile",
            &p(root),
            "-noout",
            "-text",
        ]);
        assert!(ok && text.contains("verify OK"), "{name}: {text}");
        assert!(
            text.contains(&serial(mine)),
            "{name} lists its own leaf: {text}"
        );
        assert!(
            !text.contains(&serial(theirs)),
            "{name} lists only its own: {text}"
        );
        let (_, text) =
            openssl_result(&["crl", "-in", &p(&pem), "-CAfile", &p(other_root), "-noout"]);
        assert!(
            !text.contains("verify OK"),
            "{name} with the other root: {text}"
        );
        // The leaf against its generation: revoked, by this CRL.
        let (ok, text) = openssl_result(&[
            "verify",
            "-attime",
            &t2.unix_timestamp().to_string(),
            "-crl_check",
            "-CRLfile",
            &p(&pem),
            "-CAfile",
            &p(root),
            &p(leaf),
        ]);
        assert!(
            !ok && text.contains("certificate revoked"),
            "{name}: {text}"
        );
        judge("judge-crl", &[p(&out.join(&file)), p(root)]);
    }
    // OCSP after a restart (a server started after the rollover, at the real time so that
    // judge-ocsp can judge freshness): each generation's answers are signed by its own
    // delegated signer, issued by its own root — generation 1's `certs/signing-ocsp-g1.pem`,
    // made at the rollover; the signer in force (`signing-ocsp.pem`) is generation 2's.
    env.now = None;
    let server = Server::start(&env);
    let url = format!("{}/ocsp", server.base);
    let signer_pem =
        |name: &str| std::fs::read_to_string(env.data().join(format!("certs/{name}.pem"))).unwrap();
    let (g1_signer, g2_signer) = (signer_pem("signing-ocsp-g1"), signer_pem("signing-ocsp"));
    let body = |pem: &str| -> String { pem.lines().filter(|l| !l.starts_with("-----")).collect() };
    let issuer_key = |pem: &str| {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
        let aki = c
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| hex::encode_upper(k.0))
                }
                _ => None,
            })
            .unwrap();
        aki
    };
    assert_eq!(issuer_key(&g1_signer), key_ids[0]);
    assert_eq!(issuer_key(&g2_signer), key_ids[1]);
    for (leaf, root, own, other) in [
        (&old_f, &g1, &g1_signer, &g2_signer),
        (&new_f, &g2, &g2_signer, &g1_signer),
    ] {
        // Only the leaf's own root as the trust anchor: the responder certificate chains to it.
        let (_, o) = openssl_result(&[
            "ocsp",
            "-issuer",
            &p(root),
            "-cert",
            &p(leaf),
            "-url",
            &url,
            "-CAfile",
            &p(root),
            "-resp_text",
            "-timeout",
            "10",
        ]);
        assert!(
            o.contains("Response verify OK") && o.contains(": revoked"),
            "{o}"
        );
        let flat: String = o.lines().map(str::trim).collect();
        assert!(
            flat.contains(&body(own)),
            "signed by its own generation's signer: {o}"
        );
        assert!(!flat.contains(&body(other)), "{o}");
        judge(
            "judge-ocsp",
            &[
                url.clone(),
                p(root),
                p(leaf),
                "--expect".into(),
                "revoked".into(),
                "--nonce".into(),
                "optional".into(),
            ],
        );
    }
    server.stop();
    // The relying party finds each leaf's CRL through index.json by its AKI key.
    for (leaf, want) in [
        (old_pem, format!("signing/{part}.crl")),
        (new_pem, format!("signing-g2/{part}.crl")),
    ] {
        let (_, p) = x509_parser::pem::parse_x509_pem(leaf.as_bytes()).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
        let raw = std::fs::read(out.join("index.json")).unwrap();
        let file = relying_party::crl::file_in_index(&c, &raw, "index.json").unwrap();
        assert_eq!(file, want);
    }

    // After the last generation-1 certificate has expired (and the entry margin of a day),
    // generation 1's CRLs are no longer published; generation 2's are.
    let last = not_after(old_pem).max(t1);
    env.now = Some(at(last + time::Duration::days(2)));
    let later = env.path("crl-later");
    env.ok(&["crl", "publish", "--out", &p(&later)]);
    let idx = index(&later);
    assert!(
        !idx.iter()
            .any(|e| e["hierarchy"] == "signing" && e["generation"] == 1),
        "generation 1 retired: {idx:?}"
    );
    assert!(
        idx.iter()
            .any(|e| e["file"] == format!("signing-g2/{part}.crl")),
        "{idx:?}"
    );
    assert!(
        idx.iter()
            .any(|e| e["hierarchy"] == "auth" && e["generation"] == 1),
        "the auth root never rolled over: its generation 1 publishes: {idx:?}"
    );
}
