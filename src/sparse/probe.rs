//! `check_holes_supported`: is a directory fit to hold the sparse image?
//!
//! Two file systems make the copy silently wrong or impossible. ramfs (the classic initramfs
//! root) answers SEEK_HOLE with the end of file, so every byte of the image looks like data and
//! the copy would write the whole device. ext4 cannot hold a file of 16 TiB. Both are found
//! by making a small probe file: set it to the image size (`ftruncate`, which allocates
//! nothing), write one block at its start and ask where the first hole is.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::SparseError;
use crate::extent::{next_extent, seek};

/// The smallest probe file: big enough that any file system's hole granularity (4 KiB pages,
/// btrfs sectors, 128 KiB ZFS records) leaves a hole after the first block.
const PROBE_MIN_SIZE: u64 = 8 << 20;

/// What the probe found about a directory that reports holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoleSupport {
    /// The file-system type, by name ([`fs_type_name`]).
    pub fs_type: String,
    /// The raw `statfs` `f_type` magic.
    pub magic: i64,
    /// Where SEEK_HOLE found the first hole of the probe file (after its first data block).
    pub first_hole: u64,
}

/// A name for a `statfs` `f_type` magic number (`include/uapi/linux/magic.h`).
pub fn fs_type_name(magic: i64) -> String {
    let name = match magic {
        0xEF53 => "ext2/3/4",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x794c_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x2fc1_2fc1 => "zfs",
        0x4d44 => "vfat",
        0x0102_1997 => "v9fs",
        _ => return format!("unknown (f_type {magic:#x})"),
    };
    name.to_string()
}

/// Check that `dir` can hold a sparse file of `image_size` bytes and reports its holes.
///
/// Fails with [`SparseError::HolesNotReported`] on ramfs-like file systems, with
/// [`SparseError::FileTooLarge`] when the file system's maximum file size is below
/// `image_size`, and with [`crate::extent::ExtentError::Unsupported`] where SEEK_DATA is missing. The
/// probe file is unlinked right after it is created.
pub fn check_holes_supported(dir: &Path, image_size: u64) -> Result<HoleSupport, SparseError> {
    let probe_err = |step, source| SparseError::Probe {
        dir: dir.to_path_buf(),
        step,
        source,
    };
    let (file, path) = create_probe(dir).map_err(|e| probe_err("create the probe file", e))?;
    std::fs::remove_file(&path).map_err(|e| probe_err("remove the probe file", e))?;

    let stat = nix::sys::statfs::fstatfs(&file)
        .map_err(|e| probe_err("statfs the probe file", e.into()))?;
    // `f_type` is a signed word on Linux; the magics are 32-bit values.
    #[allow(clippy::unnecessary_cast)]
    let magic = stat.filesystem_type().0 as i64;
    let fs_type = fs_type_name(magic);

    let size = image_size.max(PROBE_MIN_SIZE);
    match file.set_len(size) {
        Ok(()) => {}
        // EFBIG: beyond the file system's maximum file size (EINVAL on some older ones).
        Err(source) if matches!(source.raw_os_error(), Some(libc::EFBIG | libc::EINVAL)) => {
            return Err(SparseError::FileTooLarge {
                dir: dir.to_path_buf(),
                fs_type,
                size: image_size,
                source,
            });
        }
        Err(e) => return Err(probe_err("set the probe file's size", e)),
    }
    file.write_all_at(&[0xA5u8; 4096], 0)
        .map_err(|e| probe_err("write the probe file", e))?;

    let extent = next_extent(|offset, whence| seek(&file, offset, whence), &path, 0, size)?;
    match extent {
        Some(r) if r.start == 0 && r.end < size => Ok(HoleSupport {
            fs_type,
            magic,
            first_hole: r.end,
        }),
        _ => Err(SparseError::HolesNotReported {
            dir: dir.to_path_buf(),
            fs_type,
        }),
    }
}

/// Create a new, uniquely named probe file in `dir`.
fn create_probe(dir: &Path) -> std::io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            ".scratchcrypt-hole-probe.{}.{n}",
            std::process::id()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}
