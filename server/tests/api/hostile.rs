//! Hostile receivers (issue 7 item 3): a receiver that never answers, one that trickles its
//! answer a byte at a time, one that sends 10 MB, one that redirects, one that sends binary
//! junk. Each attempt must end within the attempt timeout (SPEC §6: a *total* limit, so a
//! receiver that keeps every read busy cannot stretch it), the stored body is cut at 10 KB
//! with the marker (SPEC §8), redirects are never followed, and memory stays flat.
//!
//! The receivers are raw HTTP/1.1 over TLS (the test CA), so the bytes on the wire are
//! exactly the ones scripted. A GET (the reachability check at endpoint creation) gets a
//! plain 200; POSTs (deliveries) get the hostile treatment. Every answer closes the
//! connection, and the receiver records when the client hung up.
//!
//! Run: `cargo test -p server --test api hostile -- --nocapture` (prints the figures).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::json;
use server::{
    config::parse_schedule,
    delivery::attempt::{BODY_LIMIT, TRUNCATION_MARKER},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
    sync::Notify,
};

use crate::{
    helpers::{spawn_app_with_workers, TestApp},
    receiver::{tls_acceptor, TestReceiver},
};

const PASSWORD: &str = "a long enough password";
/// Short on purpose: each hostile case costs about this long.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Scheduling, TLS setup and recording on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(900);
const TEN_MB: usize = 10 * 1024 * 1024;

#[derive(Clone, Debug)]
enum Behaviour {
    /// Reads the request, then never writes a byte.
    Hang,
    /// The status line and headers, one byte every 250 ms (a full answer would take ~20 s).
    TrickleHeaders,
    /// Headers at once announcing 1 MB, then the body one byte every 250 ms.
    TrickleBody,
    /// 200 with a 10 MB body, written as fast as the client takes it.
    Huge,
    /// A redirect to `location` with this status.
    Redirect(u16, String),
    /// 200 with NUL bytes, invalid UTF-8 and control characters in the body.
    Binary,
}

/// One delivery POST as the receiver saw it.
#[derive(Clone, Debug)]
struct Post {
    arrived: Instant,
    /// When the client closed the connection (or the answer was complete).
    closed: Option<Instant>,
    /// Response bytes the receiver managed to hand to the kernel before the client left.
    written: usize,
}

struct HostileReceiver {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
    changed: Arc<Notify>,
}

impl HostileReceiver {
    async fn start(behaviour: Behaviour) -> HostileReceiver {
        let acceptor = tls_acceptor();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (posts, changed) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Notify::new()));
        let (p, c) = (posts.clone(), changed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, behaviour, posts, changed) = (acceptor.clone(), behaviour.clone(), p.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    serve(tls, behaviour, posts, changed).await;
                });
            }
        });
        HostileReceiver { port, posts, changed }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.port)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` POSTs have arrived and the client has left each of them.
    async fn wait_closed(&self, n: usize) -> Vec<Post> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                let posts = self.posts();
                if posts.len() >= n && posts.iter().all(|p| p.closed.is_some()) {
                    return posts;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait).await.expect("the client did not finish the POSTs in time")
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: S,
    behaviour: Behaviour,
    posts: Arc<Mutex<Vec<Post>>>,
    changed: Arc<Notify>,
) {
    let Some(method) = read_request(&mut tls).await else { return };
    if method != "POST" {
        // The reachability check: any answer will do.
        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        let _ = tls.shutdown().await;
        return;
    }
    let index = {
        let mut posts = posts.lock().unwrap();
        posts.push(Post { arrived: Instant::now(), closed: None, written: 0 });
        posts.len() - 1
    };
    changed.notify_waiters();
    let (mut reader, mut writer) = tokio::io::split(tls);
    let written = Arc::new(Mutex::new(0usize));
    let answering = answer(&mut writer, &behaviour, written.clone());
    // The client hanging up ends the read: that is the moment the attempt ended for us.
    let hung_up = async {
        let mut buf = [0u8; 512];
        while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = answering => { let _ = writer.shutdown().await; }
        _ = hung_up => {}
    }
    let mut posts = posts.lock().unwrap();
    posts[index].closed = Some(Instant::now());
    posts[index].written = *written.lock().unwrap();
    drop(posts);
    changed.notify_waiters();
}

/// Reads one request head and its `content-length` body; returns the method.
async fn read_request<S: AsyncRead + Unpin>(tls: &mut S) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = tls.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = tls.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
    head.split(' ').next().map(str::to_owned)
}

async fn answer<W: AsyncWrite + Unpin>(writer: &mut W, behaviour: &Behaviour, written: Arc<Mutex<usize>>) {
    let add = |n: usize| *written.lock().unwrap() += n;
    match behaviour {
        Behaviour::Hang => std::future::pending().await,
        Behaviour::TrickleHeaders => {
            let head = format!("HTTP/1.1 200 OK\r\nx-padding: {}\r\ncontent-length: 2\r\n\r\nok", "z".repeat(40));
            trickle(writer, head.as_bytes(), &add).await;
        }
        Behaviour::TrickleBody => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1048576\r\n\r\n";
            if writer.write_all(head).await.is_ok() && writer.flush().await.is_ok() {
                add(head.len());
                trickle(writer, &vec![b'.'; 1024 * 1024], &add).await;
            }
        }
        Behaviour::Huge => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {TEN_MB}\r\nconnection: close\r\n\r\n"
            );
            if writer.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..TEN_MB / chunk.len() {
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
                add(chunk.len());
            }
        }
        Behaviour::Redirect(status, location) => {
            let head = format!(
                "HTTP/1.1 {status} Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = writer.write_all(head.as_bytes()).await;
        }
        Behaviour::Binary => {
            let mut body = b"ok\x00\x00\xff\xfe\x01\x1b[31m\xc3\x28 \xed\xa0\x80 end\x00".to_vec();
            // 20 KB of invalid UTF-8: 60 KB once each byte becomes U+FFFD.
            body.extend_from_slice(&[0xffu8; 20 * 1024]);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(&body).await;
        }
    }
    let _ = writer.flush().await;
}

async fn trickle<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8], add: &impl Fn(usize)) {
    for byte in bytes {
        if writer.write_all(std::slice::from_ref(byte)).await.is_err() || writer.flush().await.is_err() {
            return;
        }
        add(1);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The app with its workers, a 2 s attempt timeout and a retry an hour away (one attempt
/// per delivery), an account and an endpoint at `url`.
async fn app_delivering_to(url: &str) -> (TestApp, String, String) {
    let app = spawn_app_with_workers(|c| {
        c.attempt_timeout = TIMEOUT;
        c.retry_schedule = parse_schedule("1h").unwrap();
    })
    .await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let (endpoint, _) = app.endpoint(&key, url, &["task.completed"], 100).await;
    (app, key, endpoint)
}

fn event(n: usize) -> serde_json::Value {
    json!({ "type": "task.completed", "data": { "object": { "n": n } } })
}

/// The one attempt row of the first delivery.
#[derive(Debug)]
struct AttemptRow {
    status_code: Option<i32>,
    response_time_ms: i32,
    success: bool,
    error: Option<String>,
    response_body: Option<String>,
}

/// status_code, response_time_ms, success, error, response_body.
type AttemptColumns = (Option<i32>, i32, bool, Option<String>, Option<String>);

async fn attempts(app: &TestApp) -> Vec<AttemptRow> {
    app.until("an attempt is recorded", "SELECT count(*) > 0 FROM attempts").await;
    let rows: Vec<AttemptColumns> = sqlx::query_as(
        "SELECT status_code, response_time_ms, success, error, response_body FROM attempts ORDER BY attempted_at",
    )
    .fetch_all(app.db.get_postgres_connection_pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(status_code, response_time_ms, success, error, response_body)| AttemptRow {
            status_code,
            response_time_ms,
            success,
            error,
            response_body,
        })
        .collect()
}

/// The attempt ended within the timeout, measured by the app and by the receiver.
fn assert_bounded(name: &str, attempt: &AttemptRow, post: &Post) {
    let held = post.closed.unwrap() - post.arrived;
    println!(
        "hostile receiver `{name}`: attempt took {} ms (app), connection held {} ms (receiver), {} response bytes written; status {:?}, error {:?}",
        attempt.response_time_ms,
        held.as_millis(),
        post.written,
        attempt.status_code,
        attempt.error
    );
    assert!(
        attempt.response_time_ms as u128 <= (TIMEOUT + SLACK).as_millis(),
        "{name}: the attempt took {} ms",
        attempt.response_time_ms
    );
    assert!(held <= TIMEOUT + SLACK, "{name}: the client held the connection for {held:?}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_cut_off_at_the_attempt_timeout() {
    let receiver = HostileReceiver::start(Behaviour::Hang).await;
    let (app, key, _) = app_delivering_to(&receiver.url()).await;
    app.publish(&key, event(1)).await;

    let posts = receiver.wait_closed(1).await;
    let attempt = &attempts(&app).await[0];
    assert_bounded("never answers", attempt, &posts[0]);
    assert!(
        attempt.response_time_ms as u128 >= TIMEOUT.as_millis() - 100,
        "ended by the timeout, not by something else: {attempt:?}"
    );
    assert!(!attempt.success && attempt.status_code.is_none(), "{attempt:?}");
    assert!(attempt.error.as_deref().unwrap_or("").contains("Timed out"), "{attempt:?}");
    app.until("the delivery waits for its retry", "SELECT status = 'pending' AND attempt_count = 1 FROM deliveries")
        .await;
}

#[tokio::test]
async fn a_receiver_trickling_its_headers_is_cut_off_by_the_total_timeout_not_per_read() {
    let receiver = HostileReceiver::start(Behaviour::TrickleHeaders).await;
    let (app, key, _) = app_delivering_to(&receiver.url()).await;
    app.publish(&key, event(1)).await;

    let posts = receiver.wait_closed(1).await;
    let attempt = &attempts(&app).await[0];
    assert_bounded("trickles headers", attempt, &posts[0]);
    // A byte every 250 ms: a per-read timeout would never fire.
    assert!(posts[0].written >= 4, "the receiver kept every read busy: {:?}", posts[0]);
    assert!(!attempt.success && attempt.status_code.is_none(), "{attempt:?}");
    assert!(attempt.error.as_deref().unwrap_or("").contains("Timed out"), "{attempt:?}");
}

#[tokio::test]
async fn a_receiver_trickling_its_body_is_cut_off_by_the_total_timeout() {
    let receiver = HostileReceiver::start(Behaviour::TrickleBody).await;
    let (app, key, _) = app_delivering_to(&receiver.url()).await;
    app.publish(&key, event(1)).await;

    let posts = receiver.wait_closed(1).await;
    let attempt = &attempts(&app).await[0];
    assert_bounded("trickles its body", attempt, &posts[0]);
    assert!(posts[0].written >= 70, "headers plus a few body bytes: {:?}", posts[0]);
    // The 200 arrived, so the receiver acknowledged the event (SPEC §6: success = 2xx); the
    // body that never finished is noted, with what did arrive.
    assert_eq!(attempt.status_code, Some(200), "{attempt:?}");
    assert!(attempt.error.as_deref().unwrap_or("").contains("Timed out"), "{attempt:?}");
    let body = attempt.response_body.as_deref().unwrap_or("");
    assert!(!body.is_empty() && body.bytes().all(|b| b == b'.'), "the bytes that arrived are kept: {body:?}");
}

#[tokio::test]
async fn a_10_mb_answer_is_stored_cut_at_10_kb_with_the_marker() {
    let receiver = HostileReceiver::start(Behaviour::Huge).await;
    let (app, key, _) = app_delivering_to(&receiver.url()).await;
    app.publish(&key, event(1)).await;

    let posts = receiver.wait_closed(1).await;
    let attempt = &attempts(&app).await[0];
    assert_bounded("10 MB body", attempt, &posts[0]);
    assert!(attempt.success, "{attempt:?}");
    let body = attempt.response_body.as_deref().unwrap();
    assert_eq!(body.len(), BODY_LIMIT + TRUNCATION_MARKER.len());
    assert!(
        body.ends_with(TRUNCATION_MARKER) && body[..BODY_LIMIT].bytes().all(|b| b == b'x'),
        "{}",
        &body[BODY_LIMIT - 20..]
    );
    assert!(posts[0].written < TEN_MB, "the client stopped reading early: {:?}", posts[0]);
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Samples VmRSS every 2 ms on its own thread until dropped; keeps the peak.
struct PeakRss {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl PeakRss {
    fn start() -> PeakRss {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = rss_kb();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kb());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        });
        PeakRss { stop, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[tokio::test]
async fn memory_stays_flat_across_many_concurrent_10_mb_answers() {
    // 10 endpoints × 3 events: up to 10 attempts read a 10 MB answer at the same time, so
    // reading whole bodies would show as ≥ 100 MB at the peak.
    const ENDPOINTS: usize = 10;
    const EVENTS: usize = 3;
    const N: usize = ENDPOINTS * EVENTS;
    let receiver = HostileReceiver::start(Behaviour::Huge).await;
    let (app, key, _) = app_delivering_to(&receiver.url()).await;
    for _ in 1..ENDPOINTS {
        app.endpoint(&key, &receiver.url(), &["task.completed"], 100).await;
    }
    // Warm up: the first deliveries allocate the client's pools, TLS state and caches.
    app.publish(&key, event(0)).await;
    receiver.wait_closed(ENDPOINTS).await;
    app.until("the warm-up is recorded", &format!("SELECT count(*) = {ENDPOINTS} FROM attempts")).await;

    let before = rss_kb();
    let sampler = PeakRss::start();
    let started = Instant::now();
    app.publish(&key, json!({ "events": (1..=EVENTS).map(event).collect::<Vec<_>>() })).await;
    let posts = receiver.wait_closed(ENDPOINTS + N).await;
    app.until(
        "every delivery is recorded",
        &format!("SELECT count(*) = {} FROM attempts WHERE success", ENDPOINTS + N),
    )
    .await;
    let elapsed = started.elapsed();
    let peak = sampler.finish();
    let after = rss_kb();

    let written: usize = posts[ENDPOINTS..].iter().map(|p| p.written).sum();
    println!(
        "memory: {N} deliveries ({ENDPOINTS} endpoints at once) answered with 10 MB each ({} MB offered, {} MB accepted by the kernel) in {:.1} s: \
         VmRSS {} MB before, peak {} MB (+{} KB), {} MB after (+{} KB)",
        N * 10,
        written / (1024 * 1024),
        elapsed.as_secs_f64(),
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before),
        after / 1024,
        after.saturating_sub(before)
    );
    assert!(
        peak.saturating_sub(before) < 48 * 1024,
        "RSS peaked {} KB above the start over {N} 10 MB answers",
        peak - before
    );
    assert!(after.saturating_sub(before) < 16 * 1024, "RSS grew by {} KB over {N} 10 MB answers", after - before);
    let stored: i64 = app.scalar("SELECT max(length(response_body))::bigint FROM attempts").await;
    assert_eq!(stored as usize, BODY_LIMIT + TRUNCATION_MARKER.chars().count());
}

#[tokio::test]
async fn redirects_are_not_followed_and_count_as_failures() {
    let elsewhere = TestReceiver::start().await;
    for status in [301u16, 302, 307, 308] {
        let receiver = HostileReceiver::start(Behaviour::Redirect(status, elsewhere.url())).await;
        let (app, key, _) = app_delivering_to(&receiver.url()).await;
        app.publish(&key, event(1)).await;

        let posts = receiver.wait_closed(1).await;
        let attempt = &attempts(&app).await[0];
        assert_bounded(&format!("redirect {status}"), attempt, &posts[0]);
        assert_eq!(attempt.status_code, Some(i32::from(status)), "{attempt:?}");
        assert!(!attempt.success, "a {status} is a failure: {attempt:?}");
        app.until(
            "the delivery waits for its retry",
            "SELECT status = 'pending' AND attempt_count = 1 FROM deliveries",
        )
        .await;
    }
    assert!(elsewhere.received().is_empty(), "a redirect was followed: {:?}", elsewhere.received());
}

#[tokio::test]
async fn a_binary_answer_with_nul_bytes_is_recorded_readably() {
    let receiver = HostileReceiver::start(Behaviour::Binary).await;
    let (app, key, _) = app_delivering_to(&receiver.url()).await;
    app.publish(&key, event(1)).await;

    let posts = receiver.wait_closed(1).await;
    let attempt = &attempts(&app).await[0];
    assert_bounded("binary body", attempt, &posts[0]);
    assert!(attempt.success, "{attempt:?}");
    let body = attempt.response_body.as_deref().unwrap();
    assert!(body.starts_with("ok") && body.contains("end") && !body.contains('\0'), "{}", &body[..40]);
    assert!(
        body.len() <= BODY_LIMIT + TRUNCATION_MARKER.len() && body.ends_with(TRUNCATION_MARKER),
        "{} bytes stored",
        body.len()
    );
    app.until("the delivery is delivered", "SELECT status = 'delivered' FROM deliveries").await;
}

/// Hostile requests rather than receivers (found by schemathesis): an id that is not valid
/// UTF-8 once decoded and a query string that does not parse get the JSON error shape of
/// SPEC §11, not axum's plain-text 400.
#[tokio::test]
async fn undecodable_ids_and_bad_query_strings_get_json_api_errors() {
    let app = crate::helpers::spawn_app().await;
    let key = app.create_account("Acme", "ada@acme.test", PASSWORD).await.api_key;
    let cases = [
        ("/api/v1/endpoints/%FF%FE", 404, "not_found"),
        ("/api/v1/deliveries/%C3%28", 404, "not_found"),
        ("/api/v1/endpoints/ep_x/deliveries?status=bogus", 422, "invalid"),
        ("/api/v1/endpoints/ep_x/deliveries?since=yesterday", 422, "invalid"),
        // No such route: the API's JSON 404, not the dashboard's HTML page.
        ("/api/v1/endpointz", 404, "not_found"),
        ("/api/v1/endpoints/ep_x/nothing/here", 404, "not_found"),
        ("/api/v1", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let res = app.api(&key, reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json", "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
}
