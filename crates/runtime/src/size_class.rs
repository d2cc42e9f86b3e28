//! Size classes: pick how a job runs from how long it is expected to take.
//!
//! Handing a job to the pool costs tens of microseconds (two thread
//! wake-ups); running it on the async thread costs that thread for as long
//! as the job runs. The rule of thumb, as code:
//!
//! | class | expected compute time | how it runs | method |
//! |---|---|---|---|
//! | [`SizeClass::Small`] | under 100 µs | inline, on the calling thread, as a job of the pool ([`ComputePool::execute_here`]) | [`run_small`](SizeClassExt::run_small) |
//! | [`SizeClass::Medium`] | 100 µs to 1 ms | [`tokio::task::block_in_place`] + [`ComputePool::execute_sync`] | [`run_medium`](SizeClassExt::run_medium) |
//! | [`SizeClass::Large`] | over 1 ms | [`ComputePool::execute`], awaited | [`run_large`](SizeClassExt::run_large) |
//!
//! The methods come from the [`SizeClassExt`] trait, implemented for
//! [`ComputePool`]; import it (`use compute_runtime::SizeClassExt;`) to call
//! them. All four are `async`, take a `move` closure, and give
//! `Result<R, ComputeError>`: a panic in the job is
//! [`ComputeError::Panicked`] whichever class ran it.
//!
//! Medium needs a worker thread of a multi-thread Tokio runtime:
//! `block_in_place` hands this worker's other tasks to another thread while
//! the calling thread waits for the pool. Anywhere else `run_medium` awaits
//! [`ComputePool::execute`] instead: on a current-thread runtime and inside a
//! `LocalSet` (where `block_in_place` panics), in `block_on` and on blocking
//! threads (no worker to step aside), and outside Tokio. So it never blocks
//! a thread whose other tasks have nowhere to go.
//!
//! Tokio has no public query for "is `block_in_place` allowed here". So
//! `run_medium` asks whether a scheduler runs the calling thread: it polls
//! [`tokio::task::yield_now`] once with a waker of its own, which Tokio
//! hands to the scheduler on a worker thread and wakes at once anywhere
//! else; the calling task is not involved.
//!
//! If you do not know the size, [`ComputePool::execute_adaptive`] measures
//! it per call site and chooses between inline and offload itself.

use std::future::Future;
use std::time::Duration;

use compute_pool::{ComputeError, ComputePool};

/// How big a job is expected to be; decides how
/// [`run_sized`](SizeClassExt::run_sized) runs it. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeClass {
    /// Under about 100 µs: run inline on the calling thread. The handoff to
    /// the pool would cost as much as the job.
    Small,
    /// About 100 µs to 1 ms: run on the pool while this Tokio worker steps
    /// aside (`block_in_place`), saving the cost of waking the task again.
    Medium,
    /// Over about 1 ms: submit to the pool and await the handle; the handoff
    /// is noise next to the job.
    Large,
}

impl SizeClass {
    /// Upper bound of [`SizeClass::Small`] (100 µs).
    pub const SMALL_LIMIT: Duration = Duration::from_micros(100);
    /// Upper bound of [`SizeClass::Medium`] (1 ms).
    pub const MEDIUM_LIMIT: Duration = Duration::from_millis(1);

    /// The class for a job expected to take `expected`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use compute_runtime::SizeClass;
    ///
    /// assert_eq!(SizeClass::for_duration(Duration::from_micros(20)), SizeClass::Small);
    /// assert_eq!(SizeClass::for_duration(Duration::from_micros(400)), SizeClass::Medium);
    /// assert_eq!(SizeClass::for_duration(Duration::from_millis(5)), SizeClass::Large);
    /// ```
    pub fn for_duration(expected: Duration) -> SizeClass {
        if expected < SizeClass::SMALL_LIMIT {
            SizeClass::Small
        } else if expected <= SizeClass::MEDIUM_LIMIT {
            SizeClass::Medium
        } else {
            SizeClass::Large
        }
    }
}

/// Whether this thread is a worker of a multi-thread Tokio runtime, where
/// `tokio::task::block_in_place` is allowed and moves the worker's other
/// tasks to another thread.
///
/// Tokio has no public query for this. The current handle's flavor rules out
/// current-thread runtimes, but not a `LocalSet` (driven by `block_on` or on a
/// blocking thread), where `block_in_place` panics. So this also checks that
/// a scheduler runs this very thread, with [`on_a_worker`]. Where it cannot
/// tell, it answers `false`, and the callers then await instead of blocking.
pub(crate) fn can_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        && on_a_worker()
}

/// Whether a Tokio scheduler runs this thread and holds its core here.
///
/// Polls [`tokio::task::yield_now`] once with a waker of its own: Tokio
/// hands that waker to the scheduler running the thread (to wake once the
/// scheduler has run its other tasks), and wakes it at once when no
/// scheduler runs the thread: a `block_on` thread, a blocking thread, a
/// worker inside `block_in_place`, or no runtime at all. The caller's task
/// is untouched; the deferred wake-up later sets a flag nobody reads. It
/// costs a thread-local access and, on a worker, a waker clone the first
/// time per scheduler tick.
fn on_a_worker() -> bool {
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    /// A waker that records, on the thread it is woken on, that it was.
    struct Probe;

    impl Wake for Probe {
        fn wake(self: Arc<Self>) {
            WOKEN.with(|woken| woken.set(true));
        }
        fn wake_by_ref(self: &Arc<Self>) {
            WOKEN.with(|woken| woken.set(true));
        }
    }

    thread_local! {
        static WOKEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        static PROBE: Waker = Waker::from(Arc::new(Probe));
    }

    WOKEN.with(|woken| woken.set(false));
    let mut yielding = std::pin::pin!(tokio::task::yield_now());
    let pending = PROBE.with(|waker| {
        yielding
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    });
    pending && !WOKEN.with(std::cell::Cell::get)
}

/// The size-class methods of a [`ComputePool`]: run a job the way its
/// expected duration calls for. See the [module docs](self).
///
/// A trait because the pool lives in `compute_pool` and the size classes
/// here; it is implemented for [`ComputePool`] and must be imported to be
/// used:
///
/// ```
/// use compute_runtime::{ComputePool, SizeClassExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let pool = ComputePool::with_defaults()?;
/// assert_eq!(pool.run_small(|| 2 + 2).await?, 4);
/// # Ok(())
/// # }
/// ```
pub trait SizeClassExt {
    /// Runs a job of the given [`SizeClass`]; the same as calling
    /// [`run_small`](SizeClassExt::run_small),
    /// [`run_medium`](SizeClassExt::run_medium) or
    /// [`run_large`](SizeClassExt::run_large).
    ///
    /// ```
    /// use std::time::Duration;
    /// use compute_runtime::{ComputePool, SizeClass, SizeClassExt};
    ///
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let pool = ComputePool::with_defaults()?;
    /// let class = SizeClass::for_duration(Duration::from_micros(300));
    /// let sum = pool.run_sized(class, || (0..10_000u64).sum::<u64>()).await?;
    /// assert_eq!(sum, 49_995_000);
    /// # Ok(())
    /// # }
    /// ```
    fn run_sized<F, R>(
        &self,
        class: SizeClass,
        f: F,
    ) -> impl Future<Output = Result<R, ComputeError>> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// Runs a small job (under about 100 µs) inline, on the calling thread,
    /// as a job of the pool ([`ComputePool::execute_here`]): counted in its
    /// metrics, and refused with [`ComputeError::Shutdown`] once the pool is
    /// shut down.
    ///
    /// Nothing is handed to the pool's threads; a panic is caught and
    /// returned as [`ComputeError::Panicked`]. Use it only for work short
    /// enough to run on an async thread without delaying its other tasks.
    ///
    /// ```
    /// use compute_runtime::SizeClassExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let pool = compute_runtime::ComputePool::with_defaults()?;
    /// let n = pool.run_small(|| "hello".len()).await?;
    /// assert_eq!(n, 5);
    /// # Ok(())
    /// # }
    /// ```
    fn run_small<F, R>(&self, f: F) -> impl Future<Output = Result<R, ComputeError>> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// Runs a medium job (about 100 µs to 1 ms) on the pool with the calling
    /// Tokio worker stepping aside.
    ///
    /// On a worker thread of a multi-thread runtime this is
    /// `tokio::task::block_in_place(|| pool.execute_sync(f))`: the worker's
    /// queued tasks move to another thread and this thread waits for the
    /// pool directly, without the wake-up an `.await` costs. Everywhere else
    /// it awaits [`execute`](ComputePool::execute): on a current-thread
    /// runtime and inside a `tokio::task::LocalSet`, where `block_in_place`
    /// would panic, in a runtime's `block_on` or on its blocking threads, and
    /// outside Tokio. Called from a compute thread of this pool, the job runs
    /// inline.
    ///
    /// Tokio offers no public way to ask whether `block_in_place` is
    /// allowed, so the check looks at the scheduler running the thread (see
    /// the [module docs](self)). One arrangement defeats it: a multi-thread
    /// runtime's handle entered (`Handle::enter`) inside a task of a
    /// current-thread runtime. There `block_in_place` panics; don't call
    /// `run_medium` (or `run_sized` with `Medium`) in that spot.
    ///
    /// ```
    /// use compute_runtime::SizeClassExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let pool = compute_runtime::ComputePool::with_defaults()?;
    /// // A current-thread runtime: no block_in_place, no panic.
    /// let v = pool.run_medium(|| (1..=20u64).product::<u64>()).await?;
    /// assert_eq!(v, 2_432_902_008_176_640_000);
    /// # Ok(())
    /// # }
    /// ```
    fn run_medium<F, R>(&self, f: F) -> impl Future<Output = Result<R, ComputeError>> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// Runs a large job (over about 1 ms) on the pool and awaits it: exactly
    /// [`execute`](ComputePool::execute). The calling thread is free for
    /// other tasks while the job runs.
    ///
    /// ```
    /// use compute_runtime::SizeClassExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let pool = compute_runtime::ComputePool::with_defaults()?;
    /// let primes = pool
    ///     .run_large(|| (2..20_000u32).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0)).count())
    ///     .await?;
    /// assert_eq!(primes, 2262);
    /// # Ok(())
    /// # }
    /// ```
    fn run_large<F, R>(&self, f: F) -> impl Future<Output = Result<R, ComputeError>> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;
}

impl SizeClassExt for ComputePool {
    async fn run_sized<F, R>(&self, class: SizeClass, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match class {
            SizeClass::Small => self.run_small(f).await,
            SizeClass::Medium => self.run_medium(f).await,
            SizeClass::Large => self.run_large(f).await,
        }
    }

    async fn run_small<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.execute_here(f)
    }

    async fn run_medium<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.is_worker_thread() {
            // Already on this pool: `execute_sync` runs the job inline.
            self.execute_sync(f)
        } else if can_block_in_place() {
            tokio::task::block_in_place(|| self.execute_sync(f))
        } else {
            self.execute(f).await
        }
    }

    async fn run_large<F, R>(&self, f: F) -> Result<R, ComputeError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.execute(f).await
    }
}
