//! What PostgreSQL is doing, second by second: what the scenario database's active sessions
//! wait on (sampled ten times a second), whether a checkpoint is being written, which tables
//! autovacuum is working on, and the dead rows of the delivery queue. A dip in the delivery
//! series can then be laid beside its cause instead of guessed at.

use std::{collections::BTreeMap, fmt::Write, time::Duration, time::Instant};

use sqlx::{postgres::PgRow, Row};

use crate::pgstats::Sampler;

/// One look at `pg_stat_activity` and the progress views.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// `wait_event_type:wait_event` of each active client session of the database, `CPU`
    /// for one running without a wait, with how many sessions were in it.
    pub waits: Vec<(String, u32)>,
    /// The checkpointer was outside its main-loop sleep: a checkpoint was being written.
    pub checkpointing: bool,
    /// `vacuum <table>` / `analyze <table>` running in the database.
    pub maintenance: Vec<String>,
    /// `pg_stat_user_tables.n_dead_tup` of `delivery_queue` (0 without the table).
    pub dead_queue_rows: i64,
}

const ACTIVITY: &str = "\
SELECT coalesce((SELECT string_agg(w || '=' || n, ' ') FROM (
           SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w, count(*) AS n
           FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
             AND backend_type = 'client backend'
           GROUP BY 1) x), ''),
       coalesce((SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'checkpointer'), '')
           <> 'CheckpointerMain',
       concat_ws(';', (SELECT string_agg('vacuum ' || c.relname, ';') FROM pg_stat_progress_vacuum v
                       JOIN pg_class c ON c.oid = v.relid WHERE v.datname = current_database()),
                      (SELECT string_agg('analyze ' || c.relname, ';') FROM pg_stat_progress_analyze a
                       JOIN pg_class c ON c.oid = a.relid WHERE a.datname = current_database())),
       coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'delivery_queue'), 0)";

pub type ActivitySampler = Sampler<Activity>;

pub fn start(db_url: String) -> ActivitySampler {
    Sampler::every(Duration::from_millis(100), db_url, ACTIVITY, decode)
}

fn decode(row: &PgRow) -> anyhow::Result<Activity> {
    let waits = parse_waits(row.try_get(0)?);
    let maintenance: String = row.try_get(2)?;
    Ok(Activity {
        waits,
        checkpointing: row.try_get(1)?,
        maintenance: maintenance.split(';').filter(|m| !m.is_empty()).map(str::to_owned).collect(),
        dead_queue_rows: row.try_get(3)?,
    })
}

/// `"CPU=3 LWLock:WALWrite=2"` as pairs; anything malformed is skipped.
fn parse_waits(text: &str) -> Vec<(String, u32)> {
    text.split_whitespace()
        .filter_map(|w| w.rsplit_once('=').and_then(|(name, n)| Some((name.to_owned(), n.parse().ok()?))))
        .collect()
}

/// One second of samples, summarised for the series file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// The three commonest waits as `name=sessions` (the mean over the second's samples),
    /// `;`-separated, most first.
    pub waits: String,
    /// Share of the second's samples with a checkpoint being written, 0–1.
    pub checkpointing: f64,
    /// Maintenance seen in the second, `;`-separated.
    pub maintenance: String,
    /// The last sample's dead queue rows.
    pub dead_queue_rows: Option<i64>,
}

/// Groups samples into whole seconds after `origin`.
pub fn per_second(samples: &[(Instant, Activity)], origin: Instant, seconds: usize) -> Vec<Second> {
    let mut grouped: Vec<Vec<&Activity>> = vec![Vec::new(); seconds];
    for (at, sample) in samples {
        if let Some(slot) = grouped.get_mut(at.saturating_duration_since(origin).as_secs() as usize) {
            slot.push(sample);
        }
    }
    grouped.iter().map(|s| summarise(s)).collect()
}

fn summarise(samples: &[&Activity]) -> Second {
    if samples.is_empty() {
        return Second::default();
    }
    let n = samples.len() as f64;
    let mut waits: BTreeMap<&str, u32> = BTreeMap::new();
    let mut maintenance: Vec<&str> = Vec::new();
    for s in samples {
        for (name, count) in &s.waits {
            *waits.entry(name).or_default() += count;
        }
        for m in &s.maintenance {
            if !maintenance.contains(&m.as_str()) {
                maintenance.push(m);
            }
        }
    }
    let mut ranked: Vec<(&str, u32)> = waits.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut text = String::new();
    for (name, total) in ranked.iter().take(3) {
        let sep = if text.is_empty() { "" } else { ";" };
        let _ = write!(text, "{sep}{name}={:.1}", f64::from(*total) / n);
    }
    Second {
        waits: text,
        checkpointing: samples.iter().filter(|s| s.checkpointing).count() as f64 / n,
        maintenance: maintenance.join(";"),
        dead_queue_rows: samples.last().map(|s| s.dead_queue_rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(waits: &[(&str, u32)], checkpointing: bool, maintenance: &[&str], dead: i64) -> Activity {
        Activity {
            waits: waits.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect(),
            checkpointing,
            maintenance: maintenance.iter().map(|m| (*m).to_owned()).collect(),
            dead_queue_rows: dead,
        }
    }

    #[test]
    fn the_wait_list_parses_and_skips_junk() {
        assert_eq!(
            parse_waits("CPU=3 LWLock:WALWrite=2 junk IO:DataFileRead=x"),
            vec![("CPU".to_owned(), 3), ("LWLock:WALWrite".to_owned(), 2)]
        );
        assert_eq!(parse_waits(""), vec![]);
    }

    #[test]
    fn a_second_ranks_waits_by_mean_sessions_and_keeps_the_last_dead_count() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let samples = [
            (at(100), sample(&[("CPU", 2), ("IO:WALSync", 1)], false, &[], 10)),
            (at(600), sample(&[("CPU", 2), ("Lock:tuple", 4), ("IO:WALSync", 1)], true, &["vacuum deliveries"], 40)),
            (at(1_200), sample(&[("Client:ClientRead", 1)], false, &[], 7)),
        ];
        let seconds = per_second(&samples, t0, 3);
        assert_eq!(
            seconds[0],
            Second {
                waits: "CPU=2.0;Lock:tuple=2.0;IO:WALSync=1.0".into(),
                checkpointing: 0.5,
                maintenance: "vacuum deliveries".into(),
                dead_queue_rows: Some(40),
            }
        );
        assert_eq!(seconds[1].waits, "Client:ClientRead=1.0");
        assert_eq!(seconds[2], Second::default(), "a second without samples says nothing");
    }
}
