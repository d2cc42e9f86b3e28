//! Starting and stopping servers: shutdown closes the listener, a server
//! dropped inside async code does not panic, and two servers run side by
//! side on their own ports.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{assert_alive, client_runtime, start, with_watchdog, REQUEST_TIMEOUT};
use compute_demo::client::HttpClient;
use compute_demo::dispatch::Mode;

#[test]
fn shutdown_stops_listening() {
    with_watchdog(Duration::from_secs(60), || {
        let server = start(Mode::Pool);
        let addr = server.addr();
        assert_ne!(addr.port(), 0, "the OS picked a port");
        assert_alive(addr, "start");
        server.shutdown().expect("a clean shutdown");
        let refused = client_runtime().block_on(HttpClient::connect(addr));
        assert!(refused.is_err(), "still listening on {addr} after shutdown");
    });
}

#[test]
fn a_server_dropped_inside_async_code_does_not_panic() {
    with_watchdog(Duration::from_secs(60), || {
        client_runtime().block_on(async {
            let server = start(Mode::Naive);
            let mut client = HttpClient::connect(server.addr()).await.unwrap();
            let (status, _) = client.get("/ping", REQUEST_TIMEOUT).await.unwrap();
            assert_eq!(status, StatusCode::OK);
            drop(server);
        });
    });
}

#[test]
fn servers_in_different_modes_run_side_by_side() {
    with_watchdog(Duration::from_secs(60), || {
        let pool = start(Mode::Pool);
        let inline = start(Mode::Inline);
        assert_ne!(pool.addr(), inline.addr());
        assert_alive(pool.addr(), "starting a second server");
        assert_alive(inline.addr(), "starting a second server");
        inline.shutdown().unwrap();
        assert_alive(pool.addr(), "stopping the other server");
        pool.shutdown().unwrap();
    });
}

/// Starts the binary with `--serve`, returns it and the address it printed.
fn serve_binary() -> (
    std::process::Child,
    std::net::SocketAddr,
    std::io::BufReader<std::process::ChildStdout>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_compute-demo"))
        .args(["--serve", "--listen", "127.0.0.1:0"])
        .env_remove("COMPUTE_RUNTIME_COMPUTE_THREADS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(stdout);
    stdout.read_line(&mut first).expect("the address line");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    (child, addr, stdout)
}

/// Waits at most `limit` for `child` to exit.
fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn sigterm_and_sigint_shut_the_binary_down_cleanly() {
    with_watchdog(Duration::from_secs(120), || {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            let (mut child, addr, _stdout) = serve_binary();
            assert_alive(addr, "start");
            let pid = libc::pid_t::try_from(child.id()).unwrap();
            // SAFETY: `kill` only sends a signal to the child we started.
            assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
            let status = exit_within(&mut child, Duration::from_secs(30))
                .unwrap_or_else(|| panic!("signal {signal}: still running after 30 s"));
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            assert_eq!(status.code(), Some(0), "signal {signal}: {stderr}");
            assert!(stderr.contains("received, shut down"), "{stderr}");
        }
    });
}

#[test]
fn shutdown_lets_a_request_in_flight_finish() {
    use std::io::Write;
    with_watchdog(Duration::from_secs(60), || {
        let server = start(Mode::Pool);
        let addr = server.addr();
        let body = br#"{"texts": ["finish me"]}"#;
        let mut stream = common::raw_connect(addr, Duration::from_secs(30));
        // The head and half the body: the request is in flight.
        write!(
            stream,
            "POST /tokenize HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body[..5]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let stopping = std::thread::spawn(move || server.shutdown());
        // Let the shutdown begin (the listener closes), then finish the body.
        let mut refused = false;
        for _ in 0..50 {
            if std::net::TcpStream::connect(addr).is_err() {
                refused = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(refused, "still accepting after shutdown began");
        stream.write_all(&body[5..]).unwrap();
        let answer = common::read_answer(&mut stream).expect("the in-flight answer");
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(answer.body.contains("total_tokens"), "{answer:?}");
        stopping.join().unwrap().expect("a clean shutdown");
    });
}
