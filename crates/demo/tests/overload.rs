//! Overload: past `max_in_flight` a compute request gets `503` with
//! `Retry-After` and a JSON body at once (before its body is read when the
//! pool is already full), `/ping` keeps answering, and the service recovers.

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{raw, raw_connect, read_answer, start_with, with_watchdog};
use compute_demo::dispatch::Mode;
use compute_demo::server::{DemoServer, Limits};

/// Hang detector for answers that should be immediate (far below the 30 s
/// compute timeout, generous for a debug build on a busy machine).
const PROMPT: Duration = Duration::from_secs(10);

/// Fills the server's only `max_in_flight` slot with a job that waits for
/// the returned sender (or for it to be dropped).
fn occupy(server: &DemoServer) -> (mpsc::Sender<()>, compute_runtime::TaskHandle<()>) {
    let pool = server.state().pool.clone().expect("pool mode has a pool");
    let (release, wait) = mpsc::channel::<()>();
    let job = pool
        .try_execute(move || {
            let _ = wait.recv_timeout(Duration::from_secs(60));
        })
        .expect("the pool has room for the first job");
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
        let server = start_with(Mode::Pool, Limits::default(), Some(1));
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
        let server = start_with(Mode::Pool, Limits::default(), Some(2));
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
fn the_dispatcher_refuses_work_past_max_in_flight() {
    use compute_demo::dispatch::DispatchError;
    with_watchdog(Duration::from_secs(60), || {
        let server = start_with(Mode::Pool, Limits::default(), Some(1));
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
