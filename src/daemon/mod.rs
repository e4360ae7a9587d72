//! `shenbao run`: the daemon as sources → transforms → sinks (Vector's shape): the IMAP
//! intake feeds the pipeline, the pipeline and the scheduler (reminders, digests) feed the
//! outbox, the sender drains it. Each runs as its own task; SIGTERM or Ctrl-C asks them all to
//! stop at a safe point.

pub mod health;

use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::intake::Intake;
use crate::pipeline::Pipeline;
use crate::send::Sender;
use crate::store::Store;
use anyhow::Context;
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Opens the store and builds the application context: shared by `run` and the commands.
pub async fn open_app(cfg: Arc<Config>, clock: Clock) -> anyhow::Result<Arc<App>> {
    let store = Store::open(&cfg.database_connect_url(), &cfg.data_dir)
        .await
        .with_context(|| format!("打开数据库 {}", cfg.database_url))?;
    with_app(store, cfg, clock)
}

/// [`open_app`] for the commands that only read: the database must exist with the current
/// schema ([`Store::open_existing`]); nothing is created or migrated.
pub async fn open_existing_app(cfg: Arc<Config>, clock: Clock) -> anyhow::Result<Arc<App>> {
    let store = Store::open_existing(&cfg.database_connect_url(), &cfg.data_dir).await?;
    with_app(store, cfg, clock)
}

/// [`open_app`] with the pipeline on top, and the store and outbox wake-up it holds (the
/// tests' setup takes them apart).
pub async fn open(
    cfg: Arc<Config>,
    clock: Clock,
) -> anyhow::Result<(Store, Arc<Pipeline>, Arc<Notify>)> {
    let app = open_app(cfg, clock).await?;
    let (store, wake) = (app.store.clone(), app.outbox.clone());
    Ok((store, Arc::new(Pipeline::new(app)), wake))
}

fn with_app(store: Store, cfg: Arc<Config>, clock: Clock) -> anyhow::Result<Arc<App>> {
    let wake = Arc::new(Notify::new());
    Ok(Arc::new(App::new(store, clock, cfg, wake)?))
}

/// The outbox sender of this configuration, able to look for the copies of interrupted
/// sends in the intake mailbox: shared by `run` and the commands that send at once.
pub fn sender(
    cfg: &Config,
    store: Store,
    clock: Clock,
    wake: Arc<Notify>,
) -> Result<Sender, crate::send::SendError> {
    Ok(Sender::new(
        store,
        clock,
        cfg.smtp.clone(),
        &cfg.campaign.intake_address,
        wake,
    )?
    .with_copy_check(cfg.imap.clone()))
}

pub async fn run(
    cfg: Arc<Config>,
    clock: Clock,
    backfill_since: Option<NaiveDate>,
) -> anyhow::Result<()> {
    if cfg.imap.password.value().is_none() {
        anyhow::bail!(
            "没有 IMAP 密码：请设置{}（见配置 [imap] password_credential / password_env / password_file）",
            cfg.imap.password.source
        );
    }
    if let Some(why) = cfg.smtp.missing_password() {
        anyhow::bail!("{why}");
    }
    let app = open_app(cfg.clone(), clock).await?;
    let (store, wake) = (app.store.clone(), app.outbox.clone());
    let pipeline = Arc::new(Pipeline::new(app.clone()));
    let done = pipeline.process_pending().await?;
    if !done.is_empty() {
        tracing::info!(count = done.len(), "处理了上次运行留下的邮件");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (backlog, backlog_rx) = watch::channel(0);
    let sender = sender(&cfg, store.clone(), clock, wake)?.with_backlog(backlog_rx);
    // The board first: a busy port stops the start before anything else runs.
    let web_task = crate::web::start(app.clone(), false, stop_rx.clone()).await?;
    let duties =
        crate::duty::Duties::new(store.clone(), cfg.lease).sending_as(&cfg.smtp.from_address);
    // Alive before anything is claimed in its name: another daemon must never take this
    // one's first sends for a dead daemon's.
    duties.announce().await;
    let alive_task = tokio::spawn(duties.clone().stay_alive(stop_rx.clone()));
    let sender_task = tokio::spawn(sender.with_duties(duties.clone()).run(stop_rx.clone()));
    let scheduler_task = tokio::spawn(crate::schedule::remind::run(
        app,
        duties.clone(),
        stop_rx.clone(),
    ));
    let intake = Intake {
        store,
        clock,
        cfg: cfg.clone(),
        pipeline,
        backfill_since,
        backfilled: Default::default(),
        backlog,
        duties: duties.clone(),
    };
    let intake_task = tokio::spawn(intake.run(stop_rx));
    tracing::info!(
        imap = %format!("{}:{}", cfg.imap.host, cfg.imap.port),
        folder = %cfg.imap.folder,
        database = %cfg.database_url,
        daemon = %duties.holder,
        "shenbao 已启动"
    );
    shutdown_signal().await;
    tracing::info!("正在停止：做完当前这一步");
    let _ = stop_tx.send(true);
    let both = async {
        let _ = intake_task.await;
        let _ = scheduler_task.await;
        let _ = sender_task.await;
        let _ = alive_task.await;
        if let Some(t) = web_task {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .is_err()
    {
        tracing::warn!("各项任务 30 秒内没有停下，直接退出（所有状态都已提交，不会丢失）");
    }
    tracing::info!("已停止");
    Ok(())
}

pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
