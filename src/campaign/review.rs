//! Importing the reviewers' decisions: the consolidated 汇总表 that shenbao exported, with two
//! columns the reviewers added — 评审等级 (重点 / 特色 / 一般 / 不立项) and 资助金额 — read back
//! into one [`Decision`] per branch.
//!
//! The sheet passed through people and a spreadsheet program, so it is read the way
//! [`crate::extract::sheet`] reads branch summaries: the header row is found by its text (after
//! the title row, wherever the columns ended up, `资助金额（元）`, `评 审 等 级`, full-width
//! brackets …), the 合计 row and empty rows are skipped, amounts are read with
//! [`parse_amount`] (`3000`, `3,000元`, `３０００`), level names with their usual variants
//! (`重点项目`, `不予立项`, `未立项`).
//!
//! What it must never do is half-import: the decisions drive result mails and money, and a
//! staff member who imports a sheet with one typo must not end up with 299 branches notified and
//! one forgotten. So [`validate`] looks at the whole workbook and returns either every decision
//! or every error — with its row, its column and a Chinese sentence saying what to change — so
//! that the reviewers fix the sheet in one round instead of one error per import attempt.
//!
//! Pure logic: a [`Workbook`] in (read with [`crate::extract::sheet::read_workbook`]), decisions
//! or errors out; the roster lookup is a callback, so storage and the roster's matching rules stay
//! where they are. Whether every *applying* branch was graded is answered by [`ungraded`] from the
//! applications the caller knows; [`validate`] checks that what is written is consistent.

use std::collections::HashMap;

use serde::Serialize;

use crate::extract::amount::parse_amount;
use crate::extract::model::{Amount, Sheet, Value, Workbook};
use crate::textnorm::{normalize, trim_invisible};

/// A branch's current review decision, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentReview {
    pub branch: String,
    pub level: String,
    pub amount_yuan: Option<f64>,
    pub funded: bool,
}

/// One review level and what it allows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Level {
    /// Canonical name, as reviewers write it and as decisions carry it (`重点`).
    pub name: String,
    /// Largest amount a project of this level may be granted, in yuan; `None` means no cap
    /// (and is what a level that funds nothing has).
    pub cap_yuan: Option<f64>,
    /// Whether the project is funded (立项). A level that is not funded must have no amount
    /// (empty or 0); a funded one must have a positive amount.
    pub funded: bool,
}

/// The office's levels: 重点 ≤ 5000 元, 特色 ≤ 3000 元, 一般 ≤ 1000 元, and 不立项.
///
/// A function rather than constants so configuration can replace the list.
pub fn default_levels() -> Vec<Level> {
    let funded = |name: &str, cap: f64| Level {
        name: name.to_string(),
        cap_yuan: Some(cap),
        funded: true,
    };
    vec![
        funded("重点", 5000.0),
        funded("特色", 3000.0),
        funded("一般", 1000.0),
        Level {
            name: "不立项".to_string(),
            cap_yuan: None,
            funded: false,
        },
    ]
}

/// The reviewers' decision on one branch's project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// 1-based sheet row the decision was read from (for history and for staff).
    pub row: usize,
    /// The branch as the roster names it (not as the cell spelt it).
    pub branch: String,
    /// The canonical level name (`重点`, also when the cell said `重点项目`).
    pub level: String,
    /// The granted amount in yuan, rounded to cents; `None` for a level that funds nothing
    /// (an empty cell and `0` mean the same there).
    pub amount_yuan: Option<f64>,
    pub funded: bool,
}

/// One thing wrong with the imported sheet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportError {
    /// 1-based sheet row, as Excel shows it.
    pub row: usize,
    /// The column by its canonical name — `支部名称`, `评审等级` or `资助金额` — whatever the
    /// header cell spelt (`资助金额（元）`): a stable key for callers, and the word reviewers
    /// see in the header.
    pub column: String,
    /// Chinese: what is wrong and what to write instead.
    pub message: String,
}

/// A sheet row that grades nothing: its 评审等级 and 资助金额 are both empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlankRow {
    /// 1-based sheet row.
    pub row: usize,
    /// The roster name for a roster branch; the cell's text for one the roster does not know.
    pub branch: String,
}

/// Everything a sheet says: the decisions, and the rows that decide nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reviewed {
    pub decisions: Vec<Decision>,
    /// Roster branches whose row was left blank: not graded by this sheet (whether that is
    /// allowed is [`ungraded`]'s question).
    pub blank: Vec<BlankRow>,
    /// Rows left blank whose branch the roster does not know: the export lists applications
    /// whose branch was not recognised, marked as not to be graded; skipped.
    pub unrecognised: Vec<BlankRow>,
    /// Roster branches graded in a row that has an error: that error names them, so
    /// [`ungraded`] does not list them again as missing from the sheet.
    pub erred: Vec<String>,
}

/// An applying branch that has no decision: neither in the sheet nor from an earlier import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ungraded {
    pub branch: String,
    /// Its blank row in the sheet; `None` when the sheet has no row for it.
    pub row: Option<usize>,
}

impl std::fmt::Display for Ungraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.row {
            Some(row) => write!(f, "{}（第 {row} 行未填写评审等级）", self.branch),
            None => write!(f, "{}（表中没有这一支部的行）", self.branch),
        }
    }
}

/// The branches that applied (`applicants`, roster names, in the order to report them) and
/// are still without a decision after this sheet: no decision in `reviewed`, and
/// `already_decided` says no earlier import gave one. Each is named once, with its blank row
/// when the sheet has one.
pub fn ungraded(
    applicants: &[String],
    already_decided: &dyn Fn(&str) -> bool,
    reviewed: &Reviewed,
) -> Vec<Ungraded> {
    let mut out: Vec<Ungraded> = Vec::new();
    for a in applicants {
        if reviewed.decisions.iter().any(|d| d.branch == *a)
            || reviewed.erred.contains(a)
            || already_decided(a)
            || out.iter().any(|u| u.branch == *a)
        {
            continue;
        }
        out.push(Ungraded {
            branch: a.clone(),
            row: reviewed
                .blank
                .iter()
                .find(|b| b.branch == *a)
                .map(|b| b.row),
        });
    }
    out
}

/// What [`validate`] needs.
pub struct ImportInput<'a> {
    pub workbook: &'a Workbook,
    /// The levels reviewers may give, e.g. [`default_levels`].
    pub levels: &'a [Level],
    /// The canonical roster name for a branch name as written in the sheet, or `None` when the
    /// roster has no such branch.
    pub is_known_branch: &'a dyn Fn(&str) -> Option<String>,
}

/// Canonical column names, used in errors and messages.
const COL_BRANCH: &str = "支部名称";
const COL_LEVEL: &str = "评审等级";
const COL_AMOUNT: &str = "资助金额";

/// Header labels per column after [`clean_label`]. Exact matches only: the export's own
/// 申请经费（元） must never be taken for the granted amount, and data cells (`…第一党支部`)
/// must never be taken for a header.
const BRANCH_LABELS: &[&str] = &[
    "支部名称",
    "党支部名称",
    "支部",
    "党支部",
    "申报支部",
    "所在支部",
];
const LEVEL_LABELS: &[&str] = &[
    "评审等级",
    "等级",
    "评审结果",
    "立项等级",
    "评定等级",
    "项目等级",
    "评审档次",
];
const AMOUNT_LABELS: &[&str] = &[
    "资助金额",
    "资助经费",
    "资助额度",
    "批准金额",
    "批准经费",
    "核定金额",
    "核定经费",
    "立项金额",
    "立项经费",
    "拨款金额",
];

/// Rows searched for the header: the export puts it on row 2, but reviewers insert notes above.
const HEADER_SEARCH_ROWS: usize = 20;

/// How people write "not funded"; accepted for any level with `funded == false`.
const UNFUNDED_ALIASES: &[&str] = &["不立项", "不予立项", "未立项", "未予立项"];

/// What people put in a money cell to mean "none" (a dash, a slash, 无). For a level that
/// funds nothing that is exactly right; for a funded level it is a missing amount.
const NO_MONEY: &[&str] = &["无", "/", "\\", "-", "不资助", "无资助", "未资助"];

/// Amounts are compared to caps with half a cent of slack (they are rounded to cents).
const CENT_SLACK: f64 = 0.005;

/// Largest amount taken at face value (as in [`parse_amount`]): more is a typo.
const MAX_YUAN: f64 = 1e8;

/// Reads the reviewers' sheet and returns every decision, or — if anything at all is wrong —
/// every error, sorted by row (nothing is half-imported).
///
/// A row whose 评审等级 and 资助金额 are both empty grades nothing and is no error: a roster
/// branch's is listed in [`Reviewed::blank`] (whether it may stay ungraded is decided by
/// [`ungraded`] and the caller), one the roster does not know — an application the export
/// marked as 支部未识别 — in [`Reviewed::unrecognised`]. A graded row for a branch the roster
/// does not know is an error.
///
/// The sheet and header row are found by text: the first of the first
/// `HEADER_SEARCH_ROWS` (20) rows of any sheet that has a 支部名称 column, preferring one that
/// also has the 评审等级 and 资助金额 columns. A missing review column is an error on the header
/// row; the other column's checks still run, so one round of corrections fixes everything.
pub fn validate(input: &ImportInput) -> Result<Reviewed, Vec<ImportError>> {
    let (reviewed, errors) = check(input);
    if errors.is_empty() {
        Ok(reviewed)
    } else {
        Err(errors)
    }
}

/// [`validate`], returning what could be read together with the errors, so that a caller can
/// report the branches left ungraded in the same round as the errors.
pub fn check(input: &ImportInput) -> (Reviewed, Vec<ImportError>) {
    let Some((sheet, cols)) = find_header(input.workbook) else {
        let error = ImportError {
            row: 1,
            column: COL_BRANCH.to_string(),
            message: format!(
                "找不到表头：前 {HEADER_SEARCH_ROWS} 行中没有「支部名称」列。请导入 shenbao 导出的\
                 汇总表，在其中的「评审等级」和「资助金额」两列填写"
            ),
        };
        return (Reviewed::default(), vec![error]);
    };
    let header_row = cols.header + 1;
    let mut errors = Vec::new();
    let mut err = |row: usize, column: &str, message: String| {
        errors.push(ImportError {
            row,
            column: column.to_string(),
            message,
        })
    };
    let accepted = accepted_levels(input.levels);
    if cols.level.is_none() {
        err(
            header_row,
            COL_LEVEL,
            format!(
                "表头中没有「评审等级」列：请在第 {header_row} 行表头末尾加一列「评审等级」，\
                 每个支部填写 {accepted}"
            ),
        );
    }
    if cols.amount.is_none() {
        err(
            header_row,
            COL_AMOUNT,
            format!(
                "表头中没有「资助金额」列：请在第 {header_row} 行表头末尾加一列「资助金额」，\
                 填写每个立项项目的资助金额（元）"
            ),
        );
    }

    let aliases = level_aliases(input.levels);
    let branch_header = sheet
        .rows
        .get(cols.header)
        .map(|r| clean_label(&cell_text(r, cols.branch)))
        .unwrap_or_default();
    // Canonical branch → the first row that graded it.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut reviewed = Reviewed::default();
    let mut graded_rows = 0usize;
    let mut after_total = false;

    for (r, row) in sheet.rows.iter().enumerate().skip(cols.header + 1) {
        let row_no = r + 1;
        let branch_text = cell_text(row, cols.branch);
        let level_text = cols.level.map(|c| cell_text(row, c)).unwrap_or_default();
        let amount_cell = cols
            .amount
            .and_then(|c| row.get(c))
            .unwrap_or(&Value::Empty);
        let amount_blank = is_blank(amount_cell);

        // Below the 合计 row only graded rows count: notes and signatures live there, but a row
        // a reviewer appended after the total is still a decision and is checked like any other.
        if after_total && level_text.is_empty() && amount_blank {
            continue;
        }
        if is_total_row(row) {
            after_total = true;
            continue;
        }
        if branch_text.is_empty() && level_text.is_empty() && amount_blank {
            continue; // an empty row, or one with nothing to import
        }
        if clean_label(&branch_text) == branch_header && !branch_header.is_empty() {
            continue; // the header repeated (pasted from a printed page)
        }
        if level_text.is_empty() && amount_blank {
            // A branch not graded here: for the caller's coverage check, or, when the roster
            // does not know it, an application the export marked as not to be graded.
            let row = BlankRow {
                row: row_no,
                branch: branch_text.clone(),
            };
            match (input.is_known_branch)(&branch_text) {
                Some(canonical) => reviewed.blank.push(BlankRow {
                    branch: canonical,
                    ..row
                }),
                None => reviewed.unrecognised.push(row),
            }
            continue;
        }
        graded_rows += 1;
        let mut row_ok = true;

        // 支部名称: known, and graded once.
        let branch = if branch_text.is_empty() {
            row_ok = false;
            err(
                row_no,
                COL_BRANCH,
                "未填写支部名称：请填写支部的全称（与导出的汇总表一致），或删除这一行".to_string(),
            );
            None
        } else {
            match (input.is_known_branch)(&branch_text) {
                None => {
                    row_ok = false;
                    err(
                        row_no,
                        COL_BRANCH,
                        format!(
                            "「{branch_text}」不在支部名册中：请按导出的汇总表核对支部名称，不要改动；\
                             若导出时这一行标明“支部未识别”，须工作人员先用 shenbao assign 指定支部、\
                             重新导出汇总表后再评审，本次请清空这一行的评审等级和资助金额"
                        ),
                    );
                    None
                }
                Some(canonical) => {
                    if let Some(first) = seen.get(&canonical) {
                        row_ok = false;
                        err(
                            row_no,
                            COL_BRANCH,
                            format!(
                                "「{canonical}」在第 {first} 行已经评审过，同一支部不能评审两次：\
                                 请删除或合并重复的行"
                            ),
                        );
                    } else {
                        seen.insert(canonical.clone(), row_no);
                    }
                    Some(canonical)
                }
            }
        };

        // 评审等级.
        let level = match cols.level {
            None => None,
            Some(_) if level_text.is_empty() => {
                row_ok = false;
                err(
                    row_no,
                    COL_LEVEL,
                    format!("未填写评审等级：请填写 {accepted}"),
                );
                None
            }
            Some(_) => {
                let found = find_level(&aliases, input.levels, &level_text);
                if found.is_none() {
                    row_ok = false;
                    err(
                        row_no,
                        COL_LEVEL,
                        format!("「{level_text}」不是评审等级：请填写 {accepted}"),
                    );
                }
                found
            }
        };

        // 资助金额: readable on its own, then consistent with the level.
        let amount = match cols.amount {
            None => None,
            Some(_) => match read_amount(amount_cell, cols.amount_in_wan) {
                Ok(a) => Some(a),
                Err(message) => {
                    row_ok = false;
                    err(row_no, COL_AMOUNT, message);
                    None
                }
            },
        };
        let mut decided = false;
        if let (Some(level), Some(amount)) = (level, amount) {
            if let Some(message) = check_amount(level, amount, cols.amount_in_wan) {
                row_ok = false;
                err(row_no, COL_AMOUNT, message);
            }
            if row_ok && let Some(branch) = branch.clone() {
                reviewed.decisions.push(Decision {
                    row: row_no,
                    branch,
                    level: level.name.clone(),
                    amount_yuan: amount.filter(|_| level.funded),
                    funded: level.funded,
                });
                decided = true;
            }
        }
        if !decided
            && let Some(branch) = branch
            && !reviewed.erred.contains(&branch)
        {
            reviewed.erred.push(branch);
        }
    }

    if graded_rows == 0 && errors.is_empty() {
        errors.push(ImportError {
            row: header_row + 1,
            column: COL_LEVEL.to_string(),
            message: "表头下面没有任何支部的评审结果：请确认导入的是填写好的评审表".to_string(),
        });
    }
    // Stable: within a row the errors stay in column order (支部名称, 评审等级, 资助金额).
    errors.sort_by_key(|e| e.row);
    (reviewed, errors)
}

/// The errors as Chinese lines for staff and reviewers, one per error, in the order given
/// (`第 5 行「评审等级」：未填写评审等级……`); empty when there are none.
///
/// Only the lines: the caller says above them what was imported (nothing) and from which file,
/// so the summary is written once.
pub fn format_errors(errors: &[ImportError]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(&format!("第 {} 行「{}」：{}\n", e.row, e.column, e.message));
    }
    out
}

/// Where the review table is: the header row (0-based) and its columns (0-based).
struct Columns {
    header: usize,
    branch: usize,
    level: Option<usize>,
    amount: Option<usize>,
    /// The amount header says 万元 (`资助金额（万元）`): bare numbers are in 万元.
    amount_in_wan: bool,
}

impl Columns {
    fn score(&self) -> usize {
        1 + usize::from(self.level.is_some()) + usize::from(self.amount.is_some())
    }
}

/// The best header in the workbook: most of the three columns, earliest on a tie (the real
/// header comes before any data row that might look like one).
fn find_header(wb: &Workbook) -> Option<(&Sheet, Columns)> {
    let mut best: Option<(&Sheet, Columns)> = None;
    for sheet in &wb.sheets {
        for (r, row) in sheet.rows.iter().enumerate().take(HEADER_SEARCH_ROWS) {
            if let Some(cols) = header_at(row, r)
                && best.as_ref().is_none_or(|(_, b)| cols.score() > b.score())
            {
                best = Some((sheet, cols));
            }
        }
    }
    best
}

fn header_at(row: &[Value], r: usize) -> Option<Columns> {
    let labels: Vec<String> = (0..row.len())
        .map(|c| clean_label(&cell_text(row, c)))
        .collect();
    let find = |set: &[&str]| labels.iter().position(|l| set.contains(&l.as_str()));
    let branch = find(BRANCH_LABELS)?;
    let amount = find(AMOUNT_LABELS);
    let amount_in_wan = amount.is_some_and(|c| normalize(&cell_text(row, c)).contains("万元"));
    Some(Columns {
        header: r,
        branch,
        level: find(LEVEL_LABELS),
        amount,
        amount_in_wan,
    })
}

/// Folds a header cell for matching, as the summary reader does.
fn clean_label(text: &str) -> String {
    crate::extract::sheet::strip_label_notes(text)
}

/// A cell as trimmed text (`""` when absent).
fn cell_text(row: &[Value], col: usize) -> String {
    row.get(col)
        .map(|v| trim_invisible(&v.to_text()).to_string())
        .unwrap_or_default()
}

fn is_blank(v: &Value) -> bool {
    trim_invisible(&v.to_text()).is_empty()
}

/// The export's last row: its first non-empty cell says 合计 (or 总计 / 小计).
fn is_total_row(row: &[Value]) -> bool {
    row.iter()
        .map(|v| normalize(&v.to_text()))
        .find(|t| !t.is_empty())
        .is_some_and(|t| ["合计", "总计", "小计"].iter().any(|k| t.starts_with(k)))
}

/// Normalised spellings of each level → its index: the name, the name with or without 项目
/// (`重点项目`), and for a level that funds nothing the usual ways of saying so.
fn level_aliases(levels: &[Level]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, l) in levels.iter().enumerate() {
        let name = normalize(&l.name);
        if name.is_empty() {
            continue;
        }
        match name.strip_suffix("项目") {
            Some(short) if !short.is_empty() => out.push((short.to_string(), i)),
            _ => out.push((format!("{name}项目"), i)),
        }
        out.push((name, i));
        if !l.funded {
            out.extend(UNFUNDED_ALIASES.iter().map(|a| (normalize(a), i)));
        }
    }
    out
}

/// The level a cell names; the first configured level wins if two share a spelling.
fn find_level<'l>(
    aliases: &[(String, usize)],
    levels: &'l [Level],
    text: &str,
) -> Option<&'l Level> {
    let written = normalize(text);
    aliases
        .iter()
        .find(|(a, _)| *a == written)
        .and_then(|(_, i)| levels.get(*i))
}

/// `重点、特色、一般、不立项 之一（也可写作 重点项目、…）`, for messages.
fn accepted_levels(levels: &[Level]) -> String {
    let names: Vec<&str> = levels.iter().map(|l| l.name.as_str()).collect();
    let mut variants: Vec<String> = Vec::new();
    for l in levels {
        if l.funded && !l.name.ends_with("项目") {
            variants.push(format!("{}项目", l.name));
        } else if !l.funded {
            variants.extend(
                UNFUNDED_ALIASES
                    .iter()
                    .filter(|a| **a != l.name)
                    .map(|a| a.to_string()),
            );
        }
    }
    let mut out = format!("{} 之一", names.join("、"));
    if !variants.is_empty() {
        out.push_str(&format!("（也可写作 {}）", variants.join("、")));
    }
    out
}

/// `重点项目` for messages (`重点项目资助上限 5000 元`).
fn level_project(level: &Level) -> String {
    if level.name.ends_with("项目") {
        level.name.clone()
    } else {
        format!("{}项目", level.name)
    }
}

/// The amount in a cell, in yuan: `Ok(None)` when empty or written as "none" (`无`, `/`, `-`),
/// `Err` with a message when it is not one non-negative amount.
///
/// Under a 万元 header a bare number (no 元 or 万 written) is in 万元 and converted, as the
/// branch summary reader does; a cell that names its unit is taken as written.
fn read_amount(v: &Value, in_wan: bool) -> Result<Option<f64>, String> {
    let scale = if in_wan { 10_000.0 } else { 1.0 };
    let yuan = match v {
        Value::Empty => return Ok(None),
        Value::Int(i) => *i as f64 * scale,
        Value::Float(f) => *f * scale,
        Value::Text(s) => {
            let text = trim_invisible(s);
            let norm = normalize(text);
            if norm.is_empty() || NO_MONEY.contains(&norm.as_str()) {
                return Ok(None);
            }
            match parse_amount(text) {
                None => return Ok(None),
                Some(Amount::Yuan { yuan }) => {
                    if norm.contains(['元', '万']) {
                        yuan
                    } else {
                        yuan * scale
                    }
                }
                Some(Amount::Unparsed { reason }) if reason == "负数" => {
                    return Err(negative_message(text));
                }
                Some(Amount::Unparsed { reason }) => {
                    return Err(format!(
                        "「{text}」不是一个金额（{reason}）：请只填写一个数字，例如 3000"
                    ));
                }
            }
        }
        Value::Bool(_) | Value::Date(_) => {
            return Err(format!(
                "「{}」不是金额：请填写数字，例如 3000",
                v.to_text()
            ));
        }
        Value::Error(e) => {
            return Err(format!(
                "单元格是错误值 {e}：请填写金额数字，不要用会出错的公式"
            ));
        }
    };
    if !yuan.is_finite() || yuan > MAX_YUAN {
        return Err(format!(
            "「{}」不是合理的金额：请填写资助金额（元），例如 3000",
            v.to_text()
        ));
    }
    if yuan < 0.0 {
        return Err(negative_message(&v.to_text()));
    }
    Ok(Some((yuan * 100.0).round() / 100.0))
}

fn negative_message(text: &str) -> String {
    format!("资助金额「{text}」是负数：请填写 0 或正数")
}

/// Whether an amount suits a level: a funded level needs a positive amount within its cap, a
/// level that funds nothing needs none.
fn check_amount(level: &Level, amount: Option<f64>, in_wan: bool) -> Option<String> {
    let unit_note = if in_wan {
        "（表头单位为万元，已换算为元）"
    } else {
        ""
    };
    let cap_hint = level
        .cap_yuan
        .map(|c| format!("（不超过 {} 元）", yuan_text(c)))
        .unwrap_or_default();
    match (level.funded, amount) {
        (true, None) => Some(format!(
            "评审等级为「{}」，但没有填写资助金额：请填写资助金额{cap_hint}",
            level.name
        )),
        (true, Some(a)) if a <= 0.0 => Some(format!(
            "评审等级为「{}」，资助金额却是 0：请填写资助金额{cap_hint}；不资助的项目请把评审等级改为「不立项」",
            level.name
        )),
        (true, Some(a)) => level
            .cap_yuan
            .filter(|cap| a > cap + CENT_SLACK)
            .map(|cap| {
                format!(
                    "资助金额 {} 元{unit_note}超过{}资助上限 {} 元：请改为不超过 {} 元，或调整评审等级",
                    yuan_text(a),
                    level_project(level),
                    yuan_text(cap),
                    yuan_text(cap)
                )
            }),
        (false, Some(a)) if a > 0.0 => Some(format!(
            "评审等级为「{}」，不应有资助金额（填写了 {} 元{unit_note}）：请清空资助金额或填 0，或改为立项的等级",
            level.name,
            yuan_text(a)
        )),
        (false, _) => None,
    }
}

/// `5000` → `5000`, `2800.5` → `2800.5`, `2800.25` → `2800.25`.
fn yuan_text(y: f64) -> String {
    let cents = (y * 100.0).round() / 100.0;
    if cents.fract() == 0.0 && cents.abs() < 1e15 {
        format!("{}", cents as i64)
    } else {
        format!("{cents:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// A result as staff and branches read it: `重点，5000 元`, or the level alone for a level that
/// funds nothing (`不立项`).
pub fn result_text(level: &str, amount_yuan: Option<f64>, funded: bool) -> String {
    match amount_yuan {
        Some(a) if funded => format!("{level}，{} 元", yuan_text(a)),
        _ => level.to_string(),
    }
}

/// What importing a decision changes for its branch, against the current decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The branch has no result yet.
    New,
    /// The same level and amount as now: nothing changes, and no new result mail goes out.
    Same,
    /// Another result than now (`from`, as [`result_text`] writes it): a new result mail.
    Changed { from: String },
}

/// What `decision` changes against `current` (the store's current decisions).
pub fn change(decision: &Decision, current: &[CurrentReview]) -> Change {
    let Some(now) = current.iter().find(|c| c.branch == decision.branch) else {
        return Change::New;
    };
    let same_amount = match (now.amount_yuan, decision.amount_yuan) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() < CENT_SLACK,
        _ => false,
    };
    if now.level == decision.level && now.funded == decision.funded && same_amount {
        Change::Same
    } else {
        Change::Changed {
            from: result_text(&now.level, now.amount_yuan, now.funded),
        }
    }
}

/// One level in the summary of the current results: how many branches have it and what they
/// were granted, beside the level's cap per project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelCount {
    pub name: String,
    pub funded: bool,
    /// `≤ 5000 元`, or `—` for a level without a cap.
    pub cap: String,
    pub branches: usize,
    /// The amounts granted, in yuan (`12000`); empty for a level that funds nothing.
    pub total: String,
}

/// Every level of `levels` (in their order, also those nobody has) with its count among the
/// `current` decisions; a level that is no longer configured but still decided comes last, so
/// every decision is counted once.
pub fn level_counts(levels: &[Level], current: &[CurrentReview]) -> Vec<LevelCount> {
    let mut names: Vec<(&str, bool, Option<f64>)> = levels
        .iter()
        .map(|l| (l.name.as_str(), l.funded, l.cap_yuan))
        .collect();
    for c in current {
        if !names.iter().any(|(n, _, _)| *n == c.level) {
            names.push((c.level.as_str(), c.funded, None));
        }
    }
    names
        .into_iter()
        .map(|(name, funded, cap)| {
            let of_level = current.iter().filter(|c| c.level == name);
            let total: f64 = of_level
                .clone()
                .filter(|c| c.funded)
                .filter_map(|c| c.amount_yuan)
                .sum();
            LevelCount {
                name: name.to_string(),
                funded,
                cap: cap
                    .map(|c| format!("≤ {} 元", yuan_text(c)))
                    .unwrap_or_else(|| "—".to_string()),
                branches: of_level.count(),
                total: if funded {
                    format!("{} 元", yuan_text(total))
                } else {
                    String::new()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::xlsx::{XlsxRow, write_summary_xlsx};
    use crate::extract::sheet::{SheetLimits, read_workbook};
    use rust_xlsxwriter::{Format, Formula};

    /// The export's header row (its constant is private there; the real-export test checks
    /// that this copy still matches what `write_summary_xlsx` writes).
    const EXPORT_HEADERS: [&str; 13] = [
        "序号",
        "学院",
        "支部名称",
        "项目名称",
        "申报板块",
        "项目负责人",
        "职务",
        "联系方式",
        "指导老师",
        "申请经费（元）",
        "版本",
        "收到时间",
        "问题",
    ];

    const ROSTER: [&str; 10] = [
        "土木工程学院本科生第一党支部",
        "海洋科学硕士生党支部",
        "地质学硕士生党支部",
        "2022级本科生党支部",
        "化学系博士生党支部",
        "数学学院教工党支部",
        "经济学院本科生党支部",
        "法学院研究生党支部",
        "物理学院本科生第二党支部",
        "外国语学院硕士生党支部",
    ];

    /// The roster lookup shenbao would pass: the same name up to spaces and full-width forms.
    fn roster(written: &str) -> Option<String> {
        let w = normalize(written);
        ROSTER
            .iter()
            .find(|b| normalize(b) == w)
            .map(|b| b.to_string())
    }

    /// A cell to write: empty, text, or a number.
    #[derive(Debug, Clone, Copy)]
    enum C {
        E,
        T(&'static str),
        N(f64),
    }
    use C::{E, N, T};

    /// The export's 13 cells for the `i`-th branch.
    fn export_cells(i: usize, branch: &'static str) -> Vec<C> {
        vec![
            N((i + 1) as f64),
            T("海洋与地球科学学院"),
            T(branch),
            T("“红色客厅”社区文化浸润计划"),
            T("党旗飘扬·社区聚力"),
            T("朱颖"),
            T("副书记"),
            T("15237692682"),
            T("汪睿婷"),
            N(3000.0),
            N(1.0),
            T("2025-09-26 14:03"),
            E,
        ]
    }

    /// A reviewed row: the export's cells plus 评审等级 and 资助金额.
    fn reviewed(i: usize, branch: &'static str, level: C, amount: C) -> Vec<C> {
        let mut cells = export_cells(i, branch);
        cells.extend([level, amount]);
        cells
    }

    fn review_headers(level: &'static str, amount: &'static str) -> Vec<&'static str> {
        let mut h = EXPORT_HEADERS.to_vec();
        h.extend([level, amount]);
        h
    }

    /// A real .xlsx in the export's layout — merged title row, header row, data rows, a 合计 row
    /// merged over A:I with the SUM over J — with `headers` and `rows`, then `after_total` rows,
    /// read back with the reader an import uses.
    fn xlsx(headers: &[&str], rows: &[Vec<C>], after_total: &[Vec<C>]) -> Workbook {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("汇总").unwrap();
        let last = headers.len().max(10) as u16 - 1;
        let title = "2025年秋季学期学生党支部“对标争先”建设项目评审表";
        ws.merge_range(0, 0, 0, last, title, &Format::new().set_bold())
            .unwrap();
        for (c, h) in headers.iter().enumerate() {
            ws.write_string(1, c as u16, *h).unwrap();
        }
        let put = |ws: &mut rust_xlsxwriter::Worksheet, r: u32, cells: &[C]| {
            for (c, cell) in cells.iter().enumerate() {
                match cell {
                    E => {}
                    T(s) => {
                        ws.write_string(r, c as u16, *s).unwrap();
                    }
                    N(n) => {
                        ws.write_number(r, c as u16, *n).unwrap();
                    }
                }
            }
        };
        let mut total = 0.0;
        for (i, row) in rows.iter().enumerate() {
            put(ws, i as u32 + 2, row);
            if let Some(N(n)) = row.get(9) {
                total += n;
            }
        }
        let sum = rows.len() as u32 + 2;
        ws.merge_range(sum, 0, sum, 8, "合计", &Format::new().set_bold())
            .unwrap();
        let formula = Formula::new(format!("=SUM(J3:J{sum})")).set_result(total.to_string());
        ws.write_formula(sum, 9, formula).unwrap();
        for (i, row) in after_total.iter().enumerate() {
            put(ws, sum + 1 + i as u32, row);
        }
        let bytes = wb.save_to_buffer().unwrap();
        read_workbook(&bytes, &SheetLimits::default()).unwrap()
    }

    /// A review sheet with the usual headers.
    fn review(rows: &[Vec<C>]) -> Workbook {
        xlsx(&review_headers("评审等级", "资助金额（元）"), rows, &[])
    }

    fn run_with(wb: &Workbook, levels: &[Level]) -> Result<Vec<Decision>, Vec<ImportError>> {
        validate(&ImportInput {
            workbook: wb,
            levels,
            is_known_branch: &roster,
        })
        .map(|r| r.decisions)
    }

    fn run(wb: &Workbook) -> Result<Vec<Decision>, Vec<ImportError>> {
        run_with(wb, &default_levels())
    }

    fn decision(row: usize, branch: &str, level: &str, amount: Option<f64>) -> Decision {
        Decision {
            row,
            branch: branch.to_string(),
            level: level.to_string(),
            amount_yuan: amount,
            funded: amount.is_some(),
        }
    }

    /// (row, column) of each error, for compact assertions.
    fn places(errors: &[ImportError]) -> Vec<(usize, &str)> {
        errors.iter().map(|e| (e.row, e.column.as_str())).collect()
    }

    fn errors_of(wb: &Workbook) -> Vec<ImportError> {
        match run(wb) {
            Err(e) => e,
            Ok(d) => panic!("expected errors, got decisions {d:?}"),
        }
    }

    fn amounts_of(wb: &Workbook) -> Vec<Option<f64>> {
        match run(wb) {
            Ok(d) => d.iter().map(|d| d.amount_yuan).collect(),
            Err(e) => panic!("{}", format_errors(&e)),
        }
    }

    #[test]
    fn clean_import_gives_every_level() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            reviewed(1, ROSTER[1], T("特色"), T("3,000元")),
            reviewed(2, ROSTER[2], T("一般"), N(800.0)),
            reviewed(3, ROSTER[3], T("不立项"), E),
        ]);
        assert_eq!(
            run(&wb),
            Ok(vec![
                decision(3, ROSTER[0], "重点", Some(5000.0)),
                decision(4, ROSTER[1], "特色", Some(3000.0)),
                decision(5, ROSTER[2], "一般", Some(800.0)),
                decision(6, ROSTER[3], "不立项", None),
            ])
        );
    }

    /// The exact bytes shenbao's export writes, read back, the export's own two review columns
    /// filled in the in-memory sheet as a reviewer's spreadsheet program would keep them (text
    /// cells).
    #[test]
    fn real_export_with_review_columns_appended() {
        let row = |branch: &str, budget: Option<f64>, problems: &str| XlsxRow {
            college: "海洋与地球科学学院".into(),
            branch: branch.into(),
            project_name: "“红色客厅”社区文化浸润计划：以党建引领社区治理的实践探索".into(),
            section: "党旗飘扬·社区聚力".into(),
            leader: "朱颖".into(),
            leader_role: "副书记".into(),
            phone: "15237692682".into(),
            advisor: "汪睿婷".into(),
            budget_yuan: budget,
            budget_text: "2000-3000元".into(),
            version: 2,
            received_at: "2025-09-26 14:03".into(),
            problems: problems.into(),
            ..Default::default()
        };
        let rows = [
            row(ROSTER[0], Some(5000.0), ""),
            row(ROSTER[1], Some(4800.5), "缺少指导老师\n申请经费超过上限"),
            row(ROSTER[2], None, "申请经费不是一个金额"),
            row(ROSTER[3], Some(1200.0), ""),
        ];
        let bytes = write_summary_xlsx("2025年秋季学期“对标争先”申报汇总", &rows).unwrap();
        let exported = read_workbook(&bytes, &SheetLimits::default()).unwrap();
        let header: Vec<String> = exported.sheets[0].rows[1]
            .iter()
            .map(Value::to_text)
            .collect();
        assert_eq!(
            header[..EXPORT_HEADERS.len()],
            EXPORT_HEADERS,
            "the test layout mirrors the export"
        );
        // The export carries the review's columns itself: reviewers fill them in place.
        assert_eq!(
            header[EXPORT_HEADERS.len()..],
            ["评审等级", "资助金额（元）", "结项状态"]
        );

        let fill = |cells: [(&str, &str); 4]| {
            let mut wb = exported.clone();
            let sheet = &mut wb.sheets[0];
            let mut put = |r: usize, c: usize, text: &str| {
                let row = &mut sheet.rows[r];
                row.resize(row.len().max(c + 1), Value::Empty);
                row[c] = Value::Text(text.to_string());
            };
            for (i, (level, amount)) in cells.into_iter().enumerate() {
                put(i + 2, 13, level);
                put(i + 2, 14, amount);
            }
            wb
        };

        let good = fill([
            ("重点", "5000"),
            ("特色项目", "２８００"),
            ("一般", "1,000元"),
            ("不予立项", ""),
        ]);
        assert_eq!(
            run(&good),
            Ok(vec![
                decision(3, ROSTER[0], "重点", Some(5000.0)),
                decision(4, ROSTER[1], "特色", Some(2800.0)),
                decision(5, ROSTER[2], "一般", Some(1000.0)),
                decision(6, ROSTER[3], "不立项", None),
            ])
        );

        let bad = fill([
            ("重点", "6000"),
            ("特色", ""),
            ("一般", "500"),
            ("不立项", "1200"),
        ]);
        let errors = errors_of(&bad);
        assert_eq!(
            places(&errors),
            [(3, COL_AMOUNT), (4, COL_AMOUNT), (6, COL_AMOUNT)]
        );
        assert!(errors[0].message.contains("重点项目资助上限 5000 元"));
    }

    #[test]
    fn every_kind_of_error_at_once() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)), // row 3: fine
            reviewed(1, "不存在的党支部", T("重点"), N(3000.0)), // 4
            reviewed(2, ROSTER[1], T("优秀"), N(3000.0)), // 5
            reviewed(3, ROSTER[2], E, N(500.0)),          // 6
            reviewed(4, ROSTER[3], T("重点"), N(6000.0)), // 7
            reviewed(5, ROSTER[4], T("不立项"), N(2000.0)), // 8
            reviewed(6, ROSTER[5], T("特色"), E),         // 9
            reviewed(7, ROSTER[0], T("一般"), N(800.0)),  // 10
            reviewed(8, ROSTER[6], T("一般"), T("-500")), // 11
            reviewed(9, ROSTER[7], T("特色"), T("2000-3000元")), // 12
            reviewed(10, ROSTER[8], T("一般"), N(-1.0)),  // 13
        ]);
        let errors = errors_of(&wb);
        assert_eq!(
            places(&errors),
            [
                (4, COL_BRANCH),
                (5, COL_LEVEL),
                (6, COL_LEVEL),
                (7, COL_AMOUNT),
                (8, COL_AMOUNT),
                (9, COL_AMOUNT),
                (10, COL_BRANCH),
                (11, COL_AMOUNT),
                (12, COL_AMOUNT),
                (13, COL_AMOUNT),
            ]
        );
        let msg = |row: usize| {
            errors
                .iter()
                .find(|e| e.row == row)
                .map(|e| e.message.as_str())
                .unwrap()
        };
        assert!(msg(4).contains("「不存在的党支部」不在支部名册中"));
        assert!(msg(5).contains("「优秀」不是评审等级"));
        assert!(msg(5).contains("重点、特色、一般、不立项"));
        assert!(msg(5).contains("不予立项、未立项"));
        assert!(msg(6).starts_with("未填写评审等级"));
        assert!(msg(7).contains("资助金额 6000 元超过重点项目资助上限 5000 元"));
        assert!(msg(8).contains("不应有资助金额") && msg(8).contains("2000 元"));
        assert!(msg(9).contains("没有填写资助金额") && msg(9).contains("不超过 3000 元"));
        assert!(msg(10).contains("在第 3 行已经评审过"));
        assert!(msg(11).contains("负数"));
        assert!(msg(12).contains("区间"));
        assert!(msg(13).contains("负数"));
        assert!(errors.windows(2).all(|w| w[0].row <= w[1].row));
    }

    #[test]
    fn missing_columns_are_reported_on_the_header_row() {
        let mut headers = EXPORT_HEADERS.to_vec();
        headers.push("评审等级");
        let wb = xlsx(
            &headers,
            &[
                {
                    let mut r = export_cells(0, ROSTER[0]);
                    r.push(T("重点"));
                    r
                },
                {
                    let mut r = export_cells(1, ROSTER[1]);
                    r.push(T("优"));
                    r
                },
            ],
            &[],
        );
        let errors = errors_of(&wb);
        // The missing column first; the level column is still checked.
        assert_eq!(places(&errors), [(2, COL_AMOUNT), (4, COL_LEVEL)]);
        assert!(errors[0].message.contains("加一列「资助金额」"));

        let wb = xlsx(&EXPORT_HEADERS, &[export_cells(0, ROSTER[0])], &[]);
        let errors = errors_of(&wb);
        assert_eq!(places(&errors), [(2, COL_LEVEL), (2, COL_AMOUNT)]);
        assert!(
            errors[0]
                .message
                .contains("第 2 行表头末尾加一列「评审等级」")
        );

        let mut headers = EXPORT_HEADERS.to_vec();
        headers.push("资助金额");
        let mut row = export_cells(0, ROSTER[0]);
        row.push(N(9000.0));
        // Without levels no cap can be checked, but the column is still named.
        assert_eq!(
            places(&errors_of(&xlsx(&headers, &[row], &[]))),
            [(2, COL_LEVEL)]
        );
    }

    #[test]
    fn a_sheet_without_a_header_is_one_error_on_row_1() {
        let wb = xlsx(&["姓名", "成绩"], &[vec![T("张三"), N(90.0)]], &[]);
        let errors = errors_of(&wb);
        assert_eq!(places(&errors), [(1, COL_BRANCH)]);
        assert!(errors[0].message.contains("找不到表头"));
        assert_eq!(places(&errors_of(&Workbook::default())), [(1, COL_BRANCH)]);
    }

    #[test]
    fn header_variants_are_recognised() {
        let variants: [(&str, &str); 7] = [
            ("评审等级", "资助金额"),
            ("评 审 等 级", "资助金额(元)"),
            ("评审\u{3000}等级", "资助金额 （元）"),
            ("评审等级（重点/特色/一般/不立项）", "资助金额（单位：元）"),
            ("*评审等级", "资助金额/元"),
            ("等级：", "资助金额【元】"),
            ("ＦＯＯ评审等级", "资助金额"), // not a level header: reported missing
        ];
        for (i, (level, amount)) in variants.into_iter().enumerate() {
            let wb = xlsx(
                &review_headers(level, amount),
                &[
                    reviewed(0, ROSTER[0], T("重点"), N(4000.0)),
                    reviewed(1, ROSTER[1], T("不立项"), E),
                ],
                &[],
            );
            if i == 6 {
                assert_eq!(places(&errors_of(&wb)), [(2, COL_LEVEL)]);
            } else {
                assert_eq!(amounts_of(&wb), [Some(4000.0), None], "{level} / {amount}");
            }
        }
    }

    #[test]
    fn columns_may_move_and_the_title_may_grow() {
        // Review columns first, branch column renamed, and an extra note row above the header.
        let headers = [
            "资助金额（元）",
            "评审等级",
            "序号",
            "学院",
            "党支部名称",
            "备注",
        ];
        let wb = xlsx(
            &headers,
            &[
                vec![N(3000.0), T("特色"), N(1.0), T("理学院"), T(ROSTER[4]), E],
                vec![
                    E,
                    T("未立项"),
                    N(2.0),
                    T("理学院"),
                    T(ROSTER[5]),
                    T("重复申报"),
                ],
            ],
            &[],
        );
        let mut wb = wb;
        let note = vec![Value::Text("评审专家组 2025年10月".into())];
        wb.sheets[0].rows.insert(1, note);
        assert_eq!(
            run(&wb),
            Ok(vec![
                decision(4, ROSTER[4], "特色", Some(3000.0)),
                decision(5, ROSTER[5], "不立项", None),
            ])
        );
    }

    #[test]
    fn level_variants_are_accepted() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点项目"), N(5000.0)),
            reviewed(1, ROSTER[1], T(" 特色项目 "), N(3000.0)),
            reviewed(2, ROSTER[2], T("一般\u{3000}项目"), N(1000.0)),
            reviewed(3, ROSTER[3], T("不予立项"), E),
            reviewed(4, ROSTER[4], T("未立项"), E),
            reviewed(5, ROSTER[5], T("不立项"), N(0.0)),
        ]);
        let levels: Vec<String> = run(&wb).unwrap().into_iter().map(|d| d.level).collect();
        assert_eq!(
            levels,
            ["重点", "特色", "一般", "不立项", "不立项", "不立项"]
        );
    }

    #[test]
    fn amounts_in_full_width_and_written_forms() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), T("３０００")),
            reviewed(1, ROSTER[1], T("重点"), T("３，０００元")),
            reviewed(2, ROSTER[2], T("重点"), T("3,000")),
            reviewed(3, ROSTER[3], T("重点"), T("3000元")),
            reviewed(4, ROSTER[4], T("特色"), T("￥2,800.50")),
            reviewed(5, ROSTER[5], T("特色"), T("叁仟元整")),
            reviewed(6, ROSTER[6], T("重点"), T("0.3万元")),
            reviewed(7, ROSTER[7], T("一般"), T(" ９９９．５ 元 ")),
        ]);
        assert_eq!(
            amounts_of(&wb),
            [
                3000.0, 3000.0, 3000.0, 3000.0, 2800.5, 3000.0, 3000.0, 999.5
            ]
            .map(Some)
        );
    }

    #[test]
    fn amounts_under_a_wan_yuan_header_are_converted() {
        let wb = xlsx(
            &review_headers("评审等级", "资助金额（万元）"),
            &[
                reviewed(0, ROSTER[0], T("重点"), N(0.5)),
                reviewed(1, ROSTER[1], T("特色"), T("3000元")),
                reviewed(2, ROSTER[2], T("一般"), T("０.１")),
            ],
            &[],
        );
        assert_eq!(amounts_of(&wb), [Some(5000.0), Some(3000.0), Some(1000.0)]);

        let wb = xlsx(
            &review_headers("评审等级", "资助金额（万元）"),
            &[reviewed(0, ROSTER[0], T("重点"), N(0.6))],
            &[],
        );
        let errors = errors_of(&wb);
        assert!(errors[0].message.contains("6000 元（表头单位为万元"));
    }

    #[test]
    fn not_funded_takes_no_money_and_funded_needs_some() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("不立项"), N(0.0)),
            reviewed(1, ROSTER[1], T("不立项"), T("0元")),
            reviewed(2, ROSTER[2], T("不立项"), T("无")),
            reviewed(3, ROSTER[3], T("不立项"), T("/")),
            reviewed(4, ROSTER[4], T("不立项"), T("——")),
        ]);
        assert_eq!(amounts_of(&wb), [None; 5]);

        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), T("无")),
            reviewed(1, ROSTER[1], T("特色"), N(0.0)),
            reviewed(2, ROSTER[2], T("不立项"), T("0.01")),
        ]);
        let errors = errors_of(&wb);
        assert_eq!(
            places(&errors),
            [(3, COL_AMOUNT), (4, COL_AMOUNT), (5, COL_AMOUNT)]
        );
        assert!(errors[0].message.contains("没有填写资助金额"));
        assert!(errors[1].message.contains("资助金额却是 0"));
        assert!(errors[2].message.contains("0.01 元"));
    }

    #[test]
    fn caps_are_inclusive_to_the_cent() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            reviewed(1, ROSTER[1], T("特色"), T("3000.00")),
            reviewed(2, ROSTER[2], T("一般"), N(1000.004)),
        ]);
        assert_eq!(amounts_of(&wb), [Some(5000.0), Some(3000.0), Some(1000.0)]);

        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.01)),
            reviewed(1, ROSTER[1], T("特色"), N(3001.0)),
            reviewed(2, ROSTER[2], T("一般"), T("1,500元")),
        ]);
        let errors = errors_of(&wb);
        assert!(
            errors[0]
                .message
                .contains("5000.01 元超过重点项目资助上限 5000 元")
        );
        assert!(errors[1].message.contains("特色项目资助上限 3000 元"));
        assert!(
            errors[2]
                .message
                .contains("1500 元超过一般项目资助上限 1000 元")
        );
    }

    #[test]
    fn a_branch_graded_twice_names_the_first_row() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            reviewed(1, ROSTER[1], T("一般"), N(500.0)),
            reviewed(2, "土木工程学院 本科生第一党支部", T("特色"), N(3000.0)),
            reviewed(3, "土木工程学院本科生第一党支部\u{200B}", T("不立项"), E),
        ]);
        let errors = errors_of(&wb);
        assert_eq!(places(&errors), [(5, COL_BRANCH), (6, COL_BRANCH)]);
        for e in &errors {
            assert!(
                e.message
                    .contains("「土木工程学院本科生第一党支部」在第 3 行已经评审过，"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn empty_rows_total_row_and_rows_below_it() {
        let wb = xlsx(
            &review_headers("评审等级", "资助金额"),
            &[
                reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
                vec![],
                // Only export columns, nothing to import: skipped, not an error.
                vec![E, T("理学院"), E, E, E, E, E, E, E, E],
                reviewed(1, ROSTER[1], T("一般"), N(1000.0)),
            ],
            &[vec![], vec![T("评审专家签字：张三、李四")]],
        );
        assert_eq!(
            run(&wb),
            Ok(vec![
                decision(3, ROSTER[0], "重点", Some(5000.0)),
                decision(6, ROSTER[1], "一般", Some(1000.0)),
            ])
        );

        // Rows appended below the total: notes (even in the branch column) are ignored, graded
        // rows are decisions, checked like any other.
        let below = |branch: &'static str, level: C, amount: C| {
            let mut r = vec![E; 15];
            (r[2], r[13], r[14]) = (T(branch), level, amount);
            r
        };
        let wb = xlsx(
            &review_headers("评审等级", "资助金额"),
            &[reviewed(0, ROSTER[0], T("重点"), N(5000.0))],
            &[
                below("注：以上为专家组评审意见", E, E),
                below(ROSTER[1], T("一般"), N(1000.0)),
            ],
        );
        assert_eq!(
            run(&wb),
            Ok(vec![
                decision(3, ROSTER[0], "重点", Some(5000.0)),
                decision(6, ROSTER[1], "一般", Some(1000.0)),
            ])
        );
        let wb = xlsx(
            &review_headers("评审等级", "资助金额"),
            &[reviewed(0, ROSTER[0], T("重点"), N(5000.0))],
            &[
                below("不存在的党支部", T("一般"), N(800.0)),
                below(ROSTER[0], T("特色"), N(3000.0)),
            ],
        );
        let errors = errors_of(&wb);
        assert_eq!(places(&errors), [(5, COL_BRANCH), (6, COL_BRANCH)]);
        assert!(errors[0].message.contains("不存在的党支部"));
        assert!(
            errors[1]
                .message
                .contains("第 3 行已经评审过，同一支部不能评审两次")
        );
    }

    #[test]
    fn a_grade_without_a_branch_is_an_error() {
        let mut row = reviewed(0, ROSTER[0], T("重点"), N(5000.0));
        row[2] = E;
        let errors = errors_of(&review(&[row]));
        assert_eq!(places(&errors), [(3, COL_BRANCH)]);
        assert!(errors[0].message.starts_with("未填写支部名称"));
    }

    #[test]
    fn a_header_without_rows_is_not_an_empty_import() {
        let errors = errors_of(&review(&[]));
        assert_eq!(places(&errors), [(3, COL_LEVEL)]);
        assert!(errors[0].message.contains("没有任何支部的评审结果"));
    }

    #[test]
    fn repeated_header_and_second_sheet() {
        let mut wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            review_headers("评审等级", "资助金额（元）")
                .into_iter()
                .map(T)
                .collect(),
            reviewed(1, ROSTER[1], T("特色"), N(2000.0)),
        ]);
        // Reviewers added an instructions sheet in front.
        wb.sheets.insert(
            0,
            Sheet {
                name: "说明".into(),
                rows: vec![vec![Value::Text("评审等级说明：重点、特色、一般".into())]],
            },
        );
        assert_eq!(
            run(&wb),
            Ok(vec![
                decision(3, ROSTER[0], "重点", Some(5000.0)),
                decision(5, ROSTER[1], "特色", Some(2000.0)),
            ])
        );
    }

    #[test]
    fn configured_levels_and_their_variants() {
        let levels = [
            Level {
                name: "A类项目".into(),
                cap_yuan: None,
                funded: true,
            },
            Level {
                name: "B类".into(),
                cap_yuan: Some(200.0),
                funded: true,
            },
            Level {
                name: "不通过".into(),
                cap_yuan: None,
                funded: false,
            },
        ];
        let wb = review(&[
            reviewed(0, ROSTER[0], T("A类"), N(90_000.0)),
            reviewed(1, ROSTER[1], T("B类项目"), N(200.0)),
            reviewed(2, ROSTER[2], T("不予立项"), E),
            reviewed(3, ROSTER[3], T("不通过"), E),
        ]);
        let got: Vec<(String, Option<f64>)> = run_with(&wb, &levels)
            .unwrap()
            .into_iter()
            .map(|d| (d.level, d.amount_yuan))
            .collect();
        assert_eq!(
            got,
            [
                ("A类项目".to_string(), Some(90_000.0)),
                ("B类".to_string(), Some(200.0)),
                ("不通过".to_string(), None),
                ("不通过".to_string(), None),
            ]
        );
        let wb = review(&[reviewed(0, ROSTER[0], T("重点"), N(1.0))]);
        let errors = run_with(&wb, &levels).unwrap_err();
        assert!(errors[0].message.contains("A类项目、B类、不通过 之一"));
        assert!(errors[0].message.contains("B类项目"));
    }

    /// Cells no reviewer should write, in a hand-built workbook (xlsx writers cannot write an
    /// error cell): each is an error with a message, never a panic.
    #[test]
    fn odd_cells_are_errors_not_panics() {
        let header: Vec<Value> = ["支部名称", "评审等级", "资助金额"]
            .into_iter()
            .map(|h| Value::Text(h.into()))
            .collect();
        let row = |b: &str, l: Value, a: Value| vec![Value::Text(b.into()), l, a];
        let wb = Workbook {
            sheets: vec![Sheet {
                name: "Sheet1".into(),
                rows: vec![
                    header,
                    row(ROSTER[0], Value::Float(1.0), Value::Int(100)),
                    row(ROSTER[1], Value::Text("重点".into()), Value::Bool(true)),
                    row(
                        ROSTER[2],
                        Value::Text("重点".into()),
                        Value::Error("#VALUE!".into()),
                    ),
                    row(
                        ROSTER[3],
                        Value::Text("重点".into()),
                        Value::Float(f64::NAN),
                    ),
                    row(ROSTER[4], Value::Text("重点".into()), Value::Float(1e12)),
                    row(
                        ROSTER[5],
                        Value::Text("重点".into()),
                        Value::Date("2025-10-01".into()),
                    ),
                    row(
                        ROSTER[6],
                        Value::Text("重点".into()),
                        Value::Text("待定".into()),
                    ),
                    // Only the branch: not graded, which is no error in the cells.
                    vec![Value::Text(ROSTER[7].into())],
                    vec![],
                ],
            }],
        };
        let errors = errors_of(&wb);
        assert_eq!(
            places(&errors),
            [
                (2, COL_LEVEL),
                (3, COL_AMOUNT),
                (4, COL_AMOUNT),
                (5, COL_AMOUNT),
                (6, COL_AMOUNT),
                (7, COL_AMOUNT),
                (8, COL_AMOUNT),
            ]
        );
        assert!(errors[0].message.contains("「1」不是评审等级"));
        assert!(errors[2].message.contains("#VALUE!"));
        assert!(errors[6].message.contains("待定"));
    }

    fn reviewed_of(wb: &Workbook) -> Reviewed {
        match validate(&ImportInput {
            workbook: wb,
            levels: &default_levels(),
            is_known_branch: &roster,
        }) {
            Ok(r) => r,
            Err(e) => panic!("{}", format_errors(&e)),
        }
    }

    fn blank(row: usize, branch: &str) -> BlankRow {
        BlankRow {
            row,
            branch: branch.to_string(),
        }
    }

    #[test]
    fn blank_rows_grade_nothing_and_unknown_branches_left_blank_are_skipped() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            reviewed(1, ROSTER[1], E, E),
            // Exported as 支部未识别 and left as it is.
            reviewed(2, "某学院不知名党支部", E, E),
            reviewed(3, "土木工程学院 本科生第一党支部", E, T(" ")),
        ]);
        let r = reviewed_of(&wb);
        assert_eq!(r.decisions, [decision(3, ROSTER[0], "重点", Some(5000.0))]);
        // The blank row carries the roster's spelling, also when the cell differs.
        assert_eq!(r.blank, [blank(4, ROSTER[1]), blank(6, ROSTER[0])]);
        assert_eq!(r.unrecognised, [blank(5, "某学院不知名党支部")]);

        // The same unknown branch graded: an error that says what staff must do first.
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            reviewed(2, "某学院不知名党支部", T("一般"), E),
        ]);
        let errors = errors_of(&wb);
        assert_eq!(places(&errors), [(4, COL_BRANCH), (4, COL_AMOUNT)]);
        assert!(
            errors[0].message.contains("不在支部名册中")
                && errors[0].message.contains("shenbao assign")
                && errors[0].message.contains("清空这一行的评审等级"),
            "{}",
            errors[0].message
        );

        // Blank rows only: there is nothing to import.
        let errors = errors_of(&review(&[reviewed(0, ROSTER[0], E, E)]));
        assert!(errors[0].message.contains("没有任何支部的评审结果"));
    }

    #[test]
    fn ungraded_applicants_are_named_with_their_row() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            reviewed(1, ROSTER[1], E, E),
            reviewed(2, ROSTER[2], E, E),
        ]);
        let r = reviewed_of(&wb);
        let applicants: Vec<String> = [ROSTER[3], ROSTER[2], ROSTER[1], ROSTER[0], ROSTER[3]]
            .map(String::from)
            .to_vec();
        // ROSTER[2] keeps a decision from an earlier import.
        let earlier = |b: &str| b == ROSTER[2];
        let got = ungraded(&applicants, &earlier, &r);
        assert_eq!(
            got,
            [
                Ungraded {
                    branch: ROSTER[3].into(),
                    row: None
                },
                Ungraded {
                    branch: ROSTER[1].into(),
                    row: Some(4)
                },
            ]
        );
        assert_eq!(
            got[0].to_string(),
            format!("{}（表中没有这一支部的行）", ROSTER[3])
        );
        assert_eq!(
            got[1].to_string(),
            format!("{}（第 4 行未填写评审等级）", ROSTER[1])
        );
        // A branch whose graded row has an error is named by that error, not as missing.
        let wb = review(&[
            reviewed(0, ROSTER[0], T("优秀"), N(5000.0)),
            reviewed(1, ROSTER[1], E, E),
        ]);
        let (with_error, errors) = check(&ImportInput {
            workbook: &wb,
            levels: &default_levels(),
            is_known_branch: &roster,
        });
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(with_error.erred, [ROSTER[0].to_string()]);
        let none = |_: &str| false;
        assert_eq!(
            ungraded(
                &[ROSTER[0].to_string(), ROSTER[1].to_string()],
                &none,
                &with_error
            ),
            [Ungraded {
                branch: ROSTER[1].into(),
                row: Some(4)
            }]
        );
        // Everyone graded (here or before): nothing to report.
        let all = |_: &str| true;
        assert!(ungraded(&applicants, &all, &r).is_empty());
        let none = |_: &str| false;
        assert_eq!(ungraded(&[ROSTER[0].to_string()], &none, &r), []);
        assert_eq!(ungraded(&[], &none, &r), []);
    }

    #[test]
    fn format_errors_lists_every_error_by_row_and_column() {
        let wb = review(&[
            reviewed(0, ROSTER[0], T("重点"), N(5000.0)),
            reviewed(1, ROSTER[1], E, N(500.0)),
            reviewed(2, ROSTER[2], T("重点"), N(6000.0)),
        ]);
        let report = format_errors(&errors_of(&wb));
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("第 4 行「评审等级」：未填写评审等级"));
        assert!(
            lines[1]
                .starts_with("第 5 行「资助金额」：资助金额 6000 元超过重点项目资助上限 5000 元")
        );
        assert_eq!(format_errors(&[]), "");
    }

    #[test]
    fn results_serialize_for_history_and_json() {
        let d = decision(3, ROSTER[0], "重点", Some(5000.0));
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["branch"], ROSTER[0]);
        assert_eq!(v["amount_yuan"], 5000.0);
        let levels = serde_json::to_value(default_levels()).unwrap();
        assert_eq!(levels[0]["cap_yuan"], 5000.0);
        assert_eq!(levels[3]["cap_yuan"], serde_json::Value::Null);
        assert_eq!(levels[3]["funded"], false);
        let e = ImportError {
            row: 5,
            column: COL_LEVEL.into(),
            message: "x".into(),
        };
        assert_eq!(serde_json::to_value(&e).unwrap()["column"], "评审等级");
    }

    #[test]
    fn money_text() {
        assert_eq!(yuan_text(5000.0), "5000");
        assert_eq!(yuan_text(2800.5), "2800.5");
        assert_eq!(yuan_text(2800.25), "2800.25");
        assert_eq!(yuan_text(0.01), "0.01");
    }

    fn current(branch: &str, level: &str, amount: Option<f64>, funded: bool) -> CurrentReview {
        CurrentReview {
            branch: branch.into(),
            level: level.into(),
            amount_yuan: amount,
            funded,
        }
    }

    #[test]
    fn results_read_as_staff_write_them() {
        assert_eq!(result_text("重点", Some(5000.0), true), "重点，5000 元");
        assert_eq!(result_text("一般", Some(800.5), true), "一般，800.5 元");
        assert_eq!(result_text("不立项", None, false), "不立项");
        assert_eq!(result_text("不立项", Some(0.0), false), "不立项");
    }

    #[test]
    fn a_decision_is_new_the_same_or_a_change() {
        let now = vec![
            current(ROSTER[0], "重点", Some(5000.0), true),
            current(ROSTER[1], "不立项", None, false),
        ];
        let d = |b: &str, l: &str, a: Option<f64>| Decision {
            row: 3,
            branch: b.into(),
            level: l.into(),
            amount_yuan: a,
            funded: a.is_some(),
        };
        assert_eq!(
            change(&d(ROSTER[2], "一般", Some(800.0)), &now),
            Change::New
        );
        assert_eq!(
            change(&d(ROSTER[0], "重点", Some(5000.0)), &now),
            Change::Same
        );
        assert_eq!(change(&d(ROSTER[1], "不立项", None), &now), Change::Same);
        assert_eq!(
            change(&d(ROSTER[0], "重点", Some(4000.0)), &now),
            Change::Changed {
                from: "重点，5000 元".into()
            }
        );
        assert_eq!(
            change(&d(ROSTER[1], "特色", Some(3000.0)), &now),
            Change::Changed {
                from: "不立项".into()
            }
        );
        let v = serde_json::to_value(Change::Changed { from: "x".into() }).unwrap();
        assert_eq!(v["kind"], "changed");
        assert_eq!(v["from"], "x");
    }

    #[test]
    fn levels_are_counted_against_their_caps() {
        let now = vec![
            current(ROSTER[0], "重点", Some(5000.0), true),
            current(ROSTER[1], "重点", Some(4500.5), true),
            current(ROSTER[2], "不立项", None, false),
            current(ROSTER[3], "旧等级", Some(100.0), true),
        ];
        let counts = level_counts(&default_levels(), &now);
        let line = |i: usize| {
            let c = &counts[i];
            (
                c.name.as_str(),
                c.cap.as_str(),
                c.branches,
                c.total.as_str(),
            )
        };
        assert_eq!(counts.len(), 5);
        assert_eq!(line(0), ("重点", "≤ 5000 元", 2, "9500.5 元"));
        assert_eq!(line(1), ("特色", "≤ 3000 元", 0, "0 元"));
        assert_eq!(line(2), ("一般", "≤ 1000 元", 0, "0 元"));
        assert_eq!(line(3), ("不立项", "—", 1, ""));
        // A level no longer configured is still counted.
        assert_eq!(line(4), ("旧等级", "—", 1, "100 元"));
        assert_eq!(counts.iter().map(|c| c.branches).sum::<usize>(), now.len());
    }
}
