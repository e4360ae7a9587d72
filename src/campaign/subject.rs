//! The subject grammar: what a branch meant by its mail's subject line.
//!
//! The notice tells branches to use `对标争先建设项目申报-支部名称`; the campaign configuration
//! holds that as a pattern with a placeholder (`对标争先建设项目申报-{支部名称}`), together with a
//! closure pattern (`对标争先建设项目结项-{支部名称}`). Real subjects drift from it in every way an
//! input method allows: `Re:`/`回复：` chains, `【】` brackets, full-width dashes, `_`, spaces, a
//! dropped `建设`, a trailing `（修改版）`. People still clearly meant the pattern, so the grammar
//! is tolerant, but it also records *how* a subject departed from the pattern, because the
//! office wants branches told (the `subject_nonstandard` problem) when they wrote it differently.
//!
//! Nothing here is specific to 对标争先: the fixed text around the placeholder (the *keyword*)
//! comes from configuration and is matched with a small weighted alignment, so a dropped word or
//! a changed word is found for any campaign name. The branch text is returned as written (minus
//! decoration); matching it against the roster is [`crate::campaign::roster`]'s job.
//!
//! What counts as a departure follows the sample set's definition: another wording (e.g. a
//! missing `建设`), `_` or another character instead of the dash, `【】` around the name or the
//! keyword, extra text, the wrong order, a missing name. Reply/forward prefixes, spaces, any dash
//! variant and a trailing revision marker such as `（修改版）` are *not* departures.

use std::fmt::Write as _;

use crate::textnorm::{self, MappedChar};

/// Longest subject (in normalised characters) the grammar looks at. Real subjects are far
/// shorter; the cap keeps the alignment table small for hostile input.
const MAX_PARSE_CHARS: usize = 4096;

/// Placeholder spellings accepted in a configured pattern (compared after normalisation).
const PLACEHOLDERS: &[&str] = &[
    "支部名称",
    "支部",
    "支部名",
    "党支部名称",
    "支部全称",
    "branch",
    "branch_name",
    "branchname",
];

/// Reply and forward prefixes, normalised (lowercase, no spaces). Each must be followed by an
/// optional counter (`Re[2]:`) and a colon (ASCII or full-width, which NFKC unifies).
const REPLY_PREFIXES: &[&str] = &[
    "re", "fw", "fwd", "aw", "wg", "sv", "回复", "答复", "转发", "回覆", "答覆", "轉發", "转寄",
    "轉寄",
];

/// Revision markers that can stand without brackets at the end of a subject
/// (`…党支部修改版`, `…党支部 更正`).
const REVISION_STRONG: &[&str] = &[
    "修改版",
    "修改稿",
    "修订版",
    "修订稿",
    "修正版",
    "更正版",
    "更新版",
    "最终版",
    "最新版",
    "终版",
    "定稿",
    "补交",
    "补发",
    "重发",
    "重新提交",
    "再次提交",
    "重新发送",
    "更正",
    "修正",
    "修订",
    "修改",
];

/// Words that mark a revision only inside brackets (`（更新）`, `(以此为准)`), where they cannot
/// be part of a branch name.
const REVISION_WEAK: &[&str] = &[
    "更新",
    "补充",
    "最新",
    "新版",
    "重交",
    "再提交",
    "为准",
    "替换",
    "第二次",
    "二次",
    "已改",
];

/// Words that make an unparseable subject still look related to an application campaign.
const GENERIC_CAMPAIGN_WORDS: &[&str] = &["申报", "申请", "结项", "结题", "验收", "立项"];

/// Words and marks that make a subject read as a question to the office.
const QUESTION_WORDS: &[&str] = &[
    "?", "咨询", "请问", "疑问", "问题", "请教", "求助", "询问", "如何", "怎么", "是否", "能否",
    "可否",
];

/// What a subject is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// Matches the application pattern (possibly with deviations).
    Application,
    /// Matches the closure pattern (possibly with deviations).
    Closure,
    /// Matches neither.
    Other,
}

/// The result of [`SubjectGrammar::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSubject {
    /// Application, closure or neither.
    pub kind: SubjectKind,
    /// The branch text as written (trimmed; revision marker, brackets and separators removed).
    /// `None` for [`SubjectKind::Other`] or when the subject names no branch.
    pub branch: Option<String>,
    /// How the subject departs from the configured pattern; empty means standard form.
    pub deviations: Vec<Deviation>,
    /// The subject carried `Re:`/`回复:`/`转发:`/`Fwd:`/`答复:`/`FW:` … prefixes.
    pub reply_or_forward: bool,
    /// The subject carried a revision marker such as `（修改版）`, `(更正)`, `补交`, `v2`.
    pub revision: bool,
    /// The subject looks related to the campaign (always true for application and closure;
    /// for [`SubjectKind::Other`] true when it mentions the campaign or words like 申报/结项),
    /// so a mail with office attachments can be treated as "meant as an application".
    pub mentions_campaign: bool,
    /// The subject reads like a question (`咨询`, `请问`, `?` …). Set for any kind: a subject such
    /// as `对标争先项目申报咨询` parses as an application but is probably a question.
    pub looks_like_question: bool,
}

impl ParsedSubject {
    /// True when the subject is in the standard form (no deviations).
    pub fn is_standard(&self) -> bool {
        self.deviations.is_empty()
    }
}

/// One way a subject departs from the configured pattern.
///
/// Serialises with a `code` tag equal to [`Deviation::code`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Deviation {
    /// Part of the keyword is missing, e.g. `对标争先项目申报` lacks `建设`.
    MissingWord {
        /// The missing characters.
        missing: String,
        /// The keyword as configured.
        expected: String,
    },
    /// The keyword is worded differently, e.g. `对标争先建设项目申请`.
    OtherWording {
        /// What the subject says instead (as written).
        written: String,
        /// The keyword as configured.
        expected: String,
    },
    /// An underscore separates keyword and branch name instead of the configured separator.
    Underscore {
        /// The configured separator (usually `-`).
        expected: String,
    },
    /// Some other character (`：`, `/`, `、` …) separates keyword and branch name.
    OtherSeparator {
        /// The separator as written.
        separator: String,
        /// The configured separator (usually `-`).
        expected: String,
    },
    /// Keyword and branch name are written together without any separator.
    MissingSeparator,
    /// The branch name is wrapped in brackets, e.g. `【经济与管理学院本科生第一党支部】`.
    BracketedName,
    /// The keyword is wrapped in brackets, e.g. `【对标争先建设项目申报】…党支部`.
    BracketedKeyword,
    /// Text that belongs to neither keyword nor branch, e.g. a leading `[外部邮件]`.
    ExtraText {
        /// The extra text as written.
        text: String,
    },
    /// The branch name comes on the wrong side of the keyword.
    WrongOrder,
    /// The subject names no branch.
    MissingBranch,
}

impl Deviation {
    /// Stable machine-readable code (snake_case), e.g. for logs and the database.
    pub fn code(&self) -> &'static str {
        match self {
            Deviation::MissingWord { .. } => "missing_word",
            Deviation::OtherWording { .. } => "other_wording",
            Deviation::Underscore { .. } => "underscore",
            Deviation::OtherSeparator { .. } => "other_separator",
            Deviation::MissingSeparator => "missing_separator",
            Deviation::BracketedName => "bracketed_name",
            Deviation::BracketedKeyword => "bracketed_keyword",
            Deviation::ExtraText { .. } => "extra_text",
            Deviation::WrongOrder => "wrong_order",
            Deviation::MissingBranch => "missing_branch",
        }
    }

    /// A short Chinese explanation for the acknowledgement mail.
    pub fn describe_zh(&self) -> String {
        match self {
            Deviation::MissingWord { missing, expected } => {
                format!("主题少了“{missing}”，规定写法是“{expected}”")
            }
            Deviation::OtherWording { written, expected } => {
                format!("主题写成了“{written}”，规定写法是“{expected}”")
            }
            Deviation::Underscore { expected } => {
                format!("支部名称前用了下划线“_”，规定用“{expected}”")
            }
            Deviation::OtherSeparator {
                separator,
                expected,
            } => format!("支部名称前用了“{separator}”分隔，规定用“{expected}”"),
            Deviation::MissingSeparator => "主题与支部名称之间缺少分隔符“-”".to_string(),
            Deviation::BracketedName => {
                "支部名称外加了括号（如【】），规定直接写支部名称".to_string()
            }
            Deviation::BracketedKeyword => {
                "主题文字外加了括号（如【】），规定不加括号，用“-”连接支部名称".to_string()
            }
            Deviation::ExtraText { text } => format!("主题中多了“{text}”"),
            Deviation::WrongOrder => "支部名称与主题文字的先后顺序颠倒了".to_string(),
            Deviation::MissingBranch => "主题中没有写支部名称".to_string(),
        }
    }
}

/// A configured pattern that cannot be used. Messages say what to change in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The pattern has no `{支部名称}`.
    #[error(
        "{which}主题格式“{pattern}”里没有支部名称占位符：请在应写支部名称的位置写上 {{支部名称}}，例如“对标争先建设项目申报-{{支部名称}}”"
    )]
    MissingPlaceholder {
        /// 申报 or 结项.
        which: &'static str,
        /// The pattern as configured.
        pattern: String,
    },
    /// The pattern has a `{…}` that is not a known placeholder.
    #[error(
        "{which}主题格式“{pattern}”里的“{{{found}}}”不是可用的占位符：请改成 {{支部名称}}（或 {{branch}}）"
    )]
    UnknownPlaceholder {
        /// 申报 or 结项.
        which: &'static str,
        /// The pattern as configured.
        pattern: String,
        /// The text inside the braces.
        found: String,
    },
    /// The pattern has more than one placeholder.
    #[error("{which}主题格式“{pattern}”里有不止一个占位符：只保留一个 {{支部名称}}")]
    MultiplePlaceholders {
        /// 申报 or 结项.
        which: &'static str,
        /// The pattern as configured.
        pattern: String,
    },
    /// The pattern has a `{` without a matching `}`.
    #[error("{which}主题格式“{pattern}”里的大括号没有配对：占位符应写成 {{支部名称}}")]
    UnbalancedBrace {
        /// 申报 or 结项.
        which: &'static str,
        /// The pattern as configured.
        pattern: String,
    },
    /// The pattern is only a placeholder (and separators), so nothing identifies the campaign.
    #[error(
        "{which}主题格式“{pattern}”除了占位符没有固定文字：请写上项目名称，例如“对标争先建设项目申报-{{支部名称}}”"
    )]
    NoFixedText {
        /// 申报 or 结项.
        which: &'static str,
        /// The pattern as configured.
        pattern: String,
    },
    /// Application and closure patterns have the same fixed text, so mails cannot be told apart.
    #[error(
        "申报主题和结项主题的固定文字相同（“{keyword}”），无法区分申报邮件和结项邮件：请把结项主题改成不同的写法，例如把“申报”换成“结项”"
    )]
    SamePatterns {
        /// The shared fixed text.
        keyword: String,
    },
}

/// The application and closure subject grammar of one campaign.
#[derive(Debug, Clone)]
pub struct SubjectGrammar {
    application: KindGrammar,
    closure: KindGrammar,
    /// Normalised fragments whose presence makes an `Other` subject "mention the campaign".
    campaign_words: Vec<Vec<char>>,
}

/// The grammar of one pattern (application or closure).
#[derive(Debug, Clone)]
struct KindGrammar {
    kind: SubjectKind,
    /// Configured text before the placeholder, verbatim (for building subjects).
    before: String,
    /// Configured text after the placeholder, verbatim.
    after: String,
    /// The keyword as configured (trimmed), for messages.
    keyword_display: String,
    /// The keyword, normalised, without quotes.
    keyword: Vec<char>,
    /// True when the pattern puts the branch name before the keyword.
    name_first: bool,
    /// Normalised fixed text on the other side of the name (rare; stripped when present).
    trailing_literal: Vec<char>,
    /// The configured separator between keyword and name, normalised (usually `-`).
    separator: Vec<char>,
    /// The configured separator as written, for messages (`-` when the pattern has none).
    separator_display: String,
    /// The pattern itself brackets the name / the keyword, so brackets are no deviation.
    pattern_brackets_name: bool,
    pattern_brackets_keyword: bool,
    /// Keyword index range that distinguishes this kind from the other (e.g. `申报` vs `结项`).
    distinctive: (usize, usize),
    /// Largest accepted alignment cost (40% of the keyword length).
    max_cost: u32,
}

impl SubjectGrammar {
    /// Builds the grammar from the configured application and closure patterns.
    ///
    /// Each pattern must contain exactly one placeholder `{支部名称}` (or `{branch}`) and some
    /// fixed text; the two patterns' fixed texts must differ.
    ///
    /// # Errors
    ///
    /// [`SubjectError`] naming the pattern and what to change in the configuration.
    pub fn new(application_pattern: &str, closure_pattern: &str) -> Result<Self, SubjectError> {
        let mut application =
            KindGrammar::new(SubjectKind::Application, "申报", application_pattern)?;
        let mut closure = KindGrammar::new(SubjectKind::Closure, "结项", closure_pattern)?;
        if application.keyword == closure.keyword {
            return Err(SubjectError::SamePatterns {
                keyword: application.keyword_display.clone(),
            });
        }
        let a = &application.keyword;
        let c = &closure.keyword;
        let lcp = a.iter().zip(c.iter()).take_while(|(x, y)| x == y).count();
        let lcs = a
            .iter()
            .rev()
            .zip(c.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        application.distinctive = distinctive_range(a.len(), lcp, lcs);
        closure.distinctive = distinctive_range(c.len(), lcp, lcs);

        let mut campaign_words: Vec<Vec<char>> = Vec::new();
        for g in [&application, &closure] {
            let k = &g.keyword;
            if k.len() <= 4 {
                campaign_words.push(k.clone());
            } else {
                for w in k.windows(4) {
                    campaign_words.push(w.to_vec());
                }
            }
            let (lo, hi) = g.distinctive;
            if hi >= lo + 2 {
                campaign_words.push(k[lo..hi].to_vec());
            }
        }
        for w in GENERIC_CAMPAIGN_WORDS {
            campaign_words.push(w.chars().collect());
        }
        campaign_words.sort();
        campaign_words.dedup();
        Ok(SubjectGrammar {
            application,
            closure,
            campaign_words,
        })
    }

    /// The exact subject a branch should use for its application, e.g. for help mails.
    pub fn application_subject_for(&self, branch: &str) -> String {
        self.application.subject_for(branch)
    }

    /// The exact subject a branch should use for its closure materials.
    pub fn closure_subject_for(&self, branch: &str) -> String {
        self.closure.subject_for(branch)
    }

    /// The application keyword as configured (e.g. `对标争先建设项目申报`).
    pub fn application_keyword(&self) -> &str {
        &self.application.keyword_display
    }

    /// The closure keyword as configured (e.g. `对标争先建设项目结项`).
    pub fn closure_keyword(&self) -> &str {
        &self.closure.keyword_display
    }

    /// Parses a decoded subject line. Never fails: anything unrecognisable is
    /// [`SubjectKind::Other`].
    pub fn parse(&self, subject: &str) -> ParsedSubject {
        let mut mapped = textnorm::normalize_mapped(subject);
        mapped.truncate(MAX_PARSE_CHARS);
        let (body_start, reply_or_forward) = strip_reply_prefixes(&mapped);
        let body = mapped.get(body_start..).unwrap_or(&[]);
        let chars: Vec<char> = body.iter().map(|m| m.ch).collect();
        let looks_like_question = QUESTION_WORDS
            .iter()
            .any(|w| contains_chars(&chars, &w.chars().collect::<Vec<_>>()));

        let app = self.application.align(body, subject);
        let clo = self.closure.align(body, subject);
        let chosen = match (app, clo) {
            (Some(a), Some(c)) => {
                if c.cost < a.cost {
                    Some((&self.closure, c))
                } else {
                    Some((&self.application, a))
                }
            }
            (Some(a), None) => Some((&self.application, a)),
            (None, Some(c)) => Some((&self.closure, c)),
            (None, None) => None,
        };
        match chosen {
            Some((grammar, alignment)) => {
                let mut parsed = grammar.interpret(body, subject, &alignment);
                parsed.reply_or_forward = reply_or_forward;
                parsed.looks_like_question = looks_like_question;
                parsed
            }
            None => {
                let mentions_campaign = self
                    .campaign_words
                    .iter()
                    .any(|w| contains_chars(&chars, w));
                let trimmed = trim_decor(body);
                let revision = revision_suffix_len(trimmed).is_some();
                ParsedSubject {
                    kind: SubjectKind::Other,
                    branch: None,
                    deviations: Vec::new(),
                    reply_or_forward,
                    revision,
                    mentions_campaign,
                    looks_like_question,
                }
            }
        }
    }
}

/// The keyword range that is not shared with the other kind's keyword.
fn distinctive_range(len: usize, lcp: usize, lcs: usize) -> (usize, usize) {
    let lo = lcp.min(len);
    let hi = len.saturating_sub(lcs).max(lo);
    (lo, hi)
}

/// A located keyword inside a subject.
#[derive(Debug, Clone)]
struct Alignment {
    cost: u32,
    /// Body index range covered by the keyword.
    start: usize,
    end: usize,
    /// Keyword indices missing from the subject (ascending).
    deleted: Vec<usize>,
    /// Substitutions and (non-free) insertions.
    edits: usize,
}

impl KindGrammar {
    fn new(kind: SubjectKind, which: &'static str, pattern: &str) -> Result<Self, SubjectError> {
        let (ph_start, ph_end) = find_placeholder(which, pattern)?;
        let before = pattern.get(..ph_start).unwrap_or("").to_string();
        let after = pattern.get(ph_end..).unwrap_or("").to_string();

        // The name is bracketed by the pattern itself, e.g. `…申报【{支部名称}】`.
        let before_t = before.trim_end_matches(textnorm::is_invisible);
        let after_t = after.trim_start_matches(textnorm::is_invisible);
        let (pattern_brackets_name, before_n, after_n) =
            match (before_t.chars().last(), after_t.chars().next()) {
                (Some(o), Some(c)) if closer_of(fold(o)) == Some(fold(c)) => (
                    true,
                    before_t.get(..before_t.len() - o.len_utf8()).unwrap_or(""),
                    after_t.get(c.len_utf8()..).unwrap_or(""),
                ),
                _ => (false, before.as_str(), after.as_str()),
            };

        let before_core = trim_pattern_part(before_n);
        let after_core = trim_pattern_part(after_n);
        let (keyword_raw, name_first, literal_raw, sep_raw) = if !before_core.is_empty() {
            let sep = between(before_n, before_core, true);
            (before_core, false, after_core, sep)
        } else if !after_core.is_empty() {
            let sep = between(after_n, after_core, false);
            (after_core, true, "", sep)
        } else {
            return Err(SubjectError::NoFixedText {
                which,
                pattern: pattern.to_string(),
            });
        };

        // `【对标争先建设项目申报】{支部名称}`: the brackets are part of the configured form.
        let mut keyword_display = keyword_raw.to_string();
        let mut pattern_brackets_keyword = false;
        {
            let k: Vec<char> = keyword_raw.chars().collect();
            if k.len() >= 2
                && let (Some(&o), Some(&c)) = (k.first(), k.last())
                && closer_of(fold(o)) == Some(fold(c))
            {
                pattern_brackets_keyword = true;
                keyword_display = k[1..k.len() - 1].iter().collect();
            }
        }
        let keyword: Vec<char> = textnorm::normalize(&keyword_display)
            .chars()
            .filter(|c| !is_quote(*c))
            .collect();
        if keyword.is_empty() {
            return Err(SubjectError::NoFixedText {
                which,
                pattern: pattern.to_string(),
            });
        }
        let separator: Vec<char> = textnorm::normalize(&sep_raw)
            .chars()
            .filter(|c| is_sep(*c))
            .collect();
        let separator_display = if separator.is_empty() {
            "-".to_string()
        } else {
            sep_raw
                .chars()
                .filter(|c| !textnorm::is_invisible(*c) && open_closer(fold(*c)).is_none())
                .collect()
        };
        let trailing_literal: Vec<char> = textnorm::normalize(literal_raw).chars().collect();
        let len = u32::try_from(keyword.len()).unwrap_or(u32::MAX);
        Ok(KindGrammar {
            kind,
            before,
            after,
            keyword_display,
            keyword,
            name_first,
            trailing_literal,
            separator,
            separator_display,
            pattern_brackets_name,
            pattern_brackets_keyword,
            distinctive: (0, 0),
            max_cost: len.saturating_mul(4) / 10,
        })
    }

    fn subject_for(&self, branch: &str) -> String {
        let mut s = String::with_capacity(self.before.len() + branch.len() + self.after.len());
        s.push_str(&self.before);
        s.push_str(textnorm::trim_invisible(branch));
        s.push_str(&self.after);
        s
    }

    /// Finds the keyword in `body` with a weighted semi-global alignment.
    ///
    /// A keyword character missing from the subject costs 1, an extra or changed character
    /// costs 2, quotes cost nothing (`“对标争先”建设项目` is common). Dropping a word is the usual
    /// mistake and should be cheaper than writing something else. The alignment is accepted
    /// when its cost is at most 40% of the keyword length *and* it keeps at least half of the
    /// part that distinguishes this kind from the other (so `对标争先项目` alone is neither an
    /// application nor a closure).
    fn align(&self, body: &[MappedChar], subject: &str) -> Option<Alignment> {
        let kw = &self.keyword;
        let m = kw.len();
        let n = body.len();
        if m == 0 || n == 0 {
            return None;
        }
        let width = n + 1;
        let mut d = vec![0u32; (m + 1) * width];
        let ins_cost = |c: char| if is_quote(c) { 0 } else { 2 };
        for i in 1..=m {
            d[i * width] = u32::try_from(i).unwrap_or(u32::MAX);
            for j in 1..=n {
                let diag =
                    d[(i - 1) * width + j - 1] + if kw[i - 1] == body[j - 1].ch { 0 } else { 2 };
                let del = d[(i - 1) * width + j] + 1;
                let ins = d[i * width + j - 1] + ins_cost(body[j - 1].ch);
                d[i * width + j] = diag.min(del).min(ins);
            }
        }
        let last = &d[m * width..];
        let best = last.iter().skip(1).copied().min()?;
        if best > self.max_cost {
            return None;
        }
        // Among equally good ends prefer one followed by a boundary (separator, bracket, space,
        // end): `对标争先建设项目申请-X` should end after 请, not after 申.
        // A keyword that runs straight into the following text costs one more, so that
        // `申请-X` is read as a changed word followed by `-X`, not as `申` plus a name `请-X`.
        let effective = |j: usize| last[j] + u32::from(!at_boundary(body, subject, j));
        let best_eff = (1..=n)
            .filter(|&j| last[j] <= self.max_cost)
            .map(effective)
            .min()?;
        let end = (1..=n)
            .filter(|&j| last[j] <= self.max_cost && effective(j) == best_eff)
            .max_by_key(|&j| (at_boundary(body, subject, j), std::cmp::Reverse(j)))?;
        let best = last[end];

        let (mut i, mut j) = (m, end);
        let mut deleted = Vec::new();
        let mut matched = vec![false; m];
        let mut edits = 0usize;
        while i > 0 {
            let here = d[i * width + j];
            if j > 0 && kw[i - 1] == body[j - 1].ch && here == d[(i - 1) * width + j - 1] {
                matched[i - 1] = true;
                i -= 1;
                j -= 1;
            } else if here == d[(i - 1) * width + j] + 1 {
                deleted.push(i - 1);
                i -= 1;
            } else if j > 0 && here == d[i * width + j - 1] + ins_cost(body[j - 1].ch) {
                if ins_cost(body[j - 1].ch) > 0 {
                    edits += 1;
                }
                j -= 1;
            } else if j > 0 {
                edits += 1;
                i -= 1;
                j -= 1;
            } else {
                deleted.push(i - 1);
                i -= 1;
            }
        }
        deleted.reverse();
        let (lo, hi) = self.distinctive;
        let need = (hi - lo).div_ceil(2);
        let kept = matched
            .get(lo..hi)
            .map_or(0, |s| s.iter().filter(|b| **b).count());
        if kept < need || j >= end {
            return None;
        }
        Some(Alignment {
            cost: best,
            start: j,
            end,
            deleted,
            edits,
        })
    }

    /// Turns a located keyword into a [`ParsedSubject`].
    fn interpret(&self, body: &[MappedChar], subject: &str, al: &Alignment) -> ParsedSubject {
        let mut deviations = Vec::new();
        if al.edits > 0 || !is_contiguous(&al.deleted) {
            let written = original(subject, body.get(al.start..al.end).unwrap_or(&[]));
            deviations.push(Deviation::OtherWording {
                written,
                expected: self.keyword_display.clone(),
            });
        } else if !al.deleted.is_empty() {
            let missing: String = al
                .deleted
                .iter()
                .filter_map(|&i| self.keyword.get(i))
                .collect();
            deviations.push(Deviation::MissingWord {
                missing,
                expected: self.keyword_display.clone(),
            });
        }

        let mut pre = body.get(..al.start).unwrap_or(&[]);
        let mut post = body.get(al.end..).unwrap_or(&[]);
        // Quotes hugging the keyword (`“对标争先”…`) are decoration.
        pre = trim_end_by(pre, is_quote);
        post = trim_start_by(post, is_quote);
        // `【对标争先建设项目申报】…`
        let mut keyword_bracketed = false;
        if let (Some(o), Some(c)) = (pre.last(), post.first())
            && closer_of(o.ch) == Some(c.ch)
        {
            keyword_bracketed = true;
            pre = &pre[..pre.len() - 1];
            post = &post[1..];
        }
        if keyword_bracketed && !self.pattern_brackets_keyword {
            deviations.push(Deviation::BracketedKeyword);
        }
        // Byte offsets of the keyword (with its brackets, if any) in the subject.
        let kw_region = body.get(pre.len()..body.len() - post.len()).unwrap_or(&[]);
        let kw_start_byte = kw_region.first().map_or(0, |c| c.start);
        let kw_end_byte = kw_region.last().map_or(subject.len(), |c| c.end);

        if !self.name_first && !self.trailing_literal.is_empty() {
            post = strip_literal_suffix(post, &self.trailing_literal);
        }
        let (primary, secondary) = if self.name_first {
            (pre, post)
        } else {
            (post, pre)
        };
        let p = extract_name(primary);
        let s = extract_name(secondary);
        let revision = p.revision || s.revision;

        let branch = if let Some((lo, hi)) = p.range() {
            let name = primary.get(lo..hi).unwrap_or(&[]);
            if p.bracketed && !self.pattern_brackets_name {
                deviations.push(Deviation::BracketedName);
            }
            // The characters between keyword and name.
            let (lead, gap_from, gap_to) = if self.name_first {
                let lead = primary.get(hi..).unwrap_or(&[]);
                let from = name.last().map_or(kw_start_byte, |c| c.end);
                (lead, from, kw_start_byte)
            } else {
                let lead = primary.get(..lo).unwrap_or(&[]);
                let to = name.first().map_or(kw_end_byte, |c| c.start);
                (lead, kw_end_byte, to)
            };
            let gap_has_space = gap_from <= gap_to
                && subject
                    .get(gap_from..gap_to)
                    .is_some_and(|t| t.chars().any(char::is_whitespace));
            if let Some(dev) = self.separator_deviation(
                lead,
                subject,
                gap_has_space,
                p.bracketed || keyword_bracketed,
            ) {
                deviations.push(dev);
            }
            if s.range().is_some() {
                deviations.push(Deviation::ExtraText {
                    text: original(subject, secondary),
                });
            }
            Some(original(subject, name))
        } else if let Some((lo, hi)) = s.range() {
            deviations.push(Deviation::WrongOrder);
            if s.bracketed && !self.pattern_brackets_name {
                deviations.push(Deviation::BracketedName);
            }
            Some(original(subject, secondary.get(lo..hi).unwrap_or(&[])))
        } else {
            deviations.push(Deviation::MissingBranch);
            None
        };
        let branch = branch.filter(|b| !b.is_empty());

        ParsedSubject {
            kind: self.kind,
            branch,
            deviations,
            reply_or_forward: false,
            revision,
            mentions_campaign: true,
            looks_like_question: false,
        }
    }

    /// Judges the characters between keyword and name against the configured separator.
    ///
    /// Any dash counts as the configured dash; spaces alone are fine (the sample set does not
    /// count spaces); brackets around name or keyword already separate and are reported on
    /// their own.
    fn separator_deviation(
        &self,
        lead: &[MappedChar],
        subject: &str,
        has_space: bool,
        bracketed: bool,
    ) -> Option<Deviation> {
        let mut seps: Vec<&MappedChar> = Vec::new();
        let mut depth = 0usize;
        for c in lead {
            if open_closer(c.ch).is_some() {
                depth += 1;
            } else if is_closer(c.ch) {
                depth = depth.saturating_sub(1);
            } else if depth == 0 && is_sep(c.ch) {
                seps.push(c);
            }
        }
        if seps.is_empty() {
            if has_space || bracketed || self.separator.is_empty() {
                return None;
            }
            return Some(Deviation::MissingSeparator);
        }
        let expected_class: Vec<char> = self.separator.iter().map(|c| sep_class(*c)).collect();
        let all_expected = seps
            .iter()
            .all(|c| expected_class.contains(&sep_class(c.ch)));
        if all_expected {
            return None;
        }
        let expected = self.separator_display.clone();
        if seps.iter().any(|c| c.ch == '_') && !expected_class.contains(&'_') {
            return Some(Deviation::Underscore { expected });
        }
        let mut separator = String::new();
        for c in seps {
            if !expected_class.contains(&sep_class(c.ch)) {
                separator.push_str(subject.get(c.start..c.end).unwrap_or(""));
            }
        }
        Some(Deviation::OtherSeparator {
            separator,
            expected,
        })
    }
}

/// Separator classes: every dash is the same separator.
fn sep_class(c: char) -> char {
    if textnorm::is_dash(c) { '-' } else { c }
}

/// Locates the single placeholder; returns its byte range.
fn find_placeholder(which: &'static str, pattern: &str) -> Result<(usize, usize), SubjectError> {
    let mut found: Option<(usize, usize)> = None;
    let mut iter = pattern.char_indices();
    while let Some((i, c)) = iter.next() {
        if c != '{' && c != '｛' {
            continue;
        }
        let inner_start = i + c.len_utf8();
        let mut close: Option<(usize, usize)> = None;
        for (k, d) in iter.by_ref() {
            if d == '}' || d == '｝' {
                close = Some((k, k + d.len_utf8()));
                break;
            }
        }
        let Some((inner_end, end)) = close else {
            return Err(SubjectError::UnbalancedBrace {
                which,
                pattern: pattern.to_string(),
            });
        };
        let inner = pattern.get(inner_start..inner_end).unwrap_or("");
        let norm = textnorm::normalize(inner);
        if !PLACEHOLDERS.contains(&norm.as_str()) {
            return Err(SubjectError::UnknownPlaceholder {
                which,
                pattern: pattern.to_string(),
                found: inner.to_string(),
            });
        }
        if found.is_some() {
            return Err(SubjectError::MultiplePlaceholders {
                which,
                pattern: pattern.to_string(),
            });
        }
        found = Some((i, end));
    }
    found.ok_or_else(|| SubjectError::MissingPlaceholder {
        which,
        pattern: pattern.to_string(),
    })
}

/// Trims separators and whitespace from a configured pattern part, leaving the keyword.
fn trim_pattern_part(s: &str) -> &str {
    s.trim_matches(|c: char| textnorm::is_invisible(c) || is_sep(fold(c)))
}

/// The text between `core` (a substring of `part`) and the placeholder: after `core` when the
/// part precedes the placeholder, before it otherwise.
fn between(part: &str, core: &str, part_before: bool) -> String {
    let Some(pos) = part.find(core) else {
        return String::new();
    };
    if part_before {
        part.get(pos + core.len()..).unwrap_or("").to_string()
    } else {
        part.get(..pos).unwrap_or("").to_string()
    }
}

/// Folds one character the way [`textnorm::normalize`] does (first char of its normal form).
fn fold(c: char) -> char {
    let mut buf = [0u8; 4];
    textnorm::normalize(c.encode_utf8(&mut buf))
        .chars()
        .next()
        .unwrap_or(c)
}

/// Strips any number of reply/forward prefixes; returns the body start and whether any was found.
fn strip_reply_prefixes(m: &[MappedChar]) -> (usize, bool) {
    let mut pos = 0;
    let mut found = false;
    'outer: loop {
        for p in REPLY_PREFIXES {
            let p: Vec<char> = p.chars().collect();
            if !starts_with_at(m, pos, &p) {
                continue;
            }
            let mut q = pos + p.len();
            // Optional counter: `Re[2]:`, `Re(3):`.
            if let Some(open) = m.get(q).map(|c| c.ch)
                && (open == '[' || open == '(')
            {
                let mut k = q + 1;
                while m.get(k).is_some_and(|c| c.ch.is_ascii_digit()) {
                    k += 1;
                }
                let close = if open == '[' { ']' } else { ')' };
                if k > q + 1 && m.get(k).is_some_and(|c| c.ch == close) {
                    q = k + 1;
                }
            }
            if m.get(q).is_some_and(|c| c.ch == ':') {
                pos = q + 1;
                found = true;
                continue 'outer;
            }
        }
        break;
    }
    (pos, found)
}

fn starts_with_at(m: &[MappedChar], pos: usize, p: &[char]) -> bool {
    m.get(pos..pos + p.len())
        .is_some_and(|s| s.iter().zip(p).all(|(a, b)| a.ch == *b))
}

fn contains_chars(hay: &[char], needle: &[char]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn ends_with_chars(hay: &[MappedChar], needle: &[char]) -> bool {
    hay.len() >= needle.len()
        && hay[hay.len() - needle.len()..]
            .iter()
            .zip(needle)
            .all(|(a, b)| a.ch == *b)
}

fn starts_with_chars(hay: &[MappedChar], needle: &[char]) -> bool {
    starts_with_at(hay, 0, needle)
}

/// True when position `j` of `body` (the char after a keyword ending at `j`) is a boundary.
fn at_boundary(body: &[MappedChar], subject: &str, j: usize) -> bool {
    let Some(next) = body.get(j) else {
        return true;
    };
    if is_sep(next.ch) || is_quote(next.ch) || open_closer(next.ch).is_some() || is_closer(next.ch)
    {
        return true;
    }
    let prev_end = body.get(j.wrapping_sub(1)).map_or(0, |c| c.end);
    prev_end < next.start
        && subject
            .get(prev_end..next.start)
            .is_some_and(|t| t.chars().any(char::is_whitespace))
}

fn is_contiguous(idx: &[usize]) -> bool {
    idx.windows(2).all(|w| w[1] == w[0] + 1)
}

/// The original text covered by `chars`, trimmed of invisible characters.
fn original(subject: &str, chars: &[MappedChar]) -> String {
    match (chars.first(), chars.last()) {
        (Some(a), Some(b)) if a.start <= b.end => {
            textnorm::trim_invisible(subject.get(a.start..b.end).unwrap_or("")).to_string()
        }
        _ => String::new(),
    }
}

/// Quotes, which decorate but never change meaning.
fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '`' | '“' | '”' | '‘' | '’' | '〝' | '〞' | '„' | '‟' | '«' | '»'
    )
}

/// Characters people put between keyword and name (after normalisation).
fn is_sep(c: char) -> bool {
    textnorm::is_dash(c)
        || matches!(
            c,
            '_' | ':'
                | ';'
                | ','
                | '、'
                | '。'
                | '.'
                | '/'
                | '\\'
                | '|'
                | '~'
                | '·'
                | '#'
                | '+'
                | '='
                | '*'
                | '>'
                | '→'
                | '～'
                | '－'
                | '：'
                | '，'
                | '；'
        )
}

/// The closing bracket for an opening bracket (after normalisation).
fn open_closer(c: char) -> Option<char> {
    Some(match c {
        '【' => '】',
        '[' => ']',
        '〔' => '〕',
        '〖' => '〗',
        '「' => '」',
        '『' => '』',
        '《' => '》',
        '〈' => '〉',
        '(' => ')',
        '<' => '>',
        '{' => '}',
        '（' => '）',
        _ => return None,
    })
}

fn closer_of(c: char) -> Option<char> {
    open_closer(c)
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '】' | ']' | '〕' | '〗' | '」' | '』' | '》' | '〉' | ')' | '>' | '}' | '）'
    )
}

/// Index of the bracket closing the opener at `open`, honouring nesting of the same kind.
fn matching_close(s: &[MappedChar], open: usize) -> Option<usize> {
    let o = s.get(open)?.ch;
    let c = open_closer(o)?;
    let mut depth = 0usize;
    for (k, m) in s.iter().enumerate().skip(open) {
        if m.ch == o {
            depth += 1;
        } else if m.ch == c {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

/// Index of the bracket opening the closer at `close`.
fn matching_open(s: &[MappedChar], close: usize) -> Option<usize> {
    let c = s.get(close)?.ch;
    let mut depth = 0usize;
    for k in (0..=close).rev() {
        let ch = s.get(k)?.ch;
        if ch == c {
            depth += 1;
        } else if open_closer(ch) == Some(c) {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

fn is_decor(c: char) -> bool {
    is_quote(c) || is_sep(c)
}

fn trim_start_by(s: &[MappedChar], f: impl Fn(char) -> bool) -> &[MappedChar] {
    let k = s.iter().take_while(|c| f(c.ch)).count();
    &s[k..]
}

fn trim_end_by(s: &[MappedChar], f: impl Fn(char) -> bool) -> &[MappedChar] {
    let k = s.iter().rev().take_while(|c| f(c.ch)).count();
    &s[..s.len() - k]
}

fn trim_decor(s: &[MappedChar]) -> &[MappedChar] {
    trim_end_by(trim_start_by(s, is_decor), is_decor)
}

/// Removes a configured literal after the name (e.g. `-材料` in `…-{支部名称}-材料`).
fn strip_literal_suffix<'a>(s: &'a [MappedChar], literal: &[char]) -> &'a [MappedChar] {
    let t = trim_end_by(s, is_decor);
    if ends_with_chars(t, literal) {
        &t[..t.len() - literal.len()]
    } else {
        s
    }
}

/// Where the name is inside a region, and what decoration surrounded it.
#[derive(Debug, Clone, Copy, Default)]
struct NameExtract {
    lo: usize,
    hi: usize,
    bracketed: bool,
    revision: bool,
}

impl NameExtract {
    fn range(&self) -> Option<(usize, usize)> {
        (self.lo < self.hi).then_some((self.lo, self.hi))
    }
}

/// Peels decoration off a region: separators and quotes at both ends, revision markers,
/// one or more bracket pairs around the whole name, and stray unmatched brackets.
fn extract_name(region: &[MappedChar]) -> NameExtract {
    let mut x = NameExtract {
        lo: 0,
        hi: region.len(),
        ..NameExtract::default()
    };
    loop {
        while x.lo < x.hi && is_decor(region[x.lo].ch) {
            x.lo += 1;
        }
        while x.hi > x.lo && is_decor(region[x.hi - 1].ch) {
            x.hi -= 1;
        }
        let s = &region[x.lo..x.hi];
        if s.is_empty() {
            break;
        }
        if let Some(n) = revision_suffix_len(s) {
            x.hi -= n;
            x.revision = true;
            continue;
        }
        if let Some(n) = revision_prefix_len(s) {
            x.lo += n;
            x.revision = true;
            continue;
        }
        if open_closer(s[0].ch).is_some() {
            match matching_close(s, 0) {
                Some(k) if k + 1 == s.len() => {
                    x.lo += 1;
                    x.hi -= 1;
                    x.bracketed = true;
                    continue;
                }
                None => {
                    x.lo += 1;
                    continue;
                }
                Some(_) => {}
            }
        }
        let last = s.len() - 1;
        if is_closer(s[last].ch) && matching_open(s, last).is_none() {
            x.hi -= 1;
            continue;
        }
        break;
    }
    x
}

/// Length of a revision marker at the end of `s` (`（修改版）`, `修改稿`, `v2`, `第二版` …).
fn revision_suffix_len(s: &[MappedChar]) -> Option<usize> {
    let last = s.len().checked_sub(1)?;
    if is_closer(s[last].ch) {
        let open = matching_open(s, last)?;
        let inner = &s[open + 1..last];
        return is_revision_text(inner).then_some(s.len() - open);
    }
    for w in REVISION_STRONG {
        let w: Vec<char> = w.chars().collect();
        if ends_with_chars(s, &w) {
            return Some(w.len());
        }
    }
    version_suffix_len(s)
}

/// Length of a revision marker at the start of `s`: bracketed, or a strong word followed by
/// decoration (`修改版-…`).
fn revision_prefix_len(s: &[MappedChar]) -> Option<usize> {
    let first = s.first()?;
    if open_closer(first.ch).is_some() {
        let close = matching_close(s, 0)?;
        let inner = &s[1..close];
        return is_revision_text(inner).then_some(close + 1);
    }
    for w in REVISION_STRONG {
        let w: Vec<char> = w.chars().collect();
        if starts_with_chars(s, &w)
            && s.get(w.len())
                .is_some_and(|c| is_decor(c.ch) || open_closer(c.ch).is_some() || is_closer(c.ch))
        {
            return Some(w.len());
        }
    }
    None
}

/// `v2`, `v1.1`, `第二版`, `第3稿` at the end of `s`.
fn version_suffix_len(s: &[MappedChar]) -> Option<usize> {
    let chars: Vec<char> = s.iter().map(|c| c.ch).collect();
    let n = chars.len();
    // v + digits (+ .digits)
    let mut k = n;
    while k > 0 && (chars[k - 1].is_ascii_digit() || chars[k - 1] == '.') {
        k -= 1;
    }
    if k < n
        && k > 0
        && chars[k - 1] == 'v'
        && chars.get(k).is_some_and(char::is_ascii_digit)
        && (k == 1 || !chars[k - 2].is_ascii_alphanumeric())
    {
        return Some(n - (k - 1));
    }
    // 第 X 版/稿
    if n >= 3 && matches!(chars[n - 1], '版' | '稿') {
        let mut k = n - 1;
        while k > 0 && is_numeral(chars[k - 1]) {
            k -= 1;
        }
        if k < n - 1 && k > 0 && chars[k - 1] == '第' {
            return Some(n - (k - 1));
        }
    }
    None
}

fn is_numeral(c: char) -> bool {
    c.is_ascii_digit() || "一二三四五六七八九十两".contains(c)
}

/// Whether bracketed text is a revision note rather than part of a name.
fn is_revision_text(inner: &[MappedChar]) -> bool {
    if inner.is_empty() || inner.len() > 16 {
        return false;
    }
    let chars: Vec<char> = inner.iter().map(|c| c.ch).collect();
    if contains_chars(&chars, &['支', '部']) {
        return false;
    }
    let has_word = REVISION_STRONG
        .iter()
        .chain(REVISION_WEAK)
        .any(|w| contains_chars(&chars, &w.chars().collect::<Vec<_>>()));
    if has_word {
        return true;
    }
    let t = trim_decor(inner);
    version_suffix_len(t).is_some_and(|n| n == t.len())
        || (t.len() >= 2 && t[0].ch == 'v' && t[1].ch.is_ascii_digit())
}

/// Renders a parsed subject for logs: `application 支部=… 偏差=missing_word,underscore`.
impl std::fmt::Display for ParsedSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            SubjectKind::Application => "application",
            SubjectKind::Closure => "closure",
            SubjectKind::Other => "other",
        };
        let mut codes = String::new();
        for (i, d) in self.deviations.iter().enumerate() {
            if i > 0 {
                codes.push(',');
            }
            codes.push_str(d.code());
        }
        let mut s = String::new();
        let _ = write!(s, "{kind}");
        if let Some(b) = &self.branch {
            let _ = write!(s, " 支部={b}");
        }
        if !codes.is_empty() {
            let _ = write!(s, " 偏差={codes}");
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "对标争先建设项目申报-{支部名称}";
    const CLO: &str = "对标争先建设项目结项-{支部名称}";

    fn g() -> SubjectGrammar {
        SubjectGrammar::new(APP, CLO).expect("sample patterns are valid")
    }

    /// (subject, kind, branch, deviation codes, reply, revision)
    type Row = (
        &'static str,
        SubjectKind,
        Option<&'static str>,
        &'static [&'static str],
        bool,
        bool,
    );

    use SubjectKind::{Application as A, Closure as C, Other as O};

    fn check(rows: &[Row]) {
        let g = g();
        for (subject, kind, branch, codes, reply, revision) in rows {
            let p = g.parse(subject);
            let got: Vec<&str> = p.deviations.iter().map(|d| d.code()).collect();
            assert_eq!(p.kind, *kind, "kind of {subject:?}: {p:?}");
            assert_eq!(p.branch.as_deref(), *branch, "branch of {subject:?}: {p:?}");
            assert_eq!(&got[..], *codes, "deviations of {subject:?}: {p:?}");
            assert_eq!(p.reply_or_forward, *reply, "reply of {subject:?}");
            assert_eq!(p.revision, *revision, "revision of {subject:?}");
        }
    }

    /// One `#[test]` per row: `table! { group { case_01: (subject, kind, branch, codes, reply,
    /// revision), … } }` becomes `group::case_01` …, so a failing row is named on its own.
    macro_rules! table {
        ($group:ident { $($case:ident: $row:expr,)* }) => {
            mod $group {
                use super::*;
                $(
                    #[test]
                    fn $case() {
                        check(&[$row]);
                    }
                )*
            }
        };
    }

    const X: &str = "经济与管理学院本科生第一党支部";

    table! {
        the_twelve_sample_subjects {
            case_01: ("对标争先建设项目申报-汽车工程学院本科生第二党支部", A, Some("汽车工程学院本科生第二党支部"), &[], false, false),
            case_02: ("对标争先建设项目申报-设计创意学院2024级博士生党支部", A, Some("设计创意学院2024级博士生党支部"), &[], false, false),
            case_03: ("对标争先建设项目申报-电子与信息工程学院2023级博士生党支部", A, Some("电子与信息工程学院2023级博士生党支部"), &[], false, false),
            case_04: ("对标争先建设项目申报-汽车工程学院本科生第四党支部", A, Some("汽车工程学院本科生第四党支部"), &[], false, false),
            case_05: ("对标争先建设项目申报-电子与信息工程学院硕士研究生第四党支部", A, Some("电子与信息工程学院硕士研究生第四党支部"), &[], false, false),
            case_06: ("对标争先建设项目申报-生命科学与技术学院生态学本科生党支部", A, Some("生命科学与技术学院生态学本科生党支部"), &[], false, false),
            case_07: ("对标争先建设项目申报-经济与管理学院2023级博士生党支部", A, Some("经济与管理学院2023级博士生党支部"), &[], false, false),
            case_08: ("对标争先建设项目申报-海洋与地球科学学院海洋科学硕士生党支部", A, Some("海洋与地球科学学院海洋科学硕士生党支部"), &[], false, false),
            case_09: ("自动回复: 对标争先建设项目申报-海洋与地球科学学院海洋科学硕士生党支部", A, Some("海洋与地球科学学院海洋科学硕士生党支部"), &["extra_text"], false, false),
            case_10: ("对标争先建设项目申报－海洋与地球科学学院2022级本科生党支部", A, Some("海洋与地球科学学院2022级本科生党支部"), &[], false, false),
            case_11: ("对标争先建设项目申报-海洋与地球科学学院地质学硕士生党支部", A, Some("海洋与地球科学学院地质学硕士生党支部"), &[], false, false),
            case_12: ("对标争先建设项目申报－设计创意学院本科生第三党支部", A, Some("设计创意学院本科生第三党支部"), &[], false, false),
        }
    }

    table! {
        reply_and_forward_chains_are_not_deviations {
            case_01: ("Re: 对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_02: ("RE: re: Fwd: 对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_03: ("回复: 对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_04: ("回复：对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_05: ("转发: 回复：Re:对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_06: ("FW: 对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_07: ("答复: 对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_08: ("Ｒｅ：对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_09: ("Re[2]: 对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
            case_10: ("fwd:fw:re:对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], true, false),
        }
    }

    table! {
        dashes_and_spaces_are_not_deviations {
            case_01: ("对标争先建设项目申报－经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_02: ("对标争先建设项目申报—经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_03: ("对标争先建设项目申报——经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_04: ("对标争先建设项目申报–经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_05: ("对标争先建设项目申报―经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_06: ("对标争先建设项目申报 - 经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_07: ("对标争先 建设项目 申报 - 经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_08: ("  对标争先建设项目申报-经济与管理学院本科生第一党支部  ", A, Some(X), &[], false, false),
            case_09: ("对标争先建设项目申报\u{3000}－\u{3000}经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_10: ("对标争先建设项目申报 经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_11: ("对标争先建设项目申报-经济与管理学院 本科生第一党支部", A, Some("经济与管理学院 本科生第一党支部"), &[], false, false),
        }
    }

    table! {
        full_width_letters_and_digits_are_kept_as_written {
            case_01: ("对标争先建设项目申报-设计创意学院２０２４级博士生党支部", A, Some("设计创意学院２０２４级博士生党支部"), &[], false, false),
            case_02: ("ＲＥ：对标争先建设项目申报－设计创意学院2024级博士生党支部", A, Some("设计创意学院2024级博士生党支部"), &[], true, false),
        }
    }

    table! {
        revision_markers_are_not_deviations {
            case_01: ("对标争先建设项目申报-经济与管理学院本科生第一党支部（修改版）", A, Some(X), &[], false, true),
            case_02: ("对标争先建设项目申报-经济与管理学院本科生第一党支部(修改版)", A, Some(X), &[], false, true),
            case_03: ("对标争先建设项目申报-经济与管理学院本科生第一党支部（更正）", A, Some(X), &[], false, true),
            case_04: ("对标争先建设项目申报-经济与管理学院本科生第一党支部(更正)", A, Some(X), &[], false, true),
            case_05: ("对标争先建设项目申报-经济与管理学院本科生第一党支部（补交）", A, Some(X), &[], false, true),
            case_06: ("对标争先建设项目申报-经济与管理学院本科生第一党支部 修改稿", A, Some(X), &[], false, true),
            case_07: ("对标争先建设项目申报-经济与管理学院本科生第一党支部【修改版】", A, Some(X), &[], false, true),
            case_08: ("对标争先建设项目申报-经济与管理学院本科生第一党支部-v2", A, Some(X), &[], false, true),
            case_09: ("对标争先建设项目申报-经济与管理学院本科生第一党支部（第二版）", A, Some(X), &[], false, true),
            case_10: ("对标争先建设项目申报-经济与管理学院本科生第一党支部（以此为准）", A, Some(X), &[], false, true),
            case_11: ("（更正）对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], false, true),
            case_12: ("Re: 对标争先建设项目申报-经济与管理学院本科生第一党支部（修改版）（更正）", A, Some(X), &[], true, true),
        }
    }

    table! {
        missing_word_is_a_deviation {
            case_01: ("对标争先项目申报-经济与管理学院本科生第一党支部", A, Some(X), &["missing_word"], false, false),
            case_02: ("对标争先项目申报－经济与管理学院本科生第一党支部", A, Some(X), &["missing_word"], false, false),
            case_03: ("对标争先建设申报-经济与管理学院本科生第一党支部", A, Some(X), &["missing_word"], false, false),
            case_04: ("对标争先申报-经济与管理学院本科生第一党支部", A, Some(X), &["missing_word"], false, false),
            case_05: ("对标争先项目结项-经济与管理学院本科生第一党支部", C, Some(X), &["missing_word"], false, false),
        }
    }

    table! {
        changed_words_are_other_wording {
            case_01: ("对标争先建设项目申请-经济与管理学院本科生第一党支部", A, Some(X), &["other_wording"], false, false),
            case_02: ("对标争先项目申请-经济与管理学院本科生第一党支部", A, Some(X), &["other_wording"], false, false),
            case_03: ("对标争先建设项目结题-经济与管理学院本科生第一党支部", C, Some(X), &["other_wording"], false, false),
        }
    }

    table! {
        quotes_around_the_campaign_name_are_fine {
            case_01: ("“对标争先”建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_02: ("\"对标争先\"建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &[], false, false),
            case_03: ("对标争先建设项目申报-“经济与管理学院本科生第一党支部”", A, Some(X), &[], false, false),
        }
    }

    table! {
        separators_other_than_a_dash_are_deviations {
            case_01: ("对标争先建设项目申报_经济与管理学院本科生第一党支部", A, Some(X), &["underscore"], false, false),
            case_02: ("对标争先建设项目申报＿经济与管理学院本科生第一党支部", A, Some(X), &["underscore"], false, false),
            case_03: ("对标争先建设项目申报：经济与管理学院本科生第一党支部", A, Some(X), &["other_separator"], false, false),
            case_04: ("对标争先建设项目申报:经济与管理学院本科生第一党支部", A, Some(X), &["other_separator"], false, false),
            case_05: ("对标争先建设项目申报/经济与管理学院本科生第一党支部", A, Some(X), &["other_separator"], false, false),
            case_06: ("对标争先建设项目申报经济与管理学院本科生第一党支部", A, Some(X), &["missing_separator"], false, false),
            case_07: ("对标争先项目申报_经济与管理学院本科生第一党支部", A, Some(X), &["missing_word", "underscore"], false, false),
        }
    }

    table! {
        brackets_around_name_or_keyword {
            case_01: ("对标争先建设项目申报-【经济与管理学院本科生第一党支部】", A, Some(X), &["bracketed_name"], false, false),
            case_02: ("对标争先建设项目申报【经济与管理学院本科生第一党支部】", A, Some(X), &["bracketed_name"], false, false),
            case_03: ("【对标争先建设项目申报】经济与管理学院本科生第一党支部", A, Some(X), &["bracketed_keyword"], false, false),
            case_04: ("【对标争先建设项目申报】-经济与管理学院本科生第一党支部", A, Some(X), &["bracketed_keyword"], false, false),
            case_05: ("[对标争先建设项目申报] 经济与管理学院本科生第一党支部", A, Some(X), &["bracketed_keyword"], false, false),
            case_06: ("对标争先建设项目申报-【经济与管理学院本科生第一党支部】（修改版）", A, Some(X), &["bracketed_name"], false, true),
            case_07: ("Re: 【对标争先项目申报】经济与管理学院本科生第一党支部", A, Some(X), &["missing_word", "bracketed_keyword"], true, false),
        }
    }

    table! {
        order_extra_text_and_missing_name {
            case_01: ("经济与管理学院本科生第一党支部-对标争先建设项目申报", A, Some(X), &["wrong_order"], false, false),
            case_02: ("[外部邮件] 对标争先建设项目申报-经济与管理学院本科生第一党支部", A, Some(X), &["extra_text"], false, false),
            case_03: ("对标争先建设项目申报", A, None, &["missing_branch"], false, false),
            case_04: ("对标争先建设项目申报-", A, None, &["missing_branch"], false, false),
            case_05: ("Re: 对标争先建设项目申报（修改版）", A, None, &["missing_branch"], true, true),
        }
    }

    table! {
        closures_are_closures {
            case_01: ("对标争先建设项目结项-经济与管理学院本科生第一党支部", C, Some(X), &[], false, false),
            case_02: ("Re: 对标争先建设项目结项－经济与管理学院本科生第一党支部", C, Some(X), &[], true, false),
            case_03: ("对标争先建设项目结项_经济与管理学院本科生第一党支部（补交）", C, Some(X), &["underscore"], false, true),
        }
    }

    #[test]
    fn missing_word_is_a_deviation_details() {
        let p = g().parse("对标争先项目申报-X党支部");
        assert_eq!(
            p.deviations,
            vec![Deviation::MissingWord {
                missing: "建设".into(),
                expected: "对标争先建设项目申报".into()
            }]
        );
    }

    #[test]
    fn changed_words_are_other_wording_details() {
        let p = g().parse("对标争先建设项目申请-X党支部");
        assert_eq!(
            p.deviations,
            vec![Deviation::OtherWording {
                written: "对标争先建设项目申请".into(),
                expected: "对标争先建设项目申报".into()
            }]
        );
    }

    #[test]
    fn separators_other_than_a_dash_are_deviations_details() {
        let p = g().parse("对标争先建设项目申报：X党支部");
        assert_eq!(
            p.deviations,
            vec![Deviation::OtherSeparator {
                separator: "：".into(),
                expected: "-".into()
            }]
        );
    }

    #[test]
    fn order_extra_text_and_missing_name_details() {
        let p = g().parse("[外部邮件] 对标争先建设项目申报-X党支部");
        assert_eq!(
            p.deviations,
            vec![Deviation::ExtraText {
                text: "[外部邮件]".into()
            }]
        );
    }

    #[test]
    fn unrelated_and_related_others() {
        let g = g();
        let cases = [
            ("关于对标争先项目的咨询", true, true),
            ("Hello", false, false),
            ("", false, false),
            (
                "对标争先建设项目-经济与管理学院本科生第一党支部",
                true,
                false,
            ),
            ("关于申报材料的问题", true, true),
            ("会议通知", false, false),
            ("Re:", false, false),
            ("回复：", false, false),
            ("【】", false, false),
            ("-", false, false),
        ];
        for (subject, mentions, question) in cases {
            let p = g.parse(subject);
            assert_eq!(p.kind, O, "{subject:?}: {p:?}");
            assert_eq!(p.branch, None, "{subject:?}");
            assert!(p.deviations.is_empty(), "{subject:?}");
            assert_eq!(p.mentions_campaign, mentions, "mentions of {subject:?}");
            assert_eq!(p.looks_like_question, question, "question of {subject:?}");
        }
        assert!(g.parse("Re: Re: 你好").reply_or_forward);
    }

    #[test]
    fn questions_that_parse_are_flagged() {
        let p = g().parse("对标争先项目申报咨询");
        assert_eq!(p.kind, A);
        assert!(p.looks_like_question);
        let p = g().parse("对标争先建设项目申报-经济与管理学院本科生第一党支部");
        assert!(!p.looks_like_question);
        assert!(p.mentions_campaign);
    }

    #[test]
    fn auto_reply_prefix_is_not_a_reply_prefix() {
        let p = g().parse("自动回复: 对标争先建设项目申报-X党支部");
        assert_eq!(p.kind, A);
        assert!(!p.reply_or_forward);
        assert_eq!(p.branch.as_deref(), Some("X党支部"));
        let p = g().parse("[自动回复]对标争先建设项目申报-X党支部");
        assert_eq!(p.kind, A);
        assert_eq!(p.branch.as_deref(), Some("X党支部"));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let g = g();
        let long = format!(
            "Re: 对标争先建设项目申报-{}",
            "经济与管理学院本科生第一党支部".repeat(500)
        );
        let p = g.parse(&long);
        assert_eq!(p.kind, A);
        assert!(p.branch.is_some());
        for s in [
            "【【【【",
            "】】】】",
            "((((修改版",
            "修改版)))",
            "对标争先建设项目申报-【",
            "对标争先建设项目申报-】",
            "对标争先建设项目申报-（）",
            "对标争先建设项目申报-（修改版",
            "\u{200B}\u{FEFF}",
            "e\u{301}\u{301}\u{301}",
            "Re[",
            "Re[99999999999999999999]:x",
            "v",
            "第版",
            "对标争先建设项目申报-第二版",
            "\u{0}\u{1}\u{7f}",
            "对标争先建设项目申报申报申报申报",
        ] {
            let _ = g.parse(s);
        }
        let mut weird = String::new();
        for c in [
            '对', '【', '-', '）', '（', 'v', '2', '_', ' ', '申', '报', 'é', '\u{301}',
        ] {
            weird.push(c);
            let _ = g.parse(&weird);
            let _ = g.parse(&weird.chars().rev().collect::<String>());
        }
    }

    #[test]
    fn very_long_unrelated_subject_is_other() {
        let p = g().parse(&"会".repeat(20_000));
        assert_eq!(p.kind, O);
        assert!(!p.mentions_campaign);
    }

    #[test]
    fn standard_subject_round_trips() {
        let g = g();
        let s = g.application_subject_for(X);
        assert_eq!(s, "对标争先建设项目申报-经济与管理学院本科生第一党支部");
        let p = g.parse(&s);
        assert_eq!(
            (p.kind, p.branch.as_deref(), p.is_standard()),
            (A, Some(X), true)
        );
        let s = g.closure_subject_for(X);
        assert_eq!(s, "对标争先建设项目结项-经济与管理学院本科生第一党支部");
        assert_eq!(g.parse(&s).kind, C);
        assert_eq!(g.application_keyword(), "对标争先建设项目申报");
    }

    #[test]
    fn pattern_errors_say_what_to_fix() {
        let cases: [(&str, &str, &str); 6] = [
            ("对标争先建设项目申报", CLO, "占位符"),
            ("对标争先建设项目申报-{name}", CLO, "{name}"),
            ("{支部名称}-{支部名称}", CLO, "不止一个"),
            ("对标争先建设项目申报-{支部名称", CLO, "配对"),
            (" - {支部名称}", CLO, "固定文字"),
            (
                "对标争先建设项目申报-{支部名称}",
                "对标争先建设项目申报—{branch}",
                "相同",
            ),
        ];
        for (a, c, needle) in cases {
            match SubjectGrammar::new(a, c) {
                Ok(_) => panic!("{a:?} / {c:?} should be rejected"),
                Err(e) => assert!(e.to_string().contains(needle), "{e}"),
            }
        }
    }

    #[test]
    fn other_patterns_work_generically() {
        // English placeholder, a different campaign, name-first order.
        let g = SubjectGrammar::new("红色引擎工程申报_{branch}", "红色引擎工程结项_{branch}")
            .expect("valid");
        let p = g.parse("红色引擎工程申报_某某党支部");
        assert_eq!(
            (p.kind, p.branch.as_deref(), p.deviations.len()),
            (A, Some("某某党支部"), 0)
        );
        let p = g.parse("红色引擎工程申报-某某党支部");
        assert_eq!(p.deviations[0].code(), "other_separator");
        let p = g.parse("红色工程申报_某某党支部");
        assert_eq!(p.deviations[0].code(), "missing_word");

        let g = SubjectGrammar::new(
            "{支部名称}-对标争先建设项目申报",
            "{支部名称}-对标争先建设项目结项",
        )
        .expect("valid");
        let p = g.parse("某某党支部-对标争先建设项目申报");
        assert_eq!(
            (p.kind, p.branch.as_deref(), p.deviations.len()),
            (A, Some("某某党支部"), 0)
        );
        let p = g.parse("对标争先建设项目结项-某某党支部");
        assert_eq!((p.kind, p.branch.as_deref()), (C, Some("某某党支部")));
        assert_eq!(p.deviations[0].code(), "wrong_order");
        assert_eq!(g.application_subject_for("甲"), "甲-对标争先建设项目申报");

        let g = SubjectGrammar::new("【对标争先建设项目申报】{支部名称}", CLO).expect("valid");
        let p = g.parse("【对标争先建设项目申报】某某党支部");
        assert!(p.is_standard(), "{p:?}");

        let g = SubjectGrammar::new("对标争先建设项目申报【{支部名称}】", CLO).expect("valid");
        assert_eq!(g.application_keyword(), "对标争先建设项目申报");
        let p = g.parse("对标争先建设项目申报【某某党支部】");
        assert_eq!(
            (p.branch.as_deref(), p.is_standard()),
            (Some("某某党支部"), true),
            "{p:?}"
        );
        let p = g.parse("对标争先建设项目申报-某某党支部");
        assert_eq!(p.branch.as_deref(), Some("某某党支部"));
    }

    #[test]
    fn describe_zh_and_codes_are_distinct() {
        let all = [
            Deviation::MissingWord {
                missing: "建设".into(),
                expected: "对标争先建设项目申报".into(),
            },
            Deviation::OtherWording {
                written: "a".into(),
                expected: "b".into(),
            },
            Deviation::Underscore {
                expected: "-".into(),
            },
            Deviation::OtherSeparator {
                separator: "：".into(),
                expected: "-".into(),
            },
            Deviation::MissingSeparator,
            Deviation::BracketedName,
            Deviation::BracketedKeyword,
            Deviation::ExtraText { text: "x".into() },
            Deviation::WrongOrder,
            Deviation::MissingBranch,
        ];
        let mut codes: Vec<&str> = all.iter().map(|d| d.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(all[0].describe_zh().contains("建设"));
        assert!(all.iter().all(|d| !d.describe_zh().is_empty()));
    }

    #[test]
    fn display_is_compact() {
        let p = g().parse("对标争先项目申报_X党支部");
        assert_eq!(
            p.to_string(),
            "application 支部=X党支部 偏差=missing_word,underscore"
        );
    }
}
