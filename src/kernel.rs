//! What the running kernel offers: device-mapper at all, and which dm target types it lists.
//!
//! # Why one place
//! The header format must refuse before it writes anything on a kernel without device-mapper
//! (libcryptsetup overwrites the first megabytes before it needs it), activation must tell a
//! missing `dm-crypt`/`dm-integrity` module from any other refusal, and both used to carry
//! their own copy of these probes. Nothing here imports the rest of the crate.

use std::io;

/// Where the kernel lists misc devices; device-mapper's control node is one of them.
pub const PROC_MISC: &str = "/proc/misc";

/// Why the kernel's device-mapper could not be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// `/proc/misc` could not be read.
    #[error("cannot read {PROC_MISC}")]
    ReadMisc {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `/proc/misc` has no `device-mapper` line.
    #[error("{PROC_MISC} has no device-mapper entry (CONFIG_BLK_DEV_DM is off or the dm-mod module is not loaded)")]
    NoEntry,
}

/// The misc minor of `device-mapper` in the text of `/proc/misc` (lines `<minor> <name>`).
///
/// ```
/// assert_eq!(scratchcrypt::kernel::dm_misc_minor("183 hw_random\n236 device-mapper\n"), Some(236));
/// assert_eq!(scratchcrypt::kernel::dm_misc_minor("183 hw_random\n"), None);
/// ```
pub fn dm_misc_minor(misc: &str) -> Option<u32> {
    misc.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let minor = it.next()?.parse().ok()?;
        (it.next()? == "device-mapper").then_some(minor)
    })
}

/// The misc minor of the device-mapper control node, or why there is none.
pub fn device_mapper_minor() -> Result<u32, ProbeError> {
    let misc =
        std::fs::read_to_string(PROC_MISC).map_err(|source| ProbeError::ReadMisc { source })?;
    dm_misc_minor(&misc).ok_or(ProbeError::NoEntry)
}

/// Whether this kernel has device-mapper (built in or the module loaded).
pub fn has_device_mapper() -> bool {
    device_mapper_minor().is_ok()
}

/// The targets of `wanted` that are not in `listed` (the names DM_LIST_VERSIONS returned).
pub fn unlisted<'a, S: AsRef<str>>(listed: &[S], wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|w| !listed.iter().any(|l| l.as_ref() == **w))
        .copied()
        .collect()
}

/// Whether device-mapper is known to lack the target type `target` (DM_LIST_VERSIONS).
/// Unknown (no device-mapper, ioctl failure) counts as not lacking, so callers keep the
/// original error.
pub fn lacks_dm_target(target: &str) -> bool {
    match devicemapper::DM::new().and_then(|dm| dm.list_versions()) {
        Ok(list) => {
            let names: Vec<&str> = list.iter().map(|(name, ..)| name.as_str()).collect();
            !unlisted(&names, &[target]).is_empty()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a `device-mapper` line with a numeric minor counts.
    #[test]
    fn misc_minor_needs_the_exact_name() {
        assert_eq!(dm_misc_minor("236 device-mapper"), Some(236));
        assert_eq!(dm_misc_minor("236 device-mapper-x\n x device-mapper"), None);
        assert_eq!(dm_misc_minor(""), None);
    }

    /// Targets the kernel lists are dropped, the others kept in order.
    #[test]
    fn unlisted_keeps_what_is_missing() {
        let listed = ["striped", "crypt", "linear"];
        assert_eq!(
            unlisted(&listed, &["integrity", "crypt"]),
            vec!["integrity"]
        );
        assert!(unlisted(&listed, &["crypt"]).is_empty());
    }
}
