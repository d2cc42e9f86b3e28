//! The awaiting side of a job: [`TaskHandle`].

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use compute_bridge::{Closed, Receiver};

use crate::engine::Engine;
use crate::error::ComputeError;
use crate::executor;
use crate::home;
use crate::job::JobResult;
use crate::spin::{spin_until, wake_cost, PICKUP};

/// A job submitted to a [`ComputePool`](crate::ComputePool): a future of its
/// result.
///
/// It is `Send` (when `R` is), `Unpin`, and works under any executor (it
/// needs no Tokio runtime). Awaiting it gives `Ok(value)`, or an error if the
/// job panicked, was cancelled, or the pool shut down first.
///
/// **Dropping it cancels the job** if the job has not started: the job then
/// never runs, and the metrics count it cancelled at once. A job that already
/// started runs to its end (a thread cannot be stopped); its result is dropped
/// on the compute thread. Jobs that want to stop early can poll a
/// [`CancelToken`](crate::CancelToken) (see [`ComputePool::execute_cancellable`](crate::ComputePool::execute_cancellable)).
///
/// With `max_in_flight` set and no room in the pool, the job waits in the
/// pool's queue, first come first served, and starts when a running job
/// ends; the handle is awaited the same way either way.
///
/// ```
/// use compute_pool::{ComputePool, TaskHandle};
///
/// let pool = ComputePool::with_defaults().unwrap();
/// let handles: Vec<TaskHandle<u64>> = (1..=4u64)
///     .map(|n| pool.execute(move || (1..=n).product()))
///     .collect();
/// let results = futures::executor::block_on(futures::future::try_join_all(handles)).unwrap();
/// assert_eq!(results, vec![1, 2, 6, 24]);
/// ```
#[must_use = "dropping a TaskHandle cancels its job if it has not started"]
pub struct TaskHandle<R> {
    state: State<R>,
}

enum State<R> {
    /// Submitted to the pool; the result comes through the channel.
    Waiting {
        rx: Receiver<JobResult<R>>,
        engine: Arc<Engine>,
        /// The job's number, for the spin decision (see `Engine::spin_budget`).
        number: u64,
        /// Where the awaiter stands in its wait awake (see `spin.rs`).
        awake: Awake,
        /// Whether a poll returned `Pending` (counted as awaited in the
        /// ledger until the handle resolves or is dropped).
        parked: bool,
    },
    /// Resolved already (ran inline, refused, or cancelled).
    Ready(JobResult<R>),
    /// The result was taken.
    Done,
}

/// An awaiter's wait awake for a short job (see `spin.rs`).
#[derive(Clone, Copy)]
enum Awake {
    /// Not polled yet: the first poll decides. `runner_started`: the
    /// submitter started a runner for the job, which may take it on any
    /// CPU (see `Engine::spin_budget`).
    NotYet { runner_started: bool },
    /// Yielding (waking itself and returning `Pending`) until `deadline`;
    /// the first poll was at `since`.
    Until { since: Instant, deadline: Instant },
    /// Done with it: polls park as usual.
    Over,
}

impl<R> TaskHandle<R> {
    /// A handle for a job already on the pool; `runner_started` if its
    /// submitter started a runner for it.
    pub(crate) fn waiting(
        rx: Receiver<JobResult<R>>,
        engine: Arc<Engine>,
        number: u64,
        runner_started: bool,
    ) -> Self {
        TaskHandle {
            state: State::Waiting {
                rx,
                engine,
                number,
                awake: Awake::NotYet { runner_started },
                parked: false,
            },
        }
    }

    /// A handle that is already resolved.
    pub(crate) fn ready(result: JobResult<R>) -> Self {
        TaskHandle {
            state: State::Ready(result),
        }
    }

    /// Whether the result is ready, so awaiting returns at once (also true
    /// after the result was taken or the handle cancelled).
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let handle = pool.execute(|| 1 + 1);
    /// while !handle.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(futures::executor::block_on(handle).unwrap(), 2);
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.state {
            State::Waiting { rx, .. } => rx.is_finished(),
            State::Ready(_) | State::Done => true,
        }
    }

    /// Cancels the job: if it has not started it never runs, and the handle
    /// resolves to [`ComputeError::Cancelled`]. Returns `true` when the job
    /// was stopped before it started; `false` when it had already started
    /// (it runs to its end and its result is dropped on the compute thread)
    /// or finished (its result is dropped here).
    ///
    /// ```
    /// use compute_pool::{ComputeConfig, ComputePool};
    ///
    /// let pool = ComputePool::new(ComputeConfig { num_threads: Some(1), ..Default::default() }).unwrap();
    /// let (release, wait) = std::sync::mpsc::channel::<()>();
    /// let blocker = pool.execute(move || wait.recv().unwrap());
    /// let mut queued = pool.execute(|| unreachable!("cancelled before it started"));
    /// assert!(queued.cancel());
    /// release.send(()).unwrap();
    /// futures::executor::block_on(blocker).unwrap();
    /// assert!(futures::executor::block_on(queued).unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&mut self) -> bool {
        let stopped = self.abandon();
        self.state = State::Ready(Err(ComputeError::Cancelled));
        stopped
    }

    /// Closes the channel and accounts for a job that will never run.
    /// Returns whether the job was stopped before it started.
    fn abandon(&mut self) -> bool {
        match mem::replace(&mut self.state, State::Done) {
            State::Waiting {
                rx, engine, parked, ..
            } => {
                if parked {
                    engine.ledger.awaited();
                }
                close_and_account(rx, &engine)
            }
            State::Ready(_) | State::Done => false,
        }
    }
}

/// Closes `rx`; if the job had not started, settles it cancelled here (the
/// job will see `try_start() == false` and forfeit its ticket).
///
/// Closing drops a result that already arrived. A panic in its `Drop` is
/// contained and counted, as on the compute thread, so dropping a handle
/// never panics (and never aborts a thread that is already unwinding).
fn close_and_account<R>(rx: Receiver<JobResult<R>>, engine: &Engine) -> bool {
    let closed = catch_unwind(AssertUnwindSafe(move || rx.close())).unwrap_or_else(|_| {
        // Only a value that had arrived is dropped by `close`.
        engine.metrics.record_drop_panic();
        Closed::AfterCompletion
    });
    match closed {
        Closed::BeforeStart => {
            engine.ledger.cancel_unstarted();
            true
        }
        Closed::WhileRunning | Closed::AfterCompletion => false,
    }
}

// The handle never pins `R` (it only moves results out), so it is `Unpin`
// whatever `R` is.
impl<R> Unpin for TaskHandle<R> {}

impl<R> Future for TaskHandle<R> {
    type Output = Result<R, ComputeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            State::Waiting {
                rx,
                engine,
                number,
                awake,
                parked,
            } => {
                // The awaiter of a short job stays awake briefly instead of
                // parking (learned, bounded; see `spin.rs`). A result
                // already there needs no decision.
                if !rx.is_finished() {
                    if let Awake::NotYet { runner_started } = *awake {
                        *awake = Awake::Over;
                        let for_a_runner = !runner_started && !rx.is_started();
                        if let Some(budget) = engine.spin_budget(*number, for_a_runner) {
                            // In the poll where that keeps no task from
                            // running (see `executor.rs`), else through the
                            // executor.
                            if engine.spins_in_poll() || executor::a_worker_is_parked() {
                                spin_until(budget, || rx.is_finished());
                            } else {
                                let since = Instant::now();
                                *awake = Awake::Until {
                                    since,
                                    deadline: since + budget,
                                };
                                return yield_once(cx, engine, parked);
                            }
                        }
                    } else if let Awake::Until { since, deadline } = *awake {
                        let now = Instant::now();
                        // A job no thread took up at once waits for one to
                        // be woken or given a CPU (perhaps this one, which
                        // the wait would keep from it): waiting cannot save
                        // that wake.
                        let stalled = !rx.is_started() && now - since > PICKUP;
                        if now < deadline && !stalled {
                            return yield_once(cx, engine, parked);
                        }
                        *awake = Awake::Over;
                    }
                }
                // A loop that awaits handle after handle, each ready at
                // once, would never give its thread back to the executor
                // (no I/O task there would run): after a wake's worth of
                // such handles, yield once, the result staying in the
                // channel for the next poll.
                if !*parked && rx.is_finished() && home::ready_run_over(wake_cost()) {
                    return yield_once(cx, engine, parked);
                }
                let Poll::Ready(received) = Pin::new(rx).poll(cx) else {
                    await_result(engine, parked);
                    return Poll::Pending;
                };
                if *parked {
                    engine.ledger.awaited();
                }
                this.state = State::Done;
                // A sender dropped without sending belongs to a job that
                // never ran (and has accounted for itself).
                Poll::Ready(received.unwrap_or(Err(ComputeError::Lost)))
            }
            State::Ready(_) => match mem::replace(&mut this.state, State::Done) {
                State::Ready(result) => Poll::Ready(result),
                _ => unreachable!("matched above"),
            },
            State::Done => panic!("TaskHandle polled after it returned Ready"),
        }
    }
}

/// Wakes the task and returns `Pending`: the executor runs every other
/// ready task first and polls again when it would otherwise go idle.
fn yield_once<T>(cx: &mut Context<'_>, engine: &Engine, parked: &mut bool) -> Poll<T> {
    cx.waker().wake_by_ref();
    await_result(engine, parked);
    Poll::Pending
}

/// Counts the handle as awaited (once) when a poll returns `Pending`, and
/// notes that the thread goes back to its executor.
fn await_result(engine: &Engine, parked: &mut bool) {
    home::yielded();
    if !*parked {
        *parked = true;
        engine.ledger.awaiting();
    }
}

impl<R> Drop for TaskHandle<R> {
    fn drop(&mut self) {
        self.abandon();
    }
}

impl<R> fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { rx, .. } if rx.is_finished() => "finished",
            State::Waiting { .. } => "submitted",
            State::Ready(Ok(_)) => "ready",
            State::Ready(Err(_)) => "failed",
            State::Done => "taken",
        };
        f.debug_struct("TaskHandle").field("state", &state).finish()
    }
}

#[cfg(test)]
mod tests {
    use compute_test_support::CountingWaker;

    use super::*;
    use crate::config::ComputeConfig;

    #[test]
    fn a_wait_for_a_job_no_thread_took_up_ends_early() {
        // The wait lasts about a wake: that must leave room for a stall
        // well past the pickup time, and before the deadline.
        let budget = wake_cost();
        if budget < PICKUP * 4 {
            return;
        }
        let engine = Arc::new(Engine::new(ComputeConfig::default(), 2));
        for _ in 0..16 {
            engine.await_spin.observe(budget / 2);
        }
        // Job number 0, next in line with both threads free, never started:
        // its thread has yet to be woken, or to get this CPU.
        let (tx, rx) = compute_bridge::channel::<JobResult<u8>>();
        let mut handle = TaskHandle::waiting(rx, Arc::clone(&engine), 0, false);
        let (counter, waker) = CountingWaker::new();
        let mut cx = Context::from_waker(&waker);
        let wakes = || counter.wakes();
        let started = Instant::now();
        assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        assert_eq!(wakes(), 1, "the first poll waits awake: a self-wake");
        while started.elapsed() < PICKUP * 2 {
            std::hint::spin_loop();
        }
        assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        assert_eq!(wakes(), 1, "not started after the pickup time: parked");
        assert!(tx.send(Ok(7)).is_ok());
        assert_eq!(wakes(), 2, "the result wakes it");
        assert!(matches!(
            Pin::new(&mut handle).poll(&mut cx),
            Poll::Ready(Ok(7))
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn only_a_job_left_to_runners_on_this_cpu_skips_the_wait() {
        use crate::placement::{current_cpu, pin_to};
        let Some(cpu) = current_cpu() else { return };
        // A fresh thread pinned to one CPU: the runner's mark and the
        // handle's look name the same CPU.
        std::thread::spawn(move || {
            pin_to(cpu);
            let engine = Arc::new(Engine::new(ComputeConfig::default(), 2));
            for _ in 0..16 {
                engine
                    .await_spin
                    .observe(std::time::Duration::from_nanos(100));
            }
            // Both threads of the pool serve the queue from this CPU
            // (counted by hand: none really runs).
            let _runners_here = engine.queue.watchers.watch();
            assert!(engine.queue.runners.claim() && engine.queue.runners.claim());
            let first_poll_wakes = |runner_started: bool, started: bool| {
                let (tx, rx) = compute_bridge::channel::<JobResult<u8>>();
                if started {
                    assert!(tx.try_start());
                }
                let mut handle = TaskHandle::waiting(rx, Arc::clone(&engine), 0, runner_started);
                let (counter, waker) = CountingWaker::new();
                assert!(Pin::new(&mut handle)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending());
                let wakes = counter.wakes();
                drop(tx);
                wakes
            };
            assert_eq!(first_poll_wakes(false, false), 0, "parked at once");
            assert_eq!(
                first_poll_wakes(true, false),
                1,
                "its own runner may be elsewhere"
            );
            assert_eq!(first_poll_wakes(false, true), 1, "taken up already");
        })
        .join()
        .unwrap();
    }
}
