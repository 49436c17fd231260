//! The named steps of `encrypt` and `cleanup`.
//!
//! They live below the pipeline so that the crate error ([`crate::Error`]) can name the step
//! that failed without importing the pipeline, and so that the JSON report and progress
//! callbacks speak the same words.

use serde::Serialize;

/// The steps of `encrypt` and `cleanup`, named in errors and in the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Step {
    /// Waiting for the source and checking it.
    ProbeSource,
    /// Looking for someone's data on the source (the data guard).
    CheckData,
    /// Checking that the mapping names are free.
    CheckNames,
    /// Checking that the kernel's dm-integrity and dm-crypt can carry the stack.
    CheckKernel,
    /// Drawing the volume key.
    GenerateKey,
    /// Writing the LUKS2 header.
    FormatHeader,
    /// Creating the device-mapper devices.
    Activate,
    /// Opening the new mapping.
    OpenMapping,
    /// Creating and probing the private temp dir.
    TempDir,
    /// Building the ext4 image.
    BuildImage,
    /// Zeroing the plan's ranges on the mapping.
    ZeroRanges,
    /// Copying the image onto the mapping.
    CopyImage,
    /// Removing the temp dir.
    RemoveTempDir,
    /// Letting udev probe the written mapping (`/dev/disk/by-uuid` links, `dm::announce`).
    Announce,
    /// Mounting the new file system.
    Mount,
    /// Unmounting before removal.
    Unmount,
    /// Removing the device-mapper devices.
    RemoveMapping,
    /// Growing a fast-started filesystem online.
    Grow,
    /// Reading the state of a mapping.
    Status,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::ProbeSource => "check the source device",
            Step::CheckData => "check the source for existing data",
            Step::CheckNames => "check the mapping names",
            Step::CheckKernel => "check the kernel's device-mapper targets",
            Step::GenerateKey => "generate the volume key",
            Step::FormatHeader => "format the LUKS2 header",
            Step::Activate => "activate the mapping",
            Step::OpenMapping => "open the mapping",
            Step::TempDir => "prepare the temp dir",
            Step::BuildImage => "build the ext4 image",
            Step::ZeroRanges => "zero the metadata ranges",
            Step::CopyImage => "copy the image",
            Step::RemoveTempDir => "remove the temp dir",
            Step::Announce => "announce the file system to udev",
            Step::Mount => "mount the file system",
            Step::Unmount => "unmount the file system",
            Step::RemoveMapping => "remove the mapping",
            Step::Grow => "grow the file system",
            Step::Status => "read the status",
        })
    }
}
