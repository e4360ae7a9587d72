//! shenbao (申报): turns an email application campaign into a running system.
//!
//! The folders follow a mail's path; see the README's 代码结构 section. Pure folders (no
//! tokio, no sqlx, no file system) are [`message`], [`attach`], [`extract`], [`campaign`] and
//! [`notify`], plus [`schedule::plan`], [`send::limit`], [`pipeline::decide`] and the board's
//! [`web::auth`], [`web::board`] and [`web::chart`];
//! `src/architecture.rs` checks it.

// Shared by every stage: the application context, the one clock, configuration, file modes,
// the jobs' leases among several daemons, the stop signal, text normalisation, TLS.
pub mod app;
pub mod clock;
pub mod config;
pub mod duty;
pub mod fsmode;
pub mod shutdown;
pub mod textnorm;
pub mod tls;

// The path of a mail, in order (a blank line between them keeps rustfmt from sorting them).
/// 1. The IMAP connection shared by intake and the sender.
pub mod imap;

/// 2. Watching the mailbox: fetch, store raw first, hand to the pipeline.
pub mod intake;

/// 3. Raw RFC 822 → what the mail says (pure).
pub mod message;

/// 4. Attachment formats, archives and roles (pure).
pub mod attach;

/// 5. Word and Excel attachments → fields (pure).
pub mod extract;

/// 6. Roster, subject, replies, rules, closure and review (pure).
pub mod campaign;

/// 7. Decide and record, in one transaction per mail.
pub mod pipeline;

/// 8. The mails shenbao writes (pure).
pub mod notify;

/// 9. Reminders, digests and results, when they are due.
pub mod schedule;

/// 10. The durable outbox, sent over SMTP.
pub mod send;

/// 11. The only place that speaks SQL, and the blobs.
pub mod store;

/// 12. JSON, CSV, xlsx and the reviewers' materials.
pub mod export;

// Running it.
/// The daemon and its health.
pub mod daemon;

/// The board (看板): the campaign in a browser.
pub mod web;

/// The command line, one function per command.
pub mod cli;

#[cfg(test)]
mod architecture;
