//! The one place atomics, cells and threads come from.
//!
//! Under `cfg(loom)` every primitive is loom's, so the loom models in the
//! `loom-tests` package explore every interleaving of the real code; otherwise
//! they are std's, at no cost. The logic never carries a `#[cfg]` of its own.

#[cfg(loom)]
pub(crate) use loom::{
    hint::spin_loop,
    sync::atomic::{fence, AtomicUsize, Ordering},
    sync::{Arc, Condvar, Mutex},
    thread,
};

#[cfg(not(loom))]
pub(crate) use std::{
    hint::spin_loop,
    sync::atomic::{fence, AtomicUsize, Ordering},
    sync::{Condvar, Mutex},
    thread,
};

/// The channel's shared allocation: an `Arc` with no weak count (the
/// channel never uses one), a word smaller than std's. Loom's `Arc` stands
/// in for it under `cfg(loom)`; both count strong references the same way.
#[cfg(not(loom))]
pub(crate) use triomphe::Arc;

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` behind loom's closure-based API, so the same code
/// compiles against both; loom's version also checks that accesses never overlap.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared pointer to the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with an exclusive pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
