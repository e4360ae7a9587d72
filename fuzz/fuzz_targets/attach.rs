//! One attachment's bytes through what `message::understand` does with every attached file
//! (`sniff_named`, `role`, `content_note`, and for a zip or winmail.dat `list_zip`/`list_tnef`
//! with the default limits, then the same for each entry), followed by `extract::extract`,
//! which reads the Word form or Excel summary among them (zip entries included).
//!
//! Input layout: the first byte picks the file name the sender gave (the name decides the
//! role and breaks ties in sniffing), the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shenbao::attach::{self, Format, ZipLimits};
use shenbao::message::Attachment;

#[path = "common.rs"]
mod common;

/// Names as branches send them: the form, the summary, a zip, Outlook's winmail.dat, and
/// names that do not match the content.
const NAMES: &[&str] = &[
    "对标争先建设项目申请表.doc",
    "对标争先建设项目申请表.docx",
    "申报汇总表.xls",
    "申报汇总表.xlsx",
    "申报材料.zip",
    "winmail.dat",
    "项目申请表.wps",
    "汇总表.et",
    "附件1.doc",
    "附件",
];

fn describe(filename: String, content_type: &str, bytes: Vec<u8>, format: Format) -> Attachment {
    Attachment {
        safe_name: attach::safe_file_name(&filename),
        declared_format: attach::declared_format(&filename),
        role: attach::role(&filename, format),
        filename,
        content_type: content_type.to_string(),
        size: bytes.len(),
        // The daemon stores a SHA-256 here; the readers only copy it into error lists, so a
        // fixed stand-in keeps the target's time on the parsers.
        sha256: "0".repeat(64),
        bytes,
        format,
        entries: Vec::new(),
        error: None,
    }
}

fuzz_target!(
    init: { common::install_panic_policy(); },
    |data: &[u8]| {
        let Some((&pick, bytes)) = data.split_first() else {
            return;
        };
        let filename = NAMES[usize::from(pick) % NAMES.len()].to_string();
        // Mirrors `message::build_attachment`.
        let format = attach::sniff_named(bytes, &filename);
        let mut a = describe(filename, "application/octet-stream", bytes.to_vec(), format);
        if matches!(format, Format::Zip | Format::Tnef) {
            let limits = ZipLimits::default();
            let listed = if format == Format::Zip {
                attach::list_zip(&a.bytes, &limits)
            } else {
                attach::list_tnef(&a.bytes, &limits)
            };
            match listed {
                Ok(entries) => {
                    for entry in entries {
                        let format = attach::sniff_named(&entry.bytes, &entry.filename);
                        let mut child =
                            describe(entry.filename, "application/octet-stream", entry.bytes, format);
                        child.error = attach::content_note(&child.bytes, &child.filename);
                        a.entries.push(child);
                    }
                }
                Err(e) => a.error = Some(e.to_string()),
            }
        } else {
            a.error = attach::content_note(&a.bytes, &a.filename);
        }
        let _ = shenbao::extract::extract(std::slice::from_ref(&a), common::sections());
    }
);
