//! Wake-ups for edges on the primary: LISTEN/NOTIFY on the revocation log.
//!
//! Every unit of work that appends to `revocation_log` also runs
//! `pg_notify('jpki_revocation_log', '')` in the same statement; PostgreSQL delivers the
//! notification when (and only if) the transaction commits, after its rows are visible, and
//! folds the duplicates of one transaction into one. [`PgStorage::revocation_wakeups`] opens a
//! **dedicated** connection (not one of the pool's: a pooled connection is handed to whoever
//! asks, and LISTEN belongs to a session), LISTENs on it, and wakes the caller at each
//! notification; the caller then reads `revocations_since` at once instead of at its next
//! poll.
//!
//! A notification carries nothing the caller relies on: it only says "read the log now". So
//! nothing is lost when one is missed. The caller keeps polling as its safety net; when the
//! listening connection breaks (server restart, network cut, a half-open TCP connection found
//! by the periodic ping), it is opened again with backoff (100 ms doubling to 5 s), and every
//! successful LISTEN wakes the caller once more so that what was committed while nobody
//! listened is read at once too.
//!
//! A hot standby cannot LISTEN (notifications are not replicated, and LISTEN is refused
//! during recovery): on a standby the listener says so ([`WakeupState::standby`]), wakes
//! nobody, and looks again every 10 s (a promoted standby becomes a primary); its edge keeps
//! polling.
//!
//! Why only this engine: sled is opened by one process at a time, and the in-memory engine
//! lives inside one, so there is never a second process to wake; in the one-process server
//! the CA refreshes its own OCSP cache after each status change. A trait method with "never"
//! as the answer for two of three engines would be an abstraction without a use.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Connection, Socket};

use crate::PgStorage;

/// The channel the revocation log's writers notify.
pub const CHANNEL: &str = "jpki_revocation_log";

/// First wait before opening the listening connection again; doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the listening connection is checked with a round trip (a half-open TCP
/// connection would otherwise wait for notifications forever).
const PING: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a standby is asked again whether it was promoted.
const STANDBY_RECHECK: Duration = Duration::from_secs(10);

/// What the listener knows (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WakeupState {
    /// A LISTEN is in place now.
    pub listening: bool,
    /// The server is a standby: nothing to listen to, the caller polls.
    pub standby: bool,
    /// Notifications received since start.
    pub notifications: u64,
    /// Times the listening connection was (re)opened and LISTEN succeeded.
    pub listens: u64,
    /// The last failure, while not listening.
    pub error: Option<String>,
}

/// A handle on the listener; dropping it stops the listener and closes its connection.
pub struct RevocationWakeups {
    notify: Arc<Notify>,
    state: Arc<Mutex<WakeupState>>,
    task: tokio::task::AbortHandle,
}

impl Drop for RevocationWakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RevocationWakeups {
    /// Resolves at the next notification or successful (re)LISTEN — at once if one came
    /// since the last call (one wake-up is kept). Can be awaited on any runtime.
    pub async fn wait(&self) {
        self.notify.notified().await
    }

    pub fn state(&self) -> WakeupState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl PgStorage {
    /// Starts listening for revocation-log appends (see the module docs). Non-blocking: the
    /// listener runs on the engine's runtime, connecting in the background.
    pub fn revocation_wakeups(&self) -> RevocationWakeups {
        let notify = Arc::new(Notify::new());
        let state = Arc::new(Mutex::new(WakeupState::default()));
        let config = self.target_config.clone();
        let tls = self.tls.clone();
        let task = self
            .rt()
            .spawn(listen_forever(
                config,
                tls,
                Arc::clone(&notify),
                Arc::clone(&state),
            ))
            .abort_handle();
        RevocationWakeups {
            notify,
            state,
            task,
        }
    }
}

/// How one listening session ended.
enum Ended {
    /// The server is a standby: look again later.
    Standby,
    Failed(String),
}

async fn listen_forever(
    mut config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    notify: Arc<Notify>,
    state: Arc<Mutex<WakeupState>>,
) {
    config.application_name("jpki-edge-listen");
    let mut backoff = BACKOFF_MIN;
    loop {
        let ended = match &tls {
            None => session(&config, tokio_postgres::NoTls, &notify, &state).await,
            Some(t) => session(&config, t.clone(), &notify, &state).await,
        };
        let wait = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let was_listening = s.listening;
            s.listening = false;
            match ended {
                Ended::Standby => {
                    s.standby = true;
                    s.error = None;
                    STANDBY_RECHECK
                }
                Ended::Failed(e) => {
                    s.standby = false;
                    if was_listening {
                        tracing::warn!(error = %e,
                            "the revocation-log LISTEN connection broke; reconnecting (polling continues)");
                        backoff = BACKOFF_MIN;
                    }
                    s.error = Some(e);
                    let w = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    w
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// One connection: connect, LISTEN (unless a standby), then forward notifications until the
/// connection ends or a ping fails.
async fn session<T>(
    config: &tokio_postgres::Config,
    tls: T,
    notify: &Notify,
    state: &Mutex<WakeupState>,
) -> Ended
where
    T: MakeTlsConnect<Socket>,
    T::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = match config.connect(tls).await {
        Ok(c) => c,
        Err(e) => return Ended::Failed(crate::chain(&e)),
    };
    let driver = drive(connection, notify, state);
    tokio::pin!(driver);
    // The driver must run while the client talks, so every step is raced against it.
    let setup = async {
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await?
            .get(0);
        if !standby {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        }
        Ok::<bool, tokio_postgres::Error>(standby)
    };
    let standby = tokio::select! {
        r = setup => match r {
            Ok(s) => s,
            Err(e) => return Ended::Failed(crate::chain(&e)),
        },
        end = &mut driver => return end,
    };
    if standby {
        return Ended::Standby;
    }
    {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.listening = true;
        s.standby = false;
        s.error = None;
        s.listens += 1;
    }
    // Anything committed before the LISTEN took effect: read the log now.
    notify.notify_one();
    loop {
        tokio::select! {
            end = &mut driver => return end,
            () = tokio::time::sleep(PING) => {
                match tokio::time::timeout(PING_TIMEOUT, ping(&client)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Ended::Failed(crate::chain(&e)),
                    Err(_) => return Ended::Failed(format!(
                        "no answer to a ping within {} s", PING_TIMEOUT.as_secs())),
                }
            }
        }
    }
}

async fn ping(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("SELECT 1").await
}

/// Polls the connection: wakes `notify` (the caller) at each notification on [`CHANNEL`];
/// returns when the connection ends.
async fn drive<S, T>(
    mut connection: Connection<S, T>,
    notify: &Notify,
    state: &Mutex<WakeupState>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .notifications += 1;
                notify.notify_one();
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ended::Failed(crate::chain(&e)),
            None => return Ended::Failed("the server closed the connection".into()),
        }
    }
}
