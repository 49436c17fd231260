//! Unit tests of the grower's pieces that need no mount: the superblock it reads back from a
//! real fast-start image, and its run record.

use std::os::unix::fs::FileExt;

use super::*;
use crate::resize::{SUPERBLOCK_BYTES, SUPERBLOCK_OFFSET};

/// A 4 GiB image built by the formatter (a fast start of `initial` bytes, or a full format),
/// its plan and its primary superblock; the temp dir keeps the image alive.
fn superblock_of(
    initial: Option<u64>,
) -> (
    tempfile::TempDir,
    PathBuf,
    crate::format::FormatPlan,
    [u8; SUPERBLOCK_BYTES],
) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("img");
    let opts = crate::format::FormatOptions {
        initial_bytes: initial,
        ..crate::format::FormatOptions::default()
    };
    let plan = crate::format::build_image(&image, 4 << 30, &opts).unwrap();
    let mut sb = [0u8; SUPERBLOCK_BYTES];
    std::fs::File::open(&image)
        .unwrap()
        .read_exact_at(&mut sb, SUPERBLOCK_OFFSET)
        .unwrap();
    (dir, image, plan, sb)
}

/// A superblock as mkfs writes it for us parses; every field we depend on is checked.
#[test]
fn superblock_values_we_never_write_are_refused() {
    let (_dir, image, plan, sb) = superblock_of(Some(512 << 20));
    let g = Ext4Geometry::parse(&sb, &image).unwrap();
    assert_eq!(g.blocks, plan.block_count);
    assert_eq!(g.inodes_per_group, 8192);
    assert!(g.has_noinit_itable());
    assert!(g.resize_inode && g.is_growable());
    assert_eq!(g.groups_per_flex, 16);
    type Mutation = fn(&mut [u8; SUPERBLOCK_BYTES]);
    let cases: [(Mutation, &str); 7] = [
        (|b| b[0x38] = 0, "magic"),
        (|b| b[0x18] = 0, "block size"),
        (|b| b[0x60] |= 0x10, "incompatible"),
        (
            |b| b[0x20..0x24].copy_from_slice(&1u32.to_le_bytes()),
            "blocks per group",
        ),
        (|b| b[0xFE] = 32, "descriptor size"),
        (
            |b| b[0x58..0x5A].copy_from_slice(&100u16.to_le_bytes()),
            "inode size",
        ),
        (|b| b[0x150] = 2, "block count"),
    ];
    for (mutate, what) in cases {
        let mut bad = sb;
        mutate(&mut bad);
        let e = Ext4Geometry::parse(&bad, &image).unwrap_err();
        assert!(e.to_string().contains(what), "{e} should name {what}");
    }
}

/// A full format (no resize inode since issue 27, no `noinit_itable`) is one of ours: its
/// superblock parses, and it is not growable, so `grow` refuses it as "not made with a fast
/// start" instead of as a superblock this tool never writes.
#[test]
fn a_full_format_parses_and_is_not_growable() {
    let (_dir, image, plan, sb) = superblock_of(None);
    let g = Ext4Geometry::parse(&sb, &image).unwrap();
    assert_eq!(g.blocks, plan.block_count);
    assert!(!g.resize_inode);
    assert_eq!(g.reserved_gdt_blocks, 0);
    assert!(!g.is_growable());
    // Reserved GDT blocks without a resize inode: nothing we write.
    let mut bad = sb;
    bad[0xCE] = 1;
    let e = Ext4Geometry::parse(&bad, &image).unwrap_err();
    assert!(e.to_string().contains("reserved GDT blocks"), "{e}");
}

/// The growth record survives a save and load, and a missing one is `None`, not an error.
#[test]
fn growth_record_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    // The state directory must be private (mode 0700), as /run/scratchcrypt is made.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let name = MappingName::new("scratch").unwrap();
    assert_eq!(GrowState::load_in(dir.path(), &name).unwrap(), None);
    let state = GrowState {
        target_blocks: 1 << 20,
        mount: PathBuf::from("/mnt/scratch"),
        grower_pid: Some(42),
    };
    state.save_in(dir.path(), &name).unwrap();
    assert_eq!(
        GrowState::load_in(dir.path(), &name).unwrap(),
        Some(state.clone())
    );
    // Two processes saving at once (the encrypt process and its grower) both succeed.
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (dir, name, state) = (dir.path().to_path_buf(), name.clone(), state.clone());
            std::thread::spawn(move || {
                for _ in 0..200 {
                    state.save_in(&dir, &name).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    std::fs::write(dir.path().join("scratch.json"), b"{not json").unwrap();
    let e = GrowState::load_in(dir.path(), &name).unwrap_err();
    assert!(e.line().contains("parse"), "{}", e.line());
}

/// A private state directory (mode 0700, as /run/scratchcrypt is made) with a growth record.
fn state_dir_with_record(pid: Option<i32>) -> (tempfile::TempDir, PathBuf, MappingName) {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("state");
    let name = MappingName::new("scratch").unwrap();
    GrowState {
        target_blocks: 1 << 20,
        mount: PathBuf::from("/mnt/scratch"),
        grower_pid: pid,
    }
    .save_in(&dir, &name)
    .unwrap();
    (base, dir, name)
}

/// Issue 26 item 5: `status`'s probe never takes the grower's lock, so a grower's `try_take`
/// running at the same moment never fails because of it (a monitoring loop could otherwise
/// keep a fast start from ever growing). The probe still sees a held lock.
#[test]
fn status_probe_never_takes_the_growers_lock() {
    let (_base, dir, name) = state_dir_with_record(None);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (dir, name, stop) = (dir.clone(), name.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut probes = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Growing or not depends on the instant (the main thread holds the lock
                // now and then); what matters is that probing never takes it.
                is_growing_in(&dir, &name).unwrap();
                probes += 1;
            }
            probes
        })
    };
    let mut refused = 0;
    for _ in 0..3000 {
        match GrowLock::try_take_in(&dir, &name).unwrap() {
            Some(lock) => drop(lock),
            None => refused += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let probes = prober.join().unwrap();
    assert!(probes > 0);
    assert_eq!(
        refused, 0,
        "a grower's try_take failed {refused} times in 3000 ({probes} probes)"
    );
    let held = GrowLock::try_take_in(&dir, &name).unwrap().unwrap();
    assert!(
        is_growing_in(&dir, &name).unwrap(),
        "a held lock is not seen"
    );
    drop(held);
    assert!(!is_growing_in(&dir, &name).unwrap());
}

/// Issue 26 item 6: a recorded pid whose process does not hold the lock file (a grower that
/// was SIGKILLed, its pid reused) is never signalled, even while someone holds the lock; a
/// process that holds it is stopped (positive control: util-linux `flock` on the lock file).
#[test]
fn stop_grower_signals_only_a_process_holding_the_lock() {
    // The stranger: a process that reused the pid of a dead grower.
    let mut stranger = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let (_base, dir, name) = state_dir_with_record(Some(stranger.id() as i32));
    let held = GrowLock::try_take_in(&dir, &name).unwrap().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    stop_grower_in(&dir, &name, STOP_GROWER_WAIT).unwrap();
    releaser.join().unwrap();
    let alive = stranger.try_wait().unwrap().is_none();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(alive, "a process that does not hold the lock got SIGTERM");

    // Positive control: a process holding the lock file is stopped, and then its lock is free.
    let lock = dir.join("scratch.lock");
    // `-o`: the lock is held by `flock` itself, not by the `sleep` it runs.
    let mut grower = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while GrowLock::try_take_in(&dir, &name).unwrap().is_some() {
        assert!(
            started.elapsed().as_secs() < 10,
            "flock never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    GrowState {
        target_blocks: 1 << 20,
        mount: PathBuf::from("/mnt/scratch"),
        grower_pid: Some(grower.id() as i32),
    }
    .save_in(&dir, &name)
    .unwrap();
    stop_grower_in(&dir, &name, STOP_GROWER_WAIT).unwrap();
    let status = grower.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "{status:?}"
    );
}

/// Issue 26 item 7: `grow_mounted` with a recorded mount point that is not on the mapping
/// (unmounted, moved, another file system there now) is refused before anything is written,
/// and no resize ioctl is sent to whatever holds the path.
#[test]
fn grow_refuses_a_mount_point_not_on_the_mapping() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("img");
    let opts = crate::format::FormatOptions {
        initial_bytes: Some(512 << 20),
        ..crate::format::FormatOptions::default()
    };
    let plan = crate::format::build_image(&image, 4 << 30, &opts).unwrap();
    // The mapping's full size, as the device would have.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let before = std::fs::metadata(&image).unwrap().blocks();
    let elsewhere = dir.path().join("mnt");
    std::fs::create_dir(&elsewhere).unwrap();
    let err = grow_mounted(
        &image,
        &elsewhere,
        plan.final_block_count,
        &GrowOptions::default(),
    )
    .unwrap_err();
    assert!(err.line().contains("is not on"), "{}", err.line());
    assert_eq!(
        std::fs::metadata(&image).unwrap().blocks(),
        before,
        "blocks were written to the mapping"
    );
}

/// Issue 26 item 8: `cleanup` does not wait for ever on a grower's lock whose holder cannot be
/// stopped (not recorded, or not ours to signal): it gives up after its wait with an error
/// naming the lock.
#[test]
fn stop_grower_gives_up_on_a_lock_that_is_never_released() {
    let (_base, dir, name) = state_dir_with_record(None);
    let held = GrowLock::try_take_in(&dir, &name).unwrap().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let (dir, name) = (dir.clone(), name.clone());
        std::thread::spawn(move || {
            let r = stop_grower_in(&dir, &name, std::time::Duration::from_millis(300));
            let _ = tx.send(r.map_err(|e| e.line()));
        });
    }
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("stop_grower still waits after 10 s");
    let line = result.unwrap_err();
    assert!(line.contains("still holds it"), "{line}");
    drop(held);
}
