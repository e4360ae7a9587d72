//! What 需人工处理 and 发件箱 show, decided from plain data: an outbox mail's state and the
//! filters over it, and the one-line message a page shows after a staff action (a code in the
//! query, so the words are always ours). Pure: the page modules (`web/staff.rs`,
//! `web/outbox.rs`) read the store and render.

use serde::Serialize;

/// An outbox mail's state as staff see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutboxState {
    /// Queued and never tried.
    Queued,
    /// Queued again after a failed attempt.
    Retrying,
    Sending,
    /// A send was cut off; the daemon checks whether it arrived.
    Unconfirmed,
    Sent,
    /// Given up on.
    Dead,
}

impl OutboxState {
    /// The state of a row with `status` (queued | sending | unconfirmed | sent | dead) after
    /// `attempts` attempts; `None` for a status shenbao does not write.
    pub fn of(status: &str, attempts: i64) -> Option<OutboxState> {
        Some(match status {
            "queued" if attempts > 0 => OutboxState::Retrying,
            "queued" => OutboxState::Queued,
            "sending" => OutboxState::Sending,
            "unconfirmed" => OutboxState::Unconfirmed,
            "sent" => OutboxState::Sent,
            "dead" => OutboxState::Dead,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            OutboxState::Queued => "待发送",
            OutboxState::Retrying => "等待重试",
            OutboxState::Sending => "正在发送",
            OutboxState::Unconfirmed => "发送中断，待确认",
            OutboxState::Sent => "已发出",
            OutboxState::Dead => "已放弃",
        }
    }

    /// Whether `outbox retry` puts it back in the queue (a failed mail, not one in flight
    /// or sent).
    pub fn retryable(self) -> bool {
        matches!(self, OutboxState::Dead | OutboxState::Retrying)
    }
}

/// Which outbox mails the 发件箱 page lists (`?state=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum OutboxView {
    /// Everything not sent yet, dead letters included: what staff look at.
    #[default]
    Unsent,
    /// Not tried yet, or on its way.
    Queued,
    Retrying,
    Dead,
    Sent,
    All,
}

impl OutboxView {
    pub const ALL: [OutboxView; 6] = [
        OutboxView::Unsent,
        OutboxView::Queued,
        OutboxView::Retrying,
        OutboxView::Dead,
        OutboxView::Sent,
        OutboxView::All,
    ];

    pub fn code(self) -> &'static str {
        match self {
            OutboxView::Unsent => "unsent",
            OutboxView::Queued => "queued",
            OutboxView::Retrying => "retrying",
            OutboxView::Dead => "dead",
            OutboxView::Sent => "sent",
            OutboxView::All => "all",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OutboxView::Unsent => "未发出",
            OutboxView::Queued => "待发送",
            OutboxView::Retrying => "等待重试",
            OutboxView::Dead => "已放弃",
            OutboxView::Sent => "已发出",
            OutboxView::All => "全部",
        }
    }

    /// The view of `?state=`; the default for a missing or unknown one.
    pub fn from_code(code: Option<&str>) -> OutboxView {
        OutboxView::ALL
            .into_iter()
            .find(|v| Some(v.code()) == code)
            .unwrap_or_default()
    }

    pub fn includes(self, s: OutboxState) -> bool {
        match self {
            OutboxView::Unsent => s != OutboxState::Sent,
            OutboxView::Queued => matches!(
                s,
                OutboxState::Queued | OutboxState::Sending | OutboxState::Unconfirmed
            ),
            OutboxView::Retrying => s == OutboxState::Retrying,
            OutboxView::Dead => s == OutboxState::Dead,
            OutboxView::Sent => s == OutboxState::Sent,
            OutboxView::All => true,
        }
    }

    /// Whether the view needs the sent mails (there may be tens of thousands).
    pub fn needs_sent(self) -> bool {
        matches!(self, OutboxView::Sent | OutboxView::All)
    }
}

/// How many mails each view lists, from the counts per state.
pub fn view_counts(states: &[(OutboxState, usize)]) -> Vec<(OutboxView, usize)> {
    OutboxView::ALL
        .into_iter()
        .map(|v| {
            (
                v,
                states
                    .iter()
                    .filter(|(s, _)| v.includes(*s))
                    .map(|(_, n)| n)
                    .sum(),
            )
        })
        .collect()
}

/// The line a page shows after an action: done, or refused with what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

impl Flash {
    fn ok(text: String) -> Option<Flash> {
        Some(Flash { ok: true, text })
    }

    fn error(text: String) -> Option<Flash> {
        Some(Flash { ok: false, text })
    }
}

/// What an action on a mail that waits for staff ended in, as the query of the page it
/// returns to carries it (`?done=resolved&id=12`, `?error=unknown_branch&id=12&branch=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffOutcome {
    Resolved,
    Assigned,
    NoSuchMessage,
    NotForStaff,
    NotReplayable,
    NotProcessed,
    NoSuggestion,
    UnknownBranch,
}

impl StaffOutcome {
    const ALL: [StaffOutcome; 8] = [
        StaffOutcome::Resolved,
        StaffOutcome::Assigned,
        StaffOutcome::NoSuchMessage,
        StaffOutcome::NotForStaff,
        StaffOutcome::NotReplayable,
        StaffOutcome::NotProcessed,
        StaffOutcome::NoSuggestion,
        StaffOutcome::UnknownBranch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            StaffOutcome::Resolved => "resolved",
            StaffOutcome::Assigned => "assigned",
            StaffOutcome::NoSuchMessage => "no_message",
            StaffOutcome::NotForStaff => "not_for_staff",
            StaffOutcome::NotReplayable => "not_replayable",
            StaffOutcome::NotProcessed => "not_processed",
            StaffOutcome::NoSuggestion => "no_suggestion",
            StaffOutcome::UnknownBranch => "unknown_branch",
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(self, StaffOutcome::Resolved | StaffOutcome::Assigned)
    }

    pub fn from_code(code: &str) -> Option<StaffOutcome> {
        StaffOutcome::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The query that carries it: `done=…` or `error=…`, with the mail and, for an unknown
    /// branch, what was typed.
    pub fn query(self, id: i64, branch: Option<&str>) -> String {
        let key = if self.is_ok() { "done" } else { "error" };
        let mut q = format!("{key}={}&id={id}", self.code());
        if let Some(b) = branch.filter(|_| self == StaffOutcome::UnknownBranch) {
            q.push_str("&branch=");
            q.push_str(&percent(b));
        }
        q
    }
}

/// The words for `outcome` on mail `id`. `branch` is the mail's branch now (after an
/// assignment) or what was typed (an unknown branch); `near` the roster's names close to it.
pub fn staff_flash(
    outcome: StaffOutcome,
    id: i64,
    branch: Option<&str>,
    near: &[String],
) -> Option<Flash> {
    let b = branch.unwrap_or_default();
    match outcome {
        StaffOutcome::Resolved => Flash::ok(format!(
            "邮件 #{id} 已标为处理完毕，不再列入待人工处理的邮件（见下方“最近处理的邮件”）。"
        )),
        StaffOutcome::Assigned => Flash::ok(format!(
            "邮件 #{id} 已登记为“{b}”的材料，回执已放入发件箱，守护进程会随即发送。"
        )),
        StaffOutcome::NoSuchMessage => Flash::error(format!(
            "没有编号为 #{id} 的邮件：请刷新本页，从列表中选择。"
        )),
        StaffOutcome::NotForStaff => Flash::error(format!(
            "邮件 #{id} 已经处理过（或不需要人工处理），无需再标记：请刷新本页查看最新的列表。"
        )),
        StaffOutcome::NotReplayable => Flash::error(format!(
            "邮件 #{id} 是本系统自己发出邮件的副本或超过大小上限未读取的邮件，不能登记到支部：请查看原始邮件，处理后标为已处理。"
        )),
        StaffOutcome::NotProcessed => Flash::error(format!(
            "邮件 #{id} 还在等待守护进程处理：请过几秒刷新本页再试。"
        )),
        StaffOutcome::NoSuggestion => Flash::error(format!(
            "邮件 #{id} 的申请表中没有名册里的支部：请在“登记到支部”中选择或输入支部名称。"
        )),
        StaffOutcome::UnknownBranch => Flash::error(format!(
            "名册中找不到支部“{b}”{}：请从列表中选择名册里的完整名称后再登记。",
            if near.is_empty() {
                String::new()
            } else {
                format!("（相近的有：{}）", near.join("、"))
            }
        )),
    }
}

/// What a retry on the 发件箱 page ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    Requeued,
    AlreadyQueued,
    AllDeadRequeued,
    NoDead,
    AlreadySent,
    InFlight,
    Unknown,
}

impl RetryOutcome {
    const ALL: [RetryOutcome; 7] = [
        RetryOutcome::Requeued,
        RetryOutcome::AlreadyQueued,
        RetryOutcome::AllDeadRequeued,
        RetryOutcome::NoDead,
        RetryOutcome::AlreadySent,
        RetryOutcome::InFlight,
        RetryOutcome::Unknown,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RetryOutcome::Requeued => "requeued",
            RetryOutcome::AlreadyQueued => "already_queued",
            RetryOutcome::AllDeadRequeued => "all_dead_requeued",
            RetryOutcome::NoDead => "no_dead",
            RetryOutcome::AlreadySent => "already_sent",
            RetryOutcome::InFlight => "in_flight",
            RetryOutcome::Unknown => "unknown",
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(
            self,
            RetryOutcome::Requeued
                | RetryOutcome::AlreadyQueued
                | RetryOutcome::AllDeadRequeued
                | RetryOutcome::NoDead
        )
    }

    pub fn from_code(code: &str) -> Option<RetryOutcome> {
        RetryOutcome::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The query that carries it: `done=…&n=…` or `error=…&n=…` (`n`: the mail's number, or
    /// how many were requeued).
    pub fn query(self, n: i64) -> String {
        let key = if self.is_ok() { "done" } else { "error" };
        format!("{key}={}&n={n}", self.code())
    }
}

/// The words for `outcome`; `n` is the mail's number, or how many were put back.
pub fn retry_flash(outcome: RetryOutcome, n: i64) -> Option<Flash> {
    match outcome {
        RetryOutcome::Requeued => Flash::ok(format!(
            "#{n} 已重新排队，重试次数从头计算；守护进程会随即发送，稍后刷新本页查看结果。"
        )),
        RetryOutcome::AlreadyQueued => Flash::ok(format!(
            "#{n} 已在发件箱中等待发送，还没有失败过，无需重发。"
        )),
        RetryOutcome::AllDeadRequeued => Flash::ok(format!(
            "已把 {n} 封已放弃的邮件重新排队，重试次数从头计算；守护进程会随即发送，稍后刷新本页查看结果。"
        )),
        RetryOutcome::NoDead => Flash::ok("没有已放弃的邮件，无需重发。".to_string()),
        RetryOutcome::AlreadySent => Flash::error(format!(
            "#{n} 已经发出，不会再发一次：对方说没有收到时，请先请对方查看垃圾邮件；确需再发，请对方重新发来邮件。"
        )),
        RetryOutcome::InFlight => Flash::error(format!(
            "#{n} 正在发送或正在确认是否已送达，现在重发可能让对方收到两封：请稍后刷新本页，若最终发送失败再重发。"
        )),
        RetryOutcome::Unknown => Flash::error(format!(
            "发件箱中没有编号为 #{n} 的邮件：请刷新本页后从列表中选择。"
        )),
    }
}

/// The note kept with a mail marked handled on the board: who did it, and what they wrote.
pub fn resolve_note(user: &str, note: &str) -> String {
    let note: String = note.trim().chars().take(NOTE_MAX).collect();
    if note.is_empty() {
        format!("{user}（看板）")
    } else {
        format!("{user}（看板）：{note}")
    }
}

/// The longest note kept, in characters.
pub const NOTE_MAX: usize = 500;

/// A size for people: `812 字节`, `12.3 KB`, `4.1 MB`.
pub fn size_text(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} 字节")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Percent-encodes `s` for a query value (everything but unreserved ASCII).
pub fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_states_from_status_and_attempts() {
        assert_eq!(OutboxState::of("queued", 0), Some(OutboxState::Queued));
        assert_eq!(OutboxState::of("queued", 2), Some(OutboxState::Retrying));
        assert_eq!(OutboxState::of("dead", 8), Some(OutboxState::Dead));
        assert_eq!(OutboxState::of("sent", 1), Some(OutboxState::Sent));
        assert_eq!(
            OutboxState::of("unconfirmed", 1),
            Some(OutboxState::Unconfirmed)
        );
        assert_eq!(OutboxState::of("sending", 1), Some(OutboxState::Sending));
        assert_eq!(OutboxState::of("weird", 0), None);
        assert!(OutboxState::Dead.retryable() && OutboxState::Retrying.retryable());
        assert!(!OutboxState::Sent.retryable() && !OutboxState::Queued.retryable());
        assert!(!OutboxState::Unconfirmed.retryable());
    }

    #[test]
    fn views_and_their_counts() {
        for v in OutboxView::ALL {
            assert_eq!(OutboxView::from_code(Some(v.code())), v);
        }
        assert_eq!(OutboxView::from_code(None), OutboxView::Unsent);
        assert_eq!(OutboxView::from_code(Some("<x>")), OutboxView::Unsent);
        let counts = view_counts(&[
            (OutboxState::Queued, 2),
            (OutboxState::Retrying, 1),
            (OutboxState::Unconfirmed, 1),
            (OutboxState::Dead, 3),
            (OutboxState::Sent, 10),
        ]);
        let got: Vec<(&str, usize)> = counts.iter().map(|(v, n)| (v.code(), *n)).collect();
        assert_eq!(
            got,
            [
                ("unsent", 7),
                ("queued", 3),
                ("retrying", 1),
                ("dead", 3),
                ("sent", 10),
                ("all", 17)
            ]
        );
        assert!(OutboxView::Sent.needs_sent() && OutboxView::All.needs_sent());
        assert!(!OutboxView::Unsent.needs_sent());
    }

    #[test]
    fn staff_outcomes_round_trip_through_the_query() {
        for o in StaffOutcome::ALL {
            assert_eq!(StaffOutcome::from_code(o.code()), Some(o));
            let f = staff_flash(o, 12, Some("某支部"), &[]).expect("words");
            assert_eq!(f.ok, o.is_ok(), "{o:?}");
            assert!(f.text.contains("12") || f.text.contains("某支部"), "{f:?}");
            assert!(f.text.ends_with('。'), "{f:?}");
        }
        assert_eq!(StaffOutcome::from_code("x"), None);
        assert_eq!(
            StaffOutcome::Resolved.query(3, Some("x")),
            "done=resolved&id=3"
        );
        assert_eq!(
            StaffOutcome::UnknownBranch.query(3, Some("甲 &b")),
            "error=unknown_branch&id=3&branch=%E7%94%B2%20%26b"
        );
        let f = staff_flash(
            StaffOutcome::UnknownBranch,
            3,
            Some("土木一"),
            &["土木一支部".to_string(), "土木二支部".to_string()],
        )
        .expect("words");
        assert_eq!(
            f.text,
            "名册中找不到支部“土木一”（相近的有：土木一支部、土木二支部）：请从列表中选择名册里的完整名称后再登记。"
        );
    }

    #[test]
    fn retry_outcomes_round_trip_through_the_query() {
        for o in RetryOutcome::ALL {
            assert_eq!(RetryOutcome::from_code(o.code()), Some(o));
            let f = retry_flash(o, 7).expect("words");
            assert_eq!(f.ok, o.is_ok(), "{o:?}");
        }
        assert_eq!(RetryOutcome::Requeued.query(7), "done=requeued&n=7");
        assert_eq!(RetryOutcome::AlreadySent.query(7), "error=already_sent&n=7");
        assert!(
            retry_flash(RetryOutcome::AllDeadRequeued, 3)
                .expect("words")
                .text
                .starts_with("已把 3 封")
        );
    }

    #[test]
    fn notes_name_who_and_are_bounded() {
        assert_eq!(resolve_note("王老师", "  "), "王老师（看板）");
        assert_eq!(
            resolve_note("王老师", " 已电话答复 "),
            "王老师（看板）：已电话答复"
        );
        let long = "字".repeat(NOTE_MAX + 10);
        assert_eq!(
            resolve_note("王", &long).chars().count(),
            "王（看板）：".chars().count() + NOTE_MAX
        );
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size_text(812), "812 字节");
        assert_eq!(size_text(12_600), "12.3 KB");
        assert_eq!(size_text(4_300_000), "4.1 MB");
    }
}
