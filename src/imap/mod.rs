//! The IMAP client that the intake and the sender (which checks that our own copies arrived)
//! share: connecting with the configured TLS and authentication ([`conn`]), and folder names
//! in modified UTF-7 ([`mutf7`]).

pub mod conn;
pub mod mutf7;
