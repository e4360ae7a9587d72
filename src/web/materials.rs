//! 材料: the reviewers' materials as a zip — every branch, one college or one section — with
//! the 汇总表 inside. The very export `shenbao export --materials` makes
//! ([`crate::export::materials::export`]): the same selection, layout, safe names and sheet.
//!
//! The zip is written into a private directory (0700, file 0600) under the data directory
//! (the system's temporary directory when that one cannot be written, as under a read-only
//! `shenbao web`), opened, and unlinked at once: the open file is streamed back in chunks
//! and its bytes go when the download ends or is cut off, and nothing is held in memory.
//! Reviewers may download too: they need the forms.

use super::reply::{Failure, html, secure};
use super::{Board, token};
use crate::export::materials::{self, Filter, MaterialsError};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt as _;

pub(super) const TEMPLATES: &[(&str, &str)] =
    &[("materials.html", include_str!("templates/materials.html"))];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/materials", get(page))
        .route("/materials.zip", get(download))
}

/// How many zips are made at once; further downloads wait their turn.
static GENERATING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

#[derive(serde::Deserialize, Default)]
struct Choice {
    college: Option<String>,
    section: Option<String>,
}

async fn page(State(board): State<Arc<Board>>, headers: HeaderMap) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    listing(&board, &session, StatusCode::OK, None).await
}

/// The page: each college and section with how many branches its zip holds; `notice` on top
/// (why a download was refused).
async fn listing(
    board: &Board,
    session: &super::auth::Session,
    status: StatusCode,
    notice: Option<String>,
) -> Result<Response, Failure> {
    let scope = board.scope(session)?;
    let tally = materials::tally(&scope.app).await?;
    let body = board.render(
        "materials.html",
        Some(session),
        "materials",
        minijinja::context! {
            title => "材料",
            notice => notice,
            tally => tally,
            summary => materials::SUMMARY_NAME,
        },
    )?;
    Ok(html(status, body))
}

async fn download(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    query: Result<Query<Choice>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let session = match board.viewer(&headers) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let Query(q) = query.unwrap_or_default();
    let given = Filter {
        college: q.college.filter(|c| !c.trim().is_empty()),
        section: q.section.filter(|s| !s.trim().is_empty()),
    };
    let scope = board.scope(&session)?;
    let filter = match materials::resolve(&scope.app, &given) {
        Ok(f) => f,
        Err(e) => {
            return listing(&board, &session, StatusCode::NOT_FOUND, Some(refusal(&e))).await;
        }
    };
    // A few at a time: each one reads every file it packs and writes a copy.
    let _turn = GENERATING
        .acquire()
        .await
        .map_err(|e| anyhow::anyhow!("等待生成压缩包时出错：{e}"))?;
    let dir = PrivateDir::new(&board.app.cfg.data_dir)?;
    let out = dir.0.join("materials.zip");
    let done = materials::export(&scope.app, &filter, &out).await?;
    if !done.written.damaged.is_empty() {
        tracing::warn!(
            damaged = %done.written.damaged.join("；"),
            "评审材料压缩包缺少存档缺失或损坏的文件（请从备份恢复数据目录下的 blobs）"
        );
    }
    let file = tokio::fs::File::open(&out)
        .await
        .map_err(|e| anyhow::anyhow!("打开生成的压缩包失败：{e}"))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| anyhow::anyhow!("读取生成的压缩包失败：{e}"))?
        .len();
    // The open file keeps its bytes until the download ends; its name goes now.
    drop(dir);
    tracing::info!(
        user = %session.user,
        filter = %done.described,
        branches = done.layout.branches,
        files = done.written.files,
        bytes = len,
        "看板下载评审材料"
    );
    let (name, fallback) = zip_name(&filter);
    let mut r = Response::new(Body::from_stream(chunks(file)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_DISPOSITION, attachment(&name, &fallback));
    Ok(secure(r))
}

/// Why a college or section cannot be downloaded, and what to pick instead.
fn refusal(e: &MaterialsError) -> String {
    match e {
        MaterialsError::UnknownCollege { given, .. } => {
            format!("名册中没有学院「{given}」：请在下面的“按学院”中选一个学院下载。")
        }
        MaterialsError::UnknownSection { given, .. } => {
            format!("配置中没有申报板块「{given}」：请在下面的“按板块”中选一个板块下载。")
        }
        MaterialsError::Ambiguous { given, matches, .. } => {
            format!("「{given}」可以指 {matches}：请在下面的列表中选其中一个下载。")
        }
        other => format!("{other}"),
    }
}

/// The zip's name (for `filename*`) and its ASCII stand-in (for `filename`).
fn zip_name(f: &Filter) -> (String, String) {
    let (what, fallback) = match (&f.college, &f.section) {
        (Some(c), Some(s)) => (format!("-{c}-{s}"), "materials-selection.zip"),
        (Some(c), None) => (format!("-{c}"), "materials-college.zip"),
        (None, Some(s)) => (format!("-{s}"), "materials-section.zip"),
        (None, None) => (String::new(), "materials.zip"),
    };
    (format!("评审材料{what}.zip"), fallback.to_string())
}

/// The zip's `Content-Disposition` ([`super::reply::content_disposition`]).
pub(super) fn attachment(name: &str, fallback: &str) -> HeaderValue {
    HeaderValue::from_str(&super::reply::content_disposition(name, fallback))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// A new directory only this process's user can enter, removed with everything in it when
/// dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new(data_dir: &Path) -> anyhow::Result<PrivateDir> {
        let name = format!(".board-download-{}", token()?);
        let mut last = None;
        for base in [data_dir.to_path_buf(), std::env::temp_dir()] {
            let dir = base.join(&name);
            let mut b = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, crate::fsmode::DIR_MODE);
            // Not recursive: fails when the name exists, so nothing is reused or followed.
            match b.create(&dir) {
                Ok(()) => return Ok(PrivateDir(dir)),
                Err(e) => last = Some((dir, e)),
            }
        }
        let (dir, e) = last.unwrap_or_else(|| (PathBuf::new(), std::io::ErrorKind::Other.into()));
        Err(anyhow::anyhow!(
            "无法创建临时目录 {}（{e}）：请确认数据目录可写、磁盘空间足够",
            dir.display()
        ))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.0.display(), error = %e, "删除下载用的临时目录失败");
        }
    }
}

/// The file's bytes, 64 KiB at a time; the stream ends after the first read error.
fn chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(Some(file), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_name_is_percent_encoded_with_an_ascii_fallback() {
        let h = attachment("评审材料-土木工程学院.zip", "materials-college.zip");
        assert_eq!(
            h.to_str().expect("ascii"),
            "attachment; filename=\"materials-college.zip\"; filename*=UTF-8''%E8%AF%84%E5%AE%A1%E6%9D%90%E6%96%99-%E5%9C%9F%E6%9C%A8%E5%B7%A5%E7%A8%8B%E5%AD%A6%E9%99%A2.zip"
        );
        // Quotes, line breaks, separators and paths cannot get out of the value.
        let h = attachment(
            "a\"; filename=evil.exe\r\nSet-Cookie: x=1/../b.zip",
            "x\"\r\n;y.zip",
        );
        let v = h.to_str().expect("ascii");
        let plain = v
            .strip_prefix("attachment; filename=\"")
            .and_then(|r| r.split_once("\"; filename*=UTF-8''"))
            .map(|(p, _)| p)
            .expect("both parameters");
        assert!(!plain.contains('"') && !plain.contains(';'), "{v}");
        let star = v.split("filename*=UTF-8''").nth(1).expect("filename*");
        assert!(
            star.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b)),
            "{star}"
        );
        assert!(
            !v.contains('\r') && !v.contains('\n') && !star.contains(';'),
            "{v}"
        );
        assert!(!star.contains('/') && !star.contains("%2F"), "{v}");
        assert_eq!(
            attachment("", "").to_str().expect("ascii"),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
    }

    #[test]
    fn the_page_escapes_names_and_encodes_links() {
        let evil = "<script>x</script>\"&学院";
        let out = super::super::templates()
            .get_template("materials.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title => "材料", css => "", campaign => "c", user => "u", role => "r",
                    csrf => "t", page => "materials", summary => materials::SUMMARY_NAME,
                    notice => format!("名册中没有学院「{evil}」"),
                    tally => materials::Tally {
                        all: 1,
                        colleges: vec![(evil.to_string(), 1)],
                        sections: vec![(evil.to_string(), 0)],
                    },
                })
            })
            .expect("render");
        assert!(!out.contains("<script>"), "{out}");
        assert!(
            out.contains("&lt;script&gt;x&lt;&#x2f;script&gt;&quot;&amp;学院"),
            "{out}"
        );
        assert!(
            out.contains(
                "/materials.zip?college=%3Cscript%3Ex%3C&#x2f;script%3E%22%26%E5%AD%A6%E9%99%A2"
            ),
            "{out}"
        );
    }

    #[test]
    fn zip_names_say_what_is_inside() {
        let f = |c: Option<&str>, s: Option<&str>| Filter {
            college: c.map(str::to_string),
            section: s.map(str::to_string),
        };
        assert_eq!(
            zip_name(&f(None, None)),
            ("评审材料.zip".to_string(), "materials.zip".to_string())
        );
        assert_eq!(
            zip_name(&f(Some("土木工程学院"), None)),
            (
                "评审材料-土木工程学院.zip".to_string(),
                "materials-college.zip".to_string()
            )
        );
        assert_eq!(
            zip_name(&f(None, Some("学思践悟"))).1,
            "materials-section.zip"
        );
    }

    #[test]
    fn unknown_choices_say_what_to_pick() {
        let e = MaterialsError::UnknownCollege {
            given: "<b>".into(),
            choices: String::new(),
        };
        assert!(refusal(&e).contains("请在下面的“按学院”中选一个学院下载"));
        let e = MaterialsError::UnknownSection {
            given: "x".into(),
            choices: String::new(),
        };
        assert!(refusal(&e).contains("按板块"));
    }

    #[test]
    fn a_private_dir_is_0700_and_goes_when_dropped() {
        let base = std::env::temp_dir().join(format!("shenbao-privdir-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("base");
        let d = PrivateDir::new(&base).expect("dir");
        let path = d.0.clone();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        std::fs::write(path.join("f"), b"x").expect("write");
        drop(d);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&base);
    }
}
