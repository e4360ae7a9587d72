//! The board's 评审 page for real (Dovecot + Postfix, mailbox intake34): two applications
//! arrive through Postfix, the reviewers' sheet is downloaded from the board, a sheet with
//! errors is uploaded and refused with its rows and columns, a clean one is previewed and
//! confirmed (the export then shows the levels), the result mails the page lists are the ones
//! `review notify --dry-run` lists, one click queues and sends them, a second queues nothing.
//! A reviewer reads the page and downloads the sheet but cannot post. Screenshots at 1366×768.

use crate::common::*;
use crate::web::*;
use std::time::Duration;

const A: &str = "汽车工程学院本科生第二党支部";
const D: &str = "海洋与地球科学学院2022级本科生党支部";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_page_imports_a_sheet_and_sends_the_results() {
    let roster = sample_roster();
    let mut b = BoardEnv::start(
        "review_board",
        "intake34",
        EnvOptions {
            roster: &roster,
            poll_interval: "2s",
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    for (case, from) in [
        ("c001", "2479582@example.edu.cn"),
        ("c010", "lu.fengxi27@outlook.com"),
    ] {
        let raw = read(&root().join(format!("tests/fixtures/samples/{case}/message.eml")));
        smtp_send(from, "intake34@example.test", &raw).await;
    }
    let env = &b.env;
    wait_for(
        "both applications to be registered",
        Duration::from_secs(90),
        || {
            b.daemon.assert_alive();
            let out = env.cli(&["export", "--format", "json"]);
            async move { out.contains(A) && out.contains(D) }
        },
    )
    .await;

    let staff = b.login("127.0.0.1", STAFF).await;
    let reviewer = b.login("127.0.0.2", REVIEWER).await;

    // No page and no download without a session.
    for path in ["/review", "/review/sheet.xlsx"] {
        let r = b.get("", path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/login"), "{path}");
    }

    let page = b.get(&staff, "/review").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("<h1>评审</h1>"), "{body}");
    assert!(body.contains("已申报 2 个，其中 2 个尚未评审"), "{body}");
    assert!(body.contains("还没有导入评审结果"), "{body}");
    assert!(body.contains(r#"enctype="multipart/form-data""#), "{body}");
    assert!(body.contains("<td>重点</td><td>≤ 5000 元</td>"), "{body}");
    let csrf = csrf_in(body);

    // The reviewer: the page and the sheet, no form that changes anything.
    let r = b.get(&reviewer, "/review").await;
    assert_eq!(r.status, 200);
    for action in ["/review/upload", "/review/notify", "/review/confirm"] {
        assert!(!r.body.contains(action), "{action}: {}", r.body);
    }
    let reviewer_csrf = csrf_in(&r.body);
    let sheet = b.get_bytes(&reviewer, "/review/sheet.xlsx").await;
    assert_eq!(sheet.status, 200);
    assert_eq!(
        sheet.header("content-type"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    );
    let disposition = sheet.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"2025")
            && disposition.contains("filename*=UTF-8''2025%E5%B9%B4"),
        "{disposition}"
    );
    let sheet = sheet.body;
    // The same sheet `shenbao export --format xlsx` gives (its rows; the file's timestamps differ).
    let export_path = env.dir.join("汇总表.xlsx");
    env.cli(&[
        "export",
        "--format",
        "xlsx",
        "-o",
        export_path.to_str().unwrap_or_default(),
    ]);
    let rows = |bytes: &[u8]| {
        shenbao::extract::sheet::read_workbook(bytes, &Default::default())
            .expect("xlsx")
            .sheets[0]
            .rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_text()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let sheet_rows = rows(&sheet);
    assert_eq!(sheet_rows, rows(&read(&export_path)));
    let row_of = |branch: &str| {
        sheet_rows
            .iter()
            .position(|r| r.iter().any(|c| c == branch))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{branch} not in {sheet_rows:?}"))
    };

    // A reviewer's upload, confirmation and notification are refused, the file never read.
    let bad = graded_export(
        &sheet,
        &[(A, "优秀", "1000"), (D, "", "")],
        &[["不存在的党支部", "一般", "800"]],
    );
    let r = b
        .post_multipart(
            &reviewer,
            "/review/upload",
            &[
                Part::Field("csrf", &reviewer_csrf),
                Part::File("sheet", "bad.xlsx", &bad),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("评审专家账号只能查看"), "{}", r.body);
    for path in ["/review/confirm", "/review/notify"] {
        let r = b
            .post(&reviewer, path, &format!("csrf={reviewer_csrf}&token=x"))
            .await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    // Staff without the token, or with the token after the file: refused.
    for parts in [
        vec![Part::File("sheet", "bad.xlsx", &bad)],
        vec![
            Part::File("sheet", "bad.xlsx", &bad),
            Part::Field("csrf", &csrf),
        ],
        vec![
            Part::Field("csrf", "forged"),
            Part::File("sheet", "bad.xlsx", &bad),
        ],
    ] {
        let r = b.post_multipart(&staff, "/review/upload", &parts).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("CSRF"), "{}", r.body);
    }

    // A sheet with errors: each by row and column, nothing imported.
    let r = b
        .post_multipart(
            &staff,
            "/review/upload",
            &[
                Part::Field("csrf", &csrf),
                Part::File("sheet", "bad.xlsx", &bad),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let body = &r.body;
    assert!(
        body.contains(&format!(
            "第 {} 行「评审等级」列：「优秀」不是评审等级",
            row_of(A)
        )),
        "{body}"
    );
    assert!(
        body.contains("行「支部名称」列：「不存在的党支部」不在支部名册中"),
        "{body}"
    );
    assert!(
        body.contains(&format!("{D}（第 {} 行未填写评审等级）", row_of(D))),
        "{body}"
    );
    // A's row has an error: named by it, not listed again as missing from the sheet.
    assert!(
        !body.contains(&format!("{A}（表中没有这一支部的行）")),
        "{body}"
    );
    assert!(body.contains("本次没有导入任何结果"), "{body}");
    eprintln!(
        "screenshot: {}",
        screenshot(body, "review-errors", 1366, 768).display()
    );
    // Not a workbook at all.
    let r = b
        .post_multipart(
            &staff,
            "/review/upload",
            &[
                Part::Field("csrf", &csrf),
                Part::File("sheet", "notes.txt", "评审意见".as_bytes()),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("读不了「notes.txt」"), "{}", r.body);
    // No file chosen.
    let r = b
        .post_multipart(&staff, "/review/upload", &[Part::Field("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("没有选择文件"), "{}", r.body);
    // More than 10 MB: refused with a Chinese answer before the body is read.
    let (status, text) = oversized_upload(b.port, &staff, &csrf).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("上传的文件超过 10 MB"), "{text}");
    let pool = env.db().await;
    let reviews = async || -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM reviews")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    assert_eq!(reviews().await, 0, "nothing imported");

    // A clean sheet: previewed, not imported until confirmed.
    let good = graded_export(&sheet, &[(A, "重点", "5000"), (D, "不立项", "")], &[]);
    let r = b
        .post_multipart(
            &staff,
            "/review/upload",
            &[
                Part::Field("csrf", &csrf),
                Part::File("sheet", "评审表（终）.xlsx", &good),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = &r.body;
    assert!(body.contains("预览：评审表（终）.xlsx"), "{body}");
    assert!(
        body.contains(
            "将导入 <strong>2</strong> 条评审结果（立项 1 个，未立项 1 个；新增 2，变更 0，不变 0）"
        ),
        "{body}"
    );
    assert!(body.contains("重点，5000 元"), "{body}");
    assert!(body.contains("确认导入这 2 条评审结果"), "{body}");
    eprintln!(
        "screenshot: {}",
        screenshot(body, "review-preview", 1366, 768).display()
    );
    assert_eq!(reviews().await, 0, "not before the confirmation");
    let at = body.find(r#"name="token" value=""#).expect("token field");
    let token = body[at + 20..]
        .split('"')
        .next()
        .expect("token")
        .to_string();
    // Someone else's confirmation of it (here: the reviewer's) is refused.
    let r = b
        .post(
            &reviewer,
            "/review/confirm",
            &format!("csrf={reviewer_csrf}&token={token}"),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = b
        .post(
            &staff,
            "/review/confirm",
            &format!("csrf={csrf}&token={token}"),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap_or_default().to_string();
    assert_eq!(to, "/review?imported=2&funded=1&left=0");
    assert_eq!(reviews().await, 2);
    // Confirming the same upload again imports nothing more.
    let r = b
        .post(
            &staff,
            "/review/confirm",
            &format!("csrf={csrf}&token={token}"),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("预览已过期"), "{}", r.body);
    assert_eq!(reviews().await, 2);

    // The export has the levels.
    let export: serde_json::Value =
        serde_json::from_str(&env.cli(&["export", "--format", "json"])).expect("json");
    let level_of = |branch: &str| {
        export["submissions"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["branch"] == branch))
            .map(|s| s["level"].clone())
            .unwrap_or_default()
    };
    assert_eq!(level_of(A), "重点");
    assert_eq!(level_of(D), "不立项");

    // The page: the note, the results, the counts, and the mails `review notify --dry-run` lists.
    let page = b.get(&staff, &to).await;
    let body = &page.body;
    assert!(
        body.contains("已导入 2 条评审结果（立项 1 个，未立项 1 个）"),
        "{body}"
    );
    assert!(body.contains("已评审 <strong>2</strong> 个支部"), "{body}");
    assert!(
        body.contains(
            "<td>重点</td><td>≤ 5000 元</td><td class=\"num\">1</td><td class=\"num\">5000 元</td>"
        ),
        "{body}"
    );
    let (ok, dry) = env.run(&["review", "notify", "--dry-run"]);
    assert!(ok, "{dry}");
    let subjects: Vec<&str> = dry
        .lines()
        .filter_map(|l| l.find("【评审结果】").map(|i| &l[i..]))
        .collect();
    assert_eq!(subjects.len(), 2, "{dry}");
    assert!(
        body.contains("将发送 <strong>2</strong> 封评审结果通知"),
        "{body}"
    );
    for s in &subjects {
        assert!(body.contains(s), "{s}: {body}");
    }
    for addr in ["2479582@example.edu.cn", "lu.fengxi27@outlook.com"] {
        assert!(body.contains(addr), "{addr}");
    }
    assert!(body.contains("发送这 2 封结果通知"), "{body}");
    eprintln!(
        "screenshot: {}",
        screenshot(body, "review", 1366, 768).display()
    );
    let r = b.get(&reviewer, "/review").await;
    assert!(
        r.body.contains("将发送 <strong>2</strong> 封"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("/review/notify"), "{}", r.body);

    // Send: queued in the outbox and delivered, each branch once.
    let r = b
        .post(&staff, "/review/notify", &format!("csrf={csrf}"))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/review?queued=2"));
    let results_in_outbox = async || -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE kind = 'result'")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    assert_eq!(results_in_outbox().await, 2);
    let results_received = async || {
        acks(env, "catchall")
            .await
            .into_iter()
            .filter(|m| m.subject().is_some_and(|s| s.starts_with("【评审结果】")))
            .count()
    };
    wait_for("both result mails", Duration::from_secs(60), || {
        b.daemon.assert_alive();
        async { results_received().await >= 2 }
    })
    .await;
    // A second click queues nothing.
    let r = b
        .post(&staff, "/review/notify", &format!("csrf={csrf}"))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/review?queued=0"));
    assert_eq!(results_in_outbox().await, 2);
    let page = b.get(&staff, "/review?queued=0").await;
    assert!(
        page.body
            .contains("没有需要发送的评审结果：每个结果只通知一次"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("没有需要发送的评审结果通知。"),
        "{}",
        page.body
    );
    assert!(page.body.contains("通知过同一结果"), "{}", page.body);
    let (_, out) = env.run(&["review", "notify", "--dry-run"]);
    assert!(out.contains("没有需要发送的评审结果"), "{out}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(results_received().await, 2, "each branch once");

    let log = b.daemon.stop();
    assert!(log.contains("看板：导入评审结果"), "{log}");
    let _ = std::fs::remove_dir_all(&b.env.dir);
}

/// An upload that declares 11 MB and sends only its first part (the CSRF field): the board
/// answers at once from the declared length.
async fn oversized_upload(port: u16, cookie: &str, csrf: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (ctype, body) = multipart(&[Part::Field("csrf", csrf)]);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!(
        "POST /review/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        11 << 20
    );
    s.write_all(head.as_bytes()).await.expect("send");
    s.write_all(&body).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("the board answers before the body")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
