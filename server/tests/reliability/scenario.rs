//! What the scenarios share: an account, endpoints on real HTTPS receivers, and the checks
//! "every accepted event reached every subscribed endpoint" and "only in-flight work
//! repeated".

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::{
    helpers::test_config,
    receiver::{Received, TestReceiver},
};

/// Four endpoints, two per event type, so each event goes to some endpoints and not others.
pub const LAYOUT: [&[&str]; 4] = [&["task.created"], &["task.created"], &["task.updated"], &["task.updated"]];

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Migrates `database_url` and creates an account; returns its API key and a pool for checks.
pub async fn account(database_url: &str) -> (String, PgPool) {
    let db = server::db::connect(&test_config(database_url)).await.expect("connect to the scenario database");
    server::db::migrate(&db).await.expect("migrate");
    let created = service::accounts::create_account(&db, "Acme", "ada@acme.test", "a long enough password")
        .await
        .expect("create account");
    (created.api_key, db.get_postgres_connection_pool().clone())
}

pub struct Subscriber {
    pub receiver: TestReceiver,
    pub endpoint_id: String,
    pub types: Vec<&'static str>,
    /// Requests before the first delivery (the reachability check at creation).
    skip: usize,
}

impl Subscriber {
    /// Deliveries received, by `webhook-id`, in arrival order.
    pub fn by_id(&self) -> HashMap<String, Vec<Received>> {
        let mut map: HashMap<String, Vec<Received>> = HashMap::new();
        for r in self.receiver.received().into_iter().skip(self.skip) {
            let id = r.headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            map.entry(id).or_default().push(r);
        }
        map
    }
}

pub async fn subscribe(base_url: &str, api_key: &str, layout: &[&[&'static str]]) -> Vec<Subscriber> {
    let mut subscribers = Vec::new();
    for types in layout {
        let receiver = TestReceiver::start().await;
        let res = reqwest::Client::new()
            .post(format!("{base_url}/api/v1/endpoints"))
            .bearer_auth(api_key)
            .json(&json!({ "url": receiver.url(), "event_types": types, "rate_limit": 100 }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "create endpoint: {}", res.text().await.unwrap());
        let body: Value = res.json().await.unwrap();
        let skip = receiver.received().len();
        subscribers.push(Subscriber {
            receiver,
            endpoint_id: body["id"].as_str().unwrap().to_owned(),
            types: types.to_vec(),
            skip,
        });
    }
    subscribers
}

/// The event ids each subscriber must receive.
fn expected(subscribers: &[Subscriber], accepted: &[(String, &'static str)]) -> Vec<HashSet<String>> {
    subscribers
        .iter()
        .map(|s| accepted.iter().filter(|(_, t)| s.types.contains(t)).map(|(id, _)| id.clone()).collect())
        .collect()
}

/// Waits (bounded, polling the receivers) until every accepted event reached every endpoint
/// subscribed to its type; returns how long that took.
pub async fn until_all_delivered(
    subscribers: &[Subscriber],
    accepted: &[(String, &'static str)],
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let expected = expected(subscribers, accepted);
    loop {
        let missing: Vec<usize> = subscribers
            .iter()
            .zip(&expected)
            .map(|(s, want)| {
                let got = s.by_id();
                want.iter().filter(|id| !got.contains_key(*id)).count()
            })
            .collect();
        if missing.iter().all(|m| *m == 0) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "accepted events never delivered after {within:?}, per endpoint: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded) until the database agrees: no delivery is left pending or failed.
pub async fn until_recorded(pool: &PgPool, within: Duration) {
    let started = Instant::now();
    loop {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM deliveries GROUP BY status").fetch_all(pool).await.unwrap();
        if rows.iter().all(|(status, _)| status == "delivered") {
            return;
        }
        assert!(started.elapsed() < within, "deliveries not all recorded as delivered after {within:?}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Endpoints leased by the process with this pid (worker ids are `<pid>-<random>`).
pub async fn leased_by(pool: &PgPool, pid: u32) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM endpoints WHERE lease_owner LIKE $1 AND lease_until > now()")
            .bind(format!("{pid}-%"))
            .fetch_one(pool)
            .await
            .unwrap();
    n
}

/// (endpoint id, event id) of every delivery whose success is committed.
pub async fn committed_successes(pool: &PgPool) -> HashSet<(String, String)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT endpoint_id, event_id FROM deliveries WHERE status = 'delivered'")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}

#[derive(Debug, Default)]
pub struct Repeats {
    /// Deliveries received (distinct endpoint × webhook-id).
    pub delivered: usize,
    /// Requests beyond the first per endpoint × webhook-id.
    pub resent: usize,
    /// Sent before the kill without a committed success: the work in flight (in every
    /// process: with two workers, the survivor's too).
    pub in_flight_at_kill: usize,
    /// Endpoints whose lease the killed process held when it died.
    pub leased_by_victim: i64,
}

/// Checks what arrived against the state committed when the process died (`committed`, read
/// after the kill) and returns the counts. A re-send is allowed only for a delivery that was
/// in flight: first sent before the kill and without a committed success.
///
/// `died` is when the killed process was reaped; a request it wrote just before may still be
/// read by a receiver a moment later, so arrivals up to 2 s after count as sent before the
/// kill (nobody else can send to its endpoints until its 14 s leases expire).
pub fn check_repeats(subscribers: &[Subscriber], died: Instant, committed: &HashSet<(String, String)>) -> Repeats {
    let kill_at = died + Duration::from_secs(2);
    let mut repeats = Repeats::default();
    let mut in_flight_or_just_written = 0;
    for s in subscribers {
        for (id, requests) in s.by_id() {
            repeats.delivered += 1;
            let first = &requests[0];
            let event: Value = serde_json::from_slice(&first.body).expect("a JSON payload");
            assert_eq!(event["id"], id.as_str(), "webhook-id is the event id");
            let event_type = event["type"].as_str().unwrap_or_default();
            assert!(
                s.types.contains(&event_type),
                "{} got a {event_type} event it is not subscribed to",
                s.endpoint_id
            );
            let done = committed.contains(&(s.endpoint_id.clone(), id.clone()));
            if first.at < died && !done {
                repeats.in_flight_at_kill += 1;
            }
            if first.at < kill_at && !done {
                in_flight_or_just_written += 1;
            }
            if requests.len() == 1 {
                continue;
            }
            repeats.resent += requests.len() - 1;
            assert!(!done, "{id} was re-sent to {} although its success was committed before the kill", s.endpoint_id);
            assert!(first.at < kill_at, "{id} was sent twice to {} without a crash in between", s.endpoint_id);
            assert_eq!(
                requests.len(),
                2,
                "{id} reached {} {} times; one crash allows one re-send",
                s.endpoint_id,
                requests.len()
            );
            assert!(requests.iter().all(|r| r.body == first.body), "the re-send of {id} carries the same bytes");
        }
    }
    assert!(repeats.resent <= in_flight_or_just_written, "{repeats:?}");
    repeats
}

/// Events the server committed but whose 202 the client never saw (the process died while
/// answering): delivered anyway, which is right, and reported.
pub fn unacknowledged(subscribers: &[Subscriber], accepted: &[(String, &'static str)]) -> usize {
    let known: HashSet<&String> = accepted.iter().map(|(id, _)| id).collect();
    let mut extra = HashSet::new();
    for s in subscribers {
        extra.extend(s.by_id().into_keys().filter(|id| !known.contains(id)));
    }
    extra.len()
}

/// Deliveries with more than one successful attempt recorded: each is a send repeated after
/// the first one's success was (eventually) written, which no crash explains.
pub async fn recorded_twice(pool: &PgPool) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT delivery_id FROM attempts WHERE success GROUP BY delivery_id HAVING count(*) > 1) twice",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    n
}

pub fn print_tally(label: &str, counts: &BTreeMap<String, usize>) {
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("{label}: {}", parts.join(", "));
}
