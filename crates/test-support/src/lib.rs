//! Helpers shared by the workspace's tests and benches, so each exists once:
//!
//! - hangs become failures: [`watchdog`] and [`watchdog_for`] (a closure on
//!   its own thread), [`within`] (a future under a tokio timeout) and
//!   [`wait_until`] / [`wait_until_for`] (polling a condition), all bounded
//!   by [`LIMIT`] unless given a limit;
//! - [`scaled`] and [`test_scale`]: the `COMPUTE_TEST_SCALE` knob that
//!   shrinks round counts (the memcheck step runs the tests under valgrind);
//! - [`median`] of `f64` or [`Duration`](std::time::Duration) samples;
//! - [`alloc::Counting`]: a counting global allocator (allocations, bytes
//!   asked for, live bytes and their peak), read through
//!   [`alloc::Snapshot`];
//! - [`CountingWaker`]: a waker that counts its wakes.

pub mod alloc;
mod median;
mod scale;
mod wake;
mod watchdog;

pub use median::{median, Sample};
pub use scale::{scaled, test_scale};
pub use wake::CountingWaker;
pub use watchdog::{wait_until, wait_until_for, watchdog, watchdog_for, within, LIMIT};
