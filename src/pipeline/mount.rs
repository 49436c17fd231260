//! mount(2) and umount(2) for the `--mount` and `cleanup --unmount` options.
//!
//! The type is always given as `ext4`: letting anything probe the device (as `mount` without
//! `-t`, or blkid, would) reads blocks that may never have been written.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};

/// Where and how to mount the new file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// The mount point (must exist).
    pub dir: PathBuf,
    /// Options as for `mount -o`, e.g. `noatime,nodev`.
    pub options: Option<String>,
}

/// Split `mount -o` style options into mount(2) flags and the file system's data string.
pub fn parse_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let flag = match opt {
            "ro" => MsFlags::MS_RDONLY,
            "rw" | "defaults" => MsFlags::empty(),
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "sync" => MsFlags::MS_SYNCHRONOUS,
            "dirsync" => MsFlags::MS_DIRSYNC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "strictatime" => MsFlags::MS_STRICTATIME,
            "lazytime" => MsFlags::MS_LAZYTIME,
            other => {
                data.push(other);
                continue;
            }
        };
        flags |= flag;
    }
    (flags, data.join(","))
}

/// Mount `device` on `request.dir` as ext4.
pub fn mount_ext4(device: &Path, request: &MountRequest) -> Result<()> {
    let (flags, data) = parse_options(request.options.as_deref().unwrap_or(""));
    let data = (!data.is_empty()).then_some(data.as_str());
    nix::mount::mount(Some(device), &request.dir, Some("ext4"), flags, data).map_err(|e| {
        Error::Io {
            what: "mount ext4 on",
            path: request.dir.clone(),
            source: e.into(),
        }
    })
}

/// Mount a tmpfs private to this process's use on `dir` (mode 0700, no devices, no setuid, no
/// exec). tmpfs reports holes and holds sparse files of any size the image needs; only the
/// image's data (tens of MiB) uses memory.
pub fn mount_private_tmpfs(dir: &Path) -> Result<()> {
    let flags = MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0700")).map_err(|e| {
        Error::Io {
            what: "mount a private tmpfs on",
            path: dir.to_path_buf(),
            source: e.into(),
        }
    })
}

/// Mount points of the block device `major:minor`, from `/proc/self/mountinfo`, deepest first
/// (so they can be unmounted in order).
pub fn find_mounts(major: u32, minor: u32) -> Result<Vec<PathBuf>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut dirs = mounts_of(&text, &format!("{major}:{minor}"));
    dirs.reverse();
    Ok(dirs)
}

/// Mount points in `mountinfo` text whose device field is `dev`.
fn mounts_of(mountinfo: &str, dev: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let device = fields.nth(2)?;
            let mount_point = fields.nth(1)?;
            (device == dev).then(|| PathBuf::from(unescape(mount_point)))
        })
        .collect()
}

/// Undo mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(value) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known flags become MsFlags, everything else goes to the file system.
    #[test]
    fn options_split_into_flags_and_data() {
        let (flags, data) = parse_options("noatime,nodev,commit=60, ro ,errors=remount-ro");
        assert_eq!(
            flags,
            MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(data, "commit=60,errors=remount-ro");
        assert_eq!(parse_options(""), (MsFlags::empty(), String::new()));
    }

    /// Only lines of the given device are returned, with escapes undone.
    #[test]
    fn mountinfo_is_filtered_by_device() {
        let text = "36 35 254:0 / /mnt/a\\040b rw,noatime - ext4 /dev/mapper/x rw\n\
                    37 35 8:1 / /boot rw - ext4 /dev/sda1 rw\n\
                    38 36 254:0 /sub /srv rw - ext4 /dev/mapper/x rw\n";
        assert_eq!(
            mounts_of(text, "254:0"),
            vec![PathBuf::from("/mnt/a b"), PathBuf::from("/srv")]
        );
        assert!(mounts_of(text, "1:1").is_empty());
    }
}
