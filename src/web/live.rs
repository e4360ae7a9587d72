//! Live (实时更新): the open pages follow the database without being reloaded. `GET /events`
//! is a server-sent event stream that sends `change` with 总览's figures whenever the
//! database changed; `/static/live.js` (embedded, the board's only script) writes them into
//! the elements marked `data-live="<key>"` and fetches the page's `data-live-region`s again
//! (the charts, 支部's list) unless someone is typing in a form. Without script the pages
//! work as before, only without updating themselves.
//!
//! How a change is noticed: one task polls the store's
//! [`data_version`](crate::store::Store::data_version) every [`POLL`] and publishes it on a
//! `watch` channel when it moves. Polling rather than a signal that the pipeline, the
//! outbox sender and the staff actions would poke, because the version also moves for what
//! no task of this process knows about — a `shenbao` command run beside the daemon (`ingest`,
//! `outbox retry`, `review import`), or the daemon itself when the board runs alone under
//! `shenbao web` on the same database. It is cheap: `PRAGMA data_version` on a read-only
//! connection of its own, which reads no page, and the task only asks while at least one
//! page listens. Each stream then reads the figures from the board's shared snapshot (read
//! once per version, however many pages are open) and sends them only when they differ
//! from what it sent last, at most one event per [`MIN_GAP`]; a comment every
//! [`KEEP_ALIVE`] keeps proxies from closing an idle stream. A stream ends with its session
//! (logout, idle timeout: checked without renewing it, so a screen left open still times out)
//! and when the board stops.

use super::reply::{cookie, secure};
use super::{Board, SESSION_COOKIE};
use crate::app::App;
use crate::export::Status;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub(super) const TEMPLATES: &[(&str, &str)] = &[];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/events", get(events))
        .route("/static/live.js", get(script))
}

/// The script of every page after login: no inline script anywhere (the CSP allows only
/// scripts from this origin), nothing from elsewhere.
const SCRIPT: &str = include_str!("templates/live.js");

/// How often the data version is asked while a page listens.
pub(super) const POLL: Duration = Duration::from_millis(250);
/// The least time between two events of one stream.
pub(super) const MIN_GAP: Duration = Duration::from_millis(400);
/// A comment this often on a quiet stream.
pub(super) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// 总览's figures as the `change` event carries them (JSON, keys = the `data-live` names).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(super) struct Figures {
    pub applied: i64,
    pub applied_clean: i64,
    pub not_applied: i64,
    /// Applications whose latest version has a problem.
    pub problems: i64,
    pub unknown_branch: i64,
    pub needs_staff: usize,
    pub dead_letters: usize,
    /// When the last application arrived (Beijing time), if any did.
    pub last_arrival: Option<String>,
}

impl Figures {
    /// Pure: from what `shenbao status` reads and the applications' arrival times.
    pub fn new(status: &Status, arrivals: &[DateTime<Utc>]) -> Figures {
        let roster = i64::try_from(status.roster_size).unwrap_or(i64::MAX);
        Figures {
            applied: status.applied,
            applied_clean: status.applied_clean,
            not_applied: roster.saturating_sub(status.applied).max(0),
            problems: status.applied.saturating_sub(status.applied_clean).max(0),
            unknown_branch: status.unknown_branch,
            needs_staff: status.needs_staff.len(),
            dead_letters: status.dead_letters.len(),
            last_arrival: arrivals.iter().max().map(|t| crate::clock::beijing(*t)),
        }
    }

    /// The event's data: the figures and when they were read.
    pub fn json(&self, now: DateTime<Utc>) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "updated_at".into(),
                serde_json::Value::String(crate::clock::beijing(now)),
            );
        }
        v.to_string()
    }
}

/// Pure: how long a stream waits before it may send again, having last sent at `last`.
pub(super) fn gap_left(last: Option<Instant>, now: Instant, gap: Duration) -> Duration {
    match last {
        Some(at) => gap.saturating_sub(now.saturating_duration_since(at)),
        None => Duration::ZERO,
    }
}

/// Starts the task that publishes the data version while a page listens; it ends, and
/// with it every stream, when `stop` turns true. The returned receiver is the board's: each
/// stream subscribes by cloning it.
pub(super) fn watch_versions(
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<i64> {
    let (tx, rx) = watch::channel(0i64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            // The board keeps one receiver; more means a page listens.
            if tx.receiver_count() <= 1 {
                last = None;
                continue;
            }
            match app.store.data_version().await {
                Ok(v) => {
                    failing = false;
                    if last != Some(v) {
                        last = Some(v);
                        tx.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "看板读取数据版本失败，实时更新暂停");
                    }
                    failing = true;
                }
            }
        }
    });
    rx
}

async fn script() -> Response {
    secure(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            SCRIPT,
        )
            .into_response(),
    )
}

/// One stream's state between two events.
struct Stream {
    board: Arc<Board>,
    /// The campaign the session looked at when the stream opened (a page reload after
    /// choosing another opens a new stream).
    scope: super::Scope,
    token: String,
    changes: watch::Receiver<i64>,
    sent: Option<Figures>,
    sent_at: Option<Instant>,
    first: bool,
}

impl Stream {
    /// Whether the stream's session is still there (without renewing it).
    fn alive(&self) -> bool {
        let b = &self.board;
        let sessions = b.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .peek(&self.token, b.now(), b.web.session_idle)
            .is_some()
    }

    /// The `change` event when the figures differ from what this stream sent last.
    async fn change(&mut self) -> Option<Event> {
        let snap = match self.scope.snapshot.get(&self.scope.app).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "看板实时更新读取数据失败");
                return None;
            }
        };
        let f = Figures::new(&snap.status, &snap.arrivals);
        if self.sent.as_ref() == Some(&f) {
            return None;
        }
        let ev = Event::default()
            .event("change")
            .data(f.json(self.board.now()));
        self.sent = Some(f);
        self.sent_at = Some(Instant::now());
        Some(ev)
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Stream)> {
        if self.first {
            // What the page shows may already be older than this stream: send it at once.
            self.first = false;
            self.changes.borrow_and_update();
            if let Some(ev) = self.change().await {
                return Some((Ok(ev), self));
            }
        }
        loop {
            let wait = gap_left(self.sent_at, Instant::now(), MIN_GAP);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            tokio::select! {
                r = self.changes.changed() => {
                    // The board stopped.
                    r.ok()?;
                }
                _ = tokio::time::sleep(KEEP_ALIVE) => {
                    if !self.alive() {
                        return None;
                    }
                    return Some((Ok(Event::default().comment("keep-alive")), self));
                }
            }
            if !self.alive() {
                return None;
            }
            if let Some(ev) = self.change().await {
                return Some((Ok(ev), self));
            }
        }
    }
}

async fn events(State(board): State<Arc<Board>>, headers: HeaderMap) -> Response {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let scope = match board.scope(&session) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    let stream = Stream {
        scope,
        changes: board.live.clone(),
        board,
        token,
        sent: None,
        sent_at: None,
        first: true,
    };
    let events = futures::stream::unfold(stream, Stream::next);
    let mut r = secure(Sse::new(events).into_response());
    // nginx would otherwise hold the events back in its buffer.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(roster: usize, applied: i64, clean: i64) -> Status {
        Status {
            messages: vec![],
            roster_size: roster,
            applied,
            applied_clean: clean,
            unknown_branch: 1,
            outbox: vec![],
            dead_letters: vec![(7, "a@b".into(), "回执".into(), "550".into())],
            watermarks: vec![],
            needs_staff: vec![],
            unanswered: vec![],
            sender_changes: vec![],
        }
    }

    #[test]
    fn the_change_event_carries_the_overview_figures() {
        let t1 = "2025-09-22T01:41:42Z".parse::<DateTime<Utc>>().expect("t");
        let t0 = "2025-09-21T01:00:00Z".parse::<DateTime<Utc>>().expect("t");
        let f = Figures::new(&status(24, 5, 3), &[t1, t0]);
        assert_eq!(f.not_applied, 19);
        assert_eq!(f.problems, 2);
        let now = "2025-09-22T02:00:00Z".parse::<DateTime<Utc>>().expect("t");
        let v: serde_json::Value = serde_json::from_str(&f.json(now)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "applied": 5, "applied_clean": 3, "not_applied": 19, "problems": 2,
                "unknown_branch": 1, "needs_staff": 0, "dead_letters": 1,
                "last_arrival": "2025年9月22日 09:41:42",
                "updated_at": "2025年9月22日 10:00:00",
            })
        );
        // Nothing arrived yet; more applied than the roster (unknown branches) is not negative.
        let f = Figures::new(&status(2, 3, 3), &[]);
        assert_eq!(f.not_applied, 0);
        assert_eq!(f.last_arrival, None);
        assert!(f.json(now).contains("\"last_arrival\":null"));
    }

    #[test]
    fn events_are_spaced_by_the_gap() {
        let t = Instant::now();
        let gap = Duration::from_millis(400);
        assert_eq!(gap_left(None, t, gap), Duration::ZERO);
        assert_eq!(gap_left(Some(t), t, gap), gap);
        assert_eq!(
            gap_left(Some(t), t + Duration::from_millis(150), gap),
            Duration::from_millis(250)
        );
        assert_eq!(gap_left(Some(t), t + gap, gap), Duration::ZERO);
        assert_eq!(gap_left(Some(t), t + 2 * gap, gap), Duration::ZERO);
    }

    #[test]
    fn the_script_opens_the_stream_and_writes_text_only() {
        assert!(SCRIPT.contains("new EventSource('/events')"));
        // Figures go in as text, never as markup.
        assert!(SCRIPT.contains("textContent"));
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("http:") && !SCRIPT.contains("https:"));
    }
}
