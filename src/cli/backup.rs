//! `jpki store backup --out FILE` and `jpki store restore FILE --data DIR`.
//!
//! **Backup.** The store (sled) is copied by the process that owns it — this one, or a running
//! `jpki serve` through its admin socket ([`ca::api::Request::StoreBackup`]) — as a snapshot at
//! one journal position plus the journal records committed while the snapshot was written
//! (commits pause only while that tail is copied; see `ca::storage::Storage::backup`). The copy
//! is therefore the store exactly as of one commit, whatever ran meanwhile. The rest of the data
//! directory (policy, encrypted keys, certificates, officers' files …) is added as it is on disk;
//! the lock file, the admin socket and sled's own files are not (the store is rebuilt from the
//! snapshot and journal when the copy is first opened). The archive is a tar file (the `tar`
//! crate: a format every operating system reads, so a backup can be inspected without jpki),
//! ending with `jpki-backup.json`: the format, the time, the store positions and the SHA-256 of
//! every file. It is written to `FILE.partial`, fsynced and renamed: a FILE that exists is whole.
//! Keys stay encrypted as they are at rest; the archive is 0600.
//!
//! **Restore** unpacks into a data directory that does not exist or is empty (never over a
//! store, live or not), checks every file against the manifest, opens the store (which rebuilds
//! its tables), verifies the audit chain and the indexes, and removes what it made if anything
//! fails.
//!
//! A PostgreSQL store is backed up with the database's tools (`pg_dump`; docs/store.md); these
//! commands refuse it. The in-memory engine has nothing to back up.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use ca::error::Error;
use ca::officers::Actor;

use super::{open_local, print, when, Cli};
use crate::Result;

/// The manifest's name inside the archive.
const MANIFEST: &str = "jpki-backup.json";
/// The archive format this version writes and reads.
const FORMAT: u32 = 1;

/// `jpki-backup.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// What the store's copy holds.
    pub store: ca::storage::Backup,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(Error::io(format!("read {}", path.display())))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(Error::io(format!("read {}", path.display())))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    Ok((size, hex::encode(ctx.finish().as_ref())))
}

/// The data directory's files that go into a backup besides the store: every regular file
/// except the store's directory (`db/`, copied consistently instead), locks and sockets.
fn data_files(data: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), data.to_path_buf())];
    while let Some((rel, dir)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(Error::io(format!("read {}", dir.display())))?;
        for e in entries {
            let e = e.map_err(Error::io(format!("read {}", dir.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let ft = e
                .file_type()
                .map_err(Error::io(format!("inspect {}", path.display())))?;
            if rel == "db" || name == "store.lock" || name.ends_with(".sock") {
                continue;
            }
            if ft.is_dir() {
                stack.push((rel, path));
            } else if ft.is_file() {
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `jpki store backup --out FILE`.
pub fn backup(cli: &Cli, out: &Path, json: bool) -> Result<()> {
    if crate::store::configured_url(&cli.data)?.is_some() {
        return Err(Error::Invalid(
            "this data directory's store is in PostgreSQL: back it up with pg_dump, and the data directory's files with any file backup (docs/store.md)".into(),
        )
        .into());
    }
    if !cli.data.join("policy.toml").exists() {
        return Err(Error::NoDataDir(cli.data.display().to_string()).into());
    }
    if out.exists() {
        return Err(Error::Invalid(format!(
            "{} exists; refusing to overwrite a file (give a new name)",
            out.display()
        ))
        .into());
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .map_err(Error::io(format!("find {}", parent.display())))?;
    let stage = tempfile::Builder::new()
        .prefix(".jpki-backup-")
        .tempdir_in(&parent)
        .map_err(Error::io(format!(
            "create a staging directory in {}",
            parent.display()
        )))?;
    let db = stage.path().join("db");
    let req = ca::api::Request::StoreBackup { to: db.clone() };
    let answer = match open_local(cli)? {
        Some(a) => a.handle_as(&Actor::root_on_host(), req)?,
        None => ca::api::call_remote(&cli.data, &req)?,
    };
    let store: ca::storage::Backup = super::typed(answer)?;

    let mut files: Vec<(String, PathBuf)> = data_files(&cli.data)?;
    for name in ["snapshot", "journal"] {
        let p = db.join(name);
        if p.exists() {
            files.push((format!("db/{name}"), p));
        }
    }
    let mut manifest = Manifest {
        format: FORMAT,
        created: crate::clock::clock()?.now(),
        store,
        files: Vec::new(),
    };
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let written = (|| -> Result<()> {
        let file =
            File::create(&partial).map_err(Error::io(format!("create {}", partial.display())))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        tar.mode(tar::HeaderMode::Deterministic);
        for (rel, path) in &files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o600);
            h.set_entry_type(tar::EntryType::Regular);
            let (size, sha256) = if rel.starts_with("db/") {
                // The store's copy (this command's own, unchanging): streamed.
                let (size, sha256) = sha256_file(path)?;
                let f = File::open(path).map_err(Error::io(format!("read {}", path.display())))?;
                h.set_size(size);
                tar.append_data(&mut h, rel, f.take(size))
                    .map_err(Error::io(format!("write {}", partial.display())))?;
                (size, sha256)
            } else {
                // A small file a running server may replace meanwhile (a CRL, a renewed
                // signer's key): read once, so that what is hashed is what is archived.
                let bytes =
                    std::fs::read(path).map_err(Error::io(format!("read {}", path.display())))?;
                let sha256 = hex::encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    &bytes,
                ));
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, rel, bytes.as_slice())
                    .map_err(Error::io(format!("write {}", partial.display())))?;
                (bytes.len() as u64, sha256)
            };
            manifest.files.push(FileEntry {
                path: rel.clone(),
                size,
                sha256,
            });
        }
        let text =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, MANIFEST, text.as_slice())
            .map_err(Error::io(format!("write {}", partial.display())))?;
        let w = tar
            .into_inner()
            .map_err(Error::io(format!("write {}", partial.display())))?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(format!("write {}", partial.display()))(e.into_error()))?;
        f.sync_all()
            .map_err(Error::io(format!("sync {}", partial.display())))?;
        std::fs::rename(&partial, out)
            .map_err(Error::io(format!("rename to {}", out.display())))?;
        File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(format!("sync {}", parent.display())))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let summary = serde_json::json!({
        "out": out.display().to_string(),
        "created": when(manifest.created),
        "files": manifest.files.len(),
        "store": manifest.store,
    });
    print(json, &summary, |_| {
        format!(
            "backed up {} to {}: {} files, the store as of journal position {}",
            cli.data.display(),
            out.display(),
            manifest.files.len(),
            manifest.store.last
        )
    })
}

/// Whether a restore may write into `data`: it does not exist, or is an empty directory.
fn check_target(data: &Path) -> Result<bool> {
    match std::fs::read_dir(data) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("inspect {}", data.display()))(e).into()),
        Ok(mut entries) => {
            if entries.next().is_some() {
                let what = if data.join("db").exists() || data.join("store.toml").exists() {
                    "holds a store"
                } else {
                    "is not empty"
                };
                Err(Error::Invalid(format!(
                    "{} {what}; restore only into a new or empty directory (never over a store, live or not)",
                    data.display()
                ))
                .into())
            } else {
                Ok(false)
            }
        }
    }
}

/// `jpki store restore FILE --data DIR`.
pub fn restore(file: &Path, data: &Path, json: bool) -> Result<()> {
    let created = check_target(data)?;
    let archive = File::open(file).map_err(Error::io(format!("open {}", file.display())))?;
    if created {
        std::fs::create_dir_all(data).map_err(Error::io(format!("create {}", data.display())))?;
    }
    let done = (|| -> Result<serde_json::Value> {
        let mut tar = tar::Archive::new(std::io::BufReader::new(archive));
        let mut manifest: Option<Manifest> = None;
        let mut unpacked: Vec<String> = Vec::new();
        let bad = |m: String| Error::Invalid(format!("{}: {m}", file.display()));
        for entry in tar
            .entries()
            .map_err(|e| bad(format!("not a jpki backup: {e}")))?
        {
            let mut entry = entry.map_err(|e| bad(format!("damaged archive: {e}")))?;
            let rel = entry
                .path()
                .map_err(|e| bad(format!("damaged archive: {e}")))?
                .to_string_lossy()
                .into_owned();
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(bad(format!("unexpected entry {rel} (not a file)")).into());
            }
            if rel == MANIFEST {
                let mut text = Vec::new();
                entry
                    .read_to_end(&mut text)
                    .map_err(|e| bad(format!("damaged archive: {e}")))?;
                manifest = Some(
                    serde_json::from_slice(&text)
                        .map_err(|e| bad(format!("{MANIFEST} is not readable: {e}")))?,
                );
                continue;
            }
            // `unpack_in` refuses paths that leave the directory (`..`, absolute).
            let inside = entry
                .unpack_in(data)
                .map_err(|e| bad(format!("cannot unpack {rel}: {e}")))?;
            if !inside {
                return Err(
                    bad(format!("entry {rel} would land outside the data directory")).into(),
                );
            }
            unpacked.push(rel);
        }
        let manifest = manifest
            .ok_or_else(|| bad(format!("no {MANIFEST}: not a jpki backup, or cut short")))?;
        if manifest.format != FORMAT {
            return Err(bad(format!(
                "backup format {} (this jpki reads {FORMAT})",
                manifest.format
            ))
            .into());
        }
        for f in &manifest.files {
            if !unpacked.contains(&f.path) {
                return Err(bad(format!("{} is listed but missing", f.path)).into());
            }
            let (size, sha256) = sha256_file(&data.join(&f.path))?;
            if size != f.size || sha256 != f.sha256 {
                return Err(bad(format!("{} does not match its checksum: damaged", f.path)).into());
            }
        }
        if let Some(extra) = unpacked
            .iter()
            .find(|u| !manifest.files.iter().any(|f| &f.path == *u))
        {
            return Err(bad(format!("{extra} is not in the manifest")).into());
        }
        // Opening rebuilds the tables from the snapshot and the journal; then every check.
        let a = crate::store::open(data, None, crate::clock::clock()?)?;
        let verified = a.handle_as(&Actor::root_on_host(), ca::api::Request::AuditVerify)?;
        Ok(serde_json::json!({
            "data": data.display().to_string(),
            "backup_created": when(manifest.created),
            "files": manifest.files.len(),
            "store": manifest.store,
            "audit_records": verified["records"],
            "certificates_checked": verified["certificates_checked"],
        }))
    })();
    match done {
        Ok(v) => print(json, &v, |v| {
            format!(
                "restored {} into {}: {} files, audit chain intact ({} records), {} certificates checked",
                file.display(),
                data.display(),
                v["files"],
                v["audit_records"],
                v["certificates_checked"]
            )
        }),
        Err(e) => {
            // Leave nothing half-restored: what this command made goes.
            if created {
                let _ = std::fs::remove_dir_all(data);
            } else if let Ok(entries) = std::fs::read_dir(data) {
                for e in entries.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
            Err(e)
        }
    }
}
