//! Inputs found or kept by the fuzz targets in `fuzz/` (see fuzz/README.md), run through the
//! same entry points as the targets, so a fixed crash, hang or runaway allocation stays fixed.
//!
//! Every file under `tests/fixtures/fuzz/<target>/` is one input for that target (the `attach`
//! layout: first byte picks the file name, the rest is the file; the `slim` layout: first byte
//! sets the run length, the rest is the mail). Each must return — with a
//! result or a refusal — without panicking and within [`TIME_BOUND`], which is far above what
//! any of them takes (milliseconds) even in an unoptimised test build, and far below the
//! daemon's 120 s backstop.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use shenbao::attach::Format;
use shenbao::extract::sheet;

/// The targets' own entry points and configuration.
#[path = "../../fuzz/fuzz_targets/common.rs"]
mod targets;

const TIME_BOUND: Duration = Duration::from_secs(30);

fn entry_point(target: &str) -> fn(&[u8]) {
    match target {
        "subject" => targets::run_subject,
        "message" => targets::run_message,
        "slim" => |d| {
            targets::run_slim(d);
        },
        "doc" => |d| targets::run_word(d, &[Format::Doc]),
        "docx" => |d| targets::run_word(d, &[Format::Docx, Format::WordXml]),
        "sheet" => targets::run_sheet,
        "attach" => targets::run_attach,
        other => panic!("tests/fixtures/fuzz/{other}: no such fuzz target"),
    }
}

fn inputs() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("tests/fixtures/fuzz") {
        let dir = dir.expect("directory entry").path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("target directory name")
            .to_string();
        for file in std::fs::read_dir(&dir).expect("target directory") {
            out.push((target.clone(), file.expect("fixture").path()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_fuzz_input_returns_in_time() {
    let inputs = inputs();
    assert!(!inputs.is_empty(), "tests/fixtures/fuzz holds no inputs");
    for (target, path) in inputs {
        let data = std::fs::read(&path).expect("read fixture");
        let run = entry_point(&target);
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            run(&data);
            let _ = tx.send(());
        });
        match rx.recv_timeout(TIME_BOUND) {
            Ok(()) => worker.join().expect("worker thread"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{}: still running after {TIME_BOUND:?}", path.display())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{}: panicked", path.display())
            }
        }
    }
}

fn fixture(path: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    std::fs::read(root.join(path)).expect("fixture")
}

/// A fuzzed .xls on which calamine panics (an offset from the file indexes past a buffer): the
/// panic stays inside `read_workbook`'s guard and the branch hears "damaged", not silence.
#[test]
fn calamine_panic_is_a_damaged_file() {
    let result = sheet::read_workbook(
        &fixture("sheet/calamine-panic-caught"),
        &sheet::SheetLimits::default(),
    );
    assert!(
        matches!(result, Err(sheet::SheetError::Damaged(_))),
        "{result:?}"
    );
}

/// A fuzzed .xlsx whose pre-check refuses it as too large instead of letting calamine allocate.
#[test]
fn oversized_workbook_is_refused_before_reading() {
    let result = sheet::read_workbook(
        &fixture("sheet/refused-too-large"),
        &sheet::SheetLimits::default(),
    );
    assert!(
        matches!(result, Err(sheet::SheetError::TooLarge)),
        "{result:?}"
    );
}

/// The hand-made `slim` seeds: the mail with a zip and a binary attachment is read the streaming
/// way with both bodies taken out (and, inside `run_slim`, agrees with the whole reading). A
/// base64 text body or a body inside a forwarded mail leaves its marker where no attachment
/// gives it back, so those may only agree or fall back to the whole reading.
#[test]
fn slim_seeds_are_read_with_bodies_taken_out() {
    let taken = targets::run_slim(&fixture("slim/multipart-base64-zip"));
    assert_eq!(taken, Some(2), "bodies taken out of multipart-base64-zip");
    for name in ["base64-text-body", "forwarded-rfc822-base64"] {
        let _ = targets::run_slim(&fixture(&format!("slim/{name}")));
    }
}
