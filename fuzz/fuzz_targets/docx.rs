//! The .docx and Word 2003 XML reader as `extract::extract` calls it (`read_word` with
//! `Format::Docx` and `Format::WordXml`, default limits), then the form fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shenbao::attach::Format;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: { common::install_panic_policy(); },
    |data: &[u8]| common::run_word(data, &[Format::Docx, Format::WordXml])
);
