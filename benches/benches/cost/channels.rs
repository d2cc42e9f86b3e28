//! The channels alone: what one oneshot costs, and a round trip through a
//! sending thread that parks.

use std::hint::black_box;
use std::time::Instant;

use compute_benches::oneshots::{Feed, Futures, Oneshot, Ours, Tokio, Worker};
use compute_test_support::alloc::Snapshot;
use compute_test_support::median;
use futures::FutureExt;
use serde::Serialize;

/// Memory cost of one oneshot channel: created, sent on, received.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelCost {
    pub(crate) channel: &'static str,
    pub(crate) allocations_per_channel: f64,
    pub(crate) bytes_per_channel: f64,
    pub(crate) sender_size: usize,
    pub(crate) receiver_size: usize,
}

/// Round trip through a persistent sending thread, the channels measured
/// in turns (batch after batch, round robin), so a change in the machine's
/// load hits all three alike. Median over the batches.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelRoundTrip {
    pub(crate) channel: &'static str,
    pub(crate) median_ns: f64,
    pub(crate) batches: usize,
    pub(crate) per_batch: u32,
}

pub(crate) fn channel_cost<Tx, Rx>(
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

pub(crate) fn bridge_costs(rounds: u32) -> Vec<ChannelCost> {
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

/// Times `per_batch` round trips of channel `O` through `worker`, in ns each.
pub(crate) fn round_trip_batch<O: Oneshot>(worker: &Worker, per_batch: u32) -> f64 {
    futures::executor::block_on(async {
        let start = Instant::now();
        for _ in 0..per_batch {
            let (tx, rx) = O::channel();
            worker.give::<O>(tx);
            let _ = black_box(rx.await);
        }
        start.elapsed().as_nanos() as f64 / f64::from(per_batch)
    })
}

pub(crate) fn bridge_round_trips(batches: usize, per_batch: u32) -> Vec<ChannelRoundTrip> {
    // One sending thread for all three: see `Worker`.
    let worker = Worker::start(Feed::Blocking);
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..batches {
        samples[0].push(round_trip_batch::<Ours>(&worker, per_batch));
        samples[1].push(round_trip_batch::<Tokio>(&worker, per_batch));
        samples[2].push(round_trip_batch::<Futures>(&worker, per_batch));
    }
    let [a, b, c] = samples;
    [(Ours::NAME, a), (Tokio::NAME, b), (Futures::NAME, c)]
        .into_iter()
        .map(|(channel, mut samples)| ChannelRoundTrip {
            channel,
            median_ns: median(&mut samples).unwrap_or(f64::NAN),
            batches,
            per_batch,
        })
        .collect()
}
