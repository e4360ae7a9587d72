//! The board (看板) for real (Dovecot + Postfix, mailbox intake31): the daemon serves it, an
//! application arrives through Postfix, and a client drives the board over HTTP — the login
//! refused without its CSRF token, wrong passwords refused and then rate-limited (per name
//! and per address), a good login, 总览 and 支部 showing the branch as applied, a branch
//! name carrying `<script>` staying inert, logout ending the session. A headless Chromium
//! screenshots the pages at 1366×768 and at a phone's 390×844.

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const EVIL_BRANCH: &str = "<script>alert(1)</script>支部";
const EVIL_COLLEGE: &str = "\"onmouseover=学院";
const BRANCH: &str = "海洋与地球科学学院2022级本科生党支部";

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value a `Set-Cookie` gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let first = v.split(';').next()?;
                let (k, val) = first.split_once('=')?;
                (k == name).then(|| val.to_string())
            })
    }

    fn set_cookie_line(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.clone())
            .find(|v| v.starts_with(&format!("{name}=")))
            .unwrap_or_default()
    }
}

/// One HTTP/1.1 request from the local address `from` (127.0.0.1, 127.0.0.2 …).
async fn http(
    port: u16,
    from: &str,
    method: &str,
    path: &str,
    cookie: &str,
    form: Option<&str>,
) -> Reply {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind");
    let mut s = sock
        .connect(format!("127.0.0.1:{port}").parse().expect("addr"))
        .await
        .expect("connect to the board");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("the board answers in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The hidden `csrf` field's value in a page.
fn csrf_in(body: &str) -> String {
    let at = body
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no csrf field in {body}"));
    body[at + 19..]
        .split('"')
        .next()
        .expect("value")
        .to_string()
}

/// Sends `raw` through Postfix's SMTP to `to`.
async fn smtp_send(from: &str, to: &str, raw: &[u8]) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", stack().smtp))
        .await
        .expect("connect smtp");
    let mut buf = vec![0u8; 4096];
    let mut expect = async |s: &mut tokio::net::TcpStream, code: &str| {
        let mut got = String::new();
        loop {
            let n = s.read(&mut buf).await.expect("smtp read");
            assert!(n > 0, "smtp closed: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
            // The last line of a reply has a space after the code.
            if got
                .lines()
                .last()
                .is_some_and(|l| l.len() >= 4 && &l[3..4] == " ")
                && got.ends_with("\r\n")
            {
                break;
            }
        }
        assert!(got.starts_with(code), "smtp: wanted {code}, got {got}");
    };
    expect(&mut s, "220").await;
    for (cmd, code) in [
        ("EHLO board.test\r\n".to_string(), "250"),
        (format!("MAIL FROM:<{from}>\r\n"), "250"),
        (format!("RCPT TO:<{to}>\r\n"), "250"),
        ("DATA\r\n".to_string(), "354"),
    ] {
        s.write_all(cmd.as_bytes()).await.expect("smtp write");
        expect(&mut s, code).await;
    }
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let mut data = String::new();
    for line in text.split('\n') {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    s.write_all(data.as_bytes()).await.expect("smtp data");
    expect(&mut s, "250").await;
    s.write_all(b"QUIT\r\n").await.expect("quit");
}

/// `shenbao web passwd NAME` with the password on stdin: the `[[web.user]]` block.
fn passwd(name: &str, password: &str, role: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .args(["web", "passwd", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("shenbao web passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n{password}\n").as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("password_hash = \"$argon2id$"), "{text}");
    assert!(
        !text.contains(password),
        "the password itself is not printed: {text}"
    );
    text.replace("role = \"staff\"", &format!("role = \"{role}\""))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Screenshots `html` with headless Chromium at `w`×`h`; returns the PNG's path.
fn screenshot(html: &str, name: &str, w: u32, h: u32) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("shenbao-board-screenshots");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).expect("write page");
    let png = dir.join(format!("{name}-{w}x{h}.png"));
    let _ = std::fs::remove_file(&png);
    let profile = dir.join(format!("profile-{name}-{w}"));
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--window-size={w},{h}"),
            &format!("--screenshot={}", png.display()),
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium not found: install Debian's chromium (scripts/test.sh does)");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes: {}",
        png.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    png
}

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
            "<div class=\"v\">1<span class=\"of\"> / {roster_size}</span>"
        )),
        "{body}"
    );
    assert!(
        body.contains("距申报截止") || body.contains("申报截止已过"),
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
    let mut alone = std::process::Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .arg("--config")
        .arg(&env.config)
        .arg("web")
        .env("SHENBAO_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("shenbao web");
    wait_for("shenbao web to listen", Duration::from_secs(30), || {
        let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        async move { up }
    })
    .await;
    let page = http(port, ip1, "GET", "/login", "", None).await;
    let t = page.cookie("shenbao_login").expect("login cookie");
    let r = http(
        port,
        ip1,
        "POST",
        "/login",
        &format!("shenbao_login={t}"),
        Some(&format!("csrf={t}&{good_staff}")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let session = format!(
        "shenbao_session={}",
        r.cookie("shenbao_session").expect("session")
    );
    let page = http(port, ip1, "GET", "/", &session, None).await;
    assert!(
        page.body.contains("王老师（工作人员，只读）"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("1<span class=\"of\"> / {roster_size}"))
    );
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(alone.id().to_string())
        .status();
    let status = alone.wait().expect("wait");
    assert!(
        status.success(),
        "shenbao web stops cleanly on SIGTERM: {status}"
    );
    let _ = std::fs::remove_dir_all(&env.dir);
}
