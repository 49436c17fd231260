//! Test support shared by the privileged test binaries. See `README.md` beside this file.
// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod ext4_layout;
pub mod privileged;
pub mod sparse_copy;
pub mod stress;
pub mod strict_device;

use ext4_layout::Ext4Layout;
use stress::StressReport;

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
