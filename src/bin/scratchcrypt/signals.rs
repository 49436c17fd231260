//! SIGINT, SIGTERM and SIGHUP during `encrypt`: recorded, never acted on where they land.
//!
//! The handlers only set the run's [`CancelToken`] (one atomic compare-and-swap, which is
//! async-signal-safe); the library stops at its next safe point, rolls back the mapping, the
//! temp dir, a private tmpfs and a mount, and fails with an error naming the step. `main` then
//! exits with 128 + the signal number, as a shell would report a process the signal killed.
//! A second signal finds the token set and changes nothing, so the rollback runs to its end.
//! `SA_RESTART` keeps the system calls of the rollback from failing with EINTR.

use std::sync::OnceLock;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use scratchcrypt::CancelToken;

/// The signals that stop a run.
const STOPPING: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The token the handlers cancel; set once, before any handler is installed.
static TOKEN: OnceLock<CancelToken> = OnceLock::new();

extern "C" fn record(signal: libc::c_int) {
    if let Some(token) = TOKEN.get() {
        token.cancel(signal);
    }
}

/// Install the handlers and return the token they cancel.
pub fn install() -> CancelToken {
    let token = TOKEN.get_or_init(CancelToken::new).clone();
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in STOPPING {
        // SAFETY: `record` is async-signal-safe: it reads an initialised OnceLock (an atomic
        // load; TOKEN is set above, before the handler can run) and does one atomic
        // compare-and-swap; it allocates nothing and takes no lock.
        if let Err(e) = unsafe { sigaction(signal, &action) } {
            eprintln!(
                "scratchcrypt: cannot handle {signal}: {e} (it would stop the run where it lands)"
            );
        }
    }
    token
}

/// Give the stopping signals their default action again (the detached grower: `cleanup` stops
/// it with SIGTERM, and it leaves a consistent file system wherever it is stopped).
pub fn restore_defaults() {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in STOPPING {
        // SAFETY: installing the default disposition runs no code of ours in signal context.
        let _ = unsafe { sigaction(signal, &action) };
    }
}
