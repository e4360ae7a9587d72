//! Shared pieces of the end-to-end tests: the real mail servers of `scripts/mailstack.sh`, a
//! daemon process with its own config, data directory and IMAP folder, and an IMAP client to
//! put mail in and read answers back.
//!
//! Tests run in parallel against one mail stack, so each test has its own intake folder and its
//! own Message-ID domain: the acknowledgements of one test are told apart from another's in the
//! shared catch-all mailbox by that domain.
#![allow(dead_code)]

use futures::TryStreamExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub const IMAP_PORT: u16 = 3143;
pub const SMTP_PORT: u16 = 2525;

/// A mail stack of `scripts/mailstack.sh`: the shared one (default directory and ports), or a
/// private one that a test binary starts for itself (tests/faults.rs stops and restarts its
/// servers, which must not disturb other test binaries that may run at the same time).
#[derive(Debug, Clone, Copy)]
pub struct Stack {
    /// MAILSTACK_DIR, or `None` for the script's default (the shared stack).
    pub dir: Option<&'static str>,
    pub imap: u16,
    pub imaps: u16,
    pub smtp: u16,
}

pub const SHARED_STACK: Stack = Stack {
    dir: None,
    imap: IMAP_PORT,
    imaps: 3993,
    smtp: SMTP_PORT,
};

static STACK: OnceLock<Stack> = OnceLock::new();

/// The stack this test binary uses (the shared one unless [`use_private_stack`] was called).
pub fn stack() -> Stack {
    *STACK.get_or_init(|| SHARED_STACK)
}

/// Makes this test binary use its own stack, started fresh (wiped) on first use. Call it
/// before anything else touches the servers.
pub fn use_private_stack(s: Stack) {
    let chosen = STACK.get_or_init(|| s);
    assert_eq!(
        chosen.dir, s.dir,
        "use_private_stack called after the stack was chosen"
    );
}

/// `bash scripts/mailstack.sh`, with every file descriptor above stderr closed first. The
/// servers it starts outlive the test process and would keep open whatever they inherit from
/// it: above all the lock of `flock /tmp/shenbao-e2e.lock cargo test …`, which a Dovecot
/// started by a test (tests/faults.rs restarts its own) then held until it was stopped, and
/// every other test run waited for.
fn mailstack_script() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(r#"for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec bash "$0" "$@""#)
        .arg(root().join("scripts/mailstack.sh"));
    cmd
}

/// `scripts/mailstack.sh ARG` for this binary's stack; panics (with its output) on failure.
pub fn mailstack_cmd(arg: &str) {
    let st = stack();
    let mut cmd = mailstack_script();
    cmd.arg(arg);
    if let Some(dir) = st.dir {
        cmd.env("MAILSTACK_DIR", dir)
            .env("MAILSTACK_IMAP_PORT", st.imap.to_string())
            .env("MAILSTACK_IMAPS_PORT", st.imaps.to_string())
            .env("MAILSTACK_SMTP_PORT", st.smtp.to_string());
    }
    let out = cmd.output().expect("run scripts/mailstack.sh");
    // The faults themselves (stop-…, restart-…) are worth seeing in a test's output.
    if arg.starts_with("stop") || arg.starts_with("restart") {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        out.status.success(),
        "scripts/mailstack.sh {arg} failed (the tests need the local mail servers and root):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared`, when this checkout has it (CI does; a fresh clone alone does not).
pub fn shared() -> Option<PathBuf> {
    let p = root().join("../shared");
    p.join("samples/index.json").is_file().then_some(p)
}

/// Starts the mail stack unless it already answers. Once per test binary.
pub fn mailstack() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if stack().dir.is_some() {
            // A private stack: always from a clean slate.
            mailstack_cmd("start");
            return;
        }
        let ok = mailstack_script()
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let out = mailstack_script()
                .arg("start")
                .env("MAILSTACK_KEEP", "1")
                .stdout(Stdio::null())
                .status()
                .expect("run scripts/mailstack.sh start");
            assert!(out.success(), "scripts/mailstack.sh start failed: the e2e tests need the local mail servers (run as root)");
        }
    });
}

pub struct TestEnv {
    pub name: String,
    /// The intake mailbox of this test (`intake1` …): each test has its own, so the copies
    /// of our own mail land where only this test's daemon looks.
    pub user: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub folder: String,
    pub processed: String,
    /// Where mail that needs a person goes (`imap.staff_folder`).
    pub staff_folder: String,
    pub domain: String,
    /// The database this env's daemon and commands use: the SQLite file under `dir` by
    /// default, a fresh PostgreSQL database with `SHENBAO_TEST_BACKEND=postgres` (or
    /// [`EnvOptions::postgres`]). Read it
    /// through [`TestEnv::db_url`].
    database_url: String,
}

/// The environment variable that picks the database backend of the e2e tests: `postgres`
/// runs them on a fresh database of the server named by [`POSTGRES_VAR`], anything else (or
/// nothing) on SQLite.
pub const BACKEND_VAR: &str = "SHENBAO_TEST_BACKEND";
/// The PostgreSQL server the tests create their databases on (a URL whose role may
/// `CREATE DATABASE`).
pub const POSTGRES_VAR: &str = "SHENBAO_TEST_POSTGRES";

/// Whether this run's envs use PostgreSQL (`SHENBAO_TEST_BACKEND=postgres`).
pub fn postgres_backend() -> bool {
    std::env::var(BACKEND_VAR).is_ok_and(|v| v.trim().eq_ignore_ascii_case("postgres"))
}

/// A fresh, empty PostgreSQL database for env `name` on the server of `SHENBAO_TEST_POSTGRES`;
/// returns its URL. The name is made of the env's name, the process id and a counter (several
/// envs of one test binary run at once), in the characters PostgreSQL takes unquoted.
pub async fn create_postgres_database(name: &str) -> String {
    use sqlx::{Connection as _, Executor as _};
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let server = std::env::var(POSTGRES_VAR).unwrap_or_else(|_| {
        panic!("{BACKEND_VAR}=postgres needs {POSTGRES_VAR} (the URL of a PostgreSQL server)")
    });
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    // The time as well as the pid: the server outlives a run (scripts/pgstack.sh keeps its
    // cluster), and a later run may get the same pid (a fresh container counts from 1 again).
    let db = format!(
        "e2e_{stem}_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis() % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut url = url::Url::parse(&server).expect("SHENBAO_TEST_POSTGRES is a URL");
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("connect to {POSTGRES_VAR}: {e}"));
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {e}"));
    let _ = admin.close().await;
    url.set_path(&db);
    url.to_string()
}

/// An `AnyPool` on `url` (SQLite or PostgreSQL). A SQLite connection waits up to 20 s for the
/// daemon's write lock instead of failing at once: the tests read while the daemon writes.
pub async fn any_pool(url: &str) -> Result<sqlx::AnyPool, sqlx::Error> {
    use sqlx::Executor as _;
    static DRIVERS: OnceLock<()> = OnceLock::new();
    DRIVERS.get_or_init(sqlx::any::install_default_drivers);
    sqlx::any::AnyPoolOptions::new()
        .after_connect(|conn, _| {
            Box::pin(async move {
                if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                    conn.execute("PRAGMA busy_timeout = 20000").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

pub struct EnvOptions<'a> {
    pub roster: &'a str,
    pub deadline: &'a str,
    pub poll_interval: &'a str,
    pub max_per_sender: u32,
    /// A fresh PostgreSQL database whatever [`BACKEND_VAR`] says (the scenarios of several
    /// daemons on one database need one); `false` leaves the choice to [`BACKEND_VAR`].
    pub postgres: bool,
}

impl Default for EnvOptions<'_> {
    fn default() -> Self {
        EnvOptions {
            roster: "学院,支部名称,书记,书记邮箱\n土木工程学院,土木工程学院本科生第一党支部,张晓明,branch1@example.test\n",
            deadline: "2025-09-27T23:59:59",
            poll_interval: "60s",
            max_per_sender: 5,
            postgres: false,
        }
    }
}

impl TestEnv {
    /// A fresh data dir and config for test `name`, watching the INBOX of `user`
    /// (`intake1` … `intake8` from scripts/mailstack.sh), emptied first.
    pub async fn new(name: &str, user: &str, opts: EnvOptions<'_>) -> TestEnv {
        mailstack();
        let unique = format!(
            "{name}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        );
        let dir = std::env::temp_dir().join(format!("shenbao-e2e-{unique}"));
        std::fs::create_dir_all(dir.join("secrets")).expect("mkdir");
        std::fs::write(dir.join("secrets/imap.password"), format!("{user}-pw\n")).expect("pw");
        std::fs::write(dir.join("roster.csv"), opts.roster).expect("roster");
        let folder = "INBOX".to_string();
        let processed = format!("已处理/{unique}");
        let staff_folder = format!("需人工处理/{unique}");
        empty_inbox(user).await;
        let domain = format!("{}.shenbao.test", unique.replace('_', "-"));
        let config = dir.join("shenbao.toml");
        let (database_url, database_section) = if opts.postgres || postgres_backend() {
            let url = create_postgres_database(name).await;
            // As an office configures it: the password in a file of its own, never in the URL.
            let mut bare = url::Url::parse(&url).expect("database URL");
            let password = bare.password().unwrap_or_default().to_string();
            let _ = bare.set_password(None);
            let section = if password.is_empty() {
                format!("[database]\nurl = \"{bare}\"\nlease = \"6s\"\n")
            } else {
                std::fs::write(dir.join("db.pw"), &password).expect("db.pw");
                format!("[database]\nurl = \"{bare}\"\npassword_file = \"db.pw\"\nlease = \"6s\"\n")
            };
            (url, section)
        } else {
            let path = dir.join("data/shenbao.db");
            (format!("sqlite://{}", path.display()), String::new())
        };
        std::fs::write(
            &config,
            format!(
                r#"{database_section}
[imap]
host = "127.0.0.1"
port = {imap_port}
tls = "none"
user = "{user}@example.test"
password_file = "secrets/imap.password"
folder = "{folder}"
processed_folder = "{processed}"
staff_folder = "{staff}"
poll_interval = "{poll}"
timeout = "20s"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from_address = "{user}@example.test"
from_name = "申报系统"
confirm_grace = "5s"
[storage]
data_dir = "data"
[campaign]
name = "2025年秋季学期学生党支部“对标争先”建设项目"
intake_address = "{user}@example.test"
deadline = "{deadline}"
roster = "roster.csv"
[ack]
message_id_domain = "{domain}"
max_per_sender = {max}
"#,
                staff = staff_folder,
                imap_port = stack().imap,
                smtp_port = stack().smtp,
                poll = opts.poll_interval,
                deadline = opts.deadline,
                max = opts.max_per_sender,
            ),
        )
        .expect("config");
        TestEnv {
            name: name.to_string(),
            user: user.to_string(),
            processed,
            staff_folder,
            dir,
            config,
            folder,
            domain,
            database_url,
        }
    }

    /// The URL of this env's database (the one its config names): the single place the
    /// tests learn where the data is.
    pub fn db_url(&self) -> String {
        self.database_url.clone()
    }

    /// Runs `shenbao --config <this config> args…` to completion.
    fn output(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_shenbao"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("SHENBAO_LOG", "warn")
            .output()
            .expect("run shenbao")
    }

    /// Runs a shenbao command that may fail; returns (success, stdout + stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.output(args);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Runs a shenbao command to completion; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "shenbao {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `shenbao health` for this env: its exit code (0 ok, 1 warning, 2 critical) and text.
    pub fn health(&self) -> (i32, String) {
        let out = self.output(&["health"]);
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn start_daemon(&self) -> Daemon {
        self.start_daemon_with(&[])
    }

    /// `shenbao run` with extra arguments (e.g. `--backfill-since`), logging at debug level to
    /// a file of its own in the test's directory.
    pub fn start_daemon_with(&self, args: &[&str]) -> Daemon {
        let log = self.dir.join(format!(
            "daemon-{}.log",
            chrono::Utc::now().format("%H%M%S%.6f")
        ));
        let f = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_shenbao"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .args(args)
            .env("SHENBAO_LOG", "info,shenbao=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("start daemon");
        Daemon { child, log }
    }

    /// The env's database, for the tests to read and (rarely) set up what they need. On
    /// either backend: statements use `$1` placeholders and portable SQL, flags are compared
    /// in SQL or read as `CASE WHEN flag THEN 1 ELSE 0 END`, integers are read as i64.
    pub async fn db(&self) -> sqlx::AnyPool {
        any_pool(&self.db_url()).await.expect("open db")
    }

    /// Waits until the daemon has connected and set its watermark on our folder. Before the
    /// daemon has created the database (or its tables) the connection or the query fails:
    /// that is "not yet".
    pub async fn wait_watermark(&self, daemon: &mut Daemon) {
        let url = self.db_url();
        let folder = self.folder.clone();
        wait_for("the daemon to connect", Duration::from_secs(30), || {
            daemon.assert_alive();
            let url = url.clone();
            let folder = folder.clone();
            async move {
                let Ok(pool) = any_pool(&url).await else {
                    return false;
                };
                let n: Option<i64> =
                    sqlx::query_scalar("SELECT COUNT(*) FROM mailbox_state WHERE folder = $1")
                        .bind(&folder)
                        .fetch_one(&pool)
                        .await
                        .ok();
                pool.close().await;
                n == Some(1)
            }
        })
        .await;
    }
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "daemon exited ({status}):\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    /// SIGTERM and wait: the graceful stop.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "daemon did not exit cleanly: {status}");
                break;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One number from the database; -1 when the query fails (e.g. before the table exists).
pub async fn scalar(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
}

/// An RFC 3339 time, in UTC (the set clocks of the simulated campaigns).
pub fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .expect("time")
}

/// Polls `cond` every 250 ms until it holds; panics after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub type Session = async_imap::Session<TcpStream>;

/// A plain IMAP session as `user` (`intake`, `catchall`, `branch1` …).
pub async fn imap(user: &str) -> Session {
    let tcp = TcpStream::connect(("127.0.0.1", stack().imap))
        .await
        .expect("connect IMAP");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    client
        .login(format!("{user}@example.test"), format!("{user}-pw"))
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

pub fn mutf7(name: &str) -> String {
    shenbao::imap::mutf7::encode(name)
}

/// Deletes every message in `user`'s INBOX (left over from an earlier run).
pub async fn empty_inbox(user: &str) {
    let mut s = imap(user).await;
    let mbox = s.select("INBOX").await.expect("SELECT INBOX");
    if mbox.exists > 0 {
        let stream = s
            .uid_store("1:*", "+FLAGS.SILENT (\\Deleted)")
            .await
            .expect("STORE");
        let _: Vec<_> = stream.try_collect().await.expect("STORE");
        let stream = s.expunge().await.expect("EXPUNGE");
        let _: Vec<_> = stream.try_collect().await.expect("EXPUNGE");
    }
    let _ = s.logout().await;
}

/// APPENDs a raw message with an INTERNALDATE (RFC 3339 in, IMAP date-time out).
pub async fn append(s: &mut Session, folder: &str, raw: &[u8], internal_date: Option<&str>) {
    let date = internal_date.map(|d| {
        let t = chrono::DateTime::parse_from_rfc3339(d).expect("rfc3339 internaldate");
        format!("\"{}\"", t.format("%d-%b-%Y %H:%M:%S %z"))
    });
    s.append(mutf7(folder), None, date.as_deref(), raw)
        .await
        .expect("APPEND");
}

/// Every message in `folder` of `user`'s mailbox, raw.
pub async fn fetch_all(user: &str, folder: &str) -> Vec<Vec<u8>> {
    fetch_each(user, folder, "BODY.PEEK[]")
        .await
        .expect("EXAMINE")
}

/// `section` (`BODY.PEEK[]`, `BODY.PEEK[HEADER]`) of every message in `folder` of `user`'s
/// mailbox; `None` when the folder cannot be opened (it does not exist).
pub async fn fetch_each(user: &str, folder: &str, section: &str) -> Option<Vec<Vec<u8>>> {
    let mut s = imap(user).await;
    let Ok(mbox) = s.examine(mutf7(folder)).await else {
        let _ = s.logout().await;
        return None;
    };
    if mbox.exists == 0 {
        let _ = s.logout().await;
        return Some(Vec::new());
    }
    let fetched: Vec<_> = s
        .uid_fetch("1:*", format!("(UID {section})"))
        .await
        .expect("fetch")
        .try_collect()
        .await
        .expect("collect");
    let _ = s.logout().await;
    Some(
        fetched
            .iter()
            .filter_map(|f| f.body().or(f.header()).map(<[u8]>::to_vec))
            .collect(),
    )
}

/// The mails our daemon sent in this test (by Message-ID domain) that reached `user`'s INBOX
/// as their `To` recipient (catch-all or an `example.test` branch mailbox). A copy delivered
/// to a `Cc` recipient (the roster's secretary, see [`cc_copies`]) is not counted here: in the
/// catch-all it would look like a second answer.
pub async fn acks(env: &TestEnv, user: &str) -> Vec<mail_parser::Message<'static>> {
    ours(env, user)
        .await
        .into_iter()
        .filter(|m| !delivered_as_cc(m))
        .collect()
}

/// Our mails that reached `user`'s INBOX as a `Cc` recipient.
pub async fn cc_copies(env: &TestEnv, user: &str) -> Vec<mail_parser::Message<'static>> {
    ours(env, user)
        .await
        .into_iter()
        .filter(|m| delivered_as_cc(m))
        .collect()
}

/// Our mails (by this test's Message-ID domain) in `user`'s INBOX.
async fn ours(env: &TestEnv, user: &str) -> Vec<mail_parser::Message<'static>> {
    fetch_all(user, "INBOX")
        .await
        .into_iter()
        .filter_map(|raw| {
            mail_parser::MessageParser::default()
                .parse(&raw[..])
                .map(|m| m.into_owned())
        })
        .filter(|m| {
            m.message_id()
                .is_some_and(|id| id.ends_with(&format!("@{}", env.domain)))
        })
        .collect()
}

/// Whether Postfix delivered this copy for a `Cc` recipient: its `X-Original-To` (the envelope
/// recipient, before the catch-all rewrote it) is in `Cc` and not in `To`.
pub fn delivered_as_cc(m: &mail_parser::Message<'_>) -> bool {
    let Some(original) = m
        .header("X-Original-To")
        .and_then(|v| v.as_text())
        .map(|s| s.trim().to_lowercase())
    else {
        return false;
    };
    let listed = |v: &mail_parser::HeaderValue<'_>| {
        v.as_address().is_some_and(|a| {
            a.iter()
                .filter_map(|x| x.address())
                .any(|x| x.eq_ignore_ascii_case(&original))
        })
    };
    m.header("Cc").is_some_and(listed) && !m.header("To").is_some_and(listed)
}

/// Counts messages in a folder of `user`'s mailbox.
pub async fn count(user: &str, folder: &str) -> u32 {
    let mut s = imap(user).await;
    let n = s
        .examine(mutf7(folder))
        .await
        .map(|m| m.exists)
        .unwrap_or(0);
    let _ = s.logout().await;
    n
}

/// Every file under `dir`, at any depth, appended to `out`.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The roster of the sample cases (24 branches).
pub fn sample_roster() -> String {
    String::from_utf8(read(&root().join("tests/fixtures/samples/roster.csv")))
        .expect("utf-8 roster")
}

/// The exported sheet with the reviewers' two columns filled from `grades` (branch → level,
/// amount); `extra` rows are appended as they are.
pub fn graded_export(export: &[u8], grades: &[(&str, &str, &str)], extra: &[[&str; 3]]) -> Vec<u8> {
    let wb =
        shenbao::extract::sheet::read_workbook(export, &Default::default()).expect("export reads");
    let rows = &wb.sheets[0].rows;
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    let mut r_out = 0u32;
    for row in rows {
        let texts: Vec<String> = row
            .iter()
            .map(shenbao::extract::model::Value::to_text)
            .collect();
        let is_header = texts.iter().any(|t| t == "支部名称");
        let branch = texts.get(2).cloned().unwrap_or_default();
        for (c, t) in texts.iter().enumerate() {
            ws.write_string(r_out, c as u16, t).expect("write");
        }
        if is_header {
            ws.write_string(r_out, 13, "评审等级").expect("write");
            ws.write_string(r_out, 14, "资助金额").expect("write");
        } else if let Some((_, level, amount)) = grades.iter().find(|(b, _, _)| *b == branch) {
            ws.write_string(r_out, 13, *level).expect("write");
            ws.write_string(r_out, 14, *amount).expect("write");
        }
        r_out += 1;
    }
    for [branch, level, amount] in extra {
        ws.write_string(r_out, 2, *branch).expect("write");
        ws.write_string(r_out, 13, *level).expect("write");
        ws.write_string(r_out, 14, *amount).expect("write");
        r_out += 1;
    }
    book.save_to_buffer().expect("xlsx")
}

/// Replaces the (possibly folded) Subject header of a raw message.
pub fn with_subject(raw: &str, subject: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    let mut in_headers = true;
    for line in raw.split_inclusive("\r\n") {
        if in_headers && line == "\r\n" {
            in_headers = false;
        }
        if in_headers && line.starts_with("Subject:") {
            out.push_str(&format!("Subject: {subject}\r\n"));
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.starts_with('\t')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
    }
    out
}

/// Base64 for RFC 2047 subjects built in tests.
pub fn b64(s: &str) -> String {
    shenbao::notify::compose::base64(s.as_bytes())
}

/// Base64 in lines of 76 characters, for attachment bodies built in tests.
pub fn base64_lines(bytes: &[u8]) -> String {
    let b = shenbao::notify::compose::base64(bytes);
    let mut out = String::with_capacity(b.len() + b.len() / 76 * 2 + 2);
    for chunk in b.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A closure (结项) mail from `from` for `branch`, with `files` attached: `.pdf` names get a
/// tiny PDF, everything else the Word bytes `docx`.
pub fn closure_mail(
    from: &str,
    to: &str,
    branch: &str,
    message_id: &str,
    files: &[&str],
    docx: &[u8],
) -> Vec<u8> {
    use lettre::message::header::ContentType;
    let mut parts = lettre::message::MultiPart::mixed().singlepart(
        lettre::message::SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body("老师好，附件是结项材料。".to_string()),
    );
    for f in files {
        let body = if f.ends_with(".pdf") {
            b"%PDF-1.4\n%test\n".to_vec()
        } else {
            docx.to_vec()
        };
        let ct = ContentType::parse("application/octet-stream").expect("content type");
        parts = parts.singlepart(lettre::message::Attachment::new(f.to_string()).body(body, ct));
    }
    lettre::Message::builder()
        .from(from.parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject(format!("对标争先建设项目结项-{branch}"))
        .message_id(Some(format!("<{message_id}>")))
        .multipart(parts)
        .expect("mail")
        .formatted()
}

/// The same zip with each entry's bytes passed through `edit(name, bytes)`: how the tests
/// and the benchmark rewrite the text of real Office files.
pub fn map_zip_entries(
    zip_bytes: &[u8],
    mut edit: impl FnMut(&str, Vec<u8>) -> Vec<u8>,
) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).expect("zip");
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let name = f.name().expect("entry name").to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read entry");
        let data = edit(&name, data);
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .expect("start");
        out.write_all(&data).expect("write");
    }
    out.finish().expect("finish").into_inner()
}

/// The form and the summary attached to sample c010 (海洋与地球科学学院2022级本科生党支部).
pub fn sample_files() -> (Vec<u8>, Vec<u8>) {
    let raw = read(&root().join("tests/fixtures/samples/c010/message.eml"));
    let msg = mail_parser::MessageParser::default()
        .parse(&raw[..])
        .expect("c010 parses");
    let mut docx = None;
    let mut xlsx = None;
    for a in msg.attachments() {
        let name = mail_parser::MimeHeaders::attachment_name(a).unwrap_or_default();
        if name.ends_with(".docx") {
            docx.get_or_insert_with(|| a.contents().to_vec());
        } else if name.ends_with(".xlsx") {
            xlsx.get_or_insert_with(|| a.contents().to_vec());
        }
    }
    (
        docx.expect("c010 has a .docx"),
        xlsx.expect("c010 has a .xlsx"),
    )
}

/// XML numeric character references (`海洋` → `&#28023;&#27915;`, ASCII as it is), as
/// LibreOffice writes the summary's strings.
pub fn ncr(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("&#{};", u32::from(c))
            }
        })
        .collect()
}

/// The branch sample c010's form is filled in for.
pub const SAMPLE_BRANCH: &str = "海洋与地球科学学院2022级本科生党支部";

/// Rewrites the entries of an Office zip, replacing text in the entries whose names end with
/// `entry` (the form's `word/document.xml`, the summary's `sheet1.xml`); each text must be there.
pub fn patch_office(zip_bytes: &[u8], entry: &str, edits: &[(&str, &str)]) -> Vec<u8> {
    map_zip_entries(zip_bytes, |name, data| {
        if !name.ends_with(entry) {
            return data;
        }
        let mut text = String::from_utf8(data).expect("utf-8 xml");
        for (from, to) in edits {
            assert!(text.contains(from), "{from:?} not in {name}");
            text = text.replace(from, to);
        }
        text.into_bytes()
    })
}

/// A mail from a person, as a mail client writes it: `files` attached, optional extra raw
/// headers (`("X-Auto-Response-Suppress", "All")`) and the thread it answers.
pub struct PersonMail<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
    pub body: &'a str,
    pub files: Vec<(String, Vec<u8>)>,
    pub headers: Vec<(&'static str, String)>,
    pub in_reply_to: Option<String>,
}

impl PersonMail<'_> {
    pub fn build(&self) -> Vec<u8> {
        use lettre::message::header::{ContentType, HeaderName, HeaderValue};
        use lettre::message::{MultiPart, SinglePart};
        let mut parts = MultiPart::mixed().singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(self.body.to_string()),
        );
        for (name, bytes) in &self.files {
            let ct = ContentType::parse("application/octet-stream").expect("content type");
            parts = parts
                .singlepart(lettre::message::Attachment::new(name.clone()).body(bytes.clone(), ct));
        }
        let mut b = lettre::Message::builder()
            .from(self.from.parse().expect("from"))
            .to(self.to.parse().expect("to"))
            .subject(self.subject)
            .message_id(Some(format!("<{}>", self.message_id)));
        for (name, value) in &self.headers {
            b = b.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(name),
                value.clone(),
            ));
        }
        if let Some(irt) = &self.in_reply_to {
            b = b
                .in_reply_to(format!("<{irt}>"))
                .references(format!("<{irt}>"));
        }
        b.multipart(parts).expect("mail").formatted()
    }
}
