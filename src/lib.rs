//! # jpki — the command line and the one-process server
//!
//! The `jpki` binary (`src/main.rs`, a thin main) calls [`cli::main`]. This package is where
//! the components meet: the authority ([`ca`]), the holder token, the CRL publisher, the
//! OCSP responder and the relying-party verifier. Keeping the wiring here, rather than in
//! `ca`, lets each component stay a library that knows nothing of the others (the design's
//! dependency direction), while the CLI and `jpki serve` see all of them.
//!
//! * [`cli`] — argument parsing and printing, for every component (the library crates have
//!   no command-line parser); every CA operation goes through [`ca::api::Request`],
//!   in-process or over a running server's admin socket;
//! * [`clock`] — the clock of the commands and the server (`JPKI_TEST_NOW`,
//!   `JPKI_TEST_START`); `serve` — `jpki serve`;
//! * `demo` — `jpki demo`, the whole story; `bench` — `jpki bench …`;
//! * [`store`] — which storage engine a data directory uses (sled, or PostgreSQL through
//!   the `storage-postgres` crate) and `jpki store migrate`.
//!
//! ## Dependencies
//! * `clap` (derive) for the command line of every component (PIN prompts come from
//!   `holder_token::prompt`), `tracing-subscriber` for logs on stderr,
//!   `indicatif` for progress, `rcgen` for the demo's and benchmark's stand-in holders.

mod bench;
mod bench_evidence;
mod bench_export;
mod bench_nodes;
mod bench_populate;
pub mod cli;
pub mod clock;
mod demo;
pub mod serve;
pub mod store;
pub mod timestamp;

/// What can go wrong in a `jpki` command: an error of the component that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Ca(#[from] ca::Error),
    #[error(transparent)]
    Token(#[from] holder_token::Error),
    #[error(transparent)]
    Verify(#[from] relying_party::Error),
    #[error(transparent)]
    Platform(#[from] platform::Error),
    /// A bad `jpki serve` configuration; the message names the field.
    #[error("{0}")]
    Config(String),
    /// The server could not start or run (a port in use, a socket that cannot be made).
    #[error("{0}")]
    Serve(String),
    /// A relying-party verification ended in an invalid verdict.
    #[error("{0}")]
    Verdict(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
