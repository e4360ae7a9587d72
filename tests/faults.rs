//! Fault injection through the real servers: kill -9 in the middle of a large batch, the SMTP
//! server down (dead letters and `shenbao outbox retry`), the IMAP server restarted while the
//! daemon idles and while it fetches, the intake folder deleted and recreated (new
//! UIDVALIDITY), and a Sieve vacation auto-responder that must not start a mail loop.
//!
//! Every scenario counts what matters — mails lost, records doubled, acknowledgements doubled
//! in the recipients' mailboxes — prints the counts in one `faults:` line and asserts them.
//! The scenarios are one table ([`SCENARIOS`]: what is broken and when, how many mails must
//! come through exactly once, how long they may take) run by one driver ([`drive`]); each
//! row is a test of its own name.
//!
//! The scenarios stop and restart mail servers, so they run on a private mail stack of their
//! own (its own directory and ports, started fresh by this binary) and one at a time (a global
//! lock): nothing else, not even another test binary running at the same moment, is disturbed.
//! Each scenario has its own intake mailbox (intake13 … intake19) and Message-ID domain.
//! Run: `cargo test --test faults -- --nocapture` (`FAULTS_SEED=n` changes the kill points).
//!
//! Two scenarios run two daemons on one PostgreSQL database (issue 15: each job is done by the
//! daemon holding its lease, see `src/duty.rs`): the intake holder killed mid-batch, the other
//! must take over within the lease time; and a daemon killed while sends are in flight, the
//! other must neither lose nor double an acknowledgement. They need `SHENBAO_TEST_POSTGRES`
//! (a server whose role may create databases) and say they are skipped without it; their
//! databases are PostgreSQL whatever `SHENBAO_TEST_BACKEND` says.

#[path = "e2e/common.rs"]
mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FAULT_STACK: Stack = Stack {
    dir: Some("/tmp/shenbao-mailstack-faults"),
    imap: 3144,
    imaps: 3994,
    smtp: 2526,
};

/// One scenario at a time: they stop and restart the shared (private to this binary) servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    use_private_stack(FAULT_STACK);
    let guard = SERIAL.lock().await;
    // The stack is started (fresh) by the first scenario; a scenario that failed half-way may
    // have left a server stopped: bring both back.
    mailstack();
    mailstack_cmd("start-dovecot");
    mailstack_cmd("start-postfix");
    guard
}

/// Prints the daemon logs of a scenario when it fails (a panic unwinds through this).
struct LogsOnFailure(PathBuf);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("daemon-"))
            })
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "===== {} (last {} lines) =====\n{}",
                log.display(),
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// A small seeded PRNG (xorshift64*): the kill points are reproducible with FAULTS_SEED.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi) milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
}

/// A scenario's environment: the common test env plus the smtp keys the faults need; on a
/// PostgreSQL database when `postgres` (whatever `SHENBAO_TEST_BACKEND` says).
async fn fault_env(name: &str, user: &str, smtp_extra: &str, postgres: bool) -> TestEnv {
    let roster = sample_roster();
    let env = TestEnv::new(
        name,
        user,
        EnvOptions {
            roster: &roster,
            // Not late: the counts are about delivery, not about the deadline.
            deadline: "2099-12-31T23:59:59",
            max_per_sender: 1000,
            postgres,
            ..Default::default()
        },
    )
    .await;
    let text = std::fs::read_to_string(&env.config).expect("config");
    assert!(text.contains("confirm_grace = \"5s\"\n"));
    std::fs::write(
        &env.config,
        text.replace("confirm_grace = \"5s\"\n", &format!("{smtp_extra}\n")),
    )
    .expect("config");
    env
}

/// The scenario's database if the daemon has created it (its tables answer), else `None`.
/// Asked of the database itself, not of a file: on PostgreSQL there is none.
async fn db_if_ready(env: &TestEnv) -> Option<sqlx::AnyPool> {
    let pool = any_pool(&env.db_url()).await.ok()?;
    if scalar(&pool, "SELECT COUNT(*) FROM messages").await >= 0 {
        Some(pool)
    } else {
        pool.close().await;
        None
    }
}

/// Opens the scenario's database once the daemon has created it.
async fn db_when_ready(env: &TestEnv) -> sqlx::AnyPool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pool) = db_if_ready(env).await {
            return pool;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 30s waiting for the database to exist"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A small, valid application: the right subject for a roster branch, a distinct sender.
fn application(tag: &str, i: usize, branches: &[String], to: &str) -> (String, Vec<u8>) {
    let branch = &branches[i % branches.len()];
    let mid = format!("{tag}-{i}-{}@faults.example.edu.cn", std::process::id());
    let raw = format!(
        "From: =?UTF-8?B?{name}?= <sender{i}.{tag}@example.edu.cn>\r\nTo: <{to}>\r\nSubject: =?UTF-8?B?{subject}?=\r\nMessage-ID: <{mid}>\r\nDate: Sat, 20 Sep 2025 21:46:32 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n老师好，这是{branch}的申报（第 {i} 封），材料随后补交。\r\n",
        name = b64(&format!("书记{i}")),
        subject = b64(&format!("对标争先建设项目申报-{branch}")),
    );
    (mid, raw.into_bytes())
}

fn roster_branches() -> Vec<String> {
    sample_roster()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).map(str::to_string))
        .collect()
}

/// The same application with a large attachment (base64, wrapped at 76 columns).
fn with_attachment(mid: &str, to: &str, branch: &str, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size);
    let mut rng = Rng::new(7);
    while bytes.len() < size {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(size);
    let body = base64_lines(&bytes);
    format!(
        "From: <bigsender@example.edu.cn>\r\nTo: <{to}>\r\nSubject: =?UTF-8?B?{subject}?=\r\nMessage-ID: <{mid}>\r\nDate: Sat, 20 Sep 2025 21:46:32 +0800\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n--b0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n附件是活动照片。\r\n--b0\r\nContent-Type: image/jpeg; name=\"photo.jpg\"\r\nContent-Disposition: attachment; filename=\"photo.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}--b0--\r\n",
        subject = b64(&format!("对标争先建设项目申报-{branch}")),
    )
    .into_bytes()
}

/// APPENDs the mails in order; an APPEND the server refuses (e.g. Dovecot's "Mailbox was
/// deleted under us" just after the folder was recreated) is retried on a new connection.
async fn append_all(user: &str, folder: &str, mails: &[(String, Vec<u8>)]) {
    let mut s = imap(user).await;
    for (mid, raw) in mails {
        let mut tries = 0;
        while let Err(e) = s.append(mutf7(folder), None, None, raw).await {
            tries += 1;
            assert!(tries < 10, "APPEND {mid}: {e}");
            tokio::time::sleep(Duration::from_millis(300)).await;
            s = imap(user).await;
        }
    }
    let _ = s.logout().await;
}

/// Message-ID, In-Reply-To and Subject of every message in a folder (headers only).
#[derive(Debug, Clone)]
struct Hdr {
    message_id: String,
    in_reply_to: String,
    subject: String,
    /// Delivered for a `Cc` recipient (the roster's secretary), not for the mail's `To`.
    cc_copy: bool,
}

async fn headers(user: &str, folder: &str) -> Vec<Hdr> {
    fetch_each(user, folder, "BODY.PEEK[HEADER]")
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|h| mail_parser::MessageParser::default().parse_headers(h))
        .map(|m| Hdr {
            message_id: m.message_id().unwrap_or_default().to_string(),
            in_reply_to: m.in_reply_to().as_text().unwrap_or_default().to_string(),
            subject: m.subject().unwrap_or_default().to_string(),
            cc_copy: delivered_as_cc(&m),
        })
        .collect()
}

/// Our acknowledgements (by the scenario's Message-ID domain) in `user`'s INBOX, delivered
/// for their `To` recipient (the senders here are not the roster's, so the secretary is
/// copied; in the catch-all that copy would look like a second answer).
async fn our_acks(env: &TestEnv, user: &str) -> Vec<Hdr> {
    headers(user, "INBOX")
        .await
        .into_iter()
        .filter(|h| h.message_id.ends_with(&format!("@{}", env.domain)) && !h.cc_copy)
        .collect()
}

/// What exactly-once means for a set of incoming Message-IDs, counted.
#[derive(Debug, Default)]
struct Tally {
    stored: usize,
    lost: usize,
    duplicate_records: usize,
    acked: usize,
    duplicate_acks: usize,
    unanswered: Vec<String>,
}

impl Tally {
    /// The counts every `faults:` line ends with.
    fn summary(&self, expected: usize) -> String {
        format!(
            "stored {}/{expected}, lost {}, duplicate records {}, acks {}/{expected}, duplicate acks {}",
            self.stored, self.lost, self.duplicate_records, self.acked, self.duplicate_acks
        )
    }

    fn ok(&self, expected: usize) -> bool {
        self.stored == expected
            && self.lost == 0
            && self.duplicate_records == 0
            && self.duplicate_acks == 0
            && self.acked == expected
    }
}

/// Counts, for the incoming `mids`: stored once, one submission each (and no submission
/// version twice), one outbox row each, and one acknowledgement each in `ack_user`'s mailbox.
async fn tally(pool: &sqlx::AnyPool, env: &TestEnv, ack_user: &str, mids: &[String]) -> Tally {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT message_id, COUNT(*) FROM messages WHERE message_id IS NOT NULL AND COALESCE(disposition, '') != 'own_copy' GROUP BY message_id",
    )
    .fetch_all(pool)
    .await
    .expect("messages");
    let stored: BTreeMap<String, i64> = rows.into_iter().collect();
    let subs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT m.message_id, COUNT(*) FROM submissions s JOIN messages m ON m.id = s.message_id GROUP BY m.message_id",
    )
    .fetch_all(pool)
    .await
    .expect("submissions");
    let subs: BTreeMap<String, i64> = subs.into_iter().collect();
    let repeated_versions = scalar(
        pool,
        "SELECT CAST(COALESCE(SUM(n - 1), 0) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM submissions GROUP BY kind, branch_key, version) AS v",
    )
    .await;
    let gaps = scalar(
        pool,
        "SELECT COUNT(*) FROM (SELECT kind, branch_key FROM submissions GROUP BY kind, branch_key HAVING MAX(version) != COUNT(*)) AS g",
    )
    .await;
    let queued: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT related_message, COUNT(*) FROM outbox WHERE related_message IS NOT NULL GROUP BY related_message HAVING COUNT(*) > 1",
    )
    .fetch_all(pool)
    .await
    .expect("outbox");
    let acks = our_acks(env, ack_user).await;
    let mut per_mid: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &acks {
        *per_mid.entry(a.in_reply_to.as_str()).or_default() += 1;
    }
    let mut t = Tally::default();
    for mid in mids {
        match stored.get(mid) {
            Some(n) => {
                t.stored += 1;
                t.duplicate_records += usize::try_from(n - 1).unwrap_or(0);
            }
            None => t.lost += 1,
        }
        t.duplicate_records +=
            usize::try_from(subs.get(mid).copied().unwrap_or(1) - 1).unwrap_or(0);
        match per_mid.get(mid.as_str()) {
            Some(n) => {
                t.acked += 1;
                t.duplicate_acks += n - 1;
            }
            None => t.unanswered.push(mid.clone()),
        }
    }
    t.duplicate_records += usize::try_from(repeated_versions + gaps).unwrap_or(0) + queued.len();
    t
}

/// Waits until every mail of `mids` is processed, answered in the outbox, and its ack is in
/// `ack_user`'s mailbox; then a little longer, so a late duplicate would be seen too.
async fn settle(
    pool: &sqlx::AnyPool,
    env: &TestEnv,
    daemons: &mut [Daemon],
    ack_user: &str,
    mids: &[String],
    timeout: Duration,
) {
    let n = mids.len() as i64;
    wait_for("every mail processed and sent", timeout, || {
        for d in daemons.iter_mut() {
            d.assert_alive();
        }
        async move {
            scalar(pool, "SELECT COUNT(*) FROM messages WHERE status = 'stored'").await == 0
                && scalar(pool, "SELECT COUNT(*) FROM messages WHERE status = 'processed' AND disposition != 'own_copy'").await >= n
                && scalar(pool, "SELECT COUNT(*) FROM outbox WHERE status != 'sent'").await == 0
        }
    })
    .await;
    wait_for("every ack delivered", Duration::from_secs(60), || async {
        let acks = our_acks(env, ack_user).await;
        let distinct: BTreeSet<&str> = acks.iter().map(|a| a.in_reply_to.as_str()).collect();
        mids.iter().all(|m| distinct.contains(m.as_str()))
    })
    .await;
    // An unconfirmed send is decided `confirm_grace` (2 s) after a restart: give a wrong
    // decision time to show up as a second ack.
    tokio::time::sleep(Duration::from_secs(4)).await;
}

fn assert_tally(what: &str, t: &Tally, expected: usize) {
    assert!(
        t.ok(expected),
        "{what}: {t:?} (expected {expected} stored and answered once)"
    );
}

/// Polls `sql` every 10 ms until it reaches `target` (for faults that must land mid-batch).
async fn wait_fast(pool: &sqlx::AnyPool, sql: &str, target: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while scalar(pool, sql).await < target {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {sql} >= {target}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How many IMAP sessions the daemon has opened so far (its log says so).
fn connections(d: &Daemon) -> usize {
    std::fs::read_to_string(&d.log)
        .unwrap_or_default()
        .matches("IMAP 已连接")
        .count()
}

/// Every daemon log of a scenario, concatenated.
fn all_logs(dir: &std::path::Path) -> String {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("daemon-"))
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs.iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

async fn kill_daemon(d: Daemon) {
    tokio::task::spawn_blocking(move || d.kill())
        .await
        .expect("kill");
}

async fn stop_daemon(d: Daemon) -> String {
    let log = tokio::task::spawn_blocking(move || d.stop())
        .await
        .expect("stop");
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    log
}

// ------------------------------------------------------------------------------------------
// The scenarios: one table (what is broken, when, how many mails must come through exactly
// once), one driver that sets each up the same way and checks what every scenario checks.

/// What a scenario breaks, and when.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `kill -9` of the daemon `kills` times, each at a random point `after_ms` after it
    /// started, while it works through `mails` mails put in before the first start; the last
    /// start finishes the batch.
    Kill9 {
        mails: usize,
        kills: usize,
        after_ms: (u64, u64),
    },
    /// Postfix stopped: `doomed` mails fail until they are given up (dead letters), `late`
    /// mails fail once or twice and go out when Postfix is back; the dead letters are then
    /// resent with `shenbao outbox retry`.
    PostfixDown { doomed: usize, late: usize },
    /// Dovecot restarted while the daemon is in IDLE (then `idle_mails` come in), and
    /// `while_fetching` times while it fetches a batch of `batch` mails (one of them 5 MB):
    /// first a quarter into the batch, then as soon as the daemon is back and fetching.
    DovecotRestarts {
        idle_mails: usize,
        batch: usize,
        while_fetching: usize,
    },
    /// The intake folder deleted and recreated (a new UIDVALIDITY) once a quarter of `old`
    /// mails are processed; the `old` mails are restored into it, followed by `new` ones.
    FolderRecreated { old: usize, new: usize },
    /// A Sieve vacation auto-responder (mailbox vacation1) applies, and a person writes to it:
    /// its auto-reply reaches the intake.
    VacationResponder,
    /// Two daemons on one PostgreSQL database (one config): `mails` mails put in over `kills`
    /// batches; during each batch, `kill -9` of whichever daemon holds the intake lease, which
    /// the other must take over within the lease time; the killed one is started again.
    TwoDaemonsKillIntakeHolder { mails: usize, kills: usize },
    /// Two daemons on one PostgreSQL database, sending through an SMTP proxy that holds every
    /// answer of the server back `smtp_delay_ms`: `kill -9` of a daemon with sends in flight
    /// (mails claimed in its name, one of them half handed over on an SMTP session), `kills`
    /// times while the acknowledgements of `mails` mails go out.
    TwoDaemonsKillMidSend {
        mails: usize,
        kills: usize,
        smtp_delay_ms: u64,
    },
}

impl Fault {
    /// How many mails must be stored and answered exactly once (the tally), if counted.
    fn exactly_once(self) -> Option<usize> {
        match self {
            Fault::Kill9 { mails, .. } => Some(mails),
            Fault::PostfixDown { doomed, late } => Some(doomed + late),
            Fault::DovecotRestarts {
                idle_mails, batch, ..
            } => Some(idle_mails + batch),
            Fault::FolderRecreated { old, new } => Some(old + new),
            Fault::VacationResponder => None,
            Fault::TwoDaemonsKillIntakeHolder { mails, .. }
            | Fault::TwoDaemonsKillMidSend { mails, .. } => Some(mails),
        }
    }

    /// Several daemons on one database: PostgreSQL (`SHENBAO_TEST_POSTGRES`) is needed.
    fn two_daemons(self) -> bool {
        matches!(
            self,
            Fault::TwoDaemonsKillIntakeHolder { .. } | Fault::TwoDaemonsKillMidSend { .. }
        )
    }
}

/// One row of [`SCENARIOS`].
struct Scenario {
    /// The test env's name (its data directory and Message-ID domain).
    env: &'static str,
    /// Its own intake mailbox on the private stack.
    intake: &'static str,
    /// `[smtp]` keys in place of the test config's `confirm_grace = "5s"`.
    smtp: &'static str,
    fault: Fault,
    /// Seconds everything may take to be processed and answered once the faults are over.
    settle_secs: u64,
    /// What the tally's assertion names.
    what: &'static str,
}

const FAST_RETRY: &str = "confirm_grace = \"2s\"\nretry_initial = \"1s\"";

/// The table, and one test of the same name per row (each run by [`drive`]).
macro_rules! scenarios {
    ($($(#[doc = $doc:expr])* $test:ident => $row:expr,)*) => {
        const SCENARIOS: &[(&str, Scenario)] = &[$((stringify!($test), $row)),*];
        $(
            $(#[doc = $doc])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                drive(stringify!($test)).await;
            }
        )*
    };
}

scenarios! {
    /// a. kill -9 at random points while 1,000 mails come in, 20 times over.
    a_kill_9_twenty_times_during_a_thousand_mails => Scenario {
        env: "faults-kill",
        intake: "intake13",
        smtp: FAST_RETRY,
        fault: Fault::Kill9 { mails: 1000, kills: 20, after_ms: (50, 600) },
        settle_secs: 240,
        what: "kill -9",
    },
    /// b. Postfix down: retries with backoff, some acks go out once it is back, the rest become
    /// dead letters that `status` shows and `shenbao outbox retry` delivers exactly once.
    b_smtp_down_then_dead_letters_and_retry => Scenario {
        env: "faults-smtp",
        intake: "intake14",
        smtp: "confirm_grace = \"2s\"\nretry_initial = \"1s\"\nmax_attempts = 4",
        fault: Fault::PostfixDown { doomed: 2, late: 4 },
        settle_secs: 30,
        what: "postfix down",
    },
    /// c. Dovecot restarted while the daemon is in IDLE, and twice while it fetches a batch of
    /// 400 mails with a 5 MB attachment among them.
    c_dovecot_restarts_during_idle_and_fetch => Scenario {
        env: "faults-imap",
        intake: "intake15",
        smtp: FAST_RETRY,
        fault: Fault::DovecotRestarts { idle_mails: 5, batch: 400, while_fetching: 2 },
        settle_secs: 180,
        what: "dovecot restarts",
    },
    /// d. The intake folder is deleted and recreated (new UIDVALIDITY) while the daemon works
    /// through a batch; the old mail comes back (a restore) next to new mail.
    d_folder_recreated_with_a_new_uidvalidity => Scenario {
        env: "faults-uidv",
        intake: "intake16",
        smtp: FAST_RETRY,
        fault: Fault::FolderRecreated { old: 300, new: 50 },
        settle_secs: 30,
        what: "new UIDVALIDITY",
    },
    /// e. A Sieve vacation auto-responder: it gets exactly one ack and does not answer it; its
    /// genuine vacation reply to the intake is recorded as automatic and not answered: no loop.
    e_sieve_vacation_does_not_loop => Scenario {
        env: "faults-vacation",
        intake: "intake17",
        smtp: FAST_RETRY,
        fault: Fault::VacationResponder,
        // Nothing to settle: no tally.
        settle_secs: 0,
        what: "sieve vacation",
    },
    /// f. Two daemons on one PostgreSQL database: the one holding the intake is killed -9 in
    /// the middle of each of 10 batches (1,000 mails); the other takes over within the lease.
    two_daemons_kill_the_intake_holder => Scenario {
        env: "faults-two-intake",
        intake: "intake18",
        smtp: FAST_RETRY,
        fault: Fault::TwoDaemonsKillIntakeHolder { mails: 1000, kills: 10 },
        settle_secs: 180,
        what: "two daemons, intake holder killed",
    },
    /// g. Two daemons on one PostgreSQL database share the sending of 1,000 acknowledgements
    /// over a slowed SMTP server; a daemon with sends in flight is killed -9, 10 times.
    /// 15 ms per answer (about 0.1 s a mail per session) stretches the drain to about 40 s, so
    /// that the tenth kill, once five sixths are sent and after five waits for a takeover, still
    /// finds mails going out; the whole scenario takes about 45 s on 2 cores. The 180 s to
    /// settle are a bound for a slow CI machine, not the expected time.
    two_daemons_kill_mid_send => Scenario {
        env: "faults-two-send",
        intake: "intake19",
        smtp: FAST_RETRY,
        fault: Fault::TwoDaemonsKillMidSend { mails: 1000, kills: 10, smtp_delay_ms: 15 },
        settle_secs: 180,
        what: "two daemons, killed mid-send",
    },
}

/// A scenario under way: its row, its env, and what every fault needs.
struct Run {
    sc: &'static Scenario,
    env: TestEnv,
    branches: Vec<String>,
    /// The intake address.
    to: String,
}

impl Run {
    /// [`settle`] with the row's timeout, acks read from the catch-all.
    async fn settle(&self, pool: &sqlx::AnyPool, daemon: &mut Daemon, mids: &[String]) {
        self.settle_all(pool, std::slice::from_mut(daemon), mids)
            .await;
    }

    /// [`Run::settle`] while several daemons run (each must stay alive).
    async fn settle_all(&self, pool: &sqlx::AnyPool, daemons: &mut [Daemon], mids: &[String]) {
        settle(
            pool,
            &self.env,
            daemons,
            "catchall",
            mids,
            Duration::from_secs(self.sc.settle_secs),
        )
        .await;
    }
}

/// One assertion of a scenario, checked after its `faults:` line is printed.
struct Check {
    holds: bool,
    message: String,
}

fn check(holds: bool, message: impl Into<String>) -> Check {
    Check {
        holds,
        message: message.into(),
    }
}

/// `assert_eq!` as a [`Check`].
fn check_eq<T: PartialEq + std::fmt::Debug>(left: T, right: T, message: &str) -> Check {
    Check {
        holds: left == right,
        message: format!("{message}\n  left: {left:?}\n right: {right:?}"),
    }
}

/// What a fault leaves for the driver: the daemons (still running), the database, the
/// Message-IDs that must each be stored and answered once, the scenario's own counts around
/// the tally in its `faults:` line (`head`, tally, `tail`), and its own assertions.
struct Report {
    daemons: Vec<Daemon>,
    pool: sqlx::AnyPool,
    mids: Vec<String>,
    head: String,
    tail: String,
    checks: Vec<Check>,
}

/// Runs the row `test` of [`SCENARIOS`]: one at a time, on a fresh env with the row's intake
/// and smtp keys; the fault; then the tally (every mail stored and answered exactly once), one
/// `faults:` line, the scenario's own checks, and a clean stop of the daemon.
async fn drive(test: &str) {
    let sc = &SCENARIOS
        .iter()
        .find(|(name, _)| *name == test)
        .unwrap_or_else(|| panic!("no scenario {test}"))
        .1;
    if sc.fault.two_daemons() && std::env::var(POSTGRES_VAR).is_err() {
        eprintln!(
            "{POSTGRES_VAR} is not set: {test} skipped (it runs two daemons on one PostgreSQL database)"
        );
        return;
    }
    let _serial = serial().await;
    let t0 = Instant::now();
    let env = fault_env(sc.env, sc.intake, sc.smtp, sc.fault.two_daemons()).await;
    let _logs = LogsOnFailure(env.dir.clone());
    let to = format!("{}@example.test", env.user);
    let run = Run {
        sc,
        env,
        branches: roster_branches(),
        to,
    };
    let report = match sc.fault {
        Fault::Kill9 {
            mails,
            kills,
            after_ms,
        } => kill_9(&run, mails, kills, after_ms).await,
        Fault::PostfixDown { doomed, late } => postfix_down(&run, doomed, late).await,
        Fault::DovecotRestarts {
            idle_mails,
            batch,
            while_fetching,
        } => dovecot_restarts(&run, idle_mails, batch, while_fetching).await,
        Fault::FolderRecreated { old, new } => folder_recreated(&run, old, new).await,
        Fault::VacationResponder => vacation_responder(&run).await,
        Fault::TwoDaemonsKillIntakeHolder { mails, kills } => {
            intake_holder_killed(&run, mails, kills).await
        }
        Fault::TwoDaemonsKillMidSend {
            mails,
            kills,
            smtp_delay_ms,
        } => killed_mid_send(&run, mails, kills, smtp_delay_ms).await,
    };
    let tally = match sc.fault.exactly_once() {
        Some(expected) => Some((
            tally(&report.pool, &run.env, "catchall", &report.mids).await,
            expected,
        )),
        None => None,
    };
    eprintln!(
        "faults: {}{}{}, {:.1} s",
        report.head,
        tally
            .as_ref()
            .map(|(t, expected)| t.summary(*expected))
            .unwrap_or_default(),
        report.tail,
        t0.elapsed().as_secs_f64()
    );
    if let Some((t, expected)) = &tally {
        assert_tally(sc.what, t, *expected);
    }
    for c in &report.checks {
        assert!(c.holds, "{}", c.message);
    }
    for d in report.daemons {
        stop_daemon(d).await;
    }
}

/// "once", "twice", "3 times".
fn times(n: usize) -> String {
    match n {
        1 => "once".to_string(),
        2 => "twice".to_string(),
        n => format!("{n} times"),
    }
}

/// The seed of the kill points (`FAULTS_SEED`, or a fixed default).
fn seed() -> u64 {
    std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20250920u64)
}

async fn kill_9(run: &Run, n: usize, kills: usize, after_ms: (u64, u64)) -> Report {
    let env = &run.env;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mails: Vec<_> = (0..n)
        .map(|i| application("kill", i, &run.branches, &run.to))
        .collect();
    let mids: Vec<String> = mails.iter().map(|(m, _)| m.clone()).collect();
    append_all(&env.user, &env.folder, &mails).await;
    let appended = count(&env.user, &env.folder).await as usize;
    assert_eq!(appended, n, "all {n} appended");
    // Everything already in the folder is the batch: backfill from yesterday (server dates).
    let since = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let args = ["--backfill-since", since.as_str()];

    let mut stored_at_kill = Vec::new();
    let mut pool = None;
    for _ in 0..kills {
        let daemon = env.start_daemon_with(&args);
        // Kill anywhere from "still starting up" to "well into the work": storing, processing,
        // sending, moving. 20 short lives cover most of the batch; the last run finishes it.
        // (The window is short: the whole batch takes the daemon only a few seconds.)
        tokio::time::sleep(rng.millis(after_ms.0, after_ms.1)).await;
        kill_daemon(daemon).await;
        if pool.is_none() {
            pool = db_if_ready(env).await;
        }
        let (stored, sent) = match &pool {
            Some(p) => (
                scalar(
                    p,
                    "SELECT COUNT(*) FROM messages WHERE message_id LIKE 'kill-%'",
                )
                .await,
                scalar(p, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await,
            ),
            None => (0, 0),
        };
        stored_at_kill.push((stored, sent));
    }
    let mut daemon = env.start_daemon_with(&args);
    let pool = match pool {
        Some(p) => p,
        None => db_when_ready(env).await,
    };
    run.settle(&pool, &mut daemon, &mids).await;
    // The copies of the last acks (some sent again after the grace) may still be on their way
    // back through the intake folder.
    wait_for(
        "the copy of every ack to come back",
        Duration::from_secs(60),
        || async {
            scalar(
                &pool,
                "SELECT COUNT(*) FROM messages WHERE disposition = 'own_copy'",
            )
            .await
                >= n as i64
        },
    )
    .await;
    let own_copies = scalar(
        &pool,
        "SELECT COUNT(*) FROM messages WHERE disposition = 'own_copy'",
    )
    .await;
    // Sends interrupted by a kill that the copy check had to decide on.
    let log_text = all_logs(&env.dir);
    let confirmed = log_text.matches("副本已到达").count();
    let resent = log_text.matches("没有找到中断发送的副本").count();
    let mid_batch = stored_at_kill
        .iter()
        .filter(|&&(stored, sent)| stored < n as i64 || sent < n as i64)
        .count();
    let at_kill: Vec<String> = stored_at_kill
        .iter()
        .map(|(stored, sent)| format!("{stored}/{sent}"))
        .collect();
    wait_for(
        "the intake folder to empty",
        Duration::from_secs(30),
        || async { count(&env.user, &env.folder).await == 0 },
    )
    .await;
    Report {
        head: format!(
            "kill -9 ×{kills} during {n} mails (seed {seed}; stored/sent at each kill: {}; {mid_batch} kills before the work was done): ",
            at_kill.join(" "),
        ),
        tail: format!(
            ", own copies {own_copies}, interrupted sends confirmed by their copy {confirmed} / sent again {resent}"
        ),
        checks: vec![
            check(
                mid_batch >= kills / 2,
                format!("most kills should land before the work is done: {at_kill:?}"),
            ),
            check_eq(own_copies, n as i64, "one copy of each ack came back"),
        ],
        daemons: vec![daemon],
        pool,
        mids,
    }
}

async fn postfix_down(run: &Run, doomed_n: usize, late_n: usize) -> Report {
    let env = &run.env;
    let doomed: Vec<_> = (0..doomed_n)
        .map(|i| application("dead", i, &run.branches, &run.to))
        .collect();
    let late: Vec<_> = (0..late_n)
        .map(|i| application("late", i, &run.branches, &run.to))
        .collect();
    // `health` with short thresholds: a mail waiting 3 s is critical.
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        format!(
            "{text}
[health]
outbox_warning = \"1s\"
outbox_critical = \"3s\"
"
        ),
    )
    .expect("config");
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let pool = env.db().await;
    let (code, out) = env.health();
    assert_eq!(code, 0, "healthy before the outage:\n{out}");

    mailstack_cmd("stop-postfix");
    // 1. These fail 4 times (after 1 s, 2 s, 4 s) and are given up.
    append_all(&env.user, &env.folder, &doomed).await;
    wait_for(
        "the first ones to become dead letters",
        Duration::from_secs(60),
        || {
            daemon.assert_alive();
            let pool = &pool;
            async move {
                scalar(pool, "SELECT COUNT(*) FROM outbox WHERE status = 'dead'").await
                    == doomed_n as i64
            }
        },
    )
    .await;
    // 2. These fail once or twice, then Postfix comes back and they go out.
    append_all(&env.user, &env.folder, &late).await;
    wait_for(
        "the next ones to fail once",
        Duration::from_secs(30),
        || async {
            scalar(
                &pool,
                "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND attempts >= 1",
            )
            .await
                == late_n as i64
        },
    )
    .await;
    let failed_attempts = scalar(&pool, "SELECT SUM(attempts) FROM outbox").await;
    // With Postfix down, mail waits in the outbox: `health` says so, critically.
    let mut last = (0, String::new());
    wait_for("health to turn critical", Duration::from_secs(15), || {
        last = env.health();
        let critical = last.0 == 2;
        async move { critical }
    })
    .await;
    assert!(last.1.contains("发件箱"), "{}", last.1);
    mailstack_cmd("start-postfix");
    let late_mids: Vec<String> = late.iter().map(|(m, _)| m.clone()).collect();
    wait_for(
        "the late ones to be sent",
        Duration::from_secs(30),
        || async {
            scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await
                == late_n as i64
        },
    )
    .await;
    let dead_after_return =
        scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'dead'").await;
    assert_eq!(
        dead_after_return, doomed_n as i64,
        "only the first ones were given up"
    );

    // 3. Staff see the dead letters with the command that resends them, and resend them.
    let dead: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE status = 'dead' ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("dead ids");
    let status = env.cli(&["status"]);
    for id in &dead {
        assert!(
            status.contains(&format!("shenbao outbox retry {id}")),
            "status names the retry command for #{id}:\n{status}"
        );
    }
    let listed = env.cli(&["outbox", "list", "--status", "dead"]);
    assert!(listed.contains(&format!("共 {doomed_n} 封")), "{listed}");
    let (ok, out) = env.run(&["outbox", "retry", &dead[0].to_string()]);
    assert!(
        ok && out.contains(&format!("已重新排队：#{}", dead[0])),
        "{out}"
    );
    assert!(out.contains("5 秒"), "{out}");
    let (ok, out) = env.run(&["outbox", "retry", "--all-dead"]);
    assert!(
        ok && out.contains(&format!("已重新排队：#{}", dead[1])),
        "{out}"
    );
    let retried_at = Instant::now();
    // The running daemon polls the outbox at least every 5 s.
    wait_for(
        "the retried ones to be sent",
        Duration::from_secs(45),
        || async {
            scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await
                == (doomed_n + late_n) as i64
        },
    )
    .await;
    let pickup = retried_at.elapsed();
    // Postfix back, the dead letters resent, nothing waiting: healthy again.
    wait_for("health to return to ok", Duration::from_secs(15), || {
        last = env.health();
        let ok = last.0 == 0;
        async move { ok }
    })
    .await;
    let (ok, out) = env.run(&["outbox", "retry", &dead[0].to_string()]);
    assert!(
        !ok && out.contains("已于") && out.contains("不会再发"),
        "{out}"
    );
    let (ok, out) = env.run(&["outbox", "retry", "99999"]);
    assert!(!ok && out.contains("没有编号为 #99999"), "{out}");

    let mut mids: Vec<String> = doomed.iter().map(|(m, _)| m.clone()).collect();
    mids.extend(late_mids);
    run.settle(&pool, &mut daemon, &mids).await;
    let status = env.cli(&["status"]);
    Report {
        head: format!(
            "postfix down during {} mails: {failed_attempts} failed attempts, {late_n} sent after it returned, {doomed_n} dead letters → `outbox retry` → sent after {:.1} s; ",
            doomed_n + late_n,
            pickup.as_secs_f64(),
        ),
        tail: String::new(),
        checks: vec![check(
            !status.contains("shenbao outbox retry"),
            format!("no dead letter left:\n{status}"),
        )],
        daemons: vec![daemon],
        pool,
        mids,
    }
}

async fn dovecot_restarts(run: &Run, idle_mails: usize, n: usize, while_fetching: usize) -> Report {
    let env = &run.env;
    let (branches, to) = (&run.branches, &run.to);
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let pool = env.db().await;

    // 1. In IDLE.
    tokio::time::sleep(Duration::from_secs(2)).await;
    mailstack_cmd("restart-dovecot");
    let idle: Vec<_> = (0..idle_mails)
        .map(|i| application("idle", i, branches, to))
        .collect();
    append_all(&env.user, &env.folder, &idle).await;
    let mut mids: Vec<String> = idle.iter().map(|(m, _)| m.clone()).collect();
    settle(
        &pool,
        env,
        std::slice::from_mut(&mut daemon),
        "catchall",
        &mids,
        Duration::from_secs(60),
    )
    .await;
    let reconnects_idle = std::fs::read_to_string(&daemon.log)
        .unwrap_or_default()
        .matches("正在重连")
        .count();

    // 2. While fetching: the daemon is stopped while the batch is put in, so that it starts
    // on a full folder; Dovecot is restarted along the way.
    stop_daemon(daemon).await;
    let mut batch: Vec<_> = (0..n)
        .map(|i| application("fetch", i, branches, to))
        .collect();
    let big = format!("fetch-big-{}@faults.example.edu.cn", std::process::id());
    batch[n / 3] = (
        big.clone(),
        with_attachment(&big, to, &branches[0], 5 * 1024 * 1024),
    );
    append_all(&env.user, &env.folder, &batch).await;
    mids.extend(batch.iter().map(|(m, _)| m.clone()));
    let mut daemon = env.start_daemon();
    let stored_sql = "SELECT COUNT(*) FROM messages WHERE message_id LIKE 'fetch-%'";
    let mut restarts_at = Vec::new();
    // The first restart a quarter into the batch, each next one as soon as the daemon is
    // back and fetching again.
    wait_fast(&pool, stored_sql, (n / 4) as i64, Duration::from_secs(120)).await;
    for round in 0..while_fetching {
        let connected = connections(&daemon);
        let at = scalar(&pool, stored_sql).await;
        mailstack_cmd("restart-dovecot");
        restarts_at.push(format!("{at}–{}", scalar(&pool, stored_sql).await));
        if round + 1 == while_fetching {
            break;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while connections(&daemon) <= connected {
            daemon.assert_alive();
            assert!(Instant::now() < deadline, "the daemon did not reconnect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let back = scalar(&pool, stored_sql).await;
        wait_fast(&pool, stored_sql, back + 3, Duration::from_secs(60)).await;
    }
    run.settle(&pool, &mut daemon, &mids).await;
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    let reconnects_fetch = log.matches("正在重连").count();
    let last_restart_done: i64 = restarts_at
        .last()
        .and_then(|r| r.rsplit('–').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let big_size = scalar(
        &pool,
        "SELECT MAX(size) FROM messages WHERE message_id LIKE 'fetch-big-%'",
    )
    .await;
    Report {
        head: format!(
            "dovecot restarted in IDLE (then {idle_mails} mails, {reconnects_idle} reconnects) and {} while fetching {n} mails (while {} of them were stored, {reconnects_fetch} reconnects; one of {:.1} MB): ",
            times(while_fetching),
            restarts_at.join(" and "),
            big_size as f64 / 1048576.0,
        ),
        tail: String::new(),
        checks: vec![
            check(reconnects_idle >= 1, "the IDLE session noticed the restart"),
            check(
                reconnects_fetch >= while_fetching && last_restart_done < n as i64,
                format!(
                    "every restart came while the batch was being fetched: {restarts_at:?}, {reconnects_fetch} reconnects"
                ),
            ),
            check(big_size > 5 * 1024 * 1024, "the 5 MB mail was stored whole"),
        ],
        daemons: vec![daemon],
        pool,
        mids,
    }
}

async fn folder_recreated(run: &Run, old_n: usize, new_n: usize) -> Report {
    let env = &run.env;
    let folder = format!("申报-{}", chrono::Utc::now().timestamp_millis());
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        text.replace("folder = \"INBOX\"", &format!("folder = \"{folder}\"")),
    )
    .expect("config");
    {
        let mut s = imap(&env.user).await;
        s.create(mutf7(&folder)).await.expect("CREATE");
        let _ = s.logout().await;
    }
    let old: Vec<_> = (0..old_n)
        .map(|i| application("old", i, &run.branches, &run.to))
        .collect();
    let new: Vec<_> = (0..new_n)
        .map(|i| application("new", i, &run.branches, &run.to))
        .collect();
    let mut daemon = env.start_daemon();
    let connect_by = Instant::now() + Duration::from_secs(30);
    let pool = loop {
        daemon.assert_alive();
        if let Some(pool) = db_if_ready(env).await {
            break pool;
        }
        assert!(
            Instant::now() < connect_by,
            "timed out after 30s waiting for the daemon to connect"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    wait_for("the watermark", Duration::from_secs(30), || async {
        scalar(&pool, "SELECT COUNT(*) FROM mailbox_state").await == 1
    })
    .await;
    // The batch goes in while the daemon is stopped, so that it starts on a full folder.
    stop_daemon(daemon).await;
    append_all(&env.user, &folder, &old).await;
    let mut daemon = env.start_daemon();
    let processed_sql = "SELECT COUNT(*) FROM messages WHERE status = 'processed'";
    wait_fast(
        &pool,
        processed_sql,
        (old_n / 4) as i64,
        Duration::from_secs(60),
    )
    .await;
    // Mid-batch: the folder goes away with what is left in it, comes back empty (a new
    // UIDVALIDITY), and the whole old batch is restored into it, followed by new mail.
    let processed_at_delete = scalar(&pool, processed_sql).await;
    {
        let mut s = imap(&env.user).await;
        s.delete(mutf7(&folder)).await.expect("DELETE");
        s.create(mutf7(&folder)).await.expect("CREATE");
        let _ = s.logout().await;
    }
    let processed_after_delete = scalar(&pool, processed_sql).await;
    append_all(&env.user, &folder, &old).await;
    append_all(&env.user, &folder, &new).await;
    let mut mids: Vec<String> = old.iter().map(|(m, _)| m.clone()).collect();
    mids.extend(new.iter().map(|(m, _)| m.clone()));
    // The acks' own copies go to INBOX, which this daemon does not watch.
    wait_for("everything answered", Duration::from_secs(120), || {
        daemon.assert_alive();
        let pool = &pool;
        let n = mids.len() as i64;
        async move {
            scalar(pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await >= n
                && scalar(
                    pool,
                    "SELECT COUNT(*) FROM messages WHERE status = 'stored'",
                )
                .await
                    == 0
        }
    })
    .await;
    wait_for(
        "the folder to be emptied",
        Duration::from_secs(60),
        || async { count(&env.user, &folder).await == 0 },
    )
    .await;
    run.settle(&pool, &mut daemon, &mids).await;
    let uidvalidities = scalar(
        &pool,
        "SELECT COUNT(DISTINCT uidvalidity) FROM messages WHERE uidvalidity IS NOT NULL",
    )
    .await;
    let skipped = std::fs::read_to_string(&daemon.log)
        .unwrap_or_default()
        .matches("不再处理")
        .count();
    let queued = scalar(&pool, "SELECT COUNT(*) FROM outbox").await;
    Report {
        head: format!(
            "intake folder deleted and recreated while {processed_at_delete}–{processed_after_delete} of {old_n} were processed, all {old_n} restored + {new_n} new: {uidvalidities} UIDVALIDITIES, {skipped} recognised as already stored; "
        ),
        tail: String::new(),
        checks: vec![
            check_eq(uidvalidities, 2, "two UIDVALIDITIES"),
            check(
                processed_after_delete < old_n as i64,
                format!(
                    "the folder was deleted mid-batch ({processed_after_delete}/{old_n} processed)"
                ),
            ),
            check_eq(queued, (old_n + new_n) as i64, "one ack queued per mail"),
        ],
        daemons: vec![daemon],
        pool,
        mids,
    }
}

async fn vacation_responder(run: &Run) -> Report {
    let env = &run.env;
    empty_inbox("vacation1").await;
    let intake = run.to.clone();
    let vacation = "vacation1@example.test";
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let pool = env.db().await;

    // 1. vacation1 applies (through SMTP, as a person would); shenbao answers once.
    let branch = run.branches[3].clone();
    let app_mid = format!("vacation-app-{}@example.test", std::process::id());
    let application = format!(
        "From: <{vacation}>\r\nTo: <{intake}>\r\nSubject: =?UTF-8?B?{}?=\r\nMessage-ID: <{app_mid}>\r\nDate: Sat, 20 Sep 2025 21:46:32 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n老师好，附件随后补交。\r\n",
        b64(&format!("对标争先建设项目申报-{branch}"))
    );
    smtp_send(vacation, &intake, application.as_bytes()).await;
    wait_for(
        "the ack to reach vacation1",
        Duration::from_secs(60),
        || async { !our_acks(env, "vacation1").await.is_empty() },
    )
    .await;
    // vacation1's Sieve sees Auto-Submitted on the ack and stays silent; wait to be sure.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // 2. A person (here: the intake address itself, as envelope sender and From) writes to
    // vacation1: Pigeonhole's vacation reply lands in the intake mailbox.
    let hello_mid = format!("vacation-hello-{}@example.test", std::process::id());
    let hello = format!(
        "From: <{intake}>\r\nTo: <{vacation}>\r\nSubject: =?UTF-8?B?{}?=\r\nMessage-ID: <{hello_mid}>\r\nDate: Sat, 20 Sep 2025 21:50:00 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n请问材料收到了吗？\r\n",
        b64("请问材料收到了吗")
    );
    smtp_send(&intake, vacation, hello.as_bytes()).await;
    wait_for(
        "the vacation reply to be recorded",
        Duration::from_secs(60),
        || async {
            scalar(
                &pool,
                "SELECT COUNT(*) FROM messages WHERE from_addr = 'vacation1@example.test' AND status = 'processed' AND subject LIKE '%休假%'",
            )
            .await
                >= 1
        },
    )
    .await;
    // A loop would need a few seconds per round: give it room to start.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let vacation_replies: Vec<(String, String)> = sqlx::query_as(
        "SELECT COALESCE(message_id, ''), COALESCE(disposition, '') FROM messages WHERE from_addr = 'vacation1@example.test' AND subject LIKE '%休假%'",
    )
    .fetch_all(&pool)
    .await
    .expect("vacation replies");
    let to_vacation = scalar(
        &pool,
        "SELECT COUNT(*) FROM outbox WHERE to_addr = 'vacation1@example.test'",
    )
    .await;
    let acks_at_vacation1 = our_acks(env, "vacation1").await;
    let vacation1_inbox = headers("vacation1", "INBOX").await;
    let intake_total = scalar(&pool, "SELECT COUNT(*) FROM messages").await;
    let dispositions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(disposition, status), COUNT(*) FROM messages GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("dispositions");
    let sent_total = scalar(&pool, "SELECT COUNT(*) FROM outbox").await;
    Report {
        head: format!(
            "sieve vacation: {} mails exchanged (intake received {intake_total}: {dispositions:?}; shenbao sent {sent_total}; vacation1 received {}); acks to vacation1 {}, vacation replies to the intake {} (dispositions {:?}), answers to them {}",
            intake_total as usize + vacation1_inbox.len(),
            vacation1_inbox.len(),
            acks_at_vacation1.len(),
            vacation_replies.len(),
            vacation_replies
                .iter()
                .map(|(_, d)| d.as_str())
                .collect::<Vec<_>>(),
            to_vacation - 1,
        ),
        tail: String::new(),
        checks: vec![
            check_eq(
                acks_at_vacation1.len(),
                1,
                &format!("exactly one ack: {acks_at_vacation1:?}"),
            ),
            check_eq(
                acks_at_vacation1.first().map(|a| a.in_reply_to.clone()),
                Some(app_mid),
                "the ack answers the application",
            ),
            check_eq(
                to_vacation,
                1,
                "nothing but the one ack was queued for vacation1",
            ),
            check_eq(
                vacation_replies.len(),
                1,
                &format!(
                    "one vacation reply (to the person's mail, none to the ack): {vacation_replies:?}"
                ),
            ),
            check_eq(
                vacation_replies.first().map(|r| r.1.clone()),
                Some("auto".to_string()),
                &format!("{vacation_replies:?}"),
            ),
            check(
                vacation1_inbox.iter().any(|h| h.message_id == hello_mid),
                "the person's mail reached vacation1",
            ),
            check_eq(vacation1_inbox.len(), 2, &format!("{vacation1_inbox:?}")),
            check(
                vacation1_inbox.iter().all(|h| !h.subject.contains("休假")),
                "no vacation reply came back to vacation1",
            ),
        ],
        daemons: vec![daemon],
        pool,
        mids: Vec::new(),
    }
}

/// Sends raw bytes through the stack's Postfix with the given envelope.
async fn smtp_send(from: &str, to: &str, raw: &[u8]) {
    use lettre::AsyncTransport;
    let transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(stack().smtp)
            .build();
    let envelope = lettre::address::Envelope::new(
        Some(from.parse().expect("from")),
        vec![to.parse().expect("to")],
    )
    .expect("envelope");
    transport.send_raw(&envelope, raw).await.expect("SMTP send");
}

// ------------------------------------------------------------------------------------------
// Two daemons on one PostgreSQL database (issue 15): both started from the scenario's config
// (same database, data directory and intake mailbox), each with a log of its own.

/// The lease time of the test config (`[database] lease = "6s"`): how long a dead daemon's
/// jobs may wait before another takes them over.
const LEASE: Duration = Duration::from_secs(6);

/// What a takeover may take beyond the lease: the waiting daemon asks for the lease every third
/// of it, then logs in to IMAP, opens the folder and stores what it fetched.
const TAKEOVER_MARGIN: Duration = Duration::from_secs(4);

/// The process id in a lease holder's name (`host/pid/random`, see `Duties::new`).
fn holder_pid(holder: &str) -> Option<u32> {
    holder.split('/').nth(1)?.parse().ok()
}

/// Which of `daemons` a lease holder names.
fn daemon_of(daemons: &[Daemon], holder: &str) -> Option<usize> {
    let pid = holder_pid(holder)?;
    daemons.iter().position(|d| d.child.id() == pid)
}

/// The holder of the intake folder's lease, if any.
async fn intake_holder(pool: &sqlx::AnyPool) -> Option<String> {
    sqlx::query_scalar("SELECT holder FROM leases WHERE name LIKE 'intake:%'")
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
}

/// Waits until each of `daemons` keeps its liveness lease (`daemon:<holder>`): it has opened
/// the database and its jobs are waiting for their leases.
async fn wait_alive(pool: &sqlx::AnyPool, daemons: &mut [Daemon]) {
    wait_for(
        "every daemon to hold its liveness lease",
        Duration::from_secs(30),
        || {
            for d in daemons.iter_mut() {
                d.assert_alive();
            }
            let pids: Vec<u32> = daemons.iter().map(|d| d.child.id()).collect();
            async move {
                let holders: Vec<String> =
                    sqlx::query_scalar("SELECT holder FROM leases WHERE name LIKE 'daemon:%'")
                        .fetch_all(pool)
                        .await
                        .unwrap_or_default();
                pids.iter()
                    .all(|&p| holders.iter().any(|h| holder_pid(h) == Some(p)))
            }
        },
    )
    .await;
}

/// Two daemons on the env's config, started at the same moment (they create the schema
/// together), once both are up and one watches the folder.
async fn start_two(env: &TestEnv) -> (Vec<Daemon>, sqlx::AnyPool) {
    let text = std::fs::read_to_string(&env.config).expect("config");
    assert!(
        text.contains("postgres") && text.contains(&format!("lease = \"{}s\"", LEASE.as_secs())),
        "the two-daemon scenarios need a PostgreSQL env with lease {LEASE:?}:\n{text}"
    );
    let mut daemons = vec![env.start_daemon(), env.start_daemon()];
    env.wait_watermark(&mut daemons[0]).await;
    let pool = env.db().await;
    wait_alive(&pool, &mut daemons).await;
    (daemons, pool)
}

/// "1.2"; "–" for nothing seen.
fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_string(), |d| format!("{:.1}", d.as_secs_f64()))
}

/// Rows of `messages` plus processed ones: grows whenever the intake does anything.
async fn intake_progress(pool: &sqlx::AnyPool) -> i64 {
    scalar(pool, "SELECT COUNT(*) FROM messages").await
        + scalar(
            pool,
            "SELECT COUNT(*) FROM messages WHERE status = 'processed'",
        )
        .await
}

/// Waits for the copy of every ack to come back through the intake folder and for the folder
/// to be emptied; returns the number of copies recorded.
async fn copies_back(pool: &sqlx::AnyPool, env: &TestEnv, n: usize) -> i64 {
    let own_copy_sql = "SELECT COUNT(*) FROM messages WHERE disposition = 'own_copy'";
    wait_for(
        "the copy of every ack to come back",
        Duration::from_secs(60),
        || async { scalar(pool, own_copy_sql).await >= n as i64 },
    )
    .await;
    wait_for(
        "the intake folder to empty",
        Duration::from_secs(30),
        || async { count(&env.user, &env.folder).await == 0 },
    )
    .await;
    scalar(pool, own_copy_sql).await
}

/// One kill of the intake holder, and how the other daemon took over.
struct Takeover {
    /// Mails of the run stored / processed when it was killed.
    stored: i64,
    processed: i64,
    /// Whether the batch under way was not yet all stored and processed then.
    mid_batch: bool,
    /// From the kill to the intake lease held by the other daemon.
    lease: Option<Duration>,
    /// From the kill to the next row stored or processed.
    progress: Option<Duration>,
    /// Who took the lease (should be the surviving daemon).
    by_survivor: bool,
}

async fn intake_holder_killed(run: &Run, n: usize, kills: usize) -> Report {
    let env = &run.env;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let (mut daemons, pool) = start_two(env).await;
    let mails: Vec<_> = (0..n)
        .map(|i| application("two", i, &run.branches, &run.to))
        .collect();
    let mids: Vec<String> = mails.iter().map(|(m, _)| m.clone()).collect();
    let stored_sql = "SELECT COUNT(*) FROM messages WHERE message_id LIKE 'two-%'";
    let processed_sql =
        "SELECT COUNT(*) FROM messages WHERE message_id LIKE 'two-%' AND status = 'processed'";
    let batch = n.div_ceil(kills);
    let mut takeovers = Vec::new();
    for (k, chunk) in mails.chunks(batch).enumerate() {
        let end = (k * batch + chunk.len()) as i64;
        // The batch goes in while the daemons work: the kill lands in the middle of it.
        let (user, folder, owned) = (env.user.clone(), env.folder.clone(), chunk.to_vec());
        let appending = tokio::spawn(async move { append_all(&user, &folder, &owned).await });
        let len = chunk.len() as u64;
        let part = len / 10 + rng.next() % (len * 2 / 3 - len / 10).max(1);
        wait_fast(
            &pool,
            stored_sql,
            (k * batch) as i64 + part as i64,
            Duration::from_secs(60),
        )
        .await;
        let holder = intake_holder(&pool)
            .await
            .expect("a daemon holds the intake lease");
        let victim = daemon_of(&daemons, &holder).unwrap_or_else(|| {
            panic!("the intake lease's holder {holder} is none of the test's daemons")
        });
        let killed = daemons.swap_remove(victim);
        let killed_at = Instant::now();
        kill_daemon(killed).await;
        let stored = scalar(&pool, stored_sql).await;
        let processed = scalar(&pool, processed_sql).await;
        let before = intake_progress(&pool).await;
        let mut t = Takeover {
            stored,
            processed,
            mid_batch: processed < end,
            lease: None,
            progress: None,
            by_survivor: false,
        };
        // Watch the survivor take over; give it well beyond what it may take, so that a
        // slow takeover is measured, not just cut off.
        let give_up = killed_at + LEASE + TAKEOVER_MARGIN + Duration::from_secs(10);
        while (t.lease.is_none() || t.progress.is_none()) && Instant::now() < give_up {
            daemons[0].assert_alive();
            if t.lease.is_none()
                && let Some(h) = intake_holder(&pool).await
                && h != holder
            {
                t.lease = Some(killed_at.elapsed());
                t.by_survivor = daemon_of(&daemons, &h) == Some(0);
            }
            if t.progress.is_none() && intake_progress(&pool).await > before {
                t.progress = Some(killed_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        takeovers.push(t);
        // The killed daemon comes back as a new process, and waits.
        daemons.push(env.start_daemon());
        appending.await.expect("append the batch");
        wait_alive(&pool, &mut daemons).await;
    }
    run.settle_all(&pool, &mut daemons, &mids).await;
    let own_copies = copies_back(&pool, env, n).await;
    let log_text = all_logs(&env.dir);
    let confirmed = log_text.matches("副本已到达").count();
    let resent = log_text.matches("没有找到中断发送的副本").count();
    let bound = LEASE + TAKEOVER_MARGIN;
    let worst = |f: fn(&Takeover) -> Option<Duration>| {
        takeovers
            .iter()
            .map(f)
            .max_by_key(|d| d.unwrap_or(Duration::MAX))
            .flatten()
    };
    let (worst_lease, worst_progress) = (worst(|t| t.lease), worst(|t| t.progress));
    let mid_batch = takeovers.iter().filter(|t| t.mid_batch).count();
    let at_kill: Vec<String> = takeovers
        .iter()
        .map(|t| {
            format!(
                "{}/{} ({}s, {}s)",
                t.stored,
                t.processed,
                secs(t.lease),
                secs(t.progress)
            )
        })
        .collect();
    let by_other = takeovers.iter().filter(|t| t.by_survivor).count();
    Report {
        head: format!(
            "two daemons on one PostgreSQL database, the intake holder killed -9 ×{} during {n} mails in {} batches (seed {seed}; stored/processed at each kill (lease taken over, next progress): {}; {mid_batch} kills mid-batch; taken over by the other daemon {by_other}×, at worst after {} s, progress after {} s, lease {} s): ",
            takeovers.len(),
            n.div_ceil(batch),
            at_kill.join(" "),
            secs(worst_lease),
            secs(worst_progress),
            LEASE.as_secs(),
        ),
        tail: format!(
            ", own copies {own_copies}, interrupted sends confirmed by their copy {confirmed} / sent again {resent}"
        ),
        checks: vec![
            check_eq(takeovers.len(), kills, "kills"),
            check(
                mid_batch == kills,
                format!("every kill landed mid-batch: {at_kill:?}"),
            ),
            check(
                worst_lease.is_some_and(|d| d <= bound),
                format!(
                    "the other daemon took the intake lease within {bound:?} of every kill: {at_kill:?}"
                ),
            ),
            check_eq(by_other, kills, "each time the other daemon took over"),
            check(
                worst_progress.is_some_and(|d| d <= bound),
                format!("the intake went on within {bound:?} of every kill: {at_kill:?}"),
            ),
            check_eq(own_copies, n as i64, "one copy of each ack came back"),
        ],
        daemons,
        pool,
        mids,
    }
}

/// Where an SMTP session through [`slow_smtp`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// No mail under way: before the first MAIL FROM, or the last one's final answer delivered.
    Idle,
    /// A mail is being handed over: from MAIL FROM until the end of its data.
    Mail,
    /// The end of data sent, the server's final answer not yet delivered to the client (the
    /// server may have taken the mail without the client knowing).
    Ending,
}

/// What [`slow_smtp`] sees: each client connection (by its port) and where it stands, and how
/// many connections were cut off by their client in the middle of a mail (a kill mid-send).
#[derive(Default)]
struct SmtpWatch {
    sessions: std::sync::Mutex<BTreeMap<u16, Stage>>,
    cut_mid_mail: std::sync::atomic::AtomicUsize,
}

impl SmtpWatch {
    fn set(&self, port: u16, stage: Stage) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(port, stage);
        }
    }
    fn stage(&self, port: u16) -> Stage {
        self.sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&port).copied())
            .unwrap_or(Stage::Idle)
    }
    fn cut(&self) -> usize {
        self.cut_mid_mail.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Whether the process `pid` has a session through the proxy (listening on `proxy`) in
    /// the middle of handing a mail over ([`Stage::Mail`]: a round trip or more from its end,
    /// so that a kill that follows at once still lands in it).
    fn mid_mail(&self, pid: u32, proxy: u16) -> bool {
        smtp_client_ports(pid, proxy)
            .iter()
            .any(|&p| self.stage(p) == Stage::Mail)
    }
}

/// The local ports of the TCP connections that process `pid` has open to port `to` of the
/// loopback: its sockets (`/proc/PID/fd`) looked up in `/proc/net/tcp`.
fn smtp_client_ports(pid: u32, to: u16) -> Vec<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, inode) = (f.get(1)?, f.get(2)?, f.get(9)?);
            (port(remote) == Some(to) && inodes.contains(*inode))
                .then(|| port(local))
                .flatten()
        })
        .collect()
}

/// A TCP proxy in front of the stack's Postfix that holds every answer of the server back by
/// `delay`: a mail takes several round trips (MAIL, RCPT ×3, DATA, the end of data), so the
/// senders slow to a pace at which a kill finds mails `sending`. It follows each session far
/// enough to tell whether a mail is under way ([`SmtpWatch`]), so that a kill is known to
/// land in the middle of one. Runs until the test ends; returns its port.
async fn slow_smtp(delay: Duration) -> (u16, std::sync::Arc<SmtpWatch>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the SMTP proxy");
    let port = listener.local_addr().expect("proxy address").port();
    let upstream = stack().smtp;
    let watch = std::sync::Arc::new(SmtpWatch::default());
    let w = watch.clone();
    tokio::spawn(async move {
        while let Ok((client, peer)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let me = peer.port();
                w.set(me, Stage::Idle);
                let (mut client_r, mut client_w) = client.into_split();
                let (mut server_r, mut server_w) = server.into_split();
                // A client killed mid-mail closes its side: Postfix sees the end of the
                // connection, as it would without the proxy.
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    // The last bytes seen, for an end of data split over two reads.
                    let mut tail: Vec<u8> = Vec::new();
                    loop {
                        let n = match client_r.read(&mut buf).await {
                            Ok(n) if n > 0 => n,
                            _ => {
                                // Closed (or reset) by the client: mid-mail unless idle.
                                if w.stage(me) != Stage::Idle {
                                    w.cut_mid_mail
                                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                }
                                break;
                            }
                        };
                        let chunk = &buf[..n];
                        tail.extend_from_slice(&chunk[n.saturating_sub(5)..]);
                        tail.drain(..tail.len().saturating_sub(5));
                        // lettre does not pipeline: a command is one write, and the end of
                        // data is the last bytes before the client waits for the answer.
                        if chunk.len() >= 10 && chunk[..10].eq_ignore_ascii_case(b"MAIL FROM:") {
                            w.set(me, Stage::Mail);
                        } else if tail == b"\r\n.\r\n" && w.stage(me) == Stage::Mail {
                            w.set(me, Stage::Ending);
                        }
                        if server_w.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_w.shutdown().await;
                };
                let down = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = server_r.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if client_w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        // The final answer to a mail's data is through: the mail is done.
                        if w.stage(me) == Stage::Ending {
                            w.set(me, Stage::Idle);
                        }
                    }
                    let _ = client_w.shutdown().await;
                };
                tokio::join!(up, down);
                if let Ok(mut s) = w.sessions.lock() {
                    s.remove(&me);
                }
            });
        }
    });
    (port, watch)
}

/// One kill of a daemon with sends in flight.
struct MidSend {
    /// Acks sent when it was killed.
    sent: i64,
    /// Rows `sending` just before the kill, and those of the killed daemon left so after it.
    sending: i64,
    interrupted: i64,
    /// Its SMTP sessions cut off in the middle of a mail ([`SmtpWatch`]).
    cut: usize,
    /// When the killed daemon was not started again at once: from the kill to its sends in
    /// flight taken back (`unconfirmed`) by the surviving daemon.
    recovered_by_other: Option<Option<Duration>>,
}

/// The daemons named in the survivors' "another daemon stopped with mails in flight" lines:
/// whose in-flight sends were made `unconfirmed` while the daemon was not starting.
fn recovered_holders(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|l| l.contains("另一个守护进程停止时有邮件正在发送"))
        .filter_map(|l| l.split("daemon=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|h| h.trim_matches('"').to_string())
        .collect()
}

async fn killed_mid_send(run: &Run, n: usize, kills: usize, smtp_delay_ms: u64) -> Report {
    let env = &run.env;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let (port, smtp) = slow_smtp(Duration::from_millis(smtp_delay_ms)).await;
    let text = std::fs::read_to_string(&env.config).expect("config");
    let direct = format!("[smtp]\nhost = \"127.0.0.1\"\nport = {}\n", stack().smtp);
    assert!(text.contains(&direct), "{text}");
    std::fs::write(
        &env.config,
        text.replace(
            &direct,
            &format!("[smtp]\nhost = \"127.0.0.1\"\nport = {port}\n"),
        ),
    )
    .expect("config");
    let (mut daemons, pool) = start_two(env).await;
    let mails: Vec<_> = (0..n)
        .map(|i| application("send", i, &run.branches, &run.to))
        .collect();
    let mids: Vec<String> = mails.iter().map(|(m, _)| m.clone()).collect();
    let (user, folder) = (env.user.clone(), env.folder.clone());
    let appending = tokio::spawn(async move { append_all(&user, &folder, &mails).await });
    let sent_sql = "SELECT COUNT(*) FROM outbox WHERE status = 'sent'";
    let mut kills_done = Vec::new();
    let mut killed_holders = Vec::new();
    for k in 0..kills {
        // Spread over the drain: the k-th kill once k+1 parts of kills+2 are sent, at a moment
        // a daemon has mails claimed (`outbox.claimed_by`) and one of them under way on an SMTP
        // session (not, say, between two chunks or looking for the copies of earlier sends).
        wait_fast(
            &pool,
            sent_sql,
            ((k + 1) * n / (kills + 2)) as i64,
            Duration::from_secs(120),
        )
        .await;
        tokio::time::sleep(rng.millis(0, 300)).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let (victim, claimer, sending, sent) = loop {
            daemons[0].assert_alive();
            daemons[1].assert_alive();
            let sent = scalar(&pool, sent_sql).await;
            let claimed: Vec<Option<String>> =
                sqlx::query_scalar("SELECT claimed_by FROM outbox WHERE status = 'sending'")
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
            let owner = claimed.iter().flatten().find_map(|h| {
                daemon_of(&daemons, h)
                    .filter(|&i| smtp.mid_mail(daemons[i].child.id(), port))
                    .map(|i| (i, h.clone()))
            });
            if let Some((i, h)) = owner {
                break (i, h, claimed.len() as i64, sent);
            }
            assert!(
                Instant::now() < deadline,
                "no mail was being sent by one of the daemons for 60 s: {claimed:?}, SMTP sessions {:?}",
                smtp.sessions.lock().map(|s| s.clone()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let cut_before = smtp.cut();
        let killed_at = Instant::now();
        kill_daemon(daemons.swap_remove(victim)).await;
        // The proxy sees the killed client's end of the connection within moments.
        let seen_by = Instant::now() + Duration::from_secs(2);
        while smtp.cut() == cut_before && Instant::now() < seen_by {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cut = smtp.cut() - cut_before;
        let in_flight = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM outbox WHERE status = 'sending' AND claimed_by = $1",
            )
            .bind(&claimer)
            .fetch_one(&pool)
            .await
            .unwrap_or(-1)
        };
        let interrupted = in_flight().await;
        // Every other time the killed daemon stays down a while: the surviving one must take
        // its sends in flight back (and only those), not a restart of the killed one.
        let recovered_by_other = if k % 2 == 1 {
            let give_up = killed_at + Duration::from_secs(30);
            let mut took = None;
            while Instant::now() < give_up {
                daemons[0].assert_alive();
                if in_flight().await == 0 {
                    took = Some(killed_at.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Some(took)
        } else {
            None
        };
        killed_holders.push(claimer);
        kills_done.push(MidSend {
            sent,
            sending,
            interrupted,
            cut,
            recovered_by_other,
        });
        daemons.push(env.start_daemon());
        wait_alive(&pool, &mut daemons).await;
    }
    appending.await.expect("append the mails");
    run.settle_all(&pool, &mut daemons, &mids).await;
    let own_copies = copies_back(&pool, env, n).await;
    let log_text = all_logs(&env.dir);
    let confirmed = log_text.matches("副本已到达").count();
    let resent = log_text.matches("没有找到中断发送的副本").count();
    let at_kill: Vec<String> = kills_done
        .iter()
        .map(|m| {
            let by_other = match m.recovered_by_other {
                Some(t) => format!(" (taken back by the other after {} s)", secs(t)),
                None => String::new(),
            };
            format!(
                "{}/{}/{}/{}{by_other}",
                m.sent, m.sending, m.interrupted, m.cut
            )
        })
        .collect();
    let interrupted: i64 = kills_done.iter().map(|m| m.interrupted.max(0)).sum();
    let cut: usize = kills_done.iter().map(|m| m.cut).sum();
    let recovered = recovered_holders(&log_text);
    let wrongly_recovered: Vec<&String> = recovered
        .iter()
        .filter(|h| !killed_holders.contains(h))
        .collect();
    Report {
        head: format!(
            "two daemons on one PostgreSQL database sending {n} acks through SMTP slowed {smtp_delay_ms} ms per answer, a daemon with sends in flight killed -9 ×{kills} (seed {seed}; sent/sending/interrupted/SMTP mails cut off at each kill: {}; {interrupted} sends interrupted, {cut} SMTP mails cut off, a dead daemon's sends taken back by a live one {}×, a live one's never): ",
            at_kill.join(" "),
            recovered.len(),
        ),
        tail: format!(
            ", own copies {own_copies}, interrupted sends confirmed by their copy {confirmed} / sent again {resent}"
        ),
        checks: vec![
            check(
                kills_done.iter().all(|m| m.interrupted > 0),
                format!("every kill left sends of the killed daemon in flight: {at_kill:?}"),
            ),
            check(
                kills_done.iter().all(|m| m.cut > 0),
                format!("every kill cut off an SMTP session in the middle of a mail: {at_kill:?}"),
            ),
            check(
                kills_done.iter().all(|m| {
                    m.recovered_by_other
                        .is_none_or(|t| t.is_some_and(|t| t <= LEASE + TAKEOVER_MARGIN))
                }),
                format!(
                    "the surviving daemon took back the sends of a killed one that stayed down within {:?}: {at_kill:?}",
                    LEASE + TAKEOVER_MARGIN
                ),
            ),
            check(
                wrongly_recovered.is_empty(),
                format!(
                    "only killed daemons' sends were taken back: {wrongly_recovered:?} (killed {killed_holders:?})"
                ),
            ),
            check_eq(own_copies, n as i64, "one copy of each ack came back"),
        ],
        daemons,
        pool,
        mids,
    }
}
