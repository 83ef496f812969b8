use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use service::accounts;

use crate::helpers::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_webhooks");

fn webhooks(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the webhooks binary")
}

#[tokio::test]
async fn account_create_and_api_key_create_print_one_json_line_with_working_credentials() {
    let database = TestDatabase::create().await;
    let migrate = webhooks(&database.url, &["migrate"]);
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let out = webhooks(
        &database.url,
        &[
            "account",
            "create",
            "--name",
            "Acme",
            "--owner-email",
            "ada@acme.test",
            "--owner-password",
            "long enough pw",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let account_id = created["account_id"].as_str().unwrap();
    assert!(account_id.starts_with("acc_") && created["user_id"].as_str().unwrap().starts_with("usr_"));

    let db = sea_orm::Database::connect(&database.url).await.unwrap();
    let first_key = created["api_key"].as_str().unwrap();
    let resolved = accounts::account_for_api_key(&db, first_key).await.unwrap().unwrap();
    assert_eq!(resolved.as_str(), account_id);

    let out = webhooks(&database.url, &["api-key", "create", "--account", account_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let second_key = key["api_key"].as_str().unwrap();
    assert_ne!(second_key, first_key);
    assert_eq!(accounts::account_for_api_key(&db, second_key).await.unwrap().unwrap().as_str(), account_id);
    assert!(accounts::account_for_api_key(&db, "whk_made_up").await.unwrap().is_none());
    // SPEC §9: the list shows when a key was last used; resolving a key notes it.
    let used: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE last_used_at > now() - interval '1 minute'")
            .fetch_one(db.get_postgres_connection_pool())
            .await
            .unwrap();
    assert_eq!(used, 2, "both keys were used just now");

    // `user create` adds a user with a role to the account.
    let add = |email: &'static str| {
        let args = [
            "user",
            "create",
            "--account",
            account_id,
            "--email",
            email,
            "--role",
            "member",
            "--password",
            "long enough pw",
        ];
        webhooks(&database.url, &args)
    };
    let out = add("Mo@Acme.test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let user: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(user["user_id"].as_str().unwrap().starts_with("usr_"), "{user}");
    let mo = accounts::authenticate(&db, "mo@acme.test", "long enough pw").await.unwrap().expect("mo can log in");
    assert_eq!((mo.role.as_str(), mo.account_id.as_str()), ("member", account_id));
    let again = add("mo@acme.test");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("mo@acme.test"), "says which email is taken");
    db.close().await.ok();
}

#[tokio::test]
async fn a_bad_cli_input_fails_with_a_message_not_a_panic() {
    let database = TestDatabase::create().await;
    webhooks(&database.url, &["migrate"]);
    let out = webhooks(&database.url, &["api-key", "create", "--account", "acc_nope"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a valid account id"), "{stderr}");

    let out = webhooks(
        &database.url,
        &["account", "create", "--name", "Acme", "--owner-email", "ada", "--owner-password", "long enough pw"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an email address"));
}

#[tokio::test]
async fn the_worker_process_starts_connects_and_stops_cleanly_on_sigterm() {
    let database = TestDatabase::create().await;
    webhooks(&database.url, &["migrate"]);
    let mut child = Command::new(BIN)
        .arg("worker")
        .env("DATABASE_URL", &database.url)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = lines.by_ref().map_while(Result::ok).any(|l| l.contains("workers started"));
    assert!(started, "the worker never reported that it started");

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let stopped = lines.map_while(Result::ok).any(|l| l.contains("workers stopped"));
    let status = child.wait().unwrap();
    assert!(stopped, "no clean-stop log line");
    assert!(status.success(), "worker exited with {status}");
}
