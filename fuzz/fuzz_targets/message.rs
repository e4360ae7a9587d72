//! One raw RFC 5322 message through exactly what `Pipeline::process` runs on the blob the
//! mailbox stored: `message::understand`, `extract::extract` on its attachments, then the
//! subject grammar and roster matching of the classification.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: {
        common::install_panic_policy();
        common::grammar();
        common::roster();
    },
    |data: &[u8]| common::run_message(data)
);
