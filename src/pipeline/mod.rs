//! From a stored message to a recorded decision, in three parts. This module orchestrates:
//! it reads the stored mail and its attachments on blocking threads, several at a time, and
//! records them in order, one `BEGIN IMMEDIATE` transaction per message or per group; a
//! failure is transient (retried) or permanent (marked `failed`, see [`ProcessError`]).
//! Inside each message's transaction the order is: read the facts the decision needs (store
//! functions), decide ([`decide`], pure), record ([`record`]) — attachments, the submission
//! with its version, the answer in the outbox, the message's disposition.
//!
//! Processing is idempotent per message: it only runs on messages in the `stored` state and
//! ends by marking them `processed` in the same transaction that records the outcome, so a
//! crash anywhere before the commit simply means the next start processes the message again.
//!
//! Not pure: tokio, the store and the blob directory.

pub mod correct;
pub mod decide;
pub mod read;
pub mod record;

pub use decide::{Disposition, NotifyMode, Outcome, Quiet, disposition_label};

use crate::app::App;
use crate::campaign::calendar::{self, Candidate, Selection};
use crate::campaign::conversation;
use crate::extract::Extracted;
use crate::message::{LoopGuard, Understood};
use crate::notify::compose::{self, ComposeError};
use crate::store::blobs::Staged;
use crate::store::{StoreError, Tx, register, threads};
use decide::{ClassifyInput, Context, History, Needs, Thread};
use std::sync::Arc;

/// How long understanding one message and reading its attachments may take.
const EXTRACT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Prepared messages recorded per transaction by [`Pipeline::process_stream`]: one commit (one
/// fsync) and one flush of their files for several, while the write lock is still held only
/// briefly (about 15 ms for 24 in the benchmark; 8 before the SQL per message was batched).
const COMMIT_GROUP: usize = 24;

/// Groups whose attachment files may be flushing while the next messages are read
/// ([`Pipeline::flush`]).
const FLUSH_AHEAD: usize = 2;

/// Messages above this size are prepared one at a time (see [`Pipeline::process_stream`]).
const PARALLEL_MAX_BYTES: u64 = 4 << 20;

/// A message whose reading runs on a blocking thread ([`Pipeline::start`]).
struct Started {
    stored: crate::store::StoredMessage,
    work: tokio::task::JoinHandle<std::io::Result<(Understood, Extracted, Vec<Staged>)>>,
}

/// A group of prepared messages whose files are being flushed ([`Pipeline::flush`]).
struct Flushing {
    group: Vec<Prepared>,
    work: tokio::task::JoinHandle<std::io::Result<()>>,
    started: std::time::Instant,
    /// The sequence number of its first message ([`Pipeline::process_stream`]).
    first: u64,
    /// Whether it holds a message above [`PARALLEL_MAX_BYTES`] (committed at once).
    large: bool,
}

/// A message waiting to be read in [`Pipeline::process_stream`].
struct Queued {
    seq: u64,
    id: i64,
    large: bool,
    /// Its row; `None` when it is gone.
    row: Option<crate::store::StoredMessage>,
}

/// A message read and understood, not yet recorded ([`Pipeline::prepare`]).
pub struct Prepared {
    id: i64,
    stored: crate::store::StoredMessage,
    understood: Understood,
    extracted: Extracted,
    /// Its attachments, written but not yet flushed: made durable, together with the rest of
    /// the transaction's, just before the transaction that names them ([`publish`]).
    blobs: Vec<Staged>,
}

impl Prepared {
    /// Its staged attachment files, to be flushed ([`publish`]) before it is committed.
    pub fn take_blobs(&mut self) -> Vec<Staged> {
        std::mem::take(&mut self.blobs)
    }
}

/// What the pipeline needs besides the shared context: how to recognise our own mail, and
/// whether to answer.
pub struct Pipeline {
    pub app: Arc<App>,
    pub guard: LoopGuard,
    /// Whether registering answers ([`NotifyMode::Normal`] except in `reprocess`).
    pub notify_mode: NotifyMode,
    /// Every configured campaign, for [`calendar::select`] (built once: each holds its
    /// compiled subject grammar).
    candidates: Vec<Candidate>,
    /// The rosters of the other campaigns with a roster file of their own, by id: a mail of
    /// last semester (a late closure mail, `ingest` of old mail) is matched against the
    /// branches of its own campaign.
    rosters: std::collections::HashMap<String, crate::campaign::roster::Roster>,
}

impl std::ops::Deref for Pipeline {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

/// Why processing a message stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The database or the disk failed: the message stays `stored` and is processed again on
    /// the next round.
    #[error(transparent)]
    Transient(anyhow::Error),
    /// A defect, or input we cannot handle: the message is marked `failed`, for staff.
    #[error(transparent)]
    Permanent(anyhow::Error),
}

impl ProcessError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProcessError::Transient(_))
    }

    /// What went wrong, every cause on one line (the log, and the reason staff read).
    pub fn text(&self) -> String {
        match self {
            ProcessError::Transient(e) | ProcessError::Permanent(e) => format!("{e:#}"),
        }
    }

    fn permanent(message: String) -> ProcessError {
        ProcessError::Permanent(anyhow::Error::msg(message))
    }
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> ProcessError {
        ProcessError::Transient(e.into())
    }
}

impl From<std::io::Error> for ProcessError {
    fn from(e: std::io::Error) -> ProcessError {
        ProcessError::Transient(e.into())
    }
}

impl From<ComposeError> for ProcessError {
    fn from(e: ComposeError) -> ProcessError {
        ProcessError::Permanent(e.into())
    }
}

impl From<record::RecordError> for ProcessError {
    fn from(e: record::RecordError) -> ProcessError {
        match e {
            record::RecordError::Store(e) => e.into(),
            record::RecordError::Json(e) => ProcessError::Permanent(e.into()),
        }
    }
}

impl Pipeline {
    pub fn new(app: Arc<App>) -> Pipeline {
        let cfg = &app.cfg;
        let guard = LoopGuard {
            own_domain: cfg.ack.message_id_domain.clone(),
            loop_header: compose::LOOP_HEADER.to_string(),
            own_addresses: vec![
                cfg.campaign.intake_address.to_lowercase(),
                cfg.smtp.from_address.to_lowercase(),
            ],
        };
        let candidates = app.cfg.candidates();
        let mut rosters = std::collections::HashMap::new();
        for c in &app.cfg.campaigns {
            if c.id == app.cfg.campaign.id || c.roster == app.cfg.campaign.roster {
                continue;
            }
            // Read once here; one that does not read leaves that campaign's mail matched
            // against the current roster, and says so.
            match crate::app::load_roster(&c.roster) {
                Ok(r) => {
                    rosters.insert(c.id.clone(), r);
                }
                Err(e) => tracing::warn!(
                    campaign = %c.id,
                    roster = %c.roster.display(),
                    error = %format!("{e:#}"),
                    "读不了这一期活动的支部名册，它的邮件按当前这一期的名册认支部"
                ),
            }
        }
        Pipeline {
            app,
            guard,
            notify_mode: NotifyMode::Normal,
            candidates,
            rosters,
        }
    }

    /// The campaign a mail with `subject` that arrived at `received` is recorded under: the
    /// one [`calendar::select`] matches; for a mail with a campaign's subject outside every
    /// window of that subject, the nearest one; for a mail without any campaign's subject (a
    /// question, a reply without the subject), the campaign current when it arrived. Only
    /// where the mail is filed: how it is handled does not depend on it yet.
    fn campaign_of(&self, subject: &str, received: chrono::DateTime<chrono::Utc>) -> String {
        match calendar::select(&self.candidates, subject, received) {
            Selection::Matched(id) => id,
            Selection::OutsideWindow { nearest } => {
                tracing::info!(
                    subject,
                    campaign = %nearest,
                    "邮件主题属于活动，但到达时间不在任何同主题活动的收件时间内：记在最接近的活动下"
                );
                nearest
            }
            Selection::NoSubject => self.cfg.current_campaign(received).id.clone(),
        }
    }

    /// What deciding takes from the pipeline.
    /// What deciding a mail of `campaign` needs: that campaign's roster (the current one's
    /// when it has none of its own).
    fn context_for(&self, campaign: &str) -> Context<'_> {
        Context {
            cfg: &self.cfg,
            grammar: &self.grammar,
            roster: self.rosters.get(campaign).unwrap_or(&self.roster),
            templates: &self.templates,
            policy: &self.policy,
            guard: &self.guard,
            notify: self.notify_mode,
        }
    }

    /// Processes every message left in the `stored` state (after a crash or an `ingest`).
    pub async fn process_pending(&self) -> anyhow::Result<Vec<Outcome>> {
        let mut out = Vec::new();
        for id in self.store.pending().await? {
            match self.process(id).await {
                Ok(Some(o)) => out.push(o),
                Ok(None) => {}
                Err(e) => self.failed(id, &e).await?,
            }
        }
        Ok(out)
    }

    /// Handles a processing error. A database or disk error is transient: the message stays
    /// `stored` and is processed again on the next round. Anything else is a defect or input we
    /// cannot handle: the message is marked `failed` with the reason, for staff.
    pub async fn failed(&self, id: i64, e: &ProcessError) -> anyhow::Result<()> {
        if e.is_transient() {
            tracing::warn!(message = id, error = %e.text(), "处理被打断（数据库或磁盘暂时出错），稍后重试");
            return Ok(());
        }
        tracing::error!(message = id, error = %e.text(), "处理失败，已标为失败，留待工作人员处理");
        let now = self.clock.now();
        // Its subject was not read to the end: filed under the campaign current when it
        // arrived.
        let arrived = self
            .store
            .message(id)
            .await?
            .map_or(now, |m| m.internal_date.unwrap_or(m.stored_at));
        let campaign = &self.cfg.current_campaign(arrived).id;
        self.store.mark_failed(id, &e.text(), campaign, now).await?;
        Ok(())
    }

    /// Processes one stored message; `None` when it was already processed.
    pub async fn process(&self, id: i64) -> Result<Option<Outcome>, ProcessError> {
        match self.prepare(id).await? {
            Some(p) => self.commit(p).await,
            None => Ok(None),
        }
    }

    /// Processes stored messages in order as their batches come from `batches`, reading the
    /// next ones while the current ones are written: parsing and extraction use every core,
    /// the database writes stay in order (versions are numbered in arrival order), several to
    /// a transaction ([`COMMIT_GROUP`]). Groups run across batches, so the reading never waits
    /// for a batch's last files to be flushed; only when no batch is waiting is everything
    /// read committed at once. Each batch's tag goes back on `done` once all its messages are
    /// committed (or recorded as failed). A message above [`PARALLEL_MAX_BYTES`] is read
    /// alone and committed at once, so memory stays bounded. Ends when `batches` is closed
    /// and everything is committed.
    pub async fn process_stream<T>(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<(Vec<(i64, u64)>, T)>,
        done: tokio::sync::mpsc::UnboundedSender<T>,
    ) -> anyhow::Result<()> {
        use std::collections::VecDeque;
        use tokio::sync::mpsc::error::TryRecvError;
        let parallel =
            std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).clamp(4, 16));
        // Every message gets a sequence number in arrival order; a batch is done when every
        // number below its end is.
        let mut next_seq: u64 = 0;
        let mut tags: VecDeque<(u64, T)> = VecDeque::new();
        let mut todo: VecDeque<Queued> = VecDeque::new();
        let mut inflight: VecDeque<(Queued, Option<Started>)> = VecDeque::with_capacity(parallel);
        let mut group: Vec<Prepared> = Vec::with_capacity(COMMIT_GROUP);
        let mut group_first = 0;
        let mut group_large = false;
        let mut flushing: VecDeque<Flushing> = VecDeque::with_capacity(FLUSH_AHEAD + 1);
        let mut open = true;
        loop {
            // Start reading: up to `parallel` at once, a large message alone.
            loop {
                if todo.is_empty() && open {
                    let idle = inflight.is_empty() && group.is_empty() && flushing.is_empty();
                    let got = if idle {
                        batches.recv().await
                    } else {
                        match batches.try_recv() {
                            Ok(b) => Some(b),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => None,
                        }
                    };
                    let Some((ids, tag)) = got else {
                        open = false;
                        break;
                    };
                    // Their rows in one read, not one each (a round trip per statement).
                    let all: Vec<i64> = ids.iter().map(|&(id, _)| id).collect();
                    let mut rows = self.store.messages(&all).await?;
                    for (id, size) in ids {
                        todo.push_back(Queued {
                            seq: next_seq,
                            id,
                            large: size > PARALLEL_MAX_BYTES,
                            row: rows.remove(&id),
                        });
                        next_seq += 1;
                    }
                    tags.push_back((next_seq, tag));
                    continue;
                }
                let Some(front) = todo.front() else { break };
                let reading_large = inflight.iter().any(|(q, _)| q.large);
                if inflight.len() >= parallel
                    || reading_large
                    || (front.large && !inflight.is_empty())
                {
                    break;
                }
                let Some(mut q) = todo.pop_front() else { break };
                // Unknown (gone since the list was read): nothing to read.
                let started = q.row.take().map(|stored| self.start_stored(stored));
                inflight.push_back((q, started));
            }
            // The oldest read, in order.
            if let Some((q, started)) = inflight.pop_front()
                && let Some(started) = started
            {
                match self.finish(started).await {
                    Ok(p) => {
                        if group.is_empty() {
                            group_first = q.seq;
                        }
                        group_large |= q.large;
                        group.push(p);
                    }
                    Err(e) => self.failed(q.id, &e).await?,
                }
            }
            // Nothing more to read right now (no batch waiting): commit all that was read.
            let more = !inflight.is_empty() || !todo.is_empty();
            if !group.is_empty() && (group.len() >= COMMIT_GROUP || group_large || !more) {
                let mut f = self.flush(std::mem::take(&mut group));
                f.first = group_first;
                f.large = group_large;
                group_large = false;
                flushing.push_back(f);
            }
            let keep = if !more || flushing.back().is_some_and(|f| f.large) {
                0
            } else {
                FLUSH_AHEAD
            };
            while flushing.len() > keep {
                if let Some(f) = flushing.pop_front() {
                    self.commit_group(f).await?;
                }
            }
            // Every message below the oldest one still pending is committed (or failed).
            let frontier = [
                flushing.front().map(|f| f.first),
                (!group.is_empty()).then_some(group_first),
                inflight.front().map(|(q, _)| q.seq),
                todo.front().map(|q| q.seq),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_seq);
            while tags.front().is_some_and(|(end, _)| *end <= frontier) {
                if let Some((_, tag)) = tags.pop_front() {
                    // The receiver gone (its side stopped on an error) changes nothing here.
                    let _ = done.send(tag);
                }
            }
            if !open && !more && group.is_empty() && flushing.is_empty() {
                return Ok(());
            }
        }
    }

    /// Starts flushing a group's attachment files on a blocking thread
    /// ([`crate::store::blobs::publish`]); [`Pipeline::commit_group`] waits for it before the
    /// transaction that names them. Meanwhile the next messages are read: the flush is a wait
    /// on the disk (20–120 ms per group in the benchmark's log, more than the group's CPU
    /// work), not work.
    fn flush(&self, mut group: Vec<Prepared>) -> Flushing {
        let staged: Vec<Staged> = group
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.blobs))
            .collect();
        let started = std::time::Instant::now();
        let work = tokio::task::spawn_blocking(move || crate::store::blobs::publish(staged));
        Flushing {
            group,
            work,
            started,
            first: 0,
            large: false,
        }
    }

    /// Commits a group's messages in one transaction, in order, once its files are flushed
    /// ([`Pipeline::flush`]). If one of them fails, the transaction is rolled back: that one
    /// is recorded as failed (or left for a retry when the error is transient) and the others
    /// stay `stored`, for process_pending.
    async fn commit_group(&self, flushing: Flushing) -> anyhow::Result<()> {
        let Flushing {
            group,
            work,
            started,
            ..
        } = flushing;
        let Some(first) = group.first().map(|p| p.id) else {
            return Ok(());
        };
        // A failure here is a disk error, and every message of the group stays `stored` for
        // the next round.
        if let Err(e) = flushed(work.await) {
            return self.failed(first, &e).await;
        }
        let published = started.elapsed();
        let mut tx = self.store.begin_write().await?;
        let ids: Vec<i64> = group.iter().map(|p| p.id).collect();
        // Which are still to do, and the blob rows of all their files: one statement each
        // for the whole group (a message's record changes no other message's state, so what
        // is read here holds through the group).
        let files: Vec<&[crate::message::Attachment]> = group
            .iter()
            .map(|p| p.understood.attachments.as_slice())
            .collect();
        let read = async {
            let pending = register::pending_many(&mut tx, &ids).await?;
            crate::store::attachments::record_blobs_of(&mut tx, &files, self.clock.now()).await?;
            Ok::<_, StoreError>(pending)
        };
        let mut pending = match read.await {
            Ok(p) => p,
            Err(e) => {
                drop(tx);
                return self.failed(first, &e.into()).await;
            }
        };
        let mut outcomes = Vec::with_capacity(group.len());
        for p in group {
            let id = p.id;
            match self
                .commit_in(&mut tx, p, Known::Read(pending.remove(&id)))
                .await
            {
                Ok(Some(o)) => outcomes.push(o),
                Ok(None) => {}
                Err(e) => {
                    drop(tx);
                    return self.failed(id, &e).await;
                }
            }
        }
        tx.commit().await?;
        tracing::debug!(
            messages = outcomes.len(),
            files_flushed = ?published,
            recorded = ?(started.elapsed() - published),
            "一组处理结果已提交"
        );
        for o in &outcomes {
            self.committed(o);
        }
        Ok(())
    }

    /// The part of processing that needs no database lock: read the stored mail, understand
    /// it, read its attachments and write them to the blob directory. `None` when the message
    /// is unknown.
    pub async fn prepare(&self, id: i64) -> Result<Option<Prepared>, ProcessError> {
        match self.start(id).await? {
            Some(st) => self.finish(st).await.map(Some),
            None => Ok(None),
        }
    }

    /// Starts [`Pipeline::prepare`]'s work on a blocking thread; it runs while the caller does
    /// other things (see [`Pipeline::process_stream`]).
    async fn start(&self, id: i64) -> Result<Option<Started>, ProcessError> {
        Ok(self.store.message(id).await?.map(|m| self.start_stored(m)))
    }

    /// [`Pipeline::start`] for a message whose row was read already.
    fn start_stored(&self, stored: crate::store::StoredMessage) -> Started {
        let blobs = self.store.blobs.clone();
        let sha = stored.raw_sha256.clone();
        let guard = self.guard.clone();
        let sections = self.cfg.campaign.sections.clone();
        // Parsing and reading Office files is CPU work on untrusted input: off the async
        // threads, and bounded in time (the readers bound themselves; this is the backstop).
        let work = tokio::task::spawn_blocking(move || {
            let (understood, staged) = read::read_mail(&blobs, &sha, &guard)?;
            let extracted = crate::extract::extract(&understood.attachments, &sections);
            Ok((understood, extracted, staged))
        });
        Started { stored, work }
    }

    async fn finish(&self, st: Started) -> Result<Prepared, ProcessError> {
        let (understood, extracted, blobs) = tokio::time::timeout(EXTRACT_TIME_LIMIT, st.work)
            .await
            .map_err(|_| {
                ProcessError::permanent(format!(
                    "读取附件超过 {} 秒仍未完成，已放弃",
                    EXTRACT_TIME_LIMIT.as_secs()
                ))
            })?
            .map_err(|e| {
                ProcessError::Permanent(anyhow::Error::new(e).context("读取邮件的任务中断"))
            })?
            .map_err(|e| {
                ProcessError::Transient(anyhow::Error::new(e).context("读取存档的原始邮件"))
            })?;
        Ok(Prepared {
            id: st.stored.id,
            stored: st.stored,
            understood,
            extracted,
            blobs,
        })
    }

    /// Records a prepared message: classification, submission, problems and the answer, in one
    /// transaction. `None` when it was already processed.
    pub async fn commit(&self, mut p: Prepared) -> Result<Option<Outcome>, ProcessError> {
        publish(std::mem::take(&mut p.blobs)).await?;
        let mut tx = self.store.begin_write().await?;
        let outcome = self.commit_in(&mut tx, p, Known::Unread).await?;
        tx.commit().await?;
        if let Some(o) = &outcome {
            self.committed(o);
        }
        Ok(outcome)
    }

    /// Records a prepared message (its files already published) in the caller's
    /// transaction: how `reprocess` replays stored mail.
    pub async fn commit_prepared(
        &self,
        tx: &mut Tx,
        p: Prepared,
    ) -> Result<Option<Outcome>, ProcessError> {
        self.commit_in(tx, p, Known::Unread).await
    }

    /// What [`Pipeline::commit`] writes, inside the caller's transaction (several messages
    /// can share one: [`Pipeline::process_stream`]): read what the database knows, decide
    /// (pure), record.
    async fn commit_in(
        &self,
        tx: &mut Tx,
        p: Prepared,
        pending: Known,
    ) -> Result<Option<Outcome>, ProcessError> {
        let Prepared {
            id,
            stored,
            understood,
            extracted,
            blobs: _,
        } = p;
        let received = stored.internal_date.unwrap_or(stored.stored_at);
        let now = self.clock.now();

        let (pending, blobs_recorded) = match pending {
            Known::Read(p) => (p, true),
            Known::Unread => (register::pending(tx, id).await?, false),
        };
        let Some(pending) = pending else {
            return Ok(None);
        };
        let (subject_text, our_wording) = conversation::strip_our_wording(&understood.subject);
        // Decided here, in the transaction that records the decision, and written with it.
        let campaign = self.campaign_of(&subject_text, received);
        let ctx = self.context_for(&campaign);
        // Our own copies answer the applicants' mails, never ours: no lookup for them.
        let thread = if decide::is_own_copy(&ctx, &understood) {
            None
        } else {
            find_thread(tx, &ctx, &understood).await?
        };
        let classified = decide::classify(
            &ctx,
            &understood,
            &ClassifyInput {
                subject: &subject_text,
                answers_us: our_wording || thread.is_some(),
                thread: thread.as_ref(),
                assigned: pending.assigned.as_deref(),
            },
        );
        // A closure mail's files are closure materials, recognised by title as well as name.
        let (understood, extracted) = if classified.disposition == Disposition::Closure {
            crate::campaign::closure::for_closure_mail(understood, extracted)
        } else {
            (understood, extracted)
        };
        let message = decide::Message {
            id,
            raw_sha256: &stored.raw_sha256,
            received,
            campaign: &campaign,
            understood: &understood,
            extracted: &extracted,
        };
        let needs = decide::needs(&classified, &message);
        let since = now - decide::window(&self.cfg);
        let history = read_history(tx, id, &campaign, &needs, since).await?;
        let decision = decide::decide(&ctx, &message, &classified, thread.as_ref(), &history, now)?;
        record::record(tx, &message, &decision, now, blobs_recorded).await?;
        Ok(Some(decision.outcome))
    }

    /// After the transaction of `o` committed: wake the sender, log.
    fn committed(&self, o: &Outcome) {
        if o.queued.is_some() {
            self.outbox.notify_one();
        }
        tracing::info!(
            message = o.message,
            disposition = o.disposition.as_str(),
            branch = o.branch.as_deref().unwrap_or("-"),
            version = o.version.unwrap_or(0),
            problems = ?o.problems.iter().map(|p| p.code()).collect::<Vec<_>>(),
            queued = o.queued.as_deref().unwrap_or("-"),
            "已处理"
        );
    }
}

/// Whether a message is still to be processed, as [`Pipeline::commit_in`] is told it.
enum Known {
    /// Read already for its group ([`register::pending_many`]): `None` when it is not. The
    /// blob rows of the group's files are recorded too.
    Read(Option<register::Pending>),
    /// To be read in the transaction.
    Unread,
}

/// The mail of ours that `u` answers, if any: the newest of its In-Reply-To and References
/// that we sent (the outbox), with the branch it was about ([`decide::thread`]).
async fn find_thread(
    tx: &mut Tx,
    ctx: &Context<'_>,
    u: &Understood,
) -> Result<Option<Thread>, StoreError> {
    let candidates = conversation::thread_candidates(u, 20);
    let mut found = None;
    for id in &candidates {
        if let Some(ours) = threads::our_mail(tx, id).await? {
            found = Some((
                id.clone(),
                decide::Ours {
                    kind: ours.kind,
                    branch: ours.branch,
                    submission_kind: ours.submission_kind,
                    subject: ours.subject,
                },
            ));
            break;
        }
    }
    Ok(decide::thread(ctx, candidates, found))
}

/// The facts [`decide::decide`] needs ([`decide::needs`]), read in the message's transaction.
async fn read_history(
    tx: &mut Tx,
    id: i64,
    campaign: &str,
    needs: &Needs,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<History, StoreError> {
    let mut h = History::default();
    if let Some(r) = &needs.register {
        let facts = threads::version_facts(
            tx,
            &threads::VersionQuery {
                campaign,
                kind: r.kind,
                branch_key: &r.branch_key,
                branch: r.branch.as_deref(),
                latest_of: r.branch.as_deref().filter(|_| !r.materials),
                message: id,
                identical: r.to.as_deref().map(|to| (r.content_key.as_str(), to)),
                since,
            },
        )
        .await?;
        h.next_version = facts.next_version;
        h.latest_version = facts.latest_version;
        h.earlier_senders = facts.earlier_senders;
        h.identical_acks = facts.identical_acks;
        if r.closure
            && let Some(branch) = &r.branch
        {
            h.review = crate::store::reviews::current_level(tx, campaign, branch).await?;
            h.closure_roles =
                crate::store::attachments::closure_roles(tx, campaign, branch).await?;
        }
    }
    if let Some((to, kind)) = &needs.recent {
        h.recent_answers = threads::recent_answers(tx, to, kind, since).await?;
    }
    Ok(h)
}

/// Flushes staged attachment files on a blocking thread ([`crate::store::blobs::publish`]).
pub async fn publish(staged: Vec<Staged>) -> Result<(), ProcessError> {
    if staged.is_empty() {
        return Ok(());
    }
    flushed(tokio::task::spawn_blocking(move || crate::store::blobs::publish(staged)).await)
}

/// How flushing files on a blocking thread ended: a disk error is transient (the messages stay
/// `stored`), a task that died is not.
fn flushed(
    joined: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<(), ProcessError> {
    joined
        .map_err(|e| ProcessError::Permanent(anyhow::Error::new(e).context("写入附件文件")))?
        .map_err(|e| ProcessError::Transient(anyhow::Error::new(e).context("写入附件文件")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .expect("valid instant")
    }

    /// A fresh directory `shenbao-pipeline-{name}-…-{backend}` holding `rosters` (file name,
    /// rows under the header), and a pipeline on `store` with the two-semester config of
    /// [`crate::config::testing::two_semesters`] read there, at `now`.
    fn two_semester_pipeline(
        store: &crate::store::Store,
        name: &str,
        rosters: &[(&str, String)],
        (autumn, spring): (&str, &str),
        now: chrono::DateTime<chrono::Utc>,
    ) -> (Pipeline, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "shenbao-pipeline-{name}-{}-{}",
            std::process::id(),
            store.backend()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (file, rows) in rosters {
            std::fs::write(
                dir.join(file),
                format!("学院,支部名称,书记,书记邮箱\n{rows}"),
            )
            .expect("roster");
        }
        let cfg = crate::config::testing::two_semesters(&dir, autumn, spring, now);
        let app = App::new(
            store.clone(),
            crate::clock::Clock::set(now),
            Arc::new(cfg),
            Arc::new(tokio::sync::Notify::new()),
        )
        .expect("app");
        (Pipeline::new(Arc::new(app)), dir)
    }

    /// Two campaigns with the same subjects: 2025-autumn (no `opens`, closed with its closure
    /// phase on 2025-12-15) and 2026-spring (from 2026-02-16, open). Each mail is filed by its
    /// subject and arrival time (INTERNALDATE, else when it was stored), and its version and
    /// its answer with it; a campaign subject between the windows goes to the nearest, a mail
    /// without one to the campaign current when it arrived. On both backends.
    #[tokio::test]
    async fn mails_with_one_subject_go_to_the_campaign_of_their_arrival() {
        // Each mail from a branch of its own: a branch's second mail without materials is a
        // reply, not a version (today in every campaign).
        const APPLY: &str = "对标争先建设项目申报-";
        const CLOSE: &str = "对标争先建设项目结项-";
        const QUESTION: &str = "请问申报表在哪里下载？";
        const BRANCHES: [&str; 9] = ["一", "二", "三", "四", "五", "六", "七", "八", "九"];
        let branch = |i: usize| format!("土木工程学院本科生第{}党支部", BRANCHES[i]);
        for store in crate::store::test_stores("pipeline_campaigns").await {
            let backend = store.backend();
            let roster: String = (0..BRANCHES.len())
                .map(|i| format!("土木工程学院,{},书记{i},b{i}@example.edu.cn\n", branch(i)))
                .collect();
            // Last semester's roster had one branch more.
            const TENTH: &str = "土木工程学院本科生第十党支部";
            let autumn = format!("{roster}土木工程学院,{TENTH},书记十,b10@example.edu.cn\n");
            let now = at("2026-03-05T00:00:00Z");
            let (pipeline, dir) = two_semester_pipeline(
                &store,
                "campaigns",
                &[("roster.csv", roster), ("autumn.csv", autumn)],
                ("autumn.csv", "roster.csv"),
                now,
            );
            assert_eq!(pipeline.cfg.campaign.id, "2026-spring");
            // (subject, INTERNALDATE, stored at, the campaign it belongs to)
            let mails = [
                (
                    APPLY,
                    Some("2025-09-20T10:00:00+08:00"),
                    "2026-03-05T00:00:00Z",
                    "2025-autumn",
                ),
                (
                    APPLY,
                    Some("2026-03-01T10:00:00+08:00"),
                    "2026-03-05T00:00:00Z",
                    "2026-spring",
                ),
                // No INTERNALDATE (`ingest` of a file): when it was stored.
                (APPLY, None, "2025-10-08T02:00:00Z", "2025-autumn"),
                (APPLY, None, "2026-03-02T02:00:00Z", "2026-spring"),
                // Three weeks after autumn's closure phase ended, five before spring opens:
                // outside both windows, filed under the nearest.
                (
                    CLOSE,
                    Some("2026-01-05T10:00:00+08:00"),
                    "2026-03-05T00:00:00Z",
                    "2025-autumn",
                ),
                (
                    CLOSE,
                    Some("2026-02-10T10:00:00+08:00"),
                    "2026-03-05T00:00:00Z",
                    "2026-spring",
                ),
                // No campaign's subject: the campaign current when it arrived.
                (
                    QUESTION,
                    Some("2025-11-01T10:00:00+08:00"),
                    "2026-03-05T00:00:00Z",
                    "2025-autumn",
                ),
                (
                    QUESTION,
                    Some("2026-01-20T10:00:00+08:00"),
                    "2026-03-05T00:00:00Z",
                    "2025-autumn",
                ),
                (
                    QUESTION,
                    Some("2026-03-03T10:00:00+08:00"),
                    "2026-03-05T00:00:00Z",
                    "2026-spring",
                ),
            ];
            let mut ids = Vec::new();
            for (i, (subject, internal, stored, _)) in mails.iter().enumerate() {
                let subject = if *subject == QUESTION {
                    subject.to_string()
                } else {
                    format!("{subject}{}", branch(i))
                };
                let raw = format!(
                    "From: =?UTF-8?B?5byg5LiJ?= <b{i}@example.edu.cn>\r\nTo: intake@example.test\r\n\
                     Subject: {subject}\r\nMessage-ID: <m{i}@example.edu.cn>\r\n\
                     Date: Mon, 1 Sep 2025 10:00:00 +0800\r\nMIME-Version: 1.0\r\n\
                     Content-Type: text/plain; charset=utf-8\r\n\r\n老师好，附件是材料。\r\n"
                );
                let id = store
                    .insert_file_message(raw.as_bytes(), internal.map(at), at(stored))
                    .await
                    .expect("store")
                    .id();
                pipeline.process(id).await.expect("process").expect("new");
                ids.push(id);
            }
            for (id, (subject, internal, _, want)) in ids.iter().zip(&mails) {
                let what = format!("{backend}: {subject} at {internal:?}");
                let id_is = |column: &str| format!("{column} = {id}");
                let store = &store;
                assert_eq!(
                    crate::store::test_campaigns(store, "messages", &id_is("id")).await,
                    [*want],
                    "{what}"
                );
                let versions =
                    crate::store::test_campaigns(store, "submissions", &id_is("message_id")).await;
                let answers =
                    crate::store::test_campaigns(store, "outbox", &id_is("related_message")).await;
                if *subject != QUESTION {
                    assert_eq!(versions, [*want], "{what}: its version");
                    assert_eq!(answers, [*want], "{what}: its acknowledgement");
                } else {
                    assert!(versions.is_empty(), "{what}");
                    assert!(versions.iter().all(|c| c == want), "{what}: {versions:?}");
                    assert!(answers.iter().all(|c| c == want), "{what}: {answers:?}");
                }
            }
            // A branch only last semester's roster has: recognised in a mail of last semester,
            // not in one of this semester.
            for (n, internal, campaign, want) in [
                (20, "2025-09-21T10:00:00+08:00", "2025-autumn", Some(TENTH)),
                (21, "2026-03-02T10:00:00+08:00", "2026-spring", None),
            ] {
                let raw = format!(
                    "From: b10@example.edu.cn\r\nTo: intake@example.test\r\n\
                     Subject: {APPLY}{TENTH}\r\nMessage-ID: <m{n}@example.edu.cn>\r\n\
                     Date: Mon, 1 Sep 2025 10:00:00 +0800\r\nMIME-Version: 1.0\r\n\
                     Content-Type: text/plain; charset=utf-8\r\n\r\n老师好，附件是材料。\r\n"
                );
                let id = store
                    .insert_file_message(raw.as_bytes(), Some(at(internal)), now)
                    .await
                    .expect("store")
                    .id();
                pipeline.process(id).await.expect("process").expect("new");
                let history = store
                    .for_campaign(campaign)
                    .submission_history(TENTH)
                    .await
                    .expect("history");
                let mine: Vec<Option<&str>> = history
                    .iter()
                    .filter(|r| r.message == id)
                    .map(|r| r.branch.as_deref())
                    .collect();
                assert_eq!(mine, [want], "{backend}: {internal}");
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Batches through [`Pipeline::process_stream`] (30 messages, none, 30 and an id that is
    /// gone; groups of 24 run across them): each batch's tag comes back in order, and only
    /// once every message of it is committed.
    #[tokio::test]
    async fn a_stream_of_batches_comes_back_in_order_once_committed() {
        for store in crate::store::test_stores("pipeline_stream").await {
            let backend = store.backend();
            let now = at("2026-03-05T00:00:00Z");
            let (pipeline, dir) = two_semester_pipeline(
                &store,
                "stream",
                &[(
                    "roster.csv",
                    "土木工程学院,土木工程学院本科生第一党支部,书记,b@example.edu.cn\n".into(),
                )],
                ("roster.csv", "roster.csv"),
                now,
            );
            let mut ids = Vec::new();
            for i in 0..60 {
                let raw = format!(
                    "From: someone{i}@example.edu.cn\r\nTo: intake@example.test\r\n\
                     Subject: =?UTF-8?B?6K+36Zeu?= {i}\r\nMessage-ID: <s{i}@example.edu.cn>\r\n\
                     Date: Mon, 2 Mar 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\n\
                     Content-Type: text/plain; charset=utf-8\r\n\r\n老师好，请问表格在哪里下载？\r\n"
                );
                let id = store
                    .insert_file_message(raw.as_bytes(), Some(now), now)
                    .await
                    .expect("store")
                    .id();
                ids.push((id, raw.len() as u64));
            }
            let gone = (i64::MAX, 10);
            let batches: Vec<(Vec<(i64, u64)>, &str)> = vec![
                (ids[..30].to_vec(), "a"),
                (Vec::new(), "b"),
                ([&ids[30..], &[gone][..]].concat(), "c"),
            ];
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
            let feed = async {
                for b in batches.clone() {
                    tx.send(b).await.expect("pipeline listening");
                }
                drop(tx);
            };
            let check = async {
                let mut back = Vec::new();
                while let Some(tag) = done_rx.recv().await {
                    let pending = store.pending().await.expect("pending");
                    let (batch, _) = batches.iter().find(|(_, t)| *t == tag).expect("a tag sent");
                    assert!(
                        batch.iter().all(|(id, _)| !pending.contains(id)),
                        "{backend}: batch {tag} came back before all of it was committed"
                    );
                    back.push(tag);
                }
                back
            };
            let (_, processed, back) =
                tokio::join!(feed, pipeline.process_stream(rx, done_tx), check);
            processed.expect("processed");
            assert_eq!(back, ["a", "b", "c"], "{backend}");
            assert!(
                store.pending().await.expect("pending").is_empty(),
                "{backend}"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn failures_are_typed_and_keep_their_causes() {
        let e = ProcessError::Transient(
            anyhow::Error::new(std::io::Error::other("磁盘坏了")).context("读取存档的原始邮件"),
        );
        assert!(e.is_transient());
        assert_eq!(e.text(), "读取存档的原始邮件: 磁盘坏了");
        // At the command line's edge, the causes are still there (`cli::zh::describe`).
        let edge = anyhow::Error::new(e);
        let chain: Vec<String> = edge.chain().map(|c| c.to_string()).collect();
        assert_eq!(chain, ["读取存档的原始邮件", "磁盘坏了"]);

        let io: ProcessError = std::io::Error::other("x").into();
        assert!(io.is_transient());
        let compose: ProcessError = ComposeError::Address("x".into()).into();
        assert!(!compose.is_transient());
        let json: ProcessError =
            record::RecordError::from(serde_json::from_str::<i64>("x").expect_err("not JSON"))
                .into();
        assert!(!json.is_transient());
        let late = ProcessError::permanent("读取附件超过 120 秒仍未完成，已放弃".into());
        assert!(!late.is_transient());
        assert_eq!(late.text(), "读取附件超过 120 秒仍未完成，已放弃");
    }
}
