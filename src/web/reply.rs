//! How the board answers: the security headers every response carries, HTML pages,
//! redirects with cookies, the Chinese error pages. Plain helpers shared by the page modules.

use super::{auth, chart};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The headers every page carries: no caching, no framing, nothing loaded from elsewhere
/// (scripts only from this origin, no inline script; the live updates connect back here).
pub(super) fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) fn html(status: StatusCode, body: String) -> Response {
    secure((status, axum::response::Html(body)).into_response())
}

pub(super) fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    secure(r)
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: the whole site, never readable by script, never sent from another
/// site, and only over TLS when `secure`.
pub(super) fn cookie_line(name: &str, value: &str, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A failure while serving a page: logged, and shown in Chinese.
pub(super) struct Failure(pub(super) anyhow::Error);

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::error!(error = %format!("{:#}", self.0), "看板页面出错");
        html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>出错了</title><p>看板读取数据时出错：{}。请查看 shenbao 的日志（journalctl -u shenbao），稍后刷新重试。</p>",
                chart::esc(&format!("{:#}", self.0))
            ),
        )
    }
}

pub(super) async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "<!doctype html><meta charset=\"utf-8\"><title>没有这个页面</title><p>没有这个页面。<a href=\"/\">回到总览</a></p>".to_string(),
    )
}

pub(super) fn forbidden(refusal: auth::Refusal) -> Response {
    html(
        StatusCode::FORBIDDEN,
        format!(
            "<!doctype html><meta charset=\"utf-8\"><title>不能执行</title><p>{}</p><p><a href=\"/\">回到总览</a></p>",
            refusal.text()
        ),
    )
}
