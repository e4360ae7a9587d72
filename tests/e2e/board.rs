//! The board (看板) for real (Dovecot + Postfix, mailbox intake31): the daemon serves it, an
//! application arrives through Postfix, and a client drives the board over HTTP — the login
//! refused without its CSRF token, wrong passwords refused and then rate-limited (per name
//! and per address), a good login, 总览 and 支部 showing the branch as applied, a branch
//! name carrying `<script>` staying inert, logout ending the session. A headless Chromium
//! screenshots the pages at 1366×768 and at a phone's 390×844.

use crate::common::*;
use crate::web::*;
use std::time::Duration;

const EVIL_BRANCH: &str = "<script>alert(1)</script>支部";
const EVIL_COLLEGE: &str = "\"onmouseover=学院";
const BRANCH: &str = "海洋与地球科学学院2022级本科生党支部";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_over_http_and_in_a_browser() {
    let roster = format!(
        "{}\"\"\"onmouseover=学院\",{EVIL_BRANCH},某某,evil@example.test\n",
        sample_roster()
    );
    let env = TestEnv::new(
        "board",
        "intake31",
        EnvOptions {
            roster: &roster,
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    let port = free_port();
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        format!(
            "{text}[web]\nlisten = \"127.0.0.1:{port}\"\n{}{}",
            passwd("王老师", "staff-password-1", "staff"),
            passwd("李老师", "reviewer-password-1", "reviewer"),
        ),
    )
    .expect("config");
    let check = env.cli(&["check-config"]);
    assert!(
        check.contains(&format!(
            "看板：监听 http://127.0.0.1:{port}/，2 个账号（工作人员 1 个，评审专家 1 个）"
        )),
        "{check}"
    );

    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let raw = read(&root().join("tests/fixtures/samples/c010/message.eml"));
    smtp_send("lu.fengxi27@outlook.com", "intake31@example.test", &raw).await;
    wait_for(
        "the application to be registered",
        Duration::from_secs(60),
        || {
            daemon.assert_alive();
            let out = env.cli(&["export", "--format", "json"]);
            async move { out.contains(BRANCH) }
        },
    )
    .await;

    let ip1 = "127.0.0.1";
    let ip2 = "127.0.0.2";
    // No page without a session.
    for path in ["/", "/branches", "/branches?state=none"] {
        let r = http(port, ip1, "GET", path, "", None).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/login"), "{path}");
    }
    // The login page sets its token as an HttpOnly, SameSite=Strict cookie.
    let page = http(port, ip1, "GET", "/login", "", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<label for=\"password\">密码</label>"),
        "{}",
        page.body
    );
    let login_token = page.cookie("shenbao_login").expect("login cookie");
    assert_eq!(csrf_in(&page.body), login_token);
    let line = page.set_cookie_line("shenbao_login");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    assert!(!line.contains("Secure"), "no TLS here: {line}");
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'")),
        "{:?}",
        page.headers
    );
    let login_cookie = format!("shenbao_login={login_token}");
    let good_staff = format!("name={}&password=staff-password-1", enc("王老师"));

    // Without the token, or with another, even the right password is refused.
    for (cookie, form) in [
        (login_cookie.as_str(), good_staff.clone()),
        (login_cookie.as_str(), format!("csrf=forged&{good_staff}")),
        ("", format!("csrf={login_token}&{good_staff}")),
    ] {
        let r = http(port, ip1, "POST", "/login", cookie, Some(&form)).await;
        assert_eq!(r.status, 403, "{form}");
        assert!(r.body.contains("登录表单已过期"), "{}", r.body);
        assert!(r.cookie("shenbao_session").is_none());
    }

    // Wrong passwords: refused, and after five the name and the address wait.
    let wrong = format!("csrf={login_token}&name={}&password=nope", enc("王老师"));
    for i in 0..5 {
        let r = http(port, ip1, "POST", "/login", &login_cookie, Some(&wrong)).await;
        assert_eq!(r.status, 401, "attempt {}", i + 1);
        assert!(r.body.contains("账号或密码不对"), "{}", r.body);
    }
    let right = format!("csrf={login_token}&{good_staff}");
    let r = http(port, ip1, "POST", "/login", &login_cookie, Some(&right)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("登录失败次数过多，请 "), "{}", r.body);
    assert!(r.body.contains("后再试"), "{}", r.body);
    // The name waits from another address too …
    let r = http(port, ip2, "POST", "/login", &login_cookie, Some(&right)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    // … and the address waits for another name.
    let reviewer = format!(
        "csrf={login_token}&name={}&password=reviewer-password-1",
        enc("李老师")
    );
    let r = http(port, ip1, "POST", "/login", &login_cookie, Some(&reviewer)).await;
    assert_eq!(r.status, 429, "{}", r.body);

    // Another name from another address logs in.
    let r = http(port, ip2, "POST", "/login", &login_cookie, Some(&reviewer)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/"));
    let token = r.cookie("shenbao_session").expect("session cookie");
    let line = r.set_cookie_line("shenbao_session");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    let session = format!("shenbao_session={token}");

    // 总览: the branch counts as applied, and matches `shenbao status`.
    let overview = http(port, ip2, "GET", "/", &session, None).await;
    assert_eq!(overview.status, 200);
    let body = &overview.body;
    assert!(body.contains("<h1>总览</h1>"), "{body}");
    assert!(body.contains("李老师（评审专家）"), "{body}");
    assert!(body.contains("<svg class=\"chart\""), "{body}");
    // The arrivals line: the one version, today.
    assert!(body.contains("近 14 天每天收到的申报（共 1 份）"), "{body}");
    assert!(
        body.contains("<title>海洋与地球科学学院：已申报 1，"),
        "{body}"
    );
    let status = env.cli(&["status"]);
    let roster_size = roster.lines().count() - 1;
    assert!(
        status.contains(&format!("名册共 {roster_size} 个支部，已申报 1 个")),
        "{status}"
    );
    assert!(
        body.contains(&format!(
            "<div class=\"v\"><span data-live=\"applied\">1</span><span class=\"of\"> / {roster_size}</span>"
        )),
        "{body}"
    );
    assert!(
        body.contains("距申报截止") || body.contains("申报截止已过"),
        "{body}"
    );
    // Which daemon does what: the running one holds the intake folder, online.
    assert!(body.contains("<h2>守护进程与分工</h2>"), "{body}");
    assert!(
        body.contains(&format!("<li>收件 {}@", env.user)) && body.contains("在线，自"),
        "{body}"
    );
    // The branch's row on 支部.
    let page = http(
        port,
        ip2,
        "GET",
        &format!("/branches?q={}", enc("2022级")),
        &session,
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    let row = page
        .body
        .lines()
        .find(|l| l.contains(BRANCH))
        .unwrap_or_else(|| panic!("{}", page.body));
    assert!(row.contains("第1版"), "{row}");
    // The test's deadline (2025) has passed: late, and only late.
    assert!(row.contains("迟交"), "{row}");
    // Its 板块, as the export reads it, shows in the row and filters.
    let export: serde_json::Value =
        serde_json::from_str(&env.cli(&["export", "--format", "json"])).expect("json");
    let section = export["submissions"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["branch"] == BRANCH))
        .and_then(|s| s["fields"]["section"].as_str())
        .expect("the sample names its 板块")
        .to_string();
    assert!(row.contains(&section), "{row}");
    let page = http(
        port,
        ip2,
        "GET",
        &format!("/branches?section={}", enc(&section)),
        &session,
        None,
    )
    .await;
    assert!(page.body.contains("共 1 个支部"), "{}", page.body);
    assert!(page.body.contains(BRANCH));
    assert!(!row.contains("未申报"), "{row}");

    // Escaping: the roster's <script> branch and "onmouseover= college, and a search for them.
    for path in [
        "/branches".to_string(),
        format!("/branches?q={}", enc("<script>")),
        format!("/branches?college={}", enc(EVIL_COLLEGE)),
        "/".to_string(),
    ] {
        let r = http(port, ip2, "GET", &path, &session, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains("<script>"), "{path}: {}", r.body);
        assert!(!r.body.contains("\"onmouseover="), "{path}: {}", r.body);
        if path == "/" {
            // The college is in the chart (escaped by the chart itself).
            assert!(
                r.body.contains("&quot;onmouseover=学院"),
                "{path}: {}",
                r.body
            );
        } else {
            assert!(r.body.contains("&lt;script&gt;"), "{path}: {}", r.body);
        }
    }
    let only_evil = http(
        port,
        ip2,
        "GET",
        &format!("/branches?q={}", enc("<script>")),
        &session,
        None,
    )
    .await;
    assert!(only_evil.body.contains("共 1 个支部"), "{}", only_evil.body);
    let none = http(port, ip2, "GET", "/branches?state=none", &session, None).await;
    assert!(!none.body.contains(BRANCH), "{}", none.body);

    // Screenshots of what the browser renders (the style sheet is in the page).
    let login_html = http(port, ip2, "GET", "/login", "", None).await.body;
    eprintln!(
        "screenshot: {}",
        screenshot(&login_html, "login", 1366, 768).display()
    );
    let overview_html = http(port, ip2, "GET", "/", &session, None).await.body;
    let branches_html = http(port, ip2, "GET", "/branches", &session, None)
        .await
        .body;
    for (name, html) in [("overview", &overview_html), ("branches", &branches_html)] {
        for (w, h) in [(1366, 768), (390, 844)] {
            let png = screenshot(html, name, w, h);
            eprintln!("screenshot: {}", png.display());
        }
    }

    // Logout needs the session's token; then the session is gone.
    let r = http(port, ip2, "POST", "/logout", &session, Some("csrf=forged")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(http(port, ip2, "GET", "/", &session, None).await.status == 200);
    let csrf = csrf_in(&overview.body);
    let r = http(
        port,
        ip2,
        "POST",
        "/logout",
        &session,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));
    assert!(r.set_cookie_line("shenbao_session").contains("Max-Age=0"));
    let r = http(port, ip2, "GET", "/", &session, None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));

    let log = daemon.stop();
    assert!(log.contains("看板已启动"), "{log}");

    // `shenbao web`: the board alone, read-only, on the same database (a fresh process: the
    // login limit starts over).
    let mut alone = start_web_alone(&env.config, port).await;
    let session = login(port, ip1, ("王老师", "staff-password-1")).await;
    let page = http(port, ip1, "GET", "/", &session, None).await;
    assert!(
        page.body.contains("王老师（工作人员，只读）"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("1</span><span class=\"of\"> / {roster_size}"))
    );
    let status = terminate(&mut alone);
    assert!(
        status.success(),
        "shenbao web stops cleanly on SIGTERM: {status}"
    );
    let _ = std::fs::remove_dir_all(&env.dir);
}
