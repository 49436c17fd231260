//! The whole job: `encrypt` a source device into a ready ext4 mapping, and `cleanup` it again.
//!
//! # Steps of [`encrypt`]
//! 1. **Probe** the source ([`BlockDevices::probe_source`]): wait for it to appear, check it is
//!    a free block device of usable size, and take a BSD lock on it for the whole run (a second
//!    run on the same device fails as busy; udev does not probe locked devices).
//! 2. **Check names**: `<name>` and `<name>_dif` must be free before anything is written.
//! 3. **Format** the LUKS2 header with a fresh in-memory key ([`crate::luks`]).
//! 4. **Activate** `<name>_dif` and `<name>` ([`crate::dm::activate`]); the key is dropped
//!    right after: the kernel holds it from now on.
//! 5. **Temp dir**: a private directory (mode 0700) under `--temp-dir`, `$TMPDIR` or `/tmp`,
//!    probed for hole support ([`crate::sparse::check_holes_supported`]).
//! 6. **Image**: ext4 for the mapping's exact size, built in the temp dir ([`crate::format`]).
//! 7. **Zero** every range of the plan on the mapping, then 8. **copy** the image's data
//!    extents on top ([`crate::sparse`]); both fsync. Zeroing first matters: the plan's ranges
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
//! ([`crate::luks::LuksFormatter`], [`crate::dm::DeviceMapper`], [`BlockDevices`]), so
//! [`encrypt_with`] runs unprivileged in unit tests over mocks and regular files.

mod cleanup;
mod devices;
pub mod margin;
mod mount;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dm::{self, Activation, DeviceMapper, RealDm};
use crate::error::{Error, ErrorClass, Result};
use crate::format::{self, FormatOptions};
use crate::luks::{Libcryptsetup, LuksFormatter, VolumeKey};
use crate::name::MappingName;
use crate::progress::Progress;
use crate::sparse;

pub use cleanup::{cleanup, cleanup_with, remove_stale_temp_dirs, CleanupOptions, CleanupOutcome};
pub use devices::{BlockDevices, SourceInfo, SystemDevices};
pub use mount::{find_mounts, MountRequest};

/// The steps of `encrypt` and `cleanup`, named in errors and in the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// Waiting for the source and checking it.
    ProbeSource,
    /// Checking that the mapping names are free.
    CheckNames,
    /// Drawing the volume key.
    GenerateKey,
    /// Writing the LUKS2 header.
    FormatHeader,
    /// Creating the device-mapper devices.
    Activate,
    /// Opening the new mapping.
    OpenMapping,
    /// Creating and probing the private temp dir.
    TempDir,
    /// Building the ext4 image.
    BuildImage,
    /// Zeroing the plan's ranges on the mapping.
    ZeroRanges,
    /// Copying the image onto the mapping.
    CopyImage,
    /// Removing the temp dir.
    RemoveTempDir,
    /// Mounting the new file system.
    Mount,
    /// Unmounting before removal.
    Unmount,
    /// Removing the device-mapper devices.
    RemoveMapping,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::ProbeSource => "check the source device",
            Step::CheckNames => "check the mapping names",
            Step::GenerateKey => "generate the volume key",
            Step::FormatHeader => "format the LUKS2 header",
            Step::Activate => "activate the mapping",
            Step::OpenMapping => "open the mapping",
            Step::TempDir => "prepare the temp dir",
            Step::BuildImage => "build the ext4 image",
            Step::ZeroRanges => "zero the metadata ranges",
            Step::CopyImage => "copy the image",
            Step::RemoveTempDir => "remove the temp dir",
            Step::Mount => "mount the file system",
            Step::Unmount => "unmount the file system",
            Step::RemoveMapping => "remove the mapping",
        })
    }
}

/// Options of [`encrypt`]. `Default` gives what the command line does without options.
#[derive(Debug, Clone)]
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
    /// Show live progress on stderr when it is a terminal.
    pub progress: bool,
    /// Mount the result when done.
    pub mount: Option<MountRequest>,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            wait_timeout: Duration::from_secs(5),
            temp_dir: None,
            tmpfs_fallback: true,
            format: FormatOptions::default(),
            progress: false,
            mount: None,
        }
    }
}

/// How long one step took.
#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    /// The step.
    pub step: Step,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Bytes written to the source device, by what they are.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WrittenBytes {
    /// The LUKS2 header area up to the data offset (an upper bound: libcryptsetup writes the
    /// two metadata copies and clears the keyslot area).
    pub luks_header_area: u64,
    /// The dm-integrity superblock and journal, which the kernel writes during format (from
    /// the integrity superblock: 4 KiB plus `journal_sections` sections).
    pub integrity_metadata: u64,
    /// Bytes zeroed through the mapping: the plan's ranges (inode tables, bitmaps, journal)
    /// plus the read-ahead margins and the tail ([`margin`]).
    pub zeroed: u64,
    /// The part of `zeroed` that is read-ahead margin and tail rather than file-system
    /// metadata.
    pub read_ahead_margins: u64,
    /// ext4 metadata copied from the image, through the mapping.
    pub ext4_metadata: u64,
}

/// What [`encrypt`] did.
#[derive(Debug, Clone, Serialize)]
pub struct EncryptReport {
    /// `/dev/mapper/<name>`.
    pub mapper_path: PathBuf,
    /// The mapping name.
    pub name: String,
    /// The source device.
    pub source: PathBuf,
    /// Size of the source in bytes.
    pub source_bytes: u64,
    /// Size of the mapping (the file system) in bytes.
    pub mapping_bytes: u64,
    /// Whether the key reached the table through the kernel keyring (else as hex).
    pub key_in_keyring: bool,
    /// Per-step wall-clock times, in order.
    pub steps: Vec<StepTime>,
    /// Seconds from start to a ready file system.
    pub total_seconds: f64,
    /// Bytes written to the device, by category.
    pub written: WrittenBytes,
    /// Bytes of data in the temp image.
    pub image_data_bytes: u64,
    /// Number of zeroed ranges.
    pub zero_ranges: usize,
    /// File-system type of the temp dir (from the hole probe).
    pub temp_fs: String,
    /// Peak resident memory of this process, in bytes.
    pub peak_rss_bytes: u64,
    /// Where the file system was mounted, if asked.
    pub mounted_at: Option<PathBuf>,
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
    /// The list that is written: plan, margins and tail, merged.
    Device,
}

/// Encrypt `source` as the mapping `name` and return `/dev/mapper/<name>`.
///
/// The simple entry point of the library; [`encrypt`] returns the full report.
pub fn encrypt_device(source: &Path, name: &str, options: &EncryptOptions) -> Result<PathBuf> {
    let name = MappingName::new(name)?;
    Ok(encrypt(source, &name, options)?.mapper_path)
}

/// Remove the mapping `name` (the crypt device, then the integrity device under it).
///
/// A name that does not exist is not an error; a mapping that is in use is refused and left
/// whole.
pub fn cleanup_crypt_device(name: &str) -> Result<()> {
    let name = MappingName::new(name)?;
    cleanup(&name, &CleanupOptions::default()).map(|_| ())
}

/// [`encrypt_with`] on the real system.
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

/// Run the whole job over the given seams.
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

/// Something to undo if a later step fails.
enum Undo {
    Mapping,
    TempDir(PathBuf),
    TempMount(PathBuf),
    Mount(PathBuf),
}

/// The state of one `encrypt` run.
struct Run<'s, 'a> {
    system: &'s System<'a>,
    source: &'s Path,
    name: &'s MappingName,
    undo: Vec<Undo>,
    steps: Vec<StepTime>,
    step_started: Instant,
}

impl Run<'_, '_> {
    /// Record the time of `step` and start timing the next one.
    fn done(&mut self, step: Step) {
        let now = Instant::now();
        self.steps.push(StepTime {
            step,
            seconds: now.duration_since(self.step_started).as_secs_f64(),
        });
        self.step_started = now;
    }

    /// Undo everything in reverse; return `cause`, or a rollback error if an undo failed.
    fn fail(&mut self, cause: Error) -> Error {
        let mut failures = Vec::new();
        while let Some(undo) = self.undo.pop() {
            let result = match undo {
                Undo::Mount(dir) | Undo::TempMount(dir) => self
                    .system
                    .devices
                    .unmount(&dir)
                    .map_err(|e| at(Step::Unmount, &dir, e)),
                Undo::TempDir(dir) => std::fs::remove_dir_all(&dir).map_err(|source| {
                    at(
                        Step::RemoveTempDir,
                        &dir,
                        Error::Io {
                            what: "remove",
                            path: dir.clone(),
                            source,
                        },
                    )
                }),
                Undo::Mapping => dm::remove(self.system.dm, self.name)
                    .map(|_| ())
                    .map_err(|e| at(Step::RemoveMapping, &self.name.mapper_path(), e.into())),
            };
            if let Err(e) = result {
                failures.push(e);
            }
        }
        if failures.is_empty() {
            cause
        } else {
            Error::Rollback {
                cause: Box::new(cause),
                rollback: failures,
            }
        }
    }
}

fn run_encrypt(
    system: &System<'_>,
    source: &Path,
    info: SourceInfo,
    name: &MappingName,
    options: &EncryptOptions,
    started: Instant,
) -> Result<EncryptReport> {
    let mut run = Run {
        system,
        source,
        name,
        undo: Vec::new(),
        steps: Vec::new(),
        step_started: started,
    };
    run.done(Step::ProbeSource);
    match encrypt_steps(&mut run, &info, options, started) {
        Ok(report) => Ok(report),
        Err(e) => Err(run.fail(e)),
    }
    // `info` (and with it the lock on the source) is released here, after any rollback.
}

fn encrypt_steps(
    run: &mut Run<'_, '_>,
    info: &SourceInfo,
    options: &EncryptOptions,
    started: Instant,
) -> Result<EncryptReport> {
    let (system, source, name) = (run.system, run.source, run.name);

    dm::ensure_names_free(system.dm, name).map_err(|e| at(Step::CheckNames, source, e.into()))?;
    run.done(Step::CheckNames);

    let key = VolumeKey::generate().map_err(|e| at(Step::GenerateKey, source, e.into()))?;
    run.done(Step::GenerateKey);

    let params = system
        .luks
        .format(source, &key)
        .map_err(|e| at(Step::FormatHeader, source, e.into()))?;
    run.done(Step::FormatHeader);

    // Registered before the call: activation rolls itself back on failure, and removing a
    // mapping that does not exist is a no-op, so this undo is always safe.
    run.undo.push(Undo::Mapping);
    let activation = dm::activate(system.dm, source, &params, &key, name)
        .map_err(|e| at(Step::Activate, source, e.into()))?;
    drop(key);
    run.done(Step::Activate);

    let mapping = system
        .devices
        .open_mapping(&activation)
        .map_err(|e| at(Step::OpenMapping, &activation.mapper_path, e))?;
    run.done(Step::OpenMapping);

    let (temp, temp_fs) = prepare_temp_dir(run, options, activation.size_bytes)?;

    let image_path = temp.join("image.ext4");
    let plan = format::build_image(&image_path, activation.size_bytes, &options.format)
        .map_err(|e| at(Step::BuildImage, source, e.into()))?;
    run.done(Step::BuildImage);

    let written = write_image(run, &mapping, &activation, &image_path, &plan, options)?;

    if run.undo.iter().any(|u| matches!(u, Undo::TempMount(_))) {
        system
            .devices
            .unmount(&temp)
            .map_err(|e| at(Step::RemoveTempDir, &temp, e))?;
        run.undo.retain(|u| !matches!(u, Undo::TempMount(_)));
    }
    std::fs::remove_dir_all(&temp).map_err(|source| {
        at(
            Step::RemoveTempDir,
            &temp,
            Error::Io {
                what: "remove",
                path: temp.clone(),
                source,
            },
        )
    })?;
    run.undo.retain(|u| !matches!(u, Undo::TempDir(_)));
    run.done(Step::RemoveTempDir);
    drop(mapping);

    let mounted_at = match &options.mount {
        Some(request) => {
            system
                .devices
                .mount(&activation.mapper_path, request)
                .map_err(|e| at(Step::Mount, &request.dir, e))?;
            run.undo.push(Undo::Mount(request.dir.clone()));
            run.done(Step::Mount);
            Some(request.dir.clone())
        }
        None => None,
    };

    let integrity_metadata = integrity_metadata_bytes(source, params.data_offset_sectors);
    run.undo.clear();
    Ok(EncryptReport {
        mapper_path: activation.mapper_path.clone(),
        name: name.to_string(),
        source: source.to_path_buf(),
        source_bytes: info.size_bytes,
        mapping_bytes: activation.size_bytes,
        key_in_keyring: activation.key_in_keyring,
        steps: std::mem::take(&mut run.steps),
        total_seconds: started.elapsed().as_secs_f64(),
        written: WrittenBytes {
            luks_header_area: params.data_offset_sectors * 512,
            integrity_metadata,
            ..written
        },
        image_data_bytes: plan.image_data_bytes,
        zero_ranges: plan.zero_ranges.len(),
        temp_fs,
        peak_rss_bytes: peak_rss_bytes(),
        mounted_at,
    })
}

/// Step 5: a private temp dir whose file system reports holes and can hold the image.
///
/// With [`EncryptOptions::tmpfs_fallback`], a location that cannot hold the image (ramfs, the
/// classic initramfs root, reports the whole file as data; ext4 cannot hold a 16 TiB file) gets
/// a private tmpfs mounted on the new directory, so the tool works from a minimal initramfs.
/// Without it (a directory the user chose), the location is refused with the reason.
fn prepare_temp_dir(
    run: &mut Run<'_, '_>,
    options: &EncryptOptions,
    image_size: u64,
) -> Result<(PathBuf, String)> {
    let base = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let temp = devices::create_private_dir(&base).map_err(|e| at(Step::TempDir, &base, e))?;
    run.undo.push(Undo::TempDir(temp.clone()));
    match sparse::check_holes_supported(&temp, image_size) {
        Ok(holes) => {
            run.done(Step::TempDir);
            Ok((temp, holes.fs_type))
        }
        Err(e) if options.tmpfs_fallback && e.class() == ErrorClass::Unsupported => {
            run.system
                .devices
                .mount_private_tmpfs(&temp)
                .map_err(|m| at(Step::TempDir, &temp, m))?;
            run.undo.push(Undo::TempMount(temp.clone()));
            let holes = sparse::check_holes_supported(&temp, image_size)
                .map_err(|e| at(Step::TempDir, &temp, e.into()))?;
            run.done(Step::TempDir);
            Ok((
                temp,
                format!(
                    "{} (private mount; {base} could not hold the image)",
                    holes.fs_type,
                    base = base.display()
                ),
            ))
        }
        Err(e) => Err(at(Step::TempDir, &base, e.into())),
    }
}

/// Steps 7 and 8: zero the plan's ranges, then copy the image's extents over them.
fn write_image(
    run: &mut Run<'_, '_>,
    mapping: &File,
    activation: &Activation,
    image_path: &Path,
    plan: &format::FormatPlan,
    options: &EncryptOptions,
) -> Result<WrittenBytes> {
    let target = activation.mapper_path.as_path();
    let image = File::open(image_path).map_err(|source| {
        at(
            Step::ZeroRanges,
            image_path,
            Error::Io {
                what: "open",
                path: image_path.to_path_buf(),
                source,
            },
        )
    })?;
    let data = sparse::data_extents(&image, image_path)
        .and_then(|extents| extents.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| at(Step::ZeroRanges, image_path, e.into()))?;
    let mut plan_ranges: Vec<std::ops::Range<u64>> =
        plan.zero_ranges.iter().map(|r| r.start..r.end()).collect();
    if let Some(filter) = run.system.zero_filter {
        plan_ranges = filter(ZeroStage::Plan, image_path, plan_ranges);
    }
    let read_ahead = crate::blockdev::read_ahead_bytes(mapping)
        .unwrap_or(margin::DEFAULT_READAHEAD)
        .max(margin::DEFAULT_READAHEAD);
    let ranges = margin::ranges_to_zero(
        &plan_ranges,
        &data,
        read_ahead,
        activation.size_bytes,
        u64::from(plan.block_size),
    );
    let ranges = match run.system.zero_filter {
        Some(filter) => filter(ZeroStage::Device, image_path, ranges),
        None => ranges,
    };
    let total = margin::total(&ranges);
    let mut progress = Progress::new("zeroing", total, options.progress);
    let zeroed = sparse::zero_ranges(mapping, target, &ranges, &mut |n| progress.advance(n))
        .map_err(|e| at(Step::ZeroRanges, target, e.into()))?;
    progress.finish();
    run.done(Step::ZeroRanges);

    let mut progress = Progress::new("copying", plan.image_data_bytes, options.progress);
    let copied = sparse::copy_extents(&image, image_path, mapping, target, &mut |n| {
        progress.advance(n)
    })
    .map_err(|e| at(Step::CopyImage, target, e.into()))?;
    progress.finish();
    run.done(Step::CopyImage);
    Ok(WrittenBytes {
        zeroed: zeroed.bytes_zeroed,
        read_ahead_margins: total.saturating_sub(margin::total(&margin::merge(plan_ranges))),
        ext4_metadata: copied.bytes_copied,
        ..WrittenBytes::default()
    })
}

/// The dm-integrity superblock plus its journal, as the kernel wrote them during format.
/// Zero if the superblock cannot be read (the number is informational).
fn integrity_metadata_bytes(source: &Path, data_offset_sectors: u64) -> u64 {
    match crate::dm_table::read_integrity_superblock(source, data_offset_sectors) {
        // The superblock occupies the first 4 KiB block; the journal follows it.
        Ok(sb) => 4096 + sb.journal_bytes(),
        Err(_) => 0,
    }
}

/// Peak resident set size of this process, in bytes.
pub fn peak_rss_bytes() -> u64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        // ru_maxrss is in KiB on Linux.
        Ok(usage) => u64::try_from(usage.max_rss()).unwrap_or(0) * 1024,
        Err(_) => 0,
    }
}

/// The `copy-extents` command: copy `src`'s data extents onto `dst` (a file or block device).
pub fn copy_file_extents(src: &Path, dst: &Path) -> Result<CopyReport> {
    let open_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            what: "open",
            path,
            source,
        }
    };
    let s = File::open(src).map_err(open_err(src))?;
    let d = std::fs::OpenOptions::new()
        .write(true)
        .open(dst)
        .map_err(open_err(dst))?;
    let stats = sparse::copy_extents(&s, src, &d, dst, &mut |_| {})?;
    Ok(CopyReport {
        bytes_copied: stats.bytes_copied,
        extents: stats.extents,
        seconds: stats.elapsed.as_secs_f64(),
    })
}

/// What `copy-extents` did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Bytes written to the destination.
    pub bytes_copied: u64,
    /// Data extents copied.
    pub extents: u64,
    /// Wall-clock seconds, fsync included.
    pub seconds: f64,
}
