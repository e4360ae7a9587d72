//! Logging in and out: a login token in a cookie and the form (the login CSRF), the argon2
//! check off the async threads, the failed-login limit per name and per address.

use super::reply::{Failure, cookie, forbidden, html, redirect};
use super::{Board, LOGIN_COOKIE, SESSION_COOKIE, auth, token, verify_password};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) const TEMPLATES: &[(&str, &str)] =
    &[("login.html", include_str!("templates/login.html"))];

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
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
