//! Inputs found or kept by the fuzz targets in `fuzz/` (see fuzz/README.md), run through the
//! same entry points as the targets, so a fixed crash, hang or runaway allocation stays fixed.
//!
//! Every file under `tests/fixtures/fuzz/<target>/` is one input for that target (the `attach`
//! layout: first byte picks the file name, the rest is the file). Each must return — with a
//! result or a refusal — without panicking and within [`TIME_BOUND`], which is far above what
//! any of them takes (milliseconds) even in an unoptimised test build, and far below the
//! daemon's 120 s backstop.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use shenbao::attach::{self, Format, ZipLimits};
use shenbao::extract::{self, form, sheet};
use shenbao::message::{self, Attachment, LoopGuard};
use shenbao::roster::Roster;
use shenbao::subject::SubjectGrammar;

const TIME_BOUND: Duration = Duration::from_secs(30);

fn sections() -> Vec<String> {
    [
        "学思践悟·固本强基",
        "先锋领航·校园善治",
        "党旗飘扬·社区聚力",
        "师生结对·双向赋能",
        "育苗成长·薪火相传",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn guard() -> LoopGuard {
    LoopGuard {
        own_domain: "shenbao.example.test".to_string(),
        loop_header: "X-Shenbao-Loop".to_string(),
        own_addresses: vec!["shenbao@example.test".to_string()],
    }
}

fn run_subject(data: &[u8]) {
    let grammar = SubjectGrammar::new(
        "对标争先建设项目申报-{支部名称}",
        "对标争先建设项目结项-{支部名称}",
    )
    .expect("example patterns");
    let roster = Roster::from_csv(&include_bytes!("fixtures/samples/roster.csv")[..])
        .expect("sample roster");
    let subject = String::from_utf8_lossy(data);
    let parsed = grammar.parse(&subject);
    if let Some(branch) = parsed.branch.as_deref() {
        roster.match_branch(branch);
    }
    for d in &parsed.deviations {
        let _ = (d.code(), d.describe_zh());
    }
    grammar.application_subject_for(&subject);
}

fn run_message(data: &[u8]) {
    let understood = message::understand(data, &guard());
    extract::extract(&understood.attachments, &sections());
}

fn run_word(data: &[u8], formats: &[Format]) {
    for &format in formats {
        if let Ok(doc) = extract::read_word(data, format) {
            form::form_fields(
                &doc,
                &form::FormConfig {
                    sections: &sections(),
                },
            );
        }
    }
}

fn run_sheet(data: &[u8]) {
    if let Ok(wb) = sheet::read_workbook(data, &sheet::SheetLimits::default()) {
        sheet::read_summary(
            &wb,
            &sheet::SummaryConfig {
                sections: &sections(),
            },
        );
    }
}

/// The names of fuzz/fuzz_targets/attach.rs, picked by the input's first byte.
const ATTACH_NAMES: &[&str] = &[
    "对标争先建设项目申请表.doc",
    "对标争先建设项目申请表.docx",
    "申报汇总表.xls",
    "申报汇总表.xlsx",
    "申报材料.zip",
    "winmail.dat",
    "项目申请表.wps",
    "汇总表.et",
    "附件1.doc",
    "附件",
];

fn describe(filename: String, bytes: Vec<u8>, format: Format) -> Attachment {
    Attachment {
        safe_name: attach::safe_file_name(&filename),
        declared_format: attach::declared_format(&filename),
        role: attach::role(&filename, format),
        filename,
        content_type: "application/octet-stream".to_string(),
        size: bytes.len(),
        sha256: "0".repeat(64),
        bytes,
        format,
        entries: Vec::new(),
        error: None,
    }
}

/// What `message::understand` does with one attached file, then `extract::extract`.
fn run_attach(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let filename = ATTACH_NAMES[usize::from(pick) % ATTACH_NAMES.len()].to_string();
    let format = attach::sniff_named(bytes, &filename);
    let mut a = describe(filename, bytes.to_vec(), format);
    if matches!(format, Format::Zip | Format::Tnef) {
        let limits = ZipLimits::default();
        let listed = if format == Format::Zip {
            attach::list_zip(&a.bytes, &limits)
        } else {
            attach::list_tnef(&a.bytes, &limits)
        };
        match listed {
            Ok(entries) => {
                for entry in entries {
                    let format = attach::sniff_named(&entry.bytes, &entry.filename);
                    let mut child = describe(entry.filename, entry.bytes, format);
                    child.error = attach::content_note(&child.bytes, &child.filename);
                    a.entries.push(child);
                }
            }
            Err(e) => a.error = Some(e.to_string()),
        }
    } else {
        a.error = attach::content_note(&a.bytes, &a.filename);
    }
    extract::extract(std::slice::from_ref(&a), &sections());
}

fn entry_point(target: &str) -> fn(&[u8]) {
    match target {
        "subject" => run_subject,
        "message" => run_message,
        "doc" => |d| run_word(d, &[Format::Doc]),
        "docx" => |d| run_word(d, &[Format::Docx, Format::WordXml]),
        "sheet" => run_sheet,
        "attach" => run_attach,
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
