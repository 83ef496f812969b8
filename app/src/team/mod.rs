//! `/settings/team`: the account's users (SPEC §9). Owners and admins invite people by
//! email, change roles and remove users; members see the list and who can manage it. The
//! server functions call `service::team`; the rules are `entity::team`'s.

mod invite_page;

use entity::{
    team::{grantable_roles, InvitationLookup, InviteInput, Member, PendingInvitation, Team},
    Role,
};
pub use invite_page::InvitePage;
use leptos::{prelude::*, server_fn::codec::Json};
use leptos_meta::Title;

use crate::{
    components::confirm::ConfirmInline,
    components::notice::{ErrorNotice, Loading},
    time::{show_bare, zone_now},
    AppError,
};

#[server(endpoint = "team/list")]
pub async fn list_team() -> Result<Team, AppError> {
    let (user, ctx) = crate::server::user_and_context().await?;
    Ok(service::team::list(&ctx.db, &user).await?)
}

#[server(endpoint = "team/invite", input = Json)]
pub async fn invite_member(input: InviteInput) -> Result<PendingInvitation, AppError> {
    let (user, ctx) = crate::server::user_and_context().await?;
    Ok(service::team::invite(&ctx.db, ctx.outbox.as_ref(), &user, input).await?)
}

#[server(endpoint = "team/role", input = Json)]
pub async fn change_role(id: String, role: Role) -> Result<Member, AppError> {
    let (user, ctx) = crate::server::user_and_context().await?;
    Ok(service::team::change_role(&ctx.db, &user, &id, role).await?)
}

#[server(endpoint = "team/remove", input = Json)]
pub async fn remove_member(id: String) -> Result<(), AppError> {
    let (user, ctx) = crate::server::user_and_context().await?;
    Ok(service::team::remove(&ctx.db, &user, &id).await?)
}

#[server(endpoint = "team/revoke-invite", input = Json)]
pub async fn revoke_invitation(id: String) -> Result<(), AppError> {
    let (user, ctx) = crate::server::user_and_context().await?;
    Ok(service::team::revoke_invitation(&ctx.db, &user, &id).await?)
}

/// Public: the invitation page is opened before its visitor has an account.
#[server(endpoint = "team/invitation", input = Json)]
pub async fn invitation(token: String) -> Result<InvitationLookup, AppError> {
    Ok(service::team::lookup(&crate::server::context()?.db, &token).await?)
}

pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Owner => "Owner",
        Role::Admin => "Admin",
        Role::Member => "Member",
    }
}

type TeamAction<I, O> = Action<I, Result<O, AppError>>;

/// The page's changes; each one's success refetches the team.
#[derive(Clone, Copy)]
struct Changes {
    invite: TeamAction<InviteInput, PendingInvitation>,
    role: TeamAction<(String, Role), Member>,
    remove: TeamAction<String, ()>,
    revoke: TeamAction<String, ()>,
}

impl Changes {
    fn new() -> Self {
        Changes {
            invite: Action::new(|input: &InviteInput| invite_member(input.clone())),
            role: Action::new(|(id, role): &(String, Role)| change_role(id.clone(), *role)),
            remove: Action::new(|id: &String| remove_member(id.clone())),
            revoke: Action::new(|id: &String| revoke_invitation(id.clone())),
        }
    }

    /// Reads every action each time (no short circuit), so any one's next success is seen.
    fn succeeded(&self) -> bool {
        let results = [
            self.invite.value().with(|v| matches!(v, Some(Ok(_)))),
            self.role.value().with(|v| matches!(v, Some(Ok(_)))),
            self.remove.value().with(|v| matches!(v, Some(Ok(_)))),
            self.revoke.value().with(|v| matches!(v, Some(Ok(_)))),
        ];
        results.contains(&true)
    }

    /// The error of a row change, shown above the tables.
    fn row_error(&self) -> Option<String> {
        let failed = |v: Option<Result<(), AppError>>| v.and_then(|r| r.err()).map(|e| e.to_string());
        failed(self.role.value().get().map(|r| r.map(|_| ())))
            .or_else(|| failed(self.remove.value().get()))
            .or_else(|| failed(self.revoke.value().get()))
    }
}

#[component]
pub fn TeamPage() -> impl IntoView {
    let changes = Changes::new();
    let team = Resource::new(|| (), |_| list_team());
    Effect::new(move |_| {
        if changes.succeeded() {
            team.refetch();
        }
    });
    view! {
        <Title text="Team · Settings" />
        <section class="page team-page">
            <header class="page-header">
                <div>
                    <h1>"Team"</h1>
                    <p class="lead">"The people who can log in to this account, and what each may do."</p>
                </div>
            </header>
            <Transition fallback=|| {
                view! { <Loading what="Loading…" /> }
            }>
                {move || Suspend::new(async move {
                    match team.await {
                        Ok(team) => view! { <TeamView team changes /> }.into_any(),
                        Err(err) => view! { <ErrorNotice message=err.to_string() /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TeamView(team: Team, changes: Changes) -> impl IntoView {
    let manager = team.your_role.can_write();
    let Team { members, invitations, you, your_role } = team;
    view! {
        {if manager {
            view! { <InviteForm your_role changes /> }.into_any()
        } else {
            view! {
                <p class="notice info" role="status">
                    "Only owners and admins of the account can invite people, change roles and remove members."
                </p>
            }
                .into_any()
        }}
        {move || {
            changes
                .row_error()
                .map(|e| {
                    view! { <ErrorNotice message=e /> }
                })
        }}
        <section class="card" aria-labelledby="members-heading">
            <div class="card-header">
                <h2 id="members-heading">"Members"</h2>
            </div>
            <table class="team-members">
                <thead>
                    <tr>
                        <th scope="col">"Email"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">{move || format!("Joined ({})", zone_now())}</th>
                        {manager
                            .then(|| {
                                view! {
                                    <th scope="col">
                                        <span class="visually-hidden">"Actions"</span>
                                    </th>
                                }
                            })}
                    </tr>
                </thead>
                <tbody>
                    {members
                        .into_iter()
                        .map(|m| {
                            let me = m.id == you;
                            view! { <MemberRow m me your_role changes /> }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
        {manager.then(|| view! { <Invitations invitations your_role changes /> })}
    }
}

#[component]
fn InviteForm(your_role: Role, changes: Changes) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Member);
    let invite = changes.invite;
    let error =
        move |field: &'static str| move || invite.value().get().and_then(|r| r.err()).and_then(|e| e.for_field(field));
    let other_error = move || {
        invite
            .value()
            .get()
            .and_then(|r| r.err())
            .filter(|e| e.for_field("email").is_none() && e.for_field("role").is_none())
    };
    let sent = move || invite.value().get().and_then(Result::ok);
    Effect::new(move |_| {
        if sent().is_some() {
            email.set(String::new());
        }
    });
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        invite.dispatch(InviteInput { email: email.get_untracked(), role: role.get_untracked() });
    };
    view! {
        <form class="card invite-form" on:submit=on_submit novalidate>
            <h2>"Invite someone"</h2>
            <p class="muted">"They get an email with a link to choose a password. The link works for 7 days."</p>
            {move || {
                sent()
                    .map(|i| {
                        view! {
                            <p class="notice success" role="status">
                                {format!("Invitation sent to {}.", i.email)}
                            </p>
                        }
                    })
            }}
            {move || {
                other_error()
                    .map(|e| {
                        view! { <ErrorNotice message=e.to_string() /> }
                    })
            }}
            <div class="invite-fields">
                <div class="invite-email">
                    <label for="invite-email">"Email"</label>
                    <input
                        id="invite-email"
                        type="email"
                        autocomplete="off"
                        required
                        prop:value=move || email.get()
                        on:input=move |ev| email.set(event_target_value(&ev))
                        aria-invalid=move || error("email")().is_some().to_string()
                        aria-describedby="invite-email-error"
                    />
                    {move || {
                        error("email")()
                            .map(|m| {
                                view! {
                                    <p class="field-error" id="invite-email-error" role="alert">
                                        {m}
                                    </p>
                                }
                            })
                    }}
                </div>
                <div>
                    <label for="invite-role">"Role"</label>
                    <RoleSelect id="invite-role" options=grantable_roles(your_role) selected=role />
                    {move || {
                        error("role")()
                            .map(|m| {
                                view! {
                                    <p class="field-error" role="alert">
                                        {m}
                                    </p>
                                }
                            })
                    }}
                </div>
                <button class="button primary" type="submit" disabled=move || invite.pending().get()>
                    {move || if invite.pending().get() { "Sending…" } else { "Send invitation" }}
                </button>
            </div>
        </form>
    }
}

#[component]
fn RoleSelect(#[prop(into)] id: String, options: &'static [Role], selected: RwSignal<Role>) -> impl IntoView {
    view! {
        <select
            id=id
            on:change=move |ev| {
                if let Ok(r) = event_target_value(&ev).parse() {
                    selected.set(r);
                }
            }
        >
            {options
                .iter()
                .map(|r| {
                    let r = *r;
                    view! {
                        <option value=r.as_str() selected=move || selected.get() == r>
                            {role_label(r)}
                        </option>
                    }
                })
                .collect_view()}
        </select>
    }
}

#[component]
fn MemberRow(m: Member, me: bool, your_role: Role, changes: Changes) -> impl IntoView {
    let manager = your_role.can_write();
    // What the rules could allow on this row; the server decides the rest (the last owner).
    let touchable = manager && (m.role != Role::Owner || your_role == Role::Owner);
    let removable = touchable && !me;
    let joined = m.joined_at;
    let role = RwSignal::new(m.role);
    let current = m.role;
    let id = StoredValue::new(m.id.clone());
    let email = StoredValue::new(m.email.clone());
    let select_id = format!("role-{}", m.id);
    let role_cell = if touchable {
        view! {
            <form
                class="role-form"
                on:submit=move |ev: leptos::ev::SubmitEvent| {
                    ev.prevent_default();
                    changes.role.dispatch((id.get_value(), role.get_untracked()));
                }
            >
                <label class="visually-hidden" for=select_id.clone()>
                    {format!("Role of {}", m.email)}
                </label>
                <RoleSelect id=select_id options=grantable_roles(your_role) selected=role />
                <button class="button subtle" type="submit" disabled=move || role.get() == current>
                    "Save role"
                </button>
            </form>
        }
        .into_any()
    } else {
        view! { <span class=format!("badge role-{}", m.role)>{role_label(m.role)}</span> }.into_any()
    };
    view! {
        <tr data-member=m.id.clone()>
            <td class="member-email">{m.email.clone()} {me.then(|| view! { <span class="badge you">"You"</span> })}</td>
            <td>{role_cell}</td>
            <td data-label="Joined">{move || show_bare(joined, "%Y-%m-%d")}</td>
            {manager
                .then(|| {
                    view! {
                        <td class="row-actions">
                            {removable
                                .then(|| {
                                    view! {
                                        <ConfirmInline
                                            label="Remove"
                                            aria_label=format!("Remove {}", email.get_value())
                                            warning="They are logged out at once."
                                            confirm="Remove member"
                                            on_confirm=move || {
                                                changes.remove.dispatch(id.get_value());
                                            }
                                        />
                                    }
                                })}
                        </td>
                    }
                })}
        </tr>
    }
}

#[component]
fn Invitations(invitations: Vec<PendingInvitation>, your_role: Role, changes: Changes) -> impl IntoView {
    let when = |t: chrono::DateTime<chrono::Utc>| show_bare(t, "%Y-%m-%d %H:%M");
    view! {
        <section class="card" aria-labelledby="invitations-heading">
            <div class="card-header">
                <h2 id="invitations-heading">"Pending invitations"</h2>
            </div>
            {if invitations.is_empty() {
                view! { <p class="empty-log">"No pending invitations."</p> }.into_any()
            } else {
                view! {
                    <table class="team-invitations">
                        <thead>
                            <tr>
                                <th scope="col">"Email"</th>
                                <th scope="col">"Role"</th>
                                <th scope="col">{move || format!("Expires ({})", zone_now())}</th>
                                <th scope="col">
                                    <span class="visually-hidden">"Actions"</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {invitations
                                .into_iter()
                                .map(|i| {
                                    let expires = i.expires_at;
                                    let id = StoredValue::new(i.id.clone());
                                    let allowed = i.role != Role::Owner || your_role == Role::Owner;
                                    view! {
                                        <tr data-invitation=i.id.clone()>
                                            <td class="member-email">{i.email.clone()}</td>
                                            <td>{role_label(i.role)}</td>
                                            <td>{move || when(expires)}</td>
                                            <td class="row-actions">
                                                {allowed
                                                    .then(|| {
                                                        view! {
                                                            <button
                                                                class="button danger-outline"
                                                                type="button"
                                                                aria-label=format!("Revoke the invitation of {}", i.email)
                                                                on:click=move |_| {
                                                                    changes.revoke.dispatch(id.get_value());
                                                                }
                                                            >
                                                                "Revoke"
                                                            </button>
                                                        }
                                                    })}
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
    }
}
