//! The .xls/.xlsx reader as `extract::extract` calls it for a summary attachment:
//! `read_workbook` with the default limits (its zip and xls pre-checks included), then
//! `read_summary`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: { common::install_panic_policy(); },
    |data: &[u8]| common::run_sheet(data)
);
