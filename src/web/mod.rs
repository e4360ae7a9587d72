//! The board (看板): the campaign in a browser, for staff and reviewers. An I/O shell — an
//! axum server on the daemon's tokio runtime (or alone, read-only, under `shenbao web`). It
//! reads through the store and the export functions `shenbao status` uses, so the figures
//! match; the pure parts (states, counts, the chart, sessions and the login limit) are in
//! [`board`], [`chart`] and [`auth`].
//!
//! Everything is server-rendered HTML from templates compiled into the binary, with HTML
//! auto-escaping (names and subjects come from mail) and one embedded style sheet: no
//! script, no CDN, no external font.

pub mod auth;
pub mod board;
pub mod chart;

use crate::app::App;
use crate::config::{WebConfig, WebRole};
use anyhow::Context as _;
use auth::{Limiter, Sessions};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

const SESSION_COOKIE: &str = "shenbao_session";
const LOGIN_COOKIE: &str = "shenbao_login";
const CSS: &str = include_str!("templates/style.css");

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "看板无法监听 {addr}：{source}。请检查配置 web.listen（端口是否已被占用，地址是否属于本机）"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("看板服务出错：{0}")]
    Serve(std::io::Error),
}

/// What every request shares.
pub struct Board {
    app: Arc<App>,
    web: WebConfig,
    /// `shenbao web`: no daemon, nothing may change.
    read_only: bool,
    sessions: Mutex<Sessions>,
    limiter: Mutex<Limiter>,
    templates: minijinja::Environment<'static>,
    /// Checked against when the account does not exist, so that an unknown name takes as
    /// long as a wrong password.
    dummy_hash: String,
}

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("branches.html", include_str!("templates/branches.html")),
    ] {
        if let Err(e) = env.add_template(name, text) {
            // Compiled in and tested: only a broken build gets here.
            tracing::error!(template = name, error = %e, "看板模板有误");
        }
    }
    env
}

/// The argon2 hash of `password` in PHC form, with a random salt (`shenbao web passwd`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::PasswordHasher as _;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("生成密码散列失败：{e}"))
}

fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier as _;
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// 32 random bytes as hex: session and CSRF tokens.
fn token() -> anyhow::Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("取随机数失败：{e}"))?;
    Ok(hex::encode(b))
}

/// Binds the board's address: done before the daemon's tasks start, so that a busy port
/// stops `shenbao run` at once with the key to fix.
pub async fn bind(web: &WebConfig) -> Result<tokio::net::TcpListener, WebError> {
    tokio::net::TcpListener::bind(web.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: web.listen,
            source,
        })
}

/// Serves the board on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    web: WebConfig,
    read_only: bool,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WebError> {
    let board = Arc::new(Board {
        app,
        web,
        read_only,
        sessions: Mutex::new(Sessions::default()),
        limiter: Mutex::new(Limiter::default()),
        templates: templates(),
        dummy_hash: hash_password("shenbao-dummy").unwrap_or_default(),
    });
    let router = router(board);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
    .map_err(WebError::Serve)
}

fn router(board: Arc<Board>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/branches", get(branches))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .fallback(not_found)
        .with_state(board)
}

/// The headers every page carries: no caching, no framing, nothing loaded from elsewhere.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html(status: StatusCode, body: String) -> Response {
    secure((status, axum::response::Html(body)).into_response())
}

fn redirect(to: &'static str, cookies: &[String]) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    secure(r)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: the whole site, never readable by script, never sent from another
/// site, and only over TLS when `secure`.
fn cookie_line(name: &str, value: &str, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

impl Board {
    fn set_cookie(&self, name: &str, value: &str) -> String {
        cookie_line(name, value, self.web.secure_cookies)
    }

    fn clear_cookie(&self, name: &str) -> String {
        format!("{}; Max-Age=0", self.set_cookie(name, ""))
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.app.clock.now()
    }

    /// The request's session, renewed; `None` when there is none or it has expired.
    fn session(&self, headers: &HeaderMap) -> Option<(String, auth::Session)> {
        let token = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.sweep(self.now(), self.web.session_idle);
        let s = sessions.touch(&token, self.now(), self.web.session_idle)?;
        Some((token, s))
    }

    fn render(
        &self,
        name: &str,
        session: Option<&auth::Session>,
        page: &str,
        ctx: minijinja::Value,
    ) -> Result<String, Failure> {
        let base = minijinja::context! {
            css => CSS,
            campaign => &self.app.cfg.campaign.name,
            user => session.map(|s| s.user.clone()),
            role => session.map(|s| s.role.label()),
            csrf => session.map(|s| s.csrf.clone()),
            read_only => self.read_only,
            page => page,
        };
        let tmpl = self
            .templates
            .get_template(name)
            .map_err(|e| Failure(anyhow::Error::new(e)))?;
        tmpl.render(minijinja::context! { ..ctx, ..base })
            .map_err(|e| Failure(anyhow::Error::new(e)))
    }
}

/// A failure while serving a page: logged, and shown in Chinese.
struct Failure(anyhow::Error);

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::error!(error = %format!("{:#}", self.0), "看板页面出错");
        html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "<!doctype html><meta charset=\"utf-8\"><title>出错了</title><p>看板读取数据时出错：{}。请查看 shenbao 的日志（journalctl -u shenbao），稍后刷新重试。</p>",
                chart::esc(&format!("{:#}", self.0))
            ),
        )
    }
}

async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "<!doctype html><meta charset=\"utf-8\"><title>没有这个页面</title><p>没有这个页面。<a href=\"/\">回到总览</a></p>".to_string(),
    )
}

#[derive(serde::Deserialize, Default)]
struct LoginForm {
    csrf: Option<String>,
    name: Option<String>,
    password: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct CsrfForm {
    csrf: Option<String>,
}

/// The login page with a fresh login token (also set as a cookie: the form must send the
/// same one back).
fn login_form(
    board: &Board,
    status: StatusCode,
    message: &str,
    name: &str,
) -> Result<Response, Failure> {
    let t = token()?;
    let body = board.render(
        "login.html",
        None,
        "login",
        minijinja::context! { title => "登录", login_csrf => &t, message => message, name => name },
    )?;
    let mut r = html(status, body);
    if let Ok(v) = HeaderValue::from_str(&board.set_cookie(LOGIN_COOKIE, &t)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn login_page(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    if board.session(&headers).is_some() {
        return Ok(redirect("/", &[]));
    }
    login_form(&board, StatusCode::OK, "", "")
}

async fn login(
    State(board): State<Arc<Board>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Failure> {
    let Form(form) = form.unwrap_or_default();
    let name = form.name.unwrap_or_default().trim().to_string();
    let sent = form.csrf.unwrap_or_default();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !auth::same_token(&sent, &expected) {
        return login_form(
            &board,
            StatusCode::FORBIDDEN,
            "登录表单已过期或不是从本看板提交的：请在这一页重新输入账号和密码。",
            &name,
        );
    }
    let now = board.now();
    let client = auth::client_addr(
        peer.ip(),
        headers.get("x-real-ip").and_then(|v| v.to_str().ok()),
        board.web.behind_proxy,
    );
    let keys = [format!("user:{name}"), format!("addr:{client}")];
    {
        let mut limiter = board.limiter.lock().unwrap_or_else(|e| e.into_inner());
        for k in &keys {
            if let Err(secs) = limiter.check(k, now) {
                tracing::warn!(user = %name, addr = %client, "看板登录失败次数过多，暂不受理");
                drop(limiter);
                return login_form(
                    &board,
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "登录失败次数过多，请 {} 后再试。忘记密码时请管理员用 shenbao web passwd 重新生成。",
                        auth::wait_text(secs)
                    ),
                    &name,
                );
            }
        }
    }
    let user = board.web.users.iter().find(|u| u.name == name).cloned();
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| board.dummy_hash.clone());
    let password = form.password.unwrap_or_default();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            let mut limiter = board.limiter.lock().unwrap_or_else(|e| e.into_inner());
            for k in &keys {
                limiter.fail(k, now);
            }
            drop(limiter);
            tracing::warn!(user = %name, addr = %client, "看板登录失败：账号或密码不对");
            return login_form(&board, StatusCode::UNAUTHORIZED, "账号或密码不对。", &name);
        }
    };
    {
        let mut limiter = board.limiter.lock().unwrap_or_else(|e| e.into_inner());
        for k in &keys {
            limiter.succeed(k);
        }
    }
    let (session, csrf) = (token()?, token()?);
    board
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .start(session.clone(), &user.name, user.role, csrf, now);
    tracing::info!(user = %user.name, role = user.role.label(), addr = %client, "看板登录");
    Ok(redirect(
        "/",
        &[
            board.set_cookie(SESSION_COOKIE, &session),
            board.clear_cookie(LOGIN_COOKIE),
        ],
    ))
}

async fn logout(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some((token, session)) = board.session(&headers) else {
        return redirect("/login", &[board.clear_cookie(SESSION_COOKIE)]);
    };
    let Form(form) = form.unwrap_or_default();
    if let Err(refusal) = auth::may_post(&session, form.csrf.as_deref(), false) {
        return forbidden(refusal);
    }
    board
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .end(&token);
    redirect("/login", &[board.clear_cookie(SESSION_COOKIE)])
}

fn forbidden(refusal: auth::Refusal) -> Response {
    html(
        StatusCode::FORBIDDEN,
        format!(
            "<!doctype html><meta charset=\"utf-8\"><title>不能执行</title><p>{}</p><p><a href=\"/\">回到总览</a></p>",
            refusal.text()
        ),
    )
}

/// Whether `role` may act on this board now (staff, and not under `shenbao web`).
pub fn may_act(role: WebRole, read_only: bool) -> bool {
    role.may_act() && !read_only
}

/// A row of 需人工处理 for the page.
#[derive(serde::Serialize)]
struct StaffItem {
    id: i64,
    received_at: String,
    branch: Option<String>,
    from: String,
    subject: String,
    reason: String,
}

async fn overview(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let Some((_, session)) = board.session(&headers) else {
        return Ok(redirect("/login", &[]));
    };
    let app = &board.app;
    let now = board.now();
    let status = crate::export::status(&app.store, app.roster.len()).await?;
    let phase = crate::export::phase(&app.store, &app.cfg, now).await?;
    let latest = crate::export::latest(&app.store).await?;
    let rows = board::branch_rows(app.roster.branches(), &latest);
    let chart = chart::college_bars(&board::college_counts(&rows));
    let problems = board::problems_by_code(&latest);
    let arrivals = app
        .store
        .application_arrivals()
        .await
        .map_err(anyhow::Error::from)?;
    let daily: Vec<(String, u32)> =
        board::arrivals_per_day(&arrivals, app.cfg.campaign.timezone, now, 14)
            .into_iter()
            .map(|(d, n)| (d.format("%-m/%-d").to_string(), n))
            .collect();
    let daily = chart::daily_line(&daily);
    let mut deadlines = vec![("申报截止", app.cfg.campaign.deadline)];
    if let Some(d) = app.cfg.campaign.closure_deadline {
        deadlines.push(("结项截止", d));
    }
    let staff: Vec<StaffItem> = status
        .needs_staff
        .iter()
        .map(|s| StaffItem {
            id: s.id,
            received_at: crate::clock::beijing(s.received_at),
            branch: s.branch.clone(),
            from: crate::attach::display_text(&s.from).to_string(),
            subject: crate::attach::display_text(&s.subject).to_string(),
            reason: s.reason.clone(),
        })
        .collect();
    let applied = usize::try_from(status.applied).unwrap_or(0);
    let body = board.render(
        "overview.html",
        Some(&session),
        "overview",
        minijinja::context! {
            title => "总览",
            phase => phase,
            deadline => board::next_deadline(&deadlines, now),
            applied => status.applied,
            applied_clean => status.applied_clean,
            unknown_branch => status.unknown_branch,
            roster_size => status.roster_size,
            not_applied => status.roster_size.saturating_sub(applied),
            needs_staff => status.needs_staff.len(),
            needs_staff_rows => staff,
            dead_letters => status.dead_letters.len(),
            chart => chart,
            daily => daily,
            problems => problems,
            now => crate::clock::beijing(now),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

#[derive(serde::Deserialize, Default)]
struct BranchQuery {
    college: Option<String>,
    section: Option<String>,
    state: Option<String>,
    q: Option<String>,
}

async fn branches(
    State(board): State<Arc<Board>>,
    headers: HeaderMap,
    query: Result<Query<BranchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let Some((_, session)) = board.session(&headers) else {
        return Ok(redirect("/login", &[]));
    };
    let Query(q) = query.unwrap_or_default();
    let app = &board.app;
    let latest = crate::export::latest(&app.store).await?;
    let rows = board::branch_rows(app.roster.branches(), &latest);
    let total = rows.len();
    let mut colleges: Vec<String> = Vec::new();
    for b in app.roster.branches() {
        if !b.college.is_empty() && !colleges.contains(&b.college) {
            colleges.push(b.college.clone());
        }
    }
    let filter = board::Filter {
        college: q.college.clone().filter(|c| !c.is_empty()),
        state: q.state.as_deref().and_then(board::State::from_code),
        section: q.section.clone(),
        search: q.q.clone(),
    };
    let rows = board::filter_rows(rows, &filter);
    let states: Vec<(&str, &str)> = board::State::ALL
        .iter()
        .map(|s| (s.code(), s.label()))
        .collect();
    let body = board.render(
        "branches.html",
        Some(&session),
        "branches",
        minijinja::context! {
            title => "支部",
            rows => rows,
            total => total,
            colleges => colleges,
            college => q.college.unwrap_or_default(),
            sections => &app.cfg.campaign.sections,
            section => q.section.unwrap_or_default(),
            states => states,
            state => q.state.unwrap_or_default(),
            q => q.q.unwrap_or_default(),
        },
    )?;
    Ok(html(StatusCode::OK, body))
}

/// Starts the board when the configuration has `[web]`: shared by `shenbao run` (with the
/// daemon) and `shenbao web` (alone, read-only).
pub async fn start(
    app: Arc<App>,
    read_only: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(web) = app.cfg.web.clone() else {
        return Ok(None);
    };
    let listener = bind(&web).await?;
    let addr = listener.local_addr().context("读取看板的监听地址")?;
    tracing::info!(address = %format!("http://{addr}/"), read_only, "看板已启动");
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = serve(listener, app, web, read_only, stop).await {
            tracing::error!(error = %e, "看板已停止");
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_and_escape_what_came_from_mail() {
        let env = templates();
        for name in ["base.html", "login.html", "overview.html", "branches.html"] {
            if let Err(e) = env.get_template(name) {
                panic!("{name}: {e:#}");
            }
        }
        let evil = r#"<script>alert(1)</script>"onmouseover="#;
        let rows = vec![board::BranchRow {
            college: evil.into(),
            name: evil.into(),
            state: board::State::Problems,
            state_label: "有问题",
            section: Some(evil.into()),
            version: Some(1),
            received_at: None,
            problems: vec![evil.into()],
        }];
        let out = env
            .get_template("branches.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title => "支部", css => "", campaign => evil, user => evil, role => "工作人员",
                    csrf => "tok", page => "branches", rows => rows, total => 1,
                    colleges => vec![evil], college => evil, states => Vec::<(String, String)>::new(),
                    sections => vec![evil], section => evil,
                    state => "", q => evil,
                })
            })
            .expect("render");
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains(r#""onmouseover"#), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;onmouseover="),
            "{out}"
        );
        assert!(out.contains(r#"name="csrf" value="tok""#));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_tls() {
        assert_eq!(
            cookie_line("shenbao_session", "t", false),
            "shenbao_session=t; Path=/; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            cookie_line("shenbao_session", "t", true),
            "shenbao_session=t; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[tokio::test]
    async fn a_busy_port_names_the_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let web = WebConfig {
            listen: taken.local_addr().expect("addr"),
            users: vec![],
            session_idle: std::time::Duration::from_secs(60),
            secure_cookies: false,
            behind_proxy: false,
        };
        let e = bind(&web).await.expect_err("busy");
        let text = e.to_string();
        assert!(text.contains("看板无法监听 127.0.0.1:"), "{text}");
        assert!(text.contains("web.listen"), "{text}");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xshenbao_session=bad; shenbao_session=good; other=1"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("good"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
        assert_eq!(cookie(&HeaderMap::new(), SESSION_COOKIE), None);
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("正确的密码").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("正确的密码", &h));
        assert!(!verify_password("错误的密码", &h));
        assert!(!verify_password("x", "not a hash"));
        // A new salt each time.
        assert_ne!(h, hash_password("正确的密码").expect("hash"));
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (token().expect("a"), token().expect("b"));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn only_staff_act_and_never_read_only() {
        assert!(may_act(WebRole::Staff, false));
        assert!(!may_act(WebRole::Staff, true));
        assert!(!may_act(WebRole::Reviewer, false));
        assert!(!may_act(WebRole::Reviewer, true));
    }
}
