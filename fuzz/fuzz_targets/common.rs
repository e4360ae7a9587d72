//! Shared by the fuzz targets and tests/e2e/fuzz_regressions.rs (which runs the kept inputs through
//! the same functions): the campaign configuration the daemon would run with (the example
//! config's subject patterns, sections and the sample roster), each target's entry point, and
//! the panic policy.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use shenbao::attach::Format;
use shenbao::campaign::roster::Roster;
use shenbao::campaign::subject::SubjectGrammar;
use shenbao::config::DEFAULT_SECTIONS;
use shenbao::extract::{form, sheet};
use shenbao::message::LoopGuard;

/// `campaign.application_subject` / `closure_subject` of config/shenbao.example.toml.
pub const APPLICATION_SUBJECT: &str = "对标争先建设项目申报-{支部名称}";
pub const CLOSURE_SUBJECT: &str = "对标争先建设项目结项-{支部名称}";

/// `campaign.sections`: the notice's five, as the example config has them.
pub fn sections() -> &'static [String] {
    static SECTIONS: OnceLock<Vec<String>> = OnceLock::new();
    SECTIONS.get_or_init(|| DEFAULT_SECTIONS.map(String::from).to_vec())
}

pub fn grammar() -> &'static SubjectGrammar {
    static GRAMMAR: OnceLock<SubjectGrammar> = OnceLock::new();
    GRAMMAR.get_or_init(|| {
        SubjectGrammar::new(APPLICATION_SUBJECT, CLOSURE_SUBJECT).expect("example patterns")
    })
}

pub fn roster() -> &'static Roster {
    static ROSTER: OnceLock<Roster> = OnceLock::new();
    ROSTER.get_or_init(|| {
        Roster::from_csv(&include_bytes!("../../tests/fixtures/samples/roster.csv")[..])
            .expect("sample roster")
    })
}

/// What `Pipeline::new` builds from the example config.
pub fn guard() -> &'static LoopGuard {
    static GUARD: OnceLock<LoopGuard> = OnceLock::new();
    GUARD.get_or_init(|| LoopGuard {
        own_domain: "shenbao.example.test".to_string(),
        loop_header: "X-Shenbao-Loop".to_string(),
        own_addresses: vec![
            "shenbao@example.test".to_string(),
            "dangwei@example.test".to_string(),
        ],
    })
}

static DEPENDENCY_PANICS: AtomicUsize = AtomicUsize::new(0);

/// The panic policy, installed once at start-up on top of libFuzzer's abort-on-panic hook.
///
/// shenbao deliberately wraps some dependencies (calamine, cfb, zip, mail-parser) in
/// `catch_unwind` and turns their panics into "damaged file" answers; such a panic is the
/// designed behaviour, not a crash of the daemon. So a panic whose location is inside a
/// dependency (`~/.cargo/registry`, `~/.cargo/git`) is let unwind: if shenbao catches it the
/// input simply passes, if it does not, libfuzzer-sys aborts when it reaches the target's
/// boundary and the crash is reported. Every other panic — in shenbao's own code or in std on
/// shenbao's behalf (an index out of bounds, an overflow) — aborts at once even when a
/// `catch_unwind` further up would hide it, because it is a bug in our code.
pub fn install_panic_policy() {
    let libfuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_dependency = info.location().is_some_and(|l| {
            let f = l.file();
            f.contains("/.cargo/registry/") || f.contains("/.cargo/git/")
        });
        if in_dependency {
            let n = DEPENDENCY_PANICS.fetch_add(1, Ordering::Relaxed);
            if n < 5 || n.is_power_of_two() {
                eprintln!("[fuzz] dependency panic #{n} (left to shenbao's catch_unwind): {info}");
            }
        } else {
            libfuzzer_hook(info);
        }
    }));
}

/// `subject`: the subject grammar and branch matching on any text, as the pipeline runs them
/// on the decoded Subject header, and the help mail's exact subject for it.
pub fn run_subject(data: &[u8]) {
    let subject = String::from_utf8_lossy(data);
    let parsed = grammar().parse(&subject);
    if let Some(branch) = parsed.branch.as_deref() {
        let _ = roster().match_branch(branch);
    }
    for d in &parsed.deviations {
        let _ = (d.code(), d.describe_zh());
    }
    let _ = grammar().application_subject_for(&subject);
}

/// `message`: one raw message through what `Pipeline::process` runs on a stored blob.
pub fn run_message(data: &[u8]) {
    let understood = shenbao::message::understand(data, guard());
    let _ = shenbao::extract::extract(&understood.attachments, sections());
    let parsed = grammar().parse(&understood.subject);
    if let Some(branch) = parsed.branch.as_deref() {
        let _ = roster().match_branch(branch);
    }
}

/// `slim`: differential. The first byte sets `slim::slim`'s run length (16 + 16 × byte, so even
/// short inputs have bodies taken out), the rest is the raw mail. Whenever
/// `message::understand_slimmed` answers for the slimmed copy, its answer must be exactly
/// `message::understand`'s on the whole mail — the JSON and every attachment's and zip entry's
/// bytes — and it must have handed each of those files over exactly once. `None` (the daemon
/// then reads the whole mail) is always allowed. Returns how many bodies were taken out when
/// it answered, `None` when it did not.
pub fn run_slim(data: &[u8]) -> Option<usize> {
    let (&pick, raw) = data.split_first()?;
    let min_run = 16 + 16 * usize::from(pick);
    let mut stored: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let slimmed = shenbao::message::slim::slim(
        raw,
        min_run,
        || Ok(Vec::new()),
        |w: Vec<u8>| {
            let sha = shenbao::store::blobs::sha256_hex(&w);
            stored.insert(sha.clone(), w);
            Ok(sha)
        },
    )
    .expect("slim in memory cannot fail");
    let taken = slimmed.parts.len();
    let mut load = |sha: &str| stored.get(sha).cloned();
    let mut handed: Vec<String> = Vec::new();
    let got = shenbao::message::understand_slimmed(slimmed, guard(), &mut load, &mut |a| {
        handed.push(a.sha256.clone())
    });
    let got = got?;
    let want = shenbao::message::understand(raw, guard());
    let json =
        |u: &shenbao::message::Understood| serde_json::to_value(u).expect("Understood serialises");
    let (got_json, want_json) = (json(&got), json(&want));
    assert!(
        got_json == want_json,
        "slim (min_run {min_run}): understand_slimmed differs from understand\n\
         slimmed: {got_json:#}\nwhole:   {want_json:#}"
    );
    let files = |u: &shenbao::message::Understood| -> Vec<Vec<u8>> {
        u.attachments
            .iter()
            .flat_map(|a| std::iter::once(a).chain(&a.entries))
            .map(|a| a.bytes.clone())
            .collect()
    };
    let (got_files, want_files) = (files(&got), files(&want));
    assert!(
        got_files.len() == want_files.len(),
        "slim (min_run {min_run}): {} files slimmed, {} whole",
        got_files.len(),
        want_files.len()
    );
    for (i, (g, w)) in got_files.iter().zip(&want_files).enumerate() {
        assert!(
            g == w,
            "slim (min_run {min_run}): file {i} has different bytes ({} slimmed, {} whole)",
            g.len(),
            w.len()
        );
    }
    // Every file of the result handed over exactly once; entries of an archive whose listing
    // failed part-way were handed over too and are not in the result (see understand_each).
    for a in got
        .attachments
        .iter()
        .flat_map(|a| std::iter::once(a).chain(&a.entries))
    {
        let at = handed.iter().position(|h| *h == a.sha256);
        assert!(
            at.is_some(),
            "slim (min_run {min_run}): {} ({}) never handed to each_file",
            a.filename,
            a.sha256
        );
        if let Some(at) = at {
            handed.swap_remove(at);
        }
    }
    Some(taken)
}

/// `doc` (`Format::Doc`) and `docx` (`Format::Docx`, `Format::WordXml`): the Word reader as
/// `extract::extract` calls it, then the form fields.
pub fn run_word(data: &[u8], formats: &[Format]) {
    for &format in formats {
        if let Ok(doc) = shenbao::extract::read_word(data, format) {
            let _ = form::form_fields(
                &doc,
                &form::FormConfig {
                    sections: sections(),
                },
            );
        }
    }
}

/// `sheet`: the .xls/.xlsx reader with the default limits, then the summary.
pub fn run_sheet(data: &[u8]) {
    if let Ok(wb) = sheet::read_workbook(data, &sheet::SheetLimits::default()) {
        let _ = sheet::read_summary(
            &wb,
            &sheet::SummaryConfig {
                sections: sections(),
            },
        );
    }
}

/// Names as branches send them: the form, the summary, a zip, Outlook's winmail.dat, and
/// names that do not match the content.
pub const ATTACH_NAMES: &[&str] = &[
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

/// `attach`: one attached file as `message::understand` makes it (zip and winmail.dat opened),
/// then `extract::extract`. The first byte picks the name the sender gave (the name decides the
/// role and breaks ties in sniffing), the rest is the file.
pub fn run_attach(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let filename = ATTACH_NAMES[usize::from(pick) % ATTACH_NAMES.len()].to_string();
    let a = shenbao::message::attachment(
        filename,
        "application/octet-stream".to_string(),
        bytes.to_vec(),
    );
    let _ = shenbao::extract::extract(std::slice::from_ref(&a), sections());
}
