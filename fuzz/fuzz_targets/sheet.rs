//! The .xls/.xlsx reader as `extract::extract` calls it for a summary attachment:
//! `read_workbook` with the default limits (its zip and xls pre-checks included), then
//! `read_summary`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shenbao::extract::sheet;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: { common::install_panic_policy(); },
    |data: &[u8]| {
        if let Ok(wb) = sheet::read_workbook(data, &sheet::SheetLimits::default()) {
            let _ = sheet::read_summary(&wb, &sheet::SummaryConfig { sections: common::sections() });
        }
    }
);
