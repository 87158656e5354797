//! Microbenchmark of the pre-signed answer store's engines (BENCHMARKS.md, "Answer store").
//!
//! ```sh
//! cargo build --release -p ocsp-responder --example answer_store
//! A=target/release/examples/answer_store
//! $A put sled DIR/sled 1000000      # sled 0.34 as the answer store used it (LowSpace, 64 MiB)
//! $A get sled DIR/sled 1000000 20   # 2 threads, 20 s of random gets
//! $A put redb DIR/redb 1000000      # redb 5 as the answer store used it (previous engine)
//! $A get redb DIR/redb 1000000 20
//! $A put slots DIR/slots 1000000    # ocsp_responder::stored::AnswerStore (the slot file)
//! $A get slots DIR/slots 1000000 20
//! ```
//!
//! Records of realistic size: a 2,200-byte DER whose last 1,200 bytes are the signer's
//! certificate. sled stores the answer as the responder did (89-byte header + the whole
//! DER); redb (as last used: one table, 64 MiB page cache, a non-durable commit per put and a
//! durable one every 65,536 and at each flush) and the slot file keep a 110-byte header + the
//! DER without the certificate (~1.1 KB), spliced back on read (one allocation, one copy).
//! Serials are 16 pseudo-random bytes in random order; gets draw serials uniformly. Each
//! phase is its own process, so the peak RSS printed (`VmHWM`) is that phase's.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/support/answers.rs"]
mod answers;

use answers::tlv;
use bytes::Bytes;
use ocsp_responder::certid::HashAlg;
use ocsp_responder::stored::{AnswerStore, Settings, StoredAnswer};
use policies::Hierarchy;

const CACHE: u64 = 64 << 20;
const FULL: usize = 2_200;
const SUFFIX: usize = 1_200;

/// splitmix64: reproducible serials without a dependency.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn serial(i: u64) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&mix(i).to_be_bytes());
    s[8..].copy_from_slice(&mix(i ^ 0x5555).to_be_bytes());
    s[0] = (s[0] & 0x7f) | 0x10; // positive, minimal
    s
}

/// A well-formed OCSPResponse of `FULL` bytes whose BasicOCSPResponse ends with a `certs`
/// element of `SUFFIX` bytes (contents are filler; the store only walks the TLV frame).
fn der(i: u64) -> Vec<u8> {
    let filler = |n: usize, seed: u64| -> Vec<u8> {
        (0..n as u64)
            .map(|k| (mix(seed.wrapping_mul(31).wrapping_add(k)) & 0xff) as u8)
            .collect()
    };
    // certs [0] EXPLICIT SEQUENCE { Certificate }: the same for every answer (one signer).
    let cert = tlv(0x30, &filler(SUFFIX - 12, 7));
    let certs = tlv(0xa0, &tlv(0x30, &cert));
    let sig = tlv(0x03, &filler(257, i));
    let alg = tlv(0x30, &[0x06, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x05, 0x00]);
    let fixed = 4 + 4 + 4 + 13 + 4 + 17 + 3 + 4 + certs.len() + sig.len() + alg.len() + 4;
    let tbs = tlv(0x30, &filler(FULL - fixed, i ^ 0xabcd));
    let basic = tlv(0x30, &[tbs, alg, sig, certs].concat());
    let oid = [0x06, 0x09, 0x2b, 6, 1, 5, 5, 7, 0x30, 1, 1];
    let bytes = tlv(0xa0, &tlv(0x30, &[&oid[..], &tlv(0x04, &basic)].concat()));
    tlv(0x30, &[&[0x0a, 0x01, 0x00][..], &bytes].concat())
}

fn answer(i: u64) -> StoredAnswer {
    answers::good(der(i))
}

fn sled_key(s: &[u8]) -> Vec<u8> {
    [&[Hierarchy::Auth.tag(), HashAlg::Sha1 as u8][..], s].concat()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The previous engine, as `stored` used it (redb 5.0.0).
struct RedbPeer {
    db: redb::Database,
    suffix: Vec<u8>,
    pending: std::sync::atomic::AtomicU32,
}

const REDB_ANSWERS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("answers");
/// The record header of `stored` (version 3).
const RECORD_HEAD: usize = 110;

impl RedbPeer {
    fn open(dir: &Path) -> RedbPeer {
        std::fs::create_dir_all(dir).expect("create the redb directory");
        let mut b = redb::Builder::new();
        b.set_cache_size(CACHE as usize);
        let db = b.create(dir.join("answers.redb")).expect("open redb");
        let w = db.begin_write().expect("redb write");
        w.open_table(REDB_ANSWERS).expect("redb table");
        w.commit().expect("redb commit");
        RedbPeer {
            db,
            suffix: der(0)[FULL - SUFFIX..].to_vec(),
            pending: 0.into(),
        }
    }

    fn put(&self, i: u64) {
        let mut v = vec![3u8; RECORD_HEAD];
        v.extend_from_slice(&der(i)[..FULL - SUFFIX]);
        let mut w = self.db.begin_write().expect("redb write");
        let due = self.pending.fetch_add(1, Ordering::Relaxed) + 1 >= 65_536;
        if due {
            self.pending.store(0, Ordering::Relaxed);
        } else {
            w.set_durability(redb::Durability::None)
                .expect("durability");
        }
        w.open_table(REDB_ANSWERS)
            .expect("redb table")
            .insert(&sled_key(&serial(i))[..], &v[..])
            .expect("redb insert");
        w.commit().expect("redb commit");
    }

    fn get(&self, i: u64) -> usize {
        use redb::{ReadableDatabase, ReadableTable};
        let r = self.db.begin_read().expect("redb read");
        let t = r.open_table(REDB_ANSWERS).expect("redb table");
        let v = t.get(&sled_key(&serial(i))[..]).expect("redb get");
        v.map_or(0, |v| {
            let head = &v.value()[RECORD_HEAD..];
            let mut der = Vec::with_capacity(head.len() + self.suffix.len());
            der.extend_from_slice(head);
            der.extend_from_slice(&self.suffix);
            Bytes::from(der).len()
        })
    }

    fn flush(&self) {
        self.pending.store(0, Ordering::Relaxed);
        self.db
            .begin_write()
            .expect("redb write")
            .commit()
            .expect("redb commit");
    }
}

enum Engine {
    Sled(sled::Db),
    Redb(RedbPeer),
    Slots(AnswerStore),
}

impl Engine {
    fn open(kind: &str, dir: &Path) -> Engine {
        match kind {
            "sled" => Engine::Sled(
                sled::Config::new()
                    .path(dir)
                    .cache_capacity(CACHE)
                    .mode(sled::Mode::LowSpace)
                    .open()
                    .expect("open sled"),
            ),
            "redb" => Engine::Redb(RedbPeer::open(dir)),
            "slots" => {
                let st =
                    AnswerStore::open(dir, &Settings::default()).expect("open the answer store");
                if st.watermark().expect("watermark").is_none() {
                    st.set_watermark(1).expect("watermark");
                }
                Engine::Slots(st)
            }
            _ => panic!("engine: sled, redb or slots"),
        }
    }

    fn put(&self, i: u64) {
        let s = serial(i);
        match self {
            Engine::Sled(db) => {
                // The record the sled answer store wrote: 89-byte header + full DER.
                let mut v = vec![2u8; 89];
                v.extend_from_slice(&der(i));
                db.insert(sled_key(&s), v).expect("sled insert");
            }
            Engine::Redb(r) => r.put(i),
            Engine::Slots(st) => st
                .put(Hierarchy::Auth, HashAlg::Sha1, &s, &answer(i))
                .expect("put"),
        }
    }

    fn get(&self, i: u64) -> usize {
        let s = serial(i);
        match self {
            Engine::Sled(db) => db
                .get(sled_key(&s))
                .expect("sled get")
                .map_or(0, |v| v.len() - 89),
            Engine::Redb(r) => r.get(i),
            Engine::Slots(st) => st
                .get(Hierarchy::Auth, HashAlg::Sha1, &s)
                .expect("get")
                .map_or(0, |a| a.der.len()),
        }
    }

    fn flush(&self) {
        match self {
            Engine::Sled(db) => {
                db.flush().expect("sled flush");
            }
            Engine::Redb(r) => r.flush(),
            Engine::Slots(st) => st.flush().expect("flush"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, phase, kind, dir, n, rest @ ..] = args.as_slice() else {
        eprintln!("usage: answer_store put|get|scan sled|redb|slots DIR N [SECONDS]");
        std::process::exit(2);
    };
    let n: u64 = n.parse().expect("N");
    let dir = Path::new(dir);
    let t0 = Instant::now();
    let engine = Engine::open(kind, dir);
    let opened = t0.elapsed();
    match phase.as_str() {
        "put" => {
            let t = Instant::now();
            for i in 0..n {
                engine.put(i);
                // The pre-signer flushes at the end of a pass; a pass of 10^6 is split here
                // as a served store would see it (revocations flush in between).
                if i % 100_000 == 99_999 {
                    engine.flush();
                }
            }
            engine.flush();
            let secs = t.elapsed().as_secs_f64();
            drop(engine);
            let disk = dir_bytes(dir);
            println!(
                "{kind} put n={n} {:.1}s {:.0}/s disk={:.0} MB ({:.0} B/answer) peak_rss={:.0} MiB",
                secs,
                n as f64 / secs,
                disk as f64 / 1e6,
                disk as f64 / n as f64,
                peak_rss_mib()
            );
        }
        "get" => {
            let secs: u64 = rest.first().map_or(20, |s| s.parse().expect("SECONDS"));
            let full = der(0).len();
            let engine = Arc::new(engine);
            let stop = Arc::new(AtomicBool::new(false));
            let done = Arc::new(AtomicU64::new(0));
            let threads: Vec<_> = (0..2u64)
                .map(|t| {
                    let (engine, stop, done) =
                        (Arc::clone(&engine), Arc::clone(&stop), Arc::clone(&done));
                    std::thread::spawn(move || {
                        let full = full;
                        let mut x = mix(t + 99);
                        let mut k = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            x = mix(x);
                            assert_eq!(engine.get(x % n), full, "every answer is found whole");
                            k += 1;
                        }
                        done.fetch_add(k, Ordering::Relaxed);
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                t.join().expect("a reader");
            }
            let k = done.load(Ordering::Relaxed) as f64;
            println!(
                "{kind} get n={n} open={:.2}s {:.0} gets/s {:.1} us/get (2 threads) peak_rss={:.0} MiB",
                opened.as_secs_f64(),
                k / secs as f64,
                2e6 * secs as f64 / k,
                peak_rss_mib()
            );
        }
        "scan" => {
            let Engine::Slots(st) = &engine else {
                panic!("scan: the slot file only")
            };
            let t = Instant::now();
            let mut k = 0u64;
            st.for_each_meta(&mut |_| {
                k += 1;
                true
            })
            .expect("scan");
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{kind} scan n={n} {k} answers {secs:.2}s {:.0}/s peak_rss={:.0} MiB",
                k as f64 / secs,
                peak_rss_mib()
            );
        }
        _ => panic!("phase: put, get or scan"),
    }
}
