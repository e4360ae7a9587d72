//! What the operator watches: the daemon's heartbeats (`daemon_state`), the templates that
//! failed at run time (`template_errors`), and the figures of `shenbao health` and
//! `status --json` read in one place.

use super::{Cols as _, Conn, Result, Store, time_col};
use super::{db_time, parse_db_time};
use chrono::{DateTime, Utc};

/// A part of the running daemon that records when it last did its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The last successful contact with the IMAP server (a poll, an IDLE wake, a fetch).
    Imap,
    /// The scheduler's last step (reminders, digests).
    Scheduler,
}

impl Component {
    fn key(self) -> &'static str {
        match self {
            Component::Imap => "imap",
            Component::Scheduler => "scheduler",
        }
    }
}

/// One heartbeat: when, whether that step went well, and its error when not.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub detail: Option<String>,
}

/// A template that failed at run time (the built-in one was used instead).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub at: DateTime<Utc>,
    pub template: String,
    pub error: String,
    pub message: Option<i64>,
}

/// The raw figures of `health` and `status --json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub imap: Option<Beat>,
    pub scheduler: Option<Beat>,
    /// Mails not yet sent (queued, sending, unconfirmed).
    pub outbox_waiting: i64,
    /// When the oldest of them was queued.
    pub oldest_waiting_since: Option<DateTime<Utc>>,
    /// The last error of the oldest waiting mail that was tried.
    pub oldest_waiting_error: Option<String>,
    pub dead_letters: i64,
    pub failed_messages: i64,
    /// Template failures in the last 7 days, newest first (at most 20).
    pub template_errors: Vec<TemplateError>,
}

/// How far back `template_errors` looks: an error fixed a week ago is no longer news.
pub const TEMPLATE_ERRORS_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// Records a template that failed at run time, inside the caller's transaction (the one that
/// queues the mail written with the built-in template instead): `render_or_builtin`'s error.
async fn insert_template_error(
    conn: Conn<'_>,
    template: &str,
    error: &str,
    message: Option<i64>,
    at: DateTime<Utc>,
) -> Result<()> {
    on_conn!(conn, |c| sqlx::query(
        "INSERT INTO template_errors (at, template, error, message) VALUES ($1, $2, $3, $4)",
    )
    .bind(db_time(at))
    .bind(template)
    .bind(error)
    .bind(message)
    .execute(c)
    .await?
    .rows_affected());
    Ok(())
}

/// [`insert_template_error`] inside a [`super::Tx`]. (The connection form stays while
/// `pipeline/` holds its transaction as one.)
pub async fn record_template_error(
    tx: &mut super::Tx,
    template: &str,
    error: &str,
    message: Option<i64>,
    at: DateTime<Utc>,
) -> Result<()> {
    insert_template_error(tx.conn(), template, error, message, at).await
}

impl Store {
    /// Records a heartbeat of `component` (one row per component, overwritten).
    pub async fn beat(
        &self,
        component: Component,
        at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO daemon_state (component, at, ok, detail) VALUES ($1, $2, $3, $4)
             ON CONFLICT (component) DO UPDATE SET at = excluded.at, ok = excluded.ok,
             detail = excluded.detail",
        )
        .bind(component.key())
        .bind(db_time(at))
        .bind(error.is_none())
        .bind(error)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Template failures since `since`, newest first (at most 20).
    pub async fn template_errors_since(&self, since: DateTime<Utc>) -> Result<Vec<TemplateError>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT at, template, error, message FROM template_errors WHERE at >= $1
             ORDER BY at DESC, id DESC LIMIT 20",
        )
        .bind(db_time(since))
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| TemplateError {
            at: time_col(r, 0),
            template: r.col(1),
            error: r.col(2),
            message: r.col(3),
        })
        .collect()))
    }

    async fn beat_of(&self, component: Component) -> Result<Option<Beat>> {
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT at, ok, detail FROM daemon_state WHERE component = $1"
        )
        .bind(component.key())
        .fetch_optional(p)
        .await?
        .and_then(|r| {
            Some(Beat {
                at: parse_db_time(&r.col::<String>(0))?,
                ok: r.col(1),
                detail: r.col(2),
            })
        })))
    }

    /// Everything `health` judges, as of `now`.
    pub async fn figures(&self, now: DateTime<Utc>) -> Result<Figures> {
        let (waiting, oldest_since, oldest_error, dead, failed) = on_pool!(self, |p| {
            let (waiting, oldest_since): (i64, Option<String>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(created_at) FROM outbox
                 WHERE status IN ('queued', 'sending', 'unconfirmed')",
            )
            .fetch_one(p)
            .await?;
            let oldest_error: Option<String> = sqlx::query_scalar(
                "SELECT last_error FROM outbox
                 WHERE status IN ('queued', 'sending', 'unconfirmed') AND last_error IS NOT NULL
                 ORDER BY created_at, id LIMIT 1",
            )
            .fetch_optional(p)
            .await?
            .flatten();
            let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
                .fetch_one(p)
                .await?;
            let failed: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status = 'failed'")
                    .fetch_one(p)
                    .await?;
            (waiting, oldest_since, oldest_error, dead, failed)
        });
        Ok(Figures {
            imap: self.beat_of(Component::Imap).await?,
            scheduler: self.beat_of(Component::Scheduler).await?,
            outbox_waiting: waiting,
            oldest_waiting_since: oldest_since.as_deref().and_then(parse_db_time),
            oldest_waiting_error: oldest_error,
            dead_letters: dead,
            failed_messages: failed,
            template_errors: self
                .template_errors_since(now - TEMPLATE_ERRORS_WINDOW)
                .await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Beat, Component, TemplateError, record_template_error};
    use chrono::{DateTime, Utc};

    /// Heartbeats overwrite their component's row; template errors are read back newest
    /// first within the window; `figures` counts the waiting mails, dead letters and failed
    /// messages. On both backends.
    #[tokio::test]
    async fn heartbeats_template_errors_and_figures_read_back() {
        for store in crate::store::test_stores("ops").await {
            let backend = store.backend();
            let now = DateTime::parse_from_rfc3339("2025-09-26T08:00:00+08:00")
                .expect("time")
                .with_timezone(&Utc);
            let at = |m: i64| now + chrono::Duration::minutes(m);

            let empty = store.figures(now).await.expect("figures");
            assert_eq!(empty, super::Figures::default(), "{backend}");

            store
                .beat(Component::Imap, at(-10), Some("连接被拒绝"))
                .await
                .expect("beat");
            store
                .beat(Component::Imap, at(-5), None)
                .await
                .expect("beat");
            store
                .beat(Component::Scheduler, at(-3), Some("模板错误"))
                .await
                .expect("beat");

            let failed =
                super::super::submissions::testing::message(&store, 1, "failed", None).await;
            super::super::submissions::testing::message(&store, 2, "processed", None).await;
            let mut tx = store.begin_write().await.expect("tx");
            record_template_error(&mut tx, "ack", "未知变量 x", Some(failed), at(-60))
                .await
                .expect("error");
            record_template_error(&mut tx, "reminder", "语法错误", None, at(-30))
                .await
                .expect("error");
            record_template_error(
                &mut tx,
                "digest",
                "一周多以前",
                None,
                now - chrono::Duration::days(8),
            )
            .await
            .expect("old error");
            let queued = |id: &str| crate::notify::compose::Outgoing {
                kind: crate::notify::compose::OutboxKind::Ack,
                message_id: id.to_string(),
                to: "a@example.test".to_string(),
                subject: id.to_string(),
                raw: b"raw".to_vec(),
                cc: None,
            };
            crate::store::enqueue(&mut tx, &queued("w1"), None, None, "default", at(-120))
                .await
                .expect("w1");
            let second =
                crate::store::enqueue(&mut tx, &queued("w2"), None, None, "default", at(-100))
                    .await
                    .expect("w2");
            let dead =
                crate::store::enqueue(&mut tx, &queued("d"), None, None, "default", at(-200))
                    .await
                    .expect("d");
            tx.commit().await.expect("commit");
            // The oldest waiting mail was never tried; the error is of the oldest one tried.
            store
                .outbox_failed(second, "421 稍后再试", Some(at(5)))
                .await
                .expect("retry later");
            store
                .outbox_failed(dead, "550 没有这个邮箱", None)
                .await
                .expect("dead");

            let errors = store
                .template_errors_since(now - super::TEMPLATE_ERRORS_WINDOW)
                .await
                .expect("errors");
            assert_eq!(
                errors,
                [
                    TemplateError {
                        at: at(-30),
                        template: "reminder".to_string(),
                        error: "语法错误".to_string(),
                        message: None,
                    },
                    TemplateError {
                        at: at(-60),
                        template: "ack".to_string(),
                        error: "未知变量 x".to_string(),
                        message: Some(failed),
                    },
                ],
                "{backend}"
            );
            assert_eq!(
                store
                    .template_errors_since(now - chrono::Duration::days(9))
                    .await
                    .expect("errors")
                    .len(),
                3,
                "{backend}"
            );

            let f = store.figures(now).await.expect("figures");
            assert_eq!(
                f.imap,
                Some(Beat {
                    at: at(-5),
                    ok: true,
                    detail: None
                }),
                "{backend}: the later beat overwrites"
            );
            assert_eq!(
                f.scheduler,
                Some(Beat {
                    at: at(-3),
                    ok: false,
                    detail: Some("模板错误".to_string())
                }),
                "{backend}"
            );
            assert_eq!(f.outbox_waiting, 2, "{backend}");
            assert_eq!(f.oldest_waiting_since, Some(at(-120)), "{backend}");
            assert_eq!(f.oldest_waiting_error.as_deref(), Some("421 稍后再试"));
            assert_eq!(f.dead_letters, 1, "{backend}");
            assert_eq!(f.failed_messages, 1, "{backend}");
            assert_eq!(f.template_errors, errors, "{backend}");
        }
    }
}
