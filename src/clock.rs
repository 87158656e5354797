//! The clock of every `jpki` command and of `jpki serve`: the system's, unless a test sets
//!
//! * `JPKI_TEST_NOW=<RFC 3339>` — time stands still at that instant
//!   ([`policies::clock::FixedClock`]); or
//! * `JPKI_TEST_START=<RFC 3339>` — time starts at that instant when the process starts and
//!   runs on with real time, in whole seconds ([`policies::clock::StartedClock`]): for a
//!   server started "in the future" whose CRLs and OCSP answers must still age.
//!
//! `JPKI_TEST_NOW` wins when both are set. Never set either in production.
//!
//! A module of its own so that the command line ([`crate::cli`]) and the server
//! ([`crate::serve`]) both take the clock from here without importing each other.

use std::sync::Arc;

use ca::error::Error;
use policies::clock::{Clock, FixedClock, StartedClock, SystemClock};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::Result;

/// `var`'s value as an RFC 3339 time, if it is set.
fn env_time(var: &str) -> Result<Option<OffsetDateTime>> {
    match std::env::var(var) {
        Ok(t) => OffsetDateTime::parse(&t, &Rfc3339)
            .map(Some)
            .map_err(|_| Error::Invalid(format!("{var}: `{t}` is not an RFC 3339 time")).into()),
        Err(_) => Ok(None),
    }
}

/// The clock: `$JPKI_TEST_NOW`, else `$JPKI_TEST_START`, else the system's.
pub fn clock() -> Result<Arc<dyn Clock>> {
    if let Some(t) = env_time("JPKI_TEST_NOW")? {
        return Ok(Arc::new(FixedClock::new(t)));
    }
    if let Some(t) = env_time("JPKI_TEST_START")? {
        return Ok(Arc::new(StartedClock::new(t)));
    }
    Ok(Arc::new(SystemClock))
}
