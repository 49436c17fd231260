//! Key hygiene inside the process: the volume key is in the thread keyring exactly while the
//! crypt table is loaded, and nowhere once activation returns (success or failure); when the
//! keyring refuses the key, activation falls back to a hex key in a secret table.
//!
//! Activation runs over the device-mapper mock (the host has no device-mapper), but the key goes
//! through the real kernel keyring: `scratchcrypt::keyring` makes the real `add_key` and
//! `keyctl` calls. A wrapper around the mock looks the key up at the moment the crypt table is
//! loaded, which is when the kernel would read it, so the "gone afterwards" check cannot pass
//! merely because the search never finds `logon` keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/keys.rs"]
mod keys;
#[path = "support/skip.rs"]
mod skip;

use std::cell::RefCell;
use std::path::Path;
use std::process::Command;

use scratchcrypt::dm::{
    activate, activate_with, DevNum, DeviceMapper, DmError, DmInfo, KeyPlacement, MockDm, UdevRules,
};
use scratchcrypt::dm_table::{keyring_description, TableLine, TargetVersion};
use scratchcrypt::keyring::KeyringKey;
use scratchcrypt::luks::{LuksFormatter, MockFormatter};
use scratchcrypt::params::LuksParams;
use scratchcrypt::MappingName;
use scratchcrypt::VolumeKey;

/// Where a key was found: `(keyring, serial or errno)` for every keyring that did not say ENOKEY.
type Findings = Vec<(&'static str, Result<libc::c_long, i32>)>;

/// The mock device-mapper, recording where the key could be found when each crypt table was
/// loaded.
struct Watching {
    inner: MockDm,
    description: String,
    at_load: RefCell<Vec<Findings>>,
}

use devicemapper::{DmName, DmUuid};

impl DeviceMapper for Watching {
    fn device_ref(&self, path: &Path) -> Result<String, DmError> {
        self.inner.device_ref(path)
    }
    fn info(&self, name: &DmName) -> Result<Option<DmInfo>, DmError> {
        self.inner.info(name)
    }
    fn create(&self, name: &DmName, uuid: &DmUuid) -> Result<DevNum, DmError> {
        self.inner.create(name, uuid)
    }
    fn load(&self, name: &DmName, table: &TableLine) -> Result<(), DmError> {
        if table.target == "crypt" {
            self.at_load
                .borrow_mut()
                .push(keys::still_findable(&self.description));
        }
        self.inner.load(name, table)
    }
    fn resume(&self, name: &DmName, udev: UdevRules) -> Result<(), DmError> {
        self.inner.resume(name, udev)
    }
    fn suspend(&self, name: &DmName) -> Result<(), DmError> {
        self.inner.suspend(name)
    }
    fn remove(&self, name: &DmName) -> Result<(), DmError> {
        self.inner.remove(name)
    }
    fn missing_targets(&self, targets: &[&str]) -> Result<Vec<String>, DmError> {
        self.inner.missing_targets(targets)
    }
    fn target_versions(&self) -> Result<Vec<(String, TargetVersion)>, DmError> {
        self.inner.target_versions()
    }
    fn make_node(&self, name: &DmName, dev: DevNum) -> Result<(), DmError> {
        self.inner.make_node(name, dev)
    }
    fn remove_node(&self, name: &DmName, dev: DevNum) -> Result<(), DmError> {
        self.inner.remove_node(name, dev)
    }
}

/// A formatted mock "disk" and its header parameters.
struct Disk {
    _file: tempfile::NamedTempFile,
    path: std::path::PathBuf,
    params: LuksParams,
    key: VolumeKey,
}

fn disk() -> Disk {
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(64 << 20).unwrap();
    let key = VolumeKey::generate().unwrap();
    let params = MockFormatter::new().format(file.path(), &key).unwrap();
    Disk {
        path: file.path().to_path_buf(),
        _file: file,
        params,
        key,
    }
}

/// Whether this kernel lets us add a `logon` key to the thread keyring.
fn keyring_works() -> Result<(), std::io::Error> {
    let probe = VolumeKey::from_bytes(&[0x42; 96]).unwrap();
    KeyringKey::add("scratchcrypt:keyring-probe-d0", &probe)?.remove()
}

/// After activation the key's description is found in none of this thread's keyrings
/// (`ENOKEY`), although it was findable while the crypt table was loaded; the table names the
/// keyring key and holds no key bytes.
#[test]
fn activation_leaves_the_key_in_no_keyring() {
    if let Err(e) = keyring_works() {
        if skip::cannot_run(
            "activation_leaves_the_key_in_no_keyring",
            &format!("the kernel keyring refuses logon keys: {e}"),
        ) {
            return;
        }
    }
    let d = disk();
    let description = keyring_description(&d.params.uuid);
    assert!(
        keys::still_findable(&description).is_empty(),
        "the key is in a keyring before activation"
    );
    let dm = Watching {
        inner: MockDm::new(),
        description: description.clone(),
        at_load: RefCell::new(Vec::new()),
    };
    let name = MappingName::new("hygiene").unwrap();
    let a = activate(&dm, &d.path, &d.params, &d.key, &name).unwrap();

    assert!(
        a.key_in_keyring,
        "the keyring works here, yet the key went as hex"
    );
    let at_load = dm.at_load.borrow();
    assert_eq!(at_load.len(), 1, "one crypt table load expected");
    assert!(
        at_load[0]
            .iter()
            .any(|(ring, r)| *ring == "thread" && r.is_ok()),
        "the key was not in the thread keyring while the table was loaded: {:?}",
        at_load[0]
    );
    let left = keys::still_findable(&description);
    assert!(
        left.is_empty(),
        "after activation the key is still found: {left:?}"
    );
    let table = dm.inner.device("hygiene").unwrap().active.unwrap();
    assert!(
        table.params.contains(&format!(":96:logon:{description}")),
        "{table:?}"
    );
    let hex: String = d.key.expose().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!table.params.contains(&hex), "key bytes in a keyring table");
    // While the process lives, /proc/keys may still list the key until the kernel's key
    // garbage collector runs, but only flagged invalidated ('i' in the flags column): unusable.
    let proc_keys = std::fs::read_to_string("/proc/keys").unwrap_or_default();
    for line in proc_keys.lines().filter(|l| l.contains(&description)) {
        let flags = line.split_whitespace().nth(1).unwrap_or("");
        assert!(flags.contains('i'), "a live key in /proc/keys: {line}");
    }
}

/// A failed crypt table load still takes the key out of the keyring.
#[test]
fn failed_load_leaves_the_key_in_no_keyring() {
    if let Err(e) = keyring_works() {
        if skip::cannot_run(
            "failed_load_leaves_the_key_in_no_keyring",
            &format!("the kernel keyring refuses logon keys: {e}"),
        ) {
            return;
        }
    }
    let d = disk();
    let description = keyring_description(&d.params.uuid);
    let dm = Watching {
        inner: MockDm::new(),
        description: description.clone(),
        at_load: RefCell::new(Vec::new()),
    };
    dm.inner.fail_on("load", "broken", libc::EINVAL);
    let name = MappingName::new("broken").unwrap();
    activate(&dm, &d.path, &d.params, &d.key, &name).unwrap_err();
    assert_eq!(dm.at_load.borrow().len(), 1);
    assert!(dm.at_load.borrow()[0].iter().any(|(_, r)| r.is_ok()));
    let left = keys::still_findable(&description);
    assert!(
        left.is_empty(),
        "after a failed load the key is still found: {left:?}"
    );
    assert!(dm.inner.device_names().is_empty());
}

/// Set in the child of [`keyring_refusal_falls_back_to_hex`].
const CHILD_VAR: &str = "SCRATCHCRYPT_TEST_NO_KEYRING_CHILD";

/// A seccomp filter that makes `add_key(2)` fail with ENOSYS, as on a kernel without keys.
fn no_add_key_filter() -> [libc::sock_filter; 4] {
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        // seccomp_data.nr is at offset 0.
        ins(BPF_LD_W_ABS, 0, 0, 0),
        ins(BPF_JEQ_K, 0, 1, libc::SYS_add_key as u32),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

/// When the keyring refuses the key (here: `add_key` made to fail with ENOSYS by a seccomp
/// filter, in a child run of this very test), activation with the default placement falls back
/// to a hex key in a table loaded as secret, and leaves nothing in any keyring.
#[test]
fn keyring_refusal_falls_back_to_hex() {
    if std::env::var_os(CHILD_VAR).is_some() {
        // The child: add_key must really fail here, or the test proves nothing.
        let probe = keyring_works().unwrap_err();
        assert_eq!(probe.raw_os_error(), Some(libc::ENOSYS), "{probe}");
        let d = disk();
        let dm = MockDm::new();
        let name = MappingName::new("fallback").unwrap();
        let a = activate(&dm, &d.path, &d.params, &d.key, &name).unwrap();
        assert!(!a.key_in_keyring);
        let table = dm.device("fallback").unwrap().active.unwrap();
        assert!(
            table.secret,
            "a hex key table must be loaded with DM_SECURE_DATA"
        );
        let hex: String = d.key.expose().iter().map(|b| format!("{b:02x}")).collect();
        assert!(table.params.contains(&hex));
        assert!(!table.params.contains(":logon:"));
        assert!(!format!("{table:?}").contains(&hex), "Debug shows the key");
        let left = keys::still_findable(&keyring_description(&d.params.uuid));
        assert!(left.is_empty(), "{left:?}");
        println!("hex fallback checked in the child");
        return;
    }
    let filter = no_add_key_filter();
    // As an address: the pre_exec closure must be Send + Sync, raw pointers are neither.
    let (filter_addr, filter_len) = (filter.as_ptr() as usize, filter.len() as u16);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "keyring_refusal_falls_back_to_hex",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_VAR, "1");
    // SAFETY: runs in the forked child before exec; it makes only prctl system calls, which
    // are async-signal-safe, and reads `filter` (through its address), which the fork copied
    // and which lives until `output` returns. The filter is inherited across exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let prog = libc::sock_fprog {
                len: filter_len,
                filter: filter_addr as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("hex fallback checked in the child"),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The explicit hex placement never touches the keyring, even where it works.
#[test]
fn hex_placement_never_uses_the_keyring() {
    let d = disk();
    let description = keyring_description(&d.params.uuid);
    let dm = Watching {
        inner: MockDm::new(),
        description: description.clone(),
        at_load: RefCell::new(Vec::new()),
    };
    let name = MappingName::new("hex").unwrap();
    let a = activate_with(&dm, &d.path, &d.params, &d.key, &name, KeyPlacement::Hex).unwrap();
    assert!(!a.key_in_keyring);
    assert_eq!(dm.at_load.borrow().len(), 1);
    assert!(
        dm.at_load.borrow()[0].is_empty(),
        "the key was in a keyring during a hex load: {:?}",
        dm.at_load.borrow()[0]
    );
    assert!(dm.inner.device("hex").unwrap().active.unwrap().secret);
}
