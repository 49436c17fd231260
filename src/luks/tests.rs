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

/// What a hostile disk could hand back instead of our header is refused, field by field.
#[test]
fn a_header_read_back_must_be_the_one_requested() {
    let ours = || LuksParams {
        uuid: uuid::Uuid::nil(),
        data_offset_sectors: 72,
        sector_size: 4096,
        cipher: "aes".into(),
        cipher_mode: "xts-plain64".into(),
        integrity: "hmac(sha256)".into(),
        tag_size: 32,
        key_size: 96,
    };
    assert_eq!(super::differs_from_request(&ours()), None);
    type Tamper = fn(&mut LuksParams);
    let cases: [(Tamper, &str); 8] = [
        (|p| p.cipher = "cipher_null".into(), "the cipher"),
        (|p| p.cipher_mode = "ecb".into(), "the cipher mode"),
        (|p| p.integrity = "none".into(), "the integrity algorithm"),
        (|p| p.sector_size = 512, "the sector size"),
        (|p| p.key_size = 32, "the volume key size"),
        (|p| p.tag_size = 4, "the integrity tag size"),
        (|p| p.data_offset_sectors = 0, "the data offset"),
        (|p| p.data_offset_sectors = u64::MAX, "the data offset"),
    ];
    for (tamper, field) in cases {
        let mut p = ours();
        tamper(&mut p);
        let what = super::differs_from_request(&p).unwrap_or_default();
        assert!(what.starts_with(field), "{field}: {what:?}");
    }
}
