//! The spin policy: with `Balanced` (the default) the first poll of a
//! short, running job's handle wakes its own task and returns `Pending` at
//! once, so the executor runs every other ready task first; once the
//! budget is spent the handle parks like any other. On a multi-thread Tokio
//! runtime with a worker parked, which takes any other task, the first poll
//! waits itself instead. With `Latency` the first poll always waits awake
//! itself and then parks, without waking its task.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use compute_pool::{wake_cost, ComputeConfig, ComputePool, SpinPolicy, TaskHandle, MAX_AWAIT_SPIN};
use compute_test_support::CountingWaker;
use support::{watchdog, Blocker};

/// A one-thread pool of `policy` that has learned its jobs are short, and a
/// job running on it until `release` is sent.
fn running_job(policy: SpinPolicy) -> (ComputePool, TaskHandle<()>, mpsc::Sender<()>) {
    running_job_after(policy, Duration::ZERO)
}

/// As [`running_job`], the pool having learned that its jobs take `typical`.
fn running_job_after(
    policy: SpinPolicy,
    typical: Duration,
) -> (ComputePool, TaskHandle<()>, mpsc::Sender<()>) {
    let pool = trained_pool(1, policy, typical);
    let (handle, release) = Blocker::occupy(&pool).into_parts();
    (pool, handle, release)
}

/// A pool of `threads` and `policy` that has learned its jobs take
/// `typical` (its spin limit is the largest allowed, so only the policy
/// bounds it).
fn trained_pool(threads: usize, policy: SpinPolicy, typical: Duration) -> ComputePool {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        spin_policy: policy,
        await_spin_limit: MAX_AWAIT_SPIN,
        ..Default::default()
    })
    .unwrap();
    for _ in 0..16 {
        futures::executor::block_on(pool.execute(move || busy_for(typical))).unwrap();
    }
    pool
}

#[test]
fn a_balanced_poll_yields_to_other_tasks_then_parks() {
    watchdog(|| yields_then_parks("the first poll woke its own task: a yield, not a spin"));
}

/// On a balanced one-thread pool that has learned its jobs are short, the
/// first poll of a running job's handle wakes its own task (`why`) and
/// returns `Pending`; once the budget is spent the next poll parks, and
/// the job's result wakes the task.
fn yields_then_parks(why: &str) {
    let (_pool, mut handle, release) = running_job(SpinPolicy::Balanced);
    let (counter, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
    assert_eq!(counter.wakes(), 1, "{why}");
    // Past any budget (a wake costs at most 200 µs): the next poll parks.
    std::thread::sleep(Duration::from_millis(5));
    assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
    assert_eq!(
        counter.wakes(),
        1,
        "parked: only the job's result wakes it now"
    );
    release.send(()).unwrap();
    support::wait_until("the job's result wakes the task", || counter.wakes() == 2);
    assert!(matches!(
        Pin::new(&mut handle).poll(&mut cx),
        Poll::Ready(Ok(()))
    ));
}

/// Polls the handle of a job running until `release` is sent: the poll
/// returns `Pending` without waking its own task (`why`); then the job's
/// result wakes it, and the next poll gives the result.
fn polls_once_then_parks(handle: &mut TaskHandle<()>, release: &mpsc::Sender<()>, why: &str) {
    let (counter, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut *handle).poll(&mut cx).is_pending());
    assert_eq!(counter.wakes(), 0, "{why}");
    release.send(()).unwrap();
    support::wait_until("the job's result wakes the task", || counter.wakes() == 1);
    assert!(matches!(
        Pin::new(handle).poll(&mut cx),
        Poll::Ready(Ok(()))
    ));
}

/// Computes (holding the CPU) for `duration`.
fn busy_for(duration: Duration) {
    let started = Instant::now();
    while started.elapsed() < duration {
        std::hint::spin_loop();
    }
}

#[test]
fn no_wait_awake_for_jobs_longer_than_a_wake() {
    watchdog(|| {
        // Jobs three wakes long: a wait of one wake would end long before
        // the job does, and the awaiter park after all.
        let (_pool, mut handle, release) = running_job_after(SpinPolicy::Balanced, 3 * wake_cost());
        polls_once_then_parks(&mut handle, &release, "parked at once: no self-wake");
    });
}

#[test]
fn a_loop_of_handles_ready_at_once_gives_its_thread_back() {
    watchdog(|| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            ..Default::default()
        })
        .unwrap();
        let (counter, waker) = CountingWaker::new();
        let mut cx = Context::from_waker(&waker);
        // Every handle's result is there before its first poll: without a
        // yield now and then, a task awaiting them in a loop would keep its
        // executor's thread for good. A wake costs at most 200 µs, so a
        // yield comes within a few hundred round trips.
        for round in 0..5_000 {
            let mut handle = pool.execute(move || round);
            support::wait_until("the job finishes", || handle.is_finished());
            match Pin::new(&mut handle).poll(&mut cx) {
                Poll::Ready(result) => assert_eq!(result.unwrap(), round),
                Poll::Pending => {
                    assert_eq!(counter.wakes(), 1, "it woke its own task");
                    assert!(matches!(
                        Pin::new(&mut handle).poll(&mut cx),
                        Poll::Ready(Ok(r)) if r == round
                    ));
                    return;
                }
            }
        }
        panic!("5,000 handles ready at once and the thread never yielded");
    });
}

#[test]
fn a_latency_poll_waits_awake_itself_then_parks() {
    watchdog(|| {
        let (_pool, mut handle, release) = running_job(SpinPolicy::Latency);
        polls_once_then_parks(&mut handle, &release, "it spun in the poll, then parked");
    });
}

#[test]
fn a_job_behind_others_gets_no_spin_at_all() {
    watchdog(|| {
        let (pool, running, release) = running_job(SpinPolicy::Balanced);
        // Queued behind the running job on a one-thread pool: its awaiter
        // could not be served sooner, so it parks at once.
        let mut queued = pool.execute(|| ());
        let (counter, waker) = CountingWaker::new();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut queued).poll(&mut cx).is_pending());
        assert_eq!(counter.wakes(), 0, "no self-wake for a job that must wait");
        release.send(()).unwrap();
        futures::executor::block_on(running).unwrap();
        futures::executor::block_on(queued).unwrap();
    });
}

#[test]
fn no_wait_awake_while_another_task_awaits_the_pool() {
    watchdog(|| {
        let pool = trained_pool(2, SpinPolicy::Balanced, Duration::ZERO);
        // One task awaits a running job: its handle is pending.
        let (mut first, release_first) = Blocker::occupy(&pool).into_parts();
        let waker = CountingWaker::new().1;
        assert!(Pin::new(&mut first)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        // Another task's job runs on the other thread: short and running,
        // but the executor has the first task to run when its result comes,
        // and that task's job wants the CPU a wait would burn.
        let (mut second, release_second) = Blocker::occupy(&pool).into_parts();
        polls_once_then_parks(
            &mut second,
            &release_second,
            "no self-wake while another handle of the pool is pending",
        );
        release_first.send(()).unwrap();
        futures::executor::block_on(first).unwrap();
    });
}

/// Runs `check` in a task on a multi-thread Tokio runtime of `workers`,
/// once one of its workers is parked if `with_one_parked` (the others have
/// nothing to do, so one parks soon after start-up).
fn on_tokio_worker(workers: usize, with_one_parked: bool, check: impl FnOnce() + Send + 'static) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap();
    let metrics = runtime.metrics();
    let task = runtime.spawn(async move {
        if with_one_parked {
            // An odd count: that worker is parked (Tokio's documented
            // meaning).
            support::wait_until("a worker parks", || {
                (0..metrics.num_workers()).any(|w| metrics.worker_park_unpark_count(w) % 2 == 1)
            });
        }
        check();
    });
    runtime.block_on(task).unwrap();
}

#[cfg(feature = "tokio")]
#[test]
fn a_balanced_poll_waits_in_itself_while_a_tokio_worker_is_parked() {
    watchdog(|| {
        // The other worker would take any other task; a self-wake would
        // only wake it. So the first poll waits itself, then parks.
        on_tokio_worker(2, true, || {
            let (_pool, mut handle, release) = running_job(SpinPolicy::Balanced);
            polls_once_then_parks(&mut handle, &release, "it waited in the poll, then parked");
        });
    });
}

#[test]
fn a_balanced_poll_on_the_only_tokio_worker_yields() {
    watchdog(|| {
        on_tokio_worker(1, false, || {
            yields_then_parks("no worker to spare: the first poll woke its own task");
        });
    });
}

/// A waker whose `wake_by_ref` panics.
struct Panicking;

impl Wake for Panicking {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        panic!("a waker that panics when woken");
    }
}

#[test]
fn a_waker_that_panics_when_the_poll_wakes_it_leaves_the_handle_whole() {
    watchdog(|| {
        let (_pool, mut handle, release) = running_job(SpinPolicy::Balanced);
        let panicking = Waker::from(Arc::new(Panicking));
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut handle).poll(&mut Context::from_waker(&panicking))
        }));
        assert!(
            polled.is_err(),
            "the poller's own waker panicked in its poll"
        );
        release.send(()).unwrap();
        futures::executor::block_on(handle).expect("the result still arrives");
    });
}
