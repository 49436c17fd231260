//! Tests of the strict-read device and, through it, of which ext4 recipes read blocks they never
//! wrote. See `tests/support/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use support::ext4_layout::Ext4Layout;
use support::privileged;
use support::stress::{run_stress, Ext4Mount, StressConfig};
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
    assert_eq!(
        (refused[0].block, refused[0].offset, refused[0].len),
        (11, 10 * 4096, 8192)
    );

    drop(disk);
    dev.close().unwrap();
}

/// Size of the ext4 devices: the smallest for which mke2fs picks 4 KiB blocks (below 512 MiB
/// it uses the "small" type with 1 KiB blocks, which ext4 cannot mount on a 4096-byte-sector
/// device), with 4 block groups so the inode tables of groups 1-3 are there to be missed.
const FS_SIZE: u64 = 512 * MIB;

/// Print the report's numbers (visible with `--nocapture`, and in the failure output).
fn print_report(name: &str, report: &support::stress::StressReport, dev: &StrictDevice) {
    let (reads, writes) = dev.request_counts();
    eprintln!(
        "{name}: files written {} verified {}, io errors {} {:?}, refused {} ({}), \
         e2fsck status {}, groups with inodes {}, device requests {reads} reads {writes} writes, durations {:?}",
        report.files_written,
        report.files_verified,
        report.io_error_count,
        report.io_errors.iter().take(3).collect::<Vec<_>>(),
        report.refused.len(),
        report.refused_summary(),
        report.fsck_status,
        report.groups_with_inodes,
        report.durations,
    );
}

/// Positive control: a device written with zeros end to end, then mkfs.ext4 on it, survives the
/// parallel stress and e2fsck with no refused read.
#[test]
fn fuse_zeroed_device_with_mkfs_has_no_refused_reads() {
    if !privileged::can_run("fuse_zeroed_device_with_mkfs_has_no_refused_reads") {
        return;
    }
    let _serial = privileged::serial();
    let dev = StrictDevice::new(FS_SIZE, 4096).unwrap();
    let t = std::time::Instant::now();
    support::sparse_copy::write_zeros(dev.device_path(), 0, FS_SIZE).unwrap();
    assert_eq!(dev.written_blocks(), FS_SIZE / 4096);
    let zeroed = t.elapsed();
    let mkfs = std::process::Command::new("mkfs.ext4")
        .args(["-F", "-q"])
        .arg(dev.device_path())
        .output()
        .unwrap();
    assert!(mkfs.status.success(), "{mkfs:?}");
    eprintln!(
        "positive: zeroed {} MiB in {zeroed:?}, mkfs.ext4 in {:?}",
        FS_SIZE / MIB,
        t.elapsed() - zeroed
    );

    let report = support::assert_survives_stress(&dev, None, &StressConfig::default());
    print_report("positive", &report, &dev);
    dev.close().unwrap();
}

/// Negative control: the Go original's recipe (plain mkfs.ext4 on a sparse file, only its data
/// extents copied) is caught: refused reads of blocks it never wrote, named by what they are.
#[test]
fn fuse_original_recipe_is_caught_with_offending_blocks() {
    if !privileged::can_run("fuse_original_recipe_is_caught_with_offending_blocks") {
        return;
    }
    let _serial = privileged::serial();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(FS_SIZE)
        .unwrap();
    let mkfs = std::process::Command::new("mkfs.ext4")
        .args(["-F", "-q"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(mkfs.status.success(), "{mkfs:?}");
    let layout = Ext4Layout::read(&image).unwrap();

    let dev = StrictDevice::new(FS_SIZE, 4096).unwrap();
    let (extents, bytes) =
        support::sparse_copy::copy_data_extents(&image, dev.device_path()).unwrap();
    eprintln!("negative: copied {extents} extents, {bytes} bytes");
    assert!(dev.refused_reads().is_empty(), "{:?}", dev.refused_reads());

    let config = StressConfig::default();
    let report = run_stress(&dev, &config);
    print_report("negative", &report, &dev);
    let verdict = support::check_clean(&dev, &report, Some(&image), &config);
    assert!(
        verdict.as_ref().is_err_and(|msg| msg.contains("= fs block")
            && (msg.contains("inode table of group") || msg.contains("= journal"))),
        "the verdict does not point at the offending blocks: {verdict:?}"
    );
    let explained = support::explain_refused(&report, Some(&layout), 4096, 12);
    eprintln!("negative: first refused accesses:\n{explained}");
    let in_stress = ["mount", "wave1", "wave2", "verify", "crash", "recovery"]
        .iter()
        .map(|p| report.refused_in(p))
        .sum::<usize>();
    assert!(
        in_stress > 0,
        "the original recipe was not caught by the stress\n{report:?}"
    );
    assert!(
        report.fsck_output.contains("e2fsck")
            && report.durations.iter().any(|(p, _)| *p == "e2fsck"),
        "e2fsck -fn did not run: {}",
        report.fsck_output
    );
    // Whether e2fsck meets an unwritten inode-table block depends on the race above (measured:
    // 5-7 refused reads in 7 runs of 8, none in the 8th), so it is counted, not required.
    eprintln!(
        "negative: e2fsck status {}, {} refused reads during e2fsck",
        report.fsck_status,
        report.refused_in("e2fsck")
    );
    // The journal replay after the crash reads the journal past the log: never written here.
    let journal_reads: Vec<String> = report
        .refused
        .iter()
        .filter(|(phase, _)| *phase == "recovery")
        .map(|(_, r)| layout.describe_device_block(r.block, 4096))
        .filter(|what| what.contains("journal"))
        .collect();
    eprintln!("negative: refused journal reads during recovery: {journal_reads:?}");
    assert!(
        !journal_reads.is_empty(),
        "the journal replay read no unwritten journal block\n{explained}"
    );
    assert!(
        report.recovery_error.is_some(),
        "the mount after the crash replayed a journal it could not read, yet succeeded"
    );
    // Every refused block is one that mke2fs left as a hole: an inode table or the journal.
    let mut blocks: Vec<u64> = report.refused.iter().map(|(_, r)| r.block).collect();
    blocks.sort_unstable();
    blocks.dedup();
    let unexpected: Vec<String> = blocks
        .iter()
        .map(|&b| format!("{b}: {}", layout.describe_device_block(b, 4096)))
        .filter(|what| !what.contains("inode table of group") && !what.contains("= journal"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "refused blocks that are neither inode table nor journal: {unexpected:?}"
    );
    dev.close().unwrap();
}

/// A panic while ext4 is mounted on the device still unmounts ext4, detaches the loop device,
/// unmounts the FUSE file system and removes its temp dir (the guards run while unwinding).
#[test]
fn fuse_panic_with_mounted_ext4_cleans_up_everything() {
    if !privileged::can_run("fuse_panic_with_mounted_ext4_cleans_up_everything") {
        return;
    }
    let _serial = privileged::serial();
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let dev = StrictDevice::new(32 * MIB, 4096).unwrap();
        support::sparse_copy::write_zeros(dev.device_path(), 0, 32 * MIB).unwrap();
        let mkfs = std::process::Command::new("mkfs.ext4")
            .args(["-F", "-q", "-b", "4096"])
            .arg(dev.device_path())
            .output()
            .unwrap();
        assert!(mkfs.status.success(), "{mkfs:?}");
        let target = tempfile::tempdir().unwrap();
        let _mount = Ext4Mount::new(dev.device_path(), target.path(), "").unwrap();
        *seen.lock().unwrap() = Some((
            dev.device_path().to_path_buf(),
            dev.backing_path(),
            target.path().to_path_buf(),
        ));
        panic!(
            "deliberate panic with ext4 mounted on {}",
            dev.device_path().display()
        );
    });
    assert!(result.is_err(), "the closure was meant to panic");
    let (loop_path, backing, target) = seen.lock().unwrap().take().unwrap();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    for path in [&target, backing.parent().unwrap()] {
        assert!(
            !mounts.contains(path.to_str().unwrap()),
            "{} is still mounted:\n{mounts}",
            path.display()
        );
    }
    let name = loop_path.file_name().unwrap().to_str().unwrap();
    let sys = format!("/sys/block/{name}/loop/backing_file");
    if let Ok(file) = std::fs::read_to_string(&sys) {
        assert!(
            !file.contains(backing.to_str().unwrap()),
            "{name} still backed by {file}"
        );
    }
    assert!(!backing.exists(), "{} still exists", backing.display());
}

/// The sparse-image recipe done right, as scratchcrypt does it (with mkfs.ext4 standing in for
/// `format::build_image`): zero every bitmap, inode table and the journal through the device,
/// then copy the image's data extents; the stress and e2fsck then read nothing unwritten.
#[test]
fn fuse_sparse_image_with_zeroed_metadata_has_no_refused_reads() {
    if !privileged::can_run("fuse_sparse_image_with_zeroed_metadata_has_no_refused_reads") {
        return;
    }
    let _serial = privileged::serial();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(FS_SIZE)
        .unwrap();
    let mkfs = std::process::Command::new("mkfs.ext4")
        .args(["-F", "-q"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(mkfs.status.success(), "{mkfs:?}");
    let ranges = Ext4Layout::read(&image).unwrap().metadata_ranges();
    assert!(!ranges.is_empty());

    let dev = StrictDevice::new(FS_SIZE, 4096).unwrap();
    for &(offset, len) in &ranges {
        support::sparse_copy::write_zeros(dev.device_path(), offset, len).unwrap();
    }
    support::sparse_copy::copy_data_extents(&image, dev.device_path()).unwrap();
    eprintln!(
        "sparse recipe: zeroed {} ranges, {} of {} blocks written",
        ranges.len(),
        dev.written_blocks(),
        FS_SIZE / 4096
    );
    let report = support::assert_survives_stress(&dev, Some(&image), &StressConfig::default());
    print_report("sparse recipe", &report, &dev);
    dev.close().unwrap();
}

/// scratchcrypt's own recipe on the strict device: `format::build_image`, then
/// `sparse::zero_ranges` over the plan's ranges and `sparse::copy_extents` of the image, as the
/// pipeline does through the mapping. The stress, the crash-recovery mount and e2fsck then read
/// nothing that was never written.
#[test]
fn fuse_scratchcrypt_recipe_has_no_refused_reads() {
    if !privileged::can_run("fuse_scratchcrypt_recipe_has_no_refused_reads") {
        return;
    }
    let _serial = privileged::serial();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    let plan = scratchcrypt::format::build_image(
        &image,
        FS_SIZE,
        &scratchcrypt::format::FormatOptions::default(),
    )
    .unwrap();
    let dev = StrictDevice::new(FS_SIZE, 4096).unwrap();
    support::sparse_copy::zero_then_copy(&plan, &image, dev.device_path()).unwrap();
    assert_eq!(
        dev.refused_reads(),
        vec![],
        "formatting itself read unwritten blocks"
    );
    eprintln!(
        "scratchcrypt recipe: {} zero ranges, {} of {} blocks written",
        plan.zero_ranges.len(),
        dev.written_blocks(),
        FS_SIZE / 4096
    );
    let report = support::assert_survives_stress(&dev, Some(&image), &StressConfig::default());
    print_report("scratchcrypt recipe", &report, &dev);
    dev.close().unwrap();
}
