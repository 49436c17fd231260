//! What every privileged test needs: a check that this machine can run it (the one skip rule of
//! [`super::skip`]: fail under `SCRATCHCRYPT_REQUIRE_PRIVILEGED=1`, else skip visibly), and one lock so that tests touching mounts, loop devices and
//! `drop_caches` run one at a time within a test binary.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Serialises privileged tests of one test binary (cargo runs tests on parallel threads).
static SERIAL: Mutex<()> = Mutex::new(());

/// Take the serial lock; a test that panicked while holding it does not block the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Check that the strict device and the ext4 oracles can be used here: root, `/dev/fuse`,
/// `/dev/loop-control`, and the e2fsprogs tools. Returns false (after printing why) when the
/// test should be skipped; panics instead under `SCRATCHCRYPT_REQUIRE_PRIVILEGED=1`.
pub fn can_run(test: &str) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for dev in ["/dev/fuse", "/dev/loop-control"] {
        if !Path::new(dev).exists() {
            missing.push(dev.to_string());
        }
    }
    for tool in ["mkfs.ext4", "e2fsck", "dumpe2fs", "debugfs"] {
        if !tool_exists(tool) {
            missing.push(tool.to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    !super::skip::cannot_run(test, &format!("needs {}", missing.join(", ")))
}

/// Whether `tool` is found in PATH or the sbin directories (e2fsprogs lives in /sbin).
fn tool_exists(tool: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/sbin", "/usr/sbin"])
        .any(|dir| Path::new(dir).join(tool).is_file());
    found
}
