//! The scheduler's I/O shell: reminders before deadlines and digests for reviewers.
//!
//! [`crate::schedule`] says *when* something is due (pure); this module says *to whom* (the
//! audiences are computed at send time from the roster and the database, like HotCRP's
//! recipient classes), renders the mails and queues them. Every queued mail is recorded in the
//! `ledger` in the same transaction that puts it in the outbox: a restart, a second daemon or a
//! clock jump finds the key and sends nothing twice. Moving a deadline changes the keys of
//! reminders not yet sent, so they move with it.
//!
//! # Per branch, never per address
//!
//! A reminder is about one branch: its own deadline status, its own problems, its own exact
//! subject line, threaded to its own last mail. A college's 组织员 or a secretary often stands
//! for several branches with one address, so the ledger key names the **branch**
//! ([`crate::schedule::Occasion::key_for_branch`]) and two branches sharing an address each get
//! their own reminder. We send two mails rather than one naming both because that is what the
//! office would do by hand: each mail can be forwarded as it is to the branch it concerns, its
//! problems and subject line belong to one branch only, and a reply to it (with corrected files)
//! stays in that branch's conversation. The subject names the branch, so two reminders in one
//! inbox are told apart at a glance.
//!
//! Ledger rows written before this change are keyed by address (`…:<address>`, no branch
//! recorded). An old row means "this address was reminded on this occasion", and we cannot tell
//! for which of the branches at that address; [`decide`] therefore treats it as covering every
//! branch at that address for that occasion. After an upgrade no reminder is sent twice; at
//! worst a branch sharing an address misses the one occasion that was already under way, as it
//! did before, and gets the next one.
//!
//! A roster branch with no address, or an unusable one, cannot be reminded: the planner does not
//! skip it silently but records the skip (a ledger row with the reason, under a key of its own so
//! a fixed roster still lets the reminder go out), `remind --dry-run` lists it, and `status` and
//! `check-config` name the roster row.

use crate::app::App;
use crate::campaign::rules::Problem;
use crate::clock::beijing;
use crate::export::ExportSubmission;
use crate::notify::compose::{self, MailSpec, Outgoing, RichParts};
use crate::notify::{self, DigestView, ReminderView};
use crate::schedule::{self, Audience, DeadlineKind, DigestRule, Occasion};
use crate::store::db_time;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// One mail the scheduler would send (or, for an empty digest, the record that it did not).
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: &'static str,
    pub key: String,
    pub rule: String,
    pub to: String,
    pub branch: Option<String>,
    pub subject: String,
    pub text: String,
    pub period_end: Option<DateTime<Utc>>,
    /// Reminders: the occasion (deadline and offset), so a moved deadline does not repeat an
    /// offset already sent for the old one.
    pub occasion: Option<(DateTime<Utc>, i64)>,
    /// `None`: nothing to send (an empty digest); the ledger still records the period.
    pub mail: Option<Outgoing>,
    pub skipped: Option<String>,
    /// Templates that failed and were replaced by the built-in ones: (template, error);
    /// recorded for staff (`status`, `health`, the digest) when the mail is queued.
    pub template_errors: Vec<(String, String)>,
    /// The campaign it is for: its ledger row and its mail carry it.
    pub campaign: String,
}

/// Problems a reminder can ask a branch to fix (being late or a subject's wording cannot be
/// fixed by sending again).
fn fixable(code: &str) -> bool {
    !matches!(code, "late" | "subject_nonstandard")
}

fn deadline_of(p: &App) -> impl Fn(DeadlineKind) -> Option<DateTime<Utc>> + '_ {
    move |k| match k {
        DeadlineKind::Application => Some(p.cfg.campaign.deadline),
        DeadlineKind::Closure => p.cfg.campaign.closure_deadline,
    }
}

/// Time left, for people: "3 天" (calendar days, as people count to a date: on 9月20日 a
/// 9月27日 deadline is 7 days away, whatever the hour), then "6 小时", "40 分钟" on the last day.
fn time_left(from: DateTime<Utc>, to: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let days =
        (to.with_timezone(&tz).date_naive() - from.with_timezone(&tz).date_naive()).num_days();
    let d = to - from;
    if days >= 1 {
        format!("{days} 天")
    } else if d.num_hours() >= 1 {
        format!("{} 小时", d.num_hours())
    } else {
        format!("{} 分钟", d.num_minutes().max(1))
    }
}

/// A stable Message-ID part for a ledger key (which may hold Chinese rule names).
fn key_id(key: &str) -> String {
    crate::store::blobs::sha256_hex(key.as_bytes())
        .get(..20)
        .unwrap_or_default()
        .to_string()
}

/// A reminder row of the ledger, as [`decide`] needs it.
pub use crate::store::ledger::LedgerRow;

/// What the planner does for one branch of an occasion's audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the reminder to this address.
    Send { to: String },
    /// Already sent (or, after a moved deadline, the same offset was sent for the old date).
    AlreadySent,
    /// No usable address: record the skip with this reason.
    RecordSkip { reason: String },
    /// The skip is recorded already.
    SkipRecorded,
}

/// Decides, from the ledger rows of the occasion's rule, what to do for `branch` (roster name)
/// at `address` (lowercased; empty when it has none) — pure, see the module docs.
///
/// * A row with the branch's own key, or — after a moved deadline — a sent row of the same rule
///   and offset for a deadline still ahead, means it was reminded: nothing to do.
/// * An old address-keyed row (no branch) for the branch's address counts the same way.
/// * Otherwise a branch without a usable address gets its skip recorded once per occasion.
pub fn decide(
    occ: &Occasion,
    branch: &str,
    address: &str,
    unreachable: Option<&crate::campaign::roster::UnreachableRow>,
    rows: &[LedgerRow],
    now: DateTime<Utc>,
) -> Decision {
    let own_key = occ.key_for_branch(branch);
    let address = address.trim().to_lowercase();
    let legacy_key = (!address.is_empty()).then(|| occ.key_for(&address));
    let sent = rows.iter().filter(|r| !r.skipped).any(|r| {
        let this_branch = match &r.branch {
            Some(b) => b == branch,
            None => !address.is_empty() && r.recipient.eq_ignore_ascii_case(&address),
        };
        r.key == own_key
            || Some(&r.key) == legacy_key.as_ref()
            || (this_branch
                && r.offset_secs == Some(occ.offset.num_seconds())
                && r.deadline.is_some_and(|d| d > now))
    });
    if sent {
        return Decision::AlreadySent;
    }
    let reason = match (unreachable, address.is_empty()) {
        (Some(row), _) => Some(format!(
            "支部名册第 {} 行{}，提醒未发送",
            row.line,
            row.why.label()
        )),
        (None, true) => Some("名册中没有书记邮箱，提醒未发送".to_string()),
        (None, false) => None,
    };
    let skip_key = occ.skip_key_for_branch(branch);
    match reason {
        None => Decision::Send { to: address },
        Some(_) if rows.iter().any(|r| r.key == skip_key) => Decision::SkipRecorded,
        Some(reason) => Decision::RecordSkip { reason },
    }
}

/// Whom an audience means right now: (branch, latest application if any).
async fn audience(
    p: &App,
    audiences: &[Audience],
    latest: &[ExportSubmission],
    funded: &[crate::campaign::closure::ClosureState],
) -> Vec<(crate::campaign::roster::Branch, Option<ExportSubmission>)> {
    let mut out = Vec::new();
    for b in p.roster.branches() {
        let sub = latest
            .iter()
            .find(|s| s.kind == "application" && s.branch.as_deref() == Some(b.name.as_str()));
        let wanted = audiences.iter().any(|a| match (a, sub) {
            (Audience::NotSubmitted, None) => true,
            (Audience::HasProblems, Some(s)) => s.problems.iter().any(|c| fixable(c)),
            (Audience::FundedMissingClosure, _) => funded
                .iter()
                .any(|c| c.branch == b.name && !c.missing.is_empty()),
            _ => false,
        });
        if wanted {
            out.push((b.clone(), sub.cloned()));
        }
    }
    out
}

/// Reminders due at `now` that the ledger does not have yet, one per branch of each audience;
/// branches without a usable address appear as skips (no mail, a reason) the first time.
pub async fn plan_reminders(p: &App, now: DateTime<Utc>) -> anyhow::Result<Vec<Planned>> {
    let tz = p.cfg.campaign.timezone;
    let due = schedule::due_occasions(&p.cfg.reminders, deadline_of(p), tz, now);
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let latest = crate::export::latest(&p.store).await?;
    let funded = crate::export::funded_projects(&p.store, &p.cfg.levels).await?;
    let mut out = Vec::new();
    for occ in due {
        let Some(rule) = p.cfg.reminders.iter().find(|r| r.name == occ.rule) else {
            continue;
        };
        let rows = p.store.reminder_rows(&rule.name).await?;
        for (branch, sub) in audience(p, &rule.audiences, &latest, &funded).await {
            let why = p.roster.unreachable_row(&branch.name);
            match decide(&occ, &branch.name, &branch.email, why, &rows, now) {
                Decision::AlreadySent | Decision::SkipRecorded => {}
                Decision::RecordSkip { reason } => {
                    tracing::warn!(branch = %branch.name, rule = %rule.name, %reason, "跳过了一封提醒");
                    out.push(Planned {
                        campaign: p.cfg.campaign.id.clone(),
                        kind: "reminder",
                        key: occ.skip_key_for_branch(&branch.name),
                        rule: rule.name.clone(),
                        to: String::new(),
                        branch: Some(branch.name.clone()),
                        subject: String::new(),
                        text: String::new(),
                        period_end: None,
                        occasion: Some((occ.deadline, occ.offset.num_seconds())),
                        mail: None,
                        skipped: Some(reason),
                        template_errors: Vec::new(),
                    });
                }
                Decision::Send { .. } => {
                    let missing = funded
                        .iter()
                        .find(|c| c.branch == branch.name)
                        .map(|c| c.missing.clone())
                        .unwrap_or_default();
                    let key = occ.key_for_branch(&branch.name);
                    out.push(reminder(
                        p,
                        rule,
                        &occ,
                        &branch,
                        sub.as_ref(),
                        &missing,
                        key,
                        now,
                    )?);
                }
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn reminder(
    p: &App,
    rule: &schedule::ReminderRule,
    occ: &Occasion,
    branch: &crate::campaign::roster::Branch,
    sub: Option<&ExportSubmission>,
    closure_missing: &[String],
    key: String,
    now: DateTime<Utc>,
) -> anyhow::Result<Planned> {
    let closure = rule.deadline == DeadlineKind::Closure;
    let exact_subject = match rule.deadline {
        DeadlineKind::Application => p.grammar.application_subject_for(&branch.name),
        DeadlineKind::Closure => p.grammar.closure_subject_for(&branch.name),
    };
    let problems = sub
        .filter(|_| !closure)
        .map(|s| {
            s.problems
                .iter()
                .filter(|c| fixable(c))
                .filter_map(|c| Problem::from_code(c))
                .map(|pr| {
                    let detail = s
                        .problem_details
                        .iter()
                        .find(|d| d["code"] == pr.code())
                        .and_then(|d| d["detail"].as_str().map(str::to_string));
                    notify::ProblemLine::from_code(pr.code(), detail)
                })
                .collect()
        })
        .unwrap_or_default();
    let view = ReminderView {
        greeting: if branch.secretary.is_empty() {
            branch.name.clone()
        } else {
            format!("{}同学", branch.secretary)
        },
        organizer: p.cfg.campaign.organizer.clone(),
        campaign_name: p.cfg.campaign.name.clone(),
        branch: branch.name.clone(),
        college: branch.college.clone(),
        deadline: beijing(occ.deadline),
        time_left: time_left(now, occ.deadline, p.cfg.campaign.timezone),
        exact_subject,
        expected_attachments: if closure {
            closure_missing.to_vec()
        } else {
            notify::default_expected_attachments()
        },
        problems,
        last_version: sub.map(|s| s.version),
        last_received_at: sub.map(|s| s.received_at.replace('T', " ").chars().take(19).collect()),
        staff_contact: p.cfg.campaign.staff_contact.clone(),
    };
    // A closure rule left on the default template gets the closure wording.
    let template = if closure && rule.template == "reminder.txt.j2" {
        "closure_reminder.txt.j2"
    } else {
        rule.template.as_str()
    };
    let fallback = if closure {
        "closure_reminder.txt.j2"
    } else {
        notify::REMINDER_TEMPLATE
    };
    let (text, template_error) = notify::render_reminder(&p.templates, template, fallback, &view)?;
    let subject = if closure {
        format!(
            "【提醒】结项材料将于{}截止（还有 {}），{}还缺 {} 项",
            beijing(occ.deadline).split(' ').next().unwrap_or_default(),
            view.time_left,
            branch.name,
            closure_missing.len()
        )
    } else {
        notify::reminder_subject(&view)
    };
    // Threaded to the branch's last exchange, where there is one.
    let refs: Vec<String> = sub.and_then(|s| s.message_id.clone()).into_iter().collect();
    let mail = compose::build(&MailSpec {
        kind: if closure {
            compose::OutboxKind::ClosureReminder
        } else {
            compose::OutboxKind::Reminder
        },
        from_name: &p.cfg.smtp.from_name,
        from_addr: &p.cfg.smtp.from_address,
        to_name: Some(&branch.secretary),
        to_addr: &branch.email,
        subject: &subject,
        text: &text,
        message_id: compose::message_id("remind", &key_id(&key), &p.cfg.ack.message_id_domain),
        in_reply_to: refs.first().map(String::as_str),
        references: &refs,
        loop_value: &p.cfg.campaign.intake_address,
        date: now,
        auto_submitted: "auto-generated",
    })?;
    Ok(Planned {
        campaign: p.cfg.campaign.id.clone(),
        kind: "reminder",
        key,
        rule: rule.name.clone(),
        to: branch.email.clone(),
        branch: Some(branch.name.clone()),
        subject,
        text,
        period_end: None,
        occasion: Some((occ.deadline, occ.offset.num_seconds())),
        mail: Some(mail),
        skipped: None,
        template_errors: template_error
            .map(|e| (template.to_string(), e))
            .into_iter()
            .collect(),
    })
}

/// The digest of `rule` for (start, end], as the data the templates get; `all` is every
/// branch's latest submission (read once per scheduler step, shared with the .xlsx).
pub async fn digest_view(
    p: &App,
    rule: &DigestRule,
    all: &[ExportSubmission],
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
) -> anyhow::Result<DigestView> {
    let field = |s: &ExportSubmission, k: &str| {
        s.fields
            .as_ref()
            .and_then(|f| f.get(k))
            .and_then(|v| match v {
                serde_json::Value::String(t) => Some(t.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let in_sections = |s: &ExportSubmission| match &rule.sections {
        Some(list) if !list.is_empty() => list.contains(&field(s, "section")),
        _ => true,
    };
    let apps: Vec<&ExportSubmission> = all
        .iter()
        .filter(|s| s.kind == "application" && in_sections(s))
        .collect();
    let row = |s: &ExportSubmission| notify::DigestRow {
        branch: s
            .branch
            .clone()
            .or_else(|| s.branch_in_subject.clone())
            .unwrap_or_default(),
        college: s.college.clone().unwrap_or_default(),
        project_name: field(s, "project_name"),
        section: field(s, "section"),
        budget: field(s, "budget_yuan"),
        version: s.version,
        received_at: s.received_at.replace('T', " ").chars().take(19).collect(),
        late: s.late,
        problems: s
            .problems
            .iter()
            .filter_map(|c| Problem::from_code(c).map(|p| p.title_zh().to_string()))
            .collect(),
    };
    let received = |s: &ExportSubmission| {
        chrono::DateTime::parse_from_rfc3339(&s.received_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let new_since = apps
        .iter()
        .filter(|s| received(s).is_some_and(|t| t <= end && start.is_none_or(|st| t > st)))
        .map(|s| row(s))
        .collect();
    let known: Vec<&ExportSubmission> = apps
        .iter()
        .copied()
        .filter(|s| s.branch.is_some())
        .collect();
    let mut by_section: BTreeMap<String, i64> = BTreeMap::new();
    for s in &known {
        let sec = field(s, "section");
        *by_section
            .entry(if sec.is_empty() {
                "（未识别）".to_string()
            } else {
                sec
            })
            .or_default() += 1;
    }
    let mut colleges: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for b in p.roster.branches() {
        let e = colleges.entry(b.college.clone()).or_default();
        e.0 += 1;
        if let Some(s) = known
            .iter()
            .find(|s| s.branch.as_deref() == Some(b.name.as_str()))
        {
            e.1 += 1;
            if s.problems.is_empty() {
                e.2 += 1;
            }
        }
    }
    let missing: Vec<notify::MissingBranch> = p
        .roster
        .branches()
        .iter()
        .filter(|b| {
            !known
                .iter()
                .any(|s| s.branch.as_deref() == Some(b.name.as_str()))
        })
        .map(|b| notify::MissingBranch {
            college: b.college.clone(),
            branch: b.name.clone(),
            secretary: b.secretary.clone(),
        })
        .collect();
    let with_problems: Vec<notify::DigestRow> = apps
        .iter()
        .filter(|s| !s.problems.is_empty())
        .map(|s| row(s))
        .collect();
    let late: Vec<notify::DigestRow> = apps.iter().filter(|s| s.late).map(|s| row(s)).collect();
    let needs_staff = p
        .store
        .needs_staff(start, Some(end))
        .await?
        .into_iter()
        .map(|r| notify::StaffItem {
            id: r.id,
            from: r.from,
            subject: r.subject,
            reason: r.reason,
            received_at: beijing(r.received_at),
            branch: r.branch,
            suggested_branch: r.suggested_branch,
            thread_subject: r.thread_subject,
        })
        .collect();
    let unanswered = p
        .store
        .unanswered(start, Some(end))
        .await?
        .into_iter()
        .map(|r| notify::UnansweredItem {
            id: r.id,
            from: r.from,
            subject: r.subject,
            branch: r.branch,
            why: r.why,
            received_at: beijing(r.received_at),
        })
        .collect();
    let sender_changes = p
        .store
        .sender_changes(start, Some(end))
        .await?
        .into_iter()
        .map(|c| notify::SenderChangeItem {
            kind_label: if c.kind == "closure" {
                "结项"
            } else {
                "申报"
            }
            .to_string(),
            branch: c.branch,
            version: c.version,
            sender: c.sender,
            received_at: beijing(c.received_at),
        })
        .collect();
    let outbox_failures = p
        .store
        .outbox_failures()
        .await?
        .into_iter()
        .map(|f| notify::OutboxFailure {
            status: if f.dead {
                format!(
                    "已放弃；修好 SMTP 或收件地址后，运行 shenbao outbox retry {} 重发",
                    f.id
                )
            } else {
                "等待重试".to_string()
            },
            id: f.id,
            to: f.to_addr,
            subject: f.subject,
            error: f.last_error,
        })
        .collect();
    // Template failures in the period (since a week when this is the first digest), unless
    // the template was changed since.
    let template_errors = crate::daemon::health::still_current(
        p.store
            .template_errors_since(start.unwrap_or(end - crate::store::ops::TEMPLATE_ERRORS_WINDOW))
            .await?
            .into_iter()
            .filter(|e| e.at <= end)
            .collect(),
        p.cfg.ack.templates_dir.as_deref(),
    )
    .into_iter()
    .map(|e| notify::TemplateErrorItem {
        at: beijing(e.at),
        template: e.template,
        error: e.error,
    })
    .collect();
    let deadline = p.cfg.campaign.deadline;
    let phase = if end < deadline {
        format!(
            "申报阶段（距截止还有 {}）",
            time_left(end, deadline, p.cfg.campaign.timezone)
        )
    } else {
        crate::export::phase(&p.store, &p.cfg, end).await?
    };
    let local_day = end
        .with_timezone(&p.cfg.campaign.timezone)
        .format("%Y-%m-%d");
    Ok(DigestView {
        campaign_name: p.cfg.campaign.name.clone(),
        organizer: p.cfg.campaign.organizer.clone(),
        rule: rule.name.clone(),
        period_start: start.map(beijing),
        period_end: beijing(end),
        deadline: beijing(deadline),
        phase,
        roster_total: p.roster.len() as i64,
        applied: known.len() as i64,
        clean: known.iter().filter(|s| s.problems.is_empty()).count() as i64,
        with_problems_count: with_problems.len() as i64,
        missing_count: missing.len() as i64,
        late_count: late.len() as i64,
        new_since,
        by_section: by_section
            .into_iter()
            .map(|(name, count)| notify::Count { name, count })
            .collect(),
        by_college: colleges
            .into_iter()
            .map(|(college, (roster, applied, clean))| notify::CollegeLine {
                college,
                roster,
                applied,
                clean,
            })
            .collect(),
        with_problems,
        missing,
        late,
        needs_staff,
        unanswered,
        sender_changes,
        sending: crate::send::forecast(&p.store, &p.cfg.smtp, end)
            .await?
            .map(|f| f.to_string()),
        outbox_failures,
        template_errors,
        attachment_name: format!("申报汇总表-{local_day}.xlsx"),
    })
}

/// Digests due at `now`. With `force` (`digest --now`), every rule's digest for the period
/// since its last one, whatever the schedule says.
pub async fn plan_digests(
    p: &App,
    now: DateTime<Utc>,
    force: bool,
) -> anyhow::Result<Vec<Planned>> {
    let tz = p.cfg.campaign.timezone;
    let mut out = Vec::new();
    let mut latest: Option<Vec<ExportSubmission>> = None;
    for rule in &p.cfg.digests {
        let last = p.store.last_digest(&rule.name).await?;
        let (start, end, key_end) = if force {
            (last, now, format!("now-{}", db_time(now)))
        } else {
            match (last, schedule::due_digest(rule, tz, last, now)) {
                // First start: the first period begins now, not at the dawn of time.
                (None, _) => {
                    out.push(Planned {
                        campaign: p.cfg.campaign.id.clone(),
                        kind: "digest",
                        key: format!("digest:{}:start", rule.name),
                        rule: rule.name.clone(),
                        to: String::new(),
                        branch: None,
                        subject: String::new(),
                        text: String::new(),
                        period_end: Some(now),
                        occasion: None,
                        mail: None,
                        skipped: Some("首次启动：从此刻开始计算摘要周期".to_string()),
                        template_errors: Vec::new(),
                    });
                    continue;
                }
                (_, Some(due)) => (due.period_start, due.period_end, db_time(due.period_end)),
                (_, None) => continue,
            }
        };
        if latest.is_none() {
            latest = Some(crate::export::latest_reviewed(&p.store, &p.cfg.levels).await?);
        }
        let all = latest.as_deref().unwrap_or_default();
        let view = digest_view(p, rule, all, start, end).await?;
        let notify::DigestBodies {
            text,
            html,
            template_errors,
        } = notify::render_digest(&p.templates, &view)?;
        let empty = view.is_empty() && !rule.send_when_empty && !force;
        let subject = notify::digest_subject(&view);
        let xlsx = if empty {
            Vec::new()
        } else {
            let title = format!("{}申报汇总表", p.cfg.campaign.name);
            crate::export::to_xlsx(&title, all)?
        };
        for to in &rule.recipients {
            let key = format!("digest:{}:{}:{}", rule.name, key_end, to.to_lowercase());
            if p.store.in_ledger(&key).await? {
                continue;
            }
            let mail = if empty {
                None
            } else {
                Some(compose::build_rich(
                    &MailSpec {
                        kind: compose::OutboxKind::Digest,
                        from_name: &p.cfg.smtp.from_name,
                        from_addr: &p.cfg.smtp.from_address,
                        to_name: None,
                        to_addr: to,
                        subject: &subject,
                        text: &text,
                        message_id: compose::message_id(
                            "digest",
                            &key_id(&key),
                            &p.cfg.ack.message_id_domain,
                        ),
                        in_reply_to: None,
                        references: &[],
                        loop_value: &p.cfg.campaign.intake_address,
                        date: now,
                        auto_submitted: "auto-generated",
                    },
                    &RichParts {
                        html: Some(&html),
                        attachment: Some((
                            &view.attachment_name,
                            &xlsx,
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        )),
                    },
                )?)
            };
            out.push(Planned {
                campaign: p.cfg.campaign.id.clone(),
                kind: "digest",
                key,
                rule: rule.name.clone(),
                to: to.clone(),
                branch: None,
                subject: subject.clone(),
                text: text.clone(),
                period_end: Some(end),
                occasion: None,
                skipped: empty.then(|| "没有新内容，按设置不发送".to_string()),
                mail,
                template_errors: template_errors.clone(),
            });
        }
    }
    Ok(out)
}

/// Records planned mail in the ledger and queues it, each in one transaction; returns how many
/// mails were queued. A key already in the ledger (another daemon was quicker) is skipped.
pub async fn commit(p: &App, planned: &[Planned], now: DateTime<Utc>) -> anyhow::Result<usize> {
    Ok(commit_ids(p, planned, now).await?.len())
}

/// [`commit`], returning the outbox ids it queued: a command that sends at once sends these
/// and nothing else that waits in the outbox.
pub async fn commit_ids(
    p: &App,
    planned: &[Planned],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<i64>> {
    let mut queued = Vec::new();
    for item in planned {
        let mut tx = p.store.begin_write().await?;
        let inserted = crate::store::ledger::record(
            &mut tx,
            &crate::store::ledger::LedgerEntry {
                key: &item.key,
                kind: item.kind,
                rule: &item.rule,
                recipient: &item.to,
                branch: item.branch.as_deref(),
                period_end: item.period_end,
                deadline: item.occasion.map(|(d, _)| d),
                offset_secs: item.occasion.map(|(_, o)| o),
                skipped: item.skipped.as_deref(),
                campaign: &item.campaign,
            },
            now,
        )
        .await?;
        if inserted {
            for (template, error) in &item.template_errors {
                crate::store::ops::record_template_error(&mut tx, template, error, None, now)
                    .await?;
            }
        }
        if inserted && let Some(mail) = &item.mail {
            // A reply to a reminder or a result is about this branch (see pipeline's threads).
            let id = crate::store::enqueue(
                &mut tx,
                mail,
                None,
                item.branch.as_deref(),
                &item.campaign,
                now,
            )
            .await?;
            crate::store::ledger::set_outbox(&mut tx, &item.campaign, &item.key, id).await?;
            queued.push(id);
        }
        tx.commit().await?;
    }
    if !queued.is_empty() {
        p.outbox.notify_one();
    }
    Ok(queued)
}

/// One scheduler step at `now`: plan and queue whatever is due.
pub async fn tick(p: &App, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut planned = plan_reminders(p, now).await?;
    planned.extend(plan_digests(p, now, false).await?);
    let n = commit(p, &planned, now).await?;
    if n > 0 {
        tracing::info!(queued = n, "排期的邮件已放入发件箱");
    }
    Ok(n)
}

/// The scheduler task of the daemon: a tick whenever something falls due, at least every
/// five minutes (the clock may jump, the database may have changed the audiences).
pub async fn run(
    mut p: std::sync::Arc<App>,
    duties: crate::duty::Duties,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut held = false;
    loop {
        // One daemon runs the scheduler; the others check now and then whether it still does.
        // (The ledger would stop a second daemon's reminders anyway; the lease saves the work.)
        let holds = duties.take(crate::duty::SCHEDULER).await;
        if holds != held {
            if holds {
                tracing::info!(holder = %duties.holder, "本进程负责排期（提醒、摘要）");
            } else {
                tracing::info!("排期由另一个守护进程负责，本进程待命");
            }
            held = holds;
        }
        if !holds {
            tokio::select! {
                _ = tokio::time::sleep(duties.every()) => continue,
                _ = crate::shutdown::requested(&mut shutdown) => return,
            }
        }
        let now = p.clock.now();
        // Across the semesters' boundary the reminders, digests and results become the new
        // campaign's without a restart.
        match p.moved_on(now) {
            Ok(Some(next)) => {
                tracing::info!(
                    from = %p.cfg.campaign.id,
                    to = %next.cfg.campaign.id,
                    "进入新的一期活动，提醒、摘要和评审结果改按这一期排期"
                );
                p = std::sync::Arc::new(next);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "无法切换到新的一期活动（请检查这一期的名册和配置），仍按原来的一期排期");
            }
        }
        let error = tick(&p, now).await.err().map(|e| format!("{e:#}"));
        if let Some(e) = &error {
            tracing::error!(error = %e, "排期检查出错，稍后重试");
        }
        // What `shenbao health` reads as the scheduler's last step.
        if let Err(e) = p
            .store
            .beat(
                crate::store::ops::Component::Scheduler,
                p.clock.now(),
                error.as_deref(),
            )
            .await
        {
            tracing::warn!(error = %e, "记录排期检查的时间失败");
        }
        let next = schedule::next_wakeup(
            &p.cfg.reminders,
            &p.cfg.digests,
            deadline_of(&p),
            p.cfg.campaign.timezone,
            p.clock.now(),
        );
        let wait = next
            .and_then(|t| (t - p.clock.now()).to_std().ok())
            .unwrap_or(std::time::Duration::from_secs(300))
            .min(std::time::Duration::from_secs(300))
            .max(std::time::Duration::from_millis(200))
            // Renewed well within the lease.
            .min(duties.every());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::shutdown::requested(&mut shutdown) => {
                duties.release(crate::duty::SCHEDULER).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::roster::{Unreachable, UnreachableRow};
    use crate::schedule::{ReminderRule, parse_offset, parse_time_of_day};

    fn at(s: &str) -> DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// The occasions (7d, 3d, 1d at 09:00) of the notice's deadline, or of `deadline`.
    fn occasions_for(deadline: &str) -> Vec<Occasion> {
        let rule = ReminderRule {
            name: "申报截止提醒".to_string(),
            deadline: DeadlineKind::Application,
            offsets: ["7d", "3d", "1d"]
                .iter()
                .filter_map(|o| parse_offset(o).ok())
                .collect(),
            time_of_day: parse_time_of_day("09:00").ok(),
            audiences: vec![Audience::NotSubmitted],
            template: "reminder.txt.j2".to_string(),
        };
        schedule::occasions(&rule, at(deadline), chrono_tz::Asia::Shanghai)
    }

    const A: &str = "甲学院第一党支部";
    const B: &str = "甲学院第二党支部";
    const SHARED: &str = "branch2@example.test";

    /// A row as the ledger holds it after sending `occ` to `branch` (None: an old address row).
    fn sent_row(occ: &Occasion, branch: Option<&str>, to: &str) -> LedgerRow {
        LedgerRow {
            key: match branch {
                Some(b) => occ.key_for_branch(b),
                None => occ.key_for(to),
            },
            branch: branch.map(str::to_string),
            recipient: to.to_string(),
            deadline: Some(occ.deadline),
            offset_secs: Some(occ.offset.num_seconds()),
            skipped: false,
        }
    }

    fn send(to: &str) -> Decision {
        Decision::Send { to: to.to_string() }
    }

    #[test]
    fn each_branch_at_a_shared_address_gets_its_own_reminder() {
        let occ = &occasions_for("2025-09-27T23:59:59+08:00")[0];
        let now = occ.fire_at;
        assert_eq!(decide(occ, A, SHARED, None, &[], now), send(SHARED));
        assert_eq!(decide(occ, B, SHARED, None, &[], now), send(SHARED));
        // A's reminder went out: B's has not, and A's is not sent again.
        let rows = [sent_row(occ, Some(A), SHARED)];
        assert_eq!(
            decide(occ, A, SHARED, None, &rows, now),
            Decision::AlreadySent
        );
        assert_eq!(decide(occ, B, SHARED, None, &rows, now), send(SHARED));
        // Addresses compare without case or surrounding spaces.
        assert_eq!(
            decide(occ, B, " Branch2@Example.TEST ", None, &[], now),
            send(SHARED)
        );
    }

    #[test]
    fn an_old_address_keyed_row_covers_every_branch_at_that_address() {
        let occ = &occasions_for("2025-09-27T23:59:59+08:00")[1];
        let now = occ.fire_at;
        let rows = [sent_row(occ, None, SHARED)];
        assert_eq!(
            decide(occ, A, SHARED, None, &rows, now),
            Decision::AlreadySent
        );
        assert_eq!(
            decide(occ, B, SHARED, None, &rows, now),
            Decision::AlreadySent
        );
        assert_eq!(
            decide(occ, B, "BRANCH2@example.test", None, &rows, now),
            Decision::AlreadySent
        );
        // Another address, or another occasion of the same rule, is not covered.
        assert_eq!(
            decide(occ, A, "branch1@example.test", None, &rows, now),
            send("branch1@example.test")
        );
        let next = &occasions_for("2025-09-27T23:59:59+08:00")[2];
        assert_eq!(
            decide(next, A, SHARED, None, &rows, next.fire_at),
            send(SHARED)
        );
    }

    #[test]
    fn a_moved_deadline_does_not_repeat_an_offset_already_sent() {
        let old = &occasions_for("2025-09-27T23:59:59+08:00")[0];
        let moved = occasions_for("2025-09-28T23:59:59+08:00");
        let (seven, three) = (&moved[0], &moved[1]);
        let now = seven.fire_at;
        for rows in [
            vec![sent_row(old, Some(A), SHARED)],
            vec![sent_row(old, None, SHARED)],
        ] {
            assert_eq!(
                decide(seven, A, SHARED, None, &rows, now),
                Decision::AlreadySent,
                "{rows:?}"
            );
            // Another offset is a reminder of its own.
            assert_eq!(
                decide(three, A, SHARED, None, &rows, three.fire_at),
                send(SHARED)
            );
        }
        // Per branch: B was never sent "7 days left".
        let rows = [sent_row(old, Some(A), SHARED)];
        assert_eq!(decide(seven, B, SHARED, None, &rows, now), send(SHARED));
        // A row for a deadline already passed (last semester's) blocks nothing.
        let last_year = &occasions_for("2024-09-27T23:59:59+08:00")[0];
        let rows = [sent_row(last_year, Some(A), SHARED)];
        assert_eq!(decide(seven, A, SHARED, None, &rows, now), send(SHARED));
    }

    #[test]
    fn branches_without_an_address_are_skipped_once_with_a_reason() {
        let occ = &occasions_for("2025-09-27T23:59:59+08:00")[0];
        let now = occ.fire_at;
        let no_email = UnreachableRow {
            line: 4,
            branch: A.to_string(),
            why: Unreachable::NoEmail,
        };
        let bad = UnreachableRow {
            line: 7,
            branch: B.to_string(),
            why: Unreachable::BadEmail {
                cell: "zhang at tongji".to_string(),
            },
        };
        match decide(occ, A, "", Some(&no_email), &[], now) {
            Decision::RecordSkip { reason } => {
                assert!(
                    reason.contains("第 4 行") && reason.contains("没有填写书记邮箱"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        match decide(occ, B, "", Some(&bad), &[], now) {
            Decision::RecordSkip { reason } => {
                assert!(
                    reason.contains("第 7 行") && reason.contains("zhang at tongji"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A branch built without a roster row still gets a reason.
        assert!(matches!(
            decide(occ, A, " ", None, &[], now),
            Decision::RecordSkip { .. }
        ));
        // Recorded once per occasion.
        let skip = LedgerRow {
            key: occ.skip_key_for_branch(A),
            branch: Some(A.to_string()),
            recipient: String::new(),
            deadline: Some(occ.deadline),
            offset_secs: Some(occ.offset.num_seconds()),
            skipped: true,
        };
        assert_eq!(
            decide(
                occ,
                A,
                "",
                Some(&no_email),
                std::slice::from_ref(&skip),
                now
            ),
            Decision::SkipRecorded
        );
        // The next occasion records its own skip.
        let next = &occasions_for("2025-09-27T23:59:59+08:00")[1];
        assert!(matches!(
            decide(
                next,
                A,
                "",
                Some(&no_email),
                std::slice::from_ref(&skip),
                next.fire_at
            ),
            Decision::RecordSkip { .. }
        ));
        // Once the roster has the address, the skip does not count as sent.
        assert_eq!(
            decide(occ, A, "a@b.cn", None, std::slice::from_ref(&skip), now),
            send("a@b.cn")
        );
    }

    #[test]
    fn time_left_for_people() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default()
        };
        let deadline = t("2025-09-27T23:59:59+08:00");
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(
            time_left(t("2025-09-20T09:00:00+08:00"), deadline, tz),
            "7 天"
        );
        assert_eq!(
            time_left(t("2025-09-24T09:00:00+08:00"), deadline, tz),
            "3 天"
        );
        assert_eq!(
            time_left(t("2025-09-26T09:00:00+08:00"), deadline, tz),
            "1 天"
        );
        assert_eq!(
            time_left(t("2025-09-27T18:00:00+08:00"), deadline, tz),
            "5 小时"
        );
        assert_eq!(
            time_left(t("2025-09-27T23:30:00+08:00"), deadline, tz),
            "29 分钟"
        );
    }
}
