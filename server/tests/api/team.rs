//! The team page's server functions and the invitation route (SPEC §9, issue 12 item 6):
//! invitations arrive by real SMTP and are accepted through the route the page's form posts
//! to; the rules about owners hold; removals and role changes apply at once.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    helpers::{location, spawn_app_with_workers, TestApp},
    smtp::{Message, SmtpSink},
};

const PASSWORD: &str = "a long enough password";

async fn call(app: &TestApp, client: &reqwest::Client, path: &str, body: Value) -> (StatusCode, Value) {
    let res = client.post(app.url(path)).json(&body).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn with_smtp() -> (TestApp, SmtpSink) {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let app = spawn_app_with_workers(move |c| c.smtp_url = Some(url)).await;
    (app, smtp)
}

/// The token of the invitation link in an email.
fn token_in(mail: &Message) -> String {
    let body = mail.body();
    let at = body.find("/invite/").unwrap_or_else(|| panic!("no invitation link in {body}"));
    body[at + "/invite/".len()..].split_whitespace().next().unwrap().to_owned()
}

async fn invite(app: &TestApp, client: &reqwest::Client, email: &str, role: &str) -> (StatusCode, Value) {
    call(app, client, "/api/team/invite", json!({ "input": { "email": email, "role": role } })).await
}

async fn accept(app: &TestApp, client: &reqwest::Client, token: &str, password: &str) -> reqwest::Response {
    client.post(app.url("/invitations/accept")).form(&[("token", token), ("password", password)]).send().await.unwrap()
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.scalar(&format!("SELECT id FROM users WHERE email = '{email}'")).await
}

async fn team(app: &TestApp, client: &reqwest::Client) -> (StatusCode, Value) {
    call(app, client, "/api/team/list", json!({})).await
}

async fn logged_in(app: &TestApp, email: &str) -> reqwest::Client {
    let client = app.client();
    assert_eq!(location(&app.login(&client, email, PASSWORD).await), "/settings/webhooks", "{email} logs in");
    client
}

#[tokio::test]
async fn an_invitation_arrives_by_email_and_its_link_makes_a_logged_in_user_with_the_role() {
    let (app, smtp) = with_smtp().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let ada = logged_in(&app, "ada@acme.test").await;

    let (status, sent) = invite(&app, &ada, " Bo@Acme.test ", "admin").await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!((sent["email"].as_str(), sent["role"].as_str()), (Some("bo@acme.test"), Some("admin")));
    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.to, vec!["bo@acme.test".to_owned()]);
    assert!(mail.subject().unwrap_or_default().contains("Acme"), "{:?}", mail.subject());
    assert!(mail.body().contains("invited by ada@acme.test"), "{}", mail.body());
    let token = token_in(&mail);
    let stored: String = app.scalar("SELECT token_hash FROM invitations").await;
    assert_eq!(stored, server::secrets::token_hash(&token), "only the token's hash is stored");
    let (_, list) = team(&app, &ada).await;
    assert_eq!(list["invitations"][0]["email"], "bo@acme.test", "pending: {list}");

    // The link's page is public and names the account, the email and the role.
    let bo = app.client();
    let page = bo.get(app.url(&format!("/invite/{token}"))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Acme") && html.contains("bo@acme.test") && html.contains("Admin"), "{html}");

    let short = accept(&app, &bo, &token, "short").await;
    assert_eq!(location(&short), format!("/invite/{token}?error=password"));
    let html = bo.get(app.url(&location(&short))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("at least 8 characters"), "the error is on the page");

    let res = accept(&app, &bo, &token, PASSWORD).await;
    assert_eq!((res.status(), location(&res)), (StatusCode::SEE_OTHER, "/settings/webhooks".to_owned()));
    assert!(res.headers().get("set-cookie").unwrap().to_str().unwrap().starts_with("webhooks_session="));
    let (status, seen) = team(&app, &bo).await;
    assert_eq!(status, StatusCode::OK, "the new user is logged in: {seen}");
    assert_eq!(seen["your_role"], "admin");
    assert_eq!(
        app.scalar::<String>("SELECT account_id FROM users WHERE email = 'bo@acme.test'").await,
        acme.account_id.to_string()
    );

    let again = accept(&app, &app.client(), &token, "another long password").await;
    assert_eq!(location(&again), format!("/invite/{token}"), "single use: back to the page, which says why");
    let (_, lookup) = call(&app, &app.client(), "/api/team/invitation", json!({ "token": token })).await;
    assert_eq!(lookup, json!("Accepted"));
    let html = app.client().get(app.url(&format!("/invite/{token}"))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("already been used"));
    logged_in(&app, "bo@acme.test").await;
    let (_, list) = team(&app, &ada).await;
    assert_eq!(list["invitations"], json!([]), "no longer pending");
    assert_eq!(list["members"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn expired_revoked_and_replaced_links_are_refused_and_taken_emails_are_not_invited() {
    let (app, smtp) = with_smtp().await;
    app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    app.create_account("Globex", "hank@globex.test", PASSWORD).await;
    let ada = logged_in(&app, "ada@acme.test").await;

    // One at a time: a job finding its invitation replaced or revoked sends nothing.
    for (n, email) in ["ex@acme.test", "rev@acme.test", "twice@acme.test", "twice@acme.test"].into_iter().enumerate() {
        assert_eq!(invite(&app, &ada, email, "member").await.0, StatusCode::OK, "{email}");
        smtp.wait_for(n + 1).await;
    }
    let mails = smtp.messages();
    let token_for = |email: &str| mails.iter().filter(|m| m.to[0] == email).map(token_in).collect::<Vec<_>>();
    let (expired, revoked, twice) =
        (token_for("ex@acme.test")[0].clone(), token_for("rev@acme.test")[0].clone(), token_for("twice@acme.test"));
    assert_eq!(twice.len(), 2, "inviting again re-sends");

    app.scalar::<i64>("WITH x AS (UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE email = 'ex@acme.test' RETURNING 1) SELECT count(*) FROM x").await;
    let rev_id: String = app.scalar("SELECT id FROM invitations WHERE email = 'rev@acme.test'").await;
    let (status, body) = call(&app, &ada, "/api/team/revoke-invite", json!({ "id": rev_id })).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for (token, state) in [(&expired, "Expired"), (&revoked, "Revoked"), (&twice[0], "Revoked")] {
        let (_, lookup) = call(&app, &app.client(), "/api/team/invitation", json!({ "token": token })).await;
        assert_eq!(lookup, json!(state));
        let res = accept(&app, &app.client(), token, PASSWORD).await;
        assert_eq!(location(&res), format!("/invite/{token}"), "refused: {state}");
        assert!(res.headers().get("set-cookie").is_none());
    }
    let html = app.client().get(app.url(&format!("/invite/{expired}"))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("has expired"), "the page says why");
    let (_, lookup) = call(&app, &app.client(), "/api/team/invitation", json!({ "token": "not-a-token" })).await;
    assert_eq!(lookup, json!("Unknown"));
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM users").await, 2, "nobody was created");
    // The newest link of a re-sent invitation works.
    let res = accept(&app, &app.client(), &twice[1], PASSWORD).await;
    assert_eq!(location(&res), "/settings/webhooks");

    // Emails are unique platform-wide: a user of any account cannot be invited.
    for email in ["hank@globex.test", "Twice@acme.test"] {
        let (status, body) = invite(&app, &ada, email, "member").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["Invalid"]["field"], "email", "{body}");
    }
    let (status, _) = invite(&app, &ada, "not an email", "member").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let (app, _smtp) = with_smtp().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    let ada = logged_in(&app, "ada@acme.test").await;
    let ada_id = user_id(&app, "ada@acme.test").await;

    let (status, body) = call(&app, &ada, "/api/team/role", json!({ "id": ada_id, "role": "admin" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["Invalid"]["message"].as_str().unwrap().contains("at least one owner"), "{body}");
    let (status, body) = call(&app, &ada, "/api/team/remove", json!({ "id": ada_id })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["Invalid"]["message"].as_str().unwrap().contains("yourself"), "{body}");

    // With a second owner, Ada may step down; then Cy is the last owner.
    service::accounts::create_user(&app.db, &acme.account_id, "cy@acme.test", PASSWORD, entity::Role::Owner)
        .await
        .unwrap();
    let cy_id = user_id(&app, "cy@acme.test").await;
    let (status, body) = call(&app, &ada, "/api/team/role", json!({ "id": ada_id, "role": "admin" })).await;
    assert_eq!((status, body["role"].as_str()), (StatusCode::OK, Some("admin")), "{body}");
    let cy = logged_in(&app, "cy@acme.test").await;
    let (status, body) = call(&app, &cy, "/api/team/role", json!({ "id": cy_id, "role": "member" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["Invalid"]["message"].as_str().unwrap().contains("at least one owner"));
    let owners: i64 = app.scalar("SELECT count(*) FROM users WHERE role = 'owner'").await;
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn an_admin_manages_admins_and_members_but_cannot_touch_an_owner() {
    let (app, smtp) = with_smtp().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    for (email, role) in [("al@acme.test", entity::Role::Admin), ("mo@acme.test", entity::Role::Member)] {
        service::accounts::create_user(&app.db, &acme.account_id, email, PASSWORD, role).await.unwrap();
    }
    let al = logged_in(&app, "al@acme.test").await;
    let (ada_id, mo_id) = (user_id(&app, "ada@acme.test").await, user_id(&app, "mo@acme.test").await);

    let refusals = [
        ("/api/team/role", json!({ "id": ada_id, "role": "member" })),
        ("/api/team/remove", json!({ "id": ada_id })),
        ("/api/team/role", json!({ "id": mo_id, "role": "owner" })),
    ];
    for (path, args) in refusals {
        let (status, body) = call(&app, &al, path, args.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {args}: {body}");
        assert!(body["Invalid"]["message"].as_str().unwrap().contains("Only an owner"), "{body}");
    }
    let (status, body) = invite(&app, &al, "new@acme.test", "owner").await;
    assert_eq!((status, body["Invalid"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("role")));
    assert_eq!(app.scalar::<String>(&format!("SELECT role FROM users WHERE id = '{ada_id}'")).await, "owner");

    let (status, body) = call(&app, &al, "/api/team/role", json!({ "id": mo_id, "role": "admin" })).await;
    assert_eq!((status, body["role"].as_str()), (StatusCode::OK, Some("admin")), "{body}");
    assert_eq!(invite(&app, &al, "new@acme.test", "admin").await.0, StatusCode::OK);
    smtp.wait_for(1).await;
    let (status, body) = call(&app, &al, "/api/team/remove", json!({ "id": mo_id })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.scalar::<i64>(&format!("SELECT count(*) FROM users WHERE id = '{mo_id}'")).await, 0);
}

#[tokio::test]
async fn a_role_change_applies_at_once_and_a_removed_user_is_logged_out_at_once() {
    let (app, _smtp) = with_smtp().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    service::accounts::create_user(&app.db, &acme.account_id, "mo@acme.test", PASSWORD, entity::Role::Member)
        .await
        .unwrap();
    let (ada, mo) = (logged_in(&app, "ada@acme.test").await, logged_in(&app, "mo@acme.test").await);
    let mo_id = user_id(&app, "mo@acme.test").await;
    let (_, seen) = team(&app, &mo).await;
    assert_eq!(seen["your_role"], "member");

    assert_eq!(call(&app, &ada, "/api/team/role", json!({ "id": mo_id, "role": "admin" })).await.0, StatusCode::OK);
    let (_, seen) = team(&app, &mo).await;
    assert_eq!(seen["your_role"], "admin", "the open session has the new role");
    let (status, _) = invite(&app, &mo, "friend@acme.test", "member").await;
    assert_eq!(status, StatusCode::OK, "and may use it");

    assert_eq!(call(&app, &ada, "/api/team/remove", json!({ "id": mo_id })).await.0, StatusCode::OK);
    let (status, body) = team(&app, &mo).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!("Unauthorized")));
    let page = mo.get(app.url("/settings/webhooks")).send().await.unwrap();
    assert!(location(&page).starts_with("/login"), "pages send them to the login");
    let sessions: i64 = app.scalar(&format!("SELECT count(*) FROM sessions WHERE user_id = '{mo_id}'")).await;
    assert_eq!(sessions, 0);
    assert!(!location(&app.login(&app.client(), "mo@acme.test", PASSWORD).await).starts_with("/settings"));
}

#[tokio::test]
async fn a_member_sees_the_team_and_gets_403_from_every_team_change() {
    let (app, smtp) = with_smtp().await;
    let acme = app.create_account("Acme", "ada@acme.test", PASSWORD).await;
    service::accounts::create_user(&app.db, &acme.account_id, "mo@acme.test", PASSWORD, entity::Role::Member)
        .await
        .unwrap();
    let ada = logged_in(&app, "ada@acme.test").await;
    assert_eq!(invite(&app, &ada, "new@acme.test", "member").await.0, StatusCode::OK);
    smtp.wait_for(1).await;
    let mo = logged_in(&app, "mo@acme.test").await;
    let (ada_id, inv_id): (String, String) =
        (user_id(&app, "ada@acme.test").await, app.scalar("SELECT id FROM invitations").await);

    let (status, seen) = team(&app, &mo).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["members"].as_array().unwrap().len(), 2);
    assert_eq!(seen["invitations"], json!([]), "members do not see invitations");
    let changes = [
        ("/api/team/invite", json!({ "input": { "email": "x@acme.test", "role": "member" } })),
        ("/api/team/role", json!({ "id": ada_id, "role": "member" })),
        ("/api/team/remove", json!({ "id": ada_id })),
        ("/api/team/revoke-invite", json!({ "id": inv_id })),
    ];
    for (path, args) in changes {
        let (status, body) = call(&app, &mo, path, args).await;
        assert_eq!((status, body), (StatusCode::FORBIDDEN, json!("Forbidden")), "{path}");
    }
    let html = mo.get(app.url("/settings/team")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Only owners and admins of the account can invite"), "the notice says who can");
    assert!(!html.contains("Send invitation") && !html.contains(">Remove<"), "and no actions");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM invitations WHERE revoked_at IS NULL").await, 1);
    assert_eq!(app.scalar::<String>(&format!("SELECT role FROM users WHERE id = '{ada_id}'")).await, "owner");
}
