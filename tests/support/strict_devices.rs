//! The block-device seam of the pipeline over the strict-read device: `encrypt_with` runs the
//! whole job (format mocked, activation mocked) and its writes land on a [`StrictDevice`], so a
//! test can ask which blocks were read before they were written. Shared by
//! `tests/pipeline_strict.rs` and `tests/fuse_probe.rs`.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use scratchcrypt::dm::Activation;
use scratchcrypt::pipeline::{BlockDevices, MountRequest, SourceInfo};

use super::strict_device::StrictDevice;

/// Block devices for `encrypt_with`: the source is a regular file, the mapping a strict
/// device created on `open_mapping` with the size the activation gives.
pub struct StrictDevices {
    /// The strict device, once `open_mapping` made it.
    pub strict: RefCell<Option<StrictDevice>>,
}

/// An I/O error of the seam, naming what failed and where.
pub fn io_error(what: &'static str, path: &Path, source: std::io::Error) -> scratchcrypt::Error {
    scratchcrypt::Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl BlockDevices for StrictDevices {
    fn probe_source(&self, path: &Path, _wait: Duration) -> scratchcrypt::Result<SourceInfo> {
        let len = std::fs::metadata(path)
            .map_err(|e| io_error("stat", path, e))?
            .len();
        Ok(SourceInfo::unlocked(len))
    }

    fn open_mapping(&self, activation: &Activation) -> scratchcrypt::Result<File> {
        let dev = StrictDevice::new(activation.size_bytes, 4096)
            .map_err(|e| io_error("create the strict device for", &activation.mapper_path, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev.device_path())
            .map_err(|e| io_error("open", dev.device_path(), e))?;
        *self.strict.borrow_mut() = Some(dev);
        Ok(file)
    }

    fn mount(&self, _device: &Path, request: &MountRequest) -> scratchcrypt::Result<()> {
        Err(io_error(
            "mount (not used by these tests)",
            &request.dir,
            std::io::Error::from_raw_os_error(libc::ENOTSUP),
        ))
    }

    fn unmount(&self, dir: &Path) -> scratchcrypt::Result<()> {
        nix::mount::umount(dir).map_err(|e| io_error("unmount", dir, e.into()))
    }

    fn mount_private_tmpfs(&self, dir: &Path) -> scratchcrypt::Result<()> {
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("mode=0700"),
        )
        .map_err(|e| io_error("mount tmpfs on", dir, e.into()))
    }
}
