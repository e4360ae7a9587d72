//! The Word 97–2003 reader as `extract::extract` calls it for a form attachment sniffed as
//! .doc (`read_word(bytes, Format::Doc)` with the default limits), then the form fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shenbao::attach::Format;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: { common::install_panic_policy(); },
    |data: &[u8]| common::run_word(data, &[Format::Doc])
);
