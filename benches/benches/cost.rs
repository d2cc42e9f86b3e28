//! The cost report: what each way of handing a job to another thread costs
//! in memory and CPU, not just in wall time (criterion measures wall time only).
//!
//! ```text
//! cargo bench -p compute-benches --bench cost              # full run
//! cargo bench -p compute-benches --bench cost -- --quick   # seconds, for CI
//! cargo bench -p compute-benches --bench cost -- --json out.json
//! ```
//!
//! `COST_QUICK=1` and `COST_JSON=path` do the same as the flags. The JSON goes
//! to `target/cost.json` by default; the plot tool reads it.
//!
//! This binary installs a counting global allocator, so allocations and bytes
//! are counted for every thread of the process.

use std::hint::black_box;
use std::path::PathBuf;

use compute_benches::alloc::{Counting, Snapshot};
use futures::FutureExt;
use serde::Serialize;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Command-line options (unknown arguments, such as the `--bench` cargo
/// passes, are ignored).
struct Options {
    quick: bool,
    json: PathBuf,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut quick = std::env::var_os("COST_QUICK").is_some_and(|v| v != "0");
        let mut json = std::env::var_os("COST_JSON").map(PathBuf::from);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--json" => {
                    let path = args
                        .next()
                        .ok_or_else(|| "--json needs a path, got nothing".to_string())?;
                    json = Some(PathBuf::from(path));
                }
                _ => {}
            }
        }
        Ok(Options {
            quick,
            json: json.unwrap_or_else(|| compute_benches::target_dir().join("cost.json")),
        })
    }
}

/// Memory cost of one oneshot channel: created, sent on, received.
#[derive(Debug, Serialize)]
struct ChannelCost {
    channel: &'static str,
    allocations_per_channel: f64,
    bytes_per_channel: f64,
    sender_size: usize,
    receiver_size: usize,
}

/// The whole report, as written to JSON.
#[derive(Debug, Serialize)]
struct Report {
    quick: bool,
    machine: String,
    bridge: Vec<ChannelCost>,
}

fn channel_cost<Tx, Rx>(
    channel: &'static str,
    rounds: u32,
    make: impl Fn() -> (Tx, Rx),
    send: impl Fn(Tx, u64),
) -> ChannelCost
where
    Rx: std::future::Future + Unpin,
{
    let before = Snapshot::now();
    for i in 0..rounds {
        let (tx, rx) = make();
        send(tx, u64::from(i));
        black_box(rx.now_or_never());
    }
    let spent = Snapshot::now().since(before);
    ChannelCost {
        channel,
        allocations_per_channel: spent.allocations as f64 / f64::from(rounds),
        bytes_per_channel: spent.bytes as f64 / f64::from(rounds),
        sender_size: std::mem::size_of::<Tx>(),
        receiver_size: std::mem::size_of::<Rx>(),
    }
}

fn bridge_costs(rounds: u32) -> Vec<ChannelCost> {
    vec![
        channel_cost(
            "compute_bridge",
            rounds,
            compute_bridge::channel::<u64>,
            |tx, v| {
                let _ = tx.send(v);
            },
        ),
        channel_cost(
            "tokio_oneshot",
            rounds,
            tokio::sync::oneshot::channel::<u64>,
            |tx, v| {
                let _ = tx.send(v);
            },
        ),
        channel_cost(
            "futures_oneshot",
            rounds,
            futures::channel::oneshot::channel::<u64>,
            |tx, v| {
                let _ = tx.send(v);
            },
        ),
    ]
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{} {}, {cpus} CPUs",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("cost: {message}");
            std::process::exit(2);
        }
    };
    let rounds = if options.quick { 1_000 } else { 100_000 };

    let bridge = bridge_costs(rounds);
    println!("== one oneshot channel (u64): create, send, receive; {rounds} rounds");
    println!(
        "{:<18} {:>12} {:>12} {:>8} {:>10}",
        "channel", "allocs/chan", "bytes/chan", "tx size", "rx size"
    );
    for c in &bridge {
        println!(
            "{:<18} {:>12.2} {:>12.1} {:>8} {:>10}",
            c.channel,
            c.allocations_per_channel,
            c.bytes_per_channel,
            c.sender_size,
            c.receiver_size
        );
    }

    let report = Report {
        quick: options.quick,
        machine: machine(),
        bridge,
    };
    let text = serde_json::to_string_pretty(&report).expect("the report serialises");
    if let Some(dir) = options.json.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cost: cannot create {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
    if let Err(e) = std::fs::write(&options.json, text) {
        eprintln!("cost: cannot write {}: {e}", options.json.display());
        std::process::exit(1);
    }
    println!("wrote {}", options.json.display());
}
