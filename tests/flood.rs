//! Connection discipline of `jpki serve` (conn-guard): a flood of connections that send
//! nothing, or only the HTTP/2 preface, from other addresses does not starve a well-behaved
//! client — even when it fills the listener, whose quietest connection then makes room — is
//! capped per client address, and is closed after the idle time.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn idle_and_preface_floods_are_capped_and_closed_and_do_not_starve_others() {
    let env = Env::init();
    let cfg = env.write(
        "serve.toml",
        b"[limits]\nmax_connections = 60\nmax_per_client = 40\nidle_seconds = 2\n",
    );
    let server = Server::start_with(&env, &["--config", &p(&cfg)]);
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // 120 connections from 127.0.0.2 and 127.0.0.3: 100 silent, 20 that send only the
        // HTTP/2 preface. 80 pass the per-client cap, more than the listener's 60 places.
        let mut flood = Vec::new();
        for i in 0..120 {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            let from = if i % 2 == 0 {
                "127.0.0.2:0"
            } else {
                "127.0.0.3:0"
            };
            s.bind(from.parse().unwrap()).unwrap();
            let mut c = s.connect(addr).await.unwrap();
            if i % 6 == 0 {
                c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                    .await
                    .unwrap();
            }
            flood.push(c);
        }
        let t0 = Instant::now();
        // Quiet long enough to be evicted for a newcomer (conn_guard::MIN_QUIET).
        tokio::time::sleep(Duration::from_millis(700)).await;

        // A well-behaved client on 127.0.0.1 is served throughout.
        let mut ok = 0;
        for _ in 0..50 {
            let out = Command::new("curl")
                .args(["-sf", "-m", "5", &format!("{}/healthz", server.base)])
                .output()
                .unwrap();
            ok += usize::from(out.status.success());
        }
        assert_eq!(ok, 50, "the well-behaved client got {ok} of 50 answers");

        // Every flood connection is closed by the server: those over the per-client cap at
        // once, some evicted for the well-behaved client, the rest after the idle time.
        let mut closed = 0;
        for mut c in flood {
            let mut b = [0u8; 256];
            loop {
                let left = Duration::from_secs(2 + 5).saturating_sub(t0.elapsed());
                match tokio::time::timeout(left, c.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        closed += 1;
                        break;
                    }
                    // An HTTP/2 server's SETTINGS frame: keep reading until it closes.
                    Ok(Ok(_)) => continue,
                    Err(_) => break,
                }
            }
        }
        assert_eq!(
            closed, 120,
            "idle flood connections still open after the idle time"
        );
    });
    assert!(server.stop().success());
}

/// Slowloris clients (a request started, one more header byte every 300 ms) against a server
/// with a low descriptor limit: the caps fitted under it hold, a well-behaved client is
/// served (a client that never completes a request is quiet, so it makes room), the admin
/// socket carries a state change, and every slowloris connection is closed after the idle
/// time although it keeps sending.
#[test]
fn slowloris_under_a_low_descriptor_limit_leaves_room_for_clients_and_the_admin_socket() {
    let env = Env::init();
    let cfg = env.write("serve.toml", b"[limits]\nidle_seconds = 2\n");
    // 320 descriptors: 256 kept in reserve (conn_guard::RESERVED_FDS), ~21 places per listener
    let server = Server::start_limited(&env, &["--config", &p(&cfg)], 320);
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut readers, mut writers) = (Vec::new(), Vec::new());
        for i in 0..80 {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(format!("127.0.0.{}:0", 2 + i % 4).parse().unwrap())
                .unwrap();
            let c = s.connect(addr).await.unwrap();
            let (r, mut w) = c.into_split();
            let _ = w.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-").await;
            readers.push(r);
            writers.push(w);
        }
        let t0 = Instant::now();
        let dribble = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                for w in &mut writers {
                    let _ = w.write_all(b"a").await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(700)).await;

        let mut ok = 0;
        for _ in 0..30 {
            let out = Command::new("curl")
                .args(["-sf", "-m", "5", &format!("{}/healthz", server.base)])
                .output()
                .unwrap();
            ok += usize::from(out.status.success());
        }
        assert_eq!(ok, 30, "the well-behaved client got {ok} of 30 answers");
        // through the admin socket, while the listener is flooded
        env.add_resident("氾濫　試験", "1990-01-01");

        let mut closed = 0;
        for mut r in readers {
            let mut b = [0u8; 256];
            loop {
                let left = Duration::from_secs(2 + 5).saturating_sub(t0.elapsed());
                match tokio::time::timeout(left, r.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        closed += 1;
                        break;
                    }
                    Ok(Ok(_)) => continue,
                    Err(_) => break,
                }
            }
        }
        dribble.abort();
        assert_eq!(
            closed, 80,
            "slowloris connections still open after the idle time"
        );
    });
    assert!(server.stop().success());
}

#[test]
fn bad_limits_are_refused_by_name() {
    let env = Env::init();
    for (text, field) in [
        ("[limits]\nmax_per_client = 0\n", "limits.max_per_client"),
        ("[limits]\nidle_seconds = 0\n", "limits.idle_seconds"),
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
        ("[limits]\nidle = 5\n", "idle"),
    ] {
        let cfg = env.write("bad.toml", text.as_bytes());
        env.fails(
            &["serve", "--http", "127.0.0.1:0", "--config", &p(&cfg)],
            field,
        );
    }
}
