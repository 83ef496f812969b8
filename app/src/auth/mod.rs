//! Login page and the current-user lookup. The login and logout POSTs themselves are
//! plain form posts handled by the server (`server/src/http/auth.rs`), so logging in works
//! before the page has hydrated and the session cookie is set by one response.

mod login_page;

use leptos::prelude::*;
pub use login_page::LoginPage;

use crate::{AppError, CurrentUser};

#[server]
pub async fn whoami() -> Result<CurrentUser, AppError> {
    crate::server::require_user().await
}
