//! # conn-guard — connection discipline for jpki's listeners
//!
//! A hostile client must not starve a server by opening connections and sending nothing
//! (issue #19 measured 20,600 idle sockets taking the public listener to 0 % success). Every
//! listener of `jpki serve` (public HTTP, the platform-operator API, the admin socket) admits a
//! connection only through a [`Gate`] and serves it through [`Idle`]:
//!
//! * **caps** — at most [`Limits::max_per_client`] open connections per client address (one
//!   over it is closed at once, before any TLS or HTTP work) and about
//!   [`Limits::max_connections`] per listener: when a listener is full, a new connection takes
//!   the place of the one that has been quiet the longest (evicted), so a flood from many
//!   addresses cannot hold every place against a well-behaved client. When every open
//!   connection has spoken (or, where requests are reported, had a request in flight) within
//!   [`MIN_QUIET`] — a flood opening connections faster than the listener's places turn over,
//!   as on a host with few descriptors — a newcomer from an address holding at least two
//!   connections fewer than the heaviest address takes the place of that address's quietest
//!   connection without a request in flight (its fair share); any other newcomer is refused;
//! * **idle timeout** — a connection from which nothing has been read for [`Limits::idle`] is
//!   closed: a socket that never sends a byte, an HTTP/1.1 keep-alive connection left open, an
//!   HTTP/2 connection with no stream (a client that sent only the preface). Partial requests
//!   are cut sooner by hyper's header timeout; this covers the silence around them. An HTTP
//!   server that reports its requests ([`Ticket::requests`]) also has a connection closed
//!   when no request has been in flight for the idle time, however much else it reads: an
//!   HTTP/2 client answering the server's keep-alive pings (or sending its own, or window
//!   updates) without ever asking anything does not keep its place.
//! * **descriptors in reserve** — [`Limits::fitted`] shrinks the caps to what the process's
//!   descriptor limit allows after keeping [`RESERVED_FDS`] for the store, CRL files and the
//!   admin socket, so a flood up to the caps never makes `accept` or the store fail.
//!
//! Only tokio, which every server here already uses: no other dependency.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Descriptors kept out of the listeners' reach: the store (sled's files, the journal), CRL
/// files being written, the admin socket and its clients, the runtime's own.
pub const RESERVED_FDS: usize = 256;

/// A connection that has sent something this recently is never evicted for a newcomer.
pub const MIN_QUIET: Duration = Duration::from_millis(500);

/// What one listener admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one client address at most.
    pub max_per_client: usize,
    /// A connection from which nothing has been read for this long is closed.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            max_per_client: 256,
            idle: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// These limits shrunk so that `listeners` listeners at their caps fit in `fd_limit`
    /// descriptors with [`RESERVED_FDS`] kept back (at least one connection each).
    pub fn fitted(self, fd_limit: usize, listeners: usize) -> Limits {
        let room = fd_limit.saturating_sub(RESERVED_FDS) / listeners.max(1);
        let max_connections = self.max_connections.min(room).max(1);
        Limits {
            max_connections,
            max_per_client: self.max_per_client.min(max_connections),
            idle: self.idle,
        }
    }
}

/// Admission to one listener: counts open connections, in all and per client address.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    open: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
    evicted: AtomicU64,
    /// The open connections' watches, to pick whom to evict when full.
    conns: Mutex<HashMap<u64, Arc<Heard>>>,
    next_id: AtomicU64,
}

/// An admitted connection's place at its [`Gate`]; dropping it frees the place. Serve the
/// connection's I/O through [`Ticket::io`] and stop serving it when [`Ticket::closing`]
/// resolves (silent for the idle time, or evicted for a newcomer).
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    client: Option<IpAddr>,
    id: u64,
    heard: Arc<Heard>,
}

impl Gate {
    pub fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            open: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A place for a connection from `client` (`None`: a local socket, counted in all only),
    /// or `None` when it must be closed: its address is at [`Limits::max_per_client`], or the
    /// listener is full and every open connection spoke within [`MIN_QUIET`]. When the
    /// listener is full, the connection quiet the longest is evicted to make room.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Option<Ticket> {
        let refuse = || {
            self.refused.fetch_add(1, Ordering::Relaxed);
            None
        };
        if let Some(ip) = client {
            let mut per = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let n = per.entry(ip).or_insert(0);
            if *n >= self.limits.max_per_client {
                return refuse();
            }
            *n += 1;
        }
        let full = self
            .open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limits.max_connections).then_some(n + 1)
            })
            .is_err();
        if full {
            if self.evict_quietest() || self.evict_for_share(client) {
                self.open.fetch_add(1, Ordering::SeqCst);
            } else {
                self.release_client(client);
                return refuse();
            }
        }
        let heard = Arc::new(Heard::new(client));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&heard));
        Some(Ticket {
            gate: Arc::clone(self),
            client,
            id,
            heard,
        })
    }

    /// Evicts the open connection that has been quiet the longest, if it has been quiet for
    /// at least [`MIN_QUIET`] and is not being evicted already; says whether it did.
    fn evict_quietest(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let quietest = conns
            .values()
            .filter(|h| !h.evicted.load(Ordering::SeqCst))
            .map(|h| (h.quiet(), h))
            .max_by_key(|(quiet, _)| *quiet);
        match quietest {
            Some((quiet, h)) if quiet >= MIN_QUIET => {
                h.evicted.store(true, Ordering::SeqCst);
                h.evict.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// When no connection is quiet enough to evict: a newcomer from `client` takes the place of
    /// a connection of the address holding the most open connections, if that address holds at
    /// least two more than `client` does — its quietest connection without a request in
    /// flight. So a flood from a few addresses cannot keep a lighter client out by opening
    /// connections faster than [`MIN_QUIET`] turns the places over. Says whether it evicted.
    fn evict_for_share(&self, client: Option<IpAddr>) -> bool {
        let Some(newcomer) = client else { return false };
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let live = || conns.values().filter(|h| !h.evicted.load(Ordering::SeqCst));
        let mut held: HashMap<IpAddr, usize> = HashMap::new();
        for ip in live().filter_map(|h| h.client) {
            *held.entry(ip).or_insert(0) += 1;
        }
        let mine = held.get(&newcomer).copied().unwrap_or(0);
        let Some((heaviest, n)) = held.into_iter().max_by_key(|(_, n)| *n) else {
            return false;
        };
        if n < mine + 2 {
            return false;
        }
        let victim = live()
            .filter(|h| h.client == Some(heaviest) && !h.busy())
            .max_by_key(|h| h.quiet());
        match victim {
            Some(h) => {
                h.evicted.store(true, Ordering::SeqCst);
                h.evict.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn release_client(&self, client: Option<IpAddr>) {
        if let Some(ip) = client {
            let mut per = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per.remove(&ip);
                }
            }
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections refused at a cap since the gate was made.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections evicted to make room for newcomers since the gate was made.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

impl Ticket {
    /// The connection's I/O, noting when something is read from the client.
    pub fn io<T>(&self, inner: T) -> Idle<T> {
        Idle {
            inner,
            heard: Arc::clone(&self.heard),
        }
    }

    /// Resolves when the connection must be closed: nothing read for the listener's idle
    /// time, no request for that long (if the server reports them, [`Ticket::requests`]), or
    /// evicted for a newcomer.
    pub async fn closing(&self) {
        let idle = self.gate.limits.idle;
        tokio::select! {
            () = self.heard.silent_for(idle) => {}
            () = self.heard.no_request_for(idle) => {}
            () = self.heard.evict.notified() => {}
        }
    }

    /// The connection's requests, for a server to report each one's start and end
    /// ([`Requests::begin`]); from then on a connection with no request in flight for the idle
    /// time is closed even if it keeps sending other frames.
    pub fn requests(&self) -> Requests {
        self.heard.tracked.store(true, Ordering::SeqCst);
        Requests(Arc::clone(&self.heard))
    }
}

/// Reports a connection's requests to its [`Ticket`] (see [`Ticket::requests`]).
#[derive(Debug, Clone)]
pub struct Requests(Arc<Heard>);

impl Requests {
    /// A request starts; it is in flight until the returned guard is dropped.
    pub fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        self.0.request_seen();
        InFlight(Arc::clone(&self.0))
    }
}

/// A request in flight on its connection; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<Heard>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_seen();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.gate.release_client(self.client);
        self.gate.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's I/O that notes when something was last read from the client.
#[derive(Debug)]
pub struct Idle<T> {
    inner: T,
    heard: Arc<Heard>,
}

/// When a connection last read something, shared between its [`Idle`] and its watch.
#[derive(Debug)]
pub struct Heard {
    /// The client's address, if the connection has one (for the fair-share eviction).
    client: Option<IpAddr>,
    start: Instant,
    /// Milliseconds from `start` to the last read that returned data.
    last_ms: AtomicU64,
    /// Signalled when the connection is evicted for a newcomer.
    evict: tokio::sync::Notify,
    evicted: std::sync::atomic::AtomicBool,
    /// Whether the server reports requests ([`Ticket::requests`]).
    tracked: std::sync::atomic::AtomicBool,
    /// Requests begun and not yet ended.
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the last start or end of a request.
    last_request_ms: AtomicU64,
}

impl Heard {
    fn new(client: Option<IpAddr>) -> Heard {
        Heard {
            client,
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            evict: tokio::sync::Notify::new(),
            evicted: std::sync::atomic::AtomicBool::new(false),
            tracked: std::sync::atomic::AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_request_ms: AtomicU64::new(0),
        }
    }

    /// A request is in flight (the server reports requests).
    fn busy(&self) -> bool {
        self.tracked.load(Ordering::SeqCst) && self.in_flight.load(Ordering::SeqCst) > 0
    }

    fn request_seen(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_request_ms.fetch_max(ms, Ordering::SeqCst);
    }

    /// How long the connection has been without a request in flight, if requests are
    /// reported; zero otherwise.
    fn without_request(&self) -> Duration {
        if !self.tracked.load(Ordering::SeqCst) || self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_request_ms.load(Ordering::SeqCst));
        self.start.elapsed().saturating_sub(last)
    }

    /// Resolves once requests are reported and none has been in flight for `idle` (a
    /// request in flight puts the check off by up to `idle`).
    async fn no_request_for(&self, idle: Duration) {
        loop {
            let quiet = self.without_request();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }

    /// How quiet the connection is, for eviction: the time without a request in flight if the
    /// server reports requests (a slowloris client sending a header byte at a time is quiet:
    /// it never completes a request), else the time since anything was read.
    fn quiet(&self) -> Duration {
        if self.tracked.load(Ordering::SeqCst) {
            self.without_request()
        } else {
            self.since_last()
        }
    }

    fn since_last(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing has been read for `idle`.
    pub async fn silent_for(&self, idle: Duration) {
        loop {
            let quiet = self.since_last();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

impl<T> Idle<T> {
    /// Wraps `inner`; the returned [`Heard`] resolves [`Heard::silent_for`] when the client
    /// has gone quiet.
    pub fn new(inner: T) -> (Idle<T>, Arc<Heard>) {
        let heard = Arc::new(Heard::new(None));
        (
            Idle {
                inner,
                heard: Arc::clone(&heard),
            },
            heard,
        )
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let ms = u64::try_from(self.heard.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.heard.last_ms.store(ms, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn caps_hold_in_all_and_per_client_and_places_come_back() {
        let g = Gate::new(Limits {
            max_connections: 3,
            max_per_client: 2,
            idle: Duration::from_secs(1),
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let t1 = g.admit(Some(a)).unwrap();
        let _t2 = g.admit(Some(a)).unwrap();
        assert!(g.admit(Some(a)).is_none(), "third from one client");
        let _t3 = g.admit(Some(b)).unwrap();
        assert!(g.admit(Some(b)).is_none(), "over the listener's cap");
        assert!(g.admit(None).is_none());
        assert_eq!((g.open(), g.refused()), (3, 3));
        drop(t1);
        assert_eq!(g.open(), 2);
        let _t4 = g.admit(Some(a)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_listener_evicts_its_quietest_connection_for_a_newcomer() {
        let g = Gate::new(Limits {
            max_connections: 2,
            max_per_client: 2,
            idle: Duration::from_secs(60),
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let quiet = g.admit(Some(a)).unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let talking = g.admit(Some(a)).unwrap();
        // Full, but the first has been quiet for 2 s: it makes room for a newcomer.
        let (mut client, server) = tokio::io::duplex(16);
        let mut io = talking.io(server);
        client.write_all(b"x").await.unwrap();
        io.read_exact(&mut [0u8; 1]).await.unwrap();
        let newcomer = g.admit(Some(b)).expect("the quietest is evicted");
        tokio::time::timeout(Duration::from_millis(1), quiet.closing())
            .await
            .expect("the evicted connection is told to close");
        assert_eq!(g.evicted(), 1);
        drop(quiet);
        assert_eq!(g.open(), 2);
        // Everyone spoke within MIN_QUIET: a further newcomer is refused, nobody evicted.
        assert!(g.admit(Some(b)).is_none());
        assert_eq!((g.evicted(), g.refused()), (1, 1));
        drop((talking, newcomer));
        assert_eq!(g.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lighter_client_gets_a_place_from_a_fast_flood_a_flooder_does_not() {
        let g = Gate::new(Limits {
            max_connections: 4,
            max_per_client: 4,
            idle: Duration::from_secs(60),
        });
        let flood: IpAddr = "127.0.1.1".parse().unwrap();
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        // A flood from one address fills the listener faster than MIN_QUIET: nobody is quiet.
        let mut held: Vec<Ticket> = (0..3).map(|_| g.admit(Some(flood)).unwrap()).collect();
        let busy = g.admit(Some(client)).unwrap();
        let _in_flight = busy.requests().begin();
        // The flood's own newcomer is refused (the per-address cap aside: no quiet connection,
        // and its address is the heaviest).
        drop(held.pop());
        held.push(g.admit(Some(flood)).unwrap());
        assert!(g.admit(Some(flood)).is_none(), "the flooder is refused");
        assert_eq!(g.evicted(), 0);
        // A client holding fewer gets a place: one of the flood's connections is evicted.
        let second = g.admit(Some(client)).expect("a lighter client gets in");
        assert_eq!(g.evicted(), 1);
        let mut told = 0;
        for t in &held {
            if tokio::time::timeout(Duration::from_millis(1), t.closing())
                .await
                .is_ok()
            {
                told += 1;
            }
        }
        assert_eq!(told, 1, "exactly one flood connection is told to close");
        tokio::time::timeout(Duration::from_millis(1), busy.closing())
            .await
            .expect_err("the client's connection with a request in flight is kept");
        // Once the evicted one is closed: flood 2, client 2, nobody two heavier than the
        // client, so its next newcomer is refused.
        let evicted = held
            .iter()
            .position(|t| t.heard.evicted.load(Ordering::SeqCst))
            .unwrap();
        drop(held.remove(evicted));
        assert_eq!(g.open(), 4);
        assert!(g.admit(Some(client)).is_none(), "no more than a fair share");
        assert_eq!(g.evicted(), 1);
        drop(second);
    }

    #[test]
    fn limits_fit_the_descriptor_limit() {
        let l = Limits::default().fitted(1024, 3);
        assert_eq!(l.max_connections, (1024 - RESERVED_FDS) / 3);
        assert!(l.max_per_client <= l.max_connections);
        assert_eq!(Limits::default().fitted(100, 3).max_connections, 1);
        assert_eq!(Limits::default().fitted(1 << 20, 1), Limits::default());
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_noticed_and_reading_puts_it_off() {
        let (client, server) = tokio::io::duplex(64);
        let (mut io, heard) = Idle::new(server);
        let mut client = client;
        let idle = Duration::from_secs(10);
        // Data read within the window puts the deadline off.
        tokio::time::advance(Duration::from_secs(6)).await;
        client.write_all(b"GET").await.unwrap();
        let mut b = [0u8; 3];
        io.read_exact(&mut b).await.unwrap();
        let t0 = tokio::time::Instant::now();
        heard.silent_for(idle).await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(9) && waited <= Duration::from_secs(11),
            "{waited:?}"
        );
        // Writing to the client is not hearing from it.
        io.write_all(b"HTTP").await.unwrap();
        tokio::time::timeout(Duration::from_millis(1), heard.silent_for(idle))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_is_closed_however_much_it_sends() {
        let idle = Duration::from_secs(10);
        let gate = Gate::new(Limits {
            idle,
            ..Limits::default()
        });
        let ticket = gate.admit(None).unwrap();
        let (client, server) = tokio::io::duplex(64);
        let (mut client, mut io) = (client, ticket.io(server));
        let requests = ticket.requests();
        // something read every 3 s (pings answered), no request: closed after the idle time
        let chatter = async {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                client.write_all(b"p").await.unwrap();
                let mut b = [0u8; 1];
                io.read_exact(&mut b).await.unwrap();
            }
        };
        let t0 = tokio::time::Instant::now();
        tokio::select! {
            () = chatter => unreachable!(),
            () = ticket.closing() => {}
        }
        assert!(
            t0.elapsed() <= Duration::from_secs(11),
            "{:?}",
            t0.elapsed()
        );
        // a request in flight keeps it (while it reads), and the idle time runs from its end
        let in_flight = requests.begin();
        let chatter = async {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                client.write_all(b"p").await.unwrap();
                let mut b = [0u8; 1];
                io.read_exact(&mut b).await.unwrap();
            }
        };
        tokio::select! {
            () = chatter => unreachable!(),
            () = ticket.closing() => panic!("closed with a request in flight"),
            () = tokio::time::sleep(Duration::from_secs(25)) => {}
        }
        drop(in_flight);
        let t0 = tokio::time::Instant::now();
        let chatter = async {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                client.write_all(b"p").await.unwrap();
                let mut b = [0u8; 1];
                io.read_exact(&mut b).await.unwrap();
            }
        };
        tokio::select! {
            () = chatter => unreachable!(),
            () = ticket.closing() => {}
        }
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(9) && waited <= Duration::from_secs(11),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_talker_that_never_completes_a_request_is_evicted_one_with_a_request_is_not() {
        let g = Gate::new(Limits {
            max_connections: 2,
            max_per_client: 2,
            idle: Duration::from_secs(60),
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let busy = g.admit(Some(a)).unwrap();
        let _in_flight = busy.requests().begin();
        let loris = g.admit(Some(a)).unwrap();
        let _ = loris.requests();
        tokio::time::advance(Duration::from_secs(2)).await;
        // the slowloris client has just sent a header byte; the busy one has sent nothing
        let (mut client, server) = tokio::io::duplex(16);
        let mut io = loris.io(server);
        client.write_all(b"x").await.unwrap();
        io.read_exact(&mut [0u8; 1]).await.unwrap();
        let _newcomer = g
            .admit(Some("127.0.0.3".parse().unwrap()))
            .expect("the slowloris connection makes room");
        tokio::time::timeout(Duration::from_millis(1), loris.closing())
            .await
            .expect("the slowloris connection is evicted");
        tokio::time::timeout(Duration::from_millis(1), busy.closing())
            .await
            .expect_err("the connection with a request in flight is kept");
    }
}
