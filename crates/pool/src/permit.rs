//! Awaitable admission: [`ComputePool::reserve`] waits, first come first
//! served, for a place in a bounded pool, and the [`Permit`] it gives
//! submits one job into that place.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cancel::CancelToken;
use crate::error::ComputeError;
use crate::handle::TaskHandle;
use crate::ledger::Room;
use crate::places::Reservation;
use crate::pool::ComputePool;

/// A place reserved in a pool, from [`ComputePool::reserve`]: submit one job
/// into it with [`execute`](Permit::execute). Dropping an unused permit
/// gives the place back.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use compute_pool::{ComputeConfig, ComputePool};
///
/// let pool = ComputePool::new(ComputeConfig {
///     max_in_flight: Some(2),
///     max_queued: Some(8),
///     ..Default::default()
/// })?;
/// let permit = pool.reserve().await?;
/// assert_eq!(permit.execute(|| 6 * 7).await?, 42);
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a permit gives its place back unused"]
pub struct Permit {
    pool: ComputePool,
    /// Whether it holds a place (a pool without `max_queued` has no places
    /// to reserve: the permit then submits like `execute`).
    holds_place: bool,
}

impl Permit {
    /// Submits `f` into the reserved place, in the permit's pool's lane; the
    /// handle behaves as one from [`ComputePool::execute`]. Never
    /// `Saturated`; `Shutdown` if the pool shut down since the place was
    /// reserved.
    #[track_caller]
    pub fn execute<F, R>(mut self, f: F) -> TaskHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let room = if std::mem::take(&mut self.holds_place) {
            Room::Reserved
        } else {
            Room::Any
        };
        self.pool
            .inner
            .submit(room, self.pool.lane, move |_: CancelToken<'_>| f())
            .unwrap_or_else(|error| TaskHandle::ready(Err(error)))
    }
}

impl ComputePool {
    /// Waits, first come first served, for a place in this pool, and gives a
    /// [`Permit`] to submit one job into it. A pool bounded
    /// with `max_queued` holds at most `max_in_flight + max_queued` jobs
    /// (reserved places included): a producer that awaits `reserve` before
    /// each job keeps memory bounded however fast it produces, where
    /// `execute` would answer `Saturated`. Without `max_queued` it resolves
    /// at once. Cancel-safe; after [`shutdown`](Self::shutdown) it resolves
    /// (and every waiting reserver is woken) to `Err(Shutdown)`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use compute_pool::{ComputeConfig, ComputeError, ComputePool};
    ///
    /// let pool = ComputePool::new(ComputeConfig {
    ///     num_threads: Some(1),
    ///     max_in_flight: Some(1),
    ///     max_queued: Some(0),
    ///     ..Default::default()
    /// })?;
    /// let permit = pool.reserve().await?; // the one place
    /// assert!(matches!(pool.execute(|| ()).await, Err(ComputeError::Saturated)));
    /// drop(permit); // given back unused
    /// assert_eq!(pool.reserve().await?.execute(|| 1).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reserve(&self) -> Reserve {
        Reserve::new(self.clone())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.holds_place {
            self.pool.inner.engine.ledger.release_place();
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("holds_place", &self.holds_place)
            .finish()
    }
}

/// The future of [`ComputePool::reserve`]: resolves to a [`Permit`] once a
/// place is free, or to `Err(Shutdown)`. Cancel-safe: dropped while it
/// waits, it leaves the queue (and gives back a place it was just granted).
#[must_use = "a reservation does nothing unless awaited"]
pub struct Reserve {
    pool: ComputePool,
    /// Its place in the reservers' queue, once it waits.
    waiting: Option<u64>,
}

impl Reserve {
    fn new(pool: ComputePool) -> Reserve {
        Reserve {
            pool,
            waiting: None,
        }
    }

    fn permit(&self, holds_place: bool) -> Poll<Result<Permit, ComputeError>> {
        Poll::Ready(Ok(Permit {
            pool: self.pool.clone(),
            holds_place,
        }))
    }
}

impl Future for Reserve {
    type Output = Result<Permit, ComputeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let ledger = &this.pool.inner.engine.ledger;
        let places = ledger.places().filter(|places| places.has_capacity());
        if ledger.is_closed() {
            if let (Some(places), Some(id)) = (places, this.waiting.take()) {
                places.cancel(id);
            }
            return Poll::Ready(Err(ComputeError::Shutdown));
        }
        let Some(places) = places else {
            // Unbounded: nothing to wait for.
            return this.permit(false);
        };
        match this.waiting {
            None => match places.reserve(cx.waker()) {
                Reservation::Granted => this.permit(true),
                Reservation::Waiting(id) => {
                    this.waiting = Some(id);
                    Poll::Pending
                }
            },
            Some(id) => {
                if places.poll_reserved(id, cx.waker()) {
                    this.waiting = None;
                    this.permit(true)
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        if let Some(id) = self.waiting.take() {
            if let Some(places) = self.pool.inner.engine.ledger.places() {
                places.cancel(id);
            }
        }
    }
}

impl fmt::Debug for Reserve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reserve")
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}
