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

/// The first `max` refused accesses of `report`, one a line, each with its phase and, when the
/// layout of the image is known, what the block is.
pub fn explain_refused(
    report: &StressReport,
    layout: Option<&Ext4Layout>,
    device_block_size: u64,
    max: usize,
) -> String {
    let mut lines: Vec<String> = report
        .refused
        .iter()
        .take(max)
        .map(|(phase, r)| {
            let what = layout.map_or_else(String::new, |l| {
                format!(" = {}", l.describe_device_block(r.block, device_block_size))
            });
            format!(
                "  [{phase}] {:?} of device block {} (request {}+{}){what}",
                r.kind, r.block, r.offset, r.len
            )
        })
        .collect();
    if report.refused.len() > max {
        lines.push(format!("  ... and {} more", report.refused.len() - max));
    }
    lines.join("\n")
}
