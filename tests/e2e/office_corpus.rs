//! Every real Office file of `../shared/corpus/office` (encrypted, corrupt and hostile ones
//! included) through the same path an attachment takes: sniff the content, pick the reader,
//! read. No panic, a bounded time each, and the outcome the MANIFEST states where it states
//! one. Runs where `../shared` exists (CI has it); skips otherwise.

use shenbao::attach::{Format, sniff_named};
use shenbao::extract::{read_word, sheet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    p.join("MANIFEST.tsv").is_file().then_some(p)
}

/// What reading gave: Ok with the amount of text, or the error message.
fn read(bytes: &[u8], name: &str) -> (Format, Result<usize, String>) {
    let format = sniff_named(bytes, name);
    // As in extract(): bytes we did not recognise still go to the reader the name asks for,
    // which says precisely why it cannot read them.
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let unknown = format == Format::Other;
    let result = if format.is_word() || (unknown && ext.starts_with("doc")) {
        read_word(bytes, format).map(|d| d.plain_text().len())
    } else if format.is_spreadsheet() || (unknown && ext.starts_with("xls")) {
        sheet::read_workbook(bytes, &sheet::SheetLimits::default())
            .map(|wb| wb.sheets.iter().map(|s| s.rows.len()).sum())
            .map_err(|e| e.to_string())
    } else {
        Err(format!("不是 Office 文件（{}）", format.as_str()))
    };
    (format, result)
}

#[test]
fn every_office_file_reads_or_fails_cleanly() {
    let Some(corpus) = corpus() else {
        eprintln!("../shared/corpus not present: skipped (CI has it)");
        return;
    };
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).expect("manifest");
    let note_of = |rel: &str| {
        manifest
            .lines()
            .find(|l| l.split('\t').next() == Some(rel))
            .and_then(|l| l.split('\t').nth(4))
            .unwrap_or("")
            .to_string()
    };
    let mut all = Vec::new();
    crate::common::files_under(&corpus.join("office"), &mut all);
    all.retain(|p| {
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        matches!(ext.as_str(), "doc" | "docx" | "xls" | "xlsx")
    });
    all.sort();
    assert!(
        all.len() >= 120,
        "expected the ~127 office files, found {}",
        all.len()
    );
    let (mut ok, mut err) = (0, 0);
    for path in &all {
        let rel = path
            .strip_prefix(&corpus)
            .unwrap_or(path)
            .to_string_lossy()
            .to_string();
        let bytes = std::fs::read(path).expect("read");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let t0 = Instant::now();
        let outcome = std::panic::catch_unwind(|| read(&bytes, name));
        let took = t0.elapsed();
        let (format, result) = outcome.unwrap_or_else(|_| panic!("{rel}: the reader panicked"));
        assert!(took < Duration::from_secs(5), "{rel}: took {took:?}");
        let note = note_of(&rel);
        eprintln!(
            "{rel:<75} {:<9} {:>6} ms  {}",
            format.as_str(),
            took.as_millis(),
            match &result {
                Ok(n) => format!("ok ({n})"),
                Err(e) => format!("error: {e}"),
            }
        );
        match &result {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
        if note.starts_with("ENCRYPTED") {
            let e = result
                .as_ref()
                .expect_err(&format!("{rel}: an encrypted file must be refused"));
            assert!(
                e.contains("密码"),
                "{rel}: the reason says it has a password: {e}"
            );
        }
        if note.starts_with("Word 6") || note.starts_with("Word 95") || note.starts_with("BIFF4") {
            let e = result
                .as_ref()
                .expect_err(&format!("{rel}: a pre-97 format is refused"));
            assert!(
                e.contains("另存"),
                "{rel}: the reason says how to save it: {e}"
            );
        }
        if note.starts_with("CORRUPT: invalid OLE")
            || note.contains("empty zip")
            || note.contains("text stub")
        {
            assert!(result.is_err(), "{rel}: {note}");
        }
        if note.contains("sniff by content") {
            assert!(result.is_ok(), "{rel}: {note}: {result:?}");
        }
        if note.starts_with("SECURITY") {
            // No entity was expanded and nothing from the file system was read in.
            if let Ok(n) = result {
                assert!(
                    n < 1_000_000,
                    "{rel}: {n} characters: an entity was expanded"
                );
            }
        }
    }
    eprintln!(
        "{} files: {ok} read, {err} refused with a reason",
        all.len()
    );
}
