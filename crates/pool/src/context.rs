//! The compute context: which pool the current thread belongs to.
//!
//! Every compute thread of a [`ComputePool`] knows its pool, so code deep in
//! a call stack can find it with [`current`] instead of passing it around.
//! Other threads (for example a Tokio runtime's worker and blocking threads)
//! join a pool's context with [`enter_context`], typically from the
//! runtime builder's `on_thread_start`.
//!
//! The context is a weak reference: it never keeps a pool alive, and
//! [`current`] returns `None` once the pool is gone.

use std::sync::{Arc, Weak};

use crate::home;
use crate::pool::ComputePool;

/// The pool of the current thread's compute context: set on the pool's own
/// compute threads, and on threads that called [`enter_context`]. `None`
/// elsewhere, or once the pool is dropped.
///
/// ```
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// assert!(compute_pool::current().is_none()); // not a compute thread
/// let found = futures::executor::block_on(pool.execute(|| {
///     compute_pool::current().map(|p| p.num_threads())
/// }))
/// .unwrap();
/// assert_eq!(found, Some(pool.num_threads()));
/// ```
pub fn current() -> Option<ComputePool> {
    let inner = home::context()?.owner()?;
    Some(ComputePool {
        inner,
        lane: crate::Priority::High,
    })
}

/// Makes `pool` the current thread's compute context, so [`current`] returns
/// it. Meant for the start hook of threads that belong with the pool, such
/// as a Tokio runtime's workers (`on_thread_start`); calling it again
/// replaces the previous pool.
///
/// ```
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// let rt = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(1)
///     .on_thread_start({
///         let pool = pool.clone();
///         move || compute_pool::enter_context(&pool)
///     })
///     .build()
///     .unwrap();
/// let seen = rt.block_on(async {
///     tokio::spawn(async { compute_pool::current().is_some() }).await.unwrap()
/// });
/// assert!(seen);
/// ```
pub fn enter_context(pool: &ComputePool) {
    home::enter(Arc::downgrade(&pool.inner.engine));
}

/// Clears the current thread's compute context; [`current`] returns `None`
/// afterwards (until the next [`enter_context`]).
///
/// ```
/// let pool = compute_pool::ComputePool::with_defaults().unwrap();
/// compute_pool::enter_context(&pool);
/// assert!(compute_pool::current().is_some());
/// compute_pool::leave_context();
/// assert!(compute_pool::current().is_none());
/// ```
pub fn leave_context() {
    home::enter(Weak::new());
}
