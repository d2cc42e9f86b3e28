//! A panicking computation fails its own request only, in every mode: the
//! dispatcher reports it and keeps working, and the server stays up.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_alive, start, with_watchdog};
use compute_demo::dispatch::{DispatchError, Dispatcher, Mode};
use rayon::prelude::*;

fn dispatchers_for(server: &compute_demo::server::DemoServer) -> Dispatcher {
    server.state().dispatcher.clone()
}

fn check_mode(mode: Mode) {
    let server = start(mode);
    let dispatcher = dispatchers_for(&server);
    let handle = server.handle().unwrap().clone();
    let survived = Arc::new(AtomicUsize::new(0));
    let survivors = survived.clone();
    handle
        .block_on(async move {
            // Run on a server worker, as a handler would.
            tokio::spawn(async move {
                let err = dispatcher
                    .install(|| -> u32 { panic!("boom in install") })
                    .await
                    .unwrap_err();
                assert_eq!(
                    err,
                    DispatchError::Panicked("boom in install".into()),
                    "{mode}"
                );

                // A panic inside a parallel iterator.
                let err = dispatcher
                    .install(|| {
                        (0..64u32)
                            .into_par_iter()
                            .map(|i| if i == 17 { panic!("item {i}") } else { i })
                            .sum::<u32>()
                    })
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, DispatchError::Panicked(ref m) if m == "item 17"),
                    "{mode}: {err:?}"
                );

                // A panic in a task spawned on the scope.
                let err = dispatcher
                    .scoped(|scope| {
                        scope.spawn(|_| panic!("scoped task"));
                    })
                    .await
                    .unwrap_err();
                assert!(matches!(err, DispatchError::Panicked(_)), "{mode}: {err:?}");

                // The same dispatcher still computes.
                let sum = dispatcher
                    .install(|| (1..=100u64).into_par_iter().sum::<u64>())
                    .await
                    .unwrap();
                assert_eq!(sum, 5050);
                // ORDERING: Relaxed: read after the task has been joined.
                survivors.fetch_add(1, Ordering::Relaxed);
            })
            .await
        })
        .expect("the checks ran without a failed assertion");
    // ORDERING: Relaxed: the task was joined above.
    assert_eq!(survived.load(Ordering::Relaxed), 1);
    assert_alive(server.addr(), "panicking computations");
    if let Some(pool) = &server.state().pool {
        let metrics = pool.metrics();
        assert_eq!(metrics.tasks_active(), 0, "{mode}");
        if mode == Mode::Pool {
            assert_eq!(metrics.tasks_panicked(), 3, "{mode}");
        }
    }
    server.shutdown().unwrap();
}

#[test]
fn panics_are_contained_in_pool_mode() {
    with_watchdog(Duration::from_secs(60), || check_mode(Mode::Pool));
}

#[test]
fn panics_are_contained_in_inline_mode() {
    with_watchdog(Duration::from_secs(60), || check_mode(Mode::Inline));
}

#[test]
fn panics_are_contained_in_spawn_blocking_mode() {
    with_watchdog(Duration::from_secs(60), || check_mode(Mode::SpawnBlocking));
}

#[test]
fn panics_are_contained_in_naive_mode() {
    with_watchdog(Duration::from_secs(60), || check_mode(Mode::Naive));
}

#[test]
fn pool_mode_needs_a_pool() {
    let err = Dispatcher::new(Mode::Pool, None, 2).unwrap_err();
    assert!(err.to_string().contains("compute_threads = 0"), "{err}");
    let err = Dispatcher::new(Mode::Naive, None, 0).unwrap_err();
    assert!(err.to_string().contains("naive"), "{err}");
}
