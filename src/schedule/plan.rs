//! The pure core of the reminder and digest scheduler.
//!
//! Nothing here reads the clock, the database or the network: every function takes `now` (and
//! the campaign's time zone) as an argument. That is what lets a test run a whole campaign —
//! weeks of reminders and digests — in milliseconds, and lets `remind --dry-run --at T` show
//! exactly what the daemon would do at `T`.
//!
//! The daemon's loop built on this module is:
//!
//! 1. `due_occasions(rules, deadline_of, tz, now)` and `due_digest(rule, tz, last_sent, now)`
//!    say what should go out now;
//! 2. for each recipient the caller inserts the ledger key ([`Occasion::key_for_branch`] for a
//!    reminder — one per roster branch, never per address —, [`DigestDue::key`] for a digest) in the same transaction that queues the mail; a key already present
//!    means "already sent", so a restart, a second daemon or a clock jump never sends twice;
//! 3. it sleeps until `next_wakeup(...)` (capped, see there), then repeats.
//!
//! Catch-up after downtime is decided here, not in the caller: only the latest reminder of a
//! rule that has come due is still meaningful ("three days left" is never sent once the one-day
//! reminder is due, nor after the deadline), and missed digest periods fold into one digest.
//!
//! # The `cron` crate (0.17) and its traps
//!
//! * Expressions have 6 fields — `秒 分 时 日 月 星期` — and an optional 7th year field. We
//!   accept exactly 6: the issue promises "6 fields", and a 5-field crontab line pasted from a
//!   Linux habit would otherwise be misread (its minute taken as seconds). A 5-field expression
//!   is rejected with the 6-field form of the same schedule in the message.
//! * Numeric day-of-week counts **Sunday as 1** (Monday 2 … Saturday 7, and 0 is an error),
//!   unlike crontab where Sunday is 0 or 7 and Monday 1. `1-5` would silently mean Sunday to
//!   Thursday. We therefore reject numbers in the day-of-week field and show the day-name form
//!   (reading the numbers the crontab way, which is what people mean): use `Mon-Fri`.
//! * Day-name ranges cannot wrap past the end of the crate's week (Sunday first, Saturday
//!   last): `Sat-Sun` or `Fri-Mon` fail with an obscure message. We reject them with the list
//!   to write instead (`Sat,Sun`).
//! * Day-of-month and day-of-week are combined with AND (crontab uses OR when both are
//!   restricted): `0 0 8 1-7 * Mon` is "the first Monday of the month".
//! * `*` in the seconds field fires every second of the matching minute, and `*` in the minute
//!   field every minute of the matching hour. Neither makes sense for a digest and both are
//!   easy slips, so we reject them.
//! * Evaluation happens in the given time zone. A local time that occurs twice (clocks set back)
//!   fires twice; one that does not exist (clocks set forward) is skipped. Asia/Shanghai has no
//!   daylight saving time, so this matters only for other zones.
//! * The crate only knows the years 1970–2100: after 2100 nothing fires.
//! * `@daily`, `@weekly` … shorthands exist in the crate (`@weekly` is Sunday 00:00); we ask for
//!   the 6-field form instead so every schedule in the config reads the same way.

use chrono::{
    DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, SecondsFormat,
    TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// The most fire instants [`CronSpec::fires_between`] returns. Enough for a per-minute schedule
/// over a week; a bound so that a careless schedule cannot make the daemon build a huge list.
pub const MAX_FIRES: usize = 10_000;

/// The longest reminder offset accepted by [`parse_offset`]: one year. A campaign phase is
/// weeks long; a larger number is a typo, and the bound keeps date arithmetic far from overflow.
pub const MAX_OFFSET_DAYS: i64 = 366;

/// Which deadline of the campaign timeline a reminder counts back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    /// The application deadline (申报截止).
    Application,
    /// The closure deadline (结项截止) of the implementation phase.
    Closure,
}

impl DeadlineKind {
    /// The config spelling (`application`, `closure`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineKind::Application => "application",
            DeadlineKind::Closure => "closure",
        }
    }
}

impl fmt::Display for DeadlineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeadlineKind {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "application" => Ok(DeadlineKind::Application),
            "closure" => Ok(DeadlineKind::Closure),
            _ => Err(ScheduleError::UnknownDeadline {
                text: text.to_string(),
            }),
        }
    }
}

/// Who a reminder goes to. Like HotCRP's recipient classes, an audience is a *query* evaluated
/// at send time against the roster and the database, never a list frozen in the config: a
/// branch that applies correctly at 08:59 gets no reminder at 09:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Branches on the roster without a valid application.
    NotSubmitted,
    /// Branches whose latest version still has problems (the reminder lists them).
    HasProblems,
    /// Funded projects that have not sent their closure material.
    FundedMissingClosure,
}

impl Audience {
    /// The config spelling (`not_submitted`, `has_problems`, `funded_missing_closure`).
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::NotSubmitted => "not_submitted",
            Audience::HasProblems => "has_problems",
            Audience::FundedMissingClosure => "funded_missing_closure",
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Audience {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "not_submitted" => Ok(Audience::NotSubmitted),
            "has_problems" => Ok(Audience::HasProblems),
            "funded_missing_closure" => Ok(Audience::FundedMissingClosure),
            _ => Err(ScheduleError::UnknownAudience {
                text: text.to_string(),
            }),
        }
    }
}

/// A `[[reminder]]` rule: which deadline, how long before it, at what local time, to whom, with
/// which template.
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderRule {
    /// Unique among the rules; part of every ledger key, so renaming a rule re-sends.
    pub name: String,
    pub deadline: DeadlineKind,
    /// How long before the deadline (`7d`, `3d`, `1d`, `6h`); see [`occasions`].
    pub offsets: Vec<TimeDelta>,
    /// Local time of day for whole-day offsets (09:00); `None` means exactly deadline − offset.
    pub time_of_day: Option<NaiveTime>,
    pub audiences: Vec<Audience>,
    pub template: String,
}

/// A `[[digest]]` rule.
#[derive(Debug, Clone)]
pub struct DigestRule {
    /// Unique among the digests; part of every ledger key.
    pub name: String,
    pub recipients: Vec<String>,
    pub schedule: CronSpec,
    /// Which digest sections to include; `None` means all.
    pub sections: Option<Vec<String>>,
    /// Send even when nothing happened in the period.
    pub send_when_empty: bool,
}

/// Everything that can be wrong in a schedule setting. Each message says what was read and what
/// to write instead, in the operator's language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "提醒时间“{text}”无法识别：请写成正整数加单位，d 表示天、h 表示小时、m 表示分钟，例如 7d、3d、1d、6h、30m"
    )]
    BadOffset { text: String },

    #[error("提醒时间“{text}”必须大于 0：写成 1d、6h、30m 这样的正数")]
    ZeroOffset { text: String },

    #[error("提醒时间“{text}”太长：最多提前 {max_days} 天（{max_days}d）")]
    OffsetTooLarge { text: String, max_days: i64 },

    #[error("提醒时刻“{text}”无法识别：请写成 24 小时制的 时:分，例如 09:00、18:30")]
    BadTimeOfDay { text: String },

    #[error(
        "提醒对象“{text}”无法识别：请写 not_submitted（还没有提交有效申报的支部）、has_problems（最新一版仍有问题的支部）或 funded_missing_closure（已立项但未交结项材料的支部）"
    )]
    UnknownAudience { text: String },

    #[error("截止时间“{text}”无法识别：请写 application（申报截止）或 closure（结项截止）")]
    UnknownDeadline { text: String },

    #[error(
        "cron 表达式是空的：请写成 6 段（秒 分 时 日 月 星期），例如 0 0 8 * * Mon-Fri 表示工作日 8:00"
    )]
    CronEmpty,

    #[error(
        "cron 表达式“{expr}”只有 5 段，少了开头的“秒”。请写成 6 段：{suggestion}（秒 分 时 日 月 星期）"
    )]
    CronFiveFields { expr: String, suggestion: String },

    #[error(
        "cron 表达式“{expr}”有 7 段，第 7 段是年份，本程序不使用。请去掉年份，写成 6 段：{suggestion}（秒 分 时 日 月 星期）"
    )]
    CronYearField { expr: String, suggestion: String },

    #[error(
        "cron 表达式“{expr}”有 {count} 段。请写成 6 段（秒 分 时 日 月 星期），段与段之间用空格、同一段内用逗号且不留空格，例如 0 0 8 * * Mon-Fri（工作日 8:00）、0 0 9 * * Mon（每周一 9:00）"
    )]
    CronFieldCount { expr: String, count: usize },

    #[error("cron 简写“{expr}”不支持。请写成 6 段：{suggestion}（秒 分 时 日 月 星期）")]
    CronShorthand { expr: String, suggestion: String },

    #[error(
        "cron 表达式“{expr}”的星期一段“{field}”用了数字。cron 库把星期日算作 1、星期一算作 2，和 Linux crontab（0 或 7 是星期日，1 是星期一）差一天，容易写错，所以请用英文星期名 Mon Tue Wed Thu Fri Sat Sun。{}",
        suggestion_sentence(.suggestion.as_deref(), "按 crontab 的习惯理解，应写成：")
    )]
    CronNumericWeekday {
        expr: String,
        field: String,
        suggestion: Option<String>,
    },

    #[error(
        "cron 表达式“{expr}”的星期范围“{field}”跨过了周末：cron 库的一周从星期日（Sun）排到星期六（Sat），范围不能绕回。{}",
        suggestion_sentence(.suggestion.as_deref(), "请逐个列出，写成：")
    )]
    CronWrappingWeekdayRange {
        expr: String,
        field: String,
        suggestion: Option<String>,
    },

    #[error(
        "cron 表达式“{expr}”第 1 段（秒）是“{field}”：除了写成一个数字，都会在同一分钟里触发多次。请写一个数字，通常是 0，例如 0 0 8 * * Mon-Fri"
    )]
    CronSecondsNotFixed { expr: String, field: String },

    #[error(
        "cron 表达式“{expr}”第 2 段（分）是“*”，表示那一小时里每分钟都发一次。请写具体的分钟，例如 0 0 8 * * Mon-Fri 表示 8:00"
    )]
    CronEveryMinute { expr: String },

    #[error(
        "cron 表达式“{expr}”无法解析：{detail}。格式为 6 段：秒 分 时 日 月 星期，例如 0 0 8 * * Mon-Fri（工作日 8:00）、0 30 8 * * *（每天 8:30）"
    )]
    CronInvalid { expr: String, detail: String },

    #[error("cron 表达式“{expr}”永远不会触发（例如 2 月 30 日）：请检查日、月和星期是否能同时满足")]
    CronNeverFires { expr: String },
}

/// The tail of a cron message: the suggested expression when we could work one out.
fn suggestion_sentence(suggestion: Option<&str>, lead: &str) -> String {
    match suggestion {
        Some(s) => format!("{lead}{s}"),
        None => "例如 Mon-Fri（工作日）、Mon（星期一）、Sat,Sun（周末）。".to_string(),
    }
}

/// Parses a reminder offset: a positive whole number followed by `d` (days), `h` (hours) or `m`
/// (minutes) — `7d`, `3d`, `1d`, `6h`, `30m`.
///
/// Deliberately narrow: no combinations (`1d12h`), fractions or signs, so that every offset in
/// a config file reads one way. Zero is rejected (a reminder at the deadline can never be sent:
/// [`due_occasions`] sends only before the deadline), and so is anything beyond
/// [`MAX_OFFSET_DAYS`].
pub fn parse_offset(text: &str) -> Result<TimeDelta, ScheduleError> {
    let bad = || ScheduleError::BadOffset {
        text: text.to_string(),
    };
    let t = text.trim();
    let unit_at = t.len().checked_sub(1).ok_or_else(bad)?;
    let (digits, unit) = (t.get(..unit_at).ok_or_else(bad)?, t.get(unit_at..));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let too_large = || ScheduleError::OffsetTooLarge {
        text: text.to_string(),
        max_days: MAX_OFFSET_DAYS,
    };
    // Long digit strings overflow u32: that is "too large", not "unreadable".
    let n = i64::from(digits.parse::<u32>().map_err(|_| too_large())?);
    let offset = match unit {
        Some("d") | Some("D") => TimeDelta::try_days(n),
        Some("h") | Some("H") => TimeDelta::try_hours(n),
        Some("m") | Some("M") => TimeDelta::try_minutes(n),
        _ => return Err(bad()),
    }
    .ok_or_else(too_large)?;
    if offset <= TimeDelta::zero() {
        return Err(ScheduleError::ZeroOffset {
            text: text.to_string(),
        });
    }
    if offset > TimeDelta::days(MAX_OFFSET_DAYS) {
        return Err(too_large());
    }
    Ok(offset)
}

/// Parses a reminder's local time of day: `09:00`, `9:00` or `09:00:00` (24-hour clock).
pub fn parse_time_of_day(text: &str) -> Result<NaiveTime, ScheduleError> {
    let t = text.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| ScheduleError::BadTimeOfDay {
            text: text.to_string(),
        })
}

/// A parsed digest schedule, with the text it came from (for messages, `check-config` and the
/// digest's "next digest at" line).
#[derive(Debug, Clone, PartialEq)]
pub struct CronSpec {
    schedule: cron::Schedule,
    text: String,
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CronSpec {
    type Err = ScheduleError;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        parse_cron(expr)
    }
}

/// Parses a 6-field cron expression (`秒 分 时 日 月 星期`), evaluated later in the campaign's
/// time zone.
///
/// Rejected, each with the expression to write instead where one can be worked out:
/// * 5 fields (crontab habit): the message shows the 6-field form of the same schedule, e.g.
///   `0 8 * * Mon-Fri` → `请写成 6 段：0 0 8 * * Mon-Fri（秒 分 时 日 月 星期）`; numeric days
///   in a 5-field line are read the crontab way (`1-5` → `Mon-Fri`);
/// * numeric day-of-week (the crate counts Sunday as 1, see the module docs): we **reject**
///   rather than translate, so the config on disk says exactly what it means to the next person
///   reading it; the message shows the day-name form;
/// * day-name ranges that wrap (`Sat-Sun`): the message shows the list (`Sat,Sun`);
/// * 7 fields (year), `@daily`-style shorthands, `*` seconds or minutes, and schedules that
///   never fire (`0 0 8 30 2 *`).
pub fn parse_cron(expr: &str) -> Result<CronSpec, ScheduleError> {
    let text = expr.trim();
    if text.is_empty() {
        return Err(ScheduleError::CronEmpty);
    }
    if text.starts_with('@') {
        return Err(shorthand_error(text));
    }
    // Spaces after a comma (`Mon, Fri`) are a common slip that would shift every later field.
    let normalized = text.split(',').map(str::trim).collect::<Vec<_>>().join(",");
    let fields: Vec<&str> = normalized.split_whitespace().collect();
    match fields.len() {
        6 => {}
        5 => {
            let mut six = Vec::with_capacity(6);
            six.push("0".to_string());
            six.extend(fields.iter().map(|f| f.to_string()));
            // A 5-field line comes from crontab, where numbers mean 0/7 = Sunday, 1 = Monday.
            if let Some(names) = weekday_names_for(fields[4]) {
                six[5] = names;
            }
            return Err(ScheduleError::CronFiveFields {
                expr: text.to_string(),
                suggestion: six.join(" "),
            });
        }
        7 if is_year_field(fields[6]) => {
            return Err(ScheduleError::CronYearField {
                expr: text.to_string(),
                suggestion: fields[..6].join(" "),
            });
        }
        count => {
            return Err(ScheduleError::CronFieldCount {
                expr: text.to_string(),
                count,
            });
        }
    }

    let (seconds, minutes, dow) = (fields[0], fields[1], fields[5]);
    if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::CronSecondsNotFixed {
            expr: text.to_string(),
            field: seconds.to_string(),
        });
    }
    if minutes == "*" {
        return Err(ScheduleError::CronEveryMinute {
            expr: text.to_string(),
        });
    }

    let analysis = analyse_weekdays(dow);
    let replaced = |names: String| {
        let mut six: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        six[5] = names;
        six.join(" ")
    };
    if analysis.numeric {
        return Err(ScheduleError::CronNumericWeekday {
            expr: text.to_string(),
            field: dow.to_string(),
            suggestion: analysis.render().map(replaced),
        });
    }
    if analysis.wrapping {
        return Err(ScheduleError::CronWrappingWeekdayRange {
            expr: text.to_string(),
            field: dow.to_string(),
            suggestion: analysis.render().map(replaced),
        });
    }

    let schedule =
        cron::Schedule::from_str(&fields.join(" ")).map_err(|e| ScheduleError::CronInvalid {
            expr: text.to_string(),
            detail: invalid_field_detail(&fields, &e),
        })?;
    // "Never fires" is checked from a fixed instant, not the clock: parsing stays pure, and a
    // schedule that fires at all after 2000 fires again (the crate has no year field here).
    let reference = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
    if schedule.after(&reference).next().is_none() {
        return Err(ScheduleError::CronNeverFires {
            expr: text.to_string(),
        });
    }
    Ok(CronSpec {
        schedule,
        text: text.to_string(),
    })
}

/// Names and ranges of the six fields, for messages.
const FIELD_HELP: [(&str, &str); 6] = [
    ("秒", "0–59"),
    ("分", "0–59"),
    ("时", "0–23"),
    ("日", "1–31"),
    ("月", "1–12 或 Jan–Dec"),
    ("星期", "Mon Tue Wed Thu Fri Sat Sun，或 Mon-Fri 这样的范围"),
];

/// Says which field the crate could not read. The crate's own message is English, points at
/// the whole expression and is sometimes off by one ("Hours must be less than 23"), so each
/// field is tried alone in an otherwise valid expression to find the culprit.
fn invalid_field_detail(fields: &[&str], err: &cron::error::Error) -> String {
    const VALID: [&str; 6] = ["0", "0", "0", "*", "*", "*"];
    for (i, field) in fields.iter().enumerate() {
        let mut probe = VALID;
        if let Some(slot) = probe.get_mut(i) {
            *slot = field;
        }
        if cron::Schedule::from_str(&probe.join(" ")).is_err()
            && let Some((name, range)) = FIELD_HELP.get(i)
        {
            return format!("第 {} 段（{name}）“{field}”写法不对，应为 {range}", i + 1);
        }
    }
    // No single field is wrong on its own: show the crate's reason (its last line; the lines
    // before repeat the expression with a caret).
    let text = err.to_string();
    text.lines().last().unwrap_or_default().trim().to_string()
}

/// Whether a 7th field looks like the crate's optional year field (`2025`, `2025-2026`, `*`).
fn is_year_field(field: &str) -> bool {
    field
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b',' | b'*' | b'/'))
}

fn shorthand_error(text: &str) -> ScheduleError {
    let suggestion = match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * Sun",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        _ => "0 0 8 * * Mon-Fri",
    };
    ScheduleError::CronShorthand {
        expr: text.to_string(),
        suggestion: suggestion.to_string(),
    }
}

/// Crontab numbering for day names: Sunday 0, Monday 1 … Saturday 6.
fn weekday_from_name(name: &str) -> Option<usize> {
    match name.to_ascii_lowercase().as_str() {
        "sun" | "sunday" => Some(0),
        "mon" | "monday" => Some(1),
        "tue" | "tues" | "tuesday" => Some(2),
        "wed" | "wednesday" => Some(3),
        "thu" | "thurs" | "thursday" => Some(4),
        "fri" | "friday" => Some(5),
        "sat" | "saturday" => Some(6),
        _ => None,
    }
}

const WEEKDAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// What the day-of-week field says, read the crontab way.
struct WeekdayAnalysis {
    /// Some item is a number or a numeric range (`1`, `1-5`): the crate's Sunday = 1 trap.
    numeric: bool,
    /// Some range runs past Saturday back to Sunday (`Sat-Sun`, `5-1`).
    wrapping: bool,
    /// The days meant (index 0 = Sunday), when every item could be read.
    days: Option<[bool; 7]>,
}

impl WeekdayAnalysis {
    /// The day-name spelling of `days` the crate reads correctly: `*` for every day, ranges
    /// only within Mon–Sat, Sunday listed last (`Mon-Fri`, `Sat,Sun`, `Mon,Wed,Fri`).
    fn render(&self) -> Option<String> {
        let days = self.days?;
        if days.iter().all(|&d| d) {
            return Some("*".to_string());
        }
        let mut parts: Vec<String> = Vec::new();
        let mut i = 1;
        while i <= 6 {
            if !days[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < 6 && days[i + 1] {
                i += 1;
            }
            match i - start {
                0 => parts.push(WEEKDAY_NAMES[start].to_string()),
                1 => {
                    parts.push(WEEKDAY_NAMES[start].to_string());
                    parts.push(WEEKDAY_NAMES[i].to_string());
                }
                _ => parts.push(format!("{}-{}", WEEKDAY_NAMES[start], WEEKDAY_NAMES[i])),
            }
            i += 1;
        }
        if days[0] {
            parts.push(WEEKDAY_NAMES[0].to_string());
        }
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(","))
        }
    }
}

/// One end of a day-of-week range: a crontab number (0–7, 7 = Sunday) or a day name.
fn weekday_token(token: &str) -> (bool, Option<usize>) {
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        let day = match token.parse::<usize>() {
            Ok(7) => Some(0),
            Ok(n) if n <= 6 => Some(n),
            _ => None,
        };
        (true, day)
    } else {
        (false, weekday_from_name(token))
    }
}

/// Reads a day-of-week field as crontab would, to spot the crate's traps and to spell out the
/// same days in names. Anything unfamiliar (`L`, `#`) leaves `days` unknown and is left for the
/// crate to report.
fn analyse_weekdays(field: &str) -> WeekdayAnalysis {
    let mut out = WeekdayAnalysis {
        numeric: false,
        wrapping: false,
        days: Some([false; 7]),
    };
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, s.parse::<usize>().ok().filter(|&s| s > 0)),
            None => (item, Some(1)),
        };
        // The days of this item in crontab order, starting at the range start.
        let seq: Option<Vec<usize>> = if base == "*" || base == "?" {
            Some((0..7).collect())
        } else if let Some((a, b)) = base.split_once('-') {
            let ((na, da), (nb, db)) = (weekday_token(a), weekday_token(b));
            out.numeric |= na || nb;
            // `1-7` is Monday to Sunday in crontab: 7 ends the week, it does not wrap.
            let end_is_seven = nb && b.parse::<usize>().ok() == Some(7);
            match (da, db) {
                (Some(x), Some(_)) if end_is_seven => Some((x..=6).chain([0]).collect()),
                (Some(x), Some(y)) if x <= y => Some((x..=y).collect()),
                (Some(x), Some(y)) => {
                    out.wrapping = true;
                    Some((x..=6).chain(0..=y).collect())
                }
                _ => None,
            }
        } else {
            let (n, d) = weekday_token(base);
            out.numeric |= n;
            match (d, item.contains('/')) {
                (Some(d), false) => Some(vec![d]),
                // `1/2` means different things in different crons: no guess.
                _ => None,
            }
        };
        match (seq, step, out.days.as_mut()) {
            (Some(seq), Some(step), Some(days)) => {
                for d in seq.into_iter().step_by(step) {
                    days[d] = true;
                }
            }
            _ => out.days = None,
        }
    }
    out
}

/// The day-name form of a crontab day-of-week field, if it needs one (it has numbers or a
/// wrapping range) and one can be worked out.
fn weekday_names_for(field: &str) -> Option<String> {
    let analysis = analyse_weekdays(field);
    if analysis.numeric || analysis.wrapping {
        analysis.render()
    } else {
        None
    }
}

impl CronSpec {
    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Fire instants in `(after, until]`, evaluated in the local time zone `tz`, returned in UTC
    /// and in order. At most [`MAX_FIRES`] instants (the earliest ones).
    ///
    /// Half-open on the left so that consecutive windows `(a, b]`, `(b, c]` never count an
    /// instant twice.
    pub fn fires_between(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        if until <= after {
            return Vec::new();
        }
        self.schedule
            .after(&after.with_timezone(&tz))
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t <= until)
            .take(MAX_FIRES)
            .collect()
    }

    /// The first fire instant strictly after `after`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest fire instant at or before `at`.
    ///
    /// Computed backwards by the crate (no iteration over the gap), so a digest that has not
    /// gone out for months is still found in constant time. The crate's backward search is
    /// strictly-before and counts whole seconds; querying from `at + 1ns` makes it inclusive.
    pub fn latest_at_or_before(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let probe = at.checked_add_signed(TimeDelta::nanoseconds(1))?;
        self.schedule
            .after(&probe.with_timezone(&tz))
            .next_back()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t <= at)
    }
}

/// One reminder occasion: a rule × one of its offsets, for one deadline instant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Occasion {
    pub rule: String,
    pub offset: TimeDelta,
    pub deadline: DateTime<Utc>,
    pub fire_at: DateTime<Utc>,
}

/// An instant as it appears in ledger keys: RFC 3339 UTC with `Z`, fractions only when present,
/// so a key never changes with formatting and sorts in time order.
fn key_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A recipient as it appears in ledger keys: trimmed and lowercased, so `Branch1@Example.test`
/// and `branch1@example.test` cannot both be sent the same reminder.
fn key_recipient(recipient: &str) -> String {
    recipient.trim().to_lowercase()
}

impl Occasion {
    /// `remind:{rule}:{deadline}:{offset seconds}`.
    ///
    /// The deadline instant is part of the key: moving the deadline in the config gives every
    /// occasion a new key, so the reminders not yet sent move with it (and ones already sent for
    /// the old date do not block the new ones). `fire_at` is *not* part of the key: changing
    /// only the time of day must not re-send a reminder that already went out.
    pub fn key(&self) -> String {
        format!(
            "remind:{}:{}:{}",
            self.rule,
            key_time(self.deadline),
            self.offset.num_seconds()
        )
    }

    /// The ledger key for one recipient address: [`Occasion::key`] + `:` + the address
    /// (lowercased). Reminders were keyed like this before they went per branch; the planner
    /// still looks these keys up, so a reminder sent before an upgrade is not sent again.
    pub fn key_for(&self, recipient: &str) -> String {
        format!("{}:{}", self.key(), key_recipient(recipient))
    }

    /// The ledger key for one roster branch: [`Occasion::key`] + `:branch=` + the branch's
    /// roster name. Two branches sharing an address get two keys (each its own reminder);
    /// the `branch=` marker keeps these keys apart from the address keys of [`Occasion::key_for`]
    /// (an address never starts with it).
    pub fn key_for_branch(&self, branch: &str) -> String {
        format!("{}:branch={}", self.key(), key_branch(branch))
    }

    /// The ledger key recording that `branch` could not be reminded on this occasion (no
    /// usable address): distinct from [`Occasion::key_for_branch`], so once the roster is
    /// fixed the reminder of the same occasion can still go out.
    pub fn skip_key_for_branch(&self, branch: &str) -> String {
        format!("{}:unreachable", self.key_for_branch(branch))
    }
}

/// A branch name as it appears in ledger keys: the roster's name, trimmed (the roster is the
/// one canonical spelling, so no further folding is needed).
fn key_branch(branch: &str) -> String {
    branch.trim().to_string()
}

/// A local wall-clock time in `tz` as an instant.
///
/// Around daylight-saving changes (none in Asia/Shanghai since 1991, but the zone is a config
/// setting): a time that occurs twice is the earlier one (a reminder should not be late); a time
/// that does not exist is read with the offset in force before the change, which lands just
/// after the jump — the moment the wall clock "would have" shown it.
fn local_instant(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => {
            let before = naive.checked_sub_signed(TimeDelta::days(1))?;
            let offset = tz.offset_from_utc_datetime(&before).fix();
            let utc = naive
                .checked_sub_signed(TimeDelta::seconds(i64::from(offset.local_minus_utc())))?;
            Some(utc.and_utc())
        }
    }
}

/// When `offset` before `deadline` fires, per the rule's time of day (see [`occasions`]).
fn fire_time(
    offset: TimeDelta,
    time_of_day: Option<NaiveTime>,
    deadline: DateTime<Utc>,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let whole_days = offset.num_seconds() % 86_400 == 0 && offset.subsec_nanos() == 0;
    match time_of_day {
        Some(time) if whole_days => {
            let days = u64::try_from(offset.num_days()).ok()?;
            let date: NaiveDate = deadline.with_timezone(&tz).date_naive();
            let date = date.checked_sub_days(Days::new(days))?;
            local_instant(tz, date.and_time(time))
        }
        _ => deadline.checked_sub_signed(offset),
    }
}

/// The occasions of `rule` for `deadline`, in firing order.
///
/// * A whole-day offset (`7d`, also `24h`) with a `time_of_day` fires at that local time on the
///   local date N days before the deadline's local date: "7 days before 9月27日 23:59" fires
///   9月20日 09:00 Beijing time. People read "seven days before" as a calendar day, and a
///   reminder at 23:59 would be read the next morning anyway.
/// * Sub-day offsets (`6h`, `30m`), or any offset when the rule has no time of day, fire at
///   exactly deadline − offset: "six hours left" has to be true.
///
/// Offsets that are not positive are skipped (they could never be sent before the deadline);
/// duplicate offsets give one occasion.
pub fn occasions(rule: &ReminderRule, deadline: DateTime<Utc>, tz: Tz) -> Vec<Occasion> {
    let mut out: Vec<Occasion> = Vec::new();
    for &offset in &rule.offsets {
        if offset <= TimeDelta::zero() || out.iter().any(|o| o.offset == offset) {
            continue;
        }
        if let Some(fire_at) = fire_time(offset, rule.time_of_day, deadline, tz) {
            out.push(Occasion {
                rule: rule.name.clone(),
                offset,
                deadline,
                fire_at,
            });
        }
    }
    // Ties (possible only around a DST change) put the longer offset first.
    out.sort_by(|a, b| a.fire_at.cmp(&b.fire_at).then(b.offset.cmp(&a.offset)));
    out
}

/// The reminder occasions to send at `now`: per rule, the latest occasion with `fire_at <= now`,
/// provided `now` is still before the deadline.
///
/// This is the catch-up policy. After downtime spanning the 7-day and 3-day occasions only the
/// 3-day one is returned; once the 1-day occasion is due, "three days left" is never returned
/// again; after the deadline nothing is. Returning the latest fired occasion (rather than only
/// one that fired "just now") is what makes a restart harmless: the caller skips recipients
/// whose key is already in the ledger, so the same occasion returned again sends nothing.
///
/// A 7-day occasion caught up after two days of downtime still goes out (it is the latest one
/// due); templates should therefore state the time actually left (deadline − send time), not
/// the offset. Rules whose deadline `deadline_of` does not know (e.g. closure before the review
/// phase) are skipped.
pub fn due_occasions(
    rules: &[ReminderRule],
    deadline_of: impl Fn(DeadlineKind) -> Option<DateTime<Utc>>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Vec<Occasion> {
    rules
        .iter()
        .filter_map(|rule| {
            let deadline = deadline_of(rule.deadline)?;
            if now >= deadline {
                return None;
            }
            occasions(rule, deadline, tz)
                .into_iter()
                .rfind(|o| o.fire_at <= now)
        })
        .collect()
}

/// Every occasion still to come after `now` (fire_at > now, before its deadline), in firing
/// order: for `remind --dry-run` listings and for [`next_wakeup`].
pub fn upcoming_occasions(
    rules: &[ReminderRule],
    deadline_of: impl Fn(DeadlineKind) -> Option<DateTime<Utc>>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Vec<Occasion> {
    let mut out: Vec<Occasion> = rules
        .iter()
        .filter_map(|rule| Some((rule, deadline_of(rule.deadline)?)))
        .flat_map(|(rule, deadline)| occasions(rule, deadline, tz))
        .filter(|o| o.fire_at > now && o.fire_at < o.deadline)
        .collect();
    out.sort_by(|a, b| a.fire_at.cmp(&b.fire_at).then(a.rule.cmp(&b.rule)));
    out
}

/// The next instant strictly after `now` at which a reminder occasion or a digest is due, for
/// the scheduler's sleep. `None` when nothing is scheduled any more.
///
/// Work due at or before `now` is not reported here (it is due already: [`due_occasions`],
/// [`due_digest`]). The caller should still cap its sleep (e.g. at its poll interval): the
/// clock may jump, the config may be reloaded, and a send that failed needs a retry.
pub fn next_wakeup(
    rules: &[ReminderRule],
    digests: &[DigestRule],
    deadline_of: impl Fn(DeadlineKind) -> Option<DateTime<Utc>>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let reminder = upcoming_occasions(rules, deadline_of, tz, now)
        .first()
        .map(|o| o.fire_at);
    let digest = digests
        .iter()
        .filter_map(|d| d.schedule.next_after(tz, now))
        .min();
    match (reminder, digest) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A digest that should go out: the period `(period_start, period_end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestDue {
    pub rule: String,
    /// The scheduled fire instant this digest stands for (not the moment it is sent): every
    /// daemon computing the same period gets the same key.
    pub period_end: DateTime<Utc>,
    /// The previous digest's `period_end`; `None` for the first digest (everything so far).
    pub period_start: Option<DateTime<Utc>>,
}

impl DigestDue {
    /// `digest:{rule}:{period_end}:{recipient}` (recipient lowercased).
    pub fn key(&self, recipient: &str) -> String {
        format!(
            "digest:{}:{}:{}",
            self.rule,
            key_time(self.period_end),
            key_recipient(recipient)
        )
    }
}

/// The digest of `rule` due at `now`, if any: the latest fire instant in `(last_sent, now]`.
///
/// Older missed periods fold into it — after downtime one digest covers everything since the
/// last one, instead of a burst of stale digests. `last_sent` is the previous digest's
/// `period_end` (or the instant of a manual `digest --now`); with `None` the latest past fire
/// instant is due at once, as a first digest covering everything so far — a caller that would
/// rather wait for the next scheduled time passes the daemon's first start as `last_sent`.
/// If the clock is set back behind `last_sent`, nothing is due until it passes the next fire.
///
/// Whether an empty digest is sent (`send_when_empty`) is the caller's decision; it should
/// still record the period so `last_sent` advances.
pub fn due_digest(
    rule: &DigestRule,
    tz: Tz,
    last_sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DigestDue> {
    let end = rule.schedule.latest_at_or_before(tz, now)?;
    if last_sent.is_some_and(|last| end <= last) {
        return None;
    }
    Some(DigestDue {
        rule: rule.name.clone(),
        period_end: end,
        period_start: last_sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;
    use std::collections::HashSet;

    /// A Beijing wall-clock time as a UTC instant.
    fn bj(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid Beijing time")
            .with_timezone(&Utc)
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn days(n: i64) -> TimeDelta {
        TimeDelta::days(n)
    }

    /// The deadline of the issue: 2025-09-27 23:59:59 Beijing time.
    fn deadline() -> DateTime<Utc> {
        utc("2025-09-27T23:59:59+08:00")
    }

    fn rule(name: &str, offsets: &[&str], time: Option<&str>) -> ReminderRule {
        ReminderRule {
            name: name.to_string(),
            deadline: DeadlineKind::Application,
            offsets: offsets
                .iter()
                .map(|o| parse_offset(o).expect("offset"))
                .collect(),
            time_of_day: time.map(|t| parse_time_of_day(t).expect("time")),
            audiences: vec![Audience::NotSubmitted],
            template: "reminder".to_string(),
        }
    }

    fn standard_rule() -> ReminderRule {
        rule("apply", &["7d", "3d", "1d"], Some("09:00"))
    }

    fn app_deadline(d: DateTime<Utc>) -> impl Fn(DeadlineKind) -> Option<DateTime<Utc>> {
        move |k| (k == DeadlineKind::Application).then_some(d)
    }

    fn digest(name: &str, expr: &str) -> DigestRule {
        DigestRule {
            name: name.to_string(),
            recipients: vec!["reviewer@example.test".to_string()],
            schedule: parse_cron(expr).expect("cron"),
            sections: None,
            send_when_empty: false,
        }
    }

    fn cron_err(expr: &str) -> String {
        match parse_cron(expr) {
            Ok(_) => panic!("{expr} should be rejected"),
            Err(e) => e.to_string(),
        }
    }

    // ---- offsets, times, names ----

    #[test]
    fn offsets_in_the_documented_forms_parse() {
        let cases = [
            ("7d", TimeDelta::days(7)),
            ("3d", TimeDelta::days(3)),
            ("1d", TimeDelta::days(1)),
            ("6h", TimeDelta::hours(6)),
            ("30m", TimeDelta::minutes(30)),
            (" 2d ", TimeDelta::days(2)),
            ("12H", TimeDelta::hours(12)),
            ("366d", TimeDelta::days(366)),
            ("007d", TimeDelta::days(7)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_offset(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn other_offset_forms_are_rejected_naming_the_accepted_ones() {
        for text in [
            "", " ", "d", "7", "7 d", "7days", "1d12h", "1.5d", "-1d", "+1d", "7w", "七天", "7天",
            "1s", "d7", "٣d",
        ] {
            let err = parse_offset(text).expect_err(text);
            assert!(
                matches!(err, ScheduleError::BadOffset { .. }),
                "{text}: {err:?}"
            );
            let msg = err.to_string();
            for form in ["7d", "6h", "30m"] {
                assert!(msg.contains(form), "{text}: {msg}");
            }
        }
    }

    #[test]
    fn zero_and_oversized_offsets_are_rejected() {
        assert!(matches!(
            parse_offset("0d"),
            Err(ScheduleError::ZeroOffset { .. })
        ));
        assert!(matches!(
            parse_offset("0m"),
            Err(ScheduleError::ZeroOffset { .. })
        ));
        for text in ["367d", "9000h", "99999999999999999999d", "4294967295m"] {
            let err = parse_offset(text).expect_err(text);
            assert!(
                matches!(err, ScheduleError::OffsetTooLarge { .. }),
                "{text}: {err:?}"
            );
            assert!(err.to_string().contains("366"), "{err}");
        }
    }

    #[test]
    fn times_of_day_parse_and_bad_ones_explain() {
        let nine = NaiveTime::from_hms_opt(9, 0, 0).expect("time");
        assert_eq!(parse_time_of_day("09:00"), Ok(nine));
        assert_eq!(parse_time_of_day("9:00"), Ok(nine));
        assert_eq!(parse_time_of_day("09:00:00"), Ok(nine));
        for bad in ["9", "25:00", "9点", "09:60", ""] {
            let err = parse_time_of_day(bad).expect_err(bad);
            assert!(err.to_string().contains("09:00"), "{err}");
        }
    }

    #[test]
    fn audiences_and_deadline_kinds_read_and_write_their_config_names() {
        let audiences = [
            ("not_submitted", Audience::NotSubmitted),
            ("has_problems", Audience::HasProblems),
            ("funded_missing_closure", Audience::FundedMissingClosure),
        ];
        for (text, a) in audiences {
            assert_eq!(text.parse::<Audience>(), Ok(a));
            assert_eq!(a.to_string(), text);
            assert_eq!(
                serde_json::to_string(&a).expect("json"),
                format!("\"{text}\"")
            );
        }
        let err = "NotSubmitted".parse::<Audience>().expect_err("camel case");
        assert!(err.to_string().contains("not_submitted"), "{err}");

        assert_eq!(
            "application".parse::<DeadlineKind>(),
            Ok(DeadlineKind::Application)
        );
        assert_eq!("closure".parse::<DeadlineKind>(), Ok(DeadlineKind::Closure));
        assert_eq!(
            serde_json::to_string(&DeadlineKind::Closure).expect("json"),
            "\"closure\""
        );
        let err = "apply".parse::<DeadlineKind>().expect_err("unknown");
        assert!(err.to_string().contains("application"), "{err}");
    }

    // ---- cron parsing ----

    #[test]
    fn six_field_expressions_are_accepted() {
        for expr in [
            "0 0 8 * * Mon-Fri",
            "0 0 9 * * Mon",
            "0 30 8 * * *",
            "0 0 8,17 * * Mon-Fri",
            "0 0 9 * * Mon,Wed,Fri",
            "0 0 8 1-7 * Mon",
            "0 0 8 * Sep-Oct Mon-Fri",
            "0 */30 8-18 * * *",
            "0 0 8 * * ?",
            "0 0 9 * * Mon, Wed ,Fri",
            "0 0 8 * * MON-FRI",
            "0 0 0 * * Sun",
            "  0 0 8 * * Mon-Fri  ",
        ] {
            let spec = parse_cron(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(spec.as_str(), expr.trim());
        }
    }

    #[test]
    fn five_field_expression_is_rejected_showing_the_six_field_form() {
        let msg = cron_err("0 8 * * Mon-Fri");
        assert!(
            msg.contains("请写成 6 段：0 0 8 * * Mon-Fri（秒 分 时 日 月 星期）"),
            "{msg}"
        );
        let cases = [
            ("30 8 * * *", "0 30 8 * * *"),
            ("0 9 * * Mon", "0 0 9 * * Mon"),
            // Numbers in a crontab line mean crontab days: the suggestion uses names.
            ("0 8 * * 1-5", "0 0 8 * * Mon-Fri"),
            ("0 8 * * 0,6", "0 0 8 * * Sat,Sun"),
            ("0 8 * * 1-7", "0 0 8 * * *"),
        ];
        for (five, six) in cases {
            let err = parse_cron(five).expect_err(five);
            assert_eq!(
                err,
                ScheduleError::CronFiveFields {
                    expr: five.to_string(),
                    suggestion: six.to_string()
                }
            );
            // What we suggest is itself accepted.
            parse_cron(six).unwrap_or_else(|e| panic!("{six}: {e}"));
        }
    }

    #[test]
    fn numeric_day_of_week_is_rejected_with_day_names() {
        let cases = [
            ("0 0 8 * * 1-5", Some("0 0 8 * * Mon-Fri")),
            ("0 0 9 * * 1", Some("0 0 9 * * Mon")),
            ("0 0 9 * * 0", Some("0 0 9 * * Sun")),
            ("0 0 9 * * 7", Some("0 0 9 * * Sun")),
            ("0 0 9 * * 0,6", Some("0 0 9 * * Sat,Sun")),
            ("0 0 9 * * 1,3,5", Some("0 0 9 * * Mon,Wed,Fri")),
            ("0 0 9 * * 5-7", Some("0 0 9 * * Fri,Sat,Sun")),
            ("0 0 9 * * Mon,3", Some("0 0 9 * * Mon,Wed")),
            ("0 0 9 * * 1-5/2", Some("0 0 9 * * Mon,Wed,Fri")),
            ("0 0 9 * * 9", None),
            ("0 0 9 * * 1/2", None),
        ];
        for (expr, suggestion) in cases {
            let err = parse_cron(expr).expect_err(expr);
            let ScheduleError::CronNumericWeekday {
                suggestion: got, ..
            } = &err
            else {
                panic!("{expr}: {err:?}");
            };
            assert_eq!(got.as_deref(), suggestion, "{expr}");
            let msg = err.to_string();
            assert!(msg.contains("Mon Tue Wed Thu Fri Sat Sun"), "{msg}");
            if let Some(s) = suggestion {
                assert!(msg.contains(s), "{msg}");
                parse_cron(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            }
        }
    }

    #[test]
    fn the_crate_itself_counts_sunday_as_one() {
        // Why numbers are refused: given straight to the crate, "1" is Sunday, not Monday.
        let raw = cron::Schedule::from_str("0 0 9 * * 1").expect("crate parses it");
        let after = Shanghai
            .with_ymd_and_hms(2025, 9, 22, 12, 0, 0) // a Monday
            .single()
            .expect("time");
        let next = raw.after(&after).next().expect("fires");
        assert_eq!(next.format("%a %F").to_string(), "Sun 2025-09-28");
        assert!(cron::Schedule::from_str("0 0 9 * * 0").is_err());
    }

    #[test]
    fn wrapping_day_name_ranges_are_rejected_with_a_list() {
        let cases = [
            ("0 0 9 * * Sat-Sun", "0 0 9 * * Sat,Sun"),
            ("0 0 9 * * Fri-Mon", "0 0 9 * * Mon,Fri,Sat,Sun"),
        ];
        for (expr, want) in cases {
            let err = parse_cron(expr).expect_err(expr);
            assert!(
                matches!(&err, ScheduleError::CronWrappingWeekdayRange { suggestion: Some(s), .. } if s == want),
                "{expr}: {err:?}"
            );
            assert!(err.to_string().contains(want));
            parse_cron(want).unwrap_or_else(|e| panic!("{want}: {e}"));
        }
    }

    #[test]
    fn other_field_counts_are_rejected() {
        let msg = cron_err("0 0 8 * * Mon-Fri 2025");
        assert!(
            msg.contains("0 0 8 * * Mon-Fri（秒 分 时 日 月 星期）"),
            "{msg}"
        );
        for expr in ["0 8 * *", "8", "0 0 8 * * Mon Fri", "0 0 0 8 * * * Mon"] {
            let err = parse_cron(expr).expect_err(expr);
            assert!(
                matches!(err, ScheduleError::CronFieldCount { .. }),
                "{expr}: {err:?}"
            );
            assert!(err.to_string().contains("0 0 8 * * Mon-Fri"));
        }
        assert_eq!(
            parse_cron("   ").expect_err("empty"),
            ScheduleError::CronEmpty
        );
    }

    #[test]
    fn shorthands_are_rejected_with_their_six_field_form() {
        for (expr, six) in [
            ("@daily", "0 0 0 * * *"),
            ("@weekly", "0 0 0 * * Sun"),
            ("@hourly", "0 0 * * * *"),
        ] {
            let msg = cron_err(expr);
            assert!(msg.contains(six), "{msg}");
            parse_cron(six).unwrap_or_else(|e| panic!("{six}: {e}"));
        }
    }

    #[test]
    fn repeating_seconds_and_every_minute_are_rejected() {
        for expr in ["* 0 8 * * Mon-Fri", "*/10 0 8 * * *", "0-5 0 8 * * *"] {
            let err = parse_cron(expr).expect_err(expr);
            assert!(
                matches!(err, ScheduleError::CronSecondsNotFixed { .. }),
                "{expr}: {err:?}"
            );
        }
        let err = parse_cron("0 * 8 * * Mon-Fri").expect_err("every minute");
        assert!(matches!(err, ScheduleError::CronEveryMinute { .. }));
        assert!(err.to_string().contains("0 0 8 * * Mon-Fri"));
    }

    #[test]
    fn malformed_fields_get_a_chinese_explanation() {
        let cases = [
            ("0 0 25 * * *", "第 3 段（时）“25”写法不对，应为 0–23"),
            ("0 60 8 * * *", "第 2 段（分）“60”"),
            ("0 0 8 32 * *", "第 4 段（日）“32”"),
            ("0 0 8 * 13 *", "第 5 段（月）“13”"),
            ("0 0 8 * * Funday", "第 6 段（星期）“Funday”"),
            ("0 0 8 * * Mon#2", "第 6 段（星期）“Mon#2”"),
            ("60 0 8 * * *", "第 1 段（秒）“60”"),
            ("0 0 8 * Dec-Jan *", "第 5 段（月）“Dec-Jan”"),
        ];
        for (expr, detail) in cases {
            let err = parse_cron(expr).expect_err(expr);
            let msg = err.to_string();
            assert!(
                matches!(err, ScheduleError::CronInvalid { .. }),
                "{expr}: {err:?}"
            );
            assert!(msg.contains(detail), "{msg}");
            assert!(msg.contains("秒 分 时 日 月 星期"), "{msg}");
            assert!(msg.contains(expr), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn schedules_that_never_fire_are_rejected() {
        for expr in ["0 0 8 30 2 *", "0 0 8 31 Apr *"] {
            let err = parse_cron(expr).expect_err(expr);
            assert!(
                matches!(err, ScheduleError::CronNeverFires { .. }),
                "{expr}: {err:?}"
            );
        }
        // Rare is not never: 29 February on a Monday.
        parse_cron("0 0 8 29 2 Mon").expect("rare but real");
    }

    #[test]
    fn cron_spec_keeps_its_text() {
        let spec: CronSpec = "0 0 8 * * Mon-Fri".parse().expect("parse");
        assert_eq!(spec.as_str(), "0 0 8 * * Mon-Fri");
        assert_eq!(spec.to_string(), "0 0 8 * * Mon-Fri");
        assert_eq!(spec, parse_cron(" 0 0 8 * * Mon-Fri").expect("parse"));
    }

    // ---- cron evaluation ----

    #[test]
    fn eight_o_clock_beijing_is_midnight_utc() {
        let spec = parse_cron("0 0 8 * * *").expect("cron");
        let fires = spec.fires_between(
            Shanghai,
            utc("2025-09-20T00:00:00Z"),
            utc("2025-09-23T00:00:00Z"),
        );
        assert_eq!(
            fires,
            vec![
                utc("2025-09-21T00:00:00Z"),
                utc("2025-09-22T00:00:00Z"),
                utc("2025-09-23T00:00:00Z"),
            ]
        );
        let half_past = parse_cron("0 30 8 * * *").expect("cron");
        assert_eq!(
            half_past.next_after(Shanghai, utc("2025-09-20T00:00:00Z")),
            Some(utc("2025-09-20T00:30:00Z"))
        );
    }

    #[test]
    fn weekday_schedule_skips_the_weekend() {
        let spec = parse_cron("0 0 8 * * Mon-Fri").expect("cron");
        // Friday 2025-09-26 09:00 → next is Monday 09-29 08:00.
        assert_eq!(
            spec.next_after(Shanghai, bj(2025, 9, 26, 9, 0, 0)),
            Some(bj(2025, 9, 29, 8, 0, 0))
        );
        let fires = spec.fires_between(
            Shanghai,
            bj(2025, 9, 25, 12, 0, 0),
            bj(2025, 9, 30, 12, 0, 0),
        );
        assert_eq!(
            fires,
            vec![
                bj(2025, 9, 26, 8, 0, 0),
                bj(2025, 9, 29, 8, 0, 0),
                bj(2025, 9, 30, 8, 0, 0),
            ]
        );
        let monday = parse_cron("0 0 9 * * Mon").expect("cron");
        assert_eq!(
            monday.next_after(Shanghai, bj(2025, 9, 22, 9, 0, 0)),
            Some(bj(2025, 9, 29, 9, 0, 0))
        );
    }

    #[test]
    fn fires_between_is_open_at_the_start_and_closed_at_the_end() {
        let spec = parse_cron("0 0 8 * * *").expect("cron");
        let a = bj(2025, 9, 20, 8, 0, 0);
        let b = bj(2025, 9, 21, 8, 0, 0);
        assert_eq!(spec.fires_between(Shanghai, a, b), vec![b]);
        assert!(spec.fires_between(Shanghai, b, a).is_empty());
        assert!(spec.fires_between(Shanghai, a, a).is_empty());
        // Sub-second instants do not shift whole-second fires.
        let just_before = b - TimeDelta::milliseconds(1);
        assert_eq!(spec.next_after(Shanghai, just_before), Some(b));
        assert_eq!(spec.next_after(Shanghai, b), Some(bj(2025, 9, 22, 8, 0, 0)));
    }

    #[test]
    fn fires_between_is_bounded() {
        let spec = parse_cron("0 */1 * * * *").expect("every minute");
        let from = utc("2025-09-01T00:00:00Z");
        let fires = spec.fires_between(Shanghai, from, from + days(30));
        assert_eq!(fires.len(), MAX_FIRES);
        assert_eq!(fires[0], from + TimeDelta::minutes(1));
    }

    #[test]
    fn latest_at_or_before_agrees_with_forward_iteration() {
        let exprs = [
            "0 0 8 * * Mon-Fri",
            "0 0 9 * * Mon",
            "0 30 8 * * *",
            "0 0 8,17 * * *",
            "0 0 8 1-7 * Mon",
        ];
        let instants = [
            bj(2025, 9, 20, 9, 0, 0),
            bj(2025, 9, 22, 8, 0, 0),
            bj(2025, 9, 22, 7, 59, 59),
            bj(2025, 9, 22, 8, 0, 0) + TimeDelta::milliseconds(500),
            bj(2025, 10, 1, 0, 0, 0),
            bj(2026, 1, 1, 0, 0, 0),
        ];
        for expr in exprs {
            let spec = parse_cron(expr).expect("cron");
            for at in instants {
                let brute = spec
                    .fires_between(Shanghai, at - days(40), at)
                    .last()
                    .copied();
                assert_eq!(
                    spec.latest_at_or_before(Shanghai, at),
                    brute,
                    "{expr} at {at}"
                );
            }
        }
    }

    #[test]
    fn other_zones_follow_their_daylight_saving_rules() {
        // Documents the crate: a repeated local time fires twice, a skipped one not at all.
        let tz: Tz = "Europe/London".parse().expect("zone");
        let spec = parse_cron("0 30 1 * * *").expect("cron");
        let back = spec.fires_between(tz, utc("2025-10-25T12:00:00Z"), utc("2025-10-26T12:00:00Z"));
        assert_eq!(
            back,
            vec![utc("2025-10-26T00:30:00Z"), utc("2025-10-26T01:30:00Z")]
        );
        let forward =
            spec.fires_between(tz, utc("2025-03-29T12:00:00Z"), utc("2025-03-30T12:00:00Z"));
        assert!(forward.is_empty(), "{forward:?}");
    }

    // ---- occasions ----

    #[test]
    fn seven_three_one_days_before_fire_at_nine_beijing_time() {
        let occ = occasions(&standard_rule(), deadline(), Shanghai);
        let fires: Vec<_> = occ.iter().map(|o| o.fire_at).collect();
        assert_eq!(
            fires,
            vec![
                utc("2025-09-20T01:00:00Z"),
                utc("2025-09-24T01:00:00Z"),
                utc("2025-09-26T01:00:00Z"),
            ]
        );
        let offsets: Vec<_> = occ.iter().map(|o| o.offset).collect();
        assert_eq!(offsets, vec![days(7), days(3), days(1)]);
        assert!(
            occ.iter()
                .all(|o| o.deadline == deadline() && o.rule == "apply")
        );
    }

    #[test]
    fn calendar_days_count_from_the_deadline_local_date() {
        // 2025-09-28 00:30 Beijing is still 2025-09-27 in UTC: the local date decides.
        let d = bj(2025, 9, 28, 0, 30, 0);
        let occ = occasions(&rule("r", &["1d"], Some("09:00")), d, Shanghai);
        assert_eq!(occ[0].fire_at, bj(2025, 9, 27, 9, 0, 0));
        // "24h" is a whole day too.
        let occ = occasions(&rule("r", &["24h"], Some("09:00")), d, Shanghai);
        assert_eq!(occ[0].fire_at, bj(2025, 9, 27, 9, 0, 0));
    }

    #[test]
    fn sub_day_offsets_fire_at_the_exact_instant() {
        let occ = occasions(
            &rule("last", &["6h", "30m"], Some("09:00")),
            deadline(),
            Shanghai,
        );
        assert_eq!(
            occ.iter().map(|o| o.fire_at).collect::<Vec<_>>(),
            vec![
                utc("2025-09-27T17:59:59+08:00"),
                utc("2025-09-27T23:29:59+08:00")
            ]
        );
    }

    #[test]
    fn without_time_of_day_day_offsets_are_exact_too() {
        let occ = occasions(&rule("r", &["1d"], None), deadline(), Shanghai);
        assert_eq!(occ[0].fire_at, utc("2025-09-26T23:59:59+08:00"));
    }

    #[test]
    fn occasions_are_sorted_deduplicated_and_skip_non_positive_offsets() {
        let mut r = rule("r", &["1d", "7d", "3d", "1d"], Some("09:00"));
        r.offsets.push(TimeDelta::zero());
        r.offsets.push(TimeDelta::hours(-2));
        let occ = occasions(&r, deadline(), Shanghai);
        assert_eq!(
            occ.iter().map(|o| o.offset).collect::<Vec<_>>(),
            vec![days(7), days(3), days(1)]
        );
        assert!(occasions(&rule("none", &[], Some("09:00")), deadline(), Shanghai).is_empty());
    }

    #[test]
    fn a_reminder_time_skipped_by_daylight_saving_lands_after_the_jump() {
        // London, 2025-03-30: 01:00 → 02:00. "01:30" does not exist that day.
        let tz: Tz = "Europe/London".parse().expect("zone");
        let d = utc("2025-03-31T12:00:00Z");
        let occ = occasions(&rule("r", &["1d"], Some("01:30")), d, tz);
        assert_eq!(occ[0].fire_at, utc("2025-03-30T01:30:00Z")); // 02:30 BST
        // 2025-10-26 01:30 happens twice: the earlier one.
        let d = utc("2025-10-27T12:00:00Z");
        let occ = occasions(&rule("r", &["1d"], Some("01:30")), d, tz);
        assert_eq!(occ[0].fire_at, utc("2025-10-26T00:30:00Z"));
    }

    // ---- due occasions ----

    fn due_at(now: DateTime<Utc>) -> Vec<Occasion> {
        due_occasions(&[standard_rule()], app_deadline(deadline()), Shanghai, now)
    }

    fn offsets_of(occ: &[Occasion]) -> Vec<TimeDelta> {
        occ.iter().map(|o| o.offset).collect()
    }

    #[test]
    fn nothing_is_due_before_the_first_occasion() {
        assert!(due_at(utc("2025-09-20T00:59:59Z")).is_empty());
        assert!(due_at(utc("2025-09-01T00:00:00Z")).is_empty());
    }

    #[test]
    fn an_occasion_is_due_exactly_at_its_fire_time() {
        let due = due_at(utc("2025-09-20T01:00:00Z"));
        assert_eq!(offsets_of(&due), vec![days(7)]);
        assert_eq!(due[0].fire_at, utc("2025-09-20T01:00:00Z"));
    }

    #[test]
    fn catch_up_sends_only_the_latest_occasion_still_meaningful() {
        let cases = [
            // (now, the one occasion due)
            ("2025-09-21T10:00:00+08:00", Some(7)),
            ("2025-09-24T08:59:59+08:00", Some(7)),
            // Down from before the 7d occasion until after the 3d one: only 3d.
            ("2025-09-24T12:00:00+08:00", Some(3)),
            ("2025-09-26T08:59:59+08:00", Some(3)),
            // Once the 1d occasion is due, "three days left" is never due again.
            ("2025-09-26T09:00:00+08:00", Some(1)),
            ("2025-09-27T23:59:58+08:00", Some(1)),
            // At and after the deadline nothing is.
            ("2025-09-27T23:59:59+08:00", None),
            ("2025-09-28T09:00:00+08:00", None),
            ("2026-01-01T00:00:00+08:00", None),
        ];
        for (now, want) in cases {
            let due = due_at(utc(now));
            assert_eq!(
                offsets_of(&due),
                want.map(days).into_iter().collect::<Vec<_>>(),
                "{now}"
            );
        }
    }

    #[test]
    fn a_moved_deadline_moves_the_unsent_reminders() {
        let old = deadline();
        let new = utc("2025-10-04T23:59:59+08:00");
        // The 7d reminder for the old date went out on 09-20.
        let sent: HashSet<String> = due_occasions(
            &[standard_rule()],
            app_deadline(old),
            Shanghai,
            utc("2025-09-20T09:00:00+08:00"),
        )
        .iter()
        .map(Occasion::key)
        .collect();
        assert_eq!(sent.len(), 1);

        // On 09-25 the deadline is a week later: the old 3d occasion (due 09-24) is gone and
        // nothing is due until the new 7d occasion on 09-27 09:00.
        let rules = [standard_rule()];
        assert!(
            due_occasions(
                &rules,
                app_deadline(new),
                Shanghai,
                bj(2025, 9, 25, 12, 0, 0)
            )
            .is_empty()
        );
        let due = due_occasions(
            &rules,
            app_deadline(new),
            Shanghai,
            bj(2025, 9, 27, 9, 0, 0),
        );
        assert_eq!(offsets_of(&due), vec![days(7)]);
        assert_eq!(due[0].deadline, new);
        assert!(
            !sent.contains(&due[0].key()),
            "the new occasion has a new key"
        );
        assert_eq!(
            next_wakeup(
                &rules,
                &[],
                app_deadline(new),
                Shanghai,
                bj(2025, 9, 25, 12, 0, 0)
            ),
            Some(bj(2025, 9, 27, 9, 0, 0))
        );
    }

    #[test]
    fn rules_without_a_known_deadline_are_skipped_and_rules_are_independent() {
        let mut closure = rule("closure", &["3d"], Some("09:00"));
        closure.deadline = DeadlineKind::Closure;
        closure.audiences = vec![Audience::FundedMissingClosure];
        let last_call = rule("last-call", &["6h"], None);
        let rules = [standard_rule(), closure.clone(), last_call];

        let now = utc("2025-09-27T19:00:00+08:00");
        let due = due_occasions(&rules, app_deadline(deadline()), Shanghai, now);
        let names: Vec<_> = due.iter().map(|o| (o.rule.as_str(), o.offset)).collect();
        assert_eq!(
            names,
            vec![("apply", days(1)), ("last-call", TimeDelta::hours(6))]
        );

        let both = |k: DeadlineKind| match k {
            DeadlineKind::Application => Some(deadline()),
            DeadlineKind::Closure => Some(utc("2025-12-31T23:59:59+08:00")),
        };
        let due = due_occasions(&rules, both, Shanghai, utc("2025-12-29T09:00:00+08:00"));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].rule, "closure");
    }

    // ---- next wakeup ----

    #[test]
    fn next_wakeup_is_the_earliest_reminder_or_digest() {
        let rules = [standard_rule()];
        let weekday = [digest("daily", "0 0 8 * * Mon-Fri")];
        let cases = [
            // Saturday 09-20 00:00: the 7d reminder at 09:00 comes first (no digest on weekends).
            (bj(2025, 9, 20, 0, 0, 0), bj(2025, 9, 20, 9, 0, 0)),
            // Right at the reminder: strictly after, so Monday's digest.
            (bj(2025, 9, 20, 9, 0, 0), bj(2025, 9, 22, 8, 0, 0)),
            // Wednesday 08:30: the 3d reminder at 09:00 beats Thursday's digest.
            (bj(2025, 9, 24, 8, 30, 0), bj(2025, 9, 24, 9, 0, 0)),
            // Wednesday 07:00: the digest at 08:00 comes first.
            (bj(2025, 9, 24, 7, 0, 0), bj(2025, 9, 24, 8, 0, 0)),
            // After the last reminder only digests remain.
            (bj(2025, 9, 26, 10, 0, 0), bj(2025, 9, 29, 8, 0, 0)),
        ];
        for (now, want) in cases {
            assert_eq!(
                next_wakeup(&rules, &weekday, app_deadline(deadline()), Shanghai, now),
                Some(want),
                "{now}"
            );
        }
    }

    #[test]
    fn next_wakeup_takes_the_earliest_of_several_digests_and_ends_when_nothing_is_left() {
        let digests = [
            digest("weekly", "0 0 9 * * Mon"),
            digest("daily", "0 30 8 * * *"),
        ];
        let now = bj(2025, 9, 28, 12, 0, 0); // Sunday, after the deadline
        assert_eq!(
            next_wakeup(
                &[standard_rule()],
                &digests,
                app_deadline(deadline()),
                Shanghai,
                now
            ),
            Some(bj(2025, 9, 29, 8, 30, 0))
        );
        assert_eq!(
            next_wakeup(
                &[standard_rule()],
                &[],
                app_deadline(deadline()),
                Shanghai,
                now
            ),
            None
        );
        assert_eq!(
            next_wakeup(
                &[standard_rule()],
                &[],
                |_| None,
                Shanghai,
                bj(2025, 9, 1, 0, 0, 0)
            ),
            None
        );
    }

    #[test]
    fn upcoming_occasions_list_what_is_still_to_come() {
        let up = upcoming_occasions(
            &[standard_rule(), rule("last-call", &["6h"], None)],
            app_deadline(deadline()),
            Shanghai,
            bj(2025, 9, 24, 9, 0, 0),
        );
        let got: Vec<_> = up.iter().map(|o| (o.rule.as_str(), o.fire_at)).collect();
        assert_eq!(
            got,
            vec![
                ("apply", bj(2025, 9, 26, 9, 0, 0)),
                ("last-call", bj(2025, 9, 27, 17, 59, 59)),
            ]
        );
    }

    // ---- digests ----

    #[test]
    fn the_first_digest_covers_everything_so_far() {
        let rule = digest("daily", "0 0 8 * * Mon-Fri");
        let due = due_digest(&rule, Shanghai, None, bj(2025, 9, 21, 15, 0, 0)).expect("due");
        assert_eq!(
            due,
            DigestDue {
                rule: "daily".to_string(),
                period_end: bj(2025, 9, 19, 8, 0, 0), // the Friday before
                period_start: None,
            }
        );
    }

    #[test]
    fn catch_up_folds_missed_digest_periods_into_one() {
        let rule = digest("daily", "0 0 8 * * Mon-Fri");
        let last = bj(2025, 9, 22, 8, 0, 0);
        // Down from Monday 09:00 to Thursday 10:00: one digest for Tue–Thu, ending Thursday 08:00.
        let due = due_digest(&rule, Shanghai, Some(last), bj(2025, 9, 25, 10, 0, 0)).expect("due");
        assert_eq!(due.period_end, bj(2025, 9, 25, 8, 0, 0));
        assert_eq!(due.period_start, Some(last));
    }

    #[test]
    fn no_digest_is_due_between_fires_or_when_the_clock_went_back() {
        let rule = digest("daily", "0 0 8 * * Mon-Fri");
        let last = bj(2025, 9, 22, 8, 0, 0);
        let cases = [
            bj(2025, 9, 22, 8, 0, 0),   // the period just sent
            bj(2025, 9, 22, 20, 0, 0),  // later that day
            bj(2025, 9, 23, 7, 59, 59), // one second early
            bj(2025, 9, 20, 9, 0, 0),   // clock set back before last_sent
        ];
        for now in cases {
            assert_eq!(due_digest(&rule, Shanghai, Some(last), now), None, "{now}");
        }
        // Exactly at the next fire it is due; a manual `digest --now` at 10:00 counts as sent.
        let at = bj(2025, 9, 23, 8, 0, 0);
        assert_eq!(
            due_digest(&rule, Shanghai, Some(last), at).map(|d| d.period_end),
            Some(at)
        );
        let manual = bj(2025, 9, 23, 10, 0, 0);
        assert_eq!(
            due_digest(&rule, Shanghai, Some(manual), bj(2025, 9, 23, 12, 0, 0)),
            None
        );
    }

    // ---- keys ----

    #[test]
    fn reminder_keys_are_stable_and_distinct() {
        let occ = occasions(&standard_rule(), deadline(), Shanghai);
        assert_eq!(occ[0].key(), "remind:apply:2025-09-27T15:59:59Z:604800");
        let keys: HashSet<_> = occ.iter().map(Occasion::key).collect();
        assert_eq!(keys.len(), 3);
        // Recomputed, the keys are the same; the time of day is not part of them.
        let again = occasions(
            &rule("apply", &["7d", "3d", "1d"], Some("10:00")),
            deadline(),
            Shanghai,
        );
        assert_eq!(
            again.iter().map(Occasion::key).collect::<HashSet<_>>(),
            keys
        );
        // Another rule, another deadline: other keys.
        let other_rule = occasions(&rule("other", &["7d"], Some("09:00")), deadline(), Shanghai);
        assert!(!keys.contains(&other_rule[0].key()));
        let moved = occasions(&standard_rule(), deadline() + days(1), Shanghai);
        assert!(moved.iter().all(|o| !keys.contains(&o.key())));
        // Per recipient.
        assert_eq!(
            occ[0].key_for(" Branch1@Example.test "),
            "remind:apply:2025-09-27T15:59:59Z:604800:branch1@example.test"
        );
        assert_ne!(occ[0].key_for("a@x.test"), occ[0].key_for("b@x.test"));
        // Per branch: two branches at one address have two keys, none equal to an address key.
        assert_eq!(
            occ[0].key_for_branch(" 甲学院第一党支部 "),
            "remind:apply:2025-09-27T15:59:59Z:604800:branch=甲学院第一党支部"
        );
        let (a, b) = (
            occ[0].key_for_branch("甲学院第一党支部"),
            occ[0].key_for_branch("甲学院第二党支部"),
        );
        assert_ne!(a, b);
        assert_ne!(a, occ[0].key_for("branch1@example.test"));
        assert_ne!(occ[0].key_for_branch("甲"), occ[1].key_for_branch("甲"));
        // Recording a skip never takes the key of the reminder itself.
        assert_ne!(
            occ[0].skip_key_for_branch("甲学院第一党支部"),
            occ[0].key_for_branch("甲学院第一党支部")
        );
        assert!(
            occ[0]
                .skip_key_for_branch("甲学院第一党支部")
                .starts_with(&occ[0].key_for_branch("甲学院第一党支部"))
        );
    }

    #[test]
    fn digest_keys_are_stable_and_distinct() {
        let rule = digest("daily", "0 0 8 * * Mon-Fri");
        let last = Some(bj(2025, 9, 22, 8, 0, 0));
        // Two daemons waking at different moments in the same period agree on the key.
        let a = due_digest(&rule, Shanghai, last, bj(2025, 9, 23, 8, 0, 0)).expect("due");
        let b = due_digest(&rule, Shanghai, last, bj(2025, 9, 23, 8, 0, 7)).expect("due");
        assert_eq!(a.key("r@example.test"), b.key("R@example.test"));
        assert_eq!(
            a.key("r@example.test"),
            "digest:daily:2025-09-23T00:00:00Z:r@example.test"
        );
        let next = due_digest(
            &rule,
            Shanghai,
            Some(a.period_end),
            bj(2025, 9, 24, 8, 0, 0),
        )
        .expect("due");
        assert_ne!(a.key("r@example.test"), next.key("r@example.test"));
        assert_ne!(a.key("r@example.test"), a.key("s@example.test"));
    }

    #[test]
    fn a_simulated_campaign_sends_each_reminder_and_digest_exactly_once() {
        // The daemon loop, driven by next_wakeup, with restarts that repeat a wake-up. Nothing
        // is sent twice, "3 days left" is sent once, and every weekday gets one digest.
        let rules = [standard_rule(), rule("last-call", &["6h"], None)];
        let digests = [digest("daily", "0 0 8 * * Mon-Fri")];
        let deadline_of = app_deadline(deadline());
        let mut ledger: HashSet<String> = HashSet::new();
        let mut sent: Vec<String> = Vec::new();
        let mut last_digest: Option<DateTime<Utc>> = Some(bj(2025, 9, 15, 0, 0, 0));
        let mut now = bj(2025, 9, 15, 0, 0, 0);
        let end = bj(2025, 10, 3, 0, 0, 0);
        let mut wakeups = 0;
        while now < end {
            wakeups += 1;
            assert!(wakeups < 1000, "the loop must advance");
            for _restart in 0..2 {
                for occ in due_occasions(&rules, &deadline_of, Shanghai, now) {
                    if ledger.insert(occ.key_for_branch("甲学院第一党支部")) {
                        sent.push(format!("{} {}", occ.rule, occ.offset.num_hours()));
                    }
                }
                if let Some(d) = due_digest(&digests[0], Shanghai, last_digest, now) {
                    if ledger.insert(d.key("reviewer@example.test")) {
                        sent.push(format!(
                            "digest {}",
                            d.period_end.with_timezone(&Shanghai).format("%m-%d")
                        ));
                    }
                    last_digest = Some(d.period_end);
                }
            }
            match next_wakeup(&rules, &digests, &deadline_of, Shanghai, now) {
                Some(t) => {
                    assert!(t > now);
                    now = t;
                }
                None => break,
            }
        }
        let reminders: Vec<_> = sent.iter().filter(|s| !s.starts_with("digest")).collect();
        assert_eq!(
            reminders,
            ["apply 168", "apply 72", "apply 24", "last-call 6"]
        );
        let digest_days: Vec<_> = sent.iter().filter(|s| s.starts_with("digest")).collect();
        assert_eq!(
            digest_days,
            [
                "digest 09-15",
                "digest 09-16",
                "digest 09-17",
                "digest 09-18",
                "digest 09-19",
                "digest 09-22",
                "digest 09-23",
                "digest 09-24",
                "digest 09-25",
                "digest 09-26",
                "digest 09-29",
                "digest 09-30",
                "digest 10-01",
                "digest 10-02",
            ]
        );
    }
}
