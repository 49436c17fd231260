//! Mapping names: the default name for a source device, and validation of user-given names.
//!
//! A LUKS2 volume with integrity is two device-mapper devices: `<name>` (dm-crypt) stacked on
//! `<name>_dif` (dm-integrity). The kernel limits a device-mapper name to `DM_NAME_LEN - 1` = 127
//! bytes (`include/uapi/linux/dm-ioctl.h`), so `<name>` itself may use at most 123 bytes, leaving
//! room for the `_dif` suffix. [`MappingName`] checks that once; everything below takes the
//! validated type.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use devicemapper::{DmName, DmNameBuf};

/// Longest device-mapper name the kernel accepts (`DM_NAME_LEN` is 128 including the NUL).
pub const DM_NAME_MAX: usize = 127;

/// Suffix of the dm-integrity device under the crypt device, as cryptsetup names it.
pub const INTEGRITY_SUFFIX: &str = "_dif";

/// Longest name usable for the crypt device, so that `<name>_dif` still fits.
pub const MAPPING_NAME_MAX: usize = DM_NAME_MAX - INTEGRITY_SUFFIX.len();

/// Prefix of default mapping names (the Go original's template was `dm-crypt-%s`).
pub const DEFAULT_PREFIX: &str = "dm-crypt-";

/// Why a mapping name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mapping name {name:?}: {reason}")]
pub struct NameError {
    /// The rejected name (lossily decoded for display).
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A validated name for the crypt mapping; `<name>_dif` is valid as well.
///
/// It carries both device-mapper names as devicemapper's [`DmNameBuf`], the type the
/// device-mapper seam (`dm::DeviceMapper`) takes, so no unchecked string reaches an
/// ioctl.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MappingName {
    crypt: DmNameBuf,
    integrity: DmNameBuf,
}

impl MappingName {
    /// Validate `name` as a mapping name.
    ///
    /// Accepted: 1 to `MAPPING_NAME_MAX` (123) bytes of printable ASCII without `/`, not `.` or
    /// `..`. That is stricter than the kernel (which takes any byte but `/`), and it keeps names
    /// safe to use as file names under `/dev/mapper` and in udev rules.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let reject = |reason| {
            Err(NameError {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() {
            return reject("the name is empty");
        }
        if name.len() > MAPPING_NAME_MAX {
            return reject(
                "longer than 123 bytes (device-mapper allows 127, and `_dif` is appended)",
            );
        }
        if name == "." || name == ".." {
            return reject("`.` and `..` are not usable as device names");
        }
        if name.contains('/') {
            return reject("contains `/`");
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return reject("only printable ASCII without spaces is allowed");
        }
        Self::from_checked(name).ok_or(NameError {
            name: name.to_owned(),
            reason: "device-mapper refuses it",
        })
    }

    /// Both device-mapper names of a name that passed our (stricter) checks.
    fn from_checked(name: &str) -> Option<Self> {
        Some(MappingName {
            crypt: DmNameBuf::new(name.to_owned()).ok()?,
            integrity: DmNameBuf::new(format!("{name}{INTEGRITY_SUFFIX}")).ok()?,
        })
    }

    /// The default name for `source` (see [`crypt_device_name`]).
    ///
    /// ```
    /// use std::path::Path;
    /// use scratchcrypt::MappingName;
    ///
    /// let name = MappingName::for_source(Path::new("/dev/vdb"));
    /// assert_eq!(name.as_str(), "dm-crypt--dev-vdb");
    /// assert_eq!(name.integrity_name(), "dm-crypt--dev-vdb_dif");
    /// assert_eq!(name.mapper_path(), Path::new("/dev/mapper/dm-crypt--dev-vdb"));
    /// ```
    pub fn for_source(source: &Path) -> MappingName {
        // crypt_device_name only emits ASCII alphanumerics and `-`, within the length limit,
        // so this cannot fail; the fallback keeps that promise without a panic.
        let name = crypt_device_name(source);
        Self::from_checked(&name)
            .or_else(|| Self::from_checked(DEFAULT_PREFIX.trim_end_matches('-')))
            .unwrap_or_else(|| unreachable!("`dm-crypt` is a valid device-mapper name"))
    }

    /// The crypt device's name.
    pub fn as_str(&self) -> &str {
        // A DmName is built from a &str, so its bytes are UTF-8.
        std::str::from_utf8(self.crypt.as_bytes()).unwrap_or_default()
    }

    /// The crypt device's name as device-mapper takes it.
    pub fn dm_name(&self) -> &DmName {
        &self.crypt
    }

    /// The dm-integrity device's name (`<name>_dif`) as device-mapper takes it.
    pub fn integrity_dm_name(&self) -> &DmName {
        &self.integrity
    }

    /// The name of the dm-integrity device under it: `<name>_dif`.
    pub fn integrity_name(&self) -> String {
        self.integrity.to_string()
    }

    /// `/dev/mapper/<name>`.
    pub fn mapper_path(&self) -> std::path::PathBuf {
        Path::new("/dev/mapper").join(self.as_str())
    }
}

impl fmt::Display for MappingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MappingName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        MappingName::new(s)
    }
}

/// The default mapping name for `source`: `dm-crypt-` followed by the path with every run of
/// non-alphanumeric bytes replaced by one `-` (so `/dev/sdb` gives `dm-crypt--dev-sdb`).
///
/// Names longer than `MAPPING_NAME_MAX` (123) are shortened deterministically: the first 106 bytes
/// are kept and `-` plus 16 hex digits of the FNV-1a 64-bit hash of the *whole* source path is
/// appended, so two long paths that share a prefix still get different names, and the same path
/// always gets the same name.
pub fn crypt_device_name(source: &Path) -> String {
    let bytes = source.as_os_str().as_bytes();
    let mut name = String::from(DEFAULT_PREFIX);
    let mut in_run = false;
    for &b in bytes {
        if b.is_ascii_alphanumeric() {
            name.push(char::from(b));
            in_run = false;
        } else if !in_run {
            name.push('-');
            in_run = true;
        }
    }
    if name.len() <= MAPPING_NAME_MAX {
        return name;
    }
    let hash = format!("-{:016x}", fnv1a64(bytes));
    name.truncate(MAPPING_NAME_MAX - hash.len());
    name.push_str(&hash);
    name
}

/// FNV-1a, 64 bit: tiny, dependency-free and stable across versions and platforms.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    /// The Go original's examples: runs of non-alphanumerics collapse to one dash.
    #[test]
    fn default_name_matches_original_template() {
        assert_eq!(
            crypt_device_name(Path::new("/dev/sdb")),
            "dm-crypt--dev-sdb"
        );
        assert_eq!(
            crypt_device_name(Path::new("/dev/disk/by-id//virtio-abc_1")),
            "dm-crypt--dev-disk-by-id-virtio-abc-1"
        );
    }

    /// Non-UTF-8 bytes are non-alphanumeric and become dashes; nothing panics.
    #[test]
    fn default_name_handles_non_utf8() {
        let p = OsString::from_vec(b"/dev/\xff\xfe/x".to_vec());
        assert_eq!(crypt_device_name(Path::new(&p)), "dm-crypt--dev-x");
    }

    /// Long paths are cut to fit `<name>_dif` into 127 bytes, stay valid and stay distinct.
    #[test]
    fn long_paths_are_shortened_deterministically() {
        let a = format!("/dev/disk/by-path/{}a", "x".repeat(200));
        let b = format!("/dev/disk/by-path/{}b", "x".repeat(200));
        let na = crypt_device_name(Path::new(&a));
        let nb = crypt_device_name(Path::new(&b));
        assert_eq!(na.len(), MAPPING_NAME_MAX);
        assert_ne!(na, nb);
        assert_eq!(na, crypt_device_name(Path::new(&a)));
        let m = MappingName::new(&na).unwrap();
        assert_eq!(m.integrity_name().len(), DM_NAME_MAX);
    }

    /// Every rule of MappingName rejects what it should and names the reason.
    #[test]
    fn invalid_names_are_rejected() {
        for bad in ["", ".", "..", "a/b", "with space", "tab\t"] {
            let err = MappingName::new(bad).unwrap_err();
            assert_eq!(err.name, bad);
        }
        assert!(MappingName::new(&"n".repeat(124)).is_err());
        assert!(MappingName::new(&"n".repeat(123)).is_ok());
        assert_eq!(
            MappingName::new("scratch").unwrap().mapper_path(),
            Path::new("/dev/mapper/scratch")
        );
    }
}
