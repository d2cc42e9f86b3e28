//! Whether the executor polling a handle has a thread to spare, which
//! decides where a balanced wait runs (see `spin.rs`).
//!
//! A wait through the executor (the poll wakes its own task and returns
//! `Pending`) lets the executor run every other ready task first. On a
//! multi-thread Tokio runtime with a worker parked, it buys nothing and
//! costs a wake: Tokio treats a task that wakes itself in its own poll as
//! a yield, and wakes a parked worker for it, every round. And nothing
//! needs this thread meanwhile: a task that becomes ready elsewhere is
//! handed to the parked worker, which Tokio wakes for it and which takes
//! tasks queued here too. So there the wait runs in the poll itself.
//!
//! Only tasks no other worker may take wait for the wait (at most its
//! budget, and as long as the thread it yields its CPU to keeps it): a
//! task woken by this very poll before it waits (Tokio keeps it in this
//! worker's next-task slot) and the tasks of a `LocalSet` run here.

/// Whether the calling thread runs inside a multi-thread Tokio runtime one
/// of whose workers is parked. `false` on a current-thread runtime,
/// outside Tokio, and without the `tokio` feature.
pub(crate) fn a_worker_is_parked() -> bool {
    #[cfg(feature = "tokio")]
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let Ok(handle) = Handle::try_current() else {
            return false;
        };
        if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
            return false;
        }
        let metrics = handle.metrics();
        // Tokio documents the count as odd exactly while that worker is
        // parked (it is published as the worker parks and as it wakes).
        (0..metrics.num_workers()).any(|worker| metrics.worker_park_unpark_count(worker) % 2 == 1)
    }
    #[cfg(not(feature = "tokio"))]
    {
        false
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn runtime(workers: usize) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .build()
            .unwrap()
    }

    #[test]
    fn outside_tokio_or_on_a_current_thread_runtime_no_worker_is_spare() {
        assert!(!a_worker_is_parked());
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(!current.block_on(async { a_worker_is_parked() }));
    }

    #[test]
    fn the_only_worker_running_this_task_is_not_parked() {
        let runtime = runtime(1);
        let seen = runtime.block_on(async { tokio::spawn(async { a_worker_is_parked() }).await });
        assert!(!seen.unwrap());
    }

    #[test]
    fn a_task_sees_the_other_worker_parked_once_it_has_nothing_to_do() {
        let runtime = runtime(2);
        let seen = runtime.block_on(async {
            tokio::spawn(async {
                // The other worker parks soon after start-up; blocking this
                // one meanwhile is what a test may do.
                let deadline = Instant::now() + Duration::from_secs(10);
                while !a_worker_is_parked() {
                    assert!(Instant::now() < deadline, "no worker parked in 10 s");
                    std::thread::sleep(Duration::from_millis(1));
                }
                true
            })
            .await
        });
        assert!(seen.unwrap());
    }
}
