//! The figures 总览 and 支部 show, read once per change of the database and shared by every
//! request until the next change.
//!
//! Why: at 10,000 branches and 30,000 versions, reading every branch's latest version with
//! its fields and files takes the better part of a second, and on deadline night many staff
//! keep the board open while nothing changes between two mails. The key is the store's
//! [`data_version`](crate::store::Store::data_version), which moves with every commit by the
//! daemon, by a command run beside it or — under `shenbao web` — by another process, so a
//! page never shows figures older than the last commit. What depends on the time (the phase,
//! the time left, the arrivals of the last 14 days) is computed per request from the cached
//! data.

use crate::app::App;
use crate::campaign::closure::ClosureState;
use crate::export::Status;
use crate::web::board::{self, BranchRow};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// What the store said at one data version.
pub(super) struct Snapshot {
    pub status: Status,
    /// Every roster branch with its state, in roster order.
    pub rows: Vec<BranchRow>,
    /// Problems of the latest applications: code, title, count.
    pub problems: Vec<(String, String, usize)>,
    /// Arrival time of every application version.
    pub arrivals: Vec<DateTime<Utc>>,
    /// How many branches have a current review result.
    pub reviews: i64,
    pub funded: Vec<ClosureState>,
    /// The colleges of the roster, in roster order.
    pub colleges: Vec<String>,
    /// The campaign before this one, when there is one ("上学期"): its title.
    pub previous: Option<String>,
}

/// The branches funded in the campaign before the board's ("上学期已立项"), branch → level,
/// and that campaign's title; nothing for a first campaign.
async fn previously_funded(
    app: &App,
) -> anyhow::Result<(std::collections::HashMap<String, String>, Option<String>)> {
    let Some(previous) = app.cfg.previous_campaign(&app.cfg.campaign.id) else {
        return Ok(Default::default());
    };
    let funded = app
        .store
        .for_campaign(&previous.id)
        .current_reviews()
        .await?
        .into_iter()
        .filter(|r| r.funded)
        .map(|r| (r.branch, r.level))
        .collect();
    Ok((funded, Some(previous.name.clone())))
}

/// `fut`'s output and how long it took.
async fn timed<T>(fut: impl std::future::Future<Output = T>) -> (T, std::time::Duration) {
    let started = std::time::Instant::now();
    let out = fut.await;
    (out, started.elapsed())
}

impl Snapshot {
    /// Reads the parts at the same time on the pool's connections (each read is short and
    /// independent; together they used to queue one after another). `keys` are the roster's
    /// search keys, computed once.
    async fn read(app: &App, keys: &[String]) -> anyhow::Result<Snapshot> {
        let started = std::time::Instant::now();
        let (
            (status, t_status),
            (latest, t_latest),
            (arrivals, t_arrivals),
            (reviews, t_reviews),
            (funded, t_funded),
            (previous, _),
        ) = tokio::join!(
            timed(crate::export::status(&app.store, app.roster.len())),
            timed(app.store.board_latest()),
            timed(app.store.application_arrivals()),
            timed(app.store.current_review_count()),
            timed(crate::export::funded_projects(&app.store, &app.cfg.levels)),
            timed(previously_funded(app)),
        );
        let (status, latest, arrivals, reviews, funded) =
            (status?, latest?, arrivals?, reviews?, funded?);
        let (previously_funded, previous) = previous?;
        let t_rows = std::time::Instant::now();
        let latest: Vec<board::Latest> = latest
            .into_iter()
            .map(|l| board::Latest {
                branch: l.branch,
                version: l.version,
                received_at: l.received_at,
                late: l.late,
                sender_changed: l.sender_changed,
                problems: l.problems,
                section: l.section,
            })
            .collect();
        let mut rows = board::branch_rows(
            app.roster.branches(),
            keys,
            &latest,
            app.cfg.campaign.timezone,
        );
        board::mark_previously_funded(&mut rows, &previously_funded);
        let problems = board::problems_by_code(&latest);
        let t_rows = t_rows.elapsed();
        // Each read's own time (they overlap), then the whole re-read.
        tracing::debug!(
            status_ms = t_status.as_millis(),
            latest_ms = t_latest.as_millis(),
            rows_ms = t_rows.as_millis(),
            arrivals_ms = t_arrivals.as_millis(),
            reviews_ms = t_reviews.max(t_funded).as_millis(),
            total_ms = started.elapsed().as_millis(),
            "看板数据已重新读取"
        );
        let colleges = app.roster.colleges();
        Ok(Snapshot {
            status,
            rows,
            problems,
            arrivals,
            reviews,
            funded,
            colleges,
            previous,
        })
    }
}

/// The last snapshot and the data version it was read at.
#[derive(Default)]
pub(super) struct Cache {
    last: tokio::sync::Mutex<Option<(i64, Arc<Snapshot>)>>,
    /// The roster's search keys ([`board::search_keys`]): the roster does not change while
    /// the board runs.
    keys: std::sync::OnceLock<Vec<String>>,
}

impl Cache {
    /// The snapshot of the database as it is now: the cached one when nothing was committed
    /// since it was read. Requests arriving while it is read wait for it instead of reading
    /// the same again.
    pub async fn get(&self, app: &App) -> anyhow::Result<Arc<Snapshot>> {
        let mut last = self.last.lock().await;
        // Asked before reading: a commit made while reading moves the version again, so the
        // next request reads anew.
        let version = app.store.data_version().await?;
        if let Some((v, s)) = &*last
            && *v == version
        {
            return Ok(s.clone());
        }
        let keys = self
            .keys
            .get_or_init(|| board::search_keys(app.roster.branches()));
        let s = Arc::new(Snapshot::read(app, keys).await?);
        *last = Some((version, s.clone()));
        Ok(s)
    }
}
