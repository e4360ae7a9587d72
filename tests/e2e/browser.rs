//! The board in a real browser (headless Chromium through WebDriver, mailbox intake36): the
//! browser opens `/`, is sent to the login page, logs in as staff by typing into the form and
//! clicking, and sees 总览; then two applications arrive through Postfix and the open page's
//! figures change without the page being reloaded (server-sent events and
//! `/static/live.js`). On 支部 a third one appears in the open list; a fourth, arriving while
//! the search box has the focus, only brings a notice to refresh, which reloads the list.
//! The daemon then stops cleanly with the page still listening. 总览 and 支部 are
//! screenshot at 1366×768.
//!
//! The steps are helpers ([`log_in`], [`figure`], [`mark_page`], [`still_same_page`],
//! [`send_sample`], [`shot`]) so that later steps — download a file, upload a sheet, click a
//! staff action — are a few lines each.

use crate::common::*;
use crate::web::*;
use crate::webdriver::{Browser, ENTER, TAB};
use std::time::Duration;

const INTAKE: &str = "intake36";
/// Two sample applications whose branches are in `sample_roster()`.
const SAMPLES: [(&str, &str); 2] = [
    ("c001", "汽车工程学院本科生第二党支部"),
    ("c010", "海洋与地球科学学院2022级本科生党支部"),
];
/// Two more, for 支部.
const MORE: [(&str, &str); 2] = [
    ("c002", "设计创意学院2024级博士生党支部"),
    ("c007", "经济与管理学院2023级博士生党支部"),
];
const WAIT: Duration = Duration::from_secs(60);

/// Logs `who` in through the login form, as a person would: the browser must be on
/// `/login`; returns when 总览 (or where the login led) has loaded.
pub fn log_in(b: &Browser, who: (&str, &str)) {
    b.wait_until("the login page", WAIT, |b| b.path().starts_with("/login"));
    b.find("#name").clear().send_keys(who.0);
    b.find("#password").send_keys(who.1);
    b.find("form[action='/login'] button[type=submit]").click();
    b.wait_until("the login to lead away from /login", WAIT, |b| {
        !b.path().starts_with("/login")
    });
}

/// The text of the element marked `data-live="<key>"`.
pub fn figure(b: &Browser, key: &str) -> String {
    b.text_of(&format!("[data-live='{key}']"))
}

/// Waits for the page's live stream to be open and its first event applied.
pub fn wait_live(b: &Browser) {
    b.wait_until("the live updates to connect", WAIT, |b| {
        b.execute(
            "return document.documentElement.getAttribute('data-live-state') === 'open' \
             && !!document.documentElement.getAttribute('data-live-updated');",
            serde_json::json!([]),
        ) == serde_json::json!(true)
    });
}

/// Marks the open page (a script variable a reload would lose).
pub fn mark_page(b: &Browser) {
    b.execute("window.__marker = 1; return null;", serde_json::json!([]));
}

/// Whether the page marked by [`mark_page`] is still the one open (never reloaded).
pub fn still_same_page(b: &Browser) -> bool {
    b.execute("return window.__marker === 1;", serde_json::json!([])) == serde_json::json!(true)
}

/// The text of 支部's row of `branch` ("" when it is not on the page).
pub fn row(b: &Browser, branch: &str) -> String {
    b.execute(
        "for (const r of document.querySelectorAll('table.branches tbody tr')) { \
           if (r.textContent.includes(arguments[0])) { return r.textContent; } } \
         return '';",
        serde_json::json!([branch]),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Sends the sample `case`'s mail through Postfix to the mailbox `intake`.
pub async fn send_sample(intake: &str, case: &str) {
    let raw = read(&root().join(format!("tests/fixtures/samples/{case}/message.eml")));
    smtp_send(
        &format!("{case}@sender.test"),
        &format!("{intake}@example.test"),
        &raw,
    )
    .await;
}

/// Screenshots the browser's viewport into the board's screenshot directory as
/// `<name>-1366x768.png` (the browser is started at that size).
pub fn shot(b: &Browser, name: &str) -> std::path::PathBuf {
    let png = b.screenshot(&screenshot_dir().join(format!("{name}-1366x768.png")));
    eprintln!("screenshot: {}", png.display());
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_overview_follows_arriving_applications() {
    let roster = sample_roster();
    let roster_size = roster.lines().count() - 1;
    let BoardEnv {
        env,
        mut daemon,
        port,
    } = BoardEnv::start(
        "browser",
        INTAKE,
        EnvOptions {
            roster: &roster,
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    let b = Browser::start(&format!("http://127.0.0.1:{port}"), 1366, 768);

    // No session: to the login page; then in through the form.
    b.goto("/");
    log_in(&b, STAFF);
    assert_eq!(b.path(), "/");
    assert_eq!(b.text_of("h1"), "总览");
    assert!(b.text_of(".who").contains("王老师（工作人员）"));
    wait_live(&b);
    assert_eq!(figure(&b, "applied"), "0");
    assert_eq!(figure(&b, "not_applied"), roster_size.to_string());
    assert_eq!(figure(&b, "last_arrival"), "—");
    mark_page(&b);

    for (case, _) in SAMPLES {
        send_sample(INTAKE, case).await;
    }
    // The figures change on the open page, without a reload.
    b.wait_until("two applications on the open 总览", WAIT, |b| {
        daemon.assert_alive();
        figure(b, "applied") == "2"
    });
    assert!(still_same_page(&b), "the page was reloaded");
    assert_eq!(figure(&b, "not_applied"), (roster_size - 2).to_string());
    assert_ne!(figure(&b, "last_arrival"), "—");
    // The charts were fetched again and swapped in, too.
    b.wait_until("the arrivals chart to count both", WAIT, |b| {
        b.execute(
            "return document.querySelector(\"[data-live-region='daily']\").innerHTML;",
            serde_json::json!([]),
        )
        .as_str()
        .is_some_and(|h| h.contains("共 2 份"))
    });
    for (_, branch) in SAMPLES {
        assert!(
            b.source()
                .contains(&format!("{}：已申报 1", college_of(&roster, branch))),
            "{branch}: {}",
            b.source()
        );
    }
    assert!(still_same_page(&b), "the page was reloaded");
    // What the figures say is what `shenbao status` says.
    let status = env.cli(&["status"]);
    assert!(
        status.contains(&format!("名册共 {roster_size} 个支部，已申报 2 个")),
        "{status}"
    );
    shot(&b, "overview-live");

    // 支部: the list is fetched again and swapped in, without a reload …
    b.goto("/branches");
    wait_live(&b);
    mark_page(&b);
    let (case, branch) = MORE[0];
    assert!(!row(&b, branch).contains("第1版"), "{}", row(&b, branch));
    send_sample(INTAKE, case).await;
    b.wait_until("the new application in the open list", WAIT, |b| {
        daemon.assert_alive();
        row(b, branch).contains("第1版")
    });
    assert!(still_same_page(&b), "the page was reloaded");
    // … but not while someone types in the search box: a notice offers to refresh.
    let (case, branch) = MORE[1];
    b.find("#q").click();
    send_sample(INTAKE, case).await;
    b.wait_until("the notice of new data", WAIT, |b| {
        daemon.assert_alive();
        b.text_of(".live-notice").contains("有新数据，刷新")
    });
    assert!(!row(&b, branch).contains("第1版"), "{}", row(&b, branch));
    assert!(still_same_page(&b), "the page was reloaded");
    shot(&b, "branches-live");
    b.find(".live-notice a").click();
    b.wait_until("the refreshed list", WAIT, |b| {
        !still_same_page(b) && row(b, branch).contains("第1版")
    });

    // The script, the stream's guard and the policy that lets the script run.
    let js = http(port, "127.0.0.1", "GET", "/static/live.js", "", None).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.body.contains("new EventSource('/events')"));
    let events = http(port, "127.0.0.1", "GET", "/events", "", None).await;
    assert_eq!(events.status, 303);
    assert_eq!(events.header("location"), Some("/login"));
    let csp = events.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'; script-src 'self'; connect-src 'self';"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline'; script") && !csp.contains("script-src 'unsafe"));

    // The daemon stops cleanly while the page still listens (the stream ends with it).
    let log = daemon.stop();
    drop(b);
    assert!(log.contains("看板已启动"), "{log}");
    let _ = std::fs::remove_dir_all(&env.dir);
}

/// The college of `branch` in a roster CSV.
fn college_of(roster: &str, branch: &str) -> String {
    roster
        .lines()
        .find_map(|l| {
            let mut cols = l.split(',');
            let college = cols.next()?;
            (cols.next()? == branch).then(|| college.to_string())
        })
        .unwrap_or_else(|| panic!("{branch} is not in the roster"))
}

/// The journey of issue 14's "Done when" (mailbox intake37): a staff member logs in, watches
/// two applications and a question arrive, goes to 支部 by keyboard only (Tab to the link,
/// Enter), opens a branch by clicking its link and downloads its form (the sha256 the export
/// gives), downloads the reviewers' sheet on 评审, uploads a graded copy with an error (the
/// row/column message), then a clean one (the preview), confirms (the note; the export has
/// the levels), marks the question handled on 需人工处理 (it leaves the list; `shenbao status`
/// agrees), and passes by 发件箱, 材料 and 结项. Every page is screenshot at 1366×768 as
/// `<page>-1366x768.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_member_works_the_campaign_in_the_browser() {
    const JOURNEY: &str = "intake37";
    const QUESTION: &str = "请问申报截止时间是什么时候？";
    let (a, d) = (SAMPLES[0].1, SAMPLES[1].1);
    let started = std::time::Instant::now();
    let roster = sample_roster();
    // Mid-campaign: the deadline ten days ahead, so the applications are on time.
    let deadline = (chrono::Local::now() + chrono::Duration::days(10))
        .format("%Y-%m-%dT23:59:59")
        .to_string();
    let BoardEnv {
        env,
        mut daemon,
        port,
    } = BoardEnv::start(
        "browser_journey",
        JOURNEY,
        EnvOptions {
            roster: &roster,
            deadline: &deadline,
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    let b = Browser::start(&format!("http://127.0.0.1:{port}"), 1366, 768);

    // The login page, then in.
    b.goto("/");
    b.wait_until("the login page", WAIT, |b| b.path().starts_with("/login"));
    shot(&b, "login");
    log_in(&b, STAFF);
    assert_eq!(b.text_of("h1"), "总览");
    wait_live(&b);
    assert_eq!(figure(&b, "applied"), "0");
    assert_eq!(figure(&b, "needs_staff"), "0");

    // Two applications and a question arrive through Postfix; the open page counts them.
    for (case, _) in SAMPLES {
        send_sample(JOURNEY, case).await;
    }
    let to = format!("{JOURNEY}@example.test");
    let question = PersonMail {
        from: "curious@example.test",
        to: &to,
        subject: QUESTION,
        message_id: "question@browser.test",
        body: "老师好，请问申报截止时间是什么时候？",
        files: vec![],
        headers: vec![],
        in_reply_to: None,
    };
    smtp_send("curious@example.test", &to, &question.build()).await;
    b.wait_until(
        "two applications and a question on the open 总览",
        WAIT,
        |b| {
            daemon.assert_alive();
            figure(b, "applied") == "2" && figure(b, "needs_staff") == "1"
        },
    );
    assert_eq!(b.path(), "/", "the page stayed open");
    shot(&b, "overview");

    // By keyboard only: Tab from the top of the page to the 支部 link, then Enter.
    let mut tabs = 0;
    while !b.focused().starts_with("A /branches ") {
        tabs += 1;
        assert!(tabs <= 10, "Tab never reached 支部: {}", b.focused());
        b.press(&[TAB]);
    }
    assert_eq!(tabs, 3, "skip link, 总览, then 支部");
    b.press(&[ENTER]);
    b.wait_until("支部 opened by keyboard", WAIT, |b| {
        b.path() == "/branches" && b.text_of("h1") == "支部"
    });
    assert!(row(&b, a).contains("第1版"), "{}", row(&b, a));
    shot(&b, "branches");

    // A branch, by clicking its link; its form, by clicking the download link.
    b.find_link(a).click();
    b.wait_until("the branch's page", WAIT, |b| b.text_of("h1") == a);
    assert!(b.path().starts_with("/branch?name="), "{}", b.path());
    shot(&b, "branch");
    let export = || -> serde_json::Value {
        serde_json::from_str(&env.cli(&["export", "--format", "json"])).expect("json")
    };
    let submission = |e: &serde_json::Value, branch: &str| {
        e["submissions"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["branch"] == branch).cloned())
            .unwrap_or_else(|| panic!("{branch} not in the export"))
    };
    let form = submission(&export(), a)["attachments"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["role"] == "form").cloned())
        .expect("the form in the export");
    let (form_name, form_sha) = (
        form["filename"].as_str().expect("name").to_string(),
        form["sha256"].as_str().expect("sha256").to_string(),
    );
    b.find_link(&form_name).click();
    let saved = b.wait_download(".docx", WAIT);
    assert_eq!(
        saved.file_name().and_then(|n| n.to_str()),
        Some(form_name.as_str())
    );
    assert_eq!(shenbao::store::blobs::sha256_hex(&read(&saved)), form_sha);

    // 评审: the sheet as the browser downloads it, graded with an error, then cleanly.
    b.find_link("评审").click();
    b.wait_until("评审", WAIT, |b| b.text_of("h1") == "评审");
    b.find_link("下载评审表（.xlsx）").click();
    let sheet = read(&b.wait_download(".xlsx", WAIT));
    let rows: Vec<Vec<String>> =
        shenbao::extract::sheet::read_workbook(&sheet, &Default::default())
            .expect("xlsx")
            .sheets[0]
            .rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_text()).collect())
            .collect();
    let row_of_a = rows
        .iter()
        .position(|r| r.iter().any(|c| c == a))
        .map(|i| i + 1)
        .expect("a's row");
    let bad = env.dir.join("评审表-有误.xlsx");
    std::fs::write(
        &bad,
        graded_export(&sheet, &[(a, "优秀", "1000"), (d, "不立项", "")], &[]),
    )
    .expect("write");
    b.find("#sheet").upload(&bad);
    b.find("form.upload button[type=submit]").click();
    let wanted = format!("第 {row_of_a} 行「评审等级」列：「优秀」不是评审等级");
    b.wait_until("the row/column message", WAIT, |b| {
        b.text_of(".upload-result .error").contains(&wanted)
    });
    assert!(b.text_of(".upload-result").contains("本次没有导入任何结果"));
    shot(&b, "review-errors");
    let good = env.dir.join("评审表.xlsx");
    std::fs::write(
        &good,
        graded_export(&sheet, &[(a, "重点", "5000"), (d, "不立项", "")], &[]),
    )
    .expect("write");
    b.find("#sheet").upload(&good);
    b.find("form.upload button[type=submit]").click();
    b.wait_until("the preview", WAIT, |b| {
        b.text_of("#upload-h") == "预览：评审表.xlsx"
    });
    assert!(
        b.text_of(".upload-result").contains("将导入 2 条评审结果"),
        "{}",
        b.text_of(".upload-result")
    );
    shot(&b, "review-preview");
    b.find("form[action='/review/confirm'] button[type=submit]")
        .click();
    b.wait_until("the note of the import", WAIT, |b| {
        b.text_of("p.ok-note[role=status]")
            .contains("已导入 2 条评审结果（立项 1 个，未立项 1 个）")
    });
    shot(&b, "review");
    let e = export();
    assert_eq!(submission(&e, a)["level"], "重点");
    assert_eq!(submission(&e, d)["level"], "不立项");

    // 需人工处理: the question, its page, then marked handled with a note.
    b.find_link("需人工处理").click();
    b.wait_until("需人工处理", WAIT, |b| b.text_of("h1") == "需人工处理");
    let qid = b
        .execute(
            "for (const r of document.querySelectorAll('table.staff tbody tr[id]')) { \
               if (r.textContent.includes(arguments[0])) { return r.id.slice(1); } } \
             return '';",
            serde_json::json!([QUESTION]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!qid.is_empty(), "the question is listed: {}", b.source());
    let status = env.cli(&["status"]);
    assert!(
        crate::staff_board::staff_section(&status).contains(&format!("#{qid} ")),
        "{status}"
    );
    shot(&b, "staff");
    b.find(&format!("#m{qid} td:nth-child(4) a")).click();
    b.wait_until("the mail's page", WAIT, |b| b.text_of("h1") == QUESTION);
    assert_eq!(b.path(), format!("/message/{qid}"));
    shot(&b, "message");
    b.find_link("需人工处理").click();
    b.wait_until("需人工处理", WAIT, |b| b.text_of("h1") == "需人工处理");
    b.find(&format!("#note{qid}")).send_keys("已电话答复");
    b.find(&format!(
        "#m{qid} form[action$='/resolve'] button[type=submit]"
    ))
    .click();
    b.wait_until("the question to leave the list", WAIT, |b| {
        b.text_of("p.flash.ok")
            .contains(&format!("邮件 #{qid} 已标为处理完毕"))
    });
    assert!(b.try_find(&format!("#m{qid}")).is_none(), "still listed");
    assert!(b.text_of("section.handled").contains("已电话答复"));
    let status = env.cli(&["status"]);
    assert!(
        !crate::staff_board::staff_section(&status).contains(&format!("#{qid} ")),
        "{status}"
    );

    // The remaining pages.
    for (link, h1, name) in [
        ("发件箱", "发件箱", "outbox"),
        ("材料", "材料", "materials"),
        ("结项", "结项", "closure"),
    ] {
        b.find_link(link).click();
        b.wait_until(h1, WAIT, |b| b.text_of("h1") == h1);
        shot(&b, name);
    }

    let log = daemon.stop();
    drop(b);
    assert!(log.contains("看板已启动"), "{log}");
    eprintln!("the browser journey took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&env.dir);
}
