//! What shenbao sends on its own initiative: reminders before deadlines, digests for
//! reviewers and the review results.
//!
//! [`plan`] is the pure part (what is due at `now`, re-exported here); [`remind`] is the task
//! that runs it against the database and the outbox, and [`results`] imports the reviewers'
//! decisions and queues the result mails.

pub mod plan;
pub mod remind;
pub mod results;

pub use plan::*;
