//! [`ComputeStreamExt`]: each item of a stream mapped by a job on a
//! [`ComputePool`], a bounded number of jobs at a time, the results in input
//! order ([`compute_map`](ComputeStreamExt::compute_map)) or as they finish
//! ([`compute_map_unordered`](ComputeStreamExt::compute_map_unordered)).
//!
//! It replaces the hand-written
//! `stream.map(|x| pool.execute(move || f(x))).buffered(n)` and its
//! `for_each_concurrent` variants with one call that also picks a sensible
//! default for `n`.
//!
//! # How it works
//!
//! The adaptor is a plain [`Stream`] (no task is spawned): each
//! `poll_next` first pulls items from upstream while fewer than `limit` jobs
//! are in flight, handing each to [`ComputePool::execute`], then polls the
//! set of in-flight [`TaskHandle`]s (a `FuturesOrdered` or a
//! `FuturesUnordered`) for the next result. Every way it can return
//! `Pending` has a waker registered: with jobs in flight, by the in-flight
//! set; with none, by upstream, which was polled last and was `Pending`.
//!
//! One job per item. Small items that are ready together could share one
//! job to save hand-offs; the `stream` group of the pool's benches measures
//! `compute_map` beside `buffered(n)` over `execute` on 1 µs and 100 µs
//! items (see `docs/benchmarks.md`).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::stream::{FusedStream, FuturesOrdered, FuturesUnordered, Stream};

// Through the crate's public names only: the modules behind them may move.
use crate::{ComputeError, ComputePool, TaskHandle};

/// Maps the items of any [`Stream`] on a [`ComputePool`], one job per item,
/// at most `limit` jobs in flight.
///
/// Implemented for every `Stream`. Both methods return a stream of
/// `Result<R, ComputeError>`, one per input item:
///
/// - **Back-pressure**: upstream is pulled only while fewer than `limit`
///   jobs are in flight (ordered: including finished results waiting for an
///   earlier one), so a slow consumer stalls the producer.
/// - **Panics are per item**: an item whose `f` panics gives
///   `Err(ComputeError::Panicked)` in its place; the stream goes on.
/// - **Dropping the stream cancels** the jobs in flight that have not
///   started (their [`TaskHandle`]s are dropped); running ones finish and
///   their results are dropped.
/// - **Ends** after the last result once upstream has ended; it is a
///   [`FusedStream`] (`None` again after that) and its `size_hint` counts
///   upstream's items plus those in flight.
/// - **Unpin** whatever upstream is: upstream is kept in a `Box` (one
///   allocation per adaptor, none per item).
///
/// `limit` works as in futures' `for_each_concurrent`: `None` means twice
/// the pool's threads (enough to keep every thread busy while results
/// travel back), `Some(n)` at most `n` jobs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use compute_pool::{ComputePool, ComputeStreamExt};
/// use futures::StreamExt;
///
/// let pool = ComputePool::with_defaults().unwrap();
/// let lengths: Vec<usize> = futures::stream::iter(["tokio", "rayon", "bridge"])
///     .compute_map(&pool, None, |word| word.len())
///     .map(|result| result.expect("len does not panic"))
///     .collect()
///     .await;
/// assert_eq!(lengths, [5, 5, 6]);
/// # }
/// ```
pub trait ComputeStreamExt: Stream {
    /// Runs `f` on the pool for every item, at most `limit` jobs at once,
    /// and yields the results **in input order**.
    ///
    /// A slow item holds back the results after it (they wait, counted
    /// against `limit`); use
    /// [`compute_map_unordered`](Self::compute_map_unordered) when order
    /// does not matter.
    ///
    /// # Panics
    ///
    /// If `limit` is `Some(0)`: no job could ever run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use compute_pool::{ComputePool, ComputeStreamExt};
    /// use futures::StreamExt;
    ///
    /// let pool = ComputePool::with_defaults().unwrap();
    /// let results: Vec<_> = futures::stream::iter(0..5u64)
    ///     .compute_map(&pool, 2, |n| {
    ///         assert!(n != 3, "three is not allowed");
    ///         (1..=n).product::<u64>()
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(results.len(), 5);
    /// assert_eq!(*results[4].as_ref().unwrap(), 24);
    /// assert!(results[3].as_ref().unwrap_err().is_panic());
    /// # }
    /// ```
    fn compute_map<F, R>(
        self,
        pool: &ComputePool,
        limit: impl Into<Option<usize>>,
        f: F,
    ) -> ComputeMap<Self, F, R>
    where
        Self: Sized,
        Self::Item: Send + 'static,
        F: Fn(Self::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        ComputeMap {
            core: Core::new(self, pool, limit.into(), f, FuturesOrdered::new()),
        }
    }

    /// Runs `f` on the pool for every item, at most `limit` jobs at once,
    /// and yields the results **as they finish**.
    ///
    /// A slow item holds back nothing: `limit` counts running and queued
    /// jobs only.
    ///
    /// # Panics
    ///
    /// If `limit` is `Some(0)`: no job could ever run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use compute_pool::{ComputePool, ComputeStreamExt};
    /// use futures::StreamExt;
    ///
    /// let pool = ComputePool::with_defaults().unwrap();
    /// let mut squares: Vec<u32> = futures::stream::iter(1..=4u32)
    ///     .compute_map_unordered(&pool, None, |n| n * n)
    ///     .map(|result| result.unwrap())
    ///     .collect()
    ///     .await;
    /// squares.sort_unstable();
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// # }
    /// ```
    fn compute_map_unordered<F, R>(
        self,
        pool: &ComputePool,
        limit: impl Into<Option<usize>>,
        f: F,
    ) -> ComputeMapUnordered<Self, F, R>
    where
        Self: Sized,
        Self::Item: Send + 'static,
        F: Fn(Self::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        ComputeMapUnordered {
            core: Core::new(self, pool, limit.into(), f, FuturesUnordered::new()),
        }
    }
}

impl<S: Stream + ?Sized> ComputeStreamExt for S {}

/// The stream returned by [`ComputeStreamExt::compute_map`]: results in
/// input order.
#[must_use = "streams do nothing unless polled"]
pub struct ComputeMap<S, F, R> {
    core: Core<S, F, FuturesOrdered<TaskHandle<R>>>,
}

/// The stream returned by [`ComputeStreamExt::compute_map_unordered`]:
/// results as they finish.
#[must_use = "streams do nothing unless polled"]
pub struct ComputeMapUnordered<S, F, R> {
    core: Core<S, F, FuturesUnordered<TaskHandle<R>>>,
}

/// What both adaptors share; `Q` is the set of jobs in flight.
struct Core<S, F, Q> {
    /// `None` once upstream has ended (and then dropped).
    upstream: Option<Pin<Box<S>>>,
    pool: ComputePool,
    /// Shared by every job of this stream.
    f: Arc<F>,
    /// At most this many jobs in flight; at least 1.
    limit: usize,
    in_flight: Q,
}

/// The set of in-flight jobs: ordered or not.
trait InFlight<R>: Stream<Item = Result<R, ComputeError>> + Unpin {
    fn push(&mut self, handle: TaskHandle<R>);
    fn len(&self) -> usize;
}

impl<R> InFlight<R> for FuturesOrdered<TaskHandle<R>> {
    fn push(&mut self, handle: TaskHandle<R>) {
        self.push_back(handle);
    }

    fn len(&self) -> usize {
        FuturesOrdered::len(self)
    }
}

impl<R> InFlight<R> for FuturesUnordered<TaskHandle<R>> {
    fn push(&mut self, handle: TaskHandle<R>) {
        FuturesUnordered::push(self, handle);
    }

    fn len(&self) -> usize {
        FuturesUnordered::len(self)
    }
}

impl<S, F, Q> Core<S, F, Q> {
    fn new(upstream: S, pool: &ComputePool, limit: Option<usize>, f: F, in_flight: Q) -> Self {
        let limit = match limit {
            None => pool.num_threads().saturating_mul(2),
            Some(0) => panic!("compute_map: a limit of Some(0) jobs in flight could never run one"),
            Some(n) => n,
        };
        Core {
            upstream: Some(Box::pin(upstream)),
            pool: pool.clone(),
            f: Arc::new(f),
            limit,
            in_flight,
        }
    }

    fn is_terminated<R>(&self) -> bool
    where
        Q: InFlight<R>,
    {
        self.upstream.is_none() && self.in_flight.len() == 0
    }

    fn size_hint<R>(&self) -> (usize, Option<usize>)
    where
        S: Stream,
        Q: InFlight<R>,
    {
        let in_flight = self.in_flight.len();
        let (lower, upper) = match &self.upstream {
            Some(upstream) => upstream.size_hint(),
            None => (0, Some(0)),
        };
        (
            lower.saturating_add(in_flight),
            upper.and_then(|upper| upper.checked_add(in_flight)),
        )
    }

    fn poll_next<R>(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<R, ComputeError>>>
    where
        S: Stream,
        S::Item: Send + 'static,
        F: Fn(S::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
        Q: InFlight<R>,
    {
        // Pull while there is room; stop at the first `Pending` (upstream's
        // waker is then registered) or at the end.
        while self.in_flight.len() < self.limit {
            let Some(upstream) = self.upstream.as_mut() else {
                break;
            };
            match upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let f = Arc::clone(&self.f);
                    self.in_flight.push(self.pool.execute(move || f(item)));
                }
                Poll::Ready(None) => self.upstream = None,
                Poll::Pending => break,
            }
        }
        match Pin::new(&mut self.in_flight).poll_next(cx) {
            Poll::Ready(Some(result)) => Poll::Ready(Some(result)),
            Poll::Ready(None) if self.upstream.is_none() => Poll::Ready(None),
            // Nothing in flight and upstream alive: with `limit >= 1` the
            // loop above polled upstream last, and it was `Pending`.
            Poll::Ready(None) => Poll::Pending,
            // The in-flight set registered the waker.
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S, F, R> Stream for ComputeMap<S, F, R>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = Result<R, ComputeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().core.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.core.size_hint()
    }
}

impl<S, F, R> FusedStream for ComputeMap<S, F, R>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.core.is_terminated()
    }
}

impl<S, F, R> Stream for ComputeMapUnordered<S, F, R>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    type Item = Result<R, ComputeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().core.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.core.size_hint()
    }
}

impl<S, F, R> FusedStream for ComputeMapUnordered<S, F, R>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.core.is_terminated()
    }
}

impl<S, F, Q> Core<S, F, Q> {
    fn debug<R>(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result
    where
        Q: InFlight<R>,
    {
        f.debug_struct(name)
            .field("in_flight", &self.in_flight.len())
            .field("limit", &self.limit)
            .field("upstream_ended", &self.upstream.is_none())
            .finish_non_exhaustive()
    }
}

impl<S, F, R> fmt::Debug for ComputeMap<S, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("ComputeMap", f)
    }
}

impl<S, F, R> fmt::Debug for ComputeMapUnordered<S, F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("ComputeMapUnordered", f)
    }
}
