//! Reads a Word form (.docx, Word 2003 XML, Flat OPC) into a [`Document`] of paragraphs and
//! tables, the only shape the form extractor needs.
//!
//! # Why not docx-rs for reading
//! The design card names docx-rs, and it is the right tool for *writing* .docx: the tests use
//! it (as a dev-dependency) to build real Word packages with merged cells. Its reader does not
//! serve here, for three reasons found in 0.4.22: the cell properties that carry merges
//! (`gridSpan`, `vMerge`) are private fields of `TableCellProperty`, reachable only by
//! serialising to JSON; `read_zip` calls `read_to_end(..).unwrap()` on the inflated entry with
//! no size limit, so a truncated or bomb-shaped attachment panics or allocates without bound;
//! and it drops or mixes up what a form needs (field results versus instructions, `w:sym`
//! check boxes, `w14:checkbox` state, deleted revisions). So the package is opened with `zip`
//! and `word/document.xml` is read with `quick-xml` as a stream of events, which gives full
//! control over limits and over what counts as text.
//!
//! # Hostile input
//! Attachments come from anyone who can send mail. Every limit in [`DocxLimits`] is checked on
//! the declared sizes *and* enforced while inflating (`Read::take`), XML that declares a DTD is
//! refused before any entity could be expanded (Word never writes one, so a DOCTYPE means a
//! crafted file: XXE or "billion laughs"), undefined entities are errors, and nesting depth,
//! cell count and text size are bounded. Every failure is an `Err` with a message a branch
//! secretary can act on; nothing here panics on input.

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::model::{Block, Cell, Document, Table};

/// Why a Word file could not be read. The `Display` text is Chinese and tells the branch what
/// to do, because it is quoted in the acknowledgement mail.
#[derive(Debug, thiserror::Error)]
pub enum DocxError {
    #[error("文件设置了打开密码，系统无法读取：请去掉密码后重新发送")]
    Encrypted,
    #[error("这是旧版 Word 97-2003（.doc）文件，不是 .docx")]
    LegacyDoc,
    #[error("文件不是 Word 文档（.docx）：请用 Word 或 WPS 打开后另存为 .docx 重新发送")]
    NotDocx,
    #[error("文件已损坏，无法打开（{0}）：请确认能在 Word 中正常打开，另存为 .docx 后重新发送")]
    Damaged(String),
    #[error("文件过大或结构异常（{0}）：请删除图片等大体积内容，另存为 .docx 后重新发送")]
    TooLarge(String),
    #[error(
        "文件含有不安全的 XML 声明（DTD/实体），系统拒绝读取：请用 Word 另存为 .docx 后重新发送"
    )]
    Unsafe,
}

/// Bounds on what one attachment may cost. The defaults are far above any real form (the
/// office's template is 25 KB) and far below what hurts a 2-core server.
#[derive(Debug, Clone)]
pub struct DocxLimits {
    /// Sum of the declared uncompressed sizes of all zip entries.
    pub max_uncompressed: u64,
    /// Number of entries in the zip.
    pub max_entries: usize,
    /// Size of the main document XML (inflated), or of a Word 2003 XML file.
    pub max_xml_bytes: u64,
    /// Table cells in the whole document, nested tables included.
    pub max_cells: usize,
}

impl Default for DocxLimits {
    fn default() -> Self {
        DocxLimits {
            max_uncompressed: 100 << 20,
            max_entries: 2000,
            max_xml_bytes: 50 << 20,
            max_cells: 100_000,
        }
    }
}

/// Element nesting deeper than this is not a Word document but an attack on the parser.
const MAX_DEPTH: usize = 256;
/// Tables nested in tables deeper than this are refused for the same reason.
const MAX_TABLE_DEPTH: usize = 16;
/// Largest `gridSpan` taken at face value (Word allows 63 columns).
const MAX_SPAN: u32 = 64;
const CFB_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Reads a .docx package. Also accepts a Word 2003 XML or Flat OPC file given under a .docx
/// name, and recognises an encrypted package (an OLE container holding `EncryptedPackage`,
/// which is what Word writes when a password is set) and a legacy .doc.
pub fn read_docx(bytes: &[u8], limits: &DocxLimits) -> Result<Document, DocxError> {
    if bytes.starts_with(&CFB_MAGIC) {
        return Err(if contains_utf16le(bytes, "EncryptedPackage") {
            DocxError::Encrypted
        } else {
            DocxError::LegacyDoc
        });
    }
    if !bytes.starts_with(b"PK") {
        return if looks_like_xml(bytes) {
            read_word_xml(bytes, limits)
        } else {
            Err(DocxError::NotDocx)
        };
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
    if zip.len() > limits.max_entries {
        return Err(DocxError::TooLarge(format!(
            "压缩包内有 {} 个文件",
            zip.len()
        )));
    }
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(zip_error)?;
        if f.encrypted() {
            return Err(DocxError::Encrypted);
        }
        total = total.saturating_add(f.size());
    }
    if total > limits.max_uncompressed {
        return Err(DocxError::TooLarge(format!("解压后 {} MB", total >> 20)));
    }
    let main = main_part(&mut zip, limits)?;
    let xml = read_entry(&mut zip, &main, limits.max_xml_bytes)?;
    parse_document_xml(&xml, limits)
}

/// Word 2003 XML (a single XML file with `w:wordDocument`, often saved with a .doc name).
///
/// The same event reader handles it, because the elements a form needs (`w:body`, `w:p`,
/// `w:r`, `w:t`, `w:tbl`, `w:tc`, `w:gridSpan`, `w:vmerge`, `w:fldChar`) have the same local
/// names there; Flat OPC (`pkg:package`, Word 2007 XML) works too, since only the part that
/// holds `w:body` produces blocks.
pub fn read_word_xml(bytes: &[u8], limits: &DocxLimits) -> Result<Document, DocxError> {
    if bytes.len() as u64 > limits.max_xml_bytes {
        return Err(DocxError::TooLarge(format!("XML {} MB", bytes.len() >> 20)));
    }
    if !looks_like_xml(bytes) {
        return Err(DocxError::NotDocx);
    }
    parse_document_xml(bytes, limits)
}

fn zip_error(e: zip::result::ZipError) -> DocxError {
    use zip::result::ZipError as Z;
    match e {
        Z::UnsupportedArchive(m) if m.to_ascii_lowercase().contains("password") => {
            DocxError::Encrypted
        }
        Z::InvalidPassword => DocxError::Encrypted,
        Z::FileNotFound => DocxError::NotDocx,
        other => DocxError::Damaged(format!("压缩包: {other}")),
    }
}

/// True when `hay` contains `needle` encoded as UTF-16LE, as OLE directory names are stored.
fn contains_utf16le(hay: &[u8], needle: &str) -> bool {
    let pat: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
    hay.windows(pat.len()).any(|w| w == pat.as_slice())
}

fn looks_like_xml(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let b = b.trim_ascii_start();
    b.starts_with(b"<") || bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF")
}

/// Inflates one entry, never more than `limit` bytes whatever its header claims.
fn read_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, DocxError> {
    let f = zip.by_name(name).map_err(zip_error)?;
    if f.size() > limit {
        return Err(DocxError::TooLarge(format!(
            "{name} 解压后 {} MB",
            f.size() >> 20
        )));
    }
    let cap = usize::try_from(f.size().min(limit)).unwrap_or(0);
    let mut buf = Vec::with_capacity(cap);
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| DocxError::Damaged(format!("{name}: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(DocxError::TooLarge(format!(
            "{name} 超过 {} MB",
            limit >> 20
        )));
    }
    Ok(buf)
}

/// The main document part named by `_rels/.rels` (`officeDocument` relationship), falling
/// back to `word/document.xml`, which is where Word and WPS put it.
fn main_part(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    limits: &DocxLimits,
) -> Result<String, DocxError> {
    const DEFAULT: &str = "word/document.xml";
    let Ok(rels) = read_entry(zip, "_rels/.rels", limits.max_xml_bytes.min(1 << 20)) else {
        return Ok(DEFAULT.to_string());
    };
    let mut reader = Reader::from_reader(rels.as_slice());
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == b"Relationship" => {
                let is_main = attr(&e, b"Type").is_some_and(|t| t.ends_with("/officeDocument"));
                if let (true, Some(target)) = (is_main, attr(&e, b"Target")) {
                    let target = target.trim_start_matches('/').to_string();
                    if zip.index_for_name(&target).is_some() {
                        return Ok(target);
                    }
                }
            }
            Ok(Event::DocType(_)) => return Err(DocxError::Unsafe),
            Ok(Event::Eof) | Err(_) => return Ok(DEFAULT.to_string()),
            Ok(_) => {}
        }
    }
}

/// The value of the attribute whose local name is `name` (`w:val`, `w14:val`, `val` alike).
fn attr(e: &BytesStart, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            let raw = std::str::from_utf8(&a.value).ok()?;
            quick_xml::escape::unescape(raw)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// A container being filled while the XML is read.
enum Frame {
    Table {
        rows: Vec<Vec<Cell>>,
        row: Option<Vec<Cell>>,
        row_deleted: bool,
    },
    Cell {
        paras: Vec<String>,
        span: u32,
        v_cont: bool,
        h_cont: bool,
    },
    /// `w:txbxContent`: paragraphs of a text box, appended to the enclosing paragraph.
    TextBox(Vec<String>),
    Para(String),
}

/// State of one `w:sdt` content control.
#[derive(Default)]
struct Sdt {
    /// `w14:checkbox` seen; its `w14:checked` state.
    checkbox: Option<bool>,
    /// `w:showingPlcHdr`: the content is the template's prompt, not an answer.
    placeholder: bool,
    /// Content text is replaced (check box glyph) or dropped (placeholder).
    suppress: bool,
}

/// Legacy form-field check box (`w:ffData/w:checkBox`) inside a field's `begin` mark.
#[derive(Default, Clone, Copy)]
struct LegacyBox {
    default: bool,
    checked: Option<bool>,
}

#[derive(Default)]
struct Parser {
    blocks: Vec<Block>,
    stack: Vec<Frame>,
    cells: usize,
    max_cells: usize,
    tables: usize,
    /// The root element was seen, and is a Word one (`w:document`, `w:wordDocument`,
    /// `pkg:package`).
    seen_root: bool,
    word_root: bool,
    in_body: bool,
    body_closed: bool,
    /// Depth inside a subtree whose text must not count (deletions, field instructions,
    /// property blocks, `mc:Fallback` duplicates); 0 when not skipping.
    skip: usize,
    run_depth: usize,
    in_t: bool,
    in_sdt_pr: usize,
    in_tr_pr: bool,
    run_font: Option<String>,
    /// Open complex fields: `false` while in the instruction part, `true` in the result.
    fields: Vec<bool>,
    legacy_box: Option<LegacyBox>,
    sdts: Vec<Sdt>,
    /// Text to put at the start of the next paragraph (a check box glyph emitted where no
    /// paragraph was open).
    pending: String,
}

/// Parses WordprocessingML (document.xml, Word 2003 XML or Flat OPC) into blocks.
fn parse_document_xml(xml: &[u8], limits: &DocxLimits) -> Result<Document, DocxError> {
    let text: std::borrow::Cow<[u8]> = if let Some(rest) = xml.strip_prefix(b"\xFF\xFE") {
        std::borrow::Cow::Owned(utf16(rest, u16::from_le_bytes))
    } else if let Some(rest) = xml.strip_prefix(b"\xFE\xFF") {
        std::borrow::Cow::Owned(utf16(rest, u16::from_be_bytes))
    } else {
        std::borrow::Cow::Borrowed(xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml))
    };
    let mut reader = Reader::from_reader(text.as_ref());
    let cfg = reader.config_mut();
    cfg.expand_empty_elements = true;
    cfg.check_end_names = true;
    let mut p = Parser {
        max_cells: limits.max_cells,
        ..Parser::default()
    };
    let mut depth = 0usize;
    loop {
        let ev = reader.read_event().map_err(|e| {
            DocxError::Damaged(format!("XML 错误，位置 {}: {e}", reader.error_position()))
        })?;
        match ev {
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DocxError::TooLarge("XML 嵌套过深".into()));
                }
                p.start(&e)?;
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                p.end(e.local_name().as_ref())?;
            }
            Event::Text(t) if p.in_t => {
                let s = t
                    .xml10_content()
                    .map_err(|e| DocxError::Damaged(format!("文字编码: {e}")))?;
                p.text(&s);
            }
            Event::CData(t) if p.in_t => {
                let s = String::from_utf8_lossy(&t);
                p.text(&s);
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match &*r {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        _ => return Err(DocxError::Unsafe),
                    },
                    Err(e) => return Err(DocxError::Damaged(format!("字符引用: {e}"))),
                };
                if p.in_t {
                    p.text(c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::DocType(_) => return Err(DocxError::Unsafe),
            Event::Eof => break,
            _ => {}
        }
    }
    if !p.body_closed {
        return Err(match (p.in_body, p.word_root) {
            (true, _) => DocxError::Damaged("正文不完整".into()),
            (false, true) => DocxError::Damaged("找不到正文".into()),
            (false, false) => DocxError::NotDocx,
        });
    }
    Ok(Document { blocks: p.blocks })
}

/// Transcodes UTF-16 XML to UTF-8 and drops its declaration, whose `encoding="UTF-16"`
/// would otherwise make quick-xml (when its `encoding` feature is on) decode the UTF-8 again.
fn utf16(b: &[u8], f: fn([u8; 2]) -> u16) -> Vec<u8> {
    let units = b.chunks_exact(2).filter_map(|c| c.try_into().ok()).map(f);
    let s: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or('\u{FFFD}'))
        .collect();
    let body = match s.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or("", |(_, b)| b),
        None => s.as_str(),
    };
    body.as_bytes().to_vec()
}

impl Parser {
    fn start(&mut self, e: &BytesStart) -> Result<(), DocxError> {
        if self.skip > 0 {
            self.skip += 1;
            return Ok(());
        }
        let name = e.local_name();
        let name = name.as_ref();
        if !self.seen_root {
            self.seen_root = true;
            self.word_root = matches!(name, b"document" | b"wordDocument" | b"package");
        }
        // `w:body`, never HTML's unprefixed `<body>` (Word's "web page" saved as .doc).
        if name == b"body" && e.name().prefix().is_some() {
            self.in_body = true;
            return Ok(());
        }
        if !self.in_body || self.body_closed {
            return Ok(());
        }
        match name {
            // Text that must not count, and property blocks with nothing for us inside.
            b"del" if self.in_tr_pr => self.set_row_deleted(),
            b"del" | b"moveFrom" | b"Fallback" | b"instrText" | b"delText" | b"delInstrText"
            | b"pPr" | b"tblPr" | b"tblGrid" | b"sectPr" | b"binData" | b"footnotePr"
            | b"endnotePr" => self.skip = 1,
            n if n.ends_with(b"PrChange") => self.skip = 1,
            b"p" => {
                let text = std::mem::take(&mut self.pending);
                self.stack.push(Frame::Para(text));
            }
            b"tbl" => {
                self.tables += 1;
                if self.tables > MAX_TABLE_DEPTH {
                    return Err(DocxError::TooLarge("表格嵌套过深".into()));
                }
                self.stack.push(Frame::Table {
                    rows: Vec::new(),
                    row: None,
                    row_deleted: false,
                });
            }
            b"tr" => {
                if let Some(Frame::Table {
                    row, row_deleted, ..
                }) = self.stack.last_mut()
                {
                    *row = Some(Vec::new());
                    *row_deleted = false;
                }
            }
            b"trPr" => self.in_tr_pr = true,
            b"gridBefore" if self.in_tr_pr => {
                let n = span_of(e);
                if let Some(Frame::Table { row: Some(row), .. }) = self.stack.last_mut()
                    && n > 0
                {
                    row.push(Cell {
                        text: String::new(),
                        col_span: n,
                        v_merged: false,
                    });
                }
            }
            b"tc" => self.stack.push(Frame::Cell {
                paras: Vec::new(),
                span: 1,
                v_cont: false,
                h_cont: false,
            }),
            b"gridSpan" => {
                if let Some(Frame::Cell { span, .. }) = self.stack.last_mut() {
                    *span = span_of(e).max(1);
                }
            }
            n if n.eq_ignore_ascii_case(b"vMerge") => {
                let cont = attr(e, b"val").is_none_or(|v| v != "restart");
                if let Some(Frame::Cell { v_cont, .. }) = self.stack.last_mut() {
                    *v_cont = cont;
                }
            }
            n if n.eq_ignore_ascii_case(b"hMerge") => {
                let cont = attr(e, b"val").is_none_or(|v| v != "restart");
                if let Some(Frame::Cell { h_cont, .. }) = self.stack.last_mut() {
                    *h_cont = cont;
                }
            }
            b"txbxContent" => self.stack.push(Frame::TextBox(Vec::new())),
            b"r" => {
                self.run_depth += 1;
                self.run_font = None;
            }
            b"rFonts" if self.run_depth > 0 => {
                self.run_font = attr(e, b"ascii").or_else(|| attr(e, b"hAnsi"));
            }
            b"t" => self.in_t = true,
            b"tab" | b"ptab" if self.run_depth > 0 => self.text("\t"),
            b"br" | b"cr" if self.run_depth > 0 => self.text("\n"),
            b"noBreakHyphen" if self.run_depth > 0 => self.text("-"),
            b"sym" if self.run_depth > 0 => {
                let font = attr(e, b"font");
                if let Some(c) = attr(e, b"char")
                    .and_then(|c| u32::from_str_radix(c.trim(), 16).ok())
                    .and_then(|c| symbol(font.as_deref(), c))
                {
                    self.text(c.encode_utf8(&mut [0; 4]));
                }
            }
            b"fldChar" => match attr(e, b"fldCharType").as_deref() {
                Some("begin") => {
                    self.fields.push(false);
                    self.legacy_box = None;
                }
                Some("separate") => {
                    if let Some(f) = self.fields.last_mut() {
                        *f = true;
                    }
                }
                Some("end") => {
                    self.fields.pop();
                }
                _ => {}
            },
            b"checkBox" => self.legacy_box = Some(LegacyBox::default()),
            b"default" => {
                if let Some(b) = self.legacy_box.as_mut() {
                    b.default = attr(e, b"val").is_some_and(|v| truthy(&v));
                }
            }
            b"checked" => {
                let on = attr(e, b"val").is_none_or(|v| truthy(&v));
                if self.in_sdt_pr > 0 {
                    if let Some(s) = self.sdts.last_mut() {
                        s.checkbox = Some(on);
                    }
                } else if let Some(b) = self.legacy_box.as_mut() {
                    b.checked = Some(on);
                }
            }
            b"sdt" => self.sdts.push(Sdt::default()),
            b"sdtPr" => self.in_sdt_pr += 1,
            b"checkbox" if self.in_sdt_pr > 0 => {
                if let Some(s) = self.sdts.last_mut() {
                    s.checkbox.get_or_insert(false);
                }
            }
            b"showingPlcHdr" if self.in_sdt_pr > 0 => {
                if let Some(s) = self.sdts.last_mut() {
                    s.placeholder = true;
                }
            }
            b"sdtContent" => {
                let glyph = match self.sdts.last_mut() {
                    Some(s) => {
                        s.suppress = s.checkbox.is_some() || s.placeholder;
                        s.checkbox.map(|on| if on { '☑' } else { '☐' })
                    }
                    None => None,
                };
                if let Some(g) = glyph {
                    self.emit_glyph(g);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, name: &[u8]) -> Result<(), DocxError> {
        if self.skip > 0 {
            self.skip -= 1;
            return Ok(());
        }
        if !self.in_body || self.body_closed {
            return Ok(());
        }
        match name {
            b"body" => self.body_closed = true,
            b"p" => {
                // A field whose end mark was lost (deleted in a revision) must not hide the
                // rest of the document: no real field keeps its instruction open across a
                // paragraph mark.
                self.fields.clear();
                if let Some(Frame::Para(text)) = self.stack.pop() {
                    match self.stack.last_mut() {
                        None => self.blocks.push(Block::Paragraph(text)),
                        Some(Frame::Cell { paras, .. } | Frame::TextBox(paras)) => paras.push(text),
                        Some(Frame::Para(outer)) => outer.push_str(&text),
                        Some(Frame::Table { .. }) => {}
                    }
                }
            }
            b"tbl" => {
                self.tables = self.tables.saturating_sub(1);
                if let Some(Frame::Table { mut rows, row, .. }) = self.stack.pop() {
                    rows.extend(row);
                    match self.stack.last_mut() {
                        None => self.blocks.push(Block::Table(Table { rows })),
                        Some(Frame::Cell { paras, .. } | Frame::TextBox(paras)) => {
                            paras.extend(flatten(&rows))
                        }
                        Some(Frame::Para(text)) => {
                            for line in flatten(&rows) {
                                text.push_str(&line);
                            }
                        }
                        Some(Frame::Table { .. }) => {}
                    }
                }
            }
            b"tr" => {
                if let Some(Frame::Table {
                    rows,
                    row,
                    row_deleted,
                }) = self.stack.last_mut()
                    && let Some(r) = row.take()
                    && !*row_deleted
                {
                    rows.push(r);
                }
            }
            b"trPr" => self.in_tr_pr = false,
            b"tc" => {
                if let Some(Frame::Cell {
                    paras,
                    span,
                    v_cont,
                    h_cont,
                }) = self.stack.pop()
                    && let Some(Frame::Table { row: Some(row), .. }) = self.stack.last_mut()
                {
                    if h_cont && let Some(prev) = row.last_mut() {
                        prev.col_span = prev.col_span.saturating_add(span).min(MAX_SPAN);
                        return Ok(());
                    }
                    self.cells += 1;
                    if self.cells > self.max_cells {
                        return Err(DocxError::TooLarge(format!(
                            "表格超过 {} 个单元格",
                            self.max_cells
                        )));
                    }
                    row.push(Cell {
                        text: if v_cont {
                            String::new()
                        } else {
                            paras.join("\n")
                        },
                        col_span: span,
                        v_merged: v_cont,
                    });
                }
            }
            b"txbxContent" => {
                if let Some(Frame::TextBox(paras)) = self.stack.pop() {
                    let joined = paras.join("\n");
                    if let Some(Frame::Para(text)) = self.stack.last_mut()
                        && !joined.trim().is_empty()
                    {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(&joined);
                    }
                }
            }
            b"r" => self.run_depth = self.run_depth.saturating_sub(1),
            b"t" => self.in_t = false,
            b"fldChar" => {
                if let Some(b) = self.legacy_box.take() {
                    let on = b.checked.unwrap_or(b.default);
                    let outer = self.fields.len().saturating_sub(1);
                    if self
                        .fields
                        .get(..outer)
                        .is_some_and(|f| f.iter().all(|r| *r))
                    {
                        self.emit_glyph(if on { '☑' } else { '☐' });
                    }
                }
            }
            b"sdt" => {
                self.sdts.pop();
            }
            b"sdtPr" => self.in_sdt_pr = self.in_sdt_pr.saturating_sub(1),
            _ => {}
        }
        Ok(())
    }

    fn set_row_deleted(&mut self) {
        if let Some(Frame::Table { row_deleted, .. }) = self.stack.last_mut() {
            *row_deleted = true;
        }
        self.skip = 1;
    }

    /// Appends run text to the open paragraph unless it is a field instruction or the
    /// replaced content of a content control.
    fn text(&mut self, s: &str) {
        if self.skip > 0
            || self.in_sdt_pr > 0
            || self.fields.iter().any(|in_result| !in_result)
            || self.sdts.iter().any(|s| s.suppress)
        {
            return;
        }
        if let Some(Frame::Para(text)) = self.stack.last_mut() {
            for c in s.chars() {
                let c = if ('\u{F000}'..='\u{F0FF}').contains(&c) {
                    symbol(self.run_font.as_deref(), c as u32).unwrap_or(c)
                } else {
                    c
                };
                text.push(c);
            }
        }
    }

    /// A check box glyph, written even where content text is suppressed.
    fn emit_glyph(&mut self, g: char) {
        match self.stack.last_mut() {
            Some(Frame::Para(text)) => text.push(g),
            _ => self.pending.push(g),
        }
    }
}

fn span_of(e: &BytesStart) -> u32 {
    attr(e, b"val")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .min(MAX_SPAN)
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "on")
}

/// A nested table as lines of text: one line per row, cells separated by tabs.
fn flatten(rows: &[Vec<Cell>]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|c| c.text.replace('\n', " "))
                .collect::<Vec<_>>()
                .join("\t")
        })
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Maps a symbol-font character (`w:sym w:char`, or a private-use character typed in a
/// symbol font) to the Unicode glyph it shows. Only check boxes, ticks and squares matter for
/// forms; other symbols are dropped. Codes may be given as `F0FE` or `FE`.
fn symbol(font: Option<&str>, code: u32) -> Option<char> {
    let code = if code < 0x100 {
        code
    } else {
        code.checked_sub(0xF000)?
    };
    let font = font.unwrap_or("Wingdings").to_ascii_lowercase();
    let c = if font.contains("wingdings 2") {
        match code {
            0x52 | 0x54 => '☑',
            0x53 | 0x51 | 0x4F => '☒',
            0x50 => '√',
            0xA3 | 0x2A | 0xA2 => '□',
            0x98 | 0x99 => '■',
            _ => return None,
        }
    } else if font.contains("wingdings") || font.contains("symbol") || font.is_empty() {
        match code {
            0xFE => '☑',
            0xFD | 0x78 => '☒',
            0xFC | 0xD6 => '√',
            0xFB => '✗',
            0xA8 | 0x6F | 0x71 | 0x72 => '□',
            0x6E | 0xA7 => '■',
            0xA1 => '○',
            0x6C | 0xA4 => '●',
            _ => return None,
        }
    } else {
        return None;
    };
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:w14="http://schemas.microsoft.com/office/word/2010/wordml" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006""#;

    fn doc(body: &str) -> Result<Document, DocxError> {
        let xml = format!(
            r#"<?xml version="1.0"?><w:document {NS}><w:body>{body}</w:body></w:document>"#
        );
        parse_document_xml(xml.as_bytes(), &DocxLimits::default())
    }

    fn para(body: &str) -> String {
        match doc(body).map(|d| d.blocks) {
            Ok(blocks) => match blocks.as_slice() {
                [Block::Paragraph(p)] => p.clone(),
                other => panic!("expected one paragraph, got {other:?}"),
            },
            Err(e) => panic!("{e}"),
        }
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn runs_tabs_breaks_and_symbols() {
        let p = para(
            r#"<w:p><w:r><w:t xml:space="preserve">项目 </w:t><w:tab/><w:t>名称</w:t><w:br/><w:t>&amp;&#x4E00;</w:t></w:r><w:r><w:rPr><w:rFonts w:ascii="Wingdings"/></w:rPr><w:sym w:font="Wingdings" w:char="F0FE"/><w:t>A</w:t><w:sym w:font="Wingdings" w:char="F0A8"/><w:sym w:font="Wingdings 2" w:char="F052"/><w:t>&#xF06E;</w:t></w:r></w:p>"#,
        );
        assert_eq!(p, "项目 \t名称\n&一☑A□☑■");
    }

    #[test]
    fn tab_stops_in_paragraph_properties_are_not_text() {
        let p = para(
            r#"<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>a</w:t></w:r></w:p>"#,
        );
        assert_eq!(p, "a");
    }

    #[test]
    fn fields_keep_results_and_drop_instructions() {
        let p = para(
            r#"<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> MERGEFIELD name </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>张三</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r><w:fldSimple w:instr="PAGE"><w:r><w:t>1</w:t></w:r></w:fldSimple><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:t>hidden</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>"#,
        );
        assert_eq!(p, "张三1");
        let d = doc(
            r#"<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:del><w:r><w:fldChar w:fldCharType="end"/></w:r></w:del></w:p><w:p><w:r><w:t>after</w:t></w:r></w:p>"#,
        )
        .unwrap();
        assert_eq!(d.blocks.last(), Some(&Block::Paragraph("after".into())));
    }

    #[test]
    fn legacy_form_checkbox() {
        let p = para(
            r#"<w:p><w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:checkBox><w:default w:val="0"/><w:checked/></w:checkBox></w:ffData></w:fldChar></w:r><w:r><w:instrText>FORMCHECKBOX</w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:t>固本强基</w:t></w:r><w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:checkBox><w:default w:val="0"/></w:checkBox></w:ffData></w:fldChar></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:t>校园善治</w:t></w:r></w:p>"#,
        );
        assert_eq!(p, "☑固本强基☐校园善治");
    }

    #[test]
    fn revisions_deleted_out_inserted_in() {
        let p = para(
            r#"<w:p><w:del w:id="1"><w:r><w:delText>旧</w:delText></w:r></w:del><w:ins w:id="2"><w:r><w:t>新</w:t></w:r></w:ins><w:moveFrom><w:r><w:t>X</w:t></w:r></w:moveFrom><w:moveTo><w:r><w:t>Y</w:t></w:r></w:moveTo></w:p>"#,
        );
        assert_eq!(p, "新Y");
    }

    #[test]
    fn content_controls_checkbox_and_placeholder() {
        let p = para(
            r#"<w:p><w:sdt><w:sdtPr><w14:checkbox><w14:checked w14:val="1"/></w14:checkbox></w:sdtPr><w:sdtContent><w:r><w:t>☒</w:t></w:r></w:sdtContent></w:sdt><w:r><w:t>A</w:t></w:r><w:sdt><w:sdtPr><w14:checkbox><w14:checked w14:val="0"/></w14:checkbox></w:sdtPr><w:sdtContent><w:r><w:t>☐</w:t></w:r></w:sdtContent></w:sdt><w:r><w:t>B</w:t></w:r><w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent><w:r><w:t>单击此处输入文字</w:t></w:r></w:sdtContent></w:sdt><w:sdt><w:sdtPr><w:alias w:val="x"/></w:sdtPr><w:sdtContent><w:r><w:t>填写的内容</w:t></w:r></w:sdtContent></w:sdt></w:p>"#,
        );
        assert_eq!(p, "☑A☐B填写的内容");
    }

    #[test]
    fn alternate_content_fallback_is_not_duplicated() {
        let p = para(
            r#"<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><w:txbxContent><w:p><w:r><w:t>框</w:t></w:r></w:p></w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>框</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r><w:r><w:t>外</w:t></w:r></w:p>"#,
        );
        assert_eq!(p, "框外");
    }

    #[test]
    fn tables_merges_nested_and_order() {
        let d = doc(concat!(
            r#"<w:p><w:r><w:t>标题</w:t></w:r></w:p><w:tbl><w:tblGrid><w:gridCol/></w:tblGrid>"#,
            r#"<w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>经费</w:t></w:r></w:p></w:tc><w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr><w:p><w:r><w:t>a</w:t></w:r></w:p><w:p><w:r><w:t>b</w:t></w:r></w:p></w:tc></w:tr>"#,
            r#"<w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p><w:r><w:t>ignored</w:t></w:r></w:p></w:tc><w:tc><w:tbl><w:tr><w:tc><w:p><w:r><w:t>x</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>y</w:t></w:r></w:p></w:tc></w:tr></w:tbl><w:p/></w:tc><w:tc><w:p><w:r><w:t>z</w:t></w:r></w:p></w:tc></w:tr>"#,
            r#"<w:tr><w:trPr><w:gridBefore w:val="1"/></w:trPr><w:tc><w:p><w:r><w:t>h1</w:t></w:r></w:p></w:tc><w:tc><w:tcPr><w:hMerge/></w:tcPr><w:p/></w:tc></w:tr>"#,
            r#"<w:tr><w:trPr><w:del w:id="9"/></w:trPr><w:tc><w:p><w:r><w:delText>gone</w:delText></w:r></w:p></w:tc></w:tr>"#,
            r#"</w:tbl><w:p><w:r><w:t>尾</w:t></w:r></w:p>"#,
        ))
        .unwrap();
        let c = |t: &str, span: u32, v: bool| Cell {
            text: t.into(),
            col_span: span,
            v_merged: v,
        };
        assert_eq!(
            d.blocks,
            vec![
                Block::Paragraph("标题".into()),
                Block::Table(Table {
                    rows: vec![
                        vec![c("经费", 1, false), c("a\nb", 2, false)],
                        vec![c("", 1, true), c("x\ty\n", 1, false), c("z", 1, false)],
                        vec![c("", 1, false), c("h1", 2, false)],
                    ]
                }),
                Block::Paragraph("尾".into()),
            ]
        );
    }

    #[test]
    fn hostile_xml_is_refused() {
        let xxe = format!(
            r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><w:document {NS}><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>"#
        );
        assert!(matches!(
            parse_document_xml(xxe.as_bytes(), &DocxLimits::default()),
            Err(DocxError::Unsafe)
        ));
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><w:document><w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"#;
        assert!(matches!(
            parse_document_xml(laughs.as_bytes(), &DocxLimits::default()),
            Err(DocxError::Unsafe)
        ));
        // An undeclared entity without a DTD is refused as well.
        assert!(doc("<w:p><w:r><w:t>&foo;</w:t></w:r></w:p>").is_err());
        // Truncated and mismatched XML.
        assert!(matches!(
            parse_document_xml(
                format!("<w:document {NS}><w:body><w:p><w:r><w:t>a").as_bytes(),
                &DocxLimits::default()
            ),
            Err(DocxError::Damaged(_))
        ));
        assert!(doc("<w:p><w:r></w:p>").is_err());
        let deep = "<w:sdt>".repeat(10_000);
        assert!(doc(&deep).is_err());
    }

    #[test]
    fn cell_limit() {
        let row = "<w:tc><w:p/></w:tc>".repeat(50);
        let body = format!(
            "<w:tbl>{}</w:tbl>",
            format!("<w:tr>{row}</w:tr>").repeat(50)
        );
        let xml = format!(r#"<w:document {NS}><w:body>{body}</w:body></w:document>"#);
        let limits = DocxLimits {
            max_cells: 1000,
            ..DocxLimits::default()
        };
        assert!(matches!(
            parse_document_xml(xml.as_bytes(), &limits),
            Err(DocxError::TooLarge(_))
        ));
        assert!(parse_document_xml(xml.as_bytes(), &DocxLimits::default()).is_ok());
    }

    #[test]
    fn packages_sniffing_and_limits() {
        let body = format!(
            r#"<w:document {NS}><w:body><w:p><w:r><w:t>你好</w:t></w:r></w:p></w:body></w:document>"#
        );
        let rels = br#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="/word/main.xml"/></Relationships>"#;
        let z = zip_of(&[("_rels/.rels", rels), ("word/main.xml", body.as_bytes())]);
        let d = read_docx(&z, &DocxLimits::default()).unwrap();
        assert_eq!(d.blocks, vec![Block::Paragraph("你好".into())]);

        // A zip bomb: 60 MB of zeros in document.xml.
        let bomb = vec![b' '; 60 << 20];
        let z = zip_of(&[("word/document.xml", &bomb)]);
        assert!(z.len() < 1 << 20);
        assert!(matches!(
            read_docx(&z, &DocxLimits::default()),
            Err(DocxError::TooLarge(_))
        ));
        let z = zip_of(&[("a.txt", b"x")]);
        assert!(matches!(
            read_docx(&z, &DocxLimits::default()),
            Err(DocxError::NotDocx)
        ));
        let many: Vec<(String, Vec<u8>)> = (0..30).map(|i| (format!("f{i}"), vec![])).collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let limits = DocxLimits {
            max_entries: 10,
            ..DocxLimits::default()
        };
        assert!(matches!(
            read_docx(&zip_of(&refs), &limits),
            Err(DocxError::TooLarge(_))
        ));

        let mut cfb = CFB_MAGIC.to_vec();
        cfb.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
        assert!(matches!(
            read_docx(&cfb, &DocxLimits::default()),
            Err(DocxError::Encrypted)
        ));
        assert!(matches!(
            read_docx(&CFB_MAGIC, &DocxLimits::default()),
            Err(DocxError::LegacyDoc)
        ));
        assert!(matches!(
            read_docx(b"{\\rtf1", &DocxLimits::default()),
            Err(DocxError::NotDocx)
        ));
        let html = b"<html><body><p>x</p></body></html>";
        assert!(matches!(
            read_docx(html, &DocxLimits::default()),
            Err(DocxError::NotDocx)
        ));
        assert!(matches!(
            read_docx(b"", &DocxLimits::default()),
            Err(DocxError::NotDocx)
        ));
        assert!(read_docx(b"PK\x03\x04garbage", &DocxLimits::default()).is_err());
    }

    #[test]
    fn word_2003_xml() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><?mso-application progid="Word.Document"?><w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml" xmlns:wx="http://schemas.microsoft.com/office/word/2003/auxHint"><w:body><wx:sect><w:tbl><w:tr><w:tc><w:tcPr><w:vmerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>项目名称</w:t></w:r></w:p></w:tc><w:tc><w:tcPr><w:gridSpan w:val="3"/></w:tcPr><w:p><w:r><w:t>值</w:t></w:r></w:p></w:tc></w:tr><w:tr><w:tc><w:tcPr><w:vmerge/></w:tcPr><w:p/></w:tc></w:tr></w:tbl></wx:sect></w:body></w:wordDocument>"#;
        let d = read_word_xml(xml.as_bytes(), &DocxLimits::default()).unwrap();
        let Some(Block::Table(t)) = d.blocks.first() else {
            panic!("{d:?}")
        };
        assert_eq!(t.rows[0][1].col_span, 3);
        assert!(t.rows[1][0].v_merged);
        // Also through read_docx (a .doc name on a Word XML file) and as UTF-16.
        assert!(read_docx(xml.as_bytes(), &DocxLimits::default()).is_ok());
        let mut u16 = vec![0xFF, 0xFE];
        u16.extend(
            xml.replace("UTF-8", "UTF-16")
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        assert_eq!(read_word_xml(&u16, &DocxLimits::default()).unwrap(), d);
    }

    /// A package written by docx-rs (an independent writer) reads back with its merges.
    #[test]
    fn reads_what_docx_rs_writes() {
        use docx_rs::{Docx, Paragraph, Run, Table as T, TableCell, TableRow, VMergeType};
        let cell = |s: &str| {
            TableCell::new().add_paragraph(Paragraph::new().add_run(Run::new().add_text(s)))
        };
        let table = T::new(vec![
            TableRow::new(vec![
                cell("经费预算").vertical_merge(VMergeType::Restart),
                cell("支出项目"),
                cell("金额"),
            ]),
            TableRow::new(vec![
                TableCell::new().vertical_merge(VMergeType::Continue),
                cell("合计"),
                cell("2800"),
            ]),
            TableRow::new(vec![cell("项目名称"), cell("红色").grid_span(2)]),
        ]);
        let mut out = Cursor::new(Vec::new());
        Docx::new()
            .add_paragraph(Paragraph::new().add_run(Run::new().add_text("申请表")))
            .add_table(table)
            .build()
            .pack(&mut out)
            .unwrap();
        let d = read_docx(out.get_ref(), &DocxLimits::default()).unwrap();
        assert_eq!(d.blocks.first(), Some(&Block::Paragraph("申请表".into())));
        let Some(Block::Table(t)) = d.blocks.get(1) else {
            panic!("{d:?}")
        };
        assert_eq!(
            t.rows[1][0],
            Cell {
                text: String::new(),
                col_span: 1,
                v_merged: true
            }
        );
        assert_eq!(t.rows[1][2].text, "2800");
        assert_eq!(t.rows[2][1].col_span, 2);
    }

    /// Every .docx of the shared corpus (`../shared/corpus/office/docx`): no panic, under 2 s
    /// each, and the hostile ones (encrypted, XXE, truncated, fuzzed) are errors. Prints the
    /// outcome table.
    #[test]
    fn corpus_sweep() {
        use crate::extract::form::{FormConfig, form_fields};
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/office/docx");
        let Ok(dirs) = std::fs::read_dir(&root) else {
            eprintln!("{} not present: skipped", root.display());
            return;
        };
        let mut files: Vec<_> = dirs
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "docx"))
            .collect();
        files.sort();
        let must_fail = [
            "ecma376standard_password",
            "ExternalEntityInText",
            "bug53475-password-is-pass",
            "clusterfuzz",
            "truncated62886",
            "testWORD_protected_passtika",
            "testWORD_truncated",
        ];
        let mut ok = 0;
        for path in &files {
            let bytes = std::fs::read(path).unwrap();
            let t = std::time::Instant::now();
            let res = read_docx(&bytes, &DocxLimits::default());
            // The form extractor must cope with whatever a reader produced, too.
            let fields = res
                .as_ref()
                .ok()
                .map(|d| form_fields(d, &FormConfig { sections: &[] }));
            let ms = t.elapsed().as_millis();
            let name = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            let outcome = match &res {
                Ok(d) => {
                    ok += 1;
                    let tables = d
                        .blocks
                        .iter()
                        .filter(|b| matches!(b, Block::Table(_)))
                        .count();
                    let found = fields.as_ref().map_or(0, |f| {
                        [
                            &f.project_name,
                            &f.leader,
                            &f.leader_role,
                            &f.phone,
                            &f.advisor,
                        ]
                        .iter()
                        .filter(|v| v.is_some())
                        .count()
                    });
                    format!(
                        "Ok: {} blocks, {tables} tables, {} chars, {found} form fields",
                        d.blocks.len(),
                        d.plain_text().chars().count()
                    )
                }
                Err(e) => format!("Err: {e:?}"),
            };
            eprintln!("{name:<62} {ms:>5} ms  {outcome}");
            assert!(ms < 2000, "{name} took {ms} ms");
            if must_fail.iter().any(|m| name.contains(m)) {
                assert!(res.is_err(), "{name} must be refused");
            }
        }
        assert!(
            files.len() >= 30 && ok >= 20,
            "{} files, {ok} read",
            files.len()
        );
    }

    /// Bytes of real forms cut short or flipped at many places never panic.
    #[test]
    fn mutated_samples_never_panic() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../shared/samples/templates/附件1 同济大学学生党支部“对标争先”建设项目申请表.docx",
        );
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        let limits = DocxLimits::default();
        for cut in (0..bytes.len()).step_by(97) {
            let _ = read_docx(bytes.get(..cut).unwrap_or_default(), &limits);
        }
        let mut seed = 0x2545_F491_u32;
        for _ in 0..300 {
            let mut m = bytes.clone();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % m.len();
                m[i] = (seed >> 8) as u8;
            }
            let _ = read_docx(&m, &limits);
        }
        // The inflated document.xml itself, cut and mutated.
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
        let xml = read_entry(&mut zip, "word/document.xml", 1 << 24).unwrap();
        for cut in (0..xml.len()).step_by(53) {
            assert!(parse_document_xml(xml.get(..cut).unwrap_or_default(), &limits).is_err());
        }
    }

    /// The corpus' billion-laughs bomb (an .xlsx part) served as a Word document: refused
    /// without expansion, quickly.
    #[test]
    fn corpus_xml_bomb_is_refused() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/corpus/office/xlsx/poi/poc-xmlbomb.xlsx");
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).unwrap();
        let bomb = read_entry(&mut zip, "xl/sharedStrings.xml", 1 << 24).unwrap();
        let t = std::time::Instant::now();
        assert!(matches!(
            read_word_xml(&bomb, &DocxLimits::default()),
            Err(DocxError::Unsafe)
        ));
        let z = zip_of(&[("word/document.xml", &bomb)]);
        assert!(matches!(
            read_docx(&z, &DocxLimits::default()),
            Err(DocxError::Unsafe)
        ));
        assert!(t.elapsed().as_millis() < 500);
    }
}
