//! Cooperative cancellation: a flag that a signal handler may set and a run checks.
//!
//! # Why cooperative
//! A run that dies where the signal finds it leaves a mapping, a private temp dir (perhaps a
//! tmpfs holding memory) and maybe a mount behind. Instead the command-line tool's handlers for
//! SIGINT, SIGTERM and SIGHUP only record the signal in a [`CancelToken`]; the pipeline checks
//! the token between steps and between the chunks of its long writes, stops at the next such
//! point, rolls back everything it created, and reports which signal stopped which step. A
//! second signal finds the token already set and changes nothing, so it cannot interrupt the
//! rollback.
//!
//! Setting the token is async-signal-safe: one atomic compare-and-swap, no allocation, no lock.
//! This module imports nothing of the crate.

use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// A shared "please stop" flag, carrying the number of the signal (or other reason) that set it.
///
/// Clones share the flag. The default token is never cancelled unless someone cancels it.
///
/// ```
/// use scratchcrypt::CancelToken;
///
/// let token = CancelToken::new();
/// let handler_side = token.clone();
/// assert_eq!(token.signal(), None);
/// handler_side.cancel(libc::SIGTERM);
/// handler_side.cancel(libc::SIGINT); // the first reason stays
/// assert_eq!(token.signal(), Some(libc::SIGTERM));
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    signal: Arc<AtomicI32>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the run to stop, because of `signal` (a positive signal number). The first call
    /// wins; later calls change nothing. Safe to call from a signal handler.
    pub fn cancel(&self, signal: i32) {
        let signal = signal.max(1);
        let _ = self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The signal that cancelled the token, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("signal", &self.signal())
            .finish()
    }
}

/// The conventional name of a signal number (`SIGTERM`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_wins_and_clones_share_it() {
        let token = CancelToken::new();
        let other = token.clone();
        assert_eq!(other.signal(), None);
        token.cancel(libc::SIGHUP);
        token.cancel(libc::SIGTERM);
        assert_eq!(other.signal(), Some(libc::SIGHUP));
        assert_eq!(format!("{other:?}"), "CancelToken { signal: Some(1) }");
    }

    #[test]
    fn a_zero_reason_still_cancels() {
        let token = CancelToken::new();
        token.cancel(0);
        assert_eq!(token.signal(), Some(1));
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(64), "signal 64");
    }
}
