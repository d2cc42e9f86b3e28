//! The compute threads of a `Runtime`'s pool run inside its Tokio context:
//! a job can spawn I/O and hand the answer back. A pool built on its own
//! has no Tokio context on its threads.

use std::sync::mpsc;
use std::time::Duration;

use compute_runtime::{ComputeConfig, ComputeError, ComputePool, Runtime, RuntimeConfig};
use compute_test_support::{watchdog, within, LIMIT};
use tokio::runtime::Handle;

fn new_runtime(compute_threads: usize) -> Runtime {
    Runtime::new(RuntimeConfig {
        num_worker_threads: Some(2),
        compute_threads: Some(compute_threads),
        ..Default::default()
    })
    .unwrap()
}

/// Runs `check` on every thread of `pool` (rayon's broadcast, inside a job).
fn on_every_thread<T: Send + 'static>(
    pool: &ComputePool,
    check: impl Fn() -> T + Send + Sync + 'static,
) -> Vec<T> {
    pool.execute_sync(move || rayon::broadcast(|_| check()))
        .expect("the broadcast job ran")
}

#[test]
fn a_job_spawns_io_and_hands_the_answer_back() {
    watchdog(|| {
        let runtime = new_runtime(1);
        let pool = runtime.compute_pool().unwrap();
        let (tx, rx) = mpsc::channel();
        let answer = runtime.block_on(within(async move {
            // The job computes, hands I/O to Tokio, and returns at once.
            let spawned = pool
                .execute(move || {
                    let n = (1..=6u64).product::<u64>();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let (io_tx, mut io_rx) = tokio::sync::mpsc::channel(1);
                        io_tx.send(n).await.unwrap();
                        let got = io_rx.recv().await.unwrap();
                        let thread = std::thread::current().name().map(str::to_owned);
                        tx.send((got, thread)).unwrap();
                    });
                    // Or through the handle, keeping the task's JoinHandle.
                    Handle::current().spawn(async move { n + 1 })
                })
                .await
                .unwrap();
            spawned.await.unwrap()
        }));
        assert_eq!(answer, 721);
        let (got, thread) = rx.recv_timeout(LIMIT).expect("the I/O task answered");
        assert_eq!(got, 720);
        let thread = thread.unwrap_or_default();
        assert!(
            thread.starts_with("tokio-rt-"),
            "ran on a Tokio worker: {thread}"
        );
        assert!(runtime.shutdown(LIMIT));
    });
}

#[test]
fn every_compute_thread_of_a_runtime_is_in_its_tokio_context() {
    watchdog(|| {
        let runtime = new_runtime(3);
        let pool = runtime.compute_pool().unwrap();
        assert!(pool.config().on_thread_start.is_some());
        let id = runtime.handle().id();
        let seen = on_every_thread(&pool, || {
            Handle::try_current().map(|handle| handle.id()).ok()
        });
        assert_eq!(seen, vec![Some(id); 3]);
        // Two runtimes: each pool's threads are in their own runtime's context.
        let other = new_runtime(1);
        let seen = on_every_thread(&other.compute_pool().unwrap(), || {
            Handle::try_current().map(|handle| handle.id()).ok()
        });
        assert_eq!(seen, vec![Some(other.handle().id())]);
        assert_ne!(other.handle().id(), id);
    });
}

#[test]
fn a_pool_built_on_its_own_has_no_tokio_context() {
    watchdog(|| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(pool.config().on_thread_start, None);
        let seen = on_every_thread(&pool, || Handle::try_current().is_ok());
        assert_eq!(seen, [false, false]);

        // Submitted from inside a Tokio runtime, still none.
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let in_job = tokio.block_on(within(pool.execute(|| Handle::try_current().is_ok())));
        assert!(!in_job.unwrap());
    });
}

#[test]
fn after_tokio_stops_a_job_finds_the_runtime_gone() {
    watchdog(|| {
        let runtime = new_runtime(1);
        // A clone kept past the drop keeps the (open) pool and its threads.
        let pool = runtime.compute_pool().unwrap();
        drop(runtime);

        let (entered, spawned) = pool
            .execute_sync(|| {
                let entered = Handle::try_current().is_ok();
                let task = tokio::spawn(async { 7 });
                // The task was dropped unrun: its handle is ready at once.
                let spawned = futures::executor::block_on(task);
                (entered, spawned)
            })
            .unwrap();
        assert!(entered, "the handle is still entered");
        assert!(spawned.unwrap_err().is_cancelled(), "the task never runs");

        // A timer panics when polled; the job resolves to Panicked.
        let timer = pool.execute_sync(|| {
            futures::FutureExt::now_or_never(tokio::time::sleep(Duration::from_millis(1)))
        });
        let error = timer.unwrap_err();
        assert!(matches!(error, ComputeError::Panicked(_)), "{error:?}");
        assert!(error.to_string().contains("shutdown"), "{error}");

        // Registering an I/O resource fails with an error.
        let io = pool
            .execute_sync(|| {
                let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
                socket.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(socket).map(drop)
            })
            .unwrap();
        let error = io.unwrap_err();
        assert!(error.to_string().contains("shutdown"), "{error}");
        assert!(pool.shutdown_blocking(LIMIT));
    });
}

#[test]
fn compute_threads_exit_once_the_runtime_and_its_pool_are_gone() {
    watchdog(|| {
        /// Reports, as the thread-locals of its thread are destroyed, that
        /// the thread is exiting.
        struct OnExit(mpsc::Sender<()>);
        impl Drop for OnExit {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
        }

        let runtime = new_runtime(2);
        let pool = runtime.compute_pool().unwrap();
        let (tx, rx) = mpsc::channel();
        on_every_thread(&pool, move || {
            let _ = Handle::current();
            ON_EXIT.with(|slot| *slot.borrow_mut() = Some(OnExit(tx.clone())));
        });
        // Nothing but the runtime and these handles keeps the threads:
        // neither Tokio's handle, which they hold, nor its hooks.
        let spawned = runtime.handle().clone();
        drop(pool);
        drop(runtime);
        for _ in 0..2 {
            rx.recv_timeout(LIMIT).expect("a compute thread exited");
        }
        drop(spawned);
    });
}
