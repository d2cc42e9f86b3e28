//! Pattern 2 of `docs/guide.md`: an async stream of batches mapped on the
//! compute pool with `compute_map` (at most 4 batches in flight, results in
//! order); each batch is processed with parallel iterators, then its results
//! go out through async I/O (here, a channel to a writer task).
//!
//! Run with `cargo run -p compute-pool --example stream_batches`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use compute_pool::{ComputeConfig, ComputePool, ComputeStreamExt};
use futures::stream::{self, StreamExt};
use rayon::prelude::*;
use tokio::sync::mpsc;

/// One record of a batch: a line of text to score.
struct Data {
    text: String,
}

/// CPU-bound work per item: a rolling hash of every 4-gram of the text,
/// reduced to a score.
fn process_item(item: &Data) -> u32 {
    let bytes = item.text.as_bytes();
    let mut score = 0u32;
    for _ in 0..10 {
        for w in bytes.windows(4) {
            let h = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            score = score.rotate_left(5) ^ h.wrapping_mul(0x9E37_79B1);
        }
    }
    score
}

/// The async side: produces a batch every millisecond, as if from the network.
fn incoming_batches(batches: usize, batch_size: usize) -> impl futures::Stream<Item = Vec<Data>> {
    stream::iter(0..batches).then(move |b| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        (0..batch_size)
            .map(|i| Data {
                text: format!(
                    "batch {b} item {i} {}",
                    "lorem ipsum dolor sit amet ".repeat(8)
                ),
            })
            .collect()
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let pool = Arc::new(ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        thread_name_prefix: "batches".into(),
        ..Default::default()
    })?);
    let (results_tx, mut results_rx) = mpsc::channel::<Vec<u32>>(16);

    // The "sink": receives result batches asynchronously.
    let writer = tokio::spawn(async move {
        let (mut batches, mut items, mut digest) = (0usize, 0usize, 0u32);
        while let Some(batch) = results_rx.recv().await {
            batches += 1;
            items += batch.len();
            digest = batch.iter().fold(digest, |d, s| d.rotate_left(1) ^ s);
        }
        (batches, items, digest)
    });

    let started = Instant::now();
    let mut scored = incoming_batches(60, 256).compute_map(&pool, 4, |batch: Vec<Data>| {
        batch.par_iter().map(process_item).collect::<Vec<_>>()
    });
    while let Some(result) = scored.next().await {
        let scores = result.expect("scoring does not panic");
        results_tx
            .send(scores)
            .await
            .expect("the writer is running");
    }
    drop(results_tx);

    let (batches, items, digest) = writer.await?;
    println!("processed {batches} batches, {items} items, digest {digest:#010x}");
    println!("elapsed   {:?}", started.elapsed());
    println!("metrics   {}", pool.metrics());
    assert_eq!((batches, items), (60, 60 * 256));
    Ok(())
}
