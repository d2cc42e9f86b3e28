//! Builds a `Runtime` from a `[runtime]` TOML table (a file given as the
//! first argument, or a built-in "mixed workload" table),
//! applies `COMPUTE_RUNTIME_*` environment overrides, prints the thread
//! plan, and runs jobs of each size class plus adaptive dispatch.
//!
//! ```text
//! cargo run -p compute-runtime --example runtime_from_toml
//! COMPUTE_RUNTIME_COMPUTE_THREADS=1 cargo run -p compute-runtime --example runtime_from_toml -- service.toml
//! ```

use std::time::{Duration, Instant};

use compute_runtime::{Runtime, RuntimeConfig, SizeClassExt};

const MIXED_WORKLOAD: &str = r#"
# Balance between async I/O and compute
[runtime]
num_worker_threads = 8
compute_threads = 6
compute_stack_size = "2MB"
"#;

fn spin(d: Duration) -> u64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        n = n.wrapping_add(1);
    }
    n
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_target(false).init();

    let text = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?,
        None => MIXED_WORKLOAD.to_owned(),
    };
    let config = RuntimeConfig::from_toml_str(&text)?.from_env()?;
    let plan = config.thread_plan();
    println!(
        "plan: {} tokio workers + {} compute threads on {} physical cores (budget {})",
        plan.worker_threads,
        plan.compute_threads,
        plan.physical_cores,
        plan.budget()
    );

    // Logs a warning here if the plan oversubscribes this machine.
    let runtime = Runtime::new(config)?;
    let Some(pool) = runtime.compute_pool() else {
        println!("compute_threads = 0: no compute pool, nothing to run");
        return Ok(());
    };

    runtime.block_on(async {
        let small = pool.run_small(|| spin(Duration::from_micros(20))).await?;
        let medium = pool.run_medium(|| spin(Duration::from_micros(500))).await?;
        let large = pool.run_large(|| spin(Duration::from_millis(5))).await?;
        println!("size classes ran: {small} / {medium} / {large} spins");

        for _ in 0..200 {
            pool.execute_adaptive(|| spin(Duration::from_micros(2)))
                .await?;
            pool.execute_adaptive(|| spin(Duration::from_millis(1)))
                .await?;
        }
        Ok::<_, compute_runtime::ComputeError>(())
    })?;

    let metrics = pool.metrics();
    println!(
        "adaptive: {} inline, {} offloaded, {} mispredicted",
        metrics.adaptive_inline(),
        metrics.adaptive_offloaded(),
        metrics.adaptive_mispredicted()
    );
    println!("{metrics}");
    let drained = runtime.shutdown(Duration::from_secs(5));
    println!("shut down (compute work drained: {drained})");
    Ok(())
}
