//! The command line without mail servers: `init`, `check-config`, `ingest`, `status`, `export`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shenbao(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .current_dir(dir)
        .args(args)
        .env("SHENBAO_LOG", "warn")
        .env_remove("SHENBAO_CONFIG")
        .output()
        .expect("run shenbao")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shenbao-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(case)
        .join("message.eml")
}

#[test]
fn init_then_ingest_status_and_export() {
    let dir = tmp("ingest");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    // The board is on for the try-out: one staff account, its password shown once and kept
    // in a private file, only its hash in the config.
    let password = std::fs::read_to_string(dir.join("local/secrets/web.password"))
        .expect("the board's password file");
    let password = password.trim();
    assert_eq!(password.len(), 16, "{password}");
    assert!(
        text(&o).contains(&format!(
            "看板：守护进程运行时打开 http://127.0.0.1:8640/ ，账号 staff，密码 {password}"
        )),
        "{}",
        text(&o)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("local/secrets/web.password"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let config = std::fs::read_to_string(dir.join("local/shenbao.toml")).expect("config");
    assert!(!config.contains(password), "{config}");
    assert!(
        config.contains("[web]\nlisten = \"127.0.0.1:8640\""),
        "{config}"
    );
    // Use the sample roster so the fixtures' branches are known.
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/roster.csv"),
        dir.join("local/roster.csv"),
    )
    .expect("roster");
    let cfg = "local/shenbao.toml";
    let o = shenbao(&dir, &["--config", cfg, "check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("24 个支部"), "{}", text(&o));
    assert!(
        text(&o).contains(
            "看板：监听 http://127.0.0.1:8640/，1 个账号（工作人员 1 个，评审专家 0 个）"
        ),
        "{}",
        text(&o)
    );

    let c001 = fixture("c001");
    let c009 = fixture("c009");
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "ingest",
            "--received-at",
            "2025-09-20T21:46:35+08:00",
            c001.to_str().unwrap_or_default(),
            c009.to_str().unwrap_or_default(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("申报 汽车工程学院本科生第二党支部 第1版"),
        "{out}"
    );
    assert!(out.contains("自动邮件"), "{out}");
    // The same file again is recognised, not registered twice.
    let o = shenbao(
        &dir,
        &["--config", cfg, "ingest", c001.to_str().unwrap_or_default()],
    );
    assert!(text(&o).contains("相同，跳过"), "{}", text(&o));

    let o = shenbao(&dir, &["--config", cfg, "export", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let subs = v["submissions"].as_array().cloned().unwrap_or_default();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["branch"], "汽车工程学院本科生第二党支部");
    assert_eq!(subs[0]["received_at"], "2025-09-20T21:46:35+08:00");
    assert_eq!(subs[0]["late"], false);
    assert_eq!(subs[0]["attachments"].as_array().map(Vec::len), Some(2));

    let o = shenbao(
        &dir,
        &[
            "--config", cfg, "export", "--format", "csv", "-o", "out.csv",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read(dir.join("out.csv")).expect("csv");
    assert!(csv.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 BOM for Excel");
    let csv = String::from_utf8_lossy(&csv);
    assert!(csv.contains("汽车工程学院本科生第二党支部"), "{csv}");

    // The consolidated 汇总表: the office's columns, one row per branch, read back.
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "export",
            "--format",
            "xlsx",
            "-o",
            "汇总表.xlsx",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let wb = shenbao::extract::sheet::read_workbook(
        &std::fs::read(dir.join("汇总表.xlsx")).expect("xlsx"),
        &Default::default(),
    )
    .expect("our own xlsx reads");
    let rows: Vec<Vec<String>> = wb.sheets[0]
        .rows
        .iter()
        .map(|r| r.iter().map(|v| v.to_text()).collect())
        .collect();
    assert!(
        rows[0][0].contains("申报汇总表"),
        "title row: {:?}",
        rows[0]
    );
    assert_eq!(
        rows[1][..13],
        [
            "序号",
            "学院",
            "支部名称",
            "项目名称",
            "申报板块",
            "项目负责人",
            "职务",
            "联系方式",
            "指导老师",
            "申请经费（元）",
            "版本",
            "收到时间",
            "问题"
        ]
    );
    assert_eq!(rows[2][2], "汽车工程学院本科生第二党支部");
    assert_eq!(rows[2][3], "“一人一策”成长档案与联系人制度建设");
    assert_eq!(rows[2][9], "2800");
    // Without -o an xlsx would be binary on the terminal: refused with advice.
    let o = shenbao(&dir, &["--config", cfg, "export", "--format", "xlsx"]);
    assert!(
        !o.status.success() && text(&o).contains("-o"),
        "{}",
        text(&o)
    );

    let o = shenbao(
        &dir,
        &["--config", cfg, "show", "汽车工程学院本科生第二党支部"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("项目名称：“一人一策”成长档案与联系人制度建设"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("问题：无"), "{}", text(&o));
    // Attachments in words: role and format, size for people.
    assert!(text(&o).contains("（项目申请表，Word"), "{}", text(&o));
    assert!(
        !text(&o).contains("（form，") && !text(&o).contains("字节）"),
        "{}",
        text(&o)
    );

    // What the scheduler would do, previewed on a set date: 7 days before a 9月27日 deadline
    // every roster branch but the one that applied cleanly gets a reminder.
    let config_text = std::fs::read_to_string(dir.join(cfg)).expect("config");
    let deadline_line = config_text
        .lines()
        .find(|l| l.starts_with("deadline = "))
        .unwrap_or_default()
        .to_string();
    std::fs::write(
        dir.join(cfg),
        config_text.replace(&deadline_line, "deadline = \"2025-09-27T23:59:59\""),
    )
    .expect("config");
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "remind",
            "--dry-run",
            "--at",
            "2025-09-20T09:00:00+08:00",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("申报截止提醒  →"))
            .count(),
        23,
        "{out}"
    );
    assert!(
        !out.contains("汽车工程学院本科生第二党支部 <"),
        "the branch that applied cleanly is not reminded: {out}"
    );
    assert!(
        out.contains("之后：申报截止提醒 于 2025年9月24日 09:00:00"),
        "{out}"
    );
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "remind",
            "--dry-run",
            "--at",
            "2025-09-19T09:00:00+08:00",
        ],
    );
    assert!(text(&o).contains("没有到期的提醒"), "{}", text(&o));
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "digest",
            "--dry-run",
            "--at",
            "2025-09-22T08:00:00+08:00",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("reviewer@example.test") && out.contains("名册共 24 个支部，已申报 1 个"),
        "{out}"
    );

    let o = shenbao(&dir, &["--config", cfg, "status"]);
    let st = text(&o);
    assert!(o.status.success(), "{st}");
    assert!(st.contains("名册共 24 个支部，已申报 1 个"), "{st}");
    assert!(st.contains("待发送 1"), "the ack waits in the outbox: {st}");
    // Words, not internal codes.
    assert!(st.contains("已处理 申报 1"), "{st}");
    for code in ["processed", "application", "queued"] {
        assert!(!st.contains(code), "{code} in {st}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_names_every_bad_key() {
    let dir = tmp("badcfg");
    std::fs::write(
        dir.join("shenbao.toml"),
        "[imap]\nhost = \"imap.example.edu.cn\"\ntls = \"ssl\"\nuser = \"x@example.edu.cn\"\npassword = \"plain\"\n[smtp]\nhost = \"smtp.example.edu.cn\"\nfrom_address = \"nobody\"\n[campaign]\nname = \"x\"\nintake_address = \"x@example.edu.cn\"\ndeadline = \"tomorrow\"\nroster = \"none.csv\"\n[ack]\nwindow = \"soon\"\n",
    )
    .expect("config");
    let o = shenbao(&dir, &["check-config"]);
    assert!(!o.status.success());
    let t = text(&o);
    for key in [
        "imap.tls",
        "imap.password",
        "smtp.from_address",
        "campaign.deadline",
        "campaign.roster",
        "ack.window",
    ] {
        assert!(t.contains(key), "{key} missing from:\n{t}");
    }
    assert!(t.contains("password_env"), "says what to do instead: {t}");
    // A missing config file says how to make one.
    let o = shenbao(&dir, &["--config", "nope.toml", "status"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("shenbao init"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs SQL on the database of an `init`ed directory (what the daemon's sender would leave).
/// A `$1` in a statement is the one-byte raw mail `00` (bound: a blob literal is not
/// portable SQL).
fn sql(dir: &Path, statements: &[&str]) -> Vec<(i64, String, i64, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let data = dir.join("local/data");
        let url = shenbao::store::default_database_url(&data);
        // Opening the store creates and migrates the database; the SQL runs on a pool of its own.
        drop(
            shenbao::store::Store::open(&url, &data)
                .await
                .expect("open store"),
        );
        let pool = crate::common::any_pool(&url).await.expect("open db");
        for s in statements {
            let q = sqlx::query(sqlx::AssertSqlSafe(s.to_string()));
            let q = if s.contains("$1") {
                q.bind(vec![0u8])
            } else {
                q
            };
            q.execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        let rows: Vec<(i64, String, i64, String)> =
            sqlx::query_as("SELECT id, status, attempts, next_attempt_at FROM outbox ORDER BY id")
                .fetch_all(&pool)
                .await
                .expect("outbox");
        pool.close().await;
        rows
    })
}

#[test]
fn outbox_list_and_retry() {
    let dir = tmp("outbox");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg = "local/shenbao.toml";
    // Before the daemon ever ran there is no database, and listing does not make one.
    let o = shenbao(&dir, &["--config", cfg, "outbox", "list"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("shenbao.db 不存在"), "{}", text(&o));
    assert!(!dir.join("local/data/shenbao.db").exists());
    sql(&dir, &[]);
    let o = shenbao(&dir, &["--config", cfg, "outbox", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("没有"), "{}", text(&o));
    // What a day of a broken SMTP server leaves behind: 1 and 6 given up, 2 sent, 3 new,
    // 4 interrupted by a crash, 5 waiting for its third attempt.
    let insert = |id: i64, status: &str, attempts: i64, error: &str| {
        format!(
            "INSERT INTO outbox (id, kind, message_id, to_addr, subject, raw, status, attempts, next_attempt_at, last_error, created_at, sent_at)
             VALUES ({id}, 'ack', 'shenbao.ack.{id}@test', 'branch{id}@example.test', 'Re: 对标争先建设项目申报-支部{id}', $1, '{status}', {attempts},
                     '2025-09-20T13:00:00Z', {error}, '2025-09-20T12:00:00Z', {sent})",
            error = if error.is_empty() { "NULL".to_string() } else { format!("'{error}'") },
            sent = if status == "sent" { "'2025-09-20T12:00:05Z'" } else { "NULL" },
        )
    };
    let rows = sql(
        &dir,
        &[
            &insert(1, "dead", 8, "Connection refused (os error 111)"),
            &insert(2, "sent", 1, ""),
            &insert(3, "queued", 0, ""),
            &insert(4, "unconfirmed", 1, ""),
            &insert(5, "queued", 2, "421 try again later"),
            &insert(6, "dead", 1, "550 5.1.1 mailbox unavailable"),
        ],
    );
    assert_eq!(rows.len(), 6);

    let o = shenbao(
        &dir,
        &["--config", cfg, "outbox", "list", "--status", "dead"],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("共 2 封"), "{out}");
    assert!(out.contains("#1 → branch1@example.test（回执）"), "{out}");
    assert!(out.contains("已放弃（尝试 8 次）"), "{out}");
    assert!(out.contains("Connection refused"), "{out}");
    assert!(out.contains("shenbao outbox retry"), "{out}");
    assert!(!out.contains("#2 "), "{out}");
    let o = shenbao(
        &dir,
        &["--config", cfg, "outbox", "list", "--status", "queued"],
    );
    let out = text(&o);
    assert!(out.contains("共 3 封"), "3, 4 and 5: {out}");
    assert!(out.contains("等待重试（已尝试 2 次"), "{out}");
    let o = shenbao(&dir, &["--config", cfg, "outbox", "list"]);
    assert!(text(&o).contains("共 6 封"), "{}", text(&o));

    // `status` names the command next to each dead letter.
    let o = shenbao(&dir, &["--config", cfg, "status"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("重发：shenbao outbox retry 1"), "{out}");
    assert!(out.contains("重发：shenbao outbox retry 6"), "{out}");
    // So does the digest for reviewers and staff.
    let o = shenbao(&dir, &["--config", cfg, "digest", "--dry-run"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("运行 shenbao outbox retry 1 重发"), "{out}");
    assert!(out.contains("运行 shenbao outbox retry 6 重发"), "{out}");

    // A dead letter goes back in the queue, due now, attempts from zero.
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "1"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("已重新排队：#1 → branch1@example.test（回执）Re: 对标争先建设项目申报-支部1"),
        "{out}"
    );
    assert!(out.contains("最后的错误：Connection refused"), "{out}");
    assert!(
        out.contains("5 秒"),
        "the daemon's pickup is explained: {out}"
    );
    let rows = sql(&dir, &[]);
    assert_eq!(rows[0].1, "queued");
    assert_eq!(rows[0].2, 0, "attempts reset: the backoff starts over");
    let due = chrono::DateTime::parse_from_rfc3339(&rows[0].3).expect("time");
    assert!(
        due >= before && due <= chrono::Utc::now(),
        "due now: {}",
        rows[0].3
    );
    // Again: it is queued already.
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("无需重发"), "{}", text(&o));
    // A mail waiting for its next attempt can be hurried along too.
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("已重新排队：#5"), "{}", text(&o));
    assert_eq!(sql(&dir, &[])[4].2, 0);

    // Refusals say why and what to do.
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "2"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("已于 2025年9月20日 20:00:05 发出，不会再发一次"),
        "{}",
        text(&o)
    );
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "4"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("可能让对方收到两封"), "{}", text(&o));
    assert!(text(&o).contains("shenbao outbox retry 4"), "{}", text(&o));
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "99"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("没有编号为 #99 的邮件"), "{}", text(&o));
    assert!(text(&o).contains("shenbao outbox list"), "{}", text(&o));
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry"]);
    assert!(!o.status.success(), "an id or --all-dead is required");
    assert_eq!(sql(&dir, &[])[1].1, "sent", "a sent mail is left alone");
    assert_eq!(
        sql(&dir, &[])[3].1,
        "unconfirmed",
        "so is an unconfirmed one"
    );

    // Every dead letter at once.
    sql(
        &dir,
        &["UPDATE outbox SET status = 'dead', attempts = 8 WHERE id = 1"],
    );
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "--all-dead"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("已重新排队：#1") && out.contains("已重新排队：#6"),
        "{out}"
    );
    assert!(out.contains("共 2 封"), "{out}");
    let rows = sql(&dir, &[]);
    assert!(rows.iter().all(|r| r.1 != "dead"), "{rows:?}");
    let o = shenbao(&dir, &["--config", cfg, "outbox", "retry", "--all-dead"]);
    assert!(text(&o).contains("没有发送失败"), "{}", text(&o));
    let o = shenbao(&dir, &["--config", cfg, "status"]);
    assert!(!text(&o).contains("shenbao outbox retry"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The exported 汇总表 with the reviewers' two columns appended after its last header column,
/// filled for the branches in `grades` (支部名称 → level, amount); every other row is left as
/// exported.
fn graded_sheet(export: &[u8], grades: &[(&str, &str, &str)]) -> Vec<u8> {
    let wb =
        shenbao::extract::sheet::read_workbook(export, &Default::default()).expect("export reads");
    let rows = &wb.sheets[0].rows;
    let header = rows
        .iter()
        .position(|r| r.iter().any(|v| v.to_text() == "支部名称"))
        .expect("header row");
    // The export carries the two columns reviewers fill; an older one gets them appended.
    let find = |label: &str| {
        rows[header]
            .iter()
            .position(|v| v.to_text().starts_with(label))
            .map(|c| c as u16)
    };
    let (level_col, amount_col) = match (find("评审等级"), find("资助金额")) {
        (Some(l), Some(a)) => (l, a),
        _ => (rows[header].len() as u16, rows[header].len() as u16 + 1),
    };
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32;
        let texts: Vec<String> = row.iter().map(|v| v.to_text()).collect();
        for (c, t) in texts.iter().enumerate() {
            ws.write_string(r, c as u16, t).expect("write");
        }
        if r as usize == header {
            if find("评审等级").is_none() {
                ws.write_string(r, level_col, "评审等级").expect("write");
                ws.write_string(r, amount_col, "资助金额").expect("write");
            }
        } else if let Some((_, level, amount)) = grades
            .iter()
            .find(|(b, _, _)| texts.get(2).map(String::as_str) == Some(*b))
        {
            ws.write_string(r, level_col, *level).expect("write");
            ws.write_string(r, amount_col, *amount).expect("write");
        }
    }
    book.save_to_buffer().expect("xlsx")
}

/// Review coverage through the command line: an exported sheet that leaves a branch that
/// applied ungraded is refused (naming it) unless `--partial`; the row of an application whose
/// branch was not recognised is marked in the export, skipped when left blank and refused when
/// graded; `review notify` names every branch it does not mail and why.
#[test]
fn review_import_coverage_partial_and_unrecognised_rows() {
    let dir = tmp("coverage");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/roster.csv"),
        dir.join("local/roster.csv"),
    )
    .expect("roster");
    let cfg = "local/shenbao.toml";
    // c001 with a subject naming a branch no roster has, and its own Message-ID.
    let c001 = std::fs::read_to_string(fixture("c001")).expect("c001");
    let subject_at = c001.find("Subject:").expect("subject");
    let subject_end = subject_at
        + c001[subject_at..]
            .find("\r\n\t")
            .and_then(|i| c001[subject_at + i + 3..].find("\r\n").map(|j| i + 3 + j))
            .expect("folded subject");
    let unknown = format!(
        "{}Subject: =?UTF-8?B?{}?={}",
        &c001[..subject_at],
        shenbao::notify::compose::base64("对标争先建设项目申报-火星学院第九党支部".as_bytes()),
        &c001[subject_end..]
    )
    .replace("<81a7713a.", "<unknown-81a7713a.");
    std::fs::write(dir.join("unknown.eml"), unknown).expect("eml");
    let (c002, c010) = (fixture("c002"), fixture("c010"));
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "ingest",
            fixture("c001").to_str().unwrap_or_default(),
            c002.to_str().unwrap_or_default(),
            c010.to_str().unwrap_or_default(),
            "unknown.eml",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("unknown.eml：申报 -"), "{}", text(&o));

    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "export",
            "--format",
            "xlsx",
            "-o",
            "汇总表.xlsx",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let export = std::fs::read(dir.join("汇总表.xlsx")).expect("xlsx");
    let wb = shenbao::extract::sheet::read_workbook(&export, &Default::default()).expect("xlsx");
    let marked = wb.sheets[0]
        .rows
        .iter()
        .find(|r| {
            r.get(2)
                .is_some_and(|v| v.to_text() == "火星学院第九党支部")
        })
        .expect("the unrecognised application is listed");
    assert!(
        marked[12]
            .to_text()
            .starts_with("支部未识别：须工作人员先用 shenbao assign 指定支部"),
        "{:?}",
        marked[12]
    );

    let (a, b, c) = (
        "汽车工程学院本科生第二党支部",
        "设计创意学院2024级博士生党支部",
        "海洋与地球科学学院2022级本科生党支部",
    );
    let import = |name: &str, grades: &[(&str, &str, &str)], extra: &[&str]| {
        std::fs::write(dir.join(name), graded_sheet(&export, grades)).expect("sheet");
        let mut args = vec!["--config", cfg, "review", "import", name];
        args.extend_from_slice(extra);
        let o = shenbao(&dir, &args);
        (o.status.success(), text(&o))
    };
    let reviews = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let data = dir.join("local/data");
            let url = shenbao::store::default_database_url(&data);
            drop(
                shenbao::store::Store::open(&url, &data)
                    .await
                    .expect("open store"),
            );
            let pool = crate::common::any_pool(&url).await.expect("open db");
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reviews WHERE is_current = TRUE")
                .fetch_one(&pool)
                .await
                .expect("count");
            pool.close().await;
            n
        })
    };

    // c is left blank, the unrecognised row too: refused, naming c and its row.
    let partial_grades = [(a, "重点", "5000"), (b, "不立项", "")];
    let (ok, out) = import("部分.xlsx", &partial_grades, &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("有 1 个已申报的支部没有评审结果，本次没有导入任何结果")
            && out.contains(&format!("{c}（第 5 行未填写评审等级）"))
            && out.contains("--partial"),
        "{out}"
    );
    assert!(
        !out.contains("火星学院"),
        "the unrecognised row is no gap: {out}"
    );
    assert_eq!(reviews(), 0, "nothing imported");

    // With --partial: imported, and what is left is said.
    let (ok, out) = import("部分.xlsx", &partial_grades, &["--partial"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("已导入 2 条评审结果（立项 1 个，未立项 1 个）"),
        "{out}"
    );
    assert!(
        out.contains("跳过第 6 行「火星学院第九党支部」：支部未识别"),
        "{out}"
    );
    assert!(
        out.contains("还有 1 个已申报的支部没有评审结果") && out.contains(c),
        "{out}"
    );
    assert_eq!(reviews(), 2);

    // Notify names every branch it does not mail, with the reason.
    let o = shenbao(&dir, &["--config", cfg, "review", "notify", "--dry-run"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("【评审结果】")).count(),
        2,
        "{out}"
    );
    assert!(out.contains("以下 2 个支部本次不发送评审结果"), "{out}");
    assert!(out.contains(&format!("  {c}：尚未评审")), "{out}");
    assert!(
        out.contains("  火星学院第九党支部：支部未识别，不能评审和通知"),
        "{out}"
    );

    // Grading the unrecognised row is refused with what to do; grading c alone then completes
    // the review (a and b keep their decisions), the unrecognised row left as exported.
    let (ok, out) = import(
        "火星.xlsx",
        &[(c, "一般", "800"), ("火星学院第九党支部", "一般", "800")],
        &[],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("第 6 行「支部名称」：「火星学院第九党支部」不在支部名册中")
            && out.contains("shenbao assign"),
        "{out}"
    );
    let (ok, out) = import("补评.xlsx", &[(c, "一般", "800")], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("已导入 1 条评审结果") && !out.contains("还有"),
        "{out}"
    );
    assert_eq!(reviews(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites `key = …` lines of one `[section]` of a config file.
fn set_key(path: &Path, section: &str, key: &str, value: &str) {
    let text = std::fs::read_to_string(path).expect("config");
    let mut current = String::new();
    let mut out = String::new();
    let mut done = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if current == section && !done {
                out.push_str(&format!("{key} = {value}\n"));
                done = true;
            }
            current = t.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        if current == section && t.split('=').next().map(str::trim) == Some(key) {
            out.push_str(&format!("{key} = {value}\n"));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !done {
        out.push_str(&format!("[{section}]\n{key} = {value}\n"));
    }
    std::fs::write(path, out).expect("config");
}

/// `tls = "none"` to a host that is not this machine: every command that loads the config
/// refuses, naming the key and what to write instead; loopback hosts keep working.
#[test]
fn clear_text_to_another_host_is_refused() {
    let dir = tmp("tls");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg = dir.join("local/shenbao.toml");
    let cfg_arg = cfg.to_str().unwrap_or_default();
    let o = shenbao(&dir, &["--config", cfg_arg, "check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    for (section, host, port) in [
        ("imap", "imap.example.edu.cn", "993"),
        ("smtp", "smtp.example.edu.cn", "465"),
    ] {
        let before = std::fs::read_to_string(&cfg).expect("config");
        set_key(&cfg, section, "host", &format!("\"{host}\""));
        for args in [
            vec!["check-config"],
            vec!["status"],
            vec!["export", "--format", "csv"],
            vec!["run"],
        ] {
            let mut all = vec!["--config", cfg_arg];
            all.extend(args.iter());
            let o = shenbao(&dir, &all);
            let t = text(&o);
            assert!(!o.status.success(), "{args:?} must refuse: {t}");
            assert!(t.contains(&format!("{section}.tls")), "{args:?}: {t}");
            assert!(t.contains(host) && t.contains("明文"), "{args:?}: {t}");
            assert!(
                t.contains("tls = \"implicit\"") && t.contains(port),
                "says what to write: {t}"
            );
        }
        std::fs::write(&cfg, before).expect("restore");
    }
    set_key(&cfg, "imap", "host", "\"localhost\"");
    let o = shenbao(&dir, &["--config", cfg_arg, "check-config"]);
    assert!(
        o.status.success(),
        "localhost may go without TLS: {}",
        text(&o)
    );
    // An SMTP user whose password variable is not set is named, not skipped silently.
    set_key(&cfg, "smtp", "user", "\"intake@example.test\"");
    set_key(
        &cfg,
        "smtp",
        "password_env",
        "\"SHENBAO_TEST_UNSET_SMTP_PASSWORD\"",
    );
    // check-config names it (the service may have the variable this shell lacks); a command
    // that sends refuses.
    let o = shenbao(&dir, &["--config", cfg_arg, "check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("smtp.user") && text(&o).contains("SHENBAO_TEST_UNSET_SMTP_PASSWORD"),
        "{}",
        text(&o)
    );
    let o = shenbao(&dir, &["--config", cfg_arg, "review", "notify"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("SHENBAO_TEST_UNSET_SMTP_PASSWORD"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A mail whose sender, subject and attachment names try to run formulas, hide characters
/// and climb out of directories.
fn hostile_mail(subject_branch: &str, message_id: &str) -> String {
    format!(
        "From: \"=HYPERLINK(1)\u{202E}\u{1B}[5m\" <=cmd@example.test>\r\n\
         To: intake@example.test\r\n\
         Subject: 对标争先建设项目申报-{subject_branch}\r\n\
         Message-ID: <{message_id}>\r\n\
         Date: Sat, 20 Sep 2025 21:46:32 +0800\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n申报材料见附件。\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename*=UTF-8''%3D1%2B2%00%E2%80%AE%E7%94%B3%E8%AF%B7%E8%A1%A8.docx\r\n\
         Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename*=UTF-8''..%2F..%2Fetc%2F%1B%5B31m%E6%B1%87%E6%80%BB%E8%A1%A8.xlsx\r\n\
         Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n\
         --b--\r\n"
    )
}

fn hidden(s: &str) -> bool {
    s.chars().any(|c| {
        (c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    })
}

/// CSV injection and hidden characters from a mail: the CSV export's cells cannot run, and
/// names are shown clean in the CSV, the JSON export, `show` and the ack.
#[test]
fn csv_and_names_from_a_hostile_mail_are_neutralised() {
    let dir = tmp("hostile");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg = "local/shenbao.toml";
    let known = dir.join("known.eml");
    std::fs::write(
        &known,
        hostile_mail("土木工程学院本科生第一党支部", "known.1@example.test"),
    )
    .expect("eml");
    let unknown = dir.join("unknown.eml");
    std::fs::write(
        &unknown,
        hostile_mail("=SUM(1+1)党支部\u{1B}[2J\u{202E}", "unknown.1@example.test"),
    )
    .expect("eml");
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "ingest",
            known.to_str().unwrap_or_default(),
            unknown.to_str().unwrap_or_default(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));

    let o = shenbao(&dir, &["--config", cfg, "export", "--format", "csv"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut r = csv::Reader::from_reader(&o.stdout[3..]);
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.expect("row")).collect();
    assert!(!rows.is_empty());
    let mut seen_names = 0;
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "live cell {cell:?} in {row:?}"
            );
            assert!(!hidden(cell), "hidden character in {cell:?}");
        }
        assert_eq!(&row[8], "'=cmd@example.test", "{row:?}");
        if row[9].starts_with("'=1+2申请表.docx") && row[9].contains("汇总表.xlsx") {
            seen_names += 1;
        }
        assert!(!row[9].contains("etc"), "path kept: {}", &row[9]);
    }
    assert!(seen_names > 0, "{rows:?}");

    let o = shenbao(&dir, &["--config", cfg, "export", "--format", "json"]);
    let json = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let names: Vec<String> = v["submissions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["attachments"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["filename"].as_str().map(str::to_string))
        .collect();
    assert!(names.contains(&"=1+2申请表.docx".to_string()), "{names:?}");
    assert!(names.contains(&"[31m汇总表.xlsx".to_string()), "{names:?}");
    assert!(!hidden(&json), "hidden character in the JSON export");

    let o = shenbao(
        &dir,
        &["--config", cfg, "show", "土木工程学院本科生第一党支部"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("=1+2申请表.docx"), "{}", text(&o));
    assert!(!hidden(&text(&o)), "{:?}", text(&o));

    // `status` lists the unrecognised mail with its subject, without the escape sequence.
    let o = shenbao(&dir, &["--config", cfg, "status"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("SUM(1+1)党支部") && text(&o).contains("[2J"),
        "{}",
        text(&o)
    );
    assert!(!hidden(&text(&o)), "{:?}", text(&o));

    // The ack lists the names, clean.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let raws: Vec<Vec<u8>> = rt.block_on(async {
        let data = dir.join("local/data");
        let pool = crate::common::any_pool(&shenbao::store::default_database_url(&data))
            .await
            .expect("open db");
        let raws = sqlx::query_scalar("SELECT raw FROM outbox WHERE kind = 'ack'")
            .fetch_all(&pool)
            .await
            .expect("outbox");
        pool.close().await;
        raws
    });
    assert!(!raws.is_empty(), "an ack was queued");
    let mut listed = false;
    for raw in &raws {
        let m = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("ack parses");
        let body = m.body_text(0).map(|b| b.to_string()).unwrap_or_default();
        assert!(!hidden(&body), "{body:?}");
        listed |= body.contains("=1+2申请表.docx");
        assert!(body.contains("对标争先建设项目申报-"), "{body}");
    }
    assert!(listed, "the ack lists the attachment");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ingest --no-reply` (补录) registers but queues nothing, and says so; without it, ingest
/// says that it answers.
#[test]
fn ingest_no_reply_queues_nothing() {
    let dir = tmp("noreply");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/roster.csv"),
        dir.join("local/roster.csv"),
    )
    .expect("roster");
    let cfg = "local/shenbao.toml";
    let wrong_subject = dir.join("wrong.eml");
    std::fs::write(
        &wrong_subject,
        hostile_mail("", "wrong.1@example.test").replace("对标争先建设项目申报-", "你好"),
    )
    .expect("eml");
    let c001 = fixture("c001");
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "ingest",
            "--no-reply",
            c001.to_str().unwrap_or_default(),
            wrong_subject.to_str().unwrap_or_default(),
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("不回复"), "{t}");
    assert!(t.contains("没有放入任何回复"), "{t}");
    let o = shenbao(&dir, &["--config", cfg, "outbox", "list"]);
    assert!(
        text(&o).contains("发件箱中的全部邮件：没有"),
        "{}",
        text(&o)
    );
    let reasons: Vec<Option<String>> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let data = dir.join("local/data");
            let pool = crate::common::any_pool(&shenbao::store::default_database_url(&data))
                .await
                .expect("open db");
            let reasons = sqlx::query_scalar("SELECT no_answer FROM messages ORDER BY id")
                .fetch_all(&pool)
                .await
                .expect("messages");
            pool.close().await;
            reasons
        });
    assert_eq!(reasons.len(), 2);
    // The application would have been answered: the reason is recorded. The other is a
    // question (its attachments are not Office files), which nobody answers automatically.
    assert!(
        reasons[0].as_deref().is_some_and(|r| r.contains("补录")),
        "{reasons:?}"
    );
    assert_eq!(reasons[1], None, "{reasons:?}");
    // Without --no-reply the same kind of file is answered, and ingest says so.
    let c009 = fixture("c002");
    let o = shenbao(
        &dir,
        &["--config", cfg, "ingest", c009.to_str().unwrap_or_default()],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("登记后会回复发件人"), "{t}");
    assert!(t.contains("已放入发件箱"), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Read-only commands never create or migrate a database: a wrong `data_dir` is an error
/// naming the path and the keys; an old schema asks for `shenbao run`.
#[test]
fn read_only_commands_never_create_a_database() {
    let dir = tmp("readonly");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg = dir.join("local/shenbao.toml");
    let cfg_arg = cfg.to_str().unwrap_or_default();
    set_key(&cfg, "storage", "data_dir", "\"typo\"");
    for args in [
        vec!["status"],
        vec!["export", "--format", "json"],
        vec!["show", "土木工程学院本科生第一党支部"],
        vec!["digest", "--dry-run"],
        vec!["remind", "--dry-run"],
        vec!["outbox", "list"],
    ] {
        let mut all = vec!["--config", cfg_arg];
        all.extend(args.iter());
        let o = shenbao(&dir, &all);
        let t = text(&o);
        assert!(!o.status.success(), "{args:?}: {t}");
        assert!(t.contains("typo/shenbao.db 不存在"), "{args:?}: {t}");
        assert!(t.contains("data_dir") && t.contains("database"), "{t}");
        assert!(
            !dir.join("local/typo").exists(),
            "{args:?} created the data dir"
        );
    }
    // A database of an older schema is not migrated behind staff's back.
    let data = dir.join("local/typo");
    std::fs::create_dir_all(&data).expect("mkdir");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let url = shenbao::store::default_database_url(&data);
            drop(
                shenbao::store::Store::open(&url, &data)
                    .await
                    .expect("open store"),
            );
            let pool = crate::common::any_pool(&url).await.expect("open db");
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
                .execute(&pool)
                .await
                .expect("age the schema");
            pool.close().await;
        });
    let o = shenbao(&dir, &["--config", cfg_arg, "status"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("旧版本") && t.contains("shenbao run"), "{t}");
    // `digest` without --dry-run or --now explains and sends nothing.
    let o = shenbao(&dir, &["--config", cfg_arg, "digest"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("--dry-run") && t.contains("--now"), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_usage_and_errors_are_chinese() {
    let dir = tmp("help");
    let o = shenbao(&dir, &["--help"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "用法：shenbao [选项] <命令>",
        "命令：",
        "选项：",
        "显示帮助",
        "显示版本",
        "[默认：shenbao.toml]",
    ] {
        assert!(t.contains(want), "{want} missing from:\n{t}");
    }
    let o = shenbao(&dir, &["export", "--help"]);
    let t = text(&o);
    assert!(
        t.contains("用法：shenbao export [选项]") && t.contains("可选值："),
        "{t}"
    );
    for english in [
        "Usage",
        "Options",
        "Commands",
        "Print help",
        "default:",
        "Possible values",
    ] {
        assert!(!t.contains(english), "{english} in:\n{t}");
    }
    // Errors: what is wrong, the fix where clap knows it, exit code 2.
    for (args, want) in [
        (
            &["statsu"][..],
            "没有“statsu”这个命令；您是不是想用 status？",
        ),
        (
            &["export", "--format", "pdf"][..],
            "--format <格式> 的值“pdf”无效，可选的值：json、csv、xlsx",
        ),
        (
            &["status", "--jsno"][..],
            "不认识的参数“--jsno”；您是不是想用 --json？",
        ),
        (
            &["run", "--backfill-since", "9月17日"][..],
            "日期写成 2025-09-17",
        ),
        (
            &["--log-format", "xml", "status"][..],
            "可选的值：text、json",
        ),
    ] {
        let o = shenbao(&dir, args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.starts_with("错误："), "{args:?}: {t}");
        assert!(t.contains(want), "{args:?}: {want} missing from:\n{t}");
        assert!(
            !t.contains("error:") && !t.contains("Usage"),
            "{args:?}: {t}"
        );
    }
    // An I/O error at the edge: one sentence, no English OS text.
    let o = shenbao(&dir, &["--config", "nope.toml", "health"]);
    let t = text(&o);
    assert!(t.contains("文件或目录不存在"), "{t}");
    assert!(
        !t.contains("os error") && !t.contains("No such file"),
        "{t}"
    );
    let o = shenbao(&dir, &["--version"]);
    assert!(text(&o).starts_with("shenbao "), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_and_man_page() {
    let dir = tmp("completions");
    for (shell, want) in [
        ("bash", "complete -F _shenbao"),
        ("zsh", "#compdef shenbao"),
        ("fish", "complete -c shenbao"),
    ] {
        let o = shenbao(&dir, &["completions", shell]);
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "{shell}");
        assert!(t.contains(want), "{shell}: {t}");
        assert!(
            t.contains("check-config") && t.contains("health"),
            "{shell} lists the commands"
        );
    }
    let o = shenbao(&dir, &["man"]);
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success());
    assert!(t.starts_with(".ie") && t.contains(".TH shenbao 1"), "{t}");
    for section in [".SH 名称", ".SH 概要", ".SH 选项", ".SH 命令"] {
        assert!(t.contains(section), "{section}: {t}");
    }
    assert!(
        !t.contains(".SH NAME") && !t.contains("Possible values"),
        "{t}"
    );
    assert!(
        t.contains("把邮件申报活动变成自动运转的系统") && t.contains("check\\-config"),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_reports_a_template_typo_with_file_line_and_name() {
    let dir = tmp("tmpltypo");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = shenbao(&dir, &["--config", "local/shenbao.toml", "check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("用示例数据逐个检查无误"), "{}", text(&o));
    let ack = dir.join("local/templates/ack.txt.j2");
    let edited = std::fs::read_to_string(&ack)
        .expect("ack template")
        .replacen("{{ greeting }}", "{{ grettings }}", 1);
    std::fs::write(&ack, edited).expect("write");
    let o = shenbao(&dir, &["--config", "local/shenbao.toml", "check-config"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("local/templates/ack.txt.j2 第 1 行：未知的名称“grettings”"),
        "{t}"
    );
    assert!(t.contains("greeting"), "names the right one: {t}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn health_and_status_json_without_a_daemon() {
    let dir = tmp("health");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    // Never run: no IMAP contact, no scheduler step → critical, and it says what to start.
    let o = shenbao(&dir, &["--config", "local/shenbao.toml", "health"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.starts_with("shenbao 运行状态：严重"), "{t}");
    assert!(t.contains("shenbao run"), "{t}");
    // A fresh heartbeat of both (what the daemon writes) and nothing waiting → ok.
    let now = format!("'{}'", shenbao::store::db_time(chrono::Utc::now()));
    sql(
        &dir,
        &[&format!(
            "INSERT INTO daemon_state (component, at, ok) VALUES ('imap', {now}, TRUE), ('scheduler', {now}, TRUE)"
        )],
    );
    let o = shenbao(&dir, &["--config", "local/shenbao.toml", "health"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A dead letter → warning (exit 1).
    sql(
        &dir,
        &[
            "INSERT INTO outbox (kind, message_id, to_addr, subject, raw, status, attempts, next_attempt_at, created_at, last_error) VALUES ('ack', 'x@y', 'a@b.test', 's', $1, 'dead', 8, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z', '550')",
        ],
    );
    let o = shenbao(&dir, &["--config", "local/shenbao.toml", "health"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("[注意] 已放弃的邮件：1 封"), "{t}");
    let o = shenbao(
        &dir,
        &["--config", "local/shenbao.toml", "status", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["level"], "warning");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["dead_letters"], 1);
    assert_eq!(v["outbox_waiting"], 0);
    assert!(
        v["imap_last_contact"]["age_seconds"]
            .as_u64()
            .is_some_and(|s| s < 60),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `shenbao … 2>&1 | head -1`: the logs' reader goes away, the command still finishes (it hung
/// when tracing-subscriber reported the broken pipe with a panicking `eprintln!`).
#[test]
fn a_closed_log_pipe_does_not_hang_the_command() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tmp("closedlog");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    // A database for `status` to read (read-only commands never create one).
    let c001 = fixture("c001");
    let o = shenbao(
        &dir,
        &[
            "--config",
            "local/shenbao.toml",
            "ingest",
            "--no-reply",
            c001.to_str().unwrap_or_default(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    for format in ["text", "json"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shenbao"))
            .current_dir(&dir)
            .args([
                "--config",
                "local/shenbao.toml",
                "--log-format",
                format,
                "status",
            ])
            .env("SHENBAO_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut first = String::new();
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        err.read_line(&mut first).expect("a log line");
        assert!(
            first.contains("+08:00"),
            "Beijing time with its offset: {first}"
        );
        assert!(!first.contains('\u{1b}'), "no colours in a pipe: {first:?}");
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
            assert!(v["timestamp"].is_string(), "{v}");
        }
        drop(err);
        let t0 = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "{format}: {status:?}");
                break;
            }
            if t0.elapsed() > std::time::Duration::from_secs(15) {
                let _ = child.kill();
                panic!("{format}: the command hung after its log reader went away");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
