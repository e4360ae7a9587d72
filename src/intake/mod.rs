//! IMAP intake: watch the intake folder and hand every new message to the store, then the
//! pipeline, then move it to the processed folder.
//!
//! * UID commands only, never sequence numbers; the watermark is (UIDVALIDITY, last UID),
//!   committed in the same transaction as the message it covers.
//! * New mail is noticed by IDLE, and IDLE is ended and re-issued every `poll_interval` (well
//!   before the 29 minutes of RFC 2177): that re-issue doubles as the backstop poll, because
//!   IDLE alone silently dies behind NAT boxes and on some servers. Every command runs under a
//!   timeout, so a dead connection becomes an error and a reconnect, never a hang. A server
//!   that does not announce IDLE in CAPABILITY is polled (NOOP and a catch-up every
//!   `poll_interval`) instead.
//! * On the very first start the watermark is "now": mail already in the folder is not
//!   answered (unless `--backfill-since`). `--backfill-since` on a later start lowers the
//!   watermark to that date once per run, so the folder is re-read from there. If UIDVALIDITY
//!   changes, the folder is rescanned. Either way messages already stored (same Message-ID and
//!   sha256) are not processed twice.
//! * Network errors never end the daemon: it reconnects with backoff.

use crate::imap::{conn, mutf7};

use crate::clock::Clock;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::store::{Fetched, ImapKey, Inserted, Store, StoredBlob};
use chrono::{NaiveDate, Utc};
use conn::Session;
use futures::TryStreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Conn(#[from] conn::ConnError),
    #[error("IMAP 错误：{0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("IMAP 命令超时（{0}），连接可能已断开")]
    Timeout(&'static str),
    #[error("文件夹 {0} 没有 UIDVALIDITY，服务器不支持 UID")]
    NoUidValidity(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

type Result<T> = std::result::Result<T, IntakeError>;

/// Messages up to this size are fetched whole; a larger one in parts of this size, each
/// written to disk before the next is asked for. 2 MiB keeps the daemon's memory flat
/// whatever arrives, at the cost of one round trip per 2 MiB.
const FETCH_PART: u32 = 2 << 20;
/// At most this many small messages per UID FETCH (and per UID MOVE) ...
const FETCH_BATCH: usize = 50;
/// ... and at most this many bytes of them: one command instead of fifty round trips, without
/// holding more than a few megabytes at once.
const FETCH_BATCH_BYTES: u64 = 8 << 20;
/// The first batch of a catch-up is shorter (see there).
const FIRST_BATCH: usize = 10;

pub struct Intake {
    pub store: Store,
    pub clock: Clock,
    pub cfg: Arc<Config>,
    pub pipeline: Arc<Pipeline>,
    pub backfill_since: Option<NaiveDate>,
    /// Set once `backfill_since` has been applied: a reconnect does not re-read the folder.
    pub backfilled: std::sync::atomic::AtomicBool,
    /// How many messages (not counting our own copies) the current catch-up still has to
    /// process; the sender paces itself until it is zero ([`crate::send::Sender::with_backlog`]).
    pub backlog: watch::Sender<usize>,
    /// The folder is read only while this daemon holds its lease ([`crate::duty`]).
    pub duties: crate::duty::Duties,
}

/// Sets the backlog back to zero however a catch-up ends (done, error, dropped connection):
/// a stale count would keep the sender slowed down.
struct BacklogReset<'a>(&'a watch::Sender<usize>);

impl Drop for BacklogReset<'_> {
    fn drop(&mut self) {
        self.0.send_replace(0);
    }
}

/// Whether a `Message-ID:` header field (as `BODY[HEADER.FIELDS (MESSAGE-ID)]` returns it)
/// names one of ours: `<…@own_domain>`, in any case, folded or not.
fn names_own_message_id(field: &[u8], own_domain: &str) -> bool {
    let text = String::from_utf8_lossy(field).to_lowercase();
    let suffix = format!("@{}>", own_domain.to_lowercase());
    text.split_once(':')
        .is_some_and(|(name, value)| name.trim() == "message-id" && value.contains(&suffix))
}

/// A UID set for a command: `5,6,9`.
/// How the session waits for new mail between catch-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// IDLE, re-issued after this long (the backstop poll).
    Idle(Duration),
    /// The server has no IDLE (RFC 2177 is optional): look every `poll_interval`.
    Poll(Duration),
}

/// [`Wait`] for a server that does or does not announce IDLE in its CAPABILITY. Without
/// IDLE, issuing it anyway fails and every failure would be a reconnect.
fn wait_mode(has_idle: bool, poll_interval: Duration, idle_renew: Duration) -> Wait {
    if has_idle {
        Wait::Idle(poll_interval.min(idle_renew))
    } else {
        Wait::Poll(poll_interval.max(Duration::from_secs(1)))
    }
}

/// The watermark (last UID taken as read) when starting with `--backfill-since`: just before
/// the first UID found since that date, never above the current watermark (`current`, when
/// the folder was read before) and never above what the folder holds (`uidnext - 1`). A
/// date that finds nothing leaves the watermark where it was (or at "now" on a first start).
/// Lowering the watermark of a folder read before is safe: mail already stored (same
/// Message-ID and sha256) is skipped, so nobody is answered twice.
fn backfill_watermark(
    current: Option<u32>,
    since_first_uid: Option<Option<u32>>,
    uidnext: u32,
) -> u32 {
    let now = current.unwrap_or_else(|| uidnext.saturating_sub(1));
    match since_first_uid {
        Some(Some(first)) => first.saturating_sub(1).min(now),
        _ => now,
    }
}

fn uid_set(uids: impl Iterator<Item = u32>) -> String {
    uids.map(|u| u.to_string()).collect::<Vec<_>>().join(",")
}

/// A fetched batch, stored and waiting to be processed and moved.
struct StoredBatch {
    /// Every UID of the batch still in the folder, with its new message id (`None`: a
    /// duplicate of a message already stored).
    stored: Vec<(u32, Option<i64>)>,
    /// The new messages, with their sizes, for [`Pipeline::process_stream`].
    fresh: Vec<(i64, u64)>,
    /// When its fetch started.
    fetched: std::time::Instant,
}

impl StoredBatch {
    fn new(
        batch: &[(u32, u32, Option<chrono::DateTime<Utc>>)],
        inserted: Vec<(u32, Inserted, bool)>,
        fetched: std::time::Instant,
    ) -> StoredBatch {
        let mut stored = Vec::with_capacity(inserted.len());
        let mut fresh = Vec::with_capacity(inserted.len());
        for (uid, inserted, own_copy) in inserted {
            match inserted {
                // Recorded as processed already: moved with the batch, not processed.
                Inserted::New(id) if own_copy => stored.push((uid, Some(id))),
                Inserted::New(id) => {
                    let size = batch.iter().find(|t| t.0 == uid).map_or(0, |t| t.1);
                    fresh.push((id, u64::from(size)));
                    stored.push((uid, Some(id)));
                }
                Inserted::Duplicate(id) => {
                    tracing::info!(
                        uid,
                        existing = id,
                        "已经存过（Message-ID 和内容都相同），不再处理"
                    );
                    stored.push((uid, None));
                }
            }
        }
        StoredBatch {
            stored,
            fresh,
            fetched,
        }
    }
}

impl Intake {
    fn account(&self) -> String {
        format!(
            "{}@{}:{}",
            self.cfg.imap.user, self.cfg.imap.host, self.cfg.imap.port
        )
    }

    async fn timed<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<T, async_imap::error::Error>>,
    {
        tokio::time::timeout(self.cfg.imap.timeout, f)
            .await
            .map_err(|_| IntakeError::Timeout(what))?
            .map_err(IntakeError::from)
    }

    /// Runs until shutdown: reads the folder while this daemon holds its lease, waits for the
    /// lease while another daemon does, and takes over when that one stops or dies.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let job = crate::duty::intake_job(&self.account(), &self.cfg.imap.folder);
        loop {
            if !self.duties.wait_for(&job, &mut shutdown).await {
                return;
            }
            let lost = tokio::select! {
                _ = self.serve(&mut shutdown) => false,
                _ = self.duties.keep(&job) => true,
            };
            if !lost {
                self.duties.release(&job).await;
                return;
            }
            // Another daemon reads the folder now; whatever this one was doing is either
            // committed or will be redone by it (messages are recognised when stored again).
        }
    }

    /// Reads the folder until shutdown; reconnects with backoff on any error.
    async fn serve(&self, shutdown: &mut watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = std::time::Instant::now();
            match self.session(shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::warn!(error = %e, retry_in = ?backoff, "IMAP 会话结束，正在重连");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = crate::shutdown::requested(shutdown) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    async fn session(&self, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        let cfg = &self.cfg.imap;
        let mut s = conn::connect(cfg).await?;
        for p in [&cfg.processed_folder, &cfg.staff_folder]
            .into_iter()
            .flatten()
        {
            // Already exists → NO; that is the normal case.
            let _ = self.timed("CREATE", s.create(mutf7::encode(p))).await;
        }
        let folder = mutf7::encode(&cfg.folder);
        let mbox = self.timed("SELECT", s.select(&folder)).await?;
        let uidvalidity = mbox
            .uid_validity
            .ok_or_else(|| IntakeError::NoUidValidity(cfg.folder.clone()))?;
        let uidnext = mbox.uid_next.unwrap_or(1);
        let caps = self.timed("CAPABILITY", s.capabilities()).await?;
        let has_move = caps.has_str("MOVE");
        let wait = wait_mode(caps.has_str("IDLE"), cfg.poll_interval, cfg.idle_renew);
        if let Wait::Poll(every) = wait {
            tracing::info!(every = ?every, "IMAP 服务器不支持 IDLE，改为定时查看收件文件夹");
        }
        let account = self.account();
        let now = self.clock.now();
        use std::sync::atomic::Ordering;
        let since_uid = match self.backfill_since {
            Some(date) if !self.backfilled.load(Ordering::Relaxed) => {
                let q = format!("SINCE {}", date.format("%-d-%b-%Y"));
                let uids = self.timed("UID SEARCH", s.uid_search(q)).await?;
                Some(uids.iter().min().copied())
            }
            _ => None,
        };
        match self.store.mailbox_state(&account, &cfg.folder).await? {
            None => {
                let start = backfill_watermark(None, since_uid, uidnext);
                tracing::info!(folder = %cfg.folder, uidvalidity, watermark = start, "第一次启动：记下当前位置，已有的邮件不处理");
                self.store
                    .set_mailbox_state(&account, &cfg.folder, uidvalidity, start, now)
                    .await?;
            }
            Some((v, last)) if v == uidvalidity && since_uid.is_some() => {
                let start = backfill_watermark(Some(last), since_uid, uidnext);
                if start < last {
                    // Mail already stored (same Message-ID and sha256) is skipped, not answered
                    // again; only mail never seen is registered and answered.
                    tracing::info!(folder = %cfg.folder, from = last, to = start, "补处理：从指定日期起重读收件文件夹，已登记的邮件跳过");
                    self.store
                        .rewind_mailbox_state(&account, &cfg.folder, uidvalidity, start, now)
                        .await?;
                } else {
                    tracing::info!(folder = %cfg.folder, watermark = last, "补处理：文件夹中没有比已读位置更早的邮件");
                }
            }
            Some((v, _)) if v != uidvalidity => {
                tracing::warn!(folder = %cfg.folder, old = v, new = uidvalidity, "UIDVALIDITY 变了：重新扫描文件夹，已知的邮件跳过");
                self.store
                    .set_mailbox_state(&account, &cfg.folder, uidvalidity, 0, now)
                    .await?;
            }
            Some(_) => {}
        }
        if since_uid.is_some() {
            self.backfilled.store(true, Ordering::Relaxed);
        }
        tracing::info!(folder = %cfg.folder, uidvalidity, "IMAP 已连接");

        loop {
            self.pipeline.process_pending().await?;
            self.retry_moves(&mut s, &account, uidvalidity, has_move)
                .await?;
            self.catch_up(&mut s, &account, uidvalidity, has_move)
                .await?;
            // The server answered: what `shenbao health` reads as the last IMAP contact.
            self.store
                .beat(crate::store::ops::Component::Imap, self.clock.now(), None)
                .await?;
            if *shutdown.borrow() {
                let _ = self.timed("LOGOUT", s.logout()).await;
                return Ok(());
            }
            // Mail that arrived while we were fetching was announced (EXISTS) in the answers
            // to our own commands, and the server will not announce it again in IDLE: look
            // before idling, or it waits for the next backstop poll. Draining also keeps the
            // channel from growing in a long-running session.
            let mut announced = false;
            while let Ok(r) = s.unsolicited_responses.try_recv() {
                announced |= matches!(
                    r,
                    async_imap::types::UnsolicitedResponse::Exists(_)
                        | async_imap::types::UnsolicitedResponse::Recent(_)
                );
            }
            if announced {
                continue;
            }
            let wait = match wait {
                Wait::Idle(w) => w,
                Wait::Poll(every) => {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = crate::shutdown::requested(shutdown) => {
                            let _ = self.timed("LOGOUT", s.logout()).await;
                            return Ok(());
                        }
                    }
                    // NOOP lets the server announce new mail and proves the connection alive.
                    self.timed("NOOP", s.noop()).await?;
                    continue;
                }
            };
            let mut idle = s.idle();
            tokio::time::timeout(cfg.timeout, idle.init())
                .await
                .map_err(|_| IntakeError::Timeout("IDLE"))??;
            let woke = {
                let (fut, _stop) = idle.wait_with_timeout(wait);
                tokio::select! {
                    r = fut => Some(r),
                    _ = crate::shutdown::requested(shutdown) => None,
                }
            };
            s = tokio::time::timeout(cfg.timeout, idle.done())
                .await
                .map_err(|_| IntakeError::Timeout("DONE"))??;
            match woke {
                Some(Ok(r)) => tracing::debug!(?r, "IDLE 结束：邮箱有变化"),
                Some(Err(e)) => return Err(e.into()),
                None => {
                    let _ = self.timed("LOGOUT", s.logout()).await;
                    return Ok(());
                }
            }
        }
    }

    /// Fetches, stores, processes and moves every message above the watermark.
    async fn catch_up(
        &self,
        s: &mut Session,
        account: &str,
        uidvalidity: u32,
        has_move: bool,
    ) -> Result<()> {
        let cfg = &self.cfg.imap;
        let last = match self.store.mailbox_state(account, &cfg.folder).await? {
            Some((v, last)) if v == uidvalidity => last,
            _ => 0,
        };
        let set = format!("{}:*", last.saturating_add(1));
        // Each response is reduced to (UID, size, date) as it arrives: a backlog of 10,000
        // messages kept as 10,000 parsed responses (each holding its read buffer) cost 60 MB.
        let mut todo: Vec<(u32, u32, Option<chrono::DateTime<Utc>>)> = Vec::new();
        // Our own copies (see `send`), told by the Message-ID: they do not count as a backlog
        // that holds answers back, or every answer sent would slow the next ones down.
        let own_domain = &self.cfg.ack.message_id_domain;
        let mut own = std::collections::HashSet::new();
        {
            let mut stream = self
                .timed(
                    "UID FETCH",
                    s.uid_fetch(
                        &set,
                        "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
                    ),
                )
                .await?;
            while let Some(f) = tokio::time::timeout(cfg.timeout, stream.try_next())
                .await
                .map_err(|_| IntakeError::Timeout("UID FETCH"))??
            {
                // `n:*` always includes the highest UID, even when it is below n.
                if let Some(uid) = f.uid.filter(|&uid| uid > last) {
                    if f.header()
                        .or(f.body())
                        .is_some_and(|h| names_own_message_id(h, own_domain))
                    {
                        own.insert(uid);
                    }
                    todo.push((
                        uid,
                        f.size.unwrap_or(0),
                        f.internal_date().map(|d| d.with_timezone(&Utc)),
                    ));
                }
            }
        }
        todo.sort_by_key(|t| t.0);
        self.backlog.send_replace(todo.len() - own.len());
        let _reset = BacklogReset(&self.backlog);
        let mut batches = Vec::new();
        let mut rest = &todo[..];
        while !rest.is_empty() {
            // A run of small messages is fetched with one command; a large one alone, in parts.
            let mut take = 0;
            let mut bytes = 0u64;
            while let Some(&(_, size, _)) = rest.get(take) {
                let size = u64::from(size);
                let small = size <= u64::from(FETCH_PART) && size <= cfg.max_message_bytes;
                // The first batch is short: nothing is processed until it is stored, and
                // the fetches after it overlap with processing.
                let limit = if batches.is_empty() {
                    FIRST_BATCH
                } else {
                    FETCH_BATCH
                };
                if take > 0 && (!small || take >= limit || bytes + size > FETCH_BATCH_BYTES) {
                    break;
                }
                take += 1;
                bytes += size;
                if !small {
                    break;
                }
            }
            let (batch, later) = rest.split_at(take);
            batches.push(batch);
            rest = later;
        }
        // Two stages side by side: the pipeline processes the stored messages as one stream
        // ([`Pipeline::process_stream`]) while the session fetches and stores the next batch
        // and moves the batches the pipeline reports done (the IMAP session and the pipeline
        // are separate resources). Every message is committed before it is processed; a crash
        // in between leaves it `stored`, and process_pending takes it up in arrival order.
        // One batch waits for the pipeline at most, so what is stored and not yet read stays
        // small.
        let (to_process, batches_rx) =
            tokio::sync::mpsc::channel::<(Vec<(i64, u64)>, StoredBatch)>(1);
        let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<StoredBatch>();
        let feed = async {
            let to_process = to_process;
            for b in batches {
                while let Ok(d) = done.try_recv() {
                    self.batch_done(s, account, uidvalidity, has_move, d, &own)
                        .await?;
                }
                let started = std::time::Instant::now();
                let inserted = self
                    .fetch_and_store(s, account, uidvalidity, b, &own)
                    .await?;
                let batch = StoredBatch::new(b, inserted, started);
                // Closed: the pipeline stopped on an error, which it returns.
                if to_process.send((batch.fresh.clone(), batch)).await.is_err() {
                    return Ok(());
                }
            }
            drop(to_process);
            while let Some(d) = done.recv().await {
                self.batch_done(s, account, uidvalidity, has_move, d, &own)
                    .await?;
            }
            Ok::<_, IntakeError>(())
        };
        let process = self.pipeline.process_stream(batches_rx, done_tx);
        let (fed, processed) = tokio::join!(feed, process);
        processed?;
        fed
    }

    /// After the pipeline committed every message of `done`: moves the batch out of the
    /// folder and notes it.
    async fn batch_done(
        &self,
        s: &mut Session,
        account: &str,
        uidvalidity: u32,
        has_move: bool,
        done: StoredBatch,
        own: &std::collections::HashSet<u32>,
    ) -> Result<()> {
        let moving = std::time::Instant::now();
        let uids: Vec<u32> = done.stored.iter().map(|&(uid, _)| uid).collect();
        self.move_processed(s, account, uidvalidity, &uids, has_move)
            .await?;
        let ids: Vec<i64> = done.stored.iter().filter_map(|&(_, id)| id).collect();
        self.store.mark_moved_many(&ids).await?;
        let people = done.stored.iter().filter(|t| !own.contains(&t.0)).count();
        self.backlog.send_modify(|n| *n = n.saturating_sub(people));
        tracing::debug!(
            processed = done.fresh.len(),
            fetch_to_done = ?done.fetched.elapsed(),
            move_mark = ?moving.elapsed(),
            "一批处理完毕"
        );
        Ok(())
    }

    /// Fetches `batch` (UID, size, INTERNALDATE) and stores every message of it, in UID
    /// order. Small messages come in one UID FETCH; a message above [`FETCH_PART`] comes in
    /// parts written straight to the blob directory, so it is never held in memory whole.
    async fn fetch_and_store(
        &self,
        s: &mut Session,
        account: &str,
        uidvalidity: u32,
        batch: &[(u32, u32, Option<chrono::DateTime<Utc>>)],
        own: &std::collections::HashSet<u32>,
    ) -> Result<Vec<(u32, Inserted, bool)>> {
        let cfg = &self.cfg.imap;
        let key = |uid| ImapKey {
            account: account.to_string(),
            folder: cfg.folder.clone(),
            uidvalidity,
            uid,
        };
        let mut out = Vec::with_capacity(batch.len());
        if let [(uid, size, internal_date)] = *batch
            && (size > FETCH_PART || u64::from(size) > cfg.max_message_bytes)
        {
            if u64::from(size) > cfg.max_message_bytes {
                tracing::warn!(
                    uid,
                    size,
                    "邮件超过 imap.max_message_size：已登记，不取回内容"
                );
                // Its subject is not read: filed under the campaign current when it arrived.
                let now = self.clock.now();
                let campaign = &self.cfg.current_campaign(internal_date.unwrap_or(now)).id;
                self.store
                    .insert_too_large(&key(uid), u64::from(size), internal_date, campaign, now)
                    .await?;
                return Ok(out);
            }
            let Some(blob) = self.fetch_in_parts(s, uid, size).await? else {
                tracing::warn!(uid, "邮件在取回内容之前已从文件夹中消失");
                return Ok(out);
            };
            let inserted = self
                .store
                .insert_imap_blob(&key(uid), &blob, internal_date, self.clock.now())
                .await?;
            out.push((uid, inserted, false));
            return Ok(out);
        }
        // Our own copies (their Message-ID said so): the header first, and when it confirms
        // the copy (our address and our Message-ID, as the pipeline would judge it), no body.
        let guard = &self.pipeline.guard;
        let candidates: Vec<u32> = batch
            .iter()
            .map(|t| t.0)
            .filter(|uid| own.contains(uid))
            .collect();
        let mut headers: std::collections::HashMap<u32, Vec<u8>> = Default::default();
        if !candidates.is_empty() {
            let set = uid_set(candidates.into_iter());
            for f in self
                .fetch_bodies(s, &set, "(UID BODY.PEEK[HEADER])")
                .await?
            {
                if let (Some(uid), Some(header)) = (f.uid, f.header())
                    && crate::message::is_own_copy_header(header, guard)
                {
                    headers.insert(uid, header.to_vec());
                }
            }
        }
        let whole: Vec<u32> = batch
            .iter()
            .map(|t| t.0)
            .filter(|uid| !headers.contains_key(uid))
            .collect();
        let fetched = if whole.is_empty() {
            Vec::new()
        } else {
            self.fetch_bodies(s, &uid_set(whole.into_iter()), "(UID BODY.PEEK[])")
                .await?
        };
        let mut found = Vec::with_capacity(batch.len());
        for &(uid, _, internal_date) in batch {
            let (raw, own_copy) = match headers.get(&uid) {
                Some(h) => (Some(h.as_slice()), true),
                None => (
                    fetched
                        .iter()
                        .find(|f| f.uid == Some(uid))
                        .and_then(|f| f.body()),
                    false,
                ),
            };
            match raw {
                Some(raw) => found.push(Fetched {
                    key: key(uid),
                    raw,
                    internal_date,
                    own_copy,
                }),
                // Expunged between the two fetches: nothing to store.
                None => tracing::warn!(uid, "邮件在取回内容之前已从文件夹中消失"),
            }
        }
        let fetched_at = std::time::Instant::now();
        let inserted = self
            .store
            .insert_imap_batch(&found, self.clock.now())
            .await?;
        tracing::debug!(
            messages = found.len(),
            stored = ?fetched_at.elapsed(),
            "一批邮件已存储"
        );
        Ok(found
            .iter()
            .zip(inserted)
            .map(|(m, i)| (m.key.uid, i, m.own_copy))
            .collect())
    }

    /// `UID FETCH set query`, every response collected, the whole under `imap.timeout`.
    async fn fetch_bodies(
        &self,
        s: &mut Session,
        set: &str,
        query: &str,
    ) -> Result<Vec<async_imap::types::Fetch>> {
        let stream = self.timed("UID FETCH", s.uid_fetch(set, query)).await?;
        Ok(
            tokio::time::timeout(self.cfg.imap.timeout, stream.try_collect::<Vec<_>>())
                .await
                .map_err(|_| IntakeError::Timeout("UID FETCH BODY"))??,
        )
    }

    /// Fetches one large message in parts of [`FETCH_PART`] bytes (`BODY.PEEK[]<offset.length>`)
    /// into a blob. `None` when the message is gone.
    async fn fetch_in_parts(
        &self,
        s: &mut Session,
        uid: u32,
        size: u32,
    ) -> Result<Option<StoredBlob>> {
        let mut writer = self
            .store
            .blobs
            .writer()
            .map_err(crate::store::StoreError::from)?;
        let mut message_id = None;
        let mut offset: u64 = 0;
        loop {
            let query = format!("(UID BODY.PEEK[]<{offset}.{FETCH_PART}>)");
            let fetched = self.fetch_bodies(s, &uid.to_string(), &query).await?;
            let Some(part) = fetched
                .iter()
                .find(|f| f.uid == Some(uid))
                .and_then(|f| f.body())
            else {
                return Ok(None);
            };
            if offset == 0 {
                message_id = crate::store::raw_message_id(part);
            }
            tokio::task::block_in_place(|| writer.write(part))
                .map_err(crate::store::StoreError::from)?;
            offset += part.len() as u64;
            // A short part is the last one. RFC822.SIZE is only a hint for where that is:
            // some servers count line ends differently than they send them.
            if part.len() < FETCH_PART as usize {
                break;
            }
        }
        tracing::debug!(uid, size, bytes = offset, "大邮件已分段取回");
        let (sha256, size) = tokio::task::block_in_place(|| writer.finish())
            .map_err(crate::store::StoreError::from)?;
        Ok(Some(StoredBlob {
            sha256,
            size,
            message_id,
        }))
    }

    /// Moves messages that were processed but not moved (a crash or disconnect in between).
    async fn retry_moves(
        &self,
        s: &mut Session,
        account: &str,
        uidvalidity: u32,
        has_move: bool,
    ) -> Result<()> {
        let unmoved = self
            .store
            .unmoved(account, &self.cfg.imap.folder, uidvalidity)
            .await?;
        for chunk in unmoved.chunks(FETCH_BATCH) {
            let uids: Vec<u32> = chunk.iter().map(|&(_, uid)| uid).collect();
            self.move_processed(s, account, uidvalidity, &uids, has_move)
                .await?;
            let ids: Vec<i64> = chunk.iter().map(|&(id, _)| id).collect();
            self.store.mark_moved_many(&ids).await?;
        }
        Ok(())
    }

    /// Moves handled `uids` where they belong: mail that needs a person to the staff folder
    /// (or nowhere, when that is the watched folder), the rest to the processed folder; one
    /// command per destination.
    async fn move_processed(
        &self,
        s: &mut Session,
        account: &str,
        uidvalidity: u32,
        uids: &[u32],
        has_move: bool,
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let staff = self
            .store
            .staff_uids(account, &self.cfg.imap.folder, uidvalidity, uids)
            .await?;
        let (for_staff, rest): (Vec<u32>, Vec<u32>) =
            uids.iter().partition(|uid| staff.contains(uid));
        if let Some(target) = &self.cfg.imap.staff_folder {
            self.move_to(s, target, &for_staff, has_move).await?;
        }
        if let Some(target) = &self.cfg.imap.processed_folder {
            self.move_to(s, target, &rest, has_move).await?;
        }
        Ok(())
    }

    /// Moves `uids` to `target` in one command.
    async fn move_to(
        &self,
        s: &mut Session,
        target: &str,
        uids: &[u32],
        has_move: bool,
    ) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let target = mutf7::encode(target);
        let set = uid_set(uids.iter().copied());
        if has_move {
            self.timed("UID MOVE", s.uid_mv(&set, &target)).await?;
        } else {
            self.timed("UID COPY", s.uid_copy(&set, &target)).await?;
            {
                let stream = self
                    .timed("UID STORE", s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)"))
                    .await?;
                let _: Vec<_> = stream.try_collect().await?;
            }
            {
                let stream = self.timed("UID EXPUNGE", s.uid_expunge(&set)).await?;
                let _: Vec<_> = stream.try_collect().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_copies_are_told_by_their_message_id() {
        let own = "shenbao.example.edu.cn";
        for field in [
            "Message-ID: <shenbao.ack.12.ab34@shenbao.example.edu.cn>\r\n\r\n",
            "Message-Id: <shenbao.ack.12.ab34@SHENBAO.example.edu.cn>\r\n",
            // Folded onto the next line, as some servers return it.
            "Message-ID:\r\n <shenbao.reminder.3@shenbao.example.edu.cn>\r\n",
        ] {
            assert!(names_own_message_id(field.as_bytes(), own), "{field:?}");
        }
        for field in [
            // A branch's own mail, an answer quoting ours elsewhere, a look-alike domain.
            "Message-ID: <tencent_1234@qq.com>\r\n",
            "Message-ID: <x@mail.shenbao.example.edu.cn.evil.test>\r\n",
            "Message-ID: <x@notshenbao.example.edu.cn>\r\n",
            "In-Reply-To: <shenbao.ack.12.ab34@shenbao.example.edu.cn>\r\n",
            // No Message-ID at all (the server returns an empty field list).
            "\r\n",
            "",
        ] {
            assert!(!names_own_message_id(field.as_bytes(), own), "{field:?}");
        }
    }

    #[test]
    fn uid_sets_are_comma_separated() {
        assert_eq!(uid_set([5u32, 6, 9].into_iter()), "5,6,9");
        assert_eq!(uid_set(std::iter::once(42)), "42");
        assert_eq!(uid_set(std::iter::empty()), "");
    }

    /// A server without IDLE is polled at `poll_interval`; with IDLE, IDLE is re-issued at the
    /// shorter of `poll_interval` and `idle_renew`.
    #[test]
    fn a_server_without_idle_is_polled() {
        let s = Duration::from_secs;
        assert_eq!(wait_mode(true, s(60), s(25 * 60)), Wait::Idle(s(60)));
        assert_eq!(wait_mode(true, s(3600), s(25 * 60)), Wait::Idle(s(25 * 60)));
        assert_eq!(wait_mode(false, s(60), s(25 * 60)), Wait::Poll(s(60)));
        assert_eq!(wait_mode(false, s(3600), s(25 * 60)), Wait::Poll(s(3600)));
        // Never a busy loop, whatever the configuration says.
        assert_eq!(
            wait_mode(false, Duration::ZERO, s(25 * 60)),
            Wait::Poll(s(1))
        );
    }

    #[test]
    fn backfill_lowers_the_watermark_never_raises_it() {
        // First start: no date → "now" (uidnext - 1); a date → just before its first UID.
        assert_eq!(backfill_watermark(None, None, 101), 100);
        assert_eq!(backfill_watermark(None, Some(Some(40)), 101), 39);
        assert_eq!(backfill_watermark(None, Some(None), 101), 100);
        assert_eq!(backfill_watermark(None, Some(Some(1)), 101), 0);
        assert_eq!(backfill_watermark(None, None, 1), 0);
        assert_eq!(backfill_watermark(None, None, 0), 0);
        // Later starts: the folder is re-read from the date, never skipped ahead.
        assert_eq!(backfill_watermark(Some(100), Some(Some(40)), 151), 39);
        assert_eq!(backfill_watermark(Some(30), Some(Some(40)), 151), 30);
        assert_eq!(backfill_watermark(Some(100), Some(None), 151), 100);
        assert_eq!(backfill_watermark(Some(100), None, 151), 100);
        assert_eq!(backfill_watermark(Some(100), Some(Some(200)), 151), 100);
    }
}
