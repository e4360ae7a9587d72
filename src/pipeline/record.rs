//! Recording a [`Decision`] in the caller's write transaction, through the store's functions:
//! the attachments, the version with what could not be read, the failed templates, the answer
//! in the outbox, and the message's disposition — together or not at all.
//!
//! Not pure: it writes (and logs what staff should see in the log).

use super::decide::{Decision, Message};
use crate::store::{self, StoreError, Tx, attachments, register, submissions};
use chrono::{DateTime, Utc};

/// Why a decision could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The database failed: worth another try.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value could not be written as JSON (a defect).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Writes `d`, decided for `m`, in `tx`. `blobs_recorded`: the blob rows of the message's
/// files are in already (its commit group recorded all of them in one statement).
pub async fn record(
    tx: &mut Tx,
    m: &Message<'_>,
    d: &Decision,
    now: DateTime<Utc>,
    blobs_recorded: bool,
) -> Result<(), RecordError> {
    let u = m.understood;
    if blobs_recorded {
        attachments::record_files(tx, m.id, &u.attachments).await?;
    } else {
        attachments::record_attachments(tx, m.id, &u.attachments, now).await?;
    }
    if let Some(v) = &d.version {
        let codes: Vec<&str> = v.findings.iter().map(|f| f.code.code()).collect();
        let chosen = m.extracted.chosen();
        let row = submissions::NewVersion {
            kind: v.kind,
            branch_key: v.branch_key.clone(),
            branch: v.matched.branch.as_ref().map(|b| b.name.clone()),
            college: v.matched.branch.as_ref().map(|b| b.college.clone()),
            branch_text: v.branch_text.clone(),
            match_kind: v.matched.kind.as_str(),
            match_score: v.matched.score,
            match_reason: v.matched.reason.clone(),
            version: v.number,
            message_id: m.id,
            sender: v.sender.clone(),
            received_at: m.received,
            late: v.late,
            problems: serde_json::to_string(&codes)?,
            created_at: now,
            fields: chosen.map(|(f, _)| serde_json::to_string(f)).transpose()?,
            fields_source: chosen.map(|(_, source)| source),
            form_fields: m
                .extracted
                .form
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            summary_fields: m
                .extracted
                .summary
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            problem_details: serde_json::to_string(&v.findings)?,
            sender_changed: v.sender_changed,
            suggested_branch: v.suggested.clone(),
            content_key: v.content_key.clone(),
            campaign: m.campaign.to_string(),
        };
        submissions::insert_version(tx, &row).await?;
        attachments::set_read_errors(tx, m.id, &m.extracted.read_errors).await?;
    }
    for e in &d.template_errors {
        tracing::error!(template = e.template, message = m.id, error = %e.error, "模板出错，已改用内置模板");
        store::ops::record_template_error(tx, e.template, &e.error, Some(m.id), now).await?;
    }
    if let Some(l) = &d.limited {
        tracing::warn!(to = %l.to, recent = l.recent, kind = l.kind.label(), "已达到对同一地址的自动提示上限，本次不回复");
    }
    if let Some(a) = &d.answer {
        store::enqueue(
            tx,
            &a.mail,
            Some(m.id),
            a.branch.as_deref(),
            m.campaign,
            now,
        )
        .await?;
    }
    let processed = register::Processed {
        id: m.id,
        disposition: d.outcome.disposition.as_str(),
        reason: d.outcome.reason.clone(),
        subject: u.subject.clone(),
        from_addr: u.from.as_ref().map(|a| a.addr.to_lowercase()),
        from_name: u.from.as_ref().and_then(|a| a.name.clone()),
        message_id: u.message_id.clone(),
        processed_at: now,
        branch: d.outcome.branch.clone(),
        thread_of: d.thread_of.clone(),
        needs_staff: d.needs_staff,
        no_answer: d.no_answer.clone(),
        auto_hints: if u.auto_hints.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&u.auto_hints)?)
        },
        campaign: m.campaign.to_string(),
    };
    register::record_processed(tx, &processed).await?;
    Ok(())
}
