//! Content-addressed blobs (raw mail, attachments) under `<data dir>/blobs`, named by sha256:
//! small ones appended to pack files in `blobs/packs/`, large ones files of their own.
//!
//! Raw mail and attachments live outside the database (SQLite or PostgreSQL) so it stays small
//! and quick to back up, a 50 MB attachment never passes through a database page cache or a
//! connection, and the same attachment sent twice is stored once.
//!
//! **Why packs.** Every blob used to be a file of its own (`ab/<sha>`): a temporary file
//! created, written, flushed, renamed, and its directory flushed. With three blobs per
//! application (the mail, the form, the summary) the profile of the intake benchmark put file
//! creation, rename and directory flushing at about 13 % of the daemon's CPU, almost all in the
//! kernel. Blobs under [`PACK_BELOW`] (1 MiB: nearly every mail and attachment) are now
//! appended to a pack ([`pack`]): no file created, no rename, no directory work, and one
//! `fdatasync` per pack for a whole batch. Larger blobs, and mails fetched in parts
//! ([`BlobWriter`]), stay files of their own, where a file's creation is small beside its
//! bytes and a pack would only be copied through; so do blobs written by earlier versions
//! (`ab/<sha>` and, before 0.2, `ab/cd/<sha>`), which are still found. One level of 256
//! directories, as git does: two levels gave each of the first few thousand files a directory
//! of its own to create and flush.
//!
//! **Crashes.** A blob's bytes are flushed to disk *before* the database row that names it
//! commits ([`publish`], then the transaction): a crash in between leaves at worst bytes no row
//! names (a temporary file, or dead bytes at the end of a pack, also left by a batch that
//! failed before its transaction), never a row without its bytes. A record torn by a crash is
//! skipped by readers and never taken for a blob being stored again (see [`pack`]).
//!
//! **Several processes.** The daemon, `shenbao ingest`, `review import` and a second daemon on
//! shared storage may all write blobs at once. Each process appends only to packs it created
//! (unique names, never reopened for writing by a later run), so no two ever write into one
//! file and no lock between processes is needed; each finds the others' blobs by scanning
//! their packs' record headers when a lookup misses.

mod pack;

use pack::{Loc, Packs, Sha};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Blobs smaller than this go into packs; larger ones (big attachments, whole mails fetched
/// in parts) stay files of their own, where one file's creation is small beside its bytes.
pub const PACK_BELOW: usize = 1 << 20;

/// Numbers temporary files, so no two writers in this process ever share one.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
    packs: Arc<Packs>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A blob opened for streaming: `file` is positioned at its first byte, and the blob is the
/// next `len` bytes (a packed blob's file goes on with other blobs).
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub len: u64,
}

fn raw_sha(sha: &str) -> Option<Sha> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(sha, &mut raw).ok()?;
    Some(raw)
}

fn read_at(file: &File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

impl BlobDir {
    pub fn new(root: PathBuf) -> BlobDir {
        BlobDir::with_pack_size(root, pack::ROLL_OVER)
    }

    /// A blob directory whose packs roll over at `roll_over` bytes (tests use small ones).
    fn with_pack_size(root: PathBuf, roll_over: u64) -> BlobDir {
        BlobDir {
            packs: Arc::new(Packs::new(root.join("packs"), roll_over)),
            root,
        }
    }

    /// Where a blob stored as a file of its own is (a large one, or any written before packs).
    pub fn path_of(&self, sha: &str) -> PathBuf {
        self.root.join(sha.get(0..2).unwrap_or("xx")).join(sha)
    }

    /// Where versions before 0.2 put a blob.
    fn old_path_of(&self, sha: &str) -> PathBuf {
        let a = sha.get(0..2).unwrap_or("xx");
        let b = sha.get(2..4).unwrap_or("xx");
        self.root.join(a).join(b).join(sha)
    }

    /// The pack holding a blob and the offset of its first byte, for tests that damage it.
    #[cfg(test)]
    pub(crate) fn packed_at(&self, sha: &str) -> Option<(PathBuf, u64)> {
        let found = self.packs.find(&raw_sha(sha)?).ok()??;
        Some((found.path, found.loc.offset))
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

    /// Writes `bytes` where they will be found, not yet flushed nor findable: [`publish`]
    /// does that for many blobs at once. `None` when the blob is already stored.
    pub fn stage(&self, bytes: &[u8]) -> std::io::Result<(String, Option<Staged>)> {
        let sha = sha256_hex(bytes);
        let staged = self.stage_as(&sha, bytes)?;
        Ok((sha, staged))
    }

    /// [`BlobDir::stage`] for bytes whose sha256 the caller has already computed (an
    /// attachment's, by `message::understand`), so an attachment is hashed once: sha256 was
    /// 3–4% of the daemon's CPU in the benchmark's profile.
    pub fn stage_as(&self, sha: &str, bytes: &[u8]) -> std::io::Result<Option<Staged>> {
        if bytes.len() < PACK_BELOW
            && let Some(raw) = raw_sha(sha)
        {
            return self.stage_packed(sha, raw, bytes);
        }
        self.stage_loose(sha, bytes)
    }

    fn stage_packed(&self, sha: &str, raw: Sha, bytes: &[u8]) -> std::io::Result<Option<Staged>> {
        if let Some(found) = self.packs.find_for_dedup(&raw)? {
            if found.loc.trusted {
                return Ok(None);
            }
            // Found by a scan: the bytes must be there, whole, before anything relies on
            // them (a crash may have left the record's length without its bytes).
            let same = found.loc.len == bytes.len() as u64
                && read_at(&found.file, found.loc.offset, found.loc.len)
                    .is_ok_and(|stored| stored == bytes);
            if same {
                // Another process may not have flushed them yet: publish does.
                return Ok(Some(Staged(Kind::Packed(Packed {
                    packs: self.packs.clone(),
                    file: found.file,
                    sha: raw,
                    loc: found.loc,
                }))));
            }
            self.packs.forget(&raw, found.loc);
        }
        if self.has_loose(sha, bytes.len()) {
            return Ok(None);
        }
        let appended = self.packs.append(&raw, bytes)?;
        Ok(Some(Staged(Kind::Packed(Packed {
            packs: self.packs.clone(),
            file: appended.file,
            sha: raw,
            loc: appended.loc,
        }))))
    }

    /// Whether the blob is already a file of its own, of this size.
    fn has_loose(&self, sha: &str, len: usize) -> bool {
        std::fs::metadata(self.path_of(sha)).is_ok_and(|meta| meta.len() == len as u64)
    }

    fn stage_loose(&self, sha: &str, bytes: &[u8]) -> std::io::Result<Option<Staged>> {
        if self.has_loose(sha, bytes.len()) {
            return Ok(None);
        }
        let path = self.path_of(sha);
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
        let mut staged = Loose {
            file: None,
            tmp,
            path,
        };
        let mut f = crate::fsmode::create_new(&staged.tmp)?;
        f.write_all(bytes)?;
        staged.file = Some(f);
        Ok(Some(Staged(Kind::Loose(staged))))
    }

    /// A file of its own holding the blob: where this version or an earlier one put it.
    fn open_loose(&self, sha: &str) -> std::io::Result<File> {
        match File::open(self.path_of(sha)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                File::open(self.old_path_of(sha)).map_err(|_| e)
            }
            r => r,
        }
    }

    /// The pack record of a blob, scanning for other processes' packs only when it is
    /// neither in the index nor a file of its own (`Err` is the loose file's error then).
    fn locate(&self, sha: &str) -> std::io::Result<Result<pack::Found, File>> {
        let raw = raw_sha(sha);
        if let Some(found) = raw.and_then(|r| self.packs.lookup(&r)) {
            return Ok(Ok(found));
        }
        let loose_err = match self.open_loose(sha) {
            Ok(f) => return Ok(Err(f)),
            Err(e) => e,
        };
        if let Some(raw) = raw
            && loose_err.kind() == std::io::ErrorKind::NotFound
            && let Some(found) = self.packs.find(&raw)?
        {
            return Ok(Ok(found));
        }
        Err(loose_err)
    }

    pub fn get(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        match self.get_or_open(sha, u64::MAX)? {
            Fetched::Whole(bytes) => Ok(bytes),
            // Never: no file is u64::MAX bytes long.
            Fetched::Stream(o) => {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(o.file, o.len), &mut v)?;
                Ok(v)
            }
        }
    }

    /// The blob in memory, or opened for streaming when it is a file of its own of at least
    /// `stream_from` bytes (the daemon reads a mail with a 50 MB attachment without holding it
    /// whole: see `pipeline`'s `read_mail`). A packed blob is always small enough to read.
    pub fn get_or_open(&self, sha: &str, stream_from: u64) -> std::io::Result<Fetched> {
        match self.locate(sha)? {
            Ok(found) => read_at(&found.file, found.loc.offset, found.loc.len).map(Fetched::Whole),
            Err(mut file) => {
                let len = file.metadata()?.len();
                if len >= stream_from {
                    return Ok(Fetched::Stream(Opened { file, len }));
                }
                let mut v = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                std::io::Read::read_to_end(&mut file, &mut v)?;
                Ok(Fetched::Whole(v))
            }
        }
    }

    /// The blob opened for reading, to stream it without holding it in memory (the board's
    /// downloads): a file of its own, or its pack opened anew and positioned at its bytes.
    pub fn open(&self, sha: &str) -> std::io::Result<Opened> {
        match self.locate(sha)? {
            Ok(found) => {
                let mut file = File::open(&found.path)?;
                std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(found.loc.offset))?;
                Ok(Opened {
                    file,
                    len: found.loc.len,
                })
            }
            Err(file) => {
                let len = file.metadata()?.len();
                Ok(Opened { file, len })
            }
        }
    }

    /// Starts a blob whose bytes arrive piece by piece (a large mail fetched in parts): it is
    /// hashed as it is written, so the whole never has to be in memory at once. It becomes a
    /// file of its own, whatever its size.
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

/// What [`BlobDir::get_or_open`] gives.
#[derive(Debug)]
pub enum Fetched {
    Whole(Vec<u8>),
    Stream(Opened),
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

/// So a writer can be handed to code that writes to any `Write` (`message::slim`).
impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BlobWriter::write(self, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A blob written and not yet published ([`BlobDir::stage`]).
///
/// Dropped unpublished, a file of its own removes its temporary file; a record appended to a
/// pack stays there as dead bytes no index or row names (harmless: a pack is only ever read
/// through the index, and the next scan of another process steps over them).
pub struct Staged(Kind);

enum Kind {
    Loose(Loose),
    Packed(Packed),
}

/// A blob in its temporary file, to be renamed into place.
struct Loose {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl Drop for Loose {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A record in a pack: appended by this process, or found in another process's pack with
/// the same bytes (flushed too, so a row never names bytes only in the page cache).
struct Packed {
    packs: Arc<Packs>,
    file: Arc<File>,
    sha: Sha,
    loc: Loc,
}

/// Makes staged blobs durable and findable, in the order that keeps a crash harmless: every
/// file's and pack's bytes on disk, then the renames, then the directories flushed, and only
/// then packed blobs enter the index. A crash before the end leaves temporary files, dead
/// bytes at the end of a pack, or complete blobs no row names yet.
///
/// Flushing file by file costs one journal commit each (two, with the directory): on the
/// benchmark's ext4 that was a fifth of the daemon's CPU, and the intake's slowest step. So
/// writeback of every file starts first (`sync_file_range` on Linux); the flushes that follow
/// then mostly find their journal transaction committed by the first, and so do the
/// directories after the renames. A pack is flushed once per batch, however many of its
/// blobs the batch holds.
pub fn publish(staged: Vec<Staged>) -> std::io::Result<()> {
    if staged.is_empty() {
        return Ok(());
    }
    let mut loose = Vec::new();
    let mut packed = Vec::new();
    for s in staged {
        match s.0 {
            Kind::Loose(l) => loose.push(l),
            Kind::Packed(p) => packed.push(p),
        }
    }
    let mut packs: Vec<&Arc<File>> = Vec::new();
    for p in &packed {
        if !packs.iter().any(|f| Arc::ptr_eq(f, &p.file)) {
            packs.push(&p.file);
        }
    }
    #[cfg(target_os = "linux")]
    {
        for f in &packs {
            start_writeback(f);
        }
        for l in &loose {
            if let Some(f) = &l.file {
                start_writeback(f);
            }
        }
    }
    for f in &packs {
        f.sync_data()?;
    }
    for l in &mut loose {
        if let Some(f) = l.file.take() {
            f.sync_data()?;
        }
    }
    let mut dirs = Vec::new();
    for l in &mut loose {
        std::fs::rename(&l.tmp, &l.path)?;
        // Renamed: nothing left for Drop to remove.
        l.tmp = PathBuf::new();
        if let Some(dir) = l.path.parent()
            && !dirs.iter().any(|d: &PathBuf| d == dir)
        {
            dirs.push(dir.to_path_buf());
        }
    }
    for dir in &dirs {
        sync_dir(dir);
    }
    for p in &packed {
        p.packs.insert_published([(p.sha, p.loc)]);
    }
    Ok(())
}

/// Asks the kernel to start writing a file's dirty pages now, without waiting.
#[cfg(target_os = "linux")]
fn start_writeback(f: &File) {
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

    /// Records several blobs `(sha256, size)` at once (rows may already exist, a blob may be
    /// named twice): one statement for a fetch's mails or a mail's files.
    pub(super) async fn record_blobs(
        mut conn: super::Conn<'_>,
        blobs: &[(&str, u64)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> super::Result<()> {
        let mut rows = blobs.to_vec();
        rows.sort_unstable();
        rows.dedup_by(|a, b| a.0 == b.0);
        for chunk in rows.chunks(500) {
            // Built at run time: one `($2n, $2n+1, $1)` per blob; run on both backends by the tests.
            let sql = format!(
                "INSERT INTO blobs (sha256, size, created_at) VALUES {} ON CONFLICT DO NOTHING",
                super::values_rows(1, chunk.len(), 2, |p| format!("(${}, ${}, $1)", p[0], p[1]))
            );
            on_conn!(conn.re(), |c| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(crate::store::db_time(now));
                for (sha, size) in chunk {
                    q = q.bind(*sha).bind(i64::try_from(*size).unwrap_or(i64::MAX));
                }
                q.execute(c).await?.rows_affected()
            });
        }
        Ok(())
    }

    /// Records a blob written by [`super::Store::write_blob`] (the row may already exist).
    pub(super) async fn record_blob(
        &self,
        conn: super::Conn<'_>,
        sha: &str,
        size: usize,
        now: chrono::DateTime<chrono::Utc>,
    ) -> super::Result<()> {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        super::Store::record_blobs(conn, &[(sha, size)], now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("shenbao-blobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    fn packs_in(root: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("packs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }

    fn read_all(o: Opened) -> Vec<u8> {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(o.file, o.len), &mut v).expect("read");
        v
    }

    /// Distinct bytes of a given length for blob `i`.
    fn blob(i: usize, len: usize) -> Vec<u8> {
        let mut v = format!("blob {i}:").into_bytes();
        v.resize(len, (i % 251) as u8);
        v.truncate(len);
        v
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

    fn append_raw(pack: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(pack)
            .expect("open pack");
        f.write_all(bytes).expect("append");
    }

    fn record_header(sha: &str, len: u64) -> Vec<u8> {
        let mut h = pack::RECORD_MAGIC.to_vec();
        h.extend(hex::decode(sha).expect("hex"));
        h.extend(len.to_le_bytes());
        h
    }

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let root = scratch("put");
        let b = BlobDir::new(root.clone());
        let sha = b.put(b"hello").expect("put");
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let packs = packs_in(&root);
        assert_eq!(packs.len(), 1, "{packs:?}");
        let size = std::fs::metadata(&packs[0]).expect("pack").len();
        assert_eq!(size, 16 + pack::RECORD_HEADER + 5);
        assert_eq!(b.put(b"hello").expect("again"), sha);
        assert_eq!(
            std::fs::metadata(&packs[0]).expect("pack").len(),
            size,
            "stored once"
        );
        assert_eq!(b.get(&sha).expect("get"), b"hello");
        // Small blobs are not files of their own.
        assert!(!b.path_of(&sha).exists());
        assert_eq!(b.path_of(&sha), root.join("2c").join(&sha));
        let missing = b.open(&sha256_hex(b"never")).expect_err("missing");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let missing = b.get(&sha256_hex(b"never")).expect_err("missing");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let _ = std::fs::remove_dir_all(root);
    }

    /// Blobs written by earlier versions, as files under `ab/` and `ab/cd/`, are read and
    /// opened, and a file under `ab/` of the same size counts as stored.
    #[test]
    fn loose_blobs_of_earlier_versions_are_still_found() {
        let root = scratch("old");
        let b = BlobDir::new(root.clone());
        let old = sha256_hex(b"old two-level");
        let one = sha256_hex(b"old one-level");
        let p = b.old_path_of(&old);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"old two-level").expect("write");
        let p = b.path_of(&one);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"old one-level").expect("write");
        assert_eq!(b.get(&old).expect("two-level"), b"old two-level");
        assert_eq!(b.get(&one).expect("one-level"), b"old one-level");
        assert_eq!(read_all(b.open(&old).expect("open")), b"old two-level");
        let o = b.open(&one).expect("open");
        assert_eq!(o.len, 13);
        assert_eq!(read_all(o), b"old one-level");
        assert!(b.stage(b"old one-level").expect("stage").1.is_none());
        assert!(packs_in(&root).is_empty(), "nothing written");
        let _ = std::fs::remove_dir_all(root);
    }

    /// `open` gives a reader of exactly the blob's bytes, whether it sits among others in a
    /// pack or is a large file of its own.
    #[test]
    fn open_gives_exactly_the_blobs_bytes() {
        let root = scratch("open");
        let b = BlobDir::new(root.clone());
        let shas: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| {
                let bytes = blob(i, 100 + i * 7);
                (b.put(&bytes).expect("put"), bytes)
            })
            .collect();
        let big = blob(99, PACK_BELOW);
        let big_sha = b.put(&big).expect("big");
        assert!(
            b.path_of(&big_sha).is_file(),
            "a large blob is a file of its own"
        );
        for (sha, bytes) in &shas {
            let o = b.open(sha).expect("open");
            assert_eq!(o.len, bytes.len() as u64);
            assert_eq!(&read_all(o), bytes);
        }
        let o = b.open(&big_sha).expect("open big");
        assert_eq!(o.len, big.len() as u64);
        assert_eq!(read_all(o), big);
        // Another process opens them too.
        let other = BlobDir::new(root.clone());
        assert_eq!(read_all(other.open(&shas[3].0).expect("open")), shas[3].1);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn staged_blobs_appear_only_when_published() {
        let root = scratch("staged");
        let b = BlobDir::new(root.clone());
        let (one, s1) = b.stage(b"one").expect("stage");
        let (two, s2) = b.stage(b"two").expect("stage");
        // The same bytes twice in one batch (two messages with one attachment): both staged.
        let (again, s3) = b.stage(b"one").expect("stage");
        assert_eq!(again, one);
        let big = blob(7, PACK_BELOW + 1);
        let (big_sha, s4) = b.stage(&big).expect("stage big");
        let staged: Vec<Staged> = [s1, s2, s3, s4].into_iter().flatten().collect();
        assert_eq!(staged.len(), 4);
        assert_eq!(
            tmp_files(&root).len(),
            1,
            "the large one in a temporary file"
        );
        assert!(b.get(&one).is_err(), "not readable before publish");
        assert!(b.get(&big_sha).is_err(), "not readable before publish");
        publish(staged).expect("publish");
        assert_eq!(b.get(&one).expect("one"), b"one");
        assert_eq!(b.get(&two).expect("two"), b"two");
        assert_eq!(b.get(&big_sha).expect("big"), big);
        assert!(tmp_files(&root).is_empty());
        // Already there: nothing to stage.
        assert!(b.stage(b"two").expect("stage").1.is_none());
        assert!(b.stage(&big).expect("stage").1.is_none());
        // Staged and dropped (the message failed before its transaction): its bytes stay
        // in the pack, dead, and no blob appears.
        let (three, s) = b.stage(b"three").expect("stage");
        assert!(s.is_some());
        drop(s);
        assert!(b.get(&three).is_err());
        assert!(BlobDir::new(root.clone()).get(&one).is_ok());
        let (big2, s) = b.stage(&blob(8, PACK_BELOW)).expect("stage");
        drop(s);
        assert!(
            tmp_files(&root).is_empty(),
            "a dropped large one leaves no file"
        );
        assert!(b.get(&big2).is_err());
        publish(Vec::new()).expect("nothing to publish");
        let _ = std::fs::remove_dir_all(root);
    }

    /// Hundreds of blobs of many sizes, in batches, over packs that roll over at 4 KiB: every
    /// blob reads back, in this process and in a fresh one, and no pack grows past the limit
    /// by more than one record.
    #[test]
    fn many_blobs_round_trip_across_packs() {
        let root = scratch("many");
        let b = BlobDir::with_pack_size(root.clone(), 4096);
        let mut stored = Vec::new();
        for batch in 0..20 {
            let mut staged = Vec::new();
            for k in 0..15 {
                let i = batch * 15 + k;
                let bytes = blob(i, (i * 37) % 3000);
                let (sha, s) = b.stage(&bytes).expect("stage");
                staged.extend(s);
                stored.push((sha, bytes));
            }
            publish(staged).expect("publish");
        }
        let packs = packs_in(&root);
        assert!(packs.len() > 20, "{} packs", packs.len());
        for p in &packs {
            let len = std::fs::metadata(p).expect("pack").len();
            assert!(len <= 4096 + pack::RECORD_HEADER + 3000, "{len}");
        }
        let fresh = BlobDir::new(root.clone());
        for (sha, bytes) in &stored {
            assert_eq!(&b.get(sha).expect("get"), bytes);
            assert_eq!(&fresh.get(sha).expect("fresh get"), bytes);
        }
        // Nothing stored twice: the other process finds every one and stages none again.
        for (_, bytes) in stored.iter().take(30) {
            let s = fresh.stage(bytes).expect("stage").1;
            assert!(
                matches!(s, Some(Staged(Kind::Packed(_)))),
                "verified, to flush"
            );
            publish(s.into_iter().collect()).expect("publish");
            assert!(fresh.stage(bytes).expect("stage").1.is_none());
        }
        assert_eq!(
            packs_in(&root),
            packs,
            "no pack written by the second process"
        );
        let _ = std::fs::remove_dir_all(root);
    }

    /// A second process on the same directory finds what the first published, also what it
    /// published after the second's first scan, and writes packs of its own.
    #[test]
    fn another_process_finds_published_blobs() {
        let root = scratch("two");
        let first = BlobDir::new(root.clone());
        let second = BlobDir::new(root.clone());
        let a = first.put(b"before").expect("put");
        assert_eq!(second.get(&a).expect("get"), b"before");
        let b_sha = first.put(b"after the scan").expect("put");
        assert_eq!(second.get(&b_sha).expect("get"), b"after the scan");
        let c = second.put(b"the second's own").expect("put");
        assert_eq!(packs_in(&root).len(), 2, "each process its own pack");
        assert_eq!(first.get(&c).expect("get"), b"the second's own");
        // The first process goes on appending to its pack; the second finds that too.
        let d = first.put(b"more").expect("put");
        assert_eq!(second.get(&d).expect("get"), b"more");
        assert_eq!(packs_in(&root).len(), 2);
        let _ = std::fs::remove_dir_all(root);
    }

    /// The end of a pack torn by a crash (or still being written): a record cut in its
    /// header, one whose length runs past the end, and garbage stop the scan; the blobs
    /// before are found, and a record completed later is found by the next scan.
    #[test]
    fn a_torn_pack_end_is_skipped() {
        let root = scratch("torn");
        let w = BlobDir::new(root.clone());
        let a = w.put(b"first").expect("put");
        let b_sha = w.put(b"second").expect("put");
        let pack = packs_in(&root).pop().expect("pack");
        drop(w);
        let late = sha256_hex(b"late bytes");
        // Cut in the header.
        let header = record_header(&late, 10);
        append_raw(&pack, &header[..20]);
        let r = BlobDir::new(root.clone());
        assert_eq!(r.get(&a).expect("a"), b"first");
        assert_eq!(r.get(&b_sha).expect("b"), b"second");
        assert!(r.get(&late).is_err());
        // The header whole, the bytes only begun: still not there.
        append_raw(&pack, &header[20..]);
        append_raw(&pack, b"late ");
        assert!(r.get(&late).is_err());
        assert!(BlobDir::new(root.clone()).get(&late).is_err());
        // Completed: the next scan resumes at the record and finds it.
        append_raw(&pack, b"bytes");
        assert_eq!(r.get(&late).expect("late"), b"late bytes");
        // A record whose length runs far past the end, then garbage.
        let huge = sha256_hex(b"huge");
        append_raw(&pack, &record_header(&huge, 1 << 40));
        append_raw(&pack, b"huge");
        let fresh = BlobDir::new(root.clone());
        assert!(fresh.get(&huge).is_err());
        assert_eq!(fresh.get(&late).expect("late"), b"late bytes");
        let bad = root.join("packs").join("0-0-bad.pack");
        std::fs::write(&bad, pack::FILE_MAGIC).expect("pack");
        append_raw(&bad, &record_header(&huge, 4));
        append_raw(&bad, b"huge");
        append_raw(
            &bad,
            b"garbage that is no record header at all, 44 bytes or more...",
        );
        let unknown = BlobDir::new(root.clone());
        assert_eq!(unknown.get(&huge).expect("huge"), b"huge");
        assert_eq!(unknown.get(&a).expect("a"), b"first");
        assert!(unknown.get(&sha256_hex(b"garbage")).is_err());
        // Not a pack at all (wrong file magic): ignored.
        std::fs::write(
            root.join("packs").join("1-1-x.pack"),
            b"not a pack, just text",
        )
        .expect("write");
        let again = BlobDir::new(root.clone());
        assert_eq!(again.get(&b_sha).expect("b"), b"second");
        // A pack that is still empty or has half its magic: found once it is written.
        let young = root.join("packs").join("2-2-young.pack");
        std::fs::write(&young, &pack::FILE_MAGIC[..7]).expect("write");
        let young_sha = sha256_hex(b"young");
        assert!(again.get(&young_sha).is_err());
        append_raw(&young, &pack::FILE_MAGIC[7..]);
        append_raw(&young, &record_header(&young_sha, 5));
        append_raw(&young, b"young");
        assert_eq!(again.get(&young_sha).expect("young"), b"young");
        let _ = std::fs::remove_dir_all(root);
    }

    /// A record found by a scan whose bytes are not the blob's (a crash wrote its header and
    /// not its bytes, or they were damaged) is never taken as the blob when storing it: the
    /// bytes are written again, and read from the good copy from then on, also by another
    /// process.
    #[test]
    fn a_damaged_record_is_not_deduplicated_against() {
        let root = scratch("damaged");
        let w = BlobDir::new(root.clone());
        let sha = w.put(b"precious bytes").expect("put");
        let (pack_path, offset) = w.packed_at(&sha).expect("packed");
        drop(w);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&pack_path)
            .expect("open");
        f.write_all_at(b"\0\0\0\0", offset + 3).expect("damage");
        let r = BlobDir::new(root.clone());
        assert_ne!(r.get(&sha).expect("get"), b"precious bytes");
        let (again, s) = r.stage(b"precious bytes").expect("stage");
        assert_eq!(again, sha);
        let Some(Staged(Kind::Packed(p))) = &s else {
            panic!("a new copy is written");
        };
        assert_ne!(
            p.loc.pack,
            r.packs.lookup(&p.sha).map_or(usize::MAX, |f| f.loc.pack)
        );
        publish(s.into_iter().collect()).expect("publish");
        assert_eq!(r.get(&sha).expect("get"), b"precious bytes");
        assert_eq!(packs_in(&root).len(), 2);
        // A third process: the later, good copy wins over the damaged earlier one.
        let third = BlobDir::new(root.clone());
        assert_eq!(third.get(&sha).expect("get"), b"precious bytes");
        assert_eq!(read_all(third.open(&sha).expect("open")), b"precious bytes");
        let _ = std::fs::remove_dir_all(root);
    }

    /// Packs and their directory are private to the service user.
    #[cfg(unix)]
    #[test]
    fn packs_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let root = scratch("modes");
        let b = BlobDir::with_pack_size(root.clone(), 64);
        b.put(b"one blob").expect("put");
        b.put(b"another blob").expect("put");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("packs")), 0o700);
        let packs = packs_in(&root);
        assert_eq!(packs.len(), 2);
        for p in packs {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        let _ = std::fs::remove_dir_all(root);
    }

    /// Several threads staging and publishing at once (the pipeline's workers): every blob
    /// is found whole, and the packs hold nothing but whole records.
    #[test]
    fn concurrent_staging_keeps_every_record_whole() {
        let root = scratch("threads");
        let b = BlobDir::with_pack_size(root.clone(), 64 << 10);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    for batch in 0..10 {
                        let mut staged = Vec::new();
                        for k in 0..10 {
                            // Every thread also stores the blobs all threads share.
                            let i = if k == 0 {
                                batch
                            } else {
                                1000 * (t + 1) + batch * 10 + k
                            };
                            let bytes = blob(i, 50 + (i * 131) % 5000);
                            let (sha, s) = b.stage(&bytes).expect("stage");
                            staged.extend(s);
                            out.push((sha, bytes));
                        }
                        publish(staged).expect("publish");
                    }
                    out
                })
            })
            .collect();
        let stored: Vec<(String, Vec<u8>)> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        let fresh = BlobDir::new(root.clone());
        for (sha, bytes) in &stored {
            assert_eq!(&b.get(sha).expect("get"), bytes);
            assert_eq!(&fresh.get(sha).expect("fresh"), bytes);
        }
        for p in packs_in(&root) {
            let f = File::open(&p).expect("pack");
            let scanned = pack::scan_for_test(&f);
            assert_eq!(
                scanned,
                std::fs::metadata(&p).expect("meta").len(),
                "{}",
                p.display()
            );
        }
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

    /// A blob's row is recorded once with its size, however often it is recorded (the same
    /// attachment in two mails), on both backends.
    #[tokio::test]
    async fn a_blob_is_recorded_once_with_its_size() {
        for store in crate::store::test_stores("blobs").await {
            let backend = store.backend();
            let now = chrono::Utc::now();
            let sha = store.write_blob(b"attachment").await.expect("write");
            assert_eq!(store.blobs.get(&sha).expect("get"), b"attachment");
            let mut tx = store.begin_write().await.expect("begin");
            store
                .record_blob(tx.conn(), &sha, 10, now)
                .await
                .expect("record");
            store
                .record_blob(tx.conn(), &sha, 10, now)
                .await
                .expect("again");
            tx.commit().await.expect("commit");
            let rows: Vec<(String, i64)> =
                on_pool!(store, |p| sqlx::query_as("SELECT sha256, size FROM blobs")
                    .fetch_all(p)
                    .await
                    .expect("rows"));
            assert_eq!(rows, [(sha, 10)], "{backend}");
        }
    }
}
