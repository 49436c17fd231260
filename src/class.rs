//! The coarse class of a failure, shared by every module's error type.
//!
//! # Why a separate floor module
//! Each module's error enum can say which class it belongs to ([`ErrorClass`]) without knowing
//! the crate's aggregate [`Error`](crate::Error), and the command-line tool turns the class into
//! its exit status. This is the one module every other module may import: it imports nothing
//! of the crate.

/// Coarse classes of failure, used for the command-line tool's exit status.
///
/// The classes let scripts tell "you asked for something impossible" from "the kernel or the
/// hardware refused" without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The request itself is wrong: bad path, not a block device, too small, invalid name.
    InvalidInput,
    /// The target is in use: mounted, held open, or the mapping name is taken.
    Busy,
    /// This kernel or system lacks something needed (device-mapper, a dm target, SEEK_DATA).
    Unsupported,
    /// An operating-system call failed while doing the work (I/O error, no space, ...).
    Io,
    /// The work failed and undoing it failed too: something may be left behind.
    RollbackFailed,
    /// The operating system refused for lack of privilege (EACCES, EPERM): not root, a missing
    /// capability (CAP_SYS_ADMIN; CAP_SYS_RESOURCE for online growth), a device node or
    /// `/dev/mapper/control` that may not be opened.
    PermissionDenied,
    /// A signal (or the caller's cancel token) stopped the work; what it had created was
    /// rolled back. The command-line tool exits with 128 + the signal number.
    Interrupted,
}

impl ErrorClass {
    /// The exit status the command-line tool uses for this class (usage errors from the
    /// argument parser use 2, as clap does).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::InvalidInput => 3,
            ErrorClass::Busy => 4,
            ErrorClass::Unsupported => 5,
            ErrorClass::Io => 6,
            ErrorClass::RollbackFailed => 7,
            ErrorClass::PermissionDenied => 8,
            // 128 + SIGINT: the conventional status; the tool uses the actual signal.
            ErrorClass::Interrupted => 130,
        }
    }
}

/// Classify a raw OS error the same way in every module.
pub fn class_of_io(err: &std::io::Error) -> ErrorClass {
    match err.raw_os_error() {
        Some(libc::ENOENT)
        | Some(libc::ENOTBLK)
        | Some(libc::EINVAL)
        | Some(libc::ENAMETOOLONG) => ErrorClass::InvalidInput,
        Some(libc::EBUSY) | Some(libc::EEXIST) => ErrorClass::Busy,
        Some(libc::EACCES) | Some(libc::EPERM) => ErrorClass::PermissionDenied,
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            ErrorClass::Unsupported
        }
        _ => ErrorClass::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Permission errors keep their own class (and exit status), apart from other I/O errors.
    #[test]
    fn os_errors_are_classed() {
        let class = |e| class_of_io(&std::io::Error::from_raw_os_error(e));
        assert_eq!(class(libc::EACCES), ErrorClass::PermissionDenied);
        assert_eq!(class(libc::EPERM), ErrorClass::PermissionDenied);
        assert_eq!(class(libc::EIO), ErrorClass::Io);
        assert_eq!(class(libc::EBUSY), ErrorClass::Busy);
        assert_eq!(class(libc::ENODEV), ErrorClass::Unsupported);
        assert_eq!(class(libc::ENOENT), ErrorClass::InvalidInput);
        let codes: Vec<i32> = [
            ErrorClass::InvalidInput,
            ErrorClass::Busy,
            ErrorClass::Unsupported,
            ErrorClass::Io,
            ErrorClass::RollbackFailed,
            ErrorClass::PermissionDenied,
        ]
        .iter()
        .map(|c| c.exit_code())
        .collect();
        assert_eq!(codes, vec![3, 4, 5, 6, 7, 8]);
    }
}
