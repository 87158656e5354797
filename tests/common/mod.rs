//! Helpers for the end-to-end tests: run the real `jpki` binary, make holder keys and CSRs
//! with `openssl req`, and snapshot the store through the CLI's read commands.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASS: &str = "e2e-test-passphrase";

/// The default policy with random serials instead of the default sequential ones.
pub fn random_serials_policy() -> String {
    let from = "serials = \"sequential\"";
    assert!(policies::policy::DEFAULT_POLICY.contains(from));
    policies::policy::DEFAULT_POLICY.replace(from, "serials = \"random\"")
}

/// A path as a `&str` argument, owned.
pub fn p(x: &Path) -> String {
    x.to_str().unwrap().to_owned()
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub now: Option<String>,
    /// `JPKI_TEST_START`: every command's clock starts here and runs on.
    pub start: Option<String>,
}

impl Env {
    /// A fresh temporary directory with an initialised data directory `data/`.
    pub fn init() -> Env {
        let env = Env::empty();
        env.ok(&["init"]);
        env
    }

    pub fn empty() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            now: None,
            start: None,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jpki"));
        c.args(args)
            .arg("--data")
            .arg(self.data())
            .env("JPKI_PASSPHRASE", PASS)
            .env_remove("JPKI_DATA")
            .env_remove("JPKI_TEST_NOW")
            .env_remove("JPKI_TEST_START");
        if let Some(now) = &self.now {
            c.env("JPKI_TEST_NOW", now);
        }
        if let Some(start) = &self.start {
            c.env("JPKI_TEST_START", start);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "jpki {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure with a one-line error containing `needle`.
    pub fn fails(&self, args: &[&str], needle: &str) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "jpki {args:?} should have failed");
        assert!(
            err.contains(needle),
            "jpki {args:?}: error `{err}` does not mention `{needle}`"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "error is not one line: {err}"
        );
        err
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Everything the store shows: certificates with status, the audit log, and residents.
    pub fn snapshot(&self, residents: &[&str]) -> String {
        let mut s = self.ok(&["cert", "list", "--json"]);
        s.push_str(&self.ok(&["audit", "log", "--json"]));
        for r in residents {
            s.push_str(&self.ok(&["resident", "show", "--id", r, "--json"]));
        }
        s
    }

    pub fn add_resident(&self, name: &str, birth: &str) -> String {
        let v = self.json(&[
            "resident",
            "add",
            "--name",
            name,
            "--birth",
            birth,
            "--sex",
            "2",
            "--address",
            "東京都千代田区霞が関２－１－２",
            "--prefecture",
            "Tokyo",
            "--municipality",
            "Chiyoda-ku",
            "--card-expiry",
            "2036-01-01",
        ]);
        v["id"].as_str().unwrap().to_owned()
    }

    /// A holder key and CSR made by `openssl req` (RSA of `bits`); returns (key, csr) paths.
    pub fn csr(&self, name: &str, bits: u32) -> (PathBuf, PathBuf) {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        openssl(&[
            "req",
            "-new",
            "-newkey",
            &format!("rsa:{bits}"),
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-subj",
            "/CN=Requested Name/O=Ignored",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-out",
            csr.to_str().unwrap(),
        ]);
        (key, csr)
    }

    pub fn issue(&self, resident: &str, kind: &str, csr: &Path) -> serde_json::Value {
        self.json(&[
            "issue",
            "--resident",
            resident,
            "--kind",
            kind,
            "--csr",
            csr.to_str().unwrap(),
        ])
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn openssl_result(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A running `jpki serve --public-http 127.0.0.1:0`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// `https://127.0.0.1:PORT` of the platform-operator API, when started.
    pub pf: Option<String>,
    /// `http://127.0.0.1:PORT/tsa` of the time-stamping authority, when started (`--tsa`).
    pub tsa: Option<String>,
    /// `https://127.0.0.1:PORT` of the remote admin API, when started (`--admin-https`).
    pub admin: Option<String>,
    /// `https://127.0.0.1:PORT` of the registered verifiers' listener (`--verifiers-https`).
    pub verifiers: Option<String>,
}

impl Server {
    pub fn start(env: &Env) -> Server {
        Server::start_with(env, &[])
    }

    /// Starts with extra arguments; `pf` is filled when `--pf-https` is among them.
    pub fn start_with(env: &Env, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--public-http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::spawn(env.cmd(&args))
    }

    /// Starts with at most `nofile` open descriptors (soft and hard limit, set by
    /// `prlimit(1)`), as on a host with a low limit.
    pub fn start_limited(env: &Env, extra: &[&str], nofile: u32) -> Server {
        let mut args = vec!["serve", "--public-http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let jpki = env.cmd(&args);
        let mut c = Command::new("prlimit");
        c.arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(jpki.get_program())
            .args(jpki.get_args());
        for (k, v) in jpki.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        Server::spawn(c)
    }

    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut base = None;
        let mut pf = None;
        let mut tsa = None;
        let mut admin = None;
        let mut verifiers = None;
        let mut said = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            said.push_str(&line);
            said.push('\n');
            if let Some(rest) =
                line.strip_prefix("jpki serve: time-stamping authority (RFC 3161) at ")
            {
                tsa = Some(rest.to_owned());
            }
            if let Some(rest) =
                line.strip_prefix("jpki serve: CRLs and OCSP for registered verifiers at ")
            {
                verifiers = Some(
                    rest.split_whitespace()
                        .next()
                        .unwrap()
                        .trim_end_matches('/')
                        .to_owned(),
                );
            }
            if let Some(rest) = line.strip_prefix("jpki serve: admin API at ") {
                admin = Some(rest.split("/v1/").next().unwrap().to_owned());
            }
            if let Some(rest) = line.strip_prefix("jpki serve: platform-operator API at ") {
                pf = Some(rest.split("/v1/").next().unwrap().to_owned());
            }
            if let Some(rest) = line.strip_prefix("jpki serve: CRLs at ") {
                base = Some(rest.split("/crl/").next().unwrap().to_owned());
            }
            if line.contains("running;") {
                break;
            }
        }
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base: base.unwrap_or_else(|| panic!("the server printed no address:\n{said}")),
            pf,
            tsa,
            admin,
            verifiers,
        }
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

/// Copies a data directory (regular files and directories; a stale socket is not part of it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&e.path(), &target);
        } else if ty.is_file() {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// xorshift: enough randomness for kill times, without a dependency.
pub struct Rng(pub u64);
impl Rng {
    /// Seeded from `$JPKI_CRASH_SEED` (to replay a run's choices) or the clock; prints the seed.
    pub fn seeded() -> Rng {
        let seed = std::env::var("JPKI_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        println!("seed {seed} (JPKI_CRASH_SEED={seed} replays its choices)");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A fresh RSA-2048 key's CSR (DER), made in-process by rcgen.
pub fn rsa_csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

/// Reopens the store at `data` in this process and checks it: every acknowledged revocation
/// (`hierarchy:serial`, as `jpki revoke --batch` prints them) is there, `check_indexes` sees
/// `certs` certificates, the audit chain verifies.
pub fn check_store(data: &Path, acked: &[impl AsRef<str>], certs: usize) -> Result<(), String> {
    use policies::Hierarchy;
    let a = ca::Authority::open(data, None, std::sync::Arc::new(ca::clock::SystemClock))
        .map_err(|e| format!("the store does not reopen: {e}"))?;
    for line in acked {
        let line = line.as_ref();
        let (h, serial) = line
            .split_once(':')
            .ok_or_else(|| format!("odd acknowledgement {line:?}"))?;
        let h: Hierarchy = h.parse().map_err(|_| format!("hierarchy in {line:?}"))?;
        let v = a
            .cert_show(&ca::authority::parse_serial(serial).unwrap(), Some(h))
            .map_err(|e| format!("acknowledged {serial}: {e}"))?;
        if v.status != ca::records::State::Revoked {
            return Err(format!(
                "acknowledged revocation of {h}:{serial} lost (status {:?})",
                v.status
            ));
        }
    }
    let n = a
        .check_indexes()
        .map_err(|e| format!("check_indexes: {e}"))?;
    if n != certs {
        return Err(format!("check_indexes saw {n} certificates, not {certs}"));
    }
    a.audit_verify().map_err(|e| format!("audit_verify: {e}"))?;
    Ok(())
}

/// A certificate's CRL partition as `jpki` prints it in JSON (`"partition"`), as the path of
/// its CRL below the hierarchy: a serial partition's number, or `<prefecture>/<municipality>`
/// (percent-encoded as `policies::Municipality::path` does; the test residents' names need
/// none).
#[allow(dead_code)]
pub fn partition_path(p: &serde_json::Value) -> String {
    match p {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Object(o) => {
            let part = |k: &str| o[k].as_str().expect("a name").to_owned();
            let (pref, muni) = (part("prefecture"), part("municipality"));
            for s in [&pref, &muni] {
                assert!(
                    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                    "{s} would need percent-encoding"
                );
            }
            format!("{pref}/{muni}")
        }
        other => panic!("not a partition: {other}"),
    }
}

impl Env {
    /// The flags two distinct ca-officers' approvals of a key ceremony take
    /// (`--officer-cert/--officer-key` twice): the first officer `jpki init` made and a second
    /// one, registered here on first use.
    pub fn two_officers(&self) -> Vec<String> {
        let officers = self.data().join("officers");
        let (cert2, key2) = (
            self.path("second-officer.pem"),
            self.path("second-officer.key"),
        );
        if !cert2.exists() {
            self.ok(&[
                "officer",
                "add",
                "--name",
                "second-officer",
                "--role",
                "ca-officer",
                "--key-out",
                &p(&key2),
                "--cert-out",
                &p(&cert2),
            ]);
        }
        vec![
            "--officer-cert".into(),
            p(&officers.join("ca-officer.pem")),
            "--officer-key".into(),
            p(&officers.join("ca-officer.key")),
            "--officer-cert".into(),
            p(&cert2),
            "--officer-key".into(),
            p(&key2),
        ]
    }

    /// `args` followed by `extra`, as the `&[&str]` every runner takes.
    pub fn with_args<'a>(args: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
        let mut v = args.to_vec();
        v.extend(extra.iter().map(String::as_str));
        v
    }
}

/// How `openssl ocsp -resp_text` prints a serial: `N (0xN)` when it fits in 63 bits, else
/// colon-separated lower-case hex.
pub fn shown(s: &str) -> String {
    if s.len() <= 16 {
        if let Ok(n) = u64::from_str_radix(s, 16) {
            if n < 1 << 63 {
                return format!("Serial Number: {n} (0x{n:x})");
            }
        }
    }
    s.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_lowercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// One unlabelled sample of the server's `/metrics` (Prometheus text), as an integer.
pub fn metric(server: &Server, name: &str) -> u64 {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("{}/metrics", server.base)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}
