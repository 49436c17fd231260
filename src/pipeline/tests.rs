//! Unit tests of the whole pipeline over mocks: MockFormatter, MockDm and regular files for the
//! source and the mapping. They run unprivileged and check every rollback path.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::class::ErrorClass;
use crate::dm::{Activation, MockDm};
use crate::key::VolumeKey;
use crate::luks::MockFormatter;

/// Block devices over regular files: the source is a file, the mapping another file.
struct FileDevices {
    mapping: PathBuf,
    fail_open_mapping: Cell<bool>,
    read_only_mapping: Cell<bool>,
    fail_mount: Cell<bool>,
    fail_unmount: Cell<bool>,
    mounts: RefCell<Vec<PathBuf>>,
    real_tmpfs: RefCell<Vec<PathBuf>>,
    state: PathBuf,
    /// What `cleanup` did to growers and mounts, in order (`stop-grower`, `unmount <dir>`).
    events: RefCell<Vec<String>>,
    /// Whether this pretend process may grow a mounted ext4 (CAP_SYS_RESOURCE).
    can_grow: Cell<bool>,
    /// Mount points where another file system is mounted over ours.
    stacked: RefCell<Vec<PathBuf>>,
    /// After the probe opened the source, point the source symlink here (a by-id link that
    /// flips to another device mid-run).
    flip_source_to: RefCell<Option<PathBuf>>,
    /// Cancelled (as a signal handler would) when the named step of ours runs.
    cancel_at: RefCell<Option<(Step, CancelToken)>>,
}

impl FileDevices {
    fn new(dir: &Path) -> FileDevices {
        FileDevices {
            mapping: dir.join("mapping.img"),
            fail_open_mapping: Cell::new(false),
            read_only_mapping: Cell::new(false),
            fail_mount: Cell::new(false),
            fail_unmount: Cell::new(false),
            mounts: RefCell::new(Vec::new()),
            real_tmpfs: RefCell::new(Vec::new()),
            state: dir.join("state"),
            events: RefCell::new(Vec::new()),
            can_grow: Cell::new(true),
            flip_source_to: RefCell::new(None),
            stacked: RefCell::new(Vec::new()),
            cancel_at: RefCell::new(None),
        }
    }
}

impl FileDevices {
    /// Deliver the pretend signal if the test asked for it at `step`.
    fn signal_if(&self, step: Step) {
        if let Some((at, token)) = &*self.cancel_at.borrow() {
            if *at == step {
                token.cancel(libc::SIGTERM);
            }
        }
    }
}

fn injected(what: &'static str, path: &Path) -> Error {
    Error::Io {
        what,
        path: path.to_path_buf(),
        source: std::io::Error::from_raw_os_error(libc::EIO),
    }
}

impl BlockDevices for FileDevices {
    fn state_dir(&self) -> PathBuf {
        self.state.clone()
    }

    fn probe_source(&self, path: &Path, wait: Duration) -> Result<SourceInfo> {
        devices::wait_for(path, wait)?;
        let len = std::fs::metadata(path)
            .map_err(|source| Error::Io {
                what: "stat",
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if let Some(other) = self.flip_source_to.borrow_mut().take() {
            let held = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            let tmp = path.with_extension("flip");
            std::os::unix::fs::symlink(&other, &tmp).unwrap();
            std::fs::rename(&tmp, path).unwrap();
            return Ok(SourceInfo::holding(len, held));
        }
        Ok(SourceInfo::unlocked(len))
    }

    fn open_mapping(&self, activation: &Activation) -> Result<File> {
        self.signal_if(Step::OpenMapping);
        if self.fail_open_mapping.get() {
            return Err(injected("open", &activation.mapper_path));
        }
        let f = File::create(&self.mapping).unwrap();
        f.set_len(activation.size_bytes).unwrap();
        drop(f);
        Ok(OpenOptions::new()
            .read(true)
            .write(!self.read_only_mapping.get())
            .open(&self.mapping)
            .unwrap())
    }

    fn mount(&self, _device: &Path, request: &MountRequest) -> Result<()> {
        if self.fail_mount.get() {
            return Err(injected("mount ext4 on", &request.dir));
        }
        self.mounts.borrow_mut().push(request.dir.clone());
        self.signal_if(Step::Mount);
        Ok(())
    }

    fn mounts_of(&self, _dev: crate::dm::DevNum) -> Result<Vec<PathBuf>> {
        Ok(self.mounts.borrow().iter().rev().cloned().collect())
    }

    fn device_at(&self, dir: &Path) -> Result<crate::dm::DevNum> {
        // The mock's mounts are all of its crypt device (254:1, made after the integrity
        // device 254:0), unless something is stacked there.
        let ours = crate::dm::DevNum {
            major: 254,
            minor: 1,
        };
        Ok(if self.stacked.borrow().iter().any(|d| d == dir) {
            crate::dm::DevNum { major: 8, minor: 1 }
        } else {
            ours
        })
    }

    fn stop_grower(&self, _name: &MappingName) -> Result<()> {
        self.events.borrow_mut().push("stop-grower".to_owned());
        Ok(())
    }

    fn can_grow_online(&self) -> bool {
        self.can_grow.get()
    }

    fn unmount(&self, dir: &Path) -> Result<()> {
        self.events
            .borrow_mut()
            .push(format!("unmount {}", dir.display()));
        if self.fail_unmount.get() {
            return Err(injected("unmount", dir));
        }
        if self.real_tmpfs.borrow().iter().any(|d| d == dir) {
            nix::mount::umount2(dir, nix::mount::MntFlags::empty()).unwrap();
            self.real_tmpfs.borrow_mut().retain(|d| d != dir);
        }
        self.mounts.borrow_mut().retain(|d| d != dir);
        Ok(())
    }

    fn mount_private_tmpfs(&self, dir: &Path) -> Result<()> {
        crate::pipeline::mount::mount_private_tmpfs(dir)?;
        self.real_tmpfs.borrow_mut().push(dir.to_path_buf());
        Ok(())
    }
}

/// One test's world: a temp dir with the source file, a temp base dir, and the mocks.
struct World {
    dir: tempfile::TempDir,
    source: PathBuf,
    temp_base: PathBuf,
    luks: MockFormatter,
    dm: MockDm,
    devices: FileDevices,
    name: MappingName,
}

impl World {
    fn new(size: u64) -> World {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.img");
        File::create(&source).unwrap().set_len(size).unwrap();
        let temp_base = dir.path().join("tmp");
        std::fs::create_dir(&temp_base).unwrap();
        let devices = FileDevices::new(dir.path());
        World {
            dir,
            source,
            temp_base,
            luks: MockFormatter::new(),
            dm: MockDm::new(),
            devices,
            name: MappingName::new("scratch").unwrap(),
        }
    }

    fn options(&self) -> EncryptOptions {
        EncryptOptions {
            temp_dir: Some(self.temp_base.clone()),
            wait_timeout: Duration::ZERO,
            ..EncryptOptions::default()
        }
    }

    fn run(&self, options: &EncryptOptions) -> Result<EncryptReport> {
        let system = System {
            luks: &self.luks,
            dm: &self.dm,
            devices: &self.devices,
            zero_filter: None,
        };
        encrypt_with(&system, &self.source, &self.name, options)
    }

    /// Nothing of ours is left: no device-mapper device, no temp dir, no mount.
    fn assert_nothing_left(&self) {
        assert!(
            self.dm.device_names().is_empty(),
            "{:?}",
            self.dm.device_names()
        );
        assert!(self.dm.nodes().is_empty(), "{:?}", self.dm.nodes());
        let left: Vec<_> = std::fs::read_dir(&self.temp_base).unwrap().collect();
        assert!(left.is_empty(), "temp dir left behind: {left:?}");
        assert!(self.devices.mounts.borrow().is_empty());
    }
}

/// The step an error names, if it is a pipeline error.
fn step_of(err: &Error) -> Option<Step> {
    match err {
        Error::Pipeline { step, .. } => Some(*step),
        Error::Rollback { cause, .. } => step_of(cause),
        _ => None,
    }
}

/// Whether e2fsck is available (it is a test oracle, installed by scripts/deps.sh).
fn have_e2fsck() -> bool {
    let ok = Command::new("e2fsck").arg("-V").output().is_ok();
    if !ok {
        let thread = std::thread::current();
        crate::test_skip::cannot_run(
            thread.name().unwrap_or("pipeline::tests"),
            "the e2fsck check needs e2fsck (scripts/deps.sh installs it)",
        );
    }
    ok
}

/// The happy path produces a mapping, a clean ext4 on it, a full report and no temp dir.
#[test]
fn encrypt_builds_a_clean_file_system_and_reports() {
    let w = World::new(64 << 20);
    let report = w.run(&w.options()).unwrap();
    assert_eq!(report.mapper_path, Path::new("/dev/mapper/scratch"));
    assert_eq!(w.dm.device_names(), vec!["scratch", "scratch_dif"]);
    assert_eq!(w.luks.calls(), 1);
    assert!(report.mapping_bytes > 0 && report.mapping_bytes < report.source_bytes);
    assert!(report.written.zeroed > 0 && report.written.ext4_metadata > 0);
    assert_eq!(report.image_data_bytes, report.written.ext4_metadata);
    // Every zeroed byte has a named owner.
    let w8 = &report.written;
    assert!(w8.zeroed_metadata.inode_tables > 0 && w8.zeroed_metadata.bitmaps > 0);
    assert_eq!(
        w8.zeroed,
        w8.zeroed_metadata.total() + w8.probe_blocks + w8.read_ahead_margins,
        "{w8:?}"
    );
    assert_eq!(
        report.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        vec![
            Step::ProbeSource,
            Step::CheckData,
            Step::CheckNames,
            Step::CheckKernel,
            Step::GenerateKey,
            Step::FormatHeader,
            Step::Activate,
            Step::OpenMapping,
            Step::TempDir,
            Step::BuildImage,
            Step::ZeroRanges,
            Step::CopyImage,
            Step::RemoveTempDir,
            Step::Announce,
        ]
    );
    let left: Vec<_> = std::fs::read_dir(&w.temp_base).unwrap().collect();
    assert!(left.is_empty());
    assert!(report.peak_rss_bytes > 0);
    if have_e2fsck() {
        let out = Command::new("e2fsck")
            .args(["-fn"])
            .arg(&w.devices.mapping)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "e2fsck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["steps"][0]["step"], "probe_source");
    assert!(json["written"]["zeroed"].as_u64().unwrap() > 0);
}

/// `--mount` mounts last and is reported.
#[test]
fn encrypt_mounts_when_asked() {
    let w = World::new(64 << 20);
    let mut options = w.options();
    let dir = w.dir.path().join("mnt");
    options.mount = Some(MountRequest {
        dir: dir.clone(),
        options: None,
    });
    let report = w.run(&options).unwrap();
    assert_eq!(report.mounted_at, Some(dir.clone()));
    assert_eq!(*w.devices.mounts.borrow(), vec![dir]);
}

/// A taken name is refused before the header is written.
#[test]
fn taken_name_is_refused_before_formatting() {
    let w = World::new(64 << 20);
    w.dm.insert("scratch_dif", "CRYPT-INTEGRITY-x-scratch_dif", 0);
    let err = w.run(&w.options()).unwrap_err();
    assert_eq!(step_of(&err), Some(Step::CheckNames));
    assert_eq!(err.class(), ErrorClass::Busy);
    assert_eq!(w.luks.calls(), 0);
    assert_eq!(w.dm.device_names(), vec!["scratch_dif"]);
}

/// A kernel whose dm-integrity predates the fixed padding (Linux 5.4's 1.4.0) is refused before
/// the header is written, with an "unsupported" error naming the version and the feature.
#[test]
fn old_kernel_is_refused_before_formatting() {
    let w = World::new(64 << 20);
    w.dm.set_target_versions(&[
        ("integrity", crate::dm_table::TargetVersion::new(1, 4, 0)),
        ("crypt", crate::dm_table::TargetVersion::new(1, 19, 0)),
    ]);
    let err = w.run(&w.options()).unwrap_err();
    assert_eq!(step_of(&err), Some(Step::CheckKernel));
    assert_eq!(err.class(), ErrorClass::Unsupported);
    assert!(
        err.line().contains("dm-integrity target is version 1.4.0"),
        "{}",
        err.line()
    );
    assert!(err.line().contains("fix_padding"), "{}", err.line());
    assert_eq!(w.luks.calls(), 0);
    assert!(w.dm.device_names().is_empty());
}

/// A source that never appears is refused after the wait, naming the path.
#[test]
fn missing_source_is_refused_after_waiting() {
    let w = World::new(64 << 20);
    let mut options = w.options();
    options.wait_timeout = Duration::from_millis(120);
    let system = System {
        luks: &w.luks,
        dm: &w.dm,
        devices: &w.devices,
        zero_filter: None,
    };
    let missing = w.dir.path().join("nope");
    let started = std::time::Instant::now();
    let err = encrypt_with(&system, &missing, &w.name, &options).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(step_of(&err), Some(Step::ProbeSource));
    assert_eq!(err.class(), ErrorClass::InvalidInput);
    assert!(crate::error::chain(&err).contains("nope"));
    assert_eq!(w.luks.calls(), 0);
}

/// Each step made to fail leaves nothing behind and is named in the error.
#[test]
fn every_failing_step_rolls_back() {
    type Setup = fn(&World, &mut EncryptOptions);
    let cases: Vec<(Step, Setup)> = vec![
        (Step::FormatHeader, |w, _| w.luks.fail_next(libc::EIO)),
        (Step::Activate, |w, _| {
            w.dm.fail_on("create", "scratch", libc::ENOMEM)
        }),
        (Step::Activate, |w, _| {
            w.dm.fail_on("resume", "scratch", libc::EINVAL)
        }),
        (Step::OpenMapping, |w, _| {
            w.devices.fail_open_mapping.set(true)
        }),
        (Step::TempDir, |w, o| {
            o.temp_dir = Some(w.dir.path().join("no-such-dir"))
        }),
        (Step::ZeroRanges, |w, _| {
            w.devices.read_only_mapping.set(true)
        }),
        (Step::Mount, |w, o| {
            w.devices.fail_mount.set(true);
            o.mount = Some(MountRequest {
                dir: w.dir.path().join("mnt"),
                options: None,
            });
        }),
    ];
    for (step, setup) in cases {
        let w = World::new(64 << 20);
        let mut options = w.options();
        setup(&w, &mut options);
        let err = w.run(&options).unwrap_err();
        assert_eq!(step_of(&err), Some(step), "{}", crate::error::chain(&err));
        assert!(!matches!(err, Error::Rollback { .. }), "{err}");
        w.assert_nothing_left();
    }
}

/// A temp dir on a file system that cannot hold the image is refused at the temp-dir step.
#[test]
fn temp_dir_that_is_a_file_is_refused() {
    let w = World::new(64 << 20);
    let mut options = w.options();
    let file = w.dir.path().join("plain-file");
    File::create(&file).unwrap();
    options.temp_dir = Some(file);
    let err = w.run(&options).unwrap_err();
    assert_eq!(step_of(&err), Some(Step::TempDir));
    w.assert_nothing_left();
}

/// When the rollback itself fails, the error says so and is classed RollbackFailed.
#[test]
fn failed_rollback_is_reported_with_the_cause() {
    let w = World::new(64 << 20);
    let mut options = w.options();
    options.temp_dir = Some(w.dir.path().join("no-such-dir"));
    w.dm.fail_on("remove", "scratch", libc::EBUSY);
    let err = w.run(&options).unwrap_err();
    assert_eq!(err.class(), ErrorClass::RollbackFailed);
    assert_eq!(step_of(&err), Some(Step::TempDir));
    let text = err.to_string();
    assert!(text.contains("prepare the temp dir"), "{text}");
    assert!(text.contains("rolling back also failed"), "{text}");
    assert!(text.contains("remove the mapping"), "{text}");
}

/// Cleanup removes both layers, says when there was nothing, and unmounts only when asked.
#[test]
fn cleanup_removes_both_layers_and_is_idempotent() {
    let w = World::new(64 << 20);
    w.run(&w.options()).unwrap();
    let out = cleanup_with(&w.dm, &w.devices, &w.name, &CleanupOptions::default()).unwrap();
    assert!(out.existed && out.crypt_removed && out.integrity_removed);
    assert!(w.dm.device_names().is_empty());
    let again = cleanup_with(&w.dm, &w.devices, &w.name, &CleanupOptions::default()).unwrap();
    assert!(!again.existed);
}

/// A busy mapping is refused by cleanup and left whole.
#[test]
fn cleanup_of_a_busy_mapping_removes_nothing() {
    let w = World::new(64 << 20);
    w.run(&w.options()).unwrap();
    w.dm.set_open_count("scratch", 1);
    let err = cleanup_with(&w.dm, &w.devices, &w.name, &CleanupOptions::default()).unwrap_err();
    assert_eq!(step_of(&err), Some(Step::RemoveMapping));
    assert_eq!(err.class(), ErrorClass::Busy);
    assert_eq!(w.dm.device_names(), vec!["scratch", "scratch_dif"]);
}

/// Issue 26 item 3: `cleanup --unmount` of a mapping that is not ours (an LVM volume of the
/// same name, mounted) refuses before it unmounts anything, with or without `--force`.
#[test]
fn cleanup_unmount_leaves_the_mounts_of_a_foreign_mapping() {
    let w = World::new(64 << 20);
    w.dm.insert(
        "scratch",
        "LVM-n7Yc0000000000000000000000000000000000000000000000000000",
        1,
    );
    w.devices
        .mounts
        .borrow_mut()
        .push(PathBuf::from("/srv/data"));
    for force in [false, true] {
        let options = CleanupOptions {
            unmount: true,
            force,
            ..CleanupOptions::default()
        };
        let err = cleanup_with(&w.dm, &w.devices, &w.name, &options).unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidInput, "{}", err.line());
        assert_eq!(
            *w.devices.events.borrow(),
            Vec::<String>::new(),
            "force {force}"
        );
        assert_eq!(*w.devices.mounts.borrow(), vec![PathBuf::from("/srv/data")]);
        assert_eq!(w.dm.device_names(), vec!["scratch"]);
    }
}

/// Issue 26 item 1: `cleanup` without `--unmount` of a mounted fast start is refused (exit 4)
/// with its grower left running; with `--unmount` the grower is stopped first, then the file
/// system unmounted, then the mapping removed.
#[test]
fn cleanup_of_a_mounted_fast_start_keeps_its_grower_unless_it_unmounts() {
    let w = World::new(512 << 20);
    let mut options = w.options();
    options.format.initial_bytes = Some(128 << 20);
    let dir = w.dir.path().join("mnt");
    options.mount = Some(MountRequest {
        dir: dir.clone(),
        options: None,
    });
    w.run(&options).unwrap();
    let err = cleanup_with(&w.dm, &w.devices, &w.name, &CleanupOptions::default()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Busy, "{}", err.line());
    assert_eq!(err.class().exit_code(), 4);
    assert!(err.line().contains("--unmount"), "{}", err.line());
    assert_eq!(*w.devices.events.borrow(), Vec::<String>::new());
    assert_eq!(w.dm.device_names(), vec!["scratch", "scratch_dif"]);
    let unmount = CleanupOptions {
        unmount: true,
        ..CleanupOptions::default()
    };
    let out = cleanup_with(&w.dm, &w.devices, &w.name, &unmount).unwrap();
    assert!(out.crypt_removed && out.integrity_removed);
    assert_eq!(
        *w.devices.events.borrow(),
        vec![
            "stop-grower".to_owned(),
            format!("unmount {}", dir.display())
        ]
    );
}

/// Issue 26 item 12: `cleanup --unmount` where another file system is mounted over ours
/// refuses before unmounting anything (an unmount by path would remove the other one).
#[test]
fn cleanup_unmount_refuses_a_mount_point_with_another_fs_on_top() {
    let w = World::new(64 << 20);
    let dir = w.dir.path().join("mnt");
    let mut options = w.options();
    options.mount = Some(MountRequest {
        dir: dir.clone(),
        options: None,
    });
    w.run(&options).unwrap();
    assert_eq!(w.dm.device("scratch").unwrap().dev.to_string(), "254:1");
    w.devices.stacked.borrow_mut().push(dir.clone());
    let unmount = CleanupOptions {
        unmount: true,
        ..CleanupOptions::default()
    };
    let err = cleanup_with(&w.dm, &w.devices, &w.name, &unmount).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Busy, "{}", err.line());
    assert!(err.line().contains("mounted over it"), "{}", err.line());
    assert_eq!(*w.devices.events.borrow(), Vec::<String>::new());
    assert_eq!(w.dm.device_names(), vec!["scratch", "scratch_dif"]);
    w.devices.stacked.borrow_mut().clear();
    cleanup_with(&w.dm, &w.devices, &w.name, &unmount).unwrap();
    assert_eq!(
        *w.devices.events.borrow(),
        vec![
            "stop-grower".to_owned(),
            format!("unmount {}", dir.display())
        ]
    );
}

/// Issue 26 item 2: a fast start where the file system cannot grow online (no
/// CAP_SYS_RESOURCE) is refused (exit 8) before the header is written; with
/// `full_format_if_no_growth` it formats the full size and records no growth.
#[test]
fn fast_start_without_online_growth_is_refused_or_formats_full() {
    let w = World::new(512 << 20);
    w.devices.can_grow.set(false);
    let mut options = w.options();
    options.format.initial_bytes = Some(128 << 20);
    options.mount = Some(MountRequest {
        dir: w.dir.path().join("mnt"),
        options: None,
    });
    let err = w.run(&options).unwrap_err();
    assert_eq!(err.class(), ErrorClass::PermissionDenied, "{}", err.line());
    assert_eq!(err.class().exit_code(), 8);
    assert!(err.line().contains("CAP_SYS_RESOURCE"), "{}", err.line());
    assert_eq!(w.luks.calls(), 0, "the header was written");
    w.assert_nothing_left();
    options.full_format_if_no_growth = true;
    let report = w.run(&options).unwrap();
    assert_eq!(report.fs_bytes, report.target_bytes, "{report:?}");
    assert!(report.fs_bytes > 400 << 20, "{report:?}");
    assert!(super::grow::GrowState::load_in(&w.devices.state, &w.name)
        .unwrap()
        .is_none());
}

/// Issue 26 item 9: a source named by a link that flips to another device right after the
/// probe (a by-id or multipath link) gets the checked, locked device formatted; the device the
/// link points to afterwards is never touched.
#[test]
fn a_source_link_that_flips_after_the_probe_changes_nothing() {
    let w = World::new(64 << 20);
    let locked = w.dir.path().join("locked.img");
    std::fs::rename(&w.source, &locked).unwrap();
    std::os::unix::fs::symlink(&locked, &w.source).unwrap();
    let other = w.dir.path().join("other.img");
    File::create(&other).unwrap().set_len(64 << 20).unwrap();
    *w.devices.flip_source_to.borrow_mut() = Some(other.clone());
    w.run(&w.options()).unwrap();
    assert_eq!(
        std::fs::read_link(&w.source).unwrap(),
        other,
        "the link did not flip"
    );
    let other_bytes = std::fs::read(&other).unwrap();
    assert!(
        other_bytes.iter().all(|b| *b == 0),
        "the device the link pointed to afterwards was written"
    );
    let locked_bytes = std::fs::read(&locked).unwrap();
    assert!(
        locked_bytes.iter().any(|b| *b != 0),
        "the locked device was not formatted"
    );
}

/// A formatter that remembers the key it was given, to search outputs for it.
struct RecordingFormatter {
    inner: MockFormatter,
    seen: RefCell<Vec<u8>>,
}

impl LuksFormatter for RecordingFormatter {
    fn format(
        &self,
        device: &Path,
        key: &VolumeKey,
    ) -> std::result::Result<crate::params::LuksParams, crate::luks::LuksError> {
        self.seen.borrow_mut().extend_from_slice(key.expose());
        self.inner.format(device, key)
    }
}

/// The key never reaches the report (Debug or JSON), an error, or the mapping's contents, in
/// raw or hex form.
#[test]
fn key_material_appears_in_no_output() {
    let w = World::new(64 << 20);
    let luks = RecordingFormatter {
        inner: MockFormatter::new(),
        seen: RefCell::new(Vec::new()),
    };
    let system = System {
        luks: &luks,
        dm: &w.dm,
        devices: &w.devices,
        zero_filter: None,
    };
    let report = encrypt_with(&system, &w.source, &w.name, &w.options()).unwrap();
    let key = luks.seen.borrow().clone();
    assert_eq!(key.len(), 96);
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let texts = [
        serde_json::to_string(&report).unwrap(),
        format!("{report:?}"),
        format!("{:?}", w.dm.device("scratch").unwrap()),
    ];
    for text in &texts {
        assert!(!text.contains(&hex), "hex key found in {text}");
        assert!(!text.contains(&hex[..32]), "part of the hex key found");
    }
    let mapping = std::fs::read(&w.devices.mapping).unwrap();
    let source = std::fs::read(&w.source).unwrap();
    for bytes in [&mapping, &source] {
        assert!(!bytes.windows(16).any(|win| win == &key[..16]));
    }
    // A failing run's error does not carry it either.
    let w2 = World::new(64 << 20);
    w2.dm.fail_on("load", "scratch", libc::EINVAL);
    let system = System {
        luks: &luks,
        dm: &w2.dm,
        devices: &w2.devices,
        zero_filter: None,
    };
    let err = encrypt_with(&system, &w2.source, &w2.name, &w2.options()).unwrap_err();
    let key2: String = luks.seen.borrow()[96..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!format!("{err:?} {}", crate::error::chain(&err)).contains(&key2));
}

/// A temp dir on ramfs (which reports every byte as data) gets a private tmpfs mounted on the
/// private dir when the fallback is on, and is refused with the reason when it is off; either
/// way nothing is left mounted or behind.
#[test]
fn ramfs_temp_dir_falls_back_to_a_private_tmpfs() {
    if !nix::unistd::Uid::effective().is_root()
        && crate::test_skip::cannot_run(
            "ramfs_temp_dir_falls_back_to_a_private_tmpfs",
            "mounting ramfs needs root",
        )
    {
        return;
    }
    let w = World::new(64 << 20);
    nix::mount::mount(
        Some("ramfs"),
        &w.temp_base,
        Some("ramfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(&w.temp_base);

    let mut options = w.options();
    options.tmpfs_fallback = false;
    let err = w.run(&options).unwrap_err();
    assert_eq!(step_of(&err), Some(Step::TempDir));
    assert_eq!(err.class(), ErrorClass::Unsupported);
    w.assert_nothing_left();

    options.tmpfs_fallback = true;
    let report = w.run(&options).unwrap();
    assert!(
        report.temp_fs.starts_with("tmpfs (private mount"),
        "{}",
        report.temp_fs
    );
    assert!(w.devices.real_tmpfs.borrow().is_empty());
    let left: Vec<_> = std::fs::read_dir(&w.temp_base).unwrap().collect();
    assert!(left.is_empty(), "temp dir left behind: {left:?}");
}

/// The mock formatter leaves a device that activation over the mock device-mapper accepts,
/// and its injected failure is reported once.
#[test]
fn mock_formatter_feeds_activation() {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(64 << 20).unwrap();
    let key = VolumeKey::generate().unwrap();
    let fmt = MockFormatter::new();
    fmt.fail_next(libc::EIO);
    assert_eq!(
        fmt.format(f.path(), &key).unwrap_err().class(),
        ErrorClass::Io
    );
    let params = fmt.format(f.path(), &key).unwrap();
    assert_eq!(fmt.calls(), 2);
    let dm = MockDm::new();
    let name = MappingName::new("pipeline").unwrap();
    let a = crate::dm::activate(&dm, f.path(), &params, &key, &name).unwrap();
    assert!(a.size_bytes > 60 << 20 && a.size_bytes < 63 << 20, "{a:?}");
}

/// A formatter that, while the header is being written, lets another process take the name.
struct NameThief<'a> {
    inner: MockFormatter,
    dm: &'a MockDm,
}

impl LuksFormatter for NameThief<'_> {
    fn format(
        &self,
        device: &Path,
        key: &VolumeKey,
    ) -> std::result::Result<crate::params::LuksParams, crate::luks::LuksError> {
        self.dm.insert(
            "scratch",
            "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-scratch",
            0,
        );
        self.inner.format(device, key)
    }
}

/// When the name is taken between the check and the activation, the run fails as busy and its
/// rollback leaves the other process's mapping alone (its key lives only in the kernel).
#[test]
fn a_name_taken_during_the_run_is_not_removed_by_the_rollback() {
    let w = World::new(64 << 20);
    let luks = NameThief {
        inner: MockFormatter::new(),
        dm: &w.dm,
    };
    let system = System {
        luks: &luks,
        dm: &w.dm,
        devices: &w.devices,
        zero_filter: None,
    };
    let err = encrypt_with(&system, &w.source, &w.name, &w.options()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Busy, "{}", err.line());
    assert_eq!(step_of(&err), Some(Step::Activate));
    assert_eq!(w.dm.device_names(), vec!["scratch"]);
    assert!(
        !w.dm.calls().iter().any(|c| c.starts_with("remove")),
        "{:?}",
        w.dm.calls()
    );
}

/// A run that fails after activating removes exactly its own mapping, and a same-named
/// mapping with another header UUID is refused by the run's own removal.
#[test]
fn rollback_removes_only_the_mapping_with_our_uuids() {
    let w = World::new(64 << 20);
    let key = VolumeKey::generate().unwrap();
    let params = w.luks.format(&w.source, &key).unwrap();
    crate::dm::activate(&w.dm, &w.source, &params, &key, &w.name).unwrap();
    let other = uuid::Uuid::from_u128(7);
    let e = crate::dm::remove_ours(&w.dm, &w.name, &other).unwrap_err();
    assert!(e.to_string().contains("not ours"), "{e}");
    assert_eq!(w.dm.device_names(), vec!["scratch", "scratch_dif"]);
    let removed = crate::dm::remove_ours(&w.dm, &w.name, &params.uuid).unwrap();
    assert!(removed.crypt_removed && removed.integrity_removed);
    assert!(w.dm.device_names().is_empty());
}

/// A fast start without a mount is refused before anything is written: the file system can
/// only grow mounted.
#[test]
fn fast_start_without_a_mount_is_refused_first() {
    let w = World::new(512 << 20);
    let mut options = w.options();
    options.format.initial_bytes = Some(128 << 20);
    let err = w.run(&options).unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput, "{}", err.line());
    assert!(err.line().contains("--mount"), "{}", err.line());
    assert_eq!(w.luks.calls(), 0, "the header was written");
    w.assert_nothing_left();
}

/// A fast start returns a small mounted file system, reports the size it grows to, and
/// records the target and the mount point for `grow` and `status`.
#[test]
fn fast_start_records_what_grow_needs() {
    let w = World::new(512 << 20);
    let mut options = w.options();
    options.format.initial_bytes = Some(128 << 20);
    let dir = w.dir.path().join("mnt");
    options.mount = Some(MountRequest {
        dir: dir.clone(),
        options: None,
    });
    let report = w.run(&options).unwrap();
    assert_eq!(report.fs_bytes, 128 << 20);
    assert!(report.target_bytes > 400 << 20, "{report:?}");
    assert!(report.target_bytes <= report.mapping_bytes);
    let state = super::grow::GrowState::load_in(&w.devices.state, &w.name)
        .unwrap()
        .unwrap();
    assert_eq!(state.target_blocks * 4096, report.target_bytes);
    assert_eq!(state.mount, dir);
    // The image on the mapping is the small one: its superblock says so, with noinit_itable.
    let mapping = File::open(&w.devices.mapping).unwrap();
    let geom = crate::resize::Ext4Geometry::read(&mapping, &w.devices.mapping).unwrap();
    assert_eq!(geom.blocks * 4096, report.fs_bytes);
    assert!(geom.has_noinit_itable());
}

/// A signal during any step stops the run at the next safe point and rolls back everything,
/// and the error names the step and the signal; a new run right after works.
#[test]
fn a_signal_during_any_step_rolls_back_everything() {
    for step in [
        Step::ProbeSource,
        Step::OpenMapping,
        Step::ZeroRanges,
        Step::CopyImage,
        Step::Mount,
    ] {
        let w = World::new(64 << 20);
        let mut options = w.options();
        options.mount = Some(MountRequest {
            dir: w.dir.path().join("mnt"),
            options: None,
        });
        let token = options.cancel.clone();
        match step {
            Step::ProbeSource => token.cancel(libc::SIGTERM),
            Step::ZeroRanges | Step::CopyImage => {
                let token = token.clone();
                options.progress = Some(std::sync::Arc::new(move |at, _, _| {
                    if at == step {
                        token.cancel(libc::SIGTERM);
                    }
                }));
            }
            _ => *w.devices.cancel_at.borrow_mut() = Some((step, token.clone())),
        }
        let err = w.run(&options).unwrap_err();
        assert_eq!(step_of(&err), Some(step), "{}", err.line());
        assert_eq!(err.interrupted_by(), Some(libc::SIGTERM), "{}", err.line());
        assert_eq!(err.class(), ErrorClass::Interrupted);
        assert!(
            err.line().contains("interrupted by SIGTERM"),
            "{}",
            err.line()
        );
        w.assert_nothing_left();
        if step == Step::ProbeSource {
            assert_eq!(
                w.luks.calls(),
                0,
                "nothing may be written after an early signal"
            );
        }

        let mut again = w.options();
        again.mount = options.mount.clone();
        *w.devices.cancel_at.borrow_mut() = None;
        w.run(&again).unwrap();
        assert_eq!(w.dm.device_names(), vec!["scratch", "scratch_dif"]);
    }
}

/// The zeroing stops within a chunk of the signal, not at the end of all ranges.
#[test]
fn the_zeroing_stops_at_the_next_chunk() {
    let w = World::new(256 << 20);
    let mut options = w.options();
    let token = options.cancel.clone();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    options.progress = Some(std::sync::Arc::new(move |at, _, _| {
        if at == Step::ZeroRanges {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            token.cancel(libc::SIGINT);
        }
    }));
    let err = w.run(&options).unwrap_err();
    assert_eq!(err.interrupted_by(), Some(libc::SIGINT));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    w.assert_nothing_left();
}

/// A source holding a file system is refused before anything is written, and left
/// byte-for-byte as it was; `force` writes over it.
#[test]
fn a_source_with_a_file_system_is_refused_unless_forced() {
    let w = World::new(64 << 20);
    let made = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "precious"])
        .arg(&w.source)
        .output();
    if made.is_err() {
        crate::test_skip::cannot_run(
            "pipeline::tests::a_source_with_a_file_system_is_refused_unless_forced",
            "needs mke2fs (scripts/deps.sh installs it)",
        );
        return;
    }
    let before = std::fs::read(&w.source).unwrap();
    let err = w.run(&w.options()).unwrap_err();
    assert_eq!(step_of(&err), Some(Step::CheckData), "{}", err.line());
    assert_eq!(err.class(), ErrorClass::Busy);
    let line = err.line();
    assert!(
        line.contains("holds ext4 (filesystem) labelled \"precious\""),
        "{line}"
    );
    assert!(line.contains("--force"), "{line}");
    assert_eq!(w.luks.calls(), 0);
    w.assert_nothing_left();
    assert!(
        std::fs::read(&w.source).unwrap() == before,
        "the refused source was changed"
    );

    let mut forced = w.options();
    forced.force = true;
    w.run(&forced).unwrap();
    assert_eq!(w.luks.calls(), 1);
}

/// A panic in the middle (here: in the caller's progress callback) rolls back like an error.
#[test]
fn a_panic_mid_run_rolls_back_everything() {
    let w = World::new(64 << 20);
    let mut options = w.options();
    options.progress = Some(std::sync::Arc::new(|at, _, _| {
        if at == Step::CopyImage {
            panic!("progress callback panics on purpose");
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run(&options)));
    assert!(result.is_err(), "the panic must reach the caller");
    w.assert_nothing_left();
}
