//! Bad requests get a clear error answer and the server keeps serving:
//! after each one, `/ping` still answers.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{assert_alive, call, post, start, with_watchdog};
use compute_demo::dispatch::Mode;
use compute_demo::server::{ErrorBody, Limits};

/// A case: what to send, the status expected, and words the reason must contain.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Vec<u8>>,
    status: StatusCode,
    reason: &'static str,
}

fn cases() -> Vec<Case> {
    let limits = Limits::default();
    let too_many_texts =
        serde_json::json!({ "texts": vec!["x"; limits.max_batch + 1] }).to_string();
    let too_many_rows =
        serde_json::json!({ "inputs": vec![vec![0.0f32; 64]; limits.max_batch + 1] }).to_string();
    let narrow_rows =
        serde_json::json!({ "inputs": [vec![0.5f32; 64], vec![0.5f32; 10]] }).to_string();
    let long_text =
        serde_json::json!({ "text": "a".repeat(limits.max_text_bytes + 1) }).to_string();
    let case = |name, method, path, body: Option<Vec<u8>>, status, reason| Case {
        name,
        method,
        path,
        body,
        status,
        reason,
    };
    let json = |s: &str| Some(s.as_bytes().to_vec());
    vec![
        case(
            "truncated JSON",
            Method::POST,
            "/tokenize",
            json("{\"texts\": [\"a\""),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        case(
            "not JSON at all",
            Method::POST,
            "/embed",
            json("hello"),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        case(
            "wrong field type",
            Method::POST,
            "/tokenize",
            json("{\"texts\": 5}"),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        case(
            "missing field",
            Method::POST,
            "/infer",
            json("{}"),
            StatusCode::BAD_REQUEST,
            "missing field `inputs`",
        ),
        case(
            "unknown field",
            Method::POST,
            "/embed",
            json("{\"text\": \"a\", \"txet\": 1}"),
            StatusCode::BAD_REQUEST,
            "unknown field `txet`",
        ),
        case(
            "empty body",
            Method::POST,
            "/infer",
            None,
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        case(
            "invalid UTF-8",
            Method::POST,
            "/tokenize",
            Some(vec![b'{', 0xff, 0xfe, b'}']),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        case(
            "oversized body",
            Method::POST,
            "/tokenize",
            Some(vec![b' '; limits.max_body_bytes + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit",
        ),
        case(
            "unknown route",
            Method::GET,
            "/nope",
            None,
            StatusCode::NOT_FOUND,
            "no route for GET /nope",
        ),
        case(
            "unknown POST route",
            Method::POST,
            "/tokenise",
            json("{}"),
            StatusCode::NOT_FOUND,
            "no route",
        ),
        case(
            "too many texts",
            Method::POST,
            "/tokenize",
            Some(too_many_texts.into_bytes()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "the limit is 256",
        ),
        case(
            "empty batch",
            Method::POST,
            "/tokenize",
            json("{\"texts\": []}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "texts: the batch is empty",
        ),
        case(
            "too many rows",
            Method::POST,
            "/infer",
            Some(too_many_rows.into_bytes()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "inputs: 257 items",
        ),
        case(
            "row of the wrong width",
            Method::POST,
            "/infer",
            Some(narrow_rows.into_bytes()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "inputs[1]: 10 values, expected 64",
        ),
        case(
            "text too long",
            Method::POST,
            "/embed",
            Some(long_text.into_bytes()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "text: 65537 bytes",
        ),
    ]
}

fn check_mode(mode: Mode) {
    let server = start(mode);
    let addr = server.addr();
    assert_alive(addr, "start");
    for case in cases() {
        let (status, body) = call(addr, case.method.clone(), case.path, case.body);
        assert_eq!(status, case.status, "{mode}: {}: {body}", case.name);
        let error: ErrorBody = serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!(
                "{mode}: {}: error body is not JSON ({e}): {body}",
                case.name
            )
        });
        assert!(
            error.error.contains(case.reason),
            "{mode}: {}: reason {:?} lacks {:?}",
            case.name,
            error.error,
            case.reason
        );
        assert_alive(addr, case.name);
    }
    // A method the route does not have is refused, not fatal.
    let (status, _) = call(addr, Method::GET, "/tokenize", None);
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_alive(addr, "a wrong method");
    // The counters saw the refusals.
    let (status, metrics) = call(addr, Method::GET, "/metrics", None);
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("demo_http_requests_total{endpoint=\"/tokenize\",status=\"4xx\"}"),
        "{metrics}"
    );
    let tokenize_4xx = metrics
        .lines()
        .find(|l| l.starts_with("demo_http_requests_total{endpoint=\"/tokenize\",status=\"4xx\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(tokenize_4xx >= 5, "{metrics}");
    // And good requests still work after all of that.
    let (status, body) = post(addr, "/tokenize", r#"{"texts": ["still here"]}"#);
    assert_eq!(status, StatusCode::OK, "{body}");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn bad_input_in_pool_mode() {
    with_watchdog(Duration::from_secs(120), || check_mode(Mode::Pool));
}

#[test]
fn bad_input_in_inline_mode() {
    with_watchdog(Duration::from_secs(120), || check_mode(Mode::Inline));
}

#[test]
fn bad_input_in_spawn_blocking_mode() {
    with_watchdog(Duration::from_secs(120), || check_mode(Mode::SpawnBlocking));
}

#[test]
fn bad_input_in_naive_mode() {
    with_watchdog(Duration::from_secs(120), || check_mode(Mode::Naive));
}

#[test]
fn a_raw_garbage_request_does_not_take_the_server_down() {
    use std::io::{Read, Write};
    with_watchdog(Duration::from_secs(60), || {
        let server = start(Mode::Pool);
        let addr = server.addr();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        // hyper answers 400 and closes, or just closes: either is fine.
        let _ = stream.read_to_end(&mut answer);
        assert_alive(addr, "a garbage request line");
        server.shutdown().unwrap();
    });
}
