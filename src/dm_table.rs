//! Pure construction of the two device-mapper tables.
//!
//! # Why pure functions
//! The tables must equal what libcryptsetup 2.6 loads for the same header, or `cryptsetup
//! status`, `close` and a later `cryptsetup open` would disagree with us. Building them as pure
//! functions of ([`LuksParams`], integrity superblock, the kernel's target versions, device
//! references, key reference) lets the unit tests pin every string, per kernel, without one.
//!
//! # The stack
//! - `<name>_dif`: `0 <provided_data_sectors> integrity <source> <data_offset> <tag_size> D <n>
//!   block_size:<sector_size> [fix_padding] [fix_hmac]`. `D` is direct-write mode (no journal),
//!   which the header's persistent `no-journal` flag asks for. The size is the
//!   `provided_data_sectors` the kernel wrote into the superblock at format time
//!   (`drivers/md/dm-integrity.c`, `struct superblock`), as libcryptsetup's
//!   `INTEGRITY_data_sectors` reads it.
//! - `<name>`: `0 <same> crypt capi:authenc(<integrity>,<mode>(<cipher>))-<iv> <key> 0
//!   <_dif device> 0 2 sector_size:<sector_size> integrity:<tag_size>:aead`. The key is
//!   `:<size>:logon:<description>` for a key in the kernel keyring (the default, as cryptsetup
//!   does it), or hex as a fallback.
//!
//! # Why the options follow the superblock and the kernel (issue 25)
//! `fix_padding` and `fix_hmac` are format-time choices: the kernel that formats the device
//! records them as `SB_FLAG_FIXED_PADDING` and `SB_FLAG_FIXED_HMAC` in the superblock, and a
//! later load takes the metadata layout and the HMAC mode from those flags. libcryptsetup 2.6
//! puts an option into the table exactly when the superblock has its flag, and so do we. The
//! superblocks libcryptsetup 2.6.1 formats for our header (no `internal_hash`, no journal MAC)
//! carry `FIXED_PADDING` only, on Linux 5.10, 6.1 and 6.12 alike. The old unconditional
//! `fix_hmac` was an option dm-integrity before 1.7.0 (Linux 5.11) does not know: Debian 11's
//! 5.10 (dm-integrity 1.6.0) refused every table with EINVAL.
//!
//! Each option also needs a target version that parses it ([`Feature`]). What the stack cannot
//! do without is checked by [`check_kernel`] before anything is written, and a superblock
//! asking for an option the kernel lacks is refused while the table is built; both name the
//! target's version and the missing feature ([`Unsupported`]). docs/DESIGN.md says why these
//! minimums and why leaving `fix_hmac` out is safe for this stack.

use std::fmt;

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::key::VolumeKey;
use crate::params::LuksParams;
use crate::superblock::{IntegritySuperblock, SB_FLAG_FIXED_HMAC, SB_FLAG_FIXED_PADDING};

/// A device-mapper target's version, as `DM_LIST_VERSIONS` reports it (`dmsetup targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level.
    pub patch: u32,
}

impl TargetVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> TargetVersion {
        TargetVersion {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for TargetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The versions of the two targets of the stack, as the kernel lists them. `None`: not listed,
/// which `DM_LIST_VERSIONS` also says of a target whose module is not loaded yet (the kernel
/// loads it on the first table that names it), so `None` is "unknown", not "missing".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelTargets {
    /// dm-integrity's version.
    pub integrity: Option<TargetVersion>,
    /// dm-crypt's version.
    pub crypt: Option<TargetVersion>,
}

impl KernelTargets {
    /// The versions of `integrity` and `crypt` in a `DM_LIST_VERSIONS` answer.
    pub fn from_list<S: AsRef<str>>(list: &[(S, TargetVersion)]) -> KernelTargets {
        let find = |name: &str| {
            list.iter()
                .find(|(n, _)| n.as_ref() == name)
                .map(|(_, v)| *v)
        };
        KernelTargets {
            integrity: find("integrity"),
            crypt: find("crypt"),
        }
    }
}

/// A table feature and the first target version that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// `integrity` or `crypt`.
    pub target: &'static str,
    /// The feature, in words.
    pub name: &'static str,
    /// The first target version that parses it.
    pub since: TargetVersion,
    /// The mainline Linux release that brought that version.
    pub linux: &'static str,
}

/// dm-crypt's `integrity:<tag>:aead` (authenticated encryption): without it nothing would
/// authenticate the data at all.
pub const CRYPT_AEAD: Feature = Feature {
    target: "crypt",
    name: "authenticated encryption (integrity:<bytes>:aead)",
    since: TargetVersion::new(1, 16, 0),
    linux: "4.12",
};

/// dm-crypt's `sector_size`: 4096-byte sectors, one tag per file-system block.
pub const CRYPT_SECTOR_SIZE: Feature = Feature {
    target: "crypt",
    name: "4096-byte sectors (sector_size)",
    since: TargetVersion::new(1, 17, 0),
    linux: "4.12",
};

/// dm-integrity's fixed metadata padding. Our accounting of which tag blocks the write plan
/// covers (`luks::accounting`) assumes its layout, so a kernel without it is refused.
pub const INTEGRITY_FIX_PADDING: Feature = Feature {
    target: "integrity",
    name: "the fixed metadata padding (fix_padding)",
    since: TargetVersion::new(1, 5, 0),
    linux: "5.6",
};

/// dm-integrity's `fix_hmac`: needed only for a superblock that records it (ours never do).
pub const INTEGRITY_FIX_HMAC: Feature = Feature {
    target: "integrity",
    name: "fix_hmac, which the superblock records",
    since: TargetVersion::new(1, 7, 0),
    linux: "5.11",
};

/// The first dm-crypt version whose keyring key references libcryptsetup uses
/// (`DM_KERNEL_KEYRING_SUPPORTED` in `lib/libdevmapper.c`; dm-crypt parsed them from 1.15.0).
pub const CRYPT_KEYRING_SINCE: TargetVersion = TargetVersion::new(1, 18, 1);

/// Whether the crypt table may reference a key in the kernel keyring on dm-crypt `version`
/// (unknown: yes, as before; a table the kernel cannot parse fails the load, not the data).
pub fn keyring_supported(version: Option<TargetVersion>) -> bool {
    version.is_none_or(|v| v >= CRYPT_KEYRING_SINCE)
}

/// What the stack needs of every kernel, checked before anything is written.
pub const REQUIRED: [Feature; 3] = [CRYPT_AEAD, CRYPT_SECTOR_SIZE, INTEGRITY_FIX_PADDING];

/// The kernel's target lacks a feature the stack needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this kernel's dm-{target} target is version {version}; scratchcrypt needs {needed} or newer \
     (Linux {linux}) for {feature}"
)]
pub struct Unsupported {
    /// `integrity` or `crypt`.
    pub target: &'static str,
    /// The kernel's version of it.
    pub version: TargetVersion,
    /// What is missing.
    pub feature: &'static str,
    /// The first version that has it.
    pub needed: TargetVersion,
    /// The mainline Linux release of that version.
    pub linux: &'static str,
}

/// Refuse `version` of a target if it predates `feature`; an unknown version passes.
fn require(version: Option<TargetVersion>, feature: &Feature) -> Result<(), Unsupported> {
    match version {
        Some(v) if v < feature.since => Err(Unsupported {
            target: feature.target,
            version: v,
            feature: feature.name,
            needed: feature.since,
            linux: feature.linux,
        }),
        _ => Ok(()),
    }
}

/// Check, before anything is written, that the kernel's targets have every [`REQUIRED`]
/// feature. A target that is not listed yet is not refused here (its module loads later); the
/// table builders check again with the versions read at activation.
pub fn check_kernel(kernel: &KernelTargets) -> Result<(), Unsupported> {
    for feature in &REQUIRED {
        let version = match feature.target {
            "integrity" => kernel.integrity,
            _ => kernel.crypt,
        };
        require(version, feature)?;
    }
    Ok(())
}

/// One table line (a single target from sector 0). Debug never shows the parameters of a
/// table that carries a key.
#[derive(Clone, PartialEq, Eq)]
pub struct TableLine {
    /// Length in 512-byte sectors.
    pub length: u64,
    /// Target type, `integrity` or `crypt`.
    pub target: &'static str,
    /// Target parameters.
    pub params: Zeroizing<String>,
    /// Whether `params` holds key material (load with `DM_SECURE_DATA`, never print).
    pub secret: bool,
}

impl fmt::Debug for TableLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: &str = if self.secret {
            "[redacted]"
        } else {
            &self.params
        };
        write!(f, "TableLine(0 {} {} {params})", self.length, self.target)
    }
}

/// How the crypt table names its key.
pub enum KeyRef<'a> {
    /// A `logon` key in the kernel keyring with this description.
    Keyring {
        /// The key's description, `cryptsetup:<uuid>-d0`.
        description: &'a str,
        /// The key's size in bytes.
        size: usize,
    },
    /// The key itself, hex-encoded into the table.
    Hex(&'a VolumeKey),
}

/// Why a table could not be built from the header and superblock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The cipher mode has no `-<iv>` part.
    #[error("build the crypt table: cipher mode {mode:?} has no IV generator")]
    NoIvGenerator {
        /// The cipher mode read from the header.
        mode: String,
    },
    /// The integrity algorithm is not an HMAC.
    #[error("build the crypt table: integrity {integrity:?} is not an HMAC (only authenc AEAD is built here)")]
    NotHmac {
        /// The integrity algorithm read from the header.
        integrity: String,
    },
    /// Superblock and header disagree on the tag size.
    #[error("build the integrity table: superblock tag size {superblock} differs from the header's {header}")]
    TagSize {
        /// From the integrity superblock.
        superblock: u32,
        /// From the LUKS2 header.
        header: u32,
    },
    /// Superblock and header disagree on the sector size.
    #[error("build the integrity table: superblock block size {superblock} differs from the header's sector size {header}")]
    BlockSize {
        /// From the integrity superblock.
        superblock: u32,
        /// From the LUKS2 header.
        header: u32,
    },
    /// The kernel's target lacks what the stack or the superblock needs.
    #[error("build the {target} table: {inner}", target = .0.target, inner = .0)]
    Unsupported(#[from] Unsupported),
    /// The superblock has the legacy metadata padding, which our write accounting does not
    /// describe (a kernel before dm-integrity 1.5.0 formatted it).
    #[error("build the integrity table: the superblock (flags {flags:#x}) lacks the fixed metadata padding that dm-integrity 1.5.0 (Linux 5.6) formats; refusing the legacy layout")]
    LegacyPadding {
        /// The superblock's flags.
        flags: u32,
    },
    /// The keyring description would break the table line.
    #[error("build the crypt table: keyring description contains whitespace")]
    KeyDescription,
    /// A device reference would break the table line.
    #[error("build the {target} table: device reference {dev:?} is empty or contains whitespace")]
    DeviceRef {
        /// Which table.
        target: &'static str,
        /// The reference given.
        dev: String,
    },
}

/// dm UUID of the crypt device, in cryptsetup 2.6's format (`lib/utils_devpath.c`,
/// `dm_prepare_uuid`: type, UUID without dashes, name).
pub fn crypt_dm_uuid(uuid: &Uuid, name: &str) -> String {
    format!("CRYPT-LUKS2-{}-{name}", uuid.simple())
}

/// dm UUID of the integrity device under it.
pub fn integrity_dm_uuid(uuid: &Uuid, dif_name: &str) -> String {
    format!("CRYPT-INTEGRITY-{}-{dif_name}", uuid.simple())
}

/// Keyring description cryptsetup uses for the volume key of segment 0 (`lib/luks2`,
/// `LUKS2_key_description_by_segment`).
pub fn keyring_description(uuid: &Uuid) -> String {
    format!("cryptsetup:{}-d0", uuid.hyphenated())
}

/// Kernel crypto API spec for the crypt target, as libcryptsetup derives it from cipher, mode
/// and integrity (`lib/utils_crypt.c`): `aes` + `xts-plain64` + `hmac(sha256)` gives
/// `capi:authenc(hmac(sha256),xts(aes))-plain64`.
pub fn capi_cipher_spec(params: &LuksParams) -> Result<String, TableError> {
    let (mode, iv) =
        params
            .cipher_mode
            .split_once('-')
            .ok_or_else(|| TableError::NoIvGenerator {
                mode: params.cipher_mode.clone(),
            })?;
    if !params.integrity.starts_with("hmac(") {
        return Err(TableError::NotHmac {
            integrity: params.integrity.clone(),
        });
    }
    Ok(format!(
        "capi:authenc({},{mode}({}))-{iv}",
        params.integrity, params.cipher
    ))
}

/// The dm-integrity table for `<name>_dif`, over `source` (a `major:minor` or a path), for a
/// kernel whose dm-integrity has `version` (`None`: not known yet).
///
/// `fix_padding` and `fix_hmac` are there exactly when the superblock records them, as
/// libcryptsetup 2.6 builds the table; each needs a version that parses it.
pub fn integrity_table(
    source: &str,
    params: &LuksParams,
    sb: &IntegritySuperblock,
    version: Option<TargetVersion>,
) -> Result<TableLine, TableError> {
    check_ref("integrity", source)?;
    if u32::from(sb.tag_size) != params.tag_size {
        return Err(TableError::TagSize {
            superblock: u32::from(sb.tag_size),
            header: params.tag_size,
        });
    }
    if 512u32 << sb.log2_sectors_per_block != params.sector_size {
        return Err(TableError::BlockSize {
            superblock: 512u32 << sb.log2_sectors_per_block,
            header: params.sector_size,
        });
    }
    require(version, &INTEGRITY_FIX_PADDING)?;
    if sb.flags & SB_FLAG_FIXED_PADDING == 0 {
        return Err(TableError::LegacyPadding { flags: sb.flags });
    }
    let mut options = vec![format!("block_size:{}", params.sector_size)];
    options.push("fix_padding".to_owned());
    if sb.flags & SB_FLAG_FIXED_HMAC != 0 {
        require(version, &INTEGRITY_FIX_HMAC)?;
        options.push("fix_hmac".to_owned());
    }
    Ok(TableLine {
        length: sb.provided_data_sectors,
        target: "integrity",
        params: Zeroizing::new(format!(
            "{source} {} {} D {} {}",
            params.data_offset_sectors,
            params.tag_size,
            options.len(),
            options.join(" ")
        )),
        secret: false,
    })
}

/// The dm-crypt table for `<name>`, over the integrity device `dif` (a `major:minor`), for a
/// kernel whose dm-crypt has `version` (`None`: not known yet). Whether `key` may be a keyring
/// reference is the caller's choice ([`keyring_supported`]).
pub fn crypt_table(
    dif: &str,
    params: &LuksParams,
    sb: &IntegritySuperblock,
    key: &KeyRef<'_>,
    version: Option<TargetVersion>,
) -> Result<TableLine, TableError> {
    check_ref("crypt", dif)?;
    require(version, &CRYPT_AEAD)?;
    require(version, &CRYPT_SECTOR_SIZE)?;
    let spec = capi_cipher_spec(params)?;
    let mut line = Zeroizing::new(String::with_capacity(512));
    line.push_str(&spec);
    line.push(' ');
    match key {
        KeyRef::Keyring { description, size } => {
            if description.contains(char::is_whitespace) {
                return Err(TableError::KeyDescription);
            }
            line.push_str(&format!(":{size}:logon:{description}"));
        }
        KeyRef::Hex(k) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for b in k.expose() {
                line.push(char::from(HEX[usize::from(b >> 4)]));
                line.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    line.push_str(&format!(
        " 0 {dif} 0 2 sector_size:{} integrity:{}:aead",
        params.sector_size, params.tag_size
    ));
    Ok(TableLine {
        length: sb.provided_data_sectors,
        target: "crypt",
        params: line,
        secret: matches!(key, KeyRef::Hex(_)),
    })
}

/// A device reference goes into a space-separated table: refuse empty ones and whitespace.
fn check_ref(target: &'static str, dev: &str) -> Result<(), TableError> {
    if dev.is_empty() || dev.contains(char::is_whitespace) {
        return Err(TableError::DeviceRef {
            target,
            dev: dev.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
