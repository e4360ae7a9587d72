//! The closure (结项) phase: which materials a funded project still owes.
//!
//! Each review level names its materials in the configuration (`[[level]] closure_materials`:
//! the notice asks 结题报告 and 报销材料 of every project, a 工作案例 of 重点 and 特色 projects
//! and an 活动总结 of 一般 ones). Each material is an attachment role ([`Role::from_material`]),
//! so a 工作案例 never stands in for an 活动总结.
//!
//! In a closure mail, files are recognised by their title as well as their name
//! ([`recognise_materials`], [`crate::attach::closure_role`]): a document titled 结题报告 is the
//! report whatever it is called, and `结项总结.docx` is not taken for the application form just
//! because it is a Word file. A branch may send its materials in several mails: what counts is
//! everything it has sent for closure so far.
//!
//! Pure: the store reads the facts (current decisions, the roles a branch has sent) and this
//! module decides what they mean.

use crate::attach::Role;
use crate::campaign::review::CurrentReview;
use crate::config::LevelConfig;
use crate::extract::model::{Block, Document};
use crate::message::{Attachment, Understood};

/// The attachment role that satisfies a configured material ([`Role::Other`] when the name
/// names no closure material; `check-config` refuses such a name).
pub fn material_role(material: &str) -> Role {
    Role::from_material(material).unwrap_or(Role::Other)
}

/// Each required material and whether a file of its role is among `present`.
pub fn checklist(required: &[String], present: &[Role]) -> Vec<(String, bool)> {
    required
        .iter()
        .map(|m| {
            let role = material_role(m);
            (m.clone(), role != Role::Other && present.contains(&role))
        })
        .collect()
}

/// The longest line that can be a document's title; longer lines are body text, which
/// mentions 结项 and 总结 freely.
const TITLE_MAX_CHARS: usize = 60;
/// How many non-empty lines at the top may hold the title (a branch name line, then
/// “结题报告”, say).
const TITLE_LINES: usize = 3;

/// A Word document's title: its first few short non-empty paragraphs before any table, joined;
/// reading stops at the first sentence or long paragraph. `None` when the document starts with
/// a table or with body text.
pub fn document_title(doc: &Document) -> Option<String> {
    let mut lines = Vec::new();
    for block in &doc.blocks {
        match block {
            Block::Table(_) => break,
            Block::Paragraph(p) => {
                let t = p.trim();
                if t.is_empty() {
                    continue;
                }
                // A sentence (ending in 。 and the like) is body text, not a title.
                let sentence = t.ends_with(['。', '！', '？', '；', '.', '!', '?', ';']);
                if t.chars().count() > TITLE_MAX_CHARS || sentence || lines.len() == TITLE_LINES {
                    break;
                }
                lines.push(t.to_string());
            }
        }
    }
    (!lines.is_empty()).then(|| lines.join(" "))
}

/// The title of a Word attachment, read with the same bounded readers as the form; `None` for
/// other formats and for files that cannot be read.
fn title_of(a: &Attachment) -> Option<String> {
    if !a.format.is_word() {
        return None;
    }
    crate::extract::read_word(&a.bytes, a.format)
        .ok()
        .and_then(|d| document_title(&d))
}

/// Gives every file of a closure mail (zip entries included) its closure role: by title and
/// name, never the form or the summary on weak hints (see [`crate::attach::closure_role`]).
pub fn recognise_materials(attachments: &mut [Attachment]) {
    for a in attachments.iter_mut() {
        for e in a.entries.iter_mut() {
            e.role = crate::attach::closure_role(&e.filename, e.format, title_of(e).as_deref());
        }
        a.role = crate::attach::closure_role(&a.filename, a.format, title_of(a).as_deref());
    }
}

/// What the pipeline does with a mail it classified as closure mail: its files get their
/// closure roles, and it carries no application fields (a closure report is not a form).
pub fn for_closure_mail(
    mut understood: Understood,
    _read_as_application: crate::extract::Extracted,
) -> (Understood, crate::extract::Extracted) {
    recognise_materials(&mut understood.attachments);
    (understood, crate::extract::Extracted::default())
}

/// Where a reviewed branch stands in the closure phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosureStatus {
    /// Reviewed and not funded: nothing to send.
    NotFunded,
    /// Funded; these materials are still missing.
    Incomplete { missing: Vec<String> },
    /// Funded, every material received.
    Complete,
}

impl ClosureStatus {
    /// The code in the JSON export (`not_funded`, `incomplete`, `complete`).
    pub fn code(&self) -> &'static str {
        match self {
            ClosureStatus::NotFunded => "not_funded",
            ClosureStatus::Incomplete { .. } => "incomplete",
            ClosureStatus::Complete => "complete",
        }
    }

    /// For people (CSV, .xlsx): 未立项 / 材料未齐（缺活动总结、报销材料） / 材料齐全.
    pub fn label(&self) -> String {
        match self {
            ClosureStatus::NotFunded => "未立项".to_string(),
            ClosureStatus::Incomplete { missing } => {
                format!("材料未齐（缺{}）", missing.join("、"))
            }
            ClosureStatus::Complete => "材料齐全".to_string(),
        }
    }

    /// The materials still missing (empty unless incomplete).
    pub fn missing(&self) -> &[String] {
        match self {
            ClosureStatus::Incomplete { missing } => missing,
            _ => &[],
        }
    }
}

/// The closure status of a decision: `funded` at `level`, having sent files of roles `sent`.
pub fn status_of(
    levels: &[LevelConfig],
    level: &str,
    funded: bool,
    sent: &[Role],
) -> ClosureStatus {
    if !funded {
        return ClosureStatus::NotFunded;
    }
    let required = levels
        .iter()
        .find(|l| l.name == level)
        .map(|l| l.closure_materials.clone())
        .unwrap_or_default();
    let missing: Vec<String> = checklist(&required, sent)
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(m, _)| m)
        .collect();
    if missing.is_empty() {
        ClosureStatus::Complete
    } else {
        ClosureStatus::Incomplete { missing }
    }
}

/// A reviewed branch: its current decision and closure status.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub branch: String,
    pub level: String,
    pub amount_yuan: Option<f64>,
    pub status: ClosureStatus,
}

/// Every branch with a current review decision, funded or not, with its closure status:
/// `facts` holds each current decision with the roles of the files its branch has sent for
/// closure (read by the store).
pub fn reviewed(levels: &[LevelConfig], facts: Vec<(CurrentReview, Vec<Role>)>) -> Vec<Reviewed> {
    facts
        .into_iter()
        .map(|(r, sent)| Reviewed {
            status: status_of(levels, &r.level, r.funded, &sent),
            amount_yuan: r.amount_yuan,
            branch: r.branch,
            level: r.level,
        })
        .collect()
}

/// A funded project's closure state.
#[derive(Debug, Clone)]
pub struct ClosureState {
    pub branch: String,
    pub level: String,
    pub missing: Vec<String>,
}

/// Every funded project (current review) with what it still owes.
pub fn funded_projects(reviewed: Vec<Reviewed>) -> Vec<ClosureState> {
    reviewed
        .into_iter()
        .filter(|r| r.status != ClosureStatus::NotFunded)
        .map(|r| ClosureState {
            missing: r.status.missing().to_vec(),
            branch: r.branch,
            level: r.level,
        })
        .collect()
}

/// The campaign's phase at `now`, with the counts staff care about in it: `reviews` is how
/// many branches have a current decision, `funded` the funded projects ([`funded_projects`]).
pub fn phase(
    c: &crate::config::CampaignConfig,
    now: chrono::DateTime<chrono::Utc>,
    reviews: i64,
    funded: &[ClosureState],
) -> String {
    let deadline = c.deadline + chrono::Duration::from_std(c.grace).unwrap_or_default();
    if now <= deadline {
        return format!(
            "申报阶段（申报截止：{}）",
            crate::clock::beijing(c.deadline)
        );
    }
    if reviews == 0 {
        return "评审阶段（申报已截止，尚未导入评审结果）".to_string();
    }
    let complete = funded.iter().filter(|f| f.missing.is_empty()).count();
    let counts = format!(
        "已立项 {} 个，结项材料齐全 {complete} 个，尚未齐全 {} 个",
        funded.len(),
        funded.len() - complete
    );
    match c.closure_deadline {
        Some(cd) if now <= cd => format!(
            "实施与结项阶段（{counts}；结项截止：{}）",
            crate::clock::beijing(cd)
        ),
        Some(_) => format!("结项已截止（{counts}）"),
        None => format!("实施阶段（{counts}；结项截止时间尚未设置）"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materials_map_to_roles() {
        for (material, role) in [
            ("结题报告", Role::ClosureReport),
            ("结项报告", Role::ClosureReport),
            ("结 题 报 告", Role::ClosureReport),
            ("結題報告", Role::ClosureReport),
            ("报销材料", Role::Reimbursement),
            ("报销", Role::Reimbursement),
            ("经费报销单据", Role::Reimbursement),
            ("工作案例", Role::CaseStudy),
            ("案例", Role::CaseStudy),
            ("活动总结", Role::ActivitySummary),
            ("活動總結", Role::ActivitySummary),
            ("总结", Role::ActivitySummary),
            ("closure_report", Role::ClosureReport),
            ("case_study", Role::CaseStudy),
            ("activity_summary", Role::ActivitySummary),
            ("reimbursement", Role::Reimbursement),
            ("合影", Role::Other),
            ("form", Role::Other),
            ("", Role::Other),
        ] {
            assert_eq!(material_role(material), role, "{material}");
        }
    }

    fn levels() -> Vec<LevelConfig> {
        crate::config::default_levels()
    }

    fn missing(levels: &[LevelConfig], level: &str, sent: &[Role]) -> Vec<String> {
        status_of(levels, level, true, sent).missing().to_vec()
    }

    #[test]
    fn each_level_asks_for_what_the_notice_asks_of_it() {
        let l = levels();
        let all_but_last = [Role::ClosureReport, Role::Reimbursement];
        // 重点 and 特色: a 工作案例; 一般: an 活动总结. One never stands in for the other.
        for level in ["重点", "特色"] {
            assert_eq!(missing(&l, level, &all_but_last), ["工作案例"], "{level}");
            assert_eq!(
                missing(
                    &l,
                    level,
                    &[
                        Role::ClosureReport,
                        Role::Reimbursement,
                        Role::ActivitySummary
                    ]
                ),
                ["工作案例"],
                "{level}"
            );
            assert_eq!(
                status_of(
                    &l,
                    level,
                    true,
                    &[Role::ClosureReport, Role::Reimbursement, Role::CaseStudy]
                ),
                ClosureStatus::Complete
            );
        }
        assert_eq!(
            missing(
                &l,
                "一般",
                &[Role::ClosureReport, Role::Reimbursement, Role::CaseStudy]
            ),
            ["活动总结"]
        );
        assert_eq!(
            status_of(
                &l,
                "一般",
                true,
                &[
                    Role::ClosureReport,
                    Role::Reimbursement,
                    Role::ActivitySummary
                ]
            ),
            ClosureStatus::Complete
        );
        // The form and the summary are no closure material.
        assert_eq!(
            missing(&l, "一般", &[Role::Form, Role::Summary, Role::Other]),
            ["结题报告", "报销材料", "活动总结"]
        );
        assert_eq!(
            status_of(&l, "不立项", false, &[]),
            ClosureStatus::NotFunded
        );
        // A level the config does not know asks for nothing it could check.
        assert_eq!(status_of(&l, "优秀", true, &[]), ClosureStatus::Complete);
    }

    #[test]
    fn statuses_read_for_people_and_for_programs() {
        let inc = ClosureStatus::Incomplete {
            missing: vec!["活动总结".to_string(), "报销材料".to_string()],
        };
        assert_eq!(inc.label(), "材料未齐（缺活动总结、报销材料）");
        assert_eq!(inc.code(), "incomplete");
        assert_eq!(ClosureStatus::NotFunded.label(), "未立项");
        assert_eq!(ClosureStatus::NotFunded.code(), "not_funded");
        assert_eq!(ClosureStatus::Complete.label(), "材料齐全");
        assert_eq!(ClosureStatus::Complete.code(), "complete");
        assert!(ClosureStatus::Complete.missing().is_empty());
    }

    fn doc(blocks: &[Option<&str>]) -> Document {
        Document {
            blocks: blocks
                .iter()
                .map(|b| match b {
                    Some(p) => Block::Paragraph(p.to_string()),
                    None => Block::Table(Default::default()),
                })
                .collect(),
        }
    }

    #[test]
    fn a_title_is_the_first_short_lines_before_any_table() {
        assert_eq!(
            document_title(&doc(&[Some(""), Some("  结题报告 "), Some("一、项目概况")])),
            Some("结题报告 一、项目概况".to_string())
        );
        assert_eq!(
            document_title(&doc(&[
                Some("同济大学学生党支部“对标争先”建设项目申请表"),
                None,
                Some("活动总结")
            ])),
            Some("同济大学学生党支部“对标争先”建设项目申请表".to_string())
        );
        // Body text is not a title, however many keywords it holds.
        let body = "本学期支部围绕结项要求开展了多次活动，现将活动总结如下，并附报销材料与工作案例，供评审专家参考审阅。";
        assert_eq!(document_title(&doc(&[Some(body)])), None);
        assert_eq!(
            document_title(&doc(&[Some("结题报告"), Some(body), Some("活动总结")])),
            Some("结题报告".to_string())
        );
        let long = "结".repeat(61);
        assert_eq!(document_title(&doc(&[Some(&long)])), None);
        assert_eq!(document_title(&doc(&[None, Some("结题报告")])), None);
        assert_eq!(document_title(&doc(&[])), None);
        // At most three lines.
        assert_eq!(
            document_title(&doc(&[
                Some("甲"),
                Some("乙"),
                Some("丙"),
                Some("结题报告")
            ])),
            Some("甲 乙 丙".to_string())
        );
    }

    #[test]
    fn checklist_marks_what_is_there() {
        let req = vec![
            "结题报告".to_string(),
            "报销材料".to_string(),
            "工作案例".to_string(),
        ];
        assert_eq!(
            checklist(&req, &[Role::ClosureReport, Role::Form]),
            vec![
                ("结题报告".to_string(), true),
                ("报销材料".to_string(), false),
                ("工作案例".to_string(), false)
            ]
        );
        assert!(
            checklist(
                &req,
                &[Role::ClosureReport, Role::Reimbursement, Role::CaseStudy]
            )
            .iter()
            .all(|(_, ok)| *ok)
        );
        // A material nobody can recognise is never ticked by accident.
        assert_eq!(
            checklist(&["合影".to_string()], &[Role::Other]),
            vec![("合影".to_string(), false)]
        );
    }
}
