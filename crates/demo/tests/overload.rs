//! Overload: past `max_in_flight + max_queued` a compute request gets `503`
//! with `Retry-After` and a JSON body at once (before its body is read when
//! the pool is already full), the queued requests are answered, `/ping`
//! keeps answering, and the service recovers.

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{raw, raw_connect, read_answer, start_bounded, start_with, with_watchdog};
use compute_demo::dispatch::Mode;
use compute_demo::server::{DemoServer, Limits, ServerOptions};

/// Hang detector for answers that should be immediate (far below the 30 s
/// compute timeout, generous for a debug build on a busy machine).
const PROMPT: Duration = Duration::from_secs(10);

/// Fills the server's only `max_in_flight` slot with a job that waits for
/// the returned sender (or for it to be dropped), and waits until it runs.
fn occupy(server: &DemoServer) -> (mpsc::Sender<()>, compute_runtime::TaskHandle<()>) {
    let pool = server.state().pool.clone().expect("pool mode has a pool");
    let (release, wait) = mpsc::channel::<()>();
    let job = pool
        .try_execute(move || {
            let _ = wait.recv_timeout(Duration::from_secs(60));
        })
        .expect("the pool has room for the first job");
    let deadline = Instant::now() + PROMPT;
    while pool.metrics().tasks_running() == 0 {
        assert!(Instant::now() < deadline, "the blocking job did not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    (release, job)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const GET_PING: &[u8] = b"GET /ping HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";

#[test]
fn a_saturated_pool_answers_503_with_retry_after_at_once() {
    with_watchdog(Duration::from_secs(120), || {
        let server = start_bounded(Mode::Pool, Limits::default(), Some(1), Some(0));
        let addr = server.addr();
        let (release, job) = occupy(&server);
        for (path, body) in [
            ("/tokenize", r#"{"texts": ["hello"]}"#),
            ("/embed", r#"{"text": "hello"}"#),
            ("/infer", r#"{"inputs": []}"#),
        ] {
            let started = Instant::now();
            let answer = raw(addr, &post(path, body));
            assert!(
                started.elapsed() < PROMPT,
                "{path}: {:?}",
                started.elapsed()
            );
            assert_eq!(answer.status, 503, "{path}: {answer:?}");
            assert_eq!(
                answer.header("retry-after").as_deref(),
                Some("1"),
                "{answer:?}"
            );
            assert!(answer.error().contains("saturated"), "{answer:?}");
        }
        let ping = raw(addr, GET_PING);
        assert_eq!((ping.status, ping.body.as_str()), (200, "pong"));

        // Before the body: only the head is sent, and the 503 still comes.
        let mut stream = raw_connect(addr, PROMPT);
        stream
            .write_all(b"POST /tokenize HTTP/1.1\r\nhost: t\r\ncontent-length: 100000\r\n\r\n")
            .unwrap();
        let answer = read_answer(&mut stream).expect("a 503 without the body");
        assert_eq!(answer.status, 503, "{answer:?}");

        // The metrics count the refusals; the service recovers.
        release.send(()).unwrap();
        futures::executor::block_on(job).unwrap();
        let answer = raw(addr, &post("/tokenize", r#"{"texts": ["hello world"]}"#));
        assert_eq!(answer.status, 200, "{answer:?}");
        let metrics = raw(
            addr,
            b"GET /metrics HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        );
        assert!(
            metrics
                .body
                .contains("demo_http_requests_total{endpoint=\"/tokenize\",status=\"5xx\"} 2"),
            "{}",
            metrics.body
        );
        server.shutdown().unwrap();
    });
}

#[test]
fn a_crowd_of_large_requests_is_shed_and_ping_stays_up() {
    with_watchdog(Duration::from_secs(240), || {
        let server = start_bounded(Mode::Pool, Limits::default(), Some(2), Some(2));
        let addr = server.addr();
        // 64 texts of 4 KiB: 256 KiB a request, many milliseconds of
        // tokenizing even in a release build.
        let text = "the quick brown fox jumps over the lazy dog ".repeat(93);
        let body = serde_json::json!({ "texts": vec![text; 64], "return_ids": false }).to_string();
        let request = post("/tokenize", &body);
        let crowd: Vec<_> = (0..24)
            .map(|_| {
                let request = request.clone();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let answer = raw(addr, &request);
                    (answer, started.elapsed())
                })
            })
            .collect();
        // While the crowd is in, /ping still answers promptly.
        for _ in 0..5 {
            let started = Instant::now();
            let ping = raw(addr, GET_PING);
            assert_eq!(ping.status, 200);
            assert!(
                started.elapsed() < PROMPT,
                "/ping took {:?}",
                started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut by_status = std::collections::BTreeMap::new();
        for thread in crowd {
            let (answer, elapsed) = thread.join().unwrap();
            match answer.status {
                200 => {}
                503 => {
                    assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
                    assert!(answer.error().contains("saturated"), "{answer:?}");
                    // Shed requests are answered well before the 30 s
                    // compute timeout.
                    assert!(elapsed < Duration::from_secs(20), "a 503 after {elapsed:?}");
                }
                other => panic!("unexpected {other}: {answer:?}"),
            }
            *by_status.entry(answer.status).or_insert(0) += 1;
        }
        assert!(by_status.contains_key(&200), "{by_status:?}");
        assert!(by_status.contains_key(&503), "{by_status:?}");
        server.shutdown().unwrap();
    });
}

#[test]
fn other_modes_have_no_admission_limit() {
    with_watchdog(Duration::from_secs(60), || {
        let server = start_with(Mode::Naive, Limits::default(), Some(1));
        assert!(!server.state().dispatcher.is_saturated());
        let answer = raw(server.addr(), &post("/tokenize", r#"{"texts": ["hi"]}"#));
        assert_eq!(answer.status, 200, "{answer:?}");
        server.shutdown().unwrap();
    });
}

#[test]
fn the_dispatcher_refuses_work_past_max_in_flight_and_max_queued() {
    use compute_demo::dispatch::DispatchError;
    with_watchdog(Duration::from_secs(60), || {
        let server = start_bounded(Mode::Pool, Limits::default(), Some(1), Some(0));
        let dispatcher = server.state().dispatcher.clone();
        let (release, job) = occupy(&server);
        assert!(dispatcher.is_saturated());
        let runtime = common::client_runtime();
        let refused = runtime.block_on(dispatcher.install(|| 1));
        assert!(
            matches!(refused, Err(DispatchError::Saturated(_))),
            "{refused:?}"
        );
        let refused = runtime.block_on(dispatcher.scoped(|_| 1));
        assert!(
            matches!(refused, Err(DispatchError::Saturated(_))),
            "{refused:?}"
        );
        release.send(()).unwrap();
        futures::executor::block_on(job).unwrap();
        assert_eq!(runtime.block_on(dispatcher.install(|| 2)), Ok(2));
        server.shutdown().unwrap();
    });
}

#[test]
fn past_max_queued_requests_get_503_and_the_queued_ones_are_answered() {
    with_watchdog(Duration::from_secs(120), || {
        // One job running, two waiting: the pool holds three compute jobs.
        let server = start_bounded(Mode::Pool, Limits::default(), Some(1), Some(2));
        let addr = server.addr();
        let pool = server.state().pool.clone().unwrap();
        let (release, job) = occupy(&server);
        let request = post("/tokenize", r#"{"texts": ["hello world"]}"#);
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let request = request.clone();
                std::thread::spawn(move || raw(addr, &request))
            })
            .collect();
        let deadline = Instant::now() + PROMPT;
        while pool.metrics().tasks_queued() < 2 {
            assert!(Instant::now() < deadline, "the two requests did not queue");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(server.state().dispatcher.is_saturated());
        // The queue is full: more requests are refused while the blocking
        // job still runs (without the bound they would wait for it, and the
        // read below would time out).
        for _ in 0..3 {
            let mut stream = raw_connect(addr, PROMPT);
            stream.write_all(&request).unwrap();
            let answer = read_answer(&mut stream).expect("a 503 while the pool is full");
            assert_eq!(answer.status, 503, "{answer:?}");
            assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
        }
        release.send(()).unwrap();
        futures::executor::block_on(job).unwrap();
        for thread in queued {
            let answer = thread.join().unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        assert_eq!(
            pool.metrics().tasks_rejected(),
            0,
            "refused before the body"
        );
        server.shutdown().unwrap();
    });
}

#[test]
fn a_burst_past_a_tiny_queue_from_the_config_is_counted_in_200s_and_503s() {
    with_watchdog(Duration::from_secs(120), || {
        // The bound comes from a `[runtime]` table, as `--config` gives it:
        // one job running and one waiting at most.
        let runtime = compute_runtime::RuntimeConfig::from_toml_str(
            "[runtime]\nnum_worker_threads = 2\ncompute_threads = 2\nmax_in_flight = 1\nmax_queued = 1\n",
        )
        .unwrap();
        let server = DemoServer::start(
            ServerOptions {
                runtime,
                ..ServerOptions::default()
            },
            common::models(),
        )
        .unwrap();
        let addr = server.addr();
        let (release, job) = occupy(&server);
        let request = post("/tokenize", r#"{"texts": ["hello world"]}"#);
        const BURST: u64 = 12;
        let burst: Vec<_> = (0..BURST)
            .map(|_| {
                let request = request.clone();
                std::thread::spawn(move || raw(addr, &request).status)
            })
            .collect();
        // While the blocking job runs, one request of the burst waits in
        // the queue and every other one is refused. Without the bound all
        // twelve would wait, and this would not happen.
        let stats = server.state().stats.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.counts("/tokenize")[2] < BURST - 1 {
            assert!(
                Instant::now() < deadline,
                "{:?} answers while the pool was full",
                stats.counts("/tokenize")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        release.send(()).unwrap();
        futures::executor::block_on(job).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for thread in burst {
            *counts.entry(thread.join().unwrap()).or_insert(0u64) += 1;
        }
        assert_eq!(
            counts,
            std::collections::BTreeMap::from([(200, 1), (503, BURST - 1)])
        );
        server.shutdown().unwrap();
    });
}

#[test]
fn the_default_pool_runs_a_job_per_compute_thread_and_queues_32() {
    with_watchdog(Duration::from_secs(60), || {
        let server = common::start(Mode::Pool);
        let pool = server.state().pool.clone().unwrap();
        assert_eq!(pool.config().max_in_flight, Some(pool.num_threads()));
        assert_eq!(
            pool.config().max_queued,
            Some(compute_demo::server::DEFAULT_MAX_QUEUED)
        );
        assert_eq!(compute_demo::server::DEFAULT_MAX_QUEUED, 32);
        server.shutdown().unwrap();
    });
}
