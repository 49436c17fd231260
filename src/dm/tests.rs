use super::*;
use crate::class::ErrorClass;
use std::os::unix::fs::FileExt;

/// A temp "disk" with an integrity superblock at sector 32 providing 64 sectors, and matching
/// header parameters.
struct Fixture {
    _dir: tempfile::TempDir,
    source: PathBuf,
    params: LuksParams,
    key: VolumeKey,
    name: MappingName,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("disk");
    let f = std::fs::File::create(&source).unwrap();
    f.set_len(200 * 512).unwrap();
    f.write_all_at(&crate::superblock::tests::superblock_bytes(64), 32 * 512)
        .unwrap();
    Fixture {
        _dir: dir,
        source,
        params: LuksParams {
            data_offset_sectors: 32,
            ..crate::dm_table::tests::params()
        },
        key: VolumeKey::from_bytes(&[0x7c; 96]).unwrap(),
        name: MappingName::new("scratch").unwrap(),
    }
}

fn run(dm: &MockDm, fx: &Fixture) -> Result<Activation, DmError> {
    activate(dm, &fx.source, &fx.params, &fx.key, &fx.name)
}

/// A clean activation creates `_dif` then the crypt device, with cryptsetup's UUIDs, live
/// tables stacked by device number, and both nodes.
#[test]
fn activation_builds_the_stack() {
    let fx = fixture();
    let dm = MockDm::new();
    let a = run(&dm, &fx).unwrap();
    assert_eq!(a.mapper_path, Path::new("/dev/mapper/scratch"));
    assert_eq!(a.size_bytes, 64 * 512);
    assert_eq!(a.integrity_name, "scratch_dif");
    let dif = dm.device("scratch_dif").unwrap();
    let crypt = dm.device("scratch").unwrap();
    assert_eq!(
        dif.uuid,
        "CRYPT-INTEGRITY-0b3c5d1e2f404a5b8c6d7e8f90a1b2c3-scratch_dif"
    );
    assert_eq!(
        crypt.uuid,
        "CRYPT-LUKS2-0b3c5d1e2f404a5b8c6d7e8f90a1b2c3-scratch"
    );
    let dt = dif.active.unwrap();
    assert_eq!(
        dt.params.as_str(),
        format!(
            "{} 32 32 D 2 block_size:4096 fix_padding",
            fx.source.display()
        )
    );
    let ct = crypt.active.unwrap();
    assert!(
        ct.params.contains(&format!(" 0 {} 0 2 ", dif.dev)),
        "{:?}",
        ct.params
    );
    // Where the kernel takes logon keys, the keyring path is the one taken; the hex fallback
    // has its own test (tests/key_hygiene.rs, with add_key made to fail).
    let probe = VolumeKey::from_bytes(&[0x11; 96]).unwrap();
    let keyring_works = crate::keyring::KeyringKey::add("scratchcrypt:dm-tests-probe-d0", &probe)
        .and_then(|k| k.remove())
        .map_err(|e| e.to_string());
    match keyring_works {
        Ok(()) => {
            assert!(
                a.key_in_keyring,
                "the keyring works, yet the key went as hex"
            );
            assert!(ct.params.contains(":96:logon:cryptsetup:0b3c5d1e-"));
            assert!(!ct.params.contains(&"7c".repeat(96)));
            assert!(!ct.secret);
        }
        Err(e) => {
            crate::test_skip::cannot_run(
                "activation_builds_the_stack (keyring part)",
                &format!("the kernel keyring refuses logon keys: {e}"),
            );
            assert!(!a.key_in_keyring);
            assert!(ct.params.contains(&"7c".repeat(96)));
            assert!(ct.secret);
        }
    }
    assert_eq!(dm.nodes(), vec!["scratch", "scratch_dif"]);
    let creates: Vec<_> = dm
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("create"))
        .collect();
    assert_eq!(creates, vec!["create scratch_dif", "create scratch"]);
    let udev: Vec<_> = dm
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("udev"))
        .collect();
    assert_eq!(
        udev,
        vec!["udev scratch_dif Private", "udev scratch NoProbe"]
    );
}

/// Every call of the transaction that fails leaves no device and no node behind, and the
/// error is the call's own.
#[test]
fn every_failure_rolls_back_everything() {
    let steps = [
        ("create", "scratch_dif"),
        ("load", "scratch_dif"),
        ("resume", "scratch_dif"),
        ("create", "scratch"),
        ("load", "scratch"),
        ("resume", "scratch"),
        ("make_node", "scratch_dif"),
        ("make_node", "scratch"),
    ];
    for (op, name) in steps {
        let fx = fixture();
        let dm = MockDm::new();
        dm.fail_on(op, name, libc::EIO);
        let e = run(&dm, &fx).unwrap_err();
        assert!(
            matches!(&e, DmError::Ioctl { step, name: n, .. } if *step == op && n == name),
            "{op} {name}: {e:?}"
        );
        assert_eq!(e.class(), ErrorClass::Io);
        assert!(
            dm.device_names().is_empty(),
            "{op} {name}: {:?}",
            dm.device_names()
        );
        assert!(dm.nodes().is_empty(), "{op} {name}: {:?}", dm.nodes());
    }
}

/// When an undo fails too, both the cause and the failed undo are reported.
#[test]
fn failed_rollback_is_reported_with_the_cause() {
    let fx = fixture();
    let dm = MockDm::new();
    dm.fail_on("resume", "scratch", libc::EIO);
    dm.fail_on("remove", "scratch_dif", libc::EBUSY);
    let e = run(&dm, &fx).unwrap_err();
    assert_eq!(e.class(), ErrorClass::RollbackFailed);
    let msg = e.to_string();
    assert!(msg.contains("resume scratch"), "{msg}");
    assert!(
        msg.contains("rollback also failed: remove scratch_dif"),
        "{msg}"
    );
    assert_eq!(dm.device_names(), vec!["scratch_dif"]);
}

/// A taken name is refused before anything is created.
#[test]
fn name_in_use_touches_nothing() {
    for taken in ["scratch", "scratch_dif"] {
        let fx = fixture();
        let dm = MockDm::new();
        dm.insert(taken, "CRYPT-LUKS2-x-scratch", 0);
        let e = run(&dm, &fx).unwrap_err();
        assert!(
            matches!(&e, DmError::NameInUse { name } if name == taken),
            "{e:?}"
        );
        assert_eq!(e.class(), ErrorClass::Busy);
        assert_eq!(dm.device_names(), vec![taken]);
        assert!(!dm.calls().iter().any(|c| c.starts_with("create")));
    }
}

/// Activation reads the versions once, builds the same tables on 5.10's, 6.1's and 6.12's
/// targets, and refuses a dm-integrity that predates fix_padding before it creates anything.
#[test]
fn activation_follows_the_kernels_versions() {
    for (kernel, integrity, crypt) in crate::dm_table::tests::KERNELS {
        let fx = fixture();
        let dm = MockDm::new();
        dm.set_target_versions(&[("integrity", integrity), ("crypt", crypt)]);
        run(&dm, &fx).unwrap();
        let dif = dm.device("scratch_dif").unwrap().active.unwrap();
        assert!(
            dif.params
                .ends_with(" 32 32 D 2 block_size:4096 fix_padding"),
            "{kernel}: {:?}",
            dif.params
        );
        let reads = dm
            .calls()
            .iter()
            .filter(|c| c.starts_with("target_versions"))
            .count();
        assert_eq!(reads, 1, "{kernel}");
    }
    let fx = fixture();
    let dm = MockDm::new();
    dm.set_target_versions(&[
        ("integrity", TargetVersion::new(1, 4, 0)),
        ("crypt", TargetVersion::new(1, 19, 0)),
    ]);
    let e = run(&dm, &fx).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unsupported);
    assert!(e.to_string().contains("version 1.4.0"), "{e}");
    assert!(!dm.calls().iter().any(|c| c.starts_with("create")));
    let e = check_kernel(&dm).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unsupported);
}

/// dm-crypt 1.17.x (before libcryptsetup's keyring threshold 1.18.1) gets the key as hex, in a
/// table marked secret.
#[test]
fn old_dm_crypt_gets_the_key_as_hex() {
    let fx = fixture();
    let dm = MockDm::new();
    dm.set_target_versions(&[
        ("integrity", TargetVersion::new(1, 5, 0)),
        ("crypt", TargetVersion::new(1, 17, 0)),
    ]);
    let a = run(&dm, &fx).unwrap();
    assert!(!a.key_in_keyring);
    let ct = dm.device("scratch").unwrap().active.unwrap();
    assert!(ct.secret);
    assert!(ct.params.contains(&"7c".repeat(96)));
}

/// A kernel without the integrity or crypt target gets the target named, after rollback.
#[test]
fn missing_targets_are_named() {
    for (have, missing) in [("crypt", "integrity"), ("integrity", "crypt")] {
        let fx = fixture();
        let dm = MockDm::new();
        dm.set_targets(&[have]);
        let e = run(&dm, &fx).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unsupported);
        assert!(
            e.to_string().contains(&format!("no dm-{missing} target")),
            "{e}"
        );
        assert!(dm.device_names().is_empty());
    }
}

/// A bad superblock, a missing source or a wrong key size stop activation before any create.
#[test]
fn bad_inputs_create_nothing() {
    let fx = fixture();
    let dm = MockDm::new();
    let mut p = fx.params.clone();
    p.data_offset_sectors = 0;
    let e = activate(&dm, &fx.source, &p, &fx.key, &fx.name).unwrap_err();
    assert!(e.to_string().contains("superblock"), "{e}");
    let e = activate(
        &dm,
        Path::new("/nonexistent/d"),
        &fx.params,
        &fx.key,
        &fx.name,
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput, "{e:?}");
    let short = VolumeKey::from_bytes(&[1; 96]).unwrap();
    let mut p = fx.params.clone();
    p.key_size = 64;
    let e = activate(&dm, &fx.source, &p, &short, &fx.name).unwrap_err();
    assert!(matches!(e, DmError::KeySize { .. }));
    assert!(!dm.calls().iter().any(|c| c.starts_with("create")));
}

/// An ENOMEM from a dm-integrity table load (Linux 6.1's dm-bufio slab race with another
/// tool's device) is retried twice; a third one, or an ENOMEM from the crypt table, is final.
#[test]
fn integrity_load_enomem_is_retried_twice() {
    let loads = |dm: &MockDm, name: &str| {
        dm.calls()
            .iter()
            .filter(|c| *c == &format!("load {name}"))
            .count()
    };
    let fx = fixture();
    let dm = MockDm::new();
    dm.fail_on("load", "scratch_dif", libc::ENOMEM);
    dm.fail_on("load", "scratch_dif", libc::ENOMEM);
    run(&dm, &fx).unwrap();
    assert_eq!(loads(&dm, "scratch_dif"), 3);
    assert!(dm.device("scratch").unwrap().active.is_some());

    let fx = fixture();
    let dm = MockDm::new();
    for _ in 0..3 {
        dm.fail_on("load", "scratch_dif", libc::ENOMEM);
    }
    let e = run(&dm, &fx).unwrap_err();
    assert!(
        matches!(&e, DmError::Ioctl { source, .. } if source.raw_os_error() == Some(libc::ENOMEM)),
        "{e:?}"
    );
    assert_eq!(loads(&dm, "scratch_dif"), 3);
    assert!(dm.device_names().is_empty(), "rolled back");

    // Other errors, and other targets, are not retried.
    for (name, errno) in [("scratch_dif", libc::EINVAL), ("scratch", libc::ENOMEM)] {
        let fx = fixture();
        let dm = MockDm::new();
        dm.fail_on("load", name, errno);
        run(&dm, &fx).unwrap_err();
        assert_eq!(loads(&dm, name), 1, "{name} {errno}");
    }
}

/// No key byte reaches an error message or Debug output, even with the hex fallback.
#[test]
fn errors_never_show_the_key() {
    let fx = fixture();
    let dm = MockDm::new();
    dm.fail_on("load", "scratch", libc::EINVAL);
    let e = run(&dm, &fx).unwrap_err();
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("7c7c"), "{text}");
    }
    let fx = fixture();
    let dm = MockDm::new();
    run(&dm, &fx).unwrap();
    let dbg = format!("{dm:?}");
    assert!(!dbg.contains("7c7c"), "{dbg}");
}

/// Removal takes the crypt device, then the integrity device, and their nodes.
#[test]
fn removal_goes_top_down() {
    let fx = fixture();
    let dm = MockDm::new();
    run(&dm, &fx).unwrap();
    let out = remove(&dm, &fx.name).unwrap();
    assert!(out.crypt_removed && out.integrity_removed && out.existed());
    assert!(dm.device_names().is_empty());
    assert!(dm.nodes().is_empty());
    let removes: Vec<_> = dm
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("remove "))
        .collect();
    assert_eq!(removes, vec!["remove scratch", "remove scratch_dif"]);
}

/// Removing a name that does not exist succeeds and says nothing existed.
#[test]
fn removing_nothing_succeeds() {
    let dm = MockDm::new();
    let out = remove(&dm, &MappingName::new("absent").unwrap()).unwrap();
    assert!(!out.existed());
}

/// An open crypt device is refused as busy and nothing is removed.
#[test]
fn busy_mapping_removes_nothing() {
    let fx = fixture();
    let dm = MockDm::new();
    run(&dm, &fx).unwrap();
    dm.set_open_count("scratch", 1);
    let e = remove(&dm, &fx.name).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Busy);
    assert!(e.to_string().contains("busy"), "{e}");
    assert_eq!(dm.device_names(), vec!["scratch", "scratch_dif"]);
}

/// An EBUSY from the kernel's remove (opened after the check) is reported as busy.
#[test]
fn ebusy_on_remove_is_busy() {
    let fx = fixture();
    let dm = MockDm::new();
    run(&dm, &fx).unwrap();
    dm.fail_on("remove", "scratch", libc::EBUSY);
    let e = remove(&dm, &fx.name).unwrap_err();
    assert!(matches!(e, DmError::BusyOnRemove { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Busy);
    assert_eq!(dm.device_names(), vec!["scratch", "scratch_dif"]);
}

/// A leftover `_dif` alone is removed; anything not shaped as a LUKS2 crypt-over-integrity
/// stack is left alone unless forced, and a non-cryptsetup device even then.
#[test]
fn partial_and_foreign_mappings() {
    const H: &str = "00112233445566778899aabbccddeeff";
    const G: &str = "ffeeddccbbaa99887766554433221100";
    let name = MappingName::new("scratch").unwrap();
    let dm = MockDm::new();
    dm.insert(
        "scratch_dif",
        &format!("CRYPT-INTEGRITY-{H}-scratch_dif"),
        0,
    );
    let out = remove(&dm, &name).unwrap();
    assert!(!out.crypt_removed && out.integrity_removed);

    type Stack = &'static [(&'static str, &'static str)];
    let refused: Vec<(Stack, String)> = vec![
        (&[("scratch", "LVM-something")], String::new()),
        // a plain LUKS2 volume without integrity: someone's data
        (&[("scratch", "")], format!("CRYPT-LUKS2-{H}-scratch")),
        (&[("scratch", "")], format!("CRYPT-PLAIN-{H}-scratch")),
        (&[("scratch", "")], format!("CRYPT-LUKS2-{H}-other")),
        (
            &[("scratch", "")],
            format!("CRYPT-LUKS2-{}-scratch", &H[..30]),
        ),
    ];
    for (stack, uuid) in refused {
        let dm = MockDm::new();
        for (n, u) in stack {
            dm.insert(n, if u.is_empty() { &uuid } else { u }, 0);
        }
        let e = remove(&dm, &name).unwrap_err();
        assert!(
            matches!(e, DmError::NotAStack { .. }),
            "{stack:?} {uuid}: {e:?}"
        );
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(dm.device_names(), vec!["scratch"]);
        let forced = remove_any_crypt(&dm, &name);
        if uuid.starts_with("CRYPT-") {
            assert!(forced.unwrap().crypt_removed);
        } else {
            assert!(matches!(forced, Err(DmError::NotOurs { .. })), "{forced:?}");
        }
    }
    // Two layers of different headers are not one stack.
    let dm = MockDm::new();
    dm.insert("scratch", &format!("CRYPT-LUKS2-{H}-scratch"), 0);
    dm.insert(
        "scratch_dif",
        &format!("CRYPT-INTEGRITY-{G}-scratch_dif"),
        0,
    );
    assert!(matches!(remove(&dm, &name), Err(DmError::NotAStack { .. })));
    assert_eq!(dm.device_names(), vec!["scratch", "scratch_dif"]);
}

/// The hex placement puts the key into a secret table and never touches the keyring.
#[test]
fn hex_placement_puts_the_key_in_a_secret_table() {
    let fx = fixture();
    let dm = MockDm::new();
    let a = activate_with(
        &dm,
        &fx.source,
        &fx.params,
        &fx.key,
        &fx.name,
        KeyPlacement::Hex,
    )
    .unwrap();
    assert!(!a.key_in_keyring);
    let t = dm.device("scratch").unwrap().active.unwrap();
    assert!(t.secret);
    assert!(t.params.contains(&"7c".repeat(96)));
    assert!(!format!("{t:?}").contains("7c7c"));
}

/// A node that cannot be deleted is reported, but both devices are still removed.
#[test]
fn node_failure_does_not_stop_removal() {
    let fx = fixture();
    let dm = MockDm::new();
    run(&dm, &fx).unwrap();
    dm.fail_on("remove_node", "scratch", libc::EACCES);
    let e = remove(&dm, &fx.name).unwrap_err();
    assert!(e.to_string().contains("remove_node scratch"), "{e}");
    assert!(dm.device_names().is_empty());
}
