//! `webhooks-bench`: drives the release `webhooks` binary with real load on loopback and
//! prints a report (issue 6, SPEC §12). Run through `bench/run.sh`, which builds first.
//!
//! Every scenario gets a fresh database cloned from a template that holds the accounts and
//! endpoints (creating 400 endpoints through the API takes longer than the scenarios do).

mod load;
mod procstat;
mod receiver;
mod report;
mod stats;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

use crate::{receiver::Receiver, report::Row};

#[derive(Debug, Parser)]
#[command(about = "Load the webhooks server on loopback and report throughput, latency, loss and duplicates")]
struct Args {
    /// The `webhooks` binary to measure.
    #[arg(long, default_value = "target/release/webhooks")]
    bin: PathBuf,
    /// PostgreSQL to create the bench databases in (dropped afterwards).
    #[arg(long, env = "BENCH_DATABASE_ADMIN_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Scenarios to run, comma-separated: ingest, e2e, fanout, flaky, scaleout.
    #[arg(long, default_value = "ingest,e2e,fanout,flaky,scaleout", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Multiplies every load duration (0.2 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Accounts (one endpoint each) of the end-to-end load; each publishes 50 events/s.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Where logs and the report go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
}

/// Each account's share of the end-to-end load: half the default endpoint rate limit.
const PER_ACCOUNT_PER_SEC: usize = 50;
const TICK: Duration = Duration::from_millis(200);
const FAN_OUT_ENDPOINTS: u32 = 200;
const FAN_OUT_BASE: u32 = 10_000;
/// The flaky scenario's retry schedule: SPEC §6's five retries, in seconds.
const FLAKY_SCHEDULE: &str = "1s,2s,4s,8s,16s";
const PASSWORD: &str = "bench-password-not-secret";

struct Setup {
    args: Args,
    receiver: Receiver,
    template: String,
    e2e_keys: Vec<String>,
    fanout_key: String,
    ingest_key: String,
    client: reqwest::Client,
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
        setup.e2e_keys.len() + 2,
        started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    for name in setup.args.scenarios.clone() {
        let row = match name.as_str() {
            "ingest" => ingest(&setup).await?,
            "e2e" => end_to_end(&setup, "end-to-end", 0, 60.0).await?,
            "fanout" => fan_out(&setup).await?,
            "flaky" => flaky(&setup).await?,
            "scaleout" => {
                rows.push(end_to_end(&setup, "scale-out, 1 worker process", 1, 30.0).await?);
                end_to_end(&setup, "scale-out, 2 worker processes", 2, 30.0).await?
            }
            other => bail!("unknown scenario {other}; choose from ingest, e2e, fanout, flaky, scaleout"),
        };
        rows.push(row);
    }
    let text = report::render(&rows, started.elapsed());
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
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;

    // Accounts through the CLI, a few at a time (each hashes a password with argon2).
    let total = args.accounts + 2;
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
    let e2e_keys: Vec<String> = accounts[..args.accounts].iter().map(key).collect();
    let fanout_key = key(&accounts[args.accounts]);
    let ingest_key = key(&accounts[args.accounts + 1]);
    let ingest_account = accounts[args.accounts + 1]["account_id"].as_str().unwrap_or_default().to_owned();

    let server = Server::start(&args, &receiver, &db_url, &[], "serve", None)?;
    server.wait_ready(&client).await?;
    let base = server.base();
    let mut creates: Vec<(String, u32)> = e2e_keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u32)).collect();
    creates.extend((0..FAN_OUT_ENDPOINTS).map(|i| (fanout_key.clone(), FAN_OUT_BASE + i)));
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
    // The ingest scenario measures the platform, not one account's quota.
    psql(&db_url, &format!("UPDATE accounts SET ingest_rate_limit = 1000000 WHERE id = '{ingest_account}'"))?;
    Ok(Setup { args, receiver, template, e2e_keys, fanout_key, ingest_key, client })
}

/// Batched ingest alone: concurrent clients post batches of 1,000 events for 30 s to an
/// account with no endpoints; accepted = committed (202).
async fn ingest(setup: &Setup) -> anyhow::Result<Row> {
    let secs = 30.0 * setup.args.scale;
    let run = Scenario::start(setup, "ingest", 0, None).await?;
    let sampler = procstat::Sampler::start(run.pids());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let batch: Vec<Value> = (0..1000)
        .map(|n| json!({ "type": "payment.succeeded", "data": { "object": { "n": n, "amount": 4200 } } }))
        .collect();
    let body = Arc::new(serde_json::to_vec(&json!({ "events": batch }))?);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, url, key, body) = (
            setup.client.clone(),
            format!("{}/api/v1/events", run.server.base()),
            setup.ingest_key.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                let r = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.as_ref().clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => accepted += 1000,
                    _ => failed += 1000,
                }
            }
            (accepted, failed)
        }));
    }
    let (mut accepted, mut failed) = (0, 0);
    for t in tasks {
        let (a, f) = t.await?;
        accepted += a;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ours, pg, bench) = sampler.finish().await;
    let stored: u64 = psql(&run.db_url, "SELECT count(*) FROM events")?.trim().parse()?;
    run.finish()?;
    if stored != accepted {
        bail!("ingest: {accepted} events were accepted but {stored} are stored");
    }
    Ok(Row::ingest(accepted as f64 / elapsed, accepted, failed, ours, pg, bench))
}

async fn end_to_end(setup: &Setup, name: &str, workers: usize, secs: f64) -> anyhow::Result<Row> {
    let keys = setup.e2e_keys.clone();
    let fan_out = move |account: usize| vec![account as u32];
    run_load(setup, name, workers, None, &keys, PER_ACCOUNT_PER_SEC, secs * setup.args.scale, 0.0, &fan_out).await
}

async fn fan_out(setup: &Setup) -> anyhow::Result<Row> {
    let fan_out = |_: usize| (0..FAN_OUT_ENDPOINTS).map(|i| FAN_OUT_BASE + i).collect();
    let keys = vec![setup.fanout_key.clone()];
    run_load(setup, "fan-out, 1 account × 200 endpoints", 0, None, &keys, 50, 30.0 * setup.args.scale, 0.0, &fan_out)
        .await
}

async fn flaky(setup: &Setup) -> anyhow::Result<Row> {
    let keys: Vec<String> = setup.e2e_keys.iter().take(20).cloned().collect();
    let fan_out = |account: usize| vec![account as u32];
    let name = "flaky receiver (30 % fail), 20 accounts";
    run_load(setup, name, 0, Some(FLAKY_SCHEDULE), &keys, PER_ACCOUNT_PER_SEC, 30.0 * setup.args.scale, 0.3, &fan_out)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn run_load(
    setup: &Setup,
    name: &str,
    workers: usize,
    schedule: Option<&str>,
    keys: &[String],
    per_sec: usize,
    secs: f64,
    failure_share: f64,
    fan_out: &dyn Fn(usize) -> Vec<u32>,
) -> anyhow::Result<Row> {
    let run = Scenario::start(setup, name, workers, schedule).await?;
    setup.receiver.take();
    setup.receiver.set_failure_share(failure_share);
    let sampler = procstat::Sampler::start(run.pids());
    let per_tick = (per_sec as f64 * TICK.as_secs_f64()).round() as usize;
    let started = Instant::now();
    let published =
        load::publish(&setup.client, &run.server.base(), keys, per_tick, TICK, Duration::from_secs_f64(secs)).await;
    let ended = Instant::now();
    // Drain: wait until nothing is pending (retries included), or give up after a while.
    // Bounded so the whole bench stays well under 25 minutes; what is still queued then is
    // reported as such, not as lost.
    let limit = if failure_share > 0.0 { Duration::from_secs(120) } else { Duration::from_secs(60) };
    let mut last = (setup.receiver.ok_count(), Instant::now());
    loop {
        let pending: u64 =
            psql(&run.db_url, "SELECT count(*) FROM deliveries WHERE status = 'pending'")?.trim().parse()?;
        if pending == 0 || ended.elapsed() > limit {
            break;
        }
        let ok = setup.receiver.ok_count();
        if ok != last.0 {
            last = (ok, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(45) && failure_share == 0.0 {
            break; // no progress at all: report what is stuck rather than wait
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = started.elapsed();
    let (ours, pg, bench) = sampler.finish().await;
    // Stop sending before counting (SIGTERM: in-flight attempts finish and are recorded), so
    // nothing completes between reading the receiver and reading the queue.
    run.stop_processes();
    setup.receiver.set_failure_share(0.0);
    let receipts = setup.receiver.take();
    let account_of = &published.account_of;
    let endpoints_of = |id: &str| account_of.get(id).map(|a| fan_out(*a)).unwrap_or_default();
    let delivered = stats::summarize(&published.sent, &endpoints_of, &receipts, (started, ended));
    let dead: u64 = psql(&run.db_url, "SELECT count(*) FROM deliveries WHERE status = 'failed'")?.trim().parse()?;
    let queued: u64 = psql(&run.db_url, "SELECT count(*) FROM deliveries WHERE status = 'pending'")?.trim().parse()?;
    let attempts = receipts.len() as u64;
    run.finish()?;
    let offered_per_sec =
        published.offered as f64 * fan_out(0).len() as f64 / ended.duration_since(started).as_secs_f64();
    let mut row = Row::delivery(
        name,
        offered_per_sec,
        published.sent.len() as u64,
        &delivered,
        (dead, queued),
        attempts,
        drained,
        [ours, pg, bench],
    );
    if published.rejected + published.errors > 0 {
        row.note(format!("{} events refused with 429, {} failed", published.rejected, published.errors));
    }
    Ok(row)
}

/// A fresh database cloned from the template, with `serve` (and `workers` worker processes)
/// running against it.
struct Scenario {
    db_name: String,
    db_url: String,
    admin_url: String,
    server: Server,
    workers: Vec<Server>,
}

impl Scenario {
    async fn start(setup: &Setup, name: &str, workers: usize, schedule: Option<&str>) -> anyhow::Result<Scenario> {
        println!("scenario: {name}");
        let slug: String =
            name.chars().filter(|c| c.is_ascii_alphanumeric()).take(24).collect::<String>().to_lowercase();
        let db_name = format!("bench_{}_{slug}", std::process::id());
        let admin = &setup.args.admin_url;
        psql(admin, &format!("DROP DATABASE IF EXISTS \"{db_name}\""))?;
        psql(admin, &format!("CREATE DATABASE \"{db_name}\" TEMPLATE \"{}\"", setup.template))?;
        let db_url = database_url(admin, &db_name);
        let mut env: Vec<(&str, String)> = Vec::new();
        if let Some(s) = schedule {
            env.push(("WEBHOOKS_RETRY_SCHEDULE", s.to_owned()));
        }
        let mut serve_env = env.clone();
        if workers > 0 {
            serve_env.push(("WEBHOOKS_DISPATCH_CONCURRENCY", "0".to_owned()));
        }
        let server = Server::start(&setup.args, &setup.receiver, &db_url, &serve_env, "serve", Some(&slug))?;
        server.wait_ready(&setup.client).await?;
        let workers = (0..workers)
            .map(|i| {
                Server::start(&setup.args, &setup.receiver, &db_url, &env, "worker", Some(&format!("{slug}-worker{i}")))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Scenario { db_name, db_url, admin_url: admin.clone(), server, workers })
    }

    fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.server).chain(&self.workers).map(|s| s.child.id()).collect()
    }

    fn finish(self) -> anyhow::Result<()> {
        Ok(()) // Drop stops the processes and drops the database
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
            .env("WEBHOOKS_ALLOW_HOSTS", "127.0.0.1")
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

fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql").arg(url).args(["-Atqc", sql]).output().context("running psql")?;
    if !out.status.success() {
        bail!("psql `{sql}` failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_cli(bin: &Path, db_url: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(bin).args(args).env("DATABASE_URL", db_url).env("RUST_LOG", "warn").output()?;
    if !out.status.success() {
        bail!("webhooks {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null))
}
