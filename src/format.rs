//! Placeholder: filled by its own issue. Until then every entry point returns a clear error.

use std::path::PathBuf;

use crate::error::ErrorClass;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The step is not implemented yet.
    #[error("build the ext4 image for {}: not implemented yet", device.display())]
    NotImplemented {
        /// The device or file the step was asked to work on.
        device: PathBuf,
    },
}

impl FormatError {
    /// The class of this error (for exit statuses).
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Unsupported
    }
}
