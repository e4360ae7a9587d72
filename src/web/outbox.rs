//! 发件箱: the mails shenbao sends — queued, waiting for a retry, given up on (dead letters)
//! and sent — with the last error; staff put a failed mail, or every dead letter, back in the
//! queue through the same store functions as `shenbao outbox retry`.

use super::desk::{self, OutboxState, OutboxView, RetryOutcome};
use super::reply::{Failure, html, not_found, redirect};
use super::{Board, board, may_act};
use crate::store::{OutboxFilter, Retry};
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use std::sync::Arc;

pub(super) const TEMPLATES: &[(&str, &str)] =
    &[("outbox.html", include_str!("templates/outbox.html"))];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/outbox", get(outbox))
        .route("/outbox/{id}/retry", post(retry))
        .route("/outbox/retry-dead", post(retry_dead))
}

/// Rows a page (the sent mails of a large campaign run into the tens of thousands).
const PER_PAGE: usize = 200;

#[derive(serde::Deserialize, Default)]
struct OutboxQuery {
    state: Option<String>,
    page: Option<usize>,
    done: Option<String>,
    error: Option<String>,
    n: Option<i64>,
}

#[derive(serde::Deserialize, Default)]
struct RetryForm {
    csrf: Option<String>,
    /// The view to return to.
    state: Option<String>,
}

#[derive(serde::Serialize)]
struct Row {
    id: i64,
    kind: String,
    to: String,
    subject: String,
    state: OutboxState,
    state_label: &'static str,
    attempts: i64,
    next_try: Option<String>,
    last_error: Option<String>,
    created_at: Option<String>,
    sent_at: Option<String>,
    retryable: bool,
}

fn row(e: crate::store::OutboxEntry, state: OutboxState) -> Row {
    let waiting = matches!(state, OutboxState::Queued | OutboxState::Retrying);
    Row {
        id: e.id,
        kind: crate::notify::compose::kind_label(&e.kind).to_string(),
        to: e.to_addr,
        subject: crate::attach::display_text(&e.subject),
        state,
        state_label: state.label(),
        attempts: e.attempts,
        next_try: e
            .next_attempt_at
            .filter(|_| waiting)
            .map(crate::clock::beijing),
        last_error: e
            .last_error
            .filter(|s| !s.is_empty() && state != OutboxState::Sent),
        created_at: e.created_at.map(crate::clock::beijing),
        sent_at: e.sent_at.map(crate::clock::beijing),
        retryable: state.retryable(),
    }
}

async fn outbox(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    query: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Query(q) = query.unwrap_or_default();
    let view = OutboxView::from_code(q.state.as_deref());
    let store = &board.app.store;
    let db = |e: crate::store::StoreError| Failure(e.into());
    let mut entries = store.outbox_list(OutboxFilter::Queued).await.map_err(db)?;
    entries.extend(store.outbox_list(OutboxFilter::Dead).await.map_err(db)?);
    let sent = store
        .outbox_counts()
        .await
        .map_err(db)?
        .into_iter()
        .find(|(s, _)| s == "sent")
        .map_or(0, |(_, n)| usize::try_from(n).unwrap_or(0));
    let mut states: Vec<(OutboxState, usize)> = entries
        .iter()
        .filter_map(|e| OutboxState::of(&e.status, e.attempts))
        .map(|s| (s, 1))
        .collect();
    states.push((OutboxState::Sent, sent));
    let counts: Vec<(&str, &str, usize)> = desk::view_counts(&states)
        .into_iter()
        .map(|(v, n)| (v.code(), v.label(), n))
        .collect();
    let dead = states
        .iter()
        .filter(|(s, _)| *s == OutboxState::Dead)
        .count();
    if view.needs_sent() {
        entries.extend(store.outbox_list(OutboxFilter::Sent).await.map_err(db)?);
        // The latest first: what was sent just now is what staff look for.
        entries.sort_by_key(|e| std::cmp::Reverse(e.id));
    } else {
        entries.sort_by_key(|e| e.id);
    }
    let mut rows: Vec<Row> = entries
        .into_iter()
        .filter_map(|e| {
            let s = OutboxState::of(&e.status, e.attempts)?;
            view.includes(s).then(|| row(e, s))
        })
        .collect();
    let found = rows.len();
    let pager = board::Pager::new(found, q.page, PER_PAGE);
    rows.truncate(pager.end);
    let rows: Vec<Row> = rows.into_iter().skip(pager.start).collect();
    let flash = match (q.done.as_deref().or(q.error.as_deref()), q.n) {
        (Some(code), Some(n)) => {
            RetryOutcome::from_code(code).and_then(|o| desk::retry_flash(o, n))
        }
        _ => None,
    };
    let notice = if board.read_only {
        Some(
            "这是只读看板（shenbao web）：只能查看。重发请到运行守护进程（shenbao run）的看板上操作。",
        )
    } else if !session.role.may_act() {
        Some("评审专家账号只能查看：重发邮件需要工作人员账号。")
    } else {
        None
    };
    let body = board.render(
        "outbox.html",
        Some(&session),
        "outbox",
        minijinja::context! {
            title => "发件箱",
            rows => rows,
            found => found,
            pager => pager,
            view => view.code(),
            view_label => view.label(),
            counts => counts,
            dead => dead,
            flash => flash,
            notice => notice,
            can_act => may_act(session.role, board.read_only),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

/// Back to the view the form was on, with what happened.
fn back(state: Option<&str>, outcome: RetryOutcome, n: i64) -> Response {
    let view = OutboxView::from_code(state);
    redirect(
        &format!("/outbox?state={}&{}", view.code(), outcome.query(n)),
        &[],
    )
}

async fn retry(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    path: Result<Path<i64>, PathRejection>,
    form: Result<Form<RetryForm>, FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.unwrap_or_default();
    let session = match board.actor(&headers, form.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Ok(Path(id)) = path else {
        return Ok(not_found().await);
    };
    // As `shenbao outbox retry ID`.
    let outcome = match board
        .app
        .store
        .outbox_retry(id, board.now())
        .await
        .map_err(|e| Failure(e.into()))?
    {
        Retry::Requeued(_) => {
            board.app.outbox.notify_one();
            tracing::info!(user = %session.user, outbox = id, "看板：邮件重新排队");
            RetryOutcome::Requeued
        }
        Retry::AlreadyQueued(_) => RetryOutcome::AlreadyQueued,
        Retry::AlreadySent(_) => RetryOutcome::AlreadySent,
        Retry::InFlight(_) => RetryOutcome::InFlight,
        Retry::Unknown => RetryOutcome::Unknown,
    };
    Ok(back(form.state.as_deref(), outcome, id))
}

async fn retry_dead(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    form: Result<Form<RetryForm>, FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.unwrap_or_default();
    let session = match board.actor(&headers, form.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    // As `shenbao outbox retry --all-dead`.
    let rows = board
        .app
        .store
        .outbox_retry_dead(board.now())
        .await
        .map_err(|e| Failure(e.into()))?;
    let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let outcome = if rows.is_empty() {
        RetryOutcome::NoDead
    } else {
        board.app.outbox.notify_one();
        tracing::info!(user = %session.user, count = n, "看板：全部已放弃的邮件重新排队");
        RetryOutcome::AllDeadRequeued
    };
    Ok(back(form.state.as_deref(), outcome, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(can_act: bool) -> String {
        let evil = "<script>alert(1)</script>\"onmouseover=";
        let rows = vec![Row {
            id: 7,
            kind: "回执".into(),
            to: evil.into(),
            subject: evil.into(),
            state: OutboxState::Dead,
            state_label: OutboxState::Dead.label(),
            attempts: 8,
            next_try: None,
            last_error: Some(evil.into()),
            created_at: Some("2025年9月26日 08:40:43".into()),
            sent_at: None,
            retryable: true,
        }];
        super::super::templates()
            .get_template("outbox.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title => "发件箱", css => "", campaign => "c", user => "u", role => "工作人员",
                    csrf => "tok", page => "outbox", rows => rows, found => 1,
                    pager => board::Pager::new(1, None, PER_PAGE), view => "unsent",
                    view_label => "未发出", counts => vec![("unsent", "未发出", 1)], dead => 1,
                    flash => desk::retry_flash(RetryOutcome::Requeued, 7), notice => None::<&str>,
                    can_act => can_act,
                })
            })
            .expect("render")
    }

    #[test]
    fn mail_data_stays_escaped_and_forms_only_for_those_who_act() {
        let out = render(true);
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains("\"onmouseover="), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(out.contains("action=\"/outbox/7/retry\""), "{out}");
        assert!(out.contains("action=\"/outbox/retry-dead\""), "{out}");
        assert!(out.contains("#7 已重新排队"), "{out}");
        let out = render(false);
        assert!(!out.contains("action=\"/outbox/"), "{out}");
    }
}
