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

/// The `Content-Disposition` of a download named `filename` (a name that came from a mail):
/// `attachment`, an ASCII `filename="…"` for old clients and the name itself as RFC 5987's
/// `filename*=UTF-8''…`, percent-encoded. Control characters (CR, LF, NUL …) are dropped
/// and path separators become `_` in both, so nothing in the name can end the header, add
/// another, or name a directory; the fallback keeps letters, digits and `-_.()+ ` and puts
/// one `_` for each run of anything else. When no ASCII letter or digit is left of the
/// name's stem, `stand_in` takes its place (with the name's extension, unless `stand_in`
/// has one).
///
/// The one place downloads are named: attachments, raw mail, the review sheet and the
/// materials zips all go through it.
pub(super) fn content_disposition(filename: &str, stand_in: &str) -> String {
    let name: String = filename
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    let name = name.trim();
    let mut fallback = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || "-_.()+ ".contains(c) {
            fallback.push(c);
        } else if !fallback.ends_with('_') {
            fallback.push('_');
        }
    }
    let fallback = fallback.trim_matches(|c: char| c == ' ' || c == '.');
    let (stem, ext) = match fallback.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
            (stem, Some(ext))
        }
        _ => (fallback, None),
    };
    let fallback = if stem.chars().any(|c| c.is_ascii_alphanumeric()) {
        match ext {
            Some(ext) => format!("{stem}.{ext}"),
            None => stem.to_string(),
        }
    } else {
        // Ours, but kept to the same characters all the same.
        let own: String = stand_in
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        let own = if own.trim_matches(['.', '_', '-']).is_empty() {
            "download".to_string()
        } else {
            own
        };
        match ext {
            Some(ext) if !own.contains('.') => format!("{own}.{ext}"),
            _ => own,
        }
    };
    let mut encoded = String::new();
    for b in name.bytes() {
        // RFC 5987 attr-char: sent as it is; every other byte percent-encoded.
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    if encoded.is_empty() {
        encoded = fallback.clone();
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_header(v: &str) {
        assert!(HeaderValue::from_str(v).is_ok(), "{v}");
        assert!(v.is_ascii(), "{v}");
        assert!(!v.contains(['\r', '\n', '\0']), "{v}");
        // Exactly the two quotes around the fallback.
        assert_eq!(v.matches('"').count(), 2, "{v}");
    }

    #[test]
    fn chinese_names_are_percent_encoded_with_an_ascii_fallback() {
        let v = content_disposition("海洋支部2022级-项目申请表.docx", "attachment");
        valid_header(&v);
        assert_eq!(
            v,
            "attachment; filename=\"_2022_-_.docx\"; filename*=UTF-8''%E6%B5%B7%E6%B4%8B%E6%94%AF%E9%83%A82022%E7%BA%A7-%E9%A1%B9%E7%9B%AE%E7%94%B3%E8%AF%B7%E8%A1%A8.docx"
        );
        let v = content_disposition("申请表.docx", "attachment");
        assert!(
            v.starts_with("attachment; filename=\"attachment.docx\"; "),
            "{v}"
        );
        assert_eq!(
            content_disposition("plan v2 (final).xlsx", "attachment"),
            "attachment; filename=\"plan v2 (final).xlsx\"; filename*=UTF-8''plan%20v2%20%28final%29.xlsx"
        );
    }

    #[test]
    fn quotes_line_breaks_nul_and_slashes_cannot_escape() {
        for evil in [
            "a\".docx",
            "a\"; filename=\"evil.exe",
            "a.docx\r\nSet-Cookie: x=1",
            "a\nb.docx",
            "a\0b.docx",
            "../../etc/passwd",
            "..\\..\\boot.ini",
            "%2e%2e%2fx.docx",
            "\"",
            "",
            "   ",
            "；,;\\",
        ] {
            let v = content_disposition(evil, "attachment");
            valid_header(&v);
            let (fallback, encoded) = v.split_once("; filename*=UTF-8''").expect("both parts");
            assert!(
                !fallback["attachment; filename=\"".len()..]
                    .trim_end_matches('"')
                    .contains(['/', '\\', '"', ';']),
                "{v}"
            );
            assert!(!encoded.contains(['/', '\\', '"', ';', ' ']), "{v}");
            assert!(
                !encoded.contains("%0D") && !encoded.contains("%0A") && !encoded.contains("%00"),
                "{v}"
            );
            assert!(!encoded.contains("%2F") && !encoded.contains("%5C"), "{v}");
        }
        assert_eq!(
            content_disposition("a.docx\r\nSet-Cookie: x=1", "attachment"),
            "attachment; filename=\"a.docxSet-Cookie_ x_1\"; filename*=UTF-8''a.docxSet-Cookie%3A%20x%3D1"
        );
        assert!(
            content_disposition("../../etc/passwd", "attachment")
                .starts_with("attachment; filename=\"_.._etc_passwd\"")
        );
        assert!(
            content_disposition("", "attachment")
                .starts_with("attachment; filename=\"attachment\"; filename*=UTF-8''attachment")
        );
        // A literal percent is encoded, so the name does not decode to something else.
        assert!(
            content_disposition("%2e%2e%2fx.docx", "attachment")
                .ends_with("''%252e%252e%252fx.docx")
        );
    }
}
