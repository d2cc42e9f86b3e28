//! HTTP limits against a real server: early `413` on a large
//! `Content-Length`, JSON bodies for `405`, `414`, `415` and `431`, the head
//! (and idle) timeout, the body timeout (`408`), and the connection limit.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{closed_within, raw, raw_connect, read_answer, start, start_with, with_watchdog};
use compute_demo::dispatch::Mode;
use compute_demo::server::Limits;

/// Hang detector: far above any limit the tests set.
const PROMPT: Duration = Duration::from_secs(10);

#[test]
fn a_huge_content_length_gets_413_before_the_body() {
    with_watchdog(Duration::from_secs(60), || {
        let server = start(Mode::Pool);
        let mut stream = raw_connect(server.addr(), PROMPT);
        let started = Instant::now();
        stream
            .write_all(
                b"POST /tokenize HTTP/1.1\r\nhost: t\r\ncontent-length: 10000000000\r\n\r\n{}",
            )
            .unwrap();
        let answer = read_answer(&mut stream).expect("an early answer");
        assert!(started.elapsed() < PROMPT);
        assert_eq!(answer.status, 413, "{answer:?}");
        assert!(
            answer.error().contains("larger than the limit"),
            "{answer:?}"
        );
        server.shutdown().unwrap();
    });
}

#[test]
fn every_error_has_a_json_body() {
    with_watchdog(Duration::from_secs(60), || {
        let server = start(Mode::Pool);
        let addr = server.addr();
        let limits = Limits::default();
        let long_target = format!("/ping?{}", "a".repeat(limits.max_uri_bytes));
        let big_header = "x".repeat(limits.max_header_bytes);
        let bom_body = "\u{feff}{\"text\": \"a\"}";
        let cases: Vec<(String, u16, &str)> = vec![
            (
                "GET /tokenize HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".into(),
                405,
                "GET is not allowed on /tokenize",
            ),
            (
                format!("GET {long_target} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"),
                414,
                "request target",
            ),
            (
                format!("GET /ping HTTP/1.1\r\nhost: t\r\nx-big: {big_header}\r\nconnection: close\r\n\r\n"),
                431,
                "headers",
            ),
            (
                format!(
                    "GET /ping HTTP/1.1\r\nhost: t\r\n{}connection: close\r\n\r\n",
                    (0..limits.max_headers).map(|i| format!("x-h{i}: 1\r\n")).collect::<String>()
                ),
                431,
                "headers",
            ),
            (
                "POST /tokenize HTTP/1.1\r\nhost: t\r\ncontent-encoding: gzip\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into(),
                415,
                "Content-Encoding",
            ),
            (
                format!(
                    "POST /embed HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{bom_body}",
                    bom_body.len()
                ),
                415,
                "byte-order mark",
            ),
        ];
        for (request, status, reason) in cases {
            let answer = raw(addr, request.as_bytes());
            assert_eq!(answer.status, status, "{answer:?}");
            assert_eq!(
                answer.header("content-type").as_deref(),
                Some("application/json")
            );
            assert!(answer.error().contains(reason), "{status}: {answer:?}");
        }
        // A gzip stream without the header is refused the same way.
        let mut request =
            b"POST /infer HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nconnection: close\r\n\r\n"
                .to_vec();
        request.extend_from_slice(&[0x1f, 0x8b, 0x08, 0x00]);
        let answer = raw(addr, &request);
        assert_eq!(answer.status, 415, "{answer:?}");
        assert!(answer.error().contains("gzip"), "{answer:?}");
        common::assert_alive(addr, "the error cases");
        server.shutdown().unwrap();
    });
}

fn short_timeouts() -> Limits {
    Limits {
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        ..Limits::default()
    }
}

#[test]
fn half_sent_and_idle_connections_are_closed() {
    with_watchdog(Duration::from_secs(60), || {
        let server = start_with(Mode::Pool, short_timeouts(), None);
        let addr = server.addr();
        // Silent from the start.
        let mut silent = raw_connect(addr, PROMPT);
        // Half a head.
        let mut half = raw_connect(addr, PROMPT);
        half.write_all(b"GET /ping HTTP/1.1\r\nhost: t\r\n")
            .unwrap();
        // Idle after one request on a keep-alive connection.
        let mut idle = raw_connect(addr, PROMPT);
        idle.write_all(b"GET /ping HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        let answer = read_answer(&mut idle).unwrap();
        assert_eq!(answer.status, 200);
        for (name, stream) in [
            ("silent", &mut silent),
            ("half", &mut half),
            ("idle", &mut idle),
        ] {
            assert!(
                closed_within(stream, PROMPT),
                "{name} connection still open"
            );
        }
        common::assert_alive(addr, "closing idle connections");
        server.shutdown().unwrap();
    });
}

#[test]
fn a_body_that_stops_arriving_gets_408() {
    with_watchdog(Duration::from_secs(60), || {
        let server = start_with(Mode::Pool, short_timeouts(), None);
        let mut stream = raw_connect(server.addr(), PROMPT);
        stream
            .write_all(
                b"POST /tokenize HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n{\"texts\"",
            )
            .unwrap();
        let answer = read_answer(&mut stream).expect("an answer");
        assert_eq!(answer.status, 408, "{answer:?}");
        assert!(answer.error().contains("did not arrive"), "{answer:?}");
        server.shutdown().unwrap();
    });
}

#[test]
fn connections_past_the_limit_get_503_and_are_closed() {
    with_watchdog(Duration::from_secs(60), || {
        let limits = Limits {
            max_connections: 3,
            ..Limits::default()
        };
        let server = start_with(Mode::Pool, limits, None);
        let addr = server.addr();
        let mut held: Vec<_> = (0..3).map(|_| raw_connect(addr, PROMPT)).collect();
        // The server may not have accepted all three yet: ask until refused.
        let mut refused = None;
        for _ in 0..50 {
            let mut extra = raw_connect(addr, PROMPT);
            let _ = extra.write_all(b"GET /ping HTTP/1.1\r\nhost: t\r\n\r\n");
            match read_answer(&mut extra) {
                Ok(answer) if answer.status == 503 => {
                    refused = Some(answer);
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let refused = refused.expect("a connection past the limit is refused");
        assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
        assert!(
            refused.error().contains("too many open connections"),
            "{refused:?}"
        );
        held.clear();
        // Once the held connections close, new ones are served again.
        let mut served = false;
        for _ in 0..50 {
            let mut stream = raw_connect(addr, PROMPT);
            let _ = stream.write_all(b"GET /ping HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
            if read_answer(&mut stream).is_ok_and(|a| a.status == 200) {
                served = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(served, "no /ping served after the connections closed");
        server.shutdown().unwrap();
    });
}
