//! The configuration file (`shenbao.toml`).
//!
//! The file is read as a TOML table and walked key by key instead of being handed to serde in
//! one go: serde stops at the first bad key, and an operator fixing a config wants to see every
//! bad key at once, each with the reason and what to write instead. Unknown keys are reported
//! too, because a misspelt key silently falling back to a default is the worst kind of error.
//!
//! Secrets never live in the file: `password_env` names an environment variable,
//! `password_file` a file that holds the password, and `password_credential` a systemd
//! credential (`LoadCredential=NAME:…` in the unit): the file `$CREDENTIALS_DIRECTORY/NAME`
//! when run as the service, `credentials/NAME` next to the config file otherwise (where the
//! installed unit loads it from, so `check-config --probe` run by root reads the same password).
//!
//! Campaigns come as one `[campaign]` table (the campaign `default`) or as several
//! `[[campaign]]` tables, one per semester, each with an `id`: the same subject returns every
//! semester, and each campaign's `opens` … `closure_deadline` window says which one a mail
//! belongs to ([`crate::campaign::calendar`]). Windows of one subject must not overlap, so
//! that choice never depends on the order of the file.
//!
//! Relative paths resolve next to the config file. `storage.data_dir`, when not set, is the
//! service's state directory (`$STATE_DIRECTORY`, /var/lib/shenbao) when systemd gives one, and
//! `data` next to the config file otherwise.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Value;

/// How a mail connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    StartTls,
    /// No TLS at all: for the loopback test servers only.
    None,
}

#[derive(Debug, Clone)]
pub struct Secret {
    /// Where the password comes from, for messages (`环境变量 X` / `文件 Y`).
    pub source: String,
    value: Option<String>,
}

impl Secret {
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: String,
    pub password: Secret,
    pub folder: String,
    /// Where handled mail is moved; `None` leaves it in place (the UID watermark still holds).
    pub processed_folder: Option<String>,
    /// Where mail that needs a person goes (questions, replies, unrecognised branches,
    /// failures), so staff who read the mailbox find it; `None` leaves it where it arrived.
    pub staff_folder: Option<String>,
    pub poll_interval: Duration,
    pub idle_renew: Duration,
    pub max_message_bytes: u64,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub from_address: String,
    pub from_name: String,
    pub ca_file: Option<PathBuf>,
    pub max_attempts: u32,
    pub timeout: Duration,
    /// Send every mail also to the intake address (one SMTP transaction, so both or neither
    /// arrive). After a crash in the middle of a send, that copy tells whether it went out.
    pub copy_to_intake: bool,
    /// How long to wait for that copy before sending an unconfirmed mail again.
    pub confirm_grace: Duration,
    /// The first retry interval after a failed send; each further one doubles, up to 30 min.
    pub retry_initial: Duration,
    /// SMTP sessions used at once when many mails are due (1–8).
    pub connections: u8,
    /// The account's sending caps, in recipients (the intake copy and a Cc count).
    pub limits: crate::send::limit::Limits,
}

#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// Short ASCII name (`2025-autumn`) that records and `--campaign` use; `default` for the
    /// single `[campaign]` table without an `id`.
    pub id: String,
    /// The title (`title`, or `name` as the single table has always called it), shown in mails.
    pub name: String,
    /// From when mail belongs to this campaign; `None`: from any time before.
    pub opens: Option<DateTime<Utc>>,
    pub organizer: String,
    pub intake_address: String,
    pub application_subject: String,
    pub closure_subject: String,
    pub deadline: DateTime<Utc>,
    /// Mail arriving up to this long after a deadline is not counted as late (a server queue,
    /// a minute past midnight).
    pub grace: Duration,
    /// When funded projects are carried out, as the notice words it (for the result mails).
    pub implementation: String,
    /// The closure (结项) deadline, once the office has set it.
    pub closure_deadline: Option<DateTime<Utc>>,
    /// The deadline as written, with its zone, for messages.
    pub deadline_text: String,
    pub timezone: chrono_tz::Tz,
    pub roster: PathBuf,
    pub staff_contact: String,
    /// The five 板块; an application must choose one.
    pub sections: Vec<String>,
    /// The highest level's cap (重点项目 5000 元): more than this is `budget_over_cap`.
    pub budget_cap_yuan: f64,
    /// Roles the project leader may hold (书记、副书记); longer forms such as 支部书记 count.
    pub leader_roles: Vec<String>,
    /// This campaign's own review levels and closure materials (`[[campaign.level]]` after its
    /// `[[campaign]]`), when the semester's notice changed them; `None`: the file's `[[level]]`.
    pub levels: Option<Vec<LevelConfig>>,
}

/// The id of the campaign of a single `[campaign]` table that names none.
pub const DEFAULT_CAMPAIGN_ID: &str = "default";

impl CampaignConfig {
    /// When mail belongs to this campaign: from `opens` to the closure deadline plus grace
    /// (see [`crate::campaign::calendar`]).
    pub fn window(&self) -> crate::campaign::calendar::Window {
        let grace = chrono::Duration::from_std(self.grace).unwrap_or_default();
        crate::campaign::calendar::Window {
            opens: self.opens,
            closes: self.closure_deadline.map(|c| c + grace),
        }
    }

    /// This campaign for [`crate::campaign::calendar::select`].
    pub fn candidate(
        &self,
    ) -> Result<crate::campaign::calendar::Candidate, crate::campaign::subject::SubjectError> {
        Ok(crate::campaign::calendar::Candidate {
            id: self.id.clone(),
            window: self.window(),
            grammar: crate::campaign::subject::SubjectGrammar::new(
                &self.application_subject,
                &self.closure_subject,
            )?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AckConfig {
    /// At most this many notes of one kind (subject-format help, no materials) to one address
    /// per `window` (a loop breaker; acknowledgements of new materials are never limited by it).
    pub max_per_sender: u32,
    /// Identical content (the same files again for the same branch) is acknowledged at most
    /// this many times per `window`: a forwarding loop ends here, a person who resends once
    /// still gets an answer.
    pub max_identical: u32,
    pub window: Duration,
    /// Directory with templates that override the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// The domain of the Message-IDs we generate; mail that carries it is ours.
    pub message_id_domain: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from; relative paths in it are relative to its directory.
    pub path: PathBuf,
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    /// `[database] url`: `sqlite://…` (the default, in `data_dir`) or `postgres://…`, never
    /// with a password in it (shown in messages as it is).
    pub database_url: String,
    /// The PostgreSQL password (`[database] password_env / password_file /
    /// password_credential`); `None` for SQLite or a server that needs none.
    pub database_password: Option<Secret>,
    /// `[database] lease`: how long a daemon's hold on a job (the intake folder, the
    /// scheduler) lasts unrenewed; after it, another daemon on the same database takes over.
    pub lease: Duration,
    pub data_dir: PathBuf,
    /// The current campaign when the file was loaded (see [`Config::current_campaign`]): what
    /// every single-campaign caller uses. A copy of one entry of `campaigns`.
    pub campaign: CampaignConfig,
    /// Every campaign, in file order: the one `[campaign]` table, or each `[[campaign]]`.
    pub campaigns: Vec<CampaignConfig>,
    pub ack: AckConfig,
    /// `[[reminder]]` rules; the notice's default (7, 3 and 1 days before the application
    /// deadline, at 09:00) when the file has none.
    pub reminders: Vec<crate::schedule::ReminderRule>,
    /// `[[digest]]` rules: who gets a digest, and when.
    pub digests: Vec<crate::schedule::DigestRule>,
    /// The review levels, their caps and closure checklists of `campaign`: its own
    /// `[[campaign.level]]`, else the file's `[[level]]` (the notice's when the file has none).
    pub levels: Vec<LevelConfig>,
    /// The file's `[[level]]` (the notice's when it has none): the levels of every campaign
    /// without its own ([`Config::levels_of`]).
    pub file_levels: Vec<LevelConfig>,
    /// `[health]`: when `shenbao health` warns and when it reports a critical state.
    pub health: HealthConfig,
    /// `[web]`: the board (看板); `None` when the file has no `[web]` table.
    pub web: Option<WebConfig>,
}

/// `[web]`: where the board listens, who may log in, and how long a session lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    pub listen: std::net::SocketAddr,
    pub users: Vec<WebUser>,
    /// A session not used for this long ends.
    pub session_idle: Duration,
    /// Mark the cookies `Secure` (the board is behind TLS, e.g. nginx).
    pub secure_cookies: bool,
    /// The board is behind a reverse proxy on this machine: a request from a loopback
    /// address names its client in `X-Real-IP` (for the per-address login limit).
    pub behind_proxy: bool,
}

/// One `[[web.user]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebUser {
    pub name: String,
    /// The argon2 hash in PHC form (`$argon2id$v=19$…`), as `shenbao web passwd` prints it.
    pub password_hash: String,
    pub role: WebRole,
}

/// What a board account may do: reviewers read, staff also act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebRole {
    Staff,
    Reviewer,
}

impl WebRole {
    pub fn label(self) -> &'static str {
        match self {
            WebRole::Staff => "工作人员",
            WebRole::Reviewer => "评审专家",
        }
    }

    /// Whether this role may change anything (every POST but login and logout).
    pub fn may_act(self) -> bool {
        self == WebRole::Staff
    }
}

/// `[health]`: thresholds of `shenbao health` (see `health`); each pair is warning, critical.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Time since the last successful contact with the IMAP server.
    pub imap_warning: Duration,
    pub imap_critical: Duration,
    /// Age of the oldest mail still waiting in the outbox.
    pub outbox_warning: Duration,
    pub outbox_critical: Duration,
    /// Time since the scheduler's last step (it steps at least every 5 minutes).
    pub scheduler_warning: Duration,
    pub scheduler_critical: Duration,
}

/// One review level (重点 / 特色 / 一般 / 不立项).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelConfig {
    pub name: String,
    /// The most a project of this level may be granted; `None` when it is not funded.
    pub cap_yuan: Option<f64>,
    pub funded: bool,
    /// What a project of this level sends for closure (结题报告, 报销材料 …).
    pub closure_materials: Vec<String>,
    /// Whether its results must also be published on the WeChat account.
    pub publish: bool,
}

/// The notice's levels: 重点 ≤ 5000, 特色 ≤ 3000, 一般 ≤ 1000 元, or not funded.
pub fn default_levels() -> Vec<LevelConfig> {
    let level = |name: &str, cap: Option<f64>, materials: &[&str], publish: bool| LevelConfig {
        name: name.to_string(),
        cap_yuan: cap,
        funded: cap.is_some(),
        closure_materials: materials.iter().map(|m| m.to_string()).collect(),
        publish,
    };
    vec![
        level(
            "重点",
            Some(5000.0),
            &["结题报告", "报销材料", "工作案例"],
            true,
        ),
        level(
            "特色",
            Some(3000.0),
            &["结题报告", "报销材料", "工作案例"],
            true,
        ),
        level(
            "一般",
            Some(1000.0),
            &["结题报告", "报销材料", "活动总结"],
            false,
        ),
        level("不立项", None, &[], false),
    ]
}

/// One bad key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("读不了配置文件 {path}：{source}。请确认路径，或先运行 `shenbao init` 生成一份。")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("配置文件 {path} 不是合法的 TOML：{message}")]
    Syntax { path: PathBuf, message: String },
    #[error("配置文件 {path} 有 {} 处问题：\n{}", problems.len(), format_problems(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {}：{}", p.key, p.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `host` names this machine: `localhost`, 127.0.0.0/8 or ::1 (also as `[::1]` and
/// as an IPv4-mapped address).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_end_matches('.');
    if h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    let bare = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_loopback(),
        Ok(std::net::IpAddr::V6(a)) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

impl SmtpConfig {
    /// A login name without a password to go with it (its environment variable is not set):
    /// sending would skip AUTH and every mail would be refused, so commands that send stop.
    pub fn missing_password(&self) -> Option<String> {
        let user = self.user.as_deref()?;
        if self
            .password
            .as_ref()
            .and_then(|p| p.value())
            .is_some_and(|v| !v.is_empty())
        {
            return None;
        }
        let source = self
            .password
            .as_ref()
            .map(|p| p.source.clone())
            .unwrap_or_else(|| "smtp.password_env".to_string());
        Some(format!(
            "smtp.user 设为 {user}，但没有它的密码：请设置{source}（[smtp] password_env / password_file），或删去 smtp.user 以不登录发信"
        ))
    }
}

impl Config {
    /// The URL the store connects with: `database_url`, with the PostgreSQL password from
    /// its secret put in. Never shown or logged; messages use `database_url`.
    pub fn database_connect_url(&self) -> String {
        let password = self.database_password.as_ref().and_then(Secret::value);
        match (password, url::Url::parse(&self.database_url)) {
            (Some(pw), Ok(mut u)) if crate::store::is_postgres_url(&self.database_url) => {
                let _ = u.set_password(Some(pw));
                u.to_string()
            }
            _ => self.database_url.clone(),
        }
    }

    /// The current campaign at `now`: the one whose window holds `now`, else the latest that
    /// opened before it (see [`crate::campaign::calendar::current`]).
    pub fn current_campaign(&self, now: DateTime<Utc>) -> &CampaignConfig {
        crate::campaign::calendar::current(&self.campaigns, CampaignConfig::window, now)
            .unwrap_or(&self.campaign)
    }

    /// The campaign with this id.
    pub fn campaign_by_id(&self, id: &str) -> Option<&CampaignConfig> {
        self.campaigns.iter().find(|c| c.id == id)
    }

    /// This configuration with `campaign` the campaign `id` instead of the current one (what
    /// `--campaign` does); the error, in Chinese, names the ids there are.
    pub fn with_campaign(mut self, id: &str) -> Result<Config, String> {
        let Some(chosen) = self.campaign_by_id(id).cloned() else {
            let ids: Vec<&str> = self.campaigns.iter().map(|c| c.id.as_str()).collect();
            return Err(format!(
                "配置中没有 id 为“{id}”的活动；可选的有：{}（见配置文件中各 [[campaign]] 的 id）",
                ids.join("、")
            ));
        };
        self.levels = self.levels_of(&chosen).to_vec();
        self.campaign = chosen;
        Ok(self)
    }

    /// The review levels of campaign `c`: its own, else the file's.
    pub fn levels_of<'c>(&'c self, c: &'c CampaignConfig) -> &'c [LevelConfig] {
        c.levels.as_deref().unwrap_or(&self.file_levels)
    }

    /// The campaign that came before `id`: of those whose window closed by the time `id`'s
    /// opens, the one that closed last ("上学期"). `None` for the first.
    pub fn previous_campaign(&self, id: &str) -> Option<&CampaignConfig> {
        let opens = self.campaign_by_id(id)?.window().opens?;
        self.campaigns
            .iter()
            .filter(|c| c.id != id)
            .filter_map(|c| Some((c.window().closes.filter(|&end| end <= opens)?, c)))
            .max_by_key(|(end, _)| *end)
            .map(|(_, c)| c)
    }

    /// Every campaign for [`crate::campaign::calendar::select`] (their subject patterns were
    /// checked when the file was loaded).
    pub fn candidates(&self) -> Vec<crate::campaign::calendar::Candidate> {
        self.campaigns
            .iter()
            .filter_map(|c| c.candidate().ok())
            .collect()
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses `text` as if it had been read from `path`, in this process's environment.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_in(text, path, &ServiceEnv::from_process())
    }

    /// Parses `text` as if it had been read from `path`, run with the directories of `env`;
    /// `Config.campaign` is the campaign current at the clock's now (`SHENBAO_NOW` when set).
    pub fn parse_in(text: &str, path: &Path, env: &ServiceEnv) -> Result<Config, ConfigError> {
        // A malformed SHENBAO_NOW is reported by the command's own clock; here it only decides
        // which of several campaigns is current.
        let now = crate::clock::Clock::from_env()
            .unwrap_or(crate::clock::Clock::System)
            .now();
        Config::parse_in_at(text, path, env, now)
    }

    /// [`Config::parse_in`] with `Config.campaign` the campaign current at `now`.
    pub fn parse_in_at(
        text: &str,
        path: &Path,
        env: &ServiceEnv,
        now: DateTime<Utc>,
    ) -> Result<Config, ConfigError> {
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let e: toml::de::Error = e;
                if let Some(problem) = both_campaign_forms(text) {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        problems: vec![problem],
                    });
                }
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut r = Reader {
            root: &table,
            base,
            problems: Vec::new(),
            seen: BTreeSet::new(),
            env,
        };
        let cfg = r.config(path, now);
        r.unknown_keys();
        match cfg {
            Some(cfg) if r.problems.is_empty() => Ok(cfg),
            _ => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: r.problems,
            }),
        }
    }
}

/// The directories systemd gives a service (see `deploy/shenbao.service`); both unset when
/// shenbao is run by hand.
#[derive(Debug, Clone, Default)]
pub struct ServiceEnv {
    /// `$STATE_DIRECTORY` (`StateDirectory=shenbao`): the default data directory.
    pub state_dir: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (`LoadCredential=`): where `password_credential` is read.
    pub credentials_dir: Option<PathBuf>,
}

impl ServiceEnv {
    pub fn from_process() -> ServiceEnv {
        // systemd joins several directories with ':'; shenbao's unit names one.
        let dir = |var: &str| {
            std::env::var_os(var)
                .and_then(|v| {
                    v.to_str()
                        .and_then(|v| v.split(':').next())
                        .map(PathBuf::from)
                })
                .filter(|p| p.is_absolute())
        };
        ServiceEnv {
            state_dir: dir("STATE_DIRECTORY"),
            credentials_dir: dir("CREDENTIALS_DIRECTORY"),
        }
    }
}

/// Walks the table, remembering every key it read and every problem it met.
struct Reader<'a> {
    root: &'a toml::Table,
    base: PathBuf,
    problems: Vec<Problem>,
    seen: BTreeSet<String>,
    env: &'a ServiceEnv,
}

impl Reader<'_> {
    fn bad(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            reason: reason.into(),
        });
    }

    fn get(&mut self, key: &str) -> Option<&Value> {
        self.seen.insert(key.to_string());
        let (section, name) = key.split_once('.')?;
        self.root.get(section)?.as_table()?.get(name)
    }

    fn string(&mut self, key: &str, default: Option<&str>) -> Option<String> {
        match self.get(key).cloned() {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::String(_)) | None => match default {
                Some(d) => Some(d.to_string()),
                None => {
                    self.bad(key, "必填，不能为空");
                    None
                }
            },
            Some(other) => {
                self.bad(
                    key,
                    format!("应为字符串（用引号括起来），现在是 {}", other.type_str()),
                );
                None
            }
        }
    }

    fn opt_string(&mut self, key: &str) -> Option<String> {
        match self.get(key).cloned() {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::String(_)) | None => None,
            Some(other) => {
                self.bad(key, format!("应为字符串，现在是 {}", other.type_str()));
                None
            }
        }
    }

    fn integer(&mut self, key: &str, default: i64, min: i64, max: i64) -> Option<i64> {
        match self.get(key).cloned() {
            None => Some(default),
            Some(Value::Integer(n)) if (min..=max).contains(&n) => Some(n),
            Some(Value::Integer(n)) => {
                self.bad(key, format!("{n} 超出范围，应在 {min} 到 {max} 之间"));
                None
            }
            Some(other) => {
                self.bad(
                    key,
                    format!("应为整数（不加引号），现在是 {}", other.type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> Option<bool> {
        match self.get(key).cloned() {
            None => Some(default),
            Some(Value::Boolean(b)) => Some(b),
            Some(other) => {
                self.bad(
                    key,
                    format!(
                        "应为 true 或 false（不加引号），现在是 {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn string_list(&mut self, key: &str, default: &[&str]) -> Option<Vec<String>> {
        match self.get(key).cloned() {
            None => Some(default.iter().map(|s| s.to_string()).collect()),
            Some(Value::Array(items)) => {
                let list: Vec<String> = items
                    .iter()
                    .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
                    .filter(|s| !s.is_empty())
                    .collect();
                if list.len() != items.len() || list.is_empty() {
                    self.bad(key, "应为非空的字符串列表，例如 [\"书记\", \"副书记\"]");
                    return None;
                }
                Some(list)
            }
            Some(other) => {
                self.bad(
                    key,
                    format!("应为字符串列表（方括号），现在是 {}", other.type_str()),
                );
                None
            }
        }
    }

    fn port(&mut self, key: &str, default: u16) -> Option<u16> {
        self.integer(key, i64::from(default), 1, 65535)
            .and_then(|n| u16::try_from(n).ok())
    }

    fn duration(&mut self, key: &str, default: &str) -> Option<Duration> {
        let text = self.string(key, Some(default))?;
        match parse_duration(&text) {
            Some(d) => Some(d),
            None => {
                self.bad(
                    key,
                    format!("“{text}”不是时长，请写成 30s、5m、2h 或 7d 这样的形式"),
                );
                None
            }
        }
    }

    fn size(&mut self, key: &str, default: &str) -> Option<u64> {
        let text = self.string(key, Some(default))?;
        match parse_size(&text) {
            Some(n) => Some(n),
            None => {
                self.bad(
                    key,
                    format!("“{text}”不是大小，请写成 40MB、512KB 这样的形式"),
                );
                None
            }
        }
    }

    fn tls(&mut self, key: &str, default: &str) -> Option<TlsMode> {
        let text = self.string(key, Some(default))?;
        match text.as_str() {
            "implicit" => Some(TlsMode::Implicit),
            "starttls" => Some(TlsMode::StartTls),
            "none" => Some(TlsMode::None),
            other => {
                self.bad(
                    key,
                    format!("“{other}”无效，只能是 \"implicit\"（993/465 端口）、\"starttls\"（143/587 端口）或 \"none\"（仅限本机测试）"),
                );
                None
            }
        }
    }

    /// `tls = "none"` sends the password and every mail in clear text: only to this machine.
    fn plain_only_to_loopback(&mut self, section: &str, host: Option<&str>, tls: Option<TlsMode>) {
        let (Some(host), Some(TlsMode::None)) = (host, tls) else {
            return;
        };
        if !is_loopback_host(host) {
            let (implicit, starttls) = if section == "imap" {
                (993, 143)
            } else {
                (465, 587)
            };
            self.bad(
                &format!("{section}.tls"),
                format!(
                    "tls = \"none\" 会把密码和邮件以明文发往 {host}，只允许用于本机地址（127.0.0.1、::1、localhost），请改为 tls = \"implicit\"（{implicit} 端口）或 tls = \"starttls\"（{starttls} 端口）"
                ),
            );
        }
    }

    fn path(&mut self, key: &str) -> Option<PathBuf> {
        self.opt_string(key).map(|p| self.resolve(&p))
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn existing_file(&mut self, key: &str) -> Option<PathBuf> {
        let p = self.path(key)?;
        if !p.is_file() {
            self.bad(key, format!("文件 {} 不存在或不可读", p.display()));
        }
        Some(p)
    }

    fn address(&mut self, key: &str, default: Option<&str>) -> Option<String> {
        let a = self.string(key, default)?;
        if !looks_like_address(&a) {
            self.bad(
                key,
                format!("“{a}”不像邮箱地址，应形如 name@example.edu.cn"),
            );
            return None;
        }
        Some(a)
    }

    /// Where a `password_credential` named `name` is read: the service's credentials
    /// directory, or `credentials/` next to the config file when run by hand.
    fn credential_path(&self, name: &str) -> PathBuf {
        match &self.env.credentials_dir {
            Some(dir) => dir.join(name),
            None => self.base.join("credentials").join(name),
        }
    }

    /// `password_env`, `password_file` or `password_credential`, exactly one; `required` when
    /// the server needs a login.
    fn secret(&mut self, section: &str, required: bool) -> Option<Secret> {
        let env_key = format!("{section}.password_env");
        let file_key = format!("{section}.password_file");
        let cred_key = format!("{section}.password_credential");
        let env = self.opt_string(&env_key);
        let file = self.opt_string(&file_key);
        let cred = self.opt_string(&cred_key);
        if self.get(&format!("{section}.password")).is_some() {
            self.bad(
                &format!("{section}.password"),
                "密码不能写在配置文件里：请改用 password_credential（systemd 凭据名）、password_env（环境变量名）或 password_file（只含密码的文件）",
            );
        }
        match (env, file, cred) {
            (Some(var), None, None) => Some(Secret {
                source: format!("环境变量 {var}"),
                value: std::env::var(&var).ok(),
            }),
            (None, Some(f), None) => {
                let p = self.resolve(&f);
                match std::fs::read_to_string(&p) {
                    Ok(s) => Some(Secret {
                        source: format!("文件 {}", p.display()),
                        value: Some(s.trim_end_matches(['\r', '\n']).to_string()),
                    }),
                    Err(e) => {
                        self.bad(&file_key, format!("读不了密码文件 {}：{e}", p.display()));
                        None
                    }
                }
            }
            (None, None, Some(name)) => {
                if name.is_empty()
                    || name.contains(['/', '\\'])
                    || name.starts_with('.')
                    || name.chars().any(char::is_control)
                {
                    self.bad(
                        &cred_key,
                        format!("“{name}”不是凭据名：只写名称（如 \"{section}\"），与服务文件中 LoadCredential={section}:… 冒号前的部分相同"),
                    );
                    return None;
                }
                let p = self.credential_path(&name);
                let source = format!("systemd 凭据 {name}（{}）", p.display());
                match std::fs::read_to_string(&p) {
                    Ok(s) => Some(Secret {
                        source,
                        value: Some(s.trim_end_matches(['\r', '\n']).to_string()),
                    }),
                    // Like an unset password_env: not an error for commands that do not log
                    // in (`sudo -u shenbao shenbao status` cannot read root's credentials);
                    // check-config warns, and `run` refuses to start without it.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                        ) =>
                    {
                        Some(Secret {
                            source,
                            value: None,
                        })
                    }
                    Err(e) => {
                        self.bad(&cred_key, format!("读不了密码文件 {}：{e}", p.display()));
                        None
                    }
                }
            }
            (None, None, None) if required => {
                self.bad(
                    &env_key,
                    format!(
                        "[{section}] 需要密码：请设置 password_credential（systemd 凭据名，正式部署用）、password_env（环境变量名）或 password_file"
                    ),
                );
                None
            }
            (None, None, None) => None,
            _ => {
                self.bad(
                    &env_key,
                    format!("password_env、password_file、password_credential 只能写一个（[{section}]），请删掉多余的"),
                );
                None
            }
        }
    }

    /// `[database]`: SQLite, or PostgreSQL with its password from a secret (never in the URL)
    /// and TLS to any server that is not this machine.
    fn database(&mut self, url: &str) -> Option<Secret> {
        if url.starts_with("sqlite:") {
            return None;
        }
        if !crate::store::is_postgres_url(url) {
            self.bad(
                "database.url",
                "应为 sqlite:///var/lib/shenbao/shenbao.db（默认，单机）或 postgres://用户@主机:5432/库名（多个守护进程共用一个数据库）",
            );
            return None;
        }
        let parsed = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => {
                self.bad("database.url", format!("不是合法的地址（{e}），应形如 postgres://shenbao@db.example.edu.cn:5432/shenbao?sslmode=verify-full"));
                return None;
            }
        };
        if parsed.password().is_some() {
            self.bad(
                "database.url",
                "密码不能写在 url 里：请删去“:密码”，改用 [database] password_credential、password_env 或 password_file",
            );
        }
        let host = parsed.host_str().unwrap_or("");
        let sslmode = parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.to_string());
        let encrypted = matches!(
            sslmode.as_deref(),
            Some("require" | "verify-ca" | "verify-full")
        );
        // A Unix socket (no host) and this machine need no TLS.
        if !host.is_empty() && !is_loopback_host(host) && !encrypted {
            self.bad(
                "database.url",
                format!(
                    "连接 {host} 的 PostgreSQL 没有要求加密，密码和申报材料会以明文经过网络：请在 url 末尾加 ?sslmode=verify-full（学校自签证书再加 &sslrootcert=证书路径）"
                ),
            );
        }
        self.secret("database", false)
    }

    fn config(&mut self, path: &Path, now: DateTime<Utc>) -> Option<Config> {
        for section in [
            "imap", "smtp", "database", "storage", "ack", "health", "web",
        ] {
            self.seen.insert(section.to_string());
            match self.root.get(section) {
                Some(Value::Table(_)) | None => {}
                Some(_) => self.bad(section, "应为一个 [表]"),
            }
        }
        let imap = self.imap();
        let smtp = self.smtp();
        let data_dir = self.path("storage.data_dir").unwrap_or_else(|| {
            self.env
                .state_dir
                .clone()
                .unwrap_or_else(|| self.base.join("data"))
        });
        let database_url = self
            .opt_string("database.url")
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("shenbao.db").display()));
        let database_password = self.database(&database_url);
        let lease = self.duration("database.lease", "30s");
        if lease.is_some_and(|d| d < Duration::from_secs(2)) {
            self.bad(
                "database.lease",
                "租约太短，守护进程来不及续期：至少 2s，一般用默认的 30s",
            );
        }
        let campaigns = self.campaigns();
        // The Message-ID domain must not move with the current campaign: the first one's.
        let ack = self.ack(campaigns.as_ref().and_then(|c| c.first()));
        let campaign = campaigns
            .as_ref()
            .and_then(|c| crate::campaign::calendar::current(c, CampaignConfig::window, now))
            .cloned();
        let health = self.health();
        let web = self.web();
        let reminders = self.array("reminder", |r| r.reminder());
        let digests = self.array("digest", |r| r.digest());
        let levels = match self.array("level", |r| r.level()) {
            Some(l) if l.is_empty() => Some(default_levels()),
            other => other,
        };
        let reminders = match reminders {
            Some(r) if r.is_empty() && !self.root.contains_key("reminder") => {
                Some(default_reminders())
            }
            other => other,
        };
        let file_levels = levels?;
        let campaign = campaign?;
        Some(Config {
            reminders: reminders?,
            digests: digests?,
            levels: campaign
                .levels
                .clone()
                .unwrap_or_else(|| file_levels.clone()),
            file_levels,
            path: path.to_path_buf(),
            imap: imap?,
            smtp: smtp?,
            database_url,
            database_password,
            lease: lease?,
            data_dir,
            campaign,
            campaigns: campaigns?,
            ack: ack?,
            health: health?,
            web: web?,
        })
    }

    /// `[web]` and its `[[web.user]]` entries; `Some(None)` when there is no `[web]`.
    fn web(&mut self) -> Option<Option<WebConfig>> {
        if !matches!(self.root.get("web"), Some(Value::Table(_))) {
            return Some(None);
        }
        let listen_text = self.string("web.listen", Some("127.0.0.1:8640"))?;
        let listen = match listen_text.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.bad(
                    "web.listen",
                    format!("“{listen_text}”不是“地址:端口”，请写成 127.0.0.1:8640 这样的形式"),
                );
                None
            }
        };
        let session_idle = self.duration("web.session_idle", "30m");
        let secure_cookies = self.boolean("web.secure_cookies", false);
        let behind_proxy = self.boolean("web.behind_proxy", false);
        let users = self
            .nested_array("web", "user", |r| r.web_user())?
            .unwrap_or_default();
        let mut names = BTreeSet::new();
        for (i, u) in users.iter().enumerate() {
            if !names.insert(u.name.clone()) {
                self.bad(
                    &format!("web.user[{}].name", i + 1),
                    format!("账号“{}”写了两次，请删掉一个", u.name),
                );
            }
        }
        if users.is_empty() {
            self.bad(
                "web.user",
                "看板没有任何账号：请用 `shenbao web passwd 姓名` 生成 [[web.user]] 并写入配置",
            );
        }
        Some(Some(WebConfig {
            listen: listen?,
            users,
            session_idle: session_idle?,
            secure_cookies: secure_cookies?,
            behind_proxy: behind_proxy?,
        }))
    }

    fn web_user(&mut self) -> Option<WebUser> {
        let name = self.string("user.name", None);
        let hash = self.string("user.password_hash", None);
        if let Some(h) = &hash
            && !(h.starts_with("$argon2") && argon2::PasswordHash::new(h).is_ok())
        {
            self.bad(
                "user.password_hash",
                "不是 argon2 密码散列：请用 `shenbao web passwd 姓名` 生成后整行复制过来",
            );
            return None;
        }
        let role = match self.string("user.role", None)?.as_str() {
            "staff" => Some(WebRole::Staff),
            "reviewer" => Some(WebRole::Reviewer),
            other => {
                self.bad(
                    "user.role",
                    format!("“{other}”不是角色：工作人员写 \"staff\"，评审专家（只能查看）写 \"reviewer\""),
                );
                None
            }
        };
        Some(WebUser {
            name: name?,
            password_hash: hash?,
            role: role?,
        })
    }

    fn health(&mut self) -> Option<HealthConfig> {
        let pair = |r: &mut Self, name: &str, warning: &str, critical: &str| {
            let w = r.duration(&format!("health.{name}_warning"), warning);
            let c = r.duration(&format!("health.{name}_critical"), critical);
            if let (Some(w), Some(c)) = (w, c)
                && w > c
            {
                r.bad(
                    &format!("health.{name}_warning"),
                    format!("不能长于 health.{name}_critical"),
                );
            }
            Some((w?, c?))
        };
        let imap = pair(self, "imap", "15m", "1h");
        let outbox = pair(self, "outbox", "30m", "2h");
        let scheduler = pair(self, "scheduler", "15m", "1h");
        let (imap, outbox, scheduler) = (imap?, outbox?, scheduler?);
        Some(HealthConfig {
            imap_warning: imap.0,
            imap_critical: imap.1,
            outbox_warning: outbox.0,
            outbox_critical: outbox.1,
            scheduler_warning: scheduler.0,
            scheduler_critical: scheduler.1,
        })
    }

    fn imap(&mut self) -> Option<ImapConfig> {
        let host = self.string("imap.host", None);
        let tls = self.tls("imap.tls", "implicit");
        let default_port = if tls == Some(TlsMode::Implicit) {
            993
        } else {
            143
        };
        self.plain_only_to_loopback("imap", host.as_deref(), tls);
        let port = self.port("imap.port", default_port);
        let user = self.string("imap.user", None);
        let password = self.secret("imap", true);
        let folder = self.string("imap.folder", Some("INBOX"));
        let processed = self.opt_string("imap.processed_folder");
        // Default: beside the processed folder; when nothing is moved, nothing moves either.
        // Naming the watched folder itself keeps such mail where it arrived.
        let staff = match self.opt_string("imap.staff_folder") {
            Some(f) => Some(f),
            None if processed.is_some() => Some("需人工处理".to_string()),
            None => None,
        }
        .filter(|f| !f.trim().is_empty() && Some(f.as_str()) != folder.as_deref());
        let poll = self.duration("imap.poll_interval", "60s");
        let renew = self.duration("imap.idle_renew", "25m");
        if let Some(r) = renew
            && r >= Duration::from_secs(29 * 60)
        {
            self.bad(
                "imap.idle_renew",
                "必须短于 29 分钟（RFC 2177：服务器可在 30 分钟后断开 IDLE）",
            );
        }
        let max = self.size("imap.max_message_size", "60MB");
        let ca = self.existing_file("imap.ca_file");
        let timeout = self.duration("imap.timeout", "60s");
        Some(ImapConfig {
            host: host?,
            port: port?,
            tls: tls?,
            user: user?,
            password: password?,
            folder: folder?,
            processed_folder: processed,
            staff_folder: staff,
            poll_interval: poll?,
            idle_renew: renew?,
            max_message_bytes: max?,
            ca_file: ca,
            timeout: timeout?,
        })
    }

    fn smtp(&mut self) -> Option<SmtpConfig> {
        let host = self.string("smtp.host", None);
        let tls = self.tls("smtp.tls", "implicit");
        let default_port = match tls {
            Some(TlsMode::Implicit) => 465,
            Some(TlsMode::StartTls) => 587,
            _ => 25,
        };
        self.plain_only_to_loopback("smtp", host.as_deref(), tls);
        let port = self.port("smtp.port", default_port);
        let user = self.opt_string("smtp.user");
        let password = self.secret("smtp", user.is_some());
        let from = self.address("smtp.from_address", None);
        let name = self.string("smtp.from_name", Some("申报系统"));
        let ca = self.existing_file("smtp.ca_file");
        let attempts = self.integer("smtp.max_attempts", 8, 1, 100);
        let timeout = self.duration("smtp.timeout", "60s");
        let copy = self.boolean("smtp.copy_to_intake", true);
        let grace = self.duration("smtp.confirm_grace", "2m");
        let retry_initial = self.duration("smtp.retry_initial", "10s");
        let connections = self.integer("smtp.connections", 2, 1, 8);
        let mut cap = |key: &str| {
            if self.get(key).is_none() {
                return Some(None);
            }
            self.integer(key, 0, 1, 10_000_000)
                .map(|n| u32::try_from(n).ok())
        };
        let limits = crate::send::limit::Limits {
            per_minute: cap("smtp.max_per_minute")?,
            per_hour: cap("smtp.max_per_hour")?,
            per_day: cap("smtp.max_per_day")?,
        };
        if let Some(r) = retry_initial
            && (r < Duration::from_secs(1) || r > MAX_BACKOFF)
        {
            self.bad(
                "smtp.retry_initial",
                "必须在 1 秒到 30 分钟之间（例如 10s），之后每次重试的间隔加倍，最长 30 分钟",
            );
        }
        Some(SmtpConfig {
            copy_to_intake: copy?,
            confirm_grace: grace?,
            retry_initial: retry_initial?,
            connections: u8::try_from(connections?).ok()?,
            limits,
            host: host?,
            port: port?,
            tls: tls?,
            user,
            password,
            from_address: from?,
            from_name: name?,
            ca_file: ca,
            max_attempts: u32::try_from(attempts?).ok()?,
            timeout: timeout?,
        })
    }

    /// The campaigns: the single `[campaign]` table or every `[[campaign]]`, then the checks
    /// across them (ids, windows of the same subject).
    fn campaigns(&mut self) -> Option<Vec<CampaignConfig>> {
        self.seen.insert("campaign".to_string());
        match self.root.get("campaign") {
            Some(Value::Table(_)) => return self.campaign(false).map(|c| vec![c]),
            Some(Value::Array(a)) if a.is_empty() => {
                self.bad(
                    "campaign",
                    "至少要有一个活动：写一个 [campaign] 表，或一个以上的 [[campaign]]",
                );
                return None;
            }
            Some(Value::Array(_)) => {}
            None => {
                // As before: the required keys of the one campaign, each named.
                return self.campaign(false).map(|c| vec![c]);
            }
            Some(_) => {
                self.bad("campaign", "应为一个 [campaign] 表，或多个 [[campaign]] 表");
                return None;
            }
        }
        let entries = self.array_entries("campaign", |r| r.campaign(true))?;
        let mut ok = entries.iter().all(Option::is_some);
        // The checks across entries look at every entry that is good on its own, so one
        // round of check-config names every problem; positions stay those of the file.
        let list: Vec<(usize, CampaignConfig)> = entries
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c?)))
            .collect();
        for (n, (j, b)) in list.iter().enumerate() {
            if let Some((i, _)) = list[..n].iter().find(|(_, a)| a.id == b.id) {
                self.bad(
                    &format!("campaign[{}].id", j + 1),
                    format!(
                        "id “{}”与 campaign[{}] 重复：每个活动的 id 必须不同，例如按学期写 \"2025-autumn\"、\"2026-spring\"",
                        b.id,
                        i + 1
                    ),
                );
                ok = false;
            }
        }
        for (n, (j, b)) in list.iter().enumerate() {
            for (i, a) in &list[..n] {
                if !same_subject(a, b) || !a.window().overlaps(&b.window()) {
                    continue;
                }
                let ((ei, earlier), (li, later)) = if (a.deadline, i) <= (b.deadline, j) {
                    ((*i, a), (*j, b))
                } else {
                    ((*j, b), (*i, a))
                };
                let (key, reason) = overlap_problem(ei + 1, earlier, li + 1, later);
                self.bad(&key, reason);
                ok = false;
            }
        }
        ok.then(|| list.into_iter().map(|(_, c)| c).collect())
    }

    /// One campaign: the `[campaign]` table, or one `[[campaign]]` entry when `many`.
    fn campaign(&mut self, many: bool) -> Option<CampaignConfig> {
        let id = match self.opt_string("campaign.id") {
            None if many => {
                self.bad(
                    "campaign.id",
                    "必填：活动的简短英文标识，例如 \"2025-autumn\"（多个 [[campaign]] 靠它区分，记录也按它归档）",
                );
                None
            }
            None => Some(DEFAULT_CAMPAIGN_ID.to_string()),
            Some(id) => match campaign_id_problem(&id) {
                None => Some(id),
                Some(reason) => {
                    self.bad("campaign.id", reason);
                    None
                }
            },
        };
        let title = self.opt_string("campaign.title");
        let name = self.opt_string("campaign.name");
        let name_key = if many {
            "campaign.title"
        } else {
            "campaign.name"
        };
        let name = match (title, name) {
            (Some(t), None) | (None, Some(t)) => Some(t),
            (Some(_), Some(_)) => {
                self.bad(
                    "campaign.title",
                    "title 和 name 是同一项（活动名称），只写一个",
                );
                None
            }
            (None, None) => {
                self.bad(name_key, "必填，不能为空：活动名称，会出现在回执邮件中");
                None
            }
        };
        let organizer = self.string("campaign.organizer", Some("党委学生工作部"));
        let intake = self.address("campaign.intake_address", None);
        let app = self.string(
            "campaign.application_subject",
            Some("对标争先建设项目申报-{支部名称}"),
        );
        let closure = self.string(
            "campaign.closure_subject",
            Some("对标争先建设项目结项-{支部名称}"),
        );
        if let (Some(a), Some(c)) = (&app, &closure)
            && let Err(e) = crate::campaign::subject::SubjectGrammar::new(a, c)
        {
            self.bad("campaign.application_subject", e.to_string());
        }
        let tz_text = self.string("campaign.timezone", Some("Asia/Shanghai"));
        let tz = tz_text
            .as_deref()
            .and_then(|t| match t.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    self.bad(
                        "campaign.timezone",
                        format!("“{t}”不是时区名，例如 Asia/Shanghai"),
                    );
                    None
                }
            });
        let deadline_text = self.string("campaign.deadline", None);
        let deadline = match (&deadline_text, tz) {
            (Some(d), Some(tz)) => match parse_deadline(d, tz) {
                Some(t) => Some(t),
                None => {
                    self.bad(
                        "campaign.deadline",
                        format!("“{d}”不是时间，请写成 2025-09-27T23:59:59（按 campaign.timezone）或带时区的 2025-09-27T23:59:59+08:00"),
                    );
                    None
                }
            },
            _ => None,
        };
        let closure_deadline = match (self.opt_string("campaign.closure_deadline"), tz) {
            (Some(d), Some(tz)) => match parse_deadline(&d, tz) {
                Some(t) => Some(Some(t)),
                None => {
                    self.bad(
                        "campaign.closure_deadline",
                        format!("“{d}”不是时间，请写成 2025-12-15T23:59:59"),
                    );
                    None
                }
            },
            _ => Some(None),
        };
        let opens = match (self.opt_string("campaign.opens"), tz) {
            (Some(d), Some(tz)) => match parse_deadline(&d, tz) {
                Some(t) => Some(Some(t)),
                None => {
                    self.bad(
                        "campaign.opens",
                        format!(
                            "“{d}”不是时间，请写成 2026-02-16T00:00:00（按 campaign.timezone）"
                        ),
                    );
                    None
                }
            },
            _ => Some(None),
        };
        if let (Some(Some(o)), Some(d)) = (opens, deadline)
            && o >= d
        {
            self.bad(
                "campaign.opens",
                format!(
                    "开始收件时间（{}）不早于申报截止时间（{}）：请把 opens 提前，或删掉 opens（不限开始时间）",
                    crate::clock::beijing(o),
                    crate::clock::beijing(d)
                ),
            );
        }
        if let (Some(Some(c)), Some(d)) = (closure_deadline, deadline)
            && c <= d
        {
            self.bad(
                "campaign.closure_deadline",
                format!(
                    "结项截止时间（{}）不晚于申报截止时间（{}）：请检查日期",
                    crate::clock::beijing(c),
                    crate::clock::beijing(d)
                ),
            );
        }
        let grace = self.duration("campaign.grace", "0s");
        let implementation = self.string("campaign.implementation", Some("10月—12月"));
        let roster = self.existing_file("campaign.roster");
        if roster.is_none() && !self.problems.iter().any(|p| p.key == "campaign.roster") {
            self.bad(
                "campaign.roster",
                "必填：支部名册 CSV（列：学院,支部名称,书记,书记邮箱）",
            );
        }
        let staff = self.string(
            "campaign.staff_contact",
            Some("学生工作部（请直接回复本邮件）"),
        );
        let sections = self.string_list("campaign.sections", &DEFAULT_SECTIONS);
        let cap = self.integer("campaign.budget_cap_yuan", 5000, 1, 100_000_000);
        let roles = self.string_list("campaign.leader_roles", &["书记", "副书记"]);
        let levels = self.nested_array("campaign", "level", |r| r.level());
        Some(CampaignConfig {
            levels: levels?.filter(|l| !l.is_empty()),
            id: id?,
            opens: opens?,
            sections: sections?,
            budget_cap_yuan: cap? as f64,
            leader_roles: roles?,
            name: name?,
            organizer: organizer?,
            intake_address: intake?,
            application_subject: app?,
            closure_subject: closure?,
            deadline: deadline?,
            closure_deadline: closure_deadline?,
            grace: grace?,
            implementation: implementation?,
            deadline_text: deadline_text?,
            timezone: tz?,
            roster: roster?,
            staff_contact: staff?,
        })
    }

    fn ack(&mut self, campaign: Option<&CampaignConfig>) -> Option<AckConfig> {
        let max = self.integer("ack.max_per_sender", 5, 1, 1000);
        let identical = self.integer("ack.max_identical", 3, 1, 100);
        let window = self.duration("ack.window", "24h");
        let dir = self.path("ack.templates_dir");
        if let Some(d) = &dir
            && !d.is_dir()
        {
            self.bad("ack.templates_dir", format!("目录 {} 不存在", d.display()));
        }
        let domain_default = campaign
            .and_then(|c| c.intake_address.rsplit_once('@'))
            .map(|(_, d)| format!("shenbao.{d}"))
            .unwrap_or_else(|| "shenbao.invalid".to_string());
        let domain = self.string("ack.message_id_domain", Some(&domain_default));
        Some(AckConfig {
            max_per_sender: u32::try_from(max?).ok()?,
            max_identical: u32::try_from(identical?).ok()?,
            window: window?,
            templates_dir: dir,
            message_id_domain: domain?,
        })
    }

    /// Reads an array of tables (`[[reminder]]`) entry by entry with `read`, naming problems
    /// `reminder[2].offsets` so the operator finds the right entry.
    /// `[[table.name]]` entries inside the table `table` (e.g. `[[campaign.level]]` after a
    /// `[[campaign]]`), each read by `read`; `Some(None)` when there are none, `None` when an
    /// entry has problems (recorded under `table.name[i].key`).
    fn nested_array<T>(
        &mut self,
        table: &str,
        name: &str,
        read: impl Fn(&mut Reader<'_>) -> Option<T>,
    ) -> Option<Option<Vec<T>>> {
        self.seen.insert(format!("{table}.{name}"));
        let Some(value) = self.root.get(table).and_then(|t| t.get(name)).cloned() else {
            return Some(None);
        };
        let mut root = toml::Table::new();
        root.insert(name.to_string(), value);
        let mut sub = Reader {
            root: &root,
            base: self.base.clone(),
            problems: Vec::new(),
            seen: BTreeSet::new(),
            env: self.env,
        };
        let out = sub.array(name, read);
        for p in sub.problems {
            self.problems.push(Problem {
                key: format!("{table}.{}", p.key),
                reason: p.reason,
            });
        }
        out.map(Some)
    }

    fn array<T>(
        &mut self,
        name: &str,
        read: impl Fn(&mut Reader<'_>) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.array_entries(name, read)?.into_iter().collect()
    }

    /// [`Reader::array`] entry by entry: `None` for an entry with problems (they are
    /// recorded), so checks across entries can still look at the good ones.
    fn array_entries<T>(
        &mut self,
        name: &str,
        read: impl Fn(&mut Reader<'_>) -> Option<T>,
    ) -> Option<Vec<Option<T>>> {
        self.seen.insert(name.to_string());
        let entries = match self.root.get(name) {
            None => return Some(Vec::new()),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                self.bad(name, format!("应写成 [[{name}]] 表数组"));
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let Value::Table(t) = entry else {
                self.bad(&format!("{name}[{}]", i + 1), "应为一个表");
                out.push(None);
                continue;
            };
            let mut root = toml::Table::new();
            root.insert(name.to_string(), Value::Table(t.clone()));
            let mut sub = Reader {
                root: &root,
                base: self.base.clone(),
                problems: Vec::new(),
                seen: BTreeSet::from([name.to_string()]),
                env: self.env,
            };
            let item = read(&mut sub);
            sub.unknown_keys();
            let ok = sub.problems.is_empty();
            let prefix = format!("{name}.");
            for p in sub.problems {
                let key = match p.key.strip_prefix(&prefix) {
                    Some(rest) => format!("{name}[{}].{rest}", i + 1),
                    None => format!("{name}[{}]", i + 1),
                };
                self.problems.push(Problem {
                    key,
                    reason: p.reason,
                });
            }
            out.push(item.filter(|_| ok));
        }
        Some(out)
    }

    fn reminder(&mut self) -> Option<crate::schedule::ReminderRule> {
        use crate::schedule::{Audience, DeadlineKind, parse_offset, parse_time_of_day};
        let name = self.string("reminder.name", None);
        let deadline = self
            .string("reminder.deadline", Some("application"))
            .and_then(|d| match d.parse::<DeadlineKind>() {
                Ok(k) => Some(k),
                Err(e) => {
                    self.bad("reminder.deadline", e.to_string());
                    None
                }
            });
        let offsets = self
            .string_list("reminder.offsets", &["7d", "3d", "1d"])
            .and_then(|list| {
                let mut out = Vec::new();
                for o in &list {
                    match parse_offset(o) {
                        Ok(d) => out.push(d),
                        Err(e) => {
                            self.bad("reminder.offsets", e.to_string());
                            return None;
                        }
                    }
                }
                Some(out)
            });
        let time = match self.opt_string("reminder.time") {
            None => Some(parse_time_of_day("09:00").ok()),
            Some(t) => match parse_time_of_day(&t) {
                Ok(t) => Some(Some(t)),
                Err(e) => {
                    self.bad("reminder.time", e.to_string());
                    None
                }
            },
        };
        let audiences = self
            .string_list("reminder.audience", &["not_submitted", "has_problems"])
            .and_then(|list| {
                let mut out = Vec::new();
                for a in &list {
                    match a.parse::<Audience>() {
                        Ok(a) => out.push(a),
                        Err(e) => {
                            self.bad("reminder.audience", e.to_string());
                            return None;
                        }
                    }
                }
                Some(out)
            });
        let template = self.string("reminder.template", Some("reminder.txt.j2"));
        Some(crate::schedule::ReminderRule {
            name: name?,
            deadline: deadline?,
            offsets: offsets?,
            time_of_day: time?,
            audiences: audiences?,
            template: template?,
        })
    }

    fn level(&mut self) -> Option<LevelConfig> {
        let name = self.string("level.name", None);
        let cap = match self.get("level.cap_yuan").cloned() {
            None => Some(None),
            Some(Value::Integer(n)) if n > 0 => Some(Some(n as f64)),
            Some(_) => {
                self.bad("level.cap_yuan", "应为正整数（元），不立项的等级不写这一项");
                None
            }
        };
        let materials = self
            .string_list("level.closure_materials", &["结题报告", "报销材料"])
            .and_then(|list| {
                // Each material is checked against a file role: a name nobody can recognise
                // would stay "尚未收到" for ever.
                let unknown: Vec<&String> = list
                    .iter()
                    .filter(|m| crate::attach::Role::from_material(m).is_none())
                    .collect();
                if unknown.is_empty() {
                    Some(list)
                } else {
                    let names: Vec<String> = unknown.iter().map(|m| format!("“{m}”")).collect();
                    self.bad(
                        "level.closure_materials",
                        format!(
                            "{} 不是能识别的结项材料：请从 结题报告、报销材料、工作案例、活动总结 中选写（通知要求重点、特色项目交工作案例，一般项目交活动总结）",
                            names.join("、")
                        ),
                    );
                    None
                }
            });
        let publish = self.boolean("level.publish", false);
        let cap = cap?;
        Some(LevelConfig {
            name: name?,
            cap_yuan: cap,
            funded: cap.is_some(),
            closure_materials: if cap.is_some() {
                materials?
            } else {
                Vec::new()
            },
            publish: publish?,
        })
    }

    fn digest(&mut self) -> Option<crate::schedule::DigestRule> {
        let name = self.string("digest.name", None);
        let recipients = self.string_list("digest.recipients", &[]);
        if let Some(r) = &recipients {
            for a in r {
                if !looks_like_address(a) {
                    self.bad("digest.recipients", format!("“{a}”不像邮箱地址"));
                }
            }
            if r.is_empty() {
                self.bad(
                    "digest.recipients",
                    "至少填写一个收件人，例如 [\"reviewer@example.edu.cn\"]",
                );
            }
        }
        let schedule = self.string("digest.schedule", None).and_then(|c| {
            match crate::schedule::parse_cron(&c) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.bad("digest.schedule", e.to_string());
                    None
                }
            }
        });
        let sections = match self.get("digest.sections").cloned() {
            None => Some(None),
            Some(_) => self.string_list("digest.sections", &[]).map(Some),
        };
        let empty = self.boolean("digest.send_when_empty", false);
        Some(crate::schedule::DigestRule {
            name: name?,
            recipients: recipients?,
            schedule: schedule?,
            sections: sections?,
            send_when_empty: empty?,
        })
    }

    fn unknown_keys(&mut self) {
        let mut unknown = Vec::new();
        for (section, value) in self.root {
            if !self.seen.contains(section.as_str()) {
                unknown.push(section.clone());
                continue;
            }
            if let Value::Table(t) = value {
                for key in t.keys() {
                    let full = format!("{section}.{key}");
                    if !self.seen.contains(&full) {
                        unknown.push(full);
                    }
                }
            }
        }
        for k in unknown {
            self.bad(
                &k,
                "未知的配置项（拼写错误？请对照 config/shenbao.example.toml）",
            );
        }
    }
}

/// Why `id` cannot name a campaign, if it cannot: 1–32 characters of lowercase ASCII letters,
/// digits, `-` and `_`, starting with a letter or digit (it goes into `--campaign`, file
/// names and the database).
fn campaign_id_problem(id: &str) -> Option<String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    let first_ok = id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if id.len() <= 32 && first_ok && id.chars().all(ok_char) {
        return None;
    }
    let hint = if id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && id.len() <= 32
        && id.chars().any(|c| c.is_ascii_uppercase())
    {
        format!("，例如改成 \"{}\"", id.to_ascii_lowercase())
    } else {
        "，例如 \"2025-autumn\"、\"2026-spring\"".to_string()
    };
    Some(format!(
        "“{id}”不能作活动 id：只能用小写英文字母、数字、- 和 _，以字母或数字开头，最长 32 个字符{hint}"
    ))
}

/// Whether two campaigns share an application or closure subject pattern (compared after
/// normalisation, so full-width and half-width spellings count as the same).
fn same_subject(a: &CampaignConfig, b: &CampaignConfig) -> bool {
    let norm = |c: &CampaignConfig| {
        [
            crate::textnorm::normalize(&c.application_subject),
            crate::textnorm::normalize(&c.closure_subject),
        ]
    };
    let (na, nb) = (norm(a), norm(b));
    na.iter().any(|x| nb.contains(x))
}

/// The problem for two campaigns of the same subject whose windows overlap: the key to change
/// and what to write. `earlier` has the earlier application deadline.
fn overlap_problem(
    ei: usize,
    earlier: &CampaignConfig,
    li: usize,
    later: &CampaignConfig,
) -> (String, String) {
    let (e, l) = (&earlier.id, &later.id);
    let Some(end) = earlier.window().closes else {
        return (
            format!("campaign[{ei}].closure_deadline"),
            format!(
                "活动 {e} 没有 closure_deadline，收件时间一直不结束，与主题相同的活动 {l}（campaign[{li}]）重叠：请给 {e} 写上结项截止时间 closure_deadline，并让 {l} 的 opens 晚于它"
            ),
        );
    };
    let suggestion = end + chrono::Duration::seconds(1);
    let suggestion = suggestion
        .with_timezone(&later.timezone)
        .format("%Y-%m-%dT%H:%M:%S");
    match later.opens {
        None => (
            format!("campaign[{li}].opens"),
            format!(
                "活动 {l} 没有写 opens（不限开始时间），与主题相同的活动 {e}（campaign[{ei}]，收件到 {} 为止）重叠：请给 {l} 写 opens = \"{suggestion}\" 或更晚",
                crate::clock::beijing(end)
            ),
        ),
        Some(o) => (
            format!("campaign[{li}].opens"),
            format!(
                "活动 {l} 的 opens（{}）早于主题相同的活动 {e}（campaign[{ei}]）收件结束的时间（{}，结项截止加宽限）：请把 {l} 的 opens 改为 \"{suggestion}\" 或更晚，或把 {e} 的 closure_deadline 提前",
                crate::clock::beijing(o),
                crate::clock::beijing(end)
            ),
        ),
    }
}

/// `[campaign]` and `[[campaign]]` in one file: TOML itself refuses that with an English
/// message about a duplicate key; the operator gets told in Chinese what to change.
fn both_campaign_forms(text: &str) -> Option<Problem> {
    let header = |line: &str| -> Option<(bool, String)> {
        let t = line.split('#').next().unwrap_or("").trim();
        let (double, inner) = match t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            Some(inner) => (true, inner),
            None => (false, t.strip_prefix('[')?.strip_suffix(']')?),
        };
        Some((double, inner.trim().trim_matches('"').to_string()))
    };
    let mut table = false;
    let mut array = false;
    for line in text.lines() {
        match header(line) {
            Some((false, name)) if name == "campaign" => table = true,
            Some((true, name)) if name == "campaign" => array = true,
            _ => {}
        }
    }
    (table && array).then(|| Problem {
        key: "campaign".to_string(),
        reason: "同时写了 [campaign] 和 [[campaign]]，只能用一种写法：只有一个活动时用 [campaign]；有多个学期的活动时都写成 [[campaign]]（各带 id），把原来的 [campaign] 改成 [[campaign]] 并加上 id = \"default\"（沿用原有记录）".to_string(),
    })
}

/// The notice's reminders: 7, 3 and 1 days before the application deadline, at 09:00, to
/// branches that have not applied or whose latest version still has problems.
pub fn default_reminders() -> Vec<crate::schedule::ReminderRule> {
    let day = chrono::Duration::days(1);
    vec![crate::schedule::ReminderRule {
        name: "申报截止提醒".to_string(),
        deadline: crate::schedule::DeadlineKind::Application,
        offsets: vec![day * 7, day * 3, day],
        time_of_day: chrono::NaiveTime::from_hms_opt(9, 0, 0),
        audiences: vec![
            crate::schedule::Audience::NotSubmitted,
            crate::schedule::Audience::HasProblems,
        ],
        template: "reminder.txt.j2".to_string(),
    }]
}

/// The templates: the built-in ones with staff's files from `ack.templates_dir` (`dir`). A
/// file named like a built-in template overrides it; any other `.j2` file is added.
pub fn load_templates(
    dir: Option<&Path>,
) -> Result<crate::notify::compose::Templates, crate::notify::compose::ComposeError> {
    use crate::notify::compose::{ComposeError, Templates};
    let mut files = Vec::new();
    let Some(dir) = dir else {
        return Templates::from_files(files);
    };
    let read = |path: PathBuf, name: String| {
        std::fs::read_to_string(&path)
            .map(|text| (name, path.clone(), text))
            .map_err(|source| ComposeError::Read {
                path: path.display().to_string(),
                source,
            })
    };
    for name in Templates::builtin_names() {
        let path = dir.join(name);
        if path.is_file() {
            files.push(read(path, name.to_string())?);
        }
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".j2") && !Templates::builtin_names().any(|b| b == name) {
            files.push(read(entry.path(), name)?);
        }
    }
    Templates::from_files(files)
}

/// The longest wait between two attempts at the same mail (the sender's backoff cap, and
/// the largest `smtp.retry_initial` accepted).
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The notice's five sections (板块).
pub const DEFAULT_SECTIONS: [&str; 5] = [
    "学思践悟·固本强基",
    "先锋领航·校园善治",
    "党旗飘扬·社区聚力",
    "师生结对·双向赋能",
    "育苗成长·薪火相传",
];

fn looks_like_address(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !a.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

/// `30s`, `5m`, `2h`, `7d`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" | "min" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// `40MB`, `512KB`, `1GB` (binary multiples), or a bare number of bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A deadline with an explicit offset, or a local time read in `tz`.
pub fn parse_deadline(text: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
        .ok()?;
    tz.from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Configurations the tests of other modules build.
#[cfg(test)]
pub(crate) mod testing {
    /// Two campaigns of one subject, read in `dir`: 2025-autumn (no `opens`, closure deadline
    /// 2025-12-15) with the roster `autumn_roster`, and 2026-spring (from 2026-02-16, open)
    /// with `spring_roster`; data under `dir/data`, servers on loopback; the current one is
    /// the one of `now`.
    pub(crate) fn two_semesters(
        dir: &std::path::Path,
        autumn_roster: &str,
        spring_roster: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::config::Config {
        let campaign = |id: &str, roster: &str, dates: &str| {
            format!(
                "\n[[campaign]]\nid = \"{id}\"\ntitle = \"{id} 对标争先\"\nintake_address = \"intake@example.test\"\nroster = \"{roster}\"\n{dates}"
            )
        };
        let text = format!(
            "[imap]\nhost = \"127.0.0.1\"\nuser = \"intake@example.test\"\npassword_env = \"SHENBAO_TEST_IMAP_PW\"\ntls = \"none\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom_address = \"intake@example.test\"\n\
             [storage]\ndata_dir = \"{}\"\n{}{}",
            dir.join("data").display(),
            campaign(
                "2025-autumn",
                autumn_roster,
                "deadline = \"2025-09-27T23:59:59\"\nclosure_deadline = \"2025-12-15T23:59:59\"\n"
            ),
            campaign(
                "2026-spring",
                spring_roster,
                "opens = \"2026-02-16T00:00:00\"\ndeadline = \"2026-03-28T23:59:59\"\n"
            ),
        );
        crate::config::Config::parse_in_at(
            &text,
            &dir.join("shenbao.toml"),
            &crate::config::ServiceEnv::default(),
            now,
        )
        .expect("two semesters' config")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_roster(dir: &Path) {
        std::fs::write(
            dir.join("roster.csv"),
            "学院,支部名称,书记,书记邮箱\n土木工程学院,土木工程学院本科生第一党支部,张三,a@example.edu.cn\n",
        )
        .expect("write roster");
    }

    fn good(dir: &Path) -> String {
        format!(
            r#"
[imap]
host = "127.0.0.1"
port = 3143
tls = "none"
user = "intake@example.test"
password_env = "SHENBAO_TEST_IMAP_PW"
processed_folder = "已处理"
[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
from_address = "intake@example.test"
[storage]
data_dir = "{}"
[campaign]
name = "测试活动"
intake_address = "intake@example.test"
deadline = "2025-09-27T23:59:59"
roster = "roster.csv"
"#,
            dir.join("data").display()
        )
    }

    #[test]
    fn a_good_config_loads_with_defaults() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        let cfg = Config::parse(&good(&dir), &dir.join("shenbao.toml")).expect("loads");
        assert_eq!(cfg.imap.folder, "INBOX");
        assert_eq!(cfg.imap.processed_folder.as_deref(), Some("已处理"));
        assert_eq!(cfg.imap.poll_interval, Duration::from_secs(60));
        assert_eq!(cfg.smtp.from_name, "申报系统");
        assert_eq!(cfg.smtp.retry_initial, Duration::from_secs(10));
        // A test (or an impatient operator) can shorten the first retry; zero is refused.
        let fast = good(&dir).replace("[smtp]\n", "[smtp]\nretry_initial = \"1s\"\n");
        let fast = Config::parse(&fast, &dir.join("shenbao.toml")).expect("loads");
        assert_eq!(fast.smtp.retry_initial, Duration::from_secs(1));
        for bad in ["0s", "2h", "soon"] {
            let text =
                good(&dir).replace("[smtp]\n", &format!("[smtp]\nretry_initial = \"{bad}\"\n"));
            let Err(ConfigError::Invalid { problems, .. }) =
                Config::parse(&text, &dir.join("shenbao.toml"))
            else {
                panic!("retry_initial = {bad} must be refused");
            };
            assert!(
                problems.iter().any(|p| p.key == "smtp.retry_initial"),
                "{problems:?}"
            );
        }
        // Parallel SMTP sessions: two unless set, one to eight.
        assert_eq!(cfg.smtp.connections, 2);
        let one = good(&dir).replace("[smtp]\n", "[smtp]\nconnections = 1\n");
        let one = Config::parse(&one, &dir.join("shenbao.toml")).expect("loads");
        assert_eq!(one.smtp.connections, 1);
        for bad in ["0", "9", "\"2\""] {
            let text = good(&dir).replace("[smtp]\n", &format!("[smtp]\nconnections = {bad}\n"));
            let Err(ConfigError::Invalid { problems, .. }) =
                Config::parse(&text, &dir.join("shenbao.toml"))
            else {
                panic!("connections = {bad} must be refused");
            };
            assert!(
                problems.iter().any(|p| p.key == "smtp.connections"),
                "{problems:?}"
            );
        }
        assert_eq!(
            crate::store::db_time(cfg.campaign.deadline),
            "2025-09-27T15:59:59Z"
        );
        assert!(cfg.database_url.starts_with("sqlite://"));
        assert!(cfg.database_url.ends_with("shenbao.db"));
        assert_eq!(cfg.ack.message_id_domain, "shenbao.example.test");
        assert_eq!(cfg.campaign.sections.len(), 5);
        assert_eq!(cfg.campaign.budget_cap_yuan, 5000.0);
        assert_eq!(cfg.campaign.leader_roles, vec!["书记", "副书记"]);
        assert_eq!(cfg.campaign.grace, Duration::ZERO);
        assert!(cfg.campaign.closure_deadline.is_none());
        assert_eq!(cfg.levels.len(), 4);
        assert_eq!(cfg.levels[0].cap_yuan, Some(5000.0));
        assert!(!cfg.levels[3].funded);
    }

    /// Run as the service: data in the state directory unless data_dir says otherwise, and
    /// `password_credential` read from the credentials directory; run by hand: data next to
    /// the config, the credential from `credentials/` next to it.
    #[test]
    fn service_directories_and_credentials() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg-svc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let creds = dir.join("run-creds");
        std::fs::create_dir_all(&creds).expect("mkdir");
        std::fs::create_dir_all(dir.join("credentials")).expect("mkdir");
        write_roster(&dir);
        std::fs::write(creds.join("imap"), "from-systemd\n").expect("cred");
        std::fs::write(dir.join("credentials/imap"), "by-hand\n").expect("cred");
        let text = good(&dir)
            .replace(
                "password_env = \"SHENBAO_TEST_IMAP_PW\"",
                "password_credential = \"imap\"",
            )
            .replace(
                &format!("data_dir = \"{}\"\n", dir.join("data").display()),
                "",
            );
        assert!(!text.contains("data_dir"), "{text}");
        let path = dir.join("shenbao.toml");
        let service = ServiceEnv {
            state_dir: Some(PathBuf::from("/var/lib/shenbao")),
            credentials_dir: Some(creds.clone()),
        };
        let cfg = Config::parse_in(&text, &path, &service).expect("as a service");
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/shenbao"));
        assert_eq!(cfg.database_url, "sqlite:///var/lib/shenbao/shenbao.db");
        assert_eq!(cfg.imap.password.value(), Some("from-systemd"));
        let cfg = Config::parse_in(&text, &path, &ServiceEnv::default()).expect("by hand");
        assert_eq!(cfg.data_dir, dir.join("data"));
        assert_eq!(cfg.imap.password.value(), Some("by-hand"));
        // An explicit data_dir wins over the state directory, relative to the config file.
        let explicit = text.replace("[storage]\n", "[storage]\ndata_dir = \"d\"\n");
        let cfg = Config::parse_in(&explicit, &path, &service).expect("explicit");
        assert_eq!(cfg.data_dir, dir.join("d"));
        // A credential not in place is like an unset variable: no password yet, and the
        // source (for check-config's warning and run's refusal) names the file.
        let t = text.replace(
            "password_credential = \"imap\"",
            "password_credential = \"smtp\"",
        );
        let cfg = Config::parse_in(&t, &path, &service).expect("missing credential");
        assert_eq!(cfg.imap.password.value(), None);
        assert!(
            cfg.imap.password.source.contains("run-creds/smtp"),
            "{}",
            cfg.imap.password.source
        );
        // A path is not a credential name; two password sources at once are refused.
        for (bad, key, words) in [
            (
                "password_credential = \"../imap\"",
                "imap.password_credential",
                "不是凭据名",
            ),
            (
                "password_credential = \"imap\"\npassword_file = \"credentials/imap\"",
                "imap.password_env",
                "只能写一个",
            ),
        ] {
            let t = text.replace("password_credential = \"imap\"", bad);
            let Err(ConfigError::Invalid { problems, .. }) = Config::parse_in(&t, &path, &service)
            else {
                panic!("{bad} must be refused");
            };
            assert!(
                problems
                    .iter()
                    .any(|p| p.key == key && p.reason.contains(words)),
                "{bad}: {problems:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_bad_key_is_named() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let text = r#"
[imap]
host = "imap.example.edu.cn"
port = "993"
tls = "ssl"
user = "intake@example.edu.cn"
password = "secret"
idle_renew = "30m"
colour = "blue"
[smtp]
host = "smtp.example.edu.cn"
from_address = "not an address"
[campaign]
name = "x"
intake_address = "intake@example.edu.cn"
deadline = "9月27日"
roster = "missing.csv"
"#;
        let err = Config::parse(text, &dir.join("shenbao.toml")).expect_err("must fail");
        let ConfigError::Invalid { problems, .. } = err else {
            panic!("expected Invalid, got {err}");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "imap.port",
            "imap.tls",
            "imap.password",
            "imap.idle_renew",
            "imap.colour",
            "smtp.from_address",
            "campaign.deadline",
            "campaign.roster",
        ] {
            assert!(keys.contains(&k), "{k} not reported in {keys:?}");
        }
    }

    #[test]
    fn reminders_and_digests() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        // No [[reminder]]: the notice's default rule.
        let cfg = Config::parse(&good(&dir), &dir.join("shenbao.toml")).expect("loads");
        assert_eq!(cfg.reminders.len(), 1);
        assert_eq!(cfg.reminders[0].offsets.len(), 3);
        assert!(cfg.digests.is_empty());
        let text = format!(
            "{}\n[[reminder]]\nname = \"最后提醒\"\noffsets = [\"1d\", \"6h\"]\ntime = \"08:30\"\naudience = [\"not_submitted\"]\n[[digest]]\nname = \"日报\"\nrecipients = [\"reviewer@example.test\"]\nschedule = \"0 0 8 * * Mon-Fri\"\n",
            good(&dir)
        );
        let cfg = Config::parse(&text, &dir.join("shenbao.toml")).expect("loads");
        assert_eq!(cfg.reminders.len(), 1);
        assert_eq!(cfg.reminders[0].name, "最后提醒");
        assert_eq!(cfg.digests[0].schedule.as_str(), "0 0 8 * * Mon-Fri");
        // A 5-field cron and a bad offset are named by entry, with the fix.
        let bad = format!(
            "{}\n[[reminder]]\nname = \"x\"\noffsets = [\"soon\"]\n[[digest]]\nname = \"日报\"\nrecipients = [\"reviewer@example.test\"]\nschedule = \"0 8 * * Mon-Fri\"\ncolour = 1\n",
            good(&dir)
        );
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::parse(&bad, &dir.join("shenbao.toml"))
        else {
            panic!("must fail");
        };
        let find = |k: &str| {
            problems
                .iter()
                .find(|p| p.key == k)
                .map(|p| p.reason.clone())
        };
        assert!(find("reminder[1].offsets").is_some(), "{problems:?}");
        let cron = find("digest[1].schedule").expect("cron named");
        assert!(
            cron.contains("0 0 8 * * Mon-Fri"),
            "shows the 6-field form: {cron}"
        );
        assert!(find("digest[1].colour").is_some(), "{problems:?}");
    }

    #[test]
    fn closure_materials_must_name_a_material_shenbao_recognises() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        let level = |materials: &str| {
            format!(
                "{}\n[[level]]\nname = \"一般\"\ncap_yuan = 1000\nclosure_materials = {materials}\n",
                good(&dir)
            )
        };
        let cfg = Config::parse(
            &level("[\"结题报告\", \"报销材料\", \"活动总结\"]"),
            &dir.join("shenbao.toml"),
        )
        .expect("the notice's words");
        let roles: Vec<_> = cfg.levels[0]
            .closure_materials
            .iter()
            .map(|m| crate::attach::Role::from_material(m))
            .collect();
        assert_eq!(
            roles,
            [
                Some(crate::attach::Role::ClosureReport),
                Some(crate::attach::Role::Reimbursement),
                Some(crate::attach::Role::ActivitySummary)
            ]
        );
        assert!(
            Config::parse(
                &level("[\"closure_report\", \"case_study\"]"),
                &dir.join("shenbao.toml")
            )
            .is_ok(),
            "role names are accepted too"
        );
        let Err(ConfigError::Invalid { problems, .. }) = Config::parse(
            &level("[\"结题报告\", \"合影\"]"),
            &dir.join("shenbao.toml"),
        ) else {
            panic!("an unknown material must be refused");
        };
        let p = problems
            .iter()
            .find(|p| p.key == "level[1].closure_materials")
            .unwrap_or_else(|| panic!("named by entry: {problems:?}"));
        assert!(
            p.reason.contains("“合影”") && p.reason.contains("活动总结"),
            "{}",
            p.reason
        );
        // The defaults are the notice's.
        let d = default_levels();
        assert!(d[0].closure_materials.contains(&"工作案例".to_string()));
        assert!(d[1].closure_materials.contains(&"工作案例".to_string()));
        assert!(d[2].closure_materials.contains(&"活动总结".to_string()));
        assert!(!d[2].closure_materials.contains(&"工作案例".to_string()));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604800)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_size("40MB"), Some(40 << 20));
        assert_eq!(parse_size("512kb"), Some(512 << 10));
        assert_eq!(parse_size("big"), None);
        assert_eq!(parse_size("99999999999999999999GB"), None);
    }

    #[test]
    fn health_thresholds_default_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        let cfg = Config::parse(&good(&dir), &dir.join("shenbao.toml")).expect("loads");
        assert_eq!(cfg.health.imap_warning, Duration::from_secs(15 * 60));
        assert_eq!(cfg.health.imap_critical, Duration::from_secs(3600));
        assert_eq!(cfg.health.outbox_warning, Duration::from_secs(30 * 60));
        assert_eq!(cfg.health.outbox_critical, Duration::from_secs(7200));
        assert_eq!(cfg.health.scheduler_critical, Duration::from_secs(3600));
        let set = format!(
            "{}[health]\noutbox_warning = \"2s\"\noutbox_critical = \"4s\"\n",
            good(&dir)
        );
        let cfg = Config::parse(&set, &dir.join("shenbao.toml")).expect("loads");
        assert_eq!(cfg.health.outbox_critical, Duration::from_secs(4));
        for (text, key) in [
            ("[health]\nimap_warning = \"2h\"\n", "health.imap_warning"),
            (
                "[health]\noutbox_critical = \"soon\"\n",
                "health.outbox_critical",
            ),
            ("[health]\nimap_warnnig = \"1h\"\n", "health.imap_warnnig"),
        ] {
            match Config::parse(&format!("{}{text}", good(&dir)), &dir.join("shenbao.toml")) {
                Err(ConfigError::Invalid { problems, .. }) => {
                    assert!(problems.iter().any(|p| p.key == key), "{key}: {problems:?}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_board_section() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        let path = dir.join("shenbao.toml");
        let cfg = Config::parse(&good(&dir), &path).expect("loads");
        assert_eq!(cfg.web, None);
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7mJ0Pq0fOdXqkN1hVtB5V8fO5YxD0bb9n6wQbm3Jb1g";
        let user = |name: &str, role: &str| {
            format!(
                "[[web.user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nrole = \"{role}\"\n"
            )
        };
        let text = format!(
            "{}[web]\n{}{}",
            good(&dir),
            user("王老师", "staff"),
            user("李老师", "reviewer")
        );
        let web = Config::parse(&text, &path)
            .expect("loads")
            .web
            .expect("web");
        assert_eq!(web.listen, "127.0.0.1:8640".parse().expect("addr"));
        assert_eq!(web.session_idle, Duration::from_secs(30 * 60));
        assert!(!web.secure_cookies);
        assert!(!web.behind_proxy);
        assert_eq!(web.users.len(), 2);
        assert_eq!(web.users[1].role, WebRole::Reviewer);
        assert!(web.users[0].role.may_act() && !web.users[1].role.may_act());
        let set = format!(
            "{}[web]\nlisten = \"0.0.0.0:9000\"\nsession_idle = \"10m\"\nsecure_cookies = true\nbehind_proxy = true\n{}",
            good(&dir),
            user("王老师", "staff")
        );
        let web = Config::parse(&set, &path).expect("loads").web.expect("web");
        assert_eq!(web.listen.port(), 9000);
        assert_eq!(web.session_idle, Duration::from_secs(600));
        assert!(web.secure_cookies);
        assert!(web.behind_proxy);
        for (text, key) in [
            ("[web]\n".to_string(), "web.user"),
            (
                format!("[web]\nlisten = \"localhost\"\n{}", user("a", "staff")),
                "web.listen",
            ),
            (
                format!("[web]\nsession_idle = \"soon\"\n{}", user("a", "staff")),
                "web.session_idle",
            ),
            (
                format!("[web]\nsecure_cookies = \"yes\"\n{}", user("a", "staff")),
                "web.secure_cookies",
            ),
            (
                format!("[web]\nlisen = \"x\"\n{}", user("a", "staff")),
                "web.lisen",
            ),
            (format!("[web]\n{}", user("a", "admin")), "web.user[1].role"),
            (
                format!("[web]\n{}{}", user("a", "staff"), user("a", "reviewer")),
                "web.user[2].name",
            ),
            (
                "[web]\n[[web.user]]\nname = \"a\"\npassword_hash = \"secret\"\nrole = \"staff\"\n"
                    .to_string(),
                "web.user[1].password_hash",
            ),
            (
                "[web]\n[[web.user]]\npassword_hash = \"x\"\nrole = \"staff\"\n".to_string(),
                "web.user[1].name",
            ),
            (
                format!("[web]\n{}pasword = \"x\"\n", user("a", "staff")),
                "web.user[1].pasword",
            ),
        ] {
            match Config::parse(&format!("{}{text}", good(&dir)), &path) {
                Err(ConfigError::Invalid { problems, .. }) => {
                    assert!(problems.iter().any(|p| p.key == key), "{key}: {problems:?}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn deadlines_in_their_zone() {
        let tz = chrono_tz::Asia::Shanghai;
        let a = parse_deadline("2025-09-27T23:59:59", tz).expect("local");
        let b = parse_deadline("2025-09-27T23:59:59+08:00", tz).expect("offset");
        assert_eq!(a, b);
        assert!(parse_deadline("2025-09-27", tz).is_none());
    }

    #[test]
    fn loopback_hosts_are_told_apart() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "mail.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.254",
            "::1",
            "[::1]",
            "0:0:0:0:0:0:0:1",
            "::ffff:127.0.0.1",
            " 127.0.0.1 ",
        ] {
            assert!(is_loopback_host(host), "{host} is this machine");
        }
        for host in [
            "imap.example.edu.cn",
            "localhost.example.edu.cn",
            "mylocalhost",
            "10.0.0.1",
            "192.168.1.10",
            "128.0.0.1",
            "0.0.0.0",
            "::",
            "::2",
            "[::2]",
            "::ffff:10.0.0.1",
            "127.0.0.1.example.com",
            "127.0.0.1:143",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host} is not this machine");
        }
    }

    /// `tls = "none"` works only to this machine; the problem names the key and what to write.
    #[test]
    fn clear_text_to_another_host_is_refused() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        let path = dir.join("shenbao.toml");
        assert!(Config::parse(&good(&dir), &path).is_ok());
        for (from, section, key) in [
            (
                "[imap]\nhost = \"127.0.0.1\"",
                "[imap]\nhost = \"imap.example.edu.cn\"",
                "imap.tls",
            ),
            (
                "[smtp]\nhost = \"127.0.0.1\"",
                "[smtp]\nhost = \"smtp.example.edu.cn\"",
                "smtp.tls",
            ),
            (
                "[imap]\nhost = \"127.0.0.1\"",
                "[imap]\nhost = \"10.1.2.3\"",
                "imap.tls",
            ),
        ] {
            let text = good(&dir).replace(from, section);
            let Err(ConfigError::Invalid { problems, .. }) = Config::parse(&text, &path) else {
                panic!("{section} with tls = none must be refused");
            };
            let p = problems
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("{key} not named: {problems:?}"));
            assert!(p.reason.contains("明文"), "{}", p.reason);
            assert!(p.reason.contains("implicit"), "{}", p.reason);
            assert!(p.reason.contains("starttls"), "{}", p.reason);
            assert_eq!(problems.len(), 1, "{problems:?}");
        }
        // With TLS the same hosts are fine.
        let text = good(&dir)
            .replace(
                "[imap]\nhost = \"127.0.0.1\"",
                "[imap]\nhost = \"imap.example.edu.cn\"",
            )
            .replacen("tls = \"none\"", "tls = \"implicit\"", 1);
        assert!(Config::parse(&text, &path).is_ok());
        // localhost and ::1 keep working without TLS.
        for host in ["localhost", "::1"] {
            let text = good(&dir).replace("host = \"127.0.0.1\"", &format!("host = \"{host}\""));
            assert!(Config::parse(&text, &path).is_ok(), "{host}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `[database]`: PostgreSQL on this machine as it is, a remote one only with TLS, its
    /// password only from a secret (never in the URL, never in `database_url`), and any
    /// other scheme named.
    #[test]
    fn postgres_urls_need_tls_off_this_machine_and_a_secret_password() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        let path = dir.join("shenbao.toml");
        let with = |db: &str| format!("{}\n[database]\n{db}\n", good(&dir));
        let problems = |text: &str| match Config::parse(text, &path) {
            Err(ConfigError::Invalid { problems, .. }) => problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.reason))
                .collect::<Vec<_>>()
                .join("\n"),
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        // The default stays SQLite in data_dir.
        let cfg = Config::parse(&good(&dir), &path).expect("loads");
        assert!(cfg.database_url.starts_with("sqlite://"));
        assert_eq!(cfg.database_connect_url(), cfg.database_url);
        // This machine: no TLS needed, and no password either (peer or trust auth).
        let cfg = Config::parse(
            &with("url = \"postgres://shenbao@127.0.0.1:5433/shenbao\""),
            &path,
        )
        .expect("loopback PostgreSQL");
        assert_eq!(
            cfg.database_connect_url(),
            "postgres://shenbao@127.0.0.1:5433/shenbao"
        );
        // A password file: in the connect URL only.
        std::fs::write(dir.join("db.pw"), "p@ss word\n").expect("pw");
        let cfg = Config::parse(
            &with("url = \"postgres://shenbao@localhost/shenbao\"\npassword_file = \"db.pw\""),
            &path,
        )
        .expect("password file");
        assert!(!cfg.database_url.contains("p%40ss"), "{}", cfg.database_url);
        assert_eq!(
            cfg.database_connect_url(),
            "postgres://shenbao:p%40ss%20word@localhost/shenbao"
        );
        // A remote server without TLS is refused, naming the fix.
        let why = problems(&with(
            "url = \"postgres://shenbao@db.example.edu.cn/shenbao\"",
        ));
        assert!(
            why.contains("database.url") && why.contains("sslmode=verify-full"),
            "{why}"
        );
        for mode in ["disable", "prefer", "allow"] {
            let why = problems(&with(&format!(
                "url = \"postgres://shenbao@db.example.edu.cn/shenbao?sslmode={mode}\""
            )));
            assert!(why.contains("明文"), "{mode}: {why}");
        }
        assert_eq!(
            problems(&with(
                "url = \"postgresql://shenbao@db.example.edu.cn/shenbao?sslmode=verify-full\""
            )),
            ""
        );
        // A password in the URL is refused.
        let why = problems(&with("url = \"postgres://shenbao:pw@127.0.0.1/shenbao\""));
        assert!(why.contains("密码不能写在 url 里"), "{why}");
        // Another scheme is named with both forms.
        let why = problems(&with("url = \"mysql://root@127.0.0.1/shenbao\""));
        assert!(
            why.contains("sqlite://") && why.contains("postgres://"),
            "{why}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An SMTP user whose password is not there is named, never silently sent without AUTH.
    #[test]
    fn an_smtp_user_needs_its_password() {
        let dir = std::env::temp_dir().join(format!("shenbao-cfg-smtpuser-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        let path = dir.join("shenbao.toml");
        let cfg = Config::parse(&good(&dir), &path).expect("loads");
        assert_eq!(cfg.smtp.missing_password(), None, "no user, no login");
        // A user without any password key is a config problem.
        let text = good(&dir).replace("[smtp]\n", "[smtp]\nuser = \"a@example.test\"\n");
        let Err(ConfigError::Invalid { problems, .. }) = Config::parse(&text, &path) else {
            panic!("user without password key must be refused");
        };
        assert!(
            problems.iter().any(|p| p.key == "smtp.password_env"),
            "{problems:?}"
        );
        // A password variable that is not set: loads (status etc. need no SMTP), but is named.
        let text = good(&dir).replace(
            "[smtp]\n",
            "[smtp]\nuser = \"a@example.test\"\npassword_env = \"SHENBAO_TEST_UNSET_SMTP_PW_XYZ\"\n",
        );
        let cfg = Config::parse(&text, &path).expect("loads");
        let why = cfg.smtp.missing_password().expect("named");
        assert!(why.contains("smtp.user"), "{why}");
        assert!(why.contains("SHENBAO_TEST_UNSET_SMTP_PW_XYZ"), "{why}");
        // An empty password file is no password either; a real one is.
        std::fs::write(dir.join("smtp.pw"), "\n").expect("pw");
        let text = good(&dir).replace(
            "[smtp]\n",
            "[smtp]\nuser = \"a@example.test\"\npassword_file = \"smtp.pw\"\n",
        );
        let cfg = Config::parse(&text, &path).expect("loads");
        assert!(cfg.smtp.missing_password().is_some());
        std::fs::write(dir.join("smtp.pw"), "s3cret\n").expect("pw");
        let cfg = Config::parse(&text, &path).expect("loads");
        assert_eq!(cfg.smtp.missing_password(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `good` without its `[campaign]` table, for the `[[campaign]]` tests.
    fn without_campaign(dir: &Path) -> String {
        let text = good(dir);
        let cut = text.find("[campaign]\n").expect("good has [campaign]");
        text[..cut].to_string()
    }

    /// One `[[campaign]]` entry; `opens` and `closure` are left out when `None`.
    fn entry(id: &str, opens: Option<&str>, deadline: &str, closure: Option<&str>) -> String {
        let mut e = format!(
            "\n[[campaign]]\nid = \"{id}\"\ntitle = \"{id} 对标争先\"\nintake_address = \"intake@example.test\"\ndeadline = \"{deadline}\"\nroster = \"roster.csv\"\n"
        );
        if let Some(o) = opens {
            e.push_str(&format!("opens = \"{o}\"\n"));
        }
        if let Some(c) = closure {
            e.push_str(&format!("closure_deadline = \"{c}\"\n"));
        }
        e
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .expect("valid instant")
    }

    fn problems_of(text: &str, path: &Path) -> Vec<Problem> {
        match Config::parse_in_at(
            text,
            path,
            &ServiceEnv::default(),
            at("2026-03-01T00:00:00Z"),
        ) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("expected Invalid, got {e}"),
            Ok(_) => panic!("must be refused:\n{text}"),
        }
    }

    fn campaign_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("shenbao-cfg-camp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_roster(&dir);
        dir
    }

    /// 2025-autumn closed (no opens, closure 2025-12-15), 2026-spring open from 2026-02-16.
    fn two_semesters(dir: &Path) -> String {
        format!(
            "{}{}{}",
            without_campaign(dir),
            entry(
                "2025-autumn",
                None,
                "2025-09-27T23:59:59",
                Some("2025-12-15T23:59:59")
            ),
            entry(
                "2026-spring",
                Some("2026-02-16T00:00:00"),
                "2026-03-28T23:59:59",
                None
            ),
        )
    }

    #[test]
    fn the_single_campaign_table_is_one_campaign_named_default() {
        let dir = campaign_dir("single");
        let path = dir.join("shenbao.toml");
        let cfg = Config::parse(&good(&dir), &path).expect("loads");
        assert_eq!(cfg.campaigns.len(), 1);
        assert_eq!(cfg.campaign.id, DEFAULT_CAMPAIGN_ID);
        assert_eq!(cfg.campaigns[0].id, "default");
        assert_eq!(cfg.campaign.name, "测试活动");
        assert_eq!(cfg.campaign.opens, None);
        // No opens and no closure deadline: every instant belongs to it.
        assert_eq!(cfg.campaign.window().opens, None);
        assert_eq!(cfg.campaign.window().closes, None);
        assert_eq!(
            cfg.current_campaign(at("1990-01-01T00:00:00Z")).id,
            "default"
        );
        assert_eq!(
            cfg.campaign_by_id("default").map(|c| c.name.as_str()),
            Some("测试活动")
        );
        assert!(cfg.campaign_by_id("2025-autumn").is_none());
        // An explicit id, `title` for `name`, opens and closure deadline (Shanghai → UTC).
        let text = good(&dir)
            .replace("name = \"测试活动\"", "id = \"2025-autumn\"\ntitle = \"秋季活动\"")
            .replace(
                "roster = \"roster.csv\"",
                "roster = \"roster.csv\"\nopens = \"2025-09-01T08:00:00\"\nclosure_deadline = \"2025-12-15T23:59:59\"\ngrace = \"10m\"",
            );
        let cfg = Config::parse(&text, &path).expect("loads");
        assert_eq!(cfg.campaign.id, "2025-autumn");
        assert_eq!(cfg.campaign.name, "秋季活动");
        assert_eq!(cfg.campaign.opens, Some(at("2025-09-01T00:00:00Z")));
        let w = cfg.campaign.window();
        assert_eq!(w.opens, Some(at("2025-09-01T00:00:00Z")));
        // The window ends with the closure deadline plus grace.
        assert_eq!(w.closes, Some(at("2025-12-15T16:09:59Z")));
        // title and name together, or neither, are named.
        let both = good(&dir).replace("name = \"测试活动\"", "name = \"a\"\ntitle = \"b\"");
        let p = problems_of(&both, &path);
        assert!(
            p.iter()
                .any(|p| p.key == "campaign.title" && p.reason.contains("只写一个")),
            "{p:?}"
        );
        let neither = good(&dir).replace("name = \"测试活动\"\n", "");
        let p = problems_of(&neither, &path);
        assert!(p.iter().any(|p| p.key == "campaign.name"), "{p:?}");
        // A bad id in the single table.
        let bad = good(&dir).replace("name = \"测试活动\"", "name = \"x\"\nid = \"2025 秋\"");
        let p = problems_of(&bad, &path);
        assert!(p.iter().any(|p| p.key == "campaign.id"), "{p:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn several_campaigns_and_the_current_one() {
        let dir = campaign_dir("many");
        let path = dir.join("shenbao.toml");
        let text = two_semesters(&dir);
        let load = |now: &str| {
            Config::parse_in_at(&text, &path, &ServiceEnv::default(), at(now)).expect("loads")
        };
        let cfg = load("2025-09-20T09:00:00+08:00");
        let ids: Vec<&str> = cfg.campaigns.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["2025-autumn", "2026-spring"]);
        assert_eq!(cfg.campaign.id, "2025-autumn");
        assert_eq!(cfg.campaign.name, "2025-autumn 对标争先");
        let spring = cfg.campaign_by_id("2026-spring").expect("spring");
        assert_eq!(spring.opens, Some(at("2026-02-15T16:00:00Z")));
        assert_eq!(spring.deadline, at("2026-03-28T15:59:59Z"));
        assert_eq!(spring.closure_deadline, None);
        // Each entry has the [campaign] defaults.
        assert_eq!(spring.sections.len(), 5);
        assert_eq!(spring.budget_cap_yuan, 5000.0);
        assert_eq!(spring.timezone, chrono_tz::Asia::Shanghai);
        // The Message-ID domain comes from the first campaign whatever is current.
        assert_eq!(cfg.ack.message_id_domain, "shenbao.example.test");
        // Config.campaign is the campaign current when the file was loaded.
        for (now, want) in [
            ("2025-12-15T23:59:59+08:00", "2025-autumn"),
            ("2026-01-10T00:00:00+08:00", "2025-autumn"),
            ("2026-02-16T00:00:00+08:00", "2026-spring"),
            ("2026-12-07T00:00:00Z", "2026-spring"),
        ] {
            assert_eq!(load(now).campaign.id, want, "at {now}");
            assert_eq!(cfg.current_campaign(at(now)).id, want, "at {now}");
        }
        // The configuration's candidates select by subject and date.
        use crate::campaign::calendar::{Selection, select};
        let c = cfg.candidates();
        assert_eq!(c.len(), 2);
        let subject = "对标争先建设项目申报-土木工程学院本科生第一党支部";
        assert_eq!(
            select(&c, subject, at("2025-09-27T23:59:59+08:00")),
            Selection::Matched("2025-autumn".to_string())
        );
        assert_eq!(
            select(&c, subject, at("2026-03-28T23:59:59+08:00")),
            Selection::Matched("2026-spring".to_string())
        );
        assert_eq!(
            select(&c, subject, at("2026-01-10T00:00:00+08:00")),
            Selection::OutsideWindow {
                nearest: "2025-autumn".to_string()
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `--campaign`: another campaign chosen by id with its own levels, the previous one of
    /// each, and an unknown id named with the ones there are. A spring notice that changed the
    /// levels writes `[[campaign.level]]` after its `[[campaign]]`; a campaign without uses the
    /// file's `[[level]]`; a bad entry is named under its campaign.
    #[test]
    fn campaigns_are_chosen_by_id_with_their_own_levels() {
        let dir = campaign_dir("levels");
        let path = dir.join("shenbao.toml");
        let spring_levels = "[[campaign.level]]\nname = \"重点\"\ncap_yuan = 8000\nclosure_materials = [\"结题报告\"]\n\n[[campaign.level]]\nname = \"不立项\"\n";
        let text = format!("{}{spring_levels}", two_semesters(&dir));
        let cfg = Config::parse_in_at(
            &text,
            &path,
            &ServiceEnv::default(),
            at("2026-03-01T00:00:00Z"),
        )
        .expect("loads");
        assert_eq!(cfg.campaign.id, "2026-spring");
        let names = |l: &[LevelConfig]| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&cfg.levels), ["重点", "不立项"]);
        assert_eq!(cfg.levels[0].cap_yuan, Some(8000.0));
        assert_eq!(cfg.levels[0].closure_materials, ["结题报告"]);
        assert_eq!(names(&cfg.file_levels), ["重点", "特色", "一般", "不立项"]);
        let autumn = cfg.campaign_by_id("2025-autumn").expect("autumn");
        assert_eq!(names(cfg.levels_of(autumn)).len(), 4);

        let chosen = cfg.clone().with_campaign("2025-autumn").expect("chosen");
        assert_eq!(chosen.campaign.id, "2025-autumn");
        assert_eq!(names(&chosen.levels), ["重点", "特色", "一般", "不立项"]);
        assert_eq!(chosen.levels[0].cap_yuan, Some(5000.0));
        let back = chosen.with_campaign("2026-spring").expect("back");
        assert_eq!(names(&back.levels), ["重点", "不立项"]);
        let e = cfg
            .clone()
            .with_campaign("2024-spring")
            .expect_err("unknown");
        assert!(
            e.contains("2024-spring") && e.contains("2025-autumn、2026-spring"),
            "{e}"
        );

        assert_eq!(
            cfg.previous_campaign("2026-spring").map(|c| c.id.as_str()),
            Some("2025-autumn")
        );
        assert!(cfg.previous_campaign("2025-autumn").is_none());
        assert!(cfg.previous_campaign("nope").is_none());

        let bad = format!(
            "{}[[campaign.level]]\nname = \"重点\"\ncap_yuan = -1\n",
            two_semesters(&dir)
        );
        let p = problems_of(&bad, &path);
        assert!(
            p.iter().any(|p| p.key == "campaign[2].level[1].cap_yuan"),
            "{p:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn both_campaign_forms_at_once_are_refused_in_chinese() {
        let dir = campaign_dir("both");
        let path = dir.join("shenbao.toml");
        for text in [
            format!(
                "{}{}",
                good(&dir),
                entry("2026-spring", None, "2026-03-28T23:59:59", None)
            ),
            // The other order, with spaces and a comment in the header.
            format!(
                "{}{}\n[ campaign ] # 旧写法\nname = \"x\"\n",
                without_campaign(&dir),
                entry("2026-spring", None, "2026-03-28T23:59:59", None)
            ),
        ] {
            let err = Config::parse(&text, &path).expect_err("both forms");
            let ConfigError::Invalid { problems, .. } = &err else {
                panic!("expected Invalid, got {err}");
            };
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].key, "campaign");
            assert!(problems[0].reason.contains("[[campaign]]"), "{problems:?}");
            assert!(
                problems[0].reason.contains("只能用一种写法"),
                "{problems:?}"
            );
            assert!(err.to_string().contains("campaign："), "{err}");
        }
        // Any other TOML error stays a syntax error.
        let err = Config::parse("[imap\nhost = 1", &path).expect_err("syntax");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        // An empty list of campaigns, or a campaign that is neither table nor tables.
        for (text, words) in [
            (
                format!("campaign = []\n{}", without_campaign(&dir)),
                "至少要有一个活动",
            ),
            (
                format!("campaign = \"2025\"\n{}", without_campaign(&dir)),
                "[[campaign]]",
            ),
        ] {
            let p = problems_of(&text, &path);
            assert!(
                p.iter()
                    .any(|p| p.key == "campaign" && p.reason.contains(words)),
                "{p:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn campaign_ids_are_short_ascii_and_unique() {
        let dir = campaign_dir("ids");
        let path = dir.join("shenbao.toml");
        for good_id in ["2025-autumn", "default", "a", "2026_spring", "x1"] {
            assert_eq!(campaign_id_problem(good_id), None, "{good_id}");
        }
        let long = "a".repeat(33);
        for (bad, words) in [
            ("2025 秋", "2025-autumn"),
            ("2025-Autumn", "\"2025-autumn\""),
            ("-autumn", "以字母或数字开头"),
            (long.as_str(), "最长 32 个字符"),
            ("秋季", "只能用小写英文字母"),
        ] {
            let why = campaign_id_problem(bad).expect("refused");
            assert!(why.contains(words), "{bad}: {why}");
            let text = format!(
                "{}{}",
                without_campaign(&dir),
                entry(bad, None, "2025-09-27T23:59:59", None)
            );
            let p = problems_of(&text, &path);
            assert!(p.iter().any(|p| p.key == "campaign[1].id"), "{bad}: {p:?}");
        }
        // Two entries with one id: the second is named, with the first's position.
        let text = format!(
            "{}{}{}",
            without_campaign(&dir),
            entry(
                "2025-autumn",
                None,
                "2025-09-27T23:59:59",
                Some("2025-12-15T23:59:59")
            ),
            entry(
                "2025-autumn",
                Some("2026-02-16T00:00:00"),
                "2026-03-28T23:59:59",
                None
            )
        );
        let p = problems_of(&text, &path);
        assert!(
            p.iter()
                .any(|p| p.key == "campaign[2].id" && p.reason.contains("与 campaign[1] 重复")),
            "{p:?}"
        );
        // Checks across entries still run when another entry has its own problem.
        let text = format!(
            "{}{}{}{}",
            without_campaign(&dir),
            entry(
                "2025-autumn",
                None,
                "2025-09-27T23:59:59",
                Some("2025-12-15T23:59:59")
            ),
            entry("2026 Spring", None, "2026-03-28T23:59:59", None),
            entry(
                "2025-autumn",
                Some("2026-09-01T00:00:00"),
                "2026-09-27T23:59:59",
                None
            )
        );
        let p = problems_of(&text, &path);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        for k in ["campaign[2].id", "campaign[3].id"] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
        // [[campaign]] needs an id; the single table does not.
        let text = format!(
            "{}{}",
            without_campaign(&dir),
            entry("x", None, "2025-09-27T23:59:59", None).replace("id = \"x\"\n", "")
        );
        let p = problems_of(&text, &path);
        assert!(
            p.iter()
                .any(|p| p.key == "campaign[1].id" && p.reason.contains("必填")),
            "{p:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn overlapping_windows_of_one_subject_say_what_to_change() {
        let dir = campaign_dir("overlap");
        let path = dir.join("shenbao.toml");
        let autumn = entry(
            "2025-autumn",
            None,
            "2025-09-27T23:59:59",
            Some("2025-12-15T23:59:59"),
        );
        let with = |entries: &[String]| format!("{}{}", without_campaign(&dir), entries.concat());
        // Spring without opens reaches back into autumn: give it an opens.
        let spring = entry("2026-spring", None, "2026-03-28T23:59:59", None);
        let p = problems_of(&with(&[autumn.clone(), spring.clone()]), &path);
        assert!(
            p.iter().any(|p| p.key == "campaign[2].opens"
                && p.reason.contains("opens = \"2025-12-16T00:00:00\"")),
            "{p:?}"
        );
        // The same, written spring first: still spring's opens that must change.
        let p = problems_of(&with(&[spring.clone(), autumn.clone()]), &path);
        assert!(p.iter().any(|p| p.key == "campaign[1].opens"), "{p:?}");
        // Autumn without a closure deadline never ends.
        let open_autumn = entry("2025-autumn", None, "2025-09-27T23:59:59", None);
        let spring_opens = entry(
            "2026-spring",
            Some("2026-02-16T00:00:00"),
            "2026-03-28T23:59:59",
            None,
        );
        let p = problems_of(&with(&[open_autumn, spring_opens.clone()]), &path);
        assert!(
            p.iter().any(|p| p.key == "campaign[1].closure_deadline"
                && p.reason.contains("2025-autumn")
                && p.reason.contains("closure_deadline")),
            "{p:?}"
        );
        // Spring opening before autumn's closure deadline.
        let early = entry(
            "2026-spring",
            Some("2025-12-01T00:00:00"),
            "2026-03-28T23:59:59",
            None,
        );
        let p = problems_of(&with(&[autumn.clone(), early]), &path);
        assert!(
            p.iter()
                .any(|p| p.key == "campaign[2].opens" && p.reason.contains("早于")),
            "{p:?}"
        );
        // Autumn's grace runs into spring's first instant.
        let graced = autumn.replace(
            "roster = \"roster.csv\"\n",
            "roster = \"roster.csv\"\ngrace = \"1h\"\n",
        );
        let touching = entry(
            "2026-spring",
            Some("2025-12-16T00:00:00"),
            "2026-03-28T23:59:59",
            None,
        );
        let p = problems_of(&with(&[graced, touching.clone()]), &path);
        assert!(
            p.iter()
                .any(|p| p.key == "campaign[2].opens" && p.reason.contains("2025-12-16T01:00:00")),
            "{p:?}"
        );
        // Without grace, opening one second after the closure deadline is fine.
        let cfg = Config::parse(&with(&[autumn.clone(), touching]), &path).expect("adjacent");
        assert_eq!(cfg.campaigns.len(), 2);
        // Another subject may run at the same time.
        let other = entry("red-engine", None, "2025-10-31T23:59:59", None).replace(
            "deadline = ",
            "application_subject = \"红色引擎工程申报-{支部名称}\"\nclosure_subject = \"红色引擎工程结项-{支部名称}\"\ndeadline = ",
        );
        let cfg = Config::parse(&with(&[autumn, spring_opens, other]), &path).expect("loads");
        assert_eq!(cfg.campaigns.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn campaign_entries_are_checked_key_by_key() {
        let dir = campaign_dir("entries");
        let path = dir.join("shenbao.toml");
        let bad_second = entry("2026-spring", Some("2026-02-16T00:00:00"), "3月28日", None)
            .replace("title = ", "colour = \"red\"\ntitle = ");
        let text = format!(
            "{}{}{}",
            without_campaign(&dir),
            entry(
                "2025-autumn",
                None,
                "2025-09-27T23:59:59",
                Some("2025-12-15T23:59:59")
            ),
            bad_second
        );
        let p = problems_of(&text, &path);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        for k in ["campaign[2].colour", "campaign[2].deadline"] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
        assert!(
            !keys.iter().any(|k| k.starts_with("campaign[1]")),
            "{keys:?}"
        );
        // opens after the deadline, a closure deadline before it, a bad opens.
        for (opens, closure, key, words) in [
            (
                Some("2025-10-01T00:00:00"),
                None,
                "campaign[1].opens",
                "不早于申报截止时间",
            ),
            (
                None,
                Some("2025-09-01T00:00:00"),
                "campaign[1].closure_deadline",
                "不晚于申报截止时间",
            ),
            (Some("九月一日"), None, "campaign[1].opens", "不是时间"),
        ] {
            let text = format!(
                "{}{}",
                without_campaign(&dir),
                entry("2025-autumn", opens, "2025-09-27T23:59:59", closure)
            );
            let p = problems_of(&text, &path);
            assert!(
                p.iter().any(|p| p.key == key && p.reason.contains(words)),
                "{key}: {p:?}"
            );
        }
        // A missing roster and intake address are named per entry.
        let text = format!(
            "{}{}",
            without_campaign(&dir),
            entry("2025-autumn", None, "2025-09-27T23:59:59", None)
                .replace("roster = \"roster.csv\"\n", "")
                .replace("intake_address = \"intake@example.test\"\n", "")
        );
        let p = problems_of(&text, &path);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        for k in ["campaign[1].roster", "campaign[1].intake_address"] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The `[[campaign]]` example in config/shenbao.example.toml, uncommented in place of its
    /// `[campaign]` table, loads.
    #[test]
    fn the_example_campaign_entries_load() {
        let dir = campaign_dir("example");
        std::fs::copy(dir.join("roster.csv"), dir.join("roster-2026-spring.csv")).expect("copy");
        let example = include_str!("../config/shenbao.example.toml");
        let start = example
            .find("\n[campaign]\n")
            .expect("[campaign] in the example");
        let end = example[start..].find("\n[ack]\n").expect("[ack] follows") + start;
        let entries: String = example[start..end]
            .lines()
            .skip_while(|l| *l != "# [[campaign]]")
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            entries.contains("[[campaign]]\nid = \"2025-autumn\""),
            "{entries}"
        );
        let text = format!("{}\n{entries}{}", &example[..start], &example[end..]);
        let cfg = Config::parse_in_at(
            &text,
            &dir.join("shenbao.toml"),
            &ServiceEnv::default(),
            at("2026-03-01T00:00:00+08:00"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = cfg.campaigns.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["2025-autumn", "2026-spring"]);
        assert_eq!(cfg.campaign.id, "2026-spring");
        assert_eq!(cfg.campaign.implementation, "2026年4月—6月");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
