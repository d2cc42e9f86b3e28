//! [`ComputeStreamExt`]: each item of a stream mapped by `f` on a
//! [`ComputePool`], a bounded number of jobs at a time, the results in input
//! order ([`compute_map`](ComputeStreamExt::compute_map)) or as they finish
//! ([`compute_map_unordered`](ComputeStreamExt::compute_map_unordered)).
//!
//! It replaces the hand-written
//! `stream.map(|x| pool.execute(move || f(x))).buffered(n)` and its
//! `for_each_concurrent` variants with one call that also picks a sensible
//! default for `n`, and hands small items over in shared jobs.
//!
//! # How it works
//!
//! The adaptor is a plain [`Stream`] (no task is spawned): each
//! `poll_next` first pulls items from upstream while fewer than `limit` jobs
//! are in flight, handing them to the pool as [`ComputePool::execute`]
//! does, then polls the set of in-flight `TaskHandle`s (a `FuturesOrdered`
//! or a `FuturesUnordered`) for the next result. Each job's call site (in
//! [`ComputePool::call_sites`]) is the line that called `compute_map`,
//! taken when the stream was made. Every way it can return
//! `Pending` has a waker registered: with jobs in flight, by the in-flight
//! set; with none, by upstream, which was polled last and was `Pending`.
//! Small items may share a job: see the trait's "Shared jobs". This file
//! holds the trait and the two public streams; the one stream behind both,
//! with the jobs and their batching, is `stream/mapped.rs`.

mod mapped;

use std::fmt;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FusedStream, Stream};

// Through the crate's public names only: the modules behind them may move.
use crate::{ComputeError, ComputePool};
use mapped::{Mapped, Ordered, Unordered};

/// Maps the items of any [`Stream`] on a [`ComputePool`], at most `limit`
/// jobs in flight.
///
/// Implemented for every `Stream`. Both methods return a stream of
/// `Result<R, ComputeError>`, one per input item:
///
/// - **Back-pressure**: upstream is pulled only while fewer than `limit`
///   jobs are in flight (ordered: including finished results waiting for an
///   earlier one), so a slow consumer stalls the producer. A job holds one
///   item, or up to 64 small ones that were ready together (see
///   [Shared jobs](#shared-jobs) below), so upstream is at most `limit`
///   items ahead of the consumer, `64 × limit` for small items.
/// - **Panics are per item**: an item whose `f` panics gives
///   `Err(ComputeError::Panicked)` in its place; the stream goes on.
/// - **Dropping the stream cancels** the jobs in flight that have not
///   started (their [`TaskHandle`](crate::TaskHandle)s are dropped);
///   running ones finish and their results are dropped.
/// - **Ends** after the last result once upstream has ended; it is a
///   [`FusedStream`] (`None` again after that) and its `size_hint` counts
///   upstream's items plus those in flight.
/// - **Unpin** whatever upstream is: upstream is kept in a `Box` (one
///   allocation per adaptor, none per item).
///
/// The pool's metrics count jobs: a shared job counts once, as completed
/// even when one of its items panicked; in
/// [`call_sites`](ComputePool::call_sites) they count under the line that
/// called `compute_map` (or `compute_map_unordered`). After the pool's
/// [`shutdown`](ComputePool::shutdown), jobs are refused: each of their
/// items is `Err(ComputeError::Shutdown)`.
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
///
/// # Shared jobs
///
/// Each job measures how long its items took; items that upstream has ready
/// at the same poll then share a job, as many as fit in about 20 µs of that
/// measured compute time (at most 64). Items of 20 µs or more, and items
/// that arrive one at a time, get a job each. Inside a shared job each item
/// runs under its own `catch_unwind`, so a panic is still that item's
/// `Err(ComputeError::Panicked)` and the others' results stand. The items
/// of a shared job run one after another on one thread, so an item much
/// slower than those measured before it holds back the others of its job;
/// the estimate follows such a change within a few jobs.
///
/// It pays for small items: a hand-off costs a few microseconds, more than
/// a 1 µs item. Measured with the `stream` bench of `compute-benches` on a
/// shared, busy 2-vCPU VM, items of 1 µs went through at 2.3-3.4 × the rate
/// of `buffered(2 × threads)` over `execute` (one job per item); items of
/// 100 µs get a job each either way and went through at the same rate,
/// within the run-to-run noise of that machine (about ±10 %).
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
    #[track_caller]
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
        ComputeMap(Mapped::new(self, pool, limit.into(), f, Location::caller()))
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
    #[track_caller]
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
        ComputeMapUnordered(Mapped::new(self, pool, limit.into(), f, Location::caller()))
    }
}

impl<S: Stream + ?Sized> ComputeStreamExt for S {}

/// The two public adaptors: each a thin wrapper of one [`Mapped`], its
/// `Stream`, `FusedStream` and `Debug` passed straight through. (Wrappers
/// rather than type aliases, so that their documentation lists what they
/// implement.)
macro_rules! adaptor {
    ($(#[$doc:meta])* $name:ident, $order:ty) => {
        $(#[$doc])*
        #[must_use = "streams do nothing unless polled"]
        pub struct $name<S: Stream, F, R>(Mapped<S, F, R, $order>);

        impl<S, F, R> Stream for $name<S, F, R>
        where
            S: Stream,
            S::Item: Send + 'static,
            F: Fn(S::Item) -> R + Send + Sync + 'static,
            R: Send + 'static,
        {
            type Item = Result<R, ComputeError>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                Pin::new(&mut self.get_mut().0).poll_next(cx)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.0.size_hint()
            }
        }

        impl<S, F, R> FusedStream for $name<S, F, R>
        where
            S: Stream,
            S::Item: Send + 'static,
            F: Fn(S::Item) -> R + Send + Sync + 'static,
            R: Send + 'static,
        {
            fn is_terminated(&self) -> bool {
                self.0.is_terminated()
            }
        }

        impl<S: Stream, F, R> fmt::Debug for $name<S, F, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

adaptor!(
    /// The stream returned by [`ComputeStreamExt::compute_map`]: results in
    /// input order.
    ComputeMap,
    Ordered
);

adaptor!(
    /// The stream returned by [`ComputeStreamExt::compute_map_unordered`]:
    /// results as they finish.
    ComputeMapUnordered,
    Unordered
);
