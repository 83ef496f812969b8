//! The report: one row per scenario, and the SPEC §12 targets beside the figures.

use std::time::Duration;

use crate::{procstat::Usage, stats::Delivered};

pub struct Row {
    name: String,
    offered_per_sec: Option<f64>,
    accepted: u64,
    /// Events/s accepted (ingest) or deliveries/s acknowledged within the load window.
    rate: f64,
    delivered: Option<Delivered>,
    dead_lettered: u64,
    /// Still pending when the bench stopped waiting.
    queued: u64,
    attempts: u64,
    drained: Option<Duration>,
    ours: Usage,
    pg: Usage,
    bench: Usage,
    note: String,
}

impl Row {
    pub fn ingest(rate: f64, accepted: u64, failed: u64, ours: Usage, pg: Usage, bench: Usage) -> Row {
        Row {
            name: "ingest (batches of 1,000, 4 clients)".into(),
            offered_per_sec: None,
            accepted,
            rate,
            delivered: None,
            dead_lettered: 0,
            queued: 0,
            attempts: 0,
            drained: None,
            ours,
            pg,
            bench,
            note: if failed > 0 { format!("{failed} events refused") } else { String::new() },
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn delivery(
        name: &str,
        offered_per_sec: f64,
        accepted: u64,
        delivered: &Delivered,
        (dead_lettered, queued): (u64, u64),
        attempts: u64,
        drained: Duration,
        [ours, pg, bench]: [Usage; 3],
    ) -> Row {
        Row {
            name: name.into(),
            offered_per_sec: Some(offered_per_sec),
            accepted,
            rate: delivered.delivered_per_sec_in_window,
            delivered: Some(delivered.clone()),
            dead_lettered,
            queued,
            attempts,
            drained: Some(drained),
            ours,
            pg,
            bench,
            note: String::new(),
        }
    }
}

impl Row {
    pub fn note(&mut self, note: String) {
        self.note = note;
    }
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

pub fn render(rows: &[Row], total: Duration) -> String {
    let mut out = String::from(
        "| scenario | offered/s | accepted | done/s in window | delivered | p50 | p95 | p99 | lost | dead-lettered | still queued | duplicates | attempts | drained after | server CPU | server peak RSS | PostgreSQL CPU | bench CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let offered = r.offered_per_sec.map(|o| format!("{o:.0}")).unwrap_or("-".into());
        let (delivered, p50, p95, p99, lost, dups) = match &r.delivered {
            Some(d) => (
                d.delivered.to_string(),
                ms(d.latency_p50),
                ms(d.latency_p95),
                ms(d.latency_p99),
                d.missing.saturating_sub(r.dead_lettered + r.queued).to_string(),
                d.duplicates.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {}{} | {offered} | {} | {:.0} | {delivered} | {p50} | {p95} | {p99} | {lost} | {} | {} | {dups} | {} | {} | {:.0} % | {:.0} MiB | {:.0} % | {:.0} % |\n",
            r.name,
            if r.note.is_empty() { String::new() } else { format!(" ({})", r.note) },
            r.accepted,
            r.rate,
            r.dead_lettered,
            if r.delivered.is_some() { r.queued.to_string() } else { "-".into() },
            if r.attempts > 0 { r.attempts.to_string() } else { "-".into() },
            r.drained.map(|d| format!("{:.0} s", d.as_secs_f64())).unwrap_or("-".into()),
            r.ours.cpu_percent,
            r.ours.peak_rss_mib,
            r.pg.cpu_percent,
            r.bench.cpu_percent,
        ));
    }
    out.push_str(&format!(
        "\nLatency is ingest request start → first 2xx at the receiver. `lost` = accepted deliveries neither \
         acknowledged, dead-lettered nor still queued when the bench stopped waiting (60 s after the load, 120 s with retries); `duplicates` = 2xx receipts of a (endpoint, webhook-id) beyond the first. \
         CPU is percent of one core (the machine has two); server = `serve` plus any `worker` processes, bench = the load generator and receiver, which share the machine. Total bench time {:.0} s.\n",
        total.as_secs_f64()
    ));
    out.push_str(&targets(rows));
    out
}

/// SPEC §12, each against the scenario that measures it.
fn targets(rows: &[Row]) -> String {
    let find = |prefix: &str| rows.iter().find(|r| r.name.starts_with(prefix));
    let mut out = String::from("\n| target (SPEC §12) | measured | met |\n|---|---|---|\n");
    let mut line = |target: &str, measured: String, met: bool| {
        out.push_str(&format!("| {target} | {measured} | {} |\n", if met { "yes" } else { "**no**" }));
    };
    if let Some(r) = find("ingest") {
        line("ingest ≥ 10,000 events/s", format!("{:.0} events/s", r.rate), r.rate >= 10_000.0);
    }
    if let Some(r) = find("end-to-end") {
        let d = r.delivered.clone().unwrap_or_default();
        line("end-to-end ≥ 10,000 deliveries/s for 60 s", format!("{:.0} deliveries/s", r.rate), r.rate >= 10_000.0);
        line("p95 ingest → first attempt < 1 s (PRD < 5 s)", ms(d.latency_p95), d.latency_p95 < Duration::from_secs(1));
        let lost = d.missing.saturating_sub(r.dead_lettered + r.queued);
        line(
            "0 lost, 0 duplicates",
            format!("{lost} lost, {} duplicates", d.duplicates),
            lost == 0 && d.duplicates == 0,
        );
    }
    if let Some(r) = find("flaky") {
        let d = r.delivered.clone().unwrap_or_default();
        let share = d.delivered as f64 / r.accepted.max(1) as f64 * 100.0;
        line("30 % failing receiver: ≥ 99.95 % delivered after retries", format!("{share:.3} %"), share >= 99.95);
    }
    let peak = rows.iter().filter(|r| r.delivered.is_some()).map(|r| r.ours.peak_rss_mib).fold(0.0, f64::max);
    line("server RSS < 300 MB under load", format!("{peak:.0} MiB peak"), peak * 1.048_576 < 300.0);
    out
}
