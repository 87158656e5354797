//! Asking the holder for a PIN on the terminal, without echo (`rpassword`): what a command
//! line does when a PIN option is left out. New PINs are asked twice.

use policies::Hierarchy;
use zeroize::Zeroizing;

use crate::pin::{pin_name, rule};
use crate::Error;

/// `given`, or the PIN typed on the terminal after a prompt such as
/// `the signing password (6 to 16 characters, …): `; with `confirm` it is asked again
/// and the two must match ([`Error::PinMismatch`]).
pub fn pin(
    given: Option<String>,
    kind: Hierarchy,
    what: &str,
    confirm: bool,
) -> Result<Zeroizing<String>, Error> {
    if let Some(p) = given {
        return Ok(Zeroizing::new(p));
    }
    let prompt = format!("{what} {} ({}): ", pin_name(kind), rule(kind));
    let first = Zeroizing::new(rpassword::prompt_password(&prompt).map_err(Error::Prompt)?);
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password(format!("{what} {} again: ", pin_name(kind)))
                .map_err(Error::Prompt)?,
        );
        if *first != *again {
            return Err(Error::PinMismatch);
        }
    }
    Ok(first)
}
