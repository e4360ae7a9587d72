//! What the readers produce and the extractors consume: a Word document reduced to paragraphs
//! and tables, a workbook reduced to sheets of typed cells, and the fields of an application.
//!
//! Every reader (legacy .doc, .docx, Word 2003 XML, .xls, .xlsx) targets these few types, so
//! form and summary extraction is written once and tested on plain values.

use serde::Serialize;

/// A Word document as a sequence of blocks in reading order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Document {
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Block {
    Paragraph(String),
    Table(Table),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Table {
    pub rows: Vec<Vec<Cell>>,
}

/// One table cell. Horizontally merged cells are one `Cell` with `col_span > 1`; a vertically
/// merged cell appears in its first row with the text and in the rows below as a `Cell` with
/// `v_merged = true` and empty text, so column positions stay aligned.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cell {
    pub text: String,
    pub col_span: u32,
    pub v_merged: bool,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            col_span: 1,
            v_merged: false,
        }
    }
}

impl Document {
    /// All text, paragraphs and cells, one per line: for keyword searches and debugging.
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            match b {
                Block::Paragraph(p) => {
                    out.push_str(p);
                    out.push('\n');
                }
                Block::Table(t) => {
                    for row in &t.rows {
                        let cells: Vec<&str> = row.iter().map(|c| c.text.as_str()).collect();
                        out.push_str(&cells.join("\t"));
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

/// A spreadsheet value as the file stores it (formulas by their cached value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Value {
    Empty,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A date or date-time, ISO 8601 (`2025-09-27` or `2025-09-27T10:00:00`).
    Date(String),
    /// An error value such as `#DIV/0!`.
    Error(String),
}

impl Value {
    /// The value as a person would read it in the cell.
    pub fn to_text(&self) -> String {
        match self {
            Value::Empty => String::new(),
            Value::Text(s) | Value::Date(s) | Value::Error(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sheet {
    pub name: String,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Workbook {
    pub sheets: Vec<Sheet>,
}

/// An amount of money as written, and what it means.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Amount {
    /// A single amount in yuan.
    Yuan { yuan: f64 },
    /// Written, but not a single amount (a range, 待定, two numbers …).
    Unparsed { reason: String },
}

/// The fields of one application, from the form or from a summary row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fields {
    pub college: Option<String>,
    pub branch: Option<String>,
    pub project_name: Option<String>,
    /// One of the configured sections when recognised (normalised), else `None`.
    pub section: Option<String>,
    pub section_as_written: Option<String>,
    pub leader: Option<String>,
    /// As written (`书记`, `支部副书记`, `组织委员` …).
    pub leader_role: Option<String>,
    /// Digits only.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub advisor: Option<String>,
    pub budget_as_written: Option<String>,
    pub budget: Option<Amount>,
}

impl Fields {
    pub fn budget_yuan(&self) -> Option<f64> {
        match &self.budget {
            Some(Amount::Yuan { yuan }) => Some(*yuan),
            _ => None,
        }
    }
}
