//! Separate `webhooks worker` processes against one database: the rate limit across
//! processes, and a worker killed with SIGKILL in the middle of an attempt.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app, TestApp},
    receiver::{test_ca, Reply, TestReceiver},
};

const BIN: &str = env!("CARGO_BIN_EXE_webhooks");
const PASSWORD: &str = "a long enough password";

struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    /// Starts `webhooks worker` and waits until its dispatcher reports that it runs.
    fn start(app: &TestApp) -> WorkerProcess {
        Self::start_with(app, &[])
    }

    fn start_with(app: &TestApp, env: &[(&str, String)]) -> WorkerProcess {
        let mut child = Command::new(BIN)
            .arg("worker")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("DATABASE_URL", &app.database.url)
            .env("WEBHOOKS_ALLOW_HOSTS", "localhost,127.0.0.1")
            .env("WEBHOOKS_EXTRA_CA", &test_ca().pem_path)
            .env("WEBHOOKS_ATTEMPT_TIMEOUT", "3s")
            .env("WEBHOOKS_MAIL_DIR", std::env::temp_dir().join("webhooks-test-mail"))
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a worker process");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("dispatcher started") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30)).expect("the worker's dispatcher did not start");
        WorkerProcess { child }
    }

    fn kill_hard(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no cleanup, the lease stays behind
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

fn event(n: u32) -> Value {
    json!({ "type": "task.updated", "data": { "object": { "id": format!("tsk_{n}") } } })
}

#[tokio::test]
async fn the_rate_limit_holds_with_two_worker_processes() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.updated"], 4).await;
    let _a = WorkerProcess::start(&app);
    let _b = WorkerProcess::start(&app);
    for wave in 0..3 {
        let events: Vec<Value> = (0..5).map(|n| event(wave * 5 + n)).collect();
        app.publish(&key, json!({ "events": events })).await;
    }
    let got = receiver.wait_for(16).await;
    let times: Vec<_> = got[1..].iter().map(|r| r.at).collect();
    for (i, t) in times.iter().enumerate() {
        let within = times[i..].iter().filter(|s| s.duration_since(*t) < Duration::from_secs(1)).count();
        assert!(within <= 4, "{within} deliveries within one second from #{i}");
    }
    let ids: std::collections::HashSet<_> = got[1..].iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(ids.len(), 15, "every event once, no duplicates");
}

#[tokio::test]
async fn a_worker_killed_mid_attempt_loses_nothing_and_resends_with_the_same_webhook_id() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.updated"], 100).await;
    receiver.script([Reply { status: 200, retry_after: None, hang: true }]);
    let mut first = WorkerProcess::start(&app);
    let ids = app.publish(&key, json!({ "events": [event(1), event(2)] })).await;

    let got = receiver.wait_for(2).await; // the check, then the attempt that hangs
    first.kill_hard();
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 0, "the killed attempt was never recorded");

    let _second = WorkerProcess::start(&app);
    let all = receiver.wait_for(4).await;
    app.until("both deliveries are delivered", "SELECT bool_and(status = 'delivered') FROM deliveries").await;
    let sent: Vec<String> = all[1..].iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned()).collect();
    assert_eq!(sent, vec![ids[0].clone(), ids[0].clone(), ids[1].clone()], "only the in-flight attempt was repeated");
    assert_eq!(got[1].body, all[2].body, "the re-send carries the same bytes");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM attempts").await, 2);
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_attempt_finish_and_releases_the_endpoint() {
    let app = spawn_app().await;
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.updated"], 100).await;
    receiver.script([Reply { status: 200, retry_after: None, hang: true }]);
    let mut worker = WorkerProcess::start(&app);
    app.publish(&key, json!({ "events": [event(1), event(2)] })).await;
    receiver.wait_for(2).await; // the attempt is in flight (and will time out after 3 s)

    let pid = worker.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = worker.child.wait().unwrap();
    assert!(status.success(), "the worker exited with {status}");
    let (attempts, leased): (i64, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM attempts), (SELECT bool_or(lease_owner IS NOT NULL) FROM endpoints)",
    )
    .fetch_one(app.db.get_postgres_connection_pool())
    .await
    .unwrap();
    assert_eq!(attempts, 1, "the in-flight attempt was finished and recorded");
    assert!(!leased, "the endpoint's lease was released");
    assert_eq!(receiver.received().len(), 2, "no new attempt was started after SIGTERM");
    assert_eq!(app.scalar::<i64>("SELECT count(*) FROM deliveries WHERE status = 'pending'").await, 2, "nothing lost");
}

#[tokio::test]
async fn a_worker_process_serves_its_own_metrics() {
    let app = spawn_app().await; // no in-process workers: the worker process does the sending
    let receiver = TestReceiver::start().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    app.endpoint(&key, &receiver.url(), &["task.updated"], 100).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _worker = WorkerProcess::start_with(&app, &[("WEBHOOKS_WORKER_METRICS_LISTEN", format!("127.0.0.1:{port}"))]);
    app.publish(&key, json!({ "events": [event(1), event(2)] })).await;
    app.until("both are delivered", "SELECT count(*) = 2 FROM deliveries WHERE status = 'delivered'").await;
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    let successes = text
        .lines()
        .find_map(|l| l.strip_prefix("webhooks_attempts_total{outcome=\"success\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(successes, Some(2.0), "the worker counted its own two attempts:\n{text}");
    assert!(text.contains("webhooks_queue_pending 0"), "{text}");
}
