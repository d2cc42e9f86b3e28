//! The shared allocation and its two ends.

use std::future::Future;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::{fmt, ptr};

use crate::error::{RecvError, TryRecvError};
use crate::state::{State, RX_CLOSED, STARTED, TX_DROPPED, VALUE_SENT, WAKER_SET};
use crate::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// The one allocation both ends share. Which side may touch which cell is
/// decided by [`State`]; see the `state` module.
struct Inner<T> {
    state: AtomicUsize,
    /// Initialised by the sender; moved out exactly once by one side.
    value: UnsafeCell<MaybeUninit<T>>,
    /// The receiver's latest waker. Dropped with the allocation.
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cells are only touched as the state word allows (one writer, or
// readers only), so sharing `Inner` between the two ends' threads is sound as
// long as the value itself may move between threads.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above; `&Inner` gives no unsynchronised access to `T`.
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> Inner<T> {
    /// Wakes the receiver's published waker.
    ///
    /// # Safety
    /// The caller's completing read-modify-write must have observed
    /// `WAKER_SET`, so the cell is initialised and frozen (nobody writes it).
    unsafe fn wake_receiver(&self) {
        // SAFETY: guaranteed by the caller: the waker cell is frozen while
        // WAKER_SET is set and the receiver can no longer clear it without
        // seeing that we completed, after which it never writes the cell.
        self.waker.with(|waker| {
            // SAFETY: see above: the cell is frozen for as long as we read it.
            if let Some(waker) = unsafe { &*waker } {
                waker.wake_by_ref();
            }
        });
    }

    /// Moves the sent value out of its cell.
    ///
    /// # Safety
    /// `VALUE_SENT` must have been observed with Acquire ordering, and the
    /// caller must be the one side the state machine gives the value to.
    unsafe fn take_value(&self) -> T {
        // SAFETY: guaranteed by the caller: the cell is initialised, its write
        // is visible, and no other access to it can happen now or later.
        self.value
            .with_mut(|slot| unsafe { (*slot).assume_init_read() })
    }
}

/// Creates a oneshot completion channel: one value, sent once.
///
/// The [`Sender`] goes with the job to the thread that computes it; the
/// [`Receiver`] is a [`Future`] for the async side and can also block a thread
/// with [`Receiver::recv_blocking`].
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(MaybeUninit::uninit()),
        waker: UnsafeCell::new(None),
    });
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner: Some(inner) },
    )
}

/// The sending end: completes the channel with [`send`](Sender::send), or by
/// being dropped, which resolves the receiver to [`RecvError`].
pub struct Sender<T> {
    inner: Arc<Inner<T>>,
}

// Like the receiver (below): a handle, and nothing in it is pinned.
impl<T> Unpin for Sender<T> {}

impl<T> Sender<T> {
    /// Sends the value and wakes the receiver.
    ///
    /// If the receiver is already gone the value is handed back as `Err`, so
    /// it is dropped by the caller (on the computing thread), never leaked.
    ///
    /// # Panics
    /// Only if the receiver's waker panics in `wake_by_ref`; the value is then
    /// already in place and the receiver still gets it when polled again.
    pub fn send(self, value: T) -> Result<(), T> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the Arc is moved
        // out exactly once and `Sender::drop` (the "dropped without sending"
        // path) does not run.
        let inner = unsafe { ptr::read(&this.inner) };

        // SAFETY: until VALUE_SENT is set the value cell is the sender's alone
        // (the receiver reads it only after observing VALUE_SENT) and `send`
        // consumes the only sender, so this is the one and only write.
        inner.value.with_mut(|slot| unsafe { (*slot).write(value) });

        // ORDERING: AcqRel. Release publishes the value written above to the
        // receiver's Acquire operation that observes VALUE_SENT. Acquire pairs
        // with the receiver's Release RMW that set WAKER_SET (so its waker
        // write is visible before we read it) or RX_CLOSED.
        let prev = State(inner.state.fetch_or(VALUE_SENT, Ordering::AcqRel));
        if prev.is_rx_closed() {
            // SAFETY: RX_CLOSED came first in the state's modification order,
            // so the receiver saw no VALUE_SENT and will never touch the value:
            // it is ours to take back, exactly once.
            return Err(unsafe { inner.take_value() });
        }
        if prev.is_waker_set() {
            // SAFETY: our RMW observed WAKER_SET.
            unsafe { inner.wake_receiver() };
        }
        Ok(())
    }

    /// Announces that the work behind this sender is starting, unless the
    /// receiver is already gone: returns `false` then, and the work should be
    /// skipped (nobody would see its result).
    ///
    /// After a `true`, a receiver that closes learns from [`Receiver::close`]
    /// that the work runs to its end, so exactly one side accounts for it.
    pub fn try_start(&self) -> bool {
        // ORDERING: AcqRel. One RMW against the receiver's RX_CLOSED RMW:
        // exactly one of the two sees the other's flag. No cell is handed
        // over; Acquire/Release keep the accounting on both sides ordered.
        let prev = State(self.inner.state.fetch_or(STARTED, Ordering::AcqRel));
        !prev.is_rx_closed()
    }

    /// Whether the receiver is gone, so the value would be handed straight
    /// back. A job can check this to skip work nobody awaits any more.
    pub fn is_closed(&self) -> bool {
        // ORDERING: Relaxed. This is a hint only: nothing is read on the
        // strength of it, and `send`'s AcqRel RMW decides who owns the value.
        State(self.inner.state.load(Ordering::Relaxed)).is_rx_closed()
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // ORDERING: AcqRel. Acquire pairs with the receiver's Release RMW that
        // set WAKER_SET, so its waker is visible before we read it; Release
        // orders everything this side did before the receiver resolves.
        let prev = State(self.inner.state.fetch_or(TX_DROPPED, Ordering::AcqRel));
        if prev.is_waker_set() && !prev.is_rx_closed() {
            // SAFETY: our RMW observed WAKER_SET.
            unsafe { self.inner.wake_receiver() };
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ORDERING: Relaxed: a diagnostic snapshot only.
        let state = State(self.inner.state.load(Ordering::Relaxed));
        f.debug_struct("Sender").field("state", &state).finish()
    }
}

/// The receiving end: a [`Future`] resolving to the sent value, or to
/// [`RecvError`] if the sender was dropped first.
///
/// Dropping it closes the channel: [`Sender::is_closed`] turns true and a
/// later [`Sender::send`] hands its value back.
pub struct Receiver<T> {
    /// `None` once the result has been taken.
    inner: Option<Arc<Inner<T>>>,
}

// A receiver is a handle to a shared allocation; pinning it pins nothing
// inside (the value is moved out, never borrowed in place), whatever `T` is.
// (`std`'s `Arc` is always `Unpin`; the `Arc` used here is only when `T` is.)
impl<T> Unpin for Receiver<T> {}

impl<T> Receiver<T> {
    /// Whether the result is ready, so the next poll returns `Ready` at once.
    /// Also true after the result was taken.
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            // ORDERING: Acquire, so that a caller who sees `true` and then
            // polls reads a state at least as new (polling loads again anyway).
            Some(inner) => State(inner.state.load(Ordering::Acquire)).is_tx_done(),
            None => true,
        }
    }

    /// Whether the work behind the sender announced its start
    /// ([`Sender::try_start`]), or finished. A hint: it may lag behind the
    /// sender, never run ahead of it.
    pub fn is_started(&self) -> bool {
        match &self.inner {
            // ORDERING: Relaxed: a hint only; nothing is read on the strength
            // of it (the value is taken through `poll`/`try_recv`).
            Some(inner) => {
                let state = State(inner.state.load(Ordering::Relaxed));
                state.is_started() || state.is_tx_done()
            }
            None => true,
        }
    }

    /// Takes the result if the sender has finished, without registering a waker.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let inner = self.inner.as_ref().ok_or(TryRecvError::Disconnected)?;
        // ORDERING: Acquire pairs with the sender's Release RMW: seeing
        // VALUE_SENT makes the value write visible.
        let state = State(inner.state.load(Ordering::Acquire));
        if state.is_tx_done() {
            self.take_result(state)
                .map_err(|RecvError| TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// The shared poll: used by `Future::poll` and by the blocking wait.
    pub(crate) fn poll_with(&mut self, waker: &Waker) -> Poll<Result<T, RecvError>> {
        let inner = self
            .inner
            .as_ref()
            .expect("compute_bridge::Receiver polled after it returned Ready");
        // ORDERING: Acquire pairs with the sender's Release RMW: seeing
        // VALUE_SENT makes the value write visible.
        let state = State(inner.state.load(Ordering::Acquire));
        if state.is_tx_done() {
            return Poll::Ready(self.take_result(state));
        }
        if state.is_waker_set() {
            // SAFETY: WAKER_SET is set, so the cell is initialised and frozen:
            // the sender may read it too, but nobody writes it.
            let unchanged = inner
                .waker
                .with(|stored| unsafe { (*stored).as_ref().is_some_and(|w| w.will_wake(waker)) });
            if unchanged {
                // A spurious or repeated poll: the published waker is current.
                return Poll::Pending;
            }
            // Clone before touching the state, so a panicking `clone` leaves
            // the published waker in place.
            let new = waker.clone();
            // ORDERING: AcqRel. Acquire pairs with the sender's Release RMW in
            // case it completed first; Release keeps this unpublishing ordered
            // before the cell write that follows in our own program order.
            let prev = State(inner.state.fetch_and(!WAKER_SET, Ordering::AcqRel));
            if prev.is_tx_done() {
                // The sender completed while WAKER_SET was still set, so it may
                // be reading the old waker right now: leave the cell alone.
                return Poll::Ready(self.take_result(prev));
            }
            return self.publish_waker(new);
        }
        self.publish_waker(waker.clone())
    }

    /// Stores `new` in the waker cell (WAKER_SET is clear) and publishes it.
    fn publish_waker(&mut self, new: Waker) -> Poll<Result<T, RecvError>> {
        let inner = self.inner.as_ref().expect("checked by the caller");
        // SAFETY: WAKER_SET is clear and only this side sets it; the sender
        // reads the cell only after an RMW that observed the flag set, so the
        // cell is exclusively ours until the fetch_or below.
        let old = inner.waker.with_mut(|cell| unsafe { (*cell).replace(new) });
        // ORDERING: AcqRel. Release publishes the waker write above to the
        // sender's Acquire RMW that observes WAKER_SET. Acquire pairs with the
        // sender's Release RMW in case it completed meanwhile (then it saw no
        // WAKER_SET, did not wake us, and we must resolve now).
        let prev = State(inner.state.fetch_or(WAKER_SET, Ordering::AcqRel));
        // Dropped only now, so a panicking waker `Drop` leaves the state
        // consistent: the new waker is already published.
        drop(old);
        if prev.is_tx_done() {
            return Poll::Ready(self.take_result(prev));
        }
        Poll::Pending
    }

    /// Resolves from a state in which the sender is done.
    fn take_result(&mut self, state: State) -> Result<T, RecvError> {
        debug_assert!(state.is_tx_done());
        let inner = self.inner.take().expect("checked by the caller");
        if state.is_value_sent() {
            // SAFETY: VALUE_SENT was observed with Acquire ordering; this side
            // has not set RX_CLOSED, so the sender never takes the value back;
            // `self.inner` is now None, so we never take it again.
            Ok(unsafe { inner.take_value() })
        } else {
            Err(RecvError)
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_with(cx.waker())
    }
}

/// Where the sender was when the receiver closed; see [`Receiver::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The sender had not called [`Sender::try_start`]: if it does, it gets
    /// `false`, so work guarded by it never runs.
    BeforeStart,
    /// The sender had started and not finished: its `send` will hand the
    /// value back to it.
    WhileRunning,
    /// The sender had finished (sent, dropped, or the result was taken):
    /// a value still in the channel was dropped here.
    AfterCompletion,
}

impl<T> Receiver<T> {
    /// Closes the channel (as dropping does) and says where the sender was at
    /// that moment, so a caller can account for cancelled work exactly once.
    pub fn close(mut self) -> Closed {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Closed {
        let Some(inner) = self.inner.take() else {
            return Closed::AfterCompletion;
        };
        // ORDERING: AcqRel. Acquire pairs with the sender's Release RMW, so a
        // VALUE_SENT seen here comes with the value write; Release orders our
        // earlier accesses before the sender's RMW that sees RX_CLOSED.
        let prev = State(inner.state.fetch_or(RX_CLOSED, Ordering::AcqRel));
        if prev.is_value_sent() {
            // SAFETY: VALUE_SENT was observed with Acquire ordering and the
            // sender, having seen no RX_CLOSED, gave the value up; we take it
            // once, here, and drop it.
            drop(unsafe { inner.take_value() });
        }
        if prev.is_tx_done() {
            Closed::AfterCompletion
        } else if prev.is_started() {
            Closed::WhileRunning
        } else {
            Closed::BeforeStart
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close_inner();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Receiver");
        match &self.inner {
            // ORDERING: Relaxed: a diagnostic snapshot only.
            Some(inner) => s.field("state", &State(inner.state.load(Ordering::Relaxed))),
            None => s.field("state", &"TAKEN"),
        };
        s.finish()
    }
}
