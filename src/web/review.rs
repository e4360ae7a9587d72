//! 评审: the current review results (level per branch, counts per level against the caps), the
//! reviewers' sheet to download, and for staff the import and the result mails — the same
//! functions as `shenbao review import` and `shenbao review notify`
//! ([`crate::schedule::results`]), so the board and the command line follow the same rules.
//!
//! The import takes two steps: the upload is checked and previewed (or its errors listed by
//! row and column), and only a confirmation imports it. Between the two the sheet waits in
//! memory ([`Uploads`]), under a random token, for its uploader only and for a while.

use super::reply::{Failure, forbidden, html, redirect, secure};
use super::{Board, auth, may_act};
use crate::campaign::review::{self as review, Change, Decision, ImportError, Ungraded};
use crate::schedule::results::{self, ImportOutcome, UnreadableSheet};
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(super) const TEMPLATES: &[(&str, &str)] =
    &[("review.html", include_str!("templates/review.html"))];

/// The largest sheet the board takes (the request as a whole).
const MAX_UPLOAD: usize = 10 << 20;

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/review", get(page))
        .route("/review/sheet.xlsx", get(sheet))
        .route(
            "/review/upload",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/review/confirm", post(confirm))
        .route("/review/notify", post(notify))
}

/// How long an uploaded sheet waits for its confirmation.
const KEEP: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

/// Uploaded sheets waiting for their confirmation, by token: at most one per staff member (a
/// new upload replaces the last one), gone after [`KEEP`] or once confirmed.
#[derive(Default)]
pub(super) struct Uploads {
    by_token: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    user: String,
    file_name: String,
    bytes: Vec<u8>,
    partial: bool,
    at: DateTime<Utc>,
}

impl Uploads {
    fn put(&self, token: String, pending: Pending, now: DateTime<Utc>) {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| now - p.at < KEEP && p.user != pending.user);
        map.insert(token, pending);
    }

    /// The sheet `user` uploaded under `token`, taken out; `None` when there is none (expired,
    /// confirmed already, or someone else's).
    fn take(&self, token: &str, user: &str, now: DateTime<Utc>) -> Option<Pending> {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| now - p.at < KEEP);
        if map.get(token).is_some_and(|p| p.user == user) {
            map.remove(token)
        } else {
            None
        }
    }
}

/// The notes after a redirect: numbers only, the text is ours.
#[derive(serde::Deserialize, Default)]
struct Notes {
    imported: Option<usize>,
    funded: Option<usize>,
    left: Option<usize>,
    queued: Option<usize>,
}

impl Notes {
    fn text(&self) -> Option<String> {
        if let Some(n) = self.imported {
            let funded = self.funded.unwrap_or(0).min(n);
            let mut t = format!(
                "已导入 {n} 条评审结果（立项 {funded} 个，未立项 {} 个）。",
                n - funded
            );
            if let Some(left) = self.left.filter(|l| *l > 0) {
                t.push_str(&format!(
                    "还有 {left} 个已申报的支部没有评审结果，评审后再上传导入。"
                ));
            }
            t.push_str("下面可以预览并发送结果通知。");
            return Some(t);
        }
        match self.queued {
            Some(0) => {
                Some("没有需要发送的评审结果：每个结果只通知一次，已通知过的不再重发。".to_string())
            }
            Some(n) => Some(format!(
                "评审结果 {n} 封已放入发件箱，守护进程随即发出；发送情况见发件箱。"
            )),
            None => None,
        }
    }
}

/// What an upload or a confirmation came to, shown above the results.
#[derive(serde::Serialize, Default)]
struct UploadView {
    file_name: String,
    /// Why the file could not be checked at all (too large, not a workbook, …).
    problem: Option<String>,
    /// Every error of the sheet, by row and column: nothing was imported.
    errors: Vec<ErrorLine>,
    /// Branches that applied and would stay without a result.
    ungraded: Vec<String>,
    /// Not imported only because branches are left ungraded (`partial` would take it).
    incomplete: bool,
    preview: Option<Preview>,
}

#[derive(serde::Serialize)]
struct ErrorLine {
    row: usize,
    column: String,
    message: String,
}

impl From<&ImportError> for ErrorLine {
    fn from(e: &ImportError) -> Self {
        ErrorLine {
            row: e.row,
            column: e.column.clone(),
            message: e.message.clone(),
        }
    }
}

#[derive(serde::Serialize)]
struct Preview {
    token: String,
    partial: bool,
    decisions: Vec<PreviewRow>,
    new: usize,
    changed: usize,
    same: usize,
    funded: usize,
    /// Rows of applications whose branch is not recognised: skipped.
    unrecognised: Vec<String>,
}

#[derive(serde::Serialize)]
struct PreviewRow {
    row: usize,
    branch: String,
    college: String,
    result: String,
    funded: bool,
    change: Change,
}

#[derive(serde::Serialize)]
struct ResultRow {
    college: String,
    branch: String,
    level: String,
    funded: bool,
    result: String,
}

#[derive(serde::Serialize)]
struct MailRow {
    branch: String,
    to: String,
    subject: String,
    text: String,
}

#[derive(serde::Serialize)]
struct NotNotified {
    branch: String,
    reason: String,
}

async fn page(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    notes: Result<Query<Notes>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Query(notes) = notes.unwrap_or_default();
    render(&board, &session, None, notes.text(), StatusCode::OK).await
}

/// The page, with what an upload came to (`upload`) or a note after an action.
async fn render(
    board: &Board,
    session: &auth::Session,
    upload: Option<UploadView>,
    note: Option<String>,
    status: StatusCode,
) -> Result<Response, Failure> {
    let scope = board.scope(session)?;
    let app = &scope.app;
    let now = board.now();
    let current = app
        .store
        .current_reviews()
        .await
        .map_err(anyhow::Error::from)?;
    let applicants = app.store.applicants().await.map_err(anyhow::Error::from)?;
    let levels = results::levels(app);
    let college = |b: &str| {
        app.roster
            .get(b)
            .map(|b| b.college.clone())
            .unwrap_or_default()
    };
    let rows: Vec<ResultRow> = current
        .iter()
        .map(|c| ResultRow {
            college: college(&c.branch),
            branch: c.branch.clone(),
            level: c.level.clone(),
            funded: c.funded,
            result: review::result_text(&c.level, c.amount_yuan, c.funded),
        })
        .collect();
    let ungraded = applicants
        .iter()
        .filter(|a| !current.iter().any(|c| c.branch == **a))
        .count();
    let plan = results::plan_results(app, now).await?;
    let mails: Vec<MailRow> = plan
        .planned
        .iter()
        .filter(|p| p.mail.is_some())
        .map(|p| MailRow {
            branch: p.branch.clone().unwrap_or_default(),
            to: p.to.clone(),
            subject: p.subject.clone(),
            text: p.text.clone(),
        })
        .collect();
    let not_notified: Vec<NotNotified> = plan
        .not_notified
        .iter()
        .map(|n| NotNotified {
            branch: n.branch.clone(),
            reason: n.reason.clone(),
        })
        .collect();
    // Queued would also be a skip recorded once for a branch nobody can be written to.
    let to_record = plan.planned.len();
    let body = board.render(
        "review.html",
        Some(session),
        "review",
        minijinja::context! {
            title => "评审",
            can_act => may_act(session.role, board.read_only),
            note => note,
            upload => upload,
            levels => review::level_counts(&levels, &current),
            rows => rows,
            reviewed => current.len(),
            applied => applicants.len(),
            ungraded => ungraded,
            mails => mails,
            to_record => to_record,
            not_notified => not_notified,
            max_mb => MAX_UPLOAD >> 20,
        },
    )?;
    Ok(html(status, body))
}

/// The reviewers' sheet: the 汇总表 as `shenbao export --format xlsx` writes it.
async fn sheet(State(board): State<Arc<Board>>, headers: HeaderMap) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let scope = board.scope(&session)?;
    let cfg = &scope.app.cfg;
    let bytes = crate::export::summary_xlsx(&scope.app.store, cfg).await?;
    let name = format!("{}评审表.xlsx", cfg.campaign.name);
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&super::reply::content_disposition(
        &name,
        "review-sheet.xlsx",
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(secure(r))
}

/// The file name a browser sent, without any folders, kept short.
fn clean_file_name(sent: Option<&str>) -> String {
    let name = sent
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim();
    let name: String = crate::attach::display_text(name)
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    if name.is_empty() {
        "评审表.xlsx".to_string()
    } else {
        name
    }
}

fn too_large() -> String {
    format!(
        "上传的文件超过 {} MB，看板不接收：请只上传填好评审等级和资助金额的汇总表（删去多余的工作表和图片后再上传）。",
        MAX_UPLOAD >> 20
    )
}

/// What went wrong reading the upload form, in Chinese.
fn form_problem(e: &axum::extract::multipart::MultipartError) -> (StatusCode, String) {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        (StatusCode::PAYLOAD_TOO_LARGE, too_large())
    } else {
        (
            StatusCode::BAD_REQUEST,
            "上传没有完成（表单数据不完整）：请在评审页重新选择文件后点“上传并检查”。".to_string(),
        )
    }
}

/// `POST /review/upload`: the sheet is checked like `review import` does and previewed, or
/// its errors are listed; nothing is imported yet. The CSRF token is the form's first field
/// and is checked before the file is read.
async fn upload(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, Failure> {
    // Who may upload is known from the session alone: a reviewer's file is never read.
    let Some((_, viewer)) = board.session(&headers) else {
        return Ok(redirect("/login", &[]));
    };
    if !viewer.role.may_act() {
        return Ok(forbidden(auth::Refusal::Role));
    }
    if board.read_only {
        return Ok(forbidden(auth::Refusal::ReadOnly));
    }
    let problem = async |status: StatusCode, text: String, file_name: String| {
        let view = UploadView {
            file_name,
            problem: Some(text),
            ..Default::default()
        };
        render(&board, &viewer, Some(view), None, status).await
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD) {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, too_large(), String::new()).await;
    }
    let Ok(mut form) = form else {
        return problem(
            StatusCode::BAD_REQUEST,
            "没有收到上传的文件：请在评审页选择填好的评审表（.xlsx）后点“上传并检查”。".to_string(),
            String::new(),
        )
        .await;
    };
    let csrf = match form.next_field().await {
        Ok(Some(f)) if f.name() == Some("csrf") => f.text().await.ok(),
        Ok(_) => None,
        Err(e) => {
            let (status, text) = form_problem(&e);
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                return problem(status, text, String::new()).await;
            }
            None
        }
    };
    let session = match board.actor(&headers, csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let mut partial = false;
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        match form.next_field().await {
            Ok(None) => break,
            Ok(Some(f)) => match f.name() {
                Some("partial") => partial = f.text().await.is_ok_and(|v| !v.is_empty()),
                Some("sheet") => {
                    let name = clean_file_name(f.file_name());
                    match f.bytes().await {
                        Ok(b) => file = Some((name, b.to_vec())),
                        Err(e) => {
                            let (status, text) = form_problem(&e);
                            return problem(status, text, name).await;
                        }
                    }
                }
                _ => {}
            },
            Err(e) => {
                let (status, text) = form_problem(&e);
                return problem(status, text, String::new()).await;
            }
        }
    }
    let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "没有选择文件，或文件是空的：请选择填好评审等级和资助金额的汇总表（.xlsx）。"
                .to_string(),
            String::new(),
        )
        .await;
    };
    let now = board.now();
    let scope = board.scope(&session)?;
    let outcome = match results::check_import(&scope.app, &bytes, &file_name, partial).await {
        Ok(o) => o,
        Err(e) => match e.downcast_ref::<UnreadableSheet>() {
            Some(u) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "读不了「{}」：{}。请上传从本页下载、填好评审等级和资助金额的 .xlsx 评审表。",
                        u.file_name, u.reason
                    ),
                    file_name,
                )
                .await;
            }
            None => return Err(Failure(e)),
        },
    };
    tracing::info!(user = %session.user, file = %file_name, partial, "看板：上传评审表");
    let (view, status) = match outcome {
        ImportOutcome::Imported {
            decisions,
            ungraded,
            unrecognised,
        } => {
            let current = board
                .app
                .store
                .current_reviews()
                .await
                .map_err(anyhow::Error::from)?;
            let token = super::token()?;
            let preview = preview(&board, &token, partial, &decisions, &current, unrecognised);
            board.review_uploads.put(
                token,
                Pending {
                    user: session.user.clone(),
                    file_name: file_name.clone(),
                    bytes,
                    partial,
                    at: now,
                },
                now,
            );
            let view = UploadView {
                file_name,
                ungraded: ungraded_lines(&ungraded),
                preview: Some(preview),
                ..Default::default()
            };
            (view, StatusCode::OK)
        }
        other => (refused(file_name, other), StatusCode::UNPROCESSABLE_ENTITY),
    };
    render(&board, &session, Some(view), None, status).await
}

fn ungraded_lines(u: &[Ungraded]) -> Vec<String> {
    u.iter().map(|u| u.to_string()).collect()
}

/// An import that stored nothing: its errors, or the branches it would leave ungraded.
fn refused(file_name: String, outcome: ImportOutcome) -> UploadView {
    match outcome {
        ImportOutcome::Invalid { errors, ungraded } => UploadView {
            file_name,
            errors: errors.iter().map(ErrorLine::from).collect(),
            ungraded: ungraded_lines(&ungraded),
            ..Default::default()
        },
        ImportOutcome::Incomplete { ungraded, .. } => UploadView {
            file_name,
            ungraded: ungraded_lines(&ungraded),
            incomplete: true,
            ..Default::default()
        },
        ImportOutcome::Imported { .. } => UploadView {
            file_name,
            ..Default::default()
        },
    }
}

fn preview(
    board: &Board,
    token: &str,
    partial: bool,
    decisions: &[Decision],
    current: &[review::CurrentReview],
    unrecognised: Vec<review::BlankRow>,
) -> Preview {
    let rows: Vec<PreviewRow> = decisions
        .iter()
        .map(|d| PreviewRow {
            row: d.row,
            branch: d.branch.clone(),
            college: board
                .app
                .roster
                .get(&d.branch)
                .map(|b| b.college.clone())
                .unwrap_or_default(),
            result: review::result_text(&d.level, d.amount_yuan, d.funded),
            funded: d.funded,
            change: review::change(d, current),
        })
        .collect();
    let count = |k: fn(&Change) -> bool| rows.iter().filter(|r| k(&r.change)).count();
    Preview {
        token: token.to_string(),
        partial,
        new: count(|c| *c == Change::New),
        same: count(|c| *c == Change::Same),
        changed: count(|c| matches!(c, Change::Changed { .. })),
        funded: rows.iter().filter(|r| r.funded).count(),
        decisions: rows,
        unrecognised: unrecognised
            .iter()
            .map(|r| format!("第 {} 行「{}」", r.row, r.branch))
            .collect(),
    }
}

#[derive(serde::Deserialize, Default)]
struct ConfirmForm {
    csrf: Option<String>,
    token: Option<String>,
}

/// `POST /review/confirm`: imports the previewed sheet as `review import` does (checked again:
/// the applications may have changed since the preview).
async fn confirm(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    form: Result<Form<ConfirmForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.unwrap_or_default();
    let session = match board.actor(&headers, form.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let now = board.now();
    let Some(pending) = board.review_uploads.take(
        form.token.as_deref().unwrap_or_default(),
        &session.user,
        now,
    ) else {
        let view = UploadView {
            problem: Some(format!(
                "这份评审表的预览已过期（保留 {} 分钟）或已经导入过：请重新上传评审表，检查预览后再确认导入。",
                KEEP.num_minutes()
            )),
            ..Default::default()
        };
        return render(&board, &session, Some(view), None, StatusCode::CONFLICT).await;
    };
    let outcome = results::import_bytes(
        &board.app,
        &pending.bytes,
        &pending.file_name,
        &session.user,
        now,
        pending.partial,
    )
    .await?;
    match outcome {
        ImportOutcome::Imported {
            decisions,
            ungraded,
            ..
        } => {
            tracing::info!(user = %session.user, file = %pending.file_name, decisions = decisions.len(), "看板：导入评审结果");
            let funded = decisions.iter().filter(|d| d.funded).count();
            Ok(redirect(
                &format!(
                    "/review?imported={}&funded={funded}&left={}",
                    decisions.len(),
                    ungraded.len()
                ),
                &[],
            ))
        }
        other => {
            let view = refused(pending.file_name, other);
            render(
                &board,
                &session,
                Some(view),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /review/notify`: the result mails not sent yet go into the outbox, as `review notify`
/// queues them (the ledger keeps each result to one mail, so a second click queues nothing);
/// the daemon's sender sends them.
async fn notify(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.unwrap_or_default();
    let session = match board.actor(&headers, form.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let scope = board.scope(&session)?;
    let app = &scope.app;
    if let Some(why) = app.cfg.smtp.missing_password() {
        return render(
            &board,
            &session,
            None,
            Some(format!("没有发送：{why}")),
            StatusCode::CONFLICT,
        )
        .await;
    }
    let now = board.now();
    let plan = results::plan_results(app, now).await?;
    let ids = crate::schedule::remind::commit_ids(app, &plan.planned, now).await?;
    tracing::info!(user = %session.user, queued = ids.len(), "看板：评审结果放入发件箱");
    Ok(redirect(&format!("/review?queued={}", ids.len()), &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_named_safely() {
        let h =
            super::super::reply::content_disposition("2025年\"评审\"表.xlsx", "review-sheet.xlsx");
        assert!(h.starts_with("attachment; filename=\"2025_"), "{h}");
        assert!(h.contains("filename*=UTF-8''2025%E5%B9%B4%22"), "{h}");
        assert!(!h.contains("\"评审\""), "{h}");
        let h = super::super::reply::content_disposition("评审表.xlsx", "review-sheet.xlsx");
        assert!(
            h.starts_with("attachment; filename=\"review-sheet.xlsx\";"),
            "{h}"
        );
        let h = super::super::reply::content_disposition("a\r\nSet-Cookie: x.xlsx", "f.xlsx");
        assert!(!h.contains('\r') && !h.contains('\n'), "{h}");
    }

    #[test]
    fn uploaded_names_lose_their_folders() {
        assert_eq!(
            clean_file_name(Some("C:\\Users\\王\\评审表.xlsx")),
            "评审表.xlsx"
        );
        assert_eq!(clean_file_name(Some("../../etc/x.xlsx")), "x.xlsx");
        assert_eq!(clean_file_name(None), "评审表.xlsx");
        assert_eq!(clean_file_name(Some("a\u{7}b.xlsx")), "ab.xlsx");
    }

    #[test]
    fn uploads_wait_for_their_uploader_only_and_not_long() {
        let u = Uploads::default();
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("t");
        let pending = |user: &str| Pending {
            user: user.into(),
            file_name: "x.xlsx".into(),
            bytes: vec![1],
            partial: false,
            at: t0,
        };
        u.put("a".into(), pending("王老师"), t0);
        assert!(u.take("a", "张老师", t0).is_none(), "someone else's");
        assert!(u.take("a", "王老师", t0).is_some());
        assert!(u.take("a", "王老师", t0).is_none(), "taken once");
        u.put("b".into(), pending("王老师"), t0);
        u.put("c".into(), pending("王老师"), t0);
        assert!(
            u.take("b", "王老师", t0).is_none(),
            "replaced by the next upload"
        );
        assert!(u.take("c", "王老师", t0 + KEEP).is_none(), "expired");
    }

    #[test]
    fn notes_after_an_action() {
        let n = Notes {
            imported: Some(4),
            funded: Some(3),
            left: Some(0),
            queued: None,
        };
        let t = n.text().expect("note");
        assert!(
            t.starts_with("已导入 4 条评审结果（立项 3 个，未立项 1 个）。"),
            "{t}"
        );
        let n = Notes {
            queued: Some(0),
            ..Default::default()
        };
        assert!(
            n.text()
                .expect("note")
                .starts_with("没有需要发送的评审结果")
        );
        assert_eq!(Notes::default().text(), None);
    }

    #[test]
    fn the_page_renders_and_escapes_what_came_from_sheets_and_mails() {
        let env = super::super::templates();
        let evil = r#"<script>alert(1)</script>"onmouseover="#;
        let render = |can_act: bool, upload: UploadView| {
            env.get_template("review.html")
                .and_then(|t| {
                    t.render(minijinja::context! {
                        title => "评审", css => "", campaign => evil, user => "王老师",
                        role => "工作人员", csrf => "tok", page => "review",
                        can_act => can_act, note => evil, upload => upload,
                        levels => review::level_counts(&review::default_levels(), &[]),
                        rows => vec![ResultRow { college: evil.into(), branch: evil.into(),
                            level: "重点".into(), funded: true, result: "重点，5000 元".into() }],
                        reviewed => 1, applied => 2, ungraded => 1,
                        mails => vec![MailRow { branch: evil.into(), to: evil.into(),
                            subject: evil.into(), text: evil.into() }],
                        to_record => 1,
                        not_notified => vec![NotNotified { branch: evil.into(), reason: evil.into() }],
                        max_mb => 10,
                    })
                })
                .expect("render")
        };
        let errors = UploadView {
            file_name: evil.into(),
            errors: vec![ErrorLine {
                row: 5,
                column: "评审等级".into(),
                message: evil.into(),
            }],
            ungraded: vec![evil.into()],
            ..Default::default()
        };
        let out = render(true, errors);
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains(r#""onmouseover"#), "{out}");
        assert!(
            out.contains("第 5 行「评审等级」列：&lt;script&gt;"),
            "{out}"
        );
        assert!(out.contains(r#"enctype="multipart/form-data""#), "{out}");
        assert!(out.contains(r#"action="/review/notify""#), "{out}");
        let preview = UploadView {
            file_name: "好.xlsx".into(),
            preview: Some(Preview {
                token: "t0k".into(),
                partial: false,
                decisions: vec![PreviewRow {
                    row: 3,
                    branch: evil.into(),
                    college: evil.into(),
                    result: "特色，3000 元".into(),
                    funded: true,
                    change: Change::Changed { from: evil.into() },
                }],
                new: 0,
                changed: 1,
                same: 0,
                funded: 1,
                unrecognised: vec![evil.into()],
            }),
            ..Default::default()
        };
        let out = render(true, preview);
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains(r#"name="token" value="t0k""#), "{out}");
        assert!(out.contains("新增 0，变更 1，不变 0"), "{out}");
        // A reviewer sees the results and the sheet, and no form that changes anything.
        let out = render(false, UploadView::default());
        for action in ["/review/upload", "/review/confirm", "/review/notify"] {
            assert!(!out.contains(action), "{action}: {out}");
        }
        assert!(out.contains(r#"href="/review/sheet.xlsx""#), "{out}");
    }
}
