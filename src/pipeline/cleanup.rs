//! Removal of a mapping, and of what a killed `encrypt` left behind.
//!
//! A run that dies (SIGKILL, power loss of the container, OOM) leaves its mapping and its
//! private temp dir. `cleanup <name>` removes the mapping by name, and also sweeps the temp dir
//! for `scratchcrypt-<pid>-<hex>` directories whose process no longer exists, unmounting the
//! private tmpfs first where one was mounted. Directories of live runs are never touched.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{at, BlockDevices, SystemDevices};
use crate::dm::{self, DeviceMapper, RealDm};
use crate::error::{Error, Refusal, Result};
use crate::name::MappingName;
use crate::step::Step;

/// Options of [`cleanup`].
#[derive(Debug, Clone, Default)]
pub struct CleanupOptions {
    /// Unmount every mount of the mapping first.
    pub unmount: bool,
    /// Where to look for temp dirs left by killed runs (default: `$TMPDIR`, else `/tmp`).
    pub temp_dir: Option<PathBuf>,
    /// Remove any cryptsetup mapping of that name (`CRYPT-` dm UUID), not only a LUKS2
    /// crypt-over-integrity stack.
    pub force: bool,
}

/// What [`cleanup`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupOutcome {
    /// The mapping name.
    pub name: String,
    /// Whether anything by that name existed.
    pub existed: bool,
    /// `<name>` was removed.
    pub crypt_removed: bool,
    /// `<name>_dif` was removed.
    pub integrity_removed: bool,
    /// Mount points that were unmounted first.
    pub unmounted: Vec<PathBuf>,
    /// Temp dirs of runs that died without removing them (`scratchcrypt-<pid>-*` dirs whose process is gone).
    pub stale_temp_dirs_removed: Vec<PathBuf>,
}

/// Remove the mapping `name` on the real system, unmounting it first if asked.
pub fn cleanup(name: &MappingName, options: &CleanupOptions) -> Result<CleanupOutcome> {
    let mapper = name.mapper_path();
    let dm = RealDm::new().map_err(|e| at(Step::RemoveMapping, &mapper, e.into()))?;
    let mut outcome = cleanup_with(&dm, &SystemDevices, name, options)?;
    if outcome.crypt_removed || !outcome.existed {
        super::grow::GrowState::remove(name).map_err(|e| at(Step::RemoveMapping, &mapper, e))?;
    }
    let base = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    outcome.stale_temp_dirs_removed =
        remove_stale_temp_dirs(&base).map_err(|e| at(Step::RemoveTempDir, &base, e))?;
    Ok(outcome)
}

/// [`cleanup`] over the given seams.
///
/// In this order, so that a refusal leaves everything as it was: (1) the mapping must be ours
/// (a LUKS2 crypt-over-integrity stack, or with `force` any cryptsetup mapping) before
/// anything else is looked at: a mapping of another tool keeps its mounts; (2) a mounted
/// mapping without `unmount` is refused, its grower left running (a stopped grower would leave
/// the file system small for good); (3) only then the grower is stopped (it holds the mount
/// point open), the mounts unmounted, and the mapping removed.
pub fn cleanup_with(
    dm: &dyn DeviceMapper,
    devices: &dyn BlockDevices,
    name: &MappingName,
    options: &CleanupOptions,
) -> Result<CleanupOutcome> {
    let mapper = name.mapper_path();
    let crypt = dm::check_removable(dm, name, options.force)
        .map_err(|e| at(Step::RemoveMapping, &mapper, e.into()))?;
    let mounts = match &crypt {
        Some(info) => devices
            .mounts_of(info.dev)
            .map_err(|e| at(Step::Unmount, &mapper, e))?,
        None => Vec::new(),
    };
    if let (Some(first), false) = (mounts.first(), options.unmount) {
        return Err(at(
            Step::RemoveMapping,
            &mapper,
            Error::Refused {
                path: mapper.clone(),
                reason: Refusal::Mounted { at: first.clone() },
            },
        ));
    }
    // An unmount by path removes the top-most mount there: refuse before touching anything if
    // that is not ours (another file system mounted over one of our mount points).
    if let Some(info) = &crypt {
        for dir in &mounts {
            let top = devices
                .device_at(dir)
                .map_err(|e| at(Step::Unmount, &mapper, e))?;
            if top != info.dev {
                return Err(at(
                    Step::Unmount,
                    &mapper,
                    Error::Refused {
                        path: mapper.clone(),
                        reason: Refusal::StackedOver { at: dir.clone() },
                    },
                ));
            }
        }
    }
    // A grower of a fast start must be gone before its filesystem is unmounted.
    devices
        .stop_grower(name)
        .map_err(|e| at(Step::Grow, &mapper, e))?;
    let mut unmounted = Vec::new();
    for dir in mounts {
        devices
            .unmount(&dir)
            .map_err(|e| at(Step::Unmount, &mapper, e))?;
        unmounted.push(dir);
    }
    let remove = if options.force {
        dm::remove_any_crypt
    } else {
        dm::remove
    };
    let outcome = remove(dm, name).map_err(|e| at(Step::RemoveMapping, &mapper, e.into()))?;
    Ok(CleanupOutcome {
        name: name.to_string(),
        existed: outcome.existed(),
        crypt_removed: outcome.crypt_removed,
        integrity_removed: outcome.integrity_removed,
        unmounted,
        stale_temp_dirs_removed: Vec::new(),
    })
}

/// Whether `name` is a private temp dir of ours (`scratchcrypt-<pid>-<16 hex>`); its pid.
fn temp_dir_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("scratchcrypt-")?;
    let (pid, hex) = rest.split_once('-')?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// Remove the private temp dirs under `base` whose run is dead, unmounting a private tmpfs on
/// them first. Returns the directories removed.
pub fn remove_stale_temp_dirs(base: &Path) -> Result<Vec<PathBuf>> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let entries = match std::fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", base)(e)),
    };
    let base_dev = std::fs::metadata(base).map_err(io("stat", base))?.dev();
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("list", base))?;
        let Some(pid) = entry.file_name().to_str().and_then(temp_dir_pid) else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue; // a live run (or a reused pid: leave it alone either way)
        }
        let dir = entry.path();
        let meta = std::fs::symlink_metadata(&dir).map_err(io("stat", &dir))?;
        if !meta.is_dir() {
            continue;
        }
        // Ours: made by this tool's uid with mode 0700 (`create_private_dir`). A directory
        // of that name made by someone else is theirs, whatever its pid says.
        if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
            continue;
        }
        if meta.dev() != base_dev {
            // The private tmpfs of a killed run: unmount it, which also frees its memory.
            // Never through a link swapped in since the stat.
            nix::mount::umount2(
                &dir,
                nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW,
            )
            .map_err(|e| io("unmount", &dir)(e.into()))?;
        }
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
        removed.push(dir);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26 item 12: a dead-pid directory of our name that another user made (or one with
    /// group/other bits, which ours never have) is left alone.
    #[test]
    fn stale_dirs_of_other_owners_are_left_alone() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("scratchcrypt-4194304-00112233aabbccdd");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        std::fs::write(open.join("keep"), b"x").unwrap();
        if nix::unistd::geteuid().is_root() {
            let theirs = base.path().join("scratchcrypt-4194303-00112233aabbccdd");
            std::fs::create_dir(&theirs).unwrap();
            std::fs::set_permissions(&theirs, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            assert!(remove_stale_temp_dirs(base.path()).unwrap().is_empty());
            assert!(theirs.exists(), "another user's dir was removed");
        } else {
            crate::test_skip::cannot_run(
                "pipeline::cleanup::tests::stale_dirs_of_other_owners_are_left_alone",
                "needs root to give a directory to uid 65534",
            );
            assert!(remove_stale_temp_dirs(base.path()).unwrap().is_empty());
        }
        assert!(open.join("keep").exists(), "a 0777 dir was removed");
    }

    /// Only our own naming pattern yields a pid.
    #[test]
    fn temp_dir_names_are_recognised_strictly() {
        assert_eq!(temp_dir_pid("scratchcrypt-123-00112233aabbccdd"), Some(123));
        for other in [
            "scratchcrypt-123-0011",
            "scratchcrypt-x-00112233aabbccdd",
            "scratchcrypt-123-00112233aabbccdz",
            "other-123-00112233aabbccdd",
        ] {
            assert_eq!(temp_dir_pid(other), None, "{other}");
        }
    }

    /// Dirs of dead pids go, dirs of live pids and foreign entries stay.
    #[test]
    fn only_dead_runs_are_swept() {
        let base = tempfile::tempdir().unwrap();
        let dead = base.path().join("scratchcrypt-4194304-00112233aabbccdd");
        let live = base.path().join(format!(
            "scratchcrypt-{}-00112233aabbccdd",
            std::process::id()
        ));
        let foreign = base.path().join("scratchcrypt-notes");
        for d in [&dead, &live, &foreign] {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
        }
        std::fs::write(dead.join("image.ext4"), b"x").unwrap();
        let removed = remove_stale_temp_dirs(base.path()).unwrap();
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists() && live.exists() && foreign.exists());
        assert!(remove_stale_temp_dirs(&base.path().join("missing"))
            .unwrap()
            .is_empty());
    }
}
