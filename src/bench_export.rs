//! `jpki bench export`: writes what the OCSP benchmark (bench/scale/ocsp.sh) needs from a
//! benchmark store, in one pass over it: every authentication and signing certificate's serial
//! (`auth.serials`, `signing.serials`: hex, one a line) and an `openssl ocsp -index` database
//! of the authentication certificates with their statuses (`index.txt` + `.attr`), so that the
//! peer answers for the same certificates.
//!
//! Read-only ([`crate::store::open_read_only`] on sled): it changes nothing in the store and
//! needs no passphrase. Streams the certificates ([`ca::storage::Storage::for_each_certificate`])
//! and reads each one's status; memory holds one line at a time. It replaces paging through
//! `jpki cert list` (one process, one store opening and the full JSON of 10,000 certificates
//! per page: ~20 minutes at 10^6 on a loaded machine).

use std::io::{BufWriter, Write};
use std::path::Path;

use ca::records::{CertKind, State};
use policies::Reason;
use time::OffsetDateTime;

use crate::Result;

/// What was written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exported {
    pub auth: u64,
    pub signing: u64,
    pub revoked_or_held: u64,
}

/// `openssl ca`'s index time: `YYMMDDHHMMSSZ` (UTC).
fn index_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year().rem_euclid(100),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The reason names `openssl ocsp -index` reads (apps/ca.c `crl_reasons`).
fn openssl_reason(r: Option<Reason>) -> &'static str {
    match r {
        None | Some(Reason::Unspecified) => "unspecified",
        Some(Reason::KeyCompromise) => "keyCompromise",
        Some(Reason::CaCompromise) => "CACompromise",
        Some(Reason::AffiliationChanged) => "affiliationChanged",
        Some(Reason::Superseded) => "superseded",
        Some(Reason::CessationOfOperation) => "cessationOfOperation",
        Some(Reason::CertificateHold) => "certificateHold",
        Some(Reason::RemoveFromCrl) => "removeFromCRL",
        // Not in openssl's list: the nearest it can state.
        Some(Reason::PrivilegeWithdrawn) | Some(Reason::AaCompromise) => "unspecified",
    }
}

fn create(dir: &Path, name: &str) -> ca::Result<BufWriter<std::fs::File>> {
    let path = dir.join(name);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(ca::Error::io(format!("create {}", path.display())))?;
    Ok(BufWriter::new(f))
}

/// Exports the store in `data` into the directory `out` (which must exist).
pub fn run(data: &Path, out: &Path) -> Result<Exported> {
    if !out.is_dir() {
        return Err(ca::Error::Invalid(format!("--out {}: not a directory", out.display())).into());
    }
    let a = crate::store::open_read_only(
        data,
        None,
        std::sync::Arc::new(policies::clock::SystemClock),
    )?;
    let mut auth = create(out, "auth.serials")?;
    let mut signing = create(out, "signing.serials")?;
    let mut index = create(out, "index.txt")?;
    let mut n = Exported::default();
    let store = a.storage().clone();
    store.for_each_certificate(&mut |c| {
        let serial = hex::encode_upper(&c.serial);
        match c.kind {
            CertKind::Signing => {
                writeln!(signing, "{serial}").map_err(ca::Error::io("write signing.serials"))?;
                n.signing += 1;
            }
            CertKind::Auth => {
                writeln!(auth, "{serial}").map_err(ca::Error::io("write auth.serials"))?;
                n.auth += 1;
                let status = store.status(c.hierarchy, &c.serial)?;
                let expiry = index_time(c.not_after);
                let line = match status {
                    Some(s) if s.state != State::Good => {
                        n.revoked_or_held += 1;
                        let reason = if s.state == State::Held {
                            "certificateHold"
                        } else {
                            openssl_reason(s.reason)
                        };
                        let at = index_time(s.since.unwrap_or(c.not_before));
                        format!("R\t{expiry}\t{at},{reason}\t{serial}\tunknown\t/CN={serial}")
                    }
                    _ => format!("V\t{expiry}\t\t{serial}\tunknown\t/CN={serial}"),
                };
                writeln!(index, "{line}").map_err(ca::Error::io("write index.txt"))?;
            }
            _ => {}
        }
        Ok(())
    })?;
    for (name, mut w) in [
        ("auth.serials", auth),
        ("signing.serials", signing),
        ("index.txt", index),
    ] {
        w.flush().map_err(ca::Error::io(format!("write {name}")))?;
    }
    std::fs::write(out.join("index.txt.attr"), "unique_subject = no\n")
        .map_err(ca::Error::io("write index.txt.attr"))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_times_and_reasons_are_in_openssl_form() {
        let t = OffsetDateTime::from_unix_timestamp(1_924_959_599).unwrap(); // 2030-12-31T14:59:59Z
        assert_eq!(index_time(t), "301231145959Z");
        assert_eq!(openssl_reason(Some(Reason::CaCompromise)), "CACompromise");
        assert_eq!(openssl_reason(None), "unspecified");
    }

    #[test]
    fn a_missing_output_directory_is_refused_by_name() {
        let e = run(
            Path::new("/nonexistent-data"),
            Path::new("/nonexistent-out"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent-out"), "{e}");
    }
}
