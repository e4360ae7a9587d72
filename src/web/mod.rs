//! The board (看板): the campaign in a browser, for staff and reviewers. An I/O shell — an
//! axum server on the daemon's tokio runtime (or alone, read-only, under `shenbao web`). It
//! reads through the store and the export functions `shenbao status` uses, so the figures
//! match; the pure parts (states, counts, the chart, sessions and the login limit) are in
//! [`board`], [`chart`] and [`auth`].
//!
//! Everything is server-rendered HTML from templates compiled into the binary, with HTML
//! auto-escaping (names and subjects come from mail) and one embedded style sheet: no
//! CDN, no external font, and one small embedded script ([`live`]) that keeps the open page
//! up to date; every page works without it.

pub mod auth;
pub mod board;
mod branches;
mod campaigns;
pub mod chart;
mod closure;
pub mod desk;
mod detail;
mod live;
mod login;
mod materials;
mod outbox;
mod overview;
mod reply;
mod review;
mod snapshot;
mod staff;

use crate::app::App;
use crate::config::{WebConfig, WebRole};
use anyhow::Context as _;
use auth::{Limiter, Sessions};
use axum::Router;
use axum::http::HeaderMap;
use axum::response::Response;
use reply::{Failure, cookie, cookie_line, forbidden, redirect};
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
    /// What 总览 and 支部 show, read again only after the database changed.
    snapshot: Arc<snapshot::Cache>,
    /// The other campaigns a session chose to look at ([`Board::scope`]), built when first
    /// chosen.
    others: Mutex<std::collections::HashMap<String, Scope>>,
    /// Moves whenever the database changed while a page listens ([`live`]).
    live: watch::Receiver<i64>,
    /// Checked against when the account does not exist, so that an unknown name takes as
    /// long as a wrong password.
    dummy_hash: String,
    /// 评审: uploaded sheets waiting for their confirmation.
    review_uploads: review::Uploads,
}

/// The templates every page shares.
const TEMPLATES: &[(&str, &str)] = &[("base.html", include_str!("templates/base.html"))];

/// Each page module's templates (one line per page module, beside its routes in [`router`]).
const PAGES: &[&[(&str, &str)]] = &[
    login::TEMPLATES,
    overview::TEMPLATES,
    branches::TEMPLATES,
    detail::TEMPLATES,
    staff::TEMPLATES,
    outbox::TEMPLATES,
    materials::TEMPLATES,
    closure::TEMPLATES,
    live::TEMPLATES,
    review::TEMPLATES,
];

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    for (name, text) in TEMPLATES.iter().chain(PAGES.iter().flat_map(|p| p.iter())) {
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
    let live = live::watch_versions(app.clone(), stop.clone());
    let board = Arc::new(Board {
        app,
        web,
        read_only,
        sessions: Mutex::new(Sessions::default()),
        limiter: Mutex::new(Limiter::default()),
        templates: templates(),
        snapshot: Arc::default(),
        others: Mutex::default(),
        live,
        dummy_hash: hash_password("shenbao-dummy").unwrap_or_default(),
        review_uploads: review::Uploads::default(),
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

/// Every page module's routes (one line per page module, beside its templates in [`PAGES`]).
fn router(board: Arc<Board>) -> Router {
    Router::new()
        .merge(login::routes())
        .merge(overview::routes())
        .merge(branches::routes())
        .merge(campaigns::routes())
        .merge(detail::routes())
        .merge(staff::routes())
        .merge(outbox::routes())
        .merge(materials::routes())
        .merge(closure::routes())
        .merge(live::routes())
        .merge(review::routes())
        .fallback(reply::not_found)
        .with_state(board)
}

/// One campaign as the board reads it: its context (configuration, roster, the store scoped to
/// it) and its cached figures.
#[derive(Clone)]
struct Scope {
    app: Arc<App>,
    snapshot: Arc<snapshot::Cache>,
}

impl Board {
    /// The campaign `session` looks at: the board's own, or the one it chose (see
    /// [`campaigns`]), its context built the first time any session chooses it.
    fn scope(&self, session: &auth::Session) -> Result<Scope, Failure> {
        let own = Scope {
            app: self.app.clone(),
            snapshot: self.snapshot.clone(),
        };
        let Some(id) = session
            .campaign
            .as_deref()
            .filter(|id| *id != self.app.cfg.campaign.id)
        else {
            return Ok(own);
        };
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = others.get(id) {
            return Ok(s.clone());
        }
        let app = self.app.for_campaign(id).map_err(Failure)?;
        let scope = Scope {
            app: Arc::new(app),
            snapshot: Arc::default(),
        };
        others.insert(id.to_string(), scope.clone());
        Ok(scope)
    }

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

    /// For a page: the session, or the redirect to the login page.
    fn viewer(&self, headers: &HeaderMap) -> Result<auth::Session, Response> {
        self.session(headers)
            .map(|(_, s)| s)
            .ok_or_else(|| redirect("/login", &[]))
    }

    /// For a POST that changes something: a session whose CSRF token is `csrf`, a staff
    /// role, and a board that is not read-only (`shenbao web`). Otherwise the refusal page.
    fn actor(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<auth::Session, Response> {
        let Some((_, session)) = self.session(headers) else {
            return Err(redirect("/login", &[]));
        };
        auth::may_post(&session, csrf, true).map_err(forbidden)?;
        if self.read_only {
            return Err(forbidden(auth::Refusal::ReadOnly));
        }
        Ok(session)
    }

    fn render(
        &self,
        name: &str,
        session: Option<&auth::Session>,
        page: &str,
        ctx: minijinja::Value,
    ) -> Result<String, Failure> {
        let cfg = &self.app.cfg;
        let looking_at = session
            .and_then(|s| s.campaign.as_deref())
            .and_then(|id| cfg.campaign_by_id(id))
            .unwrap_or(&cfg.campaign);
        // The selector in the header, when there is more than one campaign.
        let campaigns: Vec<(String, String, bool)> = if cfg.campaigns.len() > 1 {
            cfg.campaigns
                .iter()
                .map(|c| (c.id.clone(), c.name.clone(), c.id == cfg.campaign.id))
                .collect()
        } else {
            Vec::new()
        };
        let base = minijinja::context! {
            css => CSS,
            campaign => &looking_at.name,
            campaign_id => &looking_at.id,
            campaigns => campaigns,
            past => looking_at.id != cfg.campaign.id,
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

/// Whether `role` may act on this board now (staff, and not under `shenbao web`).
pub fn may_act(role: WebRole, read_only: bool) -> bool {
    role.may_act() && !read_only
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
    use axum::http::{HeaderValue, header};

    #[test]
    fn templates_compile_and_escape_what_came_from_mail() {
        let env = templates();
        for name in [
            "base.html",
            "login.html",
            "overview.html",
            "branches.html",
            "staff.html",
            "message.html",
            "outbox.html",
            "materials.html",
            "closure.html",
        ] {
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
            previous_level: Some(evil.into()),
            search_key: String::new(),
        }];
        let out = env
            .get_template("branches.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    title => "支部", css => "", campaign => evil, user => evil, role => "工作人员",
                    csrf => "tok", page => "branches", rows => rows, total => 1, found => 401,
                    pager => board::Pager::new(401, Some(2), 200),
                    keep => minijinja::context! { college => evil, section => "", state => "", q => evil },
                    colleges => vec![evil], college => evil, states => Vec::<(String, String)>::new(),
                    sections => vec![evil], section => evil,
                    state => "", q => evil, previous_campaign => evil, previous => evil,
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
        // The page links carry the filters percent-encoded.
        assert!(
            out.contains("/branches?college=%3Cscript%3Ealert%281%29%3C&#x2f;script%3E%22onmouseover%3D&amp;section="),
            "{out}"
        );
        assert!(out.contains("第 2 / 3 页"), "{out}");
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
