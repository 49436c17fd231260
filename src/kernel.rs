//! What the running kernel offers: device-mapper at all, and which dm target types it lists.
//!
//! # Why one place
//! The header format must refuse before it writes anything on a kernel without device-mapper
//! (libcryptsetup overwrites the first megabytes before it needs it), activation must tell a
//! missing `dm-crypt`/`dm-integrity` module from any other refusal, and both used to carry
//! their own copy of these probes. Nothing here imports the rest of the crate but
//! [`crate::state`].
//!
//! # A kernel race kept out of our own processes
//! Every dm-integrity device gets a dm-bufio client, and in Linux 6.1 (Debian 12) each client
//! creates a slab cache, which SLUB names by its shape (`/sys/kernel/slab/:a-0000152`) and
//! removes from sysfs only *after* it let go of `slab_mutex`. A dm-integrity device created
//! while another one is being removed can so meet the old name still in sysfs:
//! `sysfs: cannot create duplicate filename`, a call trace, `kmem_cache_create(dm_bufio_buffer)
//! failed with error -17`, and the table load fails with ENOMEM (libcryptsetup: "reload ioctl
//! on temporary-cryptsetup-... failed: Cannot allocate memory"). Four scratch disks prepared
//! in parallel hit it twice in 120 rounds in the VM (`rel_load.sh`), and once in a CI run. [`dm_integrity_lock`]
//! serialises the steps of scratchcrypt processes that create or remove dm-integrity devices:
//! the header format (its temporary integrity device) and every table load and removal. Its
//! lock file is in the owner-checked state directory ([`crate::state`]).

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// Where the kernel lists misc devices; device-mapper's control node is one of them.
pub const PROC_MISC: &str = "/proc/misc";

/// Why the kernel's device-mapper could not be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// `/proc/misc` could not be read.
    #[error("cannot read {PROC_MISC}")]
    ReadMisc {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `/proc/misc` has no `device-mapper` line.
    #[error("{PROC_MISC} has no device-mapper entry (CONFIG_BLK_DEV_DM is off or the dm-mod module is not loaded)")]
    NoEntry,
}

/// The misc minor of `device-mapper` in the text of `/proc/misc` (lines `<minor> <name>`).
///
/// ```
/// assert_eq!(scratchcrypt::kernel::dm_misc_minor("183 hw_random\n236 device-mapper\n"), Some(236));
/// assert_eq!(scratchcrypt::kernel::dm_misc_minor("183 hw_random\n"), None);
/// ```
pub fn dm_misc_minor(misc: &str) -> Option<u32> {
    misc.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let minor = it.next()?.parse().ok()?;
        (it.next()? == "device-mapper").then_some(minor)
    })
}

/// The misc minor of the device-mapper control node, or why there is none.
pub fn device_mapper_minor() -> Result<u32, ProbeError> {
    let misc =
        std::fs::read_to_string(PROC_MISC).map_err(|source| ProbeError::ReadMisc { source })?;
    dm_misc_minor(&misc).ok_or(ProbeError::NoEntry)
}

/// Whether this kernel has device-mapper (built in or the module loaded).
pub fn has_device_mapper() -> bool {
    device_mapper_minor().is_ok()
}

/// The targets of `wanted` that are not in `listed` (the names DM_LIST_VERSIONS returned).
pub fn unlisted<'a, S: AsRef<str>>(listed: &[S], wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|w| !listed.iter().any(|l| l.as_ref() == **w))
        .copied()
        .collect()
}

/// Whether device-mapper is known to lack the target type `target` (DM_LIST_VERSIONS).
/// Unknown (no device-mapper, ioctl failure) counts as not lacking, so callers keep the
/// original error.
pub fn lacks_dm_target(target: &str) -> bool {
    match devicemapper::DM::new().and_then(|dm| dm.list_versions()) {
        Ok(list) => {
            let names: Vec<&str> = list.iter().map(|(name, ..)| name.as_str()).collect();
            !unlisted(&names, &[target]).is_empty()
        }
        Err(_) => false,
    }
}

/// The lock file of [`dm_integrity_lock`], in the root-only, owner-checked state directory
/// ([`crate::state`]): in world-writable `/run/lock` any local user could hold it, or plant a
/// link there.
/// Its name has neither `.lock` nor `.json` at the end, so it can never be the growth lock or
/// record (`<name>.lock`, `<name>.json`) of a mapping, whatever the mapping is called.
pub const DM_INTEGRITY_LOCK: &str = "/run/scratchcrypt/kernel-dm-integrity-serialise";

/// How long [`dm_integrity_lock`] waits for another process before it goes on without it.
const DM_INTEGRITY_LOCK_WAIT: Duration = Duration::from_secs(30);

/// A held [`dm_integrity_lock`] (or none, when it could not be had); released on drop.
#[derive(Debug)]
#[must_use = "the lock is released when this is dropped"]
pub struct DmIntegrityLock {
    _lock: Option<Flock<File>>,
}

/// Keep other scratchcrypt processes from creating or removing a dm-integrity device until
/// the returned guard is dropped (see the module docs for the kernel race). Best effort: it
/// never fails and never hangs. When the state directory or the lock file is not ours (see
/// [`crate::state`]), cannot be made, or another scratchcrypt process holds the lock for 30 s,
/// the work goes on unlocked, as it would without this guard. Only processes of the state
/// directory's owner (root) can hold it. Do not nest: a second lock in the same process waits
/// for the first.
pub fn dm_integrity_lock() -> DmIntegrityLock {
    let path = Path::new(DM_INTEGRITY_LOCK);
    let dir_ok = path
        .parent()
        .is_some_and(|dir| crate::state::ensure_dir(dir).is_ok());
    DmIntegrityLock {
        _lock: if dir_ok {
            lock_at(path, DM_INTEGRITY_LOCK_WAIT)
        } else {
            None
        },
    }
}

/// An exclusive `flock` on `path` (created if missing; never through a link, only a regular
/// file of this process's owner), polled for at most `wait`.
fn lock_at(path: &Path, wait: Duration) -> Option<Flock<File>> {
    let started = Instant::now();
    let mut file = crate::state::open_file(path, true).ok()?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Some(lock),
            Err((f, _)) if started.elapsed() < wait => {
                file = f;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A held lock keeps a second taker out (it gives up after its wait); once dropped, the
    /// next taker gets it. An unopenable path means no lock, not an error.
    #[test]
    fn integrity_lock_excludes_and_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dm.lock");
        let first = lock_at(&path, Duration::ZERO).expect("a free lock is taken");
        let started = Instant::now();
        assert!(lock_at(&path, Duration::from_millis(100)).is_none());
        assert!(started.elapsed() >= Duration::from_millis(100));
        drop(first);
        assert!(lock_at(&path, Duration::ZERO).is_some());
        assert!(lock_at(&dir.path().join("no/such/dir/lock"), Duration::ZERO).is_none());
    }

    /// Issue 26 item 4: the lock is in the root-only state directory, never in world-writable
    /// `/run/lock`; a link planted as the lock file is not followed (its target is not
    /// created) and gives no lock.
    #[test]
    fn integrity_lock_is_ours_only() {
        assert_eq!(
            Path::new(DM_INTEGRITY_LOCK).parent(),
            Some(Path::new(crate::state::STATE_DIR))
        );
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("etc-something");
        let link = dir.path().join("dm.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(lock_at(&link, Duration::ZERO).is_none());
        assert!(!target.exists(), "the planted link was followed");
    }

    /// A mapping called `dm-integrity` (a valid name) must not share its grower's lock file with
    /// the dm-integrity lock: a grower holds its lock for the whole growth.
    #[test]
    fn integrity_lock_is_no_mappings_state_file() {
        let file = Path::new(DM_INTEGRITY_LOCK).file_name().unwrap();
        let file = file.to_str().unwrap();
        assert!(
            !file.ends_with(".lock") && !file.ends_with(".json"),
            "{file} could be a mapping's growth lock or record"
        );
    }

    /// Only a `device-mapper` line with a numeric minor counts.
    #[test]
    fn misc_minor_needs_the_exact_name() {
        assert_eq!(dm_misc_minor("236 device-mapper"), Some(236));
        assert_eq!(dm_misc_minor("236 device-mapper-x\n x device-mapper"), None);
        assert_eq!(dm_misc_minor(""), None);
    }

    /// Targets the kernel lists are dropped, the others kept in order.
    #[test]
    fn unlisted_keeps_what_is_missing() {
        let listed = ["striped", "crypt", "linear"];
        assert_eq!(
            unlisted(&listed, &["integrity", "crypt"]),
            vec!["integrity"]
        );
        assert!(unlisted(&listed, &["crypt"]).is_empty());
    }
}
