//! The three oneshot channels the bridge benches compare, behind one trait,
//! and a persistent sending thread, so a measurement is of the channel and
//! not of `thread::spawn`.

use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

/// A oneshot channel under test.
pub trait Oneshot: 'static {
    /// The name used in bench ids, tables and JSON.
    const NAME: &'static str;
    /// The sending end.
    type Tx: Send + 'static;
    /// The receiving end, a future.
    type Rx: Future + Unpin;
    /// Makes a channel.
    fn channel() -> (Self::Tx, Self::Rx);
    /// Sends `value`, ignoring a receiver that is gone.
    fn send(tx: Self::Tx, value: u64);
}

/// `compute_bridge::channel`.
#[derive(Debug)]
pub struct Ours;
impl Oneshot for Ours {
    const NAME: &'static str = "compute_bridge";
    type Tx = compute_bridge::Sender<u64>;
    type Rx = compute_bridge::Receiver<u64>;
    fn channel() -> (Self::Tx, Self::Rx) {
        compute_bridge::channel()
    }
    fn send(tx: Self::Tx, value: u64) {
        let _ = tx.send(value);
    }
}

/// `tokio::sync::oneshot`.
#[derive(Debug)]
pub struct Tokio;
impl Oneshot for Tokio {
    const NAME: &'static str = "tokio_oneshot";
    type Tx = tokio::sync::oneshot::Sender<u64>;
    type Rx = tokio::sync::oneshot::Receiver<u64>;
    fn channel() -> (Self::Tx, Self::Rx) {
        tokio::sync::oneshot::channel()
    }
    fn send(tx: Self::Tx, value: u64) {
        let _ = tx.send(value);
    }
}

/// `futures::channel::oneshot`.
#[derive(Debug)]
pub struct Futures;
impl Oneshot for Futures {
    const NAME: &'static str = "futures_oneshot";
    type Tx = futures::channel::oneshot::Sender<u64>;
    type Rx = futures::channel::oneshot::Receiver<u64>;
    fn channel() -> (Self::Tx, Self::Rx) {
        futures::channel::oneshot::channel()
    }
    fn send(tx: Self::Tx, value: u64) {
        let _ = tx.send(value);
    }
}

/// How the worker waits for its next sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `recv`: the worker sleeps between jobs.
    Blocking,
    /// `try_recv` in a loop: the worker never sleeps.
    Spinning,
}

/// A job for the [`Worker`]: completes one sender.
type Job = Box<dyn FnOnce() + Send>;

/// A persistent thread that completes every sender it is handed, with `42`.
///
/// One worker serves all three channels (senders travel boxed in a job, the
/// same box for each), so they share one thread and its placement on the
/// CPUs: with 2 vCPUs, whether the sending thread shares a CPU with the
/// receiving one decides between a hand-off of 2 µs and one of 40 µs, and
/// a thread per channel would hand that lottery to one channel alone.
#[derive(Debug)]
pub struct Worker {
    feed: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread; it waits for senders as `mode` says.
    pub fn start(mode: Feed) -> Self {
        let (feed, jobs) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("bench-sender".to_owned())
            .spawn(move || match mode {
                Feed::Blocking => {
                    while let Ok(job) = jobs.recv() {
                        job();
                    }
                }
                Feed::Spinning => {
                    let mut idle = 0u32;
                    loop {
                        match jobs.try_recv() {
                            Ok(job) => {
                                job();
                                idle = 0;
                            }
                            Err(mpsc::TryRecvError::Empty) => relax(&mut idle),
                            Err(mpsc::TryRecvError::Disconnected) => break,
                        }
                    }
                }
            })
            .expect("spawn the sending thread");
        Worker {
            feed: Some(feed),
            thread: Some(thread),
        }
    }

    /// Hands the worker a sender of channel `O` to complete with `42`.
    pub fn give<O: Oneshot>(&self, tx: O::Tx) {
        self.feed
            .as_ref()
            .expect("feed open until drop")
            .send(Box::new(move || O::send(tx, 42)))
            .expect("the worker lives until drop");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.feed.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One step of a busy wait: a spin hint, and every 64th step a yield, so a
/// spinning pair does not starve the other side when the machine is shared
/// (with 2 vCPUs and anything else running, a pure spin can hold the core the
/// other side needs for a whole scheduler slice).
pub fn relax(idle: &mut u32) {
    *idle = idle.wrapping_add(1);
    if *idle % 64 == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Polls `fut` in a loop on this thread, never parking.
pub fn spin_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let mut idle = 0u32;
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        relax(&mut idle);
    }
}
