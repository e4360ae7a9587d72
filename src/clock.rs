//! The one clock of the daemon.
//!
//! Every "now" in shenbao comes from here, so tests (and `--at`) can run a whole campaign on a
//! set time. A set clock still advances with real time from the instant it was set: timeouts,
//! rate-limit windows and "received at" stamps keep their order.

use chrono::{DateTime, Utc};
use std::time::Instant;

/// The environment variable that sets the clock for a whole process (tests use it).
pub const CLOCK_ENV: &str = "SHENBAO_NOW";

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// Starts at `start` when `origin` was taken and advances with real time.
    Set {
        start: DateTime<Utc>,
        origin: Instant,
    },
}

impl Clock {
    /// A clock set to `start`.
    pub fn set(start: DateTime<Utc>) -> Clock {
        Clock::Set {
            start,
            origin: Instant::now(),
        }
    }

    /// The system clock, unless `SHENBAO_NOW` holds an RFC 3339 instant.
    pub fn from_env() -> Result<Clock, String> {
        match std::env::var(CLOCK_ENV) {
            Ok(v) if !v.trim().is_empty() => DateTime::parse_from_rfc3339(v.trim())
                .map(|t| Clock::set(t.with_timezone(&Utc)))
                .map_err(|e| format!("环境变量 {CLOCK_ENV}={v} 不是 RFC 3339 时间（{e}），例如 2025-09-20T09:00:00+08:00")),
            _ => Ok(Clock::System),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Set { start, origin } => {
                let elapsed = chrono::Duration::from_std(origin.elapsed()).unwrap_or_default();
                *start + elapsed
            }
        }
    }
}

/// Beijing time for people: `2025年9月22日 09:41:42`.
pub fn beijing(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y年%-m月%-d日 %H:%M:%S")
        .to_string()
}

/// RFC 3339 in Beijing time (`+08:00`), for exports.
pub fn beijing_rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clock_advances_from_its_start() {
        let start = DateTime::parse_from_rfc3339("2025-09-20T09:00:00+08:00")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid");
        let c = Clock::set(start);
        let a = c.now();
        assert!(a >= start && a < start + chrono::Duration::seconds(5));
    }

    #[test]
    fn beijing_formatting() {
        let t = "2025-09-22T01:41:42Z"
            .parse::<DateTime<Utc>>()
            .expect("valid");
        assert_eq!(beijing(t), "2025年9月22日 09:41:42");
        assert_eq!(beijing_rfc3339(t), "2025-09-22T09:41:42+08:00");
    }
}
