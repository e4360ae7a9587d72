//! The outbox sender: takes due mails from the durable outbox and hands them to SMTP.
//!
//! A mail is marked sent only after the server accepted it; a transient failure (connection
//! refused, 4xx) is retried with exponential backoff, a permanent one (5xx) or the last of
//! `smtp.max_attempts` attempts moves it to the dead letters that `status` shows.
//!
//! A crash while a mail is being handed over leaves it unknown whether the server took it.
//! SMTP offers no way to ask, so every mail is also addressed (in the same transaction, so
//! both copies or neither are accepted) to the intake mailbox: the copy comes back through IMAP,
//! is recognised as ours and recorded. A send that was in flight at a crash is marked
//! `unconfirmed`; after `smtp.confirm_grace` the sender looks for that copy and sends again
//! only when it did not arrive. That is what turns "at least once" into "exactly once".
//!
//! "Arrived" means in the intake mailbox, not only in the database: after a crash the intake may
//! have a backlog, and the copy can sit unfetched in the intake folder long after the grace
//! (found by the fault-injection suite: kill -9 during a batch of 1,000 resent 4 acks). So when
//! the database has no record of it, the sender looks for the copy's Message-ID over IMAP in the
//! intake folder, the processed folder and INBOX; when it cannot look (IMAP down), it waits.

pub mod limit;
pub mod smtp;

use crate::clock::Clock;
use crate::config::{ImapConfig, SmtpConfig};
use crate::store::{OutboxRow, Store};
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("SMTP 配置错误：{0}")]
    Config(String),
    #[error("{0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("收件地址无效：{0}")]
    Address(String),
    #[error(transparent)]
    Session(#[from] crate::send::smtp::SmtpError),
}

impl SendError {
    /// The server refused for good (5xx), or the address cannot be used: do not retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            SendError::Smtp(e) => e.is_permanent(),
            SendError::Session(e) => e.is_permanent(),
            SendError::Address(_) => true,
            SendError::Config(_) => false,
        }
    }
}

/// Backoff before attempt `attempts + 1`: `initial` (`smtp.retry_initial`, 10 s by default),
/// then twice that, four times … capped at 30 minutes.
pub fn backoff(initial: Duration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    initial
        .saturating_mul(1 << exp)
        .min(crate::config::MAX_BACKOFF)
}

/// How often the sender looks at the outbox when nothing woke it: mails queued by another
/// process (`outbox retry`, `assign`, `remind`, `review notify`) cannot wake it, so they wait
/// at most this long. One indexed query each time.
const OUTBOX_POLL: Duration = Duration::from_secs(5);

/// Mails marked in flight (and then sent) with one transaction each way.
const SEND_BATCH: usize = 20;

/// While the intake has messages to catch up on, the sender sends one [`SEND_BATCH`] per
/// this interval, not as fast as it can.
const BACKLOG_PACE: Duration = Duration::from_secs(1);

pub struct Sender {
    pub store: Store,
    pub clock: Clock,
    pub cfg: SmtpConfig,
    /// The open SMTP sessions of the current burst of mails, up to `smtp.connections` (see
    /// [`crate::send::smtp`]).
    sessions: std::sync::Mutex<Vec<AsyncSmtpConnection>>,
    /// Lanes holding (or opening) a session right now, and the most there ever were at once
    /// (tests check that the lanes really work side by side).
    busy: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    pub wake: Arc<Notify>,
    copy_to: Option<lettre::Address>,
    /// The intake mailbox, to look for the copy of an interrupted send ([`Sender::with_copy_check`]).
    copy_check: Option<ImapConfig>,
    /// Slows sending while the intake has a backlog ([`Sender::with_backlog`]).
    pacer: Pacer,
    /// The daemon's name in the leases, when several daemons may share the outbox
    /// ([`Sender::with_duties`]).
    duties: Option<crate::duty::Duties>,
}

/// What [`Sender::send_lanes`] did with a chunk of mails.
#[derive(Default)]
struct Lanes<'r> {
    done: Vec<i64>,
    failed: Vec<(&'r OutboxRow, SendError)>,
    untried: Vec<i64>,
    /// A lane stopped at a transient failure.
    stopped: bool,
}

/// Spaces chunks of mails [`BACKLOG_PACE`] apart while the intake is catching up (see
/// [`Sender::with_backlog`]).
#[derive(Default)]
struct Pacer {
    backlog: Option<watch::Receiver<usize>>,
    /// When the last chunk started: kept across wake-ups, since the pipeline wakes the
    /// sender after every commit.
    last_chunk: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pacer {
    /// Waits, while the intake has a backlog, until [`BACKLOG_PACE`] has passed since the
    /// last chunk started or the backlog is gone; then notes the start of the next chunk.
    async fn pace(&self) {
        let last = self.last_chunk.lock().map(|l| *l).unwrap_or(None);
        if let (Some(rx), Some(last)) = (&self.backlog, last) {
            let mut rx = rx.clone();
            let caught_up = rx.wait_for(|&n| n == 0);
            // An error means the intake is gone: nothing to wait for.
            let _ = tokio::time::timeout_at(last + BACKLOG_PACE, caught_up).await;
        }
        if let Ok(mut l) = self.last_chunk.lock() {
            *l = Some(tokio::time::Instant::now());
        }
    }
}

/// When the waiting mails will have gone under the account's caps, for `status` and the
/// digest; `None` without caps or with nothing waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub waiting: usize,
    pub limits: crate::send::limit::Limits,
    pub all_sent_at: chrono::DateTime<chrono::Utc>,
    /// Deadline reminders that will only go after their deadline: (outbox id, deadline).
    pub reminders_too_late: Vec<(i64, chrono::DateTime<chrono::Utc>)>,
}

impl std::fmt::Display for Forecast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut caps = Vec::new();
        for (label, v) in [
            ("每分钟", self.limits.per_minute),
            ("每小时", self.limits.per_hour),
            ("每天", self.limits.per_day),
        ] {
            if let Some(n) = v {
                caps.push(format!("{label} {n} 个收件人"));
            }
        }
        write!(
            f,
            "发送限额（{}）：待发 {} 封，按限额预计 {} 全部发出",
            caps.join("、"),
            self.waiting,
            crate::clock::beijing(self.all_sent_at)
        )?;
        if !self.reminders_too_late.is_empty() {
            write!(
                f,
                "；其中 {} 封截止提醒要到截止时间之后才能发出，请提高 smtp.max_per_* 或另行通知",
                self.reminders_too_late.len()
            )?;
        }
        Ok(())
    }
}

/// What was sent within the caps' longest window before `now`, in recipients as the server
/// counts them: `To`, a `Cc`, and the intake copy when `copy`.
async fn recent_sends(
    store: &Store,
    limits: &crate::send::limit::Limits,
    copy: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<(chrono::DateTime<chrono::Utc>, u32)>> {
    Ok(store
        .sent_since(now - limits.horizon())
        .await?
        .into_iter()
        .map(|(t, n)| (t, n + u32::from(copy)))
        .collect())
}

/// The [`Forecast`] of `store`'s outbox under `cfg`'s caps at `now`.
pub async fn forecast(
    store: &Store,
    cfg: &SmtpConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Option<Forecast>> {
    let limits = cfg.limits;
    if limits.is_unlimited() {
        return Ok(None);
    }
    let waiting = store.waiting_outbox().await?;
    if waiting.is_empty() {
        return Ok(None);
    }
    let copy = u32::from(cfg.copy_to_intake);
    let sent = recent_sends(store, &limits, cfg.copy_to_intake, now).await?;
    let costs: Vec<u32> = waiting.iter().map(|w| w.2 + copy).collect();
    let times = crate::send::limit::send_times(&limits, &sent, &costs, now);
    let too_late = waiting
        .iter()
        .zip(&times)
        .filter_map(|((id, kind, _, deadline), at)| match deadline {
            Some(d)
                if kind
                    .parse::<crate::notify::compose::OutboxKind>()
                    .is_ok_and(|k| k.is_reminder())
                    && at > d =>
            {
                Some((*id, *d))
            }
            _ => None,
        })
        .collect();
    let last = times.last().copied().unwrap_or(now);
    Ok(Some(Forecast {
        waiting: waiting.len(),
        limits,
        all_sent_at: last,
        reminders_too_late: too_late,
    }))
}

/// Whether the copy of an interrupted send reached the intake mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyCheck {
    Arrived,
    Missing,
    /// The mailbox could not be searched now (IMAP unreachable): decide later.
    Unknown,
}

impl Sender {
    pub fn new(
        store: Store,
        clock: Clock,
        cfg: SmtpConfig,
        intake: &str,
        wake: Arc<Notify>,
    ) -> Result<Sender, SendError> {
        let copy_to = if cfg.copy_to_intake {
            Some(
                intake
                    .parse()
                    .map_err(|_| SendError::Config(format!("intake_address {intake} 无效")))?,
            )
        } else {
            None
        };
        Ok(Sender {
            store,
            clock,
            cfg,
            sessions: std::sync::Mutex::new(Vec::new()),
            busy: std::sync::atomic::AtomicUsize::new(0),
            peak: std::sync::atomic::AtomicUsize::new(0),
            wake,
            copy_to,
            copy_check: None,
            pacer: Pacer::default(),
            duties: None,
        })
    }

    /// Lets the sender search the intake mailbox (`imap`) for the copy of an interrupted send
    /// that the intake has not recorded yet. Without it, only the database is consulted.
    pub fn with_copy_check(mut self, imap: ImapConfig) -> Sender {
        self.copy_check = Some(imap);
        self
    }

    /// Lets the intake's backlog (messages still to process) slow the sender down. When
    /// hundreds of mails arrive at once, storing and reading them comes first: each answer
    /// sent costs the mail server as much work as a message received, and on a small machine
    /// shared with it, answering at full speed halved the rate at which applications were
    /// taken in (measured by the benchmark). Answers still leave meanwhile, [`SEND_BATCH`]
    /// every [`BACKLOG_PACE`], so a long backlog delays them and never stops them; the rest
    /// go at full speed once the intake has caught up.
    pub fn with_backlog(mut self, backlog: watch::Receiver<usize>) -> Sender {
        self.pacer.backlog = Some(backlog);
        self
    }

    /// Which outbox mail this sender takes: with other daemons (each may read its own
    /// mailbox and send in its own name), only the mail written in its own name, since its
    /// SMTP login must match the From and the copy of an interrupted send lands in its own
    /// mailbox; alone (a command, one daemon), all.
    fn own_mail(&self) -> Option<&str> {
        self.duties.as_ref().map(|_| self.cfg.from_address.as_str())
    }

    /// Shares the outbox with other daemons: mails are claimed in this daemon's name, and
    /// only the sends of daemons no longer alive are taken for interrupted.
    pub fn with_duties(mut self, duties: crate::duty::Duties) -> Sender {
        self.duties = Some(duties);
        self
    }

    /// Looks for the copy of `row` (see the module notes): recorded, or still in the mailbox.
    async fn copy_arrived(&self, row: &OutboxRow) -> anyhow::Result<CopyCheck> {
        if self.store.has_message_id(&row.message_id).await? {
            return Ok(CopyCheck::Arrived);
        }
        let (Some(imap), Some(_)) = (&self.copy_check, &self.copy_to) else {
            return Ok(CopyCheck::Missing);
        };
        let search = async {
            let mut s = crate::imap::conn::connect(imap).await?;
            let mut folders = vec![imap.folder.clone()];
            folders.extend(imap.processed_folder.clone());
            if !folders.iter().any(|f| f.eq_ignore_ascii_case("INBOX")) {
                folders.push("INBOX".to_string());
            }
            let query = format!(
                "HEADER Message-ID \"{}\"",
                row.message_id.replace(['"', '\\'], "")
            );
            let mut found = false;
            for f in &folders {
                // A folder that does not exist (yet) holds no copy.
                if s.examine(crate::imap::mutf7::encode(f)).await.is_err() {
                    continue;
                }
                if !s.uid_search(&query).await?.is_empty() {
                    found = true;
                    break;
                }
            }
            let _ = s.logout().await;
            anyhow::Ok(found)
        };
        match tokio::time::timeout(imap.timeout, search).await {
            Ok(Ok(true)) => Ok(CopyCheck::Arrived),
            Ok(Ok(false)) => Ok(CopyCheck::Missing),
            Ok(Err(e)) => {
                tracing::warn!(id = row.id, error = %format!("{e:#}"), "暂时无法在申报邮箱中查找中断发送的副本，稍后再判断");
                Ok(CopyCheck::Unknown)
            }
            Err(_) => {
                tracing::warn!(
                    id = row.id,
                    "在申报邮箱中查找中断发送的副本超时，稍后再判断"
                );
                Ok(CopyCheck::Unknown)
            }
        }
    }

    /// Recovers from a crash at start: sends that were in flight in the name of a daemon
    /// that is gone (this one's previous run, or another that died) or of no daemon become
    /// `unconfirmed`.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let n = self.recover_from_dead(true).await?;
        if n > 0 {
            tracing::warn!(count = n, grace = ?self.cfg.confirm_grace, "上次停止时有邮件正在发送；先查看它们的副本是否已到，再决定是否重发");
        }
        Ok(())
    }

    /// The sends in flight of daemons that are no longer alive (their liveness lease ran out,
    /// or they were processes of this machine that are gone) become `unconfirmed`; at start
    /// also those claimed by no daemon. Sends of live daemons are never touched.
    async fn recover_from_dead(&self, startup: bool) -> anyhow::Result<u64> {
        let senders = self.store.outbox_senders().await?;
        if senders.is_empty() {
            return Ok(0);
        }
        let live = crate::duty::live_daemons(&self.store).await?;
        let me = self.duties.as_ref().map(|d| d.holder.as_str());
        let mut n = 0;
        for holder in &senders {
            let dead = match holder.as_deref() {
                None => startup,
                Some(h) if Some(h) == me => false,
                Some(h) => !live.contains(h),
            };
            if dead {
                let k = self
                    .store
                    .outbox_recover_from(
                        holder.as_deref(),
                        self.clock.now(),
                        self.cfg.confirm_grace,
                    )
                    .await?;
                if k > 0 && !startup {
                    tracing::warn!(
                        count = k,
                        daemon = holder.as_deref().unwrap_or("-"),
                        "另一个守护进程停止时有邮件正在发送；先查看它们的副本是否已到，再决定是否重发"
                    );
                }
                n += k;
            }
        }
        Ok(n)
    }

    async fn send_one(&self, row: &OutboxRow) -> Result<(), SendError> {
        let from = self.cfg.from_address.parse().map_err(|_| {
            SendError::Config(format!("from_address {} 无效", self.cfg.from_address))
        })?;
        let to = row
            .to_addr
            .parse()
            .map_err(|_| SendError::Address(row.to_addr.clone()))?;
        let mut rcpt = vec![to];
        if let Some(cc) = &row.cc_addr {
            rcpt.push(cc.parse().map_err(|_| SendError::Address(cc.clone()))?);
        }
        if let Some(copy) = &self.copy_to {
            rcpt.push(copy.clone());
        }
        let envelope =
            Envelope::new(Some(from), rcpt).map_err(|e| SendError::Address(e.to_string()))?;
        // This lane holds a session (or is opening one) until the mail is through.
        let _busy = Busy::enter(&self.busy, &self.peak);
        let idle = self.sessions.lock().ok().and_then(|mut s| s.pop());
        let mut conn = match idle {
            Some(conn) if !conn.has_broken() => conn,
            _ => crate::send::smtp::connect(&self.cfg).await?,
        };
        let sent = tokio::time::timeout(self.cfg.timeout, conn.send(&envelope, &row.raw)).await;
        match sent {
            Ok(Ok(_)) => {
                if let Ok(mut s) = self.sessions.lock() {
                    s.push(conn);
                }
                Ok(())
            }
            Ok(Err(e)) => {
                conn.abort().await;
                Err(e.into())
            }
            Err(_) => Err(crate::send::smtp::SmtpError::Timeout(format!(
                "{}:{}",
                self.cfg.host, self.cfg.port
            ))
            .into()),
        }
    }

    /// SMTP sessions open and idle between two mails of a burst.
    pub fn open_sessions(&self) -> usize {
        self.sessions.lock().map_or(0, |s| s.len())
    }

    /// The most lanes that held (or were opening) an SMTP session at the same time.
    pub fn peak_sessions(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ends the sessions of a burst (QUIT), once the outbox has nothing more due.
    async fn close_sessions(&self) {
        let open = self
            .sessions
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        for mut conn in open {
            let _ = tokio::time::timeout(self.cfg.timeout, conn.quit()).await;
        }
    }

    /// Sends `rows` over up to `smtp.connections` sessions at once, each taking every n-th
    /// row in turn. A lane goes on after a permanent refusal (that mail is at fault) and stops
    /// at a transient one (the server is probably down): what it had not reached is left
    /// untried.
    async fn send_lanes<'r>(&self, rows: &[&'r OutboxRow]) -> Lanes<'r> {
        let n = usize::from(self.cfg.connections).clamp(1, rows.len().max(1));
        let lanes = (0..n).map(|lane| async move {
            let mut out = Lanes::default();
            let mut mine = rows.iter().skip(lane).step_by(n);
            for row in mine.by_ref() {
                match self.send_one(row).await {
                    Ok(()) => {
                        tracing::info!(id = row.id, kind = %row.kind, to = %row.to_addr, message_id = %row.message_id, "已发出");
                        out.done.push(row.id);
                    }
                    Err(e) => {
                        let permanent = e.is_permanent();
                        out.failed.push((row, e));
                        if !permanent {
                            out.stopped = true;
                            break;
                        }
                    }
                }
            }
            out.untried.extend(mine.map(|r| r.id));
            out
        });
        let mut all = Lanes::default();
        for lane in futures::future::join_all(lanes).await {
            all.done.extend(lane.done);
            all.failed.extend(lane.failed);
            all.untried.extend(lane.untried);
            all.stopped |= lane.stopped;
        }
        all
    }

    /// Recipients of `row` as the SMTP server counts them: `To`, a `Cc`, the intake copy.
    fn recipients(&self, row: &OutboxRow) -> u32 {
        1 + u32::from(row.cc_addr.is_some()) + u32::from(self.copy_to.is_some())
    }

    /// The leading rows of `chunk` that fit within `smtp.max_per_*` now, and, when some do not,
    /// when the next one will.
    async fn within_limits<'r>(
        &self,
        chunk: &'r [OutboxRow],
    ) -> anyhow::Result<(&'r [OutboxRow], Option<chrono::DateTime<chrono::Utc>>)> {
        let limits = self.cfg.limits;
        if limits.is_unlimited() {
            return Ok((chunk, None));
        }
        let now = self.clock.now();
        let mut sent = recent_sends(&self.store, &limits, self.copy_to.is_some(), now).await?;
        for (i, row) in chunk.iter().enumerate() {
            let cost = self.recipients(row);
            let a = crate::send::limit::allowance(&limits, &sent, cost, now);
            if let Some(at) = a.next_at {
                return Ok((&chunk[..i], Some(at)));
            }
            sent.push((now, cost));
        }
        Ok((chunk, None))
    }

    /// Sends everything due now; returns how many were sent.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        self.drain_among(None).await
    }

    /// Sends these outbox mails now (those still due among them) and nothing else: what
    /// `digest --now` and `review notify` queued, not whatever else waits for the daemon.
    pub async fn send_only(&self, ids: &[i64]) -> anyhow::Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.drain_among(Some(ids)).await
    }

    async fn drain_among(&self, only: Option<&[i64]>) -> anyhow::Result<usize> {
        let mut sent = 0;
        loop {
            // Another daemon may have died with sends in flight: looked into before every
            // batch of the daemon's drain, not only between drains, or a long backlog here
            // would keep them waiting until it is all sent.
            if only.is_none()
                && self.duties.is_some()
                && let Err(e) = self.recover_from_dead(false).await
            {
                tracing::warn!(error = %format!("{e:#}"), "查看其他守护进程中断的发送失败，稍后重试");
            }
            let due = self
                .store
                .due_outbox_among(self.clock.now(), 50, only, self.own_mail())
                .await?;
            if due.is_empty() {
                return Ok(sent);
            }
            for chunk in due.chunks(SEND_BATCH) {
                self.pacer.pace().await;
                // The account's caps: send what fits now; the rest waits until it does.
                let (chunk, wait_until) = self.within_limits(chunk).await?;
                if chunk.is_empty() {
                    if let Some(at) = wait_until {
                        let n = self.store.outbox_postpone_due(at).await?;
                        tracing::info!(
                            waiting = n,
                            until = %crate::clock::beijing(at),
                            "已达到发送限额，其余邮件稍后发送"
                        );
                    }
                    return Ok(sent);
                }
                // Claimed first, in this daemon's name: a mail another daemon claimed in the
                // meantime is left to it, and an interrupted send is looked into by one
                // daemon only, while it holds the claim.
                let seen: Vec<(i64, bool)> = chunk.iter().map(|r| (r.id, r.unconfirmed)).collect();
                let holder = self.duties.as_ref().map(|d| d.holder.as_str());
                let claimed = self.store.outbox_claim(&seen, holder).await?;
                let mut to_send = Vec::with_capacity(claimed.len());
                for row in chunk
                    .iter()
                    .filter(|r| claimed.binary_search(&r.id).is_ok())
                {
                    if row.unconfirmed {
                        match self.copy_arrived(row).await? {
                            CopyCheck::Arrived => {
                                tracing::info!(id = row.id, message_id = %row.message_id, "副本已到达：中断的那次发送其实已经成功");
                                self.store
                                    .outbox_confirmed(row.id, self.clock.now())
                                    .await?;
                                continue;
                            }
                            CopyCheck::Missing => {
                                tracing::info!(id = row.id, message_id = %row.message_id, "没有找到中断发送的副本：重新发送");
                            }
                            CopyCheck::Unknown => {
                                let later = self.clock.now()
                                    + chrono::Duration::from_std(self.cfg.confirm_grace)
                                        .unwrap_or_default();
                                self.store.outbox_unclaim_unconfirmed(row.id, later).await?;
                                continue;
                            }
                        }
                    }
                    to_send.push(row);
                }
                // One transaction counts the attempts of the whole chunk and one records it
                // sent: a crash in between leaves them `sending` in this daemon's name, which
                // recovery (here after a restart, or by another daemon once this one's lease
                // has run out) turns into `unconfirmed` and settles by their copies, one by one.
                let ids: Vec<i64> = to_send.iter().map(|r| r.id).collect();
                self.store.outbox_attempting(&ids).await?;
                let lanes = self.send_lanes(&to_send).await;
                self.store
                    .outbox_sent_many(&lanes.done, self.clock.now())
                    .await?;
                sent += lanes.done.len();
                for (row, e) in &lanes.failed {
                    let permanent = e.is_permanent();
                    let attempts = row.attempts + 1;
                    let give_up = permanent || attempts >= i64::from(self.cfg.max_attempts);
                    let retry_at = (!give_up).then(|| {
                        self.clock.now()
                            + chrono::Duration::from_std(backoff(
                                self.cfg.retry_initial,
                                row.attempts,
                            ))
                            .unwrap_or_default()
                    });
                    tracing::warn!(id = row.id, to = %row.to_addr, attempts, permanent, error = %e, "发送失败");
                    self.store
                        .outbox_failed(row.id, &e.to_string(), retry_at)
                        .await?;
                }
                if lanes.stopped {
                    // The server is probably down: do not hammer it with the rest now; they
                    // were not tried, so they are not counted as attempts.
                    self.store.outbox_not_tried(&lanes.untried).await?;
                    return Ok(sent);
                }
                if wait_until.is_some() {
                    // The caps stopped this chunk short: the next pass postpones the rest.
                    break;
                }
            }
        }
    }

    /// Runs until `shutdown` turns true: drains on wake-ups and when retries fall due.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.recover().await {
            tracing::error!(error = %format!("{e:#}"), "发件箱恢复失败");
        }
        loop {
            if let Err(e) = self.drain().await {
                tracing::error!(error = %format!("{e:#}"), "发件出错，稍后重试");
            }
            self.close_sessions().await;
            let wait = match self.store.next_outbox_due_from(self.own_mail()).await {
                Ok(Some(t)) => (t - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(200)),
                _ => OUTBOX_POLL,
            }
            .min(OUTBOX_POLL);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Counts a lane as busy while it lives, and records the peak.
struct Busy<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(
        busy: &'a std::sync::atomic::AtomicUsize,
        peak: &std::sync::atomic::AtomicUsize,
    ) -> Busy<'a> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = busy.fetch_add(1, Relaxed) + 1;
        peak.fetch_max(now, Relaxed);
        Busy(busy)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backlog_spaces_chunks_and_its_end_releases_them() {
        use tokio::time::{Duration as D, Instant};
        let (tx, rx) = watch::channel(0usize);
        let p = Pacer {
            backlog: Some(rx),
            ..Pacer::default()
        };
        // No backlog: one chunk after the other.
        let t = Instant::now();
        for _ in 0..3 {
            p.pace().await;
        }
        assert!(t.elapsed() < D::from_millis(300), "{:?}", t.elapsed());
        // A real backlog: the next chunk waits for the pace.
        tx.send_replace(500);
        let t = Instant::now();
        p.pace().await;
        let waited = t.elapsed();
        assert!(waited >= D::from_millis(900), "{waited:?}");
        assert!(waited < BACKLOG_PACE * 2, "{waited:?}");
        // The backlog drains while a chunk waits: it goes at once.
        let t = Instant::now();
        let drain = async {
            tokio::time::sleep(D::from_millis(100)).await;
            tx.send_replace(0);
        };
        tokio::join!(p.pace(), drain);
        assert!(t.elapsed() < D::from_millis(600), "{:?}", t.elapsed());
        // Without an intake (`shenbao send`, the tests' own senders) nothing is paced.
        let alone = Pacer::default();
        let t = Instant::now();
        alone.pace().await;
        alone.pace().await;
        assert!(t.elapsed() < D::from_millis(300), "{:?}", t.elapsed());
        // The intake gone (its end of the channel dropped) with a count left: nothing to
        // wait for.
        tx.send_replace(500);
        drop(tx);
        let t = Instant::now();
        p.pace().await;
        assert!(t.elapsed() < D::from_millis(300), "{:?}", t.elapsed());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let ten = Duration::from_secs(10);
        assert_eq!(backoff(ten, 0), Duration::from_secs(10));
        assert_eq!(backoff(ten, 1), Duration::from_secs(20));
        assert_eq!(backoff(ten, 3), Duration::from_secs(80));
        assert_eq!(backoff(ten, 20), Duration::from_secs(1800));
        assert_eq!(backoff(ten, -1), Duration::from_secs(10));
        // smtp.retry_initial = "1s" (the fault-injection tests): 1, 2, 4 … still capped.
        let one = Duration::from_secs(1);
        assert_eq!(backoff(one, 0), one);
        assert_eq!(backoff(one, 2), Duration::from_secs(4));
        assert_eq!(backoff(one, 16), crate::config::MAX_BACKOFF);
        assert_eq!(
            backoff(crate::config::MAX_BACKOFF, 1),
            crate::config::MAX_BACKOFF
        );
    }
}
