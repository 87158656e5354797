//! The safety catch of destructive commands (`resident death`, `resident card-renew`,
//! `revoke`, `revoke --batch`, `resident import`): `--dry-run` says what would be done and
//! changes nothing; otherwise, when a person is at a terminal (stdin and stderr are both
//! terminals), the command says what it is about to do and asks `[y/N]` on stderr. `--yes`
//! skips the question, and so does running without a terminal (scripts, cron, pipes): a
//! question nobody can answer would only hang them.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use ca::error::Error;

use crate::Result;

/// `--dry-run` and `--yes`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Confirm {
    /// Say what would be done (the revocations and holds the rule demands) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation at a terminal (it is never asked without one).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Whether a confirmation would be asked: a person at a terminal and no `--yes`.
pub fn will_ask(yes: bool) -> bool {
    !yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question [y/N]` when [`will_ask`]; anything but `y`/`yes` cancels with an error
/// saying that nothing was changed.
pub fn ask(yes: bool, what: &str) -> Result<()> {
    if !will_ask(yes) {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{what}\nProceed? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(Error::io("read the answer"))?;
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Error::Invalid("cancelled at the prompt; nothing was changed".into()).into()),
    }
}
