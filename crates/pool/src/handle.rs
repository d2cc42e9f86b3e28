//! The awaiting side of a job: [`TaskHandle`], and the job's view of it,
//! [`CancelToken`].

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use compute_bridge::{Closed, Receiver, Sender};

use crate::error::ComputeError;
use crate::job::JobResult;
use crate::pool::Shared;
use crate::spin::spin_until;

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
/// [`CancelToken`] (see [`ComputePool::execute_cancellable`](crate::ComputePool::execute_cancellable)).
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
        shared: Arc<Shared>,
        /// The job's number, for the spin decision (see `Shared::spin_budget`).
        number: u64,
        /// Whether a poll already had its chance to spin (see `spin.rs`).
        spun: bool,
    },
    /// Resolved already (ran inline, refused, or cancelled).
    Ready(JobResult<R>),
    /// The result was taken.
    Done,
}

impl<R> TaskHandle<R> {
    /// A handle for a job already on the pool.
    pub(crate) fn waiting(rx: Receiver<JobResult<R>>, shared: Arc<Shared>, number: u64) -> Self {
        TaskHandle {
            state: State::Waiting {
                rx,
                shared,
                number,
                spun: false,
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
            State::Waiting { rx, shared, .. } => close_and_account(rx, &shared),
            State::Ready(_) | State::Done => false,
        }
    }
}

/// Closes `rx`; if the job had not started, counts it cancelled here (the
/// job will see `try_start() == false` and do nothing).
///
/// Closing drops a result that already arrived. A panic in its `Drop` is
/// contained and counted, as on the compute thread, so dropping a handle
/// never panics (and never aborts a thread that is already unwinding).
fn close_and_account<R>(rx: Receiver<JobResult<R>>, shared: &Shared) -> bool {
    let closed = catch_unwind(AssertUnwindSafe(move || rx.close())).unwrap_or_else(|_| {
        // Only a value that had arrived is dropped by `close`.
        shared.metrics.record_drop_panic();
        Closed::AfterCompletion
    });
    match closed {
        Closed::BeforeStart => {
            shared.metrics.record_cancelled();
            shared.notify_if_closing();
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
                shared,
                number,
                spun,
            } => {
                if !*spun {
                    // The first poll may stay awake briefly for a short job
                    // (learned, bounded; see `spin.rs`) instead of parking.
                    // (A result already there needs no decision.)
                    *spun = true;
                    if !rx.is_finished() {
                        if let Some(budget) = shared.spin_budget(*number) {
                            spin_until(budget, || rx.is_finished());
                        }
                    }
                }
                let received = ready!(Pin::new(rx).poll(cx));
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

/// Lets a running job see that its result is no longer wanted.
///
/// Passed to the closure of
/// [`ComputePool::execute_cancellable`](crate::ComputePool::execute_cancellable).
/// [`is_cancelled`](CancelToken::is_cancelled) turns true once the job's
/// [`TaskHandle`] is dropped or cancelled, or the pool's shutdown deadline
/// has passed. Checking it is one atomic load; it is `Copy`, `Send` and
/// `Sync`, so it can be used inside parallel iterators of the job.
///
/// ```
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// let handle = pool.execute_cancellable(|token| {
///     let mut steps = 0u64;
///     while !token.is_cancelled() && steps < 1_000 {
///         steps += 1;
///     }
///     steps
/// });
/// assert_eq!(futures::executor::block_on(handle).unwrap(), 1_000);
/// ```
#[derive(Clone, Copy)]
pub struct CancelToken<'a> {
    /// The job's channel; `None` for a call run inline, whose caller is
    /// the one waiting.
    channel: Option<&'a (dyn ChannelClosed + Sync)>,
    shared: &'a Shared,
}

/// The one question a token asks of a job's channel.
pub(crate) trait ChannelClosed {
    fn is_closed(&self) -> bool;
}

impl<T: Send> ChannelClosed for Sender<T> {
    fn is_closed(&self) -> bool {
        Sender::is_closed(self)
    }
}

impl<'a> CancelToken<'a> {
    /// A token for a queued job: cancelled when its handle goes away.
    pub(crate) fn new<T: Send>(tx: &'a Sender<T>, shared: &'a Shared) -> Self {
        CancelToken {
            channel: Some(tx),
            shared,
        }
    }

    /// A token for a call whose caller waits on the same thread.
    pub(crate) fn inline(shared: &'a Shared) -> Self {
        CancelToken {
            channel: None,
            shared,
        }
    }

    /// Whether nobody waits for the result any more (its handle was dropped
    /// or cancelled) or the pool's shutdown deadline passed: the job may stop
    /// early and return whatever it has.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let seen = pool.execute_cancellable(|token| token.is_cancelled());
    /// assert_eq!(futures::executor::block_on(seen).unwrap(), false);
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.channel.is_some_and(|channel| channel.is_closed()) || self.shared.is_past_deadline()
    }
}

impl fmt::Debug for CancelToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
