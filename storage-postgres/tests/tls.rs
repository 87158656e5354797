//! TLS to PostgreSQL with a real server: a throwaway cluster with `ssl=on`, a server
//! certificate made here with rcgen, and a `pg_hba.conf` that lets TCP clients in over TLS
//! only. Skipped, loudly, where the PostgreSQL binaries are missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use storage_postgres::testing::{Cluster, Fsync};
use storage_postgres::PgStorage;

/// A CA (its PEM) and, when `server_names` is given, a server certificate and key it issued.
fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).expect("self-sign the CA").pem();
    (params, key, pem)
}

fn server_cert(ca: (CertificateParams, KeyPair), names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().expect("server key");
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("server params");
    params.distinguished_name.push(DnType::CommonName, "db");
    let issuer = Issuer::new(ca.0, ca.1);
    let cert = params.signed_by(&key, &issuer).expect("issue");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn open_err(url: &str) -> String {
    match PgStorage::open(url) {
        Ok(_) => panic!("{url} connected"),
        Err(e) => e.to_string(),
    }
}

/// Encrypted connections to database `db` other than this query's own (read over the plain
/// Unix socket).
fn encrypted_connections(cluster: &Cluster, db: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = cluster.url("postgres");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect over the socket");
        let task = tokio::spawn(conn);
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                 WHERE ssl AND datname = $1",
                &[&db],
            )
            .await
            .expect("query pg_stat_ssl")
            .get(0);
        drop(client);
        let _ = task.await;
        n
    })
}

#[test]
fn verify_full_verify_ca_wrong_ca_and_plaintext_against_a_tls_only_server() {
    let (ca_params, ca_key, ca_pem) = ca("jpki test database CA");
    let (_, _, other_pem) = ca("some other CA");
    // The certificate names the IP address only, so `localhost` is a name it does not hold.
    let (cert, key) = server_cert((ca_params, ca_key), &["127.0.0.1"]);
    let Some(cluster) = Cluster::start_tls(Fsync::Off, &cert, &key).expect("start the cluster")
    else {
        return;
    };
    let files = tempfile::tempdir().expect("tempdir");
    let right = write(files.path(), "ca.pem", &ca_pem);
    let wrong = write(files.path(), "other.pem", &other_pem);
    let socket_url = cluster.database().expect("database");
    let db = socket_url.rsplit('/').next().expect("name").to_owned();
    let url = |host: &str, query: String| cluster.tcp_url(&socket_url, host, &query);

    // verify-full with the right CA and the name in the certificate: connected, encrypted.
    let full = url(
        "127.0.0.1",
        format!("sslmode=verify-full&sslrootcert={}", right.display()),
    );
    let s = PgStorage::open(&full).expect("verify-full with the right CA connects");
    assert_eq!(
        s.schema_version().expect("version"),
        storage_postgres::schema::latest()
    );
    assert!(
        encrypted_connections(&cluster, &db) >= 1,
        "the engine's connection is encrypted"
    );

    // The edge's LISTEN connection goes over the same TLS.
    let wakeups = s.revocation_wakeups();
    let t0 = Instant::now();
    while !wakeups.state().listening {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the listener did not LISTEN over TLS: {:?}",
            wakeups.state()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(wakeups);
    drop(s);

    // A CA file that did not issue the server's certificate: refused, saying so.
    let e = open_err(&url(
        "127.0.0.1",
        format!("sslmode=verify-full&sslrootcert={}", wrong.display()),
    ));
    assert!(
        e.contains("not issued by the CA in sslrootcert") && e.contains("UnknownIssuer"),
        "{e}"
    );
    let e = open_err(&url(
        "127.0.0.1",
        format!("sslmode=verify-ca&sslrootcert={}", wrong.display()),
    ));
    assert!(e.contains("not issued by the CA in sslrootcert"), "{e}");

    // A host name the certificate does not hold: verify-full refuses, verify-ca (chain only)
    // connects.
    let e = open_err(&url(
        "localhost",
        format!("sslmode=verify-full&sslrootcert={}", right.display()),
    ));
    assert!(e.contains("does not name the host"), "{e}");
    PgStorage::open(&url(
        "localhost",
        format!("sslmode=verify-ca&sslrootcert={}", right.display()),
    ))
    .expect("verify-ca checks the chain, not the name");

    // No TLS against a server that takes TCP clients over TLS only: refused, saying why.
    for query in ["sslmode=disable".to_owned(), String::new()] {
        let e = open_err(&url("127.0.0.1", query));
        assert!(
            e.contains("accepts this connection only over TLS") && e.contains("no encryption"),
            "{e}"
        );
    }

    // Nothing was written by the refused connections: the database still answers over TLS.
    let s = PgStorage::open_follower(&full).expect("reopen");
    assert_eq!(
        s.schema_version().expect("version"),
        storage_postgres::schema::latest()
    );
}

#[test]
fn tls_asked_for_never_falls_back_to_a_server_without_it() {
    let (_, _, ca_pem) = ca("jpki test database CA");
    let Some(cluster) = Cluster::start_plain_tcp(Fsync::Off).expect("start the cluster") else {
        return;
    };
    let files = tempfile::tempdir().expect("tempdir");
    let ca_file = write(files.path(), "ca.pem", &ca_pem);
    let socket_url = cluster.database().expect("database");
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = open_err(&cluster.tcp_url(
            &socket_url,
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={}", ca_file.display()),
        ));
        assert!(
            e.contains("does not offer TLS") && e.contains("never falls back"),
            "{mode}: {e}"
        );
    }
    // The same server without TLS asked for: connects (the refusal above was TLS's).
    PgStorage::open(&cluster.tcp_url(&socket_url, "127.0.0.1", "sslmode=disable"))
        .expect("a plain connection to a plain server");
}
