//! Steps 7 and 8: zero every range the kernel may read before it writes, then copy the image.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;

use super::margin;
use super::report::WrittenBytes;
use super::run::Run;
use super::{at, EncryptOptions, ZeroStage};
use crate::cancel::CancelToken;
use crate::dm::Activation;
use crate::error::{Error, Result};
use crate::format;
use crate::sparse;
use crate::step::Step;

/// A byte counter for `step` that forwards the running total to the caller's progress callback
/// and stops the write between two chunks once the run is cancelled.
fn reporter<'o>(
    options: &'o EncryptOptions,
    cancel: &'o CancelToken,
    step: Step,
    total: u64,
) -> impl FnMut(u64) -> ControlFlow<()> + 'o {
    let mut done = 0u64;
    move |n| {
        done = done.saturating_add(n);
        if let Some(progress) = &options.progress {
            progress(step, done.min(total), total);
        }
        match cancel.signal() {
            Some(_) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
        }
    }
}

/// The error of a write that `step` could not finish: an interruption if the run was cancelled.
fn write_failed(run: &Run<'_, '_>, step: Step, target: &Path, e: sparse::SparseError) -> Error {
    match (&e, run.cancel().signal()) {
        (sparse::SparseError::Stopped { .. }, Some(signal)) => {
            at(step, target, Error::Interrupted { signal })
        }
        _ => at(step, target, e.into()),
    }
}

/// Steps 7 and 8: zero the plan's ranges, then copy the image's extents over them.
pub(super) fn write_image(
    run: &mut Run<'_, '_>,
    mapping: &File,
    activation: &Activation,
    image_path: &Path,
    plan: &format::FormatPlan,
    options: &EncryptOptions,
    tags: &crate::luks::TagLayout,
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
        .and_then(|extents| {
            extents
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Into::into)
        })
        .map_err(|e: crate::sparse::SparseError| at(Step::ZeroRanges, image_path, e.into()))?;
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
    let probe_blocks = margin::total(&margin::probe_only(
        &plan_ranges,
        &data,
        activation.size_bytes,
        u64::from(plan.block_size),
    ));
    let cancel = run.cancel().clone();
    let mut report = reporter(options, &cancel, Step::ZeroRanges, total);
    let zeroed = sparse::zero_ranges(mapping, target, &ranges, &mut report)
        .map_err(|e| write_failed(run, Step::ZeroRanges, target, e))?;
    run.done(Step::ZeroRanges)?;

    let mut report = reporter(options, &cancel, Step::CopyImage, plan.image_data_bytes);
    let copied = sparse::copy_extents(&image, image_path, mapping, target, &mut report)
        .map_err(|e| write_failed(run, Step::CopyImage, target, e))?;
    run.done(Step::CopyImage)?;
    // Zeroing and copy each end with an fsync: two flush phases for the tags.
    let block = u64::from(plan.block_size).max(1);
    let data_blocks: Vec<std::ops::Range<u64>> = data
        .iter()
        .map(|r| r.start / block * block..r.end.div_ceil(block) * block)
        .collect();
    Ok(WrittenBytes {
        integrity_tags: tags.tag_write_bytes(&ranges) + tags.tag_write_bytes(&data_blocks),
        zeroed: zeroed.bytes_zeroed,
        zeroed_metadata: plan.zero_owners,
        read_ahead_margins: total
            .saturating_sub(margin::total(&margin::merge(plan_ranges)))
            .saturating_sub(probe_blocks),
        probe_blocks,
        ext4_metadata: copied.bytes_copied,
        ..WrittenBytes::default()
    })
}

/// The dm-integrity superblock plus its journal, as the kernel wrote them during format.
/// Zero if the superblock cannot be read (the number is informational).
pub(super) fn integrity_metadata_bytes(source: &Path, data_offset_sectors: u64) -> u64 {
    match crate::superblock::read_integrity_superblock(source, data_offset_sectors) {
        // The superblock occupies the first 4 KiB block; the journal follows it.
        Ok(sb) => 4096 + sb.journal_bytes(),
        Err(_) => 0,
    }
}

/// Where the integrity layer keeps its tags: from the superblock, else our format's layout.
pub(super) fn tag_layout(
    source: &Path,
    params: &crate::params::LuksParams,
) -> crate::luks::TagLayout {
    match crate::superblock::read_integrity_superblock(source, params.data_offset_sectors) {
        Ok(sb) => crate::luks::TagLayout::from_superblock(&sb),
        Err(_) => crate::luks::TagLayout::ours(params.tag_size),
    }
}
