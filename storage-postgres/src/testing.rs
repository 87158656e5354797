//! **Test support**: a throwaway PostgreSQL cluster for tests and benchmarks. Not used by the
//! engine itself.
//!
//! [`Cluster::start`] finds the PostgreSQL binaries (`$JPKI_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `initdb` on `PATH`), runs `initdb` into a temporary
//! directory and starts `postgres` on a Unix socket in that directory only
//! (`listen_addresses=''`: no TCP port to pick or collide on), spawned directly as a child so
//! that stopping it is immediate. `initdb` refuses to run as root, so as root both run as the
//! `postgres` user (the directory is chowned to it; the uid is set in the child before exec).
//! Dropping the cluster stops the server and removes the directory. [`shared`] keeps one
//! cluster per test binary, stopped when the process exits; each check then takes a fresh
//! database ([`Cluster::database`]).
//!
//! [`Cluster::start_tls`] also listens on 127.0.0.1 (a free port) with `ssl=on` and a given
//! server certificate, and its `pg_hba.conf` lets TCP clients in over TLS only (`hostssl`).
//!
//! Where the binaries are missing, `start` prints a banner saying the tests were skipped and
//! returns `None`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running throwaway cluster (a primary, or a standby of one: [`Cluster::standby`]).
pub struct Cluster {
    child: Child,
    bin: PathBuf,
    as_user: Option<(u32, u32)>,
    fsync: Fsync,
    data: PathBuf,
    socket_dir: PathBuf,
    /// The server's port (its Unix socket is `.s.PGSQL.<port>`).
    port: u16,
    /// Further server settings (TLS: [`Cluster::start_tls`]).
    extra: Vec<String>,
    next_db: AtomicU64,
    // Dropped after the server is stopped (field order does not matter: Drop stops first).
    dir: tempfile::TempDir,
}

/// Durability of a throwaway cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `fsync=on`, `synchronous_commit=on`: what production runs (benchmarks).
    On,
    /// `fsync=off`: fast, for functional tests only.
    Off,
}

/// Where `initdb` and `postgres` are, if anywhere.
pub fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("JPKI_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("postgres").exists())
}

fn skipped_banner(why: &str) {
    // Straight to the process's stderr: the test harness captures `eprintln!` (and shows it
    // only for a failing test), and this must be seen when the tests pass.
    use std::io::Write;
    let banner = format!(
        "\n\
         ************************************************************************\n\
         *  PostgreSQL tests SKIPPED: {why}\n\
         *  Install PostgreSQL (Debian: apt-get install postgresql) or set\n\
         *  JPKI_PG_BIN to the directory holding initdb and postgres. CI has it.\n\
         ************************************************************************\n"
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
}

/// The uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

impl Cluster {
    /// Starts a cluster, or says loudly why not and returns `None` (binaries missing). Other
    /// failures (initdb or the server failing) are errors: a machine with PostgreSQL must run
    /// the tests.
    pub fn start(fsync: Fsync) -> io::Result<Option<Cluster>> {
        Cluster::start_with(fsync, Tcp::No)
    }

    /// As [`Cluster::start`], and listening on 127.0.0.1 (a free port) **without** TLS
    /// (`host … trust`): a server for checking that a client asking for TLS never falls back.
    pub fn start_plain_tcp(fsync: Fsync) -> io::Result<Option<Cluster>> {
        Cluster::start_with(fsync, Tcp::Plain)
    }

    /// As [`Cluster::start`], and listening on 127.0.0.1 (a free port, [`Cluster::port`])
    /// with TLS on, `cert_pem`/`key_pem` its server certificate and key; TCP clients get in
    /// over TLS only (`hostssl … trust`, no `host` line); the Unix socket stays plain.
    pub fn start_tls(fsync: Fsync, cert_pem: &str, key_pem: &str) -> io::Result<Option<Cluster>> {
        Cluster::start_with(fsync, Tcp::Tls(cert_pem, key_pem))
    }

    fn start_with(fsync: Fsync, tcp: Tcp) -> io::Result<Option<Cluster>> {
        let Some(bin) = binaries() else {
            skipped_banner("no initdb/postgres binaries found");
            return Ok(None);
        };
        let dir = tempfile::Builder::new().prefix("jpki-pg-").tempdir()?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("s");
        std::fs::create_dir(&socket_dir)?;
        // As root, run as `postgres` (initdb refuses root).
        let as_user = if std::fs::metadata(dir.path())?.uid() == 0 {
            let Some((uid, gid)) = postgres_user() else {
                skipped_banner("running as root and there is no `postgres` user to run as");
                return Ok(None);
            };
            for p in [dir.path(), &socket_dir] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
            }
            Some((uid, gid))
        } else {
            None
        };
        let command = |program: &str| command(&bin, as_user, dir.path(), program);
        let out = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("--locale=C")
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut port = 5432;
        let mut extra = Vec::new();
        if let Tcp::Plain = tcp {
            port = free_port()?;
            extra = vec!["listen_addresses=127.0.0.1".to_owned()];
        }
        if let Tcp::Tls(cert, key) = tcp {
            port = free_port()?;
            let (cert_file, key_file) =
                (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::write(&cert_file, cert)?;
            std::fs::write(&key_file, key)?;
            std::fs::set_permissions(
                &key_file,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )?;
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nlocal replication all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n",
            )?;
            if let Some((uid, gid)) = as_user {
                for p in [&cert_file, &key_file, &data.join("pg_hba.conf")] {
                    std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
                }
            }
            extra = vec![
                "listen_addresses=127.0.0.1".to_owned(),
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", cert_file.display()),
                format!("ssl_key_file={}", key_file.display()),
            ];
        }
        let child = spawn_server(
            &bin,
            as_user,
            dir.path(),
            &data,
            &socket_dir,
            fsync,
            port,
            &extra,
        )?;
        let mut cluster = Cluster {
            child,
            bin,
            as_user,
            fsync,
            data,
            socket_dir,
            port,
            extra,
            next_db: AtomicU64::new(0),
            dir,
        };
        cluster.wait_ready()?;
        Ok(Some(cluster))
    }

    /// A streaming-replication hot standby of this cluster: `pg_basebackup -R` from it into
    /// a new temporary directory, started on its own Unix socket. Read-only; it follows this
    /// cluster until this one stops.
    pub fn standby(&self) -> io::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("jpki-pg-standby-")
            .tempdir()?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("s");
        std::fs::create_dir(&socket_dir)?;
        if let Some((uid, gid)) = self.as_user {
            for p in [dir.path(), &socket_dir] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
            }
        }
        let out = command(&self.bin, self.as_user, dir.path(), "pg_basebackup")
            .arg("-D")
            .arg(&data)
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "--checkpoint=fast",
            ])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let child = spawn_server(
            &self.bin,
            self.as_user,
            dir.path(),
            &data,
            &socket_dir,
            self.fsync,
            5432,
            &[],
        )?;
        let mut standby = Cluster {
            child,
            bin: self.bin.clone(),
            as_user: self.as_user,
            fsync: self.fsync,
            data,
            socket_dir,
            port: 5432,
            extra: Vec::new(),
            next_db: AtomicU64::new(0),
            dir,
        };
        standby.wait_ready()?;
        Ok(standby)
    }

    /// Stops the server (a fast shutdown, SIGINT: clients are disconnected at once), keeping
    /// its data; [`Cluster::restart`] starts it again.
    pub fn stop(&mut self) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet.
        if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.child.wait()?;
        Ok(())
    }

    /// Starts the server again on the same data and socket (crash recovery runs first).
    pub fn restart(&mut self) -> io::Result<()> {
        self.child = spawn_server(
            &self.bin,
            self.as_user,
            self.dir.path(),
            &self.data,
            &self.socket_dir,
            self.fsync,
            self.port,
            &self.extra,
        )?;
        self.wait_ready()
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The URL of database `db` on this cluster (its Unix socket).
    pub fn url(&self, db: &str) -> String {
        let socket = percent_encode(&self.socket_dir.display().to_string());
        match self.port {
            5432 => format!("postgresql://postgres@{socket}/{db}"),
            port => format!("postgresql://postgres@{socket}:{port}/{db}"),
        }
    }

    /// The server's port: 5432 on its own socket directory, or the TCP port chosen by
    /// [`Cluster::start_tls`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the Unix-socket database URL `url` (from [`Cluster::database`]) over TCP to
    /// `host` (`127.0.0.1` or `localhost`) on this cluster's port, with `query` appended.
    pub fn tcp_url(&self, url: &str, host: &str, query: &str) -> String {
        let db = url.rsplit('/').next().unwrap_or_default();
        let url = format!("postgresql://postgres@{host}:{}/{db}", self.port);
        if query.is_empty() {
            url
        } else {
            format!("{url}?{query}")
        }
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "postgres exited ({status}) at start: {log}"
                )));
            }
            if socket.exists() && self.sql("postgres", "SELECT 1").is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(io::Error::other("postgres did not start within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs SQL on database `db` (a plain connection, outside any engine).
    pub fn sql(&self, db: &str, sql: &str) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let url = self.url(db);
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(io::Error::other)?;
            let task = tokio::spawn(conn);
            let r = client.batch_execute(sql).await.map_err(io::Error::other);
            drop(client);
            let _ = task.await;
            r
        })
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> io::Result<String> {
        let n = self.next_db.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        self.sql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL: immediate. The backends notice their postmaster is gone and exit; the
        // directory (with the shared-memory key file) goes with the TempDir.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` from the PostgreSQL binaries, run as `as_user` if given, in `cwd`.
fn command(bin: &Path, as_user: Option<(u32, u32)>, cwd: &Path, program: &str) -> Command {
    let mut c = Command::new(bin.join(program));
    if let Some((uid, gid)) = as_user {
        c.uid(uid).gid(gid);
    }
    c.current_dir(cwd);
    c
}

/// Whether a cluster listens on 127.0.0.1 too, and how.
enum Tcp<'a> {
    No,
    Plain,
    /// With this certificate and key (PEM), TLS only.
    Tls(&'a str, &'a str),
}

/// A TCP port free on 127.0.0.1 a moment ago (PostgreSQL cannot be given port 0).
fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Spawns `postgres` on `data`, listening on a Unix socket in `socket_dir` (and whatever
/// `extra` settings say: TLS on 127.0.0.1), logging to `dir/log` (appended: a restart keeps
/// the earlier log).
#[allow(clippy::too_many_arguments)]
fn spawn_server(
    bin: &Path,
    as_user: Option<(u32, u32)>,
    dir: &Path,
    data: &Path,
    socket_dir: &Path,
    fsync: Fsync,
    port: u16,
    extra: &[String],
) -> io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))?;
    let mut server = command(bin, as_user, dir, "postgres");
    server
        .arg("-D")
        .arg(data)
        .arg("-k")
        .arg(socket_dir)
        .args(["-c", "listen_addresses=", "-c", "max_connections=200"])
        .args(["-c", "shared_buffers=64MB"])
        .arg("-p")
        .arg(port.to_string());
    for setting in extra {
        server.arg("-c").arg(setting);
    }
    server
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if fsync == Fsync::Off {
        server.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
    }
    server.spawn()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The test binary's one cluster (`fsync=off`), started on first use and stopped when the
/// process exits; `None` (after the banner) where PostgreSQL is missing.
pub fn shared() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<&'static Cluster>> = OnceLock::new();
    *CLUSTER.get_or_init(|| {
        let cluster = Cluster::start(Fsync::Off)
            .unwrap_or_else(|e| panic!("cannot start a PostgreSQL cluster for the tests: {e}"))?;
        let cluster: &'static Cluster = Box::leak(Box::new(cluster));
        register_stop(cluster);
        Some(cluster)
    })
}

/// The shared cluster to stop at exit (statics are never dropped).
static AT_EXIT: Mutex<Option<usize>> = Mutex::new(None);

fn register_stop(cluster: &'static Cluster) {
    *AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()) = Some(cluster as *const Cluster as usize);
    extern "C" fn stop() {
        let ptr = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(p) = ptr {
            // SAFETY: the pointer came from `Box::leak` in `shared`, is taken out of AT_EXIT
            // once, and nothing uses the cluster after the process started exiting.
            let cluster = unsafe { Box::from_raw(p as *mut Cluster) };
            drop(cluster);
        }
    }
    // SAFETY: `stop` is a plain extern "C" function with no arguments, as atexit requires.
    unsafe {
        libc::atexit(stop);
    }
}
