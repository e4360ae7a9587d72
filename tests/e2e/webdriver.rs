//! A minimal W3C WebDriver client for the board's browser tests: it starts Debian's
//! `chromedriver` (package `chromium-driver`, installed by scripts/test.sh) on a free port
//! and drives a headless Chromium through it over plain HTTP/1.1 with JSON bodies.
//!
//! Blocking on purpose: each command is one short local request, the board runs in the
//! daemon's own process, and a blocking client can end its session in `Drop`. Calling it from
//! an async test only holds that test's thread.
//!
//! What is here: [`Browser::start`], [`Browser::goto`], [`Browser::find`] (CSS selector),
//! [`Browser::find_link`], [`Browser::press`] (keyboard only), [`Element::send_keys`], [`Element::click`], [`Element::text`], [`Element::attribute`],
//! [`Browser::execute`], [`Browser::screenshot`] (PNG file), [`Browser::wait_until`], and
//! the session ends and chromedriver is killed when the [`Browser`] is dropped.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One request to chromedriver; the reply's `value`, or the WebDriver error as `Err`.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line)
        .map_err(|e| format!("read: {e}"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {status_line:?}"))?;
    let mut length = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| format!("read: {e}"))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut raw = Vec::new();
    match length {
        Some(n) => {
            raw.resize(n, 0);
            r.read_exact(&mut raw).map_err(|e| format!("read: {e}"))?;
        }
        None => {
            r.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
        }
    }
    let v: Value = serde_json::from_slice(&raw).map_err(|e| {
        format!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&raw)
        )
    })?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if status >= 400 || value.get("error").is_some() {
        return Err(format!(
            "{method} {path} → {status}: {} {}",
            value["error"].as_str().unwrap_or(""),
            value["message"].as_str().unwrap_or("")
        ));
    }
    Ok(value)
}

/// Standard base64 (a screenshot's PNG).
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The Tab key, for [`Browser::press`].
pub const TAB: &str = "\u{E004}";
/// The Enter key, for [`Browser::press`].
pub const ENTER: &str = "\u{E007}";

/// A headless Chromium driven through its own chromedriver.
pub struct Browser {
    driver: std::process::Child,
    port: u16,
    session: String,
    profile: PathBuf,
    /// Where the browser saves downloads (see [`Browser::wait_download`]).
    pub downloads: PathBuf,
    /// Where a relative [`Browser::goto`] goes: `http://127.0.0.1:PORT`.
    pub base: String,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    /// The selector it was found by, for messages.
    pub css: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `w`×`h`; relative URLs go to `base`.
    pub fn start(base: &str, w: u32, h: u32) -> Browser {
        let port = crate::web::free_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "chromedriver not found: install Debian's chromium-driver (scripts/test.sh does)",
            );
        let profile =
            std::env::temp_dir().join(format!("shenbao-webdriver-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        // Ready when /status says so.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(v) = request(port, "GET", "/status", None)
                && v["ready"] == json!(true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={w},{h}"),
        ];
        let downloads = profile.join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let mut options = json!({
            "args": args,
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        });
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
            } }
        });
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            profile,
            downloads,
            base: base.trim_end_matches('/').to_string(),
        };
        let v = request(port, "POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("new WebDriver session: {e}"));
        browser.session = v["sessionId"].as_str().expect("a session id").to_string();
        browser.set_viewport(w, h);
        browser
    }

    /// Sizes the window so that the page itself (the viewport, what a screenshot shows) is
    /// `w`×`h`: `--window-size` counts the window's own frame too.
    pub fn set_viewport(&self, w: u32, h: u32) {
        let inner = |b: &Browser| {
            let v = b.execute("return [window.innerWidth, window.innerHeight];", json!([]));
            (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0))
        };
        for _ in 0..3 {
            let (iw, ih) = inner(self);
            if (iw, ih) == (i64::from(w), i64::from(h)) {
                return;
            }
            let rect = self
                .cmd("GET", "/window/rect", None)
                .unwrap_or_else(|e| panic!("window rect: {e}"));
            let (ow, oh) = (
                rect["width"].as_i64().unwrap_or(0),
                rect["height"].as_i64().unwrap_or(0),
            );
            self.cmd(
                "POST",
                "/window/rect",
                Some(json!({
                    "width": ow + i64::from(w) - iw,
                    "height": oh + i64::from(h) - ih,
                })),
            )
            .unwrap_or_else(|e| panic!("resize the window: {e}"));
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        request(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    /// Opens `url` (absolute, or a path on [`Browser::base`]) and waits for it to load.
    pub fn goto(&self, url: &str) {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_string()
        };
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The current address.
    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The current path (`/login`, `/branches?q=…`).
    pub fn path(&self) -> String {
        let url = self.url();
        url.strip_prefix(&self.base).unwrap_or(&url).to_string()
    }

    /// The page's whole HTML as the browser has it now.
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The first element matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .ok()?;
        Some(Element {
            browser: self,
            id: v[ELEMENT_KEY].as_str()?.to_string(),
            css: css.to_string(),
        })
    }

    /// The first element matching `css`; panics with the page's address when there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no {css} on {}:\n{}", self.url(), self.source()))
    }

    /// The first link whose whole text is `text` (WebDriver's "link text" strategy).
    pub fn find_link(&self, text: &str) -> Element<'_> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "link text", "value": text })),
            )
            .unwrap_or_else(|e| panic!("no link {text:?} on {}: {e}", self.url()));
        Element {
            browser: self,
            id: v[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("no link {text:?}"))
                .to_string(),
            css: format!("link {text:?}"),
        }
    }

    /// Presses `keys` one after another on whatever has the focus, as a keyboard would
    /// (WebDriver actions; [`TAB`], [`ENTER`] …), without pointing at any element.
    pub fn press(&self, keys: &[&str]) {
        let mut actions = Vec::new();
        for k in keys {
            actions.push(json!({ "type": "keyDown", "value": k }));
            actions.push(json!({ "type": "keyUp", "value": k }));
        }
        self.cmd(
            "POST",
            "/actions",
            Some(json!({ "actions": [
                { "type": "key", "id": "keyboard", "actions": actions }
            ] })),
        )
        .unwrap_or_else(|e| panic!("press {keys:?}: {e}"));
    }

    /// The focused element's tag, `href` (if any) and text, e.g. `A /branches 支部`.
    pub fn focused(&self) -> String {
        self.execute(
            "const e = document.activeElement; \
             return e ? e.tagName + ' ' + (e.getAttribute('href') || '') + ' ' + e.textContent.trim() : '';",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Every element matching `css`.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        browser: self,
                        id: id.to_string(),
                        css: css.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub fn text_of(&self, css: &str) -> String {
        self.try_find(css).map(|e| e.text()).unwrap_or_default()
    }

    /// Runs `script` (a function body: `return …;`) with `args`; its return value.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .unwrap_or_else(|e| panic!("execute {script}: {e}"))
    }

    /// Waits up to `timeout` for `cond` to hold, checking every 100 ms; panics naming
    /// `what` and the page's address when it does not.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Browser) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for an element matching `css`, and returns it.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        self.wait_until(&format!("an element {css}"), timeout, |b| {
            b.try_find(css).is_some()
        });
        self.find(css)
    }

    /// Waits for a finished download whose name ends with `suffix` (Chromium writes
    /// `*.crdownload` until it is complete); returns its path.
    pub fn wait_download(&self, suffix: &str, timeout: Duration) -> PathBuf {
        // Chromium reserves the final name with an empty file at once and writes into
        // `….crdownload`, renamed over it when done: the download is complete when no
        // `.crdownload` is left and the file has its bytes.
        let mut found = None;
        self.wait_until(&format!("a download *{suffix}"), timeout, |b| {
            let names: Vec<PathBuf> = std::fs::read_dir(&b.downloads)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            let busy = names
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".crdownload"));
            found = names
                .into_iter()
                .find(|p| p.to_string_lossy().ends_with(suffix))
                .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
            !busy && found.is_some()
        });
        found.expect("found")
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) -> PathBuf {
        let v = self
            .cmd("GET", "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        let png = base64_decode(v.as_str().expect("base64"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, &png).expect("write screenshot");
        path.to_path_buf()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Element<'_> {
    /// Types `text` into the element (after what it holds).
    pub fn send_keys(&self, text: &str) -> &Self {
        self.browser
            .cmd(
                "POST",
                &format!("/element/{}/value", self.id),
                Some(json!({ "text": text })),
            )
            .unwrap_or_else(|e| panic!("type into {}: {e}", self.css));
        self
    }

    /// Chooses `file` in an `<input type="file">`.
    pub fn upload(&self, file: &Path) -> &Self {
        let abs = std::fs::canonicalize(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        self.send_keys(&abs.display().to_string())
    }

    /// Empties an input.
    pub fn clear(&self) -> &Self {
        self.browser
            .cmd(
                "POST",
                &format!("/element/{}/clear", self.id),
                Some(json!({})),
            )
            .unwrap_or_else(|e| panic!("clear {}: {e}", self.css));
        self
    }

    pub fn click(&self) {
        self.browser
            .cmd(
                "POST",
                &format!("/element/{}/click", self.id),
                Some(json!({})),
            )
            .unwrap_or_else(|e| panic!("click {}: {e}", self.css));
    }

    /// The rendered text.
    pub fn text(&self) -> String {
        self.browser
            .cmd("GET", &format!("/element/{}/text", self.id), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// An attribute's value, if it has one.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.browser
            .cmd(
                "GET",
                &format!("/element/{}/attribute/{name}", self.id),
                None,
            )
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }
}

#[test]
fn base64_decodes_padding_and_all_letters() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("+/8="), [0xfb, 0xff]);
}

/// The browser itself, without the board: type, click, read, run a script, upload and
/// download (what the board's page tests build on).
#[test]
fn the_client_drives_a_headless_chromium() {
    let dir = std::env::temp_dir().join(format!("shenbao-webdriver-self-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let upload = dir.join("表.txt");
    std::fs::write(&upload, "hello").expect("write");
    std::fs::write(
        dir.join("page.html"),
        "<!doctype html><meta charset=utf-8><input id=t><input id=f type=file>\
         <button id=b onclick=\"document.getElementById('o').textContent = 'clicked ' + \
         document.getElementById('t').value + ' ' + document.getElementById('f').files[0].name\">go</button>\
         <p id=o title=out></p><a id=d download=saved.txt href=\"data:text/plain,saved\">d</a>",
    )
    .expect("page");
    let b = Browser::start("http://127.0.0.1:1", 800, 600);
    assert_eq!(
        b.execute("return [innerWidth, innerHeight];", json!([])),
        json!([800, 600])
    );
    b.goto(&format!("file://{}", dir.join("page.html").display()));
    b.find("#t").send_keys("申报");
    b.find("#f").upload(&upload);
    b.find("#b").click();
    b.wait_until("the click", Duration::from_secs(10), |b| {
        b.text_of("#o") == "clicked 申报 表.txt"
    });
    assert_eq!(b.find("#o").attribute("title").as_deref(), Some("out"));
    assert_eq!(b.execute("return 1 + arguments[0];", json!([2])), json!(3));
    assert!(b.try_find("#nothing").is_none());
    b.find("#d").click();
    let saved = b.wait_download("saved.txt", Duration::from_secs(20));
    assert_eq!(std::fs::read_to_string(saved).expect("read"), "saved");
    let png = b.screenshot(&dir.join("shot.png"));
    assert!(std::fs::metadata(png).map(|m| m.len()).unwrap_or(0) > 1000);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
