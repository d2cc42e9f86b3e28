use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::config::ComputeConfig;
use crate::engine::Engine;
use crate::home;
use crate::ledger::Room;
use crate::pool::ComputePool;

#[test]
fn an_await_spins_only_for_a_job_that_is_running_or_about_to() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        ..Default::default()
    })
    .unwrap();
    let engine = &pool.inner.engine;
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let blocker = pool.execute(move || wait.recv().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.ledger.counts().started < 1 {
        assert!(Instant::now() < deadline, "the blocking job never started");
        std::thread::yield_now();
    }
    // Jobs 1, 2 and 3 queue behind the running job 0. (Each asks as a job not
    // waiting for a runner of the queue, so that where the running job's
    // runner sits, perhaps on this CPU, does not matter here.)
    let queued: Vec<_> = (0..3).map(|_| pool.execute(|| ())).collect();
    assert!(engine.spin_budget(0, false).is_some(), "running");
    assert!(
        engine.spin_budget(1, false).is_none(),
        "next in line, but no thread is free"
    );
    assert!(
        engine.spin_budget(2, false).is_none(),
        "one job ahead, one thread"
    );
    assert!(engine.spin_budget(3, false).is_none(), "two jobs ahead");
    // With a thread free, the next job in line will start at once.
    let two = ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        ..Default::default()
    })
    .unwrap();
    assert!(
        two.inner.engine.spin_budget(0, false).is_some(),
        "first in line, threads free"
    );
    release.send(()).unwrap();
    futures::executor::block_on(blocker).unwrap();
    for handle in queued {
        futures::executor::block_on(handle).unwrap();
    }
}

fn one_thread_pool() -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn thousands_of_jobs_queued_behind_a_busy_thread_all_run() {
    let pool = one_thread_pool();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let blocker = pool.execute(move || wait.recv().unwrap());
    let jobs = 5000;
    let handles: Vec<_> = (0..jobs).map(|i| pool.execute(move || i)).collect();
    release.send(()).unwrap();
    futures::executor::block_on(blocker).unwrap();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(futures::executor::block_on(handle).unwrap(), i);
    }
}

#[test]
fn runners_retire_once_the_pool_is_idle() {
    let pool = one_thread_pool();
    let handles: Vec<_> = (0..100u64).map(|i| pool.execute(move || i * 2)).collect();
    for (i, handle) in (0..100u64).zip(handles) {
        assert_eq!(futures::executor::block_on(handle).unwrap(), i * 2);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.inner.engine.queue.runners.alive() > 0 {
        assert!(Instant::now() < deadline, "a runner never retired");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_execute_job_with_two_words_of_captures_is_queued_inline() {
    let pool = one_thread_pool();
    let engine = &pool.inner.engine;
    let (ticket, _) = engine.ledger.admit(Room::Any).unwrap();
    let (tx, _rx) = compute_bridge::channel();
    let captures = (Arc::new(1u64), 2u64);
    let work = move |_: CancelToken<'_>| *captures.0 + captures.1;
    let job = crate::erased::ErasedJob::new(crate::job::Job::new(
        engine,
        ticket,
        tx,
        home::site(engine, std::panic::Location::caller()),
        work,
    ));
    assert!(job.is_inline());
    job.discard(engine);
}

#[test]
fn only_a_pool_of_two_threads_or_more_keeps_a_runner_alive() {
    let keep_alive = Duration::from_millis(40);
    let keep_alive_of = |num_threads, runner_keep_alive| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(num_threads),
            runner_keep_alive,
            ..Default::default()
        })
        .unwrap();
        pool.inner.engine.runner_keep_alive()
    };
    assert_eq!(keep_alive_of(2, keep_alive), Some(keep_alive));
    assert_eq!(
        keep_alive_of(1, keep_alive),
        None,
        "rayon keeps its one thread"
    );
    assert_eq!(keep_alive_of(2, Duration::ZERO), None, "switched off");
}

/// A two-thread pool whose engine has learned that its jobs take
/// `typical` (fed to it directly: no job's timing is involved).
fn trained_pool(typical: Duration, await_spin_limit: Duration) -> ComputePool {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        await_spin_limit,
        runner_keep_alive: Duration::from_millis(40),
        ..Default::default()
    })
    .unwrap();
    for _ in 0..16 {
        pool.inner.engine.await_spin.observe(typical);
    }
    pool
}

#[cfg(target_os = "linux")]
#[test]
fn no_wait_awake_when_every_thread_serves_from_this_cpu() {
    use crate::placement::{pin_to, two_cpus};
    let Some((mine, theirs)) = two_cpus() else {
        return; // One CPU: nothing to tell apart.
    };
    // A fresh thread pinned to one CPU, so that the runners' marks and the
    // awaiter's look name the same CPU. The runners are counted by hand
    // (none really runs), both threads of the pool.
    std::thread::spawn(move || {
        pin_to(mine);
        let pool = trained_pool(Duration::from_nanos(100), Duration::from_micros(200));
        let engine = &pool.inner.engine;
        let runners = &engine.queue.runners;
        assert!(
            engine.spin_budget(0, true).is_some(),
            "no runner yet: a wait may pay"
        );
        let here = engine.queue.watchers.watch();
        assert!(runners.claim());
        assert!(
            engine.spin_budget(0, true).is_some(),
            "a thread to spare: a runner may yet start elsewhere"
        );
        assert!(runners.claim());
        assert_eq!(
            engine.spin_budget(0, true),
            None,
            "every runner gets this CPU only once the awaiter gives it up"
        );
        assert!(
            engine.spin_budget(0, false).is_some(),
            "a job started, or with a runner started for it, is no runner's to wait for"
        );
        let elsewhere = crate::watchers::while_watched_from(&engine.queue.watchers, theirs, || {
            engine.spin_budget(0, true)
        });
        assert!(
            elsewhere.is_some(),
            "a runner on another CPU takes the job at once"
        );
        assert!(runners.retire(|| true) && runners.retire(|| true));
        let latency = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            spin_policy: crate::SpinPolicy::Latency,
            ..Default::default()
        })
        .unwrap();
        let engine = &latency.inner.engine;
        for _ in 0..16 {
            engine.await_spin.observe(Duration::from_nanos(100));
        }
        let _also_here = engine.queue.watchers.watch();
        assert!(engine.queue.runners.claim());
        assert!(
            engine.spin_budget(0, true).is_some(),
            "the latency mode waits anyway"
        );
        assert!(engine.queue.runners.retire(|| true));
        drop(here);
    })
    .join()
    .unwrap();
}

#[test]
fn a_runner_marks_the_cpu_it_serves_from() {
    if crate::placement::current_cpu().is_none() {
        return; // The CPU is unknown here: nothing is marked.
    }
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        ..Default::default()
    })
    .unwrap();
    let engine = Arc::clone(&pool.inner.engine);
    // The runner may move between its mark and the look: look a few times.
    let marked = (0..20).any(|_| {
        let engine = Arc::clone(&engine);
        futures::executor::block_on(pool.execute(move || engine.queue.watchers.only_here()))
            .unwrap()
    });
    assert!(marked, "the job's own runner is the one marked, on its CPU");
}

#[test]
fn a_runner_lingers_after_any_job_and_dozes_only_after_long_ones() {
    let keep_alive = Some(Duration::from_millis(40));
    let short = trained_pool(Duration::from_nanos(100), Duration::from_micros(200));
    assert!(short.inner.engine.linger_budget().is_some());
    assert_eq!(
        short.inner.engine.doze_budget(),
        None,
        "short jobs come back within a linger or not soon"
    );
    let long = trained_pool(3 * crate::wake_cost(), Duration::from_micros(200));
    assert!(
        long.inner.engine.linger_budget().is_some(),
        "the next long job may be on its way too"
    );
    assert_eq!(long.inner.engine.doze_budget(), keep_alive);
    let spin_off = trained_pool(Duration::from_nanos(100), Duration::ZERO);
    assert_eq!(
        spin_off.inner.engine.linger_budget(),
        None,
        "no spin at all"
    );
    assert_eq!(spin_off.inner.engine.doze_budget(), keep_alive);
}

#[test]
fn lingers_between_short_jobs_shrink_to_a_look_while_no_job_comes_within_them() {
    let balanced = trained_pool(Duration::from_nanos(100), Duration::from_micros(200));
    let engine = &balanced.inner.engine;
    let whole = engine.linger_budget().unwrap();
    assert_eq!(
        after_lingers(engine, None),
        Some(whole.min(crate::spin::PICKUP))
    );
    assert_eq!(
        after_lingers(engine, Some(Duration::from_nanos(300))),
        Some(whole),
        "jobs come at once again"
    );
    let long = trained_pool(3 * crate::wake_cost(), Duration::from_micros(200));
    let whole = long.inner.engine.linger_budget();
    assert_eq!(
        after_lingers(&long.inner.engine, None),
        whole,
        "between long jobs, a doze follows: linger on"
    );
    let latency = ComputePool::new(ComputeConfig {
        num_threads: Some(1),
        spin_policy: crate::SpinPolicy::Latency,
        ..Default::default()
    })
    .unwrap();
    let whole = latency.inner.engine.linger_budget();
    assert_eq!(
        after_lingers(&latency.inner.engine, None),
        whole,
        "the latency mode always lingers"
    );
}

/// The linger budget after 32 lingers that ended `came_after`.
fn after_lingers(engine: &Engine, came_after: Option<Duration>) -> Option<Duration> {
    for _ in 0..32 {
        engine.lingered(came_after);
    }
    engine.linger_budget()
}

#[test]
fn a_kept_alive_runner_serves_the_next_jobs_then_retires() {
    let pool = ComputePool::new(ComputeConfig {
        num_threads: Some(2),
        runner_keep_alive: Duration::from_millis(100),
        await_spin_limit: Duration::ZERO,
        ..Default::default()
    })
    .unwrap();
    let runners = &pool.inner.engine.queue.runners;
    let deadline = Instant::now() + Duration::from_secs(10);
    // A stall longer than the keep-alive lets the runner retire early;
    // try again rather than fail on a busy machine.
    let dozed = (0..20).any(|i| {
        assert_eq!(
            futures::executor::block_on(pool.execute(move || i)).unwrap(),
            i
        );
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            if runners.dozing() {
                return true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        false
    });
    assert!(dozed, "the runner never dozed");
    while runners.alive() > 0 {
        assert!(Instant::now() < deadline, "a dozing runner never retired");
        std::thread::sleep(Duration::from_millis(1));
    }
}
