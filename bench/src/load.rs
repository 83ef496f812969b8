//! The load generator: each account sends a request on a fixed tick through the ingest API,
//! open loop, and remembers for each accepted event when its request was SCHEDULED to go out
//! (the tick), so time spent waiting for a free slot counts as latency.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::stats::Sent;

/// Unanswered ingest requests one account may have.
const MAX_IN_FLIGHT: usize = 16;
/// A request unanswered this long is given up (counted as an error).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What each account sends: one request per `tick`, of `events` events; `single` sends the
/// one-event form (`{type, data}`) instead of a batch (`{"events": [...]}`).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub tick: Duration,
    pub events: usize,
    pub single: bool,
}

#[derive(Debug, Default)]
pub struct Published {
    /// Accepted event id → its request.
    pub sent: HashMap<String, Sent>,
    /// Events whose tick came during the load.
    pub offered: u64,
    /// Events whose tick came but that were never sent: the account had `MAX_IN_FLIGHT`
    /// unanswered requests until the load ended.
    pub unsent: u64,
    pub accepted_requests: u64,
    /// Events refused with 429 and with 503.
    pub refused_429: u64,
    pub refused_503: u64,
    /// 429/503 answers, and how many of them carried `Retry-After`.
    pub refusals: u64,
    pub refusals_with_retry_after: u64,
    /// Events of requests that failed otherwise (other status, connection error, timeout).
    pub errors: u64,
    /// Scheduled send time → 202, per accepted request.
    pub request_latencies: Vec<Duration>,
    /// Actual send → 429/503, per refused request.
    pub refusal_times: Vec<Duration>,
}

/// Sends `shape` for each API key, for `duration`, to `base`'s ingest API.
pub async fn publish(
    client: &reqwest::Client,
    base: &str,
    keys: &[String],
    shape: Shape,
    duration: Duration,
) -> Published {
    let out = Arc::new(Mutex::new(Published::default()));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    let per_request = shape.events as u64;
    for (index, key) in keys.iter().enumerate() {
        let (client, url, key, out) = (client.clone(), format!("{base}/api/v1/events"), key.clone(), out.clone());
        // Spread the accounts over the tick so requests don't all arrive at once.
        let offset = shape.tick.mul_f64(index as f64 / keys.len().max(1) as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut ticker = tokio::time::interval(shape.tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            let mut requests: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            let in_flight = Arc::new(AtomicUsize::new(0));
            // Open loop: each tick's request goes out on time whether or not the previous
            // one was answered, so a slow server shows up as latency, not as less load.
            loop {
                // The instant the request should go out; a late tick still returns it.
                let scheduled = ticker.tick().await.into_std();
                if scheduled >= deadline {
                    break;
                }
                out_add(&out, |o| o.offered += per_request);
                // Bounded: past this many unanswered requests the account waits (its
                // requests go out late, and their latency counts from `scheduled`), rather
                // than opening connections without end.
                while in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                    out_add(&out, |o| o.unsent += per_request);
                    continue;
                }
                let events: Vec<Value> = (0..shape.events)
                    .map(|_| {
                        n += 1;
                        json!({ "type": "payment.succeeded", "data": { "object": { "account": index, "n": n, "amount": 4200 } } })
                    })
                    .collect();
                let body = if shape.single { events[0].clone() } else { json!({ "events": events }) };
                let (client, url, key, out, in_flight) =
                    (client.clone(), url.clone(), key.clone(), out.clone(), in_flight.clone());
                in_flight.fetch_add(1, Ordering::Relaxed);
                requests.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let answer =
                        client.post(&url).bearer_auth(&key).json(&body).timeout(REQUEST_TIMEOUT).send().await;
                    match answer {
                        Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                            let ids = r.json::<Value>().await.map(|v| ids_of(&v)).unwrap_or_default();
                            let answered = Instant::now();
                            out_add(&out, |o| {
                                o.accepted_requests += 1;
                                o.request_latencies.push(answered.saturating_duration_since(scheduled));
                                for id in ids {
                                    o.sent.insert(id, Sent { scheduled, answered, account: index });
                                }
                            });
                        }
                        Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                            let took = started.elapsed();
                            let retry_after = r.headers().contains_key("retry-after");
                            let too_many = r.status().as_u16() == 429;
                            out_add(&out, |o| {
                                if too_many {
                                    o.refused_429 += per_request;
                                } else {
                                    o.refused_503 += per_request;
                                }
                                o.refusals += 1;
                                o.refusals_with_retry_after += u64::from(retry_after);
                                o.refusal_times.push(took);
                            });
                        }
                        _ => out_add(&out, |o| o.errors += per_request),
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }));
            }
            for r in requests {
                let _ = r.await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(out).map(|m| m.into_inner().unwrap()).unwrap_or_default()
}

fn out_add(out: &Arc<Mutex<Published>>, f: impl FnOnce(&mut Published)) {
    f(&mut out.lock().unwrap());
}

/// The ids of a 202 answer: `{"ids":[...]}` or `{"id":...}`.
fn ids_of(v: &Value) -> Vec<String> {
    if let Some(ids) = v.get("ids").and_then(Value::as_array) {
        return ids.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
    }
    if let Some(events) = v.get("events").and_then(Value::as_array) {
        return events.iter().filter_map(|e| e.get("id").and_then(Value::as_str).map(str::to_owned)).collect();
    }
    v.get("id").and_then(Value::as_str).map(|s| vec![s.to_owned()]).unwrap_or_default()
}
