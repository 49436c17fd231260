//! The ext4 stress that exposes blocks a recipe forgot to write, and `e2fsck -fn` after it.
//!
//! Why this shape: ext4 reads an inode-table block when it creates an inode whose block
//! neighbours are already in use and the block is not cached, and reads bitmaps of groups as it
//! allocates in them. Parallel writers spread new directories over all block groups (Orlov
//! allocator), and dropping the caches between two waves forces the second wave to read back
//! bitmaps and inode-table blocks from the device instead of finding them in memory. `e2fsck -fn`
//! then reads every bitmap and the used part of every inode table. This is the sequence that
//! broke the Go original on a real unwiped dm-integrity device (see `/work/shared/FACTS.md`).
//!
//! Those reads of unwritten inode-table blocks come from a race (a writer needs the block of an
//! inode whose neighbour another writer has just allocated, before either has it in memory), so
//! a run can miss them: measured here, 1 run in 8 of the original's recipe saw none. The crash
//! makes detection certain: the journal replay on the next mount reads the log up to the first
//! block that does not continue it, a block of the journal that was never written when the
//! recipe skipped the journal's holes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::strict_device::{RefusedRead, StrictDevice};

/// How hard to push.
#[derive(Debug, Clone)]
pub struct StressConfig {
    /// Parallel writer threads per wave.
    pub writers: usize,
    /// Directories the files are spread over (created by the writers in wave 1).
    pub dirs: usize,
    /// Files each writer creates per wave. The default, 4 × 1100 × 2 files plus the
    /// directories, is more than the 8192 inodes of a block group of a 512 MiB mkfs.ext4 file
    /// system (inode ratio 16384, 128 MiB groups), so the second group, which starts
    /// `INODE_UNINIT` and `BLOCK_UNINIT`, gets used too.
    pub files_per_writer: usize,
    /// Extra ext4 mount options (comma-separated, may be empty).
    pub mount_options: String,
}

impl Default for StressConfig {
    fn default() -> Self {
        StressConfig {
            writers: 4,
            dirs: 128,
            files_per_writer: 1100,
            mount_options: String::new(),
        }
    }
}

impl StressConfig {
    /// How many files a clean run creates and reads back: two waves plus the crash batch.
    pub fn expected_files(&self) -> usize {
        self.writers * (2 * self.files_per_writer + CRASH_FILES)
    }
}

/// What happened, phase by phase.
#[derive(Debug, Default)]
pub struct StressReport {
    /// Refused accesses, each with the phase it happened in.
    pub refused: Vec<(&'static str, RefusedRead)>,
    /// The mount failed (nothing else ran).
    pub mount_error: Option<String>,
    /// Files whose creation succeeded.
    pub files_written: usize,
    /// Files read back with the right contents.
    pub files_verified: usize,
    /// Number of failed file-system operations during the stress.
    pub io_error_count: usize,
    /// The first few of those failures.
    pub io_errors: Vec<String>,
    /// Unmounting (or the simulated crash) failed.
    pub umount_error: Option<String>,
    /// The mount after the crash, which replays the journal, failed.
    pub recovery_error: Option<String>,
    /// `e2fsck -fn` exit status (-1 if it could not be run or was killed).
    pub fsck_status: i32,
    /// Its standard output and error.
    pub fsck_output: String,
    /// Block groups holding at least one inode after the stress (from `dumpe2fs` on the device,
    /// read after `e2fsck`; 0 if it failed).
    pub groups_with_inodes: usize,
    /// Wall time of each phase.
    pub durations: Vec<(&'static str, Duration)>,
}

impl StressReport {
    /// Refused accesses of one phase.
    pub fn refused_in(&self, phase: &str) -> usize {
        self.refused.iter().filter(|(p, _)| *p == phase).count()
    }

    /// Whether the file system came through whole: no refused access, no I/O error, every
    /// file verified, a clean `e2fsck -fn`.
    pub fn is_clean(&self, expected_files: usize) -> bool {
        self.refused.is_empty()
            && self.mount_error.is_none()
            && self.umount_error.is_none()
            && self.recovery_error.is_none()
            && self.io_error_count == 0
            && self.files_verified == expected_files
            && self.fsck_status == 0
    }

    /// Refused accesses per phase, e.g. `wave2: 3, e2fsck: 1`.
    pub fn refused_summary(&self) -> String {
        let mut per_phase: BTreeMap<&str, usize> = BTreeMap::new();
        for (phase, _) in &self.refused {
            *per_phase.entry(phase).or_default() += 1;
        }
        per_phase
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Mount `dev` (explicitly as ext4: no probing), run two waves of parallel file creation with
/// `sync` + `drop_caches` before the second wave and before the read-back, create a last batch
/// and crash (`EXT4_IOC_SHUTDOWN` without log flush), mount again (journal replay) and read the
/// batch back, unmount, run `e2fsck -fn`, count the used block groups with `dumpe2fs`, and
/// report every refused access of the strict device by phase: `before` (logged before this
/// call, while the recipe wrote the device), `mount`, `wave1`, `wave2`, `verify`, `crash`,
/// `recovery`, `e2fsck`, `dumpe2fs`.
pub fn run_stress(dev: &StrictDevice, config: &StressConfig) -> StressReport {
    let mut report = StressReport::default();
    // Refusals logged before the stress (while the recipe wrote the device) count too.
    report
        .refused
        .extend(dev.refused_reads().into_iter().map(|r| ("before", r)));
    let mut seen = report.refused.len();
    let start = Instant::now();
    let mut mark = |report: &mut StressReport, phase: &'static str, since: Instant| {
        let all = dev.refused_reads();
        report
            .refused
            .extend(all[seen.min(all.len())..].iter().map(|r| (phase, *r)));
        seen = all.len();
        report.durations.push((phase, since.elapsed()));
    };

    let dir = match tempfile::Builder::new().prefix("strict-mnt-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            report.mount_error = Some(format!("temp dir: {e}"));
            return report;
        }
    };
    let t = Instant::now();
    drop_caches();
    let mount = match Ext4Mount::new(dev.device_path(), dir.path(), &config.mount_options) {
        Ok(m) => m,
        Err(e) => {
            report.mount_error = Some(e);
            mark(&mut report, "mount", t);
            return report;
        }
    };
    mark(&mut report, "mount", t);

    let errors = ErrorLog::default();
    let t = Instant::now();
    let written1 = wave(dir.path(), config, 1, &errors);
    mark(&mut report, "wave1", t);

    let t = Instant::now();
    nix::unistd::sync();
    drop_caches();
    let written2 = wave(dir.path(), config, 2, &errors);
    mark(&mut report, "wave2", t);
    report.files_written = written1 + written2;

    let t = Instant::now();
    nix::unistd::sync();
    drop_caches();
    report.files_verified = verify(dir.path(), config, &errors);
    mark(&mut report, "verify", t);

    // Crash: a last batch of files is committed to the journal, then the file system is shut
    // down without flushing the log or checkpointing, as a power cut would leave it.
    let t = Instant::now();
    let crash_config = StressConfig {
        files_per_writer: CRASH_FILES,
        ..config.clone()
    };
    let crash_files = wave(dir.path(), &crash_config, 3, &errors);
    nix::unistd::sync();
    if let Err(e) = shutdown(dir.path()) {
        report.umount_error = Some(e);
    }
    if let Err(e) = mount.unmount() {
        report.umount_error.get_or_insert(e);
    }
    mark(&mut report, "crash", t);

    // Recovery: mounting again replays the journal, reading it up to the first block that is not
    // part of the log: never written, on a device that skipped the journal.
    let t = Instant::now();
    drop_caches();
    match Ext4Mount::new(dev.device_path(), dir.path(), &config.mount_options) {
        Ok(mount) => {
            report.files_verified += verify_wave(dir.path(), &crash_config, 3, &errors);
            if let Err(e) = mount.unmount() {
                report.umount_error.get_or_insert(e);
            }
        }
        Err(e) => report.recovery_error = Some(e),
    }
    report.files_written += crash_files;
    mark(&mut report, "recovery", t);
    let (count, first) = errors.take();
    report.io_error_count = count;
    report.io_errors = first;

    let t = Instant::now();
    match Command::new("e2fsck")
        .arg("-fn")
        .arg(dev.device_path())
        .output()
    {
        Ok(out) => {
            report.fsck_status = out.status.code().unwrap_or(-1);
            report.fsck_output = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => {
            report.fsck_status = -1;
            report.fsck_output = format!("cannot run e2fsck: {e}");
        }
    }
    mark(&mut report, "e2fsck", t);

    let t = Instant::now();
    report.groups_with_inodes = groups_with_inodes(dev.device_path());
    mark(&mut report, "dumpe2fs", t);
    report.durations.push(("total", start.elapsed()));
    report
}

/// Count the block groups with used inodes from `dumpe2fs` output ("Inodes per group: N" and
/// per group "... M free inodes, ...").
fn groups_with_inodes(dev: &Path) -> usize {
    let Ok(out) = Command::new("dumpe2fs").arg(dev).output() else {
        return 0;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let per_group: Option<usize> = text
        .lines()
        .find_map(|l| l.strip_prefix("Inodes per group:"))
        .and_then(|v| v.trim().parse().ok());
    let Some(per_group) = per_group else {
        return 0;
    };
    text.lines()
        .filter_map(|l| {
            let (before, _) = l.split_once(" free inodes")?;
            before.rsplit(", ").next()?.trim().parse::<usize>().ok()
        })
        .filter(|&free| free < per_group)
        .count()
}

/// Failures seen by the writer threads: a count and the first few messages.
#[derive(Default)]
struct ErrorLog {
    count: AtomicUsize,
    first: Mutex<Vec<String>>,
}

impl ErrorLog {
    fn push(&self, msg: String) {
        if self.count.fetch_add(1, Ordering::Relaxed) < 20 {
            self.first
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(msg);
        }
    }

    fn take(&self) -> (usize, Vec<String>) {
        let first = std::mem::take(&mut *self.first.lock().unwrap_or_else(|p| p.into_inner()));
        (self.count.load(Ordering::Relaxed), first)
    }
}

/// Path and contents of file `index` of writer `writer` in wave `wave`: 100 to 6000 bytes,
/// derived from the name so the read-back can check them.
fn file_spec(
    root: &Path,
    config: &StressConfig,
    wave: usize,
    writer: usize,
    index: usize,
) -> (PathBuf, Vec<u8>) {
    let n = (wave * config.writers + writer) * config.files_per_writer + index;
    let path = root
        .join(format!("d{:03}", n % config.dirs))
        .join(format!("w{wave}-t{writer}-f{index}"));
    let len = 100 + (n * 2654435761) % 5900;
    let content = (0..len).map(|i| (i.wrapping_mul(31) ^ n) as u8).collect();
    (path, content)
}

/// One wave: `writers` threads each create `files_per_writer` files; returns how many were
/// created. Wave 1 also creates the directories (writer `t` creates every `t`-th one).
fn wave(root: &Path, config: &StressConfig, wave: usize, errors: &ErrorLog) -> usize {
    let created = AtomicUsize::new(0);
    let dirs_made = std::sync::Barrier::new(config.writers);
    std::thread::scope(|s| {
        for writer in 0..config.writers {
            let (created, dirs_made) = (&created, &dirs_made);
            s.spawn(move || {
                if wave == 1 {
                    for d in (writer..config.dirs).step_by(config.writers) {
                        let path = root.join(format!("d{d:03}"));
                        if let Err(e) = std::fs::create_dir(&path) {
                            errors.push(format!("mkdir {}: {e}", path.display()));
                        }
                    }
                    dirs_made.wait();
                }
                for index in 0..config.files_per_writer {
                    let (path, content) = file_spec(root, config, wave, writer, index);
                    match std::fs::write(&path, &content) {
                        Ok(()) => {
                            created.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push(format!("write {}: {e}", path.display())),
                    }
                }
            });
        }
    });
    created.into_inner()
}

/// Read back every file of both waves (in parallel); returns how many matched.
fn verify(root: &Path, config: &StressConfig, errors: &ErrorLog) -> usize {
    verify_wave(root, config, 1, errors) + verify_wave(root, config, 2, errors)
}

/// Read back every file of one wave (in parallel); returns how many matched.
fn verify_wave(root: &Path, config: &StressConfig, wave: usize, errors: &ErrorLog) -> usize {
    let verified = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for writer in 0..config.writers {
            let verified = &verified;
            s.spawn(move || {
                for index in 0..config.files_per_writer {
                    let (path, content) = file_spec(root, config, wave, writer, index);
                    match std::fs::read(&path) {
                        Ok(got) if got == content => {
                            verified.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => errors.push(format!("read {}: wrong contents", path.display())),
                        Err(e) => errors.push(format!("read {}: {e}", path.display())),
                    }
                }
            });
        }
    });
    verified.into_inner()
}

/// Files each writer creates just before the simulated crash.
pub const CRASH_FILES: usize = 25;

/// `EXT4_IOC_SHUTDOWN` of `fs/ext4/ext4.h`: `_IOR('X', 125, __u32)`.
mod sys {
    nix::ioctl_read!(ext4_ioc_shutdown, b'X', 125, u32);
}

/// `EXT4_GOING_FLAGS_NOLOGFLUSH` of `fs/ext4/ext4.h`: shut down without flushing the log.
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;

/// Shut the ext4 file system mounted at `root` down as a crash would: nothing more reaches the
/// device, the journal keeps its committed but unchecked transactions.
fn shutdown(root: &Path) -> Result<(), String> {
    let dir = std::fs::File::open(root).map_err(|e| format!("open {}: {e}", root.display()))?;
    let mut flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
    // SAFETY: EXT4_IOC_SHUTDOWN reads one u32 of flags through the pointer, which points to a
    // live local; the fd is an open directory of the ext4 file system.
    unsafe { sys::ext4_ioc_shutdown(std::os::fd::AsRawFd::as_raw_fd(&dir), &mut flags) }
        .map(|_| ())
        .map_err(|e| format!("EXT4_IOC_SHUTDOWN {}: {e}", root.display()))
}

/// Write back dirty data, then drop the page cache, dentries and inodes, so that the next
/// access to metadata goes to the device. Panics when the caches cannot be dropped: the stress
/// would silently stop reading back from the device and pass recipes it should fail.
pub fn drop_caches() {
    nix::unistd::sync();
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3") {
        panic!("drop_caches: cannot write /proc/sys/vm/drop_caches: {e}; the stress would not read back from the device");
    }
}

/// An ext4 mount that is unmounted when dropped (lazily if still busy).
pub struct Ext4Mount {
    target: Option<PathBuf>,
}

impl Ext4Mount {
    /// Mount `dev` on `target` as ext4 with `options` (never probe the type: probing reads).
    pub fn new(dev: &Path, target: &Path, options: &str) -> Result<Ext4Mount, String> {
        let data = (!options.is_empty()).then_some(options);
        nix::mount::mount(
            Some(dev),
            target,
            Some("ext4"),
            nix::mount::MsFlags::empty(),
            data,
        )
        .map_err(|e| format!("mount -t ext4 {} {}: {e}", dev.display(), target.display()))?;
        Ok(Ext4Mount {
            target: Some(target.to_path_buf()),
        })
    }

    /// Unmount now and report failure.
    pub fn unmount(mut self) -> Result<(), String> {
        match self.target.take() {
            Some(t) => nix::mount::umount(&t).map_err(|e| {
                let _ = nix::mount::umount2(&t, nix::mount::MntFlags::MNT_DETACH);
                format!("umount {}: {e}", t.display())
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Ext4Mount {
    fn drop(&mut self) {
        if let Some(t) = self.target.take() {
            if nix::mount::umount(&t).is_err() {
                let _ = nix::mount::umount2(&t, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}
