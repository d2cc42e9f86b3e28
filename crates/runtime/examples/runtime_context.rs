//! Library code that finds the compute pool through the thread's compute
//! context instead of having it passed down: `compute_runtime::current()`
//! returns the runtime's pool on its Tokio workers, its blocking threads,
//! its compute threads and inside `block_on`, and `None` elsewhere.
//!
//! ```text
//! cargo run -p compute-runtime --example runtime_context
//! ```

use std::time::Duration;

use compute_runtime::{ComputeError, Runtime, RuntimeConfig};

/// A checksum over `data`: on the current runtime's compute pool when there
/// is one, inline otherwise.
async fn checksum(data: Vec<u8>) -> Result<u64, ComputeError> {
    let work = move || {
        data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    match compute_runtime::current() {
        Some(pool) => pool.execute(work).await,
        None => Ok(work()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let runtime = Runtime::new(RuntimeConfig {
        num_worker_threads: Some(2),
        compute_threads: Some(1),
        ..Default::default()
    })?;

    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = futures::executor::block_on(checksum(data.clone()))?; // no runtime: inline

    let (in_task, on_blocking) = runtime.block_on(async {
        let task = tokio::spawn(checksum(data.clone()));
        let blocking = tokio::task::spawn_blocking({
            let data = data.clone();
            move || futures::executor::block_on(checksum(data))
        });
        (task.await, blocking.await)
    });
    let (in_task, on_blocking) = (in_task??, on_blocking??);
    assert_eq!(in_task, expected);
    assert_eq!(on_blocking, expected);

    let pool = runtime.compute_pool().expect("compute_threads = 1");
    println!(
        "checksum {expected:#x}: inline outside the runtime, on the pool from a worker and a blocking thread ({} pool jobs)",
        pool.metrics().tasks_completed()
    );
    runtime.shutdown(Duration::from_secs(5));
    Ok(())
}
