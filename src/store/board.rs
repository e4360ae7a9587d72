//! What the board (看板) reads that no command needed before: when each application version
//! arrived, for the arrivals-per-day chart. Plain Rust types out; the grouping is pure, in
//! `web::board`.

use super::{Result, Store, parse_db_time};
use chrono::{DateTime, Utc};
use sqlx::Row;

impl Store {
    /// The arrival time of every application version (not only the latest), oldest first.
    pub async fn application_arrivals(&self) -> Result<Vec<DateTime<Utc>>> {
        let rows = sqlx::query(
            "SELECT received_at FROM submissions WHERE kind = 'application' ORDER BY received_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| parse_db_time(&r.get::<String, _>(0)))
            .collect())
    }
}
