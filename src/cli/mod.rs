//! The command line: `shenbao [--config FILE] <command>`.

pub mod zh;

use crate::clock::Clock;
use crate::config::Config;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `println!` that ignores a closed pipe (`shenbao export | head` must not panic).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that ignores a closed pipe.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

mod correct;
mod db;
mod mail;
mod outbox;
mod review;
mod schedule;
mod setup;
mod status;
mod web;

#[derive(Parser, Debug)]
#[command(
    name = "shenbao",
    version,
    about = "申报：把邮件申报活动变成自动运转的系统",
    // clap's own --help/--version are English: replaced in `command()`.
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// 日志格式：text（人读，北京时间）或 json（每行一个 JSON 对象，供日志系统收集）
    #[arg(
        value_name = "格式",
        long,
        global = true,
        env = "SHENBAO_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// 配置文件路径
    #[arg(
        value_name = "文件",
        long,
        short,
        global = true,
        env = "SHENBAO_CONFIG",
        default_value = "shenbao.toml"
    )]
    pub config: PathBuf,
    /// 查看或处理哪一期活动（[[campaign]] 的 id，如 2025-autumn）；默认为当前这一期。守护进程按邮件到达的时间自动归入各期，不接受此项
    #[arg(value_name = "活动", long, global = true, env = "SHENBAO_CAMPAIGN")]
    pub campaign: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where a command's configuration comes from: the file, and the campaign `--campaign` chose
/// (`None`: the current one).
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    pub campaign: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// 人读的文本，北京时间（带时区），输出到终端时才着色
    Text,
    /// 每行一个 JSON 对象
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// 生成一份可直接试用的配置和数据目录（连接本机测试邮件服务器 scripts/mailstack.sh）
    Init {
        /// 目标目录
        #[arg(value_name = "目录", long, default_value = "shenbao-local")]
        dir: PathBuf,
        /// 覆盖已有的配置文件
        #[arg(long)]
        force: bool,
    },
    /// 运行守护进程：监视申报邮箱、登记、回复（Ctrl-C 或 SIGTERM 安全退出）
    Run {
        /// 也处理该日期（含）以来仍在申报邮箱中的邮件，格式 2025-09-17；首次启动和之后的启动都有效，已登记过的邮件会跳过，不会重复回复
        #[arg(value_name = "日期", long)]
        backfill_since: Option<chrono::NaiveDate>,
    },
    /// 把导出的 .eml 文件按同样流程处理（补录、测试）
    Ingest {
        /// .eml 文件
        #[arg(value_name = "文件", required = true)]
        files: Vec<PathBuf>,
        /// 视为到达服务器的时间（RFC 3339），用于判断是否逾期；默认为当前时间
        #[arg(value_name = "时间", long)]
        received_at: Option<String>,
        /// 只登记，不回复（补录旧邮件时用）：不放入任何回执，记录为“补录未回复”
        #[arg(long)]
        no_reply: bool,
    },
    /// 显示当前登记情况、发件箱和需要人工处理的邮件
    Status {
        /// 以 JSON 输出运行状态的各项数字（与 `shenbao health` 相同），供脚本使用
        #[arg(long)]
        json: bool,
    },
    /// 检查守护进程是否正常工作；退出码 0 正常、1 需要注意、2 严重（供 cron 和监控使用）
    Health,
    /// 生成命令行补全脚本，例如 `shenbao completions bash > /etc/bash_completion.d/shenbao`
    Completions {
        /// bash、zsh、fish、elvish 或 powershell
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// 生成 man 手册页，例如 `shenbao man > /usr/local/share/man/man1/shenbao.1`
    Man,
    /// 导出每个支部最新版本的申报
    Export {
        #[arg(value_name = "格式", long, value_enum, default_value = "json")]
        format: ExportFormat,
        /// 写入文件（默认输出到屏幕）
        #[arg(value_name = "文件", long, short)]
        output: Option<PathBuf>,
        /// 导出评审材料到这个压缩包或目录：各支部最新一版的申请表、汇总表及结项材料，按“学院/支部名称/原文件名”存放，另附汇总表.xlsx；以 .zip 结尾时生成压缩包，否则为目录
        #[arg(long, value_name = "压缩包或目录", conflicts_with_all = ["output", "format"])]
        materials: Option<PathBuf>,
        /// 评审材料只含这个申报板块的支部（与 --materials 一起用）
        #[arg(value_name = "板块", long, requires = "materials")]
        section: Option<String>,
        /// 评审材料只含这个学院的支部（与 --materials 一起用）
        #[arg(value_name = "学院", long, requires = "materials")]
        college: Option<String>,
    },
    /// 截止提醒：列出（--dry-run）或立即放入发件箱此刻应发的提醒
    Remind {
        /// 只列出谁会收到什么，不发送
        #[arg(long)]
        dry_run: bool,
        /// 按这个时间计算（RFC 3339，如 2025-09-24T09:00:00+08:00），默认为现在
        #[arg(value_name = "时间", long)]
        at: Option<String>,
    },
    /// 评审摘要：预览（--dry-run）或立即发送（--now）；两者都不写时只说明用法，不发送
    Digest {
        /// 打印摘要内容，不发送
        #[arg(long)]
        dry_run: bool,
        /// 不等排期，立即发送（覆盖自上次摘要以来的内容）；只发送这次生成的摘要，发件箱中的其他邮件留给守护进程
        #[arg(long, conflicts_with = "dry_run")]
        now: bool,
        /// 按这个时间计算（RFC 3339），默认为现在
        #[arg(value_name = "时间", long)]
        at: Option<String>,
    },
    /// 评审：导入评审结果、发送结果通知
    Review {
        #[command(subcommand)]
        action: ReviewAction,
    },
    /// 发件箱：查看待发送、已发出和发送失败的邮件，让发送失败的邮件重新发送
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// 显示一个支部的全部版本（支部名称，名册中的写法或主题中的写法）
    Show { branch: String },
    /// 用现在的程序、规则、名册和模板重新处理已存档的邮件，列出有变化的内容（支部、版本、字段、问题）
    Reprocess {
        /// 邮件编号（`shenbao status` 中的 #编号），可写多个
        #[arg(value_name = "编号", required_unless_present_any = ["all", "failed"], conflicts_with_all = ["all", "failed"])]
        ids: Vec<i64>,
        /// 全部邮件（不含本系统邮件的副本）
        #[arg(long, conflicts_with = "failed")]
        all: bool,
        /// 处理失败的邮件
        #[arg(long)]
        failed: bool,
        /// 只预览变化，不保存
        #[arg(long)]
        dry_run: bool,
        /// 保存后按新的结果重新给支部发回执（默认不发任何邮件）
        #[arg(long)]
        notify: bool,
    },
    /// 把一封识别不出支部的邮件登记到指定支部，并给发件人发回执
    Assign {
        /// 邮件编号（`shenbao status` 中的 #编号）
        #[arg(value_name = "编号")]
        id: i64,
        /// 支部名称（名册中的写法）；省略时用申请表中填写的支部
        #[arg(value_name = "支部名称")]
        branch: Option<String>,
        /// 只预览，不保存、不发信
        #[arg(long)]
        dry_run: bool,
    },
    /// 把一封需要人工处理的邮件标为已处理，它不再出现在 status 和摘要的待处理列表中
    Resolve {
        /// 邮件编号（`shenbao status` 中的 #编号）
        #[arg(value_name = "编号")]
        id: i64,
        /// 处理说明（记录在案）
        #[arg(value_name = "说明", long)]
        note: Option<String>,
    },
    /// 看板：不运行守护进程，单独以只读方式提供看板（配置中要有 [web]）；`web passwd 姓名` 生成账号
    Web {
        #[command(subcommand)]
        action: Option<WebAction>,
    },
    /// 数据库：把本活动的数据库复制到另一个（如从 SQLite 迁到 PostgreSQL）
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// 检查配置文件，逐项指出问题
    CheckConfig {
        /// 同时实际登录 IMAP 和 SMTP 服务器
        #[arg(long)]
        probe: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DbAction {
    /// 把配置中的数据库整个复制到一个新建的空库，并逐表核对行数和 sha256；原库不变
    Copy {
        /// 目标数据库，如 postgres://shenbao@127.0.0.1:5432/shenbao（密码用环境变量 PGPASSWORD 或 ~/.pgpass）
        #[arg(value_name = "地址", long)]
        to: String,
    },
    /// 把一期活动的全部记录改归另一个 id（例如改用 [[campaign]] 后，把旧库中归在 default 下的记录改为 2025-autumn）
    RenameCampaign {
        /// 原来的 id（`shenbao status` 会列出数据库中有、配置中没有的 id）
        #[arg(value_name = "原id")]
        from: String,
        /// 配置中 [[campaign]] 的 id
        #[arg(value_name = "新id")]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebAction {
    /// 读入两遍密码（终端中不显示；不是终端时从标准输入读），打印带 argon2 密码散列的 [[web.user]]，复制到配置中
    Passwd {
        /// 账号名（登录时输入）
        #[arg(value_name = "姓名")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReviewAction {
    /// 导入评审专家填好“评审等级”“资助金额”两列的汇总表（.xlsx）；有任何错误则一条也不导入
    Import {
        #[arg(value_name = "文件")]
        file: PathBuf,
        /// 导入人（记录在案），默认为当前系统用户
        #[arg(value_name = "姓名", long)]
        by: Option<String>,
        /// 允许部分导入：表中还有已申报的支部没有评审等级时，照样导入已评的，并列出未评的支部
        #[arg(long)]
        partial: bool,
    },
    /// 给每个支部发送评审结果（每个结果只发一次），与其申报邮件在同一会话
    Notify {
        /// 只列出将发送的结果，不发送
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OutboxAction {
    /// 列出发件箱中的邮件（编号、状态、收件人、主题、尝试次数、最后的错误）
    List {
        /// dead：发送失败、已放弃；queued：尚未发出；sent：已发出；all：全部
        #[arg(value_name = "状态", long, value_enum, default_value = "all")]
        status: OutboxStatus,
    },
    /// 让发送失败（已放弃）或正在等待重试的邮件立即重新排队，重试次数从头计算
    Retry {
        /// 邮件编号（`shenbao status` 或 `shenbao outbox list` 中的 #编号）
        #[arg(
            value_name = "编号",
            required_unless_present = "all_dead",
            conflicts_with = "all_dead"
        )]
        id: Option<i64>,
        /// 全部发送失败（已放弃）的邮件
        #[arg(long)]
        all_dead: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum OutboxStatus {
    Dead,
    Queued,
    Sent,
    All,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ExportFormat {
    Json,
    Csv,
    /// 汇总表（Excel），每个支部最新一版一行
    Xlsx,
}

/// The command line as clap sees it, with Chinese help: the layout of every command, and
/// `-h/--help` and `-V/--version` with Chinese descriptions (clap's own are English).
pub fn command() -> clap::Command {
    use clap::{Arg, ArgAction, CommandFactory};
    fn localize(cmd: clap::Command) -> clap::Command {
        cmd.help_template(crate::cli::zh::HELP_TEMPLATE)
            .subcommand_help_heading("命令")
            .subcommand_value_name("命令")
            .disable_help_flag(true)
            .disable_help_subcommand(true)
            .mut_subcommands(localize)
    }
    localize(Cli::command())
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .global(true)
                .action(ArgAction::Help)
                .help("显示帮助"),
        )
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::Version)
                .help("显示版本"),
        )
}

/// Parses the command line; help, version and errors are written in Chinese here.
fn parse() -> Result<Cli, ExitCode> {
    use clap::FromArgMatches;
    use clap::error::ErrorKind;
    let matches = command().try_get_matches().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            say_raw!("{}", crate::cli::zh::zh(&e.render().to_string()));
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{}", crate::cli::zh::zh(&e.render().to_string()));
            ExitCode::from(2)
        }
        _ => {
            eprint!("{}", crate::cli::zh::clap_error(&e, "shenbao"));
            ExitCode::from(2)
        }
    })?;
    Cli::from_arg_matches(&matches).map_err(|e| {
        eprint!("{}", crate::cli::zh::clap_error(&e, "shenbao"));
        ExitCode::from(2)
    })
}

/// Two malloc arenas instead of glibc's eight per core. Mail is parsed and attachments read on
/// tokio's blocking threads, a few at a time, each allocating and freeing a mail's worth of
/// memory; with an arena per thread the freed memory stayed with the arenas, and the daemon's
/// peak RSS grew with the backlog (74 MB at 10,000 mails, 53 MB with two arenas, in the
/// benchmark; issue 16 asks for at most 60). Before any thread starts; `MALLOC_ARENA_MAX` in
/// the environment still decides when set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called on the main thread before
        // any other thread exists. A refusal (return 0) leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// The runtime's async worker threads: half the cores, at least one; `TOKIO_WORKER_THREADS`,
/// when set, still decides (`None`). The async side is glue — the IMAP and SMTP sessions,
/// the database's answers, the board — while the CPU work (reading mails and Office files,
/// flushing files) runs on the blocking pool, which every core serves. With a worker per core
/// on the 2-core benchmark machine, the workers spent about a fifth of the daemon's CPU
/// waking and parking each other (perf: `finish_task_switch`, futex, epoll); with one, a
/// backlog of 1,000 went from 549 to 581 applications/s (three interleaved pairs; 515 to 591
/// in three earlier ones), every pair faster (issue 16).
fn async_workers() -> Option<usize> {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / 2).max(1))
}

pub fn main() -> ExitCode {
    // Before anything is created: the database, its WAL, blobs and exports are private.
    crate::fsmode::restrict_umask();
    limit_malloc_arenas();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing(cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = async_workers() {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("无法启动运行时：{e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("错误：{}", crate::cli::zh::describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// Log times as people here read them: Beijing time with its offset
/// (`2025-09-22T09:41:42.123+08:00`), the time every message and mail of shenbao uses.
struct BeijingTime;

impl tracing_subscriber::fmt::time::FormatTime for BeijingTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
        write!(w, "{}", now.format("%Y-%m-%dT%H:%M:%S%.3f%:z"))
    }
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHENBAO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a closed stderr (`shenbao … 2>&1 | head`) tracing-subscriber would report its
        // own write error with `eprintln!`, which panics: in sqlx's worker thread that hung
        // the command.
        .log_internal_errors(false)
        .with_timer(BeijingTime);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // Colours only for a person at a terminal: not in a file, a pipe or journald.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init(),
    };
}

/// The configuration, with `Config.campaign` the campaign `--campaign` chose (else the current
/// one): every read of the command is that campaign's.
fn load(source: &ConfigSource) -> anyhow::Result<Arc<Config>> {
    let cfg = Config::load(&source.path)?;
    Ok(Arc::new(match &source.campaign {
        Some(id) => cfg
            .with_campaign(id)
            .map_err(|e| anyhow::anyhow!("--campaign {id}：{e}"))?,
        None => cfg,
    }))
}

/// `--at TIME` or the clock's now.
fn at_or_now(at: Option<&str>, clock: Clock) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    match at {
        Some(t) => Ok(chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| {
                format!("--at {t} 不是 RFC 3339 时间，例如 2025-09-24T09:00:00+08:00")
            })?
            .with_timezone(&chrono::Utc)),
        None => Ok(clock.now()),
    }
}

fn clock() -> anyhow::Result<Clock> {
    Clock::from_env().map_err(anyhow::Error::msg)
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(id) = &cli.campaign
        && let Command::Init { .. }
        | Command::Run { .. }
        | Command::Ingest { .. }
        | Command::CheckConfig { .. }
        | Command::Db { .. } = cli.command
    {
        anyhow::bail!(
            "这个命令不分活动：邮件按主题和到达时间自动归入各期活动，请去掉 --campaign {id}（或环境变量 SHENBAO_CAMPAIGN）再运行"
        );
    }
    let source = ConfigSource {
        path: cli.config.clone(),
        campaign: cli.campaign.clone(),
    };
    let config = &source;
    match cli.command {
        Command::Init { dir, force } => setup::init(dir, force).await,
        Command::Run { backfill_since } => mail::run(config, backfill_since).await,
        Command::Ingest {
            files,
            received_at,
            no_reply,
        } => mail::ingest(config, files, received_at, no_reply).await,
        Command::Completions { shell } => setup::completions(shell).await,
        Command::Man => setup::man().await,
        Command::Health => status::health(config).await,
        Command::Status { json: true } => status::status_json(config).await,
        Command::Status { json: false } => status::status_text(config).await,
        Command::Export {
            format,
            output,
            materials,
            section,
            college,
        } => status::export(config, format, output, materials, section, college).await,
        Command::Reprocess {
            ids,
            all,
            failed,
            dry_run,
            notify,
        } => correct::reprocess(config, ids, all, failed, dry_run, notify).await,
        Command::Assign {
            id,
            branch,
            dry_run,
        } => correct::assign(config, id, branch, dry_run).await,
        Command::Resolve { id, note } => correct::resolve(config, id, note).await,
        Command::Web { action: None } => web::serve(config).await,
        Command::Web {
            action: Some(WebAction::Passwd { name }),
        } => web::passwd(&name),
        Command::Show { branch } => status::show(config, branch).await,
        Command::Remind { dry_run, at } => schedule::remind(config, dry_run, at).await,
        Command::Digest {
            dry_run,
            now: send_now,
            at,
        } => schedule::digest(config, dry_run, send_now, at).await,
        Command::Review { action } => review::review(config, action).await,
        Command::Outbox { action } => outbox::outbox(config, action).await,
        Command::Db {
            action: DbAction::Copy { to },
        } => db::copy(config, &to).await,
        Command::Db {
            action: DbAction::RenameCampaign { from, to },
        } => db::rename_campaign(config, &from, &to).await,
        Command::CheckConfig { probe } => setup::check_config(&source.path, probe).await,
    }
}

#[cfg(test)]
mod tests {
    use super::mail::read_limited;
    use super::setup::*;
    use super::*;

    #[test]
    fn ingest_reads_files_only_up_to_the_limit() {
        let dir = std::env::temp_dir().join(format!("shenbao-readlim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("m.eml");
        for (len, limit, ok) in [
            (0u64, 10u64, true),
            (10, 10, true),
            (11, 10, false),
            (1 << 20, 1 << 20, true),
            ((1 << 20) + 1, 1 << 20, false),
            (5, 0, false),
        ] {
            std::fs::write(&f, vec![b'x'; usize::try_from(len).expect("len")]).expect("write");
            match read_limited(&f, limit) {
                Ok(raw) => {
                    assert!(ok, "{len} bytes over a limit of {limit} must be refused");
                    assert_eq!(raw.len() as u64, len);
                }
                Err(e) => {
                    assert!(!ok, "{len} bytes under {limit}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains("imap.max_message_size"), "{msg}");
                    assert!(msg.contains("m.eml"), "{msg}");
                }
            }
        }
        let missing = read_limited(&dir.join("nope.eml"), 10).expect_err("missing");
        assert!(missing.to_string().contains("nope.eml"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn init_writes_a_config_that_loads() {
        let dir = std::env::temp_dir().join(format!("shenbao-init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        init_dir(&dir, false, Clock::System).expect("init");
        let cfg = Config::load(&dir.join("shenbao.toml")).expect("generated config loads");
        assert_eq!(cfg.imap.host, "127.0.0.1");
        assert_eq!(cfg.imap.port, 3143);
        assert_eq!(cfg.imap.tls, crate::config::TlsMode::None);
        assert_eq!(cfg.imap.password.value(), Some("intake-pw"));
        assert_eq!(cfg.smtp.port, 2525);
        assert!(cfg.smtp.user.is_none());
        assert_eq!(cfg.campaign.intake_address, "intake@example.test");
        assert!(cfg.ack.templates_dir.is_some());
        assert!(cfg.campaign.deadline > chrono::Utc::now());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| {
                std::fs::metadata(dir.join(p))
                    .expect("metadata")
                    .permissions()
                    .mode()
                    & 0o777
            };
            for d in ["", "secrets", "templates", "data"] {
                assert_eq!(mode(d), 0o700, "directory {d:?}");
            }
            for f in [
                "shenbao.toml",
                "roster.csv",
                "secrets/imap.password",
                "templates/ack.txt.j2",
            ] {
                assert_eq!(mode(f), 0o600, "file {f}");
            }
        }
        // A second init without --force refuses to overwrite.
        assert!(init_dir(&dir, false, Clock::System).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_example_config_is_complete_apart_from_its_files() {
        let dir = std::env::temp_dir().join(format!("shenbao-example-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("roster.csv"), EXAMPLE_ROSTER).expect("roster");
        match Config::parse(EXAMPLE_CONFIG, &dir.join("shenbao.toml")) {
            Ok(_) => {}
            Err(crate::config::ConfigError::Invalid { problems, .. }) => {
                panic!("example config has problems: {problems:?}")
            }
            Err(e) => panic!("{e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
