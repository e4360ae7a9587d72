//! 支部: every roster branch with its state, filtered by college, section and state, and
//! searched by name.

use super::reply::{Failure, html};
use super::{Board, board};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use std::sync::Arc;

pub(super) const TEMPLATES: &[(&str, &str)] =
    &[("branches.html", include_str!("templates/branches.html"))];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new().route("/branches", get(branches))
}

#[derive(serde::Deserialize, Default)]
struct BranchQuery {
    college: Option<String>,
    section: Option<String>,
    state: Option<String>,
    q: Option<String>,
}

async fn branches(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    query: Result<Query<BranchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Query(q) = query.unwrap_or_default();
    let app = &board.app;
    let latest = crate::export::latest(&app.store).await?;
    let rows = board::branch_rows(app.roster.branches(), &latest);
    let total = rows.len();
    let mut colleges: Vec<String> = Vec::new();
    for b in app.roster.branches() {
        if !b.college.is_empty() && !colleges.contains(&b.college) {
            colleges.push(b.college.clone());
        }
    }
    let filter = board::Filter {
        college: q.college.clone().filter(|c| !c.is_empty()),
        state: q.state.as_deref().and_then(board::State::from_code),
        section: q.section.clone(),
        search: q.q.clone(),
    };
    let rows = board::filter_rows(rows, &filter);
    let states: Vec<(&str, &str)> = board::State::ALL
        .iter()
        .map(|s| (s.code(), s.label()))
        .collect();
    let body = board.render(
        "branches.html",
        Some(&session),
        "branches",
        minijinja::context! {
            title => "支部",
            rows => rows,
            total => total,
            colleges => colleges,
            college => q.college.unwrap_or_default(),
            sections => &app.cfg.campaign.sections,
            section => q.section.unwrap_or_default(),
            states => states,
            state => q.state.unwrap_or_default(),
            q => q.q.unwrap_or_default(),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}
