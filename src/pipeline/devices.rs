//! The block-device seam of the pipeline: probing the source, opening the mapping, mounting.
//!
//! [`SystemDevices`] is the real thing. Unit tests implement [`BlockDevices`] over regular
//! files, which is why the checks that need a real block device live here and not in the
//! pipeline's steps.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::mount::{self, MountRequest};
use crate::blockdev::{self, Kind};
use crate::dm::Activation;
use crate::error::{Error, Refusal, Result};
use crate::params::MIN_DEVICE_BYTES;

/// How often to look for a source that has not appeared yet.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// What the probe found out about the source. Holds the source's lock until dropped.
#[derive(Debug)]
pub struct SourceInfo {
    /// Size of the source in bytes.
    pub size_bytes: u64,
    /// The BSD lock on the source, held for the whole run (`None` in tests).
    _lock: Option<Flock<File>>,
    /// A descriptor held for the run by a test implementation (in place of the lock).
    _held: Option<File>,
    /// `/proc/self/fd/N` of the descriptor held (the lock's): a path that names the device
    /// that was checked and locked, whatever the caller's path (a by-id or multipath link)
    /// points to later. `None`: use the caller's path (tests without a held descriptor).
    locked_path: Option<PathBuf>,
}

impl SourceInfo {
    /// A probe result without a lock, for test implementations of [`BlockDevices`].
    #[cfg(any(test, feature = "test-support"))]
    pub fn unlocked(size_bytes: u64) -> SourceInfo {
        SourceInfo {
            size_bytes,
            _lock: None,
            _held: None,
            locked_path: None,
        }
    }

    /// A probe result that holds `file` open for the run, for test implementations of
    /// [`BlockDevices`]: later steps use the file held, as they use the locked device.
    #[cfg(any(test, feature = "test-support"))]
    pub fn holding(size_bytes: u64, file: File) -> SourceInfo {
        SourceInfo {
            size_bytes,
            _lock: None,
            locked_path: Some(fd_path(&file)),
            _held: Some(file),
        }
    }

    /// The path every step after the probe uses for the source: the held descriptor's
    /// `/proc/self/fd/N`, or `source` itself when none is held.
    pub fn device_path<'a>(&'a self, source: &'a Path) -> &'a Path {
        self.locked_path.as_deref().unwrap_or(source)
    }
}

/// `/proc/self/fd/N` of `file`: opening it opens the very inode `file` has open.
fn fd_path(file: &impl std::os::fd::AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Access to block devices, as the pipeline needs it.
pub trait BlockDevices {
    /// Wait up to `wait` for `path` to appear; check it is a block device that nobody uses and
    /// that is big enough. Must not keep an exclusive open: libcryptsetup and dm-integrity
    /// claim the device themselves.
    fn probe_source(&self, path: &Path, wait: Duration) -> Result<SourceInfo>;
    /// Open the activated mapping for writing.
    fn open_mapping(&self, activation: &Activation) -> Result<File>;
    /// Mount `device` as ext4.
    fn mount(&self, device: &Path, request: &MountRequest) -> Result<()>;
    /// Unmount `dir`.
    fn unmount(&self, dir: &Path) -> Result<()>;
    /// Mount a private tmpfs (mode 0700) on `dir`, for the temp image when the default temp dir
    /// cannot hold it.
    fn mount_private_tmpfs(&self, dir: &Path) -> Result<()>;

    /// Where run state (the growth record of a fast start) is kept.
    fn state_dir(&self) -> PathBuf {
        PathBuf::from(super::grow::STATE_DIR)
    }

    /// Mount points of the block device `dev`, deepest first.
    fn mounts_of(&self, dev: crate::dm::DevNum) -> Result<Vec<PathBuf>> {
        mount::find_mounts(dev.major, dev.minor)
    }

    /// The device of the file system that `dir` shows now (its `st_dev`): the top-most mount
    /// there, which is what an unmount by path would remove.
    fn device_at(&self, dir: &Path) -> Result<crate::dm::DevNum> {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(dir).map_err(io_err("stat", dir))?.dev();
        Ok(crate::dm::DevNum {
            major: nix::sys::stat::major(dev) as u32,
            minor: nix::sys::stat::minor(dev) as u32,
        })
    }

    /// Stop the grower of a fast start of `name`, if one runs, and wait until it is gone.
    fn stop_grower(&self, name: &crate::name::MappingName) -> Result<()> {
        super::grow::stop_grower(name)
    }

    /// Whether this process may grow a mounted ext4 (`EXT4_IOC_RESIZE_FS` needs
    /// CAP_SYS_RESOURCE in the effective set; the detached grower inherits this process's).
    fn can_grow_online(&self) -> bool {
        has_effective_capability(CAP_SYS_RESOURCE)
    }
}

/// `CAP_SYS_RESOURCE` of linux/capability.h (not in the libc crate).
pub const CAP_SYS_RESOURCE: u32 = 24;

/// Whether capability number `cap` is in this process's effective set (`CapEff:` of
/// /proc/self/status). Unreadable counts as absent: a promise is made only when it can be kept.
pub fn has_effective_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|mask| cap < 64 && mask & (1u64 << cap) != 0)
}

/// The real block devices of this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemDevices;

fn refused(path: &Path, reason: Refusal) -> Error {
    Error::Refused {
        path: path.to_path_buf(),
        reason,
    }
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Error + 'p {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Wait until `path` exists or `wait` has passed.
pub fn wait_for(path: &Path, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        match std::fs::metadata(path) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if Instant::now() >= deadline {
                    return Err(refused(path, Refusal::Missing { waited: wait }));
                }
                std::thread::sleep(WAIT_POLL);
            }
            Err(e) => return Err(io_err("look up", path)(e)),
        }
    }
}

impl BlockDevices for SystemDevices {
    fn probe_source(&self, path: &Path, wait: Duration) -> Result<SourceInfo> {
        wait_for(path, wait)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err("open", path))?;
        match blockdev::kind(&file).map_err(io_err("stat", path))? {
            Kind::Block => {}
            Kind::Regular => return Err(refused(path, Refusal::RegularFile)),
            Kind::Char => return Err(refused(path, Refusal::CharDevice)),
            Kind::Other => return Err(refused(path, Refusal::NotBlockDevice)),
        }
        // A second scratchcrypt on the same device stops here; udev also skips locked devices.
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                refused(path, Refusal::Locked)
            } else {
                io_err("lock", path)(errno.into())
            }
        })?;
        // From here the device is named by the locked descriptor, never by `path` again: a
        // by-id or multipath link that flips now must not get another device checked,
        // formatted or read.
        let locked = fd_path(&*lock);
        // O_EXCL on a block device fails while it is mounted, mapped or claimed. Released at
        // once: libcryptsetup and dm-integrity need their own exclusive claim.
        match blockdev::open_exclusive(&locked) {
            Ok(probe) => drop(probe),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(refused(path, Refusal::InUse))
            }
            Err(e) => return Err(io_err("open exclusively", path)(e)),
        }
        let size_bytes = blockdev::size_bytes(&lock).map_err(io_err("query the size of", path))?;
        if size_bytes < MIN_DEVICE_BYTES {
            return Err(refused(
                path,
                Refusal::TooSmall {
                    size: size_bytes,
                    min: MIN_DEVICE_BYTES,
                },
            ));
        }
        Ok(SourceInfo {
            _held: None,
            locked_path: Some(locked),
            size_bytes,
            _lock: Some(lock),
        })
    }

    fn open_mapping(&self, activation: &Activation) -> Result<File> {
        let path = &activation.mapper_path;
        // Exclusive, so nothing can mount the half-written file system under us.
        blockdev::open_exclusive(path).map_err(io_err("open", path))
    }

    fn mount(&self, device: &Path, request: &MountRequest) -> Result<()> {
        mount::mount_ext4(device, request)
    }

    fn unmount(&self, dir: &Path) -> Result<()> {
        nix::mount::umount2(dir, nix::mount::MntFlags::empty())
            .map_err(|e| io_err("unmount", dir)(e.into()))
    }

    fn mount_private_tmpfs(&self, dir: &Path) -> Result<()> {
        mount::mount_private_tmpfs(dir)
    }
}

/// Create a private directory (mode 0700) with an unpredictable name under `base`.
pub fn create_private_dir(base: &Path) -> Result<PathBuf> {
    let mut last = None;
    for _ in 0..8 {
        let dir = base.join(format!(
            "scratchcrypt-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_err("create a temp dir in", base)(e)),
        }
    }
    Err(io_err("create a temp dir in", base)(last.unwrap_or_else(
        || io::Error::from_raw_os_error(libc::EEXIST),
    )))
}
