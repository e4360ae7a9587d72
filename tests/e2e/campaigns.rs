//! Two campaigns of one subject through the real servers: last semester's (applications and
//! closure over, its review imported) and this semester's (open). Mails with the same subject
//! go to the campaign in whose window they arrived (their INTERNALDATE), each campaign numbers
//! its own versions and judges lateness by its own deadline, and `--campaign` shows either
//! one: `status`, `export` (JSON and xlsx), `review import`; the board's 支部 page filters the
//! branches funded last semester (上学期已立项).
//!
//! The campaigns' dates are set around the real clock (the daemon runs on it): last
//! semester closed 20 days ago, this one opened 10 days ago.

use crate::common::*;
use crate::web::{Reply, STAFF, free_port, http, login, passwd};
use chrono::{Duration as Days, FixedOffset, Utc};
use std::time::Duration;

const B22: &str = SAMPLE_BRANCH;
const B24: &str = "海洋与地球科学学院2024级本科生党支部";
const B25: &str = "海洋与地球科学学院2025级本科生党支部";

/// `now + days` in Beijing time as the config writes it (`2026-03-28T23:59:59`).
fn local(days: i64) -> String {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("offset");
    (Utc::now() + Days::days(days))
        .with_timezone(&beijing)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// `now + days` as an INTERNALDATE (RFC 3339).
fn arrived(days: i64) -> String {
    (Utc::now() + Days::days(days)).to_rfc3339()
}

/// An application of `branch` with its form and summary.
fn application(branch: &str, to: &str, id: &str) -> Vec<u8> {
    let (docx, xlsx) = sample_files();
    let form = patch_office(&docx, "word/document.xml", &[(SAMPLE_BRANCH, branch)]);
    let (from, into) = (ncr(SAMPLE_BRANCH), ncr(branch));
    let sheet = patch_office(&xlsx, "sheet1.xml", &[(from.as_str(), into.as_str())]);
    PersonMail {
        from: "secretary@campaigns.test",
        to,
        subject: &format!("对标争先建设项目申报-{branch}"),
        message_id: id,
        body: "老师好，附件是申报材料。",
        files: vec![
            (format!("{branch}-项目申请表.docx"), form),
            (format!("对标争先建设项目申报汇总表_{branch}.xlsx"), sheet),
        ],
        headers: vec![],
        in_reply_to: None,
    }
    .build()
}

/// Every version: (campaign, branch, version, latest, late), in campaign and arrival order.
async fn versions(pool: &sqlx::AnyPool) -> Vec<(String, String, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT campaign, branch, version, CASE WHEN is_latest THEN 1 ELSE 0 END, CASE WHEN late THEN 1 ELSE 0 END
         FROM submissions ORDER BY campaign, received_at",
    )
    .fetch_all(pool)
    .await
    .expect("versions")
}

/// The export's (branch, version, versions, late) in its order.
fn exported(json: &str) -> Vec<(String, i64, i64, bool)> {
    let v: serde_json::Value = serde_json::from_str(json).expect("export json");
    v["submissions"]
        .as_array()
        .expect("submissions")
        .iter()
        .map(|s| {
            (
                s["branch"].as_str().unwrap_or_default().to_string(),
                s["version"].as_i64().unwrap_or_default(),
                s["versions"].as_i64().unwrap_or_default(),
                s["late"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

/// GET `path` of the board on `port` with the session `cookie`.
async fn get(port: u16, cookie: &str, path: &str) -> Reply {
    http(port, "127.0.0.1", "GET", path, cookie, None).await
}

/// Chooses the campaign the session looks at (`form`: `csrf=…&id=…`).
async fn choose(port: u16, cookie: &str, form: &str) -> Reply {
    http(port, "127.0.0.1", "POST", "/campaign", cookie, Some(form)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_subject_two_semesters() {
    let env = TestEnv::new(
        "campaigns",
        "intake20",
        EnvOptions {
            roster: &sample_roster(),
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let port = free_port();
    let text = std::fs::read_to_string(&env.config).expect("config");
    let (head, rest) = text.split_once("[campaign]").expect("campaign table");
    let (_, tail) = rest.split_once("[ack]").expect("ack table");
    let intake = format!("{}@example.test", env.user);
    let campaign = |id: &str, name: &str, dates: String| {
        format!(
            "[[campaign]]\nid = \"{id}\"\nname = \"{name}\"\nintake_address = \"{intake}\"\nroster = \"roster.csv\"\n{dates}"
        )
    };
    std::fs::write(
        &env.config,
        format!(
            "{head}{}{}[ack]{tail}[web]\nlisten = \"127.0.0.1:{port}\"\n{}",
            campaign(
                "2025-autumn",
                "2025年秋季学期学生党支部“对标争先”建设项目",
                format!(
                    "deadline = \"{}\"\nclosure_deadline = \"{}\"\n",
                    local(-60),
                    local(-20)
                ),
            ),
            campaign(
                "2026-spring",
                "2026年春季学期学生党支部“对标争先”建设项目",
                format!(
                    "opens = \"{}\"\ndeadline = \"{}\"\nclosure_deadline = \"{}\"\n",
                    local(-10),
                    local(30),
                    local(120)
                ),
            ),
            passwd(STAFF.0, STAFF.1, "staff"),
        ),
    )
    .expect("config");
    let (ok, out) = env.run(&["check-config"]);
    assert!(ok, "{out}");

    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    // Last semester: B22 twice before its deadline, B24 after it (late, before the closure
    // deadline: still last semester's). This semester: B22 again and B25.
    let mails = [
        (B22, "autumn-22-1@campaigns.test", arrived(-75)),
        (B22, "autumn-22-2@campaigns.test", arrived(-70)),
        (B24, "autumn-24@campaigns.test", arrived(-50)),
        (B22, "spring-22@campaigns.test", arrived(-5)),
        (B25, "spring-25@campaigns.test", arrived(-2)),
    ];
    let mut s = imap(&env.user).await;
    for (branch, id, at) in &mails {
        append(&mut s, "INBOX", &application(branch, &intake, id), Some(at)).await;
    }
    let _ = s.logout().await;
    let pool = env.db().await;
    wait_for("5 applications processed", Duration::from_secs(90), || {
        daemon.assert_alive();
        let pool = pool.clone();
        async move {
            scalar(
                &pool,
                "SELECT COUNT(*) FROM messages WHERE disposition = 'application'",
            )
            .await
                >= 5
        }
    })
    .await;
    wait_for("the acks sent", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status != 'sent'").await == 0 }
    })
    .await;

    // Each campaign numbers its own versions and judges lateness by its own deadline.
    let s = |t: &str| t.to_string();
    assert_eq!(
        versions(&pool).await,
        [
            (s("2025-autumn"), s(B22), 1, 0, 0),
            (s("2025-autumn"), s(B22), 2, 1, 0),
            (s("2025-autumn"), s(B24), 1, 1, 1),
            (s("2026-spring"), s(B22), 1, 1, 0),
            (s("2026-spring"), s(B25), 1, 1, 0),
        ]
    );
    // Each answer is filed with its mail's campaign.
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM outbox o JOIN messages m ON m.id = o.related_message
             WHERE o.kind = 'ack' AND o.campaign = m.campaign",
        )
        .await,
        5
    );

    // Exports: this semester by default, last semester by --campaign.
    let spring = exported(&env.cli(&["export", "--format", "json"]));
    assert_eq!(
        spring,
        [(s(B22), 1, 1, false), (s(B25), 1, 1, false)],
        "this semester"
    );
    let autumn_json = env.cli(&["--campaign", "2025-autumn", "export", "--format", "json"]);
    let top: serde_json::Value = serde_json::from_str(&autumn_json).expect("json");
    assert_eq!(top["campaign_id"], "2025-autumn");
    assert!(
        top["campaign"]
            .as_str()
            .is_some_and(|n| n.starts_with("2025年秋季学期")),
        "{top}"
    );
    let autumn = exported(&autumn_json);
    assert_eq!(
        autumn,
        [(s(B22), 2, 2, false), (s(B24), 1, 1, true)],
        "last semester"
    );
    let status = env.cli(&["--campaign", "2025-autumn", "status"]);
    assert!(status.contains("活动：2025年秋季学期"), "{status}");
    assert!(status.contains("--campaign 2026-spring"), "{status}");

    // Last semester's review, imported into last semester only.
    let xlsx = env.dir.join("autumn.xlsx");
    env.cli(&[
        "--campaign",
        "2025-autumn",
        "export",
        "--format",
        "xlsx",
        "--output",
        xlsx.to_str().unwrap_or_default(),
    ]);
    let sheet = env.dir.join("autumn-graded.xlsx");
    std::fs::write(
        &sheet,
        graded_export(
            &read(&xlsx),
            &[(B22, "重点", "5000"), (B24, "不立项", "")],
            &[],
        ),
    )
    .expect("sheet");
    let (ok, out) = env.run(&[
        "--campaign",
        "2025-autumn",
        "review",
        "import",
        sheet.to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM reviews WHERE campaign = '2025-autumn' AND is_current = TRUE"
        )
        .await,
        2
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM reviews WHERE campaign != '2025-autumn'"
        )
        .await,
        0
    );

    // The board (this semester): 上学期已立项 keeps B22, funded last semester, alone.
    let cookie = login(port, "127.0.0.1", STAFF).await;
    let all = get(port, &cookie, "/branches").await;
    assert!(all.body.contains("上学期已立项"), "{}", all.body);
    assert!(
        all.body.contains("2026年春季学期"),
        "the board shows this semester"
    );
    let funded = get(port, &cookie, "/branches?previous=funded").await;
    assert_eq!(funded.status, 200);
    assert!(funded.body.contains("共 1 个支部"), "{}", funded.body);
    assert!(
        funded.body.contains(B22) && funded.body.contains("<td>重点</td>"),
        "{}",
        funded.body
    );
    assert!(!funded.body.contains(B24), "not funded: {}", funded.body);

    // Last semester on the board: chosen in the header (a POST with the session's CSRF
    // token), every page then reads that campaign for this session only.
    let csrf = crate::web::csrf_in(&all.body);
    assert!(all.body.contains(r#"action="/campaign""#), "{}", all.body);
    let forged = choose(port, &cookie, "id=2025-autumn").await;
    assert_eq!(
        forged.status, 403,
        "without the CSRF token: {}",
        forged.body
    );
    let chosen = choose(port, &cookie, &format!("csrf={csrf}&id=2025-autumn")).await;
    assert_eq!(chosen.status, 303, "{}", chosen.body);
    let autumn_page = get(port, &cookie, "/branches").await;
    assert!(
        autumn_page.body.contains("正在查看往期活动“2025年秋季学期"),
        "{}",
        autumn_page.body
    );
    assert!(
        autumn_page.body.contains("迟交</span>"),
        "B24 was late last semester"
    );
    assert!(
        autumn_page.body.contains("第2版"),
        "B22's second version last semester"
    );
    // As a person sees it: the selector in the header and the notice on top.
    crate::web::screenshot(&autumn_page.body, "branches-last-semester", 1366, 768);
    let overview = get(port, &cookie, "/").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    // Back to this semester.
    let back = choose(port, &cookie, &format!("csrf={csrf}&id=2026-spring")).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let spring_page = get(port, &cookie, "/branches").await;
    assert!(
        !spring_page.body.contains("正在查看往期活动"),
        "{}",
        spring_page.body
    );
    assert!(
        !spring_page.body.contains("迟交</span>"),
        "{}",
        spring_page.body
    );

    // A campaign the config does not name, and the daemon, are refused with what to do.
    let (ok, out) = env.run(&["--campaign", "2024-spring", "status"]);
    assert!(!ok && out.contains("2025-autumn、2026-spring"), "{out}");
    let (ok, out) = env.run(&["--campaign", "2025-autumn", "run"]);
    assert!(!ok && out.contains("请去掉 --campaign"), "{out}");
    daemon.stop();
}
