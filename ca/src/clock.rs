//! Time comes from a clock the caller passes in, so tests can move it. The clock is
//! `policies::clock`, shared by every jpki crate; this path is kept for the authority's callers.

pub use policies::clock::{Clock, FixedClock, StartedClock, SystemClock};
