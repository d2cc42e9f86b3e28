//! Priority lanes: a waiting High job starts before any waiting Low job;
//! Low is never starved (one start in `low_priority_every`, and a Low job
//! that waited `low_priority_max_wait` starts next); every submitting
//! method honours its lane, with and without `max_in_flight`; cancel,
//! panics and shutdown work in the Low lane as in the High one.
//!
//! Each test blocks a one-thread pool (so one runner starts the waiting
//! jobs one by one, in the lanes' order), fills the lanes, releases the
//! pool and reads the order the jobs started in.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputeError, ComputePool, Priority, TaskHandle};
use rayon::prelude::*;
use support::{watchdog, Blocker};

/// A one-thread pool whose Low jobs never age into a turn of their own
/// (only the one-in-`every` rule gives them one).
fn one_thread(every: u32, max_in_flight: Option<usize>) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        max_in_flight,
        low_priority_every: every,
        low_priority_max_wait: Duration::from_secs(3600),
        ..Default::default()
    })
    .unwrap()
}

type Order = Arc<Mutex<Vec<String>>>;

/// A job that notes `name` when it starts.
fn note(order: &Order, name: String) -> impl FnOnce() + Send + 'static {
    let order = order.clone();
    move || order.lock().unwrap().push(name)
}

fn finish<R>(handles: Vec<TaskHandle<R>>) -> Vec<Result<R, ComputeError>> {
    handles
        .into_iter()
        .map(futures::executor::block_on)
        .collect()
}

#[test]
fn a_waiting_high_job_starts_before_any_waiting_low_job() {
    for max_in_flight in [None, Some(1)] {
        let order = watchdog(move || {
            let pool = one_thread(8, max_in_flight);
            let low = pool.with_priority(Priority::Low);
            let order = Order::default();
            let blocker = Blocker::occupy(&pool);
            let mut handles = Vec::new();
            for i in 0..4 {
                handles.push(low.execute(note(&order, format!("low{i}"))));
                handles.push(pool.execute(note(&order, format!("high{i}"))));
            }
            futures::executor::block_on(blocker.release()).unwrap();
            assert!(finish(handles).iter().all(Result::is_ok));
            Arc::try_unwrap(order).unwrap().into_inner().unwrap()
        });
        assert_eq!(
            order,
            ["high0", "high1", "high2", "high3", "low0", "low1", "low2", "low3"],
            "max_in_flight {max_in_flight:?}"
        );
    }
}

#[test]
fn every_submitting_method_honours_its_lane() {
    let order = watchdog(|| {
        let pool = one_thread(100, None);
        let low = pool.with_priority(Priority::Low);
        let order = Order::default();
        let blocker = Blocker::occupy(&pool);
        let o = || order.clone();
        fn noted(o: Order, name: &str) {
            o.lock().unwrap().push(name.to_owned());
        }
        let mut done: Vec<TaskHandle<()>> = Vec::new();
        let (o1, o2, o3, o4, o5, o6, o7) = (o(), o(), o(), o(), o(), o(), o());
        done.push(low.install(move || noted(o1, "install")));
        done.push(low.execute_scoped(move |_| noted(o2, "scoped")));
        done.push(low.execute_scoped_fifo(move |_| noted(o3, "scoped_fifo")));
        done.push(low.execute_cancellable(move |_| noted(o4, "cancellable")));
        let join = low.join(move || noted(o5, "join"), || ());
        let map = low.par_map(vec![o6], |o| noted(o, "par_map"));
        let batch = low.parallel_batch(vec![o7], 1, |c: &[Order]| {
            noted(c[0].clone(), "parallel_batch");
            vec![()]
        });
        let tried = low.try_execute(note(&order, "try_execute".into())).unwrap();
        let high = pool.execute(note(&order, "high".into()));
        futures::executor::block_on(blocker.release()).unwrap();
        assert!(finish(done).iter().all(Result::is_ok));
        futures::executor::block_on(join).unwrap();
        futures::executor::block_on(map).unwrap();
        futures::executor::block_on(batch).unwrap();
        futures::executor::block_on(tried).unwrap();
        futures::executor::block_on(high).unwrap();
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    });
    assert_eq!(order[0], "high", "the High job went first: {order:?}");
    assert_eq!(order.len(), 9, "{order:?}");
}

#[test]
fn low_gets_one_start_in_every_n_under_a_stream_of_high_jobs() {
    let order = watchdog(|| {
        let pool = one_thread(8, None);
        let low = pool.with_priority(Priority::Low);
        let order = Order::default();
        let blocker = Blocker::occupy(&pool);
        let mut handles: Vec<_> = (0..3)
            .map(|i| low.execute(note(&order, format!("low{i}"))))
            .collect();
        handles.extend((0..40).map(|i| pool.execute(note(&order, format!("high{i}")))));
        futures::executor::block_on(blocker.release()).unwrap();
        assert!(finish(handles).iter().all(Result::is_ok));
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    });
    let lows: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, name)| name.starts_with("low"))
        .map(|(position, _)| position + 1)
        .collect();
    assert_eq!(
        lows,
        [8, 16, 24],
        "the 8th, 16th and 24th starts: {order:?}"
    );
}

#[test]
fn a_low_job_that_waited_past_its_limit_starts_next() {
    let order = watchdog(|| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            low_priority_every: 1000,
            low_priority_max_wait: Duration::from_millis(1),
            ..Default::default()
        })
        .unwrap();
        let low = pool.with_priority(Priority::Low);
        let order = Order::default();
        let blocker = Blocker::occupy(&pool);
        let mut handles = vec![low.execute(note(&order, "low".into()))];
        // Longer than the limit: the Low job is overdue when the pool frees.
        std::thread::sleep(Duration::from_millis(20));
        handles.extend((0..5).map(|i| pool.execute(note(&order, format!("high{i}")))));
        futures::executor::block_on(blocker.release()).unwrap();
        assert!(finish(handles).iter().all(Result::is_ok));
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    });
    assert_eq!(order[0], "low", "{order:?}");
}

#[test]
fn cancel_panics_and_shutdown_work_in_the_low_lane() {
    watchdog(|| {
        let pool = one_thread(8, None);
        let low = pool.with_priority(Priority::Low);
        let blocker = Blocker::occupy(&pool);
        let mut cancelled = low.execute(|| unreachable!("cancelled before it started"));
        let panics = low.execute(|| -> u8 { panic!("a Low job that panics") });
        let runs = low.execute(|| 7);
        assert!(cancelled.cancel());
        futures::executor::block_on(blocker.release()).unwrap();
        assert!(futures::executor::block_on(cancelled)
            .unwrap_err()
            .is_cancelled());
        assert!(futures::executor::block_on(panics).unwrap_err().is_panic());
        assert_eq!(futures::executor::block_on(runs).unwrap(), 7);
        let m = pool.metrics();
        assert_eq!(m.lane(Priority::Low).tasks_started(), 2, "{m}");
        assert_eq!(m.tasks_active(), 0, "{m}");

        // Past the shutdown deadline, Low jobs still waiting resolve to
        // `Shutdown` without running.
        let blocker = Blocker::occupy(&pool);
        let waiting: Vec<_> = (0..3).map(|_| low.execute(|| unreachable!())).collect();
        assert!(!pool.shutdown_blocking(Duration::from_millis(10)));
        for handle in waiting {
            assert!(futures::executor::block_on(handle)
                .unwrap_err()
                .is_shutdown());
        }
        futures::executor::block_on(blocker.release()).unwrap();
        assert!(pool.shutdown_blocking(support::LIMIT));
        assert!(low.execute(|| ()).now_or_never_is_shutdown());
    });
}

/// Resolving an already refused handle, without a runtime.
trait NowOrNever {
    fn now_or_never_is_shutdown(self) -> bool;
}

impl<R> NowOrNever for TaskHandle<R> {
    fn now_or_never_is_shutdown(self) -> bool {
        futures::executor::block_on(self).is_err_and(|e| e.is_shutdown())
    }
}

#[test]
fn lane_metrics_count_waiting_and_started_jobs() {
    watchdog(|| {
        let pool = one_thread(8, None);
        let low = pool.with_priority(Priority::Low);
        let blocker = Blocker::occupy(&pool);
        let handles: Vec<_> = (0..3).map(|i| low.execute(move || i)).collect();
        let m = pool.metrics();
        assert_eq!(m.lane(Priority::Low).tasks_queued(), 3, "{m}");
        futures::executor::block_on(blocker.release()).unwrap();
        assert_eq!(
            finish(handles).into_iter().map(Result::unwrap).sum::<i32>(),
            3
        );
        let m = pool.metrics();
        let low = m.lane(Priority::Low);
        assert_eq!((low.tasks_queued(), low.tasks_started()), (0, 3));
        assert!(low.queue_wait_quantile_us(0.99) >= low.queue_wait_quantile_us(0.5));
        assert!(low.avg_queue_wait_us() > 0.0);
        // Data parallelism inside a Low job runs on the same threads.
        let sum = futures::executor::block_on(
            pool.with_priority(Priority::Low)
                .install(|| (0..100u64).into_par_iter().sum::<u64>()),
        )
        .unwrap();
        assert_eq!(sum, 4950);
    });
}

#[test]
fn lane_settings_out_of_range_are_refused_by_name() {
    let err = ComputePool::new(ComputeConfig {
        low_priority_every: 0,
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("low_priority_every = 0"), "{err}");
    for wait in [Duration::ZERO, Duration::from_secs(3601)] {
        let err = ComputePool::new(ComputeConfig {
            low_priority_max_wait: wait,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("low_priority_max_wait"), "{err}");
    }
}
