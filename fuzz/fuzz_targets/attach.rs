//! One attachment's bytes through `message::attachment`, the path `message::understand` takes
//! with every attached file (`sniff_named`, `role`, `content_note`, and for a zip or winmail.dat
//! `list_zip`/`list_tnef` with a message's budget, then the same for each entry), followed by
//! `extract::extract`, which reads the Word form or Excel summary among them (zip entries
//! included).
//!
//! Input layout: the first byte picks the file name the sender gave (the name decides the
//! role and breaks ties in sniffing), the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(
    init: { common::install_panic_policy(); },
    |data: &[u8]| common::run_attach(data)
);
