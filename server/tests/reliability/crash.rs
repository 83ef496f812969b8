//! Crash (issue 7, item 1): SIGKILL under a steady load, restart, and nothing accepted is
//! lost; only in-flight deliveries are re-sent, with the same `webhook-id` (SPEC §6).

use std::time::{Duration, Instant};

use crate::{
    helpers::{spawn_app_with, TestDatabase},
    load::{self, Publisher},
    process::Process,
    scenario::{self, Subscriber, LAYOUT},
};

/// How long the load runs before the kill and after the restart.
const LOAD_SECONDS: u32 = 5;
const DRAIN: Duration = Duration::from_secs(120);

struct Figures {
    accepted: usize,
    refused: usize,
    unacknowledged: usize,
    repeats: scenario::Repeats,
    drained_in: Duration,
}

/// Deliveries are flowing: the kill lands mid-work, not before it.
async fn warm_up(publisher: &Publisher) {
    publisher.until_accepted_more((load::rate() * LOAD_SECONDS) as usize, Duration::from_secs(60)).await;
}

async fn kill_and_check(
    subscribers: &[Subscriber],
    publisher: Publisher,
    pool: &sqlx::PgPool,
    victim: u32,
    kill: impl FnOnce(),
    restart: impl FnOnce(),
) -> Figures {
    let rate = load::rate();
    let flowing = subscribers.iter().map(|s| s.by_id().len()).sum::<usize>();
    assert!(flowing > 0, "nothing was delivered before the kill");
    let leased_by_victim = scenario::leased_by(pool, victim).await;
    kill();
    let died = Instant::now();
    let committed = scenario::committed_successes(pool).await;
    restart();
    publisher.until_accepted_more((rate * LOAD_SECONDS) as usize, Duration::from_secs(60)).await;
    let outcomes = publisher.stop().await;
    let accepted = load::accepted(&outcomes);
    let drained_in = scenario::until_all_delivered(subscribers, &accepted, DRAIN).await;
    scenario::until_recorded(pool, Duration::from_secs(30)).await;
    let all: Vec<_> = outcomes.iter().collect();
    let counts = load::tally(&all);
    scenario::print_tally("ingest answers", &counts);
    println!("no answer because: {:?}", load::failure_reasons(&outcomes));
    assert!(
        counts.keys().all(|k| k == "202" || k == "no answer"),
        "ingest answered only 202, or nothing while the process was down: {counts:?}"
    );
    // A killed process's outcomes die with it; a delivery with two recorded successes was
    // sent twice by a live process.
    assert_eq!(scenario::recorded_twice(pool).await, 0, "deliveries sent twice with both successes recorded");
    Figures {
        accepted: accepted.len(),
        refused: counts.get("no answer").copied().unwrap_or(0),
        unacknowledged: scenario::unacknowledged(subscribers, &accepted),
        repeats: scenario::Repeats { leased_by_victim, ..scenario::check_repeats(subscribers, died, &committed) },
        drained_in,
    }
}

fn report(scenario: &str, f: &Figures) {
    println!(
        "{scenario}: accepted {}, delivered {} (endpoint × event), re-sent {}, in flight at the kill {}, endpoints it leased {}, \
         committed but unacknowledged {}, requests refused while down {}, backlog drained {:.1} s after the load stopped",
        f.accepted,
        f.repeats.delivered,
        f.repeats.resent,
        f.repeats.in_flight_at_kill,
        f.repeats.leased_by_victim,
        f.unacknowledged,
        f.refused,
        f.drained_in.as_secs_f64()
    );
}

#[tokio::test]
async fn a_server_killed_under_load_loses_nothing_and_resends_only_in_flight_deliveries() {
    scenario::init();
    let database = TestDatabase::create().await;
    let (key, pool) = scenario::account(&database.url).await;
    let port = scenario::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Some(Process::serve("serve#1", &database.url, port));
    let victim = server.as_ref().unwrap().pid();
    let subscribers = scenario::subscribe(&base, &key, &LAYOUT).await;
    let publisher = Publisher::start(base, key, load::rate());

    warm_up(&publisher).await;
    let mut restarted = None;
    let figures = kill_and_check(
        &subscribers,
        publisher,
        &pool,
        victim,
        || server.as_mut().unwrap().kill_hard(),
        || restarted = Some(Process::serve("serve#2", &database.url, port)),
    )
    .await;
    report("serve killed", &figures);
    let mut restarted = restarted.unwrap();
    assert!(restarted.terminate().success(), "the restarted server stops cleanly");
    assert!(figures.accepted > 0 && figures.repeats.delivered >= figures.accepted);
}

#[tokio::test]
async fn a_worker_process_killed_under_load_loses_nothing_and_resends_only_in_flight_deliveries() {
    scenario::init();
    // HTTP in this process, delivery in two `webhooks worker` processes; one of them dies.
    let app = spawn_app_with(|c| c.db_pool_size = 10).await;
    let (key, pool) = (
        app.create_account("Acme", "ada@acme.test", "a long enough password").await.api_key,
        app.db.get_postgres_connection_pool().clone(),
    );
    let mut a = Process::worker("worker A", &app.database.url);
    let mut b = Process::worker("worker B", &app.database.url);
    let subscribers = scenario::subscribe(&app.address, &key, &LAYOUT).await;
    let publisher = Publisher::start(app.address.clone(), key, load::rate());

    warm_up(&publisher).await;
    // Kill the one holding more endpoints, so the kill interrupts work.
    let (victim, survivor) = if scenario::leased_by(&pool, a.pid()).await >= scenario::leased_by(&pool, b.pid()).await {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let mut restarted = None;
    let figures = kill_and_check(
        &subscribers,
        publisher,
        &pool,
        victim.pid(),
        || victim.kill_hard(),
        || restarted = Some(Process::worker("worker restarted", &app.database.url)),
    )
    .await;
    report("worker killed", &figures);
    assert_eq!(figures.refused, 0, "the HTTP side never went away");
    assert!(survivor.terminate().success(), "the surviving worker stops cleanly");
    assert!(restarted.unwrap().terminate().success(), "the restarted worker stops cleanly");
    assert!(figures.accepted > 0 && figures.repeats.delivered >= figures.accepted);
}
