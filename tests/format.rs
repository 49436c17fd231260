//! Integration tests of `scratchcrypt::format`: the images are compared with Debian's
//! `mke2fs -t ext4` (e2fsprogs is a test dependency only), checked with `e2fsck -fn`, and the
//! plan's coverage is checked against the group descriptors that `dumpe2fs` reads back.
//! Tests named `loop_` need root and loop devices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use scratchcrypt::format::{
    build_image, data_extents, ByteRange, FormatOptions, FormatPlan, JOURNAL_MAX_BYTES,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

#[path = "support/skip.rs"]
mod skip;

/// Skip or fail by the one rule (`tests/support/skip.rs`) when something the test needs is
/// missing; the test is named by the calling thread (libtest names it after the test).
fn skip_or_fail(why: &str) -> bool {
    let thread = std::thread::current();
    skip::cannot_run(thread.name().unwrap_or("tests/format.rs"), why)
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-V").output().is_ok()
}

/// A temp dir on tmpfs (keeps holes and takes 16 TiB sparse files), if there is one.
fn tmpfs_dir() -> Option<tempfile::TempDir> {
    let dir = Path::new("/dev/shm");
    let st = nix::sys::statfs::statfs(dir).ok()?;
    (st.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .then(|| {
            tempfile::Builder::new()
                .prefix("scratchcrypt-fmt")
                .tempdir_in(dir)
                .ok()
        })
        .flatten()
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn fsck_clean(path: &Path) {
    let (rc, text) = run(Command::new("e2fsck").arg("-fn").arg(path));
    assert_eq!(rc, 0, "e2fsck -fn {}:\n{text}", path.display());
}

/// `dumpe2fs -h` as key → value, without the fields that differ on every run.
fn header(path: &Path) -> BTreeMap<String, String> {
    const VOLATILE: &[&str] = &[
        "Filesystem UUID",
        "Filesystem created",
        "Last write time",
        "Last mount time",
        "Last checked",
        "Directory Hash Seed",
        "Checksum",
        "Lifetime writes",
    ];
    let (rc, text) = run(Command::new("dumpe2fs").arg("-h").arg(path));
    assert_eq!(rc, 0, "{text}");
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !VOLATILE.contains(&k.as_str()) && !k.starts_with("dumpe2fs"))
        .collect()
}

fn compare_with_mke2fs(size: u64) {
    if !have("mke2fs") {
        skip_or_fail("mke2fs (e2fsprogs) is not installed");
        return;
    }
    let Some(dir) = tmpfs_dir() else {
        skip_or_fail("no tmpfs at /dev/shm for sparse images");
        return;
    };
    let ours = dir.path().join("ours.img");
    let plan = build_image(&ours, size, &FormatOptions::default()).unwrap();
    fsck_clean(&ours);

    let theirs = dir.path().join("mke2fs.img");
    File::create(&theirs).unwrap().set_len(size).unwrap();
    // A full format never grows, so it has no resize inode and no reserved GDT blocks, and its
    // journal is at most the measured default: the reference is mke2fs without them and with
    // that journal (mke2fs' own below it).
    let journal = format!("size={}", plan.journal_bytes / MIB);
    let (rc, text) = run(Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-O",
            "^resize_inode",
        ])
        .args(["-J", &journal])
        .arg(&theirs));
    assert_eq!(rc, 0, "{text}");

    let (a, b) = (header(&ours), header(&theirs));
    for key in [
        "Filesystem features",
        "Block size",
        "Block count",
        "Inode count",
        "Inode size",
        "Flex block group size",
        "Total journal size",
    ] {
        assert!(b.contains_key(key), "mke2fs header lacks {key}");
    }
    assert_eq!(
        a, b,
        "dumpe2fs -h differs from mke2fs -t ext4 at {size} bytes"
    );
    assert_eq!(plan.block_count.to_string(), a["Block count"]);
    assert_eq!(plan.inode_count.to_string(), a["Inode count"]);
}

/// 64 MiB ("small" class, compared with `mke2fs -t ext4 -b 4096`) matches mke2fs field by field.
#[test]
fn matches_mke2fs_64mib() {
    compare_with_mke2fs(64 * MIB);
}

/// 1 GiB matches mke2fs field by field and is e2fsck-clean.
#[test]
fn matches_mke2fs_1gib() {
    compare_with_mke2fs(GIB);
}

/// 100 GiB matches mke2fs field by field and is e2fsck-clean.
#[test]
fn matches_mke2fs_100gib() {
    compare_with_mke2fs(100 * GIB);
}

/// 1 TiB matches mke2fs field by field and is e2fsck-clean.
#[test]
fn matches_mke2fs_1tib() {
    compare_with_mke2fs(TIB);
}

/// 16 TiB ("huge": inode ratio 65536, no resize_inode) matches mke2fs and is e2fsck-clean.
#[test]
fn matches_mke2fs_16tib() {
    compare_with_mke2fs(16 * TIB);
}

/// A size that is not a multiple of the group size (and not of 4 KiB) matches mke2fs too.
#[test]
fn matches_mke2fs_odd_size() {
    compare_with_mke2fs(300 * MIB + 4096 * 7 + 100);
}

/// A size whose last group would be too small is shortened exactly as mke2fs shortens it.
#[test]
fn matches_mke2fs_dropped_last_group() {
    compare_with_mke2fs(GIB + 40 * 1024);
}

/// Fast start: the initial image of `size` grown to the full size by `resize2fs` (the
/// offline oracle of what online growth adds) gives users what the full format gives them
/// (compared with `mke2fs -O ^resize_inode` and the full format's journal, which the full
/// format matches): the same features apart from the resize inode, block size and count, inode
/// count and size, journal, and free space within 0.1 %. The descriptor reserve is only what
/// the growth takes. The initial image is e2fsck-clean and carries `noinit_itable`.
fn grown_matches_full_format(size: u64, initial: u64, full_journal: bool) {
    if !have("mke2fs") || !have("resize2fs") {
        skip_or_fail("mke2fs and resize2fs (e2fsprogs) are not installed");
        return;
    }
    let Some(dir) = tmpfs_dir() else {
        skip_or_fail("no tmpfs at /dev/shm for sparse images");
        return;
    };
    let ours = dir.path().join("ours.img");
    let opts = FormatOptions {
        initial_bytes: Some(initial),
        full_journal,
        ..FormatOptions::default()
    };
    let plan = build_image(&ours, size, &opts).unwrap();
    assert!(plan.block_count < plan.final_block_count, "{plan:?}");
    assert_eq!(plan.block_count % 32768, 0, "whole groups: {plan:?}");
    fsck_clean(&ours);
    let initial_header = header(&ours);
    assert_eq!(initial_header["Mount options"], "noinit_itable");
    let desc_blocks = |blocks: u64| blocks.div_ceil(32768).div_ceil(64);
    let growth_desc = desc_blocks(plan.final_block_count) - desc_blocks(plan.block_count);
    assert_eq!(
        initial_header["Reserved GDT blocks"],
        growth_desc.max(1).to_string(),
        "the reserve is what the growth takes"
    );

    let theirs = dir.path().join("mke2fs.img");
    File::create(&theirs).unwrap().set_len(size).unwrap();
    // The full format's journal: the measured default, or mke2fs' own with `full_journal`.
    let mut mke2fs = Command::new("mke2fs");
    mke2fs.args([
        "-q",
        "-F",
        "-t",
        "ext4",
        "-b",
        "4096",
        "-O",
        "^resize_inode",
    ]);
    if !full_journal {
        mke2fs.args(["-J", &format!("size={}", JOURNAL_MAX_BYTES / MIB)]);
    }
    let (rc, text) = run(mke2fs.arg(&theirs));
    assert_eq!(rc, 0, "{text}");
    let b = header(&theirs);
    assert_eq!(plan.final_block_count.to_string(), b["Block count"]);

    OpenOptions::new()
        .write(true)
        .open(&ours)
        .unwrap()
        .set_len(size)
        .unwrap();
    let (rc, text) = run(Command::new("resize2fs").arg("-f").arg(&ours));
    assert_eq!(rc, 0, "resize2fs: {text}");
    fsck_clean(&ours);
    let a = header(&ours);
    let features = |h: &BTreeMap<String, String>| -> Vec<String> {
        h["Filesystem features"]
            .split_whitespace()
            .filter(|f| *f != "resize_inode")
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        features(&a),
        features(&b),
        "features after growth to {size}"
    );
    let keys = vec![
        "Block size",
        "Block count",
        "Inode count",
        "Inode size",
        "Default mount options",
        "Total journal blocks",
    ];
    for key in keys {
        assert_eq!(a.get(key), b.get(key), "{key} after growth to {size} bytes");
    }
    // What growth leaves of the reserve: at most the one block asked for when none was needed.
    // (dumpe2fs prints no line for an empty reserve.)
    assert_eq!(
        a.get("Reserved GDT blocks").map_or("0", String::as_str),
        (growth_desc.max(1) - growth_desc).to_string()
    );
    let num = |h: &BTreeMap<String, String>, k: &str| h[k].parse::<f64>().unwrap();
    // Free space: within 0.1 %.
    let (fa, fb) = (num(&a, "Free blocks"), num(&b, "Free blocks"));
    assert!(
        (fa - fb).abs() <= num(&b, "Block count") * 0.001,
        "free blocks {fa} after growth vs {fb} for the full format"
    );
    // The reserve follows the kernel's and resize2fs' integer arithmetic: within 0.05 %.
    let (ra, rb) = (
        num(&a, "Reserved block count"),
        num(&b, "Reserved block count"),
    );
    assert!(
        (ra - rb).abs() <= num(&b, "Block count") * 0.0005,
        "reserved blocks {ra} vs mke2fs {rb}"
    );
}

/// 512 MiB grown to 4 GiB, journal sized for the full disk on request.
#[test]
fn fast_start_grows_to_full_format_4gib() {
    grown_matches_full_format(4 * GIB, 512 * MIB, true);
}

/// An odd full size (a partial last group) and the default small journal.
#[test]
fn fast_start_grows_to_full_format_odd_size() {
    grown_matches_full_format(5 * GIB + 77 * MIB + 4096 * 3, 512 * MIB, false);
}

/// 100 GiB from 512 MiB: the reserved GDT blocks cover the descriptor blocks growth adds.
#[test]
fn fast_start_grows_to_full_format_100gib() {
    grown_matches_full_format(100 * GIB, 512 * MIB, false);
}

/// A full size past what the resize inode's reserve can reach is refused, not half-made.
#[test]
fn fast_start_refuses_sizes_that_would_need_meta_bg() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FormatOptions {
        initial_bytes: Some(512 * MIB),
        ..FormatOptions::default()
    };
    let e = build_image(&dir.path().join("x.img"), 9 * TIB, &opts).unwrap_err();
    assert!(e.to_string().contains("invalid request"), "{e}");
    assert_eq!(e.class(), scratchcrypt::ErrorClass::InvalidInput);
}

/// The journal of the fast start holds one resize step (a quarter of it is the largest
/// transaction): the reserve is only what the growth takes (1 block at 4 GiB, where no
/// descriptor block is added; 3 at 32 GiB), so the measured default journal holds a step at
/// both sizes, and the 32 GiB start writes no more journal than the 4 GiB one.
#[test]
fn fast_start_journal_holds_a_resize_step() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    let opts = FormatOptions {
        initial_bytes: Some(512 * MIB),
        ..FormatOptions::default()
    };
    for (size, rsv) in [(4 * GIB, 1u64), (32 * GIB, 3)] {
        let journal = JOURNAL_MAX_BYTES;
        let plan = build_image(&img, size, &opts).unwrap();
        let credits = 3 + 1 + 1 + rsv;
        assert!(
            plan.journal_bytes / 4096 / 4 >= credits,
            "{size}: journal {} bytes holds fewer than {credits} credits",
            plan.journal_bytes
        );
        assert_eq!(plan.journal_bytes, journal, "{size}");
        assert_eq!(
            plan.zero_owners.descriptor_reserves,
            3 * rsv * 4096,
            "{size}"
        );
        if have("dumpe2fs") {
            assert_eq!(header(&img)["Reserved GDT blocks"], rsv.to_string());
        }
    }
}

/// Sorted, merged half-open block intervals.
fn merge(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(l) if s <= l.1 => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn blocks_of(ranges: &[ByteRange]) -> Vec<(u64, u64)> {
    ranges
        .iter()
        .map(|r| (r.start / 4096, r.end().div_ceil(4096)))
        .collect()
}

fn parse_range(s: &str) -> (u64, u64) {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) => (a.parse().unwrap(), b.parse::<u64>().unwrap() + 1),
        None => {
            let a: u64 = s.parse().unwrap();
            (a, a + 1)
        }
    }
}

/// Every block that the filesystem uses according to the group descriptors and bitmaps read
/// back by dumpe2fs, plus every bitmap and inode-table block, as block intervals.
fn blocks_that_must_be_written(path: &Path) -> Vec<(u64, u64)> {
    let (rc, text) = run(Command::new("dumpe2fs").arg(path));
    assert_eq!(rc, 0);
    let mut need = Vec::new();
    let mut group: Option<(u64, u64)> = None;
    let mut groups = 0;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Group ").filter(|r| r.contains("(Blocks ")) {
            let blocks = rest
                .split("(Blocks ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap();
            group = Some(parse_range(blocks));
            groups += 1;
        } else if let Some(rest) = t
            .strip_prefix("Block bitmap at ")
            .or(t.strip_prefix("Inode bitmap at "))
        {
            need.push(parse_range(rest.split([' ', ',']).next().unwrap()));
        } else if let Some(rest) = t.strip_prefix("Inode table at ") {
            need.push(parse_range(rest.split([' ', ',']).next().unwrap()));
        } else if let Some(rest) = t.strip_prefix("Free blocks: ").filter(|_| group.is_some()) {
            // Used blocks of the group = the group's span minus its free list.
            let (gs, ge) = group.take().unwrap();
            let mut at = gs;
            for (fs, fe) in rest.split(", ").filter(|s| !s.is_empty()).map(parse_range) {
                need.push((at, fs));
                at = fe;
            }
            need.push((at, ge));
        }
    }
    assert!(groups > 0, "no groups parsed from dumpe2fs");
    merge(need.into_iter().filter(|(s, e)| s < e).collect())
}

fn check_coverage(size: u64) {
    if !have("dumpe2fs") {
        skip_or_fail("dumpe2fs (e2fsprogs) is not installed");
        return;
    }
    let Some(dir) = tmpfs_dir() else {
        skip_or_fail("no tmpfs at /dev/shm for sparse images");
        return;
    };
    let img = dir.path().join("img");
    let plan = build_image(&img, size, &FormatOptions::default()).unwrap();
    let data = data_extents(&File::open(&img).unwrap(), &img).unwrap();
    let mut covered = blocks_of(&data);
    covered.extend(blocks_of(&plan.zero_ranges));
    let covered = merge(covered);
    let need = blocks_that_must_be_written(&img);
    for (s, e) in &need {
        let i = covered.partition_point(|c| c.1 <= *s);
        assert!(
            i < covered.len() && covered[i].0 <= *s && covered[i].1 >= *e,
            "blocks {s}..{e} are used by the filesystem but neither image data nor zeroed"
        );
    }
}

/// At 1 GiB every used, bitmap and inode-table block is image data or in the zero ranges.
#[test]
fn coverage_1gib() {
    check_coverage(GIB);
}

/// At 100 GiB (800 groups, most BLOCK_UNINIT) the same coverage holds.
#[test]
fn coverage_100gib() {
    check_coverage(100 * GIB);
}

/// At 1 TiB (8192 groups) the same coverage holds.
#[test]
fn coverage_1tib() {
    check_coverage(TIB);
}

/// Write a "device" full of 0xA5 garbage (what an unwiped disk may hold), then the plan: zero
/// ranges first (when `zero`), then the image's data extents on top.
fn garbage_device(path: &Path, image: &Path, plan: &FormatPlan, zero: bool) {
    let mut dev = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .unwrap();
    let chunk = vec![0xA5u8; MIB as usize];
    for _ in 0..plan.size_bytes / MIB {
        dev.write_all(&chunk).unwrap();
    }
    if zero {
        let zeros = vec![0u8; MIB as usize];
        for r in &plan.zero_ranges {
            let mut at = r.start;
            while at < r.end() {
                let n = (r.end() - at).min(MIB);
                dev.write_all_at(&zeros[..n as usize], at).unwrap();
                at += n;
            }
        }
    }
    let img = File::open(image).unwrap();
    for r in data_extents(&img, image).unwrap() {
        let mut buf = vec![0u8; r.len as usize];
        img.read_exact_at(&mut buf, r.start).unwrap();
        dev.write_all_at(&buf, r.start).unwrap();
    }
    dev.sync_all().unwrap();
}

/// On a garbage-filled device, the zero ranges plus the image's data give an e2fsck-clean fs.
#[test]
fn plan_on_garbage_device_is_fsck_clean() {
    if !have("e2fsck") {
        skip_or_fail("e2fsck (e2fsprogs) is not installed");
        return;
    }
    let Some(dir) = tmpfs_dir() else {
        skip_or_fail("no tmpfs at /dev/shm for sparse images");
        return;
    };
    let img = dir.path().join("img");
    let plan = build_image(&img, 512 * MIB, &FormatOptions::default()).unwrap();
    let dev = dir.path().join("dev");
    garbage_device(&dev, &img, &plan, true);
    fsck_clean(&dev);
}

/// Unmounts (lazily) when dropped, so a panicking test leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The plan applied to a garbage device mounts as ext4 on a loop device, takes files, unmounts
/// and stays e2fsck-clean.
#[test]
fn loop_plan_on_garbage_device_mounts_and_takes_files() {
    if !have("e2fsck") {
        skip_or_fail("e2fsck (e2fsprogs) is not installed");
        return;
    }
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/loop-control").exists() {
        skip_or_fail("needs root and /dev/loop-control");
        return;
    }
    let Some(dir) = tmpfs_dir() else {
        skip_or_fail("no tmpfs at /dev/shm for sparse images");
        return;
    };
    let img = dir.path().join("img");
    let opts = FormatOptions {
        label: Some("scratch".into()),
        ..FormatOptions::default()
    };
    let plan = build_image(&img, 256 * MIB, &opts).unwrap();
    let dev = dir.path().join("dev");
    garbage_device(&dev, &img, &plan, true);

    let lo = scratchcrypt::loopdev::LoopDevice::attach(&dev, 4096).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some(lo.path()),
        &mnt,
        Some("ext4"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let mounted = Mounted(mnt.clone());
    for i in 0..64 {
        let mut f = File::create(mnt.join(format!("file{i}"))).unwrap();
        f.write_all(&vec![i as u8; 256 * 1024]).unwrap();
        f.sync_all().unwrap();
    }
    std::fs::create_dir(mnt.join("dir")).unwrap();
    assert!(mnt.join("lost+found").is_dir());
    nix::mount::umount2(&mnt, nix::mount::MntFlags::empty()).unwrap();
    std::mem::forget(mounted);
    lo.detach().unwrap();
    fsck_clean(&dev);
    let (rc, text) = run(Command::new("dumpe2fs").arg("-h").arg(&dev));
    assert_eq!(rc, 0);
    assert!(text.contains("Filesystem volume name:   scratch"), "{text}");
}
