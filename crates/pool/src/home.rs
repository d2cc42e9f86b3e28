//! Which pool the current thread serves: the pool crate's one thread-local.
//!
//! - A compute thread **serves** its pool from its start (the rayon start
//!   handler calls [`serve`]) to its exit. Runners find their pool here, so
//!   a job needs no reference of its own, and the submitting and computing
//!   threads do not take turns on one reference count.
//! - Any thread may **enter** a pool's context ([`enter`], from the public
//!   `enter_context`), so that `compute_pool::current()` finds it; compute
//!   threads start in their own pool's context. The context is a weak
//!   reference: it never keeps a pool alive.
//! - Whether the thread is **inside a job** ([`enter_job`]), so that work
//!   rayon runs nested in a job (while it waits in `join` or `scope`)
//!   knows it is not the outermost.

use std::cell::{Cell, OnceCell, RefCell};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::detector::{SitePtr, SiteStats, Slot};
use crate::engine::Engine;

/// The thread's relation to pools. See the module docs.
struct Home {
    serves: OnceCell<Arc<Engine>>,
    context: RefCell<Weak<Engine>>,
    in_job: Cell<bool>,
    /// The index of this compute thread's detector slot; `usize::MAX` on
    /// other threads.
    slot: Cell<usize>,
    /// Call sites this thread submitted from lately: (engine id, location
    /// address, its stats), valid while that engine lives (ids are never
    /// reused, so a dead engine's entries never match).
    sites: RefCell<Vec<(u64, usize, *const SiteStats)>>,
    /// When this thread's current run of handles that were ready at once
    /// (never `Pending`) began; `None` once a handle returned `Pending`.
    ready_since: Cell<Option<Instant>>,
}

/// Entries kept in a thread's call-site cache before it starts afresh.
const SITE_CACHE: usize = 32;

thread_local! {
    static HOME: Home = const {
        Home {
            serves: OnceCell::new(),
            context: RefCell::new(Weak::new()),
            in_job: Cell::new(false),
            slot: Cell::new(usize::MAX),
            sites: RefCell::new(Vec::new()),
            ready_since: Cell::new(None),
        }
    };
}

/// Makes this (compute) thread, number `index`, serve `engine` for the rest
/// of its life, and enters its context.
pub(crate) fn serve(engine: Arc<Engine>, index: usize) {
    let _ = HOME.try_with(|home| {
        *home.context.borrow_mut() = Arc::downgrade(&engine);
        home.slot.set(index);
        let _ = home.serves.set(engine);
    });
}

/// Calls `f` with the engine this thread serves; `None` on a thread that
/// serves no pool (or is being torn down).
pub(crate) fn with_engine<T>(f: impl FnOnce(&Engine) -> T) -> Option<T> {
    HOME.try_with(|home| home.serves.get().map(|engine| f(engine)))
        .ok()
        .flatten()
}

/// Notes that a handle's poll returned `Pending` on this thread: its
/// executor got the thread back, which ends any run of ready handles.
pub(crate) fn yielded() {
    let _ = HOME.try_with(|home| home.ready_since.set(None));
}

/// Whether a handle whose result is there at its first poll should yield
/// once instead of returning it: `true` when such handles have kept this
/// thread from its executor for longer than `limit` (see `handle.rs`).
/// The run ends with a `true`: the caller yields.
pub(crate) fn ready_run_over(limit: Duration) -> bool {
    HOME.try_with(|home| {
        let now = Instant::now();
        match home.ready_since.get() {
            Some(since) if now.saturating_duration_since(since) > limit => {
                home.ready_since.set(None);
                true
            }
            Some(_) => false,
            None => {
                home.ready_since.set(Some(now));
                false
            }
        }
    })
    .unwrap_or(false)
}

/// Makes `engine` this thread's context (a weak reference).
pub(crate) fn enter(engine: Weak<Engine>) {
    // A thread being torn down has no context to set: ignore.
    let _ = HOME.try_with(|home| *home.context.borrow_mut() = engine);
}

/// The engine of this thread's context, while its pool is alive.
pub(crate) fn context() -> Option<Arc<Engine>> {
    HOME.try_with(|home| home.context.borrow().upgrade())
        .ok()
        .flatten()
}

/// Marks this thread as inside a job until the guard drops; `None` when it
/// is already inside one.
pub(crate) fn enter_job() -> Option<InJob> {
    HOME.try_with(|home| (!home.in_job.replace(true)).then_some(()))
        .ok()
        .flatten()
        .map(|()| InJob)
}

/// This thread runs a job until dropped; see [`enter_job`].
pub(crate) struct InJob;

impl Drop for InJob {
    fn drop(&mut self) {
        let _ = HOME.try_with(|home| home.in_job.set(false));
    }
}

/// This thread's detector slot in `engine`, if it is one of its compute
/// threads.
#[inline]
pub(crate) fn slot(engine: &Engine) -> Option<&Slot> {
    let index = HOME
        .try_with(|home| {
            let serves = home.serves.get()?;
            std::ptr::eq(Arc::as_ptr(serves), engine).then(|| home.slot.get())
        })
        .ok()
        .flatten()?;
    engine.detector.slots.get(index)
}

/// The stats of the call site at `location` in `engine`, as a job carries
/// them: cached per thread, so a submission from a known site takes no
/// lock.
#[inline]
pub(crate) fn site(engine: &Engine, location: &'static std::panic::Location<'static>) -> SitePtr {
    SitePtr(cached_site(engine.id, location, || {
        engine.detector.sites.resolve(location)
    }))
}

/// The stats of `location` in the engine numbered `engine_id`, from this
/// thread's cache, or from `resolve` (then cached).
#[inline]
fn cached_site(
    engine_id: u64,
    location: &'static std::panic::Location<'static>,
    resolve: impl FnOnce() -> *const SiteStats,
) -> *const SiteStats {
    let key = location as *const std::panic::Location<'static> as usize;
    let found = HOME
        .try_with(|home| {
            let sites = home.sites.borrow();
            sites
                .iter()
                .find(|(id, at, _)| *id == engine_id && *at == key)
                .map(|(_, _, stats)| *stats)
        })
        .ok()
        .flatten();
    if let Some(stats) = found {
        return stats;
    }
    let stats = resolve();
    let _ = HOME.try_with(|home| {
        let mut sites = home.sites.borrow_mut();
        if sites.len() >= SITE_CACHE {
            sites.clear();
        }
        sites.push((engine_id, key, stats));
    });
    stats
}
