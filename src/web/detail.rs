//! 支部详情: one roster branch — its college, 板块, contact and state, every version it sent
//! (newest first) with the fields read from it, its problems and its files (downloaded by
//! id), and the mails shenbao sent it with their delivery state. `GET /attachment/{id}`
//! streams a stored file.

use super::reply::{Failure, content_disposition, html, secure};
use super::{Board, board};
use crate::attach::{Format, Role};
use crate::export::ExportSubmission;
use crate::notify::compose::{OutboxKind, size_label};
use crate::pipeline::decide::Disposition;
use crate::store::OutboxEntry;
use crate::store::attachments::AttachmentRow;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub(super) const TEMPLATES: &[(&str, &str)] = &[
    ("detail.html", include_str!("templates/detail.html")),
    (
        "detail_missing.html",
        include_str!("templates/detail_missing.html"),
    ),
];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/branch", get(branch))
        .route("/attachment/{id}", get(attachment))
}

#[derive(serde::Deserialize, Default)]
struct BranchQuery {
    name: Option<String>,
}

/// One version as the page shows it.
#[derive(serde::Serialize)]
struct VersionView {
    /// The fragment that links to it (`application-2`).
    anchor: String,
    kind: &'static str,
    version: i64,
    versions: i64,
    /// The latest of its kind: the one that counts.
    latest: bool,
    received_at: String,
    /// The export's RFC 3339 time (Beijing, fixed width): sorts in time order.
    #[serde(skip)]
    received_at_sort: String,
    sender: String,
    subject: String,
    disposition: String,
    late: bool,
    sender_changed: bool,
    /// Filed under the name as the subject wrote it, not (yet) under this branch.
    unmatched: Option<String>,
    /// The roster branch the form names, for a version not recognised.
    suggested: Option<String>,
    fields: Vec<(&'static str, String)>,
    fields_source: Option<&'static str>,
    problems: Vec<String>,
    files: Vec<FileView>,
}

/// One stored file of a version.
#[derive(serde::Serialize)]
struct FileView {
    id: i64,
    name: String,
    role: &'static str,
    format: &'static str,
    size: String,
    /// Inside the zip listed before it.
    entry: bool,
    error: Option<String>,
}

/// One mail shenbao sent about the branch.
#[derive(serde::Serialize)]
struct MailView {
    id: i64,
    kind: String,
    subject: String,
    to: String,
    created_at: String,
    sent_at: Option<String>,
    state: &'static str,
    state_label: &'static str,
    attempts: i64,
    next_attempt_at: Option<String>,
    last_error: Option<String>,
}

async fn branch(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    query: Result<Query<BranchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Query(q) = query.unwrap_or_default();
    let asked = q.name.unwrap_or_default();
    let scope = board.scope(&session)?;
    let app = &scope.app;
    let Some(b) = app.roster.get(asked.trim()).cloned() else {
        let text = if asked.trim().is_empty() {
            "没有指定支部。请从支部列表中选择一个支部。".to_string()
        } else {
            format!("名册中没有“{asked}”这个支部。请回到支部列表，用搜索找到它。")
        };
        return missing(&board, &session, &text);
    };
    let history = crate::export::history_with_files(&app.store, &b.name).await?;
    let latest = board::latest_application(history.iter().map(|(s, _)| s), &b.name);
    let state = board::state_of(latest);
    let section = latest
        .and_then(|s| s.fields.as_ref()?.get("section")?.as_str())
        .map(str::to_string);
    let mut versions: Vec<VersionView> = history
        .iter()
        .map(|(s, files)| version_view(s, files))
        .collect();
    // Newest first: by arrival, then by version number.
    versions
        .sort_by(|a, b| (&b.received_at_sort, b.version).cmp(&(&a.received_at_sort, a.version)));
    let mails: Vec<MailView> = app
        .store
        .outbox_for_branch(&b.name)
        .await
        .map_err(anyhow::Error::from)?
        .iter()
        .map(mail_view)
        .collect();
    let unreachable = app
        .roster
        .unreachable_row(&b.name)
        .map(|u| u.why.label().to_string());
    let body = board.render(
        "detail.html",
        Some(&session),
        "branches",
        minijinja::context! {
            title => b.name.clone(),
            branch => &b,
            state => state,
            state_label => state.label(),
            section => section,
            unreachable => unreachable,
            versions => versions,
            mails => mails,
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

/// `2025-09-26T08:40:43+08:00` (the export's Beijing time) as people read it.
fn readable(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| crate::clock::beijing(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn version_view(s: &ExportSubmission, files: &[AttachmentRow]) -> VersionView {
    let kind = s
        .kind
        .parse::<Disposition>()
        .map_or("申报", Disposition::label);
    let mut disposition = format!("登记为{kind}第 {} 版", s.version);
    if s.version == s.versions {
        disposition.push_str("（最新一版）");
    } else {
        disposition.push_str(&format!("（共 {} 版，已被后来的版本取代）", s.versions));
    }
    VersionView {
        anchor: format!("{}-{}", s.kind, s.version),
        kind,
        version: s.version,
        versions: s.versions,
        latest: s.version == s.versions,
        received_at: readable(&s.received_at),
        received_at_sort: s.received_at.clone(),
        sender: s.sender.clone(),
        subject: s.subject.clone().unwrap_or_default(),
        disposition,
        late: s.late,
        sender_changed: s.sender_changed,
        unmatched: s
            .branch
            .is_none()
            .then(|| s.branch_in_subject.clone().unwrap_or_default()),
        suggested: s.suggested_branch.clone(),
        fields: board::field_rows(s.fields.as_ref()),
        fields_source: match s.fields_source.as_deref() {
            Some("form") => Some("项目申请表"),
            Some("summary") => Some("申报汇总表"),
            _ => None,
        },
        problems: board::problem_lines(&s.problems, &s.problem_details),
        files: file_views(files),
    }
}

/// The files of a version: each of the mail's own, with a zip's entries after it.
fn file_views(rows: &[AttachmentRow]) -> Vec<FileView> {
    let view = |r: &AttachmentRow| FileView {
        id: r.id,
        name: crate::attach::display_name(&r.filename),
        role: Role::parse(&r.role).label(),
        format: r.format.parse::<Format>().map_or("其他格式", Format::label),
        size: size_label(usize::try_from(r.size).unwrap_or(0)),
        entry: r.parent.is_some(),
        error: r.error.clone(),
    };
    let mut out = Vec::with_capacity(rows.len());
    for top in rows.iter().filter(|r| r.parent.is_none()) {
        out.push(view(top));
        out.extend(rows.iter().filter(|r| r.parent == Some(top.id)).map(view));
    }
    out
}

fn mail_view(e: &OutboxEntry) -> MailView {
    let (state, state_label) = board::delivery(&e.status, e.attempts);
    MailView {
        id: e.id,
        kind: e
            .kind
            .parse::<OutboxKind>()
            .map_or_else(|_| e.kind.clone(), |k| k.label().to_string()),
        subject: crate::attach::display_text(&e.subject),
        to: e.to_addr.clone(),
        created_at: e.created_at.map(crate::clock::beijing).unwrap_or_default(),
        sent_at: e.sent_at.map(crate::clock::beijing),
        state,
        state_label,
        attempts: e.attempts,
        next_attempt_at: (state == "retrying")
            .then_some(e.next_attempt_at)
            .flatten()
            .map(crate::clock::beijing),
        last_error: e
            .last_error
            .as_deref()
            .map(crate::attach::display_text)
            .filter(|t| !t.is_empty()),
    }
}

/// The page for a branch or a file that is not there: 404, with the way back.
fn missing(board: &Board, session: &super::auth::Session, text: &str) -> Result<Response, Failure> {
    let body = board.render(
        "detail_missing.html",
        Some(session),
        "branches",
        minijinja::context! { title => "找不到", text => text },
    )?;
    Ok(html(StatusCode::NOT_FOUND, body))
}

/// The MIME type a download is sent with: the Office type for the formats staff open,
/// otherwise bytes (the browser saves them; `nosniff` keeps it from guessing).
fn content_type(format: &str) -> &'static str {
    match format.parse::<Format>() {
        Ok(Format::Docx) => {
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        }
        Ok(Format::Doc) => "application/msword",
        Ok(Format::Xlsx) => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Ok(Format::Xls) => "application/vnd.ms-excel",
        Ok(Format::Pdf) => "application/pdf",
        Ok(Format::Zip) => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Bytes of a download per read.
const CHUNK: usize = 64 * 1024;

async fn attachment(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let gone = "没有这个附件。请回到支部详情页，从附件列表下载。";
    let Ok(id) = id.parse::<i64>() else {
        return missing(&board, &session, gone);
    };
    let Some(row) = board
        .app
        .store
        .attachment(id)
        .await
        .map_err(anyhow::Error::from)?
    else {
        return missing(&board, &session, gone);
    };
    let blobs = board.app.store.blobs.clone();
    let sha = row.sha256.clone();
    let opened = tokio::task::spawn_blocking(move || blobs.open(&sha))
        .await
        .map_err(|e| Failure(anyhow::Error::new(e)))?;
    let (file, len) = match opened {
        Ok(o) => (o.file, o.len),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(attachment = id, sha256 = %row.sha256, "附件文件不在数据目录中");
            return missing(
                &board,
                &session,
                "这个附件的文件不在数据目录中（可能被移走或删除了）。请检查 shenbao 数据目录下的 blobs 文件夹，或请支部重新发送。",
            );
        }
        Err(e) => return Err(Failure(anyhow::Error::new(e).context("读取附件文件"))),
    };
    // Exactly the blob's bytes: a packed blob's file goes on with other blobs.
    let body = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
    let stream = futures::stream::unfold(Some(body), |f| async move {
        use tokio::io::AsyncReadExt as _;
        let mut f = f?;
        let mut buf = vec![0u8; CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(f)))
            }
            // The error ends the body; nothing more is read.
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut r = axum::body::Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&row.format)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let name = crate::attach::display_name(&row.filename);
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&name, "attachment")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    tracing::info!(attachment = id, user = %session.user, "看板下载附件");
    Ok(secure(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_files_go_with_their_type_and_the_rest_as_bytes() {
        assert_eq!(
            content_type("docx"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(content_type("doc"), "application/msword");
        assert_eq!(content_type("xls"), "application/vnd.ms-excel");
        assert_eq!(content_type("zip"), "application/zip");
        for other in ["image", "word_xml", "other", "", "<script>"] {
            assert_eq!(content_type(other), "application/octet-stream", "{other}");
        }
    }

    fn row(id: i64, parent: Option<i64>, name: &str) -> AttachmentRow {
        AttachmentRow {
            id,
            parent,
            filename: name.into(),
            role: "form".into(),
            format: "docx".into(),
            declared_format: Some("docx".into()),
            size: 38764,
            sha256: "x".into(),
            error: None,
        }
    }

    #[test]
    fn zip_entries_follow_their_zip() {
        let rows = [
            row(1, None, "a.zip"),
            row(2, None, "b.docx"),
            row(3, Some(1), "dir/inner.docx"),
        ];
        let v = file_views(&rows);
        let got: Vec<(i64, bool, &str)> =
            v.iter().map(|f| (f.id, f.entry, f.name.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, false, "a.zip"),
                (3, true, "inner.docx"),
                (2, false, "b.docx")
            ]
        );
        assert_eq!(v[0].role, "项目申请表");
        assert_eq!(v[0].format, "Word 文档");
        assert_eq!(v[0].size, "37.9 KB");
    }

    #[test]
    fn times_read_in_beijing() {
        assert_eq!(
            readable("2025-09-26T08:40:43+08:00"),
            "2025年9月26日 08:40:43"
        );
        assert_eq!(readable("garbled"), "garbled");
    }

    #[test]
    fn the_page_escapes_what_came_from_mail_and_links_files_by_id() {
        let env = super::super::templates();
        let evil = r#"<script>alert(1)</script>"onmouseover="#;
        let version = VersionView {
            anchor: "application-2".into(),
            kind: "申报",
            version: 2,
            versions: 2,
            latest: true,
            received_at: "2025年9月26日 08:40:43".into(),
            received_at_sort: String::new(),
            sender: evil.into(),
            subject: evil.into(),
            disposition: "登记为申报第 2 版（最新一版）".into(),
            late: true,
            sender_changed: true,
            unmatched: Some(evil.into()),
            suggested: Some(evil.into()),
            fields: vec![("项目名称", evil.into())],
            fields_source: Some("项目申请表"),
            problems: vec![evil.into()],
            files: vec![FileView {
                id: 42,
                name: evil.into(),
                role: "项目申请表",
                format: "Word 文档",
                size: "1.0 KB".into(),
                entry: true,
                error: Some(evil.into()),
            }],
        };
        let mail = MailView {
            id: 7,
            kind: "回执".into(),
            subject: evil.into(),
            to: evil.into(),
            created_at: "2025年9月26日 08:41:00".into(),
            sent_at: None,
            state: "dead",
            state_label: "发送失败，已放弃",
            attempts: 5,
            next_attempt_at: None,
            last_error: Some(evil.into()),
        };
        let branch = crate::campaign::roster::Branch {
            college: evil.into(),
            name: evil.into(),
            secretary: evil.into(),
            email: evil.into(),
        };
        let out = env
            .get_template("detail.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title => evil, css => "", campaign => evil, user => evil, role => "评审专家",
                    csrf => "tok", page => "branches", branch => branch,
                    state => board::State::Problems, state_label => "有问题", section => evil,
                    unreachable => Option::<String>::None,
                    versions => vec![version], mails => vec![mail],
                })
            })
            .expect("render");
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains(r#""onmouseover"#), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(
            out.contains(r#"<a href="/attachment/42" download>"#),
            "{out}"
        );
        assert!(out.contains("发送失败，已放弃"), "{out}");
        assert!(
            out.contains(r#"<span class="state Problems">有问题</span>"#),
            "{out}"
        );
        let missing = env
            .get_template("detail_missing.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title => "找不到", css => "", campaign => "c", user => "u", role => "r",
                    csrf => "tok", page => "branches", text => evil,
                })
            })
            .expect("render");
        assert!(!missing.contains("<script>"), "{missing}");
        assert!(missing.contains(r#"<a href="/branches">回到支部列表</a>"#));
    }
}
