//! CRL build/sign/publish benchmark (not a timed test): `cargo bench -p crl-publisher --bench crl`
//! (add `-- quick` to skip the 10^6 cases). Each case runs in a child process of this binary
//! so that its peak memory (VmHWM from /proc/self/status) is its own. `openssl ca -gencrl`
//! over the same entries, from an `index.txt`, is the peer. Figures go to BENCHMARKS.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use crl_publisher::{
    Entry, FixedClock, MemoryStore, Publisher, Roots, Settings, Source, StateStore,
};
use policies::profile::Scope;
use policies::{Hierarchy, Policy, Reason};
use support::TestRoot;
use time::macros::datetime;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

const S: Hierarchy = Hierarchy::Signing;
/// A multiple of 64, so that serial `SALT + i` falls in partition `i % 64`.
const SALT: u128 = 0x5a5a_1234_abcd_0000_0000_0000_0000_0000;
const NOW: OffsetDateTime = datetime!(2026-11-27 00:00 UTC);

/// Entries generated on the fly, as a database cursor would yield them: the benchmark measures
/// the publisher, not a test store. `spread`: entry `i` is in partition `i % 64`; otherwise all
/// are in partition 0. A third carry keyCompromise (like crate-notes §3.4's rcgen figure).
struct Synthetic {
    n: u64,
    spread: bool,
    /// Entry `i` is in municipal partition `i % m` (`P<k % 47>-ken/M<k>-shi`) instead.
    municipal: Option<u64>,
    /// Also holds and invalidity dates (for the judge sample, not the timed cases).
    mixed: bool,
}

impl Synthetic {
    fn indices(&self, h: Hierarchy, scope: Scope) -> Box<dyn Iterator<Item = u64>> {
        if let (Some(m), Hierarchy::Signing, Scope::Municipal(place)) = (self.municipal, h, &scope)
        {
            let k: u64 = place.municipality()[1..place.municipality().len() - 4]
                .parse()
                .unwrap();
            return Box::new((k..self.n).step_by(m as usize));
        }
        match (h, scope, self.spread) {
            (Hierarchy::Signing, Scope::Partition(p), true) => {
                Box::new((u64::from(p)..self.n).step_by(64))
            }
            (Hierarchy::Signing, Scope::Partition(0), false) => Box::new(0..self.n),
            _ => Box::new(std::iter::empty()),
        }
    }
}

fn fill(e: &mut Entry, i: u64) {
    e.serial.clear();
    e.serial
        .extend_from_slice(&(SALT + u128::from(i)).to_be_bytes());
    e.reason = if matches!(i % 3, 0) {
        Reason::KeyCompromise
    } else {
        Reason::Unspecified
    };
}

impl Source for Synthetic {
    fn for_each(
        &self,
        h: Hierarchy,
        _g: u32,
        scope: Scope,
        each: &mut dyn FnMut(&Entry),
    ) -> Result<(), crl_publisher::BoxError> {
        let mut e = Entry {
            serial: Vec::with_capacity(16),
            revoked_at: NOW - time::Duration::days(30),
            reason: Reason::Unspecified,
            invalidity: None,
            not_after: NOW + time::Duration::days(365),
        };
        for i in self.indices(h, scope) {
            fill(&mut e, i);
            if self.mixed {
                e.invalidity =
                    (e.reason == Reason::KeyCompromise).then_some(NOW - time::Duration::days(40));
                if i % 5 == 1 {
                    e.reason = Reason::CertificateHold;
                }
            }
            each(&e);
        }
        Ok(())
    }

    fn count_hint(&self, h: Hierarchy, _g: u32, scope: Scope) -> Option<usize> {
        Some(self.indices(h, scope).count())
    }
}

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Setup {
    publisher: Publisher,
    signing: Arc<TestRoot>,
    state: Arc<MemoryStore>,
    _dir: tempfile::TempDir,
}

fn setup(n: u64, spread: bool) -> Setup {
    setup_with(Synthetic {
        n,
        spread,
        municipal: None,
        mixed: false,
    })
}

/// Municipal partition `k` of the municipal case.
fn place(k: u64) -> Scope {
    Scope::Municipal(
        policies::Municipality::new(&format!("P{:02}-ken", k % 47), &format!("M{k}-shi")).unwrap(),
    )
}

fn setup_with(source: Synthetic) -> Setup {
    let signing = TestRoot::new(S);
    let auth = TestRoot::new(Hierarchy::Auth);
    let state = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        progress: false,
        ..Settings::default()
    };
    // Serial partitions unless the case is municipal: the serial cases measure the scheme
    // jpki used before municipal partitions (and that older certificates keep).
    let mut policy = Policy::default_policy();
    if source.municipal.is_none() {
        policy.crl.partition_by = policies::policy::PartitionScheme::Serial;
    }
    let publisher = Publisher::new(
        policy,
        settings,
        Roots {
            signing: signing.clone(),
            auth,
        },
        Arc::new(source),
        state.clone() as Arc<dyn StateStore>,
        dir.path(),
        Arc::new(FixedClock::new(NOW)),
    )
    .unwrap();
    Setup {
        publisher,
        signing,
        state,
        _dir: dir,
    }
}

/// Child: one partition of `n` entries.
fn median(mut v: Vec<StdDuration>) -> StdDuration {
    v.sort();
    v[v.len() / 2]
}

/// Child: one partition of `n` entries; times are the median of `RUNS` builds.
fn child_single(n: u64) {
    const RUNS: usize = 3;
    let s = setup(n, false);
    let base = status_kib("VmRSS:");
    let (mut encode, mut check, mut build) = (Vec::new(), Vec::new(), Vec::new());
    let (mut last, mut hwm) = (None, None);
    for _ in 0..RUNS {
        drop(last.take());
        let t = Instant::now();
        let crl = s.publisher.build(S, 1, Scope::Partition(0), NOW).unwrap();
        build.push(t.elapsed());
        encode.push(crl.build_time);
        check.push(crl.check_time);
        last = Some(crl);
        // peak of one build (later runs can reuse heap the allocator kept from the first)
        hwm.get_or_insert_with(|| status_kib("VmHWM:"));
    }
    let hwm = hwm.unwrap_or(0);
    let crl = last.unwrap();
    // for comparison, what a consumer pays: x509-parser's eager parse + signature verification
    let t = Instant::now();
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.der).unwrap();
    let (_, root) = x509_parser::certificate::X509Certificate::from_der(&s.signing.der).unwrap();
    parsed.verify_signature(root.public_key()).unwrap();
    let consumer = t.elapsed();
    drop(parsed);
    let mut publish = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        s.publisher.publish(S, 1, Scope::Partition(0), NOW).unwrap();
        publish.push(t.elapsed());
    }
    println!(
        "RESULT single n={n} entries={} size={} encode_sign_ms={:.1} self_check_ms={:.1} build_ms={:.1} \
         publish_ms={:.1} x509_parser_ms={:.1} base_kib={base} hwm_kib={hwm}",
        crl.entries,
        crl.der.len(),
        ms(median(encode)),
        ms(median(check)),
        ms(median(build)),
        ms(median(publish)),
        ms(consumer)
    );
}

/// Child: `n` entries over 64 partitions; then the republish of one dirty partition.
fn child_spread(n: u64) {
    let s = setup(n, true);
    let base = status_kib("VmRSS:");
    let t = Instant::now();
    let report = s.publisher.tick(NOW);
    let all = t.elapsed();
    assert!(report.failed.is_empty() && report.published.len() == 130);
    let hwm = status_kib("VmHWM:");
    let size: u64 = (0..64)
        .map(|p| {
            s.state
                .load(S, 1, Scope::Partition(p))
                .unwrap()
                .unwrap()
                .published
                .unwrap()
                .size
        })
        .sum();
    let mut times = Vec::new();
    for k in 1..=7 {
        s.publisher.mark_dirty(S, 1, Scope::Partition(5)).unwrap();
        let t = Instant::now();
        let report = s.publisher.tick(NOW + time::Duration::minutes(k));
        times.push(t.elapsed());
        assert_eq!(report.published.len(), 1);
    }
    times.sort();
    println!(
        "RESULT spread n={n} size_all={size} all_ms={:.1} republish_median_ms={:.1} republish_max_ms={:.1} base_kib={base} hwm_kib={hwm}",
        ms(all),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

/// Child: the same `n` entries over `m` municipal partitions (each flagged by its first
/// certificate, as issuance does); then the republish of one dirty partition.
fn child_municipal(n: u64, m: u64) {
    let s = setup_with(Synthetic {
        n,
        spread: false,
        municipal: Some(m),
        mixed: false,
    });
    for k in 0..m {
        s.publisher.mark_dirty(S, 1, place(k)).unwrap();
    }
    let base = status_kib("VmRSS:");
    let t = Instant::now();
    let report = s.publisher.tick(NOW);
    let all = t.elapsed();
    assert!(report.failed.is_empty() && report.published.len() as u64 == m + 2);
    let hwm = status_kib("VmHWM:");
    let size: u64 = (0..m)
        .map(|k| {
            s.state
                .load(S, 1, place(k))
                .unwrap()
                .unwrap()
                .published
                .unwrap()
                .size
        })
        .sum();
    let mut times = Vec::new();
    for k in 1..=7 {
        s.publisher.mark_dirty(S, 1, place(5)).unwrap();
        let t = Instant::now();
        let report = s.publisher.tick(NOW + time::Duration::minutes(k));
        times.push(t.elapsed());
        assert_eq!(report.published.len(), 1);
    }
    times.sort();
    println!(
        "RESULT municipal n={n} m={m} size_all={size} all_ms={:.1} republish_median_ms={:.1} republish_max_ms={:.1} base_kib={base} hwm_kib={hwm}",
        ms(all),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

/// Writes `root.pem` and `partition.crl` (`n` entries with keyCompromise + invalidityDate,
/// certificateHold and unspecified) into `dir`, for `../shared/judges/judge-crl` by hand.
fn sample(dir: &str, n: u64) {
    let s = setup_with(Synthetic {
        n,
        spread: false,
        municipal: None,
        mixed: true,
    });
    let now = OffsetDateTime::now_utc();
    let crl = s.publisher.build(S, 1, Scope::Partition(0), now).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(std::path::Path::new(dir).join("root.pem"), s.signing.pem()).unwrap();
    std::fs::write(std::path::Path::new(dir).join("partition.crl"), &crl.der).unwrap();
    println!(
        "wrote {dir}/partition.crl ({} entries, {} bytes) and {dir}/root.pem",
        crl.entries,
        crl.der.len()
    );
}

/// Peer: `openssl ca -gencrl` over the same `n` entries in one CRL.
fn openssl_peer(n: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestRoot::new(S);
    std::fs::write(d.join("root.pem"), root.pem()).unwrap();
    std::fs::write(d.join("root.key"), root.key.serialize_pem()).unwrap();
    let revoked = (NOW - time::Duration::days(30)).format(time::macros::format_description!(
        "[year repr:last_two][month][day][hour][minute][second]Z"
    ));
    let revoked = revoked.unwrap();
    let mut index = String::with_capacity(n as usize * 80);
    for i in 0..n {
        let serial = format!("{:032X}", SALT + u128::from(i));
        let rev = if matches!(i % 3, 0) {
            format!("{revoked},keyCompromise")
        } else {
            revoked.clone()
        };
        index.push_str(&format!(
            "R\t271127000000Z\t{rev}\t{serial}\tunknown\t/CN=x{i}\n"
        ));
    }
    std::fs::write(d.join("index.txt"), index).unwrap();
    std::fs::write(d.join("index.txt.attr"), "unique_subject = no\n").unwrap();
    std::fs::write(d.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        d.join("ca.cnf"),
        "[ca]\ndefault_ca = CA_default\n[CA_default]\ndatabase = index.txt\ncertificate = root.pem\n\
         private_key = root.key\ndefault_md = sha256\ndefault_crl_days = 1\ncrlnumber = crlnumber\n\
         crl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n",
    )
    .unwrap();
    let (mut times, mut rss) = (Vec::new(), String::new());
    for _ in 0..3 {
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args([
                "-f",
                "MAXRSS_KIB=%M",
                "openssl",
                "ca",
                "-config",
                "ca.cnf",
                "-gencrl",
                "-out",
                "crl.pem",
                "-batch",
            ])
            .current_dir(d)
            .output()
            .unwrap();
        times.push(t.elapsed());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        rss = err
            .lines()
            .find_map(|l| l.strip_prefix("MAXRSS_KIB="))
            .unwrap_or("?")
            .trim()
            .to_owned();
    }
    let took = median(times);
    let size = std::fs::metadata(d.join("crl.pem")).unwrap().len();
    format!(
        "RESULT openssl n={n} ms={:.1} maxrss_kib={rss} pem_size={size}",
        ms(took)
    )
}

fn run_child(args: &[&str]) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| l.starts_with("RESULT"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["child-single", n] => return child_single(n.parse().unwrap()),
        ["child-spread", n] => return child_spread(n.parse().unwrap()),
        ["child-municipal", n, m] => {
            return child_municipal(n.parse().unwrap(), m.parse().unwrap())
        }
        ["sample", dir, n] => return sample(dir, n.parse().unwrap()),
        _ => {}
    }
    let quick = args.iter().any(|a| a == "quick");
    let sizes: &[u64] = if quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    for n in sizes {
        println!("{}", run_child(&["child-single", &n.to_string()]));
        println!("{}", openssl_peer(*n));
    }
    let spread = if quick { 100_000 } else { 1_000_000 };
    println!("{}", run_child(&["child-spread", &spread.to_string()]));
    // The same entries by municipality: as many partitions as the serial scheme, and as many
    // as Japan has municipalities (1,741).
    for m in [64, 1741] {
        println!(
            "{}",
            run_child(&["child-municipal", &spread.to_string(), &m.to_string()])
        );
    }
    println!("{}", openssl_peer(spread));
}
