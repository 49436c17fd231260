//! The crate's error type.
//!
//! Every module owns an error enum for its own concern (`SparseError`, `FormatError`, `LuksError`,
//! `DmError`, ...). Each of those names the device or file, the step and the cause in its message and
//! exposes the underlying error through `source()` rather than repeating its text. [`Error`] gathers
//! them for the public API, adds the pipeline's own failures, and maps every error to an
//! [`ErrorClass`], which the command-line tool turns into its exit status.

use std::path::PathBuf;

use crate::name::NameError;

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
        }
    }
}

/// Everything that can go wrong in scratchcrypt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mapping name was rejected.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Copying the image or zeroing ranges failed.
    #[error(transparent)]
    Sparse(#[from] crate::sparse::SparseError),
    /// Building the ext4 image failed.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// Formatting the LUKS2 header failed.
    #[error(transparent)]
    Luks(#[from] crate::luks::LuksError),
    /// A device-mapper operation failed.
    #[error(transparent)]
    Dm(#[from] crate::dm_table::DmError),
    /// A step of `encrypt` or `cleanup` failed; `source` says how.
    #[error("{step} for {}", device.display())]
    Pipeline {
        /// The step that failed.
        step: crate::pipeline::Step,
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
        /// Why, in words ("is a regular file, not a block device").
        reason: String,
        /// The class of the refusal.
        class: ErrorClass,
    },
    /// A step failed, and undoing the earlier steps failed as well.
    #[error("{}; rolling back also failed: {}", chain(cause.as_ref()), rollback.iter().map(|e| chain(e)).collect::<Vec<_>>().join("; "))]
    Rollback {
        /// The failure that started the rollback.
        cause: Box<Error>,
        /// Every undo action that failed, in the order they ran.
        rollback: Vec<Error>,
    },
}

impl Error {
    /// The class of this error, for exit statuses and for callers that branch on the kind.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Name(_) => ErrorClass::InvalidInput,
            Error::Sparse(e) => e.class(),
            Error::Format(e) => e.class(),
            Error::Luks(e) => e.class(),
            Error::Dm(e) => e.class(),
            Error::Pipeline { source, .. } => source.class(),
            Error::Io { source, .. } => class_of_io(source),
            Error::Refused { class, .. } => *class,
            Error::Rollback { .. } => ErrorClass::RollbackFailed,
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
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            ErrorClass::Unsupported
        }
        _ => ErrorClass::Io,
    }
}

/// An error and all its causes on one line: `a: b: c`.
///
/// A pipeline step names itself ("build the ext4 image for /dev/vdb") and the module error it
/// wraps often starts with the same words ("build the ext4 image /tmp/x/image.ext4: ..."): the
/// repeated words are dropped from the cause, so the line says each thing once.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut step = step_text(err);
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        let text = match step.as_deref().and_then(|s| text.strip_prefix(s)) {
            Some(rest) => rest.trim_start().to_string(),
            None => text,
        };
        if !text.is_empty() {
            line.push_str(": ");
            line.push_str(&text);
        }
        step = step_text(c);
        cause = c.source();
    }
    line
}

/// The step phrase of a pipeline error, if `err` is one.
fn step_text(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    match err.downcast_ref::<Error>() {
        Some(Error::Pipeline { step, .. }) => Some(step.to_string()),
        _ => None,
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Step;

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

    #[test]
    fn chain_drops_the_step_words_a_cause_repeats() {
        let err = pipeline(
            Step::BuildImage,
            "/dev/vdb",
            io("build the ext4 image", "/tmp/x/image.ext4"),
        );
        let line = chain(&err);
        assert!(
            line.starts_with("build the ext4 image for /dev/vdb: /tmp/x/image.ext4: "),
            "{line}"
        );
        assert_eq!(line.matches("build the ext4 image").count(), 1, "{line}");
    }

    #[test]
    fn chain_keeps_causes_that_say_something_else() {
        let err = pipeline(
            Step::TempDir,
            "/rotmp",
            io("create a temp dir in", "/rotmp"),
        );
        let line = chain(&err);
        assert!(
            line.starts_with("prepare the temp dir for /rotmp: create a temp dir in /rotmp: "),
            "{line}"
        );
    }
}
