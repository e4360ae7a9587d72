//! Understanding one raw RFC 822 message from a branch.
//!
//! [`understand`] turns the bytes the mailbox stored into what the rest of
//! shenbao needs: who sent it, the decoded subject, whether a machine sent it
//! (then it must never be answered), the body text, every attachment with its
//! real format and its role in the campaign, zip contents one level deep, and
//! large-file links. It never fails and never panics: hostile or broken mail
//! yields a partial [`Understood`] with `warnings`, because a message that
//! cannot be read still has to reach staff.
//!
//! mail-parser provides the MIME structure and body decoding; the headers
//! people read are decoded from the raw bytes in the `headers` module (see there for
//! why), and attachment bytes are checked by content in [`crate::attach`].
//!
//! Pure: no runtime, no database, no files, no network, no clock; bytes in, values out.
//! `src/architecture.rs` checks it.

mod auto;
mod body;
mod headers;
pub mod slim;
#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, FixedOffset, TimeZone};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

pub use crate::attach::Attachment;
use crate::attach::{self, Format, ZipLimits};
use headers::{Decoder, ParamHeader, RawHeader};

/// How to recognise our own mail when it comes back (auto replies to our
/// acknowledgements, misrouted copies), so it is never answered again.
#[derive(Debug, Clone, Default)]
pub struct LoopGuard {
    /// The domain of the Message-IDs we generate, e.g. `shenbao.example.test`.
    pub own_domain: String,
    /// The header we put on every mail we send, e.g. `X-Shenbao-Loop`.
    pub loop_header: String,
    /// The intake address and our From address.
    pub own_addresses: Vec<String>,
}

/// Whether `u` is the copy of a mail we sent (the intake address is copied on every answer):
/// from one of our addresses, with a Message-ID of our domain. Intake asks it of a copy's
/// header alone (it then fetches no body), the pipeline of the whole mail.
pub fn is_own_copy(u: &Understood, guard: &LoopGuard) -> bool {
    let own_suffix = format!("@{}", guard.own_domain);
    let from_us = u.from.as_ref().is_some_and(|f| {
        guard
            .own_addresses
            .iter()
            .any(|own| own.eq_ignore_ascii_case(&f.addr))
    });
    from_us
        && u.message_id
            .as_deref()
            .is_some_and(|m| m.ends_with(&own_suffix))
}

/// [`is_own_copy`] of a header block alone: what intake asks of each candidate copy before it
/// decides not to fetch the body. From and Message-ID are read as [`understand`] reads them
/// from a header alone, without its MIME parse (which was 2–3 % of the daemon's CPU in issue
/// 16's profile, for a question two headers answer). When either is missing it says `false`:
/// the whole mail is then fetched and the pipeline judges, so it never says `true` where
/// `understand` would not.
pub fn is_own_copy_header(header: &[u8], guard: &LoopGuard) -> bool {
    let top = headers::parse_header_block(headers::header_block(skip_mbox_line(header)));
    let mut dec = Decoder::new(choose_fallback(std::slice::from_ref(&top)));
    is_own_copy(&read_envelope(&top, &mut dec), guard)
}

/// A mailbox: the decoded display name and the address with its domain lowercased.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Address {
    pub name: Option<String>,
    pub addr: String,
}

/// Why a message counts as machine-generated: a stable `code` for logic and
/// logs (`auto_submitted`, `empty_return_path`, `loop_header` …) and the
/// evidence for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AutoSignal {
    pub code: &'static str,
    pub detail: String,
    pub strength: Strength,
}

/// How much an [`AutoSignal`] proves (see the `auto` module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// No person is waiting for an answer: never answer.
    Strong,
    /// Seen on mail people write too (Outlook's `X-Auto-Response-Suppress`, `Precedence`):
    /// recorded, never a reason on its own.
    Weak,
}

/// A large-file download link found in the body (QQ Mail 超大附件, 网易邮箱大附件).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CloudLink {
    /// `"qq"` or `"netease"`.
    pub provider: &'static str,
    pub filename: Option<String>,
    pub url: String,
}

/// Everything `understand` found in a message.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Understood {
    /// Without `<>`.
    pub message_id: Option<String>,
    /// Decoded, NFC, whitespace collapsed; `""` when absent.
    pub subject: String,
    pub from: Option<Address>,
    pub reply_to: Option<Address>,
    /// `Some("")` for the null sender `<>` (bounces).
    pub return_path: Option<String>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub date: Option<DateTime<FixedOffset>>,
    /// Without `<>`.
    pub in_reply_to: Option<String>,
    /// Without `<>`, oldest first as sent.
    pub references: Vec<String>,
    /// The strongest proof that a machine wrote it (`Some` ⇒ never answer).
    pub auto: Option<AutoSignal>,
    /// Weak signals seen (recorded for staff; never a reason not to answer on their own).
    pub auto_hints: Vec<AutoSignal>,
    /// The best plain text: text/plain, else HTML without tags; at most
    /// [`BODY_TEXT_LIMIT`] bytes.
    pub body_text: String,
    pub attachments: Vec<Attachment>,
    pub cloud_links: Vec<CloudLink>,
    /// Problems worth telling staff (broken structure, unknown charsets …), in Chinese.
    pub warnings: Vec<String>,
}

/// Cap on [`Understood::body_text`], in bytes.
pub const BODY_TEXT_LIMIT: usize = 64 * 1024;

/// Attachments kept per message; more are reported in `warnings`.
const MAX_ATTACHMENTS: usize = 200;

/// Understand one raw message. Never panics; always returns something.
pub fn understand(raw: &[u8], guard: &LoopGuard) -> Understood {
    let mut understood = parse_guarded(raw, guard, &mut None);
    open_archives(&mut understood, &mut |_| {});
    understood
}

/// [`understand`], for the daemon: the raw mail is dropped as soon as its parts are decoded,
/// before zips are unpacked, so a mail with a 50 MB zip never has the raw mail, the zip and
/// the zip's contents in memory at once.
pub fn understand_owned(raw: Vec<u8>, guard: &LoopGuard) -> Understood {
    understand_each(raw, guard, &mut |_| {})
}

/// [`understand_owned`], handing each file to `each_file` as soon as it is complete: a zip's
/// entries one by one as they are inflated, then the zip, then the next attachment. The daemon
/// stores each there and lets go of the bytes nobody reads again, so a zip's contents are
/// never all in memory beside the zip (see `pipeline`'s `read_mail`). A zip whose listing
/// fails part-way (a damaged entry after good ones) has had its first entries handed over
/// already; they are then not in the result, and the daemon's copies of them are bytes no row
/// names, as a batch that fails leaves (a partial listing is no listing: see `list_archive`).
pub fn understand_each(
    raw: Vec<u8>,
    guard: &LoopGuard,
    each_file: &mut dyn FnMut(&mut Attachment),
) -> Understood {
    let mut understood = parse_guarded(&raw, guard, &mut None);
    drop(raw);
    open_archives(&mut understood, each_file);
    understood
}

/// [`understand_each`] for a mail [`slim::slim`] took the large bodies out of: each attachment
/// that decodes to exactly a marker gets its bytes back from `load` (by sha256) as it is
/// described, one at a time. `None` when the markers do not come out as exactly the
/// attachments taken out (a run that was not one whole body, a body inside a forwarded mail,
/// a file `load` cannot give back): the caller then reads the whole mail the ordinary way.
pub fn understand_slimmed(
    slimmed: slim::Slimmed,
    guard: &LoopGuard,
    load: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
    each_file: &mut dyn FnMut(&mut Attachment),
) -> Option<Understood> {
    if slimmed.doubtful {
        return None;
    }
    let mut taken = Some(TakenOut {
        load,
        places: slimmed.places,
        expected: slimmed.parts,
        found: Vec::new(),
        failed: false,
    });
    let mut understood = parse_guarded(&slimmed.mail, guard, &mut taken);
    drop(slimmed.mail);
    let taken = taken?;
    let mut expected = taken.expected;
    let mut found = taken.found;
    expected.sort();
    found.sort();
    // A body taken out cannot show its marker in `body_text`: `understand_inner` fails the
    // shortcut for any text or HTML body whose raw lines hold a marker line.
    if taken.failed || expected != found {
        return None;
    }
    open_archives(&mut understood, each_file);
    Some(understood)
}

/// The bodies [`slim::slim`] took out of a mail, given back as their attachments are read.
struct TakenOut<'a> {
    load: &'a mut dyn FnMut(&str) -> Option<Vec<u8>>,
    /// Where slim wrote each marker line in the slimmed mail, beside `expected`.
    places: Vec<usize>,
    expected: Vec<String>,
    found: Vec<String>,
    failed: bool,
}

impl TakenOut<'_> {
    /// The stored bytes when `bytes` are one of the markers and slim wrote that marker inside
    /// `body` (the part's raw body in the slimmed mail), else `bytes` as they are.
    fn give_back(&mut self, bytes: Vec<u8>, body: std::ops::Range<usize>) -> Vec<u8> {
        let Some(sha) = slim::marked(&bytes) else {
            return bytes;
        };
        let placed = self
            .expected
            .iter()
            .zip(&self.places)
            .any(|(e, at)| e == sha && body.contains(at));
        if !placed {
            return bytes;
        }
        match (self.load)(sha) {
            Some(stored) => {
                self.found.push(sha.to_string());
                stored
            }
            None => {
                self.failed = true;
                bytes
            }
        }
    }
}

/// Lists the zips and winmail.dat files among the attachments into their `entries`, within
/// one budget for the whole message, so a mail full of zips cannot make us inflate gigabytes;
/// each file goes to `each_file` once complete (entries before their archive).
fn open_archives(u: &mut Understood, each_file: &mut dyn FnMut(&mut Attachment)) {
    let mut zip_budget = ZipLimits::default().max_total;
    for attachment in &mut u.attachments {
        list_archive_guarded(attachment, &mut zip_budget, each_file);
        each_file(attachment);
    }
}

/// [`list_archive`], a panic in a zip or TNEF reader recorded as the attachment's error.
fn list_archive_guarded(
    attachment: &mut Attachment,
    zip_budget: &mut u64,
    each_file: &mut dyn FnMut(&mut Attachment),
) {
    let listed = catch_unwind(AssertUnwindSafe(|| {
        list_archive(attachment, zip_budget, each_file)
    }));
    if listed.is_err() {
        attachment.entries.clear();
        attachment.error = Some("压缩包解析时出现内部错误，未能列出其中的文件".to_string());
    }
}

/// One attached file as [`understand`] makes it: format sniffed, role and problems noted, and
/// a zip or winmail.dat opened one level (with a message's whole budget). For the `attach`
/// fuzz target and its kept inputs, which feed single files through the daemon's own path.
pub fn attachment(filename: String, content_type: String, bytes: Vec<u8>) -> Attachment {
    let mut a = build_attachment(filename, content_type, bytes);
    list_archive_guarded(&mut a, &mut ZipLimits::default().max_total, &mut |_| {});
    a
}

fn parse_guarded(raw: &[u8], guard: &LoopGuard, taken: &mut Option<TakenOut<'_>>) -> Understood {
    match catch_unwind(AssertUnwindSafe(|| understand_inner(raw, guard, taken))) {
        Ok(understood) => understood,
        Err(_) => {
            // Whatever the markers stood for is not among the attachments now.
            if let Some(t) = taken {
                t.failed = true;
            }
            // Last resort: whatever the raw headers say, without MIME.
            let mut understood =
                catch_unwind(AssertUnwindSafe(|| headers_only(raw, guard))).unwrap_or_default();
            understood
                .warnings
                .push("邮件结构损坏：解析时出现内部错误，只读取了邮件头".to_string());
            understood
        }
    }
}

/// Skip an mbox `From ` separator line if the file starts with one.
fn skip_mbox_line(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        let end = raw
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(raw.len());
        raw.get(end..).unwrap_or_default()
    } else {
        raw
    }
}

/// The charset for raw 8-bit header bytes: the first legacy CJK charset the
/// message declares for any part, else the first other legacy charset
/// (Latin-1 mail with raw Latin-1 headers), else GB18030, which is what
/// Chinese Windows clients send when they send raw bytes. ASCII and Unicode
/// labels say nothing about raw bytes and are skipped.
fn choose_fallback(header_blocks: &[Vec<RawHeader>]) -> &'static encoding_rs::Encoding {
    let mut probe = Decoder::new(encoding_rs::GB18030);
    let mut declared = Vec::new();
    for block in header_blocks {
        let Some(ct) = headers::first(block, "Content-Type") else {
            continue;
        };
        let params = probe.params(&ct.value);
        let Some(label) = params.param("charset") else {
            continue;
        };
        let lower = label.trim().to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "us-ascii" | "ascii" | "ansi_x3.4-1968" | "default" | ""
        ) {
            continue;
        }
        if let Some(encoding) = headers::encoding_for_label(&lower) {
            declared.push(encoding);
        }
    }
    let cjk = [
        encoding_rs::GB18030,
        encoding_rs::BIG5,
        encoding_rs::SHIFT_JIS,
        encoding_rs::EUC_JP,
        encoding_rs::EUC_KR,
    ];
    if let Some(encoding) = declared.iter().find(|e| cjk.contains(e)) {
        return encoding;
    }
    let unusable = [
        encoding_rs::UTF_8,
        encoding_rs::UTF_16LE,
        encoding_rs::UTF_16BE,
        encoding_rs::ISO_2022_JP,
        encoding_rs::X_USER_DEFINED,
    ];
    declared
        .into_iter()
        .find(|e| !unusable.contains(e))
        .unwrap_or(encoding_rs::GB18030)
}

/// The envelope fields that come from the top-level headers alone.
fn read_envelope(top: &[RawHeader], dec: &mut Decoder) -> Understood {
    let mut u = Understood::default();
    if let Some(h) = headers::first(top, "Subject") {
        let subject = dec.unstructured(&h.value);
        // Control characters become spaces; bidi overrides and zero-width characters go
        // (the subject is shown in acks, `status` and exports).
        u.subject = headers::collapse_whitespace(&attach::display_text(
            &subject.replace(|c: char| c.is_control(), " "),
        ));
        if u.subject.contains('\u{FFFD}') {
            dec.warn("主题含有无法解码的字符".to_string());
        }
    }
    let addresses = |name: &str, dec: &mut Decoder| -> Vec<Address> {
        headers::all(top, name)
            .flat_map(|h| dec.addresses(&h.value))
            .collect()
    };
    u.from = addresses("From", dec).into_iter().next();
    u.reply_to = addresses("Reply-To", dec).into_iter().next();
    u.to = addresses("To", dec);
    u.cc = addresses("Cc", dec);
    u.return_path = headers::first(top, "Return-Path").map(|h| return_path(&h.value));
    u.message_id = headers::first(top, "Message-ID")
        .and_then(|h| headers::message_ids(&h.value).into_iter().next());
    u.in_reply_to = headers::first(top, "In-Reply-To")
        .and_then(|h| headers::message_ids(&h.value).into_iter().next());
    u.references = headers::all(top, "References")
        .flat_map(|h| headers::message_ids(&h.value))
        .collect();
    if let Some(h) = headers::first(top, "Date") {
        u.date = parse_date_fallback(&String::from_utf8_lossy(&h.value));
    }
    u
}

/// `<>` → `""`; `<a@B>` → `a@b`.
fn return_path(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    let inner = match (text.find('<'), text.rfind('>')) {
        (Some(lt), Some(gt)) if gt > lt => text.get(lt + 1..gt).unwrap_or(""),
        _ => text,
    };
    let inner: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    match inner.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => inner,
    }
}

/// chrono's RFC 2822 parser, after dropping comments such as `(CST)`.
fn parse_date_fallback(text: &str) -> Option<DateTime<FixedOffset>> {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    DateTime::parse_from_rfc2822(plain.trim()).ok()
}

fn convert_date(d: &mail_parser::DateTime) -> Option<DateTime<FixedOffset>> {
    let seconds = i32::from(d.tz_hour) * 3600 + i32::from(d.tz_minute) * 60;
    let offset = FixedOffset::east_opt(if d.tz_before_gmt { -seconds } else { seconds })?;
    offset
        .with_ymd_and_hms(
            i32::from(d.year),
            u32::from(d.month),
            u32::from(d.day),
            u32::from(d.hour),
            u32::from(d.minute),
            u32::from(d.second),
        )
        .single()
}

/// Used when mail-parser gives up: the envelope from the raw headers and the
/// rest of the bytes as text.
fn headers_only(raw: &[u8], guard: &LoopGuard) -> Understood {
    let raw = skip_mbox_line(raw);
    let block = headers::header_block(raw);
    let top = headers::parse_header_block(block);
    let mut dec = Decoder::new(choose_fallback(std::slice::from_ref(&top)));
    let mut u = read_envelope(&top, &mut dec);
    let rest = raw.get(block.len()..).unwrap_or_default();
    let rest = rest
        .get(..rest.len().min(PART_TEXT_LIMIT))
        .unwrap_or_default();
    u.body_text = cap_text(body::tidy_text(&dec.raw_to_string(rest)));
    u.warnings = dec.warnings;
    (u.auto, u.auto_hints) = detect_auto(&u, &top, "", guard);
    u
}

fn detect_auto(
    u: &Understood,
    top: &[RawHeader],
    content_type: &str,
    guard: &LoopGuard,
) -> (Option<AutoSignal>, Vec<AutoSignal>) {
    let mut dec = Decoder::new(encoding_rs::GB18030);
    let sender =
        headers::first(top, "Sender").and_then(|h| dec.addresses(&h.value).into_iter().next());
    let (strong, weak): (Vec<_>, Vec<_>) = auto::detect(
        &auto::AutoInput {
            headers: top,
            from: u.from.as_ref(),
            sender: sender.as_ref(),
            return_path: u.return_path.as_deref(),
            content_type,
            message_id: u.message_id.as_deref(),
            subject: &u.subject,
        },
        guard,
    )
    .into_iter()
    .partition(|s| s.strength == Strength::Strong);
    (strong.into_iter().next(), weak)
}

/// Text looked at per body part (bytes): enough for any real letter, and a
/// bound on the work a hostile body can cause before the final cap.
const PART_TEXT_LIMIT: usize = 1024 * 1024;

/// The longest prefix of `text` within `max` bytes, on a char boundary.
fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.get(..cut).unwrap_or("")
}

/// Cap the body text at [`BODY_TEXT_LIMIT`] bytes on a char boundary.
fn cap_text(mut text: String) -> String {
    let keep = clip(&text, BODY_TEXT_LIMIT).len();
    text.truncate(keep);
    text
}

/// A body part's headers as we read them ourselves.
struct PartHeaders {
    content_type: ParamHeader,
    disposition: Option<ParamHeader>,
    transfer_encoding: String,
}

fn read_part_headers(block: &[RawHeader], dec: &mut Decoder) -> PartHeaders {
    PartHeaders {
        content_type: headers::first(block, "Content-Type")
            .map(|h| dec.params(&h.value))
            .unwrap_or_default(),
        disposition: headers::first(block, "Content-Disposition").map(|h| dec.params(&h.value)),
        transfer_encoding: headers::first(block, "Content-Transfer-Encoding")
            .map(|h| {
                String::from_utf8_lossy(&h.value)
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default(),
    }
}

impl PartHeaders {
    /// `filename` of Content-Disposition, else `name` of Content-Type.
    fn filename(&self) -> Option<String> {
        let pick = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        pick(self.disposition.as_ref().and_then(|d| d.param("filename")))
            .or_else(|| pick(self.content_type.param("name")))
    }

    fn is_attachment_disposition(&self) -> bool {
        self.disposition
            .as_ref()
            .is_some_and(|d| d.value.starts_with("attachment"))
    }
}

/// Undo the Content-Transfer-Encoding of a raw body slice.
fn transfer_decode(raw: &[u8], encoding: &str, in_multipart: bool) -> Vec<u8> {
    match encoding {
        "base64" => headers::base64_decode_lenient(raw),
        "quoted-printable" => {
            let raw = if in_multipart {
                strip_final_newline(raw)
            } else {
                raw
            };
            headers::quoted_printable_decode(raw)
        }
        _ => {
            let raw = if in_multipart {
                strip_final_newline(raw)
            } else {
                raw
            };
            raw.to_vec()
        }
    }
}

/// The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1).
fn strip_final_newline(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(raw)
}

/// A parsed message that is taken apart without recursion when dropped.
///
/// mail-parser nests each `message/rfc822` part (and each part of a `multipart/digest`) as a
/// [`PartType::Message`] holding a whole `Message`, and parses any depth with a heap stack; but
/// the derived `Drop` recurses once per level. A mail of ~50 bytes a level
/// (`Content-Type: message/rfc822` tens of thousands of times, about 2 MB) then overflows the
/// stack of the thread reading it, which aborts the whole daemon — `catch_unwind` cannot stop
/// that — and the stored mail would do it again on every restart (found by `fuzz/`, see
/// `deeply_nested_rfc822_does_not_overflow_the_stack`). So the nested parts are moved into one
/// flat list and dropped one by one.
struct FlatDrop<'x>(mail_parser::Message<'x>);

impl<'x> std::ops::Deref for FlatDrop<'x> {
    type Target = mail_parser::Message<'x>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for FlatDrop<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for FlatDrop<'_> {
    fn drop(&mut self) {
        let mut parts = std::mem::take(&mut self.0.parts);
        while let Some(mut part) = parts.pop() {
            if let PartType::Message(inner) = &mut part.body {
                parts.append(&mut inner.parts);
            }
        }
    }
}

fn understand_inner(raw: &[u8], guard: &LoopGuard, taken: &mut Option<TakenOut<'_>>) -> Understood {
    let parsed = catch_unwind(AssertUnwindSafe(|| MessageParser::default().parse(raw)));
    let mut message = match parsed {
        Ok(Some(message)) if !message.parts.is_empty() => FlatDrop(message),
        _ => {
            let mut u = headers_only(raw, guard);
            u.warnings
                .push("邮件结构损坏：无法解析 MIME 结构，只读取了邮件头和原文".to_string());
            return u;
        }
    };

    let top_raw = skip_mbox_line(raw);
    let top = headers::parse_header_block(headers::header_block(top_raw));

    // Each part's own raw header block, by mail-parser's offsets.
    let part_blocks: Vec<Vec<RawHeader>> = message
        .parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                return top.clone();
            }
            let start = part.offset_header as usize;
            let end = part.offset_body as usize;
            raw.get(start..end)
                .map(headers::parse_header_block)
                .unwrap_or_default()
        })
        .collect();

    let mut dec = Decoder::new(choose_fallback(&part_blocks));
    let mut u = read_envelope(&top, &mut dec);

    // mail-parser as a second opinion where our raw reading found nothing.
    if u.subject.is_empty()
        && let Some(subject) = message.subject()
    {
        u.subject = headers::collapse_whitespace(&attach::display_text(
            &subject.replace(|c: char| c.is_control(), " "),
        ));
    }
    if u.from.is_none()
        && let Some(addr) = message.from().and_then(|a| a.first())
        && let Some(address) = addr.address.as_deref().filter(|a| !a.trim().is_empty())
    {
        u.from = Some(Address {
            name: addr.name.as_deref().map(str::to_string),
            addr: address.trim().to_string(),
        });
    }
    if u.message_id.is_none() {
        u.message_id = message.message_id().map(str::to_string);
    }
    if let Some(date) = message.date().and_then(convert_date) {
        u.date = Some(date);
    } else if headers::first(&top, "Date").is_some() && u.date.is_none() {
        dec.warn("Date 头无法解析".to_string());
    }

    let root_headers = part_blocks.first().map(|b| read_part_headers(b, &mut dec));
    let root_type = root_headers
        .as_ref()
        .map(|h| h.content_type.value.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "text/plain".to_string());

    // Body text: the text bodies mail-parser chose, HTML converted if that is all there is.
    let mut text = String::new();
    let mut htmls: Vec<String> = Vec::new();
    for id in &message.text_body {
        let Some(part) = message.parts.get(*id as usize) else {
            continue;
        };
        match &part.body {
            PartType::Text(t) => {
                let t = redecode_if_needed(
                    t,
                    part,
                    raw,
                    part_blocks.get(*id as usize),
                    &mut dec,
                    *id != 0,
                );
                text.push_str(clip(&t, PART_TEXT_LIMIT));
                text.push('\n');
            }
            PartType::Html(h) => {
                let h = redecode_if_needed(
                    h,
                    part,
                    raw,
                    part_blocks.get(*id as usize),
                    &mut dec,
                    *id != 0,
                );
                text.push_str(&body::html_to_text(clip(&h, PART_TEXT_LIMIT)));
                text.push('\n');
            }
            _ => {}
        }
    }
    for id in &message.html_body {
        let Some(part) = message.parts.get(*id as usize) else {
            continue;
        };
        if let PartType::Html(h) = &part.body
            && htmls.len() < 20
        {
            htmls.push(redecode_if_needed(
                h,
                part,
                raw,
                part_blocks.get(*id as usize),
                &mut dec,
                *id != 0,
            ));
            if let Some(last) = htmls.last_mut() {
                let keep = clip(last, PART_TEXT_LIMIT).len();
                last.truncate(keep);
            }
        }
    }
    if text.trim().is_empty() {
        text = htmls
            .iter()
            .map(|h| body::html_to_text(h))
            .collect::<Vec<_>>()
            .join("\n");
    }
    // A text or HTML body the shortcut took out would be read as its marker here, and its
    // words and links lost, even when the same part is also an attachment that gets its bytes
    // back (an inline part with a file name) and the marker never shows in `body_text` (HTML
    // beside a plain text, a charset such as UTF-16 that does not keep ASCII as it is).
    if let Some(t) = taken.as_mut() {
        let start = slim::marker_line_start();
        let marked_body = message
            .text_body
            .iter()
            .chain(&message.html_body)
            .filter_map(|id| message.parts.get(*id as usize))
            .filter_map(|part| raw.get(part.offset_body as usize..part.offset_end as usize))
            .any(|body| body.windows(start.len()).any(|w| w == start.as_slice()));
        if marked_body {
            t.failed = true;
        }
    }
    let text = body::tidy_text(&text);
    u.cloud_links = body::cloud_links(&text, &htmls);
    u.body_text = cap_text(text);

    // Attachments.
    let mut unnamed = 0usize;
    let mut dropped = 0usize;
    for (index, part) in message.parts.iter_mut().enumerate() {
        if u.attachments.len() >= MAX_ATTACHMENTS {
            if !matches!(
                part.body,
                PartType::Multipart(_) | PartType::Text(_) | PartType::Html(_)
            ) {
                dropped += 1;
            }
            continue;
        }
        let block = part_blocks
            .get(index)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ph = read_part_headers(block, &mut dec);
        if part.is_encoding_problem {
            dec.warn(format!(
                "邮件结构损坏：第 {} 个部分无法正常解码（编码错误或缺少 MIME 边界），已尽量恢复",
                index + 1
            ));
        }
        let filename = ph.filename().or_else(|| {
            part.attachment_name()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
        });
        let mime = if ph.content_type.value.is_empty() {
            part.content_type()
                .map(|ct| {
                    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase()
                })
                .unwrap_or_else(|| "text/plain".to_string())
        } else {
            ph.content_type.value.clone()
        };
        let (bytes, generated_name) = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Message(_) => (part.contents().to_vec(), Some("转发的邮件.eml".to_string())),
            PartType::Text(_) | PartType::Html(_) => {
                if filename.is_none() && !ph.is_attachment_disposition() {
                    continue;
                }
                let body_raw = raw
                    .get(part.offset_body as usize..part.offset_end as usize)
                    .unwrap_or_default();
                (
                    transfer_decode(body_raw, &ph.transfer_encoding, index != 0),
                    None,
                )
            }
            // Taken, not copied: a decoded 50 MB attachment must not exist twice in memory.
            PartType::Binary(_) | PartType::InlineBinary(_) => match &mut part.body {
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    (std::mem::take(b).into_owned(), None)
                }
                _ => continue,
            },
        };
        let body = part.offset_body as usize..part.offset_end as usize;
        let bytes = match taken {
            Some(t) => t.give_back(bytes, body),
            None => bytes,
        };
        let (filename, declared) = match filename {
            Some(name) => {
                let declared = attach::declared_format(&name);
                (name, declared)
            }
            None => {
                let name = match generated_name {
                    Some(name) => name,
                    None => {
                        unnamed += 1;
                        let ext = extension_for(attach::sniff(&bytes), &mime);
                        format!("未命名附件{unnamed}{ext}")
                    }
                };
                (name, None)
            }
        };
        let mut attachment = build_attachment(filename, mime, bytes);
        attachment.declared_format = declared;
        u.attachments.push(attachment);
    }
    if dropped > 0 {
        dec.warn(format!("附件过多：另有 {dropped} 个附件未处理"));
    }

    u.warnings = dec.warnings;
    (u.auto, u.auto_hints) = detect_auto(&u, &top, &root_type, guard);
    u
}

/// mail-parser decodes text with the declared charset, or as UTF-8 when none
/// is declared; undeclared GBK then comes out as U+FFFD. In that case decode
/// the raw bytes again with our fallback and keep whichever is cleaner.
fn redecode_if_needed(
    text: &str,
    part: &mail_parser::MessagePart<'_>,
    raw: &[u8],
    block: Option<&Vec<RawHeader>>,
    dec: &mut Decoder,
    in_multipart: bool,
) -> String {
    if !text.contains('\u{FFFD}') {
        return text.to_string();
    }
    let Some(block) = block else {
        return text.to_string();
    };
    let ph = read_part_headers(block, dec);
    let Some(body_raw) = raw.get(part.offset_body as usize..part.offset_end as usize) else {
        return text.to_string();
    };
    let bytes = transfer_decode(body_raw, &ph.transfer_encoding, in_multipart);
    let again = match ph.content_type.param("charset") {
        Some(label) if headers::encoding_for_label(label).is_some() => {
            dec.decode_charset(&bytes, label)
        }
        _ => dec.raw_to_string(&bytes),
    };
    let bad = |s: &str| s.matches('\u{FFFD}').count();
    if bad(&again) < bad(text) {
        again
    } else {
        dec.warn("正文含有无法解码的字符".to_string());
        text.to_string()
    }
}

/// An extension for a generated name, from the content first.
fn extension_for(format: Format, mime: &str) -> &'static str {
    match format {
        Format::Doc => ".doc",
        Format::Docx => ".docx",
        Format::Xls => ".xls",
        Format::Xlsx => ".xlsx",
        Format::WordXml => ".xml",
        Format::ExcelXml => ".xml",
        Format::Zip => ".zip",
        Format::Pdf => ".pdf",
        Format::Tnef => ".dat",
        Format::Image => match mime {
            "image/png" => ".png",
            "image/gif" => ".gif",
            "image/bmp" => ".bmp",
            "image/webp" => ".webp",
            "image/heic" | "image/heif" => ".heic",
            _ => ".jpg",
        },
        Format::Other => match mime {
            "text/plain" => ".txt",
            "text/html" => ".html",
            "text/calendar" => ".ics",
            "message/delivery-status" => ".txt",
            _ => "",
        },
    }
}

/// A MIME type for a zip entry, from its content.
fn mime_for(format: Format) -> &'static str {
    match format {
        Format::Doc => "application/msword",
        Format::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Format::Xls => "application/vnd.ms-excel",
        Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Format::WordXml | Format::ExcelXml => "application/xml",
        Format::Zip => "application/zip",
        Format::Pdf => "application/pdf",
        Format::Image => "image/*",
        Format::Tnef => "application/ms-tnef",
        Format::Other => "application/octet-stream",
    }
}

/// An attachment described by its bytes; zips and winmail.dat are opened later, by
/// [`open_archives`].
fn build_attachment(filename: String, content_type: String, bytes: Vec<u8>) -> Attachment {
    let format = attach::sniff_named(&bytes, &filename);
    let mut attachment = describe(filename, content_type, bytes, format);
    if !matches!(format, Format::Zip | Format::Tnef) {
        attachment.error = attach::content_note(&attachment.bytes, &attachment.filename);
    }
    attachment
}

/// Takes the files out of a zip or winmail.dat attachment (one level), within what is left of
/// the message's `zip_budget`.
fn list_archive(
    attachment: &mut Attachment,
    zip_budget: &mut u64,
    each_file: &mut dyn FnMut(&mut Attachment),
) {
    let format = attachment.format;
    if !matches!(format, Format::Zip | Format::Tnef) {
        return;
    }
    let limits = ZipLimits {
        max_total: (*zip_budget).min(ZipLimits::default().max_total),
        ..ZipLimits::default()
    };
    let mut entries = Vec::new();
    let mut take = |entry: attach::ZipEntry| {
        *zip_budget = zip_budget.saturating_sub(entry.bytes.len() as u64);
        let format = attach::sniff_named(&entry.bytes, &entry.filename);
        let mut child = describe(
            entry.filename,
            mime_for(format).to_string(),
            entry.bytes,
            format,
        );
        child.error = attach::content_note(&child.bytes, &child.filename);
        each_file(&mut child);
        entries.push(child);
    };
    let listed = if format == Format::Zip {
        attach::list_zip_each(&attachment.bytes, &limits, &mut take)
    } else {
        attach::list_tnef(&attachment.bytes, &limits).map(|all| all.into_iter().for_each(take))
    };
    match listed {
        // A partial listing is no listing: a missing form must not look like the sender's.
        Ok(()) => attachment.entries = entries,
        Err(e) => attachment.error = Some(e.to_string()),
    }
}

fn describe(filename: String, content_type: String, bytes: Vec<u8>, format: Format) -> Attachment {
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Attachment {
        safe_name: attach::safe_file_name(&filename),
        declared_format: attach::declared_format(&filename),
        role: attach::role(&filename, format),
        // What acks, exports and `show` print; the sender's raw name stays in the stored mail.
        filename: attach::display_name(&filename),
        content_type,
        size: bytes.len(),
        sha256,
        bytes,
        format,
        entries: Vec::new(),
        error: None,
    }
}
