//! The deterministic half of the verdict: is every block the rule names written?
//!
//! The stress finds a forgotten block only if something happens to read it, and some readers
//! are races (parallel inode allocation) or do not exist on this kernel at all (nobody reads the
//! bitmap of a `BLOCK_UNINIT` group, but a later e2fsck or an online resize may). So beside the
//! stress, the device's own log of written blocks is compared with the metadata that the group
//! descriptors name ([`Ext4Layout`], from `dumpe2fs`/`debugfs` of the image the device was
//! written from): superblocks, descriptors, reserved GDT blocks, every block and inode bitmap,
//! every inode table block and every journal block. The oracle is independent of the plan that
//! the formatter returns, so a plan that forgets a range fails here even when no reader hits it.

use super::ext4_layout::Ext4Layout;
use super::strict_device::StrictDevice;

/// The kinds of region (prefixes of [`Ext4Layout::regions`] names) that must be written.
pub const MUST_BE_WRITTEN: [&str; 8] = [
    "primary superblock",
    "backup superblock",
    "group descriptors",
    "reserved GDT blocks",
    "block bitmap",
    "inode bitmap",
    "inode table",
    "journal",
];

/// One run of never-written blocks inside a region that must be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwritten {
    /// First never-written file-system block of the run.
    pub first: u64,
    /// Blocks in the run.
    pub count: u64,
    /// What the region is ("inode table of group 3 [...]").
    pub what: String,
}

/// The runs of never-written blocks of `dev` inside the regions of `layout` that the rule says
/// must be written. Empty when every one of them was written. `dev`'s block size must equal the
/// file system's.
pub fn unwritten_metadata(dev: &StrictDevice, layout: &Ext4Layout) -> Vec<Unwritten> {
    assert_eq!(
        dev.block_size(),
        layout.block_size,
        "coverage needs equal device and file-system block sizes"
    );
    let mut out = Vec::new();
    for (first, last, what) in layout.regions() {
        if !MUST_BE_WRITTEN.iter().any(|k| what.starts_with(k)) {
            continue;
        }
        let mut run: Option<(u64, u64)> = None;
        for block in first..=last {
            if dev.is_written(block) {
                if let Some((s, n)) = run.take() {
                    out.push(Unwritten {
                        first: s,
                        count: n,
                        what: what.clone(),
                    });
                }
            } else {
                run = Some(run.map_or((block, 1), |(s, n)| (s, n + 1)));
            }
        }
        if let Some((s, n)) = run {
            out.push(Unwritten {
                first: s,
                count: n,
                what,
            });
        }
    }
    out
}

/// One line per run, at most `max` lines.
pub fn describe(unwritten: &[Unwritten], max: usize) -> String {
    let mut lines: Vec<String> = unwritten
        .iter()
        .take(max)
        .map(|u| {
            format!(
                "  blocks {}..+{} never written: {}",
                u.first, u.count, u.what
            )
        })
        .collect();
    if unwritten.len() > max {
        lines.push(format!("  ... and {} more runs", unwritten.len() - max));
    }
    lines.join("\n")
}
