//! `webhooks-bench`: drives the release `webhooks` binary with real load on loopback and
//! prints a report (issue 6, SPEC §12). Run through `bench/run.sh`, which builds first.
//!
//! Every scenario gets a fresh database cloned from a template that holds the accounts and
//! endpoints (creating 400 endpoints through the API takes longer than the scenarios do).
//! Endpoint URLs name the receiver `localhost`, so the server resolves a name on every
//! attempt, as in production (and `WEBHOOKS_ALLOW_HOSTS=localhost` exempts it from the SSRF
//! guard).
//!
//! Scenarios (`--scenarios`, comma-separated; durations are multiplied by `--scale`):
//! - `ingest`: batches of 1,000 events to an account without endpoints, 4 closed-loop clients, 30 s.
//! - `ingest-fanout`: 100-event requests to an account with 2 subscribed endpoints (so
//!   deliveries are written), 16 closed-loop clients, 30 s. (With 8, each client waits
//!   for its request's group commit and the machine stayed two-thirds idle: the row measured
//!   commit latency, not what ingest can take.)
//! - `ingest-single`: single-event requests, 6,000/s open loop over the 200 end-to-end accounts, 30 s.
//!   The ingest scenarios run `serve` without a dispatcher and without admission by capacity
//!   (nothing delivers, so it would refuse): they measure ingest alone.
//! - `e2e`: 200 accounts × 1 endpoint, 50 events/s each as 10-event requests every 200 ms, 60 s.
//! - `fanout`: 1 account × 200 endpoints, 50 events/s, 30 s.
//! - `flaky`: 20 accounts, the receiver fails 30 % of attempts, retries in seconds, 30 s.
//! - `overload`: the e2e shape at twice its rate (100 events/s per account), 60 s.
//! - `outage`: 20 accounts; the receiver answers 503 to everything during the 60 s load, then
//!   recovers; retries in seconds.
//! - `scaleout`: the e2e load for 30 s with 1, then 2 `worker` processes.
//! - `apalis` (only when named): the e2e load as one apalis-postgres job per delivery, run by
//!   an apalis worker in the bench process: the baseline of a general-purpose queue.
//! - `retention` (only when named): the e2e load while retention deletes `--expired` finished
//!   deliveries and their events, loaded past the retention before the server starts (its
//!   housekeeping runs at start): once paced (`WEBHOOKS_RETENTION_SHARE`'s default) and once
//!   flat out (`1`). Run it beside `e2e` to compare.
//!
//! Latency runs from each request's scheduled send time; loss is checked per (event id,
//! endpoint) against the receiver and the database; a per-second series of each delivery
//! scenario goes to `<out>/<scenario>-series.csv` (`e2e-series.csv`, `outage-series.csv`, ...).

mod apalis_baseline;
mod load;
mod pgstats;
mod pgwaits;
mod procstat;
mod receiver;
mod report;
mod stats;

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

use crate::{
    load::Shape,
    pgstats::{count, pending_query, psql, Snapshot},
    receiver::Receiver,
    report::{Refused, Row},
    stats::{DbState, Latency},
};

const SCENARIOS: &str = "ingest,ingest-fanout,ingest-single,e2e,e2e-100,fanout,flaky,overload,outage,scaleout";
/// Scenarios that run only when named.
const EXTRA_SCENARIOS: &str = "apalis,retention";

#[derive(Debug, Parser)]
#[command(about = "Load the webhooks server on loopback and report throughput, latency, loss and duplicates")]
struct Args {
    /// The `webhooks` binary to measure.
    #[arg(long, default_value = "target/release/webhooks")]
    bin: PathBuf,
    /// PostgreSQL to create the bench databases in (dropped afterwards).
    #[arg(long, env = "BENCH_DATABASE_ADMIN_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Scenarios to run, comma-separated: ingest, ingest-fanout, ingest-single, e2e, e2e-100,
    /// fanout, flaky, overload, outage, scaleout; and apalis and retention, only when named.
    #[arg(long, default_value = SCENARIOS, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Multiplies every load duration (0.2 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Accounts (one endpoint each) of the end-to-end load; each publishes 50 events/s.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Finished deliveries (each with its event) past the retention, loaded for `retention`.
    #[arg(long, default_value_t = 2_000_000)]
    expired: u64,
    /// Where logs, series and the report go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
}

/// Each account's share of the end-to-end load, 50 events/s (half the default endpoint rate
/// limit): ten events per request, five requests a second.
const E2E: Shape = Shape { tick: Duration::from_millis(200), events: 10, single: false };
/// The end-to-end rate in 100-event requests: one every two seconds per account (SPEC §12,
/// "the same with 100-event requests").
const E2E_100: Shape = Shape { tick: Duration::from_millis(2000), events: 100, single: false };
/// Twice the end-to-end rate: twenty events per request.
const OVERLOAD: Shape = Shape { tick: Duration::from_millis(200), events: 20, single: false };
/// Single-event requests, 30 a second per account (6,000/s over 200 accounts).
const SINGLE_PER_ACCOUNT_PER_SEC: f64 = 30.0;
const FAN_OUT_ENDPOINTS: u32 = 200;
const FAN_OUT_BASE: u32 = 10_000;
/// The ingest fan-out account's endpoints: each of its events becomes this many deliveries.
const INGEST_FAN_OUT_ENDPOINTS: u32 = 2;
const INGEST_FAN_OUT_BASE: u32 = 20_000;
/// The flaky scenario's retry schedule: SPEC §6's five retries, in seconds.
const FLAKY_SCHEDULE: &str = "1s,2s,4s,8s,16s";
/// The outage scenario's: SPEC §6's default (1m, 5m, 30m, 2h, 24h) with the first three read
/// in seconds, then 60 s and 120 s, so six attempts span more than the 60 s outage.
const OUTAGE_SCHEDULE: &str = "1s,5s,30s,60s,120s";
const PASSWORD: &str = "bench-password-not-secret";

struct Setup {
    args: Args,
    receiver: Receiver,
    template: String,
    e2e_keys: Vec<String>,
    fanout_key: String,
    ingest_key: String,
    ingest_fanout_key: String,
    client: reqwest::Client,
    /// `pg_stat_statements` is loaded (and created in the template).
    statements: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if !args.bin.exists() {
        bail!(
            "{} does not exist; build it with `cargo build --release -p server` (bench/run.sh does)",
            args.bin.display()
        );
    }
    for name in &args.scenarios {
        if !SCENARIOS.split(',').chain(EXTRA_SCENARIOS.split(',')).any(|s| s == name) {
            bail!("unknown scenario {name}; choose from {SCENARIOS},{EXTRA_SCENARIOS}");
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let started = Instant::now();
    let admin_url = args.admin_url.clone();
    let template = format!("bench_template_{}", std::process::id());
    let result = run(args, started).await;
    let _ = psql(&admin_url, &format!("DROP DATABASE IF EXISTS \"{template}\" WITH (FORCE)"));
    result
}

async fn run(args: Args, started: Instant) -> anyhow::Result<()> {
    let setup = prepare(args).await?;
    println!(
        "setup: template database with {} accounts ready in {:.0} s",
        setup.e2e_keys.len() + 3,
        started.elapsed().as_secs_f64()
    );
    let scale = setup.args.scale;
    let mut rows = Vec::new();
    for name in setup.args.scenarios.clone() {
        let one = |account: usize| vec![account as u32];
        let e2e_keys = &setup.e2e_keys;
        let twenty: Vec<String> = e2e_keys.iter().take(20).cloned().collect();
        let row = match name.as_str() {
            "ingest" => {
                let name = "ingest (batches of 1,000, 4 clients, no endpoints)";
                closed_loop_ingest(&setup, (name, "ingest"), &setup.ingest_key, 1000, 4, 0).await?
            }
            "ingest-fanout" => {
                let name = "ingest fan-out (100-event requests, 16 clients, 2 endpoints per event)";
                closed_loop_ingest(
                    &setup,
                    (name, "ingest-fanout"),
                    &setup.ingest_fanout_key,
                    100,
                    16,
                    INGEST_FAN_OUT_ENDPOINTS,
                )
                .await?
            }
            "ingest-single" => ingest_single(&setup).await?,
            "e2e" => run_load(&setup, Load::new(("end-to-end", "e2e"), e2e_keys, E2E, 60.0 * scale, &one)).await?,
            "e2e-100" => {
                let name = "end-to-end in 100-event requests";
                run_load(&setup, Load::new((name, "e2e-100"), e2e_keys, E2E_100, 60.0 * scale, &one)).await?
            }
            "fanout" => {
                let fan_out = |_: usize| (0..FAN_OUT_ENDPOINTS).map(|i| FAN_OUT_BASE + i).collect();
                let keys = [setup.fanout_key.clone()];
                let name = "fan-out, 1 account × 200 endpoints";
                run_load(&setup, Load::new((name, "fanout"), &keys, E2E, 30.0 * scale, &fan_out)).await?
            }
            "flaky" => {
                let name = "flaky receiver (30 % fail), 20 accounts";
                let load = Load {
                    schedule: Some(FLAKY_SCHEDULE),
                    failure_share: 0.3,
                    drain_limit: Duration::from_secs(120),
                    ..Load::new((name, "flaky"), &twenty, E2E, 30.0 * scale, &one)
                };
                run_load(&setup, load).await?
            }
            "overload" => {
                let name = "overload (e2e shape at 2 × rate: 100 events/s per account)";
                run_load(&setup, Load::new((name, "overload"), e2e_keys, OVERLOAD, 60.0 * scale, &one)).await?
            }
            "outage" => {
                let name = "receiver outage (503 to everything during the load), 20 accounts";
                let load = Load {
                    schedule: Some(OUTAGE_SCHEDULE),
                    outage: true,
                    drain_limit: Duration::from_secs(150),
                    ..Load::new((name, "outage"), &twenty, E2E, 60.0 * scale, &one)
                };
                run_load(&setup, load).await?
            }
            "scaleout" => {
                let load = |name, workers| Load { workers, ..Load::new(name, e2e_keys, E2E, 30.0 * scale, &one) };
                rows.push(run_load(&setup, load(("scale-out, 1 worker process", "scaleout-1-worker"), 1)).await?);
                run_load(&setup, load(("scale-out, 2 worker processes", "scaleout-2-workers"), 2)).await?
            }
            "retention" => {
                let load = |name, share| Load {
                    retention_share: Some(share),
                    expired: setup.args.expired,
                    ..Load::new(name, e2e_keys, E2E, 60.0 * scale, &one)
                };
                let paced = ("end-to-end while retention prunes, paced (share 0.25)", "retention-paced");
                rows.push(run_load(&setup, load(paced, "0.25")).await?);
                run_load(&setup, load(("end-to-end while retention prunes, flat out", "retention-flat"), "1")).await?
            }
            "apalis" => apalis_baseline::run(&setup).await?,
            other => bail!("unknown scenario {other}; choose from {SCENARIOS},{EXTRA_SCENARIOS}"),
        };
        rows.push(row);
    }
    let settings = pgstats::server_settings(&setup.args.admin_url)?;
    let text = format!("{settings}.\n\n{}", report::render(&rows, started.elapsed(), setup.statements));
    std::fs::write(setup.args.out.join("report.md"), &text)?;
    println!("\n{text}");
    Ok(())
}

async fn prepare(args: Args) -> anyhow::Result<Setup> {
    let receiver = Receiver::start(&args.out).await?;
    let template = format!("bench_template_{}", std::process::id());
    psql(&args.admin_url, &format!("DROP DATABASE IF EXISTS \"{template}\""))?;
    psql(&args.admin_url, &format!("CREATE DATABASE \"{template}\""))?;
    let db_url = database_url(&args.admin_url, &template);
    run_cli(&args.bin, &db_url, &["migrate"])?;
    let statements = pgstats::statements_loaded(&args.admin_url);
    if statements {
        // In our own database only; the server's configuration is left alone.
        psql(&db_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;

    // Accounts through the CLI, a few at a time (each hashes a password with argon2).
    let total = args.accounts + 3;
    let mut accounts: Vec<Value> = Vec::with_capacity(total);
    for chunk in (0..total).collect::<Vec<_>>().chunks(8) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|i| {
                let (bin, db_url, i) = (args.bin.clone(), db_url.clone(), *i);
                tokio::task::spawn_blocking(move || {
                    let email = format!("bench{i}@example.com");
                    run_cli(
                        &bin,
                        &db_url,
                        &[
                            "account",
                            "create",
                            "--name",
                            &format!("Bench {i}"),
                            "--owner-email",
                            &email,
                            "--owner-password",
                            PASSWORD,
                        ],
                    )
                })
            })
            .collect();
        for h in handles {
            accounts.push(h.await??);
        }
    }
    let key = |a: &Value| a["api_key"].as_str().unwrap_or_default().to_owned();
    let id = |a: &Value| a["account_id"].as_str().unwrap_or_default().to_owned();
    let e2e_keys: Vec<String> = accounts[..args.accounts].iter().map(key).collect();
    let fanout_key = key(&accounts[args.accounts]);
    let ingest_key = key(&accounts[args.accounts + 1]);
    let ingest_fanout_key = key(&accounts[args.accounts + 2]);
    let ingest_accounts = [id(&accounts[args.accounts + 1]), id(&accounts[args.accounts + 2])];

    let server = Server::start(&args, &receiver, &db_url, &[], "serve", None)?;
    server.wait_ready(&client).await?;
    let base = server.base();
    let mut creates: Vec<(String, u32)> = e2e_keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u32)).collect();
    creates.extend((0..FAN_OUT_ENDPOINTS).map(|i| (fanout_key.clone(), FAN_OUT_BASE + i)));
    creates.extend((0..INGEST_FAN_OUT_ENDPOINTS).map(|i| (ingest_fanout_key.clone(), INGEST_FAN_OUT_BASE + i)));
    for chunk in creates.chunks(16) {
        let mut handles = Vec::new();
        for (k, endpoint) in chunk {
            let body =
                json!({ "url": receiver.url(*endpoint), "event_types": ["payment.succeeded"], "rate_limit": 100 });
            let request = client.post(format!("{base}/api/v1/endpoints")).bearer_auth(k).json(&body);
            handles.push(tokio::spawn(async move { request.send().await }));
        }
        for h in handles {
            let response = h.await??;
            if !response.status().is_success() {
                bail!(
                    "creating a bench endpoint failed: {} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
        }
    }
    server.stop();
    // The ingest scenarios measure the platform, not one account's quota.
    psql(
        &db_url,
        &format!(
            "UPDATE accounts SET ingest_rate_limit = 1000000 WHERE id IN ('{}', '{}')",
            ingest_accounts[0], ingest_accounts[1]
        ),
    )?;
    Ok(Setup { args, receiver, template, e2e_keys, fanout_key, ingest_key, ingest_fanout_key, client, statements })
}

/// Ingest alone, closed loop: `clients` post requests of `events` events for 30 s to one
/// account with `endpoints` subscribed endpoints; accepted = committed (202), and each
/// accepted event must be stored with its deliveries.
async fn closed_loop_ingest(
    setup: &Setup,
    (name, slug): (&str, &str),
    key: &str,
    events: usize,
    clients: usize,
    endpoints: u32,
) -> anyhow::Result<Row> {
    let secs = 30.0 * setup.args.scale;
    let run = Scenario::start(setup, (name, slug), 0, &[], false, 0).await?;
    let before = Snapshot::take(&run.db_url, setup.statements)?;
    let sampler = procstat::Sampler::start(run.pids());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let batch: Vec<Value> = (0..events)
        .map(|n| json!({ "type": "payment.succeeded", "data": { "object": { "n": n, "amount": 4200 } } }))
        .collect();
    let body = Arc::new(serde_json::to_vec(&json!({ "events": batch }))?);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, key, body) =
            (setup.client.clone(), format!("{}/api/v1/events", run.server.base()), key.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut refused, mut failed) = (0u64, Refused::default(), 0u64);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.as_ref().clone())
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                        accepted += events as u64;
                        latencies.push(sent.elapsed());
                    }
                    Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                        if r.status().as_u16() == 429 {
                            refused.too_many += events as u64;
                        } else {
                            refused.unavailable += events as u64;
                        }
                        refused.requests += 1;
                        refused.with_retry_after += u64::from(r.headers().contains_key("retry-after"));
                    }
                    _ => failed += events as u64,
                }
            }
            (accepted, refused, failed, latencies)
        }));
    }
    let (mut accepted, mut refused, mut failed, mut latencies) = (0, Refused::default(), 0, Vec::new());
    for t in tasks {
        let (a, r, f, l) = t.await?;
        accepted += a;
        failed += f;
        refused.too_many += r.too_many;
        refused.unavailable += r.unavailable;
        refused.requests += r.requests;
        refused.with_retry_after += r.with_retry_after;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ours, pg, bench) = sampler.finish().await;
    run.stop_processes();
    let after = run.final_snapshot(setup.statements)?;
    let stored = count(&run.db_url, "SELECT count(*) FROM events")?;
    let written = count(&run.db_url, "SELECT count(*) FROM deliveries")?;
    let mut row = Row {
        name: name.into(),
        accepted,
        refused,
        rate: accepted as f64 / elapsed,
        request_latency: Some(percentiles(latencies)),
        cost: pgstats::per_unit(&before, &after, if endpoints > 0 { written } else { stored }),
        ours,
        pg,
        bench,
        ..Row::default()
    };
    if failed > 0 {
        row.notes.push(format!("{failed} events failed otherwise"));
    }
    ingest_checks(&mut row, accepted, stored, written, endpoints as u64);
    Ok(row)
}

/// Accepted = committed: every accepted event stored, with one delivery per endpoint.
fn ingest_checks(row: &mut Row, accepted: u64, stored: u64, written: u64, endpoints: u64) {
    if stored < accepted {
        row.notes.push(format!("**{} accepted events not stored**", accepted - stored));
    } else if stored > accepted {
        row.notes.push(format!("{} events stored without a 202 seen", stored - accepted));
    }
    if written != stored * endpoints {
        row.notes.push(format!("**{written} deliveries written for {stored} events × {endpoints} endpoints**"));
    } else if endpoints > 0 {
        row.notes.push(format!("{written} deliveries written"));
    }
}

fn percentiles(mut latencies: Vec<Duration>) -> [Latency; 3] {
    latencies.sort_unstable();
    [0.50, 0.95, 0.99].map(|q| stats::percentile(&latencies, 0, q))
}

/// Single-event requests, open loop, over the 200 end-to-end accounts, without a dispatcher.
async fn ingest_single(setup: &Setup) -> anyhow::Result<Row> {
    let name = "ingest single-event requests (open loop, 30/s per end-to-end account)";
    let secs = 30.0 * setup.args.scale;
    let run = Scenario::start(setup, (name, "ingest-single"), 0, &[], false, 0).await?;
    let before = Snapshot::take(&run.db_url, setup.statements)?;
    let sampler = procstat::Sampler::start(run.pids());
    let shape = Shape { tick: Duration::from_secs_f64(1.0 / SINGLE_PER_ACCOUNT_PER_SEC), events: 1, single: true };
    let started = Instant::now();
    let published =
        load::publish(&setup.client, &run.server.base(), &setup.e2e_keys, shape, Duration::from_secs_f64(secs)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (ours, pg, bench) = sampler.finish().await;
    run.stop_processes();
    let after = run.final_snapshot(setup.statements)?;
    let stored = count(&run.db_url, "SELECT count(*) FROM events")?;
    let written = count(&run.db_url, "SELECT count(*) FROM deliveries")?;
    let accepted = published.sent.len() as u64;
    let mut row = Row {
        name: name.into(),
        offered_per_sec: Some(published.offered as f64 / secs),
        accepted,
        refused: refused_of(&published),
        rate: published.accepted_requests as f64 / elapsed,
        request_latency: Some(percentiles(published.request_latencies.clone())),
        cost: pgstats::per_unit(&before, &after, written),
        ours,
        pg,
        bench,
        ..Row::default()
    };
    publish_notes(&mut row, &published);
    ingest_checks(&mut row, accepted, stored, written, 1);
    Ok(row)
}

fn refused_of(p: &load::Published) -> Refused {
    Refused {
        too_many: p.refused_429,
        unavailable: p.refused_503,
        requests: p.refusals,
        with_retry_after: p.refusals_with_retry_after,
    }
}

fn publish_notes(row: &mut Row, p: &load::Published) {
    if p.errors > 0 {
        row.notes.push(format!("{} events failed otherwise", p.errors));
    }
    if p.unsent > 0 {
        row.notes.push(format!("{} events never sent: 16 requests unanswered until the end", p.unsent));
    }
    if p.refusals > 0 {
        let mut times = p.refusal_times.clone();
        times.sort_unstable();
        row.notes.push(format!("refusals answered in p95 {}", report::latency(stats::percentile(&times, 0, 0.95))));
    }
}

/// One delivery scenario: who publishes what, for how long, and how the receiver behaves.
struct Load<'a> {
    name: &'a str,
    /// For the series file and the database: `e2e`, `outage`.
    slug: &'a str,
    keys: &'a [String],
    shape: Shape,
    secs: f64,
    /// Account index → the receiver endpoints its events fan out to.
    fan_out: &'a dyn Fn(usize) -> Vec<u32>,
    /// Separate `worker` processes (`serve` then runs no dispatcher).
    workers: usize,
    /// `WEBHOOKS_RETRY_SCHEDULE`.
    schedule: Option<&'a str>,
    /// `WEBHOOKS_RETENTION_SHARE`.
    retention_share: Option<&'a str>,
    /// Finished deliveries past the retention, loaded before the server starts.
    expired: u64,
    /// Share of attempts the receiver answers 500.
    failure_share: f64,
    /// The receiver answers 503 to everything during the load, and recovers when it ends.
    outage: bool,
    /// How long after the load to wait for the queue to drain.
    drain_limit: Duration,
}

impl<'a> Load<'a> {
    fn new(
        (name, slug): (&'a str, &'a str),
        keys: &'a [String],
        shape: Shape,
        secs: f64,
        fan_out: &'a dyn Fn(usize) -> Vec<u32>,
    ) -> Load<'a> {
        Load {
            name,
            slug,
            keys,
            shape,
            secs,
            fan_out,
            workers: 0,
            schedule: None,
            retention_share: None,
            expired: 0,
            failure_share: 0.0,
            outage: false,
            drain_limit: Duration::from_secs(60),
        }
    }
}

async fn run_load(setup: &Setup, load: Load<'_>) -> anyhow::Result<Row> {
    let mut env = Vec::new();
    if let Some(s) = load.schedule {
        env.push(("WEBHOOKS_RETRY_SCHEDULE", s.to_owned()));
    }
    if let Some(s) = load.retention_share {
        env.push(("WEBHOOKS_RETENTION_SHARE", s.to_owned()));
    }
    let run = Scenario::start(setup, (load.name, load.slug), load.workers, &env, true, load.expired).await?;
    setup.receiver.take();
    setup.receiver.set_failure_share(load.failure_share);
    setup.receiver.set_outage(load.outage);
    let retries = load.schedule.is_some();
    let before = Snapshot::take(&run.db_url, setup.statements)?;
    let pending = pending_query(&run.db_url)?;
    let backlog = pgstats::Backlog::start(run.db_url.clone(), pending);
    let wal_clock = pgstats::WalClock::start(run.db_url.clone());
    let activity = pgwaits::start(run.db_url.clone());
    let sampler = procstat::Sampler::start(run.pids());
    let duration = Duration::from_secs_f64(load.secs);
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    // The outage ends with the load's schedule, not when its last answer comes.
    let recovery = async {
        if load.outage {
            tokio::time::sleep(duration).await;
            setup.receiver.set_outage(false);
            Some(Instant::now())
        } else {
            None
        }
    };
    let base = run.server.base();
    let (published, recovered) =
        tokio::join!(load::publish(&setup.client, &base, load.keys, load.shape, duration), recovery);
    let ended = Instant::now();
    let backlog_at_end = count(&run.db_url, pending)?;
    let expired_at_end = if load.expired > 0 { Some(expired_left(&run.db_url)?) } else { None };
    // Drain: wait until nothing is pending (retries included), or give up after a while.
    // Bounded so the whole bench stays well under 25 minutes; what is still queued then is
    // reported as such, not as lost.
    let mut last = (setup.receiver.ok_count(), Instant::now());
    loop {
        let left = count(&run.db_url, pending)?;
        if left == 0 || ended.elapsed() > load.drain_limit {
            break;
        }
        let ok = setup.receiver.ok_count();
        if ok != last.0 {
            last = (ok, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(45) && !retries {
            break; // no progress at all: report what is stuck rather than wait
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained = started.elapsed();
    let (ours, pg, bench) = sampler.finish().await;
    // Stop sending before counting (SIGTERM: in-flight attempts finish and are recorded), so
    // nothing completes between reading the receiver and reading the queue.
    run.stop_processes();
    let backlog = backlog.finish().await;
    let wal_samples = wal_clock.finish().await;
    let activity = activity.finish().await;
    let after = run.final_snapshot(setup.statements)?;
    setup.receiver.set_failure_share(0.0);
    setup.receiver.set_outage(false);
    let receipts = setup.receiver.take();
    let db = undelivered_rows(&run.db_url)?;
    let delivered = stats::summarize(&published.sent, load.fan_out, &receipts, &db, (started, ended));

    // The per-second series, from the start of the load to the end of the drain.
    let seconds = drained.as_secs() as usize + 1;
    let (first_ok, _) = stats::first_oks(&receipts);
    let deliveries = stats::per_second(first_ok.values().copied(), started, seconds);
    let accepted = stats::per_second(published.sent.values().map(|s| s.answered), started, seconds);
    let pending = pgstats::backlog_per_second(&backlog, started, seconds);
    let (wal, checkpoint_began) = pgstats::wal_per_second(&wal_samples, started, started_unix, seconds);
    let inside = pgwaits::per_second(&activity, started, seconds);
    let mut csv = String::from(
        "second,accepted_events,deliveries,backlog,wal_bytes,checkpoint_began,checkpointing,dead_queue_rows,\
         maintenance,pg_waits\n",
    );
    for i in 0..seconds {
        let _ = writeln!(
            csv,
            "{i},{},{},{},{},{},{:.1},{},{},{}",
            accepted[i],
            deliveries[i],
            pending[i].map_or(String::new(), |n| n.to_string()),
            wal[i].map_or(String::new(), |n| n.to_string()),
            u8::from(checkpoint_began[i]),
            inside[i].checkpointing,
            inside[i].dead_queue_rows.map_or(String::new(), |n| n.to_string()),
            inside[i].maintenance,
            inside[i].waits,
        );
    }
    std::fs::write(setup.args.out.join(format!("{}-series.csv", run.slug)), csv)?;
    let per_second = stats::spread(&deliveries, 5, load.secs.floor() as usize);
    let accepted_per_second = stats::spread(&accepted, 5, load.secs.floor() as usize);

    let finished = delivered.delivered + delivered.dead_lettered;
    let fan = published.sent.values().next().map_or(1, |s| (load.fan_out)(s.account).len()) as f64;
    let peak_owed = stats::peak_owed(&accepted, &deliveries, fan as u64, 5, load.secs.floor() as usize);
    let mut row = Row {
        name: load.name.into(),
        offered_per_sec: Some(published.offered as f64 * fan / load.secs),
        accepted: published.sent.len() as u64,
        refused: refused_of(&published),
        rate: delivered.delivered_per_sec_in_window,
        per_second,
        accepted_per_second,
        peak_owed,
        backlog_at_end: Some(backlog_at_end),
        attempts: Some(receipts.len() as u64),
        drained: Some(drained),
        cost: pgstats::per_unit(&before, &after, finished),
        ours,
        pg,
        bench,
        ..Row::default()
    };
    publish_notes(&mut row, &published);
    if let Some((deliveries, events)) = expired_at_end {
        let (after_drain, _) = expired_left(&run.db_url)?;
        row.notes.push(format!(
            "retention: of {} expired deliveries and events, {deliveries} and {events} left at the end of the load, \
             {after_drain} deliveries after the drain",
            load.expired
        ));
    }
    if let Some(recovered) = recovered {
        let early = first_ok.values().filter(|at| **at < recovered).count();
        let share = delivered.delivered as f64 / delivered.expected.max(1) as f64 * 100.0;
        row.notes.push(format!(
            "{share:.2} % delivered after recovery, {early} 2xx before it, drained {:.0} s after recovery",
            drained.saturating_sub(recovered.duration_since(started)).as_secs_f64()
        ));
    }
    row.delivered = Some(delivered);
    Ok(row)
}

/// Finished deliveries and events older than the retention (30 days), still in the database.
fn expired_left(db_url: &str) -> anyhow::Result<(u64, u64)> {
    let old = "created_at < now() - interval '30 days'";
    Ok((
        count(db_url, &format!("SELECT count(*) FROM deliveries WHERE {old}"))?,
        count(db_url, &format!("SELECT count(*) FROM events WHERE {old}"))?,
    ))
}

/// `n` finished deliveries, each with its event, 40 days old (past the default 30-day
/// retention), spread over the endpoints; then statistics and a checkpoint, so the load starts
/// on a database the planner knows and without a checkpoint owed. The database is made to
/// look migrated long ago, as one that has run past its retention would be: the event days
/// the rows fall in are partitions of their own (made with the migration's own bound,
/// `event_day_bound`), and `events_before` ends where they begin.
fn load_expired(db_url: &str, n: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    psql(
        db_url,
        &format!(
            "CREATE TEMP TABLE eps AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, account_id FROM endpoints;
             CREATE TEMP TABLE rows AS SELECT g, eps.id AS endpoint_id, eps.account_id,
                 now() - interval '40 days' + g * interval '1 ms' AS at
               FROM generate_series(0, {n} - 1) g JOIN eps ON eps.n = g % (SELECT count(*) FROM eps);
             DO $$
             DECLARE
                 first timestamptz := date_trunc('day', (SELECT min(at) FROM rows), 'UTC');
                 last timestamptz := date_trunc('day', (SELECT max(at) FROM rows), 'UTC');
                 day timestamptz := first;
             BEGIN
                 ALTER TABLE events DETACH PARTITION events_before;
                 EXECUTE format('ALTER TABLE events ATTACH PARTITION events_before FOR VALUES FROM (MINVALUE) TO (%L)',
                                event_day_bound(first));
                 WHILE day <= last LOOP
                     EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                                    'events_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'),
                                    event_day_bound(day), event_day_bound(day + interval '1 day'));
                     day := day + interval '1 day';
                 END LOOP;
             END $$;
             -- An id of the row's millisecond, unique by its sequence number.
             ALTER TABLE rows ADD COLUMN event_id text;
             UPDATE rows SET event_id = left(event_day_bound(at), 14) || lpad(g::text, 16, '0');
             INSERT INTO events (id, account_id, event_type, payload, created_at)
               SELECT event_id, account_id, 'payment.succeeded',
                 '{{\"type\":\"payment.succeeded\",\"data\":{{\"object\":{{\"n\":' || g || ',\"amount\":4200}}}}}}', at
               FROM rows;
             INSERT INTO deliveries (id, account_id, event_id, endpoint_id, event_type, status, attempt_count,
                                     created_at, updated_at)
               SELECT 'dlv_expired' || lpad(g::text, 21, '0'), account_id, event_id,
                 endpoint_id, 'payment.succeeded', 'delivered', 1, at, at
               FROM rows;"
        ),
    )?;
    psql(db_url, "ANALYZE events")?;
    psql(db_url, "ANALYZE deliveries")?;
    psql(db_url, "CHECKPOINT")?;
    println!("  {n} expired deliveries and events loaded in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// (endpoint index, event id) → state of every delivery the database has not marked
/// delivered. The endpoint index is the last path segment of the endpoint's URL (`/e/{n}`).
fn undelivered_rows(db_url: &str) -> anyhow::Result<HashMap<(u32, String), DbState>> {
    let text = psql(
        db_url,
        "SELECT d.event_id, e.url, d.status FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id \
         WHERE d.status <> 'delivered'",
    )?;
    let mut rows = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split('|');
        let (Some(event), Some(url), Some(status)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("unexpected row {line:?}");
        };
        let endpoint: u32 = url.rsplit('/').next().unwrap_or_default().parse().with_context(|| format!("url {url}"))?;
        rows.insert((endpoint, event.to_owned()), DbState::from_status(status));
    }
    Ok(rows)
}

/// A fresh database cloned from the template, with `serve` (and `workers` worker processes)
/// running against it.
struct Scenario {
    db_name: String,
    db_url: String,
    admin_url: String,
    /// The scenario's short name, for files and the database: `e2e`, `scaleout-1-worker`.
    slug: String,
    server: Server,
    workers: Vec<Server>,
}

impl Scenario {
    /// `dispatch: false` runs `serve` without a dispatcher (the ingest scenarios).
    async fn start(
        setup: &Setup,
        (name, slug): (&str, &str),
        workers: usize,
        env: &[(&'static str, String)],
        dispatch: bool,
        expired: u64,
    ) -> anyhow::Result<Scenario> {
        println!("scenario: {name}");
        let slug = slug.to_owned();
        let db_name = format!("bench_{}_{slug}", std::process::id());
        let admin = &setup.args.admin_url;
        psql(admin, &format!("DROP DATABASE IF EXISTS \"{db_name}\""))?;
        psql(admin, &format!("CREATE DATABASE \"{db_name}\" TEMPLATE \"{}\"", setup.template))?;
        let db_url = database_url(admin, &db_name);
        if expired > 0 {
            load_expired(&db_url, expired)?;
        }
        let mut serve_env = env.to_vec();
        if workers > 0 || !dispatch {
            serve_env.push(("WEBHOOKS_DISPATCH_CONCURRENCY", "0".to_owned()));
        }
        if !dispatch {
            // Ingest alone: with nothing delivering, admission by capacity would refuse as soon
            // as the backlog passes its floor, and the scenario would measure refusals.
            serve_env.push(("WEBHOOKS_INGEST_ADMIT_BY_CAPACITY", "false".to_owned()));
        }
        let server = Server::start(&setup.args, &setup.receiver, &db_url, &serve_env, "serve", Some(&slug))?;
        server.wait_ready(&setup.client).await?;
        let workers = (0..workers)
            .map(|i| {
                Server::start(&setup.args, &setup.receiver, &db_url, env, "worker", Some(&format!("{slug}-worker{i}")))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Scenario { db_name, db_url, admin_url: admin.clone(), slug, server, workers })
    }

    /// The statistics once the server's connections are gone: a backend reports its last
    /// counters when it exits, which is a moment after the server process has.
    fn final_snapshot(&self, statements: bool) -> anyhow::Result<Snapshot> {
        let others =
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&self.db_url, others)? > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Snapshot::take(&self.db_url, statements)
    }

    fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.server).chain(&self.workers).map(|s| s.child.id()).collect()
    }
}

impl Scenario {
    fn stop_processes(&self) {
        for w in &self.workers {
            w.stop();
        }
        self.server.stop();
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.stop_processes();
        if let Err(err) = psql(&self.admin_url, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db_name)) {
            eprintln!("could not drop {}: {err}", self.db_name);
        }
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(
        args: &Args,
        receiver: &Receiver,
        db_url: &str,
        env: &[(&str, String)],
        mode: &str,
        log: Option<&str>,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let log_path = args.out.join(format!("{}.log", log.unwrap_or("setup")));
        let log_file = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(&args.bin);
        cmd.arg(mode)
            .env("DATABASE_URL", db_url)
            .env("WEBHOOKS_LISTEN", format!("127.0.0.1:{port}"))
            // The receiver is `https://localhost:…`: the guard checks the name (and every
            // address it resolves to, 127.0.0.1 and maybe ::1), so the name is what is allowed.
            .env("WEBHOOKS_ALLOW_HOSTS", "localhost")
            .env("WEBHOOKS_EXTRA_CA", &receiver.ca_pem)
            .env("WEBHOOKS_MAIL_DIR", args.out.join("mail"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("starting {} {mode}", args.bin.display()))?;
        Ok(Server { child, port })
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/readyz", self.base())).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server on port {} was not ready within 60 s", self.port)
    }

    /// SIGTERM and wait: in-flight attempts finish, as in production.
    fn stop(&self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let pid = self.child.id();
        for _ in 0..400 {
            if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn database_url(admin_url: &str, name: &str) -> String {
    match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin_url}/{name}"),
    }
}

fn run_cli(bin: &Path, db_url: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(bin).args(args).env("DATABASE_URL", db_url).env("RUST_LOG", "warn").output()?;
    if !out.status.success() {
        bail!("webhooks {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null))
}
