//! `execute`: results come back, from any executor, on the pool's own threads.

mod support;

use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool, TaskHandle};
use support::{count_primes, pool, watchdog, within};

fn assert_send_unpin<T: Send + Unpin>(_: &T) {}

#[tokio::test]
async fn returns_the_value() {
    let pool = pool(2);
    let n = within(pool.execute(|| count_primes(10_000))).await.unwrap();
    assert_eq!(n, 1229);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_the_pool() {
    let pool = pool(2);
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut sum = 0;
            for i in 0..50u64 {
                sum += pool.execute(move || t * 1000 + i).await.unwrap();
            }
            sum
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += within(task).await.unwrap();
    }
    let expected: u64 = (0..16u64)
        .map(|t| (0..50u64).map(|i| t * 1000 + i).sum::<u64>())
        .sum();
    assert_eq!(total, expected);
    let m = pool.metrics();
    assert_eq!(m.tasks_completed(), 16 * 50);
    assert_eq!(m.tasks_active(), 0);
}

#[test]
fn works_without_a_tokio_runtime() {
    watchdog(|| {
        let pool = pool(1);
        let handles: Vec<TaskHandle<usize>> = (0..8).map(|i| pool.execute(move || i * 2)).collect();
        let out = futures::executor::block_on(futures::future::join_all(handles));
        let out: Vec<usize> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out, (0..8).map(|i| i * 2).collect::<Vec<_>>());
    });
}

#[tokio::test]
async fn runs_on_named_pool_threads() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        thread_name_prefix: "cruncher".into(),
        ..Default::default()
    })
    .unwrap();
    let caller = std::thread::current().id();
    let (name, id, on_pool) = within(pool.execute({
        let pool = pool.clone();
        move || {
            let t = std::thread::current();
            (t.name().map(str::to_owned), t.id(), pool.is_worker_thread())
        }
    }))
    .await
    .unwrap();
    let name = name.unwrap();
    assert!(name == "cruncher-0" || name == "cruncher-1", "{name}");
    assert_ne!(id, caller);
    assert!(on_pool);
}

#[tokio::test]
async fn the_compute_context_is_set_on_pool_threads() {
    let pool = pool(1);
    assert!(compute_pool::current().is_none());
    let seen = within(pool.execute(|| compute_pool::current().map(|p| p.num_threads())))
        .await
        .unwrap();
    assert_eq!(seen, Some(1));
}

#[tokio::test]
async fn stack_size_is_honoured() {
    // 64 KiB per frame over 256 frames needs ~16 MiB; the default rust
    // thread stack is 2 MiB.
    fn deep(depth: u32) -> u64 {
        let frame = std::hint::black_box([depth as u8; 64 * 1024]);
        if depth == 0 {
            u64::from(frame[0])
        } else {
            u64::from(frame[100]) + deep(depth - 1)
        }
    }
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        stack_size: Some(64 << 20),
        ..Default::default()
    })
    .unwrap();
    let sum = within(pool.execute(|| deep(255))).await.unwrap();
    assert_eq!(sum, (0..=255u64).sum::<u64>());
}

#[tokio::test]
async fn handle_is_send_unpin_and_nameable() {
    struct Holder {
        handle: TaskHandle<String>,
    }
    let pool = pool(1);
    let holder = Holder {
        handle: pool.execute(|| "done".to_string()),
    };
    assert_send_unpin(&holder.handle);
    // A handle can be moved to another task and awaited there.
    let out = within(tokio::spawn(holder.handle)).await.unwrap().unwrap();
    assert_eq!(out, "done");
}

#[tokio::test]
async fn unit_and_large_results() {
    let pool = pool(1);
    within(pool.execute(|| ())).await.unwrap();
    let big = within(pool.execute(|| vec![7u8; 1 << 20])).await.unwrap();
    assert_eq!(big.len(), 1 << 20);
    let boxed = within(pool.execute(|| [1u64; 512])).await.unwrap();
    assert_eq!(boxed.iter().sum::<u64>(), 512);
}

#[tokio::test]
async fn a_slow_job_does_not_block_the_runtime() {
    let pool = pool(1);
    let slow = pool.execute(|| std::thread::sleep(Duration::from_millis(50)));
    // The current-thread runtime stays free to run other tasks meanwhile.
    let ticker = tokio::spawn(async {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    });
    assert!(within(ticker).await.unwrap());
    within(slow).await.unwrap();
}
