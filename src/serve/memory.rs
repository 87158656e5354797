//! Giving memory back after a flood of connections (issue #19: resident memory went from
//! 34 MiB to 59 MiB under 10,000 idle connections and stayed there after they were closed).
//!
//! Why it stayed: every connection's buffers (hyper's read and write buffers, rustls' state,
//! the task) come from glibc malloc, spread over the per-thread arenas of tokio's workers.
//! When the connections close, the memory is free for malloc but not for the system: glibc
//! returns memory on its own only from the top of an arena, and only above a trim threshold
//! that it raises as larger blocks are freed; the free chunks in the middle of the arenas stay
//! resident. `malloc_trim(0)` walks every arena and hands their free pages back
//! (`madvise(MADV_DONTNEED)`), which is exactly what is missing, so `jpki serve` calls it
//! every [`TRIM_EVERY`] (a few milliseconds on a blocking thread for a heap of tens of MiB; it
//! frees nothing that is in use). A different allocator (jemalloc or mimalloc with a decay
//! time) would also return memory, at the price of a C dependency built with every jpki build;
//! measured, the trim alone brings the resident size back (RELIABILITY.md).
//!
//! `JPKI_TRIM_SECONDS` sets the period (0: never; for measuring without it). The arenas
//! themselves are capped at the number of cores ([`limit_arenas`], issue #14).

use std::time::Duration;

/// How often free memory is handed back to the system.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The period from `JPKI_TRIM_SECONDS`, else [`TRIM_EVERY`]; `None`: never.
pub fn period() -> Option<Duration> {
    match std::env::var("JPKI_TRIM_SECONDS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(s) => Some(Duration::from_secs(s)),
            Err(_) => {
                tracing::warn!(value = %v, "JPKI_TRIM_SECONDS is not a number of seconds; using the default");
                Some(TRIM_EVERY)
            }
        },
        Err(_) => Some(TRIM_EVERY),
    }
}

/// Hands free heap memory back to the system every `period` until `stop` resolves.
pub async fn trim_periodically(period: Duration, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    }
}

/// Caps glibc malloc's arenas at the number of cores (glibc's own cap is 8 per core on 64-bit),
/// before the server's threads start. Each arena keeps its own free chunks, so with tokio's
/// workers, its blocking pool and sled's threads spread over many arenas more freed memory stays
/// resident between trims; at most one thread per core runs at once, so more arenas than cores
/// buy little. Measured at 10^5 certificates after OCSP load: ~560 MiB resident with 2 arenas
/// (this 2-core machine) vs ~620 MiB with glibc's default (BENCHMARKS.md). `MALLOC_ARENA_MAX` in
/// the environment wins: glibc reads it itself, and it is not overridden here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes two integers and only changes malloc's tuning for arenas made
    // from now on; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// Other C libraries: nothing to do here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Returns free memory of every malloc arena to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim takes no pointer and only releases memory malloc holds free; it is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C libraries: nothing to do here (musl returns free memory by itself).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}
