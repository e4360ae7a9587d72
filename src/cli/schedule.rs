//! The scheduler by hand: `remind` and `digest` (dry runs, or queued now). One function per command; `cli::dispatch` calls them.

use super::*;

pub(super) async fn remind(
    config: &ConfigSource,
    dry_run: bool,
    at: Option<String>,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let clock = clock()?;
    let now = at_or_now(at.as_deref(), clock)?;
    let app = if dry_run {
        crate::daemon::open_existing_app(cfg.clone(), clock).await?
    } else {
        crate::daemon::open_app(cfg.clone(), clock).await?
    };
    let planned = crate::schedule::remind::plan_reminders(&app, now).await?;
    if planned.is_empty() {
        say!("{} 没有到期的提醒。", crate::clock::beijing(now));
    }
    for item in &planned {
        match &item.skipped {
            Some(why) => say!(
                "{}  → {}  跳过：{why}",
                item.rule,
                item.branch.as_deref().unwrap_or("")
            ),
            None => say!(
                "{}  → {} <{}>  {}",
                item.rule,
                item.branch.as_deref().unwrap_or(""),
                item.to,
                item.subject
            ),
        }
    }
    let upcoming = crate::schedule::upcoming_occasions(
        &cfg.reminders,
        |k| match k {
            crate::schedule::DeadlineKind::Application => Some(cfg.campaign.deadline),
            crate::schedule::DeadlineKind::Closure => cfg.campaign.closure_deadline,
        },
        cfg.campaign.timezone,
        now,
    );
    for o in upcoming.iter().take(5) {
        say!(
            "之后：{} 于 {}（北京时间）",
            o.rule,
            crate::clock::beijing(o.fire_at)
        );
    }
    if !dry_run && !planned.is_empty() {
        let n = crate::schedule::remind::commit(&app, &planned, clock.now()).await?;
        say!("已放入发件箱 {n} 封；运行中的 `shenbao run` 会发送。");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn digest(
    config: &ConfigSource,
    dry_run: bool,
    send_now: bool,
    at: Option<String>,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let clock = clock()?;
    let now = at_or_now(at.as_deref(), clock)?;
    if cfg.digests.is_empty() {
        say!("配置中没有 [[digest]]，没有摘要可发。");
        return Ok(ExitCode::FAILURE);
    }
    if send_now && let Some(why) = cfg.smtp.missing_password() {
        anyhow::bail!("{why}");
    }
    if !dry_run && !send_now {
        eprintln!(
            "没有发送任何摘要：预览请加 --dry-run，确要立即发给评审人请加 --now（平时由 `shenbao run` 按 [[digest]] 的排期发送）。"
        );
        return Ok(ExitCode::FAILURE);
    }
    let app = if dry_run {
        crate::daemon::open_existing_app(cfg.clone(), clock).await?
    } else {
        crate::daemon::open_app(cfg.clone(), clock).await?
    };
    let (store, wake) = (app.store.clone(), app.outbox.clone());
    // A dry run shows the digest the schedule would send at that instant; when none is
    // due, the digest of everything since the last one.
    let mut planned = crate::schedule::remind::plan_digests(&app, now, send_now).await?;
    if dry_run && planned.iter().all(|p| p.mail.is_none()) {
        planned = crate::schedule::remind::plan_digests(&app, now, true).await?;
    }
    if dry_run {
        let mut shown = std::collections::BTreeSet::new();
        for item in &planned {
            if shown.insert(item.rule.clone()) {
                say!(
                    "== {}（收件人：{}）\n主题：{}\n\n{}",
                    item.rule,
                    planned
                        .iter()
                        .filter(|p| p.rule == item.rule)
                        .map(|p| p.to.as_str())
                        .collect::<Vec<_>>()
                        .join("、"),
                    item.subject,
                    item.text
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ids = crate::schedule::remind::commit_ids(&app, &planned, clock.now()).await?;
    if ids.is_empty() {
        say!("没有新的摘要要发送（自上次摘要以来的内容已发过）。");
        return Ok(ExitCode::SUCCESS);
    }
    let sender = crate::daemon::sender(&cfg, store, clock, wake)?;
    let sent = sender.send_only(&ids).await?;
    say!(
        "摘要 {} 封，已发出 {sent} 封；发件箱中的其他邮件不在此次发送之列。",
        ids.len()
    );
    if sent < ids.len() {
        say!("未发出的摘要留在发件箱，由 `shenbao run` 重试；用 `shenbao outbox list` 查看原因。");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
