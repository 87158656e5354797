//! The JPKI PIN rules (reference §7): shapes, try limits, and the names the tools use.
//!
//! | Credential | Shape | Tries |
//! |---|---|---|
//! | Signing password (署名用パスワード) | 6–16 characters, A–Z and 0–9; input is upper-cased | 5 |
//! | User-authentication PIN (利用者証明用パスワード) | exactly 4 digits | 3 |
//!
//! The shape is checked before the token file is touched, so a PIN of the wrong shape never
//! spends a try — as the card's middleware refuses it before sending VERIFY.

use policies::Hierarchy;
use zeroize::Zeroizing;

use crate::Error;

/// How many wrong PINs in a row lock the key (reference §7).
pub fn max_tries(kind: Hierarchy) -> u8 {
    match kind {
        Hierarchy::Signing => 5,
        Hierarchy::Auth => 3,
    }
}

/// What the holder calls this credential, for messages and prompts.
pub fn pin_name(kind: Hierarchy) -> &'static str {
    match kind {
        Hierarchy::Signing => "signing password",
        Hierarchy::Auth => "authentication PIN",
    }
}

/// The rule a PIN of `kind` must follow, in words.
pub fn rule(kind: Hierarchy) -> &'static str {
    match kind {
        Hierarchy::Signing => "6 to 16 characters, letters A-Z and digits 0-9",
        Hierarchy::Auth => "exactly 4 digits",
    }
}

/// The other key of the card: the one whose PIN authorises a reset of `kind`.
pub fn other(kind: Hierarchy) -> Hierarchy {
    match kind {
        Hierarchy::Signing => Hierarchy::Auth,
        Hierarchy::Auth => Hierarchy::Signing,
    }
}

/// Checks the shape of `pin` for `kind` and returns the canonical form (the signing password
/// upper-cased, as the JPKI tools do). The copy is zeroized when dropped.
pub fn normalize(kind: Hierarchy, pin: &str) -> Result<Zeroizing<String>, Error> {
    let canonical = Zeroizing::new(match kind {
        Hierarchy::Signing => pin.to_ascii_uppercase(),
        Hierarchy::Auth => pin.to_owned(),
    });
    let ok = match kind {
        Hierarchy::Signing => {
            (6..=16).contains(&canonical.len())
                && canonical
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        }
        Hierarchy::Auth => canonical.len() == 4 && canonical.bytes().all(|b| b.is_ascii_digit()),
    };
    if ok {
        Ok(canonical)
    } else {
        Err(Error::PinShape { kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_password_shape() {
        assert_eq!(
            normalize(Hierarchy::Signing, "abc123").unwrap().as_str(),
            "ABC123"
        );
        assert!(normalize(Hierarchy::Signing, "ABCDEFGHIJ123456").is_ok());
        for bad in [
            "ABC12",
            "ABCDEFGHIJ1234567",
            "ABC-123",
            "ＡＢＣ１２３",
            "ABC 123",
            "",
        ] {
            assert!(
                matches!(
                    normalize(Hierarchy::Signing, bad),
                    Err(Error::PinShape { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn auth_pin_shape() {
        assert!(normalize(Hierarchy::Auth, "0123").is_ok());
        for bad in ["123", "12345", "12a4", "ABCD", "１２３４", ""] {
            assert!(normalize(Hierarchy::Auth, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tries_and_other() {
        assert_eq!(max_tries(Hierarchy::Signing), 5);
        assert_eq!(max_tries(Hierarchy::Auth), 3);
        assert_eq!(other(Hierarchy::Signing), Hierarchy::Auth);
        assert_eq!(other(Hierarchy::Auth), Hierarchy::Signing);
    }
}
