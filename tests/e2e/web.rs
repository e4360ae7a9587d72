//! What the board's end-to-end tests share: a small HTTP/1.1 client that can choose its
//! local address (the login limit counts per address), form encoding, the CSRF field of a
//! page, sending a raw mail through Postfix, `shenbao web passwd`, Chromium screenshots, and
//! [`BoardEnv`]: a daemon serving the board with a staff and a reviewer account.

// The page tests of issue 14 land one by one and use what they need.
#![allow(dead_code)]

use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value a `Set-Cookie` gives `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let first = v.split(';').next()?;
                let (k, val) = first.split_once('=')?;
                (k == name).then(|| val.to_string())
            })
    }

    pub fn set_cookie_line(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.clone())
            .find(|v| v.starts_with(&format!("{name}=")))
            .unwrap_or_default()
    }
}

/// One HTTP/1.1 request from the local address `from` (127.0.0.1, 127.0.0.2 …).
pub async fn http(
    port: u16,
    from: &str,
    method: &str,
    path: &str,
    cookie: &str,
    form: Option<&str>,
) -> Reply {
    let body = form.map(|f| ("application/x-www-form-urlencoded", f.as_bytes()));
    exchange(
        port,
        from,
        method,
        path,
        cookie,
        body,
        Duration::from_secs(20),
    )
    .await
    .text()
}

pub fn enc(s: &str) -> String {
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
pub fn csrf_in(body: &str) -> String {
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
pub async fn smtp_send(from: &str, to: &str, raw: &[u8]) {
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
pub fn passwd(name: &str, password: &str, role: &str) -> String {
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

/// `shenbao web` on `config` (the board alone, read-only), once it listens on `port`.
pub async fn start_web_alone(config: &std::path::Path, port: u16) -> std::process::Child {
    let alone = std::process::Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .arg("--config")
        .arg(config)
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
    alone
}

/// SIGTERM to `child` (a `shenbao web` or daemon); how it exited.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().expect("wait")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where the board's screenshots go: `$TMPDIR/shenbao-board-screenshots/`.
pub fn screenshot_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("shenbao-board-screenshots")
}

/// Screenshots `html` (a page as an HTTP client got it) with headless Chromium at `w`×`h`,
/// into `pages/` below [`screenshot_dir`] (the browser journey's own screenshots, of the live
/// pages, are in the directory itself); returns the PNG's path.
pub fn screenshot(html: &str, name: &str, w: u32, h: u32) -> std::path::PathBuf {
    let dir = screenshot_dir().join("pages");
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

/// A daemon serving the board on a free port, with the staff account 王老师
/// (`staff-password-1`) and the reviewer account 李老师 (`reviewer-password-1`).
pub struct BoardEnv {
    pub env: TestEnv,
    pub daemon: Daemon,
    pub port: u16,
}

pub const STAFF: (&str, &str) = ("王老师", "staff-password-1");
pub const REVIEWER: (&str, &str) = ("李老师", "reviewer-password-1");

impl BoardEnv {
    /// `name` and `intake` as for [`TestEnv::new`]; the daemon is started and has seen its
    /// mailbox once when this returns.
    pub async fn start(name: &str, intake: &str, options: EnvOptions<'_>) -> BoardEnv {
        let env = TestEnv::new(name, intake, options).await;
        let port = free_port();
        let text = std::fs::read_to_string(&env.config).expect("config");
        std::fs::write(
            &env.config,
            format!(
                "{text}[web]\nlisten = \"127.0.0.1:{port}\"\n{}{}",
                passwd(STAFF.0, STAFF.1, "staff"),
                passwd(REVIEWER.0, REVIEWER.1, "reviewer"),
            ),
        )
        .expect("config");
        let mut daemon = env.start_daemon();
        env.wait_watermark(&mut daemon).await;
        BoardEnv { env, daemon, port }
    }

    /// Logs `who` in from `from` (127.0.0.1 …); returns the `Cookie:` value of the session.
    pub async fn login(&self, from: &str, who: (&str, &str)) -> String {
        login(self.port, from, who).await
    }

    /// GET `path` with the session `cookie`.
    pub async fn get(&self, cookie: &str, path: &str) -> Reply {
        http(self.port, "127.0.0.1", "GET", path, cookie, None).await
    }

    /// POST the url-encoded `form` to `path` with the session `cookie`.
    pub async fn post(&self, cookie: &str, path: &str, form: &str) -> Reply {
        http(self.port, "127.0.0.1", "POST", path, cookie, Some(form)).await
    }
}

/// Logs `who` in to the board on `port` from `from` (127.0.0.1 …), as a browser does (the
/// login page's token, then the form); returns the `Cookie:` value of the session.
pub async fn login(port: u16, from: &str, who: (&str, &str)) -> String {
    let page = http(port, from, "GET", "/login", "", None).await;
    let t = page.cookie("shenbao_login").expect("login cookie");
    let r = http(
        port,
        from,
        "POST",
        "/login",
        &format!("shenbao_login={t}"),
        Some(&format!(
            "csrf={t}&name={}&password={}",
            enc(who.0),
            enc(who.1)
        )),
    )
    .await;
    assert_eq!(r.status, 303, "login of {}: {}", who.0, r.body);
    format!(
        "shenbao_session={}",
        r.cookie("shenbao_session").expect("session cookie")
    )
}

/// A reply whose body is kept as bytes (a download).
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, as [`http`] gives it.
    pub fn text(self) -> Reply {
        Reply {
            status: self.status,
            headers: self.headers,
            body: String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

/// One HTTP/1.1 request from `from` with an optional body of any bytes (`(content type,
/// bytes)`); the reply's body stays bytes.
pub async fn http_raw(
    port: u16,
    from: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<(&str, &[u8])>,
) -> RawReply {
    exchange(
        port,
        from,
        method,
        path,
        cookie,
        body,
        Duration::from_secs(30),
    )
    .await
}

/// A GET from 127.0.0.1 whose body stays bytes (a download), answered within `within`.
pub async fn download(port: u16, cookie: &str, path: &str, within: Duration) -> RawReply {
    exchange(port, "127.0.0.1", "GET", path, cookie, None, within).await
}

/// The one HTTP/1.1 exchange every helper here makes: a request from the local address
/// `from`, the whole reply read within `within`, a chunked body put together.
async fn exchange(
    port: u16,
    from: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<(&str, &[u8])>,
    within: Duration,
) -> RawReply {
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
    if let Some((ctype, bytes)) = body {
        req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    req.push_str("\r\n");
    let mut raw_req = req.into_bytes();
    if let Some((_, bytes)) = body {
        raw_req.extend_from_slice(bytes);
    }
    s.write_all(&raw_req).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut raw))
        .await
        .expect("the board answers in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    RawReply {
        status,
        headers,
        body,
    }
}

/// A chunked body's data.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|t| usize::from_str_radix(t.split(';').next().unwrap_or("").trim(), 16).ok())
            .expect("chunk size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// A part of a `multipart/form-data` body: a field, or a file with its name and bytes.
pub enum Part<'a> {
    Field(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

/// The `multipart/form-data` body of `parts`, in order, and its content type.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----shenbao-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match p {
            Part::Field(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file_name, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl BoardEnv {
    /// GET `path` with the session `cookie`, the body kept as bytes (a download).
    pub async fn get_bytes(&self, cookie: &str, path: &str) -> RawReply {
        http_raw(self.port, "127.0.0.1", "GET", path, cookie, None).await
    }

    /// POST `parts` as `multipart/form-data` to `path` with the session `cookie`.
    pub async fn post_multipart(&self, cookie: &str, path: &str, parts: &[Part<'_>]) -> Reply {
        let (ctype, body) = multipart(parts);
        http_raw(
            self.port,
            "127.0.0.1",
            "POST",
            path,
            cookie,
            Some((&ctype, &body)),
        )
        .await
        .text()
    }
}
