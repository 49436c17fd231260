//! The error type of device-mapper activation and removal.

use std::io;
use std::path::PathBuf;

use crate::class::{class_of_io, ErrorClass};
use crate::dm_table::TableError;
use crate::kernel::ProbeError;
use crate::superblock::SuperblockError;

/// Errors of device-mapper activation and removal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DmError {
    /// The running kernel has no device-mapper at all.
    #[error("this kernel has no device-mapper")]
    NoDeviceMapper {
        /// What the probe found.
        #[source]
        source: ProbeError,
    },
    /// The device-mapper control node exists but could not be opened (permissions, say).
    #[error("open {}", path.display())]
    Control {
        /// The control node, `/dev/mapper/control`.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// udev's control socket exists but refuses connections: a leftover of an exited udevd.
    /// device-mapper calls (ours and libcryptsetup's) would wait for udev for ever.
    #[error(
        "{} exists but no udev daemon listens on it (left behind by a udevd that exited); \
         device-mapper would wait for udev for ever: remove it, or start udevd",
        path.display()
    )]
    StaleUdev {
        /// The socket, `/run/udev/control`.
        path: PathBuf,
    },
    /// The kernel refused a table and does not list its target type.
    #[error("this kernel has no dm-{target} target (needed by {name}; is the dm-{target} module available?)")]
    MissingTarget {
        /// `integrity` or `crypt`.
        target: &'static str,
        /// The device whose table was refused.
        name: String,
    },
    /// A device-mapper call failed.
    #[error("{step} {name}")]
    Ioctl {
        /// The call, in words.
        step: &'static str,
        /// The device-mapper name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The source device is unusable.
    #[error("{step} {}", device.display())]
    Source {
        /// The check, in words.
        step: &'static str,
        /// The source device.
        device: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A mapping with this name already exists.
    #[error("device-mapper name {name} is already in use")]
    NameInUse {
        /// The name.
        name: String,
    },
    /// The mapping is open; nothing was removed.
    #[error("mapping {name} is busy (open count {open_count}: mounted or held open); nothing was removed")]
    Busy {
        /// The name.
        name: String,
        /// Its open count.
        open_count: i32,
    },
    /// The kernel refused the removal as busy: someone opened the device after our check.
    #[error("mapping {name} is busy (it was opened while being removed); it was not removed")]
    BusyOnRemove {
        /// The name.
        name: String,
    },
    /// The device is not one cryptsetup or we created (or, when a run rolls back, not the
    /// one this run created).
    #[error("mapping {name} is not ours (dm UUID {uuid:?}); refusing to remove it")]
    NotOurs {
        /// The name.
        name: String,
        /// Its dm UUID.
        uuid: String,
    },
    /// `cleanup` found something by that name that is not a LUKS2 crypt-over-integrity stack.
    #[error(
        "mapping {name} is not a LUKS2 crypt-over-integrity stack ({reason}); refusing to \
         remove it (use --force to remove it anyway)"
    )]
    NotAStack {
        /// The name.
        name: String,
        /// What does not fit.
        reason: &'static str,
    },
    /// A dm UUID device-mapper would not take (too long, or with a forbidden byte).
    #[error("device-mapper refuses the dm UUID {uuid:?}")]
    InvalidUuid {
        /// The UUID.
        uuid: String,
    },
    /// The key does not fit the header.
    #[error("the header expects a {header}-byte volume key, got {given} bytes")]
    KeySize {
        /// Key size in the header.
        header: usize,
        /// Key size given.
        given: usize,
    },
    /// The integrity superblock is unreadable or invalid.
    #[error("read the dm-integrity superblock of {}", device.display())]
    Superblock {
        /// The source device.
        device: PathBuf,
        /// Why.
        #[source]
        source: SuperblockError,
    },
    /// A table could not be built from the header.
    #[error(transparent)]
    Table(#[from] TableError),
    /// A `/dev/mapper` node could not be made or removed.
    #[error("{step} {}", path.display())]
    Node {
        /// What we were doing.
        step: &'static str,
        /// The node.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step failed and undoing earlier steps failed too.
    #[error("{cause}; rollback also failed: {}", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Rollback {
        /// The failure that started the rollback.
        cause: Box<DmError>,
        /// The undo steps that failed.
        failures: Vec<DmError>,
    },
}

impl DmError {
    /// The class of this error (for exit statuses).
    pub fn class(&self) -> ErrorClass {
        match self {
            DmError::NoDeviceMapper { .. }
            | DmError::Table(TableError::Unsupported(_))
            | DmError::Table(TableError::LegacyPadding { .. })
            | DmError::MissingTarget { .. }
            | DmError::StaleUdev { .. } => ErrorClass::Unsupported,
            DmError::Ioctl { source, .. }
            | DmError::Control { source, .. }
            | DmError::Source { source, .. }
            | DmError::Node { source, .. } => class_of_io(source),
            DmError::NameInUse { .. } | DmError::Busy { .. } | DmError::BusyOnRemove { .. } => {
                ErrorClass::Busy
            }
            DmError::NotOurs { .. }
            | DmError::NotAStack { .. }
            | DmError::InvalidUuid { .. }
            | DmError::KeySize { .. }
            | DmError::Table(_) => ErrorClass::InvalidInput,
            DmError::Superblock { source, .. } => source.class(),
            DmError::Rollback { .. } => ErrorClass::RollbackFailed,
        }
    }
}
