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
}
