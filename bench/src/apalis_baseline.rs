//! The `apalis` scenario: a baseline with the end-to-end load and one apalis-postgres job per
//! delivery. apalis is in the user's stack; this shows by how much a purpose-built queue is
//! needed on the hot path.
//!
//! No `webhooks` process runs. The bench pushes the load of `e2e` (`--accounts` endpoints, 10
//! jobs per endpoint every 200 ms, open loop) into an apalis `PostgresStorage` in a fresh
//! database, one bulk push (one INSERT) per endpoint and tick, and one apalis worker in this
//! process POSTs each job's body over HTTPS to the bench receiver with `webhook-id` = the job's
//! event id. A non-2xx answer fails the job and apalis runs it again. There is no API, no
//! signing and no attempt log: queue and HTTPS only. Latency, loss by identity and the series
//! are computed as for `e2e`, from each push's scheduled tick.

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;

use crate::{
    pgstats::{self, count, psql, Snapshot},
    procstat,
    report::Row,
    stats::{self, DbState, Sent},
    Setup, E2E,
};

pub const NAME: &str =
    "apalis baseline: one apalis-postgres job per delivery (queue + HTTPS only: no API, signing or attempt log)";
const SLUG: &str = "apalis";
/// The apalis queue (`apalis.jobs.job_type`) the jobs go to.
const QUEUE: &str = "bench_delivery";
/// Jobs the worker runs at once.
const CONCURRENCY: usize = 256;
/// Jobs the worker claims per fetch (apalis' default is 10; more is kinder to apalis at 10,000/s).
const BATCH: usize = 256;
/// Connections: the pushers' pool stands for the application, the worker's for a worker
/// process (apalis' notification listener takes one more of it).
const PUSH_POOL: u32 = 16;
const WORKER_POOL: u32 = 16;
/// Unfinished pushes one endpoint may have, like the e2e load's unanswered ingest requests.
const MAX_IN_FLIGHT: usize = 16;
/// One attempt's limit, like the server's default attempt timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Jobs apalis still holds for running: pending, claimed, running, or failed with attempts left.
const QUEUED: &str = "SELECT count(*) FROM apalis.jobs WHERE status IN ('Pending', 'Queued', 'Running') \
                      OR (status = 'Failed' AND attempts < max_attempts)";

/// One delivery as an apalis job: where to POST what, and the event id it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub id: String,
    pub url: String,
    pub body: Value,
}

/// The `events` jobs one endpoint's tick pushes: events `first + 1 ..= first + events` of
/// `account`, each with its own id, to `url`.
pub fn jobs_for_tick(account: usize, url: &str, first: u64, events: usize) -> Vec<DeliveryJob> {
    (first + 1..=first + events as u64)
        .map(|n| DeliveryJob {
            id: format!("evt_{account}_{n}"),
            url: url.to_owned(),
            body: json!({ "type": "payment.succeeded", "data": { "object": { "account": account, "n": n, "amount": 4200 } } }),
        })
        .collect()
}

/// What an `apalis.jobs` row means for a delivery the receiver never acknowledged.
pub fn job_state(status: &str, attempts: i64, max_attempts: i64) -> DbState {
    match status {
        "Pending" | "Queued" | "Running" => DbState::Queued,
        "Failed" if attempts < max_attempts => DbState::Queued,
        "Failed" | "Killed" => DbState::DeadLettered,
        // `Done` without a 2xx at the receiver, or anything unknown.
        _ => DbState::Other,
    }
}

/// The job handler: one HTTPS POST; anything but 2xx fails the job.
async fn deliver(job: DeliveryJob, client: Data<reqwest::Client>) -> Result<(), BoxDynError> {
    let response =
        client.post(&job.url).header("webhook-id", &job.id).json(&job.body).timeout(ATTEMPT_TIMEOUT).send().await?;
    if !response.status().is_success() {
        return Err(format!("the receiver answered {}", response.status()).into());
    }
    Ok(())
}

/// What the pushers did.
#[derive(Debug, Default)]
struct Pushed {
    /// Pushed (committed) event id → its tick.
    sent: HashMap<String, Sent>,
    /// Jobs whose tick came during the load.
    offered: u64,
    /// Jobs whose tick came but were never pushed: `MAX_IN_FLIGHT` pushes unfinished until the end.
    unsent: u64,
    /// Jobs of pushes that failed.
    errors: u64,
    first_error: Option<String>,
}

/// The e2e shape, pushed into apalis instead of the ingest API.
async fn push_load(storage: &PostgresStorage<DeliveryJob>, urls: Vec<String>, duration: Duration) -> Pushed {
    let out = Arc::new(Mutex::new(Pushed::default()));
    let deadline = Instant::now() + duration;
    let endpoints = urls.len();
    let mut tasks = Vec::new();
    for (account, url) in urls.into_iter().enumerate() {
        let (storage, out) = (storage.clone(), out.clone());
        let offset = E2E.tick.mul_f64(account as f64 / endpoints.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut ticker = tokio::time::interval(E2E.tick);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let in_flight = Arc::new(AtomicUsize::new(0));
            let (mut n, mut pushes) = (0u64, Vec::new());
            let per_tick = E2E.events as u64;
            loop {
                let scheduled = ticker.tick().await.into_std();
                if scheduled >= deadline {
                    break;
                }
                out.lock().unwrap().offered += per_tick;
                while in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                    out.lock().unwrap().unsent += per_tick;
                    continue;
                }
                let jobs = jobs_for_tick(account, &url, n, E2E.events);
                n += per_tick;
                let (mut storage, out, in_flight) = (storage.clone(), out.clone(), in_flight.clone());
                in_flight.fetch_add(1, Ordering::Relaxed);
                pushes.push(tokio::spawn(async move {
                    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
                    // One INSERT of the tick's jobs (apalis' bulk push).
                    let pushed = storage.push_bulk(jobs).await;
                    let answered = Instant::now();
                    let mut out = out.lock().unwrap();
                    match pushed {
                        Ok(()) => {
                            for id in ids {
                                out.sent.insert(id, Sent { scheduled, answered, account });
                            }
                        }
                        Err(err) => {
                            out.errors += ids.len() as u64;
                            out.first_error.get_or_insert_with(|| err.to_string());
                        }
                    }
                    drop(out);
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }));
            }
            for p in pushes {
                let _ = p.await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(out).map(|m| m.into_inner().unwrap()).unwrap_or_default()
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The scenario's own database, dropped when the scenario ends, also on error.
struct Database {
    admin_url: String,
    name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(err) = psql(&self.admin_url, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)) {
            eprintln!("could not drop {}: {err}", self.name);
        }
    }
}

pub async fn run(setup: &Setup) -> anyhow::Result<Row> {
    println!("scenario: {NAME}");
    let admin = &setup.args.admin_url;
    let name = format!("bench_{}_{SLUG}", std::process::id());
    psql(admin, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
    psql(admin, &format!("CREATE DATABASE \"{name}\""))?;
    let database = Database { admin_url: admin.clone(), name };
    let db_url = crate::database_url(admin, &database.name);
    if setup.statements {
        psql(&db_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
    }
    let push_pool = PgPoolOptions::new().max_connections(PUSH_POOL).connect(&db_url).await?;
    let worker_pool = PgPoolOptions::new().max_connections(WORKER_POOL).connect(&db_url).await?;
    PostgresStorage::setup(&push_pool).await.context("apalis-postgres setup")?;
    let config = Config::default().queue(QUEUE).batch_size(BATCH);
    let pushing: PostgresStorage<DeliveryJob> = PostgresStorage::new(&push_pool).with_config(config.clone());
    let storage: PostgresStorage<DeliveryJob> = PostgresStorage::new(&worker_pool).with_config(config);

    let ca = reqwest::Certificate::from_pem(&std::fs::read(&setup.receiver.ca_pem)?)?;
    let client = reqwest::Client::builder().tls_certs_only([ca]).pool_max_idle_per_host(512).build()?;
    let context = WorkerContext::new(&format!("bench-apalis-{}", std::process::id()));
    let worker = WorkerBuilder::new(&context)
        .backend(storage.with_pubsub())
        .concurrency(CONCURRENCY)
        .data(client)
        .build(deliver);
    let mut worker = tokio::spawn(worker.run());
    // Should the scenario fail half-way, the worker goes with it.
    let _abort = AbortOnDrop(worker.abort_handle());

    setup.receiver.take();
    let urls: Vec<String> = (0..setup.args.accounts as u32).map(|e| setup.receiver.url(e)).collect();
    let secs = 60.0 * setup.args.scale;
    let before = Snapshot::take(&db_url, setup.statements)?;
    let backlog = pgstats::Backlog::start(db_url.clone(), QUEUED);
    // "server" here is this process: the apalis worker, the pushers and the receiver.
    let sampler = procstat::Sampler::start(vec![std::process::id()]);
    let started = Instant::now();
    let pushed = push_load(&pushing, urls, Duration::from_secs_f64(secs)).await;
    let ended = Instant::now();
    let backlog_at_end = count(&db_url, QUEUED)?;
    let mut last = (setup.receiver.ok_count(), Instant::now());
    let mut worker_ended = None;
    loop {
        if worker.is_finished() {
            worker_ended = Some(match (&mut worker).await {
                Ok(Ok(())) => "the apalis worker stopped by itself".to_owned(),
                Ok(Err(err)) => format!("the apalis worker failed: {err}"),
                Err(err) => format!("the apalis worker panicked: {err}"),
            });
            break;
        }
        if count(&db_url, QUEUED)? == 0 || ended.elapsed() > Duration::from_secs(60) {
            break;
        }
        let ok = setup.receiver.ok_count();
        if ok != last.0 {
            last = (ok, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(45) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained = started.elapsed();
    let (ours, pg, bench) = sampler.finish().await;
    // Stop the worker before counting: it lets running jobs finish and hands back what it had
    // claimed but not started, so nothing completes between reading the receiver and the queue.
    if worker_ended.is_none() {
        let _ = context.stop();
        match tokio::time::timeout(Duration::from_secs(30), &mut worker).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => worker_ended = Some(format!("the apalis worker failed on stopping: {err}")),
            Ok(Err(err)) => worker_ended = Some(format!("the apalis worker panicked: {err}")),
            Err(_) => worker_ended = Some("the apalis worker did not stop within 30 s".to_owned()),
        }
    }
    let backlog = backlog.finish().await;
    push_pool.close().await;
    worker_pool.close().await;
    let after = final_snapshot(&db_url, setup.statements)?;
    let receipts = setup.receiver.take();
    let db = unfinished_jobs(&db_url)?;
    let one = |account: usize| vec![account as u32];
    let delivered = stats::summarize(&pushed.sent, &one, &receipts, &db, (started, ended));

    let seconds = drained.as_secs() as usize + 1;
    let (first_ok, _) = stats::first_oks(&receipts);
    let deliveries = stats::per_second(first_ok.values().copied(), started, seconds);
    let accepted = stats::per_second(pushed.sent.values().map(|s| s.answered), started, seconds);
    let queued = pgstats::backlog_per_second(&backlog, started, seconds);
    let mut csv = String::from("second,pushed_jobs,deliveries,backlog\n");
    for i in 0..seconds {
        let backlog = queued[i].map_or(String::new(), |n| n.to_string());
        let _ = writeln!(csv, "{i},{},{},{backlog}", accepted[i], deliveries[i]);
    }
    std::fs::write(setup.args.out.join(format!("{SLUG}-series.csv")), csv)?;

    let mut row = Row {
        name: NAME.into(),
        offered_per_sec: Some(pushed.offered as f64 / secs),
        accepted: pushed.sent.len() as u64,
        rate: delivered.delivered_per_sec_in_window,
        per_second: stats::spread(&deliveries, 5, secs.floor() as usize),
        backlog_at_end: Some(backlog_at_end),
        attempts: Some(receipts.len() as u64),
        drained: Some(drained),
        cost: pgstats::per_unit(&before, &after, delivered.delivered + delivered.dead_lettered),
        ours,
        pg,
        bench,
        ..Row::default()
    };
    row.notes.push(format!(
        "1 worker in the bench process, concurrency {CONCURRENCY}, batch {BATCH}, pubsub; one bulk push per \
         endpoint and tick; server CPU/RSS = the bench process"
    ));
    if pushed.errors > 0 {
        let first = pushed.first_error.as_deref().unwrap_or_default();
        row.notes.push(format!("{} jobs not pushed (push failed: {first})", pushed.errors));
    }
    if pushed.unsent > 0 {
        row.notes.push(format!("{} jobs never pushed: 16 pushes unfinished until the end", pushed.unsent));
    }
    if let Some(ended) = worker_ended {
        row.notes.push(format!("**{ended}**"));
    }
    row.delivered = Some(delivered);
    drop(database);
    Ok(row)
}

/// The statistics once the bench's connections are gone (a backend reports its last counters
/// when it exits).
fn final_snapshot(db_url: &str, statements: bool) -> anyhow::Result<Snapshot> {
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(db_url, others)? > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Snapshot::take(db_url, statements)
}

/// (endpoint index, event id) → state of every job apalis has not marked done. The endpoint
/// index is the last path segment of the job's URL (`/e/{n}`).
fn unfinished_jobs(db_url: &str) -> anyhow::Result<HashMap<(u32, String), DbState>> {
    let text = psql(
        db_url,
        &format!(
            "SELECT j->>'id', j->>'url', status, attempts, max_attempts \
             FROM (SELECT convert_from(job, 'UTF8')::jsonb AS j, status, attempts, max_attempts \
                   FROM apalis.jobs WHERE job_type = '{QUEUE}' AND status <> 'Done') AS jobs"
        ),
    )?;
    let mut rows = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        let [id, url, status, attempts, max_attempts] = fields[..] else { bail!("unexpected row {line:?}") };
        let endpoint: u32 = url.rsplit('/').next().unwrap_or_default().parse().with_context(|| format!("url {url}"))?;
        let state = job_state(status, attempts.parse()?, max_attempts.parse()?);
        rows.insert((endpoint, id.to_owned()), state);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_ten_jobs_with_fresh_ids_to_its_endpoint() {
        let url = "https://localhost:1/e/7";
        let first = jobs_for_tick(7, url, 0, 10);
        let second = jobs_for_tick(7, url, 10, 10);
        assert_eq!(first.len(), 10);
        assert_eq!(first[0].id, "evt_7_1");
        assert_eq!(first[9].id, "evt_7_10");
        assert_eq!(second[0].id, "evt_7_11");
        assert!(first.iter().chain(&second).all(|j| j.url == url));
        assert_eq!(first[0].body["data"]["object"]["n"], 1);
        // Another account's ids never collide with these.
        assert!(jobs_for_tick(71, url, 0, 1)[0].id != jobs_for_tick(7, url, 10, 1)[0].id);
        assert!(jobs_for_tick(7, url, 0, 0).is_empty());
    }

    #[test]
    fn a_job_round_trips_through_apalis_json() {
        let job = &jobs_for_tick(3, "https://localhost:1/e/3", 41, 1)[0];
        let bytes = serde_json::to_vec(job).unwrap();
        let back: DeliveryJob = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(&back, job);
    }

    #[test]
    fn job_states_by_status_and_attempts_left() {
        assert_eq!(job_state("Pending", 0, 25), DbState::Queued);
        assert_eq!(job_state("Queued", 0, 25), DbState::Queued);
        assert_eq!(job_state("Running", 1, 25), DbState::Queued);
        assert_eq!(job_state("Failed", 3, 25), DbState::Queued, "apalis runs it again");
        assert_eq!(job_state("Failed", 25, 25), DbState::DeadLettered);
        assert_eq!(job_state("Killed", 1, 25), DbState::DeadLettered);
        assert_eq!(job_state("Done", 1, 25), DbState::Other, "done without a 2xx: lost");
    }
}
