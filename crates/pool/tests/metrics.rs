//! Metrics: counts, durations measured on the compute thread, and no leaks.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool};
use support::{pool, wait_until, within, Blocker, LIMIT};

#[tokio::test]
async fn counts_by_outcome() {
    let pool = pool(1);
    within(pool.execute(|| ())).await.unwrap();
    within(pool.execute(|| ())).await.unwrap();
    let _ = within(pool.execute(|| -> () { panic!("p") })).await;
    let blocker = Blocker::occupy(&pool);
    drop(pool.execute(|| ()));
    within(blocker.release()).await.unwrap();
    let m = pool.metrics();
    assert_eq!(m.tasks_total(), 5);
    assert_eq!(m.tasks_completed(), 3);
    assert_eq!(m.tasks_panicked(), 1);
    assert_eq!(m.tasks_cancelled(), 1);
    assert_eq!(m.tasks_active(), 0);
    assert_eq!(m.tasks_queued(), 0);
    assert_eq!(m.tasks_running(), 0);
    assert_eq!(m.num_threads(), 1);
}

#[tokio::test]
async fn queued_and_running_while_busy() {
    let pool = pool(1);
    let blocker = Blocker::occupy(&pool);
    let queued: Vec<_> = (0..3).map(|_| pool.execute(|| ())).collect();
    let m = pool.metrics();
    assert_eq!(
        (m.tasks_running(), m.tasks_queued(), m.tasks_active()),
        (1, 3, 4)
    );
    within(blocker.release()).await.unwrap();
    for q in queued {
        within(q).await.unwrap();
    }
    let m = pool.metrics();
    assert_eq!(
        (m.tasks_running(), m.tasks_queued(), m.tasks_active()),
        (0, 0, 0)
    );
    // The queued jobs waited behind the blocker.
    assert!(m.avg_queue_wait_us() > 0.0);
}

#[tokio::test]
async fn durations_are_compute_time() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        slow_task_threshold: Duration::from_millis(15),
        ..Default::default()
    })
    .unwrap();
    for _ in 0..9 {
        within(pool.execute(|| std::thread::sleep(Duration::from_millis(1))))
            .await
            .unwrap();
    }
    within(pool.execute(|| std::thread::sleep(Duration::from_millis(20))))
        .await
        .unwrap();
    let m = pool.metrics();
    // The 20 ms job is slow; a 1 ms one only if the machine stalls it.
    assert!((1..=10).contains(&m.slow_tasks()), "{m}");
    assert!(m.max_task_duration_us() >= 20_000, "{m}");
    assert!(
        m.avg_task_duration_us() >= (9.0 * 1000.0 + 20_000.0) / 10.0,
        "{m}"
    );
    // Histogram quantiles: within a factor of two of the truth, ordered.
    let p50 = m.p50_task_duration_us();
    assert!(
        p50 >= 1000.0 && p50 <= 2.0 * m.max_task_duration_us() as f64,
        "{m}"
    );
    assert!(m.p99_task_duration_us() >= 20_000.0, "{m}");
    assert!(m.p99_task_duration_us() >= p50);
}

#[tokio::test]
async fn queue_wait_is_separate_from_compute_time() {
    let pool = pool(1);
    let blocker = Blocker::occupy(&pool);
    let quick = pool.execute(|| ());
    tokio::time::sleep(Duration::from_millis(20)).await;
    within(blocker.release()).await.unwrap();
    within(quick).await.unwrap();
    let m = pool.metrics();
    // Two jobs started; the quick one waited at least 20 ms.
    assert!(m.avg_queue_wait_us() >= 20_000.0 / 2.0, "{m}");
    // The blocker's compute time is in the max; the quick job's is tiny.
    assert!(m.max_task_duration_us() >= 20_000, "{m}");
}

#[tokio::test]
async fn never_leaks_whatever_happens() {
    let pool = pool(2);
    let mut handles = Vec::new();
    for i in 0..300u32 {
        let h = match i % 5 {
            0 => pool.execute(move || i),
            1 => pool.execute(move || -> u32 { panic!("{i}") }),
            2 => pool.install(move || i),
            3 => pool.execute_cancellable(move |t| if t.is_cancelled() { 0 } else { i }),
            _ => pool.execute(move || {
                std::thread::sleep(Duration::from_micros(50));
                i
            }),
        };
        match i % 3 {
            0 => drop(h),
            1 => {
                let mut h = h;
                h.cancel();
                handles.push(h);
            }
            _ => handles.push(h),
        }
    }
    let _ = within(futures::future::join_all(handles)).await;
    wait_until("idle", || pool.metrics().tasks_active() == 0);
    let m = pool.metrics();
    assert_eq!(m.tasks_total(), 300);
    assert_eq!(
        m.tasks_completed() + m.tasks_panicked() + m.tasks_cancelled(),
        300
    );
    assert_eq!((m.tasks_queued(), m.tasks_running()), (0, 0));
}

#[tokio::test]
async fn display_shows_the_figures() {
    let pool = pool(1);
    within(pool.execute(|| ())).await.unwrap();
    let text = pool.metrics().to_string();
    for needle in [
        "total=1",
        "active=0",
        "completed=1",
        "p50=",
        "p99=",
        "slow=0",
    ] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }
    let debug = format!("{pool:?}");
    assert!(
        debug.contains("ComputePool") && debug.contains("num_threads: 1"),
        "{debug}"
    );
}

#[tokio::test]
async fn running_is_visible_from_the_job() {
    let pool = pool(1);
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    let job = pool.execute(move || tx.send(p.metrics()).unwrap());
    let inside = rx.recv_timeout(LIMIT).unwrap();
    within(job).await.unwrap();
    assert_eq!((inside.tasks_running(), inside.tasks_active()), (1, 1));
}
