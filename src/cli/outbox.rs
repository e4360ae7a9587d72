//! The outbox: `outbox list`, `show` and `retry`. One function per command; `cli::dispatch` calls them.

use super::*;

pub(super) async fn outbox(
    config: &ConfigSource,
    action: OutboxAction,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let store = match action {
        OutboxAction::List { .. } => {
            crate::store::Store::open_existing(&cfg.database_connect_url(), &cfg.data_dir).await?
        }
        OutboxAction::Retry { .. } => {
            crate::store::Store::open(&cfg.database_connect_url(), &cfg.data_dir)
                .await
                .with_context(|| format!("打开数据库 {}", cfg.database_url))?
        }
    };
    outbox_action(&store, action, clock()?).await
}

pub(super) async fn outbox_action(
    store: &crate::store::Store,
    action: OutboxAction,
    clock: Clock,
) -> anyhow::Result<ExitCode> {
    use crate::store::{OutboxFilter, Retry};
    match action {
        OutboxAction::List { status } => {
            let (filter, label) = match status {
                OutboxStatus::Dead => (OutboxFilter::Dead, "发送失败、已放弃的邮件"),
                OutboxStatus::Queued => (OutboxFilter::Queued, "尚未发出的邮件"),
                OutboxStatus::Sent => (OutboxFilter::Sent, "已发出的邮件"),
                OutboxStatus::All => (OutboxFilter::All, "发件箱中的全部邮件"),
            };
            let rows = store.outbox_list(filter).await?;
            if rows.is_empty() {
                say!("{label}：没有。");
                return Ok(ExitCode::SUCCESS);
            }
            say!("{label}：共 {} 封", rows.len());
            for e in &rows {
                say!("  {}", outbox_line(e));
            }
            if rows.iter().any(|e| e.status == "dead") {
                say!(
                    "修好 SMTP 或收件地址后，用 `shenbao outbox retry 编号` 重发一封，或 `shenbao outbox retry --all-dead` 重发全部已放弃的邮件。"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxAction::Retry { all_dead: true, .. } => {
            let rows = store.outbox_retry_dead(clock.now()).await?;
            if rows.is_empty() {
                say!("没有发送失败、已放弃的邮件，无需重发。");
                return Ok(ExitCode::SUCCESS);
            }
            for e in &rows {
                say!("{}", requeued_line(e));
            }
            say!("共 {} 封，重试次数从头计算。{PICKUP}", rows.len());
            Ok(ExitCode::SUCCESS)
        }
        OutboxAction::Retry { id, .. } => {
            let Some(id) = id else {
                anyhow::bail!("请给出邮件编号，例如 `shenbao outbox retry 12`，或用 --all-dead");
            };
            match store.outbox_retry(id, clock.now()).await? {
                Retry::Requeued(e) => {
                    say!("{}", requeued_line(&e));
                    say!(
                        "原状态：{}{}；重试次数从头计算。",
                        outbox_state(&e),
                        e.last_error
                            .as_deref()
                            .filter(|s| !s.is_empty())
                            .map(|err| format!("，最后的错误：{err}"))
                            .unwrap_or_default()
                    );
                    say!("{PICKUP}");
                    Ok(ExitCode::SUCCESS)
                }
                Retry::AlreadyQueued(e) => {
                    say!(
                        "#{} → {}（{}）已在发件箱中等待发送，还没有失败过，无需重发。{PICKUP}",
                        e.id,
                        e.to_addr,
                        kind_label(&e.kind)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Retry::AlreadySent(e) => {
                    eprintln!(
                        "#{} → {}（{}）已于 {} 发出，不会再发一次。对方说没有收到时，请先请对方查看垃圾邮件；确需再发，请对方重新发来邮件，系统会再回复。",
                        e.id,
                        e.to_addr,
                        kind_label(&e.kind),
                        e.sent_at.map(crate::clock::beijing).unwrap_or_default()
                    );
                    Ok(ExitCode::FAILURE)
                }
                Retry::InFlight(e) => {
                    eprintln!(
                        "#{} → {}（{}）的状态是“{}”：守护进程正在处理它，现在重发可能让对方收到两封。请稍后用 `shenbao outbox list` 查看；若最终发送失败，再用 `shenbao outbox retry {}`。",
                        e.id,
                        e.to_addr,
                        kind_label(&e.kind),
                        outbox_state(&e),
                        e.id
                    );
                    Ok(ExitCode::FAILURE)
                }
                Retry::Unknown => {
                    eprintln!(
                        "发件箱中没有编号为 #{id} 的邮件。用 `shenbao outbox list` 查看全部编号（`shenbao status` 列出发送失败的邮件）。"
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

pub(super) use crate::notify::compose::kind_label;

/// An outbox row's state, in words.
pub(super) fn outbox_state(e: &crate::store::OutboxEntry) -> String {
    use crate::clock::beijing;
    match e.status.as_str() {
        "queued" if e.attempts > 0 => format!(
            "等待重试（已尝试 {} 次，下次 {}）",
            e.attempts,
            e.next_attempt_at.map(beijing).unwrap_or_default()
        ),
        "queued" => "待发送".to_string(),
        "sending" => "正在发送".to_string(),
        "unconfirmed" => "发送中断，正在确认是否已送达".to_string(),
        "sent" => format!("已发出（{}）", e.sent_at.map(beijing).unwrap_or_default()),
        "dead" => format!("已放弃（尝试 {} 次）", e.attempts),
        other => other.to_string(),
    }
}

/// What `outbox retry` says of a mail it put back in the queue.
pub(super) fn requeued_line(e: &crate::store::OutboxEntry) -> String {
    format!(
        "已重新排队：#{} → {}（{}）{}",
        e.id,
        e.to_addr,
        kind_label(&e.kind),
        e.subject
    )
}

pub(super) fn outbox_line(e: &crate::store::OutboxEntry) -> String {
    let mut line = format!(
        "#{} → {}（{}）{}  {}",
        e.id,
        e.to_addr,
        kind_label(&e.kind),
        crate::attach::display_text(&e.subject),
        outbox_state(e)
    );
    if e.status != "sent"
        && let Some(err) = e.last_error.as_deref().filter(|s| !s.is_empty())
    {
        line.push_str(&format!("  [最后的错误：{err}]"));
    }
    line
}

pub(super) const PICKUP: &str = "运行中的守护进程（shenbao run）最迟 5 秒内会发送；守护进程没有运行时，下次启动即发送。用 `shenbao outbox list --status queued` 查看进度。";
