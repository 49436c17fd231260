//! Activation and removal of the `<name>_dif` + `<name>` device-mapper stack.
//!
//! # Why a trait
//! Every device-mapper call goes through [`DeviceMapper`], implemented by [`RealDm`] (ioctls
//! through the `devicemapper` crate) and by [`MockDm`] (in memory, can fail any call). The
//! activation transaction and its rollback paths are the same code for both, so they are unit
//! tested without root and without a kernel that has device-mapper.
//!
//! # Activation ([`activate`]) step by step
//! 1. Refuse if `<name>` or `<name>_dif` already exists (nothing is touched).
//! 2. Read the kernel's target versions (`DM_LIST_VERSIONS`, once per activation: the format
//!    a moment earlier may have loaded the modules that [`check_kernel`] could not see yet).
//! 3. Read and validate the dm-integrity superblock at the data offset; its
//!    `provided_data_sectors` sizes both tables, its flags and the versions choose the options
//!    (`dm_table`).
//! 4. Create `<name>_dif` with cryptsetup's dm UUID, load its table, resume it.
//! 5. Put the volume key into the thread keyring as a `logon` key (hex key in the table only if
//!    that fails), create `<name>`, load its table with `DM_SECURE_DATA`, drop the key from the
//!    keyring, resume.
//! 6. Make sure `/dev/mapper/<name>` (and `<name>_dif`) exist: udev makes them where it runs,
//!    otherwise we `mknod` them.
//!
//! Every step registers its undo; on failure the undos run in reverse and a failed undo is
//! reported together with the cause ([`DmError::Rollback`]).
//!
//! # Removal ([`remove`])
//! `<name>` first, then `<name>_dif`. A name that does not exist is a success that says so. A
//! mapping that is open (mounted, or held by a process) is refused before anything is removed.

mod error;
#[cfg(any(test, feature = "test-support"))]
mod mock;
mod real;

use std::path::{Path, PathBuf};

pub use error::DmError;

#[cfg(any(test, feature = "test-support"))]
pub use mock::{MockDevice, MockDm, LINUX_6_1};
pub use real::RealDm;

use crate::dm_table::{
    crypt_dm_uuid, crypt_table, integrity_dm_uuid, integrity_table, keyring_description,
    KernelTargets, KeyRef, TableLine, TargetVersion,
};
use crate::key::VolumeKey;
use crate::keyring::KeyringKey;
use crate::name::MappingName;
use crate::params::LuksParams;
use crate::superblock::{read_integrity_superblock, IntegritySuperblock};
use devicemapper::{DmName, DmNameBuf, DmUuid, DmUuidBuf};
use uuid::Uuid;

/// A device number: devicemapper's own type (`Display` gives `major:minor`, as tables want it).
pub type DevNum = devicemapper::Device;

/// What device-mapper reports about an existing device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmInfo {
    /// Its device number.
    pub dev: DevNum,
    /// How many openers it has (mounts, processes, stacked devices).
    pub open_count: i32,
    /// Its dm UUID (empty if none).
    pub uuid: String,
}

/// The device-mapper operations activation and removal need.
pub trait DeviceMapper {
    /// How a table refers to `path`: `major:minor` of a block device.
    fn device_ref(&self, path: &Path) -> Result<String, DmError>;
    /// The device called `name`, or `None` if there is none.
    fn info(&self, name: &DmName) -> Result<Option<DmInfo>, DmError>;
    /// Create an empty device with a dm UUID.
    fn create(&self, name: &DmName, uuid: &DmUuid) -> Result<DevNum, DmError>;
    /// Load `table` into the inactive slot of `name` (always with `DM_SECURE_DATA`).
    fn load(&self, name: &DmName, table: &TableLine) -> Result<(), DmError>;
    /// Make the loaded table live; `udev` says which udev rules may act on the uevent.
    fn resume(&self, name: &DmName, udev: UdevRules) -> Result<(), DmError>;
    /// Suspend the device (flushing it); [`DeviceMapper::resume`] makes it live again.
    fn suspend(&self, name: &DmName) -> Result<(), DmError>;
    /// Remove the device.
    fn remove(&self, name: &DmName) -> Result<(), DmError>;
    /// Which of `targets` the kernel does not list (DM_LIST_VERSIONS).
    fn missing_targets(&self, targets: &[&str]) -> Result<Vec<String>, DmError>;
    /// Every target type the kernel lists, with its version (DM_LIST_VERSIONS).
    fn target_versions(&self) -> Result<Vec<(String, TargetVersion)>, DmError>;
    /// Make sure `/dev/mapper/<name>` exists for `dev`.
    fn make_node(&self, name: &DmName, dev: DevNum) -> Result<(), DmError>;
    /// Remove `/dev/mapper/<name>` if we made it.
    fn remove_node(&self, name: &DmName, dev: DevNum) -> Result<(), DmError>;
}

/// Which udev rules may act on a device's activation uevent (passed in the ioctl's udev flags,
/// as libdevmapper does; `10-dm.rules` reads them).
///
/// Both of our devices are unreadable until written: every block never written through the
/// mapping fails its integrity check. udev's blkid probe (`13-dm-disk.rules`) would read them
/// and fill the kernel log with `AEAD ERROR`s, so neither is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdevRules {
    /// A private sub-device, as cryptsetup marks `<name>_dif`: no subsystem, disk or other
    /// rules.
    Private,
    /// The crypt device: udev makes `/dev/mapper/<name>`, but runs no disk (blkid) rules.
    NoProbe,
    /// The crypt device once every block a probe reads is written ([`announce`]): udev runs
    /// its disk rules too (the blkid builtin, `/dev/disk/by-uuid/…` and `by-label/…`).
    Probe,
}

/// Tell udev that the mapping `name` now holds a file system every probe can read.
///
/// Activation resumed the crypt device with udev's disk rules off ([`UdevRules::NoProbe`]:
/// every block was unreadable then). udev keeps that flag in its database and applies it to
/// every later change event of the device that does not carry device-mapper's own udev flags, a
/// `udevadm trigger --action=change` included, so its blkid builtin never ran and no
/// `/dev/disk/by-uuid` or `by-label` link appeared (issue 24, seen under qemu with udevd
/// running). Only a uevent from a device-mapper resume replaces the flag, so this suspends the
/// idle device and resumes it with the disk rules on: the kernel sends a change uevent, udev
/// probes (by now every block libblkid reads is written) and makes the links. To be called
/// after the last write and before anything mounts the device (a suspend waits for I/O).
pub fn announce(dm: &dyn DeviceMapper, name: &MappingName) -> Result<(), DmError> {
    let crypt = name.dm_name();
    dm.suspend(crypt)?;
    match dm.resume(crypt, UdevRules::Probe) {
        Ok(()) => Ok(()),
        // A device left suspended would hang every reader: try once more, without asking udev
        // for anything, before giving up (the caller's rollback then removes the mapping).
        Err(e) => {
            let _ = dm.resume(crypt, UdevRules::NoProbe);
            Err(e)
        }
    }
}

/// The result of a successful activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// `/dev/mapper/<name>`.
    pub mapper_path: PathBuf,
    /// Size of the crypt device in bytes.
    pub size_bytes: u64,
    /// Name of the dm-crypt device.
    pub crypt_name: String,
    /// Name of the dm-integrity device under it.
    pub integrity_name: String,
    /// Whether the key went through the kernel keyring (false: hex in the table).
    pub key_in_keyring: bool,
}

/// What [`remove`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveOutcome {
    /// `<name>` existed and was removed.
    pub crypt_removed: bool,
    /// `<name>_dif` existed and was removed.
    pub integrity_removed: bool,
}

impl RemoveOutcome {
    /// Whether anything existed.
    pub fn existed(&self) -> bool {
        self.crypt_removed || self.integrity_removed
    }
}

/// Undo actions of the activation transaction.
enum Undo {
    Device(DmNameBuf),
    Node(DmNameBuf, DevNum),
}

/// Check, before anything is written to the source, that `<name>` and `<name>_dif` are free.
/// The pipeline calls this before formatting; [`activate`] checks again.
pub fn ensure_names_free(dm: &dyn DeviceMapper, name: &MappingName) -> Result<(), DmError> {
    for n in [name.dm_name(), name.integrity_dm_name()] {
        if dm.info(n)?.is_some() {
            return Err(DmError::NameInUse {
                name: n.to_string(),
            });
        }
    }
    Ok(())
}

/// The versions of the stack's two targets this kernel lists.
pub fn kernel_targets(dm: &dyn DeviceMapper) -> Result<KernelTargets, DmError> {
    Ok(KernelTargets::from_list(&dm.target_versions()?))
}

/// Refuse, before anything is written, a kernel whose dm-integrity or dm-crypt lacks what the
/// stack needs (`dm_table::REQUIRED`); the error names the target's version and the feature.
/// Returns the versions it read.
pub fn check_kernel(dm: &dyn DeviceMapper) -> Result<KernelTargets, DmError> {
    let kernel = kernel_targets(dm)?;
    crate::dm_table::check_kernel(&kernel).map_err(|e| DmError::Table(e.into()))?;
    Ok(kernel)
}

/// Activate `<name>_dif` and `<name>` over `source` for the header described by `params`.
pub fn activate(
    dm: &dyn DeviceMapper,
    source: &Path,
    params: &LuksParams,
    key: &VolumeKey,
    name: &MappingName,
) -> Result<Activation, DmError> {
    activate_with(dm, source, params, key, name, KeyPlacement::Keyring)
}

/// Where the crypt table takes its key from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPlacement {
    /// The kernel keyring (a `logon` key, dropped after the load), falling back to hex when the
    /// keyring refuses the key. The default, as in cryptsetup.
    Keyring,
    /// Hex in the table (loaded with `DM_SECURE_DATA`); for kernels whose dm-crypt predates
    #[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
    /// keyring support (Linux < 4.10), and to test the fallback.
    Hex,
}

/// [`activate`] with an explicit [`KeyPlacement`].
pub fn activate_with(
    dm: &dyn DeviceMapper,
    source: &Path,
    params: &LuksParams,
    key: &VolumeKey,
    name: &MappingName,
    placement: KeyPlacement,
) -> Result<Activation, DmError> {
    let crypt_name = name.as_str().to_owned();
    let dif_name = name.integrity_name();
    if key.len() != params.key_size {
        return Err(DmError::KeySize {
            header: params.key_size,
            given: key.len(),
        });
    }
    ensure_names_free(dm, name)?;
    let kernel = kernel_targets(dm)?;
    let source_ref = dm.device_ref(source)?;
    let sb = read_integrity_superblock(source, params.data_offset_sectors).map_err(|e| {
        DmError::Superblock {
            device: source.to_path_buf(),
            source: e,
        }
    })?;
    let dif_table = integrity_table(&source_ref, params, &sb, kernel.integrity)?;
    let mut undo = Vec::new();
    let steps = Steps {
        params,
        key,
        sb: &sb,
        crypt_version: kernel.crypt,
        dif_table: &dif_table,
        crypt_name: name.dm_name(),
        dif_name: name.integrity_dm_name(),
        placement,
    };
    match steps.run(dm, &mut undo) {
        Ok(key_in_keyring) => Ok(Activation {
            mapper_path: name.mapper_path(),
            size_bytes: sb.provided_data_sectors * 512,
            crypt_name,
            integrity_name: dif_name,
            key_in_keyring,
        }),
        Err(cause) => Err(rollback(dm, cause, undo)),
    }
}

/// The inputs of the steps of [`activate`] that create something.
struct Steps<'a> {
    params: &'a LuksParams,
    key: &'a VolumeKey,
    sb: &'a IntegritySuperblock,
    crypt_version: Option<TargetVersion>,
    dif_table: &'a TableLine,
    crypt_name: &'a DmName,
    dif_name: &'a DmName,
    placement: KeyPlacement,
}

impl Steps<'_> {
    /// Run the steps, each registering its undo; return whether the key went via the keyring.
    fn run(&self, dm: &dyn DeviceMapper, undo: &mut Vec<Undo>) -> Result<bool, DmError> {
        let Steps {
            params,
            key,
            sb,
            crypt_version,
            dif_table,
            crypt_name,
            dif_name,
            placement,
        } = *self;
        let dif_uuid = dm_uuid(integrity_dm_uuid(&params.uuid, &dif_name.to_string()))?;
        let dif_dev = dm.create(dif_name, &dif_uuid)?;
        undo.push(Undo::Device(dif_name.to_owned()));
        load_checked(dm, dif_name, dif_table)?;
        dm.resume(dif_name, UdevRules::Private)?;

        let description = keyring_description(&params.uuid);
        let keyring = match placement {
            // libcryptsetup references keyring keys from dm-crypt 1.18.1 on; below, the key
            // goes as hex (DM_SECURE_DATA), as cryptsetup would load it.
            KeyPlacement::Keyring if crate::dm_table::keyring_supported(crypt_version) => {
                KeyringKey::add(&description, key).ok()
            }
            KeyPlacement::Keyring => None,
            KeyPlacement::Hex => None,
        };
        let key_ref = match &keyring {
            Some(k) => KeyRef::Keyring {
                description: k.description(),
                size: key.len(),
            },
            None => KeyRef::Hex(key),
        };
        let crypt = crypt_table(&dif_dev.to_string(), params, sb, &key_ref, crypt_version)?;
        let crypt_uuid = dm_uuid(crypt_dm_uuid(&params.uuid, &crypt_name.to_string()))?;
        let crypt_dev = dm.create(crypt_name, &crypt_uuid)?;
        undo.push(Undo::Device(crypt_name.to_owned()));
        let loaded = load_checked(dm, crypt_name, &crypt);
        // The table holds its own copy now (or failed): the keyring copy goes either way.
        let key_in_keyring = keyring.is_some();
        if let Some(k) = keyring {
            let _ = k.remove();
        }
        loaded?;
        dm.resume(crypt_name, UdevRules::NoProbe)?;

        dm.make_node(dif_name, dif_dev)?;
        undo.push(Undo::Node(dif_name.to_owned(), dif_dev));
        dm.make_node(crypt_name, crypt_dev)?;
        undo.push(Undo::Node(crypt_name.to_owned(), crypt_dev));
        Ok(key_in_keyring)
    }
}

/// Load a table; if the kernel refuses it, tell whether the target type is missing.
/// A dm UUID built by `dm_table` (always short enough), as device-mapper takes it.
fn dm_uuid(uuid: String) -> Result<DmUuidBuf, DmError> {
    DmUuidBuf::new(uuid.clone()).map_err(|_| DmError::InvalidUuid { uuid })
}

fn load_checked(dm: &dyn DeviceMapper, name: &DmName, table: &TableLine) -> Result<(), DmError> {
    let mut attempt = 1;
    loop {
        match dm.load(name, table) {
            Ok(()) => return Ok(()),
            Err(e) if attempt < INTEGRITY_LOAD_ATTEMPTS && is_slab_race(table, &e) => {
                attempt += 1;
                std::thread::sleep(INTEGRITY_LOAD_PAUSE);
            }
            Err(e) => {
                return match dm.missing_targets(&[table.target]) {
                    Ok(missing) if !missing.is_empty() => Err(DmError::MissingTarget {
                        target: table.target,
                        name: name.to_string(),
                    }),
                    _ => Err(e),
                }
            }
        }
    }
}

/// Loads of a dm-integrity table tried before an ENOMEM is final (see [`is_slab_race`]).
const INTEGRITY_LOAD_ATTEMPTS: u32 = 3;

/// Pause between two of them: the kernel's window is the removal of one sysfs directory.
const INTEGRITY_LOAD_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether a refused load looks like Linux 6.1's dm-bufio slab race: a dm-integrity table whose
/// constructor failed with ENOMEM because another dm-integrity device was being removed at that
/// moment (vendor-notes.md, "The kernel"). Our own creations and removals are serialised by
/// `kernel::dm_integrity_lock`; this covers other tools (cryptsetup, LVM) doing the same at
/// the same time, at the price of the kernel's call trace in its log.
fn is_slab_race(table: &TableLine, e: &DmError) -> bool {
    table.target == "integrity"
        && matches!(e, DmError::Ioctl { source, .. } if source.raw_os_error() == Some(libc::ENOMEM))
}

/// Run the undos in reverse and combine their failures with the cause.
fn rollback(dm: &dyn DeviceMapper, cause: DmError, undo: Vec<Undo>) -> DmError {
    let mut failures = Vec::new();
    for u in undo.into_iter().rev() {
        let r = match &u {
            Undo::Device(n) => dm.remove(n),
            Undo::Node(n, d) => dm.remove_node(n, *d),
        };
        if let Err(e) = r {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        cause
    } else {
        DmError::Rollback {
            cause: Box::new(cause),
            failures,
        }
    }
}

/// Remove `<name>` then `<name>_dif`, if they form a LUKS2 crypt-over-integrity stack of one
/// header, as activation makes them (and as `cryptsetup open` of such a header does). Nothing
/// is removed if `<name>` is open.
///
/// Anything else by that name (a plain dm-crypt or LUKS volume without integrity, a device of
/// another tool) is refused with [`DmError::NotAStack`]: its key may live only in the kernel.
/// [`remove_any_crypt`] is the forced variant; a run undoing its own activation uses
/// [`remove_ours`].
pub fn remove(dm: &dyn DeviceMapper, name: &MappingName) -> Result<RemoveOutcome, DmError> {
    let (crypt, dif) = check_stack(dm, name)?;
    // Remove what was just checked: a second query could see other devices.
    remove_found(dm, name, crypt, dif, &any_crypt)
}

/// The devices `<name>` and `<name>_dif` if [`remove`] (or, with `force`, [`remove_any_crypt`])
/// would accept them as its own, without removing anything and whatever their open counts;
/// the refusal otherwise. `cleanup --unmount` asks this before it unmounts anything: a mapping
/// that is not ours keeps its mounts.
pub fn check_removable(
    dm: &dyn DeviceMapper,
    name: &MappingName,
    force: bool,
) -> Result<Option<DmInfo>, DmError> {
    if !force {
        return check_stack(dm, name).map(|(crypt, _)| crypt);
    }
    let crypt = dm.info(name.dm_name())?;
    let dif = dm.info(name.integrity_dm_name())?;
    for (n, info) in [(name.to_string(), &crypt), (name.integrity_name(), &dif)] {
        if let Some(i) = info {
            if !any_crypt(&n, &i.uuid) {
                return Err(DmError::NotOurs {
                    name: n,
                    uuid: i.uuid.clone(),
                });
            }
        }
    }
    Ok(crypt)
}

/// The checks of [`remove`]: the two devices found, if they form one LUKS2 stack.
fn check_stack(
    dm: &dyn DeviceMapper,
    name: &MappingName,
) -> Result<(Option<DmInfo>, Option<DmInfo>), DmError> {
    let crypt = dm.info(name.dm_name())?;
    let dif = dm.info(name.integrity_dm_name())?;
    let refuse = |reason: &'static str| DmError::NotAStack {
        name: name.to_string(),
        reason,
    };
    let header_of = |uuid: &str, prefix: &str, device: &str| -> Option<String> {
        let rest = uuid.strip_prefix(prefix)?;
        let (hex, tail) = rest.split_at_checked(32)?;
        let ok =
            hex.bytes().all(|b| b.is_ascii_hexdigit()) && tail.strip_prefix('-') == Some(device);
        ok.then(|| hex.to_owned())
    };
    let crypt_header = match &crypt {
        Some(i) => Some(
            header_of(&i.uuid, "CRYPT-LUKS2-", name.as_str())
                .ok_or_else(|| refuse("its dm UUID is not that of a LUKS2 volume"))?,
        ),
        None => None,
    };
    let dif_header = match &dif {
        Some(i) => Some(
            header_of(&i.uuid, "CRYPT-INTEGRITY-", &name.integrity_name())
                .ok_or_else(|| refuse("the device under it is not its LUKS2 integrity layer"))?,
        ),
        None => None,
    };
    match (crypt_header, dif_header) {
        (Some(_), None) => return Err(refuse("it has no integrity layer")),
        (Some(c), Some(d)) if c != d => {
            return Err(refuse("its two layers belong to different headers"))
        }
        _ => {}
    }
    Ok((crypt, dif))
}

/// Whether a dm UUID is cryptsetup's (`CRYPT-...`).
fn any_crypt(_: &str, uuid: &str) -> bool {
    uuid.starts_with("CRYPT-")
}

/// Remove `<name>` then `<name>_dif` if their dm UUIDs are cryptsetup's (`CRYPT-...`), of any
/// kind: `cleanup --force`. Nothing is removed if `<name>` is open.
pub fn remove_any_crypt(
    dm: &dyn DeviceMapper,
    name: &MappingName,
) -> Result<RemoveOutcome, DmError> {
    remove_matching(dm, name, &any_crypt)
}

/// Remove `<name>` and `<name>_dif` only if their dm UUIDs are exactly the ones activation set
/// for the header `uuid`.
///
/// A run that fails after activating rolls back with this: if someone else created a mapping
/// of the same name in the meantime, its key lives only in the kernel, and removing it would
/// destroy that volume's data. Such a mapping is refused ([`DmError::NotOurs`]) and left alone.
pub fn remove_ours(
    dm: &dyn DeviceMapper,
    name: &MappingName,
    uuid: &Uuid,
) -> Result<RemoveOutcome, DmError> {
    let crypt = crypt_dm_uuid(uuid, name.as_str());
    let dif = integrity_dm_uuid(uuid, &name.integrity_name());
    remove_matching(dm, name, &|n, found| {
        found == if n == name.as_str() { &crypt } else { &dif }
    })
}

/// The removal, for the devices whose `(name, dm UUID)` `ours` accepts.
fn remove_matching(
    dm: &dyn DeviceMapper,
    name: &MappingName,
    ours: &dyn Fn(&str, &str) -> bool,
) -> Result<RemoveOutcome, DmError> {
    let crypt = dm.info(name.dm_name())?;
    let dif = dm.info(name.integrity_dm_name())?;
    remove_found(dm, name, crypt, dif, ours)
}

/// The removal of the devices `crypt` and `dif` found by that name, if `ours` accepts each
/// `(name, dm UUID)` and the top one is not open.
fn remove_found(
    dm: &dyn DeviceMapper,
    name: &MappingName,
    crypt: Option<DmInfo>,
    dif: Option<DmInfo>,
    ours: &dyn Fn(&str, &str) -> bool,
) -> Result<RemoveOutcome, DmError> {
    let crypt_name = name.as_str();
    let dif_name = name.integrity_name();
    for (n, info) in [(crypt_name, &crypt), (dif_name.as_str(), &dif)] {
        if let Some(i) = info {
            if !ours(n, &i.uuid) {
                return Err(DmError::NotOurs {
                    name: n.to_owned(),
                    uuid: i.uuid.clone(),
                });
            }
        }
    }
    if let Some(i) = &crypt {
        if i.open_count > 0 {
            return Err(DmError::Busy {
                name: crypt_name.to_owned(),
                open_count: i.open_count,
            });
        }
    } else if let Some(i) = &dif {
        if i.open_count > 0 {
            return Err(DmError::Busy {
                name: dif_name.clone(),
                open_count: i.open_count,
            });
        }
    }
    let mut outcome = RemoveOutcome {
        crypt_removed: false,
        integrity_removed: false,
    };
    // A node that cannot be deleted does not stop the removal of the devices; it is reported
    // once both are gone.
    let mut node_error = None;
    if let Some(i) = crypt {
        dm.remove(name.dm_name())
            .map_err(busy_if_ebusy(crypt_name))?;
        outcome.crypt_removed = true;
        node_error = dm.remove_node(name.dm_name(), i.dev).err();
    }
    if let Some(i) = dif {
        dm.remove(name.integrity_dm_name())
            .map_err(busy_if_ebusy(&dif_name))?;
        outcome.integrity_removed = true;
        if let Err(e) = dm.remove_node(name.integrity_dm_name(), i.dev) {
            node_error.get_or_insert(e);
        }
    }
    match node_error {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// Turn an EBUSY from DM_DEV_REMOVE (someone opened it after our check) into [`DmError::Busy`].
fn busy_if_ebusy(name: &str) -> impl Fn(DmError) -> DmError + '_ {
    move |e| match &e {
        DmError::Ioctl { source, .. } if source.raw_os_error() == Some(libc::EBUSY) => {
            DmError::BusyOnRemove {
                name: name.to_owned(),
            }
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests;
