//! The campaign's rules, turned into stable problem codes.
//!
//! The codes are a contract: they are stored with each submission, appear in the JSON export
//! and are explained in Chinese in the acknowledgement (and later the digest). Their order here
//! is the order they are listed in, so every consumer sees them the same way.

use crate::attach::Attachment;
use crate::attach::{Format, Role};
use crate::extract::Extracted;
use crate::extract::model::Amount;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    FormMissing,
    SummaryMissing,
    FormUnreadable,
    SummaryUnreadable,
    BranchUnknown,
    SectionInvalid,
    LeaderNotSecretary,
    AdvisorMissing,
    BudgetOverCap,
    BudgetUnparsed,
    FormSummaryMismatch,
    /// The form or the summary is filled in for another roster branch than the subject's
    /// (a copied template or a wrong file).
    FormBranchMismatch,
    Late,
    CloudAttachment,
    SubjectNonstandard,
    /// Closure: materials the project's level requires are still missing.
    ClosureIncomplete,
    /// Closure: no funded project is on record for this branch.
    ClosureNotFunded,
}

impl Problem {
    pub const ALL: [Problem; 17] = [
        Problem::FormMissing,
        Problem::SummaryMissing,
        Problem::FormUnreadable,
        Problem::SummaryUnreadable,
        Problem::BranchUnknown,
        Problem::SectionInvalid,
        Problem::LeaderNotSecretary,
        Problem::AdvisorMissing,
        Problem::BudgetOverCap,
        Problem::BudgetUnparsed,
        Problem::FormSummaryMismatch,
        Problem::FormBranchMismatch,
        Problem::Late,
        Problem::CloudAttachment,
        Problem::SubjectNonstandard,
        Problem::ClosureIncomplete,
        Problem::ClosureNotFunded,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Problem::FormMissing => "form_missing",
            Problem::SummaryMissing => "summary_missing",
            Problem::FormUnreadable => "form_unreadable",
            Problem::SummaryUnreadable => "summary_unreadable",
            Problem::BranchUnknown => "branch_unknown",
            Problem::SectionInvalid => "section_invalid",
            Problem::LeaderNotSecretary => "leader_not_secretary",
            Problem::AdvisorMissing => "advisor_missing",
            Problem::BudgetOverCap => "budget_over_cap",
            Problem::BudgetUnparsed => "budget_unparsed",
            Problem::FormSummaryMismatch => "form_summary_mismatch",
            Problem::FormBranchMismatch => "form_branch_mismatch",
            Problem::Late => "late",
            Problem::CloudAttachment => "cloud_attachment",
            Problem::SubjectNonstandard => "subject_nonstandard",
            Problem::ClosureIncomplete => "closure_incomplete",
            Problem::ClosureNotFunded => "closure_not_funded",
        }
    }

    pub fn from_code(code: &str) -> Option<Problem> {
        Problem::ALL.into_iter().find(|p| p.code() == code)
    }

    /// What is wrong, in one line.
    pub fn title_zh(self) -> &'static str {
        match self {
            Problem::FormMissing => "未找到 Word 版《项目申请表》",
            Problem::SummaryMissing => "未找到 Excel 版《申报汇总表》",
            Problem::FormUnreadable => "《项目申请表》无法打开",
            Problem::SummaryUnreadable => "《申报汇总表》无法打开",
            Problem::BranchUnknown => "支部名称与学校支部名册对不上",
            Problem::SectionInvalid => "申报板块不是通知规定的五个板块之一",
            Problem::LeaderNotSecretary => "项目负责人的职务不是支部书记或副书记",
            Problem::AdvisorMissing => "未填写指导老师",
            Problem::BudgetOverCap => "申请经费超过上限",
            Problem::BudgetUnparsed => "申请经费不是一个明确的金额",
            Problem::FormSummaryMismatch => "申请表与汇总表的经费不一致",
            Problem::FormBranchMismatch => "材料中填写的是另一个支部",
            Problem::Late => "邮件在截止时间之后到达",
            Problem::CloudAttachment => "附件是“超大附件”下载链接，没有真正附上",
            Problem::SubjectNonstandard => "邮件主题与通知要求的格式不完全一致",
            Problem::ClosureIncomplete => "结项材料还不齐全",
            Problem::ClosureNotFunded => "没有查到贵支部的立项记录",
        }
    }

    /// What to do about it.
    pub fn fix_zh(self) -> &'static str {
        match self {
            Problem::FormMissing => {
                "请将《项目申请表》以 Word 文件（.doc 或 .docx）作为附件重新发送；PDF 或图片不能代替 Word 版本。"
            }
            Problem::SummaryMissing => {
                "请将《申报汇总表》以 Excel 文件（.xls 或 .xlsx）作为附件重新发送。"
            }
            Problem::FormUnreadable => {
                "文件可能已损坏或设置了密码，请用 Word 另存一份（不加密）后重新发送。"
            }
            Problem::SummaryUnreadable => {
                "文件可能已损坏或设置了密码，请用 Excel 另存一份（不加密）后重新发送。"
            }
            Problem::BranchUnknown => {
                "请在邮件主题中写出支部的完整规范名称（与学院报送的支部名册一致）后重新发送；如名称确有变更，请联系学生工作部。"
            }
            Problem::SectionInvalid => {
                "请从五个板块中选择一个填写：学思践悟·固本强基、先锋领航·校园善治、党旗飘扬·社区聚力、师生结对·双向赋能、育苗成长·薪火相传。"
            }
            Problem::LeaderNotSecretary => {
                "项目负责人原则上应由支部书记或副书记担任，请修改后重新发送。"
            }
            Problem::AdvisorMissing => "每个项目须明确一名指导老师，请补充后重新发送。",
            Problem::BudgetOverCap => "申请经费最高不超过重点项目的上限，请调整预算后重新发送。",
            Problem::BudgetUnparsed => "请填写一个具体金额（如 3000 元），不要填写区间或“待定”。",
            Problem::FormSummaryMismatch => "请核对两份材料中的申请经费，修改一致后重新发送。",
            Problem::FormBranchMismatch => {
                "请确认附件是本支部的材料：如果误用了其他支部的文件，请换成本支部填写的申请表和汇总表后重新发送；如果是邮件主题写错了支部，请用正确的主题重新发送。"
            }
            Problem::Late => "本邮件已登记，但晚于截止时间到达，是否受理由学生工作部决定。",
            Problem::CloudAttachment => {
                "系统不会下载网盘或“超大附件”链接，请把文件直接作为附件发送（压缩后通常不超过邮箱附件上限）。"
            }
            Problem::SubjectNonstandard => "本次已按内容识别；今后请使用通知要求的主题格式。",
            Problem::ClosureIncomplete => {
                "请把缺少的材料补发过来（可以只发缺少的部分，邮件主题不变），文件名中写明材料名称，如“结题报告”“报销材料”。"
            }
            Problem::ClosureNotFunded => {
                "结项材料已存档；如贵支部确已立项，请回复本邮件说明，工作人员会人工核对。"
            }
        }
    }
}

/// The campaign's rules that come from configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The highest level's cap (重点项目).
    pub budget_cap_yuan: f64,
    /// 书记, 副书记: a leader's role must end with one of these (支部书记 counts as 书记).
    pub leader_roles: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            budget_cap_yuan: 5000.0,
            leader_roles: vec!["书记".to_string(), "副书记".to_string()],
        }
    }
}

/// What the rules look at.
pub struct Facts<'a> {
    pub attachments: &'a [Attachment],
    pub has_cloud_links: bool,
    pub branch_known: bool,
    /// The subject departs from the pattern, or the branch is written differently from the roster.
    pub subject_nonstandard: bool,
    pub late: bool,
    /// What the readers found in the form and the summary.
    pub extracted: &'a Extracted,
    pub policy: &'a Policy,
}

/// A problem and, where it helps, what exactly was found (“申请经费 6000 元”).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: Problem,
    pub detail: Option<String>,
}

/// Attachments and, one level down, the entries of attached zips.
pub fn all_files(attachments: &[Attachment]) -> impl Iterator<Item = &Attachment> {
    attachments
        .iter()
        .flat_map(|a| std::iter::once(a).chain(a.entries.iter()))
}

fn yuan(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{} 元", v as i64)
    } else {
        format!("{v:.2} 元")
    }
}

/// Whether `role` is one the leader may hold: it ends with an allowed role after normalisation
/// (支部书记, 党支部副书记 …), and is not a different office that merely ends the same way.
pub fn role_allowed(role: &str, allowed: &[String]) -> bool {
    let r = crate::textnorm::normalize(role);
    allowed
        .iter()
        .any(|a| !a.is_empty() && r.ends_with(&crate::textnorm::normalize(a)))
}

/// The findings of an application, in code order.
pub fn check(f: &Facts<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut push = |code: Problem, detail: Option<String>| out.push(Finding { code, detail });
    let has_form = all_files(f.attachments).any(|a| a.role == Role::Form && a.format.is_word());
    let has_summary =
        all_files(f.attachments).any(|a| a.role == Role::Summary && a.format.is_spreadsheet());
    // Named and declared as Word/Excel, but the bytes are not (HTML saved as .doc, damaged,
    // encrypted): the branch sent the file, it just cannot be opened.
    let broken =
        |role: Role| all_files(f.attachments).any(|a| a.role == role && a.format == Format::Other);
    let x = f.extracted;
    if !has_form {
        if broken(Role::Form) {
            push(Problem::FormUnreadable, x.form_error.clone());
        } else {
            push(Problem::FormMissing, None);
        }
    } else if x.form.is_none() {
        push(Problem::FormUnreadable, x.form_error.clone());
    }
    if !has_summary {
        if broken(Role::Summary) {
            push(Problem::SummaryUnreadable, x.summary_error.clone());
        } else {
            push(Problem::SummaryMissing, None);
        }
    } else if x.summary.is_none() {
        push(Problem::SummaryUnreadable, x.summary_error.clone());
    }
    if !f.branch_known {
        push(Problem::BranchUnknown, None);
    }
    if let Some((fields, _)) = x.chosen() {
        if fields.section.is_none() {
            push(
                Problem::SectionInvalid,
                Some(match &fields.section_as_written {
                    Some(w) if !w.trim().is_empty() => format!("填写的是“{w}”"),
                    _ => "未填写申报板块".to_string(),
                }),
            );
        }
        match fields
            .leader_role
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            Some(role) if role_allowed(role, &f.policy.leader_roles) => {}
            Some(role) => push(
                Problem::LeaderNotSecretary,
                Some(format!("填写的职务是“{role}”")),
            ),
            None => push(
                Problem::LeaderNotSecretary,
                Some("未填写项目负责人的职务".to_string()),
            ),
        }
        if fields
            .advisor
            .as_deref()
            .is_none_or(|a| a.trim().is_empty())
        {
            push(Problem::AdvisorMissing, None);
        }
        match &fields.budget {
            Some(Amount::Yuan { yuan: v }) if *v > f.policy.budget_cap_yuan => push(
                Problem::BudgetOverCap,
                Some(format!(
                    "申请 {}，上限 {}",
                    yuan(*v),
                    yuan(f.policy.budget_cap_yuan)
                )),
            ),
            Some(Amount::Yuan { .. }) => {}
            Some(Amount::Unparsed { reason }) => push(
                Problem::BudgetUnparsed,
                Some(format!(
                    "填写的是“{}”（{reason}）",
                    fields.budget_as_written.as_deref().unwrap_or("")
                )),
            ),
            None => push(Problem::BudgetUnparsed, Some("未填写申请经费".to_string())),
        }
        if let (Some(form), Some(summary)) = (&x.form, &x.summary)
            && let (Some(a), Some(b)) = (form.budget_yuan(), summary.budget_yuan())
            && (a - b).abs() >= 0.5
        {
            push(
                Problem::FormSummaryMismatch,
                Some(format!("申请表 {}，汇总表 {}", yuan(a), yuan(b))),
            );
        }
    }
    if f.late {
        push(Problem::Late, None);
    }
    if f.has_cloud_links && (!has_form || !has_summary) {
        push(Problem::CloudAttachment, None);
    }
    if f.subject_nonstandard {
        push(Problem::SubjectNonstandard, None);
    }
    out.sort_by_key(|f| f.code);
    out.dedup_by_key(|f| f.code);
    out
}

/// The problem codes of an application, in code order.
pub fn application_problems(f: &Facts<'_>) -> Vec<Problem> {
    check(f).into_iter().map(|f| f.code).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> Attachment {
        let raw = format!(
            "From: a@example.edu.cn\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64(bytes)
        );
        let guard = crate::message::LoopGuard {
            own_domain: "shenbao.test".into(),
            loop_header: "X-Shenbao-Loop".into(),
            own_addresses: vec![],
        };
        let u = crate::message::understand(raw.as_bytes(), &guard);
        u.attachments.into_iter().next().expect("one attachment")
    }

    fn b64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    static NOTHING: std::sync::LazyLock<Extracted> = std::sync::LazyLock::new(Extracted::default);
    static POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(Policy::default);

    fn facts(attachments: &[Attachment]) -> Facts<'_> {
        Facts {
            attachments,
            has_cloud_links: false,
            branch_known: true,
            subject_nonstandard: false,
            late: false,
            extracted: &NOTHING,
            policy: &POLICY,
        }
    }

    fn good_fields() -> crate::extract::model::Fields {
        crate::extract::model::Fields {
            project_name: Some("“红色领航”".into()),
            section: Some("学思践悟·固本强基".into()),
            section_as_written: Some("学思践悟·固本强基".into()),
            leader: Some("张三".into()),
            leader_role: Some("支部书记".into()),
            phone: Some("13800000000".into()),
            advisor: Some("李老师".into()),
            budget_as_written: Some("3000".into()),
            budget: Some(Amount::Yuan { yuan: 3000.0 }),
            ..Default::default()
        }
    }

    /// The codes for a form with `form` fields (and optionally a summary), both attached.
    fn field_codes(
        form: crate::extract::model::Fields,
        summary: Option<crate::extract::model::Fields>,
    ) -> Vec<&'static str> {
        let atts = [
            file("申请表.docx", b"PK\x03\x04"),
            file("汇总表.xlsx", b"PK\x03\x04"),
        ];
        let x = Extracted {
            form: Some(form),
            summary: summary.clone(),
            summary_error: summary.is_none().then(|| "test".to_string()),
            ..Default::default()
        };
        let mut f = facts(&atts);
        f.extracted = &x;
        check(&f).iter().map(|p| p.code.code()).collect()
    }

    #[test]
    fn field_rules() {
        let g = good_fields;
        let with = |edit: &dyn Fn(&mut crate::extract::model::Fields)| {
            let mut f = g();
            edit(&mut f);
            f
        };
        assert_eq!(field_codes(g(), Some(g())), Vec::<&str>::new());
        assert_eq!(field_codes(g(), None), vec!["summary_unreadable"]);
        assert_eq!(
            field_codes(with(&|f| f.section = None), Some(g())),
            vec!["section_invalid"]
        );
        assert_eq!(
            field_codes(
                with(&|f| f.leader_role = Some("组织委员".into())),
                Some(g())
            ),
            vec!["leader_not_secretary"]
        );
        assert_eq!(
            field_codes(
                with(&|f| f.leader_role = Some("党支部副书记".into())),
                Some(g())
            ),
            Vec::<&str>::new()
        );
        assert_eq!(
            field_codes(with(&|f| f.leader_role = None), Some(g())),
            vec!["leader_not_secretary"]
        );
        assert_eq!(
            field_codes(with(&|f| f.advisor = Some(" ".into())), Some(g())),
            vec!["advisor_missing"]
        );
        assert_eq!(
            field_codes(
                with(&|f| f.budget = Some(Amount::Yuan { yuan: 6000.0 })),
                Some(with(&|f| f.budget = Some(Amount::Yuan { yuan: 6000.0 })))
            ),
            vec!["budget_over_cap"]
        );
        assert_eq!(
            field_codes(
                with(&|f| f.budget = Some(Amount::Unparsed {
                    reason: "区间".into()
                })),
                Some(g())
            ),
            vec!["budget_unparsed"]
        );
        assert_eq!(
            field_codes(
                g(),
                Some(with(&|f| f.budget = Some(Amount::Yuan { yuan: 2800.0 })))
            ),
            vec!["form_summary_mismatch"]
        );
    }

    #[test]
    fn roles() {
        let allowed = Policy::default().leader_roles;
        for ok in [
            "书记",
            "副书记",
            "支部书记",
            "党支部书记",
            "支部副书记",
            " 书 记 ",
        ] {
            assert!(role_allowed(ok, &allowed), "{ok}");
        }
        for bad in ["组织委员", "宣传委员", "书记员?", "班长", ""] {
            assert!(!role_allowed(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn an_html_page_saved_as_doc_is_unreadable_not_missing() {
        let atts = [
            file("申请表.doc", b"<html><body>not really word</body></html>"),
            file("汇总表.xls", b"<html><body>not really excel</body></html>"),
        ];
        assert_eq!(
            application_problems(&facts(&atts)),
            vec![Problem::FormUnreadable, Problem::SummaryUnreadable]
        );
    }

    #[test]
    fn a_pdf_form_does_not_count() {
        let atts = [file("申请表.pdf", b"%PDF-1.4\n%...")];
        assert_eq!(
            application_problems(&facts(&atts)),
            vec![Problem::FormMissing, Problem::SummaryMissing]
        );
    }

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for p in Problem::ALL {
            assert!(seen.insert(p.code()));
            assert_eq!(Problem::from_code(p.code()), Some(p));
            assert!(!p.title_zh().is_empty() && !p.fix_zh().is_empty());
        }
        assert_eq!(Problem::from_code("nope"), None);
    }

    #[test]
    fn nothing_attached_is_two_problems() {
        assert_eq!(
            application_problems(&facts(&[])),
            vec![Problem::FormMissing, Problem::SummaryMissing]
        );
    }

    #[test]
    fn cloud_links_late_unknown_and_nonstandard_in_order() {
        let f = Facts {
            attachments: &[],
            has_cloud_links: true,
            branch_known: false,
            subject_nonstandard: true,
            late: true,
            extracted: &NOTHING,
            policy: &POLICY,
        };
        let codes: Vec<&str> = application_problems(&f).iter().map(|p| p.code()).collect();
        assert_eq!(
            codes,
            vec![
                "form_missing",
                "summary_missing",
                "branch_unknown",
                "late",
                "cloud_attachment",
                "subject_nonstandard"
            ]
        );
    }
}
