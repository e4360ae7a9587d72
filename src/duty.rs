//! Who does which job when several daemons share one database: each job (the intake folder,
//! the scheduler) is done by the daemon holding its lease ([`crate::store::leases`]), and every
//! daemon keeps a lease on its own name so the others can tell it is alive (the sends it has in
//! flight are left alone while it is).
//!
//! A daemon waits for a job's lease, holds it by renewing it every third of the lease time,
//! and gives it back when it stops cleanly. When a renewal is refused (another daemon took
//! the lease after this one stalled for longer than the lease) or the database cannot be
//! reached for a whole lease time, the job is given up at once: the intake drops its session
//! and waits for the lease again. Nothing is lost by that: every step of the intake commits
//! what it did, and a message stored twice or processed twice is recognised as the same.
//!
//! Lease times are wall-clock times ([`Duties::now`]), not the campaign clock: they are about
//! processes being alive, which all the daemons must judge alike.

use crate::store::Store;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::watch;

/// The lease of the job of reading `folder` of `account`.
pub fn intake_job(account: &str, folder: &str) -> String {
    format!("intake:{account}/{folder}")
}

/// The lease of the scheduler (reminders, digests): one daemon runs it.
pub const SCHEDULER: &str = "scheduler";

/// The lease that says the daemon `holder` is alive.
pub fn alive_job(holder: &str) -> String {
    format!("daemon:{holder}")
}

/// A lease as people read it (`status` and the board): what the job is and who does it,
/// and whether its holder is online (with since/until) or lost.
pub fn describe(l: &crate::store::leases::Lease, now: DateTime<Utc>) -> (String, String, bool) {
    let what = if let Some(holder) = l.name.strip_prefix("daemon:") {
        format!("守护进程 {holder}")
    } else if let Some(folder) = l.name.strip_prefix("intake:") {
        format!("收件 {folder}：由 {} 负责", l.holder)
    } else if l.name == SCHEDULER {
        format!("排期（提醒、摘要）：由 {} 负责", l.holder)
    } else {
        format!("{}：由 {} 负责", l.name, l.holder)
    };
    let live = l.expires_at >= now;
    let state = if live {
        format!(
            "在线，自 {} 起，续租至 {}",
            crate::clock::beijing(l.acquired_at),
            crate::clock::beijing(l.expires_at)
        )
    } else {
        format!(
            "已失联，租约于 {} 到期，其他守护进程会接手",
            crate::clock::beijing(l.expires_at)
        )
    };
    (what, state, live)
}

#[derive(Debug, Clone)]
pub struct Duties {
    store: Store,
    /// This daemon's name in the leases: host, process id and a random part (a restarted
    /// daemon is a new holder even with the same pid).
    pub holder: String,
    pub ttl: Duration,
    /// The From address this daemon sends in, noted on its liveness lease: the others leave
    /// its outbox mail to it while it is alive.
    pub mail_from: Option<String>,
}

/// This machine's name, as daemons' lease holders start with it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether `holder` (`host/pid/random`) names a daemon of the machine `here` whose process
/// is gone. (A reused process id reads as alive: its lease then runs out as any other.)
fn gone_from(here: &str, holder: &str) -> bool {
    let mut theirs = holder.splitn(3, '/');
    let (Some(host), Some(pid)) = (theirs.next(), theirs.next()) else {
        return false;
    };
    host == here
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// The daemons alive now: their liveness lease ([`alive_job`]) has not run out and, for one
/// of this machine, its process still runs. The one judgement of "alive" that taking over
/// work ([`Duties::take`]) and taking back sends in flight ([`crate::send`]) share; a
/// command without duties of its own (`digest --now`) asks it too.
pub async fn live_daemons(
    store: &Store,
) -> crate::store::Result<std::collections::HashSet<String>> {
    let now = Duties::now();
    let here = hostname();
    Ok(store
        .leases()
        .await?
        .into_iter()
        .filter(|l| l.expires_at >= now)
        .filter_map(|l| l.name.strip_prefix("daemon:").map(str::to_string))
        .filter(|h| !gone_from(&here, h))
        .collect())
}

impl Duties {
    pub fn new(store: Store, ttl: Duration) -> Duties {
        let host = hostname();
        let mut r = [0u8; 3];
        let _ = getrandom::fill(&mut r);
        Duties {
            store,
            holder: format!("{host}/{}/{}", std::process::id(), hex::encode(r)),
            ttl,
            mail_from: None,
        }
    }

    /// The From address this daemon sends in (see [`Duties::mail_from`]).
    pub fn sending_as(mut self, from: &str) -> Duties {
        self.mail_from = Some(from.to_lowercase());
        self
    }

    /// Wall-clock time, which every daemon judges leases by.
    pub fn now() -> DateTime<Utc> {
        Utc::now()
    }

    /// How often a held lease is renewed (and a wanted one asked for again).
    pub fn every(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes or renews `job`; `false` when another daemon holds it or the database did not
    /// answer (logged). A lease left by a daemon of this machine that no longer runs (a
    /// crash, `kill -9`, a restart by systemd) is taken over at once instead of after it
    /// expires.
    pub async fn take(&self, job: &str) -> bool {
        let now = Self::now();
        let taken = async {
            if self
                .store
                .take_lease(job, &self.holder, now, self.ttl)
                .await?
            {
                return Ok(true);
            }
            let holder = self
                .store
                .leases()
                .await?
                .into_iter()
                .find(|l| l.name == job)
                .map(|l| l.holder);
            match holder {
                Some(h) if self.is_dead_here(&h) => {
                    let took = self
                        .store
                        .take_lease_from(job, &h, &self.holder, now, self.ttl)
                        .await?;
                    if took {
                        tracing::info!(job, previous = %h, "本机上次运行的守护进程已不在，立即接手它的工作");
                    }
                    Ok(took)
                }
                _ => Ok::<_, crate::store::StoreError>(false),
            }
        };
        match taken.await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(job, error = %e, "续租失败（数据库暂时连不上），稍后重试");
                false
            }
        }
    }

    /// Whether `holder` names another daemon of this machine whose process is gone.
    pub fn is_dead_here(&self, holder: &str) -> bool {
        let here = self.holder.split('/').next().unwrap_or_default();
        holder != self.holder && gone_from(here, holder)
    }

    /// Waits until this daemon holds `job`; `false` when asked to stop first.
    pub async fn wait_for(&self, job: &str, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut said = false;
        loop {
            if *shutdown.borrow() {
                return false;
            }
            if self.take(job).await {
                if said {
                    tracing::info!(job, holder = %self.holder, "接手了这项工作（原来的守护进程已停止或失联）");
                }
                return true;
            }
            if !said {
                tracing::info!(
                    job,
                    "另一个守护进程正在做这项工作，本进程待命，它停止时接手"
                );
                said = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every()) => {}
                _ = crate::shutdown::requested(shutdown) => return false,
            }
        }
    }

    /// Renews `job` until it cannot: returns when another daemon took it, or when no renewal
    /// succeeded for a whole lease time (the lease may have run out).
    pub async fn keep(&self, job: &str) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.every()).await;
            match self
                .store
                .take_lease(job, &self.holder, Self::now(), self.ttl)
                .await
            {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!(
                        job,
                        "这项工作已被另一个守护进程接手（本进程曾停顿超过租约时间），本进程停下这项工作"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(job, error = %e, "续租失败（数据库暂时连不上）");
                    // A renewal before the lease ran out leaves a third of it to spare.
                    if last.elapsed() + self.every() >= self.ttl {
                        tracing::warn!(job, "一个租约时间内都没能续租，本进程停下这项工作");
                        return;
                    }
                }
            }
        }
    }

    /// Gives `job` back (stopping cleanly): another daemon takes it at once.
    pub async fn release(&self, job: &str) {
        if let Err(e) = self.store.release_lease(job, &self.holder).await {
            tracing::warn!(job, error = %e, "交还租约失败，它将在租约时间后自动失效");
        }
    }

    /// Keeps this daemon's own liveness lease until shutdown, then gives it back.
    /// Takes or renews this daemon's liveness lease, with the From it sends in noted on it.
    pub async fn announce(&self) {
        let job = alive_job(&self.holder);
        if self.take(&job).await
            && let Some(from) = &self.mail_from
        {
            let _ = self.store.note_lease(&job, &self.holder, from).await;
        }
    }

    pub async fn stay_alive(self, mut shutdown: watch::Receiver<bool>) {
        let job = alive_job(&self.holder);
        loop {
            self.announce().await;
            // Daemons lost for a day (crashed, never back) leave `status`'s list.
            let _ = self
                .store
                .forget_lost_daemons(Self::now() - chrono::Duration::days(1))
                .await;
            tokio::select! {
                _ = tokio::time::sleep(self.every()) => {}
                _ = crate::shutdown::requested(&mut shutdown) => break,
            }
        }
        self.release(&job).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Duties;
    use std::time::Duration;

    /// Alive: a daemon whose liveness lease runs, of another machine or of this one with its
    /// process running; not one whose lease ran out, nor one of this machine whose process is
    /// gone (its lease still running). On both backends.
    #[tokio::test]
    async fn live_daemons_are_those_with_a_running_lease_and_process() {
        for store in crate::store::test_stores("duty_live").await {
            let me = Duties::new(store.clone(), Duration::from_secs(30));
            let host = me.holder.split('/').next().expect("host").to_string();
            let now = Duties::now();
            let gone = format!("{host}/4000000000/abc");
            let running = format!("{host}/1/abc");
            let remote = "elsewhere.example/4000000000/abc".to_string();
            let expired = "elsewhere.example/7/def".to_string();
            for (holder, at) in [
                (&gone, now),
                (&running, now),
                (&remote, now),
                (&expired, now - chrono::Duration::seconds(60)),
            ] {
                assert!(
                    store
                        .take_lease(
                            &super::alive_job(holder),
                            holder,
                            at,
                            Duration::from_secs(30)
                        )
                        .await
                        .expect("lease")
                );
            }
            // A job lease is not a daemon's liveness.
            assert!(
                store
                    .take_lease(super::SCHEDULER, &remote, now, Duration::from_secs(30))
                    .await
                    .expect("lease")
            );
            let mut live: Vec<String> = super::live_daemons(&store)
                .await
                .expect("live")
                .into_iter()
                .collect();
            live.sort();
            let mut want = vec![running.clone(), remote.clone()];
            want.sort();
            assert_eq!(live, want, "{}", store.backend());
        }
    }

    /// A crashed daemon of this machine is told apart from a live one and from any daemon of
    /// another machine; the job it held is taken over at once, a live daemon's is not.
    #[tokio::test]
    async fn a_dead_local_holder_is_taken_over_at_once() {
        let store = crate::store::test_stores("duty").await.swap_remove(0);
        let me = Duties::new(store.clone(), Duration::from_secs(30));
        let host = me.holder.split('/').next().expect("host").to_string();
        let dead = format!("{host}/4000000000/abc");
        let alive = format!("{host}/1/abc");
        let remote = "elsewhere.example/4000000000/abc";
        assert!(me.is_dead_here(&dead));
        assert!(!me.is_dead_here(&alive), "pid 1 runs");
        assert!(!me.is_dead_here(remote));
        assert!(!me.is_dead_here(&me.holder));
        assert!(!me.is_dead_here("garbage"));
        let now = Duties::now();
        for (job, holder, taken) in [
            ("a", &dead, true),
            ("b", &alive, false),
            ("c", &remote.to_string(), false),
        ] {
            assert!(
                store
                    .take_lease(job, holder, now, Duration::from_secs(30))
                    .await
                    .expect("take")
            );
            assert_eq!(me.take(job).await, taken, "{holder}");
        }
    }
}
