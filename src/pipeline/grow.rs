//! Fast start, after the mount: grow the filesystem online to the mapping's full size.
//!
//! # The loop
//! Each step ([`crate::resize::next_step`]) first writes, through the mapping, the blocks the
//! kernel will read while adding the next chunk of groups (bitmaps, the new last block, a
//! read-ahead margin), fsyncs them, then asks the kernel for the chunk with one
//! `EXT4_IOC_RESIZE_FS` call. The kernel zeroes the chunk's inode tables itself
//! (`noinit_itable`, which the superblock carries). Every step leaves a consistent, larger
//! filesystem: a grower that is killed between or during steps leaves a smaller clean one,
//! and [`grow_mounted`] called again resumes from what the superblock says.
//!
//! # State of a run
//! `encrypt` with a fast start records the target in `/run/scratchcrypt/<name>.json`
//! ([`GrowState`]); a grower holds an exclusive `flock` on `/run/scratchcrypt/<name>.lock`
//! for as long as it runs, which is how `grow` waits for a grower that is already at work.
//! Nothing in these files is secret. The invariants:
//! - the directory and every file in it go through [`crate::state`] (root-only, 0700,
//!   owner-checked, never through a link);
//! - only a grower (or `grow`) takes the lock; [`is_growing`], which `status` uses, probes
//!   without it (`/proc/PID/fd` of the recorded grower, `/proc/locks`);
//! - the recorded pid is a hint, never trusted: [`stop_grower`] signals it only through a
//!   pidfd after checking that the process holds the lock file open, and waits a bounded time;
//! - the recorded mount point is re-validated before use: [`grow_mounted`] acts only on a
//!   directory whose file system is the mapping itself.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{at, ProgressFn};
use crate::error::{Error, Result};
#[cfg(any(test, feature = "test-support"))]
use crate::extent::ByteRange;
use crate::name::MappingName;
#[cfg(any(test, feature = "test-support"))]
use crate::resize::GrowStep;
use crate::resize::{self, Ext4Geometry};
use crate::sparse;
use crate::step::Step;

/// Where run state lives: a tmpfs on every system this tool targets, gone at reboot with the
/// key; root-only and owner-checked ([`crate::state`]).
pub const STATE_DIR: &str = crate::state::STATE_DIR;

/// Options of [`grow_mounted`].
#[derive(Clone, Default)]
pub struct GrowOptions {
    /// Called after every step with (`Step::Grow`, filesystem bytes now, target bytes).
    pub progress: Option<ProgressFn>,
    /// Test hook: rewrite the ranges a step zeroes (negative controls of the strict-device
    /// tests drop some of them and must be caught).
    #[cfg(any(test, feature = "test-support"))]
    pub zero_filter: Option<fn(&GrowStep) -> Vec<ByteRange>>,
}

impl GrowOptions {
    /// Options that report each step to `progress`.
    pub fn with_progress(progress: Option<ProgressFn>) -> GrowOptions {
        GrowOptions {
            progress,
            #[cfg(any(test, feature = "test-support"))]
            zero_filter: None,
        }
    }
}

impl std::fmt::Debug for GrowOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrowOptions")
            .field("progress", &self.progress.as_ref().map(|_| "<callback>"))
            .finish_non_exhaustive()
    }
}

/// What a grow did.
#[derive(Debug, Clone, Serialize)]
pub struct GrowReport {
    /// Filesystem size before, in bytes.
    pub from_bytes: u64,
    /// Filesystem size after, in bytes.
    pub fs_bytes: u64,
    /// The size grown to, in bytes.
    pub target_bytes: u64,
    /// Resize calls made.
    pub steps: u32,
    /// Bytes this process zeroed through the mapping (the kernel's inode-table zeroing aside).
    pub zeroed_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Of those, seconds spent writing this process's zero ranges (fsync included).
    pub zero_seconds: f64,
    /// Of those, seconds spent in the resize calls: the kernel zeroing the new inode tables,
    /// writing backup superblocks and descriptors, and committing each step's transaction.
    pub resize_seconds: f64,
}

/// Grow the ext4 on `mapping`, mounted at `mount`, to `target_blocks` blocks of 4 KiB.
///
/// Blocking; safe to call from any thread; resumable (it starts from the superblock's block
/// count). Refuses a filesystem whose superblock does not ask for `noinit_itable`: the kernel
/// would then leave new inode tables unwritten, which an unwiped integrity device cannot read.
pub fn grow_mounted(
    mapping: &Path,
    mount: &Path,
    target_blocks: u64,
    options: &GrowOptions,
) -> Result<GrowReport> {
    let started = Instant::now();
    let fail = |e: Error| at(Step::Grow, mapping, e);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    // Not exclusive: the filesystem on it is mounted. Only blocks beyond its end are written.
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(mapping)
        .map_err(io("open", mapping))
        .map_err(fail)?;
    let dir = File::open(mount).map_err(io("open", mount)).map_err(fail)?;
    // The recorded mount point is only a name: after a `umount` or `mount --move` another file
    // system may hold it. Before anything is written, the directory opened (the very
    // descriptor the resize ioctl goes to) must be on the mapping itself.
    check_mounted_from(&dev, mapping, &dir, mount).map_err(fail)?;
    let read_ahead = crate::blockdev::read_ahead_bytes(&dev).unwrap_or(0);
    let mut geom = Ext4Geometry::read(&dev, mapping).map_err(|e| fail(e.into()))?;
    if !geom.is_growable() {
        return Err(fail(Error::Refused {
            path: mapping.to_path_buf(),
            reason: crate::error::Refusal::NotGrowable,
        }));
    }
    if geom.blocks > target_blocks {
        return Err(fail(
            resize::ResizeError::BeyondTarget {
                device: mapping.to_path_buf(),
                blocks: geom.blocks,
                target: target_blocks,
            }
            .into(),
        ));
    }
    let from_bytes = geom.blocks * 4096;
    let mut report = GrowReport {
        from_bytes,
        fs_bytes: from_bytes,
        target_bytes: target_blocks * 4096,
        steps: 0,
        zeroed_bytes: 0,
        seconds: 0.0,
        zero_seconds: 0.0,
        resize_seconds: 0.0,
    };
    while let Some(step) = resize::next_step(&geom, target_blocks, read_ahead) {
        #[cfg(any(test, feature = "test-support"))]
        let zero = match options.zero_filter {
            Some(filter) => filter(&step),
            None => step.zero.clone(),
        };
        #[cfg(not(any(test, feature = "test-support")))]
        let zero = step.zero.clone();
        let ranges: Vec<std::ops::Range<u64>> = zero.iter().map(|r| r.start..r.end()).collect();
        // Buffered writes, not BLKZEROOUT: on a device a mounted filesystem holds, BLKZEROOUT
        // must invalidate the range's page cache and fails with EBUSY when a page there is in
        // use (seen at 32 GiB); writing through the page cache stays coherent with whatever the
        // filesystem has cached, and a step zeroes only a few hundred KiB.
        let zero_started = Instant::now();
        let zeroed = sparse::zero_ranges_with(
            &dev,
            mapping,
            &ranges,
            sparse::ZeroMethod::Pwrite,
            &mut sparse::no_progress,
        )
        .map_err(|e| fail(e.into()))?;
        report.zeroed_bytes += zeroed.bytes_zeroed;
        let resize_started = Instant::now();
        report.zero_seconds += (resize_started - zero_started).as_secs_f64();
        resize::resize_fs(&dir, mount, step.blocks).map_err(|e| fail(e.into()))?;
        report.resize_seconds += resize_started.elapsed().as_secs_f64();
        report.steps += 1;
        geom = Ext4Geometry::read(&dev, mapping).map_err(|e| fail(e.into()))?;
        report.fs_bytes = geom.blocks * 4096;
        if let Some(progress) = &options.progress {
            progress(Step::Grow, report.fs_bytes, report.target_bytes);
        }
        if geom.blocks < step.blocks {
            // The kernel accepted the call but did not grow: stop rather than loop.
            return Err(fail(
                resize::ResizeError::Ioctl {
                    mount: mount.to_path_buf(),
                    blocks: step.blocks,
                    source: io::Error::from_raw_os_error(libc::EIO),
                }
                .into(),
            ));
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Refuse unless `dir` (open on `mount`) is on the block device `dev` (open on `mapping`):
/// the directory's `st_dev` must be the device's `st_rdev`.
fn check_mounted_from(dev: &File, mapping: &Path, dir: &File, mount: &Path) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let dev_meta = dev.metadata().map_err(io("stat", mapping))?;
    let dir_meta = dir.metadata().map_err(io("stat", mount))?;
    if dev_meta.file_type().is_block_device() && dir_meta.dev() == dev_meta.rdev() {
        return Ok(());
    }
    Err(Error::Refused {
        path: mount.to_path_buf(),
        reason: crate::error::Refusal::NotMountedFrom {
            mapping: mapping.to_path_buf(),
        },
    })
}

/// What `encrypt` with a fast start leaves for `grow` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrowState {
    /// Blocks to grow to (mke2fs' block count for the mapping's size).
    pub target_blocks: u64,
    /// Where the filesystem was mounted.
    pub mount: PathBuf,
    /// The process growing it, while one runs.
    pub grower_pid: Option<i32>,
}

fn state_path(name: &MappingName, ext: &str) -> PathBuf {
    state_path_in(Path::new(STATE_DIR), name, ext)
}

fn state_path_in(dir: &Path, name: &MappingName, ext: &str) -> PathBuf {
    dir.join(format!("{name}.{ext}"))
}

/// The run-state directory, mode 0700, made if missing; refused unless it is ours (a real
/// directory of this process's owner, no group or other bits: [`crate::state::ensure_dir`]).
fn create_state_dir(dir: &Path) -> Result<()> {
    crate::state::ensure_dir(dir).map_err(state_io("check the state directory", dir))
}

fn state_io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

impl GrowState {
    /// Record the state of `name` (mode 0600 in a 0700 directory).
    pub fn save(&self, name: &MappingName) -> Result<()> {
        self.save_in(Path::new(STATE_DIR), name)
    }

    /// [`GrowState::save`] into `dir`.
    pub fn save_in(&self, dir: &Path, name: &MappingName) -> Result<()> {
        create_state_dir(dir)?;
        let path = state_path_in(dir, name, "json");
        // Per process: the encrypt process (recording its grower's pid) and the grower itself
        // may save at the same instant, and a shared temp name made one rename fail (ENOENT).
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = state_path_in(dir, name, &format!("json.{}.{n}.tmp", std::process::id()));
        let text = serde_json::to_vec(self).map_err(|e| state_io("encode", &path)(e.into()))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(state_io("create", &tmp))?;
        io::Write::write_all(&mut file, &text).map_err(state_io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(state_io("rename into", &path))
    }

    /// The state of `name`, or `None` when it was not encrypted with a fast start.
    pub fn load(name: &MappingName) -> Result<Option<GrowState>> {
        Self::load_in(Path::new(STATE_DIR), name)
    }

    /// [`GrowState::load`] from `dir`.
    pub fn load_in(dir: &Path, name: &MappingName) -> Result<Option<GrowState>> {
        let path = state_path_in(dir, name, "json");
        let read = crate::state::open_file(&path, false).and_then(|mut f| {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut f, &mut bytes).map(|_| bytes)
        });
        match read {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| state_io("parse", &path)(e.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(state_io("read", &path)(e)),
        }
    }

    /// Forget the state of `name` (after cleanup).
    pub fn remove(name: &MappingName) -> Result<()> {
        for ext in ["json", "lock"] {
            let path = state_path(name, ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(state_io("remove", &path)(e)),
            }
        }
        Ok(())
    }
}

/// The grower's lock on `name`: held for as long as a grower runs.
///
/// An exclusive `flock` on `/run/scratchcrypt/<name>.lock`. It belongs to the open file
/// description, so a forked child shares it, and it is released when the last descriptor of
/// that description is closed: dropping this handle only closes this process's descriptor, it
/// never unlocks explicitly (an explicit unlock would release the child's lock too).
#[derive(Debug)]
pub struct GrowLock {
    _file: File,
}

impl GrowLock {
    fn open(dir: &Path, name: &MappingName) -> Result<File> {
        create_state_dir(dir)?;
        let path = state_path_in(dir, name, "lock");
        crate::state::open_file(&path, true).map_err(state_io("open", &path))
    }

    fn lock(dir: &Path, name: &MappingName, op: libc::c_int) -> Result<Option<GrowLock>> {
        let file = Self::open(dir, name)?;
        loop {
            // SAFETY: flock takes a descriptor and an operation; `file` is open for the call.
            let r = unsafe { libc::flock(file.as_raw_fd(), op) };
            if r == 0 {
                return Ok(Some(GrowLock { _file: file }));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(None),
                _ => return Err(state_io("lock", &state_path_in(dir, name, "lock"))(e)),
            }
        }
    }

    /// Take the lock if no grower holds it; `None` when one does.
    pub fn try_take(name: &MappingName) -> Result<Option<GrowLock>> {
        Self::try_take_in(Path::new(STATE_DIR), name)
    }

    /// [`GrowLock::try_take`] in the state directory `dir`.
    pub fn try_take_in(dir: &Path, name: &MappingName) -> Result<Option<GrowLock>> {
        Self::lock(dir, name, libc::LOCK_EX | libc::LOCK_NB)
    }

    /// Wait until no grower holds the lock, then take it.
    pub fn take(name: &MappingName) -> Result<GrowLock> {
        Self::take_in(Path::new(STATE_DIR), name)
    }

    /// [`GrowLock::take`] in the state directory `dir`.
    pub fn take_in(dir: &Path, name: &MappingName) -> Result<GrowLock> {
        Self::lock(dir, name, libc::LOCK_EX)?.ok_or_else(|| {
            state_io("lock", &state_path_in(dir, name, "lock"))(io::Error::from_raw_os_error(
                libc::EWOULDBLOCK,
            ))
        })
    }
}

/// Whether a grower runs for `name` now.
///
/// A probe that takes no lock: taking the grower's lock to test it (as this did) could
/// overlap the `try_take` of an `encrypt --fast-start` about to fork its grower, which then
/// concluded that someone else grows and never started. Growing means: some process holds the
/// lock file open and its `flock` is listed in `/proc/locks`, or the recorded grower still has
/// the lock file open.
pub fn is_growing(name: &MappingName) -> Result<bool> {
    is_growing_in(Path::new(STATE_DIR), name)
}

/// [`is_growing`] in the state directory `dir`.
pub fn is_growing_in(dir: &Path, name: &MappingName) -> Result<bool> {
    let Some(state) = GrowState::load_in(dir, name)? else {
        return Ok(false);
    };
    let lock = state_path_in(dir, name, "lock");
    let Some(id) = file_id(&lock)? else {
        return Ok(false);
    };
    if state
        .grower_pid
        .is_some_and(|pid| process_has_open(pid, id))
    {
        return Ok(true);
    }
    let locks = std::fs::read_to_string("/proc/locks")
        .map_err(state_io("read", Path::new("/proc/locks")))?;
    Ok(flock_listed(&locks, id))
}

/// A file's identity: (major, minor, inode).
type FileId = (u64, u64, u64);

/// The identity of `path` (not following a link), or `None` when it does not exist.
fn file_id(path: &Path) -> Result<Option<FileId>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some((
            nix::sys::stat::major(m.dev()),
            nix::sys::stat::minor(m.dev()),
            m.ino(),
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(state_io("stat", path)(e)),
    }
}

/// Whether `/proc/locks` text lists a held `FLOCK` on the file `id` (its lines read
/// `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`, device numbers in hex; a waiter's line
/// has `->` before `FLOCK` and does not count).
fn flock_listed(locks: &str, id: FileId) -> bool {
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return false;
        }
        let Some(mut parts) = fields.get(5).map(|f| f.split(':')) else {
            return false;
        };
        let parsed = (|| {
            let major = u64::from_str_radix(parts.next()?, 16).ok()?;
            let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
            let ino = parts.next()?.parse::<u64>().ok()?;
            Some((major, minor, ino))
        })();
        parsed == Some(id)
    })
}

/// Whether process `pid` has the file `id` open (one of its `/proc/PID/fd` entries).
fn process_has_open(pid: i32, id: FileId) -> bool {
    use std::os::unix::fs::MetadataExt;
    if pid <= 0 {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::metadata(entry.path()).is_ok_and(|m| {
            (
                nix::sys::stat::major(m.dev()),
                nix::sys::stat::minor(m.dev()),
                m.ino(),
            ) == id
        })
    })
}

/// Grow `name` to its full size in this process, after waiting for a grower that already runs.
/// Idempotent: a filesystem at its full size (or one made without a fast start) returns at
/// once with `fs_bytes == target_bytes`.
pub fn grow(name: &MappingName, options: &GrowOptions) -> Result<GrowReport> {
    let lock = GrowLock::take(name)?;
    grow_holding(name, &lock, options)
}

/// [`grow`] by a process that already holds the grower's lock (the detached grower of
/// `encrypt --fast-start`, which inherits it from its parent).
pub fn grow_holding(
    name: &MappingName,
    _lock: &GrowLock,
    options: &GrowOptions,
) -> Result<GrowReport> {
    let mapper = name.mapper_path();
    let Some(mut state) = GrowState::load(name)? else {
        let status = growth_status(name)?;
        return Ok(GrowReport {
            from_bytes: status.fs_bytes,
            fs_bytes: status.fs_bytes,
            target_bytes: status.fs_bytes,
            steps: 0,
            zeroed_bytes: 0,
            seconds: 0.0,
            zero_seconds: 0.0,
            resize_seconds: 0.0,
        });
    };
    state.grower_pid = Some(std::process::id() as i32);
    state.save(name)?;
    let result = grow_mounted(&mapper, &state.mount, state.target_blocks, options);
    state.grower_pid = None;
    let saved = state.save(name);
    let report = result?;
    saved?;
    Ok(report)
}

/// The growth state of a mapping, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct GrowthStatus {
    /// Filesystem size now, in bytes.
    pub fs_bytes: u64,
    /// Size it grows to, in bytes (equal to `fs_bytes` without a fast start).
    pub target_bytes: u64,
    /// Whether a grower runs now.
    pub growing: bool,
    /// Where it is mounted (from the fast start's record, if any).
    pub mount: Option<PathBuf>,
}

/// Read the growth state of `name` from its superblock and run state.
pub fn growth_status(name: &MappingName) -> Result<GrowthStatus> {
    let mapper = name.mapper_path();
    let dev = File::open(&mapper).map_err(state_io("open", &mapper))?;
    let geom =
        Ext4Geometry::read(&dev, &mapper).map_err(|e| at(Step::Status, &mapper, e.into()))?;
    let state = GrowState::load(name)?;
    let fs_bytes = geom.blocks * 4096;
    Ok(GrowthStatus {
        fs_bytes,
        target_bytes: state.as_ref().map_or(fs_bytes, |s| s.target_blocks * 4096),
        growing: is_growing(name)?,
        mount: state.map(|s| s.mount),
    })
}

/// Stop a grower of `name` (SIGTERM; it stops at once, the kernel finishing the step in
/// flight) and wait until it is gone. Nothing to do when none runs.
///
/// The recorded pid is signalled only if that process has our lock file open: a grower that
/// was SIGKILLed or OOM-killed leaves its pid in the record, and a process that reused it is
/// not ours. The check and the signal go through a pidfd, so the signal reaches the process
/// that was checked or none.
pub fn stop_grower(name: &MappingName) -> Result<()> {
    stop_grower_in(Path::new(STATE_DIR), name, STOP_GROWER_WAIT)
}

/// How long [`stop_grower`] waits for the grower's lock to be released: a resize step in
/// flight finishes in seconds; a holder that does not let go in this time is reported instead
/// of waited for forever.
pub const STOP_GROWER_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// [`stop_grower`] in the state directory `dir`, waiting at most `wait` for the lock.
pub fn stop_grower_in(dir: &Path, name: &MappingName, wait: std::time::Duration) -> Result<()> {
    let Some(state) = GrowState::load_in(dir, name)? else {
        return Ok(());
    };
    let lock = state_path_in(dir, name, "lock");
    if let (Some(pid), Some(id)) = (state.grower_pid, file_id(&lock)?) {
        terminate_if_holding(pid, id)
            .map_err(|e| state_io("signal the grower of", &name.mapper_path())(e))?;
    }
    // Released when the grower's process is gone.
    let started = Instant::now();
    loop {
        if GrowLock::try_take_in(dir, name)?.is_some() {
            return Ok(());
        }
        if started.elapsed() >= wait {
            let path = state_path_in(dir, name, "lock");
            return Err(state_io("wait for the grower's lock", &path)(
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "another process still holds it after {} s (recorded grower pid: {}); \
                     nothing was removed",
                        wait.as_secs(),
                        state
                            .grower_pid
                            .map_or_else(|| "none".to_owned(), |p| p.to_string())
                    ),
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// SIGTERM to `pid` if it has the file `id` open. A process that is gone is not an error.
fn terminate_if_holding(pid: i32, id: FileId) -> io::Result<()> {
    use std::os::fd::{FromRawFd, OwnedFd};
    if pid <= 0 {
        return Ok(());
    }
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1; no
    // memory is passed.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(()),
            // A kernel without pidfds (before 5.3): check, then signal by pid.
            Some(libc::ENOSYS) => {
                if process_has_open(pid, id) {
                    match nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGTERM,
                    ) {
                        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                        Err(e) => Err(e.into()),
                    }
                } else {
                    Ok(())
                }
            }
            _ => Err(e),
        };
    }
    let Ok(raw) = i32::try_from(raw) else {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    };
    // SAFETY: `raw` is a descriptor pidfd_open just returned; nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    if !process_has_open(pid, id) {
        return Ok(());
    }
    // SAFETY: pidfd_send_signal(2) with a live pidfd, a signal number, no siginfo (null) and
    // no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGTERM,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
