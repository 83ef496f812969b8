//! CPU and memory of the server, the workers and PostgreSQL, read from /proc while a
//! scenario runs.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux everywhere).
const TICKS: f64 = 100.0;

#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Peak resident memory of the watched processes together, in MiB.
    pub peak_rss_mib: f64,
    /// Average CPU over the sampling period, in percent of one core.
    pub cpu_percent: f64,
}

/// Samples a group of processes every 250 ms until `stop` is called.
pub struct Sampler {
    done: Arc<Mutex<Option<(Usage, Usage, Usage)>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// `ours`: the server and worker pids; PostgreSQL is every process named `postgres`.
    pub fn start(ours: Vec<u32>) -> Sampler {
        let done = Arc::new(Mutex::new(None));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let out = done.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let ours_start = cpu_ticks(&ours);
            let pg_start = cpu_ticks(&postgres_pids());
            let me = vec![std::process::id()];
            let me_start = cpu_ticks(&me);
            let (mut ours_peak, mut pg_peak) = (0.0f64, 0.0f64);
            loop {
                ours_peak = ours_peak.max(rss_mib(&ours));
                pg_peak = pg_peak.max(rss_mib(&postgres_pids()));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stopped.changed() => break,
                }
            }
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let percent = |start: &HashMap<u32, u64>, now: &HashMap<u32, u64>| {
                // Processes that came and went between samples are missed; backends live long.
                let used: u64 = now.iter().map(|(pid, t)| t.saturating_sub(*start.get(pid).unwrap_or(&0))).sum();
                used as f64 / TICKS / secs * 100.0
            };
            let ours_usage = Usage { peak_rss_mib: ours_peak, cpu_percent: percent(&ours_start, &cpu_ticks(&ours)) };
            let pg_usage =
                Usage { peak_rss_mib: pg_peak, cpu_percent: percent(&pg_start, &cpu_ticks(&postgres_pids())) };
            let me_usage = Usage { peak_rss_mib: 0.0, cpu_percent: percent(&me_start, &cpu_ticks(&me)) };
            *out.lock().unwrap() = Some((ours_usage, pg_usage, me_usage));
        });
        Sampler { done, stop, task }
    }

    /// (server + workers, PostgreSQL, this bench process: load generator and receiver).
    pub async fn finish(self) -> (Usage, Usage, Usage) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.done.lock().unwrap().take().unwrap_or_default()
    }
}

fn postgres_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .collect()
}

fn cpu_ticks(pids: &[u32]) -> HashMap<u32, u64> {
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((*pid, ticks))
        })
        .collect()
}

fn rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .sum::<f64>()
        / 1024.0
}
