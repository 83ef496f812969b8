//! Accepting an invitation (SPEC §9): the invitation page's form posts here, like the login
//! form, so the new user's session cookie is set by this response and they land logged in.
//! A refusal goes back to the page with `?error=`; a link that is no longer open goes back
//! without one, and the page says why.

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
    routing::post,
    Form, Router,
};
use serde::Deserialize;

use super::{
    auth::{rotate_session, session_cookie, with_cookie, HOME},
    AppState,
};
use service::accounts::{self, AcceptError, AccountError};

pub fn router() -> Router<AppState> {
    Router::new().route("/invitations/accept", post(accept))
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

fn back_to_page(token: &str, error: Option<&str>) -> Response {
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let query = error.map(|e| format!("?error={e}")).unwrap_or_default();
    Redirect::to(&format!("/invite/{token}{query}")).into_response()
}

async fn accept(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<AcceptForm>) -> Response {
    let user = match accounts::accept_invitation(&state.db, &form.token, &form.password).await {
        Ok(user) => user,
        Err(AcceptError::Closed(_)) => return back_to_page(&form.token, None),
        // The invitation's email was checked when it was sent: what is invalid is the password.
        Err(AcceptError::Account(AccountError::Invalid(_))) => return back_to_page(&form.token, Some("password")),
        Err(AcceptError::Account(AccountError::EmailTaken(_))) => return back_to_page(&form.token, Some("taken")),
        Err(err) => {
            tracing::error!(%err, "could not accept an invitation");
            return back_to_page(&form.token, Some("unavailable"));
        }
    };
    // As at login: whatever session the browser had ends, the new user gets a fresh one.
    let token = match rotate_session(&state, &headers, &user).await {
        Ok(token) => token,
        Err(err) => {
            // The user exists now: logging in works, the link does not any more.
            tracing::error!(%err, "could not create a session after accepting an invitation");
            return Redirect::to("/login").into_response();
        }
    };
    tracing::info!(user_id = %user.id, account_id = %user.account_id, "invitation accepted");
    let cookie = session_cookie(&state, token, state.config.session_ttl.as_secs() as i64);
    with_cookie(Redirect::to(HOME), cookie)
}
