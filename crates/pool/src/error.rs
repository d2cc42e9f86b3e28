//! What a compute job can resolve to instead of its value.

use std::any::Any;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// Why a job gave no value.
///
/// Returned by every [`TaskHandle`](crate::TaskHandle) and by
/// [`ComputePool::execute_sync`](crate::ComputePool::execute_sync). It is
/// `Send + Sync + 'static` and implements [`std::error::Error`], so `?` turns
/// it into a `Box<dyn Error + Send + Sync>` or an `anyhow`-style error.
///
/// ```
/// use compute_pool::{ComputeError, ComputePool};
///
/// fn run() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
///     let pool = ComputePool::with_defaults()?;
///     let value = futures::executor::block_on(pool.execute(|| 6 * 7))?;
///     Ok(value)
/// }
/// assert_eq!(run().unwrap(), 42);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ComputeError {
    /// The job panicked. The payload is kept: see [`ComputeError::into_panic`]
    /// and [`ComputeError::resume_unwind`].
    Panicked(PanicPayload),
    /// The handle was cancelled with [`TaskHandle::cancel`](crate::TaskHandle::cancel)
    /// before the result was taken.
    Cancelled,
    /// The pool is shut down (or shutting down and past its deadline): the
    /// job was refused or discarded without running.
    Shutdown,
    /// [`ComputePool::try_execute`](crate::ComputePool::try_execute) found
    /// `max_in_flight` jobs already queued or running.
    Saturated,
    /// An argument was out of range; [`ArgumentError`] says which and why.
    InvalidArgument(Box<ArgumentError>),
    /// The job was dropped without reporting a result (it never ran and its
    /// pool went away). Rayon runs every job it accepts, so this should not
    /// be seen in practice; it exists so that no handle can hang.
    Lost,
}

impl ComputeError {
    /// Wraps a caught panic payload.
    pub(crate) fn panicked(payload: Box<dyn Any + Send>) -> ComputeError {
        ComputeError::Panicked(PanicPayload::new(payload))
    }

    /// Whether the job panicked.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let err = pool.execute_sync(|| panic!("boom")).map(|()| ()).unwrap_err();
    /// assert!(err.is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, ComputeError::Panicked(_))
    }

    /// Whether the handle was cancelled.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let mut handle = pool.execute(|| 1);
    /// handle.cancel();
    /// let err = futures::executor::block_on(handle).unwrap_err();
    /// assert!(err.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ComputeError::Cancelled)
    }

    /// Whether the job was refused or discarded because the pool shut down.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// pool.shutdown_blocking(Duration::from_secs(1));
    /// let err = futures::executor::block_on(pool.execute(|| 1)).unwrap_err();
    /// assert!(err.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        matches!(self, ComputeError::Shutdown)
    }

    /// The panic payload, if the job panicked.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let err = pool.execute_sync(|| -> u8 { std::panic::panic_any(7_u32) }).unwrap_err();
    /// let payload = err.into_panic().expect("it panicked");
    /// assert_eq!(payload.downcast_ref::<u32>(), Some(&7));
    /// ```
    pub fn into_panic(self) -> Option<Box<dyn Any + Send>> {
        match self {
            ComputeError::Panicked(payload) => Some(payload.into_inner()),
            _ => None,
        }
    }

    /// Continues the job's panic on the current thread; any other error
    /// panics with its `Display` text.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let caught = std::panic::catch_unwind(|| {
    ///     match pool.execute_sync(|| -> u8 { panic!("deep trouble") }) {
    ///         Ok(v) => v,
    ///         Err(e) => e.resume_unwind(),
    ///     }
    /// });
    /// let payload = caught.unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"deep trouble"));
    /// ```
    pub fn resume_unwind(self) -> ! {
        match self {
            ComputeError::Panicked(payload) => std::panic::resume_unwind(payload.into_inner()),
            other => panic!("{other}"),
        }
    }
}

impl fmt::Display for ComputeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeError::Panicked(payload) => {
                write!(f, "the compute job panicked: {}", payload.message())
            }
            ComputeError::Cancelled => {
                f.write_str("the compute job was cancelled before its result was taken")
            }
            ComputeError::Shutdown => {
                f.write_str("the compute pool is shut down: the job was not run")
            }
            ComputeError::Saturated => f.write_str(
                "the compute pool is saturated: max_in_flight jobs are already queued or running",
            ),
            ComputeError::InvalidArgument(arg) => write!(
                f,
                "invalid argument {} = {}: {}",
                arg.name, arg.value, arg.reason
            ),
            ComputeError::Lost => f.write_str(
                "the compute job was dropped without reporting a result (its pool went away)",
            ),
        }
    }
}

impl std::error::Error for ComputeError {}

/// The payload of a job's panic, as `catch_unwind` gave it.
///
/// The message (when the payload is a `&str` or `String`, as `panic!` makes
/// it) is copied out at creation for `Display`. The payload itself sits
/// behind a mutex only so that [`ComputeError`] is `Sync`; it is taken out
/// with [`PanicPayload::into_inner`].
///
/// ```
/// use compute_pool::ComputeError;
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// let err = pool.execute_sync(|| -> () { panic!("at {}", 3) }).unwrap_err();
/// let ComputeError::Panicked(payload) = err else { unreachable!() };
/// assert_eq!(payload.message(), "at 3");
/// ```
///
/// It is one pointer wide, so an error costs little room in every job's
/// result slot.
pub struct PanicPayload(Box<PanicInner>);

struct PanicInner {
    message: String,
    payload: Mutex<Box<dyn Any + Send>>,
}

/// The argument a call refused; inside [`ComputeError::InvalidArgument`].
///
/// ```
/// use compute_pool::ComputeError;
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// let err = futures::executor::block_on(pool.parallel_batch(vec![1, 2], 0, |c: &[i32]| c.to_vec()))
///     .unwrap_err();
/// let ComputeError::InvalidArgument(arg) = err else { unreachable!() };
/// assert_eq!((arg.name, arg.value.as_str()), ("batch_size", "0"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError {
    /// The argument's name, for example `"batch_size"`.
    pub name: &'static str,
    /// The value it was given.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl PanicPayload {
    fn new(payload: Box<dyn Any + Send>) -> PanicPayload {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a non-string panic payload".to_owned()
        };
        PanicPayload(Box::new(PanicInner {
            message,
            payload: Mutex::new(payload),
        }))
    }

    /// The panic message, or `"a non-string panic payload"`.
    ///
    /// ```
    /// # use compute_pool::ComputeError;
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let err = pool.execute_sync(|| -> () { std::panic::panic_any(1_i32) }).unwrap_err();
    /// let ComputeError::Panicked(payload) = err else { unreachable!() };
    /// assert_eq!(payload.message(), "a non-string panic payload");
    /// ```
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The payload itself, for `downcast` or `std::panic::resume_unwind`.
    ///
    /// ```
    /// # use compute_pool::ComputeError;
    /// # let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let err = pool.execute_sync(|| -> () { panic!("x") }).unwrap_err();
    /// let ComputeError::Panicked(payload) = err else { unreachable!() };
    /// assert_eq!(payload.into_inner().downcast_ref::<&str>(), Some(&"x"));
    /// ```
    pub fn into_inner(self) -> Box<dyn Any + Send> {
        self.0
            .payload
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicPayload")
            .field("message", &self.0.message)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}
