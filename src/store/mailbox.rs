//! The `mailbox_state` table: the IMAP watermark of each folder (UIDVALIDITY and the last
//! UID committed), which only moves forward unless staff ask for a backfill.

use super::{ImapKey, Result, Store};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

impl Store {
    /// The watermark of a folder: (UIDVALIDITY, last committed UID).
    pub async fn mailbox_state(&self, account: &str, folder: &str) -> Result<Option<(u32, u32)>> {
        let row = sqlx::query(
            "SELECT uidvalidity, last_uid FROM mailbox_state WHERE account = $1 AND folder = $2",
        )
        .bind(account)
        .bind(folder)
        .fetch_optional(self.pool.sqlite())
        .await?;
        Ok(row.map(|r| {
            (
                u32::try_from(r.get::<i64, _>(0)).unwrap_or(0),
                u32::try_from(r.get::<i64, _>(1)).unwrap_or(0),
            )
        }))
    }

    pub async fn set_mailbox_state(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let key = ImapKey {
            account: account.to_string(),
            folder: folder.to_string(),
            uidvalidity,
            uid: last_uid,
        };
        set_watermark(&mut *self.pool.sqlite().acquire().await?, &key, now).await
    }

    /// Lowers the watermark of a folder to `last_uid` (`--backfill-since` on a later start),
    /// which [`Store::set_mailbox_state`] never does: the folder is read again from there, and
    /// mail already stored is recognised as such.
    pub async fn rewind_mailbox_state(
        &self,
        account: &str,
        folder: &str,
        uidvalidity: u32,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE mailbox_state SET last_uid = $1, updated_at = $2 WHERE account = $3 AND folder = $4 AND uidvalidity = $5 AND last_uid > $6",
        )
        .bind(i64::from(last_uid))
        .bind(db_time(now))
        .bind(account)
        .bind(folder)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(last_uid))
        .execute(self.pool.sqlite())
        .await?;
        Ok(())
    }

    /// Every folder's watermark: (account, folder, UIDVALIDITY, last UID), for `status`.
    pub async fn watermarks(&self) -> Result<Vec<(String, String, i64, i64)>> {
        Ok(sqlx::query(
            "SELECT account, folder, uidvalidity, last_uid FROM mailbox_state ORDER BY 1, 2",
        )
        .fetch_all(self.pool.sqlite())
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
    }
}

/// Moves the watermark of `key`'s folder to `key.uid` (never backwards within one UIDVALIDITY).
pub(super) async fn set_watermark(
    conn: &mut SqliteConnection,
    key: &ImapKey,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mailbox_state (account, folder, uidvalidity, last_uid, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account, folder) DO UPDATE SET
           last_uid = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity AND mailbox_state.last_uid > excluded.last_uid
                           THEN mailbox_state.last_uid ELSE excluded.last_uid END,
           uidvalidity = excluded.uidvalidity,
           updated_at = excluded.updated_at",
    )
    .bind(&key.account)
    .bind(&key.folder)
    .bind(i64::from(key.uidvalidity))
    .bind(i64::from(key.uid))
    .bind(db_time(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
