//! Reading the attachments: the Word 项目申请表 and the Excel 申报汇总表 → [`model::Fields`].
//!
//! Readers sniff content, never the extension (a `.doc` that is really a .docx or Word 2003 XML
//! is still read). Each reader is pure, bounded (limits on sizes, entries, cells) and returns an
//! error with a Chinese reason instead of panicking; this module picks the files to read, runs
//! the readers and says which source the fields come from.
//!
//! Pure: no runtime, no database, no files, no network, no clock; bytes in, values out.
//! `src/architecture.rs` checks it.

pub mod amount;
pub mod doc;
pub mod docx;
pub mod field;
pub mod form;
pub mod model;
pub mod sheet;

use crate::attach::Attachment;
use crate::attach::{Format, Role};
use model::Fields;
use serde::Serialize;

/// Everything read from one message's attachments.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Extracted {
    /// Fields of the first readable Word form.
    pub form: Option<Fields>,
    /// Fields of the first data row of the first readable summary sheet.
    pub summary: Option<Fields>,
    /// Why a Word form that was attached could not be read (`None` when one was read).
    pub form_error: Option<String>,
    pub summary_error: Option<String>,
    /// Per file (by sha256): why it could not be read, for the attachments table.
    pub read_errors: Vec<(String, String)>,
}

impl Extracted {
    /// The fields that count: the form's, or the summary's when the form is missing or unreadable.
    pub fn chosen(&self) -> Option<(&Fields, &'static str)> {
        match (&self.form, &self.summary) {
            (Some(f), _) => Some((f, "form")),
            (None, Some(s)) => Some((s, "summary")),
            (None, None) => None,
        }
    }
}

/// Reads a Word document of any supported format.
pub fn read_word(bytes: &[u8], format: Format) -> Result<model::Document, String> {
    match format {
        Format::Doc => doc::read_doc(bytes, &doc::DocLimits::default()).map_err(|e| e.to_string()),
        Format::Docx => {
            docx::read_docx(bytes, &docx::DocxLimits::default()).map_err(|e| e.to_string())
        }
        Format::WordXml => {
            docx::read_word_xml(bytes, &docx::DocxLimits::default()).map_err(|e| e.to_string())
        }
        _ => Err("不是 Word 文件".to_string()),
    }
}

/// Whether [`extract`] may read this file as a Word form. A file named as the form whose bytes
/// we did not recognise still goes to the reader: it either reads it after all or says
/// precisely why not (old format, HTML saved as .doc …), which is what the branch needs to hear.
fn reads_word(a: &Attachment) -> bool {
    a.format.is_word() || (a.role == Role::Form && a.format == Format::Other)
}

/// [`reads_word`] for the Excel summary.
fn reads_sheet(a: &Attachment) -> bool {
    a.format.is_spreadsheet() || (a.role == Role::Summary && a.format == Format::Other)
}

/// Whether anything reads this file's bytes once it is understood: [`extract`] (the form and
/// the summary) and the closure check (Word titles). The daemon lets go of every other file's
/// bytes as soon as they are stored.
pub fn reads(a: &Attachment) -> bool {
    reads_word(a) || reads_sheet(a)
}

/// Reads the Word forms and Excel summaries among `attachments` (and zip entries).
pub fn extract(attachments: &[Attachment], sections: &[String]) -> Extracted {
    let mut out = Extracted::default();
    let files = attachments
        .iter()
        .flat_map(|a| std::iter::once(a).chain(a.entries.iter()));
    for a in files {
        let word = reads_word(a);
        let spreadsheet = reads_sheet(a);
        if a.role == Role::Form && word && out.form.is_none() {
            match read_word(&a.bytes, a.format) {
                Ok(doc) => {
                    out.form = Some(form::form_fields(&doc, &form::FormConfig { sections }));
                    out.form_error = None;
                }
                Err(e) => {
                    out.read_errors.push((a.sha256.clone(), e.clone()));
                    out.form_error.get_or_insert(format!("{}：{e}", a.filename));
                }
            }
        } else if a.role == Role::Summary && spreadsheet && out.summary.is_none() {
            let read = sheet::read_workbook(&a.bytes, &sheet::SheetLimits::default())
                .map_err(|e| e.to_string());
            match read.and_then(|wb| {
                sheet::read_summary(&wb, &sheet::SummaryConfig { sections })
                    .ok_or_else(|| "找不到表头（学院、支部名称、项目名称……）".to_string())
            }) {
                Ok(summary) => match summary.rows.into_iter().next() {
                    Some(row) => {
                        out.summary = Some(row.fields);
                        out.summary_error = None;
                    }
                    None => {
                        let e = "汇总表只有表头，没有填写数据行".to_string();
                        out.read_errors.push((a.sha256.clone(), e.clone()));
                        out.summary_error
                            .get_or_insert(format!("{}：{e}", a.filename));
                    }
                },
                Err(e) => {
                    out.read_errors.push((a.sha256.clone(), e.clone()));
                    out.summary_error
                        .get_or_insert(format!("{}：{e}", a.filename));
                }
            }
        }
    }
    out
}
