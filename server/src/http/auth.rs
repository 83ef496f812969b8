//! Dashboard login: the session cookie, the login/logout form posts (throttled after repeated
//! failures), and the middleware that resolves the session and keeps every dashboard page
//! behind login.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    routing::post,
    Extension, Form, Router,
};
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::AppState;
use service::accounts::{self, CurrentUser};

pub const SESSION_COOKIE: &str = "webhooks_session";
pub(super) const HOME: &str = entity::paths::webhooks();

/// Failed logins allowed per email, and per client IP, within `THROTTLE_WINDOW`.
pub const MAX_FAILURES_PER_EMAIL: usize = 5;
pub const MAX_FAILURES_PER_IP: usize = 20;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

pub fn router() -> Router<AppState> {
    // One throttle per router, i.e. per server process (documented: not shared across processes).
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(Extension(Arc::new(LoginThrottle::default())))
}

/// Failed logins in a sliding window, per key (`email:…` first, then `ip:…`), in this
/// process's memory.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// How long until every key is under its limit again; `None` when none is at it.
    pub fn retry_after(&self, keys: &[(String, usize)], now: Instant) -> Option<Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|(key, limit)| {
                let times = failures.get_mut(key)?;
                times.retain(|t| now.duration_since(*t) < THROTTLE_WINDOW);
                // The window frees up when the oldest failure that keeps it full expires.
                let blocking = times.len().checked_sub(*limit)?;
                Some(THROTTLE_WINDOW.saturating_sub(now.duration_since(times[blocking])))
            })
            .max()
    }

    pub fn record_failure(&self, keys: &[(String, usize)], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > 100_000 {
            // Bounded memory under a spray of distinct emails: drop what has expired.
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < THROTTLE_WINDOW));
        }
        for (key, _) in keys {
            failures.entry(key.clone()).or_default().push_back(now);
        }
    }

    /// Takes back the failure `record_failure` counted in advance for an attempt that did
    /// not fail; after a success the email's whole count goes (the address's stays: logging
    /// into one's own account must not reset a guesser's budget).
    pub fn forgive(&self, keys: &[(String, usize)], succeeded: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (key, _)) in keys.iter().enumerate() {
            if succeeded && i == 0 {
                failures.remove(key);
            } else if let Some(times) = failures.get_mut(key) {
                times.pop_back();
            }
        }
    }
}

fn throttle_keys(email: &str, peer: Option<SocketAddr>) -> Vec<(String, usize)> {
    let mut keys = vec![(format!("email:{}", email.trim().to_lowercase()), MAX_FAILURES_PER_EMAIL)];
    if let Some(peer) = peer {
        keys.push((format!("ip:{}", peer.ip()), MAX_FAILURES_PER_IP));
    }
    keys
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    Extension(throttle): Extension<Arc<LoginThrottle>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let back = |error: &str, retry_minutes: Option<u64>| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("error", error);
        if let Some(minutes) = retry_minutes {
            query.append_pair("retry", &minutes.to_string());
        }
        query.append_pair("email", form.email.trim()).append_pair("next", &form.next);
        Redirect::to(&format!("/login?{}", query.finish())).into_response()
    };
    if form.email.trim().is_empty() || form.password.is_empty() {
        return back("missing", None);
    }
    let keys = throttle_keys(&form.email, peer.map(|Extension(ConnectInfo(addr))| addr));
    if let Some(wait) = throttle.retry_after(&keys, Instant::now()) {
        tracing::warn!(retry_after_secs = wait.as_secs(), "login throttled after repeated failures");
        let mut res = back("throttled", Some(wait.as_secs().div_ceil(60).max(1)));
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return res;
    }
    // Counted before the (slow) check, so concurrent guesses cannot all slip under the limit.
    throttle.record_failure(&keys, Instant::now());
    let user = match accounts::authenticate(&state.db, &form.email, &form.password).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            tracing::info!("login refused");
            return back("invalid", None);
        }
        Err(err) => {
            tracing::error!(%err, "login failed");
            throttle.forgive(&keys, false);
            return back("unavailable", None);
        }
    };
    throttle.forgive(&keys, true);
    let token = match rotate_session(&state, &headers, &user).await {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(%err, "could not create a session");
            return back("unavailable", None);
        }
    };
    tracing::info!(user_id = %user.id, "logged in");
    let cookie = session_cookie(&state, token, state.config.session_ttl.as_secs() as i64);
    with_cookie(Redirect::to(safe_next(&form.next)), cookie)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        if let Err(err) = accounts::delete_session(&state.db, &token).await {
            tracing::error!(%err, "could not delete a session");
        }
    }
    let cookie = session_cookie(&state, String::new(), 0);
    with_cookie(Redirect::to("/login?reason=logged_out"), cookie)
}

/// Resolves the session cookie into a `CurrentUser` request extension, and sends page
/// requests without a valid session to the login page (saying so when it expired).
pub async fn session_middleware(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = session_token(req.headers());
    let mut stale_cookie = false;
    if let Some(token) = &token {
        match accounts::resolve_session(&state.db, token).await {
            Ok(Some(user)) => {
                req.extensions_mut().insert(user);
            }
            Ok(None) => stale_cookie = true,
            Err(err) => tracing::error!(%err, "could not resolve a session"),
        }
    }
    let logged_in = req.extensions().get::<CurrentUser>().is_some();
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && is_page(&path) {
        if path == "/login" && logged_in {
            return Redirect::to(HOME).into_response();
        }
        if !is_public(&path) && !logged_in {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("next", req.uri().path_and_query().map_or("/", |p| p.as_str()));
            if stale_cookie {
                query.append_pair("reason", "expired");
            }
            let to = Redirect::to(&format!("/login?{}", query.finish()));
            return with_cookie(to, session_cookie(&state, String::new(), 0));
        }
    }
    next.run(req).await
}

/// Pages shown without a session: the login page and invitation links (SPEC §9).
fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/invite/")
}

/// Dashboard pages, as opposed to assets, the API, server functions and probes.
fn is_page(path: &str) -> bool {
    const NOT_PAGES: [&str; 6] = ["/pkg/", "/api/", "/live/", "/healthz", "/readyz", "/metrics"];
    let last = path.rsplit('/').next().unwrap_or("");
    !NOT_PAGES.iter().any(|p| path.starts_with(p)) && !last.contains('.')
}

/// Only same-site paths: `//evil.example` and absolute URLs would make an open redirect.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local && next != "/login" {
        next
    } else {
        HOME
    }
}

/// Session rotation, at login and when an invitation is accepted: a token the browser already
/// had (possibly planted) ends here, and the user always gets a fresh random one.
pub(super) async fn rotate_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &entity::tables::user::Model,
) -> Result<String, sea_orm::DbErr> {
    if let Some(old) = session_token(headers) {
        if let Err(err) = accounts::delete_session(&state.db, &old).await {
            tracing::error!(%err, "could not delete the previous session");
        }
    }
    accounts::create_session(&state.db, user, state.config.session_ttl).await
}

pub(super) fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

pub(super) fn session_cookie(state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build()
}

pub(super) fn with_cookie(response: impl IntoResponse, cookie: Cookie<'static>) -> Response {
    let mut response = response.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_allows_local_paths() {
        assert_eq!(safe_next("/settings/webhooks?x=1"), "/settings/webhooks?x=1");
        assert_eq!(safe_next("//evil.example/"), HOME);
        assert_eq!(safe_next("https://evil.example/"), HOME);
        assert_eq!(safe_next("/\\evil.example"), HOME);
        assert_eq!(safe_next(""), HOME);
    }

    #[test]
    fn the_throttle_counts_failures_per_key_in_a_sliding_window() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        let keys = throttle_keys("Ada@Acme.test ", Some("10.0.0.1:5000".parse().unwrap()));
        assert_eq!(keys[0].0, "email:ada@acme.test");
        for i in 0..MAX_FAILURES_PER_EMAIL as u64 {
            assert_eq!(throttle.retry_after(&keys, t0), None);
            throttle.record_failure(&keys, t0 + Duration::from_secs(60 * i));
        }
        let now = t0 + Duration::from_secs(300);
        assert_eq!(throttle.retry_after(&keys, now), Some(THROTTLE_WINDOW - Duration::from_secs(300)));
        let other = throttle_keys("bob@acme.test", Some("10.0.0.1:5001".parse().unwrap()));
        assert_eq!(throttle.retry_after(&other, now), None, "another email from the same IP is not yet blocked");
        assert_eq!(throttle.retry_after(&keys, t0 + THROTTLE_WINDOW), None, "the oldest failure expired");
        throttle.forgive(&keys, true);
        assert_eq!(throttle.retry_after(&keys, now), None, "a success clears the email");
        let ip_only = &keys[1..];
        // 5 failures, the oldest expired, one taken back for the success: 3 stay on the address.
        assert_eq!(throttle.failures.lock().unwrap()[&ip_only[0].0].len(), 3, "the address keeps the rest");
    }

    #[test]
    fn assets_and_api_are_not_pages() {
        assert!(is_page("/settings/webhooks"));
        assert!(is_page("/"));
        assert!(!is_page("/pkg/webhooks.wasm"));
        assert!(!is_page("/favicon.ico"));
        assert!(!is_page("/api/v1/endpoints"));
        assert!(!is_page("/healthz"));
        assert!(is_public("/invite/abc") && is_public("/login"));
        assert!(!is_public("/settings/team") && !is_public("/invitex"));
    }
}
