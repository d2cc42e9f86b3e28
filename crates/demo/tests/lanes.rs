//! Lanes in `pool` mode: `/tokenize` and `/infer` jobs wait in the High
//! lane, `/embed` jobs in the Low lane, and a waiting High job starts before
//! a waiting Low one; with lanes off every job is High, first come first
//! served. Checked by counting the pool's per-lane starts and by the order
//! two queued jobs start in, never by timing.

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{models, post, with_watchdog};
use compute_demo::dispatch::Mode;
use compute_demo::server::{DemoServer, ServerOptions};
use compute_runtime::{Priority, RuntimeConfig};

/// A `pool` server with one compute thread, lanes on or off. A Low job is
/// never promoted for its age here (`low_priority_max_wait_ms` of a minute),
/// so which job starts next depends on the lanes alone.
fn start(mode: Mode, lanes: bool) -> DemoServer {
    DemoServer::start(
        ServerOptions {
            mode,
            runtime: RuntimeConfig {
                num_worker_threads: Some(2),
                compute_threads: Some(1),
                low_priority_max_wait_ms: Some(60_000),
                ..RuntimeConfig::default()
            },
            lanes,
            ..ServerOptions::default()
        },
        models(),
    )
    .expect("the server starts")
}

/// Jobs started from each lane so far: (High, Low).
fn started(server: &DemoServer) -> (u64, u64) {
    let metrics = server.state().pool.as_ref().expect("a pool").metrics();
    (
        metrics.lane(Priority::High).tasks_started(),
        metrics.lane(Priority::Low).tasks_started(),
    )
}

fn one_of_each(server: &DemoServer) {
    let addr = server.addr();
    for (path, body) in [
        ("/tokenize", r#"{"texts": ["hello world"]}"#),
        ("/embed", r#"{"text": "hello", "context": "world"}"#),
        (
            "/infer",
            &format!(r#"{{"inputs": [{:?}]}}"#, vec![0.5f32; 64]),
        ),
    ] {
        let (status, answer) = post(addr, path, body);
        assert_eq!(status, 200, "{path}: {answer}");
    }
}

#[test]
fn embed_waits_in_the_low_lane_tokenize_and_infer_in_the_high_lane() {
    with_watchdog(Duration::from_secs(120), || {
        let server = start(Mode::Pool, true);
        assert!(server.state().dispatcher.lanes());
        one_of_each(&server);
        assert_eq!(started(&server), (2, 1));
        server.shutdown().unwrap();
    });
}

#[test]
fn with_lanes_off_every_job_is_high() {
    with_watchdog(Duration::from_secs(120), || {
        let server = start(Mode::Pool, false);
        let dispatcher = &server.state().dispatcher;
        assert!(!dispatcher.lanes());
        assert_eq!(
            dispatcher.in_lane(Priority::Low).lane(),
            Some(Priority::High)
        );
        one_of_each(&server);
        assert_eq!(started(&server), (3, 0));
        server.shutdown().unwrap();
    });
}

#[test]
fn other_modes_have_no_lanes() {
    with_watchdog(Duration::from_secs(60), || {
        for mode in [Mode::Inline, Mode::SpawnBlocking, Mode::Naive] {
            let server = start(mode, true);
            let dispatcher = &server.state().dispatcher;
            assert!(!dispatcher.lanes(), "{mode}");
            assert_eq!(dispatcher.in_lane(Priority::Low).lane(), None, "{mode}");
            one_of_each(&server);
            // The pool exists in every mode, but only `pool` sends it work.
            assert_eq!(started(&server), (0, 0), "{mode}");
            server.shutdown().unwrap();
        }
    });
}

/// Waits (bounded) until `ready` holds, polling.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not happen in 30 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// With the only compute thread busy, queues a job as `/embed` does, then
/// one as `/tokenize` does, frees the thread, and returns the order they
/// ran in.
fn start_order(lanes: bool) -> Vec<&'static str> {
    let server = start(Mode::Pool, lanes);
    let pool = server.state().pool.clone().expect("a pool");
    let dispatcher = server.state().dispatcher.clone();
    let (release, wait) = mpsc::channel::<()>();
    let busy = pool.execute(move || {
        let _ = wait.recv_timeout(Duration::from_secs(60));
    });
    wait_until("the blocking job's start", || {
        pool.metrics().tasks_running() == 1
    });
    let order = Arc::new(Mutex::new(Vec::new()));
    // A runtime with a worker of its own, so the spawned calls submit their
    // jobs while this thread watches the queue.
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let queued = |n: u64| {
        let m = pool.metrics();
        m.lane(Priority::High).tasks_queued() + m.lane(Priority::Low).tasks_queued() == n
    };
    let mut jobs = Vec::new();
    for (name, lane) in [("embed", Priority::Low), ("tokenize", Priority::High)] {
        let order = order.clone();
        let dispatcher = dispatcher.in_lane(lane);
        jobs.push(client.spawn(async move {
            dispatcher
                .install(move || order.lock().unwrap().push(name))
                .await
        }));
        let n = jobs.len() as u64;
        wait_until("the job's queueing", || queued(n));
    }
    release.send(()).unwrap();
    futures::executor::block_on(busy).unwrap();
    for job in jobs {
        client.block_on(job).unwrap().unwrap();
    }
    server.shutdown().unwrap();
    let order = order.lock().unwrap().clone();
    order
}

#[test]
fn a_waiting_high_job_starts_before_a_waiting_low_one() {
    let order = with_watchdog(Duration::from_secs(120), || start_order(true));
    assert_eq!(order, ["tokenize", "embed"]);
}

#[test]
fn with_lanes_off_jobs_start_in_arrival_order() {
    let order = with_watchdog(Duration::from_secs(120), || start_order(false));
    assert_eq!(order, ["embed", "tokenize"]);
}
