//! The review: `review import` (the reviewers' sheet) and `review notify` (the result mails). One function per command; `cli::dispatch` calls them.

use super::*;

pub(super) async fn review(
    config: &ConfigSource,
    action: ReviewAction,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let clock = clock()?;
    let app = crate::daemon::open_app(cfg.clone(), clock).await?;
    let (store, wake) = (app.store.clone(), app.outbox.clone());
    match action {
        ReviewAction::Import { file, by, partial } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".to_string());
            let outcome =
                crate::schedule::results::import(&app, &file, &by, clock.now(), partial).await?;
            Ok(review_import_report(&file, outcome))
        }
        ReviewAction::Notify { dry_run } => {
            if !dry_run && let Some(why) = cfg.smtp.missing_password() {
                anyhow::bail!("{why}");
            }
            let plan = crate::schedule::results::plan_results(&app, clock.now()).await?;
            if plan.planned.iter().all(|i| i.mail.is_none()) {
                say!("没有需要发送的评审结果。");
            }
            // Skips (nobody to write to) are listed with the other branches below.
            for item in plan.planned.iter().filter(|i| i.mail.is_some()) {
                say!(
                    "{} <{}>  {}",
                    item.branch.as_deref().unwrap_or(""),
                    item.to,
                    item.subject
                );
            }
            if !plan.not_notified.is_empty() {
                say!(
                    "以下 {} 个支部本次不发送评审结果：",
                    plan.not_notified.len()
                );
                for n in &plan.not_notified {
                    say!("  {}：{}", n.branch, n.reason);
                }
            }
            if !dry_run && !plan.planned.is_empty() {
                let ids =
                    crate::schedule::remind::commit_ids(&app, &plan.planned, clock.now()).await?;
                let sender = crate::daemon::sender(&cfg, store, clock, wake)?;
                let sent = sender.send_only(&ids).await?;
                say!(
                    "评审结果 {} 封已放入发件箱，本次发出 {sent} 封（发件箱中的其他邮件留给守护进程）。",
                    ids.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `review import` says: what was imported, what was skipped, what is still ungraded; or
/// why nothing was imported.
pub(super) fn review_import_report(
    file: &Path,
    outcome: crate::schedule::results::ImportOutcome,
) -> ExitCode {
    use crate::schedule::results::ImportOutcome;
    let list = |u: &[crate::campaign::review::Ungraded]| {
        u.iter().map(|u| format!("  - {u}\n")).collect::<String>()
    };
    match outcome {
        ImportOutcome::Imported {
            decisions,
            ungraded,
            unrecognised,
        } => {
            let funded = decisions.iter().filter(|d| d.funded).count();
            say!(
                "已导入 {} 条评审结果（立项 {funded} 个，未立项 {} 个）。",
                decisions.len(),
                decisions.len() - funded
            );
            for r in &unrecognised {
                say!(
                    "跳过第 {} 行「{}」：支部未识别，没有评审；须工作人员先用 shenbao assign 指定支部，重新导出汇总表后再评审。",
                    r.row,
                    r.branch
                );
            }
            if !ungraded.is_empty() {
                say_raw!(
                    "还有 {} 个已申报的支部没有评审结果（评审后再导入，只含部分支部时加 --partial）：\n{}",
                    ungraded.len(),
                    list(&ungraded)
                );
            }
            say!("用 `shenbao review notify --dry-run` 预览结果通知。");
            ExitCode::SUCCESS
        }
        ImportOutcome::Invalid { errors, ungraded } => {
            eprintln!(
                "{} 有 {} 处问题，本次没有导入任何结果；请修改后重新导入：\n{}",
                file.display(),
                errors.len(),
                crate::campaign::review::format_errors(&errors)
            );
            if !ungraded.is_empty() {
                eprint!(
                    "另外，以下 {} 个已申报的支部没有评审结果（请补填；确要稍后评审时，导入加 --partial）：\n{}",
                    ungraded.len(),
                    list(&ungraded)
                );
            }
            ExitCode::FAILURE
        }
        ImportOutcome::Incomplete {
            decisions,
            ungraded,
        } => {
            eprint!(
                "{} 中有 {} 个已申报的支部没有评审结果，本次没有导入任何结果：\n{}请补填后重新导入；这些支部确要稍后评审时，加 --partial 先导入其余 {decisions} 条结果。\n",
                file.display(),
                ungraded.len(),
                list(&ungraded)
            );
            ExitCode::FAILURE
        }
    }
}
