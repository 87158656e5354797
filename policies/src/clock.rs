//! The one clock trait of jpki. Time comes from a [`Clock`] the caller passes in, so tests can
//! move it: the CA, the CRL publisher, the OCSP responder, the platform API and the `jpki`
//! command all take an `Arc<dyn Clock>` (`ca::clock`, `crl_publisher` and `ocsp_responder`
//! re-export these names).
//!
//! It lives here because every crate already depends on `policies`; it is the one place in
//! this crate that reads anything from outside (the system time), and only when asked.
//!
//! * [`SystemClock`] — the system's, truncated to whole seconds (certificates, CRLs and OCSP
//!   responses carry seconds, and a time read twice must compare equal to what was signed);
//! * [`FixedClock`] — stands still until [`FixedClock::set`] or [`FixedClock::advance`]: for
//!   tests, and for the CLI's `JPKI_TEST_NOW`;
//! * [`StartedClock`] — starts at a given instant and then runs with the system's monotonic
//!   clock, also in whole seconds: for the CLI's `JPKI_TEST_START`, when a test needs a
//!   server started at a chosen instant whose time still flows (CRLs go stale, nonces age).

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use time::{Duration, OffsetDateTime};

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// `t` without its fraction of a second.
fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// The system clock, truncated to whole seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        whole_seconds(OffsetDateTime::now_utc())
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    pub fn new(t: OffsetDateTime) -> FixedClock {
        FixedClock(Mutex::new(t))
    }

    pub fn set(&self, t: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = t;
    }

    pub fn advance(&self, d: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += d;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A clock that reads `start` when made and advances with real time from there (measured on
/// the monotonic clock, so a change of the system time does not move it), in whole seconds.
#[derive(Debug, Clone, Copy)]
pub struct StartedClock {
    start: OffsetDateTime,
    origin: Instant,
}

impl StartedClock {
    pub fn new(start: OffsetDateTime) -> StartedClock {
        StartedClock {
            start,
            origin: Instant::now(),
        }
    }
}

impl Clock for StartedClock {
    fn now(&self) -> OffsetDateTime {
        // An elapsed time beyond Duration's range (about 292 billion years) saturates.
        let elapsed = Duration::try_from(self.origin.elapsed()).unwrap_or(Duration::MAX);
        whole_seconds(self.start.saturating_add(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn system_clock_has_whole_seconds() {
        assert_eq!(SystemClock.now().nanosecond(), 0);
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = FixedClock::new(datetime!(2026-11-27 12:00:00.5 UTC));
        assert_eq!(c.now(), datetime!(2026-11-27 12:00:00.5 UTC));
        c.advance(Duration::hours(1));
        assert_eq!(c.now(), datetime!(2026-11-27 13:00:00.5 UTC));
        c.set(datetime!(2030-01-01 0:00 UTC));
        assert_eq!(c.now(), datetime!(2030-01-01 0:00 UTC));
    }

    #[test]
    fn started_clock_starts_at_the_instant_and_runs() {
        let start = datetime!(2030-01-01 0:00:00.75 UTC);
        let c = StartedClock::new(start);
        let first = c.now();
        assert_eq!(first.nanosecond(), 0);
        assert!(first >= datetime!(2030-01-01 0:00 UTC));
        assert!(first <= start + Duration::seconds(5));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(c.now() > first);
    }
}
