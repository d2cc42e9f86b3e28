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
