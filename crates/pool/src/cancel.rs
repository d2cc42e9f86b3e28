//! [`CancelToken`]: a running job's view of whether its result is still
//! wanted.

use std::fmt;

use compute_bridge::Sender;

use crate::ledger::Ledger;

/// Lets a running job see that its result is no longer wanted.
///
/// Passed to the closure of
/// [`ComputePool::execute_cancellable`](crate::ComputePool::execute_cancellable).
/// [`is_cancelled`](CancelToken::is_cancelled) turns true once the job's
/// [`TaskHandle`](crate::TaskHandle) is dropped or cancelled, or the pool's shutdown deadline
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
    ledger: &'a Ledger,
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
    pub(crate) fn new<T: Send>(tx: &'a Sender<T>, ledger: &'a Ledger) -> Self {
        CancelToken {
            channel: Some(tx),
            ledger,
        }
    }

    /// A token for a call whose caller waits on the same thread.
    pub(crate) fn inline(ledger: &'a Ledger) -> Self {
        CancelToken {
            channel: None,
            ledger,
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
        self.channel.is_some_and(|channel| channel.is_closed()) || self.ledger.is_past_deadline()
    }
}

impl fmt::Debug for CancelToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
