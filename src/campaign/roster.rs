//! The branch roster and matching what a mail says against it.
//!
//! The office keeps a CSV of the branches it knows (`学院,支部名称,书记,书记邮箱`). A branch
//! name in a subject or form is free text typed by a student, so it is *matched* against the
//! roster, never trusted: the roster's spelling is the canonical one used for versions,
//! reminders and the consolidated spreadsheet.
//!
//! Matching works in tiers, strictest first, so that the reason given to people is the simplest
//! true one:
//!
//! 1. **exact**: the normalised text equals a roster name, or a roster name appears in it
//!    (the longest one wins; `…党支部（修改版）` or `…党支部-张三` still name the branch);
//! 2. **fuzzy**, by generic rewriting rules applied to both sides: `党支部` = `支部`, Chinese
//!    numerals = Arabic numerals (`第二` = `第2`, `二〇二四级` = `2024级`), `24级` = `2024级`,
//!    `硕士研究生` = `硕士生`, a dropped `中共`; a missing college prefix when the rest is unique;
//!    a college abbreviation (`经管学院` for `经济与管理学院`: same first character, characters in
//!    order); and finally a small character-level edit distance, but never across a different
//!    number (`第三` vs `第四`) or degree level (`硕士` vs `博士`), which name different branches;
//! 3. **unknown** otherwise, or when two branches are about equally close (then the closest
//!    names are offered as candidates, so a person can decide).

use std::collections::HashMap;
use std::io::Read;

use crate::textnorm;

/// One branch of the roster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Branch {
    /// 学院 (may be empty when the roster has no college column).
    pub college: String,
    /// 支部名称, the canonical name.
    pub name: String,
    /// 书记 (may be empty).
    pub secretary: String,
    /// 书记邮箱, the first address in the cell, lowercased (may be empty).
    pub email: String,
}

/// How a text matched the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The roster name appears in the text (after normalising width, dashes and spaces).
    Exact,
    /// Written differently but unambiguous.
    Fuzzy,
    /// Not in the roster, or ambiguous.
    Unknown,
}

impl MatchKind {
    /// The name stored in the database and exports (`exact`, `fuzzy`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Fuzzy => "fuzzy",
            MatchKind::Unknown => "unknown",
        }
    }
}

/// The result of [`Roster::match_branch`].
#[derive(Debug, Clone, PartialEq)]
pub struct BranchMatch {
    /// Exact, fuzzy or unknown.
    pub kind: MatchKind,
    /// The matched roster branch (`None` for unknown).
    pub branch: Option<Branch>,
    /// Confidence in 0..=1 (1 for exact).
    pub score: f64,
    /// Why, in short Chinese, e.g. `忽略“党”字后与名册一致`.
    pub reason: String,
    /// For unknown: up to three closest roster names, closest first.
    pub candidates: Vec<String>,
}

/// A roster file that cannot be used. Messages name the line and say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// Reading failed.
    #[error("读取支部名册失败：{0}")]
    Io(#[from] std::io::Error),
    /// Not UTF-8 (probably GBK, which Excel writes for “CSV（逗号分隔）”).
    #[error(
        "支部名册不是 UTF-8 编码（第 {line} 行有无法识别的字节，可能是 GBK 编码）：请在 Excel 中“另存为 → CSV UTF-8（逗号分隔）”，或用记事本“另存为”并选择 UTF-8 编码"
    )]
    NotUtf8 {
        /// 1-based line of the first bad byte.
        line: u64,
    },
    /// UTF-16 (Excel's “Unicode 文本”).
    #[error(
        "支部名册是 UTF-16（“Unicode 文本”）编码：请在 Excel 中“另存为 → CSV UTF-8（逗号分隔）”"
    )]
    Utf16,
    /// No header line.
    #[error("支部名册是空的：第 1 行应为表头“学院,支部名称,书记,书记邮箱”，之后每行一个支部")]
    Empty,
    /// A required column is missing from the header.
    #[error(
        "支部名册第 1 行（表头）缺少“{column}”列，现有的列是：{found}。表头应为“学院,支部名称,书记,书记邮箱”"
    )]
    MissingColumn {
        /// The missing column.
        column: &'static str,
        /// The header cells found.
        found: String,
    },
    /// A row without a branch name.
    #[error("支部名册第 {line} 行的“支部名称”是空的：请填写支部全称，或删除这一行")]
    EmptyName {
        /// 1-based line.
        line: u64,
    },
    /// The same branch twice.
    #[error(
        "支部名册第 {line} 行的支部“{name}”与第 {first_line} 行重复：每个支部只能出现一次，请删除或改正其中一行"
    )]
    DuplicateName {
        /// 1-based line of the repetition.
        line: u64,
        /// 1-based line of the first occurrence.
        first_line: u64,
        /// The name as written on `line`.
        name: String,
    },
    /// The CSV itself is malformed.
    #[error("支部名册第 {line} 行无法解析（{message}）：请检查这一行的引号和逗号")]
    Csv {
        /// 1-based line.
        line: u64,
        /// The parser's message.
        message: String,
    },
}

/// Header aliases, normalised (see [`textnorm::normalize`]).
const NAME_COLUMNS: &[&str] = &[
    "支部名称",
    "党支部名称",
    "支部",
    "党支部",
    "支部全称",
    "党支部全称",
    "branch",
    "branch_name",
    "name",
];
const COLLEGE_COLUMNS: &[&str] = &[
    "学院",
    "学院名称",
    "院系",
    "所在学院",
    "所属学院",
    "单位",
    "college",
    "school",
];
const SECRETARY_COLUMNS: &[&str] = &["书记", "书记姓名", "支部书记", "党支部书记", "secretary"];
const EMAIL_COLUMNS: &[&str] = &[
    "书记邮箱",
    "邮箱",
    "电子邮箱",
    "邮箱地址",
    "电子邮件",
    "书记电子邮箱",
    "联系邮箱",
    "email",
    "e-mail",
    "mail",
];

/// Words that tell branches of different degree levels or staff apart (bit per word).
const LEVEL_WORDS: &[&str] = &[
    "本科",
    "硕士",
    "博士",
    "研究生",
    "教工",
    "教师",
    "退休",
    "专科",
];

/// Scores of the fuzzy tiers (exact is 1.0). Edit-distance matches score below all of them.
const SCORE_CANON: f64 = 0.97;
const SCORE_CANON_CONTAINED: f64 = 0.95;
const SCORE_NO_COLLEGE: f64 = 0.92;
const SCORE_ABBREVIATION: f64 = 0.90;
const SCORE_EDIT_MAX: f64 = 0.88;
/// A fuzzy winner must beat the runner-up by this much, or the match is ambiguous.
const MARGIN: f64 = 0.02;
/// Unknown matches list roster names at least this similar as candidates.
const CANDIDATE_MIN_SIMILARITY: f64 = 0.5;

/// Rewriting rules of the canonical form (bits of a mask), with the reason shown to people.
const RULE_ZHONGGONG: u8 = 1;
const RULE_PARTY: u8 = 2;
const RULE_DEGREE: u8 = 4;
const RULE_NUMERALS: u8 = 8;
const RULE_YEAR: u8 = 16;
const RULE_BACHELOR: u8 = 32;
const RULE_REASONS: &[(u8, &str)] = &[
    (RULE_PARTY, "忽略“党”字后与名册一致"),
    (RULE_ZHONGGONG, "忽略“中共”字样后与名册一致"),
    (RULE_NUMERALS, "中文数字与阿拉伯数字视为相同"),
    (RULE_YEAR, "两位年级（如“24级”）视为四位年份"),
    (RULE_DEGREE, "“硕士研究生/博士研究生”视为“硕士生/博士生”"),
    (RULE_BACHELOR, "“本科”视为“本科生”"),
];

/// A name reduced for comparison.
#[derive(Debug, Clone, Default)]
struct Canon {
    chars: Vec<char>,
    /// Which rules changed the text.
    rules: u8,
    /// Digit runs, in order (`第2`, `2024级` → ["2024", "2"] …).
    numbers: Vec<String>,
    /// Degree-level words present (bit per [`LEVEL_WORDS`] entry).
    levels: u16,
}

/// Precomputed matching data of one roster branch.
#[derive(Debug, Clone)]
struct Entry {
    key: Vec<char>,
    canon: Canon,
    /// The canonical name without its college prefix, when the name starts with the college.
    rest: Option<Canon>,
    college: Vec<char>,
    /// Every address in the email cell, lowercased.
    emails: Vec<String>,
}

/// The roster of one campaign.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    branches: Vec<Branch>,
    entries: Vec<Entry>,
    by_key: HashMap<String, usize>,
    by_email: HashMap<String, Vec<usize>>,
    unreachable: Vec<UnreachableRow>,
}

/// Why a roster branch cannot be written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// The 书记邮箱 cell is empty.
    NoEmail,
    /// The cell holds something that is not an address (`cell` as written).
    BadEmail { cell: String },
}

impl Unreachable {
    /// A short code for the ledger and logs (`no_email`, `bad_email`).
    pub fn code(&self) -> &'static str {
        match self {
            Unreachable::NoEmail => "no_email",
            Unreachable::BadEmail { .. } => "bad_email",
        }
    }

    /// What is wrong, for staff (`没有填写书记邮箱`, `书记邮箱“…”不是有效的邮箱地址`).
    pub fn label(&self) -> String {
        match self {
            Unreachable::NoEmail => "没有填写书记邮箱".to_string(),
            Unreachable::BadEmail { cell } => format!("书记邮箱“{cell}”不是有效的邮箱地址"),
        }
    }
}

/// A roster row shenbao cannot reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreachableRow {
    /// 1-based line in the roster file.
    pub line: u64,
    /// The 支部名称 as written.
    pub branch: String,
    pub why: Unreachable,
}

impl UnreachableRow {
    /// One sentence for staff naming the file, the row and the fix.
    pub fn describe(&self, file: &std::path::Path) -> String {
        format!(
            "支部名册 {} 第 {} 行“{}”：{}，收不到提醒和评审结果；请在“书记邮箱”一列填写 name@example.edu.cn 这样的地址",
            file.display(),
            self.line,
            self.branch,
            self.why.label()
        )
    }
}

impl Roster {
    /// Reads a roster CSV.
    ///
    /// The header must name a 支部名称 column and a 书记邮箱 column (aliases: 支部 / 党支部名称 /
    /// name, 邮箱 / 电子邮箱 / email …); 学院 and 书记 are optional. A UTF-8 BOM (Excel's
    /// “CSV UTF-8”) is fine; GBK files are refused with instructions, since decoding them would
    /// need another dependency. Tabs or semicolons instead of commas, full-width commas in a
    /// hand-typed file, blank lines and extra columns are all accepted.
    ///
    /// # Errors
    ///
    /// [`RosterError`] when the file cannot be read, is not UTF-8, lacks a required column, or
    /// has a row with an empty or repeated 支部名称 or an invalid email; the message names the
    /// line and says what to fix.
    pub fn from_csv(mut reader: impl Read) -> Result<Roster, RosterError> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            return Err(RosterError::Utf16);
        }
        let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(&bytes);
        let text = match std::str::from_utf8(body) {
            Ok(t) => t,
            Err(e) => {
                let upto = body.get(..e.valid_up_to()).unwrap_or(&[]);
                let line = 1 + upto.iter().filter(|b| **b == b'\n').count() as u64;
                return Err(RosterError::NotUtf8 { line });
            }
        };
        let first_line = text
            .lines()
            .find(|l| !textnorm::trim_invisible(l).is_empty());
        let Some(first_line) = first_line else {
            return Err(RosterError::Empty);
        };
        // Hand-typed files sometimes use the full-width comma throughout.
        let owned;
        let text = if !first_line.contains([',', '\t', ';']) && first_line.contains('，') {
            owned = text.replace('，', ",");
            owned.as_str()
        } else {
            text
        };
        // The header's most frequent delimiter; a comma unless another one clearly wins.
        let header_line = text
            .lines()
            .find(|l| !textnorm::trim_invisible(l).is_empty())
            .unwrap_or("");
        let mut delimiter = b',';
        let mut best = header_line.bytes().filter(|b| *b == b',').count();
        for d in [b'\t', b';'] {
            let n = header_line.bytes().filter(|b| *b == d).count();
            if n > best {
                delimiter = d;
                best = n;
            }
        }

        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        let header = rdr.headers().map_err(csv_error)?.clone();
        let header_norm: Vec<String> = header.iter().map(textnorm::normalize).collect();
        let found = || {
            header
                .iter()
                .map(|h| format!("“{}”", textnorm::trim_invisible(h)))
                .collect::<Vec<_>>()
                .join("、")
        };
        let find = |aliases: &[&str]| {
            aliases
                .iter()
                .find_map(|a| header_norm.iter().position(|h| h == a))
        };
        let Some(name_col) = find(NAME_COLUMNS) else {
            return Err(RosterError::MissingColumn {
                column: "支部名称",
                found: found(),
            });
        };
        let Some(email_col) = find(EMAIL_COLUMNS) else {
            return Err(RosterError::MissingColumn {
                column: "书记邮箱",
                found: found(),
            });
        };
        let college_col = find(COLLEGE_COLUMNS);
        let secretary_col = find(SECRETARY_COLUMNS);

        let mut branches = Vec::new();
        let mut extra_emails = Vec::new();
        let mut unreachable = Vec::new();
        let mut first_seen: HashMap<String, u64> = HashMap::new();
        for record in rdr.records() {
            let record = record.map_err(csv_error)?;
            let line = record.position().map_or(0, |p| record_line(text, p));
            let cell = |i: Option<usize>| {
                i.and_then(|i| record.get(i))
                    .map(textnorm::trim_invisible)
                    .unwrap_or("")
                    .to_string()
            };
            if record
                .iter()
                .all(|f| textnorm::trim_invisible(f).is_empty())
            {
                continue;
            }
            // An unpaired quote swallows the rest of the file into one cell; the csv reader
            // accepts that silently, so catch it here.
            if record.iter().any(|f| f.contains(['\n', '\r'])) {
                return Err(RosterError::Csv {
                    line,
                    message: "单元格里有换行，多半是引号没有配对".to_string(),
                });
            }
            let name = cell(Some(name_col));
            let key: String = key_chars(&name).into_iter().collect();
            if key.is_empty() {
                return Err(RosterError::EmptyName { line });
            }
            if let Some(&first_line) = first_seen.get(&key) {
                return Err(RosterError::DuplicateName {
                    line,
                    first_line,
                    name,
                });
            }
            first_seen.insert(key, line);
            let email_cell = cell(Some(email_col));
            // A row nobody can write to still names a branch that may apply: it is loaded,
            // and reported (check-config, status, the reminder planner) instead of refused.
            let emails = match parse_emails(&email_cell) {
                Some(list) if !list.is_empty() => list,
                Some(_) => {
                    unreachable.push(UnreachableRow {
                        line,
                        branch: name.clone(),
                        why: Unreachable::NoEmail,
                    });
                    Vec::new()
                }
                None => {
                    unreachable.push(UnreachableRow {
                        line,
                        branch: name.clone(),
                        why: Unreachable::BadEmail {
                            cell: email_cell.clone(),
                        },
                    });
                    Vec::new()
                }
            };
            branches.push(Branch {
                college: cell(college_col),
                name,
                secretary: cell(secretary_col),
                email: emails.first().cloned().unwrap_or_default(),
            });
            extra_emails.push(emails.into_iter().skip(1).collect());
        }
        let mut roster = Roster::build(branches, extra_emails);
        roster.unreachable = unreachable;
        Ok(roster)
    }

    /// Builds a roster from branches (no validation: a repeated name keeps its first entry for
    /// lookups; an unparseable email is simply not indexed).
    pub fn from_branches(v: Vec<Branch>) -> Roster {
        Roster::build(v, Vec::new())
    }

    /// Builds the lookup tables; `extra_emails[i]` are further addresses of branch `i` (a
    /// roster cell may list the secretary's and the deputy's).
    fn build(v: Vec<Branch>, extra_emails: Vec<Vec<String>>) -> Roster {
        let mut entries = Vec::with_capacity(v.len());
        let mut by_key = HashMap::new();
        let mut by_email: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, b) in v.iter().enumerate() {
            let key = key_chars(&b.name);
            let name_canon = canon(&key);
            let college = canon(&key_chars(&b.college)).chars;
            let rest = (!college.is_empty() && name_canon.chars.starts_with(&college))
                .then(|| canon_of(&name_canon.chars[college.len()..]))
                .filter(|r| !r.chars.is_empty());
            let mut emails = parse_emails(&b.email).unwrap_or_default();
            emails.extend(extra_emails.get(i).into_iter().flatten().cloned());
            by_key.entry(key.iter().collect::<String>()).or_insert(i);
            for e in &emails {
                let list = by_email.entry(e.clone()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
            entries.push(Entry {
                key,
                canon: name_canon,
                rest,
                college,
                emails,
            });
        }
        // Rows built in code have no file lines: count them as a CSV with a header would.
        let unreachable = v
            .iter()
            .enumerate()
            .filter(|(_, b)| parse_emails(&b.email).is_none_or(|e| e.is_empty()))
            .map(|(i, b)| UnreachableRow {
                line: i as u64 + 2,
                branch: b.name.clone(),
                why: if b.email.trim().is_empty() {
                    Unreachable::NoEmail
                } else {
                    Unreachable::BadEmail {
                        cell: b.email.clone(),
                    }
                },
            })
            .collect();
        Roster {
            branches: v,
            entries,
            by_key,
            by_email,
            unreachable,
        }
    }

    /// The rows shenbao cannot write to (no address, or no valid one), in roster order: they
    /// get no reminder and no result mail, so staff must reach them another way.
    pub fn unreachable(&self) -> &[UnreachableRow] {
        &self.unreachable
    }

    /// All branches, in roster order.
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// The colleges named in the roster, each once, in roster order.
    pub fn colleges(&self) -> Vec<String> {
        let mut colleges: Vec<String> = Vec::new();
        for b in &self.branches {
            if !b.college.is_empty() && !colleges.contains(&b.college) {
                colleges.push(b.college.clone());
            }
        }
        colleges
    }

    /// Number of branches.
    pub fn len(&self) -> usize {
        self.branches.len()
    }

    /// True when the roster has no branches.
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }

    /// The unreachable row of the branch with this canonical name (compared like
    /// [`Roster::get`]); `None` when it can be written to (or is not on the roster).
    pub fn unreachable_row(&self, name: &str) -> Option<&UnreachableRow> {
        let branch = self.get(name)?;
        self.unreachable.iter().find(|u| u.branch == branch.name)
    }

    /// The branch with this canonical name (compared after normalising width, spaces and
    /// punctuation, so a stored name always finds its branch).
    pub fn get(&self, name: &str) -> Option<&Branch> {
        let key: String = key_chars(name).into_iter().collect();
        self.by_key.get(&key).and_then(|&i| self.branches.get(i))
    }

    /// The branch whose secretary has this address (case-insensitive; `<…>` and `mailto:` are
    /// ignored). `None` when no branch, or more than one branch, lists the address: one
    /// secretary serving two branches cannot tell us which one a mail is about.
    pub fn by_email(&self, addr: &str) -> Option<&Branch> {
        match self.by_email_all(addr).as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Every address the roster lists for the branch with this canonical name (the first is
    /// [`Branch::email`]; a cell may also name a deputy's address). Empty when unknown.
    pub fn emails(&self, name: &str) -> &[String] {
        let key: String = key_chars(name).into_iter().collect();
        self.by_key
            .get(&key)
            .and_then(|&i| self.entries.get(i))
            .map_or(&[], |e| e.emails.as_slice())
    }

    /// Every branch that lists this address, in roster order.
    pub fn by_email_all(&self, addr: &str) -> Vec<&Branch> {
        let Some(addr) = clean_email(addr) else {
            return Vec::new();
        };
        self.by_email
            .get(&addr)
            .map(|v| v.iter().filter_map(|&i| self.branches.get(i)).collect())
            .unwrap_or_default()
    }

    /// Matches free text (a subject's branch part, a form's 支部名称) against the roster.
    pub fn match_branch(&self, text: &str) -> BranchMatch {
        let key = key_chars(text);
        if key.is_empty() {
            return unknown("没有写支部名称", Vec::new());
        }
        let key_str: String = key.iter().collect();
        if let Some(&i) = self.by_key.get(&key_str) {
            return self.found(MatchKind::Exact, i, 1.0, "与名册一致".to_string());
        }

        // A roster name inside the text: the longest one, if it is the only one that long.
        let mut best_len = 0;
        let mut best: Vec<usize> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.key.len() >= best_len && contains(&key, &e.key) {
                if e.key.len() > best_len {
                    best_len = e.key.len();
                    best.clear();
                }
                best.push(i);
            }
        }
        match best.as_slice() {
            [i] => {
                return self.found(
                    MatchKind::Exact,
                    *i,
                    1.0,
                    "名册中的支部名称出现在文本中".to_string(),
                );
            }
            [] => {}
            many => {
                let names = many.iter().take(3).map(|&i| self.name(i)).collect();
                return unknown("与多个支部相近", names);
            }
        }

        let text_canon = canon(&key);
        let mut accepted: Vec<(f64, usize, String)> = Vec::new();
        let mut similar: Vec<(f64, usize)> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some((score, reason)) = fuzzy(&text_canon, e) {
                accepted.push((score, i, reason));
            }
            similar.push((similarity(&text_canon, e), i));
        }
        accepted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some((score, i, reason)) = accepted.first() {
            let runner_up = accepted.get(1).map_or(0.0, |r| r.0);
            if score - runner_up >= MARGIN {
                return self.found(MatchKind::Fuzzy, *i, *score, reason.clone());
            }
            let names = accepted
                .iter()
                .take_while(|r| score - r.0 < MARGIN)
                .take(3)
                .map(|r| self.name(r.1))
                .collect();
            return unknown("与多个支部相近", names);
        }
        similar.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let names: Vec<String> = similar
            .iter()
            .filter(|s| s.0 >= CANDIDATE_MIN_SIMILARITY)
            .take(3)
            .map(|s| self.name(s.1))
            .collect();
        let reason = if names.is_empty() {
            "名册中没有相近的支部"
        } else {
            "名册中没有这个支部"
        };
        unknown(reason, names)
    }

    fn name(&self, i: usize) -> String {
        self.branches
            .get(i)
            .map(|b| b.name.clone())
            .unwrap_or_default()
    }

    fn found(&self, kind: MatchKind, i: usize, score: f64, reason: String) -> BranchMatch {
        BranchMatch {
            kind,
            branch: self.branches.get(i).cloned(),
            score,
            reason,
            candidates: Vec::new(),
        }
    }
}

fn unknown(reason: &str, candidates: Vec<String>) -> BranchMatch {
    BranchMatch {
        kind: MatchKind::Unknown,
        branch: None,
        score: 0.0,
        reason: reason.to_string(),
        candidates,
    }
}

/// The 1-based line a record is on. The csv reader reports where it began reading the record,
/// which is the first of any blank lines before it: those are skipped here, so staff are sent
/// to the row itself.
fn record_line(text: &str, pos: &csv::Position) -> u64 {
    let skipped = text
        .as_bytes()
        .get(usize::try_from(pos.byte()).unwrap_or(usize::MAX)..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| matches!(b, b'\n' | b'\r'))
        .filter(|b| **b == b'\n')
        .count();
    pos.line() + skipped as u64
}

fn csv_error(e: csv::Error) -> RosterError {
    let line = e.position().map_or(0, |p| p.line());
    RosterError::Csv {
        line,
        message: e.to_string(),
    }
}

/// The comparison key of a name: normalised, letters and digits only (punctuation, brackets
/// and dots never distinguish two branches, but people add and drop them freely).
fn key_chars(s: &str) -> Vec<char> {
    textnorm::normalize(s)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Splits an email cell into addresses. `None` when some part is not an address.
fn parse_emails(cell: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for part in cell.split(|c: char| {
        textnorm::is_invisible(c) || matches!(c, ';' | ',' | '；' | '，' | '/' | '、')
    }) {
        if part.is_empty() {
            continue;
        }
        out.push(clean_email(part)?);
    }
    Some(out)
}

/// Normalises one address (`<Ab@X.cn>`, `mailto:ab@x.cn`, full-width `＠` → `ab@x.cn`), or
/// `None` when it is not an address.
fn clean_email(s: &str) -> Option<String> {
    let n = textnorm::normalize(s);
    let n = n.trim_start_matches('<').trim_end_matches('>');
    let n = n.strip_prefix("mailto:").unwrap_or(n).to_lowercase();
    let (local, domain) = n.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !n.contains(['<', '>', '"', '(', ')']);
    ok.then_some(n)
}

fn contains(hay: &[char], needle: &[char]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn replace(s: &[char], from: &str, to: &str) -> Vec<char> {
    let from: Vec<char> = from.chars().collect();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(&from) {
            out.extend(to.chars());
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Applies the rewriting rules to a key and records which ones changed it.
fn canon(key: &[char]) -> Canon {
    let mut rules = 0u8;
    let mut s = key.to_vec();
    let mut step = |s: &mut Vec<char>, bit: u8, f: &dyn Fn(&[char]) -> Vec<char>| {
        let t = f(s);
        if t != *s {
            rules |= bit;
            *s = t;
        }
    };
    step(&mut s, RULE_ZHONGGONG, &|s| {
        replace(&replace(s, "中国共产党", ""), "中共", "")
    });
    step(&mut s, RULE_PARTY, &|s| replace(s, "党支部", "支部"));
    step(&mut s, RULE_DEGREE, &|s| {
        replace(&replace(s, "硕士研究生", "硕士生"), "博士研究生", "博士生")
    });
    step(&mut s, RULE_BACHELOR, &|s| bachelor(s));
    step(&mut s, RULE_NUMERALS, &|s| arabic(s));
    step(&mut s, RULE_YEAR, &|s| four_digit_years(s));
    let mut c = canon_of(&s);
    c.rules = rules;
    c
}

/// Builds a [`Canon`] from already canonical characters (tokens only).
fn canon_of(chars: &[char]) -> Canon {
    let mut numbers = Vec::new();
    let mut cur = String::new();
    for &c in chars {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if !cur.is_empty() {
            numbers.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        numbers.push(cur);
    }
    let mut levels = 0u16;
    for (bit, w) in LEVEL_WORDS.iter().enumerate() {
        let w: Vec<char> = w.chars().collect();
        if contains(chars, &w) {
            levels |= 1 << bit;
        }
    }
    Canon {
        chars: chars.to_vec(),
        rules: 0,
        numbers,
        levels,
    }
}

/// `本科` not followed by `生` becomes `本科生` (`本科第二支部` = `本科生第二支部`).
fn bachelor(s: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + 1);
    for (i, &c) in s.iter().enumerate() {
        out.push(c);
        if c == '科' && i > 0 && s[i - 1] == '本' && s.get(i + 1) != Some(&'生') {
            out.push('生');
        }
    }
    out
}

fn cn_digit(c: char) -> Option<u64> {
    Some(match c {
        '〇' | '零' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn cn_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' => 10,
        '百' => 100,
        '千' => 1000,
        _ => return None,
    })
}

/// Rewrites runs of Chinese numerals as Arabic digits: `第二` → `第2`, `十二` → `12`,
/// `二〇二四` → `2024` (digit by digit when there is no 十/百/千).
fn arabic(s: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let start = i;
        while i < s.len() && (cn_digit(s[i]).is_some() || cn_unit(s[i]).is_some()) {
            i += 1;
        }
        if start == i {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let run = &s[start..i];
        if run.iter().any(|c| cn_unit(*c).is_some()) {
            let mut total: u64 = 0;
            let mut cur: u64 = 0;
            for &c in run {
                if let Some(d) = cn_digit(c) {
                    cur = d;
                } else if let Some(u) = cn_unit(c) {
                    total = total.saturating_add(cur.max(1).saturating_mul(u));
                    cur = 0;
                }
            }
            total = total.saturating_add(cur);
            out.extend(total.to_string().chars());
        } else {
            for &c in run {
                if let Some(d) = cn_digit(c)
                    .and_then(|d| u32::try_from(d).ok())
                    .and_then(|d| char::from_digit(d, 10))
                {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// `24级` → `2024级` (a two-digit year before 级, not part of a longer number).
fn four_digit_years(s: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + 2);
    for (i, &c) in s.iter().enumerate() {
        let two_digit_start = c.is_ascii_digit()
            && (i == 0 || !s[i - 1].is_ascii_digit())
            && s.get(i + 1).is_some_and(char::is_ascii_digit)
            && s.get(i + 2) == Some(&'级');
        if two_digit_start {
            out.push('2');
            out.push('0');
        }
        out.push(c);
    }
    out
}

/// Reason texts of the rules that changed exactly one side (the differences that were
/// bridged), in a fixed order.
fn rule_parts(a: u8, b: u8) -> Vec<&'static str> {
    let diff = a ^ b;
    RULE_REASONS
        .iter()
        .filter(|(bit, _)| diff & bit != 0)
        .map(|(_, r)| *r)
        .collect()
}

/// Reason for a match by the rewriting rules alone.
fn rule_reason(a: u8, b: u8) -> String {
    let parts = rule_parts(a, b);
    if parts.is_empty() {
        "规范写法后与名册一致".to_string()
    } else {
        parts.join("；")
    }
}

/// `main`, followed by the rewriting rules that also helped, if any.
fn with_rules(main: String, a: u8, b: u8) -> String {
    let mut out = main;
    for p in rule_parts(a, b) {
        out.push('；');
        out.push_str(p);
    }
    out
}

/// Largest accepted edit distance for names of this length (in characters).
fn max_edits(len: usize) -> usize {
    match len {
        0..=8 => 0,
        9..=16 => 1,
        17..=30 => 2,
        _ => 3,
    }
}

/// `short` is an abbreviation of `long`: same first character, characters in order, shorter.
fn is_abbreviation(short: &[char], long: &[char]) -> bool {
    if short.len() < 2 || short.len() >= long.len() || short.first() != long.first() {
        return false;
    }
    let mut it = long.iter();
    short.iter().all(|c| it.any(|d| d == c))
}

/// The fuzzy tiers for one roster entry: `Some((score, reason))` when accepted.
fn fuzzy(t: &Canon, e: &Entry) -> Option<(f64, String)> {
    if t.chars == e.canon.chars {
        return Some((SCORE_CANON, rule_reason(t.rules, e.canon.rules)));
    }
    if contains(&t.chars, &e.canon.chars) {
        let why = rule_reason(t.rules, e.canon.rules);
        return Some((SCORE_CANON_CONTAINED, format!("{why}（名称出现在文本中）")));
    }
    let college: String = e.college.iter().collect();
    if let Some(rest) = &e.rest {
        if t.chars == rest.chars {
            let why = format!("未写学院“{college}”，其余部分与名册一致");
            return Some((SCORE_NO_COLLEGE, with_rules(why, t.rules, e.canon.rules)));
        }
        if t.chars.len() > rest.chars.len() && t.chars.ends_with(&rest.chars) {
            let prefix = &t.chars[..t.chars.len() - rest.chars.len()];
            if is_abbreviation(prefix, &e.college) {
                let p: String = prefix.iter().collect();
                let why = format!("“{p}”视为“{college}”的简称");
                return Some((SCORE_ABBREVIATION, with_rules(why, t.rules, e.canon.rules)));
            }
        }
    }
    let d = textnorm::levenshtein(&t.chars, &e.canon.chars);
    let len = t.chars.len().max(e.canon.chars.len());
    // A typo inside a level word (`博土生`) leaves the text without one; only a different
    // level word that is actually there rules the entry out.
    let levels_agree = t.levels == 0 || t.levels == e.canon.levels;
    if d <= max_edits(len) && t.numbers == e.canon.numbers && levels_agree {
        let score = SCORE_EDIT_MAX * (1.0 - d as f64 / len as f64);
        return Some((
            score,
            with_rules(format!("编辑距离 {d}"), t.rules, e.canon.rules),
        ));
    }
    None
}

/// How alike two names look (0..1), for listing candidates.
fn similarity(t: &Canon, e: &Entry) -> f64 {
    let sim = |a: &[char], b: &[char]| {
        let len = a.len().max(b.len());
        if len == 0 {
            0.0
        } else {
            1.0 - textnorm::levenshtein(a, b) as f64 / len as f64
        }
    };
    let full = sim(&t.chars, &e.canon.chars);
    let rest = e.rest.as_ref().map_or(0.0, |r| sim(&t.chars, &r.chars));
    full.max(rest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn colleges_each_once_in_roster_order() {
        let roster = super::Roster::from_csv(
            "学院,支部名称,书记,书记邮箱\n乙学院,乙一支部,甲,a@x.cn\n甲学院,甲一支部,乙,b@x.cn\n乙学院,乙二支部,丙,c@x.cn\n,无学院支部,丁,d@x.cn\n"
                .as_bytes(),
        )
        .expect("roster");
        assert_eq!(roster.colleges(), ["乙学院", "甲学院"]);
    }

    use super::*;

    const ROSTER: &str = "学院,支部名称,书记,书记邮箱
海洋与地球科学学院,海洋与地球科学学院2022级本科生党支部,吴洋,lu.fengxi27@outlook.com
海洋与地球科学学院,海洋与地球科学学院2024级本科生党支部,苏梓萱,zhou.xiaotian54@outlook.com
海洋与地球科学学院,海洋与地球科学学院2025级本科生党支部,严晨,zouxi363@163.com
海洋与地球科学学院,海洋与地球科学学院地质学硕士生党支部,董磊,3133429730@qq.com
海洋与地球科学学院,海洋与地球科学学院海洋科学硕士生党支部,薛佳颖,2560089@example.edu.cn
经济与管理学院,经济与管理学院2023级博士生党支部,覃宇航,3870390310@qq.com
经济与管理学院,经济与管理学院本科生第一党支部,罗睿婷,2322282@example.edu.cn
经济与管理学院,经济与管理学院本科生第二党支部,姜一鸣,houxuan_1853@126.com
经济与管理学院,经济与管理学院本科生第四党支部,曾亦菲,ding.songcai56@outlook.com
设计创意学院,设计创意学院2022级博士生党支部,侯敏,2110623@example.edu.cn
设计创意学院,设计创意学院2024级博士生党支部,余晨,xieren7052@126.com
设计创意学院,设计创意学院本科生第三党支部,马悦,2917177103@qq.com
设计创意学院,设计创意学院本科生第二党支部,胡语嫣,zhuhao7049@163.com
汽车工程学院,汽车工程学院2023级博士生党支部,贾梓萱,jia.xuanhao97@outlook.com
汽车工程学院,汽车工程学院本科生第二党支部,向帆,2479582@example.edu.cn
汽车工程学院,汽车工程学院本科生第六党支部,何嘉怡,xidu_3992@126.com
汽车工程学院,汽车工程学院本科生第四党支部,冯睿婷,2566254@example.edu.cn
电子与信息工程学院,电子与信息工程学院2021级博士生党支部,范国栋,yinjin_1215@163.com
电子与信息工程学院,电子与信息工程学院2023级博士生党支部,陆欣然,1781227347@qq.com
电子与信息工程学院,电子与信息工程学院2023级本科生党支部,蒋芷若,2428480@example.edu.cn
电子与信息工程学院,电子与信息工程学院硕士研究生第四党支部,丁鑫磊,2212426708@qq.com
生命科学与技术学院,生命科学与技术学院博士研究生党支部,莫睿婷,2338595@example.edu.cn
生命科学与技术学院,生命科学与技术学院生态学本科生党支部,高悦,2568813@example.edu.cn
生命科学与技术学院,生命科学与技术学院研究生第三党支部,蔡雨桐,3372323247@qq.com
";

    fn roster() -> Roster {
        Roster::from_csv(ROSTER.as_bytes()).expect("sample roster loads")
    }

    /// (text, kind, canonical name or None)
    fn check(rows: &[(&str, MatchKind, Option<&str>)]) {
        let r = roster();
        for (text, kind, name) in rows {
            let m = r.match_branch(text);
            assert_eq!(m.kind, *kind, "kind for {text:?}: {m:?}");
            assert_eq!(
                m.branch.as_ref().map(|b| b.name.as_str()),
                *name,
                "branch for {text:?}: {m:?}"
            );
            assert!((0.0..=1.0).contains(&m.score), "{m:?}");
            assert!(!m.reason.is_empty());
        }
    }

    use MatchKind::{Exact as E, Fuzzy as F, Unknown as U};

    #[test]
    fn loads_the_sample_roster() {
        let r = roster();
        assert_eq!(r.len(), 24);
        assert!(!r.is_empty());
        assert_eq!(r.branches()[0].college, "海洋与地球科学学院");
        assert_eq!(r.branches()[0].secretary, "吴洋");
        assert_eq!(r.branches()[23].name, "生命科学与技术学院研究生第三党支部");
    }

    #[test]
    fn every_roster_name_matches_itself_exactly() {
        let r = roster();
        for b in r.branches() {
            let m = r.match_branch(&b.name);
            assert_eq!((m.kind, m.branch.as_ref()), (E, Some(b)), "{}", b.name);
            assert_eq!(m.score, 1.0);
        }
    }

    #[test]
    fn the_sample_subject_branches_are_exact() {
        check(&[
            (
                "汽车工程学院本科生第二党支部",
                E,
                Some("汽车工程学院本科生第二党支部"),
            ),
            (
                "设计创意学院2024级博士生党支部",
                E,
                Some("设计创意学院2024级博士生党支部"),
            ),
            (
                "电子与信息工程学院2023级博士生党支部",
                E,
                Some("电子与信息工程学院2023级博士生党支部"),
            ),
            (
                "汽车工程学院本科生第四党支部",
                E,
                Some("汽车工程学院本科生第四党支部"),
            ),
            (
                "电子与信息工程学院硕士研究生第四党支部",
                E,
                Some("电子与信息工程学院硕士研究生第四党支部"),
            ),
            (
                "生命科学与技术学院生态学本科生党支部",
                E,
                Some("生命科学与技术学院生态学本科生党支部"),
            ),
            (
                "经济与管理学院2023级博士生党支部",
                E,
                Some("经济与管理学院2023级博士生党支部"),
            ),
            (
                "海洋与地球科学学院海洋科学硕士生党支部",
                E,
                Some("海洋与地球科学学院海洋科学硕士生党支部"),
            ),
            (
                "海洋与地球科学学院2022级本科生党支部",
                E,
                Some("海洋与地球科学学院2022级本科生党支部"),
            ),
            (
                "海洋与地球科学学院地质学硕士生党支部",
                E,
                Some("海洋与地球科学学院地质学硕士生党支部"),
            ),
            (
                "设计创意学院本科生第三党支部",
                E,
                Some("设计创意学院本科生第三党支部"),
            ),
        ]);
    }

    #[test]
    fn width_spaces_and_punctuation_do_not_matter() {
        check(&[
            (
                "设计创意学院２０２４级博士生党支部",
                E,
                Some("设计创意学院2024级博士生党支部"),
            ),
            (
                "设计创意学院 2024级 博士生党支部",
                E,
                Some("设计创意学院2024级博士生党支部"),
            ),
            (
                "\u{FEFF}设计创意学院2024级博士生党支部\u{200B}",
                E,
                Some("设计创意学院2024级博士生党支部"),
            ),
            (
                "“设计创意学院2024级博士生党支部”",
                E,
                Some("设计创意学院2024级博士生党支部"),
            ),
            (
                "【设计创意学院2024级博士生党支部】",
                E,
                Some("设计创意学院2024级博士生党支部"),
            ),
        ]);
    }

    #[test]
    fn a_roster_name_inside_longer_text_is_exact() {
        check(&[
            (
                "汽车工程学院本科生第二党支部（修改版）",
                E,
                Some("汽车工程学院本科生第二党支部"),
            ),
            (
                "汽车工程学院本科生第二党支部-张三",
                E,
                Some("汽车工程学院本科生第二党支部"),
            ),
            (
                "表-经济与管理学院本科生第一党支部",
                E,
                Some("经济与管理学院本科生第一党支部"),
            ),
        ]);
        let m = roster().match_branch("汽车工程学院本科生第二党支部-张三");
        assert_eq!(m.reason, "名册中的支部名称出现在文本中");
    }

    #[test]
    fn missing_dang_is_fuzzy() {
        check(&[
            (
                "经济与管理学院本科生第二支部",
                F,
                Some("经济与管理学院本科生第二党支部"),
            ),
            (
                "生命科学与技术学院研究生第三支部",
                F,
                Some("生命科学与技术学院研究生第三党支部"),
            ),
        ]);
        let m = roster().match_branch("经济与管理学院本科生第二支部");
        assert_eq!(m.reason, "忽略“党”字后与名册一致");
        assert!(m.score > 0.9 && m.score < 1.0);
    }

    #[test]
    fn arabic_and_chinese_numerals_are_fuzzy() {
        check(&[
            (
                "经济与管理学院本科生第2党支部",
                F,
                Some("经济与管理学院本科生第二党支部"),
            ),
            (
                "汽车工程学院本科生第6党支部",
                F,
                Some("汽车工程学院本科生第六党支部"),
            ),
            (
                "设计创意学院二〇二四级博士生党支部",
                F,
                Some("设计创意学院2024级博士生党支部"),
            ),
            (
                "设计创意学院二零二二级博士生党支部",
                F,
                Some("设计创意学院2022级博士生党支部"),
            ),
        ]);
        let m = roster().match_branch("经济与管理学院本科生第2党支部");
        assert_eq!(m.reason, "中文数字与阿拉伯数字视为相同");
    }

    #[test]
    fn two_digit_years_are_fuzzy() {
        check(&[(
            "设计创意学院24级博士生党支部",
            F,
            Some("设计创意学院2024级博士生党支部"),
        )]);
    }

    #[test]
    fn several_rules_combine_in_the_reason() {
        let m = roster().match_branch("经济与管理学院本科生第2支部");
        assert_eq!(m.kind, F);
        assert!(m.reason.contains("党"), "{}", m.reason);
        assert!(m.reason.contains("数字"), "{}", m.reason);
    }

    #[test]
    fn degree_spellings_are_fuzzy() {
        check(&[
            (
                "电子与信息工程学院硕士生第四党支部",
                F,
                Some("电子与信息工程学院硕士研究生第四党支部"),
            ),
            (
                "生命科学与技术学院博士生党支部",
                F,
                Some("生命科学与技术学院博士研究生党支部"),
            ),
            (
                "汽车工程学院本科第六党支部",
                F,
                Some("汽车工程学院本科生第六党支部"),
            ),
        ]);
    }

    #[test]
    fn a_missing_college_is_fuzzy_when_unique() {
        check(&[
            (
                "地质学硕士生党支部",
                F,
                Some("海洋与地球科学学院地质学硕士生党支部"),
            ),
            (
                "生态学本科生党支部",
                F,
                Some("生命科学与技术学院生态学本科生党支部"),
            ),
            ("本科生第六党支部", F, Some("汽车工程学院本科生第六党支部")),
        ]);
        let m = roster().match_branch("地质学硕士生党支部");
        assert!(m.reason.contains("未写学院"), "{}", m.reason);
    }

    #[test]
    fn a_missing_college_is_ambiguous_when_shared() {
        let m = roster().match_branch("本科生第二党支部");
        assert_eq!(m.kind, U);
        assert_eq!(m.reason, "与多个支部相近");
        assert_eq!(m.candidates.len(), 3);
        assert!(
            m.candidates
                .contains(&"经济与管理学院本科生第二党支部".to_string())
        );
    }

    #[test]
    fn college_abbreviations_are_fuzzy() {
        check(&[
            (
                "经管学院本科生第一党支部",
                F,
                Some("经济与管理学院本科生第一党支部"),
            ),
            (
                "电信学院2023级本科生党支部",
                F,
                Some("电子与信息工程学院2023级本科生党支部"),
            ),
            (
                "生科院生态学本科生党支部",
                F,
                Some("生命科学与技术学院生态学本科生党支部"),
            ),
            (
                "海洋学院地质学硕士生党支部",
                F,
                Some("海洋与地球科学学院地质学硕士生党支部"),
            ),
        ]);
        let m = roster().match_branch("经管学院本科生第一党支部");
        assert_eq!(m.reason, "“经管学院”视为“经济与管理学院”的简称");
    }

    #[test]
    fn small_typos_are_fuzzy() {
        check(&[
            (
                "海洋与地求科学学院地质学硕士生党支部",
                F,
                Some("海洋与地球科学学院地质学硕士生党支部"),
            ),
            (
                "设计创意学院2024级博土生党支部",
                F,
                Some("设计创意学院2024级博士生党支部"),
            ),
            (
                "生命科学与技朮学院生态学本科生党支部",
                F,
                Some("生命科学与技术学院生态学本科生党支部"),
            ),
        ]);
        let m = roster().match_branch("海洋与地求科学学院地质学硕士生党支部");
        assert_eq!(m.reason, "编辑距离 1");
    }

    #[test]
    fn a_different_number_is_never_fuzzy() {
        check(&[
            ("生命科学与技术学院研究生第四党支部", U, None),
            ("经济与管理学院本科生第三党支部", U, None),
            ("海洋与地球科学学院2023级本科生党支部", U, None),
            ("汽车工程学院2024级博士生党支部", U, None),
        ]);
        let m = roster().match_branch("经济与管理学院本科生第三党支部");
        assert!(!m.candidates.is_empty());
        assert!(m.candidates.len() <= 3);
    }

    #[test]
    fn a_different_degree_is_never_fuzzy() {
        check(&[
            ("电子与信息工程学院2023级硕士生党支部", U, None),
            ("设计创意学院2022级硕士生党支部", U, None),
        ]);
    }

    #[test]
    fn unrelated_text_is_unknown_without_candidates() {
        for text in [
            "Hello",
            "关于预算的问题",
            "土木工程学院本科生第一党支部党小组会议记录汇总",
        ] {
            let m = roster().match_branch(text);
            assert_eq!(m.kind, U, "{text}");
            assert!(m.branch.is_none());
        }
        let m = roster().match_branch("Hello");
        assert!(m.candidates.is_empty());
        assert_eq!(m.reason, "名册中没有相近的支部");
    }

    #[test]
    fn unknown_branch_of_known_shape_lists_candidates() {
        let m = roster().match_branch("土木工程学院本科生第二党支部");
        assert_eq!(m.kind, U);
        assert!(!m.candidates.is_empty(), "{m:?}");
        assert_eq!(m.candidates[0], "汽车工程学院本科生第二党支部", "{m:?}");
    }

    #[test]
    fn empty_text_is_unknown() {
        for text in ["", "   ", "\u{3000}", "——", "【】"] {
            let m = roster().match_branch(text);
            assert_eq!(m.kind, U);
            assert_eq!(m.reason, "没有写支部名称");
        }
    }

    #[test]
    fn get_and_by_email() {
        let r = roster();
        let b = r.get("汽车工程学院本科生第六党支部").expect("present");
        assert_eq!(b.secretary, "何嘉怡");
        assert!(r.get("汽车工程学院 本科生第六党支部").is_some());
        assert!(r.get("汽车工程学院本科生第七党支部").is_none());
        assert_eq!(
            r.by_email("XIDU_3992@126.COM").map(|b| b.name.as_str()),
            Some("汽车工程学院本科生第六党支部")
        );
        assert_eq!(
            r.by_email("<xidu_3992@126.com>")
                .map(|b| b.secretary.as_str()),
            Some("何嘉怡")
        );
        assert!(r.by_email("nobody@example.com").is_none());
        assert!(r.by_email("not an address").is_none());
        assert!(r.by_email("").is_none());
    }

    #[test]
    fn shared_secretary_address_is_not_guessed() {
        let b = |name: &str| Branch {
            college: "甲学院".into(),
            name: name.into(),
            secretary: "张三".into(),
            email: "Zhang@Example.edu.cn".into(),
        };
        let r = Roster::from_branches(vec![b("甲学院第一党支部"), b("甲学院第二党支部")]);
        assert!(r.by_email("zhang@example.edu.cn").is_none());
        assert_eq!(r.by_email_all("zhang@example.edu.cn").len(), 2);
    }

    #[test]
    fn bom_crlf_blank_lines_and_aliases() {
        let csv = "\u{FEFF}院系,党支部名称,支部书记,Email\r\n\r\n甲学院,甲学院第一党支部,张三, A@B.CN \r\n,,,\r\n甲学院,甲学院第二党支部,李四,\r\n";
        let r = Roster::from_csv(csv.as_bytes()).expect("loads");
        assert_eq!(r.len(), 2);
        assert_eq!(r.branches()[0].email, "a@b.cn");
        assert_eq!(r.branches()[0].college, "甲学院");
        assert_eq!(r.branches()[1].email, "");
        assert_eq!(r.branches()[1].secretary, "李四");
    }

    #[test]
    fn tabs_semicolons_and_full_width_commas() {
        for csv in [
            "学院\t支部名称\t书记\t书记邮箱\n甲学院\t甲学院第一党支部\t张三\ta@b.cn\n",
            "学院;支部名称;书记;书记邮箱\n甲学院;甲学院第一党支部;张三;a@b.cn\n",
            "学院，支部名称，书记，书记邮箱\n甲学院，甲学院第一党支部，张三，a@b.cn\n",
        ] {
            let r = Roster::from_csv(csv.as_bytes()).expect("loads");
            assert_eq!(r.branches()[0].name, "甲学院第一党支部", "{csv:?}");
            assert_eq!(r.branches()[0].email, "a@b.cn");
        }
    }

    #[test]
    fn leading_blank_lines_are_skipped() {
        let csv = "\n\n学院,支部名称,书记,书记邮箱\n甲学院,甲学院第一党支部,张三,a@b.cn\n";
        let r = Roster::from_csv(csv.as_bytes()).expect("loads");
        assert_eq!(r.branches()[0].name, "甲学院第一党支部");
    }

    #[test]
    fn only_name_and_email_columns_are_required() {
        let r = Roster::from_csv("支部,邮箱\n甲学院第一党支部,a@b.cn\n".as_bytes()).expect("loads");
        assert_eq!(r.branches()[0].college, "");
        assert_eq!(r.branches()[0].secretary, "");
    }

    #[test]
    fn several_addresses_in_one_cell() {
        let csv = "支部名称,书记邮箱\n甲学院第一党支部,a@b.cn；c@d.cn\n";
        let r = Roster::from_csv(csv.as_bytes()).expect("loads");
        assert_eq!(r.branches()[0].email, "a@b.cn");
        assert!(r.by_email("c@d.cn").is_some());
        assert_eq!(r.emails("甲学院第一党支部"), ["a@b.cn", "c@d.cn"]);
        assert!(r.emails("乙").is_empty());
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "空的"),
            (
                "学院,书记,书记邮箱\n甲,乙,a@b.cn\n".as_bytes(),
                "缺少“支部名称”列",
            ),
            (
                "学院,支部名称,书记\n甲,乙,丙\n".as_bytes(),
                "缺少“书记邮箱”列",
            ),
            (
                "支部名称,书记邮箱\n甲党支部,a@b.cn\n ,c@d.cn\n".as_bytes(),
                "第 3 行的“支部名称”是空的",
            ),
            (
                "支部名称,书记邮箱\n甲党支部,a@b.cn\n乙党支部,c@d.cn\n甲 党支部,e@f.cn\n"
                    .as_bytes(),
                "第 4 行的支部“甲 党支部”与第 2 行重复",
            ),
            (
                b"\xd6\xa7\xb2\xbf\xc3\xfb\xb3\xc6,\xd3\xca\xcf\xe4\n",
                "UTF-8",
            ),
            (b"\xff\xfe\x00\x00", "UTF-16"),
            (
                "支部名称,书记邮箱\n\"甲党支部,a@b.cn\n".as_bytes(),
                "无法解析",
            ),
        ];
        for (input, needle) in cases {
            match Roster::from_csv(input) {
                Ok(r) => panic!("{needle}: should fail, got {} branches", r.len()),
                Err(e) => assert!(e.to_string().contains(needle), "{needle}: {e}"),
            }
        }
    }

    #[test]
    fn rows_without_a_usable_address_load_and_are_reported() {
        let csv = "学院,支部名称,书记,书记邮箱\n甲,甲学院第一党支部,张三,a@b.cn\n甲,甲学院第二党支部,李四,\n\n甲,甲学院第三党支部,王五,not-an-address\n甲,甲学院第四党支部,赵六,a@b.cn; c@d\n甲,甲学院第五党支部,钱七,A@B.CN\n";
        let r = Roster::from_csv(csv.as_bytes()).expect("loads");
        assert_eq!(r.len(), 5);
        let rows: Vec<(u64, &str, &str)> = r
            .unreachable()
            .iter()
            .map(|u| (u.line, u.branch.as_str(), u.why.code()))
            .collect();
        assert_eq!(
            rows,
            [
                (3, "甲学院第二党支部", "no_email"),
                (5, "甲学院第三党支部", "bad_email"),
                (6, "甲学院第四党支部", "bad_email"),
            ]
        );
        assert_eq!(
            r.unreachable_row("甲学院第三党支部").map(|u| &u.why),
            Some(&Unreachable::BadEmail {
                cell: "not-an-address".to_string()
            })
        );
        assert_eq!(
            r.unreachable_row("甲学院 第二党支部")
                .map(|u| (u.line, &u.why)),
            Some((3, &Unreachable::NoEmail))
        );
        assert_eq!(r.unreachable_row("甲学院第一党支部"), None);
        assert_eq!(r.unreachable_row("甲学院第五党支部"), None);
        assert_eq!(r.unreachable_row("不在名册"), None);
        // Two branches sharing one address are both reachable.
        assert_eq!(r.by_email_all("a@b.cn").len(), 2);
        let line = r.unreachable()[1].describe(std::path::Path::new("roster.csv"));
        assert!(
            line.contains("roster.csv")
                && line.contains("第 5 行")
                && line.contains("甲学院第三党支部")
                && line.contains("not-an-address"),
            "{line}"
        );
    }

    #[test]
    fn branches_built_in_code_report_missing_addresses_too() {
        let b = |name: &str, email: &str| Branch {
            college: String::new(),
            name: name.to_string(),
            secretary: String::new(),
            email: email.to_string(),
        };
        let r = Roster::from_branches(vec![b("甲", "a@b.cn"), b("乙", " "), b("丙", "x")]);
        let codes: Vec<_> = r
            .unreachable()
            .iter()
            .map(|u| (u.line, u.why.code()))
            .collect();
        assert_eq!(codes, [(3, "no_email"), (4, "bad_email")]);
    }

    #[test]
    fn gbk_error_names_the_line() {
        let mut bytes = "支部名称,书记邮箱\n甲党支部,a@b.cn\n".as_bytes().to_vec();
        bytes.extend_from_slice(b"\xd2\xd2,c@d.cn\n");
        match Roster::from_csv(bytes.as_slice()) {
            Err(RosterError::NotUtf8 { line }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numeral_conversion() {
        let f = |s: &str| {
            arabic(&s.chars().collect::<Vec<_>>())
                .into_iter()
                .collect::<String>()
        };
        assert_eq!(f("第二"), "第2");
        assert_eq!(f("第十二"), "第12");
        assert_eq!(f("二十一"), "21");
        assert_eq!(f("二〇二四级"), "2024级");
        assert_eq!(f("一百零五"), "105");
        assert_eq!(f("十"), "10");
        assert_eq!(f("党支部"), "党支部");
        let y = |s: &str| {
            four_digit_years(&s.chars().collect::<Vec<_>>())
                .into_iter()
                .collect::<String>()
        };
        assert_eq!(y("24级"), "2024级");
        assert_eq!(y("2024级"), "2024级");
        assert_eq!(y("124级"), "124级");
    }

    #[test]
    fn abbreviation_rule_is_strict() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert!(is_abbreviation(&c("经管学院"), &c("经济与管理学院")));
        assert!(!is_abbreviation(&c("管经学院"), &c("经济与管理学院")));
        assert!(!is_abbreviation(&c("经"), &c("经济与管理学院")));
        assert!(!is_abbreviation(&c("经济与管理学院"), &c("经济与管理学院")));
    }

    #[test]
    fn hostile_text_does_not_panic() {
        let r = roster();
        let long = "第二党支部".repeat(2000);
        for s in [
            long.as_str(),
            "十十十十百百千千",
            "〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇〇级",
            "九千九百九十九万",
            "e\u{301}",
            "\u{0}",
        ] {
            let _ = r.match_branch(s);
        }
        let empty = Roster::from_branches(Vec::new());
        assert!(empty.is_empty());
        assert_eq!(empty.match_branch("甲").kind, U);
    }
}
