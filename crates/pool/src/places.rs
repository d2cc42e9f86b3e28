//! Places: how many jobs a bounded pool holds at once, and the reservers
//! waiting, first come first served, for a place.
//!
//! A pool with `max_in_flight` or `max_queued` counts its places taken:
//! every admitted job that has not settled, and every unused [`Permit`]
//! (`crate::Permit`). `try_execute` needs a place under `max_in_flight`;
//! `execute` and `reserve` need one under the capacity, `max_in_flight`
//! (or the thread count) plus `max_queued`.
//!
//! # Why a reserver is never left waiting with a place free
//!
//! A place is given back by [`Room::release`] under the waiters' lock: it
//! goes straight to the first reserver waiting, if any, and only otherwise
//! back to the count. A reserver looks for a place and, finding none, joins
//! the queue in one critical section under the same lock. So a release
//! either comes first (the reserver then finds the place) or finds the
//! reserver queued (and hands it the place). Since a place freed while
//! reservers wait goes to them, the count stays full meanwhile, and a
//! plain `execute` cannot take a place ahead of them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

/// The places of a bounded pool. See the module docs.
pub(crate) struct Places {
    /// `max_in_flight`: the places `try_execute` may take.
    in_flight: Option<usize>,
    /// The capacity: the places `execute` and `reserve` may take.
    capacity: Option<usize>,
    taken: AtomicUsize,
    waiters: Mutex<Waiters>,
}

/// Reservers waiting for a place, and those given one not yet told.
#[derive(Default)]
struct Waiters {
    next_id: u64,
    waiting: VecDeque<(u64, Waker)>,
    granted: Vec<u64>,
}

/// Where a reserver stands after a look; see [`Places::reserve`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// It holds a place now.
    Granted,
    /// It waits, queued under this id.
    Waiting(u64),
}

/// Which bound a place is taken under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// `max_in_flight` (`try_execute`).
    InFlight,
    /// The capacity (`execute`).
    Capacity,
    /// None: the place is counted, never refused (a caller that waits in
    /// place for its job).
    None,
}

impl Places {
    /// A room with these bounds; `None` when neither is set (nothing to
    /// count).
    pub(crate) fn new(in_flight: Option<usize>, capacity: Option<usize>) -> Option<Places> {
        (in_flight.is_some() || capacity.is_some()).then(|| Places {
            in_flight,
            capacity,
            taken: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        })
    }

    /// Whether `execute` and reservers are bounded (`max_queued` is set).
    pub(crate) fn has_capacity(&self) -> bool {
        self.capacity.is_some()
    }

    /// Takes a place under `bound`, if one is free.
    pub(crate) fn take(&self, bound: Bound) -> bool {
        let limit = match bound {
            Bound::InFlight => self.in_flight,
            Bound::Capacity => self.capacity,
            Bound::None => None,
        };
        // ORDERING: Relaxed: a count checked and bumped in one RMW, so two
        // racing submitters cannot both take the last place; the waiters'
        // lock orders it against reservers (see the module docs).
        self.taken
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                limit.is_none_or(|limit| n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes a place under the capacity, or queues for one with `waker`.
    pub(crate) fn reserve(&self, waker: &Waker) -> Reservation {
        let mut waiters = self.lock();
        if waiters.waiting.is_empty() && self.take(Bound::Capacity) {
            return Reservation::Granted;
        }
        let id = waiters.next_id;
        waiters.next_id += 1;
        waiters.waiting.push_back((id, waker.clone()));
        Reservation::Waiting(id)
    }

    /// Whether reserver `id` was given a place (then it holds it); if not,
    /// its waker is updated.
    pub(crate) fn poll_reserved(&self, id: u64, waker: &Waker) -> bool {
        let mut waiters = self.lock();
        if let Some(at) = waiters.granted.iter().position(|&g| g == id) {
            waiters.granted.swap_remove(at);
            return true;
        }
        if let Some((_, stored)) = waiters.waiting.iter_mut().find(|(w, _)| *w == id) {
            if !stored.will_wake(waker) {
                stored.clone_from(waker);
            }
        }
        false
    }

    /// Reserver `id` gives up: leaves the queue, or gives back the place it
    /// was granted.
    pub(crate) fn cancel(&self, id: u64) {
        let mut waiters = self.lock();
        if let Some(at) = waiters.granted.iter().position(|&g| g == id) {
            waiters.granted.swap_remove(at);
            self.release_locked(&mut waiters);
        } else {
            waiters.waiting.retain(|(w, _)| *w != id);
        }
    }

    /// Gives a place back: to the first reserver waiting, else to the count.
    pub(crate) fn release(&self) {
        if self.capacity.is_none() {
            // No reserver ever waits without a capacity.
            // ORDERING: Relaxed: a count, as in `take`.
            self.taken.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let mut waiters = self.lock();
        self.release_locked(&mut waiters);
    }

    fn release_locked(&self, waiters: &mut Waiters) {
        if let Some((id, waker)) = waiters.waiting.pop_front() {
            waiters.granted.push(id);
            waker.wake();
        } else {
            // ORDERING: Relaxed: a count, as in `take`.
            self.taken.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Wakes every waiting reserver (the pool is shutting down: each sees
    /// it and gives up).
    pub(crate) fn wake_all(&self) {
        let waiters = self.lock();
        for (_, waker) in &waiters.waiting {
            waker.wake_by_ref();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
