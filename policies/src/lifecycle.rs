//! Resident-register events and the revocations their rules demand (reference §4 table,
//! LAW Art. 12; §8 for emigrants).
//!
//! | event | signing | auth |
//! |---|---|---|
//! | move, rename, correction of any of the four attributes | revoked, affiliationChanged | kept |
//! | death | revoked, cessationOfOperation | revoked, cessationOfOperation |
//! | emigration | revoked at the departure date, affiliationChanged | kept |
//! | card renewal | revoked, superseded | revoked, superseded |
//! | card lost | certificateHold | certificateHold |
//! | lost card found | held → revoked, cessationOfOperation (never released) | same |
//! | holder's request | revoked, cessationOfOperation | revoked, cessationOfOperation |
//!
//! The reason codes for death and a found card are inferences (the J-LIS mapping PDF could
//! not be read, reference §4); the rest follow J-LIS's CPS meanings.

use serde::{Deserialize, Serialize};

use crate::{Hierarchy, Reason};

/// What happened to a resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Move,
    Rename,
    Correct,
    Death,
    Emigrate,
    CardRenew,
    CardLost,
    CardFound,
    /// The holder asks for a certificate to be revoked.
    Withdraw,
}

/// What an event does to the holder's live certificates of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Revoke with this reason (a held certificate is revoked too).
    Revoke(Reason),
    /// Put on hold (certificateHold); never released for card certificates.
    Hold,
    /// Revoke only certificates currently on hold.
    RevokeHeld(Reason),
}

impl EventKind {
    /// The action the rule demands for certificates of `kind`, or `None` when they stay.
    pub fn action(self, kind: Hierarchy) -> Option<Action> {
        use Hierarchy::*;
        match (self, kind) {
            (
                EventKind::Move | EventKind::Rename | EventKind::Correct | EventKind::Emigrate,
                Signing,
            ) => Some(Action::Revoke(Reason::AffiliationChanged)),
            (
                EventKind::Move | EventKind::Rename | EventKind::Correct | EventKind::Emigrate,
                Auth,
            ) => None,
            (EventKind::Death | EventKind::Withdraw, _) => {
                Some(Action::Revoke(Reason::CessationOfOperation))
            }
            (EventKind::CardRenew, _) => Some(Action::Revoke(Reason::Superseded)),
            (EventKind::CardLost, _) => Some(Action::Hold),
            (EventKind::CardFound, _) => Some(Action::RevokeHeld(Reason::CessationOfOperation)),
        }
    }

    /// Whether the event changes one of the four attributes written in signing certificates.
    pub fn changes_attributes(self) -> bool {
        matches!(
            self,
            EventKind::Move | EventKind::Rename | EventKind::Correct | EventKind::Emigrate
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Move => "move",
            EventKind::Rename => "rename",
            EventKind::Correct => "correct",
            EventKind::Death => "death",
            EventKind::Emigrate => "emigrate",
            EventKind::CardRenew => "card-renew",
            EventKind::CardLost => "card-lost",
            EventKind::CardFound => "card-found",
            EventKind::Withdraw => "withdraw",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_changes_revoke_only_the_signing_certificate() {
        for e in [
            EventKind::Move,
            EventKind::Rename,
            EventKind::Correct,
            EventKind::Emigrate,
        ] {
            assert_eq!(
                e.action(Hierarchy::Signing),
                Some(Action::Revoke(Reason::AffiliationChanged))
            );
            assert_eq!(e.action(Hierarchy::Auth), None);
            assert!(e.changes_attributes());
        }
    }

    #[test]
    fn death_renewal_and_loss_touch_both() {
        for h in Hierarchy::ALL {
            assert_eq!(
                EventKind::Death.action(h),
                Some(Action::Revoke(Reason::CessationOfOperation))
            );
            assert_eq!(
                EventKind::CardRenew.action(h),
                Some(Action::Revoke(Reason::Superseded))
            );
            assert_eq!(EventKind::CardLost.action(h), Some(Action::Hold));
            assert_eq!(
                EventKind::CardFound.action(h),
                Some(Action::RevokeHeld(Reason::CessationOfOperation))
            );
        }
    }
}
