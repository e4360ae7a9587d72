//! What the answers to a registered mail show — the acknowledgement, the subject-format help,
//! the no-materials note — as plain data for the templates ([`crate::notify::compose`] renders
//! them): attachments, problems, fields, the closure checklist, with the labels people read.
//!
//! Pure: no clock, no database, no file system; the caller passes every fact in.

use crate::campaign::roster::{BranchMatch, MatchKind};
use crate::campaign::rules;
use crate::campaign::subject::SubjectGrammar;
use crate::clock::beijing;
use crate::config::CampaignConfig;
use crate::extract::model::{Amount, Fields};
use crate::message::{Attachment, Understood};
use crate::notify::compose;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What every acknowledgement takes from the campaign, besides the mail itself.
pub struct AckContext<'a> {
    pub campaign: &'a CampaignConfig,
    pub grammar: &'a SubjectGrammar,
}

/// The acknowledgement's note when a version came from an unfamiliar address.
pub fn sender_note(
    sender: &str,
    branch: Option<&crate::campaign::roster::Branch>,
    copy_to: Option<&str>,
) -> String {
    let name = branch.map_or("该支部", |b| b.name.as_str());
    match copy_to {
        Some(c) => format!(
            "本版材料由 {sender} 发送，该地址不是名册中{name}的联系邮箱，此前也没有为该支部发送过材料，因此本回执同时抄送名册登记的支部书记（{c}）。如非本支部所发，请书记尽快回复本邮件说明。"
        ),
        None => format!(
            "本版材料由 {sender} 发送，该地址不是名册中{name}的联系邮箱，此前也没有为该支部发送过材料；名册中没有可用的书记邮箱，已提示工作人员核对。"
        ),
    }
}

pub fn ack_subject(original: &str, version: i64, problems: usize) -> String {
    let base = if original.trim().is_empty() {
        "（无主题）"
    } else {
        original.trim()
    };
    if problems == 0 {
        format!("Re: {base}（已收到，第{version}版，材料齐全）")
    } else {
        format!("Re: {base}（已收到，第{version}版，有{problems}个问题待处理）")
    }
}

pub fn greeting(display: Option<&str>, secretary: Option<&str>) -> String {
    match (secretary, display.map(str::trim).filter(|d| !d.is_empty())) {
        (Some(s), _) => format!("{s}同学"),
        (None, Some(d)) => d.to_string(),
        (None, None) => "您好".to_string(),
    }
}

#[derive(Serialize)]
pub struct AttachmentView {
    pub filename: String,
    pub role_label: String,
    pub format_label: String,
    pub size_label: String,
    pub error: Option<String>,
    pub entries: Vec<AttachmentView>,
}

impl AttachmentView {
    pub fn new(a: &Attachment) -> AttachmentView {
        let mut role_label = a.role.label().to_string();
        if a.role == crate::attach::Role::Other
            && matches!(
                a.format,
                crate::attach::Format::Pdf | crate::attach::Format::Image
            )
        {
            role_label.push_str("（申请表、汇总表请提交 Word / Excel 版本）");
        }
        AttachmentView {
            filename: a.filename.clone(),
            role_label,
            format_label: a.format.label().to_string(),
            size_label: compose::size_label(a.size),
            error: a.error.clone(),
            entries: a.entries.iter().map(AttachmentView::new).collect(),
        }
    }
}

#[derive(Serialize)]
pub struct ProblemView {
    pub code: &'static str,
    pub title: &'static str,
    pub fix: &'static str,
    pub detail: Option<String>,
}

#[derive(Serialize)]
pub struct ChecklistItem {
    pub material: String,
    pub present: bool,
}

/// The closure checklist shown in a closure acknowledgement.
#[derive(Serialize)]
pub struct ClosureView {
    pub level: String,
    pub checklist: Vec<ChecklistItem>,
    pub complete: bool,
    pub publish: bool,
}

#[derive(Serialize)]
pub struct FieldView {
    pub label: &'static str,
    pub value: String,
}

/// The fields as a small table for the secretary to check; `—` marks what was not found.
pub fn field_rows(f: &Fields) -> Vec<FieldView> {
    let show = |v: &Option<String>| {
        v.clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "—（未识别）".to_string())
    };
    let budget = match &f.budget {
        Some(Amount::Yuan { yuan }) if yuan.fract() == 0.0 => format!("{} 元", *yuan as i64),
        Some(Amount::Yuan { yuan }) => format!("{yuan:.2} 元"),
        _ => show(&f.budget_as_written),
    };
    let section = match (&f.section, &f.section_as_written) {
        (Some(s), _) => s.clone(),
        (None, w) => show(w),
    };
    vec![
        FieldView {
            label: "项目名称",
            value: show(&f.project_name),
        },
        FieldView {
            label: "申报板块",
            value: section,
        },
        FieldView {
            label: "项目负责人",
            value: show(&f.leader),
        },
        FieldView {
            label: "职务",
            value: show(&f.leader_role),
        },
        FieldView {
            label: "联系电话",
            value: show(&f.phone),
        },
        FieldView {
            label: "指导老师",
            value: show(&f.advisor),
        },
        FieldView {
            label: "申请经费",
            value: budget,
        },
    ]
}

#[derive(Serialize)]
pub struct AckView {
    pub greeting: String,
    pub organizer: String,
    pub campaign_name: String,
    pub kind_label: &'static str,
    pub branch_display: String,
    pub match_note: Option<String>,
    pub version: i64,
    pub received_at: String,
    pub subject: String,
    pub attachments: Vec<AttachmentView>,
    pub problems: Vec<ProblemView>,
    pub fields: Vec<FieldView>,
    pub fields_source: Option<&'static str>,
    pub closure: Option<ClosureView>,
    pub exact_subject: String,
    pub deadline: String,
    pub staff_contact: String,
    /// A version from an unfamiliar address: who sent it, and who is copied.
    pub sender_note: Option<String>,
    /// The subject's branch is unknown, but the form names this roster branch.
    pub suggestion: Option<String>,
}

impl AckView {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c: &AckContext<'_>,
        u: &Understood,
        m: &BranchMatch,
        version: i64,
        received: DateTime<Utc>,
        findings: &[rules::Finding],
        chosen: Option<(&Fields, &'static str)>,
        closure: bool,
    ) -> AckView {
        let secretary = m.branch.as_ref().and_then(|b| {
            let from = u.from.as_ref()?;
            (from.addr.eq_ignore_ascii_case(&b.email)
                || from.name.as_deref() == Some(b.secretary.as_str()))
            .then(|| b.secretary.clone())
        });
        let (branch_display, match_note) = match (&m.branch, m.kind) {
            (Some(b), MatchKind::Exact) => (format!("{}（{}）", b.name, b.college), None),
            (Some(b), _) => (
                format!("{}（{}）", b.name, b.college),
                Some(format!(
                    "主题中写的是“{}”，按名册识别：{}",
                    u.subject, m.reason
                )),
            ),
            (None, _) => (
                "未能识别".to_string(),
                Some(if m.candidates.is_empty() {
                    m.reason.clone()
                } else {
                    format!("{}；相近的支部：{}", m.reason, m.candidates.join("、"))
                }),
            ),
        };
        let exact_subject = match &m.branch {
            Some(b) if closure => c.grammar.closure_subject_for(&b.name),
            Some(b) => c.grammar.application_subject_for(&b.name),
            None => c.grammar.application_subject_for("支部名称"),
        };
        AckView {
            greeting: greeting(
                u.from.as_ref().and_then(|a| a.name.as_deref()),
                secretary.as_deref(),
            ),
            organizer: c.campaign.organizer.clone(),
            campaign_name: c.campaign.name.clone(),
            kind_label: if closure { "结项" } else { "申报" },
            branch_display,
            match_note,
            version,
            received_at: beijing(received),
            subject: u.subject.clone(),
            attachments: u.attachments.iter().map(AttachmentView::new).collect(),
            problems: findings
                .iter()
                .map(|f| ProblemView {
                    code: f.code.code(),
                    title: f.code.title_zh(),
                    fix: f.code.fix_zh(),
                    detail: f.detail.clone(),
                })
                .collect(),
            fields: chosen.map(|(f, _)| field_rows(f)).unwrap_or_default(),
            closure: None,
            fields_source: chosen.map(|(_, s)| {
                if s == "form" {
                    "项目申请表"
                } else {
                    "申报汇总表（申请表未能读取）"
                }
            }),
            exact_subject,
            deadline: beijing(c.campaign.deadline),
            staff_contact: c.campaign.staff_contact.clone(),
            sender_note: None,
            suggestion: None,
        }
    }
}

/// The answer to a mail under the campaign's subject that brought no materials.
#[derive(Serialize)]
pub struct NoMaterialsView {
    pub greeting: String,
    pub organizer: String,
    pub subject: String,
    pub received_at: String,
    pub kind_label: &'static str,
    pub branch: String,
    pub version: i64,
    pub exact_subject: String,
    pub staff_contact: String,
}

#[derive(Serialize)]
pub struct HelpView {
    pub greeting: String,
    pub organizer: String,
    pub campaign_name: String,
    pub subject: String,
    pub received_at: String,
    pub exact_subject: String,
    pub suggestion: Option<String>,
    pub suggestion_subject: Option<String>,
    pub deadline: String,
    pub staff_contact: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_say_what_happened() {
        assert_eq!(
            ack_subject("对标争先建设项目申报-X", 1, 0),
            "Re: 对标争先建设项目申报-X（已收到，第1版，材料齐全）"
        );
        assert_eq!(
            ack_subject(" ", 2, 3),
            "Re: （无主题）（已收到，第2版，有3个问题待处理）"
        );
    }

    #[test]
    fn greetings() {
        assert_eq!(greeting(Some("余晨"), Some("余晨")), "余晨同学");
        assert_eq!(greeting(Some("Yu Chen"), None), "Yu Chen");
        assert_eq!(greeting(None, None), "您好");
    }
}
