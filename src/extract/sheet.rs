//! The 申报汇总表: an Excel file (.xls or .xlsx) → [`Workbook`] → the branch's row of fields.
//!
//! Two steps, kept apart so each can be tested on its own:
//!
//! * [`read_workbook`] turns attachment bytes into a [`Workbook`]. The bytes come from anyone
//!   who can send mail, so the format is decided by content (a `.xls` that is really `.xlsx`,
//!   an HTML page saved as `.xls`, a text stub), and every resource a hostile file could make
//!   calamine spend is checked first: an xlsx zip's declared *and actual* decompressed size and
//!   entry count, an xls's cell grid (calamine allocates `rows × cols` cells for every sheet, so
//!   two far-apart cells would cost gigabytes). Failures are [`SheetError`]s whose Chinese text
//!   tells the branch what to do, because it goes into the acknowledgement mail.
//! * [`read_summary`] finds the header row (after title rows, whatever the column order and
//!   wording), maps columns to fields by synonyms, and reads the data rows below it.

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use calamine::{Data, DataRef, ExcelDateTime, Reader, Xls, Xlsx, XlsxError};

use super::amount::parse_amount;
use super::field::Field;
use super::model::{Fields, Sheet, Value, Workbook};
use crate::textnorm::{is_cjk, normalize, trim_invisible};

/// Why an attachment could not be read as a workbook; the Display text is for the branch.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error("文件设有密码，请去掉密码后重新发送")]
    Encrypted,
    #[error("文件不是 Excel 表格，请发送 .xls 或 .xlsx 格式的《申报汇总表》")]
    NotSpreadsheet,
    #[error("文件已损坏，无法打开，请用 Excel 重新保存后发送（{0}）")]
    Damaged(String),
    #[error("文件过大或内容异常，无法处理，请删除多余的工作表和内容后重新发送")]
    TooLarge,
    /// BIFF2–4 workbooks, Excel 2003 XML, HTML or MHT pages named `.xls`, OpenDocument.
    #[error("文件是旧版或非标准的表格格式（{0}），请用 Excel 另存为 .xlsx 后重新发送")]
    OldFormat(&'static str),
}

/// Resource limits for one attachment.
#[derive(Debug, Clone)]
pub struct SheetLimits {
    /// Bytes an xlsx zip may decompress to (declared sizes, then actually counted), and the
    /// memory calamine may spend on an xls's cell grids (estimated at 64 bytes a cell).
    pub max_uncompressed: u64,
    /// Rows kept per sheet; later rows are dropped.
    pub max_rows: usize,
    /// Columns kept per sheet; later columns are dropped.
    pub max_cols: usize,
}

impl Default for SheetLimits {
    fn default() -> Self {
        SheetLimits {
            max_uncompressed: 100 << 20,
            max_rows: 10_000,
            max_cols: 200,
        }
    }
}

/// More zip entries than any real workbook has (the zip crate indexes them all in memory).
const MAX_ZIP_ENTRIES: usize = 10_000;
/// More sheets than any real xls has; calamine parses every sheet on open.
const MAX_XLS_SHEETS: usize = 1_000;
/// Estimated bytes calamine holds per cell of an xls grid (a `Data` and a formula `String`).
const XLS_BYTES_PER_CELL: u64 = 64;

/// Reads an .xls or .xlsx file, deciding the format by content rather than by name.
///
/// Numbers keep the file's typing (.xls integers → `Int`, .xlsx numbers → `Float`), dates become
/// ISO text, formulas their cached value, error cells `Value::Error`. Each sheet's `rows` start
/// at A1, so `rows[r][c]` is sheet row `r + 1`, column `c + 1`; rows and columns beyond the
/// limits are dropped.
pub fn read_workbook(bytes: &[u8], limits: &SheetLimits) -> Result<Workbook, SheetError> {
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        xls_precheck(bytes, limits)?;
        guarded(|| read_xls(bytes, limits))
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        zip_precheck(bytes, limits)?;
        guarded(|| read_xlsx(bytes, limits))
    } else {
        Err(sniff_other(bytes))
    }
}

/// calamine indexes slices with offsets taken from the file; a panic there must become a
/// "damaged file" answer, not a dead intake worker.
fn guarded<T>(f: impl FnOnce() -> Result<T, SheetError>) -> Result<T, SheetError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(SheetError::Damaged("读取时出错".into())))
}

/// Names what a non-OLE, non-zip file is, for a useful answer to the branch.
fn sniff_other(bytes: &[u8]) -> SheetError {
    // A raw BIFF2–4 stream starts with its BOF record (0x0009, 0x0209, 0x0409, 0x0809).
    if let [lo, hi, len, 0, ..] = bytes
        && *lo == 0x09
        && matches!(*hi, 0x00 | 0x02 | 0x04 | 0x08)
        && *len <= 20
    {
        return SheetError::OldFormat("早期 Excel（BIFF2–5）工作表");
    }
    let head: String = String::from_utf8_lossy(bytes.get(..4096).unwrap_or(bytes))
        .trim_start_matches(|c: char| c == '\u{FEFF}' || c.is_whitespace())
        .to_ascii_lowercase();
    if head.starts_with("<?xml") && head.contains("urn:schemas-microsoft-com:office:spreadsheet") {
        SheetError::OldFormat("Excel 2003 XML 表格")
    } else if ["<html", "<!doctype html", "<table", "<meta", "<head"]
        .iter()
        .any(|p| head.starts_with(p))
    {
        SheetError::OldFormat("网页格式，扩展名为 .xls")
    } else if head.starts_with("mime-version:") {
        SheetError::OldFormat("单个文件网页 .mht")
    } else {
        SheetError::NotSpreadsheet
    }
}

/// Checks an xlsx zip before calamine sees it: entry count, declared sizes, then the actual
/// decompressed size of every entry (declared sizes can lie; calamine reads shared strings
/// whole into memory), and that it is a spreadsheet at all.
fn zip_precheck(bytes: &[u8], limits: &SheetLimits) -> Result<(), SheetError> {
    let damaged = |e: zip::result::ZipError| SheetError::Damaged(e.to_string());
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(damaged)?;
    if zip.is_empty() {
        return Err(SheetError::Damaged("压缩包是空的".into()));
    }
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(SheetError::TooLarge);
    }
    let (mut declared, mut workbook, mut encrypted) = (0u64, false, false);
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(damaged)?;
        declared = declared.saturating_add(entry.size());
        encrypted |= entry.encrypted();
        let name = entry.name().map_err(damaged)?.to_ascii_lowercase();
        workbook |= name.ends_with("workbook.xml") || name.ends_with("workbook.bin");
        if name == "mimetype" && !workbook {
            return Err(SheetError::OldFormat("OpenDocument 表格 .ods"));
        }
    }
    if encrypted {
        return Err(SheetError::Encrypted);
    }
    if !workbook {
        return Err(SheetError::NotSpreadsheet);
    }
    if declared > limits.max_uncompressed {
        return Err(SheetError::TooLarge);
    }
    let mut budget = limits.max_uncompressed;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(damaged)?;
        let n = std::io::copy(
            &mut entry.take(budget.saturating_add(1)),
            &mut std::io::sink(),
        )
        .map_err(|e| SheetError::Damaged(e.to_string()))?;
        budget = budget.checked_sub(n).ok_or(SheetError::TooLarge)?;
    }
    Ok(())
}

/// Checks an OLE file before calamine parses it: encryption, that it holds a workbook, and the
/// memory calamine will allocate for its cell grids.
///
/// calamine parses every sheet on open and stores each as a dense `rows × cols` grid spanning
/// its cells (and reserves the DIMENSIONS record's area), so this walks the same records the
/// same way — each BOUNDSHEET's offset to its EOF, skipping embedded charts — and refuses a
/// file whose grids would not fit in `max_uncompressed`.
fn xls_precheck(bytes: &[u8], limits: &SheetLimits) -> Result<(), SheetError> {
    let damaged = |e: std::io::Error| SheetError::Damaged(e.to_string());
    let mut cf = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(damaged)?;
    if cf.exists("EncryptionInfo") || cf.exists("EncryptedPackage") {
        return Err(SheetError::Encrypted);
    }
    let Some(name) = ["Workbook", "Book"].into_iter().find(|n| cf.is_stream(n)) else {
        return Err(
            if cf.is_stream("WordDocument") || cf.is_stream("PowerPoint Document") {
                SheetError::NotSpreadsheet
            } else {
                SheetError::Damaged("没有 Workbook 数据流".into())
            },
        );
    };
    let mut stream = Vec::new();
    cf.open_stream(name)
        .map_err(damaged)?
        .take(bytes.len() as u64)
        .read_to_end(&mut stream)
        .map_err(damaged)?;

    let mut sheets = Vec::new();
    for (i, (typ, data)) in records(&stream, 0).enumerate() {
        match typ {
            _ if i == 0 && typ != 0x0809 => {
                return Err(SheetError::Damaged("缺少 BOF 记录".into()));
            }
            0x0809 if i == 0 && !matches!(u16_at(data, 0), Some(0x0500 | 0x0600)) => {
                return Err(SheetError::OldFormat("Excel 5.0 之前的工作簿"));
            }
            0x002F => return Err(SheetError::Encrypted),
            0x0085 => sheets.push(u32_at(data, 0).unwrap_or(u32::MAX) as usize),
            0x000A => break,
            _ => {}
        }
    }
    if sheets.len() > MAX_XLS_SHEETS {
        return Err(SheetError::TooLarge);
    }
    let mut cells: u64 = 0;
    for pos in sheets {
        if pos > stream.len() {
            return Err(SheetError::Damaged("工作表位置超出文件".into()));
        }
        cells = cells.saturating_add(xls_sheet_cells(&stream, pos)?);
    }
    if cells.saturating_mul(XLS_BYTES_PER_CELL) > limits.max_uncompressed {
        return Err(SheetError::TooLarge);
    }
    Ok(())
}

/// The grid area calamine will allocate for the sheet at `pos`: the larger of the DIMENSIONS
/// area and the bounding box of its value cells.
fn xls_sheet_cells(stream: &[u8], pos: usize) -> Result<u64, SheetError> {
    let (mut seen_bof, mut depth, mut reserved) = (false, 0usize, 0u64);
    let (mut r0, mut r1, mut c0, mut c1) = (u32::MAX, 0u32, u32::MAX, 0u32);
    for (typ, d) in records(stream, pos) {
        if depth > 0 {
            match typ {
                0x0809 => depth += 1,
                0x000A => depth -= 1,
                _ => {}
            }
            continue;
        }
        let (row, first, last) = match typ {
            0x0809 if seen_bof => {
                depth += 1;
                continue;
            }
            0x0809 => {
                seen_bof = true;
                continue;
            }
            0x000A => break,
            0x0200 => {
                reserved = reserved.max(xls_dimensions_area(d)?);
                continue;
            }
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 => {
                let col = u16_at(d, 2);
                (u16_at(d, 0), col, col)
            }
            0x00BD => (
                u16_at(d, 0),
                u16_at(d, 2),
                u16_at(d, d.len().saturating_sub(2)),
            ),
            _ => continue,
        };
        if let (Some(row), Some(first), Some(last)) = (row, first, last) {
            let (row, first, last) = (u32::from(row), u32::from(first), u32::from(last));
            (r0, r1) = (r0.min(row), r1.max(row));
            (c0, c1) = (c0.min(first.min(last)), c1.max(first.max(last)));
        }
    }
    let cells = if r0 <= r1 && c0 <= c1 {
        u64::from(r1 - r0 + 1) * u64::from(c1 - c0 + 1)
    } else {
        0
    };
    Ok(cells.max(reserved))
}

/// The area calamine reserves for a DIMENSIONS record, computed as calamine does; a reversed
/// range would underflow there, so it is refused here.
fn xls_dimensions_area(d: &[u8]) -> Result<u64, SheetError> {
    let (rf, rl, cf, cl) = match d.len() {
        10 => (
            u16_at(d, 0).map(u32::from),
            u16_at(d, 2).map(u32::from),
            u16_at(d, 4),
            u16_at(d, 6),
        ),
        14 | 16 => (u32_at(d, 0), u32_at(d, 4), u16_at(d, 8), u16_at(d, 10)),
        _ => return Ok(0),
    };
    let (Some(rf), Some(rl), Some(cf), Some(cl)) = (rf, rl, cf, cl) else {
        return Ok(0);
    };
    if rl == 0 || cl == 0 {
        return Ok(0);
    }
    let cf = if cf > 0xFF || cl < cf { 0 } else { cf };
    let rows = i64::from(rl) - i64::from(rf);
    let cols = i64::from(cl) - i64::from(cf);
    if rows < 0 || cols < 0 {
        return Err(SheetError::Damaged("DIMENSIONS 记录异常".into()));
    }
    Ok(rows.unsigned_abs() * cols.unsigned_abs())
}

/// BIFF records (type, data) from `pos`, stopping at the first truncated one.
fn records(stream: &[u8], pos: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = stream.get(pos..).unwrap_or_default();
    std::iter::from_fn(move || {
        let typ = u16_at(rest, 0)?;
        let len = usize::from(u16_at(rest, 2)?);
        let data = rest.get(4..4 + len)?;
        rest = rest.get(4 + len..)?;
        Some((typ, data))
    })
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Cells placed by absolute position, dropping those beyond the limits.
struct Grid<'a> {
    rows: Vec<Vec<Value>>,
    limits: &'a SheetLimits,
}

impl Grid<'_> {
    fn put(&mut self, row: u32, col: u32, value: Value) {
        let (r, c) = (row as usize, col as usize);
        if r >= self.limits.max_rows || c >= self.limits.max_cols || value == Value::Empty {
            return;
        }
        if self.rows.len() <= r {
            self.rows.resize_with(r + 1, Vec::new);
        }
        if let Some(cells) = self.rows.get_mut(r) {
            if cells.len() <= c {
                cells.resize(c + 1, Value::Empty);
            }
            if let Some(cell) = cells.get_mut(c) {
                *cell = value;
            }
        }
    }
}

fn read_xls(bytes: &[u8], limits: &SheetLimits) -> Result<Workbook, SheetError> {
    let mut xls = Xls::new(Cursor::new(bytes)).map_err(|e| match e {
        calamine::XlsError::Password => SheetError::Encrypted,
        e => SheetError::Damaged(e.to_string()),
    })?;
    let mut sheets = Vec::new();
    for name in xls.sheet_names() {
        let Ok(range) = xls.worksheet_range(&name) else {
            continue;
        };
        let (r0, c0) = range.start().unwrap_or_default();
        let mut grid = Grid {
            rows: Vec::new(),
            limits,
        };
        for (r, c, d) in range.used_cells() {
            let (r, c) = (r0.saturating_add(r as u32), c0.saturating_add(c as u32));
            grid.put(r, c, value_of(d));
        }
        sheets.push(Sheet {
            name,
            rows: grid.rows,
        });
    }
    Ok(Workbook { sheets })
}

/// Streams each sheet's cells (calamine's dense `worksheet_range` would allocate the grid
/// spanned by A1 and XFD1048576 for a two-cell file) and stops at `max_rows`: rows are stored
/// in ascending order, so nothing after that can be kept.
fn read_xlsx(bytes: &[u8], limits: &SheetLimits) -> Result<Workbook, SheetError> {
    let mut xlsx: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| match e {
        XlsxError::Password => SheetError::Encrypted,
        e => SheetError::Damaged(e.to_string()),
    })?;
    let (mut sheets, mut failure) = (Vec::new(), None);
    for name in xlsx.sheet_names() {
        let mut grid = Grid {
            rows: Vec::new(),
            limits,
        };
        let mut cells = match xlsx.worksheet_cells_reader(&name) {
            Ok(cells) => cells,
            Err(e) => {
                failure = Some(e);
                continue;
            }
        };
        loop {
            match cells.next_cell() {
                Ok(Some(cell)) => {
                    let (r, c) = cell.get_position();
                    if r as usize >= limits.max_rows {
                        break;
                    }
                    grid.put(r, c, value_of_ref(cell.get_value()));
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(cells);
        sheets.push(Sheet {
            name,
            rows: grid.rows,
        });
    }
    match failure {
        Some(e) if sheets.iter().all(|s| s.rows.is_empty()) => {
            Err(SheetError::Damaged(e.to_string()))
        }
        _ => Ok(Workbook { sheets }),
    }
}

fn value_of(d: &Data) -> Value {
    match d {
        Data::Empty => Value::Empty,
        Data::String(s) => Value::Text(s.clone()),
        Data::Int(i) => Value::Int(*i),
        Data::Float(f) => Value::Float(*f),
        Data::Bool(b) => Value::Bool(*b),
        Data::DateTime(dt) => date_value(dt),
        Data::DateTimeIso(s) => Value::Date(s.clone()),
        Data::DurationIso(s) => Value::Text(s.clone()),
        Data::Error(e) => Value::Error(e.to_string()),
    }
}

fn value_of_ref(d: &DataRef<'_>) -> Value {
    match d {
        DataRef::SharedString(s) => Value::Text((*s).to_string()),
        DataRef::Empty => Value::Empty,
        DataRef::String(s) => Value::Text(s.clone()),
        DataRef::Int(i) => Value::Int(*i),
        DataRef::Float(f) => Value::Float(*f),
        DataRef::Bool(b) => Value::Bool(*b),
        DataRef::DateTime(dt) => date_value(dt),
        DataRef::DateTimeIso(s) => Value::Date(s.clone()),
        DataRef::DurationIso(s) => Value::Text(s.clone()),
        DataRef::Error(e) => Value::Error(e.to_string()),
    }
}

/// A date cell as ISO text (date only when there is no time of day); a duration stays a
/// number, as it is one.
fn date_value(dt: &ExcelDateTime) -> Value {
    if dt.is_duration() {
        return Value::Float(dt.as_f64());
    }
    let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
    Value::Date(if (h, mi, s) == (0, 0, 0) {
        format!("{y:04}-{mo:02}-{d:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
    })
}

/// What [`read_summary`] needs from the campaign.
pub struct SummaryConfig<'a> {
    /// The campaign's sections (板块), as configured.
    pub sections: &'a [String],
}

/// One data row of the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// 1-based sheet row.
    pub row: usize,
    pub fields: Fields,
    /// Header → cell text for every non-empty cell under a header, for staff.
    pub raw: Vec<(String, String)>,
}

/// The summary table found in a workbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub sheet: String,
    /// 1-based sheet row of the header (the upper row of a two-row header).
    pub header_row: usize,
    /// Field → 0-based column.
    pub columns: Vec<(Field, usize)>,
    pub rows: Vec<SummaryRow>,
    /// Chinese notes for staff (skipped example rows, missing columns, units).
    pub warnings: Vec<String>,
}

/// Known columns that are not read (序号, 备注 …), so that they are not taken for others. The
/// fields' own header words are [`Field::synonyms`]: exact matches win; otherwise the longest
/// word the header *ends* with (Chinese puts the head noun last: `负责人联系电话` is a phone,
/// `项目负责人职务` a role), then the longest it contains.
const IGNORED: &[&str] = &["序号", "编号", "备注", "说明", "书记", "支部书记", "姓名"];

/// Rows searched for the header.
const HEADER_SEARCH_ROWS: usize = 15;
/// Consecutive rows without data that end the table.
const BLANK_RUN: usize = 3;

/// Folds a header cell for matching: [`normalize`] (spaces, full-width forms), then drops
/// notes in brackets (`（元）`, `(单位：元)`), `单位:元`, `/元`, required-field stars and a
/// trailing colon. Shared with the review import, which reads the same sheets.
pub(crate) fn strip_label_notes(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in normalize(text).chars() {
        match c {
            '(' | '[' | '【' | '〔' => depth += 1,
            ')' | ']' | '】' | '〕' => depth = depth.saturating_sub(1),
            '*' | '※' => {}
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    for note in ["单位:元", "单位:万元", "/万元", "/元"] {
        out = out.replace(note, "");
    }
    out.trim_end_matches(':').to_string()
}

/// [`strip_label_notes`], and a trailing `姓名` (项目负责人姓名 → 项目负责人).
fn clean_label(text: &str) -> String {
    let out = strip_label_notes(text);
    out.strip_suffix("姓名")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or(out)
}

/// The field a header cell names and whether the label matched exactly: `Some(None)` for
/// known columns we do not read, `None` for anything else.
fn label_field(text: &str) -> Option<(Option<Field>, bool)> {
    let label = clean_label(text);
    if label.is_empty() {
        return None;
    }
    let all = || {
        (Field::ALL.iter())
            .flat_map(|f| f.synonyms().iter().map(move |l| (Some(*f), *l)))
            .chain(IGNORED.iter().map(|l| (None, *l)))
    };
    if let Some((k, _)) = all().find(|(_, l)| *l == label) {
        return Some((k, true));
    }
    let best = |pred: &dyn Fn(&str) -> bool| {
        all()
            .filter(|(_, l)| l.chars().count() >= 2 && pred(l))
            .max_by_key(|(_, l)| l.chars().count())
            .map(|(k, _)| (k, false))
    };
    best(&|l| label.ends_with(l)).or_else(|| {
        (label.chars().count() <= 12)
            .then(|| best(&|l| label.contains(l)))
            .flatten()
    })
}

fn cell_text(row: &[Value], col: usize) -> String {
    row.get(col)
        .map(|v| cell_str(v).into_owned())
        .unwrap_or_default()
}

/// A cell as trimmed text, borrowed when it already is text (data rows can be wide).
fn cell_str(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Text(s) => Cow::Borrowed(trim_invisible(s)),
        v => Cow::Owned(trim_invisible(&v.to_text()).to_string()),
    }
}

/// A header candidate: per column the field it names and the header text as written.
struct Header {
    row: usize,
    /// 1 or 2 (a merged group header such as 项目负责人 over 姓名/职务/联系方式).
    height: usize,
    /// (column, field (`None`: a known column we do not read), exact label, header text).
    cols: Vec<(usize, Option<Field>, bool, String)>,
}

impl Header {
    /// (distinct fields named exactly, distinct fields named at all). Only exact labels make a
    /// header: data cells such as `汽车工程学院` or `…第二党支部` end with label words too.
    fn score(&self) -> (usize, usize) {
        let distinct = |exact_only: bool| {
            let mut keys: Vec<Field> = (self.cols.iter())
                .filter(|(_, _, exact, _)| *exact || !exact_only)
                .filter_map(|(_, k, _, _)| *k)
                .collect();
            keys.sort_unstable();
            keys.dedup();
            keys.len()
        };
        (distinct(true), distinct(false))
    }
}

fn header_at(rows: &[Vec<Value>], r: usize) -> Header {
    let row = rows.get(r).map(Vec::as_slice).unwrap_or_default();
    let mut cols: Vec<(usize, Option<Field>, bool, String)> = (0..row.len())
        .filter_map(|c| {
            let text = cell_text(row, c);
            label_field(&text).map(|(k, exact)| (c, k, exact, text))
        })
        .collect();
    let mut height = 1;
    // A second header row under merged group cells (项目负责人 over 姓名 | 职务 | 联系方式): every
    // non-empty cell is an exact label and at least one sits under an empty (merged) header
    // cell. Group and sub-label are read together, so 项目负责人+职务 is the leader's role.
    let subs: Vec<(usize, String)> = rows.get(r + 1).map_or_else(Vec::new, |next| {
        (0..next.len())
            .map(|c| (c, cell_text(next, c)))
            .filter(|(_, t)| !t.is_empty())
            .collect()
    });
    let is_sub = !subs.is_empty()
        && subs.len() < cols.len()
        && subs
            .iter()
            .all(|(_, t)| label_field(t).is_some_and(|(_, exact)| exact))
        && subs.iter().any(|(c, _)| cell_text(row, *c).is_empty());
    if is_sub {
        height = 2;
        for (c, sub) in subs {
            let group = (0..=c)
                .rev()
                .map(|g| cell_text(row, g))
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            let (key, exact) = label_field(&format!("{group}{sub}"))
                .or_else(|| label_field(&sub))
                .unwrap_or((None, false));
            cols.retain(|(hc, ..)| *hc != c);
            cols.push((c, key, exact, format!("{group}/{sub}")));
        }
        cols.sort_by_key(|(c, ..)| *c);
    }
    Header {
        row: r,
        height,
        cols,
    }
}

/// Finds the summary table: the sheet and row (among the first 15) naming the most fields, at
/// least three; `None` when no sheet has such a row.
pub fn read_summary(wb: &Workbook, cfg: &SummaryConfig) -> Option<Summary> {
    let (sheet, header) = wb
        .sheets
        .iter()
        .flat_map(|s| {
            (0..s.rows.len().min(HEADER_SEARCH_ROWS)).map(move |r| (s, header_at(&s.rows, r)))
        })
        .filter(|(_, h)| h.score().0 >= 3)
        .fold(None::<(&Sheet, Header)>, |best, cand| match best {
            Some(b) if b.1.score() >= cand.1.score() => Some(b),
            _ => Some(cand),
        })?;
    let mut columns: Vec<(Field, usize)> = Vec::new();
    for (c, k, ..) in &header.cols {
        if let Some(k) = k
            && !columns.iter().any(|(ck, _)| ck == k)
        {
            columns.push((*k, *c));
        }
    }
    let mut warnings = Vec::new();
    for field in [
        Field::ProjectName,
        Field::Section,
        Field::Leader,
        Field::Budget,
    ] {
        if !columns.iter().any(|(k, _)| *k == field) {
            warnings.push(format!("汇总表中没有“{}”列", field.label()));
        }
    }
    let col_of = |key: Field| columns.iter().find(|(k, _)| *k == key).map(|(_, c)| *c);
    let budget_in_wan = header.cols.iter().any(|(c, k, _, t)| {
        *k == Some(Field::Budget)
            && Some(*c) == col_of(Field::Budget)
            && normalize(t).contains("万元")
    });

    let header_texts: Vec<String> = sheet.rows.get(header.row).map_or_else(Vec::new, |row| {
        (0..row.len()).map(|c| cell_text(row, c)).collect()
    });
    let mut rows = Vec::new();
    let mut blank = 0;
    for (r, row) in sheet
        .rows
        .iter()
        .enumerate()
        .skip(header.row + header.height)
    {
        let texts: Vec<Cow<str>> = row.iter().map(cell_str).collect();
        let first = texts.iter().find(|t| !t.is_empty()).map(|t| normalize(t));
        if (first.as_ref())
            .is_some_and(|n| ["合计", "总计", "小计"].iter().any(|t| n.starts_with(t)))
        {
            break;
        }
        let filled = header
            .cols
            .iter()
            .filter(|(c, k, ..)| k.is_some() && texts.get(*c).is_some_and(|t| !t.is_empty()))
            .count();
        if filled < 2 {
            blank += 1;
            if blank >= BLANK_RUN {
                break;
            }
            continue;
        }
        blank = 0;
        let repeats = (texts.iter().zip(&header_texts))
            .filter(|(t, h)| !t.is_empty() && t == h)
            .count();
        if repeats >= 3 {
            continue;
        }
        // Example markers sit in the first cell or a field's cell (rows can be wide).
        let marked = |t: &Cow<str>| t.contains(['例', '说']) && is_example(&normalize(t));
        if first.is_some_and(|n| is_example(&n))
            || columns
                .iter()
                .any(|(_, c)| texts.get(*c).is_some_and(marked))
        {
            warnings.push(format!("第{}行是示例或说明，已跳过", r + 1));
            continue;
        }
        let get = |key: Field| {
            col_of(key)
                .and_then(|c| texts.get(c))
                .filter(|t| !t.is_empty())
                .map(|t| t.to_string())
        };
        // Chinese names carry no spaces (`向 帆` is 向帆); other text keeps them.
        let name = |key: Field| {
            get(key).map(|t| {
                if t.chars().any(is_cjk) {
                    t.split_whitespace().collect()
                } else {
                    t
                }
            })
        };
        let section_as_written = get(Field::Section);
        let budget_as_written = get(Field::Budget);
        let mut budget = budget_as_written.as_deref().and_then(parse_amount);
        if budget_in_wan
            && let (Some(super::model::Amount::Yuan { yuan }), Some(text)) =
                (&mut budget, &budget_as_written)
            && !text.contains(['元', '万'])
        {
            *yuan = (*yuan * 10_000.0 * 100.0).round() / 100.0;
            warnings.push(format!("第{}行申请经费以“万元”为单位，已换算为元", r + 1));
        }
        let fields = Fields {
            college: get(Field::College),
            branch: name(Field::Branch),
            project_name: get(Field::ProjectName),
            section: section_as_written
                .as_deref()
                .and_then(|s| match_section(s, cfg.sections)),
            section_as_written,
            leader: name(Field::Leader),
            leader_role: name(Field::LeaderRole),
            phone: get(Field::Phone).and_then(|t| phone_digits(&t)),
            email: get(Field::Email).filter(|t| t.contains('@')),
            advisor: name(Field::Advisor),
            budget_as_written,
            budget,
        };
        let raw = header
            .cols
            .iter()
            .filter_map(|(c, _, _, h)| {
                texts
                    .get(*c)
                    .filter(|t| !t.is_empty())
                    .map(|t| (h.clone(), t.to_string()))
            })
            .collect();
        rows.push(SummaryRow {
            row: r + 1,
            fields,
            raw,
        });
    }
    if rows.len() > 1 {
        warnings.push(format!(
            "汇总表有{}行数据（每个支部原则上只申报一个项目）",
            rows.len()
        ));
    }
    Some(Summary {
        sheet: sheet.name.clone(),
        header_row: header.row + 1,
        columns,
        rows,
        warnings,
    })
}

/// Template rows that show how to fill the sheet rather than an application.
fn is_example(norm: &str) -> bool {
    [
        "示例",
        "样例",
        "例:",
        "例如",
        "填写说明",
        "填表说明",
        "举例",
    ]
    .iter()
    .any(|p| norm.starts_with(p))
        || norm.contains("(示例)")
        || norm == "例"
}

/// The phone number's digits: the first number in the cell (people list two), without `+86`.
fn phone_digits(text: &str) -> Option<String> {
    let text = normalize(&text.replace('\n', ";"));
    let first = text
        .split([',', ';', '/', '、', '|'])
        .find(|part| part.chars().any(|c| c.is_ascii_digit()))?;
    let digits: String = first.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.strip_prefix("86") {
        Some(rest) if digits.len() == 13 => rest.to_string(),
        _ => digits,
    };
    (!digits.is_empty()).then_some(digits)
}

/// The configured section a cell names: exactly (after normalisation, middle dots optional),
/// by unambiguous containment either way (`学思践悟·固本强基板块`), or by one half
/// (`固本强基`). A cell pasted from the form's checkbox list is read at its ticked box.
fn match_section(written: &str, sections: &[String]) -> Option<String> {
    const TICKS: [char; 6] = ['☑', '☒', '✓', '✔', '√', '■'];
    const BOXES: [char; 9] = ['□', '☐', '☑', '☒', '✓', '✔', '√', '■', '\n'];
    let written = match written.find(TICKS) {
        Some(i) => {
            let after = written.get(i..).unwrap_or_default();
            let after = after.trim_start_matches(TICKS);
            after.split(BOXES).next().unwrap_or_default()
        }
        None => written,
    };
    let fold = |s: &str| normalize(s).replace('·', "");
    let w = fold(written);
    if w.is_empty() {
        return None;
    }
    let unique = |pred: &dyn Fn(&str) -> bool| {
        let mut hits = sections.iter().filter(|s| pred(s));
        match (hits.next(), hits.next()) {
            (Some(s), None) => Some(s.clone()),
            _ => None,
        }
    };
    unique(&|s| fold(s) == w)
        .or_else(|| {
            unique(&|s| w.contains(&fold(s)) || (w.chars().count() >= 3 && fold(s).contains(&w)))
        })
        .or_else(|| unique(&|s| normalize(s).split('·').any(|half| w.contains(half))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::model::Amount;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use crate::config::DEFAULT_SECTIONS as SECTIONS;
    const HEADER: [&str; 11] = [
        "序号",
        "学院",
        "支部名称",
        "项目名称",
        "申报板块",
        "项目负责人",
        "职务",
        "联系方式",
        "指导老师",
        "申请经费（元）",
        "备注",
    ];
    const ROW: [&str; 11] = [
        "1",
        "汽车工程学院",
        "汽车工程学院本科生第二党支部",
        "“一人一策”成长档案",
        "育苗成长·薪火相传",
        "向帆",
        "书记",
        "18844027650",
        "曾沐阳",
        "2800",
        "",
    ];
    const TITLE: &str = "同济大学学生党支部“对标争先”建设项目申报汇总表";

    fn sections() -> Vec<String> {
        SECTIONS.iter().map(|s| s.to_string()).collect()
    }

    fn text(s: &str) -> Value {
        if s.is_empty() {
            Value::Empty
        } else {
            Value::Text(s.into())
        }
    }

    fn sheet(name: &str, rows: Vec<Vec<Value>>) -> Sheet {
        Sheet {
            name: name.into(),
            rows,
        }
    }

    fn texts(rows: &[&[&str]]) -> Vec<Vec<Value>> {
        rows.iter()
            .map(|r| r.iter().map(|s| text(s)).collect())
            .collect()
    }

    fn summary_of(rows: &[&[&str]]) -> Option<Summary> {
        let wb = Workbook {
            sheets: vec![sheet("Sheet1", texts(rows))],
        };
        read_summary(
            &wb,
            &SummaryConfig {
                sections: &sections(),
            },
        )
    }

    fn one(rows: &[&[&str]]) -> (Summary, Fields) {
        let s = summary_of(rows).expect("a header");
        assert_eq!(s.rows.len(), 1, "rows: {:#?}", s.rows);
        let f = s.rows[0].fields.clone();
        (s, f)
    }

    /// `/work/shared`, or `../shared` beside the crate; `None` skips data-driven tests.
    fn shared() -> Option<PathBuf> {
        [
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
            PathBuf::from("/work/shared"),
        ]
        .into_iter()
        .find(|p| p.join("samples").is_dir())
    }

    fn files_in(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        out.retain(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        });
        out.sort();
        out
    }

    #[test]
    fn samples_give_one_row_matching_expected_fields() {
        let Some(shared) = shared() else { return };
        let mut checked = 0;
        let mut cases: Vec<PathBuf> = (std::fs::read_dir(shared.join("samples")).into_iter())
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        cases.sort();
        for case in cases {
            let Ok(json) = std::fs::read_to_string(case.join("expected.json")) else {
                continue;
            };
            let expected: serde_json::Value = serde_json::from_str(&json).unwrap();
            for file in files_in(&case.join("files"), &["xls", "xlsx"]) {
                let bytes = std::fs::read(&file).unwrap();
                let wb = read_workbook(&bytes, &SheetLimits::default()).unwrap();
                let s = read_summary(
                    &wb,
                    &SummaryConfig {
                        sections: &sections(),
                    },
                )
                .unwrap();
                assert_eq!(s.rows.len(), 1, "{}", file.display());
                let f = &s.rows[0].fields;
                let e = &expected["fields"];
                let got = [
                    ("project_name", f.project_name.clone().map(Into::into)),
                    ("section", f.section.clone().map(Into::into)),
                    ("leader", f.leader.clone().map(Into::into)),
                    ("leader_role", f.leader_role.clone().map(Into::into)),
                    ("phone", f.phone.clone().map(Into::into)),
                    ("advisor", f.advisor.clone().map(Into::into)),
                    ("budget_yuan", f.budget_yuan().map(Into::into)),
                ];
                for (key, value) in got {
                    let value = value.unwrap_or(serde_json::Value::Null);
                    let want = &e[key];
                    let same = match (want.as_f64(), value.as_f64()) {
                        (Some(a), Some(b)) => a == b,
                        _ => *want == value,
                    };
                    assert!(same, "{} {key}: want {want} got {value}", file.display());
                }
                println!(
                    "{}: row {} {:?} ok",
                    file.display(),
                    s.rows[0].row,
                    s.rows[0].fields.project_name
                );
                checked += 1;
            }
        }
        assert!(checked >= 9, "only {checked} sample summaries checked");
    }

    #[test]
    fn templates_have_a_header_and_no_rows() {
        let Some(shared) = shared() else { return };
        let files = files_in(&shared.join("samples/templates"), &["xls", "xlsx"]);
        assert_eq!(files.len(), 2);
        for file in files {
            let wb =
                read_workbook(&std::fs::read(&file).unwrap(), &SheetLimits::default()).unwrap();
            let s = read_summary(
                &wb,
                &SummaryConfig {
                    sections: &sections(),
                },
            )
            .unwrap();
            assert_eq!((s.header_row, s.rows.len()), (2, 0), "{}", file.display());
            assert_eq!(s.columns.len(), 9, "{:?}", s.columns);
        }
    }

    #[test]
    fn title_rows_and_merged_title_are_skipped() {
        let (s, f) = one(&[&[TITLE], &["", "", "填报日期：2025年9月"], &HEADER, &ROW]);
        assert_eq!((s.header_row, s.rows[0].row), (3, 4));
        assert_eq!(f.leader.as_deref(), Some("向帆"));
        assert_eq!(f.budget_as_written.as_deref(), Some("2800"));
        assert_eq!(f.budget_yuan(), Some(2800.0));
        assert_eq!(f.section.as_deref(), Some("育苗成长·薪火相传"));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            s.rows[0].raw.first(),
            Some(&("序号".to_string(), "1".to_string()))
        );
    }

    #[test]
    fn header_on_row_five() {
        let (s, f) = one(&[
            &[],
            &[TITLE],
            &[],
            &["填报单位：", "汽车工程学院"],
            &HEADER,
            &ROW,
        ]);
        assert_eq!(s.header_row, 5);
        assert_eq!(f.phone.as_deref(), Some("18844027650"));
    }

    #[test]
    fn synonyms_are_recognised() {
        let header = [
            "所在学院",
            "党支部名称",
            "项目题目",
            "所属板块",
            "负责人",
            "党内职务",
            "联系电话",
            "指导教师",
            "经费预算(单位：元)",
            "电子邮箱",
        ];
        let row = [
            "设计创意学院",
            "设计创意学院本科生第三党支部",
            "社区行动",
            "党旗飘扬·社区聚力",
            "马悦",
            "支部书记",
            "18342816519",
            "江鹏程",
            "4000",
            "a@example.edu.cn",
        ];
        let (s, f) = one(&[&header, &row]);
        let keys: Vec<&str> = s.columns.iter().map(|(k, _)| k.key()).collect();
        assert_eq!(
            keys,
            [
                "college",
                "branch",
                "project_name",
                "section",
                "leader",
                "leader_role",
                "phone",
                "advisor",
                "budget",
                "email"
            ]
        );
        assert_eq!(f.leader_role.as_deref(), Some("支部书记"));
        assert_eq!(f.email.as_deref(), Some("a@example.edu.cn"));
        assert_eq!(f.college.as_deref(), Some("设计创意学院"));
        assert_eq!(f.budget_yuan(), Some(4000.0));
    }

    #[test]
    fn more_synonyms_and_suffix_labels() {
        let header = [
            "院系",
            "支部",
            "项目名称",
            "类别",
            "项目负责人姓名",
            "项目负责人职务",
            "负责人联系电话",
            "指导老师姓名",
            "申请金额（元）",
        ];
        let row = [
            "土木学院",
            "土木第一支部",
            "项目甲",
            "师生结对",
            "李明",
            "副书记",
            "13800138000",
            "王老师",
            "1000",
        ];
        let (_, f) = one(&[&header, &row]);
        assert_eq!(f.leader.as_deref(), Some("李明"));
        assert_eq!(f.leader_role.as_deref(), Some("副书记"));
        assert_eq!(f.phone.as_deref(), Some("13800138000"));
        assert_eq!(f.advisor.as_deref(), Some("王老师"));
        assert_eq!(f.section.as_deref(), Some("师生结对·双向赋能"));
    }

    #[test]
    fn shuffled_columns() {
        let order = [9, 3, 7, 0, 5, 1, 8, 2, 6, 4, 10];
        let header: Vec<&str> = order.iter().map(|i| HEADER[*i]).collect();
        let row: Vec<&str> = order.iter().map(|i| ROW[*i]).collect();
        let (s, f) = one(&[&[TITLE], &header, &row]);
        assert_eq!(
            s.columns
                .iter()
                .find(|(k, _)| k.key() == "budget")
                .map(|(_, c)| *c),
            Some(0)
        );
        assert_eq!(f.project_name.as_deref(), Some("“一人一策”成长档案"));
        assert_eq!(f.advisor.as_deref(), Some("曾沐阳"));
        assert_eq!(f.budget_yuan(), Some(2800.0));
    }

    #[test]
    fn full_width_and_spaced_text() {
        let header = [
            "序　号",
            "学　院",
            "支部名称",
            "项 目 名 称",
            "申报板块",
            "项目负责人",
            "职　务",
            "联系方式",
            "指导老师",
            "申请经费（元）",
        ];
        let row = [
            "１",
            "汽车学院",
            "汽车支部",
            "项目乙",
            "先锋领航•校园善治",
            "董 鑫",
            "副书记",
            "１３２ ８８１０ ７２６８",
            "胡睿婷",
            "２,５００元",
        ];
        let (_, f) = one(&[&header, &row]);
        assert_eq!(f.project_name.as_deref(), Some("项目乙"));
        assert_eq!(f.section.as_deref(), Some("先锋领航·校园善治"));
        assert_eq!(f.section_as_written.as_deref(), Some("先锋领航•校园善治"));
        assert_eq!(f.leader.as_deref(), Some("董鑫"));
        assert_eq!(f.phone.as_deref(), Some("13288107268"));
        assert_eq!(f.budget_yuan(), Some(2500.0));
        assert_eq!(f.budget_as_written.as_deref(), Some("２,５００元"));
    }

    #[test]
    fn total_row_ends_the_table() {
        let total = ["合计", "", "", "", "", "", "", "", "", "2800"];
        let later = ROW.map(|c| if c == "向帆" { "别人" } else { c });
        let (_, f) = one(&[&HEADER, &ROW, &total, &later]);
        assert_eq!(f.leader.as_deref(), Some("向帆"));
        let total = ["", "总 计", "", "", "", "", "", "", "", "2800"];
        one(&[&HEADER, &ROW, &total]);
    }

    #[test]
    fn example_and_instruction_rows_are_skipped() {
        let example = [
            "示例",
            "XX学院",
            "XX党支部",
            "XX项目",
            "学思践悟·固本强基",
            "张三",
            "书记",
            "13800000000",
            "李四",
            "3000",
        ];
        let (s, f) = one(&[
            &[TITLE],
            &HEADER,
            &example,
            &ROW,
            &[
                "填表说明：1.每个支部限报一个项目",
                "",
                "",
                "申请经费不超过5000元",
            ],
        ]);
        assert_eq!(f.leader.as_deref(), Some("向帆"));
        assert!(
            s.warnings.iter().any(|w| w.contains("第3行")),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn repeated_header_rows_are_skipped() {
        let (s, _) = one(&[&HEADER, &HEADER, &ROW]);
        assert_eq!((s.header_row, s.rows[0].row), (1, 3));
    }

    #[test]
    fn blank_run_ends_the_table() {
        let note = ["", "注：", "", "", "", "", "", "", "", "以上信息请如实填写"];
        let (_, f) = one(&[&HEADER, &ROW, &[], &[], &[], &note]);
        assert_eq!(f.leader.as_deref(), Some("向帆"));
        // Pre-numbered empty template rows are not applications.
        one(&[&HEADER, &ROW, &["2"], &["3"], &["4"]]);
    }

    #[test]
    fn two_row_header_with_group_cell() {
        let top = [
            "序号",
            "支部名称",
            "项目名称",
            "申报板块",
            "项目负责人",
            "",
            "",
            "指导老师",
            "申请经费",
        ];
        let sub = ["", "", "", "", "姓名", "职务", "联系方式", "", ""];
        let row = [
            "1",
            "某支部",
            "某项目",
            "固本强基",
            "张三",
            "书记",
            "13800138000",
            "李四",
            "3000",
        ];
        let (s, f) = one(&[&top, &sub, &row]);
        assert_eq!((s.header_row, s.rows[0].row), (1, 3));
        assert_eq!(f.leader.as_deref(), Some("张三"));
        assert_eq!(f.leader_role.as_deref(), Some("书记"));
        assert_eq!(f.phone.as_deref(), Some("13800138000"));
        assert_eq!(f.section.as_deref(), Some("学思践悟·固本强基"));
        assert!(
            s.rows[0]
                .raw
                .contains(&("项目负责人/职务".to_string(), "书记".to_string()))
        );
    }

    #[test]
    fn starred_labels_and_unit_notes() {
        let header = [
            "*学院",
            "*支部名称",
            "*项目名称",
            "申报板块：",
            "【必填】项目负责人",
            "职务",
            "手机",
            "指导老师",
            "申请经费/元",
        ];
        let row = [
            "a学院",
            "b支部",
            "c项目",
            "社区聚力",
            "王五",
            "书记",
            "13800138000",
            "赵六",
            "1,200",
        ];
        let (s, f) = one(&[&header, &row]);
        assert_eq!(s.columns.len(), 9);
        assert_eq!(f.budget_yuan(), Some(1200.0));
        assert_eq!(f.section.as_deref(), Some("党旗飘扬·社区聚力"));
    }

    #[test]
    fn budget_in_wan_yuan_is_converted() {
        let header = ["支部名称", "项目名称", "项目负责人", "申请经费（万元）"];
        let (s, f) = one(&[&header, &["某支部", "某项目", "张三", "0.3"]]);
        assert_eq!(f.budget_yuan(), Some(3000.0));
        assert!(s.warnings.iter().any(|w| w.contains("万元")));
    }

    #[test]
    fn typed_cells_give_text_as_written() {
        let mut rows = texts(&[&HEADER]);
        let mut row: Vec<Value> = ROW.iter().map(|s| text(s)).collect();
        row[7] = Value::Float(13_800_138_000.0);
        row[9] = Value::Int(3000);
        rows.push(row.clone());
        row[9] = Value::Float(3000.0);
        row[5] = text("第二人");
        rows.push(row);
        let wb = Workbook {
            sheets: vec![sheet("S", rows)],
        };
        let s = read_summary(
            &wb,
            &SummaryConfig {
                sections: &sections(),
            },
        )
        .unwrap();
        assert_eq!(s.rows.len(), 2);
        assert!(s.warnings.iter().any(|w| w.contains("2行数据")));
        for r in &s.rows {
            assert_eq!(r.fields.budget_as_written.as_deref(), Some("3000"));
            assert_eq!(r.fields.budget_yuan(), Some(3000.0));
            assert_eq!(r.fields.phone.as_deref(), Some("13800138000"));
        }
    }

    #[test]
    fn unparsed_budget_and_unknown_section() {
        let mut row = ROW;
        row[9] = "待定";
        row[4] = "其他";
        let (_, f) = one(&[&HEADER, &row]);
        assert!(
            matches!(f.budget, Some(Amount::Unparsed { .. })),
            "{:?}",
            f.budget
        );
        assert_eq!(f.budget_as_written.as_deref(), Some("待定"));
        assert_eq!(
            (f.section, f.section_as_written.as_deref()),
            (None, Some("其他"))
        );
    }

    #[test]
    fn summary_on_a_later_sheet() {
        let wb = Workbook {
            sheets: vec![
                sheet("说明", texts(&[&["填表说明"], &["学院、支部名称请写全称"]])),
                sheet("汇总", texts(&[&[TITLE], &HEADER, &ROW])),
            ],
        };
        let s = read_summary(
            &wb,
            &SummaryConfig {
                sections: &sections(),
            },
        )
        .unwrap();
        assert_eq!(
            (s.sheet.as_str(), s.header_row, s.rows.len()),
            ("汇总", 2, 1)
        );
    }

    #[test]
    fn no_header_gives_none() {
        assert!(summary_of(&[&["姓名", "学号", "项目名称"], &["张三", "1", "x"]]).is_none());
        assert!(summary_of(&[&[TITLE], &ROW]).is_none());
        assert!(
            read_summary(
                &Workbook::default(),
                &SummaryConfig {
                    sections: &sections()
                }
            )
            .is_none()
        );
    }

    #[test]
    fn section_matching() {
        let s = sections();
        let cases = [
            ("学思践悟·固本强基", Some(0)),
            ("学思践悟固本强基", Some(0)),
            ("学思践悟・固本强基板块", Some(0)),
            ("固本强基", Some(0)),
            ("“师生结对，双向赋能”", Some(3)),
            ("薪火相传", Some(4)),
            (
                "□学思践悟·固本强基　☑先锋领航·校园善治　□党旗飘扬·社区聚力",
                Some(1),
            ),
            ("社区", None),
            ("其他", None),
            ("", None),
        ];
        for (written, want) in cases {
            assert_eq!(
                match_section(written, &s),
                want.map(|i: usize| s[i].clone()),
                "{written}"
            );
        }
    }

    #[test]
    fn phone_numbers() {
        for (text, want) in [
            ("18844027650", Some("18844027650")),
            ("+86 188-4402-7650", Some("18844027650")),
            ("188 4402 7650 / 021-65980000", Some("18844027650")),
            ("无", None),
        ] {
            assert_eq!(phone_digits(text).as_deref(), want, "{text}");
        }
    }

    // ---- read_workbook on crafted bytes ----

    fn record(typ: u16, data: &[u8]) -> Vec<u8> {
        let mut out = typ.to_le_bytes().to_vec();
        out.extend((data.len() as u16).to_le_bytes());
        out.extend(data);
        out
    }

    /// A minimal BIFF8 workbook: one sheet holding a NUMBER record at each of `cells`.
    fn xls_with(cells: &[(u16, u16)], filepass: bool, sheet_records: &[u8]) -> Vec<u8> {
        let bof = record(
            0x0809,
            &[0x00, 0x06, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let name = b"S1";
        let sheet_bof = record(
            0x0809,
            &[0x00, 0x06, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let mut globals = bof.clone();
        if filepass {
            globals.extend(record(0x002F, &[1, 0, 1, 0, 1, 0]));
        }
        let boundsheet_len = 4 + 8 + name.len();
        let sheet_pos = globals.len() + boundsheet_len + 4;
        let mut bs = (sheet_pos as u32).to_le_bytes().to_vec();
        bs.extend([0, 0, name.len() as u8, 0]);
        bs.extend(name);
        globals.extend(record(0x0085, &bs));
        globals.extend(record(0x000A, &[]));
        let mut stream = globals;
        stream.extend(sheet_bof);
        stream.extend(sheet_records);
        for (r, c) in cells {
            let mut d = r.to_le_bytes().to_vec();
            d.extend(c.to_le_bytes());
            d.extend([0, 0]);
            d.extend(42.0f64.to_le_bytes());
            stream.extend(record(0x0203, &d));
        }
        stream.extend(record(0x000A, &[]));
        let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        std::io::Write::write_all(&mut cf.create_stream("Workbook").unwrap(), &stream).unwrap();
        cf.into_inner().into_inner()
    }

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            std::io::Write::write_all(&mut w, data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn crafted_xls_reads_and_grid_bomb_is_refused() {
        let wb = read_workbook(
            &xls_with(&[(2, 1), (4, 3)], false, &[]),
            &SheetLimits::default(),
        )
        .unwrap();
        let rows = &wb.sheets[0].rows;
        assert_eq!(
            (rows.len(), rows[2].get(1), rows[4].get(3)),
            (5, Some(&Value::Float(42.0)), Some(&Value::Float(42.0)))
        );
        let bomb = xls_with(&[(0, 0), (65_535, 255)], false, &[]);
        assert!(matches!(
            read_workbook(&bomb, &SheetLimits::default()),
            Err(SheetError::TooLarge)
        ));
        // DIMENSIONS claiming 2^32 rows: calamine would reserve them before reading a cell.
        let mut dims = vec![0u8; 14];
        dims[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        dims[10..12].copy_from_slice(&10u16.to_le_bytes());
        let claimed = xls_with(&[(0, 0)], false, &record(0x0200, &dims));
        assert!(matches!(
            read_workbook(&claimed, &SheetLimits::default()),
            Err(SheetError::TooLarge)
        ));
        dims[0..4].copy_from_slice(&9u32.to_le_bytes());
        dims[4..8].copy_from_slice(&3u32.to_le_bytes());
        let reversed = xls_with(&[(0, 0)], false, &record(0x0200, &dims));
        assert!(matches!(
            read_workbook(&reversed, &SheetLimits::default()),
            Err(SheetError::Damaged(_))
        ));
        let locked = xls_with(&[(0, 0)], true, &[]);
        assert!(matches!(
            read_workbook(&locked, &SheetLimits::default()),
            Err(SheetError::Encrypted)
        ));
    }

    #[test]
    fn rows_and_columns_are_capped() {
        let wide = read_workbook(
            &xls_with(&[(0, 0), (0, 250)], false, &[]),
            &SheetLimits::default(),
        );
        assert_eq!(wide.unwrap().sheets[0].rows[0].len(), 1);
        let long = read_workbook(
            &xls_with(&[(0, 0), (10_500, 0)], false, &[]),
            &SheetLimits::default(),
        );
        assert_eq!(long.unwrap().sheets[0].rows.len(), 1);
    }

    #[test]
    fn zip_bombs_and_non_spreadsheets_are_refused() {
        let limits = SheetLimits {
            max_uncompressed: 1 << 20,
            ..SheetLimits::default()
        };
        let zeros = vec![0u8; 2 << 20];
        let bomb = zip_with(&[
            ("xl/workbook.xml", b"<workbook/>"),
            ("xl/sharedStrings.xml", &zeros),
        ]);
        assert!(matches!(
            read_workbook(&bomb, &limits),
            Err(SheetError::TooLarge)
        ));
        // The same bomb declaring a size of 1 byte in both headers: counted, not believed.
        let mut liar = bomb.clone();
        let size = (zeros.len() as u32).to_le_bytes();
        let positions: Vec<usize> = liar
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == size)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(positions.len(), 2);
        for p in positions {
            liar[p..p + 4].copy_from_slice(&1u32.to_le_bytes());
        }
        assert!(matches!(
            read_workbook(&liar, &limits),
            Err(SheetError::TooLarge | SheetError::Damaged(_))
        ));
        let many: Vec<(String, Vec<u8>)> = (0..=MAX_ZIP_ENTRIES)
            .map(|i| (format!("x{i}"), Vec::new()))
            .collect();
        let many: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        assert!(matches!(
            read_workbook(&zip_with(&many), &limits),
            Err(SheetError::TooLarge)
        ));
        let docx = zip_with(&[("word/document.xml", b"<w:document/>")]);
        assert!(matches!(
            read_workbook(&docx, &limits),
            Err(SheetError::NotSpreadsheet)
        ));
        let ods = zip_with(&[(
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet",
        )]);
        assert!(matches!(
            read_workbook(&ods, &limits),
            Err(SheetError::OldFormat(_))
        ));
    }

    #[test]
    fn other_formats_are_named() {
        let cases: [(&[u8], &str); 6] = [
            (b"\xEF\xBB\xBF<html><body><table><tr><td>1</td></tr></table>", "OldFormat"),
            (b"<?xml version=\"1.0\"?><Workbook xmlns=\"urn:schemas-microsoft-com:office:spreadsheet\">", "OldFormat"),
            (b"\x09\x04\x06\x00\x00\x00\x10\x00", "OldFormat"),
            (b"Attachment f:\\x.xls not found!", "NotSpreadsheet"),
            (b"", "NotSpreadsheet"),
            (b"%PDF-1.7", "NotSpreadsheet"),
        ];
        for (bytes, want) in cases {
            let got = format!("{:?}", read_workbook(bytes, &SheetLimits::default()).err());
            assert!(got.contains(want), "{got}");
        }
        assert!(
            SheetError::OldFormat("x")
                .to_string()
                .contains("请用 Excel 另存为 .xlsx")
        );
    }

    #[test]
    fn written_xlsx_reads_back_with_types() {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "申请经费").unwrap();
        ws.write_number(1, 0, 3000.0).unwrap();
        ws.write_boolean(2, 0, true).unwrap();
        let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2025, 9, 27).unwrap();
        let fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
        ws.write_datetime_with_format(3, 0, &date, &fmt).unwrap();
        ws.write_formula(
            4,
            0,
            rust_xlsxwriter::Formula::new("=1/0").set_result("#DIV/0!"),
        )
        .unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        let got = read_workbook(&bytes, &SheetLimits::default()).unwrap();
        let col: Vec<Value> = got.sheets[0].rows.iter().map(|r| r[0].clone()).collect();
        assert_eq!(
            col,
            [
                Value::Text("申请经费".into()),
                Value::Float(3000.0),
                Value::Bool(true),
                Value::Date("2025-09-27".into()),
                Value::Error("#DIV/0!".into()),
            ]
        );
    }

    #[test]
    fn far_apart_xlsx_cells_are_streamed_not_gridded() {
        // calamine's dense range for these two cells would be 17 billion cells.
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "a").unwrap();
        ws.write_string(1_048_575, 16_383, "z").unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        let start = Instant::now();
        let got = read_workbook(&bytes, &SheetLimits::default()).unwrap();
        assert_eq!(got.sheets[0].rows, vec![vec![Value::Text("a".into())]]);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    /// Peak resident memory of this process (Linux), in KiB.
    fn peak_rss_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn corpus_sweep() {
        let Some(shared) = shared() else { return };
        let mut files = Vec::new();
        for kind in ["xls", "xlsx"] {
            for dir in std::fs::read_dir(shared.join("corpus/office").join(kind))
                .into_iter()
                .flatten()
                .flatten()
            {
                files.extend(files_in(&dir.path(), &["xls", "xlsx"]));
            }
        }
        files.sort();
        assert!(files.len() >= 60, "{} corpus files", files.len());
        let limits = SheetLimits::default();
        let mut table = String::from("\nfile | outcome | sheets | summary | ms\n");
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            let start = Instant::now();
            let result = read_workbook(&bytes, &limits);
            let summary = result.as_ref().ok().and_then(|wb| {
                read_summary(
                    wb,
                    &SummaryConfig {
                        sections: &sections(),
                    },
                )
            });
            let elapsed = start.elapsed();
            let name = file
                .strip_prefix(shared.join("corpus/office"))
                .unwrap_or(file)
                .display();
            let (outcome, sheets) = match &result {
                Ok(wb) => ("ok".to_string(), wb.sheets.len()),
                Err(e) => (format!("{e:?}").chars().take(60).collect(), 0),
            };
            let summary = summary.map_or("-".to_string(), |s| {
                format!("{}!{} rows={}", s.sheet, s.header_row, s.rows.len())
            });
            table += &format!(
                "{name} | {outcome} | {sheets} | {summary} | {}\n",
                elapsed.as_millis()
            );
            assert!(elapsed < Duration::from_secs(2), "{name} took {elapsed:?}");
            let fname = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if fname.contains("password")
                || fname.contains("encryption")
                || fname.contains("protected")
            {
                assert!(
                    matches!(result, Err(SheetError::Encrypted)),
                    "{name}: {result:?}"
                );
            }
        }
        println!("{table}");
        if let Some(kib) = peak_rss_kib() {
            println!("peak RSS {} MiB", kib / 1024);
            assert!(kib < 1 << 20, "peak RSS {kib} KiB");
        }
    }
}
