//! The submitting methods around rayon's parallelism: a job that is a
//! `scope`, a `join`, or a parallel map over a vector.

use rayon::prelude::*;

use crate::cancel::CancelToken;
use crate::error::{ArgumentError, ComputeError};
use crate::handle::TaskHandle;
use crate::job::drop_contained;
use crate::pool::ComputePool;

impl ComputePool {
    /// Runs `f` inside a `rayon::scope` on a compute thread: `f` can spawn
    /// any number of tasks, decided at run time; the handle resolves after all
    /// of them finish. A panic in any of them gives `Panicked`.
    ///
    /// Tasks outlive `f`'s own locals, so they own (or share) their data.
    /// For tasks that write into locals read after the scope, call
    /// `rayon::scope` inside [`install`](Self::install) instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let total = Arc::new(AtomicU64::new(0));
    /// let sink = total.clone();
    /// pool.execute_scoped(move |scope| {
    ///     for part in 0..4u64 {
    ///         let sink = sink.clone();
    ///         scope.spawn(move |_| {
    ///             let sum: u64 = (part * 1000..(part + 1) * 1000).sum();
    ///             sink.fetch_add(sum, Ordering::Relaxed);
    ///         });
    ///     }
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(total.load(Ordering::Relaxed), (0..4000u64).sum());
    /// # }
    /// ```
    #[track_caller]
    pub fn execute_scoped<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: for<'s> FnOnce(&rayon::Scope<'s>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| rayon::scope(f))
    }

    /// Like [`execute_scoped`](Self::execute_scoped) with `rayon::scope_fifo`:
    /// tasks spawned from one thread start in the order they were spawned.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let pool = compute_pool::ComputePool::new(compute_pool::ComputeConfig {
    ///     num_threads: Some(1),
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let seen = order.clone();
    /// futures::executor::block_on(pool.execute_scoped_fifo(move |scope| {
    ///     for i in 0..4 {
    ///         let seen = seen.clone();
    ///         scope.spawn_fifo(move |_| seen.lock().unwrap().push(i));
    ///     }
    /// }))
    /// .unwrap();
    /// assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn execute_scoped_fifo<F, R>(&self, f: F) -> TaskHandle<R>
    where
        F: for<'s> FnOnce(&rayon::ScopeFifo<'s>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| rayon::scope_fifo(f))
    }

    /// Runs `a` and `b` in parallel on the pool (`rayon::join`) and resolves
    /// to both results.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let (evens, odds) = futures::executor::block_on(pool.join(
    ///     || (0..100u32).filter(|n| n % 2 == 0).count(),
    ///     || (0..100u32).filter(|n| n % 2 == 1).count(),
    /// ))
    /// .unwrap();
    /// assert_eq!((evens, odds), (50, 50));
    /// ```
    #[track_caller]
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> TaskHandle<(RA, RB)>
    where
        A: FnOnce() -> RA + Send + 'static,
        B: FnOnce() -> RB + Send + 'static,
        RA: Send + 'static,
        RB: Send + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| rayon::join(a, b))
    }

    /// Maps `f` over `items` in parallel on the pool; the output keeps the
    /// input's order.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let squares = futures::executor::block_on(pool.par_map((1..=5u32).collect(), |x| x * x)).unwrap();
    /// assert_eq!(squares, vec![1, 4, 9, 16, 25]);
    /// ```
    #[track_caller]
    pub fn par_map<T, R, F>(&self, items: Vec<T>, f: F) -> TaskHandle<Vec<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        self.submit_async(move |_: CancelToken<'_>| items.into_par_iter().map(f).collect())
    }

    /// Splits `items` into chunks of `batch_size`, runs `f` on the chunks in
    /// parallel on the pool, and concatenates the outputs in input order.
    ///
    /// A `batch_size` of 0 resolves to [`ComputeError::InvalidArgument`]
    /// naming `batch_size`.
    ///
    /// ```
    /// let pool = compute_pool::ComputePool::with_defaults().unwrap();
    /// let lines: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    /// let lengths = futures::executor::block_on(pool.parallel_batch(lines, 4, |chunk: &[String]| {
    ///     chunk.iter().map(|l| l.len()).collect::<Vec<_>>()
    /// }))
    /// .unwrap();
    /// assert_eq!(lengths, vec![6; 10]);
    ///
    /// let err = futures::executor::block_on(pool.parallel_batch(vec![1], 0, |c: &[i32]| c.to_vec()));
    /// assert!(err.unwrap_err().to_string().contains("batch_size = 0"));
    /// ```
    #[track_caller]
    pub fn parallel_batch<T, R, F>(
        &self,
        items: Vec<T>,
        batch_size: usize,
        f: F,
    ) -> TaskHandle<Vec<R>>
    where
        T: Send + Sync + 'static,
        R: Send + 'static,
        F: Fn(&[T]) -> Vec<R> + Send + Sync + 'static,
    {
        if batch_size == 0 {
            // Never runs: dropped here, a panic from its captures contained.
            drop_contained(&self.inner.engine, (items, f));
            return TaskHandle::ready(Err(ComputeError::InvalidArgument(Box::new(
                ArgumentError {
                    name: "batch_size",
                    value: batch_size.to_string(),
                    reason: "must be at least 1",
                },
            ))));
        }
        self.submit_async(move |_: CancelToken<'_>| {
            items.par_chunks(batch_size).flat_map_iter(&f).collect()
        })
    }
}
