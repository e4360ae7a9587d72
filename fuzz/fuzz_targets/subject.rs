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
    |data: &[u8]| {
        let subject = String::from_utf8_lossy(data);
        let parsed = common::grammar().parse(&subject);
        if let Some(branch) = parsed.branch.as_deref() {
            let _ = common::roster().match_branch(branch);
        }
        for d in &parsed.deviations {
            let _ = (d.code(), d.describe_zh());
        }
        // The help mail quotes the exact subject for the branch text the sender wrote.
        let _ = common::grammar().application_subject_for(&subject);
    }
);
