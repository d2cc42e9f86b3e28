//! What a receiver can get instead of a value.

use std::fmt;

/// The sender was dropped without sending a value.
///
/// For a compute job this means the job was discarded (for example its pool
/// shut down) or it unwound past the point where it could report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sender was dropped without sending a value")
    }
}

impl std::error::Error for RecvError {}

/// Why [`Receiver::try_recv`](crate::Receiver::try_recv) returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// The sender is still alive and has not sent yet.
    Empty,
    /// The sender was dropped without sending, or the value was already taken.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no value has been sent yet"),
            TryRecvError::Disconnected => {
                f.write_str("the sender is gone and there is no value to take")
            }
        }
    }
}

impl std::error::Error for TryRecvError {}
