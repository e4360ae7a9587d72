//! Files and directories only the service user can read: every file shenbao creates is 0600
//! and every directory 0700.
//!
//! Two layers, because either alone leaves a gap. [`restrict_umask`] runs first thing in
//! `main`, so files created by code we do not control (SQLite's `-wal` and `-shm`, temporary
//! files of libraries) are private too; and the helpers here set the mode explicitly, so a
//! file stays private when shenbao is embedded or tested with a looser umask. The standard
//! library's `OpenOptionsExt`/`DirBuilderExt` are all this needs, so no crate is used.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of every file shenbao creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory shenbao creates.
pub const DIR_MODE: u32 = 0o700;

/// Sets the process umask to 077: nothing created afterwards is readable by group or others.
pub fn restrict_umask() {
    #[cfg(target_os = "linux")]
    // SAFETY: umask(2) only swaps the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// `create_dir_all`, with every directory it creates 0700 (existing ones are left alone).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, DIR_MODE);
    b.create(path)
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, FILE_MODE);
    o
}

/// `File::create` with mode 0600 for a new file (truncates an existing one).
pub fn create(path: &Path) -> io::Result<File> {
    options().create(true).truncate(true).open(path)
}

/// A new file, 0600; fails if it exists.
pub fn create_new(path: &Path) -> io::Result<File> {
    options().create_new(true).open(path)
}

/// `std::fs::write` with mode 0600 for a new file.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    create(path)?.write_all(bytes.as_ref())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn files_are_0600_and_directories_0700() {
        let root = std::env::temp_dir().join(format!("shenbao-fsmode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let deep = root.join("a/b/c");
        create_dir_all(&deep).expect("mkdir");
        for d in [&root, &root.join("a"), &root.join("a/b"), &deep] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
        let f = deep.join("f");
        write(&f, b"x").expect("write");
        assert_eq!(mode(&f), 0o600);
        let g = deep.join("g");
        create_new(&g).expect("create_new");
        assert_eq!(mode(&g), 0o600);
        assert!(create_new(&g).is_err(), "create_new must not reuse a file");
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
