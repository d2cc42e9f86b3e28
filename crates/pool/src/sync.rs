//! Where the ledger's atomics and locks come from: loom's under `cfg(loom)`,
//! so the loom models in the `loom-tests` package explore every
//! interleaving of the real code; std's otherwise, at no cost.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicU64, AtomicU8, Ordering},
    Condvar, Mutex,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicU64, AtomicU8, Ordering},
    Condvar, Mutex,
};
