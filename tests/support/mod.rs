//! Test support shared by the privileged test binaries. See `README.md` beside this file.
//!
//! - [`strict_device`]: a loop device over a FUSE file that refuses (EIO) and logs every read of
//!   a block never written, as an unwiped dm-integrity device does.
//! - [`stress`]: parallel file creation with `drop_caches` between waves, a crash and a
//!   journal-replaying mount, then `e2fsck -fn`, reporting each refused access by phase.
//! - [`check_clean`] / [`assert_survives_stress`]: the verdict, naming each refused block
//!   ([`ext4_layout`] says what it is: "inode table of group 3").
//! - [`sparse_copy`]: the Go original's hole-skipping copy and a zero writer.
//! - [`privileged`]: skip-or-fail when root, FUSE or loop devices are missing; the serial lock.
//! - [`strict_devices`]: the pipeline's block-device seam over the strict device.
//! - [`skip`]: the one skip rule (`SCRATCHCRYPT_REQUIRE_PRIVILEGED=1` turns skips into failures).
// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod coverage;
pub mod ext4_layout;
pub mod keys;
pub mod privileged;
pub mod skip;
pub mod sparse_copy;
pub mod stress;
pub mod strict_device;
pub mod strict_devices;

use std::path::Path;

use ext4_layout::Ext4Layout;
use stress::{run_stress, StressConfig, StressReport};
use strict_device::StrictDevice;

/// Run [`run_stress`] on `dev` and panic with [`check_clean`]'s message unless the file system
/// came through clean. Returns the report for further checks.
pub fn assert_survives_stress(
    dev: &StrictDevice,
    image: Option<&Path>,
    config: &StressConfig,
) -> StressReport {
    let report = run_stress(dev, config);
    if let Err(msg) = check_clean(dev, &report, image, config) {
        panic!("{msg}");
    }
    report
}

/// Whether a stress run came through clean: no refused access (including any logged before the
/// stress), no I/O error, every file read back, a clean `e2fsck -fn`, and inodes in more than
/// one block group. The error names each refused block; with `image` (the sparse image the
/// device was written from) it also says what the block is ("inode table of group 3 ...").
pub fn check_clean(
    dev: &StrictDevice,
    report: &StressReport,
    image: Option<&Path>,
    config: &StressConfig,
) -> Result<(), String> {
    let expected = config.expected_files();
    if report.is_clean(expected) && report.groups_with_inodes >= 2 {
        return Ok(());
    }
    let layout = image.and_then(|i| Ext4Layout::read(i).ok());
    Err(format!(
        "{} did not survive the stress: {} refused ({}), {} I/O errors {:?}, {}/{expected} \
         files verified, mount error {:?}, umount error {:?}, recovery error {:?}, e2fsck status {}, {} block groups \
         with inodes\nrefused blocks:\n{}\ne2fsck:\n{}",
        dev.device_path().display(),
        report.refused.len(),
        report.refused_summary(),
        report.io_error_count,
        report.io_errors,
        report.files_verified,
        report.mount_error,
        report.umount_error,
        report.recovery_error,
        report.fsck_status,
        report.groups_with_inodes,
        explain_refused(report, layout.as_ref(), dev.block_size(), 30),
        report.fsck_output,
    ))
}

/// The distinct blocks refused in `report`, in order of first refusal, at most `max` of them,
/// one a line: how often, in which phases, and (when the layout of the image is known) what the
/// block is, e.g. `device block 88 x5 [wave1, e2fsck] = fs block 88 = inode table of group 0`.
pub fn explain_refused(
    report: &StressReport,
    layout: Option<&Ext4Layout>,
    device_block_size: u64,
    max: usize,
) -> String {
    let mut blocks: Vec<(u64, strict_device::RefusedKind, usize, Vec<&str>)> = Vec::new();
    for (phase, r) in &report.refused {
        match blocks.iter_mut().find(|b| b.0 == r.block && b.1 == r.kind) {
            Some(entry) => {
                entry.2 += 1;
                if !entry.3.contains(phase) {
                    entry.3.push(phase);
                }
            }
            None => blocks.push((r.block, r.kind, 1, vec![phase])),
        }
    }
    let mut lines: Vec<String> = blocks
        .iter()
        .take(max)
        .map(|(block, kind, count, phases)| {
            let what = layout.map_or_else(String::new, |l| {
                format!(" = {}", l.describe_device_block(*block, device_block_size))
            });
            format!(
                "  {kind:?} of device block {block} x{count} [{}]{what}",
                phases.join(", ")
            )
        })
        .collect();
    if blocks.len() > max {
        lines.push(format!("  ... and {} more blocks", blocks.len() - max));
    }
    lines.join("\n")
}
