//! Configuration, parsed once from the environment (SPEC §11). Every field documents its
//! variable and default; the README's table is the same list.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(no_binary_name = false)]
pub struct Config {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/webhooks")]
    pub database_url: String,

    /// Address the dashboard and API listen on. Port 0 picks a free port.
    #[arg(long, env = "WEBHOOKS_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The URL users reach the dashboard at, used in emails. Defaults to http://<listen>.
    #[arg(long, env = "WEBHOOKS_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Delays between attempts after a failed first attempt, e.g. `1m,5m,30m,2h,24h`.
    #[arg(long, env = "WEBHOOKS_RETRY_SCHEDULE", default_value = "1m,5m,30m,2h,24h",
          value_parser = parse_schedule)]
    pub retry_schedule: RetrySchedule,

    /// Hosts or CIDRs exempt from the SSRF guard, comma-separated (tests, local development).
    #[arg(long, env = "WEBHOOKS_ALLOW_HOSTS", default_value = "", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,

    /// A PEM CA bundle trusted for webhook targets besides the system roots.
    #[arg(long, env = "WEBHOOKS_EXTRA_CA")]
    pub extra_ca: Option<PathBuf>,

    /// SMTP server for notification emails, e.g. `smtp://127.0.0.1:2525`. Unset: emails are
    /// written to the log and to `WEBHOOKS_MAIL_DIR`.
    #[arg(long, env = "WEBHOOKS_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// Where emails go when no SMTP server is configured.
    #[arg(long, env = "WEBHOOKS_MAIL_DIR", default_value = ".data/mail")]
    pub mail_dir: PathBuf,

    /// How long delivery attempts are kept.
    #[arg(long, env = "WEBHOOKS_LOG_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub log_retention: Duration,

    /// Share of one database backend's time that log retention may take, above 0 and at most
    /// 1: after each batch of deletes it waits so that its batches fill this share of the run
    /// (`retention.rs`). At 10,000 deliveries/s an hour's expiry is ~340 s of deletes, so 0.25
    /// spreads it over ~23 minutes of each hour instead of a burst beside the hot path. 1
    /// deletes flat out.
    #[arg(long, env = "WEBHOOKS_RETENTION_SHARE", default_value = "0.25", value_parser = parse_pace)]
    pub retention_share: crate::retention::Pace,

    /// How long a login lasts.
    #[arg(long, env = "WEBHOOKS_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// Send the session cookie with `Secure`. Defaults to on when the public URL is https.
    #[arg(long, env = "WEBHOOKS_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,

    /// 32-byte key (base64) to encrypt webhook secrets at rest. Unset: stored in clear.
    #[arg(long, env = "WEBHOOKS_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// The built site (cargo-leptos output): `pkg/` with the wasm, JS and CSS.
    #[arg(long, env = "WEBHOOKS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Total time limit of one delivery attempt (SPEC §6).
    #[arg(long, env = "WEBHOOKS_ATTEMPT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub attempt_timeout: Duration,

    /// Endpoints one worker process sends to at the same time; 0 runs no dispatcher in this
    /// process (`serve` beside separate `worker` processes).
    #[arg(long, env = "WEBHOOKS_DISPATCH_CONCURRENCY", default_value_t = 256)]
    pub dispatch_concurrency: usize,

    /// Attempts to one endpoint sent before the earliest of them is committed: the most a
    /// crash can make that endpoint receive twice, and what keeps a burst to one endpoint from
    /// waiting for a commit every few sends. 32: with 8, a 100-event burst to one endpoint
    /// waited for a dozen commits and its p95 was 1.2-1.3 s; with 32, 0.4-0.8 s (BENCHMARKS.md).
    #[arg(long, env = "WEBHOOKS_DISPATCH_MAX_UNCOMMITTED", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub dispatch_max_uncommitted: u16,

    /// Vacuum the delivery queue from the delivering processes once its dead rows outnumber
    /// the live ones (`queue_vacuum`): on by default, since autovacuum's naptime lets a
    /// minute of them pile up, and it may be off altogether. `false` where autovacuum is tuned
    /// for the queue (`autovacuum_naptime` of a second or so). The planner's estimate of the
    /// queue is watched either way.
    #[arg(long, env = "WEBHOOKS_QUEUE_VACUUM", default_value_t = true, action = clap::ArgAction::Set)]
    pub queue_vacuum: bool,

    /// Sender of notification emails.
    #[arg(long, env = "WEBHOOKS_MAIL_FROM", default_value = "Webhooks <webhooks@localhost>")]
    pub mail_from: String,

    /// Maximum connections in the PostgreSQL pool of this process.
    #[arg(long, env = "WEBHOOKS_DB_POOL_SIZE", default_value_t = 20)]
    pub db_pool_size: u32,

    /// Ingest requests handled at once; past it they are refused with 503 and Retry-After.
    /// Each request waits for its group commit (one WAL flush), so this over that wait is the
    /// most requests per second a process accepts: 256 capped single-event ingest at ~3,000/s
    /// (BENCHMARKS.md). Bodies in flight are held in memory: up to this × the body limit.
    #[arg(long, env = "WEBHOOKS_INGEST_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub ingest_max_in_flight: usize,

    /// Refuse events while delivery is behind (the two settings below); `false` queues
    /// everything that passes the quota, however far behind delivery is.
    #[arg(long, env = "WEBHOOKS_INGEST_ADMIT_BY_CAPACITY", default_value_t = true, action = clap::ArgAction::Set)]
    pub ingest_admit_by_capacity: bool,

    /// While the due deliveries are more than this much of the delivery rate measured lately,
    /// the accounts with the most due are refused (503 `overloaded`) until the rest fit
    /// (`ingest/admission.rs`).
    #[arg(long, env = "WEBHOOKS_INGEST_MAX_LAG", default_value = "2s", value_parser = parse_duration)]
    pub ingest_max_lag: Duration,

    /// Due deliveries below which ingest never refuses for capacity (before the delivery rate
    /// has been measured, say).
    #[arg(long, env = "WEBHOOKS_INGEST_ADMIT_FLOOR", default_value_t = 5000)]
    pub ingest_admit_floor: u64,

    /// Bearer token `GET /metrics` requires; unset: /metrics is open (keep it off the internet).
    #[arg(long, env = "WEBHOOKS_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Where a `worker` process serves its own `/metrics`; unset: it serves nothing.
    #[arg(long, env = "WEBHOOKS_WORKER_METRICS_LISTEN")]
    pub worker_metrics_listen: Option<std::net::SocketAddr>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "WEBHOOKS_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// The delays of SPEC §6 after a failed first attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

/// A setting that should be a duration and is not; clap prints it under the setting's name.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not a duration like 500ms, 30s, 5m, 2h or 30d: {reason}")]
pub struct DurationError {
    input: String,
    reason: humantime::DurationError,
}

pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(s.trim()).map_err(|reason| DurationError { input: s.to_owned(), reason })
}

/// A setting that should be a share of one backend (`WEBHOOKS_RETENTION_SHARE`) and is not.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not a share of one backend: give a number above 0 and at most 1, like 0.25")]
pub struct ShareError {
    input: String,
}

pub fn parse_pace(s: &str) -> Result<crate::retention::Pace, ShareError> {
    s.trim().parse::<f64>().ok().and_then(crate::retention::Pace::new).ok_or_else(|| ShareError { input: s.to_owned() })
}

pub fn parse_schedule(s: &str) -> Result<RetrySchedule, DurationError> {
    let delays =
        s.split(',').filter(|part| !part.trim().is_empty()).map(parse_duration).collect::<Result<Vec<_>, _>>()?;
    Ok(RetrySchedule(delays))
}

impl Config {
    /// Defaults and environment only, no command-line arguments.
    pub fn from_env() -> Self {
        Config::parse_from(["webhooks"])
    }

    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Connections of ingest's own pool: its group commit runs one statement at a time, and
    /// requests that carry an idempotency key each hold one for their transaction.
    pub fn ingest_pool_size(&self) -> u32 {
        (self.db_pool_size / 4).max(2)
    }

    /// Connections of the dispatcher's own pool (claims, fetches, the recorder).
    pub fn dispatch_pool_size(&self) -> u32 {
        (self.db_pool_size / 2).max(2)
    }

    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies.unwrap_or_else(|| self.public_url().starts_with("https://"))
    }
}

/// The default clap gives an argument when its flag and environment variable are unset.
#[cfg(test)]
pub(crate) fn default_of(id: &str) -> String {
    use clap::CommandFactory;
    let command = Config::command();
    let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap_or_else(|| panic!("no argument {id}"));
    arg.get_default_values()[0].to_str().unwrap().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_defaults_are_the_specs() {
        let schedule = parse_schedule(&default_of("retry_schedule")).unwrap();
        let secs: Vec<u64> = schedule.0.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![60, 300, 1800, 7200, 86400], "SPEC §6: 1m, 5m, 30m, 2h, 24h");
        assert_eq!(parse_duration(&default_of("attempt_timeout")).unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration(&default_of("log_retention")).unwrap(), Duration::from_secs(30 * 24 * 3600));
        assert_eq!(default_of("listen"), "127.0.0.1:3000", "SPEC §11");
    }

    #[test]
    fn a_drain_must_be_allowed_one_uncommitted_send() {
        let parse = |n: &str| Config::try_parse_from(["webhooks", "--dispatch-max-uncommitted", n]);
        assert!(parse("0").is_err_and(|e| e.to_string().contains("0 is not in 1..")), "0 would never send");
        assert_eq!(parse("8").unwrap().dispatch_max_uncommitted, 8);
        assert_eq!(Config::parse_from(["webhooks"]).dispatch_max_uncommitted, 32, "the default BENCHMARKS.md measured");
    }

    #[test]
    fn the_queue_vacuum_is_on_unless_turned_off() {
        assert!(Config::parse_from(["webhooks"]).queue_vacuum);
        assert!(!Config::parse_from(["webhooks", "--queue-vacuum", "false"]).queue_vacuum);
    }

    #[test]
    fn retention_takes_a_quarter_of_a_backend_unless_told_otherwise() {
        assert_eq!(Config::parse_from(["webhooks"]).retention_share.share(), 0.25);
        let parse = |s: &str| Config::try_parse_from(["webhooks", "--retention-share", s]);
        assert_eq!(parse("1").unwrap().retention_share, crate::retention::Pace::UNPACED);
        let err = parse("0").unwrap_err().to_string();
        assert!(err.contains("`0`") && err.contains("above 0 and at most 1"), "{err}");
    }

    #[test]
    fn schedules_accept_milliseconds_and_spaces() {
        let s = parse_schedule("250ms, 1s ,2s").unwrap();
        assert_eq!(s.0, vec![Duration::from_millis(250), Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(parse_schedule("").unwrap().0, Vec::<Duration>::new());
    }

    #[test]
    fn a_bad_duration_names_the_culprit() {
        let err = parse_schedule("1m,soon").unwrap_err().to_string();
        assert!(err.contains("`soon`") && err.contains("like 500ms"), "{err}");
    }

    #[test]
    fn cookies_are_secure_exactly_when_served_over_https() {
        let mut c = Config::parse_from(["webhooks", "--listen", "127.0.0.1:3000"]);
        c.public_url = None;
        c.secure_cookies = None;
        assert!(!c.secure_cookies());
        c.public_url = Some("https://hooks.example.com/".into());
        assert!(c.secure_cookies());
        assert_eq!(c.public_url(), "https://hooks.example.com");
    }
}
