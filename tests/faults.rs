//! Fault injection through the real servers: kill -9 in the middle of a large batch, the SMTP
//! server down (dead letters and `shenbao outbox retry`), the IMAP server restarted while the
//! daemon idles and while it fetches, the intake folder deleted and recreated (new
//! UIDVALIDITY), and a Sieve vacation auto-responder that must not start a mail loop.
//!
//! Every scenario counts what matters — mails lost, records doubled, acknowledgements doubled
//! in the recipients' mailboxes — prints the counts in one `faults:` line and asserts them.
//!
//! The scenarios stop and restart mail servers, so they run on a private mail stack of their
//! own (its own directory and ports, started fresh by this binary) and one at a time (a global
//! lock): nothing else, not even another test binary running at the same moment, is disturbed.
//! Each scenario has its own intake mailbox (intake13 … intake17) and Message-ID domain.
//! Run: `cargo test --test faults -- --nocapture` (`FAULTS_SEED=n` changes the kill points).

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

/// A scenario's environment: the common test env plus the smtp keys the faults need.
async fn fault_env(name: &str, user: &str, smtp_extra: &str) -> TestEnv {
    let roster = sample_roster();
    let env = TestEnv::new(
        name,
        user,
        EnvOptions {
            roster: &roster,
            // Not late: the counts are about delivery, not about the deadline.
            deadline: "2099-12-31T23:59:59",
            max_per_sender: 1000,
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

/// `shenbao health` for this scenario: its exit code (0 ok, 1 warning, 2 critical) and text.
fn health(env: &TestEnv) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .arg("--config")
        .arg(&env.config)
        .arg("health")
        .env("SHENBAO_LOG", "warn")
        .output()
        .expect("run shenbao health");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn scalar(pool: &sqlx::SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

/// Opens the scenario's database once the daemon has created it.
async fn db_when_ready(env: &TestEnv) -> sqlx::SqlitePool {
    let path = env.dir.join("data/shenbao.db");
    wait_for("the database to exist", Duration::from_secs(30), || {
        let p = path.clone();
        async move { p.exists() }
    })
    .await;
    env.db().await
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
async fn tally(pool: &sqlx::SqlitePool, env: &TestEnv, ack_user: &str, mids: &[String]) -> Tally {
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
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM submissions GROUP BY kind, branch_key, version)",
    )
    .await;
    let gaps = scalar(
        pool,
        "SELECT COUNT(*) FROM (SELECT kind, branch_key FROM submissions GROUP BY kind, branch_key HAVING MAX(version) != COUNT(*))",
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
    pool: &sqlx::SqlitePool,
    env: &TestEnv,
    daemon: &mut Daemon,
    ack_user: &str,
    mids: &[String],
    timeout: Duration,
) {
    let n = mids.len() as i64;
    wait_for("every mail processed and sent", timeout, || {
        daemon.assert_alive();
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
async fn wait_fast(pool: &sqlx::SqlitePool, sql: &str, target: i64, timeout: Duration) {
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

/// a. kill -9 at random points while 1,000 mails come in, 20 times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_twenty_times_during_a_thousand_mails() {
    const N: usize = 1000;
    const KILLS: usize = 20;
    let _serial = serial().await;
    let t0 = Instant::now();
    let env = fault_env(
        "faults-kill",
        "intake13",
        "confirm_grace = \"2s\"\nretry_initial = \"1s\"",
    )
    .await;
    let _logs = LogsOnFailure(env.dir.clone());
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20250920u64);
    let mut rng = Rng::new(seed);
    let branches = roster_branches();
    let to = format!("{}@example.test", env.user);
    let mails: Vec<_> = (0..N)
        .map(|i| application("kill", i, &branches, &to))
        .collect();
    let mids: Vec<String> = mails.iter().map(|(m, _)| m.clone()).collect();
    append_all(&env.user, &env.folder, &mails).await;
    let appended = count(&env.user, &env.folder).await as usize;
    assert_eq!(appended, N, "all {N} appended");
    // Everything already in the folder is the batch: backfill from yesterday (server dates).
    let since = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let args = ["--backfill-since", since.as_str()];

    let mut stored_at_kill = Vec::new();
    let mut pool = None;
    for _ in 0..KILLS {
        let daemon = env.start_daemon_with(&args);
        // Kill anywhere from "still starting up" to "well into the work": storing, processing,
        // sending, moving. 20 short lives cover most of the batch; the last run finishes it.
        // (The window is short: the whole batch takes the daemon only a few seconds.)
        tokio::time::sleep(rng.millis(50, 600)).await;
        kill_daemon(daemon).await;
        if pool.is_none() && env.dir.join("data/shenbao.db").exists() {
            pool = Some(env.db().await);
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
        None => db_when_ready(&env).await,
    };
    settle(
        &pool,
        &env,
        &mut daemon,
        "catchall",
        &mids,
        Duration::from_secs(240),
    )
    .await;
    let t = tally(&pool, &env, "catchall", &mids).await;
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
                >= N as i64
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
        .filter(|&&(stored, sent)| stored < N as i64 || sent < N as i64)
        .count();
    let at_kill: Vec<String> = stored_at_kill
        .iter()
        .map(|(stored, sent)| format!("{stored}/{sent}"))
        .collect();
    eprintln!(
        "faults: kill -9 ×{KILLS} during {N} mails (seed {seed}; stored/sent at each kill: {}; {mid_batch} kills before the work was done): {}, own copies {own_copies}, interrupted sends confirmed by their copy {confirmed} / sent again {resent}, {:.1} s",
        at_kill.join(" "),
        t.summary(N),
        t0.elapsed().as_secs_f64()
    );
    assert_tally("kill -9", &t, N);
    assert!(
        mid_batch >= KILLS / 2,
        "most kills should land before the work is done: {at_kill:?}"
    );
    assert_eq!(own_copies, N as i64, "one copy of each ack came back");
    wait_for(
        "the intake folder to empty",
        Duration::from_secs(30),
        || async { count(&env.user, &env.folder).await == 0 },
    )
    .await;
    stop_daemon(daemon).await;
}

/// b. Postfix down: retries with backoff, some acks go out once it is back, the rest become
/// dead letters that `status` shows and `shenbao outbox retry` delivers exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_smtp_down_then_dead_letters_and_retry() {
    let _serial = serial().await;
    let t0 = Instant::now();
    let env = fault_env(
        "faults-smtp",
        "intake14",
        "confirm_grace = \"2s\"\nretry_initial = \"1s\"\nmax_attempts = 4",
    )
    .await;
    let _logs = LogsOnFailure(env.dir.clone());
    let branches = roster_branches();
    let to = format!("{}@example.test", env.user);
    let doomed: Vec<_> = (0..2)
        .map(|i| application("dead", i, &branches, &to))
        .collect();
    let late: Vec<_> = (0..4)
        .map(|i| application("late", i, &branches, &to))
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
    let (code, out) = health(&env);
    assert_eq!(code, 0, "healthy before the outage:\n{out}");

    mailstack_cmd("stop-postfix");
    // 1. These fail 4 times (after 1 s, 2 s, 4 s) and are given up.
    append_all(&env.user, &env.folder, &doomed).await;
    wait_for("the first two to become dead letters", Duration::from_secs(60), || {
        daemon.assert_alive();
        let pool = &pool;
        async move { scalar(pool, "SELECT COUNT(*) FROM outbox WHERE status = 'dead'").await == 2 }
    })
    .await;
    // 2. These fail once or twice, then Postfix comes back and they go out.
    append_all(&env.user, &env.folder, &late).await;
    wait_for(
        "the next four to fail once",
        Duration::from_secs(30),
        || async {
            scalar(
                &pool,
                "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND attempts >= 1",
            )
            .await
                == 4
        },
    )
    .await;
    let failed_attempts = scalar(&pool, "SELECT SUM(attempts) FROM outbox").await;
    // With Postfix down, mail waits in the outbox: `health` says so, critically.
    let mut last = (0, String::new());
    wait_for("health to turn critical", Duration::from_secs(15), || {
        last = health(&env);
        let critical = last.0 == 2;
        async move { critical }
    })
    .await;
    assert!(last.1.contains("发件箱"), "{}", last.1);
    mailstack_cmd("start-postfix");
    let late_mids: Vec<String> = late.iter().map(|(m, _)| m.clone()).collect();
    wait_for("the four to be sent", Duration::from_secs(30), || async {
        scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await == 4
    })
    .await;
    let dead_after_return =
        scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'dead'").await;
    assert_eq!(dead_after_return, 2, "only the first two were given up");

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
    assert!(listed.contains("共 2 封"), "{listed}");
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
        "the retried two to be sent",
        Duration::from_secs(45),
        || async { scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await == 6 },
    )
    .await;
    let pickup = retried_at.elapsed();
    // Postfix back, the dead letters resent, nothing waiting: healthy again.
    wait_for("health to return to ok", Duration::from_secs(15), || {
        last = health(&env);
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
    settle(
        &pool,
        &env,
        &mut daemon,
        "catchall",
        &mids,
        Duration::from_secs(30),
    )
    .await;
    let t = tally(&pool, &env, "catchall", &mids).await;
    let status = env.cli(&["status"]);
    eprintln!(
        "faults: postfix down during 6 mails: {failed_attempts} failed attempts, 4 sent after it returned, 2 dead letters → `outbox retry` → sent after {:.1} s; {}, {:.1} s",
        pickup.as_secs_f64(),
        t.summary(6),
        t0.elapsed().as_secs_f64()
    );
    assert_tally("postfix down", &t, 6);
    assert!(
        !status.contains("shenbao outbox retry"),
        "no dead letter left:\n{status}"
    );
    stop_daemon(daemon).await;
}

/// c. Dovecot restarted while the daemon is in IDLE, and twice while it fetches a batch of 200
/// mails with a 5 MB attachment among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_dovecot_restarts_during_idle_and_fetch() {
    const N: usize = 400;
    let _serial = serial().await;
    let t0 = Instant::now();
    let env = fault_env(
        "faults-imap",
        "intake15",
        "confirm_grace = \"2s\"\nretry_initial = \"1s\"",
    )
    .await;
    let _logs = LogsOnFailure(env.dir.clone());
    let branches = roster_branches();
    let to = format!("{}@example.test", env.user);
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let pool = env.db().await;

    // 1. In IDLE.
    tokio::time::sleep(Duration::from_secs(2)).await;
    mailstack_cmd("restart-dovecot");
    let idle: Vec<_> = (0..5)
        .map(|i| application("idle", i, &branches, &to))
        .collect();
    append_all(&env.user, &env.folder, &idle).await;
    let mut mids: Vec<String> = idle.iter().map(|(m, _)| m.clone()).collect();
    settle(
        &pool,
        &env,
        &mut daemon,
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
    // on a full folder; Dovecot is restarted twice along the way.
    stop_daemon(daemon).await;
    let mut batch: Vec<_> = (0..N)
        .map(|i| application("fetch", i, &branches, &to))
        .collect();
    let big = format!("fetch-big-{}@faults.example.edu.cn", std::process::id());
    batch[N / 3] = (
        big.clone(),
        with_attachment(&big, &to, &branches[0], 5 * 1024 * 1024),
    );
    append_all(&env.user, &env.folder, &batch).await;
    mids.extend(batch.iter().map(|(m, _)| m.clone()));
    let mut daemon = env.start_daemon();
    let stored_sql = "SELECT COUNT(*) FROM messages WHERE message_id LIKE 'fetch-%'";
    let mut restarts_at = Vec::new();
    // The first restart a quarter into the batch, the second as soon as the daemon is back
    // and fetching again.
    wait_fast(&pool, stored_sql, (N / 4) as i64, Duration::from_secs(120)).await;
    for round in 0..2 {
        let connected = connections(&daemon);
        let at = scalar(&pool, stored_sql).await;
        mailstack_cmd("restart-dovecot");
        restarts_at.push(format!("{at}–{}", scalar(&pool, stored_sql).await));
        if round == 1 {
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
    settle(
        &pool,
        &env,
        &mut daemon,
        "catchall",
        &mids,
        Duration::from_secs(180),
    )
    .await;
    let t = tally(&pool, &env, "catchall", &mids).await;
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
    eprintln!(
        "faults: dovecot restarted in IDLE (then 5 mails, {reconnects_idle} reconnects) and twice while fetching {N} mails (while {} of them were stored, {reconnects_fetch} reconnects; one of {:.1} MB): {}, {:.1} s",
        restarts_at.join(" and "),
        big_size as f64 / 1048576.0,
        t.summary(N + 5),
        t0.elapsed().as_secs_f64()
    );
    assert_tally("dovecot restarts", &t, N + 5);
    assert!(reconnects_idle >= 1, "the IDLE session noticed the restart");
    assert!(
        reconnects_fetch >= 2 && last_restart_done < N as i64,
        "both restarts came while the batch was being fetched: {restarts_at:?}, {reconnects_fetch} reconnects"
    );
    assert!(big_size > 5 * 1024 * 1024, "the 5 MB mail was stored whole");
    stop_daemon(daemon).await;
}

/// d. The intake folder is deleted and recreated (new UIDVALIDITY) while the daemon works
/// through a batch; the old mail comes back (a restore) next to new mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_folder_recreated_with_a_new_uidvalidity() {
    const OLD: usize = 300;
    const NEW: usize = 50;
    let _serial = serial().await;
    let t0 = Instant::now();
    let env = fault_env(
        "faults-uidv",
        "intake16",
        "confirm_grace = \"2s\"\nretry_initial = \"1s\"",
    )
    .await;
    let _logs = LogsOnFailure(env.dir.clone());
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
    let branches = roster_branches();
    let to = format!("{}@example.test", env.user);
    let old: Vec<_> = (0..OLD)
        .map(|i| application("old", i, &branches, &to))
        .collect();
    let new: Vec<_> = (0..NEW)
        .map(|i| application("new", i, &branches, &to))
        .collect();
    let mut daemon = env.start_daemon();
    wait_for("the daemon to connect", Duration::from_secs(30), || {
        daemon.assert_alive();
        let p = env.dir.join("data/shenbao.db");
        async move { p.exists() }
    })
    .await;
    let pool = env.db().await;
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
        (OLD / 4) as i64,
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
    settle(
        &pool,
        &env,
        &mut daemon,
        "catchall",
        &mids,
        Duration::from_secs(30),
    )
    .await;
    let t = tally(&pool, &env, "catchall", &mids).await;
    let uidvalidities = scalar(
        &pool,
        "SELECT COUNT(DISTINCT uidvalidity) FROM messages WHERE uidvalidity IS NOT NULL",
    )
    .await;
    let skipped = std::fs::read_to_string(&daemon.log)
        .unwrap_or_default()
        .matches("不再处理")
        .count();
    eprintln!(
        "faults: intake folder deleted and recreated while {processed_at_delete}–{processed_after_delete} of {OLD} were processed, all {OLD} restored + {NEW} new: {uidvalidities} UIDVALIDITIES, {skipped} recognised as already stored; {}, {:.1} s",
        t.summary(OLD + NEW),
        t0.elapsed().as_secs_f64()
    );
    assert_tally("new UIDVALIDITY", &t, OLD + NEW);
    assert_eq!(uidvalidities, 2);
    assert!(
        processed_after_delete < OLD as i64,
        "the folder was deleted mid-batch ({processed_after_delete}/{OLD} processed)"
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM outbox").await,
        (OLD + NEW) as i64,
        "one ack queued per mail"
    );
    stop_daemon(daemon).await;
}

/// e. A Sieve vacation auto-responder: it gets exactly one ack and does not answer it; its
/// genuine vacation reply to the intake is recorded as automatic and not answered: no loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_sieve_vacation_does_not_loop() {
    let _serial = serial().await;
    let t0 = Instant::now();
    let env = fault_env(
        "faults-vacation",
        "intake17",
        "confirm_grace = \"2s\"\nretry_initial = \"1s\"",
    )
    .await;
    let _logs = LogsOnFailure(env.dir.clone());
    empty_inbox("vacation1").await;
    let intake = format!("{}@example.test", env.user);
    let vacation = "vacation1@example.test";
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let pool = env.db().await;

    // 1. vacation1 applies (through SMTP, as a person would); shenbao answers once.
    let branch = roster_branches()[3].clone();
    let app_mid = format!("vacation-app-{}@example.test", std::process::id());
    let application = format!(
        "From: <{vacation}>\r\nTo: <{intake}>\r\nSubject: =?UTF-8?B?{}?=\r\nMessage-ID: <{app_mid}>\r\nDate: Sat, 20 Sep 2025 21:46:32 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n老师好，附件随后补交。\r\n",
        b64(&format!("对标争先建设项目申报-{branch}"))
    );
    smtp_send(vacation, &intake, application.as_bytes()).await;
    wait_for(
        "the ack to reach vacation1",
        Duration::from_secs(60),
        || async { !our_acks(&env, "vacation1").await.is_empty() },
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
    let acks_at_vacation1 = our_acks(&env, "vacation1").await;
    let vacation1_inbox = headers("vacation1", "INBOX").await;
    let intake_total = scalar(&pool, "SELECT COUNT(*) FROM messages").await;
    let dispositions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(disposition, status), COUNT(*) FROM messages GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("dispositions");
    let sent_total = scalar(&pool, "SELECT COUNT(*) FROM outbox").await;
    eprintln!(
        "faults: sieve vacation: {} mails exchanged (intake received {intake_total}: {dispositions:?}; shenbao sent {sent_total}; vacation1 received {}); acks to vacation1 {}, vacation replies to the intake {} (dispositions {:?}), answers to them {}, {:.1} s",
        intake_total as usize + vacation1_inbox.len(),
        vacation1_inbox.len(),
        acks_at_vacation1.len(),
        vacation_replies.len(),
        vacation_replies
            .iter()
            .map(|(_, d)| d.as_str())
            .collect::<Vec<_>>(),
        to_vacation - 1,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        acks_at_vacation1.len(),
        1,
        "exactly one ack: {acks_at_vacation1:?}"
    );
    assert_eq!(acks_at_vacation1[0].in_reply_to, app_mid);
    assert_eq!(
        to_vacation, 1,
        "nothing but the one ack was queued for vacation1"
    );
    assert_eq!(
        vacation_replies.len(),
        1,
        "one vacation reply (to the person's mail, none to the ack): {vacation_replies:?}"
    );
    assert_eq!(vacation_replies[0].1, "auto", "{vacation_replies:?}");
    assert!(
        vacation1_inbox.iter().any(|h| h.message_id == hello_mid),
        "the person's mail reached vacation1"
    );
    assert_eq!(vacation1_inbox.len(), 2, "{vacation1_inbox:?}");
    assert!(
        vacation1_inbox.iter().all(|h| !h.subject.contains("休假")),
        "no vacation reply came back to vacation1"
    );
    stop_daemon(daemon).await;
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
