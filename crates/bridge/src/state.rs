//! The channel's state word: five flags in one `AtomicUsize`.
//!
//! Each flag is set by exactly one side and, once set, only [`WAKER_SET`] is
//! ever cleared again (by the receiver, when it swaps its waker). Every
//! transition is a single read-modify-write, so the two sides always agree on
//! which of them acted first.
//!
//! | flag         | set by   | what it grants                                                      |
//! |--------------|----------|---------------------------------------------------------------------|
//! | `WAKER_SET`  | receiver | the waker cell holds a waker the sender may read (to wake it)       |
//! | `VALUE_SENT` | sender   | the value cell is initialised; whoever closes second must take it   |
//! | `TX_DROPPED` | sender   | the sender is gone without a value: the receiver resolves to error |
//! | `RX_CLOSED`  | receiver | nobody waits any more: the sender may skip work and keeps its value |
//! | `STARTED`    | sender   | the job announced it began (so a closing receiver knows it will run) |
//!
//! Cell ownership follows from the flags (see `docs/bridge.md` for the proof):
//! - value cell: the sender's until it sets `VALUE_SENT`; after that it belongs
//!   to whichever side observes the other's closing flag (`RX_CLOSED` for the
//!   sender, `VALUE_SENT` for the receiver), and that side moves it out.
//! - waker cell: the receiver's while `WAKER_SET` is clear. While it is set the
//!   cell is frozen: the receiver may only read it, and the sender may read it
//!   (to call `wake_by_ref`) once its own completing RMW saw the flag set.

/// The receiver stored a waker in the waker cell and published it.
pub(crate) const WAKER_SET: usize = 0b0001;
/// The sender wrote the value cell and published it.
pub(crate) const VALUE_SENT: usize = 0b0010;
/// The sender was dropped without sending.
pub(crate) const TX_DROPPED: usize = 0b0100;
/// The receiver was dropped (or cancelled): no one will read the value.
pub(crate) const RX_CLOSED: usize = 0b1000;

/// The sender announced, with [`Sender::try_start`](crate::Sender::try_start),
/// that its work has begun. Carries no cell ownership.
pub(crate) const STARTED: usize = 0b1_0000;

/// Either way the sender is finished: the receiver can resolve.
pub(crate) const TX_DONE: usize = VALUE_SENT | TX_DROPPED;

/// A snapshot of the state word, with named questions instead of bit tests.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct State(pub(crate) usize);

impl State {
    /// The sender has finished (sent or dropped).
    #[inline]
    pub(crate) fn is_tx_done(self) -> bool {
        self.0 & TX_DONE != 0
    }
    /// A value is in (or was moved out of) the value cell.
    #[inline]
    pub(crate) fn is_value_sent(self) -> bool {
        self.0 & VALUE_SENT != 0
    }
    /// The receiver has published a waker.
    #[inline]
    pub(crate) fn is_waker_set(self) -> bool {
        self.0 & WAKER_SET != 0
    }
    /// The sender announced that its work began.
    #[inline]
    pub(crate) fn is_started(self) -> bool {
        self.0 & STARTED != 0
    }
    /// The receiver is gone.
    #[inline]
    pub(crate) fn is_rx_closed(self) -> bool {
        self.0 & RX_CLOSED != 0
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (WAKER_SET, "WAKER_SET"),
            (VALUE_SENT, "VALUE_SENT"),
            (TX_DROPPED, "TX_DROPPED"),
            (RX_CLOSED, "RX_CLOSED"),
            (STARTED, "STARTED"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        if set.is_empty() {
            f.write_str("EMPTY")
        } else {
            f.write_str(&set.join("|"))
        }
    }
}
