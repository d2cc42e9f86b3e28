//! [`Priority`]: which lane of the run queue a pool's jobs wait in.

/// The lane a job waits in when no compute thread is free for it.
///
/// A waiting [`High`](Priority::High) job starts before any waiting
/// [`Low`](Priority::Low) one, except that Low is never starved: while both
/// lanes wait, at least one start in
/// [`low_priority_every`](crate::ComputeConfig::low_priority_every) goes to
/// Low, and a Low job that has waited longer than
/// [`low_priority_max_wait`](crate::ComputeConfig::low_priority_max_wait)
/// starts next.
///
/// Lanes decide only which *waiting* job starts next: rayon cannot pre-empt
/// a job that is running, so a High job submitted while every thread runs a
/// Low job waits for one of them to finish. Jobs run inline (nested calls
/// from the pool's own threads, `execute_here`, `execute_sync` from a
/// compute thread) and `execute_sync`'s jobs do not wait in a lane.
///
/// ```
/// use compute_pool::{ComputePool, Priority};
///
/// let pool = ComputePool::with_defaults().unwrap();
/// let batch = pool.with_priority(Priority::Low);
/// assert_eq!(pool.priority(), Priority::High);
/// assert_eq!(batch.priority(), Priority::Low);
/// let n = futures::executor::block_on(batch.execute(|| 6 * 7)).unwrap();
/// assert_eq!(n, 42);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Latency-sensitive work; the lane of a plain pool.
    #[default]
    High,
    /// Batch work that may wait while High work does.
    Low,
}
