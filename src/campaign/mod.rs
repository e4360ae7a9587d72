//! The campaign's own knowledge, applied to what a mail says: which campaign it belongs to
//! ([`calendar`]), which branch it is from ([`roster`], [`subject`]), whether it answers one of
//! our mails ([`conversation`]), what is wrong with an application ([`rules`]), what a funded
//! project still owes ([`closure`]) and what the reviewers decided ([`review`]).
//!
//! Pure: nothing here touches the network, the database, the file system or the clock; the
//! callers pass `now` and the facts they read. `src/architecture.rs` checks it.

pub mod calendar;
pub mod closure;
pub mod conversation;
pub mod review;
pub mod roster;
pub mod rules;
pub mod subject;
