//! Where libblkid reads a block device when it probes it: the one table of those offsets, and
//! the blocks a mapping of a given size must have written so that a probe reads nothing else.
//!
//! # Why
//! On an unwiped dm-integrity device every block never written through the mapping reads back
//! as EIO and logs `INTEGRITY AEAD ERROR`. libblkid is the most common reader of block devices:
//! `blkid -p`, udev's `blkid` builtin (every add/change event, the source of
//! `/dev/disk/by-uuid/…`), `mount` without `-t`, `lsblk -f`, `wipefs`, `findmnt`. Its safe probe
//! runs *every* superblock prober, RAID ones included, and gives up on the first read error: one
//! unreadable block and the ext4 that is there is not reported at all (issue 24). The superblock
//! and group-0 metadata of ext4 cover the start of the device; the RAID probers read the **end**
//! of the device, where ext4 keeps only free space.
//!
//! # What
//! [`PROBE_READS`] lists, for libblkid 2.38 (Debian 12; `libblkid/src/superblocks/*.c` and
//! `libblkid/src/partitions/*.c` of util-linux v2.38.1), every read a prober makes whatever the
//! device holds, plus the conditional ones that cost nothing (they fall into blocks that are
//! written anyway). A read that only follows a magic match elsewhere (an NTFS MFT record, FAT
//! chains, a GPT partition array) is left out: on a scratchcrypt disk that magic is ext4's.
//! A new util-linux release that reads somewhere new is a one-line change here.
//!
//! [`probe_blocks`] maps a device size to the blocks to write: the reads rounded out to whole
//! blocks, merged, clipped to the device. The caller (`pipeline::margin`) subtracts what the
//! image writes anyway and adds the read-ahead margins after every written run.
//!
//! # Read-ahead
//! libblkid opens the device and calls `posix_fadvise(POSIX_FADV_RANDOM)` in
//! `blkid_probe_set_device` (`libblkid/src/probe.c`), which turns the kernel's read-ahead off
//! for that open file: `blkid`, udev's builtin (it passes its own fd to the same function),
//! `mount`, `lsblk` and `wipefs` read exactly the pages they ask for. Other readers of the end of
//! a device (`dd`, scripts, firmware tools) may not, so the pipeline keeps its usual read-ahead
//! margin after these blocks too.
//!
//! Pure: no I/O, imports nothing from the crate.

use std::ops::Range;

/// Where a probe read starts, for a device of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// This many bytes from the start of the device.
    Start(u64),
    /// `(size & !(align - 1)) - back`: the size rounded down to `align` (a power of two), then
    /// `back` bytes before that. `End { align: 512, back: n * 512 }` is "n sectors before the
    /// end", `End { align: 1, back }` is "back bytes before the end".
    End {
        /// Power of two the size is rounded down to first.
        align: u64,
        /// Bytes before the rounded size.
        back: u64,
    },
}

/// One read of one prober.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRead {
    /// The prober (util-linux source file and what it looks for).
    pub prober: &'static str,
    /// Where the read starts.
    pub at: At,
    /// How many bytes it reads (the structure read, rounded up to 512 where it is smaller).
    pub len: u64,
}

const fn end_sectors(prober: &'static str, sectors: u64) -> ProbeRead {
    ProbeRead {
        prober,
        at: At::End {
            align: 512,
            back: sectors * 512,
        },
        len: 512,
    }
}

const fn start(prober: &'static str, offset: u64, len: u64) -> ProbeRead {
    ProbeRead {
        prober,
        at: At::Start(offset),
        len,
    }
}

const KIB: u64 = 1024;

/// Every read of libblkid 2.38's probers that a scratchcrypt disk must answer. Offsets from
/// the end come first; the start-relative ones after them fall into ext4's group-0 metadata
/// (superblock, group descriptors, reserved GDT blocks, bitmaps, inode tables), which the
/// image writes anyway; `pipeline::margin`'s tests check that for real layouts.
pub const PROBE_READS: &[ProbeRead] = &[
    // --- from the end -------------------------------------------------------------------
    // promise_raid.c: Promise FastTrack, the metadata at one of 13 sector offsets from the
    // end, tried in this order (size >= 256 KiB, whole disks).
    end_sectors(
        "promise_raid: Promise FastTrack, 63 sectors from the end",
        63,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 255 sectors from the end",
        255,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 256 sectors from the end",
        256,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 16 sectors from the end",
        16,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 399 sectors from the end",
        399,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 591 sectors from the end",
        591,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 675 sectors from the end",
        675,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 735 sectors from the end",
        735,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 911 sectors from the end",
        911,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 974 sectors from the end",
        974,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 991 sectors from the end",
        991,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 951 sectors from the end",
        951,
    ),
    end_sectors(
        "promise_raid: Promise FastTrack, 3087 sectors from the end",
        3087,
    ),
    // ddf_raid.c: SNIA DDF anchor header, 1 then 257 sectors from the end (size >= 192 KiB).
    end_sectors("ddf_raid: DDF anchor, last sector", 1),
    end_sectors("ddf_raid: DDF anchor, 257 sectors from the end", 257),
    // isw_raid.c: Intel Matrix (IMSM), 2 *logical* sectors from the end: both sector sizes.
    end_sectors("isw_raid: Intel IMSM, 2 sectors of 512 from the end", 2),
    ProbeRead {
        prober: "isw_raid: Intel IMSM, 2 sectors of 4096 from the end",
        at: At::End {
            align: 4096,
            back: 2 * 4096,
        },
        len: 512,
    },
    // nvidia_raid.c: NVIDIA MediaShield, 2 sectors from the end.
    end_sectors("nvidia_raid: NVIDIA, 2 sectors from the end", 2),
    // silicon_raid.c, via_raid.c, jmicron_raid.c, lsi_raid.c, adaptec_raid.c: the last sector.
    end_sectors("silicon_raid: Silicon Image Medley, last sector", 1),
    end_sectors("via_raid: VIA V-RAID, last sector", 1),
    end_sectors("jmicron_raid: JMicron, last sector", 1),
    end_sectors("lsi_raid: LSI MegaRAID, last sector", 1),
    end_sectors("adaptec_raid: Adaptec HostRAID, last sector", 1),
    // highpoint_raid.c: HighPoint 45x, 11 sectors from the end (37x is a magic at 4.5 KiB).
    end_sectors("highpoint_raid: HighPoint 45x, 11 sectors from the end", 11),
    // linux_raid.c: md 0.90, 4 KiB at the size rounded down to 64 KiB, less 64 KiB.
    ProbeRead {
        prober: "linux_raid: md 0.90, 64 KiB-aligned end less 64 KiB",
        at: At::End {
            align: 64 * KIB,
            back: 64 * KIB,
        },
        len: 4 * KIB,
    },
    // linux_raid.c: md 1.0, 256 bytes at the size rounded down to 4 KiB, less 8 KiB.
    ProbeRead {
        prober: "linux_raid: md 1.0, 4 KiB-aligned end less 8 KiB",
        at: At::End {
            align: 4 * KIB,
            back: 8 * KIB,
        },
        len: 512,
    },
    // zfs.c: labels L2 and L3, 256 KiB each, read whole, ending at the size rounded down to
    // 256 KiB.
    ProbeRead {
        prober: "zfs: label L2, 256 KiB-aligned end less 512 KiB",
        at: At::End {
            align: 256 * KIB,
            back: 512 * KIB,
        },
        len: 256 * KIB,
    },
    ProbeRead {
        prober: "zfs: label L3, 256 KiB-aligned end less 256 KiB",
        at: At::End {
            align: 256 * KIB,
            back: 256 * KIB,
        },
        len: 256 * KIB,
    },
    // nilfs.c: the backup superblock (1 KiB) 8 sectors before the 512-aligned end; always read.
    ProbeRead {
        prober: "nilfs2: backup superblock, 8 sectors from the end",
        at: At::End {
            align: 512,
            back: 8 * 512,
        },
        len: KIB,
    },
    // drbd.c: DRBD 8 and 9 metadata, 4 KiB before the end (not aligned).
    ProbeRead {
        prober: "drbd: DRBD 8/9 metadata, 4 KiB before the end",
        at: At::End {
            align: 1,
            back: 4 * KIB,
        },
        len: 4 * KIB,
    },
    // partitions/gpt.c: the backup GPT header in the last logical sector (read only with a
    // valid protective MBR; costs nothing: the RAID probers read the last block anyway).
    end_sectors("gpt: backup header, last 512-byte LBA", 1),
    ProbeRead {
        prober: "gpt: backup header, last 4096-byte LBA",
        at: At::End {
            align: 4096,
            back: 4096,
        },
        len: 4096,
    },
    // Not read by 2.38: HFS+'s alternate volume header (hfs.c reads only the one at 1 KiB),
    // UDF's anchors at the end (udf.c tries only blocks 256 and 512, below).
    //
    // --- from the start ------------------------------------------------------------------
    // superblocks.c and partitions.c: every magic table entry is a 1 KiB read at `kboff` KiB;
    // all but VMFS's are within the first 65 KiB (btrfs, reiserfs, gfs2 at 64 KiB; iso9660,
    // UDF, JFS at 32 KiB; the partition tables' first sectors).
    start(
        "magic tables: every kboff up to 64 KiB, 1 KiB each",
        0,
        65 * KIB,
    ),
    start("vmfs: VMFS superblock magic at 1 MiB", 1024 * KIB, KIB),
    start("vmfs: VMFS volume member magic at 2 MiB", 2048 * KIB, KIB),
    // xfs.c: the external XFS log prober reads the first 256 KiB, always.
    start("xfs_log: first 256 KiB", 0, 256 * KIB),
    // zfs.c: labels L0 and L1, 256 KiB each.
    start("zfs: labels L0 and L1", 0, 512 * KIB),
    // luks.c: without a primary header, the LUKS2 secondary header at 16 KiB … 4 MiB.
    start("luks: LUKS2 secondary header at 16 KiB", 16 * KIB, 4 * KIB),
    start("luks: LUKS2 secondary header at 32 KiB", 32 * KIB, 4 * KIB),
    start("luks: LUKS2 secondary header at 64 KiB", 64 * KIB, 4 * KIB),
    start(
        "luks: LUKS2 secondary header at 128 KiB",
        128 * KIB,
        4 * KIB,
    ),
    start(
        "luks: LUKS2 secondary header at 256 KiB",
        256 * KIB,
        4 * KIB,
    ),
    start(
        "luks: LUKS2 secondary header at 512 KiB",
        512 * KIB,
        4 * KIB,
    ),
    start("luks: LUKS2 secondary header at 1 MiB", 1024 * KIB, 4 * KIB),
    start("luks: LUKS2 secondary header at 2 MiB", 2048 * KIB, 4 * KIB),
    start("luks: LUKS2 secondary header at 4 MiB", 4096 * KIB, 4 * KIB),
    // ufs.c: superblock candidates at 0, 8, 64 and 256 KiB (1.5 KiB each).
    start("ufs: superblock at 256 KiB", 256 * KIB, 1536),
    // udf.c: after an NSR descriptor at 32 KiB, the anchor at block 256 and 512 for block
    // sizes 512 … 4096: 128 KiB … 2 MiB.
    start(
        "udf: anchor at block 256 of 4096 bytes (1 MiB)",
        1024 * KIB,
        512,
    ),
    start(
        "udf: anchor at block 512 of 4096 bytes (2 MiB)",
        2048 * KIB,
        512,
    ),
    // linux_raid.c: md 1.1 at 0 and 1.2 at 4 KiB; nilfs.c: primary superblock at 1 KiB;
    // sysv.c: 512 bytes into blocks 0, 9, 15, 18 of 1 KiB: all within the first 65 KiB above.
];

/// Byte range read by `read` on a device of `size` bytes, clipped to the device; `None` when
/// the device is too small for the offset (libblkid then skips or fails that prober itself).
pub fn read_range(read: &ProbeRead, size: u64) -> Option<Range<u64>> {
    let start = match read.at {
        At::Start(offset) => offset,
        At::End { align, back } => {
            let align = align.max(1);
            (size / align * align).checked_sub(back)?
        }
    };
    (start < size).then(|| start..start.saturating_add(read.len).min(size))
}

/// The blocks of `block` bytes that libblkid's probes read on a device of `size` bytes: every
/// [`PROBE_READS`] range rounded out to whole blocks, clipped to the device (rounded down to
/// whole blocks), sorted and merged.
pub fn probe_blocks(size: u64, block: u64) -> Vec<Range<u64>> {
    let block = block.max(1);
    let size = size / block * block;
    let mut ranges: Vec<Range<u64>> = PROBE_READS
        .iter()
        .filter_map(|read| read_range(read, size))
        .map(|r| r.start / block * block..r.end.div_ceil(block).saturating_mul(block).min(size))
        .filter(|r| r.start < r.end)
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const K: u64 = 1024;
    const M: u64 = 1024 * 1024;
    const G: u64 = 1024 * M;

    /// The end-relative blocks at exactly 4 GiB (aligned to everything): the ZFS labels cover
    /// the last 512 KiB, the Promise read at 3087 sectors is the one block outside them.
    #[test]
    fn four_gib_end_blocks() {
        let size = 4 * G;
        let got = probe_blocks(size, 4096);
        let end: Vec<Range<u64>> = got.iter().filter(|r| r.start > 8 * M).cloned().collect();
        // 3087 sectors = 1,580,544 bytes before the end: the block at size - 1,581,056.
        assert_eq!(
            end,
            vec![size - 1_581_056..size - 1_576_960, size - 512 * K..size]
        );
        // The issue's block: 1,581,056 bytes before the end of a 4,260,487,168-byte mapping.
        let issue = 4_260_487_168;
        assert!(probe_blocks(issue, 4096)
            .iter()
            .any(|r| r.contains(&(issue - 1_581_056))));
    }

    /// A size that is not a multiple of 1 MiB (nor of 256 or 64 KiB): the ZFS labels and md
    /// 0.90 move with the alignment, the sector-based reads follow the real end.
    #[test]
    fn unaligned_size_end_blocks() {
        // 4 GiB + 300 KiB: 256 KiB-aligned end = 4 GiB + 256 KiB.
        let size = 4 * G + 300 * K;
        let got = probe_blocks(size, 4096);
        let end: Vec<Range<u64>> = got.iter().filter(|r| r.start > 8 * M).cloned().collect();
        let zfs_end = 4 * G + 256 * K;
        // md 0.90: 64 KiB-aligned end (4 GiB + 256 KiB) less 64 KiB: inside the ZFS L3 label.
        assert_eq!(
            end,
            vec![
                // Promise 3087 sectors (1,580,544 bytes) rounds down to a block boundary.
                size - 1_581_056..size - 1_576_960,
                // ZFS L2 + L3 (Promise 951 … 991 inside), up to the aligned end.
                zfs_end - 512 * K..zfs_end,
                // Promise 63 (31.5 KiB before the end) rounds to the block at size - 32 KiB.
                size - 32 * K..size - 28 * K,
                // Promise 16, DRBD, nilfs2, md 1.0, HPT, ISW, NVIDIA, the last sectors.
                size - 8 * K..size,
            ]
        );
        for r in &got {
            assert_eq!((r.start % 4096, r.end % 4096), (0, 0), "{r:?}");
        }
    }

    /// A tiny device: offsets beyond the start are dropped, nothing reaches past the end.
    #[test]
    fn tiny_device() {
        let size = 192 * K;
        let got = probe_blocks(size, 4096);
        assert_eq!(got, vec![0..size]);
        assert!(probe_blocks(0, 4096).is_empty());
        // Below 4 KiB the 4 KiB-aligned reads vanish but the sector reads stay in the device.
        assert_eq!(probe_blocks(3 * 512, 512), vec![0..3 * 512]);
    }

    /// Alignment-dependent offsets: md 0.90 on the 64 KiB-aligned end, ZFS on the 256 KiB one,
    /// the sector reads on the 512-byte one.
    #[test]
    fn alignment_dependent_offsets() {
        let size = 10 * M + 100 * K + 512;
        let md0 = PROBE_READS
            .iter()
            .find(|r| r.prober.starts_with("linux_raid: md 0.90"))
            .unwrap();
        assert_eq!(read_range(md0, size), Some(10 * M..10 * M + 4 * K));
        let l3 = PROBE_READS
            .iter()
            .find(|r| r.prober.starts_with("zfs: label L3"))
            .unwrap();
        assert_eq!(read_range(l3, size), Some(10 * M - 256 * K..10 * M));
        let promise = PROBE_READS
            .iter()
            .find(|r| r.prober.contains("3087"))
            .unwrap();
        assert_eq!(
            read_range(promise, size),
            Some(size - 3087 * 512..size - 3086 * 512)
        );
        let drbd = PROBE_READS
            .iter()
            .find(|r| r.prober.starts_with("drbd"))
            .unwrap();
        assert_eq!(read_range(drbd, size), Some(size - 4096..size));
    }

    /// Every entry names its prober, and every end-relative one is read on a 4 GiB device.
    #[test]
    fn table_is_complete_and_named() {
        assert!(PROBE_READS.len() >= 40, "{}", PROBE_READS.len());
        for r in PROBE_READS {
            assert!(r.prober.contains(':'), "{r:?}");
            assert!(r.len > 0, "{r:?}");
            assert!(read_range(r, 4 * G).is_some(), "{r:?}");
        }
        let promise = PROBE_READS
            .iter()
            .filter(|r| r.prober.starts_with("promise_raid"))
            .count();
        assert_eq!(promise, 13);
    }
}
