//! `jpki crl status`: every CRL partition's state — its last CRL (number, age, entries, size,
//! nextUpdate), whether a revocation is waiting to be published (dirty), the file it is served
//! from and its URL — and where the whole set was last exported by `jpki crl publish --out`.
//!
//! The same answer in-process (no server) and from a running `jpki serve` through its admin
//! socket (`{"op":"crl-status"}`, answered by the server's own publisher), so that it shows
//! what the server is doing. `jpki crl publish` records its last export in
//! `DIR/crl-exports.json` (0600), which both read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Error, Result};

/// The admin-socket operation.
pub const OP: &str = "crl-status";

/// `DIR/crl-exports.json`.
fn exports_file(data: &Path) -> PathBuf {
    data.join("crl-exports.json")
}

/// The last `jpki crl publish --out DIR`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Export {
    pub dir: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub crls: usize,
    pub entries: u64,
}

/// Records an export (atomically: a temporary file renamed over the old one).
pub fn record_export(data: &Path, export: &Export) -> Result<()> {
    let path = exports_file(data);
    let tmp = data.join(".crl-exports.json.tmp");
    let text = serde_json::to_vec(&serde_json::json!({ "last": export }))
        .map_err(|e| Error::Serve(e.to_string()))?;
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::Serve(format!("record the export in {}: {e}", path.display())))
}

fn last_export(data: &Path) -> Option<Export> {
    let text = std::fs::read(exports_file(data)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    serde_json::from_value(v["last"].clone()).ok()
}

/// The status (see the module docs), as one JSON object: `{"crls": [...], "dirty": n,
/// "served_from": DIR, "last_export": {...}|null, "server": bool}`.
pub fn status(
    authority: &ca::Authority,
    publisher: &crl_publisher::Publisher,
    crl_dir: &Path,
    server: bool,
    now: OffsetDateTime,
) -> Result<serde_json::Value> {
    let status = publisher
        .status(now)
        .map_err(|e| Error::Serve(format!("CRL status: {e}")))?;
    let dirty = authority.storage().dirty_partitions()?;
    let base = authority
        .policy()
        .ca
        .base_url
        .trim_end_matches('/')
        .to_owned();
    let time = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let rows: Vec<serde_json::Value> = status
        .iter()
        .map(|s| {
            let file = crl_publisher::Publisher::file_name(s.hierarchy, s.generation, &s.scope);
            serde_json::json!({
                "hierarchy": s.hierarchy,
                "generation": s.generation,
                "partition": crl_publisher::scope_name(&s.scope),
                "number": s.published.as_ref().map(|p| p.number),
                "age_seconds": s.age.map(|a| a.whole_seconds()),
                "entries": s.published.as_ref().map(|p| p.entries),
                "size": s.published.as_ref().map(|p| p.size),
                "this_update": s.published.as_ref().map(|p| time(p.this_update)),
                "next_update": s.published.as_ref().map(|p| time(p.next_update)),
                "dirty": dirty
                    .iter()
                    .any(|(h, g, sc)| *h == s.hierarchy && *g == s.generation && *sc == s.scope),
                "file": crl_dir.join(&file).display().to_string(),
                "url": format!("{base}/crl/{file}"),
            })
        })
        .collect();
    let n_dirty = rows.iter().filter(|r| r["dirty"] == true).count();
    Ok(serde_json::json!({
        "server": server,
        "served_from": crl_dir.display().to_string(),
        "dirty": n_dirty,
        "crls": rows,
        "last_export": last_export(authority.dir()),
    }))
}
