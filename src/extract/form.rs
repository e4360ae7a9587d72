//! The fields of a 项目申请表, found in a [`Document`] whatever the layout.
//!
//! The office's template is one table of label cells and value cells, but every branch edits
//! it: cells get merged and split, rows added, labels retyped with spaces (`项 目 名 称`) or
//! synonyms (`负责人`, `指导教师`), values typed into the label cell (`项目名称：XXX`), and the
//! section ticked in a check box list. So the extractor does not rely on positions. It
//!
//! 1. recognises label cells by their normalised text against a table of synonyms, each with a
//!    weight (`项目名称` beats a bare `名称`, `合计` beats `经费预算`);
//! 2. finds each label's value: in the same cell after a colon, else to the right in the same
//!    row (skipping empty cells but never crossing another label), else below in the same grid
//!    column (labels in a header row, values in the next row);
//! 3. picks one candidate per field: highest weight, then document order; the leader's 职务
//!    and phone prefer the leader's row over the advisor's;
//! 4. interprets a few values: the section (check box list or text → one configured section),
//!    the phone (digits), the budget (the 合计 of the budget table, through
//!    [`parse_amount`]).
//!
//! Template prompts (`（请填写）`, `XXX`, `单击此处输入文字`) count as empty, and a value cell
//! that is itself a label is never taken as a value.

use super::amount::parse_amount;
use super::field::Field;
use super::model::{Amount, Block, Cell, Document, Fields};
use crate::textnorm;
use std::cell::OnceCell;
use std::sync::LazyLock;

/// What the extractor needs from the campaign configuration.
pub struct FormConfig<'a> {
    /// The configured 板块 names, e.g. `学思践悟·固本强基`.
    pub sections: &'a [String],
}

/// What a form label names. The form's own vocabulary, because a form tells a total (合计)
/// from a budget line and weighs its labels; each key is one [`Field`] ([`Key::field`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Project,
    Section,
    Leader,
    Role,
    Phone,
    Email,
    Advisor,
    /// A total: `合计`, `申请经费` … preferred over [`Key::Budget`].
    Total,
    Budget,
    Branch,
    College,
}

impl Key {
    fn field(self) -> Field {
        match self {
            Key::Project => Field::ProjectName,
            Key::Section => Field::Section,
            Key::Leader => Field::Leader,
            Key::Role => Field::LeaderRole,
            Key::Phone => Field::Phone,
            Key::Email => Field::Email,
            Key::Advisor => Field::Advisor,
            Key::Total | Key::Budget => Field::Budget,
            Key::Branch => Field::Branch,
            Key::College => Field::College,
        }
    }
}

/// Label synonyms in normalised form (see [`label_form`]) with their weight: 3 = specific,
/// 2 = usual, 1 = generic words used only when nothing better is present.
const LABELS: &[(&str, Key, u8)] = &[
    ("项目名称", Key::Project, 3),
    ("项目题目", Key::Project, 3),
    ("项目标题", Key::Project, 3),
    ("申报项目名称", Key::Project, 3),
    ("申报项目", Key::Project, 2),
    ("项目名", Key::Project, 2),
    ("名称", Key::Project, 1),
    ("申报板块", Key::Section, 3),
    ("所属板块", Key::Section, 3),
    ("项目板块", Key::Section, 3),
    ("申报类别", Key::Section, 3),
    ("板块", Key::Section, 2),
    ("申报版块", Key::Section, 3),
    ("所属版块", Key::Section, 3),
    ("版块", Key::Section, 2),
    ("项目类别", Key::Section, 2),
    ("类别", Key::Section, 1),
    ("项目负责人", Key::Leader, 3),
    ("负责人", Key::Leader, 3),
    ("项目主持人", Key::Leader, 3),
    ("负责人姓名", Key::Leader, 3),
    ("项目负责人姓名", Key::Leader, 3),
    ("主持人", Key::Leader, 2),
    ("姓名", Key::Leader, 1),
    ("职务", Key::Role, 3),
    ("党内职务", Key::Role, 3),
    ("担任职务", Key::Role, 3),
    ("负责人职务", Key::Role, 3),
    ("支部职务", Key::Role, 3),
    ("联系电话", Key::Phone, 3),
    ("联系方式", Key::Phone, 3),
    ("手机", Key::Phone, 3),
    ("手机号", Key::Phone, 3),
    ("手机号码", Key::Phone, 3),
    ("联系手机", Key::Phone, 3),
    ("负责人电话", Key::Phone, 3),
    ("电话", Key::Phone, 2),
    ("电子邮箱", Key::Email, 3),
    ("邮箱", Key::Email, 3),
    ("e-mail", Key::Email, 3),
    ("email", Key::Email, 3),
    ("电子邮件", Key::Email, 3),
    ("指导老师", Key::Advisor, 3),
    ("指导教师", Key::Advisor, 3),
    ("指导老师姓名", Key::Advisor, 3),
    ("指导教师姓名", Key::Advisor, 3),
    ("合计", Key::Total, 3),
    ("经费合计", Key::Total, 3),
    ("预算合计", Key::Total, 3),
    ("申请经费", Key::Total, 3),
    ("申请金额", Key::Total, 3),
    ("申请经费总额", Key::Total, 3),
    ("经费总额", Key::Total, 3),
    ("预算总额", Key::Total, 3),
    ("总预算", Key::Total, 3),
    ("总金额", Key::Total, 3),
    ("总计", Key::Total, 3),
    ("经费预算", Key::Budget, 2),
    ("预算金额", Key::Budget, 2),
    ("预算经费", Key::Budget, 2),
    ("项目经费", Key::Budget, 2),
    ("经费", Key::Budget, 1),
    ("预算", Key::Budget, 1),
    ("支部名称", Key::Branch, 3),
    ("党支部名称", Key::Branch, 3),
    ("申报支部", Key::Branch, 3),
    ("所在支部", Key::Branch, 3),
    ("申报单位", Key::Branch, 2),
    ("支部", Key::Branch, 1),
    ("所在学院", Key::College, 3),
    ("所属学院", Key::College, 3),
    ("学院", Key::College, 2),
    ("院系", Key::College, 2),
    ("所在院系", Key::College, 2),
    ("学院名称", Key::College, 2),
];

/// Endings that make a short cell a label even when it is not one of ours
/// (`指导老师职务/职称`, `填表日期`): such a cell ends a search for a value.
const LABEL_ENDINGS: &[&str] = &[
    "名称",
    "姓名",
    "职务",
    "职称",
    "电话",
    "手机",
    "邮箱",
    "人数",
    "日期",
    "时间",
    "意见",
    "签字",
    "签名",
    "盖章",
    "简介",
    "类别",
    "负责人",
    "编号",
    "备注",
    "序号",
    "说明",
    "金额",
];

/// Column headers of a budget item table, never a budget.
const BUDGET_HEADERS: &[&str] = &[
    "支出项目",
    "开支项目",
    "费用项目",
    "预算科目",
    "科目",
    "项目",
    "明细",
    "用途",
    "金额",
];

/// How far a value is looked for: cells to the right of a label, rows below it. Real forms
/// have at most eight grid columns; the bounds keep a hostile table linear.
const MAX_RIGHT: usize = 6;
const MAX_BELOW: usize = 4;

const TICKED: &[char] = &['☑', '■', '√', '✔', '✓', '☒', '▣', '◼', '✅', '⊠', '●'];
const UNTICKED: &[char] = &['□', '☐', '○', '◻', '◯', '▢', '❑'];

/// A value found for a label, with where the label was (to relate 职务 to 负责人).
#[derive(Debug)]
struct Cand {
    key: Key,
    weight: u8,
    value: String,
    /// (block, row) of the label.
    at: (usize, usize),
    /// Found below the label (header-row layout) rather than beside it or inline.
    below: bool,
    order: usize,
}

/// Extracts the application's fields from a form document.
pub fn form_fields(doc: &Document, cfg: &FormConfig) -> Fields {
    let cands = candidates(doc);
    let best = |field: Field, prefer: Option<(usize, usize)>, avoid: Option<(usize, usize)>| {
        cands
            .iter()
            .filter(|c| c.key.field() == field && !is_placeholder(&c.value))
            .max_by_key(|c| {
                (
                    prefer == Some(c.at),
                    avoid != Some(c.at),
                    c.weight,
                    std::cmp::Reverse(c.order),
                )
            })
    };
    let value = |c: Option<&Cand>| c.map(|c| clean(&c.value));
    // Chinese names carry no spaces: `向　帆` (padded to align) is 向帆.
    let name = |c: Option<&Cand>| value(c).map(|v| squeeze_cjk(&v));
    let leader = best(Field::Leader, None, None);
    let advisor = best(Field::Advisor, None, None);
    let (lead_at, adv_at) = (leader.map(|c| c.at), advisor.map(|c| c.at));

    let mut f = Fields {
        college: value(best(Field::College, None, None)),
        branch: value(best(Field::Branch, None, None)),
        project_name: value(best(Field::ProjectName, None, None)),
        leader: name(leader),
        leader_role: name(best(Field::LeaderRole, lead_at, adv_at)),
        email: value(best(Field::Email, lead_at, adv_at)),
        advisor: name(advisor).map(|a| split_paren(&a).0),
        ..Fields::default()
    };
    // `张三（支部书记）` in the leader cell: the name, and the role if none was given.
    if let Some((name, role)) = f.leader.as_deref().map(split_paren) {
        if f.leader_role.is_none() {
            f.leader_role = role;
        }
        f.leader = Some(name);
    }
    if let Some(written) = value(best(Field::Phone, lead_at, adv_at)) {
        f.phone = normalize_phone(&written).or_else(|| {
            let digits: String = written.chars().filter(char::is_ascii_digit).collect();
            (7..=15).contains(&digits.len()).then_some(digits)
        });
    }
    let section_text = best(Field::Section, None, None)
        .map(|c| clean(&c.value))
        .or_else(|| unlabelled_section_list(doc, cfg.sections));
    if let Some(written) = section_text {
        f.section = section_of_cell(&written, cfg.sections);
        f.section_as_written = Some(written);
    }
    (f.budget_as_written, f.budget) = budget(&cands);
    f
}

/// A check box list of sections written without a 申报板块 label (a paragraph or a cell
/// that names at least two configured sections and carries check marks).
fn unlabelled_section_list(doc: &Document, sections: &[String]) -> Option<String> {
    let texts = doc.blocks.iter().flat_map(|b| match b {
        Block::Paragraph(p) => vec![p.as_str()],
        Block::Table(t) => t.rows.iter().flatten().map(|c| c.text.as_str()).collect(),
    });
    let keys: Vec<String> = sections.iter().map(|s| textnorm::normalize(s)).collect();
    texts
        .filter(|t| {
            t.chars()
                .any(|c| TICKED.contains(&c) || UNTICKED.contains(&c))
        })
        .find(|t| {
            let n = textnorm::normalize(t);
            keys.iter().filter(|k| n.contains(k.as_str())).count() >= 2
        })
        .map(clean)
}

/// The budget: the first usable total (合计, 申请经费 …), else the first usable 经费预算
/// value. A value is usable when it is an amount or recognisably not one (a range, 待定);
/// headers of the item table (`支出项目`) are skipped. Values found below a label come
/// last: under a `总计` column header sits the first item's total, not the budget's.
fn budget(cands: &[Cand]) -> (Option<String>, Option<Amount>) {
    let mut fallback = None;
    for (key, below) in [
        (Key::Total, false),
        (Key::Budget, false),
        (Key::Total, true),
        (Key::Budget, true),
    ] {
        for c in cands
            .iter()
            .filter(|c| c.key == key && c.below == below && !is_placeholder(&c.value))
        {
            let written = clean(&c.value);
            if BUDGET_HEADERS.contains(&label_form(&written).as_str()) {
                continue;
            }
            match parse_amount(&written) {
                Some(Amount::Unparsed { reason }) if reason == "无法识别" => {
                    fallback.get_or_insert((written, Amount::Unparsed { reason }));
                }
                Some(a) => return (Some(written), Some(a)),
                None => {}
            }
        }
    }
    match fallback {
        Some((w, a)) => (Some(w), Some(a)),
        None => (None, None),
    }
}

/// Every (label, value) pair the document offers, in document order.
fn candidates(doc: &Document) -> Vec<Cand> {
    let mut out = Vec::new();
    let mut order = 0;
    let mut push = |key: Key, weight: u8, value: String, at: (usize, usize), below: bool| {
        order += 1;
        out.push(Cand {
            key,
            weight,
            value,
            at,
            below,
            order,
        });
    };
    for (b, block) in doc.blocks.iter().enumerate() {
        let rows: Vec<Vec<(u32, &Cell, Look)>> = match block {
            Block::Paragraph(p) => {
                for (key, w, v) in inline_pairs(p) {
                    push(key, w, v, (b, 0), false);
                }
                continue;
            }
            Block::Table(t) => t
                .rows
                .iter()
                .map(|row| {
                    let mut col = 0u32;
                    row.iter()
                        .map(|c| {
                            let start = col;
                            col = col.saturating_add(c.col_span.max(1));
                            (start, c, Look::default())
                        })
                        .collect()
                })
                .collect(),
        };
        for (r, row) in rows.iter().enumerate() {
            for (i, (col, cell, look)) in row.iter().enumerate() {
                if cell.v_merged {
                    continue;
                }
                if let Some((key, w)) = look.key(&cell.text) {
                    let right = row
                        .get(i + 1..)
                        .unwrap_or_default()
                        .iter()
                        .take(MAX_RIGHT)
                        .map(|(_, c, l)| (*c, l));
                    // Below only from a header row: nothing to the right, or another label.
                    let header = row
                        .get(i + 1)
                        .is_none_or(|(_, c, l)| l.stops_search(&c.text));
                    let below = rows
                        .get(r + 1..)
                        .unwrap_or_default()
                        .iter()
                        .take(if header { MAX_BELOW } else { 0 })
                        .filter_map(|row| {
                            row.iter()
                                .find(|(c, ..)| c == col)
                                .map(|(_, cell, l)| (*cell, l))
                        });
                    if let Some(v) = first_value(right) {
                        push(key, w, v, (b, r), false);
                    } else if let Some(v) = first_value(below) {
                        push(key, w, v, (b, r), true);
                    }
                } else {
                    for (key, w, v) in inline_pairs(&cell.text) {
                        push(key, w, v, (b, r), false);
                    }
                }
            }
        }
    }
    out
}

/// The first value among `cells` (to the right of a label, or below it): continuation cells
/// of vertical merges and empty cells are passed over, a label ends the search.
fn first_value<'a>(cells: impl Iterator<Item = (&'a Cell, &'a Look)>) -> Option<String> {
    for (c, look) in cells {
        if c.v_merged || look.placeholder(&c.text) {
            continue;
        }
        if look.stops_search(&c.text) {
            return None;
        }
        return Some(c.text.clone());
    }
    None
}

/// What the search for values asks of one table cell, each answer worked out once. The same
/// cell is asked as a label, as a value beside one label and below another; normalising its
/// text for every question was the larger part of reading a form (see the README's profile).
#[derive(Default)]
struct Look {
    key: OnceCell<Option<(Key, u8)>>,
    stops: OnceCell<bool>,
    placeholder: OnceCell<bool>,
}

impl Look {
    /// [`label_key`] of the cell's text.
    fn key(&self, text: &str) -> Option<(Key, u8)> {
        *self.key.get_or_init(|| label_key(text))
    }

    /// A label, ours ([`label_key`]) or another ([`is_labelish`]): it ends a search for a value.
    fn stops_search(&self, text: &str) -> bool {
        *self
            .stops
            .get_or_init(|| self.key(text).is_some() || is_labelish(text))
    }

    /// [`is_placeholder`] of the cell's text.
    fn placeholder(&self, text: &str) -> bool {
        *self.placeholder.get_or_init(|| is_placeholder(text))
    }
}

/// The label as compared: normalised, without a trailing colon, a trailing hint in
/// parentheses (`项目简介（300字以内）`, `经费预算（元）`), a leading `*` or numbering.
fn label_form(text: &str) -> String {
    let mut s = textnorm::normalize(text);
    loop {
        let before = s.len();
        s = s.trim_end_matches([':', '：']).to_string();
        if s.ends_with(')')
            && let Some(open) = s.rfind('(')
            && open > 0
        {
            s.truncate(open);
        }
        if s.len() == before {
            break;
        }
    }
    let s = s.trim_start_matches(['*', '★']);
    // Numbering: `1.`, `2、`, `三、`, `(4)`.
    let unnumbered = s.strip_prefix('(').unwrap_or(s);
    let rest = unnumbered
        .trim_start_matches(|c: char| c.is_ascii_digit() || "一二三四五六七八九十".contains(c));
    match rest.strip_prefix(['.', '、', ')']) {
        Some(r) if rest.len() < unnumbered.len() && !r.is_empty() => r.to_string(),
        _ => s.to_string(),
    }
}

/// The label a whole cell is: its text, or its first line followed only by hints in
/// parentheses (`经费预算\n（元）`).
fn label_key(text: &str) -> Option<(Key, u8)> {
    let lookup = |t: &str| {
        let form = label_form(t);
        LABELS
            .iter()
            .find(|(s, _, _)| *s == form)
            .map(|(_, k, w)| (*k, *w))
    };
    lookup(text).or_else(|| {
        let (first, rest) = split_first_line(text)?;
        let hints_only = rest.lines().all(|l| {
            let n = textnorm::normalize(l);
            n.is_empty() || (n.starts_with('(') && n.ends_with(')'))
        });
        if hints_only { lookup(first) } else { None }
    })
}

/// The first non-empty line and what follows it, for cells of several lines.
fn split_first_line(text: &str) -> Option<(&str, &str)> {
    let t = textnorm::trim_invisible(text);
    t.split_once('\n')
}

/// A short cell that reads like some label, ours or not.
fn is_labelish(text: &str) -> bool {
    let form = label_form(text);
    form.chars().count() <= 12
        && !form.chars().any(|c| c.is_ascii_digit())
        && LABEL_ENDINGS.iter().any(|e| form.ends_with(e))
}

/// `label：value` pairs written inside one cell or paragraph, several per line allowed
/// (`负责人：张三  职务：书记`). A label counts only at the start of a line or after a space
/// or punctuation, so that `指导老师职务：` does not yield a 职务.
fn inline_pairs(text: &str) -> Vec<(Key, u8, String)> {
    let mut out = Vec::new();
    // `项目名称` on the first line of a cell and the value on the lines below.
    if let Some((first, rest)) = split_first_line(text)
        && let Some((key, w)) = label_key(first)
        && !is_placeholder(rest)
    {
        out.push((key, w, rest.to_string()));
        return out;
    }
    for line in text.split('\n') {
        // Every hit below ends in a colon; a line that cannot normalise to one has none, and
        // most cells and paragraphs have none, so they are not normalised at all.
        if !line.contains(COLONS) {
            continue;
        }
        let m = textnorm::normalize_mapped(line);
        let chars: Vec<char> = m.iter().map(|c| c.ch).collect();
        let mut hits: Vec<(usize, usize, Option<Key>, u8)> = Vec::new();
        let mut k = 0;
        while k < chars.len() {
            let boundary = k == 0
                || match (m.get(k - 1), m.get(k)) {
                    (Some(p), Some(c)) => p.end < c.start || "，,；;。|、)】".contains(p.ch),
                    _ => false,
                };
            let rest = chars.get(k..).unwrap_or_default();
            if boundary && let Some((len, key, w)) = label_at(rest) {
                hits.push((k, k + len, Some(key), w));
                k += len;
                continue;
            }
            // Another label (`盖章：`, `日期：`) ends the value before it.
            if boundary
                && k > 0
                && let Some(colon) = rest.iter().take(8).position(|c| *c == ':')
                && colon >= 2
                && rest.iter().take(colon).all(|c| textnorm::is_cjk(*c))
            {
                hits.push((k, k + colon + 1, None, 0));
                k += colon + 1;
                continue;
            }
            k += 1;
        }
        for (i, &(_, vs, key, w)) in hits.iter().enumerate() {
            let end = hits.get(i + 1).map_or(chars.len(), |n| n.0);
            let value = match (m.get(vs), end.checked_sub(1).and_then(|e| m.get(e))) {
                (Some(s), Some(e)) if vs < end => line.get(s.start..e.end).unwrap_or_default(),
                _ => "",
            };
            let value =
                value.trim_matches(|c: char| textnorm::is_invisible(c) || "，,；;".contains(c));
            if let Some(key) = key
                && !value.is_empty()
            {
                out.push((key, w, value.to_string()));
            }
        }
    }
    out
}

/// The characters whose NFKC form holds `:` (the ASCII colon, `：`, `︓`, `﹕` and `⩴`, which
/// is `::=`): the only ones [`textnorm::normalize`] turns into a colon
/// (`colons_are_all_that_normalise_to_a_colon` checks every character).
const COLONS: [char; 5] = [':', '\u{FF1A}', '\u{FE13}', '\u{FE55}', '\u{2A74}'];

/// A label followed by an optional `(hint)` and a colon at the start of `chars`: returns the
/// length up to and including the colon. Longest label wins.
fn label_at(chars: &[char]) -> Option<(usize, Key, u8)> {
    static CHARS: LazyLock<Vec<(Vec<char>, Key, u8)>> = LazyLock::new(|| {
        LABELS
            .iter()
            .map(|(l, k, w)| (l.chars().collect(), *k, *w))
            .collect()
    });
    let mut best: Option<(usize, usize, Key, u8)> = None;
    for (lc, key, w) in CHARS.iter() {
        let (key, w) = (*key, *w);
        if !chars.starts_with(lc) || best.is_some_and(|b| b.0 >= lc.len()) {
            continue;
        }
        let mut j = lc.len();
        if chars.get(j) == Some(&'(')
            && let Some(close) = chars
                .get(j..)
                .and_then(|r| r.iter().position(|c| *c == ')'))
        {
            j += close + 1;
        }
        if chars.get(j) == Some(&':') {
            best = Some((lc.len(), j + 1, key, w));
        }
    }
    best.map(|(_, len, k, w)| (len, k, w))
}

/// Template prompts and filler that mean "nothing written".
fn is_placeholder(text: &str) -> bool {
    let n = textnorm::normalize(text);
    let inner = n.trim_matches(['(', ')', '[', ']', '【', '】', '<', '>', '"', '“', '”']);
    inner.is_empty()
        || inner.chars().all(|c| "x×*_-/\\.…·?？".contains(c))
        || inner.contains("xxx")
        || inner.contains("×××")
        || inner.contains("{{")
        || inner.contains("${")
        || ["无", "暂无", "空", "待填", "略", "未填"].contains(&inner)
        || (inner.starts_with('请')
            && ["填", "输入", "选择", "勾选", "写"]
                .iter()
                .any(|w| inner.contains(w)))
        || ["单击此处", "点击此处", "单击或点击", "点击输入", "在此输入"]
            .iter()
            .any(|w| inner.contains(w))
}

/// Removes whitespace inside text written in Chinese; other text is unchanged.
fn squeeze_cjk(text: &str) -> String {
    if text.chars().any(textnorm::is_cjk) {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    } else {
        text.to_string()
    }
}

/// Trims invisible characters at both ends; inner text stays as written.
fn clean(text: &str) -> String {
    textnorm::trim_invisible(text).to_string()
}

/// `张三（书记）` → (`张三`, Some(`书记`)); text without a trailing parenthesis is unchanged.
fn split_paren(text: &str) -> (String, Option<String>) {
    let t = text.trim_end();
    for (open, close) in [('（', '）'), ('(', ')')] {
        if let Some(body) = t.strip_suffix(close)
            && let Some((name, inner)) = body.rsplit_once(open)
            && !name.trim().is_empty()
        {
            let inner = inner.trim();
            return (clean(name), (!inner.is_empty()).then(|| inner.to_string()));
        }
    }
    (t.to_string(), None)
}

/// The section a 申报板块 cell chooses: a check box list (`☑A □B …`, marks before or after
/// the names) gives the one ticked name; several ticked or none gives `None`. Plain text is
/// matched by [`normalize_section`].
fn section_of_cell(text: &str, sections: &[String]) -> Option<String> {
    let chars: Vec<char> = textnorm::normalize(text).chars().collect();
    let is_mark = |c: &char| TICKED.contains(c) || UNTICKED.contains(c);
    let marks: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| is_mark(c))
        .map(|(i, _)| i)
        .collect();
    let Some(&first) = marks.first() else {
        return normalize_section(text, sections);
    };
    let seg = |from: usize, to: usize| -> String {
        chars.get(from..to).unwrap_or_default().iter().collect()
    };
    // Marks after the names when the text before the first mark is itself a section.
    let after = normalize_section(&seg(0, first), sections).is_some();
    let mut chosen: Vec<String> = Vec::new();
    for (n, &at) in marks.iter().enumerate() {
        if !chars.get(at).is_some_and(|c| TICKED.contains(c)) {
            continue;
        }
        let prev = if n == 0 {
            0
        } else {
            marks.get(n - 1).map_or(0, |p| p + 1)
        };
        let next = marks.get(n + 1).copied().unwrap_or(chars.len());
        let (fwd, back) = (seg(at + 1, next), seg(prev, at));
        let (primary, secondary) = if after { (back, fwd) } else { (fwd, back) };
        let found = normalize_section(&primary, sections)
            .or_else(|| normalize_section(&secondary, sections));
        if let Some(s) = found
            && !chosen.contains(&s)
        {
            chosen.push(s);
        }
    }
    match chosen.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Normalises a written section to one of `sections`: equal after normalisation (width,
/// spaces, middle-dot variants, with or without the dot), or containing exactly one section
/// name, or naming exactly one section by its first or second half (`固本强基` →
/// `学思践悟·固本强基`), or one character away from exactly one full name (a typo); else
/// `None`.
pub fn normalize_section(text: &str, sections: &[String]) -> Option<String> {
    let key = |s: &str| -> String {
        textnorm::normalize(s)
            .chars()
            .filter(|c| {
                !(c.is_ascii_punctuation() || "·、，。；：“”‘’（）【】「」《》".contains(*c))
            })
            .filter(|c| !TICKED.contains(c) && !UNTICKED.contains(c))
            .collect()
    };
    let n = key(text);
    if n.is_empty() {
        return None;
    }
    let unique = |hits: Vec<&String>| match hits.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    };
    let full: Vec<(&String, String)> = sections.iter().map(|s| (s, key(s))).collect();
    if let Some((s, _)) = full.iter().find(|(_, k)| *k == n) {
        return Some((*s).clone());
    }
    let contained: Vec<&String> = full
        .iter()
        .filter(|(_, k)| !k.is_empty() && n.contains(k.as_str()))
        .map(|(s, _)| *s)
        .collect();
    if !contained.is_empty() {
        return unique(contained);
    }
    let halves = |s: &str| -> Vec<String> {
        textnorm::normalize(s)
            .split('·')
            .map(key)
            .filter(|h| h.chars().count() >= 2)
            .collect()
    };
    let by_half: Vec<&String> = sections
        .iter()
        .filter(|s| {
            halves(s)
                .iter()
                .any(|h| n == *h || (h.chars().count() >= 4 && n.contains(h.as_str())))
        })
        .collect();
    if !by_half.is_empty() {
        return unique(by_half);
    }
    let nc: Vec<char> = n.chars().collect();
    unique(
        full.iter()
            .filter(|(_, k)| {
                let kc: Vec<char> = k.chars().collect();
                kc.len() >= 6
                    && nc.len().abs_diff(kc.len()) <= 1
                    && textnorm::levenshtein(&nc, &kc) <= 1
            })
            .map(|(s, _)| *s)
            .collect(),
    )
}

/// A phone number as digits: an 11-digit mobile (with or without `+86`/`0086`, spaces,
/// dashes, dots, parentheses) or a landline with area code (`021-65981234` →
/// `02165981234`). When several numbers are written (`138…/139…`), the first valid one.
pub fn normalize_phone(text: &str) -> Option<String> {
    let n = textnorm::normalize(text);
    n.split(['/', ',', ';', '、', '|', '或']).find_map(|part| {
        let digits: String = part.chars().filter(char::is_ascii_digit).collect();
        let mobile = |d: &str| {
            d.len() == 11
                && d.starts_with('1')
                && d.as_bytes()
                    .get(1)
                    .is_some_and(|b| (b'3'..=b'9').contains(b))
        };
        let d = digits
            .strip_prefix("0086")
            .filter(|d| mobile(d))
            .or_else(|| digits.strip_prefix("86").filter(|d| mobile(d)))
            .unwrap_or(&digits);
        let landline = d.starts_with('0') && !d.starts_with("00") && (10..=12).contains(&d.len());
        (mobile(d) || landline).then(|| d.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::model::Table;

    /// [`inline_pairs`] skips lines without one of [`COLONS`]; that is only right if no other
    /// character normalises to a colon, in the Unicode tables this build uses.
    #[test]
    fn colons_are_all_that_normalise_to_a_colon() {
        let mut found: Vec<char> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| textnorm::normalize(&c.to_string()).contains(':'))
            .collect();
        found.sort_unstable();
        let mut want = COLONS.to_vec();
        want.sort_unstable();
        assert_eq!(found, want);
        // And a line with one of them still yields its pair.
        for colon in COLONS.iter().take(4) {
            let line = format!("负责人{colon}张三");
            assert_eq!(
                inline_pairs(&line),
                vec![(Key::Leader, 3, "张三".to_string())],
                "{line}"
            );
        }
    }

    /// One vocabulary: a word that both the form reader and the summary reader know names
    /// the same field in both.
    #[test]
    fn form_labels_agree_with_the_field_catalogue() {
        let mut shared = 0;
        for f in Field::ALL {
            for word in f.synonyms() {
                if let Some((k, _)) = label_key(word) {
                    assert_eq!(
                        k.field(),
                        f,
                        "{word} names {f:?} in a summary, {k:?} in a form"
                    );
                    shared += 1;
                }
            }
        }
        assert!(shared >= 30, "only {shared} shared words");
    }

    fn sections() -> Vec<String> {
        crate::config::DEFAULT_SECTIONS.map(String::from).to_vec()
    }

    #[test]
    fn sections_normalise() {
        let s = sections();
        let cases: &[(&str, Option<&str>)] = &[
            ("学思践悟·固本强基", Some("学思践悟·固本强基")),
            ("学思践悟•固本强基", Some("学思践悟·固本强基")),
            ("学思践悟 固本强基", Some("学思践悟·固本强基")),
            ("学思践悟固本强基", Some("学思践悟·固本强基")),
            ("“先锋领航·校园善治”板块", Some("先锋领航·校园善治")),
            ("固本强基", Some("学思践悟·固本强基")),
            ("育苗成长", Some("育苗成长·薪火相传")),
            ("社区聚力板块", Some("党旗飘扬·社区聚力")),
            ("师生结对·双向赋能 ", Some("师生结对·双向赋能")),
            ("学思践悟·固本强机", Some("学思践悟·固本强基")),
            ("理论学习", None),
            ("", None),
            ("固本强基、校园善治", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_section(input, &s).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn section_check_boxes() {
        let s = sections();
        let cases: &[(&str, Option<&str>)] = &[
            (
                "□学思践悟·固本强基\u{3000}☑先锋领航·校园善治\u{3000}□党旗飘扬·社区聚力\n□师生结对·双向赋能\u{3000}□育苗成长·薪火相传",
                Some("先锋领航·校园善治"),
            ),
            (
                "■学思践悟·固本强基 □先锋领航·校园善治",
                Some("学思践悟·固本强基"),
            ),
            (
                "☐学思践悟·固本强基 ✔先锋领航·校园善治",
                Some("先锋领航·校园善治"),
            ),
            (
                "☐学思践悟·固本强基 ☒育苗成长·薪火相传",
                Some("育苗成长·薪火相传"),
            ),
            (
                "学思践悟·固本强基□ 先锋领航·校园善治√",
                Some("先锋领航·校园善治"),
            ),
            (
                "□学思践悟·固本强基√ □先锋领航·校园善治",
                Some("学思践悟·固本强基"),
            ),
            ("☑学思践悟·固本强基 ☑先锋领航·校园善治", None),
            ("□学思践悟·固本强基 □先锋领航·校园善治", None),
        ];
        for (input, want) in cases {
            assert_eq!(section_of_cell(input, &s).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn phones() {
        let cases: &[(&str, Option<&str>)] = &[
            ("13800138000", Some("13800138000")),
            ("138-0013-8000", Some("13800138000")),
            ("138 0013 8000", Some("13800138000")),
            ("+86 138 0013 8000", Some("13800138000")),
            ("+86-13800138000", Some("13800138000")),
            ("008613800138000", Some("13800138000")),
            ("１３８００１３８０００", Some("13800138000")),
            ("021-65981234", Some("02165981234")),
            ("(021)65981234", Some("02165981234")),
            ("0510-8888888", Some("05108888888")),
            ("13800138000/13900139000", Some("13800138000")),
            ("手机：13800138000", Some("13800138000")),
            ("12345", None),
            ("", None),
            ("23800138000", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_phone(input).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn labels_and_placeholders() {
        assert_eq!(label_key("项 目 名 称"), Some((Key::Project, 3)));
        assert_eq!(
            label_key("项 目 名 称").map(|(k, _)| k.field()),
            Some(Field::ProjectName)
        );
        assert_eq!(label_key("项目名称："), Some((Key::Project, 3)));
        assert_eq!(label_key("经费预算（元）"), Some((Key::Budget, 2)));
        assert_eq!(label_key("*负责人"), Some((Key::Leader, 3)));
        assert_eq!(label_key("(3)联系电话"), Some((Key::Phone, 3)));
        assert_eq!(label_key("三、经费预算"), Some((Key::Budget, 2)));
        assert_eq!(label_form("三千元"), "三千元");
        assert_eq!(label_key("指导老师职务/职称"), None);
        assert!(is_labelish("指导老师职务/职称"));
        assert!(!is_labelish("汽车工程学院本科生第二党支部"));
        for p in [
            "（请填写）",
            "XXX",
            "×××",
            "请输入项目名称",
            "单击或点击此处输入文字。",
            "/",
            "——",
            "无",
            " ",
        ] {
            assert!(is_placeholder(p), "{p:?}");
        }
        for v in ["张三", "书记", "3000", "“红色”计划"] {
            assert!(!is_placeholder(v), "{v:?}");
        }
        assert_eq!(inline_pairs("经办：  负责人：   盖章：  2025年"), vec![]);
        assert_eq!(
            inline_pairs("负责人：张三  职务：书记\n指导老师职务：教授"),
            vec![
                (Key::Leader, 3, "张三".to_string()),
                (Key::Role, 3, "书记".to_string())
            ]
        );
    }

    fn table(rows: &[&[&str]]) -> Block {
        Block::Table(Table {
            rows: rows
                .iter()
                .map(|r| r.iter().map(|t| cell(t)).collect())
                .collect(),
        })
    }

    /// `~` marks a vertical-merge continuation, `text|n` a cell spanning n columns.
    fn cell(t: &str) -> Cell {
        if t == "~" {
            return Cell {
                text: String::new(),
                col_span: 1,
                v_merged: true,
            };
        }
        match t.rsplit_once('|') {
            Some((text, n)) if n.parse::<u32>().is_ok() => Cell {
                text: text.to_string(),
                col_span: n.parse().unwrap_or(1),
                v_merged: false,
            },
            _ => Cell::new(t),
        }
    }

    #[derive(Default)]
    struct Want {
        project: Option<&'static str>,
        section: Option<&'static str>,
        leader: Option<&'static str>,
        role: Option<&'static str>,
        phone: Option<&'static str>,
        advisor: Option<&'static str>,
        budget: Option<f64>,
        branch: Option<&'static str>,
    }

    fn check(name: &str, blocks: Vec<Block>, want: Want) {
        let s = sections();
        let f = form_fields(&Document { blocks }, &FormConfig { sections: &s });
        let got = (
            f.project_name.as_deref(),
            f.section.as_deref(),
            f.leader.as_deref(),
            f.leader_role.as_deref(),
            f.phone.as_deref(),
            f.advisor.as_deref(),
            f.budget_yuan(),
            f.branch.as_deref(),
        );
        let want = (
            want.project,
            want.section,
            want.leader,
            want.role,
            want.phone,
            want.advisor,
            want.budget,
            want.branch,
        );
        assert_eq!(got, want, "case {name}: {f:#?}");
    }

    #[test]
    fn layouts() {
        let p = Block::Paragraph;
        let cases: Vec<(&str, Vec<Block>, Want)> = vec![
            (
                "template layout",
                vec![table(&[
                    &["支部名称", "A支部", "所在学院", "A学院"],
                    &["项目名称", "红色计划|3"],
                    &["申报板块", "□学思践悟·固本强基 ☑先锋领航·校园善治|3"],
                    &["项目负责人", "张三", "职务", "书记"],
                    &["联系电话", "13800138000", "电子邮箱", "a@b.cn"],
                    &["指导老师", "李四", "指导老师职务/职称", "教授"],
                    &["经费预算", "支出项目", "金额（元）", "用途说明"],
                    &["~", "交通费", "1000", ""],
                    &["~", "合计", "2800", ""],
                ])],
                Want {
                    project: Some("红色计划"),
                    section: Some("先锋领航·校园善治"),
                    leader: Some("张三"),
                    role: Some("书记"),
                    phone: Some("13800138000"),
                    advisor: Some("李四"),
                    budget: Some(2800.0),
                    branch: Some("A支部"),
                },
            ),
            (
                "spaced labels and full-width colons",
                vec![table(&[
                    &["项 目 名 称：", "红色计划"],
                    &["负 责 人", "张\u{3000}三"],
                    &["职\u{3000}务", "副书记"],
                ])],
                Want {
                    project: Some("红色计划"),
                    leader: Some("张三"),
                    role: Some("副书记"),
                    ..Want::default()
                },
            ),
            (
                "label above value",
                vec![table(&[
                    &["项目名称", "项目负责人", "职务", "联系电话"],
                    &["红色计划", "张三", "书记", "138-0013-8000"],
                ])],
                Want {
                    project: Some("红色计划"),
                    leader: Some("张三"),
                    role: Some("书记"),
                    phone: Some("13800138000"),
                    ..Want::default()
                },
            ),
            (
                "label and value in one cell",
                vec![table(&[
                    &["项目名称：红色计划"],
                    &["负责人：张三　　职务：书记", "联系方式：13800138000"],
                    &["指导老师：李四"],
                ])],
                Want {
                    project: Some("红色计划"),
                    leader: Some("张三"),
                    role: Some("书记"),
                    phone: Some("13800138000"),
                    advisor: Some("李四"),
                    ..Want::default()
                },
            ),
            (
                "paragraphs instead of a table",
                vec![
                    p("项目名称：红色计划".into()),
                    p("申报板块：育苗成长·薪火相传".into()),
                    p("项目主持人：张三（支部书记）".into()),
                    p("手机：+86 138 0013 8000".into()),
                    p("指导教师：李四".into()),
                    p("申请经费：3,000元".into()),
                ],
                Want {
                    project: Some("红色计划"),
                    section: Some("育苗成长·薪火相传"),
                    leader: Some("张三"),
                    role: Some("支部书记"),
                    phone: Some("13800138000"),
                    advisor: Some("李四"),
                    budget: Some(3000.0),
                    ..Want::default()
                },
            ),
            (
                "synonyms",
                vec![table(&[
                    &["项目题目", "红色计划"],
                    &["所属板块", "固本强基"],
                    &["负责人", "张三"],
                    &["党内职务", "组织委员"],
                    &["手机", "13800138000"],
                    &["指导教师姓名", "李四"],
                    &["预算金额", "0.3万元"],
                    &["党支部名称", "B支部"],
                ])],
                Want {
                    project: Some("红色计划"),
                    section: Some("学思践悟·固本强基"),
                    leader: Some("张三"),
                    role: Some("组织委员"),
                    phone: Some("13800138000"),
                    advisor: Some("李四"),
                    budget: Some(3000.0),
                    branch: Some("B支部"),
                },
            ),
            (
                "merged value cells and empty spacer",
                vec![table(&[
                    &["项目名称|2", "", "红色计划|2"],
                    &["负责人", "", "张三", "职务", "书记"],
                ])],
                Want {
                    project: Some("红色计划"),
                    leader: Some("张三"),
                    role: Some("书记"),
                    ..Want::default()
                },
            ),
            (
                "empty value does not steal the next label's value",
                vec![table(&[
                    &["项目负责人", "", "职务", "书记"],
                    &["指导老师", "", "指导老师职务/职称", "教授"],
                ])],
                Want {
                    role: Some("书记"),
                    ..Want::default()
                },
            ),
            (
                "placeholders are empty",
                vec![table(&[
                    &["项目名称", "（请填写项目名称）"],
                    &["负责人", "XXX"],
                    &["指导老师", "无"],
                    &["经费预算", "单击或点击此处输入文字。"],
                ])],
                Want::default(),
            ),
            (
                "several sections ticked",
                vec![table(&[&[
                    "申报板块",
                    "☑学思践悟·固本强基 ☑先锋领航·校园善治",
                ]])],
                Want::default(),
            ),
            (
                "section not one of the five",
                vec![table(&[&["申报板块", "理论学习"]])],
                Want::default(),
            ),
            (
                "role next to the advisor is not the leader's",
                vec![table(&[
                    &["指导老师", "李四", "职务", "教授"],
                    &["负责人", "张三", "职务", "副书记"],
                ])],
                Want {
                    leader: Some("张三"),
                    role: Some("副书记"),
                    advisor: Some("李四"),
                    ..Want::default()
                },
            ),
            (
                "total preferred over items",
                vec![table(&[
                    &["经费预算", "资料费", "500元"],
                    &["~", "交通费", "1500元"],
                    &["~", "经费合计", "2000元"],
                ])],
                Want {
                    budget: Some(2000.0),
                    ..Want::default()
                },
            ),
            (
                "budget written directly",
                vec![table(&[&["经费预算（元）", "叁仟伍佰元整"]])],
                Want {
                    budget: Some(3500.0),
                    ..Want::default()
                },
            ),
            (
                "budget range is not a number",
                vec![table(&[&["申请经费", "2000-3000元"]])],
                Want::default(),
            ),
            (
                "label above with vertical merge below",
                vec![table(&[
                    &["项目负责人|2", "联系电话|2"],
                    &["姓名", "职务", "手机", "邮箱"],
                    &["张三", "书记", "13800138000", "a@b.cn"],
                ])],
                Want {
                    leader: Some("张三"),
                    role: Some("书记"),
                    phone: Some("13800138000"),
                    ..Want::default()
                },
            ),
            (
                "numbered labels",
                vec![table(&[
                    &["1.项目名称", "红色计划"],
                    &["2、负责人", "张三"],
                ])],
                Want {
                    project: Some("红色计划"),
                    leader: Some("张三"),
                    ..Want::default()
                },
            ),
            (
                "check box after the names",
                vec![table(&[&[
                    "申报板块",
                    "学思践悟·固本强基□\n师生结对·双向赋能■",
                ]])],
                Want {
                    section: Some("师生结对·双向赋能"),
                    ..Want::default()
                },
            ),
            (
                "value cell that is a label stays empty",
                vec![table(&[&["项目名称", "项目负责人", "张三"]])],
                Want {
                    leader: Some("张三"),
                    ..Want::default()
                },
            ),
            (
                "landline phone",
                vec![table(&[&["联系电话", "021-6598 1234"]])],
                Want {
                    phone: Some("02165981234"),
                    ..Want::default()
                },
            ),
            (
                "specific label beats generic",
                vec![table(&[&["名称", "交通费"], &["项目名称", "红色计划"]])],
                Want {
                    project: Some("红色计划"),
                    ..Want::default()
                },
            ),
            (
                "label in a vertically merged cell, value right",
                vec![table(&[
                    &["项目名称", "红色计划"],
                    &["~", ""],
                    &["申报类别", "☑党旗飘扬·社区聚力"],
                ])],
                Want {
                    project: Some("红色计划"),
                    section: Some("党旗飘扬·社区聚力"),
                    ..Want::default()
                },
            ),
            (
                "nested table text in a cell",
                vec![table(&[&["其他信息", "负责人：张三\t职务：书记"]])],
                Want {
                    leader: Some("张三"),
                    role: Some("书记"),
                    ..Want::default()
                },
            ),
            (
                "a per-item 总计 column does not beat the 合计 row",
                vec![table(&[
                    &["经费预算", "支出项目", "单价", "数量", "总计"],
                    &["~", "交通费", "50", "20", "1000"],
                    &["~", "合计", "", "", "3000"],
                ])],
                Want {
                    budget: Some(3000.0),
                    ..Want::default()
                },
            ),
            (
                "budget total without items, amount and words",
                vec![table(&[&["合计", "3000（三千元）"]])],
                Want {
                    budget: Some(3000.0),
                    ..Want::default()
                },
            ),
            (
                "headers only: no budget",
                vec![table(&[
                    &["经费预算", "支出项目", "金额（元）", "用途说明"],
                    &["~", "", "", ""],
                    &["~", "合计", "", ""],
                ])],
                Want::default(),
            ),
            ("empty document", vec![], Want::default()),
            (
                "ragged rows and huge spans do not panic",
                vec![table(&[
                    &["项目名称|4294967295", "红色计划|4294967295"],
                    &[],
                    &["负责人"],
                ])],
                Want {
                    project: Some("红色计划"),
                    ..Want::default()
                },
            ),
            (
                "label with a hint on its own line; label and value on two lines",
                vec![table(&[
                    &["经费预算\n（元）", "2500"],
                    &["项目名称\n红色计划", ""],
                ])],
                Want {
                    project: Some("红色计划"),
                    budget: Some(2500.0),
                    ..Want::default()
                },
            ),
            (
                "section check boxes without a label",
                vec![
                    p("请选择板块：".into()),
                    p("□学思践悟·固本强基 □先锋领航·校园善治 √党旗飘扬·社区聚力".into()),
                ],
                Want {
                    section: Some("党旗飘扬·社区聚力"),
                    ..Want::default()
                },
            ),
        ];
        assert!(cases.len() >= 25);
        for (name, blocks, want) in cases {
            check(name, blocks, want);
        }
    }

    #[test]
    fn budget_unparsed_is_kept_as_written() {
        let s = sections();
        let doc = Document {
            blocks: vec![table(&[&["经费预算", "待定"]])],
        };
        let f = form_fields(&doc, &FormConfig { sections: &s });
        assert_eq!(f.budget_as_written.as_deref(), Some("待定"));
        assert!(matches!(f.budget, Some(Amount::Unparsed { .. })));
        let doc = Document {
            blocks: vec![table(&[&[
                "申报板块",
                "☑学思践悟·固本强基 ☑先锋领航·校园善治",
            ]])],
        };
        let f = form_fields(&doc, &FormConfig { sections: &s });
        assert_eq!(f.section, None);
        assert_eq!(
            f.section_as_written.as_deref(),
            Some("☑学思践悟·固本强基 ☑先锋领航·校园善治")
        );
    }

    /// `../shared` beside the project, where the sample set lives (CI lays it there).
    fn shared() -> Option<std::path::PathBuf> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
        p.join("samples").is_dir().then_some(p)
    }

    /// Every sample whose fields come from a .docx form: the extracted fields equal
    /// `expected.json`, field by field. (.doc forms need the legacy reader and are checked
    /// where it is built.)
    #[test]
    fn sample_forms_match_expected() {
        use crate::extract::docx::{DocxLimits, read_docx};
        let Some(shared) = shared() else {
            eprintln!("../shared/samples not present: skipped");
            return;
        };
        let s = sections();
        let mut dirs: Vec<_> = std::fs::read_dir(shared.join("samples"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("expected.json").is_file())
            .collect();
        dirs.sort();
        let mut checked = 0;
        for dir in dirs {
            let exp: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
            if exp["fields_source"] != "form" {
                continue;
            }
            let form = exp["attachments"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["role"] == "form" && a["format"] == "docx");
            let Some(form) = form else {
                eprintln!("{}: form is not a .docx, skipped", dir.display());
                continue;
            };
            let path = dir.join("files").join(form["filename"].as_str().unwrap());
            let doc = read_docx(&std::fs::read(&path).unwrap(), &DocxLimits::default()).unwrap();
            let f = form_fields(&doc, &FormConfig { sections: &s });
            let e = &exp["fields"];
            let str_of = |v: &serde_json::Value| v.as_str().map(str::to_string);
            let got = [
                ("project_name", f.project_name.clone()),
                ("section", f.section.clone()),
                ("leader", f.leader.clone()),
                ("leader_role", f.leader_role.clone()),
                ("phone", f.phone.clone()),
                ("advisor", f.advisor.clone()),
            ];
            for (k, v) in got {
                assert_eq!(v, str_of(&e[k]), "{} {k}", dir.display());
            }
            assert_eq!(
                f.budget_yuan(),
                e["budget_yuan"].as_f64(),
                "{} budget",
                dir.display()
            );
            assert_eq!(
                f.section_as_written,
                str_of(&exp["section_as_written"]),
                "{}",
                dir.display()
            );
            assert_eq!(
                f.budget_as_written,
                str_of(&exp["budget_as_written"]),
                "{}",
                dir.display()
            );
            assert_eq!(
                f.branch,
                str_of(&exp["branch_in_form"]),
                "{}",
                dir.display()
            );
            eprintln!("{}: ok", dir.display());
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} sample forms checked");
    }

    /// The office's blank template yields no values, only an unticked section list.
    #[test]
    fn blank_template_is_empty() {
        use crate::extract::docx::{DocxLimits, read_docx};
        let Some(shared) = shared() else { return };
        let path =
            shared.join("samples/templates/附件1 同济大学学生党支部“对标争先”建设项目申请表.docx");
        let doc = read_docx(&std::fs::read(path).unwrap(), &DocxLimits::default()).unwrap();
        let s = sections();
        let f = form_fields(&doc, &FormConfig { sections: &s });
        assert_eq!(
            (
                f.project_name,
                f.leader,
                f.leader_role,
                f.phone,
                f.advisor,
                f.budget,
                f.section,
                f.branch
            ),
            (None, None, None, None, None, None, None, None)
        );
        assert!(f.section_as_written.is_some_and(|w| w.starts_with('□')));
    }

    /// A hostile table (many label cells over many empty rows) stays fast.
    #[test]
    fn large_tables_stay_linear() {
        let wide: Vec<Cell> = (0..20_000)
            .map(|i| Cell::new(if i % 2 == 0 { "名称" } else { "" }))
            .collect();
        let mut rows = vec![wide];
        rows.extend((0..20_000).map(|_| vec![Cell::new("")]));
        let doc = Document {
            blocks: vec![Block::Table(Table { rows })],
        };
        let s = sections();
        let t = std::time::Instant::now();
        let f = form_fields(&doc, &FormConfig { sections: &s });
        assert_eq!(f.project_name, None);
        assert!(t.elapsed().as_secs() < 5, "{:?}", t.elapsed());
    }
}
