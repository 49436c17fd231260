use super::*;

/// On a kernel without device-mapper (this build host), format refuses before writing:
/// the file keeps its content.
#[test]
fn format_without_device_mapper_leaves_the_device_alone() {
    let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
    if crate::kernel::dm_misc_minor(&misc).is_some()
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

