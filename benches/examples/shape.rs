//! Measures one service shape through a few bridges (one cell of the cost
//! report's `services` part, quickly), the first bridge the reference.
//!
//! ```text
//! cargo run --release -p compute-benches --example shape -- 2w2c 16 trivial 5 naive_bridge,ours
//! cargo run --release -p compute-benches --example shape -- 2w2c 4 trivial 5 naive_bridge,ours paired
//! ```
//!
//! The optional last argument pins the threads (`kernel`, the default,
//! leaves them to the kernel; `paired` or `apart`: see
//! `compute_benches::placement`), so that every run draws the same
//! placement.

use std::time::Duration;

use compute_benches::placement::Placement;
use compute_benches::service::{print, shape_rows, JOBS, REPORTED};
use compute_benches::setup::{Bridge, Threads};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let threads = match arg(0) {
        Some("1w1c") => Threads::BOTH[0],
        Some("2w2c") | None => Threads::BOTH[1],
        Some(other) => panic!("a layout: 1w1c or 2w2c, not `{other}`"),
    };
    let placement = arg(5).map_or(Placement::Kernel, |name| {
        Placement::from_name(name)
            .unwrap_or_else(|| panic!("a placement: kernel, paired or apart, not `{name}`"))
    });
    let threads = threads.placed(placement);
    let tasks: usize = arg(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let job = *JOBS
        .iter()
        .find(|(l, _)| Some(*l) == arg(2).or(Some("trivial")))
        .expect("a job label: trivial, 10us, 100us or 1ms");
    let runs = arg(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let bridges: Vec<Bridge> = match arg(4) {
        Some(list) => list
            .split(',')
            .map(|name| {
                *Bridge::ALL
                    .iter()
                    .find(|b| b.name() == name)
                    .expect("a bridge name")
            })
            .collect(),
        None => REPORTED.to_vec(),
    };
    let rows = shape_rows(
        threads,
        &bridges,
        tasks,
        job,
        runs,
        Duration::from_millis(300),
    );
    print(&rows, runs);
    println!(
        "wake cost here (the balanced policy's bound): {:?}",
        compute_pool::wake_cost()
    );
}
