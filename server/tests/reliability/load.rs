//! A steady publisher: one `POST /api/v1/events` every 1/rate seconds, each its own request,
//! recording what every request got back and how long it took.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tokio::task::JoinSet;

/// The event types the publisher alternates between.
pub const TYPES: [&str; 2] = ["task.created", "task.updated"];

#[derive(Debug, Clone)]
pub enum Answer {
    /// 202: committed; the event id.
    Accepted { id: String, event_type: &'static str },
    /// Any other HTTP answer.
    Status { status: u16, body: Value, retry_after: Option<String> },
    /// No HTTP answer: connection refused or reset, or the client timeout.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub started: Instant,
    pub took: Duration,
    pub answer: Answer,
}

pub struct Publisher {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Events per second, `RELIABILITY_RATE` (default 100).
pub fn rate() -> u32 {
    std::env::var("RELIABILITY_RATE").ok().and_then(|r| r.parse().ok()).unwrap_or(100)
}

impl Publisher {
    pub fn start(base_url: String, api_key: String, per_second: u32) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        let (flag, sink) = (stop.clone(), outcomes.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut requests = JoinSet::new();
            let mut n: u64 = 0;
            while !flag.load(Ordering::SeqCst) {
                tick.tick().await;
                let event_type = TYPES[(n % TYPES.len() as u64) as usize];
                let body = json!({ "type": event_type, "data": { "object": { "id": format!("tsk_{n}"), "seq": n } } });
                let request = client.post(format!("{base_url}/api/v1/events")).bearer_auth(&api_key).json(&body);
                let sink = sink.clone();
                requests.spawn(async move {
                    let started = Instant::now();
                    let answer = send(request, event_type).await;
                    sink.lock().unwrap().push(Outcome { started, took: started.elapsed(), answer });
                });
                while requests.try_join_next().is_some() {}
                n += 1;
            }
            while requests.join_next().await.is_some() {}
        });
        Publisher { stop, outcomes, task }
    }

    pub fn accepted_count(&self) -> usize {
        self.outcomes.lock().unwrap().iter().filter(|o| matches!(o.answer, Answer::Accepted { .. })).count()
    }

    /// Waits (bounded) until `n` more events than now were accepted.
    pub async fn until_accepted_more(&self, n: usize, within: Duration) {
        let target = self.accepted_count() + n;
        let deadline = Instant::now() + within;
        while self.accepted_count() < target {
            assert!(Instant::now() < deadline, "the publisher got fewer than {n} events accepted within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops publishing and waits for the requests in flight; returns every outcome.
    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let outcomes = self.outcomes.lock().unwrap().clone();
        outcomes
    }
}

async fn send(request: reqwest::RequestBuilder, event_type: &'static str) -> Answer {
    let response = match request.send().await {
        Ok(r) => r,
        Err(err) => return Answer::Failed(err.to_string()),
    };
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = match response.json().await {
        Ok(b) => b,
        Err(err) => return Answer::Failed(format!("HTTP {status} with an unreadable body: {err}")),
    };
    if status == 202 {
        let id = body["ids"][0].as_str().unwrap_or_default().to_owned();
        return Answer::Accepted { id, event_type };
    }
    Answer::Status { status, body, retry_after }
}

/// Accepted event ids with their types, in publishing order.
pub fn accepted(outcomes: &[Outcome]) -> Vec<(String, &'static str)> {
    outcomes
        .iter()
        .filter_map(|o| match &o.answer {
            Answer::Accepted { id, event_type } => Some((id.clone(), *event_type)),
            _ => None,
        })
        .collect()
}

/// Why requests got no answer, one example per distinct reason.
pub fn failure_reasons(outcomes: &[Outcome]) -> std::collections::BTreeSet<String> {
    outcomes.iter().filter_map(|o| if let Answer::Failed(why) = &o.answer { Some(why.clone()) } else { None }).collect()
}

/// Counts of outcomes by kind: "202", "503", ..., "no answer".
pub fn tally(outcomes: &[&Outcome]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for o in outcomes {
        let key = match &o.answer {
            Answer::Accepted { .. } => "202".to_owned(),
            Answer::Status { status, .. } => status.to_string(),
            Answer::Failed(_) => "no answer".to_owned(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}
