use super::*;

/// Keys are 96 random bytes, two draws differ, and Debug never shows a byte.
#[test]
fn generated_keys_are_random_and_redacted() {
    let a = VolumeKey::generate().unwrap();
    let b = VolumeKey::generate().unwrap();
    assert_eq!(a.len(), VOLUME_KEY_BYTES);
    assert_ne!(a.expose(), b.expose());
    assert_eq!(format!("{a:?}"), "VolumeKey([redacted; 96 bytes])");
    let k = VolumeKey::from_bytes(&[0xab; 96]).unwrap();
    assert!(!format!("{k:?}").to_lowercase().contains("ab"));
}

/// A key of the wrong length is refused as invalid input.
#[test]
fn wrong_key_length_is_refused() {
    let e = VolumeKey::from_bytes(&[0; 64]).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidInput);
    assert!(e.to_string().contains("96"));
}

/// On a kernel without device-mapper (this build host), format refuses before writing:
/// the file keeps its content.
#[test]
fn format_without_device_mapper_leaves_the_device_alone() {
    let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
    if crate::dm::dm_misc_minor(&misc).is_some()
        && crate::test_skip::cannot_run(
            "format_without_device_mapper_leaves_the_device_alone",
            "needs a kernel without device-mapper",
        )
    {
        return;
    }
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), vec![0x11u8; 1 << 20]).unwrap();
    let key = VolumeKey::generate().unwrap();
    let e = Libcryptsetup.format(f.path(), &key).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unsupported);
    assert!(e.to_string().contains("no device-mapper"), "{e}");
    assert!(std::fs::read(f.path()).unwrap().iter().all(|&b| b == 0x11));
}

/// Formatting a path that does not exist fails with an input error naming the path.
#[test]
fn format_of_missing_path_names_it() {
    let key = VolumeKey::generate().unwrap();
    let e = Libcryptsetup
        .format(Path::new("/nonexistent/scratchcrypt-disk"), &key)
        .unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/scratchcrypt-disk"),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::InvalidInput, "{e:?}");
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
    let dm = crate::dm::MockDm::new();
    let name = crate::MappingName::new("pipeline").unwrap();
    let a = crate::dm::activate(&dm, f.path(), &params, &key, &name).unwrap();
    assert!(a.size_bytes > 60 << 20 && a.size_bytes < 63 << 20, "{a:?}");
}
