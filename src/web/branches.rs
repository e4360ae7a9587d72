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
    /// `funded`: only the branches funded in the previous campaign.
    previous: Option<String>,
    page: Option<usize>,
}

/// Rows a page: a whole college fits, and a page of the largest campaigns stays small.
const PER_PAGE: usize = 200;

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
    let scope = board.scope(&session)?;
    let app = &scope.app;
    let snap = scope.snapshot.get(app).await?;
    let total = snap.rows.len();
    let filter = board::Filter {
        college: q.college.clone().filter(|c| !c.is_empty()),
        state: q.state.as_deref().and_then(board::State::from_code),
        section: q.section.clone(),
        search: q.q.clone(),
        previously_funded: q.previous.as_deref() == Some("funded"),
    };
    let rows = board::filter_rows(&snap.rows, &filter);
    let found = rows.len();
    let pager = board::Pager::new(found, q.page, PER_PAGE);
    let rows = &rows[pager.start..pager.end];
    // The filters again, for the links to the other pages.
    let keep = minijinja::context! {
        college => q.college.clone().unwrap_or_default(),
        section => q.section.clone().unwrap_or_default(),
        state => q.state.clone().unwrap_or_default(),
        q => q.q.clone().unwrap_or_default(),
        previous => q.previous.clone().unwrap_or_default(),
    };
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
            found => found,
            total => total,
            pager => pager,
            keep => keep,
            colleges => &snap.colleges,
            college => q.college.unwrap_or_default(),
            sections => &app.cfg.campaign.sections,
            section => q.section.unwrap_or_default(),
            states => states,
            state => q.state.unwrap_or_default(),
            q => q.q.unwrap_or_default(),
            previous_campaign => &snap.previous,
            previous => q.previous.unwrap_or_default(),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}
