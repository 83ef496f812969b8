use std::sync::Once;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use server::{config::Config, db, startup::Application};
use service::accounts::{self, CreatedAccount};

/// The server the tests create their databases on. Never a production database: each test
/// database is named `webhooks_test_<random>` and dropped at the end of the test.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    format!("{base}/{name}")
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let name =
            format!("webhooks_test_{}", server::secrets::random_token(9).to_lowercase().replace(['-', '_'], "x"));
        let admin = Database::connect(admin_url()).await.expect("connect to the test PostgreSQL");
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
        admin.close().await.ok();
        let url = with_database(&admin_url(), &name);
        TestDatabase { name, url }
    }

    pub async fn drop_now(&self) {
        let admin = Database::connect(admin_url()).await.expect("connect to the test PostgreSQL");
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .await
            .expect("drop test database");
        admin.close().await.ok();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime; a database drop needs its own.
        let name = self.name.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(admin) = Database::connect(admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = admin.execute_unprepared(&sql).await;
                }
            });
        })
        .join()
        .ok();
    }
}

pub struct TestApp {
    pub address: String,
    /// Stops the in-process workers when dropped (they run only with `spawn_app_with_workers`).
    _stop_workers: Option<tokio::sync::oneshot::Sender<()>>,
    pub db: DatabaseConnection,
    pub database: TestDatabase,
}

pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::from_env();
    config.database_url = database_url.to_owned();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.public_url = None;
    config.secure_cookies = Some(false);
    config.db_pool_size = 5;
    // Test receivers are HTTPS servers on loopback with their own CA.
    config.allow_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    config.extra_ca = Some(crate::receiver::test_ca().pem_path.clone());
    config
}

/// Starts the real app in this process on port 0 against a fresh, migrated database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `spawn_app` with the configuration adjusted first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn(adjust, false).await
}

/// The app with its workers (dispatcher and apalis) running in this process too.
pub async fn spawn_app_with_workers(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn(adjust, true).await
}

async fn spawn(adjust: impl FnOnce(&mut Config), workers: bool) -> TestApp {
    static TRACING: Once = Once::new();
    TRACING.call_once(|| {
        // reqwest is built without a default TLS provider (STACK.md): one rustls, one ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if std::env::var("TEST_LOG").is_ok() {
            server::telemetry::init("text");
        }
    });
    let database = TestDatabase::create().await;
    let mut config = test_config(&database.url);
    adjust(&mut config);
    let db = db::connect(&config).await.expect("connect to the test database");
    db::migrate(&db).await.expect("migrate the test database");
    let app = Application::build_with_db(config, db.clone()).await.expect("build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stop = workers.then(|| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        app.spawn_workers(async move {
            let _ = rx.await;
        });
        tx
    });
    tokio::spawn(app.run_http_only());
    TestApp { address, db, database, _stop_workers: stop }
}

impl TestApp {
    /// A second server on this test's database, as another `serve` process would be (its own
    /// pools, caches and quota slices); its base URL.
    pub async fn sibling(&self) -> String {
        let config = test_config(&self.database.url);
        let db = db::connect(&config).await.expect("connect the sibling");
        let app = Application::build_with_db(config, db).await.expect("build the sibling");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_http_only());
        address
    }

    /// A browser-like client: keeps cookies, does not follow redirects (tests check them).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn create_account(&self, name: &str, email: &str, password: &str) -> CreatedAccount {
        accounts::create_account(&self.db, name, email, password).await.expect("create account")
    }

    pub async fn login(&self, client: &reqwest::Client, email: &str, password: &str) -> reqwest::Response {
        client
            .post(self.url("/login"))
            .form(&[("email", email), ("password", password), ("next", "")])
            .send()
            .await
            .expect("POST /login")
    }
}

impl TestApp {
    pub fn api(&self, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, self.url(path)).bearer_auth(key)
    }

    /// The JSON body of an API `GET` (any status: the callers assert on the body).
    pub async fn get_json(&self, key: &str, path: &str) -> serde_json::Value {
        let response = self.api(key, reqwest::Method::GET, path).send().await.expect("GET");
        response.json().await.unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get(reqwest::header::LOCATION).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Checks both signature schemes of SPEC §5 with hmac directly, not with the app's signer.
pub fn assert_signed(request: &crate::receiver::Received, secret: &str) {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;
    let header = |name: &str| {
        request.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_owned()
    };
    let body = std::str::from_utf8(&request.body).unwrap();
    // Standard Webhooks: key = base64-decoded bytes after `whsec_`, over "<id>.<t>.<body>".
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", header("webhook-id"), header("webhook-timestamp"), body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert!(header("webhook-signature").split(' ').any(|s| s == expected), "webhook-signature does not verify");
    // Stripe style: key = the secret string, over "<t>.<body>".
    let t = header("webhook-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    let x = header("x-webhook-signature");
    assert!(
        x.starts_with(&format!("t={t},")) && x.split(',').any(|p| p == expected),
        "X-Webhook-Signature does not verify: {x}"
    );
}

impl TestApp {
    /// Creates an endpoint through the API; returns (id, secret).
    pub async fn endpoint(&self, key: &str, url: &str, types: &[&str], rate_limit: i32) -> (String, String) {
        let res = self
            .api(key, reqwest::Method::POST, "/api/v1/endpoints")
            .json(&serde_json::json!({ "url": url, "event_types": types, "rate_limit": rate_limit }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let body: serde_json::Value = res.json().await.unwrap();
        (body["id"].as_str().unwrap().to_owned(), body["secret"].as_str().unwrap().to_owned())
    }

    pub async fn publish(&self, key: &str, body: serde_json::Value) -> Vec<String> {
        let res = self.api(key, reqwest::Method::POST, "/api/v1/events").json(&body).send().await.unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        let answer: serde_json::Value = res.json().await.unwrap();
        answer["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    pub async fn scalar<T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin>(
        &self,
        sql: &str,
    ) -> T {
        let (value,): (T,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.db.get_postgres_connection_pool())
            .await
            .unwrap();
        value
    }

    /// Waits (bounded, polling the database) until `sql` returns true.
    pub async fn until(&self, what: &str, sql: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.scalar::<bool>(sql).await {
            assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Health changes go nowhere: for tests that drive the recorder by hand.
pub struct NoEvents;

impl server::delivery::dispatcher::HealthEvents for NoEvents {
    fn job_for(
        &self,
        _: &str,
        _: &server::delivery::health::Change,
        _: &str,
    ) -> Option<server::delivery::record::QueuedJob> {
        None
    }
}
