//! Review decisions in, result mails out: `shenbao review import` and `shenbao review notify`.
//!
//! Reviewers fill two columns (评审等级, 资助金额) into the consolidated sheet shenbao exported;
//! [`crate::campaign::review`] checks every row (pure) and this module stores the decisions with their
//! history — all of them or, when any row is wrong, none — and sends each branch its result
//! once, threaded to its application.

use crate::app::App;
use crate::campaign::review::{BlankRow, Decision, ImportError, ImportInput, Level, Ungraded};
use crate::campaign::roster::MatchKind;
use crate::notify::compose::{self, MailSpec};
use crate::schedule::remind::Planned;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

/// The configured review levels, as [`crate::campaign::review`] checks them.
pub fn levels(p: &App) -> Vec<Level> {
    p.cfg
        .levels
        .iter()
        .map(|l| Level {
            name: l.name.clone(),
            cap_yuan: l.cap_yuan,
            funded: l.funded,
        })
        .collect()
}

/// The file given to `review import` is not a workbook that can be read (the board tells
/// this apart from a failure of its own).
#[derive(Debug, thiserror::Error)]
#[error("{file_name}：{reason}")]
pub struct UnreadableSheet {
    pub file_name: String,
    pub reason: crate::extract::sheet::SheetError,
}

/// What `review import` did (or, from [`check_import`], would do).
#[derive(Debug)]
pub enum ImportOutcome {
    /// Stored (from [`check_import`]: ready to store). `ungraded` is empty unless the import
    /// was partial.
    Imported {
        decisions: Vec<Decision>,
        ungraded: Vec<Ungraded>,
        /// Rows of applications whose branch is not recognised, left blank: skipped.
        unrecognised: Vec<BlankRow>,
    },
    /// The sheet has errors: nothing stored. `ungraded` is what would also stop a full import
    /// (empty for a partial one), so one round of corrections fixes everything.
    Invalid {
        errors: Vec<ImportError>,
        ungraded: Vec<Ungraded>,
    },
    /// Branches that applied would be left without a decision and the import was not partial:
    /// nothing stored.
    Incomplete {
        decisions: usize,
        ungraded: Vec<Ungraded>,
    },
}

/// Checks `file` and, when every row is right and every branch that applied has a decision
/// (from this sheet or an earlier import; with `partial`, some may stay without), stores its
/// decisions; otherwise stores nothing and says why.
pub async fn import(
    p: &App,
    file: &Path,
    by: &str,
    now: DateTime<Utc>,
    partial: bool,
) -> anyhow::Result<ImportOutcome> {
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("读不了 {}：{e}", file.display()))?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    import_bytes(p, &bytes, &file_name, by, now, partial).await
}

/// [`import`] of a sheet already read (`file_name` is recorded with the import and names the
/// file in messages): the board's upload takes this way.
pub async fn import_bytes(
    p: &App,
    bytes: &[u8],
    file_name: &str,
    by: &str,
    now: DateTime<Utc>,
    partial: bool,
) -> anyhow::Result<ImportOutcome> {
    let outcome = check_import(p, bytes, file_name, partial).await?;
    let ImportOutcome::Imported { decisions, .. } = &outcome else {
        return Ok(outcome);
    };
    let sha = p.store.write_blob(bytes).await?;
    p.store
        .import_reviews(
            &crate::store::reviews::ReviewImport {
                file_name,
                sha256: &sha,
                size: bytes.len(),
                imported_by: by,
                campaign: &p.cfg.campaign.id,
            },
            decisions,
            now,
        )
        .await?;
    Ok(outcome)
}

/// What [`import`] would do with the sheet `bytes`, storing nothing: with
/// [`ImportOutcome::Imported`], the decisions it would store (the board's preview before the
/// import is confirmed).
pub async fn check_import(
    p: &App,
    bytes: &[u8],
    file_name: &str,
    partial: bool,
) -> anyhow::Result<ImportOutcome> {
    let workbook =
        crate::extract::sheet::read_workbook(bytes, &Default::default()).map_err(|reason| {
            UnreadableSheet {
                file_name: file_name.to_string(),
                reason,
            }
        })?;
    let known = |name: &str| {
        let m = p.roster.match_branch(name);
        match m.kind {
            MatchKind::Exact | MatchKind::Fuzzy => m.branch.map(|b| b.name),
            MatchKind::Unknown => None,
        }
    };
    let levels = levels(p);
    let (reviewed, errors) = crate::campaign::review::check(&ImportInput {
        workbook: &workbook,
        levels: &levels,
        is_known_branch: &known,
    });
    let earlier: HashSet<String> = p.store.decided_branches().await?.into_iter().collect();
    let ungraded = crate::campaign::review::ungraded(
        &p.store.applicants().await?,
        &|b: &str| earlier.contains(b),
        &reviewed,
    );
    if !errors.is_empty() {
        return Ok(ImportOutcome::Invalid {
            errors,
            ungraded: if partial { Vec::new() } else { ungraded },
        });
    }
    if !ungraded.is_empty() && !partial {
        return Ok(ImportOutcome::Incomplete {
            decisions: reviewed.decisions.len(),
            ungraded,
        });
    }
    Ok(ImportOutcome::Imported {
        decisions: reviewed.decisions,
        ungraded,
        unrecognised: reviewed.unrecognised,
    })
}

#[derive(Serialize)]
struct ResultView {
    greeting: String,
    campaign_name: String,
    organizer: String,
    branch: String,
    funded: bool,
    level: String,
    amount: String,
    implementation: String,
    closure_time: String,
    closure_subject: String,
    closure_materials: Vec<String>,
    publish_required: bool,
    staff_contact: String,
}

/// A branch `review notify` does not mail this time, and why (in Chinese, for staff).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotNotified {
    pub branch: String,
    pub reason: String,
}

/// What `review notify` would do: the mails to send, and every branch that gets none.
#[derive(Debug, Default)]
pub struct NotifyPlan {
    pub planned: Vec<Planned>,
    /// Branches with a decision or an application that get no mail now, each with its reason:
    /// nothing is skipped silently.
    pub not_notified: Vec<NotNotified>,
}

/// The result mails not sent yet: one per branch and decision (a corrected decision is a new
/// mail; importing the same decision again is not). Every branch that applied or was graded
/// and gets no mail is listed in [`NotifyPlan::not_notified`] with its reason; a branch nobody
/// can be written to is also recorded once as a skip in the ledger, for staff to follow up.
pub async fn plan_results(p: &App, now: DateTime<Utc>) -> anyhow::Result<NotifyPlan> {
    let rows = p.store.current_reviews().await?;
    let latest = crate::export::latest(&p.store).await?;
    let mut out = Vec::new();
    let mut not_notified = Vec::new();
    let mut graded: HashSet<String> = HashSet::new();
    for r in rows {
        let crate::campaign::review::CurrentReview {
            branch,
            level,
            amount_yuan: amount,
            funded,
        } = r;
        let key = format!(
            "result:{branch}:{level}:{}",
            amount.map(|a| a.to_string()).unwrap_or_default()
        );
        graded.insert(branch.clone());
        let sent = p.store.ledger_recorded_at(&key).await?;
        if let Some(at) = sent {
            let result = crate::campaign::review::result_text(&level, amount, funded);
            not_notified.push(NotNotified {
                branch,
                reason: format!(
                    "已于 {} 通知过同一结果（{result}），不再重发",
                    crate::clock::beijing(at)
                ),
            });
            continue;
        }
        let roster = p.roster.get(&branch);
        let application = latest
            .iter()
            .find(|s| s.kind == "application" && s.branch.as_deref() == Some(branch.as_str()));
        // The address that applied; the roster's when the application came from elsewhere.
        // Keyed by branch: two branches that share an address each get their own result.
        let Some(to) = application
            .map(|s| s.sender.clone())
            .filter(|s| s.contains('@'))
            .or_else(|| roster.map(|b| b.email.clone()).filter(|e| e.contains('@')))
        else {
            // Nobody to write to: recorded (once), so staff see it, not skipped silently; a
            // key of its own, so the result still goes out once the roster has an address.
            let why = p
                .roster
                .unreachable_row(&branch)
                .map(|u| format!("支部名册第 {} 行{}", u.line, u.why.label()))
                .unwrap_or_else(|| "没有申报邮件，名册中也没有书记邮箱".to_string());
            let skip_key = format!("{key}:unreachable");
            if !p.store.in_ledger(&skip_key).await? {
                out.push(Planned {
                    campaign: p.cfg.campaign.id.clone(),
                    kind: "result",
                    key: skip_key,
                    rule: "评审结果".to_string(),
                    to: String::new(),
                    branch: Some(branch.clone()),
                    subject: String::new(),
                    text: String::new(),
                    period_end: None,
                    occasion: None,
                    mail: None,
                    skipped: Some(format!("{why}，评审结果未发送，请另行通知")),
                    template_errors: Vec::new(),
                });
            }
            not_notified.push(NotNotified {
                branch,
                reason: format!(
                    "没有收件地址（{why}）：请在名册中补上书记邮箱后再运行 shenbao review notify"
                ),
            });
            continue;
        };
        let cfg_level = p.cfg.levels.iter().find(|l| l.name == level);
        let view = ResultView {
            greeting: roster
                .filter(|b| !b.secretary.is_empty())
                .map(|b| format!("{}同学", b.secretary))
                .unwrap_or_else(|| branch.clone()),
            campaign_name: p.cfg.campaign.name.clone(),
            organizer: p.cfg.campaign.organizer.clone(),
            branch: branch.clone(),
            funded,
            level: level.clone(),
            amount: amount
                .map(|a| format!("{} 元", a as i64))
                .unwrap_or_default(),
            implementation: p.cfg.campaign.implementation.clone(),
            closure_time: p
                .cfg
                .campaign
                .closure_deadline
                .map(crate::clock::beijing)
                .map(|d| format!("{d}之前"))
                .unwrap_or_else(|| "12月中旬".to_string()),
            closure_subject: p.grammar.closure_subject_for(&branch),
            closure_materials: cfg_level
                .map(|l| l.closure_materials.clone())
                .unwrap_or_default(),
            publish_required: cfg_level.is_some_and(|l| l.publish),
            staff_contact: p.cfg.campaign.staff_contact.clone(),
        };
        let (text, template_error) = p.templates.render_or_builtin("result.txt.j2", &view)?;
        let subject = if funded {
            format!("【评审结果】{branch}：立项（{level}项目，{}）", view.amount)
        } else {
            format!("【评审结果】{branch}：未予立项")
        };
        let refs: Vec<String> = application
            .and_then(|s| s.message_id.clone())
            .into_iter()
            .collect();
        let id = crate::store::blobs::sha256_hex(key.as_bytes());
        let mail = compose::build(&MailSpec {
            kind: compose::OutboxKind::Result,
            from_name: &p.cfg.smtp.from_name,
            from_addr: &p.cfg.smtp.from_address,
            to_name: None,
            to_addr: &to,
            subject: &subject,
            text: &text,
            message_id: compose::message_id(
                "result",
                id.get(..20).unwrap_or_default(),
                &p.cfg.ack.message_id_domain,
            ),
            in_reply_to: refs.first().map(String::as_str),
            references: &refs,
            loop_value: &p.cfg.campaign.intake_address,
            date: now,
            auto_submitted: "auto-generated",
        })?;
        out.push(Planned {
            campaign: p.cfg.campaign.id.clone(),
            kind: "result",
            key,
            rule: "评审结果".to_string(),
            to,
            branch: Some(branch),
            subject,
            text,
            period_end: None,
            occasion: None,
            mail: Some(mail),
            skipped: None,
            template_errors: template_error
                .map(|e| ("result.txt.j2".to_string(), e))
                .into_iter()
                .collect(),
        });
    }
    for s in latest.iter().filter(|s| s.kind == "application") {
        match &s.branch {
            Some(b) if !graded.contains(b) => not_notified.push(NotNotified {
                branch: b.clone(),
                reason:
                    "尚未评审（还没有导入这一支部的评审结果，评审后用 shenbao review import 导入）"
                        .to_string(),
            }),
            Some(_) => {}
            None => not_notified.push(NotNotified {
                branch: s
                    .branch_in_subject
                    .clone()
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| format!("（{} 的申报，主题中没有支部名称）", s.sender)),
                reason: "支部未识别，不能评审和通知：须工作人员先用 shenbao assign 指定支部"
                    .to_string(),
            }),
        }
    }
    Ok(NotifyPlan {
        planned: out,
        not_notified,
    })
}
