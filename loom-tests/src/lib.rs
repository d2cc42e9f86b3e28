//! Helpers for the loom models of `compute-bridge` (see `tests/`).
//!
//! Everything here exists only under `--cfg loom`; a plain build of the
//! workspace compiles this crate to nothing.
//!
//! - `CountingWaker`: a waker that counts its clones, drops and wakes, and
//!   optionally unparks a thread, so a lost wakeup shows up as a loom deadlock
//!   and a leaked or double-dropped waker as a count mismatch.
//! - `Tracked`: a value that counts its drops, so "dropped exactly once" is
//!   checked rather than hoped.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

#![cfg(loom)]

use std::sync::Arc as StdArc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread::Thread;

/// Counts shared by every clone of one counting waker.
#[derive(Debug)]
pub struct WakerCounts {
    clones: AtomicUsize,
    drops: AtomicUsize,
    wakes: AtomicUsize,
    /// Woken on `wake`, if set: the model's polling thread.
    unpark: Option<Thread>,
    /// `clone` panics (for the panicking-waker model).
    panic_on_clone: bool,
    /// `wake` panics (for the panicking-waker model).
    panic_on_wake: bool,
}

impl WakerCounts {
    /// How many times the waker was cloned.
    pub fn clones(&self) -> usize {
        self.clones.load(SeqCst)
    }
    /// How many wakers (clones or the original) were dropped, by value or by `wake`.
    pub fn drops(&self) -> usize {
        self.drops.load(SeqCst)
    }
    /// How many times `wake` or `wake_by_ref` was called.
    pub fn wakes(&self) -> usize {
        self.wakes.load(SeqCst)
    }
    /// Asserts that every waker made (the original plus each clone) was
    /// dropped exactly once: nothing leaked, nothing double-dropped.
    pub fn assert_all_dropped(&self) {
        assert_eq!(
            self.clones() + 1,
            self.drops(),
            "waker leaked or double-dropped: {} clones, {} drops",
            self.clones(),
            self.drops()
        );
    }
}

/// Builder for a counting waker.
#[derive(Debug, Default)]
pub struct CountingWaker {
    unpark: Option<Thread>,
    panic_on_clone: bool,
    panic_on_wake: bool,
}

/// The message of every deliberate panic, so the models can silence them.
pub const DELIBERATE: &str = "deliberate panic from a test waker";

impl CountingWaker {
    /// A waker that only counts.
    pub fn new() -> Self {
        Self::default()
    }
    /// Also unparks `thread` on every wake.
    pub fn unparking(mut self, thread: Thread) -> Self {
        self.unpark = Some(thread);
        self
    }
    /// Panics in `clone`.
    pub fn panicking_on_clone(mut self) -> Self {
        self.panic_on_clone = true;
        self
    }
    /// Panics in `wake` and `wake_by_ref` (after counting the wake).
    pub fn panicking_on_wake(mut self) -> Self {
        self.panic_on_wake = true;
        self
    }
    /// Builds the waker and a handle to its counts.
    pub fn build(self) -> (Waker, Arc<WakerCounts>) {
        let counts = Arc::new(WakerCounts {
            clones: AtomicUsize::new(0),
            drops: AtomicUsize::new(0),
            wakes: AtomicUsize::new(0),
            unpark: self.unpark,
            panic_on_clone: self.panic_on_clone,
            panic_on_wake: self.panic_on_wake,
        });
        let data = StdArc::into_raw(StdArc::new(counts.clone())) as *const ();
        // SAFETY: `data` is a leaked `StdArc<Arc<WakerCounts>>` and VTABLE's
        // functions treat it as exactly that, keeping the count balanced.
        let waker = unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) };
        (waker, counts)
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// # Safety
/// `data` must come from `CountingWaker::build` or `clone` (a leaked
/// `StdArc<Arc<WakerCounts>>`) and still be live.
unsafe fn counts<'a>(data: *const ()) -> &'a WakerCounts {
    // SAFETY: per the function's contract the pointer is a live `Data`.
    unsafe { &*(data as *const Arc<WakerCounts>) }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker machinery passes the pointer we handed out.
    let c = unsafe { counts(data) };
    if c.panic_on_clone {
        panic!("{DELIBERATE}: clone");
    }
    c.clones.fetch_add(1, SeqCst);
    // SAFETY: `data` is a live `Data`; the new waker owns the extra count.
    unsafe { StdArc::increment_strong_count(data as *const Arc<WakerCounts>) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: as in `clone`; waking by value also drops this waker.
    unsafe {
        let guard = DropOnExit(data);
        wake_by_ref(guard.0);
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: as in `clone`.
    let c = unsafe { counts(data) };
    c.wakes.fetch_add(1, SeqCst);
    if let Some(thread) = &c.unpark {
        thread.unpark();
    }
    if c.panic_on_wake {
        panic!("{DELIBERATE}: wake");
    }
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: as in `clone`.
    let c = unsafe { counts(data) };
    c.drops.fetch_add(1, SeqCst);
    // SAFETY: this waker owned one strong count of `data`.
    unsafe { StdArc::decrement_strong_count(data as *const Arc<WakerCounts>) };
}

/// Drops a waker's data when `wake` (by value) ends, even by panic.
struct DropOnExit(*const ());

impl Drop for DropOnExit {
    fn drop(&mut self) {
        // SAFETY: built only in `wake`, from a live waker's data.
        unsafe { drop_waker(self.0) }
    }
}

/// A value that counts how often it is dropped.
#[derive(Debug)]
pub struct Tracked {
    /// The payload, to check the right value arrived.
    pub value: usize,
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    /// A new value counted by `drops`.
    pub fn new(value: usize, drops: &Arc<AtomicUsize>) -> Self {
        Tracked {
            value,
            drops: drops.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

/// Silences the deliberate panics of the panicking-waker models while keeping
/// every other panic (a failing assertion) loud.
pub fn quiet_deliberate_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with(DELIBERATE) {
            previous(info);
        }
    }));
}
