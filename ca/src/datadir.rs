//! Paths inside a data directory (`jpki init` makes it; mode 0700, files 0600).

use std::path::PathBuf;

use policies::Hierarchy;

/// A data directory: `policy.toml`, `db/` (the store), `keys/`, `certs/`.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub dir: PathBuf,
}

impl DataDir {
    pub fn new(dir: impl Into<PathBuf>) -> DataDir {
        DataDir { dir: dir.into() }
    }
    pub fn policy(&self) -> PathBuf {
        self.dir.join("policy.toml")
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join("db")
    }
    pub fn key(&self, h: Hierarchy, what: &str) -> PathBuf {
        self.named_key(&format!("{h}-{what}"))
    }
    pub fn named_key(&self, name: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{name}.key"))
    }
    pub fn cert(&self, h: Hierarchy, what: &str) -> PathBuf {
        self.dir.join("certs").join(format!("{h}-{what}.pem"))
    }
    /// The key file of a root generation: `keys/<h>-root.key` for the first (what `jpki
    /// init` always wrote), `keys/<h>-root-g<N>.key` for each later one.
    pub fn root_key(&self, h: Hierarchy, generation: u32) -> PathBuf {
        self.key(h, &root_name(generation))
    }
    /// The certificate file of a root generation: `certs/<h>-root.pem` for the first,
    /// `certs/<h>-root-g<N>.pem` for each later one.
    pub fn root_cert(&self, h: Hierarchy, generation: u32) -> PathBuf {
        self.cert(h, &root_name(generation))
    }
    /// Every generation's root certificate of a hierarchy in one PEM file, oldest first: the
    /// trust anchors a relying party installs (`certs/<h>-roots.pem`).
    pub fn roots_bundle(&self, h: Hierarchy) -> PathBuf {
        self.cert(h, "roots")
    }
}

fn root_name(generation: u32) -> String {
    if generation <= 1 {
        "root".to_owned()
    } else {
        format!("root-g{generation}")
    }
}

/// What [`DataDir::make_private`] tightened: entries that group or others could reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tightened {
    /// How many files and directories had group or other permission bits.
    pub entries: usize,
    /// The first of them and its mode before, to name in the warning.
    pub first: Option<(PathBuf, u32)>,
}

impl DataDir {
    /// Makes the data directory private by construction: every directory below it 0700 and
    /// every file 0600 (the resident register, keys and journal must not be readable by other
    /// local users, whatever umask or copy made them). Returns what was tightened, so the
    /// caller can say so; refuses a directory this user does not own, since its owner could
    /// loosen it again. Symbolic links are neither followed nor changed; sockets are left as
    /// they are (the admin socket is made 0600 by the server).
    pub fn make_private(&self) -> crate::Result<Tightened> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let me = std::fs::metadata(&self.dir)
            .map_err(crate::Error::io(format!("inspect {}", self.dir.display())))?;
        let uid = current_uid();
        if me.uid() != uid {
            return Err(crate::Error::Invalid(format!(
                "data directory {} belongs to uid {}, not to this user (uid {uid}): refusing to use it",
                self.dir.display(),
                me.uid()
            )));
        }
        let mut out = Tightened::default();
        let mut stack = vec![self.dir.clone()];
        while let Some(path) = stack.pop() {
            // An entry listed by `read_dir` may be gone by now: a running server renames or
            // removes its temporary files (a compaction's `journal.tmp`, an atomic write's
            // temporary) while a command starts. What is gone cannot be readable by others.
            let Some(m) = present(std::fs::symlink_metadata(&path))
                .map_err(crate::Error::io(format!("inspect {}", path.display())))?
            else {
                continue;
            };
            let ft = m.file_type();
            let want = if ft.is_dir() {
                0o700
            } else if ft.is_file() {
                0o600
            } else {
                continue;
            };
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                let set =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & want));
                if present(set)
                    .map_err(crate::Error::io(format!("make {} private", path.display())))?
                    .is_none()
                {
                    continue;
                }
                out.entries += 1;
                out.first.get_or_insert((path.clone(), mode));
            }
            if ft.is_dir() {
                let Some(entries) = present(std::fs::read_dir(&path))
                    .map_err(crate::Error::io(format!("read {}", path.display())))?
                else {
                    continue;
                };
                for e in entries {
                    stack.push(
                        e.map_err(crate::Error::io(format!("read {}", path.display())))?
                            .path(),
                    );
                }
            }
        }
        Ok(out)
    }
}

/// `Ok(None)` for what is not there (any more); other errors as they are.
fn present<T>(r: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The effective user id of this process: the owner of the files it creates.
fn current_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// Replaces `path` atomically with `bytes`, mode 0600: a temporary file beside it
/// (`<path>.tmp`), fsynced, renamed over it, then the directory fsynced — a crash leaves the
/// old contents or the new, never a mix.
pub fn replace_private(path: &std::path::Path, bytes: &[u8]) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(crate::Error::io(format!("create {}", tmp.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(crate::Error::io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(crate::Error::io(format!("write {}", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(crate::Error::io(format!("sync {}", dir.display())))
}

/// Creates `path` with mode 0600 and fsyncs it; refuses to overwrite.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(crate::Error::io(format!("create {}", path.display())))?;
    f.write_all(bytes)
        .map_err(crate::Error::io(format!("write {}", path.display())))?;
    f.sync_all()
        .map_err(crate::Error::io(format!("sync {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replace_private_replaces_whole_files_0600_and_leaves_no_temporary() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("tally.json");
        replace_private(&p, b"first").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace_private(&p, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second, longer");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
        // A directory that is not there: an error naming the file, nothing made.
        let e = replace_private(&t.path().join("no/such.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("no/such.json.tmp"), "{e}");
    }

    #[test]
    fn an_entry_that_vanished_is_skipped_and_other_errors_kept() {
        let t = tempfile::tempdir().unwrap();
        let gone = t.path().join("journal.tmp");
        assert!(present(std::fs::symlink_metadata(&gone)).unwrap().is_none());
        assert!(present(std::fs::read_dir(&gone)).unwrap().is_none());
        std::fs::write(&gone, b"x").unwrap();
        assert!(present(std::fs::symlink_metadata(&gone)).unwrap().is_some());
        // Not a directory: an error, not "gone".
        assert!(present(std::fs::read_dir(&gone)).is_err());
    }

    #[test]
    fn a_readable_data_directory_is_made_private_and_said_so() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("data");
        std::fs::create_dir_all(dir.join("db/sled")).unwrap();
        std::fs::write(dir.join("db/sled/conf"), b"x").unwrap();
        std::fs::write(dir.join("policy.toml"), b"y").unwrap();
        for (p, m) in [
            (dir.clone(), 0o755),
            (dir.join("db"), 0o755),
            (dir.join("db/sled"), 0o750),
            (dir.join("db/sled/conf"), 0o644),
            (dir.join("policy.toml"), 0o600),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        let d = DataDir::new(&dir);
        let t1 = d.make_private().unwrap();
        assert_eq!(t1.entries, 4, "{t1:?}");
        assert_eq!(t1.first.as_ref().map(|(_, m)| *m), Some(0o755));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o700);
        assert_eq!(mode(&dir.join("db/sled")), 0o700);
        assert_eq!(mode(&dir.join("db/sled/conf")), 0o600);
        assert_eq!(mode(&dir.join("policy.toml")), 0o600);
        // Already private: nothing to say.
        assert_eq!(d.make_private().unwrap(), Tightened::default());
    }
}
