//! 活动: which campaign a session looks at. The board shows the current campaign; with several
//! `[[campaign]]` the header has a selector, and choosing last semester's shows every page
//! (总览, 支部, 评审 …) for that campaign, for this session only, until another is chosen.
//! Choosing changes nothing in the data, so reviewers may do it too; it is a POST with the
//! session's CSRF token all the same (it changes the session).

use super::Board;
use super::reply::{Failure, forbidden, html, redirect};
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new().route("/campaign", post(choose))
}

#[derive(serde::Deserialize, Default)]
struct Choice {
    csrf: Option<String>,
    id: Option<String>,
}

async fn choose(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    form: Result<Form<Choice>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    // The session and its token first, whatever the form holds.
    let Form(choice) = form.unwrap_or_default();
    let Some((token, session)) = board.session(&headers) else {
        return Ok(redirect("/login", &[]));
    };
    if let Err(refusal) = super::auth::may_post(&session, choice.csrf.as_deref(), false) {
        return Ok(forbidden(refusal));
    }
    let cfg = &board.app.cfg;
    let id = choice.id.unwrap_or_default();
    if cfg.campaign_by_id(&id).is_none() {
        return Ok(html(
            StatusCode::NOT_FOUND,
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>没有这一期活动</title><p>没有 id 为“{}”的活动：请回到看板，从页面顶部的活动列表中选择。</p><p><a href=\"/\">回到总览</a></p>",
                super::chart::esc(&id)
            ),
        ));
    }
    let chosen = (id != cfg.campaign.id).then_some(id);
    board
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .choose_campaign(&token, chosen);
    Ok(redirect("/", &[]))
}
