//! The logged-in user: defined in `entity` (the service layer resolves sessions to it).
pub use entity::session::CurrentUser;
