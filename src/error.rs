//! The crate's error type.
//!
//! Every module owns an error enum for its own concern ([`SparseError`], [`FormatError`],
//! [`LuksError`], [`DmError`], ...). Each of those names the device or file, the step and the
//! cause in its message and exposes the underlying error through `source()` rather than
//! repeating its text. [`Error`] gathers them for the public API, adds the pipeline's own
//! failures, and maps every error to an [`ErrorClass`], which the command-line tool turns into
//! its exit status. [`Error::line`] puts an error and all its causes on one line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::class::{class_of_io, ErrorClass};
use crate::dm::DmError;
use crate::format::FormatError;
use crate::key::KeyError;
use crate::luks::LuksError;
use crate::name::NameError;
use crate::resize::ResizeError;
use crate::signature::{Found, SignatureError};
use crate::sparse::SparseError;
use crate::step::Step;

/// Everything that can go wrong in scratchcrypt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mapping name was rejected.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Drawing the volume key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Copying the image or zeroing ranges failed.
    #[error(transparent)]
    Sparse(#[from] SparseError),
    /// Building the ext4 image failed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Formatting the LUKS2 header failed.
    #[error(transparent)]
    Luks(#[from] LuksError),
    /// A device-mapper operation failed.
    #[error(transparent)]
    Dm(#[from] DmError),
    /// Growing the filesystem online failed.
    #[error(transparent)]
    Resize(#[from] ResizeError),
    /// Probing the source for existing data failed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A step of `encrypt` or `cleanup` failed; `source` says how.
    #[error("{step} for {}", device.display())]
    Pipeline {
        /// The step that failed.
        step: Step,
        /// The source device (for `encrypt`) or mapping (for `cleanup`).
        device: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// An operating-system call of the pipeline failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done, e.g. "create the temp dir".
        what: &'static str,
        /// The file, directory or device it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The request is refused before anything is touched.
    #[error("{} {reason}", path.display())]
    Refused {
        /// The device, directory or mapping.
        path: PathBuf,
        /// Why.
        reason: Refusal,
    },
    /// A signal (or the caller's [`CancelToken`](crate::CancelToken)) stopped the run; what it
    /// had created was rolled back.
    #[error("interrupted by {}; everything this run created was removed", crate::cancel::signal_name(*signal))]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// A step failed, and undoing the earlier steps failed as well.
    #[error("{}; rolling back also failed: {}", cause.line(), Lines(rollback))]
    Rollback {
        /// The failure that started the rollback.
        cause: Box<Error>,
        /// Every undo action that failed, in the order they ran.
        rollback: Vec<Error>,
    },
}

/// Why a source or directory was refused before anything was written to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The path did not appear within the wait time.
    Missing {
        /// How long we waited.
        waited: Duration,
    },
    /// A regular file where a block device was expected.
    RegularFile,
    /// A character device where a block device was expected.
    CharDevice,
    /// Neither a block device nor a file.
    NotBlockDevice,
    /// Another process holds our advisory lock on it.
    Locked,
    /// Mounted, part of a device-mapper table, or held open exclusively.
    InUse,
    /// A fast start was asked for without a mount: the filesystem can only grow mounted.
    FastStartNeedsMount,
    /// The source holds a signature (file system, partition table, RAID or LVM member, swap,
    /// a LUKS volume not made by scratchcrypt) and the caller did not force the run.
    HoldsData(Found),
    /// The source holds several signatures at once (libblkid would not choose one).
    HoldsSeveralSignatures,
    /// Not a fast-started filesystem this tool can grow.
    NotGrowable,
    /// `cleanup` without `--unmount` of a mapping that is mounted: nothing was touched (its
    /// grower, if any, goes on).
    Mounted {
        /// Where it is mounted.
        at: PathBuf,
    },
    /// The recorded mount point of a fast start is not (or no longer) on its mapping.
    NotMountedFrom {
        /// The mapping it should be on.
        mapping: PathBuf,
    },
    /// Another file system is mounted over one of the mapping's mount points: an unmount by
    /// path would remove that one, not ours.
    StackedOver {
        /// The mount point.
        at: PathBuf,
    },
    /// A fast start was asked for where the file system cannot grow online: the process lacks
    /// CAP_SYS_RESOURCE, which the kernel's `EXT4_IOC_RESIZE_FS` needs.
    CannotGrowOnline,
    /// Too small for header, integrity metadata and ext4.
    TooSmall {
        /// Its size in bytes.
        size: u64,
        /// The least we accept.
        min: u64,
    },
}

impl Refusal {
    /// The class of this refusal.
    pub fn class(&self) -> ErrorClass {
        match self {
            Refusal::Locked
            | Refusal::InUse
            | Refusal::HoldsData(_)
            | Refusal::HoldsSeveralSignatures
            | Refusal::Mounted { .. }
            | Refusal::StackedOver { .. } => ErrorClass::Busy,
            Refusal::CannotGrowOnline => ErrorClass::PermissionDenied,
            _ => ErrorClass::InvalidInput,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing { waited } => {
                write!(f, "does not exist (waited {:.1} s)", waited.as_secs_f64())
            }
            Refusal::RegularFile => f.write_str(
                "is a regular file, not a block device (attach it to a loop device first)",
            ),
            Refusal::CharDevice => f.write_str("is a character device, not a block device"),
            Refusal::NotBlockDevice => f.write_str("is not a block device"),
            Refusal::Locked => {
                f.write_str("is locked by another process (another scratchcrypt run?)")
            }
            Refusal::InUse => f.write_str(
                "is in use (mounted, part of a device-mapper table, or held open exclusively)",
            ),
            Refusal::HoldsData(found) => write!(
                f,
                "holds {found}: encrypting would destroy it (use --force to write over it)"
            ),
            Refusal::HoldsSeveralSignatures => f.write_str(
                "holds several signatures at once (see `wipefs -n`): encrypting would destroy \
                 them (use --force to write over it)",
            ),
            Refusal::FastStartNeedsMount => f.write_str(
                "cannot start small without a mount point: the file system grows online, \
                 mounted (give --mount)",
            ),
            Refusal::NotGrowable => f.write_str(
                "was not made with a fast start (no growth record, or its superblock does not \
                 ask for noinit_itable); there is nothing to grow",
            ),
            Refusal::Mounted { at } => write!(
                f,
                "is mounted on {}: give --unmount to unmount it first (nothing was stopped or \
                 removed)",
                at.display()
            ),
            Refusal::NotMountedFrom { mapping } => write!(
                f,
                "is not on {} (unmounted or moved since the fast start?): nothing was written, \
                 and no other file system is resized",
                mapping.display()
            ),
            Refusal::StackedOver { at } => write!(
                f,
                "is mounted on {}, but another file system is mounted over it there: unmounting \
                 by that path would remove the other one (nothing was unmounted or removed)",
                at.display()
            ),
            Refusal::CannotGrowOnline => f.write_str(
                "cannot be fast-started here: growing a mounted ext4 needs CAP_SYS_RESOURCE, \
                 which this process lacks (run without --fast-start, or add \
                 --or-full-format to format the full size instead); nothing was written",
            ),
            Refusal::TooSmall { size, min } => write!(
                f,
                "is too small: {size} bytes, at least {min} are needed for the LUKS2 header, \
                 the integrity metadata and ext4"
            ),
        }
    }
}

impl Error {
    /// The class of this error, for exit statuses and for callers that branch on the kind.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Name(_) => ErrorClass::InvalidInput,
            Error::Key(e) => e.class(),
            Error::Sparse(e) => e.class(),
            Error::Format(e) => e.class(),
            Error::Luks(e) => e.class(),
            Error::Dm(e) => e.class(),
            Error::Resize(e) => e.class(),
            Error::Signature(e) => e.class(),
            Error::Pipeline { source, .. } => source.class(),
            Error::Io { source, .. } => class_of_io(source),
            Error::Refused { reason, .. } => reason.class(),
            Error::Rollback { .. } => ErrorClass::RollbackFailed,
            Error::Interrupted { .. } => ErrorClass::Interrupted,
        }
    }

    /// The signal that interrupted the run, if a signal (or a cancel) stopped it and the
    /// rollback succeeded.
    pub fn interrupted_by(&self) -> Option<i32> {
        match self {
            Error::Interrupted { signal } => Some(*signal),
            Error::Pipeline { source, .. } => source.interrupted_by(),
            _ => None,
        }
    }

    /// The step of `encrypt` or `cleanup` that failed, if this error names one.
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::Pipeline { step, .. } => Some(*step),
            Error::Rollback { cause, .. } => cause.step(),
            _ => None,
        }
    }

    /// This error and all its causes on one line: `a: b: c`.
    ///
    /// ```
    /// let err = scratchcrypt::MappingName::new("a/b").unwrap_err();
    /// let err = scratchcrypt::Error::from(err);
    /// assert_eq!(err.line(), "invalid mapping name \"a/b\": contains `/`");
    /// ```
    pub fn line(&self) -> String {
        chain(self)
    }
}

/// An error and all its causes on one line: `a: b: c`.
///
/// Each layer's message says only what that layer knows (the step and the device, then the
/// module's operation and file, then the OS error), so joining them says each thing once.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// Several errors, each on its one line, joined by `; `.
struct Lines<'a>(&'a [Error]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&e.line())?;
        }
        Ok(())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn io(what: &'static str, path: &str) -> Error {
        Error::Io {
            what,
            path: PathBuf::from(path),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        }
    }

    fn pipeline(step: Step, device: &str, source: Error) -> Error {
        Error::Pipeline {
            step,
            device: PathBuf::from(device),
            source: Box::new(source),
        }
    }

    /// The ext4 builder's error names the image, not the step: the line says the step once.
    #[test]
    fn a_build_image_failure_says_the_step_once() {
        let image = std::path::Path::new("/tmp/x/image.ext4");
        let cause = FormatError::CreateImage {
            image: image.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let line = pipeline(Step::BuildImage, "/dev/vdb", cause.into()).line();
        assert!(
            line.starts_with(
                "build the ext4 image for /dev/vdb: create the image file /tmp/x/image.ext4: "
            ),
            "{line}"
        );
        assert_eq!(line.matches("build the ext4 image").count(), 1, "{line}");
    }

    /// Every cause reaches the line, in order, and the step is found through a rollback.
    #[test]
    fn chain_keeps_every_cause_in_order() {
        let err = pipeline(
            Step::TempDir,
            "/rotmp",
            io("create a temp dir in", "/rotmp"),
        );
        let line = err.line();
        assert!(
            line.starts_with("prepare the temp dir for /rotmp: create a temp dir in /rotmp: "),
            "{line}"
        );
        let rolled = Error::Rollback {
            cause: Box::new(err),
            rollback: vec![io("remove", "/rotmp/x"), io("unmount", "/mnt")],
        };
        assert_eq!(rolled.step(), Some(Step::TempDir));
        let line = rolled.line();
        assert!(
            line.contains("; rolling back also failed: remove /rotmp/x: "),
            "{line}"
        );
        assert!(line.contains("; unmount /mnt: "), "{line}");
        assert_eq!(rolled.class(), ErrorClass::RollbackFailed);
    }

    /// Refusals carry their class: busy for locks and claims, invalid input otherwise.
    #[test]
    fn refusals_carry_their_class() {
        let refused = |reason| Error::Refused {
            path: PathBuf::from("/dev/x"),
            reason,
        };
        assert_eq!(refused(Refusal::InUse).class(), ErrorClass::Busy);
        assert_eq!(refused(Refusal::Locked).class(), ErrorClass::Busy);
        let small = refused(Refusal::TooSmall { size: 5, min: 10 });
        assert_eq!(small.class(), ErrorClass::InvalidInput);
        assert!(
            small
                .to_string()
                .starts_with("/dev/x is too small: 5 bytes"),
            "{small}"
        );
    }
}
