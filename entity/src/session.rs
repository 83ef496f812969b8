use crate::{AccountId, Role, UserId};
use serde::{Deserialize, Serialize};

/// The logged-in user of this request. The server's session middleware puts it in the
/// request extensions; every server function that reads or changes data starts from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub user_id: UserId,
    pub account_id: AccountId,
    pub account_name: String,
    pub email: String,
    pub role: Role,
}
