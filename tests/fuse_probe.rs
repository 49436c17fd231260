//! Issue 24, natively: libblkid's full probe of a fresh scratchcrypt disk reads only written
//! blocks. The real pipeline (`encrypt_with` over the LUKS and device-mapper mocks) runs on the
//! FUSE strict-read device, where every read of a never-written block fails with EIO as on an
//! unwiped dm-integrity device; then libblkid probes it as `blkid -p` does: the safe probe with
//! superblocks (every prober enabled, RAID included; LABEL, UUID, TYPE, SECTYPE, USAGE, VERSION)
//! and partitions. It must find ext4 with the right UUID and label and cause no refused read; so
//! must the `blkid -p` and `wipefs -n` commands.
//!
//! The negative control runs the same pipeline with the plan of before the probe list (the
//! probe blocks outside the last MiB taken out, the last MiB zeroed whole, through the test hook
//! `System::zero_filter`): the probe must fail, refused at the block that holds the sector
//! Promise FastTrack's prober reads 3087 sectors before the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use libblkid_rs::{BlkidProbe, BlkidSafeprobeRet, BlkidSublks, BlkidSublksFlags};
use scratchcrypt::dm::MockDm;
use scratchcrypt::format::FormatOptions;
use scratchcrypt::luks::MockFormatter;
use scratchcrypt::pipeline::{encrypt_with, System, ZeroStage};
use scratchcrypt::{EncryptOptions, MappingName};

use support::privileged;
use support::strict_device::{RefusedRead, StrictDevice};
use support::strict_devices::StrictDevices;

const MIB: u64 = 1024 * 1024;

/// Source size; the mock formatter leaves about 1/64 for integrity metadata, so the mapping is
/// not a multiple of 1 MiB.
const SOURCE_SIZE: u64 = 1024 * MIB;

const UUID: [u8; 16] = [
    0x24, 0x24, 0x24, 0x24, 0x11, 0x22, 0x43, 0x44, 0x85, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
];
const UUID_TEXT: &str = "24242424-1122-4344-8566-778899aabbcc";
const LABEL: &str = "probe24";

/// `ranges` minus `hole`.
fn subtract(ranges: Vec<Range<u64>>, hole: Range<u64>) -> Vec<Range<u64>> {
    ranges
        .into_iter()
        .flat_map(|r| {
            [r.start..r.end.min(hole.start), r.start.max(hole.end)..r.end]
                .into_iter()
                .filter(|p| p.start < p.end)
        })
        .collect()
}

/// Run the pipeline on a fresh strict device; with `old_tail`, the final list is rewritten to
/// what it was before the probe list: nothing probe-only outside the last MiB, the last MiB
/// whole. Returns the device (its log reset after the run) and the mapping's size.
fn encrypt_on_strict_device(old_tail: bool) -> (StrictDevice, u64, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source.img");
    File::create(&source).unwrap().set_len(SOURCE_SIZE).unwrap();
    let temp_base = tmp.path().join("tmp");
    std::fs::create_dir(&temp_base).unwrap();
    let devices = StrictDevices {
        strict: RefCell::new(None),
    };
    // The strict device exists from `open_mapping` on, before the zeroing step calls this.
    let filter = |stage: ZeroStage, _image: &Path, ranges: Vec<Range<u64>>| -> Vec<Range<u64>> {
        if stage != ZeroStage::Device || !old_tail {
            return ranges;
        }
        let strict = devices.strict.borrow();
        let dev = strict.as_ref().expect("no strict device when zeroing");
        let f = File::open(dev.device_path()).unwrap();
        let size = scratchcrypt::blockdev::size_bytes(&f).unwrap() / 4096 * 4096;
        // Everything the probe list adds between the start's metadata and the last MiB (the
        // Promise block and its margin) goes; the old 1 MiB tail comes back.
        let mut out = subtract(ranges, size - 2 * MIB..size - MIB);
        out.retain(|r| r.end <= size - MIB);
        out.push(size - MIB..size);
        out
    };
    let luks = MockFormatter::new();
    let dm = MockDm::new();
    let system = System {
        luks: &luks,
        dm: &dm,
        devices: &devices,
        zero_filter: Some(&filter),
    };
    let options = EncryptOptions {
        temp_dir: Some(temp_base),
        wait_timeout: Duration::ZERO,
        format: FormatOptions {
            uuid: Some(UUID),
            label: Some(LABEL.to_string()),
            ..FormatOptions::default()
        },
        ..EncryptOptions::default()
    };
    let name = MappingName::new("probe").unwrap();
    let result = encrypt_with(&system, &source, &name, &options);
    let dev = devices
        .strict
        .borrow_mut()
        .take()
        .expect("the pipeline never opened the mapping");
    let report = result.unwrap_or_else(|e| panic!("encrypt_with failed: {e}"));
    assert_eq!(
        dev.refused_reads(),
        vec![],
        "the pipeline itself read unwritten blocks"
    );
    eprintln!(
        "mapping {} bytes; written: zeroed {} probe_blocks {} read_ahead_margins {}",
        report.mapping_bytes,
        report.written.zeroed,
        report.written.probe_blocks,
        report.written.read_ahead_margins
    );
    dev.reset_log();
    support::stress::drop_caches();
    (dev, report.mapping_bytes, tmp)
}

/// What a `blkid -p`-like probe of `path` found, or the error it failed with.
fn blkid_probe(path: &Path) -> Result<Vec<(String, String)>, String> {
    let mut probe = BlkidProbe::new_from_filename(path).map_err(|e| e.to_string())?;
    probe.enable_superblocks(true).map_err(|e| e.to_string())?;
    probe
        .set_superblock_flags(BlkidSublksFlags::new(vec![
            BlkidSublks::Label,
            BlkidSublks::Uuid,
            BlkidSublks::Type,
            BlkidSublks::Sectype,
            BlkidSublks::Usage,
            BlkidSublks::Version,
        ]))
        .map_err(|e| e.to_string())?;
    probe.enable_partitions(true).map_err(|e| e.to_string())?;
    match probe.do_safeprobe() {
        Ok(BlkidSafeprobeRet::Success) => {}
        Ok(BlkidSafeprobeRet::None) => return Err("safeprobe found nothing".to_string()),
        Ok(BlkidSafeprobeRet::Ambiguous) => return Err("safeprobe: ambiguous".to_string()),
        Err(e) => {
            return Err(format!(
                "safeprobe failed: {e} ({})",
                std::io::Error::last_os_error()
            ))
        }
    }
    let n = probe.numof_values().map_err(|e| e.to_string())?;
    (0..n)
        .map(|i| {
            probe
                .get_value(u32::try_from(i).unwrap())
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn value<'a>(values: &'a [(String, String)], key: &str) -> Option<&'a str> {
    values
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The device block holding the sector Promise FastTrack's prober reads 3087 sectors before the
/// end (`libblkid/src/superblocks/promise_raid.c`).
fn promise_block(size: u64) -> u64 {
    (size / 512 - 3087) * 512 / 4096
}

#[test]
fn fuse_blkid_full_probe_reads_only_written_blocks() {
    if !privileged::can_run("fuse_blkid_full_probe_reads_only_written_blocks") {
        return;
    }
    let _serial = privileged::serial();
    let (dev, size, _tmp) = encrypt_on_strict_device(false);
    assert_ne!(
        size % MIB,
        0,
        "the mapping size should not be a multiple of 1 MiB"
    );

    let values = blkid_probe(dev.device_path()).unwrap_or_else(|e| {
        panic!(
            "libblkid's probe failed: {e}; refused reads {:?}",
            dev.refused_reads()
        )
    });
    eprintln!("libblkid: {values:?}");
    assert_eq!(value(&values, "TYPE"), Some("ext4"), "{values:?}");
    assert_eq!(value(&values, "UUID"), Some(UUID_TEXT), "{values:?}");
    assert_eq!(value(&values, "LABEL"), Some(LABEL), "{values:?}");
    assert_eq!(value(&values, "USAGE"), Some("filesystem"), "{values:?}");
    let refused: Vec<RefusedRead> = dev.refused_reads();
    assert!(
        refused.is_empty(),
        "libblkid's probe was refused: {refused:?}"
    );

    // The commands, as a user runs them (the same library, through the page cache).
    support::stress::drop_caches();
    let out = Command::new("blkid")
        .args(["-p", "-o", "udev"])
        .arg(dev.device_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "blkid -p: {out:?}");
    assert!(text.contains("ID_FS_TYPE=ext4\n"), "{text}");
    assert!(
        text.contains(&format!("ID_FS_UUID={UUID_TEXT}\n")),
        "{text}"
    );
    assert!(text.contains(&format!("ID_FS_LABEL={LABEL}\n")), "{text}");
    let out = Command::new("wipefs")
        .arg("-n")
        .arg(dev.device_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wipefs -n: {out:?}");
    assert!(text.contains("ext4") && text.contains(UUID_TEXT), "{text}");
    let refused = dev.refused_reads();
    assert!(
        refused.is_empty(),
        "blkid -p / wipefs -n were refused: {refused:?}"
    );
    eprintln!(
        "positive: libblkid, blkid -p and wipefs -n found ext4 {UUID_TEXT} {LABEL:?} on a \
         {size}-byte mapping with 0 refused reads"
    );
    dev.close().unwrap();
}

#[test]
fn fuse_blkid_probe_with_old_one_mib_tail_is_refused_at_promise_offset() {
    if !privileged::can_run("fuse_blkid_probe_with_old_one_mib_tail_is_refused_at_promise_offset") {
        return;
    }
    let _serial = privileged::serial();
    let (dev, size, _tmp) = encrypt_on_strict_device(true);
    let want = promise_block(size);
    assert!(
        !dev.is_written(want),
        "the control left the Promise block {want} written"
    );
    let result = blkid_probe(dev.device_path());
    let refused = dev.refused_reads();
    eprintln!(
        "negative: probe {result:?}; refused {} reads {refused:?}; Promise block {want}",
        refused.len()
    );
    assert!(
        result.is_err(),
        "the probe succeeded on the old plan: {result:?}"
    );
    assert!(!refused.is_empty(), "no refused read");
    assert!(
        refused.iter().all(|r| r.block == want),
        "refused at {refused:?}, not only at the Promise block {want}"
    );
    dev.close().unwrap();
}
