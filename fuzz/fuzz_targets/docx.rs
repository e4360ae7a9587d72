//! The .docx and Word 2003 XML reader as `extract::extract` calls it (`read_word` with
//! `Format::Docx` and `Format::WordXml`, default limits), then the form fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shenbao::attach::Format;
use shenbao::extract::{form, read_word};

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: { common::install_panic_policy(); },
    |data: &[u8]| {
        for format in [Format::Docx, Format::WordXml] {
            if let Ok(doc) = read_word(data, format) {
                let _ = form::form_fields(&doc, &form::FormConfig { sections: common::sections() });
            }
        }
    }
);
