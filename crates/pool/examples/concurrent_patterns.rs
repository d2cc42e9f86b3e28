//! Pattern 1 of `docs/guide.md`: three async tasks use the same compute
//! pool at once, each with a different rayon pattern: `scope` for dynamic
//! task spawning, parallel iterators over chunks, and `join`.
//!
//! Run with `cargo run -p compute-pool --example concurrent_patterns`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use compute_pool::{ComputeConfig, ComputePool};
use rayon::prelude::*;

/// A CPU-bound step: hashes `seed` through many rounds of a mixing function.
fn expensive_computation(seed: u64) -> u64 {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        x ^= x >> 30;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

/// Per-chunk transform: mean and variance of the chunk.
fn transform_chunk(chunk: &[f64]) -> (f64, f64) {
    let n = chunk.len() as f64;
    let mean = chunk.iter().sum::<f64>() / n;
    let var = chunk.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

/// Counts primes in a range (the left branch of the join).
fn count_primes(lo: u64, hi: u64) -> usize {
    (lo.max(2)..hi)
        .filter(|k| (2..*k).take_while(|d| d * d <= *k).all(|d| k % d != 0))
        .count()
}

/// Sums the digits of every number in a range (the right branch).
fn digit_sum(lo: u64, hi: u64) -> u64 {
    (lo..hi)
        .map(|mut k| {
            let mut s = 0;
            while k > 0 {
                s += k % 10;
                k /= 10;
            }
            s
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let pool = Arc::new(ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        thread_name_prefix: "patterns".into(),
        ..Default::default()
    })?);
    let started = Instant::now();

    // Task 1: `scope` for a number of tasks only known at run time.
    let task1 = tokio::spawn({
        let pool = pool.clone();
        async move {
            let num_tasks = 64;
            let checksum = Arc::new(AtomicU64::new(0));
            let sink = checksum.clone();
            pool.execute_scoped(move |scope| {
                for i in 0..num_tasks {
                    let sink = sink.clone();
                    scope.spawn(move |_| {
                        // ORDERING: Relaxed: an xor is order-independent, and
                        // the scope's end orders every update before the load.
                        sink.fetch_xor(expensive_computation(i), Ordering::Relaxed);
                    });
                }
            })
            .await?;
            // ORDERING: Relaxed: the awaited scope has ended, which orders
            // every spawned update before this load.
            Ok::<_, compute_pool::ComputeError>((num_tasks, checksum.load(Ordering::Relaxed)))
        }
    });

    // Task 2: parallel iterators over chunks of a data set.
    let task2 = tokio::spawn({
        let pool = pool.clone();
        async move {
            let data: Vec<f64> = (0..400_000u64)
                .map(|i| ((i * 7919) % 1000) as f64)
                .collect();
            pool.install(move || {
                data.par_chunks(1000)
                    .map(transform_chunk)
                    .collect::<Vec<_>>()
            })
            .await
        }
    });

    // Task 3: `join` for two independent branches.
    let task3 = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.join(|| count_primes(0, 200_000), || digit_sum(0, 2_000_000))
                .await
        }
    });

    let (r1, r2, r3) = tokio::join!(task1, task2, task3);
    let (spawned, checksum) = r1??;
    let stats = r2??;
    let (primes, digits) = r3??;

    let mean_of_means = stats.iter().map(|(m, _)| m).sum::<f64>() / stats.len() as f64;
    println!("scope:    {spawned} dynamically spawned tasks, checksum {checksum:#018x}");
    println!(
        "par_iter: {} chunks, mean of means {mean_of_means:.2}",
        stats.len()
    );
    println!("join:     {primes} primes below 200000, digit sum {digits}");
    println!("elapsed:  {:?}", started.elapsed());
    println!("metrics:  {}", pool.metrics());
    assert_eq!(primes, 17_984);
    assert_eq!(pool.metrics().tasks_active(), 0);
    Ok(())
}
