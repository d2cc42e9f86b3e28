//! A oneshot completion channel between a compute thread and whoever awaits
//! its result.
//!
//! A job runs on some worker thread and produces one value; an async task (or
//! a blocked thread) waits for it. [`channel`] makes the pair: the [`Sender`]
//! travels with the job, the [`Receiver`] is a [`Future`](std::future::Future)
//! that works under any executor and can also block a thread
//! ([`Receiver::recv_blocking`], spin then park).
//!
//! ```
//! let (tx, rx) = compute_bridge::channel();
//! std::thread::spawn(move || {
//!     let answer: u64 = (1..=6).product::<u64>() / 720 * 42;
//!     tx.send(answer).expect("the receiver is waiting");
//! });
//! assert_eq!(futures::executor::block_on(rx), Ok(42));
//! ```
//!
//! # What it guarantees
//!
//! - **One allocation** shared by both ends, freed when both are gone,
//!   whichever goes last and however they race. Memory safety never depends
//!   on the other side being quick: there is no spin during the hand-off.
//! - **No lost wakeup**: the waker from the latest poll is the one woken, even
//!   when a re-poll with a new waker races the send.
//! - **The value is dropped exactly once**, by the side that closes second:
//!   the receiver if it goes after the send, otherwise `send` hands the value
//!   back as `Err` to be dropped by the caller.
//! - **A dropped sender is an error, not a hang**: the receiver resolves to
//!   [`RecvError`].
//! - **Cancellation is visible, and accounted once**: once the receiver is
//!   dropped, [`Sender::is_closed`] is true and [`Sender::try_start`] says
//!   "skip"; [`Receiver::close`] tells the receiving side whether the work
//!   had started, so exactly one side counts a cancelled job.
//! - **A panicking waker does not corrupt the slot**: a `clone` that panics
//!   leaves the state untouched; a `wake` that panics leaves the value in
//!   place for the next poll.
//!
//! # How it works
//!
//! One atomic word holds five flags (`WAKER_SET`, `VALUE_SENT`, `TX_DROPPED`,
//! `RX_CLOSED`, `STARTED`); each side sets its flags with a single read-modify-write, so
//! of any two racing transitions exactly one sees the other. Who may touch the
//! value cell and the waker cell is a function of those flags. The state
//! machine, every transition and the argument for each memory ordering are in
//! `docs/bridge.md`; every race it handles has a loom model in the
//! `loom-tests` package.
//!
//! [`Runners`] is the other half of a bridge that queues its jobs: the count
//! of tasks draining the queue, kept so that a pushed job always has a runner
//! (also loom-checked).

mod channel;
mod error;
mod runners;
mod state;
mod sync;
mod wait;

pub use channel::{channel, Closed, Receiver, Sender};
pub use error::{RecvError, TryRecvError};
pub use runners::Runners;
pub use wait::Spin;
