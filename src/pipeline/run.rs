//! The steps of one `encrypt` run, in order, each registering its undo.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::devices::{self, SourceInfo};
use super::grow::GrowState;
use super::report::{peak_rss_bytes, EncryptReport, StepTime, WrittenBytes};
use super::write::{integrity_metadata_bytes, tag_layout, write_image};
use super::{at, EncryptOptions, System};
use crate::cancel::CancelToken;
use crate::class::ErrorClass;
use crate::dm;
use crate::error::{Error, Refusal, Result};
use crate::format;
use crate::key::VolumeKey;
use crate::name::MappingName;
use crate::signature::{self, Verdict};
use crate::sparse;
use crate::step::Step;
use uuid::Uuid;

/// Something to undo if a later step fails.
enum Undo {
    /// The mapping this run activated, recognised by the dm UUIDs made from its header UUID.
    Mapping(Uuid),
    TempDir(PathBuf),
    TempMount(PathBuf),
    Mount(PathBuf),
}

/// The state of one `encrypt` run.
pub(super) struct Run<'s, 'a> {
    pub(super) system: &'s System<'a>,
    source: &'s Path,
    name: &'s MappingName,
    undo: Vec<Undo>,
    steps: Vec<StepTime>,
    step_started: Instant,
    cancel: CancelToken,
}

impl Run<'_, '_> {
    /// Record the time of `step` and start timing the next one; a safe point: if the run was
    /// cancelled meanwhile, stop here (the caller's `?` starts the rollback).
    pub(super) fn done(&mut self, step: Step) -> Result<()> {
        let now = Instant::now();
        self.steps.push(StepTime {
            step,
            seconds: now.duration_since(self.step_started).as_secs_f64(),
        });
        self.step_started = now;
        self.check(step)
    }

    /// Fail with [`Error::Interrupted`] for `step` if the run was cancelled.
    pub(super) fn check(&self, step: Step) -> Result<()> {
        match self.cancel.signal() {
            Some(signal) => Err(at(step, self.source, Error::Interrupted { signal })),
            None => Ok(()),
        }
    }

    /// The run's cancel token (the long writes check it between chunks).
    pub(super) fn cancel(&self) -> &CancelToken {
        &self.cancel
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
                Undo::Mapping(uuid) => dm::remove_ours(self.system.dm, self.name, &uuid)
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

/// The panic guard: a run dropped with undo actions still registered is being unwound by a
/// panic (the error path drains them in [`Run::fail`], success clears them), so roll back here,
/// best effort, before the panic goes on. A panicking progress callback must not leave a mapping
/// and a temp dir behind any more than an error does.
impl Drop for Run<'_, '_> {
    fn drop(&mut self) {
        if !self.undo.is_empty() {
            // The cause only labels a rollback report nobody receives: the panic goes on.
            let _ = self.fail(Error::Interrupted { signal: 0 });
        }
    }
}

pub(super) fn run_encrypt(
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
        cancel: options.cancel.clone(),
    };
    let result = run
        .done(Step::ProbeSource)
        .and_then(|()| encrypt_steps(&mut run, &info, options, started));
    match result {
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
    // Every step after the probe reads and writes the device that was checked and locked
    // (`/proc/self/fd/N` of the held descriptor), never `source` resolved again; errors still
    // name `source`, as the caller gave it.
    let device = info.device_path(source);

    if options.format.initial_bytes.is_some() && options.mount.is_none() {
        return Err(at(
            Step::CheckNames,
            source,
            Error::Refused {
                path: source.to_path_buf(),
                reason: Refusal::FastStartNeedsMount,
            },
        ));
    }
    // A promise of growth is made only where growth can happen: the kernel's online resize
    // needs CAP_SYS_RESOURCE, and a grower that meets EPERM hours later has no terminal to say
    // so. Checked before anything is written.
    let mut format_options = options.format.clone();
    if format_options.initial_bytes.is_some() && !system.devices.can_grow_online() {
        if !options.full_format_if_no_growth {
            return Err(at(
                Step::CheckNames,
                source,
                Error::Refused {
                    path: source.to_path_buf(),
                    reason: Refusal::CannotGrowOnline,
                },
            ));
        }
        format_options.initial_bytes = None;
        format_options.full_journal = false;
    }
    if !options.force {
        let refuse = |reason| {
            at(
                Step::CheckData,
                source,
                Error::Refused {
                    path: source.to_path_buf(),
                    reason,
                },
            )
        };
        match signature::probe(device).map_err(|e| at(Step::CheckData, source, e.into()))? {
            Verdict::Empty | Verdict::Ours => {}
            Verdict::Foreign(found) => return Err(refuse(Refusal::HoldsData(found))),
            Verdict::Ambiguous => return Err(refuse(Refusal::HoldsSeveralSignatures)),
        }
    }
    run.done(Step::CheckData)?;

    dm::ensure_names_free(system.dm, name).map_err(|e| at(Step::CheckNames, source, e.into()))?;
    run.done(Step::CheckNames)?;

    // Before the format: a kernel that cannot carry the stack is refused while the disk is
    // still untouched (issue 25: Linux 5.10 used to get a header and then an EINVAL).
    dm::check_kernel(system.dm).map_err(|e| at(Step::CheckKernel, source, e.into()))?;
    run.done(Step::CheckKernel)?;

    let key = VolumeKey::generate().map_err(|e| at(Step::GenerateKey, source, e.into()))?;
    run.done(Step::GenerateKey)?;

    let params = system
        .luks
        .format(device, &key)
        .map_err(|e| at(Step::FormatHeader, source, e.into()))?;
    run.done(Step::FormatHeader)?;

    // Activation rolls itself back when it fails, so the undo is registered only once it has
    // succeeded: a failed activation (say, the name was taken meanwhile by someone else) must
    // never remove a mapping this run did not create.
    let activation = dm::activate(system.dm, device, &params, &key, name)
        .map_err(|e| at(Step::Activate, source, e.into()))?;
    run.undo.push(Undo::Mapping(params.uuid));
    drop(key);
    run.done(Step::Activate)?;

    let mapping = system
        .devices
        .open_mapping(&activation)
        .map_err(|e| at(Step::OpenMapping, &activation.mapper_path, e))?;
    run.done(Step::OpenMapping)?;

    let (temp, temp_fs) = prepare_temp_dir(run, options, activation.size_bytes)?;

    let image_path = temp.join("image.ext4");
    let plan = format::build_image(&image_path, activation.size_bytes, &format_options)
        .map_err(|e| at(Step::BuildImage, source, e.into()))?;
    run.done(Step::BuildImage)?;

    let tags = tag_layout(device, &params);
    let written = write_image(
        run,
        &mapping,
        &activation,
        &image_path,
        &plan,
        options,
        &tags,
    )?;

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
    run.done(Step::RemoveTempDir)?;
    drop(mapping);

    // Every block a probe reads is written now: let udev's blkid run on the mapping, which
    // activation kept from it, so that the by-uuid and by-label links appear (issue 24).
    dm::announce(system.dm, name)
        .map_err(|e| at(Step::Announce, &activation.mapper_path, e.into()))?;
    run.done(Step::Announce)?;

    let mounted_at = match &options.mount {
        Some(request) => {
            system
                .devices
                .mount(&activation.mapper_path, request)
                .map_err(|e| at(Step::Mount, &request.dir, e))?;
            run.undo.push(Undo::Mount(request.dir.clone()));
            run.done(Step::Mount)?;
            Some(request.dir.clone())
        }
        None => None,
    };
    if let (Some(dir), true) = (&mounted_at, plan.final_block_count > plan.block_count) {
        // Absolute: `grow` may run from another working directory (and checks that this path
        // is still on the mapping before it acts on it).
        let mount = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        let state = GrowState {
            target_blocks: plan.final_block_count,
            mount,
            grower_pid: None,
        };
        let state_dir = system.devices.state_dir();
        state
            .save_in(&state_dir, name)
            .map_err(|e| at(Step::Mount, &state_dir, e))?;
    }

    // The last safe point was the last `done`: past it, the run has succeeded and a signal no
    // longer undoes it (a check here would roll back without removing the growth record).
    let integrity_metadata = integrity_metadata_bytes(device, params.data_offset_sectors);
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
            luks_header_area: crate::luks::format_write_bytes(params.data_offset_sectors),
            integrity_metadata,
            ..written
        },
        image_data_bytes: plan.image_data_bytes,
        zero_ranges: plan.zero_ranges.len(),
        temp_fs,
        peak_rss_bytes: peak_rss_bytes(),
        fs_bytes: plan.block_count * u64::from(plan.block_size),
        target_bytes: plan.final_block_count * u64::from(plan.block_size),
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
            run.done(Step::TempDir)?;
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
            run.done(Step::TempDir)?;
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
