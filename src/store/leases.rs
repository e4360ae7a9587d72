//! The `leases` table: which daemon does which job when several share one database. A lease
//! names a job (`intake:account/folder`, `scheduler`, `daemon:…` for a daemon's own liveness),
//! the daemon holding it and until when. The holder renews it long before it expires; when
//! the holder dies, the lease runs out and another daemon takes it.
//!
//! Why a table and not PostgreSQL's advisory locks: a session lock lives as long as its
//! connection, and a pool hands connections out and back, so the lock would follow the pool,
//! not the daemon; a lease row also says who holds what for `status`, and works the same on
//! SQLite (two daemons started on one file by mistake share the work instead of doubling it).
//! Taking and renewing is one upsert whose `WHERE` lets it through only for the holder or
//! once the lease has expired, so of two daemons racing for a lease exactly one gets it.
//!
//! Times are the daemons' wall clocks (the campaign clock of a test may be set differently per
//! process); the daemons' machines must keep time (NTP), and the lease time is far longer
//! than any clock drift that matters.

use super::{Result, Store, db_time, parse_db_time};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// A lease as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Takes or renews the lease `name` for `holder` until `now + ttl`: `true` when `holder`
    /// holds it now (it was free, expired, or already `holder`'s), `false` when another
    /// daemon's lease is still running.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        let n = on_pool!(self, |p| {
            sqlx::query(
            "INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at) VALUES ($1, $2, $3, $3, $4)
             ON CONFLICT (name) DO UPDATE SET
               acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END,
               holder = excluded.holder,
               renewed_at = excluded.renewed_at,
               expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < excluded.renewed_at",
        )
        .bind(name)
        .bind(holder)
        .bind(db_time(now))
        .bind(db_time(expires))
        .execute(p)
        .await?
        .rows_affected()
        });
        Ok(n == 1)
    }

    /// Gives the lease back (a daemon stopping cleanly): another daemon takes it at once
    /// instead of after it expires. Nothing happens when `holder` does not hold it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "DELETE FROM leases WHERE name = $1 AND holder = $2"
        )
        .bind(name)
        .bind(holder)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Takes `name` over from `from`, known dead (a crashed daemon of this machine),
    /// without waiting for its lease to run out: `false` when `from` no longer holds it.
    pub async fn take_lease_from(
        &self,
        name: &str,
        from: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        let n = on_pool!(self, |p| {
            sqlx::query(
            "UPDATE leases SET holder = $3, acquired_at = $4, renewed_at = $4, expires_at = $5 WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(from)
        .bind(holder)
        .bind(db_time(now))
        .bind(db_time(expires))
        .execute(p)
        .await?
        .rows_affected()
        });
        Ok(n == 1)
    }

    /// Forgets the liveness leases (`daemon:…`) of daemons that stopped answering before
    /// `before` (crashed, never given back): `status` stops listing them. Returns how many.
    pub async fn forget_lost_daemons(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(on_pool!(self, |p| sqlx::query(
            "DELETE FROM leases WHERE name LIKE 'daemon:%' AND expires_at < $1"
        )
        .bind(db_time(before))
        .execute(p)
        .await?
        .rows_affected()))
    }

    /// Every lease, by name (expired ones included: `status` says so).
    pub async fn leases(&self) -> Result<Vec<Lease>> {
        let time = |s: String| parse_db_time(&s).unwrap_or_default();
        Ok(on_pool!(self, |p| sqlx::query(
            "SELECT name, holder, acquired_at, renewed_at, expires_at FROM leases ORDER BY name"
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| Lease {
            name: r.get(0),
            holder: r.get(1),
            acquired_at: time(r.get(2)),
            renewed_at: time(r.get(3)),
            expires_at: time(r.get(4)),
        })
        .collect()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use std::time::Duration;

    /// One holder at a time; the holder renews; another takes over only once the lease has
    /// expired (or was given back), with its own acquisition time. On both backends.
    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_expires() {
        for store in crate::store::test_stores("leases").await {
            let b = store.backend();
            let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
            let s = |n| t0 + chrono::Duration::seconds(n);
            let ttl = Duration::from_secs(10);
            assert!(
                store
                    .take_lease("intake:a/INBOX", "A", s(0), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            assert!(
                !store
                    .take_lease("intake:a/INBOX", "B", s(1), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            // Renewed by its holder: still A's, acquired at t0, now until s(15).
            assert!(
                store
                    .take_lease("intake:a/INBOX", "A", s(5), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            assert!(
                !store
                    .take_lease("intake:a/INBOX", "B", s(12), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            // Another lease is independent.
            assert!(
                store
                    .take_lease("scheduler", "B", s(12), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            let leases = store.leases().await.unwrap();
            assert_eq!(leases.len(), 2, "{b}");
            assert_eq!(
                (leases[0].name.as_str(), leases[0].holder.as_str()),
                ("intake:a/INBOX", "A")
            );
            assert_eq!(leases[0].acquired_at, s(0), "{b}");
            assert_eq!(leases[0].expires_at, s(15), "{b}");
            // A died: after s(15), B takes over, acquired now.
            assert!(
                store
                    .take_lease("intake:a/INBOX", "B", s(16), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            assert!(
                !store
                    .take_lease("intake:a/INBOX", "A", s(17), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            let l = &store.leases().await.unwrap()[0];
            assert_eq!((l.holder.as_str(), l.acquired_at), ("B", s(16)), "{b}");
            // Given back: free at once; a non-holder's release changes nothing.
            store.release_lease("scheduler", "A").await.unwrap();
            assert!(
                !store
                    .take_lease("scheduler", "A", s(18), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
            store.release_lease("scheduler", "B").await.unwrap();
            assert!(
                store
                    .take_lease("scheduler", "A", s(18), ttl)
                    .await
                    .unwrap(),
                "{b}"
            );
        }
    }

    /// Many takers at the same instant: exactly one wins (on PostgreSQL the upserts really
    /// run concurrently, on separate connections).
    #[tokio::test]
    async fn racing_takers_get_one_lease() {
        for store in crate::store::test_stores("lease_race").await {
            let now = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .take_lease("scheduler", &format!("D{i}"), now, Duration::from_secs(30))
                            .await
                            .expect("take")
                    })
                })
                .collect();
            let mut won = 0;
            for t in tasks {
                won += usize::from(t.await.expect("task"));
            }
            assert_eq!(won, 1, "{}", store.backend());
        }
    }
}
