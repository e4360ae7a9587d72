//! Deciding what a message is and what to answer: from an understood message and what the
//! database knew beforehand (the thread it answers, staff's assignment, the branch's earlier
//! versions and senders, the answers already sent, the closure materials already brought) to
//! a [`Decision`] — the disposition, the branch, the version, its problems, the closure
//! checklist, the answer to send or why none goes out.
//!
//! Pure: no async runtime, no database, no file system, no clock (`now` is passed in). The
//! pipeline reads the facts in its transaction ([`needs`] says which), calls [`decide`], and
//! records the result (`pipeline::record`).

use crate::attach::Role;
use crate::campaign::conversation;
use crate::campaign::roster::{BranchMatch, MatchKind, Roster};
use crate::campaign::rules::{self, Facts, Problem};
use crate::campaign::subject::{ParsedSubject, SubjectGrammar, SubjectKind};
use crate::clock::beijing;
use crate::config::Config;
use crate::extract::Extracted;
use crate::message::{Attachment, LoopGuard, Understood};
use crate::notify::ack::{
    AckContext, AckView, ChecklistItem, ClosureView, HelpView, NoMaterialsView, ack_subject,
    greeting, sender_note,
};
use crate::notify::compose::{self, ComposeError, MailSpec, OutboxKind, Outgoing, Templates};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What deciding needs besides the message: the campaign, and whether answers go out.
pub struct Context<'a> {
    pub cfg: &'a Config,
    pub grammar: &'a SubjectGrammar,
    pub roster: &'a Roster,
    pub templates: &'a Templates,
    pub policy: &'a rules::Policy,
    pub guard: &'a LoopGuard,
    pub notify: NotifyMode,
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
    pub const ALL: [Disposition; 7] = [
        Disposition::Application,
        Disposition::Closure,
        Disposition::Auto,
        Disposition::SubjectHelp,
        Disposition::Question,
        Disposition::OwnCopy,
        Disposition::Reply,
    ];

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

impl std::str::FromStr for Disposition {
    type Err = crate::attach::UnknownName;
    fn from_str(s: &str) -> Result<Disposition, Self::Err> {
        crate::attach::by_name(&Disposition::ALL, Disposition::as_str, s)
    }
}

/// The Chinese label of a stored disposition or status (`application` → 申报).
pub fn disposition_label(s: &str) -> &'static str {
    match s.parse::<Disposition>() {
        Ok(d) => d.label(),
        Err(_) => match s {
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
pub fn answer_key(message: i64, raw_sha: &str, mode: NotifyMode) -> String {
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
pub struct Classified {
    pub disposition: Disposition,
    pub reason: String,
    pub subject: Option<ParsedSubject>,
    pub matched: Option<BranchMatch>,
    /// The roster branch the mail concerns, when known.
    pub branch: Option<String>,
    /// It carries something that could be a version ([`conversation::carries_materials`]).
    pub materials: bool,
    /// Registered but not to be answered (strong evidence that no person is there).
    pub no_answer: Option<String>,
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
pub struct ClassifyInput<'a> {
    /// The subject without our own wording ([`conversation::strip_our_wording`]).
    pub subject: &'a str,
    /// It answers one of our mails (by its headers or our wording in its subject).
    pub answers_us: bool,
    pub thread: Option<&'a Thread>,
    /// Staff's `assign`.
    pub assigned: Option<&'a str>,
}

/// A mail of ours that a message answers.
#[derive(Debug, Clone)]
pub struct Thread {
    /// Its Message-ID, without <>.
    pub our_id: String,
    /// The branch it was about, when known.
    pub branch: Option<String>,
    /// It was about closure (a closure acknowledgement, a result mail).
    pub closure: bool,
}

/// A mail of ours, as the outbox remembers it (see [`thread`]).
#[derive(Debug, Clone)]
pub struct Ours {
    /// `ack`, `reminder`, `result` …
    pub kind: String,
    /// The branch it was about.
    pub branch: Option<String>,
    /// `application` or `closure` when it answered a submission.
    pub submission_kind: Option<String>,
    pub subject: String,
}

/// The mail of ours that a message answers: `found` is the newest of its In-Reply-To and
/// References (`candidates`) that the outbox knows; otherwise a Message-ID of our domain that
/// is no longer in the outbox still marks a reply, without a branch.
pub fn thread(
    ctx: &Context<'_>,
    candidates: Vec<String>,
    found: Option<(String, Ours)>,
) -> Option<Thread> {
    if let Some((our_id, ours)) = found {
        // About closure: a closure acknowledgement, a result mail, a closure reminder (before
        // the kind existed, closure reminders were `reminder`s with 结项 in the subject).
        let kind = ours.kind.parse::<OutboxKind>().ok();
        let closure = ours.submission_kind.as_deref() == Some("closure")
            || matches!(kind, Some(OutboxKind::Result | OutboxKind::ClosureReminder))
            || (kind == Some(OutboxKind::Reminder) && ours.subject.contains("结项"));
        return Some(Thread {
            our_id,
            branch: ours.branch,
            closure,
        });
    }
    let own = format!("@{}", ctx.cfg.ack.message_id_domain.to_ascii_lowercase());
    candidates
        .into_iter()
        .find(|c| c.to_ascii_lowercase().ends_with(&own))
        .map(|our_id| Thread {
            our_id,
            branch: None,
            closure: false,
        })
}

/// The message being decided, understood and read.
pub struct Message<'a> {
    pub id: i64,
    pub raw_sha256: &'a str,
    /// When it arrived (INTERNALDATE, or when it was stored).
    pub received: DateTime<Utc>,
    /// The campaign it belongs to (see [`crate::pipeline::Pipeline`]'s `campaign_of`): its
    /// version and its answer carry it.
    pub campaign: &'a str,
    pub understood: &'a Understood,
    pub extracted: &'a Extracted,
}

/// The configuration of the campaign `m` belongs to (its deadlines, organizer and contact),
/// else the current one.
fn campaign_of<'c>(ctx: &Context<'c>, m: &Message<'_>) -> &'c crate::config::CampaignConfig {
    ctx.cfg
        .campaign_by_id(m.campaign)
        .unwrap_or(&ctx.cfg.campaign)
}

/// The address an answer goes to: Reply-To, else From, lowercased; `None` without one.
pub fn reply_to(u: &Understood) -> Option<String> {
    u.reply_to
        .as_ref()
        .or(u.from.as_ref())
        .map(|a| a.addr.to_lowercase())
        .filter(|a| a.contains('@'))
}

/// Which facts of the branch's history [`decide`] needs for a classified message.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// An application or a closure: its versions, senders and answers.
    pub register: Option<RegisterKeys>,
    /// How many notes of this kind (`subject_help`, `no_materials`) the address got lately.
    pub recent: Option<(String, &'static str)>,
}

/// The keys a registration's history is read by.
#[derive(Debug, Clone)]
pub struct RegisterKeys {
    /// `application` or `closure`.
    pub kind: &'static str,
    pub closure: bool,
    /// The roster branch, when known.
    pub branch: Option<String>,
    /// The branch, or `?` and what the subject said.
    pub branch_key: String,
    pub content_key: String,
    /// It carries materials (else it may be nothing new).
    pub materials: bool,
    /// Where an answer would go.
    pub to: Option<String>,
}

/// What the database knew before this message, read in its transaction.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The branch's latest version of this kind (read for mail without materials).
    pub latest_version: Option<i64>,
    /// The number this version gets.
    pub next_version: i64,
    /// The addresses that sent the branch's earlier versions.
    pub earlier_senders: Vec<String>,
    /// Acknowledgements sent in the window for identical content to the same address.
    pub identical_acks: i64,
    /// Notes of [`Needs::recent`]'s kind sent to the address in the window.
    pub recent_answers: i64,
    /// The branch's current review: level, funded.
    pub review: Option<(String, bool)>,
    /// The roles of the files its earlier closure versions brought.
    pub closure_roles: Vec<Role>,
}

/// What to write for a message, and what to answer.
#[derive(Debug, Clone)]
pub struct Decision {
    pub outcome: Outcome,
    /// The new version, when one is registered.
    pub version: Option<Version>,
    /// Staff's templates that failed (the built-in ones were used).
    pub template_errors: Vec<TemplateError>,
    /// The answer to queue.
    pub answer: Option<Answer>,
    /// A note not sent because the address already got enough of them (for the log).
    pub limited: Option<Limited>,
    pub needs_staff: bool,
    /// Why nothing is answered.
    pub no_answer: Option<String>,
    /// The Message-ID of our mail it answers.
    pub thread_of: Option<String>,
}

/// A version to register.
#[derive(Debug, Clone)]
pub struct Version {
    /// `application` or `closure`.
    pub kind: &'static str,
    pub branch_key: String,
    pub matched: BranchMatch,
    /// The branch as the subject wrote it.
    pub branch_text: Option<String>,
    pub number: i64,
    pub sender: String,
    pub late: bool,
    pub findings: Vec<rules::Finding>,
    pub sender_changed: bool,
    /// The subject's branch is unknown, but the form names this roster branch.
    pub suggested: Option<String>,
    pub content_key: String,
}

/// A template of staff's that failed to render.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub template: &'static str,
    pub error: String,
}

/// A mail to queue, with the branch it is about.
#[derive(Debug, Clone)]
pub struct Answer {
    pub mail: Outgoing,
    pub branch: Option<String>,
}

/// A note held back by `ack.max_per_sender`.
#[derive(Debug, Clone)]
pub struct Limited {
    pub to: String,
    pub recent: i64,
    pub kind: OutboxKind,
}

/// The window of `ack.max_per_sender` and `ack.max_identical`.
pub fn window(cfg: &Config) -> chrono::Duration {
    chrono::Duration::from_std(cfg.ack.window).unwrap_or_else(|_| chrono::Duration::hours(24))
}

/// Which facts [`decide`] needs for `c`.
pub fn needs(c: &Classified, m: &Message<'_>) -> Needs {
    let to = reply_to(m.understood);
    match c.disposition {
        Disposition::Application | Disposition::Closure => {
            let closure = c.disposition == Disposition::Closure;
            let matched = c.matched.clone().unwrap_or_else(unknown_match);
            let branch = matched.branch.as_ref().map(|b| b.name.clone());
            let recent = match (&to, &branch) {
                (Some(to), Some(_)) if !c.materials => Some((to.clone(), "no_materials")),
                _ => None,
            };
            Needs {
                register: Some(RegisterKeys {
                    kind: c.disposition.as_str(),
                    closure,
                    branch_key: branch_key(&matched, c.subject.as_ref()),
                    branch,
                    content_key: conversation::content_key(closure, &m.understood.attachments),
                    materials: c.materials,
                    to,
                }),
                recent,
            }
        }
        Disposition::SubjectHelp => Needs {
            register: None,
            recent: to.map(|to| (to, "subject_help")),
        },
        _ => Needs::default(),
    }
}

/// The key a branch's versions are numbered by: the roster name, or `?` and what the subject
/// said, normalised.
fn branch_key(matched: &BranchMatch, subject: Option<&ParsedSubject>) -> String {
    match &matched.branch {
        Some(b) => b.name.clone(),
        None => format!(
            "?{}",
            crate::textnorm::normalize(subject.and_then(|s| s.branch.as_deref()).unwrap_or(""))
        ),
    }
}

/// What to record for message `m`, classified as `c`, given what the database knew (`h`).
pub fn decide(
    ctx: &Context<'_>,
    m: &Message<'_>,
    c: &Classified,
    thread: Option<&Thread>,
    h: &History,
    now: DateTime<Utc>,
) -> Result<Decision, ComposeError> {
    let camp = campaign_of(ctx, m);
    let u = m.understood;
    let reply_to = reply_to(u);
    let mut d = Decision {
        outcome: Outcome {
            message: m.id,
            disposition: c.disposition,
            reason: c.reason.clone(),
            branch: c.branch.clone(),
            version: None,
            problems: Vec::new(),
            queued: None,
        },
        version: None,
        template_errors: Vec::new(),
        answer: None,
        limited: None,
        needs_staff: false,
        no_answer: None,
        thread_of: thread.map(|t| t.our_id.clone()),
    };
    match c.disposition {
        Disposition::Application | Disposition::Closure => {
            register(ctx, m, c, h, reply_to.as_deref(), now, &mut d)?;
        }
        Disposition::SubjectHelp => {
            if let Some(why) = ctx.notify.quiet_reason() {
                d.needs_staff = true;
                d.no_answer = Some(why.into());
            } else if let Some(to) = &reply_to {
                let suggestion = ctx.roster.by_email(to).map(|b| b.name.clone());
                let view = HelpView {
                    greeting: greeting(u.from.as_ref().and_then(|a| a.name.as_deref()), None),
                    organizer: camp.organizer.clone(),
                    campaign_name: camp.name.clone(),
                    subject: u.subject.clone(),
                    received_at: beijing(m.received),
                    exact_subject: ctx.grammar.application_subject_for("支部名称"),
                    suggestion_subject: suggestion
                        .as_deref()
                        .map(|s| ctx.grammar.application_subject_for(s)),
                    suggestion,
                    deadline: beijing(camp.deadline),
                    staff_contact: camp.staff_contact.clone(),
                };
                let text = render(ctx, &mut d, "subject_help.txt.j2", &view)?;
                let subject_line = format!("Re: {}（主题格式有误，未登记）", u.subject);
                // One help mail per sender per window: a second wrong subject is for staff.
                if h.recent_answers == 0 {
                    let mail = compose_answer(
                        ctx,
                        u,
                        to,
                        OutboxKind::SubjectHelp,
                        &answer_key(m.id, m.raw_sha256, ctx.notify),
                        &subject_line,
                        &text,
                        now,
                        None,
                    )?;
                    match queue_limited(ctx, &mut d, mail, None, h.recent_answers) {
                        Ok(queued) => d.outcome.queued = Some(queued),
                        Err(why) => {
                            d.needs_staff = true;
                            d.no_answer = Some(why);
                        }
                    }
                } else {
                    d.needs_staff = true;
                    d.no_answer =
                        Some("已就主题格式答复过该发件人，本次不再答复，留待人工处理".into());
                }
            }
        }
        Disposition::Question | Disposition::Reply => d.needs_staff = true,
        Disposition::Auto | Disposition::OwnCopy => {}
    }
    if reply_to.is_none()
        && matches!(
            d.outcome.disposition,
            Disposition::Application | Disposition::Closure | Disposition::SubjectHelp
        )
    {
        d.no_answer = Some("没有可回复的发件地址，未回复".into());
    }
    if let Some(why) = &d.no_answer {
        d.outcome.reason.push('；');
        d.outcome.reason.push_str(why);
    }
    if !u.auto_hints.is_empty() {
        let hints: Vec<&str> = u.auto_hints.iter().map(|h| h.detail.as_str()).collect();
        d.outcome.reason.push_str(&format!(
            "；另有不足以认定为自动邮件的信号：{}",
            hints.join("，")
        ));
    }
    Ok(d)
}

/// An application or closure: the branch's next version and its acknowledgement; or, when
/// the mail carries no materials and the branch already has a version, nothing new (a mail
/// without materials never replaces one).
#[allow(clippy::too_many_arguments)]
fn register(
    ctx: &Context<'_>,
    m: &Message<'_>,
    c: &Classified,
    h: &History,
    reply_to: Option<&str>,
    now: DateTime<Utc>,
    d: &mut Decision,
) -> Result<(), ComposeError> {
    let camp = campaign_of(ctx, m);
    let (u, extracted) = (m.understood, m.extracted);
    let closure_kind = c.disposition == Disposition::Closure;
    let kind = c.disposition.as_str();
    let subject = c.subject.as_ref();
    let matched = c.matched.clone().unwrap_or_else(unknown_match);
    if !c.materials
        && let Some(b) = &matched.branch
        && let Some(version) = h.latest_version
    {
        let branch = b.name.clone();
        d.outcome.disposition = Disposition::Reply;
        d.outcome.reason = format!(
            "{}的来信没有附带{}材料，第 {version} 版仍然有效：不登记为新版本，留待工作人员查看",
            b.name,
            if closure_kind { "结项" } else { "申报" }
        );
        d.needs_staff = true;
        // Most likely a forgotten attachment: say so once, and that the registered version
        // still counts.
        if let Some(to) = reply_to
            && ctx.notify.quiet_reason().is_none()
        {
            let view = NoMaterialsView {
                greeting: greeting(u.from.as_ref().and_then(|a| a.name.as_deref()), None),
                organizer: camp.organizer.clone(),
                subject: u.subject.clone(),
                received_at: beijing(m.received),
                kind_label: c.disposition.label(),
                branch: branch.clone(),
                version,
                exact_subject: if closure_kind {
                    ctx.grammar.closure_subject_for(&branch)
                } else {
                    ctx.grammar.application_subject_for(&branch)
                },
                staff_contact: camp.staff_contact.clone(),
            };
            let text = render(ctx, d, "no_materials.txt.j2", &view)?;
            let mail = compose_answer(
                ctx,
                u,
                to,
                OutboxKind::NoMaterials,
                &answer_key(m.id, m.raw_sha256, ctx.notify),
                &format!("Re: {}（未附材料，未登记新版本）", u.subject),
                &text,
                now,
                None,
            )?;
            match queue_limited(ctx, d, mail, Some(&branch), h.recent_answers) {
                Ok(queued) => d.outcome.queued = Some(queued),
                Err(why) => d.no_answer = Some(why),
            }
        }
        if let Some(why) = ctx.notify.quiet_reason() {
            d.no_answer = Some(why.into());
        }
        d.outcome.branch = Some(branch);
        return Ok(());
    }
    let deadline = if closure_kind {
        camp.closure_deadline
    } else {
        Some(camp.deadline)
    };
    let grace = chrono::Duration::from_std(camp.grace).unwrap_or_default();
    let late = deadline.is_some_and(|dl| m.received > dl + grace);
    let facts = Facts {
        attachments: &u.attachments,
        has_cloud_links: !u.cloud_links.is_empty(),
        branch_known: matched.branch.is_some(),
        subject_nonstandard: subject.is_some_and(|s| !s.deviations.is_empty())
            || matched.kind == MatchKind::Fuzzy,
        late,
        extracted,
        policy: ctx.policy,
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
        if matched.branch.is_some() {
            closure = closure_check(ctx.cfg.levels_of(camp), h, &u.attachments);
            match &closure {
                None => findings.push(rules::Finding {
                    code: Problem::ClosureNotFunded,
                    detail: None,
                }),
                Some(cl) => {
                    let missing: Vec<&str> = cl
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
        let named = branches_named(ctx, extracted);
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
                        detail: Some(format!("主题中的支部是“{}”，{}", b.name, others.join("，"))),
                    });
                }
            }
            None => suggested = named.into_iter().next().map(|(_, n)| n),
        }
    }
    findings.sort_by_key(|f| f.code);
    let problems: Vec<Problem> = findings.iter().map(|f| f.code).collect();
    let chosen = extracted.chosen();
    let sender = reply_to.unwrap_or_default().to_string();
    let trust = matched.branch.as_ref().map(|b| {
        conversation::sender_trust(&sender, ctx.roster.emails(&b.name), &h.earlier_senders)
    });
    let sender_changed = trust.as_ref().is_some_and(conversation::Trust::changed);
    let content_key = conversation::content_key(closure_kind, &u.attachments);
    let version = h.next_version;

    // Whether to answer: never a machine (strong evidence only), never without an address,
    // and identical content only a bounded number of times (a loop re-sending one mail).
    let mut no_answer = c.no_answer.clone();
    let mut queued = None;
    if no_answer.is_none()
        && let Some(why) = ctx.notify.quiet_reason()
    {
        no_answer = Some(why.into());
    }
    if no_answer.is_none()
        && let Some(to) = reply_to
    {
        let repeats = h.identical_acks;
        if repeats >= i64::from(ctx.cfg.ack.max_identical) {
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
            let view = AckView::new(
                &AckContext {
                    campaign: camp,
                    grammar: ctx.grammar,
                },
                u,
                &matched,
                version,
                m.received,
                &findings,
                chosen,
                closure_kind,
            );
            let view = AckView {
                closure,
                sender_note,
                suggestion: suggested.clone(),
                ..view
            };
            let text = render(ctx, d, "ack.txt.j2", &view)?;
            let subject_line = ack_subject(&u.subject, version, problems.len());
            let secretary = matched
                .branch
                .as_ref()
                .map(|b| b.secretary.clone())
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "支部书记".to_string());
            let mail = compose_answer(
                ctx,
                u,
                to,
                OutboxKind::Ack,
                &answer_key(m.id, m.raw_sha256, ctx.notify),
                &subject_line,
                &text,
                now,
                copy_to.as_deref().map(|c| (secretary.as_str(), c)),
            )?;
            queued = Some(mail.message_id.clone());
            d.answer = Some(Answer {
                mail,
                branch: matched.branch.as_ref().map(|b| b.name.clone()),
            });
        }
    }
    d.outcome.branch = matched.branch.as_ref().map(|b| b.name.clone());
    d.outcome.version = Some(version);
    d.outcome.problems = problems;
    d.outcome.queued = queued;
    d.no_answer = no_answer;
    d.needs_staff = matched.branch.is_none();
    d.version = Some(Version {
        kind,
        branch_key: branch_key(&matched, subject),
        branch_text: subject.and_then(|s| s.branch.clone()),
        matched,
        number: version,
        sender,
        late,
        findings,
        sender_changed,
        suggested,
        content_key,
    });
    Ok(())
}

/// Renders `name`; when staff's version of it fails, the built-in one is used and the error
/// is kept for the record (status, the digest and `health` show it): a broken template never
/// stops a registration.
fn render(
    ctx: &Context<'_>,
    d: &mut Decision,
    name: &'static str,
    view: impl Serialize,
) -> Result<String, ComposeError> {
    let (text, error) = ctx.templates.render_or_builtin(name, view)?;
    if let Some(error) = error {
        d.template_errors.push(TemplateError {
            template: name,
            error,
        });
    }
    Ok(text)
}

/// Queues a note that is not the acknowledgement of new materials (the subject-format help,
/// the no-materials note) unless the recipient already got `ack.max_per_sender` mails of its
/// kind in the window (`recent`): a loop with a responder we failed to recognise ends here.
/// `Err` says why not.
fn queue_limited(
    ctx: &Context<'_>,
    d: &mut Decision,
    mail: Outgoing,
    branch: Option<&str>,
    recent: i64,
) -> Result<String, String> {
    if recent >= i64::from(ctx.cfg.ack.max_per_sender) {
        let why = format!(
            "{} 在时间窗口内已收到 {recent} 封同类自动提示，本次不再回复",
            mail.to
        );
        d.limited = Some(Limited {
            to: mail.to,
            recent,
            kind: mail.kind,
        });
        return Err(why);
    }
    let id = mail.message_id.clone();
    d.answer = Some(Answer {
        mail,
        branch: branch.map(str::to_string),
    });
    Ok(id)
}

#[allow(clippy::too_many_arguments)]
fn compose_answer(
    ctx: &Context<'_>,
    u: &Understood,
    to: &str,
    kind: OutboxKind,
    key: &str,
    subject: &str,
    text: &str,
    now: DateTime<Utc>,
    cc: Option<(&str, &str)>,
) -> Result<Outgoing, ComposeError> {
    let spec = MailSpec {
        kind,
        from_name: &ctx.cfg.smtp.from_name,
        from_addr: &ctx.cfg.smtp.from_address,
        to_name: u.from.as_ref().and_then(|a| a.name.as_deref()),
        to_addr: to,
        subject,
        text,
        message_id: compose::message_id(kind.as_str(), key, &ctx.cfg.ack.message_id_domain),
        in_reply_to: u.message_id.as_deref(),
        references: &u.references,
        loop_value: &ctx.cfg.campaign.intake_address,
        date: now,
        auto_submitted: "auto-replied",
    };
    compose::build_cc(&spec, cc)
}

/// The closure checklist of a branch's funded project, counting what this mail and every
/// earlier closure mail brought; `None` when no funded project is on record.
fn closure_check(
    levels: &[crate::config::LevelConfig],
    h: &History,
    attachments: &[Attachment],
) -> Option<ClosureView> {
    let Some((level, true)) = h.review.clone() else {
        return None;
    };
    let cfg = levels.iter().find(|l| l.name == level);
    let required = cfg.map(|l| l.closure_materials.clone()).unwrap_or_default();
    let mut roles = h.closure_roles.clone();
    roles.extend(rules::all_files(attachments).map(|a| a.role));
    let checklist: Vec<ChecklistItem> = crate::campaign::closure::checklist(&required, &roles)
        .into_iter()
        .map(|(material, present)| ChecklistItem { material, present })
        .collect();
    Some(ClosureView {
        complete: checklist.iter().all(|i| i.present),
        checklist,
        publish: cfg.is_some_and(|l| l.publish),
        level,
    })
}

/// The roster branches the form and the summary name exactly (`(“申请表”, name)`), each once.
fn branches_named(ctx: &Context<'_>, extracted: &Extracted) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (what, fields) in [("申请表", &extracted.form), ("汇总表", &extracted.summary)] {
        let Some(text) = fields.as_ref().and_then(|f| f.branch.as_deref()) else {
            continue;
        };
        // Exactly a roster name (after normalising width and spaces): no fuzzy guess
        // accuses a branch of sending another's form, and no edit-distance search runs
        // for every mail.
        if let Some(b) = ctx.roster.get(text)
            && !out.iter().any(|(_, n)| n == &b.name)
        {
            out.push((what, b.name.clone()));
        }
    }
    out
}

/// The copy of a mail we sent: from our address, with our Message-ID domain.
pub fn is_own_copy(ctx: &Context<'_>, u: &Understood) -> bool {
    crate::message::is_own_copy(u, ctx.guard)
}

/// What `u` is, from what it says and what the database knows about it ([`ClassifyInput`]).
pub fn classify(ctx: &Context<'_>, u: &Understood, input: &ClassifyInput<'_>) -> Classified {
    if is_own_copy(ctx, u) {
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
    let parsed = ctx.grammar.parse(input.subject);
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
            .map(|b| ctx.roster.match_branch(b))
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
        let matched = match ctx.roster.get(name) {
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
            && let Some(b) = thread_branch.as_deref().and_then(|n| ctx.roster.get(n))
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

fn unknown_match() -> BranchMatch {
    BranchMatch {
        kind: MatchKind::Unknown,
        branch: None,
        score: 0.0,
        reason: "主题中没有支部名称".to_string(),
        candidates: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
