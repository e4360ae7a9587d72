//! The integration tests as one test binary (`cargo test --test e2e`), one module per area.
//!
//! Why one binary: every file under `tests/` used to be a test binary of its own, and each
//! one links the whole of shenbao and its dependency tree (tokio, sqlx, rustls, lettre,
//! calamine …). On a 2-core machine those links, not the tests' own code, were most of an
//! incremental `cargo test` build: after a change in `src/` all of them were linked again.
//! One binary is linked once.
//!
//! What is here:
//! - the end-to-end tests through the real Dovecot + Postfix of `scripts/mailstack.sh`
//!   (`samples`, `problems`, `conversation`, …); each test has its own intake mailbox
//!   (`intake1` … `intake40`) and Message-ID domain, so they run in parallel in this process
//!   as they did in separate ones; the tests of `secure` share `intake28` and take turns;
//! - the tests that drive the binary or the scripts without mail servers (`cli`, `install`);
//! - the pure and fast ones (`extraction_table`, `office_corpus`, `fuzz_regressions`): they
//!   only call the library, so they cost this binary a few seconds of compiling once and
//!   nothing at link time, where each of them alone cost a full link. `cargo test --test e2e
//!   extraction_table` runs one area (the filter is the module path).
//!
//! What is not, and why:
//! - `tests/faults.rs`: it stops and restarts mail servers, so it runs on a private mail stack
//!   of its own, and a process chooses its stack once ([`common::use_private_stack`]);
//! - `tests/ingest_memory.rs`: it measures a child's peak memory, which Linux starts at the
//!   parent's high-water mark; the other tests running in threads of this process would
//!   inflate it.
//!
//! Shared setup (the mail stack, a daemon with its own config and data directory, IMAP
//! helpers, the sample files) is in [`common`], which `tests/faults.rs` and
//! `benches/pipeline.rs` include too.
//!
//! The database: SQLite in each env's data directory by default; with
//! `SHENBAO_TEST_BACKEND=postgres` each env gets a fresh database on the PostgreSQL server of
//! `SHENBAO_TEST_POSTGRES` (named in its config's `[database]`). The tests read it through
//! `TestEnv::db()`, an `sqlx::AnyPool`, so their SQL is written for both: `$1` placeholders,
//! flags compared in SQL (`= TRUE`) or read as `CASE WHEN flag THEN 1 ELSE 0 END`, integers
//! as i64, nothing SQLite-only.

mod common;

mod board;
mod board_guard;
mod browser;
mod campaigns;
mod cli;
mod closure;
mod conversation;
mod dbcopy;
mod detail;
mod extraction_table;
mod fuzz_regressions;
mod install;
mod materials;
mod materials_board;
mod office_corpus;
mod ops;
mod problems;
mod remind;
mod review;
mod review_board;
mod robust;
mod samples;
mod schedule;
mod secure;
mod semester;
mod send;
mod staff_board;
mod tls;
mod web;
mod webdriver;
