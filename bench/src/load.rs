//! The load generator: each account publishes batches of events on a fixed tick through the
//! ingest API, and remembers when each accepted event's request started.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// Unanswered ingest requests one account may have.
const MAX_IN_FLIGHT: usize = 16;

#[derive(Debug, Default)]
pub struct Published {
    /// Event id → when the request that carried it started.
    pub sent: HashMap<String, Instant>,
    /// Event id → index of the account that published it.
    pub account_of: HashMap<String, usize>,
    pub offered: u64,
    pub rejected: u64,
    pub errors: u64,
}

/// Publishes `per_tick` events every `tick` for each API key, for `duration`.
pub async fn publish(
    client: &reqwest::Client,
    base: &str,
    keys: &[String],
    per_tick: usize,
    tick: Duration,
    duration: Duration,
) -> Published {
    let out = Arc::new(Mutex::new(Published::default()));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let (client, url, key, out) = (client.clone(), format!("{base}/api/v1/events"), key.clone(), out.clone());
        // Spread the accounts over the tick so requests don't all arrive at once.
        let offset = tick.mul_f64(index as f64 / keys.len().max(1) as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut ticker = tokio::time::interval(tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            let mut requests: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            // Open loop: each tick's request goes out on time whether or not the previous
            // one was answered, so a slow server shows up as latency, not as less load.
            while Instant::now() < deadline {
                ticker.tick().await;
                // Bounded: past this many unanswered requests the account waits (and offers
                // less), rather than opening connections without end.
                while in_flight.load(std::sync::atomic::Ordering::Relaxed) >= MAX_IN_FLIGHT && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let events: Vec<Value> = (0..per_tick)
                    .map(|_| {
                        n += 1;
                        json!({ "type": "payment.succeeded", "data": { "object": { "account": index, "n": n, "amount": 4200 } } })
                    })
                    .collect();
                let (client, url, key, out, in_flight) = (client.clone(), url.clone(), key.clone(), out.clone(), in_flight.clone());
                in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                requests.push(tokio::spawn(async move {
                    let started = Instant::now();
                    out_add(&out, |o| o.offered += per_tick as u64);
                    let answer = client.post(&url).bearer_auth(&key).json(&json!({ "events": events })).send().await;
                    match answer {
                        Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                            let ids = r.json::<Value>().await.map(|v| ids_of(&v)).unwrap_or_default();
                            out_add(&out, |o| {
                                for id in ids {
                                    o.sent.insert(id.clone(), started);
                                    o.account_of.insert(id, index);
                                }
                            });
                        }
                        Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => out_add(&out, |o| o.rejected += per_tick as u64),
                        _ => out_add(&out, |o| o.errors += per_tick as u64),
                    }
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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
