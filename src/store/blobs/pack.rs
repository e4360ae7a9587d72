//! Pack files: small blobs appended to a few large files, and the index that finds them.
//!
//! A pack is a 16-byte header ([`FILE_MAGIC`]) and then records, each a 4-byte
//! [`RECORD_MAGIC`], the blob's 32-byte raw sha256, its length as a little-endian u64, and its
//! bytes. The format describes itself, so any process can index any pack by reading the
//! record headers and seeking over the bytes (a scan never hashes: hashing every pack on the
//! board's first download would read the whole archive).
//!
//! Every process appends only to packs it created itself (named `<unix nanos>-<pid>-<seq>.pack`,
//! never reused), so the daemon, `shenbao ingest`, `review import` and a second daemon on
//! shared storage never write into one file, and a record is appended whole under one lock in
//! this process, in file order. Another process may still be writing a pack while this one
//! reads it, and a crash may have torn its end: a record whose header or bytes run past the
//! file's current end stops the scan of that pack there, and the next scan resumes at that
//! offset. A record with a bad magic stops that pack for good (a warning, once).
//!
//! A record found by a scan is not trusted for deduplication until its bytes are compared
//! with the bytes being stored: a torn record left by a crash (the length written, the
//! bytes not) must never stand in for a new blob. The process's own records enter the index
//! only once [`super::publish`] has flushed them.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// First 16 bytes of every pack.
pub(super) const FILE_MAGIC: &[u8; 16] = b"SHENBAO-PACK-1\n\0";
/// First 4 bytes of every record.
pub(super) const RECORD_MAGIC: &[u8; 4] = b"BLB1";
/// Magic, sha256, length.
pub(super) const RECORD_HEADER: u64 = 4 + 32 + 8;
/// A pack is closed (the next record starts a new one) once the next record would take it
/// past this size: large enough that a campaign needs a handful, small enough to copy.
pub(super) const ROLL_OVER: u64 = 256 << 20;
/// How long after a scan a blob being staged may be missed in packs that other processes
/// wrote since: the cost is a second copy of its bytes, and scanning the pack directory on
/// every new blob would be a directory listing per attachment. Lookups for reading always
/// scan on a miss.
const DEDUP_RESCAN: Duration = Duration::from_secs(1);

/// Numbers this process's packs, so two stores in one process (tests, `db copy`) never pick
/// one name.
static NEXT_PACK: AtomicU64 = AtomicU64::new(0);

pub(super) type Sha = [u8; 32];

/// Where a blob's bytes are in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    /// Index into [`State::packs`].
    pub pack: usize,
    /// Offset of the blob's first byte (after its record header).
    pub offset: u64,
    pub len: u64,
    /// Written by this process and flushed, or compared with the bytes being stored and
    /// flushed: good for deduplication as it is.
    pub trusted: bool,
}

struct PackInfo {
    path: PathBuf,
    /// Opened for reading: positioned reads share it, and flushing a pack another process
    /// wrote works through it too.
    file: Arc<File>,
    /// Where the next scan starts; `None` for this process's own packs, whose records enter
    /// the index when they are published, and for a pack whose scan met a bad magic.
    scan_from: Option<u64>,
}

#[derive(Default)]
struct State {
    index: HashMap<Sha, Loc>,
    packs: Vec<PackInfo>,
    by_name: HashMap<std::ffi::OsString, usize>,
    last_refresh: Option<Instant>,
}

/// The pack this process appends to.
struct Current {
    file: Arc<File>,
    pack: usize,
    end: u64,
}

/// A lookup's answer: the blob's place and the pack to read it from.
pub(super) struct Found {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub loc: Loc,
}

/// A record appended and not yet published.
pub(super) struct Appended {
    pub file: Arc<File>,
    pub loc: Loc,
}

/// The packs of one blob directory and the index of what is in them.
pub(super) struct Packs {
    dir: PathBuf,
    roll_over: u64,
    state: Mutex<State>,
    /// Held while appending (lock order: `writer`, then `state`), so readers are not held
    /// up by a write and records are written one after the other in file order.
    writer: Mutex<Option<Current>>,
    /// One scan at a time; the scan itself runs outside `state`.
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for Packs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packs").field("dir", &self.dir).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One scan of a pack: the records found, where the next scan starts, and whether it met
/// a bad magic.
struct Scanned {
    records: Vec<(Sha, u64, u64)>,
    next: u64,
    bad: bool,
}

/// Reads record headers from `from` up to the file's current end, seeking over the bytes.
fn scan(file: &File, from: u64) -> std::io::Result<Scanned> {
    let end = file.metadata()?.len();
    let mut out = Scanned {
        records: Vec::new(),
        next: from,
        bad: false,
    };
    let mut at = from;
    if at == 0 {
        let mut magic = [0u8; 16];
        if end < 16 {
            return Ok(out);
        }
        file.read_exact_at(&mut magic, 0)?;
        if &magic != FILE_MAGIC {
            out.bad = true;
            return Ok(out);
        }
        at = 16;
        out.next = at;
    }
    let mut header = [0u8; RECORD_HEADER as usize];
    while end.saturating_sub(at) >= RECORD_HEADER {
        file.read_exact_at(&mut header, at)?;
        if &header[0..4] != RECORD_MAGIC {
            out.bad = true;
            break;
        }
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&header[4..36]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&header[36..44]);
        let len = u64::from_le_bytes(len);
        let body = at + RECORD_HEADER;
        if len > end - body {
            // Still being written, or torn by a crash: try again from here next time.
            break;
        }
        out.records.push((sha, body, len));
        at = body + len;
        out.next = at;
    }
    Ok(out)
}

impl Packs {
    pub fn new(dir: PathBuf, roll_over: u64) -> Packs {
        Packs {
            dir,
            roll_over,
            state: Mutex::new(State::default()),
            writer: Mutex::new(None),
            refreshing: Mutex::new(()),
        }
    }

    /// The blob's place if the index knows it (no scan).
    pub fn lookup(&self, sha: &Sha) -> Option<Found> {
        let st = lock(&self.state);
        let loc = *st.index.get(sha)?;
        let p = &st.packs[loc.pack];
        Some(Found {
            file: p.file.clone(),
            path: p.path.clone(),
            loc,
        })
    }

    /// [`Packs::lookup`], scanning the packs for what other processes wrote on a miss.
    pub fn find(&self, sha: &Sha) -> std::io::Result<Option<Found>> {
        if let Some(f) = self.lookup(sha) {
            return Ok(Some(f));
        }
        self.refresh()?;
        Ok(self.lookup(sha))
    }

    /// [`Packs::find`] for deduplication: scans on a miss only when the last scan is older
    /// than [`DEDUP_RESCAN`] (a blob missed is stored again, which is harmless).
    pub fn find_for_dedup(&self, sha: &Sha) -> std::io::Result<Option<Found>> {
        if let Some(f) = self.lookup(sha) {
            return Ok(Some(f));
        }
        let recent = lock(&self.state)
            .last_refresh
            .is_some_and(|t| t.elapsed() < DEDUP_RESCAN);
        if recent {
            return Ok(None);
        }
        self.refresh()?;
        Ok(self.lookup(sha))
    }

    /// Lists the pack directory and scans every other process's pack from where its last
    /// scan stopped.
    pub fn refresh(&self) -> std::io::Result<()> {
        let _one = lock(&self.refreshing);
        let mut names = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries {
                    let name = e?.file_name();
                    if Path::new(&name).extension().is_some_and(|x| x == "pack") {
                        names.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Oldest first (names start with their creation time): a later copy of a blob
        // replaces an earlier one not yet trusted.
        names.sort();
        let known: Vec<bool> = {
            let st = lock(&self.state);
            names.iter().map(|n| st.by_name.contains_key(n)).collect()
        };
        for (name, known) in names.into_iter().zip(known) {
            if known {
                continue;
            }
            let path = self.dir.join(&name);
            let file = match File::open(&path) {
                Ok(f) => f,
                // Removed by hand since the listing: nothing to index.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut st = lock(&self.state);
            if st.by_name.contains_key(&name) {
                continue;
            }
            let idx = st.packs.len();
            st.packs.push(PackInfo {
                path,
                file: Arc::new(file),
                scan_from: Some(0),
            });
            st.by_name.insert(name, idx);
        }
        let todo: Vec<(usize, PathBuf, u64)> = {
            let st = lock(&self.state);
            st.packs
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((i, p.path.clone(), p.scan_from?)))
                .collect()
        };
        for (idx, path, from) in todo {
            // Opened anew for every scan: on NFS an open is what fetches the file's current
            // size (close-to-open consistency); the size of a file held open may be cached
            // for a minute, and a blob another machine has published would not be found.
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let found = scan(&file, from)?;
            let mut st = lock(&self.state);
            for (sha, offset, len) in found.records {
                let loc = Loc {
                    pack: idx,
                    offset,
                    len,
                    trusted: false,
                };
                match st.index.get(&sha) {
                    Some(old) if old.trusted => {}
                    _ => {
                        st.index.insert(sha, loc);
                    }
                }
            }
            let pack = &mut st.packs[idx];
            if found.bad {
                tracing::warn!(
                    pack = %pack.path.display(),
                    offset = found.next,
                    "存档打包文件在此处之后无法识别，之后的内容被忽略（文件可能损坏）"
                );
                pack.scan_from = None;
            } else {
                pack.scan_from = Some(found.next);
            }
        }
        lock(&self.state).last_refresh = Some(Instant::now());
        Ok(())
    }

    /// A record found by a scan turned out not to hold its blob: it is no longer offered.
    pub fn forget(&self, sha: &Sha, loc: Loc) {
        let mut st = lock(&self.state);
        if st.index.get(sha) == Some(&loc) {
            st.index.remove(sha);
        }
    }

    /// Records flushed by [`super::publish`]: found from now on, and trusted.
    pub fn insert_published(&self, entries: impl IntoIterator<Item = (Sha, Loc)>) {
        let mut st = lock(&self.state);
        for (sha, loc) in entries {
            st.index.insert(
                sha,
                Loc {
                    trusted: true,
                    ..loc
                },
            );
        }
    }

    /// Appends a record to this process's current pack (a new one when there is none or it
    /// is full). Not yet flushed, not yet in the index.
    pub fn append(&self, sha: &Sha, bytes: &[u8]) -> std::io::Result<Appended> {
        let mut w = lock(&self.writer);
        let need = RECORD_HEADER + bytes.len() as u64;
        let full = w
            .as_ref()
            .is_some_and(|c| c.end > 16 && c.end.saturating_add(need) > self.roll_over);
        if w.is_none() || full {
            *w = Some(self.create()?);
        }
        let Some(cur) = w.as_mut() else {
            return Err(std::io::Error::other("no pack to write to"));
        };
        let mut header = [0u8; RECORD_HEADER as usize];
        header[0..4].copy_from_slice(RECORD_MAGIC);
        header[4..36].copy_from_slice(sha);
        header[36..44].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        let written = cur
            .file
            .write_all_at(&header, cur.end)
            .and_then(|()| cur.file.write_all_at(bytes, cur.end + RECORD_HEADER));
        if let Err(e) = written {
            // The end of this pack is now unknown (a part of the record may be there):
            // the next record starts a new pack, and scans stop at this torn one.
            *w = None;
            return Err(e);
        }
        let loc = Loc {
            pack: cur.pack,
            offset: cur.end + RECORD_HEADER,
            len: bytes.len() as u64,
            trusted: false,
        };
        cur.end += need;
        Ok(Appended {
            file: cur.file.clone(),
            loc,
        })
    }

    /// A new pack of this process's own: its header written, the directory flushed so the
    /// name survives a crash (its bytes are flushed by the first publish).
    fn create(&self) -> std::io::Result<Current> {
        if !self.dir.is_dir() {
            crate::fsmode::create_dir_all(&self.dir)?;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Registered as this process's own under the index lock, before a scan in another
        // thread of this process could list it and take it for another process's pack.
        let mut st = lock(&self.state);
        let (name, path, file) = loop {
            let name = format!(
                "{nanos}-{}-{}.pack",
                std::process::id(),
                NEXT_PACK.fetch_add(1, Ordering::Relaxed)
            );
            let path = self.dir.join(&name);
            match crate::fsmode::create_new(&path) {
                Ok(f) => break (name, path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let reader = File::open(&path)?;
        let pack = st.packs.len();
        st.packs.push(PackInfo {
            path,
            file: Arc::new(reader),
            scan_from: None,
        });
        st.by_name.insert(name.into(), pack);
        drop(st);
        file.write_all_at(FILE_MAGIC, 0)?;
        super::sync_dir(&self.dir);
        Ok(Current {
            file: Arc::new(file),
            pack,
            end: FILE_MAGIC.len() as u64,
        })
    }
}

/// Where a whole scan of a pack stops (its length when every record is whole).
#[cfg(test)]
pub(super) fn scan_for_test(file: &File) -> u64 {
    let s = scan(file, 0).expect("scan");
    assert!(!s.bad, "bad magic");
    s.next
}
