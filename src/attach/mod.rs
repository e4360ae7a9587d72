//! Attachments: what a file really is, what it is for, and how to name it safely.
//!
//! Branches name their files any way they like and mail clients label them
//! `application/octet-stream` more often than not, so neither the MIME type nor
//! the extension can be trusted to say whether a file is the Word 项目申请表 or
//! the Excel 申报汇总表. Everything here therefore looks at the *bytes* first
//! ([`sniff`]), keeps the extension only as a claim ([`declared_format`]) and as a
//! tie-breaker where the bytes cannot decide ([`sniff_named`]), and derives the
//! role from the name only when the content makes that role possible ([`role`]).
//!
//! Zip files are listed one level deep ([`list_zip`]) under hard limits, because
//! a zip is attacker-controlled input that can expand a thousandfold.
//!
//! Pure: no runtime, no database, no files, no network, no clock; bytes in, values out.
//! `src/architecture.rs` checks it.

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use unicode_normalization::UnicodeNormalization;

/// What a file is, judged by its content.
///
/// `WordXml` and `ExcelXml` are the Office 2003 "XML document" formats
/// (`<?xml …?><?mso-application progid="Word.Document"?>`): old templates saved as
/// "Word XML" keep a `.doc` name but are neither binary `.doc` nor `.docx`, so a
/// reader needs to know.
/// One attached file (or one file inside an attached zip).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attachment {
    /// Decoded, NFC, exactly as the sender named it. Unnamed parts get a
    /// generated name (`未命名附件1.png`, `转发的邮件.eml`) and no `declared_format`.
    pub filename: String,
    /// [`safe_file_name`] of `filename`, for storing on disk.
    pub safe_name: String,
    /// The MIME type as sent (`application/octet-stream` more often than not),
    /// or one derived from the format for zip entries.
    pub content_type: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Length of the decoded bytes.
    pub size: usize,
    /// Lowercase hex SHA-256 of the decoded bytes.
    pub sha256: String,
    /// By content, see [`sniff_named`].
    pub format: Format,
    /// The extension the sender gave, lowercased.
    pub declared_format: Option<String>,
    pub role: Role,
    /// The files of a zip or of Outlook's winmail.dat (TNEF), one level deep
    /// (entries have no entries).
    pub entries: Vec<Attachment>,
    /// Why the file cannot be used as it is: the zip could not be listed, the
    /// file is password-protected, a web page saved as .doc …
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Doc,
    Docx,
    Xls,
    Xlsx,
    WordXml,
    ExcelXml,
    Zip,
    Pdf,
    Image,
    Tnef,
    Other,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::Doc,
        Format::Docx,
        Format::Xls,
        Format::Xlsx,
        Format::WordXml,
        Format::ExcelXml,
        Format::Zip,
        Format::Pdf,
        Format::Image,
        Format::Tnef,
        Format::Other,
    ];

    /// What people call it (acknowledgements, exports): Word 文档, 压缩包 ….
    pub fn label(self) -> &'static str {
        match self {
            Format::Doc => "Word 97-2003 文档",
            Format::Docx => "Word 文档",
            Format::Xls => "Excel 97-2003 表格",
            Format::Xlsx => "Excel 表格",
            Format::WordXml => "Word 2003 XML 文档",
            Format::ExcelXml => "Excel 2003 XML 表格",
            Format::Zip => "压缩包",
            Format::Pdf => "PDF",
            Format::Image => "图片",
            Format::Tnef => "Outlook winmail.dat",
            Format::Other => "其他格式",
        }
    }

    /// The lowercase name used in JSON and logs (`"docx"`, `"word_xml"` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Doc => "doc",
            Format::Docx => "docx",
            Format::Xls => "xls",
            Format::Xlsx => "xlsx",
            Format::WordXml => "word_xml",
            Format::ExcelXml => "excel_xml",
            Format::Zip => "zip",
            Format::Pdf => "pdf",
            Format::Image => "image",
            Format::Tnef => "tnef",
            Format::Other => "other",
        }
    }

    /// Word processing content a form reader may be able to open.
    pub fn is_word(self) -> bool {
        matches!(self, Format::Doc | Format::Docx | Format::WordXml)
    }

    /// Spreadsheet content a summary reader may be able to open.
    pub fn is_spreadsheet(self) -> bool {
        matches!(self, Format::Xls | Format::Xlsx | Format::ExcelXml)
    }
}

/// A role or format name that is none of ours ([`Role::as_str`], [`Format::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("不认识的名称“{0}”")]
pub struct UnknownName(pub String);

/// The one of `all` whose `name` is `s` (surrounding spaces ignored): the `FromStr` of the
/// crate's named enums (roles, formats, dispositions, outbox kinds).
pub fn by_name<T: Copy>(all: &[T], name: fn(T) -> &'static str, s: &str) -> Result<T, UnknownName> {
    (all.iter().copied())
        .find(|v| name(*v) == s.trim())
        .ok_or_else(|| UnknownName(s.to_string()))
}

impl std::str::FromStr for Format {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Format, UnknownName> {
        by_name(&Format::ALL, Format::as_str, s)
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Role, UnknownName> {
        by_name(&Role::ALL, Role::as_str, s)
    }
}

/// What an attachment is for in the campaign.
///
/// The closure materials are the notice's: every project sends a 结题报告 and its 报销材料;
/// 重点 and 特色 projects a 工作案例, 一般 projects an 活动总结. The last two are distinct roles
/// so that a 一般 project sending a 工作案例 is not told its materials are complete. (Until
/// database version 7 both were stored as `case_study`; that migration relabels the files
/// named 活动总结.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Form,
    Summary,
    ClosureReport,
    Reimbursement,
    /// 工作案例 (重点, 特色).
    CaseStudy,
    /// 活动总结 (一般).
    ActivitySummary,
    Other,
}

impl Role {
    /// Every role, in the order people read them.
    pub const ALL: [Role; 7] = [
        Role::Form,
        Role::Summary,
        Role::ClosureReport,
        Role::Reimbursement,
        Role::CaseStudy,
        Role::ActivitySummary,
        Role::Other,
    ];

    /// The lowercase name used in JSON, the database and logs (`"form"`, `"closure_report"` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Form => "form",
            Role::Summary => "summary",
            Role::ClosureReport => "closure_report",
            Role::Reimbursement => "reimbursement",
            Role::CaseStudy => "case_study",
            Role::ActivitySummary => "activity_summary",
            Role::Other => "other",
        }
    }

    /// The role stored as `text` ([`Role::as_str`]), leniently: anything unknown is
    /// [`Role::Other`] (a stored row never fails to read). [`str::parse`] is the strict form.
    pub fn parse(text: &str) -> Role {
        text.parse().unwrap_or(Role::Other)
    }

    /// What people call it (acknowledgements, checklists): 项目申请表, 结题报告, 活动总结 ….
    pub fn label(self) -> &'static str {
        match self {
            Role::Form => "项目申请表",
            Role::Summary => "申报汇总表",
            Role::ClosureReport => "结题报告",
            Role::Reimbursement => "报销材料",
            Role::CaseStudy => "工作案例",
            Role::ActivitySummary => "活动总结",
            Role::Other => "其他材料",
        }
    }

    /// The closure material a `[[level]] closure_materials` entry names: the notice's words
    /// (结题报告 / 结项报告, 报销材料, 工作案例, 活动总结, also shorter forms such as 报销 or
    /// 总结) or a role's own name (`case_study`). `None` when it names no closure material.
    pub fn from_material(name: &str) -> Option<Role> {
        let m = crate::textnorm::normalize(name);
        let m = m.trim();
        if let Some(r) = Role::ALL
            .into_iter()
            .find(|r| r.is_closure_material() && r.as_str() == m)
        {
            return Some(r);
        }
        material_keyword(m)
    }

    /// Whether this is one of the closure materials (结题报告, 报销材料, 工作案例, 活动总结).
    pub fn is_closure_material(self) -> bool {
        matches!(
            self,
            Role::ClosureReport | Role::Reimbursement | Role::CaseStudy | Role::ActivitySummary
        )
    }
}

/// Words that name a closure material, most specific first (so 结项总结 is a report, 活动总结
/// a summary). Traditional forms are included, as in [`ROLE_KEYWORDS`].
const MATERIAL_KEYWORDS: &[(&str, Role)] = &[
    ("结题报告", Role::ClosureReport),
    ("结项报告", Role::ClosureReport),
    ("結題報告", Role::ClosureReport),
    ("結項報告", Role::ClosureReport),
    ("工作案例", Role::CaseStudy),
    ("活动总结", Role::ActivitySummary),
    ("活動總結", Role::ActivitySummary),
    ("报销", Role::Reimbursement),
    ("報銷", Role::Reimbursement),
    ("发票", Role::Reimbursement),
    ("發票", Role::Reimbursement),
    ("票据", Role::Reimbursement),
    ("票據", Role::Reimbursement),
    ("经费", Role::Reimbursement),
    ("經費", Role::Reimbursement),
    ("结题", Role::ClosureReport),
    ("结项", Role::ClosureReport),
    ("結題", Role::ClosureReport),
    ("結項", Role::ClosureReport),
    ("案例", Role::CaseStudy),
    ("总结", Role::ActivitySummary),
    ("總結", Role::ActivitySummary),
];

/// The closure material a text (a file name, a document's title) names, if any.
fn material_keyword(text: &str) -> Option<Role> {
    MATERIAL_KEYWORDS
        .iter()
        .find(|(k, _)| text.contains(k))
        .map(|(_, r)| *r)
}

/// Words that make a file the application form or the summary sheet even in a closure mail:
/// the sheet's and form's own titles, not a bare 汇总 or a format.
const STRONG_FORM_KEYWORDS: &[(&str, Role)] = &[
    ("申请表", Role::Form),
    ("申报表", Role::Form),
    ("申請表", Role::Form),
    ("申報表", Role::Form),
    ("汇总表", Role::Summary),
    ("匯總表", Role::Summary),
];

/// The role of a file in a **closure** mail, from its name and — for Word documents — its
/// title (the first short lines of the document, see `closure::document_title`).
///
/// Closure material is recognised by content as well as by name, and the weak hints that make
/// a file the application form in an application mail (being a Word file, a bare 汇总) do not
/// count here:
///
/// 1. a title naming a closure material decides (the document says what it is: a file called
///    `结项总结.docx` titled 活动总结 is the activity summary);
/// 2. otherwise a closure word in the name (结题报告, 报销, 工作案例, 活动总结, and the shorter
///    结项, 总结, 案例, 发票 …; `结项总结.docx` is a report);
/// 3. otherwise a file is the form or the summary only when its title or name says so in full
///    (申请表, 汇总表);
/// 4. anything else is [`Role::Other`] — never the form "because it is a Word file".
///
/// A role only counts when the format can play it (a closure report is a Word or PDF file, a
/// reimbursement may also be a sheet or a scan), as in [`role`].
pub fn closure_role(filename: &str, format: Format, title: Option<&str>) -> Role {
    let name: String = base_name(filename).nfc().collect();
    if name.starts_with("~$") || name.starts_with("._") {
        return Role::Other;
    }
    let ext = declared_format(&name).unwrap_or_default();
    let title = title.map(crate::textnorm::normalize).unwrap_or_default();
    let name = crate::textnorm::normalize(&name);
    let usable = |r: Role| plausible(r, format, &ext).then_some(r);
    if let Some(r) = material_keyword(&title).and_then(usable) {
        return r;
    }
    if let Some(r) = material_keyword(&name).and_then(usable) {
        return r;
    }
    for text in [&title, &name] {
        if let Some(r) = STRONG_FORM_KEYWORDS
            .iter()
            .find(|(k, _)| text.contains(k))
            .and_then(|(_, r)| usable(*r))
        {
            return r;
        }
    }
    Role::Other
}

/// Why a zip could not be listed. The messages are written for staff and for the
/// acknowledgement mail, so they are Chinese and name the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("压缩包已损坏，无法打开（{0}）")]
    Damaged(String),
    #[error("压缩包内文件过多（超过 {limit} 个），未解压")]
    TooManyEntries { limit: usize },
    #[error("压缩包内的文件“{name}”解压后超过 {mib} MB，未解压", mib = .limit / MIB)]
    EntryTooLarge { name: String, limit: u64 },
    #[error("压缩包解压后总大小超过 {mib} MB，未解压", mib = .limit / MIB)]
    TotalTooLarge { limit: u64 },
    #[error("压缩包内的文件“{name}”设有密码，无法打开")]
    Encrypted { name: String },
    #[error("压缩包内的文件“{name}”使用了不支持的压缩方式（{detail}）")]
    Unsupported { name: String, detail: String },
    #[error("读取压缩包内的文件“{name}”失败（{detail}）")]
    Entry { name: String, detail: String },
    #[error("winmail.dat（Outlook 的 TNEF 封装）已损坏，无法取出其中的附件（{0}）")]
    TnefDamaged(String),
}

const MIB: u64 = 1024 * 1024;

/// Limits for [`list_zip`]. The defaults fit the campaign (a form and a summary,
/// perhaps a few scans) with a wide margin and stop decompression bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Files (not directories) in the archive.
    pub max_entries: usize,
    /// Decompressed bytes of one file.
    pub max_entry_size: u64,
    /// Decompressed bytes of all files together.
    pub max_total: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entries: 100,
            max_entry_size: 50 * MIB,
            max_total: 200 * MIB,
        }
    }
}

/// One file taken out of a zip: its name as the archiver stored it (decoded,
/// NFC, including any folder path) and its decompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    pub filename: String,
    pub bytes: Vec<u8>,
}

const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// TNEF signature 0x223E9F78, stored little-endian (Outlook's `winmail.dat`).
const TNEF_MAGIC: &[u8] = &[0x78, 0x9F, 0x3E, 0x22];

/// Where content alone cannot settle the format and the extension has to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doubt {
    /// An OLE file holding an `EncryptedPackage`: a password-protected .docx or
    /// .xlsx; nothing inside says which.
    EncryptedOoxml,
    /// OLE magic but no readable directory: a damaged .doc or .xls.
    DamagedOle,
    /// Zip magic but no readable central directory and no tell-tale part name.
    DamagedZip,
}

#[derive(Debug, Clone, Copy)]
struct Sniffed {
    format: Format,
    doubt: Option<Doubt>,
    /// A binary .doc whose FIB says the document is encrypted.
    encrypted_doc: bool,
}

/// The format of a file judged by its bytes alone.
///
/// OLE2 files are told apart by their root streams (`WordDocument` → Doc,
/// `Workbook`/`Book` → Xls, also for WPS files, which use the same layout), zip
/// files by their part names (`word/document.xml` → Docx, `xl/workbook.xml` →
/// Xlsx, anything else → Zip). A password-protected .docx/.xlsx is an OLE file
/// with an `EncryptedPackage` and gives [`Format::Other`] here; use
/// [`sniff_named`] to let the extension decide such cases.
pub fn sniff(bytes: &[u8]) -> Format {
    classify(bytes).format
}

/// Like [`sniff`], but lets the file name's extension decide where the bytes
/// cannot: an encrypted OOXML package (`EncryptedPackage`) named .docx is a
/// Docx, a damaged OLE file named .xls is an Xls, a damaged zip named .docx is
/// a Docx. A file that clearly is something else keeps its content format
/// whatever it is called.
pub fn sniff_named(bytes: &[u8], filename: &str) -> Format {
    let sniffed = classify(bytes);
    let ext = declared_format(filename);
    let ext = ext.as_deref();
    match sniffed.doubt {
        Some(Doubt::EncryptedOoxml) => match ext {
            Some("docx" | "docm" | "doc" | "dotx" | "wps") => Format::Docx,
            Some("xlsx" | "xlsm" | "xls" | "xltx" | "et") => Format::Xlsx,
            _ => sniffed.format,
        },
        Some(Doubt::DamagedOle) => match ext {
            Some("doc" | "dot" | "wps") => Format::Doc,
            Some("xls" | "xlt" | "et") => Format::Xls,
            _ => sniffed.format,
        },
        Some(Doubt::DamagedZip) => match ext {
            Some("docx" | "docm" | "dotx") => Format::Docx,
            Some("xlsx" | "xlsm" | "xltx") => Format::Xlsx,
            _ => sniffed.format,
        },
        None => sniffed.format,
    }
}

/// A short Chinese note for people when a file is not what its name promises
/// or cannot be opened as it stands: password protection, a web page or RTF
/// saved under a Word/Excel name, a damaged Office file. `None` when there is
/// nothing worth saying (including harmless mix-ups such as a .docx named .doc).
pub fn content_note(bytes: &[u8], filename: &str) -> Option<String> {
    let sniffed = classify(bytes);
    let ext = declared_format(filename).unwrap_or_default();
    let office_name = matches!(
        ext.as_str(),
        "doc" | "docx" | "docm" | "dot" | "dotx" | "wps" | "xls" | "xlsx" | "xlsm" | "xlt" | "et"
    );
    let kind = if matches!(ext.as_str(), "xls" | "xlsx" | "xlsm" | "xlt" | "et") {
        "Excel"
    } else {
        "Word"
    };
    if sniffed.encrypted_doc || sniffed.doubt == Some(Doubt::EncryptedOoxml) {
        return Some("文件设有打开密码，无法读取内容".to_string());
    }
    match sniffed.doubt {
        Some(Doubt::DamagedOle) | Some(Doubt::DamagedZip) => {
            return Some("文件已损坏，无法打开".to_string());
        }
        _ => {}
    }
    if sniffed.format != Format::Other || !office_name {
        return None;
    }
    let head = text_head(bytes);
    let note = if head.starts_with("{\\rtf") {
        format!("文件扩展名是 .{ext}，但内容是 RTF 格式，并非真正的 {kind} 文件")
    } else if head.starts_with("mime-version:") || head.contains("multipart/related") {
        format!("文件扩展名是 .{ext}，但内容是“单个文件网页”（MHT），并非真正的 {kind} 文件")
    } else if head.contains("<html") || head.contains("<!doctype html") || head.contains("<table") {
        format!("文件扩展名是 .{ext}，但内容是网页（HTML），并非真正的 {kind} 文件")
    } else if bytes.is_empty() {
        "文件是空的（0 字节）".to_string()
    } else {
        format!("文件扩展名是 .{ext}，但内容无法识别为 {kind} 文件，可能已损坏")
    };
    Some(note)
}

/// The first bytes of a file as lowercase text without a BOM, for textual sniffing.
fn text_head(bytes: &[u8]) -> String {
    let head = bytes.get(..2048).unwrap_or(bytes);
    let head = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head);
    let text = if head.len() >= 2
        && (head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]))
    {
        // UTF-16 (Excel's "Unicode text" and some HTML exports); ASCII letters
        // survive as every other byte, which is all the sniffing needs.
        head.iter()
            .filter(|b| **b != 0)
            .map(|b| *b as char)
            .collect::<String>()
    } else {
        String::from_utf8_lossy(head).into_owned()
    };
    text.trim_start().to_ascii_lowercase()
}

fn classify(bytes: &[u8]) -> Sniffed {
    let plain = |format| Sniffed {
        format,
        doubt: None,
        encrypted_doc: false,
    };
    if bytes.starts_with(OLE_MAGIC) {
        return classify_ole(bytes);
    }
    if bytes.starts_with(b"PK\x03\x04")
        || bytes.starts_with(b"PK\x05\x06")
        || bytes.starts_with(b"PK\x07\x08")
    {
        return classify_zip(bytes);
    }
    if bytes.starts_with(TNEF_MAGIC) {
        return plain(Format::Tnef);
    }
    // PDF readers accept junk before the header within the first KiB.
    let head = bytes.get(..1024).unwrap_or(bytes);
    if find(head, b"%PDF-").is_some() {
        return plain(Format::Pdf);
    }
    if is_image(bytes) {
        return plain(Format::Image);
    }
    let text = text_head(bytes);
    if text.starts_with("<?xml") {
        if text.contains("progid=\"word.document\"") || text.contains("<w:worddocument") {
            return plain(Format::WordXml);
        }
        if text.contains("progid=\"excel.sheet\"")
            || text.contains("urn:schemas-microsoft-com:office:spreadsheet")
        {
            return plain(Format::ExcelXml);
        }
    }
    plain(Format::Other)
}

fn is_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || bytes.starts_with(b"GIF87a")
        || bytes.starts_with(b"GIF89a")
        || bytes.starts_with(b"BM") && bytes.len() > 26 && bytes.get(6..10) == Some(&[0, 0, 0, 0])
        || bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP")
        // iPhone photos (HEIC/HEIF/AVIF): an ISO-BMFF `ftyp` box with an image brand.
        || bytes.get(4..8) == Some(b"ftyp")
            && matches!(
                bytes.get(8..12),
                Some(b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif")
            )
}

fn classify_ole(bytes: &[u8]) -> Sniffed {
    let result = catch_unwind(AssertUnwindSafe(|| -> Option<(Vec<String>, bool)> {
        let mut file = cfb::CompoundFile::open(Cursor::new(bytes)).ok()?;
        let names: Vec<String> = file
            .read_root_storage()
            .map(|e| e.name().to_string())
            .collect();
        let mut encrypted = false;
        if names.iter().any(|n| n == "WordDocument")
            && let Ok(mut stream) = file.open_stream("/WordDocument")
        {
            // FIB: wIdent(2) nFib(2) unused(2) lid(2) pnNext(2) then flags; bit 8
            // of the flags word is fEncrypted.
            let mut fib = [0u8; 12];
            if stream.read_exact(&mut fib).is_ok() {
                let flags = u16::from_le_bytes([fib[10], fib[11]]);
                encrypted = flags & 0x0100 != 0;
            }
        }
        Some((names, encrypted))
    }));
    let sniffed = |format, doubt, encrypted_doc| Sniffed {
        format,
        doubt,
        encrypted_doc,
    };
    match result {
        Ok(Some((names, encrypted))) => {
            let has = |n: &str| names.iter().any(|x| x == n);
            if has("WordDocument") {
                sniffed(Format::Doc, None, encrypted)
            } else if has("Workbook") || has("Book") {
                sniffed(Format::Xls, None, false)
            } else if has("EncryptedPackage") {
                sniffed(Format::Other, Some(Doubt::EncryptedOoxml), false)
            } else {
                sniffed(Format::Other, None, false)
            }
        }
        _ => {
            // The directory could not be read: look for the stream names
            // (stored as UTF-16LE in directory entries) anywhere in the file.
            let utf16 = |s: &str| {
                s.encode_utf16()
                    .flat_map(|u| u.to_le_bytes())
                    .collect::<Vec<u8>>()
            };
            if find(bytes, &utf16("WordDocument")).is_some() {
                sniffed(Format::Doc, None, false)
            } else if find(bytes, &utf16("Workbook")).is_some() {
                sniffed(Format::Xls, None, false)
            } else if find(bytes, &utf16("EncryptedPackage")).is_some() {
                sniffed(Format::Other, Some(Doubt::EncryptedOoxml), false)
            } else {
                sniffed(Format::Other, Some(Doubt::DamagedOle), false)
            }
        }
    }
}

fn classify_zip(bytes: &[u8]) -> Sniffed {
    let names = catch_unwind(AssertUnwindSafe(|| -> Option<Vec<Vec<u8>>> {
        let archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
        Some(archive.file_names_raw().map(|n| n.to_vec()).collect())
    }));
    let sniffed = |format, doubt| Sniffed {
        format,
        doubt,
        encrypted_doc: false,
    };
    match names {
        Ok(Some(names)) => {
            let has = |n: &[u8]| names.iter().any(|x| x.eq_ignore_ascii_case(n));
            if has(b"word/document.xml") {
                sniffed(Format::Docx, None)
            } else if has(b"xl/workbook.xml") {
                sniffed(Format::Xlsx, None)
            } else {
                sniffed(Format::Zip, None)
            }
        }
        _ => {
            // No central directory (truncated upload, interrupted save): the
            // local headers still carry the part names in clear text.
            if find(bytes, b"word/document.xml").is_some() {
                sniffed(Format::Docx, None)
            } else if find(bytes, b"xl/workbook.xml").is_some() {
                sniffed(Format::Xlsx, None)
            } else {
                sniffed(Format::Zip, Some(Doubt::DamagedZip))
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The extension the sender gave the file, lowercased (`"docx"`), or `None`
/// when the name has none. Only the last path component counts, and an
/// "extension" longer than 10 characters or containing spaces is taken to be
/// part of the name (`"第1.2版 申请表"`).
pub fn declared_format(filename: &str) -> Option<String> {
    let base = base_name(filename).trim().trim_end_matches(['.', ' ']);
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.is_empty() && !base.starts_with('.') || ext.is_empty() {
        return None;
    }
    if ext.chars().count() > 10
        || ext
            .chars()
            .any(|c| c.is_whitespace() || !c.is_alphanumeric())
    {
        return None;
    }
    Some(ext.to_lowercase())
}

/// The last path component of a name, whichever separator the sender's system used.
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Keywords that name a role, most specific first. Traditional forms are
/// included because some branches type on Traditional-Chinese systems.
const ROLE_KEYWORDS: &[(&str, Role)] = &[
    ("结题报告", Role::ClosureReport),
    ("结项报告", Role::ClosureReport),
    ("結題報告", Role::ClosureReport),
    ("結項報告", Role::ClosureReport),
    ("报销", Role::Reimbursement),
    ("報銷", Role::Reimbursement),
    ("工作案例", Role::CaseStudy),
    ("活动总结", Role::ActivitySummary),
    ("活動總結", Role::ActivitySummary),
    ("汇总", Role::Summary),
    ("匯總", Role::Summary),
    ("申请表", Role::Form),
    ("申报表", Role::Form),
    ("申請表", Role::Form),
    ("申報表", Role::Form),
];

/// The role of an attachment in the campaign.
///
/// Name keywords come first (申请表/申报表 → Form, 汇总 → Summary, 结题报告/结项报告
/// → ClosureReport, 报销 → Reimbursement, 工作案例 → CaseStudy, 活动总结 → ActivitySummary), but a
/// keyword only counts when the content can play that role: a PDF named
/// 申请表 is a picture of the form, not the Word form the notice asks for, so it
/// is [`Role::Other`]. Without a usable keyword the format decides (Word →
/// Form, Excel → Summary). Zips, TNEF and images without a keyword are Other.
///
/// A file whose bytes are unrecognisable ([`Format::Other`]) but whose
/// extension is Word or Excel (an HTML page saved as .doc, a damaged file)
/// still gets the Form/Summary role: the sender meant it as the form, and
/// "your form cannot be opened" is the right answer, not "your form is missing".
/// Office lock files (`~$…`) never get a role.
pub fn role(filename: &str, format: Format) -> Role {
    let name: String = base_name(filename).nfc().collect();
    if name.starts_with("~$") || name.starts_with("._") {
        return Role::Other;
    }
    let ext = declared_format(&name).unwrap_or_default();
    for (keyword, role) in ROLE_KEYWORDS {
        if name.contains(keyword) && plausible(*role, format, &ext) {
            return *role;
        }
    }
    if plausible(Role::Form, format, &ext) {
        Role::Form
    } else if plausible(Role::Summary, format, &ext) {
        Role::Summary
    } else {
        Role::Other
    }
}

fn plausible(role: Role, format: Format, ext: &str) -> bool {
    let word_ext = matches!(ext, "doc" | "docx" | "docm" | "dot" | "dotx" | "wps");
    let excel_ext = matches!(ext, "xls" | "xlsx" | "xlsm" | "xlt" | "xltx" | "et");
    let unknown = format == Format::Other;
    match role {
        Role::Form => format.is_word() || unknown && word_ext,
        Role::Summary => format.is_spreadsheet() || unknown && excel_ext,
        Role::ClosureReport | Role::CaseStudy | Role::ActivitySummary => {
            format.is_word() || format == Format::Pdf || unknown && word_ext
        }
        Role::Reimbursement => {
            format.is_word()
                || format.is_spreadsheet()
                || matches!(format, Format::Pdf | Format::Image)
                || unknown && (word_ext || excel_ext)
        }
        Role::Other => true,
    }
}

/// Characters that must never reach a person's screen from a mail: control characters (NUL,
/// escape sequences, CR/LF that would forge lines), the bidi overrides and isolates that make
/// `exe.docx` read as `xcod.exe`, zero-width characters, line/paragraph separators and the BOM.
fn hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// Other text from a mail shown on a terminal or in a report (subjects, senders in `status`
/// and `show`): [`hidden_char`]s dropped, runs of blanks (tabs, line breaks) one space,
/// trimmed. An escape sequence in a subject then cannot recolour or rewrite staff's terminal,
/// nor a CR/LF forge a line of the report.
pub fn display_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else if !hidden_char(c) {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Longest name shown to people, in characters.
const MAX_SHOWN_CHARS: usize = 120;

/// The one form in which a file name from a mail is shown or written for people (acks,
/// `status`, `show`, every export): only the last path component (`../`, `\`, `C:\…` go),
/// no hidden characters ([`hidden_char`]; tabs and other blanks become one space), trimmed,
/// at most 120 characters with the extension kept, and `（无名附件）` when nothing is left.
/// Unlike [`safe_file_name`] it keeps characters such as `:` or `?` that are harmless on
/// screen, and does not normalise: people see what the sender wrote, minus what could deceive.
/// The raw name stays in the stored mail.
pub fn display_name(name: &str) -> String {
    let out = display_text(base_name(name));
    let out = out.as_str();
    if out.is_empty() {
        return "（无名附件）".to_string();
    }
    if out.chars().count() <= MAX_SHOWN_CHARS {
        return out.to_string();
    }
    let ext = out
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.chars().count() <= 8)
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let keep = MAX_SHOWN_CHARS - 1 - ext.chars().count();
    let stem: String = out.chars().take(keep).collect();
    format!("{stem}…{ext}")
}

/// Windows device names that cannot be used as file names, whatever the extension.
const RESERVED_STEMS: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

const MAX_NAME_BYTES: usize = 200;

/// A name that is safe to use as a single file name on Linux, macOS and
/// Windows, staying as close to the sender's name as possible.
///
/// NFC; only the last path component survives (`../`, `\`, `C:`); control
/// characters and `<>:"/\|?*` are removed; leading/trailing dots and spaces are
/// trimmed; Windows device names get a `_` prefix; the result is capped at 200
/// bytes on a character boundary, keeping the extension; an empty result
/// becomes `"attachment"`.
pub fn safe_file_name(name: &str) -> String {
    let nfc: String = name.nfc().collect();
    let base = base_name(&nfc);
    let cleaned: String = base
        .chars()
        .filter(|&c| {
            !hidden_char(c) && !matches!(c, '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*')
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return "attachment".to_string();
    }
    let mut result = trimmed.to_string();
    let stem_lower = result
        .split('.')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if RESERVED_STEMS.contains(&stem_lower.as_str()) {
        result.insert(0, '_');
    }
    if result.len() <= MAX_NAME_BYTES {
        return result;
    }
    let (stem, ext) = match result.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => {
            (stem.to_string(), format!(".{ext}"))
        }
        _ => (result.clone(), String::new()),
    };
    let budget = MAX_NAME_BYTES.saturating_sub(ext.len());
    let mut cut = budget.min(stem.len());
    while cut > 0 && !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = stem
        .get(..cut)
        .unwrap_or("")
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    let joined = format!("{stem}{ext}");
    if joined.trim_matches('.').is_empty() {
        "attachment".to_string()
    } else {
        joined
    }
}

/// Decode a zip entry name: UTF-8 when the archiver says so (general purpose
/// flag bit 11) or the bytes happen to be valid UTF-8; otherwise the name was
/// written in the Windows ANSI code page, which for our senders is GBK, so
/// GB18030 (its superset) decodes it. (The zip crate would use CP437 here,
/// which turns every Chinese name into box-drawing mojibake.)
pub fn decode_zip_name(raw: &[u8], utf8_flag: bool) -> String {
    let decoded = if utf8_flag {
        String::from_utf8_lossy(raw).into_owned()
    } else if let Ok(s) = std::str::from_utf8(raw) {
        s.to_string()
    } else {
        let (text, _, _) = encoding_rs::GB18030.decode(raw);
        text.into_owned()
    };
    decoded.nfc().collect()
}

/// Files that archivers add and nobody attached on purpose.
fn is_junk_entry(name: &str) -> bool {
    let base = base_name(name);
    name.starts_with("__MACOSX/")
        || name.contains("/__MACOSX/")
        || base.starts_with("._")
        || base.starts_with("~$")
        || base.eq_ignore_ascii_case(".DS_Store")
        || base.eq_ignore_ascii_case("Thumbs.db")
        || base.eq_ignore_ascii_case("desktop.ini")
}

/// List and extract the files of a zip, one level deep.
///
/// Directories and archiver junk (`__MACOSX/`, `._*`, `~$*`, `.DS_Store`,
/// `Thumbs.db`) are skipped. Names are decoded with [`decode_zip_name`]. The
/// limits are checked against the declared sizes first and then enforced while
/// reading (`take`), because declared sizes are attacker-controlled: a bomb
/// ends in `Err`, never in a huge allocation. Encrypted entries and
/// unsupported compression methods are errors, since a partial listing would
/// make a missing form look like a sender's mistake.
pub fn list_zip(bytes: &[u8], limits: &ZipLimits) -> Result<Vec<ZipEntry>, AttachError> {
    let mut entries = Vec::new();
    list_zip_each(bytes, limits, &mut |e| entries.push(e))?;
    Ok(entries)
}

/// [`list_zip`], each entry handed to `each` as soon as it is inflated, so the caller can
/// store it and let it go before the next (a zip of photos never has all of them in memory
/// beside the zip). On `Err`, the entries already handed over are not a listing.
pub fn list_zip_each(
    bytes: &[u8],
    limits: &ZipLimits,
    each: &mut dyn FnMut(ZipEntry),
) -> Result<(), AttachError> {
    match catch_unwind(AssertUnwindSafe(|| list_zip_inner(bytes, limits, each))) {
        Ok(result) => result,
        Err(_) => Err(AttachError::Damaged("解析时出现内部错误".to_string())),
    }
}

fn list_zip_inner(
    bytes: &[u8],
    limits: &ZipLimits,
    each: &mut dyn FnMut(ZipEntry),
) -> Result<(), AttachError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| AttachError::Damaged(e.to_string()))?;
    let mut listed = 0usize;
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let (name, is_dir, encrypted, declared) = {
            let file = archive
                .by_index_raw(index)
                .map_err(|e| AttachError::Damaged(e.to_string()))?;
            let utf8_flag = file.flags().as_u16() & 0x0800 != 0;
            (
                decode_zip_name(file.name_raw(), utf8_flag),
                file.is_dir(),
                file.encrypted(),
                file.size(),
            )
        };
        if is_dir || name.ends_with('/') || name.ends_with('\\') || is_junk_entry(&name) {
            continue;
        }
        if listed >= limits.max_entries {
            return Err(AttachError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        if encrypted {
            return Err(AttachError::Encrypted { name });
        }
        if declared > limits.max_entry_size {
            return Err(AttachError::EntryTooLarge {
                name,
                limit: limits.max_entry_size,
            });
        }
        if total.saturating_add(declared) > limits.max_total {
            return Err(AttachError::TotalTooLarge {
                limit: limits.max_total,
            });
        }
        let mut file = archive.by_index(index).map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(detail) => AttachError::Unsupported {
                name: name.clone(),
                detail: detail.to_string(),
            },
            other => AttachError::Entry {
                name: name.clone(),
                detail: other.to_string(),
            },
        })?;
        // Never trust `declared` for the allocation: it only sizes a small
        // first buffer, and `take` bounds what is actually read.
        let remaining_total = limits.max_total.saturating_sub(total);
        let cap = limits.max_entry_size.min(remaining_total);
        let mut buf =
            Vec::with_capacity(usize::try_from(declared.min(cap).min(8 * MIB)).unwrap_or(0));
        (&mut file)
            .take(cap.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| AttachError::Entry {
                name: name.clone(),
                detail: e.to_string(),
            })?;
        let got = buf.len() as u64;
        if got > limits.max_entry_size {
            return Err(AttachError::EntryTooLarge {
                name,
                limit: limits.max_entry_size,
            });
        }
        total = total.saturating_add(got);
        if total > limits.max_total {
            return Err(AttachError::TotalTooLarge {
                limit: limits.max_total,
            });
        }
        listed += 1;
        each(ZipEntry {
            filename: name,
            bytes: buf,
        });
    }
    Ok(())
}

/// Attribute ids of MS-OXTNEF: the high word is the type, the low word the id.
const ATT_OEM_CODEPAGE: u32 = 0x0006_9007;
const ATT_ATTACH_REND_DATA: u32 = 0x0006_9002;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACH_DATA: u32 = 0x0006_800F;
const ATT_ATTACHMENT: u32 = 0x0006_9005;
const LEVEL_ATTACHMENT: u8 = 2;

/// Bounds-checked little-endian reading; every read is an `Option`.
struct LeReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> LeReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LeReader { bytes, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
            *b.get(3)?,
        ]))
    }
}

#[derive(Default)]
struct TnefAttachment<'a> {
    title: Option<&'a [u8]>,
    long_name: Option<String>,
    data: Option<&'a [u8]>,
    /// PR_ATTACH_DATA_BIN, used when `attAttachData` is absent.
    bin: Option<&'a [u8]>,
}

/// The encoding of a Windows code page number (TNEF's `attOemCodepage`).
fn codepage_encoding(codepage: u32) -> &'static encoding_rs::Encoding {
    match codepage {
        936 | 20936 | 54936 => encoding_rs::GB18030,
        950 => encoding_rs::BIG5,
        932 => encoding_rs::SHIFT_JIS,
        949 => encoding_rs::EUC_KR,
        65001 => encoding_rs::UTF_8,
        866 => encoding_rs::IBM866,
        874 => encoding_rs::WINDOWS_874,
        20866 => encoding_rs::KOI8_R,
        21866 => encoding_rs::KOI8_U,
        1250..=1258 => encoding_rs::Encoding::for_label(format!("windows-{codepage}").as_bytes())
            .unwrap_or(encoding_rs::GB18030),
        28591 => encoding_rs::WINDOWS_1252,
        28592..=28606 => {
            encoding_rs::Encoding::for_label(format!("iso-8859-{}", codepage - 28590).as_bytes())
                .unwrap_or(encoding_rs::GB18030)
        }
        _ => encoding_rs::GB18030,
    }
}

/// An 8-bit TNEF string: NULs trimmed, UTF-8 when valid, else the code page.
fn tnef_string(bytes: &[u8], encoding: &'static encoding_rs::Encoding) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let bytes = bytes.get(..end).unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding.decode_without_bom_handling(bytes).0.into_owned(),
    };
    text.trim().nfc().collect()
}

fn utf16_string(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
        .map(u16::from_le_bytes)
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units).trim().nfc().collect()
}

/// What an `attAttachment` MAPI property list says about the file: the best
/// name (PR_ATTACH_LONG_FILENAME, else PR_ATTACH_FILENAME, else
/// PR_DISPLAY_NAME) and the bytes when they travel as PR_ATTACH_DATA_BIN
/// instead of `attAttachData`. Stops quietly at anything it does not understand.
fn mapi_attachment<'a>(
    data: &'a [u8],
    encoding: &'static encoding_rs::Encoding,
) -> (Option<String>, Option<&'a [u8]>) {
    let mut r = LeReader::new(data);
    let Some(count) = r.u32() else {
        return (None, None);
    };
    let mut found: [Option<String>; 3] = [None, None, None];
    let mut bin: Option<&'a [u8]> = None;
    for _ in 0..count.min(4096) {
        let Some(kind) = r.u16() else { break };
        let Some(id) = r.u16() else { break };
        if id >= 0x8000 {
            // Named property: GUID, kind, then a number or a UTF-16 name.
            if r.take(16).is_none() {
                break;
            }
            match r.u32() {
                Some(0) => {
                    if r.u32().is_none() {
                        break;
                    }
                }
                Some(_) => {
                    let Some(len) = r.u32() else { break };
                    let padded = (len as usize).div_ceil(4).saturating_mul(4);
                    if r.take(padded).is_none() {
                        break;
                    }
                }
                None => break,
            }
        }
        let multi = kind & 0x1000 != 0;
        let base = kind & 0x0FFF;
        let fixed = match base {
            0x0001 | 0x0002 | 0x0003 | 0x0004 | 0x000A | 0x000B => Some(4usize),
            0x0005 | 0x0006 | 0x0007 | 0x0014 | 0x0040 => Some(8),
            0x0048 => Some(16),
            0x001E | 0x001F | 0x0102 | 0x000D => None,
            _ => break,
        };
        match fixed {
            Some(size) => {
                let n = if multi {
                    r.u32().map(|c| c as usize)
                } else {
                    Some(1)
                };
                let Some(n) = n else { break };
                if r.take(size.saturating_mul(n)).is_none() {
                    break;
                }
            }
            None => {
                let Some(n) = r.u32() else { break };
                let mut first: Option<&'a [u8]> = None;
                let mut ok = true;
                for _ in 0..n.min(4096) {
                    let Some(len) = r.u32() else {
                        ok = false;
                        break;
                    };
                    let padded = (len as usize).div_ceil(4).saturating_mul(4);
                    let Some(value) = r.take(padded) else {
                        ok = false;
                        break;
                    };
                    if first.is_none() {
                        first = value.get(..len as usize);
                    }
                }
                if !ok {
                    break;
                }
                if id == 0x3701 && base == 0x0102 {
                    bin = first;
                }
                let slot = match id {
                    0x3707 => Some(0),
                    0x3704 => Some(1),
                    0x3001 => Some(2),
                    _ => None,
                };
                if let (Some(slot), Some(value)) = (slot, first) {
                    let text = match base {
                        0x001F => utf16_string(value),
                        0x001E => tnef_string(value, encoding),
                        _ => String::new(),
                    };
                    if !text.is_empty()
                        && let Some(place) = found.get_mut(slot)
                    {
                        *place = Some(text);
                    }
                }
            }
        }
    }
    (found.into_iter().flatten().next(), bin)
}

/// The attached files inside an Outlook `winmail.dat` (TNEF,
/// `application/ms-tnef`). Outlook wraps *all* attachments into this one
/// file when it sends "Rich Text", so without unpacking it a branch's form
/// would look missing. Only files carried by value (`attAttachData` or
/// PR_ATTACH_DATA_BIN) are returned; embedded messages, OLE objects and the
/// RTF body are not. Names come from
/// the MAPI long file name when present (Unicode or the message's code
/// page), else the 8.3 title. Trailing garbage after complete attributes is
/// ignored; a file that ends inside the first attachment is an error.
pub fn list_tnef(bytes: &[u8], limits: &ZipLimits) -> Result<Vec<ZipEntry>, AttachError> {
    let mut r = LeReader::new(bytes);
    if r.take(4) != Some(TNEF_MAGIC) {
        return Err(AttachError::TnefDamaged("缺少 TNEF 标识".to_string()));
    }
    r.u16()
        .ok_or_else(|| AttachError::TnefDamaged("文件过短".to_string()))?;
    let mut encoding = encoding_rs::GB18030;
    let mut found: Vec<TnefAttachment<'_>> = Vec::new();
    let mut truncated = false;
    while r.remaining() > 0 {
        let attribute = (|| {
            let level = r.u8()?;
            let id = r.u32()?;
            let len = r.u32()? as usize;
            let data = r.take(len)?;
            r.u16()?;
            Some((level, id, data))
        })();
        let Some((level, id, data)) = attribute else {
            truncated = true;
            break;
        };
        if id == ATT_OEM_CODEPAGE {
            if let Some(cp) = data.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                encoding = codepage_encoding(u32::from_le_bytes(cp));
            }
            continue;
        }
        if level != LEVEL_ATTACHMENT {
            continue;
        }
        if id == ATT_ATTACH_REND_DATA || found.is_empty() {
            if found.len() >= limits.max_entries.saturating_mul(4).max(16) {
                return Err(AttachError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            found.push(TnefAttachment::default());
        }
        let Some(current) = found.last_mut() else {
            continue;
        };
        match id {
            ATT_ATTACH_TITLE => current.title = Some(data),
            ATT_ATTACH_DATA => current.data = Some(data),
            ATT_ATTACHMENT => {
                let (name, bin) = mapi_attachment(data, encoding);
                current.long_name = name;
                current.bin = bin;
            }
            _ => {}
        }
    }
    if truncated && found.iter().all(|a| a.data.is_none() && a.bin.is_none()) && !found.is_empty() {
        return Err(AttachError::TnefDamaged("文件被截断".to_string()));
    }
    let mut entries = Vec::new();
    let mut total: u64 = 0;
    for (n, attachment) in found.into_iter().enumerate() {
        let Some(data) = attachment.data.or(attachment.bin) else {
            continue;
        };
        let name = attachment
            .long_name
            .or_else(|| attachment.title.map(|t| tnef_string(t, encoding)))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("未命名附件{}", n + 1));
        if entries.len() >= limits.max_entries {
            return Err(AttachError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        if data.len() as u64 > limits.max_entry_size {
            return Err(AttachError::EntryTooLarge {
                name,
                limit: limits.max_entry_size,
            });
        }
        total = total.saturating_add(data.len() as u64);
        if total > limits.max_total {
            return Err(AttachError::TotalTooLarge {
                limit: limits.max_total,
            });
        }
        entries.push(ZipEntry {
            filename: name,
            bytes: data.to_vec(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_value_has_a_label() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(
                serde_json::to_value(f).ok(),
                Some(f.as_str().into()),
                "{f:?}"
            );
            assert!(!f.label().is_empty());
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(
                serde_json::to_value(r).ok(),
                Some(r.as_str().into()),
                "{r:?}"
            );
            assert_eq!(Role::parse(&format!(" {} ", r.as_str())), r);
        }
        assert!("docx2".parse::<Format>().is_err());
        assert_eq!("表单".parse::<Role>(), Err(UnknownName("表单".into())));
        assert_eq!(Role::parse("表单"), Role::Other);
        assert_eq!(Format::Docx.label(), "Word 文档");
    }
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    /// A zip written by the zip crate, then patched so that entry names are raw
    /// GBK bytes without the UTF-8 flag, as WinRAR/360压缩 on Chinese Windows write them.
    fn gbk_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        // Write placeholder ASCII names of the same byte length as the GBK
        // names, then swap the bytes in (both local and central headers).
        let gbk: Vec<Vec<u8>> = files
            .iter()
            .map(|(n, _)| encoding_rs::GBK.encode(n).0.into_owned())
            .collect();
        let placeholders: Vec<String> = gbk
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let mut p = format!("{i:02}");
                while p.len() < g.len() {
                    p.push('x');
                }
                p
            })
            .collect();
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for ((_, data), ph) in files.iter().zip(&placeholders) {
                w.start_file(ph.as_str(), SimpleFileOptions::default())
                    .unwrap();
                w.write_all(data).unwrap();
            }
            w.finish().unwrap();
        }
        let mut bytes = out.into_inner();
        for (g, ph) in gbk.iter().zip(&placeholders) {
            let ph = ph.as_bytes();
            let mut i = 0;
            while i + ph.len() <= bytes.len() {
                if &bytes[i..i + ph.len()] == ph {
                    bytes[i..i + ph.len()].copy_from_slice(g);
                    i += ph.len();
                } else {
                    i += 1;
                }
            }
        }
        bytes
    }

    fn minimal_docx() -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            w.start_file("[Content_Types].xml", SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"<Types/>").unwrap();
            w.start_file("word/document.xml", SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"<w:document/>").unwrap();
            w.finish().unwrap();
        }
        out.into_inner()
    }

    /// One TNEF attribute: level, id, length, data, checksum.
    fn tnef_attr(level: u8, id: u32, data: &[u8]) -> Vec<u8> {
        let mut out = vec![level];
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        let sum: u32 = data.iter().map(|b| u32::from(*b)).sum();
        out.extend_from_slice(&(sum as u16).to_le_bytes());
        out
    }

    #[test]
    fn tnef_with_gbk_title_and_unicode_long_name() {
        let mut tnef = TNEF_MAGIC.to_vec();
        tnef.extend_from_slice(&[0x01, 0x00]);
        tnef.extend(tnef_attr(
            1,
            ATT_OEM_CODEPAGE,
            &[0xA8, 0x03, 0, 0, 0, 0, 0, 0],
        ));
        // First attachment: only an 8-bit GBK title.
        tnef.extend(tnef_attr(2, ATT_ATTACH_REND_DATA, &[0; 14]));
        let mut title = encoding_rs::GBK.encode("申请表.doc").0.into_owned();
        title.push(0);
        tnef.extend(tnef_attr(2, ATT_ATTACH_TITLE, &title));
        tnef.extend(tnef_attr(2, ATT_ATTACH_DATA, b"doc bytes"));
        // Second attachment: 8.3 title plus a Unicode PR_ATTACH_LONG_FILENAME.
        tnef.extend(tnef_attr(2, ATT_ATTACH_REND_DATA, &[0; 14]));
        tnef.extend(tnef_attr(2, ATT_ATTACH_TITLE, b"HUIZON~1.XLS\0"));
        tnef.extend(tnef_attr(2, ATT_ATTACH_DATA, b"xls bytes"));
        let mut props = 1u32.to_le_bytes().to_vec();
        props.extend_from_slice(&0x001Fu16.to_le_bytes());
        props.extend_from_slice(&0x3707u16.to_le_bytes());
        props.extend_from_slice(&1u32.to_le_bytes());
        let mut name: Vec<u8> = "申报汇总表.xls"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        name.extend_from_slice(&[0, 0]);
        props.extend_from_slice(&(name.len() as u32).to_le_bytes());
        props.extend_from_slice(&name);
        while !props.len().is_multiple_of(4) {
            props.push(0);
        }
        tnef.extend(tnef_attr(2, ATT_ATTACHMENT, &props));
        assert_eq!(sniff(&tnef), Format::Tnef);
        let entries = list_tnef(&tnef, &ZipLimits::default()).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.filename.as_str()).collect();
        assert_eq!(names, ["申请表.doc", "申报汇总表.xls"]);
        assert_eq!(entries[1].bytes, b"xls bytes");

        // Cut inside the first attachment's data: an error, not a panic.
        let cut = find(&tnef, b"doc bytes").unwrap() + 3;
        assert!(list_tnef(&tnef[..cut], &ZipLimits::default()).is_err());
        assert!(list_tnef(b"not tnef", &ZipLimits::default()).is_err());
    }

    #[test]
    fn tnef_corpus_files_when_present() {
        for base in [
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"),
            "/work/shared",
        ] {
            let dir = std::path::Path::new(base).join("corpus/email/poi-hmef");
            let Ok(quick) = std::fs::read(dir.join("quick-winmail.dat")) else {
                continue;
            };
            let entries = list_tnef(&quick, &ZipLimits::default()).unwrap();
            let names: Vec<&str> = entries.iter().map(|e| e.filename.as_str()).collect();
            assert!(names.contains(&"quick.doc"), "{names:?}");
            for expected in ["quick.doc", "quick.txt"] {
                let want = std::fs::read(dir.join("quick-contents").join(expected)).unwrap();
                let got = entries.iter().find(|e| e.filename == expected).unwrap();
                assert_eq!(got.bytes, want, "{expected}");
            }
            let doc = entries.iter().find(|e| e.filename == "quick.doc").unwrap();
            assert_eq!(sniff(&doc.bytes), Format::Doc);
            // The malicious one must be refused or empty, never allocate.
            if let Ok(oom) = std::fs::read(dir.join("oom.tnef")) {
                assert!(
                    list_tnef(&oom, &ZipLimits::default())
                        .map(|e| e.is_empty())
                        .unwrap_or(true)
                );
            }
            let mimekit = std::path::Path::new(base).join("corpus/email/mimekit/tnef");
            if let Ok(t) = std::fs::read(mimekit.join("unicode-mapi-attr-name.tnef")) {
                let entries = list_tnef(&t, &ZipLimits::default()).unwrap();
                let names: Vec<&str> = entries.iter().map(|e| e.filename.as_str()).collect();
                assert!(names.contains(&"spaconsole2.cfg"), "{names:?}");
            }
            return;
        }
    }

    #[test]
    fn zip_with_gbk_names_decodes_them() {
        let docx = minimal_docx();
        let zip = gbk_zip(&[
            ("经济与管理学院申请表.docx", &docx),
            ("汇总表.xls", b"not really"),
        ]);
        let entries = list_zip(&zip, &ZipLimits::default()).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.filename.as_str()).collect();
        assert_eq!(names, ["经济与管理学院申请表.docx", "汇总表.xls"]);
        assert_eq!(entries[0].bytes, docx);
        assert_eq!(sniff(&entries[0].bytes), Format::Docx);
        assert_eq!(sniff(&zip), Format::Zip);
    }

    #[test]
    fn zip_names_utf8_and_flag() {
        assert_eq!(
            decode_zip_name("申请表.doc".as_bytes(), false),
            "申请表.doc"
        );
        assert_eq!(
            decode_zip_name(&encoding_rs::GBK.encode("申请表.doc").0, false),
            "申请表.doc"
        );
        // GB18030 four-byte sequence (U+20000 𠀀 is 0x95 0x32 0x82 0x36).
        assert_eq!(
            decode_zip_name(b"\x95\x32\x82\x36.doc", false),
            "\u{20000}.doc"
        );
        // With the flag set the bytes are UTF-8 even if that makes them lossy.
        assert_eq!(decode_zip_name("汇总.xlsx".as_bytes(), true), "汇总.xlsx");
    }

    #[test]
    fn zip_skips_directories_and_junk() {
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            w.add_directory("材料/", SimpleFileOptions::default())
                .unwrap();
            w.start_file("材料/申请表.doc", SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"x").unwrap();
            w.start_file("__MACOSX/材料/._申请表.doc", SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"y").unwrap();
            w.start_file("材料/~$申请表.doc", SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"z").unwrap();
            w.finish().unwrap();
        }
        let entries = list_zip(&out.into_inner(), &ZipLimits::default()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].filename, "材料/申请表.doc");
    }

    #[test]
    fn zip_bomb_is_refused_without_allocating() {
        // 8 MiB of zeros deflates to a few KiB; with a 1 MiB entry limit the
        // listing must fail, both on the declared size and when reading.
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            let opts =
                SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            w.start_file("bomb.bin", opts).unwrap();
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..8 {
                w.write_all(&chunk).unwrap();
            }
            w.finish().unwrap();
        }
        let bytes = out.into_inner();
        assert!(bytes.len() < 1 << 17);
        let limits = ZipLimits {
            max_entry_size: MIB,
            ..ZipLimits::default()
        };
        let err = list_zip(&bytes, &limits).unwrap_err();
        assert!(matches!(err, AttachError::EntryTooLarge { .. }), "{err:?}");
        assert!(err.to_string().contains("bomb.bin"));

        // Lie about the size: patch the declared uncompressed size (central
        // directory and local header) down to 10 bytes. Reading must still stop.
        let mut lying = bytes.clone();
        let size = (8u32 << 20).to_le_bytes();
        let mut i = 0;
        while i + 4 <= lying.len() {
            if lying[i..i + 4] == size {
                lying[i..i + 4].copy_from_slice(&10u32.to_le_bytes());
            }
            i += 1;
        }
        assert!(list_zip(&lying, &limits).is_err());

        let total = ZipLimits {
            max_total: MIB,
            ..ZipLimits::default()
        };
        assert!(list_zip(&bytes, &total).is_err());
    }

    #[test]
    fn zip_too_many_entries() {
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for i in 0..5 {
                w.start_file(format!("f{i}.txt"), SimpleFileOptions::default())
                    .unwrap();
                w.write_all(b"x").unwrap();
            }
            w.finish().unwrap();
        }
        let limits = ZipLimits {
            max_entries: 4,
            ..ZipLimits::default()
        };
        assert_eq!(
            list_zip(&out.into_inner(), &limits),
            Err(AttachError::TooManyEntries { limit: 4 })
        );
    }

    #[test]
    fn zip_encrypted_entry_is_refused() {
        let mut bytes = gbk_zip(&[("申请表.doc", b"hello")]);
        // Set the encryption bit in the general purpose flags of both headers.
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let pos = find(&bytes, sig).unwrap();
            let flag_at = if sig == b"PK\x03\x04" {
                pos + 6
            } else {
                pos + 8
            };
            bytes[flag_at] |= 1;
        }
        let err = list_zip(&bytes, &ZipLimits::default()).unwrap_err();
        assert_eq!(
            err,
            AttachError::Encrypted {
                name: "申请表.doc".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "压缩包内的文件“申请表.doc”设有密码，无法打开"
        );
    }

    #[test]
    fn zip_garbage_is_an_error_not_a_panic() {
        assert!(list_zip(b"PK\x03\x04garbage", &ZipLimits::default()).is_err());
        assert!(list_zip(b"", &ZipLimits::default()).is_err());
        let mut truncated = gbk_zip(&[("a.doc", b"hello world")]);
        truncated.truncate(truncated.len() - 10);
        assert!(list_zip(&truncated, &ZipLimits::default()).is_err());
    }

    #[test]
    fn sniff_magic_numbers() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Format::Pdf);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0"), Format::Image);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Format::Image);
        assert_eq!(sniff(b"GIF89a"), Format::Image);
        assert_eq!(sniff(&[0x78, 0x9F, 0x3E, 0x22, 1, 0]), Format::Tnef);
        assert_eq!(sniff(&minimal_docx()), Format::Docx);
        assert_eq!(sniff(b""), Format::Other);
        assert_eq!(
            sniff("<html><body>申请表</body></html>".as_bytes()),
            Format::Other
        );
        let word_xml = b"<?xml version=\"1.0\"?>\n<?mso-application progid=\"Word.Document\"?>\n<w:wordDocument>";
        assert_eq!(sniff(word_xml), Format::WordXml);
        let excel_xml =
            b"\xEF\xBB\xBF<?xml version=\"1.0\"?><?mso-application progid=\"Excel.Sheet\"?>";
        assert_eq!(sniff(excel_xml), Format::ExcelXml);
        // Damaged OLE: magic only.
        let mut ole = OLE_MAGIC.to_vec();
        ole.extend_from_slice(&[0u8; 600]);
        assert_eq!(sniff(&ole), Format::Other);
        assert_eq!(sniff_named(&ole, "申请表.doc"), Format::Doc);
        assert_eq!(sniff_named(&ole, "汇总.xls"), Format::Xls);
        assert_eq!(
            content_note(&ole, "申请表.doc").as_deref(),
            Some("文件已损坏，无法打开")
        );
        // Damaged OLE that still shows its WordDocument directory entry.
        let mut ole2 = ole.clone();
        ole2.extend("WordDocument".encode_utf16().flat_map(|u| u.to_le_bytes()));
        assert_eq!(sniff(&ole2), Format::Doc);
        // A truncated docx still names its main part in a local header.
        let mut docx = minimal_docx();
        let cut = find(&docx, b"PK\x01\x02").unwrap();
        docx.truncate(cut);
        assert_eq!(sniff(&docx), Format::Docx);
    }

    #[test]
    fn sniff_sample_templates_when_present() {
        for base in [
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"),
            "/work/shared",
        ] {
            let dir = std::path::Path::new(base).join("samples/templates");
            let Ok(read) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in read.flatten() {
                let path = entry.path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let bytes = std::fs::read(&path).unwrap();
                let ext = declared_format(&name).unwrap();
                let expected = match ext.as_str() {
                    "doc" => Format::Doc,
                    "docx" => Format::Docx,
                    "xls" => Format::Xls,
                    "xlsx" => Format::Xlsx,
                    _ => continue,
                };
                assert_eq!(sniff(&bytes), expected, "{name}");
                assert_eq!(content_note(&bytes, &name), None, "{name}");
            }
            return;
        }
    }

    #[test]
    fn notes_for_disguised_files() {
        let html = b"<html xmlns:o=\"urn:schemas-microsoft-com:office:office\"><table>";
        assert_eq!(sniff(html), Format::Other);
        assert!(
            content_note(html, "申请表.doc")
                .unwrap()
                .contains("网页（HTML）")
        );
        assert!(content_note(html, "汇总表.xls").unwrap().contains("Excel"));
        assert!(
            content_note(b"{\\rtf1\\ansi", "申请表.doc")
                .unwrap()
                .contains("RTF")
        );
        assert_eq!(content_note(b"%PDF-1.4", "申请表.pdf"), None);
        assert_eq!(content_note(&minimal_docx(), "申请表.doc"), None);
        assert_eq!(
            content_note(b"", "申请表.docx").as_deref(),
            Some("文件是空的（0 字节）")
        );
    }

    #[test]
    fn declared_formats() {
        assert_eq!(declared_format("申请表.DOCX").as_deref(), Some("docx"));
        assert_eq!(declared_format("a/b\\汇总.xls").as_deref(), Some("xls"));
        assert_eq!(declared_format("申请表").as_deref(), None);
        assert_eq!(declared_format("申请表.").as_deref(), None);
        assert_eq!(declared_format("第1.2版 申请表").as_deref(), None);
        assert_eq!(declared_format("archive.tar.gz").as_deref(), Some("gz"));
        assert_eq!(declared_format(".docx").as_deref(), Some("docx"));
    }

    #[test]
    fn roles_by_keyword_and_format() {
        assert_eq!(
            role(
                "汽车工程学院本科生第二党支部“对标争先”建设项目申请表.docx",
                Format::Docx
            ),
            Role::Form
        );
        assert_eq!(
            role("对标争先建设项目申报汇总表_某支部.xls", Format::Xls),
            Role::Summary
        );
        assert_eq!(role("某支部.docx", Format::Docx), Role::Form);
        assert_eq!(role("某支部.xlsx", Format::Xlsx), Role::Summary);
        assert_eq!(role("某支部.zip", Format::Zip), Role::Other);
        // A PDF of the form is not the Word form.
        assert_eq!(role("项目申请表.pdf", Format::Pdf), Role::Other);
        // The content decides over the extension.
        assert_eq!(role("申请表.xls", Format::Doc), Role::Form);
        assert_eq!(role("申请表汇总.xlsx", Format::Xlsx), Role::Summary);
        assert_eq!(role("结题报告.docx", Format::Docx), Role::ClosureReport);
        assert_eq!(role("结项报告.pdf", Format::Pdf), Role::ClosureReport);
        assert_eq!(role("报销材料.pdf", Format::Pdf), Role::Reimbursement);
        assert_eq!(role("报销凭证.jpg", Format::Image), Role::Reimbursement);
        assert_eq!(role("工作案例.docx", Format::Docx), Role::CaseStudy);
        assert_eq!(role("活动总结.doc", Format::Doc), Role::ActivitySummary);
        assert_eq!(role("活動總結.docx", Format::Docx), Role::ActivitySummary);
        assert_eq!(role("照片.jpg", Format::Image), Role::Other);
        assert_eq!(role("winmail.dat", Format::Tnef), Role::Other);
        assert_eq!(role("申请表.zip", Format::Zip), Role::Other);
        // HTML saved as .doc: still meant as the form.
        assert_eq!(role("申请表.doc", Format::Other), Role::Form);
        assert_eq!(role("附件.xls", Format::Other), Role::Summary);
        assert_eq!(role("说明.txt", Format::Other), Role::Other);
        assert_eq!(role("~$申请表.docx", Format::Other), Role::Other);
        assert_eq!(role("旧模板.doc", Format::WordXml), Role::Form);
    }

    #[test]
    fn closure_roles_by_title_and_name() {
        use Format::{Doc, Docx, Image, Pdf, Tnef, WordXml, Xls, Xlsx, Zip};
        use Role::*;
        let report = Some("同济大学学生党支部“对标争先”建设项目结题报告");
        let form_title = Some("同济大学学生党支部“对标争先”建设项目申请表");
        let cases: &[(&str, Format, Option<&str>, Role)] = &[
            // The case of the issue: a Word file in a closure mail is not the form by default.
            ("结项总结.docx", Docx, None, ClosureReport),
            (
                "结项总结.docx",
                Docx,
                Some("XX党支部活动总结"),
                ActivitySummary,
            ),
            ("结项总结.docx", Docx, form_title, ClosureReport),
            ("某支部.docx", Docx, None, Other),
            ("某支部.docx", Docx, Some("某支部"), Other),
            ("某支部.docx", Docx, report, ClosureReport),
            ("附件1.doc", Doc, Some("结 题 报 告"), ClosureReport),
            ("附件2.docx", Docx, Some("对标争先项目工作案例"), CaseStudy),
            ("附件3.docx", Docx, Some("活动总结"), ActivitySummary),
            ("附件4.docx", Docx, Some("经费报销明细"), Reimbursement),
            ("旧模板.doc", WordXml, Some("結題報告"), ClosureReport),
            // The title decides over the name when it names a closure material.
            ("工作案例.docx", Docx, Some("活动总结"), ActivitySummary),
            ("活动总结.docx", Docx, Some("工作案例"), CaseStudy),
            ("活动总结.docx", Docx, Some("某支部"), ActivitySummary),
            // Names alone.
            ("结题报告.docx", Docx, None, ClosureReport),
            ("结项报告.pdf", Pdf, None, ClosureReport),
            ("结题报告.pdf", Pdf, None, ClosureReport),
            ("工作案例.docx", Docx, None, CaseStudy),
            ("优秀案例.pdf", Pdf, None, CaseStudy),
            ("活动总结.doc", Doc, None, ActivitySummary),
            ("活動總結.docx", Docx, None, ActivitySummary),
            ("项目总结.docx", Docx, None, ActivitySummary),
            ("报销材料.pdf", Pdf, None, Reimbursement),
            ("报销凭证.jpg", Image, None, Reimbursement),
            ("发票.jpg", Image, None, Reimbursement),
            ("经费使用明细.xlsx", Xlsx, None, Reimbursement),
            ("报销明细.xls", Xls, None, Reimbursement),
            // The form and the summary only when they say so in full.
            ("项目申请表.docx", Docx, None, Form),
            ("某支部.docx", Docx, form_title, Form),
            ("申报汇总表.xlsx", Xlsx, None, Summary),
            ("活动汇总.xlsx", Xlsx, None, Other),
            ("某支部.xlsx", Xlsx, None, Other),
            ("名单.xls", Xls, None, Other),
            // A closure word only counts where the format can play the role.
            ("结题报告.xlsx", Xlsx, None, Other),
            ("工作案例.jpg", Image, None, Other),
            ("项目申请表.pdf", Pdf, None, Other),
            ("照片.jpg", Image, None, Other),
            ("材料.zip", Zip, None, Other),
            ("winmail.dat", Tnef, None, Other),
            // Unreadable bytes under a Word name are still meant as what the name says.
            ("结题报告.doc", Format::Other, None, ClosureReport),
            ("~$结题报告.docx", Format::Other, None, Role::Other),
        ];
        for (name, format, title, want) in cases {
            assert_eq!(
                closure_role(name, *format, *title),
                *want,
                "{name} ({format:?}) titled {title:?}"
            );
        }
        // In an application mail the same names keep their application roles.
        assert_eq!(role("结项总结.docx", Docx), Form);
        assert_eq!(role("某支部.xlsx", Xlsx), Summary);
    }

    #[test]
    fn roles_read_back_from_their_names_and_label_themselves() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), r);
            assert!(!r.label().is_empty());
        }
        // Rows written before version 7 with `case_study` still read as 工作案例.
        assert_eq!(Role::parse("case_study").label(), "工作案例");
        assert_eq!(Role::parse("activity_summary").label(), "活动总结");
        assert_eq!(Role::parse("bogus"), Role::Other);
        let closure: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.is_closure_material())
            .collect();
        assert_eq!(
            closure,
            [
                Role::ClosureReport,
                Role::Reimbursement,
                Role::CaseStudy,
                Role::ActivitySummary
            ]
        );
        assert_eq!(Role::from_material("工作案例"), Some(Role::CaseStudy));
        assert_eq!(Role::from_material("活动总结"), Some(Role::ActivitySummary));
        assert_eq!(Role::from_material("申请表"), None);
        assert_eq!(Role::from_material("form"), None);
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_file_name("申请表.docx"), "申请表.docx");
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(
            safe_file_name("C:\\Users\\张三\\Desktop\\汇总表.xls"),
            "汇总表.xls"
        );
        assert_eq!(safe_file_name("C:汇总表.xls"), "C汇总表.xls");
        assert_eq!(safe_file_name("a<b>c:d\"e|f?g*h.doc"), "abcdefgh.doc");
        assert_eq!(safe_file_name("  ..申请表.doc.. "), "申请表.doc");
        assert_eq!(safe_file_name("line\r\nbreak\t.doc"), "linebreak.doc");
        assert_eq!(safe_file_name(""), "attachment");
        assert_eq!(safe_file_name("../.."), "attachment");
        assert_eq!(safe_file_name("???"), "attachment");
        assert_eq!(safe_file_name("CON.txt"), "_CON.txt");
        assert_eq!(safe_file_name("evil\u{202E}cod.exe"), "evilcod.exe");
        // NFD input comes out NFC.
        assert_eq!(safe_file_name("Cafe\u{301}.doc"), "Caf\u{e9}.doc");
        // Long names keep their extension and stay on a char boundary.
        let long = format!("{}.docx", "申".repeat(100));
        let safe = safe_file_name(&long);
        assert!(safe.len() <= 200, "{}", safe.len());
        assert!(safe.ends_with("申.docx"));
        assert_eq!(safe.len(), 65 * 3 + 5);
        let long_ext = "a".repeat(300);
        assert_eq!(safe_file_name(&long_ext).len(), 200);
    }

    /// Hostile names from mails, and what people are shown of them.
    #[test]
    fn names_shown_to_people_carry_nothing_hidden() {
        let cases: &[(&str, &str)] = &[
            ("申请表.docx", "申请表.docx"),
            ("申请\0表.docx", "申请表.docx"),
            ("申请表\u{202E}xcod.exe", "申请表xcod.exe"),
            ("\u{2066}汇总表\u{2069}.xlsx", "汇总表.xlsx"),
            ("\u{200B}\u{200D}申请表\u{FEFF}.docx", "申请表.docx"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\Windows\\system32\\申请表.docx", "申请表.docx"),
            ("C:\\Users\\张三\\汇总表.xlsx", "汇总表.xlsx"),
            ("/abs/path/申请表.doc", "申请表.doc"),
            ("申请表\r\nBcc: x@y.cn.docx", "申请表 Bcc: x@y.cn.docx"),
            ("tab\there.docx", "tab here.docx"),
            ("\u{1B}[31m红色\u{1B}[0m.docx", "[31m红色[0m.docx"),
            ("\u{7F}\u{85}\u{9B}x.doc", "x.doc"),
            ("line\u{2028}sep.doc", "line sep.doc"),
            ("  前后空格  .docx  ", "前后空格 .docx"),
            ("\0\0\0", "（无名附件）"),
            ("", "（无名附件）"),
            ("dir/", "（无名附件）"),
            ("\u{202E}", "（无名附件）"),
            ("=HYPERLINK(\"x\").docx", "=HYPERLINK(\"x\").docx"),
            ("申请表:终版?.docx", "申请表:终版?.docx"),
            ("soft\u{00AD}hyphen.doc", "softhyphen.doc"),
            ("arabic\u{061C}mark.doc", "arabicmark.doc"),
        ];
        for (raw, want) in cases {
            assert_eq!(display_name(raw), *want, "display_name({raw:?})");
        }
        for (raw, want) in [
            ("主题\u{1B}]0;owned\u{7}\u{1B}[2J", "主题]0;owned[2J"),
            ("a\r\n#99 伪造的一行", "a #99 伪造的一行"),
            ("对标争先\u{202E}申报", "对标争先申报"),
            ("../保留路径/也保留", "../保留路径/也保留"),
        ] {
            assert_eq!(display_text(raw), want, "display_text({raw:?})");
        }
        let long = format!("{}.docx", "申".repeat(300));
        let shown = display_name(&long);
        assert_eq!(shown.chars().count(), 120);
        assert!(shown.ends_with("….docx"), "{shown}");
        let no_ext = "x".repeat(500);
        assert_eq!(display_name(&no_ext).chars().count(), 120);
        // Whatever goes in, nothing hidden or path-like comes out.
        let nasty: String = (0u32..0x3000)
            .filter_map(char::from_u32)
            .filter(|c| !c.is_alphanumeric())
            .collect();
        let shown = display_name(&format!("a{nasty}b.doc"));
        assert!(
            !shown
                .chars()
                .any(|c| hidden_char(c) || c == '/' || c == '\\'),
            "{shown:?}"
        );
    }
}
