//! The whole job: `encrypt` a source device into a ready ext4 mapping, and `cleanup` it again.
//!
//! # Steps of [`encrypt`]
//! 1. **Probe** the source (`BlockDevices::probe_source`): wait for it to appear, check it is
//!    a free block device of usable size, and take a BSD lock on it for the whole run (a second
//!    run on the same device fails as busy; udev does not probe locked devices).
//! 2. **Check names**: `<name>` and `<name>_dif` must be free before anything is written.
//! 3. **Format** the LUKS2 header with a fresh in-memory key (`luks`).
//! 4. **Activate** `<name>_dif` and `<name>` (`dm::activate`); the key is dropped
//!    right after: the kernel holds it from now on.
//! 5. **Temp dir**: a private directory (mode 0700) under `--temp-dir`, `$TMPDIR` or `/tmp`,
//!    probed for hole support (`sparse::check_holes_supported`).
//! 6. **Image**: ext4 for the mapping's exact size, built in the temp dir (`format`).
//! 7. **Zero** every range of the plan on the mapping, then 8. **copy** the image's data
//!    extents on top (`sparse`); both fsync. Zeroing first matters: the plan's ranges
//!    may overlap blocks the image holds as data, and the later write must win.
//! 9. Remove the temp dir, optionally mount, and return the report.
//!
//! # Failure
//! Every step that creates something registers its undo (the mapping, the temp dir, the
//! mount). On failure the undos run in reverse, and the error names the failed step
//! ([`Error::Pipeline`]); if an undo fails as well, [`Error::Rollback`] lists what is left.
//! Nothing before step 3 writes to the source, so early refusals leave it untouched.
//!
//! # Seams
//! The LUKS formatter, device-mapper and block-device access are traits
//! (`luks::LuksFormatter`, `dm::DeviceMapper`, `BlockDevices`), so `encrypt_with` runs
//! unprivileged in unit tests over mocks and regular files (with the `test-support` feature,
//! the project's integration tests do the same).
//!
//! # Files
//! `pipeline/run.rs` holds the steps and their undo log, `pipeline/write.rs` the zero-then-copy
//! of steps 7 and 8, `pipeline/report.rs` what a run reports, `pipeline/devices.rs` the
//! block-device seam, `pipeline/cleanup.rs` the removal, `pipeline/mount.rs` mounting.

mod cleanup;
mod devices;
mod grow;
pub(crate) mod margin;
mod mount;
mod report;
mod run;
#[cfg(test)]
mod tests;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::dm::{DeviceMapper, RealDm};
use crate::error::{Error, Result};
use crate::format::FormatOptions;
use crate::luks::{Libcryptsetup, LuksFormatter};
use crate::name::MappingName;
use crate::step::Step;

#[cfg(any(test, feature = "test-support"))]
pub use cleanup::cleanup_with;
pub use cleanup::{cleanup, CleanupOptions, CleanupOutcome};
#[cfg(any(test, feature = "test-support"))]
pub use devices::SourceInfo;
pub use devices::{BlockDevices, SystemDevices};
pub use grow::{
    grow, grow_holding, grow_mounted, growth_status, is_growing, stop_grower, GrowLock,
    GrowOptions, GrowReport, GrowState, GrowthStatus,
};
pub use mount::MountRequest;
pub use report::{copy_file_extents, CopyReport, EncryptReport, StepTime, WrittenBytes};
use run::run_encrypt;

/// Receives the progress of the long steps: the step, bytes done so far, bytes in all.
///
/// Called from the thread that runs [`encrypt`], after every chunk written (1 MiB or one
/// zeroed range); keep it quick.
pub type ProgressFn = Arc<dyn Fn(Step, u64, u64) + Send + Sync>;

/// Options of [`encrypt`]. `Default` gives what the command line does without options.
///
/// ```
/// use scratchcrypt::{EncryptOptions, MountRequest};
///
/// let options = EncryptOptions {
///     mount: Some(MountRequest {
///         dir: "/mnt/scratch".into(),
///         options: Some("noatime".to_owned()),
///     }),
///     ..EncryptOptions::default()
/// };
/// assert!(options.tmpfs_fallback);
/// assert_eq!(options.wait_timeout.as_secs(), 5);
/// ```
#[derive(Clone)]
pub struct EncryptOptions {
    /// How long to wait for the source to appear.
    pub wait_timeout: Duration,
    /// Parent of the private temp dir (default: `$TMPDIR`, else `/tmp`).
    pub temp_dir: Option<PathBuf>,
    /// When the temp dir's file system cannot hold the image (it does not report holes, as
    /// ramfs, or limits the file size), mount a private tmpfs on the private dir instead of
    /// failing. The command line turns this off when `--temp-dir` is given.
    pub tmpfs_fallback: bool,
    /// File-system options.
    pub format: FormatOptions,
    /// Called as the long steps (zeroing, copying) advance; `None` reports nothing.
    pub progress: Option<ProgressFn>,
    /// Mount the result when done.
    pub mount: Option<MountRequest>,
    /// Checked between steps and between the chunks of the long writes: once cancelled, the
    /// run stops at the next such point, rolls back what it created and fails with
    /// [`Error::Interrupted`]. The command-line tool cancels it from its SIGINT, SIGTERM and
    /// SIGHUP handlers.
    pub cancel: CancelToken,
    /// Write over a source that holds a file system, partition table, RAID or LVM member, swap
    /// or a LUKS volume of someone else's. Without it such a source is refused before anything
    /// is written (a previous scratchcrypt volume is always re-made).
    pub force: bool,
    /// With a fast start (`format.initial_bytes`) where the file system cannot grow online
    /// (no CAP_SYS_RESOURCE): format the full size at once instead of refusing. Without it such
    /// a run is refused before anything is written, rather than return a disk that stays small.
    pub full_format_if_no_growth: bool,
}

impl fmt::Debug for EncryptOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptOptions")
            .field("wait_timeout", &self.wait_timeout)
            .field("temp_dir", &self.temp_dir)
            .field("tmpfs_fallback", &self.tmpfs_fallback)
            .field("format", &self.format)
            .field("progress", &self.progress.as_ref().map(|_| "<callback>"))
            .field("mount", &self.mount)
            .field("cancel", &self.cancel)
            .field("force", &self.force)
            .field("full_format_if_no_growth", &self.full_format_if_no_growth)
            .finish()
    }
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            wait_timeout: Duration::from_secs(5),
            temp_dir: None,
            tmpfs_fallback: true,
            format: FormatOptions::default(),
            progress: None,
            mount: None,
            cancel: CancelToken::new(),
            force: false,
            full_format_if_no_growth: false,
        }
    }
}

/// The real system behind the seams: libcryptsetup, device-mapper ioctls, block devices.
pub struct System<'a> {
    /// Formats the LUKS2 header.
    pub luks: &'a dyn LuksFormatter,
    /// Talks to device-mapper.
    pub dm: &'a dyn DeviceMapper,
    /// Opens and checks block devices, mounts.
    pub devices: &'a dyn BlockDevices,
    /// Test hook, `None` in production: rewrites the ranges to zero on the mapping, so that
    /// mutation controls can drop some of them and check that the tests notice. Called twice
    /// per run with the image path: [`ZeroStage::Plan`] with the plan's ranges (before the
    /// margins are derived from them), then [`ZeroStage::Device`] with the final list.
    pub zero_filter: Option<&'a ZeroFilter<'a>>,
}

/// The signature of [`System::zero_filter`]: `(stage, image path, ranges) -> ranges`.
pub type ZeroFilter<'f> =
    dyn Fn(ZeroStage, &Path, Vec<std::ops::Range<u64>>) -> Vec<std::ops::Range<u64>> + 'f;

/// When [`System::zero_filter`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroStage {
    /// The plan's zero ranges, before the read-ahead margins are added.
    Plan,
    /// The list that is written: plan, probe blocks and margins, merged.
    Device,
}

/// Encrypt `source` as the mapping `name` and return `/dev/mapper/<name>`.
///
/// The simple entry point of the library; [`encrypt`] returns the full report. Needs root and
/// a kernel with device-mapper, `dm-crypt` and `dm-integrity`; everything on `source` is lost.
///
/// ```no_run
/// use std::path::Path;
/// use scratchcrypt::{encrypt_device, EncryptOptions};
///
/// let mapper = encrypt_device(Path::new("/dev/vdb"), "scratch", &EncryptOptions::default())?;
/// assert_eq!(mapper, Path::new("/dev/mapper/scratch"));
/// # Ok::<(), scratchcrypt::Error>(())
/// ```
pub fn encrypt_device(source: &Path, name: &str, options: &EncryptOptions) -> Result<PathBuf> {
    let name = MappingName::new(name)?;
    Ok(encrypt(source, &name, options)?.mapper_path)
}

/// Remove the mapping `name` (the crypt device, then the integrity device under it).
///
/// A name that does not exist is not an error; a mapping that is in use is refused and left
/// whole.
///
/// ```no_run
/// scratchcrypt::cleanup_crypt_device("scratch")?;
/// # Ok::<(), scratchcrypt::Error>(())
/// ```
pub fn cleanup_crypt_device(name: &str) -> Result<()> {
    let name = MappingName::new(name)?;
    cleanup(&name, &CleanupOptions::default()).map(|_| ())
}

/// Encrypt `source` as the mapping `name` and return the full report: per-step times, bytes
/// written by category, peak memory (see [`EncryptReport`]).
///
/// ```no_run
/// use std::path::Path;
/// use scratchcrypt::{encrypt, EncryptOptions, MappingName};
///
/// let name = MappingName::new("scratch")?;
/// let report = encrypt(Path::new("/dev/vdb"), &name, &EncryptOptions::default())?;
/// println!("{} ready in {:.2} s", report.mapper_path.display(), report.total_seconds);
/// # Ok::<(), scratchcrypt::Error>(())
/// ```
pub fn encrypt(
    source: &Path,
    name: &MappingName,
    options: &EncryptOptions,
) -> Result<EncryptReport> {
    let devices = SystemDevices;
    // Check the source before device-mapper: a typo in the path deserves that answer, not
    // "this kernel has no device-mapper".
    let started = Instant::now();
    let info = devices
        .probe_source(source, options.wait_timeout)
        .map_err(|e| at(Step::ProbeSource, source, e))?;
    let dm = RealDm::new().map_err(|e| at(Step::CheckNames, source, e.into()))?;
    let system = System {
        luks: &Libcryptsetup,
        dm: &dm,
        devices: &devices,
        zero_filter: None,
    };
    run_encrypt(&system, source, info, name, options, started)
}

/// Run the whole job over the given seams (mocks in tests).
#[cfg(any(test, feature = "test-support"))]
pub fn encrypt_with(
    system: &System<'_>,
    source: &Path,
    name: &MappingName,
    options: &EncryptOptions,
) -> Result<EncryptReport> {
    let started = Instant::now();
    let info = system
        .devices
        .probe_source(source, options.wait_timeout)
        .map_err(|e| at(Step::ProbeSource, source, e))?;
    run_encrypt(system, source, info, name, options, started)
}

/// Wrap `err` as a failure of `step` on `device`.
fn at(step: Step, device: &Path, err: Error) -> Error {
    Error::Pipeline {
        step,
        device: device.to_path_buf(),
        source: Box::new(err),
    }
}
