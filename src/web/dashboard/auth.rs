//! Signing in to the dashboard: the login form, session cookies, CSRF tokens, roles, and a
//! throttle on failed logins.
//!
//! - A session is a random secret in the `hotline_session` cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` over HTTPS or behind a proxy that says so); the store keeps
//!   only its hash ([`crate::store::access`]), so several servers on one store share sign-ins.
//! - Every form carries the session's CSRF token, checked before anything changes. The login
//!   form itself is a double submit: a random value in a `hotline_login` cookie and in the form.
//! - Pages ask for a least role ([`require`]): no session is a redirect to `/login`, too low a
//!   role is 403.
//! - Five failed logins from one address within five minutes lock that address out for the
//!   rest of the five minutes (429).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::Deserialize;

use super::{page, MessagePage};
use crate::store::access::{Role, Session, SESSION_TTL_MS};
use crate::store::{Store, StoreError};
use crate::web::WebState;

const SESSION_COOKIE: &str = "hotline_session";
const LOGIN_COOKIE: &str = "hotline_login";
const FAILURES_ALLOWED: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Failed logins per address, in the current window.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    /// Seconds left of a lock-out, if `ip` is locked out at `now`.
    fn locked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        map.get(&ip)
            .filter(|(n, _)| *n >= FAILURES_ALLOWED)
            .map(|(_, since)| (FAILURE_WINDOW - now.duration_since(*since)).as_secs() + 1)
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(ip).or_insert((0, now));
        entry.0 += 1;
    }

    fn succeeded(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether the browser reached us over HTTPS (directly, or through a proxy that says so).
fn over_https(state: &WebState, headers: &HeaderMap) -> bool {
    state.config.tls_cert.is_some()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A page sent instead of the one asked for: the login redirect, 403, or an error (boxed: a
/// response is large, and most requests do not need one).
pub struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Self(Box::new(r))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The store, or the page that says it is not open.
pub fn store(state: &WebState) -> Result<Store, Refusal> {
    state.store().ok_or_else(|| {
        message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Starting",
            "The call store is not open yet. Try again in a moment.",
            None,
        )
        .into()
    })
}

/// The page for a store error: 400 for a request it could not take (its message says why),
/// else 500, with one log line saying what failed.
pub fn failed(what: &str, e: StoreError) -> Response {
    match e {
        StoreError::Access(m) => message(StatusCode::BAD_REQUEST, "Not understood", &m, None),
        e => {
            tracing::error!("dashboard: {what}: {e}");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "The call store failed; see the server's log.",
                None,
            )
        }
    }
}

/// A page with one message.
pub fn message(status: StatusCode, title: &str, text: &str, session: Option<&Session>) -> Response {
    let html = MessagePage {
        title,
        text,
        user: session.map(|s| s.user.as_str()).unwrap_or(""),
        role: session.map(|s| s.role.code()).unwrap_or(""),
        csrf: session.map(|s| s.csrf.as_str()).unwrap_or(""),
    }
    .render();
    page(status, html)
}

/// The signed-in session with at least `least` role; otherwise the response to send: a
/// redirect to the login page (coming back to `path`), or 403.
pub async fn require(
    state: &WebState,
    headers: &HeaderMap,
    least: Role,
    path: &str,
) -> Result<(Store, Session), Refusal> {
    let store = store(state)?;
    let session = match cookie(headers, SESSION_COOKIE) {
        Some(secret) => store
            .session(&secret)
            .await
            .map_err(|e| Refusal::from(failed("reading a session", e)))?,
        None => None,
    };
    let Some(session) = session else {
        let next: String = url_encode(path);
        return Err(Redirect::to(&format!("/login?next={next}"))
            .into_response()
            .into());
    };
    if session.role < least {
        return Err(Refusal::from(message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "This page needs the {} role; {} is signed in as {}.",
                least.code(),
                session.user,
                session.role.code()
            ),
            Some(&session),
        )));
    }
    Ok((store, session))
}

/// Checks a form's CSRF token against the session's.
pub fn check_csrf(session: &Session, token: &str) -> Result<(), Refusal> {
    if same_secret(&session.csrf, token) {
        Ok(())
    } else {
        Err(Refusal::from(message(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The form's security token did not match this session. Reload the page and try again.",
            Some(session),
        )))
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only a local path is a place to go back to after signing in (never another site).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/dashboard",
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    next: &'a str,
    csrf: &'a str,
    error: &'a str,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`.
pub async fn login_form(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    login_page(
        &state,
        &headers,
        safe_next(q.next.as_deref()),
        "",
        StatusCode::OK,
    )
}

fn login_page(
    state: &WebState,
    headers: &HeaderMap,
    next: &str,
    error: &str,
    status: StatusCode,
) -> Response {
    let mut token = [0u8; 24];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token);
    let csrf = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
    let html = LoginPage {
        next,
        csrf: &csrf,
        error,
    }
    .render();
    let mut response = page(status, html);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &csrf, 3600, over_https(state, headers)),
    );
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /login`.
pub async fn login(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    let ip = state.guard.client_ip(peer.ip(), &headers);
    let now = Instant::now();
    if let Some(wait_s) = state.login_throttle.locked(ip, now) {
        tracing::warn!(%ip, "dashboard: login refused, too many failures");
        return login_page(
            &state,
            &headers,
            &next,
            &format!("Too many failed sign-ins from this address. Try again in {wait_s} s."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let double_submit = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(&c, &form.csrf));
    if !double_submit {
        return login_page(
            &state,
            &headers,
            &next,
            "The sign-in form expired. Please try again.",
            StatusCode::FORBIDDEN,
        );
    }
    let store = match store(&state) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let role = match store.verify_user(form.user.trim(), &form.password).await {
        Ok(Some(role)) => role,
        Ok(None) => {
            state.login_throttle.failed(ip, now);
            tracing::warn!(%ip, user = %form.user.trim(), "dashboard: failed sign-in");
            return login_page(
                &state,
                &headers,
                &next,
                "Wrong name or password.",
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(e) => return failed("sign-in", e),
    };
    state.login_throttle.succeeded(ip);
    let (secret, session) = match store.create_session(form.user.trim(), role).await {
        Ok(s) => s,
        Err(e) => return failed("sign-in", e),
    };
    tracing::info!(user = %session.user, role = role.code(), %ip, "dashboard: signed in");
    // Agents work in their console; the dashboard's pages are for supervisors and admins.
    let target = if role >= Role::Supervisor || next.starts_with("/agent") {
        next.as_str()
    } else {
        "/agent"
    };
    let mut response = Redirect::to(target).into_response();
    let secure = over_https(&state, &headers);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &secret, SESSION_TTL_MS / 1000, secure),
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0, secure));
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (store, session) = match require(&state, &headers, Role::Agent, "/dashboard").await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_csrf(&session, &form.csrf) {
        return r.into_response();
    }
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = store.end_session(&secret).await {
            tracing::error!("dashboard: sign-out: {e}");
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, over_https(&state, &headers)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; hotline_session=abc"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/dashboard/calls?x=1")),
            "/dashboard/calls?x=1"
        );
        assert_eq!(safe_next(Some("//evil.example")), "/dashboard");
        assert_eq!(safe_next(Some("https://evil.example")), "/dashboard");
        assert_eq!(safe_next(None), "/dashboard");
    }

    #[test]
    fn failed_logins_lock_an_address_out_for_the_window() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        for _ in 0..FAILURES_ALLOWED {
            assert!(t.locked(ip, now).is_none());
            t.failed(ip, now);
        }
        assert!(t.locked(ip, now).is_some());
        assert!(t.locked("192.0.2.8".parse().unwrap(), now).is_none());
        assert!(t.locked(ip, now + FAILURE_WINDOW).is_none());
    }
}
