//! What staff look at: `health`, `status` (text or JSON), `show` and `export`. One function per command; `cli::dispatch` calls them.

use super::*;

pub(super) async fn health(config: &ConfigSource) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let clock = clock()?;
    // No database yet: the daemon never ran (or data_dir is wrong) — critical.
    let store = match crate::store::Store::open_existing(&cfg.database_connect_url(), &cfg.data_dir)
        .await
    {
        Ok(store) => store,
        Err(e @ crate::store::StoreError::Missing(_)) => {
            say!("shenbao 运行状态：严重");
            say!("  [严重] {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let now = clock.now();
    let mut figures = store.figures(now).await?;
    figures.template_errors = crate::daemon::health::still_current(
        figures.template_errors,
        cfg.ack.templates_dir.as_deref(),
    );
    let report = crate::daemon::health::assess(&figures, &cfg.health, now);
    say!("shenbao 运行状态：{}", report.level.label());
    for c in &report.checks {
        say!("  [{}] {}", c.level.label(), c.text);
    }
    Ok(ExitCode::from(report.level.exit_code()))
}

pub(super) async fn status_json(config: &ConfigSource) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let clock = clock()?;
    let store = crate::daemon::open_existing_app(cfg.clone(), clock)
        .await?
        .store
        .clone();
    let now = clock.now();
    let mut figures = store.figures(now).await?;
    figures.template_errors = crate::daemon::health::still_current(
        figures.template_errors,
        cfg.ack.templates_dir.as_deref(),
    );
    let report = crate::daemon::health::assess(&figures, &cfg.health, now);
    let mut v =
        serde_json::to_string_pretty(&crate::daemon::health::to_json(&figures, &report, now))?;
    v.push('\n');
    say_raw!("{v}");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn status_text(config: &ConfigSource) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let app = crate::daemon::open_existing_app(cfg, clock()?).await?;
    let store = app.store.clone();
    let st = crate::export::status(&store, app.roster.len()).await?;
    campaigns(&store, &app.cfg).await?;
    say!(
        "当前阶段：{}",
        crate::export::phase(&app.store, &app.cfg, clock()?.now()).await?
    );
    say_raw!("{st}");
    unreachable_branches(&store, &app.roster, &app.cfg.campaign.roster).await?;
    if let Some(f) = crate::send::forecast(&store, &app.cfg.smtp, clock()?.now()).await? {
        say!("{f}");
    }
    template_errors(&store, &app.cfg, clock()?.now()).await?;
    daemons(&store).await?;
    Ok(ExitCode::SUCCESS)
}

/// Which campaign this is, the others to look at with `--campaign`, and the records of a
/// campaign the config no longer names (a database from before `[[campaign]]` ids).
async fn campaigns(store: &crate::store::Store, cfg: &Config) -> anyhow::Result<()> {
    let counts = store.campaign_counts().await?;
    if cfg.campaigns.len() > 1 {
        say!("活动：{}（{}）", cfg.campaign.name, cfg.campaign.id);
        let others: Vec<String> = cfg
            .campaigns
            .iter()
            .filter(|c| c.id != cfg.campaign.id)
            .map(|c| format!("{}（--campaign {}）", c.name, c.id))
            .collect();
        say!("其他活动：{}", others.join("；"));
    }
    for (id, n) in counts {
        if cfg.campaign_by_id(&id).is_none() {
            say!(
                "注意：数据库中有 {n} 封邮件归在活动“{id}”下，但配置中没有这个 id；如果它就是 {} 这一期，运行 shenbao db rename-campaign {id} {}",
                cfg.campaign.name,
                cfg.campaign.id
            );
        }
    }
    Ok(())
}

/// Which daemon does what (the leases, [`crate::duty`]); nothing when none ever ran.
async fn daemons(store: &crate::store::Store) -> anyhow::Result<()> {
    let leases = store.leases().await?;
    if leases.is_empty() {
        return Ok(());
    }
    // Leases are judged by the wall clock, as the daemons judge them.
    let now = crate::duty::Duties::now();
    say!("守护进程与分工：");
    for l in &leases {
        let (what, state, _) = crate::duty::describe(l, now);
        say!("  {what}（{state}）");
    }
    Ok(())
}

pub(super) async fn show(config: &ConfigSource, branch: String) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let app = crate::daemon::open_existing_app(cfg, clock()?).await?;
    let store = app.store.clone();
    let name = match app.roster.match_branch(&branch) {
        m if m.kind == crate::campaign::roster::MatchKind::Exact => {
            m.branch.map(|b| b.name).unwrap_or(branch.clone())
        }
        _ => branch.clone(),
    };
    let versions = crate::export::history(&store, &name).await?;
    if versions.is_empty() {
        say!("没有“{branch}”的任何登记。可用 `shenbao export --format csv` 查看全部支部。");
        return Ok(ExitCode::FAILURE);
    }
    for v in &versions {
        say_raw!("{}", crate::export::describe(v));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn export(
    config: &ConfigSource,
    format: ExportFormat,
    output: Option<PathBuf>,
    materials: Option<PathBuf>,
    section: Option<String>,
    college: Option<String>,
) -> anyhow::Result<ExitCode> {
    if let Some(out) = materials {
        let filter = crate::export::materials::Filter { section, college };
        return export_materials(config, &out, filter).await;
    }
    let cfg = load(config)?;
    let clock = clock()?;
    let store = crate::daemon::open_existing_app(cfg.clone(), clock)
        .await?
        .store
        .clone();
    let subs = crate::export::latest_reviewed(&store, &cfg.levels).await?;
    let bytes = match format {
        ExportFormat::Json => {
            let e = crate::export::Export {
                campaign: cfg.campaign.name.clone(),
                campaign_id: cfg.campaign.id.clone(),
                generated_at: crate::clock::beijing_rfc3339(clock.now()),
                submissions: subs,
            };
            let mut v = serde_json::to_vec_pretty(&e)?;
            v.push(b'\n');
            v
        }
        ExportFormat::Csv => crate::export::to_csv(&subs)?,
        ExportFormat::Xlsx => {
            if output.is_none() {
                anyhow::bail!("xlsx 是二进制文件，请用 -o 指定输出文件，例如 -o 汇总表.xlsx");
            }
            crate::export::to_xlsx(&format!("{}申报汇总表", cfg.campaign.name), &subs)?
        }
    };
    match output {
        Some(p) => {
            crate::fsmode::write(&p, bytes).with_context(|| format!("写入 {}", p.display()))?
        }
        None => {
            use std::io::Write;
            // A reader that stops early (`| head`) is not an error.
            if let Err(e) = std::io::stdout().write_all(&bytes)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `export --materials OUT`: the reviewers' files, and what was written where.
pub(super) async fn export_materials(
    config: &ConfigSource,
    out: &Path,
    filter: crate::export::materials::Filter,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let app = crate::daemon::open_existing_app(cfg.clone(), clock()?).await?;
    let crate::export::materials::Exported {
        layout,
        written,
        applications,
        described,
    } = crate::export::materials::export(&app, &filter, out).await?;
    say!(
        "已写入评审材料{}：{}",
        if crate::export::materials::is_zip(out) {
            "压缩包"
        } else {
            "目录"
        },
        out.display()
    );
    say!(
        "  {} 个支部{}，{} 个文件（申请表和汇总表 {} 个，结项材料 {} 个），按“学院/支部名称/原文件名”存放；另有{}（{} 份申报）",
        layout.branches,
        if described.is_empty() {
            String::new()
        } else {
            format!("（只含{described}）")
        },
        written.files,
        written.application_files,
        written.closure_files,
        crate::export::materials::SUMMARY_NAME,
        applications
    );
    if layout.superseded > 0 {
        say!(
            "  结项材料中有 {} 个文件已被同一支部后来发送的同名文件取代，只放入了最新的",
            layout.superseded
        );
    }
    if !layout.without_files.is_empty() {
        say!(
            "  以下 {} 个支部没有可放入的申请表、汇总表或结项材料文件，只列在汇总表中：{}",
            layout.without_files.len(),
            layout.without_files.join("、")
        );
    }
    if !written.damaged.is_empty() {
        eprintln!(
            "有 {} 个文件的存档缺失或已损坏，没有写入（请从备份恢复数据目录 {} 下的 blobs 后重新导出）：\n  {}",
            written.damaged.len(),
            cfg.data_dir.display(),
            written.damaged.join("\n  ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `status`: templates that failed at run time in the last 7 days (the built-in one was used),
/// unless their file was changed since.
pub(super) async fn template_errors(
    store: &crate::store::Store,
    cfg: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let errors = crate::daemon::health::still_current(
        store
            .template_errors_since(now - crate::store::ops::TEMPLATE_ERRORS_WINDOW)
            .await?,
        cfg.ack.templates_dir.as_deref(),
    );
    if errors.is_empty() {
        return Ok(());
    }
    say!(
        "模板出错（近 7 天 {} 次；这些邮件已改用内置模板发出。请改正模板，用 `shenbao check-config` 检查）：",
        errors.len()
    );
    for e in &errors {
        say!(
            "  {}{}  {}",
            crate::clock::beijing(e.at),
            e.message.map(|m| format!(" 邮件 #{m}")).unwrap_or_default(),
            e.error
        );
    }
    Ok(())
}

/// `status`: the roster branches shenbao cannot write to, with the reminders and results the
/// ledger recorded as not sent to them.
pub(super) async fn unreachable_branches(
    store: &crate::store::Store,
    roster: &crate::campaign::roster::Roster,
    file: &Path,
) -> anyhow::Result<()> {
    if roster.unreachable().is_empty() {
        return Ok(());
    }
    say!(
        "无法联系的支部（名册 {} 中没有可用的书记邮箱，收不到提醒和评审结果；请补全名册，或另行通知）：",
        file.display()
    );
    for u in roster.unreachable() {
        let skipped = store.skipped_for(&u.branch).await?;
        let tail = if skipped > 0 {
            format!("（已因此跳过 {skipped} 封邮件）")
        } else {
            String::new()
        };
        say!("  第 {} 行 {}：{}{tail}", u.line, u.branch, u.why.label());
    }
    Ok(())
}
