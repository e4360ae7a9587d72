//! Header decoding from the raw bytes.
//!
//! Chinese mail headers arrive in every encoding the standards allow and a few
//! they do not: RFC 2047 words labelled `gb2312` that carry GBK-only
//! characters, RFC 2047 words inside quoted parameters, RFC 2231 parameters
//! with continuations, and raw 8-bit GBK. mail-parser decodes the standard
//! forms, but it turns raw 8-bit GBK into mojibake and puts a space between
//! adjacent encoded words inside quoted parameters (`"…党 支部.docx"`), so the
//! headers that people read (subject, names, file names) are decoded here from
//! the raw header block instead. The order matters: raw bytes become text
//! first (UTF-8 when valid, else the legacy charset), structure is parsed on
//! that text (a GBK trail byte may be `\`), and encoded words are decoded last.

use encoding_rs::Encoding;
use unicode_normalization::UnicodeNormalization;

use super::Address;

/// One header as it appears in the raw block: the name as written and the
/// unfolded value bytes (CR/LF removed, continuation whitespace kept).
#[derive(Debug, Clone)]
pub(crate) struct RawHeader {
    pub name: String,
    pub value: Vec<u8>,
}

/// The header block of a message or body part: everything up to the first
/// empty line (CRLF or bare LF), or all of it when there is none.
pub(crate) fn header_block(raw: &[u8]) -> &[u8] {
    let mut pos = 0;
    while pos < raw.len() {
        let line_end = raw
            .get(pos..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            .map(|i| pos + i);
        let Some(line_end) = line_end else {
            return raw;
        };
        let line = raw.get(pos..line_end).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            return raw.get(..pos).unwrap_or(raw);
        }
        pos = line_end + 1;
    }
    raw
}

/// Longest header value kept (bytes); longer ones are cut. No real header
/// comes close, and the bound keeps hostile headers cheap to decode.
const MAX_HEADER_VALUE: usize = 64 * 1024;
/// Headers kept per block.
const MAX_HEADERS: usize = 2000;

/// Split a header block into unfolded headers. Lines that are neither a
/// header nor a continuation are ignored, as are headers with an unusable name.
pub(crate) fn parse_header_block(block: &[u8]) -> Vec<RawHeader> {
    let mut headers: Vec<RawHeader> = Vec::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(last) = headers.last_mut() {
                let room = MAX_HEADER_VALUE.saturating_sub(last.value.len());
                last.value
                    .extend_from_slice(line.get(..room.min(line.len())).unwrap_or_default());
            }
            continue;
        }
        if headers.len() >= MAX_HEADERS {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name_bytes = line.get(..colon).unwrap_or_default();
        let name = String::from_utf8_lossy(name_bytes).trim().to_string();
        if name.is_empty() || name.len() > 128 || name.contains(char::is_whitespace) {
            continue;
        }
        let mut value = line.get(colon + 1..).unwrap_or_default();
        while let Some(rest) = value
            .strip_prefix(b" ")
            .or_else(|| value.strip_prefix(b"\t"))
        {
            value = rest;
        }
        headers.push(RawHeader {
            name,
            value: value
                .get(..MAX_HEADER_VALUE.min(value.len()))
                .unwrap_or_default()
                .to_vec(),
        });
    }
    headers
}

/// The first header of that name (case-insensitive). For Return-Path and the
/// like the first is the one the final MTA added.
pub(crate) fn first<'a>(headers: &'a [RawHeader], name: &str) -> Option<&'a RawHeader> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

/// Every header of that name, in order.
pub(crate) fn all<'a>(
    headers: &'a [RawHeader],
    name: &'a str,
) -> impl Iterator<Item = &'a RawHeader> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
}

/// The encoding a charset label names, with the mappings mail needs: every
/// GB label is decoded as GB18030 (a `gb2312` label often carries GBK-only
/// characters, and GB18030 is a superset of both), Big5 labels as
/// Big5-HKSCS (encoding_rs's Big5). `None` for labels nobody knows and for
/// encodings encoding_rs only maps to "replacement" (ISO-2022-CN, HZ).
pub(crate) fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    let label = label.trim().trim_matches(['"', '\'']);
    // RFC 2231 language suffix: `utf-8*zh-cn`.
    let label = label.split('*').next().unwrap_or(label).trim();
    let lower = label.to_ascii_lowercase();
    let encoding = match lower.as_str() {
        "gb2312" | "gbk" | "x-gbk" | "gb18030" | "cp936" | "ms936" | "windows-936"
        | "gb_2312-80" | "gb_2312" | "csgb2312" | "euc-cn" | "x-euc-cn" | "chinese"
        | "iso-ir-58" | "csiso58gb231280" | "x-gb18030" => Some(encoding_rs::GB18030),
        "big5" | "big5-hkscs" | "x-big5" | "cn-big5" | "csbig5" | "cp950" | "ms950"
        | "x-x-big5" => Some(encoding_rs::BIG5),
        "utf8" | "utf-8" | "unicode-1-1-utf-8" | "x-unicode20utf8" => Some(encoding_rs::UTF_8),
        "ascii" | "us-ascii" | "ansi_x3.4-1968" => Some(encoding_rs::WINDOWS_1252),
        _ => Encoding::for_label(lower.as_bytes()),
    }?;
    if encoding == encoding_rs::REPLACEMENT {
        return None;
    }
    if encoding == encoding_rs::GBK {
        return Some(encoding_rs::GB18030);
    }
    Some(encoding)
}

/// Decoding context: the charset for undeclared 8-bit bytes and the warnings
/// collected along the way.
#[derive(Debug)]
pub(crate) struct Decoder {
    /// Used for raw 8-bit header bytes that are not UTF-8. GB18030 unless the
    /// message declares another legacy CJK charset for its text.
    pub fallback: &'static Encoding,
    pub warnings: Vec<String>,
}

impl Decoder {
    pub fn new(fallback: &'static Encoding) -> Self {
        Decoder {
            fallback,
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) && self.warnings.len() < 50 {
            self.warnings.push(warning);
        }
    }

    /// Raw bytes as text: UTF-8 when they are valid UTF-8, else the fallback charset.
    pub fn raw_to_string(&self, bytes: &[u8]) -> String {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => self
                .fallback
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        }
    }

    /// Bytes in a declared charset. An unknown label falls back to UTF-8 or
    /// the fallback charset, with a warning.
    pub fn decode_charset(&mut self, bytes: &[u8], label: &str) -> String {
        if label.trim().is_empty() {
            return self.raw_to_string(bytes);
        }
        match encoding_for_label(label) {
            Some(encoding)
                if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE =>
            {
                encoding.decode(bytes).0.into_owned()
            }
            Some(encoding) => encoding.decode_without_bom_handling(bytes).0.into_owned(),
            None => {
                // mail-parser knows a few charsets encoding_rs does not (UTF-7).
                if let Some(decode) =
                    mail_parser::decoders::charsets::map::charset_decoder(label.trim().as_bytes())
                {
                    return decode(bytes);
                }
                let shown: String = label.chars().filter(|c| !c.is_control()).take(40).collect();
                self.warn(format!(
                    "无法识别的字符集“{shown}”，已按 UTF-8/GB18030 猜测解码"
                ));
                self.raw_to_string(bytes)
            }
        }
    }

    /// An unstructured header (Subject, Content-Description): RFC 2047
    /// words decoded, everything else raw bytes to text, NFC.
    pub fn unstructured(&mut self, raw: &[u8]) -> String {
        let decoded = self.decode_words_bytes(raw);
        decoded.nfc().collect()
    }

    /// [`Decoder::decode_words_bytes`] for text that is already a string.
    pub fn decode_words(&mut self, text: &str) -> String {
        if !text.contains("=?") {
            return text.to_string();
        }
        self.decode_words_bytes(text.as_bytes())
    }

    /// Decode RFC 2047 encoded words in raw header bytes.
    ///
    /// Works on bytes so that raw 8-bit bytes *inside* an encoded word
    /// (`=?iso-8859-1?Q?Fr\xF6sche?=`, seen from old Outlook) stay bytes of
    /// the declared charset, while raw bytes *between* words become text via
    /// [`Decoder::raw_to_string`]. `=?` cannot be a GBK or Big5 trail byte
    /// pair, so splitting there never cuts a character.
    ///
    /// Whitespace between adjacent encoded words is dropped, as the RFC says.
    /// Adjacent words in the same charset are joined *before* charset
    /// decoding, because encoders (Outlook, older Foxmail) split a multi-byte
    /// character across two words. Malformed words are left as they are.
    pub fn decode_words_bytes(&mut self, raw: &[u8]) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut pending: Option<(String, Vec<u8>)> = None;
        let mut gap: Vec<u8> = Vec::new();
        let mut literal: Vec<u8> = Vec::new();
        let mut i = 0;
        while let Some(&b) = raw.get(i) {
            let rest = raw.get(i..).unwrap_or_default();
            if rest.starts_with(b"=?")
                && let Some((charset, bytes, consumed)) = parse_encoded_word(rest)
            {
                if !literal.is_empty() {
                    out.push_str(&self.raw_to_string(&literal));
                    literal.clear();
                }
                match &mut pending {
                    Some((cs, buf)) if cs.eq_ignore_ascii_case(&charset) => {
                        buf.extend_from_slice(&bytes)
                    }
                    _ => {
                        if let Some((cs, buf)) = pending.take() {
                            out.push_str(&self.decode_charset(&buf, &cs));
                        }
                        pending = Some((charset, bytes));
                    }
                }
                gap.clear();
                i += consumed.max(1);
                continue;
            }
            if pending.is_some() && matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                gap.push(b);
            } else {
                if let Some((cs, buf)) = pending.take() {
                    out.push_str(&self.decode_charset(&buf, &cs));
                    literal.append(&mut gap);
                }
                literal.push(b);
            }
            i += 1;
        }
        if let Some((cs, buf)) = pending.take() {
            out.push_str(&self.decode_charset(&buf, &cs));
            literal.append(&mut gap);
        }
        if !literal.is_empty() {
            out.push_str(&self.raw_to_string(&literal));
        }
        out
    }

    /// A structured header with parameters (Content-Type, Content-Disposition).
    pub fn params(&mut self, raw: &[u8]) -> ParamHeader {
        let text = self.raw_to_string(raw);
        let segments = split_params(&text);
        let mut iter = segments.into_iter();
        let value = iter
            .next()
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let mut pieces: Vec<Piece> = Vec::new();
        for segment in iter {
            let Some((name, value)) = segment.split_once('=') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let value = unquote(value.trim());
            let (base, index, extended) = split_param_name(&name);
            pieces.push(Piece {
                base,
                index,
                extended,
                value,
            });
        }
        let mut params: Vec<(String, String)> = Vec::new();
        let mut bases: Vec<String> = Vec::new();
        for piece in &pieces {
            if !bases.contains(&piece.base) {
                bases.push(piece.base.clone());
            }
        }
        for base in bases {
            let mine: Vec<&Piece> = pieces.iter().filter(|p| p.base == base).collect();
            if let Some(value) = self.assemble_param(&mine) {
                params.push((base, value.nfc().collect()));
            }
        }
        ParamHeader { value, params }
    }

    /// Put a parameter together from its pieces: RFC 2231 continuations
    /// (`name*0*=`, `name*1=` …) or the single extended form (`name*=`) take
    /// precedence over the plain form, which may hold RFC 2047 words.
    fn assemble_param(&mut self, pieces: &[&Piece]) -> Option<String> {
        let mut indexed: Vec<&Piece> = pieces
            .iter()
            .copied()
            .filter(|p| p.index.is_some())
            .collect();
        indexed.sort_by_key(|p| p.index);
        indexed.dedup_by_key(|p| p.index);
        let single_ext = pieces.iter().find(|p| p.index.is_none() && p.extended);
        let plain = pieces.iter().find(|p| p.index.is_none() && !p.extended);

        if !indexed.is_empty() {
            if indexed.iter().any(|p| p.extended) {
                let mut charset = String::new();
                let mut bytes = Vec::new();
                for (n, piece) in indexed.iter().enumerate() {
                    if piece.extended {
                        let mut value = piece.value.as_str();
                        if n == 0 {
                            let (cs, rest) = split_2231_charset(value);
                            charset = cs.to_string();
                            value = rest;
                        }
                        bytes.extend(percent_decode(value));
                    } else {
                        bytes.extend_from_slice(piece.value.as_bytes());
                    }
                }
                let decoded = self.decode_charset(&bytes, &charset);
                if !decoded.trim().is_empty() {
                    return Some(decoded);
                }
            } else {
                let joined: String = indexed.iter().map(|p| p.value.as_str()).collect();
                let decoded = self.decode_words(&joined);
                if !decoded.trim().is_empty() {
                    return Some(decoded);
                }
            }
        }
        if let Some(piece) = single_ext {
            let (charset, rest) = split_2231_charset(&piece.value);
            let bytes = percent_decode(rest);
            let decoded = self.decode_charset(&bytes, charset);
            if !decoded.trim().is_empty() {
                return Some(decoded);
            }
        }
        plain.map(|p| self.decode_words(&p.value))
    }

    /// An address list (From, To, Cc, Reply-To, Sender).
    pub fn addresses(&mut self, raw: &[u8]) -> Vec<Address> {
        let text = self.raw_to_string(raw);
        split_addresses(&text)
            .iter()
            .filter_map(|item| self.mailbox(item))
            .collect()
    }

    fn mailbox(&mut self, item: &str) -> Option<Address> {
        let item = item.trim();
        if item.is_empty() {
            return None;
        }
        let (name_part, addr_part) = match find_outside_quotes(item, '<') {
            Some(lt) => {
                let name = item.get(..lt).unwrap_or("");
                let after = item.get(lt + 1..).unwrap_or("");
                let addr = after.split('>').next().unwrap_or(after);
                (name.to_string(), addr.to_string())
            }
            None => {
                let (without, comments) = strip_comments(item);
                (comments, without)
            }
        };
        let addr = clean_addr(&addr_part);
        if addr.is_empty() {
            return None;
        }
        let name = unquote_loose(name_part.trim());
        let name = self.decode_words(&name);
        let name: String = name.nfc().collect();
        // The name is shown (the greeting of an ack, `status`): nothing hidden in it.
        let name = collapse_whitespace(&crate::attach::display_text(&name));
        Some(Address {
            name: if name.is_empty() { None } else { Some(name) },
            addr,
        })
    }
}

/// A parsed Content-Type or Content-Disposition: the lowercased main value
/// and the decoded parameters (lowercased names, in order of first appearance).
#[derive(Debug, Clone, Default)]
pub(crate) struct ParamHeader {
    pub value: String,
    pub params: Vec<(String, String)>,
}

impl ParamHeader {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Piece {
    base: String,
    index: Option<u32>,
    extended: bool,
    value: String,
}

/// `filename*0*` → ("filename", Some(0), true); `filename*` → (.., None, true).
fn split_param_name(name: &str) -> (String, Option<u32>, bool) {
    let (name, extended) = match name.strip_suffix('*') {
        Some(n) => (n, true),
        None => (name, false),
    };
    if let Some((base, index)) = name.rsplit_once('*')
        && let Ok(index) = index.parse::<u32>()
    {
        return (base.to_string(), Some(index), extended);
    }
    (name.to_string(), None, extended)
}

/// `UTF-8'zh-cn'%E4%B8%AD` → ("UTF-8", "%E4%B8%AD"). Without two quotes the
/// whole value is data in an unnamed charset.
fn split_2231_charset(value: &str) -> (&str, &str) {
    let mut parts = value.splitn(3, '\'');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(charset), Some(_lang), Some(rest)) => (charset, rest),
        _ => ("", value),
    }
}

fn percent_decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| hex_val(*c)),
                bytes.get(i + 2).and_then(|c| hex_val(*c)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parse one encoded word at the start of `s`: `(charset, bytes, length)`.
fn parse_encoded_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let body = s.strip_prefix(b"=?")?;
    let q1 = body.iter().take(65).position(|b| *b == b'?')?;
    let charset = body.get(..q1)?;
    if charset.is_empty()
        || !charset
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'*'))
    {
        return None;
    }
    let encoding = body.get(q1 + 1)?.to_ascii_uppercase();
    if body.get(q1 + 2) != Some(&b'?') || !matches!(encoding, b'B' | b'Q') {
        return None;
    }
    let text_start = q1 + 3;
    let text_all = body.get(text_start..)?;
    // Real encoded words are short (RFC 2047 says at most 75 characters);
    // the bound keeps a header full of stray `=?` linear.
    let end = text_all.windows(2).take(1024).position(|w| w == b"?=")?;
    let text = text_all.get(..end)?;
    let bytes = if encoding == b'B' {
        base64_decode_lenient(text)
    } else {
        q_decode(text)
    };
    let charset = String::from_utf8_lossy(charset).into_owned();
    Some((charset, bytes, 2 + text_start + end + 2))
}

/// Base64 that tolerates what real mail contains: line breaks, spaces,
/// missing padding, stray characters (skipped). Stops at the first `=`.
pub(crate) fn base64_decode_lenient(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 2047 Q encoding: `_` is a space, `=XX` a byte.
fn q_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        match c {
            b'_' => out.push(b' '),
            b'=' => {
                if let (Some(h), Some(l)) = (
                    input.get(i + 1).and_then(|c| hex_val(*c)),
                    input.get(i + 2).and_then(|c| hex_val(*c)),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Quoted-printable body decoding (soft line breaks, `=XX`), lenient about
/// malformed escapes, which are kept literally.
pub(crate) fn quoted_printable_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        if c == b'=' {
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(h), Some(l)) => {
                    if let (Some(h), Some(l)) = (hex_val(*h), hex_val(*l)) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Split `type/sub; a=1; b="x;y"` at semicolons outside quotes.
fn split_params(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_quote {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                cur.push(c);
            }
            ';' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A parameter value without its quotes. `\"` and `\\` are unescaped; any
/// other backslash is kept, because Windows clients put unescaped paths in
/// file names. A missing closing quote takes the rest of the value.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"') else {
        return value.trim().to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some('"') | Some('\\') => {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                }
                _ => out.push('\\'),
            },
            '"' => break,
            _ => out.push(c),
        }
    }
    out
}

/// A display name with its quotes removed wherever they are (`"张三" 老师`).
fn unquote_loose(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => in_quote = !in_quote,
            '\\' if in_quote => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn find_outside_quotes(text: &str, needle: char) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
        } else if c == '"' {
            in_quote = true;
        } else if c == needle {
            return Some(i);
        }
    }
    None
}

/// `a@b (Name)` → ("a@b", "Name").
fn strip_comments(text: &str) -> (String, String) {
    let mut plain = String::new();
    let mut comment = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => {
                if depth > 0 {
                    comment.push(c);
                }
                depth += 1;
            }
            ')' if depth > 0 => {
                depth -= 1;
                if depth > 0 {
                    comment.push(c);
                } else {
                    comment.push(' ');
                }
            }
            _ if depth > 0 => comment.push(c),
            _ => plain.push(c),
        }
    }
    (plain, comment.trim().to_string())
}

/// Normalise an address: no whitespace, quotes or `mailto:`; the domain lowercased.
fn clean_addr(addr: &str) -> String {
    let (addr, _) = strip_comments(addr);
    let addr: String = addr
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | '"'))
        .collect();
    let addr = addr
        .strip_prefix("mailto:")
        .or_else(|| addr.strip_prefix("MAILTO:"))
        .unwrap_or(&addr)
        .to_string();
    match addr.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => addr,
    }
}

/// Split an address list at top-level commas; group names (`team: a, b;`)
/// are dropped and their members kept.
fn split_addresses(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut escaped = false;
    let mut angle = 0usize;
    let mut paren = 0usize;
    for c in text.chars() {
        if in_quote {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        if paren > 0 {
            cur.push(c);
            match c {
                '(' => paren += 1,
                ')' => paren -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                cur.push(c);
            }
            '(' => {
                paren += 1;
                cur.push(c);
            }
            '<' => {
                angle += 1;
                cur.push(c);
            }
            '>' => {
                angle = angle.saturating_sub(1);
                cur.push(c);
            }
            ',' | ';' if angle == 0 => items.push(std::mem::take(&mut cur)),
            ':' if angle == 0 && !cur.contains('@') => cur.clear(),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    items
}

/// Message IDs in Message-ID, In-Reply-To or References, without `<>`.
/// Tolerates IDs written without brackets.
pub(crate) fn message_ids(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut ids = Vec::new();
    let mut rest: &str = &text;
    while let Some(lt) = rest.find('<') {
        let after = rest.get(lt + 1..).unwrap_or("");
        let Some(gt) = after.find('>') else { break };
        let id: String = after
            .get(..gt)
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !id.is_empty() {
            ids.push(id);
        }
        rest = after.get(gt + 1..).unwrap_or("");
    }
    if ids.is_empty() {
        ids = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|t| t.trim_matches(['<', '>']))
            .filter(|t| !t.is_empty() && t.contains('@'))
            .map(str::to_string)
            .collect();
    }
    ids
}

/// Collapse every run of whitespace to one space and trim.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec() -> Decoder {
        Decoder::new(encoding_rs::GB18030)
    }

    fn b64(bytes: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.len();
            let v = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= n {
                    out.push(T[((v >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn gbk(s: &str) -> Vec<u8> {
        encoding_rs::GB18030.encode(s).0.into_owned()
    }

    #[test]
    fn gb2312_label_with_gbk_only_characters() {
        // 镕 and 喆 are outside GB2312 but in GBK; senders still label it gb2312.
        let word = format!("=?gb2312?B?{}?=", b64(&gbk("朱镕基喆")));
        assert_eq!(dec().unstructured(word.as_bytes()), "朱镕基喆");
    }

    #[test]
    fn gbk_and_gb18030_labels() {
        let word = format!("=?GBK?B?{}?=", b64(&gbk("对标争先建设项目申报")));
        assert_eq!(dec().unstructured(word.as_bytes()), "对标争先建设项目申报");
        // U+20000 needs a GB18030 four-byte sequence.
        let four = gbk("𠀀支部");
        assert_eq!(four.get(..4), Some(&[0x95, 0x32, 0x82, 0x36][..]));
        let word = format!("=?gb18030?B?{}?=", b64(&four));
        assert_eq!(dec().unstructured(word.as_bytes()), "𠀀支部");
    }

    #[test]
    fn big5_word() {
        let big5 = encoding_rs::BIG5.encode("臺灣大學申請表").0.into_owned();
        let word = format!("=?big5?B?{}?=", b64(&big5));
        assert_eq!(dec().unstructured(word.as_bytes()), "臺灣大學申請表");
    }

    #[test]
    fn utf8_q_and_b_words() {
        assert_eq!(
            dec().unstructured(b"=?UTF-8?Q?=E7=94=B3=E8=AF=B7=E8=A1=A8_v2?="),
            "申请表 v2"
        );
        let word = format!("=?utf-8?b?{}?=", b64("汇总表".as_bytes()));
        assert_eq!(dec().unstructured(word.as_bytes()), "汇总表");
        // Text around words is kept, whitespace between words is not.
        assert_eq!(
            dec().unstructured(b"Re: =?UTF-8?Q?a?= =?UTF-8?Q?b?= c"),
            "Re: ab c"
        );
        // Malformed words stay literal.
        assert_eq!(
            dec().unstructured(b"=?UTF-8?X?abc?= x"),
            "=?UTF-8?X?abc?= x"
        );
        assert_eq!(dec().unstructured(b"=?UTF-8?Q?abc"), "=?UTF-8?Q?abc");
    }

    #[test]
    fn raw_8bit_byte_inside_an_encoded_word() {
        // Old Outlook put the raw Latin-1 byte into the Q text.
        assert_eq!(
            dec().unstructured(b"=?iso-8859-1?Q?Die_Hasen_und_die_Fr\xf6sche?="),
            "Die Hasen und die Frösche"
        );
        // Raw GBK around an encoded word.
        let mut raw = gbk("回复：");
        raw.extend_from_slice(format!("=?UTF-8?B?{}?=", b64("申报".as_bytes())).as_bytes());
        assert_eq!(dec().unstructured(&raw), "回复：申报");
    }

    #[test]
    fn multibyte_character_split_across_words() {
        let bytes = "党支部".as_bytes();
        let subject = format!(
            "=?UTF-8?B?{}?=\r\n =?UTF-8?B?{}?=",
            b64(&bytes[..4]),
            b64(&bytes[4..])
        );
        let headers = parse_header_block(format!("Subject: {subject}\r\n").as_bytes());
        assert_eq!(dec().unstructured(&headers[0].value), "党支部");
    }

    #[test]
    fn rfc2231_with_continuations_and_percent_encoding() {
        let raw = b"attachment;\r\n filename*0*=UTF-8''%E9%A1%B9%E7%9B%AE;\r\n filename*1*=%E7%94%B3%E8%AF%B7%E8%A1%A8;\r\n filename*2=.docx";
        let headers =
            parse_header_block(&[b"Content-Disposition: ".as_slice(), raw, b"\r\n"].concat());
        let p = dec().params(&headers[0].value);
        assert_eq!(p.value, "attachment");
        assert_eq!(p.param("filename"), Some("项目申请表.docx"));

        // GBK percent-encoding, as Outlook writes it, also with a gb2312 label.
        let gbk_pct: String = gbk("中文申请表")
            .iter()
            .map(|b| format!("%{b:02X}"))
            .collect();
        let raw = format!("attachment; filename*=gb2312''{gbk_pct}.doc");
        assert_eq!(
            dec().params(raw.as_bytes()).param("filename"),
            Some("中文申请表.doc")
        );

        // Out-of-order continuations are sorted; the extended form wins over a plain one.
        let raw = b"attachment; filename=\"fallback.doc\"; filename*1*=%E8%A1%A8.doc; filename*0*=utf-8'zh'%E7%94%B3%E8%AF%B7";
        assert_eq!(dec().params(raw).param("filename"), Some("申请表.doc"));

        // Plain continuations without any extended piece.
        let raw = b"application/msword; name*0=\"part\"; name*1=\"two.doc\"";
        let p = dec().params(raw);
        assert_eq!(p.value, "application/msword");
        assert_eq!(p.param("name"), Some("parttwo.doc"));
    }

    #[test]
    fn rfc2047_inside_quoted_parameter() {
        let raw = format!(
            "attachment; filename=\"=?UTF-8?B?{}?= =?UTF-8?B?{}?=\"",
            b64("汽车工程学院本科生第二党".as_bytes()),
            b64("支部申请表.docx".as_bytes())
        );
        assert_eq!(
            dec().params(raw.as_bytes()).param("filename"),
            Some("汽车工程学院本科生第二党支部申请表.docx")
        );
    }

    #[test]
    fn raw_8bit_gbk_and_utf8_headers() {
        let mut block = b"Subject: ".to_vec();
        block.extend(gbk("对标争先建设项目申报-某党支部"));
        block.extend_from_slice(b"\r\nContent-Disposition: attachment; filename=\"");
        block.extend(gbk("申请表.doc"));
        block.extend_from_slice(b"\"\r\nX-Utf8: ");
        block.extend_from_slice("汇总表 ✓".as_bytes());
        block.extend_from_slice(b"\r\n");
        let headers = parse_header_block(&block);
        let mut d = dec();
        assert_eq!(
            d.unstructured(&headers[0].value),
            "对标争先建设项目申报-某党支部"
        );
        assert_eq!(
            d.params(&headers[1].value).param("filename"),
            Some("申请表.doc")
        );
        assert_eq!(d.unstructured(&headers[2].value), "汇总表 ✓");
        // A GBK trail byte 0x5C (`\`) inside a quoted raw name must not act as an escape.
        let name = gbk("匼.doc");
        assert_eq!(name.get(1), Some(&0x5C));
        let raw = [b"attachment; filename=\"".as_slice(), &name, b"\""].concat();
        assert_eq!(d.params(&raw).param("filename"), Some("匼.doc"));
        // Big5 fallback when the message declares Big5.
        let mut big5 = Decoder::new(encoding_rs::BIG5);
        let raw = encoding_rs::BIG5.encode("臺灣").0.into_owned();
        assert_eq!(big5.unstructured(&raw), "臺灣");
    }

    #[test]
    fn unknown_charset_warns_and_guesses() {
        let mut d = dec();
        let word = format!("=?x-unknown?B?{}?=", b64(&gbk("申报")));
        assert_eq!(d.unstructured(word.as_bytes()), "申报");
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn addresses_with_encoded_and_raw_names() {
        let mut d = dec();
        let list = d.addresses(b"\"=?gb18030?B?wr3QwMi7?=\" <1781227347@QQ.COM>, bob@Example.ORG (Bob B), undisclosed-recipients:;");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name.as_deref(), Some("陆欣然"));
        assert_eq!(list[0].addr, "1781227347@qq.com");
        assert_eq!(list[1].name.as_deref(), Some("Bob B"));
        assert_eq!(list[1].addr, "bob@example.org");
        let raw = [gbk("张三").as_slice(), b" <Zhang.San@Example.edu.cn>"].concat();
        let list = d.addresses(&raw);
        assert_eq!(list[0].name.as_deref(), Some("张三"));
        assert_eq!(list[0].addr, "Zhang.San@example.edu.cn");
        let list = d.addresses(b"\"Doe, John\" <john@x.test>");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name.as_deref(), Some("Doe, John"));
        assert!(d.addresses(b"").is_empty());
        assert!(d.addresses(b"<>").is_empty());
    }

    #[test]
    fn ids_with_and_without_brackets() {
        assert_eq!(message_ids(b"<a@b> <c@d>"), ["a@b", "c@d"]);
        assert_eq!(message_ids(b"a@b"), ["a@b"]);
        assert!(message_ids(b"").is_empty());
    }

    #[test]
    fn header_block_and_folding() {
        let raw =
            b"From: a@b\r\nSubject: one\r\n\ttwo\r\nbroken line\r\n\r\nbody: not a header\r\n";
        let block = header_block(raw);
        let headers = parse_header_block(block);
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].value, b"one\ttwo");
        assert_eq!(header_block(b"no blank line"), b"no blank line");
        assert_eq!(header_block(b"\r\nbody"), b"");
    }
}
