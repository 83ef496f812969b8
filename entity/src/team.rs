//! The team page's shapes and its rules (SPEC §9: owners and admins manage members). The
//! rules are pure functions over roles, so they are tested without a server and the page
//! can hide what the server would refuse.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Role;

/// How long an invitation link works.
pub const INVITATION_DAYS: i64 = 7;
/// The same rule as the CLI's `user create` (`server::accounts`).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A user of the account as the team page lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// A pending invitation: never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInvitation {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Everything the team page shows, read in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub members: Vec<Member>,
    /// Empty for members: they see who is on the team, not who is invited.
    pub invitations: Vec<PendingInvitation>,
    /// The caller, so the page marks "you" and offers only what the rules allow.
    pub you: String,
    pub your_role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInput {
    pub email: String,
    pub role: Role,
}

/// What the public invitation page shows about a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvitationLookup {
    Open { account_name: String, email: String, role: Role },
    Expired,
    Revoked,
    Accepted,
    Unknown,
}

impl InvitationLookup {
    /// Why a link no longer works, for the page and for a refused accept.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            InvitationLookup::Open { .. } => None,
            InvitationLookup::Expired => {
                Some("This invitation has expired. Ask the person who invited you to send a new one.")
            }
            InvitationLookup::Revoked => Some("This invitation was withdrawn. Ask the account's owners for a new one."),
            InvitationLookup::Accepted => {
                Some("This invitation has already been used. Log in with your email instead.")
            }
            InvitationLookup::Unknown => Some("This invitation link is not valid. Check that you copied all of it."),
        }
    }
}

/// An email or password the sign-up and invitation forms refuse, worded for the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("“{0}” is not an email address")]
    NotAnEmail(String),
    #[error("the password needs at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
}

/// Trimmed and lowercased (emails are unique platform-wide, compared lowercased); `Err` says
/// why it is not an address.
pub fn normalize_email(email: &str) -> Result<String, CredentialError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'));
    if valid {
        Ok(email)
    } else {
        Err(CredentialError::NotAnEmail(email))
    }
}

pub fn check_password(password: &str) -> Result<(), CredentialError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CredentialError::PasswordTooShort);
    }
    Ok(())
}

/// A team change the rules refuse; each says why in words for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TeamRuleError {
    #[error("Only owners and admins manage the team.")]
    NotAManager,
    #[error("Only an owner can grant the owner role or change or remove an owner.")]
    OwnersOnly,
    #[error("An account needs at least one owner: make someone else an owner first.")]
    LastOwner,
    #[error("You can't remove yourself from the account here.")]
    Yourself,
}

/// Who is acting, and on whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub id: &'a str,
    pub role: Role,
}

fn manager(actor: Role) -> Result<(), TeamRuleError> {
    if actor.can_write() {
        Ok(())
    } else {
        Err(TeamRuleError::NotAManager)
    }
}

/// Owners invite with any role, admins with admin or member.
pub fn check_invite(actor: Role, role: Role) -> Result<(), TeamRuleError> {
    manager(actor)?;
    if role == Role::Owner && actor != Role::Owner {
        return Err(TeamRuleError::OwnersOnly);
    }
    Ok(())
}

/// `owners`: how many owners the account has now, the target included.
pub fn check_role_change(actor: Role, target: Target, new_role: Role, owners: usize) -> Result<(), TeamRuleError> {
    manager(actor)?;
    if (target.role == Role::Owner || new_role == Role::Owner) && actor != Role::Owner {
        return Err(TeamRuleError::OwnersOnly);
    }
    if target.role == Role::Owner && new_role != Role::Owner && owners <= 1 {
        return Err(TeamRuleError::LastOwner);
    }
    Ok(())
}

pub fn check_remove(actor: Role, actor_id: &str, target: Target, owners: usize) -> Result<(), TeamRuleError> {
    manager(actor)?;
    if target.id == actor_id {
        return Err(TeamRuleError::Yourself);
    }
    if target.role == Role::Owner && actor != Role::Owner {
        return Err(TeamRuleError::OwnersOnly);
    }
    if target.role == Role::Owner && owners <= 1 {
        return Err(TeamRuleError::LastOwner);
    }
    Ok(())
}

/// The roles `actor` may give: the page's role select offers exactly these.
pub fn grantable_roles(actor: Role) -> &'static [Role] {
    match actor {
        Role::Owner => &[Role::Owner, Role::Admin, Role::Member],
        Role::Admin => &[Role::Admin, Role::Member],
        Role::Member => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::{
        check_invite, check_remove, check_role_change, grantable_roles, InvitationLookup, Target, TeamRuleError,
    };
    use crate::Role::{self, *};

    fn t(id: &str, role: Role) -> Target<'_> {
        Target { id, role }
    }

    #[test]
    fn members_change_nothing() {
        assert_eq!(check_invite(Member, Member), Err(TeamRuleError::NotAManager));
        assert_eq!(check_role_change(Member, t("u2", Member), Admin, 1), Err(TeamRuleError::NotAManager));
        assert_eq!(check_remove(Member, "u1", t("u2", Member), 1), Err(TeamRuleError::NotAManager));
        assert!(grantable_roles(Member).is_empty());
    }

    #[test]
    fn only_owners_grant_the_owner_role_or_touch_an_owner() {
        assert_eq!(check_invite(Admin, Owner), Err(TeamRuleError::OwnersOnly));
        assert_eq!(check_invite(Admin, Admin), Ok(()));
        assert_eq!(check_invite(Owner, Owner), Ok(()));
        assert_eq!(check_role_change(Admin, t("u2", Member), Owner, 1), Err(TeamRuleError::OwnersOnly));
        assert_eq!(check_role_change(Admin, t("u2", Owner), Member, 2), Err(TeamRuleError::OwnersOnly));
        assert_eq!(check_remove(Admin, "u1", t("u2", Owner), 2), Err(TeamRuleError::OwnersOnly));
        assert_eq!(check_role_change(Owner, t("u2", Member), Owner, 1), Ok(()));
        assert_eq!(check_remove(Owner, "u1", t("u2", Owner), 2), Ok(()));
    }

    #[test]
    fn admins_manage_admins_and_members() {
        assert_eq!(check_role_change(Admin, t("u2", Admin), Member, 1), Ok(()));
        assert_eq!(check_role_change(Admin, t("u2", Member), Admin, 1), Ok(()));
        assert_eq!(check_remove(Admin, "u1", t("u2", Admin), 1), Ok(()));
        assert_eq!(check_remove(Admin, "u1", t("u2", Member), 1), Ok(()));
        assert_eq!(grantable_roles(Admin), &[Admin, Member]);
    }

    #[test]
    fn the_last_owner_is_neither_demoted_nor_removed() {
        assert_eq!(check_role_change(Owner, t("u1", Owner), Admin, 1), Err(TeamRuleError::LastOwner));
        assert_eq!(check_role_change(Owner, t("u1", Owner), Admin, 2), Ok(()), "another owner remains");
        assert_eq!(check_role_change(Owner, t("u1", Owner), Owner, 1), Ok(()), "no change is no demotion");
        assert_eq!(check_remove(Owner, "u1", t("u2", Owner), 1), Err(TeamRuleError::LastOwner));
    }

    #[test]
    fn nobody_removes_themselves() {
        assert_eq!(check_remove(Owner, "u1", t("u1", Owner), 3), Err(TeamRuleError::Yourself));
        assert_eq!(check_remove(Admin, "u1", t("u1", Admin), 1), Err(TeamRuleError::Yourself));
    }

    #[test]
    fn a_dead_link_says_why() {
        assert!(InvitationLookup::Expired.refusal().unwrap().contains("expired"));
        assert!(InvitationLookup::Accepted.refusal().unwrap().contains("already been used"));
        let open = InvitationLookup::Open { account_name: "Acme".into(), email: "a@b.c".into(), role: Admin };
        assert_eq!(open.refusal(), None);
    }
}
