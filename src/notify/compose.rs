//! The mails shenbao writes: rendered from templates, wrapped with the headers that keep
//! threads together and keep auto-responders (ours and theirs) from talking to each other.
//!
//! Pure: no I/O besides reading override templates once at start. Every outgoing mail is
//! rendered to its final bytes here, so the outbox stores and resends exactly the same mail.

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Mailbox, MessageBuilder, MultiPart, SinglePart};
use minijinja::Environment;
use serde::Serialize;
use std::path::Path;

/// The header we stamp on every mail we send; mail that carries it is never answered.
pub const LOOP_HEADER: &str = "X-Shenbao-Loop";

/// Built-in templates; a file of the same name in `ack.templates_dir` overrides one.
const BUILTIN: &[(&str, &str)] = &[
    (
        "ack.txt.j2",
        include_str!("../../config/templates/ack.txt.j2"),
    ),
    (
        "no_materials.txt.j2",
        include_str!("../../config/templates/no_materials.txt.j2"),
    ),
    (
        "subject_help.txt.j2",
        include_str!("../../config/templates/subject_help.txt.j2"),
    ),
    (
        "reminder.txt.j2",
        include_str!("../../config/templates/reminder.txt.j2"),
    ),
    (
        "digest.txt.j2",
        include_str!("../../config/templates/digest.txt.j2"),
    ),
    // Ends in `.html.j2`: minijinja's default auto-escape callback ignores the `.j2` and
    // HTML-escapes every value in it (see `Templates::from_files`).
    (
        "digest.html.j2",
        include_str!("../../config/templates/digest.html.j2"),
    ),
    (
        "result.txt.j2",
        include_str!("../../config/templates/result.txt.j2"),
    ),
    (
        "closure_reminder.txt.j2",
        include_str!("../../config/templates/closure_reminder.txt.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("模板 {name} 有错误：{source}。请对照 config/templates/ 中的原版修改。")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("读不了模板文件 {path}：{source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("地址“{0}”无法用于发信")]
    Address(String),
    #[error("生成邮件失败：{0}")]
    Build(String),
}

/// The built-in templates (name, text), e.g. for `shenbao init` to copy for editing.
pub fn builtin_templates() -> impl Iterator<Item = (&'static str, &'static str)> {
    BUILTIN.iter().copied()
}

pub struct Templates {
    env: Environment<'static>,
    /// The built-in templates alone: what a mail falls back to when an override fails.
    builtin: Environment<'static>,
    /// Where each template that is not built-in came from (overrides and additions), and
    /// its text.
    files: std::collections::BTreeMap<String, (std::path::PathBuf, String)>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // Keeps each template's source with its errors, so an error can quote the unknown name.
    env.set_debug(true);
    env
}

impl Templates {
    /// The built-in templates with staff's files (`ack.templates_dir`, read by
    /// [`crate::config::load_templates`]): a file named like a built-in one overrides it,
    /// any other `.j2` file is added (a second reminder wording, say; a rule names it by
    /// file name). Each file is (name, path, text).
    pub fn from_files(
        staff: Vec<(String, std::path::PathBuf, String)>,
    ) -> Result<Templates, ComposeError> {
        let mut env = environment();
        let mut builtin_env = environment();
        let mut files = std::collections::BTreeMap::new();
        for (name, path, text) in staff {
            files.insert(name, (path, text));
        }
        for (name, builtin) in BUILTIN {
            builtin_env
                .add_template(name, builtin)
                .map_err(|source| ComposeError::Template {
                    name: name.to_string(),
                    source,
                })?;
            let text = files.get(*name).map_or(*builtin, |(_, t)| t.as_str());
            env.add_template_owned(name.to_string(), text.to_string())
                .map_err(|source| ComposeError::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        for (name, (_, text)) in &files {
            if BUILTIN.iter().any(|(b, _)| b == name) {
                continue;
            }
            env.add_template_owned(name.clone(), text.clone())
                .map_err(|source| ComposeError::Template {
                    name: name.clone(),
                    source,
                })?;
        }
        Ok(Templates {
            env,
            builtin: builtin_env,
            files,
        })
    }

    /// The built-in templates alone.
    pub fn builtin() -> Result<Templates, ComposeError> {
        Templates::from_files(Vec::new())
    }

    /// The names of the built-in templates, for the reader of `ack.templates_dir`.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// Whether a template of this name is loaded (for `check-config`).
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Every loaded template's name (built-in, overridden or added), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        names.extend(self.files.keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// The file a template was read from; `None` for a built-in one.
    pub fn file(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(|(p, _)| p.as_path())
    }

    /// A template's source text (as loaded, override or built-in).
    pub fn source(&self, name: &str) -> Option<&str> {
        match self.files.get(name) {
            Some((_, text)) => Some(text.as_str()),
            None => BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t),
        }
    }

    /// The names a template uses that it does not set itself (`greeting`, `closure.level`).
    pub fn names_used(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .env
            .get_template(name)
            .map(|t| t.undeclared_variables(true).into_iter().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Where a template is, for people: its file, or `内置模板 X`.
    pub fn origin(&self, name: &str) -> String {
        match self.file(name) {
            Some(p) => p.display().to_string(),
            None => format!("内置模板 {name}"),
        }
    }

    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, ComposeError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|source| ComposeError::Template {
                name: name.to_string(),
                source,
            })?;
        tmpl.render(ctx).map_err(|source| ComposeError::Template {
            name: name.to_string(),
            source,
        })
    }

    /// Renders `name`; when that fails (a staff-edited template with a typo), renders the
    /// built-in `name` instead, so the mail still goes out, and returns the error in words
    /// for staff (`status`, `health`, the digest). Fails only when the built-in fails too.
    pub fn render_or_builtin(
        &self,
        name: &str,
        ctx: impl Serialize,
    ) -> Result<(String, Option<String>), ComposeError> {
        self.render_or(name, name, ctx)
    }

    /// [`Templates::render_or_builtin`] for a template without a built-in of its own (a
    /// reminder rule's added template): falls back to the built-in `fallback`.
    pub fn render_or(
        &self,
        name: &str,
        fallback: &str,
        ctx: impl Serialize,
    ) -> Result<(String, Option<String>), ComposeError> {
        let ctx = minijinja::Value::from_serialize(&ctx);
        let err = match self.env.get_template(name).and_then(|t| t.render(&ctx)) {
            Ok(text) => return Ok((text, None)),
            Err(e) => e,
        };
        let described = describe_error(&self.origin(name), &err);
        tracing::error!(template = name, error = %described, "模板出错，改用内置模板");
        let text = self
            .builtin
            .get_template(fallback)
            .and_then(|t| t.render(&ctx))
            .map_err(|source| ComposeError::Template {
                name: fallback.to_string(),
                source,
            })?;
        Ok((text, Some(described)))
    }
}

/// A template error in one Chinese sentence: where (file and line), what (the unknown name,
/// the unknown filter …), and the offending text.
pub fn describe_error(origin: &str, err: &minijinja::Error) -> String {
    use minijinja::ErrorKind as K;
    let snippet = match (err.template_source(), err.range()) {
        (Some(src), Some(r)) => src.get(r).map(|s| s.trim().to_string()),
        _ => None,
    };
    let quoted = snippet
        .as_deref()
        .map(|s| format!("“{s}”"))
        .unwrap_or_default();
    let what = match err.kind() {
        K::UndefinedError => {
            format!("未知的名称{quoted}，模板中可用的名称见 config/templates/ 中的原版")
        }
        K::SyntaxError => format!(
            "语法错误{}",
            snippet
                .map(|s| format!("（在“{s}”附近）"))
                .unwrap_or_default()
        ),
        K::UnknownFilter => format!("未知的过滤器{quoted}"),
        K::UnknownFunction => format!("未知的函数{quoted}"),
        K::UnknownTest => format!("未知的测试{quoted}"),
        K::UnknownMethod => format!("未知的方法{quoted}"),
        K::TemplateNotFound => "引用了不存在的模板".to_string(),
        K::InvalidOperation => format!("无法执行的运算{quoted}"),
        K::BadEscape => format!("错误的转义{quoted}"),
        K::MissingArgument | K::TooManyArguments => format!("参数个数不对{quoted}"),
        _ => format!("无法渲染{quoted}"),
    };
    match err.line() {
        Some(line) => format!("{origin} 第 {line} 行：{what}"),
        None => format!("{origin}：{what}"),
    }
}

/// What an outgoing mail is: stored in `outbox.kind`, shown to staff by its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxKind {
    /// The acknowledgement of a version.
    Ack,
    /// The one note to a branch's mail without materials.
    NoMaterials,
    /// The exact subject, for a mail that looks like an application under a wrong one.
    SubjectHelp,
    /// A reminder before the application deadline.
    Reminder,
    /// A reminder before the closure deadline (what a funded project still owes).
    ClosureReminder,
    /// A reviewer's digest.
    Digest,
    /// A branch's review result.
    Result,
}

impl OutboxKind {
    /// A reminder of either deadline: pointless once its deadline has passed.
    pub fn is_reminder(self) -> bool {
        matches!(self, OutboxKind::Reminder | OutboxKind::ClosureReminder)
    }

    pub const ALL: [OutboxKind; 7] = [
        OutboxKind::Ack,
        OutboxKind::NoMaterials,
        OutboxKind::SubjectHelp,
        OutboxKind::Reminder,
        OutboxKind::ClosureReminder,
        OutboxKind::Digest,
        OutboxKind::Result,
    ];

    /// The name in `outbox.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Ack => "ack",
            OutboxKind::NoMaterials => "no_materials",
            OutboxKind::SubjectHelp => "subject_help",
            OutboxKind::Reminder => "reminder",
            OutboxKind::ClosureReminder => "closure_reminder",
            OutboxKind::Digest => "digest",
            OutboxKind::Result => "result",
        }
    }

    /// In the words staff use.
    pub fn label(self) -> &'static str {
        match self {
            OutboxKind::Ack => "回执",
            OutboxKind::NoMaterials => "未附材料说明",
            OutboxKind::SubjectHelp => "主题格式说明",
            OutboxKind::Reminder => "截止提醒",
            OutboxKind::ClosureReminder => "结项提醒",
            OutboxKind::Digest => "评审摘要",
            OutboxKind::Result => "评审结果",
        }
    }
}

impl std::str::FromStr for OutboxKind {
    type Err = crate::attach::UnknownName;
    fn from_str(s: &str) -> Result<OutboxKind, Self::Err> {
        crate::attach::by_name(&OutboxKind::ALL, OutboxKind::as_str, s)
    }
}

/// What an `outbox.kind` is, in the words staff use (the kind itself when unknown): for
/// `shenbao outbox list` and the board's 发件箱.
pub fn kind_label(kind: &str) -> &str {
    kind.parse::<OutboxKind>().map_or(kind, |k| k.label())
}

/// A mail ready for the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub kind: OutboxKind,
    /// Without <>.
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub raw: Vec<u8>,
    /// A copy recipient named in the `Cc` header (see [`build_cc`]).
    pub cc: Option<String>,
}

/// Everything needed to write one automatic mail.
pub struct MailSpec<'a> {
    pub kind: OutboxKind,
    pub from_name: &'a str,
    pub from_addr: &'a str,
    pub to_name: Option<&'a str>,
    pub to_addr: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// Our Message-ID, without <>; derive it from stable inputs so a replay produces the same id.
    pub message_id: String,
    /// The sender's Message-ID we answer, without <>.
    pub in_reply_to: Option<&'a str>,
    /// The sender's References, without <>; ours are those plus `in_reply_to`.
    pub references: &'a [String],
    /// Value of our loop header (the intake address).
    pub loop_value: &'a str,
    pub date: DateTime<Utc>,
    /// `Auto-Submitted` value: `auto-replied` for answers, `auto-generated` for reminders.
    pub auto_submitted: &'a str,
}

/// A stable Message-ID: `shenbao.<kind>.<key>@<domain>`.
pub fn message_id(kind: &str, key: &str, domain: &str) -> String {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("shenbao.{kind}.{key}@{domain}")
}

fn header(name: &'static str, value: impl Into<String>) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.into())
}

fn mailbox(name: Option<&str>, addr: &str) -> Result<Mailbox, ComposeError> {
    let address = addr
        .parse()
        .map_err(|_| ComposeError::Address(addr.to_string()))?;
    Ok(Mailbox::new(
        name.filter(|n| !n.trim().is_empty()).map(str::to_string),
        address,
    ))
}

/// The envelope headers every automatic mail carries: sender, recipient, subject, our stable
/// Message-ID, the loop-prevention headers and, when answering, the thread.
fn headers(spec: &MailSpec<'_>) -> Result<MessageBuilder, ComposeError> {
    let mut b = Message::builder()
        .from(mailbox(Some(spec.from_name), spec.from_addr)?)
        .to(mailbox(spec.to_name, spec.to_addr)?)
        .subject(spec.subject)
        .message_id(Some(format!("<{}>", spec.message_id)))
        .date(spec.date.into())
        .raw_header(header("Auto-Submitted", spec.auto_submitted))
        // Exchange/Outlook: do not answer this with out-of-office or read receipts.
        .raw_header(header("X-Auto-Response-Suppress", "All"))
        .raw_header(header("Precedence", "auto_reply"))
        .raw_header(header(LOOP_HEADER, spec.loop_value));
    if let Some(irt) = spec.in_reply_to {
        b = b.in_reply_to(format!("<{irt}>"));
        let mut refs: Vec<String> = spec
            .references
            .iter()
            .filter(|r| r.as_str() != irt)
            .map(|r| format!("<{r}>"))
            .collect();
        refs.push(format!("<{irt}>"));
        b = b.references(refs.join(" "));
    }
    Ok(b)
}

fn outgoing(spec: &MailSpec<'_>, msg: &Message) -> Outgoing {
    Outgoing {
        kind: spec.kind,
        message_id: spec.message_id.clone(),
        to: spec.to_addr.to_string(),
        subject: spec.subject.to_string(),
        raw: msg.formatted(),
        cc: None,
    }
}

fn text_part(text: &str) -> SinglePart {
    SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(text.to_string())
}

/// Renders the final bytes of an automatic mail.
pub fn build(spec: &MailSpec<'_>) -> Result<Outgoing, ComposeError> {
    let msg = headers(spec)?
        .multipart(MultiPart::mixed().singlepart(text_part(spec.text)))
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(outgoing(spec, &msg))
}

/// Like [`build`], with a copy to `cc` (name, address) in the `Cc` header: the roster's
/// secretary, when a version of the branch's material came from another address.
pub fn build_cc(spec: &MailSpec<'_>, cc: Option<(&str, &str)>) -> Result<Outgoing, ComposeError> {
    let mut b = headers(spec)?;
    if let Some((name, addr)) = cc {
        b = b.cc(mailbox(Some(name), addr)?);
    }
    let msg = b
        .multipart(MultiPart::mixed().singlepart(text_part(spec.text)))
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    let mut out = outgoing(spec, &msg);
    out.cc = cc.map(|(_, a)| a.to_string());
    Ok(out)
}

/// What a digest adds to a plain automatic mail.
pub struct RichParts<'a> {
    /// An HTML alternative to `MailSpec::text` (sent as multipart/alternative, text first, so
    /// clients that cannot show HTML show the text).
    pub html: Option<&'a str>,
    /// One attachment: file name (may be Chinese), bytes, MIME type
    /// (`application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`).
    pub attachment: Option<(&'a str, &'a [u8], &'a str)>,
}

/// Like [`build`], with an HTML alternative (multipart/alternative of text and HTML) and an
/// attachment (the whole wrapped in multipart/mixed).
///
/// The attachment's file name is written in every form a common client reads, because no
/// single form works everywhere: RFC 2231 `filename*=UTF-8''%E7%94%B3…` in Content-Disposition
/// (the standard; Thunderbird, Apple Mail, Gmail, mail_parser), and the RFC 2047 encoded word
/// `=?UTF-8?B?…?=` both as `name=` in Content-Type and as a `filename=` fallback (what Outlook
/// and QQ Mail/Foxmail write and read, though RFC 2047 does not cover parameters). lettre's
/// `Attachment` writes only the RFC 2231 form, so the part's headers are written here.
pub fn build_rich(spec: &MailSpec<'_>, parts: &RichParts<'_>) -> Result<Outgoing, ComposeError> {
    let b = headers(spec)?;
    let msg = match (parts.html, parts.attachment) {
        (None, None) => b.multipart(MultiPart::mixed().singlepart(text_part(spec.text))),
        (Some(html), None) => b.multipart(alternative(spec.text, html)),
        (html, Some((filename, bytes, mime))) => {
            let att = attachment_part(filename, bytes, mime)?;
            let mixed = match html {
                Some(html) => MultiPart::mixed().multipart(alternative(spec.text, html)),
                None => MultiPart::mixed().singlepart(text_part(spec.text)),
            };
            b.multipart(mixed.singlepart(att))
        }
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(outgoing(spec, &msg))
}

fn alternative(text: &str, html: &str) -> MultiPart {
    MultiPart::alternative()
        .singlepart(text_part(text))
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.to_string()),
        )
}

/// Headers whose values we encoded and folded ourselves (ASCII only, checked inputs). lettre's
/// part builder only takes typed headers, and its own `Content-Type`/`Content-Disposition`
/// types would re-encode (or reject) the parameters; these are written out as given.
#[derive(Clone)]
struct PreEncodedContentType(HeaderValue);

#[derive(Clone)]
struct PreEncodedDisposition(HeaderValue);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Header for PreEncodedContentType {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Type")
    }
    fn parse(_: &str) -> Result<Self, BoxError> {
        Err("written only".into())
    }
    fn display(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl Header for PreEncodedDisposition {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Disposition")
    }
    fn parse(_: &str) -> Result<Self, BoxError> {
        Err("written only".into())
    }
    fn display(&self) -> HeaderValue {
        self.0.clone()
    }
}

/// `type/subtype` made of RFC 2045 token characters only: the value goes into a header
/// unencoded, so anything else (a `;`, a quote, a line break) is refused, not passed through.
fn valid_mime(mime: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
    };
    matches!(mime.split_once('/'), Some((t, s)) if token(t) && token(s))
}

/// A file name that can go into a quoted string as it is.
fn plain_ascii_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 60
        && name
            .bytes()
            .all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), for encoded words.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Splits `s` into pieces of at most `max` UTF-8 bytes without cutting a character: RFC 2047
/// requires every encoded word to hold whole characters, and lenient clients decode each word
/// on its own.
fn chunks_by_bytes(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if i + c.len_utf8() - start > max && end > start {
            out.push(&s[start..end]);
            start = end;
        }
        end = i + c.len_utf8();
    }
    if end > start {
        out.push(&s[start..end]);
    }
    out
}

/// RFC 2047 `=?UTF-8?B?…?=` words separated by folding white space, which decoders drop
/// between adjacent encoded words. 36 bytes of text make a 60-character word (the limit is
/// 75), so even the first one, after ` filename="`, keeps its line within 78 characters.
fn rfc2047(name: &str) -> String {
    chunks_by_bytes(name, 36)
        .into_iter()
        .map(|c| format!("=?UTF-8?B?{}?=", base64(c.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// RFC 2231 percent-encoding: everything but `attr-char` is `%XX`.
fn rfc2231_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&c) {
            out.push(char::from(c));
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The longest attachment name accepted, in UTF-8 bytes: what file systems allow. It also
/// keeps the single-line `filename*=` form (at most 3 characters per byte) well within the
/// 998-octet line limit, so RFC 2231 continuations (`filename*0*=…`) are never needed — and
/// they are best avoided: mixed with a `filename=` fallback, some parsers (mail_parser among
/// them) splice the two into a garbled name.
pub const MAX_ATTACHMENT_NAME_BYTES: usize = 255;

/// The attachment part, base64 body, with its name in the RFC 2231 and RFC 2047 forms.
fn attachment_part(filename: &str, bytes: &[u8], mime: &str) -> Result<SinglePart, ComposeError> {
    if !valid_mime(mime) {
        return Err(ComposeError::Build(format!("附件类型“{mime}”无效")));
    }
    if filename.trim().is_empty() || filename.len() > MAX_ATTACHMENT_NAME_BYTES {
        return Err(ComposeError::Build(format!(
            "附件名“{filename}”为空或太长（最多 {MAX_ATTACHMENT_NAME_BYTES} 字节）"
        )));
    }
    let (ctype, disposition) = if plain_ascii_name(filename) {
        (
            format!("{mime};\r\n name=\"{filename}\""),
            format!("attachment;\r\n filename=\"{filename}\""),
        )
    } else {
        let words = rfc2047(filename);
        (
            format!("{mime};\r\n name=\"{words}\""),
            // The RFC 2047 `filename=` first, the RFC 2231 `filename*=` last: parsers that
            // understand `filename*` prefer it wherever it is, and naive ones that keep the
            // last `filename…` they see have then still seen a decodable one (RFC 6266 §4.3).
            format!(
                "attachment;\r\n filename=\"{words}\";\r\n filename*=UTF-8''{}",
                rfc2231_value(filename)
            ),
        )
    };
    let ctype = PreEncodedContentType(HeaderValue::dangerous_new_pre_encoded(
        PreEncodedContentType::name(),
        ctype.clone(),
        ctype,
    ));
    let disposition = PreEncodedDisposition(HeaderValue::dangerous_new_pre_encoded(
        PreEncodedDisposition::name(),
        disposition.clone(),
        disposition,
    ));
    Ok(SinglePart::builder()
        .header(ctype)
        .header(disposition)
        .header(ContentTransferEncoding::Base64)
        .body(bytes.to_vec()))
}

/// `38.2 KB`, for people.
pub fn size_label(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{bytes} 字节")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    #[test]
    fn outbox_kinds_round_trip_and_have_labels() {
        for k in OutboxKind::ALL {
            assert_eq!(k.as_str().parse::<OutboxKind>(), Ok(k));
            assert!(!k.label().is_empty() && k.label() != k.as_str());
        }
        assert!("remind".parse::<OutboxKind>().is_err());
        assert_eq!(OutboxKind::NoMaterials.label(), "未附材料说明");
    }

    fn spec<'a>(refs: &'a [String]) -> MailSpec<'a> {
        MailSpec {
            kind: OutboxKind::Ack,
            from_name: "申报系统",
            from_addr: "intake@example.test",
            to_name: Some("余晨"),
            to_addr: "xieren7052@126.com",
            subject: "Re: 对标争先建设项目申报-设计创意学院2024级博士生党支部",
            text: "您好！\n已收到。",
            message_id: message_id("ack", "42.abc", "shenbao.example.test"),
            in_reply_to: Some("orig@126.com"),
            references: refs,
            loop_value: "intake@example.test",
            date: chrono::DateTime::parse_from_rfc3339("2025-09-22T09:41:42+08:00")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            auto_submitted: "auto-replied",
        }
    }

    #[test]
    fn an_ack_carries_threading_and_loop_headers() {
        let refs = vec!["root@qq.com".to_string()];
        let out = build(&spec(&refs)).expect("builds");
        let text = String::from_utf8_lossy(&out.raw);
        assert!(text.contains("In-Reply-To: <orig@126.com>"), "{text}");
        assert!(
            text.contains("References: <root@qq.com> <orig@126.com>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"));
        assert!(text.contains("X-Auto-Response-Suppress: All"));
        assert!(text.contains("X-Shenbao-Loop: intake@example.test"));
        assert!(text.contains("Message-ID: <shenbao.ack.42.abc@shenbao.example.test>"));
        // Parse it back: the Chinese subject and body survive encoding.
        let parsed = mail_parser::MessageParser::default()
            .parse(&out.raw[..])
            .expect("parses");
        assert_eq!(
            parsed.subject(),
            Some("Re: 对标争先建设项目申报-设计创意学院2024级博士生党支部")
        );
        assert!(parsed.body_text(0).is_some_and(|b| b.contains("已收到")));
    }

    #[test]
    fn builtin_templates_compile() {
        let t = Templates::builtin().expect("builtins load");
        for (name, _) in BUILTIN {
            assert!(t.env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn templates_are_html_escaped_by_name() {
        // `Templates::from_files` keeps minijinja's default auto-escape callback, where the name
        // decides: `.html.j2` escapes, `.txt.j2` does not. (notify's tests render the digest.)
        let mut env = Environment::new();
        env.add_template("x.html.j2", "{{ v }}").expect("adds");
        env.add_template("x.txt.j2", "{{ v }}").expect("adds");
        let ctx = serde_json::json!({"v": "<b>&"});
        let html = env.get_template("x.html.j2").and_then(|t| t.render(&ctx));
        let text = env.get_template("x.txt.j2").and_then(|t| t.render(&ctx));
        assert_eq!(html.ok().as_deref(), Some("&lt;b&gt;&amp;"));
        assert_eq!(text.ok().as_deref(), Some("<b>&"));
    }

    const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

    fn digest_spec<'a>(refs: &'a [String]) -> MailSpec<'a> {
        MailSpec {
            kind: OutboxKind::Digest,
            to_name: Some("评审组"),
            to_addr: "reviewer@example.test",
            subject: "【申报日报】9月22日：新收到 3 份，共 12/24 个支部已申报",
            text: "名册共 24 个支部，已申报 12 个。",
            message_id: message_id(
                "digest",
                "daily.2025-09-22T00:00:00Z",
                "shenbao.example.test",
            ),
            auto_submitted: "auto-generated",
            ..spec(refs)
        }
    }

    fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(raw)
            .expect("parses")
    }

    #[test]
    fn a_digest_is_text_and_html_with_the_summary_attached() {
        let refs = vec!["root@qq.com".to_string()];
        let name = "申报汇总表-2025-09-22.xlsx";
        // Not text: every byte value, so a wrong transfer encoding would show.
        let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let html = "<p>名册共 <b>24</b> 个支部</p>";
        let out = build_rich(
            &digest_spec(&refs),
            &RichParts {
                html: Some(html),
                attachment: Some((name, &bytes, XLSX)),
            },
        )
        .expect("builds");
        let raw = String::from_utf8_lossy(&out.raw);
        // The same envelope as `build`.
        for h in [
            "Message-ID: <shenbao.digest.daily.2025-09-22T000000Z@shenbao.example.test>",
            "In-Reply-To: <orig@126.com>",
            "References: <root@qq.com> <orig@126.com>",
            "Auto-Submitted: auto-generated",
            "X-Auto-Response-Suppress: All",
            "X-Shenbao-Loop: intake@example.test",
        ] {
            assert!(raw.contains(h), "missing {h:?} in:\n{raw}");
        }
        // Both forms of the Chinese name.
        assert!(raw.contains("filename*=UTF-8''%E7%94%B3%E6%8A%A5"), "{raw}");
        assert!(raw.contains("name=\"=?UTF-8?B?"), "{raw}");
        assert!(raw.contains("filename=\"=?UTF-8?B?"), "{raw}");
        assert!(raw.contains("Content-Transfer-Encoding: base64"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(raw.lines().all(|l| l.len() <= 998), "{raw}");
        assert!(raw.is_ascii(), "8-bit clean: {raw}");

        let parsed = parse(&out.raw);
        assert_eq!(parsed.subject(), Some(out.subject.as_str()));
        assert!(
            parsed
                .body_text(0)
                .is_some_and(|t| t.contains("已申报 12 个"))
        );
        assert!(parsed.body_html(0).is_some_and(|h| h.contains("<b>24</b>")));
        assert_eq!(parsed.attachment_count(), 1);
        let att = parsed.attachment(0).expect("one attachment");
        assert_eq!(att.attachment_name(), Some(name));
        assert_eq!(att.contents(), &bytes[..]);
        let ct = att.content_type().expect("has a content type");
        assert_eq!(
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()),
            XLSX
        );
        // Each form decodes to the name on its own, whichever one a client reads.
        assert_eq!(ct.attribute("name"), Some(name));
        let disposition = att.content_disposition().expect("has a disposition");
        assert_eq!(disposition.attribute("filename"), Some(name));
        // Drop one form at a time: the others still give the name.
        for form in ["filename*=", "filename=\"", " name=\""] {
            let kept: Vec<&str> = raw
                .split("\r\n")
                .filter(|l| !l.trim_start().starts_with(form.trim_start()))
                .collect();
            let kept = kept.join("\r\n");
            assert!(kept.len() < raw.len(), "{form} present");
            let parsed = parse(kept.as_bytes());
            let att = parsed.attachment(0).expect("one attachment");
            assert_eq!(att.attachment_name(), Some(name), "without {form}:\n{kept}");
        }
    }

    #[test]
    fn the_alternative_puts_text_first() {
        let refs = vec![];
        let out = build_rich(
            &digest_spec(&refs),
            &RichParts {
                html: Some("<p>HTML</p>"),
                attachment: None,
            },
        )
        .expect("builds");
        let raw = String::from_utf8_lossy(&out.raw);
        let text_at = raw.find("text/plain").expect("a text part");
        let html_at = raw.find("text/html").expect("an html part");
        assert!(text_at < html_at, "{raw}");
        assert!(!raw.contains("multipart/mixed"), "{raw}");
        let parsed = parse(&out.raw);
        assert_eq!(parsed.attachment_count(), 0);
    }

    #[test]
    fn long_and_plain_attachment_names_decode() {
        let refs = vec![];
        let long = format!(
            "{}.xlsx",
            "二〇二五年秋季学期学生党支部对标争先建设项目申报汇总表".repeat(3)
        );
        assert!(long.len() <= MAX_ATTACHMENT_NAME_BYTES);
        for name in [
            long.as_str(),
            "summary-2025-09-22.xlsx",
            "汇总表 \"最终版\"; 第2版.xlsx",
        ] {
            let out = build_rich(
                &digest_spec(&refs),
                &RichParts {
                    html: None,
                    attachment: Some((name, b"PK\x03\x04", XLSX)),
                },
            )
            .expect("builds");
            let raw = String::from_utf8_lossy(&out.raw);
            assert!(raw.lines().all(|l| l.len() <= 998), "{raw}");
            assert!(
                raw.lines()
                    .filter(|l| l.contains("=?UTF-8?B?"))
                    .all(|l| l.len() <= 78),
                "{raw}"
            );
            let parsed = parse(&out.raw);
            let att = parsed.attachment(0).expect("one attachment");
            assert_eq!(att.attachment_name(), Some(name), "{raw}");
            assert_eq!(
                att.content_type().and_then(|c| c.attribute("name")),
                Some(name),
                "{raw}"
            );
            assert_eq!(att.contents(), b"PK\x03\x04");
        }
    }

    #[test]
    fn a_bad_mime_type_or_name_is_refused_not_written() {
        let refs = vec![];
        let too_long = format!("{}.xlsx", "汇".repeat(84));
        for (name, mime) in [
            ("a.xlsx", ""),
            ("a.xlsx", "application"),
            ("a.xlsx", "text/plain; x=\"y\""),
            ("a.xlsx", "a/b\r\nBcc: x@y.test"),
            ("", XLSX),
            (too_long.as_str(), XLSX),
        ] {
            let r = build_rich(
                &digest_spec(&refs),
                &RichParts {
                    html: None,
                    attachment: Some((name, b"x", mime)),
                },
            );
            assert!(
                matches!(r, Err(ComposeError::Build(_))),
                "{name:?} {mime:?}"
            );
        }
    }

    #[test]
    fn encoders_match_the_rfcs() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64("申报".as_bytes()), "55Sz5oql");
        assert_eq!(rfc2231_value("申 a.xlsx"), "%E7%94%B3%20a.xlsx");
        assert_eq!(chunks_by_bytes("申报汇总", 7), vec!["申报", "汇总"]);
        assert_eq!(chunks_by_bytes("ab", 1), vec!["a", "b"]);
    }

    #[test]
    fn without_extras_build_rich_is_build() {
        let refs = vec!["root@qq.com".to_string()];
        let plain = build(&spec(&refs)).expect("builds");
        let rich = build_rich(
            &spec(&refs),
            &RichParts {
                html: None,
                attachment: None,
            },
        )
        .expect("builds");
        // Boundaries are random; everything else is the same.
        let strip = |raw: &[u8]| {
            String::from_utf8_lossy(raw)
                .lines()
                .filter(|l| !l.contains("boundary") && !l.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&plain.raw), strip(&rich.raw));
    }

    #[test]
    fn the_ack_template_lays_out_one_item_per_line() {
        let t = Templates::builtin().expect("builtins load");
        let ctx = serde_json::json!({
            "greeting": "余晨同学", "organizer": "党委学生工作部", "campaign_name": "对标争先建设项目",
            "kind_label": "申报", "branch_display": "设计创意学院2024级博士生党支部（设计创意学院）",
            "match_note": null, "version": 2, "received_at": "2025年9月22日 09:41:42",
            "subject": "对标争先建设项目申报-设计创意学院2024级博士生党支部",
            "attachments": [
                {"filename": "申请表.docx", "role_label": "项目申请表", "format_label": "Word 文档", "size_label": "37.8 KB", "error": null, "entries": []},
                {"filename": "材料.zip", "role_label": "其他材料", "format_label": "压缩包", "size_label": "11.3 KB", "error": null,
                 "entries": [{"filename": "汇总表.xlsx", "role_label": "申报汇总表", "format_label": "Excel 表格", "size_label": "5.6 KB", "error": null, "entries": []}]}
            ],
            "problems": [{"code": "late", "title": "邮件在截止时间之后到达", "fix": "本邮件已登记", "detail": null}],
            "fields": [{"label": "项目名称", "value": "“科研启明星”"}, {"label": "申请经费", "value": "4000 元"}],
            "fields_source": "项目申请表",
            "closure": null,
            "exact_subject": "对标争先建设项目申报-设计创意学院2024级博士生党支部",
            "deadline": "2025年9月27日 23:59:59", "staff_contact": "学生工作部",
            "sender_note": null, "suggestion": null
        });
        let text = t.render("ack.txt.j2", &ctx).expect("renders");
        for line in [
            "余晨同学：\n",
            "\n  识别的支部：设计创意学院2024级博士生党支部（设计创意学院）\n  登记版本：第 2 版（以本版为准",
            "\n  收到时间：2025年9月22日 09:41:42（北京时间）\n",
            "\n  1. 申请表.docx\n     识别为：项目申请表（Word 文档，37.8 KB）\n  2. 材料.zip\n",
            "\n     - 压缩包内：汇总表.xlsx —— 申报汇总表（Excel 表格，5.6 KB）\n",
            "发现以下 1 个问题，请按说明处理：\n  1. 邮件在截止时间之后到达\n     怎么办：本邮件已登记\n",
            "从项目申请表中读到的内容（请核对，如有误请修改后重新发送）：\n  项目名称：“科研启明星”\n  申请经费：4000 元\n\n发现以下",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("材料齐全"));
    }

    #[test]
    fn message_ids_are_stable_and_clean() {
        assert_eq!(
            message_id("ack", "7.ab<cd>", "d.test"),
            "shenbao.ack.7.abcd@d.test"
        );
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size_label(500), "500 字节");
        assert_eq!(size_label(38708), "37.8 KB");
        assert_eq!(size_label(5 * 1024 * 1024), "5.0 MB");
    }
}
