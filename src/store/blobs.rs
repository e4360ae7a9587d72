//! Content-addressed blob files: `<data dir>/blobs/ab/cd/abcd…` named by sha256.
//!
//! Raw mail and attachments live as files rather than in SQLite so the database stays small
//! and quick to back up, a 50 MB attachment never passes through a SQLite page cache, and the
//! same attachment sent twice is stored once. A blob is written to a temporary file, flushed to
//! disk and renamed into place *before* the database row that names it commits: a crash in
//! between leaves at worst an unreferenced file, never a row without its bytes.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl BlobDir {
    pub fn new(root: PathBuf) -> BlobDir {
        BlobDir { root }
    }

    pub fn path_of(&self, sha: &str) -> PathBuf {
        let a = sha.get(0..2).unwrap_or("xx");
        let b = sha.get(2..4).unwrap_or("xx");
        self.root.join(a).join(b).join(sha)
    }

    /// Writes `bytes` durably and returns their sha256. Idempotent: an existing blob of the
    /// same hash and size is left as it is.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = sha256_hex(bytes);
        let path = self.path_of(&sha);
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.len() == bytes.len() as u64
        {
            return Ok(sha);
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{sha}.{}.tmp", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(&dir);
        Ok(sha)
    }

    pub fn get(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path_of(sha))
    }
}

/// Makes a rename durable. Best effort: not every filesystem lets a directory be fsynced.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let root = std::env::temp_dir().join(format!("shenbao-blobs-{}", std::process::id()));
        let b = BlobDir::new(root.clone());
        let sha = b.put(b"hello").expect("put");
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(b.put(b"hello").expect("again"), sha);
        assert_eq!(b.get(&sha).expect("get"), b"hello");
        assert!(b.path_of(&sha).starts_with(root.join("2c").join("f2")));
        let _ = std::fs::remove_dir_all(root);
    }
}
