//! Every mail shenbao writes, as text: the acknowledgement and its views ([`ack`]), the
//! reminders and digests ([`reminder`], re-exported here), and the templates and mail
//! assembly they all go through ([`compose`]), with `check-config`'s test of staff's
//! templates ([`template_check`]).
//!
//! Pure: no clock, no database, no network, no files. The callers gather the facts into plain
//! views; the templates (built in, or staff's files read by [`crate::config::load_templates`])
//! turn them into subjects and bodies. `src/architecture.rs` checks it.

pub mod ack;
pub mod compose;
pub mod reminder;
pub mod template_check;

pub use reminder::*;
