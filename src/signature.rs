//! The data guard: what is on the source before we write over it.
//!
//! # Why
//! `encrypt` destroys whatever the source holds, and a device path is easy to get wrong
//! (`/dev/sdb` instead of `/dev/sdc`). mkfs and cryptsetup look first and ask; so do we, with
//! libblkid, the library behind `blkid`, `wipefs` and mkfs' own check: file systems, partition
//! tables, RAID and LVM members, swap, LUKS. Anything found refuses the run before a byte is
//! written, unless the caller forces it.
//!
//! One kind of volume is always re-made: a LUKS2 header whose `subsystem` is scratchcrypt's
//! ([`LUKS2_SUBSYSTEM`]). A scratch disk is re-encrypted at every boot, and its data died with
//! its key at the last shutdown.
//!
//! The probe reads only the raw source, where every block is readable (the integrity layer
//! that makes unwritten blocks unreadable sits above it). In confidential computing the host
//! controls the disk and could plant or hide a signature; the guard protects the user from a
//! wrong path, not from the host.

use std::fmt;
use std::path::{Path, PathBuf};

use libblkid_rs::{BlkidProbe, BlkidSafeprobeRet, BlkidSublks, BlkidSublksFlags};

use crate::class::ErrorClass;
use crate::params::LUKS2_SUBSYSTEM;

/// What the probe found on a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No signature: nothing to lose.
    Empty,
    /// A LUKS2 volume scratchcrypt made: a scratch disk to re-make.
    Ours,
    /// Someone's data.
    Foreign(Found),
    /// More than one signature at once (libblkid refuses to choose, as should we).
    Ambiguous,
}

/// A signature libblkid reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// `TYPE` (a file system, `crypto_LUKS`, `swap`, `LVM2_member`, ...) or the partition
    /// table's `PTTYPE` (`gpt`, `dos`).
    pub kind: String,
    /// `USAGE`: filesystem, raid, crypto, other.
    pub usage: Option<String>,
    /// `LABEL`.
    pub label: Option<String>,
    /// `SUBSYSTEM` (LUKS2).
    pub subsystem: Option<String>,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.usage.as_deref() {
            Some(usage) if usage != self.kind => write!(f, "{} ({usage})", self.kind)?,
            _ if self.kind == "gpt" || self.kind == "dos" => {
                write!(f, "a {} partition table", self.kind)?
            }
            _ => f.write_str(&self.kind)?,
        }
        if let Some(label) = &self.label {
            write!(f, " labelled {label:?}")?;
        }
        if let Some(subsystem) = &self.subsystem {
            write!(f, ", subsystem {subsystem:?}")?;
        }
        Ok(())
    }
}

/// Probing the source failed.
#[derive(Debug, thiserror::Error)]
#[error("probe {} for existing data with libblkid: {detail}", path.display())]
pub struct SignatureError {
    /// The source.
    pub path: PathBuf,
    /// libblkid's error.
    pub detail: String,
    /// The errno behind it, if libblkid gave one.
    pub errno: Option<i32>,
}

impl SignatureError {
    /// The class of the failure: a source we may not read is a permission error, and so on.
    pub fn class(&self) -> ErrorClass {
        match self.errno {
            Some(e) => crate::class::class_of_io(&std::io::Error::from_raw_os_error(e)),
            None => ErrorClass::Io,
        }
    }
}

/// Probe `path` (superblocks and partition tables) and judge what is there.
pub fn probe(path: &Path) -> Result<Verdict, SignatureError> {
    let fail = |e: libblkid_rs::BlkidErr| SignatureError {
        path: path.to_path_buf(),
        errno: errno_of(&e),
        detail: e.to_string(),
    };
    let mut probe = BlkidProbe::new_from_filename(path).map_err(fail)?;
    probe.enable_superblocks(true).map_err(fail)?;
    // VERSION and USAGE are not in libblkid's default set; the verdict needs the first, the
    // message the second.
    probe
        .set_superblock_flags(BlkidSublksFlags::new(vec![
            BlkidSublks::Type,
            BlkidSublks::Label,
            BlkidSublks::Usage,
            BlkidSublks::Version,
        ]))
        .map_err(fail)?;
    probe.enable_partitions(true).map_err(fail)?;
    let probed = probe.do_safeprobe().map_err(|e| {
        // libblkid reports a read error as a negative return code that the binding cannot
        // name (`InvalidConv`, or `LibErr(-1)`), with errno set by the failed read.
        let os = std::io::Error::last_os_error();
        match (&e, os.raw_os_error()) {
            (
                libblkid_rs::BlkidErr::InvalidConv | libblkid_rs::BlkidErr::LibErr(_),
                Some(errno),
            ) if errno != 0 => SignatureError {
                path: path.to_path_buf(),
                errno: Some(errno),
                detail: format!("cannot read it ({os}); use --force to write over it unchecked"),
            },
            _ => fail(e),
        }
    })?;
    match probed {
        BlkidSafeprobeRet::None => Ok(Verdict::Empty),
        BlkidSafeprobeRet::Ambiguous => Ok(Verdict::Ambiguous),
        BlkidSafeprobeRet::Success => {
            let mut values = Vec::new();
            for i in 0..probe.numof_values().map_err(fail)? {
                let i = libc::c_uint::try_from(i).unwrap_or(libc::c_uint::MAX);
                values.push(probe.get_value(i).map_err(fail)?);
            }
            Ok(verdict(&values))
        }
    }
}

/// The errno inside a libblkid error, when it carries one.
fn errno_of(e: &libblkid_rs::BlkidErr) -> Option<i32> {
    match e {
        libblkid_rs::BlkidErr::IO(io) => io.raw_os_error(),
        libblkid_rs::BlkidErr::LibErr(code) if *code < 0 => i32::try_from(-code).ok(),
        _ => None,
    }
}

/// Judge the `NAME=value` pairs of a successful probe.
///
/// The values come from the disk, which the host controls: they are only compared and
/// shown (with `{:?}` quoting), never interpreted further.
pub fn verdict(values: &[(String, String)]) -> Verdict {
    let get = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let kind = match get("TYPE").or_else(|| get("PTTYPE")) {
        Some(kind) => kind,
        // A probe that succeeded with no type still found something.
        None if values.is_empty() => return Verdict::Empty,
        None => String::from("an unnamed signature"),
    };
    let found = Found {
        kind,
        usage: get("USAGE"),
        label: get("LABEL"),
        subsystem: get("SUBSYSTEM"),
    };
    let ours = found.kind == "crypto_LUKS"
        && get("VERSION").as_deref() == Some("2")
        && found.subsystem.as_deref() == Some(LUKS2_SUBSYSTEM)
        && get("PTTYPE").is_none();
    if ours {
        Verdict::Ours
    } else {
        Verdict::Foreign(found)
    }
}

#[cfg(test)]
mod tests;
