//! The benchmark: shenbao against the real mail servers of `scripts/mailstack.sh`, in the
//! release build, measured from the outside the way an operator would see it.
//!
//! ```text
//! cargo bench --bench pipeline                          # everything, N = 100, 1000, 10000
//! cargo bench --bench pipeline -- --sizes 100,1000 --runs 1 --latency 200 --big-mb 50 --no-corpus
//! cargo bench --bench pipeline -- --backends sqlite,pg,pg2 --sizes 1000 --runs 1 \
//!     --latency 0 --big-mb 0 --no-corpus     # the database setups side by side
//! cargo bench --bench pipeline -- --daemon ../before/target/release/shenbao …
//!                                      # another build's daemon, for a before/after
//! ```
//!
//! 1. Throughput: N generated applications (a .docx form and an .xlsx summary each; every
//!    tenth mail a legacy .doc + .xls, every tenth a zip of both, every tenth GBK-encoded headers)
//!    are APPENDed to the `bench` mailbox while no daemon runs; then the daemon starts with
//!    `--backfill-since`. The clock starts when its IMAP session has selected the folder
//!    (process start and login are reported apart) and runs until every application is
//!    stored, read, checked and has its acknowledgement queued (and then until every ack was
//!    handed to Postfix). Short runs are repeated (`--runs`; 5 at N = 100, 3 at 1,000) and the
//!    median is shown with the slowest and fastest.
//! 2. Latency: the daemon idles on an empty mailbox; applications are sent through Postfix at
//!    a steady rate; each one's time from "Postfix accepted it" to "its ack is in the branch's
//!    mailbox" (read over IMAP every 20 ms) gives p50 / p95 / max.
//! 3. Memory: the daemon's peak RSS (VmHWM) in every run, and alone with one application that
//!    carries a 50 MB attachment.
//! 4. Parse + extract alone, in this process: every mail and Office file of `../shared/corpus`
//!    and `../shared/samples` through `understand` + `extract` (Office files wrapped as the
//!    attachment of a mail), MiB/s over the raw bytes.
//! 5. With `--backends sqlite,pg,pg2`, the throughput runs (1.) once per database setup
//!    instead, in one table: SQLite; one daemon on a fresh PostgreSQL database; and two
//!    daemons with two configs on one fresh PostgreSQL database, each reading its own intake
//!    mailbox (`bench` and `intake39`, the N mails alternately in one and the other) — the
//!    setup of an office with two campuses' mailboxes, where each folder is read by the
//!    daemon holding its lease and the outbox is shared. The two-daemon clock runs from the
//!    first folder selected to the last of all N acks queued; CPU is summed over the daemons,
//!    peak RSS shown per daemon. The server is `--postgres URL` or `SHENBAO_TEST_POSTGRES`
//!    (its role must be allowed to CREATE DATABASE; each run's database is dropped after it).
//! 6. Ceilings, measured in the same run (`--no-ceilings` skips them): before the throughput
//!    runs, single-row commits/s into a fresh SQLite file (WAL, `synchronous=FULL`), small
//!    mails/s to the local Postfix on one SMTP connection, and ack-shaped mails/s (3.7 KB, two
//!    recipients: the branch and the copy to us, on two connections); in every throughput run, right
//!    before the daemon starts, a raw `UID FETCH 1:* BODY.PEEK[]` of the same N mails, plain
//!    and over STARTTLS. A last table puts applications/s beside the STARTTLS fetch rate and
//!    acks/s beside the SMTP ceiling, as ratios.

#[path = "../tests/e2e/common.rs"]
mod common;

use common::{EnvOptions, TestEnv, imap, ncr};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INTAKE: &str = "bench";
/// The second daemon's intake mailbox in the `pg2` runs (one of scripts/mailstack.sh's
/// `intake` users no e2e test uses).
const INTAKE2: &str = "intake39";
const REPLIES: &str = "benchreply";
const BRANCHES: usize = 600;
const COLLEGES: &[&str] = &[
    "土木工程学院",
    "机械与能源工程学院",
    "电子与信息工程学院",
    "经济与管理学院",
    "海洋与地球科学学院",
    "环境科学与工程学院",
    "材料科学与工程学院",
    "交通运输工程学院",
    "建筑与城市规划学院",
    "软件学院",
    "外国语学院",
    "人文学院",
    "法学院",
    "医学院",
    "生命科学与技术学院",
    "数学科学学院",
    "物理科学与工程学院",
    "化学科学与工程学院",
    "汽车学院",
    "设计创意学院",
];
const SURNAMES: &[char] = &['王', '李', '张', '刘', '陈', '杨', '赵', '黄', '周', '吴'];
const GIVEN: &[&str] = &[
    "晓明", "雨桐", "子涵", "浩然", "思远", "佳怡", "梓萱", "一鸣",
];

struct Args {
    sizes: Vec<usize>,
    latency: usize,
    rate: f64,
    big_mb: usize,
    corpus: bool,
    /// Runs per size; by default 5 for N = 100, 3 for N = 1,000, 1 for N = 10,000.
    runs: Option<usize>,
    /// Only parse + extract this many generated applications in process, then stop.
    parse_only: usize,
    /// `--backends sqlite,pg,pg2`: the throughput runs on each database setup, side by side.
    /// Empty (the default): the throughput runs on SQLite alone, in the table of old.
    backends: Vec<Backend>,
    /// The PostgreSQL server the `pg` and `pg2` runs create their databases on (a URL whose
    /// role may `CREATE DATABASE`): `--postgres URL`, else `SHENBAO_TEST_POSTGRES`.
    postgres: Option<String>,
    /// Measure the machine's ceilings in the same run (the default; `--no-ceilings` skips):
    /// raw IMAP fetch of each run's mails, SQLite commits, SMTP to Postfix.
    ceilings: bool,
}

/// The database setup of a throughput run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    /// The embedded SQLite file: one daemon, one mailbox (the default run).
    Sqlite,
    /// One daemon on a fresh PostgreSQL database.
    Pg,
    /// Two daemons, two configs, on one fresh PostgreSQL database, each reading its own
    /// intake mailbox ([`INTAKE`] and [`INTAKE2`]) and holding that folder's lease; the N
    /// mails are split between the two mailboxes, the outbox is shared.
    Pg2,
}

impl Backend {
    fn parse(s: &str) -> Option<Backend> {
        match s.trim() {
            "sqlite" => Some(Backend::Sqlite),
            "pg" | "postgres" => Some(Backend::Pg),
            "pg2" => Some(Backend::Pg2),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Pg => "PostgreSQL, 1 daemon",
            Backend::Pg2 => "PostgreSQL, 2 daemons / 2 mailboxes",
        }
    }

    fn daemons(self) -> usize {
        if self == Backend::Pg2 { 2 } else { 1 }
    }
}

/// `--daemon PATH`: the daemon binary to measure instead of the one this `cargo bench` built
/// (another checkout's `target/release/shenbao`, for a before/after with one harness).
static DAEMON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The daemon the runs start.
fn daemon_binary() -> PathBuf {
    DAEMON
        .get()
        .cloned()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shenbao")))
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![100, 1000, 10000],
        latency: 200,
        rate: 20.0,
        big_mb: 50,
        corpus: true,
        runs: None,
        parse_only: 0,
        backends: Vec::new(),
        postgres: std::env::var("SHENBAO_TEST_POSTGRES").ok(),
        ceilings: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match arg.as_str() {
            "--sizes" => {
                a.sizes = val()
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect()
            }
            "--latency" => a.latency = val().parse().unwrap_or(a.latency),
            "--rate" => a.rate = val().parse().unwrap_or(a.rate),
            "--big-mb" => a.big_mb = val().parse().unwrap_or(a.big_mb),
            "--no-corpus" => a.corpus = false,
            "--no-ceilings" => a.ceilings = false,
            "--runs" => a.runs = val().parse().ok().filter(|&r| r > 0),
            "--parse-only" => a.parse_only = val().parse().unwrap_or(1000),
            "--backends" => {
                for name in val().split(',').filter(|s| !s.trim().is_empty()) {
                    match Backend::parse(name) {
                        Some(b) => a.backends.push(b),
                        None => eprintln!("bench: unknown backend {name} (sqlite, pg, pg2)"),
                    }
                }
            }
            "--postgres" => a.postgres = Some(val()).filter(|u| !u.is_empty()),
            "--daemon" => {
                let _ = DAEMON.set(PathBuf::from(val()));
            }
            // `cargo bench` passes --bench to every bench target (see main).
            "--bench" => {}
            other => eprintln!("bench: ignoring unknown argument {other}"),
        }
    }
    a
}

// ---------------------------------------------------------------------------------------------
// Generated applications

struct Branch {
    college: &'static str,
    name: String,
    secretary: String,
    email: String,
}

fn roster() -> Vec<Branch> {
    const NUM: &[&str] = &["一", "二", "三", "四", "五"];
    (0..BRANCHES)
        .map(|k| {
            let college = COLLEGES[k % COLLEGES.len()];
            // 30 branches a college: 21 undergraduate (7 years × 3), 5 master's, 4 doctoral.
            let j = (k / COLLEGES.len()) % 30;
            let name = match j {
                0..=20 => format!("{college}{}级本科生第{}党支部", 2019 + j % 7, NUM[j / 7]),
                21..=25 => format!("{college}硕士研究生第{}党支部", NUM[j - 21]),
                _ => format!("{college}博士研究生第{}党支部", NUM[j - 26]),
            };
            Branch {
                college,
                name,
                secretary: person(k),
                email: format!("{REPLIES}+b{k}@example.test"),
            }
        })
        .collect()
}

fn person(k: usize) -> String {
    format!(
        "{}{}",
        SURNAMES[k % SURNAMES.len()],
        GIVEN[(k / SURNAMES.len()) % GIVEN.len()]
    )
}

fn roster_csv(branches: &[Branch]) -> String {
    let mut s = String::from("学院,支部名称,书记,书记邮箱\n");
    for b in branches {
        s.push_str(&format!(
            "{},{},{},{}\n",
            b.college, b.name, b.secretary, b.email
        ));
    }
    s
}

/// The genuine attachments every generated mail is made from.
struct Templates {
    docx: Vec<u8>,
    xlsx: Vec<u8>,
    doc: Vec<u8>,
    xls: Vec<u8>,
}

fn templates() -> Templates {
    let root = common::root();
    let raw = common::read(&root.join("tests/fixtures/samples/c010/message.eml"));
    let msg = mail_parser::MessageParser::default()
        .parse(&raw[..])
        .expect("c010 parses");
    let mut docx = None;
    let mut xlsx = None;
    for a in msg.attachments() {
        let name = mail_parser::MimeHeaders::attachment_name(a).unwrap_or_default();
        if name.ends_with(".docx") {
            docx = Some(a.contents().to_vec());
        } else if name.ends_with(".xlsx") {
            xlsx = Some(a.contents().to_vec());
        }
    }
    let office = root.join("tests/fixtures/office");
    Templates {
        docx: docx.expect("c010 .docx"),
        xlsx: xlsx.expect("c010 .xlsx"),
        doc: common::read(&office.join("form-base.doc")),
        xls: common::read(&office.join("summary-base.xls")),
    }
}

/// Rewrites text in the XML entries of an Office zip.
fn patch_zip(zip_bytes: &[u8], edits: &[(String, String)]) -> Vec<u8> {
    common::map_zip_entries(zip_bytes, |name, data| {
        if !(name.ends_with("document.xml") || name.ends_with("sheet1.xml")) {
            return data;
        }
        let mut text = String::from_utf8(data).expect("utf-8 xml");
        for (from, to) in edits {
            text = text.replace(from.as_str(), to);
        }
        text.into_bytes()
    })
}

/// `data` with every `from` replaced by `to` of the same length: a binary Office file
/// (.doc, .xls) keeps its structure when a string is overwritten in place.
fn same_length_replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same-length replacement");
    let mut out = data.to_vec();
    let mut at = 0;
    while let Some(k) = out[at..].windows(from.len()).position(|w| w == from) {
        out[at + k..at + k + to.len()].copy_from_slice(to);
        at += k + to.len();
    }
    out
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A deflated zip of `files`.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        out.start_file(
            name.to_string(),
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .expect("start");
        out.write_all(bytes).expect("write");
    }
    out.finish().expect("finish").into_inner()
}

fn encoded_word(s: &str, gbk: bool) -> String {
    if gbk {
        let (bytes, _, _) = encoding_rs::GBK.encode(s);
        format!("=?gb2312?B?{}?=", shenbao::notify::compose::base64(&bytes))
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            shenbao::notify::compose::base64(s.as_bytes())
        )
    }
}

/// Filename parameters in the RFC 2231 form, percent-encoded in `gbk` or UTF-8.
fn filename_param(name: &str, gbk: bool) -> String {
    let (charset, bytes) = if gbk {
        ("gb2312", encoding_rs::GBK.encode(name).0.into_owned())
    } else {
        ("utf-8", name.as_bytes().to_vec())
    };
    let mut v = String::new();
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
            v.push(char::from(b));
        } else {
            v.push_str(&format!("%{b:02X}"));
        }
    }
    format!("filename*={charset}''{v}")
}

/// Application `i`: the branch, its Message-ID and the raw mail.
fn application(
    i: usize,
    branches: &[Branch],
    t: &Templates,
    to: &str,
    big: Option<&[u8]>,
) -> (String, Vec<u8>) {
    let b = &branches[i % branches.len()];
    let msgid = format!("bench-{i}-{}@mail.example.edu.cn", std::process::id());
    let variant = i % 10;
    let project = format!("“红色领航”第{i}期党员先锋工程");
    let leader = person(i * 7 + 3);
    let phone = format!("1{:010}", 3_800_000_000u64 + i as u64);
    let word_edits = vec![
        (
            "海洋与地球科学学院2022级本科生党支部".to_string(),
            b.name.clone(),
        ),
        ("“育苗”党团衔接培养工程".to_string(), project.clone()),
        ("朱语嫣".to_string(), leader.clone()),
        ("18224039607".to_string(), phone.clone()),
    ];
    let sheet_edits: Vec<(String, String)> = vec![
        (ncr("海洋与地球科学学院2022级本科生党支部"), ncr(&b.name)),
        (ncr("海洋与地球科学学院"), ncr(b.college)),
        (ncr("“育苗”党团衔接培养工程"), ncr(&project)),
        (ncr("朱语嫣"), ncr(&leader)),
        ("18224039607".to_string(), phone.clone()),
    ];
    let form_name = format!("{}-项目申请表", b.name);
    let summary_name = format!("对标争先建设项目申报汇总表_{}", b.name);
    let mut files: Vec<(String, &str, Vec<u8>)> = match variant {
        // The legacy files carry the mail's own phone number: shenbao's loop protection stops
        // acknowledging a sender's resends of identical content, and at N = 10,000 (a
        // branch's 17th mail) identical .doc + .xls would no longer be acked.
        6 => vec![
            (
                format!("{form_name}.doc"),
                "application/msword",
                same_length_replace(&t.doc, &utf16le("18224039607"), &utf16le(&phone)),
            ),
            (
                format!("{summary_name}.xls"),
                "application/vnd.ms-excel",
                same_length_replace(&t.xls, b"18224039607", phone.as_bytes()),
            ),
        ],
        9 => {
            let docx = patch_zip(&t.docx, &word_edits);
            let xlsx = patch_zip(&t.xlsx, &sheet_edits);
            let zip = zip_of(&[
                (&format!("{form_name}.docx"), &docx),
                (&format!("{summary_name}.xlsx"), &xlsx),
            ]);
            vec![(
                format!("{}-申报材料.zip", b.name),
                "application/x-zip-compressed",
                zip,
            )]
        }
        _ => vec![
            (
                format!("{form_name}.docx"),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                patch_zip(&t.docx, &word_edits),
            ),
            (
                format!("{summary_name}.xlsx"),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                patch_zip(&t.xlsx, &sheet_edits),
            ),
        ],
    };
    if let Some(big) = big {
        files.push((
            "活动照片（原图）.zip".to_string(),
            "application/zip",
            big.to_vec(),
        ));
    }
    let gbk = variant == 8 || variant == 3;
    let subject = format!("对标争先建设项目申报－{}", b.name);
    let boundary = format!("----=_Part_{i}_bench");
    let body = format!(
        "老师您好：\r\n\r\n附件是{}的项目申请表和汇总表，请查收。\r\n\r\n{}\r\n",
        b.name, b.secretary
    );
    let mut m = String::new();
    m.push_str(&format!(
        "From: {} <{}>\r\nTo: <{to}>\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{msgid}>\r\nMIME-Version: 1.0\r\n",
        encoded_word(&b.secretary, gbk),
        b.email,
        encoded_word(&subject, gbk),
        chrono::Utc::now().to_rfc2822(),
    ));
    m.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    if gbk {
        let (bytes, _, _) = encoding_rs::GBK.encode(&body);
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: text/plain; charset=\"gb2312\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            common::base64_lines(&bytes)
        ));
    } else {
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            common::base64_lines(body.as_bytes())
        ));
    }
    let mut raw = m.into_bytes();
    for (name, ctype, bytes) in files {
        let head = format!(
            "--{boundary}\r\nContent-Type: {ctype}; name=\"{}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; {}\r\n\r\n",
            encoded_word(&name, gbk),
            filename_param(&name, gbk)
        );
        raw.extend_from_slice(head.as_bytes());
        raw.extend_from_slice(common::base64_lines(&bytes).as_bytes());
    }
    raw.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (msgid, raw)
}

/// A zip of "photos" (incompressible bytes, stored) of about `mb` MiB.
fn big_zip(mb: usize) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let per = 4 << 20;
    let mut left = mb << 20;
    let mut n = 0;
    while left > 0 {
        let len = left.min(per);
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(len);
        n += 1;
        out.start_file(
            format!("IMG_{n:04}.jpg"),
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .expect("start");
        out.write_all(&data).expect("write");
        left -= len;
    }
    out.finish().expect("finish").into_inner()
}

// ---------------------------------------------------------------------------------------------
// The daemon and what we read off it

struct Running {
    child: Child,
    log: PathBuf,
    peak_rss_kb: u64,
}

impl Running {
    fn start(env: &TestEnv, backfill: bool) -> Running {
        let log = env.dir.join("daemon.log");
        let f = std::fs::File::create(&log).expect("log");
        let mut cmd = Command::new(daemon_binary());
        cmd.arg("--config").arg(&env.config).arg("run");
        if backfill {
            cmd.arg("--backfill-since").arg("2000-01-01");
        }
        let child = cmd
            .env(
                "SHENBAO_LOG",
                std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("start daemon");
        Running {
            child,
            log,
            peak_rss_kb: 0,
        }
    }

    /// VmHWM: the kernel's own high-water mark of the resident set.
    fn sample(&mut self) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("VmHWM:") {
                let kb = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                self.peak_rss_kb = self.peak_rss_kb.max(kb);
            }
        }
        if let Ok(Some(s)) = self.child.try_wait() {
            panic!(
                "daemon exited ({s}):\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    /// User + system CPU seconds the daemon has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may contain spaces): utime is the 12th, stime
        // the 13th, in clock ticks (100 per second on Linux).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
    }

    fn stop(mut self) -> u64 {
        self.sample();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        self.peak_rss_kb
    }
}

async fn db(env: &TestEnv) -> Option<sqlx::SqlitePool> {
    use std::str::FromStr;
    let path = env.dir.join("data/shenbao.db");
    if !path.exists() {
        return None;
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&env.db_url())
        .ok()?
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    sqlx::SqlitePool::connect_with(opts).await.ok()
}

async fn scalar(pool: &sqlx::SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0)
}

const DONE_SQL: &str = "SELECT COUNT(*) FROM messages WHERE status != 'stored' AND disposition IN ('application', 'closure', 'subject_help', 'question', 'auto')";
const QUEUED_SQL: &str = "SELECT COUNT(*) FROM outbox WHERE kind = 'ack'";
const SENT_SQL: &str = "SELECT COUNT(*) FROM outbox WHERE kind = 'ack' AND status = 'sent'";
/// Messages that got more than one ack: none may, whichever daemon read them.
const DOUBLED_SQL: &str = "SELECT COUNT(*) FROM (SELECT related_message FROM outbox WHERE kind = 'ack' GROUP BY related_message HAVING COUNT(*) > 1) d";
/// How many daemons sent acks (the outbox is shared: on `pg2` both should).
const SENDERS_SQL: &str =
    "SELECT COUNT(DISTINCT claimed_by) FROM outbox WHERE kind = 'ack' AND status = 'sent'";

async fn bench_env(name: &str, user: &str, branches: &[Branch], extra_imap: &str) -> TestEnv {
    let roster = roster_csv(branches);
    let env = TestEnv::new(
        name,
        user,
        EnvOptions {
            roster: &roster,
            deadline: "2035-12-31T23:59:59",
            poll_interval: "10m",
            max_per_sender: 1000,
            postgres: false,
        },
    )
    .await;
    common::empty_inbox(REPLIES).await;
    let cfg = std::fs::read_to_string(&env.config).expect("config");
    let cfg = cfg.replace("[smtp]", &format!("{extra_imap}\n[smtp]"));
    std::fs::write(&env.config, cfg).expect("config");
    env
}

/// Removes the run's processed and staff folders (they hold every message of the run).
async fn cleanup(env: &TestEnv) {
    let mut s = imap(&env.user).await;
    let _ = s.delete(common::mutf7(&env.processed)).await;
    let _ = s.delete(common::mutf7(&env.staff_folder)).await;
    let _ = s.logout().await;
    common::empty_inbox(&env.user).await;
    common::empty_inbox(REPLIES).await;
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&env.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL runs

/// A fresh, empty database on `server` for one run; returns its URL (with the server's
/// credentials). Each run gets its own, so no run starts on the rows of another.
async fn create_pg_database(server: &str, tag: &str) -> String {
    use sqlx::{Connection as _, Executor as _};
    let name = format!(
        "bench_{tag}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("connect to the PostgreSQL server: {e}"));
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = admin.close().await;
    let mut url = url::Url::parse(server).expect("the PostgreSQL server is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Drops a run's database (a 10,000 run leaves some hundred MB) unless `BENCH_KEEP` is set.
async fn drop_pg_database(server: &str, url: &str) {
    use sqlx::{Connection as _, Executor as _};
    if std::env::var_os("BENCH_KEEP").is_some() {
        return;
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return;
    };
    let name = parsed.path().trim_start_matches('/').to_string();
    if let Ok(mut admin) = sqlx::PgConnection::connect(server).await {
        if let Err(e) = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
        {
            eprintln!("bench: DROP DATABASE {name}: {e}");
        }
        let _ = admin.close().await;
    }
}

/// Points `env`'s config at the PostgreSQL database `url`, the way an office configures it:
/// the password in a file next to the config, not in the URL. `data_dir` replaces the
/// env's own data directory (the daemons sharing a database share it, as the README asks).
fn use_postgres(env: &TestEnv, url: &str, data_dir: Option<&std::path::Path>) {
    let mut bare = url::Url::parse(url).expect("database URL");
    let password = bare.password().unwrap_or_default().to_string();
    let _ = bare.set_password(None);
    let mut section = format!("[database]\nurl = \"{bare}\"\n");
    if !password.is_empty() {
        std::fs::write(env.dir.join("db.pw"), &password).expect("db.pw");
        section.push_str("password_file = \"db.pw\"\n");
    }
    let mut cfg = std::fs::read_to_string(&env.config).expect("config");
    assert!(
        !cfg.contains("[database]"),
        "the bench sets [database] itself; unset SHENBAO_TEST_BACKEND"
    );
    if let Some(dir) = data_dir {
        cfg = cfg.replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"{}\"", dir.display()),
        );
    }
    std::fs::write(&env.config, format!("{section}\n{cfg}")).expect("config");
}

/// What the bench reads the run's progress from: the daemon's SQLite file (read-only) or
/// the run's PostgreSQL database.
enum Reader {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Reader {
    /// `None` while there is nothing to read yet (the SQLite file not created).
    async fn open(env: &TestEnv, pg: Option<&str>) -> Option<Reader> {
        match pg {
            None => db(env).await.map(Reader::Sqlite),
            Some(url) => sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .ok()
                .map(Reader::Pg),
        }
    }

    /// One number; 0 when the query fails (before the daemon has created the tables).
    async fn scalar(&self, sql: &'static str) -> i64 {
        match self {
            Reader::Sqlite(p) => scalar(p, sql).await,
            Reader::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap_or(0),
        }
    }

    async fn close(&self) {
        match self {
            Reader::Sqlite(p) => p.close().await,
            Reader::Pg(p) => p.close().await,
        }
    }
}

/// Waits until Postfix has handed on everything queued (its queue directories hold no file),
/// then a second more: the last run's acks are still being delivered after it ends, and that
/// work on the same two cores slowed the next measurement by up to half.
async fn settle() {
    let dir = std::env::var("MAILSTACK_DIR").unwrap_or_else(|_| "/tmp/shenbao-mailstack".into());
    let queue = PathBuf::from(dir).join("postfix-queue");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let mut files = Vec::new();
        for q in ["maildrop", "incoming", "active", "deferred"] {
            common::files_under(&queue.join(q), &mut files);
        }
        if files.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

struct Throughput {
    n: usize,
    append_s: f64,
    /// From starting the daemon to its IMAP session on the folder (the clock's start).
    ready_s: f64,
    queued_s: f64,
    sent_s: f64,
    /// Daemon CPU seconds (summed over the daemons) from the clock's start to every ack
    /// queued, and to the end.
    cpu_queued: f64,
    cpu_s: f64,
    /// The highest of the daemons' peaks, and each daemon's.
    peak_rss_mb: f64,
    peaks_mb: Vec<f64>,
    db_mb: f64,
    /// Acks in the outbox at the end (N expected), of them sent, and messages acked twice.
    acks: i64,
    acks_sent: i64,
    doubled: i64,
    /// Acks already handed to Postfix when the last was queued (the rest went after).
    sent_at_queued: i64,
    /// The raw fetch rate of this run's N mails, measured right before the daemon started.
    fetch: Option<FetchRates>,
}

/// Throughput of a daemon that finds N mails waiting (as after a night's downtime, or a
/// deadline rush): the clock starts when its IMAP session has selected the folder and ends
/// when the last ack is queued. Starting the process, opening the database and logging in
/// are reported apart; at N = 100 they would weigh as much as the mail. Mail that arrives
/// while the daemon idles is the latency measurement's business: Dovecot waits 500 ms
/// before it announces a change in IDLE (NOTIFY_DELAY_MSECS in its mailbox-watch.c).
///
/// On `backend` [`Backend::Pg2`] two daemons run, each on its own mailbox with half the mail;
/// the clock starts when the first has selected its folder and ends when the last of all N
/// acks is queued (both write to the one database the progress is read from).
async fn throughput(
    n: usize,
    ceilings: bool,
    backend: Backend,
    pg_server: Option<&str>,
    branches: &[Branch],
    t: &Templates,
) -> Throughput {
    let mut envs = vec![bench_env(&format!("bench-{n}"), INTAKE, branches, "").await];
    if backend == Backend::Pg2 {
        envs.push(bench_env(&format!("bench-{n}-b"), INTAKE2, branches, "").await);
    }
    let pg_url = match backend {
        Backend::Sqlite => None,
        Backend::Pg | Backend::Pg2 => {
            let server =
                pg_server.expect("--backends pg/pg2 need --postgres URL or SHENBAO_TEST_POSTGRES");
            let url = create_pg_database(server, &format!("{n}")).await;
            let shared_data = envs[0].dir.join("data");
            for (k, env) in envs.iter().enumerate() {
                use_postgres(env, &url, (k > 0).then_some(shared_data.as_path()));
            }
            Some(url)
        }
    };
    eprintln!(
        "bench: N = {n} ({}): generating and appending",
        backend.label()
    );
    let started = Instant::now();
    let mut sessions = Vec::with_capacity(envs.len());
    for env in &envs {
        sessions.push(imap(&env.user).await);
    }
    for i in 0..n {
        // Alternately: both mailboxes get the same mix of the ten variants.
        let k = i % envs.len();
        let to = format!("{}@example.test", envs[k].user);
        let (_, raw) = application(i, branches, t, &to, None);
        sessions[k]
            .append("INBOX", None, None, &raw)
            .await
            .expect("APPEND");
    }
    for mut s in sessions {
        let _ = s.logout().await;
    }
    let append_s = started.elapsed().as_secs_f64();
    eprintln!("bench: N = {n}: appended in {append_s:.1} s; starting the daemon(s)");
    let fetch = if ceilings {
        settle().await;
        let users: Vec<&str> = envs.iter().map(|e| e.user.as_str()).collect();
        let f = fetch_ceiling(&users).await;
        eprintln!(
            "bench: N = {n}: raw UID FETCH of the same mails {:.0}/s plain, {:.0}/s over STARTTLS",
            f.plain, f.starttls
        );
        Some(f)
    } else {
        None
    };

    settle().await;
    let spawned = Instant::now();
    let mut ds: Vec<Running> = envs.iter().map(|env| Running::start(env, true)).collect();
    // The daemon records the folder's state right after SELECT, before the first FETCH.
    let pool = loop {
        assert!(
            spawned.elapsed() < Duration::from_secs(30),
            "daemon did not connect; see {}",
            ds[0].log.display()
        );
        if let Some(pool) = Reader::open(&envs[0], pg_url.as_deref()).await {
            if pool.scalar("SELECT COUNT(*) FROM mailbox_state").await > 0 {
                break pool;
            }
            pool.close().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let started = Instant::now();
    let ready_s = (started - spawned).as_secs_f64();
    let cpu = |ds: &[Running]| ds.iter().map(Running::cpu_seconds).sum::<f64>();
    let cpu0 = cpu(&ds);
    let mut queued_s = None;
    let mut cpu_queued = 0.0;
    let mut sent_at_queued = 0;
    let sent_s;
    let limit = Duration::from_secs(60 + n as u64);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for d in &mut ds {
            d.sample();
        }
        assert!(
            started.elapsed() < limit,
            "N = {n}: not done after {limit:?} (done {}, acks queued {}, sent {}); see {}",
            pool.scalar(DONE_SQL).await,
            pool.scalar(QUEUED_SQL).await,
            pool.scalar(SENT_SQL).await,
            ds.iter()
                .map(|d| d.log.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        );
        if queued_s.is_none()
            && pool.scalar(DONE_SQL).await >= n as i64
            && pool.scalar(QUEUED_SQL).await >= n as i64
        {
            queued_s = Some(started.elapsed().as_secs_f64());
            cpu_queued = cpu(&ds) - cpu0;
            sent_at_queued = pool.scalar(SENT_SQL).await;
        }
        if queued_s.is_some() && pool.scalar(SENT_SQL).await >= n as i64 {
            sent_s = started.elapsed().as_secs_f64();
            break;
        }
    }
    let cpu_s = cpu(&ds) - cpu0;
    let pg_mb = pool
        .scalar("SELECT pg_database_size(current_database())")
        .await as f64
        / 1048576.0;
    // A moment for anything late (a second ack would be queued right after the first).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = pool.scalar(QUEUED_SQL).await;
    let acks_sent = pool.scalar(SENT_SQL).await;
    let doubled = pool.scalar(DOUBLED_SQL).await;
    if pg_url.is_some() {
        eprintln!(
            "bench: acks queued {acks}, sent {acks_sent}, messages acked twice {doubled}, daemons that sent acks {}",
            pool.scalar(SENDERS_SQL).await
        );
    }
    pool.close().await;
    let ds_logs: Vec<PathBuf> = ds.iter().map(|d| d.log.clone()).collect();
    let peaks_mb: Vec<f64> = ds.into_iter().map(|d| d.stop() as f64 / 1024.0).collect();
    let db_mb = match &pg_url {
        Some(_) => pg_mb,
        None => std::fs::metadata(envs[0].dir.join("data/shenbao.db"))
            .map(|m| m.len() as f64 / 1048576.0)
            .unwrap_or(0.0),
    };
    for d in &ds_logs {
        let log = std::fs::read_to_string(d).unwrap_or_default();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        if !bad.is_empty() {
            eprintln!(
                "bench: {} warnings/errors in {}, the first: {}",
                bad.len(),
                d.display(),
                bad[..bad.len().min(3)].join(" | ")
            );
        }
    }
    for env in envs.iter().rev() {
        cleanup(env).await;
    }
    if let (Some(server), Some(url)) = (pg_server, &pg_url) {
        drop_pg_database(server, url).await;
    }
    Throughput {
        n,
        append_s,
        ready_s,
        queued_s: queued_s.unwrap_or(f64::NAN),
        sent_s,
        cpu_queued,
        cpu_s,
        peak_rss_mb: peaks_mb.iter().copied().fold(0.0, f64::max),
        peaks_mb,
        db_mb,
        acks,
        acks_sent,
        doubled,
        sent_at_queued,
        fetch,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Latency {
    n: usize,
    rate: f64,
    p50: f64,
    p95: f64,
    max: f64,
    peak_rss_mb: f64,
}

/// In-Reply-To of every message above `after` in `user`'s INBOX, with the UID.
async fn replies_since(s: &mut common::Session, after: u32) -> Vec<(u32, String)> {
    let Ok(stream) = s
        .uid_fetch(
            format!("{}:*", after + 1),
            "(UID BODY.PEEK[HEADER.FIELDS (IN-REPLY-TO)])",
        )
        .await
    else {
        return Vec::new();
    };
    let fetched: Vec<_> = stream.try_collect().await.unwrap_or_default();
    fetched
        .iter()
        .filter_map(|f| {
            let uid = f.uid?;
            (uid > after).then_some(())?;
            let h = String::from_utf8_lossy(f.header().or(f.body())?).into_owned();
            let id = h
                .split_once(':')
                .map(|(_, v)| v.trim().trim_matches(['<', '>']).to_string())?;
            Some((uid, id))
        })
        .collect()
}

async fn latency(n: usize, rate: f64, branches: &[Branch], t: &Templates) -> Latency {
    let env = bench_env("bench-latency", INTAKE, branches, "").await;
    settle().await;
    let mut d = Running::start(&env, false);
    wait_connected(&env).await;
    let transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(common::SMTP_PORT)
            .build();
    let mails: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| application(i, branches, t, &format!("{INTAKE}@example.test"), None))
        .collect();
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<String, Instant>::new()));
    let sender = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            use lettre::AsyncTransport;
            let gap = Duration::from_secs_f64(1.0 / rate);
            let mut next = Instant::now();
            for (i, (msgid, raw)) in mails.iter().enumerate() {
                let from = branches_email(i);
                let env = lettre::address::Envelope::new(
                    Some(from.parse().expect("from")),
                    vec![format!("{INTAKE}@example.test").parse().expect("to")],
                )
                .expect("envelope");
                transport.send_raw(&env, raw).await.expect("SMTP send");
                if let Ok(mut m) = sent_at.lock() {
                    m.insert(msgid.clone(), Instant::now());
                }
                next += gap;
                tokio::time::sleep_until(next.into()).await;
            }
        })
    };
    let mut s = imap(REPLIES).await;
    s.select("INBOX").await.expect("SELECT");
    let mut last = 0u32;
    let mut arrived: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    while arrived.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(120 + (n as f64 / rate) as u64),
            "latency: only {} of {n} acks arrived; see {}",
            arrived.len(),
            d.log.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = s.noop().await;
        for (uid, id) in replies_since(&mut s, last).await {
            last = last.max(uid);
            arrived.entry(id).or_insert_with(Instant::now);
        }
        d.sample();
    }
    sender.await.expect("sender task");
    let _ = s.logout().await;
    let peak = d.stop();
    let sent = sent_at.lock().map(|m| m.clone()).unwrap_or_default();
    let mut lat: Vec<f64> = arrived
        .iter()
        .filter_map(|(id, at)| Some(at.duration_since(*sent.get(id)?).as_secs_f64()))
        .collect();
    lat.sort_by(f64::total_cmp);
    cleanup(&env).await;
    Latency {
        n,
        rate,
        p50: percentile(&lat, 50.0),
        p95: percentile(&lat, 95.0),
        max: lat.last().copied().unwrap_or(f64::NAN),
        peak_rss_mb: peak as f64 / 1024.0,
    }
}

fn branches_email(i: usize) -> String {
    format!("{REPLIES}+b{}@example.test", i % BRANCHES)
}

/// Waits until the daemon has connected (its watermark row exists).
async fn wait_connected(env: &TestEnv) {
    let started = Instant::now();
    loop {
        if let Some(pool) = db(env).await {
            let n = scalar(&pool, "SELECT COUNT(*) FROM mailbox_state").await;
            pool.close().await;
            if n > 0 {
                // IDLE is entered right after the first catch-up.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "daemon did not connect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Big {
    mb: usize,
    raw_mb: f64,
    seconds: f64,
    peak_rss_mb: f64,
}

async fn big(mb: usize, branches: &[Branch], t: &Templates) -> Big {
    let env = bench_env(
        "bench-big",
        INTAKE,
        branches,
        "max_message_size = \"200MB\"",
    )
    .await;
    let zip = big_zip(mb);
    let (_, raw) = application(
        1,
        branches,
        t,
        &format!("{INTAKE}@example.test"),
        Some(&zip),
    );
    drop(zip);
    let raw_mb = raw.len() as f64 / 1048576.0;
    let mut s = imap(INTAKE).await;
    s.append("INBOX", None, None, &raw).await.expect("APPEND");
    let _ = s.logout().await;
    drop(raw);
    let started = Instant::now();
    let mut d = Running::start(&env, true);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        d.sample();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the big mail was not processed; see {}",
            d.log.display()
        );
        let Some(pool) = db(&env).await else { continue };
        let sent = scalar(&pool, SENT_SQL).await;
        pool.close().await;
        if sent >= 1 {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = d.stop();
    cleanup(&env).await;
    Big {
        mb,
        raw_mb,
        seconds,
        peak_rss_mb: peak as f64 / 1024.0,
    }
}

// ---------------------------------------------------------------------------------------------
// The machine's ceilings, measured in the same run

/// How fast the mail server hands over the N mails of a run, by UID FETCH alone: the most the
/// daemon could read them at. Mails per second, plain and over STARTTLS (what an office's
/// server is reached by).
#[derive(Clone, Copy, Debug)]
struct FetchRates {
    plain: f64,
    starttls: f64,
}

/// The mail stack's private CA (scripts/mailstack.sh writes it under its directory).
fn stack_ca() -> PathBuf {
    let dir = std::env::var("MAILSTACK_DIR").unwrap_or_else(|_| "/tmp/shenbao-mailstack".into());
    PathBuf::from(dir).join("tls/ca.pem")
}

/// An IMAP session over STARTTLS on the stack's IMAP port, logged in as `user`.
async fn imap_starttls(
    user: &str,
) -> async_imap::Session<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", common::stack().imap))
        .await
        .expect("connect IMAP");
    let _ = tcp.set_nodelay(true);
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    client
        .run_command_and_check_ok("STARTTLS", None)
        .await
        .expect("STARTTLS");
    let tcp = client.into_inner();
    let config = shenbao::tls::client_config(Some(&stack_ca())).expect("the stack's CA");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("server name");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    async_imap::Client::new(tls)
        .login(format!("{user}@example.test"), format!("{user}-pw"))
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

/// `UID FETCH 1:* (UID BODY.PEEK[])` of a whole INBOX (EXAMINEd: nothing changes), each mail
/// dropped as it arrives; returns the mails read and the seconds from the command to the last.
async fn fetch_all_timed<T>(s: &mut async_imap::Session<T>) -> (usize, f64)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    s.examine("INBOX").await.expect("EXAMINE INBOX");
    let started = Instant::now();
    let mut stream = s
        .uid_fetch("1:*", "(UID BODY.PEEK[])")
        .await
        .expect("UID FETCH");
    let mut n = 0;
    while let Some(f) = stream.try_next().await.expect("UID FETCH") {
        if f.body().is_some() {
            n += 1;
        }
    }
    (n, started.elapsed().as_secs_f64())
}

/// The raw fetch rate of the mails waiting in the users' INBOXes: all of them through one
/// session per user, plain and then over STARTTLS.
async fn fetch_ceiling(users: &[&str]) -> FetchRates {
    let (mut n_plain, mut t_plain, mut n_tls, mut t_tls) = (0, 0.0, 0, 0.0);
    for user in users {
        let mut s = imap(user).await;
        let (n, t) = fetch_all_timed(&mut s).await;
        let _ = s.logout().await;
        n_plain += n;
        t_plain += t;
        let mut s = imap_starttls(user).await;
        let (n, t) = fetch_all_timed(&mut s).await;
        let _ = s.logout().await;
        n_tls += n;
        t_tls += t;
    }
    FetchRates {
        plain: n_plain as f64 / t_plain,
        starttls: n_tls as f64 / t_tls,
    }
}

/// Ceilings that do not depend on the run's mails.
struct Ceilings {
    sqlite_commits: usize,
    sqlite_s: f64,
    smtp_mails: usize,
    smtp_s: f64,
    /// Ack-shaped mails ([`ACK_SHAPED`]).
    acks_mails: usize,
    acks_s: f64,
}

/// Single-row commits per second into a fresh SQLite file with the daemon's settings (WAL,
/// `synchronous=FULL`), one connection: each commit waits for its fsync, as the daemon's do.
async fn sqlite_ceiling(rows: usize) -> (usize, f64) {
    use sqlx::Connection as _;
    let dir = std::env::temp_dir().join(format!("shenbao-bench-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("ceiling.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("open the SQLite file");
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .expect("CREATE TABLE");
    let started = Instant::now();
    for i in 0..rows {
        sqlx::query("INSERT INTO t (body) VALUES (?)")
            .bind(format!("第 {i} 行"))
            .execute(&mut conn)
            .await
            .expect("INSERT");
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = conn.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    (rows, seconds)
}

/// The mailbox the ack-shaped ceiling's copies go to (one no run reads), emptied after.
const CEILING_COPIES: &str = "intake38";

/// What [`smtp_ceiling`] sends.
struct SmtpShape {
    /// SMTP sessions side by side, each taking every n-th mail.
    lanes: usize,
    /// A second recipient for every mail, as the copy to us every outgoing mail carries.
    copy: Option<&'static str>,
    /// The body; the subject and Message-ID name the shape.
    body: fn(usize) -> String,
    name: &'static str,
}

/// Small mails on one session ([`smtp_ceiling`]).
const SMALL: SmtpShape = SmtpShape {
    lanes: 1,
    copy: None,
    body: |i| format!("已收到第 {i} 封。"),
    name: "ceiling",
};

/// Ack-shaped mails ([`smtp_ceiling`]): about 3.7 KB each (the benchmark's acks measure
/// 3.6–3.9 KB), copied to a mailbox of ours, over 2 sessions (`smtp.connections`' default).
/// What the sender could reach at best.
const ACK_SHAPED: SmtpShape = SmtpShape {
    lanes: 2,
    copy: Some(CEILING_COPIES),
    body: |_| "您的申报材料已收到，系统识别结果如下。".repeat(60),
    name: "ack-shaped",
};

/// Mails of `shape` per second to the local Postfix, the way the daemon sends its acks (its
/// own TCP connection with `TCP_NODELAY`, lettre's protocol code, no TLS as in the bench's
/// config), to the mailbox the acks go to ([`REPLIES`]), which is emptied after.
async fn smtp_ceiling(mails: usize, shape: &SmtpShape) -> (usize, f64) {
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    use lettre::transport::smtp::extension::ClientId;
    let from: lettre::Address = format!("{INTAKE}@example.test").parse().expect("address");
    let copy: Option<lettre::Address> = shape
        .copy
        .map(|c| format!("{c}@example.test").parse().expect("address"));
    let started = Instant::now();
    let lanes = (0..shape.lanes).map(|lane| {
        let (from, copy) = (from.clone(), copy.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", common::stack().smtp))
                .await
                .expect("connect SMTP");
            tcp.set_nodelay(true).expect("TCP_NODELAY");
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::default())
                    .await
                    .expect("SMTP greeting");
            for i in (lane..mails).step_by(shape.lanes) {
                let to: lettre::Address = branches_email(i).parse().expect("address");
                let recipients = std::iter::once(to.clone()).chain(copy.clone()).collect();
                let envelope = lettre::address::Envelope::new(Some(from.clone()), recipients)
                    .expect("envelope");
                let raw = format!(
                    "From: {from}\r\nTo: {to}\r\nSubject: {name} {i}\r\nMessage-ID: <{name}-{i}-{}@bench.shenbao.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
                    std::process::id(),
                    (shape.body)(i),
                    name = shape.name,
                );
                conn.send(&envelope, raw.as_bytes())
                    .await
                    .expect("SMTP send");
            }
            let _ = conn.quit().await;
        }
    });
    futures::future::join_all(lanes).await;
    (mails, started.elapsed().as_secs_f64())
}

/// The SQLite and SMTP ceilings, each after the machine has settled; the test mails are
/// removed again and Postfix's queue emptied before anything else is timed.
async fn ceilings() -> Ceilings {
    settle().await;
    let (sqlite_commits, sqlite_s) = sqlite_ceiling(2000).await;
    settle().await;
    let (smtp_mails, smtp_s) = smtp_ceiling(500, &SMALL).await;
    settle().await;
    let (acks_mails, acks_s) = smtp_ceiling(500, &ACK_SHAPED).await;
    settle().await;
    common::empty_inbox(REPLIES).await;
    common::empty_inbox(CEILING_COPIES).await;
    Ceilings {
        sqlite_commits,
        sqlite_s,
        smtp_mails,
        smtp_s,
        acks_mails,
        acks_s,
    }
}

// ---------------------------------------------------------------------------------------------
// Parse + extract alone

/// An Office file as the attachment of a minimal mail, the way it reaches the pipeline.
fn wrap(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; {}\r\n\r\n",
        filename_param(name, false)
    )
    .into_bytes();
    m.extend_from_slice(common::base64_lines(bytes).as_bytes());
    m.extend_from_slice(b"--b--\r\n");
    m
}

struct CorpusRun {
    files: usize,
    mib: f64,
    seconds: f64,
    slowest: (f64, String),
}

fn corpus() -> Option<CorpusRun> {
    let shared = common::shared()?;
    let mut paths = Vec::new();
    common::files_under(&shared.join("corpus/email"), &mut paths);
    common::files_under(&shared.join("corpus/office"), &mut paths);
    common::files_under(&shared.join("samples"), &mut paths);
    let mut inputs: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let rel = p.strip_prefix(&shared).unwrap_or(&p).display().to_string();
        let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        let raw_len = bytes.len();
        if rel.contains("/email/") || ext == "eml" {
            inputs.push((rel, bytes, raw_len));
        } else if rel.contains("/office/")
            || ["doc", "docx", "xls", "xlsx", "zip"].contains(&ext.as_str())
        {
            inputs.push((rel, wrap(&name, &bytes), raw_len));
        }
    }
    let guard = shenbao::message::LoopGuard {
        own_domain: "bench.shenbao.test".into(),
        loop_header: shenbao::notify::compose::LOOP_HEADER.into(),
        own_addresses: vec!["bench@example.test".into()],
    };
    let sections: Vec<String> = Vec::new();
    let total: usize = inputs.iter().map(|i| i.2).sum();
    let mut best = f64::INFINITY;
    let mut slowest = (0.0, String::new());
    for _ in 0..3 {
        let started = Instant::now();
        for (rel, raw, _) in &inputs {
            let t = Instant::now();
            let u = shenbao::message::understand(raw, &guard);
            let e = shenbao::extract::extract(&u.attachments, &sections);
            std::hint::black_box(&e);
            let dt = t.elapsed().as_secs_f64();
            if dt > slowest.0 {
                slowest = (dt, rel.clone());
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    Some(CorpusRun {
        files: inputs.len(),
        mib: total as f64 / 1048576.0,
        seconds: best,
        slowest,
    })
}

// ---------------------------------------------------------------------------------------------

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} RAM")
}

/// The ceilings table: what the machine allows, measured in this run.
fn print_ceilings(c: &Ceilings) {
    println!("| ceiling, measured in this run | count | seconds | per second |");
    println!("|---|---:|---:|---:|");
    println!(
        "| SQLite single-row commits (WAL, synchronous=FULL, one connection) | {} | {:.2} | {:.0} |",
        c.sqlite_commits,
        c.sqlite_s,
        c.sqlite_commits as f64 / c.sqlite_s
    );
    println!(
        "| SMTP to Postfix, small mails on one connection | {} | {:.2} | {:.0} |",
        c.smtp_mails,
        c.smtp_s,
        c.smtp_mails as f64 / c.smtp_s
    );
    println!(
        "| SMTP to Postfix, ack-shaped mails (3.7 KB, to the branch + the copy to us) on two connections | {} | {:.2} | {:.0} |",
        c.acks_mails,
        c.acks_s,
        c.acks_mails as f64 / c.acks_s
    );
    println!();
}

/// Each throughput row beside its ceilings: applications/s against the raw STARTTLS fetch of
/// the same mails (measured in the same run, right before the daemon started), acks/s against
/// the SMTP ceiling — over the whole run (N ÷ all acks sent), and after the last ack was queued
/// (the backlog holds the sender back to a batch a second; see the README); the latter also
/// against the ack-shaped ceiling (two recipients each, two sessions: what the sender does).
fn print_against_ceilings(rows: &[(String, &Throughput)], c: Option<&Ceilings>) {
    if rows.iter().all(|(_, r)| r.fetch.is_none()) {
        return;
    }
    let smtp = c.map_or(f64::NAN, |c| c.smtp_mails as f64 / c.smtp_s);
    let shaped = c.map_or(f64::NAN, |c| c.acks_mails as f64 / c.acks_s);
    println!(
        "| run | applications/s | raw UID FETCH, plain (/s) | raw UID FETCH, STARTTLS (/s) | applications/s ÷ STARTTLS fetch | SMTP ceiling (/s) | acks/s, whole run | ÷ SMTP ceiling | acks/s after the last was queued | ÷ SMTP ceiling | ack-shaped SMTP ceiling (/s) | after the last was queued ÷ ack-shaped |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, r) in rows {
        let Some(f) = r.fetch else { continue };
        let apps = r.n as f64 / r.queued_s;
        let acks_whole = r.acks_sent as f64 / r.sent_s;
        let acks_after =
            (r.acks_sent - r.sent_at_queued) as f64 / (r.sent_s - r.queued_s).max(1e-3);
        println!(
            "| {label} | {apps:.0} | {:.0} | {:.0} | {:.2} | {smtp:.0} | {acks_whole:.0} | {:.2} | {acks_after:.0} | {:.2} | {shaped:.0} | {:.2} |",
            f.plain,
            f.starttls,
            apps / f.starttls,
            acks_whole / smtp,
            acks_after / smtp,
            acks_after / shaped
        );
    }
    println!();
}

/// Runs per size when `--runs` is not given: short runs vary with whatever else the machine
/// does, so they are repeated and the median shown.
fn runs_for(a: &Args, n: usize) -> usize {
    a.runs.unwrap_or((3000 / n.max(1)).clamp(1, 5))
}

/// `--backends`: the throughput run of every size on every database setup, in one table.
async fn backend_comparison(
    a: &Args,
    branches: &[Branch],
    t: &Templates,
    ceilings: Option<&Ceilings>,
) {
    let mut rows = Vec::new();
    for &n in &a.sizes {
        for &backend in &a.backends {
            let runs = runs_for(a, n);
            let mut these = Vec::with_capacity(runs);
            for run in 1..=runs {
                let r =
                    throughput(n, a.ceilings, backend, a.postgres.as_deref(), branches, t).await;
                eprintln!(
                    "bench: N = {n}, {} (run {run} of {runs}): {:.2} s to queue every ack ({:.0}/s, daemon CPU {:.1} s), {:.1} s to send them (CPU {:.1} s), peak RSS {:?} MB",
                    backend.label(),
                    r.queued_s,
                    n as f64 / r.queued_s,
                    r.cpu_queued,
                    r.sent_s,
                    r.cpu_s,
                    r.peaks_mb.iter().map(|m| m.round()).collect::<Vec<_>>()
                );
                these.push(r);
            }
            let (median, spread) = median_run(these, n, |r| r.queued_s);
            rows.push((backend, median, runs, spread));
        }
    }
    println!(
        "| backend | daemons | N | runs | daemon start → folder selected (s) | folder selected → every ack queued (s) | applications/s, median (slowest–fastest run) | all acks sent (s) | daemon CPU per application, all daemons (ms) | peak RSS per daemon (MB) | database (MB) | acks queued / sent / doubled |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (backend, r, runs, (lo, hi)) in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.2} | {} | {:.1} | {} / {} / {} |",
            backend.label(),
            backend.daemons(),
            r.n,
            runs,
            r.ready_s,
            r.queued_s,
            r.n as f64 / r.queued_s,
            lo,
            hi,
            r.sent_s,
            r.cpu_queued * 1000.0 / r.n as f64,
            r.peaks_mb
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            r.db_mb,
            r.acks,
            r.acks_sent,
            r.doubled
        );
    }
    println!();
    let labelled: Vec<(String, &Throughput)> = rows
        .iter()
        .map(|(backend, r, _, _)| (format!("{}, N = {}", backend.label(), r.n), r))
        .collect();
    print_against_ceilings(&labelled, ceilings);
}

/// The median of a size's runs by `secs` (the time to queue every ack), and the slowest and
/// fastest run as applications/s for `n` applications.
fn median_run<T>(mut runs: Vec<T>, n: usize, secs: impl Fn(&T) -> f64) -> (T, (f64, f64)) {
    runs.sort_by(|x, y| secs(x).total_cmp(&secs(y)));
    let spread = (
        n as f64 / secs(&runs[runs.len() - 1]),
        n as f64 / secs(&runs[0]),
    );
    let median = runs.swap_remove(runs.len() / 2);
    (median, spread)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` (the test suite) runs this
    // binary without it, and must not start a benchmark that takes minutes.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("pipeline benchmark: not run (use `cargo bench --bench pipeline`)");
        return;
    }
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    if a.parse_only > 0 {
        let branches = roster();
        let t = templates();
        let mails: Vec<Vec<u8>> = (0..a.parse_only)
            .map(|i| application(i, &branches, &t, "bench@example.test", None).1)
            .collect();
        let guard = shenbao::message::LoopGuard {
            own_domain: "bench.shenbao.test".into(),
            loop_header: shenbao::notify::compose::LOOP_HEADER.into(),
            own_addresses: vec!["bench@example.test".into()],
        };
        let started = Instant::now();
        for raw in &mails {
            let u = shenbao::message::understand(raw, &guard);
            std::hint::black_box(shenbao::extract::extract(&u.attachments, &[]));
        }
        let dt = started.elapsed().as_secs_f64();
        let mib = mails.iter().map(Vec::len).sum::<usize>() as f64 / 1048576.0;
        println!(
            "parse + extract of {} generated applications: {:.3} ms each, {:.1} MiB/s",
            mails.len(),
            dt * 1000.0 / mails.len() as f64,
            mib / dt
        );
        return;
    }
    rt.block_on(async {
        common::mailstack();
        let branches: &'static [Branch] = Box::leak(roster().into_boxed_slice());
        let t: &'static Templates = Box::leak(Box::new(templates()));
        println!("shenbao benchmark — {}", machine());
        println!("command: cargo bench --bench pipeline -- {}", std::env::args().skip(1).filter(|a| a != "--bench").collect::<Vec<_>>().join(" "));
        println!();
        // First: right after a large run the machine is busy for a while (its mailbox and data
        // directory being deleted), which halved this figure when it ran last.
        if a.corpus {
            settle().await;
            match corpus() {
                Some(c) => {
                    println!("| parse + extract alone | files | MiB | best of 3 (s) | MiB/s | slowest file |");
                    println!("|---|---:|---:|---:|---:|---|");
                    println!(
                        "| ../shared/corpus + samples | {} | {:.1} | {:.3} | {:.1} | {} ({:.1} ms) |",
                        c.files,
                        c.mib,
                        c.seconds,
                        c.mib / c.seconds,
                        c.slowest.1,
                        c.slowest.0 * 1000.0
                    );
                }
                None => println!("../shared/corpus not present: parse + extract throughput skipped"),
            }
        }
        println!();
        // Once, before the throughput runs; each run measures its own fetch ceiling.
        let ceilings = if a.ceilings && !a.sizes.is_empty() {
            let c = ceilings().await;
            print_ceilings(&c);
            Some(c)
        } else {
            None
        };
        if !a.backends.is_empty() {
            backend_comparison(&a, branches, t, ceilings.as_ref()).await;
        }
        let mut rows = Vec::new();
        let sizes: &[usize] = if a.backends.is_empty() { &a.sizes } else { &[] };
        for &n in sizes {
            let runs = runs_for(&a, n);
            let mut these = Vec::with_capacity(runs);
            for run in 1..=runs {
                let r = throughput(n, a.ceilings, Backend::Sqlite, None, branches, t).await;
                eprintln!(
                    "bench: N = {n} (run {run} of {runs}): {:.2} s to queue every ack ({:.0}/s, daemon CPU {:.1} s), {:.1} s to send them (CPU {:.1} s), peak RSS {:.0} MB",
                    r.queued_s,
                    n as f64 / r.queued_s,
                    r.cpu_queued,
                    r.sent_s,
                    r.cpu_s,
                    r.peak_rss_mb
                );
                these.push(r);
            }
            let (median, spread) = median_run(these, n, |r| r.queued_s);
            rows.push((median, runs, spread));
        }
        if !rows.is_empty() {
            println!("| N | runs | APPEND (s) | daemon start → folder selected (s) | folder selected → every ack queued (s) | applications/s, median (slowest–fastest run) | daemon CPU per application (ms) | all acks sent (s) | peak RSS (MB) | database (MB) |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for (r, runs, (lo, hi)) in &rows {
                println!(
                    "| {} | {} | {:.1} | {:.2} | {:.2} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.2} | {:.0} | {:.1} |",
                    r.n,
                    runs,
                    r.append_s,
                    r.ready_s,
                    r.queued_s,
                    r.n as f64 / r.queued_s,
                    lo,
                    hi,
                    r.cpu_queued * 1000.0 / r.n as f64,
                    r.sent_s,
                    r.peak_rss_mb,
                    r.db_mb
                );
            }
            println!();
            let labelled: Vec<(String, &Throughput)> =
                rows.iter().map(|(r, _, _)| (format!("N = {}", r.n), r)).collect();
            print_against_ceilings(&labelled, ceilings.as_ref());
        }
        if a.latency > 0 {
            let l = latency(a.latency, a.rate, branches, t).await;
            println!("| latency, IDLE | mails | rate (/s) | p50 (s) | p95 (s) | max (s) | peak RSS (MB) |");
            println!("|---|---:|---:|---:|---:|---:|---:|");
            println!(
                "| Postfix accepted → ack in the branch's mailbox | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.0} |",
                l.n, l.rate, l.p50, l.p95, l.max, l.peak_rss_mb
            );
            println!();
        }
        if a.big_mb > 0 {
            let b = big(a.big_mb, branches, t).await;
            println!("| one application with a {} MB attachment | raw mail (MB) | processed and acked (s) | peak RSS (MB) |", b.mb);
            println!("|---|---:|---:|---:|");
            println!("| | {:.1} | {:.2} | {:.0} |", b.raw_mb, b.seconds, b.peak_rss_mb);
            println!();
        }
    });
}
