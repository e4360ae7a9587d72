//! Review decisions in, result mails out: `shenbao review import` and `shenbao review notify`.
//!
//! Reviewers fill two columns (评审等级, 资助金额) into the consolidated sheet shenbao exported;
//! [`crate::review`] checks every row (pure) and this module stores the decisions with their
//! history — all of them or, when any row is wrong, none — and sends each branch its result
//! once, threaded to its application.

use crate::clock::db_time;
use crate::compose::{self, MailSpec};
use crate::pipeline::Pipeline;
use crate::remind::Planned;
use crate::review::{Decision, ImportError, ImportInput, Level};
use crate::roster::MatchKind;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use std::path::Path;

fn levels(p: &Pipeline) -> Vec<Level> {
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

/// Checks `file` and, when every row is right, stores its decisions; otherwise stores nothing
/// and returns the errors by row and column.
pub async fn import(
    p: &Pipeline,
    file: &Path,
    by: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Result<Vec<Decision>, Vec<ImportError>>> {
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("读不了 {}：{e}", file.display()))?;
    let workbook = crate::extract::sheet::read_workbook(&bytes, &Default::default())
        .map_err(|e| anyhow::anyhow!("{}：{e}", file.display()))?;
    let known = |name: &str| {
        let m = p.roster.match_branch(name);
        match m.kind {
            MatchKind::Exact | MatchKind::Fuzzy => m.branch.map(|b| b.name),
            MatchKind::Unknown => None,
        }
    };
    let levels = levels(p);
    let decisions = match crate::review::validate(&ImportInput {
        workbook: &workbook,
        levels: &levels,
        is_known_branch: &known,
    }) {
        Ok(d) => d,
        Err(errors) => return Ok(Err(errors)),
    };
    let sha = p.store.write_blob(&bytes).await?;
    let mut tx = p.store.begin_write().await?;
    p.store.record_blob(&mut tx, &sha, bytes.len(), now).await?;
    let import_id = sqlx::query(
        "INSERT INTO review_imports (file_name, file_sha256, imported_by, imported_at, decisions) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())
    .bind(&sha)
    .bind(by)
    .bind(db_time(now))
    .bind(decisions.len() as i64)
    .execute(&mut *tx)
    .await?
    .last_insert_rowid();
    for d in &decisions {
        sqlx::query("UPDATE reviews SET is_current = 0 WHERE branch = ?")
            .bind(&d.branch)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO reviews (import_id, sheet_row, branch, level, amount_yuan, funded, is_current, created_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
        )
        .bind(import_id)
        .bind(d.row as i64)
        .bind(&d.branch)
        .bind(&d.level)
        .bind(d.amount_yuan)
        .bind(d.funded)
        .bind(db_time(now))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(decisions))
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

/// The result mails not sent yet: one per branch and decision (a corrected decision is a new
/// mail; importing the same decision again is not). A branch nobody can be written to appears
/// once as a skip (no mail, a reason) for staff to follow up.
pub async fn plan_results(p: &Pipeline, now: DateTime<Utc>) -> anyhow::Result<Vec<Planned>> {
    let rows = sqlx::query(
        "SELECT branch, level, amount_yuan, funded FROM reviews WHERE is_current = 1 ORDER BY id",
    )
    .fetch_all(&p.store.pool)
    .await?;
    let latest = crate::export::latest(&p.store).await?;
    let mut out = Vec::new();
    for r in rows {
        let branch: String = r.get(0);
        let level: String = r.get(1);
        let amount: Option<f64> = r.get(2);
        let funded: bool = r.get(3);
        let key = format!(
            "result:{branch}:{level}:{}",
            amount.map(|a| a.to_string()).unwrap_or_default()
        );
        if crate::remind::in_ledger(p, &key).await? {
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
            let skip_key = format!("{key}:unreachable");
            if !crate::remind::in_ledger(p, &skip_key).await? {
                let why = p
                    .roster
                    .unreachable_row(&branch)
                    .map(|u| format!("支部名册第 {} 行{}", u.line, u.why.label_zh()))
                    .unwrap_or_else(|| "没有申报邮件，名册中也没有书记邮箱".to_string());
                out.push(Planned {
                    kind: "result",
                    key: skip_key,
                    rule: "评审结果".to_string(),
                    to: String::new(),
                    branch: Some(branch),
                    subject: String::new(),
                    text: String::new(),
                    period_end: None,
                    occasion: None,
                    mail: None,
                    skipped: Some(format!("{why}，评审结果未发送，请另行通知")),
                });
            }
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
        let text = p.templates.render("result.txt.j2", &view)?;
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
            kind: "result",
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
        });
    }
    Ok(out)
}
