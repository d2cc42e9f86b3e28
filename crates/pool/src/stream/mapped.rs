//! The one stream behind both adaptors, [`Mapped`]: it pulls items from
//! upstream, hands them to the pool in jobs of one item or several, and
//! yields their results in the order its [`Order`] says.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::stream::{FusedStream, FuturesOrdered, FuturesUnordered, Stream};

// Through the crate's public names only: the modules behind them may move.
use crate::{ComputeError, ComputePool, TaskHandle};

/// The one stream behind both adaptors; `O` says which order its results
/// come in.
pub(super) struct Mapped<S: Stream, F, R, O: Order> {
    /// `None` once upstream has ended (and then dropped).
    upstream: Option<Pin<Box<S>>>,
    pool: ComputePool,
    /// Shared by every job of this stream.
    f: Arc<F>,
    /// Where the stream was made: every job's call site.
    caller: &'static Location<'static>,
    /// At most this many jobs in flight; at least 1.
    limit: usize,
    in_flight: O::Set<R>,
    /// Items in the jobs in flight.
    items_in_flight: usize,
    /// Results of a shared job not yet yielded, in item order.
    ready: VecDeque<Result<R, ComputeError>>,
    /// Compute time per item, as the jobs measured it (a moving average);
    /// `None` until a job has told.
    item_nanos: Option<u64>,
    /// Items pulled from upstream but not yet in a job (a batch being
    /// gathered; empty between polls).
    gathering: Vec<S::Item>,
}

// Nothing of the adaptor is ever pinned but upstream, which sits in its own
// `Box`; items and results are only moved. So it is `Unpin` whatever `S`,
// its items or `R` are.
impl<S: Stream, F, R, O: Order> Unpin for Mapped<S, F, R, O> {}

/// Which order a [`Mapped`] yields its results in: the one difference
/// between the two adaptors.
pub(super) trait Order {
    /// The set of jobs in flight.
    type Set<R>: InFlight<R>;
    /// The adaptor's public name, for `Debug`.
    const NAME: &'static str;
}

/// Results in input order ([`ComputeMap`](super::ComputeMap)).
pub(super) enum Ordered {}

/// Results as they finish ([`ComputeMapUnordered`](super::ComputeMapUnordered)).
pub(super) enum Unordered {}

impl Order for Ordered {
    type Set<R> = FuturesOrdered<Job<R>>;
    const NAME: &'static str = "ComputeMap";
}

impl Order for Unordered {
    type Set<R> = FuturesUnordered<Job<R>>;
    const NAME: &'static str = "ComputeMapUnordered";
}

/// Items share a job while their estimated compute time together stays
/// under this: many times a hand-off's cost, yet short enough that a shared
/// job holds its items back little.
const BATCH_NANOS: u64 = 20_000;

/// The most items one job takes; with `limit` jobs, upstream is pulled at
/// most `limit × MAX_BATCH` items ahead of the consumer.
const MAX_BATCH: usize = 64;

/// A job of one item or of several, with what it gives back.
pub(super) struct Job<R> {
    handle: TaskHandle<Ran<R>>,
    /// How many items it holds.
    items: usize,
}

/// What a job gives back: its items' results and their compute time.
pub(super) struct Ran<R> {
    results: Results<R>,
    took: Duration,
}

enum Results<R> {
    /// The job's one item (a panic in it is the job's own).
    One(R),
    /// Several items, one result each in item order; a panic is caught per
    /// item and its payload kept.
    Many(Vec<Result<R, Box<dyn Any + Send>>>),
}

impl<R> Future for Job<R> {
    type Output = (Result<Ran<R>, ComputeError>, usize);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.handle)
            .poll(cx)
            .map(|result| (result, this.items))
    }
}

/// The set of jobs in flight: ordered or not.
pub(super) trait InFlight<R>:
    Stream<Item = (Result<Ran<R>, ComputeError>, usize)> + Unpin + Default
{
    /// Adds a job, last.
    fn push(&mut self, job: Job<R>);
    /// How many jobs it holds.
    fn len(&self) -> usize;
}

impl<R> InFlight<R> for FuturesOrdered<Job<R>> {
    fn push(&mut self, job: Job<R>) {
        self.push_back(job);
    }

    fn len(&self) -> usize {
        FuturesOrdered::len(self)
    }
}

impl<R> InFlight<R> for FuturesUnordered<Job<R>> {
    fn push(&mut self, job: Job<R>) {
        FuturesUnordered::push(self, job);
    }

    fn len(&self) -> usize {
        FuturesUnordered::len(self)
    }
}

impl<S: Stream, F, R, O: Order> Mapped<S, F, R, O> {
    pub(super) fn new(
        upstream: S,
        pool: &ComputePool,
        limit: Option<usize>,
        f: F,
        caller: &'static Location<'static>,
    ) -> Self {
        let limit = match limit {
            None => pool.num_threads().saturating_mul(2),
            Some(0) => panic!("compute_map: a limit of Some(0) jobs in flight could never run one"),
            Some(n) => n,
        };
        Mapped {
            upstream: Some(Box::pin(upstream)),
            pool: pool.clone(),
            f: Arc::new(f),
            caller,
            limit,
            in_flight: O::Set::default(),
            items_in_flight: 0,
            ready: VecDeque::new(),
            item_nanos: None,
            gathering: Vec::new(),
        }
    }

    fn ended(&self) -> bool {
        self.upstream.is_none() && self.items_in_flight == 0 && self.ready.is_empty()
    }

    fn items_left(&self) -> (usize, Option<usize>) {
        let here = self.items_in_flight + self.ready.len();
        let (lower, upper) = match &self.upstream {
            Some(upstream) => upstream.size_hint(),
            None => (0, Some(0)),
        };
        (
            lower.saturating_add(here),
            upper.and_then(|upper| upper.checked_add(here)),
        )
    }

    /// How many items the next job may take: one until a job has measured
    /// them, then as many as fit in [`BATCH_NANOS`] (at most [`MAX_BATCH`]).
    fn batch_size(&self) -> usize {
        match self.item_nanos {
            None => 1,
            Some(nanos) => {
                let fit = BATCH_NANOS / nanos.max(1);
                usize::try_from(fit).map_or(MAX_BATCH, |fit| fit.clamp(1, MAX_BATCH))
            }
        }
    }

    /// Folds a job's compute time per item into the average (weight 1/4:
    /// quick to follow a change, steady against one preempted job).
    fn learn(&mut self, took: Duration, items: usize) {
        let per_item = u64::try_from(took.as_nanos() / items.max(1) as u128).unwrap_or(u64::MAX);
        self.item_nanos = Some(match self.item_nanos {
            None => per_item,
            Some(old) => old - old / 4 + per_item / 4,
        });
    }
}

impl<S, F, R, O> Mapped<S, F, R, O>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
    O: Order,
{
    /// Hands the gathered items to the pool as one job.
    fn submit(&mut self) {
        let f = Arc::clone(&self.f);
        let items = self.gathering.len();
        let handle = if items == 1 {
            let item = self.gathering.pop().expect("one item gathered");
            self.pool.execute_from(self.caller, move || {
                let started = Instant::now();
                let value = f(item);
                Ran {
                    results: Results::One(value),
                    took: started.elapsed(),
                }
            })
        } else {
            let batch = mem::take(&mut self.gathering);
            self.pool.execute_from(self.caller, move || {
                let started = Instant::now();
                let results = batch
                    .into_iter()
                    .map(|item| catch_unwind(AssertUnwindSafe(|| f(item))))
                    .collect();
                Ran {
                    results: Results::Many(results),
                    took: started.elapsed(),
                }
            })
        };
        self.items_in_flight += items;
        self.in_flight.push(Job { handle, items });
    }

    /// Takes in a finished job: its first result, the rest into `ready`.
    fn finished(
        &mut self,
        result: Result<Ran<R>, ComputeError>,
        items: usize,
    ) -> Result<R, ComputeError> {
        self.items_in_flight -= items;
        match result {
            Ok(Ran {
                results: Results::One(value),
                took,
            }) => {
                self.learn(took, 1);
                Ok(value)
            }
            Ok(Ran {
                results: Results::Many(results),
                took,
            }) => {
                self.learn(took, items);
                // An item's panic is the `ComputeError::Panicked` (payload
                // kept) a job of its own would have given.
                self.ready.extend(
                    results
                        .into_iter()
                        .map(|result| result.map_err(ComputeError::panicked)),
                );
                self.ready.pop_front().expect("a shared job has items")
            }
            // The job did not run (cancelled, refused at shutdown, lost):
            // the same for each of its items.
            Err(error) => {
                for _ in 1..items {
                    self.ready.push_back(Err(same_error(&error)));
                }
                Err(error)
            }
        }
    }

    fn poll_results(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<R, ComputeError>>> {
        // Pull while there is room; stop at the first `Pending` (upstream's
        // waker is then registered) or at the end. Items ready together
        // share a job, up to `batch_size`. The results of a shared job still
        // to be yielded (of one job at most: `ready` is refilled only once
        // empty) hold on to its place, so that upstream is never more than
        // `limit × MAX_BATCH` items ahead of the consumer.
        while self.in_flight.len() + usize::from(!self.ready.is_empty()) < self.limit {
            let batch_size = self.batch_size();
            let Some(upstream) = self.upstream.as_mut() else {
                break;
            };
            // Room for a whole batch at once (kept between one-item jobs,
            // which leave the vector empty but allocated).
            self.gathering.reserve_exact(batch_size);
            let mut waiting = false;
            while self.gathering.len() < batch_size {
                match upstream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => self.gathering.push(item),
                    Poll::Ready(None) => {
                        self.upstream = None;
                        break;
                    }
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                }
            }
            if !self.gathering.is_empty() {
                self.submit();
            }
            if waiting || self.upstream.is_none() {
                break;
            }
        }
        if let Some(result) = self.ready.pop_front() {
            return Poll::Ready(Some(result));
        }
        match Pin::new(&mut self.in_flight).poll_next(cx) {
            Poll::Ready(Some((result, items))) => Poll::Ready(Some(self.finished(result, items))),
            Poll::Ready(None) if self.upstream.is_none() => Poll::Ready(None),
            // Nothing in flight and upstream alive: with `limit >= 1` the
            // loop above polled upstream last, and it was `Pending`.
            Poll::Ready(None) => Poll::Pending,
            // The in-flight set registered the waker.
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `error` again, for the other items of a job that did not run.
fn same_error(error: &ComputeError) -> ComputeError {
    match error {
        ComputeError::Cancelled => ComputeError::Cancelled,
        ComputeError::Shutdown => ComputeError::Shutdown,
        ComputeError::Saturated => ComputeError::Saturated,
        // A shared job catches its items' panics, so nothing else is seen
        // here in practice; `Lost` says "no result" without inventing one.
        _ => ComputeError::Lost,
    }
}

impl<S, F, R, O> Stream for Mapped<S, F, R, O>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
    O: Order,
{
    type Item = Result<R, ComputeError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_results(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items_left()
    }
}

impl<S, F, R, O> FusedStream for Mapped<S, F, R, O>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> R + Send + Sync + 'static,
    R: Send + 'static,
    O: Order,
{
    fn is_terminated(&self) -> bool {
        self.ended()
    }
}

impl<S: Stream, F, R, O: Order> fmt::Debug for Mapped<S, F, R, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(O::NAME)
            .field("items_in_flight", &self.items_in_flight)
            .field("limit", &self.limit)
            .field("upstream_ended", &self.upstream.is_none())
            .finish_non_exhaustive()
    }
}
