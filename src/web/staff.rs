//! 需人工处理: the mails that wait for a person (questions, replies, unrecognised branches,
//! strangers, failures, mail too large to read) and each mail's page with its headers and
//! text; staff also download the raw mail, mark a mail handled, or register it for a roster
//! branch — through the same functions as `shenbao resolve` and `shenbao assign`.

use super::desk::{self, StaffOutcome};
use super::reply::{Failure, html, not_found, redirect, secure};
use super::{Board, auth, may_act};
use crate::pipeline::correct::{self, CorrectError};
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use std::sync::Arc;

pub(super) const TEMPLATES: &[(&str, &str)] = &[
    ("staff.html", include_str!("templates/staff.html")),
    ("message.html", include_str!("templates/message.html")),
];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/staff", get(staff))
        .route("/message/{id}", get(message))
        .route("/message/{id}/raw", get(raw))
        .route("/message/{id}/resolve", post(resolve))
        .route("/message/{id}/assign", post(assign))
}

/// How many handled mails the page lists under the waiting ones.
const RESOLVED_SHOWN: i64 = 30;

/// What the page returned to after an action carries (see [`StaffOutcome::query`]).
#[derive(serde::Deserialize, Default)]
struct FlashQuery {
    done: Option<String>,
    error: Option<String>,
    id: Option<i64>,
    branch: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct ActForm {
    csrf: Option<String>,
    note: Option<String>,
    branch: Option<String>,
    /// `message` when sent from a mail's page: a refusal returns there.
    from: Option<String>,
}

/// A row of the list.
#[derive(serde::Serialize)]
struct Row {
    id: i64,
    received_at: String,
    from: String,
    subject: String,
    category: &'static str,
    reason: String,
    branch: Option<String>,
    suggested_branch: Option<String>,
    thread_subject: Option<String>,
    assignable: bool,
}

/// A handled mail.
#[derive(serde::Serialize)]
struct Handled {
    id: i64,
    received_at: String,
    resolved_at: String,
    from: String,
    subject: String,
    category: &'static str,
    note: String,
}

/// Whether `assign` can take a mail of this status and disposition (what
/// `pipeline::correct` refuses is not offered).
fn assignable(status: &str, disposition: &str) -> bool {
    status != "stored" && !matches!(disposition, "own_copy" | "too_large")
}

/// Why the page shows no buttons, for a viewer who may not act.
fn notice(board: &Board, session: &auth::Session) -> Option<&'static str> {
    if board.read_only {
        Some(
            "这是只读看板（shenbao web）：只能查看。标为已处理、登记到支部请到运行守护进程（shenbao run）的看板上操作。",
        )
    } else if !session.role.may_act() {
        Some("评审专家账号只能查看：标为已处理、登记到支部和下载原始邮件需要工作人员账号。")
    } else {
        None
    }
}

/// The line to show for the query an action redirected with.
async fn flash(app: &crate::app::App, q: &FlashQuery) -> Result<Option<desk::Flash>, Failure> {
    let Some(outcome) = q
        .done
        .as_deref()
        .or(q.error.as_deref())
        .and_then(StaffOutcome::from_code)
    else {
        return Ok(None);
    };
    let Some(id) = q.id else {
        return Ok(None);
    };
    let (branch, near) = match outcome {
        StaffOutcome::Assigned => (
            app.store
                .message_record(id)
                .await
                .map_err(anyhow::Error::from)?
                .and_then(|m| m.branch),
            Vec::new(),
        ),
        StaffOutcome::UnknownBranch => {
            let typed = q.branch.clone().unwrap_or_default();
            let near = app.roster.match_branch(&typed).candidates;
            (Some(typed), near)
        }
        _ => (None, Vec::new()),
    };
    Ok(desk::staff_flash(outcome, id, branch.as_deref(), &near))
}

async fn staff(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    query: Result<Query<FlashQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Query(q) = query.unwrap_or_default();
    let scope = board.scope(&session)?;
    let store = &scope.app.store;
    let waiting = store
        .needs_staff(None, None)
        .await
        .map_err(anyhow::Error::from)?;
    let rows: Vec<Row> = waiting
        .into_iter()
        .map(|s| Row {
            id: s.id,
            received_at: crate::clock::beijing(s.received_at),
            from: crate::attach::display_text(&s.from),
            subject: crate::attach::display_text(&s.subject),
            category: crate::pipeline::disposition_label(&s.disposition),
            assignable: assignable("processed", &s.disposition) && s.disposition != "stored",
            reason: s.reason,
            branch: s.branch,
            suggested_branch: s.suggested_branch,
            thread_subject: s.thread_subject,
        })
        .collect();
    let handled: Vec<Handled> = store
        .resolved_messages(RESOLVED_SHOWN)
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(|r| Handled {
            id: r.id,
            received_at: crate::clock::beijing(r.received_at),
            resolved_at: crate::clock::beijing(r.resolved_at),
            from: crate::attach::display_text(&r.from),
            subject: crate::attach::display_text(&r.subject),
            category: crate::pipeline::disposition_label(&r.disposition),
            note: r.note.unwrap_or_default(),
        })
        .collect();
    let flash = flash(&scope.app, &q).await?;
    let body = board.render(
        "staff.html",
        Some(&session),
        "staff",
        minijinja::context! {
            title => "需人工处理",
            rows => rows,
            handled => handled,
            handled_max => RESOLVED_SHOWN,
            flash => flash,
            can_act => may_act(session.role, board.read_only),
            notice => notice(&board, &session),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

/// A mail's address for people: `名字 <addr>` or the address.
fn address(a: &crate::message::Address) -> String {
    match a.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{n} <{}>", a.addr),
        None => a.addr.clone(),
    }
}

fn addresses(list: &[crate::message::Address]) -> String {
    list.iter().map(address).collect::<Vec<_>>().join("，")
}

/// An attached file on the mail's page.
#[derive(serde::Serialize)]
struct FileLine {
    name: String,
    size: String,
    error: Option<String>,
    entries: Vec<String>,
}

/// The raw mail of `sha`, read off the async threads; `None` when its file is missing.
async fn raw_bytes(board: &Board, sha: &str) -> Result<Option<Vec<u8>>, Failure> {
    let (blobs, sha) = (board.app.store.blobs.clone(), sha.to_string());
    let read = tokio::task::spawn_blocking(move || blobs.get(&sha))
        .await
        .map_err(|e| Failure(anyhow::anyhow!("读取原始邮件的线程出错：{e}")))?;
    match read {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure(anyhow::Error::new(e).context("读取原始邮件"))),
    }
}

async fn message(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    path: Result<Path<i64>, PathRejection>,
    query: Result<Query<FlashQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Ok(Path(id)) = path else {
        return Ok(not_found().await);
    };
    let Query(q) = query.unwrap_or_default();
    let scope = board.scope(&session)?;
    let app = &scope.app;
    let Some(m) = app
        .store
        .message_record(id)
        .await
        .map_err(anyhow::Error::from)?
    else {
        return Ok(not_found().await);
    };
    let understood = match raw_bytes(&board, &m.raw_sha256).await? {
        Some(raw) => Some(
            tokio::task::spawn_blocking(move || {
                crate::message::understand_owned(raw, &crate::message::LoopGuard::default())
            })
            .await
            .map_err(|e| Failure(anyhow::anyhow!("解析邮件的线程出错：{e}")))?,
        ),
        None => None,
    };
    let mut head: Vec<(&str, String)> = Vec::new();
    let mut files: Vec<FileLine> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut text = String::new();
    if let Some(u) = &understood {
        head.push(("发件人", u.from.as_ref().map(address).unwrap_or_default()));
        if let Some(r) = &u.reply_to {
            head.push(("回复地址", address(r)));
        }
        head.push(("收件人", addresses(&u.to)));
        if !u.cc.is_empty() {
            head.push(("抄送", addresses(&u.cc)));
        }
        head.push((
            "日期",
            u.date
                .map(|d| format!("{}（北京时间）", crate::clock::beijing(d.to_utc())))
                .unwrap_or_else(|| "（未写日期）".to_string()),
        ));
        head.push(("主题", u.subject.clone()));
        if let Some(mid) = &u.message_id {
            head.push(("Message-ID", mid.clone()));
        }
        if let Some(irt) = &u.in_reply_to {
            head.push(("In-Reply-To", irt.clone()));
        }
        files = u
            .attachments
            .iter()
            .map(|a| FileLine {
                name: a.filename.clone(),
                size: desk::size_text(a.size as u64),
                error: a.error.clone(),
                entries: a.entries.iter().map(|e| e.filename.clone()).collect(),
            })
            .collect();
        warnings = u.warnings.clone();
        text = u.body_text.clone();
    }
    let can_act = may_act(session.role, board.read_only);
    let roster: Vec<(&str, &str)> = if can_act {
        app.roster
            .branches()
            .iter()
            .map(|b| (b.name.as_str(), b.college.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let flash = flash(&scope.app, &q).await?;
    let body = board.render(
        "message.html",
        Some(&session),
        "staff",
        minijinja::context! {
            title => format!("邮件 #{id}"),
            m => minijinja::context! {
                id => m.id,
                from => crate::attach::display_text(&m.from),
                subject => crate::attach::display_text(&m.subject),
                category => crate::pipeline::disposition_label(&m.disposition),
                reason => &m.reason,
                branch => &m.branch,
                suggested_branch => &m.suggested_branch,
                thread_subject => &m.thread_subject,
                no_answer => &m.no_answer,
                received_at => crate::clock::beijing(m.received_at),
                size => desk::size_text(u64::try_from(m.size).unwrap_or(0)),
                waits => m.waits_for_staff,
                resolved_at => m.resolved_at.map(crate::clock::beijing),
                resolved_note => &m.resolved_note,
                assignable => assignable(&m.status, &m.disposition),
            },
            missing => understood.is_none(),
            head => head,
            files => files,
            warnings => warnings,
            text => text,
            roster => roster,
            flash => flash,
            can_act => can_act,
            can_raw => session.role.may_act(),
            notice => notice(&board, &session),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

/// The raw mail as it arrived, for staff only: it carries names, addresses and phone
/// numbers of people who never sent them to reviewers.
async fn raw(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    if !session.role.may_act() {
        return Ok(html(
            StatusCode::FORBIDDEN,
            "<!doctype html><meta charset=\"utf-8\"><title>不能下载</title><p>原始邮件含有个人信息，只有工作人员账号可以下载：需要时请联系工作人员。</p><p><a href=\"/staff\">回到需人工处理</a></p>".to_string(),
        ));
    }
    let Ok(Path(id)) = path else {
        return Ok(not_found().await);
    };
    let Some(m) = board
        .app
        .store
        .message_record(id)
        .await
        .map_err(anyhow::Error::from)?
    else {
        return Ok(not_found().await);
    };
    let Some(bytes) = raw_bytes(&board, &m.raw_sha256).await? else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>原始邮件缺失</title><p>邮件 #{id} 的原始文件不在数据目录中：请从备份恢复数据目录下的 blobs 后再试。</p>"
            ),
        ));
    };
    tracing::info!(user = %session.user, message = id, "看板：下载原始邮件");
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&super::reply::content_disposition(
        &format!("message-{id}.eml"),
        "message.eml",
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(secure(r))
}

/// What a refused correction means for the page, when it is one staff can act on.
fn outcome_of(e: &anyhow::Error) -> Option<StaffOutcome> {
    Some(match e.downcast_ref::<CorrectError>()? {
        CorrectError::NoSuchMessage(_) => StaffOutcome::NoSuchMessage,
        CorrectError::NotReplayable(_) => StaffOutcome::NotReplayable,
        CorrectError::NotProcessed(_) => StaffOutcome::NotProcessed,
        CorrectError::NoSuggestion(_) => StaffOutcome::NoSuggestion,
        CorrectError::UnknownBranch { .. } => StaffOutcome::UnknownBranch,
        CorrectError::NotForStaff(_) => StaffOutcome::NotForStaff,
    })
}

/// Where an action returns: the list when it worked, or — refused — the page it came from.
fn back(id: i64, outcome: StaffOutcome, branch: Option<&str>, from: Option<&str>) -> Response {
    let q = outcome.query(id, branch);
    if !outcome.is_ok() && from == Some("message") {
        redirect(&format!("/message/{id}?{q}"), &[])
    } else {
        redirect(&format!("/staff?{q}"), &[])
    }
}

async fn resolve(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    path: Result<Path<i64>, PathRejection>,
    form: Result<Form<ActForm>, FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.unwrap_or_default();
    let session = match board.actor(&headers, form.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Ok(Path(id)) = path else {
        return Ok(not_found().await);
    };
    let note = desk::resolve_note(&session.user, form.note.as_deref().unwrap_or_default());
    let scope = board.scope(&session)?;
    let outcome = match correct::resolve(&scope.app, id, Some(&note)).await {
        Ok(()) => {
            tracing::info!(user = %session.user, message = id, "看板：邮件标为已处理");
            StaffOutcome::Resolved
        }
        Err(e) => outcome_of(&e).ok_or(Failure(e))?,
    };
    Ok(back(id, outcome, None, form.from.as_deref()))
}

async fn assign(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    path: Result<Path<i64>, PathRejection>,
    form: Result<Form<ActForm>, FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.unwrap_or_default();
    let session = match board.actor(&headers, form.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Ok(Path(id)) = path else {
        return Ok(not_found().await);
    };
    let branch = form
        .branch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    // As `shenbao assign`: the mail is processed again as the branch's and acknowledged.
    let p = correct::correction_pipeline(board.scope(&session)?.app, true);
    let outcome = match correct::assign(&p, id, branch, false).await {
        Ok((name, report)) => {
            tracing::info!(user = %session.user, message = id, branch = %name, answers = report.answers, "看板：邮件登记到支部");
            StaffOutcome::Assigned
        }
        Err(e) => outcome_of(&e).ok_or(Failure(e))?,
    };
    Ok(back(id, outcome, branch, form.from.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_assign_is_offered_for() {
        assert!(assignable("processed", "application"));
        assert!(assignable("processed", "question"));
        assert!(assignable("failed", "failed"));
        assert!(!assignable("stored", "stored"));
        assert!(!assignable("processed", "too_large"));
        assert!(!assignable("processed", "own_copy"));
    }

    #[test]
    fn refused_corrections_become_page_messages() {
        let e = |c: CorrectError| outcome_of(&anyhow::Error::new(c));
        assert_eq!(
            e(CorrectError::NotForStaff(3)),
            Some(StaffOutcome::NotForStaff)
        );
        assert_eq!(
            e(CorrectError::UnknownBranch {
                name: "x".into(),
                hint: String::new()
            }),
            Some(StaffOutcome::UnknownBranch)
        );
        assert_eq!(
            e(CorrectError::NoSuchMessage(3)),
            Some(StaffOutcome::NoSuchMessage)
        );
        // Wrapped in context, still recognised; anything else is a failure of the page.
        let wrapped = anyhow::Error::new(CorrectError::NotProcessed(3)).context("登记");
        assert_eq!(outcome_of(&wrapped), Some(StaffOutcome::NotProcessed));
        assert_eq!(outcome_of(&anyhow::anyhow!("数据库错误")), None);
    }

    #[test]
    fn refusals_return_to_the_page_they_came_from() {
        let loc = |r: Response| {
            r.headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(
            loc(back(4, StaffOutcome::Resolved, None, Some("message"))).as_deref(),
            Some("/staff?done=resolved&id=4")
        );
        assert_eq!(
            loc(back(
                4,
                StaffOutcome::UnknownBranch,
                Some("甲"),
                Some("message")
            ))
            .as_deref(),
            Some("/message/4?error=unknown_branch&id=4&branch=%E7%94%B2")
        );
        assert_eq!(
            loc(back(4, StaffOutcome::NotForStaff, None, None)).as_deref(),
            Some("/staff?error=not_for_staff&id=4")
        );
    }
}
