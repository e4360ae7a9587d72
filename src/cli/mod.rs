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
    #[command(subcommand)]
    pub command: Command,
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
    /// 检查配置文件，逐项指出问题
    CheckConfig {
        /// 同时实际登录 IMAP 和 SMTP 服务器
        #[arg(long)]
        probe: bool,
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

pub fn main() -> ExitCode {
    // Before anything is created: the database, its WAL, blobs and exports are private.
    crate::fsmode::restrict_umask();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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

fn load(path: &Path) -> anyhow::Result<Arc<Config>> {
    Ok(Arc::new(Config::load(path)?))
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

/// The pipeline of a correction command: answers only when `notify`, under new Message-IDs.
async fn correction_pipeline(
    config: &Path,
    notify: bool,
) -> anyhow::Result<crate::pipeline::Pipeline> {
    let cfg = load(config)?;
    let clock = clock()?;
    let (store, _, wake) = crate::daemon::open(cfg.clone(), clock).await?;
    let mut p = crate::pipeline::Pipeline::new(store, clock, cfg, wake)?;
    p.notify_mode = crate::pipeline::correct::notify_mode(notify, clock.now());
    Ok(p)
}

/// Reads an .eml file of at most `limit` bytes (`imap.max_message_size`), looking at its size
/// before reading it, so a huge file is refused without being loaded into memory.
fn read_limited(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
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

fn clock() -> anyhow::Result<Clock> {
    Clock::from_env().map_err(anyhow::Error::msg)
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init { dir, force } => {
            init(&dir, force, clock()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { backfill_since } => {
            let cfg = load(&cli.config)?;
            crate::daemon::run(cfg, clock()?, backfill_since).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest {
            files,
            received_at,
            no_reply,
        } => {
            let cfg = load(&cli.config)?;
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
            let (store, _, wake) = crate::daemon::open(cfg.clone(), clock).await?;
            let mut pipeline = crate::pipeline::Pipeline::new(store.clone(), clock, cfg, wake)?;
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
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "shenbao", &mut out);
            say_raw!("{}", String::from_utf8_lossy(&out));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command()).render(&mut out)?;
            say_raw!("{}", crate::cli::zh::zh_man(&String::from_utf8_lossy(&out)));
            Ok(ExitCode::SUCCESS)
        }
        Command::Health => {
            let cfg = load(&cli.config)?;
            let clock = clock()?;
            // No database yet: the daemon never ran (or data_dir is wrong) — critical.
            let store =
                match crate::store::Store::open_existing(&cfg.database_url, &cfg.data_dir).await {
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
        Command::Status { json: true } => {
            let cfg = load(&cli.config)?;
            let clock = clock()?;
            let (store, _, _) = crate::daemon::open_existing(cfg.clone(), clock).await?;
            let now = clock.now();
            let mut figures = store.figures(now).await?;
            figures.template_errors = crate::daemon::health::still_current(
                figures.template_errors,
                cfg.ack.templates_dir.as_deref(),
            );
            let report = crate::daemon::health::assess(&figures, &cfg.health, now);
            let mut v = serde_json::to_string_pretty(&crate::daemon::health::to_json(
                &figures, &report, now,
            ))?;
            v.push('\n');
            say_raw!("{v}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json: false } => {
            let cfg = load(&cli.config)?;
            let (store, pipeline, _) = crate::daemon::open_existing(cfg, clock()?).await?;
            let st = crate::export::status(&store, pipeline.roster.len()).await?;
            say!(
                "当前阶段：{}",
                crate::export::phase(&pipeline.store, &pipeline.cfg, clock()?.now()).await?
            );
            say_raw!("{st}");
            unreachable_branches(&store, &pipeline.roster, &pipeline.cfg.campaign.roster).await?;
            if let Some(f) =
                crate::send::forecast(&store, &pipeline.cfg.smtp, clock()?.now()).await?
            {
                say!("{f}");
            }
            template_errors(&store, &pipeline.cfg, clock()?.now()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            format,
            output,
            materials,
            section,
            college,
        } => {
            if let Some(out) = materials {
                let filter = crate::export::materials::Filter { section, college };
                return export_materials(&cli.config, &out, filter).await;
            }
            let cfg = load(&cli.config)?;
            let clock = clock()?;
            let (store, _, _) = crate::daemon::open_existing(cfg.clone(), clock).await?;
            let subs = crate::export::latest_reviewed(&store, &cfg.levels).await?;
            let bytes = match format {
                ExportFormat::Json => {
                    let e = crate::export::Export {
                        campaign: cfg.campaign.name.clone(),
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
                        anyhow::bail!(
                            "xlsx 是二进制文件，请用 -o 指定输出文件，例如 -o 汇总表.xlsx"
                        );
                    }
                    crate::export::to_xlsx(&format!("{}申报汇总表", cfg.campaign.name), &subs)?
                }
            };
            match output {
                Some(p) => crate::fsmode::write(&p, bytes)
                    .with_context(|| format!("写入 {}", p.display()))?,
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
        Command::Reprocess {
            ids,
            all,
            failed,
            dry_run,
            notify,
        } => {
            let selection = if all {
                crate::pipeline::correct::Selection::All
            } else if failed {
                crate::pipeline::correct::Selection::Failed
            } else {
                crate::pipeline::correct::Selection::Ids(ids)
            };
            let p = correction_pipeline(&cli.config, notify).await?;
            let report = crate::pipeline::correct::reprocess(&p, &selection, dry_run).await?;
            say_raw!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Assign {
            id,
            branch,
            dry_run,
        } => {
            let p = correction_pipeline(&cli.config, true).await?;
            let (name, report) =
                crate::pipeline::correct::assign(&p, id, branch.as_deref(), dry_run).await?;
            say!("邮件 #{id} 登记为“{name}”的材料：");
            say_raw!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Resolve { id, note } => {
            let p = correction_pipeline(&cli.config, false).await?;
            crate::pipeline::correct::resolve(&p, id, note.as_deref()).await?;
            say!("邮件 #{id} 已标为处理完毕，不再列入待人工处理的邮件。");
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { branch } => {
            let cfg = load(&cli.config)?;
            let (store, pipeline, _) = crate::daemon::open_existing(cfg, clock()?).await?;
            let name = match pipeline.roster.match_branch(&branch) {
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
        Command::Remind { dry_run, at } => {
            let cfg = load(&cli.config)?;
            let clock = clock()?;
            let now = at_or_now(at.as_deref(), clock)?;
            let (_, pipeline, _) = if dry_run {
                crate::daemon::open_existing(cfg.clone(), clock).await?
            } else {
                crate::daemon::open(cfg.clone(), clock).await?
            };
            let planned = crate::schedule::remind::plan_reminders(&pipeline, now).await?;
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
                let n = crate::schedule::remind::commit(&pipeline, &planned, clock.now()).await?;
                say!("已放入发件箱 {n} 封；运行中的 `shenbao run` 会发送。");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Digest {
            dry_run,
            now: send_now,
            at,
        } => {
            let cfg = load(&cli.config)?;
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
            let (store, pipeline, wake) = if dry_run {
                crate::daemon::open_existing(cfg.clone(), clock).await?
            } else {
                crate::daemon::open(cfg.clone(), clock).await?
            };
            // A dry run shows the digest the schedule would send at that instant; when none is
            // due, the digest of everything since the last one.
            let mut planned =
                crate::schedule::remind::plan_digests(&pipeline, now, send_now).await?;
            if dry_run && planned.iter().all(|p| p.mail.is_none()) {
                planned = crate::schedule::remind::plan_digests(&pipeline, now, true).await?;
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
            let ids = crate::schedule::remind::commit_ids(&pipeline, &planned, clock.now()).await?;
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
                say!(
                    "未发出的摘要留在发件箱，由 `shenbao run` 重试；用 `shenbao outbox list` 查看原因。"
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Review { action } => {
            let cfg = load(&cli.config)?;
            let clock = clock()?;
            let (store, pipeline, wake) = crate::daemon::open(cfg.clone(), clock).await?;
            match action {
                ReviewAction::Import { file, by, partial } => {
                    let by = by
                        .or_else(|| std::env::var("USER").ok())
                        .unwrap_or_else(|| "unknown".to_string());
                    let outcome = crate::schedule::results::import(
                        &pipeline,
                        &file,
                        &by,
                        clock.now(),
                        partial,
                    )
                    .await?;
                    Ok(review_import_report(&file, outcome))
                }
                ReviewAction::Notify { dry_run } => {
                    if !dry_run && let Some(why) = cfg.smtp.missing_password() {
                        anyhow::bail!("{why}");
                    }
                    let plan =
                        crate::schedule::results::plan_results(&pipeline, clock.now()).await?;
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
                        let ids = crate::schedule::remind::commit_ids(
                            &pipeline,
                            &plan.planned,
                            clock.now(),
                        )
                        .await?;
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
        Command::Outbox { action } => {
            let cfg = load(&cli.config)?;
            let store = match action {
                OutboxAction::List { .. } => {
                    crate::store::Store::open_existing(&cfg.database_url, &cfg.data_dir).await?
                }
                OutboxAction::Retry { .. } => {
                    crate::store::Store::open(&cfg.database_url, &cfg.data_dir)
                        .await
                        .with_context(|| format!("打开数据库 {}", cfg.database_url))?
                }
            };
            outbox(&store, action, clock()?).await
        }
        Command::CheckConfig { probe } => check_config(&cli.config, probe).await,
    }
}

/// `export --materials OUT`: the reviewers' files, and what was written where.
async fn export_materials(
    config: &Path,
    out: &Path,
    filter: crate::export::materials::Filter,
) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    let (store, pipeline, _) = crate::daemon::open_existing(cfg.clone(), clock()?).await?;
    let collected = crate::export::materials::collect(&pipeline, &filter).await?;
    let layout = crate::export::materials::layout(&collected.branches);
    let sheet = crate::export::to_xlsx(
        &format!("{}申报汇总表", cfg.campaign.name),
        &collected.applications,
    )?;
    let (blobs, target) = (store.blobs.clone(), out.to_path_buf());
    let (written, layout) = tokio::task::spawn_blocking(move || {
        crate::export::materials::write(&target, &layout, &sheet, &blobs).map(|w| (w, layout))
    })
    .await??;
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
        if collected.described.is_empty() {
            String::new()
        } else {
            format!("（只含{}）", collected.described)
        },
        written.files,
        written.application_files,
        written.closure_files,
        crate::export::materials::SUMMARY_NAME,
        collected.applications.len()
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

/// What `review import` says: what was imported, what was skipped, what is still ungraded; or
/// why nothing was imported.
fn review_import_report(file: &Path, outcome: crate::schedule::results::ImportOutcome) -> ExitCode {
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

/// What an outbox `kind` is, in the words staff use.
fn kind_label(kind: &str) -> &str {
    match kind {
        "ack" => "回执",
        "subject_help" => "主题格式说明",
        "reminder" => "截止提醒",
        "digest" => "评审摘要",
        "result" => "评审结果",
        other => other,
    }
}

/// An outbox row's state, in words.
fn outbox_state(e: &crate::store::OutboxEntry) -> String {
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
fn requeued_line(e: &crate::store::OutboxEntry) -> String {
    format!(
        "已重新排队：#{} → {}（{}）{}",
        e.id,
        e.to_addr,
        kind_label(&e.kind),
        e.subject
    )
}

fn outbox_line(e: &crate::store::OutboxEntry) -> String {
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

const PICKUP: &str = "运行中的守护进程（shenbao run）最迟 5 秒内会发送；守护进程没有运行时，下次启动即发送。用 `shenbao outbox list --status queued` 查看进度。";

async fn outbox(
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

/// `status`: templates that failed at run time in the last 7 days (the built-in one was used),
/// unless their file was changed since.
async fn template_errors(
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
async fn unreachable_branches(
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
        say!(
            "  第 {} 行 {}：{}{tail}",
            u.line,
            u.branch,
            u.why.label_zh()
        );
    }
    Ok(())
}

async fn check_config(path: &Path, probe: bool) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", crate::cli::zh::describe(&anyhow::Error::new(e)));
            return Ok(ExitCode::FAILURE);
        }
    };
    let roster = std::fs::File::open(&cfg.campaign.roster)
        .map_err(anyhow::Error::from)
        .and_then(|f| crate::campaign::roster::Roster::from_csv(f).map_err(anyhow::Error::from));
    match roster {
        Ok(r) => {
            say!(
                "支部名册：{} 个支部（{}）",
                r.len(),
                cfg.campaign.roster.display()
            );
            // Not an error (the branch can still apply), but nobody can remind it.
            for u in r.unreachable() {
                say!("注意：{}", u.describe(&cfg.campaign.roster));
            }
        }
        Err(e) => {
            eprintln!("campaign.roster：{e:#}");
            return Ok(ExitCode::FAILURE);
        }
    }
    match crate::notify::compose::Templates::load(cfg.ack.templates_dir.as_deref()) {
        Err(e) => {
            eprintln!("ack.templates_dir：{e}");
            return Ok(ExitCode::FAILURE);
        }
        Ok(t) => {
            for (i, r) in cfg.reminders.iter().enumerate() {
                if !t.has(&r.template) {
                    eprintln!(
                        "reminder[{}].template：找不到模板 {}，请放在 ack.templates_dir 目录中，或使用内置的 reminder.txt.j2",
                        i + 1,
                        r.template
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            // Each template rendered with sample data in strict mode: a typo shows here, not
            // in the first mail that needs the template.
            let problems = crate::notify::template_check::check(&t);
            if !problems.is_empty() {
                eprintln!(
                    "模板有 {} 处问题（运行时出错的模板会改用内置模板，但请先改正）：",
                    problems.len()
                );
                for p in &problems {
                    eprintln!("  {p}");
                }
                return Ok(ExitCode::FAILURE);
            }
            say!("模板：{} 个，用示例数据逐个检查无误", t.names().len());
        }
    }
    if cfg.imap.password.value().is_none() {
        say!(
            "注意：{} 目前没有设置，运行前需要设置 IMAP 密码",
            cfg.imap.password.source
        );
    }
    // Like the IMAP password: the service may get it from its environment or credentials,
    // which this shell need not have; `run` and the sending commands refuse without it.
    if let Some(why) = cfg.smtp.missing_password() {
        say!("注意：{why}；在此之前 shenbao run 不会启动");
    }
    say!("配置文件 {} 没有问题。", path.display());
    if !probe {
        return Ok(ExitCode::SUCCESS);
    }
    let mut ok = true;
    match crate::imap::conn::connect(&cfg.imap).await {
        Ok(mut s) => match s.select(crate::imap::mutf7::encode(&cfg.imap.folder)).await {
            Ok(m) => {
                say!(
                    "IMAP：登录成功，{} 中有 {} 封邮件",
                    cfg.imap.folder,
                    m.exists
                );
                let _ = s.logout().await;
            }
            Err(e) => {
                ok = false;
                eprintln!("IMAP：登录成功，但打不开文件夹 {}：{e}", cfg.imap.folder);
            }
        },
        Err(e) => {
            ok = false;
            eprintln!("IMAP：{e}");
        }
    }
    match crate::send::smtp::probe(&cfg.smtp).await {
        Ok(()) => say!("SMTP：连接成功"),
        Err(e) => {
            ok = false;
            eprintln!("SMTP：{e}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The example config, rewritten for the local test mail servers of `scripts/mailstack.sh`.
pub fn local_config(example: &str, deadline: &str) -> String {
    let mut section = String::new();
    let mut out = String::from(
        "# 本地试用配置：由 `shenbao init` 生成，连接 scripts/mailstack.sh 启动的本机测试邮件服务器。\n# 正式使用时请参照 config/shenbao.example.toml 修改。\n",
    );
    for line in example.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
        }
        let key = t.split('=').next().unwrap_or("").trim();
        let replaced = match (section.as_str(), key) {
            ("[imap]", "host") | ("[smtp]", "host") => Some("host = \"127.0.0.1\"".to_string()),
            ("[imap]", "port") => Some("port = 3143".to_string()),
            ("[smtp]", "port") => Some("port = 2525".to_string()),
            ("[imap]", "tls") | ("[smtp]", "tls") => Some("tls = \"none\"".to_string()),
            ("[imap]", "user") => Some("user = \"intake@example.test\"".to_string()),
            ("[imap]", "password_env") => {
                Some("password_file = \"secrets/imap.password\"".to_string())
            }
            ("[imap]", "poll_interval") => Some("poll_interval = \"30s\"".to_string()),
            ("[smtp]", "user") | ("[smtp]", "password_env") => Some(String::new()),
            ("[smtp]", "from_address") | ("[campaign]", "intake_address") => {
                Some(format!("{key} = \"intake@example.test\""))
            }
            ("[campaign]", "deadline") => Some(format!("deadline = \"{deadline}\"")),
            ("[[digest]]", "recipients") => {
                Some("recipients = [\"reviewer@example.test\"]".to_string())
            }
            ("[ack]", _) if t.starts_with("# templates_dir") => {
                Some("templates_dir = \"templates\"".to_string())
            }
            _ => None,
        };
        match replaced {
            Some(r) if r.is_empty() => {}
            Some(r) => {
                out.push_str(&r);
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

const EXAMPLE_CONFIG: &str = include_str!("../../config/shenbao.example.toml");
const EXAMPLE_ROSTER: &str = include_str!("../../config/roster.example.csv");

fn init(dir: &Path, force: bool, clock: Clock) -> anyhow::Result<()> {
    let cfg_path = dir.join("shenbao.toml");
    if cfg_path.exists() && !force {
        anyhow::bail!("{} 已存在；如要重新生成请加 --force", cfg_path.display());
    }
    for sub in ["secrets", "templates", "data"] {
        crate::fsmode::create_dir_all(&dir.join(sub))?;
    }
    let deadline = (clock.now() + chrono::Duration::days(14))
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%dT23:59:59")
        .to_string();
    crate::fsmode::write(&cfg_path, local_config(EXAMPLE_CONFIG, &deadline))?;
    let roster = dir.join("roster.csv");
    if !roster.exists() || force {
        crate::fsmode::write(&roster, EXAMPLE_ROSTER)?;
    }
    let secret = dir.join("secrets/imap.password");
    crate::fsmode::write(&secret, "intake-pw\n")?;
    // Rewritten with --force, an older file keeps its mode: make sure it is private.
    #[cfg(unix)]
    std::fs::set_permissions(
        &secret,
        std::os::unix::fs::PermissionsExt::from_mode(crate::fsmode::FILE_MODE),
    )?;
    for (name, text) in crate::notify::compose::builtin_templates() {
        let p = dir.join("templates").join(name);
        if !p.exists() || force {
            crate::fsmode::write(&p, text)?;
        }
    }
    say!(
        "已生成 {}（本地试用，连接 scripts/mailstack.sh 的测试服务器）。",
        cfg_path.display()
    );
    say!("下一步：");
    say!("  scripts/mailstack.sh start                          # 启动本机测试邮件服务器");
    say!(
        "  shenbao --config {} run         # 启动守护进程",
        cfg_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
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
        init(&dir, false, Clock::System).expect("init");
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
        assert!(init(&dir, false, Clock::System).is_err());
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
