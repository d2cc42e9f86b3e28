//! One bench configuration: a tokio runtime, our pool and the peers' pools,
//! sized alike, and a single way to submit a job through any of them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool, SpinPolicy, TaskHandle, ThreadHook};

use crate::peers::{double_hop, naive_spawn, PeerHandle};
use crate::placement::Placement;

/// The ways of running a job from async code that the benches compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bridge {
    /// The job called directly in the async task: the floor (and it blocks
    /// the runtime's worker while it runs).
    Inline,
    /// Our pool: `ComputePool::execute(f).await`, default configuration.
    Ours,
    /// Our pool with its await spin switched off (`await_spin_limit: 0`),
    /// so the effect of the spin shows in the same run.
    OursNoSpin,
    /// Our pool in its latency mode (`SpinPolicy::Latency`): the first poll
    /// of a short job's handle waits awake for the result.
    OursLatency,
    /// `tokio::task::spawn_blocking(f).await`, on a blocking pool capped at
    /// the configuration's compute thread count.
    SpawnBlocking,
    /// `rayon::ThreadPool::spawn` + `tokio::sync::oneshot` + `catch_unwind`
    /// (what the `tokio-rayon` crate does).
    Naive,
    /// rayon's global pool, then `install` into the custom pool.
    DoubleHop,
}

impl Bridge {
    /// Every bridge, the floor first.
    pub const ALL: [Bridge; 7] = [
        Bridge::Inline,
        Bridge::Ours,
        Bridge::OursNoSpin,
        Bridge::OursLatency,
        Bridge::SpawnBlocking,
        Bridge::Naive,
        Bridge::DoubleHop,
    ];

    /// The name used in bench ids, tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Bridge::Inline => "inline",
            Bridge::Ours => "ours",
            Bridge::OursNoSpin => "ours_nospin",
            Bridge::OursLatency => "ours_latency",
            Bridge::SpawnBlocking => "spawn_blocking",
            Bridge::Naive => "naive_bridge",
            Bridge::DoubleHop => "double_hop",
        }
    }
}

impl fmt::Display for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A thread layout: tokio worker threads and compute threads, and where
/// they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads {
    /// tokio worker threads.
    pub workers: usize,
    /// Compute threads: our pool's, the naive pool's, and the cap on tokio's
    /// blocking threads.
    pub compute: usize,
    /// Where the executor and compute threads run (rayon's global pool,
    /// which only the double hop uses, stays with the kernel's choice).
    pub placement: Placement,
}

impl Threads {
    /// The two layouts every bench runs with: 1 + 1 and 2 + 2.
    pub const BOTH: [Threads; 2] = [
        Threads {
            workers: 1,
            compute: 1,
            placement: Placement::Kernel,
        },
        Threads {
            workers: 2,
            compute: 2,
            placement: Placement::Kernel,
        },
    ];

    /// This layout with its threads placed as `placement` says.
    pub fn placed(self, placement: Placement) -> Threads {
        Threads { placement, ..self }
    }

    /// A short label, e.g. `1w1c`, or `2w2c paired` for pinned threads.
    pub fn label(self) -> String {
        let layout = format!("{}w{}c", self.workers, self.compute);
        match self.placement {
            Placement::Kernel => layout,
            pinned => format!("{layout} {}", pinned.name()),
        }
    }
}

/// Every pool of one layout, shareable with the bench tasks.
pub struct Pools {
    /// Our pool.
    pub ours: ComputePool,
    /// Our pool with the await spin switched off.
    pub ours_nospin: ComputePool,
    /// Our pool in its latency mode.
    pub ours_latency: ComputePool,
    /// The custom rayon pool the naive bridge and the double hop use.
    pub rayon: Arc<rayon::ThreadPool>,
    /// The runtime's handle, for `spawn_blocking`.
    pub tokio: tokio::runtime::Handle,
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pools")
            .field("ours", &self.ours)
            .finish_non_exhaustive()
    }
}

impl Pools {
    /// Submits `f` through `bridge` and returns its handle. [`Bridge::Inline`]
    /// runs `f` right here.
    pub fn submit<F, R>(&self, bridge: Bridge, f: F) -> Handle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match bridge {
            Bridge::Inline => Handle::Ready(Some(f())),
            Bridge::Ours => Handle::Ours(self.ours.execute(f)),
            Bridge::OursNoSpin => Handle::Ours(self.ours_nospin.execute(f)),
            Bridge::OursLatency => Handle::Ours(self.ours_latency.execute(f)),
            Bridge::SpawnBlocking => Handle::Blocking(self.tokio.spawn_blocking(f)),
            Bridge::Naive => Handle::Peer(naive_spawn(&self.rayon, f)),
            Bridge::DoubleHop => Handle::Peer(double_hop(&self.rayon, f)),
        }
    }

    /// Runs `f` through `bridge` and awaits its result.
    pub async fn run<F, R>(&self, bridge: Bridge, f: F) -> R
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.submit(bridge, f).await
    }
}

/// A runtime plus every pool, built for one [`Threads`] layout.
#[derive(Debug)]
pub struct Setup {
    /// The layout this was built for.
    pub threads: Threads,
    /// The tokio runtime the awaiting tasks run on.
    pub runtime: tokio::runtime::Runtime,
    /// The pools, shared with the bench tasks.
    pub pools: Arc<Pools>,
}

impl Setup {
    /// Builds the runtime and the pools, their threads placed as
    /// `threads.placement` says. Rayon's global pool (used by the double
    /// hop only) keeps its default size.
    ///
    /// # Panics
    ///
    /// Where the placement cannot be had (see [`Placement::cpu_for`]).
    pub fn new(threads: Threads) -> Setup {
        // No hook at all where the kernel places the threads.
        let pinned = (threads.placement != Placement::Kernel).then_some(threads.placement);
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        if let Some(placement) = pinned {
            runtime.on_thread_start(placement.pinner(threads.workers));
        }
        let runtime = runtime
            .worker_threads(threads.workers)
            .max_blocking_threads(threads.compute)
            .thread_name("bench-tokio")
            .enable_all()
            .build()
            .expect("build the tokio runtime");
        let pin_compute = || pinned.map(|placement| ThreadHook::new(placement.pinner(0)));
        let ours = ComputePool::new(ComputeConfig {
            num_threads: Some(threads.compute),
            thread_name_prefix: "bench-ours".to_owned(),
            on_thread_start: pin_compute(),
            ..ComputeConfig::default()
        })
        .expect("build our pool");
        let ours_nospin = ComputePool::new(ComputeConfig {
            num_threads: Some(threads.compute),
            thread_name_prefix: "bench-nospin".to_owned(),
            on_thread_start: pin_compute(),
            await_spin_limit: Duration::ZERO,
            ..ComputeConfig::default()
        })
        .expect("build our pool without the await spin");
        let ours_latency = ComputePool::new(ComputeConfig {
            num_threads: Some(threads.compute),
            thread_name_prefix: "bench-latency".to_owned(),
            on_thread_start: pin_compute(),
            spin_policy: SpinPolicy::Latency,
            ..ComputeConfig::default()
        })
        .expect("build our pool in its latency mode");
        let mut rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.compute)
            .thread_name(|i| format!("bench-rayon-{i}"));
        if let Some(placement) = pinned {
            let pin = placement.pinner(0);
            rayon = rayon.start_handler(move |_| pin());
        }
        let rayon = rayon.build().expect("build the rayon pool");
        let pools = Pools {
            ours,
            ours_nospin,
            ours_latency,
            rayon: Arc::new(rayon),
            tokio: runtime.handle().clone(),
        };
        Setup {
            threads,
            runtime,
            pools: Arc::new(pools),
        }
    }

    /// Runs `task(pools)` as a task on the runtime's workers (not on the
    /// calling thread, as a bare `block_on` would) and waits for its output.
    pub fn on_worker<T, Fut>(&self, task: impl FnOnce(Arc<Pools>) -> Fut) -> T
    where
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let fut = task(Arc::clone(&self.pools));
        self.runtime
            .block_on(self.runtime.spawn(fut))
            .expect("the bench task does not panic")
    }
}

/// A job in flight through one of the bridges. Resolves to the job's value;
/// a job that panics or is lost panics the awaiting bench task (a bench job
/// never panics).
#[derive(Debug)]
pub enum Handle<R> {
    /// Ran inline; the value waits here.
    Ready(Option<R>),
    /// Our pool's handle.
    Ours(TaskHandle<R>),
    /// tokio's `spawn_blocking` handle.
    Blocking(tokio::task::JoinHandle<R>),
    /// The naive bridge's or the double hop's handle.
    Peer(PeerHandle<R>),
}

// The handle never pins `R` (it only moves it out), so it is `Unpin` whatever
// `R` is; every variant's inner handle is `Unpin` as well.
impl<R> Unpin for Handle<R> {}

impl<R> Future for Handle<R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        match self.get_mut() {
            Handle::Ready(value) => Poll::Ready(value.take().expect("polled after completion")),
            Handle::Ours(handle) => Pin::new(handle)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|e| panic!("bench job failed in our pool: {e}"))),
            Handle::Blocking(handle) => Pin::new(handle)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|e| panic!("bench job failed in spawn_blocking: {e}"))),
            Handle::Peer(handle) => Pin::new(handle)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| panic!("bench job failed in a rayon peer"))),
        }
    }
}
