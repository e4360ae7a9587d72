//! From a stored message to a recorded decision: understand it (pure), decide what it is and
//! what to answer (pure), then record everything — attachments, the submission with its
//! version, the answer in the outbox, the message's disposition — in one transaction.
//!
//! Processing is idempotent per message: it only runs on messages in the `stored` state and
//! ends by marking them `processed` in the same transaction that records the outcome, so a
//! crash anywhere before the commit simply means the next start processes the message again.

pub mod correct;

use crate::app::App;
use crate::campaign::conversation;
use crate::campaign::roster::{BranchMatch, MatchKind};
use crate::campaign::rules::{self, Facts, Problem};
use crate::campaign::subject::{ParsedSubject, SubjectKind};
use crate::clock::{beijing, db_time};
use crate::config::Config;
use crate::extract::Extracted;
use crate::message::{self, Attachment, LoopGuard, Understood};
use crate::notify::ack::{
    AckContext, AckView, ChecklistItem, ClosureView, HelpView, NoMaterialsView, ack_subject,
    enum_str, greeting, sender_note,
};
use crate::notify::compose::{self, MailSpec, Outgoing};
use crate::store::blobs::Staged;
use crate::store::threads;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Row, SqliteConnection};
use std::sync::Arc;

/// How long understanding one message and reading its attachments may take.
const EXTRACT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Prepared messages recorded per transaction by [`Pipeline::process_many`]: one commit (one
/// fsync) for several, while the write lock is still held only briefly.
const COMMIT_GROUP: usize = 8;

/// Messages above this size are prepared one at a time (see [`Pipeline::process_many`]).
const PARALLEL_MAX_BYTES: u64 = 4 << 20;

/// A message whose reading runs on a blocking thread ([`Pipeline::start`]).
struct Started {
    stored: crate::store::StoredMessage,
    work: tokio::task::JoinHandle<std::io::Result<(Understood, Extracted, Vec<Staged>)>>,
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
}

impl std::ops::Deref for Pipeline {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

/// What a message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Application,
    Closure,
    /// Auto-generated (out-of-office, bounce, list mail, our own): never answered.
    Auto,
    /// Looks like an application with a subject we cannot use: answered once with the exact subject.
    SubjectHelp,
    /// Anything else from a person: kept for staff, not answered automatically.
    Question,
    /// The copy of a mail we sent ourselves (see `send`): the proof that it went out.
    OwnCopy,
    /// A person's answer to one of our mails, or a branch's mail without materials after it
    /// already has a version: conversation for staff, never a version, never answered.
    Reply,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Application => "application",
            Disposition::Closure => "closure",
            Disposition::Auto => "auto",
            Disposition::SubjectHelp => "subject_help",
            Disposition::Question => "question",
            Disposition::OwnCopy => "own_copy",
            Disposition::Reply => "reply",
        }
    }

    /// In Chinese, for staff.
    pub fn label(self) -> &'static str {
        match self {
            Disposition::Application => "申报",
            Disposition::Closure => "结项",
            Disposition::Auto => "自动邮件",
            Disposition::SubjectHelp => "主题有误",
            Disposition::Question => "咨询",
            Disposition::OwnCopy => "本系统副本",
            Disposition::Reply => "回复/来信",
        }
    }
}

/// The Chinese label of a stored disposition or status (`application` → 申报).
pub fn disposition_label(s: &str) -> &'static str {
    const ALL: [Disposition; 7] = [
        Disposition::Application,
        Disposition::Closure,
        Disposition::Auto,
        Disposition::SubjectHelp,
        Disposition::Question,
        Disposition::OwnCopy,
        Disposition::Reply,
    ];
    match ALL.into_iter().find(|d| d.as_str() == s) {
        Some(d) => d.label(),
        None => match s {
            "failed" => "处理失败",
            "too_large" => "超过大小上限",
            "duplicate" => "重复",
            "stored" => "待处理",
            _ => "其他",
        },
    }
}

/// Whether processing answers what it registers: always in the daemon; `reprocess` replays
/// silently unless `--notify` is given, then with answers of their own Message-IDs (the
/// original answers were already sent under theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyMode {
    Normal,
    /// Register only; nothing is queued, and each message records why.
    Silent(Quiet),
    /// Answer again; the number tells this replay's answers apart from earlier ones.
    Again(i64),
}

impl NotifyMode {
    /// Why nothing is answered in this mode, for staff; `None` when answers go out.
    pub fn quiet_reason(self) -> Option<&'static str> {
        match self {
            NotifyMode::Silent(q) => Some(q.reason()),
            _ => None,
        }
    }
}

/// Why a run registers without answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// `reprocess` without `--notify`.
    Reprocess,
    /// `ingest --no-reply`: old mail entered afterwards (补录).
    Backfill,
}

impl Quiet {
    pub fn reason(self) -> &'static str {
        match self {
            Quiet::Reprocess => "重新处理时未要求通知（--notify），未发送回复",
            Quiet::Backfill => "补录旧邮件（shenbao ingest --no-reply），未发送回复",
        }
    }
}

/// The key of an answer's Message-ID: stable for a message, so a crash and a second
/// processing produce the same id (and the outbox keeps one).
fn answer_key(message: i64, raw_sha: &str, mode: NotifyMode) -> String {
    let base = format!("{message}.{}", raw_sha.get(..12).unwrap_or(raw_sha));
    match mode {
        NotifyMode::Again(n) => format!("{base}.r{n}"),
        _ => base,
    }
}

/// The outcome of processing one message, for logs and tests.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub message: i64,
    pub disposition: Disposition,
    pub reason: String,
    pub branch: Option<String>,
    pub version: Option<i64>,
    pub problems: Vec<Problem>,
    pub queued: Option<String>,
}

/// The pure part of the decision, before versions and rate limits are known.
struct Classified {
    disposition: Disposition,
    reason: String,
    subject: Option<ParsedSubject>,
    matched: Option<BranchMatch>,
    /// The roster branch the mail concerns, when known.
    branch: Option<String>,
    /// It carries something that could be a version ([`conversation::carries_materials`]).
    materials: bool,
    /// Registered but not to be answered (strong evidence that no person is there).
    no_answer: Option<String>,
}

impl Classified {
    /// Materials to register for `matched` (an application or a closure).
    fn registered(
        disposition: Disposition,
        reason: String,
        subject: ParsedSubject,
        matched: BranchMatch,
        materials: bool,
    ) -> Classified {
        Classified {
            disposition,
            reason,
            branch: matched.branch.as_ref().map(|b| b.name.clone()),
            subject: Some(subject),
            matched: Some(matched),
            materials,
            no_answer: None,
        }
    }

    /// Registered but not answered, for this reason (strong automatic signals).
    fn answered_unless(self, no_answer: Option<String>) -> Classified {
        Classified { no_answer, ..self }
    }

    fn new(disposition: Disposition, reason: String) -> Classified {
        Classified {
            disposition,
            reason,
            subject: None,
            matched: None,
            branch: None,
            materials: false,
            no_answer: None,
        }
    }
}

/// What classification needs besides the message: what the database knows about it.
struct ClassifyInput<'a> {
    /// The subject without our own wording ([`conversation::strip_our_wording`]).
    subject: &'a str,
    /// It answers one of our mails (by its headers or our wording in its subject).
    answers_us: bool,
    thread: Option<&'a Thread>,
    /// Staff's `assign`.
    assigned: Option<&'a str>,
}

/// A mail of ours that a message answers.
#[derive(Debug, Clone)]
struct Thread {
    /// Its Message-ID, without <>.
    our_id: String,
    /// The branch it was about, when known.
    branch: Option<String>,
    /// It was about closure (a closure acknowledgement, a result mail).
    closure: bool,
}

/// What [`Pipeline::register`] needs.
struct Registration<'a> {
    id: i64,
    stored: &'a crate::store::StoredMessage,
    understood: &'a Understood,
    extracted: &'a Extracted,
    classified: &'a Classified,
    received: DateTime<Utc>,
    now: DateTime<Utc>,
    reply_to: Option<&'a str>,
    notify: NotifyMode,
}

/// What [`Pipeline::register`] did.
enum Registered {
    Version {
        branch: Option<String>,
        version: i64,
        problems: Vec<Problem>,
        queued: Option<String>,
        no_answer: Option<String>,
        unknown_branch: bool,
    },
    /// No materials, and the branch already has a version: conversation.
    NothingNew {
        branch: String,
        version: i64,
        reason: String,
    },
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
        Pipeline {
            app,
            guard,
            notify_mode: NotifyMode::Normal,
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
    pub async fn failed(&self, id: i64, e: &anyhow::Error) -> anyhow::Result<()> {
        let transient = e.chain().any(|c| {
            c.downcast_ref::<sqlx::Error>().is_some()
                || c.downcast_ref::<crate::store::StoreError>().is_some()
                || c.downcast_ref::<std::io::Error>().is_some()
        });
        if transient {
            tracing::warn!(message = id, error = %format!("{e:#}"), "处理被打断（数据库或磁盘暂时出错），稍后重试");
            return Ok(());
        }
        tracing::error!(message = id, error = %format!("{e:#}"), "处理失败，已标为失败，留待工作人员处理");
        self.mark_failed(id, &format!("{e:#}")).await
    }

    async fn mark_failed(&self, id: i64, error: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE messages SET status = 'failed', reason = ?, processed_at = ? WHERE id = ? AND status = 'stored'")
            .bind(format!("处理失败：{error}"))
            .bind(db_time(self.clock.now()))
            .bind(id)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }

    /// Processes one stored message; `None` when it was already processed.
    pub async fn process(&self, id: i64) -> anyhow::Result<Option<Outcome>> {
        match self.prepare(id).await? {
            Some(p) => self.commit(p).await,
            None => Ok(None),
        }
    }

    /// Processes stored messages in order, reading the next ones while the current one is
    /// written: parsing and extraction use every core, the database writes stay in order
    /// (versions are numbered in arrival order), several to a transaction ([`COMMIT_GROUP`]).
    /// Large messages are read one at a time, so memory stays bounded.
    pub async fn process_many(&self, ids: &[(i64, u64)]) -> anyhow::Result<()> {
        let large = ids.iter().any(|&(_, size)| size > PARALLEL_MAX_BYTES);
        let ahead = if large {
            1
        } else {
            std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).clamp(4, 16))
        };
        let mut next = ids.iter().map(|&(id, _)| id);
        let mut inflight = std::collections::VecDeque::with_capacity(ahead);
        let mut group = Vec::with_capacity(COMMIT_GROUP);
        loop {
            while inflight.len() < ahead {
                let Some(id) = next.next() else { break };
                inflight.push_back((id, self.start(id).await));
            }
            let Some((id, started)) = inflight.pop_front() else {
                break;
            };
            let prepared = match started {
                Ok(Some(st)) => self.finish(st).await,
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            match prepared {
                Ok(p) => group.push(p),
                Err(e) => self.failed(id, &e).await?,
            }
            if group.len() >= COMMIT_GROUP {
                self.commit_group(std::mem::take(&mut group)).await?;
            }
        }
        self.commit_group(group).await
    }

    /// Commits several prepared messages in one transaction, in order. If one of them fails,
    /// the transaction is rolled back: that one is recorded as failed (or left for a retry
    /// when the error is transient) and the others stay `stored`, for process_pending.
    async fn commit_group(&self, mut group: Vec<Prepared>) -> anyhow::Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        // Attachment files first, all flushed together; a failure here is a disk error, and
        // every message of the group stays `stored` for the next round.
        let staged = group.iter_mut().flat_map(|p| std::mem::take(&mut p.blobs));
        if let Err(e) = publish(staged.collect()).await {
            return self.failed(group[0].id, &e).await;
        }
        let mut tx = self.store.begin_write().await?;
        let mut outcomes = Vec::with_capacity(group.len());
        for p in group {
            let id = p.id;
            match self.commit_in(&mut tx, p).await {
                Ok(Some(o)) => outcomes.push(o),
                Ok(None) => {}
                Err(e) => {
                    drop(tx);
                    return self.failed(id, &e).await;
                }
            }
        }
        tx.commit().await?;
        for o in &outcomes {
            self.committed(o);
        }
        Ok(())
    }

    /// The part of processing that needs no database lock: read the stored mail, understand
    /// it, read its attachments and write them to the blob directory. `None` when the message
    /// is unknown.
    pub async fn prepare(&self, id: i64) -> anyhow::Result<Option<Prepared>> {
        match self.start(id).await? {
            Some(st) => self.finish(st).await.map(Some),
            None => Ok(None),
        }
    }

    /// Starts [`Pipeline::prepare`]'s work on a blocking thread; it runs while the caller does
    /// other things (see [`Pipeline::process_many`]).
    async fn start(&self, id: i64) -> anyhow::Result<Option<Started>> {
        let Some(stored) = self.store.message(id).await? else {
            return Ok(None);
        };
        let blobs = self.store.blobs.clone();
        let sha = stored.raw_sha256.clone();
        let guard = self.guard.clone();
        let sections = self.cfg.campaign.sections.clone();
        // Parsing and reading Office files is CPU work on untrusted input: off the async
        // threads, and bounded in time (the readers bound themselves; this is the backstop).
        let work = tokio::task::spawn_blocking(move || {
            // Owned: the raw mail is dropped once its parts are decoded (memory, see there).
            let understood = message::understand_owned(blobs.get(&sha)?, &guard);
            let extracted = crate::extract::extract(&understood.attachments, &sections);
            // Attachment bytes are written here, on the blocking thread, so they are not
            // copied to get there; flushed later, several messages' at once.
            let mut staged = Vec::new();
            for a in rules::all_files(&understood.attachments) {
                staged.extend(blobs.stage_as(&a.sha256, &a.bytes)?);
            }
            Ok((understood, extracted, staged))
        });
        Ok(Some(Started { stored, work }))
    }

    async fn finish(&self, st: Started) -> anyhow::Result<Prepared> {
        let (understood, extracted, blobs) = tokio::time::timeout(EXTRACT_TIME_LIMIT, st.work)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "读取附件超过 {} 秒仍未完成，已放弃",
                    EXTRACT_TIME_LIMIT.as_secs()
                )
            })?
            .context("读取邮件的任务中断")?
            .context("读取存档的原始邮件")?;
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
    pub async fn commit(&self, mut p: Prepared) -> anyhow::Result<Option<Outcome>> {
        publish(std::mem::take(&mut p.blobs)).await?;
        let mut tx = self.store.begin_write().await?;
        let outcome = self.commit_in(&mut tx, p).await?;
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
        tx: &mut SqliteConnection,
        p: Prepared,
    ) -> anyhow::Result<Option<Outcome>> {
        self.commit_in(tx, p).await
    }

    /// What [`Pipeline::commit`] writes, inside the caller's transaction (several messages
    /// can share one: [`Pipeline::process_many`]).
    async fn commit_in(
        &self,
        tx: &mut SqliteConnection,
        p: Prepared,
    ) -> anyhow::Result<Option<Outcome>> {
        let Prepared {
            id,
            stored,
            understood,
            extracted,
            blobs: _,
        } = p;

        let received = stored.internal_date.unwrap_or(stored.stored_at);
        let now = self.clock.now();

        let row = sqlx::query("SELECT status, assigned_branch FROM messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        if row.get::<String, _>(0) != "stored" {
            return Ok(None);
        }
        let assigned: Option<String> = row.get(1);

        let (subject_text, our_wording) = conversation::strip_our_wording(&understood.subject);
        // Our own copies answer the applicants' mails, never ours: no lookup for them.
        let thread = if self.is_own_copy(&understood) {
            None
        } else {
            self.find_thread(&mut *tx, &understood).await?
        };
        let classified = self.classify(
            &understood,
            &ClassifyInput {
                subject: &subject_text,
                answers_us: our_wording || thread.is_some(),
                thread: thread.as_ref(),
                assigned: assigned.as_deref(),
            },
        );
        // A closure mail's files are closure materials, recognised by title as well as name.
        let (understood, extracted) = if classified.disposition == Disposition::Closure {
            crate::campaign::closure::for_closure_mail(understood, extracted)
        } else {
            (understood, extracted)
        };
        self.record_attachments(&mut *tx, id, &understood.attachments, now)
            .await?;

        let mut outcome = Outcome {
            message: id,
            disposition: classified.disposition,
            reason: classified.reason.clone(),
            branch: classified.branch.clone(),
            version: None,
            problems: Vec::new(),
            queued: None,
        };
        let mut needs_staff = false;
        let mut no_answer: Option<String> = None;
        let reply_to = understood
            .reply_to
            .as_ref()
            .or(understood.from.as_ref())
            .map(|a| a.addr.to_lowercase())
            .filter(|a| a.contains('@'));

        match classified.disposition {
            Disposition::Application | Disposition::Closure => {
                let registered = self
                    .register(
                        &mut *tx,
                        Registration {
                            id,
                            stored: &stored,
                            understood: &understood,
                            extracted: &extracted,
                            classified: &classified,
                            received,
                            now,
                            reply_to: reply_to.as_deref(),
                            notify: self.notify_mode,
                        },
                    )
                    .await?;
                match registered {
                    Registered::Version {
                        branch,
                        version,
                        problems,
                        queued,
                        no_answer: why,
                        unknown_branch,
                    } => {
                        outcome.branch = branch;
                        outcome.version = Some(version);
                        outcome.problems = problems;
                        outcome.queued = queued;
                        no_answer = why;
                        needs_staff = unknown_branch;
                    }
                    Registered::NothingNew {
                        branch,
                        version,
                        reason,
                    } => {
                        outcome.disposition = Disposition::Reply;
                        outcome.reason = reason;
                        needs_staff = true;
                        // Most likely a forgotten attachment: say so once, and that the
                        // registered version still counts.
                        if let Some(to) = &reply_to
                            && self.notify_mode.quiet_reason().is_none()
                        {
                            let view = NoMaterialsView {
                                greeting: greeting(
                                    understood.from.as_ref().and_then(|a| a.name.as_deref()),
                                    None,
                                ),
                                organizer: self.cfg.campaign.organizer.clone(),
                                subject: understood.subject.clone(),
                                received_at: beijing(received),
                                kind_label: classified.disposition.label(),
                                branch: branch.clone(),
                                version,
                                exact_subject: if classified.disposition == Disposition::Closure {
                                    self.grammar.closure_subject_for(&branch)
                                } else {
                                    self.grammar.application_subject_for(&branch)
                                },
                                staff_contact: self.cfg.campaign.staff_contact.clone(),
                            };
                            let text = self
                                .render_logged(&mut *tx, "no_materials.txt.j2", &view, id, now)
                                .await?;
                            let mail = self.compose_answer(
                                &understood,
                                to,
                                "no_materials",
                                &answer_key(id, &stored.raw_sha256, self.notify_mode),
                                &format!("Re: {}（未附材料，未登记新版本）", understood.subject),
                                &text,
                                now,
                                None,
                            )?;
                            match self
                                .queue_limited(&mut *tx, id, mail, Some(&branch), now)
                                .await?
                            {
                                Ok(queued) => outcome.queued = Some(queued),
                                Err(why) => no_answer = Some(why),
                            }
                        }
                        if let Some(why) = self.notify_mode.quiet_reason() {
                            no_answer = Some(why.into());
                        }
                        outcome.branch = Some(branch);
                    }
                }
            }
            Disposition::SubjectHelp => {
                if let Some(why) = self.notify_mode.quiet_reason() {
                    needs_staff = true;
                    no_answer = Some(why.into());
                } else if let Some(to) = &reply_to {
                    let suggestion = self.roster.by_email(to).map(|b| b.name.clone());
                    let ctx = HelpView {
                        greeting: greeting(
                            understood.from.as_ref().and_then(|a| a.name.as_deref()),
                            None,
                        ),
                        organizer: self.cfg.campaign.organizer.clone(),
                        campaign_name: self.cfg.campaign.name.clone(),
                        subject: understood.subject.clone(),
                        received_at: beijing(received),
                        exact_subject: self.grammar.application_subject_for("支部名称"),
                        suggestion_subject: suggestion
                            .as_deref()
                            .map(|s| self.grammar.application_subject_for(s)),
                        suggestion,
                        deadline: beijing(self.cfg.campaign.deadline),
                        staff_contact: self.cfg.campaign.staff_contact.clone(),
                    };
                    let text = self
                        .render_logged(&mut *tx, "subject_help.txt.j2", &ctx, id, now)
                        .await?;
                    let subject_line =
                        format!("Re: {}（主题格式有误，未登记）", understood.subject);
                    // One help mail per sender per window: a second wrong subject is for staff.
                    if count_recent(&mut *tx, to, "subject_help", now - window(&self.cfg)).await?
                        == 0
                    {
                        let mail = self.compose_answer(
                            &understood,
                            to,
                            "subject_help",
                            &answer_key(id, &stored.raw_sha256, self.notify_mode),
                            &subject_line,
                            &text,
                            now,
                            None,
                        )?;
                        match self.queue_limited(&mut *tx, id, mail, None, now).await? {
                            Ok(queued) => outcome.queued = Some(queued),
                            Err(why) => {
                                needs_staff = true;
                                no_answer = Some(why);
                            }
                        }
                    } else {
                        needs_staff = true;
                        no_answer =
                            Some("已就主题格式答复过该发件人，本次不再答复，留待人工处理".into());
                    }
                }
            }
            Disposition::Question | Disposition::Reply => needs_staff = true,
            Disposition::Auto | Disposition::OwnCopy => {}
        }
        if reply_to.is_none()
            && matches!(
                outcome.disposition,
                Disposition::Application | Disposition::Closure | Disposition::SubjectHelp
            )
        {
            no_answer = Some("没有可回复的发件地址，未回复".into());
        }
        if let Some(why) = &no_answer {
            outcome.reason.push('；');
            outcome.reason.push_str(why);
        }
        if !understood.auto_hints.is_empty() {
            let hints: Vec<&str> = understood
                .auto_hints
                .iter()
                .map(|h| h.detail.as_str())
                .collect();
            outcome.reason.push_str(&format!(
                "；另有不足以认定为自动邮件的信号：{}",
                hints.join("，")
            ));
        }

        sqlx::query(
            "UPDATE messages SET status = 'processed', disposition = ?, reason = ?, subject = ?, from_addr = ?, from_name = ?, message_id = COALESCE(message_id, ?), processed_at = ?,
                                 branch = ?, thread_of = ?, needs_staff = ?, no_answer = ?, auto_hints = ?
             WHERE id = ?",
        )
        .bind(outcome.disposition.as_str())
        .bind(&outcome.reason)
        .bind(&understood.subject)
        .bind(understood.from.as_ref().map(|a| a.addr.to_lowercase()))
        .bind(understood.from.as_ref().and_then(|a| a.name.clone()))
        .bind(&understood.message_id)
        .bind(db_time(now))
        .bind(&outcome.branch)
        .bind(thread.as_ref().map(|t| t.our_id.clone()))
        .bind(needs_staff)
        .bind(&no_answer)
        .bind(if understood.auto_hints.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&understood.auto_hints)?)
        })
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Ok(Some(outcome))
    }

    /// Registers an application or closure as the branch's next version and answers it;
    /// or, when the mail carries no materials and the branch already has a version, records
    /// that nothing new came (a mail without materials never replaces one).
    async fn register(
        &self,
        tx: &mut SqliteConnection,
        r: Registration<'_>,
    ) -> anyhow::Result<Registered> {
        let Registration {
            id,
            stored,
            understood,
            extracted,
            classified,
            received,
            now,
            reply_to,
            notify,
        } = r;
        let closure_kind = classified.disposition == Disposition::Closure;
        let kind = classified.disposition.as_str();
        let subject = classified.subject.as_ref();
        let matched = classified.matched.clone().unwrap_or_else(unknown_match);
        if !classified.materials
            && let Some(b) = &matched.branch
            && let Some(latest) = threads::latest_version(tx, kind, &b.name).await?
        {
            return Ok(Registered::NothingNew {
                branch: b.name.clone(),
                version: latest,
                reason: format!(
                    "{}的来信没有附带{}材料，第 {latest} 版仍然有效：不登记为新版本，留待工作人员查看",
                    b.name,
                    if closure_kind { "结项" } else { "申报" }
                ),
            });
        }
        let deadline = if closure_kind {
            self.cfg.campaign.closure_deadline
        } else {
            Some(self.cfg.campaign.deadline)
        };
        let grace = chrono::Duration::from_std(self.cfg.campaign.grace).unwrap_or_default();
        let late = deadline.is_some_and(|d| received > d + grace);
        let facts = Facts {
            attachments: &understood.attachments,
            has_cloud_links: !understood.cloud_links.is_empty(),
            branch_known: matched.branch.is_some(),
            subject_nonstandard: subject.is_some_and(|s| !s.deviations.is_empty())
                || matched.kind == MatchKind::Fuzzy,
            late,
            extracted,
            policy: &self.policy,
        };
        let mut findings = rules::check(&facts);
        let mut closure = None;
        let mut suggested: Option<String> = None;
        if closure_kind {
            // Closure materials have their own checklist (per level, from the config),
            // not the application form's rules.
            findings.retain(|f| {
                matches!(
                    f.code,
                    Problem::BranchUnknown
                        | Problem::SubjectNonstandard
                        | Problem::CloudAttachment
                        | Problem::Late
                )
            });
            if let Some(b) = &matched.branch {
                closure = self
                    .closure_check(&mut *tx, &b.name, &understood.attachments)
                    .await?;
                match &closure {
                    None => findings.push(rules::Finding {
                        code: Problem::ClosureNotFunded,
                        detail: None,
                    }),
                    Some(c) => {
                        let missing: Vec<&str> = c
                            .checklist
                            .iter()
                            .filter(|i| !i.present)
                            .map(|i| i.material.as_str())
                            .collect();
                        if !missing.is_empty() {
                            findings.push(rules::Finding {
                                code: Problem::ClosureIncomplete,
                                detail: Some(format!("还缺：{}", missing.join("、"))),
                            });
                        }
                    }
                }
            }
        } else {
            let named = self.branches_named(extracted);
            match &matched.branch {
                Some(b) => {
                    let others: Vec<String> = named
                        .iter()
                        .filter(|(_, n)| n != &b.name)
                        .map(|(what, n)| format!("{what}中填写的是“{n}”"))
                        .collect();
                    if !others.is_empty() {
                        findings.push(rules::Finding {
                            code: Problem::FormBranchMismatch,
                            detail: Some(format!(
                                "主题中的支部是“{}”，{}",
                                b.name,
                                others.join("，")
                            )),
                        });
                    }
                }
                None => suggested = named.into_iter().next().map(|(_, n)| n),
            }
        }
        findings.sort_by_key(|f| f.code);
        let problems: Vec<Problem> = findings.iter().map(|f| f.code).collect();
        let chosen = extracted.chosen();
        let branch_text = subject.and_then(|s| s.branch.clone());
        let branch_key = match &matched.branch {
            Some(b) => b.name.clone(),
            None => format!(
                "?{}",
                crate::textnorm::normalize(branch_text.as_deref().unwrap_or(""))
            ),
        };
        let sender = reply_to.unwrap_or_default().to_string();
        let trust = match &matched.branch {
            Some(b) => {
                let earlier = threads::earlier_senders(&mut *tx, &b.name, id).await?;
                Some(conversation::sender_trust(
                    &sender,
                    self.roster.emails(&b.name),
                    &earlier,
                ))
            }
            None => None,
        };
        let sender_changed = trust.as_ref().is_some_and(conversation::Trust::changed);
        let content_key = conversation::content_key(closure_kind, &understood.attachments);
        let version = next_version(&mut *tx, kind, &branch_key).await?;
        sqlx::query("UPDATE submissions SET is_latest = 0 WHERE kind = ? AND branch_key = ?")
            .bind(kind)
            .bind(&branch_key)
            .execute(&mut *tx)
            .await?;
        let codes: Vec<&str> = problems.iter().map(|p| p.code()).collect();
        sqlx::query(
            "INSERT INTO submissions (kind, branch_key, branch, college, branch_text, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at,
                                      fields, fields_source, form_fields, summary_fields, problem_details, sender_changed, suggested_branch, content_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(kind)
        .bind(&branch_key)
        .bind(matched.branch.as_ref().map(|b| b.name.clone()))
        .bind(matched.branch.as_ref().map(|b| b.college.clone()))
        .bind(&branch_text)
        .bind(match_kind_str(matched.kind))
        .bind(matched.score)
        .bind(&matched.reason)
        .bind(version)
        .bind(id)
        .bind(&sender)
        .bind(db_time(received))
        .bind(late)
        .bind(serde_json::to_string(&codes)?)
        .bind(db_time(now))
        .bind(chosen.map(|(f, _)| serde_json::to_string(f)).transpose()?)
        .bind(chosen.map(|(_, source)| source))
        .bind(extracted.form.as_ref().map(serde_json::to_string).transpose()?)
        .bind(extracted.summary.as_ref().map(serde_json::to_string).transpose()?)
        .bind(serde_json::to_string(&findings)?)
        .bind(sender_changed)
        .bind(&suggested)
        .bind(&content_key)
        .execute(&mut *tx)
        .await?;
        for (sha, error) in &extracted.read_errors {
            sqlx::query(
                "UPDATE attachments SET read_error = ? WHERE message_id = ? AND sha256 = ?",
            )
            .bind(error)
            .bind(id)
            .bind(sha)
            .execute(&mut *tx)
            .await?;
        }

        // Whether to answer: never a machine (strong evidence only), never without an address,
        // and identical content only a bounded number of times (a loop re-sending one mail).
        let mut no_answer = classified.no_answer.clone();
        let mut queued = None;
        if no_answer.is_none()
            && let Some(why) = notify.quiet_reason()
        {
            no_answer = Some(why.into());
        }
        if no_answer.is_none()
            && let Some(to) = reply_to
        {
            let repeats = threads::identical_acks(
                tx,
                threads::IdenticalContent {
                    kind,
                    branch_key: &branch_key,
                    content_key: &content_key,
                    to,
                },
                id,
                now - window(&self.cfg),
            )
            .await?;
            if repeats >= i64::from(self.cfg.ack.max_identical) {
                no_answer = Some(format!(
                    "与此前的版本内容完全相同，时间窗口内已就同样的内容回复 {repeats} 次，本次不再回复"
                ));
            } else {
                let copy_to = match &trust {
                    Some(conversation::Trust::Changed { copy_to: Some(c) })
                        if !c.eq_ignore_ascii_case(to) =>
                    {
                        Some(c.clone())
                    }
                    _ => None,
                };
                let sender_note = sender_changed
                    .then(|| sender_note(&sender, matched.branch.as_ref(), copy_to.as_deref()));
                let ctx = AckView::new(
                    &AckContext {
                        campaign: &self.cfg.campaign,
                        grammar: &self.grammar,
                    },
                    understood,
                    &matched,
                    version,
                    received,
                    &findings,
                    chosen,
                    closure_kind,
                );
                let ctx = AckView {
                    closure,
                    sender_note,
                    suggestion: suggested.clone(),
                    ..ctx
                };
                let text = self
                    .render_logged(&mut *tx, "ack.txt.j2", &ctx, id, now)
                    .await?;
                let subject_line = ack_subject(&understood.subject, version, problems.len());
                let secretary = matched
                    .branch
                    .as_ref()
                    .map(|b| b.secretary.clone())
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "支部书记".to_string());
                let mail = self.compose_answer(
                    understood,
                    to,
                    "ack",
                    &answer_key(id, &stored.raw_sha256, notify),
                    &subject_line,
                    &text,
                    now,
                    copy_to.as_deref().map(|c| (secretary.as_str(), c)),
                )?;
                let branch = matched.branch.as_ref().map(|b| b.name.as_str());
                queued = Some(self.queue(&mut *tx, id, &mail, branch, now).await?);
            }
        }
        Ok(Registered::Version {
            branch: matched.branch.as_ref().map(|b| b.name.clone()),
            version,
            problems,
            queued,
            no_answer,
            unknown_branch: matched.branch.is_none(),
        })
    }

    /// Renders `name`; when staff's version of it fails, the built-in one is used and the error
    /// is recorded (status, the digest and `health` show it): a broken template never stops
    /// a registration.
    async fn render_logged(
        &self,
        tx: &mut SqliteConnection,
        name: &str,
        ctx: impl Serialize,
        message: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let (text, error) = self.templates.render_or_builtin(name, ctx)?;
        if let Some(e) = &error {
            tracing::error!(template = name, message, error = %e, "模板出错，已改用内置模板");
            crate::store::ops::insert_template_error(tx, name, e, Some(message), now).await?;
        }
        Ok(text)
    }

    /// The roster branches the form and the summary name exactly (`(“申请表”, name)`), each once.
    fn branches_named(&self, extracted: &Extracted) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for (what, fields) in [("申请表", &extracted.form), ("汇总表", &extracted.summary)] {
            let Some(text) = fields.as_ref().and_then(|f| f.branch.as_deref()) else {
                continue;
            };
            // Exactly a roster name (after normalising width and spaces): no fuzzy guess
            // accuses a branch of sending another's form, and no edit-distance search runs
            // for every mail.
            if let Some(b) = self.roster.get(text)
                && !out.iter().any(|(_, n)| n == &b.name)
            {
                out.push((what, b.name.clone()));
            }
        }
        out
    }

    /// The mail of ours that `u` answers, if any: the newest of its In-Reply-To and
    /// References that we sent (the outbox), with the branch it was about. A Message-ID of our
    /// domain that is no longer in the outbox still marks a reply, without a branch.
    async fn find_thread(
        &self,
        tx: &mut SqliteConnection,
        u: &Understood,
    ) -> anyhow::Result<Option<Thread>> {
        let candidates = conversation::thread_candidates(u, 20);
        for id in &candidates {
            if let Some(ours) = threads::our_mail(&mut *tx, id).await? {
                // About closure: a closure acknowledgement, a result mail, a closure reminder.
                let closure = ours.submission_kind.as_deref() == Some("closure")
                    || ours.kind == "result"
                    || (ours.kind == "reminder" && ours.subject.contains("结项"));
                return Ok(Some(Thread {
                    our_id: id.clone(),
                    branch: ours.branch,
                    closure,
                }));
            }
        }
        let own = format!("@{}", self.cfg.ack.message_id_domain.to_ascii_lowercase());
        Ok(candidates
            .into_iter()
            .find(|c| c.to_ascii_lowercase().ends_with(&own))
            .map(|our_id| Thread {
                our_id,
                branch: None,
                closure: false,
            }))
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

    /// The copy of a mail we sent: from our address, with our Message-ID domain.
    fn is_own_copy(&self, u: &Understood) -> bool {
        let own_suffix = format!("@{}", self.cfg.ack.message_id_domain);
        let from_us = u
            .from
            .as_ref()
            .is_some_and(|f| self.guard.own_addresses.contains(&f.addr.to_lowercase()));
        from_us
            && u.message_id
                .as_deref()
                .is_some_and(|m| m.ends_with(&own_suffix))
    }

    fn classify(&self, u: &Understood, input: &ClassifyInput<'_>) -> Classified {
        if self.is_own_copy(u) {
            return Classified::new(Disposition::OwnCopy, "本系统所发邮件的存档副本".to_string());
        }
        let auto_reason = |a: &crate::message::AutoSignal| {
            format!("自动生成的邮件（{}：{}），不回复", a.code, a.detail)
        };
        // Our own mail coming back (the loop header, our Message-ID or address): never a
        // version, whatever it carries.
        if let Some(a) = &u.auto
            && matches!(a.code, "loop_header" | "own_message_id" | "own_address")
        {
            return Classified::new(Disposition::Auto, auto_reason(a));
        }
        let parsed = self.grammar.parse(input.subject);
        let thread_branch = input.thread.and_then(|t| t.branch.clone());
        let thread_closure = input.thread.is_some_and(|t| t.closure);
        let kind = match parsed.kind {
            SubjectKind::Application => Some(Disposition::Application),
            SubjectKind::Closure => Some(Disposition::Closure),
            SubjectKind::Other if input.assigned.is_some() || thread_branch.is_some() => {
                Some(if thread_closure {
                    Disposition::Closure
                } else {
                    Disposition::Application
                })
            }
            SubjectKind::Other => None,
        };
        let materials = conversation::carries_materials(kind == Some(Disposition::Closure), u);
        let match_subject = |parsed: &ParsedSubject| {
            parsed
                .branch
                .as_deref()
                .map(|b| self.roster.match_branch(b))
                .unwrap_or_else(unknown_match)
        };
        let no_answer = u.auto.as_ref().map(|a| {
            format!(
                "有明确的自动邮件信号（{}：{}），材料已登记但不回复",
                a.code, a.detail
            )
        });

        // Staff said which branch this mail is for.
        if let Some(name) = input.assigned {
            let matched = match self.roster.get(name) {
                Some(b) => BranchMatch {
                    kind: MatchKind::Exact,
                    branch: Some(b.clone()),
                    score: 1.0,
                    reason: "工作人员指定的支部".to_string(),
                    candidates: Vec::new(),
                },
                None => unknown_match(),
            };
            let disposition = kind.unwrap_or(Disposition::Application);
            let reason = format!("工作人员指定为“{name}”的{}", disposition.label());
            return Classified::registered(disposition, reason, parsed, matched, materials)
                .answered_unless(no_answer);
        }
        // A reply to one of our mails without materials is conversation.
        if input.answers_us && !materials {
            if let Some(a) = &u.auto {
                return Classified::new(Disposition::Auto, auto_reason(a));
            }
            let branch = thread_branch.or_else(|| {
                match_subject(&parsed)
                    .branch
                    .filter(|_| parsed.kind != SubjectKind::Other)
                    .map(|b| b.name)
            });
            return Classified {
                branch: branch.clone(),
                ..Classified::new(
                    Disposition::Reply,
                    format!(
                        "回复本系统的邮件{}，没有附带材料：不登记为新版本，不自动回复，留待工作人员查看",
                        branch.map(|b| format!("（{b}）")).unwrap_or_default()
                    ),
                )
            };
        }
        // Materials under the campaign's subject (or on the thread of a branch) are
        // registered, whatever weak or strong automatic signals say; those decide only
        // whether to answer.
        if let Some(disposition) = kind
            && materials
        {
            let mut matched = match_subject(&parsed);
            if matched.branch.is_none()
                && let Some(b) = thread_branch.as_deref().and_then(|n| self.roster.get(n))
            {
                matched = BranchMatch {
                    kind: MatchKind::Exact,
                    branch: Some(b.clone()),
                    score: 1.0,
                    reason: "主题中没有可识别的支部名称，按所回复的本系统邮件识别".to_string(),
                    candidates: Vec::new(),
                };
            }
            let how = if input.answers_us {
                "回复本系统邮件并附带材料，"
            } else {
                "主题"
            };
            let reason = format!(
                "{how}识别为{}；支部：{}",
                disposition.label(),
                matched.reason
            );
            return Classified::registered(disposition, reason, parsed, matched, materials)
                .answered_unless(no_answer);
        }
        if let Some(auto) = &u.auto {
            return Classified::new(Disposition::Auto, auto_reason(auto));
        }
        match parsed.kind {
            // “对标争先项目申报咨询” with nothing attached is a question about applying.
            SubjectKind::Application | SubjectKind::Closure
                if parsed.looks_like_question
                    && u.attachments.is_empty()
                    && u.cloud_links.is_empty() =>
            {
                Classified {
                    subject: Some(parsed),
                    ..Classified::new(
                        Disposition::Question,
                        "主题像是咨询且没有附件，留待工作人员处理".to_string(),
                    )
                }
            }
            SubjectKind::Application | SubjectKind::Closure => {
                let matched = match_subject(&parsed);
                let disposition = if parsed.kind == SubjectKind::Application {
                    Disposition::Application
                } else {
                    Disposition::Closure
                };
                let reason = format!(
                    "主题识别为{}；支部：{}",
                    disposition.label(),
                    matched.reason
                );
                Classified::registered(disposition, reason, parsed, matched, materials)
            }
            SubjectKind::Other => {
                let office = rules::all_files(&u.attachments).any(|a| {
                    a.format.is_word()
                        || a.format.is_spreadsheet()
                        || a.format == crate::attach::Format::Zip
                });
                if office
                    && (parsed.mentions_campaign
                        || rules::all_files(&u.attachments).any(|a| {
                            matches!(
                                a.role,
                                crate::attach::Role::Form | crate::attach::Role::Summary
                            )
                        }))
                {
                    Classified {
                        subject: Some(parsed),
                        ..Classified::new(
                            Disposition::SubjectHelp,
                            "带申报附件但主题不符合格式：答复正确主题".to_string(),
                        )
                    }
                } else {
                    Classified {
                        subject: Some(parsed),
                        ..Classified::new(
                            Disposition::Question,
                            "不是申报邮件（可能是咨询），留待工作人员处理".to_string(),
                        )
                    }
                }
            }
        }
    }

    async fn record_attachments(
        &self,
        tx: &mut SqliteConnection,
        message: i64,
        atts: &[Attachment],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        for (i, a) in atts.iter().enumerate() {
            let parent = self.insert_attachment(tx, message, None, i, a, now).await?;
            for (j, e) in a.entries.iter().enumerate() {
                self.insert_attachment(tx, message, Some(parent), j, e, now)
                    .await?;
            }
        }
        Ok(())
    }

    async fn insert_attachment(
        &self,
        tx: &mut SqliteConnection,
        message: i64,
        parent: Option<i64>,
        ordinal: usize,
        a: &Attachment,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let sha = &a.sha256;
        self.store.record_blob(tx, sha, a.bytes.len(), now).await?;
        let id = sqlx::query(
            "INSERT INTO attachments (message_id, parent_id, ordinal, filename, safe_name, content_type, format, declared_format, role, size, sha256, error)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(message)
        .bind(parent)
        .bind(ordinal as i64)
        .bind(&a.filename)
        .bind(&a.safe_name)
        .bind(&a.content_type)
        .bind(enum_str(&a.format))
        .bind(&a.declared_format)
        .bind(enum_str(&a.role))
        .bind(a.size as i64)
        .bind(sha)
        .bind(&a.error)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn compose_answer(
        &self,
        u: &Understood,
        to: &str,
        kind: &str,
        key: &str,
        subject: &str,
        text: &str,
        now: DateTime<Utc>,
        cc: Option<(&str, &str)>,
    ) -> anyhow::Result<Outgoing> {
        let spec = MailSpec {
            kind,
            from_name: &self.cfg.smtp.from_name,
            from_addr: &self.cfg.smtp.from_address,
            to_name: u.from.as_ref().and_then(|a| a.name.as_deref()),
            to_addr: to,
            subject,
            text,
            message_id: compose::message_id(kind, key, &self.cfg.ack.message_id_domain),
            in_reply_to: u.message_id.as_deref(),
            references: &u.references,
            loop_value: &self.cfg.campaign.intake_address,
            date: now,
            auto_submitted: "auto-replied",
        };
        Ok(compose::build_cc(&spec, cc)?)
    }

    /// The closure checklist of a branch's funded project, counting what this mail and every
    /// earlier closure mail brought; `None` when no funded project is on record.
    async fn closure_check(
        &self,
        tx: &mut SqliteConnection,
        branch: &str,
        attachments: &[Attachment],
    ) -> anyhow::Result<Option<ClosureView>> {
        let review: Option<(String, bool)> =
            sqlx::query("SELECT level, funded FROM reviews WHERE branch = ? AND is_current = 1")
                .bind(branch)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| (r.get(0), r.get(1)));
        let Some((level, true)) = review else {
            return Ok(None);
        };
        let cfg = self.cfg.levels.iter().find(|l| l.name == level);
        let required = cfg.map(|l| l.closure_materials.clone()).unwrap_or_default();
        let mut roles = crate::campaign::closure::roles_sent(tx, branch).await?;
        roles.extend(rules::all_files(attachments).map(|a| a.role));
        let checklist: Vec<ChecklistItem> = crate::campaign::closure::checklist(&required, &roles)
            .into_iter()
            .map(|(material, present)| ChecklistItem { material, present })
            .collect();
        Ok(Some(ClosureView {
            complete: checklist.iter().all(|i| i.present),
            checklist,
            publish: cfg.is_some_and(|l| l.publish),
            level,
        }))
    }

    /// Queues `mail` in the outbox (with its copy recipient and the branch it is about);
    /// returns its Message-ID.
    async fn queue(
        &self,
        tx: &mut SqliteConnection,
        message: i64,
        mail: &Outgoing,
        branch: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        crate::store::enqueue(tx, mail, Some(message), branch, now).await?;
        Ok(mail.message_id.clone())
    }

    /// Queues an answer that is not the acknowledgement of new materials (the subject-format
    /// help, the no-materials note) unless the recipient already got `ack.max_per_sender`
    /// mails of its kind in the window:
    /// a loop with a responder we failed to recognise ends here. `Err` says why not.
    async fn queue_limited(
        &self,
        tx: &mut SqliteConnection,
        message: i64,
        mail: Outgoing,
        branch: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Result<String, String>> {
        let recent = count_recent(tx, &mail.to, &mail.kind, now - window(&self.cfg)).await?;
        if recent >= i64::from(self.cfg.ack.max_per_sender) {
            tracing::warn!(to = %mail.to, recent, kind = %mail.kind, "已达到对同一地址的自动提示上限，本次不回复");
            return Ok(Err(format!(
                "{} 在时间窗口内已收到 {recent} 封同类自动提示，本次不再回复",
                mail.to
            )));
        }
        Ok(Ok(self.queue(tx, message, &mail, branch, now).await?))
    }
}

fn window(cfg: &Config) -> chrono::Duration {
    chrono::Duration::from_std(cfg.ack.window).unwrap_or_else(|_| chrono::Duration::hours(24))
}

async fn count_recent(
    tx: &mut SqliteConnection,
    to: &str,
    kind_like: &str,
    since: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM outbox WHERE to_addr = ? AND kind LIKE ? AND created_at >= ?",
    )
    .bind(to)
    .bind(kind_like)
    .bind(db_time(since))
    .fetch_one(&mut *tx)
    .await?;
    Ok(row.get(0))
}

async fn next_version(
    tx: &mut SqliteConnection,
    kind: &str,
    branch_key: &str,
) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM submissions WHERE kind = ? AND branch_key = ?",
    )
    .bind(kind)
    .bind(branch_key)
    .fetch_one(&mut *tx)
    .await?;
    Ok(row.get(0))
}

/// Flushes staged attachment files on a blocking thread ([`crate::store::blobs::publish`]).
pub async fn publish(staged: Vec<Staged>) -> anyhow::Result<()> {
    if staged.is_empty() {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || crate::store::blobs::publish(staged))
        .await
        .context("写入附件文件")?
        .context("写入附件文件")?;
    Ok(())
}

fn unknown_match() -> BranchMatch {
    BranchMatch {
        kind: MatchKind::Unknown,
        branch: None,
        score: 0.0,
        reason: "主题中没有支部名称".to_string(),
        candidates: Vec::new(),
    }
}

pub fn match_kind_str(k: MatchKind) -> &'static str {
    match k {
        MatchKind::Exact => "exact",
        MatchKind::Fuzzy => "fuzzy",
        MatchKind::Unknown => "unknown",
    }
}
