//! Sending within the school's limits: how many recipients the SMTP account may still reach
//! now, and when the next one may go. Pure: the sender ([`crate::send`]) passes what it sent
//! and the clock.
//!
//! School and provider SMTP servers cap what one account sends per minute, hour or day (Coremail
//! and Exmail count recipients, not messages). Every mail of shenbao has its `To`, possibly a
//! `Cc` (the roster's secretary) and the copy to the intake mailbox, so a mail costs one to
//! three recipients, and the limits here count recipients the same way. Windows are rolling
//! (the last 60 s, 3600 s, 86400 s), as the servers' are.
//!
//! No crate does this: governor and similar limiters keep their state in memory, while the
//! state here is the outbox itself (what was sent when), which survives restarts and is shared
//! by every process that sends.

use chrono::{DateTime, Duration, Utc};

/// The configured caps (`smtp.max_per_minute`, `max_per_hour`, `max_per_day`), in recipients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub per_day: Option<u32>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.per_minute.is_none() && self.per_hour.is_none() && self.per_day.is_none()
    }

    fn windows(&self) -> impl Iterator<Item = (Duration, u32)> {
        [
            (Duration::minutes(1), self.per_minute),
            (Duration::hours(1), self.per_hour),
            (Duration::days(1), self.per_day),
        ]
        .into_iter()
        .filter_map(|(w, l)| l.map(|l| (w, l)))
    }

    /// The longest window that has a limit: sends older than this no longer count.
    pub fn horizon(&self) -> Duration {
        self.windows()
            .map(|(w, _)| w)
            .max()
            .unwrap_or_else(Duration::zero)
    }
}

/// What may be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Recipients that may still be reached now (`u32::MAX` without limits).
    pub now: u32,
    /// When at least `cost` more recipients fit, if they do not now.
    pub next_at: Option<DateTime<Utc>>,
}

/// Recipients used in the window ending at `now` (sends at `t` with `now - window < t <= now`).
fn used(sent: &[(DateTime<Utc>, u32)], window: Duration, now: DateTime<Utc>) -> u32 {
    sent.iter()
        .filter(|(t, _)| *t > now - window && *t <= now)
        .map(|(_, n)| *n)
        .sum()
}

/// How many recipients may be reached at `now` given what was `sent` (time, recipients), and,
/// when a mail of `cost` recipients does not fit, the earliest time it will.
pub fn allowance(
    limits: &Limits,
    sent: &[(DateTime<Utc>, u32)],
    cost: u32,
    now: DateTime<Utc>,
) -> Allowance {
    let mut free = u32::MAX;
    // A mail larger than a limit fits once that window is empty (it could never fit otherwise).
    let mut fits = true;
    for (window, limit) in limits.windows() {
        let room = limit.saturating_sub(used(sent, window, now));
        free = free.min(room);
        fits &= room >= cost.min(limit);
    }
    if fits {
        return Allowance {
            now: free,
            next_at: None,
        };
    }
    // The earliest moment every window has room for `cost`: for each window, the sends leave it
    // one by one, oldest first, each at its time + window.
    let mut at = now;
    for (window, limit) in limits.windows() {
        let mut in_window: Vec<&(DateTime<Utc>, u32)> = sent
            .iter()
            .filter(|(t, _)| *t > now - window && *t <= now)
            .collect();
        in_window.sort_by_key(|(t, _)| *t);
        let mut load = used(sent, window, now);
        let need = cost.min(limit);
        for (t, n) in in_window {
            if limit.saturating_sub(load) >= need {
                break;
            }
            load = load.saturating_sub(*n);
            at = at.max(*t + window);
        }
    }
    Allowance {
        now: free,
        next_at: Some(at.max(now + Duration::milliseconds(1))),
    }
}

/// When each mail of a queue (`costs`, in order) will go, sending each as soon as the limits
/// allow; empty without limits (as fast as the server takes them).
pub fn send_times(
    limits: &Limits,
    sent: &[(DateTime<Utc>, u32)],
    costs: &[u32],
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    if limits.is_unlimited() {
        return Vec::new();
    }
    let horizon = limits.horizon();
    let mut history: Vec<(DateTime<Utc>, u32)> = sent.to_vec();
    let mut out = Vec::with_capacity(costs.len());
    let mut t = now;
    for &cost in costs {
        // Sends that left every window no longer matter: keeps each step short.
        history.retain(|(s, _)| *s > t - horizon);
        while let Some(next) = allowance(limits, &history, cost, t).next_at {
            t = next;
        }
        history.push((t, cost));
        out.push(t);
    }
    out
}

/// When a queue of mails (`costs`, in order) will all have gone; `None` without limits.
pub fn finish_time(
    limits: &Limits,
    sent: &[(DateTime<Utc>, u32)],
    costs: &[u32],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if limits.is_unlimited() {
        return None;
    }
    Some(
        send_times(limits, sent, costs, now)
            .last()
            .copied()
            .unwrap_or(now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_758_000_000 + secs, 0).unwrap_or_default()
    }

    fn per_minute(n: u32) -> Limits {
        Limits {
            per_minute: Some(n),
            ..Limits::default()
        }
    }

    #[test]
    fn unlimited_is_always_free() {
        let a = allowance(&Limits::default(), &[(at(0), 1000)], 3, at(1));
        assert_eq!(a.now, u32::MAX);
        assert_eq!(a.next_at, None);
        assert_eq!(finish_time(&Limits::default(), &[], &[2; 100], at(0)), None);
    }

    #[test]
    fn room_left_in_the_minute() {
        let sent = [(at(0), 2), (at(10), 2)];
        let a = allowance(&per_minute(6), &sent, 2, at(20));
        assert_eq!(
            a,
            Allowance {
                now: 2,
                next_at: None
            }
        );
    }

    #[test]
    fn full_minute_frees_when_the_oldest_leaves() {
        let sent = [(at(0), 2), (at(10), 2), (at(20), 2)];
        let a = allowance(&per_minute(6), &sent, 2, at(30));
        assert_eq!(a.now, 0);
        assert_eq!(a.next_at, Some(at(60)));
        // Needing 4 waits for two to leave.
        let a = allowance(&per_minute(6), &sent, 4, at(30));
        assert_eq!(a.next_at, Some(at(70)));
    }

    #[test]
    fn sends_older_than_the_window_do_not_count() {
        let sent = [(at(0), 6)];
        assert_eq!(allowance(&per_minute(6), &sent, 2, at(60)).now, 6);
        assert_eq!(allowance(&per_minute(6), &sent, 2, at(59)).now, 0);
    }

    #[test]
    fn the_tightest_window_wins() {
        let limits = Limits {
            per_minute: Some(100),
            per_hour: Some(10),
            per_day: Some(1000),
        };
        let sent = [(at(0), 4), (at(600), 4)];
        let a = allowance(&limits, &sent, 3, at(700));
        assert_eq!(a.now, 2);
        assert_eq!(a.next_at, Some(at(3600)));
    }

    #[test]
    fn a_mail_larger_than_the_limit_still_goes_when_the_window_is_empty() {
        // 3 recipients against a cap of 2: it can never "fit", so it waits for an empty window.
        let sent = [(at(0), 2)];
        let a = allowance(&per_minute(2), &sent, 3, at(10));
        assert_eq!(a.next_at, Some(at(60)));
    }

    #[test]
    fn a_queue_is_spread_over_the_minutes() {
        // 10 mails of 2 recipients at 6 per minute: 3 a minute, the last in the 4th minute.
        let done = finish_time(&per_minute(6), &[], &[2; 10], at(0));
        assert_eq!(done, Some(at(180)));
        // Per hour: 20 recipients in an hour, 15 mails of 2 → the last waits an hour.
        let hourly = Limits {
            per_hour: Some(20),
            ..Limits::default()
        };
        assert_eq!(finish_time(&hourly, &[], &[2; 15], at(0)), Some(at(3600)));
    }

    #[test]
    fn send_times_of_a_queue() {
        let times = send_times(&per_minute(4), &[(at(-30), 2)], &[2, 2, 2, 3], at(0));
        // Room for one in the current minute, then each waits for the oldest to leave; a
        // 3-recipient mail needs three free, so both sends of the last minute must leave.
        assert_eq!(times, [at(0), at(30), at(60), at(120)]);
    }

    #[test]
    fn horizon_is_the_longest_limited_window() {
        assert_eq!(per_minute(5).horizon(), Duration::minutes(1));
        let l = Limits {
            per_minute: Some(5),
            per_day: Some(500),
            ..Limits::default()
        };
        assert_eq!(l.horizon(), Duration::days(1));
        assert_eq!(Limits::default().horizon(), Duration::zero());
    }
}
