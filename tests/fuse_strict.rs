//! Tests of the strict-read device and, through it, of which ext4 recipes read blocks they never
//! wrote. See `tests/support/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use support::privileged;
use support::strict_device::{RefusedKind, StrictDevice};

const MIB: u64 = 1024 * 1024;

/// One 4096-byte block, aligned for O_DIRECT.
#[repr(C, align(4096))]
struct Block([u8; 4096]);

/// Two 4096-byte blocks, aligned for O_DIRECT.
#[repr(C, align(4096))]
struct TwoBlocks([u8; 8192]);

/// A never-written block fails with EIO and is logged by number; a written block reads back.
#[test]
fn fuse_unwritten_block_is_refused_and_written_block_reads_back() {
    if !privileged::can_run("fuse_unwritten_block_is_refused_and_written_block_reads_back") {
        return;
    }
    let _serial = privileged::serial();
    let dev = StrictDevice::new(16 * MIB, 4096).unwrap();
    // O_DIRECT: no page cache, no readahead; each call is one request to the daemon.
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev.device_path())
        .unwrap();
    let mut pattern = Box::new(Block([0; 4096]));
    for (i, b) in pattern.0.iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    disk.write_all_at(&pattern.0, 10 * 4096).unwrap();
    assert_eq!(dev.written_blocks(), 1);
    assert!(dev.is_written(10));

    let mut back = Box::new(Block([0; 4096]));
    disk.read_exact_at(&mut back.0, 10 * 4096).unwrap();
    assert!(back.0 == pattern.0, "block 10 did not read back");
    assert!(dev.refused_reads().is_empty(), "{:?}", dev.refused_reads());

    let err = disk.read_exact_at(&mut back.0, 20 * 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let refused = dev.refused_reads();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].block, 20);
    assert_eq!(refused[0].offset, 20 * 4096);
    assert_eq!(refused[0].kind, RefusedKind::Read);

    // A request spanning a written and an unwritten block fails as a whole, naming the latter.
    dev.reset_log();
    let mut two = Box::new(TwoBlocks([0; 8192]));
    let err = disk.read_exact_at(&mut two.0, 10 * 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let refused = dev.refused_reads();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!((refused[0].block, refused[0].offset, refused[0].len), (11, 10 * 4096, 8192));

    drop(disk);
    dev.close().unwrap();
}
