//! Who is acting, as the rules see it (SPEC §9).

use entity::{AccountId, Role, UserId};

use crate::ServiceError;

/// Who is acting: a dashboard user (role decides) or an account API key (may change).
#[derive(Debug, Clone)]
pub struct Actor {
    pub account_id: AccountId,
    pub can_write: bool,
}

impl Actor {
    /// The account, if the actor may change it.
    pub fn writer(&self) -> Result<&AccountId, ServiceError> {
        if self.can_write {
            Ok(&self.account_id)
        } else {
            Err(ServiceError::Forbidden)
        }
    }
}

/// A dashboard user acting on their account's team: the team rules need who they are and
/// their exact role, not only whether they may write.
#[derive(Debug, Clone)]
pub struct UserActor {
    pub user_id: UserId,
    pub account_id: AccountId,
    pub role: Role,
}

impl From<&UserActor> for Actor {
    fn from(user: &UserActor) -> Self {
        Actor { account_id: user.account_id.clone(), can_write: user.role.can_write() }
    }
}

/// A dashboard user acts with their account and role.
impl From<&entity::session::CurrentUser> for Actor {
    fn from(user: &entity::session::CurrentUser) -> Self {
        Actor::from(&UserActor::from(user))
    }
}

impl From<&entity::session::CurrentUser> for UserActor {
    fn from(user: &entity::session::CurrentUser) -> Self {
        UserActor { user_id: user.user_id.clone(), account_id: user.account_id.clone(), role: user.role }
    }
}
