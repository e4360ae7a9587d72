//! Staff corrections: `reprocess`, `assign` and `resolve` (the decisions are in `pipeline::correct`). One function per command; `cli::dispatch` calls them.

use super::*;

pub(super) async fn reprocess(
    config: &ConfigSource,
    ids: Vec<i64>,
    all: bool,
    failed: bool,
    dry_run: bool,
    notify: bool,
) -> anyhow::Result<ExitCode> {
    let selection = if all {
        crate::pipeline::correct::Selection::All
    } else if failed {
        crate::pipeline::correct::Selection::Failed
    } else {
        crate::pipeline::correct::Selection::Ids(ids)
    };
    let p = correction_pipeline(config, notify).await?;
    let report = crate::pipeline::correct::reprocess(&p, &selection, dry_run).await?;
    say_raw!("{report}");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn assign(
    config: &ConfigSource,
    id: i64,
    branch: Option<String>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let p = correction_pipeline(config, true).await?;
    let (name, report) =
        crate::pipeline::correct::assign(&p, id, branch.as_deref(), dry_run).await?;
    say!("邮件 #{id} 登记为“{name}”的材料：");
    say_raw!("{report}");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn resolve(
    config: &ConfigSource,
    id: i64,
    note: Option<String>,
) -> anyhow::Result<ExitCode> {
    let p = correction_pipeline(config, false).await?;
    crate::pipeline::correct::resolve(&p, id, note.as_deref()).await?;
    say!("邮件 #{id} 已标为处理完毕，不再列入待人工处理的邮件。");
    Ok(ExitCode::SUCCESS)
}

/// The pipeline of a correction command: answers only when `notify`, under new Message-IDs.
pub(super) async fn correction_pipeline(
    config: &ConfigSource,
    notify: bool,
) -> anyhow::Result<crate::pipeline::Pipeline> {
    let cfg = load(config)?;
    let app = crate::daemon::open_app(cfg, clock()?).await?;
    Ok(crate::pipeline::correct::correction_pipeline(app, notify))
}
