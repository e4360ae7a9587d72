//! Body text and the large-file links that QQ Mail and NetEase put in it.
//!
//! When a file is too big, QQ Mail (超大附件) and 163/126 (网易邮箱大附件) do not
//! attach it: they upload it and put a download link into the body. To the
//! sender it looks attached; to us the form is missing. Finding those links
//! lets the acknowledgement say exactly that instead of "no form attached".

use unicode_normalization::UnicodeNormalization;

use super::CloudLink;

/// Plain text from HTML: scripts, styles, the head and comments dropped,
/// block elements turned into line breaks, entities decoded, blank runs
/// squeezed. Linear in the input, whatever the markup.
pub(crate) fn html_to_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    while i < html.len() {
        let Some(rest) = html.get(i..) else { break };
        let lrest = lower.get(i..).unwrap_or("");
        if rest.starts_with('<') {
            if lrest.starts_with("<!--") {
                i = lrest.find("-->").map(|e| i + e + 3).unwrap_or(html.len());
                continue;
            }
            let skip_to = ["script", "style", "head", "title", "xml"]
                .iter()
                .find_map(|tag| {
                    let open = format!("<{tag}");
                    let after = lrest.get(open.len()..)?;
                    let boundary = after
                        .chars()
                        .next()
                        .is_none_or(|c| c == '>' || c.is_whitespace() || c == '/');
                    if lrest.starts_with(&open) && boundary {
                        let close = format!("</{tag}");
                        // Without a closing tag only the opening tag is skipped:
                        // losing the whole body to a stray `<head>` is worse.
                        let opening_end = lrest.find('>').map(|g| i + g + 1).unwrap_or(html.len());
                        Some(
                            lrest
                                .find(&close)
                                .and_then(|e| lrest.get(e..)?.find('>').map(|g| i + e + g + 1))
                                .unwrap_or(opening_end),
                        )
                    } else {
                        None
                    }
                });
            if let Some(next) = skip_to {
                i = next;
                continue;
            }
            let Some(gt) = lrest.find('>') else { break };
            let tag = lrest.get(1..gt).unwrap_or("");
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            match name.as_str() {
                "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                | "table" | "blockquote" | "hr" | "pre" | "ul" | "ol" => out.push('\n'),
                "td" | "th" => out.push(' '),
                _ => {}
            }
            i += gt + 1;
            continue;
        }
        if rest.starts_with('&') {
            let (text, used) = decode_entity(rest);
            out.push_str(&text);
            i += used;
            continue;
        }
        let next = rest.find(['<', '&']).unwrap_or(rest.len());
        out.push_str(rest.get(..next).unwrap_or(""));
        i += next.max(1);
    }
    tidy_text(&out)
}

/// Trim every line, squeeze spaces inside lines and blank lines between them.
pub(crate) fn tidy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.replace('\u{a0}', " ");
        let squeezed = line
            .split([' ', '\t'])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if squeezed.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(&squeezed);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Decode one entity at the start of `s` (which starts with `&`): the text
/// and the bytes consumed. Unknown entities are kept as written.
fn decode_entity(s: &str) -> (String, usize) {
    let window = s.get(..s.len().min(12)).unwrap_or(s);
    let Some(semi) = window.find(';') else {
        return ("&".to_string(), 1);
    };
    let name = s.get(1..semi).unwrap_or("");
    let decoded = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        code.and_then(char::from_u32).map(|c| c.to_string())
    } else {
        match name {
            "nbsp" => Some(" ".to_string()),
            "lt" => Some("<".to_string()),
            "gt" => Some(">".to_string()),
            "amp" => Some("&".to_string()),
            "quot" => Some("\"".to_string()),
            "apos" => Some("'".to_string()),
            "ldquo" => Some("“".to_string()),
            "rdquo" => Some("”".to_string()),
            "lsquo" => Some("‘".to_string()),
            "rsquo" => Some("’".to_string()),
            "mdash" => Some("—".to_string()),
            "ndash" => Some("–".to_string()),
            "middot" => Some("·".to_string()),
            "hellip" => Some("…".to_string()),
            "yen" => Some("¥".to_string()),
            _ => None,
        }
    };
    match decoded {
        Some(text) => (text, semi + 1),
        None => ("&".to_string(), 1),
    }
}

/// Decode entities in an attribute value (`&amp;` in hrefs).
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let tail = rest.get(pos..).unwrap_or("");
        let (text, used) = decode_entity(tail);
        out.push_str(&text);
        rest = tail.get(used..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Candidate links examined per body part: a real mail has a handful, a
/// hostile one must not cost more than this.
const MAX_CANDIDATES: usize = 1000;

/// `<a href=…>text</a>` pairs of an HTML body whose href passes `keep`:
/// (href with entities decoded, visible text).
fn anchors(html: &str, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(found) = lower.get(pos..).and_then(|r| r.find("<a")) {
        let start = pos + found;
        let Some(tag_end) = lower
            .get(start..)
            .and_then(|r| r.find('>'))
            .map(|e| start + e)
        else {
            break;
        };
        pos = tag_end + 1;
        let after_a = lower.get(start + 2..).and_then(|r| r.chars().next());
        if !after_a.is_some_and(char::is_whitespace) {
            continue;
        }
        let tag = html.get(start..tag_end).unwrap_or("");
        let Some(href) = attribute(tag, "href") else {
            continue;
        };
        let href = decode_entities(href.trim());
        if !keep(&href) {
            continue;
        }
        // The visible text, looked for within a bounded window so that a
        // page of unclosed anchors stays linear.
        let mut window_end = (pos + 1024).min(html.len());
        while !html.is_char_boundary(window_end) {
            window_end -= 1;
        }
        let window = lower.get(pos..window_end).unwrap_or("");
        let close = window.find("</a").map(|e| pos + e).unwrap_or(window_end);
        let inner = html.get(pos..close).unwrap_or("");
        let text = html_to_text(inner).replace('\n', " ");
        out.push((href, text.trim().to_string()));
        if out.len() >= MAX_CANDIDATES {
            break;
        }
    }
    out
}

/// The value of an attribute in a start tag, quoted or not.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower.get(from..).and_then(|r| r.find(name)) {
        let at = from + found;
        from = at + name.len();
        let before_ok = lower
            .get(..at)
            .and_then(|b| b.chars().last())
            .is_some_and(char::is_whitespace);
        let rest = tag.get(at + name.len()..)?.trim_start();
        let Some(value) = rest.strip_prefix('=') else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let value = value.trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = value.get(1..)?;
                inner.get(..inner.find(q).unwrap_or(inner.len()))?
            }
            _ => value.get(
                ..value
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(value.len()),
            )?,
        });
    }
    None
}

/// `http(s)://…` URLs in plain text, with their byte offsets.
fn text_urls(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(found) = text.get(pos..).and_then(|r| r.find("http")) {
        let start = pos + found;
        let rest = text.get(start..).unwrap_or("");
        let lower_head = rest.get(..8).unwrap_or(rest).to_ascii_lowercase();
        if !(lower_head.starts_with("http://") || lower_head.starts_with("https://")) {
            pos = start + 4;
            continue;
        }
        let end = rest
            .find(|c: char| {
                c.is_whitespace()
                    || !c.is_ascii()
                    || matches!(c, '<' | '>' | '"' | '\'' | ')' | ']')
            })
            .unwrap_or(rest.len());
        let url = rest
            .get(..end)
            .unwrap_or("")
            .trim_end_matches(['.', ',', ';', ':', '!', '?']);
        out.push((start, url.to_string()));
        if out.len() >= MAX_CANDIDATES {
            break;
        }
        pos = start + end.max(4);
    }
    out
}

/// Which large-file service a URL belongs to, if any.
pub(crate) fn cloud_provider(url: &str) -> Option<&'static str> {
    let lower = url.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest.get(..host_end)?;
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host);
    let path = rest.get(host_end..).unwrap_or("");
    let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if (under("qq.com") || under("tencent.com")) && path.contains("ftn") {
        return Some("qq");
    }
    if (under("163.com") || under("126.com") || under("yeah.net") || under("188.com"))
        && (path.contains("large-attachment")
            || path.contains("cloud-attachment")
            || path.contains("/fs/display")
            || path.contains("huge-attachment")
            || path.contains("huge_attachment"))
    {
        return Some("netease");
    }
    None
}

const FILE_EXTENSIONS: &[&str] = &[
    "docx", "doc", "xlsx", "xls", "zip", "rar", "7z", "pdf", "pptx", "ppt", "wps", "et", "jpg",
    "jpeg", "png", "mp4", "mov", "txt",
];

/// Does this look like a file name (`项目申请表.docx`)? Returns it trimmed.
fn file_name_like(text: &str) -> Option<String> {
    let text = text.trim();
    let (stem, ext) = text.rsplit_once('.')?;
    let ext = ext.trim().to_ascii_lowercase();
    if stem.trim().is_empty()
        || !FILE_EXTENSIONS.contains(&ext.as_str())
        || text.chars().count() > 255
    {
        return None;
    }
    Some(text.nfc().collect())
}

/// The last file-name-looking run in `text` (a line before a QQ text link:
/// `项目申请表.docx (38.7K, 2025年10月20日 12:00 到期)进入下载页面：`).
fn file_name_in(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut best: Option<(usize, String)> = None;
    for ext in FILE_EXTENSIONS {
        let needle = format!(".{ext}");
        let mut from = 0;
        while let Some(found) = lower.get(from..).and_then(|r| r.find(&needle)) {
            let end = from + found + needle.len();
            from = end;
            // The extension must end the word.
            if lower
                .get(end..)
                .and_then(|r| r.chars().next())
                .is_some_and(|c| c.is_ascii_alphanumeric())
            {
                continue;
            }
            let head = text.get(..end).unwrap_or("");
            let line_start = head.rfind('\n').map(|p| p + 1).unwrap_or(0);
            let candidate = head.get(line_start..).unwrap_or("");
            // Drop labels before the name (`附件：`, `文件名:`).
            let candidate = candidate
                .rsplit(['：', ':', '\t'])
                .next()
                .unwrap_or(candidate)
                .trim_start_matches(|c: char| {
                    c.is_whitespace() || matches!(c, '-' | '*' | '•' | '·')
                });
            if let Some(name) = file_name_like(candidate)
                && best.as_ref().is_none_or(|(e, _)| end > *e)
            {
                best = Some((end, name));
            }
        }
    }
    best.map(|(_, name)| name)
}

/// A file name carried in the link itself (163: `&title=` / `&filename=`).
fn file_name_in_url(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=')?;
        if matches!(
            key.to_ascii_lowercase().as_str(),
            "title" | "filename" | "name" | "fname"
        ) {
            let bytes = percent_decode_plus(value);
            if let Ok(text) = String::from_utf8(bytes)
                && let Some(name) = file_name_like(&text)
            {
                return Some(name);
            }
        }
    }
    None
}

fn percent_decode_plus(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| super::headers::hex_val(*c)),
                bytes.get(i + 2).and_then(|c| super::headers::hex_val(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// Large-file download links in the body, one per URL, in order of
/// appearance; HTML anchors first (their text is usually the file name), then
/// bare URLs in the plain text (file name from the lines before the link).
pub(crate) fn cloud_links(text: &str, htmls: &[String]) -> Vec<CloudLink> {
    let mut links: Vec<CloudLink> = Vec::new();
    let mut push = |provider: &'static str, url: String, name: Option<String>| {
        // Shown in acks and exports: cleaned like every name from a mail.
        let name = name.map(|n| crate::attach::display_name(&n));
        if let Some(existing) = links.iter_mut().find(|l| l.url == url) {
            if existing.filename.is_none() {
                existing.filename = name;
            }
        } else if links.len() < 100 {
            links.push(CloudLink {
                provider,
                filename: name,
                url,
            });
        }
    };
    for html in htmls {
        for (href, anchor_text) in anchors(html, |href| cloud_provider(href).is_some()) {
            if let Some(provider) = cloud_provider(&href) {
                let name = file_name_like(&anchor_text)
                    .or_else(|| file_name_in(&anchor_text))
                    .or_else(|| file_name_in_url(&href));
                push(provider, href, name);
            }
        }
        // Links written as text inside the HTML.
        let html_text = html_to_text(html);
        for (start, url) in text_urls(&html_text) {
            if let Some(provider) = cloud_provider(&url) {
                let before = html_text.get(..start).unwrap_or("");
                let name = file_name_in(tail_lines(before, 3)).or_else(|| file_name_in_url(&url));
                push(provider, url, name);
            }
        }
    }
    for (start, url) in text_urls(text) {
        if let Some(provider) = cloud_provider(&url) {
            let before = text.get(..start).unwrap_or("");
            let name = file_name_in(tail_lines(before, 3)).or_else(|| file_name_in_url(&url));
            push(provider, url, name);
        }
    }
    links
}

/// The last `n` lines of `text` (the current partial line counts as one).
fn tail_lines(text: &str, n: usize) -> &str {
    // Only the last few hundred bytes matter; looking further back would
    // make a body of many links quadratic.
    let mut from = text.len().saturating_sub(600);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let text = text.get(from..).unwrap_or("");
    let mut cut = text.len();
    for _ in 0..n {
        match text.get(..cut).and_then(|t| t.rfind('\n')) {
            Some(p) => cut = p,
            None => return text,
        }
    }
    text.get(cut..).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_to_text_basics() {
        let html = "<html><head><title>t</title><style>p{}</style></head><body><p>老师&nbsp;好！</p><!-- c --><div>附件&lt;2&gt;</div><script>alert(1)</script>谢谢<br>张三</body></html>";
        assert_eq!(html_to_text(html), "老师 好！\n\n附件<2>\n谢谢\n张三");
        assert_eq!(
            html_to_text("a &amp; b &#20013; &#x6587; &bogus; &"),
            "a & b 中 文 &bogus; &"
        );
        assert_eq!(html_to_text("<unclosed"), "");
        assert_eq!(html_to_text(""), "");
    }

    #[test]
    fn netease_html_links() {
        let html = concat!(
            "<div><b>从网易163邮箱发来的超大附件</b>",
            "<a class=\"bigattach-mailmaster-download\" href=\"http://u.163.com/RcUwvU56g?spm=bigattachMasterDownLoad\">推荐客户端极速下载</a></div>",
            "<a href=\"https://mail.163.com/large-attachment-download/index.html?p=X&amp;file=djAy\"></a>",
            "<a href=\"https://mail.163.com/large-attachment-download/index.html?p=X&amp;file=djAy\">某党支部申请表.docx</a>",
            "<span> (80.96M, 2026年8月17日 0:49 到期)</span>",
            "<a href=\"https://mail.163.com/large-attachment-download/index.html?p=X&amp;file=djAy\">下载</a>",
        );
        let links = cloud_links("", &[html.to_string()]);
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].provider, "netease");
        assert_eq!(links[0].filename.as_deref(), Some("某党支部申请表.docx"));
        assert_eq!(
            links[0].url,
            "https://mail.163.com/large-attachment-download/index.html?p=X&file=djAy"
        );
    }

    #[test]
    fn qq_text_links() {
        let text = "您好\n\n从QQ邮箱发来的超大附件\n\n项目申请表.docx (38.7K, 2025年10月20日 12:00 到期)\n进入下载页面：https://wx.mail.qq.com/ftn/download?func=3&k=abc&key=def\n\n汇总表.xlsx (6K)\n进入下载页面：http://mail.qq.com/cgi-bin/ftnExs_download?k=xyz&t=exs_ftn_download\n";
        let links = cloud_links(text, &[]);
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].provider, "qq");
        assert_eq!(links[0].filename.as_deref(), Some("项目申请表.docx"));
        assert_eq!(
            links[0].url,
            "https://wx.mail.qq.com/ftn/download?func=3&k=abc&key=def"
        );
        assert_eq!(links[1].filename.as_deref(), Some("汇总表.xlsx"));
    }

    #[test]
    fn unrelated_links_are_ignored() {
        let text = "见 https://example.com/a.pdf 和 https://mail.qq.com/ 以及 http://u.163.com/x";
        assert!(
            cloud_links(
                text,
                &["<a href=\"https://www.163.com/\">网易</a>".to_string()]
            )
            .is_empty()
        );
        assert_eq!(
            cloud_provider("https://fs.163.com/fs/display/?p=X-NETEASE-HUGE-ATTACHMENT&file=1"),
            Some("netease")
        );
        assert_eq!(
            cloud_provider("ftp://mail.163.com/large-attachment-download"),
            None
        );
    }

    #[test]
    fn file_name_from_url_query() {
        let url = "https://mail.163.com/large-attachment-download/index.html?file=abc&title=%E7%94%B3%E8%AF%B7%E8%A1%A8.docx";
        let links = cloud_links(url, &[]);
        assert_eq!(links[0].filename.as_deref(), Some("申请表.docx"));
    }
}
