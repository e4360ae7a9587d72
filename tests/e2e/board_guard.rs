//! Every route of the board behind its guard, for real (mailbox intake38): the list below is
//! checked against the `.route("…")` calls in `src/web/`, so a page added without an entry
//! here fails this test. Then, against a running daemon with one application and one
//! question stored:
//! - without a session, every page redirects to the login page and every action is refused;
//! - a reviewer's action (with the right CSRF token) is refused with 403;
//! - a staff action without the CSRF token, or with another session's, is refused with 403;
//! - and none of the refused actions changed anything (the outbox and the needs-staff list
//!   read the same before and after).
//!
//! What each action does when allowed is tested with its page (`detail`, `staff_board`,
//! `review_board`, `materials_board`, `browser`).

use crate::common::*;
use crate::web::*;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Answers anyone (the login form, the script, logging out).
    Public,
    /// A page or download: a session is needed.
    Page,
    /// Changes something: a staff session and its CSRF token are needed.
    Action,
    /// Changes only the session (which campaign it looks at): any session, with its own CSRF
    /// token; the data stays as it was.
    Session,
}

/// Every route, with a concrete path (ids that exist once the two mails are in).
const ROUTES: &[(&str, &str, &str, Kind)] = &[
    ("/login", "GET", "/login", Kind::Public),
    ("/login", "POST", "/login", Kind::Public),
    ("/logout", "POST", "/logout", Kind::Public),
    ("/static/live.js", "GET", "/static/live.js", Kind::Public),
    ("/", "GET", "/", Kind::Page),
    ("/branches", "GET", "/branches", Kind::Page),
    ("/branch", "GET", "/branch?name=x", Kind::Page),
    ("/attachment/{id}", "GET", "/attachment/1", Kind::Page),
    ("/events", "GET", "/events", Kind::Page),
    ("/staff", "GET", "/staff", Kind::Page),
    ("/message/{id}", "GET", "/message/1", Kind::Page),
    ("/message/{id}/raw", "GET", "/message/1/raw", Kind::Page),
    (
        "/message/{id}/resolve",
        "POST",
        "/message/2/resolve",
        Kind::Action,
    ),
    (
        "/message/{id}/assign",
        "POST",
        "/message/2/assign",
        Kind::Action,
    ),
    ("/outbox", "GET", "/outbox", Kind::Page),
    (
        "/outbox/{id}/retry",
        "POST",
        "/outbox/1/retry",
        Kind::Action,
    ),
    (
        "/outbox/retry-dead",
        "POST",
        "/outbox/retry-dead",
        Kind::Action,
    ),
    ("/review", "GET", "/review", Kind::Page),
    (
        "/review/sheet.xlsx",
        "GET",
        "/review/sheet.xlsx",
        Kind::Page,
    ),
    ("/review/upload", "POST", "/review/upload", Kind::Action),
    ("/review/confirm", "POST", "/review/confirm", Kind::Action),
    ("/review/notify", "POST", "/review/notify", Kind::Action),
    ("/materials", "GET", "/materials", Kind::Page),
    ("/materials.zip", "GET", "/materials.zip", Kind::Page),
    ("/closure", "GET", "/closure", Kind::Page),
    ("/campaign", "POST", "/campaign", Kind::Session),
];

/// The route patterns the board's sources register.
fn routes_in_sources() -> Vec<String> {
    let dir = root().join("src/web");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/web") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            let Some(q) = rest.find('"') else { break };
            let tail = &rest[q + 1..];
            let Some(end) = tail.find('"') else { break };
            out.push(tail[..end].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_route_of_the_board_is_in_the_guard_list() {
    let listed: std::collections::BTreeSet<&str> = ROUTES.iter().map(|r| r.0).collect();
    let found = routes_in_sources();
    assert!(found.len() >= 20, "{found:?}");
    for r in &found {
        assert!(
            listed.contains(r.as_str()),
            "the route {r} is not in tests/e2e/board_guard.rs ROUTES: add it with its guard"
        );
    }
    for r in &listed {
        assert!(
            found.iter().any(|f| f == r),
            "{r} is listed but no longer a route"
        );
    }
}

/// The outbox and the needs-staff list as the CLI reads them: what a refused action must
/// leave as it was.
fn state(env: &TestEnv) -> String {
    // The daemons' leases are renewed as time passes: liveness, not the campaign's data.
    let status: String = env
        .cli(&["status"])
        .split("守护进程与分工：")
        .next()
        .unwrap_or_default()
        .to_string();
    let outbox = env.cli(&["outbox", "list", "--status", "all"]);
    format!("{status}\n{outbox}")
}

async fn request(b: &BoardEnv, method: &str, path: &str, cookie: &str, form: &str) -> Reply {
    if method == "GET" {
        return b.get(cookie, path).await;
    }
    if path == "/review/upload" {
        let csrf = form.strip_prefix("csrf=").unwrap_or("");
        return b
            .post_multipart(
                cookie,
                path,
                &[
                    Part::Field("csrf", csrf),
                    Part::File("sheet", "评审表.xlsx", b"not a sheet"),
                ],
            )
            .await;
    }
    b.post(cookie, path, form).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_no_token_and_no_reviewer_changes_anything() {
    let roster = sample_roster();
    let mut b = BoardEnv::start(
        "board_guard",
        "intake38",
        EnvOptions {
            roster: &roster,
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    // One application (message 1, its files, its ack) and one question (message 2).
    let raw = read(&root().join("tests/fixtures/samples/c010/message.eml"));
    smtp_send("lu.fengxi27@outlook.com", "intake38@example.test", &raw).await;
    let question = "From: lu.fengxi27@outlook.com\r\nTo: intake38@example.test\r\n\
        Subject: =?UTF-8?B?6K+36Zeu5oiq5q2i5pe26Ze05piv5LuA5LmI5pe25YCZ77yf?=\r\n\
        Message-ID: <guard-question@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
        请问截止时间是什么时候？\r\n";
    smtp_send(
        "lu.fengxi27@outlook.com",
        "intake38@example.test",
        question.as_bytes(),
    )
    .await;
    wait_for(
        "both mails to be processed",
        Duration::from_secs(60),
        || {
            b.daemon.assert_alive();
            let s = b.env.cli(&["status"]);
            async move { s.contains("已申报 1 个") && s.contains("请问截止时间") }
        },
    )
    .await;
    // Until the acks are out and their copies back: then nothing changes by itself.
    let mut before = state(&b.env);
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = state(&b.env);
        if now == before && !now.contains("待发送") && !now.contains("等待重试") {
            break;
        }
        before = now;
    }

    // Without a session.
    for (_, method, path, kind) in ROUTES {
        if *kind == Kind::Public {
            continue;
        }
        let r = request(&b, method, path, "", "csrf=x").await;
        match kind {
            Kind::Page => assert!(
                r.status == 303 && r.header("location") == Some("/login"),
                "{method} {path} without a session: {} {:?}",
                r.status,
                r.header("location")
            ),
            Kind::Action | Kind::Session => assert!(
                r.status == 403 || (r.status == 303 && r.header("location") == Some("/login")),
                "{method} {path} without a session: {}",
                r.status
            ),
            Kind::Public => unreachable!(),
        }
    }

    // A reviewer, with the reviewer's own CSRF token.
    let reviewer = b.login("127.0.0.1", REVIEWER).await;
    let page = b.get(&reviewer, "/").await;
    let reviewer_csrf = csrf_in(&page.body);
    assert!(!reviewer_csrf.is_empty());
    // Staff, whose pages answer (no page fails on the ids above).
    let staff = b.login("127.0.0.1", STAFF).await;
    let staff_csrf = csrf_in(&b.get(&staff, "/").await.body);
    for (_, method, path, kind) in ROUTES {
        if *kind != Kind::Page || *path == "/events" {
            continue;
        }
        let r = request(&b, method, path, &staff, "").await;
        assert!(
            r.status == 200 || r.status == 404,
            "{method} {path} as staff: {}",
            r.status
        );
    }
    for (_, method, path, kind) in ROUTES {
        if *kind != Kind::Action {
            continue;
        }
        let form = format!("csrf={reviewer_csrf}&name=x&note=x");
        let r = request(&b, method, path, &reviewer, &form).await;
        assert_eq!(r.status, 403, "{method} {path} by a reviewer: {}", r.body);
        // Staff without a token, and with the reviewer's token.
        let r = request(&b, method, path, &staff, "name=x&note=x").await;
        assert_eq!(r.status, 403, "{method} {path} without a token: {}", r.body);
        let r = request(&b, method, path, &staff, &form).await;
        assert_eq!(
            r.status, 403,
            "{method} {path} with a forged token: {}",
            r.body
        );
    }
    for (_, method, path, kind) in ROUTES {
        if *kind != Kind::Session {
            continue;
        }
        // Without the session's own token: refused; with it, a reviewer too (one campaign
        // here: the current one).
        let r = request(&b, method, path, &staff, "id=default").await;
        assert_eq!(r.status, 403, "{method} {path} without a token: {}", r.body);
        let forged = format!("csrf={reviewer_csrf}&id=default");
        let r = request(&b, method, path, &staff, &forged).await;
        assert_eq!(
            r.status, 403,
            "{method} {path} with a forged token: {}",
            r.body
        );
        let own = format!("csrf={reviewer_csrf}&id=default");
        let r = request(&b, method, path, &reviewer, &own).await;
        assert_eq!(r.status, 303, "{method} {path} by a reviewer: {}", r.body);
    }
    assert!(!staff_csrf.is_empty() && staff_csrf != reviewer_csrf);
    assert_eq!(state(&b.env), before, "a refused action changed something");
}
