//! An in-memory device-mapper for unit tests (of this module and of the pipeline).
//!
//! It keeps devices, their tables and `/dev/mapper` nodes in memory, logs every call, and can
//! be told to fail the n-th call of an operation on a name with a given errno, so every
//! rollback path runs without root or a device-mapper kernel.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use devicemapper::{DmName, DmUuid};

use super::{DevNum, DeviceMapper, DmError, DmInfo, UdevRules};
use crate::dm_table::{TableLine, TargetVersion};

/// The versions Debian 12's Linux 6.1 lists (dm-integrity 1.10.0, dm-crypt 1.24.0), which the
/// mock reports unless told otherwise.
pub const LINUX_6_1: [(&str, TargetVersion); 2] = [
    ("integrity", TargetVersion::new(1, 10, 0)),
    ("crypt", TargetVersion::new(1, 24, 0)),
];

/// One device of the mock.
#[derive(Debug, Clone)]
pub struct MockDevice {
    /// dm UUID.
    pub uuid: String,
    /// Device number.
    pub dev: DevNum,
    /// Loaded, not yet resumed table.
    pub inactive: Option<TableLine>,
    /// Live table.
    pub active: Option<TableLine>,
    /// Open count the mock reports.
    pub open_count: i32,
}

#[derive(Debug, Default)]
struct State {
    devices: BTreeMap<String, MockDevice>,
    nodes: BTreeSet<String>,
    calls: Vec<String>,
    failures: Vec<(String, String, i32)>,
    next_minor: u32,
    targets: Vec<(String, TargetVersion)>,
}

/// In-memory [`DeviceMapper`].
#[derive(Debug)]
pub struct MockDm {
    state: RefCell<State>,
}

impl Default for MockDm {
    fn default() -> Self {
        MockDm::new()
    }
}

impl MockDm {
    /// A mock whose kernel has the `integrity` and `crypt` targets and no devices.
    pub fn new() -> MockDm {
        MockDm {
            state: RefCell::new(State {
                targets: LINUX_6_1
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), *v))
                    .collect(),
                ..State::default()
            }),
        }
    }

    /// Make the next call of `op` (`create`, `load`, `resume`, `remove`, `info`, `make_node`,
    /// `remove_node`, `device_ref`) on `name` fail with `errno`. Several failures queue up.
    pub fn fail_on(&self, op: &str, name: &str, errno: i32) {
        self.state
            .borrow_mut()
            .failures
            .push((op.to_owned(), name.to_owned(), errno));
    }

    /// Set the target types the mock kernel lists (each at version 1.0.0 unless it is one of
    /// [`LINUX_6_1`]'s, which keep their version).
    pub fn set_targets(&self, targets: &[&str]) {
        self.state.borrow_mut().targets = targets
            .iter()
            .map(|t| {
                let v = LINUX_6_1
                    .iter()
                    .find(|(n, _)| n == t)
                    .map_or(TargetVersion::new(1, 0, 0), |(_, v)| *v);
                ((*t).to_owned(), v)
            })
            .collect();
    }

    /// Set the target types and versions the mock kernel lists.
    pub fn set_target_versions(&self, targets: &[(&str, TargetVersion)]) {
        self.state.borrow_mut().targets =
            targets.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
    }

    /// Add a device as if someone else had created it.
    pub fn insert(&self, name: &str, uuid: &str, open_count: i32) {
        let mut s = self.state.borrow_mut();
        let dev = DevNum {
            major: 254,
            minor: s.next_minor,
        };
        s.next_minor += 1;
        s.devices.insert(
            name.to_owned(),
            MockDevice {
                uuid: uuid.to_owned(),
                dev,
                inactive: None,
                active: None,
                open_count,
            },
        );
    }

    /// Set the open count of a device.
    pub fn set_open_count(&self, name: &str, n: i32) {
        if let Some(d) = self.state.borrow_mut().devices.get_mut(name) {
            d.open_count = n;
        }
    }

    /// Names of the existing devices, sorted.
    pub fn device_names(&self) -> Vec<String> {
        self.state.borrow().devices.keys().cloned().collect()
    }

    /// A copy of a device.
    pub fn device(&self, name: &str) -> Option<MockDevice> {
        self.state.borrow().devices.get(name).cloned()
    }

    /// Names with a `/dev/mapper` node.
    pub fn nodes(&self) -> Vec<String> {
        self.state.borrow().nodes.iter().cloned().collect()
    }

    /// Every call so far, as `op name`.
    pub fn calls(&self) -> Vec<String> {
        self.state.borrow().calls.clone()
    }

    /// Log a call and return the injected failure for it, if any.
    fn enter(&self, op: &'static str, name: &str) -> Result<(), DmError> {
        let mut s = self.state.borrow_mut();
        s.calls.push(format!("{op} {name}"));
        if let Some(i) = s.failures.iter().position(|(o, n, _)| o == op && n == name) {
            let (_, _, errno) = s.failures.remove(i);
            return Err(DmError::Ioctl {
                step: op,
                name: name.to_owned(),
                source: io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }

    fn missing(op: &'static str, name: &str) -> DmError {
        DmError::Ioctl {
            step: op,
            name: name.to_owned(),
            source: io::Error::from_raw_os_error(libc::ENXIO),
        }
    }
}

impl DeviceMapper for MockDm {
    fn device_ref(&self, path: &Path) -> Result<String, DmError> {
        self.enter("device_ref", &path.to_string_lossy())?;
        let source = |source| DmError::Source {
            step: "inspect the source device",
            device: path.to_path_buf(),
            source,
        };
        std::fs::metadata(path).map_err(source)?;
        path.to_str()
            .map(str::to_owned)
            .ok_or_else(|| source(io::Error::from_raw_os_error(libc::EINVAL)))
    }

    fn info(&self, name: &DmName) -> Result<Option<DmInfo>, DmError> {
        let name = &name.to_string();
        self.enter("info", name)?;
        Ok(self.state.borrow().devices.get(name).map(|d| DmInfo {
            dev: d.dev,
            open_count: d.open_count,
            uuid: d.uuid.clone(),
        }))
    }

    fn create(&self, name: &DmName, uuid: &DmUuid) -> Result<DevNum, DmError> {
        let name = &name.to_string();
        let uuid = &uuid.to_string();
        self.enter("create", name)?;
        if self.state.borrow().devices.contains_key(name) {
            return Err(DmError::Ioctl {
                step: "create",
                name: name.to_owned(),
                source: io::Error::from_raw_os_error(libc::EBUSY),
            });
        }
        self.insert(name, uuid, 0);
        self.device(name)
            .map(|d| d.dev)
            .ok_or_else(|| Self::missing("create", name))
    }

    fn load(&self, name: &DmName, table: &TableLine) -> Result<(), DmError> {
        let name = &name.to_string();
        self.enter("load", name)?;
        let mut s = self.state.borrow_mut();
        if !s.targets.iter().any(|(t, _)| t == table.target) {
            return Err(DmError::Ioctl {
                step: "load",
                name: name.to_owned(),
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        let d = s
            .devices
            .get_mut(name)
            .ok_or_else(|| Self::missing("load", name))?;
        d.inactive = Some(table.clone());
        Ok(())
    }

    fn suspend(&self, name: &DmName) -> Result<(), DmError> {
        let name = &name.to_string();
        self.enter("suspend", name)?;
        if self.state.borrow().devices.contains_key(name) {
            Ok(())
        } else {
            Err(Self::missing("suspend", name))
        }
    }

    fn resume(&self, name: &DmName, udev: UdevRules) -> Result<(), DmError> {
        let name = &name.to_string();
        self.enter("resume", name)?;
        self.state
            .borrow_mut()
            .calls
            .push(format!("udev {name} {udev:?}"));
        let mut s = self.state.borrow_mut();
        let d = s
            .devices
            .get_mut(name)
            .ok_or_else(|| Self::missing("resume", name))?;
        if let Some(t) = d.inactive.take() {
            d.active = Some(t);
        }
        Ok(())
    }

    fn remove(&self, name: &DmName) -> Result<(), DmError> {
        let name = &name.to_string();
        self.enter("remove", name)?;
        let mut s = self.state.borrow_mut();
        match s.devices.get(name) {
            None => Err(Self::missing("remove", name)),
            Some(d) if d.open_count > 0 => Err(DmError::Ioctl {
                step: "remove",
                name: name.to_owned(),
                source: io::Error::from_raw_os_error(libc::EBUSY),
            }),
            Some(_) => {
                s.devices.remove(name);
                Ok(())
            }
        }
    }

    fn missing_targets(&self, targets: &[&str]) -> Result<Vec<String>, DmError> {
        self.enter("missing_targets", &targets.join(","))?;
        let s = self.state.borrow();
        Ok(targets
            .iter()
            .filter(|t| !s.targets.iter().any(|(k, _)| k == *t))
            .map(|t| (*t).to_owned())
            .collect())
    }

    fn target_versions(&self) -> Result<Vec<(String, TargetVersion)>, DmError> {
        self.enter("target_versions", "device-mapper")?;
        Ok(self.state.borrow().targets.clone())
    }

    fn make_node(&self, name: &DmName, _dev: DevNum) -> Result<(), DmError> {
        let name = &name.to_string();
        self.enter("make_node", name)?;
        self.state.borrow_mut().nodes.insert(name.to_owned());
        Ok(())
    }

    fn remove_node(&self, name: &DmName, _dev: DevNum) -> Result<(), DmError> {
        let name = &name.to_string();
        self.enter("remove_node", name)?;
        self.state.borrow_mut().nodes.remove(name);
        Ok(())
    }
}
