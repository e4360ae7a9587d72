//! Taking mail in: `run` (the daemon) and `ingest` (mail files from disk, 补录). One function per command; `cli::dispatch` calls them.

use super::*;

pub(super) async fn run(
    config: &ConfigSource,
    backfill_since: Option<chrono::NaiveDate>,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    crate::daemon::run(cfg, clock()?, backfill_since).await?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn ingest(
    config: &ConfigSource,
    files: Vec<PathBuf>,
    received_at: Option<String>,
    no_reply: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let clock = clock()?;
    let received = match received_at {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(&t)
                .with_context(|| format!("--received-at {t} 不是 RFC 3339 时间"))?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    let limit = cfg.imap.max_message_bytes;
    let app = crate::daemon::open_app(cfg.clone(), clock).await?;
    let store = app.store.clone();
    let mut pipeline = crate::pipeline::Pipeline::new(app);
    if no_reply {
        say!("补录（--no-reply）：只登记，不回复任何邮件。");
        pipeline.notify_mode =
            crate::pipeline::NotifyMode::Silent(crate::pipeline::Quiet::Backfill);
    } else {
        say!(
            "登记后会回复发件人（回执放入发件箱，由 `shenbao run` 发送）；补录旧邮件不想回复时请加 --no-reply。"
        );
    }
    let mut refused = 0;
    let mut queued = 0;
    for f in &files {
        let raw = match read_limited(f, limit) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("{e}");
                refused += 1;
                continue;
            }
        };
        let inserted = store
            .insert_file_message(&raw, received.or_else(|| Some(clock.now())), clock.now())
            .await?;
        match inserted {
            crate::store::Inserted::New(id) => {
                let outcome = pipeline.process(id).await?;
                let answers = store.queued_answers(id).await?;
                queued += answers;
                let answer = if answers > 0 {
                    format!("回复 {answers} 封已放入发件箱")
                } else {
                    match store.no_answer(id).await? {
                        Some(why) => format!("不回复：{why}"),
                        None => "不回复".to_string(),
                    }
                };
                match outcome {
                    Some(o) => {
                        let mut what = vec![
                            o.disposition.label().to_string(),
                            o.branch.unwrap_or_else(|| "-".to_string()),
                        ];
                        what.extend(o.version.map(|v| format!("第{v}版")));
                        say!("{}：{}；{answer}", f.display(), what.join(" "))
                    }
                    None => say!("{}：已处理过", f.display()),
                }
            }
            crate::store::Inserted::Duplicate(id) => {
                say!("{}：与已登记的邮件 #{id} 相同，跳过", f.display())
            }
        }
    }
    if no_reply {
        say!("没有放入任何回复。");
    } else if queued > 0 {
        say!("共 {queued} 封回复已放入发件箱，运行中的 `shenbao run` 会发送它们。");
    } else {
        say!("没有需要发送的回复。");
    }
    if refused > 0 {
        eprintln!("有 {refused} 个文件没有登记（原因见上）。");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads an .eml file of at most `limit` bytes (`imap.max_message_size`), looking at its size
/// before reading it, so a huge file is refused without being loaded into memory.
pub(super) fn read_limited(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .with_context(|| format!("打不开 {}，请检查文件路径和权限", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("读不了 {} 的大小", path.display()))?
        .len();
    let label =
        |n: u64| crate::notify::compose::size_label(usize::try_from(n).unwrap_or(usize::MAX));
    let too_large = |size: u64| {
        anyhow::anyhow!(
            "{} 有 {}，超过 imap.max_message_size（{}），没有登记：请确认文件，或在配置中调大 imap.max_message_size",
            path.display(),
            label(size),
            label(limit)
        )
    };
    if size > limit {
        return Err(too_large(size));
    }
    // The file may grow between the two looks: never read more than the limit.
    let mut raw = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut raw)
        .with_context(|| format!("读取 {} 失败", path.display()))?;
    if raw.len() as u64 > limit {
        return Err(too_large(raw.len() as u64));
    }
    Ok(raw)
}
