//! Who is logged in, and who may try again: sessions with their CSRF tokens, and the
//! rate limit on failed logins. Pure: the time is passed in (the App's clock) and the random
//! tokens are made by the caller, so every rule here is tested without a server.

use crate::config::WebRole;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: WebRole,
    /// Every POST of this session must carry it (form field `csrf`).
    pub csrf: String,
    pub last_seen: DateTime<Utc>,
    /// The campaign this session looks at (`None`: the board's own, the current one).
    pub campaign: Option<String>,
}

/// The sessions of this process, by cookie token. They live in memory: a restart logs
/// everyone out, which is what a daemon restart should do.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

impl Sessions {
    /// Starts a session under `token` (random, from the caller).
    pub fn start(
        &mut self,
        token: String,
        user: &str,
        role: WebRole,
        csrf: String,
        now: DateTime<Utc>,
    ) {
        self.by_token.insert(
            token,
            Session {
                user: user.to_string(),
                role,
                csrf,
                last_seen: now,
                campaign: None,
            },
        );
    }

    /// Makes the session of `token` look at `campaign` (`None`: the board's own); `false`
    /// when there is no such session.
    pub fn choose_campaign(&mut self, token: &str, campaign: Option<String>) -> bool {
        match self.by_token.get_mut(token) {
            Some(s) => {
                s.campaign = campaign;
                true
            }
            None => false,
        }
    }

    /// The session of `token` if it has been used within `idle`; using it renews it. An
    /// expired session is forgotten.
    pub fn touch(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
        idle: std::time::Duration,
    ) -> Option<Session> {
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
        let s = self.by_token.get_mut(token)?;
        if now.signed_duration_since(s.last_seen) > idle {
            self.by_token.remove(token);
            return None;
        }
        s.last_seen = s.last_seen.max(now);
        Some(s.clone())
    }

    /// The session of `token` if it has been used within `idle`, without renewing it: for
    /// what runs on its own, like the live updates of an open page, which must not keep an
    /// unattended screen logged in.
    pub fn peek(
        &self,
        token: &str,
        now: DateTime<Utc>,
        idle: std::time::Duration,
    ) -> Option<&Session> {
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
        self.by_token
            .get(token)
            .filter(|s| now.signed_duration_since(s.last_seen) <= idle)
    }

    pub fn end(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    /// Forgets every session idle for longer than `idle` (called now and then).
    pub fn sweep(&mut self, now: DateTime<Utc>, idle: std::time::Duration) {
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
        self.by_token
            .retain(|_, s| now.signed_duration_since(s.last_seen) <= idle);
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a POST carrying `sent` may go on for `session`: the token matches, and the role
/// may act unless the POST is only about the session itself (logout).
pub fn may_post(session: &Session, sent: Option<&str>, acts: bool) -> Result<(), Refusal> {
    match sent {
        Some(t) if same_token(t, &session.csrf) => {}
        _ => return Err(Refusal::Csrf),
    }
    if acts && !session.role.may_act() {
        return Err(Refusal::Role);
    }
    Ok(())
}

/// Why a POST was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Csrf,
    Role,
    /// `shenbao web`: the board alone, without the daemon.
    ReadOnly,
}

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::Csrf => {
                "表单已过期或不是从本看板提交的（缺少或不符的 CSRF 令牌）：请刷新页面后重试。"
            }
            Refusal::Role => "评审专家账号只能查看，不能操作：需要操作时请用工作人员账号登录。",
            Refusal::ReadOnly => {
                "这是只读看板（shenbao web），不能操作：请到运行守护进程（shenbao run）的看板上操作。"
            }
        }
    }
}

/// The client a login limit counts against: the peer, or — behind a reverse proxy on this
/// machine (`web.behind_proxy`) — the address the proxy puts in `X-Real-IP`. The header is
/// believed only from a loopback peer, so a client cannot choose its own address.
pub fn client_addr(
    peer: core::net::IpAddr,
    real_ip: Option<&str>,
    behind_proxy: bool,
) -> core::net::IpAddr {
    if behind_proxy
        && peer.is_loopback()
        && let Some(ip) = real_ip.and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer
}

/// Failures allowed before a key has to wait.
pub const FREE_FAILURES: u32 = 5;
/// The first wait; each further failure doubles it, up to [`MAX_WAIT`].
pub const FIRST_WAIT: chrono::Duration = chrono::Duration::minutes(1);
pub const MAX_WAIT: chrono::Duration = chrono::Duration::hours(1);
/// Failures older than this (with no wait running) are forgotten.
pub const FORGET_AFTER: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

/// Failed logins per key (`user:NAME` and `addr:IP`): after [`FREE_FAILURES`] failures a key
/// waits, longer with every further failure.
#[derive(Debug, Default)]
pub struct Limiter {
    keys: HashMap<String, Failures>,
}

impl Limiter {
    /// `Err(seconds to wait)` when `key` may not try now.
    pub fn check(&mut self, key: &str, now: DateTime<Utc>) -> Result<(), i64> {
        let Some(f) = self.keys.get(key).copied() else {
            return Ok(());
        };
        match f.until {
            Some(until) if until > now => Err((until - now).num_seconds().max(1)),
            _ if now - f.last > FORGET_AFTER => {
                self.keys.remove(key);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Records a failure of `key`.
    pub fn fail(&mut self, key: &str, now: DateTime<Utc>) {
        let f = self.keys.entry(key.to_string()).or_insert(Failures {
            count: 0,
            last: now,
            until: None,
        });
        if now - f.last > FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        if f.count >= FREE_FAILURES {
            let doublings = (f.count - FREE_FAILURES).min(10);
            let wait = (FIRST_WAIT * 2i32.pow(doublings)).min(MAX_WAIT);
            f.until = Some(now + wait);
        }
    }

    /// A successful login clears `key`.
    pub fn succeed(&mut self, key: &str) {
        self.keys.remove(key);
    }
}

/// “请 N 分钟后再试” in words, from seconds.
pub fn wait_text(seconds: i64) -> String {
    if seconds < 60 {
        format!("{seconds} 秒")
    } else {
        format!("{} 分钟", (seconds + 59) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_758_000_000 + s, 0).expect("time")
    }

    const IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    #[test]
    fn sessions_expire_when_idle_and_are_renewed_by_use() {
        let mut s = Sessions::default();
        s.start("tok".into(), "王老师", WebRole::Staff, "c".into(), t(0));
        assert!(s.touch("tok", t(29 * 60), IDLE).is_some());
        // Renewed at 29 min: still valid at 58 min.
        assert!(s.touch("tok", t(58 * 60), IDLE).is_some());
        // 30 min + 1 s after the last use: gone, and forgotten.
        assert!(s.touch("tok", t(88 * 60 + 1), IDLE).is_none());
        assert!(s.is_empty());
        assert!(s.touch("other", t(0), IDLE).is_none());
    }

    #[test]
    fn peeking_does_not_renew_a_session() {
        let mut s = Sessions::default();
        s.start("tok".into(), "王老师", WebRole::Staff, "c".into(), t(0));
        assert_eq!(
            s.peek("tok", t(20 * 60), IDLE).map(|x| x.last_seen),
            Some(t(0))
        );
        assert!(s.peek("tok", t(30 * 60), IDLE).is_some());
        // Peeked at 20 min, yet gone at 30 min + 1 s: only use renews.
        assert!(s.peek("tok", t(30 * 60 + 1), IDLE).is_none());
        assert!(s.peek("other", t(0), IDLE).is_none());
        s.end("tok");
        assert!(s.peek("tok", t(0), IDLE).is_none());
    }

    #[test]
    fn exactly_the_idle_timeout_is_still_valid() {
        let mut s = Sessions::default();
        s.start("tok".into(), "a", WebRole::Reviewer, "c".into(), t(0));
        assert!(s.touch("tok", t(30 * 60), IDLE).is_some());
    }

    #[test]
    fn a_clock_going_back_does_not_shorten_a_session() {
        let mut s = Sessions::default();
        s.start("tok".into(), "a", WebRole::Reviewer, "c".into(), t(100));
        assert_eq!(
            s.touch("tok", t(50), IDLE).map(|x| x.last_seen),
            Some(t(100))
        );
    }

    #[test]
    fn logout_and_sweep_forget_sessions() {
        let mut s = Sessions::default();
        s.start("a".into(), "a", WebRole::Staff, "c".into(), t(0));
        s.start("b".into(), "b", WebRole::Staff, "c".into(), t(20 * 60));
        s.end("a");
        assert_eq!(s.len(), 1);
        s.sweep(t(51 * 60), IDLE);
        assert!(s.is_empty());
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        for (a, b) in [
            ("abc", "abd"),
            ("abc", "ab"),
            ("", ""),
            ("abc", ""),
            ("ABC", "abc"),
        ] {
            assert!(!same_token(a, b), "{a} vs {b}");
        }
    }

    #[test]
    fn posts_need_the_token_and_actions_need_staff() {
        let staff = Session {
            user: "s".into(),
            role: WebRole::Staff,
            csrf: "tok".into(),
            last_seen: t(0),
            campaign: None,
        };
        let reviewer = Session {
            role: WebRole::Reviewer,
            ..staff.clone()
        };
        let cases = [
            (&staff, Some("tok"), true, Ok(())),
            (&staff, Some("tok"), false, Ok(())),
            (&staff, None, false, Err(Refusal::Csrf)),
            (&staff, Some("bad"), true, Err(Refusal::Csrf)),
            (&staff, Some(""), false, Err(Refusal::Csrf)),
            (&reviewer, Some("tok"), false, Ok(())),
            (&reviewer, Some("tok"), true, Err(Refusal::Role)),
            (&reviewer, None, true, Err(Refusal::Csrf)),
        ];
        for (s, sent, acts, want) in cases {
            assert_eq!(
                may_post(s, sent, acts),
                want,
                "{:?} {sent:?} {acts}",
                s.role
            );
        }
    }

    #[test]
    fn five_failures_then_a_wait_that_grows() {
        let mut l = Limiter::default();
        for i in 0..4 {
            l.fail("user:a", t(i));
            assert_eq!(l.check("user:a", t(i)), Ok(()), "failure {}", i + 1);
        }
        l.fail("user:a", t(4));
        assert_eq!(l.check("user:a", t(4)), Err(60));
        assert_eq!(l.check("user:a", t(34)), Err(30));
        assert_eq!(l.check("user:a", t(64)), Ok(()));
        // The sixth failure doubles the wait.
        l.fail("user:a", t(64));
        assert_eq!(l.check("user:a", t(64)), Err(120));
        // Other keys are not affected.
        assert_eq!(l.check("user:b", t(64)), Ok(()));
        assert_eq!(l.check("addr:127.0.0.1", t(64)), Ok(()));
    }

    #[test]
    fn the_wait_is_capped_and_old_failures_are_forgotten() {
        let mut l = Limiter::default();
        for i in 0..30 {
            l.fail("k", t(i));
        }
        assert_eq!(l.check("k", t(29)), Err(3600));
        // An hour after the wait ends, the failures are forgotten.
        assert_eq!(l.check("k", t(29 + 3600 + 3601)), Ok(()));
        l.fail("k", t(29 + 3600 + 3602));
        assert_eq!(l.check("k", t(29 + 3600 + 3602)), Ok(()));
    }

    #[test]
    fn success_clears_the_failures() {
        let mut l = Limiter::default();
        for i in 0..4 {
            l.fail("k", t(i));
        }
        l.succeed("k");
        l.fail("k", t(5));
        assert_eq!(l.check("k", t(5)), Ok(()));
    }

    #[test]
    fn the_client_behind_a_proxy() {
        let ip = |s: &str| s.parse::<core::net::IpAddr>().expect("ip");
        let cases = [
            ("127.0.0.1", Some("203.0.113.7"), true, "203.0.113.7"),
            ("::1", Some(" 2001:db8::1 "), true, "2001:db8::1"),
            // Not behind a proxy: the header is ignored.
            ("127.0.0.1", Some("203.0.113.7"), false, "127.0.0.1"),
            // From elsewhere the header is a client's claim: ignored.
            ("198.51.100.2", Some("203.0.113.7"), true, "198.51.100.2"),
            ("127.0.0.1", Some("garbage"), true, "127.0.0.1"),
            ("127.0.0.1", None, true, "127.0.0.1"),
        ];
        for (peer, header, proxy, want) in cases {
            assert_eq!(
                client_addr(ip(peer), header, proxy),
                ip(want),
                "{peer} {header:?} {proxy}"
            );
        }
    }

    #[test]
    fn waits_in_words() {
        assert_eq!(wait_text(1), "1 秒");
        assert_eq!(wait_text(59), "59 秒");
        assert_eq!(wait_text(60), "1 分钟");
        assert_eq!(wait_text(61), "2 分钟");
        assert_eq!(wait_text(3600), "60 分钟");
    }
}
