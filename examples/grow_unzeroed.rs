//! The VM negative control of the online growth (tests/vm/guest/grow_negative.sh): a fast start
//! whose growth skips part of what scratchcrypt zeroes before each resize step. On an unwiped
//! integrity device the kernel must then hit a never-written block, which the guest sees as a
//! failed growth and integrity errors in the kernel log. Not part of the product.
//!
//! ```text
//! grow_unzeroed <device> <name> <mount dir> no-bitmaps|no-last-block|none
//! ```
//! `none` zeroes everything, as the product does (the control of the control).
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::ExitCode;

use scratchcrypt::resize::GrowStep;
use scratchcrypt::{
    ByteRange, EncryptOptions, FormatOptions, GrowOptions, MappingName, MountRequest,
};

/// Whether `r` holds the step's new last block (the block the kernel reads first).
fn holds_last_block(step: &GrowStep, r: &ByteRange) -> bool {
    let last = (step.blocks - 1) * 4096;
    r.start <= last && last < r.end()
}

/// Zero only the new last block: the bitmaps of the new groups stay unwritten.
fn no_bitmaps(step: &GrowStep) -> Vec<ByteRange> {
    step.zero
        .iter()
        .filter(|r| holds_last_block(step, r))
        .copied()
        .collect()
}

/// Zero everything but the new last block.
fn no_last_block(step: &GrowStep) -> Vec<ByteRange> {
    step.zero
        .iter()
        .filter(|r| !holds_last_block(step, r))
        .copied()
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, device, name, dir, mode] = args.as_slice() else {
        eprintln!("usage: grow_unzeroed <device> <name> <mount dir> no-bitmaps|no-last-block|none");
        return ExitCode::from(2);
    };
    let filter: Option<fn(&GrowStep) -> Vec<ByteRange>> = match mode.as_str() {
        "no-bitmaps" => Some(no_bitmaps),
        "no-last-block" => Some(no_last_block),
        "none" => None,
        _ => return ExitCode::from(2),
    };
    let name = match MappingName::new(name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("grow_unzeroed: {e}");
            return ExitCode::from(2);
        }
    };
    let options = EncryptOptions {
        format: FormatOptions {
            initial_bytes: Some(512 << 20),
            ..FormatOptions::default()
        },
        mount: Some(MountRequest {
            dir: dir.into(),
            options: None,
        }),
        ..EncryptOptions::default()
    };
    if let Err(e) = scratchcrypt::encrypt(Path::new(device), &name, &options) {
        eprintln!("grow_unzeroed: encrypt: {}", e.line());
        return ExitCode::from(3);
    }
    let grow = GrowOptions {
        zero_filter: filter,
        ..GrowOptions::default()
    };
    match scratchcrypt::grow(&name, &grow) {
        Ok(report) => {
            println!(
                "grown to {} bytes in {} steps",
                report.fs_bytes, report.steps
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("growth failed: {}", e.line());
            ExitCode::from(1)
        }
    }
}
