//! Staff corrections: `reprocess`, `assign` and `resolve`.
//!
//! Every message's raw bytes are kept, so any decision can be taken again: after a fix to the
//! parser, the rules, a template or the roster, or because staff know better (this mail is
//! 土木工程学院本科生第一党支部's). A replay runs the stored mail through today's pipeline
//! inside one transaction, shows what changed, and commits only when asked to: `--dry-run`
//! rolls the same transaction back, so the preview is exactly what would be written.
//!
//! Versions stay consistent: a replayed message's old submission row is removed first, and
//! every branch whose versions it touched is renumbered by arrival afterwards (no gaps, no
//! duplicates, the latest arrival is the latest version). Answers are sent again only with
//! `--notify` (or by `assign`, whose point is to acknowledge the branch), under Message-IDs
//! of their own.

use crate::app::App;
use crate::pipeline::{NotifyMode, Pipeline};
use crate::store::Tx;
use crate::store::corrections as store;
use anyhow::Context as _;
use std::collections::BTreeSet;

/// Which messages to replay.
#[derive(Debug, Clone)]
pub enum Selection {
    Ids(Vec<i64>),
    /// Every message from a person or a machine (not our own copies, not mail too large to read).
    All,
    /// Messages whose processing failed.
    Failed,
}

/// What one message was, before or after a replay, as staff compare it.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    disposition: String,
    branch: Option<String>,
    version: Option<i64>,
    latest: bool,
    problems: Vec<String>,
    fields: serde_json::Value,
    needs_staff: bool,
}

/// One replayed message and what changed.
#[derive(Debug, Clone)]
pub struct Change {
    pub message: i64,
    pub lines: Vec<String>,
}

/// The result of a replay, for printing.
#[derive(Debug, Clone)]
pub struct Report {
    pub changes: Vec<Change>,
    pub unchanged: usize,
    pub committed: bool,
    pub answers: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.changes {
            writeln!(f, "#{}：", c.message)?;
            for l in &c.lines {
                writeln!(f, "  {l}")?;
            }
        }
        writeln!(
            f,
            "共重新处理 {} 封邮件：{} 封有变化，{} 封无变化。",
            self.changes.len() + self.unchanged,
            self.changes.len(),
            self.unchanged
        )?;
        if self.committed {
            if self.answers > 0 {
                writeln!(
                    f,
                    "已保存；{} 封回执已放入发件箱，运行中的 `shenbao run` 会发送。",
                    self.answers
                )
            } else {
                writeln!(
                    f,
                    "已保存；没有发送任何邮件（需要重新通知支部时加 --notify）。"
                )
            }
        } else {
            writeln!(f, "这是预览（--dry-run），没有保存任何改动。")
        }
    }
}

/// A correction that cannot be made, said for staff.
#[derive(Debug, thiserror::Error)]
pub enum CorrectError {
    #[error("没有编号为 #{0} 的邮件；用 `shenbao status` 查看需人工处理的邮件及其编号")]
    NoSuchMessage(i64),
    #[error(
        "邮件 #{0} 是本系统自己发出的邮件的副本或超过大小上限未读取的邮件，不能重新处理或指定支部"
    )]
    NotReplayable(i64),
    #[error("邮件 #{0} 还在等待守护进程处理，请稍后再试")]
    NotProcessed(i64),
    #[error(
        "邮件 #{0} 没有可推荐的支部（申请表中也没有名册里的支部），请写出支部名称：shenbao assign {0} 支部名称"
    )]
    NoSuggestion(i64),
    #[error("名册中找不到支部“{name}”{hint}；请写名册中的完整名称（见 roster 文件）")]
    UnknownBranch { name: String, hint: String },
    #[error("邮件 #{0} 不在需人工处理的列表中（或已经处理过），无需 resolve")]
    NotForStaff(i64),
}

/// Replays `selection` through `p` (which must have been built with the [`NotifyMode`]
/// wanted). Commits unless `dry_run`.
pub async fn reprocess(
    p: &Pipeline,
    selection: &Selection,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let ids = select(p, selection).await?;
    // Read and understand every message first (no lock held), then write them in arrival order.
    let mut prepared = Vec::with_capacity(ids.len());
    for &id in &ids {
        let mut one = p
            .prepare(id)
            .await?
            .ok_or(CorrectError::NoSuchMessage(id))?;
        crate::pipeline::publish(one.take_blobs()).await?;
        prepared.push(one);
    }
    let mut tx = p.store.begin_write().await?;
    let mut before = Vec::with_capacity(ids.len());
    let mut keys = BTreeSet::new();
    for &id in &ids {
        before.push(snapshot(&mut tx, id).await?);
        keys.extend(store::submission_keys(&mut tx, id).await?);
        store::forget_processing(&mut tx, id)
            .await
            .context("重置这封邮件的处理结果")?;
    }
    let answers_before = store::outbox_count(&mut tx).await?;
    for one in prepared {
        p.commit_prepared(&mut tx, one).await?;
    }
    for &id in &ids {
        keys.extend(store::submission_keys(&mut tx, id).await?);
    }
    for (campaign, kind, key) in &keys {
        store::renumber_versions(&mut tx, campaign, kind, key).await?;
    }
    let mut report = Report {
        changes: Vec::new(),
        unchanged: 0,
        committed: !dry_run,
        answers: store::outbox_count(&mut tx).await? - answers_before,
    };
    for (&id, old) in ids.iter().zip(&before) {
        let new = snapshot(&mut tx, id).await?;
        let lines = diff(old, &new);
        if lines.is_empty() {
            report.unchanged += 1;
        } else {
            report.changes.push(Change { message: id, lines });
        }
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        if report.answers > 0 {
            p.outbox.notify_one();
        }
    }
    Ok(report)
}

/// `assign ID [BRANCH]`: registers message `id` for a roster branch (the one given, or the one
/// its form names) and acknowledges it.
pub async fn assign(
    p: &Pipeline,
    id: i64,
    branch: Option<&str>,
    dry_run: bool,
) -> anyhow::Result<(String, Report)> {
    let c = p
        .store
        .candidate(id)
        .await?
        .ok_or(CorrectError::NoSuchMessage(id))?;
    check_replayable(id, &c.status, c.disposition)?;
    let wanted = match branch {
        Some(b) => b.to_string(),
        None => c.suggested_branch.ok_or(CorrectError::NoSuggestion(id))?,
    };
    let m = p.roster.match_branch(&wanted);
    let name = match (&m.kind, m.branch) {
        (
            crate::campaign::roster::MatchKind::Exact | crate::campaign::roster::MatchKind::Fuzzy,
            Some(b),
        ) => b.name,
        _ => {
            return Err(CorrectError::UnknownBranch {
                name: wanted,
                hint: if m.candidates.is_empty() {
                    String::new()
                } else {
                    format!("（相近的有：{}）", m.candidates.join("、"))
                },
            }
            .into());
        }
    };
    p.store.set_assigned(id, Some(&name), &name).await?;
    let report = reprocess(p, &Selection::Ids(vec![id]), dry_run).await;
    if dry_run || report.is_err() {
        // A preview, or a failed replay: the assignment is not kept either.
        p.store.set_assigned(id, None, &name).await?;
    }
    Ok((name, report?))
}

/// `resolve ID [--note TEXT]`: marks a message that waited for a person as handled.
pub async fn resolve(p: &App, id: i64, note: Option<&str>) -> anyhow::Result<()> {
    if p.store.candidate(id).await?.is_none() {
        return Err(CorrectError::NoSuchMessage(id).into());
    }
    if !p.store.resolve(id, note, p.clock.now()).await? {
        return Err(CorrectError::NotForStaff(id).into());
    }
    Ok(())
}

fn check_replayable(id: i64, status: &str, disposition: Option<String>) -> anyhow::Result<()> {
    if status == "stored" {
        return Err(CorrectError::NotProcessed(id).into());
    }
    if matches!(disposition.as_deref(), Some("own_copy" | "too_large")) {
        return Err(CorrectError::NotReplayable(id).into());
    }
    Ok(())
}

/// The ids to replay, in arrival order.
async fn select(p: &App, selection: &Selection) -> anyhow::Result<Vec<i64>> {
    match selection {
        Selection::Ids(ids) => {
            let mut out = Vec::new();
            for &id in ids {
                let c = p
                    .store
                    .candidate(id)
                    .await?
                    .ok_or(CorrectError::NoSuchMessage(id))?;
                check_replayable(id, &c.status, c.disposition)?;
                out.push((c.arrival, id));
            }
            out.sort();
            out.dedup();
            Ok(out.into_iter().map(|(_, id)| id).collect())
        }
        Selection::All => Ok(p.store.replayable_ids().await?),
        Selection::Failed => Ok(p.store.failed_ids().await?),
    }
}

async fn snapshot(tx: &mut Tx, id: i64) -> anyhow::Result<Snapshot> {
    let m = store::message_state(tx, id)
        .await?
        .ok_or(CorrectError::NoSuchMessage(id))?;
    Ok(Snapshot {
        disposition: m.disposition,
        branch: m.branch,
        version: m.version,
        latest: m.latest,
        problems: m
            .problems
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default(),
        fields: m
            .fields
            .and_then(|f| serde_json::from_str(&f).ok())
            .unwrap_or(serde_json::Value::Null),
        needs_staff: m.needs_staff,
    })
}

/// What changed, one line per aspect, in Chinese.
fn diff(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let disp = |d: &str| crate::pipeline::disposition_label(d).to_string();
    if old.disposition != new.disposition {
        out.push(format!(
            "类别：{} → {}",
            disp(&old.disposition),
            disp(&new.disposition)
        ));
    }
    let name = |b: &Option<String>| b.clone().unwrap_or_else(|| "（未识别）".to_string());
    if old.branch != new.branch {
        out.push(format!(
            "支部：{} → {}",
            name(&old.branch),
            name(&new.branch)
        ));
    }
    let ver = |s: &Snapshot| match s.version {
        Some(v) if s.latest => format!("第 {v} 版（最新）"),
        Some(v) => format!("第 {v} 版"),
        None => "不是版本".to_string(),
    };
    if old.version != new.version || old.latest != new.latest {
        out.push(format!("版本：{} → {}", ver(old), ver(new)));
    }
    if old.problems != new.problems {
        let list = |p: &[String]| {
            if p.is_empty() {
                "无".to_string()
            } else {
                p.join("、")
            }
        };
        out.push(format!(
            "问题：{} → {}",
            list(&old.problems),
            list(&new.problems)
        ));
    }
    if old.fields != new.fields {
        let keys: BTreeSet<&String> = [&old.fields, &new.fields]
            .iter()
            .filter_map(|v| v.as_object())
            .flat_map(|o| o.keys())
            .collect();
        for k in keys {
            let a = old.fields.get(k).unwrap_or(&serde_json::Value::Null);
            let b = new.fields.get(k).unwrap_or(&serde_json::Value::Null);
            if a != b {
                out.push(format!("字段 {k}：{} → {}", show(a), show(b)));
            }
        }
    }
    if old.needs_staff != new.needs_staff {
        out.push(if new.needs_staff {
            "现在需要人工处理".to_string()
        } else {
            "不再需要人工处理".to_string()
        });
    }
    out
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "（空）".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The pipeline of a correction (`assign`, `resolve`, `reprocess`, from the command line or
/// the board): answers only when `notify`, under new Message-IDs.
pub fn correction_pipeline(app: std::sync::Arc<App>, notify: bool) -> Pipeline {
    let now = app.clock.now();
    let mut p = Pipeline::new(app);
    p.notify_mode = notify_mode(notify, now);
    p
}

/// The [`NotifyMode`] of a replay: silent unless `notify`; answers of a replay get their own
/// Message-IDs (numbered by the time of the replay).
pub fn notify_mode(notify: bool, now: chrono::DateTime<chrono::Utc>) -> NotifyMode {
    if notify {
        NotifyMode::Again(now.timestamp())
    } else {
        NotifyMode::Silent(crate::pipeline::Quiet::Reprocess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(branch: Option<&str>, version: Option<i64>, problems: &[&str]) -> Snapshot {
        Snapshot {
            disposition: "application".into(),
            branch: branch.map(str::to_string),
            version,
            latest: true,
            problems: problems.iter().map(|s| s.to_string()).collect(),
            fields: serde_json::json!({"project_name": "甲", "budget_yuan": 3000}),
            needs_staff: false,
        }
    }

    #[test]
    fn no_change_no_lines() {
        let a = snap(Some("X"), Some(1), &[]);
        assert!(diff(&a, &a.clone()).is_empty());
    }

    #[test]
    fn every_aspect_is_named() {
        let a = snap(None, Some(1), &["branch_unknown"]);
        let mut b = snap(Some("土木工程学院本科生第一党支部"), Some(2), &[]);
        b.fields = serde_json::json!({"project_name": "乙", "budget_yuan": 3000});
        b.latest = false;
        let lines = diff(&a, &b);
        assert_eq!(
            lines,
            [
                "支部：（未识别） → 土木工程学院本科生第一党支部",
                "版本：第 1 版（最新） → 第 2 版",
                "问题：branch_unknown → 无",
                "字段 project_name：甲 → 乙",
            ]
        );
    }

    #[test]
    fn becoming_conversation() {
        let a = snap(Some("X"), Some(2), &["form_missing", "summary_missing"]);
        let mut b = snap(Some("X"), None, &[]);
        b.disposition = "reply".into();
        b.fields = serde_json::Value::Null;
        b.needs_staff = true;
        let lines = diff(&a, &b);
        assert_eq!(lines[0], "类别：申报 → 回复/来信");
        assert!(lines.contains(&"版本：第 2 版（最新） → 不是版本".to_string()));
        assert!(lines.contains(&"问题：form_missing、summary_missing → 无".to_string()));
        assert!(lines.contains(&"字段 budget_yuan：3000 → （空）".to_string()));
        assert_eq!(lines.last().map(String::as_str), Some("现在需要人工处理"));
    }
}
