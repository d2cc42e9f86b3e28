//! The completion channel alone: ours (`compute_bridge::channel`) beside
//! `tokio::sync::oneshot` and `futures::channel::oneshot`, in the same run.
//!
//! Groups:
//! - `bridge/cross_thread_parked`: create a channel, hand its sender to a
//!   persistent worker thread (through an `std::sync::mpsc` feed, the same
//!   for all three), the worker sends, this thread awaits (parking when the
//!   value is not there yet). What a real hand-off costs, wake-ups included.
//! - `bridge/cross_thread_spinning`: the same, but the worker spins on its
//!   feed and this thread polls in a loop instead of parking, so no thread
//!   ever sleeps: the figure is the channel plus the cache-line traffic.
//! - `bridge/same_thread`: create, send and receive on one thread (the
//!   channel's own instruction and allocation cost).
//!
//! Bytes and allocations per channel are printed by the cost report
//! (`cargo bench -p compute-benches --bench cost`), which installs a
//! counting global allocator.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion};
use futures::FutureExt;

/// A oneshot channel under test.
trait Oneshot: 'static {
    const NAME: &'static str;
    type Tx: Send + 'static;
    type Rx: Future + Unpin;
    fn channel() -> (Self::Tx, Self::Rx);
    fn send(tx: Self::Tx, value: u64);
}

struct Ours;
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

struct Tokio;
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

struct Futures;
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
#[derive(Clone, Copy)]
enum Feed {
    /// `recv`: the worker sleeps between jobs.
    Blocking,
    /// `try_recv` in a loop: the worker never sleeps.
    Spinning,
}

/// A persistent thread that sends `42` on every sender it is fed.
struct Worker<O: Oneshot> {
    feed: Option<mpsc::Sender<O::Tx>>,
    thread: Option<JoinHandle<()>>,
}

impl<O: Oneshot> Worker<O> {
    fn start(mode: Feed) -> Self {
        let (feed, jobs) = mpsc::channel::<O::Tx>();
        let thread = std::thread::Builder::new()
            .name(format!("bench-sender-{}", O::NAME))
            .spawn(move || match mode {
                Feed::Blocking => {
                    while let Ok(tx) = jobs.recv() {
                        O::send(tx, 42);
                    }
                }
                Feed::Spinning => {
                    let mut idle = 0u32;
                    loop {
                        match jobs.try_recv() {
                            Ok(tx) => {
                                O::send(tx, 42);
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

    fn give(&self, tx: O::Tx) {
        self.feed
            .as_ref()
            .expect("feed open until drop")
            .send(tx)
            .expect("the worker lives until drop");
    }
}

impl<O: Oneshot> Drop for Worker<O> {
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
fn relax(idle: &mut u32) {
    *idle = idle.wrapping_add(1);
    if *idle % 64 == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Polls `fut` in a loop on this thread, never parking.
fn spin_on<F: Future>(fut: F) -> F::Output {
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

fn cross_thread_parked<O: Oneshot>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    let worker = Worker::<O>::start(Feed::Blocking);
    group.bench_function(O::NAME, |b| {
        b.iter_custom(|iters| {
            futures::executor::block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (tx, rx) = O::channel();
                    worker.give(tx);
                    let _ = black_box(rx.await);
                }
                start.elapsed()
            })
        })
    });
}

fn cross_thread_spinning<O: Oneshot>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    let worker = Worker::<O>::start(Feed::Spinning);
    group.bench_function(O::NAME, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let (tx, rx) = O::channel();
                worker.give(tx);
                let _ = black_box(spin_on(rx));
            }
            start.elapsed()
        })
    });
}

fn same_thread<O: Oneshot>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.bench_function(O::NAME, |b| {
        b.iter(|| {
            let (tx, rx) = O::channel();
            O::send(tx, black_box(42));
            black_box(rx.now_or_never())
        })
    });
}

fn bridge(c: &mut Criterion) {
    let mut group = c.benchmark_group("bridge/cross_thread_parked");
    cross_thread_parked::<Ours>(&mut group);
    cross_thread_parked::<Tokio>(&mut group);
    cross_thread_parked::<Futures>(&mut group);
    group.finish();

    let mut group = c.benchmark_group("bridge/cross_thread_spinning");
    cross_thread_spinning::<Ours>(&mut group);
    cross_thread_spinning::<Tokio>(&mut group);
    cross_thread_spinning::<Futures>(&mut group);
    group.finish();

    let mut group = c.benchmark_group("bridge/same_thread");
    same_thread::<Ours>(&mut group);
    same_thread::<Tokio>(&mut group);
    same_thread::<Futures>(&mut group);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
}

fn main() {
    let mut criterion = config().configure_from_args();
    bridge(&mut criterion);
    criterion.final_summary();
}
