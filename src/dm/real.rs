//! [`DeviceMapper`] over the kernel's device-mapper ioctls (the `devicemapper` crate).
//!
//! Quirks handled here (see `vendor-notes.md`): the crate never creates `/dev/mapper` nodes,
//! so without udev we `mknod` them; it logs whole tables at `trace` level, so every table is
//! loaded with `DM_SECURE_DATA` and the caller must never enable trace logging for it; its
//! errors carry the whole ioctl header in their text, so only the errno is kept; it takes udev
//! for running whenever `/run/udev/control` exists, and then waits on a udev cookie that an
//! exited udevd never releases (as libdevmapper, under libcryptsetup, does too): [`RealDm::new`]
//! refuses such a leftover socket instead of hanging.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devicemapper::{DevId, DmFlags, DmName, DmOptions, DmUdevFlags, DmUuid, DM};
use zeroize::Zeroize;

use super::{DevNum, DeviceMapper, DmError, DmInfo, UdevRules};
use crate::dm_table::{TableLine, TargetVersion};
use crate::kernel;

/// The control node the crate opens.
const DM_CONTROL: &str = "/dev/mapper/control";

/// udev's control socket: present while udev runs and makes `/dev/mapper` nodes itself.
const UDEV_CONTROL: &str = "/run/udev/control";

/// How long to wait for udev to make a node before making it ourselves.
const UDEV_WAIT: Duration = Duration::from_secs(3);

/// The real device-mapper.
pub struct RealDm {
    dm: DM,
    /// udev's state, judged once when the handle is made: whether our node wait has anyone
    /// to wait for.
    udev: Udev,
}

impl std::fmt::Debug for RealDm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RealDm")
    }
}

impl RealDm {
    /// Open `/dev/mapper/control`, after checking that the kernel has device-mapper at all
    /// (`/proc/misc` lists `device-mapper`); makes the control node if it is missing.
    pub fn new() -> Result<RealDm, DmError> {
        let minor =
            kernel::device_mapper_minor().map_err(|source| DmError::NoDeviceMapper { source })?;
        let udev = udev_at(Path::new(UDEV_CONTROL));
        if udev == Udev::Stale {
            return Err(DmError::StaleUdev {
                path: PathBuf::from(UDEV_CONTROL),
            });
        }
        if !Path::new(DM_CONTROL).exists() {
            make_node(Path::new(DM_CONTROL), libc::S_IFCHR, 10, minor)?;
        }
        let dm = DM::new().map_err(|e| DmError::Control {
            path: PathBuf::from(DM_CONTROL),
            source: to_io(e),
        })?;
        Ok(RealDm { dm, udev })
    }
}

/// What udev's control socket says about udev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Udev {
    /// No socket: udev does not run; nobody waits for it.
    Absent,
    /// A socket that takes connections (or one we cannot judge): udev runs.
    Live,
    /// A path that refuses connections: what udevd leaves behind when it exits. The
    /// devicemapper crate and libdevmapper test only that the path exists, and would wait for
    /// udev for ever.
    Stale,
}

/// Judge udev's control socket at `path` by connecting to it. udevd's socket is
/// `SOCK_SEQPACKET`, so our stream socket gets `EPROTOTYPE` from a live one; a socket nobody
/// listens on, or a file that is no socket, gets `ECONNREFUSED`.
fn udev_at(path: &Path) -> Udev {
    if !path.exists() {
        return Udev::Absent;
    }
    match UnixStream::connect(path) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Udev::Stale,
        // Connected, EPROTOTYPE (live udevd), or a reason that proves nothing (EACCES).
        _ => Udev::Live,
    }
}

/// The errno of a devicemapper error; other failures become `EIO` with the crate's text
/// (the ioctl variant's text holds the whole ioctl header, which is noise).
fn to_io(e: devicemapper::DmError) -> io::Error {
    match e {
        devicemapper::DmError::Core(devicemapper::errors::Error::Ioctl(_, _, _, errno)) => {
            io::Error::from_raw_os_error(*errno as i32)
        }
        other => io::Error::other(other.to_string()),
    }
}

fn ioctl<'a>(
    step: &'static str,
    name: &'a str,
) -> impl FnOnce(devicemapper::DmError) -> DmError + 'a {
    move |e| DmError::Ioctl {
        step,
        name: name.to_owned(),
        source: to_io(e),
    }
}

/// `mknod` a node of `kind` with mode 0600 at `path`.
fn make_node(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> Result<(), DmError> {
    let err = |source| DmError::Node {
        step: "create the device node",
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let kind = nix::sys::stat::SFlag::from_bits_truncate(kind);
    nix::sys::stat::mknod(
        path,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
    )
    .map_err(|e| err(io::Error::from(e)))
}

fn node_path(name: &str) -> PathBuf {
    Path::new("/dev/mapper").join(name)
}

/// Whether `path` is a block device node (not a symlink) for `dev`.
fn is_node_for(path: &Path, dev: DevNum) -> bool {
    match fs::symlink_metadata(path) {
        Ok(m) => {
            m.file_type().is_block_device()
                && nix::sys::stat::major(m.rdev()) == u64::from(dev.major)
                && nix::sys::stat::minor(m.rdev()) == u64::from(dev.minor)
        }
        Err(_) => false,
    }
}

impl DeviceMapper for RealDm {
    fn device_ref(&self, path: &Path) -> Result<String, DmError> {
        let err = |source| DmError::Source {
            step: "inspect the source device",
            device: path.to_path_buf(),
            source,
        };
        let m = fs::metadata(path).map_err(err)?;
        if !m.file_type().is_block_device() {
            return Err(err(io::Error::from_raw_os_error(libc::ENOTBLK)));
        }
        Ok(format!(
            "{}:{}",
            nix::sys::stat::major(m.rdev()),
            nix::sys::stat::minor(m.rdev())
        ))
    }

    fn info(&self, name: &DmName) -> Result<Option<DmInfo>, DmError> {
        let n = name;
        let name = &name.to_string();
        match self.dm.device_info(&DevId::Name(n)) {
            Ok(i) => Ok(Some(DmInfo {
                dev: DevNum {
                    major: i.device().major,
                    minor: i.device().minor,
                },
                open_count: i.open_count(),
                uuid: i
                    .uuid()
                    .map(|u| String::from_utf8_lossy(u.as_bytes()).into_owned())
                    .unwrap_or_default(),
            })),
            Err(e) => {
                let e = to_io(e);
                if e.raw_os_error() == Some(libc::ENXIO) {
                    Ok(None)
                } else {
                    Err(DmError::Ioctl {
                        step: "query",
                        name: name.to_owned(),
                        source: e,
                    })
                }
            }
        }
    }

    fn create(&self, name: &DmName, uuid: &DmUuid) -> Result<DevNum, DmError> {
        let n = name;
        let name = &name.to_string();
        let i = self
            .dm
            .device_create(n, Some(uuid), DmOptions::default())
            .map_err(ioctl("create", name))?;
        Ok(DevNum {
            major: i.device().major,
            minor: i.device().minor,
        })
    }

    fn load(&self, name: &DmName, table: &TableLine) -> Result<(), DmError> {
        let n = name;
        let name = &name.to_string();
        let mut targets = vec![(
            0u64,
            table.length,
            table.target.to_owned(),
            table.params.as_str().to_owned(),
        )];
        // A table load constructs the target: for dm-integrity, a dm-bufio client.
        let _integrity_lock = kernel::dm_integrity_lock();
        let r = self.dm.table_load(
            &DevId::Name(n),
            &targets,
            DmOptions::default().set_flags(DmFlags::DM_SECURE_DATA),
        );
        for t in &mut targets {
            t.3.zeroize();
        }
        r.map(|_| ()).map_err(ioctl("load the table of", name))
    }

    fn resume(&self, name: &DmName, udev: UdevRules) -> Result<(), DmError> {
        let n = name;
        let name = &name.to_string();
        let options = match udev {
            UdevRules::Private => DmOptions::private(),
            UdevRules::NoProbe => {
                DmOptions::default().set_udev_flags(DmUdevFlags::DM_UDEV_DISABLE_DISK_RULES_FLAG)
            }
            UdevRules::Probe => DmOptions::default(),
        };
        self.dm
            .device_suspend(&DevId::Name(n), options)
            .map(|_| ())
            .map_err(ioctl("resume", name))
    }

    fn suspend(&self, name: &DmName) -> Result<(), DmError> {
        let n = name;
        let name = &name.to_string();
        self.dm
            .device_suspend(
                &DevId::Name(n),
                DmOptions::default().set_flags(DmFlags::DM_SUSPEND),
            )
            .map(|_| ())
            .map_err(ioctl("suspend", name))
    }

    fn remove(&self, name: &DmName) -> Result<(), DmError> {
        let n = name;
        let name = &name.to_string();
        // Removing a dm-integrity device destroys its dm-bufio client.
        let _integrity_lock = kernel::dm_integrity_lock();
        self.dm
            .device_remove(&DevId::Name(n), DmOptions::default())
            .map(|_| ())
            .map_err(ioctl("remove", name))
    }

    fn missing_targets(&self, targets: &[&str]) -> Result<Vec<String>, DmError> {
        let listed = self
            .dm
            .list_versions()
            .map_err(ioctl("list the target types for", "device-mapper"))?;
        let names: Vec<&str> = listed.iter().map(|(name, ..)| name.as_str()).collect();
        Ok(kernel::unlisted(&names, targets)
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    fn target_versions(&self) -> Result<Vec<(String, TargetVersion)>, DmError> {
        // DM_LIST_VERSIONS lists only targets whose module is loaded; on a fresh boot
        // dm-integrity usually is not, and the kernel check would then pass by default and a
        // too-old target be found only after the header was written. Asking for each of ours
        // by name first makes the kernel load its module (issue 25).
        request_targets(&["integrity", "crypt"]);
        let listed = self
            .dm
            .list_versions()
            .map_err(ioctl("list the target versions for", "device-mapper"))?;
        Ok(listed
            .into_iter()
            .map(|(name, major, minor, patch)| (name, TargetVersion::new(major, minor, patch)))
            .collect())
    }

    fn make_node(&self, name: &DmName, dev: DevNum) -> Result<(), DmError> {
        let path = node_path(&name.to_string());
        if self.udev == Udev::Live {
            let start = Instant::now();
            while start.elapsed() < UDEV_WAIT {
                if path.exists() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if path.exists() {
            if fs::metadata(&path).is_ok_and(|m| {
                m.file_type().is_block_device()
                    && nix::sys::stat::major(m.rdev()) == u64::from(dev.major)
                    && nix::sys::stat::minor(m.rdev()) == u64::from(dev.minor)
            }) {
                return Ok(());
            }
            // A stale node from an earlier mapping of the same name.
            fs::remove_file(&path).map_err(|source| DmError::Node {
                step: "remove the stale device node",
                path: path.clone(),
                source,
            })?;
        }
        make_node(&path, libc::S_IFBLK, dev.major, dev.minor)
    }

    fn remove_node(&self, name: &DmName, dev: DevNum) -> Result<(), DmError> {
        let path = node_path(&name.to_string());
        if is_node_for(&path, dev) {
            fs::remove_file(&path).map_err(|source| DmError::Node {
                step: "remove the device node",
                path,
                source,
            })?;
        }
        Ok(())
    }
}

/// `struct dm_ioctl` (`include/uapi/linux/dm-ioctl.h`), the header of every device-mapper
/// ioctl: 312 bytes, followed in the same buffer by the command's data.
#[repr(C)]
struct DmIoctlHeader {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; 128],
    uuid: [u8; 129],
    data: [u8; 7],
}

const _: () = assert!(std::mem::size_of::<DmIoctlHeader>() == 312);

/// `DM_GET_TARGET_VERSION`, command 17 of `enum { DM_VERSION_CMD = 0, ... }` (Linux 5.4, dm-ioctl 4.41).
const DM_GET_TARGET_VERSION_CMD: u8 = 17;

/// Ask the kernel for each target type in `names` by name (`DM_GET_TARGET_VERSION`), which
/// makes it load the target's module (`dm_get_target_type` → `request_module("dm-<name>")`)
/// without creating any device. Best effort: a kernel older than 5.4 (no such ioctl), a
/// missing module or a missing control node leave the listing as it is, and the check that
/// follows judges what is listed.
fn request_targets(names: &[&str]) {
    let Ok(control) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DM_CONTROL)
    else {
        return;
    };
    for name in names {
        // Room for the header and the one `struct dm_target_versions` the kernel returns; u64
        // elements keep the buffer aligned for the header's u64 field.
        let mut buffer = [0u64; 512];
        let size = std::mem::size_of_val(&buffer);
        let header_size = std::mem::size_of::<DmIoctlHeader>();
        // SAFETY: the buffer is 4096 bytes, 8-byte aligned, zeroed, and larger than the
        // 312-byte `DmIoctlHeader`, a `#[repr(C)]` struct of plain integers and byte arrays
        // for which every bit pattern (all zeros included) is valid; no other reference to
        // the buffer exists while `header` lives.
        let header = unsafe { &mut *buffer.as_mut_ptr().cast::<DmIoctlHeader>() };
        // Interface 4.0.0: every kernel with the v4 interface accepts it; one without this
        // command answers ENOTTY.
        header.version = [4, 0, 0];
        header.data_size = size as u32;
        header.data_start = header_size as u32;
        let bytes = name.as_bytes();
        if bytes.len() >= header.name.len() {
            continue;
        }
        header.name[..bytes.len()].copy_from_slice(bytes);
        let request = nix::request_code_readwrite!(0xfd, DM_GET_TARGET_VERSION_CMD, header_size);
        // SAFETY: `control` is an open device-mapper control node; the kernel reads the header
        // from the buffer and writes at most `data_size` bytes, which is the buffer's size.
        let _ = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&control),
                request as _,
                buffer.as_mut_ptr(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a kernel without device-mapper (like the build host), opening says so plainly.
    #[test]
    fn missing_device_mapper_is_reported_plainly() {
        if kernel::has_device_mapper()
            && crate::test_skip::cannot_run(
                "missing_device_mapper_is_reported_plainly",
                "needs a kernel without device-mapper",
            )
        {
            return;
        }
        let e = RealDm::new().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("this kernel has no device-mapper"),
            "{e}"
        );
        assert_eq!(e.class(), crate::class::ErrorClass::Unsupported);
    }

    #[test]
    fn udev_socket_is_judged_by_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        assert_eq!(udev_at(&path), Udev::Absent);

        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(udev_at(&path), Udev::Live);
        // Closed without unlinking, as an exiting udevd leaves it.
        drop(listener);
        assert!(path.exists());
        assert_eq!(udev_at(&path), Udev::Stale);

        fs::remove_file(&path).unwrap();
        fs::write(&path, b"not a socket").unwrap();
        assert_eq!(udev_at(&path), Udev::Stale);
    }

    #[test]
    fn stale_udev_error_names_the_socket_and_the_way_out() {
        let e = DmError::StaleUdev {
            path: PathBuf::from(UDEV_CONTROL),
        };
        let msg = e.to_string();
        assert!(msg.contains("/run/udev/control"), "{msg}");
        assert!(msg.contains("remove it"), "{msg}");
        assert_eq!(e.class(), crate::class::ErrorClass::Unsupported);
    }
}
