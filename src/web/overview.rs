//! 总览: the phase and the next deadline, applied per college (bar chart), problems by code,
//! arrivals per day (line chart), what needs staff and the dead letters, and which daemon
//! does what.

use super::reply::{Failure, html};
use super::{Board, board, chart};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use std::sync::Arc;

pub(super) const TEMPLATES: &[(&str, &str)] =
    &[("overview.html", include_str!("templates/overview.html"))];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new().route("/", get(overview))
}

/// A row of 守护进程与分工 for the page.
#[derive(serde::Serialize)]
struct DutyItem {
    what: String,
    state: String,
    live: bool,
}

/// A row of 需人工处理 for the page.
#[derive(serde::Serialize)]
struct StaffItem {
    id: i64,
    received_at: String,
    branch: Option<String>,
    from: String,
    subject: String,
    reason: String,
}

async fn overview(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let scope = board.scope(&session)?;
    let app = &scope.app;
    let now = board.now();
    let snap = scope.snapshot.get(app).await?;
    let status = &snap.status;
    let phase = crate::campaign::closure::phase(&app.cfg.campaign, now, snap.reviews, &snap.funded);
    let chart = chart::college_bars(&board::college_counts(&snap.rows));
    let problems = &snap.problems;
    let arrivals = &snap.arrivals;
    let daily: Vec<(String, u32)> =
        board::arrivals_per_day(arrivals, app.cfg.campaign.timezone, now, 14)
            .into_iter()
            .map(|(d, n)| (d.format("%-m/%-d").to_string(), n))
            .collect();
    let daily = chart::daily_line(&daily);
    let mut deadlines = vec![("申报截止", app.cfg.campaign.deadline)];
    if let Some(d) = app.cfg.campaign.closure_deadline {
        deadlines.push(("结项截止", d));
    }
    let staff: Vec<StaffItem> = status
        .needs_staff
        .iter()
        .map(|s| StaffItem {
            id: s.id,
            received_at: crate::clock::beijing(s.received_at),
            branch: s.branch.clone(),
            from: crate::attach::display_text(&s.from).to_string(),
            subject: crate::attach::display_text(&s.subject).to_string(),
            reason: s.reason.clone(),
        })
        .collect();
    let applied = usize::try_from(status.applied).unwrap_or(0);
    // Which daemon does what: read each time (a handful of rows; they change with time, not
    // with the data the snapshot caches).
    let wall = crate::duty::Duties::now();
    let duties: Vec<DutyItem> = app
        .store
        .leases()
        .await
        .map_err(anyhow::Error::from)?
        .iter()
        .map(|l| {
            let (what, state, live) = crate::duty::describe(l, wall);
            DutyItem { what, state, live }
        })
        .collect();
    let body = board.render(
        "overview.html",
        Some(&session),
        "overview",
        minijinja::context! {
            title => "总览",
            phase => phase,
            deadline => board::next_deadline(&deadlines, now),
            applied => status.applied,
            applied_clean => status.applied_clean,
            unknown_branch => status.unknown_branch,
            roster_size => status.roster_size,
            not_applied => status.roster_size.saturating_sub(applied),
            needs_staff => status.needs_staff.len(),
            needs_staff_rows => staff,
            dead_letters => status.dead_letters.len(),
            chart => chart,
            daily => daily,
            problems => problems,
            duties => duties,
            now => crate::clock::beijing(now),
            last_arrival => arrivals.iter().max().map(|t| crate::clock::beijing(*t)),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}
