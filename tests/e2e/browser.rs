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
use crate::webdriver::Browser;
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

/// Sends the sample `case`'s mail through Postfix to the intake mailbox.
pub async fn send_sample(case: &str) {
    let raw = read(&root().join(format!("tests/fixtures/samples/{case}/message.eml")));
    smtp_send(
        &format!("{case}@sender.test"),
        &format!("{INTAKE}@example.test"),
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
        send_sample(case).await;
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
    send_sample(case).await;
    b.wait_until("the new application in the open list", WAIT, |b| {
        daemon.assert_alive();
        row(b, branch).contains("第1版")
    });
    assert!(still_same_page(&b), "the page was reloaded");
    // … but not while someone types in the search box: a notice offers to refresh.
    let (case, branch) = MORE[1];
    b.find("#q").click();
    send_sample(case).await;
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
