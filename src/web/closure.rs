//! 结项: every funded project (current review) with its closure checklist — each material its
//! level asks for, sent or missing — the time of its last closure mail and its state, as
//! `shenbao status` and the export count them ([`crate::export::funded_projects`], read
//! through the board's snapshot); the campaign's phase and the closure deadline on top.

use super::reply::{Failure, html};
use super::{Board, board};
use crate::campaign::closure::{ClosureState, ClosureStatus};
use crate::config::LevelConfig;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) const TEMPLATES: &[(&str, &str)] =
    &[("closure.html", include_str!("templates/closure.html"))];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new().route("/closure", get(closure))
}

#[derive(serde::Deserialize, Default)]
struct ClosureQuery {
    state: Option<String>,
}

/// The filter of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    Complete,
    Incomplete,
    /// Incomplete, and not one closure mail yet.
    NothingSent,
}

impl Show {
    const ALL: [Show; 3] = [Show::Incomplete, Show::NothingSent, Show::Complete];

    fn code(self) -> &'static str {
        match self {
            // The codes of the export's closure_status.
            Show::Complete => "complete",
            Show::Incomplete => "incomplete",
            Show::NothingSent => "none",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Show::Complete => "材料齐全",
            Show::Incomplete => "材料未齐",
            Show::NothingSent => "还没有发来结项材料",
        }
    }

    fn from_code(code: &str) -> Option<Show> {
        Show::ALL.into_iter().find(|s| s.code() == code)
    }

    fn takes(self, r: &Row) -> bool {
        match self {
            Show::Complete => r.complete,
            Show::Incomplete => !r.complete,
            Show::NothingSent => !r.complete && r.mails == 0,
        }
    }
}

/// One material of a project: `sent`, `missing`, or `-` when its level does not ask for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Cell {
    state: &'static str,
    text: &'static str,
}

/// One funded project on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Row {
    branch: String,
    college: String,
    level: String,
    /// One per column of [`columns`].
    cells: Vec<Cell>,
    /// Its last closure mail, Beijing time.
    last: Option<String>,
    mails: usize,
    complete: bool,
    /// [`ClosureStatus::label`]: 材料齐全 / 材料未齐（缺…）.
    state_label: String,
}

/// Every material some funded project's level asks for, in the configuration's order.
fn columns(levels: &[LevelConfig], funded: &[ClosureState]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in levels {
        if !funded.iter().any(|f| f.level == l.name) {
            continue;
        }
        for m in &l.closure_materials {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
    }
    // A material still owed under a level the configuration no longer has.
    for f in funded {
        for m in &f.missing {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
    }
    out
}

/// The rows of the funded projects: `college` from the roster, `mails` each branch's closure
/// mails (newest first, as the store lists them).
fn rows(
    levels: &[LevelConfig],
    funded: &[ClosureState],
    columns: &[String],
    college: impl Fn(&str) -> Option<String>,
    mails: &[(String, Option<DateTime<Utc>>)],
) -> Vec<Row> {
    let mut seen: HashMap<&str, (Option<DateTime<Utc>>, usize)> = HashMap::new();
    for (branch, at) in mails {
        let e = seen.entry(branch.as_str()).or_insert((None, 0));
        e.1 += 1;
        e.0 = e.0.max(*at);
    }
    funded
        .iter()
        .map(|f| {
            let required: &[String] = levels
                .iter()
                .find(|l| l.name == f.level)
                .map(|l| l.closure_materials.as_slice())
                .unwrap_or_default();
            let cells = columns
                .iter()
                .map(|m| {
                    if f.missing.contains(m) {
                        Cell {
                            state: "missing",
                            text: "缺",
                        }
                    } else if required.contains(m) {
                        Cell {
                            state: "sent",
                            text: "已交",
                        }
                    } else {
                        Cell {
                            state: "none",
                            text: "—",
                        }
                    }
                })
                .collect();
            let status = if f.missing.is_empty() {
                ClosureStatus::Complete
            } else {
                ClosureStatus::Incomplete {
                    missing: f.missing.clone(),
                }
            };
            let (last, n) = seen.get(f.branch.as_str()).copied().unwrap_or((None, 0));
            Row {
                college: college(&f.branch).unwrap_or_default(),
                branch: f.branch.clone(),
                level: f.level.clone(),
                cells,
                last: last.map(|t| board::short_time(&crate::clock::beijing_rfc3339(t))),
                mails: n,
                complete: status == ClosureStatus::Complete,
                state_label: status.label(),
            }
        })
        .collect()
}

async fn closure(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    query: Result<Query<ClosureQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Query(q) = query.unwrap_or_default();
    let scope = board.scope(&session)?;
    let app = &scope.app;
    let now = board.now();
    let snap = scope.snapshot.get(app).await?;
    let phase = crate::campaign::closure::phase(&app.cfg.campaign, now, snap.reviews, &snap.funded);
    let deadline = match app.cfg.campaign.closure_deadline {
        Some(d) => board::next_deadline(&[("结项截止", d)], now),
        None => "结项截止时间在配置的 campaign.closure_deadline 中设置".to_string(),
    };
    let mails: Vec<(String, Option<DateTime<Utc>>)> = app
        .store
        .closure_submissions()
        .await
        .map_err(anyhow::Error::new)?
        .into_iter()
        .filter_map(|r| Some((r.branch?, r.received_at)))
        .collect();
    let columns = columns(&app.cfg.levels, &snap.funded);
    let all = rows(
        &app.cfg.levels,
        &snap.funded,
        &columns,
        |b| app.roster.get(b).map(|r| r.college.clone()),
        &mails,
    );
    let complete = all.iter().filter(|r| r.complete).count();
    let nothing = all.iter().filter(|r| Show::NothingSent.takes(r)).count();
    let show = q.state.as_deref().and_then(Show::from_code);
    let shown: Vec<&Row> = all
        .iter()
        .filter(|r| show.is_none_or(|s| s.takes(r)))
        .collect();
    let states: Vec<(&str, &str)> = Show::ALL.iter().map(|s| (s.code(), s.label())).collect();
    let body = board.render(
        "closure.html",
        Some(&session),
        "closure",
        minijinja::context! {
            title => "结项",
            phase => phase,
            deadline => deadline,
            reviews => snap.reviews,
            funded => all.len(),
            complete => complete,
            incomplete => all.len() - complete,
            nothing => nothing,
            columns => columns,
            rows => shown,
            states => states,
            state => show.map(|s| s.code()).unwrap_or_default(),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn state(branch: &str, level: &str, missing: &[&str]) -> ClosureState {
        ClosureState {
            branch: branch.into(),
            level: level.into(),
            missing: missing.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn the_page_escapes_names_and_encodes_the_branch_link() {
        let evil = "<script>x</script>\"&支部";
        let levels = crate::config::default_levels();
        let funded = vec![state(evil, "一般", &["活动总结"])];
        let cols = columns(&levels, &funded);
        let r = rows(&levels, &funded, &cols, |_| Some(evil.to_string()), &[]);
        let out = super::super::templates()
            .get_template("closure.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title => "结项", css => "", campaign => "c", user => "u", role => "r",
                    csrf => "t", page => "closure", phase => "p", deadline => "d",
                    reviews => 1, funded => 1, complete => 0, incomplete => 1, nothing => 1,
                    columns => cols, rows => r, states => Vec::<(String, String)>::new(),
                    state => "",
                })
            })
            .expect("render");
        assert!(!out.contains("<script>"), "{out}");
        assert!(
            out.contains(">&lt;script&gt;x&lt;&#x2f;script&gt;&quot;&amp;支部</a>"),
            "{out}"
        );
        assert!(
            out.contains("/branch?name=%3Cscript%3Ex%3C&#x2f;script%3E%22%26"),
            "{out}"
        );
        assert!(out.contains("材料未齐（缺活动总结）"), "{out}");
    }

    #[test]
    fn each_project_shows_what_its_level_asks_for() {
        let levels = crate::config::default_levels();
        let funded = vec![
            state("甲支部", "重点", &[]),
            state("乙支部", "一般", &["活动总结", "报销材料"]),
            state("丙支部", "特色", &["结题报告", "报销材料", "工作案例"]),
        ];
        let cols = columns(&levels, &funded);
        assert_eq!(cols, ["结题报告", "报销材料", "工作案例", "活动总结"]);
        let mails = vec![
            ("乙支部".to_string(), Some(t("2025-12-05T02:00:00Z"))),
            ("甲支部".to_string(), Some(t("2025-12-03T02:00:00Z"))),
            ("乙支部".to_string(), Some(t("2025-12-01T02:00:00Z"))),
        ];
        let r = rows(
            &levels,
            &funded,
            &cols,
            |b| (b == "甲支部").then(|| "土木工程学院".to_string()),
            &mails,
        );
        let cells = |i: usize| r[i].cells.iter().map(|c| c.state).collect::<Vec<_>>();
        assert_eq!(cells(0), ["sent", "sent", "sent", "none"]);
        assert_eq!(cells(1), ["sent", "missing", "none", "missing"]);
        assert_eq!(cells(2), ["missing", "missing", "missing", "none"]);
        assert_eq!(r[0].college, "土木工程学院");
        assert!(r[0].complete && !r[1].complete);
        assert_eq!(r[0].state_label, "材料齐全");
        assert_eq!(r[1].state_label, "材料未齐（缺活动总结、报销材料）");
        assert_eq!(
            (r[1].mails, r[1].last.as_deref()),
            (2, Some("2025-12-05 10:00"))
        );
        assert_eq!((r[2].mails, r[2].last.as_deref()), (0, None));
        // The filter.
        assert!(Show::Complete.takes(&r[0]) && !Show::Complete.takes(&r[1]));
        assert!(Show::Incomplete.takes(&r[1]) && Show::Incomplete.takes(&r[2]));
        assert!(!Show::NothingSent.takes(&r[1]) && Show::NothingSent.takes(&r[2]));
        assert_eq!(Show::from_code("none"), Some(Show::NothingSent));
        assert_eq!(Show::from_code("x"), None);
    }
}
