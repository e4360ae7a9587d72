//! Differential: a raw message read the streaming way the daemon reads a large stored mail
//! (`message::slim::slim`, then `message::understand_slimmed`) must, whenever that way answers,
//! give exactly what `message::understand` gives on the whole mail. The first byte picks the
//! run length above which base64 lines are taken out.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: {
        common::install_panic_policy();
    },
    |data: &[u8]| {
        common::run_slim(data);
    }
);
