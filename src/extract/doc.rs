//! Legacy Word 97–2003 documents (`.doc`, [MS-DOC]) reduced to paragraphs and tables.
//!
//! The office hands out its 项目申请表 as a .doc, so many branches send one back. No mature Rust
//! crate reads the format, and the form only needs text and table structure, so this reader
//! reads exactly that: the main document's text (no headers, footnotes or text boxes), split
//! into paragraphs and table cells, with field instructions dropped and deleted revisions left
//! out. Formatting, styles and pictures are ignored.
//!
//! The path through the file:
//! 1. the compound file (`cfb`) holds a `WordDocument` stream that starts with the FIB, and a
//!    table stream, `0Table` or `1Table` as the FIB says;
//! 2. the FIB gives the length of the main text (`ccpText`) and where the piece table (CLX) and
//!    the property indexes (PlcBtePapx, PlcBteChpx) and the font table are in the table stream;
//! 3. the piece table maps character positions to byte offsets (FCs) in `WordDocument`; each
//!    piece is either 8-bit ("compressed") or UTF-16, and fast-saved files have many;
//! 4. paragraphs end in 0x0D and table cells in 0x07, but which 0x07 ends a row, and whether a
//!    paragraph is in a table at all, are paragraph properties: the PlcBtePapx points at
//!    512-byte FKP pages whose runs (by the FC of the paragraph mark) carry the sprms
//!    sprmPFInTable, sprmPFTtp, sprmPItap and the row's sprmTDefTable.
//!
//! Every offset and count comes from an untrusted attachment: reads go through `get`, sums are
//! checked, allocations are bounded by [`DocLimits`] and by the bytes actually present, and no
//! loop follows a pointer read from the file, so a hostile file is an error, never a panic.

use std::io::{Cursor, Read, Seek};

use super::model::{Block, Cell, Document, Table};

/// Why a .doc could not be read, worded for the branch that sent it.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// The FIB's fEncrypted bit (RC4 or XOR obfuscation), or an encrypted .docx package.
    #[error("文件设有打开密码，请去掉密码后重新发送")]
    Encrypted,
    /// Word 6.0/95 and older lay the FIB and text out differently (nFib < 106).
    #[error("这是 Word 6.0/95 或更早版本的格式，请用 Word 另存为 .docx 后重新发送")]
    Word6,
    /// Not a Word 97–2003 binary file: Word 2003 XML, HTML, RTF, a .docx or anything else.
    #[error("这不是 Word 97-2003 格式的 .doc 文件，请用 Word 另存为 .docx 后重新发送")]
    NotWord,
    /// A Word 97–2003 file whose structures do not hold together (truncated, corrupt).
    #[error("Word 文件已损坏，无法读取（{0}），请用 Word 打开确认后另存为 .docx 重新发送")]
    Damaged(String),
    /// Above one of the [`DocLimits`].
    #[error("Word 文件过大（{0}），请删去图片等多余内容后重新发送")]
    TooLarge(String),
}

fn damaged(what: &str) -> DocError {
    DocError::Damaged(what.to_string())
}

/// Bounds on what one attachment may cost. A form is a few pages; these are generous.
#[derive(Debug, Clone)]
pub struct DocLimits {
    /// Size of the file, and of each stream read from it.
    pub max_bytes: usize,
    /// Characters of main-document text.
    pub max_chars: usize,
    /// Table cells in the whole document.
    pub max_cells: usize,
}

impl Default for DocLimits {
    fn default() -> Self {
        DocLimits {
            max_bytes: 50 << 20,
            max_chars: 2_000_000,
            max_cells: 100_000,
        }
    }
}

/// Reads a Word 97–2003 binary document into paragraphs and tables.
pub fn read_doc(bytes: &[u8], limits: &DocLimits) -> Result<Document, DocError> {
    if bytes.len() > limits.max_bytes {
        let mib = |n: usize| n.div_ceil(1 << 20);
        let (size, max) = (mib(bytes.len()), mib(limits.max_bytes));
        return Err(DocError::TooLarge(format!("{size} MB，上限 {max} MB")));
    }
    if !bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        // Word 1/2 files are a bare FIB, not a compound file; XML, HTML, RTF or a zip renamed
        // to .doc belong to other readers.
        return Err(match bytes.get(..2) {
            Some([0x9B | 0xDB, 0xA5]) => DocError::Word6,
            _ => DocError::NotWord,
        });
    }
    // `cfb` parses the container's sectors and directory; should it panic on a hostile file,
    // that is still just a damaged attachment, not a crashed daemon.
    let (word, table, fib) = std::panic::catch_unwind(|| open(bytes, limits.max_bytes))
        .unwrap_or_else(|_| Err(damaged("compound file")))?;
    Reader::new(&word, &table, &fib, limits)?.read()
}

/// Opens the compound file and returns the `WordDocument` stream, the table stream and the FIB.
fn open(bytes: &[u8], max: usize) -> Result<(Vec<u8>, Vec<u8>, Fib), DocError> {
    let mut cf = cfb::CompoundFile::open(Cursor::new(bytes))
        .map_err(|e| DocError::Damaged(format!("compound file: {e}")))?;
    if cf.is_stream("/EncryptedPackage") {
        return Err(DocError::Encrypted); // a password-protected .docx is a compound file too
    }
    let word = read_stream(&mut cf, "/WordDocument", max)?.ok_or(DocError::NotWord)?;
    let fib = Fib::parse(&word)?;
    let name = if fib.table1 { "/1Table" } else { "/0Table" };
    let table = read_stream(&mut cf, name, max)?.ok_or_else(|| damaged("table stream missing"))?;
    Ok((word, table, fib))
}

fn read_stream<F: Read + Seek>(
    cf: &mut cfb::CompoundFile<F>,
    path: &str,
    max: usize,
) -> Result<Option<Vec<u8>>, DocError> {
    if !cf.is_stream(path) {
        return Ok(None);
    }
    let bad = |e: std::io::Error| DocError::Damaged(format!("{path}: {e}"));
    let stream = cf.open_stream(path).map_err(bad)?;
    let mut buf = Vec::new();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    stream.take(cap).read_to_end(&mut buf).map_err(bad)?;
    if buf.len() > max {
        return Err(DocError::TooLarge(format!("{path} 超过 {max} 字节")));
    }
    Ok(Some(buf))
}

fn slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    slice(b, off, 2)?.try_into().ok().map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    slice(b, off, 4)?.try_into().ok().map(u32::from_le_bytes)
}

/// A (fc, lcb) pair of the FIB as a slice of the table stream, `None` when absent or outside.
fn fc_lcb(table: &[u8], (fc, lcb): (u32, u32)) -> Option<&[u8]> {
    slice(table, usize::try_from(fc).ok()?, usize::try_from(lcb).ok()?).filter(|s| !s.is_empty())
}

/// What this reader needs from the File Information Block.
#[derive(Debug, Default)]
struct Fib {
    table1: bool,
    ccp_text: u32,
    clx: (u32, u32),
    bte_papx: (u32, u32),
    bte_chpx: (u32, u32),
    fonts: (u32, u32),
}

impl Fib {
    fn parse(w: &[u8]) -> Result<Fib, DocError> {
        let bad = || damaged("FIB");
        let (ident, nfib, flags) = (u16_at(w, 0), u16_at(w, 2), u16_at(w, 10));
        let (Some(ident), Some(nfib), Some(flags)) = (ident, nfib, flags) else {
            return Err(bad());
        };
        // 0xA5EC since Word 97; Word 6.0/95 wrote 0xA5DC, Word 2 0xA5DB, Word 1 0xA59B.
        match ident {
            0xA5EC => {}
            0xA500..=0xA5FF => return Err(DocError::Word6),
            _ => return Err(bad()),
        }
        // fEncrypted first: whatever the version, the text cannot be read without the password.
        if flags & 0x0100 != 0 {
            return Err(DocError::Encrypted);
        }
        // Word 6.0 writes nFib 101, Word 95 104, Word 97 and later 193 (0xC1).
        if nfib < 106 {
            return Err(DocError::Word6);
        }
        // FibBase (32 bytes), then three counted arrays: csw u16s, cslw u32s, cbRgFcLcb pairs.
        // The counts are u16, so these sums stay far below usize::MAX.
        let rg_lw = 34 + 2 * usize::from(u16_at(w, 32).ok_or_else(bad)?);
        let cslw = usize::from(u16_at(w, rg_lw).ok_or_else(bad)?);
        let rg_fc = rg_lw + 2 + 4 * cslw;
        let pairs = usize::from(u16_at(w, rg_fc).ok_or_else(bad)?);
        let pair = |i: usize| -> Option<(u32, u32)> {
            if i >= pairs {
                return Some((0, 0));
            }
            let at = rg_fc + 2 + 8 * i;
            Some((u32_at(w, at)?, u32_at(w, at + 4)?))
        };
        let field = |i: usize| pair(i).ok_or_else(bad);
        Ok(Fib {
            table1: flags & 0x0200 != 0,
            ccp_text: (cslw > 3) // fibRgLw: cbMac, 2 reserved, then ccpText
                .then(|| u32_at(w, rg_lw + 2 + 12))
                .flatten()
                .ok_or_else(bad)?,
            clx: field(33)?,
            bte_papx: field(13)?,
            bte_chpx: field(12)?,
            fonts: field(15)?,
        })
    }
}

/// One entry of the piece table: CPs `cp..end` are stored at byte `fc` of `WordDocument`.
struct Piece {
    cp: u32,
    end: u32,
    fc: usize,
    compressed: bool,
}

/// Reads the Pcdt of the CLX (skipping the Prc property entries before it).
fn pieces(clx: &[u8]) -> Result<Vec<Piece>, DocError> {
    let bad = || damaged("piece table");
    let mut pos = 0usize;
    let plc = loop {
        match clx.get(pos) {
            Some(1) => {
                let cb = usize::from(u16_at(clx, pos + 1).ok_or_else(bad)?);
                pos = pos.checked_add(3 + cb).ok_or_else(bad)?; // strictly forward
            }
            Some(2) => {
                let lcb =
                    usize::try_from(u32_at(clx, pos + 1).ok_or_else(bad)?).map_err(|_| bad())?;
                break slice(clx, pos + 5, lcb).ok_or_else(bad)?;
            }
            _ => return Err(bad()),
        }
    };
    // PlcPcd: n+1 CPs, then n 8-byte PCDs (2 bytes of flags, FcCompressed, Prm).
    let n = plc.len().saturating_sub(4) / 12;
    if n == 0 {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (cp, end) = (u32_at(plc, 4 * i), u32_at(plc, 4 * i + 4));
        let raw = u32_at(plc, 4 * (n + 1) + 8 * i + 2);
        let (Some(cp), Some(end), Some(raw)) = (cp, end, raw) else {
            return Err(bad());
        };
        if end < cp {
            return Err(damaged("piece table CPs out of order"));
        }
        let compressed = raw & 0x4000_0000 != 0;
        let fc = raw & 0x3FFF_FFFF;
        let fc = usize::try_from(if compressed { fc / 2 } else { fc }).map_err(|_| bad())?;
        out.push(Piece {
            cp,
            end,
            fc,
            compressed,
        });
    }
    Ok(out)
}

/// A compressed (8-bit) character: Latin-1, except that 0x82–0x9F are cp1252's punctuation
/// ([MS-DOC] 2.4.1), where cp1252's gaps (0x8D–0x90, 0x9D, 0x9E) and 0x80/0x81 stay as they are.
fn compressed_char(b: u8) -> u16 {
    const HIGH: [u16; 30] = [
        0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152,
        0x008D, 0x008E, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
        0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x009E, 0x0178,
    ];
    match b {
        0x82..=0x9F => HIGH
            .get(usize::from(b - 0x82))
            .copied()
            .unwrap_or(u16::from(b)),
        _ => u16::from(b),
    }
}

/// The sprms of a grpprl as (sprm, operand), stopping quietly at a truncated one.
struct Sprms<'a> {
    g: &'a [u8],
    pos: usize,
}

const SPRM_C_F_RMARK_DEL: u16 = 0x0800;
const SPRM_C_SYMBOL: u16 = 0x6A09;
const SPRM_C_RG_FTC0: u16 = 0x4A4F;
const SPRM_P_F_IN_TABLE: u16 = 0x2416;
const SPRM_P_F_TTP: u16 = 0x2417;
const SPRM_P_F_INNER_TTP: u16 = 0x244C;
const SPRM_P_ITAP: u16 = 0x6649;
const SPRM_P_DTAP: u16 = 0x664A;
const SPRM_P_CHG_TABS: u16 = 0xC615;
const SPRM_T_DEF_TABLE: u16 = 0xD608;
const SPRM_T_VERT_MERGE: u16 = 0xD62B;

impl<'a> Iterator for Sprms<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let sprm = u16_at(self.g, self.pos)?;
        let at = self.pos.checked_add(2)?;
        // spra (top 3 bits) gives the operand size; 6 means a length prefix: a byte, except
        // for sprmTDefTable (a u16 cb, then cb - 1 bytes) and for sprmPChgTabs, whose byte
        // may be 255 ("too long: count the two tab lists that follow").
        let (skip, len) = match sprm >> 13 {
            0 | 1 => (0, 1),
            2 | 4 | 5 => (0, 2),
            3 => (0, 4),
            7 => (0, 3),
            _ if sprm == SPRM_T_DEF_TABLE => {
                (2, usize::from(u16_at(self.g, at)?).saturating_sub(1))
            }
            _ if sprm == SPRM_P_CHG_TABS && self.g.get(at) == Some(&255) => {
                let del = usize::from(*self.g.get(at + 1)?);
                let add = usize::from(*self.g.get(at + 2 + 4 * del)?);
                (1, 2 + 4 * del + 3 * add)
            }
            _ => (1, usize::from(*self.g.get(at)?)),
        };
        let operand = slice(self.g, at.checked_add(skip)?, len)?;
        self.pos = at + skip + len; // operand exists, so this is within the slice
        Some((sprm, operand))
    }
}

fn sprms(g: &[u8]) -> Sprms<'_> {
    Sprms { g, pos: 0 }
}

/// A bin table (PlcBtePapx / PlcBteChpx): FC ranges → FKP page numbers in `WordDocument`.
struct Fkps<'a> {
    word: &'a [u8],
    fcs: Vec<u32>,
    pns: Vec<u32>,
    papx: bool,
}

impl<'a> Fkps<'a> {
    fn new(word: &'a [u8], plc: Option<&[u8]>, papx: bool) -> Option<Fkps<'a>> {
        let plc = plc?;
        let n = plc.len().checked_sub(4)? / 8;
        if n == 0 {
            return None;
        }
        let fcs = (0..=n)
            .map(|i| u32_at(plc, 4 * i))
            .collect::<Option<Vec<_>>>()?;
        let pns = (0..n).map(|i| u32_at(plc, 4 * (n + 1) + 4 * i).map(|p| p & 0x003F_FFFF));
        Some(Fkps {
            word,
            fcs,
            pns: pns.collect::<Option<_>>()?,
            papx,
        })
    }

    /// The run containing byte `fc`: its FC range and its grpprl (for a PAPX, without the istd).
    fn run(&self, fc: u32) -> Option<(u32, u32, &'a [u8])> {
        let i = self.fcs.partition_point(|&x| x <= fc).checked_sub(1)?;
        let pn = usize::try_from(*self.pns.get(i)?).ok()?;
        let page = slice(self.word, pn.checked_mul(512)?, 512)?;
        let crun = usize::from(*page.get(511)?);
        let entry = if self.papx { 13 } else { 1 };
        if 4 * (crun + 1) + entry * crun > 511 {
            return None;
        }
        // rgfc is sorted in a sound page: binary search, then check (a hostile page gets `None`).
        let (mut k, mut hi) = (0, crun);
        while k < hi {
            let mid = k + (hi - k) / 2;
            if u32_at(page, 4 * mid + 4)? <= fc {
                k = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (lo, hi) = (u32_at(page, 4 * k)?, u32_at(page, 4 * k + 4)?);
        if k >= crun || fc < lo || fc >= hi {
            return None;
        }
        let at = 2 * usize::from(*page.get(4 * (crun + 1) + entry * k)?);
        if at == 0 {
            return Some((lo, hi, &[]));
        }
        let cb = usize::from(*page.get(at)?);
        let grpprl = if !self.papx {
            slice(page, at + 1, cb)?
        } else if cb != 0 {
            slice(page, at + 1, 2 * cb - 1)?.get(2..).unwrap_or(&[])
        } else {
            slice(page, at + 2, 2 * usize::from(*page.get(at + 1)?))?
                .get(2..)
                .unwrap_or(&[])
        };
        Some((lo, hi, grpprl))
    }
}

/// The character properties this reader cares about.
#[derive(Debug, Clone, Copy, Default)]
struct CharProps {
    deleted: bool,
    symbol: Option<(u16, u16)>,
    font: Option<u16>,
}

impl CharProps {
    fn parse(g: &[u8]) -> CharProps {
        let mut p = CharProps::default();
        for (sprm, op) in sprms(g) {
            match sprm {
                // 1 = on; 0x81 = "the opposite of the style", and styles are never deletions.
                SPRM_C_F_RMARK_DEL => p.deleted = matches!(op.first(), Some(1 | 0x81)),
                SPRM_C_SYMBOL => p.symbol = u16_at(op, 0).zip(u16_at(op, 2)),
                SPRM_C_RG_FTC0 => p.font = u16_at(op, 0),
                _ => {}
            }
        }
        p
    }
}

/// A table row's cell layout from sprmTDefTable: cell boundaries (twips) and TC flags.
#[derive(Debug, Clone, Default)]
struct TDef {
    bounds: Vec<i32>,
    flags: Vec<u16>,
}

const TC_FIRST_MERGED: u16 = 0x01;
const TC_MERGED: u16 = 0x02;
const TC_VERT_MERGE: u16 = 0x20;
const TC_VERT_RESTART: u16 = 0x40;

impl TDef {
    /// itcMac, itcMac+1 boundaries (i16), then up to itcMac 20-byte TC80s (flags first).
    fn parse(op: &[u8]) -> Option<TDef> {
        let n = usize::from(*op.first()?);
        let bounds = (0..=n).map(|i| u16_at(op, 1 + 2 * i).map(|b| i32::from(b as i16)));
        let tcs = 3 + 2 * n;
        let flags = (0..n)
            .map(|i| u16_at(op, tcs + 20 * i).unwrap_or(0))
            .collect();
        Some(TDef {
            bounds: bounds.collect::<Option<_>>()?,
            flags,
        })
    }
}

/// The paragraph properties that place a paragraph in a table.
#[derive(Debug, Clone, Default)]
struct ParaProps {
    in_table: bool,
    ttp: bool,
    itap: Option<u32>,
    inner_ttp: bool,
    tdef: Option<TDef>,
}

impl ParaProps {
    fn parse(g: &[u8]) -> ParaProps {
        let mut p = ParaProps::default();
        for (sprm, op) in sprms(g) {
            let on = op.first().is_some_and(|&b| b != 0);
            let int = || u32_at(op, 0).map(|v| v as i32);
            match sprm {
                SPRM_P_F_IN_TABLE => p.in_table = on,
                SPRM_P_F_TTP => p.ttp = on,
                SPRM_P_F_INNER_TTP => p.inner_ttp = on,
                SPRM_P_ITAP => p.itap = int().map(|v| v.clamp(0, 64) as u32),
                SPRM_P_DTAP => {
                    let base = p.itap.unwrap_or(u32::from(p.in_table)) as i32;
                    let itap = base.saturating_add(int().unwrap_or(0));
                    p.itap = Some(itap.clamp(0, 64) as u32);
                }
                _ => {}
            }
        }
        // Only a row end needs the row's cell definition; parsing it for every paragraph
        // would cost an allocation each.
        if p.ttp {
            p.tdef = row_definition(g);
        }
        p
    }

    /// Table nesting depth: 0 outside tables, 1 in a top-level table.
    fn depth(&self) -> u32 {
        self.itap.unwrap_or(0).max(u32::from(self.in_table))
    }
}

/// The last sprmTDefTable of a row-end PAPX, with any sprmTVertMerge after it applied.
fn row_definition(g: &[u8]) -> Option<TDef> {
    let mut tdef = None;
    for (sprm, op) in sprms(g) {
        match sprm {
            SPRM_T_DEF_TABLE => tdef = TDef::parse(op),
            SPRM_T_VERT_MERGE => {
                // itc, then 0 (no merge), 1 (continues the cell above) or 3 (starts a merge).
                let (Some(&itc), Some(&how)) = (op.first(), op.get(1)) else {
                    continue;
                };
                let cell = tdef
                    .as_mut()
                    .and_then(|t: &mut TDef| t.flags.get_mut(usize::from(itc)));
                if let Some(f) = cell {
                    *f &= !(TC_VERT_MERGE | TC_VERT_RESTART);
                    *f |= match how {
                        1 => TC_VERT_MERGE,
                        3 => TC_VERT_MERGE | TC_VERT_RESTART,
                        _ => 0,
                    };
                }
            }
            _ => {}
        }
    }
    tdef
}

/// Maps a character of a symbol font (Wingdings, Wingdings 2, Symbol) to Unicode for the few
/// glyphs that forms use as check boxes; Word stores them as 0x28 + sprmCSymbol or as U+F0xx.
fn symbol_char(font: Option<&str>, code: u16) -> Option<u16> {
    if !(0xF000..=0xF0FF).contains(&code) {
        return (code >= 0x20).then_some(code); // already a Unicode character
    }
    let c = match (font?, code & 0xFF) {
        ("wingdings", 0xFE) | ("wingdings 2", 0x52) => '☑',
        ("wingdings", 0xFD) | ("wingdings 2", 0x51 | 0x53 | 0x54) => '☒',
        ("wingdings", 0xFC) | ("wingdings 2", 0x50) => '✓',
        ("wingdings", 0xFB) | ("wingdings 2", 0x4F) => '✗',
        ("wingdings", 0x6F | 0x71 | 0x72 | 0xA8) | ("wingdings 2", 0x2A | 0xA3) => '□',
        ("wingdings", 0x6E | 0xA7) => '■',
        ("symbol", 0xD6) => '√',
        ("symbol", 0xB4) => '×',
        ("symbol", 0xB7) => '•',
        _ => return None,
    };
    u16::try_from(u32::from(c)).ok()
}

/// Font names (lower case) from the SttbfFfn, indexed by ftc.
fn font_names(sttb: Option<&[u8]>) -> Vec<String> {
    let Some(sttb) = sttb else { return Vec::new() };
    let (Some(count), Some(extra)) = (u16_at(sttb, 0), u16_at(sttb, 2)) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut pos = 4usize;
    for _ in 0..count {
        // Each entry: cbFfnM1, then the FFN whose name (xszFfn, UTF-16) starts 39 bytes in.
        let Some(&len) = sttb.get(pos) else { break };
        let Some(ffn) = slice(sttb, pos + 1, usize::from(len)) else {
            break;
        };
        let name = ffn
            .get(39..)
            .unwrap_or(&[])
            .chunks_exact(2)
            .map_while(|c| match c {
                [0, 0] => None,
                [lo, hi] => Some(u16::from_le_bytes([*lo, *hi])),
                _ => None,
            });
        let units: Vec<u16> = name.collect();
        names.push(String::from_utf16_lossy(&units).trim().to_lowercase());
        pos = pos.saturating_add(1 + usize::from(len) + usize::from(extra));
    }
    names
}

/// One character of the main text and where it is stored (for property look-ups).
#[derive(Debug, Clone, Copy)]
struct Ch {
    c: u16,
    fc: u32,
}

struct Reader<'a> {
    word: &'a [u8],
    pieces: Vec<Piece>,
    ccp_text: u32,
    papx: Option<Fkps<'a>>,
    chpx: Option<Fkps<'a>>,
    fonts: Vec<String>,
    limits: &'a DocLimits,
}

impl<'a> Reader<'a> {
    fn new(
        word: &'a [u8],
        table: &'a [u8],
        fib: &Fib,
        limits: &'a DocLimits,
    ) -> Result<Self, DocError> {
        let clx = fc_lcb(table, fib.clx).ok_or_else(|| damaged("piece table missing"))?;
        Ok(Reader {
            word,
            pieces: pieces(clx)?,
            ccp_text: fib.ccp_text,
            papx: Fkps::new(word, fc_lcb(table, fib.bte_papx), true),
            chpx: Fkps::new(word, fc_lcb(table, fib.bte_chpx), false),
            fonts: font_names(fc_lcb(table, fib.fonts)),
            limits,
        })
    }

    fn read(&self) -> Result<Document, DocError> {
        let chars = self.text()?;
        let hidden = field_instructions(&chars);
        let mut out = Builder::new(self.limits.max_cells);
        let mut para: Vec<u16> = Vec::new();
        for (ch, hidden) in chars.iter().zip(hidden) {
            match ch.c {
                0x0D | 0x07 | 0x0C => {
                    let props = self
                        .papx
                        .as_ref()
                        .and_then(|f| f.run(ch.fc))
                        .map(|(_, _, g)| ParaProps::parse(g));
                    out.paragraph(String::from_utf16_lossy(&para), ch.c == 0x07, props)?;
                    para.clear();
                }
                _ if hidden => {}
                0x09 => para.push(0x09),
                0x0B | 0x0E => para.push(u16::from(b'\n')), // line and column breaks
                0x1E => para.push(u16::from(b'-')),         // non-breaking hyphen
                0xA0 => para.push(u16::from(b' ')),
                0x00..=0x1F => {} // field marks, picture and note anchors, soft hyphen
                c => para.push(c),
            }
        }
        if !para.is_empty() {
            out.paragraph(String::from_utf16_lossy(&para), false, None)?;
        }
        Ok(Document {
            blocks: out.finish()?,
        })
    }

    /// The main document's characters (CPs 0..ccpText) in order, deleted revisions left out
    /// (but not their paragraph and cell marks, which carry the table structure) and symbol-font
    /// characters mapped to Unicode.
    fn text(&self) -> Result<Vec<Ch>, DocError> {
        let max = self.limits.max_chars;
        let hint = usize::try_from(self.ccp_text)
            .unwrap_or(max)
            .min(max)
            .min(self.word.len());
        let mut chars = Vec::with_capacity(hint);
        let mut seen = 0usize;
        let mut cache: Option<(u32, u32, CharProps)> = None;
        for p in &self.pieces {
            let end = p.end.min(self.ccp_text);
            if p.cp >= end {
                continue;
            }
            let n = usize::try_from(end - p.cp).map_err(|_| damaged("piece table"))?;
            seen = seen.saturating_add(n);
            if seen > max {
                return Err(DocError::TooLarge(format!("正文超过 {max} 字")));
            }
            let width = if p.compressed { 1 } else { 2 };
            let bytes = n
                .checked_mul(width)
                .and_then(|len| slice(self.word, p.fc, len))
                .ok_or_else(|| damaged("text outside the WordDocument stream"))?;
            for (i, unit) in bytes.chunks_exact(width).enumerate() {
                let c = match unit {
                    [b] => compressed_char(*b),
                    [lo, hi] => u16::from_le_bytes([*lo, *hi]),
                    _ => continue,
                };
                // Within the stream (checked above), so these offsets fit.
                let fc = u32::try_from(p.fc + i * width).map_err(|_| damaged("text offset"))?;
                let props = match cache {
                    Some((lo, hi, props)) if lo <= fc && fc < hi => props,
                    _ => match self.chpx.as_ref().and_then(|f| f.run(fc)) {
                        Some((lo, hi, g)) => {
                            let props = CharProps::parse(g);
                            cache = Some((lo, hi, props));
                            props
                        }
                        None => CharProps::default(),
                    },
                };
                if props.deleted && !matches!(c, 0x07 | 0x0C | 0x0D) {
                    continue;
                }
                let font = |ftc: u16| self.fonts.get(usize::from(ftc)).map(String::as_str);
                let c = match (c, props.symbol) {
                    (0x28, Some((ftc, code))) => symbol_char(font(ftc), code).unwrap_or(0),
                    (0xF000..=0xF0FF, _) => symbol_char(props.font.and_then(font), c).unwrap_or(c),
                    _ => c,
                };
                chars.push(Ch { c, fc });
            }
        }
        Ok(chars)
    }
}

/// Marks the characters to hide for fields (0x13 begin, 0x14 separator, 0x15 end): the marks
/// and the instruction between begin and separator (all of a field without a separator), so
/// only the result remains; nested fields alike. Marks that do not pair up are left to the
/// caller (which drops control characters), and a cell end closes every open field, so a
/// broken field cannot swallow the rest of the document.
fn field_instructions(chars: &[Ch]) -> Vec<bool> {
    // Difference array: +1 where a hidden range starts, -1 after it ends; O(n) for any nesting.
    let mut delta = vec![0i32; chars.len() + 1];
    let mut hide = |from: usize, to: usize| {
        if let Some(d) = delta.get_mut(from) {
            *d += 1;
        }
        if let Some(d) = delta.get_mut(to + 1) {
            *d -= 1;
        }
    };
    let mut open: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, ch) in chars.iter().enumerate() {
        match ch.c {
            0x13 => open.push((i, None)),
            0x14 => {
                if let Some((_, sep @ None)) = open.last_mut() {
                    *sep = Some(i);
                }
            }
            0x15 => {
                if let Some((begin, sep)) = open.pop() {
                    hide(begin, sep.unwrap_or(i));
                    hide(i, i);
                }
            }
            0x07 => open.clear(),
            _ => {}
        }
    }
    let mut depth = 0i32;
    delta
        .iter()
        .take(chars.len())
        .map(|d| {
            depth += d;
            depth > 0
        })
        .collect()
}

/// Groups paragraphs into body paragraphs and tables (rows of cells).
struct Builder {
    blocks: Vec<Block>,
    rows: Vec<(Vec<String>, Option<TDef>)>,
    cells: Vec<String>,
    paras: Vec<String>,
    after_cell_end: bool,
    cell_count: usize,
    max_cells: usize,
}

impl Builder {
    fn new(max_cells: usize) -> Builder {
        Builder {
            blocks: Vec::new(),
            rows: Vec::new(),
            cells: Vec::new(),
            paras: Vec::new(),
            after_cell_end: false,
            cell_count: 0,
            max_cells,
        }
    }

    /// One paragraph, ended by a cell mark (0x07) or a paragraph mark; `props` is `None` when
    /// the file gives no paragraph properties for it, and then the 0x07 heuristic decides: a
    /// 0x07 right after a cell end, with nothing in between, ends the row (an empty cell looks
    /// the same, which is why the properties come first).
    fn paragraph(
        &mut self,
        text: String,
        cell_mark: bool,
        props: Option<ParaProps>,
    ) -> Result<(), DocError> {
        let guess_row_end = self.after_cell_end && text.trim().is_empty() && self.paras.is_empty();
        self.after_cell_end = false;
        match props {
            // Nested tables are flattened into the outer cell, one line per inner cell.
            Some(p) if p.depth() >= 2 => {
                if !p.inner_ttp {
                    self.paras.push(text);
                }
            }
            Some(p) if p.depth() == 1 => {
                if p.ttp {
                    self.end_row(p.tdef)?;
                } else if cell_mark {
                    self.end_cell(text)?;
                } else {
                    self.paras.push(text);
                }
            }
            _ if cell_mark && guess_row_end => self.end_row(None)?,
            _ if cell_mark => self.end_cell(text)?,
            None if !self.cells.is_empty() => self.paras.push(text),
            _ => {
                self.end_table()?;
                let text = text.trim();
                if !text.is_empty() {
                    self.blocks.push(Block::Paragraph(text.to_string()));
                }
            }
        }
        Ok(())
    }

    fn end_cell(&mut self, text: String) -> Result<(), DocError> {
        self.paras.push(text);
        self.push_cell()?;
        self.after_cell_end = true;
        Ok(())
    }

    /// The paragraphs gathered so far become one cell: each trimmed, one per line.
    fn push_cell(&mut self) -> Result<(), DocError> {
        let lines: Vec<&str> = self.paras.iter().map(|p| p.trim()).collect();
        self.cells.push(lines.join("\n").trim().to_string());
        self.paras.clear();
        self.cell_count += 1;
        if self.cell_count > self.max_cells {
            return Err(DocError::TooLarge(format!(
                "表格超过 {} 个单元格",
                self.max_cells
            )));
        }
        Ok(())
    }

    fn end_row(&mut self, tdef: Option<TDef>) -> Result<(), DocError> {
        if !self.paras.is_empty() {
            self.push_cell()?; // text after the last cell mark: keep it rather than lose it
        }
        if !self.cells.is_empty() {
            // A definition that does not fit the row is useless to `layout`; dropping it here
            // also keeps a hostile file from storing a 255-cell definition per one-cell row.
            let tdef = tdef.filter(|t| t.flags.len() == self.cells.len());
            self.rows.push((std::mem::take(&mut self.cells), tdef));
        }
        Ok(())
    }

    fn end_table(&mut self) -> Result<(), DocError> {
        self.end_row(None)?;
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            self.blocks.push(Block::Table(layout(rows)));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Block>, DocError> {
        self.end_table()?;
        Ok(self.blocks)
    }
}

/// Boundaries closer than this (twips; 1 mm ≈ 57) are one grid line: hand-dragged borders are
/// rarely exactly aligned, and a 0.3 mm difference is not a column.
const GRID_TOLERANCE: i32 = 20;

/// Turns rows of cell texts into cells with spans. Each row's sprmTDefTable gives its cell
/// boundaries; all boundaries of the table form the column grid, and a cell spans the grid
/// columns between its left and right boundary (this is how Word 2000+ stores horizontal
/// merges: one wider cell). Word 97's own merge flags (fFirstMerged/fMerged) fold cells into the
/// first of the group; fVertMerge without fVertRestart marks a continuation cell. A row whose
/// cell count does not match its definition keeps one column per cell.
fn layout(rows: Vec<(Vec<String>, Option<TDef>)>) -> Table {
    struct Pending {
        cell: Cell,
        edges: Option<(i32, i32)>,
    }
    let rows: Vec<Vec<Pending>> = rows
        .into_iter()
        .map(|(texts, tdef)| {
            let tdef = tdef.filter(|t| t.flags.len() == texts.len());
            let mut out: Vec<Pending> = Vec::with_capacity(texts.len());
            for (i, text) in texts.into_iter().enumerate() {
                let Some(t) = &tdef else {
                    out.push(Pending {
                        cell: Cell::new(text),
                        edges: None,
                    });
                    continue;
                };
                let flags = t.flags.get(i).copied().unwrap_or(0);
                let edges = t.bounds.get(i).copied().zip(t.bounds.get(i + 1).copied());
                if flags & (TC_FIRST_MERGED | TC_MERGED) == TC_MERGED
                    && let Some(prev) = out.last_mut()
                {
                    prev.edges = prev.edges.zip(edges).map(|((l, _), (_, r))| (l, r));
                    if !text.is_empty() {
                        prev.cell.text = format!("{}\n{text}", prev.cell.text).trim().to_string();
                    }
                    continue;
                }
                let v_merged = flags & (TC_VERT_MERGE | TC_VERT_RESTART) == TC_VERT_MERGE;
                out.push(Pending {
                    cell: Cell {
                        text,
                        col_span: 1,
                        v_merged,
                    },
                    edges,
                });
            }
            out
        })
        .collect();
    let mut lines: Vec<i32> = rows
        .iter()
        .flatten()
        .filter_map(|p| p.edges)
        .flat_map(|(l, r)| [l, r])
        .collect();
    lines.sort_unstable();
    let mut grid: Vec<i32> = Vec::new();
    for x in lines {
        if grid.last().is_none_or(|&g| x - g > GRID_TOLERANCE) {
            grid.push(x);
        }
    }
    let column = |x: i32| grid.partition_point(|&g| g <= x);
    let rows = rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|Pending { mut cell, edges }| {
                    if let Some((l, r)) = edges {
                        let span = column(r).saturating_sub(column(l)).max(1);
                        cell.col_span = u32::try_from(span).unwrap_or(1);
                    }
                    cell
                })
                .collect()
        })
        .collect();
    Table { rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    const SPRM_P_F_INNER_TABLE_CELL: u16 = 0x244B;

    fn read(bytes: &[u8]) -> Result<Document, DocError> {
        read_doc(bytes, &DocLimits::default())
    }

    /// The shared test data: beside the repository (CI) or at its place on a developer machine.
    fn shared() -> Option<PathBuf> {
        let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
        [beside, PathBuf::from("/work/shared")]
            .into_iter()
            .find(|p| p.join("samples").is_dir())
    }

    fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        out.retain(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)));
        out.sort();
        out
    }

    fn tables(doc: &Document) -> Vec<&Table> {
        doc.blocks
            .iter()
            .filter_map(|b| {
                if let Block::Table(t) = b {
                    Some(t)
                } else {
                    None
                }
            })
            .collect()
    }

    fn rows(doc: &Document) -> Vec<Vec<String>> {
        tables(doc)
            .iter()
            .flat_map(|t| t.rows.iter())
            .map(|r| r.iter().map(|c| c.text.clone()).collect())
            .collect()
    }

    /// Asserts that the form's text holds every field the sample's expected.json names.
    fn assert_fields(doc: &Document, expected: &serde_json::Value, what: &str) {
        let text = doc.plain_text();
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let fields = &expected["fields"];
        for key in [
            "project_name",
            "section",
            "leader",
            "leader_role",
            "advisor",
        ] {
            if let Some(v) = fields[key].as_str() {
                assert!(text.contains(v), "{what}: {key} {v:?} not in\n{text}");
            }
        }
        if let Some(phone) = fields["phone"].as_str() {
            assert!(
                digits.contains(phone),
                "{what}: phone {phone} not in\n{text}"
            );
        }
        for key in ["budget_as_written", "section_as_written"] {
            if let Some(v) = expected[key].as_str() {
                assert!(text.contains(v), "{what}: {key} {v:?} not in\n{text}");
            }
        }
    }

    #[test]
    fn sample_forms_have_their_fields() {
        let Some(shared) = shared() else { return };
        let mut cases: Vec<PathBuf> = std::fs::read_dir(shared.join("samples"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        cases.retain(|p| p.join("expected.json").is_file());
        cases.sort();
        let mut read_ok = 0;
        for case in cases {
            let json = std::fs::read_to_string(case.join("expected.json")).unwrap_or_default();
            let expected: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            for path in files_with_ext(&case.join("files"), "doc") {
                let what = path.display().to_string();
                let bytes = std::fs::read(&path).unwrap_or_default();
                let doc = read(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(!tables(&doc).is_empty(), "{what}: no table");
                assert_fields(&doc, &expected, &what);
                read_ok += 1;
            }
        }
        assert!(read_ok > 0, "no sample .doc found");
    }

    #[test]
    fn office_template_reads() {
        let Some(shared) = shared() else { return };
        let templates = files_with_ext(&shared.join("samples/templates"), "doc");
        assert!(!templates.is_empty());
        for path in templates {
            let doc =
                read(&std::fs::read(&path).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
            let rows = rows(&doc);
            assert!(
                rows.iter()
                    .any(|r| r.first().is_some_and(|c| c == "项目名称")),
                "{rows:?}"
            );
            let text = doc.plain_text();
            assert!(
                text.contains("□师生结对·双向赋能\u{3000}□育苗成长·薪火相传"),
                "{text}"
            );
            // The 实施计划 label spans five rows: the rows below carry a vertical-merge marker.
            let table = tables(&doc)[0];
            assert!(
                table
                    .rows
                    .iter()
                    .any(|r| r.first().is_some_and(|c| c.v_merged && c.text.is_empty()))
            );
            assert!(table.rows.iter().any(|r| r.iter().any(|c| c.col_span == 3)));
        }
    }

    /// The body text of a node-word-extractor Jest snapshot, unescaped: a JSON string inside a
    /// JavaScript template literal, so a newline is `\\\\n` and a quote `\\\\\\"`.
    fn snapshot_body(snap: &str) -> Option<String> {
        let line = snap
            .lines()
            .find(|l| l.trim_start().starts_with("\"body\""))?;
        let body = line.split_once(r#": "\\""#)?.1.trim_end_matches(r#"\\"","#);
        Some(
            body.replace(r#"\\\\\\""#, "\"")
                .replace(r"\\\\n", "\n")
                .replace(r"\\\\t", "\t"),
        )
    }

    fn squeeze(s: &str) -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '“' | '”' => '"',
                '‘' | '’' => '\'',
                '–' | '—' => '-',
                c => c,
            })
            .collect()
    }

    #[test]
    fn corpus_files_end_in_ok_or_error_quickly() {
        let Some(shared) = shared() else { return };
        let root = shared.join("corpus/office/doc");
        let manifest =
            std::fs::read_to_string(shared.join("corpus/MANIFEST.tsv")).unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .flat_map(|d| files_with_ext(&d.path(), "doc"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        println!("{:<58} {:>8}  outcome", "file", "ms");
        for path in &files {
            let rel = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            let note = manifest
                .lines()
                .find(|l| l.starts_with(&format!("office/doc/{rel}\t")))
                .and_then(|l| l.split('\t').nth(4))
                .unwrap_or("");
            let bytes = std::fs::read(path).unwrap_or_default();
            let start = Instant::now();
            let result = std::panic::catch_unwind(|| read(&bytes));
            let elapsed = start.elapsed();
            let Ok(result) = result else {
                panic!("{rel}: panicked")
            };
            let outcome = match &result {
                Ok(doc) => format!(
                    "Ok: {} paragraphs, {} tables, {} chars",
                    doc.blocks
                        .iter()
                        .filter(|b| matches!(b, Block::Paragraph(_)))
                        .count(),
                    tables(doc).len(),
                    doc.plain_text().chars().count()
                ),
                Err(e) => format!("Err: {e:?}"),
            };
            println!(
                "{rel:<58} {:>8.1}  {outcome}",
                elapsed.as_secs_f64() * 1000.0
            );
            assert!(elapsed < Duration::from_secs(2), "{rel}: {elapsed:?}");
            if note.contains("ENCRYPTED") {
                assert!(
                    matches!(result, Err(DocError::Encrypted)),
                    "{rel}: {outcome}"
                );
            } else if note.contains("pre-97") {
                assert!(matches!(result, Err(DocError::Word6)), "{rel}: {outcome}");
            } else if note.contains("NOT OLE") {
                assert!(matches!(result, Err(DocError::NotWord)), "{rel}: {outcome}");
            } else if !note.contains("CORRUPT") {
                assert!(result.is_ok(), "{rel}: {outcome}");
            }
            // node-word-extractor's snapshot of the same file: same text, whitespace aside.
            let snap =
                std::fs::read_to_string(path.with_extension("doc.snapx")).unwrap_or_default();
            if let (Some(body), Ok(doc)) = (snapshot_body(&snap), &result) {
                assert_eq!(squeeze(&doc.plain_text()), squeeze(&body), "{rel}");
            }
        }
        assert!(
            files.len() > 20,
            "corpus not found under {}",
            root.display()
        );
    }

    #[test]
    fn corpus_tables_keep_empty_cells_merges_and_nesting() {
        let Some(shared) = shared() else { return };
        let dir = shared.join("corpus/office/doc");
        let load =
            |rel: &str| read(&std::fs::read(dir.join(rel)).unwrap_or_default()).expect("readable");
        let empty = load("word-extractor/test12.doc");
        assert_eq!(rows(&empty)[1], ["Row 2, cell 1", "", "Row 2, cell 3"]);
        let nested = load("poi/innertable.doc");
        assert_eq!(rows(&nested)[1], ["D", "E\n1\n2\n3\n4\nF", "G"]);
        let merges = load("poi/table-merges.doc");
        let spans: Vec<Vec<u32>> = tables(&merges)[0]
            .rows
            .iter()
            .map(|r| r.iter().map(|c| c.col_span).collect())
            .collect();
        assert_eq!(
            spans,
            [vec![3, 2], vec![1, 1, 2, 1], vec![1, 1, 2, 1], vec![5]]
        );
    }

    // ---- Synthetic files: a minimal Word 97 document built byte by byte. ----

    const TEXT_AT: usize = 0x400;
    const PAPX_PAGE: usize = 4;
    const CHPX_PAGE: usize = 5;

    /// What to put in a synthetic document.
    #[derive(Default)]
    struct Synth {
        /// Paragraphs: text (chars as UTF-16 units, marks included) and the PAPX grpprl.
        paras: Vec<(Vec<u16>, Vec<u8>)>,
        /// Character runs over the whole text, in order: (length in chars, CHPX grpprl).
        runs: Vec<(usize, Vec<u8>)>,
        fonts: Vec<&'static str>,
        /// 8-bit text (each unit must be < 0x100).
        compressed: bool,
    }

    fn le16(v: u16) -> [u8; 2] {
        v.to_le_bytes()
    }

    fn put(buf: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        if buf.len() < at + bytes.len() {
            buf.resize(at + bytes.len(), 0);
        }
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// FIB offset of the (fc, lcb) pair `i`.
    fn pair_at(i: usize) -> usize {
        154 + 8 * i
    }

    /// An FKP page: runs of FCs and their property blobs (written from the end of the page).
    fn fkp(bounds: &[u32], blobs: &[Vec<u8>], papx: bool) -> Vec<u8> {
        let mut page = vec![0u8; 512];
        let crun = blobs.len();
        for (i, fc) in bounds.iter().enumerate() {
            put(&mut page, 4 * i, &fc.to_le_bytes());
        }
        let entry = if papx { 13 } else { 1 };
        let mut top = 511;
        for (k, blob) in blobs.iter().enumerate() {
            if blob.is_empty() && !papx {
                continue; // offset 0: default properties
            }
            let stored: Vec<u8> = if !papx {
                [vec![blob.len() as u8], blob.clone()].concat()
            } else {
                let data = [vec![0, 0], blob.clone()].concat(); // istd 0
                if data.len() % 2 == 1 {
                    [vec![data.len().div_ceil(2) as u8], data].concat()
                } else {
                    [vec![0, (data.len() / 2) as u8], data].concat()
                }
            };
            top = (top - stored.len()) & !1;
            put(&mut page, top, &stored);
            page[4 * (crun + 1) + entry * k] = (top / 2) as u8;
        }
        assert!(top > 4 * (crun + 1) + entry * crun, "FKP page overflow");
        page[511] = crun as u8;
        page
    }

    impl Synth {
        fn para(mut self, text: &str, mark: u16, grpprl: &[u8]) -> Self {
            let mut units: Vec<u16> = text.encode_utf16().collect();
            units.push(mark);
            self.paras.push((units, grpprl.to_vec()));
            self
        }

        fn units(&self) -> Vec<u16> {
            self.paras
                .iter()
                .flat_map(|(t, _)| t.iter().copied())
                .collect()
        }

        /// The two streams: `WordDocument` and `1Table`.
        fn streams(&self) -> (Vec<u8>, Vec<u8>) {
            let units = self.units();
            let width = if self.compressed { 1 } else { 2 };
            let fc_of = |cp: usize| (TEXT_AT + width * cp) as u32;
            let mut word = vec![0u8; TEXT_AT];
            put(&mut word, 0, &le16(0xA5EC));
            put(&mut word, 2, &le16(0xC1));
            put(&mut word, 10, &le16(0x0200));
            put(&mut word, 32, &le16(14));
            put(&mut word, 62, &le16(22));
            put(&mut word, 76, &(units.len() as u32).to_le_bytes());
            put(&mut word, 152, &le16(0x5D));
            for u in &units {
                let bytes = if self.compressed {
                    vec![*u as u8]
                } else {
                    le16(*u).to_vec()
                };
                word.extend_from_slice(&bytes);
            }
            // PAPX: one run per paragraph, ending after its mark.
            let mut bounds = vec![fc_of(0)];
            let mut cp = 0;
            for (text, _) in &self.paras {
                cp += text.len();
                bounds.push(fc_of(cp));
            }
            let blobs: Vec<Vec<u8>> = self.paras.iter().map(|(_, g)| g.clone()).collect();
            put(&mut word, PAPX_PAGE * 512, &fkp(&bounds, &blobs, true));
            let mut table = Vec::new();
            // CLX: one piece.
            let fc = if self.compressed {
                (2 * TEXT_AT as u32) | 0x4000_0000
            } else {
                TEXT_AT as u32
            };
            let clx = [
                vec![2],
                16u32.to_le_bytes().to_vec(),
                0u32.to_le_bytes().to_vec(),
                (units.len() as u32).to_le_bytes().to_vec(),
                vec![0, 0],
                fc.to_le_bytes().to_vec(),
                vec![0, 0],
            ]
            .concat();
            let mut add = |word: &mut Vec<u8>, index: usize, data: &[u8]| {
                put(word, pair_at(index), &(table.len() as u32).to_le_bytes());
                put(word, pair_at(index) + 4, &(data.len() as u32).to_le_bytes());
                table.extend_from_slice(data);
            };
            add(&mut word, 33, &clx);
            let bte = |page: usize| {
                [
                    fc_of(0).to_le_bytes(),
                    fc_of(units.len()).to_le_bytes(),
                    (page as u32).to_le_bytes(),
                ]
                .concat()
            };
            add(&mut word, 13, &bte(PAPX_PAGE));
            if !self.runs.is_empty() {
                let mut bounds = vec![fc_of(0)];
                let mut cp = 0;
                for (len, _) in &self.runs {
                    cp += len;
                    bounds.push(fc_of(cp));
                }
                let blobs: Vec<Vec<u8>> = self.runs.iter().map(|(_, g)| g.clone()).collect();
                put(&mut word, CHPX_PAGE * 512, &fkp(&bounds, &blobs, false));
                add(&mut word, 12, &bte(CHPX_PAGE));
            }
            if !self.fonts.is_empty() {
                let mut sttb = [le16(self.fonts.len() as u16), le16(0)].concat();
                for name in &self.fonts {
                    let mut ffn = vec![0u8; 39];
                    ffn.extend(name.encode_utf16().chain([0]).flat_map(le16));
                    sttb.push(ffn.len() as u8);
                    sttb.extend(ffn);
                }
                add(&mut word, 15, &sttb);
            }
            (word, table)
        }

        fn build(&self) -> Vec<u8> {
            let (word, table) = self.streams();
            compound(&[("/WordDocument", &word), ("/1Table", &table)])
        }
    }

    fn compound(streams: &[(&str, &[u8])]) -> Vec<u8> {
        let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("create cfb");
        for (name, data) in streams {
            cf.create_stream(name)
                .expect("stream")
                .write_all(data)
                .expect("write");
        }
        cf.flush().expect("flush");
        cf.into_inner().into_inner()
    }

    fn sprm(id: u16, operand: &[u8]) -> Vec<u8> {
        [le16(id).to_vec(), operand.to_vec()].concat()
    }

    fn in_table() -> Vec<u8> {
        sprm(SPRM_P_F_IN_TABLE, &[1])
    }

    /// PAPX of a row end: in table, TTP, and a sprmTDefTable with these boundaries and TC flags.
    fn row_end(bounds: &[i16], flags: &[u16]) -> Vec<u8> {
        let mut op = vec![flags.len() as u8];
        op.extend(bounds.iter().flat_map(|b| b.to_le_bytes()));
        for f in flags {
            op.extend(le16(*f));
            op.extend([0u8; 18]);
        }
        let cb = (op.len() + 1) as u16;
        [
            in_table(),
            sprm(SPRM_P_F_TTP, &[1]),
            sprm(SPRM_T_DEF_TABLE, &[le16(cb).to_vec(), op].concat()),
        ]
        .concat()
    }

    fn texts(doc: &Document) -> Vec<String> {
        doc.blocks
            .iter()
            .map(|b| match b {
                Block::Paragraph(p) => p.clone(),
                Block::Table(t) => format!(
                    "{:?}",
                    t.rows
                        .iter()
                        .map(|r| r.iter().map(|c| c.text.as_str()).collect::<Vec<_>>())
                        .collect::<Vec<_>>()
                ),
            })
            .collect()
    }

    /// Two rows of three cells, the middle one of the first row empty: exactly the case the
    /// 0x07 heuristic gets wrong.
    fn form_with_empty_cell() -> Synth {
        let cell = in_table();
        let end = row_end(&[0, 1000, 2000, 3000], &[0, 0, 0]);
        Synth::default()
            .para("标题", 0x0D, &[])
            .para("项 目 名 称", 0x07, &cell)
            .para("", 0x07, &cell)
            .para("第一段", 0x0D, &cell)
            .para("第二段", 0x07, &cell)
            .para("", 0x07, &end)
            .para("联系电话", 0x07, &cell)
            .para("138 0000 0000", 0x07, &cell)
            .para("", 0x07, &cell)
            .para("", 0x07, &end)
            .para("注：结尾", 0x0D, &[])
    }

    #[test]
    fn paragraph_properties_place_empty_cells() {
        let doc = read(&form_with_empty_cell().build()).expect("readable");
        assert_eq!(
            texts(&doc),
            [
                "标题",
                r#"[["项 目 名 称", "", "第一段\n第二段"], ["联系电话", "138 0000 0000", ""]]"#,
                "注：结尾"
            ]
        );
    }

    #[test]
    fn without_paragraph_properties_the_cell_mark_heuristic_still_reads_the_text() {
        let no_papx = |synth: Synth| {
            let (mut word, table) = synth.streams();
            put(&mut word, pair_at(13) + 4, &0u32.to_le_bytes()); // lcbPlcfBtePapx = 0
            read(&compound(&[("/WordDocument", &word), ("/1Table", &table)])).expect("readable")
        };
        let full = Synth::default()
            .para("名称", 0x07, &[])
            .para("值", 0x07, &[])
            .para("", 0x07, &[])
            .para("第一段", 0x0D, &[])
            .para("第二段", 0x07, &[])
            .para("电话", 0x07, &[])
            .para("", 0x07, &[])
            .para("注", 0x0D, &[]);
        let doc = no_papx(full);
        assert_eq!(
            rows(&doc).first().map(Vec::as_slice),
            Some(&["名称".to_string(), "值".to_string()][..])
        );
        // A paragraph after a row end cannot be told from one opening the next row's first cell,
        // and an empty cell looks like a row end (that is why properties come first), but no
        // text is lost.
        for doc in [doc, no_papx(form_with_empty_cell())] {
            let text = doc.plain_text();
            for s in ["第一段", "第二段", "电话", "注"] {
                assert!(text.contains(s), "{text}");
            }
        }
    }

    #[test]
    fn merges_become_spans_and_continuations() {
        let cell = in_table();
        // Row 1: two cells, the second two grid columns wide; Row 2: three cells, the first
        // continuing a vertical merge; Row 3: Word 97 style horizontal merge of two cells.
        let doc = Synth::default()
            .para("预算", 0x07, &cell)
            .para("宽", 0x07, &cell)
            .para(
                "",
                0x07,
                &row_end(&[0, 1000, 3000], &[TC_VERT_MERGE | TC_VERT_RESTART, 0]),
            )
            .para("", 0x07, &cell)
            .para("B", 0x07, &cell)
            .para("C", 0x07, &cell)
            .para(
                "",
                0x07,
                &row_end(&[0, 1005, 2000, 3000], &[TC_VERT_MERGE, 0, 0]),
            )
            .para("D", 0x07, &cell)
            .para("", 0x07, &cell)
            .para("E", 0x07, &cell)
            .para(
                "",
                0x07,
                &row_end(&[0, 1000, 2000, 3000], &[TC_FIRST_MERGED, TC_MERGED, 0]),
            )
            .build();
        let doc = read(&doc).expect("readable");
        let got: Vec<Vec<(String, u32, bool)>> = tables(&doc)[0]
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| (c.text.clone(), c.col_span, c.v_merged))
                    .collect()
            })
            .collect();
        let cell = |t: &str, span, v| (t.to_string(), span, v);
        assert_eq!(
            got,
            [
                vec![cell("预算", 1, false), cell("宽", 2, false)],
                vec![cell("", 1, true), cell("B", 1, false), cell("C", 1, false)],
                vec![cell("D", 2, false), cell("E", 1, false)],
            ]
        );
    }

    #[test]
    fn nested_tables_are_flattened_into_the_outer_cell() {
        let cell = in_table();
        let inner = [in_table(), sprm(SPRM_P_ITAP, &2u32.to_le_bytes())].concat();
        let inner_cell = [inner.clone(), sprm(SPRM_P_F_INNER_TABLE_CELL, &[1])].concat();
        let inner_row = [
            inner,
            sprm(SPRM_P_F_INNER_TABLE_CELL, &[1]),
            sprm(SPRM_P_F_INNER_TTP, &[1]),
        ]
        .concat();
        let doc = Synth::default()
            .para("外", 0x07, &cell)
            .para("内1", 0x0D, &inner_cell)
            .para("内2", 0x0D, &inner_cell)
            .para("", 0x0D, &inner_row)
            .para("后", 0x07, &cell)
            .para("", 0x07, &row_end(&[0, 1000, 2000], &[0, 0]))
            .build();
        assert_eq!(
            rows(&read(&doc).expect("readable")),
            [vec!["外", "内1\n内2\n后"]]
        );
    }

    #[test]
    fn fields_keep_only_their_result() {
        let doc = Synth::default()
            .para(
                "链接\u{13} HYPERLINK \"http://x\" \u{14}示例\u{15}。",
                0x0D,
                &[],
            )
            .para(
                "\u{13} IF \u{13} PAGE \u{14}1\u{15} = 1 \"是\" \u{14}是\u{15}结果",
                0x0D,
                &[],
            )
            .para("\u{13} FORMCHECKBOX \u{1}\u{15}无结果", 0x0D, &[])
            .para("坏\u{15}标\u{14}记\u{13}", 0x07, &[])
            .para("未闭合\u{13} 指令", 0x07, &[])
            .para("之后", 0x0D, &[])
            .build();
        let got = texts(&read(&doc).expect("readable"));
        assert_eq!(got[..3], ["链接示例。", "是结果", "无结果"]);
        // Unpaired marks are dropped, and a cell end closes the open field: text after it shows.
        assert!(got.iter().any(|t| t.contains("坏标记")), "{got:?}");
        assert_eq!(got.last().map(String::as_str), Some("之后"));
    }

    #[test]
    fn special_characters() {
        let doc = Synth::default()
            .para(
                "a\u{0B}b\u{1E}c\u{1F}d\u{A0}e\u{1}\u{8}\u{5}f\tg\u{0C}",
                0x0D,
                &[],
            )
            .para("  空白  ", 0x0D, &[])
            .build();
        assert_eq!(
            texts(&read(&doc).expect("readable")),
            ["a\nb-cd ef\tg", "空白"]
        );
    }

    #[test]
    fn compressed_text_uses_the_cp1252_punctuation() {
        let mut synth = Synth::default().para("\u{93}quoted\u{94} \u{85}", 0x0D, &[]);
        synth.compressed = true;
        assert_eq!(
            texts(&read(&synth.build()).expect("readable")),
            ["“quoted” …"]
        );
    }

    #[test]
    fn symbol_checkboxes_and_deleted_revisions() {
        let sym = |code: u16| sprm(SPRM_C_SYMBOL, &[le16(0), le16(code)].concat());
        let mut synth = Synth::default().para("(先锋(学思\u{F052}旧新", 0x0D, &[]);
        synth.fonts = vec!["Wingdings 2"];
        synth.runs = vec![
            (1, sym(0xF052)),
            (2, vec![]),
            (1, sym(0xF0A3)),
            (2, vec![]),
            (1, sprm(SPRM_C_RG_FTC0, &le16(0))),
            (1, sprm(SPRM_C_F_RMARK_DEL, &[1])),
            (2, vec![]),
        ];
        assert_eq!(
            texts(&read(&synth.build()).expect("readable")),
            ["☑先锋□学思☑新"]
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let synth = form_with_empty_cell();
        let with = |patch: &dyn Fn(&mut Vec<u8>)| {
            let (mut word, table) = synth.streams();
            patch(&mut word);
            read(&compound(&[("/WordDocument", &word), ("/1Table", &table)]))
        };
        assert!(matches!(
            with(&|w| put(w, 10, &le16(0x0300))),
            Err(DocError::Encrypted)
        ));
        assert!(matches!(
            with(&|w| put(w, 2, &le16(104))),
            Err(DocError::Word6)
        ));
        assert!(matches!(
            with(&|w| put(w, 0, &le16(0xA5DC))),
            Err(DocError::Word6)
        ));
        assert!(matches!(
            with(&|w| put(w, 10, &le16(0))),
            Err(DocError::Damaged(_))
        )); // no 0Table
        let package = compound(&[("/EncryptionInfo", b"x"), ("/EncryptedPackage", b"y")]);
        assert!(matches!(read(&package), Err(DocError::Encrypted)));
        assert!(matches!(
            read(&compound(&[("/Workbook", b"x")])),
            Err(DocError::NotWord)
        ));
        for other in [
            &b"<?xml version=\"1.0\"?><w:wordDocument/>"[..],
            b"{\\rtf1}",
            b"PK\x03\x04",
            b"",
            b"<html>",
        ] {
            assert!(matches!(read(other), Err(DocError::NotWord)));
        }
        let limits = |max_bytes, max_chars, max_cells| DocLimits {
            max_bytes,
            max_chars,
            max_cells,
        };
        let bytes = synth.build();
        assert!(matches!(
            read_doc(&bytes, &limits(1000, 100, 100)),
            Err(DocError::TooLarge(_))
        ));
        assert!(matches!(
            read_doc(&bytes, &limits(1 << 20, 10, 100)),
            Err(DocError::TooLarge(_))
        ));
        assert!(matches!(
            read_doc(&bytes, &limits(1 << 20, 100, 3)),
            Err(DocError::TooLarge(_))
        ));
        assert!(read_doc(&bytes, &limits(1 << 20, 100, 6)).is_ok());
        for e in [
            DocError::Encrypted,
            DocError::Word6,
            DocError::NotWord,
            damaged("x"),
            DocError::TooLarge("y".into()),
        ] {
            assert!(e.to_string().contains("请"), "{e}");
        }
    }

    /// Hostile structures: each must end in an error (or harmless text) at once.
    #[test]
    fn hostile_structures_are_errors_not_panics() {
        let synth = form_with_empty_cell();
        let (word, table) = synth.streams();
        let run = |word: &[u8], table: &[u8]| {
            let start = Instant::now();
            let result = read(&compound(&[("/WordDocument", word), ("/1Table", table)]));
            assert!(start.elapsed() < Duration::from_secs(2));
            result
        };
        // Truncated FIB.
        assert!(matches!(
            run(&word[..40], &table),
            Err(DocError::Damaged(_))
        ));
        assert!(matches!(
            run(&word[..200], &table),
            Err(DocError::Damaged(_))
        ));
        // Huge lcb for the CLX, and an fc past the end.
        let mut w = word.clone();
        put(&mut w, pair_at(33) + 4, &0xFFFF_FFF0u32.to_le_bytes());
        assert!(matches!(run(&w, &table), Err(DocError::Damaged(_))));
        let mut w = word.clone();
        put(&mut w, pair_at(33), &0xFFFF_FF00u32.to_le_bytes());
        assert!(matches!(run(&w, &table), Err(DocError::Damaged(_))));
        // Piece table: CPs running backwards; a piece of 4 billion characters; text past the
        // end of the stream; a Prc whose size runs past the CLX.
        let mut t = table.clone();
        put(&mut t, 5, &50u32.to_le_bytes());
        assert!(matches!(run(&word, &t), Err(DocError::Damaged(_))));
        let (mut w, mut t) = (word.clone(), table.clone());
        put(&mut t, 9, &u32::MAX.to_le_bytes());
        put(&mut w, 76, &u32::MAX.to_le_bytes());
        assert!(matches!(run(&w, &t), Err(DocError::TooLarge(_))));
        let mut t = table.clone();
        put(&mut t, 15, &0x3FFF_0000u32.to_le_bytes());
        assert!(matches!(run(&word, &t), Err(DocError::Damaged(_))));
        let mut t = table.clone();
        put(&mut t, 0, &[1, 0xFF, 0x7F]);
        assert!(matches!(run(&word, &t), Err(DocError::Damaged(_))));
        // Bin tables: every entry pointing at one page, pages past the stream, a page with
        // crun 255 and unsorted runs; the text is still read (by the 0x07 heuristic).
        for page in [PAPX_PAGE as u32, 0x3F_FFFF, 0] {
            let mut t = table.clone();
            let bte_at = t.len();
            let n = 1000u32;
            t.extend((0..=n).flat_map(|i| (TEXT_AT as u32 + (i % 7)).to_le_bytes()));
            t.extend((0..n).flat_map(|_| page.to_le_bytes()));
            let mut w = word.clone();
            put(&mut w, pair_at(13), &(bte_at as u32).to_le_bytes());
            put(
                &mut w,
                pair_at(13) + 4,
                &((t.len() - bte_at) as u32).to_le_bytes(),
            );
            put(&mut w, PAPX_PAGE * 512 + 511, &[255]);
            put(&mut w, PAPX_PAGE * 512, &u32::MAX.to_le_bytes());
            let doc = run(&w, &t).expect("readable");
            assert!(doc.plain_text().contains("138 0000 0000"));
        }
    }

    /// Flips bytes of real and synthetic files at random: any outcome but a panic or a hang.
    #[test]
    fn mutated_files_never_panic() {
        let mut inputs = vec![form_with_empty_cell().build()];
        if let Some(shared) = shared() {
            inputs.extend(
                files_with_ext(&shared.join("samples/templates"), "doc")
                    .iter()
                    .filter_map(|p| std::fs::read(p).ok()),
            );
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for input in &inputs {
            for round in 0..300 {
                let mut bytes = input.clone();
                let len = bytes.len() as u64;
                for _ in 0..1 + next() % 8 {
                    let at = (next() % len) as usize;
                    bytes[at] = next() as u8;
                }
                if round % 10 == 0 {
                    bytes.truncate((next() % len) as usize);
                }
                let start = Instant::now();
                let result = std::panic::catch_unwind(|| read(&bytes));
                assert!(result.is_ok(), "round {round}: panicked");
                assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "round {round}: slow"
                );
            }
        }
    }

    /// When LibreOffice is installed: writes a .doc from a flat ODT (merges, a nested table,
    /// Wingdings check boxes, special characters, a hyperlink field) and from every sample
    /// .docx form, and reads them back. Skipped quietly without `soffice`.
    #[test]
    fn libreoffice_written_files() {
        let has_soffice = std::process::Command::new("soffice")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_soffice {
            eprintln!("soffice not found: LibreOffice round trip skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("shenbao-doc-{}", std::process::id()));
        let out = dir.join("out");
        std::fs::create_dir_all(&out).expect("temp dir");
        std::fs::write(dir.join("gen.fodt"), GENERATED_FODT).expect("write fodt");
        let mut inputs = vec![dir.join("gen.fodt")];
        let mut forms = Vec::new();
        if let Some(shared) = shared() {
            let mut cases: Vec<PathBuf> = std::fs::read_dir(shared.join("samples"))
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            cases.sort();
            for case in cases {
                for (i, docx) in files_with_ext(&case.join("files"), "docx")
                    .into_iter()
                    .enumerate()
                {
                    let name = format!(
                        "{}-{i}.docx",
                        case.file_name().unwrap_or_default().to_string_lossy()
                    );
                    std::fs::copy(&docx, dir.join(&name)).expect("copy");
                    inputs.push(dir.join(&name));
                    forms.push((
                        out.join(name.replace(".docx", ".doc")),
                        case.join("expected.json"),
                    ));
                }
            }
        }
        // A converter that fails or hangs (no fonts, a locked profile) is the machine's
        // problem, not the reader's: skip, but never wait more than two minutes.
        let child = std::process::Command::new("soffice")
            .arg(format!(
                "-env:UserInstallation=file://{}/profile",
                dir.display()
            ))
            .args(["--headless", "--convert-to", "doc", "--outdir"])
            .arg(&out)
            .args(&inputs)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else { return };
        let deadline = Instant::now() + Duration::from_secs(120);
        let converted = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
            }
        };
        if !converted || !out.join("gen.doc").is_file() {
            eprintln!("soffice could not convert: LibreOffice round trip skipped");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        let generated =
            read(&std::fs::read(out.join("gen.doc")).unwrap_or_default()).expect("readable");
        assert_eq!(
            texts(&generated),
            [
                "标题",
                r#"[["项目名称", "合并的值"], ["经费预算", "", "3,000元", "第一段\n第二段\n换行"], ["", "☑选中□未选☑W1", "a bc-d", "内1\n内2"]]"#,
                "链接 示例网站 页码 1"
            ]
        );
        let table = tables(&generated)[0];
        assert_eq!(table.rows[0][1].col_span, 3);
        assert!(table.rows[2][0].v_merged);
        for (doc, expected) in forms {
            let json = std::fs::read_to_string(expected).unwrap_or_default();
            let expected: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            let form = read(&std::fs::read(&doc).unwrap_or_default()).expect("readable");
            assert_fields(&form, &expected, &doc.display().to_string());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    const GENERATED_FODT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.text">
 <office:font-face-decls>
  <style:font-face style:name="Wingdings 2" svg:font-family="'Wingdings 2'" style:font-charset="x-symbol"/>
  <style:font-face style:name="Wingdings" svg:font-family="Wingdings" style:font-charset="x-symbol"/>
 </office:font-face-decls>
 <office:automatic-styles>
  <style:style style:name="W2" style:family="text"><style:text-properties style:font-name="Wingdings 2"/></style:style>
  <style:style style:name="W1" style:family="text"><style:text-properties style:font-name="Wingdings"/></style:style>
 </office:automatic-styles>
 <office:body><office:text>
  <text:p>标题</text:p>
  <table:table table:name="T1">
   <table:table-column table:number-columns-repeated="4"/>
   <table:table-row>
    <table:table-cell><text:p>项目名称</text:p></table:table-cell>
    <table:table-cell table:number-columns-spanned="3"><text:p>合并的值</text:p></table:table-cell>
    <table:covered-table-cell/><table:covered-table-cell/>
   </table:table-row>
   <table:table-row>
    <table:table-cell table:number-rows-spanned="2"><text:p>经费预算</text:p></table:table-cell>
    <table:table-cell><text:p/></table:table-cell>
    <table:table-cell><text:p>3,000元</text:p></table:table-cell>
    <table:table-cell><text:p>第一段</text:p><text:p>第二段<text:line-break/>换行</text:p></table:table-cell>
   </table:table-row>
   <table:table-row>
    <table:covered-table-cell/>
    <table:table-cell><text:p><text:span text:style-name="W2">&#xF052;</text:span>选中<text:span text:style-name="W2">&#xF0A3;</text:span>未选<text:span text:style-name="W1">&#xF0FE;</text:span>W1</text:p></table:table-cell>
    <table:table-cell><text:p>a&#xA0;b&#xAD;c&#x2011;d</text:p></table:table-cell>
    <table:table-cell>
     <table:table table:name="Inner"><table:table-column table:number-columns-repeated="2"/>
      <table:table-row><table:table-cell><text:p>内1</text:p></table:table-cell><table:table-cell><text:p>内2</text:p></table:table-cell></table:table-row>
     </table:table>
    </table:table-cell>
   </table:table-row>
  </table:table>
  <text:p>链接 <text:a xlink:type="simple" xlink:href="http://example.com/">示例网站</text:a> 页码 <text:page-number text:select-page="current">1</text:page-number></text:p>
 </office:text></office:body>
</office:document>
"#;
}
