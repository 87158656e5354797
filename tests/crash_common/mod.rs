//! What the SIGKILL campaigns against `jpki serve` share (`tests/crash_compact.rs`,
//! `tests/crash_campaign.rs`): the `jpki` command on a data directory, a server whose stderr is
//! drained and kept, and a loop of `jpki store compact` clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::common;

pub fn jpki(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jpki"));
    c.arg("--data")
        .arg(data)
        .env("JPKI_PASSPHRASE", common::PASS)
        .env_remove("JPKI_DATA")
        .env_remove("JPKI_TEST_NOW")
        .env_remove("JPKI_TEST_START")
        .env_remove("RUST_LOG");
    c
}

/// `jpki serve` on a data directory, listening on 127.0.0.1 (port 0) and its admin socket.
/// Killed when dropped.
pub struct Serve {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of its public listener (CRLs and OCSP).
    pub base: String,
    /// Its stderr, for the report of a failing round.
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    pub fn start(data: &Path) -> Serve {
        Serve::start_with(data, &[])
    }

    /// Starts with extra arguments (e.g. `--config FILE`).
    pub fn start_with(data: &Path, extra: &[&str]) -> Serve {
        let mut child = jpki(data)
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            let err = child.stderr.take().unwrap();
            // Keeps draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("running;") {
                        let _ = ready_tx.send(());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut s = Serve {
            child,
            base: String::new(),
            log,
        };
        // Ready once it says so (its admin socket is bound before); bounded, so a hung start
        // fails. Its stderr closing first means it exited.
        match ready.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = s.child.wait().unwrap();
                panic!("jpki serve exited at start ({st}): {}", s.log());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("jpki serve not ready after 60 s: {}", s.log())
            }
        }
        let log = s.log();
        s.base = log
            .lines()
            .find_map(|l| l.strip_prefix("jpki serve: CRLs at "))
            .and_then(|rest| rest.split("/crl/").next())
            .unwrap_or_else(|| panic!("the server printed no address: {log}"))
            .to_owned();
        s
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit status (a clean stop must succeed).
    pub fn stop(mut self) -> std::process::ExitStatus {
        common::unsafe_kill(self.child.id(), "TERM");
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one loop of `jpki store compact` clients saw.
#[derive(Default)]
pub struct Compactions {
    /// Compactions the server answered as done.
    pub done: usize,
    /// A compaction client was still waiting for its answer when the round stopped.
    pub in_flight: bool,
    /// Failures while the server was alive (there must be none), with the client's stderr.
    pub failed_alive: Vec<String>,
}

/// Runs `jpki store compact --json` clients one after another until `stop` is set; the client
/// running then is killed. `alive` is cleared just before the server is killed: a failure seen
/// while it is set happened while the server ran.
pub fn compact_loop(data: PathBuf, alive: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> Compactions {
    let mut seen = Compactions::default();
    while !stop.load(Ordering::SeqCst) {
        let mut child = jpki(&data)
            .args(["store", "compact", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if stop.load(Ordering::SeqCst) {
                let _ = child.kill();
                child.wait().unwrap();
                seen.in_flight = true;
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let Some(status) = status else { break };
        let (mut out, mut err) = (String::new(), String::new());
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        if status.success() {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(v["position"].as_u64().is_some(), "{out}");
            seen.done += 1;
        } else if alive.load(Ordering::SeqCst) {
            seen.failed_alive.push(err);
        }
    }
    seen
}
