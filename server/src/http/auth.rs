//! Dashboard login: the session cookie, the login/logout form posts, and the middleware
//! that resolves the session and keeps every dashboard page behind login.

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    routing::post,
    Form, Router,
};
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::AppState;
use crate::accounts::{self, CurrentUser};

pub const SESSION_COOKIE: &str = "webhooks_session";
const HOME: &str = "/settings/webhooks";

pub fn router() -> Router<AppState> {
    Router::new().route("/login", post(login)).route("/logout", post(logout))
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

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let back = |error: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("error", error)
            .append_pair("email", form.email.trim())
            .append_pair("next", &form.next)
            .finish();
        Redirect::to(&format!("/login?{query}")).into_response()
    };
    if form.email.trim().is_empty() || form.password.is_empty() {
        return back("missing");
    }
    let user = match accounts::authenticate(&state.db, &form.email, &form.password).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            tracing::info!("login refused");
            return back("invalid");
        }
        Err(err) => {
            tracing::error!(%err, "login failed");
            return back("unavailable");
        }
    };
    let token = match accounts::create_session(&state.db, &user, state.config.session_ttl).await {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(%err, "could not create a session");
            return back("unavailable");
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
        if path != "/login" && !logged_in {
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

fn session_token(headers: &HeaderMap) -> Option<String> {
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

fn session_cookie(state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build()
}

fn with_cookie(response: impl IntoResponse, cookie: Cookie<'static>) -> Response {
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
    fn assets_and_api_are_not_pages() {
        assert!(is_page("/settings/webhooks"));
        assert!(is_page("/"));
        assert!(!is_page("/pkg/webhooks.wasm"));
        assert!(!is_page("/favicon.ico"));
        assert!(!is_page("/api/v1/endpoints"));
        assert!(!is_page("/healthz"));
    }
}
