use std::time::Duration;

use super::PoolMetrics;
use crate::histogram::tests::assert_close;
use crate::ledger::Counts;
use crate::priority::Priority;

#[test]
fn pool_and_lane_queue_waits_have_quantiles() {
    let m = PoolMetrics::new(Duration::from_millis(100));
    for i in 1..=100u64 {
        m.record_queue_wait(Duration::from_micros(i * 10), Some(Priority::Low));
    }
    m.record_queue_wait(Duration::from_micros(5), None);
    let s = m.snapshot(1, Counts::default(), [0, 0]);
    assert_eq!(s.queue_wait_histogram().count(), 101);
    assert_close(s.queue_wait_quantile_us(0.5), 500_000, "pool p50");
    assert_close(s.queue_wait_quantile_us(0.0), 5_000, "pool p0");
    let low = s.lane(Priority::Low);
    assert_close(low.queue_wait_quantile_us(0.5), 500_000, "low p50");
    assert_close(low.queue_wait_quantile_us(0.99), 990_000, "low p99");
    assert_eq!(s.lane(Priority::High).queue_wait_quantile_us(0.5), 0.0);
}

#[test]
fn quantiles_bound_the_samples() {
    let m = PoolMetrics::new(Duration::from_millis(100));
    for _ in 0..99 {
        m.record_compute(Duration::from_micros(10));
    }
    m.record_compute(Duration::from_millis(5));
    let counts = Counts {
        admitted: 100,
        started: 100,
        completed: 100,
        ..Counts::default()
    };
    let s = m.snapshot(1, counts, [0, 0]);
    assert_close(s.p50_task_duration_us(), 10_000, "p50");
    assert_close(s.p99_task_duration_us(), 10_000, "p99");
    assert_eq!(s.quantile_us(1.0), 5000.0);
    assert_eq!(s.max_task_duration_us(), 5000);
    assert_eq!(s.tasks_active(), 0);
    assert_eq!(s.tasks_completed(), 100);
}

#[test]
fn active_counts_queued_and_running() {
    let counts = Counts {
        admitted: 3,
        started: 1,
        cancelled: 1,
        ..Counts::default()
    };
    let s = PoolMetrics::new(Duration::from_millis(100)).snapshot(1, counts, [0, 0]);
    assert_eq!(s.tasks_active(), 2);
    assert_eq!(s.tasks_running(), 1);
    assert_eq!(s.tasks_queued(), 1);
}
