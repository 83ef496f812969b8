//! The long reliability scenarios of issue 7 (crash, database outage): real `webhooks`
//! processes, real HTTPS receivers, a steady load, minutes rather than seconds. Run with
//! `scripts/reliability.sh` (one at a time: they measure recovery times).

mod cluster;
mod crash;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod load;
mod outage;
mod process;
#[allow(dead_code)]
#[path = "../api/receiver.rs"]
mod receiver;
mod scenario;
