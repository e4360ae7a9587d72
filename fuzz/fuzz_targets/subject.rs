//! The subject grammar and branch matching on any text, as the pipeline runs them on the
//! decoded Subject header: `grammar.parse(subject)`, then `roster.match_branch(branch)`.
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
    |data: &[u8]| common::run_subject(data)
);
