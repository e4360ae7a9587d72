//! `shenbao health`: is the daemon doing its work? A pure judgement of the store's figures
//! ([`crate::store::ops::Figures`]) against the `[health]` thresholds, for people (Chinese
//! lines), for cron and monitoring (exit 0 / 1 / 2) and for scripts (`status --json`).
//!
//! What is judged, and why:
//! * IMAP: the last successful contact (poll, IDLE wake, fetch). Nothing recorded, or older
//!   than the critical threshold: the daemon is not running or cannot reach the server.
//! * Scheduler: its last step (it steps at least every 5 minutes while the daemon runs); a
//!   failed last step is a warning.
//! * Outbox: the age of the oldest mail still waiting: sending is failing when it grows.
//! * Dead letters (mail given up after all retries), failed messages (mail that could not be
//!   registered) and template errors of the last 7 days: each is a warning that needs a person.

use crate::config::HealthConfig;
use crate::store::ops::{Beat, Figures, TemplateError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// The state of one check, or of the whole; ordered, so the worst wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "正常",
            Level::Warning => "注意",
            Level::Critical => "严重",
        }
    }

    /// The exit code for cron and monitoring (the Nagios convention).
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
        }
    }
}

/// One judged item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Stable name for scripts: `imap`, `scheduler`, `outbox`, `dead_letters`,
    /// `failed_messages`, `template_errors`.
    pub name: &'static str,
    pub level: Level,
    /// One Chinese sentence, with what to do when it is not ok.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub level: Level,
    pub checks: Vec<Check>,
}

/// `3 分钟`, `2 小时 5 分钟`, `1 天 3 小时`: an age for people.
pub fn age_label(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{s} 秒"),
        (0, 0, m) => format!("{m} 分钟"),
        (0, h, 0) => format!("{h} 小时"),
        (0, h, m) => format!("{h} 小时 {m} 分钟"),
        (d, 0, _) => format!("{d} 天"),
        (d, h, _) => format!("{d} 天 {h} 小时"),
    }
}

fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (now - at).to_std().unwrap_or_default()
}

fn by_age(age: Duration, warning: Duration, critical: Duration) -> Level {
    if age >= critical {
        Level::Critical
    } else if age >= warning {
        Level::Warning
    } else {
        Level::Ok
    }
}

fn heartbeat(
    name: &'static str,
    what: &str,
    beat: Option<&Beat>,
    (warning, critical): (Duration, Duration),
    now: DateTime<Utc>,
) -> Check {
    let Some(b) = beat else {
        return Check {
            name,
            level: Level::Critical,
            text: format!(
                "{what}：没有任何记录，守护进程可能从未运行；请启动 `shenbao run`（或 systemctl start shenbao）"
            ),
        };
    };
    let a = age(now, b.at);
    let mut level = by_age(a, warning, critical);
    let when = format!(
        "{what}：最后一次在 {} 前（{}，北京时间）",
        age_label(a),
        crate::clock::beijing(b.at)
    );
    let text = match (level, b.ok, b.detail.as_deref()) {
        (Level::Ok, true, _) => when,
        (_, false, Some(err)) => {
            level = level.max(Level::Warning);
            format!("{when}，但出错了：{err}；请查看日志（journalctl -u shenbao）")
        }
        _ => format!(
            "{when}，超过了 {}；请确认 `shenbao run` 正在运行，并查看日志（journalctl -u shenbao）",
            age_label(if level == Level::Critical {
                critical
            } else {
                warning
            })
        ),
    };
    Check { name, level, text }
}

/// Judges the figures at `now`.
pub fn assess(f: &Figures, t: &HealthConfig, now: DateTime<Utc>) -> Report {
    let mut checks = vec![
        heartbeat(
            "imap",
            "与 IMAP 服务器的联系",
            f.imap.as_ref(),
            (t.imap_warning, t.imap_critical),
            now,
        ),
        heartbeat(
            "scheduler",
            "提醒和摘要的排期检查",
            f.scheduler.as_ref(),
            (t.scheduler_warning, t.scheduler_critical),
            now,
        ),
    ];
    checks.push(match f.oldest_waiting_since {
        None => Check {
            name: "outbox",
            level: Level::Ok,
            text: "发件箱：没有等待发送的邮件".to_string(),
        },
        Some(since) => {
            let a = age(now, since);
            let level = by_age(a, t.outbox_warning, t.outbox_critical);
            let mut text = format!(
                "发件箱：{} 封等待发送，最早的已等待 {}",
                f.outbox_waiting,
                age_label(a)
            );
            if level != Level::Ok {
                if let Some(e) = &f.oldest_waiting_error {
                    text.push_str(&format!("，最后的错误：{e}"));
                }
                text.push_str("；请检查配置 [smtp] 和 SMTP 服务器，用 `shenbao outbox list --status queued` 查看");
            }
            Check {
                name: "outbox",
                level,
                text,
            }
        }
    });
    let count = |name, n: i64, ok: &str, bad: String| Check {
        name,
        level: if n > 0 { Level::Warning } else { Level::Ok },
        text: if n > 0 { bad } else { ok.to_string() },
    };
    checks.push(count(
        "dead_letters",
        f.dead_letters,
        "已放弃的邮件：没有",
        format!(
            "已放弃的邮件：{} 封多次发送失败；修好后用 `shenbao outbox retry --all-dead` 重发",
            f.dead_letters
        ),
    ));
    checks.push(count(
        "failed_messages",
        f.failed_messages,
        "处理失败的邮件：没有",
        format!(
            "处理失败的邮件：{} 封；用 `shenbao status` 查看，修好后用 `shenbao reprocess --failed` 重新处理",
            f.failed_messages
        ),
    ));
    checks.push(count(
        "template_errors",
        f.template_errors.len() as i64,
        "模板：近 7 天没有出错",
        match f.template_errors.first() {
            Some(e) => format!(
                "模板：近 7 天出错 {} 次（已改用内置模板发出），最近一次 {}：{}；请修改 ack.templates_dir 中的模板，用 `shenbao check-config` 检查",
                f.template_errors.len(),
                e.template,
                e.error
            ),
            None => String::new(),
        },
    ));
    let level = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    Report { level, checks }
}

/// The template errors that still stand: an error recorded before its template file was last
/// changed (staff edited it since) or whose file is gone (the built-in is used again) is taken
/// as dealt with. Reads the files' modification times: the one bit of I/O in this module.
pub fn still_current(
    errors: Vec<TemplateError>,
    templates_dir: Option<&std::path::Path>,
) -> Vec<TemplateError> {
    errors
        .into_iter()
        .filter(|e| {
            let Some(path) = templates_dir.map(|d| d.join(&e.template)) else {
                return false;
            };
            match std::fs::metadata(&path).and_then(|m| m.modified()) {
                // Times in the database are whole seconds: an error in the same second as
                // the change came after it.
                Ok(changed) => {
                    use chrono::SubsecRound;
                    e.at >= DateTime::<Utc>::from(changed).trunc_subsecs(0)
                }
                Err(_) => false,
            }
        })
        .collect()
}

/// `status --json`: the figures and their judgement, for scripts.
pub fn to_json(f: &Figures, r: &Report, now: DateTime<Utc>) -> serde_json::Value {
    let beat = |b: &Option<Beat>| {
        b.as_ref().map(|b| {
            serde_json::json!({
                "at": crate::clock::beijing_rfc3339(b.at),
                "age_seconds": age(now, b.at).as_secs(),
                "ok": b.ok,
                "error": b.detail,
            })
        })
    };
    serde_json::json!({
        "generated_at": crate::clock::beijing_rfc3339(now),
        "level": r.level,
        "exit_code": r.level.exit_code(),
        "imap_last_contact": beat(&f.imap),
        "scheduler_last_step": beat(&f.scheduler),
        "outbox_waiting": f.outbox_waiting,
        "outbox_oldest_waiting_seconds": f.oldest_waiting_since.map(|s| age(now, s).as_secs()),
        "outbox_oldest_error": f.oldest_waiting_error,
        "dead_letters": f.dead_letters,
        "failed_messages": f.failed_messages,
        "template_errors": f.template_errors.iter().map(|e| serde_json::json!({
            "at": crate::clock::beijing_rfc3339(e.at),
            "template": e.template,
            "error": e.error,
            "message": e.message,
        })).collect::<Vec<_>>(),
        "checks": r.checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> HealthConfig {
        HealthConfig {
            imap_warning: Duration::from_secs(15 * 60),
            imap_critical: Duration::from_secs(3600),
            outbox_warning: Duration::from_secs(30 * 60),
            outbox_critical: Duration::from_secs(2 * 3600),
            scheduler_warning: Duration::from_secs(15 * 60),
            scheduler_critical: Duration::from_secs(3600),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-09-22T01:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn ago(minutes: i64) -> DateTime<Utc> {
        now() - chrono::Duration::minutes(minutes)
    }

    fn beat(minutes: i64) -> Option<Beat> {
        Some(Beat {
            at: ago(minutes),
            ok: true,
            detail: None,
        })
    }

    fn healthy() -> Figures {
        Figures {
            imap: beat(1),
            scheduler: beat(2),
            ..Figures::default()
        }
    }

    fn level_of(f: &Figures, name: &str) -> Level {
        let r = assess(f, &t(), now());
        r.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.level)
            .expect("check present")
    }

    #[test]
    fn a_running_daemon_with_nothing_pending_is_ok() {
        let r = assess(&healthy(), &t(), now());
        assert_eq!(r.level, Level::Ok, "{r:?}");
        assert_eq!(r.checks.len(), 6);
        assert!(
            r.checks[0].text.contains("1 分钟 前"),
            "{}",
            r.checks[0].text
        );
    }

    #[test]
    fn heartbeats_by_age() {
        for (minutes, want) in [
            (0, Level::Ok),
            (14, Level::Ok),
            (15, Level::Warning),
            (59, Level::Warning),
            (60, Level::Critical),
            (60 * 24, Level::Critical),
        ] {
            let f = Figures {
                imap: beat(minutes),
                ..healthy()
            };
            assert_eq!(level_of(&f, "imap"), want, "imap {minutes} min");
            let f = Figures {
                scheduler: beat(minutes),
                ..healthy()
            };
            assert_eq!(level_of(&f, "scheduler"), want, "scheduler {minutes} min");
        }
    }

    #[test]
    fn no_heartbeat_is_critical_and_says_what_to_start() {
        let f = Figures {
            imap: None,
            ..healthy()
        };
        let r = assess(&f, &t(), now());
        assert_eq!(r.level, Level::Critical);
        assert!(
            r.checks[0].text.contains("shenbao run"),
            "{}",
            r.checks[0].text
        );
    }

    #[test]
    fn a_failed_scheduler_step_warns_with_its_error() {
        let f = Figures {
            scheduler: Some(Beat {
                at: ago(1),
                ok: false,
                detail: Some("数据库被锁定".into()),
            }),
            ..healthy()
        };
        let r = assess(&f, &t(), now());
        assert_eq!(r.level, Level::Warning);
        assert!(
            r.checks[1].text.contains("数据库被锁定"),
            "{}",
            r.checks[1].text
        );
    }

    #[test]
    fn the_oldest_waiting_mail_decides_the_outbox() {
        for (minutes, want) in [
            (1, Level::Ok),
            (29, Level::Ok),
            (30, Level::Warning),
            (119, Level::Warning),
            (120, Level::Critical),
        ] {
            let f = Figures {
                outbox_waiting: 3,
                oldest_waiting_since: Some(ago(minutes)),
                oldest_waiting_error: Some("连接被拒绝".into()),
                ..healthy()
            };
            let r = assess(&f, &t(), now());
            assert_eq!(r.level, want, "{minutes} min: {r:?}");
            let text = &r.checks[2].text;
            assert!(text.contains("3 封等待发送"), "{text}");
            assert_eq!(text.contains("连接被拒绝"), want != Level::Ok, "{text}");
        }
    }

    #[test]
    fn counts_warn() {
        for (f, name) in [
            (
                Figures {
                    dead_letters: 2,
                    ..healthy()
                },
                "dead_letters",
            ),
            (
                Figures {
                    failed_messages: 1,
                    ..healthy()
                },
                "failed_messages",
            ),
            (
                Figures {
                    template_errors: vec![TemplateError {
                        at: ago(5),
                        template: "ack.txt.j2".into(),
                        error: "第 1 行：未知的名称“grettings”".into(),
                        message: Some(7),
                    }],
                    ..healthy()
                },
                "template_errors",
            ),
        ] {
            let r = assess(&f, &t(), now());
            assert_eq!(r.level, Level::Warning, "{name}");
            assert_eq!(level_of(&f, name), Level::Warning, "{name}");
            assert_eq!(
                r.checks.iter().filter(|c| c.level != Level::Ok).count(),
                1,
                "{name}: {r:?}"
            );
        }
    }

    #[test]
    fn the_worst_check_wins_and_exit_codes_follow() {
        let f = Figures {
            imap: beat(90),
            dead_letters: 1,
            ..healthy()
        };
        let r = assess(&f, &t(), now());
        assert_eq!(r.level, Level::Critical);
        assert_eq!(r.level.exit_code(), 2);
        assert_eq!(Level::Warning.exit_code(), 1);
        assert_eq!(Level::Ok.exit_code(), 0);
        let j = to_json(&f, &r, now());
        assert_eq!(j["level"], "critical");
        assert_eq!(j["exit_code"], 2);
        assert_eq!(j["imap_last_contact"]["age_seconds"], 90 * 60);
        assert_eq!(j["dead_letters"], 1);
        assert_eq!(j["checks"][0]["name"], "imap");
    }

    #[test]
    fn a_template_edited_after_its_error_counts_as_fixed() {
        let dir = std::env::temp_dir().join(format!("shenbao-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("ack.txt.j2"), "{{ greeting }}").expect("write");
        let changed: DateTime<Utc> = std::fs::metadata(dir.join("ack.txt.j2"))
            .and_then(|m| m.modified())
            .expect("mtime")
            .into();
        let error = |template: &str, at| TemplateError {
            at,
            template: template.into(),
            error: "x".into(),
            message: None,
        };
        let errors = vec![
            error("ack.txt.j2", changed + chrono::Duration::seconds(5)),
            error("ack.txt.j2", changed - chrono::Duration::seconds(5)),
            error("result.txt.j2", changed + chrono::Duration::seconds(5)),
        ];
        let kept = still_current(errors.clone(), Some(&dir));
        assert_eq!(kept, vec![errors[0].clone()]);
        assert!(still_current(errors, None).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ages_for_people() {
        for (secs, want) in [
            (5, "5 秒"),
            (60, "1 分钟"),
            (3599, "59 分钟"),
            (3600, "1 小时"),
            (3660, "1 小时 1 分钟"),
            (86_400, "1 天"),
            (90_000, "1 天 1 小时"),
        ] {
            assert_eq!(age_label(Duration::from_secs(secs)), want);
        }
    }
}
