//! `ingest` against a 60 MB file, with the memory it used measured: alone in its own test
//! binary, because a child's peak memory as the kernel reports it starts at its parent's (a
//! spawned child execs from the parent's address space, and Linux carries that high-water mark
//! into `ru_maxrss`): the other CLI tests running in parallel threads of one process would
//! inflate it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shenbao-mem-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

/// Sets `key = value` in `[section]` of a config file (the key exists in `shenbao init`'s).
fn set_key(path: &Path, section: &str, key: &str, value: &str) {
    let text = std::fs::read_to_string(path).expect("config");
    let mut current = String::new();
    let mut done = false;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        if current == section && t.split('=').next().map(str::trim) == Some(key) {
            out.push_str(&format!("{key} = {value}\n"));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "{key} not in [{section}]");
    std::fs::write(path, out).expect("config");
}

/// Runs shenbao and reports its peak resident memory (the kernel's high-water mark, VmHWM,
/// as `wait4` returns it in `ru_maxrss`) in KiB.
// The child is reaped by `wait4` (which also returns its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn shenbao_measured(dir: &Path, args: &[&str]) -> (bool, String, i64) {
    use std::io::Read as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .current_dir(dir)
        .args(args)
        .env("SHENBAO_LOG", "warn")
        .env_remove("SHENBAO_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run shenbao");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 reaps the child we spawned and
    // fills both out-parameters, which outlive the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let output = reader.join().expect("reader");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, output, usage.ru_maxrss)
}

/// `ingest` looks at a file's size before reading it: a 60 MB file over
/// `imap.max_message_size` is refused with the key named, and the process stays small.
#[test]
fn ingest_refuses_a_60_mb_file_without_reading_it() {
    let dir = tmp("huge");
    let (ok, out, _) = shenbao_measured(&dir, &["init", "--dir", "local"]);
    assert!(ok, "{out}");
    let cfg = "local/shenbao.toml";
    set_key(&dir.join(cfg), "imap", "max_message_size", "\"50MB\"");
    // Written without holding 60 MB here: a child spawned by this process starts its
    // high-water mark at ours (vfork + exec keeps the larger of the two), so this test must
    // stay small itself. The tail is a hole that reads as zeros.
    let huge = dir.join("huge.eml");
    std::fs::write(&huge, b"From: a@example.test\r\nSubject: x\r\n\r\n").expect("header");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .and_then(|f| f.set_len(60 << 20))
        .expect("60 MB file");
    let small =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/c001/message.eml");
    let (ok, out, peak_kib) = shenbao_measured(
        &dir,
        &[
            "--config",
            cfg,
            "ingest",
            "--no-reply",
            huge.to_str().unwrap_or_default(),
            small.to_str().unwrap_or_default(),
        ],
    );
    assert!(!ok, "a refused file makes ingest fail: {out}");
    assert!(
        out.contains("huge.eml") && out.contains("imap.max_message_size"),
        "{out}"
    );
    assert!(out.contains("60.0 MB") && out.contains("50.0 MB"), "{out}");
    // The other file is still registered.
    assert!(out.contains("c001"), "{out}");
    assert!(out.contains("第1版"), "{out}");
    eprintln!("ingest of a 60 MB file: peak memory {} KiB", peak_kib);
    assert!(
        peak_kib < 45 * 1024,
        "peak memory {peak_kib} KiB: the file was read into memory"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
