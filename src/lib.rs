//! shenbao (申报): turns an email application campaign into a running system.
//!
//! The crate is a pure core wrapped in an I/O shell, and its modules follow the data's path:
//!
//! * pure core (no I/O, easy to test and fuzz): [`message`] (raw RFC 822 → what the mail says),
//!   [`attach`] (attachment formats and roles), [`subject`] (the subject grammar), [`roster`]
//!   (branch matching), [`conversation`] (replies, resends and senders), [`extract`] (Word and Excel attachments → fields), [`rules`] (the
//!   campaign's rules → problem codes), [`schedule`] (when reminders and digests are due), [`sendlimit`] (the SMTP
//!   account's caps),
//!   [`compose`] (the mails shenbao writes);
//! * I/O shell: [`intake`] (IMAP), [`store`] (SQLite + content-addressed blobs), [`pipeline`]
//!   (store → understand → record → queue), [`send`] (the outbox sender), [`correct`] (staff corrections: reprocess, assign, resolve),
//!   [`daemon`] and [`cli`].

pub mod attach;
pub mod cli;
pub mod cli_zh;
pub mod clock;
pub mod closure;
pub mod compose;
pub mod config;
pub mod conversation;
pub mod correct;
pub mod daemon;
pub mod export;
pub mod export_xlsx;
pub mod extract;
pub mod fsmode;
pub mod health;
pub mod intake;
pub mod materials;
pub mod message;
pub mod notify;
pub mod pipeline;
pub mod remind;
pub mod results;
pub mod review;
pub mod roster;
pub mod rules;
pub mod schedule;
pub mod send;
pub mod sendlimit;
pub mod smtp;
pub mod store;
pub mod subject;
pub mod template_check;
pub mod textnorm;
pub mod tls;
