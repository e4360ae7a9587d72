//! The board's benchmark: how long 总览 and 支部 take to answer with a large campaign, the
//! way a person waits for them (one HTTP request after another over loopback, so the figure
//! is the server's time plus a loopback round trip).
//!
//! ```text
//! cargo bench --bench board                                  # 10,000 branches, 30,000 versions
//! cargo bench --bench board -- --branches 2000 --versions 3 --requests 50
//! ```
//!
//! The campaign is written straight into a fresh SQLite database after `shenbao init` has
//! created it (the migrations ran): a roster of `--branches` branches in 40 colleges, each
//! with `--versions` application versions (2 attachments each, fields as a real form gives
//! them, a problem on every fifth branch's latest version, every tenth branch not applied).
//! Writing the rows directly takes seconds where mailing 30,000 applications through the
//! pipeline would take minutes, and the board only reads them. Then the release binary serves
//! the board read-only (`shenbao web`, the same handlers as under `shenbao run`), one staff
//! account logs in, and each page is fetched `--requests` times after two warm-up requests;
//! p50, p95 and max are printed. The issue's bar: p95 under 50 ms at 10,000 branches and
//! 30,000 versions.
//!
//! The board reads the campaign once per change of the database and keeps it until the next
//! one (`web/snapshot.rs`), so the last rows measure the request right after a commit — what
//! a page costs on deadline night when every mail changes the data.

use sqlx::Connection as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password-1";

struct Args {
    branches: usize,
    versions: usize,
    requests: usize,
}

fn args() -> Option<Args> {
    let mut a = Args {
        branches: 10_000,
        versions: 3,
        requests: 40,
    };
    let mut it = std::env::args().skip(1);
    let mut bench = false;
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} 后面应为一个数字"))
        };
        match arg.as_str() {
            "--bench" => bench = true,
            "--branches" => a.branches = num("--branches"),
            "--versions" => a.versions = num("--versions"),
            "--requests" => a.requests = num("--requests"),
            _ => {}
        }
    }
    // `cargo test --all-targets` builds and runs benches without `--bench`: return at once.
    bench.then_some(a)
}

fn college(i: usize) -> String {
    format!("第{:02}学院", i % 40 + 1)
}

fn branch(i: usize) -> String {
    format!("{}第{}党支部", college(i), i + 1)
}

fn shenbao() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shenbao"))
}

/// `shenbao init` into `dir`, then the big roster and one staff account.
fn setup(dir: &Path, branches: usize, port: u16) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    let out = shenbao()
        .args(["init", "--dir"])
        .arg(dir)
        .output()
        .expect("shenbao init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut roster = String::from("学院,支部名称,书记,书记邮箱\n");
    for i in 0..branches {
        roster.push_str(&format!(
            "{},{},书记{i},b{i}@example.test\n",
            college(i),
            branch(i)
        ));
    }
    std::fs::write(dir.join("roster.csv"), roster).expect("roster");
    let config = dir.join("shenbao.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    // `init` may already have written a [web] block for the try-out: the bench's comes last
    // and replaces it.
    let text = match text.find("\n[web]") {
        Some(at) => {
            let rest = &text[at + 1..];
            let end = rest[1..]
                .find("\n[")
                .map(|e| at + 1 + 1 + e + 1)
                .unwrap_or(text.len());
            let tail = &text[end..];
            // Drop [[web.user]] blocks that followed.
            let mut kept = String::new();
            let mut skipping = false;
            for line in tail.lines() {
                if line.starts_with("[[web.user]]") {
                    skipping = true;
                } else if line.starts_with('[') {
                    skipping = false;
                }
                if !skipping {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            format!("{}{}", &text[..at + 1], kept)
        }
        None => text,
    };
    let hash = shenbao::web::hash_password(PASSWORD).expect("hash");
    std::fs::write(
        &config,
        format!(
            "{text}\n[web]\nlisten = \"127.0.0.1:{port}\"\n\n[[web.user]]\nname = \"bench\"\npassword_hash = \"{hash}\"\nrole = \"staff\"\n"
        ),
    )
    .expect("config");
    config
}

/// The fields a real form gives, for branch `i`.
fn fields(i: usize) -> String {
    const SECTIONS: [&str; 5] = [
        "学思践悟·固本强基",
        "先锋领航·校园善治",
        "党旗飘扬·社区聚力",
        "师生结对·双向赋能",
        "育苗成长·薪火相传",
    ];
    serde_json::json!({
        "college": college(i),
        "branch": branch(i),
        "project_name": format!("“育苗”党团衔接培养工程{i}"),
        "section": SECTIONS[i % 5],
        "leader": "朱语嫣",
        "leader_role": "副书记",
        "phone": "18224039607",
        "email": "3906048146@qq.com",
        "advisor": "吴睿婷",
        "budget_as_written": "4000",
        "budget_yuan": 4000,
    })
    .to_string()
}

/// Writes the campaign's rows into the database `shenbao init` created.
async fn seed(db: &Path, branches: usize, versions: usize) {
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the database");
    let mut tx = conn.begin().await.expect("begin");
    let now = "2026-12-01T00:00:00Z";
    let sha = |k: &str| format!("{:0>64}", k);
    for (k, size) in [("raw", 66_339), ("form", 38_764), ("summary", 5_742)] {
        sqlx::query("INSERT INTO blobs (sha256, size, created_at) VALUES ($1, $2, $3)")
            .bind(sha(k))
            .bind(size)
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("blob");
    }
    let mut id: i64 = 0;
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z").expect("time");
    for v in 1..=versions {
        for i in 0..branches {
            if i % 10 == 9 {
                continue; // not applied
            }
            id += 1;
            let at = (start
                + chrono::Duration::seconds((id * 37) % (14 * 86_400))
                + chrono::Duration::days(v as i64))
            .to_utc()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
            let subject = format!("对标争先建设项目申报-{}", branch(i));
            sqlx::query(
                "INSERT INTO messages (id, source, message_id, raw_sha256, size, internal_date, stored_at, subject, from_addr, status, disposition, reason, processed_at, branch)
                 VALUES ($1, 'file', $2, $3, 66339, $4, $5, $6, $7, 'processed', 'application', '申报', $8, $9)",
            )
            .bind(id)
            .bind(format!("m{id}@bench.example"))
            .bind(sha("raw"))
            .bind(&at)
            .bind(&at)
            .bind(&subject)
            .bind(format!("b{i}@example.test"))
            .bind(&at)
            .bind(branch(i))
            .execute(&mut *tx)
            .await
            .expect("message");
            for (ordinal, (role, format, name, size)) in [
                (
                    "form",
                    "docx",
                    format!("{}-项目申请表.docx", branch(i)),
                    38_764,
                ),
                (
                    "summary",
                    "xlsx",
                    format!("对标争先建设项目申报汇总表_{}.xlsx", branch(i)),
                    5_742,
                ),
            ]
            .into_iter()
            .enumerate()
            {
                sqlx::query(
                    "INSERT INTO attachments (message_id, ordinal, filename, safe_name, content_type, format, declared_format, role, size, sha256)
                     VALUES ($1, $2, $3, $4, 'application/octet-stream', $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(ordinal as i64)
                .bind(&name)
                .bind(&name)
                .bind(format)
                .bind(format)
                .bind(role)
                .bind(size)
                .bind(sha(role))
                .execute(&mut *tx)
                .await
                .expect("attachment");
            }
            let latest = v == versions;
            let problems = if latest && i % 5 == 0 {
                r#"["budget_over_cap"]"#
            } else {
                "[]"
            };
            let details = if latest && i % 5 == 0 {
                r#"[{"code":"budget_over_cap","detail":null}]"#
            } else {
                "[]"
            };
            let f = fields(i);
            sqlx::query(
                "INSERT INTO submissions (kind, branch_key, branch, college, branch_text, match_kind, match_score, match_reason, version, is_latest, message_id, sender, received_at, late, problems, created_at, fields, fields_source, form_fields, summary_fields, problem_details, sender_changed, content_key)
                 VALUES ('application', $1, $2, $3, $4, 'exact', 1.0, '与名册一致', $5, $6, $7, $8, $9, 0, $10, $11, $12, 'form', $13, $14, $15, 0, $16)",
            )
            .bind(branch(i))
            .bind(branch(i))
            .bind(college(i))
            .bind(branch(i))
            .bind(v as i64)
            .bind(latest)
            .bind(id)
            .bind(format!("b{i}@example.test"))
            .bind(&at)
            .bind(problems)
            .bind(&at)
            .bind(&f)
            .bind(&f)
            .bind(&f)
            .bind(details)
            .bind(format!("{id:064}"))
            .execute(&mut *tx)
            .await
            .expect("submission");
        }
    }
    tx.commit().await.expect("commit");
}

/// One HTTP/1.1 request on a fresh connection; the status, the headers and the body length.
fn request(port: u16, method: &str, path: &str, cookie: &str, form: &str) -> (u16, String, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the board");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(form);
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.len())
}

fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

fn login(port: u16) -> String {
    let (_, head, _) = request(port, "GET", "/login", "", "");
    let login = set_cookie(&head, "shenbao_login").expect("login cookie");
    let token = login.split_once('=').map(|(_, t)| t).unwrap_or_default();
    let (status, head, _) = request(
        port,
        "POST",
        "/login",
        &login,
        &format!("csrf={token}&name=bench&password={PASSWORD}"),
    );
    assert_eq!(status, 303, "login: {head}");
    set_cookie(&head, "shenbao_session").expect("session cookie")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let Some(a) = args() else { return };
    let dir = std::env::temp_dir().join("shenbao-bench-board");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let config = setup(&dir, a.branches, port);
    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A fresh database with the migrations run, as `shenbao run` makes it.
    let data = dir.join("data");
    rt.block_on(async {
        shenbao::store::Store::open(&shenbao::store::default_database_url(&data), &data)
            .await
            .expect("create the database")
    });
    rt.block_on(seed(&dir.join("data/shenbao.db"), a.branches, a.versions));
    let rows = a.branches - a.branches / 10;
    println!(
        "看板基准：{} 个支部（{} 个已申报），{} 份申报版本，写入用时 {:.1} s",
        a.branches,
        rows,
        rows * a.versions,
        t.elapsed().as_secs_f64()
    );
    let mut child = shenbao()
        .args(["-c"])
        .arg(&config)
        .arg("web")
        .stdout(Stdio::null())
        // The board's log (with SHENBAO_LOG=shenbao=debug, how long each re-read took).
        .stderr(std::fs::File::create(dir.join("web.log")).expect("web.log"))
        .spawn()
        .expect("shenbao web");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the board did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cookie = login(port);
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "页面", "p50", "p95", "最慢", "大小"
    );
    for (label, path) in [
        ("总览 /", "/"),
        ("支部 /branches", "/branches"),
        ("支部 有问题", "/branches?state=problems"),
        ("支部 搜索", "/branches?q=%E7%AC%AC07%E5%AD%A6%E9%99%A2"),
    ] {
        let (times, size) = time_page(port, path, &cookie, 2, a.requests, || {});
        print_row(label, &times, size);
    }
    // After every change the first request reads the campaign again (web/snapshot.rs): one
    // commit before each request, as on deadline night with a mail a second.
    let mut conn = rt.block_on(async {
        sqlx::SqliteConnection::connect(&format!(
            "sqlite://{}",
            dir.join("data/shenbao.db").display()
        ))
        .await
        .expect("open the database")
    });
    let few = (a.requests / 4).max(5);
    for (label, path) in [
        ("总览 / 数据刚变化", "/"),
        ("支部 / 数据刚变化", "/branches"),
    ] {
        let (times, size) = time_page(port, path, &cookie, 0, few, || {
            rt.block_on(
                sqlx::query("UPDATE messages SET moved = NOT moved WHERE id = 1")
                    .execute(&mut conn),
            )
            .expect("a commit");
        });
        print_row(label, &times, size);
    }
    // The other pages, fewer times each (they read the store on every request).
    let one_branch = format!("/branch?name={}", pct(&branch(1)));
    for (label, path) in [
        ("支部详情 /branch", one_branch.as_str()),
        ("需人工处理 /staff", "/staff"),
        ("发件箱 /outbox", "/outbox"),
        ("评审 /review", "/review"),
        ("材料 /materials", "/materials"),
        ("结项 /closure", "/closure"),
    ] {
        let (times, size) = time_page(port, path, &cookie, 1, few, || {});
        print_row(label, &times, size);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `path` fetched `warmup` times untimed, then `runs` times timed, `before` run ahead of each
/// request (untimed); the sorted times and the last page's size.
fn time_page(
    port: u16,
    path: &str,
    cookie: &str,
    warmup: usize,
    runs: usize,
    mut before: impl FnMut(),
) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    for i in 0..warmup + runs {
        before();
        let t = Instant::now();
        let (status, head, len) = request(port, "GET", path, cookie, "");
        let took = t.elapsed();
        assert_eq!(status, 200, "{path}: {head}");
        size = len;
        if i >= warmup {
            times.push(took);
        }
    }
    times.sort();
    (times, size)
}

/// One line of the table: p50, p95, max and size.
fn print_row(label: &str, times: &[Duration], size: usize) {
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>7} KiB",
        label,
        ms(percentile(times, 0.5)),
        ms(percentile(times, 0.95)),
        ms(*times.last().expect("times")),
        size / 1024
    );
}

/// `s` percent-encoded for a query string (every byte but ASCII letters and digits).
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
