//! CRL partitions by municipality, end to end through the `jpki` binary, with an upgrade: a
//! store made under the old scheme (`crl.partition_by = "serial"`, serial modulo 64) issues a
//! certificate; the policy file then becomes one written before the field existed (the
//! default: municipality); the store issues another. Both are revoked. The old certificate
//! is listed on its old serial partition's CRL, the new one on its municipality's, each found
//! through `index.json` by the directoryName the certificate carries, checked by
//! `openssl verify -crl_check` and by `jpki verify`.

mod common;

use common::{openssl, openssl_result, p, Env};

#[test]
fn an_old_store_keeps_its_serial_partitions_beside_municipal_ones() {
    let env = Env::empty();
    // The old scheme, explicitly.
    let old_policy = policies::policy::DEFAULT_POLICY.replace(
        "partition_by = \"municipality\"",
        "partition_by = \"serial\"",
    );
    assert_ne!(old_policy, policies::policy::DEFAULT_POLICY);
    let pf = env.write("old-policy.toml", old_policy.as_bytes());
    env.ok(&["init", "--policy", &p(&pf)]);
    let id = env.add_resident("古川　一郎", "1970-01-01");
    let (_k1, c1) = env.csr("old", 2048);
    let old = env.issue(&id, "auth", &c1);
    let old_partition = old["partition"]
        .as_u64()
        .expect("a serial partition number");

    // The upgrade: the store's policy file is one written before `partition_by` existed.
    let pre_change: String = policies::policy::DEFAULT_POLICY
        .lines()
        .filter(|l| !l.starts_with("partition_by"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(env.data().join("policy.toml"), pre_change).unwrap();
    let id2 = env.add_resident("新井　花子", "1980-02-02");
    let (_k2, c2) = env.csr("new", 2048);
    let new = env.issue(&id2, "auth", &c2);
    assert_eq!(
        new["partition"],
        serde_json::json!({"prefecture": "Tokyo", "municipality": "Chiyoda-ku"}),
        "{new}"
    );
    let old_pem = env.write("old.pem", old["pem"].as_str().unwrap().as_bytes());
    let new_pem = env.write("new.pem", new["pem"].as_str().unwrap().as_bytes());
    let text = openssl(&["x509", "-in", &p(&new_pem), "-noout", "-text"]);
    assert!(
        text.contains(
            "DirName:C = JP, O = JPKI-TEST, OU = JPKI for user authentication, \
             OU = CRL Distribution Points, OU = Tokyo, CN = Chiyoda-ku CRLDP"
        ),
        "{text}"
    );
    let text = openssl(&["x509", "-in", &p(&old_pem), "-noout", "-text"]);
    assert!(
        text.contains(&format!("CN = P{old_partition:04} CRLDP")),
        "{text}"
    );

    for c in [&old, &new] {
        env.ok(&[
            "revoke",
            "--hierarchy",
            "auth",
            "--serial",
            c["serial"].as_str().unwrap(),
            "--reason",
            "keyCompromise",
        ]);
    }
    let out = env.path("crl");
    env.ok(&["crl", "publish", "--out", &p(&out)]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let files: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&format!("auth/{old_partition}.crl").as_str()),
        "{files:?}"
    );
    assert!(files.contains(&"auth/Tokyo/Chiyoda-ku.crl"), "{files:?}");
    assert!(
        !files.contains(&"auth/0.crl") || old_partition == 0,
        "no empty serial partitions for a municipal policy: {files:?}"
    );

    let root = env.write(
        "root.pem",
        env.ok(&["root", "--hierarchy", "auth"]).as_bytes(),
    );
    for (name, pem, file) in [
        ("old", &old_pem, format!("auth/{old_partition}.crl")),
        ("new", &new_pem, "auth/Tokyo/Chiyoda-ku.crl".to_owned()),
    ] {
        let crl_pem = env.path(&format!("{name}.crl.pem"));
        let der = out.join(&file);
        let listing = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &p(&der),
            "-out",
            &p(&crl_pem),
        ]);
        let _ = listing;
        let (ok, text) = openssl_result(&[
            "crl",
            "-in",
            &p(&crl_pem),
            "-CAfile",
            &p(&root),
            "-noout",
            "-text",
        ]);
        assert!(ok && text.contains("verify OK"), "{text}");
        let serial = new_or_old_serial(if name == "old" { &old } else { &new });
        assert!(text.contains(&serial), "{name}: {serial} in {text}");
        let (ok, text) = openssl_result(&[
            "verify",
            "-crl_check",
            "-CRLfile",
            &p(&crl_pem),
            "-CAfile",
            &p(&root),
            &p(pem),
        ]);
        assert!(!ok && text.contains("revoked"), "{name}: {text}");
        // The other partition's CRL does not speak for this certificate.
        let other = if name == "old" {
            "auth/Tokyo/Chiyoda-ku.crl".to_owned()
        } else {
            format!("auth/{old_partition}.crl")
        };
        let other_pem = env.path(&format!("{name}.other.pem"));
        openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &p(&out.join(other)),
            "-out",
            &p(&other_pem),
        ]);
        let (ok, text) = openssl_result(&[
            "verify",
            "-crl_check",
            "-CRLfile",
            &p(&other_pem),
            "-CAfile",
            &p(&root),
            &p(pem),
        ]);
        assert!(
            !ok && !text.contains("certificate revoked"),
            "{name}: {text}"
        );
    }

    // Bad input: a policy naming an unknown scheme is refused and the store is unchanged.
    let bad = policies::policy::DEFAULT_POLICY.replace(
        "partition_by = \"municipality\"",
        "partition_by = \"prefecture\"",
    );
    let env2 = Env::empty();
    let bp = env2.write("bad.toml", bad.as_bytes());
    let out = env2.run(&["init", "--policy", &p(&bp)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("partition_by") && err.contains("unknown variant `prefecture`"),
        "{err}"
    );
    assert!(!env2.data().join("policy.toml").exists());
}

/// The serial as `openssl crl -text` prints it: upper-case hex without leading zeros.
fn new_or_old_serial(c: &serde_json::Value) -> String {
    let s = c["serial"].as_str().unwrap().trim_start_matches('0');
    s.to_uppercase()
}
