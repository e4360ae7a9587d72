//! The reminder and digest mails: what they say, not when they go out (that is
//! [`crate::schedule`]) nor who gets them (the audiences, evaluated against the database).
//!
//! Pure: no clock, no database, no network. The caller gathers the facts into a
//! [`ReminderView`] or [`DigestView`] — already formatted for people (Beijing time, "3 天",
//! "4000 元") — and this module turns them into subjects and bodies with the templates in
//! `config/templates/`. Keeping the views plain data is what lets `remind --dry-run` and
//! `digest --dry-run` print exactly what the daemon later sends, and lets staff edit the
//! wording without touching code: every field of a view is available to the templates.
//!
//! Mail assembly is in [`crate::notify::compose`]: reminders go through [`crate::notify::compose::build`] with
//! `auto_submitted: "auto-generated"` (threaded to the branch's last exchange where there is
//! one); digests through [`crate::notify::compose::build_rich`] with the HTML alternative and the
//! 汇总表 attached.

use crate::campaign::rules::Problem;
use crate::notify::compose::{ComposeError, Templates};
use chrono::NaiveDate;
use serde::Serialize;

/// The built-in reminder template; a `[[reminder]]` rule may name another one.
pub const REMINDER_TEMPLATE: &str = "reminder.txt.j2";
/// The digest's plain-text body.
pub const DIGEST_TEXT_TEMPLATE: &str = "digest.txt.j2";
/// The digest's HTML alternative. Its name ends in `.html.j2`, which is what makes minijinja
/// HTML-escape every value in it (branch names and subjects come from strangers' mail).
pub const DIGEST_HTML_TEMPLATE: &str = "digest.html.j2";

/// One problem of a branch's latest version, explained for the branch.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemLine {
    /// The stable code (`budget_over_cap` …), for templates that want to single one out.
    pub code: String,
    /// What is wrong, in one Chinese line.
    pub title: String,
    /// What to do about it.
    pub fix: String,
    /// What exactly was found (“申请 6000 元，上限 5000 元”), when it helps.
    pub detail: Option<String>,
}

impl ProblemLine {
    /// The line for a stored problem code, with the wording of [`Problem`], so a reminder
    /// explains a problem exactly as the acknowledgement did. A code this build does not know
    /// (a database written by a newer version) is shown as itself rather than dropped: the
    /// branch still learns that something is open and can ask.
    pub fn from_code(code: &str, detail: Option<String>) -> ProblemLine {
        match Problem::from_code(code) {
            Some(p) => ProblemLine {
                code: code.to_string(),
                title: p.title_zh().to_string(),
                fix: p.fix_zh().to_string(),
                detail,
            },
            None => ProblemLine {
                code: code.to_string(),
                title: code.to_string(),
                fix: "请回复本邮件询问工作人员。".to_string(),
                detail,
            },
        }
    }
}

/// The Chinese title of a stored problem code, for the digest's problem columns.
pub fn problem_title(code: &str) -> String {
    Problem::from_code(code)
        .map(|p| p.title_zh().to_string())
        .unwrap_or_else(|| code.to_string())
}

/// The attachments the notice asks for, in the notice's words; the usual value of
/// [`ReminderView::expected_attachments`].
pub fn default_expected_attachments() -> Vec<String> {
    vec![
        "Word 版《项目申请表》（.doc 或 .docx）".to_string(),
        "Excel 版《申报汇总表》（.xls 或 .xlsx）".to_string(),
    ]
}

/// Everything a reminder says to one branch.
#[derive(Debug, Clone, Serialize)]
pub struct ReminderView {
    /// `张晓明同学`, or the branch name when the roster has no secretary (`您好` as a last resort).
    pub greeting: String,
    pub organizer: String,
    pub campaign_name: String,
    pub branch: String,
    pub college: String,
    /// Beijing time for people: `2025年9月27日 23:59:59`.
    pub deadline: String,
    /// `3 天`, `6 小时`: from the real time left at sending (see `remind::time_left`), not
    /// from the rule's offset, so a reminder caught up after downtime does not overstate it.
    pub time_left: String,
    /// The subject the branch should use.
    pub exact_subject: String,
    /// See [`default_expected_attachments`].
    pub expected_attachments: Vec<String>,
    /// Empty for audience `not_submitted`; the latest version's problems for `has_problems`.
    pub problems: Vec<ProblemLine>,
    /// The branch's latest version number, when it has one.
    pub last_version: Option<i64>,
    /// When that version arrived, Beijing time.
    pub last_received_at: Option<String>,
    pub staff_contact: String,
}

/// One submission in a digest table.
#[derive(Debug, Clone, Serialize)]
pub struct DigestRow {
    pub branch: String,
    pub college: String,
    pub project_name: String,
    pub section: String,
    /// For people: `4000 元`; empty when not read.
    pub budget: String,
    pub version: i64,
    /// Beijing time.
    pub received_at: String,
    pub late: bool,
    /// Chinese titles ([`problem_title`]).
    pub problems: Vec<String>,
}

/// A named count (applications per section).
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub name: String,
    pub count: i64,
}

/// One college's progress: branches on the roster, how many applied, how many of those are clean.
#[derive(Debug, Clone, Serialize)]
pub struct CollegeLine {
    pub college: String,
    pub roster: i64,
    pub applied: i64,
    pub clean: i64,
}

/// A roster branch without an application.
#[derive(Debug, Clone, Serialize)]
pub struct MissingBranch {
    pub college: String,
    pub branch: String,
    /// Empty when the roster has none.
    pub secretary: String,
}

/// A received mail that waits for a person (question, unrecognised subject, unreadable file).
#[derive(Debug, Clone, Serialize)]
pub struct StaffItem {
    pub id: i64,
    pub from: String,
    pub subject: String,
    pub reason: String,
    pub received_at: String,
    /// The branch it concerns, when known.
    pub branch: Option<String>,
    /// An unrecognised application whose form names this roster branch (`shenbao assign ID`).
    pub suggested_branch: Option<String>,
    /// A reply: the subject of our mail it answers.
    pub thread_subject: Option<String>,
}

/// A mail from a person that got no automatic answer, and why.
#[derive(Debug, Clone, Serialize)]
pub struct UnansweredItem {
    pub id: i64,
    pub from: String,
    pub subject: String,
    pub branch: Option<String>,
    pub why: String,
    pub received_at: String,
}

/// A version from an address that is neither the roster's nor an earlier sender's.
#[derive(Debug, Clone, Serialize)]
pub struct SenderChangeItem {
    pub branch: String,
    /// `申报` or `结项`.
    pub kind_label: String,
    pub version: i64,
    pub sender: String,
    pub received_at: String,
}

/// A mail of ours that did not go out.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxFailure {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub error: String,
    pub status: String,
}

/// Everything a digest says. Sections a `[[digest]]` rule leaves out are passed empty; the
/// templates skip empty sections but always show the totals.
/// A template that failed at run time (see `compose::Templates::render_or_builtin`).
#[derive(Debug, Clone, Serialize)]
pub struct TemplateErrorItem {
    /// Beijing time.
    pub at: String,
    pub template: String,
    /// In Chinese, with the file, the line and the unknown name.
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestView {
    pub campaign_name: String,
    pub organizer: String,
    /// The `[[digest]]` rule's name (for templates that want it; not shown by the built-ins).
    pub rule: String,
    /// Beijing time; `None` for the first digest of a rule (“截至 …”).
    pub period_start: Option<String>,
    pub period_end: String,
    pub deadline: String,
    /// `申报阶段（距截止还有 3 天）`.
    pub phase: String,
    pub roster_total: i64,
    pub applied: i64,
    pub clean: i64,
    pub with_problems_count: i64,
    pub missing_count: i64,
    pub late_count: i64,
    /// Arrived in (period_start, period_end].
    pub new_since: Vec<DigestRow>,
    pub by_section: Vec<Count>,
    pub by_college: Vec<CollegeLine>,
    pub with_problems: Vec<DigestRow>,
    /// In roster order; the templates group it by college in order of first appearance.
    pub missing: Vec<MissingBranch>,
    pub late: Vec<DigestRow>,
    pub needs_staff: Vec<StaffItem>,
    /// Mail from people in the period that got no automatic answer, with the reason.
    pub unanswered: Vec<UnansweredItem>,
    /// Versions in the period from an unfamiliar address (发件人变更).
    pub sender_changes: Vec<SenderChangeItem>,
    pub outbox_failures: Vec<OutboxFailure>,
    /// The sending caps hold mail back: when it will all have gone, and which deadline
    /// reminders would be late ([`crate::send::Forecast`]).
    pub sending: Option<String>,
    /// Templates that failed in the period (the mails went out with the built-in ones).
    pub template_errors: Vec<TemplateErrorItem>,
    /// `申报汇总表-2025-09-22.xlsx`; empty when nothing is attached (the note is then left out).
    pub attachment_name: String,
}

impl DigestView {
    /// Nothing new since the last digest and nothing waiting for a person: no new submissions,
    /// no mail needing staff, no failed sends. Totals, problems and missing branches do not
    /// count — they are the same as yesterday's, and repeating them daily is exactly the noise
    /// that makes people stop reading digests. Such a digest is skipped unless the rule asks
    /// for `send_when_empty`.
    pub fn is_empty(&self) -> bool {
        self.new_since.is_empty()
            && self.needs_staff.is_empty()
            && self.unanswered.is_empty()
            && self.outbox_failures.is_empty()
            && self.template_errors.is_empty()
    }
}

/// The two bodies of a digest.
#[derive(Debug, Clone)]
pub struct DigestBodies {
    pub text: String,
    pub html: String,
    /// Templates that failed and were replaced by the built-in ones: (template, error).
    pub template_errors: Vec<(String, String)>,
}

/// Renders a reminder with `template` (normally [`REMINDER_TEMPLATE`]); a failing template
/// falls back to the built-in `fallback` and its error is returned beside the text.
pub fn render_reminder(
    templates: &Templates,
    template: &str,
    fallback: &str,
    view: &ReminderView,
) -> Result<(String, Option<String>), ComposeError> {
    templates.render_or(template, fallback, view)
}

/// Renders both bodies of a digest from the same view, so they cannot disagree.
pub fn render_digest(
    templates: &Templates,
    view: &DigestView,
) -> Result<DigestBodies, ComposeError> {
    let (text, text_error) = templates.render_or_builtin(DIGEST_TEXT_TEMPLATE, view)?;
    let (html, html_error) = templates.render_or_builtin(DIGEST_HTML_TEMPLATE, view)?;
    let template_errors = [
        (DIGEST_TEXT_TEMPLATE, text_error),
        (DIGEST_HTML_TEMPLATE, html_error),
    ]
    .into_iter()
    .filter_map(|(name, e)| Some((name.to_string(), e?)))
    .collect();
    Ok(DigestBodies {
        text,
        html,
        template_errors,
    })
}

/// `9月27日` out of `2025年9月27日 23:59:59`: subjects are read in a narrow list, where the
/// year and the second are noise. Text in another shape is returned as it is (trimmed), never
/// cut in the middle of a character.
fn month_day(text: &str) -> &str {
    let text = text.trim();
    let start = text.find('年').map_or(0, |i| i + '年'.len_utf8());
    let rest = &text[start..];
    match rest.find('日') {
        Some(i) => &rest[..i + '日'.len_utf8()],
        None => text,
    }
}

/// The date of `2025年9月22日 08:00:00`, if the text has that shape.
fn chinese_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let (y, rest) = text.split_once('年')?;
    let (m, rest) = rest.split_once('月')?;
    let (d, _) = rest.split_once('日')?;
    NaiveDate::from_ymd_opt(
        y.trim().parse().ok()?,
        m.trim().parse().ok()?,
        d.trim().parse().ok()?,
    )
}

/// The subject of a reminder.
///
/// * no problems: `【提醒】某某党支部：对标争先建设项目申报将于9月27日截止（还有 3 天）`;
/// * with problems: `【提醒】某某党支部：申报材料还有 2 个问题待处理（9月27日截止）`.
///
/// The deadline is in the subject because a branch secretary decides from the inbox list
/// alone whether to open the mail today; the branch leads because one address may serve
/// several branches, each with a reminder of its own.
pub fn reminder_subject(v: &ReminderView) -> String {
    let date = month_day(&v.deadline);
    // The branch leads: one address may serve several branches, each with its own reminder.
    if v.problems.is_empty() {
        format!(
            "【提醒】{}：{}申报将于{}截止（还有 {}）",
            v.branch.trim(),
            v.campaign_name.trim(),
            date,
            v.time_left.trim()
        )
    } else {
        format!(
            "【提醒】{}：申报材料还有 {} 个问题待处理（{}截止）",
            v.branch.trim(),
            v.problems.len(),
            date
        )
    }
}

/// The subject of a digest:
/// `【申报日报】9月22日：新收到 3 份，共 12/24 个支部已申报，5 份有问题`, plus the number of mails
/// waiting for a person and of failed sends when there are any — the two things a reviewer
/// must act on, so they are visible without opening the mail.
///
/// The label follows the period: 日报 up to three days (Monday's weekday digest covers the
/// weekend), 周报 up to ten, 申报进展 beyond that or when the period is not known.
pub fn digest_subject(v: &DigestView) -> String {
    let span = v
        .period_start
        .as_deref()
        .and_then(chinese_date)
        .zip(chinese_date(&v.period_end))
        .map(|(a, b)| (b - a).num_days());
    let label = match span {
        None => "申报日报",
        Some(d) if d <= 3 => "申报日报",
        Some(d) if d <= 10 => "申报周报",
        Some(_) => "申报进展",
    };
    let mut s = format!("【{label}】{}：", month_day(&v.period_end));
    if v.new_since.is_empty() {
        s.push_str("无新申报");
    } else {
        s.push_str(&format!("新收到 {} 份", v.new_since.len()));
    }
    s.push_str(&format!(
        "，共 {}/{} 个支部已申报",
        v.applied, v.roster_total
    ));
    if v.with_problems_count > 0 {
        s.push_str(&format!("，{} 份有问题", v.with_problems_count));
    }
    if !v.needs_staff.is_empty() {
        s.push_str(&format!("，{} 封邮件待人工处理", v.needs_staff.len()));
    }
    if !v.outbox_failures.is_empty() {
        s.push_str(&format!("，{} 封发送失败", v.outbox_failures.len()));
    }
    if !v.template_errors.is_empty() {
        s.push_str("，模板出错");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        Templates::builtin().expect("built-in templates load")
    }

    fn reminder(problems: Vec<ProblemLine>) -> ReminderView {
        ReminderView {
            greeting: "张晓明同学".to_string(),
            organizer: "党委学生工作部".to_string(),
            campaign_name: "对标争先建设项目".to_string(),
            branch: "设计创意学院2024级博士生党支部".to_string(),
            college: "设计创意学院".to_string(),
            deadline: "2025年9月27日 23:59:59".to_string(),
            time_left: "3 天".to_string(),
            exact_subject: "对标争先建设项目申报-设计创意学院2024级博士生党支部".to_string(),
            expected_attachments: default_expected_attachments(),
            last_version: (!problems.is_empty()).then_some(2),
            last_received_at: (!problems.is_empty()).then(|| "2025年9月22日 09:41:42".to_string()),
            problems,
            staff_contact: "学生工作部（电话 021-00000000）".to_string(),
        }
    }

    fn row(branch: &str, college: &str, problems: &[&str], late: bool) -> DigestRow {
        DigestRow {
            branch: branch.to_string(),
            college: college.to_string(),
            project_name: "“科研启明星”".to_string(),
            section: "学思践悟·固本强基".to_string(),
            budget: "4000 元".to_string(),
            version: 1,
            received_at: "2025年9月21日 10:00:00".to_string(),
            late,
            problems: problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn missing(college: &str, branch: &str, secretary: &str) -> MissingBranch {
        MissingBranch {
            college: college.to_string(),
            branch: branch.to_string(),
            secretary: secretary.to_string(),
        }
    }

    fn empty_digest() -> DigestView {
        DigestView {
            campaign_name: "对标争先建设项目".to_string(),
            organizer: "党委学生工作部".to_string(),
            rule: "daily".to_string(),
            period_start: Some("2025年9月21日 08:00:00".to_string()),
            period_end: "2025年9月22日 08:00:00".to_string(),
            deadline: "2025年9月27日 23:59:59".to_string(),
            phase: "申报阶段（距截止还有 5 天）".to_string(),
            roster_total: 24,
            applied: 12,
            clean: 7,
            with_problems_count: 5,
            missing_count: 12,
            late_count: 0,
            new_since: vec![],
            by_section: vec![],
            by_college: vec![],
            with_problems: vec![],
            missing: vec![],
            late: vec![],
            needs_staff: vec![],
            unanswered: vec![],
            sender_changes: vec![],
            outbox_failures: vec![],
            sending: None,
            template_errors: vec![],
            attachment_name: "申报汇总表-2025-09-22.xlsx".to_string(),
        }
    }

    fn full_digest() -> DigestView {
        let budget = problem_title("budget_over_cap");
        let advisor = problem_title("advisor_missing");
        DigestView {
            late_count: 1,
            new_since: vec![
                row("土木工程学院本科生第一党支部", "土木工程学院", &[], false),
                row(
                    "设计创意学院2024级博士生党支部",
                    "设计创意学院",
                    &[&budget, &advisor],
                    false,
                ),
                row(
                    "建筑学院研究生党支部",
                    "建筑学院",
                    &["邮件在截止时间之后到达"],
                    true,
                ),
            ],
            by_section: vec![
                Count {
                    name: "学思践悟·固本强基".to_string(),
                    count: 8,
                },
                Count {
                    name: "先锋领航·校园善治".to_string(),
                    count: 4,
                },
            ],
            by_college: vec![CollegeLine {
                college: "土木工程学院".to_string(),
                roster: 10,
                applied: 6,
                clean: 4,
            }],
            with_problems: vec![row(
                "设计创意学院2024级博士生党支部",
                "设计创意学院",
                &[&budget, &advisor],
                false,
            )],
            missing: vec![
                missing("土木工程学院", "土木工程学院本科生第二党支部", "李四"),
                missing("设计创意学院", "设计创意学院本科生党支部", ""),
                missing("土木工程学院", "土木工程学院研究生党支部", "王五"),
            ],
            late: vec![row(
                "建筑学院研究生党支部",
                "建筑学院",
                &["邮件在截止时间之后到达"],
                true,
            )],
            needs_staff: vec![StaffItem {
                id: 17,
                from: "someone@qq.com".to_string(),
                subject: "请问可以延期吗".to_string(),
                reason: "普通咨询".to_string(),
                received_at: "2025年9月21日 15:02:11".to_string(),
                branch: None,
                suggested_branch: None,
                thread_subject: None,
            }],
            outbox_failures: vec![OutboxFailure {
                id: 9,
                to: "wrong@126.com".to_string(),
                subject: "Re: 对标争先建设项目申报-建筑学院研究生党支部".to_string(),
                error: "550 mailbox unavailable".to_string(),
                status: "failed".to_string(),
            }],
            template_errors: vec![TemplateErrorItem {
                at: "2025年9月21日 09:00:00".to_string(),
                template: "reminder.txt.j2".to_string(),
                error: "templates/reminder.txt.j2 第 1 行：未知的名称“grettings”".to_string(),
            }],
            ..empty_digest()
        }
    }

    fn assert_contains_all(text: &str, needles: &[&str]) {
        for n in needles {
            assert!(text.contains(n), "missing {n:?} in:\n{text}");
        }
    }

    #[test]
    fn a_reminder_without_problems_gives_subject_and_attachments() {
        let v = reminder(vec![]);
        let text = render_reminder(&templates(), REMINDER_TEMPLATE, REMINDER_TEMPLATE, &v)
            .expect("renders")
            .0;
        assert_contains_all(
            &text,
            &[
                "张晓明同学：\n\n您好！这里是党委学生工作部的申报系统。对标争先建设项目申报将于 2025年9月27日 23:59:59（北京时间）截止，距截止还有 3 天。\n",
                "还没有登记到贵支部（设计创意学院2024级博士生党支部）的有效申报材料",
                "发送时请注意：\n  邮件主题：对标争先建设项目申报-设计创意学院2024级博士生党支部\n  附件：\n    1. Word 版《项目申请表》（.doc 或 .docx）\n    2. Excel 版《申报汇总表》（.xls 或 .xlsx）\n\n",
                "也可联系学生工作部（电话 021-00000000）。\n\n此邮件由申报系统自动发出。\n党委学生工作部",
            ],
        );
        assert!(!text.contains("怎么办"), "{text}");
        assert!(!text.contains("\n\n\n"), "no stray blank lines:\n{text}");
        assert_eq!(
            reminder_subject(&v),
            "【提醒】设计创意学院2024级博士生党支部：对标争先建设项目申报将于9月27日截止（还有 3 天）"
        );
    }

    #[test]
    fn a_reminder_with_problems_lists_them_with_fixes() {
        let v = reminder(vec![
            ProblemLine::from_code(
                "budget_over_cap",
                Some("申请 6000 元，上限 5000 元".to_string()),
            ),
            ProblemLine::from_code("advisor_missing", None),
        ]);
        let text = render_reminder(&templates(), REMINDER_TEMPLATE, REMINDER_TEMPLATE, &v)
            .expect("renders")
            .0;
        assert_contains_all(
            &text,
            &[
                "最新一版申报材料（第 2 版，2025年9月22日 09:41:42 收到）还有以下 2 个问题需要处理：\n\n",
                "  1. 申请经费超过上限（申请 6000 元，上限 5000 元）\n     怎么办：申请经费最高不超过重点项目的上限，请调整预算后重新发送。\n",
                "  2. 未填写指导老师\n     怎么办：每个项目须明确一名指导老师，请补充后重新发送。\n",
                "请重新发送一封完整的申报邮件，申请表和汇总表都要附上",
                "以新版本为准",
                "邮件主题：对标争先建设项目申报-设计创意学院2024级博士生党支部",
            ],
        );
        assert!(!text.contains("还没有登记"), "{text}");
        assert!(!text.contains("\n\n\n"), "no stray blank lines:\n{text}");
        assert_eq!(
            reminder_subject(&v),
            "【提醒】设计创意学院2024级博士生党支部：申报材料还有 2 个问题待处理（9月27日截止）"
        );
    }

    #[test]
    fn a_plain_greeting_is_not_doubled() {
        let v = ReminderView {
            greeting: "您好".to_string(),
            ..reminder(vec![])
        };
        let text = render_reminder(&templates(), REMINDER_TEMPLATE, REMINDER_TEMPLATE, &v)
            .expect("renders")
            .0;
        assert!(
            text.starts_with("您好：\n\n这里是党委学生工作部的申报系统。"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_problem_code_is_shown_not_dropped() {
        let p = ProblemLine::from_code("from_the_future", None);
        assert_eq!(p.title, "from_the_future");
        assert_eq!(problem_title("late"), "邮件在截止时间之后到达");
    }

    #[test]
    fn a_full_digest_has_every_section_in_text_and_html() {
        let v = full_digest();
        let b = render_digest(&templates(), &v).expect("renders");
        assert_contains_all(
            &b.text,
            &[
                "对标争先建设项目 · 申报进展\n\n统计时段：2025年9月21日 08:00:00 至 2025年9月22日 08:00:00（北京时间）\n当前阶段：申报阶段（距截止还有 5 天）\n",
                "名册共 24 个支部，已申报 12 个（材料无问题 7 个，有问题 5 个），尚未申报 12 个；逾期到达 1 份。\n",
                "【本时段新收到的申报】共 3 份\n  1. 土木工程学院本科生第一党支部（土木工程学院）第 1 版，2025年9月21日 10:00:00 收到\n     项目：“科研启明星”｜板块：学思践悟·固本强基｜经费：4000 元\n     材料无问题\n",
                "     问题：申请经费超过上限；未填写指导老师\n",
                "建筑学院研究生党支部（建筑学院）第 1 版，2025年9月21日 10:00:00 收到，逾期\n",
                "【各板块申报数】\n  学思践悟·固本强基：8 份\n  先锋领航·校园善治：4 份\n",
                "  土木工程学院：10／6／4／4\n",
                "【有问题的申报】共 1 份",
                // Grouped by college in order of first appearance, whatever the input order.
                "【尚未申报的支部】共 3 个\n  土木工程学院（2 个）\n    - 土木工程学院本科生第二党支部（书记：李四）\n    - 土木工程学院研究生党支部（书记：王五）\n  设计创意学院（1 个）\n    - 设计创意学院本科生党支部\n",
                "【逾期到达的申报】共 1 份",
                "【需要人工处理的邮件】共 1 封",
                "  1. [编号 17] 2025年9月21日 15:02:11 来自 someone@qq.com\n     主题：请问可以延期吗\n     原因：普通咨询\n",
                "【发送失败的邮件】共 1 封",
                "原因：550 mailbox unavailable",
                "【模板出错】共 1 次（这些邮件已改用内置模板发出；",
                "  1. 2025年9月21日 09:00:00 templates/reminder.txt.j2 第 1 行：未知的名称“grettings”\n",
                "附件《申报汇总表-2025-09-22.xlsx》是截至 2025年9月22日 08:00:00 各支部最新一版申报的汇总表",
                "此邮件由申报系统自动发出。\n党委学生工作部",
            ],
        );
        assert!(
            !b.text.contains("\n\n\n"),
            "no stray blank lines:\n{}",
            b.text
        );
        assert!(!b.text.contains("没有新收到"), "{}", b.text);
        assert_contains_all(
            &b.html,
            &[
                "<!DOCTYPE html>",
                "名册共 <b>24</b> 个支部",
                "本时段新收到的申报（3 份）",
                "各板块申报数",
                "各学院申报情况",
                "有问题的申报（1 份",
                "申请经费超过上限<br>未填写指导老师",
                "尚未申报的支部（3 个）",
                "rowspan=\"2\">土木工程学院（2 个）",
                "逾期到达的申报（1 份",
                "需要人工处理的邮件（1 封",
                "发送失败的邮件（1 封",
                "模板出错（1 次",
                "未知的名称“grettings”",
                "附件《申报汇总表-2025-09-22.xlsx》",
            ],
        );
        // Inline styles only: clients drop <style> blocks.
        assert!(!b.html.contains("<style"), "{}", b.html);
        assert!(!v.is_empty());
    }

    #[test]
    fn an_empty_digest_keeps_the_totals_and_says_so() {
        let v = empty_digest();
        assert!(v.is_empty());
        let b = render_digest(&templates(), &v).expect("renders");
        assert_contains_all(
            &b.text,
            &[
                "名册共 24 个支部，已申报 12 个（材料无问题 7 个，有问题 5 个），尚未申报 12 个。\n本时段没有新收到的申报，也没有需要人工处理的邮件。\n",
                "附件《申报汇总表-2025-09-22.xlsx》",
            ],
        );
        for section in [
            "【本时段新收到",
            "【各板块",
            "【有问题",
            "【尚未申报",
            "【逾期",
            "【需要人工",
            "【发送失败",
        ] {
            assert!(!b.text.contains(section), "{section} in:\n{}", b.text);
        }
        assert!(!b.text.contains("逾期到达"), "{}", b.text);
        assert!(
            !b.text.contains("\n\n\n"),
            "no stray blank lines:\n{}",
            b.text
        );
        assert!(b.html.contains("本时段没有新收到的申报"), "{}", b.html);
        assert!(!b.html.contains("<h3"), "{}", b.html);
        // No attachment: no note about it.
        let v = DigestView {
            attachment_name: String::new(),
            period_start: None,
            ..empty_digest()
        };
        let b = render_digest(&templates(), &v).expect("renders");
        assert!(!b.text.contains("附件"), "{}", b.text);
        assert!(
            b.text
                .contains("统计时段：截至 2025年9月22日 08:00:00（北京时间）"),
            "{}",
            b.text
        );
    }

    #[test]
    fn digests_say_how_to_get_the_reviewers_materials() {
        for v in [empty_digest(), full_digest()] {
            let b = render_digest(&templates(), &v).expect("renders");
            let line = "shenbao export --materials 评审材料.zip";
            assert_eq!(b.text.matches(line).count(), 1, "{}", b.text);
            assert!(
                b.html.contains(&format!("<code>{line}</code>")),
                "{}",
                b.html
            );
        }
    }

    #[test]
    fn stray_markup_is_escaped_in_html_and_kept_in_text() {
        let evil = "<script>alert(1)</script>&党支部";
        let v = DigestView {
            new_since: vec![row(evil, "学院\"><b>", &[], false)],
            missing: vec![missing("学院", evil, "")],
            needs_staff: vec![StaffItem {
                id: 1,
                from: "a@b.test".to_string(),
                subject: "<img src=x onerror=alert(1)>".to_string(),
                reason: "普通咨询".to_string(),
                received_at: "2025年9月21日 15:02:11".to_string(),
                branch: None,
                suggested_branch: None,
                thread_subject: None,
            }],
            ..empty_digest()
        };
        let b = render_digest(&templates(), &v).expect("renders");
        assert!(!b.html.contains("<script>"), "{}", b.html);
        assert!(!b.html.contains("<img"), "{}", b.html);
        assert!(!b.html.contains("\"><b>"), "{}", b.html);
        assert!(b.html.contains("&lt;script&gt;"), "{}", b.html);
        assert!(b.html.contains("&amp;党支部"), "{}", b.html);
        assert!(b.text.contains(evil), "{}", b.text);
        assert!(
            b.text.contains("<img src=x onerror=alert(1)>"),
            "{}",
            b.text
        );
    }

    /// What staff must see: replies with their branch and the assign hint, mail that got no
    /// answer and why, versions from unfamiliar addresses; every string from a mail escaped.
    #[test]
    fn digests_list_replies_unanswered_mail_and_sender_changes() {
        let evil = "<b>x</b>@evil.test";
        let v = DigestView {
            needs_staff: vec![StaffItem {
                id: 31,
                from: "lu@outlook.com".to_string(),
                subject: "回复：Re: 对标争先建设项目申报-X（已收到，第1版，材料齐全）".to_string(),
                reason: "回复本系统的邮件，没有附带材料".to_string(),
                received_at: "2025年9月21日 15:02:11".to_string(),
                branch: Some("海洋与地球科学学院2022级本科生党支部".to_string()),
                suggested_branch: Some("设计创意学院本科生第三党支部".to_string()),
                thread_subject: Some("Re: 对标争先建设项目申报-X（已收到，第1版，材料齐全）".to_string()),
            }],
            unanswered: vec![UnansweredItem {
                id: 32,
                from: evil.to_string(),
                subject: "s".to_string(),
                branch: None,
                why: "有明确的自动邮件信号（auto_submitted：Auto-Submitted: auto-generated），材料已登记但不回复".to_string(),
                received_at: "2025年9月21日 16:00:00".to_string(),
            }],
            sender_changes: vec![SenderChangeItem {
                branch: "土木工程学院本科生第一党支部".to_string(),
                kind_label: "申报".to_string(),
                version: 2,
                sender: evil.to_string(),
                received_at: "2025年9月21日 17:00:00".to_string(),
            }],
            ..empty_digest()
        };
        assert!(!v.is_empty(), "mail that got no answer is news");
        let b = render_digest(&templates(), &v).expect("renders");
        assert_contains_all(
            &b.text,
            &[
                "[编号 31] 2025年9月21日 15:02:11 来自 lu@outlook.com（海洋与地球科学学院2022级本科生党支部）",
                "核对后运行 shenbao assign 31 即可登记",
                "回复的是本系统的邮件：Re: 对标争先建设项目申报-X（已收到，第1版，材料齐全）",
                "shenbao resolve 编号",
                "【未自动回复的邮件】共 1 封",
                "材料已登记但不回复",
                "【发件人变更】共 1 份",
                "土木工程学院本科生第一党支部 申报第 2 版，2025年9月21日 17:00:00 由 <b>x</b>@evil.test 发来",
            ],
        );
        assert_contains_all(
            &b.html,
            &[
                "未自动回复的邮件（1 封）",
                "发件人变更（1 份",
                "&lt;b&gt;x&lt;&#x2f;b&gt;@evil.test",
            ],
        );
        assert!(!b.html.contains("<b>x</b>"), "{}", b.html);
    }

    #[test]
    fn digest_subjects_say_what_needs_attention() {
        let v = full_digest();
        assert_eq!(
            digest_subject(&v),
            "【申报日报】9月22日：新收到 3 份，共 12/24 个支部已申报，5 份有问题，1 封邮件待人工处理，1 封发送失败，模板出错"
        );
        let v = DigestView {
            with_problems_count: 0,
            ..empty_digest()
        };
        assert_eq!(
            digest_subject(&v),
            "【申报日报】9月22日：无新申报，共 12/24 个支部已申报"
        );
        let weekly = DigestView {
            period_start: Some("2025年9月15日 08:00:00".to_string()),
            ..empty_digest()
        };
        assert!(digest_subject(&weekly).starts_with("【申报周报】9月22日："));
        let first = DigestView {
            period_start: None,
            ..empty_digest()
        };
        assert!(digest_subject(&first).starts_with("【申报日报】9月22日："));
    }

    #[test]
    fn subject_dates_survive_odd_text() {
        assert_eq!(month_day("2025年9月27日 23:59:59"), "9月27日");
        assert_eq!(month_day("9月27日"), "9月27日");
        assert_eq!(month_day(" 2025-09-27 "), "2025-09-27");
        assert_eq!(month_day(""), "");
        assert_eq!(chinese_date("2025年13月1日"), None);
    }
}
