//! Content-addressed blob files: `<data dir>/blobs/ab/abcd…` named by sha256.
//!
//! One level of 256 directories, as git does: a second level (`ab/cd/`) would give each of the
//! first few thousand blobs a directory of its own, and creating and syncing a directory per
//! file cost more than the file (measured by the benchmark). Blobs written by earlier versions
//! under `ab/cd/` are still found.
//!
//! Raw mail and attachments live as files rather than in SQLite so the database stays small
//! and quick to back up, a 50 MB attachment never passes through a SQLite page cache, and the
//! same attachment sent twice is stored once. A blob is written to a temporary file, flushed to
//! disk and renamed into place *before* the database row that names it commits: a crash in
//! between leaves at worst an unreferenced file, never a row without its bytes.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers temporary files, so no two writers in this process ever share one.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

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
        self.root.join(sha.get(0..2).unwrap_or("xx")).join(sha)
    }

    /// Where versions before 0.2 put a blob.
    fn old_path_of(&self, sha: &str) -> PathBuf {
        let a = sha.get(0..2).unwrap_or("xx");
        let b = sha.get(2..4).unwrap_or("xx");
        self.root.join(a).join(b).join(sha)
    }

    /// Writes `bytes` durably and returns their sha256. Idempotent: an existing blob of the
    /// same hash and size is left as it is.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let (sha, staged) = self.stage(bytes)?;
        if let Some(staged) = staged {
            publish(vec![staged])?;
        }
        Ok(sha)
    }

    /// Writes `bytes` to a temporary file beside their final place, not yet flushed nor
    /// named: [`publish`] does that for many blobs at once. `None` when the blob exists.
    pub fn stage(&self, bytes: &[u8]) -> std::io::Result<(String, Option<Staged>)> {
        let sha = sha256_hex(bytes);
        let staged = self.stage_as(&sha, bytes)?;
        Ok((sha, staged))
    }

    /// [`BlobDir::stage`] for bytes whose sha256 the caller has already computed (an
    /// attachment's, by `message::understand`), so an attachment is hashed once: sha256 was
    /// 3–4% of the daemon's CPU in the benchmark's profile.
    pub fn stage_as(&self, sha: &str, bytes: &[u8]) -> std::io::Result<Option<Staged>> {
        let path = self.path_of(sha);
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.len() == bytes.len() as u64
        {
            return Ok(None);
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        if !dir.is_dir() {
            crate::fsmode::create_dir_all(&dir)?;
        }
        // Unique per call: two messages prepared at once may carry the same attachment.
        let tmp = dir.join(format!(
            ".{sha}.{}.{}.tmp",
            std::process::id(),
            NEXT_TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let mut staged = Staged {
            file: None,
            tmp,
            path,
        };
        let mut f = crate::fsmode::create_new(&staged.tmp)?;
        f.write_all(bytes)?;
        staged.file = Some(f);
        Ok(Some(staged))
    }

    pub fn get(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        match std::fs::read(self.path_of(sha)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::read(self.old_path_of(sha)).map_err(|_| e)
            }
            r => r,
        }
    }

    /// The blob's file opened for reading (where this or an earlier version put it), to
    /// stream it without holding it in memory (the board's downloads).
    pub fn open(&self, sha: &str) -> std::io::Result<std::fs::File> {
        match std::fs::File::open(self.path_of(sha)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(self.old_path_of(sha)).map_err(|_| e)
            }
            r => r,
        }
    }

    /// Starts a blob whose bytes arrive piece by piece (a large mail fetched in parts): it is
    /// hashed as it is written, so the whole never has to be in memory at once.
    pub fn writer(&self) -> std::io::Result<BlobWriter> {
        crate::fsmode::create_dir_all(&self.root)?;
        let tmp = self.root.join(format!(
            ".incoming.{}.{}.tmp",
            std::process::id(),
            NEXT_TMP.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(BlobWriter {
            file: crate::fsmode::create_new(&tmp)?,
            tmp,
            hasher: Sha256::new(),
            len: 0,
            blobs: self.clone(),
        })
    }
}

/// A blob being written in parts; [`BlobWriter::finish`] makes it durable under its hash.
/// Dropped unfinished, it removes its temporary file.
pub struct BlobWriter {
    file: std::fs::File,
    tmp: PathBuf,
    hasher: Sha256,
    len: u64,
    blobs: BlobDir,
}

impl BlobWriter {
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.file.write_all(bytes)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flushes, names the file by its sha256 and returns (sha256, size).
    pub fn finish(mut self) -> std::io::Result<(String, u64)> {
        self.file.sync_all()?;
        let sha = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let path = self.blobs.path_of(&sha);
        let dir = path.parent().unwrap_or(&self.blobs.root).to_path_buf();
        crate::fsmode::create_dir_all(&dir)?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == self.len => std::fs::remove_file(&self.tmp)?,
            _ => {
                std::fs::rename(&self.tmp, &path)?;
                sync_dir(&dir);
            }
        }
        // Renamed or removed: nothing left for Drop to clean up.
        self.tmp = PathBuf::new();
        Ok((sha, self.len))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A blob in its temporary file ([`BlobDir::stage`]). Dropped unpublished, it removes the file.
pub struct Staged {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Makes staged blobs durable and puts each under its name, in the order that keeps a crash
/// harmless: every file's bytes on disk, then the renames, then the directories flushed. A
/// crash before the end leaves temporary files or complete blobs no row names yet.
///
/// Flushing file by file costs one journal commit each (two, with the directory): on the
/// benchmark's ext4 that was a fifth of the daemon's CPU, and the intake's slowest step. So
/// writeback of every file starts first (`sync_file_range` on Linux); the flushes that follow
/// then mostly find their journal transaction committed by the first, and so do the
/// directories after the renames.
pub fn publish(mut staged: Vec<Staged>) -> std::io::Result<()> {
    if staged.is_empty() {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    for s in &staged {
        if let Some(f) = &s.file {
            start_writeback(f);
        }
    }
    for s in &mut staged {
        if let Some(f) = s.file.take() {
            f.sync_data()?;
        }
    }
    let mut dirs = Vec::new();
    for s in &mut staged {
        std::fs::rename(&s.tmp, &s.path)?;
        // Renamed: nothing left for Drop to remove.
        s.tmp = PathBuf::new();
        if let Some(dir) = s.path.parent()
            && !dirs.iter().any(|d: &PathBuf| d == dir)
        {
            dirs.push(dir.to_path_buf());
        }
    }
    for dir in &dirs {
        sync_dir(dir);
    }
    Ok(())
}

/// Asks the kernel to start writing a file's dirty pages now, without waiting.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor belongs to `f`, open for the whole call; the call only reads it.
    // Advisory: a failure here shows again, and is reported, by the fsync that follows.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Makes a rename durable. Best effort: not every filesystem lets a directory be fsynced.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

// The `blobs` table: which files of the blob directory rows may name.
impl super::Store {
    /// Writes bytes durably to the blob directory (outside any transaction: the file must
    /// exist before a row names it, and fsync should not hold the write lock).
    pub async fn write_blob(&self, bytes: &[u8]) -> super::Result<String> {
        let blobs = self.blobs.clone();
        let owned = bytes.to_vec();
        let sha = tokio::task::spawn_blocking(move || blobs.put(&owned))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(sha)
    }

    /// Records a blob written by [`super::Store::write_blob`] (the row may already exist).
    pub(super) async fn record_blob(
        &self,
        conn: super::Conn<'_>,
        sha: &str,
        size: usize,
        now: chrono::DateTime<chrono::Utc>,
    ) -> super::Result<()> {
        on_conn!(conn, |c| {
            sqlx::query(
            "INSERT INTO blobs (sha256, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(sha)
        .bind(size as i64)
        .bind(crate::store::db_time(now))
        .execute(c)
        .await?
        .rows_affected()
        });
        Ok(())
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
        assert_eq!(b.path_of(&sha), root.join("2c").join(&sha));
        // A blob where an earlier version put it (blobs/2c/f2/…) is still read.
        let old = b.old_path_of(&sha256_hex(b"old"));
        std::fs::create_dir_all(old.parent().expect("parent")).expect("mkdir");
        std::fs::write(&old, b"old").expect("write");
        assert_eq!(b.get(&sha256_hex(b"old")).expect("old get"), b"old");
        // Opened for streaming, in either place; a blob never written is not found.
        let read = |sha: &str| {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut b.open(sha).expect("open"), &mut v).expect("read");
            v
        };
        assert_eq!(read(&sha), b"hello");
        assert_eq!(read(&sha256_hex(b"old")), b"old");
        let missing = b.open(&sha256_hex(b"never")).expect_err("missing");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let _ = std::fs::remove_dir_all(root);
    }

    fn tmp_files(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in std::fs::read_dir(root).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if f.file_name().to_string_lossy().ends_with(".tmp") {
                    out.push(f.path());
                }
            }
        }
        out
    }

    #[test]
    fn staged_blobs_appear_only_when_published() {
        let root = std::env::temp_dir().join(format!("shenbao-blobs-st-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let b = BlobDir::new(root.clone());
        let (one, s1) = b.stage(b"one").expect("stage");
        let (two, s2) = b.stage(b"two").expect("stage");
        // The same bytes twice in one batch (two messages with one attachment): both staged,
        // each under its own temporary name.
        let (again, s3) = b.stage(b"one").expect("stage");
        assert_eq!(again, one);
        let staged: Vec<Staged> = [s1, s2, s3].into_iter().flatten().collect();
        assert_eq!(staged.len(), 3);
        assert_eq!(tmp_files(&root).len(), 3);
        assert!(b.get(&one).is_err(), "not readable before publish");
        publish(staged).expect("publish");
        assert_eq!(b.get(&one).expect("one"), b"one");
        assert_eq!(b.get(&two).expect("two"), b"two");
        assert!(tmp_files(&root).is_empty());
        // Already there: nothing to stage.
        assert!(b.stage(b"two").expect("stage").1.is_none());
        // Staged and dropped (the message failed before its transaction): no file is left and
        // no blob appears.
        let (three, s) = b.stage(b"three").expect("stage");
        assert!(s.is_some());
        drop(s);
        assert!(tmp_files(&root).is_empty());
        assert!(b.get(&three).is_err());
        publish(Vec::new()).expect("nothing to publish");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_blob_written_in_parts_is_the_blob_of_its_bytes() {
        let root = std::env::temp_dir().join(format!("shenbao-blobw-{}", std::process::id()));
        let b = BlobDir::new(root.clone());
        let mut w = b.writer().expect("writer");
        w.write(b"hel").expect("write");
        w.write(b"").expect("write");
        w.write(b"lo").expect("write");
        assert_eq!(w.len(), 5);
        let (sha, len) = w.finish().expect("finish");
        assert_eq!((sha.as_str(), len), (sha256_hex(b"hello").as_str(), 5));
        assert_eq!(b.get(&sha).expect("get"), b"hello");
        // The same bytes again: the existing blob stays, the temporary file goes.
        let mut w = b.writer().expect("writer");
        w.write(b"hello").expect("write");
        assert_eq!(w.finish().expect("finish").0, sha);
        // Abandoned half way (a dropped connection): no temporary file is left behind.
        let mut w = b.writer().expect("writer");
        w.write(b"half").expect("write");
        drop(w);
        let leftovers: Vec<_> = std::fs::read_dir(&root)
            .expect("read dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(root);
    }
}
