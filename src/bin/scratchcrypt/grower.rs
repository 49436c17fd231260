//! The detached grower of `encrypt --fast-start`: fork, setsid, grow, exit (no exec).
//!
//! The parent takes the grower's lock before it forks; the child inherits the locked file
//! description, so `status` reports `growing` from the moment `encrypt` returns, and the lock is
//! released only when the child exits. The child has no terminal (a new session, stdio on
//! /dev/null): a closing shell or a Ctrl-C for the parent does not stop it; `cleanup` does.

use std::os::fd::AsRawFd;

use scratchcrypt::{Error, GrowLock, GrowOptions, MappingName};

/// Start the grower of `name` in a detached child, or grow here if forking is not safe.
pub fn spawn(name: &MappingName) -> Result<(), Error> {
    let Some(lock) = GrowLock::try_take(name)? else {
        // Someone grows it already.
        return Ok(());
    };
    if !single_threaded() {
        // fork() copies only the calling thread; with others running (holding allocator or
        // stdio locks, say) the child could deadlock. Grow in the foreground instead.
        return grow_in_foreground(name, &lock);
    }
    // SAFETY: the process has exactly one thread (checked just above), so the child is a
    // complete copy of it: no lock can be held by a thread that does not exist in the child.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            // Recorded at once, so that a `cleanup` right after can stop it.
            if let Some(mut state) = scratchcrypt::GrowState::load(name)? {
                state.grower_pid = Some(child.as_raw());
                state.save(name)?;
            }
            // The child holds the lock through the same open file description.
            drop(lock);
            Ok(())
        }
        Ok(nix::unistd::ForkResult::Child) => {
            let code = child(name, &lock);
            std::process::exit(code)
        }
        Err(_) => {
            // Could not fork (EAGAIN under a pids limit): grow here, so the disk still reaches
            // its full size.
            grow_in_foreground(name, &lock)
        }
    }
}

/// Grow in this process, as the detached grower would: the encrypt run is over (its signal
/// handlers only set a flag nobody checks any more), so SIGTERM, SIGINT and SIGHUP get their
/// default action back; `cleanup` stops this process as it stops a detached grower, and a
/// growth stopped anywhere leaves a consistent smaller file system.
fn grow_in_foreground(name: &MappingName, lock: &GrowLock) -> Result<(), Error> {
    crate::signals::restore_defaults();
    scratchcrypt::grow_holding(name, lock, &GrowOptions::default())?;
    Ok(())
}

/// The child: a session of its own, no terminal, grow, exit 0 on success.
fn child(name: &MappingName, lock: &GrowLock) -> i32 {
    let _ = nix::unistd::setsid();
    crate::signals::restore_defaults();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors of this single-threaded child; `null`
            // stays open for the call.
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
    match scratchcrypt::grow_holding(name, lock, &GrowOptions::default()) {
        Ok(_) => 0,
        Err(e) => {
            let text = format!("scratchcrypt grower of {name}: {}", e.line());
            log_to_kmsg(&text);
            1
        }
    }
}

/// Whether this process runs a single thread (`Threads:` of /proc/self/status).
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim() == "1"))
        })
        .unwrap_or(false)
}

/// A grower has no terminal: a failure goes to the kernel log, where `dmesg` shows it.
fn log_to_kmsg(text: &str) {
    if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = std::io::Write::write_all(&mut kmsg, format!("<3>{text}\n").as_bytes());
    }
}
