//! `shenbao export --materials OUT`: the files reviewers work from, folder by college.
//!
//! Reviewers want each branch's 申请表 and 汇总表 (and, after the projects ran, their closure
//! materials) as files, `学院/支部名称/原文件名`, with the consolidated 汇总表.xlsx on top, as a
//! directory or a zip they can open on Windows and macOS.
//!
//! What goes in, per branch:
//! * from its latest application, the attachments whose role is form or summary, including
//!   those found inside a zip attachment;
//! * from every closure mail it sent (materials arrive over several mails), the attachments
//!   with a closure role; the newest mail wins when two carry a file of the same name.
//!
//! Every name that came from a mail (file names, and the branch as written in the subject when
//! the roster does not know it) becomes one safe path component ([`path_component`]); two files
//! that end up with the same name in one folder get `名称 (2).docx` ([`unique_name`]). The
//! bytes come from the blob store and are checked against the sha256 the database recorded.
//!
//! [`layout`] is pure (branches and their files in, paths out) and tested with hostile names;
//! [`collect`] reads the database, [`write`] the files.

use crate::app::App;
use crate::export::{ExportAttachment, ExportSubmission};
use crate::store::blobs::{BlobDir, sha256_hex};
use crate::textnorm::normalize;
use chrono::{DateTime, Datelike, Timelike, Utc};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use unicode_normalization::UnicodeNormalization;

/// The consolidated sheet's name at the top of the output.
pub const SUMMARY_NAME: &str = "汇总表.xlsx";
/// The top folder of applications whose branch the roster does not know.
pub const UNKNOWN_FOLDER: &str = "未识别支部";
/// Longest path component, in UTF-8 bytes: under every file system's 255, with room for the
/// ` (2)` of a duplicate, and short enough that `学院/支部/文件` stays within Windows' 260
/// characters when unpacked on a desktop.
pub const MAX_COMPONENT_BYTES: usize = 150;

/// Attachment roles that are reviewers' materials, by kind of submission.
const APPLICATION_ROLES: [&str; 2] = ["form", "summary"];
const CLOSURE_ROLES: [&str; 3] = ["closure_report", "reimbursement", "case_study"];

/// Device names Windows will not create a file for, whatever the extension (`CON.docx`).
const RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "conin$", "conout$", "com0", "com1", "com2", "com3", "com4",
    "com5", "com6", "com7", "com8", "com9", "com¹", "com²", "com³", "lpt0", "lpt1", "lpt2", "lpt3",
    "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9", "lpt¹", "lpt²", "lpt³",
];

#[derive(Debug, thiserror::Error)]
pub enum MaterialsError {
    #[error("--section「{given}」不是配置中的申报板块：请写成其中之一：{choices}")]
    UnknownSection { given: String, choices: String },
    #[error("--college「{given}」不是名册中的学院：请写成名册中的写法，例如 {choices}")]
    UnknownCollege { given: String, choices: String },
    #[error("--{flag}「{given}」可以指 {matches}：请写出完整的名称")]
    Ambiguous {
        flag: &'static str,
        given: String,
        matches: String,
    },
    #[error("{path} 已存在且不是空目录：请换一个目录名，或先删除它")]
    NotEmpty { path: String },
    #[error("写入 {path} 失败（{source}）：请确认有写权限、磁盘空间足够")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("生成压缩包 {path} 失败（{source}）：请确认有写权限、磁盘空间足够")]
    Zip {
        path: String,
        source: zip::result::ZipError,
    },
}

/// One safe path component from a name that came from a mail (or a roster cell).
///
/// NFC; control characters (NUL included), zero-width and bidirectional format characters and
/// line separators are dropped; `/ \ : * ? " < > |` are replaced by `_`; leading dots and
/// spaces and trailing dots and spaces are trimmed (so `..` and `.hidden` cannot survive, and
/// Windows, which drops trailing dots, names the file as we do); Windows device names get a
/// `_` prefix; the result is at most [`MAX_COMPONENT_BYTES`] bytes, cut on a character
/// boundary and keeping a short extension. `fallback` when nothing is left.
pub fn path_component(raw: &str, fallback: &str) -> String {
    let cleaned: String = raw
        .nfc()
        .filter(|c| !is_invisible(*c))
        .map(|c| {
            if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '_') {
        return fallback.to_string();
    }
    let mut name = trimmed.to_string();
    if is_reserved(&name) {
        name.insert(0, '_');
    }
    truncate_keeping_extension(&name, MAX_COMPONENT_BYTES, fallback)
}

/// A file name from a mail as a safe component: only its last path segment counts
/// (`C:\Users\张三\Desktop\汇总表.xls` is `汇总表.xls`), as the attachment reader treats it.
pub fn file_component(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).find(|s| !s.trim().is_empty());
    path_component(base.unwrap_or(""), "附件")
}

/// `name`, or `name (2)`, `name (3)` … before its extension, whichever is not in `taken` yet
/// (compared without case and in NFC, as Windows and macOS compare names); records it in
/// `taken`. The result stays within [`MAX_COMPONENT_BYTES`].
pub fn unique_name(name: &str, taken: &mut HashSet<String>) -> String {
    if taken.insert(name_key(name)) {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    for n in 2usize.. {
        let suffix = format!(" ({n}){ext}");
        let room = MAX_COMPONENT_BYTES.saturating_sub(suffix.len());
        let stem = cut_at_boundary(stem, room).trim_end();
        let candidate = format!("{stem}{suffix}");
        if taken.insert(name_key(&candidate)) {
            return candidate;
        }
    }
    unreachable!("an unbounded counter finds a free name")
}

/// How file systems that ignore case (Windows, macOS) compare two names.
fn name_key(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
}

fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{061C}' | '\u{180E}')
}

fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    RESERVED.contains(&stem.to_lowercase().as_str())
}

/// (`申请表`, `.docx`); no extension when there is no dot, the dot leads, or what follows it
/// is long or has spaces (then it is part of the name, not a type).
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => {
            let ext = &name[i..];
            if ext.len() <= 12 && !ext.contains(char::is_whitespace) {
                (&name[..i], ext)
            } else {
                (name, "")
            }
        }
        _ => (name, ""),
    }
}

fn cut_at_boundary(s: &str, max: usize) -> &str {
    let mut cut = max.min(s.len());
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

fn truncate_keeping_extension(name: &str, max: usize, fallback: &str) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    let stem = cut_at_boundary(stem, max.saturating_sub(ext.len()))
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if stem.is_empty() {
        return fallback.to_string();
    }
    format!("{stem}{ext}")
}

/// Application materials or closure materials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Application,
    Closure,
}

/// One file as the database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// The name as received (decoded, not yet made safe).
    pub name: String,
    pub sha256: String,
    pub size: i64,
    pub kind: Kind,
    /// When its mail arrived: the file's date in the output.
    pub received_at: Option<DateTime<Utc>>,
    /// Which mail it came in (files of one mail never replace each other).
    pub mail: i64,
}

/// One branch in the selection and its files: application files in mail order, then closure
/// files, newest mail first.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchFiles {
    /// The roster's college; `None` for an application whose branch is not in the roster.
    pub college: Option<String>,
    /// The roster name, or the branch as written in the subject.
    pub branch: String,
    pub files: Vec<SourceFile>,
}

/// A file's place in the output.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `学院/支部/文件名`, always with `/`.
    pub path: String,
    pub file: SourceFile,
}

/// What [`layout`] decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    pub entries: Vec<Entry>,
    /// Branches in the selection.
    pub branches: usize,
    /// Branches none of whose files qualified (listed only in the 汇总表).
    pub without_files: Vec<String>,
    /// Older closure files replaced by a newer mail's file of the same name.
    pub superseded: usize,
}

/// Where every file goes: `学院/支部/文件名`, each part made safe, no two paths equal (as
/// Windows and macOS compare them) and none equal to the top-level 汇总表.xlsx.
///
/// A closure file whose name a newer closure mail of the same branch already used is left out
/// (the branch sent a corrected version); the same name twice in one mail is kept twice.
pub fn layout(branches: &[BranchFiles]) -> Layout {
    let mut out = Layout {
        branches: branches.len(),
        ..Layout::default()
    };
    let mut top: HashSet<String> = HashSet::from([name_key(SUMMARY_NAME)]);
    let mut college_dirs: HashMap<String, String> = HashMap::new();
    let mut branch_dirs: HashMap<String, HashSet<String>> = HashMap::new();
    for b in branches {
        let college = match &b.college {
            Some(c) => c.clone(),
            None => UNKNOWN_FOLDER.to_string(),
        };
        let college_dir = college_dirs
            .entry(college.clone())
            .or_insert_with(|| unique_name(&path_component(&college, "未填学院"), &mut top))
            .clone();
        let taken = branch_dirs.entry(college_dir.clone()).or_default();
        let branch_dir = unique_name(&path_component(&b.branch, "未写支部名称"), taken);

        let mut in_folder: HashSet<String> = HashSet::new();
        let mut placed: Vec<(String, String)> = Vec::new(); // (name key, sha256)
        let mut newer_closure_names: HashSet<String> = HashSet::new();
        let mut this_mail: Option<i64> = None;
        let mut this_mail_names: HashSet<String> = HashSet::new();
        let mut any = false;
        for f in &b.files {
            let name = file_component(&f.name);
            let key = name_key(&name);
            if f.kind == Kind::Closure {
                if this_mail != Some(f.mail) {
                    newer_closure_names.extend(this_mail_names.drain());
                    this_mail = Some(f.mail);
                }
                if newer_closure_names.contains(&key) {
                    out.superseded += 1;
                    continue;
                }
                this_mail_names.insert(key.clone());
            }
            // The very same file twice under one name (attached twice, or loose and zipped).
            if placed.iter().any(|(k, s)| *k == key && *s == f.sha256) {
                continue;
            }
            placed.push((key, f.sha256.clone()));
            let file_name = unique_name(&name, &mut in_folder);
            out.entries.push(Entry {
                path: format!("{college_dir}/{branch_dir}/{file_name}"),
                file: f.clone(),
            });
            any = true;
        }
        if !any {
            out.without_files.push(b.branch.clone());
        }
    }
    out
}

/// `--section` / `--college`, as given.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub section: Option<String>,
    pub college: Option<String>,
}

/// The one option `given` names: equal after normalising, or else the only one containing it.
fn pick<'a>(
    flag: &'static str,
    given: &str,
    options: &'a [String],
) -> Result<&'a str, MaterialsError> {
    let g = normalize(given);
    if let Some(o) = options.iter().find(|o| normalize(o) == g) {
        return Ok(o);
    }
    let partial: Vec<&String> = options
        .iter()
        .filter(|o| !g.is_empty() && normalize(o).contains(&g))
        .collect();
    match partial.as_slice() {
        [one] => Ok(one),
        [] => {
            let choices = options
                .iter()
                .take(8)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("、");
            Err(if flag == "section" {
                MaterialsError::UnknownSection {
                    given: given.to_string(),
                    choices,
                }
            } else {
                MaterialsError::UnknownCollege {
                    given: given.to_string(),
                    choices,
                }
            })
        }
        many => Err(MaterialsError::Ambiguous {
            flag,
            given: given.to_string(),
            matches: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("、"),
        }),
    }
}

/// The selection: its branches with their files, and their latest applications for the sheet.
pub struct Collected {
    pub branches: Vec<BranchFiles>,
    pub applications: Vec<ExportSubmission>,
    /// The filter as resolved (`板块「…」、学院「…」`), empty without one.
    pub described: String,
}

fn field<'a>(s: &'a ExportSubmission, key: &str) -> Option<&'a str> {
    s.fields
        .as_ref()?
        .get(key)?
        .as_str()
        .filter(|t| !t.is_empty())
}

/// Where an application falls for the filters: its branch key (as the pipeline forms it),
/// its college (the roster's; the form's when the roster does not know the branch) and its
/// section (the form's).
struct Place {
    key: String,
    college: Option<String>,
    section: Option<String>,
}

fn place(s: &ExportSubmission) -> Place {
    Place {
        key: match &s.branch {
            Some(b) => b.clone(),
            None => format!(
                "?{}",
                normalize(s.branch_in_subject.as_deref().unwrap_or(""))
            ),
        },
        college: s
            .college
            .clone()
            .or_else(|| field(s, "college").map(str::to_string)),
        section: field(s, "section").map(str::to_string),
    }
}

/// How many branches each choice of [`Filter`] puts in the output (the board's 材料 page).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Tally {
    /// Without a filter.
    pub all: usize,
    /// Per roster college, in roster order.
    pub colleges: Vec<(String, usize)>,
    /// Per configured section, in the configuration's order.
    pub sections: Vec<(String, usize)>,
}

/// [`Tally`] from the latest applications and the closure mails (branch key, roster college),
/// by the rules of [`collect`]: an application counts for its college and its section; a
/// branch that sent closure mail but no application counts for its roster college only.
pub fn tally_of(
    colleges: &[String],
    sections: &[String],
    latest: &[ExportSubmission],
    closure: &[(String, Option<String>)],
) -> Tally {
    let mut college_n: HashMap<&str, usize> = HashMap::new();
    let mut section_n: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut all = 0;
    let mut places = Vec::new();
    for s in latest.iter().filter(|s| s.kind == "application") {
        let p = place(s);
        if seen.insert(p.key.clone()) {
            places.push(p);
        }
    }
    for (key, college) in closure {
        if seen.insert(key.clone()) {
            places.push(Place {
                key: key.clone(),
                college: college.clone(),
                section: None,
            });
        }
    }
    for p in &places {
        all += 1;
        if let Some(c) = colleges.iter().find(|c| Some(*c) == p.college.as_ref()) {
            *college_n.entry(c).or_default() += 1;
        }
        if let Some(s) = sections.iter().find(|s| Some(*s) == p.section.as_ref()) {
            *section_n.entry(s).or_default() += 1;
        }
    }
    Tally {
        all,
        colleges: colleges
            .iter()
            .map(|c| (c.clone(), college_n.get(c.as_str()).copied().unwrap_or(0)))
            .collect(),
        sections: sections
            .iter()
            .map(|s| (s.clone(), section_n.get(s.as_str()).copied().unwrap_or(0)))
            .collect(),
    }
}

/// [`tally_of`] the database as it is now.
pub async fn tally(p: &App) -> anyhow::Result<Tally> {
    let latest = crate::export::latest(&p.store).await?;
    let closure: Vec<(String, Option<String>)> = p
        .store
        .closure_submissions()
        .await?
        .into_iter()
        .map(|r| (r.branch_key, r.college))
        .collect();
    Ok(tally_of(
        &p.roster.colleges(),
        &p.cfg.campaign.sections,
        &latest,
        &closure,
    ))
}

/// The filter's college or section resolved as [`collect`] resolves it (a unique part of a
/// name is enough): the error says what to choose.
pub fn resolve(p: &App, filter: &Filter) -> Result<Filter, MaterialsError> {
    Ok(Filter {
        section: match &filter.section {
            Some(s) => Some(pick("section", s, &p.cfg.campaign.sections)?.to_string()),
            None => None,
        },
        college: match &filter.college {
            Some(c) => Some(pick("college", c, &p.roster.colleges())?.to_string()),
            None => None,
        },
    })
}

/// What [`export`] wrote.
pub struct Exported {
    pub layout: Layout,
    pub written: Written,
    /// Applications in the 汇总表.
    pub applications: usize,
    /// The filter as resolved (`板块「…」、学院「…」`), empty without one.
    pub described: String,
}

/// `export --materials OUT` and the board's download: the selection read, laid out, its
/// 汇总表 made and everything written to `out` (a zip when it ends in `.zip`).
pub async fn export(p: &App, filter: &Filter, out: &Path) -> anyhow::Result<Exported> {
    let collected = collect(p, filter).await?;
    let layout = layout(&collected.branches);
    let sheet = crate::export::to_xlsx(
        &format!("{}申报汇总表", p.cfg.campaign.name),
        &collected.applications,
    )?;
    let (blobs, target) = (p.store.blobs.clone(), out.to_path_buf());
    let (written, layout) = tokio::task::spawn_blocking(move || {
        write(&target, &layout, &sheet, &blobs).map(|w| (w, layout))
    })
    .await??;
    Ok(Exported {
        layout,
        written,
        applications: collected.applications.len(),
        described: collected.described,
    })
}

fn wanted(files: &[ExportAttachment], roles: &[&str], out: &mut Vec<(String, String, i64)>) {
    for a in files {
        if roles.contains(&a.role.as_str()) {
            out.push((a.filename.clone(), a.sha256.clone(), a.size));
        }
        wanted(&a.entries, roles, out);
    }
}

/// Reads the selection from the database: every branch with a latest application or a closure
/// mail, filtered by section (the application's) and college (the roster's; the form's for an
/// application whose branch is unknown).
pub async fn collect(p: &App, filter: &Filter) -> anyhow::Result<Collected> {
    let Filter { section, college } = resolve(p, filter)?;
    let described = [
        section.as_ref().map(|s| format!("板块「{s}」")),
        college.as_ref().map(|c| format!("学院「{c}」")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("、");

    let latest = crate::export::latest(&p.store).await?;
    // Branch key (as the pipeline forms it) → the section of its latest application.
    let mut applied: HashMap<String, Option<String>> = HashMap::new();
    let mut branches: Vec<BranchFiles> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut applications = Vec::new();
    for s in latest.iter().filter(|s| s.kind == "application") {
        let Place {
            key,
            college: sub_college,
            section: sub_section,
        } = place(s);
        applied.insert(key.clone(), sub_section.clone());
        if section
            .as_ref()
            .is_some_and(|w| sub_section.as_ref() != Some(w))
            || college
                .as_ref()
                .is_some_and(|w| sub_college.as_ref() != Some(w))
        {
            continue;
        }
        let mut files = Vec::new();
        wanted(&s.attachments, &APPLICATION_ROLES, &mut files);
        let received = DateTime::parse_from_rfc3339(&s.received_at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        index.insert(key, branches.len());
        branches.push(BranchFiles {
            college: s.college.clone(),
            branch: s
                .branch
                .clone()
                .or_else(|| s.branch_in_subject.clone())
                .unwrap_or_default(),
            files: files
                .into_iter()
                .map(|(name, sha256, size)| SourceFile {
                    name,
                    sha256,
                    size,
                    kind: Kind::Application,
                    received_at: received,
                    mail: 0,
                })
                .collect(),
        });
        applications.push(s.clone());
    }

    for r in p.store.closure_submissions().await? {
        let key = r.branch_key;
        let roster_college = r.college;
        let i = match index.get(&key) {
            Some(i) => *i,
            None => {
                // Its application was filtered out; or it has none, and then only a college
                // filter can take it (a section is the application's).
                if applied.contains_key(&key)
                    || section.is_some()
                    || college
                        .as_ref()
                        .is_some_and(|w| roster_college.as_ref() != Some(w))
                {
                    continue;
                }
                index.insert(key.clone(), branches.len());
                branches.push(BranchFiles {
                    college: roster_college,
                    branch: r.branch.or(r.branch_text).unwrap_or_default(),
                    files: Vec::new(),
                });
                branches.len() - 1
            }
        };
        let mail = r.message;
        let received = r.received_at;
        let mut files = Vec::new();
        wanted(
            &crate::export::attachments_of(&p.store, mail).await?,
            &CLOSURE_ROLES,
            &mut files,
        );
        if let Some(b) = branches.get_mut(i) {
            b.files
                .extend(files.into_iter().map(|(name, sha256, size)| SourceFile {
                    name,
                    sha256,
                    size,
                    kind: Kind::Closure,
                    received_at: received,
                    mail,
                }));
        }
    }
    Ok(Collected {
        branches,
        applications,
        described,
    })
}

/// What [`write`] did.
#[derive(Debug, Default)]
pub struct Written {
    pub files: usize,
    pub application_files: usize,
    pub closure_files: usize,
    /// Files whose stored bytes are missing or do not match their sha256: left out.
    pub damaged: Vec<String>,
}

/// Writes the layout and the sheet to `out`: a zip when it ends in `.zip`, else a directory
/// (new or empty). A zip is written beside its final name and renamed into place, so a failed
/// export never leaves half a file under that name.
pub fn write(
    out: &Path,
    layout: &Layout,
    summary_xlsx: &[u8],
    blobs: &BlobDir,
) -> Result<Written, MaterialsError> {
    if is_zip(out) {
        write_zip(out, layout, summary_xlsx, blobs)
    } else {
        write_dir(out, layout, summary_xlsx, blobs)
    }
}

pub fn is_zip(out: &Path) -> bool {
    out.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// The stored bytes of `f`, or `None` (noted in `written`) when they are gone or damaged.
fn bytes_of(blobs: &BlobDir, e: &Entry, written: &mut Written) -> Option<Vec<u8>> {
    match blobs.get(&e.file.sha256) {
        Ok(b) if sha256_hex(&b) == e.file.sha256 => Some(b),
        Ok(_) => {
            written
                .damaged
                .push(format!("{}（存档内容与 sha256 不符）", e.path));
            None
        }
        Err(err) => {
            written
                .damaged
                .push(format!("{}（找不到存档：{err}）", e.path));
            None
        }
    }
}

fn count(written: &mut Written, e: &Entry) {
    written.files += 1;
    match e.file.kind {
        Kind::Application => written.application_files += 1,
        Kind::Closure => written.closure_files += 1,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MaterialsError + '_ {
    move |source| MaterialsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write_dir(
    out: &Path,
    layout: &Layout,
    summary_xlsx: &[u8],
    blobs: &BlobDir,
) -> Result<Written, MaterialsError> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io_err(out))?;
        if entries.next().is_some() {
            return Err(MaterialsError::NotEmpty {
                path: out.display().to_string(),
            });
        }
    }
    crate::fsmode::create_dir_all(out).map_err(io_err(out))?;
    let mut written = Written::default();
    for e in &layout.entries {
        let Some(bytes) = bytes_of(blobs, e, &mut written) else {
            continue;
        };
        let path: PathBuf = e.path.split('/').fold(out.to_path_buf(), |p, c| p.join(c));
        if let Some(dir) = path.parent() {
            crate::fsmode::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut f = crate::fsmode::create_new(&path).map_err(io_err(&path))?;
        f.write_all(&bytes).map_err(io_err(&path))?;
        if let Some(t) = e.file.received_at {
            let _ = f.set_modified(t.into());
        }
        count(&mut written, e);
    }
    let sheet = out.join(SUMMARY_NAME);
    crate::fsmode::write(&sheet, summary_xlsx).map_err(io_err(&sheet))?;
    Ok(written)
}

/// A zip entry's date: the mail's arrival in Beijing time (zip dates carry no zone, and
/// people unpack where the campaign runs).
fn zip_time(t: Option<DateTime<Utc>>) -> zip::DateTime {
    t.map(|t| t.with_timezone(&chrono_tz::Asia::Shanghai))
        .and_then(|t| {
            zip::DateTime::from_date_and_time(
                u16::try_from(t.year()).ok()?,
                t.month() as u8,
                t.day() as u8,
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
            )
            .ok()
        })
        .unwrap_or_default()
}

fn write_zip(
    out: &Path,
    layout: &Layout,
    summary_xlsx: &[u8],
    blobs: &BlobDir,
) -> Result<Written, MaterialsError> {
    let zip_err = |source| MaterialsError::Zip {
        path: out.display().to_string(),
        source,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsmode::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = out.with_file_name(format!(
        ".{}.{}.partial",
        out.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result: Result<Written, MaterialsError> = (|| {
        let file = crate::fsmode::create(&tmp).map_err(io_err(&tmp))?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut written = Written::default();
        let now = Some(Utc::now());
        zip.start_file(SUMMARY_NAME, options.last_modified_time(zip_time(now)))
            .map_err(zip_err)?;
        zip.write_all(summary_xlsx).map_err(io_err(out))?;
        for e in &layout.entries {
            let Some(bytes) = bytes_of(blobs, e, &mut written) else {
                continue;
            };
            zip.start_file(
                e.path.as_str(),
                options.last_modified_time(zip_time(e.file.received_at)),
            )
            .map_err(zip_err)?;
            zip.write_all(&bytes).map_err(io_err(out))?;
            count(&mut written, e);
        }
        let mut inner = zip.finish().map_err(zip_err)?;
        inner.flush().map_err(io_err(&tmp))?;
        inner.get_ref().sync_all().map_err(io_err(&tmp))?;
        Ok(written)
    })();
    match result {
        Ok(written) => {
            std::fs::rename(&tmp, out).map_err(io_err(out))?;
            Ok(written)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_one_safe_component() {
        let cases: &[(&str, &str)] = &[
            ("申请表.docx", "申请表.docx"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("..", "附件"),
            ("...", "附件"),
            (".", "附件"),
            ("", "附件"),
            ("   ", "附件"),
            (".bashrc", "bashrc"),
            ("..\\..\\Windows\\win.ini", "_.._Windows_win.ini"),
            ("a/b\\c", "a_b_c"),
            ("a\0b.docx", "ab.docx"),
            ("tab\there\r\n.doc", "tabhere.doc"),
            ("bell\u{7}\u{7f}\u{85}.doc", "bell.doc"),
            ("a<b>c:d\"e|f?g*h.doc", "a_b_c_d_e_f_g_h.doc"),
            ("汇总表.xls.  ", "汇总表.xls"),
            ("汇总表.xls...", "汇总表.xls"),
            ("  申请表.docx", "申请表.docx"),
            ("CON", "_CON"),
            ("con.docx", "_con.docx"),
            ("Com1.tar.gz", "_Com1.tar.gz"),
            ("LPT9 .txt", "_LPT9 .txt"),
            ("nul", "_nul"),
            ("CONSOLE.docx", "CONSOLE.docx"),
            ("evil\u{202E}xcod.exe", "evilxcod.exe"),
            ("zero\u{200B}width\u{FEFF}.doc", "zerowidth.doc"),
            ("line\u{2028}sep.doc", "linesep.doc"),
            ("///", "附件"),
            ("???", "附件"),
            ("Cafe\u{301}.doc", "Caf\u{e9}.doc"),
            ("a..b.docx", "a..b.docx"),
            ("支部（修改版）.docx", "支部（修改版）.docx"),
        ];
        for (raw, want) in cases {
            let got = path_component(raw, "附件");
            assert_eq!(&got, want, "{raw:?}");
            assert_safe(&got);
        }
    }

    /// What every output must satisfy, whatever came in.
    fn assert_safe(name: &str) {
        assert!(!name.is_empty());
        assert!(name.len() <= MAX_COMPONENT_BYTES, "{name}: {}", name.len());
        assert!(!name.starts_with('.') && !name.starts_with(' '), "{name:?}");
        assert!(!name.ends_with('.') && !name.ends_with(' '), "{name:?}");
        assert!(name != ".." && name != ".");
        assert!(
            !name
                .chars()
                .any(|c| c.is_control() || "/\\:*?\"<>|".contains(c)),
            "{name:?}"
        );
        assert!(!is_reserved(name), "{name:?}");
    }

    #[test]
    fn file_names_keep_only_their_last_segment() {
        assert_eq!(
            file_component("C:\\Users\\张三\\Desktop\\汇总表.xls"),
            "汇总表.xls"
        );
        assert_eq!(file_component("材料/申请表.docx"), "申请表.docx");
        assert_eq!(file_component("../../etc/passwd"), "passwd");
        assert_eq!(file_component("申请表.docx/"), "申请表.docx");
        assert_eq!(file_component("/"), "附件");
        assert_eq!(file_component("C:汇总表.xls"), "C_汇总表.xls");
    }

    #[test]
    fn long_names_are_cut_on_a_character_keeping_the_extension() {
        let long = format!("{}.docx", "申".repeat(100));
        let got = path_component(&long, "附件");
        assert!(got.ends_with("申.docx"), "{got}");
        assert_eq!(got.len(), 145 / 3 * 3 + 5);
        assert_safe(&got);
        // No extension, or one that is not a type: cut as a whole.
        let got = path_component(&"a".repeat(400), "附件");
        assert_eq!(got.len(), MAX_COMPONENT_BYTES);
        let got = path_component(
            &format!("{}.这不是扩展名而是一句很长的话", "b".repeat(200)),
            "x",
        );
        assert_eq!(got.len(), MAX_COMPONENT_BYTES);
        assert_safe(&got);
        // A cut that would end in a dot or a space does not.
        let got = path_component(&format!("{}. .docx", "c".repeat(144)), "附件");
        assert!(!got.contains(". .") && got.ends_with("c.docx"), "{got}");
        // Emoji and 4-byte characters are never split.
        let got = path_component(&"𠀀".repeat(60), "附件");
        assert!(got.len() <= MAX_COMPONENT_BYTES && got.chars().all(|c| c == '𠀀'));
    }

    #[test]
    fn duplicates_are_numbered_before_the_extension() {
        let mut taken = HashSet::new();
        assert_eq!(unique_name("申请表.docx", &mut taken), "申请表.docx");
        assert_eq!(unique_name("申请表.docx", &mut taken), "申请表 (2).docx");
        assert_eq!(unique_name("申请表.docx", &mut taken), "申请表 (3).docx");
        // Windows and macOS do not tell these apart either.
        assert_eq!(unique_name("Report.DOCX", &mut taken), "Report.DOCX");
        assert_eq!(unique_name("report.docx", &mut taken), "report (2).docx");
        assert_eq!(unique_name("Caf\u{e9}.doc", &mut taken), "Caf\u{e9}.doc");
        assert_eq!(
            unique_name("Cafe\u{301}.doc", &mut taken),
            "Cafe\u{301} (2).doc"
        );
        // A name that already looks numbered is not confused with a generated one.
        assert_eq!(
            unique_name("申请表 (2).docx", &mut taken),
            "申请表 (2) (2).docx"
        );
        assert_eq!(unique_name("README", &mut taken), "README");
        assert_eq!(unique_name("README", &mut taken), "README (2)");
        // At the length limit the suffix still fits.
        let long = path_component(&format!("{}.xlsx", "汇".repeat(80)), "x");
        assert_eq!(unique_name(&long, &mut taken), long);
        let second = unique_name(&long, &mut taken);
        assert!(second.ends_with(" (2).xlsx"), "{second}");
        assert!(second.len() <= MAX_COMPONENT_BYTES);
        assert_safe(&second);
    }

    fn file(name: &str, sha: &str, kind: Kind, mail: i64) -> SourceFile {
        SourceFile {
            name: name.to_string(),
            sha256: sha.to_string(),
            size: 1,
            kind,
            received_at: None,
            mail,
        }
    }

    fn paths(l: &Layout) -> Vec<&str> {
        l.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn layout_is_college_branch_file_and_never_collides() {
        use Kind::{Application as A, Closure as C};
        let branches = vec![
            BranchFiles {
                college: Some("土木工程学院".into()),
                branch: "土木工程学院本科生第一党支部".into(),
                files: vec![
                    file("申请表.docx", "a1", A, 1),
                    file("汇总表.xlsx", "a2", A, 1),
                    // Inside the zip, a file of the same name but other bytes.
                    file("材料/申请表.docx", "a3", A, 1),
                    // The same bytes again under the same name (loose and zipped): once.
                    file("汇总表.xlsx", "a2", A, 1),
                    // Closure mails, newest first: the newer 结题报告 replaces the older one.
                    file("结题报告.docx", "c3", C, 9),
                    file("报销材料.pdf", "c2", C, 9),
                    file("报销材料.pdf", "c2b", C, 9),
                    file("结题报告.DOCX", "c1", C, 7),
                    file("工作案例.docx", "c0", C, 7),
                ],
            },
            // Hostile names from a subject, and a second branch that cleans to the same name.
            BranchFiles {
                college: None,
                branch: "../../tmp/x".into(),
                files: vec![file("CON.docx", "u1", A, 3)],
            },
            BranchFiles {
                college: None,
                branch: "..\\..\\tmp\\x".into(),
                files: vec![],
            },
            // A college whose name is the sheet's own.
            BranchFiles {
                college: Some("汇总表.xlsx".into()),
                branch: "某支部".into(),
                files: vec![file("申请表.doc", "z", A, 4)],
            },
        ];
        let l = layout(&branches);
        assert_eq!(
            paths(&l),
            [
                "土木工程学院/土木工程学院本科生第一党支部/申请表.docx",
                "土木工程学院/土木工程学院本科生第一党支部/汇总表.xlsx",
                "土木工程学院/土木工程学院本科生第一党支部/申请表 (2).docx",
                "土木工程学院/土木工程学院本科生第一党支部/结题报告.docx",
                "土木工程学院/土木工程学院本科生第一党支部/报销材料.pdf",
                "土木工程学院/土木工程学院本科生第一党支部/报销材料 (2).pdf",
                "土木工程学院/土木工程学院本科生第一党支部/工作案例.docx",
                "未识别支部/_.._tmp_x/_CON.docx",
                "汇总表 (2).xlsx/某支部/申请表.doc",
            ]
        );
        assert_eq!(l.superseded, 1);
        assert_eq!(l.branches, 4);
        assert_eq!(l.without_files, ["..\\..\\tmp\\x"]);
        for e in &l.entries {
            for part in e.path.split('/') {
                assert_safe(part);
            }
        }
        let mut seen = HashSet::new();
        assert!(l.entries.iter().all(|e| seen.insert(name_key(&e.path))));
    }

    fn application(
        branch: Option<&str>,
        college: Option<&str>,
        fields: serde_json::Value,
    ) -> ExportSubmission {
        ExportSubmission {
            kind: "application".into(),
            branch: branch.map(str::to_string),
            college: college.map(str::to_string),
            branch_in_subject: Some("某支部".into()),
            branch_match: "exact".into(),
            match_score: 1.0,
            match_reason: String::new(),
            version: 1,
            versions: 1,
            received_at: "2025-09-26T08:40:43+08:00".into(),
            late: false,
            sender: "a@b".into(),
            subject: None,
            message_id: None,
            attachments: vec![],
            problems: vec![],
            fields: Some(fields),
            fields_source: None,
            problem_details: vec![],
            sender_changed: false,
            suggested_branch: None,
            level: None,
            amount_yuan: None,
            closure_status: None,
            closure_missing: vec![],
        }
    }

    #[test]
    fn tally_counts_branches_as_the_filters_select_them() {
        let colleges = vec!["土木工程学院".to_string(), "经济学院".to_string()];
        let sections = vec!["学思践悟".to_string(), "师生结对·双向赋能".to_string()];
        let latest = vec![
            application(
                Some("土木一支部"),
                Some("土木工程学院"),
                serde_json::json!({"section": "学思践悟"}),
            ),
            application(
                Some("土木二支部"),
                Some("土木工程学院"),
                serde_json::json!({"section": "师生结对·双向赋能"}),
            ),
            // Not in the roster: the form's college counts; a section nobody configured does not.
            application(
                None,
                None,
                serde_json::json!({"college": "经济学院", "section": "别的板块"}),
            ),
        ];
        let closure = vec![
            // Applied too: counted once.
            ("土木一支部".to_string(), Some("土木工程学院".to_string())),
            // Closure mail only: its roster college, no section.
            ("经济一支部".to_string(), Some("经济学院".to_string())),
            ("经济一支部".to_string(), Some("经济学院".to_string())),
        ];
        let t = tally_of(&colleges, &sections, &latest, &closure);
        assert_eq!(t.all, 4);
        assert_eq!(
            t.colleges,
            [("土木工程学院".to_string(), 2), ("经济学院".to_string(), 2)]
        );
        assert_eq!(
            t.sections,
            [
                ("学思践悟".to_string(), 1),
                ("师生结对·双向赋能".to_string(), 1)
            ]
        );
    }

    #[test]
    fn filters_pick_one_option() {
        let sections: Vec<String> = crate::config::DEFAULT_SECTIONS
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            pick("section", "师生结对·双向赋能", &sections).ok(),
            Some("师生结对·双向赋能")
        );
        assert_eq!(
            pick("section", "师生结对", &sections).ok(),
            Some("师生结对·双向赋能")
        );
        let err = pick("section", "优秀", &sections).unwrap_err().to_string();
        assert!(err.contains("--section「优秀」不是配置中的申报板块") && err.contains("学思践悟"));
        let colleges = vec!["土木工程学院".to_string(), "土木与建筑学院".to_string()];
        let err = pick("college", "土木", &colleges).unwrap_err().to_string();
        assert!(err.contains("可以指 土木工程学院、土木与建筑学院"), "{err}");
        assert_eq!(
            pick("college", "土木工程学院 ", &colleges).ok(),
            Some("土木工程学院")
        );
    }

    #[test]
    fn zip_entries_carry_the_utf8_flag_and_a_date() {
        let dir = std::env::temp_dir().join(format!("shenbao-materials-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let blobs = BlobDir::new(dir.join("blobs"));
        let sha = blobs.put(b"docx bytes").unwrap();
        let t = DateTime::parse_from_rfc3339("2025-09-22T01:41:42Z")
            .unwrap()
            .with_timezone(&Utc);
        let l = Layout {
            entries: vec![Entry {
                path: "学院/支部/申请表.docx".into(),
                file: SourceFile {
                    received_at: Some(t),
                    ..file("申请表.docx", &sha, Kind::Application, 1)
                },
            }],
            branches: 1,
            ..Layout::default()
        };
        let out = dir.join("评审材料.zip");
        let w = write(&out, &l, b"xlsx", &blobs).unwrap();
        assert_eq!((w.files, w.application_files, w.damaged.len()), (1, 1, 0));
        let bytes = std::fs::read(&out).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        let names: Vec<String> = (0..archive.len())
            .map(|i| archive.by_index(i).unwrap().name().unwrap().to_string())
            .collect();
        assert_eq!(names, [SUMMARY_NAME, "学院/支部/申请表.docx"]);
        let entry = archive.by_name("学院/支部/申请表.docx").unwrap();
        let m = entry.last_modified().unwrap();
        // 09:41 in Beijing.
        assert_eq!(
            (m.year(), m.month(), m.day(), m.hour(), m.minute()),
            (2025, 9, 22, 9, 41)
        );
        drop(entry);
        // Bit 11 of the general-purpose flag in every central directory record.
        let mut flags = Vec::new();
        let mut i = 0;
        while let Some(pos) = bytes[i..].windows(4).position(|w| w == b"PK\x01\x02") {
            let at = i + pos;
            flags.push(u16::from_le_bytes([bytes[at + 8], bytes[at + 9]]));
            i = at + 4;
        }
        assert_eq!(flags.len(), 2);
        assert!(flags.iter().all(|f| f & 0x0800 != 0), "{flags:?}");

        // A directory: refused when not empty; damaged blobs are left out and named.
        let err = write(&dir, &l, b"xlsx", &blobs).unwrap_err();
        assert!(err.to_string().contains("已存在且不是空目录"), "{err}");
        let (pack, offset) = blobs.packed_at(&sha).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(pack).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"tampered!!", offset).unwrap();
        let w = write(&dir.join("out"), &l, b"xlsx", &blobs).unwrap();
        assert_eq!(w.files, 0);
        assert!(w.damaged[0].contains("sha256 不符"), "{:?}", w.damaged);
        assert!(dir.join("out").join(SUMMARY_NAME).is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
